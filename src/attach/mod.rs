//! The `mactrunk` plugin: a macvlan on a host parent (or on a VLAN of it
//! that mactrunk creates and reference-counts), with addresses from the
//! in-process IPAM or a delegate. One file per command; the kernel is reached
//! only through [`LinkOps`], so the logic and its rollback paths are tested
//! against `sys::netlink::fake` without root.

mod add;
mod check;
pub mod config;
mod del;
mod ipvlan_port;
mod mac;
mod parent;
mod registry;
mod shim;
pub(crate) mod shim_registry;
mod status;
mod tag;
mod undo;
pub(crate) mod vlan;
pub(crate) mod vlan_registry;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cni::skel::{Plugin, Request};
use crate::cni::{CniError, CniOutput, code};
use crate::ipam::StoreLocation;
use crate::ipam::store::Owner;
use crate::sys::log::{Level, log_at};
use crate::sys::netlink::{Kernel, LinkOps};
use crate::sys::netns::NetNs;
use config::PluginConfig;
use vlan_registry::VlanUser;

/// The main plugin, `"type": "mactrunk"`.
pub struct Macvlan;

impl Plugin for Macvlan {
    fn add(&self, req: &Request) -> Result<CniOutput, CniError> {
        let started = Instant::now();
        let conf = PluginConfig::parse(&req.conf, &req.args.args)?;
        init_log(&conf);
        let result = add::add(req, &conf);
        log_outcome(req, started, &result.as_ref().map(addresses));
        result
    }

    fn del(&self, req: &Request) -> Result<(), CniError> {
        let started = Instant::now();
        init_log_raw(&req.conf);
        let result = del::del(req);
        log_outcome(req, started, &result.as_ref().map(|_| String::new()));
        result
    }

    fn check(&self, req: &Request) -> Result<(), CniError> {
        let started = Instant::now();
        let conf = PluginConfig::parse(&req.conf, &req.args.args)?;
        init_log(&conf);
        let result = check::check(req, &conf);
        log_outcome(req, started, &result.as_ref().map(|_| String::new()));
        result
    }

    fn gc(&self, req: &Request) -> Result<(), CniError> {
        init_log_raw(&req.conf);
        status::gc(req)
    }

    fn status(&self, req: &Request) -> Result<(), CniError> {
        let conf = PluginConfig::parse(&req.conf, &req.args.args)?;
        init_log(&conf);
        status::status(req, &conf)
    }
}

fn obj(conf: &Value) -> Result<&serde_json::Map<String, Value>, CniError> {
    conf.as_object()
        .ok_or_else(|| CniError::new(code::DECODE, "network config is not a JSON object"))
}

fn init_log(conf: &PluginConfig) {
    crate::sys::log::init(
        conf.log_level.as_deref(),
        conf.log_file.as_deref(),
        std::env::var("MACTRUNK_LOG").ok().as_deref(),
    );
}

/// DEL and GC must not fail on config they do not need, so logging settings
/// are read leniently there.
fn init_log_raw(conf: &Value) {
    let s = |k: &str| conf.get(k).and_then(Value::as_str);
    crate::sys::log::init(
        s("logLevel"),
        s("logFile"),
        std::env::var("MACTRUNK_LOG").ok().as_deref(),
    );
}

fn log_outcome(req: &Request, started: Instant, outcome: &Result<String, &CniError>) {
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let a = &req.args;
    match outcome {
        Ok(ips) => log_at!(
            Level::Info,
            "{} network={} container={} netns={} ifname={} ips=[{ips}] {ms:.2}ms ok",
            req.command.as_str(),
            req.name,
            a.container_id,
            a.netns,
            a.ifname
        ),
        Err(e) => log_at!(
            Level::Error,
            "{} network={} container={} netns={} ifname={} {ms:.2}ms failed: {e}",
            req.command.as_str(),
            req.name,
            a.container_id,
            a.netns,
            a.ifname
        ),
    }
}

fn addresses(r: &CniOutput) -> String {
    r.ips
        .iter()
        .map(|ip| ip.address.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

fn kernel() -> Result<Kernel, CniError> {
    Kernel::new().map_err(CniError::from)
}

fn owner(req: &Request) -> Owner {
    Owner::of(&req.args)
}

/// Refuse `CNI_NETNS` when it is the plugin's own namespace (unless
/// `CNI_NETNS_OVERRIDE` is set): a stale `/proc/<pid>/ns/net` that now points
/// at the host must never let us create or delete host interfaces.
fn refuse_own_netns(req: &Request, ns: &NetNs, doing: &str) -> Result<(), CniError> {
    if !req.args.netns_override && ns.same_as(&NetNs::current()?) {
        return Err(CniError::new(
            code::INVALID_NETNS,
            format!(
                "CNI_NETNS: {} is the plugin's own network namespace; refusing to {doing}",
                req.args.netns
            ),
        ));
    }
    Ok(())
}

/// Open `CNI_NETNS` for ADD and CHECK (see [`refuse_own_netns`]).
fn open_container_netns(req: &Request) -> Result<NetNs, CniError> {
    let ns = NetNs::open(&req.args.netns)?;
    refuse_own_netns(req, &ns, "change it")?;
    Ok(ns)
}

/// Where the VLAN registry lives: the dataDir of the IPAM store
/// (`ipam.dataDir`, default /var/lib/cni/networks), and its lock timeout.
fn vlan_registry_location(conf: &Value) -> Result<(PathBuf, Duration), CniError> {
    let loc = StoreLocation::from_netconf(conf)?;
    let data_dir = loc
        .dir
        .parent()
        .map(|p| p.to_path_buf())
        .ok_or_else(|| CniError::internal("the IPAM store directory has no parent"))?;
    Ok((data_dir, loc.lock_timeout))
}

fn vlan_user(req: &Request) -> VlanUser {
    VlanUser::new(&req.name, &owner(req))
}

/// DEL and ADD's rollback: this attachment no longer uses its parent: it
/// leaves the parent's ipvlan port record (see [`ipvlan_port`]), and the
/// VLAN parents mactrunk created that nobody else uses are deleted. Needs
/// nothing of the config beyond the dataDir; `host` is used only when a
/// VLAN record lists this attachment.
fn vlan_release(req: &Request, host: &dyn LinkOps) -> Result<(), CniError> {
    let (data_dir, timeout) = match vlan_registry_location(&req.conf) {
        Ok(l) => l,
        Err(e) => {
            log_at!(Level::Debug, "no VLAN registry to look at: {e}");
            return Ok(());
        }
    };
    let port = ipvlan_port::release(&data_dir, timeout, &vlan_user(req));
    if !vlan_registry::dir_in(&data_dir).is_dir() {
        return port;
    }
    port.and(vlan_registry::release(
        host,
        &data_dir,
        timeout,
        &vlan_user(req),
    ))
}

/// DEL and ADD's rollback: this attachment no longer uses a host shim: its
/// routes go, and the shim with its last user. Like [`vlan_release`], needs
/// only the dataDir, and `host` only when a record lists this attachment.
fn shim_release(req: &Request, host: &dyn LinkOps) -> Result<(), CniError> {
    let (data_dir, timeout) = match vlan_registry_location(&req.conf) {
        Ok(l) => l,
        Err(e) => {
            log_at!(Level::Debug, "no shim registry to look at: {e}");
            return Ok(());
        }
    };
    if !shim_registry::dir_in(&data_dir).is_dir() {
        return Ok(());
    }
    shim_registry::release(host, &data_dir, timeout, &vlan_user(req))
}
