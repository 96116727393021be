//! What a command did, and its two renderings: a table (the default) and
//! one JSON document (`--json`). Pure: no I/O.
//!
//! Each kind of report is a struct implementing [`Render`]; [`Report`]
//! holds one of them. A new kind: its struct, its `impl Render`, a variant
//! and an arm in [`Report::kind`].

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::ipam::RangeSetUsage;
use crate::ipam::store::Allocation;
use crate::sys::log::{escape_field, rfc3339_seconds};

/// What a command did, ready to render.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Report {
    List(ListReport),
    Usage(UsageReport),
    Release(ReleaseReport),
    Gc(GcReport),
    Metrics(super::metrics::MetricsReport),
    Blocks(super::cluster::BlocksReport),
    ReleaseNode(super::cluster::ReleaseNodeReport),
}

/// One kind of report.
pub(crate) trait Render {
    /// The human rendering (stdout), lines ending in `\n`.
    fn table(&self) -> String;
    /// The `--json` rendering.
    fn json(&self) -> Value;
    /// Did the command partly fail (exit 1 even though there is a report)?
    fn failed(&self) -> bool {
        false
    }
}

impl Report {
    fn kind(&self) -> &dyn Render {
        match self {
            Report::List(r) => r,
            Report::Usage(r) => r,
            Report::Release(r) => r,
            Report::Gc(r) => r,
            Report::Metrics(r) => r,
            Report::Blocks(r) => r,
            Report::ReleaseNode(r) => r,
        }
    }

    pub(crate) fn render_table(&self) -> String {
        self.kind().table()
    }

    pub(crate) fn to_json(&self) -> Value {
        self.kind().json()
    }

    pub(crate) fn failed(&self) -> bool {
        self.kind().failed()
    }
}

// ------------------------------------------------------------------ list

/// `list`: the stores in a data dir (or one of them) and their allocations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ListReport {
    pub(crate) data_dir: PathBuf,
    pub(crate) networks: Vec<NetworkListing>,
    /// Stores that could not be read (unsafe, locked, unreadable): the
    /// others are still listed; the exit status is 1.
    pub(crate) errors: Vec<StoreFailure>,
}

/// One network's store as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NetworkListing {
    pub(crate) name: String,
    pub(crate) dir: PathBuf,
    pub(crate) allocations: Vec<Allocation>,
    /// Addresses a probe or IPv6 DAD found in use on the network
    /// (`conflict:<by>` records): held by no attachment.
    pub(crate) quarantined: Vec<Allocation>,
    /// Entries that could not be read (reported, not fatal).
    pub(crate) problems: Vec<String>,
}

/// A store `list` could not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoreFailure {
    pub(crate) name: String,
    pub(crate) dir: PathBuf,
    pub(crate) error: String,
}

impl Render for ListReport {
    fn table(&self) -> String {
        let failures: String = self
            .errors
            .iter()
            .map(|f| {
                format!(
                    "error: {}: {}\n",
                    escape_field(&f.name),
                    escape_field(&f.error)
                )
            })
            .collect();
        if self.networks.is_empty() {
            if self.errors.is_empty() {
                return format!("no IPAM stores in {}\n", self.data_dir.display());
            }
            return failures;
        }
        let mut rows = Vec::new();
        for n in &self.networks {
            if n.allocations.is_empty() {
                rows.push(
                    [n.name.as_str(), "-", "-", "-", "-"]
                        .map(String::from)
                        .to_vec(),
                );
            }
            rows.extend(n.allocations.iter().map(|a| alloc_row(&n.name, a)));
        }
        let total: usize = self.networks.iter().map(|n| n.allocations.len()).sum();
        let mut out = table(&ALLOC_HEADER, &rows, &[]);
        let quarantined: Vec<Vec<String>> = self
            .networks
            .iter()
            .flat_map(|n| n.quarantined.iter().map(|a| quarantine_row(&n.name, a)))
            .collect();
        let mut what = plural(total, "allocation", "allocations");
        if !quarantined.is_empty() {
            out.push_str(QUARANTINE_TITLE);
            out.push_str(&table(&QUARANTINE_HEADER, &quarantined, &[]));
            what.push_str(" and ");
            what.push_str(&plural(
                quarantined.len(),
                "quarantined address",
                "quarantined addresses",
            ));
        }
        out.push_str(&format!(
            "{what} in {} ({})\n",
            plural(self.networks.len(), "network", "networks"),
            self.data_dir.display()
        ));
        for n in &self.networks {
            for p in &n.problems {
                out.push_str(&format!(
                    "warning: {}: {}\n",
                    escape_field(&n.name),
                    escape_field(p)
                ));
            }
        }
        out + &failures
    }

    fn json(&self) -> Value {
        json!({
            "dataDir": self.data_dir.display().to_string(),
            "networks": self.networks.iter().map(|n| json!({
                "name": n.name,
                "dir": n.dir.display().to_string(),
                "allocations": n.allocations.iter().map(alloc_json).collect::<Vec<_>>(),
                "quarantined": n.quarantined.iter().map(quarantine_json).collect::<Vec<_>>(),
                "problems": n.problems,
            })).collect::<Vec<_>>(),
            "errors": self.errors.iter().map(|f| json!({
                "name": f.name,
                "dir": f.dir.display().to_string(),
                "error": f.error,
            })).collect::<Vec<_>>(),
        })
    }

    fn failed(&self) -> bool {
        !self.errors.is_empty()
    }
}

// ------------------------------------------------------------------ usage

/// `usage`: capacity, used and free addresses per range set of each config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UsageReport {
    pub(crate) networks: Vec<NetworkUsage>,
    /// (config file, problem): configs that could not be evaluated.
    pub(crate) errors: Vec<(PathBuf, String)>,
}

/// One config's usage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NetworkUsage {
    pub(crate) name: String,
    pub(crate) config: PathBuf,
    /// Index of the plugin in a conflist.
    pub(crate) plugin: Option<usize>,
    pub(crate) ipam_type: String,
    pub(crate) store: PathBuf,
    pub(crate) sets: Vec<RangeSetUsage>,
    /// All allocations in the store (also those outside every configured set).
    pub(crate) allocations: usize,
}

impl NetworkUsage {
    /// Allocations in no configured range set's subnet (left over from an older config).
    fn outside(&self) -> usize {
        let inside: u128 = self.sets.iter().map(|s| s.used + s.static_outside).sum();
        (self.allocations as u128).saturating_sub(inside) as usize
    }
}

const USAGE_HEADER: [&str; 7] = [
    "NETWORK", "SET", "RANGES", "CAPACITY", "USED", "FREE", "STATIC",
];

fn usage_row(n: &NetworkUsage, s: &RangeSetUsage) -> Vec<String> {
    let ranges: Vec<String> = s.ranges.iter().map(ToString::to_string).collect();
    vec![
        n.name.clone(),
        s.key.clone(),
        ranges.join(", "),
        s.capacity.to_string(),
        s.used.to_string(),
        s.free().to_string(),
        s.static_outside.to_string(),
    ]
}

fn range_set_json(s: &RangeSetUsage) -> Value {
    json!({
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
    })
}

impl Render for UsageReport {
    fn table(&self) -> String {
        let rows: Vec<Vec<String>> = self
            .networks
            .iter()
            .flat_map(|n| n.sets.iter().map(move |s| usage_row(n, s)))
            .collect();
        let mut out = if self.networks.is_empty() {
            "no mactrunk-ipam or host-local networks found\n".to_string()
        } else {
            table(&USAGE_HEADER, &rows, &[3, 4, 5, 6])
        };
        for n in &self.networks {
            let o = n.outside();
            if o > 0 {
                out.push_str(&format!(
                    "note: {}: {} in no configured subnet (left from an older config?)\n",
                    n.name,
                    plural(o, "allocation", "allocations")
                ));
            }
        }
        for (f, e) in &self.errors {
            out.push_str(&format!("error: {}: {e}\n", f.display()));
        }
        out
    }

    fn json(&self) -> Value {
        json!({
            "networks": self.networks.iter().map(|n| json!({
                "name": n.name,
                "config": n.config.display().to_string(),
                "plugin": n.plugin,
                "ipamType": n.ipam_type,
                "store": n.store.display().to_string(),
                "allocations": n.allocations,
                "outside": n.outside(),
                "rangeSets": n.sets.iter().map(range_set_json).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "errors": self.errors.iter().map(|(f, e)| json!({
                "config": f.display().to_string(), "error": e
            })).collect::<Vec<_>>(),
        })
    }

    fn failed(&self) -> bool {
        !self.errors.is_empty()
    }
}

// ------------------------------------------------------------------ release

/// `release`: the allocations given back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReleaseReport {
    pub(crate) network: String,
    pub(crate) dir: PathBuf,
    pub(crate) released: Vec<Allocation>,
}

impl Render for ReleaseReport {
    fn table(&self) -> String {
        let rows: Vec<Vec<String>> = self
            .released
            .iter()
            .map(|a| alloc_row(&self.network, a))
            .collect();
        let mut out = table(&ALLOC_HEADER, &rows, &[]);
        out.push_str(&format!(
            "released {}\n",
            plural(self.released.len(), "allocation", "allocations")
        ));
        out
    }

    fn json(&self) -> Value {
        json!({
            "network": self.network,
            "dir": self.dir.display().to_string(),
            "released": self.released.iter().map(alloc_json).collect::<Vec<_>>(),
        })
    }
}

// ------------------------------------------------------------------ gc

/// `gc`: what was (or, with `--dry-run`, would be) released and kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GcReport {
    pub(crate) network: String,
    pub(crate) dir: PathBuf,
    pub(crate) dry_run: bool,
    pub(crate) released: Vec<Allocation>,
    pub(crate) kept: usize,
    pub(crate) index_entries_dropped: usize,
    pub(crate) errors: Vec<String>,
}

impl Render for GcReport {
    fn table(&self) -> String {
        let mut out = String::new();
        if !self.released.is_empty() {
            let rows: Vec<Vec<String>> = self
                .released
                .iter()
                .map(|a| alloc_row(&self.network, a))
                .collect();
            out.push_str(&table(&ALLOC_HEADER, &rows, &[]));
        }
        let verb = if self.dry_run {
            "would release"
        } else {
            "released"
        };
        out.push_str(&format!(
            "{verb} {}, kept {}",
            plural(self.released.len(), "allocation", "allocations"),
            self.kept
        ));
        if self.index_entries_dropped > 0 {
            out.push_str(&format!(
                ", dropped {}",
                plural(
                    self.index_entries_dropped,
                    "stale index entry",
                    "stale index entries"
                )
            ));
        }
        out.push('\n');
        for e in &self.errors {
            out.push_str(&format!("error: {e}\n"));
        }
        out
    }

    fn json(&self) -> Value {
        json!({
            "network": self.network,
            "dir": self.dir.display().to_string(),
            "dryRun": self.dry_run,
            "released": self.released.iter().map(alloc_json).collect::<Vec<_>>(),
            "kept": self.kept,
            "indexEntriesDropped": self.index_entries_dropped,
            "errors": self.errors,
        })
    }

    fn failed(&self) -> bool {
        !self.errors.is_empty()
    }
}

// ------------------------------------------------------------------ shared

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

const ALLOC_HEADER: [&str; 5] = ["NETWORK", "IP", "CONTAINER", "IFNAME", "SINCE"];

const QUARANTINE_TITLE: &str = "\nquarantined: found in use on the network, never allocated; `mactrunk-ipam release NETWORK --ip IP` frees one\n";
const QUARANTINE_HEADER: [&str; 4] = ["NETWORK", "IP", "FOUND-BY", "SINCE"];

fn quarantine_row(network: &str, a: &Allocation) -> Vec<String> {
    vec![
        network.to_string(),
        a.ip.to_string(),
        a.owner.quarantined_by().unwrap_or("-").to_string(),
        a.since.map_or_else(|| "-".into(), rfc3339_seconds),
    ]
}

/// `foundBy`: the MAC that answered the probe, or `ipv6-dad`.
fn quarantine_json(a: &Allocation) -> Value {
    json!({
        "ip": a.ip.to_string(),
        "foundBy": a.owner.quarantined_by(),
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

/// Columns padded to their widest cell, two spaces apart; the columns whose
/// index is in `right` are right-aligned. No trailing spaces.
fn table(header: &[&str], rows: &[Vec<String>], right: &[usize]) -> String {
    // Cells come from the store (a record's container ID, a quarantine's
    // "found by"), which anyone who can write there controls: never print
    // a control character to the terminal.
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| escape_field(c).into_owned()).collect())
        .collect();
    let mut width: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let head: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    let mut out = String::new();
    for r in std::iter::once(&head).chain(&rows) {
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
        let r = Report::List(ListReport {
            data_dir: "/d".into(),
            networks: vec![
                NetworkListing {
                    name: "blue".into(),
                    dir: "/d/blue".into(),
                    allocations: vec![
                        alloc("10.0.0.2", "c1", "eth0", Some(0)),
                        alloc("10.0.0.3", "c2", "", None),
                    ],
                    quarantined: vec![],
                    problems: vec![],
                },
                NetworkListing {
                    name: "empty".into(),
                    dir: "/d/empty".into(),
                    allocations: vec![],
                    quarantined: vec![],
                    problems: vec!["bad entry".into()],
                },
            ],
            errors: vec![StoreFailure {
                name: "open".into(),
                dir: "/d/open".into(),
                error: "mode 0777".into(),
            }],
        });
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
        let none = Report::List(ListReport {
            data_dir: "/d".into(),
            networks: vec![],
            errors: vec![],
        });
        assert_eq!(none.render_table(), "no IPAM stores in /d\n");
        assert_eq!(none.to_json()["networks"], json!([]));
        assert_eq!(none.to_json()["errors"], json!([]));
        assert!(!none.failed());
    }

    #[test]
    fn list_rendering_with_quarantined_addresses() {
        let q = |ip: &str, by: &str, secs| Allocation {
            ip: ip.parse().unwrap(),
            owner: Owner::quarantine(by),
            since: Some(UNIX_EPOCH + Duration::from_secs(secs)),
        };
        let r = Report::List(ListReport {
            data_dir: "/d".into(),
            networks: vec![NetworkListing {
                name: "blue".into(),
                dir: "/d/blue".into(),
                allocations: vec![alloc("10.0.0.3", "c1", "eth0", Some(0))],
                quarantined: vec![
                    q("10.0.0.2", "52:54:00:00:00:01", 60),
                    q("fd00::2", "ipv6-dad", 120),
                ],
                problems: vec![],
            }],
            errors: vec![],
        });
        assert_eq!(
            r.render_table(),
            "NETWORK  IP        CONTAINER  IFNAME  SINCE\n\
             blue     10.0.0.3  c1         eth0    1970-01-01T00:00:00Z\n\
             \n\
             quarantined: found in use on the network, never allocated; `mactrunk-ipam release NETWORK --ip IP` frees one\n\
             NETWORK  IP        FOUND-BY           SINCE\n\
             blue     10.0.0.2  52:54:00:00:00:01  1970-01-01T00:01:00Z\n\
             blue     fd00::2   ipv6-dad           1970-01-01T00:02:00Z\n\
             1 allocation and 2 quarantined addresses in 1 network (/d)\n"
        );
        let j = r.to_json();
        assert_eq!(j["networks"][0]["allocations"].as_array().unwrap().len(), 1);
        assert_eq!(
            j["networks"][0]["quarantined"][0],
            json!({"ip": "10.0.0.2", "foundBy": "52:54:00:00:00:01",
                   "since": "1970-01-01T00:01:00Z", "sinceUnix": 60})
        );
        assert_eq!(j["networks"][0]["quarantined"][1]["foundBy"], "ipv6-dad");
    }

    /// Records are written by whoever can write the store: a container ID
    /// or a "found by" with control characters (an escape sequence, a
    /// newline that fakes a row) is printed escaped, never raw.
    #[test]
    fn table_cells_escape_control_characters() {
        let r = Report::List(ListReport {
            data_dir: "/d".into(),
            networks: vec![NetworkListing {
                name: "blue".into(),
                dir: "/d/blue".into(),
                allocations: vec![alloc("10.0.0.3", "c1\u{1b}[2J", "eth0", Some(0))],
                quarantined: vec![Allocation {
                    ip: "10.0.0.2".parse().unwrap(),
                    owner: Owner::quarantine("x\nblue     10.0.0.9  fake"),
                    since: None,
                }],
                problems: vec![],
            }],
            errors: vec![StoreFailure {
                name: "red\r".into(),
                dir: "/d/red".into(),
                error: "bad\u{7}".into(),
            }],
        });
        let t = r.render_table();
        assert!(
            !t.contains('\u{1b}') && !t.contains('\r') && !t.contains('\u{7}'),
            "{t:?}"
        );
        assert!(t.contains("blue     10.0.0.3  c1\\u{1b}[2J  eth0"), "{t}");
        assert!(
            t.contains("blue     10.0.0.2  x\\nblue     10.0.0.9  fake  -\n"),
            "{t}"
        );
        assert!(!t.contains("\nblue     10.0.0.9"), "no fake row: {t}");
        assert!(t.contains("error: red\\r: bad\\u{7}\n"), "{t}");
    }

    #[test]
    fn gc_and_release_rendering() {
        let r = Report::Gc(GcReport {
            network: "blue".into(),
            dir: "/d/blue".into(),
            dry_run: true,
            released: vec![alloc("10.0.0.3", "c2", "eth0", Some(60))],
            kept: 2,
            index_entries_dropped: 0,
            errors: vec![],
        });
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
        let r = Report::Gc(GcReport {
            network: "blue".into(),
            dir: "/d/blue".into(),
            dry_run: false,
            released: vec![],
            kept: 0,
            index_entries_dropped: 3,
            errors: vec!["boom".into()],
        });
        assert_eq!(
            r.render_table(),
            "released 0 allocations, kept 0, dropped 3 stale index entries\nerror: boom\n"
        );
        assert!(r.failed());
        let r = Report::Release(ReleaseReport {
            network: "blue".into(),
            dir: "/d/blue".into(),
            released: vec![alloc("fd00::2", "c1", "eth0", None)],
        });
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
        let r = Report::Usage(UsageReport {
            networks: vec![n],
            errors: vec![("/etc/cni/net.d/99-bad.conf".into(), "not valid JSON".into())],
        });
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
