//! The installer's file operations on the host's directories (mounted into
//! the pod): a file is compared before it is written (a second run writes
//! nothing), and written to a temp file in the target directory, fsynced, then
//! renamed over the target, and the directory fsynced. A kubelet exec'ing the
//! plugin during an upgrade sees the old file or the new one, whole; the old
//! inode lives on for processes that run it, and no file that is being
//! executed is ever opened for writing (no "text file busy").
//!
//! Targets are never followed through a symlink: `rename` replaces a symlink
//! at the target's name itself, and the config directory must be a real one.

use std::ffi::OsString;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The largest file the installer reads (a plugin binary is ~3 MB).
pub const MAX_FILE: u64 = 256 << 20;

/// Temp files are `.<name>.mactrunk-tmp.<unique>` in the target's directory:
/// hidden, and never a plugin name or a config a runtime would load.
const TMP_TAG: &str = ".mactrunk-tmp.";

/// A temp file older than this is a leftover of a killed run (a live run
/// renames its temp file within a second).
const STALE_TMP: Duration = Duration::from_secs(600);

/// What [`install`] did to one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Same content and mode already there: nothing written.
    Unchanged,
    /// There was no such file.
    Created,
    /// Replaced (other content or mode, or not a regular file).
    Replaced,
}

/// A failure, naming the path.
#[derive(Debug)]
pub struct FileError {
    pub path: PathBuf,
    pub op: &'static str,
    pub source: io::Error,
}

impl std::fmt::Display for FileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cannot {} {}: {}",
            self.op,
            self.path.display(),
            self.source
        )
    }
}

fn err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> FileError + 'a {
    move |source| FileError {
        path: path.to_path_buf(),
        op,
        source,
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Read a source file (following symlinks: a mounted Secret's files are
/// symlinks into its `..data` directory), at most [`MAX_FILE`] bytes.
pub fn read_source(path: &Path) -> Result<Vec<u8>, FileError> {
    let f = File::open(path).map_err(err("open", path))?;
    let meta = f.metadata().map_err(err("stat", path))?;
    if !meta.is_file() {
        return Err(err("read", path)(invalid("not a regular file".into())));
    }
    let mut buf = Vec::with_capacity(meta.len() as usize);
    f.take(MAX_FILE + 1)
        .read_to_end(&mut buf)
        .map_err(err("read", path))?;
    if buf.len() as u64 > MAX_FILE {
        return Err(err("read", path)(invalid(format!(
            "larger than {MAX_FILE} bytes"
        ))));
    }
    Ok(buf)
}

/// Is `dst` a regular file (not through a symlink) with exactly `content`
/// and permission bits `mode`?
fn same(dst: &Path, content: &[u8], mode: u32) -> Result<Option<bool>, FileError> {
    let f = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(dst)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        // a symlink (ELOOP) or something we may not open: replace it
        Err(_) => return Ok(Some(false)),
    };
    let meta = f.metadata().map_err(err("stat", dst))?;
    if !meta.is_file() || meta.len() != content.len() as u64 || meta.mode() & 0o7777 != mode {
        return Ok(Some(false));
    }
    let mut buf = Vec::with_capacity(content.len());
    f.take(content.len() as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(err("read", dst))?;
    Ok(Some(buf == content))
}

/// A temp file name beside `dst` that no other run uses: the pid alone is
/// not enough (every container's installer is pid 1).
fn tmp_path(dst: &Path) -> PathBuf {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let name = dst.file_name().map_or_else(OsString::new, |n| n.to_owned());
    let mut tmp = OsString::from(".");
    tmp.push(name);
    tmp.push(format!(
        "{TMP_TAG}{}-{nanos:x}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    dst.with_file_name(tmp)
}

/// Put `content` at `dst` with permission bits `mode`, atomically, unless it
/// is there already.
pub fn install(content: &[u8], dst: &Path, mode: u32) -> Result<Outcome, FileError> {
    let existed = match same(dst, content, mode)? {
        Some(true) => return Ok(Outcome::Unchanged),
        Some(false) => true,
        None => false,
    };
    let dir = dst.parent().unwrap_or(Path::new("."));
    let tmp = tmp_path(dst);
    let written = write_new(&tmp, content, mode).and_then(|()| {
        fs::rename(&tmp, dst).map_err(err("rename", dst))?;
        fsync_dir(dir)
    });
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(if existed {
        Outcome::Replaced
    } else {
        Outcome::Created
    })
}

/// Create `path` (it must not exist; never through a symlink) with `mode`,
/// write `content` and fsync it.
fn write_new(path: &Path, content: &[u8], mode: u32) -> Result<(), FileError> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(err("create", path))?;
    // the umask may have taken bits away
    f.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(err("chmod", path))?;
    f.write_all(content).map_err(err("write", path))?;
    f.sync_all().map_err(err("fsync", path))
}

pub fn fsync_dir(dir: &Path) -> Result<(), FileError> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
        .open(dir)
        .and_then(|d| d.sync_all())
        .map_err(err("fsync directory", dir))
}

/// `dir` must be an existing directory (a mounted hostPath).
pub fn existing_dir(dir: &Path) -> Result<(), FileError> {
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(err("use", dir)(invalid("not a directory".into()))),
        Err(e) => Err(err("use", dir)(e)),
    }
}

/// Make `dir` a real directory (not a symlink) with permission bits `mode`:
/// created if missing, its mode corrected if it exists. Returns whether it
/// was created.
pub fn private_dir(dir: &Path, mode: u32) -> Result<bool, FileError> {
    let created = match DirBuilder::new().mode(mode).create(dir) {
        Ok(()) => true,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
        Err(e) => return Err(err("create directory", dir)(e)),
    };
    let meta = fs::symlink_metadata(dir).map_err(err("stat", dir))?;
    if !meta.is_dir() {
        return Err(err("use", dir)(invalid(
            "exists and is not a directory (a symlink is never followed)".into(),
        )));
    }
    if meta.mode() & 0o7777 != mode {
        fs::set_permissions(dir, fs::Permissions::from_mode(mode)).map_err(err("chmod", dir))?;
    }
    if created && let Some(parent) = dir.parent() {
        fsync_dir(parent)?;
    }
    Ok(created)
}

/// Remove temp files of `names` in `dir` that a killed run left (older than
/// [`STALE_TMP`]; a younger one may belong to a run in progress). Returns
/// the paths removed.
pub fn remove_stale_temps(dir: &Path, names: &[&str]) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let now = SystemTime::now();
    let mut removed = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().into_vec();
        let ours = names.iter().any(|n| {
            let prefix = format!(".{n}{TMP_TAG}");
            name.starts_with(prefix.as_bytes())
        });
        if !ours {
            continue;
        }
        let old = e
            .metadata()
            .ok()
            .and_then(|m| m.modified().ok())
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|age| age >= STALE_TMP);
        if old && fs::remove_file(e.path()).is_ok() {
            removed.push(e.path());
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn mode_of(p: &Path) -> u32 {
        fs::symlink_metadata(p).unwrap().mode() & 0o7777
    }

    fn ino(p: &Path) -> u64 {
        fs::symlink_metadata(p).unwrap().ino()
    }

    #[test]
    fn create_then_unchanged_then_replace() {
        let d = tempfile::tempdir().unwrap();
        let dst = d.path().join("mactrunk");
        assert_eq!(install(b"v1", &dst, 0o755).unwrap(), Outcome::Created);
        assert_eq!(fs::read(&dst).unwrap(), b"v1");
        assert_eq!(mode_of(&dst), 0o755);
        let first = ino(&dst);
        // the same content again: nothing written, same inode
        assert_eq!(install(b"v1", &dst, 0o755).unwrap(), Outcome::Unchanged);
        assert_eq!(ino(&dst), first);
        // new content: a new inode (renamed over), the old one untouched
        let old = File::open(&dst).unwrap();
        assert_eq!(install(b"v2!", &dst, 0o755).unwrap(), Outcome::Replaced);
        assert_eq!(fs::read(&dst).unwrap(), b"v2!");
        assert_ne!(ino(&dst), first);
        let mut was = String::new();
        (&old).read_to_string(&mut was).unwrap();
        assert_eq!(was, "v1", "the old inode keeps the old content");
        // same content, other mode: replaced with the right mode
        assert_eq!(install(b"v2!", &dst, 0o600).unwrap(), Outcome::Replaced);
        assert_eq!(mode_of(&dst), 0o600);
        // no temp file left
        let names: Vec<_> = fs::read_dir(d.path()).unwrap().flatten().collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn a_symlink_at_the_target_is_replaced_not_followed() {
        let d = tempfile::tempdir().unwrap();
        let victim = d.path().join("victim");
        fs::write(&victim, b"keep").unwrap();
        let dst = d.path().join("mactrunk");
        symlink(&victim, &dst).unwrap();
        assert_eq!(install(b"new", &dst, 0o755).unwrap(), Outcome::Replaced);
        assert_eq!(fs::read(&victim).unwrap(), b"keep");
        assert!(fs::symlink_metadata(&dst).unwrap().is_file());
        assert_eq!(fs::read(&dst).unwrap(), b"new");
    }

    #[test]
    fn a_directory_at_the_target_is_an_error_and_leaves_no_temp() {
        let d = tempfile::tempdir().unwrap();
        let dst = d.path().join("mactrunk");
        fs::create_dir(&dst).unwrap();
        let e = install(b"x", &dst, 0o755).unwrap_err();
        assert_eq!(e.op, "rename");
        assert!(e.to_string().contains("mactrunk"), "{e}");
        let names: Vec<_> = fs::read_dir(d.path()).unwrap().flatten().collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn private_dir_is_made_0700_and_a_symlink_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("mactrunk.d");
        assert!(private_dir(&p, 0o700).unwrap());
        assert_eq!(mode_of(&p), 0o700);
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        assert!(!private_dir(&p, 0o700).unwrap());
        assert_eq!(mode_of(&p), 0o700, "a wrong mode is corrected");
        let other = d.path().join("elsewhere");
        fs::create_dir(&other).unwrap();
        let link = d.path().join("link.d");
        symlink(&other, &link).unwrap();
        let e = private_dir(&link, 0o700).unwrap_err();
        assert!(e.to_string().contains("symlink"), "{e}");
        let file = d.path().join("file.d");
        fs::write(&file, b"").unwrap();
        assert!(private_dir(&file, 0o700).is_err());
    }

    #[test]
    fn stale_temps_of_our_names_only_are_removed() {
        let d = tempfile::tempdir().unwrap();
        let stale = d.path().join(format!(".mactrunk{TMP_TAG}1-2-3"));
        let young = d.path().join(format!(".mactrunk-ipam{TMP_TAG}1-2-4"));
        let foreign = d.path().join(format!(".bridge{TMP_TAG}1-2-3"));
        for p in [&stale, &young, &foreign] {
            fs::write(p, b"x").unwrap();
        }
        let old = SystemTime::now() - Duration::from_secs(3600);
        for p in [&stale, &foreign] {
            File::options()
                .write(true)
                .open(p)
                .unwrap()
                .set_modified(old)
                .unwrap();
        }
        let removed = remove_stale_temps(d.path(), &["mactrunk", "mactrunk-ipam"]);
        assert_eq!(removed, std::slice::from_ref(&stale));
        assert!(!stale.exists() && young.exists() && foreign.exists());
    }

    #[test]
    fn temp_names_are_unique_and_hidden() {
        let dst = Path::new("/x/mactrunk");
        let (a, b) = (tmp_path(dst), tmp_path(dst));
        assert_ne!(a, b);
        let name = a.file_name().unwrap().to_str().unwrap();
        assert!(name.starts_with(".mactrunk.mactrunk-tmp."), "{name}");
        assert_eq!(a.parent(), Some(Path::new("/x")));
    }

    #[test]
    fn sources_are_bounded_regular_files() {
        let d = tempfile::tempdir().unwrap();
        assert!(read_source(d.path()).is_err(), "a directory");
        let f = d.path().join("f");
        fs::write(&f, b"abc").unwrap();
        let l = d.path().join("l");
        symlink(&f, &l).unwrap();
        assert_eq!(
            read_source(&l).unwrap(),
            b"abc",
            "a Secret's symlink is followed"
        );
        assert!(read_source(&d.path().join("missing")).is_err());
    }
}
