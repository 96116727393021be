//! Ranges and range sets: canonicalisation, membership and the round-robin
//! candidate order. Pure address math on `u128`; no I/O.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnetwork::IpNetwork;

/// An address as a number (IPv4 in the low 32 bits).
pub(crate) fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u32::from(a) as u128,
        IpAddr::V6(a) => u128::from(a),
    }
}

pub(crate) fn from_u128(v4: bool, n: u128) -> IpAddr {
    if v4 {
        IpAddr::V4(Ipv4Addr::from(n as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(n))
    }
}

/// First and last address of a network, as numbers.
pub(crate) fn net_bounds(net: &IpNetwork) -> (u128, u128) {
    let first = to_u128(net.network());
    let host = match net {
        IpNetwork::V4(n) => u32::MAX.checked_shr(u32::from(n.prefix())).unwrap_or(0) as u128,
        IpNetwork::V6(n) => u128::MAX.checked_shr(u32::from(n.prefix())).unwrap_or(0),
    };
    (first, first | host)
}

/// One canonical range: every field filled in and validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    pub subnet: IpNetwork,
    pub range_start: IpAddr,
    pub range_end: IpAddr,
    pub gateway: Option<IpAddr>,
}

impl Range {
    pub fn is_ipv4(&self) -> bool {
        self.subnet.is_ipv4()
    }

    pub(crate) fn start(&self) -> u128 {
        to_u128(self.range_start)
    }

    pub(crate) fn end(&self) -> u128 {
        to_u128(self.range_end)
    }

    /// Is `ip` within [rangeStart, rangeEnd]?
    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.is_ipv4() && (self.start()..=self.end()).contains(&to_u128(ip))
    }

    /// Is `ip` in the subnet (where static addresses may lie)?
    pub fn in_subnet(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.is_ipv4() && self.subnet.contains(ip)
    }

    /// IPv4 subnets below /31 have unusable network and broadcast addresses.
    pub fn reserved_edge(&self, ip: IpAddr) -> Option<&'static str> {
        if !self.is_ipv4() || self.subnet.prefix() >= 31 || !self.in_subnet(ip) {
            return None;
        }
        let (first, last) = net_bounds(&self.subnet);
        let n = to_u128(ip);
        if n == first {
            Some("network")
        } else if n == last {
            Some("broadcast")
        } else {
            None
        }
    }

    pub fn overlaps(&self, other: &Range) -> bool {
        self.is_ipv4() == other.is_ipv4()
            && self.start() <= other.end()
            && other.start() <= self.end()
    }

    /// Number of addresses in [rangeStart, rangeEnd] (saturating at u128::MAX).
    pub fn size(&self) -> u128 {
        self.end()
            .checked_sub(self.start())
            .map_or(0, |d| d.saturating_add(1))
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}-{} in {}",
            self.range_start, self.range_end, self.subnet
        )
    }
}

/// Fill the defaults of a range and check it. `key(field)` names a field in errors.
/// Returns the problem text (without the key) and the field it concerns on error.
pub(crate) fn canonicalize(
    subnet: IpNetwork,
    range_start: Option<IpAddr>,
    range_end: Option<IpAddr>,
    gateway: Option<IpAddr>,
) -> Result<Range, (&'static str, String)> {
    if subnet.ip() != subnet.network() {
        return Err((
            "subnet",
            format!(
                "{subnet} has host bits set (the network address is {}/{})",
                subnet.network(),
                subnet.prefix()
            ),
        ));
    }
    let v4 = subnet.is_ipv4();
    let bits = if v4 { 32 } else { 128 };
    let small = subnet.prefix() >= bits - 1; // /31 /32 /127 /128
    let (first, last) = net_bounds(&subnet);
    let shell = Range {
        subnet,
        range_start: from_u128(v4, first),
        range_end: from_u128(v4, last),
        gateway: None,
    };
    let check = |field: &'static str, ip: IpAddr| -> Result<(), (&'static str, String)> {
        if !shell.in_subnet(ip) {
            return Err((field, format!("{ip} is not in subnet {subnet}")));
        }
        if let Some(what) = shell.reserved_edge(ip) {
            return Err((field, format!("{ip} is the {what} address of {subnet}")));
        }
        Ok(())
    };
    if let Some(ip) = range_start {
        check("rangeStart", ip)?;
    }
    if let Some(ip) = range_end {
        check("rangeEnd", ip)?;
    }
    if let Some(ip) = gateway {
        check("gateway", ip)?;
    }
    let start = range_start.unwrap_or_else(|| from_u128(v4, if small { first } else { first + 1 }));
    let end =
        range_end.unwrap_or_else(|| from_u128(v4, if v4 && !small { last - 1 } else { last }));
    if to_u128(start) > to_u128(end) {
        return Err(("rangeStart", format!("{start} is after rangeEnd {end}")));
    }
    let gateway = gateway.or_else(|| (!small).then(|| from_u128(v4, first + 1)));
    Ok(Range {
        subnet,
        range_start: start,
        range_end: end,
        gateway,
    })
}

/// A list of same-family, non-overlapping ranges; yields one address per ADD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeSet {
    pub ranges: Vec<Range>,
    /// Where the set came from, for messages (e.g. `ipam.ranges[1]`).
    pub key: String,
}

impl RangeSet {
    pub fn is_ipv4(&self) -> bool {
        self.ranges.first().is_some_and(Range::is_ipv4)
    }

    /// The range whose subnet holds `ip`, preferring one whose [start,end] does.
    pub fn range_for(&self, ip: IpAddr) -> Option<&Range> {
        self.ranges
            .iter()
            .find(|r| r.contains(ip))
            .or_else(|| self.ranges.iter().find(|r| r.in_subnet(ip)))
    }

    pub fn is_gateway(&self, ip: IpAddr) -> bool {
        self.ranges.iter().any(|r| r.gateway == Some(ip))
    }

    pub fn overlaps(&self, other: &RangeSet) -> bool {
        self.ranges
            .iter()
            .any(|a| other.ranges.iter().any(|b| a.overlaps(b)))
    }

    /// Human-readable list of the ranges, for messages.
    pub fn describe(&self) -> String {
        let parts: Vec<String> = self.ranges.iter().map(Range::to_string).collect();
        parts.join(", ")
    }
}

/// Excluded addresses as merged, sorted intervals per family.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exclusions {
    v4: Vec<(u128, u128)>,
    v6: Vec<(u128, u128)>,
}

impl Exclusions {
    pub fn new(nets: &[IpNetwork]) -> Exclusions {
        let mut out = Exclusions::default();
        for n in nets {
            let b = net_bounds(n);
            if n.is_ipv4() {
                out.v4.push(b);
            } else {
                out.v6.push(b);
            }
        }
        for list in [&mut out.v4, &mut out.v6] {
            list.sort_unstable();
            let mut merged: Vec<(u128, u128)> = Vec::with_capacity(list.len());
            for &(lo, hi) in list.iter() {
                match merged.last_mut() {
                    Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
                    _ => merged.push((lo, hi)),
                }
            }
            *list = merged;
        }
        out
    }

    fn list(&self, v4: bool) -> &[(u128, u128)] {
        if v4 { &self.v4 } else { &self.v6 }
    }

    /// If `n` is excluded, the last address of its excluded block.
    pub(crate) fn block_end(&self, v4: bool, n: u128) -> Option<u128> {
        let list = self.list(v4);
        let i = list.partition_point(|&(lo, _)| lo <= n);
        let &(lo, hi) = list.get(i.checked_sub(1)?)?;
        (lo <= n && n <= hi).then_some(hi)
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.block_end(ip.is_ipv4(), to_u128(ip)).is_some()
    }

    /// How many addresses of [lo, hi] are excluded.
    pub(crate) fn count_in(&self, v4: bool, lo: u128, hi: u128) -> u128 {
        self.list(v4)
            .iter()
            .filter(|&&(a, b)| a <= hi && lo <= b)
            .map(|&(a, b)| (b.min(hi) - a.max(lo)).saturating_add(1))
            .fold(0u128, u128::saturating_add)
    }
}

impl RangeSet {
    /// Addresses the allocator may hand out dynamically.
    pub fn capacity(&self, excl: &Exclusions) -> u128 {
        self.ranges
            .iter()
            .map(|r| range_capacity(r, excl))
            .fold(0u128, u128::saturating_add)
    }
}

pub(crate) fn range_capacity(r: &Range, excl: &Exclusions) -> u128 {
    let v4 = r.is_ipv4();
    let mut n = r.size() - excl.count_in(v4, r.start(), r.end()).min(r.size());
    if let Some(gw) = r.gateway
        && r.contains(gw)
        && !excl.contains(gw)
    {
        n -= 1;
    }
    n
}

/// Is `ip` an address the allocator may hand out from this set dynamically?
pub(crate) fn dynamic_ok(set: &RangeSet, excl: &Exclusions, ip: IpAddr) -> bool {
    set.ranges.iter().any(|r| r.contains(ip)) && !set.is_gateway(ip) && !excl.contains(ip)
}

/// Round-robin candidates of a set: from `last`+1 through every range,
/// wrapping around to `last` itself; gateways and exclusions are skipped
/// (excluded blocks are jumped over, not walked).
pub struct Candidates<'a> {
    set: &'a RangeSet,
    excl: &'a Exclusions,
    /// Segments still to walk: (range index, next, last) inclusive.
    segments: Vec<(usize, u128, u128)>,
}

impl<'a> Candidates<'a> {
    pub fn new(set: &'a RangeSet, excl: &'a Exclusions, last: Option<IpAddr>) -> Candidates<'a> {
        let n = set.ranges.len();
        let mut segs = Vec::with_capacity(n + 1);
        let pos = last.and_then(|l| set.ranges.iter().position(|r| r.contains(l)));
        match (pos, last) {
            (Some(r), Some(l)) => {
                let l = to_u128(l);
                let range = &set.ranges[r];
                if l < range.end() {
                    segs.push((r, l + 1, range.end()));
                }
                for k in 1..n {
                    let i = (r + k) % n;
                    segs.push((i, set.ranges[i].start(), set.ranges[i].end()));
                }
                segs.push((r, range.start(), l));
            }
            _ => {
                for (i, range) in set.ranges.iter().enumerate() {
                    segs.push((i, range.start(), range.end()));
                }
            }
        }
        segs.reverse(); // pop from the back
        Candidates {
            set,
            excl,
            segments: segs,
        }
    }
}

impl Iterator for Candidates<'_> {
    /// (range index within the set, address)
    type Item = (usize, IpAddr);

    fn next(&mut self) -> Option<(usize, IpAddr)> {
        let v4 = self.set.is_ipv4();
        loop {
            let (ri, cur, last) = *self.segments.last()?;
            if cur > last {
                self.segments.pop();
                continue;
            }
            let seg = self.segments.last_mut()?;
            if let Some(hi) = self.excl.block_end(v4, cur) {
                match hi.checked_add(1) {
                    Some(next) => seg.1 = next,
                    None => {
                        self.segments.pop();
                    }
                }
                continue;
            }
            match cur.checked_add(1) {
                Some(next) => seg.1 = next,
                None => {
                    self.segments.pop();
                }
            }
            let ip = from_u128(v4, cur);
            if self.set.is_gateway(ip) {
                continue;
            }
            return Some((ri, ip));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNetwork {
        s.parse().unwrap()
    }
    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }
    fn canon(s: &str) -> Range {
        canonicalize(net(s), None, None, None).unwrap()
    }

    #[test]
    fn defaults_per_prefix() {
        // (subnet, start, end, gateway)
        let cases: &[(&str, &str, &str, Option<&str>)] = &[
            ("10.0.0.0/24", "10.0.0.1", "10.0.0.254", Some("10.0.0.1")),
            ("10.0.0.0/30", "10.0.0.1", "10.0.0.2", Some("10.0.0.1")),
            ("10.0.0.0/31", "10.0.0.0", "10.0.0.1", None),
            ("10.0.0.7/32", "10.0.0.7", "10.0.0.7", None),
            ("10.0.0.0/16", "10.0.0.1", "10.0.255.254", Some("10.0.0.1")),
            (
                "fd00::/64",
                "fd00::1",
                "fd00::ffff:ffff:ffff:ffff",
                Some("fd00::1"),
            ),
            ("fd00::/127", "fd00::", "fd00::1", None),
            ("fd00::5/128", "fd00::5", "fd00::5", None),
            ("0.0.0.0/0", "0.0.0.1", "255.255.255.254", Some("0.0.0.1")),
            (
                "::/0",
                "::1",
                "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
                Some("::1"),
            ),
        ];
        for (s, start, end, gw) in cases {
            let r = canon(s);
            assert_eq!(r.range_start, ip(start), "{s}");
            assert_eq!(r.range_end, ip(end), "{s}");
            assert_eq!(r.gateway, gw.map(ip), "{s}");
        }
    }

    #[test]
    fn canonicalize_errors() {
        type Case<'a> = (
            &'a str,
            Option<&'a str>,
            Option<&'a str>,
            Option<&'a str>,
            &'a str,
            &'a str,
        );
        let bad: &[Case] = &[
            ("10.0.0.5/24", None, None, None, "subnet", "host bits"),
            (
                "10.0.0.0/24",
                Some("10.0.1.5"),
                None,
                None,
                "rangeStart",
                "10.0.1.5 is not in subnet 10.0.0.0/24",
            ),
            (
                "10.0.0.0/24",
                None,
                Some("fd00::1"),
                None,
                "rangeEnd",
                "not in subnet",
            ),
            (
                "10.0.0.0/24",
                None,
                None,
                Some("10.0.1.1"),
                "gateway",
                "not in subnet",
            ),
            (
                "10.0.0.0/24",
                Some("10.0.0.0"),
                None,
                None,
                "rangeStart",
                "network address",
            ),
            (
                "10.0.0.0/24",
                None,
                Some("10.0.0.255"),
                None,
                "rangeEnd",
                "broadcast address",
            ),
            (
                "10.0.0.0/24",
                Some("10.0.0.9"),
                Some("10.0.0.5"),
                None,
                "rangeStart",
                "after rangeEnd",
            ),
        ];
        for (s, st, en, gw, field, needle) in bad {
            let (f, msg) = canonicalize(net(s), st.map(ip), en.map(ip), gw.map(ip)).unwrap_err();
            assert_eq!(f, *field, "{s}");
            assert!(msg.contains(needle), "{msg}");
        }
        // /31 and v6: the edges are fine.
        canonicalize(net("10.0.0.0/31"), Some(ip("10.0.0.0")), None, None).unwrap();
        canonicalize(net("fd00::/64"), Some(ip("fd00::")), None, None).unwrap();
    }

    fn set(ranges: &[Range]) -> RangeSet {
        RangeSet {
            ranges: ranges.to_vec(),
            key: "t".into(),
        }
    }

    fn take(c: Candidates, n: usize) -> Vec<String> {
        c.take(n).map(|(_, a)| a.to_string()).collect()
    }

    #[test]
    fn candidates_round_robin_and_wrap() {
        let r = canonicalize(net("10.0.0.0/29"), None, None, None).unwrap(); // .1 gw, .2-.6
        let s = set(&[r]);
        let ex = Exclusions::default();
        assert_eq!(
            take(Candidates::new(&s, &ex, None), 10),
            ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"]
        );
        assert_eq!(
            take(Candidates::new(&s, &ex, Some(ip("10.0.0.4"))), 10),
            ["10.0.0.5", "10.0.0.6", "10.0.0.2", "10.0.0.3", "10.0.0.4"]
        );
        // last at the end: wrap immediately; last outside: start at the beginning.
        assert_eq!(
            take(Candidates::new(&s, &ex, Some(ip("10.0.0.6"))), 2),
            ["10.0.0.2", "10.0.0.3"]
        );
        assert_eq!(
            take(Candidates::new(&s, &ex, Some(ip("10.9.0.6"))), 1),
            ["10.0.0.2"]
        );
    }

    #[test]
    fn candidates_multi_range_and_exclusions() {
        let a = canonicalize(
            net("10.0.0.0/24"),
            Some(ip("10.0.0.10")),
            Some(ip("10.0.0.12")),
            None,
        )
        .unwrap();
        let b = canonicalize(
            net("10.0.1.0/24"),
            Some(ip("10.0.1.1")),
            Some(ip("10.0.1.3")),
            None,
        )
        .unwrap();
        let s = set(&[a, b]);
        let ex = Exclusions::new(&[net("10.0.0.11/32"), net("10.0.1.2/31")]);
        // 10.0.1.1 is b's gateway; 10.0.1.2-3 excluded.
        assert_eq!(
            take(Candidates::new(&s, &ex, None), 10),
            ["10.0.0.10", "10.0.0.12"]
        );
        assert_eq!(
            take(Candidates::new(&s, &ex, Some(ip("10.0.0.10"))), 10),
            ["10.0.0.12", "10.0.0.10"]
        );
        assert_eq!(s.capacity(&ex), 2);
        assert!(ex.contains(ip("10.0.1.3")));
        assert!(!ex.contains(ip("10.0.1.4")));
    }

    #[test]
    fn huge_exclusion_is_jumped() {
        let r = canon("fd00::/64");
        let s = set(&[r]);
        let ex = Exclusions::new(&[net("fd00::/65")]);
        let first = Candidates::new(&s, &ex, None).next().unwrap().1;
        assert_eq!(first, ip("fd00::8000:0:0:0"));
        assert_eq!(s.capacity(&ex), 1u128 << 63);
    }

    #[test]
    fn capacities() {
        let ex = Exclusions::default();
        assert_eq!(set(&[canon("10.0.0.0/24")]).capacity(&ex), 253);
        assert_eq!(set(&[canon("10.0.0.0/31")]).capacity(&ex), 2);
        assert_eq!(set(&[canon("10.0.0.0/32")]).capacity(&ex), 1);
        assert_eq!(set(&[canon("fd00::/64")]).capacity(&ex), (1u128 << 64) - 2);
        assert_eq!(set(&[canon("fd00::/127")]).capacity(&ex), 2);
        assert_eq!(set(&[canon("::/0")]).capacity(&ex), u128::MAX - 1);
        let full = canonicalize(net("::/0"), Some(ip("::")), None, None).unwrap();
        assert_eq!(full.size(), u128::MAX); // saturates
    }
}
