//! Gratuitous ARP and unsolicited neighbour advertisements, so switches and
//! neighbours learn the container's MAC right away (a reused IP would
//! otherwise point at the previous owner's MAC until caches expire).
//!
//! The frames go out through an AF_PACKET raw socket. A packet socket sends on
//! interfaces of the namespace it was created in, so open the [`Announcer`]
//! (or call the `send_*` helpers) inside [`crate::netns::run_in`], after the
//! link is up. Closing the socket costs an RCU grace period (~10-20 ms): the
//! kernel's `arp_notify` / `ndisc_notify` sysctls announce for free and are
//! the better default. The frame builders are pure.

use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

pub const ETH_P_ARP: u16 = 0x0806;
pub const ETH_P_IPV6: u16 = 0x86dd;
pub const BROADCAST_MAC: [u8; 6] = [0xff; 6];
/// ff02::1 mapped to Ethernet (RFC 2464).
pub const ALL_NODES_MAC: [u8; 6] = [0x33, 0x33, 0, 0, 0, 1];
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// Length of a gratuitous ARP frame (Ethernet header + ARP, no padding).
pub const GARP_LEN: usize = 14 + 28;
/// Length of an unsolicited NA frame (Ethernet + IPv6 + NA + TLLA option).
pub const NA_LEN: usize = 14 + 40 + 24 + 8;

/// A gratuitous ARP announcement: an ARP *request* from `mac` whose sender and
/// target IP are both `ip`, to the broadcast address, target MAC zero (as
/// RFC 5227's ARP announcement and the kernel's `arp_notify` send it).
pub fn garp_frame(mac: [u8; 6], ip: Ipv4Addr) -> [u8; GARP_LEN] {
    let mut f = [0u8; GARP_LEN];
    f[0..6].copy_from_slice(&BROADCAST_MAC);
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&ETH_P_ARP.to_be_bytes());
    f[14..16].copy_from_slice(&1u16.to_be_bytes()); // htype Ethernet
    f[16..18].copy_from_slice(&0x0800u16.to_be_bytes()); // ptype IPv4
    f[18] = 6; // hlen
    f[19] = 4; // plen
    f[20..22].copy_from_slice(&1u16.to_be_bytes()); // op request
    f[22..28].copy_from_slice(&mac); // sender MAC
    f[28..32].copy_from_slice(&ip.octets()); // sender IP
    // target MAC 32..38 stays zero
    f[38..42].copy_from_slice(&ip.octets()); // target IP
    f
}

/// An unsolicited neighbour advertisement for `ip` (RFC 4861 7.2.6): from `ip`
/// to ff02::1, hop limit 255, Override flag as given (Router and Solicited
/// clear), with a Target Link-Layer Address option carrying `mac`.
pub fn na_frame(mac: [u8; 6], ip: Ipv6Addr, override_flag: bool) -> [u8; NA_LEN] {
    let mut f = [0u8; NA_LEN];
    f[0..6].copy_from_slice(&ALL_NODES_MAC);
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&ETH_P_IPV6.to_be_bytes());
    // IPv6 header
    let ip6 = &mut f[14..54];
    ip6[0] = 0x60; // version 6, traffic class 0, flow 0
    ip6[4..6].copy_from_slice(&32u16.to_be_bytes()); // payload length
    ip6[6] = 58; // next header ICMPv6
    ip6[7] = 255; // hop limit
    ip6[8..24].copy_from_slice(&ip.octets());
    ip6[24..40].copy_from_slice(&ALL_NODES.octets());
    // ICMPv6 neighbour advertisement
    let icmp = &mut f[54..86];
    icmp[0] = 136; // type NA
    icmp[1] = 0; // code
    // 2..4 checksum, below
    icmp[4] = if override_flag { 0x20 } else { 0 };
    icmp[8..24].copy_from_slice(&ip.octets()); // target
    icmp[24] = 2; // option: target link-layer address
    icmp[25] = 1; // length in units of 8 bytes
    icmp[26..32].copy_from_slice(&mac);
    let sum = icmpv6_checksum(&ip, &ALL_NODES, icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    f
}

/// The ICMPv6 checksum (RFC 4443 2.3) over the IPv6 pseudo-header and
/// `message` (whose checksum field must be zero or is ignored when verifying
/// returns 0).
pub fn icmpv6_checksum(src: &Ipv6Addr, dst: &Ipv6Addr, message: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut add = |bytes: &[u8]| {
        let mut chunks = bytes.chunks_exact(2);
        for c in &mut chunks {
            sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
        }
        if let [last] = chunks.remainder() {
            sum += u32::from(*last) << 8;
        }
    };
    add(&src.octets());
    add(&dst.octets());
    let len = u32::try_from(message.len()).unwrap_or(u32::MAX);
    add(&len.to_be_bytes());
    add(&[0, 0, 0, 58]);
    add(message);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// A send-only AF_PACKET socket, bound to the namespace it was opened in.
///
/// Closing a packet socket costs the kernel an RCU grace period
/// (`synchronize_net()` in `packet_release`, measured 7-20 ms here), so send
/// every frame of one ADD through one `Announcer`. Cheaper still: set
/// `arp_notify=1` / `ndisc_notify=1` on the interface before it goes up and
/// let the kernel announce (see tests/link_root.rs).
#[derive(Debug)]
pub struct Announcer {
    sock: OwnedFd,
}

impl Announcer {
    /// Open the socket in the calling thread's network namespace.
    pub fn open() -> io::Result<Announcer> {
        // Protocol 0: a send-only socket that receives nothing.
        // SAFETY: plain socket(2) call; the result is checked before use.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(e.kind(), format!("open packet socket: {e}")));
        }
        // SAFETY: `raw` is a fresh, valid descriptor that we own from here on.
        let sock = unsafe { OwnedFd::from_raw_fd(raw) };
        Ok(Announcer { sock })
    }

    /// Send one gratuitous ARP for `ip` out of interface `ifindex` (the link
    /// must be up).
    pub fn gratuitous_arp(&self, ifindex: u32, mac: [u8; 6], ip: Ipv4Addr) -> io::Result<()> {
        self.send(ifindex, ETH_P_ARP, BROADCAST_MAC, &garp_frame(mac, ip))
            .map_err(|e| io::Error::new(e.kind(), format!("gratuitous ARP for {ip}: {e}")))
    }

    /// Send one unsolicited NA for `ip` out of `ifindex`. RFC 4429: do not set
    /// Override for an address that is still optimistic.
    pub fn unsolicited_na(
        &self,
        ifindex: u32,
        mac: [u8; 6],
        ip: Ipv6Addr,
        override_flag: bool,
    ) -> io::Result<()> {
        self.send(
            ifindex,
            ETH_P_IPV6,
            ALL_NODES_MAC,
            &na_frame(mac, ip, override_flag),
        )
        .map_err(|e| io::Error::new(e.kind(), format!("unsolicited NA for {ip}: {e}")))
    }

    fn send(&self, ifindex: u32, proto: u16, dst: [u8; 6], frame: &[u8]) -> io::Result<()> {
        let ifindex = i32::try_from(ifindex).map_err(|_| {
            io::Error::new(io::ErrorKind::InvalidInput, "interface index out of range")
        })?;
        // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
        let mut addr: libc::sockaddr_ll = unsafe { mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = proto.to_be();
        addr.sll_ifindex = ifindex;
        addr.sll_halen = 6;
        addr.sll_addr[..6].copy_from_slice(&dst);
        // SAFETY: buffer and address point to live memory of the given lengths.
        let n = unsafe {
            libc::sendto(
                self.sock.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&addr as *const libc::sockaddr_ll).cast(),
                mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n as usize != frame.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("short send: {n} of {} bytes", frame.len()),
            ));
        }
        Ok(())
    }
}

/// One gratuitous ARP through a fresh [`Announcer`] (pays one socket close).
pub fn send_gratuitous_arp(ifindex: u32, mac: [u8; 6], ip: Ipv4Addr) -> io::Result<()> {
    Announcer::open()?.gratuitous_arp(ifindex, mac, ip)
}

/// One unsolicited NA with Override set through a fresh [`Announcer`]. Note
/// RFC 4429: a node must not set Override for an *optimistic* address; use
/// [`Announcer::unsolicited_na`] with `false` before DAD has finished.
pub fn send_unsolicited_na(ifindex: u32, mac: [u8; 6], ip: Ipv6Addr) -> io::Result<()> {
    Announcer::open()?.unsolicited_na(ifindex, mac, ip, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garp_bytes() {
        let f = garp_frame(
            [0x02, 0x42, 0xac, 0x11, 0x00, 0x02],
            Ipv4Addr::new(10, 1, 2, 3),
        );
        #[rustfmt::skip]
        let want: [u8; 42] = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff,           // dst
            0x02, 0x42, 0xac, 0x11, 0x00, 0x02,           // src
            0x08, 0x06,                                   // ARP
            0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01,     // Ethernet/IPv4, request
            0x02, 0x42, 0xac, 0x11, 0x00, 0x02,           // sender MAC
            10, 1, 2, 3,                                  // sender IP
            0, 0, 0, 0, 0, 0,                             // target MAC
            10, 1, 2, 3,                                  // target IP
        ];
        assert_eq!(f, want);
    }

    #[test]
    fn na_bytes() {
        let mac = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];
        let ip: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let f = na_frame(mac, ip, true);
        #[rustfmt::skip]
        let want: [u8; NA_LEN] = [
            0x33, 0x33, 0, 0, 0, 1,  2, 0, 0, 0, 0, 1,  0x86, 0xdd,
            // IPv6
            0x60, 0, 0, 0,  0, 32, 58, 255,
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
            0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
            // ICMPv6 NA
            136, 0, 0xf9, 0x2a,  0x20, 0, 0, 0,
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
            2, 1, 2, 0, 0, 0, 0, 1,
        ];
        assert_eq!(f, want, "{f:02x?}");
        // Verifying over the whole message including its checksum gives 0.
        assert_eq!(icmpv6_checksum(&ip, &ALL_NODES, &f[54..]), 0);
    }

    #[test]
    fn na_without_override() {
        let ip: Ipv6Addr = "fe80::1234:5678".parse().unwrap();
        let f = na_frame([2, 3, 4, 5, 6, 7], ip, false);
        assert_eq!(f[54 + 4], 0);
        assert_eq!(icmpv6_checksum(&ip, &ALL_NODES, &f[54..]), 0);
    }

    #[test]
    fn checksum_matches_independent_sum() {
        // Different addresses, checked against a straightforward reimplementation.
        for (mac, ip) in [
            ([0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff], "fd00::ffff:ffff"),
            ([0xff; 6], "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe"),
            ([0; 6], "::1"),
        ] {
            let ip: Ipv6Addr = ip.parse().unwrap();
            let f = na_frame(mac, ip, true);
            let mut pseudo = Vec::new();
            pseudo.extend_from_slice(&ip.octets());
            pseudo.extend_from_slice(&ALL_NODES.octets());
            pseudo.extend_from_slice(&[0, 0, 0, 32, 0, 0, 0, 58]);
            pseudo.extend_from_slice(&f[54..]);
            let mut s: u64 = 0;
            for c in pseudo.chunks(2) {
                s += u64::from(u16::from_be_bytes([c[0], c[1]]));
            }
            while s >> 16 != 0 {
                s = (s & 0xffff) + (s >> 16);
            }
            assert_eq!(s, 0xffff, "{ip}");
        }
    }

    #[test]
    fn odd_length_checksum() {
        let a = Ipv6Addr::UNSPECIFIED;
        // one byte 0x01 padded -> 0x0100; pseudo: len 1, nh 58
        let want = !(0x0100u16 + 1 + 58);
        assert_eq!(icmpv6_checksum(&a, &a, &[1]), want);
    }

    #[test]
    fn send_on_missing_interface_fails_cleanly() {
        // Without root: EPERM from socket(); with root: ENODEV/ENXIO from sendto.
        assert!(send_gratuitous_arp(999_999, [2, 0, 0, 0, 0, 1], Ipv4Addr::LOCALHOST).is_err());
        assert!(send_unsolicited_na(999_999, [2, 0, 0, 0, 0, 1], Ipv6Addr::LOCALHOST).is_err());
    }
}
