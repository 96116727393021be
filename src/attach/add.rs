//! ADD: everything that can fail without a side effect first (config,
//! netns, master, MTU, a free CNI_IFNAME), then addresses, the VLAN parent,
//! the link and its configuration. One undo guard takes back whatever was
//! done, in reverse, if a later step fails: no link and no address is left.

use std::cell::RefCell;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use ipnetwork::IpNetwork;

use super::config::{DadPolicy, PluginConfig, ProbeConfig};
use super::mac::mac_from_ipv4;
use super::parent::{self, Parent};
use super::tag::{link_tag, temp_link_name};
use super::undo::Undo;
use super::vlan_registry::{self, crash_point};
use super::{kernel, open_container_netns, owner, vlan_registry_location, vlan_release, vlan_user};
use crate::cni::env::Command;
use crate::cni::netconf::IpamKind;
use crate::cni::skel::Request;
use crate::cni::{CniError, CniOutput, Interface, code};
use crate::ipam::{self, IpamConfig, delegate};
use crate::sys::log::{Level, Phases, log_at};
use crate::sys::netlink::{
    AddrFlags, LinkError, LinkInfo, LinkKind, LinkOps, LinkSpec, Sysctl, format_mac,
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
    let created = link_side?;
    phases.mark("ipam+link");
    crash_point("after-link");
    let (attached, ipam_out) = configure(req, conf, netns, container, &created, ipam_out, &held)?;
    phases.mark("configure");
    // Host-side extras of this attachment (none yet; the host shim's
    // per-container route belongs here) push their undo steps here, after
    // the container side is complete, so that a failure takes back both.
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
    Ok(created)
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
/// has no such link. Then, and only then, the link is created under a random
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
    for _ in 0..TEMP_NAME_ATTEMPTS {
        let temp = temp_link_name();
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
/// the kernel announces them (arp_notify). With one, the link goes up
/// bare, the IPv4 addresses are probed, then configured and announced
/// through the probe's socket (the kernel announces only at link-up).
fn configure(
    req: &Request,
    conf: &PluginConfig,
    netns: &NetNs,
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
            if conf.mac_from_ip {
                set_mac_from_ip(container, index, &ipam_out, &mut mac)?;
            }
            container.set_up(index)?;
            ipam_out = probe_addresses(
                req, conf, netns, container, index, &mut mac, ipam_out, held, probe,
            )?;
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
                return Err(dad_conflict(req, netns, held, addr.ip(), &link));
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

/// One round of probing found these addresses in use: (address, MAC that
/// answered).
type Conflicts = Vec<(Ipv4Addr, [u8; 6])>;

/// RFC 5227 probes for the IPv4 addresses of `out` from the (up, bare)
/// link; see [`probe_step`] for what happens to an address in use. Returns
/// the IPAM output whose addresses nobody answered for.
#[allow(clippy::too_many_arguments)]
fn probe_addresses(
    req: &Request,
    conf: &PluginConfig,
    netns: &NetNs,
    container: &dyn LinkOps,
    index: u32,
    mac: &mut Option<[u8; 6]>,
    mut out: CniOutput,
    held: &RefCell<IpamHeld>,
    probe: ProbeConfig,
) -> Result<CniOutput, CniError> {
    let ifname = &req.args.ifname;
    let mut found: Conflicts = Vec::new();
    for attempt in 1..=probe.attempts {
        let candidates = v4_addresses(&out);
        if candidates.is_empty() {
            break;
        }
        if conf.mac_from_ip {
            set_mac_from_ip(container, index, &out, mac)?;
        }
        let own = mac.ok_or_else(|| CniError::internal(format!("{ifname} has no MAC")))?;
        let conflicts = container
            .arp_probe(index, own, &candidates, probe.timeout)
            .map_err(|e| CniError::from(e).context(format!("probing {ifname}")))?;
        if conflicts.is_empty() {
            return Ok(out);
        }
        for (ip, by) in &conflicts {
            log_at!(
                Level::Warn,
                "probe: {ip} is in use on the network: {} answered an ARP probe from {ifname} in {} (attempt {attempt} of {})",
                format_mac(by),
                req.args.netns,
                probe.attempts
            );
        }
        found.extend(conflicts.iter().copied());
        let mut state = held.borrow_mut();
        let step = probe_step(&state, &conflicts, attempt, probe.attempts);
        let quarantined = match (&mut *state, &step) {
            (IpamHeld::Fresh(ipam_conf, fresh), ProbeStep::Replace | ProbeStep::Fail { .. }) => {
                let dynamic: Vec<(IpAddr, String)> = conflicts
                    .iter()
                    .filter(|(ip, _)| !is_static(ipam_conf, (*ip).into()))
                    .map(|(ip, by)| ((*ip).into(), format_mac(by)))
                    .collect();
                let replace = step == ProbeStep::Replace;
                let id = netns.id();
                let added =
                    ipam::quarantine(ipam_conf, &owner(req), id.as_deref(), &dynamic, replace)?;
                fresh.retain(|ip| !dynamic.iter().any(|(q, _)| q == ip));
                if let Some(added) = added {
                    fresh.extend(added.fresh);
                    out = added.out;
                }
                dynamic.into_iter().map(|(ip, _)| ip).collect()
            }
            _ => Vec::new(),
        };
        if let ProbeStep::Fail { why } = step {
            return Err(conflict_error(req, &conflicts, &found, &quarantined, why));
        }
    }
    Ok(out)
}

/// What one probe round's conflicts lead to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProbeStep {
    /// Quarantine the addresses and probe their replacements.
    Replace,
    /// Fail the ADD (quarantining what the store can keep).
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
}

/// The decision after `conflicts` were found in round `attempt` of `attempts`.
fn probe_step(
    held: &IpamHeld,
    conflicts: &[(Ipv4Addr, [u8; 6])],
    attempt: u32,
    attempts: u32,
) -> ProbeStep {
    let IpamHeld::Fresh(ipam_conf, _) = held else {
        return ProbeStep::Fail {
            why: FailWhy::Delegated,
        };
    };
    if conflicts
        .iter()
        .any(|(ip, _)| is_static(ipam_conf, (*ip).into()))
    {
        ProbeStep::Fail {
            why: FailWhy::Static,
        }
    } else if attempt >= attempts {
        ProbeStep::Fail {
            why: FailWhy::Exhausted,
        }
    } else {
        ProbeStep::Replace
    }
}

fn is_static(conf: &IpamConfig, ip: IpAddr) -> bool {
    conf.static_ips.iter().any(|s| s.ip == ip)
}

/// Code 102, in the shape every "address in use on the network" error
/// has: `<address> is in use on the network: <evidence>`, then what was
/// done about it.
fn conflict_error(
    req: &Request,
    conflicts: &[(Ipv4Addr, [u8; 6])],
    found: &[(Ipv4Addr, [u8; 6])],
    quarantined: &[IpAddr],
    why: FailWhy,
) -> CniError {
    let where_ = format!("{} in {}", req.args.ifname, req.args.netns);
    let evidence: Vec<String> = conflicts
        .iter()
        .map(|(ip, by)| {
            format!(
                "{ip} is in use on the network: {} answered an ARP probe from {where_}",
                format_mac(by)
            )
        })
        .collect();
    let mut msg = evidence.join("; ");
    match why {
        FailWhy::Static => msg
            .push_str(" (the requested static address: there is no other to try; not quarantined)"),
        FailWhy::Delegated => msg.push_str(
            " (the address comes from a delegated IPAM: given back with its DEL, not quarantined)",
        ),
        FailWhy::Exhausted => {
            let all: Vec<String> = found
                .iter()
                .map(|(ip, by)| format!("{ip} ({})", format_mac(by)))
                .collect();
            msg.push_str(&format!(
                "; every probe attempt found its address in use: {}",
                all.join(", ")
            ));
        }
    }
    if !quarantined.is_empty() {
        let q: Vec<String> = quarantined.iter().map(IpAddr::to_string).collect();
        msg.push_str(&format!(
            "; quarantined in the IPAM store: {} (mactrunk-ipam list shows it, release frees it)",
            q.join(", ")
        ));
    }
    CniError::new(code::ADDRESS_IN_USE, msg)
}

/// IPv6 DAD found `addr` in use: the same report as a probe's (code 102,
/// same message shape); an address of the in-process store that was not a
/// static request is quarantined as `conflict:ipv6-dad` (DAD does not say
/// who has it), so that the runtime's retry gets another one.
fn dad_conflict(
    req: &Request,
    netns: &NetNs,
    held: &RefCell<IpamHeld>,
    addr: IpAddr,
    link: &str,
) -> CniError {
    let mut msg = format!(
        "{addr} is in use on the network: IPv6 duplicate address detection on {link} failed"
    );
    match &*held.borrow() {
        IpamHeld::Fresh(ipam_conf, _) if !is_static(ipam_conf, addr) => {
            let found = [(addr, "ipv6-dad".to_string())];
            let id = netns.id();
            match ipam::quarantine(ipam_conf, &owner(req), id.as_deref(), &found, false) {
                Ok(_) => msg.push_str(
                    "; quarantined in the IPAM store as conflict:ipv6-dad (mactrunk-ipam list shows it, release frees it): a retried ADD gets another address",
                ),
                Err(e) => {
                    log_at!(Level::Warn, "quarantining {addr} failed: {e}");
                    msg.push_str(&format!("; quarantining it failed: {e}"));
                }
            }
        }
        IpamHeld::Fresh(..) => msg
            .push_str(" (the requested static address: there is no other to try; not quarantined)"),
        _ => msg.push_str(
            " (the address comes from a delegated IPAM: given back with its DEL, not quarantined)",
        ),
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
mod tests;
