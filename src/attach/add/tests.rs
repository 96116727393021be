//! ADD against the fake kernel (no root): the happy path, the temporary
//! name on old kernels, and every rollback branch: a failure after the link
//! exists leaves no link, no address and no VLAN parent behind.

use std::path::Path;

use serde_json::{Value, json};

use super::*;
use crate::attach::vlan_registry::test_hooks;
use crate::cni::Version;
use crate::cni::env::CmdArgs;
use crate::ipam::store::{FileStore, Store};
use crate::sys::netlink::fake::FakeNet;
use crate::sys::netlink::{AddrFlags, IpvlanFlags, IpvlanMode};

pub(super) const HOST: &str = "host network namespace";

pub(super) fn request(netns: &NetNs, conf: Value) -> Request {
    Request {
        command: Command::Add,
        args: CmdArgs {
            container_id: "c1".into(),
            netns: netns.path().to_string(),
            ifname: "eth0".into(),
            ..CmdArgs::default()
        },
        raw: conf.to_string().into_bytes(),
        conf,
        version: Version::V1_1_0,
        name: "lan".into(),
    }
}

pub(super) fn netconf(data: &Path, extra: Value) -> Value {
    let mut c = json!({
        "cniVersion": "1.1.0", "name": "lan", "type": "mactrunk", "master": "eth0",
        "ipam": {"type": "mactrunk-ipam", "subnet": "10.9.0.0/24", "dataDir": data,
                 "routes": [{"dst": "0.0.0.0/0"}]}
    });
    if let (Some(c), Some(e)) = (c.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    c
}

/// The fake host with a NIC `eth0`, and a real netns handle whose path
/// names the fake container namespace.
pub(super) fn setup() -> (FakeNet, NetNs, tempfile::TempDir) {
    let net = FakeNet::new();
    net.add_link(HOST, "eth0", None);
    (net, NetNs::current().unwrap(), tempfile::tempdir().unwrap())
}

pub(super) fn run(net: &FakeNet, ns: &NetNs, req: &Request) -> Result<CniOutput, CniError> {
    let conf = PluginConfig::parse(&req.conf, &req.args.args)?;
    add_with(
        req,
        &conf,
        ns,
        &net.ns(HOST),
        &net.ns(ns.path()),
        &mut Phases::start(),
    )
}

pub(super) fn held(data: &Path) -> Vec<IpAddr> {
    let dir = data.join("lan");
    if !dir.exists() {
        return Vec::new();
    }
    let mut s = FileStore::open(&dir, Duration::from_secs(1)).unwrap();
    s.all().unwrap().into_iter().map(|a| a.ip).collect()
}

#[test]
fn add_creates_tags_and_configures_the_link() {
    let (net, ns, data) = setup();
    let req = request(&ns, netconf(data.path(), json!({})));
    let out = run(&net, &ns, &req).unwrap();
    let link = net.link(ns.path(), "eth0").expect("eth0 in the container");
    assert_eq!(link.alias.as_deref(), Some("mactrunk:lan:c1"));
    assert!(link.up);
    assert_eq!(
        net.addresses(ns.path(), link.index),
        ["10.9.0.2/24".parse::<IpNetwork>().unwrap()]
    );
    assert_eq!(out.interfaces[0].mac, Some(format_mac(&link.mac.unwrap())));
    assert_eq!(held(data.path()), ["10.9.0.2".parse::<IpAddr>().unwrap()]);
    let sysctls = net.sysctls(ns.path());
    assert!(
        sysctls
            .iter()
            .any(|(p, v)| p.ends_with("ipv4/conf/eth0/arp_notify") && v == "1")
    );
    // The order that makes announcements work: addresses, then up, then routes.
    let calls = net.calls();
    let pos = |p: &str| calls.iter().position(|c| c.contains(p)).unwrap();
    assert!(pos("add_address") < pos("set_up") && pos("set_up") < pos("add_route"));
    assert!(
        net.links(HOST).iter().all(|l| l.name == "eth0"),
        "nothing on the host"
    );
}

#[test]
fn old_kernel_host_eth0_takes_a_temporary_name() {
    let (mut net, ns, data) = setup();
    net.old_kernel = true;
    let req = request(&ns, netconf(data.path(), json!({})));
    run(&net, &ns, &req).unwrap();
    let links = net.links(ns.path());
    assert_eq!(links.len(), 1, "{links:?}");
    assert_eq!(links[0].name, "eth0");
    assert_eq!(links[0].alias.as_deref(), Some("mactrunk:lan:c1"));
    let calls = net.calls();
    assert!(
        calls.iter().any(|c| c.contains("create_macvlan mt")),
        "{calls:?}"
    );
    assert!(
        calls
            .iter()
            .any(|c| c.contains("name=eth0 alias=mactrunk:lan:c1"))
    );
}

#[test]
fn a_real_name_clash_in_the_container_is_code_4_and_allocates_nothing() {
    let (mut net, ns, data) = setup();
    net.old_kernel = true;
    net.add_link(ns.path(), "eth0", Some("veth"));
    let req = request(&ns, netconf(data.path(), json!({})));
    assert_eq!(run(&net, &ns, &req).unwrap_err().code, code::INVALID_ENV);
    assert!(held(data.path()).is_empty());
    assert!(!net.calls().iter().any(|c| c.contains("create_macvlan")));
}

/// Every step after the link exists fails once in turn; each time nothing
/// may be left: no container link, no address, and the next ADD works.
#[test]
fn every_failure_after_create_rolls_everything_back() {
    let (net, ns, data) = setup();
    let req = request(&ns, netconf(data.path(), json!({})));
    let c = ns.path().to_string();
    let steps = [
        "rename",
        "write_sysctls",
        "add_address",
        "set_up",
        "add_route",
    ];
    for step in steps {
        let before = net.calls().len();
        net.fail(&c, step, LinkError::Invalid(format!("injected at {step}")));
        let e = run(&net, &ns, &req).unwrap_err();
        assert!(e.msg.contains("injected"), "{step}: {e:?}");
        assert!(
            net.links(&c).is_empty(),
            "{step}: link left {:?}",
            net.links(&c)
        );
        assert!(held(data.path()).is_empty(), "{step}: address left");
        let deleted = net.calls()[before..]
            .iter()
            .filter(|call| call.starts_with(&format!("{c}: delete")))
            .count();
        assert_eq!(deleted, 1, "{step}: the link is deleted once");
    }
    run(&net, &ns, &req).unwrap();
    assert_eq!(net.links(&c).len(), 1);
}

#[test]
fn the_rollback_deletes_by_index_not_by_name() {
    let (net, ns, data) = setup();
    let req = request(&ns, netconf(data.path(), json!({})));
    let c = ns.path().to_string();
    net.fail(&c, "set_up", LinkError::Invalid("injected".into()));
    run(&net, &ns, &req).unwrap_err();
    let calls = net.calls();
    let created = net
        .calls()
        .iter()
        .position(|x| x.contains("create_macvlan"))
        .unwrap();
    let index_of_eth0 = calls[created + 1..]
        .iter()
        .find_map(|x| x.strip_prefix(&format!("{c}: rename ")))
        .and_then(|rest| rest.split(' ').next())
        .unwrap()
        .to_string();
    assert!(
        calls.contains(&format!("{c}: delete {index_of_eth0}")),
        "{calls:?}"
    );
}

#[test]
fn the_temporary_link_is_discarded_when_the_rename_fails() {
    let (mut net, ns, data) = setup();
    net.old_kernel = true;
    let req = request(&ns, netconf(data.path(), json!({})));
    net.fail(ns.path(), "rename", LinkError::Invalid("injected".into()));
    run(&net, &ns, &req).unwrap_err();
    assert!(
        net.links(ns.path()).is_empty(),
        "{:?}",
        net.links(ns.path())
    );
    assert!(held(data.path()).is_empty());
}

#[test]
fn del_removes_what_an_add_killed_before_the_rename_left_and_nothing_else() {
    // A kill between the create under the temporary name and the rename:
    // simulated by a rename and a rollback that both fail.
    let (mut net, ns, data) = setup();
    net.old_kernel = true;
    let req = request(&ns, netconf(data.path(), json!({})));
    net.fail(ns.path(), "rename", LinkError::Invalid("injected".into()));
    net.fail(ns.path(), "delete", LinkError::Invalid("killed".into()));
    run(&net, &ns, &req).unwrap_err();
    let left = net.links(ns.path());
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].name.starts_with("mt") && left[0].alias.is_none() && !left[0].up);
    // Another attachment's half-made link stays: a concurrent ADD into the
    // same netns may be about to rename it.
    let mut other = request(&ns, netconf(data.path(), json!({})));
    other.args.container_id = "c2".into();
    net.fail(ns.path(), "rename", LinkError::Invalid("injected".into()));
    net.fail(ns.path(), "delete", LinkError::Invalid("killed".into()));
    run(&net, &ns, &other).unwrap_err();
    let other_name = super::super::tag::temp_link_names(&link_tag("lan", "c2"), "eth0")
        .next()
        .unwrap();
    let c = ns.path();
    let tag = link_tag("lan", "c1");
    super::super::del::delete_own_link(&net.ns(c), "eth0", &tag).unwrap();
    super::super::del::delete_temp_leftovers(&net.ns(c), "eth0", &tag).unwrap();
    let names: Vec<String> = net.links(c).into_iter().map(|l| l.name).collect();
    assert_eq!(
        names,
        [other_name],
        "only the other attachment's link is left"
    );
}

#[test]
fn a_retried_add_keeps_what_the_first_add_holds_when_it_fails() {
    // The first ADD allocated and died before the link (a crash): the
    // retry reuses the address and, failing, must not give it back: its
    // owner's DEL does.
    let (net, ns, data) = setup();
    let req = request(&ns, netconf(data.path(), json!({})));
    let ipam_conf = IpamConfig::from_netconf(&req.conf, &Default::default()).unwrap();
    ipam::add_in(&ipam_conf, &owner(&req), ns.id().as_deref()).unwrap();
    net.fail(ns.path(), "set_up", LinkError::Invalid("injected".into()));
    run(&net, &ns, &req).unwrap_err();
    assert_eq!(held(data.path()).len(), 1);
    assert!(net.links(ns.path()).is_empty());
}

#[test]
fn a_dropped_bcqueuelen_is_code_7_and_leaves_nothing() {
    let (mut net, ns, data) = setup();
    net.no_bcqueuelen = true;
    let req = request(&ns, netconf(data.path(), json!({"bcqueuelen": 2000})));
    let e = run(&net, &ns, &req).unwrap_err();
    assert_eq!(e.code, code::INVALID_CONFIG);
    assert!(
        e.msg.starts_with("bcqueuelen: ") && e.msg.contains("5.11"),
        "{}",
        e.msg
    );
    assert!(net.links(ns.path()).is_empty());
    assert!(held(data.path()).is_empty());
}

#[test]
fn vlan_parent_is_created_shared_and_undone_with_the_add() {
    let (net, ns, data) = setup();
    let req = request(&ns, netconf(data.path(), json!({"vlan": 50})));
    run(&net, &ns, &req).unwrap();
    let vlan = net.link(HOST, "eth0.50").expect("VLAN link created");
    assert!(vlan.up);
    let mv = net.link(ns.path(), "eth0").unwrap();
    assert_eq!(mv.parent_index, Some(vlan.index));
    let record = data.path().join(".mactrunk-vlans/eth0.50.json");
    assert!(record.exists());

    // A second container fails after its link: the VLAN parent stays (the
    // first one uses it) and the record lists the first user only.
    let mut req2 = request(&ns, netconf(data.path(), json!({"vlan": 50})));
    req2.args.container_id = "c2".into();
    req2.args.ifname = "net1".into();
    net.fail(
        ns.path(),
        "add_route",
        LinkError::Invalid("injected".into()),
    );
    run(&net, &ns, &req2).unwrap_err();
    assert!(net.link(HOST, "eth0.50").is_some());
    assert!(net.link(ns.path(), "net1").is_none());
    let text = std::fs::read_to_string(&record).unwrap();
    assert!(
        text.contains("\"c1\"") && !text.contains("\"c2\""),
        "{text}"
    );
}

#[test]
fn a_new_vlan_parent_goes_with_a_failed_add() {
    let (net, ns, data) = setup();
    let req = request(&ns, netconf(data.path(), json!({"vlan": 60})));
    net.fail(ns.path(), "set_up", LinkError::Invalid("injected".into()));
    run(&net, &ns, &req).unwrap_err();
    assert!(net.link(HOST, "eth0.60").is_none(), "VLAN link left");
    assert!(!data.path().join(".mactrunk-vlans/eth0.60.json").exists());
    assert!(held(data.path()).is_empty());
}

#[test]
fn vlan_creation_undoes_itself_when_setting_it_up_or_recording_it_fails() {
    // set_up of the new VLAN link refused: the link goes, the record too.
    let (net, ns, data) = setup();
    let req = request(&ns, netconf(data.path(), json!({"vlan": 70})));
    net.fail(HOST, "set_up", LinkError::Invalid("injected".into()));
    run(&net, &ns, &req).unwrap_err();
    assert!(net.link(HOST, "eth0.70").is_none());
    assert!(!data.path().join(".mactrunk-vlans/eth0.70.json").exists());
    assert!(held(data.path()).is_empty());
    // The record of its ifindex cannot be saved after the link exists.
    test_hooks::fail_save_after(1);
    let e = run(&net, &ns, &req).unwrap_err();
    assert!(e.msg.contains("injected failure"), "{}", e.msg);
    assert!(net.link(HOST, "eth0.70").is_none(), "VLAN link left");
    assert!(!data.path().join(".mactrunk-vlans/eth0.70.json").exists());
    assert!(net.links(ns.path()).is_empty());
    assert!(held(data.path()).is_empty());
    // And then it works.
    run(&net, &ns, &req).unwrap();
    assert!(net.link(HOST, "eth0.70").is_some());
}

#[test]
fn result_merges_prev_result_and_dns() {
    let (_, ns, data) = setup();
    let mut conf = PluginConfig::parse(
        &json!({"cniVersion": "1.1.0", "name": "n", "dns": {"nameservers": ["1.1.1.1"]},
                "prevResult": {"cniVersion": "1.1.0", "interfaces": [{"name": "eth0"}],
                               "ips": [{"address": "10.9.0.2/24", "interface": 0}]}}),
        &Default::default(),
    )
    .unwrap();
    conf.ipam = IpamKind::InProcess;
    let mut req = request(&ns, netconf(data.path(), json!({})));
    req.args.ifname = "net1".into();
    let ipam_out = CniOutput::from_json(
        &json!({"cniVersion": "1.1.0", "ips": [{"address": "10.0.0.2/24", "gateway": "10.0.0.1"}],
                "dns": {"nameservers": ["9.9.9.9"], "search": ["corp"]}}),
        Version::V1_1_0,
    )
    .unwrap();
    let out = build_result(
        &req,
        &conf,
        ipam_out,
        Attached {
            mac: "02:00:00:00:00:01".into(),
            mtu: 1500,
        },
    );
    assert_eq!(out.interfaces.len(), 2);
    assert_eq!(out.interfaces[1].name, "net1");
    assert_eq!(out.ips[1].interface, Some(1));
    assert_eq!(out.dns.nameservers, vec!["1.1.1.1"]);
    assert_eq!(out.dns.search, vec!["corp"]);
}

// ---------------------------------------------------------------- ipvlan

fn position(calls: &[String], needle: &str) -> usize {
    calls
        .iter()
        .position(|c| c.contains(needle))
        .unwrap_or_else(|| panic!("no call {needle:?} in {calls:?}"))
}

#[test]
fn ipvlan_add_creates_an_ipvlan_with_the_parents_mac() {
    let (net, ns, data) = setup();
    let req = request(
        &ns,
        netconf(
            data.path(),
            json!({"linkType": "ipvlan", "mode": "l2", "ipvlanFlags": "private"}),
        ),
    );
    let out = run(&net, &ns, &req).unwrap();
    let link = net.link(ns.path(), "eth0").unwrap();
    assert_eq!(link.kind.as_deref(), Some("ipvlan"));
    assert_eq!(link.ipvlan_mode, Some(IpvlanMode::L2));
    assert_eq!(link.ipvlan_flags, Some(IpvlanFlags::Private));
    assert_eq!(link.alias.as_deref(), Some("mactrunk:lan:c1"));
    let parent = net.link(HOST, "eth0").unwrap();
    assert_eq!(link.mac, parent.mac);
    assert_eq!(
        out.interfaces[0].mac,
        Some(format_mac(&parent.mac.unwrap()))
    );
    assert!(net.calls().iter().any(|c| c.contains("create_ipvlan eth0")));
    // l2: the default route goes via the gateway, as for a macvlan.
    let calls = net.calls();
    assert!(calls[position(&calls, "add_route")].contains("0.0.0.0/0"));
    assert_eq!(held(data.path()), ["10.9.0.2".parse::<IpAddr>().unwrap()]);
}

/// The kernel keeps one ipvlan mode and flag set per parent, and a new
/// ipvlan sets them for every ipvlan there: an ADD with another mode or
/// other flags on a parent that mactrunk's ipvlans use is code 7 naming the
/// key and the network that holds the parent, and leaves nothing (the
/// running containers keep their mode). Once the last user is gone (DEL or
/// a rollback), the parent takes any mode again.
#[test]
fn ipvlan_another_mode_on_a_used_parent_is_code_7_and_switches_nothing() {
    let (net, ns, data) = setup();
    let l2 = request(
        &ns,
        netconf(data.path(), json!({"linkType": "ipvlan", "mode": "l2"})),
    );
    run(&net, &ns, &l2).unwrap();
    let record = data.path().join(".mactrunk-ipvlans/eth0.json");
    let before = std::fs::read_to_string(&record).unwrap();
    for (extra, key) in [
        (json!({"mode": "l3"}), "mode: l3 differs"),
        (
            json!({"mode": "l2", "ipvlanFlags": "private"}),
            "ipvlanFlags: private differs",
        ),
    ] {
        let mut conf = netconf(data.path(), json!({"linkType": "ipvlan"}));
        conf["name"] = json!("other");
        conf["ipam"]["subnet"] = json!("10.8.0.0/24");
        if let (Some(c), Some(e)) = (conf.as_object_mut(), extra.as_object()) {
            c.extend(e.clone());
        }
        let mut other = request(&ns, conf);
        other.name = "other".into();
        other.args.container_id = "c2".into();
        other.args.ifname = "net1".into();
        let e = run(&net, &ns, &other).unwrap_err();
        assert_eq!(e.code, code::INVALID_CONFIG, "{e:?}");
        assert!(e.msg.starts_with(key), "{}", e.msg);
        assert!(
            e.msg.contains(
                "the ipvlan mode l2 bridge that network \"lan\" (1 attachment) uses on \"eth0\""
            ),
            "{}",
            e.msg
        );
        assert!(net.link(ns.path(), "net1").is_none(), "no link left");
        assert!(!data.path().join("other").join("10.8.0.2").exists());
        assert_eq!(std::fs::read_to_string(&record).unwrap(), before);
        let c1 = net.link(ns.path(), "eth0").unwrap();
        assert_eq!(
            (c1.ipvlan_mode, c1.ipvlan_flags),
            (Some(IpvlanMode::L2), Some(IpvlanFlags::Bridge)),
            "the running container kept its mode"
        );
    }
    // The same mode from another container joins.
    let l2_conf = netconf(data.path(), json!({"linkType": "ipvlan", "mode": "l2"}));
    let mut same = request(&ns, l2_conf.clone());
    same.args.container_id = "c3".into();
    same.args.ifname = "net2".into();
    run(&net, &ns, &same).unwrap();
    // A failed ADD takes its user back out of the record.
    let mut failing = request(&ns, l2_conf);
    failing.args.container_id = "c4".into();
    failing.args.ifname = "net3".into();
    net.fail(
        ns.path(),
        "add_route",
        LinkError::Invalid("injected".into()),
    );
    run(&net, &ns, &failing).unwrap_err();
    let users = |path: &Path| -> Vec<String> {
        let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        v["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["containerID"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(users(&record), ["c1", "c3"]);
    // DEL of both (the host side of DEL): the record goes, l3 may come.
    let host = net.ns(HOST);
    crate::attach::vlan_release(&l2, &host).unwrap();
    crate::attach::vlan_release(&same, &host).unwrap();
    assert!(!record.exists());
    let mut l3 = request(
        &ns,
        netconf(data.path(), json!({"linkType": "ipvlan", "mode": "l3"})),
    );
    l3.args.container_id = "c5".into();
    l3.args.ifname = "net4".into();
    run(&net, &ns, &l3).unwrap();
    assert!(std::fs::read_to_string(&record).unwrap().contains("\"l3\""));
}

#[test]
fn ipvlan_l3_routes_without_gw_go_out_of_the_device() {
    for (mode, via_gw) in [("l2", true), ("l3", false), ("l3s", false)] {
        let (net, ns, data) = setup();
        let req = request(
            &ns,
            netconf(data.path(), json!({"linkType": "ipvlan", "mode": mode})),
        );
        let out = run(&net, &ns, &req).unwrap();
        let c = net.ns(ns.path());
        let routes = c.routes().unwrap();
        assert_eq!(routes.len(), 1, "{mode}");
        let want = via_gw.then(|| "10.9.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(routes[0].gw, want, "{mode}");
        // The result is the IPAM's either way.
        assert_eq!(out.ips[0].gateway, Some("10.9.0.1".parse().unwrap()));
    }
}

#[test]
fn ipvlan_on_a_macvlan_parent_is_code_7_naming_it_and_leaves_nothing() {
    let (net, ns, data) = setup();
    // Another network's macvlan on eth0 already.
    let mut other = request(&ns, netconf(data.path(), json!({})));
    other.args.container_id = "c0".into();
    other.args.ifname = "net0".into();
    run(&net, &ns, &other).unwrap();
    let req = request(&ns, netconf(data.path(), json!({"linkType": "ipvlan"})));
    let e = run(&net, &ns, &req).unwrap_err();
    assert_eq!(e.code, code::INVALID_CONFIG, "{e:?}");
    assert!(e.msg.starts_with("linkType: "), "{}", e.msg);
    assert!(
        e.msg.contains("\"eth0\" already carries macvlan links"),
        "{}",
        e.msg
    );
    assert!(e.msg.contains("EBUSY"), "{}", e.msg);
    assert!(net.link(ns.path(), "eth0").is_none());
    assert_eq!(
        held(data.path()).len(),
        1,
        "only the other network's address"
    );
}

#[test]
fn ipvlan_takes_a_temporary_name_on_old_kernels_and_works_on_a_vlan_parent() {
    let (mut net, ns, data) = setup();
    net.old_kernel = true;
    let req = request(
        &ns,
        netconf(data.path(), json!({"linkType": "ipvlan", "vlan": 50})),
    );
    run(&net, &ns, &req).unwrap();
    let vlan = net.link(HOST, "eth0.50").unwrap();
    let link = net.link(ns.path(), "eth0").unwrap();
    assert_eq!(link.kind.as_deref(), Some("ipvlan"));
    assert_eq!(link.parent_index, Some(vlan.index));
    assert!(
        net.calls().iter().any(|c| c.contains("create_ipvlan mt")),
        "{:?}",
        net.calls()
    );
    // A failure after the link: everything goes, the VLAN parent too.
    let (net, ns, data) = setup();
    let req = request(
        &ns,
        netconf(data.path(), json!({"linkType": "ipvlan", "vlan": 60})),
    );
    net.fail(
        ns.path(),
        "add_route",
        LinkError::Invalid("injected".into()),
    );
    run(&net, &ns, &req).unwrap_err();
    assert!(net.link(HOST, "eth0.60").is_none());
    assert!(net.links(ns.path()).is_empty());
    assert!(held(data.path()).is_empty());
}

// ---------------------------------------------------------------- macFromIP

#[test]
fn mac_from_ip_sets_the_derived_mac_while_the_link_is_down() {
    let (net, ns, data) = setup();
    let req = request(&ns, netconf(data.path(), json!({"macFromIP": true})));
    let out = run(&net, &ns, &req).unwrap();
    let link = net.link(ns.path(), "eth0").unwrap();
    assert_eq!(link.mac, Some([0x02, 0x6d, 10, 9, 0, 2]));
    assert_eq!(out.interfaces[0].mac.as_deref(), Some("02:6d:0a:09:00:02"));
    let calls = net.calls();
    assert!(position(&calls, "set_mac") < position(&calls, "set_up"));
    assert!(calls[position(&calls, "set_mac")].contains("02:6d:0a:09:00:02"));
    // The same static address in a re-created container: the same MAC.
    let mut again = request(
        &ns,
        netconf(
            data.path(),
            json!({"macFromIP": true, "runtimeConfig": {"ips": ["10.9.0.77/24"]}}),
        ),
    );
    again.args.container_id = "c2".into();
    again.args.ifname = "net1".into();
    run(&net, &ns, &again).unwrap();
    let first = net.link(ns.path(), "net1").unwrap().mac;
    let del = net.link(ns.path(), "net1").unwrap().index;
    net.ns(ns.path()).delete(del).unwrap();
    crate::ipam::del(
        &IpamConfig::from_netconf(&again.conf, &Default::default())
            .unwrap()
            .location(),
        &owner(&again),
    )
    .unwrap();
    again.args.container_id = "c3".into();
    run(&net, &ns, &again).unwrap();
    assert_eq!(net.link(ns.path(), "net1").unwrap().mac, first);
    assert_eq!(first, Some([0x02, 0x6d, 10, 9, 0, 77]));
}

#[test]
fn mac_from_ip_or_probe_without_ipv4_is_code_7_before_anything_happens() {
    for key in ["macFromIP", "probe"] {
        let (net, ns, data) = setup();
        let extra = if key == "probe" {
            json!({"probe": {}})
        } else {
            json!({"macFromIP": true})
        };
        let mut conf = netconf(data.path(), extra);
        conf["ipam"]["subnet"] = json!("fd00::/120");
        conf["ipam"]["routes"] = json!([]);
        let req = request(&ns, conf);
        let e = run(&net, &ns, &req).unwrap_err();
        assert_eq!(e.code, code::INVALID_CONFIG);
        assert!(e.msg.starts_with(&format!("{key}: ")), "{}", e.msg);
        assert!(e.msg.contains("IPv6 range sets only"), "{}", e.msg);
        assert!(net.calls().is_empty(), "{key}: {:?}", net.calls());
        assert!(held(data.path()).is_empty());
    }
}

/// A delegated IPAM plugin (a shell script in `dir`) that answers ADD with
/// `result` and appends every command it gets to `dir/calls`.
fn delegate(dir: &Path, name: &str, result: Value) {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    let calls = dir.join("calls");
    std::fs::write(
        &p,
        format!(
            "#!/bin/sh\ncat >/dev/null\necho \"$CNI_COMMAND\" >>{}\n[ \"$CNI_COMMAND\" = ADD ] && echo '{result}'\nexit 0\n",
            calls.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn a_delegated_result_without_ipv4_is_code_7_for_mac_from_ip_and_probe() {
    for key in ["macFromIP", "probe"] {
        let (net, ns, data) = setup();
        delegate(
            data.path(),
            "v6only",
            json!({"cniVersion": "1.1.0", "ips": [{"address": "fd00::5/64"}]}),
        );
        let extra = if key == "probe" {
            json!({"probe": {}, "ipam": {"type": "v6only"}})
        } else {
            json!({"macFromIP": true, "ipam": {"type": "v6only"}})
        };
        let mut req = request(&ns, netconf(data.path(), extra));
        req.args.path = vec![data.path().display().to_string()];
        let e = run(&net, &ns, &req).unwrap_err();
        assert_eq!(e.code, code::INVALID_CONFIG, "{e:?}");
        assert!(
            e.msg
                .starts_with(&format!("{key}: the IPAM gave no IPv4 address to ")),
            "{}",
            e.msg
        );
        assert!(net.links(ns.path()).is_empty(), "{key}");
        let calls = std::fs::read_to_string(data.path().join("calls")).unwrap();
        assert_eq!(
            calls, "ADD\nDEL\n",
            "{key}: the delegate's DEL gives it back"
        );
    }
}

// ---------------------------------------------------------------- probe

const ROGUE: [u8; 6] = [0x52, 0x54, 0, 0, 0, 1];

fn probe_conf(data: &Path, extra: Value) -> Value {
    let mut c = netconf(data, json!({"probe": {"timeoutMs": 50}}));
    if let (Some(c), Some(e)) = (c.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    c
}

fn record(data: &Path, ip: &str) -> String {
    std::fs::read_to_string(data.join("lan").join(ip)).unwrap_or_default()
}

#[test]
fn probe_of_a_free_address_then_configure_and_announce() {
    let (net, ns, data) = setup();
    let req = request(&ns, probe_conf(data.path(), json!({})));
    let out = run(&net, &ns, &req).unwrap();
    assert_eq!(out.ips[0].address.to_string(), "10.9.0.2/24");
    let calls = net.calls();
    let (up, probe, addr, announce, route) = (
        position(&calls, "set_up"),
        position(&calls, "arp_probe"),
        position(&calls, "add_address"),
        position(&calls, "arp_announce"),
        position(&calls, "add_route"),
    );
    assert!(
        up < probe && probe < addr && addr < announce && announce < route,
        "{calls:?}"
    );
    assert!(calls[probe].contains("arp_probe") && calls[probe].contains(" 10.9.0.2 "));
    assert!(calls[announce].contains("10.9.0.2"));
    // announce: false: no announcement of our own either.
    let (net, ns, data) = setup();
    let req = request(&ns, probe_conf(data.path(), json!({"announce": false})));
    run(&net, &ns, &req).unwrap();
    assert!(!net.calls().iter().any(|c| c.contains("arp_announce")));
}

#[test]
fn probe_conflict_quarantines_and_takes_the_next_address() {
    let (net, ns, data) = setup();
    net.answer_arp("10.9.0.2".parse().unwrap(), ROGUE);
    let req = request(&ns, probe_conf(data.path(), json!({})));
    let out = run(&net, &ns, &req).unwrap();
    assert_eq!(out.ips[0].address.to_string(), "10.9.0.3/24");
    let link = net.link(ns.path(), "eth0").unwrap();
    assert_eq!(
        net.addresses(ns.path(), link.index),
        ["10.9.0.3/24".parse::<IpNetwork>().unwrap()]
    );
    assert_eq!(
        record(data.path(), "10.9.0.2"),
        "conflict:52:54:00:00:00:01"
    );
    assert_eq!(record(data.path(), "10.9.0.3"), "c1\r\neth0");
    let probes = net
        .calls()
        .iter()
        .filter(|c| c.contains("arp_probe"))
        .count();
    assert_eq!(probes, 2);
    // The next container skips the quarantined address without probing it.
    let mut next = request(&ns, probe_conf(data.path(), json!({})));
    next.args.container_id = "c2".into();
    next.args.ifname = "net1".into();
    let out = run(&net, &ns, &next).unwrap();
    assert_eq!(out.ips[0].address.to_string(), "10.9.0.4/24");
    // A rollback after the replacement gives back the replacement, keeps
    // the quarantine.
    let (net, ns, data) = setup();
    net.answer_arp("10.9.0.2".parse().unwrap(), ROGUE);
    net.fail(
        ns.path(),
        "add_route",
        LinkError::Invalid("injected".into()),
    );
    let req = request(&ns, probe_conf(data.path(), json!({})));
    run(&net, &ns, &req).unwrap_err();
    assert_eq!(held(data.path()), ["10.9.0.2".parse::<IpAddr>().unwrap()]);
    assert_eq!(
        record(data.path(), "10.9.0.2"),
        "conflict:52:54:00:00:00:01"
    );
    assert!(net.links(ns.path()).is_empty());
}

/// With macFromIP the probes go out from the MAC the kernel gave the link,
/// and the derived MAC is set once, on the up link, after the probe passed,
/// before the addresses: a host elsewhere that uses the very MAC we would
/// derive (another node's container with that address and macFromIP)
/// answers from that MAC, and must not pass for our own frame.
#[test]
fn probe_with_mac_from_ip_probes_from_the_kernels_mac_and_sets_the_derived_one_after() {
    let (net, ns, data) = setup();
    // 10.9.0.2 is taken by a host with the MAC 10.9.0.2 derives to.
    net.answer_arp("10.9.0.2".parse().unwrap(), [0x02, 0x6d, 10, 9, 0, 2]);
    let req = request(&ns, probe_conf(data.path(), json!({"macFromIP": true})));
    let out = run(&net, &ns, &req).unwrap();
    assert_eq!(out.ips[0].address.to_string(), "10.9.0.3/24");
    assert_eq!(out.interfaces[0].mac.as_deref(), Some("02:6d:0a:09:00:03"));
    assert_eq!(
        record(data.path(), "10.9.0.2"),
        "conflict:02:6d:0a:09:00:02"
    );
    let calls = net.calls();
    let probes: Vec<&String> = calls.iter().filter(|c| c.contains("arp_probe")).collect();
    assert_eq!(probes.len(), 2, "{calls:?}");
    for p in &probes {
        assert!(p.contains(" from 02:aa:"), "the kernel's MAC: {p}");
    }
    let set_macs: Vec<usize> = calls
        .iter()
        .enumerate()
        .filter(|(_, c)| c.contains("set_mac"))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(set_macs.len(), 1, "one set_mac: {calls:?}");
    let set_mac = set_macs[0];
    assert!(calls[set_mac].ends_with("02:6d:0a:09:00:03"), "{calls:?}");
    let last_probe = calls.iter().rposition(|c| c.contains("arp_probe")).unwrap();
    assert!(position(&calls, "set_up") < set_mac && last_probe < set_mac);
    assert!(set_mac < position(&calls, "add_address"), "{calls:?}");
    let announce = position(&calls, "arp_announce");
    assert!(
        calls[announce].ends_with("from 02:6d:0a:09:00:03"),
        "{calls:?}"
    );
    assert_eq!(
        net.link(ns.path(), "eth0").unwrap().mac,
        Some([0x02, 0x6d, 10, 9, 0, 3])
    );
}

#[test]
fn probe_attempts_exhausted_is_code_102_and_leaves_only_the_quarantines() {
    let (net, ns, data) = setup();
    // Three hosts, three MACs.
    for (i, ip) in ["10.9.0.2", "10.9.0.3", "10.9.0.4"].iter().enumerate() {
        net.answer_arp(ip.parse().unwrap(), [0x52, 0x54, 0, 0, 0, 1 + i as u8]);
    }
    let req = request(
        &ns,
        probe_conf(
            data.path(),
            json!({"probe": {"timeoutMs": 50, "attempts": 3}}),
        ),
    );
    let e = run(&net, &ns, &req).unwrap_err();
    assert_eq!(e.code, code::ADDRESS_IN_USE, "{e:?}");
    assert!(
        e.msg.starts_with(
            "10.9.0.4 is in use on the network: 52:54:00:00:00:03 answered an ARP probe from eth0"
        ),
        "{}",
        e.msg
    );
    assert!(
        e.msg.contains("every probe attempt found its address in use: 10.9.0.2 (52:54:00:00:00:01), 10.9.0.3 (52:54:00:00:00:02), 10.9.0.4 (52:54:00:00:00:03)"),
        "{}",
        e.msg
    );
    // The error names every address this ADD quarantined.
    assert!(
        e.msg
            .contains("quarantined in the IPAM store: 10.9.0.2, 10.9.0.3, 10.9.0.4"),
        "{}",
        e.msg
    );
    assert!(net.links(ns.path()).is_empty());
    for (i, ip) in ["10.9.0.2", "10.9.0.3", "10.9.0.4"].iter().enumerate() {
        assert_eq!(
            record(data.path(), ip),
            format!("conflict:52:54:00:00:00:0{}", i + 1),
            "{ip}"
        );
    }
    assert_eq!(held(data.path()).len(), 3, "the quarantines, nothing of c1");
    let dir = data.path().join("lan/owners/c1@eth0");
    assert!(!dir.exists(), "the owner holds nothing");
    // attempts = 1: the first conflict fails at once.
    let (net, ns, data) = setup();
    net.answer_arp("10.9.0.2".parse().unwrap(), ROGUE);
    let req = request(
        &ns,
        probe_conf(data.path(), json!({"probe": {"attempts": 1}})),
    );
    assert_eq!(run(&net, &ns, &req).unwrap_err().code, code::ADDRESS_IN_USE);
    assert_eq!(held(data.path()).len(), 1);
}

/// One MAC answering for every address probed looks like a router's proxy
/// ARP: ADD stops at the second such address with 102 and a hint, and
/// quarantines nothing more; retried ADDs do not drain the range.
#[test]
fn one_mac_answering_for_everything_stops_with_a_proxy_arp_hint() {
    let (net, ns, data) = setup();
    for i in 2..=30 {
        net.answer_arp(format!("10.9.0.{i}").parse().unwrap(), ROGUE);
    }
    let conf = probe_conf(data.path(), json!({"probe": {"attempts": 5}}));
    let mut quarantines = Vec::new();
    for retry in 0..4 {
        let req = request(&ns, conf.clone());
        let e = run(&net, &ns, &req).unwrap_err();
        assert_eq!(e.code, code::ADDRESS_IN_USE, "{e:?}");
        assert!(
            e.msg
                .contains("52:54:00:00:00:01 answered for every address this ADD probed"),
            "{}",
            e.msg
        );
        assert!(e.msg.contains("looks like proxy ARP"), "{}", e.msg);
        assert!(net.links(ns.path()).is_empty());
        let probes = net
            .calls()
            .iter()
            .filter(|c| c.contains("arp_probe"))
            .count();
        assert_eq!(probes, 2 * (retry + 1), "two rounds per ADD, not 5");
        quarantines = held(data.path());
    }
    // One quarantine per ADD (its first round, before a second address
    // showed the pattern), not `attempts`.
    assert_eq!(quarantines.len(), 4, "{quarantines:?}");
}

/// `probe.maxQuarantined` caps the quarantines of a network's store: past
/// it an address in use is skipped for this ADD only (given back), and the
/// error says so.
#[test]
fn quarantines_stop_at_the_limit_and_the_error_says_so() {
    let (net, ns, data) = setup();
    for (i, ip) in ["10.9.0.2", "10.9.0.3", "10.9.0.4"].iter().enumerate() {
        net.answer_arp(ip.parse().unwrap(), [0x52, 0x54, 0, 0, 0, 1 + i as u8]);
    }
    let req = request(
        &ns,
        probe_conf(
            data.path(),
            json!({"probe": {"attempts": 3, "maxQuarantined": 1}}),
        ),
    );
    let e = run(&net, &ns, &req).unwrap_err();
    assert_eq!(e.code, code::ADDRESS_IN_USE);
    assert!(
        e.msg
            .contains("; quarantined in the IPAM store: 10.9.0.2 ("),
        "{}",
        e.msg
    );
    assert!(
        e.msg.contains("; not quarantined: 10.9.0.4 (the network's store holds 1 quarantined addresses, its limit of 1 (probe.maxQuarantined)"),
        "{}",
        e.msg
    );
    assert_eq!(
        held(data.path()),
        ["10.9.0.2".parse::<IpAddr>().unwrap()],
        "one quarantine; .3 and .4 given back"
    );
    // A free address after the limit: the ADD still moves past the answered ones.
    let (net, ns, data) = setup();
    for ip in ["10.9.0.2", "10.9.0.3"] {
        net.answer_arp(ip.parse().unwrap(), ROGUE);
    }
    net.answer_arp("10.9.0.3".parse().unwrap(), [0x52, 0x54, 0, 0, 0, 9]);
    let req = request(
        &ns,
        probe_conf(data.path(), json!({"probe": {"maxQuarantined": 0}})),
    );
    let out = run(&net, &ns, &req).unwrap();
    assert_eq!(out.ips[0].address.to_string(), "10.9.0.4/24");
    assert_eq!(held(data.path()), ["10.9.0.4".parse::<IpAddr>().unwrap()]);
}

/// The node's own addresses: a macvlan never reaches its parent, so no
/// probe hears the node answer. They come from one address dump of the
/// parent's namespace, and count as a conflict (quarantined as
/// `conflict:node`).
#[test]
fn an_address_of_the_node_is_a_conflict_without_arp() {
    let (net, ns, data) = setup();
    let host = net.ns(HOST);
    let eth0 = host.link_by_name("eth0").unwrap().unwrap().index;
    host.add_address(eth0, "10.9.0.2/24".parse().unwrap(), AddrFlags::default())
        .unwrap();
    // Other node addresses (a service proxy's) cost nothing per address.
    let dummy = net.add_link(HOST, "kube-ipvs0", Some("dummy"));
    for i in 1..=50 {
        host.add_address(
            dummy,
            format!("10.96.0.{i}/32").parse().unwrap(),
            AddrFlags::default(),
        )
        .unwrap();
    }
    let req = request(&ns, probe_conf(data.path(), json!({})));
    let out = run(&net, &ns, &req).unwrap();
    assert_eq!(out.ips[0].address.to_string(), "10.9.0.3/24");
    assert_eq!(record(data.path(), "10.9.0.2"), "conflict:node");
    let calls = net.calls();
    let probes: Vec<&String> = calls.iter().filter(|c| c.contains("arp_probe")).collect();
    assert_eq!(probes.len(), 1, "no ARP for the node's address: {calls:?}");
    assert!(probes[0].contains(" 10.9.0.3 "), "{probes:?}");
    let dumps = calls
        .iter()
        .filter(|c| c.starts_with(&format!("{HOST}: all_addresses")))
        .count();
    assert_eq!(dumps, 1, "{calls:?}");
    // The link of a node address is looked up only for the one that hit.
    let lookups = calls
        .iter()
        .filter(|c| c.starts_with(&format!("{HOST}: link_by_index")))
        .count();
    assert_eq!(lookups, 1, "{calls:?}");
    // A static request for it: 102 naming the node.
    let (net, ns, data) = setup();
    let host = net.ns(HOST);
    let eth0 = host.link_by_name("eth0").unwrap().unwrap().index;
    host.add_address(eth0, "10.9.0.50/24".parse().unwrap(), AddrFlags::default())
        .unwrap();
    let req = request(
        &ns,
        probe_conf(
            data.path(),
            json!({"runtimeConfig": {"ips": ["10.9.0.50/24"]}}),
        ),
    );
    let e = run(&net, &ns, &req).unwrap_err();
    assert_eq!(e.code, code::ADDRESS_IN_USE);
    assert!(
        e.msg.starts_with(&format!(
            "10.9.0.50 is in use on the network: it is an address of this node (\"eth0\" in the {HOST})"
        )),
        "{}",
        e.msg
    );
    // Without probe: no dump at all.
    let (net, ns, data) = setup();
    run(&net, &ns, &request(&ns, netconf(data.path(), json!({})))).unwrap();
    assert!(!net.calls().iter().any(|c| c.contains("all_addresses")));
}

#[test]
fn probe_conflict_on_a_static_address_fails_without_quarantine() {
    let (net, ns, data) = setup();
    net.answer_arp("10.9.0.50".parse().unwrap(), ROGUE);
    let req = request(
        &ns,
        probe_conf(
            data.path(),
            json!({"runtimeConfig": {"ips": ["10.9.0.50/24"]}}),
        ),
    );
    let e = run(&net, &ns, &req).unwrap_err();
    assert_eq!(e.code, code::ADDRESS_IN_USE);
    assert!(
        e.msg.starts_with("10.9.0.50 is in use on the network: "),
        "{}",
        e.msg
    );
    assert!(e.msg.contains("static address"), "{}", e.msg);
    assert!(held(data.path()).is_empty(), "released, not quarantined");
    assert!(net.links(ns.path()).is_empty());
    let probes = net
        .calls()
        .iter()
        .filter(|c| c.contains("arp_probe"))
        .count();
    assert_eq!(probes, 1);
}

#[test]
fn probe_decisions() {
    let conf = IpamConfig::from_netconf(
        &json!({"name": "lan", "ipam": {"subnet": "10.9.0.0/24"},
                "runtimeConfig": {"ips": ["10.9.0.50/24"]}}),
        &Default::default(),
    )
    .unwrap();
    let fresh = IpamHeld::Fresh(Box::new(conf.clone()), vec![]);
    let at = |ip: &str, mac: [u8; 6]| Found {
        ip: ip.parse().unwrap(),
        evidence: Evidence::Arp(mac),
    };
    let dynamic = [at("10.9.0.2", ROGUE)];
    let fixed = [at("10.9.0.50", ROGUE)];
    let fail = |why| ProbeStep::Fail { why };
    assert_eq!(
        probe_step(&fresh, &dynamic, &dynamic, 1, 3),
        ProbeStep::Replace
    );
    assert_eq!(
        probe_step(&fresh, &dynamic, &dynamic, 3, 3),
        fail(FailWhy::Exhausted)
    );
    assert_eq!(
        probe_step(&fresh, &fixed, &fixed, 1, 3),
        fail(FailWhy::Static)
    );
    let both = [dynamic[0].clone(), fixed[0].clone()];
    assert_eq!(
        probe_step(&fresh, &both, &both, 1, 3),
        fail(FailWhy::Static)
    );
    let delegated = IpamHeld::Delegate("host-local".into());
    assert_eq!(
        probe_step(&delegated, &dynamic, &dynamic, 1, 3),
        fail(FailWhy::Delegated)
    );
    assert_eq!(
        probe_step(&IpamHeld::Nothing, &dynamic, &dynamic, 1, 3),
        fail(FailWhy::Delegated)
    );
    // Two addresses, one MAC: proxy ARP; two MACs: keep going.
    let other = [at("10.9.0.3", ROGUE)];
    let history = [dynamic[0].clone(), other[0].clone()];
    assert_eq!(
        probe_step(&fresh, &other, &history, 2, 3),
        fail(FailWhy::ProxyArp(ROGUE))
    );
    let two_hosts = [dynamic[0].clone(), at("10.9.0.3", [2, 0, 0, 0, 0, 7])];
    assert_eq!(
        probe_step(&fresh, &two_hosts[1..], &two_hosts, 2, 3),
        ProbeStep::Replace
    );
    // The node's own address is no MAC's answer.
    let node = Found {
        ip: "10.9.0.3".parse().unwrap(),
        evidence: Evidence::Node("eth0".into()),
    };
    let mixed = [dynamic[0].clone(), node.clone()];
    assert_eq!(
        probe_step(&fresh, &[node], &mixed, 2, 3),
        ProbeStep::Replace
    );
}

// ---------------------------------------------------------------- IPv6 DAD

#[test]
fn dad_failure_is_reported_like_a_probe_conflict_and_quarantined() {
    let (net, ns, data) = setup();
    let mut conf = netconf(data.path(), json!({"ipv6Dad": "wait"}));
    conf["ipam"] = json!({"type": "mactrunk-ipam", "dataDir": data.path(),
        "ranges": [[{"subnet": "10.9.0.0/24"}], [{"subnet": "fd00::/120"}]]});
    let req = request(&ns, conf);
    net.fail(
        ns.path(),
        "wait_dad",
        LinkError::DadFailed {
            addr: "fd00::2/120".parse().unwrap(),
            link: format!("eth0 (index 12) in container netns {}", ns.path()),
        },
    );
    let e = run(&net, &ns, &req).unwrap_err();
    assert_eq!(e.code, code::ADDRESS_IN_USE, "{e:?}");
    assert!(
        e.msg.starts_with(
            "fd00::2 is in use on the network: IPv6 duplicate address detection on eth0"
        ),
        "{}",
        e.msg
    );
    assert!(
        e.msg
            .contains("quarantined in the IPAM store as conflict:ipv6-dad"),
        "{}",
        e.msg
    );
    assert_eq!(record(data.path(), "fd00::2"), "conflict:ipv6-dad");
    assert_eq!(
        held(data.path()),
        ["fd00::2".parse::<IpAddr>().unwrap()],
        "v4 given back"
    );
    assert!(net.links(ns.path()).is_empty());
    // The retry gets another address.
    run(&net, &ns, &req).unwrap();
    assert!(record(data.path(), "fd00::3").starts_with("c1"));
}
