//! The one place that says what a valid identifier is: container IDs and
//! network names (the CNI library's pattern), and interface names (the
//! kernel's rules). Every layer that builds a path, a record or a netlink
//! request from such a name asks here.

/// The pattern container IDs and network names follow,
/// `^[a-zA-Z0-9][a-zA-Z0-9_.-]*$` (as the CNI library): no `/`, no leading
/// dot, nothing a file name could misread.
pub const ID_PATTERN: &str = "^[a-zA-Z0-9][a-zA-Z0-9_.-]*$";

/// Why `s` is not a valid container ID or network name (None: it is).
pub fn id_problem(s: &str) -> Option<&'static str> {
    let mut chars = s.chars();
    let valid = match chars.next() {
        Some(c) if c.is_ascii_alphanumeric() => {
            chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        }
        _ => false,
    };
    (!valid).then_some("must match ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
}

/// `id_problem(s).is_none()`.
pub fn is_valid_id(s: &str) -> bool {
    id_problem(s).is_none()
}

/// Network names follow the container ID pattern; the name is also the
/// IPAM store's directory name.
pub fn network_name_problem(s: &str) -> Option<&'static str> {
    id_problem(s)
}

/// The longest interface name the kernel accepts (IFNAMSIZ - 1).
pub const IFNAME_MAX: usize = 15;

/// Linux interface name rules (the kernel's `dev_valid_name`): 1..=15 bytes,
/// not `.`/`..`, no `/`, `:` or whitespace. Also no `%`: the kernel reads a
/// name with `%d` as a template and picks a free number itself (`eth%d` ->
/// `eth0`), so the link would not carry the name we asked for.
pub fn interface_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("is empty")
    } else if name.len() > IFNAME_MAX {
        Some("is longer than 15 bytes")
    } else if name == "." || name == ".." {
        Some("must not be \".\" or \"..\"")
    } else if name.contains('%') {
        Some("must not contain '%' (the kernel reads it as a name template)")
    } else if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
    {
        Some("must not contain '/', ':', whitespace or control characters")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        for good in ["a", "a1_b.c-d", "0", "Z.."] {
            assert!(is_valid_id(good), "{good:?}");
        }
        for bad in [
            "", "-abc", ".abc", "a/b", "../x", "a b", "a\u{7}", "ä", "a@b", ".",
        ] {
            assert!(!is_valid_id(bad), "{bad:?}");
        }
        assert_eq!(network_name_problem("a/b"), id_problem("a/b"));
    }

    #[test]
    fn interface_names() {
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "a:b",
            "a b",
            "a\tb",
            "0123456789abcdef",
            "a\nb",
            "eth%d",
            "%",
        ] {
            assert!(interface_name_problem(bad).is_some(), "{bad:?} accepted");
        }
        for good in [
            "eth0",
            "net1",
            "0123456789abcde",
            "a.b",
            "a-b_c@d",
            "eth0.50",
        ] {
            assert!(interface_name_problem(good).is_none(), "{good:?} rejected");
        }
    }
}
