//! `mactrunk-ipam` run by hand: inspect and repair IPAM stores.
//!
//! ```text
//! mactrunk-ipam list    [--data-dir DIR] [NETWORK]
//! mactrunk-ipam usage   [--config FILE | --conf-dir DIR]
//! mactrunk-ipam release [--data-dir DIR] NETWORK (--ip IP | --container ID [--ifname IF])
//! mactrunk-ipam gc      [--data-dir DIR] NETWORK (--keep ID[:IFNAME])... [--keep-file FILE] [--dry-run]
//! ```
//!
//! Every command takes `--json` (one JSON document on stdout) and `--help`.
//! Exit status: 0 success, 1 failure (message on stderr), 2 usage error.
//!
//! The stores are the ones the plugins write (`<dataDir>/<network>/`, the
//! reference host-local layout). `release` and `gc` take the store's lock,
//! so they are safe next to a runtime that is adding and deleting
//! containers; the read-only commands (`list`, `usage`, `gc --dry-run`) open
//! stores with [`StoreReader`]: shared lock if the store has a lock file,
//! and nothing created or written, whatever directory they are pointed at.
//! Parsing ([`parse_args`]) and rendering ([`Report::render_table`],
//! [`Report::to_json`]) are pure; [`run`] does the I/O.

use std::collections::BTreeSet;
use std::fmt;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

use crate::cni::env::CniArgs;
use crate::cni::names::is_valid_id;
use crate::ipam::config::{DEFAULT_DATA_DIR, DEFAULT_LOCK_TIMEOUT};
use crate::ipam::store::{Allocation, FileStore, Owner, Store, StoreError, StoreReader};
use crate::ipam::{self, IpamConfig, RangeSetUsage, StoreLocation};

/// Where runtimes look for network configs.
pub const DEFAULT_CONF_DIR: &str = "/etc/cni/net.d";

/// Exit statuses.
pub const EXIT_OK: i32 = 0;
pub const EXIT_FAILURE: i32 = 1;
pub const EXIT_USAGE: i32 = 2;

// ------------------------------------------------------------------ commands

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cmd {
    /// `--help`: the text to print (top level or one command's).
    Help(&'static str),
    /// `--version` / `-V`: the same text as the plugins' `--version`.
    Version,
    List {
        data_dir: PathBuf,
        network: Option<String>,
    },
    Usage {
        source: ConfSource,
    },
    Release {
        data_dir: PathBuf,
        network: String,
        target: ReleaseTarget,
    },
    Gc {
        data_dir: PathBuf,
        network: String,
        keep: Vec<Keep>,
        keep_files: Vec<PathBuf>,
        dry_run: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfSource {
    File(PathBuf),
    Dir(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReleaseTarget {
    Ip(IpAddr),
    Container { id: String, ifname: Option<String> },
}

/// One live attachment for `gc`: a container, or one interface of it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Keep {
    pub container_id: String,
    /// `None`: every interface of the container.
    pub ifname: Option<String>,
}

impl Keep {
    /// `ID` or `ID:IFNAME` (also `ID IFNAME`, as in a keep file).
    pub fn parse(s: &str) -> Result<Keep, String> {
        let s = s.trim();
        let (id, ifname) = match s.split_once([':', ' ', '\t']) {
            Some((id, i)) => (id.trim(), Some(i.trim())),
            None => (s, None),
        };
        Keep::new(id, ifname)
    }

    fn new(id: &str, ifname: Option<&str>) -> Result<Keep, String> {
        if !is_valid_id(id) {
            return Err(format!(
                "container ID {id:?} must match ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$"
            ));
        }
        let ifname = match ifname {
            None => None,
            Some(i) if crate::cni::names::interface_name_problem(i).is_none() => {
                Some(i.to_string())
            }
            Some(i) => return Err(format!("interface name {i:?} is not valid")),
        };
        Ok(Keep {
            container_id: id.to_string(),
            ifname,
        })
    }

    /// Does this entry keep the allocation of `owner`? A legacy record (no
    /// interface) is kept when its container is.
    pub fn keeps(&self, owner: &Owner) -> bool {
        self.container_id == owner.container_id
            && match &self.ifname {
                None => true,
                Some(i) => owner.is_legacy() || *i == owner.ifname,
            }
    }
}

/// Parse a keep file: one `ID[:IFNAME]` (or `ID IFNAME`) per line, `#`
/// comments and blank lines ignored; or the CNI GC list
/// `[{"containerID": ..., "ifname": ...}]` (`cni.dev/valid-attachments`).
pub fn parse_keep_file(text: &str) -> Result<Vec<Keep>, String> {
    if text.trim_start().starts_with('[') {
        let v: Value = serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
        let list = v.as_array().ok_or("expected a JSON array")?;
        return list
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let id = a
                    .get("containerID")
                    .and_then(Value::as_str)
                    .ok_or(format!("[{i}]: missing containerID"))?;
                let ifname = a.get("ifname").and_then(Value::as_str);
                Keep::new(id, ifname).map_err(|e| format!("[{i}]: {e}"))
            })
            .collect();
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

/// A usage error (exit 2): message and the help text of the command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError {
    pub msg: String,
    pub help: &'static str,
}

/// A parsed command line plus the global options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub cmd: Cmd,
    pub json: bool,
}

pub const HELP: &str = "\
mactrunk-ipam: the IPAM plugin of mactrunk (a CNI plugin when CNI_COMMAND is set),
and, run with arguments, an admin tool for its IPAM stores (<dataDir>/<network>/,
the layout of the reference host-local, so host-local stores work too).

Usage:
  mactrunk-ipam list    [--data-dir DIR] [NETWORK]
  mactrunk-ipam usage   [--config FILE | --conf-dir DIR]
  mactrunk-ipam release [--data-dir DIR] NETWORK (--ip IP | --container ID [--ifname IF])
  mactrunk-ipam gc      [--data-dir DIR] NETWORK (--keep ID[:IFNAME]... | --keep-file FILE) [--dry-run]
  mactrunk-ipam COMMAND --help
  mactrunk-ipam --version

Options for every command:
  --json        one JSON document on stdout instead of a table (also for
                failures: {\"error\": MESSAGE, \"exitStatus\": N})
  -h, --help    help

--data-dir defaults to /var/lib/cni/networks (the plugins' ipam.dataDir default).
Exit status: 0 success, 1 failure, 2 usage error.
";

pub const HELP_LIST: &str = "\
mactrunk-ipam list [--data-dir DIR] [NETWORK] [--json]

List the networks in DIR (default /var/lib/cni/networks) and their allocations:
IP, container ID, interface, and since when (the record's mtime, UTC). With NETWORK,
only that network (exit 1 if it has no store). Legacy records written without an
interface show '-' (JSON: \"ifname\": null). A store that cannot be read (unsafe
permissions, locked, unreadable) is reported on an 'error:' line (JSON: \"errors\")
and the exit status is 1; the others are still listed. Writes nothing, anywhere.
";

pub const HELP_USAGE: &str = "\
mactrunk-ipam usage [--config FILE | --conf-dir DIR] [--json]

Capacity, used and free addresses per range set, for the network config FILE
(.conf or .conflist) or for every config in DIR (default /etc/cni/net.d) whose
ipam.type is mactrunk-ipam or host-local (same store layout). CAPACITY counts the
addresses ADD can hand out (range minus gateway and exclusions), USED those of them
allocated, FREE the rest; STATIC counts allocations in the subnet but outside
[rangeStart, rangeEnd] (static IPs). JSON numbers larger than 2^64-1 are strings.
";

pub const HELP_RELEASE: &str = "\
mactrunk-ipam release [--data-dir DIR] NETWORK (--ip IP | --container ID [--ifname IF]) [--json]

Release one allocation (--ip) or those of a container (--container; with --ifname only
that interface's, plus legacy records of the container). Does not touch any interface:
use it for containers that are gone. Exit 1 if nothing matched.
";

pub const HELP_GC: &str = "\
mactrunk-ipam gc [--data-dir DIR] NETWORK (--keep ID[:IFNAME]... | --keep-file FILE) [--dry-run] [--json]

Release every allocation of NETWORK whose container is not listed as live. --keep ID
keeps all interfaces of container ID, --keep ID:IFNAME one interface (repeatable).
--keep-file FILE: one ID[:IFNAME] per line (# comments), or a JSON list
[{\"containerID\": ..., \"ifname\": ...}]; '-' reads stdin. At least one --keep or
--keep-file is required (an empty keep file releases everything). --dry-run only
reports what would be released. Also drops stale owner-index entries.
";

fn usage_err(msg: impl Into<String>, help: &'static str) -> UsageError {
    UsageError {
        msg: msg.into(),
        help,
    }
}

/// Parse the arguments (without the program name).
pub fn parse_args(args: &[String]) -> Result<Invocation, UsageError> {
    let Some((sub, rest)) = args.split_first() else {
        return Err(usage_err("missing command", HELP));
    };
    let help: &'static str = match sub.as_str() {
        "-h" | "--help" | "help" => {
            let topic = match rest.first().map(String::as_str) {
                Some("list") => HELP_LIST,
                Some("usage") => HELP_USAGE,
                Some("release") => HELP_RELEASE,
                Some("gc") => HELP_GC,
                _ => HELP,
            };
            return Ok(Invocation {
                cmd: Cmd::Help(topic),
                json: false,
            });
        }
        "--version" | "-V" | "version" => {
            return Ok(Invocation {
                cmd: Cmd::Version,
                json: false,
            });
        }
        "list" | "ls" => HELP_LIST,
        "usage" => HELP_USAGE,
        "release" => HELP_RELEASE,
        "gc" => HELP_GC,
        other => return Err(usage_err(format!("unknown command {other:?}"), HELP)),
    };

    // Options may come before or after the positional arguments.
    let mut json = false;
    let mut data_dir: Option<PathBuf> = None;
    let mut config: Option<PathBuf> = None;
    let mut conf_dir: Option<PathBuf> = None;
    let mut ip: Option<IpAddr> = None;
    let mut container: Option<String> = None;
    let mut ifname: Option<String> = None;
    let mut keep: Vec<Keep> = Vec::new();
    let mut keep_files: Vec<PathBuf> = Vec::new();
    let mut dry_run = false;
    let mut positional: Vec<String> = Vec::new();

    let mut it = rest.iter();
    while let Some(arg) = it.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        let mut value = |opt: &str| -> Result<String, UsageError> {
            match &inline {
                Some(v) => Ok(v.clone()),
                None => it
                    .next()
                    .cloned()
                    .ok_or_else(|| usage_err(format!("{opt} needs a value"), help)),
            }
        };
        let allowed = |ok: bool| -> Result<(), UsageError> {
            if ok {
                Ok(())
            } else {
                Err(usage_err(
                    format!("option {name} does not apply to {sub}"),
                    help,
                ))
            }
        };
        let once = |set: bool| -> Result<(), UsageError> {
            if set {
                Err(usage_err(format!("{name} given twice"), help))
            } else {
                Ok(())
            }
        };
        match name {
            "-h" | "--help" => {
                return Ok(Invocation {
                    cmd: Cmd::Help(help),
                    json: false,
                });
            }
            "--json" => json = true,
            "--data-dir" => {
                allowed(help != HELP_USAGE)?;
                once(data_dir.is_some())?;
                data_dir = Some(PathBuf::from(nonempty(&value(name)?, name, help)?));
            }
            "--config" => {
                allowed(help == HELP_USAGE)?;
                once(config.is_some())?;
                config = Some(PathBuf::from(nonempty(&value(name)?, name, help)?));
            }
            "--conf-dir" => {
                allowed(help == HELP_USAGE)?;
                once(conf_dir.is_some())?;
                conf_dir = Some(PathBuf::from(nonempty(&value(name)?, name, help)?));
            }
            "--ip" => {
                allowed(help == HELP_RELEASE)?;
                once(ip.is_some())?;
                let v = value(name)?;
                // Accept an address with a prefix too (as printed by `ip addr`).
                let bare = v.split_once('/').map_or(v.as_str(), |(a, _)| a);
                ip =
                    Some(bare.parse().map_err(|_| {
                        usage_err(format!("--ip: {v:?} is not an IP address"), help)
                    })?);
            }
            "--container" => {
                allowed(help == HELP_RELEASE)?;
                once(container.is_some())?;
                container = Some(value(name)?);
            }
            "--ifname" => {
                allowed(help == HELP_RELEASE)?;
                once(ifname.is_some())?;
                ifname = Some(value(name)?);
            }
            "--keep" => {
                allowed(help == HELP_GC)?;
                let v = value(name)?;
                keep.push(
                    Keep::parse(&v).map_err(|e| usage_err(format!("--keep {v}: {e}"), help))?,
                );
            }
            "--keep-file" => {
                allowed(help == HELP_GC)?;
                keep_files.push(PathBuf::from(nonempty(&value(name)?, name, help)?));
            }
            "--dry-run" | "-n" => {
                allowed(help == HELP_GC)?;
                dry_run = true;
            }
            "--" => positional.extend(it.by_ref().cloned()),
            s if s.starts_with('-') && s.len() > 1 => {
                return Err(usage_err(format!("unknown option {s}"), help));
            }
            _ => positional.push(arg.clone()),
        }
    }

    let data_dir = data_dir.unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
    let network = |positional: &[String], required: bool| -> Result<Option<String>, UsageError> {
        match positional {
            [] if required => Err(usage_err("missing NETWORK", help)),
            [] => Ok(None),
            [n] if is_valid_id(n) => Ok(Some(n.clone())),
            [n] => Err(usage_err(
                format!("NETWORK {n:?} is not a valid network name (^[a-zA-Z0-9][a-zA-Z0-9_.-]*$)"),
                help,
            )),
            [_, extra, ..] => Err(usage_err(format!("unexpected argument {extra:?}"), help)),
        }
    };

    let cmd = match help {
        HELP_LIST => Cmd::List {
            data_dir,
            network: network(&positional, false)?,
        },
        HELP_USAGE => {
            if let Some(p) = positional.first() {
                return Err(usage_err(format!("unexpected argument {p:?}"), help));
            }
            let source = match (config, conf_dir) {
                (Some(_), Some(_)) => {
                    return Err(usage_err(
                        "--config and --conf-dir exclude each other",
                        help,
                    ));
                }
                (Some(f), None) => ConfSource::File(f),
                (None, Some(d)) => ConfSource::Dir(d),
                (None, None) => ConfSource::Dir(PathBuf::from(DEFAULT_CONF_DIR)),
            };
            Cmd::Usage { source }
        }
        HELP_RELEASE => {
            let network = network(&positional, true)?.unwrap_or_default();
            let target = match (ip, container, ifname) {
                (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                    return Err(usage_err("--ip excludes --container and --ifname", help));
                }
                (Some(ip), None, None) => ReleaseTarget::Ip(ip),
                (None, Some(id), ifname) => {
                    let k = Keep::new(&id, ifname.as_deref())
                        .map_err(|e| usage_err(format!("--container/--ifname: {e}"), help))?;
                    ReleaseTarget::Container {
                        id: k.container_id,
                        ifname: k.ifname,
                    }
                }
                (None, None, Some(_)) => {
                    return Err(usage_err("--ifname needs --container", help));
                }
                (None, None, None) => {
                    return Err(usage_err(
                        "say what to release: --ip IP or --container ID",
                        help,
                    ));
                }
            };
            Cmd::Release {
                data_dir,
                network,
                target,
            }
        }
        _ => {
            let network = network(&positional, true)?.unwrap_or_default();
            if keep.is_empty() && keep_files.is_empty() {
                return Err(usage_err(
                    "gc needs the live containers: --keep ID[:IFNAME] or --keep-file FILE \
                     (an empty file releases everything)",
                    help,
                ));
            }
            Cmd::Gc {
                data_dir,
                network,
                keep,
                keep_files,
                dry_run,
            }
        }
    };
    Ok(Invocation { cmd, json })
}

fn nonempty(v: &str, opt: &str, help: &'static str) -> Result<String, UsageError> {
    if v.is_empty() {
        Err(usage_err(format!("{opt} needs a non-empty value"), help))
    } else {
        Ok(v.to_string())
    }
}

// ------------------------------------------------------------------ reports (pure)

/// One network's store as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkListing {
    pub name: String,
    pub dir: PathBuf,
    pub allocations: Vec<Allocation>,
    /// Entries that could not be read (reported, not fatal).
    pub problems: Vec<String>,
}

/// A store `list` could not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreFailure {
    pub name: String,
    pub dir: PathBuf,
    pub error: String,
}

/// One config's usage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkUsage {
    pub name: String,
    pub config: PathBuf,
    /// Index of the plugin in a conflist.
    pub plugin: Option<usize>,
    pub ipam_type: String,
    pub store: PathBuf,
    pub sets: Vec<RangeSetUsage>,
    /// All allocations in the store (also those outside every configured set).
    pub allocations: usize,
}

impl NetworkUsage {
    /// Allocations in no configured range set's subnet (left over from an older config).
    pub fn outside(&self) -> usize {
        let inside: u128 = self.sets.iter().map(|s| s.used + s.static_outside).sum();
        (self.allocations as u128).saturating_sub(inside) as usize
    }
}

/// What a command did, ready to render.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    List {
        data_dir: PathBuf,
        networks: Vec<NetworkListing>,
        /// Stores that could not be read (unsafe, locked, unreadable): the
        /// others are still listed; the exit status is 1.
        errors: Vec<StoreFailure>,
    },
    Usage {
        networks: Vec<NetworkUsage>,
        /// (config file, problem): configs that could not be evaluated.
        errors: Vec<(PathBuf, String)>,
    },
    Release {
        network: String,
        dir: PathBuf,
        released: Vec<Allocation>,
    },
    Gc {
        network: String,
        dir: PathBuf,
        dry_run: bool,
        released: Vec<Allocation>,
        kept: usize,
        index_entries_dropped: usize,
        errors: Vec<String>,
    },
}

/// UTC `YYYY-MM-DDTHH:MM:SSZ` (no chrono for one format).
pub fn format_time(t: SystemTime) -> String {
    crate::sys::log::rfc3339_seconds(t)
}

fn unix_secs(t: SystemTime) -> Option<u64> {
    t.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs())
}

/// A u128 as a JSON number when it fits in u64, else as a decimal string.
fn big(n: u128) -> Value {
    match u64::try_from(n) {
        Ok(v) => json!(v),
        Err(_) => json!(n.to_string()),
    }
}

fn alloc_json(a: &Allocation) -> Value {
    json!({
        "ip": a.ip.to_string(),
        "containerID": a.owner.container_id,
        "ifname": if a.owner.is_legacy() { Value::Null } else { json!(a.owner.ifname) },
        "since": a.since.map(format_time),
        "sinceUnix": a.since.and_then(unix_secs),
    })
}

fn alloc_row(network: &str, a: &Allocation) -> Vec<String> {
    vec![
        network.to_string(),
        a.ip.to_string(),
        a.owner.container_id.clone(),
        if a.owner.is_legacy() {
            "-".into()
        } else {
            a.owner.ifname.clone()
        },
        a.since.map_or_else(|| "-".into(), format_time),
    ]
}

const ALLOC_HEADER: [&str; 5] = ["NETWORK", "IP", "CONTAINER", "IFNAME", "SINCE"];

/// Columns padded to their widest cell, two spaces apart; the columns whose
/// index is in `right` are right-aligned. No trailing spaces.
pub fn table(header: &[&str], rows: &[Vec<String>], right: &[usize]) -> String {
    let mut width: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < width.len() {
                width[i] = width[i].max(c.chars().count());
            }
        }
    }
    let mut out = String::new();
    let head: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    for r in std::iter::once(&head).chain(rows) {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            let w = width.get(i).copied().unwrap_or(0);
            if i > 0 {
                line.push_str("  ");
            }
            if right.contains(&i) {
                line.push_str(&format!("{c:>w$}"));
            } else {
                line.push_str(&format!("{c:<w$}"));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

impl Report {
    /// The human rendering (stdout).
    pub fn render_table(&self) -> String {
        match self {
            Report::List {
                data_dir,
                networks,
                errors,
            } => {
                let failures: String = errors
                    .iter()
                    .map(|f| format!("error: {}: {}\n", f.name, f.error))
                    .collect();
                if networks.is_empty() {
                    if errors.is_empty() {
                        return format!("no IPAM stores in {}\n", data_dir.display());
                    }
                    return failures;
                }
                let mut rows = Vec::new();
                for n in networks {
                    if n.allocations.is_empty() {
                        rows.push(vec![
                            n.name.clone(),
                            "-".into(),
                            "-".into(),
                            "-".into(),
                            "-".into(),
                        ]);
                    }
                    rows.extend(n.allocations.iter().map(|a| alloc_row(&n.name, a)));
                }
                let total: usize = networks.iter().map(|n| n.allocations.len()).sum();
                let mut out = table(&ALLOC_HEADER, &rows, &[]);
                out.push_str(&format!(
                    "{} in {} ({})\n",
                    plural(total, "allocation", "allocations"),
                    plural(networks.len(), "network", "networks"),
                    data_dir.display()
                ));
                for n in networks {
                    for p in &n.problems {
                        out.push_str(&format!("warning: {}: {p}\n", n.name));
                    }
                }
                out.push_str(&failures);
                out
            }
            Report::Usage { networks, errors } => {
                let mut rows = Vec::new();
                for n in networks {
                    for s in &n.sets {
                        rows.push(vec![
                            n.name.clone(),
                            s.key.clone(),
                            s.ranges
                                .iter()
                                .map(|r| r.to_string())
                                .collect::<Vec<_>>()
                                .join(", "),
                            s.capacity.to_string(),
                            s.used.to_string(),
                            s.free().to_string(),
                            s.static_outside.to_string(),
                        ]);
                    }
                }
                let mut out = if networks.is_empty() {
                    "no mactrunk-ipam or host-local networks found\n".to_string()
                } else {
                    table(
                        &[
                            "NETWORK", "SET", "RANGES", "CAPACITY", "USED", "FREE", "STATIC",
                        ],
                        &rows,
                        &[3, 4, 5, 6],
                    )
                };
                for n in networks {
                    let o = n.outside();
                    if o > 0 {
                        out.push_str(&format!(
                            "note: {}: {} in no configured subnet (left from an older config?)\n",
                            n.name,
                            plural(o, "allocation", "allocations")
                        ));
                    }
                }
                for (f, e) in errors {
                    out.push_str(&format!("error: {}: {e}\n", f.display()));
                }
                out
            }
            Report::Release {
                network, released, ..
            } => {
                let rows: Vec<Vec<String>> =
                    released.iter().map(|a| alloc_row(network, a)).collect();
                let mut out = table(&ALLOC_HEADER, &rows, &[]);
                out.push_str(&format!(
                    "released {}\n",
                    plural(released.len(), "allocation", "allocations")
                ));
                out
            }
            Report::Gc {
                network,
                dry_run,
                released,
                kept,
                index_entries_dropped,
                errors,
                ..
            } => {
                let mut out = String::new();
                if !released.is_empty() {
                    let rows: Vec<Vec<String>> =
                        released.iter().map(|a| alloc_row(network, a)).collect();
                    out.push_str(&table(&ALLOC_HEADER, &rows, &[]));
                }
                out.push_str(&format!(
                    "{} {}, kept {}",
                    if *dry_run {
                        "would release"
                    } else {
                        "released"
                    },
                    plural(released.len(), "allocation", "allocations"),
                    kept
                ));
                if *index_entries_dropped > 0 {
                    out.push_str(&format!(
                        ", dropped {}",
                        plural(
                            *index_entries_dropped,
                            "stale index entry",
                            "stale index entries"
                        )
                    ));
                }
                out.push('\n');
                for e in errors {
                    out.push_str(&format!("error: {e}\n"));
                }
                out
            }
        }
    }

    /// The `--json` rendering.
    pub fn to_json(&self) -> Value {
        match self {
            Report::List {
                data_dir,
                networks,
                errors,
            } => json!({
                "dataDir": data_dir.display().to_string(),
                "networks": networks.iter().map(|n| json!({
                    "name": n.name,
                    "dir": n.dir.display().to_string(),
                    "allocations": n.allocations.iter().map(alloc_json).collect::<Vec<_>>(),
                    "problems": n.problems,
                })).collect::<Vec<_>>(),
                "errors": errors.iter().map(|f| json!({
                    "name": f.name,
                    "dir": f.dir.display().to_string(),
                    "error": f.error,
                })).collect::<Vec<_>>(),
            }),
            Report::Usage { networks, errors } => json!({
                "networks": networks.iter().map(|n| {
                    let mut m = Map::new();
                    m.insert("name".into(), json!(n.name));
                    m.insert("config".into(), json!(n.config.display().to_string()));
                    m.insert("plugin".into(), json!(n.plugin));
                    m.insert("ipamType".into(), json!(n.ipam_type));
                    m.insert("store".into(), json!(n.store.display().to_string()));
                    m.insert("allocations".into(), json!(n.allocations));
                    m.insert("outside".into(), json!(n.outside()));
                    m.insert("rangeSets".into(), Value::Array(n.sets.iter().map(|s| json!({
                        "set": s.set,
                        "key": s.key,
                        "ranges": s.ranges.iter().map(|r| json!({
                            "subnet": r.subnet.to_string(),
                            "rangeStart": r.range_start.to_string(),
                            "rangeEnd": r.range_end.to_string(),
                            "gateway": r.gateway.map(|g| g.to_string()),
                        })).collect::<Vec<_>>(),
                        "capacity": big(s.capacity),
                        "used": big(s.used),
                        "free": big(s.free()),
                        "static": big(s.static_outside),
                    })).collect()));
                    Value::Object(m)
                }).collect::<Vec<_>>(),
                "errors": errors.iter().map(|(f, e)| json!({
                    "config": f.display().to_string(), "error": e
                })).collect::<Vec<_>>(),
            }),
            Report::Release {
                network,
                dir,
                released,
            } => json!({
                "network": network,
                "dir": dir.display().to_string(),
                "released": released.iter().map(alloc_json).collect::<Vec<_>>(),
            }),
            Report::Gc {
                network,
                dir,
                dry_run,
                released,
                kept,
                index_entries_dropped,
                errors,
            } => json!({
                "network": network,
                "dir": dir.display().to_string(),
                "dryRun": dry_run,
                "released": released.iter().map(alloc_json).collect::<Vec<_>>(),
                "kept": kept,
                "indexEntriesDropped": index_entries_dropped,
                "errors": errors,
            }),
        }
    }

    /// Did the command partly fail (exit 1 even though there is a report)?
    pub fn failed(&self) -> bool {
        match self {
            Report::List { errors, .. } => !errors.is_empty(),
            Report::Usage { errors, .. } => !errors.is_empty(),
            Report::Gc { errors, .. } => !errors.is_empty(),
            Report::Release { .. } => false,
        }
    }
}

// ------------------------------------------------------------------ execution

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

/// Was `--json` given (before a `--`)? Looked up in the raw arguments, so
/// that a usage error, too, is reported as JSON when the caller asked for it.
fn wants_json<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> bool {
    args.iter()
        .map(AsRef::as_ref)
        .take_while(|a| *a != "--")
        .any(|a| a == "--json")
}

/// A failure as the one JSON document on stdout (`--json`).
fn json_error(out: &mut dyn Write, msg: &str, status: i32) {
    let _ = writeln!(out, "{}", json!({"error": msg, "exitStatus": status}));
    let _ = out.flush();
}

/// Parse, execute, print; returns the exit status.
pub fn run(args: &[String], out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let json = wants_json(args);
    let inv = match parse_args(args) {
        Ok(i) => i,
        Err(e) => {
            let _ = writeln!(err, "mactrunk-ipam: {}\n", e.msg);
            let _ = write!(err, "{}", e.help);
            if json {
                json_error(out, &e.msg, EXIT_USAGE);
            }
            return EXIT_USAGE;
        }
    };
    match inv.cmd {
        Cmd::Help(text) => {
            let _ = write!(out, "{text}");
            return EXIT_OK;
        }
        Cmd::Version => {
            let _ = writeln!(out, "{}", crate::cni::entry::version_text("mactrunk-ipam"));
            return EXIT_OK;
        }
        _ => {}
    }
    match execute(&inv.cmd) {
        Ok(report) => {
            let written = if inv.json {
                writeln!(out, "{}", report.to_json())
            } else {
                write!(out, "{}", report.render_table())
            };
            if let Err(e) = written.and_then(|_| out.flush()) {
                let _ = writeln!(err, "mactrunk-ipam: cannot write the output: {e}");
                return EXIT_FAILURE;
            }
            if report.failed() {
                let _ = writeln!(err, "mactrunk-ipam: finished with errors (see the output)");
                EXIT_FAILURE
            } else {
                EXIT_OK
            }
        }
        Err(f) => {
            let _ = writeln!(err, "mactrunk-ipam: {f}");
            if inv.json {
                json_error(out, &f.0, EXIT_FAILURE);
            }
            EXIT_FAILURE
        }
    }
}

/// [`run`] for the process's raw arguments: one that is not UTF-8 is a usage
/// error (exit 2), and a panic is a failure (exit 1), never exit 101; with
/// `--json` each still prints its JSON error on stdout.
pub fn run_os(args: &[std::ffi::OsString], out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let json = wants_json(args);
    let mut strings = Vec::with_capacity(args.len());
    for (i, a) in args.iter().enumerate() {
        match a.to_str() {
            Some(s) => strings.push(s.to_string()),
            None => {
                let msg = format!(
                    "argument {} is not valid UTF-8: {:?}",
                    i + 1,
                    a.to_string_lossy()
                );
                let _ = writeln!(err, "mactrunk-ipam: {msg}\n");
                let _ = write!(err, "{HELP}");
                if json {
                    json_error(out, &msg, EXIT_USAGE);
                }
                return EXIT_USAGE;
            }
        }
    }
    let status = {
        let (o, e) = (&mut *out, &mut *err);
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&strings, o, e)))
    };
    status.unwrap_or_else(|_| {
        // The panic message went to stderr already.
        let msg = "mactrunk-ipam hit an internal error (see its stderr)";
        let _ = writeln!(err, "mactrunk-ipam: {msg}");
        if json {
            json_error(out, msg, EXIT_FAILURE);
        }
        EXIT_FAILURE
    })
}

pub fn main(args: &[std::ffi::OsString]) -> i32 {
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    run_os(args, &mut stdout.lock(), &mut stderr.lock())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipam::store::Owner;
    use std::time::Duration;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    fn parse(s: &str) -> Result<Invocation, UsageError> {
        parse_args(&args(s))
    }

    fn cmd(s: &str) -> Cmd {
        parse(s).unwrap_or_else(|e| panic!("{s}: {}", e.msg)).cmd
    }

    fn usage_msg(s: &str) -> String {
        match parse(s) {
            Err(e) => e.msg,
            Ok(i) => panic!("{s}: parsed as {i:?}"),
        }
    }

    #[test]
    fn parse_list() {
        assert_eq!(
            cmd("list"),
            Cmd::List {
                data_dir: DEFAULT_DATA_DIR.into(),
                network: None
            }
        );
        assert_eq!(
            cmd("list --data-dir /d net1"),
            Cmd::List {
                data_dir: "/d".into(),
                network: Some("net1".into())
            }
        );
        assert_eq!(cmd("ls net1 --data-dir=/d"), cmd("list --data-dir /d net1"));
        let inv = parse("list --json").unwrap();
        assert!(inv.json);
        assert!(!parse("list").unwrap().json);
        assert!(usage_msg("list a b").contains("unexpected argument"));
        assert!(usage_msg("list ../etc").contains("not a valid network name"));
        assert!(usage_msg("list --data-dir").contains("needs a value"));
        assert!(usage_msg("list --data-dir=").contains("non-empty"));
        assert!(usage_msg("list --ip 10.0.0.1").contains("does not apply"));
        assert!(usage_msg("list --bogus").contains("unknown option --bogus"));
        assert!(usage_msg("list --data-dir /a --data-dir /b").contains("twice"));
    }

    #[test]
    fn parse_help_and_errors() {
        assert_eq!(cmd("--help"), Cmd::Help(HELP));
        assert_eq!(cmd("-h"), Cmd::Help(HELP));
        assert_eq!(cmd("help gc"), Cmd::Help(HELP_GC));
        assert_eq!(cmd("gc --help"), Cmd::Help(HELP_GC));
        assert_eq!(cmd("release net -h"), Cmd::Help(HELP_RELEASE));
        assert_eq!(cmd("usage --help"), Cmd::Help(HELP_USAGE));
        assert_eq!(cmd("list --help"), Cmd::Help(HELP_LIST));
        assert_eq!(cmd("--version"), Cmd::Version);
        assert_eq!(cmd("-V"), Cmd::Version);
        assert_eq!(parse_args(&[]).unwrap_err().help, HELP);
        let e = parse("frobnicate").unwrap_err();
        assert!(e.msg.contains("unknown command"));
        assert_eq!(e.help, HELP);
        // a usage error carries the command's help
        assert_eq!(parse("gc net").unwrap_err().help, HELP_GC);
    }

    #[test]
    fn parse_usage() {
        assert_eq!(
            cmd("usage"),
            Cmd::Usage {
                source: ConfSource::Dir(DEFAULT_CONF_DIR.into())
            }
        );
        assert_eq!(
            cmd("usage --config /x.conf"),
            Cmd::Usage {
                source: ConfSource::File("/x.conf".into())
            }
        );
        assert_eq!(
            cmd("usage --conf-dir /etc/cni/net.d --json"),
            Cmd::Usage {
                source: ConfSource::Dir("/etc/cni/net.d".into())
            }
        );
        assert!(usage_msg("usage --config a --conf-dir b").contains("exclude"));
        assert!(usage_msg("usage net").contains("unexpected argument"));
        assert!(usage_msg("usage --data-dir /d").contains("does not apply"));
    }

    #[test]
    fn parse_release() {
        assert_eq!(
            cmd("release net --ip 10.0.0.5"),
            Cmd::Release {
                data_dir: DEFAULT_DATA_DIR.into(),
                network: "net".into(),
                target: ReleaseTarget::Ip("10.0.0.5".parse().unwrap())
            }
        );
        assert_eq!(
            cmd("release net --ip 10.0.0.5/24"),
            cmd("release net --ip 10.0.0.5")
        );
        assert_eq!(
            cmd("release --data-dir /d net --container abc --ifname net1"),
            Cmd::Release {
                data_dir: "/d".into(),
                network: "net".into(),
                target: ReleaseTarget::Container {
                    id: "abc".into(),
                    ifname: Some("net1".into())
                }
            }
        );
        assert_eq!(
            cmd("release net --ip fd00::5"),
            Cmd::Release {
                data_dir: DEFAULT_DATA_DIR.into(),
                network: "net".into(),
                target: ReleaseTarget::Ip("fd00::5".parse().unwrap())
            }
        );
        assert!(usage_msg("release --ip 10.0.0.5").contains("missing NETWORK"));
        assert!(usage_msg("release net").contains("--ip IP or --container"));
        assert!(usage_msg("release net --ip x").contains("not an IP address"));
        assert!(usage_msg("release net --ip 10.0.0.5 --container a").contains("excludes"));
        assert!(usage_msg("release net --ifname eth0").contains("needs --container"));
        assert!(usage_msg("release net --container ../x").contains("container ID"));
        assert!(usage_msg("release net --container a --ifname a/b").contains("interface"));
        assert!(usage_msg("release net --keep a").contains("does not apply"));
    }

    #[test]
    fn parse_gc() {
        assert_eq!(
            cmd("gc net --keep a --keep b:eth0 --dry-run"),
            Cmd::Gc {
                data_dir: DEFAULT_DATA_DIR.into(),
                network: "net".into(),
                keep: vec![
                    Keep {
                        container_id: "a".into(),
                        ifname: None
                    },
                    Keep {
                        container_id: "b".into(),
                        ifname: Some("eth0".into())
                    }
                ],
                keep_files: vec![],
                dry_run: true,
            }
        );
        assert_eq!(
            cmd("gc net --keep-file /k --data-dir /d"),
            Cmd::Gc {
                data_dir: "/d".into(),
                network: "net".into(),
                keep: vec![],
                keep_files: vec!["/k".into()],
                dry_run: false,
            }
        );
        assert!(usage_msg("gc net").contains("--keep"));
        assert!(usage_msg("gc --keep a").contains("missing NETWORK"));
        assert!(usage_msg("gc net --keep a/b").contains("container ID"));
        assert!(usage_msg("gc net --keep a:").contains("interface name"));
    }

    #[test]
    fn keep_matching() {
        let k = Keep::parse("c1").unwrap();
        assert!(k.keeps(&Owner::new("c1", "eth0")));
        assert!(k.keeps(&Owner::new("c1", "net1")));
        assert!(k.keeps(&Owner::new("c1", "")));
        assert!(!k.keeps(&Owner::new("c2", "eth0")));
        let k = Keep::parse("c1:net1").unwrap();
        assert!(k.keeps(&Owner::new("c1", "net1")));
        assert!(!k.keeps(&Owner::new("c1", "eth0")));
        assert!(
            k.keeps(&Owner::new("c1", "")),
            "legacy record of the container"
        );
        assert_eq!(Keep::parse(" c1 net1 ").unwrap(), k);
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

    #[test]
    fn time_format() {
        let t = |s: u64| format_time(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(t(0), "1970-01-01T00:00:00Z");
        assert_eq!(t(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(t(1_709_210_096), "2024-02-29T12:34:56Z");
        assert_eq!(t(4_102_444_799), "2099-12-31T23:59:59Z");
    }

    #[test]
    fn table_layout() {
        let t = table(
            &["A", "NUM", "C"],
            &[
                vec!["x".into(), "5".into(), "".into()],
                vec!["longer".into(), "1234".into(), "z".into()],
            ],
            &[1],
        );
        assert_eq!(t, "A        NUM  C\nx          5\nlonger  1234  z\n");
    }

    fn alloc(ip: &str, cid: &str, ifname: &str, secs: Option<u64>) -> Allocation {
        Allocation {
            ip: ip.parse().unwrap(),
            owner: Owner::new(cid, ifname),
            since: secs.map(|s| UNIX_EPOCH + Duration::from_secs(s)),
        }
    }

    #[test]
    fn list_rendering() {
        let r = Report::List {
            data_dir: "/d".into(),
            networks: vec![
                NetworkListing {
                    name: "blue".into(),
                    dir: "/d/blue".into(),
                    allocations: vec![
                        alloc("10.0.0.2", "c1", "eth0", Some(0)),
                        alloc("10.0.0.3", "c2", "", None),
                    ],
                    problems: vec![],
                },
                NetworkListing {
                    name: "empty".into(),
                    dir: "/d/empty".into(),
                    allocations: vec![],
                    problems: vec!["bad entry".into()],
                },
            ],
            errors: vec![StoreFailure {
                name: "open".into(),
                dir: "/d/open".into(),
                error: "mode 0777".into(),
            }],
        };
        assert_eq!(
            r.render_table(),
            "NETWORK  IP        CONTAINER  IFNAME  SINCE\n\
             blue     10.0.0.2  c1         eth0    1970-01-01T00:00:00Z\n\
             blue     10.0.0.3  c2         -       -\n\
             empty    -         -          -       -\n\
             2 allocations in 2 networks (/d)\n\
             warning: empty: bad entry\n\
             error: open: mode 0777\n"
        );
        assert!(r.failed());
        assert_eq!(
            r.to_json()["errors"],
            json!([{"name": "open", "dir": "/d/open", "error": "mode 0777"}])
        );
        let j = r.to_json();
        assert_eq!(j["dataDir"], "/d");
        assert_eq!(j["networks"][0]["name"], "blue");
        assert_eq!(
            j["networks"][0]["allocations"][0],
            json!({"ip": "10.0.0.2", "containerID": "c1", "ifname": "eth0",
                   "since": "1970-01-01T00:00:00Z", "sinceUnix": 0})
        );
        assert_eq!(j["networks"][0]["allocations"][1]["ifname"], Value::Null);
        assert_eq!(j["networks"][1]["allocations"], json!([]));
        assert_eq!(j["networks"][1]["problems"], json!(["bad entry"]));
        let none = Report::List {
            data_dir: "/d".into(),
            networks: vec![],
            errors: vec![],
        };
        assert_eq!(none.render_table(), "no IPAM stores in /d\n");
        assert_eq!(none.to_json()["networks"], json!([]));
        assert_eq!(none.to_json()["errors"], json!([]));
        assert!(!none.failed());
    }

    #[test]
    fn gc_and_release_rendering() {
        let r = Report::Gc {
            network: "blue".into(),
            dir: "/d/blue".into(),
            dry_run: true,
            released: vec![alloc("10.0.0.3", "c2", "eth0", Some(60))],
            kept: 2,
            index_entries_dropped: 0,
            errors: vec![],
        };
        assert_eq!(
            r.render_table(),
            "NETWORK  IP        CONTAINER  IFNAME  SINCE\n\
             blue     10.0.0.3  c2         eth0    1970-01-01T00:01:00Z\n\
             would release 1 allocation, kept 2\n"
        );
        assert!(!r.failed());
        let j = r.to_json();
        assert_eq!(j["dryRun"], true);
        assert_eq!(j["kept"], 2);
        assert_eq!(j["released"][0]["ip"], "10.0.0.3");
        let r = Report::Gc {
            network: "blue".into(),
            dir: "/d/blue".into(),
            dry_run: false,
            released: vec![],
            kept: 0,
            index_entries_dropped: 3,
            errors: vec!["boom".into()],
        };
        assert_eq!(
            r.render_table(),
            "released 0 allocations, kept 0, dropped 3 stale index entries\nerror: boom\n"
        );
        assert!(r.failed());
        let r = Report::Release {
            network: "blue".into(),
            dir: "/d/blue".into(),
            released: vec![alloc("fd00::2", "c1", "eth0", None)],
        };
        assert!(r.render_table().ends_with("released 1 allocation\n"));
        assert_eq!(r.to_json()["released"][0]["ip"], "fd00::2");
    }

    fn conf_json(name: &str, dir: &Path) -> Value {
        json!({
            "cniVersion": "1.1.0", "name": name, "type": "mactrunk", "master": "eth0",
            "ipam": {"type": "mactrunk-ipam", "dataDir": dir, "subnet": "10.9.0.0/29",
                     "exclude": ["10.9.0.6"]}
        })
    }

    #[test]
    fn usage_rendering_and_config_selection() {
        let d = Path::new("/d");
        let conf = conf_json("blue", d);
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

        let ipc = IpamConfig::from_netconf(&conf, &CniArgs::default()).unwrap();
        let mut sets = ipam::usage(&ipc).unwrap(); // no store: nothing used
        sets[0].used = 2;
        sets[0].static_outside = 1;
        let n = NetworkUsage {
            name: "blue".into(),
            config: "/etc/cni/net.d/10-blue.conf".into(),
            plugin: None,
            ipam_type: "mactrunk-ipam".into(),
            store: "/d/blue".into(),
            sets,
            allocations: 4,
        };
        assert_eq!(n.outside(), 1);
        let r = Report::Usage {
            networks: vec![n],
            errors: vec![("/etc/cni/net.d/99-bad.conf".into(), "not valid JSON".into())],
        };
        // /29: .1 gateway, .2-.6 range, .6 excluded -> 4
        assert_eq!(
            r.render_table(),
            "NETWORK  SET          RANGES                            CAPACITY  USED  FREE  STATIC\n\
             blue     ipam.subnet  10.9.0.1-10.9.0.6 in 10.9.0.0/29         4     2     2       1\n\
             note: blue: 1 allocation in no configured subnet (left from an older config?)\n\
             error: /etc/cni/net.d/99-bad.conf: not valid JSON\n"
        );
        assert!(r.failed());
        let j = r.to_json();
        let s = &j["networks"][0]["rangeSets"][0];
        assert_eq!(
            (s["capacity"].clone(), s["used"].clone(), s["free"].clone()),
            (json!(4), json!(2), json!(2))
        );
        assert_eq!(s["ranges"][0]["gateway"], "10.9.0.1");
        assert_eq!(j["networks"][0]["outside"], 1);
        assert_eq!(j["errors"][0]["error"], "not valid JSON");
        assert_eq!(big(u128::MAX), json!(u128::MAX.to_string()));
        assert_eq!(big(7), json!(7));
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
        let a: Vec<String> = a.iter().map(|s| s.to_string()).collect();
        let mut out = Vec::new();
        let mut err = Vec::new();
        let rc = run(&a, &mut out, &mut err);
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

    fn run_raw(a: &[std::ffi::OsString]) -> (i32, String, String) {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let rc = run_os(a, &mut out, &mut err);
        (
            rc,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
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

    /// The commands against a real store filled by real IPAM ADDs.
    #[test]
    fn commands_on_a_store() {
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
        let run_s = |a: &str| {
            let mut out = Vec::new();
            let mut err = Vec::new();
            let rc = run(&args(a), &mut out, &mut err);
            (
                rc,
                String::from_utf8(out).unwrap(),
                String::from_utf8(err).unwrap(),
            )
        };
        let dd = data.display();

        let (rc, out, _) = run_s(&format!("list --data-dir {dd} --json"));
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
        let (rc, out, _) = run_s(&format!("list --data-dir {dd}"));
        assert_eq!(rc, 0);
        assert!(out.contains("blue     10.9.0.3  c1         net1"), "{out}");
        assert!(
            out.ends_with(&format!("4 allocations in 1 network ({dd})\n")),
            "{out}"
        );

        let (rc, _, err) = run_s(&format!("list --data-dir {dd} nosuch"));
        assert_eq!(rc, 1);
        assert!(err.contains("no IPAM store"), "{err}");
        assert!(
            !data.join("nosuch").exists(),
            "list must not create a store"
        );
        let (rc, out, _) = run_s(&format!("list --data-dir {dd}/missing"));
        assert_eq!((rc, out.contains("no IPAM stores")), (0, true));

        // usage from a config file
        let cf = tmp.path().join("10-blue.conf");
        std::fs::write(&cf, conf.to_string()).unwrap();
        let (rc, out, _) = run_s(&format!("usage --config {} --json", cf.display()));
        assert_eq!(rc, 0, "{out}");
        let j: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(j["networks"][0]["rangeSets"][0]["used"], 4);
        assert_eq!(j["networks"][0]["rangeSets"][0]["free"], 0);
        // and from a directory, next to a broken and an unrelated config
        std::fs::write(
            tmp.path().join("20-other.conf"),
            r#"{"name":"o","type":"bridge"}"#,
        )
        .unwrap();
        std::fs::write(tmp.path().join("30-bad.conflist"), "{").unwrap();
        std::fs::write(tmp.path().join("README"), "not a config").unwrap();
        let (rc, out, _) = run_s(&format!("usage --conf-dir {}", tmp.path().display()));
        assert_eq!(rc, 1, "a broken config is an error: {out}");
        assert!(out.contains("blue "), "{out}");
        assert!(out.contains("30-bad.conflist: not valid JSON"), "{out}");
        assert!(
            !out.contains("20-other") && !out.contains("README"),
            "{out}"
        );

        // release by IP, by container + ifname, nothing to release
        let (rc, out, _) = run_s(&format!(
            "release --data-dir {dd} blue --ip 10.9.0.4 --json"
        ));
        assert_eq!(rc, 0);
        let j: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(j["released"][0]["containerID"], "c2");
        assert!(!data.join("blue/10.9.0.4").exists());
        let (rc, _, err) = run_s(&format!("release --data-dir {dd} blue --ip 10.9.0.4"));
        assert_eq!(rc, 1);
        assert!(err.contains("10.9.0.4 is not allocated"), "{err}");
        let (rc, out, _) = run_s(&format!(
            "release --data-dir {dd} blue --container c1 --ifname net1"
        ));
        assert_eq!(rc, 0);
        assert!(
            out.contains("10.9.0.3") && out.ends_with("released 1 allocation\n"),
            "{out}"
        );
        // the index follows: the IPAM sees c1/net1 as gone, c1/eth0 still there
        let mut st = FileStore::open(&data.join("blue"), DEFAULT_LOCK_TIMEOUT).unwrap();
        assert!(st.owned_by(&Owner::new("c1", "net1")).unwrap().is_empty());
        assert_eq!(st.owned_by(&Owner::new("c1", "eth0")).unwrap().len(), 1);
        drop(st);

        // gc: dry run changes nothing; then keep c1 only
        let (rc, out, _) = run_s(&format!("gc --data-dir {dd} blue --keep c1 --dry-run"));
        assert_eq!(rc, 0);
        assert!(out.contains("would release 1 allocation, kept 1"), "{out}");
        assert!(data.join("blue/10.9.0.5").exists());
        let kf = tmp.path().join("keep");
        std::fs::write(&kf, "# live containers\nc1:eth0\n").unwrap();
        let (rc, out, _) = run_s(&format!(
            "gc --data-dir {dd} blue --keep-file {} --json",
            kf.display()
        ));
        assert_eq!(rc, 0);
        let j: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(j["released"][0]["ip"], "10.9.0.5");
        assert_eq!(j["kept"], 1);
        assert!(!data.join("blue/10.9.0.5").exists());
        // freed addresses are allocatable again
        let got = ipam::add(&ipc, &Owner::new("c4", "eth0")).unwrap();
        assert_eq!(got.ips.len(), 1);
        // an empty keep file releases everything
        std::fs::write(&kf, "").unwrap();
        let (rc, out, _) = run_s(&format!(
            "gc --data-dir {dd} blue --keep-file {}",
            kf.display()
        ));
        assert_eq!(rc, 0);
        assert!(out.contains("released 2 allocations, kept 0"), "{out}");
        let (rc, out, _) = run_s(&format!("list --data-dir {dd} blue --json"));
        assert_eq!(rc, 0);
        let j: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(j["networks"][0]["allocations"], json!([]));

        // usage errors: exit 2 with the help on stderr
        let (rc, out, err) = run_s("gc blue");
        assert_eq!((rc, out.as_str()), (2, ""));
        assert!(
            err.contains("--keep") && err.contains("Release every allocation"),
            "{err}"
        );
        let (rc, out, _) = run_s("--help");
        assert_eq!(rc, 0);
        assert!(out.contains("mactrunk-ipam list"));
        let (rc, _, err) = run_s(&format!("gc --data-dir {dd} blue --keep-file {dd}/nope"));
        assert_eq!(rc, 1);
        assert!(err.contains("--keep-file"), "{err}");
    }
}
