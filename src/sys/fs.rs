//! Files the plugin reads and writes, none of them trusted: paths a config
//! names (log files, resolv.conf, data dirs) may come from a less-trusted
//! author (a Multus NetworkAttachmentDefinition) while the plugin runs as
//! root, and the store's own directories could have things planted in them.
//! So no symlink is followed, only regular files are read or written, reads
//! are bounded, and no open can block (a FIFO or a device would hang the
//! plugin or mix with its stdout). The IPAM store and the VLAN registry build
//! on these helpers.

use std::ffi::CString;
use std::fmt;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use crate::cni::{CniError, code};

/// The lock file of a locked directory.
pub(crate) const LOCK: &str = "lock";

/// A failed file operation. Each maps to one CNI code (see `From`).
#[derive(Debug)]
pub enum FsError {
    /// A system call failed (code 5).
    Io {
        path: PathBuf,
        op: &'static str,
        source: io::Error,
    },
    /// A symlink or another unexpected file type where a regular file or
    /// directory of ours is expected; never followed (code 5).
    Unsafe { path: PathBuf, problem: String },
    /// A directory's lock was not acquired within the timeout (code 11).
    LockTimeout { dir: PathBuf, waited: Duration },
}

impl FsError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        FsError::Io {
            path: path.into(),
            op,
            source,
        }
    }
}

impl fmt::Display for FsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FsError::Io { path, op, source } => {
                write!(f, "cannot {op} {}: {source}", path.display())
            }
            FsError::Unsafe { path, problem } => {
                write!(f, "refusing {}: {problem}", path.display())
            }
            FsError::LockTimeout { dir, waited } => write!(
                f,
                "{} is locked by another process (waited {} ms); try again later",
                dir.display(),
                waited.as_millis()
            ),
        }
    }
}

impl std::error::Error for FsError {}

impl From<FsError> for CniError {
    fn from(e: FsError) -> CniError {
        let code = match &e {
            FsError::LockTimeout { .. } => code::TRY_AGAIN_LATER,
            FsError::Io { .. } | FsError::Unsafe { .. } => code::IO,
        };
        CniError::new(code, e.to_string())
    }
}

pub(crate) fn nofollow_flags() -> i32 {
    libc::O_NOFOLLOW | libc::O_CLOEXEC
}

/// What kind of thing is at `path`, without following a symlink.
pub(crate) enum Kind {
    Missing,
    Dir,
    File,
    Symlink,
    Other,
}

pub(crate) fn kind(path: &Path) -> Result<Kind, FsError> {
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
        Err(e) => Err(FsError::io("stat", path, e)),
    }
}

pub(crate) fn is_eloop(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ELOOP)
}

pub(crate) fn symlink_error(path: &Path) -> FsError {
    FsError::Unsafe {
        path: path.to_path_buf(),
        problem: "is a symlink (never followed)".into(),
    }
}

pub(crate) fn mkdir_0700(path: &Path) -> Result<(), FsError> {
    match DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(FsError::io("create directory", path, e)),
    }
}

/// Ensure `path` is a real directory (created 0700 if missing).
pub(crate) fn ensure_dir(path: &Path) -> Result<(), FsError> {
    match kind(path)? {
        Kind::Dir => Ok(()),
        Kind::Missing => {
            mkdir_0700(path)?;
            match kind(path)? {
                Kind::Dir => Ok(()),
                _ => Err(FsError::Unsafe {
                    path: path.to_path_buf(),
                    problem: "is not a directory".into(),
                }),
            }
        }
        Kind::Symlink => Err(symlink_error(path)),
        Kind::File | Kind::Other => Err(FsError::Unsafe {
            path: path.to_path_buf(),
            problem: "is not a directory".into(),
        }),
    }
}

pub(crate) fn fsync_dir(path: &Path) -> Result<(), FsError> {
    let d = OpenOptions::new()
        .read(true)
        .custom_flags(nofollow_flags() | libc::O_DIRECTORY)
        .open(path)
        .map_err(|e| FsError::io("open directory", path, e))?;
    d.sync_all()
        .map_err(|e| FsError::io("fsync directory", path, e))
}

/// Read at most `limit` bytes of a regular file without following a symlink
/// or blocking on a FIFO. None if it does not exist.
pub(crate) fn read_regular(path: &Path, limit: u64) -> Result<Option<Vec<u8>>, FsError> {
    let f = match OpenOptions::new()
        .read(true)
        // O_NONBLOCK: a FIFO planted here must not hang us.
        .custom_flags(nofollow_flags() | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if is_eloop(&e) => return Err(symlink_error(path)),
        Err(e) => return Err(FsError::io("open", path, e)),
    };
    let meta = f.metadata().map_err(|e| FsError::io("stat", path, e))?;
    if !meta.is_file() {
        return Err(FsError::Unsafe {
            path: path.to_path_buf(),
            problem: "is not a regular file".into(),
        });
    }
    // Sized from the stat (plus one byte to see the end): one read, where an
    // empty Vec makes read_to_end start with small probing reads.
    let expect = usize::try_from(meta.len().min(limit)).unwrap_or(0);
    let mut buf = Vec::with_capacity(expect.saturating_add(1));
    f.take(limit)
        .read_to_end(&mut buf)
        .map_err(|e| FsError::io("read", path, e))?;
    Ok(Some(buf))
}

/// Replace `dst` with `content`: written to `tmp` (0600, truncated, never
/// through a symlink), optionally fsynced, then renamed over `dst`. With
/// `durable` the file and `dst`'s directory are fsynced, so the new content
/// survives a power loss; without, a kill -9 still sees the old or the new
/// file whole.
pub(crate) fn replace_file(
    tmp: &Path,
    dst: &Path,
    content: &[u8],
    durable: bool,
) -> Result<(), FsError> {
    let mut f = match OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(nofollow_flags())
        .open(tmp)
    {
        Ok(f) => f,
        Err(e) if is_eloop(&e) => return Err(symlink_error(tmp)),
        Err(e) => return Err(FsError::io("create", tmp, e)),
    };
    let written = f
        .write_all(content)
        .and_then(|()| if durable { f.sync_all() } else { Ok(()) });
    if let Err(e) = written {
        let _ = fs::remove_file(tmp);
        return Err(FsError::io("write", tmp, e));
    }
    if let Err(e) = fs::rename(tmp, dst) {
        let _ = fs::remove_file(tmp);
        return Err(FsError::io("rename", dst, e));
    }
    match (durable, dst.parent()) {
        (true, Some(dir)) => fsync_dir(dir),
        _ => Ok(()),
    }
}

/// Take an exclusive flock on `<dir>/lock` (created 0600 if missing, never
/// through a symlink), waiting at most `timeout`: then [`FsError::LockTimeout`].
pub(crate) fn lock_file(dir: &Path, timeout: Duration) -> Result<File, FsError> {
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
        Err(e) => return Err(FsError::io("open", &path, e)),
    };
    flock_within(f, &path, dir, libc::LOCK_EX, timeout)
}

/// A shared lock on an existing `lock` file, opened read-only: creates
/// nothing. `None` when the directory has no lock file.
pub(crate) fn shared_lock(dir: &Path, timeout: Duration) -> Result<Option<File>, FsError> {
    let path = dir.join(LOCK);
    let f = match OpenOptions::new()
        .read(true)
        .custom_flags(nofollow_flags() | libc::O_NONBLOCK)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if is_eloop(&e) => return Err(symlink_error(&path)),
        Err(e) => return Err(FsError::io("open", &path, e)),
    };
    flock_within(f, &path, dir, libc::LOCK_SH, timeout).map(Some)
}

/// Take `op` (LOCK_EX or LOCK_SH) on the regular file `f`, waiting at most `timeout`.
fn flock_within(
    f: File,
    path: &Path,
    dir: &Path,
    op: libc::c_int,
    timeout: Duration,
) -> Result<File, FsError> {
    let meta = f.metadata().map_err(|e| FsError::io("stat", path, e))?;
    if !meta.is_file() {
        return Err(FsError::Unsafe {
            path: path.to_path_buf(),
            problem: "is not a regular file".into(),
        });
    }
    // SAFETY: flock on a descriptor we own; no memory is passed.
    if unsafe { libc::flock(f.as_raw_fd(), op | libc::LOCK_NB) } == 0 {
        return Ok(f);
    }
    let err = io::Error::last_os_error();
    if !matches!(
        err.raw_os_error(),
        Some(libc::EWOULDBLOCK) | Some(libc::EINTR)
    ) {
        return Err(FsError::io("lock", path, err));
    }
    let started = Instant::now();
    match flock_blocking(&f, op, timeout) {
        Ok(true) => Ok(f),
        Ok(false) => Err(FsError::LockTimeout {
            dir: dir.to_path_buf(),
            waited: started.elapsed(),
        }),
        Err(e) => Err(FsError::io("lock", path, e)),
    }
}

/// The signal that ends a lock wait at its deadline: a real-time signal no
/// runtime or library of ours uses, with a handler that does nothing, so a
/// blocking flock() returns EINTR (no SA_RESTART).
fn lock_alarm_signal() -> libc::c_int {
    libc::SIGRTMAX() - 3
}

extern "C" fn ignore_signal(_: libc::c_int) {}

/// Block in flock() until the lock is ours or `timeout` passed (Ok(false)).
/// The kernel wakes the waiters the moment the lock is free, where polling
/// left the lock idle while waiters slept (50 concurrent ADDs took twice as
/// long with a 16 ms back-off). The deadline is a per-thread POSIX timer
/// delivering [`lock_alarm_signal`] to this thread only.
fn flock_blocking(f: &File, op: libc::c_int, timeout: Duration) -> io::Result<bool> {
    static HANDLER: std::sync::OnceLock<io::Result<()>> = std::sync::OnceLock::new();
    let installed = HANDLER.get_or_init(|| {
        // SAFETY: a zeroed sigaction with a handler that touches nothing is
        // valid; sa_flags without SA_RESTART makes blocking calls return EINTR.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = ignore_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            libc::sigemptyset(&mut sa.sa_mask);
            if libc::sigaction(lock_alarm_signal(), &sa, std::ptr::null_mut()) != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    });
    if let Err(e) = installed {
        return Err(io::Error::new(e.kind(), e.to_string()));
    }
    let started = Instant::now();
    let timer = ThreadTimer::new(lock_alarm_signal())?;
    timer.arm(timeout)?;
    loop {
        // The alarm may have gone off before flock() started to wait (a
        // deadline in the past, a preemption): then only its repetitions,
        // every ALARM_REPEAT, can interrupt the wait, and this check ends it.
        if started.elapsed() >= timeout {
            return Ok(false);
        }
        // SAFETY: flock on a descriptor we own; no memory is passed.
        if unsafe { libc::flock(f.as_raw_fd(), op) } == 0 {
            return Ok(true);
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(err);
        }
        // Our alarm, or another signal: only the clock decides.
        if started.elapsed() >= timeout {
            return Ok(false);
        }
    }
}

/// How often the lock alarm repeats after the deadline, in case its first
/// signal came before the wait started.
const ALARM_REPEAT: Duration = Duration::from_millis(1);

/// A POSIX timer that signals the calling thread; deleted on drop.
struct ThreadTimer(libc::timer_t);

impl ThreadTimer {
    fn new(signal: libc::c_int) -> io::Result<ThreadTimer> {
        // SAFETY: a zeroed sigevent is valid; the fields set describe a
        // thread-directed signal; timer_create writes the id into `id`.
        unsafe {
            let mut ev: libc::sigevent = std::mem::zeroed();
            ev.sigev_notify = libc::SIGEV_THREAD_ID;
            ev.sigev_signo = signal;
            ev.sigev_notify_thread_id = libc::gettid();
            let mut id: libc::timer_t = std::ptr::null_mut();
            if libc::timer_create(libc::CLOCK_MONOTONIC, &mut ev, &mut id) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(ThreadTimer(id))
        }
    }

    /// Fire after `after`, then every [`ALARM_REPEAT`] until dropped.
    fn arm(&self, after: Duration) -> io::Result<()> {
        // A zero it_value would disarm it: wait at least 1 ns.
        let after = after.max(Duration::from_nanos(1));
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: ALARM_REPEAT.subsec_nanos().into(),
            },
            it_value: libc::timespec {
                // capped at 2^31 - 1 s (68 years), which fits every time_t
                // without naming the type (libc deprecates `time_t` on musl)
                tv_sec: after.as_secs().min(i32::MAX as u64) as _,
                tv_nsec: after.subsec_nanos().into(),
            },
        };
        // SAFETY: the timer id is ours and `spec` outlives the call.
        if unsafe { libc::timer_settime(self.0, 0, &spec, std::ptr::null_mut()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

impl Drop for ThreadTimer {
    fn drop(&mut self) {
        // SAFETY: deleting the timer this value created, once.
        unsafe {
            libc::timer_delete(self.0);
        }
    }
}

/// Why a config-named path was refused.
fn refused(path: &Path, why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!("{}: {why}", path.display()),
    )
}

fn openat(dir: &OwnedFd, name: &[u8], flags: i32, mode: u32) -> io::Result<OwnedFd> {
    let c = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `c` is NUL-terminated and outlives the call; `dir` is an open fd.
    let fd = unsafe { libc::openat(dir.as_raw_fd(), c.as_ptr(), flags, mode) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: openat returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Open the absolute `path` for appending, creating it (mode 0600) if
/// missing. Every directory on the way is entered with O_NOFOLLOW, so a
/// symlink anywhere in the path is refused rather than followed; the file
/// itself must be a regular file with a single link (a hard link planted to
/// /etc/shadow would otherwise be written through). O_NONBLOCK keeps a FIFO
/// from hanging the open; the regular-file check then refuses it.
pub fn open_append(path: &Path) -> io::Result<File> {
    if !path.is_absolute() {
        return Err(refused(path, "not an absolute path"));
    }
    let mut parts: Vec<&[u8]> = Vec::new();
    for c in path.components() {
        match c {
            Component::RootDir => {}
            Component::Normal(p) => parts.push(p.as_bytes()),
            Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(refused(path, "'..' is not allowed"));
            }
        }
    }
    let Some((file_name, dirs)) = parts.split_last() else {
        return Err(refused(path, "names a directory, not a file"));
    };
    let dir_flags = libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    let mut dir = openat_root()?;
    for d in dirs {
        dir = openat(&dir, d, dir_flags, 0).map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) | Some(libc::ENOTDIR) => refused(
                path,
                "a directory on the way is a symlink or not a directory",
            ),
            _ => e,
        })?;
    }
    let flags = libc::O_WRONLY
        | libc::O_APPEND
        | libc::O_CREAT
        | libc::O_NOFOLLOW
        | libc::O_NONBLOCK
        | libc::O_NOCTTY
        | libc::O_CLOEXEC;
    let fd = openat(&dir, file_name, flags, 0o600).map_err(|e| match e.raw_os_error() {
        Some(libc::ELOOP) => refused(path, "is a symlink"),
        Some(libc::ENXIO) => refused(path, "is a FIFO or socket"),
        _ => e,
    })?;
    let file = File::from(fd);
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(refused(path, "is not a regular file"));
    }
    if meta.nlink() != 1 {
        return Err(refused(
            path,
            &format!("has {} hard links (a log file has one)", meta.nlink()),
        ));
    }
    Ok(file)
}

fn openat_root() -> io::Result<OwnedFd> {
    let c = c"/";
    // SAFETY: a constant NUL-terminated path.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// This boot's id (`/proc/sys/kernel/random/boot_id`), read once per
/// process. A power loss implies a reboot, hence a new id. `unknown` when
/// /proc is not readable (the IPAM store's stamp then relies on the directory
/// times alone). Stamps the IPAM store and the host shim records.
pub(crate) fn boot_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        read_regular(Path::new("/proc/sys/kernel/random/boot_id"), 64)
            .ok()
            .flatten()
            .map(|b| String::from_utf8_lossy(&b).trim().to_string())
            .filter(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_hexdigit() || c == '-'))
            .unwrap_or_else(|| "unknown".into())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn dir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    #[test]
    fn a_lock_wait_ends_at_its_deadline_even_a_tiny_one() {
        let d = dir();
        let held = lock_file(d.path(), Duration::from_secs(1)).unwrap();
        for timeout in [
            Duration::ZERO,
            Duration::from_nanos(1),
            Duration::from_millis(30),
        ] {
            let started = Instant::now();
            let e = lock_file(d.path(), timeout).unwrap_err();
            assert!(matches!(e, FsError::LockTimeout { .. }), "{e}");
            assert!(started.elapsed() < Duration::from_secs(2), "{timeout:?}");
            assert!(started.elapsed() >= timeout);
        }
        drop(held);
        lock_file(d.path(), Duration::ZERO).unwrap();
    }

    #[test]
    fn a_waiter_gets_the_lock_as_soon_as_it_is_free() {
        let d = dir();
        let held = lock_file(d.path(), Duration::from_secs(1)).unwrap();
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            drop(held);
        });
        let started = Instant::now();
        lock_file(d.path(), Duration::from_secs(10)).unwrap();
        assert!(started.elapsed() < Duration::from_secs(5));
        release.join().unwrap();
    }

    #[test]
    fn creates_and_appends_a_regular_file() {
        let d = dir();
        let p = d.path().join("log");
        open_append(&p).unwrap().write_all(b"a\n").unwrap();
        open_append(&p).unwrap().write_all(b"b\n").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "a\nb\n");
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o777, 0o600);
    }

    #[test]
    fn refuses_symlinks_anywhere_in_the_path() {
        let d = dir();
        let target = d.path().join("target");
        std::fs::write(&target, b"keep").unwrap();
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = open_append(&link).unwrap_err();
        assert!(e.to_string().contains("symlink"), "{e}");
        // A symlinked directory on the way.
        let real = d.path().join("real");
        std::fs::create_dir(&real).unwrap();
        let via = d.path().join("via");
        std::os::unix::fs::symlink(&real, &via).unwrap();
        let e = open_append(&via.join("log")).unwrap_err();
        assert!(e.to_string().contains("symlink"), "{e}");
        assert!(!real.join("log").exists());
        assert_eq!(std::fs::read(&target).unwrap(), b"keep");
    }

    #[test]
    fn refuses_fifos_devices_hard_links_and_relative_paths() {
        let d = dir();
        let fifo = d.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        // Must not block: no reader on the FIFO.
        let e = open_append(&fifo).unwrap_err();
        assert!(e.to_string().contains("FIFO"), "{e}");
        let e = open_append(Path::new("/dev/null")).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let victim = d.path().join("victim");
        std::fs::write(&victim, b"secret").unwrap();
        let hard = d.path().join("hard");
        std::fs::hard_link(&victim, &hard).unwrap();
        let e = open_append(&hard).unwrap_err();
        assert!(e.to_string().contains("hard links"), "{e}");
        assert_eq!(std::fs::read(&victim).unwrap(), b"secret");
        assert!(open_append(Path::new("rel/log")).is_err());
        assert!(open_append(Path::new("/tmp/../etc/x")).is_err());
        assert!(open_append(Path::new("/")).is_err());
    }
}
