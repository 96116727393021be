//! Cluster mode of the IPAM (`ipam.cluster`): one subnet shared by many
//! hosts through etcd, Calico-style. Each range is cut into blocks; a node
//! claims a block with one etcd transaction and allocates inside its own
//! blocks locally, in the ordinary file store. See docs/cluster.md.
//!
//! - [`config`]: the `cluster` key.
//! - [`blocks`]: pure block math.
//! - [`kv`]: the KV primitives as a trait, and an in-memory double.
//! - [`engine`]: claim, reconcile, return, statics, GC, STATUS.
//! - [`remote`]: the engine's entry point in the etcd helper.
//! - [`etcd_exec`]: the side effect in the plugin: starting that helper.
//! - here: what the plugin does itself (no etcd: the owned-block fast path
//!   and the cheap checks that decide whether the helper is needed).
//!
//! The plugins link only this file, `config`, `blocks` and `etcd_exec`: the
//! engine and the etcd client run in `mactrunk-etcd` (binary size and start
//! time without `cluster`). Without `ipam.cluster` none of it runs.

pub mod blocks;
pub mod config;
pub mod engine;
pub mod etcd_exec;
pub mod kv;
pub mod remote;

#[cfg(test)]
mod tests;

use std::net::IpAddr;

use ipnetwork::IpNetwork;
use serde_json::{Value, json};

pub use config::ClusterConfig;
pub use engine::{Engine, Etcd};

use crate::cni::{CniError, code};
use crate::ipam::allocator::{self, Assigned};
use crate::ipam::config::IpamConfig;
use crate::ipam::store::{FileStore, Owner, Store};

fn cluster_of(conf: &IpamConfig) -> Result<&ClusterConfig, CniError> {
    conf.cluster
        .as_ref()
        .ok_or_else(|| CniError::internal("not a cluster network"))
}

/// The blocks the node lists as its own (no etcd).
pub fn owned_blocks<S: Store>(store: &mut S) -> Result<Vec<IpNetwork>, CniError> {
    Ok(engine::load_owned(store)?
        .into_iter()
        .map(|o| o.block)
        .collect())
}

/// ADD in cluster mode: from the node's blocks when they have room and every
/// static address lies in them (no etcd, no helper); else the whole ADD
/// runs in the etcd helper (claims, reconcile, then the allocation), on
/// this store under its lock.
pub fn allocate(
    store: &mut FileStore,
    conf: &IpamConfig,
    owner: &Owner,
    netns: Option<&str>,
) -> Result<Vec<Assigned>, CniError> {
    let cluster = cluster_of(conf)?;
    let owned = owned_blocks(store)?;
    // The owner index is read here only for static requests (the allocator
    // reads it anyway).
    let statics_here = conf.static_ips.is_empty() || {
        let held = store.owned_by(owner)?;
        conf.static_ips
            .iter()
            .all(|r| held.contains(&r.ip) || owned.iter().any(|b| b.contains(r.ip)))
    };
    if statics_here {
        let narrowed = blocks::restrict(conf, &owned);
        match allocator::allocate(store, &narrowed, owner, netns) {
            Ok(a) => return Ok(a),
            Err(e) if e.code == code::POOL_EXHAUSTED => {}
            Err(e) => return Err(e),
        }
    }
    let mut req = remote::request("add", conf);
    req["containerId"] = json!(owner.container_id);
    req["ifname"] = json!(owner.ifname);
    req["netns"] = json!(netns);
    let v = etcd_exec::call(cluster, store.lock_fd(), req, cluster.timeout)?;
    let list = v
        .get("assigned")
        .and_then(Value::as_array)
        .ok_or_else(|| CniError::internal("etcd helper: no assigned list"))?;
    list.iter()
        .map(|a| {
            let set = a
                .get("set")
                .and_then(Value::as_u64)
                .and_then(|s| usize::try_from(s).ok());
            let ip = a
                .get("ip")
                .and_then(Value::as_str)
                .and_then(|s| s.parse::<IpAddr>().ok());
            let (Some(set), Some(ip)) = (set, ip) else {
                return Err(CniError::internal(format!("etcd helper: bad entry {a}")));
            };
            Ok(Assigned {
                fresh: a.get("fresh").and_then(Value::as_bool).unwrap_or(false),
                ..allocator::assigned(conf, set, ip)?
            })
        })
        .collect()
}

/// After a DEL released `released`: when a block became empty and the node
/// owns another one, the helper returns it if the rules allow (see
/// [`Engine::after_release`]), within a short budget. Never an error.
pub fn after_release(store: &mut FileStore, conf: &IpamConfig, released: &[IpAddr]) {
    let Some(cluster) = &conf.cluster else {
        return;
    };
    let owned = match owned_blocks(store) {
        Ok(o) if o.len() >= 2 => o,
        _ => return,
    };
    let mut emptied = false;
    for b in owned
        .iter()
        .filter(|b| released.iter().any(|ip| b.contains(*ip)))
    {
        if matches!(engine::block_in_use(store, b), Ok(false)) {
            emptied = true;
        }
    }
    if !emptied {
        return;
    }
    let mut req = remote::request("release", conf);
    req["released"] = json!(released.iter().map(ToString::to_string).collect::<Vec<_>>());
    if let Err(e) = etcd_exec::call(
        cluster,
        store.lock_fd(),
        req,
        engine::best_effort_budget(cluster),
    ) {
        crate::sys::log::log_at!(
            crate::sys::log::Level::Warn,
            "cluster IPAM: returning an empty block failed (the next claim or GC returns it): {}",
            e.msg
        );
    }
}

/// GC's cluster part: reconcile and return every empty block (in the helper).
pub fn gc(store: &mut FileStore, conf: &IpamConfig) -> Result<(), CniError> {
    let cluster = cluster_of(conf)?;
    etcd_exec::call(
        cluster,
        store.lock_fd(),
        remote::request("gc", conf),
        cluster.timeout,
    )
    .map(|_| ())
}

/// STATUS in cluster mode: fine when every range set has room in the node's
/// blocks (no etcd); else the helper asks etcd for a free block (code 50
/// when there is none or etcd cannot be asked).
pub fn status(store: &mut FileStore, conf: &IpamConfig) -> Result<(), CniError> {
    let cluster = cluster_of(conf)?;
    let owned = owned_blocks(store)?;
    let mut full = false;
    for i in 0..conf.range_sets.len() {
        if !engine::has_room(store, conf, i, &owned)? {
            full = true;
        }
    }
    if !full {
        return Ok(());
    }
    etcd_exec::call(
        cluster,
        store.lock_fd(),
        remote::request("status", conf),
        cluster.timeout,
    )
    .map(|_| ())
    .map_err(|e| {
        if e.code == code::NOT_AVAILABLE {
            e
        } else {
            CniError::new(
                code::NOT_AVAILABLE,
                format!(
                    "the node's blocks are full and etcd cannot be asked for another: {}",
                    e.msg
                ),
            )
        }
    })
}

/// The settings a node saved next to its store (`.cluster.json`), for the
/// admin commands: the same shape as `ipam.cluster`.
pub fn session_from(text: &str) -> Result<ClusterConfig, CniError> {
    let v: Value =
        serde_json::from_str(text).map_err(|e| CniError::config(engine::SESSION_FILE, e))?;
    let ipam = json!({ "cluster": v });
    ClusterConfig::parse(
        ipam.as_object()
            .ok_or_else(|| CniError::internal("not an object"))?,
    )?
    .ok_or_else(|| CniError::config(engine::SESSION_FILE, "empty"))
}
