//! The `mactrunk` plugin: the order of ADD, DEL, CHECK, GC and STATUS, and the
//! rollback of a failed ADD. Kernel work goes through `link`, `netns`,
//! `sysctl` and `announce`; addresses through `ipam` or a delegate.

pub mod config;
pub(crate) mod vlan;
pub(crate) mod vlan_registry;

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ipnetwork::IpNetwork;
use serde_json::Value;

use crate::cni::env::Command;
use crate::cni::gc::valid_attachments;
use crate::cni::netconf::IpamKind;
use crate::cni::skel::{Plugin, Request};
use crate::cni::{CniError, CniOutput, Interface, code};
use crate::ipam::delegate;
use crate::ipam::store::Owner;
use crate::ipam::{self, IpamConfig, StoreLocation};
use crate::sys::log::Level;
use crate::sys::log::log_at;
use crate::sys::netlink::{AddrFlags, LinkError, LinkInfo, MacvlanSpec, Netlink, format_mac};
use crate::sys::netns::{self, NetNs, NetnsError};
use crate::sys::sysctl;
use config::{DadPolicy, PluginConfig};
use vlan::VlanParent;
use vlan_registry::{VlanUser, VlanWant};

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
        let valid: Option<Vec<Owner>> =
            valid_attachments(&req.conf)?.map(|list| list.iter().map(Owner::from).collect());
        // VLAN parents first (no list: nothing is released, as for addresses).
        let vlan_result = match &valid {
            Some(v) => vlan_gc(req, v),
            None => Ok(()),
        };
        let kind = crate::cni::netconf::parse_ipam_kind(obj(&req.conf)?)?;
        let ipam_result = match kind {
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
        };
        vlan_result.and(ipam_result)
    }

    fn status(&self, req: &Request) -> Result<(), CniError> {
        let conf = PluginConfig::parse(&req.conf, &req.args.args)?;
        init_log(&conf);
        if !conf.link_in_container {
            let rt = runtime()?;
            rt.block_on(async {
                let host = Netlink::open()?;
                let parent = resolve_parent(&host, &conf, "host network namespace").await;
                let parent = parent.map_err(|e| CniError::new(code::NOT_AVAILABLE, e.msg))?;
                vlan_status(req, &parent)
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

fn runtime() -> Result<tokio::runtime::Runtime, CniError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| CniError::internal(format!("cannot start the netlink runtime: {e}")))
}

fn owner(req: &Request) -> Owner {
    Owner::of(&req.args)
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

/// The link the macvlan sits on, as the config names it.
#[derive(Debug)]
enum Parent {
    /// An existing link, used as it is (`master`, or the default route's link).
    Plain(LinkInfo),
    /// A VLAN sub-interface of `lower` that mactrunk creates when `link` is
    /// None (`master` + `vlan`, or a dotted `master` naming no link).
    Vlan {
        want: VlanWant,
        lower: LinkInfo,
        link: Option<LinkInfo>,
    },
}

/// Resolve `master` / `vlan` in the namespace `nl` is bound to. A dotted
/// `master` that names an existing link is that link, as before; only when
/// no such link exists is it read as `<lower>.<vid>`.
async fn resolve_parent(
    nl: &Netlink,
    conf: &PluginConfig,
    where_: &str,
) -> Result<Parent, CniError> {
    if let Some(v) = &conf.vlan {
        if conf.link_in_container {
            return Err(CniError::config(
                "vlan",
                "VLAN parents are not supported with linkInContainer (create the VLAN link in that namespace and name it in master)",
            ));
        }
        let lower = resolve_master(nl, conf, where_).await?;
        let parent = VlanParent::new(&lower.name, v.id);
        let link = nl.link_by_name(&parent.link_name).await?;
        return Ok(Parent::Vlan {
            want: VlanWant {
                parent,
                protocol: v.protocol,
                key: "vlan",
            },
            lower,
            link,
        });
    }
    if let Some(m) = conf.master.as_deref()
        && !conf.link_in_container
        && let Some((lower_name, vid)) = vlan::split_dotted(m)
    {
        if let Some(existing) = nl.link_by_name(m).await? {
            return Ok(Parent::Plain(existing));
        }
        let lower = nl.link_by_name(lower_name).await?.ok_or_else(|| {
            CniError::config(
                "master",
                format!(
                    "interface {m:?} not found in the {where_}, and neither is {lower_name:?} to create it as VLAN {vid} on"
                ),
            )
        })?;
        let parent = VlanParent::new(&lower.name, vid);
        let link = nl.link_by_name(&parent.link_name).await?;
        return Ok(Parent::Vlan {
            want: VlanWant {
                parent,
                protocol: crate::sys::netlink::VlanProtocol::Dot1Q,
                key: "master",
            },
            lower,
            link,
        });
    }
    resolve_master(nl, conf, where_).await.map(Parent::Plain)
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

/// DEL / rollback: this attachment no longer uses a VLAN parent; deletes the
/// ones mactrunk created that nobody else uses. Config-independent beyond
/// the dataDir.
fn vlan_release(req: &Request) -> Result<(), CniError> {
    let (data_dir, timeout) = match vlan_registry_location(&req.conf) {
        Ok(l) => l,
        Err(e) => {
            log_at!(Level::Debug, "no VLAN registry to look at: {e}");
            return Ok(());
        }
    };
    if !vlan_registry::dir_in(&data_dir).is_dir() {
        return Ok(());
    }
    let rt = runtime()?;
    let _enter = rt.enter();
    let user = vlan_user(req);
    rt.block_on(vlan_registry::release(
        || Netlink::open().map_err(CniError::from),
        &data_dir,
        timeout,
        &user,
    ))
}

fn vlan_gc(req: &Request, valid: &[Owner]) -> Result<(), CniError> {
    // Lenient like DEL: a config whose ipam.dataDir is not ours to read (a
    // delegated IPAM) has no VLAN registry, and must not make GC fail.
    let (data_dir, timeout) = match vlan_registry_location(&req.conf) {
        Ok(l) => l,
        Err(e) => {
            log_at!(Level::Debug, "no VLAN registry to look at: {e}");
            return Ok(());
        }
    };
    let rt = runtime()?;
    let _enter = rt.enter();
    let deleted = rt.block_on(vlan_registry::gc(
        || Netlink::open().map_err(CniError::from),
        &data_dir,
        timeout,
        &req.name,
        valid,
    ))?;
    if deleted > 0 {
        log_at!(
            Level::Info,
            "GC network={} deleted {deleted} unused VLAN parent(s)",
            req.name
        );
    }
    Ok(())
}

/// STATUS for a VLAN parent: a conflicting link is 50; a VLAN link
/// mactrunk created that is down is 51. A missing one is fine (ADD creates it).
fn vlan_status(req: &Request, parent: &Parent) -> Result<(), CniError> {
    let Parent::Vlan { want, lower, link } = parent else {
        return Ok(());
    };
    let Some(link) = link else {
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
            let undo = IpamUndo::Delegate(t.clone());
            let parsed = CniOutput::from_json(&out, conf.cni_version)
                .and_then(|out| out.check_expressible(conf.cni_version).map(|()| out));
            match parsed {
                Ok(out) => Ok((out, undo)),
                Err(e) => {
                    // The delegate allocated: give the addresses back.
                    ipam_rollback(req, undo);
                    Err(e.context(format!("ipam plugin {t:?} result")))
                }
            }
        }
    }
}

/// Undo [`ipam_add`] after a later step of ADD failed (best effort, logged).
fn ipam_rollback(req: &Request, undo: IpamUndo) {
    let r = match undo {
        IpamUndo::Nothing => Ok(()),
        IpamUndo::Fresh(loc, fresh) => ipam::release_fresh(&loc, &owner(req), &fresh),
        IpamUndo::Delegate(t) => {
            delegate::exec(&t, &req.args.path, Command::Del, &req.raw).map(|_| ())
        }
    };
    if let Err(e) = r {
        log_at!(Level::Warn, "rollback: releasing addresses failed: {e}");
    }
}

/// Release addresses; needs as little of the config as possible.
fn ipam_del(req: &Request) -> Result<(), CniError> {
    match crate::cni::netconf::parse_ipam_kind(obj(&req.conf)?)? {
        IpamKind::None => Ok(()),
        IpamKind::InProcess => ipam::del(&StoreLocation::from_netconf(&req.conf)?, &owner(req)),
        IpamKind::Delegate(t) => {
            delegate::exec(&t, &req.args.path, Command::Del, &req.raw).map(|_| ())
        }
    }
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

/// What the container side of ADD produced.
struct Attached {
    mac: String,
    mtu: u32,
}

/// The handles ADD works with once the pre-flight checks passed.
struct Attachment<'a> {
    req: &'a Request,
    conf: &'a PluginConfig,
    rt: &'a tokio::runtime::Runtime,
    netns: &'a NetNs,
    container: &'a Netlink,
    /// The connection of the namespace the master lives in.
    master_nl: &'a Netlink,
    master: LinkInfo,
}

fn add(req: &Request, conf: &PluginConfig) -> Result<CniOutput, CniError> {
    let ifname = &req.args.ifname;
    let netns = open_container_netns(req)?;
    let rt = runtime()?;
    let _enter = rt.enter();
    let host = Netlink::open()?;
    let container = open_netlink_in(&rt, &netns)?;

    // Everything that can fail without side effects comes first.
    let (parent, master_nl) = if conf.link_in_container {
        let where_ = "container network namespace";
        (
            rt.block_on(resolve_parent(&container, conf, where_))?,
            &container,
        )
    } else {
        let where_ = "host network namespace";
        (rt.block_on(resolve_parent(&host, conf, where_))?, &host)
    };
    // The MTU the macvlan's parent has (or, for a VLAN link still to be
    // created, will inherit from its lower link).
    let (parent_mtu, parent_name) = match &parent {
        Parent::Plain(l) => (l.mtu, format!("master {:?}", l.name)),
        Parent::Vlan { want, lower, link } => {
            if let Some(l) = link
                && let Some(why) = vlan::mismatch(&want.parent, want.protocol, lower.index, l)
            {
                return Err(CniError::config(want.key, why));
            }
            let mtu = link.as_ref().map_or(lower.mtu, |l| l.mtu);
            (mtu, format!("VLAN parent {:?}", want.parent.link_name))
        }
    };
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
    if rt.block_on(container.link_by_name(ifname))?.is_some() {
        return Err(ifname_taken(req));
    }

    let (ipam_out, ipam_undo) = ipam_add(req, conf, &netns)?;
    // The VLAN parent, now that the addresses are there (undone with them).
    let mut vlan_user_added = false;
    let master = match parent {
        Parent::Plain(l) => l,
        Parent::Vlan { want, .. } => {
            let (data_dir, timeout) = vlan_loc.expect("computed for VLAN parents");
            let user = vlan_user(req);
            match rt.block_on(vlan_registry::ensure(
                &host, &data_dir, timeout, &want, &user,
            )) {
                Ok(e) => {
                    vlan_user_added = e.owned;
                    vlan_registry::crash_point("after-vlan");
                    e.link
                }
                Err(e) => {
                    ipam_rollback(req, ipam_undo);
                    return Err(e);
                }
            }
        }
    };
    let attachment = Attachment {
        req,
        conf,
        rt: &rt,
        netns: &netns,
        container: &container,
        master_nl,
        master,
    };
    let mut created = None;
    match attachment.attach(&ipam_out, &mut created) {
        Ok(attached) => Ok(build_result(req, conf, ipam_out, attached)),
        Err(e) => {
            // Undo in reverse: the link (by the ifindex this ADD created, never
            // by name), then the addresses.
            if let Some(index) = created {
                match rt.block_on(container.delete(index)) {
                    Ok(()) | Err(LinkError::NotFound(_)) => {}
                    Err(de) => log_at!(Level::Warn, "rollback: deleting {ifname} failed: {de}"),
                }
            }
            if vlan_user_added && let Err(ve) = vlan_release(req) {
                log_at!(
                    Level::Warn,
                    "rollback: releasing the VLAN parent failed: {ve}"
                );
            }
            ipam_rollback(req, ipam_undo);
            Err(e)
        }
    }
}

impl Attachment<'_> {
    /// Create and configure the container's link. `created` is set to the
    /// link's ifindex in the container as soon as it exists, so the caller
    /// rolls back exactly that link (never whatever carries the name).
    fn attach(
        &self,
        ipam_out: &CniOutput,
        created: &mut Option<u32>,
    ) -> Result<Attached, CniError> {
        let (req, conf, rt, container) = (self.req, self.conf, self.rt, self.container);
        let ifname = req.args.ifname.as_str();
        let spec = MacvlanSpec {
            name: ifname,
            parent: self.master.index,
            mode: conf.mode,
            mtu: conf.mtu,
            mac: conf.mac,
            bcqueuelen: conf.bcqueuelen,
            netns: if conf.link_in_container {
                None
            } else {
                Some(self.netns)
            },
        };
        let tag = link_tag(&req.name, &req.args.container_id);
        let index = rt
            .block_on(create_tagged(self.master_nl, container, &spec, &tag))
            .map_err(|e| match e {
                LinkError::Exists(_) => ifname_taken(req),
                // Names the config key already.
                e @ LinkError::Invalid(_) => CniError::from(e),
                other => CniError::from(other)
                    .context(format!("creating macvlan on {:?}", self.master.name)),
            })?;
        *created = Some(index);

        let has_v4 = ipam_out.ips.iter().any(|ip| ip.address.is_ipv4());
        let has_v6 = ipam_out.ips.iter().any(|ip| ip.address.is_ipv6());
        netns::run_in(self.netns, || {
            configure_sysctls(ifname, conf, has_v4, has_v6)
        })?;

        let flags = AddrFlags {
            nodad: conf.ipv6_dad == DadPolicy::Off,
            optimistic: conf.ipv6_dad == DadPolicy::Optimistic,
        };
        rt.block_on(async {
            // Addresses before the link goes up, so that the kernel announces
            // them (arp_notify); routes after, since a gateway route needs it up.
            for ip in &ipam_out.ips {
                container
                    .add_address(index, ip.address, flags)
                    .await
                    .map_err(|e| {
                        CniError::from(e).context(format!("adding {} to {ifname}", ip.address))
                    })?;
            }
            container.set_up(index).await?;
            for route in &ipam_out.routes {
                let gw = route.gw.or_else(|| family_gateway(ipam_out, route.dst));
                match container.add_route(index, route, gw).await {
                    // A second attachment of the same network (eth0, net1) brings
                    // the same default route: the first one wins, as with the
                    // reference plugins.
                    Err(LinkError::Exists(what)) => {
                        log_at!(Level::Info, "keeping the existing {what}");
                    }
                    other => other.map_err(|e| {
                        CniError::from(e)
                            .context(format!("adding route to {} on {ifname}", route.dst))
                    })?,
                }
            }
            if has_v6 && conf.ipv6_dad == DadPolicy::Wait {
                container.wait_dad(index, DAD_TIMEOUT).await?;
            }
            Ok::<(), CniError>(())
        })?;
        let info = rt
            .block_on(container.link_by_index(index))?
            .ok_or_else(|| {
                CniError::kernel(format!("{ifname} vanished from {}", req.args.netns))
            })?;
        Ok(Attached {
            mac: format_mac(&info.mac.unwrap_or_default()),
            mtu: info.mtu,
        })
    }
}

/// Attempts at a free temporary name (a clash needs a host link that happens
/// to carry one of our random names).
const TEMP_NAME_ATTEMPTS: usize = 4;

/// Create the container's macvlan under `spec.name`, tag it, and return its
/// ifindex in the container.
///
/// The link is created directly inside the container netns (IFLA_NET_NS_FD):
/// that is 10x cheaper than creating it on the host and moving it. But
/// kernels before ~6.14 check IFLA_IFNAME in the *sender's* netns as well,
/// so on Debian 12, Ubuntu and RHEL a host link called like CNI_IFNAME (the
/// host's own eth0) makes the create fail with EEXIST though the container
/// has no such link. Then, and only then, the link is created under a random
/// temporary name and renamed inside the container, where only the
/// container's names count. A new kernel, or a host without such a name,
/// takes the direct path. The tag goes with the rename (or right after the
/// direct create), before anything else touches the link.
async fn create_tagged(
    master_nl: &Netlink,
    container: &Netlink,
    spec: &MacvlanSpec<'_>,
    tag: &str,
) -> Result<u32, LinkError> {
    let name = spec.name;
    match master_nl.create_macvlan(spec).await {
        Ok(()) => {
            let index = created_index(container, name, spec).await?;
            if let Err(e) = container.rename(index, None, Some(tag)).await {
                discard(container, index).await;
                return Err(e);
            }
            return Ok(index);
        }
        // Created in the master's own netns (linkInContainer): a real clash.
        Err(e @ LinkError::Exists(_)) if spec.netns.is_none() => return Err(e),
        // The container has the name: a real clash.
        Err(LinkError::Exists(what)) if container.link_by_name(name).await?.is_some() => {
            return Err(LinkError::Exists(what));
        }
        Err(LinkError::Exists(_)) => {
            log_at!(
                Level::Debug,
                "{name} exists in the sender's netns (kernel before 6.14): creating under a temporary name"
            );
        }
        Err(e) => return Err(e),
    }
    let mut last = None;
    for _ in 0..TEMP_NAME_ATTEMPTS {
        let temp = temp_link_name();
        let temp_spec = MacvlanSpec {
            name: &temp,
            ..spec.clone()
        };
        match master_nl.create_macvlan(&temp_spec).await {
            Ok(()) => {
                let index = created_index(container, &temp, spec).await?;
                return match container.rename(index, Some(name), Some(tag)).await {
                    Ok(()) => Ok(index),
                    Err(e) => {
                        discard(container, index).await;
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

/// The ifindex of the link we just created as `name` in the container,
/// once it is clear that the kernel did what `spec` asked.
async fn created_index(
    container: &Netlink,
    name: &str,
    spec: &MacvlanSpec<'_>,
) -> Result<u32, LinkError> {
    let Some(link) = container.link_by_name(name).await? else {
        return Err(LinkError::NotFound(format!(
            "macvlan {name} right after its creation"
        )));
    };
    if let Some(why) = ignored_by_kernel(spec, &link) {
        discard(container, link.index).await;
        return Err(LinkError::Invalid(why));
    }
    Ok(link.index)
}

/// An attribute of `spec` that the kernel silently dropped (older kernels
/// skip attributes they do not know), as a message naming the config key.
fn ignored_by_kernel(spec: &MacvlanSpec<'_>, created: &LinkInfo) -> Option<String> {
    match spec.bcqueuelen {
        Some(want) if created.macvlan_bcqueuelen != Some(want) => Some(format!(
            "bcqueuelen: the running kernel ({}) ignored it: the macvlan broadcast queue length needs Linux 5.11 or later",
            crate::sys::sysctl::kernel_release()
        )),
        _ => None,
    }
}

/// Best-effort removal of a link this ADD created and could not finish.
async fn discard(nl: &Netlink, index: u32) {
    if let Err(e) = nl.delete(index).await
        && !e.is_not_found()
    {
        log_at!(
            Level::Warn,
            "rollback: deleting link index {index} failed: {e}"
        );
    }
}

/// `mt` + 8 random hex digits: never a name a runtime or host would use.
fn temp_link_name() -> String {
    let mut buf = [0u8; 4];
    // SAFETY: getrandom writes at most buf.len() bytes into buf.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), libc::GRND_NONBLOCK) };
    let mut v = u32::from_ne_bytes(buf);
    if n != buf.len() as isize {
        // No entropy yet (early boot): pid and clock are unique enough for
        // a name that only has to differ from the host's links.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        v = nanos ^ std::process::id().rotate_left(16);
    }
    format!("mt{v:08x}")
}

/// IFALIASZ - 1: the longest alias the kernel keeps.
const MAX_TAG: usize = 255;

/// The tag (IFLA_IFALIAS) of the container link of one attachment:
/// `mactrunk:<network>:<containerID>`. DEL and CHECK act only on a link that
/// carries it, so one network never deletes another network's (or another
/// plugin's) interface of the same name. Too long for the kernel's 255
/// bytes, it becomes `mactrunk:#` + a 64-bit FNV-1a hash of both.
pub fn link_tag(network: &str, container_id: &str) -> String {
    let full = format!("mactrunk:{network}:{container_id}");
    if full.len() <= MAX_TAG {
        return full;
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in network.bytes().chain([0]).chain(container_id.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("mactrunk:#{h:016x}")
}

/// The gateway of the first address in the route's family, as the reference
/// `ConfigureIface` does for routes without `gw`.
fn family_gateway(out: &CniOutput, dst: IpNetwork) -> Option<IpAddr> {
    out.ips
        .iter()
        .filter(|ip| ip.address.is_ipv4() == dst.is_ipv4())
        .find_map(|ip| ip.gateway)
}

/// Runs inside the container netns, before the link goes up. Failures are
/// logged, not fatal: a kernel without IPv6 has no such files.
fn configure_sysctls(ifname: &str, conf: &PluginConfig, has_v4: bool, has_v6: bool) {
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

/// Delete `name` in the namespace of `nl` if this attachment created it: a
/// macvlan carrying the attachment's tag. A link of that name made by
/// anyone else (another network's ADD into the same netns, another plugin,
/// the runtime) is not ours to delete. One exception: an ADD killed between
/// creating the link and tagging it (a few netlink round trips) leaves an
/// untagged macvlan that is still down and has no address; nobody can be
/// using such a link, and only DEL can clear the name for the retried ADD.
async fn delete_own_link(nl: &Netlink, name: &str, tag: &str) -> Result<(), CniError> {
    let Some(link) = nl.link_by_name(name).await? else {
        return Ok(());
    };
    if let Some(why) = not_ours(&link, tag) {
        let blank = link.kind.as_deref() == Some("macvlan")
            && link.alias.is_none()
            && !link.up
            && nl.addresses(link.index).await?.is_empty();
        if !blank {
            log_at!(Level::Info, "not deleting {name}: {why}");
            return Ok(());
        }
        log_at!(
            Level::Info,
            "deleting {name}: an untagged, down macvlan without addresses (left by a killed ADD)"
        );
    }
    match nl.delete(link.index).await {
        Ok(()) | Err(LinkError::NotFound(_)) => Ok(()),
        Err(e) => Err(CniError::from(e).context(format!("deleting {name}"))),
    }
}

/// Why `link` is not the link this attachment created (None: it is).
fn not_ours(link: &LinkInfo, tag: &str) -> Option<String> {
    if link.kind.as_deref() != Some("macvlan") {
        return Some(format!(
            "it is a {} link, not a macvlan mactrunk created",
            link.kind.as_deref().unwrap_or("physical or unknown")
        ));
    }
    match link.alias.as_deref() {
        Some(a) if a == tag => None,
        Some(a) => Some(format!("its tag {a:?} is not {tag:?}")),
        None => Some(format!("it carries no mactrunk tag ({tag:?} expected)")),
    }
}

fn del(req: &Request) -> Result<(), CniError> {
    let link_result = detach(req);
    // The VLAN parent and the address are released even when the link could
    // not be deleted, so a DEL never strands them; the error is still reported.
    let vlan_result = vlan_release(req);
    let ipam_result = ipam_del(req);
    link_result.and(vlan_result).and(ipam_result)
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
    let tag = link_tag(&req.name, &req.args.container_id);
    rt.block_on(delete_own_link(&container, &req.args.ifname, &tag))
}

fn check(req: &Request, conf: &PluginConfig) -> Result<(), CniError> {
    let netns = open_container_netns(req)?;
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
        let master = match resolve_parent(master_nl, conf, "network namespace of the master")
            .await?
        {
            Parent::Plain(l) => l,
            Parent::Vlan { want, lower, link } => {
                let name = &want.parent.link_name;
                let link = link.ok_or_else(|| {
                    CniError::new(
                        code::CHECK_FAILED,
                        format!("VLAN parent {name:?} of {ifname} is missing"),
                    )
                })?;
                if let Some(why) = vlan::mismatch(&want.parent, want.protocol, lower.index, &link) {
                    return Err(CniError::new(
                        code::CHECK_FAILED,
                        format!("VLAN parent of {ifname}: {why}"),
                    ));
                }
                link
            }
        };
        let link = container
            .link_by_name(ifname)
            .await?
            .ok_or_else(|| mismatch("interface not found".into()))?;
        if let Some(why) = not_ours(&link, &link_tag(&req.name, &req.args.container_id)) {
            return Err(mismatch(format!(
                "not the link this attachment created: {why}"
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
        let have_routes = container.all_routes().await?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn link_tags_name_network_and_container() {
        assert_eq!(link_tag("lan", "abc"), "mactrunk:lan:abc");
        assert_ne!(link_tag("lan", "abc"), link_tag("lan2", "abc"));
        let long = "x".repeat(300);
        let t = link_tag("lan", &long);
        assert!(t.len() <= MAX_TAG && t.starts_with("mactrunk:#"), "{t}");
        assert_eq!(t, link_tag("lan", &long), "deterministic");
        assert_ne!(t, link_tag("lan2", &long));
        // The separator keeps (a, bc) and (ab, c) apart.
        assert_ne!(link_tag("a", &format!("b{long}")), link_tag("ab", &long));
    }

    #[test]
    fn only_a_tagged_macvlan_is_ours() {
        let tag = link_tag("lan", "abc");
        let mut l = LinkInfo {
            kind: Some("macvlan".into()),
            alias: Some(tag.clone()),
            ..LinkInfo::default()
        };
        assert_eq!(not_ours(&l, &tag), None);
        l.alias = Some(link_tag("other", "abc"));
        assert!(not_ours(&l, &tag).unwrap().contains("mactrunk:other:abc"));
        l.alias = None;
        assert!(not_ours(&l, &tag).unwrap().contains("no mactrunk tag"));
        l.alias = Some(tag.clone());
        l.kind = Some("veth".into());
        assert!(not_ours(&l, &tag).unwrap().contains("veth"));
    }

    #[test]
    fn a_dropped_bcqueuelen_is_a_config_error() {
        let spec = MacvlanSpec {
            name: "eth0",
            parent: 2,
            mode: crate::sys::netlink::MacvlanMode::Bridge,
            mtu: None,
            mac: None,
            bcqueuelen: Some(2000),
            netns: None,
        };
        let mut made = LinkInfo {
            macvlan_bcqueuelen: Some(2000),
            ..LinkInfo::default()
        };
        assert_eq!(ignored_by_kernel(&spec, &made), None);
        made.macvlan_bcqueuelen = None; // a kernel before 5.11
        let why = ignored_by_kernel(&spec, &made).unwrap();
        assert!(
            why.starts_with("bcqueuelen: ") && why.contains("5.11"),
            "{why}"
        );
        let e = CniError::from(LinkError::Invalid(why));
        assert_eq!(e.code, code::INVALID_CONFIG);
        let plain = MacvlanSpec {
            bcqueuelen: None,
            ..spec
        };
        assert_eq!(ignored_by_kernel(&plain, &made), None);
    }

    #[test]
    fn temp_names_are_valid_and_distinct() {
        let a = temp_link_name();
        let b = temp_link_name();
        assert_ne!(a, b);
        for n in [&a, &b] {
            assert!(
                crate::cni::names::interface_name_problem(n).is_none(),
                "{n}"
            );
            assert!(n.starts_with("mt") && n.len() == 10, "{n}");
        }
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
