//! ADD: everything that can fail without a side effect first (config,
//! netns, master, MTU, a free CNI_IFNAME), then addresses, the VLAN parent,
//! the link and its configuration. One undo guard takes back whatever was
//! done, in reverse, if a later step fails: no link and no address is left.

use std::cell::RefCell;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use ipnetwork::IpNetwork;

use super::config::{DadPolicy, HostShimConfig, PluginConfig, ProbeConfig};
use super::mac::mac_from_ipv4;
use super::parent::{self, Parent};
use super::shim_registry::{self, ShimRoute, ShimUser};
use super::tag::{link_tag, temp_link_names};
use super::undo::Undo;
use super::vlan_registry::{self, crash_point};
use super::{
    kernel, open_container_netns, owner, shim, shim_release, vlan_registry_location, vlan_release,
    vlan_user,
};
use crate::cni::env::Command;
use crate::cni::netconf::IpamKind;
use crate::cni::skel::Request;
use crate::cni::{CniError, CniOutput, Interface, Route, code};
use crate::ipam::{self, IpamConfig, delegate};
use crate::sys::log::{Level, Phases, log_at};
use crate::sys::netlink::{
    AddrFlags, IpvlanFlags, IpvlanMode, LinkError, LinkInfo, LinkKind, LinkOps, LinkSpec, Sysctl,
    format_mac,
};
use crate::sys::netns::NetNs;
use crate::sys::sysctl;

/// How long ADD waits for IPv6 DAD with `ipv6Dad: "wait"`.
const DAD_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) fn add(req: &Request, conf: &PluginConfig) -> Result<CniOutput, CniError> {
    let mut phases = Phases::start();
    let netns = open_container_netns(req)?;
    let kernel = kernel()?;
    let host = kernel.host();
    let container = kernel.netns(&netns);
    phases.mark("netns");
    let out = add_with(req, conf, &netns, &host, &container, &mut phases);
    // The sockets close here: with a probe, the ARP socket's close waits
    // for an RCU grace period, which "close" shows.
    drop(container);
    drop(host);
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
    // For the host shim's choice of the host's address: a VLAN parent's lower link.
    let lower = match &parent {
        Parent::Vlan { lower, .. } => Some(lower.clone()),
        Parent::Plain(_) => None,
    };
    phases.mark("preflight");

    // The addresses (store fsyncs, or a delegate's exec) are allocated on a
    // thread while this one sets up the VLAN parent and creates the link:
    // neither needs the other until the link is configured. What the IPAM
    // holds for this ADD can change later (a probe trades an address found
    // in use for the next one), hence a cell the rollback reads.
    let held = RefCell::new(IpamHeld::Nothing);
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
    let (ipam_out, ipam_held) = ipam_side?;
    *held.borrow_mut() = ipam_held;
    undo.push("releasing the addresses", || {
        ipam_rollback(req, held.take())
    });
    let (created, master) = link_side?;
    phases.mark("ipam+link");
    crash_point("after-link");
    let (attached, ipam_out) = configure(
        req, conf, netns, master_nl, container, &created, ipam_out, &held,
    )?;
    phases.mark("configure");
    // Host-side extras of this attachment push their undo steps here, after
    // the container side is complete, so that a failure takes back both.
    if let Some(shim_conf) = &conf.host_shim {
        let parents = ShimParents {
            master: &master,
            lower: lower.as_ref(),
        };
        let shim_link = ShimLink {
            index: created.index,
            mac: &attached.mac,
        };
        attach_host_shim(
            req, shim_conf, host, container, parents, shim_link, &ipam_out, &mut undo,
        )?;
        phases.mark("shim");
    }
    undo.commit();
    Ok(build_result(req, conf, ipam_out, attached))
}

/// The VLAN parent (when the config asks for one) and the tagged macvlan in
/// the container; each registers its undo step. Returns the new link and
/// the link it sits on.
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
) -> Result<(LinkInfo, LinkInfo), CniError> {
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
    if let LinkKind::Ipvlan { mode, flags } = conf.link
        && !conf.link_in_container
    {
        claim_ipvlan_port(req, &master, mode, flags, undo)?;
    }
    let ifname = req.args.ifname.as_str();
    let spec = LinkSpec {
        name: ifname,
        parent: master.index,
        kind: conf.link,
        mtu: conf.mtu,
        mac: conf.mac,
        netns: (!conf.link_in_container).then_some(netns),
    };
    let tag = link_tag(&req.name, &req.args.container_id);
    let created = create_tagged(master_nl, container, &spec, &tag).map_err(|e| match e {
        LinkError::Exists(_) => ifname_taken(req),
        // Names the config key already.
        e @ LinkError::Invalid(_) => CniError::from(e),
        e if e.errno() == Some(libc::EBUSY) => parent_busy(conf.link, &master),
        other => CniError::from(other).context(format!(
            "creating {} on {:?}",
            conf.link.name(),
            master.name
        )),
    })?;
    let index = created.index;
    undo.push(format!("deleting {ifname}"), move || {
        match container.delete(index) {
            Ok(()) | Err(LinkError::NotFound(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    });
    Ok((created, master))
}

/// The links the host shim's source addresses are looked for on: the
/// parent the container link sits on, and a VLAN parent's lower link.
#[derive(Clone, Copy)]
struct ShimParents<'p> {
    master: &'p LinkInfo,
    lower: Option<&'p LinkInfo>,
}

/// The container link the shim routes lead to.
#[derive(Clone, Copy)]
struct ShimLink<'p> {
    index: u32,
    mac: &'p str,
}

/// `hostShim`: the host reaches this container through the shim macvlan of
/// its parent (see [`shim`]). For every address the IPAM gave, the host's
/// own address to use as source is chosen ([`shim::choose_source`]); the
/// attachment is recorded with its routes and the shim made sure of
/// ([`shim_registry::ensure`], which pushes nothing: the undo step pushed
/// here releases both); then on the host a permanent neighbour entry
/// (before the route, so that the host never ARPs from the shim) and the
/// route, and in the container a permanent neighbour entry for the host's
/// address (and a route to it when it is not in the container's subnet).
#[allow(clippy::too_many_arguments)]
fn attach_host_shim<'a>(
    req: &'a Request,
    shim_conf: &HostShimConfig,
    host: &'a dyn LinkOps,
    container: &dyn LinkOps,
    parents: ShimParents<'_>,
    link: ShimLink<'_>,
    ipam_out: &CniOutput,
    undo: &mut Undo<'a>,
) -> Result<(), CniError> {
    let ifname = req.args.ifname.as_str();
    let container_mac = crate::attach::config::parse_unicast_mac(link.mac).map_err(|p| {
        CniError::internal(format!("hostShim: the MAC {:?} of {ifname} {p}", link.mac))
    })?;
    // The host's addresses, per link: the parent's first; the lower link's
    // and the default route's link's only when the parent has none in a
    // container address's subnet.
    let mut links: Vec<Vec<(IpNetwork, u32)>> = vec![host.addresses(parents.master.index)?];
    let mut all_loaded = false;
    let mut routes = Vec::new();
    let mut skipped = Vec::new();
    for ip in &ipam_out.ips {
        let configured = shim_conf
            .src
            .iter()
            .any(|s| s.is_ipv4() == ip.address.is_ipv4());
        let mut src = shim::choose_source(ip.address, &shim_conf.src, &links);
        if !configured && !src.is_some_and(|s| s.on_link) && !all_loaded {
            all_loaded = true;
            let mut seen = vec![parents.master.index];
            if let Some(l) = parents.lower {
                seen.push(l.index);
                links.push(host.addresses(l.index)?);
            }
            if let Some(l) = host.default_route_link()?
                && !seen.contains(&l.index)
            {
                links.push(host.addresses(l.index)?);
            }
            src = shim::choose_source(ip.address, &shim_conf.src, &links);
        }
        // The IPAM handed out one of the host's own addresses (a range that
        // includes it): routing it to the container would be meaningless and
        // the address is in use on the network anyway.
        if links
            .iter()
            .flatten()
            .any(|(a, _)| a.ip() == ip.address.ip())
        {
            return Err(CniError::new(
                code::ADDRESS_IN_USE,
                format!(
                    "{} is in use on the network: it is an address of this host (hostShim cannot route it to {ifname}); exclude it from the IPAM's range",
                    ip.address.ip()
                ),
            ));
        }
        match src {
            Some(s) => routes.push((ip.address, s)),
            None => skipped.push(ip.address.ip()),
        }
    }
    if routes.is_empty() {
        return Err(CniError::config(
            "hostShim",
            format!(
                "the host has no address of the family of {} on {:?}{} or the default route's link to reach the container from; name one in hostShim.src",
                skipped
                    .iter()
                    .map(IpAddr::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                parents.master.name,
                parents
                    .lower
                    .map(|l| format!(", {:?}", l.name))
                    .unwrap_or_default()
            ),
        ));
    }
    for ip in &skipped {
        log_at!(
            Level::Warn,
            "hostShim: the host has no address of the family of {ip}: the host does not reach {ifname} in {} at {ip}",
            req.args.netns
        );
    }
    let user = ShimUser {
        key: vlan_user(req),
        mac: link.mac.to_string(),
        routes: routes
            .iter()
            .map(|(ip, s)| ShimRoute {
                ip: ip.ip(),
                src: s.ip,
            })
            .collect(),
    };
    let (data_dir, timeout) = vlan_registry_location(&req.conf)?;
    let shim_link = shim_registry::ensure(host, &data_dir, timeout, parents.master, &user)?;
    undo.push("releasing the host shim", move || shim_release(req, host));
    let shim_name = shim_link.name.clone();
    let shim_mac = shim_link
        .mac
        .ok_or_else(|| CniError::internal(format!("host shim {shim_name} has no MAC")))?;
    for r in &user.routes {
        host.set_neighbour(shim_link.index, r.ip, container_mac)
            .map_err(|e| CniError::from(e).context(format!("hostShim: on {shim_name}")))?;
        add_shim_route(host, &shim_link, r, shim_conf)?;
    }
    crash_point("after-shim-routes");
    // The container: the host's addresses behind the shim's MAC.
    let mut done: Vec<IpAddr> = Vec::new();
    for (_, s) in &routes {
        if done.contains(&s.ip) {
            continue;
        }
        done.push(s.ip);
        if !s.on_link {
            let route = Route {
                dst: IpNetwork::from(s.ip),
                gw: None,
                mtu: None,
                advmss: None,
                priority: None,
                table: None,
                scope: None,
            };
            match container.add_route(link.index, &route, None) {
                Ok(()) | Err(LinkError::Exists(_)) => {}
                Err(e) => {
                    return Err(CniError::from(e).context(format!(
                        "hostShim: adding the route to the host's {} on {ifname}",
                        s.ip
                    )));
                }
            }
        }
        container
            .set_neighbour(link.index, s.ip, shim_mac)
            .map_err(|e| CniError::from(e).context(format!("hostShim: on {ifname}")))?;
    }
    Ok(())
}

/// The host route to one container address on the shim. A route to it that
/// is already there is the shim's own leftover of an earlier attempt of this
/// attachment (the record says no other attachment routes that address) or
/// somebody else's, which is never replaced.
fn add_shim_route(
    host: &dyn LinkOps,
    shim_link: &LinkInfo,
    r: &ShimRoute,
    shim_conf: &HostShimConfig,
) -> Result<(), CniError> {
    match host.add_host_route(shim_link.index, r.ip, Some(r.src)) {
        Ok(()) => Ok(()),
        Err(LinkError::Exists(what)) => {
            let ours = host
                .routes_of(shim_link.index)?
                .iter()
                .any(|h| h.dst.ip() == r.ip && h.protocol == crate::sys::netlink::RTPROT_MACTRUNK);
            if ours {
                Ok(())
            } else {
                Err(CniError::config(
                    "hostShim",
                    format!(
                        "the host already has a route to {} that mactrunk did not add ({what}): it is left alone; remove it or turn hostShim off",
                        r.ip
                    ),
                ))
            }
        }
        Err(e) if e.errno() == Some(libc::EINVAL) && shim_conf.src.contains(&r.src) => {
            Err(CniError::config(
                "hostShim.src",
                format!(
                    "{} is not an address of this host (the kernel refused it as the source of the route to {}: {e})",
                    r.src, r.ip
                ),
            ))
        }
        Err(e) => Err(CniError::from(e).context(format!(
            "hostShim: adding the route to {} on {}",
            r.ip, shim_link.name
        ))),
    }
}

/// An ipvlan's mode and flags belong to its parent (see
/// [`super::ipvlan_port`]):
/// record this attachment on the parent's port before the ipvlan exists,
/// or refuse (code 7) when other attachments use it with other values.
fn claim_ipvlan_port<'a>(
    req: &'a Request,
    master: &LinkInfo,
    mode: IpvlanMode,
    flags: IpvlanFlags,
    undo: &mut Undo<'a>,
) -> Result<(), CniError> {
    let (data_dir, timeout) = vlan_registry_location(&req.conf)?;
    let user = vlan_user(req);
    super::ipvlan_port::claim(&data_dir, timeout, master, mode, flags, &user)?;
    undo.push("releasing the ipvlan port record", move || {
        super::ipvlan_port::release(&data_dir, timeout, &user)
    });
    Ok(())
}

/// EBUSY from creating the link: the parent's receive path belongs to
/// another driver. Verified on 6.1: an ipvlan on a macvlan's parent and a
/// macvlan on an ipvlan's parent are both refused with EBUSY and no extended
/// ack (the kernel logs "Device is already in use." for ipvlan only), as is
/// either on a bridge or bond port. A config problem (this network's
/// linkType does not fit the parent), hence code 7 naming `linkType`.
fn parent_busy(want: LinkKind, master: &LinkInfo) -> CniError {
    let (article, other) = match want {
        LinkKind::Macvlan { .. } => ("a", "ipvlan"),
        LinkKind::Ipvlan { .. } => ("an", "macvlan"),
    };
    let holder = match master.controller {
        Some(c) => format!(
            "{:?} is a port of link index {c} (a bridge, bond or team owns its receive path)",
            master.name
        ),
        None => format!(
            "{:?} already carries {other} links (or another driver that takes its receive path, e.g. macsec)",
            master.name
        ),
    };
    CniError::config(
        "linkType",
        format!(
            "cannot put {article} {} on {:?}: the kernel refused with EBUSY: {holder}. One parent carries either macvlan or ipvlan links, never both: use the linkType of the networks already on it, or another parent (a VLAN of it)",
            want.name(),
            master.name
        ),
    )
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

/// What the IPAM holds for this ADD: how to give back what [`ipam_add`]
/// (and later a probe's replacements) allocated if ADD fails.
#[derive(Default)]
enum IpamHeld {
    #[default]
    Nothing,
    /// The in-process store (its config, to allocate replacements) and
    /// exactly the addresses this ADD reserved.
    Fresh(Box<IpamConfig>, Vec<IpAddr>),
    /// A delegated plugin: its DEL.
    Delegate(String),
}

/// Addresses from whichever IPAM the config names, for the container netns
/// `netns`.
fn ipam_add(
    req: &Request,
    conf: &PluginConfig,
    netns: &NetNs,
) -> Result<(CniOutput, IpamHeld), CniError> {
    match &conf.ipam {
        IpamKind::None => Ok((CniOutput::default(), IpamHeld::Nothing)),
        IpamKind::InProcess => {
            let ipam_conf = IpamConfig::from_netconf(&req.conf, &req.args.args)?;
            let id = netns.id();
            let added = ipam::add_in(&ipam_conf, &owner(req), id.as_deref())?;
            Ok((added.out, IpamHeld::Fresh(Box::new(ipam_conf), added.fresh)))
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
                Ok(out) => Ok((out, IpamHeld::Delegate(t.clone()))),
                Err(e) => {
                    // The delegate allocated: give the addresses back.
                    if let Err(de) = ipam_rollback(req, IpamHeld::Delegate(t.clone())) {
                        log_at!(Level::Warn, "rollback: releasing addresses failed: {de}");
                    }
                    Err(e.context(format!("ipam plugin {t:?} result")))
                }
            }
        }
    }
}

/// Undo [`ipam_add`] after a later step of ADD failed.
fn ipam_rollback(req: &Request, held: IpamHeld) -> Result<(), CniError> {
    match held {
        IpamHeld::Nothing => Ok(()),
        IpamHeld::Fresh(conf, fresh) => ipam::release_fresh(&conf.location(), &owner(req), &fresh),
        IpamHeld::Delegate(t) => {
            delegate::exec(&t, &req.args.path, Command::Del, &req.raw).map(|_| ())
        }
    }
}

/// Create the container's macvlan or ipvlan under `spec.name`, tag it, and
/// return it as the container sees it (ifindex, MAC, MTU).
///
/// The link is created directly inside the container netns (IFLA_NET_NS_FD):
/// that is 10x cheaper than creating it on the host and moving it. But
/// kernels before ~6.14 check IFLA_IFNAME in the *sender's* netns as well,
/// so on Debian 12, Ubuntu and RHEL a host link called like CNI_IFNAME (the
/// host's own eth0) makes the create fail with EEXIST though the container
/// has no such link. Then, and only then, the link is created under a
/// temporary name and renamed inside the container, where only the
/// container's names count (~0.2 ms more). The tag goes with the rename (or
/// right after the direct create), before anything else touches the link.
pub(super) fn create_tagged(
    master_nl: &dyn LinkOps,
    container: &dyn LinkOps,
    spec: &LinkSpec<'_>,
    tag: &str,
) -> Result<LinkInfo, LinkError> {
    let name = spec.name;
    match master_nl.create_link(spec) {
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
    for temp in temp_link_names(tag, name) {
        let temp_spec = LinkSpec {
            name: &temp,
            ..spec.clone()
        };
        match master_nl.create_link(&temp_spec) {
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
    spec: &LinkSpec<'_>,
) -> Result<LinkInfo, LinkError> {
    let Some(link) = container.link_by_name(name)? else {
        return Err(LinkError::NotFound(format!(
            "{} {name} right after its creation",
            spec.kind.name()
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
fn ignored_by_kernel(spec: &LinkSpec<'_>, created: &LinkInfo) -> Option<String> {
    match spec.kind {
        LinkKind::Macvlan {
            bcqueuelen: Some(want),
            ..
        } if created.macvlan_bcqueuelen != Some(want) => Some(format!(
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

/// Sysctls, MAC, addresses, up, routes, DAD: the configuration of the new
/// link in `container`. Returns what the result needs and the IPAM output,
/// which a probe may have changed (an address found in use is traded for
/// the next one).
///
/// Without a probe the addresses go on before the link goes up, so that
/// the kernel announces them (arp_notify), and a `macFromIP` MAC is set
/// while the link is still down. With one, the link goes up bare with the
/// MAC the kernel gave it, the IPv4 addresses are probed from that MAC, then
/// (`macFromIP`) the MAC of the address that passed is set, once, and the
/// addresses are configured and announced through the probe's socket (the
/// kernel announces only at link-up). Probing from the derived MAC would
/// hide a host elsewhere that uses the same derived MAC (another node's
/// container with that address): its answer would look like our own frame.
#[allow(clippy::too_many_arguments)]
fn configure(
    req: &Request,
    conf: &PluginConfig,
    netns: &NetNs,
    master_nl: &dyn LinkOps,
    container: &dyn LinkOps,
    link: &LinkInfo,
    mut ipam_out: CniOutput,
    held: &RefCell<IpamHeld>,
) -> Result<(Attached, CniOutput), CniError> {
    let ifname = req.args.ifname.as_str();
    let index = link.index;
    let has_v4 = ipam_out.ips.iter().any(|ip| ip.address.is_ipv4());
    let has_v6 = ipam_out.ips.iter().any(|ip| ip.address.is_ipv6());
    // Best effort: a kernel without IPv6 has no such files.
    for failed in container.write_sysctls(&link_sysctls(ifname, conf, has_v4, has_v6))? {
        log_at!(Level::Warn, "sysctl {failed}");
    }
    let mut mac = link.mac;
    match conf.probe {
        Some(probe) => {
            container.set_up(index)?;
            let own = mac.ok_or_else(|| CniError::internal(format!("{ifname} has no MAC")))?;
            let prober = Prober {
                req,
                netns,
                master_nl,
                container,
                index,
                own,
                held,
                probe,
            };
            ipam_out = prober.run(ipam_out)?;
            if conf.mac_from_ip {
                set_mac_from_ip(container, index, &ipam_out, &mut mac)?;
            }
        }
        None if conf.mac_from_ip => set_mac_from_ip(container, index, &ipam_out, &mut mac)?,
        None => {}
    }
    let flags = AddrFlags {
        nodad: conf.ipv6_dad == DadPolicy::Off,
        optimistic: conf.ipv6_dad == DadPolicy::Optimistic,
    };
    for ip in &ipam_out.ips {
        container
            .add_address(index, ip.address, flags)
            .map_err(|e| CniError::from(e).context(format!("adding {} to {ifname}", ip.address)))?;
    }
    if conf.probe.is_none() {
        container.set_up(index)?;
    } else if conf.announce
        && let Some(mac) = mac
    {
        for ip in v4_addresses(&ipam_out) {
            container.arp_announce(index, mac, ip)?;
        }
    }
    // Routes after up, since a gateway route needs it up.
    let l3 = matches!(conf.link, LinkKind::Ipvlan { mode, .. } if mode.is_l3());
    for route in &ipam_out.routes {
        // An l3/l3s ipvlan has no ARP: a route without `gw` goes straight
        // out of the device (the parent's namespace routes it), as Docker's
        // ipvlan L3 driver does, not via the range's gateway.
        let gw = match route.gw {
            None if l3 => None,
            gw => gw.or_else(|| family_gateway(&ipam_out, route.dst)),
        };
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
        match container.wait_dad(index, DAD_TIMEOUT) {
            Ok(()) => {}
            Err(LinkError::DadFailed { addr, link }) => {
                let limit = conf
                    .probe
                    .map_or(super::config::PROBE_MAX_QUARANTINED.0 as u32, |p| {
                        p.max_quarantined
                    });
                return Err(dad_conflict(req, netns, held, addr.ip(), &link, limit));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok((
        Attached {
            // Read back right after creation (or set here): going up does
            // not change it.
            mac: format_mac(&mac.unwrap_or_default()),
            mtu: link.mtu,
        },
        ipam_out,
    ))
}

/// The IPv4 addresses of an IPAM result, in order.
fn v4_addresses(out: &CniOutput) -> Vec<Ipv4Addr> {
    out.ips
        .iter()
        .filter_map(|ip| match ip.address.ip() {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(_) => None,
        })
        .collect()
}

/// `macFromIP`: give link `index` the MAC of the first IPv4 address of
/// `out` (see [`super::mac`]), unless it has it already.
fn set_mac_from_ip(
    container: &dyn LinkOps,
    index: u32,
    out: &CniOutput,
    mac: &mut Option<[u8; 6]>,
) -> Result<(), CniError> {
    let Some(first) = v4_addresses(out).first().copied() else {
        // Known only now with a delegated IPAM (the config refuses the others).
        return Err(CniError::config(
            "macFromIP",
            "the IPAM gave no IPv4 address to derive the MAC from",
        ));
    };
    let want = mac_from_ipv4(first);
    if *mac != Some(want) {
        container.set_mac(index, want)?;
        *mac = Some(want);
    }
    Ok(())
}

// ------------------------------------------------------------ conflicts

/// The one shape of every "address in use on the network" report (probe,
/// DAD at ADD, DADFAILED at CHECK): `<address> is in use on the network:
/// <evidence>`.
pub(super) fn in_use(addr: IpAddr, evidence: &str) -> String {
    format!("{addr} is in use on the network: {evidence}")
}

/// What showed an address in use.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Evidence {
    /// A host answered (or sent) ARP for it, from this MAC.
    Arp([u8; 6]),
    /// It is an address of this node: of a link in the parent's namespace
    /// (described), which a macvlan's probe never reaches.
    Node(String),
    /// IPv6 DAD failed on this link (described).
    Dad(String),
}

impl Evidence {
    /// What the quarantine record names (`conflict:<by>`).
    fn by(&self) -> String {
        match self {
            Evidence::Arp(m) => format_mac(m),
            Evidence::Node(_) => "node".into(),
            Evidence::Dad(_) => "ipv6-dad".into(),
        }
    }

    /// The evidence of [`in_use`]; `from`: the probing link and where it is.
    fn describe(&self, from: &str) -> String {
        match self {
            Evidence::Arp(m) => format!("{} answered an ARP probe from {from}", format_mac(m)),
            Evidence::Node(link) => format!("it is an address of this node ({link})"),
            Evidence::Dad(link) => format!("IPv6 duplicate address detection on {link} failed"),
        }
    }

    /// Short, for lists.
    fn short(&self) -> String {
        match self {
            Evidence::Arp(m) => format_mac(m),
            Evidence::Node(_) => "this node".into(),
            Evidence::Dad(_) => "IPv6 DAD".into(),
        }
    }
}

/// One address found in use.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Found {
    ip: IpAddr,
    evidence: Evidence,
}

/// Where an address of this ADD came from, which decides what a conflict
/// does with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// Chosen by the in-process IPAM: quarantined, and another one tried.
    Dynamic,
    /// Requested (`runtimeConfig.ips`, ...): there is no other to try; not
    /// quarantined, so that the next ADD probes it again.
    Static,
    /// From a delegated IPAM (or none): mactrunk can neither quarantine it
    /// in a store it does not own nor ask for another.
    Delegated,
}

impl Origin {
    fn of(held: &IpamHeld, ip: IpAddr) -> Origin {
        match held {
            IpamHeld::Fresh(conf, _) if conf.static_ips.iter().any(|s| s.ip == ip) => {
                Origin::Static
            }
            IpamHeld::Fresh(..) => Origin::Dynamic,
            IpamHeld::Delegate(_) | IpamHeld::Nothing => Origin::Delegated,
        }
    }

    /// Why such an address is not quarantined; None for a dynamic one.
    fn not_quarantined(self) -> Option<&'static str> {
        match self {
            Origin::Dynamic => None,
            Origin::Static => {
                Some(" (the requested static address: there is no other to try; not quarantined)")
            }
            Origin::Delegated => Some(
                " (the address comes from a delegated IPAM: given back with its DEL, not quarantined)",
            ),
        }
    }
}

/// What quarantining some found addresses did.
#[derive(Debug, Default)]
struct Quarantine {
    /// In the store as `conflict:<by>` now.
    quarantined: Vec<IpAddr>,
    /// Given back instead: the store holds its limit of quarantines.
    over_limit: Vec<IpAddr>,
    held_before: usize,
}

impl Quarantine {
    /// The tail of an error (or warning) saying what happened to the
    /// addresses; `as_`: how the record is named, for one evidence kind.
    fn describe(&self, limit: u32, as_: &str) -> String {
        let list = |v: &[IpAddr]| {
            v.iter()
                .map(IpAddr::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut msg = String::new();
        if !self.quarantined.is_empty() {
            msg.push_str(&format!(
                "; quarantined in the IPAM store{as_}: {} (mactrunk-ipam list shows it, release frees it)",
                list(&self.quarantined)
            ));
        }
        if !self.over_limit.is_empty() {
            msg.push_str(&format!(
                "; not quarantined: {} (the network's store holds {} quarantined addresses, its limit of {limit} (probe.maxQuarantined); mactrunk-ipam list shows them)",
                list(&self.over_limit),
                self.held_before
            ));
        }
        msg
    }
}

/// Quarantine the dynamic addresses among `found` (see [`Origin`]) in the
/// in-process store, at most up to `limit` quarantines in the store, and
/// with `replace` take the owner's replacements into `held` and return
/// them. The fresh addresses of `held` lose the ones quarantined or given
/// back.
fn quarantine(
    req: &Request,
    netns: &NetNs,
    held: &RefCell<IpamHeld>,
    found: &[Found],
    limit: u32,
    replace: bool,
) -> Result<(Quarantine, Option<CniOutput>), CniError> {
    let mut state = held.borrow_mut();
    let dynamic: Vec<(IpAddr, String)> = found
        .iter()
        .filter(|f| Origin::of(&state, f.ip) == Origin::Dynamic)
        .map(|f| (f.ip, f.evidence.by()))
        .collect();
    let IpamHeld::Fresh(ipam_conf, fresh) = &mut *state else {
        return Ok((Quarantine::default(), None));
    };
    if dynamic.is_empty() && !replace {
        return Ok((Quarantine::default(), None));
    }
    let id = netns.id();
    let done = ipam::quarantine(
        ipam_conf,
        &owner(req),
        id.as_deref(),
        &dynamic,
        limit as usize,
        replace,
    )?;
    fresh.retain(|ip| !done.quarantined.contains(ip) && !done.released.contains(ip));
    let out = done.added.map(|added| {
        fresh.extend(added.fresh);
        added.out
    });
    Ok((
        Quarantine {
            quarantined: done.quarantined,
            over_limit: done.released,
            held_before: done.held_before,
        },
        out,
    ))
}

/// The RFC 5227 probe of one ADD's IPv4 addresses from the (up, bare)
/// link; see [`probe_step`] for what happens to an address in use.
struct Prober<'a> {
    req: &'a Request,
    netns: &'a NetNs,
    /// The namespace of the parent, whose own addresses the probe cannot
    /// see (a macvlan never reaches its parent).
    master_nl: &'a dyn LinkOps,
    container: &'a dyn LinkOps,
    index: u32,
    /// The link's MAC as the kernel made it: the probes' sender.
    own: [u8; 6],
    held: &'a RefCell<IpamHeld>,
    probe: ProbeConfig,
}

impl Prober<'_> {
    /// Probe until a round finds no conflict; returns the IPAM output whose
    /// addresses nobody has.
    fn run(&self, mut out: CniOutput) -> Result<CniOutput, CniError> {
        let ifname = &self.req.args.ifname;
        let from = format!("{ifname} in {}", self.req.args.netns);
        let node = self.node_addresses()?;
        let mut found: Vec<Found> = Vec::new();
        let mut quarantined: Vec<IpAddr> = Vec::new();
        let attempts = self.probe.attempts;
        for attempt in 1..=attempts {
            let candidates = v4_addresses(&out);
            if candidates.is_empty() {
                // Known only now with a delegated IPAM (the config refuses
                // the others): a probe that checks nothing must not pass.
                return Err(CniError::config(
                    "probe",
                    "the IPAM gave no IPv4 address to probe",
                ));
            }
            // The node's own addresses need no ARP round.
            let mut conflicts: Vec<Found> = candidates
                .iter()
                .filter_map(|c| {
                    node.iter().find(|(a, _)| a == c).map(|(_, index)| Found {
                        ip: IpAddr::V4(*c),
                        evidence: Evidence::Node(self.node_link(*index)),
                    })
                })
                .collect();
            if conflicts.is_empty() {
                conflicts = self
                    .container
                    .arp_probe(self.index, self.own, &candidates, self.probe.timeout)
                    .map_err(|e| CniError::from(e).context(format!("probing {ifname}")))?
                    .into_iter()
                    .map(|(ip, mac)| Found {
                        ip: IpAddr::V4(ip),
                        evidence: Evidence::Arp(mac),
                    })
                    .collect();
            }
            if conflicts.is_empty() {
                return Ok(out);
            }
            for c in &conflicts {
                log_at!(
                    Level::Warn,
                    "probe: {} (attempt {attempt} of {attempts})",
                    in_use(c.ip, &c.evidence.describe(&from))
                );
            }
            found.extend(conflicts.iter().cloned());
            let step = probe_step(&self.held.borrow(), &conflicts, &found, attempt, attempts);
            let keep = matches!(
                step,
                ProbeStep::Replace
                    | ProbeStep::Fail {
                        why: FailWhy::Exhausted | FailWhy::Static
                    }
            );
            let (done, replaced) = if keep {
                quarantine(
                    self.req,
                    self.netns,
                    self.held,
                    &conflicts,
                    self.probe.max_quarantined,
                    step == ProbeStep::Replace,
                )?
            } else {
                (Quarantine::default(), None)
            };
            quarantined.extend(done.quarantined.iter().copied());
            match step {
                ProbeStep::Replace => {
                    if !done.over_limit.is_empty() {
                        log_at!(
                            Level::Warn,
                            "probe: skipped for this ADD only{}",
                            done.describe(self.probe.max_quarantined, "")
                        );
                    }
                    out = replaced
                        .ok_or_else(|| CniError::internal("probe: no replacement addresses"))?;
                }
                ProbeStep::Fail { why } => {
                    let all = Quarantine {
                        quarantined: std::mem::take(&mut quarantined),
                        ..done
                    };
                    return Err(self.conflict_error(&conflicts, &found, &all, why, &from));
                }
            }
        }
        Ok(out)
    }

    /// The IPv4 addresses of the parent's namespace, with the index of the
    /// link that has each: one dump (a node may have hundreds: a service
    /// proxy's dummy link).
    fn node_addresses(&self) -> Result<Vec<(Ipv4Addr, u32)>, CniError> {
        Ok(self
            .master_nl
            .all_addresses()?
            .into_iter()
            .filter_map(|(index, net)| match net.ip() {
                IpAddr::V4(a) => Some((a, index)),
                IpAddr::V6(_) => None,
            })
            .collect())
    }

    /// The link of a node address, for the report (looked up only then).
    fn node_link(&self, index: u32) -> String {
        let link = match self.master_nl.link_by_index(index) {
            Ok(Some(l)) => format!("{:?}", l.name),
            _ => format!("link index {index}"),
        };
        format!("{link} in the {}", self.master_nl.label())
    }

    /// Code 102: this round's addresses in [`in_use`]'s shape, then why ADD
    /// gives up and what was done about them.
    fn conflict_error(
        &self,
        conflicts: &[Found],
        found: &[Found],
        done: &Quarantine,
        why: FailWhy,
        from: &str,
    ) -> CniError {
        let evidence: Vec<String> = conflicts
            .iter()
            .map(|c| in_use(c.ip, &c.evidence.describe(from)))
            .collect();
        let mut msg = evidence.join("; ");
        let all = || {
            found
                .iter()
                .map(|f| format!("{} ({})", f.ip, f.evidence.short()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match why {
            FailWhy::Static => msg.push_str(Origin::Static.not_quarantined().unwrap_or_default()),
            FailWhy::Delegated => {
                msg.push_str(Origin::Delegated.not_quarantined().unwrap_or_default())
            }
            FailWhy::Exhausted => msg.push_str(&format!(
                "; every probe attempt found its address in use: {}",
                all()
            )),
            FailWhy::ProxyArp(mac) => msg.push_str(&format!(
                "; {} answered for every address this ADD probed ({}): that looks like proxy ARP (a router answering for the addresses it routes) rather than hosts that have them, so the last one is not quarantined and ADD stops here: turn proxy ARP off for this subnet on that router, or probe off for this network",
                format_mac(&mac),
                all()
            )),
        }
        msg.push_str(&done.describe(self.probe.max_quarantined, ""));
        CniError::new(code::ADDRESS_IN_USE, msg)
    }
}

/// What one probe round's conflicts lead to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProbeStep {
    /// Quarantine the addresses and probe their replacements.
    Replace,
    /// Fail the ADD (quarantining what the store can keep, see `run`).
    Fail { why: FailWhy },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FailWhy {
    /// The last attempt found a conflict too.
    Exhausted,
    /// A requested static address is in use: there is no other to try.
    Static,
    /// The addresses come from a delegated IPAM (or none): mactrunk cannot
    /// quarantine them in a store it does not own, nor ask for others.
    Delegated,
    /// One MAC answered for every address of this ADD (two or more): most
    /// likely a router's proxy ARP, which would answer for any replacement
    /// too; nothing more is quarantined.
    ProxyArp([u8; 6]),
}

/// The decision after `conflicts` were found in round `attempt` of
/// `attempts`; `found`: every conflict of this ADD so far, these included.
fn probe_step(
    held: &IpamHeld,
    conflicts: &[Found],
    found: &[Found],
    attempt: u32,
    attempts: u32,
) -> ProbeStep {
    let fail = |why| ProbeStep::Fail { why };
    let origins = conflicts.iter().map(|c| Origin::of(held, c.ip));
    if origins.clone().any(|o| o == Origin::Delegated) {
        return fail(FailWhy::Delegated);
    }
    if origins.into_iter().any(|o| o == Origin::Static) {
        return fail(FailWhy::Static);
    }
    if let Some(mac) = one_mac_for_all(found) {
        return fail(FailWhy::ProxyArp(mac));
    }
    if attempt >= attempts {
        fail(FailWhy::Exhausted)
    } else {
        ProbeStep::Replace
    }
}

/// The MAC that answered for every one of two or more different addresses.
fn one_mac_for_all(found: &[Found]) -> Option<[u8; 6]> {
    let Some(Found {
        evidence: Evidence::Arp(first),
        ..
    }) = found.first()
    else {
        return None;
    };
    let same = found.iter().all(|f| f.evidence == Evidence::Arp(*first));
    let two = found.iter().any(|f| f.ip != found[0].ip);
    (same && two).then_some(*first)
}

/// IPv6 DAD found `addr` in use: the same report as a probe's (code 102,
/// [`in_use`]'s shape); an address the in-process IPAM chose is
/// quarantined as `conflict:ipv6-dad` (DAD does not say who has it, see
/// [`quarantine`] for the limit), so that the runtime's retry gets another.
fn dad_conflict(
    req: &Request,
    netns: &NetNs,
    held: &RefCell<IpamHeld>,
    addr: IpAddr,
    link: &str,
    limit: u32,
) -> CniError {
    let evidence = Evidence::Dad(link.to_string());
    let mut msg = in_use(addr, &evidence.describe(""));
    let origin = Origin::of(&held.borrow(), addr);
    match origin.not_quarantined() {
        Some(why) => msg.push_str(why),
        None => {
            let found = [Found { ip: addr, evidence }];
            match quarantine(req, netns, held, &found, limit, false) {
                Ok((done, _)) => {
                    msg.push_str(&done.describe(limit, " as conflict:ipv6-dad"));
                    if !done.quarantined.is_empty() {
                        msg.push_str(": a retried ADD gets another address");
                    }
                }
                Err(e) => {
                    log_at!(Level::Warn, "quarantining {addr} failed: {e}");
                    msg.push_str(&format!("; quarantining it failed: {e}"));
                }
            }
        }
    }
    CniError::new(code::ADDRESS_IN_USE, msg)
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
mod shim_tests;
#[cfg(test)]
mod tests;
