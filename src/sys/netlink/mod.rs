//! Every rtnetlink call of the plugin, behind one [`Netlink`] connection bound
//! to the network namespace it was opened in.
//!
//! A netlink socket keeps the namespace of the thread that created it, so a
//! `Netlink` opened inside [`crate::sys::netns::NsThread`] talks to the container for
//! its whole life. Messages are built by the pure functions in [`build`]; this
//! file only sends them, maps errno values to [`LinkError`] and retries dumps
//! the kernel marks as interrupted (NLM_F_DUMP_INTR), like the reference
//! plugins' `netlinksafe`.

pub mod build;
#[cfg(test)]
pub(crate) mod fake;
pub mod ops;

pub use build::{Neighbour, RTPROT_MACTRUNK};
pub use ops::{Kernel, LinkOps, NsLinks, Sysctl};

use std::fmt;
use std::io;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use futures_util::StreamExt;
use ipnetwork::IpNetwork;
use rtnetlink::packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST,
    NetlinkMessage, NetlinkPayload,
};
use rtnetlink::packet_route::route::RouteType;
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::sys::AsyncSocket;

use crate::cni::{self, CniError, code};
use crate::sys::netns::NetNs;
use build::{RT_TABLE_LOCAL, RT_TABLE_MAIN, RouteEntry};

/// IFA_F_* address flags as reported by [`Netlink::addresses`].
pub mod ifa_flags {
    pub const SECONDARY: u32 = 0x01;
    pub const NODAD: u32 = 0x02;
    pub const OPTIMISTIC: u32 = 0x04;
    pub const DADFAILED: u32 = 0x08;
    pub const DEPRECATED: u32 = 0x20;
    pub const TENTATIVE: u32 = 0x40;
    pub const PERMANENT: u32 = 0x80;
}

/// How often a dump the kernel marked as interrupted is retried.
const DUMP_ATTEMPTS: usize = 5;
/// Longest wait for the answer to one request (the RTNL lock can be busy on
/// a host starting many containers, but a lost reply must not hang us).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Poll interval of [`Netlink::wait_dad`].
const DAD_POLL: Duration = Duration::from_millis(20);

/// A mode-like setting with one exact, lower-case config spelling per
/// value: the enum, `ALL`, `as_str`, `Display`, and a `FromStr` whose error
/// names the setting and lists every spelling.
macro_rules! spelled_enum {
    (
        $(#[$meta:meta])*
        $name:ident, $what:literal,
        { $( $(#[$vmeta:meta])* $variant:ident => $text:literal ),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
        pub enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $name {
            pub const ALL: [$name; [$($text),+].len()] = [$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text ),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $name::ALL
                    .into_iter()
                    .find(|m| m.as_str() == s)
                    .ok_or_else(|| {
                        format!(
                            "unknown {} {s:?}: expected {}",
                            $what,
                            one_of(&$name::ALL.map($name::as_str))
                        )
                    })
            }
        }
    };
}

/// `a, b or c`.
fn one_of(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => (*one).to_string(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

spelled_enum! {
    /// The macvlan mode (`IFLA_MACVLAN_MODE`), spelled as the reference
    /// plugin does.
    MacvlanMode, "macvlan mode", {
        #[default]
        Bridge => "bridge",
        Private => "private",
        Vepa => "vepa",
        Passthru => "passthru",
        Source => "source",
    }
}

spelled_enum! {
    /// The ipvlan mode (`IFLA_IPVLAN_MODE`), spelled as the reference ipvlan
    /// plugin does. The kernel keeps one mode per parent (the ipvlan
    /// "port"): creating an ipvlan sets it for every ipvlan of that parent,
    /// and a create without the attribute sets l3.
    IpvlanMode, "ipvlan mode", {
        #[default]
        L2 => "l2",
        L3 => "l3",
        L3s => "l3s",
    }
}

impl IpvlanMode {
    /// l3 and l3s: the link has no ARP (IFF_NOARP); the parent's namespace
    /// routes its packets.
    pub fn is_l3(self) -> bool {
        self != IpvlanMode::L2
    }
}

spelled_enum! {
    /// The ipvlan flags (`IFLA_IPVLAN_FLAGS`), spelled as iproute2 does:
    /// bridge (none), private (IPVLAN_F_PRIVATE) or vepa (IPVLAN_F_VEPA); the
    /// kernel refuses both bits. Like the mode, one setting per parent.
    IpvlanFlags, "ipvlan flags", {
        #[default]
        Bridge => "bridge",
        Private => "private",
        Vepa => "vepa",
    }
}

impl IpvlanFlags {
    /// The IFLA_IPVLAN_FLAGS value.
    pub fn bits(self) -> u16 {
        match self {
            IpvlanFlags::Bridge => 0,
            IpvlanFlags::Private => 0x01,
            IpvlanFlags::Vepa => 0x02,
        }
    }

    /// None for a value the kernel never reports (both bits, unknown bits).
    pub fn from_bits(bits: u16) -> Option<IpvlanFlags> {
        IpvlanFlags::ALL.into_iter().find(|f| f.bits() == bits)
    }
}

/// The kind of container link mactrunk creates, with its kind-specific
/// attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkKind {
    /// A macvlan: its own MAC on the parent's network.
    Macvlan {
        mode: MacvlanMode,
        /// IFLA_MACVLAN_BC_QUEUE_LEN (Linux 5.11+).
        bcqueuelen: Option<u32>,
    },
    /// An ipvlan: the parent's MAC, demultiplexed by IP address.
    Ipvlan {
        mode: IpvlanMode,
        flags: IpvlanFlags,
    },
}

impl Default for LinkKind {
    fn default() -> Self {
        LinkKind::Macvlan {
            mode: MacvlanMode::Bridge,
            bcqueuelen: None,
        }
    }
}

impl LinkKind {
    /// IFLA_INFO_KIND: "macvlan" or "ipvlan".
    pub fn name(&self) -> &'static str {
        match self {
            LinkKind::Macvlan { .. } => "macvlan",
            LinkKind::Ipvlan { .. } => "ipvlan",
        }
    }

    pub fn is_ipvlan(&self) -> bool {
        matches!(self, LinkKind::Ipvlan { .. })
    }
}

/// `macvlan mode bridge`, `ipvlan mode l2 bridge`.
impl fmt::Display for LinkKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkKind::Macvlan { mode, .. } => write!(f, "macvlan mode {mode}"),
            LinkKind::Ipvlan { mode, flags } => write!(f, "ipvlan mode {mode} {flags}"),
        }
    }
}

/// The kinds of link mactrunk creates in a container (and tags).
pub const CONTAINER_LINK_KINDS: [&str; 2] = ["macvlan", "ipvlan"];

/// The usable 802.1Q/802.1ad VLAN ids: 0 means "untagged", 4095 is reserved.
pub const VLAN_IDS: std::ops::RangeInclusive<u16> = 1..=4094;

/// The VLAN tag protocol (`IFLA_VLAN_PROTOCOL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum VlanProtocol {
    #[default]
    Dot1Q,
    Dot1Ad,
}

impl fmt::Display for VlanProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VlanProtocol::Dot1Q => "802.1Q",
            VlanProtocol::Dot1Ad => "802.1ad",
        })
    }
}

/// Parses `802.1Q` / `802.1ad` (case-insensitive).
impl FromStr for VlanProtocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "802.1q" => Ok(VlanProtocol::Dot1Q),
            "802.1ad" => Ok(VlanProtocol::Dot1Ad),
            _ => Err(format!(
                "unknown VLAN protocol {s:?}: expected 802.1Q or 802.1ad"
            )),
        }
    }
}

/// What we read back about a link.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkInfo {
    pub index: u32,
    pub name: String,
    /// IFLA_INFO_KIND: "macvlan", "vlan", "veth", ...; None for physical NICs.
    pub kind: Option<String>,
    pub mtu: u32,
    pub mac: Option<[u8; 6]>,
    /// IFLA_LINK: the parent (macvlan, vlan) or peer (veth) index. When
    /// `parent_netnsid` is set, the index is in that other namespace.
    pub parent_index: Option<u32>,
    /// IFLA_LINK_NETNSID: the parent lives in another namespace.
    pub parent_netnsid: Option<i32>,
    pub macvlan_mode: Option<MacvlanMode>,
    /// IFLA_MACVLAN_BC_QUEUE_LEN as requested at creation; kernels before
    /// 5.11 neither know nor report it.
    pub macvlan_bcqueuelen: Option<u32>,
    /// IFLA_IPVLAN_MODE / IFLA_IPVLAN_FLAGS: the parent's (port-wide) values.
    pub ipvlan_mode: Option<IpvlanMode>,
    pub ipvlan_flags: Option<IpvlanFlags>,
    pub vlan_id: Option<u16>,
    pub vlan_protocol: Option<VlanProtocol>,
    /// IFF_UP (administratively up).
    pub up: bool,
    pub alias: Option<String>,
    /// IFLA_MASTER: the bridge, bond or VRF this link is a port of.
    pub controller: Option<u32>,
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(m: &[u8; 6]) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

/// A macvlan or ipvlan to create. With `netns` set the link is created
/// directly inside that namespace (IFLA_NET_NS_FD), while `parent` is an
/// index in the namespace of the `Netlink` connection.
#[derive(Debug, Clone)]
pub struct LinkSpec<'a> {
    pub name: &'a str,
    pub parent: u32,
    pub kind: LinkKind,
    pub mtu: Option<u32>,
    /// IFLA_ADDRESS; an ipvlan always has its parent's (the kernel refuses another).
    pub mac: Option<[u8; 6]>,
    pub netns: Option<&'a NetNs>,
}

/// A route of the main table out of one link, as [`LinkOps::routes_of`]
/// reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRoute {
    pub dst: IpNetwork,
    /// RTA_PREFSRC.
    pub src: Option<IpAddr>,
    /// rtm_protocol ([`RTPROT_MACTRUNK`] for mactrunk's host routes).
    pub protocol: u8,
}

/// IPv6 DAD flags for [`Netlink::add_address`]; ignored for IPv4.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AddrFlags {
    /// IFA_F_NODAD: skip duplicate address detection.
    pub nodad: bool,
    /// IFA_F_OPTIMISTIC: usable while DAD runs (RFC 4429).
    pub optimistic: bool,
}

/// A failed link operation. Every message names the operation, the interface
/// and, when the connection has a label, the namespace.
#[derive(Debug)]
pub enum LinkError {
    /// The link (or the object named) does not exist (ENODEV and friends).
    NotFound(String),
    /// The name / address / route already exists (EEXIST).
    Exists(String),
    /// Any other kernel refusal; `msg` has strerror and the kernel's extended ack.
    Netlink { op: String, errno: i32, msg: String },
    /// IPv6 DAD marked an address as duplicate.
    DadFailed { addr: IpNetwork, link: String },
    /// DAD did not finish in time.
    Timeout(String),
    /// The request itself is invalid (bad interface name, mixed families).
    Invalid(String),
    /// Socket or runtime problem (opening the connection, connection closed).
    Io { op: String, source: io::Error },
}

impl LinkError {
    /// The kernel errno, when the kernel refused.
    pub fn errno(&self) -> Option<i32> {
        match self {
            LinkError::Netlink { errno, .. } => Some(*errno),
            LinkError::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, LinkError::NotFound(_))
    }

    pub fn is_exists(&self) -> bool {
        matches!(self, LinkError::Exists(_))
    }
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkError::NotFound(what) => write!(f, "{what}: not found"),
            LinkError::Exists(what) => write!(f, "{what}: already exists"),
            LinkError::Netlink { op, msg, .. } => write!(f, "{op}: {msg}"),
            LinkError::DadFailed { addr, link } => write!(
                f,
                "IPv6 duplicate address detection failed for {addr} on {link}: the address is in use on the network"
            ),
            LinkError::Timeout(what) => write!(f, "{what}: timed out"),
            LinkError::Invalid(what) => f.write_str(what),
            LinkError::Io { op, source } => write!(f, "{op}: {source}"),
        }
    }
}

impl std::error::Error for LinkError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LinkError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<LinkError> for CniError {
    /// Code 100 (kernel), except EBUSY/EAGAIN: 11 (try again later), and an
    /// invalid request: 7.
    fn from(e: LinkError) -> Self {
        let code = match e.errno() {
            Some(libc::EBUSY) | Some(libc::EAGAIN) => code::TRY_AGAIN_LATER,
            _ if matches!(e, LinkError::Invalid(_)) => code::INVALID_CONFIG,
            _ => code::KERNEL,
        };
        CniError::new(code, e.to_string())
    }
}

/// Why one request failed, before it is given context.
#[derive(Debug, PartialEq, Eq)]
enum Failure {
    Errno { errno: i32, extack: Option<String> },
    Interrupted,
    Closed,
    Overrun,
    TimedOut(Duration),
}

impl Failure {
    fn errno(&self) -> i32 {
        match self {
            Failure::Errno { errno, .. } => *errno,
            Failure::Interrupted => libc::EINTR,
            Failure::Closed => libc::EPIPE,
            Failure::Overrun => libc::ENOBUFS,
            Failure::TimedOut(_) => libc::ETIMEDOUT,
        }
    }

    fn text(&self) -> String {
        match self {
            Failure::Errno { errno, extack } => {
                let base = io::Error::from_raw_os_error(*errno).to_string();
                match extack {
                    Some(x) => format!("{base} (kernel: {x})"),
                    None => base,
                }
            }
            Failure::Interrupted => {
                format!("dump interrupted by concurrent changes {DUMP_ATTEMPTS} times")
            }
            Failure::Closed => "netlink connection closed before the kernel answered".into(),
            Failure::Overrun => "netlink socket overrun".into(),
            Failure::TimedOut(t) => {
                format!("no answer from the kernel within {} ms", t.as_millis())
            }
        }
    }
}

/// Collects the replies to one request. `flags` decide how it ends:
/// NLM_F_ACK requests with an ACK, dumps with DONE, plain gets with their one
/// reply. A reply flagged NLM_F_DUMP_INTR (or a DONE carrying -EINTR) makes
/// the whole answer [`Failure::Interrupted`], to be retried.
#[derive(Debug)]
struct Collector {
    flags: u16,
    out: Vec<RouteNetlinkMessage>,
    finished: bool,
    interrupted: bool,
}

impl Collector {
    fn new(flags: u16) -> Self {
        Collector {
            flags,
            out: Vec::new(),
            finished: false,
            interrupted: false,
        }
    }

    fn push(&mut self, reply: NetlinkMessage<RouteNetlinkMessage>) -> Result<(), Failure> {
        let reply_flags = reply.header.flags;
        if reply_flags & NLM_F_DUMP_INTR != 0 {
            self.interrupted = true;
        }
        match reply.payload {
            NetlinkPayload::InnerMessage(inner) => {
                self.out.push(inner);
                if self.flags & (NLM_F_ACK | NLM_F_DUMP) == 0 {
                    self.finished = true;
                }
            }
            NetlinkPayload::Error(err) => match err.code {
                None => self.finished = true,
                Some(code) => {
                    return Err(Failure::Errno {
                        errno: code.get().saturating_abs(),
                        extack: build::extack_message(reply_flags, &err.header),
                    });
                }
            },
            NetlinkPayload::Done(done) => {
                if done.code == -libc::EINTR {
                    self.interrupted = true;
                } else if done.code < 0 {
                    return Err(Failure::Errno {
                        errno: done.code.saturating_abs(),
                        extack: None,
                    });
                }
                self.finished = true;
            }
            NetlinkPayload::Overrun(_) => return Err(Failure::Overrun),
            _ => {}
        }
        Ok(())
    }

    fn finish(self) -> Result<Vec<RouteNetlinkMessage>, Failure> {
        if !self.finished {
            return Err(Failure::Closed);
        }
        if self.interrupted {
            return Err(Failure::Interrupted);
        }
        Ok(self.out)
    }
}

/// One rtnetlink connection, bound to the network namespace of the thread
/// that opened it.
#[derive(Debug, Clone)]
pub struct Netlink {
    handle: rtnetlink::Handle,
    /// Where this connection points, e.g. "container netns /run/netns/x" or
    /// "host"; appended to error messages.
    label: String,
    /// Longest wait for the kernel's answer to one request.
    timeout: Duration,
}

impl Netlink {
    /// Open a connection in the calling thread's network namespace and spawn
    /// its driver on the current tokio runtime (which must have IO and time
    /// enabled).
    /// Inside an `NsThread`, enter a runtime first: either a fresh `current_thread`
    /// runtime built on that thread, or the main runtime's `Handle::enter()`
    /// guard (the socket keeps the container netns either way).
    pub fn open() -> Result<Netlink, LinkError> {
        let rt = tokio::runtime::Handle::try_current().map_err(|e| LinkError::Io {
            op: "open netlink socket".into(),
            source: io::Error::other(format!("no tokio runtime: {e}")),
        })?;
        // tokio panics (rather than failing) when the runtime lacks the timer
        // or IO driver; report that programming error instead of crashing.
        std::panic::catch_unwind(|| drop(tokio::time::sleep(Duration::ZERO))).map_err(|_| {
            LinkError::Io {
                op: "open netlink socket".into(),
                source: io::Error::other("the tokio runtime has timers disabled"),
            }
        })?;
        let opened =
            std::panic::catch_unwind(rtnetlink::new_connection).map_err(|_| LinkError::Io {
                op: "open netlink socket".into(),
                source: io::Error::other("the tokio runtime has IO disabled"),
            })?;
        let (mut conn, handle, _) = opened.map_err(|e| LinkError::Io {
            op: "open netlink socket".into(),
            source: e,
        })?;
        // We want to see ACKs and DONE ourselves: an ACK tells success from a
        // dropped connection, and DONE carries NLM_F_DUMP_INTR.
        conn.set_forward_ack(true);
        conn.set_forward_done(true);
        let sock = conn.socket_mut().socket_mut();
        // Best effort: extended acks give the kernel's reason in messages.
        let _ = sock.set_ext_ack(true);
        let _ = sock.set_cap_ack(true);
        rt.spawn(conn);
        Ok(Netlink {
            handle,
            label: String::new(),
            timeout: REQUEST_TIMEOUT,
        })
    }

    /// Name the namespace in error messages, e.g. `"container netns /run/netns/x"`.
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    fn at(&self) -> String {
        if self.label.is_empty() {
            String::new()
        } else {
            format!(" in {}", self.label)
        }
    }

    /// Send one request and collect its answer, giving up after the
    /// connection's timeout (a reply netlink-proto cannot decode is dropped,
    /// which would otherwise leave us waiting forever).
    async fn exchange(
        &self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>, Failure> {
        let mut req = NetlinkMessage::from(msg);
        req.header.flags = flags;
        let mut handle = self.handle.clone();
        let mut replies = handle.request(req).map_err(|_| Failure::Closed)?;
        let collect = async {
            let mut c = Collector::new(flags);
            while let Some(reply) = replies.next().await {
                c.push(reply)?;
            }
            c.finish()
        };
        match tokio::time::timeout(self.timeout, collect).await {
            Ok(r) => r,
            Err(_) => Err(Failure::TimedOut(self.timeout)),
        }
    }

    /// A request answered by an ACK.
    async fn ack(&self, msg: RouteNetlinkMessage, extra_flags: u16) -> Result<(), Failure> {
        self.exchange(msg, NLM_F_REQUEST | NLM_F_ACK | extra_flags)
            .await
            .map(|_| ())
    }

    /// A dump, retried while the kernel reports it as interrupted.
    async fn dump(
        &self,
        make: impl Fn() -> RouteNetlinkMessage,
    ) -> Result<Vec<RouteNetlinkMessage>, Failure> {
        let mut last = Failure::Interrupted;
        for _ in 0..DUMP_ATTEMPTS {
            match self.exchange(make(), NLM_F_REQUEST | NLM_F_DUMP).await {
                Ok(v) => return Ok(v),
                Err(Failure::Interrupted) => last = Failure::Interrupted,
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }

    fn error(&self, op: String, f: Failure) -> LinkError {
        match f {
            Failure::TimedOut(t) => LinkError::Timeout(format!(
                "{op} (no answer from the kernel within {} ms)",
                t.as_millis()
            )),
            Failure::Closed => LinkError::Io {
                op,
                source: io::Error::new(io::ErrorKind::BrokenPipe, Failure::Closed.text()),
            },
            f => LinkError::Netlink {
                op,
                errno: f.errno(),
                msg: f.text(),
            },
        }
    }

    /// "eth0 (index 3)" when the link can still be looked up, else "link index 3".
    async fn describe(&self, index: u32) -> String {
        match self.get_link(build::index_message(index)).await {
            Ok(Some(l)) if !l.name.is_empty() => format!("{} (index {index})", l.name),
            _ => format!("link index {index}"),
        }
    }

    async fn get_link(
        &self,
        msg: rtnetlink::packet_route::link::LinkMessage,
    ) -> Result<Option<LinkInfo>, Failure> {
        match self
            .exchange(RouteNetlinkMessage::GetLink(msg), NLM_F_REQUEST)
            .await
        {
            Ok(replies) => Ok(replies.into_iter().find_map(|r| match r {
                RouteNetlinkMessage::NewLink(l) => Some(build::parse_link(&l)),
                _ => None,
            })),
            Err(Failure::Errno { errno, .. }) if errno == libc::ENODEV => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The link called `name`, or None.
    pub async fn link_by_name(&self, name: &str) -> Result<Option<LinkInfo>, LinkError> {
        if build::check_ifname(name).is_err() {
            // No link can have that name; the kernel would answer EINVAL/ERANGE.
            return Ok(None);
        }
        self.get_link(build::name_message(name))
            .await
            .map_err(|f| self.error(format!("look up link {name}{}", self.at()), f))
    }

    /// The link with `index`, or None.
    pub async fn link_by_index(&self, index: u32) -> Result<Option<LinkInfo>, LinkError> {
        if index == 0 || index > i32::MAX as u32 {
            // Not a valid ifindex (the kernel's is a positive int): EINVAL there.
            return Ok(None);
        }
        self.get_link(build::index_message(index))
            .await
            .map_err(|f| self.error(format!("look up link index {index}{}", self.at()), f))
    }

    /// The output link of the default route of the main table: IPv4 first,
    /// then IPv6; among several, the lowest metric.
    pub async fn default_route_link(&self) -> Result<Option<LinkInfo>, LinkError> {
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let routes = self.route_entries(family).await?;
            let best = routes
                .iter()
                .filter(|e| {
                    e.kind == RouteType::Unicast
                        && e.route.dst.prefix() == 0
                        && e.route.table == Some(RT_TABLE_MAIN)
                        && e.oif.is_some()
                })
                .min_by_key(|e| e.route.priority.unwrap_or(0));
            if let Some(index) = best.and_then(|e| e.oif) {
                return self.link_by_index(index).await;
            }
        }
        Ok(None)
    }

    async fn route_entries(&self, family: AddressFamily) -> Result<Vec<RouteEntry>, LinkError> {
        let replies = self
            .dump(|| RouteNetlinkMessage::GetRoute(build::route_dump_message(family)))
            .await
            .map_err(|f| self.error(format!("list routes{}", self.at()), f))?;
        Ok(replies
            .iter()
            .filter_map(|r| match r {
                RouteNetlinkMessage::NewRoute(m) => build::parse_route(m),
                _ => None,
            })
            .collect())
    }

    /// Create a macvlan or ipvlan; with `spec.netns` it is born inside that
    /// namespace. The link is created down. EEXIST (the name is taken in the
    /// target namespace) is [`LinkError::Exists`]; any other refusal keeps
    /// its errno (EBUSY: the parent's receive path belongs to another
    /// driver, e.g. macvlan and ipvlan on one parent).
    pub async fn create_link(&self, spec: &LinkSpec<'_>) -> Result<(), LinkError> {
        use std::os::fd::AsRawFd;
        build::check_ifname(spec.name)?;
        let params = build::LinkParams {
            name: spec.name,
            parent: spec.parent,
            kind: spec.kind,
            mtu: spec.mtu,
            mac: spec.mac,
            netns_fd: spec.netns.map(|ns| ns.as_fd().as_raw_fd()),
        };
        let msg = RouteNetlinkMessage::NewLink(build::link_message(&params));
        // `spec.netns` is borrowed for the whole call, so the fd stays valid
        // until the kernel has answered.
        match self.ack(msg, NLM_F_CREATE | NLM_F_EXCL).await {
            Ok(()) => Ok(()),
            Err(f) => {
                let target = match spec.netns {
                    Some(ns) => format!(" in container netns {}", ns.path()),
                    None => self.at(),
                };
                let what = format!("{} {}{target}", spec.kind.name(), spec.name);
                match f.errno() {
                    libc::EEXIST => Err(LinkError::Exists(what)),
                    libc::ENODEV => Err(LinkError::NotFound(format!(
                        "parent link index {}{} of {what}",
                        spec.parent,
                        self.at()
                    ))),
                    _ => {
                        let parent = self.describe(spec.parent).await;
                        Err(self.error(
                            format!(
                                "create {what} ({}, parent {parent}{})",
                                spec.kind,
                                self.at()
                            ),
                            f,
                        ))
                    }
                }
            }
        }
    }

    /// Give link `index` a new MAC (IFLA_ADDRESS). A macvlan takes it up or
    /// down (up: the kernel moves its entry in the parent's unicast filter;
    /// EADDRINUSE if another macvlan of the parent has it); an ipvlan never
    /// (EOPNOTSUPP).
    pub async fn set_mac(&self, index: u32, mac: [u8; 6]) -> Result<(), LinkError> {
        let msg = RouteNetlinkMessage::NewLink(build::mac_message(index, mac));
        self.link_request(index, msg, |name| {
            format!("set the MAC of {name} to {}", format_mac(&mac))
        })
        .await
    }

    /// Create the VLAN sub-interface `name` (down) on `parent`.
    pub async fn create_vlan(
        &self,
        name: &str,
        parent: u32,
        vid: u16,
        protocol: VlanProtocol,
    ) -> Result<(), LinkError> {
        build::check_ifname(name)?;
        if !VLAN_IDS.contains(&vid) {
            return Err(LinkError::Invalid(format!(
                "VLAN id {vid} of {name}: must be {}-{}",
                VLAN_IDS.start(),
                VLAN_IDS.end()
            )));
        }
        let msg = RouteNetlinkMessage::NewLink(build::vlan_message(name, parent, vid, protocol));
        match self.ack(msg, NLM_F_CREATE | NLM_F_EXCL).await {
            Ok(()) => Ok(()),
            Err(f) if f.errno() == libc::EEXIST => {
                Err(LinkError::Exists(format!("VLAN link {name}{}", self.at())))
            }
            Err(f) if f.errno() == libc::ENODEV => Err(LinkError::NotFound(format!(
                "parent link index {parent}{} of VLAN {name}",
                self.at()
            ))),
            Err(f) => {
                let parent = self.describe(parent).await;
                Err(self.error(
                    format!(
                        "create VLAN {name} (id {vid}, {protocol}) on {parent}{}",
                        self.at()
                    ),
                    f,
                ))
            }
        }
    }

    /// Rename a (down) link and/or set its alias (IFLA_IFALIAS), in one
    /// request. EEXIST is [`LinkError::Exists`] naming `new_name`.
    pub async fn rename(
        &self,
        index: u32,
        new_name: Option<&str>,
        alias: Option<&str>,
    ) -> Result<(), LinkError> {
        if let Some(name) = new_name {
            build::check_ifname(name)?;
        }
        let msg = RouteNetlinkMessage::NewLink(build::rename_message(index, new_name, alias));
        match self.ack(msg, 0).await {
            Ok(()) => Ok(()),
            Err(f) => match f.errno() {
                libc::EEXIST => Err(LinkError::Exists(format!(
                    "link {}{}",
                    new_name.unwrap_or_default(),
                    self.at()
                ))),
                libc::ENODEV => Err(LinkError::NotFound(format!(
                    "link index {index}{}",
                    self.at()
                ))),
                _ => {
                    let old = self.describe(index).await;
                    let what = match new_name {
                        Some(n) => format!("rename {old} to {n}"),
                        None => format!("set the alias of {old}"),
                    };
                    Err(self.error(format!("{what}{}", self.at()), f))
                }
            },
        }
    }

    /// Set IFF_UP.
    pub async fn set_up(&self, index: u32) -> Result<(), LinkError> {
        let msg = RouteNetlinkMessage::NewLink(build::set_up_message(index));
        self.link_request(index, msg, |name| format!("set {name} up"))
            .await
    }

    /// Delete a link; ENODEV is [`LinkError::NotFound`] (callers doing DEL
    /// ignore it).
    pub async fn delete(&self, index: u32) -> Result<(), LinkError> {
        let msg = RouteNetlinkMessage::DelLink(build::index_message(index));
        self.link_request(index, msg, |name| format!("delete {name}"))
            .await
    }

    /// Send a request about link `index`: ENODEV is [`LinkError::NotFound`];
    /// any other failure is described by `op` with the link's current name.
    async fn link_request(
        &self,
        index: u32,
        msg: RouteNetlinkMessage,
        op: impl FnOnce(&str) -> String,
    ) -> Result<(), LinkError> {
        match self.ack(msg, 0).await {
            Ok(()) => Ok(()),
            Err(f) if f.errno() == libc::ENODEV => Err(LinkError::NotFound(format!(
                "link index {index}{}",
                self.at()
            ))),
            Err(f) => {
                let name = self.describe(index).await;
                Err(self.error(format!("{}{}", op(&name), self.at()), f))
            }
        }
    }

    /// Add an address (with broadcast for IPv4; DAD flags for IPv6).
    pub async fn add_address(
        &self,
        index: u32,
        addr: IpNetwork,
        flags: AddrFlags,
    ) -> Result<(), LinkError> {
        let msg = RouteNetlinkMessage::NewAddress(build::address_message(index, addr, flags));
        match self.ack(msg, NLM_F_CREATE | NLM_F_EXCL).await {
            Ok(()) => Ok(()),
            Err(f) => {
                let name = self.describe(index).await;
                let what = format!("address {addr} on {name}{}", self.at());
                match f.errno() {
                    libc::EEXIST => Err(LinkError::Exists(what)),
                    libc::ENODEV => Err(LinkError::NotFound(format!(
                        "link index {index}{}",
                        self.at()
                    ))),
                    _ => Err(self.error(format!("add {what}"), f)),
                }
            }
        }
    }

    /// All IPv4 and IPv6 addresses of link `index` with their IFA_F_* flags
    /// (see [`ifa_flags`]), including link-local ones.
    pub async fn addresses(&self, index: u32) -> Result<Vec<(IpNetwork, u32)>, LinkError> {
        Ok(self
            .address_dump()
            .await?
            .into_iter()
            .filter(|(i, _, _)| *i == index)
            .map(|(_, net, flags)| (net, flags))
            .collect())
    }

    /// Every address of this namespace with the index of its link.
    pub async fn all_addresses(&self) -> Result<Vec<(u32, IpNetwork)>, LinkError> {
        Ok(self
            .address_dump()
            .await?
            .into_iter()
            .map(|(i, net, _)| (i, net))
            .collect())
    }

    /// One RTM_GETADDR dump: (link index, address, IFA_F_* flags).
    async fn address_dump(&self) -> Result<Vec<(u32, IpNetwork, u32)>, LinkError> {
        let replies = self
            .dump(|| {
                RouteNetlinkMessage::GetAddress(build::address_dump_message(AddressFamily::Unspec))
            })
            .await
            .map_err(|f| self.error(format!("list addresses{}", self.at()), f))?;
        Ok(replies
            .iter()
            .filter_map(|r| match r {
                RouteNetlinkMessage::NewAddress(m) => build::parse_address(m),
                _ => None,
            })
            .collect())
    }

    /// Add `route` out of link `index`. `gw` is the fallback gateway used when
    /// `route.gw` is None and it has the route's family (host-local: such a
    /// route goes via the range's gateway); pass None for a direct route.
    pub async fn add_route(
        &self,
        index: u32,
        route: &cni::Route,
        gw: Option<IpAddr>,
    ) -> Result<(), LinkError> {
        let msg = build::route_message(index, route, gw)?;
        let desc = {
            let via = msg.attributes.iter().find_map(|a| match a {
                rtnetlink::packet_route::route::RouteAttribute::Gateway(g) => Some(g.clone()),
                _ => None,
            });
            match via {
                Some(rtnetlink::packet_route::route::RouteAddress::Inet(g)) => {
                    format!("route {} via {g}", route.dst)
                }
                Some(rtnetlink::packet_route::route::RouteAddress::Inet6(g)) => {
                    format!("route {} via {g}", route.dst)
                }
                _ => format!("route {}", route.dst),
            }
        };
        // No NLM_F_EXCL: a route to the same destination via another link
        // (a second attachment's default route) is added next to the existing
        // one, as the reference plugins do; only an identical route is EEXIST.
        match self
            .ack(RouteNetlinkMessage::NewRoute(msg), NLM_F_CREATE)
            .await
        {
            Ok(()) => Ok(()),
            Err(f) => {
                let name = self.describe(index).await;
                let what = format!("{desc} dev {name}{}", self.at());
                match f.errno() {
                    libc::EEXIST => Err(LinkError::Exists(what)),
                    _ => Err(self.error(format!("add {what}"), f)),
                }
            }
        }
    }

    /// The unicast routes out of any link of this namespace, in every table
    /// but `local` (CHECK: a route another interface already holds counts).
    pub async fn all_routes(&self) -> Result<Vec<cni::Route>, LinkError> {
        let mut out = Vec::new();
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            out.extend(
                self.route_entries(family)
                    .await?
                    .into_iter()
                    .filter(|e| {
                        e.kind == RouteType::Unicast && e.route.table != Some(RT_TABLE_LOCAL)
                    })
                    .map(|e| e.route),
            );
        }
        Ok(out)
    }

    /// Add the host route `dst`/32 (/128) out of link `index`, scope link,
    /// with `src` as its preferred source (see [`build::host_route_message`]).
    /// NLM_F_EXCL: a route to that destination that is already there (on
    /// any link, with the same metric) is [`LinkError::Exists`], never
    /// replaced. A `src` that is not an address of this namespace is EINVAL.
    pub async fn add_host_route(
        &self,
        index: u32,
        dst: IpAddr,
        src: Option<IpAddr>,
    ) -> Result<(), LinkError> {
        let msg = RouteNetlinkMessage::NewRoute(build::host_route_message(index, dst, src));
        match self.ack(msg, NLM_F_CREATE | NLM_F_EXCL).await {
            Ok(()) => Ok(()),
            Err(f) => {
                let name = self.describe(index).await;
                let what = format!("host route {dst} dev {name}{}", self.at());
                match f.errno() {
                    libc::EEXIST => Err(LinkError::Exists(what)),
                    libc::ENODEV => Err(LinkError::NotFound(format!(
                        "link index {index}{}",
                        self.at()
                    ))),
                    _ => {
                        let src = src.map(|s| format!(" src {s}")).unwrap_or_default();
                        Err(self.error(format!("add {what}{src}"), f))
                    }
                }
            }
        }
    }

    /// Delete the host route `dst`/32 (/128) out of link `index` (table
    /// main); a missing one (ESRCH) is [`LinkError::NotFound`].
    pub async fn delete_host_route(&self, index: u32, dst: IpAddr) -> Result<(), LinkError> {
        let msg = RouteNetlinkMessage::DelRoute(build::host_route_message(index, dst, None));
        match self.ack(msg, 0).await {
            Ok(()) => Ok(()),
            Err(f) if f.errno() == libc::ESRCH || f.errno() == libc::ENODEV => {
                Err(LinkError::NotFound(format!(
                    "host route {dst} on link index {index}{}",
                    self.at()
                )))
            }
            Err(f) => {
                let name = self.describe(index).await;
                Err(self.error(
                    format!("delete host route {dst} dev {name}{}", self.at()),
                    f,
                ))
            }
        }
    }

    /// The routes of the main table out of link `index`, both families.
    pub async fn routes_of(&self, index: u32) -> Result<Vec<RouteEntry>, LinkError> {
        let mut out = Vec::new();
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            out.extend(
                self.route_entries(family)
                    .await?
                    .into_iter()
                    .filter(|e| e.oif == Some(index) && e.route.table == Some(RT_TABLE_MAIN)),
            );
        }
        Ok(out)
    }

    /// Add or replace the permanent neighbour entry `ip` -> `mac` on link
    /// `index`: packets to `ip` go to `mac` without ARP or neighbour
    /// discovery.
    pub async fn set_neighbour(
        &self,
        index: u32,
        ip: IpAddr,
        mac: [u8; 6],
    ) -> Result<(), LinkError> {
        let msg = RouteNetlinkMessage::NewNeighbour(build::neighbour_message(index, ip, Some(mac)));
        match self.ack(msg, NLM_F_CREATE | NLM_F_REPLACE).await {
            Ok(()) => Ok(()),
            Err(f) if f.errno() == libc::ENODEV => Err(LinkError::NotFound(format!(
                "link index {index}{}",
                self.at()
            ))),
            Err(f) => {
                let name = self.describe(index).await;
                Err(self.error(
                    format!(
                        "add neighbour {ip} lladdr {} on {name}{}",
                        format_mac(&mac),
                        self.at()
                    ),
                    f,
                ))
            }
        }
    }

    /// Delete the neighbour entry `ip` of link `index`; a missing one
    /// (ENOENT) is [`LinkError::NotFound`].
    pub async fn delete_neighbour(&self, index: u32, ip: IpAddr) -> Result<(), LinkError> {
        let msg = RouteNetlinkMessage::DelNeighbour(build::neighbour_message(index, ip, None));
        match self.ack(msg, 0).await {
            Ok(()) => Ok(()),
            Err(f) if f.errno() == libc::ENOENT || f.errno() == libc::ENODEV => Err(
                LinkError::NotFound(format!("neighbour {ip} on link index {index}{}", self.at())),
            ),
            Err(f) => {
                let name = self.describe(index).await;
                Err(self.error(format!("delete neighbour {ip} on {name}{}", self.at()), f))
            }
        }
    }

    /// The IPv4 and IPv6 neighbour entries of link `index`.
    pub async fn neighbours(&self, index: u32) -> Result<Vec<build::Neighbour>, LinkError> {
        let mut out = Vec::new();
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let replies = self
                .dump(|| RouteNetlinkMessage::GetNeighbour(build::neighbour_dump_message(family)))
                .await
                .map_err(|f| self.error(format!("list neighbours{}", self.at()), f))?;
            out.extend(
                replies
                    .iter()
                    .filter_map(|r| match r {
                        RouteNetlinkMessage::NewNeighbour(m) => build::parse_neighbour(m),
                        _ => None,
                    })
                    .filter(|n| n.index == index),
            );
        }
        Ok(out)
    }

    /// Wait until no IPv6 address of link `index` is tentative. A DADFAILED
    /// address is [`LinkError::DadFailed`]. The kernel's own link-local
    /// (fe80::/10) addresses are ignored: their DAD takes 1-2 s and pod
    /// networking does not depend on them. Call after the link is up: DAD
    /// does not run (and addresses stay tentative) while it is down. Needs a
    /// runtime with time enabled.
    pub async fn wait_dad(&self, index: u32, timeout: Duration) -> Result<(), LinkError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let addrs = self.addresses(index).await?;
            let v6 = addrs.iter().filter(|(a, _)| match a {
                IpNetwork::V6(n) => !n.ip().is_unicast_link_local(),
                IpNetwork::V4(_) => false,
            });
            let mut tentative = None;
            for (addr, flags) in v6 {
                if flags & ifa_flags::DADFAILED != 0 {
                    return Err(LinkError::DadFailed {
                        addr: *addr,
                        link: format!("{}{}", self.describe(index).await, self.at()),
                    });
                }
                if flags & ifa_flags::TENTATIVE != 0 && tentative.is_none() {
                    tentative = Some(*addr);
                }
            }
            let Some(addr) = tentative else {
                return Ok(());
            };
            if tokio::time::Instant::now() >= deadline {
                return Err(LinkError::Timeout(format!(
                    "IPv6 duplicate address detection for {addr} on {}{} (waited {} ms)",
                    self.describe(index).await,
                    self.at(),
                    timeout.as_millis()
                )));
            }
            tokio::time::sleep(DAD_POLL).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macvlan_mode_parse_display() {
        for m in MacvlanMode::ALL {
            assert_eq!(m.to_string().parse::<MacvlanMode>(), Ok(m));
        }
        assert_eq!("bridge".parse(), Ok(MacvlanMode::Bridge));
        assert_eq!("passthru".parse(), Ok(MacvlanMode::Passthru));
        assert!("Bridge".parse::<MacvlanMode>().is_err());
        assert!("passthrough".parse::<MacvlanMode>().is_err());
        assert!("".parse::<MacvlanMode>().is_err());
        assert_eq!(
            "nope".parse::<MacvlanMode>().unwrap_err(),
            r#"unknown macvlan mode "nope": expected bridge, private, vepa, passthru or source"#
        );
        assert_eq!(MacvlanMode::default(), MacvlanMode::Bridge);
    }

    #[test]
    fn ipvlan_mode_and_flags_parse_display() {
        for m in IpvlanMode::ALL {
            assert_eq!(m.to_string().parse::<IpvlanMode>(), Ok(m));
        }
        for f in IpvlanFlags::ALL {
            assert_eq!(f.to_string().parse::<IpvlanFlags>(), Ok(f));
            assert_eq!(IpvlanFlags::from_bits(f.bits()), Some(f));
        }
        assert_eq!(IpvlanMode::default(), IpvlanMode::L2);
        assert_eq!(IpvlanFlags::default(), IpvlanFlags::Bridge);
        assert!(!IpvlanMode::L2.is_l3() && IpvlanMode::L3.is_l3() && IpvlanMode::L3s.is_l3());
        for bad in ["L2", "l4", "", "bridge"] {
            let e = bad.parse::<IpvlanMode>().unwrap_err();
            assert!(e.contains("l2, l3 or l3s"), "{e}");
        }
        for bad in ["Bridge", "passthru", "private,vepa"] {
            assert_eq!(
                bad.parse::<IpvlanFlags>().unwrap_err(),
                format!("unknown ipvlan flags {bad:?}: expected bridge, private or vepa")
            );
        }
        assert_eq!(one_of(&["a"]), "a");
        assert_eq!(one_of(&["a", "b"]), "a or b");
        let k = LinkKind::Ipvlan {
            mode: IpvlanMode::L3s,
            flags: IpvlanFlags::Vepa,
        };
        assert_eq!(k.to_string(), "ipvlan mode l3s vepa");
        assert_eq!(k.name(), "ipvlan");
        assert!(k.is_ipvlan());
        assert_eq!(LinkKind::default().to_string(), "macvlan mode bridge");
        assert!(CONTAINER_LINK_KINDS.contains(&LinkKind::default().name()));
        assert!(CONTAINER_LINK_KINDS.contains(&k.name()));
    }

    #[test]
    fn vlan_protocol_parse_display() {
        assert_eq!("802.1Q".parse(), Ok(VlanProtocol::Dot1Q));
        assert_eq!("802.1q".parse(), Ok(VlanProtocol::Dot1Q));
        assert_eq!("802.1ad".parse(), Ok(VlanProtocol::Dot1Ad));
        assert_eq!("802.1AD".parse(), Ok(VlanProtocol::Dot1Ad));
        assert!("8021q".parse::<VlanProtocol>().is_err());
        assert_eq!(VlanProtocol::Dot1Q.to_string(), "802.1Q");
        assert_eq!(VlanProtocol::Dot1Ad.to_string(), "802.1ad");
        assert_eq!(VlanProtocol::default(), VlanProtocol::Dot1Q);
    }

    #[test]
    fn mac_format() {
        assert_eq!(
            format_mac(&[0x02, 0xab, 0, 1, 0xff, 0x10]),
            "02:ab:00:01:ff:10"
        );
    }

    #[test]
    fn error_codes() {
        let netlink = |errno| LinkError::Netlink {
            op: "create macvlan x in container netns /n".into(),
            errno,
            msg: io::Error::from_raw_os_error(errno).to_string(),
        };
        for (e, want) in [
            (netlink(libc::EINVAL), code::KERNEL),
            (netlink(libc::EBUSY), code::TRY_AGAIN_LATER),
            (netlink(libc::EAGAIN), code::TRY_AGAIN_LATER),
            (LinkError::NotFound("link eth9".into()), code::KERNEL),
            (LinkError::Exists("link eth0".into()), code::KERNEL),
            (LinkError::Invalid("bad name".into()), code::INVALID_CONFIG),
            (LinkError::Timeout("dad".into()), code::KERNEL),
            (
                LinkError::Io {
                    op: "open".into(),
                    source: io::Error::from_raw_os_error(libc::EAGAIN),
                },
                code::TRY_AGAIN_LATER,
            ),
        ] {
            let text = e.to_string();
            let c: CniError = e.into();
            assert_eq!(c.code, want, "{text}");
            assert_eq!(c.msg, text);
        }
        let c: CniError = netlink(libc::EINVAL).into();
        assert!(c.msg.contains("container netns /n"), "{}", c.msg);
        assert!(c.msg.contains("Invalid argument"), "{}", c.msg);
    }

    #[test]
    fn failure_texts() {
        let f = Failure::Errno {
            errno: libc::EEXIST,
            extack: Some("Name already in use".into()),
        };
        assert_eq!(f.errno(), libc::EEXIST);
        assert!(f.text().contains("File exists"));
        assert!(f.text().contains("kernel: Name already in use"));
        assert_eq!(Failure::Interrupted.errno(), libc::EINTR);
        assert!(Failure::Interrupted.text().contains("interrupted"));
    }

    fn reply(
        flags: u16,
        payload: NetlinkPayload<RouteNetlinkMessage>,
    ) -> NetlinkMessage<RouteNetlinkMessage> {
        let mut h = rtnetlink::packet_core::NetlinkHeader::default();
        h.flags = flags;
        NetlinkMessage::new(h, payload)
    }

    fn link_reply(flags: u16, index: u32) -> NetlinkMessage<RouteNetlinkMessage> {
        reply(
            flags,
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(build::index_message(index))),
        )
    }

    fn error_reply(flags: u16, code: i32, body: Vec<u8>) -> NetlinkMessage<RouteNetlinkMessage> {
        let mut e = rtnetlink::packet_core::ErrorMessage::default();
        e.code = std::num::NonZeroI32::new(code);
        e.header = body;
        reply(flags, NetlinkPayload::Error(e))
    }

    fn done_reply(flags: u16, code: i32) -> NetlinkMessage<RouteNetlinkMessage> {
        let mut d = rtnetlink::packet_core::DoneMessage::default();
        d.code = code;
        reply(flags, NetlinkPayload::Done(d))
    }

    const MULTI: u16 = rtnetlink::packet_core::NLM_F_MULTIPART;

    #[test]
    fn collector_dump() {
        let mut c = Collector::new(NLM_F_REQUEST | NLM_F_DUMP);
        c.push(link_reply(MULTI, 1)).unwrap();
        c.push(link_reply(MULTI, 2)).unwrap();
        c.push(done_reply(MULTI, 0)).unwrap();
        assert_eq!(c.finish().unwrap().len(), 2);
    }

    #[test]
    fn collector_dump_interrupted() {
        // Flag on a data message.
        let mut c = Collector::new(NLM_F_REQUEST | NLM_F_DUMP);
        c.push(link_reply(MULTI, 1)).unwrap();
        c.push(link_reply(MULTI | NLM_F_DUMP_INTR, 2)).unwrap();
        c.push(done_reply(MULTI, 0)).unwrap();
        assert_eq!(c.finish(), Err(Failure::Interrupted));
        // Flag only on DONE.
        let mut c = Collector::new(NLM_F_REQUEST | NLM_F_DUMP);
        c.push(link_reply(MULTI, 1)).unwrap();
        c.push(done_reply(MULTI | NLM_F_DUMP_INTR, 0)).unwrap();
        assert_eq!(c.finish(), Err(Failure::Interrupted));
        // DONE carrying -EINTR.
        let mut c = Collector::new(NLM_F_REQUEST | NLM_F_DUMP);
        c.push(done_reply(MULTI, -libc::EINTR)).unwrap();
        assert_eq!(c.finish(), Err(Failure::Interrupted));
        // DONE carrying another error.
        let mut c = Collector::new(NLM_F_REQUEST | NLM_F_DUMP);
        assert_eq!(
            c.push(done_reply(MULTI, -libc::EMSGSIZE)),
            Err(Failure::Errno {
                errno: libc::EMSGSIZE,
                extack: None
            })
        );
    }

    #[test]
    fn collector_dump_cut_short_is_closed() {
        let mut c = Collector::new(NLM_F_REQUEST | NLM_F_DUMP);
        c.push(link_reply(MULTI, 1)).unwrap();
        assert_eq!(c.finish(), Err(Failure::Closed));
        assert_eq!(
            Collector::new(NLM_F_REQUEST | NLM_F_ACK).finish(),
            Err(Failure::Closed)
        );
    }

    #[test]
    fn collector_ack_and_nack() {
        let mut c = Collector::new(NLM_F_REQUEST | NLM_F_ACK);
        c.push(error_reply(0, 0, vec![0; 16])).unwrap();
        assert_eq!(c.finish().unwrap().len(), 0);

        let mut body = vec![0u8; 16];
        let text = b"Unknown device type\0";
        body.extend_from_slice(&((4 + text.len()) as u16).to_ne_bytes());
        body.extend_from_slice(&1u16.to_ne_bytes());
        body.extend_from_slice(text);
        let mut c = Collector::new(NLM_F_REQUEST | NLM_F_ACK);
        let flags = rtnetlink::packet_core::NLM_F_CAPPED | rtnetlink::packet_core::NLM_F_ACK_TLVS;
        assert_eq!(
            c.push(error_reply(flags, -libc::EOPNOTSUPP, body)),
            Err(Failure::Errno {
                errno: libc::EOPNOTSUPP,
                extack: Some("Unknown device type".into())
            })
        );
    }

    #[test]
    fn collector_plain_get() {
        let mut c = Collector::new(NLM_F_REQUEST);
        c.push(link_reply(0, 4)).unwrap();
        let out = c.finish().unwrap();
        assert!(matches!(&out[..], [RouteNetlinkMessage::NewLink(l)] if l.header.index == 4));
        let mut c = Collector::new(NLM_F_REQUEST);
        assert_eq!(
            c.push(error_reply(0, -libc::ENODEV, vec![])),
            Err(Failure::Errno {
                errno: libc::ENODEV,
                extack: None
            })
        );
        let mut c = Collector::new(NLM_F_REQUEST);
        assert_eq!(
            c.push(reply(0, NetlinkPayload::Overrun(vec![]))),
            Err(Failure::Overrun)
        );
    }

    #[test]
    fn timeout_failure_is_link_timeout() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _g = rt.enter();
        let nl = Netlink::open().unwrap().with_label("x");
        let e = nl.error(
            "add route".into(),
            Failure::TimedOut(Duration::from_millis(5)),
        );
        assert!(matches!(e, LinkError::Timeout(_)), "{e}");
        assert!(e.to_string().contains("5 ms"), "{e}");
        let e = nl.error("list".into(), Failure::Closed);
        assert!(matches!(e, LinkError::Io { .. }), "{e}");
        let e = nl.error("list".into(), Failure::Interrupted);
        assert_eq!(e.errno(), Some(libc::EINTR));
    }

    #[test]
    fn open_without_time_is_an_error_not_a_panic() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .unwrap();
        let _g = rt.enter();
        let e = Netlink::open().unwrap_err();
        assert!(e.to_string().contains("timers"), "{e}");
    }

    #[test]
    fn open_without_runtime_is_an_error() {
        assert!(matches!(Netlink::open(), Err(LinkError::Io { .. })));
    }

    #[test]
    fn open_without_io_is_an_error_not_a_panic() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let _g = rt.enter();
        let e = Netlink::open().unwrap_err();
        assert!(e.to_string().contains("IO disabled"), "{e}");
    }

    #[test]
    fn open_unprivileged_and_read() {
        // Reading links works without root: loopback always exists.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            let nl = Netlink::open().unwrap().with_label("test netns");
            let lo = nl.link_by_name("lo").await.unwrap().unwrap();
            assert_eq!(lo.index, 1);
            assert_eq!(nl.link_by_index(1).await.unwrap().unwrap().name, "lo");
            assert_eq!(nl.link_by_name("mtl-does-not-exist").await.unwrap(), None);
            assert_eq!(
                nl.link_by_name("far-too-long-interface-name")
                    .await
                    .unwrap(),
                None
            );
            assert_eq!(nl.link_by_index(0).await.unwrap(), None);
            assert_eq!(nl.link_by_index(u32::MAX - 7).await.unwrap(), None);
            nl.addresses(1).await.unwrap();
            nl.all_routes().await.unwrap();
            nl.default_route_link().await.unwrap();
        });
    }
}
