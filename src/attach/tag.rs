//! How mactrunk recognises the container link it created: a tag in the
//! link's alias (IFLA_IFALIAS), and the random temporary names it creates
//! links under on old kernels. Pure.

use crate::cni::names::interface_name_problem;
use crate::sys::netlink::{CONTAINER_LINK_KINDS, LinkInfo};

/// IFALIASZ - 1: the longest alias the kernel keeps.
pub(crate) const MAX_TAG: usize = 255;

/// The tag (IFLA_IFALIAS) of the container link of one attachment:
/// `mactrunk:<network>:<containerID>`. DEL and CHECK act only on a link that
/// carries it, so one network never deletes another network's (or another
/// plugin's) interface of the same name. Too long for the kernel's 255
/// bytes, it becomes `mactrunk:#` + a 64-bit FNV-1a hash of both.
pub(crate) fn link_tag(network: &str, container_id: &str) -> String {
    let full = format!("mactrunk:{network}:{container_id}");
    if full.len() <= MAX_TAG {
        return full;
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in network.bytes().chain([0]).chain(container_id.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("mactrunk:#{h:016x}")
}

/// Is `link` of a kind mactrunk creates in containers (macvlan, ipvlan)?
fn is_container_kind(link: &LinkInfo) -> bool {
    link.kind
        .as_deref()
        .is_some_and(|k| CONTAINER_LINK_KINDS.contains(&k))
}

/// Why `link` is not the link this attachment created (None: it is). The
/// tag decides; the kind only has to be one mactrunk creates (DEL does not
/// need the config's linkType, so a network switched from macvlan to ipvlan
/// still deletes its old links).
pub(crate) fn not_ours(link: &LinkInfo, tag: &str) -> Option<String> {
    if !is_container_kind(link) {
        return Some(format!(
            "it is a {} link, not a macvlan or ipvlan mactrunk created",
            link.kind.as_deref().unwrap_or("physical or unknown")
        ));
    }
    match link.alias.as_deref() {
        Some(a) if a == tag => None,
        Some(a) => Some(format!("its tag {a:?} is not {tag:?}")),
        None => Some(format!("it carries no mactrunk tag ({tag:?} expected)")),
    }
}

/// An untagged macvlan or ipvlan that is down and has no address: what an
/// ADD killed between creating its link and tagging it leaves. Nobody can
/// be using it.
pub(crate) fn is_blank_leftover(link: &LinkInfo, has_addresses: bool) -> bool {
    is_container_kind(link) && link.alias.is_none() && !link.up && !has_addresses
}

/// `mt` + 8 random hex digits: never a name a runtime or host would use.
pub(crate) fn temp_link_name() -> String {
    let mut buf = [0u8; 4];
    // SAFETY: getrandom writes at most buf.len() bytes into buf.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), libc::GRND_NONBLOCK) };
    let mut v = u32::from_ne_bytes(buf);
    if n != buf.len() as isize {
        // No entropy yet (early boot): pid and clock are unique enough for
        // a name that only has to differ from the host's links.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        v = nanos ^ std::process::id().rotate_left(16);
    }
    let name = format!("mt{v:08x}");
    debug_assert!(interface_name_problem(&name).is_none());
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_tags_name_network_and_container() {
        assert_eq!(link_tag("lan", "abc"), "mactrunk:lan:abc");
        assert_ne!(link_tag("lan", "abc"), link_tag("lan2", "abc"));
        let long = "x".repeat(300);
        let t = link_tag("lan", &long);
        assert!(t.len() <= MAX_TAG && t.starts_with("mactrunk:#"), "{t}");
        assert_eq!(t, link_tag("lan", &long), "deterministic");
        assert_ne!(t, link_tag("lan2", &long));
        // The separator keeps (a, bc) and (ab, c) apart.
        assert_ne!(link_tag("a", &format!("b{long}")), link_tag("ab", &long));
    }

    #[test]
    fn only_a_tagged_macvlan_is_ours() {
        let tag = link_tag("lan", "abc");
        let mut l = LinkInfo {
            kind: Some("macvlan".into()),
            alias: Some(tag.clone()),
            ..LinkInfo::default()
        };
        assert_eq!(not_ours(&l, &tag), None);
        l.alias = Some(link_tag("other", "abc"));
        assert!(not_ours(&l, &tag).unwrap().contains("mactrunk:other:abc"));
        l.alias = None;
        assert!(not_ours(&l, &tag).unwrap().contains("no mactrunk tag"));
        assert!(is_blank_leftover(&l, false));
        assert!(!is_blank_leftover(&l, true));
        l.up = true;
        assert!(!is_blank_leftover(&l, false));
        l.alias = Some(tag.clone());
        l.kind = Some("ipvlan".into());
        assert_eq!(not_ours(&l, &tag), None, "a tagged ipvlan is ours too");
        l.up = false;
        l.alias = None;
        assert!(is_blank_leftover(&l, false));
        l.alias = Some(tag.clone());
        l.kind = Some("veth".into());
        assert!(not_ours(&l, &tag).unwrap().contains("veth"));
        assert!(!is_blank_leftover(&LinkInfo { alias: None, ..l }, false));
    }

    #[test]
    fn temp_names_are_valid_and_distinct() {
        let a = temp_link_name();
        let b = temp_link_name();
        assert_ne!(a, b);
        for n in [&a, &b] {
            assert!(interface_name_problem(n).is_none(), "{n}");
            assert!(n.starts_with("mt") && n.len() == 10, "{n}");
        }
    }
}
