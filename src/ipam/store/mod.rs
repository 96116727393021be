//! The IPAM store: who holds which address. The allocator (`crate::ipam`) sees
//! only the [`Store`] trait; [`FileStore`] is the on-disk host-local layout
//! plus an owner index, [`StoreReader`] a read-only view of such a directory
//! that creates and writes nothing, [`MemStore`] an in-memory double for tests.
//!
//! Every method is called with the store's lock held (a `FileStore` holds it
//! from `open` until drop), so no method needs to guard against other writers
//! of this crate; `reserve` is still atomic and never clobbers an existing
//! record, in case a foreign writer (the reference host-local) shares the dir.

mod file;

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use crate::cni::gc::Attachment;
use crate::cni::{CniError, code};
use crate::sys::fs::FsError;

pub use file::{FileStore, StoreReader};

/// The record prefix of a quarantined address (see [`Owner::quarantine`]).
pub const QUARANTINE_PREFIX: &str = "conflict:";

/// One attachment: the key every allocation is recorded under.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Owner {
    pub container_id: String,
    /// `""` for a legacy record that carries only the container ID.
    pub ifname: String,
}

impl Owner {
    pub fn new(container_id: impl Into<String>, ifname: impl Into<String>) -> Owner {
        Owner {
            container_id: container_id.into(),
            ifname: ifname.into(),
        }
    }

    /// The owner of one attachment: `CNI_CONTAINERID` and `CNI_IFNAME`.
    pub fn of(args: &crate::cni::env::CmdArgs) -> Owner {
        Owner::new(args.container_id.clone(), args.ifname.clone())
    }

    /// A legacy (ID-only) record: it matches any interface of its container.
    pub fn is_legacy(&self) -> bool {
        self.ifname.is_empty()
    }

    /// Does a record written for `self` belong to the attachment `who`?
    /// Exact match, or a legacy record of the same container (as host-local).
    pub fn matches(&self, who: &Owner) -> bool {
        self == who || (self.is_legacy() && self.container_id == who.container_id)
    }

    /// The holder of an address quarantined because `by` (a MAC, or
    /// `ipv6-dad`) showed it in use on the network: the record
    /// `conflict:<by>`. No container ID contains ':', so no attachment ever
    /// matches it; the reference host-local reads it as a foreign container
    /// and leaves it alone too.
    pub fn quarantine(by: &str) -> Owner {
        Owner::new(format!("{QUARANTINE_PREFIX}{by}"), "")
    }

    /// What showed a quarantined address in use (see [`Owner::quarantine`]);
    /// None for an attachment.
    pub fn quarantined_by(&self) -> Option<&str> {
        self.container_id
            .strip_prefix(QUARANTINE_PREFIX)
            .filter(|_| self.is_legacy())
    }

    pub fn is_quarantine(&self) -> bool {
        self.quarantined_by().is_some()
    }

    /// The legacy key of this owner's container.
    pub fn legacy(&self) -> Owner {
        Owner::new(self.container_id.clone(), "")
    }

    /// Reject owners that are unsafe as (part of) a file name or a record.
    /// The env layer already enforces the container ID pattern; this is the
    /// store's own guard, since it builds paths from these strings.
    pub fn validate(&self) -> Result<(), StoreError> {
        use crate::cni::names::{id_problem, interface_name_problem};
        let cid = &self.container_id;
        if let Some(p) = id_problem(cid) {
            return Err(StoreError::InvalidOwner(format!(
                "container ID {:?} {p}",
                cid.escape_debug().to_string()
            )));
        }
        if let Some(p) = interface_name_problem(&self.ifname) {
            return Err(StoreError::InvalidOwner(format!(
                "interface name {:?} {p}",
                self.ifname.escape_debug().to_string()
            )));
        }
        if self.index_name().is_none() {
            return Err(StoreError::InvalidOwner(format!(
                "container ID is too long ({} bytes)",
                cid.len()
            )));
        }
        Ok(())
    }

    /// The owner's index file name, `<containerID>@<ifname>` (`<containerID>@`
    /// for a legacy record); None when the owner cannot be named safely in
    /// one path component of at most NAME_MAX (255) bytes. Records of such
    /// owners (written by others) are found by scanning only.
    pub fn index_name(&self) -> Option<String> {
        use crate::cni::names::{interface_name_problem, is_valid_id};
        let ifname_ok = self.is_legacy() || interface_name_problem(&self.ifname).is_none();
        let name = format!("{}@{}", self.container_id, self.ifname);
        (is_valid_id(&self.container_id) && ifname_ok && name.len() <= 255).then_some(name)
    }

    /// The record content: `<containerID>\r\n<ifname>` (reference host-local).
    pub fn to_record(&self) -> String {
        if self.is_legacy() {
            self.container_id.clone()
        } else {
            format!("{}\r\n{}", self.container_id, self.ifname)
        }
    }

    /// Parse a record; a missing second line is a legacy record.
    pub fn from_record(content: &str) -> Owner {
        let content = content.trim();
        match content.split_once("\r\n") {
            Some((cid, ifname)) => Owner::new(cid.trim(), ifname.trim()),
            None => Owner::new(content, ""),
        }
    }
}

impl From<&Attachment> for Owner {
    fn from(a: &Attachment) -> Owner {
        Owner::new(a.container_id.clone(), a.ifname.clone())
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(by) = self.quarantined_by() {
            write!(
                f,
                "a quarantine: the address was found in use on the network ({by}); mactrunk-ipam release frees it"
            )
        } else if self.is_legacy() {
            write!(
                f,
                "container {} (legacy record, interface unknown)",
                self.container_id
            )
        } else {
            write!(
                f,
                "container {} interface {}",
                self.container_id, self.ifname
            )
        }
    }
}

/// One allocated address, as found in the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allocation {
    pub ip: IpAddr,
    pub owner: Owner,
    /// When the record was written (file mtime), if known.
    pub since: Option<SystemTime>,
}

/// The allocator's view of a store. All methods assume the caller holds the
/// store's lock (see module docs).
pub trait Store {
    /// Who holds `ip`, if anyone.
    fn holder(&mut self, ip: IpAddr) -> Result<Option<Owner>, StoreError>;
    /// Addresses held by `owner`, including legacy records of its container.
    /// Only addresses whose record exists and names the owner are returned.
    fn owned_by(&mut self, owner: &Owner) -> Result<Vec<IpAddr>, StoreError>;
    /// The network namespace `owner`'s addresses were given for (an opaque
    /// id made by the caller, e.g. nsfs `dev:ino`), when the store knows it.
    fn netns_of(&mut self, _owner: &Owner) -> Result<Option<String>, StoreError> {
        Ok(None)
    }
    /// Record `netns` for `owner` together with its next reservation (no
    /// write of its own: an owner that reserves nothing new keeps what is
    /// recorded).
    fn bind_netns(&mut self, _owner: &Owner, _netns: &str) {}
    /// Claim `ip` for `owner` without clobbering: `Ok(false)` if someone else
    /// holds it, `Ok(true)` if it is now (or already was) held by `owner`.
    fn reserve(&mut self, owner: &Owner, ip: IpAddr) -> Result<bool, StoreError>;
    /// Give back one address if `owner` holds it (exact record). `Ok(false)` if not.
    fn unreserve(&mut self, owner: &Owner, ip: IpAddr) -> Result<bool, StoreError>;
    /// Release everything `owner` holds (and legacy records of its container).
    fn release(&mut self, owner: &Owner) -> Result<Vec<IpAddr>, StoreError>;
    /// Hand `ip` from `owner` to the quarantine holder `by` (see
    /// [`Owner::quarantine`]) in one step: the record never disappears.
    /// `Ok(false)` if `owner` does not hold `ip`.
    fn quarantine(&mut self, owner: &Owner, ip: IpAddr, by: &Owner) -> Result<bool, StoreError>;
    /// The round-robin hint of a range set (a hint only: unreadable = None).
    fn last_reserved(&mut self, set: usize) -> Result<Option<IpAddr>, StoreError>;
    fn set_last_reserved(&mut self, set: usize, ip: IpAddr) -> Result<(), StoreError>;
    /// Every allocation (may scan the whole store: GC, STATUS, listing).
    fn all(&mut self) -> Result<Vec<Allocation>, StoreError>;
    /// Like `all`, but carries on past entries it cannot read and returns
    /// them as problems (GC reports them all).
    fn scan(&mut self) -> Result<(Vec<Allocation>, Vec<StoreError>), StoreError> {
        Ok((self.all()?, Vec::new()))
    }
    /// Drop index entries whose records are gone; returns how many were dropped.
    fn clean_index(&mut self) -> Result<usize, StoreError> {
        Ok(0)
    }
    /// Make every change so far durable.
    fn commit(&mut self) -> Result<(), StoreError>;
    /// A small side file of the store (the cluster IPAM's owned-block list
    /// and settings: a dot name no record scanner takes for an address).
    /// None when missing.
    fn read_meta(&mut self, _name: &str) -> Result<Option<String>, StoreError> {
        Ok(None)
    }
    /// Replace a side file whole and durably (file and directory fsynced).
    fn write_meta(&mut self, name: &str, _content: &str) -> Result<(), StoreError> {
        Err(StoreError::Corrupt {
            path: name.into(),
            problem: "this store keeps no side files".into(),
        })
    }
}

/// Failures of the store layer. Each maps to one CNI code (see `From`).
#[derive(Debug)]
pub enum StoreError {
    /// The lock was not acquired within the timeout (code 11).
    LockTimeout { dir: PathBuf, waited: Duration },
    /// A system call failed (code 5).
    Io {
        path: PathBuf,
        op: &'static str,
        source: io::Error,
    },
    /// A symlink or another unexpected file type where the store expects its
    /// own file or directory; never followed (code 5).
    Unsafe { path: PathBuf, problem: String },
    /// Store content we cannot make sense of (code 999).
    Corrupt { path: PathBuf, problem: String },
    /// An owner that cannot be stored safely (code 4: it comes from the environment).
    InvalidOwner(String),
}

impl StoreError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        StoreError::Io {
            path: path.into(),
            op,
            source,
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::LockTimeout { dir, waited } => write!(
                f,
                "IPAM store {} is locked by another process (waited {} ms); try again later",
                dir.display(),
                waited.as_millis()
            ),
            StoreError::Io { path, op, source } => {
                write!(f, "IPAM store: cannot {op} {}: {source}", path.display())
            }
            StoreError::Unsafe { path, problem } => {
                write!(f, "IPAM store: refusing {}: {problem}", path.display())
            }
            StoreError::Corrupt { path, problem } => {
                write!(f, "IPAM store: corrupt {}: {problem}", path.display())
            }
            StoreError::InvalidOwner(p) => write!(f, "CNI_CONTAINERID/CNI_IFNAME: {p}"),
        }
    }
}

impl std::error::Error for StoreError {}

impl From<FsError> for StoreError {
    fn from(e: FsError) -> StoreError {
        match e {
            FsError::Io { path, op, source } => StoreError::Io { path, op, source },
            FsError::Unsafe { path, problem } => StoreError::Unsafe { path, problem },
            FsError::LockTimeout { dir, waited } => StoreError::LockTimeout { dir, waited },
        }
    }
}

impl From<StoreError> for CniError {
    fn from(e: StoreError) -> CniError {
        let code = match &e {
            StoreError::LockTimeout { .. } => code::TRY_AGAIN_LATER,
            StoreError::Io { .. } | StoreError::Unsafe { .. } => code::IO,
            StoreError::Corrupt { .. } => code::INTERNAL,
            StoreError::InvalidOwner(_) => code::INVALID_ENV,
        };
        CniError::new(code, e.to_string())
    }
}

/// In-memory store for allocator tests. Counts `holder` calls so tests can
/// check that allocation stays O(1) when the pool is mostly free.
#[derive(Debug, Default, Clone)]
pub struct MemStore {
    pub ips: BTreeMap<IpAddr, Owner>,
    pub last: BTreeMap<usize, IpAddr>,
    pub holder_calls: u64,
    /// Make `reserve` of these addresses fail with an I/O error (rollback tests).
    pub fail_reserve: Vec<IpAddr>,
    pub netns: BTreeMap<Owner, String>,
    pub bound_netns: Option<(Owner, String)>,
    pub meta: BTreeMap<String, String>,
}

impl MemStore {
    pub fn new() -> MemStore {
        MemStore::default()
    }
}

impl Store for MemStore {
    fn holder(&mut self, ip: IpAddr) -> Result<Option<Owner>, StoreError> {
        self.holder_calls += 1;
        Ok(self.ips.get(&ip).cloned())
    }

    fn owned_by(&mut self, owner: &Owner) -> Result<Vec<IpAddr>, StoreError> {
        Ok(self
            .ips
            .iter()
            .filter(|(_, o)| o.matches(owner))
            .map(|(ip, _)| *ip)
            .collect())
    }

    fn netns_of(&mut self, owner: &Owner) -> Result<Option<String>, StoreError> {
        Ok(self.netns.get(owner).cloned())
    }

    fn bind_netns(&mut self, owner: &Owner, netns: &str) {
        self.bound_netns = Some((owner.clone(), netns.to_string()));
    }

    fn reserve(&mut self, owner: &Owner, ip: IpAddr) -> Result<bool, StoreError> {
        if let Some((o, id)) = &self.bound_netns
            && o == owner
        {
            self.netns.insert(o.clone(), id.clone());
        }
        if self.fail_reserve.contains(&ip) {
            return Err(StoreError::io(
                "write",
                ip.to_string(),
                io::Error::other("injected failure"),
            ));
        }
        match self.ips.get(&ip) {
            Some(o) => Ok(o == owner),
            None => {
                self.ips.insert(ip, owner.clone());
                Ok(true)
            }
        }
    }

    fn unreserve(&mut self, owner: &Owner, ip: IpAddr) -> Result<bool, StoreError> {
        if self.ips.get(&ip) == Some(owner) {
            self.ips.remove(&ip);
            Ok(true)
        } else {
            Ok(false)
        }
    }

    fn quarantine(&mut self, owner: &Owner, ip: IpAddr, by: &Owner) -> Result<bool, StoreError> {
        if self.ips.get(&ip) != Some(owner) {
            return Ok(false);
        }
        self.ips.insert(ip, by.clone());
        Ok(true)
    }

    fn release(&mut self, owner: &Owner) -> Result<Vec<IpAddr>, StoreError> {
        let gone: Vec<IpAddr> = self
            .ips
            .iter()
            .filter(|(_, o)| o.matches(owner))
            .map(|(ip, _)| *ip)
            .collect();
        for ip in &gone {
            self.ips.remove(ip);
        }
        self.netns.remove(owner);
        Ok(gone)
    }

    fn last_reserved(&mut self, set: usize) -> Result<Option<IpAddr>, StoreError> {
        Ok(self.last.get(&set).copied())
    }

    fn set_last_reserved(&mut self, set: usize, ip: IpAddr) -> Result<(), StoreError> {
        self.last.insert(set, ip);
        Ok(())
    }

    fn all(&mut self) -> Result<Vec<Allocation>, StoreError> {
        Ok(self
            .ips
            .iter()
            .map(|(ip, o)| Allocation {
                ip: *ip,
                owner: o.clone(),
                since: None,
            })
            .collect())
    }

    fn commit(&mut self) -> Result<(), StoreError> {
        Ok(())
    }

    fn read_meta(&mut self, name: &str) -> Result<Option<String>, StoreError> {
        Ok(self.meta.get(name).cloned())
    }

    fn write_meta(&mut self, name: &str, content: &str) -> Result<(), StoreError> {
        self.meta.insert(name.to_string(), content.to_string());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_format() {
        let o = Owner::new("cid", "eth0");
        assert_eq!(o.to_record(), "cid\r\neth0");
        assert_eq!(Owner::from_record("cid\r\neth0"), o);
        assert_eq!(Owner::from_record("cid\r\neth0\n"), o);
        assert_eq!(Owner::from_record("cid"), Owner::new("cid", ""));
        assert_eq!(Owner::from_record("cid\n"), Owner::new("cid", ""));
        assert_eq!(Owner::from_record(""), Owner::new("", ""));
        assert!(Owner::new("cid", "").matches(&o));
        assert!(!Owner::new("cid2", "").matches(&o));
        assert!(!Owner::new("cid", "eth1").matches(&o));
    }

    #[test]
    fn quarantine_owners() {
        let q = Owner::quarantine("52:54:00:12:34:56");
        assert_eq!(q.to_record(), "conflict:52:54:00:12:34:56");
        assert_eq!(Owner::from_record(&q.to_record()), q);
        assert_eq!(q.quarantined_by(), Some("52:54:00:12:34:56"));
        assert!(q.is_quarantine() && q.is_legacy());
        // Never an attachment: not a valid owner, matches none.
        assert!(q.validate().is_err());
        assert!(q.index_name().is_none());
        assert!(!q.matches(&Owner::new("conflict", "eth0")));
        assert!(!Owner::new("c1", "eth0").is_quarantine());
        assert!(!Owner::new("conflict:x", "eth0").is_quarantine());
        assert!(q.to_string().contains("52:54:00:12:34:56"), "{q}");
        let mut m = MemStore::new();
        let o = Owner::new("c1", "eth0");
        let ip: IpAddr = "10.0.0.2".parse().unwrap();
        assert!(!m.quarantine(&o, ip, &q).unwrap(), "not held");
        m.reserve(&o, ip).unwrap();
        assert!(m.quarantine(&o, ip, &q).unwrap());
        assert_eq!(m.holder(ip).unwrap(), Some(q));
        assert!(m.owned_by(&o).unwrap().is_empty());
    }

    #[test]
    fn owner_validation() {
        for (cid, ifname) in [
            ("", "eth0"),
            ("a/b", "eth0"),
            ("a@b", "eth0"),
            ("..", "eth0"),
            ("-x", "eth0"),
            ("abc", ""),
            ("abc", "a/b"),
            ("abc", "a\nb"),
            ("abc", "a b"),
        ] {
            let e = Owner::new(cid, ifname).validate().unwrap_err();
            assert_eq!(
                CniError::from(e).code,
                code::INVALID_ENV,
                "{cid:?} {ifname:?}"
            );
        }
        assert!(Owner::new("a".repeat(300), "eth0").validate().is_err());
        Owner::new("abc_1.2-3", "eth0@x").validate().unwrap();
    }

    #[test]
    fn error_codes() {
        let cases: [(StoreError, u32, &str); 4] = [
            (
                StoreError::LockTimeout {
                    dir: "/d/net".into(),
                    waited: Duration::from_millis(5),
                },
                11,
                "/d/net",
            ),
            (
                StoreError::io("open", "/d/net/10.0.0.2", io::Error::other("x")),
                5,
                "/d/net/10.0.0.2",
            ),
            (
                StoreError::Unsafe {
                    path: "/d/net/lock".into(),
                    problem: "is a symlink".into(),
                },
                5,
                "/d/net/lock",
            ),
            (
                StoreError::Corrupt {
                    path: "/d/net/owners".into(),
                    problem: "x".into(),
                },
                999,
                "/d/net/owners",
            ),
        ];
        for (e, c, needle) in cases {
            let e = CniError::from(e);
            assert_eq!(e.code, c);
            assert!(e.msg.contains(needle), "{}", e.msg);
        }
        let e = CniError::from(StoreError::LockTimeout {
            dir: "/d".into(),
            waited: Duration::ZERO,
        });
        assert!(e.msg.contains("try again later"));
    }
}
