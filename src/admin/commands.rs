//! What each subcommand does against the stores and configs: the only
//! I/O of the admin tool besides printing. `release` and `gc` open stores
//! with [`FileStore`] (the plugins' lock); `list`, `usage` and `gc
//! --dry-run` with [`StoreReader`], which creates and writes nothing.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde_json::Value;

use super::args::{Command, ConfSource, Keep, ReleaseTarget};
use super::metrics::{MetricsReport, NetworkMetrics, SetMetrics, VlanParentMetrics};
use super::report::{
    GcReport, ListReport, NetworkListing, NetworkUsage, ReleaseReport, Report, StoreFailure,
    UsageReport,
};
use crate::cni::CniError;
use crate::cni::env::CniArgs;
use crate::cni::names::is_valid_id;
use crate::ipam::config::DEFAULT_LOCK_TIMEOUT;
use crate::ipam::store::{Allocation, FileStore, Owner, Store, StoreError, StoreReader};
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
        Command::Metrics {
            data_dir,
            source,
            explicit,
            textfile,
            netns_check,
        } => {
            let mut r = metrics(data_dir, source, *explicit, *netns_check)?;
            if let Some(path) = textfile {
                write_textfile(path, r.exposition().as_bytes())?;
                r.textfile = Some(path.clone());
            }
            Ok(Report::Metrics(r))
        }
        // Run by `super::dispatch` itself: in mactrunk-etcd, where they are
        // linked, or by exec'ing it (mactrunk-ipam does not link them).
        Command::Blocks { .. } | Command::ReleaseNode { .. } => {
            Err(Failure("the cluster commands run in mactrunk-etcd".into()))
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

// ------------------------------------------------------------------ metrics

/// Gather the metrics: the configs' range sets, every store they name and
/// every store in `data_dir`, the VLAN registries of all those dataDirs.
/// Read-only (like `list`). What cannot be read is counted and named in the
/// report's errors; only a `--config`/`--conf-dir` that cannot be read at
/// all fails the command outright.
fn metrics(
    data_dir: &Path,
    source: &ConfSource,
    explicit: bool,
    netns_check: bool,
) -> Result<MetricsReport, Failure> {
    let now = SystemTime::now();
    let mut errors = Vec::new();
    let files: Vec<PathBuf> = match source {
        ConfSource::File(f) if f.is_file() => vec![f.clone()],
        ConfSource::File(f) => return Err(Failure(format!("{}: no such file", f.display()))),
        // no CNI config directory on this machine: stores only
        ConfSource::Dir(d) if !explicit && !d.exists() => Vec::new(),
        ConfSource::Dir(d) => config_files(d)?.into_iter().collect(),
    };
    // One config per store (the first in libcni's order).
    let mut configured: Vec<IpamConfig> = Vec::new();
    for f in &files {
        let conf: Value = match std::fs::read_to_string(f)
            .map_err(|e| format!("cannot read: {e}"))
            .and_then(|t| serde_json::from_str(&t).map_err(|e| format!("not valid JSON: {e}")))
        {
            Ok(v) => v,
            Err(e) => {
                errors.push(format!("{}: {e}", f.display()));
                continue;
            }
        };
        let found = ipam_configs(&conf);
        if found.is_empty() && matches!(source, ConfSource::File(_)) {
            errors.push(format!(
                "{}: no plugin with ipam.type mactrunk-ipam or host-local",
                f.display()
            ));
        }
        for (plugin, flat, _) in found {
            match IpamConfig::from_netconf(&flat, &CniArgs::default()) {
                Ok(c) => {
                    if !configured
                        .iter()
                        .any(|k| k.location().dir == c.location().dir)
                    {
                        configured.push(c);
                    }
                }
                Err(e) => {
                    let at = plugin.map_or(String::new(), |i| format!("plugins[{i}]: "));
                    errors.push(format!("{}: {at}{}", f.display(), Failure::from(e)));
                }
            }
        }
    }
    let mut stores: Vec<(String, PathBuf, Option<&IpamConfig>)> = configured
        .iter()
        .map(|c| (c.network.clone(), c.location().dir, Some(c)))
        .collect();
    match store_names(data_dir) {
        Ok(names) => {
            for n in names {
                let dir = data_dir.join(&n);
                if !stores.iter().any(|(_, d, _)| *d == dir) {
                    stores.push((n, dir, None));
                }
            }
        }
        Err(Failure(e)) => errors.push(e),
    }
    stores.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));

    let live = if netns_check {
        match crate::sys::netns::live_ids() {
            Ok(ids) => Some(ids),
            Err(e) => {
                errors.push(format!("cannot list the network namespaces: {e}"));
                None
            }
        }
    } else {
        None
    };
    let mut networks: Vec<NetworkMetrics> = Vec::new();
    for (name, dir, conf) in stores {
        if let Some(first) = networks.iter().find(|n| n.name == name) {
            errors.push(format!(
                "network {name}: a second store {} is not reported (the first is {})",
                dir.display(),
                first.store.display()
            ));
            continue;
        }
        networks.push(network_metrics(name, dir, conf, live.as_ref()));
    }

    let mut data_dirs: BTreeSet<PathBuf> = configured.iter().map(|c| c.data_dir.clone()).collect();
    data_dirs.insert(data_dir.to_path_buf());
    let mut parents: BTreeMap<String, VlanParentMetrics> = BTreeMap::new();
    for d in &data_dirs {
        let (records, problems) = crate::attach::vlan_registry::peek_all(d);
        errors.extend(problems);
        for r in records {
            parents
                .entry(r.link.clone())
                .or_insert_with(|| VlanParentMetrics {
                    link: r.link.clone(),
                    lower: r.lower.clone(),
                    vid: r.vid,
                    users: 0,
                })
                .users += r.users.len();
        }
    }
    Ok(MetricsReport {
        now,
        networks,
        vlan_parents: parents.into_values().collect(),
        errors,
        textfile: None,
    })
}

/// One store's gauges; a store that does not exist yet (a configured
/// network with no ADD so far) is empty, not an error.
fn network_metrics(
    name: String,
    dir: PathBuf,
    conf: Option<&IpamConfig>,
    live: Option<&HashSet<String>>,
) -> NetworkMetrics {
    let mut m = NetworkMetrics {
        name,
        store: dir,
        error: None,
        allocations: 0,
        quarantined: 0,
        oldest: None,
        orphaned: live.map(|_| 0),
        blocks_owned: None,
        sets: Vec::new(),
    };
    let mut owned_blocks: Vec<ipnetwork::IpNetwork> = Vec::new();
    let mut held = Vec::new();
    let mut quarantined = Vec::new();
    if m.store.exists() {
        let reader = StoreReader::open(&m.store, DEFAULT_LOCK_TIMEOUT);
        let all = reader.and_then(|r| r.all().map(|a| (r, a)));
        let (reader, all) = match all {
            Ok(v) => v,
            Err(e) => {
                m.error = Some(e.to_string());
                m.orphaned = None;
                return m;
            }
        };
        if conf.is_some_and(|c| c.cluster.is_some()) {
            owned_blocks = reader
                .read_meta(crate::ipam::cluster::engine::BLOCKS_FILE)
                .ok()
                .flatten()
                .map(|t| crate::ipam::cluster::engine::listed_blocks(&t))
                .unwrap_or_default();
        }
        let mut netns: BTreeMap<Owner, Option<String>> = BTreeMap::new();
        for a in all {
            if a.owner.is_quarantine() {
                quarantined.push(a.ip);
                continue;
            }
            held.push(a.ip);
            if let Some(t) = a.since {
                m.oldest = Some(m.oldest.map_or(t, |o| o.min(t)));
            }
            if let (Some(live), Some(n)) = (live, m.orphaned.as_mut()) {
                let id = netns
                    .entry(a.owner.clone())
                    .or_insert_with(|| reader.netns_of(&a.owner));
                if id.as_ref().is_some_and(|id| !live.contains(id)) {
                    *n += 1;
                }
            }
        }
    }
    m.allocations = held.len();
    m.quarantined = quarantined.len();
    if let Some(conf) = conf {
        // Cluster mode: the node can hand out only its blocks' addresses
        // (the labels keep the configured ranges: no series churn).
        let orig = conf;
        let narrowed;
        let conf = if conf.cluster.is_some() {
            m.blocks_owned = Some(owned_blocks.len());
            narrowed = crate::ipam::cluster::blocks::restrict(conf, &owned_blocks);
            &narrowed
        } else {
            conf
        };
        let used = ipam::usage_of(conf, &held);
        let q = ipam::usage_of(conf, &quarantined);
        m.sets = used
            .into_iter()
            .zip(q)
            .map(|(u, q)| SetMetrics {
                ranges: orig
                    .range_sets
                    .get(u.set)
                    .map_or(u.ranges, |r| r.ranges.clone()),
                key: u.key,
                capacity: u.capacity,
                used: u.used,
                quarantined: q.used,
            })
            .collect();
    }
    m
}

/// Write `content` to `path` for node_exporter's textfile collector: a
/// temp file beside it (hidden, not `*.prom`, so the collector never reads
/// it half-written; created new, never through a symlink), fsynced, renamed
/// over `path`. Mode 0644: node_exporter usually runs as another user.
fn write_textfile(path: &Path, content: &[u8]) -> Result<(), Failure> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let fail = |op: &str, p: &Path, e: std::io::Error| {
        Failure(format!("--textfile: cannot {op} {}: {e}", p.display()))
    };
    let name = path
        .file_name()
        .ok_or_else(|| Failure(format!("--textfile {}: not a file name", path.display())))?;
    let tmp = path.with_file_name(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let _ = std::fs::remove_file(&tmp); // a killed run's, with our pid
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)
        .map_err(|e| fail("create", &tmp, e))?;
    let written = f
        .set_permissions(std::fs::Permissions::from_mode(0o644))
        .and_then(|()| f.write_all(content))
        .and_then(|()| f.sync_all())
        .map_err(|e| fail("write", &tmp, e))
        .and_then(|()| std::fs::rename(&tmp, path).map_err(|e| fail("rename", path, e)));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
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
