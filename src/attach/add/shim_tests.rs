//! `hostShim` against the fake kernel: the shim is created once, shared,
//! reference-counted and removed with its last user; the host's routes and
//! neighbour entries and the container's go where they should; every
//! failure leaves nothing of this ADD and everything of the other users;
//! a link mactrunk did not create is never touched; GC.

use std::path::Path;

use serde_json::{Value, json};

use super::tests::{HOST, held, netconf, request, run, setup};
use super::*;
use crate::attach::shim_registry::{UserKey, test_hooks};
use crate::ipam::store::Owner;
use crate::sys::netlink::fake::FakeNet;
use crate::sys::netlink::{HostRoute, MacvlanMode, RTPROT_MACTRUNK};

const HOST_IP: &str = "10.9.0.250";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The fake host with eth0 carrying the host's own address on the
/// containers' subnet.
fn shim_setup() -> (FakeNet, NetNs, tempfile::TempDir) {
    let (net, ns, data) = setup();
    let eth0 = net.link(HOST, "eth0").unwrap().index;
    net.ns(HOST)
        .add_address(eth0, "10.9.0.250/24".parse().unwrap(), AddrFlags::default())
        .unwrap();
    (net, ns, data)
}

fn shim_req(ns: &NetNs, data: &Path, cid: &str, ifname: &str, extra: Value) -> Request {
    let mut conf = json!({"hostShim": true});
    if let (Some(c), Some(e)) = (conf.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    let mut req = request(ns, netconf(data, conf));
    req.args.container_id = cid.into();
    req.args.ifname = ifname.into();
    req
}

fn key(network: &str, cid: &str, ifname: &str) -> UserKey {
    UserKey::new(network, &Owner::new(cid, ifname))
}

fn record_path(data: &Path, shim: &str) -> std::path::PathBuf {
    data.join(".mactrunk-shims").join(format!("{shim}.json"))
}

fn record(data: &Path, shim: &str) -> Option<Value> {
    std::fs::read(record_path(data, shim))
        .ok()
        .map(|b| serde_json::from_slice(&b).unwrap())
}

fn host_routes(net: &FakeNet) -> Vec<(u32, HostRoute)> {
    net.host_routes(HOST)
}

/// Nothing of the shim left: no link, no record, no route, no neighbour.
fn assert_no_shim(net: &FakeNet, data: &Path, shim: &str) {
    assert!(net.link(HOST, shim).is_none(), "shim {shim} left");
    assert!(record(data, shim).is_none(), "record of {shim} left");
    assert!(host_routes(net).is_empty(), "{:?}", host_routes(net));
    assert!(
        net.neighbours(HOST).is_empty(),
        "{:?}",
        net.neighbours(HOST)
    );
}

#[test]
fn the_first_add_creates_the_shim_and_routes_the_container_through_it() {
    let (net, ns, data) = shim_setup();
    let req = shim_req(&ns, data.path(), "c1", "eth0", json!({}));
    run(&net, &ns, &req).unwrap();
    let eth0 = net.link(HOST, "eth0").unwrap();
    let shim = net.link(HOST, "mts-eth0").expect("the shim");
    assert_eq!(shim.kind.as_deref(), Some("macvlan"));
    assert_eq!(shim.macvlan_mode, Some(MacvlanMode::Bridge));
    assert_eq!(shim.parent_index, Some(eth0.index));
    assert_eq!(shim.mac, Some(shim::mac(eth0.mac, "mts-eth0")));
    assert_eq!(shim.alias.as_deref(), Some("mactrunk:shim:eth0"));
    assert!(shim.up);
    assert!(net.addresses(HOST, shim.index).is_empty(), "no address");
    let sysctls = net.sysctls(HOST);
    for (key, val) in [
        ("ipv4/conf/mts-eth0/arp_ignore", "8"),
        ("ipv4/conf/mts-eth0/rp_filter", "1"),
        ("ipv6/conf/mts-eth0/accept_ra", "0"),
    ] {
        assert!(
            sysctls.iter().any(|(p, v)| p.ends_with(key) && v == val),
            "{key}: {sysctls:?}"
        );
    }
    assert!(
        sysctls.iter().all(|(p, _)| p.contains("/mts-eth0/")),
        "nothing of the host's but the shim: {sysctls:?}"
    );
    // The host: a /32 with the host's address as source, a permanent
    // neighbour entry for the container's MAC, added before the route.
    let c = net.link(ns.path(), "eth0").unwrap();
    assert_eq!(
        host_routes(&net),
        [(
            shim.index,
            HostRoute {
                dst: "10.9.0.2/32".parse().unwrap(),
                src: Some(ip(HOST_IP)),
                protocol: RTPROT_MACTRUNK
            }
        )]
    );
    let hn = net.neighbours(HOST);
    assert_eq!(hn.len(), 1);
    assert_eq!(
        (hn[0].index, hn[0].ip, hn[0].mac),
        (shim.index, ip("10.9.0.2"), c.mac)
    );
    assert!(hn[0].permanent);
    let calls = net.calls();
    let pos = |p: &str| calls.iter().position(|x| x.contains(p)).unwrap();
    assert!(pos("host network namespace: set_neighbour") < pos("add_host_route"));
    // The container: the host's address behind the shim's MAC, on-link.
    let cn = net.neighbours(ns.path());
    assert_eq!(cn.len(), 1);
    assert_eq!(
        (cn[0].ip, cn[0].mac, cn[0].permanent),
        (ip(HOST_IP), shim.mac, true)
    );
    assert!(
        !calls
            .iter()
            .any(|x| x.contains("add_route") && x.contains("10.9.0.250")),
        "on-link: no container route"
    );
    let rec = record(data.path(), "mts-eth0").unwrap();
    assert_eq!(rec["ifindex"], shim.index);
    assert_eq!(rec["parent"], "eth0");
    assert_eq!(
        rec["users"],
        json!([{"network": "lan", "containerID": "c1", "ifname": "eth0",
                "mac": format_mac(&c.mac.unwrap()),
                "routes": [{"ip": "10.9.0.2", "src": HOST_IP}]}])
    );
}

#[test]
fn a_second_attachment_shares_the_shim_which_goes_with_its_last_user() {
    let (net, ns, data) = shim_setup();
    run(
        &net,
        &ns,
        &shim_req(&ns, data.path(), "c1", "eth0", json!({})),
    )
    .unwrap();
    run(
        &net,
        &ns,
        &shim_req(&ns, data.path(), "c2", "net1", json!({})),
    )
    .unwrap();
    let shims: Vec<_> = net
        .links(HOST)
        .into_iter()
        .filter(|l| l.name.starts_with("mts-"))
        .collect();
    assert_eq!(shims.len(), 1, "one shim per parent");
    let creates = net
        .calls()
        .iter()
        .filter(|c| c.contains("create_macvlan mts-eth0"))
        .count();
    assert_eq!(creates, 1);
    assert_eq!(host_routes(&net).len(), 2);
    assert_eq!(
        record(data.path(), "mts-eth0").unwrap()["users"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let host = net.ns(HOST);
    let t = Duration::from_secs(1);
    shim_registry::release(&host, data.path(), t, &key("lan", "c1", "eth0")).unwrap();
    assert!(
        net.link(HOST, "mts-eth0").is_some(),
        "kept while c2 uses it"
    );
    let routes = host_routes(&net);
    assert_eq!(routes.len(), 1);
    assert_eq!(routes[0].1.dst.ip(), ip("10.9.0.3"));
    assert_eq!(net.neighbours(HOST).len(), 1);
    // Idempotent.
    shim_registry::release(&host, data.path(), t, &key("lan", "c1", "eth0")).unwrap();
    assert!(net.link(HOST, "mts-eth0").is_some());
    shim_registry::release(&host, data.path(), t, &key("lan", "c2", "net1")).unwrap();
    assert_no_shim(&net, data.path(), "mts-eth0");
    assert!(
        net.link(HOST, "eth0").is_some(),
        "the parent is never touched"
    );
}

/// Every host-side step of ADD fails once in turn, first with no other user
/// (nothing may be left of the shim), then with one (its shim, route and
/// neighbour entry stay as they are).
#[test]
fn every_failure_rolls_the_shim_back_and_keeps_other_users() {
    for with_other in [false, true] {
        let (net, ns, data) = shim_setup();
        if with_other {
            run(
                &net,
                &ns,
                &shim_req(&ns, data.path(), "c0", "net0", json!({})),
            )
            .unwrap();
        }
        let before_routes = host_routes(&net);
        let before_neigh = net.neighbours(HOST);
        let shim_before = net.link(HOST, "mts-eth0");
        let c = ns.path().to_string();
        let mut steps = vec![
            (HOST, "set_neighbour"),
            (HOST, "add_host_route"),
            (c.as_str(), "set_neighbour"),
        ];
        if !with_other {
            steps.extend([
                (HOST, "create_macvlan mts-eth0"),
                (HOST, "rename"),
                (HOST, "set_up"),
            ]);
        }
        for (where_, step) in steps {
            let what = format!("{with_other}/{where_}/{step}");
            net.fail(
                where_,
                step,
                LinkError::Invalid(format!("injected at {step}")),
            );
            let req = shim_req(&ns, data.path(), "c1", "eth0", json!({}));
            let e = run(&net, &ns, &req).unwrap_err();
            assert!(e.msg.contains("injected"), "{what}: {e:?}");
            assert!(
                net.link(&c, "eth0").is_none(),
                "{what}: container link left"
            );
            assert_eq!(held(data.path()).len(), usize::from(with_other), "{what}");
            assert_eq!(host_routes(&net), before_routes, "{what}");
            assert_eq!(net.neighbours(HOST), before_neigh, "{what}");
            match &shim_before {
                None => assert_no_shim(&net, data.path(), "mts-eth0"),
                Some(s) => {
                    assert_eq!(net.link(HOST, "mts-eth0").unwrap().index, s.index, "{what}");
                    let rec = record(data.path(), "mts-eth0").unwrap();
                    assert_eq!(rec["users"].as_array().unwrap().len(), 1, "{what}: {rec}");
                    assert_eq!(rec["users"][0]["containerID"], "c0", "{what}");
                }
            }
        }
        // The registry cannot be written: before the creation, and after it.
        for n in if with_other { vec![0] } else { vec![0, 1] } {
            test_hooks::fail_save_after(n);
            let req = shim_req(&ns, data.path(), "c1", "eth0", json!({}));
            let e = run(&net, &ns, &req).unwrap_err();
            assert!(e.msg.contains("injected failure"), "save {n}: {}", e.msg);
            assert!(net.link(&c, "eth0").is_none());
            assert_eq!(host_routes(&net), before_routes, "save {n}");
            if shim_before.is_none() {
                assert_no_shim(&net, data.path(), "mts-eth0");
            }
        }
        // And then it works.
        run(
            &net,
            &ns,
            &shim_req(&ns, data.path(), "c1", "eth0", json!({})),
        )
        .unwrap();
        assert_eq!(host_routes(&net).len(), before_routes.len() + 1);
    }
}

#[test]
fn a_link_mactrunk_did_not_create_is_never_touched() {
    let (net, ns, data) = shim_setup();
    let foreign = net.add_link(HOST, "mts-eth0", Some("macvlan"));
    let req = shim_req(&ns, data.path(), "c1", "eth0", json!({}));
    let e = run(&net, &ns, &req).unwrap_err();
    assert_eq!(e.code, code::INVALID_CONFIG);
    assert!(
        e.msg
            .starts_with("hostShim: link \"mts-eth0\" exists and was not created by mactrunk"),
        "{}",
        e.msg
    );
    assert_eq!(net.link(HOST, "mts-eth0").unwrap().index, foreign);
    assert!(
        !net.calls()
            .iter()
            .any(|c| c.contains(&format!(" {foreign}"))
                && (c.contains("delete") || c.contains("set_up") || c.contains("rename"))),
        "{:?}",
        net.calls()
    );
    assert!(net.link(ns.path(), "eth0").is_none());
    assert!(held(data.path()).is_empty());
    assert!(record(data.path(), "mts-eth0").is_none());
    // GC and DEL leave it alone too.
    let host = net.ns(HOST);
    let t = Duration::from_secs(1);
    shim_registry::gc(&host, data.path(), t, "lan", &[]).unwrap();
    shim_registry::release(&host, data.path(), t, &key("lan", "c1", "eth0")).unwrap();
    assert_eq!(net.link(HOST, "mts-eth0").unwrap().index, foreign);
}

#[test]
fn a_vlan_parent_gets_its_own_shim_and_the_lower_links_address() {
    let (net, ns, data) = setup();
    let eth0 = net.link(HOST, "eth0").unwrap().index;
    net.ns(HOST)
        .add_address(eth0, "10.1.0.5/24".parse().unwrap(), AddrFlags::default())
        .unwrap();
    let req = shim_req(&ns, data.path(), "c1", "eth0", json!({"vlan": 50}));
    run(&net, &ns, &req).unwrap();
    let vlan = net.link(HOST, "eth0.50").unwrap();
    let shim = net.link(HOST, "mts-eth0.50").unwrap();
    assert_eq!(shim.parent_index, Some(vlan.index));
    assert_eq!(host_routes(&net)[0].1.src, Some(ip("10.1.0.5")));
    // Not in the container's subnet: a route to it as well.
    let calls = net.calls();
    assert!(
        calls.iter().any(|c| c.starts_with(ns.path())
            && c.contains("add_route")
            && c.contains("10.1.0.5/32")),
        "{calls:?}"
    );
    assert_eq!(net.neighbours(ns.path())[0].ip, ip("10.1.0.5"));
    // DEL order: the shim before its VLAN parent.
    let host = net.ns(HOST);
    shim_registry::release(
        &host,
        data.path(),
        Duration::from_secs(1),
        &key("lan", "c1", "eth0"),
    )
    .unwrap();
    assert!(net.link(HOST, "mts-eth0.50").is_none());
    assert!(
        net.link(HOST, "eth0.50").is_some(),
        "the VLAN is the VLAN registry's"
    );
}

#[test]
fn a_shim_deleted_by_hand_comes_back_for_every_user() {
    let (net, ns, data) = shim_setup();
    run(
        &net,
        &ns,
        &shim_req(&ns, data.path(), "c1", "eth0", json!({})),
    )
    .unwrap();
    let first = net.link(HOST, "mts-eth0").unwrap();
    net.ns(HOST).delete(first.index).unwrap();
    assert!(host_routes(&net).is_empty());
    run(
        &net,
        &ns,
        &shim_req(&ns, data.path(), "c2", "net1", json!({})),
    )
    .unwrap();
    let again = net.link(HOST, "mts-eth0").unwrap();
    assert_ne!(again.index, first.index);
    assert_eq!(again.mac, first.mac, "the MAC the containers know");
    let mut dsts: Vec<IpAddr> = host_routes(&net).iter().map(|(_, r)| r.dst.ip()).collect();
    dsts.sort();
    assert_eq!(dsts, [ip("10.9.0.2"), ip("10.9.0.3")], "c1's route is back");
    assert_eq!(net.neighbours(HOST).len(), 2);
    assert_eq!(
        record(data.path(), "mts-eth0").unwrap()["ifindex"],
        again.index
    );
}

#[test]
fn no_host_address_to_route_from_is_code_7_and_leaves_nothing() {
    let (net, ns, data) = setup();
    let req = shim_req(&ns, data.path(), "c1", "eth0", json!({}));
    let e = run(&net, &ns, &req).unwrap_err();
    assert_eq!(e.code, code::INVALID_CONFIG);
    assert!(
        e.msg.starts_with("hostShim: the host has no address") && e.msg.contains("hostShim.src"),
        "{}",
        e.msg
    );
    assert!(net.link(ns.path(), "eth0").is_none());
    assert!(held(data.path()).is_empty());
    assert_no_shim(&net, data.path(), "mts-eth0");
    // A configured source works, and one that is no host address is code 7 naming it.
    let bad = shim_req(
        &ns,
        data.path(),
        "c1",
        "eth0",
        json!({"hostShim": {"src": "10.9.0.99"}}),
    );
    let e = run(&net, &ns, &bad).unwrap_err();
    assert_eq!(e.code, code::INVALID_CONFIG);
    assert!(
        e.msg
            .starts_with("hostShim.src: 10.9.0.99 is not an address of this host"),
        "{}",
        e.msg
    );
    assert_no_shim(&net, data.path(), "mts-eth0");
    assert!(held(data.path()).is_empty());
    let eth0 = net.link(HOST, "eth0").unwrap().index;
    net.ns(HOST)
        .add_address(
            eth0,
            "192.168.7.7/24".parse().unwrap(),
            AddrFlags::default(),
        )
        .unwrap();
    let good = shim_req(
        &ns,
        data.path(),
        "c1",
        "eth0",
        json!({"hostShim": {"src": ["192.168.7.7"]}}),
    );
    run(&net, &ns, &good).unwrap();
    assert_eq!(host_routes(&net)[0].1.src, Some(ip("192.168.7.7")));
}

#[test]
fn an_address_another_attachment_routes_is_code_102() {
    let (net, ns, data) = shim_setup();
    run(
        &net,
        &ns,
        &shim_req(&ns, data.path(), "c1", "eth0", json!({})),
    )
    .unwrap();
    // Another network's store hands out the same address on the same parent.
    let mut req = shim_req(&ns, data.path(), "c2", "net1", json!({"name": "lan2"}));
    req.name = "lan2".into();
    let e = run(&net, &ns, &req).unwrap_err();
    assert_eq!(e.code, code::ADDRESS_IN_USE);
    assert!(
        e.msg
            .starts_with("10.9.0.2 is in use on the network: attachment lan/c1/eth0"),
        "{}",
        e.msg
    );
    assert_eq!(host_routes(&net).len(), 1, "c1's route stays");
    assert_eq!(net.neighbours(HOST).len(), 1);
    assert!(net.link(ns.path(), "net1").is_none());
}

#[test]
fn a_host_route_mactrunk_did_not_add_is_left_alone() {
    let (net, ns, data) = shim_setup();
    let eth0 = net.link(HOST, "eth0").unwrap().index;
    net.ns(HOST)
        .add_host_route(eth0, ip("10.9.0.2"), None)
        .unwrap();
    let req = shim_req(&ns, data.path(), "c1", "eth0", json!({}));
    let e = run(&net, &ns, &req).unwrap_err();
    assert_eq!(e.code, code::INVALID_CONFIG);
    assert!(
        e.msg
            .starts_with("hostShim: the host already has a route to 10.9.0.2"),
        "{}",
        e.msg
    );
    assert_eq!(host_routes(&net).len(), 1);
    assert_eq!(host_routes(&net)[0].0, eth0, "the host's own route stays");
    assert!(net.link(HOST, "mts-eth0").is_none());
    assert!(record(data.path(), "mts-eth0").is_none());
}

#[test]
fn gc_drops_stale_users_stray_routes_and_the_unused_shim() {
    let (net, ns, data) = shim_setup();
    run(
        &net,
        &ns,
        &shim_req(&ns, data.path(), "c1", "eth0", json!({})),
    )
    .unwrap();
    run(
        &net,
        &ns,
        &shim_req(&ns, data.path(), "c2", "net1", json!({})),
    )
    .unwrap();
    let shim = net.link(HOST, "mts-eth0").unwrap();
    let host = net.ns(HOST);
    // A route of mactrunk's that no record claims (a kill -9 between a
    // retried ADD's route and its record), and one of somebody else's.
    host.add_host_route(shim.index, ip("10.9.0.77"), None)
        .unwrap();
    host.set_neighbour(shim.index, ip("10.9.0.77"), [2, 0, 0, 0, 0, 77])
        .unwrap();
    let t = Duration::from_secs(1);
    let keep = [Owner::new("c2", "net1")];
    // Another network's GC keeps everything of "lan".
    assert_eq!(
        shim_registry::gc(&host, data.path(), t, "other", &[]).unwrap(),
        0
    );
    assert_eq!(
        record(data.path(), "mts-eth0").unwrap()["users"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        shim_registry::gc(&host, data.path(), t, "lan", &keep).unwrap(),
        0
    );
    let dsts: Vec<IpAddr> = host_routes(&net).iter().map(|(_, r)| r.dst.ip()).collect();
    assert_eq!(dsts, [ip("10.9.0.3")], "c1's and the stray route went");
    assert_eq!(net.neighbours(HOST).len(), 1);
    let rec = record(data.path(), "mts-eth0").unwrap();
    assert_eq!(rec["users"][0]["containerID"], "c2");
    assert_eq!(
        shim_registry::gc(&host, data.path(), t, "lan", &[]).unwrap(),
        1
    );
    assert_no_shim(&net, data.path(), "mts-eth0");
}

#[test]
fn a_record_of_another_boot_is_never_acted_on() {
    let (net, ns, data) = shim_setup();
    run(
        &net,
        &ns,
        &shim_req(&ns, data.path(), "c1", "eth0", json!({})),
    )
    .unwrap();
    let path = record_path(data.path(), "mts-eth0");
    let mut rec = record(data.path(), "mts-eth0").unwrap();
    rec["bootId"] = json!("0000-another-boot");
    std::fs::write(&path, serde_json::to_vec(&rec).unwrap()).unwrap();
    // The link of that name now is somebody else's for all we know: DEL
    // drops the record and touches no link.
    let host = net.ns(HOST);
    let before = net.calls().len();
    shim_registry::release(
        &host,
        data.path(),
        Duration::from_secs(1),
        &key("lan", "c1", "eth0"),
    )
    .unwrap();
    assert!(!path.exists());
    assert!(
        net.calls()[before..].iter().all(|c| !c.contains("delete")),
        "{:?}",
        &net.calls()[before..]
    );
    assert!(net.link(HOST, "mts-eth0").is_some());
}

#[test]
fn the_hosts_own_address_from_the_ipam_is_code_102_and_leaves_nothing() {
    let (net, ns, data) = shim_setup();
    let req = shim_req(
        &ns,
        data.path(),
        "c1",
        "eth0",
        json!({"runtimeConfig": {"ips": ["10.9.0.250/24"]}}),
    );
    let e = run(&net, &ns, &req).unwrap_err();
    assert_eq!(e.code, code::ADDRESS_IN_USE);
    assert!(
        e.msg
            .starts_with("10.9.0.250 is in use on the network: it is an address of this host"),
        "{}",
        e.msg
    );
    assert!(net.link(ns.path(), "eth0").is_none());
    assert!(held(data.path()).is_empty());
    assert_no_shim(&net, data.path(), "mts-eth0");
}
