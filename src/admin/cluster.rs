//! The cluster IPAM's admin commands: `blocks` (every block of a network in
//! etcd) and `release-node` (delete a dead node's blocks). etcd is reached
//! with the settings the plugin saved next to the network's store
//! (`.cluster.json`), through the same `mactrunk-etcd` helper.

use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use ipnetwork::IpNetwork;
use serde_json::{Value, json};

use super::args::Command;
use super::commands::Failure;
use super::report::{Render, Report};
use crate::ipam::cluster::blocks::{insert_by, parse_block_key};
use crate::ipam::cluster::engine::{BLOCKS_FILE, SESSION_FILE, kv_error, value_node};
use crate::ipam::cluster::kv::{ClusterKv, Kv};
use crate::ipam::cluster::{ClusterConfig, session_from};
use crate::ipam::config::DEFAULT_LOCK_TIMEOUT;
use crate::ipam::range::{net_bounds, to_u128};
use crate::ipam::store::StoreReader;

/// One block as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BlockRow {
    pub(crate) block: IpNetwork,
    pub(crate) node: String,
    pub(crate) claimed: Option<u64>,
    pub(crate) subnet: Option<IpNetwork>,
    /// This node's blocks only: (used, free) from the local store.
    pub(crate) local: Option<(u128, u128)>,
    /// In this node's local list (false for one of ours only in etcd:
    /// a claim whose local record a crash lost, adopted at the next claim or GC).
    pub(crate) listed: bool,
}

/// One node's usage report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NodeRow {
    pub(crate) node: String,
    pub(crate) used: Option<u64>,
    pub(crate) updated: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BlocksReport {
    pub(crate) network: String,
    pub(crate) this_node: String,
    pub(crate) blocks: Vec<BlockRow>,
    pub(crate) nodes: Vec<NodeRow>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReleaseNodeReport {
    pub(crate) network: String,
    pub(crate) node: String,
    pub(crate) released: Vec<IpNetwork>,
    /// Blocks that changed between the listing and the delete (left alone).
    pub(crate) changed: Vec<IpNetwork>,
}

fn time_text(secs: Option<u64>) -> String {
    secs.map_or("-".into(), |s| {
        crate::sys::log::timestamp(UNIX_EPOCH + Duration::from_secs(s))
    })
}

impl Render for BlocksReport {
    fn table(&self) -> String {
        let mut out = format!(
            "network {} (this node: {})\n{:<24} {:<20} {:<24} {:>6} {:>6}\n",
            self.network, self.this_node, "BLOCK", "NODE", "CLAIMED", "USED", "FREE"
        );
        for b in &self.blocks {
            let (used, free) = match b.local {
                Some((u, f)) => (u.to_string(), f.to_string()),
                None => ("-".into(), "-".into()),
            };
            let mark = if b.node == self.this_node && !b.listed {
                " (not in the local list: adopted at the next claim or GC)"
            } else {
                ""
            };
            out.push_str(&format!(
                "{:<24} {:<20} {:<24} {:>6} {:>6}{mark}\n",
                b.block.to_string(),
                b.node,
                time_text(b.claimed),
                used,
                free
            ));
        }
        if !self.nodes.is_empty() {
            out.push_str(&format!(
                "\n{:<20} {:>6} {:<24}\n",
                "NODE", "USED", "REPORTED"
            ));
            for n in &self.nodes {
                out.push_str(&format!(
                    "{:<20} {:>6} {:<24}\n",
                    n.node,
                    n.used.map_or("-".into(), |u| u.to_string()),
                    time_text(n.updated)
                ));
            }
        }
        out
    }

    fn json(&self) -> Value {
        let blocks: Vec<Value> = self
            .blocks
            .iter()
            .map(|b| {
                let mut v = json!({
                    "block": b.block.to_string(),
                    "node": b.node,
                    "claimed": b.claimed.map(|s| time_text(Some(s))),
                    "subnet": b.subnet.map(|s| s.to_string()),
                });
                if let Some((u, f)) = b.local {
                    v["used"] = json!(u as u64);
                    v["free"] = json!(f as u64);
                    v["listed"] = json!(b.listed);
                }
                v
            })
            .collect();
        let nodes: Vec<Value> = self
            .nodes
            .iter()
            .map(|n| json!({"node": n.node, "used": n.used, "updated": n.updated.map(|s| time_text(Some(s)))}))
            .collect();
        json!({"network": self.network, "thisNode": self.this_node, "blocks": blocks, "nodes": nodes})
    }
}

impl Render for ReleaseNodeReport {
    fn table(&self) -> String {
        let mut out = format!(
            "released {} block(s) of node {} in network {}\n",
            self.released.len(),
            self.node,
            self.network
        );
        for b in &self.released {
            out.push_str(&format!("  {b}\n"));
        }
        for b in &self.changed {
            out.push_str(&format!(
                "  {b}: changed meanwhile (claimed again?), left alone\n"
            ));
        }
        out
    }

    fn json(&self) -> Value {
        let list = |v: &[IpNetwork]| v.iter().map(|b| b.to_string()).collect::<Vec<_>>();
        json!({"network": self.network, "node": self.node, "released": list(&self.released), "changed": list(&self.changed)})
    }
}

/// The saved settings of `network` on this node, and a connection to etcd.
fn connect(
    data_dir: &Path,
    network: &str,
) -> Result<(ClusterConfig, StoreReader, Box<dyn ClusterKv>), Failure> {
    let dir = data_dir.join(network);
    let store = StoreReader::open(&dir, DEFAULT_LOCK_TIMEOUT)?;
    let text = store.read_meta(SESSION_FILE)?.ok_or_else(|| {
        Failure(format!(
            "network {network:?} has no cluster settings in {} (no {SESSION_FILE}: not in cluster mode, or this node never talked to etcd for it)",
            dir.display()
        ))
    })?;
    let cluster = session_from(&text)
        .map_err(|e| Failure(format!("{}: {}", dir.join(SESSION_FILE).display(), e.msg)))?;
    let connect = super::CLUSTER_KV
        .get()
        .ok_or_else(|| Failure("the cluster commands run in mactrunk-etcd".into()))?;
    let kv = connect(&cluster)?;
    Ok((cluster, store, kv))
}

fn list(kv: &mut dyn ClusterKv, prefix: &str) -> Result<Vec<Kv>, Failure> {
    kv.list(prefix).map_err(|e| Failure::from(kv_error(e)))
}

fn field_u64(v: &str, f: &str) -> Option<u64> {
    serde_json::from_str::<Value>(v).ok()?.get(f)?.as_u64()
}

/// The cluster commands, in the helper (see `super::cluster_main`).
pub(crate) fn execute(cmd: &Command) -> Result<Report, Failure> {
    match cmd {
        Command::Blocks { data_dir, network } => blocks(data_dir, network).map(Report::Blocks),
        Command::ReleaseNode {
            data_dir,
            network,
            node,
            force,
        } => release_node(data_dir, network, node, *force).map(Report::ReleaseNode),
        _ => Err(Failure("not a cluster command".into())),
    }
}

pub(crate) fn blocks(data_dir: &Path, network: &str) -> Result<BlocksReport, Failure> {
    let (cluster, store, mut kv) = connect(data_dir, network)?;
    let base = cluster.net_prefix(network);
    let bprefix = format!("{base}blocks/");
    let nprefix = format!("{base}nodes/");
    let listed: Vec<IpNetwork> = store
        .read_meta(BLOCKS_FILE)?
        .map(|t| crate::ipam::cluster::engine::listed_blocks(&t))
        .unwrap_or_default();
    let held: Vec<IpAddr> = store.all()?.into_iter().map(|a| a.ip).collect();
    let mut rows = Vec::new();
    for kv in list(kv.as_mut(), &bprefix)? {
        let Some(block) = kv.key.strip_prefix(&bprefix).and_then(parse_block_key) else {
            continue;
        };
        let node = value_node(&kv.value).unwrap_or_else(|| "?".into());
        let subnet = serde_json::from_str::<Value>(&kv.value)
            .ok()
            .and_then(|v| v.get("subnet")?.as_str()?.parse::<IpNetwork>().ok());
        let local = (node == cluster.node).then(|| {
            let used = held.iter().filter(|ip| block.contains(**ip)).count() as u128;
            let (b0, b1) = net_bounds(&block);
            let mut size = (b1 - b0).saturating_add(1);
            if let Some(s) = subnet
                && s.is_ipv4()
                && s.prefix() < 31
            {
                let (s0, s1) = net_bounds(&s);
                size -= [s0, s1].iter().filter(|e| (b0..=b1).contains(*e)).count() as u128;
            }
            (used, size.saturating_sub(used))
        });
        let row = BlockRow {
            block,
            listed: listed.contains(&block),
            node,
            claimed: field_u64(&kv.value, "claimed"),
            subnet,
            local,
        };
        insert_by(&mut rows, row, |r| {
            (to_u128(r.block.network()), r.block.prefix())
        });
    }
    let nodes = list(kv.as_mut(), &nprefix)?
        .into_iter()
        .filter_map(|kv| {
            let node = kv.key.strip_prefix(&nprefix)?.to_string();
            Some(NodeRow {
                used: field_u64(&kv.value, "used"),
                updated: field_u64(&kv.value, "updated"),
                node,
            })
        })
        .collect();
    Ok(BlocksReport {
        network: network.to_string(),
        this_node: cluster.node,
        blocks: rows,
        nodes,
    })
}

pub(crate) fn release_node(
    data_dir: &Path,
    network: &str,
    node: &str,
    force: bool,
) -> Result<ReleaseNodeReport, Failure> {
    let (cluster, _store, mut kv) = connect(data_dir, network)?;
    if node == cluster.node && !force {
        return Err(Failure(format!(
            "{node} is this node: its blocks hold this node's addresses; --force releases them anyway"
        )));
    }
    let base = cluster.net_prefix(network);
    let node_key = format!("{base}nodes/{node}");
    let report = list(kv.as_mut(), &node_key)?
        .into_iter()
        .find(|kv| kv.key == node_key);
    if let Some(r) = &report {
        let used = field_u64(&r.value, "used").unwrap_or(0);
        if used > 0 && !force {
            return Err(Failure(format!(
                "node {node} still uses {used} address(es) in network {network} as far as etcd knows (its usage report of {}); --force releases its blocks anyway",
                time_text(field_u64(&r.value, "updated"))
            )));
        }
    }
    let bprefix = format!("{base}blocks/");
    let mut out = ReleaseNodeReport {
        network: network.to_string(),
        node: node.to_string(),
        released: Vec::new(),
        changed: Vec::new(),
    };
    for b in list(kv.as_mut(), &bprefix)? {
        let Some(block) = b.key.strip_prefix(&bprefix).and_then(parse_block_key) else {
            continue;
        };
        if value_node(&b.value).as_deref() != Some(node) {
            continue;
        }
        // Conditional: a block claimed again between the list and here stays.
        match kv.delete_if(&b.key, &b.value) {
            Ok(true) => out.released.push(block),
            Ok(false) => out.changed.push(block),
            Err(e) => return Err(Failure::from(kv_error(e))),
        }
    }
    if let Some(r) = report {
        kv.delete_if(&r.key, &r.value)
            .map_err(|e| Failure::from(kv_error(e)))?;
    }
    if out.released.is_empty() && out.changed.is_empty() {
        return Err(Failure(format!(
            "node {node} has no block in network {network}"
        )));
    }
    Ok(out)
}
