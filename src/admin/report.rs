//! What a command did, and its two renderings: a table and `--json`.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

use crate::ipam::RangeSetUsage;
use crate::ipam::store::Allocation;
use crate::sys::log::rfc3339_seconds;

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
        "since": a.since.map(rfc3339_seconds),
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
        a.since.map_or_else(|| "-".into(), rfc3339_seconds),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cni::env::CniArgs;
    use crate::ipam::store::Owner;
    use crate::ipam::{self, IpamConfig};
    use std::path::Path;
    use std::time::Duration;

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
    fn usage_rendering() {
        let conf = conf_json("blue", Path::new("/d"));
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
}
