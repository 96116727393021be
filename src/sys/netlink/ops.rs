//! The kernel as the plugin logic sees it: [`LinkOps`], a small synchronous
//! trait for the link, address, route and sysctl operations of one network
//! namespace. [`Kernel`] implements it over rtnetlink on one tokio
//! `current_thread` runtime, so no async code and no runtime leaks into the
//! logic; `fake::FakeNet` implements it in memory for unit tests of the
//! rollback paths (youki's `network/fake.rs` is the model).

use std::cell::{OnceCell, RefCell};
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use ipnetwork::IpNetwork;

use super::{
    AddrFlags, HostRoute, LinkError, LinkInfo, LinkSpec, Neighbour, Netlink, VlanProtocol,
};
use crate::cni::Route;
use crate::sys::arp::{self, ArpSocket};
use crate::sys::netns::{NetNs, NsThread};
use crate::sys::sysctl;

/// One sysctl of a link's namespace: path under /proc/sys and value.
pub type Sysctl = (String, &'static str);

/// What the plugin asks of one network namespace. Every method is one or a
/// few netlink round trips; errors name the link and the namespace.
pub trait LinkOps {
    /// "host network namespace" or "container network namespace /run/netns/x".
    fn label(&self) -> &str;
    fn link_by_name(&self, name: &str) -> Result<Option<LinkInfo>, LinkError>;
    fn link_by_index(&self, index: u32) -> Result<Option<LinkInfo>, LinkError>;
    /// The output link of the main table's default route (IPv4 first).
    fn default_route_link(&self) -> Result<Option<LinkInfo>, LinkError>;
    /// Create a macvlan or ipvlan on `spec.parent` (an index in this
    /// namespace), inside `spec.netns` when given. EEXIST is
    /// [`LinkError::Exists`]; other refusals keep their errno (EBUSY: the
    /// parent's receive path is taken, e.g. by the other link type).
    fn create_link(&self, spec: &LinkSpec<'_>) -> Result<(), LinkError>;
    /// A new MAC for link `index` (RTM_NEWLINK with IFLA_ADDRESS).
    fn set_mac(&self, index: u32, mac: [u8; 6]) -> Result<(), LinkError>;
    fn create_vlan(
        &self,
        name: &str,
        parent: u32,
        vid: u16,
        protocol: VlanProtocol,
    ) -> Result<(), LinkError>;
    /// A new name and/or alias for link `index`, in one request.
    fn rename(
        &self,
        index: u32,
        new_name: Option<&str>,
        alias: Option<&str>,
    ) -> Result<(), LinkError>;
    fn set_up(&self, index: u32) -> Result<(), LinkError>;
    /// ENODEV is [`LinkError::NotFound`].
    fn delete(&self, index: u32) -> Result<(), LinkError>;
    fn add_address(&self, index: u32, addr: IpNetwork, flags: AddrFlags) -> Result<(), LinkError>;
    /// Addresses of link `index` with their IFA_F_* flags.
    fn addresses(&self, index: u32) -> Result<Vec<(IpNetwork, u32)>, LinkError>;
    /// Every address of this namespace (one dump): (link index, address).
    fn all_addresses(&self) -> Result<Vec<(u32, IpNetwork)>, LinkError>;
    /// `gw` is used when `route.gw` is None; EEXIST is [`LinkError::Exists`].
    fn add_route(&self, index: u32, route: &Route, gw: Option<IpAddr>) -> Result<(), LinkError>;
    /// Unicast routes of every table but `local`.
    fn routes(&self) -> Result<Vec<Route>, LinkError>;
    /// A host route: `dst`/32 (/128) out of link `index`, scope link, with
    /// `src` as preferred source, protocol [`super::RTPROT_MACTRUNK`].
    /// An existing route to `dst` (with the same metric, on any link) is
    /// [`LinkError::Exists`] and left alone.
    fn add_host_route(&self, index: u32, dst: IpAddr, src: Option<IpAddr>)
    -> Result<(), LinkError>;
    /// Delete the host route `dst` out of link `index`; missing is
    /// [`LinkError::NotFound`].
    fn delete_host_route(&self, index: u32, dst: IpAddr) -> Result<(), LinkError>;
    /// The routes of the main table out of link `index`.
    fn routes_of(&self, index: u32) -> Result<Vec<HostRoute>, LinkError>;
    /// Add or replace the permanent neighbour entry `ip` -> `mac` on link `index`.
    fn set_neighbour(&self, index: u32, ip: IpAddr, mac: [u8; 6]) -> Result<(), LinkError>;
    /// Delete neighbour `ip` of link `index`; missing is [`LinkError::NotFound`].
    fn delete_neighbour(&self, index: u32, ip: IpAddr) -> Result<(), LinkError>;
    /// The neighbour entries of link `index`.
    fn neighbours(&self, index: u32) -> Result<Vec<Neighbour>, LinkError>;
    /// Wait until no IPv6 address of `index` is tentative; a duplicate is
    /// [`LinkError::DadFailed`].
    fn wait_dad(&self, index: u32, timeout: Duration) -> Result<(), LinkError>;
    /// Write sysctls of this namespace (best effort: a key that does not
    /// exist, e.g. without IPv6, is skipped). Returns the keys that could not
    /// be written with why; an error only if the namespace could not be entered.
    fn write_sysctls(&self, settings: &[Sysctl]) -> Result<Vec<String>, LinkError>;
    /// RFC 5227 probes for `candidates` from link `index` (up, without
    /// those addresses) as `mac`, listening for `window`. Returns the
    /// conflicts: (address, MAC of the host that has it).
    fn arp_probe(
        &self,
        index: u32,
        mac: [u8; 6],
        candidates: &[Ipv4Addr],
        window: Duration,
    ) -> Result<Vec<(Ipv4Addr, [u8; 6])>, LinkError>;
    /// An ARP announcement (gratuitous ARP) of `ip` by `mac` from link `index`.
    fn arp_announce(&self, index: u32, mac: [u8; 6], ip: Ipv4Addr) -> Result<(), LinkError>;
}

/// The netlink side of one command: a `current_thread` runtime on this
/// thread, and connections bound to namespaces. A connection is opened on
/// its first use, so a command that ends up needing no kernel call (a DEL
/// with nothing to delete) opens no socket and spawns no thread.
pub struct Kernel {
    rt: tokio::runtime::Runtime,
}

impl Kernel {
    pub fn new() -> Result<Kernel, LinkError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|source| LinkError::Io {
                op: "start the netlink runtime".into(),
                source,
            })?;
        Ok(Kernel { rt })
    }

    /// The calling thread's namespace (the host's).
    pub fn host(&self) -> NsLinks<'_> {
        NsLinks {
            kernel: self,
            nl: OnceCell::new(),
            label: "host network namespace".into(),
            netns: None,
            thread: OnceCell::new(),
            arp: RefCell::new(None),
        }
    }

    /// The namespace `ns`: its socket is opened on the thread that works
    /// inside `ns` for this connection (an [`NsThread`], which also writes
    /// its sysctls) and keeps that namespace for its whole life, while this
    /// thread's runtime drives it, so no task ever crosses namespaces.
    pub fn netns<'a>(&'a self, ns: &'a NetNs) -> NsLinks<'a> {
        NsLinks {
            kernel: self,
            nl: OnceCell::new(),
            label: format!("container network namespace {}", ns.path()),
            netns: Some(ns),
            thread: OnceCell::new(),
            arp: RefCell::new(None),
        }
    }
}

/// [`LinkOps`] over one rtnetlink connection of a [`Kernel`], opened on
/// first use.
pub struct NsLinks<'a> {
    kernel: &'a Kernel,
    nl: OnceCell<Netlink>,
    label: String,
    /// The namespace of the socket and of sysctls; None: the calling thread's.
    netns: Option<&'a NetNs>,
    /// The one thread that works inside `netns` for this connection (its
    /// socket, sysctls, ARP socket), started on first need.
    thread: OnceCell<NsThread>,
    /// The ARP socket of the last link probed, kept for its announcements:
    /// closing one costs an RCU grace period, paid once when this is dropped.
    arp: RefCell<Option<ArpSocket>>,
}

impl NsLinks<'_> {
    /// Run `f` inside the namespace: on its thread, or here for the host's.
    fn inside<R: Send + 'static>(
        &self,
        op: impl Fn() -> String,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> Result<R, LinkError> {
        let Some(ns) = self.netns else {
            return Ok(f());
        };
        let thread = match self.thread.get() {
            Some(t) => t,
            None => {
                let started = NsThread::start(ns).map_err(|e| LinkError::Io {
                    op: op(),
                    source: io::Error::other(e.to_string()),
                })?;
                self.thread.get_or_init(|| started)
            }
        };
        thread.run(f).map_err(|e| LinkError::Io {
            op: op(),
            source: io::Error::other(e.to_string()),
        })
    }

    fn nl(&self) -> Result<&Netlink, LinkError> {
        if let Some(nl) = self.nl.get() {
            return Ok(nl);
        }
        let handle = self.kernel.rt.handle().clone();
        let opened = self.inside(
            || format!("open a netlink socket in the {}", self.label),
            move || {
                let _enter = handle.enter();
                Netlink::open()
            },
        )??;
        Ok(self
            .nl
            .get_or_init(|| opened.with_label(self.label.clone())))
    }

    /// Run `f` with an ARP socket bound to link `index`, opened (in this
    /// namespace) on first use.
    fn with_arp<T>(
        &self,
        index: u32,
        what: &str,
        f: impl FnOnce(&ArpSocket) -> io::Result<T>,
    ) -> Result<T, LinkError> {
        let io_err = |op: String, source: io::Error| LinkError::Io { op, source };
        let mut slot = self.arp.borrow_mut();
        if slot.as_ref().is_none_or(|s| s.index() != index) {
            let op = format!(
                "open an ARP socket on link index {index} in the {}",
                self.label
            );
            let opened = self.inside(|| op.clone(), move || ArpSocket::open(index))?;
            *slot = Some(opened.map_err(|e| io_err(op, e))?);
        }
        let sock = slot
            .as_ref()
            .ok_or_else(|| LinkError::Invalid("no ARP socket".into()))?;
        f(sock).map_err(|e| {
            io_err(
                format!("{what} on link index {index} in the {}", self.label),
                e,
            )
        })
    }

    fn run<'s, T, F>(&'s self, f: impl FnOnce(&'s Netlink) -> F) -> Result<T, LinkError>
    where
        F: Future<Output = Result<T, LinkError>>,
    {
        let nl = self.nl()?;
        self.kernel.rt.block_on(f(nl))
    }
}

impl LinkOps for NsLinks<'_> {
    fn label(&self) -> &str {
        &self.label
    }

    fn link_by_name(&self, name: &str) -> Result<Option<LinkInfo>, LinkError> {
        self.run(|nl| nl.link_by_name(name))
    }

    fn link_by_index(&self, index: u32) -> Result<Option<LinkInfo>, LinkError> {
        self.run(|nl| nl.link_by_index(index))
    }

    fn default_route_link(&self) -> Result<Option<LinkInfo>, LinkError> {
        self.run(|nl| nl.default_route_link())
    }

    fn create_link(&self, spec: &LinkSpec<'_>) -> Result<(), LinkError> {
        self.run(|nl| nl.create_link(spec))
    }

    fn set_mac(&self, index: u32, mac: [u8; 6]) -> Result<(), LinkError> {
        self.run(|nl| nl.set_mac(index, mac))
    }

    fn create_vlan(
        &self,
        name: &str,
        parent: u32,
        vid: u16,
        protocol: VlanProtocol,
    ) -> Result<(), LinkError> {
        self.run(|nl| nl.create_vlan(name, parent, vid, protocol))
    }

    fn rename(
        &self,
        index: u32,
        new_name: Option<&str>,
        alias: Option<&str>,
    ) -> Result<(), LinkError> {
        self.run(|nl| nl.rename(index, new_name, alias))
    }

    fn set_up(&self, index: u32) -> Result<(), LinkError> {
        self.run(|nl| nl.set_up(index))
    }

    fn delete(&self, index: u32) -> Result<(), LinkError> {
        self.run(|nl| nl.delete(index))
    }

    fn add_address(&self, index: u32, addr: IpNetwork, flags: AddrFlags) -> Result<(), LinkError> {
        self.run(|nl| nl.add_address(index, addr, flags))
    }

    fn addresses(&self, index: u32) -> Result<Vec<(IpNetwork, u32)>, LinkError> {
        self.run(|nl| nl.addresses(index))
    }

    fn all_addresses(&self) -> Result<Vec<(u32, IpNetwork)>, LinkError> {
        self.run(|nl| nl.all_addresses())
    }

    fn add_route(&self, index: u32, route: &Route, gw: Option<IpAddr>) -> Result<(), LinkError> {
        self.run(|nl| nl.add_route(index, route, gw))
    }

    fn routes(&self) -> Result<Vec<Route>, LinkError> {
        self.run(|nl| nl.all_routes())
    }

    fn wait_dad(&self, index: u32, timeout: Duration) -> Result<(), LinkError> {
        self.run(|nl| nl.wait_dad(index, timeout))
    }

    fn add_host_route(
        &self,
        index: u32,
        dst: IpAddr,
        src: Option<IpAddr>,
    ) -> Result<(), LinkError> {
        self.run(|nl| nl.add_host_route(index, dst, src))
    }

    fn delete_host_route(&self, index: u32, dst: IpAddr) -> Result<(), LinkError> {
        self.run(|nl| nl.delete_host_route(index, dst))
    }

    fn routes_of(&self, index: u32) -> Result<Vec<HostRoute>, LinkError> {
        let entries = self.run(|nl| nl.routes_of(index))?;
        Ok(entries
            .into_iter()
            .map(|e| HostRoute {
                dst: e.route.dst,
                src: e.prefsrc,
                protocol: e.protocol,
            })
            .collect())
    }

    fn set_neighbour(&self, index: u32, ip: IpAddr, mac: [u8; 6]) -> Result<(), LinkError> {
        self.run(|nl| nl.set_neighbour(index, ip, mac))
    }

    fn delete_neighbour(&self, index: u32, ip: IpAddr) -> Result<(), LinkError> {
        self.run(|nl| nl.delete_neighbour(index, ip))
    }

    fn neighbours(&self, index: u32) -> Result<Vec<Neighbour>, LinkError> {
        self.run(|nl| nl.neighbours(index))
    }

    fn write_sysctls(&self, settings: &[Sysctl]) -> Result<Vec<String>, LinkError> {
        let settings = settings.to_vec();
        self.inside(
            || format!("write sysctls in the {}", self.label),
            move || {
                settings
                    .iter()
                    .filter_map(|(path, value)| {
                        sysctl::write_if_different(path, value)
                            .err()
                            .map(|e| format!("{path}={value}: {e}"))
                    })
                    .collect::<Vec<String>>()
            },
        )
    }

    fn arp_probe(
        &self,
        index: u32,
        mac: [u8; 6],
        candidates: &[Ipv4Addr],
        window: Duration,
    ) -> Result<Vec<(Ipv4Addr, [u8; 6])>, LinkError> {
        self.with_arp(index, "ARP probe", |s| s.probe(mac, candidates, window))
    }

    fn arp_announce(&self, index: u32, mac: [u8; 6], ip: Ipv4Addr) -> Result<(), LinkError> {
        self.with_arp(index, "ARP announcement", |s| {
            s.send(&arp::announcement(mac, ip))
        })
    }
}
