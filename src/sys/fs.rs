//! Opening files whose path comes from a network config: a config can come
//! from a less-trusted author (a Multus NetworkAttachmentDefinition), while
//! the plugin runs as root. So no symlink is followed anywhere in the path,
//! only regular files are accepted, and no open can block (a FIFO or a
//! device would hang the plugin or mix with its stdout).

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path};

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn dir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
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
