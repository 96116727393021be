//! `mactrunk-install`: the installer in the DaemonSet image (deploy/, docs/kubernetes.md).
//!
//! ```text
//! mactrunk-install install [OPTIONS]                  install, check, exit (the init container)
//! mactrunk-install watch [OPTIONS] [--interval SECS]  install, then keep it installed (the main container)
//! ```
//!
//! `install` copies `mactrunk` and `mactrunk-ipam` into the host's CNI bin
//! dir (atomically, see [`files`]), copies the etcd client credentials of a
//! mounted Secret and writes the node's `node.json` into
//! `<conf dir>/mactrunk.d/` (directory 0700, files 0600), runs the installed
//! plugin's `--version` to see that it works on this node, and exits. It
//! writes nothing when everything is in place already, and never a network
//! config (no `*.conf` in the conf dir: with Multus, networks come from
//! NetworkAttachmentDefinitions, and a stray config there could become a
//! node's default network).
//!
//! `watch` does the same once, then every `--interval` seconds puts back a
//! plugin or credential that went missing and follows a rotated Secret, until
//! SIGTERM or SIGINT (exit 0). A plugin that is there but differs is left
//! alone in `watch`: during a rolling update the old pod's watcher must not
//! undo what the new pod's `install` just did.
//!
//! std, libc, lexopt and serde_json; nothing of the library. The image holds
//! nothing but the static binaries.

mod files;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use files::{FileError, Outcome};

/// The plugins installed into the CNI bin dir.
const PLUGINS: [&str; 2] = ["mactrunk", "mactrunk-ipam"];
/// Installed beside them when the image has them (the cluster IPAM's etcd
/// helper, which the plugins exec only to talk to etcd).
const OPTIONAL: [&str; 1] = ["mactrunk-etcd"];
/// The per-node directory under the conf dir.
const NODE_DIR: &str = "mactrunk.d";
/// Secret key -> file in the node directory (the NetworkAttachmentDefinitions'
/// `ipam.cluster.tls` paths name these).
const CREDENTIALS: [(&str, &str); 3] = [
    ("ca.crt", "etcd-ca.crt"),
    ("tls.crt", "etcd-client.crt"),
    ("tls.key", "etcd-client.key"),
];
const NODE_FILE: &str = "node.json";

const HELP: &str = "\
mactrunk-install: install the mactrunk CNI plugins on a Kubernetes node (the
DaemonSet's image; see docs/kubernetes.md).

Usage:
  mactrunk-install install [OPTIONS]
  mactrunk-install watch [OPTIONS] [--interval SECS]
  mactrunk-install --version | --help

install: copy mactrunk and mactrunk-ipam (and mactrunk-etcd when the image has it,
the cluster IPAM's helper) into the CNI bin dir (temp file in that
dir, then rename: a runtime exec'ing the plugin meanwhile sees the old or the new
file, whole), copy the etcd credentials (ca.crt, tls.crt, tls.key of the Secret
mounted at --etcd-tls-dir, when it exists) to <conf dir>/mactrunk.d/etcd-ca.crt,
etcd-client.crt, etcd-client.key and write <conf dir>/mactrunk.d/node.json
(directory 0700, files 0600), run the installed plugins' --version, exit 0.
Nothing is written when it is in place already. Exit 1 on failure.

watch: install, then every SECS seconds (default 60) put back a missing plugin,
credential or node.json and follow a rotated Secret; a plugin that differs is
left alone (install replaces it). Exits 0 on SIGTERM or SIGINT.

Options:
  --from DIR          the plugins to install (default: this program's directory)
  --cni-bin-dir DIR   the host's CNI bin dir as mounted (default /host/opt/cni/bin)
  --cni-conf-dir DIR  the host's CNI conf dir as mounted (default /host/etc/cni/net.d)
  --etcd-tls-dir DIR  the mounted etcd client Secret (default /etc/mactrunk/etcd-tls)
  --node-name NAME    the Kubernetes node name for node.json (default: $NODE_NAME)
  --interval SECS     watch: seconds between checks (default 60)
";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Install,
    Watch,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Options {
    mode: Mode,
    from: PathBuf,
    bin_dir: PathBuf,
    conf_dir: PathBuf,
    tls_dir: PathBuf,
    node_name: Option<String>,
    interval: Duration,
}

#[derive(Debug, PartialEq, Eq)]
enum Parsed {
    Run(Options),
    Help,
    Version,
}

fn parse(args: Vec<OsString>, self_dir: &Path, node_env: Option<String>) -> Result<Parsed, String> {
    use lexopt::prelude::*;
    let mut p = lexopt::Parser::from_args(args);
    let mut mode = None;
    let mut o = Options {
        mode: Mode::Install,
        from: self_dir.to_path_buf(),
        bin_dir: "/host/opt/cni/bin".into(),
        conf_dir: "/host/etc/cni/net.d".into(),
        tls_dir: "/etc/mactrunk/etcd-tls".into(),
        node_name: node_env.filter(|n| !n.is_empty()),
        interval: Duration::from_secs(60),
    };
    let path = |p: &mut lexopt::Parser, name: &str| -> Result<PathBuf, String> {
        let v = p.value().map_err(|_| format!("{name} needs a value"))?;
        if v.is_empty() {
            return Err(format!("{name} needs a non-empty value"));
        }
        Ok(PathBuf::from(v))
    };
    while let Some(arg) = p.next().map_err(|e| e.to_string())? {
        match arg {
            Short('h') | Long("help") => return Ok(Parsed::Help),
            Short('V') | Long("version") => return Ok(Parsed::Version),
            Long("from") => o.from = path(&mut p, "--from")?,
            Long("cni-bin-dir") => o.bin_dir = path(&mut p, "--cni-bin-dir")?,
            Long("cni-conf-dir") => o.conf_dir = path(&mut p, "--cni-conf-dir")?,
            Long("etcd-tls-dir") => o.tls_dir = path(&mut p, "--etcd-tls-dir")?,
            Long("node-name") => {
                let v = p
                    .value()
                    .map_err(|_| "--node-name needs a value".to_string())?;
                o.node_name = Some(v.into_string().map_err(|_| "--node-name: not UTF-8")?);
            }
            Long("interval") => {
                let v = p
                    .value()
                    .map_err(|_| "--interval needs a value".to_string())?;
                let secs: u64 = v
                    .to_str()
                    .and_then(|s| s.parse().ok())
                    .filter(|s| (1..=86400).contains(s))
                    .ok_or_else(|| {
                        format!("--interval: {v:?} is not a number of seconds in 1..86400")
                    })?;
                o.interval = Duration::from_secs(secs);
            }
            Value(v) if mode.is_none() => {
                mode = Some(match v.to_str() {
                    Some("install") => Mode::Install,
                    Some("watch") => Mode::Watch,
                    _ => return Err(format!("unknown command {v:?} (install or watch)")),
                });
            }
            other => return Err(other.unexpected().to_string()),
        }
    }
    o.mode = mode.ok_or("missing command: install or watch")?;
    if let Some(n) = &o.node_name
        && (n.is_empty() || n.len() > 253 || n.chars().any(|c| c.is_control()))
    {
        return Err(format!("--node-name: {n:?} is not a node name"));
    }
    Ok(Parsed::Run(o))
}

/// What one pass did; printed one line per file that changed.
#[derive(Debug, Default)]
struct Pass {
    changes: Vec<String>,
    notes: Vec<String>,
    /// Plugins written in this pass (checked with --version afterwards).
    plugins_written: Vec<PathBuf>,
}

/// One pass over everything. `replace`: a plugin that differs is replaced
/// (install); otherwise only a missing one is put back (watch). Node.json is
/// rewritten by install and only put back by watch.
fn pass(o: &Options, replace: bool) -> Result<Pass, FileError> {
    let mut out = Pass::default();
    files::existing_dir(&o.bin_dir)?;
    files::existing_dir(&o.conf_dir)?;
    let all: Vec<&str> = PLUGINS.iter().chain(&OPTIONAL).copied().collect();
    for p in files::remove_stale_temps(&o.bin_dir, &all) {
        out.notes
            .push(format!("removed a killed run's temp file {}", p.display()));
    }
    for name in all {
        let dst = o.bin_dir.join(name);
        let src = o.from.join(name);
        if (!replace && dst.exists()) || (OPTIONAL.contains(&name) && !src.exists()) {
            continue;
        }
        let content = files::read_source(&src)?;
        let done = files::install(&content, &dst, 0o755)?;
        record(&mut out, &dst, done);
        if done != Outcome::Unchanged && PLUGINS.contains(&name) {
            out.plugins_written.push(dst);
        }
    }

    let node_dir = o.conf_dir.join(NODE_DIR);
    if files::private_dir(&node_dir, 0o700)? {
        out.changes
            .push(format!("{}: created (0700)", node_dir.display()));
    }
    let names: Vec<&str> = CREDENTIALS
        .iter()
        .map(|(_, n)| *n)
        .chain([NODE_FILE])
        .collect();
    for p in files::remove_stale_temps(&node_dir, &names) {
        out.notes
            .push(format!("removed a killed run's temp file {}", p.display()));
    }
    if o.tls_dir.is_dir() {
        let mut found = 0;
        for (key, name) in CREDENTIALS {
            let src = o.tls_dir.join(key);
            if !src.exists() {
                continue;
            }
            found += 1;
            let content = files::read_source(&src)?;
            let dst = node_dir.join(name);
            let done = files::install(&content, &dst, 0o600)?;
            record(&mut out, &dst, done);
        }
        if found == 0 {
            out.notes.push(format!(
                "{} holds none of ca.crt, tls.crt, tls.key: no etcd credentials installed",
                o.tls_dir.display()
            ));
        }
    }
    let node = node_dir.join(NODE_FILE);
    if replace || !node.exists() {
        let done = files::install(node_json(o).as_bytes(), &node, 0o600)?;
        record(&mut out, &node, done);
    }
    Ok(out)
}

fn record(out: &mut Pass, path: &Path, done: Outcome) {
    let what = match done {
        Outcome::Unchanged => return,
        Outcome::Created => "installed",
        Outcome::Replaced => "replaced",
    };
    out.changes.push(format!("{}: {what}", path.display()));
}

/// The node's record: its Kubernetes name and what installed it.
fn node_json(o: &Options) -> String {
    let v = serde_json::json!({
        "nodeName": o.node_name,
        "installedBy": format!("mactrunk-install {}", env!("CARGO_PKG_VERSION")),
        "cniBinDir": "/opt/cni/bin",
    });
    format!("{v:#}\n")
}

/// Run an installed plugin's `--version`: proves it runs on this node.
fn check_runs(plugin: &Path) -> Result<(), String> {
    let name = plugin.file_name().and_then(|n| n.to_str()).unwrap_or("?");
    let out = Command::new(plugin)
        .arg("--version")
        .env_clear()
        .output()
        .map_err(|e| format!("{}: cannot run: {e}", plugin.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || !text.starts_with(&format!("{name} ")) {
        return Err(format!(
            "{}: --version failed ({}): {}",
            plugin.display(),
            out.status,
            text.trim()
        ));
    }
    Ok(())
}

/// One pass with its output; Err: the message for stderr.
fn run_pass(o: &Options, replace: bool, verify_all: bool) -> Result<(), String> {
    let done = pass(o, replace).map_err(|e| e.to_string())?;
    for n in &done.notes {
        println!("mactrunk-install: {n}");
    }
    for c in &done.changes {
        println!("mactrunk-install: {c}");
    }
    let verify: Vec<PathBuf> = if verify_all {
        PLUGINS.iter().map(|p| o.bin_dir.join(p)).collect()
    } else {
        done.plugins_written
    };
    for p in verify {
        check_runs(&p)?;
    }
    Ok(())
}

/// Block SIGTERM, SIGINT and SIGHUP (pid 1 in a container has no default
/// action for them) and wait for one for at most `d`: true if one came.
fn signal_within(set: &libc::sigset_t, d: Duration) -> bool {
    let ts = libc::timespec {
        // capped at 2^31 - 1 s, which fits every time_t (see sys/fs.rs)
        tv_sec: d.as_secs().min(i32::MAX as u64) as _,
        tv_nsec: d.subsec_nanos() as libc::c_long,
    };
    loop {
        // SAFETY: `set` is an initialized signal set, `ts` a valid timespec,
        // and a null siginfo pointer is allowed.
        let rc = unsafe { libc::sigtimedwait(set, std::ptr::null_mut(), &ts) };
        if rc > 0 {
            return true;
        }
        match std::io::Error::last_os_error().raw_os_error() {
            Some(libc::EINTR) => continue,
            _ => return false, // EAGAIN: the time is up
        }
    }
}

fn termination_signals() -> libc::sigset_t {
    // SAFETY: sigemptyset initializes the set before sigaddset and
    // pthread_sigmask read it; the signal numbers are valid.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

fn run(o: &Options) -> i32 {
    match o.mode {
        Mode::Install => match run_pass(o, true, true) {
            Ok(()) => {
                println!(
                    "mactrunk-install: {} and {} are installed in {}",
                    PLUGINS[0],
                    PLUGINS[1],
                    o.bin_dir.display()
                );
                0
            }
            Err(e) => {
                eprintln!("mactrunk-install: {e}");
                1
            }
        },
        Mode::Watch => {
            let set = termination_signals();
            if let Err(e) = run_pass(o, true, true) {
                eprintln!("mactrunk-install: {e}");
                return 1;
            }
            println!(
                "mactrunk-install: watching (every {} s) until SIGTERM",
                o.interval.as_secs()
            );
            let mut last_error = None;
            while !signal_within(&set, o.interval) {
                // A failure is reported once and retried at the next check:
                // the watcher keeps running.
                let now = run_pass(o, false, false).err();
                if now.is_some() && now != last_error {
                    eprintln!("mactrunk-install: {}", now.as_deref().unwrap_or(""));
                }
                last_error = now;
            }
            println!("mactrunk-install: stopping");
            0
        }
    }
}

fn main() {
    let self_dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."));
    let node_env = std::env::var("NODE_NAME").ok();
    let code = match parse(std::env::args_os().skip(1).collect(), &self_dir, node_env) {
        Ok(Parsed::Help) => {
            print!("{HELP}");
            0
        }
        Ok(Parsed::Version) => {
            println!("mactrunk-install {}", env!("CARGO_PKG_VERSION"));
            0
        }
        Ok(Parsed::Run(o)) => run(&o),
        Err(e) => {
            eprintln!("mactrunk-install: {e}\n\n{HELP}");
            2
        }
    };
    std::process::exit(code);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn args(s: &str) -> Vec<OsString> {
        s.split_whitespace().map(OsString::from).collect()
    }

    fn opts(s: &str) -> Options {
        match parse(
            args(s),
            Path::new("/opt/mactrunk/bin"),
            Some("node-a".into()),
        ) {
            Ok(Parsed::Run(o)) => o,
            other => panic!("{s}: {other:?}"),
        }
    }

    fn usage(s: &str) -> String {
        parse(args(s), Path::new("/b"), None).unwrap_err()
    }

    #[test]
    fn command_line() {
        let o = opts("install");
        assert_eq!(o.mode, Mode::Install);
        assert_eq!(o.from, Path::new("/opt/mactrunk/bin"));
        assert_eq!(o.bin_dir, Path::new("/host/opt/cni/bin"));
        assert_eq!(o.conf_dir, Path::new("/host/etc/cni/net.d"));
        assert_eq!(o.tls_dir, Path::new("/etc/mactrunk/etcd-tls"));
        assert_eq!(o.node_name.as_deref(), Some("node-a"));
        let o = opts(
            "watch --interval 5 --from /f --cni-bin-dir=/b --cni-conf-dir /c --etcd-tls-dir /t --node-name n1",
        );
        assert_eq!(o.mode, Mode::Watch);
        assert_eq!(o.interval, Duration::from_secs(5));
        assert_eq!((o.from, o.bin_dir), ("/f".into(), "/b".into()));
        assert_eq!((o.conf_dir, o.tls_dir), ("/c".into(), "/t".into()));
        assert_eq!(o.node_name.as_deref(), Some("n1"));
        assert_eq!(
            parse(args("--help"), Path::new("/"), None),
            Ok(Parsed::Help)
        );
        assert_eq!(
            parse(args("watch -V"), Path::new("/"), None),
            Ok(Parsed::Version)
        );
        assert!(usage("").contains("missing command"));
        assert!(usage("frob").contains("unknown command"));
        assert!(usage("install watch").contains("watch"));
        assert!(usage("install --bogus").contains("--bogus"));
        assert!(usage("watch --interval 0").contains("--interval"));
        assert!(usage("watch --interval x").contains("--interval"));
        assert!(usage("install --from").contains("--from needs a value"));
        assert!(usage("install --from=").contains("non-empty"));
        // an empty NODE_NAME is no name
        let o = parse(args("install"), Path::new("/"), Some(String::new())).unwrap();
        assert!(matches!(
            o,
            Parsed::Run(Options {
                node_name: None,
                ..
            })
        ));
    }

    /// A fake host: bin dir, conf dir, a Secret dir and a source dir whose
    /// "plugins" are shell scripts answering --version.
    struct Host {
        _d: tempfile::TempDir,
        o: Options,
    }

    fn plugin_script(name: &str, build: &str) -> String {
        format!("#!/bin/sh\necho \"{name} 0.1.0 ({build})\"\n")
    }

    fn host() -> Host {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        for sub in ["src", "bin", "net.d", "tls"] {
            fs::create_dir(p.join(sub)).unwrap();
        }
        for n in PLUGINS {
            fs::write(p.join("src").join(n), plugin_script(n, "v1")).unwrap();
        }
        fs::write(p.join("tls/ca.crt"), "CA\n").unwrap();
        fs::write(p.join("tls/tls.crt"), "CERT\n").unwrap();
        fs::write(p.join("tls/tls.key"), "KEY\n").unwrap();
        let o = Options {
            mode: Mode::Install,
            from: p.join("src"),
            bin_dir: p.join("bin"),
            conf_dir: p.join("net.d"),
            tls_dir: p.join("tls"),
            node_name: Some("node-a".into()),
            interval: Duration::from_secs(60),
        };
        Host { _d: d, o }
    }

    fn mode_of(p: &Path) -> u32 {
        fs::symlink_metadata(p).unwrap().mode() & 0o7777
    }

    fn snapshot(dir: &Path) -> Vec<(String, u64, i64)> {
        let mut v: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| {
                let m = e.metadata().unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    m.ino(),
                    m.mtime_nsec(),
                )
            })
            .collect();
        v.sort();
        v
    }

    #[test]
    fn install_writes_everything_once_then_nothing() {
        let h = host();
        let o = &h.o;
        let done = pass(o, true).unwrap();
        assert_eq!(done.plugins_written.len(), 2);
        for n in PLUGINS {
            let dst = o.bin_dir.join(n);
            assert_eq!(fs::read(&dst).unwrap(), fs::read(o.from.join(n)).unwrap());
            assert_eq!(mode_of(&dst), 0o755);
            check_runs(&dst).unwrap();
        }
        let nd = o.conf_dir.join(NODE_DIR);
        assert_eq!(mode_of(&nd), 0o700);
        for (key, name) in CREDENTIALS {
            let f = nd.join(name);
            assert_eq!(
                fs::read(&f).unwrap(),
                fs::read(o.tls_dir.join(key)).unwrap()
            );
            assert_eq!(mode_of(&f), 0o600, "{name}");
        }
        let node: serde_json::Value =
            serde_json::from_slice(&fs::read(nd.join(NODE_FILE)).unwrap()).unwrap();
        assert_eq!(node["nodeName"], "node-a");
        assert_eq!(mode_of(&nd.join(NODE_FILE)), 0o600);
        // only mactrunk.d in the conf dir: never a network config
        let confs: Vec<_> = fs::read_dir(&o.conf_dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(confs, [OsString::from(NODE_DIR)]);

        // idempotent: nothing written the second time
        let (bins, nodes) = (snapshot(&o.bin_dir), snapshot(&nd));
        let again = pass(o, true).unwrap();
        assert!(again.changes.is_empty(), "{:?}", again.changes);
        assert!(again.plugins_written.is_empty());
        assert_eq!(snapshot(&o.bin_dir), bins);
        assert_eq!(snapshot(&nd), nodes);
    }

    #[test]
    fn an_upgrade_replaces_and_watch_leaves_a_different_plugin_alone() {
        let h = host();
        let o = &h.o;
        pass(o, true).unwrap();
        fs::write(o.from.join("mactrunk"), plugin_script("mactrunk", "v2")).unwrap();
        // watch: present but different -> left alone
        let w = pass(o, false).unwrap();
        assert!(w.changes.is_empty(), "{:?}", w.changes);
        assert!(
            fs::read_to_string(o.bin_dir.join("mactrunk"))
                .unwrap()
                .contains("v1")
        );
        // install: replaced
        let i = pass(o, true).unwrap();
        assert_eq!(i.plugins_written, [o.bin_dir.join("mactrunk")]);
        assert!(
            fs::read_to_string(o.bin_dir.join("mactrunk"))
                .unwrap()
                .contains("v2")
        );
        // watch puts back what is missing
        fs::remove_file(o.bin_dir.join("mactrunk-ipam")).unwrap();
        fs::remove_file(o.conf_dir.join(NODE_DIR).join("etcd-client.key")).unwrap();
        fs::remove_file(o.conf_dir.join(NODE_DIR).join(NODE_FILE)).unwrap();
        let w = pass(o, false).unwrap();
        assert_eq!(w.changes.len(), 3, "{:?}", w.changes);
        assert!(o.bin_dir.join("mactrunk-ipam").exists());
        assert!(o.conf_dir.join(NODE_DIR).join(NODE_FILE).exists());
        // a rotated Secret is followed by watch
        fs::write(o.tls_dir.join("tls.crt"), "CERT2\n").unwrap();
        let w = pass(o, false).unwrap();
        assert_eq!(w.changes.len(), 1, "{:?}", w.changes);
        assert_eq!(
            fs::read_to_string(o.conf_dir.join(NODE_DIR).join("etcd-client.crt")).unwrap(),
            "CERT2\n"
        );
    }

    #[test]
    fn the_etcd_helper_is_installed_when_the_image_has_it() {
        let h = host();
        let o = &h.o;
        pass(o, true).unwrap();
        assert!(!o.bin_dir.join("mactrunk-etcd").exists());
        fs::write(o.from.join("mactrunk-etcd"), "helper v1").unwrap();
        let done = pass(o, true).unwrap();
        assert_eq!(done.changes.len(), 1, "{:?}", done.changes);
        assert!(done.plugins_written.is_empty(), "no --version check for it");
        assert_eq!(
            fs::read(o.bin_dir.join("mactrunk-etcd")).unwrap(),
            b"helper v1"
        );
        assert_eq!(mode_of(&o.bin_dir.join("mactrunk-etcd")), 0o755);
        // watch puts it back when it goes missing
        fs::remove_file(o.bin_dir.join("mactrunk-etcd")).unwrap();
        pass(o, false).unwrap();
        assert!(o.bin_dir.join("mactrunk-etcd").exists());
    }

    #[test]
    fn no_secret_no_credentials_and_failures_are_reported() {
        let h = host();
        let mut o = h.o.clone();
        o.tls_dir = o.tls_dir.join("missing");
        pass(&o, true).unwrap();
        let nd = o.conf_dir.join(NODE_DIR);
        assert!(!nd.join("etcd-ca.crt").exists());
        // a Secret without the expected keys: a note, nothing copied
        let empty = o.conf_dir.parent().unwrap().join("empty");
        fs::create_dir(&empty).unwrap();
        o.tls_dir = empty;
        let done = pass(&o, true).unwrap();
        assert!(
            done.notes.iter().any(|n| n.contains("none of")),
            "{:?}",
            done.notes
        );
        // a missing bin dir (hostPath not mounted) is an error naming it
        let mut bad = o.clone();
        bad.bin_dir = o.bin_dir.join("nope");
        let e = pass(&bad, true).unwrap_err().to_string();
        assert!(e.contains("nope"), "{e}");
        // a missing source plugin too
        let mut bad = o.clone();
        bad.from = o.from.join("nope");
        assert!(
            pass(&bad, true)
                .unwrap_err()
                .to_string()
                .contains("nope/mactrunk")
        );
        // a plugin that does not run is caught by the check
        let broken = o.bin_dir.join("mactrunk");
        fs::write(&broken, "#!/bin/sh\nexit 3\n").unwrap();
        fs::set_permissions(&broken, fs::Permissions::from_mode(0o755)).unwrap();
        assert!(
            check_runs(&broken)
                .unwrap_err()
                .contains("--version failed")
        );
    }

    #[test]
    fn signals_end_the_wait() {
        let set = termination_signals();
        let t = std::time::Instant::now();
        assert!(!signal_within(&set, Duration::from_millis(20)));
        assert!(t.elapsed() >= Duration::from_millis(20));
        // SAFETY: raising a blocked signal only makes it pending.
        unsafe { libc::pthread_kill(libc::pthread_self(), libc::SIGHUP) };
        assert!(signal_within(&set, Duration::from_secs(5)));
    }
}
