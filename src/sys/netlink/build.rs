//! Pure netlink message builders and parsers: no sockets, no I/O. Everything
//! the kernel is sent or answers goes through here, so it can be unit-tested
//! attribute by attribute.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::RawFd;

use ipnetwork::IpNetwork;
use rtnetlink::packet_core::{NLM_F_ACK_TLVS, NLM_F_CAPPED};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, AddressScope,
};
use rtnetlink::packet_route::link::{
    InfoData, InfoIpVlan, InfoKind, InfoMacVlan, InfoVlan, IpVlanFlags, IpVlanMode, LinkAttribute,
    LinkFlags, LinkInfo as NlLinkInfo, LinkMessage, MacVlanMode, VlanProtocol as NlVlanProtocol,
};
use rtnetlink::packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState,
};
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteMetric, RouteProtocol,
    RouteScope, RouteType,
};

use super::{
    AddrFlags, IpvlanFlags, IpvlanMode, LinkError, LinkInfo, LinkKind, MacvlanMode, VlanProtocol,
};
use crate::cni::Route;

/// Reject names the kernel would refuse (`dev_valid_name`) or read as a
/// template (`%d`), before asking it; the rule is the CNI layer's.
pub fn check_ifname(name: &str) -> Result<(), LinkError> {
    match crate::cni::names::interface_name_problem(name) {
        None => Ok(()),
        Some(problem) => Err(LinkError::Invalid(format!(
            "invalid interface name {:?}: {problem}",
            name.escape_debug().to_string()
        ))),
    }
}

/// What a new macvlan or ipvlan link looks like. `netns_fd` is
/// `IFLA_NET_NS_FD`: the link is born in that namespace while its parent is
/// looked up in the namespace of the netlink socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkParams<'a> {
    pub name: &'a str,
    pub parent: u32,
    pub kind: LinkKind,
    pub mtu: Option<u32>,
    pub mac: Option<[u8; 6]>,
    pub netns_fd: Option<RawFd>,
}

/// RTM_NEWLINK body creating a macvlan or an ipvlan (send with
/// CREATE|EXCL|ACK). An ipvlan always carries its mode and its flags: the
/// kernel takes l3 for a missing mode, and both are one setting per parent,
/// so leaving one out would not leave the parent as it was either.
pub fn link_message(p: &LinkParams<'_>) -> LinkMessage {
    let mut msg = LinkMessage::default();
    msg.attributes
        .push(LinkAttribute::IfName(p.name.to_string()));
    msg.attributes.push(LinkAttribute::Link(p.parent));
    if let Some(mtu) = p.mtu {
        msg.attributes.push(LinkAttribute::Mtu(mtu));
    }
    if let Some(mac) = p.mac {
        msg.attributes.push(LinkAttribute::Address(mac.to_vec()));
    }
    if let Some(fd) = p.netns_fd {
        msg.attributes.push(LinkAttribute::NetNsFd(fd));
    }
    let info = match p.kind {
        LinkKind::Macvlan { mode, bcqueuelen } => {
            let mut data = vec![InfoMacVlan::Mode(mode.into())];
            if let Some(len) = bcqueuelen {
                data.push(InfoMacVlan::BcQueueLen(len));
            }
            vec![
                NlLinkInfo::Kind(InfoKind::MacVlan),
                NlLinkInfo::Data(InfoData::MacVlan(data)),
            ]
        }
        LinkKind::Ipvlan { mode, flags } => vec![
            NlLinkInfo::Kind(InfoKind::IpVlan),
            NlLinkInfo::Data(InfoData::IpVlan(vec![
                InfoIpVlan::Mode(mode.into()),
                InfoIpVlan::Flags(IpVlanFlags::from_bits_retain(flags.bits())),
            ])),
        ],
    };
    msg.attributes.push(LinkAttribute::LinkInfo(info));
    msg
}

/// RTM_NEWLINK (no CREATE) body giving link `index` the MAC `mac`.
pub fn mac_message(index: u32, mac: [u8; 6]) -> LinkMessage {
    let mut msg = LinkMessage::default();
    msg.header.index = index;
    msg.attributes.push(LinkAttribute::Address(mac.to_vec()));
    msg
}

/// RTM_NEWLINK body creating an 802.1Q/802.1ad sub-interface.
pub fn vlan_message(name: &str, parent: u32, vid: u16, protocol: VlanProtocol) -> LinkMessage {
    let mut msg = LinkMessage::default();
    msg.attributes.push(LinkAttribute::IfName(name.to_string()));
    msg.attributes.push(LinkAttribute::Link(parent));
    msg.attributes.push(LinkAttribute::LinkInfo(vec![
        NlLinkInfo::Kind(InfoKind::Vlan),
        NlLinkInfo::Data(InfoData::Vlan(vec![
            InfoVlan::Id(vid),
            InfoVlan::Protocol(protocol.into()),
        ])),
    ]));
    msg
}

/// RTM_NEWLINK (no CREATE) body giving link `index` a new name and/or an
/// alias (IFLA_IFALIAS): one request, so a link renamed from its temporary
/// name is tagged in the same step.
pub fn rename_message(index: u32, new_name: Option<&str>, alias: Option<&str>) -> LinkMessage {
    let mut msg = LinkMessage::default();
    msg.header.index = index;
    if let Some(name) = new_name {
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
    }
    if let Some(alias) = alias {
        msg.attributes
            .push(LinkAttribute::IfAlias(alias.to_string()));
    }
    msg
}

/// RTM_NEWLINK (no CREATE) body setting IFF_UP on link `index`.
pub fn set_up_message(index: u32) -> LinkMessage {
    let mut msg = LinkMessage::default();
    msg.header.index = index;
    msg.header.flags = LinkFlags::Up;
    msg.header.change_mask = LinkFlags::Up;
    msg
}

/// RTM_DELLINK / RTM_GETLINK body naming link `index`.
pub fn index_message(index: u32) -> LinkMessage {
    let mut msg = LinkMessage::default();
    msg.header.index = index;
    msg
}

/// RTM_GETLINK body looking a link up by name.
pub fn name_message(name: &str) -> LinkMessage {
    let mut msg = LinkMessage::default();
    msg.attributes.push(LinkAttribute::IfName(name.to_string()));
    msg
}

/// RTM_NEWADDR body. IPv4 gets IFA_LOCAL = IFA_ADDRESS and a broadcast
/// address (prefix < 31), as `ip addr add ... brd +` does; the DAD flags only
/// apply to IPv6 and go both into the header and IFA_FLAGS.
pub fn address_message(index: u32, addr: IpNetwork, flags: AddrFlags) -> AddressMessage {
    let mut msg = AddressMessage::default();
    msg.header.index = index;
    msg.header.prefix_len = addr.prefix();
    msg.header.scope = AddressScope::Universe;
    msg.attributes.push(AddressAttribute::Local(addr.ip()));
    msg.attributes.push(AddressAttribute::Address(addr.ip()));
    match addr {
        IpNetwork::V4(net) => {
            msg.header.family = AddressFamily::Inet;
            if net.prefix() < 31 {
                msg.attributes
                    .push(AddressAttribute::Broadcast(v4_broadcast(
                        net.ip(),
                        net.prefix(),
                    )));
            }
        }
        IpNetwork::V6(_) => {
            msg.header.family = AddressFamily::Inet6;
            let mut f = AddressFlags::empty();
            if flags.nodad {
                f |= AddressFlags::Nodad;
            }
            if flags.optimistic {
                f |= AddressFlags::Optimistic;
            }
            if !f.is_empty() {
                msg.header.flags = AddressHeaderFlags::from_bits_retain(f.bits() as u8);
                msg.attributes.push(AddressAttribute::Flags(f));
            }
        }
    }
    msg
}

fn v4_broadcast(ip: Ipv4Addr, prefix: u8) -> Ipv4Addr {
    let host_mask = u32::MAX.checked_shr(u32::from(prefix)).unwrap_or(0);
    Ipv4Addr::from(u32::from(ip) | host_mask)
}

/// RTM_GETADDR / RTM_GETROUTE dump request bodies for one family.
pub fn address_dump_message(family: AddressFamily) -> AddressMessage {
    let mut msg = AddressMessage::default();
    msg.header.family = family;
    msg
}

pub fn route_dump_message(family: AddressFamily) -> RouteMessage {
    let mut msg = RouteMessage::default();
    msg.header.address_family = family;
    msg
}

pub const RT_TABLE_MAIN: u32 = 254;
pub const RT_TABLE_LOCAL: u32 = 255;

/// RTM_NEWROUTE body for `route` out of link `index`. The gateway is
/// `route.gw`, or else `fallback_gw` when it has the family of `route.dst`
/// (host-local: a route without gw goes via the range's gateway). A direct IPv4
/// route gets scope link, everything else scope universe, unless `route.scope`
/// says otherwise. Protocol is `boot`, as for `ip route add`.
pub fn route_message(
    index: u32,
    route: &Route,
    fallback_gw: Option<IpAddr>,
) -> Result<RouteMessage, LinkError> {
    let v4 = route.dst.is_ipv4();
    let gw = match route.gw {
        Some(gw) if gw.is_ipv4() != v4 => {
            return Err(LinkError::Invalid(format!(
                "route {}: gateway {gw} is not of the same address family",
                route.dst
            )));
        }
        Some(gw) => Some(gw),
        None => fallback_gw.filter(|g| g.is_ipv4() == v4),
    };
    let table = route.table.unwrap_or(RT_TABLE_MAIN);
    let mut msg = RouteMessage::default();
    msg.header.address_family = if v4 {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    msg.header.destination_prefix_length = route.dst.prefix();
    msg.header.table = u8::try_from(table).unwrap_or(RouteHeader::RT_TABLE_UNSPEC);
    msg.header.protocol = RouteProtocol::Boot;
    msg.header.kind = RouteType::Unicast;
    msg.header.scope = match route.scope {
        Some(s) => RouteScope::from(s),
        None if v4 && gw.is_none() => RouteScope::Link,
        None => RouteScope::Universe,
    };
    if route.dst.prefix() > 0 {
        msg.attributes
            .push(RouteAttribute::Destination(route_address(route.dst.ip())));
    }
    if let Some(gw) = gw {
        msg.attributes
            .push(RouteAttribute::Gateway(route_address(gw)));
    }
    msg.attributes.push(RouteAttribute::Oif(index));
    if let Some(prio) = route.priority {
        msg.attributes.push(RouteAttribute::Priority(prio));
    }
    msg.attributes.push(RouteAttribute::Table(table));
    let mut metrics = Vec::new();
    if let Some(mtu) = route.mtu {
        metrics.push(RouteMetric::Mtu(mtu));
    }
    if let Some(advmss) = route.advmss {
        metrics.push(RouteMetric::Advmss(advmss));
    }
    if !metrics.is_empty() {
        msg.attributes.push(RouteAttribute::Metrics(metrics));
    }
    Ok(msg)
}

/// The rtm_protocol of the host routes mactrunk puts on its host shims
/// (`ip route` shows `proto 109`): GC tells them from anybody else's by it.
pub const RTPROT_MACTRUNK: u8 = 109;

/// RTM_NEWROUTE / RTM_DELROUTE body of a host route: `dst` as a /32 (/128)
/// out of link `index`, scope link, table main, protocol
/// [`RTPROT_MACTRUNK`], with `src` as RTA_PREFSRC (the address the host's
/// packets to `dst` carry). For a delete, `src` is left out (the kernel
/// matches on destination, table and device).
pub fn host_route_message(index: u32, dst: IpAddr, src: Option<IpAddr>) -> RouteMessage {
    let mut msg = RouteMessage::default();
    let (family, len) = match dst {
        IpAddr::V4(_) => (AddressFamily::Inet, 32),
        IpAddr::V6(_) => (AddressFamily::Inet6, 128),
    };
    msg.header.address_family = family;
    msg.header.destination_prefix_length = len;
    msg.header.table = RouteHeader::RT_TABLE_MAIN;
    msg.header.protocol = RouteProtocol::from(RTPROT_MACTRUNK);
    msg.header.kind = RouteType::Unicast;
    msg.header.scope = RouteScope::Link;
    msg.attributes
        .push(RouteAttribute::Destination(route_address(dst)));
    if let Some(src) = src.filter(|s| s.is_ipv4() == dst.is_ipv4()) {
        msg.attributes
            .push(RouteAttribute::PrefSource(route_address(src)));
    }
    msg.attributes.push(RouteAttribute::Oif(index));
    msg.attributes.push(RouteAttribute::Table(RT_TABLE_MAIN));
    msg
}

/// A neighbour entry read back from the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbour {
    pub index: u32,
    pub ip: IpAddr,
    pub mac: Option<[u8; 6]>,
    /// NUD_PERMANENT: added by hand (or by mactrunk), never resolved or expired.
    pub permanent: bool,
}

/// RTM_NEWNEIGH body of a permanent entry `ip` -> `mac` on link `index`
/// (send with CREATE|REPLACE); without `mac`, the RTM_DELNEIGH body.
pub fn neighbour_message(index: u32, ip: IpAddr, mac: Option<[u8; 6]>) -> NeighbourMessage {
    let mut msg = NeighbourMessage::default();
    msg.header.family = match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    };
    msg.header.ifindex = index;
    msg.header.state = NeighbourState::Permanent;
    msg.header.kind = RouteType::Unspec;
    msg.attributes
        .push(NeighbourAttribute::Destination(match ip {
            IpAddr::V4(a) => NeighbourAddress::Inet(a),
            IpAddr::V6(a) => NeighbourAddress::Inet6(a),
        }));
    if let Some(mac) = mac {
        msg.attributes
            .push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
    }
    msg
}

/// RTM_GETNEIGH dump request body for one family.
pub fn neighbour_dump_message(family: AddressFamily) -> NeighbourMessage {
    let mut msg = NeighbourMessage::default();
    msg.header.family = family;
    msg
}

/// Decode RTM_NEWNEIGH; None for families other than IPv4/IPv6 or an entry
/// without a destination.
pub fn parse_neighbour(msg: &NeighbourMessage) -> Option<Neighbour> {
    let mut ip = None;
    let mut mac = None;
    for attr in &msg.attributes {
        match attr {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => ip = Some(IpAddr::V4(*a)),
            NeighbourAttribute::Destination(NeighbourAddress::Inet6(a)) => {
                ip = Some(IpAddr::V6(*a));
            }
            NeighbourAttribute::LinkLayerAddress(b) => mac = <[u8; 6]>::try_from(b.as_slice()).ok(),
            _ => {}
        }
    }
    Some(Neighbour {
        index: msg.header.ifindex,
        ip: ip?,
        mac,
        permanent: msg.header.state == NeighbourState::Permanent,
    })
}

fn route_address(ip: IpAddr) -> RouteAddress {
    match ip {
        IpAddr::V4(a) => RouteAddress::Inet(a),
        IpAddr::V6(a) => RouteAddress::Inet6(a),
    }
}

fn ip_of(addr: &RouteAddress) -> Option<IpAddr> {
    match addr {
        RouteAddress::Inet(a) => Some(IpAddr::V4(*a)),
        RouteAddress::Inet6(a) => Some(IpAddr::V6(*a)),
        _ => None,
    }
}

/// Decode the parts of RTM_NEWLINK we care about.
pub fn parse_link(msg: &LinkMessage) -> LinkInfo {
    let mut info = LinkInfo {
        index: msg.header.index,
        up: msg.header.flags.contains(LinkFlags::Up),
        ..LinkInfo::default()
    };
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::IfName(n) => info.name = n.clone(),
            LinkAttribute::Mtu(m) => info.mtu = *m,
            LinkAttribute::Address(a) => info.mac = <[u8; 6]>::try_from(a.as_slice()).ok(),
            LinkAttribute::Link(l) => info.parent_index = Some(*l),
            LinkAttribute::LinkNetNsId(id) => info.parent_netnsid = Some(*id),
            LinkAttribute::IfAlias(a) => info.alias = Some(a.clone()),
            LinkAttribute::Controller(c) => info.controller = Some(*c),
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    match i {
                        NlLinkInfo::Kind(k) => info.kind = Some(k.to_string()),
                        NlLinkInfo::Data(InfoData::MacVlan(data)) => {
                            for d in data {
                                match d {
                                    InfoMacVlan::Mode(m) => {
                                        info.macvlan_mode = MacvlanMode::from_nl(*m)
                                    }
                                    InfoMacVlan::BcQueueLen(n) => {
                                        info.macvlan_bcqueuelen = Some(*n)
                                    }
                                    _ => {}
                                }
                            }
                        }
                        NlLinkInfo::Data(InfoData::IpVlan(data)) => {
                            for d in data {
                                match d {
                                    InfoIpVlan::Mode(m) => {
                                        info.ipvlan_mode = IpvlanMode::from_nl(*m)
                                    }
                                    InfoIpVlan::Flags(f) => {
                                        info.ipvlan_flags = IpvlanFlags::from_bits(f.bits())
                                    }
                                    _ => {}
                                }
                            }
                        }
                        NlLinkInfo::Data(InfoData::Vlan(data)) => {
                            for d in data {
                                match d {
                                    InfoVlan::Id(id) => info.vlan_id = Some(*id),
                                    InfoVlan::Protocol(p) => {
                                        info.vlan_protocol = Some(VlanProtocol::from(*p))
                                    }
                                    _ => {}
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    info
}

/// One address from RTM_NEWADDR: (link index, address/prefix, IFA_F_* flags).
/// The local address is IFA_LOCAL when present (it differs from IFA_ADDRESS
/// only on point-to-point links), else IFA_ADDRESS.
pub fn parse_address(msg: &AddressMessage) -> Option<(u32, IpNetwork, u32)> {
    let mut local = None;
    let mut address = None;
    let mut flags = u32::from(msg.header.flags.bits());
    for attr in &msg.attributes {
        match attr {
            AddressAttribute::Local(ip) => local = Some(*ip),
            AddressAttribute::Address(ip) => address = Some(*ip),
            AddressAttribute::Flags(f) => flags = f.bits(),
            _ => {}
        }
    }
    let ip = local.or(address)?;
    let net = IpNetwork::new(ip, msg.header.prefix_len).ok()?;
    Some((msg.header.index, net, flags))
}

/// A route read back from the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteEntry {
    /// Output interface: RTA_OIF, or the first hop of a multipath route.
    pub oif: Option<u32>,
    pub kind: RouteType,
    /// rtm_protocol: who installed it (boot, kernel, [`RTPROT_MACTRUNK`], ...).
    pub protocol: u8,
    /// RTA_PREFSRC: the source address the route gives the host's packets.
    pub prefsrc: Option<IpAddr>,
    /// Table, scope and (when the kernel reports one) priority are always filled in.
    pub route: Route,
}

/// Decode RTM_NEWROUTE; None for families other than IPv4/IPv6.
pub fn parse_route(msg: &RouteMessage) -> Option<RouteEntry> {
    let h = &msg.header;
    let unspecified: IpAddr = match h.address_family {
        AddressFamily::Inet => Ipv4Addr::UNSPECIFIED.into(),
        AddressFamily::Inet6 => Ipv6Addr::UNSPECIFIED.into(),
        _ => return None,
    };
    let mut dst_ip = unspecified;
    let mut route = Route {
        dst: IpNetwork::new(unspecified, 0).ok()?,
        gw: None,
        mtu: None,
        advmss: None,
        priority: None,
        table: Some(u32::from(h.table)),
        scope: Some(u8::from(h.scope)),
    };
    let mut oif = None;
    let mut prefsrc = None;
    for attr in &msg.attributes {
        match attr {
            RouteAttribute::PrefSource(a) => prefsrc = ip_of(a),
            RouteAttribute::Destination(a) => {
                if let Some(ip) = ip_of(a) {
                    dst_ip = ip;
                }
            }
            RouteAttribute::Gateway(a) => route.gw = ip_of(a),
            RouteAttribute::Oif(i) => oif = Some(*i),
            RouteAttribute::Priority(p) => route.priority = Some(*p),
            RouteAttribute::Table(t) => route.table = Some(*t),
            RouteAttribute::Metrics(ms) => {
                for m in ms {
                    match m {
                        RouteMetric::Mtu(v) => route.mtu = Some(*v),
                        RouteMetric::Advmss(v) => route.advmss = Some(*v),
                        _ => {}
                    }
                }
            }
            RouteAttribute::MultiPath(hops) => {
                if let Some(first) = hops.first() {
                    oif = oif.or(Some(first.interface_index));
                    for a in &first.attributes {
                        if let RouteAttribute::Gateway(g) = a {
                            route.gw = route.gw.or(ip_of(g));
                        }
                    }
                }
            }
            _ => {}
        }
    }
    route.dst = IpNetwork::new(dst_ip, h.destination_prefix_length).ok()?;
    Some(RouteEntry {
        oif,
        kind: h.kind,
        protocol: u8::from(h.protocol),
        prefsrc,
        route,
    })
}

/// The kernel's extended-ack text (NLMSGERR_ATTR_MSG) from the body of an
/// NLMSG_ERROR after its error code: the echoed request (only its 16-byte
/// header when NLM_F_CAPPED) followed by TLVs when NLM_F_ACK_TLVS.
pub fn extack_message(nl_flags: u16, body: &[u8]) -> Option<String> {
    const NLMSGERR_ATTR_MSG: u16 = 1;
    if nl_flags & NLM_F_ACK_TLVS == 0 {
        return None;
    }
    let echoed = if nl_flags & NLM_F_CAPPED != 0 {
        16
    } else {
        let len = body.get(0..4)?;
        u32::from_ne_bytes([len[0], len[1], len[2], len[3]]) as usize
    };
    let mut off = echoed.checked_add(3)? & !3;
    while off + 4 <= body.len() {
        let len = usize::from(u16::from_ne_bytes([body[off], body[off + 1]]));
        let kind = u16::from_ne_bytes([body[off + 2], body[off + 3]]) & 0x3fff;
        if len < 4 || off + len > body.len() {
            return None;
        }
        if kind == NLMSGERR_ATTR_MSG {
            let value = &body[off + 4..off + len];
            let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
            let text = String::from_utf8_lossy(&value[..end]).trim().to_string();
            return (!text.is_empty()).then_some(text);
        }
        off += (len + 3) & !3;
    }
    None
}

impl MacvlanMode {
    fn from_nl(m: MacVlanMode) -> Option<MacvlanMode> {
        Some(match m {
            MacVlanMode::Private => MacvlanMode::Private,
            MacVlanMode::Vepa => MacvlanMode::Vepa,
            MacVlanMode::Bridge => MacvlanMode::Bridge,
            MacVlanMode::Passthrough => MacvlanMode::Passthru,
            MacVlanMode::Source => MacvlanMode::Source,
            _ => return None,
        })
    }
}

impl From<MacvlanMode> for MacVlanMode {
    fn from(m: MacvlanMode) -> Self {
        match m {
            MacvlanMode::Private => MacVlanMode::Private,
            MacvlanMode::Vepa => MacVlanMode::Vepa,
            MacvlanMode::Bridge => MacVlanMode::Bridge,
            MacvlanMode::Passthru => MacVlanMode::Passthrough,
            MacvlanMode::Source => MacVlanMode::Source,
        }
    }
}

impl IpvlanMode {
    fn from_nl(m: IpVlanMode) -> Option<IpvlanMode> {
        Some(match m {
            IpVlanMode::L2 => IpvlanMode::L2,
            IpVlanMode::L3 => IpvlanMode::L3,
            IpVlanMode::L3S => IpvlanMode::L3s,
            _ => return None,
        })
    }
}

impl From<IpvlanMode> for IpVlanMode {
    fn from(m: IpvlanMode) -> Self {
        match m {
            IpvlanMode::L2 => IpVlanMode::L2,
            IpvlanMode::L3 => IpVlanMode::L3,
            IpvlanMode::L3s => IpVlanMode::L3S,
        }
    }
}

impl From<VlanProtocol> for NlVlanProtocol {
    fn from(p: VlanProtocol) -> Self {
        match p {
            VlanProtocol::Dot1Q => NlVlanProtocol::Ieee8021Q,
            VlanProtocol::Dot1Ad => NlVlanProtocol::Ieee8021Ad,
        }
    }
}

impl From<NlVlanProtocol> for VlanProtocol {
    fn from(p: NlVlanProtocol) -> Self {
        match p {
            NlVlanProtocol::Ieee8021Ad => VlanProtocol::Dot1Ad,
            _ => VlanProtocol::Dot1Q,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtnetlink::packet_core::{Emitable, NetlinkMessage};
    use rtnetlink::packet_route::RouteNetlinkMessage;

    fn macvlan_data(msg: &LinkMessage) -> (Option<InfoKind>, Vec<InfoMacVlan>) {
        let mut kind = None;
        let mut data = Vec::new();
        for a in &msg.attributes {
            if let LinkAttribute::LinkInfo(infos) = a {
                for i in infos {
                    match i {
                        NlLinkInfo::Kind(k) => kind = Some(k.clone()),
                        NlLinkInfo::Data(InfoData::MacVlan(d)) => data = d.clone(),
                        _ => {}
                    }
                }
            }
        }
        (kind, data)
    }

    fn params(kind: LinkKind) -> LinkParams<'static> {
        LinkParams {
            name: "m",
            parent: 3,
            kind,
            mtu: None,
            mac: None,
            netns_fd: None,
        }
    }

    fn macvlan(mode: MacvlanMode, bcqueuelen: Option<u32>) -> LinkKind {
        LinkKind::Macvlan { mode, bcqueuelen }
    }

    /// The message as the kernel receives it.
    fn wire(msg: LinkMessage) -> Vec<u8> {
        let mut nl = NetlinkMessage::from(RouteNetlinkMessage::NewLink(msg));
        nl.finalize();
        let mut buf = vec![0u8; nl.buffer_len()];
        nl.emit(&mut buf);
        buf
    }

    #[test]
    fn macvlan_message_full() {
        let p = LinkParams {
            name: "mtltmp0",
            parent: 7,
            kind: macvlan(MacvlanMode::Vepa, Some(2000)),
            mtu: Some(1400),
            mac: Some([0x02, 0, 0, 0, 0, 0x42]),
            netns_fd: Some(9),
        };
        let msg = link_message(&p);
        let attrs = &msg.attributes;
        assert!(attrs.contains(&LinkAttribute::IfName("mtltmp0".into())));
        assert!(attrs.contains(&LinkAttribute::Link(7)));
        assert!(attrs.contains(&LinkAttribute::Mtu(1400)));
        assert!(attrs.contains(&LinkAttribute::Address(vec![2, 0, 0, 0, 0, 0x42])));
        assert!(attrs.contains(&LinkAttribute::NetNsFd(9)));
        let (kind, data) = macvlan_data(&msg);
        assert_eq!(kind, Some(InfoKind::MacVlan));
        assert_eq!(
            data,
            vec![
                InfoMacVlan::Mode(MacVlanMode::Vepa),
                InfoMacVlan::BcQueueLen(2000)
            ]
        );
        assert_eq!(msg.header.index, 0);
        assert!(msg.header.flags.is_empty(), "created down");
    }

    #[test]
    fn macvlan_message_minimal() {
        let msg = link_message(&params(macvlan(MacvlanMode::Bridge, None)));
        assert!(!msg.attributes.iter().any(|a| matches!(
            a,
            LinkAttribute::Mtu(_) | LinkAttribute::Address(_) | LinkAttribute::NetNsFd(_)
        )));
        let (_, data) = macvlan_data(&msg);
        assert_eq!(data, vec![InfoMacVlan::Mode(MacVlanMode::Bridge)]);
    }

    #[test]
    fn macvlan_message_emits_mode_bytes() {
        // IFLA_MACVLAN_MODE (1) = MACVLAN_MODE_PASSTHRU (8) must be in the wire bytes.
        let mut p = params(macvlan(MacvlanMode::Passthru, None));
        p.netns_fd = Some(5);
        let buf = wire(link_message(&p));
        let mode_nla = [8u8, 0, 1, 0, 8, 0, 0, 0];
        assert!(buf.windows(8).any(|w| w == mode_nla), "{buf:?}");
        // IFLA_NET_NS_FD = 28, value 5
        let fd_nla = [8u8, 0, 28, 0, 5, 0, 0, 0];
        assert!(buf.windows(8).any(|w| w == fd_nla), "{buf:?}");
        assert!(buf.windows(7).any(|w| w == b"macvlan"));
    }

    #[test]
    fn ipvlan_message_carries_mode_and_flags() {
        for mode in IpvlanMode::ALL {
            for flags in IpvlanFlags::ALL {
                let mut p = params(LinkKind::Ipvlan { mode, flags });
                p.mtu = Some(1400);
                p.netns_fd = Some(7);
                let msg = link_message(&p);
                assert!(msg.attributes.contains(&LinkAttribute::LinkInfo(vec![
                    NlLinkInfo::Kind(InfoKind::IpVlan),
                    NlLinkInfo::Data(InfoData::IpVlan(vec![
                        InfoIpVlan::Mode(mode.into()),
                        InfoIpVlan::Flags(IpVlanFlags::from_bits_retain(flags.bits())),
                    ])),
                ])));
                assert!(msg.attributes.contains(&LinkAttribute::Link(3)));
                assert!(msg.attributes.contains(&LinkAttribute::NetNsFd(7)));
                // Read back as the kernel reports it (IFLA_LINKINFO of the new link).
                let info = parse_link(&msg);
                assert_eq!(info.kind.as_deref(), Some("ipvlan"));
                assert_eq!(info.ipvlan_mode, Some(mode));
                assert_eq!(info.ipvlan_flags, Some(flags));
                assert_eq!(info.macvlan_mode, None);
            }
        }
    }

    #[test]
    fn ipvlan_message_wire_bytes() {
        // IFLA_IPVLAN_MODE (1) = IPVLAN_MODE_L3S (2), IFLA_IPVLAN_FLAGS (2) =
        // IPVLAN_F_VEPA (2): u16 attributes, padded to 8 bytes.
        let kind = LinkKind::Ipvlan {
            mode: IpvlanMode::L3s,
            flags: IpvlanFlags::Vepa,
        };
        let buf = wire(link_message(&params(kind)));
        assert!(buf.windows(6).any(|w| w == b"ipvlan"), "{buf:?}");
        let mode = [6u8, 0, 1, 0, 2, 0];
        let flags = [6u8, 0, 2, 0, 2, 0];
        assert!(buf.windows(6).any(|w| w == mode), "{buf:?}");
        assert!(buf.windows(6).any(|w| w == flags), "{buf:?}");
        // L2 = 0 and bridge = 0 are sent too: the kernel would take a
        // missing mode as l3.
        let kind = LinkKind::Ipvlan {
            mode: IpvlanMode::L2,
            flags: IpvlanFlags::Bridge,
        };
        let buf = wire(link_message(&params(kind)));
        assert!(buf.windows(6).any(|w| w == [6u8, 0, 1, 0, 0, 0]), "{buf:?}");
        assert!(buf.windows(6).any(|w| w == [6u8, 0, 2, 0, 0, 0]), "{buf:?}");
        // Private is bit 0.
        assert_eq!(IpvlanFlags::Private.bits(), 1);
        assert_eq!(
            IpvlanFlags::from_bits(3),
            None,
            "both bits: never a kernel value"
        );
        assert_eq!(IpvlanFlags::from_bits(0), Some(IpvlanFlags::Bridge));
    }

    #[test]
    fn mac_message_sets_only_the_address() {
        let m = mac_message(9, [2, 0x6d, 10, 0, 0, 5]);
        assert_eq!(m.header.index, 9);
        assert_eq!(
            m.attributes,
            vec![LinkAttribute::Address(vec![2, 0x6d, 10, 0, 0, 5])]
        );
        assert!(m.header.flags.is_empty() && m.header.change_mask.is_empty());
    }

    #[test]
    fn parse_link_reads_the_controller() {
        let mut msg = index_message(4);
        msg.attributes.push(LinkAttribute::Controller(2));
        assert_eq!(parse_link(&msg).controller, Some(2));
        assert_eq!(parse_link(&index_message(4)).controller, None);
    }

    #[test]
    fn vlan_message_attrs() {
        let msg = vlan_message("eth0.50", 2, 50, VlanProtocol::Dot1Ad);
        assert!(
            msg.attributes
                .contains(&LinkAttribute::IfName("eth0.50".into()))
        );
        assert!(msg.attributes.contains(&LinkAttribute::Link(2)));
        assert!(msg.attributes.contains(&LinkAttribute::LinkInfo(vec![
            NlLinkInfo::Kind(InfoKind::Vlan),
            NlLinkInfo::Data(InfoData::Vlan(vec![
                InfoVlan::Id(50),
                InfoVlan::Protocol(NlVlanProtocol::Ieee8021Ad)
            ])),
        ])));
        let info = parse_link(&msg);
        assert_eq!(info.kind.as_deref(), Some("vlan"));
        assert_eq!(info.vlan_id, Some(50));
        assert_eq!(info.vlan_protocol, Some(VlanProtocol::Dot1Ad));
        assert_eq!(info.parent_index, Some(2));
    }

    #[test]
    fn rename_up_messages() {
        let m = rename_message(4, Some("eth0"), None);
        assert_eq!(m.header.index, 4);
        assert_eq!(m.attributes, vec![LinkAttribute::IfName("eth0".into())]);
        let m = rename_message(4, Some("eth0"), Some("mactrunk tag"));
        assert_eq!(
            m.attributes,
            vec![
                LinkAttribute::IfName("eth0".into()),
                LinkAttribute::IfAlias("mactrunk tag".into())
            ]
        );
        let m = rename_message(4, None, Some("t"));
        assert_eq!(m.attributes, vec![LinkAttribute::IfAlias("t".into())]);
        let m = set_up_message(4);
        assert_eq!(m.header.index, 4);
        assert_eq!(m.header.flags, LinkFlags::Up);
        assert_eq!(m.header.change_mask, LinkFlags::Up);
        assert!(m.attributes.is_empty());
    }

    #[test]
    fn parse_link_roundtrip_macvlan() {
        let p = LinkParams {
            name: "eth0",
            parent: 12,
            kind: macvlan(MacvlanMode::Private, Some(2000)),
            mtu: Some(9000),
            mac: Some([2, 1, 2, 3, 4, 5]),
            netns_fd: None,
        };
        let mut msg = link_message(&p);
        msg.header.index = 3;
        msg.header.flags = LinkFlags::Up | LinkFlags::Broadcast;
        msg.attributes.push(LinkAttribute::IfAlias("hello".into()));
        msg.attributes.push(LinkAttribute::LinkNetNsId(0));
        let info = parse_link(&msg);
        assert_eq!(
            info,
            LinkInfo {
                index: 3,
                name: "eth0".into(),
                kind: Some("macvlan".into()),
                mtu: 9000,
                mac: Some([2, 1, 2, 3, 4, 5]),
                parent_index: Some(12),
                parent_netnsid: Some(0),
                macvlan_mode: Some(MacvlanMode::Private),
                macvlan_bcqueuelen: Some(2000),
                ipvlan_mode: None,
                ipvlan_flags: None,
                vlan_id: None,
                vlan_protocol: None,
                up: true,
                alias: Some("hello".into()),
                controller: None,
            }
        );
    }

    #[test]
    fn check_ifname_rules() {
        for ok in ["eth0", "a", "eth0.50", "123456789012345", "mv-x_y"] {
            assert!(check_ifname(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "1234567890123456",
            "a/b",
            "a:b",
            "a b",
            "a\tb",
            "eth%d",
        ] {
            assert!(
                matches!(check_ifname(bad), Err(LinkError::Invalid(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn address_message_v4() {
        let net: IpNetwork = "10.1.2.3/24".parse().unwrap();
        let m = address_message(5, net, AddrFlags::default());
        assert_eq!(m.header.family, AddressFamily::Inet);
        assert_eq!(m.header.prefix_len, 24);
        assert_eq!(m.header.index, 5);
        let ip: IpAddr = "10.1.2.3".parse().unwrap();
        assert!(m.attributes.contains(&AddressAttribute::Local(ip)));
        assert!(m.attributes.contains(&AddressAttribute::Address(ip)));
        assert!(
            m.attributes
                .contains(&AddressAttribute::Broadcast("10.1.2.255".parse().unwrap()))
        );
        assert!(
            !m.attributes
                .iter()
                .any(|a| matches!(a, AddressAttribute::Flags(_)))
        );
        // DAD flags are ignored for IPv4.
        let m = address_message(
            5,
            net,
            AddrFlags {
                nodad: true,
                optimistic: true,
            },
        );
        assert!(
            !m.attributes
                .iter()
                .any(|a| matches!(a, AddressAttribute::Flags(_)))
        );
        assert_eq!(parse_address(&m), Some((5, net, 0)));
    }

    #[test]
    fn address_message_v4_edge_prefixes() {
        for (p, brd) in [
            (0u8, Some("255.255.255.255")),
            (30, Some("10.0.0.3")),
            (31, None),
            (32, None),
        ] {
            let net = IpNetwork::new("10.0.0.1".parse().unwrap(), p).unwrap();
            let m = address_message(1, net, AddrFlags::default());
            let got = m.attributes.iter().find_map(|a| match a {
                AddressAttribute::Broadcast(b) => Some(*b),
                _ => None,
            });
            assert_eq!(got, brd.map(|b| b.parse().unwrap()), "prefix {p}");
        }
    }

    #[test]
    fn address_message_v6_flags() {
        let net: IpNetwork = "2001:db8::5/64".parse().unwrap();
        let m = address_message(
            9,
            net,
            AddrFlags {
                nodad: true,
                optimistic: false,
            },
        );
        assert_eq!(m.header.family, AddressFamily::Inet6);
        assert!(
            m.attributes
                .contains(&AddressAttribute::Flags(AddressFlags::Nodad))
        );
        assert_eq!(m.header.flags, AddressHeaderFlags::Nodad);
        assert_eq!(parse_address(&m), Some((9, net, 0x02)));
        let m = address_message(
            9,
            net,
            AddrFlags {
                nodad: false,
                optimistic: true,
            },
        );
        assert!(
            m.attributes
                .contains(&AddressAttribute::Flags(AddressFlags::Optimistic))
        );
        let m = address_message(9, net, AddrFlags::default());
        assert!(
            !m.attributes
                .iter()
                .any(|a| matches!(a, AddressAttribute::Flags(_)))
        );
    }

    #[test]
    fn parse_address_prefers_local_and_flags_attr() {
        let mut m = AddressMessage::default();
        m.header.family = AddressFamily::Inet;
        m.header.prefix_len = 32;
        m.header.index = 2;
        m.header.flags = AddressHeaderFlags::Permanent;
        m.attributes
            .push(AddressAttribute::Address("10.9.9.9".parse().unwrap()));
        m.attributes
            .push(AddressAttribute::Local("10.0.0.1".parse().unwrap()));
        m.attributes.push(AddressAttribute::Flags(
            AddressFlags::Permanent | AddressFlags::Noprefixroute,
        ));
        assert_eq!(
            parse_address(&m),
            Some((2, "10.0.0.1/32".parse().unwrap(), 0x80 | 0x200))
        );
        let empty = AddressMessage::default();
        assert_eq!(parse_address(&empty), None);
    }

    fn route(dst: &str) -> Route {
        Route {
            dst: dst.parse().unwrap(),
            gw: None,
            mtu: None,
            advmss: None,
            priority: None,
            table: None,
            scope: None,
        }
    }

    #[test]
    fn route_message_default_via_fallback_gw() {
        let r = route("0.0.0.0/0");
        let m = route_message(3, &r, Some("10.0.0.1".parse().unwrap())).unwrap();
        assert_eq!(m.header.address_family, AddressFamily::Inet);
        assert_eq!(m.header.destination_prefix_length, 0);
        assert_eq!(m.header.table, 254);
        assert_eq!(m.header.scope, RouteScope::Universe);
        assert_eq!(m.header.kind, RouteType::Unicast);
        assert_eq!(m.header.protocol, RouteProtocol::Boot);
        assert!(
            !m.attributes
                .iter()
                .any(|a| matches!(a, RouteAttribute::Destination(_)))
        );
        assert!(
            m.attributes
                .contains(&RouteAttribute::Gateway(RouteAddress::Inet(
                    "10.0.0.1".parse().unwrap()
                )))
        );
        assert!(m.attributes.contains(&RouteAttribute::Oif(3)));
        assert!(m.attributes.contains(&RouteAttribute::Table(254)));
        let back = parse_route(&m).unwrap();
        assert_eq!(back.oif, Some(3));
        assert_eq!(back.route.dst, r.dst);
        assert_eq!(back.route.gw, Some("10.0.0.1".parse().unwrap()));
    }

    #[test]
    fn route_message_fallback_gw_wrong_family_is_ignored() {
        let r = route("2001:db8:1::/48");
        let m = route_message(3, &r, Some("10.0.0.1".parse().unwrap())).unwrap();
        assert!(
            !m.attributes
                .iter()
                .any(|a| matches!(a, RouteAttribute::Gateway(_)))
        );
        assert_eq!(
            m.header.scope,
            RouteScope::Universe,
            "v6 direct stays universe"
        );
        assert!(
            m.attributes
                .contains(&RouteAttribute::Destination(RouteAddress::Inet6(
                    "2001:db8:1::".parse().unwrap()
                )))
        );
    }

    #[test]
    fn route_message_explicit_gw_wrong_family_is_invalid() {
        let mut r = route("10.0.0.0/8");
        r.gw = Some("2001:db8::1".parse().unwrap());
        assert!(matches!(
            route_message(1, &r, None),
            Err(LinkError::Invalid(_))
        ));
    }

    #[test]
    fn route_message_all_options() {
        let mut r = route("192.168.0.0/16");
        r.gw = Some("10.0.0.254".parse().unwrap());
        r.mtu = Some(1400);
        r.advmss = Some(1360);
        r.priority = Some(100);
        r.table = Some(1000);
        r.scope = Some(200);
        let m = route_message(8, &r, Some("10.0.0.1".parse().unwrap())).unwrap();
        assert_eq!(m.header.table, 0, "table > 255 only in RTA_TABLE");
        assert_eq!(m.header.scope, RouteScope::Site);
        assert_eq!(m.header.destination_prefix_length, 16);
        assert!(m.attributes.contains(&RouteAttribute::Table(1000)));
        assert!(m.attributes.contains(&RouteAttribute::Priority(100)));
        assert!(m.attributes.contains(&RouteAttribute::Metrics(vec![
            RouteMetric::Mtu(1400),
            RouteMetric::Advmss(1360)
        ])));
        assert!(
            m.attributes
                .contains(&RouteAttribute::Gateway(RouteAddress::Inet(
                    "10.0.0.254".parse().unwrap()
                )))
        );
        let back = parse_route(&m).unwrap();
        assert_eq!(
            back.route,
            Route {
                scope: Some(200),
                ..r
            }
        );
    }

    #[test]
    fn route_message_direct_v4_is_scope_link() {
        let m = route_message(2, &route("10.5.0.0/16"), None).unwrap();
        assert_eq!(m.header.scope, RouteScope::Link);
        let back = parse_route(&m).unwrap();
        assert_eq!(back.route.gw, None);
        assert_eq!(back.route.table, Some(254));
    }

    #[test]
    fn parse_route_multipath_and_other_family() {
        use rtnetlink::packet_route::route::RouteNextHop;
        let mut m = RouteMessage::default();
        m.header.address_family = AddressFamily::Inet;
        m.header.table = 254;
        let mut hop = RouteNextHop::default();
        hop.interface_index = 6;
        hop.attributes
            .push(RouteAttribute::Gateway(RouteAddress::Inet(
                "10.0.0.9".parse().unwrap(),
            )));
        m.attributes.push(RouteAttribute::MultiPath(vec![hop]));
        let e = parse_route(&m).unwrap();
        assert_eq!(e.oif, Some(6));
        assert_eq!(e.route.gw, Some("10.0.0.9".parse().unwrap()));
        assert_eq!(e.route.dst, "0.0.0.0/0".parse::<IpNetwork>().unwrap());
        let mut m = RouteMessage::default();
        m.header.address_family = AddressFamily::Bridge;
        assert_eq!(parse_route(&m), None);
    }

    #[test]
    fn extack_parsing() {
        // Capped: 16-byte echoed header, then NLMSGERR_ATTR_MSG "Invalid MTU".
        let mut body = vec![0u8; 16];
        let text = b"Invalid MTU\0";
        let len = (4 + text.len()) as u16;
        body.extend_from_slice(&len.to_ne_bytes());
        body.extend_from_slice(&1u16.to_ne_bytes());
        body.extend_from_slice(text);
        assert_eq!(
            extack_message(NLM_F_CAPPED | NLM_F_ACK_TLVS, &body).as_deref(),
            Some("Invalid MTU")
        );
        assert_eq!(extack_message(NLM_F_CAPPED, &body), None, "no TLV flag");
        // Not capped: the echoed request is 20 bytes (length in its header).
        let mut body2 = vec![0u8; 20];
        body2[0..4].copy_from_slice(&20u32.to_ne_bytes());
        // an OFFS attribute first (type 2), then the message
        body2.extend_from_slice(&8u16.to_ne_bytes());
        body2.extend_from_slice(&2u16.to_ne_bytes());
        body2.extend_from_slice(&0u32.to_ne_bytes());
        body2.extend_from_slice(&body[16..]);
        assert_eq!(
            extack_message(NLM_F_ACK_TLVS, &body2).as_deref(),
            Some("Invalid MTU")
        );
        // Truncated / garbage input never panics.
        for cut in 0..body2.len() {
            let _ = extack_message(NLM_F_ACK_TLVS, &body2[..cut]);
            let _ = extack_message(NLM_F_ACK_TLVS | NLM_F_CAPPED, &body2[..cut]);
        }
        let mut huge = vec![0u8; 4];
        huge[0..4].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert_eq!(extack_message(NLM_F_ACK_TLVS, &huge), None);
    }
    #[test]
    fn host_route_message_v4_and_v6() {
        let dst: IpAddr = "192.168.50.100".parse().unwrap();
        let src: IpAddr = "192.168.50.5".parse().unwrap();
        let msg = host_route_message(9, dst, Some(src));
        assert_eq!(msg.header.address_family, AddressFamily::Inet);
        assert_eq!(msg.header.destination_prefix_length, 32);
        assert_eq!(msg.header.scope, RouteScope::Link);
        assert_eq!(msg.header.kind, RouteType::Unicast);
        assert_eq!(u8::from(msg.header.protocol), RTPROT_MACTRUNK);
        assert_eq!(msg.header.table, RouteHeader::RT_TABLE_MAIN);
        let a = &msg.attributes;
        assert!(a.contains(&RouteAttribute::Destination(RouteAddress::Inet(
            "192.168.50.100".parse().unwrap()
        ))));
        assert!(a.contains(&RouteAttribute::PrefSource(RouteAddress::Inet(
            "192.168.50.5".parse().unwrap()
        ))));
        assert!(a.contains(&RouteAttribute::Oif(9)));
        assert!(a.contains(&RouteAttribute::Table(RT_TABLE_MAIN)));
        assert!(!a.iter().any(|x| matches!(x, RouteAttribute::Gateway(_))));
        // Read back as the kernel reports it.
        let e = parse_route(&msg).unwrap();
        assert_eq!(e.oif, Some(9));
        assert_eq!(e.prefsrc, Some(src));
        assert_eq!(e.protocol, RTPROT_MACTRUNK);
        assert_eq!(
            e.route.dst,
            "192.168.50.100/32".parse::<IpNetwork>().unwrap()
        );

        let v6: IpAddr = "fd00::100".parse().unwrap();
        let msg = host_route_message(9, v6, Some(src));
        assert_eq!(msg.header.address_family, AddressFamily::Inet6);
        assert_eq!(msg.header.destination_prefix_length, 128);
        assert!(
            !msg.attributes
                .iter()
                .any(|x| matches!(x, RouteAttribute::PrefSource(_))),
            "a source of the other family is left out"
        );
        let e = parse_route(&msg).unwrap();
        assert_eq!(e.route.dst, "fd00::100/128".parse::<IpNetwork>().unwrap());
        assert_eq!(e.prefsrc, None);
    }

    #[test]
    fn neighbour_messages_round_trip() {
        let mac = [6, 1, 2, 3, 4, 5];
        let ip: IpAddr = "10.0.0.7".parse().unwrap();
        let msg = neighbour_message(4, ip, Some(mac));
        assert_eq!(msg.header.family, AddressFamily::Inet);
        assert_eq!(msg.header.ifindex, 4);
        assert_eq!(msg.header.state, NeighbourState::Permanent);
        assert!(
            msg.attributes
                .contains(&NeighbourAttribute::LinkLayerAddress(mac.to_vec()))
        );
        assert_eq!(
            parse_neighbour(&msg),
            Some(Neighbour {
                index: 4,
                ip,
                mac: Some(mac),
                permanent: true
            })
        );
        let v6: IpAddr = "fd00::7".parse().unwrap();
        let del = neighbour_message(4, v6, None);
        assert_eq!(del.header.family, AddressFamily::Inet6);
        assert!(
            !del.attributes
                .iter()
                .any(|a| matches!(a, NeighbourAttribute::LinkLayerAddress(_)))
        );
        let n = parse_neighbour(&del).unwrap();
        assert_eq!((n.ip, n.mac), (v6, None));
        // Wire bytes: ndmsg then NDA_DST and NDA_LLADDR.
        let mut nl =
            rtnetlink::packet_core::NetlinkMessage::from(RouteNetlinkMessage::NewNeighbour(msg));
        nl.finalize();
        let mut buf = vec![0u8; nl.buffer_len()];
        nl.emit(&mut buf);
        let body = &buf[16..];
        assert_eq!(body[0], libc::AF_INET as u8);
        assert_eq!(u32::from_ne_bytes(body[4..8].try_into().unwrap()), 4);
        assert_eq!(
            u16::from_ne_bytes(body[8..10].try_into().unwrap()),
            0x80,
            "NUD_PERMANENT"
        );
        assert!(buf.windows(4).any(|w| w == [10, 0, 0, 7]));
        assert!(buf.windows(6).any(|w| w == mac));
        assert!(parse_neighbour(&neighbour_dump_message(AddressFamily::Inet)).is_none());
    }
}
