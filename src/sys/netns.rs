//! Network namespace handles and running code inside one.
//!
//! `setns(2)` changes the namespace of the calling *thread* only. We therefore
//! never switch a thread back and forth: an [`NsThread`] is a thread that
//! enters the target namespace once, runs the jobs it is sent there and exits
//! when its owner drops it, so nothing needs restoring (the idea of Go's
//! `ns.Do()` without its restore step). One such thread serves a whole CNI
//! call: opening its netlink socket, the sysctls and an ARP socket cost one
//! thread creation, not one each. No async code in here.

use std::fmt;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;
use std::thread::JoinHandle;

use nix::sched::{CloneFlags, setns};
use nix::sys::stat::fstat;
use nix::sys::statfs::{NSFS_MAGIC, PROC_SUPER_MAGIC, fstatfs};

use crate::cni::{CniError, code};

/// `NS_GET_NSTYPE` from `<linux/nsfs.h>`: `_IO(0xb7, 0x3)`.
const NS_GET_NSTYPE: libc::c_ulong = 0xb703;

/// Why a namespace could not be opened or entered.
#[derive(Debug)]
pub enum NetnsError {
    /// The path does not exist.
    NotExist(String),
    /// The path exists but is not a network namespace.
    NotNetns { path: String, why: String },
    /// Any other failure (open, setns, thread creation).
    Io {
        path: String,
        op: &'static str,
        source: io::Error,
    },
}

impl fmt::Display for NetnsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetnsError::NotExist(path) => write!(f, "network namespace {path} does not exist"),
            NetnsError::NotNetns { path, why } => {
                write!(f, "{path} is not a network namespace: {why}")
            }
            NetnsError::Io { path, op, source } => {
                write!(f, "network namespace {path}: {op}: {source}")
            }
        }
    }
}

impl std::error::Error for NetnsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            NetnsError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<NetnsError> for CniError {
    fn from(e: NetnsError) -> Self {
        match e {
            NetnsError::NotExist(_) | NetnsError::NotNetns { .. } => {
                CniError::new(code::INVALID_NETNS, e.to_string())
            }
            NetnsError::Io { .. } => CniError::new(code::KERNEL, e.to_string()),
        }
    }
}

/// An open handle on a network namespace (an nsfs file) and the path it came from.
#[derive(Debug)]
pub struct NetNs {
    file: File,
    path: String,
}

impl NetNs {
    /// Open `path` (e.g. `/var/run/netns/x` or `/proc/<pid>/ns/net`) and check
    /// that it really is a network namespace.
    pub fn open(path: &str) -> Result<NetNs, NetnsError> {
        let file = File::open(path).map_err(|e| match e.raw_os_error() {
            Some(libc::ENOENT) => NetnsError::NotExist(path.to_string()),
            Some(libc::ENOTDIR) => NetnsError::NotExist(path.to_string()),
            _ => NetnsError::Io {
                path: path.to_string(),
                op: "open",
                source: e,
            },
        })?;
        check_netns(&file, path)?;
        Ok(NetNs {
            file,
            path: path.to_string(),
        })
    }

    /// The network namespace of the calling thread (not of the process's main
    /// thread: `/proc/thread-self`, not `/proc/self`).
    pub fn current() -> Result<NetNs, NetnsError> {
        NetNs::open("/proc/thread-self/ns/net")
    }

    /// Whether both handles name the same namespace (same nsfs device and inode).
    /// Returns false if either cannot be stat'ed.
    pub fn same_as(&self, other: &NetNs) -> bool {
        match (fstat(&self.file), fstat(&other.file)) {
            (Ok(a), Ok(b)) => a.st_dev == b.st_dev && a.st_ino == b.st_ino,
            _ => false,
        }
    }

    /// An id of the namespace itself (nsfs device and inode: the same for
    /// every path that names it, e.g. /run/netns/x and /proc/<pid>/ns/net),
    /// for recording which namespace an attachment was made in. None if the
    /// handle cannot be stat'ed.
    pub fn id(&self) -> Option<String> {
        fstat(&self.file)
            .ok()
            .map(|st| format!("{}:{}", st.st_dev, st.st_ino))
    }

    /// The path this handle was opened from (for messages).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The namespace file descriptor, e.g. for `IFLA_NET_NS_FD`.
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

/// Move the *calling thread* into the namespace of `file`. Only for threads
/// that are discarded afterwards.
fn enter_current_thread(file: &File, path: &str) -> Result<(), NetnsError> {
    setns(file.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| NetnsError::Io {
        path: path.to_string(),
        op: "setns",
        source: io::Error::from(e),
    })
}

impl AsFd for NetNs {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

/// Accept nsfs (or, on kernels before 3.19, procfs) files, and when the kernel
/// can tell (`NS_GET_NSTYPE`, 4.11+), only *network* namespaces.
fn check_netns(file: &File, path: &str) -> Result<(), NetnsError> {
    let fs = fstatfs(file).map_err(|e| NetnsError::Io {
        path: path.to_string(),
        op: "statfs",
        source: io::Error::from(e),
    })?;
    let magic = fs.filesystem_type();
    if magic != NSFS_MAGIC && magic != PROC_SUPER_MAGIC {
        return Err(NetnsError::NotNetns {
            path: path.to_string(),
            why: format!(
                "unknown filesystem type {:#x}, expected nsfs",
                magic.0 as u64
            ),
        });
    }
    // SAFETY: NS_GET_NSTYPE takes no argument and only reads the fd.
    let nstype = unsafe { libc::ioctl(file.as_raw_fd(), NS_GET_NSTYPE as _) };
    if nstype >= 0 {
        if nstype != libc::CLONE_NEWNET {
            return Err(NetnsError::NotNetns {
                path: path.to_string(),
                why: format!("namespace type {nstype:#x} is not a network namespace"),
            });
        }
    } else if magic == PROC_SUPER_MAGIC {
        // A procfs file on a kernel that cannot tell: fine only for very old
        // kernels; on ours the ioctl failing means a regular /proc file.
        return Err(NetnsError::NotNetns {
            path: path.to_string(),
            why: "a /proc file that is not a namespace".to_string(),
        });
    }
    Ok(())
}

/// Run `f`, which may borrow from the caller, on a fresh scoped thread that
/// has entered `ns`, and let the thread exit. For one-off work; a CNI call
/// that works in a namespace several times uses one [`NsThread`]. A panic in
/// `f` becomes an error.
pub fn run_in<R: Send>(ns: &NetNs, f: impl FnOnce() -> R + Send) -> Result<R, NetnsError> {
    std::thread::scope(|scope| {
        let handle = std::thread::Builder::new()
            .name("mactrunk-netns".into())
            .spawn_scoped(scope, || -> Result<R, NetnsError> {
                enter_current_thread(&ns.file, &ns.path)?;
                Ok(f())
            })
            .map_err(|e| NetnsError::Io {
                path: ns.path.clone(),
                op: "spawn thread",
                source: e,
            })?;
        handle.join().unwrap_or_else(|_| {
            Err(NetnsError::Io {
                path: ns.path.clone(),
                op: "run in namespace",
                source: io::Error::other("the namespace thread panicked"),
            })
        })
    })
}

/// The ids ([`NetNs::id`] form, `dev:ino`) of every network namespace that
/// still exists as far as this process can see: those of all processes
/// (`/proc/<pid>/ns/net`) and those pinned by a bind mount (nsfs entries of
/// `/proc/self/mountinfo`, e.g. `/run/netns/x`). A namespace kept alive only
/// by an open file descriptor is not seen. Run in the host's PID and mount
/// namespaces, this is every namespace a container runtime keeps. Read-only.
pub fn live_ids() -> io::Result<std::collections::HashSet<String>> {
    use std::os::unix::fs::MetadataExt;
    let id = |p: &std::path::Path| {
        std::fs::metadata(p)
            .ok()
            .map(|m| format!("{}:{}", m.dev(), m.ino()))
    };
    let mut out = std::collections::HashSet::new();
    for e in std::fs::read_dir("/proc")?.flatten() {
        let name = e.file_name();
        if name
            .to_str()
            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
        {
            // a process that exits meanwhile is simply not there
            out.extend(id(&e.path().join("ns/net")));
        }
    }
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")?;
    for p in nsfs_mount_points(&mountinfo) {
        out.extend(id(std::path::Path::new(&p)));
    }
    Ok(out)
}

/// The mount points of the network namespace bind mounts in a
/// `/proc/<pid>/mountinfo` text: filesystem type `nsfs`, root `net:[...]`.
/// Mount points are unescaped (`\040` is a space, as the kernel writes it).
pub fn nsfs_mount_points(mountinfo: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in mountinfo.lines() {
        // id parent major:minor root mountpoint options [optional...] - fstype source super
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let fields: Vec<&str> = left.split(' ').collect();
        let fstype = right.split(' ').next().unwrap_or("");
        if fstype != "nsfs" || fields.len() < 5 || !fields[3].starts_with("net:[") {
            continue;
        }
        out.push(unescape_octal(fields[4]));
    }
    out
}

/// Undo the kernel's `\ooo` escapes of space, tab, newline and backslash.
fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = (b[i] == b'\\' && i + 3 < b.len())
            .then(|| &b[i + 1..i + 4])
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)))
            .map(|d| d.iter().fold(0u32, |n, c| n * 8 + u32::from(c - b'0')))
            .and_then(|n| u8::try_from(n).ok());
        if let Some(c) = octal {
            out.push(c);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A job for an [`NsThread`]: given `None` once the thread is inside the
/// namespace, or the error that kept it out.
type Job = Box<dyn FnOnce(Option<&io::Error>) + Send>;

/// A thread inside one network namespace that runs the jobs sent to it, in
/// order, until it is dropped (which joins it). Jobs must be synchronous; to
/// do netlink work inside, enter a tokio runtime handle there. A panic in a
/// job becomes an error and the thread stays usable.
pub struct NsThread {
    path: String,
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl NsThread {
    /// Start the thread. Whether it could enter `ns` is reported by every
    /// [`run`](NsThread::run), so starting costs no round trip.
    pub fn start(ns: &NetNs) -> Result<NsThread, NetnsError> {
        let file = ns.file.try_clone().map_err(|source| NetnsError::Io {
            path: ns.path.clone(),
            op: "dup",
            source,
        })?;
        let (jobs, queue) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("mactrunk-netns".into())
            .spawn(move || {
                let entered = enter_current_thread(&file, "").err().map(|e| match e {
                    NetnsError::Io { source, .. } => source,
                    other => io::Error::other(other.to_string()),
                });
                drop(file);
                for job in queue {
                    job(entered.as_ref());
                }
            })
            .map_err(|source| NetnsError::Io {
                path: ns.path.clone(),
                op: "spawn thread",
                source,
            })?;
        Ok(NsThread {
            path: ns.path.clone(),
            jobs: Some(jobs),
            thread: Some(thread),
        })
    }

    /// Run `f` on the thread, inside the namespace, and wait for its result.
    pub fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> Result<R, NetnsError> {
        let (reply, answer) = mpsc::sync_channel(1);
        let job: Job = Box::new(move |entry_error| {
            let outcome = match entry_error {
                Some(e) => Err(("setns", io::Error::new(e.kind(), e.to_string()))),
                None => catch_unwind(AssertUnwindSafe(f)).map_err(|_| {
                    (
                        "run in namespace",
                        io::Error::other("a job in the namespace thread panicked"),
                    )
                }),
            };
            // `run` waits on the receiver; a send fails only if it is gone.
            let _ = reply.send(outcome);
        });
        let lost = || {
            (
                "run in namespace",
                io::Error::other("the namespace thread is gone"),
            )
        };
        let outcome = match self.jobs.as_ref().map(|jobs| jobs.send(job)) {
            Some(Ok(())) => answer.recv().unwrap_or_else(|_| Err(lost())),
            _ => Err(lost()),
        };
        outcome.map_err(|(op, source)| NetnsError::Io {
            path: self.path.clone(),
            op,
            source,
        })
    }
}

impl Drop for NsThread {
    fn drop(&mut self) {
        // Closing the queue ends the thread's loop.
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_missing_is_not_exist() {
        match NetNs::open("/nonexistent/mactrunk/netns") {
            Err(NetnsError::NotExist(p)) => assert_eq!(p, "/nonexistent/mactrunk/netns"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn open_regular_file_is_not_netns() {
        let path = std::env::temp_dir().join(format!("mtl-netns-test-{}", std::process::id()));
        std::fs::write(&path, b"x").unwrap();
        let p = path.to_str().unwrap();
        let r = NetNs::open(p);
        std::fs::remove_file(&path).ok();
        assert!(matches!(r, Err(NetnsError::NotNetns { .. })), "{r:?}");
    }

    #[test]
    fn open_proc_file_is_not_netns() {
        let r = NetNs::open("/proc/self/status");
        assert!(matches!(r, Err(NetnsError::NotNetns { .. })), "{r:?}");
    }

    #[test]
    fn open_other_namespace_type_is_not_netns() {
        // Readable without privileges: our own UTS namespace.
        let r = NetNs::open("/proc/thread-self/ns/uts");
        assert!(matches!(r, Err(NetnsError::NotNetns { .. })), "{r:?}");
    }

    #[test]
    fn current_is_same_as_itself_and_ns_thread_runs_in_it() {
        let a = NetNs::current().unwrap();
        let b = NetNs::current().unwrap();
        assert!(a.same_as(&b));
        // Entering one's own netns is allowed for root only; without root the
        // setns fails with EPERM, which must be an error (for every job), not
        // a panic.
        let thread = NsThread::start(&a).unwrap();
        for _ in 0..2 {
            let b_id = b.id();
            match thread.run(move || NetNs::current().map(|c| c.id() == b_id)) {
                Ok(inner) => assert!(inner.unwrap()),
                Err(NetnsError::Io { op, .. }) => assert_eq!(op, "setns"),
                Err(e) => panic!("unexpected {e}"),
            }
        }
    }

    #[test]
    fn ns_thread_jobs_run_in_order_on_one_thread() {
        let ns = NetNs::current().unwrap();
        let thread = NsThread::start(&ns).unwrap();
        let ids: Vec<_> = (0..3)
            .filter_map(|i| thread.run(move || (i, std::thread::current().id())).ok())
            .collect();
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            assert!(ids.is_empty(), "setns must fail without root");
            return;
        }
        assert_eq!(ids.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [0, 1, 2]);
        assert!(ids.iter().all(|(_, t)| *t == ids[0].1));
        assert_ne!(ids[0].1, std::thread::current().id());
    }

    #[test]
    fn ns_thread_panic_is_an_error_and_the_thread_stays_usable() {
        let ns = NetNs::current().unwrap();
        let thread = NsThread::start(&ns).unwrap();
        let r: Result<(), _> = thread.run(|| panic!("boom"));
        assert!(r.is_err());
        let again = thread.run(|| 7);
        assert!(matches!(
            again,
            Ok(7) | Err(NetnsError::Io { op: "setns", .. })
        ));
    }

    #[test]
    fn error_codes() {
        let e: CniError = NetnsError::NotExist("/x".into()).into();
        assert_eq!(e.code, code::INVALID_NETNS);
        assert!(e.msg.contains("/x"));
        let e: CniError = NetnsError::NotNetns {
            path: "/y".into(),
            why: "z".into(),
        }
        .into();
        assert_eq!(e.code, code::INVALID_NETNS);
        assert!(e.msg.contains("/y"));
        let e: CniError = NetnsError::Io {
            path: "/z".into(),
            op: "setns",
            source: io::Error::from_raw_os_error(libc::EPERM),
        }
        .into();
        assert_eq!(e.code, code::KERNEL);
        assert!(e.msg.contains("setns"));
    }

    #[test]
    fn nsfs_mounts_of_a_mountinfo() {
        let text = "\
22 1 0:21 / /proc rw,nosuid - proc proc rw
612 25 0:4 net:[4026532712] /run/netns/mt-a rw shared:5 - nsfs nsfs rw
613 25 0:4 net:[4026532800] /run/netns/with\\040space rw - nsfs nsfs rw
614 25 0:4 mnt:[4026532900] /run/mntns/x rw - nsfs nsfs rw
615 25 0:4 net:[4026532901] /x rw - tmpfs tmpfs rw
garbage line
";
        assert_eq!(
            nsfs_mount_points(text),
            ["/run/netns/mt-a", "/run/netns/with space"]
        );
        assert_eq!(unescape_octal("a\\134b\\011"), "a\\b\t");
        assert_eq!(unescape_octal("end\\04"), "end\\04", "a cut escape is kept");
        assert_eq!(unescape_octal("\\777"), "\\777", "not a byte: kept");
    }

    #[test]
    fn live_ids_include_this_process() {
        let ids = live_ids().unwrap();
        let me = NetNs::current().unwrap().id().unwrap();
        assert!(ids.contains(&me), "{me} not in {} ids", ids.len());
    }
}
