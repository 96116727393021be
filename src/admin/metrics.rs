//! `metrics`: the IPAM stores and VLAN parents as Prometheus gauges, for
//! node_exporter's textfile collector (docs/metrics.md). Pure: the report
//! is gathered in `commands.rs`; here it is rendered, as the Prometheus text
//! exposition format (0.0.4) or as JSON.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::SystemTime;

use serde_json::{Value, json};

use super::report::Render;
use crate::ipam::range::Range;

/// What `metrics` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MetricsReport {
    /// When it was gathered: ages are counted up to this.
    pub(crate) now: SystemTime,
    pub(crate) networks: Vec<NetworkMetrics>,
    pub(crate) vlan_parents: Vec<VlanParentMetrics>,
    /// Configs, stores or registries that could not be read.
    pub(crate) errors: Vec<String>,
    /// Where the exposition was written (`--textfile`); then nothing is
    /// printed but with `--json`.
    pub(crate) textfile: Option<PathBuf>,
}

/// One network's store (and its range sets, when a config names them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NetworkMetrics {
    pub(crate) name: String,
    pub(crate) store: PathBuf,
    /// The store could not be read (the gauges below are then 0).
    pub(crate) error: Option<String>,
    /// Addresses held by attachments (quarantines not counted).
    pub(crate) allocations: usize,
    /// Addresses a probe or DAD found in use on the network.
    pub(crate) quarantined: usize,
    /// The oldest allocation's record time.
    pub(crate) oldest: Option<SystemTime>,
    /// Addresses whose recorded network namespace no longer exists (the
    /// container is gone and no DEL came); None when not checked.
    pub(crate) orphaned: Option<usize>,
    /// Cluster IPAM: the blocks this node owns (its local list); None when
    /// the network is not in cluster mode. The sets' capacity is then that
    /// of the owned blocks, not the whole range.
    pub(crate) blocks_owned: Option<usize>,
    /// From the network's config; empty for a store no config names.
    pub(crate) sets: Vec<SetMetrics>,
}

/// One range set of a configured network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SetMetrics {
    /// The config key, e.g. `ipam.ranges[0]`.
    pub(crate) key: String,
    pub(crate) ranges: Vec<Range>,
    pub(crate) capacity: u128,
    /// Of the capacity: held by attachments.
    pub(crate) used: u128,
    /// Of the capacity: quarantined.
    pub(crate) quarantined: u128,
}

impl SetMetrics {
    pub(crate) fn free(&self) -> u128 {
        self.capacity
            .saturating_sub(self.used)
            .saturating_sub(self.quarantined)
    }
}

/// A VLAN link mactrunk created and shares between attachments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VlanParentMetrics {
    pub(crate) link: String,
    pub(crate) lower: String,
    pub(crate) vid: u16,
    pub(crate) users: usize,
}

/// A label value as the text format wants it: `\`, `"` and line feeds escaped.
fn label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// One metric family: HELP, TYPE and its samples (omitted when it has none).
struct Family {
    name: &'static str,
    help: &'static str,
    samples: Vec<(String, String)>,
}

impl Family {
    fn new(name: &'static str, help: &'static str) -> Family {
        Family {
            name,
            help,
            samples: Vec::new(),
        }
    }

    fn add(&mut self, labels: &[(&str, &str)], value: impl ToString) {
        let l: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", label(v)))
            .collect();
        let l = if l.is_empty() {
            String::new()
        } else {
            format!("{{{}}}", l.join(","))
        };
        self.samples.push((l, value.to_string()));
    }

    fn write(&self, out: &mut String, always: bool) {
        if self.samples.is_empty() && !always {
            return;
        }
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(out, "# TYPE {} gauge", self.name);
        for (l, v) in &self.samples {
            let _ = writeln!(out, "{}{l} {v}", self.name);
        }
    }
}

fn joined(ranges: &[Range], f: impl Fn(&Range) -> String) -> String {
    let mut v: Vec<String> = ranges.iter().map(f).collect();
    v.dedup();
    v.join(",")
}

fn age_secs(now: SystemTime, t: SystemTime) -> u64 {
    now.duration_since(t).map_or(0, |d| d.as_secs())
}

impl MetricsReport {
    /// The Prometheus text exposition format: one gauge family per metric,
    /// families without samples left out (but the error count, always there).
    pub(crate) fn exposition(&self) -> String {
        let mut capacity = Family::new(
            "mactrunk_ipam_range_capacity",
            "Addresses the range set can hand out (its ranges minus gateway and exclude).",
        );
        let mut used = Family::new(
            "mactrunk_ipam_range_used",
            "Addresses of the range set held by attachments.",
        );
        let mut free = Family::new(
            "mactrunk_ipam_range_free",
            "Addresses of the range set an ADD can still get (capacity - used - quarantined).",
        );
        let mut quarantined_set = Family::new(
            "mactrunk_ipam_range_quarantined",
            "Addresses of the range set quarantined: a probe or IPv6 DAD found them in use on the network.",
        );
        let mut allocations = Family::new(
            "mactrunk_ipam_allocations",
            "Addresses held by attachments in the network's store (static ones included).",
        );
        let mut quarantined = Family::new(
            "mactrunk_ipam_quarantined_addresses",
            "Quarantined addresses in the network's store (mactrunk-ipam list shows them).",
        );
        let mut oldest = Family::new(
            "mactrunk_ipam_oldest_allocation_age_seconds",
            "Age of the network's oldest allocation (its record's mtime).",
        );
        let mut orphaned = Family::new(
            "mactrunk_ipam_orphaned_allocations",
            "Addresses whose recorded network namespace no longer exists: held for a container that is gone.",
        );
        let mut blocks_owned = Family::new(
            "mactrunk_ipam_cluster_blocks_owned",
            "Cluster IPAM (ipam.cluster): blocks of the range this node owns in etcd; the range gauges count only their addresses.",
        );
        let mut readable = Family::new(
            "mactrunk_ipam_store_readable",
            "1 if the network's store could be read, 0 if not (see the command's error output).",
        );
        let mut vlan_users = Family::new(
            "mactrunk_vlan_parent_users",
            "Attachments using a VLAN link mactrunk created (it is removed when this reaches 0).",
        );
        let mut errors = Family::new(
            "mactrunk_metrics_errors",
            "Configs, stores and VLAN records this run could not read.",
        );
        for n in &self.networks {
            let net = [("network", n.name.as_str())];
            readable.add(&net, u8::from(n.error.is_none()));
            if n.error.is_some() {
                continue;
            }
            allocations.add(&net, n.allocations);
            quarantined.add(&net, n.quarantined);
            if let Some(t) = n.oldest {
                oldest.add(&net, age_secs(self.now, t));
            }
            if let Some(o) = n.orphaned {
                orphaned.add(&net, o);
            }
            if let Some(b) = n.blocks_owned {
                blocks_owned.add(&net, b);
            }
            for s in &n.sets {
                let subnet = joined(&s.ranges, |r| r.subnet.to_string());
                let range = joined(&s.ranges, |r| format!("{}-{}", r.range_start, r.range_end));
                let l = [
                    ("network", n.name.as_str()),
                    ("range_set", s.key.as_str()),
                    ("subnet", subnet.as_str()),
                    ("range", range.as_str()),
                ];
                capacity.add(&l, s.capacity);
                used.add(&l, s.used);
                free.add(&l, s.free());
                quarantined_set.add(&l, s.quarantined);
            }
        }
        for v in &self.vlan_parents {
            let vid = v.vid.to_string();
            vlan_users.add(
                &[
                    ("link", v.link.as_str()),
                    ("lower", v.lower.as_str()),
                    ("vlan", vid.as_str()),
                ],
                v.users,
            );
        }
        errors.add(&[], self.error_count());
        let mut out = String::new();
        for f in [
            &capacity,
            &used,
            &free,
            &quarantined_set,
            &allocations,
            &quarantined,
            &oldest,
            &orphaned,
            &blocks_owned,
            &readable,
            &vlan_users,
        ] {
            f.write(&mut out, false);
        }
        errors.write(&mut out, true);
        out
    }

    fn error_count(&self) -> usize {
        self.errors.len() + self.networks.iter().filter(|n| n.error.is_some()).count()
    }
}

fn big(n: u128) -> Value {
    match u64::try_from(n) {
        Ok(v) => json!(v),
        Err(_) => json!(n.to_string()),
    }
}

impl Render for MetricsReport {
    /// The exposition; nothing when it went to `--textfile`, but the errors.
    fn table(&self) -> String {
        match &self.textfile {
            None => self.exposition(),
            Some(_) => {
                self.errors
                    .iter()
                    .map(|e| format!("error: {e}\n"))
                    .chain(self.networks.iter().filter_map(|n| {
                        Some(format!("error: {}: {}\n", n.name, n.error.as_ref()?))
                    }))
                    .collect()
            }
        }
    }

    fn json(&self) -> Value {
        json!({
            "textfile": self.textfile,
            "networks": self.networks.iter().map(|n| json!({
                "name": n.name,
                "store": n.store,
                "error": n.error,
                "allocations": n.allocations,
                "quarantined": n.quarantined,
                "oldestAgeSeconds": n.oldest.map(|t| age_secs(self.now, t)),
                "orphaned": n.orphaned,
                "clusterBlocksOwned": n.blocks_owned,
                "rangeSets": n.sets.iter().map(|s| json!({
                    "key": s.key,
                    "ranges": s.ranges.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    "capacity": big(s.capacity),
                    "used": big(s.used),
                    "quarantined": big(s.quarantined),
                    "free": big(s.free()),
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "vlanParents": self.vlan_parents.iter().map(|v| json!({
                "link": v.link, "lower": v.lower, "vlan": v.vid, "users": v.users,
            })).collect::<Vec<_>>(),
            "errors": self.errors,
        })
    }

    fn failed(&self) -> bool {
        self.error_count() > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn range(subnet: &str, start: &str, end: &str) -> Range {
        Range {
            subnet: subnet.parse().unwrap(),
            range_start: start.parse().unwrap(),
            range_end: end.parse().unwrap(),
            gateway: None,
        }
    }

    fn report() -> MetricsReport {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        MetricsReport {
            now,
            networks: vec![
                NetworkMetrics {
                    name: "lan".into(),
                    store: "/d/lan".into(),
                    error: None,
                    allocations: 3,
                    quarantined: 1,
                    oldest: Some(now - Duration::from_secs(3600)),
                    orphaned: Some(1),
                    blocks_owned: None,
                    sets: vec![
                        SetMetrics {
                            key: "ipam.ranges[0]".into(),
                            ranges: vec![
                                range("10.0.0.0/24", "10.0.0.10", "10.0.0.19"),
                                range("10.0.0.0/24", "10.0.0.30", "10.0.0.39"),
                            ],
                            capacity: 20,
                            used: 2,
                            quarantined: 1,
                        },
                        SetMetrics {
                            key: "ipam.ranges[1]".into(),
                            ranges: vec![range(
                                "fd00::/64",
                                "fd00::1",
                                "fd00::ffff:ffff:ffff:ffff",
                            )],
                            capacity: u128::from(u64::MAX) + 5,
                            used: 1,
                            quarantined: 0,
                        },
                    ],
                },
                NetworkMetrics {
                    name: "odd\"na\\me".into(),
                    store: "/d/x".into(),
                    error: None,
                    allocations: 0,
                    quarantined: 0,
                    oldest: None,
                    orphaned: None,
                    blocks_owned: None,
                    sets: vec![],
                },
                NetworkMetrics {
                    name: "broken".into(),
                    store: "/d/broken".into(),
                    error: Some("IPAM store: refusing /d/broken".into()),
                    allocations: 0,
                    quarantined: 0,
                    oldest: None,
                    orphaned: None,
                    blocks_owned: None,
                    sets: vec![],
                },
            ],
            vlan_parents: vec![VlanParentMetrics {
                link: "eth0.50".into(),
                lower: "eth0".into(),
                vid: 50,
                users: 2,
            }],
            errors: vec![],
            textfile: None,
        }
    }

    fn sample(text: &str, prefix: &str) -> Vec<String> {
        text.lines()
            .filter(|l| l.starts_with(prefix))
            .map(String::from)
            .collect()
    }

    #[test]
    fn exposition_has_every_family_and_sample() {
        let r = report();
        let t = r.exposition();
        let set0 = r#"{network="lan",range_set="ipam.ranges[0]",subnet="10.0.0.0/24",range="10.0.0.10-10.0.0.19,10.0.0.30-10.0.0.39"}"#;
        assert_eq!(
            sample(&t, "mactrunk_ipam_range_capacity{"),
            [
                format!("mactrunk_ipam_range_capacity{set0} 20"),
                r#"mactrunk_ipam_range_capacity{network="lan",range_set="ipam.ranges[1]",subnet="fd00::/64",range="fd00::1-fd00::ffff:ffff:ffff:ffff"} 18446744073709551620"#.to_string(),
            ]
        );
        assert!(
            t.contains(&format!("mactrunk_ipam_range_used{set0} 2\n")),
            "{t}"
        );
        assert!(t.contains(&format!("mactrunk_ipam_range_quarantined{set0} 1\n")));
        assert!(t.contains(&format!("mactrunk_ipam_range_free{set0} 17\n")));
        assert!(t.contains("mactrunk_ipam_allocations{network=\"lan\"} 3\n"));
        assert!(t.contains("mactrunk_ipam_allocations{network=\"odd\\\"na\\\\me\"} 0\n"));
        assert!(t.contains("mactrunk_ipam_quarantined_addresses{network=\"lan\"} 1\n"));
        assert_eq!(
            sample(&t, "mactrunk_ipam_oldest_allocation_age_seconds{"),
            ["mactrunk_ipam_oldest_allocation_age_seconds{network=\"lan\"} 3600"]
        );
        assert_eq!(
            sample(&t, "mactrunk_ipam_orphaned_allocations{"),
            ["mactrunk_ipam_orphaned_allocations{network=\"lan\"} 1"]
        );
        assert_eq!(
            sample(&t, "mactrunk_ipam_store_readable{"),
            [
                "mactrunk_ipam_store_readable{network=\"lan\"} 1",
                "mactrunk_ipam_store_readable{network=\"odd\\\"na\\\\me\"} 1",
                "mactrunk_ipam_store_readable{network=\"broken\"} 0",
            ]
        );
        assert!(
            !t.contains("network=\"broken\"} 0\nmactrunk_ipam_allocations"),
            "a broken store has no other samples"
        );
        assert_eq!(
            sample(&t, "mactrunk_ipam_allocations{").len(),
            2,
            "not for the broken store"
        );
        assert!(t.contains(
            "mactrunk_vlan_parent_users{link=\"eth0.50\",lower=\"eth0\",vlan=\"50\"} 2\n"
        ));
        assert!(t.contains("mactrunk_metrics_errors 1\n"));
        // every family: HELP then TYPE gauge, before its samples
        for f in [
            "mactrunk_ipam_range_capacity",
            "mactrunk_ipam_range_used",
            "mactrunk_ipam_range_free",
            "mactrunk_ipam_range_quarantined",
            "mactrunk_ipam_allocations",
            "mactrunk_ipam_quarantined_addresses",
            "mactrunk_ipam_oldest_allocation_age_seconds",
            "mactrunk_ipam_orphaned_allocations",
            "mactrunk_ipam_store_readable",
            "mactrunk_vlan_parent_users",
            "mactrunk_metrics_errors",
        ] {
            let help = t.find(&format!("# HELP {f} ")).expect(f);
            let ty = t.find(&format!("# TYPE {f} gauge\n")).expect(f);
            let first = t.find(&format!("\n{f}")).expect(f);
            assert!(help < ty && ty < first, "{f}");
            assert_eq!(t.matches(&format!("# TYPE {f} ")).count(), 1, "{f}");
        }
        assert!(t.ends_with('\n'));
        assert!(r.failed(), "a store that cannot be read is a failure");
    }

    #[test]
    fn an_empty_node_has_only_the_error_count() {
        let r = MetricsReport {
            now: SystemTime::now(),
            networks: vec![],
            vlan_parents: vec![],
            errors: vec![],
            textfile: None,
        };
        assert_eq!(
            r.exposition(),
            "# HELP mactrunk_metrics_errors Configs, stores and VLAN records this run could not read.\n\
             # TYPE mactrunk_metrics_errors gauge\nmactrunk_metrics_errors 0\n"
        );
        assert!(!r.failed());
    }

    #[test]
    fn with_a_textfile_only_errors_are_printed_and_json_says_it() {
        let mut r = report();
        r.textfile = Some("/t/mactrunk.prom".into());
        r.errors
            .push("/etc/cni/net.d/x.conf: not valid JSON".into());
        assert_eq!(
            r.table(),
            "error: /etc/cni/net.d/x.conf: not valid JSON\nerror: broken: IPAM store: refusing /d/broken\n"
        );
        let j = r.json();
        assert_eq!(j["textfile"], "/t/mactrunk.prom");
        assert_eq!(
            j["networks"][0]["rangeSets"][1]["capacity"],
            "18446744073709551620"
        );
        assert_eq!(j["networks"][0]["rangeSets"][0]["free"], 17);
        assert_eq!(j["networks"][0]["oldestAgeSeconds"], 3600);
        assert_eq!(j["networks"][1]["orphaned"], Value::Null);
        assert_eq!(j["vlanParents"][0]["users"], 2);
        assert!(r.exposition().contains("mactrunk_metrics_errors 2\n"));
    }

    #[test]
    fn free_never_underflows() {
        let s = SetMetrics {
            key: "k".into(),
            ranges: vec![],
            capacity: 2,
            used: 2,
            quarantined: 1,
        };
        assert_eq!(s.free(), 0);
    }
}
