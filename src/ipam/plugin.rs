//! `mactrunk-ipam` as a CNI IPAM plugin for any main plugin (bridge, ipvlan,
//! the reference macvlan, ...): the same store and allocator the main plugin
//! runs in-process.

use std::net::IpAddr;

use crate::cni::gc::valid_attachments;
use crate::cni::netconf::parse_ipam_kind;
use crate::cni::skel::{Plugin, Request};
use crate::cni::{CniError, CniOutput};
use crate::ipam::store::Owner;
use crate::ipam::{self, IpamConfig, StoreLocation};
use crate::sys::netns::NetNs;

pub struct StandaloneIpam;

fn config(req: &Request) -> Result<IpamConfig, CniError> {
    if let Some(obj) = req.conf.as_object() {
        parse_ipam_kind(obj)?;
    }
    IpamConfig::from_netconf(&req.conf, &req.args.args)
}

impl Plugin for StandaloneIpam {
    fn add(&self, req: &Request) -> Result<CniOutput, CniError> {
        // The namespace only identifies the attachment (an ADD of the same
        // container ID and interface for another one is refused); a path
        // that cannot be opened leaves that check out, not the ADD.
        let netns = NetNs::open(&req.args.netns).ok().and_then(|ns| ns.id());
        ipam::add_in(&config(req)?, &Owner::of(&req.args), netns.as_deref()).map(|a| a.out)
    }

    fn del(&self, req: &Request) -> Result<(), CniError> {
        ipam::del_in(
            &StoreLocation::from_netconf(&req.conf)?,
            &Owner::of(&req.args),
            ipam::cluster_conf_of(&req.conf).as_ref(),
        )
    }

    fn check(&self, req: &Request) -> Result<(), CniError> {
        let conf = config(req)?;
        // The main plugin's prevResult lists every interface; ours are the
        // addresses on CNI_IFNAME, or all of them when interfaces are absent.
        let expected: Vec<IpAddr> = match req.conf.get("prevResult") {
            Some(prev) => {
                let prev = CniOutput::from_json(prev, req.version)?;
                let ours = prev
                    .interfaces
                    .iter()
                    .position(|i| i.name == req.args.ifname);
                prev.ips
                    .iter()
                    .filter(|ip| ours.is_none() || ip.interface.is_none() || ip.interface == ours)
                    .map(|ip| ip.address.ip())
                    .collect()
            }
            None => Vec::new(),
        };
        ipam::check(&conf, &Owner::of(&req.args), &expected)
    }

    fn gc(&self, req: &Request) -> Result<(), CniError> {
        let valid: Option<Vec<Owner>> =
            valid_attachments(&req.conf)?.map(|list| list.iter().map(Owner::from).collect());
        ipam::gc_in(
            &StoreLocation::from_netconf(&req.conf)?,
            valid.as_deref(),
            ipam::cluster_conf_of(&req.conf).as_ref(),
        )
        .map(|_| ())
    }

    fn status(&self, req: &Request) -> Result<(), CniError> {
        ipam::status(&config(req)?)
    }
}
