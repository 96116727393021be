//! What each subcommand does against the stores and configs.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::args::{Cmd, ConfSource, Keep, ReleaseTarget, parse_keep_file};
use super::report::{NetworkListing, NetworkUsage, Report, StoreFailure};
use crate::cni::env::CniArgs;
use crate::cni::names::is_valid_id;
use crate::ipam::config::DEFAULT_LOCK_TIMEOUT;
use crate::ipam::store::{Allocation, FileStore, Store, StoreError, StoreReader};
use crate::ipam::{self, IpamConfig, StoreLocation};

/// A failure of a command (exit 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure(pub String);

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

impl From<crate::cni::CniError> for Failure {
    fn from(e: crate::cni::CniError) -> Failure {
        if e.details.is_empty() {
            Failure(e.msg)
        } else {
            Failure(format!("{}: {}", e.msg, e.details))
        }
    }
}

/// The store directory of `network`, which must exist (never create one).
fn existing_store(data_dir: &Path, network: &str) -> Result<PathBuf, Failure> {
    let dir = data_dir.join(network);
    match std::fs::symlink_metadata(&dir) {
        Ok(m) if m.is_dir() => Ok(dir),
        Ok(_) => Err(Failure(format!("{} is not a directory", dir.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Failure(format!(
            "network {network:?} has no IPAM store in {} (no {})",
            data_dir.display(),
            dir.display()
        ))),
        Err(e) => Err(Failure(format!("cannot stat {}: {e}", dir.display()))),
    }
}

fn open(dir: &Path) -> Result<FileStore, Failure> {
    Ok(FileStore::open(dir, DEFAULT_LOCK_TIMEOUT)?)
}

/// Read-only: see [`StoreReader`] (nothing is created or written, whatever DIR is).
fn list_one(name: &str, dir: &Path) -> Result<NetworkListing, Failure> {
    let store = StoreReader::open(dir, DEFAULT_LOCK_TIMEOUT)?;
    let (allocations, problems) = store.scan()?;
    Ok(NetworkListing {
        name: name.to_string(),
        dir: dir.to_path_buf(),
        allocations,
        problems: problems.iter().map(ToString::to_string).collect(),
    })
}

pub fn list(data_dir: &Path, network: Option<&str>) -> Result<Report, Failure> {
    let mut networks = Vec::new();
    let mut errors = Vec::new();
    let names = if let Some(n) = network {
        existing_store(data_dir, n)?;
        vec![n.to_string()]
    } else {
        let entries = match std::fs::read_dir(data_dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Report::List {
                    data_dir: data_dir.to_path_buf(),
                    networks,
                    errors,
                });
            }
            Err(e) => return Err(Failure(format!("cannot list {}: {e}", data_dir.display()))),
        };
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| is_valid_id(n))
            .collect();
        names.sort();
        names
    };
    // One store that cannot be read does not hide the others.
    for n in names {
        let dir = data_dir.join(&n);
        match list_one(&n, &dir) {
            Ok(l) => networks.push(l),
            Err(Failure(error)) => errors.push(StoreFailure {
                name: n,
                dir,
                error,
            }),
        }
    }
    Ok(Report::List {
        data_dir: data_dir.to_path_buf(),
        networks,
        errors,
    })
}

/// The IPAM types whose stores this tool understands.
fn is_our_ipam(t: &str) -> bool {
    t == "mactrunk-ipam" || t == "host-local"
}

/// The configs a runtime would hand to each plugin of FILE whose IPAM we
/// understand: (plugin index in a conflist, flattened config, ipam type).
pub fn ipam_configs(conf: &Value) -> Vec<(Option<usize>, Value, String)> {
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

fn usage_of_file(
    path: &Path,
    explicit: bool,
    networks: &mut Vec<NetworkUsage>,
    errors: &mut Vec<(PathBuf, String)>,
) {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            errors.push((path.to_path_buf(), format!("cannot read: {e}")));
            return;
        }
    };
    let conf: Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            errors.push((path.to_path_buf(), format!("not valid JSON: {e}")));
            return;
        }
    };
    let found = ipam_configs(&conf);
    if found.is_empty() && explicit {
        errors.push((
            path.to_path_buf(),
            "no plugin with ipam.type mactrunk-ipam or host-local".into(),
        ));
    }
    for (plugin, flat, ipam_type) in found {
        let where_ = match plugin {
            Some(i) => format!("plugins[{i}]: "),
            None => String::new(),
        };
        let conf = match IpamConfig::from_netconf(&flat, &CniArgs::default()) {
            Ok(c) => c,
            Err(e) => {
                errors.push((path.to_path_buf(), format!("{where_}{}", Failure::from(e))));
                continue;
            }
        };
        let loc: StoreLocation = conf.location();
        let result = ipam::usage(&conf).and_then(|sets| Ok((sets, ipam::list(&loc)?.len())));
        match result {
            Ok((sets, allocations)) => networks.push(NetworkUsage {
                name: conf.network.clone(),
                config: path.to_path_buf(),
                plugin,
                ipam_type,
                store: loc.dir,
                sets,
                allocations,
            }),
            Err(e) => errors.push((path.to_path_buf(), format!("{where_}{}", Failure::from(e)))),
        }
    }
}

pub fn usage(source: &ConfSource) -> Result<Report, Failure> {
    let mut networks = Vec::new();
    let mut errors = Vec::new();
    match source {
        ConfSource::File(f) => {
            if !f.is_file() {
                return Err(Failure(format!("{}: no such file", f.display())));
            }
            usage_of_file(f, true, &mut networks, &mut errors);
        }
        ConfSource::Dir(d) => {
            let entries = std::fs::read_dir(d)
                .map_err(|e| Failure(format!("cannot list {}: {e}", d.display())))?;
            // The files libcni reads, in its (lexical) order.
            let files: BTreeSet<PathBuf> = entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    p.is_file()
                        && matches!(
                            p.extension().and_then(|e| e.to_str()),
                            Some("conf" | "conflist" | "json")
                        )
                })
                .collect();
            for f in files {
                usage_of_file(&f, false, &mut networks, &mut errors);
            }
        }
    }
    Ok(Report::Usage { networks, errors })
}

pub fn release(data_dir: &Path, network: &str, target: &ReleaseTarget) -> Result<Report, Failure> {
    let dir = existing_store(data_dir, network)?;
    let mut store = open(&dir)?;
    let (all, _problems) = store.scan()?;
    let matching: Vec<Allocation> = all
        .into_iter()
        .filter(|a| match target {
            ReleaseTarget::Ip(ip) => a.ip == *ip,
            ReleaseTarget::Container { id, ifname } => Keep {
                container_id: id.clone(),
                ifname: ifname.clone(),
            }
            .keeps(&a.owner),
        })
        .collect();
    if matching.is_empty() {
        let what = match target {
            ReleaseTarget::Ip(ip) => format!("{ip} is not allocated"),
            ReleaseTarget::Container { id, ifname: None } => {
                format!("container {id} holds no address")
            }
            ReleaseTarget::Container {
                id,
                ifname: Some(i),
            } => format!("container {id} interface {i} holds no address"),
        };
        return Err(Failure(format!(
            "{what} in network {network} ({})",
            dir.display()
        )));
    }
    let mut released = Vec::new();
    for a in matching {
        if store.unreserve(&a.owner, a.ip)? {
            released.push(a);
        }
    }
    store.commit()?;
    Ok(Report::Release {
        network: network.to_string(),
        dir,
        released,
    })
}

pub fn gc(data_dir: &Path, network: &str, keep: &[Keep], dry_run: bool) -> Result<Report, Failure> {
    let dir = existing_store(data_dir, network)?;
    let kept_by = |a: &Allocation| keep.iter().any(|k| k.keeps(&a.owner));
    let mut released = Vec::new();
    let mut kept = 0;
    let mut index_entries_dropped = 0;
    let errors: Vec<String>;
    if dry_run {
        // Read-only: nothing is created, cleaned or re-indexed.
        let (all, problems) = StoreReader::open(&dir, DEFAULT_LOCK_TIMEOUT)?.scan()?;
        errors = problems.iter().map(ToString::to_string).collect();
        for a in all {
            if kept_by(&a) {
                kept += 1;
            } else {
                released.push(a);
            }
        }
    } else {
        let mut store = open(&dir)?;
        let (all, problems) = store.scan()?;
        let mut errs: Vec<String> = problems.iter().map(ToString::to_string).collect();
        for a in all {
            if kept_by(&a) {
                kept += 1;
                continue;
            }
            match store.unreserve(&a.owner, a.ip) {
                Ok(_) => released.push(a),
                Err(e) => errs.push(format!("release {}: {e}", a.ip)),
            }
        }
        match store.clean_index() {
            Ok(n) => index_entries_dropped = n,
            Err(e) => errs.push(e.to_string()),
        }
        if let Err(e) = store.commit() {
            errs.push(e.to_string());
        }
        errors = errs;
    }
    Ok(Report::Gc {
        network: network.to_string(),
        dir,
        dry_run,
        released,
        kept,
        index_entries_dropped,
        errors,
    })
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

/// Execute a parsed command.
pub fn execute(cmd: &Cmd) -> Result<Report, Failure> {
    match cmd {
        Cmd::Help(_) | Cmd::Version => Err(Failure("help is not a report".into())),
        Cmd::List { data_dir, network } => list(data_dir, network.as_deref()),
        Cmd::Usage { source } => usage(source),
        Cmd::Release {
            data_dir,
            network,
            target,
        } => release(data_dir, network, target),
        Cmd::Gc {
            data_dir,
            network,
            keep,
            keep_files,
            dry_run,
        } => {
            let mut all = keep.clone();
            all.extend(read_keep_files(keep_files)?);
            gc(data_dir, network, &all, *dry_run)
        }
    }
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
}
