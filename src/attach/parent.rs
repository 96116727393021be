//! Which link the macvlan sits on: `master` (or the default route's link),
//! or a VLAN of it (`vlan`, or a dotted `master` naming no existing link),
//! looked up in the namespace the master lives in. Reads only.

use super::config::PluginConfig;
use super::vlan::{self, VlanParent};
use super::vlan_registry::VlanWant;
use crate::cni::CniError;
use crate::sys::netlink::{LinkInfo, LinkOps, VlanProtocol};

/// The link the macvlan sits on, as the config names it. (One short-lived
/// value per command: the size of its variants does not matter.)
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub(crate) enum Parent {
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

impl Parent {
    /// The MTU the macvlan's parent has (or, for a VLAN link still to be
    /// created, will inherit from its lower link), and how to name it.
    pub(crate) fn mtu(&self) -> (u32, String) {
        match self {
            Parent::Plain(l) => (l.mtu, format!("master {:?}", l.name)),
            Parent::Vlan { want, lower, link } => (
                link.as_ref().map_or(lower.mtu, |l| l.mtu),
                format!("VLAN parent {:?}", want.parent.link_name),
            ),
        }
    }

    /// A link of the VLAN's name that is not that VLAN: code 7, naming the
    /// config key the VLAN came from.
    pub(crate) fn conflict(&self) -> Option<CniError> {
        let Parent::Vlan {
            want,
            lower,
            link: Some(l),
        } = self
        else {
            return None;
        };
        vlan::mismatch(&want.parent, want.protocol, lower.index, l)
            .map(|why| CniError::config(want.key, why))
    }
}

/// The link the macvlan attaches to, looked up in the namespace of `nl`.
fn resolve_master(nl: &dyn LinkOps, conf: &PluginConfig) -> Result<LinkInfo, CniError> {
    let where_ = nl.label();
    let name = match &conf.master {
        Some(m) => m.clone(),
        None => {
            return nl.default_route_link()?.ok_or_else(|| {
                CniError::config(
                    "master",
                    format!(
                        "not set and there is no default route in the {where_} to take it from"
                    ),
                )
            });
        }
    };
    nl.link_by_name(&name)?.ok_or_else(|| {
        CniError::config(
            "master",
            format!("interface {name:?} not found in the {where_}"),
        )
    })
}

/// Resolve `master` / `vlan` in the namespace of `nl`. A dotted `master`
/// that names an existing link is that link; only when no such link exists
/// is it read as `<lower>.<vid>`.
pub(crate) fn resolve(nl: &dyn LinkOps, conf: &PluginConfig) -> Result<Parent, CniError> {
    if let Some(v) = &conf.vlan {
        if conf.link_in_container {
            return Err(CniError::config(
                "vlan",
                "VLAN parents are not supported with linkInContainer (create the VLAN link in that namespace and name it in master)",
            ));
        }
        let lower = resolve_master(nl, conf)?;
        return vlan_parent(nl, lower, v.id, v.protocol, "vlan");
    }
    if let Some(m) = conf.master.as_deref()
        && !conf.link_in_container
        && let Some((lower_name, vid)) = vlan::split_dotted(m)
    {
        if let Some(existing) = nl.link_by_name(m)? {
            return Ok(Parent::Plain(existing));
        }
        let lower = nl.link_by_name(lower_name)?.ok_or_else(|| {
            CniError::config(
                "master",
                format!(
                    "interface {m:?} not found in the {}, and neither is {lower_name:?} to create it as VLAN {vid} on",
                    nl.label()
                ),
            )
        })?;
        return vlan_parent(nl, lower, vid, VlanProtocol::Dot1Q, "master");
    }
    resolve_master(nl, conf).map(Parent::Plain)
}

fn vlan_parent(
    nl: &dyn LinkOps,
    lower: LinkInfo,
    vid: u16,
    protocol: VlanProtocol,
    key: &'static str,
) -> Result<Parent, CniError> {
    let parent = VlanParent::new(&lower.name, vid);
    let link = nl.link_by_name(&parent.link_name)?;
    Ok(Parent::Vlan {
        want: VlanWant {
            parent,
            protocol,
            key,
        },
        lower,
        link,
    })
}
