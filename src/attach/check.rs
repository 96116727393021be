//! CHECK: the attachment is still what ADD made of it (prevResult): the
//! store holds its addresses, its parent is there, and its link has the
//! tag, mode, parent, MAC, addresses and routes. The comparison of the link
//! is pure ([`link_mismatch`]); this file gathers what it compares.

use std::net::IpAddr;

use ipnetwork::IpNetwork;

use super::config::PluginConfig;
use super::parent::{self, Parent};
use super::tag::{link_tag, not_ours};
use super::vlan;
use super::{kernel, open_container_netns, owner};
use crate::cni::env::Command;
use crate::cni::netconf::IpamKind;
use crate::cni::skel::Request;
use crate::cni::{CniError, CniOutput, IpConfig, Route, code};
use crate::ipam::{self, IpamConfig, delegate};
use crate::sys::netlink::{LinkInfo, LinkKind, LinkOps, format_mac};

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
    let want = Expected {
        tag: link_tag(&req.name, &req.args.container_id),
        conf,
        master: &master,
        prev,
        index,
    };
    let have = Found {
        addresses: container
            .addresses(link.index)?
            .into_iter()
            .map(|(a, _)| a)
            .collect(),
        routes: container.routes()?,
        link,
    };
    // Host-side extras of the attachment (none yet; the host shim's route)
    // would be compared here, after the container side.
    match link_mismatch(&want, &expected, &have) {
        None => Ok(()),
        Some(why) => Err(mismatch(why)),
    }
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
        let cases: [(Change, &str); 7] = [
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
}
