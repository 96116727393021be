//! The host shim (`hostShim`): one macvlan in bridge mode per parent, in the
//! host's network namespace, through which the host reaches its own
//! macvlan containers (the kernel never delivers frames between a macvlan
//! and its parent). Pure: names, the MAC, the decision of what to do with
//! the link found under the shim's name, the source address of the host's
//! routes, the shim's sysctls. The records and reference counts are in
//! `shim_registry`; the kernel side in `add`, `del`, `check`, `status`.
//!
//! How the host and a container reach each other (docs/l2.md has the why):
//!
//! ```text
//! host:      192.168.50.100/32 dev mts-eth0 scope link src 192.168.50.5 proto 109
//!            neighbour 192.168.50.100 lladdr <container MAC> PERMANENT  (on mts-eth0)
//! container: neighbour 192.168.50.5 lladdr <shim MAC> PERMANENT        (on eth0)
//!            [192.168.50.5/32 dev eth0 scope link, when not in its subnet]
//! ```
//!
//! The shim has no address: the host's packets carry the host's own address
//! on the parent (the route's preferred source), and both ends know each
//! other's MAC without ARP, so the shim never sends an ARP request (which
//! would tell the LAN that the host's address is at the shim's MAC) and never
//! answers one (`arp_ignore` 8).

use std::net::IpAddr;

use ipnetwork::IpNetwork;

use super::vlan::Ownership;
use crate::sys::netlink::{LinkInfo, MacvlanMode, Sysctl, ifa_flags};
use crate::sys::sysctl;

/// The shim of parent `eth0` is `mts-eth0`.
pub const PREFIX: &str = "mts-";

/// The shim's name for `parent`: `mts-<parent>`, or, when that is longer
/// than 15 bytes, `mts-` + the first bytes of the parent + four hex digits
/// of a hash of the parent's full name (the low 16 bits of its 32-bit
/// FNV-1a): `enp0s20f0u1u2u3.4094` -> `mts-enp0s20dc31`. Deterministic, so
/// every ADD, DEL, CHECK and GC finds the same shim.
pub fn name(parent: &str) -> String {
    let full = format!("{PREFIX}{parent}");
    if full.len() <= 15 {
        return full;
    }
    let keep = 15 - PREFIX.len() - 4;
    let mut out = PREFIX.to_string();
    for c in parent.chars() {
        if out.len() - PREFIX.len() + c.len_utf8() > keep {
            break;
        }
        out.push(c);
    }
    format!("{out}{:04x}", fnv1a32(parent.as_bytes()) & 0xffff)
}

fn fnv1a32(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in bytes {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// The shim's MAC: `06:` + five bytes of a 64-bit FNV-1a hash of the
/// parent's MAC and the shim's name. `06` is unicast and locally
/// administered, and apart from Docker's `02:42` and `macFromIP`'s `02:6d`.
/// Deterministic: a shim created again (after someone deleted it) comes back
/// with the MAC the containers' neighbour entries point at. The parent's
/// MAC makes it differ between hosts on one LAN.
pub fn mac(parent_mac: Option<[u8; 6]>, shim_name: &str) -> [u8; 6] {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in parent_mac
        .unwrap_or_default()
        .iter()
        .chain([0u8].iter())
        .chain(shim_name.as_bytes())
    {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let b = h.to_be_bytes();
    [0x06, b[0], b[1], b[2], b[3], b[4]]
}

/// The shim's alias (IFLA_IFALIAS): `mactrunk:shim:<parent>`, for people
/// (`ip -d link` shows it); ownership is the registry's record.
pub fn tag(parent: &str) -> String {
    format!("mactrunk:shim:{parent}")
}

/// Why `link` is not a shim mactrunk would make on the parent with index
/// `parent_index` (a bridge-mode macvlan), or None.
pub fn mismatch(link: &LinkInfo, parent_index: u32) -> Option<String> {
    let name = &link.name;
    if link.kind.as_deref() != Some("macvlan") {
        let kind = link.kind.as_deref().unwrap_or("physical or unknown");
        return Some(format!(
            "link {name:?} exists but is a {kind} link, not a macvlan host shim"
        ));
    }
    if link.parent_index != Some(parent_index) || link.parent_netnsid.is_some() {
        return Some(format!(
            "link {name:?} exists but sits on another link (index {}), not on index {parent_index}",
            link.parent_index
                .map_or_else(|| "?".to_string(), |v| v.to_string())
        ));
    }
    if link.macvlan_mode != Some(MacvlanMode::Bridge) {
        return Some(format!(
            "link {name:?} exists but is not in macvlan mode bridge"
        ));
    }
    None
}

/// What ADD does about the shim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// No link of that name: record first, then create it.
    Create,
    /// The shim mactrunk created: use it (set it up when down).
    UseOwned { set_up: bool },
    /// A link of that name mactrunk did not create, or one that is not a
    /// shim: never touched; the message names it.
    Conflict(String),
}

/// The decision of ADD, given the link found under the shim's name and what
/// the registry says about it.
pub fn plan(parent_index: u32, link: Option<&LinkInfo>, owned: Ownership) -> Plan {
    let Some(link) = link else {
        return Plan::Create;
    };
    let name = &link.name;
    match owned {
        Ownership::None => Plan::Conflict(format!(
            "link {name:?} exists and was not created by mactrunk (no record of it): it is left alone; remove or rename it to let mactrunk create its host shim there"
        )),
        Ownership::Created(i) if i != link.index => Plan::Conflict(format!(
            "link {name:?} (index {}) is not the host shim mactrunk created (index {i}, gone): it is left alone; remove or rename it",
            link.index
        )),
        // Pending: the record is written before the creation, so a crash
        // right after it leaves exactly this; the link is ours if it is a
        // shim on this parent.
        Ownership::Pending | Ownership::Created(_) => match mismatch(link, parent_index) {
            Some(why) => Plan::Conflict(why),
            None => Plan::UseOwned { set_up: !link.up },
        },
    }
}

/// May DEL or GC delete `link`, recorded with `owned`? Only the macvlan
/// mactrunk created (once its ifindex is recorded, that very link).
pub fn may_delete(link: &LinkInfo, owned: Ownership) -> bool {
    link.kind.as_deref() == Some("macvlan")
        && match owned {
            Ownership::None => false,
            Ownership::Pending => true,
            Ownership::Created(i) => i == link.index,
        }
}

/// The sysctls of a new shim, written before it goes up. The shim has no
/// address and answers no ARP: `arp_ignore` 8 (never reply; the kernel
/// takes the higher of this and `all`, so nothing can lower it). It sends
/// none either, since every neighbour on it is permanent. `rp_filter` 1:
/// strict for the shim alone (the effective value is the higher of this and
/// `all`): every packet that arrives on it comes from a container whose
/// address the host routes through it, and a LAN broadcast the macvlan
/// copies to it is not taken in twice. No IPv6 address of its own
/// (`addr_gen_mode` 1: not even a link-local one), no router
/// advertisements (they would add a default route through it), no SLAAC.
pub fn sysctls(shim: &str) -> Vec<Sysctl> {
    let v4 = |key| sysctl::net_conf_path(false, shim, key);
    let v6 = |key| sysctl::net_conf_path(true, shim, key);
    vec![
        (v4("arp_ignore"), "8"),
        (v4("rp_filter"), "1"),
        (v6("addr_gen_mode"), "1"),
        (v6("accept_ra"), "0"),
        (v6("autoconf"), "0"),
    ]
}

/// An address of the host the containers can be given as the host's
/// source: global scope (not loopback, not link-local), primary (IPv4), not
/// tentative, failed or deprecated (IPv6).
pub fn usable(addr: &IpNetwork, flags: u32) -> bool {
    match addr.ip() {
        IpAddr::V4(a) => {
            !a.is_loopback()
                && !a.is_link_local()
                && !a.is_unspecified()
                && flags & ifa_flags::SECONDARY == 0
        }
        IpAddr::V6(a) => {
            !a.is_loopback()
                && !a.is_unicast_link_local()
                && !a.is_unspecified()
                && flags & (ifa_flags::TENTATIVE | ifa_flags::DADFAILED | ifa_flags::DEPRECATED)
                    == 0
        }
    }
}

/// The source address of the host's packets to a container address, and
/// whether the container reaches it on-link (it lies in the container's
/// subnet: a neighbour entry is enough; otherwise the container also gets
/// a /32 (/128) route to it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source {
    pub ip: IpAddr,
    pub on_link: bool,
}

/// The host's address the containers see for `container` (an address with
/// its prefix): a configured one of that family (`hostShim.src`) first;
/// else, over `links` (the host's addresses per link, in the order: the
/// shim's parent, for a VLAN parent its lower link, the default route's
/// link), the first usable address whose subnet holds the container's
/// address, then the first usable address of that family. None when the
/// host has no address of that family there.
pub fn choose_source(
    container: IpNetwork,
    configured: &[IpAddr],
    links: &[Vec<(IpNetwork, u32)>],
) -> Option<Source> {
    let v4 = container.is_ipv4();
    let pick = |ip: IpAddr| Source {
        ip,
        on_link: container.contains(ip),
    };
    if let Some(ip) = configured.iter().find(|a| a.is_ipv4() == v4) {
        return Some(pick(*ip));
    }
    let all = || {
        links
            .iter()
            .flatten()
            .filter(move |(a, f)| a.is_ipv4() == v4 && usable(a, *f))
    };
    all()
        .find(|(a, _)| a.contains(container.ip()))
        .or_else(|| all().next())
        .map(|(a, _)| pick(a.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_and_are_deterministic() {
        assert_eq!(name("eth0"), "mts-eth0");
        assert_eq!(name("eth0.50"), "mts-eth0.50");
        assert_eq!(name("enp0s31f6"), "mts-enp0s31f6");
        let long = name("enp0s20f0u1u2u3.4094");
        assert_eq!(long.len(), 15, "{long}");
        assert!(long.starts_with("mts-enp0s20"), "{long}");
        // Pinned: the name is how DEL, GC and later versions find the shim.
        assert_eq!(long, name("enp0s20f0u1u2u3.4094"));
        assert_eq!(long, "mts-enp0s20dc31");
        assert_ne!(long, name("enp0s20f0u1u2u3.4093"));
        for p in ["ääääääääääää", "a.b.c.d.e.f.g.h", "x"] {
            let n = name(p);
            assert!(
                crate::cni::names::interface_name_problem(&n).is_none(),
                "{n}"
            );
        }
    }

    #[test]
    fn mac_is_local_unicast_and_per_host() {
        let a = mac(Some([0x52, 0x54, 0, 0x12, 0x34, 0x56]), "mts-eth0");
        assert_eq!(a[0], 0x06, "locally administered, unicast");
        assert_eq!(a, mac(Some([0x52, 0x54, 0, 0x12, 0x34, 0x56]), "mts-eth0"));
        assert_ne!(a, mac(Some([0x52, 0x54, 0, 0x12, 0x34, 0x57]), "mts-eth0"));
        assert_ne!(
            a,
            mac(Some([0x52, 0x54, 0, 0x12, 0x34, 0x56]), "mts-eth0.50")
        );
        assert_eq!(mac(None, "mts-eth0")[0], 0x06);
    }

    fn shim(index: u32, parent: u32, mode: MacvlanMode, up: bool) -> LinkInfo {
        LinkInfo {
            index,
            name: "mts-eth0".into(),
            kind: Some("macvlan".into()),
            parent_index: Some(parent),
            macvlan_mode: Some(mode),
            up,
            ..LinkInfo::default()
        }
    }

    #[test]
    fn plan_decisions() {
        let b = MacvlanMode::Bridge;
        assert_eq!(plan(2, None, Ownership::None), Plan::Create);
        assert_eq!(plan(2, None, Ownership::Created(9)), Plan::Create);
        assert_eq!(plan(2, None, Ownership::Pending), Plan::Create);
        let up = shim(9, 2, b, true);
        assert_eq!(
            plan(2, Some(&up), Ownership::Created(9)),
            Plan::UseOwned { set_up: false }
        );
        assert_eq!(
            plan(2, Some(&shim(9, 2, b, false)), Ownership::Pending),
            Plan::UseOwned { set_up: true }
        );
        // Not ours: no record, or a record of another link that is gone.
        for owned in [Ownership::None, Ownership::Created(8)] {
            match plan(2, Some(&up), owned) {
                Plan::Conflict(why) => {
                    assert!(
                        why.contains("\"mts-eth0\"") && why.contains("left alone"),
                        "{why}"
                    )
                }
                other => panic!("{other:?}"),
            }
        }
        // Ours by the record, but not a shim on this parent any more.
        for (l, needle) in [
            (shim(9, 3, b, true), "another link (index 3)"),
            (shim(9, 2, MacvlanMode::Vepa, true), "mode bridge"),
            (
                LinkInfo {
                    kind: Some("veth".into()),
                    ..up.clone()
                },
                "veth",
            ),
        ] {
            match plan(2, Some(&l), Ownership::Created(9)) {
                Plan::Conflict(why) => assert!(why.contains(needle), "{why}"),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn only_our_macvlan_may_be_deleted() {
        let l = shim(9, 2, MacvlanMode::Bridge, true);
        assert!(may_delete(&l, Ownership::Created(9)));
        assert!(may_delete(&l, Ownership::Pending));
        assert!(!may_delete(&l, Ownership::Created(10)));
        assert!(!may_delete(&l, Ownership::None));
        let veth = LinkInfo {
            kind: Some("veth".into()),
            ..l
        };
        assert!(!may_delete(&veth, Ownership::Created(9)));
    }

    #[test]
    fn sysctls_of_the_shim() {
        let s = sysctls("mts-eth0.50");
        assert!(s.contains(&("/proc/sys/net/ipv4/conf/mts-eth0.50/arp_ignore".into(), "8")));
        assert!(s.contains(&("/proc/sys/net/ipv4/conf/mts-eth0.50/rp_filter".into(), "1")));
        assert!(s.contains(&("/proc/sys/net/ipv6/conf/mts-eth0.50/accept_ra".into(), "0")));
        assert!(
            s.iter().all(|(p, _)| p.contains("/mts-eth0.50/")),
            "the shim only"
        );
    }

    fn net(s: &str) -> IpNetwork {
        s.parse().unwrap()
    }

    #[test]
    fn the_source_is_the_hosts_address_on_that_network() {
        let parent = vec![
            (net("10.1.0.5/24"), 0),
            (net("192.168.50.5/24"), 0),
            (net("192.168.50.6/24"), ifa_flags::SECONDARY),
            (net("fe80::1/64"), 0),
            (net("fd50::5/64"), ifa_flags::TENTATIVE),
            (net("fd50::6/64"), 0),
        ];
        let lower = vec![(net("172.16.0.5/16"), 0)];
        let c = net("192.168.50.100/24");
        // In the container's subnet: on-link.
        assert_eq!(
            choose_source(c, &[], &[parent.clone(), lower.clone()]),
            Some(Source {
                ip: "192.168.50.5".parse().unwrap(),
                on_link: true
            })
        );
        // No address of that subnet: the parent's first, then the lower's.
        let other = net("192.168.60.100/24");
        assert_eq!(
            choose_source(other, &[], std::slice::from_ref(&parent)),
            Some(Source {
                ip: "10.1.0.5".parse().unwrap(),
                on_link: false
            })
        );
        assert_eq!(
            choose_source(other, &[], &[vec![], lower.clone()]).map(|s| s.ip),
            Some("172.16.0.5".parse().unwrap())
        );
        // IPv6: not tentative, not link-local.
        assert_eq!(
            choose_source(net("fd50::100/64"), &[], std::slice::from_ref(&parent)),
            Some(Source {
                ip: "fd50::6".parse().unwrap(),
                on_link: true
            })
        );
        assert_eq!(
            choose_source(net("fd50::100/64"), &[], std::slice::from_ref(&lower)),
            None
        );
        // Configured wins, per family.
        let conf: Vec<IpAddr> = vec!["10.9.9.9".parse().unwrap(), "fd50::9".parse().unwrap()];
        assert_eq!(
            choose_source(c, &conf, std::slice::from_ref(&parent)),
            Some(Source {
                ip: "10.9.9.9".parse().unwrap(),
                on_link: false
            })
        );
        assert_eq!(
            choose_source(net("fd50::100/64"), &conf, &[]).map(|s| s.ip),
            Some("fd50::9".parse().unwrap())
        );
        assert_eq!(choose_source(c, &[], &[]), None);
    }

    #[test]
    fn usable_addresses() {
        assert!(usable(&net("10.0.0.1/8"), 0));
        assert!(!usable(&net("127.0.0.1/8"), 0));
        assert!(!usable(&net("169.254.1.1/16"), 0));
        assert!(!usable(&net("10.0.0.2/8"), ifa_flags::SECONDARY));
        assert!(usable(&net("2001:db8::1/64"), ifa_flags::PERMANENT));
        assert!(!usable(&net("::1/128"), 0));
        assert!(!usable(&net("fe80::1/64"), 0));
        assert!(!usable(&net("2001:db8::1/64"), ifa_flags::DEPRECATED));
        assert!(!usable(&net("2001:db8::1/64"), ifa_flags::DADFAILED));
    }
}
