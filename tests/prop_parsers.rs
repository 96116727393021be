//! Property tests (proptest) over everything that parses untrusted input: the
//! network config (`PluginConfig::parse`, `IpamConfig::from_netconf`,
//! `StoreLocation::from_netconf`), `CNI_ARGS`, results (`CniOutput::from_json`,
//! and back with `to_json` in every version), and the whole `skel::run`
//! dispatcher with a plugin that parses but touches nothing.
//!
//! Properties: nothing panics; every error is a CNI error with a non-empty
//! message and a code other than 999; stdout of the dispatcher is exactly one
//! JSON document (or nothing for a successful DEL/CHECK/GC/STATUS); an
//! accepted network name, container ID and ifname can never make a store path
//! leave `<dataDir>/<name>/`.
//!
//! Bounded in CI by proptest's default (256 cases per property). Longer runs:
//! `PROPTEST_CASES=200000 cargo test --release --test prop_parsers`
//! (see docs/reliability.md). A failure prints the minimal input; it becomes a
//! unit test next to the code it broke.

use std::path::{Component, Path};

use proptest::prelude::*;
use serde_json::{Map, Value, json};

use mactrunk::attach::config::PluginConfig;
use mactrunk::cni::env::{CmdArgs, CniArgs, Command};
use mactrunk::cni::names::{interface_name_problem, is_valid_id};
use mactrunk::cni::netconf::IpamKind;
use mactrunk::cni::skel::{self, Plugin, Request};
use mactrunk::cni::{CniError, CniOutput, Version};
use mactrunk::ipam::store::Owner;
use mactrunk::ipam::{IpamConfig, StoreLocation};

// ------------------------------------------------------------------ generators

/// Keys the parsers know, so random objects hit real code paths.
const KEYS: &[&str] = &[
    "cniVersion",
    "name",
    "type",
    "master",
    "vlan",
    "vlanProtocol",
    "mode",
    "mtu",
    "mac",
    "linkInContainer",
    "bcqueuelen",
    "linkType",
    "ipvlanFlags",
    "macFromIP",
    "probe",
    "timeoutMs",
    "attempts",
    "hostShim",
    "src",
    "ipv6Dad",
    "announce",
    "logFile",
    "logLevel",
    "dns",
    "ipam",
    "prevResult",
    "runtimeConfig",
    "args",
    "cni",
    "ips",
    "ipRanges",
    "ranges",
    "subnet",
    "rangeStart",
    "rangeEnd",
    "gateway",
    "exclude",
    "routes",
    "dst",
    "gw",
    "priority",
    "table",
    "scope",
    "advmss",
    "nameservers",
    "domain",
    "search",
    "options",
    "resolvConf",
    "dataDir",
    "lockTimeout",
    "interfaces",
    "interface",
    "address",
    "version",
    "sandbox",
    "ip4",
    "ip6",
    "ip",
    "cni.dev/valid-attachments",
    "cni.dev/attachments",
    "containerID",
    "ifname",
    "plugins",
    "capabilities",
];

/// Strings that mean something to some parser.
const STRINGS: &[&str] = &[
    "",
    "0.1.0",
    "0.2.0",
    "0.3.0",
    "0.3.1",
    "0.4.0",
    "1.0.0",
    "1.1.0",
    "9.9.9",
    "mactrunk",
    "mactrunk-ipam",
    "host-local",
    "../x",
    "..",
    ".",
    "/",
    "a/b",
    "eth0",
    "eth0.50",
    "lo",
    "0123456789abcdef",
    "bridge",
    "private",
    "vepa",
    "passthru",
    "source",
    "802.1Q",
    "802.1ad",
    "optimistic",
    "wait",
    "off",
    "10.0.0.0/24",
    "10.0.0.0/31",
    "10.0.0.0/32",
    "10.0.0.0/0",
    "10.0.0.1",
    "10.0.0.255",
    "10.0.1.0/24",
    "0.0.0.0/0",
    "::/0",
    "fd00::/64",
    "fd00::/127",
    "fd00::/128",
    "fd00::1",
    "::",
    "255.255.255.255",
    "10.0.0.5/24",
    "02:00:00:00:00:01",
    "01:00:5e:00:00:01",
    "ff:ff:ff:ff:ff:ff",
    "00:00:00:00:00:00",
    "/var/lib/cni/networks",
    "/tmp/x",
    "relative",
    "/etc/resolv.conf",
    "/nonexistent",
    "debug",
    "a\u{0}b",
    "é",
    "\u{202e}",
    "IgnoreUnknown=1",
    "4",
    "-1",
];

fn arb_string() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(STRINGS).prop_map(str::to_string),
        2 => "[ -~]{0,24}",
        1 => any::<String>(),
        1 => "[0-9a-f:./]{0,45}",
    ]
}

fn arb_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        2 => any::<i64>().prop_map(|n| json!(n)),
        1 => any::<u64>().prop_map(|n| json!(n)),
        2 => (0u64..5000).prop_map(|n| json!(n)),
        1 => any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f)),
        6 => arb_string().prop_map(Value::String),
    ]
}

fn arb_json() -> impl Strategy<Value = Value> {
    arb_leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            1 => proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            3 => proptest::collection::vec(
                (prop_oneof![4 => proptest::sample::select(KEYS).prop_map(str::to_string), 1 => arb_string()], inner),
                0..6,
            )
            .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Valid configs the mutations start from.
fn bases() -> Vec<Value> {
    vec![
        json!({"cniVersion": "1.1.0", "name": "net", "type": "mactrunk", "master": "eth0",
               "ipam": {"type": "mactrunk-ipam", "subnet": "10.0.0.0/24", "rangeStart": "10.0.0.10",
                        "rangeEnd": "10.0.0.20", "gateway": "10.0.0.1", "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": "/tmp/mtp-prop-never-created"}}),
        json!({"cniVersion": "1.0.0", "name": "ds", "type": "mactrunk", "vlan": 50,
               "ipam": {"type": "mactrunk-ipam", "ranges": [[{"subnet": "10.20.0.0/24"}], [{"subnet": "fd00:20::/64"}]],
                        "exclude": ["10.20.0.5", "10.20.0.128/25"], "dns": {"nameservers": ["10.20.0.1"]}},
               "runtimeConfig": {"ips": ["10.20.0.7/24"], "mac": "02:00:00:00:00:07"},
               "args": {"cni": {"ips": ["10.20.0.8"]}}}),
        json!({"cniVersion": "0.4.0", "name": "prev", "type": "mactrunk", "ipam": {},
               "prevResult": {"cniVersion": "0.4.0", "interfaces": [{"name": "eth0", "sandbox": "/run/netns/x"}],
                              "ips": [{"version": "4", "address": "10.0.0.2/24", "gateway": "10.0.0.1", "interface": 0}],
                              "routes": [{"dst": "0.0.0.0/0"}], "dns": {}}}),
        json!({"cniVersion": "0.2.0", "name": "old", "type": "mactrunk",
               "prevResult": {"ip4": {"ip": "10.0.0.2/24", "gateway": "10.0.0.1", "routes": [{"dst": "0.0.0.0/0"}]}},
               "ipam": {"type": "host-local", "subnet": "10.0.0.0/31"}}),
        json!({"cniVersion": "1.1.0", "name": "gc", "type": "mactrunk",
               "ipam": {"type": "mactrunk-ipam", "subnet": "fd00::/127"},
               "cni.dev/valid-attachments": [{"containerID": "a", "ifname": "eth0"}]}),
    ]
}

/// One edit: walk `path` (creating objects), then set the value, or delete the key.
#[derive(Debug, Clone)]
struct Edit {
    path: Vec<String>,
    value: Option<Value>,
}

fn arb_edit() -> impl Strategy<Value = Edit> {
    (
        proptest::collection::vec(
            proptest::sample::select(KEYS).prop_map(str::to_string),
            1..4,
        ),
        proptest::option::weighted(0.85, arb_json()),
    )
        .prop_map(|(path, value)| Edit { path, value })
}

fn apply(mut v: Value, edits: &[Edit]) -> Value {
    for e in edits {
        edit_at(&mut v, &e.path, &e.value);
    }
    v
}

fn edit_at(cur: &mut Value, path: &[String], value: &Option<Value>) {
    // Arrays on the way: descend into their first element when there is one.
    if let Value::Array(a) = cur
        && let Some(first) = a.first_mut()
    {
        return edit_at(first, path, value);
    }
    if !cur.is_object() {
        *cur = Value::Object(Map::new());
    }
    let obj = cur.as_object_mut().expect("object");
    let (k, rest) = path.split_first().expect("non-empty path");
    if rest.is_empty() {
        match value {
            Some(val) => {
                obj.insert(k.clone(), val.clone());
            }
            None => {
                obj.remove(k);
            }
        }
    } else {
        let next = obj
            .entry(k.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        edit_at(next, rest, value);
    }
}

fn arb_config() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => (proptest::sample::select(bases()), proptest::collection::vec(arb_edit(), 0..5))
            .prop_map(|(b, e)| apply(b, &e)),
        1 => arb_json(),
    ]
}

fn arb_cni_args() -> impl Strategy<Value = String> {
    let pair = prop_oneof![
        3 => (proptest::sample::select(&["IP", "MAC", "K8S_POD_NAME", "K8S_POD_NAMESPACE",
                 "K8S_POD_INFRA_CONTAINER_ID", "IgnoreUnknown", "FOO"][..]), arb_string())
            .prop_map(|(k, v)| format!("{k}={v}")),
        1 => "[ -~]{0,12}",
    ];
    prop_oneof![
        4 => proptest::collection::vec(pair, 0..4).prop_map(|p| p.join(";")),
        1 => any::<String>(),
    ]
}

fn arb_name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::sample::select(&["abc", "c1", "..", "../x", "../../x", ".", "a/b", "-x",
             "x\u{7}y", "x\ny", "x\ry", "a@b", "eth0", "0123456789abcdef", "a b", "", "é",
             "a.b", "_x", ".hidden", "a:b"][..]).prop_map(str::to_string),
        2 => "[a-zA-Z0-9_.@:/ -]{0,20}",
        1 => any::<String>(),
    ]
}

// ------------------------------------------------------------------ checks

fn assert_clean_error(e: &CniError, what: &str) {
    assert_ne!(e.code, 999, "{what}: internal error {e:?}");
    assert!(!e.msg.trim().is_empty(), "{what}: empty msg {e:?}");
}

fn all_versions() -> [Version; 7] {
    [
        "0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0",
    ]
    .map(|v| Version::parse(v).unwrap())
}

/// A plugin that parses everything the real one parses and touches nothing.
struct ParseOnly;

impl Plugin for ParseOnly {
    fn add(&self, req: &Request) -> Result<CniOutput, CniError> {
        let conf = PluginConfig::parse(&req.conf, &req.args.args)?;
        if conf.ipam == IpamKind::InProcess {
            IpamConfig::from_netconf(&req.conf, &req.args.args)?;
        }
        // Echo prevResult: exercises to_json in the config's version.
        Ok(conf.prev_result.unwrap_or_default())
    }
    fn del(&self, req: &Request) -> Result<(), CniError> {
        StoreLocation::from_netconf(&req.conf).map(|_| ())
    }
    fn check(&self, req: &Request) -> Result<(), CniError> {
        PluginConfig::parse(&req.conf, &req.args.args).map(|_| ())
    }
    fn gc(&self, req: &Request) -> Result<(), CniError> {
        mactrunk::cni::gc::valid_attachments(&req.conf).map(|_| ())
    }
    fn status(&self, req: &Request) -> Result<(), CniError> {
        PluginConfig::parse(&req.conf, &req.args.args).map(|_| ())
    }
}

// ------------------------------------------------------------------ properties

proptest! {
    #[test]
    fn plugin_config_never_panics(conf in arb_config(), args in arb_cni_args()) {
        let args = CniArgs::parse(&args).unwrap_or_default();
        match PluginConfig::parse(&conf, &args) {
            Ok(c) => {
                prop_assert!(is_valid_id(&c.name));
                if let Some(m) = &c.master {
                    prop_assert!(interface_name_problem(m).is_none(), "master {m:?} accepted");
                }
                if let Some(p) = &c.prev_result {
                    for v in all_versions() {
                        let _ = p.to_json(v);
                    }
                }
            }
            Err(e) => assert_clean_error(&e, "PluginConfig::parse"),
        }
    }

    #[test]
    fn ipam_config_never_panics(conf in arb_config(), args in arb_cni_args()) {
        let args = CniArgs::parse(&args).unwrap_or_default();
        match IpamConfig::from_netconf(&conf, &args) {
            Ok(c) => {
                let loc = c.location();
                prop_assert_eq!(loc.dir.parent(), Some(c.data_dir.as_path()));
                prop_assert!(c.static_ips.len() <= c.range_sets.len());
            }
            Err(e) => assert_clean_error(&e, "IpamConfig::from_netconf"),
        }
        match StoreLocation::from_netconf(&conf) {
            Ok(loc) => {
                // <dataDir>/<name>: the name adds exactly one normal component
                let last = loc.dir.components().next_back();
                prop_assert!(matches!(last, Some(Component::Normal(_))), "{:?}", loc.dir);
                prop_assert!(!loc.dir.components().any(|c| c == Component::ParentDir) ||
                    conf["ipam"]["dataDir"].as_str().is_some_and(|d| d.contains("..")),
                    "{:?}", loc.dir);
            }
            Err(e) => assert_clean_error(&e, "StoreLocation::from_netconf"),
        }
    }

    #[test]
    fn cni_args_never_panic(s in arb_cni_args()) {
        match CniArgs::parse(&s) {
            Ok(a) => prop_assert!(a.ip.iter().all(|ip| !ip.is_empty())),
            Err(e) => {
                assert_clean_error(&e, "CniArgs::parse");
                prop_assert!(e.code == 2 || e.code == 4, "code {}", e.code);
            }
        }
    }

    #[test]
    fn results_parse_and_render_in_every_version(v in arb_config(), base in 0usize..7) {
        let versions = all_versions();
        match CniOutput::from_json(&v, versions[base]) {
            Ok(out) => {
                for ver in versions {
                    let doc = out.to_json(ver);
                    prop_assert!(doc.is_object());
                    // what we print, we can read back
                    let again = CniOutput::from_json(&doc, ver);
                    prop_assert!(again.is_ok(), "{ver:?}: {doc} -> {again:?}");
                }
            }
            Err(e) => assert_clean_error(&e, "CniOutput::from_json"),
        }
        // also as a prevResult under each version
        let wrapped = json!({"cniVersion": "1.1.0", "name": "n", "prevResult": v});
        if let Err(e) = PluginConfig::parse(&wrapped, &CniArgs::default()) {
            assert_clean_error(&e, "prevResult");
        }
    }

    #[test]
    fn env_names_stay_inside_the_store(cid in arb_name(), ifname in arb_name(), net in arb_name()) {
        let env = |k: &str| match k {
            "CNI_CONTAINERID" => Some(cid.clone()),
            "CNI_IFNAME" => Some(ifname.clone()),
            "CNI_NETNS" => Some("/run/netns/x".to_string()),
            _ => None,
        };
        if let Ok(a) = CmdArgs::from_env(Command::Add, &env) {
            let owner = Owner::new(a.container_id.clone(), a.ifname.clone());
            prop_assert!(owner.validate().is_ok(), "env accepted {cid:?}/{ifname:?}, store refuses");
            // The store's own rule names the index file.
            let name = owner.index_name();
            prop_assert!(name.is_some(), "no index name for {owner:?}");
            let index = Path::new("/d/net/owners").join(name.unwrap_or_default());
            prop_assert_eq!(index.parent(), Some(Path::new("/d/net/owners")));
            prop_assert!(!a.container_id.starts_with('.'));
        }
        let conf = json!({"name": net, "ipam": {"dataDir": "/d"}});
        if let Ok(loc) = StoreLocation::from_netconf(&conf) {
            prop_assert_eq!(loc.dir.parent(), Some(Path::new("/d")));
            prop_assert!(!net.contains('/') && net != ".." && net != ".");
        }
    }

    #[test]
    fn dispatcher_prints_one_json_document(
        cmd in prop_oneof![
            6 => proptest::sample::select(&["ADD", "DEL", "CHECK", "GC", "STATUS", "VERSION"][..]).prop_map(str::to_string),
            1 => arb_string(),
        ],
        cid in proptest::option::weighted(0.9, arb_name()),
        ifname in proptest::option::weighted(0.9, arb_name()),
        netns in proptest::option::weighted(0.9, arb_string()),
        args in proptest::option::weighted(0.5, arb_cni_args()),
        stdin in prop_oneof![
            6 => arb_config().prop_map(|v| v.to_string().into_bytes()),
            1 => proptest::collection::vec(any::<u8>(), 0..64),
            1 => arb_string().prop_map(String::into_bytes),
        ],
    ) {
        let env = |k: &str| match k {
            "CNI_COMMAND" => Some(cmd.clone()),
            "CNI_CONTAINERID" => cid.clone(),
            "CNI_IFNAME" => ifname.clone(),
            "CNI_NETNS" => netns.clone(),
            "CNI_ARGS" => args.clone(),
            "CNI_PATH" => Some("/nonexistent".to_string()),
            _ => None,
        };
        let out = skel::run(&ParseOnly, &env, &mut stdin.as_slice());
        let docs: Vec<Value> = serde_json::Deserializer::from_str(&out.stdout)
            .into_iter::<Value>()
            .collect::<Result<_, _>>()
            .map_err(|e| TestCaseError::fail(format!("stdout not JSON: {e}: {:?}", out.stdout)))?;
        match out.status {
            0 => {
                prop_assert!(docs.len() <= 1, "{:?}", out.stdout);
                if matches!(cmd.as_str(), "DEL" | "CHECK" | "GC" | "STATUS") {
                    prop_assert!(docs.is_empty(), "{cmd}: {:?}", out.stdout);
                } else {
                    prop_assert_eq!(docs.len(), 1, "{:?}", out.stdout);
                }
            }
            1 => {
                prop_assert_eq!(docs.len(), 1, "{:?}", out.stdout);
                let e = &docs[0];
                let code = e["code"].as_u64();
                prop_assert!(code.is_some_and(|c| c != 999 && c != 0), "{e}");
                prop_assert!(e["msg"].as_str().is_some_and(|m| !m.is_empty()), "{e}");
                prop_assert!(e["cniVersion"].is_string(), "{e}");
            }
            s => prop_assert!(false, "exit status {s}"),
        }
        prop_assert!(out.stdout.is_empty() || (out.stdout.ends_with('\n') && out.stdout.lines().count() == 1));
    }
}

/// The generators must reach the success paths too, or the properties above
/// only ever test error handling.
#[test]
fn generators_reach_valid_configs() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strat = arb_config();
    let (mut plugin_ok, mut ipam_ok, mut prev_ok, n) = (0, 0, 0, 2000);
    for _ in 0..n {
        let v = strat.new_tree(&mut runner).unwrap().current();
        if let Ok(c) = PluginConfig::parse(&v, &CniArgs::default()) {
            plugin_ok += 1;
            prev_ok += usize::from(c.prev_result.is_some());
        }
        ipam_ok += usize::from(IpamConfig::from_netconf(&v, &CniArgs::default()).is_ok());
    }
    eprintln!(
        "of {n}: PluginConfig ok {plugin_ok}, with prevResult {prev_ok}, IpamConfig ok {ipam_ok}"
    );
    assert!(
        plugin_ok > n / 10,
        "PluginConfig ok only {plugin_ok} of {n}"
    );
    assert!(ipam_ok > n / 20, "IpamConfig ok only {ipam_ok} of {n}");
    assert!(prev_ok > n / 50, "prevResult parsed only {prev_ok} of {n}");
}
