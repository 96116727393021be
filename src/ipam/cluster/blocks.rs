//! Block math, pure: cut ranges into aligned blocks, find the block of an
//! address, pick a free block, and narrow a config to the node's blocks.

use std::net::IpAddr;

use ipnetwork::IpNetwork;

use super::config::ClusterConfig;
use crate::ipam::config::IpamConfig;
use crate::ipam::range::{
    Exclusions, Range, RangeSet, from_u128, net_bounds, range_capacity, to_u128,
};

/// The etcd key suffix of a block: `10.88.0.16-28` (no '/': one key component).
pub fn block_key(b: &IpNetwork) -> String {
    format!("{}-{}", b.network(), b.prefix())
}

/// Parse [`block_key`]; None for anything that is not a canonical block.
pub fn parse_block_key(s: &str) -> Option<IpNetwork> {
    let (addr, len) = s.rsplit_once('-')?;
    let ip: IpAddr = addr.parse().ok()?;
    let len: u8 = len.parse().ok()?;
    let net = IpNetwork::new(ip, len).ok()?;
    (net.network() == ip).then_some(net)
}

/// The aligned block of prefix length `len` holding `ip`.
pub fn block_of(ip: IpAddr, len: u8) -> IpNetwork {
    let max: u8 = if ip.is_ipv4() { 32 } else { 128 };
    let len = len.min(max);
    let host = u32::from(max - len);
    let n = to_u128(ip);
    let first = n
        .checked_shr(host)
        .unwrap_or(0)
        .checked_shl(host)
        .unwrap_or(0);
    // len <= max, so IpNetwork::new cannot fail; keep a total fallback anyway.
    IpNetwork::new(from_u128(ip.is_ipv4(), first), len).unwrap_or_else(|_| IpNetwork::from(ip))
}

pub fn overlaps(a: &IpNetwork, b: &IpNetwork) -> bool {
    if a.is_ipv4() != b.is_ipv4() {
        return false;
    }
    let (a0, a1) = net_bounds(a);
    let (b0, b1) = net_bounds(b);
    a0 <= b1 && b0 <= a1
}

/// The block prefix length for range `r` under `cluster`.
pub fn len_for(cluster: &ClusterConfig, r: &Range) -> u8 {
    cluster.block_len(r.is_ipv4(), r.subnet.prefix())
}

/// `r` narrowed to `block` (None when they do not meet).
fn intersect(r: &Range, block: &IpNetwork) -> Option<Range> {
    if !r.subnet.contains(block.network()) && !block.contains(r.subnet.network()) {
        return None;
    }
    if r.is_ipv4() != block.is_ipv4() {
        return None;
    }
    let (b0, b1) = net_bounds(block);
    let lo = r.start().max(b0);
    let hi = r.end().min(b1);
    (lo <= hi).then(|| Range {
        subnet: r.subnet,
        range_start: from_u128(r.is_ipv4(), lo),
        range_end: from_u128(r.is_ipv4(), hi),
        gateway: r.gateway,
    })
}

/// Addresses of `block` the allocator may hand out dynamically in `set`.
pub fn block_capacity(set: &RangeSet, excl: &Exclusions, block: &IpNetwork) -> u128 {
    set.ranges
        .iter()
        .filter_map(|r| intersect(r, block))
        .map(|r| range_capacity(&r, excl))
        .fold(0u128, u128::saturating_add)
}

/// Insert `x` into `v` kept in `key` order. (Not `sort_by_key`: each sort
/// instantiation costs the plugin binary several KB, and these lists are short.)
pub fn insert_by<T, K: Ord>(v: &mut Vec<T>, x: T, key: impl Fn(&T) -> K) {
    let k = key(&x);
    let i = v.partition_point(|e| key(e) <= k);
    v.insert(i, x);
}

/// `conf` with every range set narrowed to the addresses inside `owned`
/// blocks: the allocator then picks only there (a set without an owned
/// block gets no range and so no dynamic address). Subnets, gateways and
/// static requests stay as they are, so results look as in local mode.
pub fn restrict(conf: &IpamConfig, owned: &[IpNetwork]) -> IpamConfig {
    let mut out = IpamConfig {
        network: conf.network.clone(),
        data_dir: conf.data_dir.clone(),
        lock_timeout: conf.lock_timeout,
        range_sets: Vec::with_capacity(conf.range_sets.len()),
        exclude: conf.exclude.clone(),
        exclusions: conf.exclusions.clone(),
        routes: Vec::new(), // not the allocator's business
        dns: Default::default(),
        resolv_conf: None,
        static_ips: conf.static_ips.clone(),
        // The allocator never looks at it; cloning it would cost the fast path.
        cluster: None,
    };
    for s in &conf.range_sets {
        let mut set = RangeSet {
            ranges: Vec::new(),
            key: s.key.clone(),
        };
        let mut ranges = Vec::new();
        for r in &s.ranges {
            let mut parts: Vec<Range> = Vec::new();
            for p in owned.iter().filter_map(|b| intersect(r, b)) {
                insert_by(&mut parts, p, Range::start);
            }
            ranges.extend(parts);
        }
        set.ranges = ranges;
        out.range_sets.push(set);
    }
    out
}

/// The blocks that hold dynamic addresses of one range set, in order, as
/// (range index, first block number, last block number) spans; a block
/// number is the block's first address >> host bits.
fn spans(cluster: &ClusterConfig, set: &RangeSet) -> Vec<(u8, bool, u128, u128)> {
    set.ranges
        .iter()
        .map(|r| {
            let len = len_for(cluster, r);
            let host = if r.is_ipv4() { 32 } else { 128 } - u32::from(len);
            let sh = |n: u128| n.checked_shr(host).unwrap_or(0);
            (len, r.is_ipv4(), sh(r.start()), sh(r.end()))
        })
        .collect()
}

fn block_from(len: u8, v4: bool, num: u128) -> IpNetwork {
    let host = if v4 { 32 } else { 128 } - u32::from(len);
    let first = num.checked_shl(host).unwrap_or(0);
    IpNetwork::new(from_u128(v4, first), len)
        .unwrap_or_else(|_| IpNetwork::from(from_u128(v4, first)))
}

/// How many blocks hold addresses of the set (saturating).
pub fn block_count(cluster: &ClusterConfig, set: &RangeSet) -> u128 {
    spans(cluster, set)
        .iter()
        .map(|&(_, _, a, b)| (b - a).saturating_add(1))
        .fold(0u128, u128::saturating_add)
}

/// FNV-1a of the node name: where a node starts looking for a free block,
/// so nodes claiming at the same time mostly try different blocks.
pub fn seed(node: &str) -> u128 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in node.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    u128::from(h)
}

/// Bound on blocks looked at per search (a range mostly excluded could
/// otherwise be walked block by block for a long time).
const MAX_LOOKS: usize = 1 << 16;

/// A free block of the set for dynamic addresses: not overlapping any of
/// `taken` (blocks in etcd, whoever's; `skip` too), with at least one
/// dynamic address. Starts at `seed` modulo the block count and wraps.
pub fn choose_free(
    cluster: &ClusterConfig,
    set: &RangeSet,
    excl: &Exclusions,
    taken: &[IpNetwork],
    seed: u128,
) -> Option<IpNetwork> {
    let spans = spans(cluster, set);
    let total = block_count(cluster, set);
    if total == 0 {
        return None;
    }
    let start = seed % total;
    // Walk the blocks as one sequence: k-th block overall, k from start, wrapping.
    let nth = |mut k: u128| -> Option<IpNetwork> {
        for &(len, v4, a, b) in &spans {
            let n = (b - a).saturating_add(1);
            if k < n {
                return Some(block_from(len, v4, a + k));
            }
            k -= n;
        }
        None
    };
    let looks = total.min(MAX_LOOKS as u128 + taken.len() as u128);
    for i in 0..looks {
        let k = (start + i) % total;
        let Some(b) = nth(k) else { continue };
        if taken.iter().any(|t| overlaps(t, &b)) {
            continue;
        }
        if block_capacity(set, excl, &b) > 0 {
            return Some(b);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cni::env::CniArgs;
    use serde_json::json;

    fn net(s: &str) -> IpNetwork {
        s.parse().unwrap()
    }

    fn cluster(block: Option<u8>) -> ClusterConfig {
        ClusterConfig {
            endpoints: vec!["http://h:1".into()],
            node: "n1".into(),
            block_v4: block,
            block_v6: None,
            timeout: std::time::Duration::from_secs(1),
            prefix: "/p".into(),
            tls: None,
            netconf: std::sync::Arc::new(serde_json::Value::Null),
        }
    }

    fn conf(ipam: serde_json::Value) -> IpamConfig {
        IpamConfig::from_netconf(&json!({"name": "n", "ipam": ipam}), &CniArgs::default()).unwrap()
    }

    #[test]
    fn keys_round_trip() {
        for s in ["10.88.0.16/28", "fd00::40/122", "10.0.0.0/8"] {
            let b = net(s);
            assert_eq!(parse_block_key(&block_key(&b)), Some(b));
        }
        assert_eq!(block_key(&net("10.88.0.16/28")), "10.88.0.16-28");
        for bad in [
            "10.88.0.17-28",
            "x-28",
            "10.0.0.0",
            "10.0.0.0-33",
            "10.0.0.0-",
        ] {
            assert_eq!(parse_block_key(bad), None, "{bad}");
        }
    }

    #[test]
    fn block_of_an_address() {
        let ip: IpAddr = "10.88.0.37".parse().unwrap();
        assert_eq!(block_of(ip, 28), net("10.88.0.32/28"));
        assert_eq!(block_of(ip, 32), net("10.88.0.37/32"));
        assert_eq!(
            block_of("fd00::7f".parse().unwrap(), 122),
            net("fd00::40/122")
        );
    }

    #[test]
    fn cutting_and_choosing() {
        let c = conf(json!({"subnet": "10.88.0.0/24"}));
        let cl = cluster(Some(28));
        let set = &c.range_sets[0];
        assert_eq!(block_count(&cl, set), 16);
        // Everything taken but one block: that one is found from any seed.
        let all: Vec<IpNetwork> = (0..16)
            .map(|i| net(&format!("10.88.0.{}/28", i * 16)))
            .collect();
        let taken: Vec<IpNetwork> = all.iter().filter(|b| **b != all[9]).cloned().collect();
        for s in 0..40 {
            assert_eq!(
                choose_free(&cl, set, &c.exclusions, &taken, s),
                Some(all[9])
            );
        }
        assert_eq!(choose_free(&cl, set, &c.exclusions, &all, 3), None);
        // Seeds spread the start.
        assert_eq!(choose_free(&cl, set, &c.exclusions, &[], 5), Some(all[5]));
        // A block overlapping a taken one of another size is not free.
        assert_eq!(
            choose_free(&cl, set, &c.exclusions, &[net("10.88.0.0/27")], 0),
            Some(all[2])
        );
        // Fully excluded blocks are skipped.
        let c2 = conf(json!({"subnet": "10.88.0.0/24", "exclude": ["10.88.0.0/25"]}));
        let b = choose_free(&cl, &c2.range_sets[0], &c2.exclusions, &[], 0).unwrap();
        assert_eq!(b, net("10.88.0.128/28"));
    }

    #[test]
    fn range_bounds_limit_the_blocks() {
        let c = conf(
            json!({"subnet": "10.88.0.0/24", "rangeStart": "10.88.0.100", "rangeEnd": "10.88.0.130"}),
        );
        let cl = cluster(Some(28));
        assert_eq!(block_count(&cl, &c.range_sets[0]), 3); // .96, .112, .128
        let r = restrict(&c, &[net("10.88.0.96/28")]);
        assert_eq!(r.range_sets[0].ranges.len(), 1);
        assert_eq!(
            r.range_sets[0].ranges[0].range_start.to_string(),
            "10.88.0.100"
        );
        assert_eq!(
            r.range_sets[0].ranges[0].range_end.to_string(),
            "10.88.0.111"
        );
        assert_eq!(
            block_capacity(&c.range_sets[0], &c.exclusions, &net("10.88.0.128/28")),
            3
        );
    }

    #[test]
    fn restrict_keeps_only_owned_addresses() {
        let c = conf(json!({"subnet": "10.88.0.0/24", "gateway": "10.88.0.1"}));
        let r = restrict(&c, &[net("10.88.0.32/28"), net("10.88.0.0/28")]);
        let rs = &r.range_sets[0].ranges;
        assert_eq!(rs.len(), 2);
        assert_eq!(rs[0].range_start.to_string(), "10.88.0.1");
        assert_eq!(rs[0].range_end.to_string(), "10.88.0.15");
        assert_eq!(rs[1].range_start.to_string(), "10.88.0.32");
        assert_eq!(rs[0].subnet, net("10.88.0.0/24"));
        // Gateway not counted, network address not in the range.
        assert_eq!(
            block_capacity(&c.range_sets[0], &c.exclusions, &net("10.88.0.0/28")),
            14
        );
        assert!(restrict(&c, &[]).range_sets[0].ranges.is_empty());
        // A block of another family or subnet does nothing.
        assert!(
            restrict(&c, &[net("10.99.0.0/28")]).range_sets[0]
                .ranges
                .is_empty()
        );
    }
}
