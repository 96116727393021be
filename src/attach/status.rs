//! GC and STATUS of the plugin: the host shims and VLAN parents it created,
//! then the IPAM.

use super::config::PluginConfig;
use super::ipvlan_port;
use super::parent::{self, Parent};
use super::{kernel, obj, shim_registry, vlan, vlan_registry, vlan_registry_location};
use crate::cni::env::Command;
use crate::cni::gc::valid_attachments;
use crate::cni::netconf::{IpamKind, parse_ipam_kind};
use crate::cni::skel::Request;
use crate::cni::{CniError, code};
use crate::ipam::store::Owner;
use crate::ipam::{self, IpamConfig, StoreLocation, delegate};
use crate::sys::log::{Level, log_at};
use crate::sys::netlink::LinkOps;

/// GC: users of VLAN parents first, then addresses. Without a list of valid
/// attachments nothing is released (cnitool's `gc` sends none).
pub(super) fn gc(req: &Request) -> Result<(), CniError> {
    let valid: Option<Vec<Owner>> =
        valid_attachments(&req.conf)?.map(|list| list.iter().map(Owner::from).collect());
    // Host-side state of stale attachments: the host shims' routes and the
    // shims nobody uses, then the VLAN parents (a shim sits on one).
    let (shim_result, vlan_result) = match &valid {
        Some(v) => {
            let kernel = kernel()?;
            let host = kernel.host();
            (shim_gc(req, &host, v), vlan_gc(req, &host, v))
        }
        None => (Ok(()), Ok(())),
    };
    let ipam_result = match parse_ipam_kind(obj(&req.conf)?)? {
        IpamKind::None => Ok(()),
        IpamKind::InProcess => {
            let loc = StoreLocation::from_netconf(&req.conf)?;
            let report = ipam::gc_in(
                &loc,
                valid.as_deref(),
                ipam::cluster_conf_of(&req.conf).as_ref(),
            )?;
            log_at!(Level::Info, "GC network={} {report:?}", req.name);
            Ok(())
        }
        IpamKind::Delegate(t) => {
            delegate::exec(&t, &req.args.path, Command::Gc, &req.raw).map(|_| ())
        }
    };
    shim_result.and(vlan_result).and(ipam_result)
}

fn shim_gc(req: &Request, host: &dyn LinkOps, valid: &[Owner]) -> Result<(), CniError> {
    let (data_dir, timeout) = match vlan_registry_location(&req.conf) {
        Ok(l) => l,
        Err(e) => {
            log_at!(Level::Debug, "no shim registry to look at: {e}");
            return Ok(());
        }
    };
    let deleted = shim_registry::gc(host, &data_dir, timeout, &req.name, valid)?;
    if deleted > 0 {
        log_at!(
            Level::Info,
            "GC network={} deleted {deleted} unused host shim(s)",
            req.name
        );
    }
    Ok(())
}

fn vlan_gc(req: &Request, host: &dyn LinkOps, valid: &[Owner]) -> Result<(), CniError> {
    // Lenient like DEL: a config whose ipam.dataDir is not ours to read (a
    // delegated IPAM) has no VLAN registry, and must not make GC fail.
    let (data_dir, timeout) = match vlan_registry_location(&req.conf) {
        Ok(l) => l,
        Err(e) => {
            log_at!(Level::Debug, "no VLAN registry to look at: {e}");
            return Ok(());
        }
    };
    // The ipvlan port records of the parents (see `ipvlan_port`) first:
    // they need no kernel, and must not wait for a VLAN parent's failure.
    let ports = ipvlan_port::gc(&data_dir, timeout, &req.name, valid);
    if let Ok(n @ 1..) = ports {
        log_at!(
            Level::Info,
            "GC network={} removed {n} ipvlan port record(s) nobody uses",
            req.name
        );
    }
    let deleted = vlan_registry::gc(host, &data_dir, timeout, &req.name, valid)?;
    if deleted > 0 {
        log_at!(
            Level::Info,
            "GC network={} deleted {deleted} unused VLAN parent(s)",
            req.name
        );
    }
    ports.map(|_| ())
}

/// STATUS: 50 when the master is missing or a pool is exhausted, 51 when a
/// VLAN parent mactrunk created is down.
pub(super) fn status(req: &Request, conf: &PluginConfig) -> Result<(), CniError> {
    if !conf.link_in_container {
        let kernel = kernel()?;
        let parent = parent::resolve(&kernel.host(), conf)
            .map_err(|e| CniError::new(code::NOT_AVAILABLE, e.msg))?;
        vlan_status(req, &parent)?;
    }
    match &conf.ipam {
        IpamKind::None => Ok(()),
        IpamKind::InProcess => ipam::status(&IpamConfig::from_netconf(&req.conf, &req.args.args)?),
        IpamKind::Delegate(t) => {
            delegate::exec(t, &req.args.path, Command::Status, &req.raw).map(|_| ())
        }
    }
}

/// STATUS for a VLAN parent: a conflicting link is 50; a VLAN link
/// mactrunk created that is down is 51. A missing one is fine (ADD creates it).
fn vlan_status(req: &Request, parent: &Parent) -> Result<(), CniError> {
    let Parent::Vlan {
        want,
        lower,
        link: Some(link),
    } = parent
    else {
        return Ok(());
    };
    if let Some(why) = vlan::mismatch(&want.parent, want.protocol, lower.index, link) {
        return Err(CniError::new(code::NOT_AVAILABLE, why));
    }
    if !link.up {
        let owned = vlan_registry_location(&req.conf)
            .ok()
            .and_then(|(d, _)| vlan_registry::peek(&d, &link.name))
            .is_some_and(|r| r.ifindex.is_none_or(|i| i == link.index));
        if owned {
            return Err(CniError::new(
                code::LIMITED_CONNECTIVITY,
                format!("VLAN parent {:?} (created by mactrunk) is down", link.name),
            ));
        }
    }
    Ok(())
}
