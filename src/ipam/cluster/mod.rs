//! Cluster mode of the IPAM (`ipam.cluster`): one subnet shared by many
//! hosts through etcd, Calico-style. Each range is cut into blocks; a node
//! claims a block with one etcd transaction and allocates inside its own
//! blocks locally, in the ordinary file store. See docs/cluster.md.
//!
//! - [`config`]: the `cluster` key.
//! - [`blocks`]: pure block math.
//! - [`kv`]: the KV primitives as a trait, and an in-memory double.
//! - [`etcd_exec`]: the real KV, the `mactrunk-etcd` child process.
//! - [`engine`]: claim, reconcile, return, statics, GC, STATUS.
//!
//! Without `ipam.cluster` none of this runs: no helper is started, no file
//! of it is read.

pub mod blocks;
pub mod config;
pub mod engine;
pub mod etcd_exec;
pub mod kv;

#[cfg(test)]
mod tests;

use std::time::Duration;

pub use config::ClusterConfig;
pub use engine::{Engine, Etcd};

use crate::cni::CniError;

/// etcd for one plugin call: the helper, started on first use with the
/// whole call's etcd budget `budget` (`timeoutMs`, or less for best-effort
/// work).
pub fn etcd_for(cluster: &ClusterConfig, budget: Duration) -> Etcd<'_> {
    Etcd::lazy(move || {
        let tls = etcd_exec::read_tls(cluster)?;
        let kv = etcd_exec::EtcdExec::start(cluster, tls, budget).map_err(engine::kv_error)?;
        Ok(Box::new(kv) as Box<dyn kv::ClusterKv>)
    })
}

/// The settings a node saved next to its store (`.cluster.json`), for the
/// admin commands: the same shape as `ipam.cluster`.
pub fn session_from(text: &str) -> Result<ClusterConfig, CniError> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| CniError::config(engine::SESSION_FILE, e))?;
    let ipam = serde_json::json!({ "cluster": v });
    ClusterConfig::parse(
        ipam.as_object()
            .ok_or_else(|| CniError::internal("not an object"))?,
    )?
    .ok_or_else(|| CniError::config(engine::SESSION_FILE, "empty"))
}
