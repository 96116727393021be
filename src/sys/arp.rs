//! IPv4 address conflict detection (RFC 5227) on one link: the ARP frames,
//! built and parsed by pure functions, and an AF_PACKET socket that sends
//! and receives them.
//!
//! An ARP probe asks "who has A?" with the sender IP 0.0.0.0, so that nobody
//! caches anything about the asker; a host that holds A answers (Linux does,
//! also with sender IP 0). An announcement claims A once it is configured
//! (sender and target IP both A). The socket belongs to the network
//! namespace it was opened in: open it on a thread inside that namespace
//! (`sys::netns::NsThread`); its descriptor then works from any thread.
//!
//! Closing an AF_PACKET socket waits for an RCU grace period
//! (`packet_release` calls `synchronize_net`), ~10-20 ms: whoever opens one
//! pays that once, when it is dropped.

use std::io;
use std::mem;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// EtherType of ARP.
pub const ETH_P_ARP: u16 = 0x0806;
const ETH_P_IP: u16 = 0x0800;
/// An Ethernet header (14) and an ARP packet for IPv4 over Ethernet (28).
pub const FRAME_LEN: usize = 42;
pub const ARPOP_REQUEST: u16 = 1;
pub const ARPOP_REPLY: u16 = 2;
const BROADCAST: [u8; 6] = [0xff; 6];

/// The fields of an ARP packet for IPv4 over Ethernet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arp {
    pub op: u16,
    /// Sender hardware / protocol address.
    pub sha: [u8; 6],
    pub spa: Ipv4Addr,
    /// Target hardware / protocol address.
    pub tha: [u8; 6],
    pub tpa: Ipv4Addr,
}

impl Arp {
    /// The whole Ethernet frame; requests go to the broadcast address,
    /// replies to the target's MAC.
    pub fn frame(&self) -> [u8; FRAME_LEN] {
        let mut f = [0u8; FRAME_LEN];
        let dst = if self.op == ARPOP_REPLY {
            self.tha
        } else {
            BROADCAST
        };
        f[0..6].copy_from_slice(&dst);
        f[6..12].copy_from_slice(&self.sha);
        f[12..14].copy_from_slice(&ETH_P_ARP.to_be_bytes());
        f[14..16].copy_from_slice(&1u16.to_be_bytes()); // hardware type: Ethernet
        f[16..18].copy_from_slice(&ETH_P_IP.to_be_bytes());
        f[18] = 6;
        f[19] = 4;
        f[20..22].copy_from_slice(&self.op.to_be_bytes());
        f[22..28].copy_from_slice(&self.sha);
        f[28..32].copy_from_slice(&self.spa.octets());
        f[32..38].copy_from_slice(&self.tha);
        f[38..42].copy_from_slice(&self.tpa.octets());
        f
    }
}

/// RFC 5227 2.1.1 probe for `target` from `mac`: a request with sender IP
/// 0.0.0.0 and target hardware address zero.
pub fn probe(mac: [u8; 6], target: Ipv4Addr) -> Arp {
    Arp {
        op: ARPOP_REQUEST,
        sha: mac,
        spa: Ipv4Addr::UNSPECIFIED,
        tha: [0; 6],
        tpa: target,
    }
}

/// RFC 5227 2.3 announcement of `ip` by `mac`: a request with sender and
/// target IP both `ip` (a gratuitous ARP, as the kernel's arp_notify sends).
pub fn announcement(mac: [u8; 6], ip: Ipv4Addr) -> Arp {
    Arp {
        op: ARPOP_REQUEST,
        sha: mac,
        spa: ip,
        tha: [0; 6],
        tpa: ip,
    }
}

/// Parse an Ethernet frame carrying ARP for IPv4 over Ethernet; None for
/// anything else (other EtherType, other hardware or protocol, short).
pub fn parse(frame: &[u8]) -> Option<Arp> {
    let f = frame.get(..FRAME_LEN)?;
    let be16 = |i: usize| u16::from_be_bytes([f[i], f[i + 1]]);
    let mac = |i: usize| -> [u8; 6] { [f[i], f[i + 1], f[i + 2], f[i + 3], f[i + 4], f[i + 5]] };
    let ip = |i: usize| Ipv4Addr::new(f[i], f[i + 1], f[i + 2], f[i + 3]);
    if be16(12) != ETH_P_ARP || be16(14) != 1 || be16(16) != ETH_P_IP || f[18] != 6 || f[19] != 4 {
        return None;
    }
    Some(Arp {
        op: be16(20),
        sha: mac(22),
        spa: ip(28),
        tha: mac(32),
        tpa: ip(38),
    })
}

/// Does `arp`, received while probing `candidates` from `own` MAC, show
/// that one of them is in use (RFC 5227 2.1.1)? Any ARP packet whose sender
/// IP is a candidate (a reply to our probe, a request, an announcement), or
/// another host's probe for a candidate (it is about to take it). Returns
/// the address and the MAC of the other host.
///
/// The one frame from `own` that never counts is our own probe seen again
/// (a request from 0.0.0.0, looped back by a hairpin or a switch loop):
/// anything else from our MAC is another host using the same MAC, and a
/// reply or claim from it is a conflict like any other (a host elsewhere
/// with the same `macFromIP` MAC answers from exactly that MAC).
pub fn conflict(arp: &Arp, candidates: &[Ipv4Addr], own: [u8; 6]) -> Option<(Ipv4Addr, [u8; 6])> {
    if arp.op != ARPOP_REQUEST && arp.op != ARPOP_REPLY {
        return None;
    }
    let probing = arp.op == ARPOP_REQUEST && arp.spa.is_unspecified();
    if probing && arp.sha == own {
        return None;
    }
    if candidates.contains(&arp.spa) {
        return Some((arp.spa, arp.sha));
    }
    if probing && candidates.contains(&arp.tpa) {
        return Some((arp.tpa, arp.sha));
    }
    None
}

/// When the probes of one window go out: at its start and at its middle
/// (a single lost frame does not hide an answer), as offsets from the start.
pub fn probe_times(window: Duration) -> [Duration; 2] {
    [Duration::ZERO, window / 2]
}

/// An AF_PACKET socket bound to one link, receiving only ARP.
#[derive(Debug)]
pub struct ArpSocket {
    fd: OwnedFd,
    index: u32,
}

fn sockaddr(index: u32, protocol: u16) -> io::Result<libc::sockaddr_ll> {
    // SAFETY: sockaddr_ll is plain old data; all zero is a valid value.
    let mut sa: libc::sockaddr_ll = unsafe { mem::zeroed() };
    sa.sll_family = libc::AF_PACKET as u16;
    sa.sll_protocol = protocol.to_be();
    sa.sll_ifindex = i32::try_from(index)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface index out of range"))?;
    Ok(sa)
}

impl ArpSocket {
    /// Open a socket for link `index` of the calling thread's network
    /// namespace. Created with protocol 0 (it receives nothing) and then
    /// bound to ARP on that one link, so no frame of another link is ever
    /// queued.
    pub fn open(index: u32) -> io::Result<ArpSocket> {
        // SAFETY: plain socket(2) call; the result is checked.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                0,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a descriptor we just created and own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let sa = sockaddr(index, ETH_P_ARP)?;
        // SAFETY: `sa` is a valid sockaddr_ll and the length matches it.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sa as *const libc::sockaddr_ll).cast(),
                mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(ArpSocket { fd, index })
    }

    /// The link this socket is bound to.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// Send one ARP packet out of the bound link.
    pub fn send(&self, arp: &Arp) -> io::Result<()> {
        let frame = arp.frame();
        // SAFETY: `frame` is valid for its length; the socket is bound, so
        // no destination address is needed.
        let n = unsafe {
            libc::send(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// The next ARP packet another host sent on the link, waiting until
    /// `deadline`; None once it has passed. Frames this host sends
    /// (PACKET_OUTGOING) and anything that is not ARP for IPv4 are skipped.
    pub fn recv_until(&self, deadline: Instant) -> io::Result<Option<Arp>> {
        let mut buf = [0u8; 128];
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            // Round up: a wait of 0.4 ms must not become a busy poll of 0 ms.
            let wait = (deadline - now).as_micros().div_ceil(1000);
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let rc = unsafe { libc::poll(&mut pfd, 1, wait.min(i32::MAX as u128) as i32) };
            if rc < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if rc == 0 {
                continue; // the deadline check above ends the loop
            }
            // SAFETY: all-zero sockaddr_ll is valid; recvfrom fills at most `len`.
            let mut from: libc::sockaddr_ll = unsafe { mem::zeroed() };
            let mut len = mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            // SAFETY: `buf` and `from` are valid for the lengths given.
            let n = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                    (&mut from as *mut libc::sockaddr_ll).cast(),
                    &mut len,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) {
                    continue;
                }
                return Err(e);
            }
            if from.sll_pkttype == libc::PACKET_OUTGOING {
                continue;
            }
            if let Some(arp) = parse(&buf[..n as usize]) {
                return Ok(Some(arp));
            }
        }
    }

    /// Probe `candidates` from `mac` for `window` (RFC 5227 2.1.1, with
    /// the waits shortened to one window): the probes go out at
    /// [`probe_times`], every ARP packet received is checked with
    /// [`conflict`]. Returns the conflicts found, at most one per candidate;
    /// returns early once every candidate has one.
    pub fn probe(
        &self,
        mac: [u8; 6],
        candidates: &[Ipv4Addr],
        window: Duration,
    ) -> io::Result<Vec<(Ipv4Addr, [u8; 6])>> {
        let start = Instant::now();
        let end = start + window;
        let mut found: Vec<(Ipv4Addr, [u8; 6])> = Vec::new();
        let times = probe_times(window);
        for i in 0..times.len() {
            for c in candidates {
                if !found.iter().any(|(ip, _)| ip == c) {
                    self.send(&probe(mac, *c))?;
                }
            }
            let until = times.get(i + 1).map_or(end, |t| start + *t);
            while let Some(arp) = self.recv_until(until)? {
                if let Some(hit) = conflict(&arp, candidates, mac)
                    && !found.iter().any(|(ip, _)| *ip == hit.0)
                {
                    found.push(hit);
                    if found.len() == candidates.len() {
                        return Ok(found);
                    }
                }
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x02, 0x6d, 10, 0, 0, 5];
    const OTHER: [u8; 6] = [0x52, 0x54, 0, 1, 2, 3];

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn probe_frame_bytes() {
        let f = probe(MAC, ip("10.0.0.5")).frame();
        assert_eq!(
            f,
            [
                0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // broadcast
                0x02, 0x6d, 10, 0, 0, 5, // our MAC
                0x08, 0x06, // ARP
                0x00, 0x01, 0x08, 0x00, 6, 4, // Ethernet, IPv4, lengths
                0x00, 0x01, // request
                0x02, 0x6d, 10, 0, 0, 5, 0, 0, 0, 0, // sender: our MAC, 0.0.0.0
                0, 0, 0, 0, 0, 0, 10, 0, 0, 5, // target: unknown MAC, the candidate
            ]
        );
        assert_eq!(parse(&f), Some(probe(MAC, ip("10.0.0.5"))));
    }

    #[test]
    fn announcement_claims_the_address() {
        let a = announcement(MAC, ip("10.0.0.5"));
        assert_eq!((a.op, a.spa, a.tpa), (1, ip("10.0.0.5"), ip("10.0.0.5")));
        let f = a.frame();
        assert_eq!(&f[0..6], &BROADCAST);
        assert_eq!(&f[28..32], &[10, 0, 0, 5]);
        assert_eq!(parse(&f), Some(a));
    }

    #[test]
    fn reply_goes_to_the_target_and_parses_back() {
        let r = Arp {
            op: ARPOP_REPLY,
            sha: OTHER,
            spa: ip("10.0.0.5"),
            tha: MAC,
            tpa: Ipv4Addr::UNSPECIFIED,
        };
        let f = r.frame();
        assert_eq!(&f[0..6], &MAC);
        assert_eq!(parse(&f), Some(r));
        // Ethernet padding (a 60-byte minimum frame) is ignored.
        let mut padded = f.to_vec();
        padded.resize(60, 0);
        assert_eq!(parse(&padded), Some(r));
    }

    #[test]
    fn parse_refuses_what_is_not_arp_for_ipv4_over_ethernet() {
        let good = probe(MAC, ip("10.0.0.5")).frame();
        assert!(parse(&good[..41]).is_none(), "short");
        assert!(parse(&[]).is_none());
        for (at, byte) in [(12, 0x86), (15, 6), (17, 0xdd), (18, 8), (19, 16)] {
            let mut f = good;
            f[at] = byte;
            assert!(parse(&f).is_none(), "byte {at} = {byte:#x}");
        }
    }

    #[test]
    fn what_counts_as_a_conflict() {
        let cands = [ip("10.0.0.5"), ip("10.0.0.6")];
        let reply = Arp {
            op: ARPOP_REPLY,
            sha: OTHER,
            spa: ip("10.0.0.5"),
            tha: MAC,
            tpa: Ipv4Addr::UNSPECIFIED,
        };
        assert_eq!(conflict(&reply, &cands, MAC), Some((ip("10.0.0.5"), OTHER)));
        // The holder's own request or announcement.
        let gratuitous = announcement(OTHER, ip("10.0.0.6"));
        assert_eq!(
            conflict(&gratuitous, &cands, MAC),
            Some((ip("10.0.0.6"), OTHER))
        );
        let asks = Arp {
            spa: ip("10.0.0.6"),
            tpa: ip("10.0.0.1"),
            ..gratuitous
        };
        assert_eq!(conflict(&asks, &cands, MAC), Some((ip("10.0.0.6"), OTHER)));
        // Another host probing for a candidate at the same time.
        assert_eq!(
            conflict(&probe(OTHER, ip("10.0.0.6")), &cands, MAC),
            Some((ip("10.0.0.6"), OTHER))
        );
        // Not conflicts: our own probe seen again, someone asking for a
        // candidate from a real address (a neighbour resolving it: that is
        // not a claim), traffic about other addresses, an unknown opcode.
        assert_eq!(conflict(&probe(MAC, ip("10.0.0.5")), &cands, MAC), None);
        let resolving = Arp {
            op: ARPOP_REQUEST,
            sha: OTHER,
            spa: ip("10.0.0.1"),
            tha: [0; 6],
            tpa: ip("10.0.0.5"),
        };
        assert_eq!(conflict(&resolving, &cands, MAC), None);
        assert_eq!(
            conflict(&announcement(OTHER, ip("10.0.0.9")), &cands, MAC),
            None
        );
        let rarp = Arp { op: 3, ..reply };
        assert_eq!(conflict(&rarp, &cands, MAC), None);
    }

    /// Another host with our MAC (the same macFromIP MAC elsewhere) that
    /// has a candidate is a conflict; only our own probe, reflected back, is
    /// not.
    #[test]
    fn a_host_with_our_mac_is_a_conflict_our_reflected_probe_is_not() {
        let cands = [ip("10.0.0.5")];
        let reply = Arp {
            op: ARPOP_REPLY,
            sha: MAC,
            spa: ip("10.0.0.5"),
            tha: MAC,
            tpa: Ipv4Addr::UNSPECIFIED,
        };
        assert_eq!(conflict(&reply, &cands, MAC), Some((ip("10.0.0.5"), MAC)));
        let claim = announcement(MAC, ip("10.0.0.5"));
        assert_eq!(conflict(&claim, &cands, MAC), Some((ip("10.0.0.5"), MAC)));
        // Our own probe, looped back: not a conflict.
        assert_eq!(conflict(&probe(MAC, ip("10.0.0.5")), &cands, MAC), None);
        // The same probe from another MAC is a host probing at the same time.
        assert_eq!(
            conflict(&probe(OTHER, ip("10.0.0.5")), &cands, MAC),
            Some((ip("10.0.0.5"), OTHER))
        );
    }

    #[test]
    fn two_probes_per_window() {
        assert_eq!(
            probe_times(Duration::from_millis(100)),
            [Duration::ZERO, Duration::from_millis(50)]
        );
    }

    #[test]
    fn socket_on_a_missing_link_fails_cleanly() {
        // Needs CAP_NET_RAW; without it the open itself is refused, also cleanly.
        let e = ArpSocket::open(999_999).unwrap_err();
        assert!(
            matches!(
                e.raw_os_error(),
                Some(libc::ENODEV | libc::EPERM | libc::EINVAL)
            ),
            "{e}"
        );
    }
}
