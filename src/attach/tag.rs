//! How mactrunk recognises the container link it created: a tag in the
//! link's alias (IFLA_IFALIAS), and the temporary names it creates links
//! under on old kernels. Pure.

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
    let h = fnv1a(network.bytes().chain([0]).chain(container_id.bytes()));
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

/// Attempts at a free temporary name: a clash needs a host link that
/// happens to carry one of this attachment's names.
pub(crate) const TEMP_NAME_ATTEMPTS: u32 = 4;

/// The temporary names (`mt` + 8 hex digits) ADD may create the container
/// link under on old kernels, in the order it tries them. They derive from
/// the tag and CNI_IFNAME rather than from chance so that DEL knows them: an
/// ADD killed between the create and the rename leaves a link under one of
/// them, and only DEL can remove it. Two attachments never share them (the
/// tag holds network and container ID), so a concurrent ADD of another
/// attachment into the same netns never loses its half-made link to our DEL.
pub(crate) fn temp_link_names(tag: &str, ifname: &str) -> impl Iterator<Item = String> {
    let base = fnv1a(tag.bytes().chain([0]).chain(ifname.bytes()));
    (0..TEMP_NAME_ATTEMPTS).map(move |attempt| {
        let v = fnv1a(base.to_le_bytes().into_iter().chain([attempt as u8]));
        let name = format!("mt{:08x}", (v ^ (v >> 32)) as u32);
        debug_assert!(interface_name_problem(&name).is_none());
        name
    })
}

fn fnv1a(bytes: impl Iterator<Item = u8>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
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
    fn temp_names_are_valid_distinct_and_known_to_del() {
        let tag = link_tag("lan", "abc");
        let names: Vec<String> = temp_link_names(&tag, "eth0").collect();
        assert_eq!(names.len(), TEMP_NAME_ATTEMPTS as usize);
        assert_eq!(names, temp_link_names(&tag, "eth0").collect::<Vec<_>>());
        let mut all = names.clone();
        all.extend(temp_link_names(&tag, "net1"));
        all.extend(temp_link_names(&link_tag("lan", "abd"), "eth0"));
        all.extend(temp_link_names(&link_tag("lao", "abc"), "eth0"));
        for n in &all {
            assert!(interface_name_problem(n).is_none(), "{n}");
            assert!(n.starts_with("mt") && n.len() == 10, "{n}");
        }
        let mut unique = all.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), all.len(), "{all:?}");
    }
}
