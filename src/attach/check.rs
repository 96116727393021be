//! CHECK: the attachment is still what ADD made of it (prevResult): the
//! store holds its addresses, its parent is there, and its link has the
//! tag, mode, parent, MAC, addresses and routes. The comparison of the link
//! is pure ([`link_mismatch`]); this file gathers what it compares.

use std::net::IpAddr;

use ipnetwork::IpNetwork;

use super::add::in_use;
use super::config::PluginConfig;
use super::parent::{self, Parent};
use super::shim;
use super::shim_registry::{self, ShimRecord};
use super::tag::{link_tag, not_ours};
use super::vlan;
use super::{kernel, open_container_netns, owner, vlan_registry_location, vlan_user};
use crate::cni::env::Command;
use crate::cni::netconf::IpamKind;
use crate::cni::skel::Request;
use crate::cni::{CniError, CniOutput, IpConfig, Route, code};
use crate::ipam::{self, IpamConfig, delegate};
use crate::sys::netlink::{
    HostRoute, LinkInfo, LinkKind, LinkOps, Neighbour, format_mac, ifa_flags,
};

pub(super) fn check(req: &Request, conf: &PluginConfig) -> Result<(), CniError> {
    let netns = open_container_netns(req)?;
    let prev = conf.prev_result.as_ref().ok_or_else(|| {
        CniError::config("prevResult", "CHECK needs the ADD result in prevResult")
    })?;
    let ifname = &req.args.ifname;
    let index = prev
        .interfaces
        .iter()
        .position(|i| &i.name == ifname && i.sandbox.as_deref() == Some(req.args.netns.as_str()))
        .ok_or_else(|| {
            CniError::new(
                code::CHECK_FAILED,
                format!(
                    "prevResult has no interface {ifname:?} in sandbox {}",
                    req.args.netns
                ),
            )
        })?;
    let expected: Vec<&IpConfig> = prev
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
    let kernel = kernel()?;
    let host = kernel.host();
    let container = kernel.netns(&netns);
    let master_nl: &dyn LinkOps = if conf.link_in_container {
        &container
    } else {
        &host
    };
    let master = checked_parent(master_nl, conf, ifname)?;
    let mismatch = |what: String| {
        CniError::new(
            code::CHECK_FAILED,
            format!("{ifname} in {}: {what}", req.args.netns),
        )
    };
    let link = container
        .link_by_name(ifname)?
        .ok_or_else(|| mismatch("interface not found".into()))?;
    let addresses = container.addresses(link.index)?;
    let want = Expected {
        tag: link_tag(&req.name, &req.args.container_id),
        conf,
        master: &master,
        prev,
        index,
    };
    let container_index = link.index;
    let have = Found {
        addresses: addresses.iter().map(|(a, _)| *a).collect(),
        dad_failed: addresses
            .iter()
            .filter(|(_, flags)| flags & ifa_flags::DADFAILED != 0)
            .map(|(a, _)| *a)
            .collect(),
        routes: container.routes()?,
        link,
    };
    if let Some(why) = link_mismatch(&want, &expected, &have) {
        return Err(mismatch(why));
    }
    // Host-side extras of the attachment, after the container side.
    if conf.host_shim.is_some() {
        let found = host_shim_state(req, &host, &container, &master, container_index)?;
        if let Some(why) = shim_mismatch(&found, &have) {
            return Err(mismatch(format!("hostShim: {why}")));
        }
    }
    Ok(())
}

/// What CHECK finds of the host shim of an attachment.
struct ShimFound {
    name: String,
    /// The registry's record of the shim (None: missing, unreadable, of
    /// another boot) and where it was looked for.
    record: Option<ShimRecord>,
    record_path: String,
    link: Option<LinkInfo>,
    /// Routes and neighbour entries on the shim (empty without a shim).
    host_routes: Vec<HostRoute>,
    host_neighbours: Vec<Neighbour>,
    /// Neighbour entries of the container link.
    neighbours: Vec<Neighbour>,
}

fn host_shim_state(
    req: &Request,
    host: &dyn LinkOps,
    container: &dyn LinkOps,
    master: &LinkInfo,
    container_index: u32,
) -> Result<ShimFound, CniError> {
    let name = shim::name(&master.name);
    let (data_dir, _) = vlan_registry_location(&req.conf)?;
    let record = shim_registry::peek(&data_dir, &name);
    let link = host.link_by_name(&name)?;
    let (host_routes, host_neighbours) = match &link {
        Some(l) => (host.routes_of(l.index)?, host.neighbours(l.index)?),
        None => (Vec::new(), Vec::new()),
    };
    Ok(ShimFound {
        record_path: shim_registry::dir_in(&data_dir)
            .join(format!("{name}.json"))
            .display()
            .to_string(),
        name,
        record,
        link,
        host_routes,
        host_neighbours,
        neighbours: container.neighbours(container_index)?,
    }
    .with_user(&vlan_user(req)))
}

impl ShimFound {
    /// Keep the record only if it lists `key`.
    fn with_user(mut self, key: &shim_registry::UserKey) -> ShimFound {
        if let Some(r) = &mut self.record {
            r.users.retain(|u| &u.key == key);
        }
        self
    }
}

/// The first difference between the host shim of the attachment as ADD
/// made it (its record) and as it is: the shim (ours, up), the host route
/// to each address with its source, the host's permanent neighbour entry
/// for it (the container's MAC), and in the container the permanent
/// neighbour entry for the host's address (the shim's MAC), plus the route
/// to it when it is not in the container's subnet.
fn shim_mismatch(found: &ShimFound, container: &Found) -> Option<String> {
    let name = &found.name;
    let Some(rec) = &found.record else {
        return Some(format!(
            "no record of the host shim {name} ({})",
            found.record_path
        ));
    };
    let Some(user) = rec.users.first() else {
        return Some(format!(
            "the record of the host shim {name} does not list this attachment ({})",
            found.record_path
        ));
    };
    let Some(link) = &found.link else {
        return Some(format!("the host shim {name} is missing"));
    };
    if !shim::may_delete(link, rec.ownership()) {
        return Some(format!(
            "{name} (index {}) is not the host shim mactrunk created",
            link.index
        ));
    }
    if !link.up {
        return Some(format!("the host shim {name} is down"));
    }
    let mac = container.link.mac;
    for r in &user.routes {
        match found
            .host_routes
            .iter()
            .find(|h| h.dst.ip() == r.ip && h.dst.prefix() == if r.ip.is_ipv4() { 32 } else { 128 })
        {
            None => return Some(format!("the host route to {} on {name} is missing", r.ip)),
            Some(h) if h.src != Some(r.src) => {
                return Some(format!(
                    "the host route to {} on {name} has source {}, recorded {}",
                    r.ip,
                    h.src.map_or_else(|| "none".to_string(), |s| s.to_string()),
                    r.src
                ));
            }
            Some(_) => {}
        }
        let n = found.host_neighbours.iter().find(|n| n.ip == r.ip);
        if n.is_none_or(|n| !n.permanent || n.mac != mac) {
            return Some(format!(
                "the host's permanent neighbour entry for {} on {name} is missing or does not point at {}",
                r.ip,
                mac.map(|m| format_mac(&m)).unwrap_or_default()
            ));
        }
        let n = found.neighbours.iter().find(|n| n.ip == r.src);
        let shim_mac = link.mac;
        if n.is_none_or(|n| !n.permanent || n.mac != shim_mac) {
            return Some(format!(
                "the container's permanent neighbour entry for the host's {} is missing or does not point at the shim's {}",
                r.src,
                shim_mac.map(|m| format_mac(&m)).unwrap_or_default()
            ));
        }
        let on_link = container.addresses.iter().any(|a| a.contains(r.src));
        if !on_link
            && !container
                .routes
                .iter()
                .any(|h| h.dst == IpNetwork::from(r.src))
        {
            return Some(format!(
                "the container's route to the host's {} is missing",
                r.src
            ));
        }
    }
    None
}

/// The link the macvlan should sit on; a missing or wrong VLAN parent is a
/// CHECK failure.
fn checked_parent(
    master_nl: &dyn LinkOps,
    conf: &PluginConfig,
    ifname: &str,
) -> Result<LinkInfo, CniError> {
    match parent::resolve(master_nl, conf)? {
        Parent::Plain(l) => Ok(l),
        Parent::Vlan { want, lower, link } => {
            let name = &want.parent.link_name;
            let link = link.ok_or_else(|| {
                CniError::new(
                    code::CHECK_FAILED,
                    format!("VLAN parent {name:?} of {ifname} is missing"),
                )
            })?;
            match vlan::mismatch(&want.parent, want.protocol, lower.index, &link) {
                None => Ok(link),
                Some(why) => Err(CniError::new(
                    code::CHECK_FAILED,
                    format!("VLAN parent of {ifname}: {why}"),
                )),
            }
        }
    }
}

/// What the attachment should look like.
struct Expected<'a> {
    tag: String,
    conf: &'a PluginConfig,
    master: &'a LinkInfo,
    prev: &'a CniOutput,
    /// The attachment's interface in `prev`.
    index: usize,
}

/// What the container has.
struct Found {
    link: LinkInfo,
    addresses: Vec<IpNetwork>,
    /// The addresses the kernel marked IFA_F_DADFAILED: IPv6 DAD found
    /// another host with them, they do not work.
    dad_failed: Vec<IpNetwork>,
    routes: Vec<Route>,
}

/// How the link's kind and its mode (and ipvlan flags) differ from the
/// config's. An ipvlan's mode and flags are one setting of its parent:
/// another ipvlan created on that parent with other values changes them for
/// every ipvlan there, which this reports.
fn kind_mismatch(link: &LinkInfo, want: LinkKind) -> Option<String> {
    let kind = link.kind.as_deref().unwrap_or("physical or unknown");
    if kind != want.name() {
        return Some(format!(
            "link kind is {kind}, config says linkType {}",
            want.name()
        ));
    }
    let show = |v: Option<String>| v.unwrap_or_else(|| "unknown".into());
    match want {
        LinkKind::Macvlan { mode, .. } if link.macvlan_mode != Some(mode) => Some(format!(
            "macvlan mode is {}, config says {mode}",
            show(link.macvlan_mode.map(|m| m.to_string()))
        )),
        LinkKind::Ipvlan { mode, flags }
            if link.ipvlan_mode != Some(mode) || link.ipvlan_flags != Some(flags) =>
        {
            Some(format!(
                "ipvlan mode is {} {}, config says {mode} {flags} (the mode and flags of an ipvlan belong to its parent: an ipvlan created there with others changed them)",
                show(link.ipvlan_mode.map(|m| m.to_string())),
                show(link.ipvlan_flags.map(|f| f.to_string()))
            ))
        }
        _ => None,
    }
}

/// The first difference between the attachment as ADD made it and as it is.
fn link_mismatch(want: &Expected<'_>, ips: &[&IpConfig], have: &Found) -> Option<String> {
    let link = &have.link;
    if let Some(why) = not_ours(link, &want.tag) {
        return Some(format!("not the link this attachment created: {why}"));
    }
    if let Some(why) = kind_mismatch(link, want.conf.link) {
        return Some(why);
    }
    // IFLA_LINK of a link in another netns is an index in the parent's netns.
    if !want.conf.link_in_container && link.parent_index.is_some_and(|p| p != want.master.index) {
        return Some(format!("its parent is no longer {:?}", want.master.name));
    }
    if let Some(mac) = want
        .prev
        .interfaces
        .get(want.index)
        .and_then(|i| i.mac.as_deref())
    {
        let found = link.mac.map(|m| format_mac(&m)).unwrap_or_default();
        if !mac.eq_ignore_ascii_case(&found) {
            return Some(format!("MAC is {found}, prevResult says {mac}"));
        }
    }
    if let Some(ip) = ips.iter().find(|ip| !have.addresses.contains(&ip.address)) {
        return Some(format!("address {} is missing", ip.address));
    }
    // DAD ran after ADD (ipv6Dad optimistic or off-then-on): a duplicate
    // shows only as this flag, reported like ADD reports one.
    if let Some(ip) = ips.iter().find(|ip| have.dad_failed.contains(&ip.address)) {
        return Some(in_use(
            ip.address.ip(),
            &format!(
                "IPv6 duplicate address detection on {} failed (the kernel marked the address dadfailed: the container cannot use it)",
                link.name
            ),
        ));
    }
    want.prev
        .routes
        .iter()
        .filter(|r| ips.iter().any(|ip| ip.address.is_ipv4() == r.dst.is_ipv4()))
        .find(|r| !have.routes.iter().any(|h| h.dst == r.dst))
        .map(|r| format!("route to {} is missing", r.dst))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cni::Version;
    use crate::sys::netlink::MacvlanMode;
    use serde_json::json;

    fn conf() -> PluginConfig {
        PluginConfig::parse(
            &json!({"cniVersion": "1.1.0", "name": "lan", "master": "eth0"}),
            &Default::default(),
        )
        .unwrap()
    }

    fn prev() -> CniOutput {
        CniOutput::from_json(
            &json!({"cniVersion": "1.1.0",
                    "interfaces": [{"name": "eth0", "mac": "02:aa:00:00:00:01", "sandbox": "/n"}],
                    "ips": [{"address": "10.0.0.2/24", "interface": 0}],
                    "routes": [{"dst": "0.0.0.0/0"}, {"dst": "fd00::/8"}]}),
            Version::V1_1_0,
        )
        .unwrap()
    }

    fn found() -> Found {
        Found {
            link: LinkInfo {
                index: 5,
                name: "eth0".into(),
                kind: Some("macvlan".into()),
                alias: Some(link_tag("lan", "c1")),
                macvlan_mode: Some(MacvlanMode::Bridge),
                parent_index: Some(2),
                mac: Some([2, 0xaa, 0, 0, 0, 1]),
                ..LinkInfo::default()
            },
            addresses: vec!["10.0.0.2/24".parse().unwrap()],
            dad_failed: vec![],
            // The IPv6 route is not checked: the attachment has no IPv6 address.
            routes: vec![serde_json::from_value(json!({"dst": "0.0.0.0/0"})).unwrap()],
        }
    }

    #[test]
    fn every_difference_is_named() {
        let (conf, prev) = (conf(), prev());
        let master = LinkInfo {
            index: 2,
            name: "eth0".into(),
            ..LinkInfo::default()
        };
        let want = Expected {
            tag: link_tag("lan", "c1"),
            conf: &conf,
            master: &master,
            prev: &prev,
            index: 0,
        };
        let ips: Vec<&IpConfig> = prev.ips.iter().collect();
        assert_eq!(link_mismatch(&want, &ips, &found()), None);
        type Change = fn(&mut Found);
        let cases: [(Change, &str); 8] = [
            (
                |f| f.link.alias = Some(link_tag("other", "c1")),
                "not the link",
            ),
            (|f| f.link.kind = Some("veth".into()), "veth"),
            (|f| f.link.macvlan_mode = Some(MacvlanMode::Vepa), "mode"),
            (|f| f.link.parent_index = Some(3), "parent"),
            (
                |f| f.link.mac = Some([2, 0, 0, 0, 0, 9]),
                "MAC is 02:00:00:00:00:09",
            ),
            (|f| f.addresses.clear(), "address 10.0.0.2/24 is missing"),
            (
                |f| f.dad_failed = f.addresses.clone(),
                "10.0.0.2 is in use on the network: IPv6 duplicate address detection on eth0 failed (the kernel marked the address dadfailed",
            ),
            (|f| f.routes.clear(), "route to 0.0.0.0/0 is missing"),
        ];
        for (change, needle) in cases {
            let mut f = found();
            change(&mut f);
            let why = link_mismatch(&want, &ips, &f).expect(needle);
            assert!(why.contains(needle), "{why}");
        }
    }

    #[test]
    fn ipvlan_kind_mode_and_flags_are_checked() {
        use crate::sys::netlink::{IpvlanFlags, IpvlanMode};
        let want = LinkKind::Ipvlan {
            mode: IpvlanMode::L2,
            flags: IpvlanFlags::Bridge,
        };
        let link = LinkInfo {
            kind: Some("ipvlan".into()),
            ipvlan_mode: Some(IpvlanMode::L2),
            ipvlan_flags: Some(IpvlanFlags::Bridge),
            ..LinkInfo::default()
        };
        assert_eq!(kind_mismatch(&link, want), None);
        let switched = LinkInfo {
            ipvlan_mode: Some(IpvlanMode::L3),
            ipvlan_flags: Some(IpvlanFlags::Private),
            ..link.clone()
        };
        let why = kind_mismatch(&switched, want).unwrap();
        assert!(
            why.contains("ipvlan mode is l3 private, config says l2 bridge"),
            "{why}"
        );
        assert!(why.contains("belong to its parent"), "{why}");
        let flags_only = LinkInfo {
            ipvlan_flags: Some(IpvlanFlags::Vepa),
            ..link.clone()
        };
        assert!(
            kind_mismatch(&flags_only, want)
                .unwrap()
                .contains("l2 vepa")
        );
        // The other link type either way.
        let why = kind_mismatch(&link, LinkKind::default()).unwrap();
        assert_eq!(why, "link kind is ipvlan, config says linkType macvlan");
        let mv = LinkInfo {
            kind: Some("macvlan".into()),
            macvlan_mode: Some(MacvlanMode::Bridge),
            ..LinkInfo::default()
        };
        assert!(
            kind_mismatch(&mv, want)
                .unwrap()
                .contains("config says linkType ipvlan")
        );
        assert_eq!(kind_mismatch(&mv, LinkKind::default()), None);
    }
    #[test]
    fn host_shim_differences_are_named() {
        use crate::attach::shim_registry::{ShimRoute, ShimUser, UserKey};
        use crate::ipam::store::Owner;
        use crate::sys::netlink::RTPROT_MACTRUNK;
        let shim_mac = [6, 1, 2, 3, 4, 5];
        let container = found();
        let c_mac = container.link.mac;
        let host_ip: IpAddr = "10.0.0.250".parse().unwrap();
        let c_ip: IpAddr = "10.0.0.2".parse().unwrap();
        let rec: ShimRecord = serde_json::from_value(json!({
            "link": "mts-eth0", "parent": "eth0", "mac": "06:01:02:03:04:05", "ifindex": 9,
            "users": []}))
        .unwrap();
        let mut rec = rec;
        rec.users.push(ShimUser {
            key: UserKey::new("lan", &Owner::new("c1", "eth0")),
            mac: "02:aa:00:00:00:01".into(),
            routes: vec![ShimRoute {
                ip: c_ip,
                src: host_ip,
            }],
        });
        let good = || ShimFound {
            name: "mts-eth0".into(),
            record: Some(rec.clone()),
            record_path: "/d/.mactrunk-shims/mts-eth0.json".into(),
            link: Some(LinkInfo {
                index: 9,
                name: "mts-eth0".into(),
                kind: Some("macvlan".into()),
                mac: Some(shim_mac),
                up: true,
                ..LinkInfo::default()
            }),
            host_routes: vec![HostRoute {
                dst: "10.0.0.2/32".parse().unwrap(),
                src: Some(host_ip),
                protocol: RTPROT_MACTRUNK,
            }],
            host_neighbours: vec![Neighbour {
                index: 9,
                ip: c_ip,
                mac: c_mac,
                permanent: true,
            }],
            neighbours: vec![Neighbour {
                index: 5,
                ip: host_ip,
                mac: Some(shim_mac),
                permanent: true,
            }],
        };
        assert_eq!(shim_mismatch(&good(), &container), None);
        type Change = fn(&mut ShimFound);
        let cases: [(Change, &str); 10] = [
            (
                |f| f.record = None,
                "no record of the host shim mts-eth0 (/d/",
            ),
            (
                |f| f.record.as_mut().unwrap().users.clear(),
                "does not list this attachment",
            ),
            (|f| f.link = None, "the host shim mts-eth0 is missing"),
            (
                |f| f.link.as_mut().unwrap().index = 10,
                "not the host shim mactrunk created",
            ),
            (|f| f.link.as_mut().unwrap().up = false, "is down"),
            (
                |f| f.host_routes.clear(),
                "the host route to 10.0.0.2 on mts-eth0 is missing",
            ),
            (
                |f| f.host_routes[0].src = None,
                "has source none, recorded 10.0.0.250",
            ),
            (
                |f| f.host_neighbours[0].mac = Some([2, 0, 0, 0, 0, 9]),
                "neighbour entry for 10.0.0.2",
            ),
            (
                |f| f.neighbours[0].permanent = false,
                "the container's permanent neighbour entry for the host's 10.0.0.250",
            ),
            (|f| f.neighbours.clear(), "06:01:02:03:04:05"),
        ];
        for (change, needle) in cases {
            let mut f = good();
            change(&mut f);
            let why = shim_mismatch(&f, &container).expect(needle);
            assert!(why.contains(needle), "{needle}: {why}");
        }
        // A host address outside the container's subnet needs the container's route to it.
        let mut f = good();
        let far: IpAddr = "172.16.0.5".parse().unwrap();
        f.record.as_mut().unwrap().users[0].routes[0].src = far;
        f.host_routes[0].src = Some(far);
        f.neighbours[0].ip = far;
        let why = shim_mismatch(&f, &container).unwrap();
        assert!(
            why.contains("route to the host's 172.16.0.5 is missing"),
            "{why}"
        );
        let mut c2 = found();
        c2.routes
            .push(serde_json::from_value(json!({"dst": "172.16.0.5/32"})).unwrap());
        assert_eq!(shim_mismatch(&f, &c2), None);
    }
}
