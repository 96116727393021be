//! DEL: best effort and idempotent. The container link goes if this
//! attachment created it; the VLAN parent's count and the addresses are
//! released even when the link could not be deleted, so a DEL never strands
//! them (the error is still reported). A missing netns, a path that is no
//! longer a netns, a missing link or master are not errors.

use super::tag::{is_blank_leftover, link_tag, not_ours};
use super::{kernel, obj, owner, refuse_own_netns, shim_release, vlan_release};
use crate::cni::CniError;
use crate::cni::env::Command;
use crate::cni::netconf::{IpamKind, parse_ipam_kind};
use crate::cni::skel::Request;
use crate::ipam::{self, StoreLocation, delegate};
use crate::sys::log::{Level, log_at};
use crate::sys::netlink::{LinkError, LinkOps};
use crate::sys::netns::{NetNs, NetnsError};

pub(super) fn del(req: &Request) -> Result<(), CniError> {
    let kernel = kernel()?;
    let host = kernel.host();
    let netns = container_netns(req)?;
    let link_result = match &netns {
        Some(ns) => {
            let container = kernel.netns(ns);
            let tag = link_tag(&req.name, &req.args.container_id);
            delete_own_link(&container, &req.args.ifname, &tag)
        }
        None => Ok(()),
    };
    // Host-side extras of the attachment (the host shim's routes, and the
    // shim with its last user) are released after its link and before its
    // parent: the shim sits on the parent, which may be a VLAN link that
    // goes with its own last user.
    let shim_result = shim_release(req, &host);
    let vlan_result = vlan_release(req, &host);
    let ipam_result = ipam_del(req);
    link_result
        .and(shim_result)
        .and(vlan_result)
        .and(ipam_result)
}

/// The container's netns, None when there is none left to look in.
fn container_netns(req: &Request) -> Result<Option<NetNs>, CniError> {
    if req.args.netns.is_empty() {
        return Ok(None);
    }
    let ns = match NetNs::open(&req.args.netns) {
        Ok(ns) => ns,
        Err(NetnsError::NotExist(_)) | Err(NetnsError::NotNetns { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    refuse_own_netns(req, &ns, &format!("delete {} there", req.args.ifname))?;
    Ok(Some(ns))
}

/// Delete `name` in the namespace of `nl` if this attachment created it: a
/// macvlan carrying the attachment's tag. A link of that name made by
/// anyone else (another network's ADD into the same netns, another plugin,
/// the runtime) is not ours to delete. One exception: an ADD killed between
/// creating the link and tagging it (a few netlink round trips) leaves an
/// untagged macvlan that is still down and has no address; nobody can be
/// using such a link, and only DEL can clear the name for the retried ADD.
pub(super) fn delete_own_link(nl: &dyn LinkOps, name: &str, tag: &str) -> Result<(), CniError> {
    let Some(link) = nl.link_by_name(name)? else {
        return Ok(());
    };
    if let Some(why) = not_ours(&link, tag) {
        let leftover = link.alias.is_none()
            && !link.up
            && is_blank_leftover(&link, !nl.addresses(link.index)?.is_empty());
        if !leftover {
            log_at!(Level::Info, "not deleting {name}: {why}");
            return Ok(());
        }
        log_at!(
            Level::Info,
            "deleting {name}: an untagged, down macvlan without addresses (left by a killed ADD)"
        );
    }
    match nl.delete(link.index) {
        Ok(()) | Err(LinkError::NotFound(_)) => Ok(()),
        Err(e) => Err(CniError::from(e).context(format!("deleting {name}"))),
    }
}

/// Release addresses; needs as little of the config as possible.
fn ipam_del(req: &Request) -> Result<(), CniError> {
    match parse_ipam_kind(obj(&req.conf)?)? {
        IpamKind::None => Ok(()),
        IpamKind::InProcess => ipam::del_in(
            &StoreLocation::from_netconf(&req.conf)?,
            &owner(req),
            ipam::cluster_conf_of(&req.conf).as_ref(),
        ),
        IpamKind::Delegate(t) => {
            delegate::exec(&t, &req.args.path, Command::Del, &req.raw).map(|_| ())
        }
    }
}
