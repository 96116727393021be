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

const HOST: &str = "host network namespace";

fn request(netns: &NetNs, conf: Value) -> Request {
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

fn netconf(data: &Path, extra: Value) -> Value {
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
fn setup() -> (FakeNet, NetNs, tempfile::TempDir) {
    let net = FakeNet::new();
    net.add_link(HOST, "eth0", None);
    (net, NetNs::current().unwrap(), tempfile::tempdir().unwrap())
}

fn run(net: &FakeNet, ns: &NetNs, req: &Request) -> Result<CniOutput, CniError> {
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

fn held(data: &Path) -> Vec<IpAddr> {
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
