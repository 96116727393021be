//! sysctl writes under `/proc/sys`. `/proc/sys/net` shows the network
//! namespace of the *calling thread*, so container settings must be written
//! from inside [`crate::sys::netns::NsThread`].

use std::fs::{self, OpenOptions};
use std::io::{self, Write};

const ROOT: &str = "/proc/sys/";

/// `/proc/sys/net/<ipv4|ipv6>/conf/<ifname>/<key>`. Interface names may contain
/// dots (`eth0.50`), so build paths with this rather than from dotted keys.
pub fn net_conf_path(ipv6: bool, ifname: &str, key: &str) -> String {
    let fam = if ipv6 { "ipv6" } else { "ipv4" };
    format!("/proc/sys/net/{fam}/conf/{ifname}/{key}")
}

fn check_path(path: &str) -> io::Result<()> {
    if !path.starts_with(ROOT) || path.split('/').any(|c| c == "..") {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{path}: not a path under {ROOT}"),
        ));
    }
    Ok(())
}

/// The current value (trimmed), or None when the key does not exist (e.g. no
/// IPv6 in this namespace).
pub fn read(path: &str) -> io::Result<Option<String>> {
    check_path(path)?;
    match fs::read_to_string(path) {
        Ok(v) => Ok(Some(v.trim().to_string())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(with_path(e, path, "read")),
    }
}

/// Write `value` unless the key already holds it. Returns Ok(true) when it
/// wrote, Ok(false) when the value was already set, the key does not exist
/// (ENOENT: e.g. IPv6 disabled) or `/proc/sys` is read-only (EROFS).
pub fn write_if_different(path: &str, value: &str) -> io::Result<bool> {
    let want = value.trim();
    match read(path)? {
        None => return Ok(false),
        Some(cur) if cur == want => return Ok(false),
        Some(_) => {}
    }
    let res = OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|mut f| f.write_all(format!("{want}\n").as_bytes()));
    match res {
        Ok(()) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(e) if e.raw_os_error() == Some(libc::EROFS) => Ok(false),
        Err(e) => Err(with_path(e, path, "write")),
    }
}

/// The running kernel's release (`uname -r`), for messages about features
/// an older kernel lacks; "unknown" if /proc cannot tell.
pub fn kernel_release() -> String {
    read("/proc/sys/kernel/osrelease")
        .ok()
        .flatten()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

fn with_path(e: io::Error, path: &str, op: &str) -> io::Error {
    io::Error::new(e.kind(), format!("{op} {path}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(
            net_conf_path(true, "eth0.50", "accept_dad"),
            "/proc/sys/net/ipv6/conf/eth0.50/accept_dad"
        );
        assert_eq!(
            net_conf_path(false, "eth0", "arp_notify"),
            "/proc/sys/net/ipv4/conf/eth0/arp_notify"
        );
    }

    #[test]
    fn rejects_paths_outside_proc_sys() {
        for p in [
            "/etc/passwd",
            "/proc/sys/../self/mem",
            "proc/sys/net",
            "/proc/sysx/a",
        ] {
            assert_eq!(
                write_if_different(p, "1").unwrap_err().kind(),
                io::ErrorKind::InvalidInput,
                "{p}"
            );
        }
    }

    #[test]
    fn missing_key_is_not_an_error() {
        assert_eq!(
            read("/proc/sys/net/ipv6/conf/mtl-none/accept_dad").unwrap(),
            None
        );
        assert!(!write_if_different("/proc/sys/net/ipv6/conf/mtl-none/accept_dad", "0").unwrap());
    }

    #[test]
    fn unchanged_value_is_not_written() {
        // Readable by anyone; writing the same value is skipped, so no root needed.
        let p = "/proc/sys/net/ipv4/ip_forward";
        let cur = read(p).unwrap().unwrap();
        assert!(!write_if_different(p, &cur).unwrap());
        assert!(!write_if_different(p, &format!("{cur}\n")).unwrap());
    }
}
