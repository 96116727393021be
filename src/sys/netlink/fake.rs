//! An in-memory kernel for unit tests: namespaces with links, addresses,
//! routes and sysctls, every call recorded in order, and failures injected
//! at any call. Tests of the plugin's rollback paths run against it without
//! root (after youki's `network/fake.rs`, but stateful: a link created by one
//! call is there for the next).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use ipnetwork::IpNetwork;

use super::ops::{LinkOps, Sysctl};
use super::{
    AddrFlags, HostRoute, LinkError, LinkInfo, LinkKind, LinkSpec, Neighbour, VlanProtocol,
};
use crate::cni::Route;

#[derive(Debug, Default)]
struct Namespace {
    links: BTreeMap<u32, LinkInfo>,
    addresses: BTreeMap<u32, Vec<IpNetwork>>,
    routes: Vec<(u32, Route)>,
    /// (link, route) added by `add_host_route`.
    host_routes: Vec<(u32, HostRoute)>,
    neighbours: Vec<Neighbour>,
    sysctls: Vec<(String, String)>,
}

#[derive(Debug, Default)]
struct State {
    namespaces: BTreeMap<String, Namespace>,
    next_index: u32,
    calls: Vec<String>,
    /// (namespace, call prefix) -> the error its next matching call returns.
    failures: Vec<(String, String, LinkError)>,
    /// Hosts on the parent's network: address -> the MAC that answers an
    /// ARP probe for it.
    arp_answers: BTreeMap<Ipv4Addr, [u8; 6]>,
}

/// The fake kernel. `ns(label)` gives the [`LinkOps`] of one namespace; a
/// macvlan created with `spec.netns` lands in the namespace whose label is
/// that `NetNs`'s path.
#[derive(Debug, Default)]
pub struct FakeNet {
    state: RefCell<State>,
    /// Behave like kernels before ~6.14: a link created in another
    /// namespace also needs its name free in the sender's namespace.
    pub old_kernel: bool,
    /// Behave like kernels before 5.11: IFLA_MACVLAN_BC_QUEUE_LEN is dropped.
    pub no_bcqueuelen: bool,
}

/// One namespace of a [`FakeNet`].
pub struct FakeLinks<'a> {
    net: &'a FakeNet,
    label: String,
}

impl FakeNet {
    pub fn new() -> FakeNet {
        FakeNet {
            state: RefCell::new(State {
                next_index: 10,
                ..State::default()
            }),
            old_kernel: false,
            no_bcqueuelen: false,
        }
    }

    pub fn ns(&self, label: &str) -> FakeLinks<'_> {
        self.state
            .borrow_mut()
            .namespaces
            .entry(label.to_string())
            .or_default();
        FakeLinks {
            net: self,
            label: label.to_string(),
        }
    }

    /// Add a link as the host or a test would find it (up, no kind: a NIC).
    pub fn add_link(&self, ns: &str, name: &str, kind: Option<&str>) -> u32 {
        let mut st = self.state.borrow_mut();
        st.next_index += 1;
        let index = st.next_index;
        let link = LinkInfo {
            index,
            name: name.to_string(),
            kind: kind.map(str::to_string),
            mtu: 1500,
            mac: Some([2, 0, 0, 0, 0, index as u8]),
            up: true,
            ..LinkInfo::default()
        };
        st.namespaces
            .entry(ns.to_string())
            .or_default()
            .links
            .insert(index, link);
        index
    }

    /// A host on the network that has `ip` (it answers ARP probes as `mac`).
    pub fn answer_arp(&self, ip: Ipv4Addr, mac: [u8; 6]) {
        self.state.borrow_mut().arp_answers.insert(ip, mac);
    }

    /// Make the next call in `ns` whose record starts with `prefix` fail.
    pub fn fail(&self, ns: &str, prefix: &str, error: LinkError) {
        self.state
            .borrow_mut()
            .failures
            .push((ns.to_string(), prefix.to_string(), error));
    }

    /// Every call so far, as `<ns>: <op> <args>`.
    pub fn calls(&self) -> Vec<String> {
        self.state.borrow().calls.clone()
    }

    /// The links of `ns`, by name.
    pub fn links(&self, ns: &str) -> Vec<LinkInfo> {
        self.state
            .borrow()
            .namespaces
            .get(ns)
            .map(|n| n.links.values().cloned().collect())
            .unwrap_or_default()
    }

    pub fn link(&self, ns: &str, name: &str) -> Option<LinkInfo> {
        self.links(ns).into_iter().find(|l| l.name == name)
    }

    pub fn addresses(&self, ns: &str, index: u32) -> Vec<IpNetwork> {
        self.state
            .borrow()
            .namespaces
            .get(ns)
            .and_then(|n| n.addresses.get(&index).cloned())
            .unwrap_or_default()
    }

    /// The host routes of `ns` as (link index, route).
    pub fn host_routes(&self, ns: &str) -> Vec<(u32, HostRoute)> {
        self.state
            .borrow()
            .namespaces
            .get(ns)
            .map(|n| n.host_routes.clone())
            .unwrap_or_default()
    }

    /// The neighbour entries of `ns`.
    pub fn neighbours(&self, ns: &str) -> Vec<Neighbour> {
        self.state
            .borrow()
            .namespaces
            .get(ns)
            .map(|n| n.neighbours.clone())
            .unwrap_or_default()
    }

    pub fn sysctls(&self, ns: &str) -> Vec<(String, String)> {
        self.state
            .borrow()
            .namespaces
            .get(ns)
            .map(|n| n.sysctls.clone())
            .unwrap_or_default()
    }
}

impl FakeLinks<'_> {
    /// Record the call; the injected failure for it, if any.
    fn call(&self, what: String) -> Result<(), LinkError> {
        let mut st = self.net.state.borrow_mut();
        st.calls.push(format!("{}: {what}", self.label));
        let hit = st
            .failures
            .iter()
            .position(|(ns, prefix, _)| *ns == self.label && what.starts_with(prefix.as_str()));
        match hit {
            Some(i) => Err(st.failures.remove(i).2),
            None => Ok(()),
        }
    }

    fn with_ns<T>(&self, ns: &str, f: impl FnOnce(&mut Namespace) -> T) -> T {
        let mut st = self.net.state.borrow_mut();
        f(st.namespaces.entry(ns.to_string()).or_default())
    }

    fn find(&self, ns: &str, name: &str) -> Option<LinkInfo> {
        self.with_ns(ns, |n| n.links.values().find(|l| l.name == name).cloned())
    }

    fn missing(&self, index: u32) -> LinkError {
        LinkError::NotFound(format!("link index {index} in {}", self.label))
    }
}

impl LinkOps for FakeLinks<'_> {
    fn label(&self) -> &str {
        &self.label
    }

    fn link_by_name(&self, name: &str) -> Result<Option<LinkInfo>, LinkError> {
        self.call(format!("link_by_name {name}"))?;
        Ok(self.find(&self.label, name))
    }

    fn link_by_index(&self, index: u32) -> Result<Option<LinkInfo>, LinkError> {
        self.call(format!("link_by_index {index}"))?;
        Ok(self.with_ns(&self.label, |n| n.links.get(&index).cloned()))
    }

    fn default_route_link(&self) -> Result<Option<LinkInfo>, LinkError> {
        self.call("default_route_link".into())?;
        Ok(None)
    }

    /// Like the kernel: a parent carries macvlans or ipvlans, never both
    /// (EBUSY), and an ipvlan's mode and flags are one setting of the
    /// parent, which the newest ipvlan sets for all of them.
    fn create_link(&self, spec: &LinkSpec<'_>) -> Result<(), LinkError> {
        let target = spec
            .netns
            .map_or(self.label.clone(), |ns| ns.path().to_string());
        let kind = spec.kind.name();
        self.call(format!(
            "create_{kind} {} parent={} in={target}",
            spec.name, spec.parent
        ))?;
        let parent = self.with_ns(&self.label, |n| n.links.get(&spec.parent).cloned());
        let Some(parent) = parent else {
            return Err(LinkError::NotFound(format!(
                "parent link index {}",
                spec.parent
            )));
        };
        let sender_clash = self.net.old_kernel && self.find(&self.label, spec.name).is_some();
        if sender_clash || self.find(&target, spec.name).is_some() {
            return Err(LinkError::Exists(format!(
                "{kind} {} in {target}",
                spec.name
            )));
        }
        let mut st = self.net.state.borrow_mut();
        let other_kind = st
            .namespaces
            .values()
            .flat_map(|n| n.links.values())
            .any(|l| {
                l.parent_index == Some(spec.parent)
                    && l.kind
                        .as_deref()
                        .is_some_and(|k| k != kind && (k == "macvlan" || k == "ipvlan"))
            });
        if other_kind {
            return Err(LinkError::Netlink {
                op: format!("create {kind} {} (parent index {})", spec.name, spec.parent),
                errno: libc::EBUSY,
                msg: "Device or resource busy".into(),
            });
        }
        st.next_index += 1;
        let index = st.next_index;
        let mut link = LinkInfo {
            index,
            name: spec.name.to_string(),
            kind: Some(kind.into()),
            mtu: spec.mtu.unwrap_or(1500),
            parent_index: Some(spec.parent),
            ..LinkInfo::default()
        };
        match spec.kind {
            LinkKind::Macvlan { mode, bcqueuelen } => {
                link.mac = Some(spec.mac.unwrap_or([0x02, 0xaa, 0, 0, 0, index as u8]));
                link.macvlan_mode = Some(mode);
                link.macvlan_bcqueuelen = bcqueuelen.filter(|_| !self.net.no_bcqueuelen);
            }
            LinkKind::Ipvlan { mode, flags } => {
                link.mac = parent.mac;
                link.ipvlan_mode = Some(mode);
                link.ipvlan_flags = Some(flags);
                for l in st
                    .namespaces
                    .values_mut()
                    .flat_map(|n| n.links.values_mut())
                {
                    if l.parent_index == Some(spec.parent) && l.kind.as_deref() == Some("ipvlan") {
                        l.ipvlan_mode = Some(mode);
                        l.ipvlan_flags = Some(flags);
                    }
                }
            }
        }
        st.namespaces
            .entry(target)
            .or_default()
            .links
            .insert(index, link);
        Ok(())
    }

    fn set_mac(&self, index: u32, mac: [u8; 6]) -> Result<(), LinkError> {
        self.call(format!("set_mac {index} {}", super::format_mac(&mac)))?;
        let kind = self.with_ns(&self.label, |n| n.links.get(&index).map(|l| l.kind.clone()));
        match kind {
            None => Err(self.missing(index)),
            Some(Some(k)) if k == "ipvlan" => Err(LinkError::Netlink {
                op: format!("set the MAC of link index {index}"),
                errno: libc::EOPNOTSUPP,
                msg: "Operation not supported".into(),
            }),
            Some(_) => {
                self.with_ns(&self.label, |n| {
                    if let Some(l) = n.links.get_mut(&index) {
                        l.mac = Some(mac);
                    }
                });
                Ok(())
            }
        }
    }

    fn create_vlan(
        &self,
        name: &str,
        parent: u32,
        vid: u16,
        protocol: VlanProtocol,
    ) -> Result<(), LinkError> {
        self.call(format!("create_vlan {name} parent={parent} id={vid}"))?;
        if self.find(&self.label, name).is_some() {
            return Err(LinkError::Exists(format!("VLAN link {name}")));
        }
        let mut st = self.net.state.borrow_mut();
        st.next_index += 1;
        let index = st.next_index;
        let link = LinkInfo {
            index,
            name: name.to_string(),
            kind: Some("vlan".into()),
            mtu: 1500,
            parent_index: Some(parent),
            vlan_id: Some(vid),
            vlan_protocol: Some(protocol),
            ..LinkInfo::default()
        };
        st.namespaces
            .entry(self.label.clone())
            .or_default()
            .links
            .insert(index, link);
        Ok(())
    }

    fn rename(
        &self,
        index: u32,
        new_name: Option<&str>,
        alias: Option<&str>,
    ) -> Result<(), LinkError> {
        self.call(format!(
            "rename {index} name={} alias={}",
            new_name.unwrap_or("-"),
            alias.unwrap_or("-")
        ))?;
        if let Some(n) = new_name
            && self.find(&self.label, n).is_some_and(|l| l.index != index)
        {
            return Err(LinkError::Exists(format!("link {n}")));
        }
        let found = self.with_ns(&self.label, |ns| match ns.links.get_mut(&index) {
            Some(l) => {
                if let Some(n) = new_name {
                    l.name = n.to_string();
                }
                if let Some(a) = alias {
                    l.alias = Some(a.to_string());
                }
                true
            }
            None => false,
        });
        if found {
            Ok(())
        } else {
            Err(self.missing(index))
        }
    }

    fn set_up(&self, index: u32) -> Result<(), LinkError> {
        self.call(format!("set_up {index}"))?;
        let found = self.with_ns(&self.label, |n| {
            n.links.get_mut(&index).map(|l| l.up = true).is_some()
        });
        if found {
            Ok(())
        } else {
            Err(self.missing(index))
        }
    }

    fn delete(&self, index: u32) -> Result<(), LinkError> {
        self.call(format!("delete {index}"))?;
        let found = self.with_ns(&self.label, |n| {
            n.addresses.remove(&index);
            n.routes.retain(|(i, _)| *i != index);
            n.host_routes.retain(|(i, _)| *i != index);
            n.neighbours.retain(|x| x.index != index);
            n.links.remove(&index).is_some()
        });
        if found {
            Ok(())
        } else {
            Err(self.missing(index))
        }
    }

    fn add_address(&self, index: u32, addr: IpNetwork, _flags: AddrFlags) -> Result<(), LinkError> {
        self.call(format!("add_address {index} {addr}"))?;
        self.with_ns(&self.label, |n| {
            n.addresses.entry(index).or_default().push(addr);
        });
        Ok(())
    }

    fn addresses(&self, index: u32) -> Result<Vec<(IpNetwork, u32)>, LinkError> {
        self.call(format!("addresses {index}"))?;
        Ok(self.with_ns(&self.label, |n| {
            n.addresses
                .get(&index)
                .map(|v| v.iter().map(|a| (*a, 0)).collect())
                .unwrap_or_default()
        }))
    }

    fn all_addresses(&self) -> Result<Vec<(u32, IpNetwork)>, LinkError> {
        self.call("all_addresses".into())?;
        Ok(self.with_ns(&self.label, |n| {
            n.addresses
                .iter()
                .flat_map(|(i, v)| v.iter().map(|a| (*i, *a)))
                .collect()
        }))
    }

    fn add_route(&self, index: u32, route: &Route, gw: Option<IpAddr>) -> Result<(), LinkError> {
        self.call(format!("add_route {index} {}", route.dst))?;
        let mut r = route.clone();
        r.gw = r.gw.or(gw);
        self.with_ns(&self.label, |n| n.routes.push((index, r)));
        Ok(())
    }

    fn routes(&self) -> Result<Vec<Route>, LinkError> {
        self.call("routes".into())?;
        Ok(self.with_ns(&self.label, |n| {
            n.routes.iter().map(|(_, r)| r.clone()).collect()
        }))
    }

    fn wait_dad(&self, index: u32, _timeout: Duration) -> Result<(), LinkError> {
        self.call(format!("wait_dad {index}"))
    }

    /// Like the kernel: EXCL on the destination (any link), a `src` that
    /// is no address of the namespace is EINVAL.
    fn add_host_route(
        &self,
        index: u32,
        dst: IpAddr,
        src: Option<IpAddr>,
    ) -> Result<(), LinkError> {
        let shown = src.map(|s| format!(" src {s}")).unwrap_or_default();
        self.call(format!("add_host_route {index} {dst}{shown}"))?;
        let dst = IpNetwork::from(dst);
        self.with_ns(&self.label, |n| {
            if !n.links.contains_key(&index) {
                return Err(LinkError::NotFound(format!("link index {index}")));
            }
            if n.host_routes.iter().any(|(_, r)| r.dst == dst)
                || n.routes.iter().any(|(_, r)| r.dst == dst)
            {
                return Err(LinkError::Exists(format!("host route {dst}")));
            }
            if let Some(s) = src
                && !n.addresses.values().flatten().any(|a| a.ip() == s)
            {
                return Err(LinkError::Netlink {
                    op: format!("add host route {dst} src {s}"),
                    errno: libc::EINVAL,
                    msg: "Invalid argument (kernel: Invalid prefsrc address)".into(),
                });
            }
            n.host_routes.push((
                index,
                HostRoute {
                    dst,
                    src,
                    protocol: super::RTPROT_MACTRUNK,
                },
            ));
            Ok(())
        })
    }

    fn delete_host_route(&self, index: u32, dst: IpAddr) -> Result<(), LinkError> {
        self.call(format!("delete_host_route {index} {dst}"))?;
        let dst = IpNetwork::from(dst);
        self.with_ns(&self.label, |n| {
            let before = n.host_routes.len();
            n.host_routes
                .retain(|(i, r)| !(*i == index && r.dst == dst));
            if n.host_routes.len() == before {
                Err(LinkError::NotFound(format!("host route {dst}")))
            } else {
                Ok(())
            }
        })
    }

    fn routes_of(&self, index: u32) -> Result<Vec<HostRoute>, LinkError> {
        self.call(format!("routes_of {index}"))?;
        Ok(self.with_ns(&self.label, |n| {
            n.host_routes
                .iter()
                .filter(|(i, _)| *i == index)
                .map(|(_, r)| r.clone())
                .chain(
                    n.routes
                        .iter()
                        .filter(|(i, _)| *i == index)
                        .map(|(_, r)| HostRoute {
                            dst: r.dst,
                            src: None,
                            protocol: 3,
                        }),
                )
                .collect()
        }))
    }

    fn set_neighbour(&self, index: u32, ip: IpAddr, mac: [u8; 6]) -> Result<(), LinkError> {
        self.call(format!(
            "set_neighbour {index} {ip} {}",
            super::format_mac(&mac)
        ))?;
        self.with_ns(&self.label, |n| {
            if !n.links.contains_key(&index) {
                return Err(LinkError::NotFound(format!("link index {index}")));
            }
            n.neighbours.retain(|x| !(x.index == index && x.ip == ip));
            n.neighbours.push(Neighbour {
                index,
                ip,
                mac: Some(mac),
                permanent: true,
            });
            Ok(())
        })
    }

    fn delete_neighbour(&self, index: u32, ip: IpAddr) -> Result<(), LinkError> {
        self.call(format!("delete_neighbour {index} {ip}"))?;
        self.with_ns(&self.label, |n| {
            let before = n.neighbours.len();
            n.neighbours.retain(|x| !(x.index == index && x.ip == ip));
            if n.neighbours.len() == before {
                Err(LinkError::NotFound(format!("neighbour {ip}")))
            } else {
                Ok(())
            }
        })
    }

    fn neighbours(&self, index: u32) -> Result<Vec<Neighbour>, LinkError> {
        self.call(format!("neighbours {index}"))?;
        Ok(self.with_ns(&self.label, |n| {
            n.neighbours
                .iter()
                .filter(|x| x.index == index)
                .cloned()
                .collect()
        }))
    }

    fn write_sysctls(&self, settings: &[Sysctl]) -> Result<Vec<String>, LinkError> {
        self.call(format!("write_sysctls {}", settings.len()))?;
        self.with_ns(&self.label, |n| {
            n.sysctls
                .extend(settings.iter().map(|(p, v)| (p.clone(), v.to_string())));
        });
        Ok(Vec::new())
    }

    /// Answers from [`FakeNet::answer_arp`]; like the real socket, a link
    /// that is down cannot send (ENETDOWN).
    fn arp_probe(
        &self,
        index: u32,
        mac: [u8; 6],
        candidates: &[Ipv4Addr],
        _window: Duration,
    ) -> Result<Vec<(Ipv4Addr, [u8; 6])>, LinkError> {
        let list: Vec<String> = candidates.iter().map(ToString::to_string).collect();
        self.call(format!(
            "arp_probe {index} {} from {}",
            list.join(","),
            super::format_mac(&mac)
        ))?;
        let up = self.with_ns(&self.label, |n| n.links.get(&index).map(|l| l.up));
        match up {
            None => return Err(self.missing(index)),
            Some(false) => {
                return Err(LinkError::Io {
                    op: format!("ARP probe on link index {index}"),
                    source: std::io::Error::from_raw_os_error(libc::ENETDOWN),
                });
            }
            Some(true) => {}
        }
        // Each host that has a candidate answers the probe; the answers go
        // through the real socket's rule (`arp::conflict`), which decides
        // what counts, e.g. an answer from our own MAC.
        let st = self.net.state.borrow();
        Ok(candidates
            .iter()
            .filter_map(|c| {
                let reply = crate::sys::arp::Arp {
                    op: crate::sys::arp::ARPOP_REPLY,
                    sha: *st.arp_answers.get(c)?,
                    spa: *c,
                    tha: mac,
                    tpa: Ipv4Addr::UNSPECIFIED,
                };
                crate::sys::arp::conflict(&reply, candidates, mac)
            })
            .collect())
    }

    fn arp_announce(&self, index: u32, mac: [u8; 6], ip: Ipv4Addr) -> Result<(), LinkError> {
        self.call(format!(
            "arp_announce {index} {ip} from {}",
            super::format_mac(&mac)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::netlink::MacvlanMode;

    #[test]
    fn records_calls_and_injects_failures() {
        let net = FakeNet::new();
        let host = net.ns("host");
        let eth0 = net.add_link("host", "eth0", None);
        let spec = LinkSpec {
            name: "mv0",
            parent: eth0,
            kind: LinkKind::Macvlan {
                mode: MacvlanMode::Bridge,
                bcqueuelen: None,
            },
            mtu: None,
            mac: None,
            netns: None,
        };
        host.create_link(&spec).unwrap();
        let mv = host.link_by_name("mv0").unwrap().unwrap();
        assert_eq!(mv.kind.as_deref(), Some("macvlan"));
        assert!(matches!(host.create_link(&spec), Err(LinkError::Exists(_))));
        net.fail("host", "set_up", LinkError::Invalid("boom".into()));
        assert!(host.set_up(mv.index).is_err());
        host.set_up(mv.index).unwrap();
        host.delete(mv.index).unwrap();
        assert!(host.delete(mv.index).unwrap_err().is_not_found());
        assert_eq!(
            net.calls()[0],
            format!("host: create_macvlan mv0 parent={eth0} in=host")
        );
        assert_eq!(net.calls().len(), 7);
    }

    #[test]
    fn like_the_kernel_one_parent_one_link_type_and_one_ipvlan_mode() {
        use crate::sys::netlink::{IpvlanFlags, IpvlanMode};
        let net = FakeNet::new();
        let host = net.ns("host");
        let eth0 = net.add_link("host", "eth0", None);
        let eth1 = net.add_link("host", "eth1", None);
        let spec = |name, parent, kind| LinkSpec {
            name,
            parent,
            kind,
            mtu: None,
            mac: None,
            netns: None,
        };
        let l2 = LinkKind::Ipvlan {
            mode: IpvlanMode::L2,
            flags: IpvlanFlags::Bridge,
        };
        let l3 = LinkKind::Ipvlan {
            mode: IpvlanMode::L3,
            flags: IpvlanFlags::Private,
        };
        host.create_link(&spec("iv0", eth0, l2)).unwrap();
        let iv0 = host.link_by_name("iv0").unwrap().unwrap();
        assert_eq!(iv0.mac, host.link_by_index(eth0).unwrap().unwrap().mac);
        let mv = LinkKind::Macvlan {
            mode: MacvlanMode::Bridge,
            bcqueuelen: None,
        };
        let e = host.create_link(&spec("mv0", eth0, mv)).unwrap_err();
        assert_eq!(e.errno(), Some(libc::EBUSY), "{e}");
        host.create_link(&spec("mv1", eth1, mv)).unwrap();
        let e = host.create_link(&spec("iv1", eth1, l2)).unwrap_err();
        assert_eq!(e.errno(), Some(libc::EBUSY), "{e}");
        // The newest ipvlan sets the mode and flags of its parent's others.
        host.create_link(&spec("iv2", eth0, l3)).unwrap();
        let iv0 = host.link_by_name("iv0").unwrap().unwrap();
        assert_eq!(iv0.ipvlan_mode, Some(IpvlanMode::L3));
        assert_eq!(iv0.ipvlan_flags, Some(IpvlanFlags::Private));
        // An ipvlan cannot take another MAC; a macvlan can.
        let e = host.set_mac(iv0.index, [2, 0, 0, 0, 0, 1]).unwrap_err();
        assert_eq!(e.errno(), Some(libc::EOPNOTSUPP));
        let mv1 = host.link_by_name("mv1").unwrap().unwrap();
        host.set_mac(mv1.index, [2, 0, 0, 0, 0, 1]).unwrap();
        assert_eq!(
            host.link_by_index(mv1.index).unwrap().unwrap().mac,
            Some([2, 0, 0, 0, 0, 1])
        );
    }

    #[test]
    fn arp_probe_answers_and_needs_the_link_up() {
        let net = FakeNet::new();
        let host = net.ns("host");
        let eth0 = net.add_link("host", "eth0", None);
        let a: Ipv4Addr = "10.0.0.2".parse().unwrap();
        let b: Ipv4Addr = "10.0.0.3".parse().unwrap();
        net.answer_arp(a, [0x52, 0, 0, 0, 0, 1]);
        let mac = [2, 0, 0, 0, 0, 9];
        let window = Duration::from_millis(1);
        assert_eq!(
            host.arp_probe(eth0, mac, &[a, b], window).unwrap(),
            [(a, [0x52, 0, 0, 0, 0, 1])]
        );
        let eth1 = net.add_link("host", "eth1", None);
        assert!(host.arp_probe(eth1, mac, &[b], window).unwrap().is_empty());
        let mv = LinkSpec {
            name: "mv0",
            parent: eth0,
            kind: LinkKind::default(),
            mtu: None,
            mac: None,
            netns: None,
        };
        host.create_link(&mv).unwrap();
        let mv = host.link_by_name("mv0").unwrap().unwrap();
        let e = host.arp_probe(mv.index, mac, &[b], window).unwrap_err();
        assert_eq!(e.errno(), Some(libc::ENETDOWN));
    }
}
