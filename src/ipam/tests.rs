use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::cni::env::CniArgs;
use crate::ipam::store::{MemStore, Owner, Store};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn owner(cid: &str) -> Owner {
    Owner::new(cid, "eth0")
}

fn netconf(ipam: Value) -> Value {
    json!({"cniVersion": "1.1.0", "name": "net", "type": "mactrunk", "ipam": ipam})
}

fn parse(conf: &Value) -> Result<IpamConfig, CniError> {
    IpamConfig::from_netconf(conf, &CniArgs::default())
}

fn cfg(ipam: Value) -> IpamConfig {
    parse(&netconf(ipam)).unwrap()
}

fn v4_24() -> Value {
    json!({"type": "mactrunk-ipam", "subnet": "10.0.0.0/24"})
}

// ---------------------------------------------------------------- config

#[test]
fn config_errors_name_the_key() {
    let r = |s: &str| json!({"subnet": s});
    // (config, CNI_ARGS IP, expected message prefix)
    let cases: Vec<(Value, Vec<&str>, &str)> = vec![
        (json!({"ipam": v4_24()}), vec![], "name: missing"),
        (
            json!({"name": 5, "ipam": v4_24()}),
            vec![],
            "name: expected a string",
        ),
        (
            json!({"name": "a/b", "ipam": v4_24()}),
            vec![],
            "name: invalid network name",
        ),
        (
            json!({"name": "..", "ipam": v4_24()}),
            vec![],
            "name: invalid network name",
        ),
        (json!({"name": "n"}), vec![], "ipam: missing"),
        (
            json!({"name": "n", "ipam": []}),
            vec![],
            "ipam: expected an object",
        ),
        (json!([1]), vec![], "config: expected a JSON object"),
        (
            netconf(json!({})),
            vec![],
            "ipam.ranges: at least one range set",
        ),
        (
            netconf(json!({"ranges": []})),
            vec![],
            "ipam.ranges: at least one range set",
        ),
        (
            netconf(json!({"ranges": {}})),
            vec![],
            "ipam.ranges: expected an array",
        ),
        (
            netconf(json!({"ranges": [[]]})),
            vec![],
            "ipam.ranges[0]: empty range set",
        ),
        (
            netconf(json!({"ranges": [{}]})),
            vec![],
            "ipam.ranges[0]: expected an array of ranges",
        ),
        (
            netconf(json!({"ranges": [["x"]]})),
            vec![],
            "ipam.ranges[0][0]: expected an object",
        ),
        (
            netconf(json!({"ranges": [[{}]]})),
            vec![],
            "ipam.ranges[0][0].subnet: missing",
        ),
        (
            netconf(json!({"ranges": [[{"subnet": 24}]]})),
            vec![],
            "ipam.ranges[0][0].subnet: expected a string",
        ),
        (
            netconf(json!({"ranges": [[r("10.0.0.0/33")]]})),
            vec![],
            "ipam.ranges[0][0].subnet: invalid CIDR",
        ),
        (
            netconf(json!({"ranges": [[r("10.0.0.0")]]})),
            vec![],
            "ipam.ranges[0][0].subnet: \"10.0.0.0\" is not in CIDR",
        ),
        (
            netconf(json!({"ranges": [[r("10.0.0.5/24")]]})),
            vec![],
            "ipam.ranges[0][0].subnet: 10.0.0.5/24 has host bits set",
        ),
        (
            netconf(
                json!({"ranges": [[{"subnet": "10.0.0.0/24", "rangeEnd": "10.0.0.100"},
                                       {"subnet": "10.0.0.0/24", "rangeStart": "10.0.1.5"}]]}),
            ),
            vec![],
            "ipam.ranges[0][1].rangeStart: 10.0.1.5 is not in subnet 10.0.0.0/24",
        ),
        (
            netconf(json!({"ranges": [[{"subnet": "10.0.0.0/24", "rangeStart": "nope"}]]})),
            vec![],
            "ipam.ranges[0][0].rangeStart: invalid IP address",
        ),
        (
            netconf(json!({"ranges": [[{"subnet": "10.0.0.0/24", "rangeStart": 7}]]})),
            vec![],
            "ipam.ranges[0][0].rangeStart: expected a string",
        ),
        (
            netconf(
                json!({"ranges": [[{"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.9", "rangeEnd": "10.0.0.5"}]]}),
            ),
            vec![],
            "ipam.ranges[0][0].rangeStart: 10.0.0.9 is after rangeEnd 10.0.0.5",
        ),
        (
            netconf(json!({"ranges": [[{"subnet": "10.0.0.0/24", "rangeEnd": "10.0.0.255"}]]})),
            vec![],
            "ipam.ranges[0][0].rangeEnd: 10.0.0.255 is the broadcast address",
        ),
        (
            netconf(json!({"ranges": [[{"subnet": "10.0.0.0/24", "gateway": "10.0.1.1"}]]})),
            vec![],
            "ipam.ranges[0][0].gateway: 10.0.1.1 is not in subnet 10.0.0.0/24",
        ),
        (
            netconf(json!({"ranges": [[r("10.0.0.0/24"), r("fd00::/64")]]})),
            vec![],
            "ipam.ranges[0][1].subnet: fd00::/64 mixes address families",
        ),
        (
            netconf(json!({"ranges": [[r("10.0.0.0/24"), r("10.0.0.128/25")]]})),
            vec![],
            "ipam.ranges[0][1]: overlaps ipam.ranges[0][0]",
        ),
        (
            netconf(json!({"ranges": [[r("10.0.0.0/24")], [r("10.0.0.0/16")]]})),
            vec![],
            "ipam.ranges[1]: overlaps range set ipam.ranges[0]",
        ),
        (
            netconf(json!({"subnet": "10.0.0.0/24", "ranges": [[r("10.0.0.0/24")]]})),
            vec![],
            "ipam.ranges[0]: overlaps range set ipam.subnet",
        ),
        (
            netconf(json!({"rangeStart": "10.0.0.5"})),
            vec![],
            "ipam.rangeStart: needs ipam.subnet",
        ),
        (
            netconf(json!({"gateway": "10.0.0.1"})),
            vec![],
            "ipam.gateway: needs ipam.subnet",
        ),
        (
            netconf(json!({"subnet": "10.0.0.1/24"})),
            vec![],
            "ipam.subnet: 10.0.0.1/24 has host bits set",
        ),
        (
            netconf(json!({"subnet": "10.0.0.0/24", "gateway": "10.0.0.0"})),
            vec![],
            "ipam.gateway: 10.0.0.0 is the network address",
        ),
        (
            netconf(json!({"subnet": "10.0.0.0/24", "exclude": "10.0.0.5"})),
            vec![],
            "ipam.exclude: expected an array",
        ),
        (
            netconf(json!({"subnet": "10.0.0.0/24", "exclude": ["10.0.0.5", "bad"]})),
            vec![],
            "ipam.exclude[1]: invalid IP address",
        ),
        (
            netconf(json!({"subnet": "10.0.0.0/24", "exclude": ["10.0.0.5/29"]})),
            vec![],
            "ipam.exclude[0]: 10.0.0.5/29 has host bits set",
        ),
        (
            netconf(json!({"subnet": "10.0.0.0/24", "exclude": [5]})),
            vec![],
            "ipam.exclude[0]: expected a string",
        ),
        (
            netconf(json!({"subnet": "10.0.0.0/24", "routes": {}})),
            vec![],
            "ipam.routes: expected an array",
        ),
        (
            netconf(json!({"subnet": "10.0.0.0/24", "routes": [{"gw": "10.0.0.1"}]})),
            vec![],
            "ipam.routes[0]: missing field `dst`",
        ),
        (
            netconf(
                json!({"subnet": "10.0.0.0/24", "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0", "gw": "10.0.0.1"}]}),
            ),
            vec![],
            "ipam.routes[1].gw: 10.0.0.1 is not of the same family",
        ),
        (
            netconf(json!({"subnet": "10.0.0.0/24", "routes": [{"dst": "10.1.0.1/16"}]})),
            vec![],
            "ipam.routes[0].dst: 10.1.0.1/16 has host bits set",
        ),
        (
            netconf(json!({"subnet": "10.0.0.0/24", "dns": []})),
            vec![],
            "ipam.dns:",
        ),
        (
            netconf(json!({"subnet": "10.0.0.0/24", "dns": {"nameservers": "x"}})),
            vec![],
            "ipam.dns:",
        ),
        (
            netconf(json!({"subnet": "10.0.0.0/24", "resolvConf": 1})),
            vec![],
            "ipam.resolvConf: expected a string",
        ),
        (
            netconf(json!({"subnet": "10.0.0.0/24", "lockTimeout": -1})),
            vec![],
            "ipam.lockTimeout: -1 is not",
        ),
        (
            netconf(json!({"subnet": "10.0.0.0/24", "lockTimeout": "5"})),
            vec![],
            "ipam.lockTimeout:",
        ),
        (
            netconf(json!({"subnet": "10.0.0.0/24", "lockTimeout": 1.5})),
            vec![],
            "ipam.lockTimeout:",
        ),
        (
            netconf(json!({"subnet": "10.0.0.0/24", "dataDir": "rel/dir"})),
            vec![],
            "ipam.dataDir: \"rel/dir\" is not an absolute path",
        ),
        (
            netconf(json!({"subnet": "10.0.0.0/24", "dataDir": 1})),
            vec![],
            "ipam.dataDir: expected a string",
        ),
        (
            json!({"name": "n", "ipam": v4_24(), "runtimeConfig": {"ipRanges": [[{"subnet": "10.1.0.0/33"}]]}}),
            vec![],
            "runtimeConfig.ipRanges[0][0].subnet: invalid CIDR",
        ),
        (
            json!({"name": "n", "ipam": v4_24(), "runtimeConfig": {"ipRanges": [[{"subnet": "10.0.0.0/25"}]]}}),
            vec![],
            "ipam.subnet: overlaps range set runtimeConfig.ipRanges[0]",
        ),
        (
            json!({"name": "n", "ipam": v4_24(), "runtimeConfig": 1}),
            vec![],
            "runtimeConfig: expected an object",
        ),
        (
            json!({"name": "n", "ipam": v4_24(), "runtimeConfig": {"ips": "10.0.0.5"}}),
            vec![],
            "runtimeConfig.ips: expected an array",
        ),
        (
            json!({"name": "n", "ipam": v4_24(), "runtimeConfig": {"ips": [5]}}),
            vec![],
            "runtimeConfig.ips[0]: expected a string",
        ),
        (
            json!({"name": "n", "ipam": v4_24(), "runtimeConfig": {"ips": ["10.0.0.300"]}}),
            vec![],
            "runtimeConfig.ips[0]: invalid IP address",
        ),
        (
            json!({"name": "n", "ipam": v4_24(), "runtimeConfig": {"ips": ["10.0.0.3/40"]}}),
            vec![],
            "runtimeConfig.ips[0]: invalid prefix length",
        ),
        (
            json!({"name": "n", "ipam": v4_24(), "runtimeConfig": {"ips": ["10.9.0.5"]}}),
            vec![],
            "runtimeConfig.ips[0]: 10.9.0.5 is not in the subnet of any range set",
        ),
        (
            json!({"name": "n", "ipam": v4_24(), "runtimeConfig": {"ips": ["10.0.0.5/16"]}}),
            vec![],
            "runtimeConfig.ips[0]: 10.0.0.5/16: prefix /16 does not match subnet 10.0.0.0/24",
        ),
        (
            json!({"name": "n", "ipam": v4_24(), "runtimeConfig": {"ips": ["10.0.0.1"]}}),
            vec![],
            "runtimeConfig.ips[0]: 10.0.0.1 is the gateway",
        ),
        (
            json!({"name": "n", "ipam": v4_24(), "runtimeConfig": {"ips": ["10.0.0.0"]}}),
            vec![],
            "runtimeConfig.ips[0]: 10.0.0.0 is the network address",
        ),
        (
            json!({"name": "n", "ipam": v4_24(), "runtimeConfig": {"ips": ["10.0.0.255"]}}),
            vec![],
            "runtimeConfig.ips[0]: 10.0.0.255 is the broadcast address",
        ),
        (
            json!({"name": "n", "ipam": {"subnet": "10.0.0.0/24", "exclude": ["10.0.0.0/28"]},
                   "runtimeConfig": {"ips": ["10.0.0.9"]}}),
            vec![],
            "runtimeConfig.ips[0]: 10.0.0.9 is excluded (ipam.exclude 10.0.0.0/28)",
        ),
        (
            json!({"name": "n", "ipam": v4_24(), "runtimeConfig": {"ips": ["10.0.0.5", "10.0.0.6"]}}),
            vec![],
            "runtimeConfig.ips[1]: 10.0.0.6 and 10.0.0.5 are both in range set ipam.subnet",
        ),
        (
            json!({"name": "n", "ipam": v4_24(), "args": {"cni": {"ips": "x"}}}),
            vec![],
            "args.cni.ips: expected an array",
        ),
        (
            json!({"name": "n", "ipam": v4_24(), "args": {"cni": {"ips": ["10.2.0.1"]}}}),
            vec![],
            "args.cni.ips[0]: 10.2.0.1 is not in the subnet",
        ),
        (
            netconf(v4_24()),
            vec!["bogus"],
            "CNI_ARGS IP: invalid IP address",
        ),
    ];
    for (conf, cni_ip, want) in cases {
        let args = CniArgs {
            ip: cni_ip.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        let err = IpamConfig::from_netconf(&conf, &args).unwrap_err();
        assert_eq!(err.code, code::INVALID_CONFIG, "{conf}: {}", err.msg);
        assert!(
            err.msg.starts_with(want),
            "{conf}\n  want: {want}\n   got: {}",
            err.msg
        );
    }
}

#[test]
fn config_defaults_and_every_key() {
    let dir = "/tmp/does-not-matter";
    let resolv = "/etc/resolv-test.conf";
    let c = parse(&json!({
        "name": "mynet",
        "ipam": {
            "type": "mactrunk-ipam",
            "dataDir": dir,
            "lockTimeout": 250,
            "ranges": [
                [{"subnet": "10.1.0.0/24", "rangeStart": "10.1.0.10", "rangeEnd": "10.1.0.20", "gateway": "10.1.0.254"},
                 {"subnet": "10.1.1.0/24"}],
                [{"subnet": "fd00:1::/64"}]
            ],
            "exclude": ["10.1.0.12", "10.1.1.0/28", "fd00:1::5"],
            "routes": [{"dst": "0.0.0.0/0"}, {"dst": "192.168.0.0/16", "gw": "10.1.0.254", "mtu": 1400, "priority": 5}],
            "dns": {"nameservers": ["10.1.0.53"], "search": ["x.example"]},
            "resolvConf": resolv,
            "unknownKey": {"ignored": true}
        },
        "unknownTop": 1
    }))
    .unwrap();
    assert_eq!(c.network, "mynet");
    assert_eq!(c.data_dir, Path::new(dir));
    assert_eq!(c.lock_timeout, Duration::from_millis(250));
    assert_eq!(c.location().dir, Path::new(dir).join("mynet"));
    assert_eq!(c.range_sets.len(), 2);
    assert_eq!(c.range_sets[0].key, "ipam.ranges[0]");
    let r0 = &c.range_sets[0].ranges[0];
    assert_eq!(
        (r0.range_start, r0.range_end, r0.gateway),
        (ip("10.1.0.10"), ip("10.1.0.20"), Some(ip("10.1.0.254")))
    );
    let r1 = &c.range_sets[0].ranges[1];
    assert_eq!(
        (r1.range_start, r1.range_end, r1.gateway),
        (ip("10.1.1.1"), ip("10.1.1.254"), Some(ip("10.1.1.1")))
    );
    assert_eq!(c.exclude.len(), 3);
    assert!(c.exclusions.contains(ip("10.1.1.15")));
    assert!(!c.exclusions.contains(ip("10.1.1.16")));
    assert_eq!(c.routes.len(), 2);
    assert_eq!(c.routes[1].mtu, Some(1400));
    assert_eq!(c.dns.nameservers, ["10.1.0.53"]);
    assert_eq!(c.resolv_conf.as_deref(), Some(Path::new(resolv)));
    assert!(c.static_ips.is_empty());

    let d = cfg(v4_24());
    assert_eq!(d.data_dir, Path::new("/var/lib/cni/networks"));
    assert_eq!(d.lock_timeout, Duration::from_secs(10));
    assert!(d.routes.is_empty() && d.dns.is_empty() && d.resolv_conf.is_none());
}

#[test]
fn range_set_order_runtime_legacy_ranges() {
    let c = parse(&json!({
        "name": "n",
        "ipam": {"subnet": "10.0.0.0/24", "ranges": [[{"subnet": "10.0.1.0/24"}]]},
        "runtimeConfig": {"ipRanges": [[{"subnet": "10.0.2.0/24"}]]}
    }))
    .unwrap();
    let keys: Vec<&str> = c.range_sets.iter().map(|s| s.key.as_str()).collect();
    assert_eq!(
        keys,
        ["runtimeConfig.ipRanges[0]", "ipam.subnet", "ipam.ranges[0]"]
    );
    let subnets: Vec<String> = c
        .range_sets
        .iter()
        .map(|s| s.ranges[0].subnet.to_string())
        .collect();
    assert_eq!(subnets, ["10.0.2.0/24", "10.0.0.0/24", "10.0.1.0/24"]);
    // ipRanges alone is enough.
    let c = parse(&json!({"name": "n", "ipam": {}, "runtimeConfig": {"ipRanges": [[{"subnet": "10.0.2.0/24"}]]}})).unwrap();
    assert_eq!(c.range_sets.len(), 1);
}

#[test]
fn canonical_ranges_through_config() {
    // (subnet, start, end, gateway)
    let cases: &[(&str, &str, &str, Option<&str>)] = &[
        ("10.0.0.0/24", "10.0.0.1", "10.0.0.254", Some("10.0.0.1")),
        ("10.0.0.0/31", "10.0.0.0", "10.0.0.1", None),
        ("10.0.0.9/32", "10.0.0.9", "10.0.0.9", None),
        (
            "fd00::/64",
            "fd00::1",
            "fd00::ffff:ffff:ffff:ffff",
            Some("fd00::1"),
        ),
        ("fd00::/127", "fd00::", "fd00::1", None),
        ("fd00::7/128", "fd00::7", "fd00::7", None),
    ];
    for (s, start, end, gw) in cases {
        let c = cfg(json!({"ranges": [[{"subnet": s}]]}));
        let r = &c.range_sets[0].ranges[0];
        assert_eq!(
            (r.range_start, r.range_end, r.gateway),
            (ip(start), ip(end), gw.map(ip)),
            "{s}"
        );
    }
    let ds = cfg(json!({"ranges": [[{"subnet": "10.0.0.0/24"}], [{"subnet": "fd00::/64"}]]}));
    assert!(ds.range_sets[0].is_ipv4() && !ds.range_sets[1].is_ipv4());
}

#[test]
fn static_ip_sources_and_priority() {
    let ipam = json!({"ranges": [[{"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.100"}], [{"subnet": "fd00::/64"}]]});
    let args = CniArgs {
        ip: vec!["10.0.0.7".into(), "fd00::7/64".into()],
        ..Default::default()
    };
    let only_env = IpamConfig::from_netconf(&netconf(ipam.clone()), &args).unwrap();
    let got: Vec<(usize, IpAddr, &str)> = only_env
        .static_ips
        .iter()
        .map(|s| (s.set, s.ip, s.key.as_str()))
        .collect();
    // 10.0.0.7 is below rangeStart but in the subnet: allowed.
    assert_eq!(
        got,
        [
            (0, ip("10.0.0.7"), "CNI_ARGS IP"),
            (1, ip("fd00::7"), "CNI_ARGS IP")
        ]
    );

    let mut with_args = netconf(ipam.clone());
    with_args["args"] = json!({"cni": {"ips": ["10.0.0.8/24"]}});
    let c = IpamConfig::from_netconf(&with_args, &args).unwrap();
    assert_eq!(c.static_ips.len(), 1, "args.cni.ips replaces CNI_ARGS");
    assert_eq!(
        (c.static_ips[0].ip, c.static_ips[0].key.as_str()),
        (ip("10.0.0.8"), "args.cni.ips[0]")
    );

    let mut with_rt = with_args.clone();
    with_rt["runtimeConfig"] = json!({"ips": ["fd00::9"]});
    let c = IpamConfig::from_netconf(&with_rt, &args).unwrap();
    assert_eq!(c.static_ips.len(), 1, "runtimeConfig.ips replaces both");
    assert_eq!(
        (c.static_ips[0].set, c.static_ips[0].ip),
        (1, ip("fd00::9"))
    );

    // Empty lists do not count as a source.
    with_rt["runtimeConfig"] = json!({"ips": []});
    let c = IpamConfig::from_netconf(&with_rt, &args).unwrap();
    assert_eq!(c.static_ips[0].key, "args.cni.ips[0]");
}

#[test]
fn store_location_needs_only_name_and_data_dir() {
    let conf =
        json!({"name": "n", "ipam": {"dataDir": "/x", "lockTimeout": 5, "ranges": "garbage"}});
    let loc = StoreLocation::from_netconf(&conf).unwrap();
    assert_eq!(loc.dir, Path::new("/x/n"));
    assert_eq!(loc.lock_timeout, Duration::from_millis(5));
    let loc = StoreLocation::from_netconf(&json!({"name": "n"})).unwrap();
    assert_eq!(loc.dir, Path::new("/var/lib/cni/networks/n"));
    for (bad, key) in [
        (json!({"name": "../etc"}), "name:"),
        (json!({"ipam": {}}), "name:"),
        (
            json!({"name": "n", "ipam": {"dataDir": "x"}}),
            "ipam.dataDir:",
        ),
        (json!({"name": "n", "ipam": 3}), "ipam:"),
    ] {
        let e = StoreLocation::from_netconf(&bad).unwrap_err();
        assert_eq!(e.code, 7);
        assert!(e.msg.starts_with(key), "{}", e.msg);
    }
}

// ---------------------------------------------------------------- allocator (MemStore)

fn alloc(store: &mut MemStore, c: &IpamConfig, cid: &str) -> Result<Vec<IpAddr>, CniError> {
    allocate(store, c, &owner(cid), None).map(|v| v.into_iter().map(|a| a.ip).collect())
}

fn one(store: &mut MemStore, c: &IpamConfig, cid: &str) -> String {
    alloc(store, c, cid).unwrap()[0].to_string()
}

#[test]
fn round_robin_does_not_reuse_released_at_once() {
    let c = cfg(v4_24());
    let mut s = MemStore::new();
    assert_eq!(one(&mut s, &c, "a"), "10.0.0.2"); // .1 is the gateway
    assert_eq!(one(&mut s, &c, "b"), "10.0.0.3");
    s.release(&owner("a")).unwrap();
    assert_eq!(one(&mut s, &c, "c"), "10.0.0.4");
    assert_eq!(s.last.get(&0), Some(&ip("10.0.0.4")));
}

#[test]
fn wraps_skipping_taken_gateway_and_exclusions() {
    // .1-.6; gateway .4 (explicit, inside the range), .5 excluded.
    let c = cfg(json!({"subnet": "10.0.0.0/29", "gateway": "10.0.0.4", "exclude": ["10.0.0.5"]}));
    let mut s = MemStore::new();
    let got: Vec<String> = ["a", "b", "c", "d"]
        .iter()
        .map(|id| one(&mut s, &c, id))
        .collect();
    assert_eq!(got, ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.6"]);
    let e = alloc(&mut s, &c, "e").unwrap_err();
    assert_eq!(e.code, code::POOL_EXHAUSTED);
    assert!(
        e.msg.contains("ipam.subnet") && e.msg.contains("10.0.0.1-10.0.0.6 in 10.0.0.0/29"),
        "{}",
        e.msg
    );
    // Recovery after release, wrapping around from last = .6.
    s.release(&owner("b")).unwrap();
    assert_eq!(one(&mut s, &c, "e"), "10.0.0.2");
}

#[test]
fn tiny_subnets() {
    let c = cfg(json!({"subnet": "10.0.0.0/31"}));
    let mut s = MemStore::new();
    assert_eq!(one(&mut s, &c, "a"), "10.0.0.0");
    assert_eq!(one(&mut s, &c, "b"), "10.0.0.1");
    assert_eq!(
        alloc(&mut s, &c, "c").unwrap_err().code,
        code::POOL_EXHAUSTED
    );
    let c = cfg(json!({"subnet": "fd00::8/128"}));
    let a = allocate(&mut MemStore::new(), &c, &owner("a"), None).unwrap();
    assert_eq!(
        (a[0].ip, a[0].prefix, a[0].gateway),
        (ip("fd00::8"), 128, None)
    );
}

#[test]
fn dual_stack_one_address_per_set() {
    let c = cfg(json!({"ranges": [[{"subnet": "10.0.0.0/24"}], [{"subnet": "fd00::/64"}]]}));
    let mut s = MemStore::new();
    let a = allocate(&mut s, &c, &owner("a"), None).unwrap();
    assert_eq!(a.len(), 2);
    assert_eq!(
        (a[0].ip, a[0].prefix, a[0].gateway),
        (ip("10.0.0.2"), 24, Some(ip("10.0.0.1")))
    );
    assert_eq!(
        (a[1].ip, a[1].prefix, a[1].gateway),
        (ip("fd00::2"), 64, Some(ip("fd00::1")))
    );
    assert_eq!(s.last.get(&1), Some(&ip("fd00::2")));
}

#[test]
fn multi_range_set_moves_to_next_range() {
    let c = cfg(json!({"ranges": [[
        {"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.10", "rangeEnd": "10.0.0.11"},
        {"subnet": "10.0.1.0/24", "rangeStart": "10.0.1.10", "rangeEnd": "10.0.1.10"}
    ]]}));
    let mut s = MemStore::new();
    let got: Vec<String> = ["a", "b", "c"]
        .iter()
        .map(|id| one(&mut s, &c, id))
        .collect();
    assert_eq!(got, ["10.0.0.10", "10.0.0.11", "10.0.1.10"]);
    let a = allocate(&mut MemStore::new(), &c, &owner("x"), None).unwrap();
    assert_eq!(a[0].gateway, Some(ip("10.0.0.1")));
    s.release(&owner("a")).unwrap();
    assert_eq!(one(&mut s, &c, "d"), "10.0.0.10");
}

fn with_static(ipam: Value, ips: &[&str]) -> IpamConfig {
    let mut conf = netconf(ipam);
    conf["runtimeConfig"] = json!({"ips": ips});
    parse(&conf).unwrap()
}

#[test]
fn static_anywhere_in_subnet_and_conflicts() {
    let ipam =
        json!({"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.100", "rangeEnd": "10.0.0.110"});
    let c = with_static(ipam.clone(), &["10.0.0.7/24"]);
    let mut s = MemStore::new();
    let a = allocate(&mut s, &c, &owner("a"), None).unwrap();
    assert_eq!(
        (a[0].ip, a[0].prefix, a[0].gateway),
        (ip("10.0.0.7"), 24, Some(ip("10.0.0.1")))
    );
    assert!(
        s.last.is_empty(),
        "static requests leave the round-robin hint alone"
    );
    // Someone else asking for it: 102 naming IP and holder.
    let e = allocate(&mut s, &c, &owner("b"), None).unwrap_err();
    assert_eq!(e.code, code::ADDRESS_IN_USE);
    assert!(
        e.msg.contains("10.0.0.7") && e.msg.contains("container a interface eth0"),
        "{}",
        e.msg
    );
    assert!(e.msg.starts_with("runtimeConfig.ips[0]"), "{}", e.msg);
    // Dynamic allocations never hand out a statically held address.
    let dynamic = cfg(ipam);
    assert_eq!(one(&mut s, &dynamic, "c"), "10.0.0.100");
    // The owner asking again for the same: idempotent. A different one: code 7.
    assert_eq!(alloc(&mut s, &c, "a").unwrap(), [ip("10.0.0.7")]);
    let other = with_static(json!({"subnet": "10.0.0.0/24"}), &["10.0.0.8"]);
    let e = alloc(&mut s, &other, "a").unwrap_err();
    assert_eq!(e.code, code::INVALID_CONFIG);
    assert!(
        e.msg
            .starts_with("runtimeConfig.ips[0]: 10.0.0.8 is requested")
            && e.msg.contains("holds 10.0.0.7"),
        "{}",
        e.msg
    );
    // A static request for an address held by a legacy record of another container.
    s.ips.insert(ip("10.0.0.9"), Owner::new("old", ""));
    let e = alloc(
        &mut s,
        &with_static(json!({"subnet": "10.0.0.0/24"}), &["10.0.0.9"]),
        "z",
    )
    .unwrap_err();
    assert_eq!(e.code, code::ADDRESS_IN_USE);
    assert!(e.msg.contains("container old (legacy record"), "{}", e.msg);
}

#[test]
fn static_and_dynamic_mixed_across_sets() {
    let ipam = json!({"ranges": [[{"subnet": "10.0.0.0/24"}], [{"subnet": "fd00::/64"}]]});
    let c = with_static(ipam, &["fd00::abcd"]);
    let mut s = MemStore::new();
    assert_eq!(
        alloc(&mut s, &c, "a").unwrap(),
        [ip("10.0.0.2"), ip("fd00::abcd")]
    );
}

#[test]
fn idempotent_add_returns_same_without_allocating() {
    let c = cfg(json!({"ranges": [[{"subnet": "10.0.0.0/24"}], [{"subnet": "fd00::/64"}]]}));
    let mut s = MemStore::new();
    let first = alloc(&mut s, &c, "a").unwrap();
    let before = s.clone();
    let calls = s.holder_calls;
    assert_eq!(alloc(&mut s, &c, "a").unwrap(), first);
    assert_eq!(s.ips, before.ips);
    assert_eq!(s.last, before.last);
    assert_eq!(s.holder_calls, calls, "no candidate probed");
    // A second interface of the same container is a different owner.
    let b = allocate(&mut s, &c, &Owner::new("a", "net1"), None).unwrap();
    assert_ne!(b[0].ip, first[0]);
}

#[test]
fn partial_allocation_is_completed_and_stale_dropped() {
    let c = cfg(json!({"ranges": [[{"subnet": "10.0.0.0/24"}], [{"subnet": "fd00::/64"}]]}));
    let mut s = MemStore::new();
    // Crash after set 0: the owner holds only 10.0.0.50, plus an address no set covers any more.
    s.ips.insert(ip("10.0.0.50"), owner("a"));
    s.ips.insert(ip("192.168.9.9"), owner("a"));
    // If the fill fails, the owner keeps what it had.
    s.fail_reserve = vec![ip("fd00::2")];
    assert_eq!(alloc(&mut s, &c, "a").unwrap_err().code, code::IO);
    assert_eq!(s.ips.len(), 2);
    s.fail_reserve.clear();
    assert_eq!(
        alloc(&mut s, &c, "a").unwrap(),
        [ip("10.0.0.50"), ip("fd00::2")]
    );
    assert!(!s.ips.contains_key(&ip("192.168.9.9")));
}

#[test]
fn legacy_record_counts_as_held() {
    let c = cfg(v4_24());
    let mut s = MemStore::new();
    s.ips.insert(ip("10.0.0.77"), Owner::new("a", ""));
    assert_eq!(alloc(&mut s, &c, "a").unwrap(), [ip("10.0.0.77")]);
    assert_eq!(s.release(&owner("a")).unwrap(), [ip("10.0.0.77")]);
}

#[test]
fn rollback_across_sets() {
    // Set 1 is a /32 already taken: set 0's fresh reservation must be undone.
    let c = cfg(json!({"ranges": [[{"subnet": "10.0.0.0/24"}], [{"subnet": "10.9.0.1/32"}]]}));
    let mut s = MemStore::new();
    s.ips.insert(ip("10.9.0.1"), owner("z"));
    let before = s.ips.clone();
    let e = alloc(&mut s, &c, "a").unwrap_err();
    assert_eq!(e.code, code::POOL_EXHAUSTED);
    assert!(e.msg.contains("ipam.ranges[1]"), "{}", e.msg);
    assert_eq!(s.ips, before);
    // An I/O failure in set 1 rolls back too, and the error is passed on.
    let c = cfg(json!({"ranges": [[{"subnet": "10.0.0.0/24"}], [{"subnet": "fd00::/64"}]]}));
    let mut s = MemStore {
        fail_reserve: vec![ip("fd00::2")],
        ..Default::default()
    };
    let e = alloc(&mut s, &c, "a").unwrap_err();
    assert_eq!(e.code, code::IO);
    assert!(s.ips.is_empty());
    // A static conflict in set 1 rolls back set 0.
    let c = with_static(
        json!({"ranges": [[{"subnet": "10.0.0.0/24"}], [{"subnet": "fd00::/64"}]]}),
        &["fd00::9"],
    );
    let mut s = MemStore::new();
    s.ips.insert(ip("fd00::9"), owner("z"));
    assert_eq!(
        alloc(&mut s, &c, "a").unwrap_err().code,
        code::ADDRESS_IN_USE
    );
    assert_eq!(s.ips.len(), 1);
}

#[test]
fn sequential_adds_probe_one_candidate_each() {
    let c = cfg(json!({"subnet": "10.0.0.0/16"}));
    let mut s = MemStore::new();
    for i in 0..1000 {
        alloc(&mut s, &c, &format!("c{i}")).unwrap();
    }
    assert_eq!(s.ips.len(), 1000);
    assert_eq!(
        s.holder_calls, 1000,
        "one probe per ADD when the pool is mostly free"
    );
}

#[test]
fn gc_and_check_on_memstore() {
    let c = cfg(v4_24());
    let mut s = MemStore::new();
    for id in ["a", "b", "c"] {
        alloc(&mut s, &c, id).unwrap();
    }
    s.ips.insert(ip("10.0.0.100"), Owner::new("b", "")); // legacy of a valid container
    s.ips.insert(ip("10.0.0.101"), Owner::new("gone", "")); // legacy of a gone one
    s.ips.insert(ip("10.0.0.102"), Owner::new("", "")); // empty record
    let r = gc_store(&mut s, &[owner("a"), Owner::new("b", "eth0")]);
    assert!(r.errors.is_empty());
    let released: BTreeSet<String> = r.released.iter().map(|a| a.ip.to_string()).collect();
    assert_eq!(
        released,
        BTreeSet::from(["10.0.0.4".into(), "10.0.0.101".into(), "10.0.0.102".into()])
    );
    assert_eq!(r.kept, 3);
    assert!(r.error().is_none());

    let mut held = s.owned_by(&owner("a")).unwrap();
    check_held(&c, &owner("a"), &mut held, &[ip("10.0.0.2")]).unwrap();
    let e = check_held(&c, &owner("a"), &mut held, &[ip("10.0.0.3")]).unwrap_err();
    assert_eq!(e.code, code::CHECK_FAILED);
    assert!(
        e.msg.contains("10.0.0.2") && e.msg.contains("10.0.0.3"),
        "{}",
        e.msg
    );
    let e = check_held(&c, &owner("a"), &mut [], &[ip("10.0.0.2")]).unwrap_err();
    assert_eq!(e.code, code::CHECK_FAILED);
    let other = cfg(json!({"subnet": "10.5.0.0/24"}));
    let e = check_held(&other, &owner("a"), &mut held, &[ip("10.0.0.2")]).unwrap_err();
    assert!(
        e.msg.contains("not in any configured range set"),
        "{}",
        e.msg
    );
}

#[test]
fn usage_counts() {
    let c =
        cfg(json!({"subnet": "10.0.0.0/24", "rangeEnd": "10.0.0.20", "exclude": ["10.0.0.8/30"]}));
    // capacity: .1-.20 = 20, minus gateway .1, minus .8-.11 = 15
    let held = [
        ip("10.0.0.2"),
        ip("10.0.0.3"),
        ip("10.0.0.200"),
        ip("10.9.9.9"),
    ];
    let u = &usage_of(&c, &held)[0];
    assert_eq!(
        (u.capacity, u.used, u.static_outside, u.free()),
        (15, 2, 1, 13)
    );
}

// ---------------------------------------------------------------- commands on a FileStore

fn file_cfg(dir: &Path, ipam: Value) -> IpamConfig {
    let mut ipam = ipam;
    ipam["dataDir"] = dir.to_string_lossy().into_owned().into();
    cfg(ipam)
}

#[test]
fn add_del_check_list_status_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let resolv = tmp.path().join("resolv.conf");
    std::fs::write(
        &resolv,
        "nameserver 10.0.0.53\nsearch file.example\noptions ndots:1\n",
    )
    .unwrap();
    let c = file_cfg(
        tmp.path(),
        json!({"subnet": "10.0.0.0/30", "routes": [{"dst": "0.0.0.0/0"}],
               "dns": {"search": ["conf.example"]}, "resolvConf": resolv.to_str().unwrap()}),
    );
    let loc = c.location();
    assert!(list(&loc).unwrap().is_empty());
    status(&c).unwrap(); // no store yet: all free
    assert!(!loc.dir.exists(), "STATUS/list create nothing");

    let out = add(&c, &owner("a")).unwrap();
    assert_eq!(out.ips.len(), 1);
    assert_eq!(out.ips[0].address.to_string(), "10.0.0.2/30");
    assert_eq!(out.ips[0].gateway, Some(ip("10.0.0.1")));
    assert_eq!(out.ips[0].interface, None);
    assert_eq!(out.routes.len(), 1);
    assert_eq!(out.dns.nameservers, ["10.0.0.53"]);
    assert_eq!(
        out.dns.search,
        ["conf.example"],
        "explicit dns wins per field"
    );
    assert_eq!(out.dns.options, ["ndots:1"]);
    assert_eq!(add(&c, &owner("a")).unwrap(), out, "idempotent");

    check(&c, &owner("a"), &[ip("10.0.0.2")]).unwrap();
    assert_eq!(
        check(&c, &owner("a"), &[]).unwrap_err().code,
        code::CHECK_FAILED
    );
    assert_eq!(
        check(&c, &owner("b"), &[ip("10.0.0.2")]).unwrap_err().code,
        code::CHECK_FAILED
    );

    // /30: .2 is the only dynamic address.
    let e = status(&c).unwrap_err();
    assert_eq!(e.code, code::NOT_AVAILABLE);
    assert!(e.msg.contains("ipam.subnet"), "{}", e.msg);
    assert_eq!(add(&c, &owner("b")).unwrap_err().code, code::POOL_EXHAUSTED);
    let u = usage(&c).unwrap();
    assert_eq!((u[0].capacity, u[0].used), (1, 1));

    let l = list(&loc).unwrap();
    assert_eq!(l.len(), 1);
    assert_eq!((l[0].ip, &l[0].owner), (ip("10.0.0.2"), &owner("a")));
    assert!(l[0].since.is_some());

    del(&loc, &owner("a")).unwrap();
    del(&loc, &owner("a")).unwrap();
    status(&c).unwrap();
    assert!(list(&loc).unwrap().is_empty());
    assert_eq!(
        add(&c, &owner("b")).unwrap().ips[0].address.to_string(),
        "10.0.0.2/30"
    );
}

#[test]
fn del_and_gc_on_missing_store_create_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let loc = StoreLocation {
        dir: tmp.path().join("nope").join("net"),
        lock_timeout: Duration::from_millis(10),
    };
    del(&loc, &owner("a")).unwrap();
    assert!(gc(&loc, Some(&[])).unwrap().released.is_empty());
    assert!(!tmp.path().join("nope").exists());
}

#[test]
fn bad_resolv_conf_allocates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let c = file_cfg(
        tmp.path(),
        json!({"subnet": "10.0.0.0/24", "resolvConf": "/nonexistent/resolv.conf"}),
    );
    let e = add(&c, &owner("a")).unwrap_err();
    assert_eq!(e.code, code::INVALID_CONFIG);
    assert!(e.msg.starts_with("ipam.resolvConf:"), "{}", e.msg);
    assert!(!c.location().dir.exists());
}

#[test]
fn gc_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let c = file_cfg(tmp.path(), v4_24());
    let loc = c.location();
    for id in ["a", "b", "c"] {
        add(&c, &owner(id)).unwrap();
    }
    assert!(
        gc(&loc, None).unwrap().released.is_empty(),
        "no valid list: release nothing"
    );
    assert_eq!(list(&loc).unwrap().len(), 3);
    let r = gc(&loc, Some(&[owner("b")])).unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.released.len(), 2);
    assert_eq!(r.kept, 1);
    let l = list(&loc).unwrap();
    assert_eq!(l.len(), 1);
    assert_eq!(l[0].owner, owner("b"));
    assert!(!loc.dir.join("owners/a@eth0").exists());
    assert!(!loc.dir.join("owners/c@eth0").exists());
    assert!(loc.dir.join("owners/b@eth0").exists());
}

#[test]
fn status_reports_unwritable_data_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("file");
    std::fs::write(&file, "").unwrap();
    let c = file_cfg(&file.join("sub"), v4_24());
    let e = status(&c).unwrap_err();
    assert_eq!(e.code, code::NOT_AVAILABLE);
    assert!(e.msg.contains("not a directory"), "{}", e.msg);
}

#[test]
fn invalid_owner_is_rejected_before_any_io() {
    let tmp = tempfile::tempdir().unwrap();
    let c = file_cfg(tmp.path(), v4_24());
    for o in [
        Owner::new("a/b", "eth0"),
        Owner::new("a@b", "eth0"),
        Owner::new("a", ""),
        Owner::new("a".repeat(300), "eth0"),
    ] {
        assert_eq!(add(&c, &o).unwrap_err().code, code::INVALID_ENV);
        // ADD refuses it, so it holds nothing: its DEL succeeds (a failing DEL
        // is retried by the runtime forever).
        del(&c.location(), &o).unwrap();
    }
    assert!(!c.location().dir.exists());
}

#[test]
fn static_prefers_the_set_whose_range_holds_it() {
    // One subnet split over two sets (as host-local allows): .150 belongs to set 1.
    let ipam = json!({"ranges": [
        [{"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.2", "rangeEnd": "10.0.0.100"}],
        [{"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.101", "rangeEnd": "10.0.0.200"}]
    ]});
    let c = with_static(ipam.clone(), &["10.0.0.150"]);
    assert_eq!(c.static_ips[0].set, 1);
    let mut s = MemStore::new();
    assert_eq!(
        alloc(&mut s, &c, "a").unwrap(),
        [ip("10.0.0.2"), ip("10.0.0.150")]
    );
    // Outside every range but in the subnet: the first set.
    assert_eq!(with_static(ipam, &["10.0.0.250"]).static_ips[0].set, 0);
}

#[test]
fn store_location_is_lenient_about_lock_timeout() {
    let loc =
        StoreLocation::from_netconf(&json!({"name": "n", "ipam": {"lockTimeout": "bad"}})).unwrap();
    assert_eq!(loc.lock_timeout, Duration::from_secs(10));
}

#[test]
fn no_panic_on_odd_input() {
    let values = vec![
        json!(null),
        json!(true),
        json!(-1),
        json!(1.5),
        json!(1e300),
        json!(u64::MAX),
        json!(""),
        json!("x"),
        json!("10.0.0.0/24"),
        json!("10.0.0.255"),
        json!("0.0.0.0/0"),
        json!("::/0"),
        json!("::"),
        json!("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
        json!("255.255.255.255/32"),
        json!("10.0.0.0/-1"),
        json!("10.0.0.1/"),
        json!("/24"),
        json!([]),
        json!([[]]),
        json!([[{}]]),
        json!([["x"]]),
        json!([[{"subnet": "::/0", "rangeStart": "::"}]]),
        json!([[{"subnet": "0.0.0.0/0"}]]),
        json!([[{"subnet": "10.0.0.0/32"}, {"subnet": "10.0.0.1/32"}]]),
        json!(["10.0.0.2", "10.0.0.0/8", "::/0"]),
        json!([{"dst": "0.0.0.0/0", "gw": "fd00::1"}]),
        json!({}),
        json!({"nameservers": [1]}),
    ];
    let keys = [
        "subnet",
        "rangeStart",
        "rangeEnd",
        "gateway",
        "ranges",
        "exclude",
        "routes",
        "dns",
        "resolvConf",
        "lockTimeout",
        "dataDir",
    ];
    let mut parsed = 0;
    for key in keys {
        for v in &values {
            for base in [
                json!({"subnet": "10.0.0.0/30"}),
                json!({"ranges": [[{"subnet": "fd00::/126"}]]}),
            ] {
                let mut ipam = base;
                ipam[key] = v.clone();
                for rt in [
                    json!({}),
                    json!({"ips": v}),
                    json!({"ipRanges": v}),
                    json!({"ips": ["10.0.0.2", "fd00::2"]}),
                ] {
                    let conf = json!({"name": "n", "ipam": ipam.clone(), "runtimeConfig": rt});
                    let _ = StoreLocation::from_netconf(&conf);
                    if let Ok(c) = parse(&conf) {
                        parsed += 1;
                        let mut s = MemStore::new();
                        for id in ["a", "b", "c", "d", "e", "f"] {
                            let _ = allocate(&mut s, &c, &owner(id), None);
                        }
                        let _ = usage_of(&c, &s.ips.keys().copied().collect::<Vec<_>>());
                        let _ = gc_store(&mut s, &[]);
                    }
                }
            }
        }
    }
    assert!(parsed > 50, "{parsed}");
}

#[test]
fn whole_address_space_ranges() {
    let c = cfg(
        json!({"ranges": [[{"subnet": "::/0", "rangeStart": "::", "rangeEnd": "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "gateway": "::1"}]]}),
    );
    let mut s = MemStore::new();
    s.last
        .insert(0, ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"));
    assert_eq!(
        alloc(&mut s, &c, "a").unwrap(),
        [ip("::")],
        "wraps from the very last address"
    );
    s.last
        .insert(0, ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe"));
    assert_eq!(
        alloc(&mut s, &c, "b").unwrap(),
        [ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")]
    );
    assert_eq!(c.range_sets[0].capacity(&c.exclusions), u128::MAX - 1);
    let c = cfg(json!({"subnet": "0.0.0.0/0", "exclude": ["0.0.0.0/1"]}));
    assert_eq!(
        alloc(&mut MemStore::new(), &c, "a").unwrap(),
        [ip("128.0.0.0")]
    );
}

/// Root only, like tests/link_root.rs: fails when not root, unless
/// MACTRUNK_SKIP_ROOT_TESTS=1.
fn root() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if std::env::var("MACTRUNK_SKIP_ROOT_TESTS").as_deref() == Ok("1") {
        eprintln!("skipped: not root and MACTRUNK_SKIP_ROOT_TESTS=1");
        return false;
    }
    panic!("this test needs root (set MACTRUNK_SKIP_ROOT_TESTS=1 to skip it)");
}

/// Run `f` on a thread of its own in a private mount namespace, with a
/// tmpfs of 256 KiB and 64 inodes mounted on a fresh temp dir (visible to
/// that thread only, and gone with it).
fn on_small_tmpfs(f: impl FnOnce(&Path) + Send + 'static) {
    use std::ffi::CString;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let res = std::thread::spawn(move || {
        // SAFETY: plain syscalls with valid NUL-terminated strings; they
        // affect this thread's mount namespace only (unshare'd first).
        unsafe {
            assert_eq!(libc::unshare(libc::CLONE_NEWNS), 0, "unshare");
            let root = CString::new("/").unwrap();
            let none = std::ptr::null::<libc::c_char>();
            assert_eq!(
                libc::mount(
                    none,
                    root.as_ptr(),
                    none,
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null()
                ),
                0,
                "make / private"
            );
            let target = CString::new(dir.as_os_str().to_str().unwrap()).unwrap();
            let fstype = CString::new("tmpfs").unwrap();
            let opts = CString::new("size=256k,nr_inodes=64,mode=0700").unwrap();
            assert_eq!(
                libc::mount(
                    fstype.as_ptr(),
                    target.as_ptr(),
                    fstype.as_ptr(),
                    libc::MS_NOSUID | libc::MS_NODEV,
                    opts.as_ptr().cast()
                ),
                0,
                "mount tmpfs: {}",
                std::io::Error::last_os_error()
            );
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&dir)));
            libc::umount2(target.as_ptr(), libc::MNT_DETACH);
            if let Err(p) = r {
                std::panic::resume_unwind(p);
            }
        }
    })
    .join();
    drop(tmp);
    if let Err(p) = res {
        std::panic::resume_unwind(p);
    }
}

/// Fill the filesystem of `dir`: data blocks (`inodes == false`) or inodes.
fn fill(dir: &Path, inodes: bool) -> std::path::PathBuf {
    use std::io::Write;
    let filler = dir.join("filler");
    std::fs::create_dir(&filler).unwrap();
    if inodes {
        for i in 0.. {
            if std::fs::File::create(filler.join(i.to_string())).is_err() {
                break;
            }
        }
    } else {
        let mut f = std::fs::File::create(filler.join("blob")).unwrap();
        while f.write_all(&[0u8; 4096]).is_ok() {}
        let _ = f.sync_all();
    }
    filler
}

/// Issue 8, finding 6: STATUS on a full dataDir answered "ready" while every
/// ADD failed with code 5. It must answer 50, for a full data area and for
/// exhausted inodes, and for a store that does not exist yet.
#[test]
fn status_on_a_full_data_dir_is_50() {
    if !root() {
        return;
    }
    on_small_tmpfs(|mnt| {
        let c = file_cfg(&mnt.join("data"), v4_24());
        add(&c, &owner("a")).unwrap();
        status(&c).unwrap();
        for inodes in [false, true] {
            let what = if inodes { "inodes" } else { "blocks" };
            let filler = fill(mnt, inodes);
            let e = add(&c, &owner("b")).unwrap_err();
            assert_eq!(e.code, code::IO, "{what}: ADD on a full fs: {}", e.msg);
            let e = status(&c).unwrap_err();
            assert_eq!(e.code, code::NOT_AVAILABLE, "{what}: {}", e.msg);
            assert!(
                e.msg.contains("No space left on device") && e.msg.contains("data/net"),
                "{what}: {}",
                e.msg
            );
            // no store yet, on the same full filesystem
            let fresh = file_cfg(&mnt.join("data2"), v4_24());
            let e = status(&fresh).unwrap_err();
            assert_eq!(e.code, code::NOT_AVAILABLE, "{what}, no store: {}", e.msg);
            assert!(!mnt.join("data2").exists(), "STATUS created the store");
            std::fs::remove_dir_all(filler).unwrap();
            status(&c).unwrap();
            status(&fresh).unwrap();
            add(&c, &owner("b")).unwrap();
            del(&c.location(), &owner("b")).unwrap();
        }
        // the probe leaves nothing behind
        let tmp_entries = std::fs::read_dir(mnt.join("data/net/.tmp"))
            .unwrap()
            .count();
        assert_eq!(tmp_entries, 0);
    });
}

// ---------------------------------------------------------------- one attachment, one netns

#[test]
fn an_owner_holding_addresses_for_another_netns_is_refused() {
    let c = cfg(v4_24());
    let mut s = MemStore::new();
    let first = allocate(&mut s, &c, &owner("a"), Some("4:100")).unwrap();
    assert!(first[0].fresh);
    // The same namespace again (a retried ADD): the same address, nothing new.
    let again = allocate(&mut s, &c, &owner("a"), Some("4:100")).unwrap();
    assert_eq!((again[0].ip, again[0].fresh), (first[0].ip, false));
    // Another namespace: refused, and nothing changes.
    let e = allocate(&mut s, &c, &owner("a"), Some("4:200")).unwrap_err();
    assert_eq!(e.code, code::INVALID_ENV);
    assert!(
        e.msg.contains("another network namespace") && e.msg.contains(&first[0].ip.to_string()),
        "{}",
        e.msg
    );
    assert_eq!(s.ips.len(), 1);
    assert_eq!(s.netns_of(&owner("a")).unwrap().as_deref(), Some("4:100"));
    // Unknown namespace (the caller could not tell): no refusal.
    assert_eq!(
        allocate(&mut s, &c, &owner("a"), None).unwrap()[0].ip,
        first[0].ip
    );
    // After the owner's DEL, the other namespace is fine.
    s.release(&owner("a")).unwrap();
    let other = allocate(&mut s, &c, &owner("a"), Some("4:200")).unwrap();
    assert!(other[0].fresh);
}

#[test]
fn the_file_store_records_the_netns_and_a_rollback_frees_only_fresh_addresses() {
    let tmp = tempfile::tempdir().unwrap();
    let c = file_cfg(tmp.path(), v4_24());
    let a = owner("a");
    let first = add_in(&c, &a, Some("4:1")).unwrap();
    assert_eq!(first.fresh.len(), 1);
    let index = c.location().dir.join("owners").join("a@eth0");
    let text = std::fs::read_to_string(&index).unwrap();
    assert!(text.ends_with("netns 4:1\n"), "{text:?}");
    // A retried ADD in the same netns reserves nothing; its rollback must
    // not give back what the first ADD holds.
    let retry = add_in(&c, &a, Some("4:1")).unwrap();
    assert!(retry.fresh.is_empty());
    assert_eq!(retry.out, first.out);
    release_fresh(&c.location(), &a, &retry.fresh).unwrap();
    let mut store = FileStore::open(&c.location().dir, c.location().lock_timeout).unwrap();
    assert_eq!(store.owned_by(&a).unwrap(), vec![first.fresh[0]]);
    drop(store);
    let e = add_in(&c, &a, Some("4:2")).unwrap_err();
    assert_eq!(e.code, code::INVALID_ENV);
    // The fresh addresses of an ADD are what its rollback frees.
    let b = owner("b");
    let added = add_in(&c, &b, Some("4:3")).unwrap();
    release_fresh(&c.location(), &b, &added.fresh).unwrap();
    let mut store = FileStore::open(&c.location().dir, c.location().lock_timeout).unwrap();
    assert!(store.owned_by(&b).unwrap().is_empty());
    assert_eq!(store.owned_by(&a).unwrap(), vec![first.fresh[0]]);
    assert_eq!(store.netns_of(&a).unwrap().as_deref(), Some("4:1"));
    drop(store);
    // the read-only view sees the same (the admin tool's metrics use it)
    let reader = StoreReader::open(&c.location().dir, c.location().lock_timeout).unwrap();
    assert_eq!(reader.netns_of(&a).as_deref(), Some("4:1"));
    assert_eq!(reader.netns_of(&b), None, "b released everything");
    assert_eq!(reader.netns_of(&owner("never")), None);
}

#[test]
fn quarantine_hands_the_address_over_and_replaces_it() {
    let tmp = tempfile::tempdir().unwrap();
    let c = file_cfg(
        tmp.path(),
        json!({"ranges": [[{"subnet": "10.0.0.0/29"}], [{"subnet": "fd00::/120"}]]}),
    );
    let loc = c.location();
    let a = owner("a");
    let first = add_in(&c, &a, Some("ns1")).unwrap();
    assert_eq!(first.fresh, [ip("10.0.0.2"), ip("fd00::2")]);
    let by = "52:54:00:00:00:01".to_string();
    let done = quarantine(
        &c,
        &a,
        Some("ns1"),
        &[(ip("10.0.0.2"), by.clone())],
        32,
        true,
    )
    .unwrap();
    assert_eq!(
        (
            done.quarantined.as_slice(),
            done.released.len(),
            done.held_before
        ),
        ([ip("10.0.0.2")].as_slice(), 0, 0)
    );
    let got = done.added.unwrap();
    // A replacement for the set that lost its address; the IPv6 one is kept
    // (not fresh: the owner already held it).
    assert_eq!(got.fresh, [ip("10.0.0.3")]);
    let addrs: Vec<String> = got.out.ips.iter().map(|i| i.address.to_string()).collect();
    assert_eq!(addrs, ["10.0.0.3/29", "fd00::2/120"]);
    let record = std::fs::read_to_string(loc.dir.join("10.0.0.2")).unwrap();
    assert_eq!(record, "conflict:52:54:00:00:00:01");
    let held: Vec<IpAddr> = list(&loc)
        .unwrap()
        .into_iter()
        .filter(|x| x.owner == a)
        .map(|x| x.ip)
        .collect();
    assert_eq!(held, [ip("10.0.0.3"), ip("fd00::2")]);
    // No index entry of the owner points at it any more; DEL leaves it.
    let index = std::fs::read_to_string(loc.dir.join("owners/a@eth0")).unwrap();
    assert!(!index.contains("10.0.0.2\n"), "{index}");
    del(&loc, &a).unwrap();
    let left = list(&loc).unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].ip, ip("10.0.0.2"));
    assert_eq!(left[0].owner.quarantined_by(), Some(by.as_str()));
    // Never allocated again, kept by GC whatever the valid list says.
    assert_eq!(
        add(&c, &owner("b")).unwrap().ips[0].address.ip(),
        ip("10.0.0.4")
    );
    let r = gc(&loc, Some(&[])).unwrap();
    assert_eq!(
        r.released.iter().map(|x| x.ip).collect::<Vec<_>>(),
        [ip("10.0.0.4"), ip("fd00::3")]
    );
    assert_eq!(r.kept, 1);
    assert!(loc.dir.join("10.0.0.2").exists());
    // A static request for it is refused, naming the quarantine.
    let s = file_cfg(tmp.path(), json!({"subnet": "10.0.0.0/29"}));
    let s = IpamConfig {
        static_ips: vec![StaticIp {
            set: 0,
            ip: ip("10.0.0.2"),
            key: "runtimeConfig.ips[0]".into(),
        }],
        ..s
    };
    let e = add(&s, &owner("c")).unwrap_err();
    assert_eq!(e.code, code::ADDRESS_IN_USE);
    assert!(e.msg.contains("quarantine"), "{}", e.msg);
    // Without `replace` nothing new is allocated; an address the owner does
    // not hold is left alone.
    let d = owner("d");
    let x = add_in(&c, &d, None).unwrap().fresh[0];
    let done = quarantine(
        &c,
        &d,
        None,
        &[(x, "ipv6-dad".into()), (ip("10.0.0.6"), by)],
        32,
        false,
    )
    .unwrap();
    assert!(done.added.is_none());
    // Only what was really quarantined is reported.
    assert_eq!(done.quarantined, [x]);
    assert!(done.released.is_empty());
    assert_eq!(
        std::fs::read_to_string(loc.dir.join(x.to_string())).unwrap(),
        "conflict:ipv6-dad"
    );
    assert!(!loc.dir.join("10.0.0.6").exists());
}

/// The store holds at most `limit` quarantined addresses: past it an
/// address found in use is given back instead (and reported so), and with
/// `replace` the owner still gets the next one.
#[test]
fn quarantine_stops_at_its_limit_and_gives_the_address_back() {
    let tmp = tempfile::tempdir().unwrap();
    let c = file_cfg(tmp.path(), json!({"subnet": "10.0.0.0/24"}));
    let loc = c.location();
    let by = "52:54:00:00:00:01".to_string();
    let a = owner("a");
    let mut held = add_in(&c, &a, None).unwrap().fresh[0];
    let mut quarantined = Vec::new();
    for i in 0..3 {
        let done = quarantine(&c, &a, None, &[(held, by.clone())], 2, true).unwrap();
        let next = done.added.as_ref().unwrap().fresh[0];
        if i < 2 {
            assert_eq!(
                (done.quarantined.clone(), done.released.len()),
                (vec![held], 0),
                "round {i}"
            );
            quarantined.push(held);
        } else {
            assert!(done.quarantined.is_empty(), "round {i}: {done:?}");
            assert_eq!(done.released, [held], "given back, not quarantined");
            assert_eq!(done.held_before, 2);
            assert!(!loc.dir.join(held.to_string()).exists());
        }
        assert_ne!(next, held, "the cursor moves past it either way");
        held = next;
    }
    let q: Vec<IpAddr> = list(&loc)
        .unwrap()
        .into_iter()
        .filter(|x| x.owner.is_quarantine())
        .map(|x| x.ip)
        .collect();
    assert_eq!(q, quarantined);
    // A limit of 0: nothing is ever quarantined.
    let done = quarantine(&c, &a, None, &[(held, by)], 0, false).unwrap();
    assert_eq!((done.quarantined.len(), done.released), (0, vec![held]));
}
