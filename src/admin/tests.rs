//! The admin tool end to end: command lines through [`super::run`] against
//! real stores filled by IPAM ADDs.

use std::ffi::OsString;
use std::path::Path;

use serde_json::{Value, json};

use super::*;
use crate::cni::env::CniArgs;
use crate::ipam::config::DEFAULT_LOCK_TIMEOUT;
use crate::ipam::store::{FileStore, Owner, Store};
use crate::ipam::{self, IpamConfig};

fn args(s: &str) -> Vec<OsString> {
    s.split_whitespace().map(OsString::from).collect()
}

fn conf_json(name: &str, dir: &Path) -> Value {
    json!({
        "cniVersion": "1.1.0", "name": name, "type": "mactrunk", "master": "eth0",
        "ipam": {"type": "mactrunk-ipam", "dataDir": dir, "subnet": "10.9.0.0/29",
                 "exclude": ["10.9.0.6"]}
    })
}

/// Every file and directory under `root`: path, kind, mode, size, mtime
/// and ctime (ns), content of files.
fn tree(root: &Path) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(p) = todo.pop() {
        let m = std::fs::symlink_metadata(&p).unwrap();
        let content = if m.is_file() {
            format!("{:?}", std::fs::read(&p).unwrap())
        } else {
            String::new()
        };
        out.push(format!(
            "{} {:o} {} {}.{} {}.{} {content}",
            p.display(),
            m.mode(),
            m.size(),
            m.mtime(),
            m.mtime_nsec(),
            m.ctime(),
            m.ctime_nsec()
        ));
        if m.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                todo.push(e.unwrap().path());
            }
        }
    }
    out.sort();
    out
}

fn run_args(a: &[&str]) -> (i32, String, String) {
    let a: Vec<OsString> = a.iter().map(OsString::from).collect();
    run_raw(&a)
}

fn run_raw(a: &[OsString]) -> (i32, String, String) {
    let mut out = Vec::new();
    let mut err = Vec::new();
    let rc = run(a, &mut out, &mut err, &|_| None);
    (
        rc,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

/// Issue 8, finding 10: the read-only commands (list, usage, gc
/// --dry-run) write nothing anywhere: not in our stores, not in stores
/// of the reference host-local, not in unrelated directories. One unsafe
/// store does not hide the others: it is reported, exit status 1.
#[test]
fn read_only_commands_write_nothing_and_report_unsafe_stores() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let ipc = IpamConfig::from_netconf(&conf_json("blue", &data), &CniArgs::default()).unwrap();
    ipam::add(&ipc, &Owner::new("c1", "eth0")).unwrap();
    // a store as the reference host-local leaves it
    let hl = data.join("hl");
    std::fs::create_dir(&hl).unwrap();
    std::fs::write(hl.join("10.9.0.2"), "h1\r\neth0").unwrap();
    std::fs::write(hl.join("last_reserved_ip.0"), "10.9.0.2").unwrap();
    std::fs::write(hl.join("lock"), "").unwrap();
    // an unrelated directory (think /etc)
    std::fs::create_dir(data.join("etcish")).unwrap();
    std::fs::write(data.join("etcish/passwd"), "root:x:0:0").unwrap();
    // a store anyone may write to
    let bad = data.join("bad");
    std::fs::create_dir(&bad).unwrap();
    std::fs::write(bad.join("10.9.0.3"), "b1\r\neth0").unwrap();
    std::fs::set_permissions(&bad, std::fs::Permissions::from_mode(0o777)).unwrap();
    let hl_conf = tmp.path().join("hl.conf");
    std::fs::write(
        &hl_conf,
        json!({"cniVersion": "1.0.0", "name": "hl", "type": "macvlan",
               "ipam": {"type": "host-local", "subnet": "10.9.0.0/29", "dataDir": data}})
        .to_string(),
    )
    .unwrap();
    let before = tree(tmp.path());
    let dd = data.to_str().unwrap();

    let (rc, out, err) = run_args(&["list", "--data-dir", dd]);
    assert_eq!(rc, 1, "an unsafe store is a failure: {out} {err}");
    assert!(out.contains("blue     10.9.0.2  c1         eth0"), "{out}");
    assert!(out.contains("hl       10.9.0.2  h1         eth0"), "{out}");
    assert!(out.contains("etcish   -"), "{out}");
    assert!(
        out.contains("error: bad: ") && out.contains("must be private"),
        "{out}"
    );
    assert!(!out.contains("b1"), "{out}");
    let (rc, out, _) = run_args(&["list", "--data-dir", dd, "--json"]);
    assert_eq!(rc, 1);
    let j: Value = serde_json::from_str(&out).unwrap();
    let names: Vec<&str> = j["networks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["blue", "etcish", "hl"]);
    assert_eq!(j["errors"][0]["name"], "bad");
    assert!(
        j["errors"][0]["error"]
            .as_str()
            .unwrap()
            .contains("must be private")
    );
    let (rc, _, _) = run_args(&["list", "--data-dir", dd, "bad", "--json"]);
    assert_eq!(rc, 1);
    let (rc, out, _) = run_args(&["list", "--data-dir", dd, "hl"]);
    assert_eq!(rc, 0, "{out}");
    let (rc, out, _) = run_args(&["gc", "--data-dir", dd, "hl", "--keep", "x", "--dry-run"]);
    assert_eq!(rc, 0, "{out}");
    assert!(out.contains("would release 1 allocation, kept 0"), "{out}");
    let (rc, out, _) = run_args(&["usage", "--config", hl_conf.to_str().unwrap()]);
    assert_eq!(rc, 0, "{out}");
    assert_eq!(tree(tmp.path()), before, "a read-only command wrote");
}

/// Issue 8, finding 11: arguments that are not UTF-8 are a usage error,
/// `--version` prints the version, and with `--json` every failure,
/// usage errors included, is one JSON object on stdout.
#[test]
fn raw_arguments_version_and_json_failures() {
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt;
    let os = |v: &[&[u8]]| -> Vec<OsString> {
        v.iter().map(|b| OsString::from_vec(b.to_vec())).collect()
    };
    let (rc, out, err) = run_raw(&os(&[b"list", b"\xff"]));
    assert_eq!((rc, out.as_str()), (2, ""));
    assert!(err.contains("argument 2 is not valid UTF-8"), "{err}");
    let (rc, out, _) = run_raw(&os(&[b"list", b"--json", b"--data-dir", b"/x\xfe"]));
    assert_eq!(rc, 2);
    let j: Value = serde_json::from_str(&out).unwrap();
    assert!(
        j["error"]
            .as_str()
            .unwrap()
            .contains("argument 4 is not valid UTF-8")
    );
    assert_eq!(j["exitStatus"], 2);

    for v in ["--version", "-V"] {
        let (rc, out, _) = run_raw(&os(&[v.as_bytes()]));
        assert_eq!(rc, 0);
        assert_eq!(
            out,
            format!("{}\n", crate::cni::entry::version_text("mactrunk-ipam"))
        );
        assert!(out.starts_with("mactrunk-ipam 0.") && out.contains("spec versions"));
    }

    // usage errors and failures with --json: JSON on stdout, message on stderr
    for (a, status, needle) in [
        ("frob --json", 2, "unknown command"),
        ("list a b --json", 2, "unexpected argument"),
        ("gc --json net", 2, "--keep"),
        (
            "list --json --data-dir /nonexistent-mactrunk nosuch",
            1,
            "no IPAM store",
        ),
    ] {
        let (rc, out, err) = run_args(&a.split(' ').collect::<Vec<_>>());
        assert_eq!(rc, status, "{a}");
        let j: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{a}: {e}: {out}"));
        assert!(j["error"].as_str().unwrap().contains(needle), "{a}: {out}");
        assert_eq!(j["exitStatus"], status);
        assert!(err.contains(needle), "{a}: {err}");
    }
    // without --json, stdout stays empty; after "--", --json is an argument
    let (rc, out, _) = run_args(&["frob"]);
    assert_eq!((rc, out.as_str()), (2, ""));
    let (rc, out, _) = run_args(&["list", "--", "--json"]);
    assert_eq!((rc, out.as_str()), (2, ""));
}

/// A store filled by real IPAM ADDs: c1/eth0 10.9.0.2, c1/net1 .3,
/// c2/eth0 .4, c3/eth0 .5 (the /29 is then full).
struct Filled {
    tmp: tempfile::TempDir,
    data: std::path::PathBuf,
    conf: Value,
    ipc: IpamConfig,
}

impl Filled {
    fn new() -> Filled {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let conf = conf_json("blue", &data);
        let ipc = IpamConfig::from_netconf(&conf, &CniArgs::default()).unwrap();
        for (cid, ifname) in [
            ("c1", "eth0"),
            ("c1", "net1"),
            ("c2", "eth0"),
            ("c3", "eth0"),
        ] {
            ipam::add(&ipc, &Owner::new(cid, ifname)).unwrap();
        }
        Filled {
            tmp,
            data,
            conf,
            ipc,
        }
    }

    /// Run a command line with `{dd}` replaced by the data dir.
    fn run(&self, line: &str) -> (i32, String, String) {
        run_raw(&args(
            &line.replace("{dd}", &self.data.display().to_string()),
        ))
    }
}

#[test]
fn list_on_a_store() {
    let f = Filled::new();
    let (rc, out, _) = f.run("list --data-dir {dd} --json");
    assert_eq!(rc, 0);
    let j: Value = serde_json::from_str(&out).unwrap();
    let ips: Vec<&str> = j["networks"][0]["allocations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["ip"].as_str().unwrap())
        .collect();
    assert_eq!(ips, ["10.9.0.2", "10.9.0.3", "10.9.0.4", "10.9.0.5"]);
    assert!(j["networks"][0]["allocations"][0]["since"].is_string());
    let (rc, out, _) = f.run("list --data-dir {dd}");
    assert_eq!(rc, 0);
    assert!(out.contains("blue     10.9.0.3  c1         net1"), "{out}");
    let summary = format!("4 allocations in 1 network ({})\n", f.data.display());
    assert!(out.ends_with(&summary), "{out}");

    let (rc, _, err) = f.run("list --data-dir {dd} nosuch");
    assert_eq!(rc, 1);
    assert!(err.contains("no IPAM store"), "{err}");
    assert!(
        !f.data.join("nosuch").exists(),
        "list must not create a store"
    );
    let (rc, out, _) = f.run("list --data-dir {dd}/missing");
    assert_eq!((rc, out.contains("no IPAM stores")), (0, true));
}

#[test]
fn usage_on_a_store() {
    let f = Filled::new();
    let dir = f.tmp.path();
    let cf = dir.join("10-blue.conf");
    std::fs::write(&cf, f.conf.to_string()).unwrap();
    let (rc, out, _) = f.run(&format!("usage --config {} --json", cf.display()));
    assert_eq!(rc, 0, "{out}");
    let j: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["networks"][0]["rangeSets"][0]["used"], 4);
    assert_eq!(j["networks"][0]["rangeSets"][0]["free"], 0);
    // and from a directory, next to a broken and an unrelated config
    std::fs::write(dir.join("20-other.conf"), r#"{"name":"o","type":"bridge"}"#).unwrap();
    std::fs::write(dir.join("30-bad.conflist"), "{").unwrap();
    std::fs::write(dir.join("README"), "not a config").unwrap();
    let (rc, out, _) = f.run(&format!("usage --conf-dir {}", dir.display()));
    assert_eq!(rc, 1, "a broken config is an error: {out}");
    assert!(out.contains("blue "), "{out}");
    assert!(out.contains("30-bad.conflist: not valid JSON"), "{out}");
    assert!(
        !out.contains("20-other") && !out.contains("README"),
        "{out}"
    );
}

#[test]
fn release_on_a_store() {
    let f = Filled::new();
    let (rc, out, _) = f.run("release --data-dir {dd} blue --ip 10.9.0.4 --json");
    assert_eq!(rc, 0);
    let j: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["released"][0]["containerID"], "c2");
    assert!(!f.data.join("blue/10.9.0.4").exists());
    let (rc, _, err) = f.run("release --data-dir {dd} blue --ip 10.9.0.4");
    assert_eq!(rc, 1);
    assert!(err.contains("10.9.0.4 is not allocated"), "{err}");
    let (rc, out, _) = f.run("release --data-dir {dd} blue --container c1 --ifname net1");
    assert_eq!(rc, 0);
    assert!(
        out.contains("10.9.0.3") && out.ends_with("released 1 allocation\n"),
        "{out}"
    );
    // the index follows: the IPAM sees c1/net1 as gone, c1/eth0 still there
    let mut st = FileStore::open(&f.data.join("blue"), DEFAULT_LOCK_TIMEOUT).unwrap();
    assert!(st.owned_by(&Owner::new("c1", "net1")).unwrap().is_empty());
    assert_eq!(st.owned_by(&Owner::new("c1", "eth0")).unwrap().len(), 1);
}

#[test]
fn gc_on_a_store() {
    let f = Filled::new();
    // dry run changes nothing
    let (rc, out, _) = f.run("gc --data-dir {dd} blue --keep c1 --dry-run");
    assert_eq!(rc, 0);
    assert!(out.contains("would release 2 allocations, kept 2"), "{out}");
    assert!(f.data.join("blue/10.9.0.5").exists());
    // keep one interface of c1 only
    let kf = f.tmp.path().join("keep");
    std::fs::write(&kf, "# live containers\nc1:eth0\n").unwrap();
    let (rc, out, _) = f.run(&format!(
        "gc --data-dir {{dd}} blue --keep-file {} --json",
        kf.display()
    ));
    assert_eq!(rc, 0);
    let j: Value = serde_json::from_str(&out).unwrap();
    let released: Vec<&str> = j["released"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["ip"].as_str().unwrap())
        .collect();
    assert_eq!(released, ["10.9.0.3", "10.9.0.4", "10.9.0.5"]);
    assert_eq!(j["kept"], 1);
    assert!(!f.data.join("blue/10.9.0.5").exists());
    // freed addresses are allocatable again
    let got = ipam::add(&f.ipc, &Owner::new("c4", "eth0")).unwrap();
    assert_eq!(got.ips.len(), 1);
    // an empty keep file releases everything
    std::fs::write(&kf, "").unwrap();
    let (rc, out, _) = f.run(&format!(
        "gc --data-dir {{dd}} blue --keep-file {}",
        kf.display()
    ));
    assert_eq!(rc, 0);
    assert!(out.contains("released 2 allocations, kept 0"), "{out}");
    let (rc, out, _) = f.run("list --data-dir {dd} blue --json");
    assert_eq!(rc, 0);
    let j: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["networks"][0]["allocations"], json!([]));
    // a keep file that cannot be read is a failure
    let (rc, _, err) = f.run("gc --data-dir {dd} blue --keep-file {dd}/nope");
    assert_eq!(rc, 1);
    assert!(err.contains("--keep-file"), "{err}");
}

/// Usage errors: exit 2, the command's help on stderr, nothing on stdout;
/// --help: the help on stdout, exit 0.
#[test]
fn usage_errors_and_help() {
    let (rc, out, err) = run_args(&["gc", "blue"]);
    assert_eq!((rc, out.as_str()), (2, ""));
    assert!(
        err.starts_with("mactrunk-ipam: gc needs the live containers")
            && err.contains("Release every allocation"),
        "{err}"
    );
    let (rc, out, err) = run_args(&["list", "--dry-run=yes"]);
    assert_eq!((rc, out.as_str()), (2, ""));
    assert!(err.contains("does not apply to list"), "{err}");
    let (rc, out, _) = run_args(&["--help"]);
    assert_eq!(rc, 0);
    assert!(out.contains("mactrunk-ipam list"));
    let (rc, out, _) = run_args(&["gc", "-nh"]);
    assert_eq!(rc, 0);
    assert!(out.starts_with("mactrunk-ipam gc "), "{out}");
}

/// A quarantined address (a probe found it in use): `list` shows it apart,
/// in the table and in --json; `gc` keeps it whatever the keep list;
/// `release --ip` frees it, after which it is allocated again.
#[test]
fn quarantined_addresses_list_gc_release() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let ipc = IpamConfig::from_netconf(&conf_json("blue", &data), &CniArgs::default()).unwrap();
    let c1 = Owner::new("c1", "eth0");
    ipam::add(&ipc, &c1).unwrap();
    let found = [("10.9.0.2".parse().unwrap(), "52:54:00:00:00:01".into())];
    ipam::quarantine(&ipc, &c1, None, &found, 32, true).unwrap();
    let dd = data.to_str().unwrap();
    let (rc, out, err) = run_args(&["list", "--data-dir", dd]);
    assert_eq!(rc, 0, "{err}");
    assert!(out.contains("blue     10.9.0.3  c1         eth0"), "{out}");
    assert!(
        out.contains(
            "NETWORK  IP        FOUND-BY           SINCE\nblue     10.9.0.2  52:54:00:00:00:01  "
        ),
        "{out}"
    );
    let last = out.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("1 allocation and 1 quarantined address in 1 network ("),
        "{out}"
    );
    let (_, out, _) = run_args(&["list", "--data-dir", dd, "--json"]);
    let j: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["networks"][0]["allocations"].as_array().unwrap().len(), 1);
    assert_eq!(j["networks"][0]["quarantined"][0]["ip"], "10.9.0.2");
    assert_eq!(
        j["networks"][0]["quarantined"][0]["foundBy"],
        "52:54:00:00:00:01"
    );
    // gc with nobody to keep releases c1's address, not the quarantine.
    let (rc, out, err) = run_args(&["gc", "--data-dir", dd, "blue", "--keep", "nobody"]);
    assert_eq!(rc, 0, "{out} {err}");
    assert!(out.contains("released 1 allocation, kept 1"), "{out}");
    assert!(data.join("blue/10.9.0.2").exists());
    let (rc, out, err) = run_args(&["release", "--data-dir", dd, "blue", "--ip", "10.9.0.2"]);
    assert_eq!(rc, 0, "{out} {err}");
    assert!(out.contains("conflict:52:54:00:00:00:01"), "{out}");
    assert!(!data.join("blue/10.9.0.2").exists());
    // Round robin reaches it again once the rest is taken: .4, .5, then .2.
    for id in ["a", "b"] {
        ipam::add(&ipc, &Owner::new(id, "eth0")).unwrap();
    }
    let out = ipam::add(&ipc, &Owner::new("c", "eth0")).unwrap();
    assert_eq!(out.ips[0].address.ip().to_string(), "10.9.0.2");
}

/// `metrics`: range sets from the configs, every store of the data dir,
/// quarantines, orphans (a recorded netns that no longer exists), VLAN
/// users; `--textfile` writes the same text atomically; read-only.
#[test]
fn metrics_of_stores_configs_and_vlan_parents() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let confs = tmp.path().join("net.d");
    std::fs::create_dir(&confs).unwrap();
    let blue = conf_json("blue", &data);
    std::fs::write(confs.join("10-blue.conf"), blue.to_string()).unwrap();
    let ipc = IpamConfig::from_netconf(&blue, &CniArgs::default()).unwrap();
    let here = crate::sys::netns::NetNs::current().unwrap().id().unwrap();
    // c1 in this (live) netns, c2 in one that does not exist, c3 quarantined away
    ipam::add_in(&ipc, &Owner::new("c1", "eth0"), Some(&here)).unwrap();
    ipam::add_in(&ipc, &Owner::new("c2", "eth0"), Some("0:1")).unwrap();
    let c3 = Owner::new("c3", "eth0");
    let got = ipam::add_in(&ipc, &c3, Some(&here)).unwrap();
    let found = [(got.fresh[0], "52:54:00:00:00:01".into())];
    ipam::quarantine(&ipc, &c3, Some(&here), &found, 32, false).unwrap();
    // a store no config names (as host-local leaves it): counted, no range sets
    let hl = data.join("hl");
    std::fs::create_dir(&hl).unwrap();
    std::fs::set_permissions(&hl, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(hl.join("10.7.0.2"), "h1\r\neth0").unwrap();
    // a VLAN parent with two users
    let reg = data.join(".mactrunk-vlans");
    std::fs::create_dir(&reg).unwrap();
    std::fs::write(
        reg.join("eth0.50.json"),
        json!({"link": "eth0.50", "lower": "eth0", "vid": 50, "protocol": "802.1Q",
               "ifindex": 7, "created": "2026-01-01T00:00:00Z",
               "users": [{"network": "blue", "containerID": "c1", "ifname": "eth0"},
                         {"network": "blue", "containerID": "c2", "ifname": "eth0"}]})
        .to_string(),
    )
    .unwrap();
    let (dd, cd) = (data.to_str().unwrap(), confs.to_str().unwrap());
    let before = (tree(&data), tree(&confs));

    let (rc, out, err) = run_args(&["metrics", "--data-dir", dd, "--conf-dir", cd]);
    assert_eq!(rc, 0, "{out} {err}");
    // /29: range .1-.6 minus the gateway .1 and the excluded .6 (the usage command agrees)
    let set = r#"{network="blue",range_set="ipam.subnet",subnet="10.9.0.0/29",range="10.9.0.1-10.9.0.6"}"#;
    let (_, usage, _) = run_args(&["usage", "--conf-dir", cd, "--json"]);
    let u: Value = serde_json::from_str(&usage).unwrap();
    assert_eq!(u["networks"][0]["rangeSets"][0]["capacity"], 4);
    for (family, value) in [
        ("mactrunk_ipam_range_capacity", 4),
        ("mactrunk_ipam_range_used", 2),
        ("mactrunk_ipam_range_quarantined", 1),
        ("mactrunk_ipam_range_free", 1),
    ] {
        let line = format!("{family}{set} {value}\n");
        assert!(out.contains(&line), "{line} not in\n{out}");
    }
    for line in [
        "mactrunk_ipam_allocations{network=\"blue\"} 2\n",
        "mactrunk_ipam_allocations{network=\"hl\"} 1\n",
        "mactrunk_ipam_quarantined_addresses{network=\"blue\"} 1\n",
        "mactrunk_ipam_orphaned_allocations{network=\"blue\"} 1\n",
        "mactrunk_ipam_orphaned_allocations{network=\"hl\"} 0\n",
        "mactrunk_ipam_store_readable{network=\"hl\"} 1\n",
        "mactrunk_vlan_parent_users{link=\"eth0.50\",lower=\"eth0\",vlan=\"50\"} 2\n",
        "mactrunk_metrics_errors 0\n",
    ] {
        assert!(out.contains(line), "{line} not in\n{out}");
    }
    assert!(
        out.contains("mactrunk_ipam_oldest_allocation_age_seconds{network=\"blue\"} "),
        "{out}"
    );
    assert!(
        !out.contains("range_set=\"ipam.subnet\",subnet=\"10.7"),
        "no range sets for a store without config: {out}"
    );

    // --no-netns-check: no orphan family
    let (rc, out2, _) = run_args(&[
        "metrics",
        "--data-dir",
        dd,
        "--conf-dir",
        cd,
        "--no-netns-check",
    ]);
    assert_eq!(rc, 0);
    assert!(!out2.contains("orphaned"), "{out2}");

    // --textfile: nothing on stdout, the same text in the file, 0644, no temp file
    let tf_dir = tmp.path().join("textfile");
    std::fs::create_dir(&tf_dir).unwrap();
    let tf = tf_dir.join("mactrunk.prom");
    std::fs::write(&tf, "old\n").unwrap();
    let (rc, out3, err) = run_args(&[
        "metrics",
        "--data-dir",
        dd,
        "--conf-dir",
        cd,
        "--textfile",
        tf.to_str().unwrap(),
    ]);
    assert_eq!((rc, out3.as_str()), (0, ""), "{err}");
    let written = std::fs::read_to_string(&tf).unwrap();
    let strip_age = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| !l.starts_with("mactrunk_ipam_oldest_allocation_age_seconds{"))
            .map(String::from)
            .collect()
    };
    assert_eq!(strip_age(&written), strip_age(&out));
    assert_eq!(
        std::fs::metadata(&tf).unwrap().permissions().mode() & 0o777,
        0o644
    );
    let names: Vec<_> = std::fs::read_dir(&tf_dir).unwrap().flatten().collect();
    assert_eq!(names.len(), 1, "{names:?}");
    // --json says where it went
    let (rc, j, _) = run_args(&[
        "metrics",
        "--data-dir",
        dd,
        "--conf-dir",
        cd,
        "--json",
        "--textfile",
        tf.to_str().unwrap(),
    ]);
    assert_eq!(rc, 0);
    let j: Value = serde_json::from_str(&j).unwrap();
    assert_eq!(j["textfile"], tf.to_str().unwrap());
    assert_eq!(j["networks"][0]["rangeSets"][0]["free"], 1);
    assert_eq!(
        (tree(&data), tree(&confs)),
        before,
        "metrics wrote besides its textfile"
    );

    // a broken config: reported and counted, the rest still there, exit 1
    std::fs::write(confs.join("20-bad.conf"), "{not json").unwrap();
    let (rc, out, err) = run_args(&["metrics", "--data-dir", dd, "--conf-dir", cd]);
    assert_eq!(rc, 1, "{err}");
    assert!(out.contains("mactrunk_metrics_errors 1\n"), "{out}");
    assert!(out.contains(&format!("mactrunk_ipam_range_capacity{set} 4\n")));
    // a textfile in a directory that does not exist: a failure naming it
    let (rc, _, err) = run_args(&[
        "metrics",
        "--data-dir",
        dd,
        "--no-netns-check",
        "--textfile",
        "/nonexistent-mactrunk/m.prom",
    ]);
    assert_eq!(rc, 1);
    assert!(err.contains("/nonexistent-mactrunk/.m.prom."), "{err}");
    // an explicit config dir that does not exist fails; the default one may be missing
    let (rc, _, err) = run_args(&[
        "metrics",
        "--data-dir",
        dd,
        "--conf-dir",
        "/nonexistent-mactrunk",
    ]);
    assert_eq!(rc, 1, "{err}");
}
