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
}

/// `probe.timeoutMs`: default, and the accepted range.
pub const PROBE_TIMEOUT_MS: (u64, std::ops::RangeInclusive<u64>) = (100, 1..=10_000);
/// `probe.attempts`: default, and the accepted range.
pub const PROBE_ATTEMPTS: (u64, std::ops::RangeInclusive<u64>) = (3, 1..=16);

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
            if ipam == IpamKind::None {
                return Err(CniError::config(
                    "probe",
                    "needs an IPAM that gives IPv4 addresses (ipam is empty: L2 only, nothing to probe)",
                ));
            }
        }
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

/// `probe`: absent or null (no probe), or an object with `timeoutMs` and
/// `attempts`, each with a default.
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
    Ok(Some(ProbeConfig {
        timeout: Duration::from_millis(field("timeoutMs", PROBE_TIMEOUT_MS)?),
        attempts: field("attempts", PROBE_ATTEMPTS)? as u32,
    }))
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
                attempts: 3
            })
        );
        assert_eq!(
            p(json!({"timeoutMs": 250, "attempts": 1})).unwrap(),
            Some(ProbeConfig {
                timeout: Duration::from_millis(250),
                attempts: 1
            })
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
            (json!(true), "probe"),
            (json!(100), "probe"),
        ] {
            let e = p(v.clone()).unwrap_err();
            assert_eq!(e.code, 7, "{v}: {e:?}");
            assert!(e.msg.starts_with(&format!("{key}: ")), "{v}: {}", e.msg);
        }
        let e = p(json!({"timeoutMs": 0})).unwrap_err();
        assert!(e.msg.contains("expected 1 to 10000"), "{}", e.msg);
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
            (vec![probe.clone(), ("ipam", json!({}))], "probe", "IPv4"),
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
        for pairs in [vec![from_ip.clone()], vec![ipvlan.clone()]] {
            let e = PluginConfig::parse(&with_all(&pairs), &args).unwrap_err();
            assert_eq!(e.code, 7);
            assert!(
                e.msg.contains("CNI_ARGS MAC") || e.msg.starts_with("CNI_ARGS MAC"),
                "{}",
                e.msg
            );
        }
        // What is allowed: macFromIP on a macvlan, probe with a delegated IPAM,
        // probe with macFromIP.
        let c = parse(with_all(&[from_ip.clone(), probe.clone()])).unwrap();
        assert!(c.mac_from_ip && c.probe.is_some());
        parse(with_all(&[
            probe.clone(),
            ("ipam", json!({"type": "host-local"})),
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
}
