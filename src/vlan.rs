//! 802.1Q parents mactrunk creates itself (`master: "eth0", vlan: 50` or
//! `master: "eth0.50"`): naming rules. Pure; the kernel side is in `link`, the
//! reference counts in `vlan_registry`.

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
    (1..=4094).contains(&vid).then_some((lower, vid))
}

/// `<lower>.<vid>` when it fits the kernel's 15-byte limit; otherwise the
/// first bytes of `lower`, four hex digits of a hash of the full name, and
/// `.<vid>`, e.g. `enp0s20f0u1u2u3` + 4094 → `enp0s2c3a1.4094`. Deterministic,
/// so every ADD and DEL agrees on it.
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
        assert_eq!(long, link_name("enp0s20f0u1u2u3", 4094));
        assert_ne!(long, link_name("enp0s20f0u1u2u4", 4094));
        assert!(link_name("ääääääääääääää", 7).len() <= 15);
    }
}
