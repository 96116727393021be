//! The `mactrunk` plugin: the order of ADD, DEL, CHECK, GC and STATUS, and the
//! rollback of a failed ADD. Kernel work goes through `link`, `netns`,
//! `sysctl` and `announce`; addresses through `ipam` or a delegate.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use ipnetwork::IpNetwork;
use serde_json::Value;

use crate::cni::env::Command;
use crate::cni::{CniError, CniOutput, Interface, code};
use crate::config::{DadPolicy, IpamKind, PluginConfig, format_mac};
use crate::ipam::{self, IpamConfig, StoreLocation};
use crate::link::{AddrFlags, LinkError, LinkInfo, MacvlanSpec, Netlink};
use crate::log::Level;
use crate::netns::{self, NetNs, NetnsError};
use crate::skel::{Plugin, Request};
use crate::store::Owner;
use crate::{announce, delegate, log_at, sysctl};

/// How long ADD waits for IPv6 DAD with `ipv6Dad: "wait"`.
const DAD_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Macvlan;

impl Plugin for Macvlan {
    fn add(&self, req: &Request) -> Result<CniOutput, CniError> {
        let started = Instant::now();
        let conf = PluginConfig::parse(&req.conf, &req.args.args)?;
        init_log(&conf);
        let result = add(req, &conf);
        log_outcome(req, started, &result.as_ref().map(addresses));
        result
    }

    fn del(&self, req: &Request) -> Result<(), CniError> {
        let started = Instant::now();
        init_log_raw(&req.conf);
        let result = del(req);
        log_outcome(req, started, &result.as_ref().map(|_| String::new()));
        result
    }

    fn check(&self, req: &Request) -> Result<(), CniError> {
        let started = Instant::now();
        let conf = PluginConfig::parse(&req.conf, &req.args.args)?;
        init_log(&conf);
        let result = check(req, &conf);
        log_outcome(req, started, &result.as_ref().map(|_| String::new()));
        result
    }

    fn gc(&self, req: &Request) -> Result<(), CniError> {
        init_log_raw(&req.conf);
        let valid = valid_attachments(&req.conf)?;
        let kind = crate::config::parse_ipam_kind(obj(&req.conf)?)?;
        match kind {
            IpamKind::None => Ok(()),
            IpamKind::InProcess => {
                let loc = StoreLocation::from_netconf(&req.conf)?;
                let report = ipam::gc(&loc, valid.as_deref())?;
                log_at!(Level::Info, "GC network={} {report:?}", req.name);
                Ok(())
            }
            IpamKind::Delegate(t) => {
                delegate::exec(&t, &req.args.path, Command::Gc, &req.raw).map(|_| ())
            }
        }
    }

    fn status(&self, req: &Request) -> Result<(), CniError> {
        let conf = PluginConfig::parse(&req.conf, &req.args.args)?;
        init_log(&conf);
        if !conf.link_in_container {
            let rt = runtime()?;
            rt.block_on(async {
                let host = Netlink::open()?;
                let parent = resolve_master(&host, &conf, "host network namespace").await;
                parent.map_err(|e| CniError::new(code::NOT_AVAILABLE, e.msg))
            })?;
        }
        match &conf.ipam {
            IpamKind::None => Ok(()),
            IpamKind::InProcess => {
                ipam::status(&IpamConfig::from_netconf(&req.conf, &req.args.args)?)
            }
            IpamKind::Delegate(t) => {
                delegate::exec(t, &req.args.path, Command::Status, &req.raw).map(|_| ())
            }
        }
    }
}

fn obj(conf: &Value) -> Result<&serde_json::Map<String, Value>, CniError> {
    conf.as_object()
        .ok_or_else(|| CniError::new(code::DECODE, "network config is not a JSON object"))
}

fn init_log(conf: &PluginConfig) {
    crate::log::init(
        conf.log_level.as_deref(),
        conf.log_file.as_deref(),
        std::env::var("MACTRUNK_LOG").ok().as_deref(),
    );
}

/// DEL and GC must not fail on config they do not need, so logging settings
/// are read leniently there.
fn init_log_raw(conf: &Value) {
    let s = |k: &str| conf.get(k).and_then(Value::as_str);
    crate::log::init(
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

fn runtime() -> Result<tokio::runtime::Runtime, CniError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| CniError::internal(format!("cannot start the netlink runtime: {e}")))
}

fn owner(req: &Request) -> Owner {
    Owner {
        container_id: req.args.container_id.clone(),
        ifname: req.args.ifname.clone(),
    }
}

/// Open `CNI_NETNS`, refusing our own namespace unless `CNI_NETNS_OVERRIDE` is set:
/// a stale `/proc/<pid>/ns/net` that now points at the host must never let us
/// create or delete host interfaces.
fn open_container_netns(req: &Request) -> Result<NetNs, CniError> {
    let ns = NetNs::open(&req.args.netns)?;
    if !req.args.netns_override && ns.same_as(&NetNs::current()?) {
        return Err(CniError::new(
            code::INVALID_NETNS,
            format!(
                "CNI_NETNS: {} is the plugin's own network namespace; refusing to change it",
                req.args.netns
            ),
        ));
    }
    Ok(ns)
}

/// A netlink connection bound to `ns`, driven by `rt` on this thread: the
/// socket is opened on a short-lived thread inside `ns` and keeps that
/// namespace for its whole life, so no task ever has to cross namespaces.
fn open_netlink_in(rt: &tokio::runtime::Runtime, ns: &NetNs) -> Result<Netlink, CniError> {
    let handle = rt.handle().clone();
    let nl = netns::run_in(ns, move || {
        let _enter = handle.enter();
        Netlink::open()
    })??;
    Ok(nl)
}

/// The deterministic temporary name a new link is born with in the container:
/// DEL can find and remove it even when ADD was killed before the rename.
pub fn temp_link_name(container_id: &str, ifname: &str) -> String {
    // FNV-1a: stable across releases, unlike std's hasher.
    let mut h: u32 = 0x811c_9dc5;
    for b in container_id.bytes().chain([0]).chain(ifname.bytes()) {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("mt{h:08x}")
}

/// The link the macvlan attaches to, looked up in the namespace `nl` is bound to.
async fn resolve_master(
    nl: &Netlink,
    conf: &PluginConfig,
    where_: &str,
) -> Result<LinkInfo, CniError> {
    let name = match &conf.master {
        Some(m) => m.clone(),
        None => match nl.default_route_link().await? {
            Some(l) => return Ok(l),
            None => {
                return Err(CniError::config(
                    "master",
                    format!(
                        "not set and there is no default route in the {where_} to take it from"
                    ),
                ));
            }
        },
    };
    nl.link_by_name(&name).await?.ok_or_else(|| {
        CniError::config(
            "master",
            format!("interface {name:?} not found in the {where_}"),
        )
    })
}

/// Addresses from whichever IPAM the config names.
fn ipam_add(req: &Request, conf: &PluginConfig) -> Result<CniOutput, CniError> {
    match &conf.ipam {
        IpamKind::None => Ok(CniOutput::default()),
        IpamKind::InProcess => ipam::add(
            &IpamConfig::from_netconf(&req.conf, &req.args.args)?,
            &owner(req),
        ),
        IpamKind::Delegate(t) => {
            let out =
                delegate::exec(t, &req.args.path, Command::Add, &req.raw)?.ok_or_else(|| {
                    CniError::new(
                        code::DELEGATE,
                        format!("ipam plugin {t:?} ADD printed no result"),
                    )
                })?;
            CniOutput::from_json(&out, conf.cni_version)
                .map_err(|e| e.context(format!("ipam plugin {t:?} result")))
        }
    }
}

/// Release addresses; needs as little of the config as possible.
fn ipam_del(req: &Request) -> Result<(), CniError> {
    match crate::config::parse_ipam_kind(obj(&req.conf)?)? {
        IpamKind::None => Ok(()),
        IpamKind::InProcess => ipam::del(&StoreLocation::from_netconf(&req.conf)?, &owner(req)),
        IpamKind::Delegate(t) => {
            delegate::exec(&t, &req.args.path, Command::Del, &req.raw).map(|_| ())
        }
    }
}

/// What the container side of ADD produced.
struct Attached {
    mac: String,
    mtu: u32,
}

fn add(req: &Request, conf: &PluginConfig) -> Result<CniOutput, CniError> {
    let ifname = &req.args.ifname;
    let netns = open_container_netns(req)?;
    let rt = runtime()?;
    let _enter = rt.enter();
    let host = Netlink::open()?;
    let container = open_netlink_in(&rt, &netns)?;

    // Everything that can fail without side effects comes first.
    let (master, master_nl) = if conf.link_in_container {
        (
            rt.block_on(resolve_master(
                &container,
                conf,
                "container network namespace",
            ))?,
            &container,
        )
    } else {
        (
            rt.block_on(resolve_master(&host, conf, "host network namespace"))?,
            &host,
        )
    };
    if let Some(mtu) = conf.mtu
        && mtu > master.mtu
    {
        {
            return Err(CniError::config(
                "mtu",
                format!(
                    "{mtu} is larger than the MTU {} of master {:?}",
                    master.mtu, master.name
                ),
            ));
        }
    }
    if rt.block_on(container.link_by_name(ifname))?.is_some() {
        return Err(CniError::new(
            code::INVALID_ENV,
            format!(
                "CNI_IFNAME: interface {ifname:?} already exists in {}",
                req.args.netns
            ),
        ));
    }

    let ipam_out = ipam_add(req, conf)?;
    let attached = attach(
        req, conf, &rt, &netns, &container, master_nl, &master, &ipam_out,
    );
    let attached = match attached {
        Ok(a) => a,
        Err(e) => {
            // Undo in reverse: the link (if any) first, then the addresses.
            let tmp = temp_link_name(&req.args.container_id, ifname);
            for name in [tmp.as_str(), ifname.as_str()] {
                if let Err(de) = rt.block_on(delete_macvlan(&container, name)) {
                    log_at!(Level::Warn, "rollback: deleting {name} failed: {de}");
                }
            }
            if let Err(re) = ipam_del(req) {
                log_at!(Level::Warn, "rollback: releasing addresses failed: {re}");
            }
            return Err(e);
        }
    };
    Ok(build_result(req, conf, ipam_out, attached))
}

#[allow(clippy::too_many_arguments)]
fn attach(
    req: &Request,
    conf: &PluginConfig,
    rt: &tokio::runtime::Runtime,
    netns: &NetNs,
    container: &Netlink,
    master_nl: &Netlink,
    master: &LinkInfo,
    ipam_out: &CniOutput,
) -> Result<Attached, CniError> {
    let ifname = req.args.ifname.as_str();
    let tmp = temp_link_name(&req.args.container_id, ifname);
    let spec = MacvlanSpec {
        name: &tmp,
        parent: master.index,
        mode: conf.mode,
        mtu: conf.mtu,
        mac: conf.mac,
        bcqueuelen: conf.bcqueuelen,
        netns: if conf.link_in_container {
            None
        } else {
            Some(netns)
        },
    };
    rt.block_on(master_nl.create_macvlan(&spec))
        .map_err(|e| CniError::from(e).context(format!("creating macvlan on {:?}", master.name)))?;
    let link = rt.block_on(container.link_by_name(&tmp))?.ok_or_else(|| {
        CniError::kernel(format!(
            "macvlan {tmp} vanished from {} after creation",
            req.args.netns
        ))
    })?;
    rt.block_on(container.rename(link.index, ifname))
        .map_err(|e| match e {
            LinkError::Exists(_) => CniError::new(
                code::INVALID_ENV,
                format!(
                    "CNI_IFNAME: interface {ifname:?} already exists in {}",
                    req.args.netns
                ),
            ),
            other => CniError::from(other).context(format!("renaming {tmp} to {ifname}")),
        })?;

    let has_v4 = ipam_out.ips.iter().any(|ip| ip.address.is_ipv4());
    let has_v6 = ipam_out.ips.iter().any(|ip| ip.address.is_ipv6());
    netns::run_in(netns, || configure_sysctls(ifname, has_v4, has_v6))?;

    let flags = AddrFlags {
        nodad: conf.ipv6_dad == DadPolicy::Off,
        optimistic: conf.ipv6_dad == DadPolicy::Optimistic,
    };
    rt.block_on(async {
        for ip in &ipam_out.ips {
            container
                .add_address(link.index, ip.address, flags)
                .await
                .map_err(|e| {
                    CniError::from(e).context(format!("adding {} to {ifname}", ip.address))
                })?;
        }
        container.set_up(link.index).await?;
        for route in &ipam_out.routes {
            let gw = route.gw.or_else(|| family_gateway(ipam_out, route.dst));
            container
                .add_route(link.index, route, gw)
                .await
                .map_err(|e| {
                    CniError::from(e).context(format!("adding route to {} on {ifname}", route.dst))
                })?;
        }
        if has_v6 && conf.ipv6_dad == DadPolicy::Wait {
            container.wait_dad(link.index, DAD_TIMEOUT).await?;
        }
        Ok::<(), CniError>(())
    })?;
    let info = rt
        .block_on(container.link_by_index(link.index))?
        .ok_or_else(|| CniError::kernel(format!("{ifname} vanished from {}", req.args.netns)))?;
    let mac = info.mac.unwrap_or_default();
    if conf.announce && !ipam_out.ips.is_empty() {
        // RFC 4429: an optimistic address must not override other nodes' caches.
        let override_na = conf.ipv6_dad != DadPolicy::Optimistic;
        netns::run_in(netns, || {
            for ip in &ipam_out.ips {
                let sent = match ip.address.ip() {
                    IpAddr::V4(v4) => announce::send_gratuitous_arp(info.index, mac, v4),
                    IpAddr::V6(v6) => {
                        announce::send_unsolicited_na_with(info.index, mac, v6, override_na)
                    }
                };
                if let Err(e) = sent {
                    // Announcing only refreshes stale neighbour caches; it never fails ADD.
                    log_at!(
                        Level::Warn,
                        "announcing {} on {ifname} failed: {e}",
                        ip.address
                    );
                }
            }
        })?;
    }
    Ok(Attached {
        mac: format_mac(&mac),
        mtu: info.mtu,
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

/// Runs inside the container netns. Failures are logged, not fatal: a kernel
/// without IPv6 has no such files.
fn configure_sysctls(ifname: &str, has_v4: bool, has_v6: bool) {
    let mut settings: Vec<(String, &str)> = Vec::new();
    if has_v4 {
        settings.push((sysctl::net_conf_path(false, ifname, "arp_notify"), "1"));
    }
    // SLAAC and router advertisements would add addresses and routes nobody
    // asked for (PLUGINS#160); only static addressing from IPAM applies.
    settings.push((sysctl::net_conf_path(true, ifname, "accept_ra"), "0"));
    settings.push((sysctl::net_conf_path(true, ifname, "autoconf"), "0"));
    if has_v6 {
        settings.push((sysctl::net_conf_path(true, "lo", "disable_ipv6"), "0"));
        settings.push((sysctl::net_conf_path(true, ifname, "disable_ipv6"), "0"));
        settings.push((sysctl::net_conf_path(true, ifname, "ndisc_notify"), "1"));
        settings.push((
            sysctl::net_conf_path(true, ifname, "keep_addr_on_down"),
            "1",
        ));
    }
    for (path, value) in settings {
        if let Err(e) = sysctl::write_if_different(&path, value) {
            log_at!(Level::Warn, "sysctl {path}={value}: {e}");
        }
    }
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

/// Delete `name` in the namespace of `nl` if it is a macvlan; anything else of
/// that name is not ours to delete.
async fn delete_macvlan(nl: &Netlink, name: &str) -> Result<(), CniError> {
    let Some(link) = nl.link_by_name(name).await? else {
        return Ok(());
    };
    if link.kind.as_deref() != Some("macvlan") {
        log_at!(
            Level::Warn,
            "not deleting {name}: it is a {} link, not a macvlan mactrunk created",
            link.kind.as_deref().unwrap_or("unknown")
        );
        return Ok(());
    }
    match nl.delete(link.index).await {
        Ok(()) | Err(LinkError::NotFound(_)) => Ok(()),
        Err(e) => Err(CniError::from(e).context(format!("deleting {name}"))),
    }
}

fn del(req: &Request) -> Result<(), CniError> {
    let link_result = detach(req);
    // The address is released even when the link could not be deleted, so a
    // DEL never strands an address; the link error is still reported.
    let ipam_result = ipam_del(req);
    link_result.and(ipam_result)
}

/// Remove the container's link. A missing netns, a path that is no longer a
/// netns, or a missing link all mean there is nothing left to remove.
fn detach(req: &Request) -> Result<(), CniError> {
    if req.args.netns.is_empty() {
        return Ok(());
    }
    let netns = match NetNs::open(&req.args.netns) {
        Ok(ns) => ns,
        Err(NetnsError::NotExist(_)) | Err(NetnsError::NotNetns { .. }) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    if !req.args.netns_override && netns.same_as(&NetNs::current()?) {
        return Err(CniError::new(
            code::INVALID_NETNS,
            format!(
                "CNI_NETNS: {} is the plugin's own network namespace; refusing to delete {} there",
                req.args.netns, req.args.ifname
            ),
        ));
    }
    let rt = runtime()?;
    let _enter = rt.enter();
    let container = open_netlink_in(&rt, &netns)?;
    let tmp = temp_link_name(&req.args.container_id, &req.args.ifname);
    rt.block_on(async {
        delete_macvlan(&container, &req.args.ifname).await?;
        delete_macvlan(&container, &tmp).await
    })
}

fn check(req: &Request, conf: &PluginConfig) -> Result<(), CniError> {
    let prev = conf.prev_result.as_ref().ok_or_else(|| {
        CniError::config("prevResult", "CHECK needs the ADD result in prevResult")
    })?;
    let ifname = &req.args.ifname;
    let (index, _) = prev
        .interfaces
        .iter()
        .enumerate()
        .find(|(_, i)| &i.name == ifname && i.sandbox.as_deref() == Some(req.args.netns.as_str()))
        .ok_or_else(|| {
            CniError::new(
                code::CHECK_FAILED,
                format!(
                    "prevResult has no interface {ifname:?} in sandbox {}",
                    req.args.netns
                ),
            )
        })?;
    let expected: Vec<&crate::cni::IpConfig> = prev
        .ips
        .iter()
        .filter(|ip| ip.interface == Some(index))
        .collect();
    match &conf.ipam {
        IpamKind::None => {}
        IpamKind::InProcess => {
            let ips: Vec<IpAddr> = expected.iter().map(|ip| ip.address.ip()).collect();
            ipam::check(
                &IpamConfig::from_netconf(&req.conf, &req.args.args)?,
                &owner(req),
                &ips,
            )?;
        }
        IpamKind::Delegate(t) => {
            delegate::exec(t, &req.args.path, Command::Check, &req.raw)?;
        }
    }
    let netns = open_container_netns(req)?;
    let rt = runtime()?;
    let _enter = rt.enter();
    let host = Netlink::open()?;
    let container = open_netlink_in(&rt, &netns)?;
    let mismatch = |what: String| {
        CniError::new(
            code::CHECK_FAILED,
            format!("{ifname} in {}: {what}", req.args.netns),
        )
    };
    rt.block_on(async {
        let master_nl = if conf.link_in_container {
            &container
        } else {
            &host
        };
        let master = resolve_master(master_nl, conf, "network namespace of the master").await?;
        let link = container
            .link_by_name(ifname)
            .await?
            .ok_or_else(|| mismatch("interface not found".into()))?;
        if link.kind.as_deref() != Some("macvlan") {
            return Err(mismatch(format!(
                "is a {:?} link, not a macvlan",
                link.kind
            )));
        }
        if link.macvlan_mode != Some(conf.mode) {
            return Err(mismatch(format!(
                "macvlan mode is {:?}, config says {:?}",
                link.macvlan_mode, conf.mode
            )));
        }
        if !conf.link_in_container && link.parent_index.is_some_and(|p| p != master.index) {
            // IFLA_LINK of a link in another netns is an index in the parent's netns.
            return Err(mismatch(format!(
                "its parent is no longer {:?}",
                master.name
            )));
        }
        if let Some(want) = prev.interfaces[index].mac.as_deref() {
            let have = link.mac.map(|m| format_mac(&m)).unwrap_or_default();
            if !want.eq_ignore_ascii_case(&have) {
                return Err(mismatch(format!("MAC is {have}, prevResult says {want}")));
            }
        }
        let have_addrs = container.addresses(link.index).await?;
        for ip in &expected {
            if !have_addrs.iter().any(|(a, _)| *a == ip.address) {
                return Err(mismatch(format!("address {} is missing", ip.address)));
            }
        }
        let have_routes = container.routes(link.index).await?;
        for r in &prev.routes {
            let fam_ok = expected
                .iter()
                .any(|ip| ip.address.is_ipv4() == r.dst.is_ipv4());
            if fam_ok && !have_routes.iter().any(|h| h.dst == r.dst) {
                return Err(mismatch(format!("route to {} is missing", r.dst)));
            }
        }
        Ok(())
    })
}

/// `cni.dev/valid-attachments` (or the legacy `cni.dev/attachments`) as owners.
/// None when the runtime sent neither: GC then releases nothing.
pub fn valid_attachments(conf: &Value) -> Result<Option<Vec<Owner>>, CniError> {
    let (key, list) = match (
        conf.get("cni.dev/valid-attachments"),
        conf.get("cni.dev/attachments"),
    ) {
        (Some(v), _) => ("cni.dev/valid-attachments", v),
        (None, Some(v)) => ("cni.dev/attachments", v),
        (None, None) => return Ok(None),
    };
    let arr = list
        .as_array()
        .ok_or_else(|| CniError::config(key, "expected a list of {containerID, ifname}"))?;
    let mut out = Vec::with_capacity(arr.len());
    for (i, a) in arr.iter().enumerate() {
        let field = |f: &str| {
            a.get(f)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| {
                    CniError::config(&format!("{key}[{i}].{f}"), "missing or not a string")
                })
        };
        out.push(Owner {
            container_id: field("containerID")?,
            ifname: field("ifname")?,
        });
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn temp_names_are_stable_short_and_distinct() {
        let a = temp_link_name("abc", "eth0");
        assert_eq!(a, temp_link_name("abc", "eth0"));
        assert_eq!(a.len(), 10);
        assert_ne!(a, temp_link_name("abc", "eth1"));
        assert_ne!(temp_link_name("ab", "ceth0"), temp_link_name("abc", "eth0"));
    }

    #[test]
    fn valid_attachments_keys() {
        assert_eq!(valid_attachments(&json!({})).unwrap(), None);
        let v = valid_attachments(
            &json!({"cni.dev/attachments": [{"containerID": "a", "ifname": "eth0"}]}),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            v,
            vec![Owner {
                container_id: "a".into(),
                ifname: "eth0".into()
            }]
        );
        let v = valid_attachments(&json!({"cni.dev/valid-attachments": [], "cni.dev/attachments": [{"containerID": "a", "ifname": "e"}]}))
            .unwrap()
            .unwrap();
        assert!(v.is_empty(), "the new key wins");
        let e = valid_attachments(&json!({"cni.dev/valid-attachments": [{"containerID": 1}]}))
            .unwrap_err();
        assert!(
            e.msg
                .starts_with("cni.dev/valid-attachments[0].containerID"),
            "{}",
            e.msg
        );
    }

    #[test]
    fn result_merges_prev_result_and_dns() {
        let req = Request {
            command: Command::Add,
            args: crate::cni::env::CmdArgs {
                container_id: "c".into(),
                netns: "/run/netns/c".into(),
                ifname: "net1".into(),
                ..Default::default()
            },
            raw: vec![],
            conf: json!({}),
            version: crate::cni::Version::V1_1_0,
            name: "n".into(),
        };
        let mut conf = PluginConfig::parse(
            &json!({"cniVersion": "1.1.0", "name": "n", "dns": {"nameservers": ["1.1.1.1"]},
                    "prevResult": {"cniVersion": "1.1.0", "interfaces": [{"name": "eth0"}],
                                   "ips": [{"address": "10.9.0.2/24", "interface": 0}]}}),
            &Default::default(),
        )
        .unwrap();
        conf.ipam = IpamKind::InProcess;
        let ipam_out = CniOutput::from_json(
            &json!({"cniVersion": "1.1.0", "ips": [{"address": "10.0.0.2/24", "gateway": "10.0.0.1"}],
                    "dns": {"nameservers": ["9.9.9.9"], "search": ["corp"]}}),
            crate::cni::Version::V1_1_0,
        )
        .unwrap();
        let out = build_result(
            &req,
            &conf,
            ipam_out,
            Attached {
                mac: "02:00:00:00:00:01".into(),
                mtu: 1500,
            },
        );
        assert_eq!(out.interfaces.len(), 2);
        assert_eq!(out.interfaces[1].name, "net1");
        assert_eq!(out.ips[1].interface, Some(1));
        assert_eq!(out.dns.nameservers, vec!["1.1.1.1"]);
        assert_eq!(out.dns.search, vec!["corp"]);
    }
}
