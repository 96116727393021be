//! The machinery of mactrunk's host-wide records of what attachments use:
//! one directory per kind of record under the dataDir, one small JSON file
//! per key (a link name), a lock, crash-safe writes. The VLAN registry
//! (`vlan_registry`: the VLAN links mactrunk created and their users) and
//! the ipvlan port records (`ipvlan_port`: the mode each ipvlan parent
//! carries and who relies on it) and the host shim records (`shim_registry`:
//! the shims mactrunk created, their users and routes) are made of it.
//!
//! ```text
//! <dataDir>/<Record::DIR>/         host-wide: every network of the dataDir shares it
//!   lock                           flock (the IPAM store's lock helper), bounded wait -> code 11
//!   <key>.json                     one record per key (a link name)
//!   .tmp.<key>.<pid>               temp files; anything left there is a crash leftover
//!   <key>.json.corrupt-<secs>      a record that did not parse, moved aside (never trusted)
//! ```
//!
//! A network name never starts with '.', so these directories cannot clash
//! with a network's IPAM store next to them. Writes are temp + fsync +
//! rename + fsync(dir): a record is the old one or the new one after a
//! crash, never a mix. A kind of record that describes only kernel state
//! may do without the fsyncs ([`Record::DURABLE`]): a kill -9 still sees
//! the old or the new file whole, and a power loss takes the kernel state
//! with it; such records carry what tells a record of an earlier boot
//! ([`Record::is_stale`]). The files are meant to be read by humans (`cat`).

use std::fs::{self, File};
use std::io;
use std::marker::PhantomData;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::cni::{CniError, code};
use crate::ipam::store::Owner;
use crate::sys::fs::{FsError, ensure_dir, fsync_dir, lock_file, read_regular, replace_file};
use crate::sys::log::{Level, log_at};

const SUFFIX: &str = ".json";
const TMP_PREFIX: &str = ".tmp.";
/// A record with thousands of users is still far below this.
const MAX_RECORD: u64 = 4 << 20;

/// One kind of record.
pub(crate) trait Record: Serialize + DeserializeOwned {
    /// The directory's name under the dataDir.
    const DIR: &'static str;
    /// The registry's name in messages ("VLAN registry").
    const WHAT: &'static str;
    /// What it means for a record that could not be read: its link is
    /// treated as ... (completes a log line).
    const UNREADABLE: &'static str;
    /// Writes and removals are fsynced (file and directory), so they
    /// survive a power loss. Without, a write is temp + rename only.
    const DURABLE: bool = true;
    /// The file name stem: a link name.
    fn key(&self) -> &str;
    /// Whether `user` is one of the attachments that rely on what the record
    /// describes.
    fn has_user(&self, user: &User) -> bool;
    /// Some attachment still relies on what the record describes.
    fn in_use(&self) -> bool;
    /// The record describes nothing that still exists (written during
    /// another boot): [`peek`] and [`peek_all`] leave it out; the locked
    /// [`Registry`] hands it over for its owner to discard.
    fn is_stale(&self) -> bool {
        false
    }
}

/// One attachment relying on a record.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct User {
    pub network: String,
    #[serde(rename = "containerID")]
    pub container_id: String,
    pub ifname: String,
}

impl User {
    pub fn new(network: &str, owner: &Owner) -> User {
        User {
            network: network.to_string(),
            container_id: owner.container_id.clone(),
            ifname: owner.ifname.clone(),
        }
    }

    pub fn owner(&self) -> Owner {
        Owner::new(self.container_id.clone(), self.ifname.clone())
    }
}

/// Add `user` to `users` unless it is there already; true if it changed.
pub(crate) fn add_user(users: &mut Vec<User>, user: &User) -> bool {
    if users.contains(user) {
        return false;
    }
    users.push(user.clone());
    true
}

/// Remove `user` from `users`; true if it was there.
pub(crate) fn remove_user(users: &mut Vec<User>, user: &User) -> bool {
    let before = users.len();
    users.retain(|u| u != user);
    users.len() != before
}

/// GC: keep the users of other networks and the valid ones of `network`;
/// true if any went.
pub(crate) fn retain_valid(users: &mut Vec<User>, network: &str, valid: &[Owner]) -> bool {
    let before = users.len();
    users.retain(|u| u.network != network || valid.contains(&u.owner()));
    users.len() != before
}

/// `<dataDir>/<R::DIR>`.
pub(crate) fn dir_in<R: Record>(data_dir: &Path) -> PathBuf {
    data_dir.join(R::DIR)
}

fn record_file(dir: &Path, key: &str) -> Result<PathBuf, RegistryError> {
    if let Some(p) = crate::cni::names::interface_name_problem(key) {
        return Err(RegistryError::Corrupt {
            path: dir.to_path_buf(),
            problem: format!("link name {key:?} {p}"),
        });
    }
    Ok(dir.join(format!("{key}{SUFFIX}")))
}

/// Read a record file without following symlinks. None if missing.
fn read_record<R: Record>(path: &Path) -> Result<Option<R>, RegistryError> {
    let Some(buf) = read_regular(path, MAX_RECORD)? else {
        return Ok(None);
    };
    serde_json::from_slice(&buf)
        .map(Some)
        .map_err(|e| RegistryError::Corrupt {
            path: path.to_path_buf(),
            problem: e.to_string(),
        })
}

/// The keys of the records that list `user`, read without the lock
/// (records are replaced atomically). Empty when there is no registry.
pub(crate) fn records_with_user<R: Record>(data_dir: &Path, user: &User) -> Vec<String> {
    let dir = dir_in::<R>(data_dir);
    let Ok(entries) = fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(key) = name.to_str().and_then(|n| n.strip_suffix(SUFFIX)) else {
            continue;
        };
        if key.starts_with('.') {
            continue;
        }
        if let Ok(Some(r)) = read_record::<R>(&e.path())
            && r.has_user(user)
        {
            out.push(key.to_string());
        }
    }
    out.sort();
    out
}

/// Read one record without taking the lock (STATUS). None if there is none,
/// it cannot be read or it is stale.
pub(crate) fn peek<R: Record>(data_dir: &Path, key: &str) -> Option<R> {
    let path = record_file(&dir_in::<R>(data_dir), key).ok()?;
    read_record::<R>(&path)
        .ok()
        .flatten()
        .filter(|r| !r.is_stale())
}

/// Every record in `data_dir`, read without the lock and without changing
/// anything (records are replaced atomically; the admin tool's metrics): the
/// records that parse and are not stale, and a message (naming the
/// registry) per file that does not parse. Empty when there is no registry.
pub(crate) fn peek_all<R: Record>(data_dir: &Path) -> (Vec<R>, Vec<String>) {
    let dir = dir_in::<R>(data_dir);
    let Ok(entries) = fs::read_dir(&dir) else {
        return (Vec::new(), Vec::new());
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(SUFFIX)
                .map(String::from)
        })
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    let (mut records, mut problems) = (Vec::new(), Vec::new());
    for n in names {
        match record_file(&dir, &n).and_then(|p| read_record::<R>(&p)) {
            Ok(Some(r)) if !r.is_stale() => records.push(r),
            Ok(_) => {} // removed meanwhile, or stale
            Err(e) => problems.push(format!("{}: {e}", R::WHAT)),
        }
    }
    (records, problems)
}

/// The locked registry directory of records `R`; the lock is released on
/// drop.
#[derive(Debug)]
pub(crate) struct Registry<R> {
    pub(crate) dir: PathBuf,
    _lock: File,
    _records: PhantomData<fn() -> R>,
}

impl<R: Record> Registry<R> {
    /// Create (0700) and lock `<dataDir>/<R::DIR>`, waiting at most
    /// `timeout`; removes temp files a crash left behind.
    pub fn open(data_dir: &Path, timeout: Duration) -> Result<Registry<R>, RegistryError> {
        if !data_dir.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(data_dir)
                .map_err(|e| RegistryError::io("create directory", data_dir, e))?;
        }
        let dir = dir_in::<R>(data_dir);
        ensure_dir(&dir)?;
        let lock = lock_file(&dir, timeout)?;
        let reg = Registry {
            dir,
            _lock: lock,
            _records: PhantomData,
        };
        reg.clean_tmp()?;
        Ok(reg)
    }

    fn clean_tmp(&self) -> Result<(), RegistryError> {
        let entries =
            fs::read_dir(&self.dir).map_err(|e| RegistryError::io("list", &self.dir, e))?;
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
                let p = e.path();
                log_at!(
                    Level::Info,
                    "{}: removing crash leftover {}",
                    R::WHAT,
                    p.display()
                );
                let _ = fs::remove_file(&p);
            }
        }
        Ok(())
    }

    /// The record of `key`. A record that does not parse (or names another
    /// key than its file) is moved aside (`.corrupt-<secs>`) and reported
    /// as missing: never acted on by a guess.
    pub fn load(&self, key: &str) -> Result<Option<R>, RegistryError> {
        let path = record_file(&self.dir, key)?;
        match read_record::<R>(&path) {
            Ok(Some(r)) if r.key() == key => Ok(Some(r)),
            Ok(Some(r)) => {
                self.quarantine(&path, &format!("names link {:?}", r.key()));
                Ok(None)
            }
            Ok(None) => Ok(None),
            Err(RegistryError::Corrupt { problem, .. }) => {
                self.quarantine(&path, &problem);
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    fn quarantine(&self, path: &Path, problem: &str) {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let aside = PathBuf::from(format!("{}.corrupt-{secs}", path.display()));
        log_at!(
            Level::Warn,
            "{}: {} is unreadable ({problem}); moved to {}; {}",
            R::WHAT,
            path.display(),
            aside.display(),
            R::UNREADABLE
        );
        let _ = fs::rename(path, &aside);
    }

    /// Every readable record (unreadable ones are moved aside, see `load`).
    pub fn records(&self) -> Result<Vec<R>, RegistryError> {
        let entries =
            fs::read_dir(&self.dir).map_err(|e| RegistryError::io("list", &self.dir, e))?;
        let mut names: Vec<String> = entries
            .flatten()
            .filter_map(|e| {
                let n = e.file_name().to_str()?.strip_suffix(SUFFIX)?.to_string();
                (!n.starts_with('.')).then_some(n)
            })
            .collect();
        names.sort();
        let mut out = Vec::new();
        for n in names {
            if let Some(r) = self.load(&n)? {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// Write `rec`: temp file + fsync + rename + fsync(dir); without the
    /// fsyncs unless [`Record::DURABLE`].
    pub fn save(&self, rec: &R) -> Result<(), RegistryError> {
        let dst = record_file(&self.dir, rec.key())?;
        #[cfg(test)]
        if test_hooks::save_fails() {
            return Err(RegistryError::io(
                "write",
                &dst,
                io::Error::other("injected failure"),
            ));
        }
        let tmp = self
            .dir
            .join(format!("{TMP_PREFIX}{}.{}", rec.key(), std::process::id()));
        let mut content = serde_json::to_vec_pretty(rec).map_err(|e| RegistryError::Corrupt {
            path: dst.clone(),
            problem: e.to_string(),
        })?;
        content.push(b'\n');
        Ok(replace_file(&tmp, &dst, &content, R::DURABLE)?)
    }

    /// Store `rec` after its users changed (`changed`: some came or went).
    /// While it is in use it is saved; once not, `retire` deletes what it
    /// describes (returning whether there was anything to delete) and the
    /// record goes. When `retire` fails, the record is kept, without the
    /// users that left, so that GC retries. Returns what `retire` returned
    /// (false when it did not run).
    pub fn settle(
        &self,
        rec: &R,
        changed: bool,
        retire: impl FnOnce(&R) -> Result<bool, CniError>,
    ) -> Result<bool, CniError> {
        if rec.in_use() {
            if changed {
                self.save(rec).map_err(cni::<R>)?;
            }
            return Ok(false);
        }
        match retire(rec) {
            Ok(deleted) => {
                self.remove(rec.key()).map_err(cni::<R>)?;
                Ok(deleted)
            }
            Err(e) => {
                if changed {
                    let _ = self.save(rec);
                }
                Err(e)
            }
        }
    }

    /// Remove the record of `key` (missing is fine); fsyncs the directory
    /// if [`Record::DURABLE`].
    pub fn remove(&self, key: &str) -> Result<(), RegistryError> {
        let path = record_file(&self.dir, key)?;
        match fs::remove_file(&path) {
            Ok(()) if R::DURABLE => Ok(fsync_dir(&self.dir)?),
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(RegistryError::io("remove", path, e)),
        }
    }
}

/// Failure injection for unit tests of the callers' rollback paths.
#[cfg(test)]
pub(crate) mod test_hooks {
    use std::cell::Cell;

    thread_local! {
        /// Saves to let through before one fails (None: never fail).
        static FAIL_SAVE_AFTER: Cell<Option<u32>> = const { Cell::new(None) };
    }

    /// Let `n` saves of this thread succeed, then fail the next one.
    pub(crate) fn fail_save_after(n: u32) {
        FAIL_SAVE_AFTER.with(|c| c.set(Some(n)));
    }

    pub(super) fn save_fails() -> bool {
        FAIL_SAVE_AFTER.with(|c| match c.get() {
            Some(0) => {
                c.set(None);
                true
            }
            Some(n) => {
                c.set(Some(n - 1));
                false
            }
            None => false,
        })
    }
}

/// A failure of a registry: of its files, or a record that makes no sense.
/// Shown with the registry's name by [`cni`].
#[derive(Debug)]
pub enum RegistryError {
    Fs(FsError),
    /// A record we cannot use (code 999 if it reaches the user; `load`
    /// moves such records aside instead).
    Corrupt {
        path: PathBuf,
        problem: String,
    },
}

impl RegistryError {
    fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        RegistryError::Fs(FsError::io(op, path, source))
    }
}

impl From<FsError> for RegistryError {
    fn from(e: FsError) -> Self {
        RegistryError::Fs(e)
    }
}

impl std::fmt::Display for RegistryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RegistryError::Fs(e) => write!(f, "{e}"),
            RegistryError::Corrupt { path, problem } => {
                write!(f, "corrupt {}: {problem}", path.display())
            }
        }
    }
}

/// Registry errors as CNI errors: code 11 for the lock, 5 for I/O, 999 for
/// a corrupt record; the message names the registry (`R::WHAT`).
pub(crate) fn cni<R: Record>(e: RegistryError) -> CniError {
    let code = match &e {
        RegistryError::Fs(FsError::LockTimeout { .. }) => code::TRY_AGAIN_LATER,
        RegistryError::Fs(_) => code::IO,
        RegistryError::Corrupt { .. } => code::INTERNAL,
    };
    CniError::new(code, format!("{}: {e}", R::WHAT))
}
