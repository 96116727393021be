//! The on-disk store: the reference host-local layout plus an owner index.
//!
//! ```text
//! <dataDir>/<name>/
//!   lock                      flock, held from open() until drop
//!   10.0.0.2                  "<containerID>\r\n<ifname>" (legacy: "<containerID>")
//!   last_reserved_ip.<set>    round-robin hint
//!   owners/<cid>@<ifname>     index: one IP per line (never trusted alone)
//!   owners/.complete          the index was built (dirs written by host-local have none)
//!   .tmp/                     temp files; anything left there is a crash leftover
//! ```
//!
//! Write order of a reservation: index (temp + rename), then the IP record
//! (temp + fsync + `link()`: atomic and never clobbers), then the hint
//! (overwritten in place); `commit` fsyncs the store directory. A kill -9
//! therefore leaves at worst an index entry without record (ignored: readers
//! check the record) or a `.tmp/` file (removed on the next open); a power
//! loss can also lose an index entry, and the owner's retry or GC then finds
//! the record by itself. Nothing is opened through a
//! symlink: a symlink where the store expects its own file is an error.

use std::collections::BTreeMap;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{Allocation, Owner, Store, StoreError};

const LOCK: &str = "lock";
const OWNERS: &str = "owners";
const TMP: &str = ".tmp";
const COMPLETE: &str = ".complete";
const LAST_RESERVED: &str = "last_reserved_ip.";
/// Longest sleep between two attempts at the store lock.
const MAX_LOCK_PAUSE: Duration = Duration::from_millis(2);
/// Records are tiny; never read more than this from one file.
const MAX_RECORD: u64 = 4096;

/// A locked store directory. The lock is released when this is dropped.
#[derive(Debug)]
pub struct FileStore {
    dir: PathBuf,
    owners: PathBuf,
    tmp: PathBuf,
    /// The open `lock` file: flock is released when the descriptor closes.
    _lock: File,
    dirty: bool,
}

fn nofollow_flags() -> i32 {
    libc::O_NOFOLLOW | libc::O_CLOEXEC
}

/// What kind of thing is at `path`, without following a symlink.
enum Kind {
    Missing,
    Dir,
    File,
    Symlink,
    Other,
}

fn kind(path: &Path) -> Result<Kind, StoreError> {
    match fs::symlink_metadata(path) {
        Ok(m) => {
            let t = m.file_type();
            Ok(if t.is_symlink() {
                Kind::Symlink
            } else if t.is_dir() {
                Kind::Dir
            } else if t.is_file() {
                Kind::File
            } else {
                Kind::Other
            })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Kind::Missing),
        Err(e) => Err(StoreError::io("stat", path, e)),
    }
}

fn is_eloop(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ELOOP)
}

fn symlink_error(path: &Path) -> StoreError {
    StoreError::Unsafe {
        path: path.to_path_buf(),
        problem: "is a symlink (the IPAM store never follows symlinks)".into(),
    }
}

fn mkdir_0700(path: &Path) -> Result<(), StoreError> {
    match DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::io("create directory", path, e)),
    }
}

/// Ensure `path` is a real directory (created 0700 if missing).
pub(crate) fn ensure_dir(path: &Path) -> Result<(), StoreError> {
    match kind(path)? {
        Kind::Dir => Ok(()),
        Kind::Missing => {
            mkdir_0700(path)?;
            match kind(path)? {
                Kind::Dir => Ok(()),
                _ => Err(StoreError::Unsafe {
                    path: path.to_path_buf(),
                    problem: "is not a directory".into(),
                }),
            }
        }
        Kind::Symlink => Err(symlink_error(path)),
        Kind::File | Kind::Other => Err(StoreError::Unsafe {
            path: path.to_path_buf(),
            problem: "is not a directory".into(),
        }),
    }
}

pub(crate) fn fsync_dir(path: &Path) -> Result<(), StoreError> {
    let d = OpenOptions::new()
        .read(true)
        .custom_flags(nofollow_flags() | libc::O_DIRECTORY)
        .open(path)
        .map_err(|e| StoreError::io("open directory", path, e))?;
    d.sync_all()
        .map_err(|e| StoreError::io("fsync directory", path, e))
}

/// Read at most `limit` bytes of a regular file without following a symlink
/// or blocking on a FIFO. None if it does not exist.
pub(crate) fn read_regular(path: &Path, limit: u64) -> Result<Option<Vec<u8>>, StoreError> {
    let f = match OpenOptions::new()
        .read(true)
        // O_NONBLOCK: a FIFO planted here must not hang us.
        .custom_flags(nofollow_flags() | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if is_eloop(&e) => return Err(symlink_error(path)),
        Err(e) => return Err(StoreError::io("open", path, e)),
    };
    let meta = f.metadata().map_err(|e| StoreError::io("stat", path, e))?;
    if !meta.is_file() {
        return Err(StoreError::Unsafe {
            path: path.to_path_buf(),
            problem: "is not a regular file".into(),
        });
    }
    let mut buf = Vec::new();
    f.take(limit)
        .read_to_end(&mut buf)
        .map_err(|e| StoreError::io("read", path, e))?;
    Ok(Some(buf))
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

pub(crate) fn lock_file(dir: &Path, timeout: Duration) -> Result<File, StoreError> {
    let path = dir.join(LOCK);
    let f = match OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .mode(0o600)
        .custom_flags(nofollow_flags() | libc::O_NONBLOCK)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) if is_eloop(&e) => return Err(symlink_error(&path)),
        Err(e) => return Err(StoreError::io("open", &path, e)),
    };
    let meta = f.metadata().map_err(|e| StoreError::io("stat", &path, e))?;
    if !meta.is_file() {
        return Err(StoreError::Unsafe {
            path,
            problem: "is not a regular file".into(),
        });
    }
    let started = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        // SAFETY: flock on a descriptor we own; no memory is passed.
        let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            return Ok(f);
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EWOULDBLOCK) | Some(libc::EINTR) => {}
            _ => return Err(StoreError::io("lock", &path, err)),
        }
        let waited = started.elapsed();
        if waited >= timeout {
            return Err(StoreError::LockTimeout {
                dir: dir.to_path_buf(),
                waited,
            });
        }
        std::thread::sleep(pause.min(timeout - waited));
        // A hold is ~1-3 ms (fsyncs): with a longer pause the lock sits idle while
        // the waiters sleep, and 50 concurrent ADDs took twice as long (bench.sh).
        pause = (pause * 2).min(MAX_LOCK_PAUSE);
    }
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
            Kind::Symlink => return Err(symlink_error(dir)),
            Kind::File | Kind::Other => {
                return Err(StoreError::Unsafe {
                    path: dir.to_path_buf(),
                    problem: "is not a directory".into(),
                });
            }
        }
        check_store_dir(dir)?;
        let lock = lock_file(dir, lock_timeout)?;
        let mut store = FileStore {
            dir: dir.to_path_buf(),
            owners: dir.join(OWNERS),
            tmp: dir.join(TMP),
            _lock: lock,
            dirty: false,
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

    fn ensure_index(&mut self) -> Result<(), StoreError> {
        ensure_dir(&self.owners)?;
        match kind(&self.owners.join(COMPLETE))? {
            Kind::File => Ok(()),
            Kind::Missing => self.build_index(),
            Kind::Symlink => Err(symlink_error(&self.owners.join(COMPLETE))),
            Kind::Dir | Kind::Other => Err(StoreError::Corrupt {
                path: self.owners.join(COMPLETE),
                problem: "is not a regular file".into(),
            }),
        }
    }

    /// Scan every record once and write the index; then mark it complete.
    fn build_index(&mut self) -> Result<(), StoreError> {
        let mut by_owner: BTreeMap<Owner, Vec<IpAddr>> = BTreeMap::new();
        // Unreadable entries cannot be indexed; GC reports them.
        let (all, _problems) = self.scan()?;
        for a in all {
            by_owner.entry(a.owner).or_default().push(a.ip);
        }
        for (owner, ips) in &by_owner {
            // A record of an owner we cannot name (empty, or with '/'):
            // not indexable; GC still finds it by scanning.
            if !indexable(owner) {
                continue;
            }
            let mut merged = self.read_index(owner)?;
            for ip in ips {
                if !merged.contains(ip) {
                    merged.push(*ip);
                }
            }
            self.write_index(owner, &merged)?;
        }
        let marker = self.write_tmp(COMPLETE, b"", true)?;
        let dst = self.owners.join(COMPLETE);
        fs::rename(&marker, &dst).map_err(|e| StoreError::io("rename", &dst, e))?;
        fsync_dir(&self.owners)?;
        Ok(())
    }

    fn ip_path(&self, ip: IpAddr) -> PathBuf {
        self.dir.join(ip.to_string())
    }

    /// `owners/<cid>@<ifname>`; None for an owner whose name would not be a
    /// single safe path component (such owners have no index: GC scans).
    fn index_path(&self, owner: &Owner) -> Option<PathBuf> {
        indexable(owner).then(|| {
            self.owners
                .join(format!("{}@{}", owner.container_id, owner.ifname))
        })
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
                    self.dirty = true;
                    Ok(())
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(StoreError::io("remove", dst, e)),
            };
        }
        self.dirty = true;
        let mut content = String::new();
        for ip in ips {
            content.push_str(&ip.to_string());
            content.push('\n');
        }
        // Not fsynced: the index is a lookup aid that readers check against
        // the records. rename() keeps it whole across kill -9; after a power
        // loss a missing or empty index only means the owner's retry or GC
        // finds the record by itself. The records are what is fsynced.
        let tmp = self.write_tmp(
            &format!("index.{}", std::process::id()),
            content.as_bytes(),
            false,
        )?;
        fs::rename(&tmp, &dst).map_err(|e| StoreError::io("rename", &dst, e))
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
            Err(e) if is_eloop(&e) => return Err(symlink_error(&p)),
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
        self.dirty = true;
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
        Err(e) if is_eloop(&e) => return Err(symlink_error(path)),
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

/// Owners whose index file name is safe to build.
fn indexable(owner: &Owner) -> bool {
    crate::cni::env::is_valid_name(&owner.container_id)
        && !owner.ifname.contains('/')
        && !owner.ifname.chars().any(char::is_control)
        && owner.container_id.len() + 1 + owner.ifname.len() <= 255
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
        self.dirty = true;
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
        write_in_place(&dst, ip.to_string().as_bytes())?;
        self.dirty = true;
        Ok(())
    }

    fn all(&mut self) -> Result<Vec<Allocation>, StoreError> {
        let (out, problems) = self.scan()?;
        // Unsafe entries (symlinks, directories named like an address) are
        // not allocations; anything else unreadable is an error.
        match problems
            .into_iter()
            .find(|p| !matches!(p, StoreError::Unsafe { .. }))
        {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    fn scan(&mut self) -> Result<(Vec<Allocation>, Vec<StoreError>), StoreError> {
        let entries = fs::read_dir(&self.dir).map_err(|e| StoreError::io("list", &self.dir, e))?;
        let mut out = Vec::new();
        let mut problems = Vec::new();
        for entry in entries {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    problems.push(StoreError::io("list", &self.dir, e));
                    continue;
                }
            };
            let name = entry.file_name();
            let Some(ip) = name.to_str().and_then(record_name) else {
                continue; // lock, last_reserved_ip.*, owners/, .tmp/, foreign files
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
                problems.push(symlink_error(&path));
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

    fn clean_index(&mut self) -> Result<usize, StoreError> {
        let entries =
            fs::read_dir(&self.owners).map_err(|e| StoreError::io("list", &self.owners, e))?;
        let mut dropped = 0;
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

#[cfg(test)]
mod tests;
