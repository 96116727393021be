//! `macFromIP`: a container's MAC derived from its first IPv4 address, so
//! that a container re-created with the same address comes back with the
//! same MAC and its neighbours' ARP caches stay right. Pure.
//!
//! The MAC is `02:6d:a:b:c:d` for the address `a.b.c.d`:
//!
//! - `02`: the locally administered bit set, the multicast bit clear: a
//!   unicast address no vendor OUI can collide with (IEEE 802 "local").
//! - `6d` (ASCII `m`, for mactrunk): a fixed byte, so these MACs are told
//!   apart from Docker's, which uses `02:42` + the four address bytes, and
//!   from MACs derived by another tool on the same LAN.
//! - the four address bytes as they are: the map is injective, so two
//!   different IPv4 addresses, in one subnet or not, never get one MAC.
//!
//! Two attachments get the same MAC only with the same IPv4 address, which
//! is already a conflict (the kernel then refuses the second macvlan on one
//! parent with EADDRINUSE when it goes up).

use std::net::Ipv4Addr;

/// The first two bytes of every derived MAC.
pub(crate) const PREFIX: [u8; 2] = [0x02, 0x6d];

/// The MAC of the address `ip` (see the module docs).
pub(crate) fn mac_from_ipv4(ip: Ipv4Addr) -> [u8; 6] {
    let [a, b, c, d] = ip.octets();
    [PREFIX[0], PREFIX[1], a, b, c, d]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::netlink::format_mac;
    use std::collections::HashSet;

    fn mac(ip: &str) -> String {
        format_mac(&mac_from_ipv4(ip.parse().unwrap()))
    }

    #[test]
    fn documented_examples() {
        assert_eq!(mac("10.9.0.2"), "02:6d:0a:09:00:02");
        assert_eq!(mac("192.168.50.100"), "02:6d:c0:a8:32:64");
        assert_eq!(mac("172.17.0.2"), "02:6d:ac:11:00:02");
        assert_eq!(mac("0.0.0.0"), "02:6d:00:00:00:00");
        assert_eq!(mac("255.255.255.255"), "02:6d:ff:ff:ff:ff");
    }

    #[test]
    fn always_unicast_and_locally_administered() {
        for ip in ["0.0.0.0", "10.0.0.1", "224.0.0.1", "255.255.255.255"] {
            let m = mac_from_ipv4(ip.parse().unwrap());
            assert_eq!(m[0] & 0x01, 0, "{ip}: unicast");
            assert_eq!(m[0] & 0x02, 0x02, "{ip}: locally administered");
            assert_ne!(m, [0; 6]);
        }
    }

    #[test]
    fn no_two_addresses_of_a_slash_24_share_a_mac() {
        let macs: HashSet<[u8; 6]> = (0..=255u8)
            .map(|d| mac_from_ipv4(Ipv4Addr::new(192, 168, 50, d)))
            .collect();
        assert_eq!(macs.len(), 256);
    }

    #[test]
    fn no_two_ipv4_addresses_share_a_mac() {
        // Injective on the whole space: the address is recovered from the MAC.
        for n in (0..=u32::MAX)
            .step_by(65_521)
            .chain([u32::MAX, 1, 0x0a00_0001])
        {
            let ip = Ipv4Addr::from(n);
            let m = mac_from_ipv4(ip);
            assert_eq!(m[..2], PREFIX);
            assert_eq!(Ipv4Addr::new(m[2], m[3], m[4], m[5]), ip);
        }
    }
}
