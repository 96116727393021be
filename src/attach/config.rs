//! The main plugin's network configuration: JSON in, a validated
//! [`PluginConfig`] out. Pure: it never asks the kernel anything (whether
//! `master` exists is the plugin's question, at ADD time).

use serde_json::{Map, Value};

use crate::cni::env::CniArgs;
use crate::cni::netconf::{
    IpamKind, opt_bool, opt_string, opt_u64, parse_ipam_kind, parse_name, parse_version, type_name,
};
use crate::cni::{CniError, CniOutput, Dns, Version, code};
use crate::sys::netlink::{MacvlanMode, VLAN_IDS, VlanProtocol};

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
    pub mode: MacvlanMode,
    /// None: kernel default (the parent's MTU).
    pub mtu: Option<u32>,
    pub mac: Option<[u8; 6]>,
    pub link_in_container: bool,
    pub bcqueuelen: Option<u32>,
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
        let mode = match opt_string(obj, "mode")?.as_deref() {
            None | Some("") => MacvlanMode::Bridge,
            Some(m) => m.parse().map_err(|_| {
                CniError::config(
                    "mode",
                    format!("unknown macvlan mode {m:?}: expected bridge, private, vepa, passthru or source"),
                )
            })?,
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
        let mac = effective_mac(obj, args)?;
        let link_in_container = opt_bool(obj, "linkInContainer")?.unwrap_or(false);
        let bcqueuelen = opt_u64(obj, "bcqueuelen", u32::MAX as u64)?.map(|v| v as u32);
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
        let ipam = parse_ipam_kind(obj)?;
        let prev_result = match obj.get("prevResult") {
            None | Some(Value::Null) => None,
            Some(v) => Some(CniOutput::from_json(v, cni_version)?),
        };
        Ok(PluginConfig {
            cni_version,
            name,
            master,
            vlan,
            mode,
            mtu,
            mac,
            link_in_container,
            bcqueuelen,
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

/// MAC priority: `runtimeConfig.mac` > `CNI_ARGS MAC=` > config `mac`.
fn effective_mac(obj: &Map<String, Value>, args: &CniArgs) -> Result<Option<[u8; 6]>, CniError> {
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
            .map(Some)
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
        assert_eq!(c.mode, MacvlanMode::Bridge);
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
