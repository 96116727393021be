//! The block engine against [`MemKv`] (etcd's semantics, in memory) and
//! [`MemStore`] (one per simulated node).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::{Arc, Barrier};

use ipnetwork::IpNetwork;
use serde_json::json;

use super::engine::{BLOCKS_FILE, Engine, Etcd, value_node};
use super::kv::{ClusterKv, MemKv};
use crate::cni::env::CniArgs;
use crate::cni::{CniError, code};
use crate::ipam::allocator::Assigned;
use crate::ipam::config::IpamConfig;
use crate::ipam::store::{MemStore, Owner, Store};

const NET: &str = "cl";
const PREFIX: &str = "/p/networks/cl/blocks/";

fn conf_with(node: &str, ipam: serde_json::Value, block: Option<u8>) -> IpamConfig {
    let mut ipam = ipam;
    ipam["cluster"] =
        json!({"etcdEndpoints": ["http://127.0.0.1:1"], "nodeName": node, "prefix": "/p"});
    if let Some(b) = block {
        ipam["cluster"]["blockSize"] = json!(b);
    }
    IpamConfig::from_netconf(&json!({"name": NET, "ipam": ipam}), &CniArgs::default()).unwrap()
}

fn conf(node: &str, subnet: &str) -> IpamConfig {
    conf_with(
        node,
        json!({"subnet": subnet, "gateway": "10.88.0.1"}),
        Some(28),
    )
}

fn with_static(c: &IpamConfig, ip: &str) -> IpamConfig {
    let mut c = c.clone();
    c.static_ips = vec![crate::ipam::config::StaticIp {
        set: 0,
        ip: ip.parse().unwrap(),
        key: "runtimeConfig.ips[0]".into(),
    }];
    c
}

/// One simulated node: its store and its etcd handle.
struct Node {
    store: MemStore,
    conf: IpamConfig,
    kv: MemKv,
}

impl Node {
    fn new(name: &str, subnet: &str, kv: &MemKv) -> Node {
        Node {
            store: MemStore::new(),
            conf: conf(name, subnet),
            kv: kv.clone(),
        }
    }

    fn run<T>(
        &mut self,
        conf: Option<&IpamConfig>,
        f: impl FnOnce(&mut Engine<'_, '_, MemStore>, &IpamConfig) -> T,
    ) -> (T, bool) {
        let conf = conf.unwrap_or(&self.conf).clone();
        let kv = self.kv.clone();
        let mut etcd = Etcd::lazy(move || Ok(Box::new(kv) as Box<dyn ClusterKv>));
        let cl = conf.cluster.clone().unwrap();
        let mut e = Engine {
            store: &mut self.store,
            cluster: &cl,
            network: NET,
            etcd: &mut etcd,
        };
        let out = f(&mut e, &conf);
        (out, etcd.used)
    }

    /// ADD; also says whether etcd was asked anything.
    fn add_conf(
        &mut self,
        conf: &IpamConfig,
        cid: &str,
    ) -> (Result<Vec<Assigned>, CniError>, bool) {
        self.run(Some(conf), |e, c| {
            e.allocate(c, &Owner::new(cid, "eth0"), None)
        })
    }

    fn add(&mut self, cid: &str) -> Result<IpAddr, CniError> {
        let c = self.conf.clone();
        self.add_conf(&c, cid).0.map(|a| a[0].ip)
    }

    fn del(&mut self, cid: &str) {
        let released = self.store.release(&Owner::new(cid, "eth0")).unwrap();
        self.run(None, |e, c| e.after_release(c, &released));
    }

    fn owned(&mut self) -> Vec<IpNetwork> {
        self.run(None, |e, _| e.load().unwrap())
            .0
            .into_iter()
            .map(|o| o.block)
            .collect()
    }
}

fn net(s: &str) -> IpNetwork {
    s.parse().unwrap()
}

/// Blocks in etcd -> owner node.
fn etcd_blocks(kv: &MemKv) -> BTreeMap<IpNetwork, String> {
    kv.snapshot()
        .into_iter()
        .filter_map(|(k, v)| {
            let b = super::blocks::parse_block_key(k.strip_prefix(PREFIX)?)?;
            Some((b, value_node(&v)?))
        })
        .collect()
}

/// The invariant: each node's local list is a subset of its blocks in etcd.
fn check_invariant(kv: &MemKv, nodes: &mut [(&str, &mut Node)]) {
    let etcd = etcd_blocks(kv);
    for (name, n) in nodes.iter_mut() {
        for b in n.owned() {
            assert_eq!(
                etcd.get(&b).map(String::as_str),
                Some(*name),
                "{name}'s block {b}"
            );
        }
        for a in n.store.all().unwrap() {
            assert!(
                n.owned().iter().any(|b| b.contains(a.ip)),
                "{name} holds {} outside its blocks",
                a.ip
            );
        }
    }
}

#[test]
fn owned_block_add_does_not_touch_etcd() {
    let kv = MemKv::new();
    let mut a = Node::new("a", "10.88.0.0/24", &kv);
    let c = a.conf.clone();
    let (r, used) = a.add_conf(&c, "c1");
    let first = r.unwrap()[0].ip;
    assert!(used, "the first ADD claims a block");
    let block = a.owned();
    assert_eq!(block.len(), 1);
    assert!(block[0].contains(first));
    assert_eq!(block[0].prefix(), 28);
    let calls = kv.calls();
    for i in 2..=10 {
        let (r, used) = a.add_conf(&c, &format!("c{i}"));
        assert!(block[0].contains(r.unwrap()[0].ip));
        assert!(!used, "ADD {i} with room in the owned block asked etcd");
    }
    assert_eq!(kv.calls(), calls);
    // The usage report was written with the claim, counting the address
    // the claim was for.
    let report: serde_json::Value =
        serde_json::from_str(&kv.snapshot()["/p/networks/cl/nodes/a"]).unwrap();
    assert_eq!(report["used"], 1, "{report}");
    assert_eq!(report["blocks"], serde_json::json!([block[0].to_string()]));
    // And it keeps working with etcd down.
    kv.set_down(true);
    a.add("c11").unwrap();
}

#[test]
fn a_claiming_add_is_one_listing_and_one_transaction() {
    let kv = MemKv::new();
    let mut a = Node::new("a", "10.88.0.0/24", &kv);
    a.add("c0").unwrap();
    // Fill the first block; the ADD that needs the second one claims it, and
    // the usage report rides on the claim's transaction (no separate put).
    let conf = a.conf.clone();
    for i in 1..=16 {
        let before = kv.calls();
        let (r, used) = a.add_conf(&conf, &format!("c{i}"));
        r.unwrap();
        if !used {
            continue;
        }
        assert_eq!(kv.calls() - before, 2, "list + create_with");
        let report: serde_json::Value =
            serde_json::from_str(&kv.snapshot()["/p/networks/cl/nodes/a"]).unwrap();
        assert_eq!(report["used"], i + 1, "{report}");
        assert_eq!(report["blocks"].as_array().map(Vec::len), Some(2));
        return;
    }
    panic!("16 ADDs never needed a second /28");
}

#[test]
fn full_blocks_claim_more_and_addresses_stay_unique() {
    let kv = MemKv::new();
    let mut a = Node::new("a", "10.88.0.0/24", &kv);
    let mut seen = BTreeSet::new();
    for i in 0..60 {
        let ip = a.add(&format!("c{i}")).unwrap();
        assert!(seen.insert(ip), "{ip} twice");
    }
    // 14 or 15 addresses per /28 (network address, gateway): 5 blocks.
    let owned = a.owned();
    assert!((4..=5).contains(&owned.len()), "{owned:?}");
    check_invariant(&kv, &mut [("a", &mut a)]);
}

#[test]
fn no_free_block_is_pool_exhausted_and_status_50() {
    let kv = MemKv::new();
    let mut b = Node::new("b", "10.88.0.0/26", &kv);
    let mut a = Node::new("a", "10.88.0.0/26", &kv);
    a.add("a0").unwrap();
    let mut i = 0;
    while b.add(&format!("b{i}")).is_ok() {
        i += 1;
    }
    assert_eq!(etcd_blocks(&kv).len(), 4);
    // a's block still has room: no etcd, fine.
    a.add("a1").unwrap();
    assert!(a.run(None, |e, c| e.status(c)).0.is_ok());
    let mut last = None;
    for j in 2..20 {
        if let Err(e) = a.add(&format!("a{j}")) {
            last = Some(e);
            break;
        }
    }
    let e = last.expect("a ran out");
    assert_eq!(e.code, code::POOL_EXHAUSTED);
    assert!(
        e.msg
            .starts_with("no free block in 10.88.0.0/26 for node a: all 4 blocks are claimed"),
        "{}",
        e.msg
    );
    let (st, _) = a.run(None, |e, c| e.status(c));
    assert_eq!(st.unwrap_err().code, code::NOT_AVAILABLE);
    check_invariant(&kv, &mut [("a", &mut a), ("b", &mut b)]);
}

#[test]
fn etcd_down_new_block_fails_11_and_leaves_nothing() {
    let kv = MemKv::new();
    let mut a = Node::new("a", "10.88.0.0/24", &kv);
    let mut n = 0;
    let first = a.owned_after(|a| {
        a.add("c0").unwrap();
    });
    assert_eq!(first.len(), 1);
    kv.set_down(true);
    let err = loop {
        match a.add(&format!("c{}", n + 1)) {
            Ok(_) => n += 1,
            Err(e) => break e,
        }
        assert!(n < 20);
    };
    assert_eq!(err.code, code::TRY_AGAIN_LATER, "{}", err.msg);
    let held_before = a.store.all().unwrap().len();
    assert_eq!(a.owned(), first, "no block recorded");
    // Nothing left behind: the failed owner holds nothing.
    assert!(
        a.store
            .owned_by(&Owner::new(format!("c{}", n + 1), "eth0"))
            .unwrap()
            .is_empty()
    );
    assert_eq!(a.store.all().unwrap().len(), held_before);
    // STATUS says 50 (full and etcd cannot be asked).
    assert_eq!(
        a.run(None, |e, c| e.status(c)).0.unwrap_err().code,
        code::NOT_AVAILABLE
    );
    // A DEL still works, and its block return fails quietly.
    a.del("c0");
    kv.set_down(false);
    a.add("again").unwrap();
}

impl Node {
    fn owned_after(&mut self, f: impl FnOnce(&mut Node)) -> Vec<IpNetwork> {
        f(self);
        self.owned()
    }
}

#[test]
fn crash_between_claim_and_record_is_adopted() {
    let kv = MemKv::new();
    // Node a's claim reached etcd, then a kill -9 lost the local record.
    let stranded = net("10.88.0.160/28");
    let mut m = kv.clone();
    assert!(
        m.create(
            &format!("{PREFIX}10.88.0.160-28"),
            &json!({"node": "a", "claimed": 1, "subnet": "10.88.0.0/24"}).to_string(),
        )
        .unwrap()
        .is_none()
    );
    let mut a = Node::new("a", "10.88.0.0/24", &kv);
    assert!(a.owned().is_empty());
    // The next ADD needs etcd (no local block), reconciles first: it adopts
    // the stranded block instead of claiming another.
    let ip = a.add("c1").unwrap();
    assert!(stranded.contains(ip), "{ip}");
    assert_eq!(a.owned(), vec![stranded]);
    assert_eq!(etcd_blocks(&kv).len(), 1);
    // GC returns an adopted block that is empty.
    let mut b = Node::new("b", "10.88.0.0/24", &kv);
    m.create(
        &format!("{PREFIX}10.88.0.0-28"),
        &json!({"node": "b", "claimed": 1, "subnet": "10.88.0.0/24"}).to_string(),
    )
    .unwrap();
    let (given, _) = b.run(None, |e, _| e.gc());
    assert_eq!(given.unwrap(), vec![net("10.88.0.0/28")]);
    assert_eq!(etcd_blocks(&kv).len(), 1);
    check_invariant(&kv, &mut [("a", &mut a), ("b", &mut b)]);
}

#[test]
fn a_block_released_under_a_live_node_is_reclaimed_or_dropped() {
    let kv = MemKv::new();
    let mut a = Node::new("a", "10.88.0.0/24", &kv);
    a.add("c1").unwrap();
    let blk = a.owned()[0];
    // An admin deleted it from etcd (release-node --force on a live node).
    let key = format!("{PREFIX}{}", super::blocks::block_key(&blk));
    kv.map.lock().unwrap().remove(&key);
    // GC reconciles: the block is in use locally, so it is claimed back.
    let (given, _) = a.run(None, |e, _| e.gc());
    assert!(given.unwrap().is_empty());
    assert_eq!(etcd_blocks(&kv).get(&blk).map(String::as_str), Some("a"));
    // Taken by another node meanwhile: dropped locally (no new address there).
    kv.map.lock().unwrap().insert(
        key,
        json!({"node": "b", "claimed": 1, "subnet": "10.88.0.0/24"}).to_string(),
    );
    a.run(None, |e, _| e.gc()).0.unwrap();
    assert!(!a.owned().contains(&blk));
}

#[test]
fn statics_claim_a_free_block_and_are_refused_in_another_nodes() {
    let kv = MemKv::new();
    let mut a = Node::new("a", "10.88.0.0/24", &kv);
    let mut b = Node::new("b", "10.88.0.0/24", &kv);
    let bip = b.add("b1").unwrap();
    let bblock = b.owned()[0];
    // a static in b's block: refused, naming b and the block.
    let other = bblock.iter().nth(5).unwrap();
    assert_ne!(other, bip);
    let sc = with_static(&a.conf, &other.to_string());
    let (r, _) = a.add_conf(&sc, "s1");
    let e = r.unwrap_err();
    assert_eq!(e.code, code::ADDRESS_IN_USE);
    assert!(
        e.msg.contains("node \"b\"") && e.msg.contains(&bblock.to_string()),
        "{}",
        e.msg
    );
    assert!(e.msg.starts_with("runtimeConfig.ips[0]:"), "{}", e.msg);
    // a static in a free block: that block is claimed for a.
    let free = (0..16)
        .map(|i| net(&format!("10.88.0.{}/28", i * 16)))
        .find(|n| !etcd_blocks(&kv).contains_key(n))
        .unwrap();
    let want = free.iter().nth(7).unwrap();
    let sc = with_static(&a.conf, &want.to_string());
    let (r, used) = a.add_conf(&sc, "s2");
    assert_eq!(r.unwrap()[0].ip, want);
    assert!(used);
    assert!(a.owned().contains(&free));
    // Repeating the ADD: idempotent, no etcd.
    let (r, used) = a.add_conf(&sc, "s2");
    assert_eq!(r.unwrap()[0].ip, want);
    assert!(!used);
    check_invariant(&kv, &mut [("a", &mut a), ("b", &mut b)]);
}

#[test]
fn threaded_claim_race_never_gives_a_block_or_address_twice() {
    let kv = MemKv::new();
    let nodes = 4;
    let per = 40;
    let barrier = Arc::new(Barrier::new(nodes));
    let handles: Vec<_> = (0..nodes)
        .map(|n| {
            let kv = kv.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let name = format!("n{n}");
                let mut node = Node::new(&name, "10.88.0.0/24", &kv);
                barrier.wait();
                let mut got = Vec::new();
                for i in 0..per {
                    match node.add(&format!("{name}-c{i}")) {
                        Ok(ip) => got.push(ip),
                        Err(e) => panic!("{name}: {}", e.msg),
                    }
                }
                (name, node, got)
            })
        })
        .collect();
    let mut all = BTreeSet::new();
    let mut results: Vec<(String, Node, Vec<IpAddr>)> =
        handles.into_iter().map(|h| h.join().unwrap()).collect();
    for (name, _, got) in &results {
        assert_eq!(got.len(), per);
        for ip in got {
            assert!(all.insert(*ip), "{ip} given twice ({name})");
        }
    }
    let etcd = etcd_blocks(&kv);
    let mut local = BTreeSet::new();
    for (name, node, _) in &mut results {
        for b in node.owned() {
            assert_eq!(etcd.get(&b), Some(&*name), "block {b}");
            assert!(local.insert(b), "block {b} listed by two nodes");
        }
    }
    // 160 addresses at 14-15 per block: 11+ blocks, none shared.
    assert!(etcd.len() >= 11, "{etcd:?}");
}

#[test]
fn static_race_on_two_nodes_exactly_one_wins() {
    for round in 0..20 {
        let kv = MemKv::new();
        let ip = format!("10.88.0.{}", 20 + round);
        let barrier = Arc::new(Barrier::new(2));
        let hs: Vec<_> = ["a", "b"]
            .into_iter()
            .map(|name| {
                let kv = kv.clone();
                let barrier = barrier.clone();
                let ip = ip.clone();
                std::thread::spawn(move || {
                    let mut n = Node::new(name, "10.88.0.0/24", &kv);
                    let sc = with_static(&n.conf, &ip);
                    barrier.wait();
                    n.add_conf(&sc, "s").0.map(|a| a[0].ip)
                })
            })
            .collect();
        let rs: Vec<_> = hs.into_iter().map(|h| h.join().unwrap()).collect();
        let wins = rs.iter().filter(|r| r.is_ok()).count();
        assert_eq!(wins, 1, "round {round}: {rs:?}");
        let loser = rs.iter().find_map(|r| r.as_ref().err()).unwrap();
        assert_eq!(loser.code, code::ADDRESS_IN_USE, "{}", loser.msg);
    }
}

#[test]
fn del_returns_an_empty_block_only_when_another_has_room() {
    let kv = MemKv::new();
    let mut a = Node::new("a", "10.88.0.0/24", &kv);
    // Fill the first block, spill one into a second.
    let mut ips = Vec::new();
    while a.owned().len() < 2 {
        let i = ips.len();
        ips.push((format!("c{i}"), a.add(&format!("c{i}")).unwrap()));
    }
    let owned = a.owned();
    let (last_cid, last_ip) = ips.last().cloned().unwrap();
    let second = *owned.iter().find(|b| b.contains(last_ip)).unwrap();
    // Emptying the second block while the first is full keeps it (the spare).
    a.del(&last_cid);
    assert_eq!(a.owned().len(), 2);
    // A DEL in the first block: it has room now; the second is empty but
    // this DEL did not empty it (GC returns it).
    a.del(&ips[0].0);
    assert_eq!(a.owned().len(), 2);
    // GC returns every empty block (the spare too).
    let (given, _) = a.run(None, |e, _| e.gc());
    assert_eq!(given.unwrap(), vec![second]);
    assert_eq!(a.owned().len(), 1);
    assert!(!etcd_blocks(&kv).contains_key(&second));
    check_invariant(&kv, &mut [("a", &mut a)]);
    // The local list is a small JSON file.
    assert!(a.store.meta[BLOCKS_FILE].contains("\"blocks\""));
}

#[test]
fn del_returns_the_block_it_empties_when_another_has_room() {
    let kv = MemKv::new();
    let mut a = Node::new("a", "10.88.0.0/24", &kv);
    let mut cids = Vec::new();
    while a.owned().len() < 2 {
        let c = format!("c{}", cids.len());
        a.add(&c).unwrap();
        cids.push(c);
    }
    let first = a.owned();
    // Free one address of the first block: it has room now.
    a.del(&cids[0]);
    assert_eq!(a.owned().len(), 2);
    // Empty the second block: returned, the first (with room) is kept.
    a.del(cids.last().unwrap());
    assert_eq!(a.owned().len(), 1, "{:?} of {first:?}", a.owned());
    assert_eq!(etcd_blocks(&kv).len(), 1);
    check_invariant(&kv, &mut [("a", &mut a)]);
}

#[test]
fn gc_with_etcd_down_fails_the_cluster_part_only() {
    let kv = MemKv::new();
    let mut a = Node::new("a", "10.88.0.0/24", &kv);
    a.add("c1").unwrap();
    kv.set_down(true);
    let (r, _) = a.run(None, |e, _| e.gc());
    assert_eq!(r.unwrap_err().code, code::TRY_AGAIN_LATER);
    assert_eq!(a.owned().len(), 1);
}

#[test]
fn ipv6_blocks_default_to_122() {
    let kv = MemKv::new();
    let c = conf_with("a", json!({"subnet": "fd00::/64"}), None);
    let mut n = Node {
        store: MemStore::new(),
        conf: c,
        kv: kv.clone(),
    };
    let ip = n.add("c1").unwrap();
    let owned = n.owned();
    assert_eq!(owned[0].prefix(), 122);
    assert!(owned[0].contains(ip));
}

#[test]
fn side_files_keep_the_index_stamp_and_are_no_records() {
    use crate::ipam::store::FileStore;
    use std::time::Duration;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("net");
    {
        let mut s = FileStore::open(&dir, Duration::from_secs(1)).unwrap();
        s.reserve(&Owner::new("c1", "eth0"), "10.88.0.2".parse().unwrap())
            .unwrap();
        s.write_meta(BLOCKS_FILE, "{\"blocks\": []}\n").unwrap();
        s.commit().unwrap();
    }
    let mut s = FileStore::open(&dir, Duration::from_secs(1)).unwrap();
    assert_eq!(s.full_scans(), 0, "a side file made the next open rescan");
    assert_eq!(
        s.read_meta(BLOCKS_FILE).unwrap().as_deref(),
        Some("{\"blocks\": []}\n")
    );
    assert_eq!(s.all().unwrap().len(), 1);
    assert!(s.write_meta("../x", "y").is_err());
    assert!(s.write_meta("plain", "y").is_err());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.join(BLOCKS_FILE))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn the_plugin_allocates_in_owned_blocks_without_the_helper() {
    use crate::ipam::store::FileStore;
    use std::time::Duration;
    let tmp = tempfile::tempdir().unwrap();
    let c = conf_with(
        "a",
        json!({"subnet": "10.88.0.0/24", "gateway": "10.88.0.1", "dataDir": tmp.path()}),
        Some(29),
    );
    // The node owns 10.88.0.8/29 (recorded as a claim would record it).
    {
        let mut s = FileStore::open(&c.location().dir, Duration::from_secs(1)).unwrap();
        s.write_meta(
            BLOCKS_FILE,
            &json!({"node": "a", "blocks": [{"block": "10.88.0.8/29", "value": "{}"}]}).to_string(),
        )
        .unwrap();
    }
    let mut got = Vec::new();
    for i in 0..8 {
        let a = crate::ipam::add_in(&c, &Owner::new(format!("c{i}"), "eth0"), None).unwrap();
        let ip = a.out.ips[0].address;
        assert_eq!(ip.prefix(), 24, "the subnet's prefix, not the block's");
        assert!(net("10.88.0.8/29").contains(ip.ip()), "{ip}");
        got.push(ip.ip());
    }
    // Full: now the helper is needed. It is not installed beside the test
    // binary, so the ADD fails naming it (and holds nothing).
    let e = crate::ipam::add_in(&c, &Owner::new("c9", "eth0"), None).unwrap_err();
    assert_eq!(e.code, code::IO, "{}", e.msg);
    assert!(e.msg.contains("mactrunk-etcd"), "{}", e.msg);
    assert_eq!(crate::ipam::list(&c.location()).unwrap().len(), 8);
    // A static address outside the owned blocks needs the helper too.
    let s = with_static(&c, "10.88.0.100");
    let e = crate::ipam::add_in(&s, &Owner::new("s1", "eth0"), None).unwrap_err();
    assert!(e.msg.contains("mactrunk-etcd"), "{}", e.msg);
    // DEL never needs etcd: one block owned, nothing to return.
    crate::ipam::del_in(&c.location(), &Owner::new("c0", "eth0"), Some(&c)).unwrap();
    assert_eq!(crate::ipam::list(&c.location()).unwrap().len(), 7);
    // STATUS: room again, no helper.
    crate::ipam::status(&c).unwrap();
}
