//! What each subcommand does against the stores and configs: the only
//! I/O of the admin tool besides printing. `release` and `gc` open stores
//! with [`FileStore`] (the plugins' lock); `list`, `usage` and `gc
//! --dry-run` with [`StoreReader`], which creates and writes nothing.

use std::collections::BTreeSet;
use std::fmt;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::args::{Command, ConfSource, Keep, ReleaseTarget};
use super::report::{
    GcReport, ListReport, NetworkListing, NetworkUsage, ReleaseReport, Report, StoreFailure,
    UsageReport,
};
use crate::cni::CniError;
use crate::cni::env::CniArgs;
use crate::cni::names::is_valid_id;
use crate::ipam::config::DEFAULT_LOCK_TIMEOUT;
use crate::ipam::store::{Allocation, FileStore, Store, StoreError, StoreReader};
use crate::ipam::{self, IpamConfig};

/// A failure of a command (exit 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure(pub(crate) String);

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Failure {
        Failure(e.to_string())
    }
}

impl From<CniError> for Failure {
    fn from(e: CniError) -> Failure {
        if e.details.is_empty() {
            Failure(e.msg)
        } else {
            Failure(format!("{}: {}", e.msg, e.details))
        }
    }
}

/// Execute a parsed command.
pub(crate) fn execute(cmd: &Command) -> Result<Report, Failure> {
    match cmd {
        Command::List { data_dir, network } => list(data_dir, network.as_deref()).map(Report::List),
        Command::Usage { source } => usage(source).map(Report::Usage),
        Command::Release {
            data_dir,
            network,
            target,
        } => release(data_dir, network, target).map(Report::Release),
        Command::Gc {
            data_dir,
            network,
            keep,
            keep_files,
            dry_run,
        } => {
            let mut all = keep.clone();
            all.extend(read_keep_files(keep_files)?);
            gc(data_dir, network, &all, *dry_run).map(Report::Gc)
        }
    }
}

/// The store directory of `network`, which must exist (never create one).
fn existing_store(data_dir: &Path, network: &str) -> Result<PathBuf, Failure> {
    let dir = data_dir.join(network);
    match std::fs::symlink_metadata(&dir) {
        Ok(m) if m.is_dir() => Ok(dir),
        Ok(_) => Err(Failure(format!("{} is not a directory", dir.display()))),
        Err(e) if e.kind() == ErrorKind::NotFound => Err(Failure(format!(
            "network {network:?} has no IPAM store in {} (no {})",
            data_dir.display(),
            dir.display()
        ))),
        Err(e) => Err(Failure(format!("cannot stat {}: {e}", dir.display()))),
    }
}

// ------------------------------------------------------------------ list

fn list(data_dir: &Path, network: Option<&str>) -> Result<ListReport, Failure> {
    let names = match network {
        Some(n) => {
            existing_store(data_dir, n)?;
            vec![n.to_string()]
        }
        None => store_names(data_dir)?,
    };
    let mut report = ListReport {
        data_dir: data_dir.to_path_buf(),
        networks: Vec::new(),
        errors: Vec::new(),
    };
    // One store that cannot be read does not hide the others.
    for name in names {
        let dir = data_dir.join(&name);
        match list_one(&name, &dir) {
            Ok(l) => report.networks.push(l),
            Err(Failure(error)) => report.errors.push(StoreFailure { name, dir, error }),
        }
    }
    Ok(report)
}

/// The directories in `data_dir` named like a network, sorted; none if
/// `data_dir` does not exist (nothing has been allocated yet).
fn store_names(data_dir: &Path) -> Result<Vec<String>, Failure> {
    let entries = match std::fs::read_dir(data_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Failure(format!("cannot list {}: {e}", data_dir.display()))),
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| is_valid_id(n))
        .collect();
    names.sort();
    Ok(names)
}

/// Read-only: see [`StoreReader`] (nothing is created or written, whatever DIR is).
fn list_one(name: &str, dir: &Path) -> Result<NetworkListing, Failure> {
    let store = StoreReader::open(dir, DEFAULT_LOCK_TIMEOUT)?;
    let (all, problems) = store.scan()?;
    let (quarantined, allocations) = all.into_iter().partition(|a| a.owner.is_quarantine());
    Ok(NetworkListing {
        name: name.to_string(),
        dir: dir.to_path_buf(),
        allocations,
        quarantined,
        problems: problems.iter().map(ToString::to_string).collect(),
    })
}

// ------------------------------------------------------------------ usage

fn usage(source: &ConfSource) -> Result<UsageReport, Failure> {
    let mut report = UsageReport {
        networks: Vec::new(),
        errors: Vec::new(),
    };
    match source {
        ConfSource::File(f) => {
            if !f.is_file() {
                return Err(Failure(format!("{}: no such file", f.display())));
            }
            usage_of_file(f, true, &mut report);
        }
        ConfSource::Dir(d) => {
            for f in config_files(d)? {
                usage_of_file(&f, false, &mut report);
            }
        }
    }
    Ok(report)
}

/// The files libcni reads in `dir`, in its (lexical) order.
fn config_files(dir: &Path) -> Result<BTreeSet<PathBuf>, Failure> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| Failure(format!("cannot list {}: {e}", dir.display())))?;
    Ok(entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("conf" | "conflist" | "json")
                )
        })
        .collect())
}

/// The usage of every network in config file `path` whose IPAM we
/// understand; `explicit`: named by `--config`, so a file without one is an
/// error.
fn usage_of_file(path: &Path, explicit: bool, report: &mut UsageReport) {
    let mut error = |msg: String| report.errors.push((path.to_path_buf(), msg));
    let conf: Value = match std::fs::read_to_string(path) {
        Err(e) => return error(format!("cannot read: {e}")),
        Ok(text) => match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => return error(format!("not valid JSON: {e}")),
        },
    };
    let found = ipam_configs(&conf);
    if found.is_empty() && explicit {
        error("no plugin with ipam.type mactrunk-ipam or host-local".into());
    }
    for (plugin, flat, ipam_type) in found {
        match network_usage(path, plugin, &flat, ipam_type) {
            Ok(n) => report.networks.push(n),
            Err(Failure(e)) => {
                let at = plugin.map_or(String::new(), |i| format!("plugins[{i}]: "));
                report.errors.push((path.to_path_buf(), format!("{at}{e}")));
            }
        }
    }
}

/// The IPAM types whose stores this tool understands.
fn is_our_ipam(t: &str) -> bool {
    t == "mactrunk-ipam" || t == "host-local"
}

/// The configs a runtime would hand to each plugin of FILE whose IPAM we
/// understand: (plugin index in a conflist, flattened config, ipam type).
fn ipam_configs(conf: &Value) -> Vec<(Option<usize>, Value, String)> {
    let ipam_type = |p: &Value| {
        p.get("ipam")
            .and_then(|i| i.get("type"))
            .and_then(Value::as_str)
            .filter(|t| is_our_ipam(t))
            .map(str::to_string)
    };
    match conf.get("plugins").and_then(Value::as_array) {
        Some(plugins) => plugins
            .iter()
            .enumerate()
            .filter_map(|(i, p)| {
                let t = ipam_type(p)?;
                let mut flat = p.as_object()?.clone();
                for k in ["name", "cniVersion"] {
                    if let Some(v) = conf.get(k) {
                        flat.insert(k.into(), v.clone());
                    }
                }
                Some((Some(i), Value::Object(flat), t))
            })
            .collect(),
        None => ipam_type(conf)
            .map(|t| vec![(None, conf.clone(), t)])
            .unwrap_or_default(),
    }
}

/// One plugin's usage: its range sets and how many allocations its store holds.
fn network_usage(
    path: &Path,
    plugin: Option<usize>,
    flat: &Value,
    ipam_type: String,
) -> Result<NetworkUsage, Failure> {
    let conf = IpamConfig::from_netconf(flat, &CniArgs::default())?;
    let loc = conf.location();
    let sets = ipam::usage(&conf)?;
    let allocations = ipam::list(&loc)?.len();
    Ok(NetworkUsage {
        name: conf.network.clone(),
        config: path.to_path_buf(),
        plugin,
        ipam_type,
        store: loc.dir,
        sets,
        allocations,
    })
}

// ------------------------------------------------------------------ release

fn release(
    data_dir: &Path,
    network: &str,
    target: &ReleaseTarget,
) -> Result<ReleaseReport, Failure> {
    let dir = existing_store(data_dir, network)?;
    let mut store = FileStore::open(&dir, DEFAULT_LOCK_TIMEOUT)?;
    let (all, _problems) = store.scan()?;
    let matching: Vec<Allocation> = all
        .into_iter()
        .filter(|a| match target {
            ReleaseTarget::Ip(ip) => a.ip == *ip,
            ReleaseTarget::Container(k) => k.keeps(&a.owner),
        })
        .collect();
    if matching.is_empty() {
        return Err(nothing_matched(target, network, &dir));
    }
    let mut released = Vec::new();
    for a in matching {
        if store.unreserve(&a.owner, a.ip)? {
            released.push(a);
        }
    }
    store.commit()?;
    Ok(ReleaseReport {
        network: network.to_string(),
        dir,
        released,
    })
}

/// `release` found nothing: exit 1, so that a typo is not silent.
fn nothing_matched(target: &ReleaseTarget, network: &str, dir: &Path) -> Failure {
    let what = match target {
        ReleaseTarget::Ip(ip) => format!("{ip} is not allocated"),
        ReleaseTarget::Container(Keep {
            container_id,
            ifname: None,
        }) => format!("container {container_id} holds no address"),
        ReleaseTarget::Container(Keep {
            container_id,
            ifname: Some(i),
        }) => format!("container {container_id} interface {i} holds no address"),
    };
    Failure(format!("{what} in network {network} ({})", dir.display()))
}

// ------------------------------------------------------------------ gc

fn gc(data_dir: &Path, network: &str, keep: &[Keep], dry_run: bool) -> Result<GcReport, Failure> {
    let dir = existing_store(data_dir, network)?;
    let mut report = GcReport {
        network: network.to_string(),
        dir,
        dry_run,
        released: Vec::new(),
        kept: 0,
        index_entries_dropped: 0,
        errors: Vec::new(),
    };
    if dry_run {
        gc_dry_run(keep, &mut report)?;
    } else {
        gc_release(keep, &mut report)?;
    }
    Ok(report)
}

/// A quarantine is no container's: gc keeps it, `release --ip` frees it.
fn kept_by(keep: &[Keep], a: &Allocation) -> bool {
    a.owner.is_quarantine() || keep.iter().any(|k| k.keeps(&a.owner))
}

/// Read-only: nothing is created, cleaned or re-indexed.
fn gc_dry_run(keep: &[Keep], report: &mut GcReport) -> Result<(), Failure> {
    let (all, problems) = StoreReader::open(&report.dir, DEFAULT_LOCK_TIMEOUT)?.scan()?;
    report.errors = problems.iter().map(ToString::to_string).collect();
    for a in all {
        if kept_by(keep, &a) {
            report.kept += 1;
        } else {
            report.released.push(a);
        }
    }
    Ok(())
}

/// Under the store's lock for the whole run: an ADD at the same time waits
/// and is never half-collected.
fn gc_release(keep: &[Keep], report: &mut GcReport) -> Result<(), Failure> {
    let mut store = FileStore::open(&report.dir, DEFAULT_LOCK_TIMEOUT)?;
    let (all, problems) = store.scan()?;
    report.errors = problems.iter().map(ToString::to_string).collect();
    for a in all {
        if kept_by(keep, &a) {
            report.kept += 1;
            continue;
        }
        match store.unreserve(&a.owner, a.ip) {
            Ok(_) => report.released.push(a),
            Err(e) => report.errors.push(format!("release {}: {e}", a.ip)),
        }
    }
    match store.clean_index() {
        Ok(n) => report.index_entries_dropped = n,
        Err(e) => report.errors.push(e.to_string()),
    }
    if let Err(e) = store.commit() {
        report.errors.push(e.to_string());
    }
    Ok(())
}

/// Parse a keep file: one `ID[:IFNAME]` (or `ID IFNAME`) per line, `#`
/// comments and blank lines ignored; or the CNI GC list
/// `[{"containerID": ..., "ifname": ...}]` (`cni.dev/valid-attachments`).
fn parse_keep_file(text: &str) -> Result<Vec<Keep>, String> {
    if text.trim_start().starts_with('[') {
        return parse_keep_json(text);
    }
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        out.push(Keep::parse(line).map_err(|e| format!("line {}: {e}", n + 1))?);
    }
    Ok(out)
}

fn parse_keep_json(text: &str) -> Result<Vec<Keep>, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
    let list = v.as_array().ok_or("expected a JSON array")?;
    list.iter()
        .enumerate()
        .map(|(i, a)| {
            let id = a
                .get("containerID")
                .and_then(Value::as_str)
                .ok_or(format!("[{i}]: missing containerID"))?;
            let ifname = a.get("ifname").and_then(Value::as_str);
            Keep::new(id, ifname).map_err(|e| format!("[{i}]: {e}"))
        })
        .collect()
}

fn read_keep_files(files: &[PathBuf]) -> Result<Vec<Keep>, Failure> {
    let mut out = Vec::new();
    for f in files {
        let text = if f.as_os_str() == "-" {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
                .map_err(|e| Failure(format!("--keep-file -: cannot read stdin: {e}")))?;
            s
        } else {
            std::fs::read_to_string(f)
                .map_err(|e| Failure(format!("--keep-file {}: {e}", f.display())))?
        };
        out.extend(
            parse_keep_file(&text)
                .map_err(|e| Failure(format!("--keep-file {}: {e}", f.display())))?,
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn config_selection() {
        let conf = json!({"cniVersion": "1.1.0", "name": "blue", "type": "mactrunk",
                          "ipam": {"type": "mactrunk-ipam", "subnet": "10.9.0.0/29"}});
        let found = ipam_configs(&conf);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, None);
        let list = json!({"cniVersion": "1.0.0", "name": "l", "plugins": [
            {"type": "bridge", "ipam": {"type": "host-local", "subnet": "10.1.0.0/24"}},
            {"type": "tuning"},
            {"type": "mactrunk", "ipam": {"type": "dhcp"}},
            {"type": "ipvlan", "ipam": {"type": "mactrunk-ipam", "subnet": "10.2.0.0/24"}}
        ]});
        let found = ipam_configs(&list);
        assert_eq!(
            found.iter().map(|f| f.0).collect::<Vec<_>>(),
            [Some(0), Some(3)]
        );
        assert_eq!(found[1].1["name"], "l");
        assert_eq!(found[1].1["cniVersion"], "1.0.0");
        assert_eq!(found[0].2, "host-local");
        assert!(ipam_configs(&json!({"type": "mactrunk", "ipam": {}})).is_empty());
    }

    #[test]
    fn keep_files() {
        let ks = parse_keep_file("# live\nc1\n\nc2:eth0  # comment\nc3 net1\n").unwrap();
        assert_eq!(
            ks.iter()
                .map(|k| format!("{}:{:?}", k.container_id, k.ifname))
                .collect::<Vec<_>>(),
            ["c1:None", "c2:Some(\"eth0\")", "c3:Some(\"net1\")"]
        );
        assert!(parse_keep_file("").unwrap().is_empty());
        let e = parse_keep_file("ok\n../bad\n").unwrap_err();
        assert!(e.starts_with("line 2:"), "{e}");
        let ks = parse_keep_file(r#"[{"containerID":"c1","ifname":"eth0"},{"containerID":"c2"}]"#)
            .unwrap();
        assert_eq!(ks[0], Keep::parse("c1:eth0").unwrap());
        assert_eq!(ks[1], Keep::parse("c2").unwrap());
        assert!(
            parse_keep_file(r#"[{"ifname":"eth0"}]"#)
                .unwrap_err()
                .contains("[0]")
        );
        assert!(parse_keep_file("[").is_err());
    }
}
