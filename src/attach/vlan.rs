//! 802.1Q parents mactrunk creates itself (`master: "eth0", vlan: 50` or
//! `master: "eth0.50"`): naming rules. Pure; the kernel side is in `link`, the
//! reference counts in `vlan_registry`. Also the pure decision of what ADD
//! does with whatever link of the VLAN's name it finds ([`plan`]).

use crate::sys::netlink::{LinkInfo, VLAN_IDS, VlanProtocol};

/// How a configured master maps to the link the macvlan sits on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VlanParent {
    /// The physical (or any) link that carries the tagged frames.
    pub lower: String,
    pub vid: u16,
    /// Name of the VLAN link: `<lower>.<vid>`, shortened when too long.
    pub link_name: String,
}

/// `eth0.50` → (`eth0`, 50) when the suffix is a VLAN id 1–4094. Only used
/// when no link of that exact name exists (an existing link wins, as Docker does).
pub fn split_dotted(master: &str) -> Option<(&str, u16)> {
    let (lower, vid) = master.rsplit_once('.')?;
    if lower.is_empty()
        || vid.is_empty()
        || !vid.bytes().all(|b| b.is_ascii_digit())
        || vid.len() > 4
    {
        return None;
    }
    let vid: u16 = vid.parse().ok()?;
    VLAN_IDS.contains(&vid).then_some((lower, vid))
}

/// `<lower>.<vid>` when it fits the kernel's 15-byte limit; otherwise the
/// first bytes of `lower`, four hex digits of a hash of the full name (the
/// low 16 bits of its 32-bit FNV-1a), and `.<vid>`, e.g. `enp0s20f0u1u2u3` +
/// 4094 → `enp0s2dc31.4094`. Deterministic, so every ADD and DEL agrees on it.
pub fn link_name(lower: &str, vid: u16) -> String {
    let full = format!("{lower}.{vid}");
    if full.len() <= 15 {
        return full;
    }
    let suffix = format!(".{vid}");
    let keep = 15 - suffix.len() - 4;
    let mut prefix = String::new();
    for c in lower.chars() {
        if prefix.len() + c.len_utf8() > keep {
            break;
        }
        prefix.push(c);
    }
    let mut h: u32 = 0x811c_9dc5;
    for b in full.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("{prefix}{:04x}{suffix}", h & 0xffff)
}

impl VlanParent {
    pub fn new(lower: &str, vid: u16) -> VlanParent {
        VlanParent {
            lower: lower.to_string(),
            vid,
            link_name: link_name(lower, vid),
        }
    }
}

/// What the registry knows about a link name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ownership {
    /// No record: mactrunk did not create a link of this name.
    None,
    /// A record written before the link was created, without an ifindex yet
    /// (a crash in that window leaves this state behind).
    Pending,
    /// mactrunk created the link with this ifindex.
    Created(u32),
}

/// What ADD does about the VLAN parent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// No link of that name: write the ownership record first, then create it.
    Create,
    /// The link is the one mactrunk created: use it (set it up when it is
    /// down) and record this attachment as a user.
    UseOwned { set_up: bool },
    /// A matching link mactrunk did not create: use it as it is, never change
    /// or delete it. `stale_record`: a record names it, but for another
    /// ifindex (our link was deleted and somebody made a new one): drop it.
    UseForeign { stale_record: bool },
    /// A link of that name that is not this VLAN: the message names it.
    Conflict(String),
}

/// Why `link` is not VLAN `vid` (`protocol`) on the lower link with index
/// `lower_index`, or None when it is.
pub fn mismatch(
    want: &VlanParent,
    protocol: VlanProtocol,
    lower_index: u32,
    link: &LinkInfo,
) -> Option<String> {
    let what = format!("VLAN {} ({protocol}) on {:?}", want.vid, want.lower);
    let name = &link.name;
    if link.kind.as_deref() != Some("vlan") {
        let kind = match link.kind.as_deref() {
            Some(k) => format!("a {k} link"),
            None => "a link without a kind (a physical device?)".to_string(),
        };
        return Some(format!("link {name:?} exists but is {kind}, not {what}"));
    }
    if link.vlan_id != Some(want.vid) {
        return Some(format!(
            "link {name:?} exists but is VLAN {}, not {what}",
            link.vlan_id
                .map_or_else(|| "?".to_string(), |v| v.to_string())
        ));
    }
    if link.parent_index != Some(lower_index) || link.parent_netnsid.is_some() {
        return Some(format!(
            "link {name:?} exists but sits on another link (index {}), not {what}",
            link.parent_index
                .map_or_else(|| "?".to_string(), |v| v.to_string())
        ));
    }
    let have = link.vlan_protocol.unwrap_or_default();
    if have != protocol {
        return Some(format!("link {name:?} exists but uses {have}, not {what}"));
    }
    None
}

/// The decision of ADD, given the link of the VLAN's name (if any) and what
/// the registry says about it. Pure; `vlan_registry::ensure` carries it out.
pub fn plan(
    want: &VlanParent,
    protocol: VlanProtocol,
    lower_index: u32,
    link: Option<&LinkInfo>,
    owned: Ownership,
) -> Plan {
    let Some(link) = link else {
        return Plan::Create;
    };
    if let Some(why) = mismatch(want, protocol, lower_index, link) {
        return Plan::Conflict(why);
    }
    match owned {
        Ownership::None => Plan::UseForeign {
            stale_record: false,
        },
        // Pending: the record was written first, so a crash after the
        // creation leaves exactly this; the link is ours.
        Ownership::Pending => Plan::UseOwned { set_up: !link.up },
        Ownership::Created(index) if index == link.index => Plan::UseOwned { set_up: !link.up },
        Ownership::Created(_) => Plan::UseForeign { stale_record: true },
    }
}

/// May DEL/GC delete `link`, recorded as created by mactrunk with `owned`?
/// Only when it is still that VLAN on that lower link (when the lower link
/// is gone the kernel has removed the VLAN already) and, once the ifindex
/// was recorded, the same link.
pub fn may_delete(
    want: &VlanParent,
    protocol: VlanProtocol,
    lower_index: Option<u32>,
    link: &LinkInfo,
    owned: Ownership,
) -> bool {
    let same = match lower_index {
        Some(i) => mismatch(want, protocol, i, link).is_none(),
        None => false,
    };
    same && match owned {
        Ownership::None => false,
        Ownership::Pending => true,
        Ownership::Created(i) => i == link.index,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_names() {
        assert_eq!(split_dotted("eth0.50"), Some(("eth0", 50)));
        assert_eq!(split_dotted("bond0.4094"), Some(("bond0", 4094)));
        assert_eq!(split_dotted("a.b.7"), Some(("a.b", 7)));
        for no in [
            "eth0",
            "eth0.",
            ".50",
            "eth0.0",
            "eth0.4095",
            "eth0.x1",
            "eth0.+5",
            "eth0.00050",
        ] {
            assert_eq!(split_dotted(no), None, "{no}");
        }
    }

    #[test]
    fn names_fit_and_are_deterministic() {
        assert_eq!(link_name("eth0", 50), "eth0.50");
        assert_eq!(link_name("enp0s31f6", 4094), "enp0s31f6.4094");
        let long = link_name("enp0s20f0u1u2u3", 4094);
        assert!(long.len() <= 15, "{long}");
        assert!(
            long.starts_with("enp0s2") && long.ends_with(".4094"),
            "{long}"
        );
        // Pinned: the name is how DEL, GC and later versions find the link again.
        assert_eq!(long, "enp0s2dc31.4094");
        assert_eq!(link_name("enx001122334455", 50), "enx001125543.50");
        assert_ne!(long, link_name("enp0s20f0u1u2u4", 4094));
        assert!(link_name("ääääääääääääää", 7).len() <= 15);
    }

    fn vlan_link(index: u32, vid: u16, parent: u32, up: bool) -> LinkInfo {
        LinkInfo {
            index,
            name: "eth0.50".into(),
            kind: Some("vlan".into()),
            mtu: 1500,
            parent_index: Some(parent),
            vlan_id: Some(vid),
            vlan_protocol: Some(VlanProtocol::Dot1Q),
            up,
            ..Default::default()
        }
    }

    #[test]
    fn plan_decisions() {
        let want = VlanParent::new("eth0", 50);
        let q = VlanProtocol::Dot1Q;
        assert_eq!(plan(&want, q, 2, None, Ownership::None), Plan::Create);
        // A crash left a record without link: create again.
        assert_eq!(plan(&want, q, 2, None, Ownership::Created(9)), Plan::Create);
        assert_eq!(plan(&want, q, 2, None, Ownership::Pending), Plan::Create);

        let up = vlan_link(9, 50, 2, true);
        let down = vlan_link(9, 50, 2, false);
        assert_eq!(
            plan(&want, q, 2, Some(&up), Ownership::None),
            Plan::UseForeign {
                stale_record: false
            }
        );
        assert_eq!(
            plan(&want, q, 2, Some(&down), Ownership::None),
            Plan::UseForeign {
                stale_record: false
            },
            "a foreign link is never set up"
        );
        assert_eq!(
            plan(&want, q, 2, Some(&up), Ownership::Created(9)),
            Plan::UseOwned { set_up: false }
        );
        assert_eq!(
            plan(&want, q, 2, Some(&down), Ownership::Created(9)),
            Plan::UseOwned { set_up: true }
        );
        assert_eq!(
            plan(&want, q, 2, Some(&down), Ownership::Pending),
            Plan::UseOwned { set_up: true }
        );
        assert_eq!(
            plan(&want, q, 2, Some(&up), Ownership::Created(8)),
            Plan::UseForeign { stale_record: true },
            "same name, other ifindex: somebody else's link now"
        );
    }

    #[test]
    fn plan_conflicts_name_the_link() {
        let want = VlanParent::new("eth0", 50);
        let q = VlanProtocol::Dot1Q;
        let mut dummy = vlan_link(9, 50, 2, true);
        dummy.kind = Some("dummy".into());
        dummy.vlan_id = None;
        let mut phys = dummy.clone();
        phys.kind = None;
        let other_id = vlan_link(9, 51, 2, true);
        let other_lower = vlan_link(9, 50, 3, true);
        let mut ad = vlan_link(9, 50, 2, true);
        ad.vlan_protocol = Some(VlanProtocol::Dot1Ad);
        for (link, needle) in [
            (&dummy, "dummy link"),
            (&phys, "without a kind"),
            (&other_id, "is VLAN 51"),
            (&other_lower, "another link"),
            (&ad, "802.1ad"),
        ] {
            for owned in [Ownership::None, Ownership::Pending, Ownership::Created(9)] {
                match plan(&want, q, 2, Some(link), owned) {
                    Plan::Conflict(m) => {
                        assert!(m.contains("\"eth0.50\"") && m.contains(needle), "{m}")
                    }
                    p => panic!("{needle}: {p:?}"),
                }
            }
        }
        assert_eq!(
            plan(&want, VlanProtocol::Dot1Ad, 2, Some(&ad), Ownership::None),
            Plan::UseForeign {
                stale_record: false
            }
        );
    }

    #[test]
    fn delete_only_what_we_created() {
        let want = VlanParent::new("eth0", 50);
        let q = VlanProtocol::Dot1Q;
        let l = vlan_link(9, 50, 2, true);
        assert!(may_delete(&want, q, Some(2), &l, Ownership::Created(9)));
        assert!(may_delete(&want, q, Some(2), &l, Ownership::Pending));
        assert!(!may_delete(&want, q, Some(2), &l, Ownership::None));
        assert!(!may_delete(&want, q, Some(2), &l, Ownership::Created(8)));
        assert!(!may_delete(&want, q, Some(3), &l, Ownership::Created(9)));
        assert!(!may_delete(&want, q, None, &l, Ownership::Created(9)));
        let mut d = l.clone();
        d.kind = Some("dummy".into());
        assert!(!may_delete(&want, q, Some(2), &d, Ownership::Created(9)));
    }
}
