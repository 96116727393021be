//! The engine's entry point in the etcd helper (`mactrunk-etcd engine`):
//! one request from the plugin, run on the plugin's store under the
//! plugin's lock (inherited descriptor), one response. Only the helper
//! calls this, so neither the engine nor etcd-client is linked into the
//! plugins (size and start time without `cluster`).
//!
//! ```text
//! {"op": "add"|"release"|"gc"|"status", "netconf": {...}, "statics": [{"set","ip","key"}],
//!  "containerId", "ifname", "netns", "released": [IP...], "lockFd": N, "budgetMs": N}
//! -> {"ok": true, "assigned": [{"set", "ip", "fresh"}]}  (add)
//!    {"ok": true, "returned": [CIDR...]}                 (gc)
//!    {"ok": true}                                        (release, status)
//!    {"ok": false, "code": N, "msg": "..."}
//! ```

use std::fs::File;
use std::net::IpAddr;
use std::os::fd::FromRawFd;

use serde_json::{Value, json};

use super::ClusterConfig;
use super::engine::{Engine, Etcd};
use super::kv::ClusterKv;
use crate::cni::env::CniArgs;
use crate::cni::{CniError, code};
use crate::ipam::config::{IpamConfig, StaticIp};
use crate::ipam::store::{FileStore, Owner, Store};

fn bad(msg: impl Into<String>) -> CniError {
    CniError::internal(format!("etcd helper request: {}", msg.into()))
}

/// Serve one request; `connect` makes the etcd connection on first use.
pub fn serve<'a>(
    req: &Value,
    connect: impl FnOnce(&ClusterConfig) -> Result<Box<dyn ClusterKv + 'a>, CniError> + 'a,
) -> Value {
    match run(req, connect) {
        Ok(v) => v,
        Err(e) => json!({"ok": false, "code": e.code, "msg": e.msg}),
    }
}

fn run<'a>(
    req: &Value,
    connect: impl FnOnce(&ClusterConfig) -> Result<Box<dyn ClusterKv + 'a>, CniError> + 'a,
) -> Result<Value, CniError> {
    let fd = req
        .get("lockFd")
        .and_then(Value::as_i64)
        .and_then(|f| i32::try_from(f).ok())
        .filter(|f| *f > 2)
        .ok_or_else(|| bad("no lockFd"))?;
    // SAFETY: F_GETFD only asks whether the descriptor is open.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return Err(bad(format!("lockFd {fd} is not open")));
    }
    // SAFETY: the plugin handed this descriptor to us for this purpose; it
    // is owned (and closed) by the File from here on.
    let lock = unsafe { File::from_raw_fd(fd) };
    let netconf = req.get("netconf").ok_or_else(|| bad("no netconf"))?;
    let mut conf = IpamConfig::from_netconf(netconf, &CniArgs::default())?;
    if let Some(list) = req.get("statics").and_then(Value::as_array) {
        conf.static_ips = list
            .iter()
            .map(|s| {
                Some(StaticIp {
                    set: usize::try_from(s.get("set")?.as_u64()?).ok()?,
                    ip: s.get("ip")?.as_str()?.parse().ok()?,
                    key: s.get("key")?.as_str()?.to_string(),
                })
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| bad("bad statics"))?;
    }
    let cluster = conf
        .cluster
        .clone()
        .ok_or_else(|| bad("no ipam.cluster in netconf"))?;
    let mut store = FileStore::open_locked(&conf.location().dir, lock)?;
    let c2 = cluster.clone();
    let mut etcd = Etcd::lazy(move || connect(&c2));
    let mut e = Engine {
        store: &mut store,
        cluster: &cluster,
        network: &conf.network,
        etcd: &mut etcd,
    };
    let op = req.get("op").and_then(Value::as_str).unwrap_or("");
    match op {
        "add" => {
            let str_of = |k: &str| req.get(k).and_then(Value::as_str).unwrap_or("");
            let owner = Owner::new(str_of("containerId"), str_of("ifname"));
            owner.validate()?;
            let netns = req.get("netns").and_then(Value::as_str);
            let assigned = e.allocate(&conf, &owner, netns)?;
            if let Err(err) = store.commit() {
                for a in assigned.iter().filter(|a| a.fresh) {
                    let _ = store.unreserve(&owner, a.ip);
                }
                return Err(err.into());
            }
            let list: Vec<Value> = assigned
                .iter()
                .map(|a| json!({"set": a.set, "ip": a.ip.to_string(), "fresh": a.fresh}))
                .collect();
            Ok(json!({"ok": true, "assigned": list}))
        }
        "release" => {
            let released: Vec<IpAddr> = req
                .get("released")
                .and_then(Value::as_array)
                .map(|l| l.iter().filter_map(|v| v.as_str()?.parse().ok()).collect())
                .unwrap_or_default();
            e.after_release(&conf, &released);
            Ok(json!({"ok": true}))
        }
        "gc" => {
            let returned = e.gc()?;
            let list: Vec<String> = returned.iter().map(ToString::to_string).collect();
            Ok(json!({"ok": true, "returned": list}))
        }
        "status" => {
            e.status(&conf)?;
            Ok(json!({"ok": true}))
        }
        other => Err(CniError::new(
            code::INTERNAL,
            format!("etcd helper: unknown op {other:?}"),
        )),
    }
}

/// The request for `op` on `conf` (the plugin side builds it; the helper's
/// answer is read by [`super::etcd_exec::call`]).
pub fn request(op: &str, conf: &IpamConfig) -> Value {
    let statics: Vec<Value> = conf
        .static_ips
        .iter()
        .map(|s| json!({"set": s.set, "ip": s.ip.to_string(), "key": s.key}))
        .collect();
    let netconf = conf
        .cluster
        .as_ref()
        .map_or(Value::Null, |c| (*c.netconf).clone());
    json!({"op": op, "netconf": netconf, "statics": statics})
}
