//! The main plugin's network configuration: JSON in, a validated
//! [`PluginConfig`] out. Pure: it never asks the kernel anything (whether
//! `master` exists is the plugin's question, at ADD time).

use std::time::Duration;

use serde_json::{Map, Value};

use crate::cni::env::CniArgs;
use crate::cni::netconf::{
    IpamKind, opt_bool, opt_string, opt_u64, parse_ipam_kind, parse_name, parse_version, type_name,
};
use crate::cni::{CniError, CniOutput, Dns, Version, code};
use crate::ipam::IpamConfig;
use crate::sys::netlink::{IpvlanFlags, IpvlanMode, LinkKind, MacvlanMode, VLAN_IDS, VlanProtocol};

/// How ADD deals with IPv6 duplicate address detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DadPolicy {
    /// Addresses are added as optimistic (RFC 4429): usable at once, DAD still runs.
    Optimistic,
    /// ADD waits until DAD finished and fails if it detected a duplicate.
    Wait,
    /// No DAD at all (IFA_F_NODAD).
    Off,
}

/// `probe`: RFC 5227 ARP probes for every IPv4 address before it is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeConfig {
    /// How long to listen for an answer (`probe.timeoutMs`).
    pub timeout: Duration,
    /// Probe rounds at most: a conflicting address is quarantined and the
    /// next one probed, this many times in all (`probe.attempts`).
    pub attempts: u32,
    /// Quarantined addresses a network's store may hold; past it an address
    /// found in use is skipped but not remembered (`probe.maxQuarantined`).
    pub max_quarantined: u32,
}

/// `probe.timeoutMs`: default, and the accepted range.
pub const PROBE_TIMEOUT_MS: (u64, std::ops::RangeInclusive<u64>) = (100, 1..=10_000);
/// `probe.attempts`: default, and the accepted range.
pub const PROBE_ATTEMPTS: (u64, std::ops::RangeInclusive<u64>) = (3, 1..=16);
/// `probe.maxQuarantined`: default, and the accepted range.
pub const PROBE_MAX_QUARANTINED: (u64, std::ops::RangeInclusive<u64>) = (32, 0..=4096);
/// The most a probe may take in all (`timeoutMs` x `attempts`), in ms: well
/// inside the time a runtime gives one ADD (kubelet's CRI call: 2 minutes),
/// with room for the rest of ADD and the runtime's retry.
pub const PROBE_BUDGET_MS: u64 = 30_000;

/// `hostShim`: the host reaches its own containers through a shim macvlan
/// on their parent (see `attach::shim`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostShimConfig {
    /// `hostShim.src`: the host's addresses the containers see (at most one
    /// per family); empty: chosen per container address.
    pub src: Vec<std::net::IpAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VlanConfig {
    pub id: u16,
    pub protocol: VlanProtocol,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PluginConfig {
    pub cni_version: Version,
    pub name: String,
    /// None: use the interface of the default route.
    pub master: Option<String>,
    pub vlan: Option<VlanConfig>,
    /// `linkType` with `mode`, `ipvlanFlags` and `bcqueuelen`.
    pub link: LinkKind,
    /// None: kernel default (the parent's MTU).
    pub mtu: Option<u32>,
    pub mac: Option<[u8; 6]>,
    /// `macFromIP`: the MAC is derived from the first IPv4 address.
    pub mac_from_ip: bool,
    pub link_in_container: bool,
    pub probe: Option<ProbeConfig>,
    pub host_shim: Option<HostShimConfig>,
    pub ipv6_dad: DadPolicy,
    pub announce: bool,
    pub dns: Dns,
    pub ipam: IpamKind,
    pub prev_result: Option<CniOutput>,
    pub log_file: Option<String>,
    pub log_level: Option<String>,
}

impl PluginConfig {
    /// Validate the whole config. `args` supplies `CNI_ARGS MAC=`.
    pub fn parse(conf: &Value, args: &CniArgs) -> Result<PluginConfig, CniError> {
        let obj = conf
            .as_object()
            .ok_or_else(|| CniError::new(code::DECODE, "network config is not a JSON object"))?;
        let cni_version = parse_version(conf)?;
        let name = parse_name(conf)?;
        opt_string(obj, "type")?;
        let master = opt_string(obj, "master")?.filter(|m| !m.is_empty());
        if let Some(p) = master
            .as_deref()
            .and_then(crate::cni::names::interface_name_problem)
        {
            return Err(CniError::config(
                "master",
                format!(
                    "interface name {:?} {p}",
                    master.unwrap_or_default().escape_debug().to_string()
                ),
            ));
        }
        let vlan = match opt_u64(obj, "vlan", u64::from(*VLAN_IDS.end()))? {
            None => None,
            Some(id) => Some(VlanConfig {
                id: u16::try_from(id)
                    .ok()
                    .filter(|id| VLAN_IDS.contains(id))
                    .ok_or_else(|| {
                        CniError::config(
                            "vlan",
                            format!(
                                "VLAN id {id} is not usable: must be {}-{}",
                                VLAN_IDS.start(),
                                VLAN_IDS.end()
                            ),
                        )
                    })?,
                protocol: match opt_string(obj, "vlanProtocol")? {
                    None => VlanProtocol::Dot1Q,
                    Some(p) => p
                        .parse()
                        .map_err(|e: String| CniError::config("vlanProtocol", e))?,
                },
            }),
        };
        let mtu = match opt_u64(obj, "mtu", u32::MAX as u64)? {
            None | Some(0) => None,
            Some(m) if m < 68 => {
                return Err(CniError::config(
                    "mtu",
                    format!("{m} is below the IPv4 minimum of 68"),
                ));
            }
            Some(m) => Some(m as u32),
        };
        let link = link_kind(obj)?;
        let static_mac = effective_mac(obj, args)?;
        let mac = static_mac.map(|(m, _)| m);
        let mac_from_ip = opt_bool(obj, "macFromIP")?.unwrap_or(false);
        if link.is_ipvlan() && (mac_from_ip || mac.is_some()) {
            let key = match static_mac {
                Some((_, key)) if !mac_from_ip => key,
                _ => "macFromIP",
            };
            return Err(CniError::config(
                key,
                "an ipvlan link has the MAC of its parent (the kernel refuses another): a MAC of its own needs linkType macvlan",
            ));
        }
        if mac_from_ip {
            if let Some((_, key)) = static_mac {
                return Err(CniError::config(
                    "macFromIP",
                    format!("cannot be combined with a static MAC ({key} is set): choose one"),
                ));
            }
            if matches!(
                link,
                LinkKind::Macvlan {
                    mode: MacvlanMode::Passthru,
                    ..
                }
            ) {
                return Err(CniError::config(
                    "macFromIP",
                    "a passthru macvlan takes over its parent's MAC: changing it would change the parent's",
                ));
            }
        }
        let link_in_container = opt_bool(obj, "linkInContainer")?.unwrap_or(false);
        let ipam = parse_ipam_kind(obj)?;
        let probe = probe_config(obj)?;
        if probe.is_some() {
            if link.is_ipvlan() {
                return Err(CniError::config(
                    "probe",
                    "needs linkType macvlan: an ipvlan shares its parent's MAC, so the answers to a probe (sent to that MAC, for no address of the container) go to the parent, never to the container's link",
                ));
            }
            if let LinkKind::Macvlan {
                mode: MacvlanMode::Source,
                ..
            } = link
            {
                return Err(CniError::config(
                    "probe",
                    "cannot work with macvlan mode source: a source-mode macvlan receives only frames sent from the MACs on its list, and the kernel hands everything else, the answers to a probe too, to the parent",
                ));
            }
        }
        if mac_from_ip || probe.is_some() {
            let key = if mac_from_ip { "macFromIP" } else { "probe" };
            if let Some(why) = no_ipv4(&ipam, conf, args)? {
                let need = if mac_from_ip {
                    "needs an IPv4 address to derive the MAC from"
                } else {
                    "needs an IPAM that gives IPv4 addresses (IPv6 has its own check: ipv6Dad \"wait\")"
                };
                return Err(CniError::config(key, format!("{need}, and {why}")));
            }
        }
        let host_shim = host_shim_config(obj, link, link_in_container, &ipam)?;
        let ipv6_dad = match opt_string(obj, "ipv6Dad")?.as_deref() {
            None | Some("optimistic") => DadPolicy::Optimistic,
            Some("wait") => DadPolicy::Wait,
            Some("off") => DadPolicy::Off,
            Some(other) => {
                return Err(CniError::config(
                    "ipv6Dad",
                    format!(
                        "unknown policy {other:?}: expected \"optimistic\", \"wait\" or \"off\""
                    ),
                ));
            }
        };
        let announce = opt_bool(obj, "announce")?.unwrap_or(true);
        let dns = match obj.get("dns") {
            None | Some(Value::Null) => Dns::default(),
            Some(v) => serde_json::from_value(v.clone())
                .map_err(|e| CniError::config("dns", e.to_string()))?,
        };
        let prev_result = match obj.get("prevResult") {
            None | Some(Value::Null) => None,
            Some(v) => Some(CniOutput::from_json(v, cni_version)?),
        };
        Ok(PluginConfig {
            cni_version,
            name,
            master,
            vlan,
            link,
            mtu,
            mac,
            mac_from_ip,
            link_in_container,
            probe,
            host_shim,
            ipv6_dad,
            announce,
            dns,
            ipam,
            prev_result,
            log_file: opt_string(obj, "logFile")?,
            log_level: match opt_string(obj, "logLevel")? {
                Some(l) if crate::sys::log::Level::parse(&l).is_none() => {
                    return Err(CniError::config(
                        "logLevel",
                        format!("unknown level {l:?}: expected error, warn, info or debug"),
                    ));
                }
                other => other,
            },
        })
    }
}

/// `linkType` (macvlan, the default, or ipvlan) with the keys of that kind:
/// `mode` (its own values per kind), `ipvlanFlags` (ipvlan only) and
/// `bcqueuelen` (macvlan only). A key of the other kind is an error: it
/// would otherwise be ignored while the operator believes it applies.
fn link_kind(obj: &Map<String, Value>) -> Result<LinkKind, CniError> {
    let mode = opt_string(obj, "mode")?.filter(|m| !m.is_empty());
    let bcqueuelen = opt_u64(obj, "bcqueuelen", u32::MAX as u64)?.map(|v| v as u32);
    let flags = opt_string(obj, "ipvlanFlags")?.filter(|f| !f.is_empty());
    match opt_string(obj, "linkType")?.as_deref() {
        None | Some("") | Some("macvlan") => {
            if flags.is_some() {
                return Err(CniError::config(
                    "ipvlanFlags",
                    "only for linkType ipvlan (this network is a macvlan: its mode says bridge, private or vepa)",
                ));
            }
            let mode = match mode.as_deref() {
                None => MacvlanMode::Bridge,
                Some(m) => m.parse().map_err(|e: String| {
                    let hint = if m.parse::<IpvlanMode>().is_ok() {
                        " (l2, l3 and l3s are ipvlan modes: set linkType ipvlan)"
                    } else {
                        ""
                    };
                    CniError::config("mode", format!("{e}{hint}"))
                })?,
            };
            Ok(LinkKind::Macvlan { mode, bcqueuelen })
        }
        Some("ipvlan") => {
            if bcqueuelen.is_some() {
                return Err(CniError::config(
                    "bcqueuelen",
                    "only for linkType macvlan (an ipvlan has no broadcast queue of its own)",
                ));
            }
            let mode = match mode.as_deref() {
                None => IpvlanMode::L2,
                Some(m) => m.parse().map_err(|e: String| {
                    let hint = if m.parse::<IpvlanFlags>().is_ok() {
                        " (bridge, private and vepa go in ipvlanFlags)"
                    } else {
                        ""
                    };
                    CniError::config("mode", format!("{e}{hint}"))
                })?,
            };
            let flags = match flags.as_deref() {
                None => IpvlanFlags::Bridge,
                Some(f) => f
                    .parse()
                    .map_err(|e: String| CniError::config("ipvlanFlags", e))?,
            };
            Ok(LinkKind::Ipvlan { mode, flags })
        }
        Some(other) => Err(CniError::config(
            "linkType",
            format!("unknown link type {other:?}: expected \"macvlan\" or \"ipvlan\""),
        )),
    }
}

/// Why the IPAM of this config can give no IPv4 address, when that can be
/// known before ADD: an empty `ipam`, or the in-process IPAM with IPv6 range
/// sets only. A delegated IPAM's answer is known only after it ran.
fn no_ipv4(ipam: &IpamKind, conf: &Value, args: &CniArgs) -> Result<Option<String>, CniError> {
    match ipam {
        IpamKind::None => Ok(Some("ipam is empty (L2 only: no addresses)".into())),
        IpamKind::Delegate(_) => Ok(None),
        IpamKind::InProcess => {
            let ipam = IpamConfig::from_netconf(conf, args)?;
            Ok((!ipam.range_sets.iter().any(|s| s.is_ipv4())).then(|| {
                format!(
                    "the IPAM has IPv6 range sets only ({})",
                    ipam.describe_sets()
                )
            }))
        }
    }
}

/// `probe`: absent or null (no probe), or an object with `timeoutMs`,
/// `attempts` and `maxQuarantined`, each with a default; any other key is
/// refused (a misspelt `timeoutMS` must not silently mean the default).
fn probe_config(obj: &Map<String, Value>) -> Result<Option<ProbeConfig>, CniError> {
    let p = match obj.get("probe") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(p)) => p,
        Some(other) => {
            return Err(CniError::config(
                "probe",
                format!(
                    "expected an object like {{\"timeoutMs\": 100}}, got {}",
                    type_name(other)
                ),
            ));
        }
    };
    let field = |key: &str, (default, range): (u64, std::ops::RangeInclusive<u64>)| {
        let prefixed = |e: CniError| CniError::new(e.code, format!("probe.{}", e.msg));
        let v = opt_u64(p, key, u64::MAX).map_err(prefixed)?;
        match v {
            None => Ok(default),
            Some(v) if range.contains(&v) => Ok(v),
            Some(v) => Err(CniError::config(
                &format!("probe.{key}"),
                format!(
                    "{v} is out of range: expected {} to {}",
                    range.start(),
                    range.end()
                ),
            )),
        }
    };
    const KEYS: [&str; 3] = ["timeoutMs", "attempts", "maxQuarantined"];
    if let Some(key) = p.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(CniError::config(
            &format!("probe.{}", key.escape_debug()),
            format!("unknown key: expected {}", KEYS.join(", ")),
        ));
    }
    let timeout_ms = field("timeoutMs", PROBE_TIMEOUT_MS)?;
    let attempts = field("attempts", PROBE_ATTEMPTS)?;
    if timeout_ms * attempts > PROBE_BUDGET_MS {
        return Err(CniError::config(
            "probe",
            format!(
                "timeoutMs {timeout_ms} x attempts {attempts} is {} ms, more than the {PROBE_BUDGET_MS} ms a probe may take in all (a runtime gives one ADD about 2 minutes): lower timeoutMs or attempts",
                timeout_ms * attempts
            ),
        ));
    }
    Ok(Some(ProbeConfig {
        timeout: Duration::from_millis(timeout_ms),
        attempts: attempts as u32,
        max_quarantined: field("maxQuarantined", PROBE_MAX_QUARANTINED)? as u32,
    }))
}

/// `hostShim`: absent, null or false (none), true, or an object with its
/// options (`src`). Refused where a shim cannot work: an ipvlan (the kernel
/// keeps one ipvlan mode per parent, and a container's packets to the host's
/// address are handed to the parent, not to a shim: strict rp_filter on the
/// parent drops them), a macvlan mode other than bridge (only bridge-mode
/// macvlans of one parent reach each other; vepa reaches the host through
/// a hairpin switch without a shim), `linkInContainer` (the parent is not in
/// the host), and an IPAM that gives no addresses (nothing to route).
fn host_shim_config(
    obj: &Map<String, Value>,
    link: LinkKind,
    link_in_container: bool,
    ipam: &IpamKind,
) -> Result<Option<HostShimConfig>, CniError> {
    let conf = match obj.get("hostShim") {
        None | Some(Value::Null) | Some(Value::Bool(false)) => return Ok(None),
        Some(Value::Bool(true)) => HostShimConfig::default(),
        Some(Value::Object(o)) => HostShimConfig { src: shim_src(o)? },
        Some(other) => {
            return Err(CniError::config(
                "hostShim",
                format!(
                    "expected true, false or an object like {{\"src\": [\"192.168.50.5\"]}}, got {}",
                    type_name(other)
                ),
            ));
        }
    };
    let refuse = |why: &str| Err(CniError::config("hostShim", why));
    match link {
        LinkKind::Ipvlan { .. } => {
            return refuse(
                "needs linkType macvlan: an ipvlan shim would share the parent's ipvlan mode (one per parent) and the containers' packets to the host's address reach the parent, not the shim, where strict rp_filter drops them (docs/l2.md, host shim)",
            );
        }
        LinkKind::Macvlan { mode, .. } if mode != MacvlanMode::Bridge => {
            return refuse(&format!(
                "needs macvlan mode bridge, not {mode}: only bridge-mode macvlans of one parent reach each other inside the host (with vepa and a hairpin switch the host reaches its containers without a shim)"
            ));
        }
        LinkKind::Macvlan { .. } => {}
    }
    if link_in_container {
        return refuse(
            "cannot be combined with linkInContainer: the shim lives in the host's network namespace, next to the parent",
        );
    }
    if *ipam == IpamKind::None {
        return refuse(
            "needs an IPAM that gives addresses (ipam is empty: L2 only, no address for the host to route to)",
        );
    }
    Ok(Some(conf))
}

/// `hostShim.src`: one address or a list, at most one per family.
fn shim_src(o: &Map<String, Value>) -> Result<Vec<std::net::IpAddr>, CniError> {
    let items: Vec<&Value> = match o.get("src") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(a)) => a.iter().collect(),
        Some(v) => vec![v],
    };
    let mut out: Vec<std::net::IpAddr> = Vec::new();
    for (i, v) in items.into_iter().enumerate() {
        let key = format!("hostShim.src[{i}]");
        let ip: std::net::IpAddr = match v {
            Value::String(s) => s
                .parse()
                .map_err(|_| CniError::config(&key, format!("{s:?} is not an IP address")))?,
            other => {
                return Err(CniError::config(
                    &key,
                    format!("expected an IP address string, got {}", type_name(other)),
                ));
            }
        };
        if ip.is_unspecified() || ip.is_loopback() || ip.is_multicast() {
            return Err(CniError::config(
                &key,
                format!("{ip} cannot be the host's source address"),
            ));
        }
        if out.iter().any(|o| o.is_ipv4() == ip.is_ipv4()) {
            return Err(CniError::config(
                &key,
                format!(
                    "a second {} address: at most one per family",
                    if ip.is_ipv4() { "IPv4" } else { "IPv6" }
                ),
            ));
        }
        out.push(ip);
    }
    Ok(out)
}

/// MAC priority: `runtimeConfig.mac` > `CNI_ARGS MAC=` > config `mac`;
/// with the key it came from.
fn effective_mac(
    obj: &Map<String, Value>,
    args: &CniArgs,
) -> Result<Option<([u8; 6], &'static str)>, CniError> {
    let runtime = match obj.get("runtimeConfig").and_then(|r| r.get("mac")) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.is_empty() => Some(("runtimeConfig.mac", s.clone())),
        Some(Value::String(_)) => None,
        Some(other) => {
            return Err(CniError::config(
                "runtimeConfig.mac",
                format!("expected a string, got {}", type_name(other)),
            ));
        }
    };
    let chosen = runtime
        .or_else(|| args.mac.clone().map(|m| ("CNI_ARGS MAC", m)))
        .or(opt_string(obj, "mac")?
            .filter(|m| !m.is_empty())
            .map(|m| ("mac", m)));
    match chosen {
        None => Ok(None),
        Some((key, s)) => parse_unicast_mac(&s)
            .map(|m| Some((m, key)))
            .map_err(|p| CniError::config(key, format!("{s:?} {p}"))),
    }
}

/// `aa:bb:cc:dd:ee:ff` (or with `-`), unicast, not all zero.
pub fn parse_unicast_mac(s: &str) -> Result<[u8; 6], &'static str> {
    let parts: Vec<&str> = s.split([':', '-']).collect();
    if parts.len() != 6 {
        return Err("is not a MAC address (expected six hex octets like 02:42:ac:11:00:02)");
    }
    let mut mac = [0u8; 6];
    for (i, p) in parts.iter().enumerate() {
        if p.len() != 2 {
            return Err("is not a MAC address (expected six hex octets like 02:42:ac:11:00:02)");
        }
        mac[i] = u8::from_str_radix(p, 16)
            .map_err(|_| "is not a MAC address (expected six hex octets like 02:42:ac:11:00:02)")?;
    }
    if mac[0] & 1 == 1 {
        return Err("is a multicast address: an interface needs a unicast MAC");
    }
    if mac == [0; 6] {
        return Err("is the all-zero address");
    }
    Ok(mac)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<PluginConfig, CniError> {
        PluginConfig::parse(&v, &CniArgs::default())
    }

    fn base() -> Value {
        json!({"cniVersion": "1.1.0", "name": "net1", "type": "mactrunk", "master": "eth0",
               "ipam": {"type": "mactrunk-ipam", "subnet": "10.0.0.0/24"}})
    }

    fn with(key: &str, val: Value) -> Value {
        let mut v = base();
        v[key] = val;
        v
    }

    #[test]
    fn defaults() {
        let c = parse(base()).unwrap();
        assert_eq!(c.cni_version, Version::V1_1_0);
        assert_eq!(c.link, LinkKind::default());
        assert!(!c.mac_from_ip);
        assert_eq!(c.probe, None);
        assert_eq!(c.mtu, None);
        assert_eq!(c.vlan, None);
        assert_eq!(c.ipam, IpamKind::InProcess);
        assert_eq!(c.ipv6_dad, DadPolicy::Optimistic);
        assert!(c.announce);
        let mut v = base();
        v.as_object_mut().unwrap().remove("cniVersion");
        assert_eq!(parse(v).unwrap().cni_version, Version::V0_1_0);
    }

    /// Every invalid value is code 7 (or 1 for versions) and the message starts with the key.
    #[test]
    fn invalid_values_name_their_key() {
        let cases: Vec<(&str, Value, u32)> = vec![
            ("cniVersion", json!("0.9.0"), 1),
            ("cniVersion", json!(1), 7),
            ("name", json!("../etc"), 7),
            ("name", json!(""), 7),
            ("name", json!(5), 7),
            ("master", json!(7), 7),
            ("master", json!("0123456789abcdefg"), 7),
            ("master", json!("a/b"), 7),
            ("vlan", json!(0), 7),
            ("vlan", json!(4095), 7),
            ("vlan", json!(-1), 7),
            ("vlan", json!("50"), 7),
            ("vlan", json!(1e30), 7),
            ("mode", json!("foo"), 7),
            ("mode", json!(1), 7),
            ("mtu", json!("x"), 7),
            ("mtu", json!(-5), 7),
            ("mtu", json!(1e30), 7),
            ("mtu", json!(18446744073709551615u64), 7),
            ("mtu", json!(67), 7),
            ("mac", json!("zz:00:00:00:00:00"), 7),
            ("mac", json!("01:00:5e:00:00:01"), 7),
            ("mac", json!("00:00:00:00:00:00"), 7),
            ("mac", json!("02:00:00:00:00"), 7),
            ("linkInContainer", json!("yes"), 7),
            ("bcqueuelen", json!(-1), 7),
            ("ipv6Dad", json!("sometimes"), 7),
            ("announce", json!(1), 7),
            ("dns", json!("8.8.8.8"), 7),
            ("ipam", json!([]), 7),
            ("logFile", json!(false), 7),
            ("logLevel", json!("loud"), 7),
            ("type", json!(5), 7),
        ];
        for (key, val, want) in cases {
            let err = parse(with(key, val.clone())).unwrap_err();
            assert_eq!(err.code, want, "{key}={val}: {err}");
            assert!(err.msg.starts_with(key), "{key}={val}: {}", err.msg);
        }
    }

    fn with_all(pairs: &[(&str, Value)]) -> Value {
        let mut v = base();
        for (k, val) in pairs {
            v[*k] = val.clone();
        }
        v
    }

    #[test]
    fn link_types_and_their_modes() {
        let ipv = |pairs: &[(&str, Value)]| {
            let mut all = vec![("linkType", json!("ipvlan"))];
            all.extend_from_slice(pairs);
            parse(with_all(&all)).map(|c| c.link)
        };
        assert_eq!(
            ipv(&[]).unwrap(),
            LinkKind::Ipvlan {
                mode: IpvlanMode::L2,
                flags: IpvlanFlags::Bridge
            }
        );
        assert_eq!(
            ipv(&[("mode", json!("l3s")), ("ipvlanFlags", json!("private"))]).unwrap(),
            LinkKind::Ipvlan {
                mode: IpvlanMode::L3s,
                flags: IpvlanFlags::Private
            }
        );
        assert_eq!(
            ipv(&[("mode", json!("l3")), ("ipvlanFlags", json!("vepa"))]).unwrap(),
            LinkKind::Ipvlan {
                mode: IpvlanMode::L3,
                flags: IpvlanFlags::Vepa
            }
        );
        assert_eq!(
            parse(with_all(&[
                ("linkType", json!("macvlan")),
                ("mode", json!("vepa")),
                ("bcqueuelen", json!(100))
            ]))
            .unwrap()
            .link,
            LinkKind::Macvlan {
                mode: MacvlanMode::Vepa,
                bcqueuelen: Some(100)
            }
        );
        // Empty strings mean the default, as for mode before.
        assert_eq!(
            parse(with_all(&[("linkType", json!("")), ("mode", json!(""))]))
                .unwrap()
                .link,
            LinkKind::default()
        );
    }

    #[test]
    fn probe_values() {
        let p = |v: Value| parse(with("probe", v)).map(|c| c.probe);
        assert_eq!(
            p(json!({})).unwrap(),
            Some(ProbeConfig {
                timeout: Duration::from_millis(100),
                attempts: 3,
                max_quarantined: 32,
            })
        );
        assert_eq!(
            p(json!({"timeoutMs": 250, "attempts": 1, "maxQuarantined": 0})).unwrap(),
            Some(ProbeConfig {
                timeout: Duration::from_millis(250),
                attempts: 1,
                max_quarantined: 0,
            })
        );
        // The whole probe may take 30 s: 10000 x 3 is the most with 3 attempts.
        assert_eq!(
            p(json!({"timeoutMs": 10000, "attempts": 3}))
                .unwrap()
                .unwrap()
                .attempts,
            3
        );
        assert_eq!(p(Value::Null).unwrap(), None);
        for (v, key) in [
            (json!({"timeoutMs": 0}), "probe.timeoutMs"),
            (json!({"timeoutMs": 10001}), "probe.timeoutMs"),
            (json!({"timeoutMs": -1}), "probe.timeoutMs"),
            (json!({"timeoutMs": "100"}), "probe.timeoutMs"),
            (json!({"timeoutMs": 1.5}), "probe.timeoutMs"),
            (json!({"attempts": 0}), "probe.attempts"),
            (json!({"attempts": 17}), "probe.attempts"),
            (json!({"maxQuarantined": 4097}), "probe.maxQuarantined"),
            (json!({"maxQuarantined": -1}), "probe.maxQuarantined"),
            // Unknown keys (a misspelling must not mean the default).
            (json!({"timeoutMS": 50}), "probe.timeoutMS"),
            (json!({"timeoutMs": 50, "retries": 2}), "probe.retries"),
            (json!({"a\nb": 1}), "probe.a\\nb"),
            // More than 30 s in all (10 s x 16 would be 160 s).
            (json!({"timeoutMs": 10000, "attempts": 16}), "probe"),
            (json!({"timeoutMs": 2001, "attempts": 15}), "probe"),
            (json!(true), "probe"),
            (json!(100), "probe"),
        ] {
            let e = p(v.clone()).unwrap_err();
            assert_eq!(e.code, 7, "{v}: {e:?}");
            assert!(e.msg.starts_with(&format!("{key}: ")), "{v}: {}", e.msg);
        }
        let e = p(json!({"timeoutMs": 0})).unwrap_err();
        assert!(e.msg.contains("expected 1 to 10000"), "{}", e.msg);
        let e = p(json!({"retries": 2})).unwrap_err();
        assert_eq!(
            e.msg,
            "probe.retries: unknown key: expected timeoutMs, attempts, maxQuarantined"
        );
        let e = p(json!({"timeoutMs": 10000, "attempts": 16})).unwrap_err();
        assert!(
            e.msg.starts_with(
                "probe: timeoutMs 10000 x attempts 16 is 160000 ms, more than the 30000 ms"
            ),
            "{}",
            e.msg
        );
    }

    /// Every combination the link types, macFromIP, static MACs and probe
    /// do not allow: code 7, the message starting with the key to change.
    #[test]
    fn refused_combinations_are_code_7_naming_the_key() {
        let ipvlan = ("linkType", json!("ipvlan"));
        let mac = ("mac", json!("02:00:00:00:00:01"));
        let rt_mac = ("runtimeConfig", json!({"mac": "02:00:00:00:00:02"}));
        let from_ip = ("macFromIP", json!(true));
        let probe = ("probe", json!({"timeoutMs": 50}));
        let v6_only = (
            "ipam",
            json!({"type": "mactrunk-ipam", "subnet": "fd00::/120"}),
        );
        type Case<'a> = (Vec<(&'a str, Value)>, &'a str, &'a str);
        let cases: Vec<Case> = vec![
            (vec![ipvlan.clone(), mac.clone()], "mac", "ipvlan"),
            (
                vec![ipvlan.clone(), rt_mac.clone()],
                "runtimeConfig.mac",
                "ipvlan",
            ),
            (vec![ipvlan.clone(), from_ip.clone()], "macFromIP", "ipvlan"),
            (
                vec![ipvlan.clone(), from_ip.clone(), mac.clone()],
                "macFromIP",
                "ipvlan",
            ),
            (
                vec![from_ip.clone(), mac.clone()],
                "macFromIP",
                "mac is set",
            ),
            (
                vec![from_ip.clone(), rt_mac.clone()],
                "macFromIP",
                "runtimeConfig.mac is set",
            ),
            (
                vec![from_ip.clone(), ("mode", json!("passthru"))],
                "macFromIP",
                "passthru",
            ),
            (vec![ipvlan.clone(), probe.clone()], "probe", "macvlan"),
            (
                vec![probe.clone(), ("mode", json!("source"))],
                "probe",
                "mode source",
            ),
            (
                vec![probe.clone(), ("ipam", json!({}))],
                "probe",
                "IPv4 addresses (IPv6 has its own check: ipv6Dad \"wait\"), and ipam is empty",
            ),
            (
                vec![probe.clone(), v6_only.clone()],
                "probe",
                "IPv6 range sets only (ipam.subnet: fd00::",
            ),
            (
                vec![from_ip.clone(), ("ipam", json!({}))],
                "macFromIP",
                "needs an IPv4 address to derive the MAC from, and ipam is empty",
            ),
            (
                vec![from_ip.clone(), v6_only.clone()],
                "macFromIP",
                "IPv6 range sets only",
            ),
            (
                vec![from_ip.clone(), probe.clone(), v6_only.clone()],
                "macFromIP",
                "IPv6 range sets only",
            ),
            (
                vec![ipvlan.clone(), ("mode", json!("bridge"))],
                "mode",
                "ipvlanFlags",
            ),
            (
                vec![ipvlan.clone(), ("mode", json!("l4"))],
                "mode",
                "l2, l3 or l3s",
            ),
            (
                vec![ipvlan.clone(), ("ipvlanFlags", json!("l2"))],
                "ipvlanFlags",
                "bridge, private or vepa",
            ),
            (
                vec![ipvlan.clone(), ("bcqueuelen", json!(10))],
                "bcqueuelen",
                "macvlan",
            ),
            (vec![("mode", json!("l3"))], "mode", "linkType ipvlan"),
            (
                vec![("ipvlanFlags", json!("private"))],
                "ipvlanFlags",
                "linkType ipvlan",
            ),
            (vec![("linkType", json!("macvtap"))], "linkType", "macvlan"),
            (vec![("linkType", json!(1))], "linkType", "string"),
            (
                vec![("macFromIP", json!("yes"))],
                "macFromIP",
                "true or false",
            ),
        ];
        for (pairs, key, needle) in cases {
            let e = parse(with_all(&pairs)).unwrap_err();
            assert_eq!(e.code, 7, "{pairs:?}: {e:?}");
            assert!(
                e.msg.starts_with(&format!("{key}: ")),
                "{pairs:?}: {}",
                e.msg
            );
            assert!(e.msg.contains(needle), "{pairs:?}: {}", e.msg);
        }
        // CNI_ARGS MAC= counts as a static MAC too.
        let args = CniArgs {
            mac: Some("02:00:00:00:00:03".into()),
            ..Default::default()
        };
        for (pairs, want) in [
            (
                vec![from_ip.clone()],
                "macFromIP: cannot be combined with a static MAC (CNI_ARGS MAC is set)",
            ),
            (vec![ipvlan.clone()], "CNI_ARGS MAC: an ipvlan link has"),
        ] {
            let e = PluginConfig::parse(&with_all(&pairs), &args).unwrap_err();
            assert_eq!(e.code, 7);
            assert!(e.msg.starts_with(want), "{}", e.msg);
        }
        // What is allowed: macFromIP on a macvlan, probe with a delegated IPAM
        // (its addresses are known only after it ran), probe with macFromIP,
        // either with dual stack or with an IPv4 range from runtimeConfig.
        let c = parse(with_all(&[from_ip.clone(), probe.clone()])).unwrap();
        assert!(c.mac_from_ip && c.probe.is_some());
        for ipam in [
            json!({"type": "host-local"}),
            json!({"type": "mactrunk-ipam", "ranges": [[{"subnet": "fd00::/120"}], [{"subnet": "10.0.0.0/24"}]]}),
        ] {
            parse(with_all(&[from_ip.clone(), probe.clone(), ("ipam", ipam)])).unwrap();
        }
        parse(with_all(&[
            probe.clone(),
            v6_only.clone(),
            (
                "runtimeConfig",
                json!({"ipRanges": [[{"subnet": "10.1.0.0/24"}]]}),
            ),
        ]))
        .unwrap();
    }

    #[test]
    fn vlan_protocol() {
        let mut v = with("vlan", json!(50));
        assert_eq!(
            parse(v.clone()).unwrap().vlan.unwrap().protocol,
            VlanProtocol::Dot1Q
        );
        v["vlanProtocol"] = json!("802.1ad");
        assert_eq!(
            parse(v.clone()).unwrap().vlan,
            Some(VlanConfig {
                id: 50,
                protocol: VlanProtocol::Dot1Ad
            })
        );
        v["vlanProtocol"] = json!("isl");
        assert!(parse(v).unwrap_err().msg.starts_with("vlanProtocol"));
    }

    #[test]
    fn ipam_kinds() {
        assert_eq!(parse(with("ipam", json!({}))).unwrap().ipam, IpamKind::None);
        assert_eq!(
            parse(with("ipam", json!({"type": "host-local"})))
                .unwrap()
                .ipam,
            IpamKind::Delegate("host-local".into())
        );
        for bad in ["../../bin/sh", "/bin/sh", "a/b"] {
            let e = parse(with("ipam", json!({"type": bad}))).unwrap_err();
            assert!(e.msg.starts_with("ipam.type"), "{}", e.msg);
        }
        let e = parse(with("ipam", json!({"subnet": "10.0.0.0/24"}))).unwrap_err();
        assert!(e.msg.starts_with("ipam.type"));
    }

    #[test]
    fn mac_priority() {
        let mut v = with("mac", json!("02:00:00:00:00:01"));
        assert_eq!(parse(v.clone()).unwrap().mac, Some([2, 0, 0, 0, 0, 1]));
        let args = CniArgs {
            mac: Some("02:00:00:00:00:02".into()),
            ..Default::default()
        };
        assert_eq!(
            PluginConfig::parse(&v, &args).unwrap().mac,
            Some([2, 0, 0, 0, 0, 2])
        );
        v["runtimeConfig"] = json!({"mac": "02:00:00:00:00:03"});
        assert_eq!(
            PluginConfig::parse(&v, &args).unwrap().mac,
            Some([2, 0, 0, 0, 0, 3])
        );
        v["runtimeConfig"] = json!({"mac": "nope"});
        assert!(
            PluginConfig::parse(&v, &args)
                .unwrap_err()
                .msg
                .starts_with("runtimeConfig.mac")
        );
        let args = CniArgs {
            mac: Some("ff:ff:ff:ff:ff:ff".into()),
            ..Default::default()
        };
        assert!(
            PluginConfig::parse(&base(), &args)
                .unwrap_err()
                .msg
                .starts_with("CNI_ARGS MAC")
        );
    }

    #[test]
    fn unknown_keys_are_ignored_and_prev_result_parsed() {
        let mut v = with("nerdctlID", json!("x"));
        v["cni.dev/attachments"] = json!([]);
        v["prevResult"] = json!({"cniVersion": "1.0.0", "interfaces": [{"name": "eth0"}],
                                 "ips": [{"address": "10.0.0.2/24", "interface": 0}]});
        let c = parse(v).unwrap();
        assert_eq!(c.prev_result.unwrap().ips.len(), 1);
        let e = parse(with("prevResult", json!({"ips": "x"}))).unwrap_err();
        assert_eq!(e.code, 6);
    }

    #[test]
    fn not_an_object() {
        assert_eq!(
            PluginConfig::parse(&json!([1]), &CniArgs::default())
                .unwrap_err()
                .code,
            6
        );
    }
    #[test]
    fn host_shim_forms() {
        let shim = |v: Value| parse(with("hostShim", v)).map(|c| c.host_shim);
        assert_eq!(parse(base()).unwrap().host_shim, None);
        for off in [Value::Null, json!(false)] {
            assert_eq!(shim(off).unwrap(), None);
        }
        assert_eq!(shim(json!(true)).unwrap(), Some(HostShimConfig::default()));
        assert_eq!(shim(json!({})).unwrap(), Some(HostShimConfig::default()));
        assert_eq!(
            shim(json!({"src": ["192.168.50.5", "fd00::5"]}))
                .unwrap()
                .unwrap()
                .src,
            vec![
                "192.168.50.5".parse::<std::net::IpAddr>().unwrap(),
                "fd00::5".parse().unwrap()
            ]
        );
        assert_eq!(
            shim(json!({"src": "10.0.0.5"})).unwrap().unwrap().src.len(),
            1,
            "one address without a list"
        );
        for (v, key, needle) in [
            (json!("yes"), "hostShim", "got a string"),
            (json!(1), "hostShim", "got a number"),
            (
                json!({"src": ["10.0.0.5", "10.0.0.6"]}),
                "hostShim.src[1]",
                "at most one per family",
            ),
            (
                json!({"src": ["nope"]}),
                "hostShim.src[0]",
                "not an IP address",
            ),
            (json!({"src": [5]}), "hostShim.src[0]", "got a number"),
            (json!({"src": "127.0.0.1"}), "hostShim.src[0]", "cannot be"),
            (json!({"src": "0.0.0.0"}), "hostShim.src[0]", "cannot be"),
        ] {
            let e = shim(v.clone()).unwrap_err();
            assert_eq!(e.code, code::INVALID_CONFIG, "{v}");
            assert!(e.msg.starts_with(&format!("{key}: ")), "{v}: {}", e.msg);
            assert!(e.msg.contains(needle), "{v}: {}", e.msg);
        }
    }

    #[test]
    fn host_shim_refused_where_it_cannot_work() {
        let on = |extra: Value| {
            let mut v = with("hostShim", json!(true));
            if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
                o.extend(e.clone());
            }
            parse(v)
        };
        on(json!({})).unwrap();
        on(json!({"mode": "bridge", "vlan": 50, "macFromIP": true, "probe": {}})).unwrap();
        on(json!({"ipam": {"type": "host-local", "subnet": "10.0.0.0/24"}})).unwrap();
        for (extra, needle) in [
            (json!({"linkType": "ipvlan"}), "linkType macvlan"),
            (json!({"mode": "private"}), "mode bridge, not private"),
            (json!({"mode": "vepa"}), "hairpin"),
            (json!({"mode": "passthru"}), "not passthru"),
            (json!({"linkInContainer": true}), "linkInContainer"),
            (json!({"ipam": {}}), "needs an IPAM"),
        ] {
            let e = on(extra.clone()).unwrap_err();
            assert_eq!(e.code, code::INVALID_CONFIG, "{extra}");
            assert!(e.msg.starts_with("hostShim: "), "{extra}: {}", e.msg);
            assert!(e.msg.contains(needle), "{extra}: {}", e.msg);
        }
    }
}
