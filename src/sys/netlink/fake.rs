//! An in-memory kernel for unit tests: namespaces with links, addresses,
//! routes and sysctls, every call recorded in order, and failures injected
//! at any call. Tests of the plugin's rollback paths run against it without
//! root (after youki's `network/fake.rs`, but stateful: a link created by one
//! call is there for the next).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use ipnetwork::IpNetwork;

use super::ops::{LinkOps, Sysctl};
use super::{AddrFlags, LinkError, LinkInfo, MacvlanSpec, VlanProtocol};
use crate::cni::Route;

#[derive(Debug, Default)]
struct Namespace {
    links: BTreeMap<u32, LinkInfo>,
    addresses: BTreeMap<u32, Vec<IpNetwork>>,
    routes: Vec<(u32, Route)>,
    sysctls: Vec<(String, String)>,
}

#[derive(Debug, Default)]
struct State {
    namespaces: BTreeMap<String, Namespace>,
    next_index: u32,
    calls: Vec<String>,
    /// (namespace, call prefix) -> the error its next matching call returns.
    failures: Vec<(String, String, LinkError)>,
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

    fn create_macvlan(&self, spec: &MacvlanSpec<'_>) -> Result<(), LinkError> {
        let target = spec
            .netns
            .map_or(self.label.clone(), |ns| ns.path().to_string());
        self.call(format!(
            "create_macvlan {} parent={} in={target}",
            spec.name, spec.parent
        ))?;
        let parent_here = self.with_ns(&self.label, |n| n.links.contains_key(&spec.parent));
        if !parent_here {
            return Err(LinkError::NotFound(format!(
                "parent link index {}",
                spec.parent
            )));
        }
        let sender_clash = self.net.old_kernel && self.find(&self.label, spec.name).is_some();
        if sender_clash || self.find(&target, spec.name).is_some() {
            return Err(LinkError::Exists(format!(
                "macvlan {} in {target}",
                spec.name
            )));
        }
        let mut st = self.net.state.borrow_mut();
        st.next_index += 1;
        let index = st.next_index;
        let link = LinkInfo {
            index,
            name: spec.name.to_string(),
            kind: Some("macvlan".into()),
            mtu: spec.mtu.unwrap_or(1500),
            mac: Some(spec.mac.unwrap_or([0x02, 0xaa, 0, 0, 0, index as u8])),
            parent_index: Some(spec.parent),
            macvlan_mode: Some(spec.mode),
            macvlan_bcqueuelen: spec.bcqueuelen.filter(|_| !self.net.no_bcqueuelen),
            ..LinkInfo::default()
        };
        st.namespaces
            .entry(target)
            .or_default()
            .links
            .insert(index, link);
        Ok(())
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

    fn write_sysctls(&self, settings: &[Sysctl]) -> Result<Vec<String>, LinkError> {
        self.call(format!("write_sysctls {}", settings.len()))?;
        self.with_ns(&self.label, |n| {
            n.sysctls
                .extend(settings.iter().map(|(p, v)| (p.clone(), v.to_string())));
        });
        Ok(Vec::new())
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
        let spec = MacvlanSpec {
            name: "mv0",
            parent: eth0,
            mode: MacvlanMode::Bridge,
            mtu: None,
            mac: None,
            bcqueuelen: None,
            netns: None,
        };
        host.create_macvlan(&spec).unwrap();
        let mv = host.link_by_name("mv0").unwrap().unwrap();
        assert_eq!(mv.kind.as_deref(), Some("macvlan"));
        assert!(matches!(
            host.create_macvlan(&spec),
            Err(LinkError::Exists(_))
        ));
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
}
