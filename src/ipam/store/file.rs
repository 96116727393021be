//! The on-disk store: the reference host-local layout plus an owner index.
//!
//! ```text
//! <dataDir>/<name>/
//!   lock                      flock, held from open() until drop
//!   10.0.0.2                  "<containerID>\r\n<ifname>" (legacy: "<containerID>")
//!   last_reserved_ip.<set>    round-robin hint
//!   owners/<cid>@<ifname>     index: one IP per line (never trusted alone)
//!   owners/.complete          the index stamp (below); dirs written by host-local have none
//!   .tmp/                     temp files; anything left there is a crash leftover
//! ```
//!
//! Write order of a reservation: index (temp + rename), then the IP record
//! (temp + fsync + `link()`: atomic and never clobbers), then the hint
//! (overwritten in place); `commit` fsyncs the store directory. A release
//! removes the record before its index entry. So every record of ours is
//! listed in its owner's index at every instant, whatever a kill -9
//! interrupts; an index entry without record is harmless (readers check the
//! record). Nothing is opened through a symlink: a symlink where the store
//! expects its own file is an error.
//!
//! # When the index can be trusted: the stamp
//!
//! ADD and DEL look an owner up in `owners/` only (O(1) in the store size);
//! a missing index file means "holds nothing". That is only true if no
//! record was written, and no index file lost, behind the index's back: a
//! power loss (the index is not fsynced, by design: it costs an fsync per
//! ADD), the reference host-local or a person creating or removing records,
//! someone removing an index file. `owners/.complete` therefore holds a
//! stamp, rewritten in place (never renamed, so the directories' times do not
//! move) under the lock after every change:
//!
//! ```text
//! mactrunk owner-index stamp 1
//! boot <the kernel's boot_id>
//! dir <dev> <ino> <mtime s.ns> <ctime s.ns>      of the store directory
//! owners <dev> <ino> <mtime s.ns> <ctime s.ns>   of owners/
//! hint <set> <FNV-1a of last_reserved_ip.<set>>  one per hint
//! ```
//!
//! `open` compares it with the store as it is (a few stats and two small
//! reads). Any difference (a reboot, hence any power loss; an entry created,
//! removed or renamed in either directory, even with its mtime set back,
//! since ctime cannot be; a rewritten hint; a kill -9 between a change and
//! the stamp; a torn, empty or missing stamp) means: scan every record once,
//! make the index exact (rewriting only the files that differ) and stamp it.
//! ADD of a new container, DEL, repeated DEL therefore never scan.
//!
//! File times come from a clock that advances once a tick (1-10 ms) on
//! kernels before 6.13 (no multigrain timestamps): a writer that takes the
//! lock after us and creates a record within the tick of our last change
//! would leave the directory times as stamped. So before stamping, a
//! directory whose mtime is not older than the current tick gets its mtime
//! set 1 ns before the tick (one `utimensat`): any later change stamps the
//! tick's time or a later one and shows. As a second signal the stamp
//! fingerprints the `last_reserved_ip.*` hints, which the reference
//! host-local rewrites (O_TRUNC, no directory change) on every reservation.
//!
//! Residual cases, accepted and documented in the README:
//! - The realtime clock stepped back (NTP step, settimeofday) onto exactly
//!   the stamped nanosecond, or a filesystem whose time granularity is
//!   coarser than the tick (1 s on ext4 with 128-byte inodes, FAT) and a
//!   change within the same granule, not by host-local; or someone who
//!   changes the store and sets the directory's mtime back to the stamped
//!   value within the clock tick of the stamp (ctime is then the same too).
//!   Until the next reboot or change that trips the stamp, that owner's DEL
//!   leaves the record (GC releases it) and its retried ADD may take a
//!   second address.
//! - A record or index file edited in place (same name, new content) does
//!   not change any directory time: readers still check records, so an
//!   index entry pointing to someone else's record is ignored, but an owner
//!   written into an existing record by hand is not indexed. Remove and
//!   recreate files instead of editing them.
//! - Without a readable /proc the boot id is `unknown`: a power loss is then
//!   seen only if it left the directory times different from the stamp.
//!
//! Read-only users ([`StoreReader`]: the admin tool's listings) never write
//! the stamp; they do not use the index at all.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Allocation, Owner, Store, StoreError};
use crate::sys::fs::{
    Kind, boot_id, ensure_dir, fsync_dir, is_eloop, kind, lock_file, nofollow_flags, read_regular,
    replace_file, shared_lock, symlink_error,
};

const OWNERS: &str = "owners";
const TMP: &str = ".tmp";
const COMPLETE: &str = ".complete";
const LAST_RESERVED: &str = "last_reserved_ip.";
/// First line of the index stamp in `owners/.complete`.
const STAMP_MAGIC: &str = "mactrunk owner-index stamp 1";
/// Round-robin hints the stamp vouches for, at most.
const MAX_HINTS: usize = 64;
/// Records are tiny; never read more than this from one file.
const MAX_RECORD: u64 = 4096;
/// Side files (the cluster IPAM's block list) stay far below this.
const MAX_META: u64 = 1 << 20;

/// A locked store directory. The lock is released when this is dropped.
#[derive(Debug)]
pub struct FileStore {
    dir: PathBuf,
    owners: PathBuf,
    tmp: PathBuf,
    /// The open `lock` file: flock is released when the descriptor closes.
    _lock: File,
    /// Changes not yet made durable by `commit` (fsync of the directory).
    dirty: bool,
    /// Changes since the index stamp was last written (see [`FileStore::write_stamp`]).
    stamp_stale: bool,
    /// The round-robin hints the stamp vouches for: name suffix -> fingerprint.
    hints: BTreeMap<String, String>,
    /// Full scans of the directory done through this handle (index repair,
    /// `scan`, `all`): ADD and DEL on a trusted index do none.
    full_scans: u32,
    /// Index entries the repair at open dropped (their records were gone);
    /// reported by the next `clean_index`.
    dropped_by_repair: usize,
    /// The netns recorded with the next index write of this owner.
    bound_netns: Option<(Owner, String)>,
}

/// Read a small regular file without following symlinks. `None` if missing.
fn read_small(path: &Path) -> Result<Option<String>, StoreError> {
    Ok(read_regular(path, MAX_RECORD)?.map(|b| String::from_utf8_lossy(&b).into_owned()))
}

/// Parse a directory entry name as an address record name (canonical form only).
fn record_name(name: &str) -> Option<IpAddr> {
    let ip: IpAddr = name.parse().ok()?;
    (ip.to_string() == name).then_some(ip)
}

/// The `netns <id>` line of an index file: the network namespace the
/// owner's addresses were given for (see [`Store::netns_of`]).
const NETNS_PREFIX: &str = "netns ";

fn parse_index_netns(content: &str) -> Option<String> {
    content
        .lines()
        .find_map(|l| l.strip_prefix(NETNS_PREFIX))
        .map(|id| id.trim().to_string())
        .filter(|id| !id.is_empty())
}

fn parse_index(content: &str) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = Vec::new();
    for line in content.lines() {
        if let Ok(ip) = line.trim().parse::<IpAddr>()
            && !out.contains(&ip)
        {
            out.push(ip);
        }
    }
    out
}

/// Device, inode, mtime and ctime (ns) of a directory: any entry created,
/// removed or renamed in it changes mtime and ctime, and ctime cannot be set
/// back by anyone (a restored mtime still changes it).
fn dir_identity(path: &Path) -> Result<String, StoreError> {
    use std::os::unix::fs::MetadataExt;
    let m = fs::symlink_metadata(path).map_err(|e| StoreError::io("stat", path, e))?;
    Ok(format!(
        "{} {} {}.{:09} {}.{:09}",
        m.dev(),
        m.ino(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec()
    ))
}

/// Make sure that any later change in `dir` moves its mtime away from the
/// one the stamp records. File times come from a clock that advances once a
/// tick (1-10 ms) on kernels without multigrain timestamps (before 6.13), so
/// an entry created after the stamp but within the tick of our last change
/// would leave the mtime as stamped. If the mtime is not older than the
/// current tick, it is set to 1 ns before the tick: any later change stamps
/// the tick's time or a later one, hence a different mtime. One utimensat
/// when the directory changed within this tick; nothing otherwise. Best
/// effort: if it cannot be done, only that same-tick window stays open.
fn settle_mtime(dir: &Path) {
    use nix::sys::stat::{UtimensatFlags, utimensat};
    use nix::sys::time::TimeSpec;
    use std::os::unix::fs::MetadataExt;
    let Ok(m) = fs::symlink_metadata(dir) else {
        return;
    };
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into memory we own.
    if unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut now) } != 0
        || (m.mtime(), m.mtime_nsec()) < (now.tv_sec, now.tv_nsec)
    {
        return;
    }
    let before = if now.tv_nsec > 0 {
        TimeSpec::new(now.tv_sec, now.tv_nsec - 1)
    } else {
        TimeSpec::new(now.tv_sec - 1, 999_999_999)
    };
    let _ = utimensat(
        nix::fcntl::AT_FDCWD,
        dir,
        &TimeSpec::UTIME_OMIT,
        &before,
        UtimensatFlags::NoFollowSymlink,
    );
}

/// Hint names the stamp records: `last_reserved_ip.<suffix>` with a short,
/// plain suffix (host-local uses the range set index).
fn hint_suffix_ok(suffix: &str) -> bool {
    !suffix.is_empty()
        && suffix.len() <= 32
        && suffix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}

/// FNV-1a (64 bit) of a hint's content: a content rewritten by a foreign
/// writer within the same clock tick as our last change still shows.
fn fingerprint(content: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in content {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

fn hint_fingerprint(dir: &Path, suffix: &str) -> String {
    match read_regular(&dir.join(format!("{LAST_RESERVED}{suffix}")), MAX_RECORD) {
        Ok(Some(content)) => fingerprint(&content),
        Ok(None) => "missing".into(),
        Err(_) => "unreadable".into(),
    }
}

/// Every address record in `dir`, sorted, plus the entries that could not be
/// read; `other` sees the names of the entries that are not records.
fn scan_dir(
    dir: &Path,
    mut other: impl FnMut(&str),
) -> Result<(Vec<Allocation>, Vec<StoreError>), StoreError> {
    let entries = fs::read_dir(dir).map_err(|e| StoreError::io("list", dir, e))?;
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for entry in entries {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                problems.push(StoreError::io("list", dir, e));
                continue;
            }
        };
        let name = entry.file_name();
        let Some(ip) = name.to_str().and_then(record_name) else {
            // lock, last_reserved_ip.*, owners/, .tmp/, foreign files
            if let Some(n) = name.to_str() {
                other(n);
            }
            continue;
        };
        let path = entry.path();
        let meta = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                problems.push(StoreError::io("stat", path, e));
                continue;
            }
        };
        if meta.file_type().is_symlink() {
            problems.push(symlink_error(&path).into());
            continue;
        }
        if !meta.is_file() {
            problems.push(StoreError::Unsafe {
                path,
                problem: "is not a regular file".into(),
            });
            continue;
        }
        match read_small(&path) {
            Ok(Some(content)) => out.push(Allocation {
                ip,
                owner: Owner::from_record(&content),
                since: meta.modified().ok(),
            }),
            Ok(None) => {}
            Err(e) => problems.push(e),
        }
    }
    out.sort_by_key(|a| a.ip);
    Ok((out, problems))
}

/// Who else could plant files in the store `dir`, or swap it inside its
/// parent (`ipam.dataDir`)? Both must be real directories owned by us or
/// root; the store must not be writable by group or others, the dataDir only
/// if it is sticky (like /tmp: others cannot rename our entries there).
/// Ancestors above the dataDir are not checked. A dataDir that does not exist
/// yet passes (it is created 0700).
fn check_data_dir(dir: &Path) -> Result<(), StoreError> {
    let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) else {
        return Ok(());
    };
    let meta = match fs::symlink_metadata(parent) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StoreError::io("stat", parent, e)),
    };
    if meta.file_type().is_symlink() {
        return Err(StoreError::Unsafe {
            path: parent.to_path_buf(),
            problem: "ipam.dataDir is a symlink (give the real directory)".into(),
        });
    }
    check_owner_mode(parent, &meta, "ipam.dataDir ", true)
}

fn check_store_dir(dir: &Path) -> Result<(), StoreError> {
    let meta = fs::symlink_metadata(dir).map_err(|e| StoreError::io("stat", dir, e))?;
    check_owner_mode(dir, &meta, "", false)
}

fn check_owner_mode(
    path: &Path,
    meta: &fs::Metadata,
    what: &str,
    sticky_ok: bool,
) -> Result<(), StoreError> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    let problem = if meta.uid() != euid && meta.uid() != 0 {
        format!(
            "{what}is owned by uid {}, not by this user or root",
            meta.uid()
        )
    } else if meta.mode() & 0o022 != 0 && !(sticky_ok && meta.mode() & libc::S_ISVTX != 0) {
        format!(
            "{what}is writable by group or others (mode {:04o}): anyone could swap or plant entries; the IPAM store must be private (chmod go-w)",
            meta.mode() & 0o7777
        )
    } else {
        return Ok(());
    };
    Err(StoreError::Unsafe {
        path: path.to_path_buf(),
        problem,
    })
}

impl FileStore {
    /// Open (creating it 0700 if missing) and lock the store directory `dir`,
    /// waiting at most `lock_timeout` for the lock. With the lock held, crash
    /// leftovers in `.tmp/` are removed and the owner index is built if this
    /// directory has none yet (e.g. written by the reference host-local).
    pub fn open(dir: &Path, lock_timeout: Duration) -> Result<FileStore, StoreError> {
        check_data_dir(dir)?;
        match kind(dir)? {
            Kind::Dir => {}
            Kind::Missing => {
                DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .map_err(|e| StoreError::io("create directory", dir, e))?;
                ensure_dir(dir)?;
            }
            Kind::Symlink => return Err(symlink_error(dir).into()),
            Kind::File | Kind::Other => {
                return Err(StoreError::Unsafe {
                    path: dir.to_path_buf(),
                    problem: "is not a directory".into(),
                });
            }
        }
        check_store_dir(dir)?;
        let lock = lock_file(dir, lock_timeout)?;
        FileStore::with_lock(dir, lock)
    }

    /// The store `dir` whose lock `lock` the caller already holds: the
    /// cluster IPAM's etcd helper works on the store of the plugin that
    /// started it, under the plugin's lock (the descriptor is inherited, so
    /// both share one flock). The same checks as [`FileStore::open`].
    pub fn open_locked(dir: &Path, lock: File) -> Result<FileStore, StoreError> {
        check_data_dir(dir)?;
        match kind(dir)? {
            Kind::Dir => {}
            Kind::Symlink => return Err(symlink_error(dir).into()),
            _ => {
                return Err(StoreError::Unsafe {
                    path: dir.to_path_buf(),
                    problem: "is not a directory".into(),
                });
            }
        }
        check_store_dir(dir)?;
        FileStore::with_lock(dir, lock)
    }

    /// The lock file's descriptor (held while this store lives).
    pub fn lock_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self._lock.as_fd()
    }

    fn with_lock(dir: &Path, lock: File) -> Result<FileStore, StoreError> {
        let mut store = FileStore {
            dir: dir.to_path_buf(),
            owners: dir.join(OWNERS),
            tmp: dir.join(TMP),
            _lock: lock,
            dirty: false,
            stamp_stale: false,
            hints: BTreeMap::new(),
            full_scans: 0,
            dropped_by_repair: 0,
            bound_netns: None,
        };
        store.clean_tmp()?;
        store.ensure_index()?;
        Ok(store)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn clean_tmp(&mut self) -> Result<(), StoreError> {
        ensure_dir(&self.tmp)?;
        let entries = fs::read_dir(&self.tmp).map_err(|e| StoreError::io("list", &self.tmp, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| StoreError::io("list", &self.tmp, e))?;
            let p = entry.path();
            let res = match entry.file_type() {
                Ok(t) if t.is_dir() => fs::remove_dir_all(&p),
                _ => fs::remove_file(&p),
            };
            match res {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(StoreError::io("remove leftover", p, e)),
            }
        }
        Ok(())
    }

    /// Something in the store changed: the directory needs an fsync before
    /// `commit` returns, and the stamp must be rewritten before the lock goes.
    fn touched(&mut self) {
        self.dirty = true;
        self.stamp_stale = true;
    }

    /// Can an ADD write here now? Writes, fsyncs and removes a record-sized
    /// file in `.tmp/`, as a reservation would: a full data area, no free
    /// inode, a read-only mount or an I/O error show as the error ADD would
    /// get (blocks reserved for root count when we are root, as they do for
    /// the ADD). For STATUS, which is rare: not on any hot path.
    pub fn probe_write(&self) -> Result<(), StoreError> {
        let p = self.tmp.join(format!("probe.{}", std::process::id()));
        let res = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(nofollow_flags() | libc::O_NONBLOCK)
            .open(&p)
            .map_err(|e| StoreError::io("create", &p, e))
            .and_then(|mut f| {
                // A long container ID, CRLF and an interface name.
                f.write_all(&[b'0'; 96])
                    .map_err(|e| StoreError::io("write", &p, e))?;
                f.sync_all().map_err(|e| StoreError::io("fsync", &p, e))
            });
        match fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return res.and(Err(StoreError::io("remove", &p, e))),
        }
        res
    }

    /// How many full scans of the directory this handle has done (diagnostics
    /// and tests: ADD and DEL on a trusted index do none).
    pub fn full_scans(&self) -> u32 {
        self.full_scans
    }

    /// Trust the owner index if the stamp in `owners/.complete` still
    /// describes the store as it is; otherwise scan once and repair it.
    fn ensure_index(&mut self) -> Result<(), StoreError> {
        ensure_dir(&self.owners)?;
        let path = self.owners.join(COMPLETE);
        match kind(&path)? {
            Kind::File => {
                if !self.stamp_matches()? {
                    self.repair_index()?;
                }
                Ok(())
            }
            Kind::Missing => self.repair_index(),
            Kind::Symlink => Err(symlink_error(&path).into()),
            Kind::Dir | Kind::Other => Err(StoreError::Corrupt {
                path,
                problem: "is not a regular file".into(),
            }),
        }
    }

    /// Does `owners/.complete` hold exactly the stamp this store would get
    /// now? Loads the hints it vouches for into `self.hints` on the way.
    fn stamp_matches(&mut self) -> Result<bool, StoreError> {
        let Some(text) = read_small(&self.owners.join(COMPLETE))? else {
            return Ok(false);
        };
        let mut lines = text.lines();
        if lines.next() != Some(STAMP_MAGIC) {
            return Ok(false);
        }
        let mut hints = BTreeMap::new();
        for line in lines {
            if let Some(rest) = line.strip_prefix("hint ") {
                let Some((suffix, _)) = rest.split_once(' ') else {
                    return Ok(false);
                };
                if !hint_suffix_ok(suffix) || hints.len() >= MAX_HINTS {
                    return Ok(false);
                }
                hints.insert(suffix.to_string(), hint_fingerprint(&self.dir, suffix));
            }
        }
        self.hints = hints;
        Ok(self.stamp_content()? == text)
    }

    /// The stamp: boot id, identity and times of the store directory and of
    /// owners/ (as they are now), and the fingerprints of the hints.
    fn stamp_content(&self) -> Result<String, StoreError> {
        let mut s = format!(
            "{STAMP_MAGIC}\nboot {}\ndir {}\nowners {}\n",
            boot_id(),
            dir_identity(&self.dir)?,
            dir_identity(&self.owners)?
        );
        for (suffix, fp) in &self.hints {
            s.push_str(&format!("hint {suffix} {fp}\n"));
        }
        Ok(s)
    }

    /// Rewrite the stamp in place (never by rename: that would change the
    /// mtime of owners/ it records). Called with the lock held, after the
    /// last change. Not fsynced: after a power loss the boot id differs anyway.
    fn write_stamp(&mut self) -> Result<(), StoreError> {
        let path = self.owners.join(COMPLETE);
        // Opened (maybe created) first: a creation changes owners/' mtime.
        let f = open_in_place(&path)?;
        settle_mtime(&self.dir);
        settle_mtime(&self.owners);
        let content = self.stamp_content()?;
        overwrite(&f, &path, content.as_bytes())?;
        self.stamp_stale = false;
        Ok(())
    }

    /// Scan every record once and make the index exact: every record of an
    /// indexable owner listed in its owner's file, no entry without its
    /// record; only the files that differ are rewritten. Then stamp it.
    fn repair_index(&mut self) -> Result<(), StoreError> {
        self.full_scans += 1;
        let mut hint_names = BTreeSet::new();
        // Unreadable entries cannot be indexed; GC reports them.
        let (all, _problems) = scan_dir(&self.dir, |name| {
            if let Some(suffix) = name.strip_prefix(LAST_RESERVED)
                && hint_suffix_ok(suffix)
                && hint_names.len() < MAX_HINTS
            {
                hint_names.insert(suffix.to_string());
            }
        })?;
        let mut want: BTreeMap<Owner, BTreeSet<IpAddr>> = BTreeMap::new();
        for a in all {
            // A record of an owner we cannot name (empty, or with '/'):
            // not indexable; GC still finds it by scanning.
            if a.owner.index_name().is_some() {
                want.entry(a.owner).or_default().insert(a.ip);
            }
        }
        let entries =
            fs::read_dir(&self.owners).map_err(|e| StoreError::io("list", &self.owners, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| StoreError::io("list", &self.owners, e))?;
            let name = entry.file_name();
            let Some((cid, ifname)) = name.to_str().and_then(|n| n.split_once('@')) else {
                continue; // .complete or foreign
            };
            let owner = Owner::new(cid, ifname);
            if owner.index_name().is_none() {
                continue;
            }
            let should = want.remove(&owner).unwrap_or_default();
            match self.read_index(&owner) {
                Ok(have) => {
                    let have: BTreeSet<IpAddr> = have.into_iter().collect();
                    if have != should {
                        self.dropped_by_repair += have.difference(&should).count();
                        self.write_index(&owner, &should.into_iter().collect::<Vec<_>>())?;
                    }
                }
                // Not ours (a symlink, a FIFO, ...): replaced by rename when
                // the owner has records, else left for that owner's own
                // ADD or DEL to refuse, naming it.
                Err(_) if !should.is_empty() => {
                    self.write_index(&owner, &should.into_iter().collect::<Vec<_>>())?;
                }
                Err(_) => {}
            }
        }
        for (owner, ips) in want {
            self.write_index(&owner, &ips.into_iter().collect::<Vec<_>>())?;
        }
        self.hints = hint_names
            .into_iter()
            .map(|suffix| {
                let fp = hint_fingerprint(&self.dir, &suffix);
                (suffix, fp)
            })
            .collect();
        self.write_stamp()
    }

    /// A side file: a dot name of one component (never an address record).
    fn meta_path(&self, name: &str) -> Result<PathBuf, StoreError> {
        if !name.starts_with('.')
            || name.contains('/')
            || name == "."
            || name == ".."
            || name == TMP
        {
            return Err(StoreError::Corrupt {
                path: self.dir.join(name),
                problem: "not a side file name".into(),
            });
        }
        Ok(self.dir.join(name))
    }

    fn ip_path(&self, ip: IpAddr) -> PathBuf {
        self.dir.join(ip.to_string())
    }

    /// `owners/<cid>@<ifname>`; None for an owner whose name would not be a
    /// single safe path component (such owners have no index: GC scans).
    fn index_path(&self, owner: &Owner) -> Option<PathBuf> {
        owner.index_name().map(|n| self.owners.join(n))
    }

    fn read_index(&self, owner: &Owner) -> Result<Vec<IpAddr>, StoreError> {
        let Some(path) = self.index_path(owner) else {
            return Ok(Vec::new());
        };
        Ok(read_small(&path)?
            .map(|c| parse_index(&c))
            .unwrap_or_default())
    }

    /// Replace the owner's index (temp + fsync + rename); remove it if empty.
    fn write_index(&mut self, owner: &Owner, ips: &[IpAddr]) -> Result<(), StoreError> {
        let Some(dst) = self.index_path(owner) else {
            return if ips.is_empty() {
                Ok(())
            } else {
                Err(StoreError::InvalidOwner(format!(
                    "{owner}: cannot be used as an index file name"
                )))
            };
        };
        if ips.is_empty() {
            return match fs::remove_file(&dst) {
                Ok(()) => {
                    self.touched();
                    Ok(())
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(StoreError::io("remove", dst, e)),
            };
        }
        self.touched();
        let netns = match &self.bound_netns {
            Some((o, id)) if o == owner => Some(id.clone()),
            // Kept across rewrites of the owner's addresses.
            _ => read_small(&dst)
                .ok()
                .flatten()
                .and_then(|c| parse_index_netns(&c)),
        };
        let mut content = String::new();
        for ip in ips {
            content.push_str(&ip.to_string());
            content.push('\n');
        }
        if let Some(id) = netns {
            content.push_str(NETNS_PREFIX);
            content.push_str(&id);
            content.push('\n');
        }
        // Not fsynced: the index is a lookup aid that readers check against
        // the records. rename() keeps it whole across kill -9; after a power
        // loss a missing or empty index only means the owner's retry or GC
        // finds the record by itself. The records are what is fsynced.
        let tmp = self.tmp.join(format!("index.{}", std::process::id()));
        Ok(replace_file(&tmp, &dst, content.as_bytes(), false)?)
    }

    /// Write a file in `.tmp/` (0600, no symlink following), optionally fsynced.
    fn write_tmp(&self, name: &str, content: &[u8], sync: bool) -> Result<PathBuf, StoreError> {
        let p = self.tmp.join(name);
        let mut f = match OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(nofollow_flags())
            .open(&p)
        {
            Ok(f) => f,
            Err(e) if is_eloop(&e) => return Err(symlink_error(&p).into()),
            Err(e) => return Err(StoreError::io("create", &p, e)),
        };
        f.write_all(content)
            .map_err(|e| StoreError::io("write", &p, e))?;
        if sync {
            f.sync_all().map_err(|e| StoreError::io("fsync", &p, e))?;
        }
        Ok(p)
    }

    fn remove_record(&mut self, ip: IpAddr) -> Result<(), StoreError> {
        let p = self.ip_path(ip);
        self.touched();
        match fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io("remove", p, e)),
        }
    }

    /// Remove every record of `key` (exact owner of the records) listed in its index, then the index.
    fn release_key(&mut self, key: &Owner) -> Result<Vec<IpAddr>, StoreError> {
        let mut released = Vec::new();
        let mut first_err = None;
        for ip in self.read_index(key)? {
            match self.holder(ip) {
                Ok(Some(h)) if h == *key => match self.remove_record(ip) {
                    Ok(()) => released.push(ip),
                    Err(e) => {
                        first_err.get_or_insert(e);
                    }
                },
                Ok(_) => {}
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_err {
            return Err(e);
        }
        self.write_index(key, &[])?;
        Ok(released)
    }
}

/// A store opened for reading only (the admin tool's listings, `gc
/// --dry-run`, `usage`): it creates nothing (no store directory, `lock`,
/// `owners/` or `.tmp/`), cleans nothing, builds no index and never writes
/// the stamp, so it can be pointed at any directory. While it lives it holds
/// a shared flock on `lock` if that file exists (opened read-only,
/// non-blocking), so no writer of ours or of host-local changes the store
/// under it; a directory without one is read as it is. The same safety
/// checks as [`FileStore::open`] apply: a symlinked, foreign-owned or
/// group/world-writable store (or dataDir) is refused.
#[derive(Debug)]
pub struct StoreReader {
    dir: PathBuf,
    _lock: Option<File>,
}

impl StoreReader {
    pub fn open(dir: &Path, lock_timeout: Duration) -> Result<StoreReader, StoreError> {
        check_data_dir(dir)?;
        match kind(dir)? {
            Kind::Dir => {}
            Kind::Missing => {
                return Err(StoreError::io(
                    "open",
                    dir,
                    io::Error::from(io::ErrorKind::NotFound),
                ));
            }
            Kind::Symlink => return Err(symlink_error(dir).into()),
            Kind::File | Kind::Other => {
                return Err(StoreError::Unsafe {
                    path: dir.to_path_buf(),
                    problem: "is not a directory".into(),
                });
            }
        }
        check_store_dir(dir)?;
        let lock = shared_lock(dir, lock_timeout)?;
        Ok(StoreReader {
            dir: dir.to_path_buf(),
            _lock: lock,
        })
    }

    /// A side file of the store (see `Store::read_meta`); None if missing.
    pub fn read_meta(&self, name: &str) -> Result<Option<String>, StoreError> {
        if !name.starts_with('.') || name.contains('/') {
            return Ok(None);
        }
        let p = self.dir.join(name);
        Ok(crate::sys::fs::read_regular(&p, MAX_META)?
            .map(|b| String::from_utf8_lossy(&b).into_owned()))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every allocation, plus the entries that could not be read.
    pub fn scan(&self) -> Result<(Vec<Allocation>, Vec<StoreError>), StoreError> {
        scan_dir(&self.dir, |_| {})
    }

    /// Every allocation; like [`Store::all`] of a [`FileStore`].
    pub fn all(&self) -> Result<Vec<Allocation>, StoreError> {
        all_of(self.scan()?)
    }

    /// The network namespace id recorded for `owner` (see
    /// [`Store::netns_of`]); None when none is recorded or the index entry
    /// cannot be read (never followed through a symlink).
    pub fn netns_of(&self, owner: &Owner) -> Option<String> {
        let path = self.dir.join(OWNERS).join(owner.index_name()?);
        read_small(&path)
            .ok()
            .flatten()
            .and_then(|c| parse_index_netns(&c))
    }
}

/// Unsafe entries (symlinks, directories named like an address) are not
/// allocations; anything else unreadable is an error.
fn all_of(
    (out, problems): (Vec<Allocation>, Vec<StoreError>),
) -> Result<Vec<Allocation>, StoreError> {
    match problems
        .into_iter()
        .find(|p| !matches!(p, StoreError::Unsafe { .. }))
    {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// Open a small file of the store for an in-place rewrite (no rename, so no
/// ext4 auto_da_alloc flush and no change to the directory's mtime), creating
/// it 0600 if missing. Whatever sits at `path` and is not a regular file with
/// exactly one link (a planted symlink, hard link, FIFO, device node) is
/// unlinked first: removing our name never touches the other name's content,
/// and no device or FIFO is ever opened. A directory there is an error.
fn open_in_place(path: &Path) -> Result<File, StoreError> {
    use std::os::unix::fs::MetadataExt;
    let ours = |m: &fs::Metadata| m.file_type().is_file() && m.nlink() == 1;
    match fs::symlink_metadata(path) {
        Ok(m) if ours(&m) => {}
        Ok(m) if m.is_dir() => {
            return Err(StoreError::Unsafe {
                path: path.to_path_buf(),
                problem: "is a directory, not a regular file".into(),
            });
        }
        Ok(_) => match fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::io("remove", path, e)),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(StoreError::io("stat", path, e)),
    }
    let f = match OpenOptions::new()
        .write(true)
        .create(true)
        .mode(0o600)
        .custom_flags(nofollow_flags() | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if is_eloop(&e) => return Err(symlink_error(path).into()),
        Err(e) => return Err(StoreError::io("create", path, e)),
    };
    // Checked again on the descriptor: something swapped in since the stat
    // above is refused, never written.
    let m = f.metadata().map_err(|e| StoreError::io("stat", path, e))?;
    if !ours(&m) {
        return Err(StoreError::Unsafe {
            path: path.to_path_buf(),
            problem: "changed while being opened: not a regular file with a single link".into(),
        });
    }
    Ok(f)
}

/// Overwrite the content of `f` (see [`open_in_place`]). Shrinking to a
/// non-zero length does not trigger the flush that a truncation to zero would.
fn overwrite(f: &File, path: &Path, content: &[u8]) -> Result<(), StoreError> {
    use std::os::unix::fs::FileExt;
    f.write_all_at(content, 0)
        .and_then(|()| f.set_len(content.len() as u64))
        .map_err(|e| StoreError::io("write", path, e))
}

fn write_in_place(path: &Path, content: &[u8]) -> Result<(), StoreError> {
    overwrite(&open_in_place(path)?, path, content)
}

/// Write a new file that must not exist yet (O_EXCL), fsynced.
fn create_exclusive(path: &Path, content: &[u8]) -> io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(nofollow_flags())
        .open(path)?;
    let res = f.write_all(content).and_then(|()| f.sync_all());
    if res.is_err() {
        let _ = fs::remove_file(path);
    }
    res
}

impl Store for FileStore {
    fn holder(&mut self, ip: IpAddr) -> Result<Option<Owner>, StoreError> {
        Ok(read_small(&self.ip_path(ip))?.map(|c| Owner::from_record(&c)))
    }

    fn owned_by(&mut self, owner: &Owner) -> Result<Vec<IpAddr>, StoreError> {
        let mut out = Vec::new();
        let mut keys = vec![owner.clone()];
        if !owner.is_legacy() {
            keys.push(owner.legacy());
        }
        for key in keys {
            for ip in self.read_index(&key)? {
                if self.holder(ip)?.as_ref() == Some(&key) && !out.contains(&ip) {
                    out.push(ip);
                }
            }
        }
        Ok(out)
    }

    fn netns_of(&mut self, owner: &Owner) -> Result<Option<String>, StoreError> {
        let Some(path) = self.index_path(owner) else {
            return Ok(None);
        };
        Ok(read_small(&path)?.and_then(|c| parse_index_netns(&c)))
    }

    fn bind_netns(&mut self, owner: &Owner, netns: &str) {
        // One line in a small file: an id with a line break would be a
        // second line, so it is not recorded (the caller makes plain ids).
        if !netns.is_empty() && !netns.contains(['\n', '\r']) {
            self.bound_netns = Some((owner.clone(), netns.to_string()));
        }
    }

    fn reserve(&mut self, owner: &Owner, ip: IpAddr) -> Result<bool, StoreError> {
        owner.validate()?;
        // 1. The index first: a crash after this leaves an entry without record.
        let mut idx = self.read_index(owner)?;
        let added = !idx.contains(&ip);
        if added {
            idx.push(ip);
            self.write_index(owner, &idx)?;
        }
        // 2. The record: temp + fsync + link (atomic, never clobbers).
        let tmp = self.write_tmp(&ip.to_string(), owner.to_record().as_bytes(), true)?;
        let dst = self.ip_path(ip);
        let linked = match fs::hard_link(&tmp, &dst) {
            // A filesystem without hard links: exclusive create, as host-local does.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM) | Some(libc::EOPNOTSUPP)) => {
                create_exclusive(&dst, owner.to_record().as_bytes())
            }
            other => other,
        };
        let _ = fs::remove_file(&tmp);
        self.touched();
        match linked {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                if self.holder(ip)?.as_ref() == Some(owner) {
                    return Ok(true);
                }
                if added {
                    idx.retain(|x| *x != ip);
                    self.write_index(owner, &idx)?;
                }
                Ok(false)
            }
            Err(e) => {
                if added {
                    idx.retain(|x| *x != ip);
                    let _ = self.write_index(owner, &idx);
                }
                Err(StoreError::io("link", dst, e))
            }
        }
    }

    fn unreserve(&mut self, owner: &Owner, ip: IpAddr) -> Result<bool, StoreError> {
        let held = self.holder(ip)?.as_ref() == Some(owner);
        if held {
            self.remove_record(ip)?;
        }
        let mut idx = self.read_index(owner)?;
        if idx.contains(&ip) {
            idx.retain(|x| *x != ip);
            self.write_index(owner, &idx)?;
        }
        Ok(held)
    }

    /// The record is replaced by rename (temp + fsync first), so the
    /// address is held at every instant; then the owner's index entry goes,
    /// as in a release. A quarantine record has no index (its holder is no
    /// attachment): it is found by scanning, by GC and the admin tool.
    fn quarantine(&mut self, owner: &Owner, ip: IpAddr, by: &Owner) -> Result<bool, StoreError> {
        if self.holder(ip)?.as_ref() != Some(owner) {
            return Ok(false);
        }
        let tmp = self.write_tmp(&format!("q.{ip}"), by.to_record().as_bytes(), true)?;
        let dst = self.ip_path(ip);
        self.touched();
        if let Err(e) = fs::rename(&tmp, &dst) {
            let _ = fs::remove_file(&tmp);
            return Err(StoreError::io("rename", dst, e));
        }
        let mut idx = self.read_index(owner)?;
        if idx.contains(&ip) {
            idx.retain(|x| *x != ip);
            self.write_index(owner, &idx)?;
        }
        Ok(true)
    }

    fn release(&mut self, owner: &Owner) -> Result<Vec<IpAddr>, StoreError> {
        let mut out = self.release_key(owner)?;
        if !owner.is_legacy() {
            out.extend(self.release_key(&owner.legacy())?);
        }
        Ok(out)
    }

    fn last_reserved(&mut self, set: usize) -> Result<Option<IpAddr>, StoreError> {
        // A hint only: anything unreadable (even a planted symlink) counts as
        // absent, and the next reservation replaces it.
        let p = self.dir.join(format!("{LAST_RESERVED}{set}"));
        Ok(read_small(&p)
            .ok()
            .flatten()
            .and_then(|c| c.trim().parse().ok()))
    }

    /// Overwritten in place, not replaced by rename: ext4 (auto_da_alloc)
    /// flushes a file renamed over an existing one, which cost as much as an
    /// fsync per ADD. A torn write leaves an unparsable hint, read as absent.
    /// Never written through a symlink or a hard link (see [`write_in_place`]).
    fn set_last_reserved(&mut self, set: usize, ip: IpAddr) -> Result<(), StoreError> {
        let dst = self.dir.join(format!("{LAST_RESERVED}{set}"));
        let content = ip.to_string();
        self.touched();
        write_in_place(&dst, content.as_bytes())?;
        let suffix = set.to_string();
        if self.hints.len() < MAX_HINTS || self.hints.contains_key(&suffix) {
            self.hints.insert(suffix, fingerprint(content.as_bytes()));
        }
        Ok(())
    }

    fn all(&mut self) -> Result<Vec<Allocation>, StoreError> {
        let scanned = self.scan()?;
        all_of(scanned)
    }

    fn scan(&mut self) -> Result<(Vec<Allocation>, Vec<StoreError>), StoreError> {
        self.full_scans += 1;
        scan_dir(&self.dir, |_| {})
    }

    fn clean_index(&mut self) -> Result<usize, StoreError> {
        let entries =
            fs::read_dir(&self.owners).map_err(|e| StoreError::io("list", &self.owners, e))?;
        // What the repair at open already dropped counts too.
        let mut dropped = std::mem::take(&mut self.dropped_by_repair);
        for entry in entries {
            let entry = entry.map_err(|e| StoreError::io("list", &self.owners, e))?;
            let name = entry.file_name();
            let Some((cid, ifname)) = name.to_str().and_then(|n| n.split_once('@')) else {
                continue; // .complete or foreign
            };
            let owner = Owner::new(cid, ifname);
            let listed = self.read_index(&owner)?;
            let mut kept = Vec::new();
            for ip in &listed {
                if self.holder(*ip)?.as_ref() == Some(&owner) {
                    kept.push(*ip);
                }
            }
            if kept.len() != listed.len() {
                dropped += listed.len() - kept.len();
                self.write_index(&owner, &kept)?;
            }
        }
        Ok(dropped)
    }

    fn read_meta(&mut self, name: &str) -> Result<Option<String>, StoreError> {
        let p = self.meta_path(name)?;
        let raw = crate::sys::fs::read_regular(&p, MAX_META)?;
        raw.map(|b| {
            String::from_utf8(b).map_err(|_| StoreError::Corrupt {
                path: p.clone(),
                problem: "not UTF-8".into(),
            })
        })
        .transpose()
    }

    fn write_meta(&mut self, name: &str, content: &str) -> Result<(), StoreError> {
        let dst = self.meta_path(name)?;
        let tmp = self.tmp.join(format!("{name}.{}", std::process::id()));
        // The directory changes: the stamp is rewritten before the lock goes.
        self.touched();
        replace_file(&tmp, &dst, content.as_bytes(), true)?;
        Ok(())
    }

    fn commit(&mut self) -> Result<(), StoreError> {
        if self.dirty {
            // The records' directory entries; owners/ holds only the index,
            // which is not made durable (see write_index).
            fsync_dir(&self.dir)?;
            self.dirty = false;
        }
        Ok(())
    }
}

impl Drop for FileStore {
    /// Stamp the index before the lock goes, if anything changed. Every
    /// change of this module keeps each record listed in its owner's index
    /// (index first, record second; record removed before its entry), also
    /// on error paths, so the stamp is true whenever it is written. A failed
    /// write only costs the next open a scan.
    fn drop(&mut self) {
        if self.stamp_stale {
            let _ = self.write_stamp();
        }
    }
}

#[cfg(test)]
mod tests;
