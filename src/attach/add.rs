//! ADD: everything that can fail without a side effect first (config,
//! netns, master, MTU, a free CNI_IFNAME), then addresses, the VLAN parent,
//! the link and its configuration. One undo guard takes back whatever was
//! done, in reverse, if a later step fails: no link and no address is left.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnetwork::IpNetwork;

use super::config::{DadPolicy, PluginConfig};
use super::parent::{self, Parent};
use super::tag::{link_tag, temp_link_name};
use super::undo::Undo;
use super::vlan_registry::{self, crash_point};
use super::{kernel, open_container_netns, owner, vlan_registry_location, vlan_release, vlan_user};
use crate::cni::env::Command;
use crate::cni::netconf::IpamKind;
use crate::cni::skel::Request;
use crate::cni::{CniError, CniOutput, Interface, code};
use crate::ipam::{self, IpamConfig, StoreLocation, delegate};
use crate::sys::log::{Level, Phases, log_at};
use crate::sys::netlink::{
    AddrFlags, LinkError, LinkInfo, LinkOps, MacvlanSpec, Sysctl, format_mac,
};
use crate::sys::netns::NetNs;
use crate::sys::sysctl;

/// How long ADD waits for IPv6 DAD with `ipv6Dad: "wait"`.
const DAD_TIMEOUT: Duration = Duration::from_secs(5);

/// Attempts at a free temporary name (a clash needs a host link that happens
/// to carry one of our random names).
const TEMP_NAME_ATTEMPTS: usize = 4;

pub(super) fn add(req: &Request, conf: &PluginConfig) -> Result<CniOutput, CniError> {
    let mut phases = Phases::start();
    let netns = open_container_netns(req)?;
    let kernel = kernel()?;
    let host = kernel.host();
    let container = kernel.netns(&netns);
    phases.mark("netns");
    let out = add_with(req, conf, &netns, &host, &container, &mut phases);
    drop(kernel);
    phases.mark("close");
    phases.log("ADD");
    out
}

/// ADD against any kernel: `host` is the plugin's own namespace, `container`
/// the namespace `netns` names.
pub(super) fn add_with(
    req: &Request,
    conf: &PluginConfig,
    netns: &NetNs,
    host: &dyn LinkOps,
    container: &dyn LinkOps,
    phases: &mut Phases,
) -> Result<CniOutput, CniError> {
    let ifname = req.args.ifname.as_str();
    // The namespace the master lives in.
    let master_nl = if conf.link_in_container {
        container
    } else {
        host
    };
    let parent = parent::resolve(master_nl, conf)?;
    if let Some(e) = parent.conflict() {
        return Err(e);
    }
    let (parent_mtu, parent_name) = parent.mtu();
    if let Some(mtu) = conf.mtu
        && mtu > parent_mtu
    {
        return Err(CniError::config(
            "mtu",
            format!("{mtu} is larger than the MTU {parent_mtu} of {parent_name}"),
        ));
    }
    let vlan_loc = match &parent {
        Parent::Vlan { .. } => Some(vlan_registry_location(&req.conf)?),
        Parent::Plain(_) => None,
    };
    if container.link_by_name(ifname)?.is_some() {
        return Err(ifname_taken(req));
    }
    phases.mark("preflight");

    // The addresses (store fsyncs, or a delegate's exec) are allocated on a
    // thread while this one sets up the VLAN parent and creates the link:
    // neither needs the other until the link is configured.
    let mut undo = Undo::new();
    let (link_side, ipam_side) = std::thread::scope(|s| {
        let ipam = std::thread::Builder::new()
            .name("mactrunk-ipam".into())
            .spawn_scoped(s, || ipam_add(req, conf, netns));
        let link = make_link(
            req, conf, netns, host, container, parent, vlan_loc, &mut undo,
        );
        let ipam = match ipam {
            Ok(h) => h
                .join()
                .unwrap_or_else(|_| Err(CniError::internal("the IPAM thread panicked"))),
            // No thread to be had: allocate here, after the link.
            Err(_) => ipam_add(req, conf, netns),
        };
        (link, ipam)
    });
    let (ipam_out, ipam_undo) = ipam_side?;
    undo.push("releasing the addresses", move || {
        ipam_rollback(req, ipam_undo)
    });
    let created = link_side?;
    phases.mark("ipam+link");
    crash_point("after-link");
    let attached = configure(req, conf, container, &created, &ipam_out)?;
    phases.mark("configure");
    undo.commit();
    Ok(build_result(req, conf, ipam_out, attached))
}

/// The VLAN parent (when the config asks for one) and the tagged macvlan in
/// the container; each registers its undo step. Returns the new link.
#[allow(clippy::too_many_arguments)]
fn make_link<'a>(
    req: &'a Request,
    conf: &PluginConfig,
    netns: &NetNs,
    host: &'a dyn LinkOps,
    container: &'a dyn LinkOps,
    parent: Parent,
    vlan_loc: Option<(PathBuf, Duration)>,
    undo: &mut Undo<'a>,
) -> Result<LinkInfo, CniError> {
    let master_nl = if conf.link_in_container {
        container
    } else {
        host
    };
    let master = match (parent, vlan_loc) {
        (Parent::Vlan { want, .. }, Some((data_dir, timeout))) => {
            let ensured = vlan_registry::ensure(host, &data_dir, timeout, &want, &vlan_user(req))?;
            if ensured.owned {
                undo.push("releasing the VLAN parent", move || vlan_release(req, host));
            }
            ensured.link
        }
        (Parent::Plain(l), _) => l,
        (Parent::Vlan { .. }, None) => {
            return Err(CniError::internal("VLAN parent without a registry"));
        }
    };
    let ifname = req.args.ifname.as_str();
    let spec = MacvlanSpec {
        name: ifname,
        parent: master.index,
        mode: conf.mode,
        mtu: conf.mtu,
        mac: conf.mac,
        bcqueuelen: conf.bcqueuelen,
        netns: (!conf.link_in_container).then_some(netns),
    };
    let tag = link_tag(&req.name, &req.args.container_id);
    let created = create_tagged(master_nl, container, &spec, &tag).map_err(|e| match e {
        LinkError::Exists(_) => ifname_taken(req),
        // Names the config key already.
        e @ LinkError::Invalid(_) => CniError::from(e),
        other => CniError::from(other).context(format!("creating macvlan on {:?}", master.name)),
    })?;
    let index = created.index;
    undo.push(format!("deleting {ifname}"), move || {
        match container.delete(index) {
            Ok(()) | Err(LinkError::NotFound(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    });
    Ok(created)
}

/// The spec says ADD must fail when CNI_IFNAME exists in the container.
fn ifname_taken(req: &Request) -> CniError {
    CniError::new(
        code::INVALID_ENV,
        format!(
            "CNI_IFNAME: interface {:?} already exists in {}",
            req.args.ifname, req.args.netns
        ),
    )
}

/// How to give back what [`ipam_add`] allocated if ADD fails later.
enum IpamUndo {
    Nothing,
    /// The in-process store: exactly the addresses this ADD reserved.
    Fresh(StoreLocation, Vec<IpAddr>),
    /// A delegated plugin: its DEL.
    Delegate(String),
}

/// Addresses from whichever IPAM the config names, for the container netns
/// `netns`.
fn ipam_add(
    req: &Request,
    conf: &PluginConfig,
    netns: &NetNs,
) -> Result<(CniOutput, IpamUndo), CniError> {
    match &conf.ipam {
        IpamKind::None => Ok((CniOutput::default(), IpamUndo::Nothing)),
        IpamKind::InProcess => {
            let ipam_conf = IpamConfig::from_netconf(&req.conf, &req.args.args)?;
            let id = netns.id();
            let added = ipam::add_in(&ipam_conf, &owner(req), id.as_deref())?;
            Ok((
                added.out,
                IpamUndo::Fresh(ipam_conf.location(), added.fresh),
            ))
        }
        IpamKind::Delegate(t) => {
            let out =
                delegate::exec(t, &req.args.path, Command::Add, &req.raw)?.ok_or_else(|| {
                    CniError::new(
                        code::DELEGATE,
                        format!("ipam plugin {t:?} ADD printed no result"),
                    )
                })?;
            let parsed = CniOutput::from_json(&out, conf.cni_version)
                .and_then(|out| out.check_expressible(conf.cni_version).map(|()| out));
            match parsed {
                Ok(out) => Ok((out, IpamUndo::Delegate(t.clone()))),
                Err(e) => {
                    // The delegate allocated: give the addresses back.
                    if let Err(de) = ipam_rollback(req, IpamUndo::Delegate(t.clone())) {
                        log_at!(Level::Warn, "rollback: releasing addresses failed: {de}");
                    }
                    Err(e.context(format!("ipam plugin {t:?} result")))
                }
            }
        }
    }
}

/// Undo [`ipam_add`] after a later step of ADD failed.
fn ipam_rollback(req: &Request, undo: IpamUndo) -> Result<(), CniError> {
    match undo {
        IpamUndo::Nothing => Ok(()),
        IpamUndo::Fresh(loc, fresh) => ipam::release_fresh(&loc, &owner(req), &fresh),
        IpamUndo::Delegate(t) => {
            delegate::exec(&t, &req.args.path, Command::Del, &req.raw).map(|_| ())
        }
    }
}

/// Create the container's macvlan under `spec.name`, tag it, and return it
/// as the container sees it (ifindex, MAC, MTU).
///
/// The link is created directly inside the container netns (IFLA_NET_NS_FD):
/// that is 10x cheaper than creating it on the host and moving it. But
/// kernels before ~6.14 check IFLA_IFNAME in the *sender's* netns as well,
/// so on Debian 12, Ubuntu and RHEL a host link called like CNI_IFNAME (the
/// host's own eth0) makes the create fail with EEXIST though the container
/// has no such link. Then, and only then, the link is created under a random
/// temporary name and renamed inside the container, where only the
/// container's names count (~0.2 ms more). The tag goes with the rename (or
/// right after the direct create), before anything else touches the link.
pub(super) fn create_tagged(
    master_nl: &dyn LinkOps,
    container: &dyn LinkOps,
    spec: &MacvlanSpec<'_>,
    tag: &str,
) -> Result<LinkInfo, LinkError> {
    let name = spec.name;
    match master_nl.create_macvlan(spec) {
        Ok(()) => {
            let mut link = created_link(container, name, spec)?;
            if let Err(e) = container.rename(link.index, None, Some(tag)) {
                discard(container, link.index);
                return Err(e);
            }
            link.alias = Some(tag.to_string());
            return Ok(link);
        }
        // Created in the master's own netns (linkInContainer): a real clash.
        Err(e @ LinkError::Exists(_)) if spec.netns.is_none() => return Err(e),
        // The container has the name: a real clash.
        Err(e @ LinkError::Exists(_)) if container.link_by_name(name)?.is_some() => {
            return Err(e);
        }
        Err(LinkError::Exists(_)) => log_at!(
            Level::Debug,
            "{name} exists in the sender's netns (kernel before 6.14): creating under a temporary name"
        ),
        Err(e) => return Err(e),
    }
    let mut last = None;
    for _ in 0..TEMP_NAME_ATTEMPTS {
        let temp = temp_link_name();
        let temp_spec = MacvlanSpec {
            name: &temp,
            ..spec.clone()
        };
        match master_nl.create_macvlan(&temp_spec) {
            Ok(()) => {
                let mut link = created_link(container, &temp, spec)?;
                return match container.rename(link.index, Some(name), Some(tag)) {
                    Ok(()) => {
                        link.name = name.to_string();
                        link.alias = Some(tag.to_string());
                        Ok(link)
                    }
                    Err(e) => {
                        discard(container, link.index);
                        Err(e)
                    }
                };
            }
            Err(e @ LinkError::Exists(_)) => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| LinkError::Exists(name.to_string())))
}

/// The link we just created as `name` in the container, once it is clear
/// that the kernel did what `spec` asked.
fn created_link(
    container: &dyn LinkOps,
    name: &str,
    spec: &MacvlanSpec<'_>,
) -> Result<LinkInfo, LinkError> {
    let Some(link) = container.link_by_name(name)? else {
        return Err(LinkError::NotFound(format!(
            "macvlan {name} right after its creation"
        )));
    };
    if let Some(why) = ignored_by_kernel(spec, &link) {
        discard(container, link.index);
        return Err(LinkError::Invalid(why));
    }
    Ok(link)
}

/// An attribute of `spec` that the kernel silently dropped (older kernels
/// skip attributes they do not know), as a message naming the config key.
fn ignored_by_kernel(spec: &MacvlanSpec<'_>, created: &LinkInfo) -> Option<String> {
    match spec.bcqueuelen {
        Some(want) if created.macvlan_bcqueuelen != Some(want) => Some(format!(
            "bcqueuelen: the running kernel ({}) ignored it: the macvlan broadcast queue length needs Linux 5.11 or later",
            sysctl::kernel_release()
        )),
        _ => None,
    }
}

/// Best-effort removal of a link this ADD created and could not finish.
fn discard(nl: &dyn LinkOps, index: u32) {
    if let Err(e) = nl.delete(index)
        && !e.is_not_found()
    {
        log_at!(
            Level::Warn,
            "rollback: deleting link index {index} failed: {e}"
        );
    }
}

/// What the container side of ADD produced.
pub(super) struct Attached {
    mac: String,
    mtu: u32,
}

/// Sysctls, addresses, up, routes, DAD: the configuration of the new link
/// in `container`.
fn configure(
    req: &Request,
    conf: &PluginConfig,
    container: &dyn LinkOps,
    link: &LinkInfo,
    ipam_out: &CniOutput,
) -> Result<Attached, CniError> {
    let ifname = req.args.ifname.as_str();
    let index = link.index;
    let has_v4 = ipam_out.ips.iter().any(|ip| ip.address.is_ipv4());
    let has_v6 = ipam_out.ips.iter().any(|ip| ip.address.is_ipv6());
    // Best effort: a kernel without IPv6 has no such files.
    for failed in container.write_sysctls(&link_sysctls(ifname, conf, has_v4, has_v6))? {
        log_at!(Level::Warn, "sysctl {failed}");
    }
    let flags = AddrFlags {
        nodad: conf.ipv6_dad == DadPolicy::Off,
        optimistic: conf.ipv6_dad == DadPolicy::Optimistic,
    };
    // Addresses before the link goes up, so that the kernel announces them
    // (arp_notify); routes after, since a gateway route needs it up.
    for ip in &ipam_out.ips {
        container
            .add_address(index, ip.address, flags)
            .map_err(|e| CniError::from(e).context(format!("adding {} to {ifname}", ip.address)))?;
    }
    container.set_up(index)?;
    for route in &ipam_out.routes {
        let gw = route.gw.or_else(|| family_gateway(ipam_out, route.dst));
        match container.add_route(index, route, gw) {
            // A second attachment of the same network (eth0, net1) brings the
            // same default route: the first one wins, as with the reference
            // plugins.
            Err(LinkError::Exists(what)) => log_at!(Level::Info, "keeping the existing {what}"),
            other => other.map_err(|e| {
                CniError::from(e).context(format!("adding route to {} on {ifname}", route.dst))
            })?,
        }
    }
    if has_v6 && conf.ipv6_dad == DadPolicy::Wait {
        container.wait_dad(index, DAD_TIMEOUT)?;
    }
    // Read back right after creation: neither changes when the link goes up.
    Ok(Attached {
        mac: format_mac(&link.mac.unwrap_or_default()),
        mtu: link.mtu,
    })
}

/// The gateway of the first address in the route's family, as the reference
/// `ConfigureIface` does for routes without `gw`.
fn family_gateway(out: &CniOutput, dst: IpNetwork) -> Option<IpAddr> {
    out.ips
        .iter()
        .filter(|ip| ip.address.is_ipv4() == dst.is_ipv4())
        .find_map(|ip| ip.gateway)
}

/// The sysctls of the new link, written before it goes up.
fn link_sysctls(ifname: &str, conf: &PluginConfig, has_v4: bool, has_v6: bool) -> Vec<Sysctl> {
    let v4 = |key| sysctl::net_conf_path(false, ifname, key);
    let v6 = |key| sysctl::net_conf_path(true, ifname, key);
    let notify = if conf.announce { "1" } else { "0" };
    // SLAAC and router advertisements would add addresses and routes nobody
    // asked for (PLUGINS#160); only IPAM's addresses apply.
    let mut settings = vec![(v6("accept_ra"), "0"), (v6("autoconf"), "0")];
    if has_v4 {
        // The kernel sends a gratuitous ARP for every address when the link
        // comes up. Sending our own would need an AF_PACKET socket, whose
        // close waits ~10-20 ms for an RCU grace period.
        settings.push((v4("arp_notify"), notify));
    }
    if has_v6 {
        settings.push((sysctl::net_conf_path(true, "lo", "disable_ipv6"), "0"));
        settings.push((v6("disable_ipv6"), "0"));
        // Unsolicited NA once an address has passed DAD.
        settings.push((v6("ndisc_notify"), notify));
        settings.push((v6("keep_addr_on_down"), "1"));
        if conf.ipv6_dad == DadPolicy::Optimistic {
            // Without these the kernel silently drops IFA_F_OPTIMISTIC.
            settings.push((v6("optimistic_dad"), "1"));
            settings.push((v6("use_optimistic"), "1"));
        }
    }
    settings
}

fn build_result(
    req: &Request,
    conf: &PluginConfig,
    ipam_out: CniOutput,
    attached: Attached,
) -> CniOutput {
    let mut out = conf.prev_result.clone().unwrap_or_default();
    let index = out.interfaces.len();
    out.interfaces.push(Interface {
        name: req.args.ifname.clone(),
        mac: Some(attached.mac),
        mtu: Some(attached.mtu),
        sandbox: Some(req.args.netns.clone()),
        ..Default::default()
    });
    for mut ip in ipam_out.ips {
        ip.interface = Some(index);
        out.ips.push(ip);
    }
    out.routes.extend(ipam_out.routes);
    // Config DNS wins per field; the IPAM's DNS is kept, not dropped (PLUGINS#431).
    out.dns = conf
        .dns
        .clone()
        .merged_over(&ipam_out.dns)
        .merged_over(&out.dns);
    out
}

#[cfg(test)]
mod tests;
