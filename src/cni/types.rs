//! The CNI result in its newest (1.1) form, conversion to every older result
//! format, and parsing of a `prevResult` written in any of them.

use std::net::IpAddr;

use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::error::{CniError, code};
use super::version::Version;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
    #[serde(
        default,
        rename = "socketPath",
        skip_serializing_if = "Option::is_none"
    )]
    pub socket_path: Option<String>,
    #[serde(default, rename = "pciID", skip_serializing_if = "Option::is_none")]
    pub pci_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpConfig {
    /// Address with the prefix length of its subnet, e.g. 192.0.2.10/24.
    pub address: IpNetwork,
    pub gateway: Option<IpAddr>,
    /// Index into `interfaces`.
    pub interface: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub dst: IpNetwork,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advmss: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<u8>,
}

impl Route {
    /// Keys a 0.x result may carry: only dst and gw.
    fn to_json_legacy(&self) -> Value {
        let mut r = json!({ "dst": self.dst.to_string() });
        if let Some(gw) = self.gw {
            r["gw"] = gw.to_string().into();
        }
        r
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Dns {
    pub fn is_empty(&self) -> bool {
        self.nameservers.is_empty()
            && self.domain.is_none()
            && self.search.is_empty()
            && self.options.is_empty()
    }

    /// Fill every field `self` leaves empty from `other` (self wins per field).
    pub fn merged_over(mut self, other: &Dns) -> Dns {
        if self.nameservers.is_empty() {
            self.nameservers = other.nameservers.clone();
        }
        if self.domain.is_none() {
            self.domain = other.domain.clone();
        }
        if self.search.is_empty() {
            self.search = other.search.clone();
        }
        if self.options.is_empty() {
            self.options = other.options.clone();
        }
        self
    }
}

/// A CNI result (ADD output, prevResult) in the 1.1 model.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniOutput {
    pub interfaces: Vec<Interface>,
    pub ips: Vec<IpConfig>,
    pub routes: Vec<Route>,
    pub dns: Dns,
}

impl CniOutput {
    /// Render in the given result version.
    pub fn to_json(&self, version: Version) -> Value {
        if version.is_legacy_result() {
            return self.to_json_020(version);
        }
        let mut out = Map::new();
        out.insert("cniVersion".into(), version.as_str().into());
        if !self.interfaces.is_empty() {
            let ifaces: Vec<Value> = self
                .interfaces
                .iter()
                .map(|i| {
                    let mut i = i.clone();
                    if !version.has_interface_mtu() {
                        i.mtu = None;
                        i.socket_path = None;
                        i.pci_id = None;
                    }
                    serde_json::to_value(i).unwrap_or(Value::Null)
                })
                .collect();
            out.insert("interfaces".into(), ifaces.into());
        }
        if !self.ips.is_empty() {
            let ips: Vec<Value> = self
                .ips
                .iter()
                .map(|ip| {
                    let mut v = Map::new();
                    if version.ips_carry_version() {
                        let fam = if ip.address.is_ipv4() { "4" } else { "6" };
                        v.insert("version".into(), fam.into());
                    }
                    if let Some(idx) = ip.interface {
                        v.insert("interface".into(), idx.into());
                    }
                    v.insert("address".into(), ip.address.to_string().into());
                    if let Some(gw) = ip.gateway {
                        v.insert("gateway".into(), gw.to_string().into());
                    }
                    Value::Object(v)
                })
                .collect();
            out.insert("ips".into(), ips.into());
        }
        if !self.routes.is_empty() {
            let routes: Vec<Value> = self
                .routes
                .iter()
                .map(|r| {
                    if version.has_route_extras() {
                        serde_json::to_value(r).unwrap_or(Value::Null)
                    } else {
                        r.to_json_legacy()
                    }
                })
                .collect();
            out.insert("routes".into(), routes.into());
        }
        out.insert(
            "dns".into(),
            serde_json::to_value(&self.dns).unwrap_or(Value::Null),
        );
        Value::Object(out)
    }

    /// 0.1.0 / 0.2.0: `{ip4:{ip,gateway,routes}, ip6:{...}, dns}`, first address per family.
    /// Can `version` express this result? 0.1.0/0.2.0 results hold one IPv4
    /// and one IPv6 address (`ip4`/`ip6`); more would be dropped silently, so
    /// they are refused (code 1), as the reference host-local refuses them.
    pub fn check_expressible(&self, version: Version) -> Result<(), CniError> {
        if !version.is_legacy_result() {
            return Ok(());
        }
        for (fam, v4) in [("IPv4", true), ("IPv6", false)] {
            let n = self
                .ips
                .iter()
                .filter(|ip| ip.address.is_ipv4() == v4)
                .count();
            if n > 1 {
                return Err(legacy_version_error(
                    version,
                    fam,
                    n,
                    "addresses in the result",
                ));
            }
        }
        Ok(())
    }

    fn to_json_020(&self, version: Version) -> Value {
        let mut out = Map::new();
        out.insert("cniVersion".into(), version.as_str().into());
        for (key, v4) in [("ip4", true), ("ip6", false)] {
            let Some(ip) = self.ips.iter().find(|ip| ip.address.is_ipv4() == v4) else {
                continue;
            };
            let mut fam = Map::new();
            fam.insert("ip".into(), ip.address.to_string().into());
            if let Some(gw) = ip.gateway {
                fam.insert("gateway".into(), gw.to_string().into());
            }
            let routes: Vec<Value> = self
                .routes
                .iter()
                .filter(|r| r.dst.is_ipv4() == v4)
                .map(Route::to_json_legacy)
                .collect();
            if !routes.is_empty() {
                fam.insert("routes".into(), routes.into());
            }
            out.insert(key.into(), Value::Object(fam));
        }
        out.insert(
            "dns".into(),
            serde_json::to_value(&self.dns).unwrap_or(Value::Null),
        );
        Value::Object(out)
    }

    /// Parse a result (e.g. `prevResult`, or a delegated IPAM's stdout) written in any version.
    /// `default_version` applies when the document has no `cniVersion`.
    pub fn from_json(value: &Value, default_version: Version) -> Result<CniOutput, CniError> {
        let bad = |what: String| CniError::new(code::DECODE, format!("prevResult: {what}"));
        let obj = value
            .as_object()
            .ok_or_else(|| bad("not a JSON object".into()))?;
        let version = match obj.get("cniVersion") {
            Some(Value::String(s)) => Version::parse(s)?,
            None => default_version,
            Some(_) => return Err(bad("cniVersion is not a string".into())),
        };
        let dns: Dns = match obj.get("dns") {
            None | Some(Value::Null) => Dns::default(),
            Some(d) => serde_json::from_value(d.clone()).map_err(|e| bad(format!("dns: {e}")))?,
        };
        if version.is_legacy_result() {
            let mut out = CniOutput {
                dns,
                ..Default::default()
            };
            for key in ["ip4", "ip6"] {
                let Some(fam) = obj.get(key) else { continue };
                let legacy: LegacyIp =
                    serde_json::from_value(fam.clone()).map_err(|e| bad(format!("{key}: {e}")))?;
                out.ips.push(IpConfig {
                    address: legacy.ip,
                    gateway: legacy.gateway,
                    interface: None,
                });
                out.routes.extend(legacy.routes);
            }
            return Ok(out);
        }
        let raw: RawResult =
            serde_json::from_value(value.clone()).map_err(|e| bad(e.to_string()))?;
        Ok(CniOutput {
            interfaces: raw.interfaces,
            ips: raw
                .ips
                .into_iter()
                .map(|ip| IpConfig {
                    address: ip.address,
                    gateway: ip.gateway,
                    interface: ip.interface,
                })
                .collect(),
            routes: raw.routes,
            dns,
        })
    }
}

#[derive(Deserialize)]
struct LegacyIp {
    ip: IpNetwork,
    #[serde(default)]
    gateway: Option<IpAddr>,
    #[serde(default)]
    routes: Vec<Route>,
}

#[derive(Deserialize)]
struct RawIp {
    address: IpNetwork,
    #[serde(default)]
    gateway: Option<IpAddr>,
    #[serde(default)]
    interface: Option<usize>,
}

#[derive(Deserialize)]
struct RawResult {
    #[serde(default)]
    interfaces: Vec<Interface>,
    #[serde(default)]
    ips: Vec<RawIp>,
    #[serde(default)]
    routes: Vec<Route>,
}

/// The error for a 0.1.0/0.2.0 config that needs more than one address of a
/// family: `n` `what` (range sets, addresses in the result) of family `fam`.
pub fn legacy_version_error(version: Version, fam: &str, n: usize, what: &str) -> CniError {
    CniError::new(
        code::INCOMPATIBLE_VERSION,
        format!(
            "cniVersion: {version} results hold one IPv4 and one IPv6 address, but there are {n} {fam} {what}; use cniVersion 0.3.0 or later"
        ),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn legacy_versions_hold_one_address_per_family() {
        let two_v4 = CniOutput::from_json(
            &json!({"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.2/24"}, {"address": "10.1.0.2/24"}, {"address": "fd00::2/64"}]}),
            Version::V1_0_0,
        )
        .unwrap();
        for v in [Version::V0_1_0, Version::V0_2_0] {
            let e = two_v4.check_expressible(v).unwrap_err();
            assert_eq!(e.code, code::INCOMPATIBLE_VERSION);
            assert!(
                e.msg.starts_with("cniVersion: ") && e.msg.contains("2 IPv4"),
                "{}",
                e.msg
            );
        }
        two_v4.check_expressible(Version::V0_3_0).unwrap();
        let mut one_each = two_v4.clone();
        one_each.ips.remove(1);
        one_each.check_expressible(Version::V0_2_0).unwrap();
    }

    use super::*;

    fn sample() -> CniOutput {
        CniOutput {
            interfaces: vec![Interface {
                name: "eth0".into(),
                mac: Some("02:00:00:00:00:01".into()),
                mtu: Some(1500),
                sandbox: Some("/run/netns/c1".into()),
                ..Default::default()
            }],
            ips: vec![
                IpConfig {
                    address: "10.0.0.2/24".parse().unwrap(),
                    gateway: Some("10.0.0.1".parse().unwrap()),
                    interface: Some(0),
                },
                IpConfig {
                    address: "10.0.0.3/24".parse().unwrap(),
                    gateway: None,
                    interface: Some(0),
                },
                IpConfig {
                    address: "fd00::2/64".parse().unwrap(),
                    gateway: Some("fd00::1".parse().unwrap()),
                    interface: Some(0),
                },
            ],
            routes: vec![
                Route {
                    dst: "0.0.0.0/0".parse().unwrap(),
                    gw: Some("10.0.0.1".parse().unwrap()),
                    mtu: None,
                    advmss: None,
                    priority: Some(100),
                    table: None,
                    scope: None,
                },
                Route {
                    dst: "::/0".parse().unwrap(),
                    gw: None,
                    mtu: None,
                    advmss: None,
                    priority: None,
                    table: None,
                    scope: None,
                },
            ],
            dns: Dns {
                nameservers: vec!["10.0.0.53".into()],
                ..Default::default()
            },
        }
    }

    fn golden(v: Version) -> Value {
        match v {
            Version::V1_1_0 => json!({"cniVersion":"1.1.0",
                "interfaces":[{"name":"eth0","mac":"02:00:00:00:00:01","mtu":1500,"sandbox":"/run/netns/c1"}],
                "ips":[{"interface":0,"address":"10.0.0.2/24","gateway":"10.0.0.1"},
                       {"interface":0,"address":"10.0.0.3/24"},
                       {"interface":0,"address":"fd00::2/64","gateway":"fd00::1"}],
                "routes":[{"dst":"0.0.0.0/0","gw":"10.0.0.1","priority":100},{"dst":"::/0"}],
                "dns":{"nameservers":["10.0.0.53"]}}),
            Version::V1_0_0 => json!({"cniVersion":"1.0.0",
                "interfaces":[{"name":"eth0","mac":"02:00:00:00:00:01","sandbox":"/run/netns/c1"}],
                "ips":[{"interface":0,"address":"10.0.0.2/24","gateway":"10.0.0.1"},
                       {"interface":0,"address":"10.0.0.3/24"},
                       {"interface":0,"address":"fd00::2/64","gateway":"fd00::1"}],
                "routes":[{"dst":"0.0.0.0/0","gw":"10.0.0.1"},{"dst":"::/0"}],
                "dns":{"nameservers":["10.0.0.53"]}}),
            Version::V0_4_0 | Version::V0_3_1 | Version::V0_3_0 => json!({"cniVersion": v.as_str(),
                "interfaces":[{"name":"eth0","mac":"02:00:00:00:00:01","sandbox":"/run/netns/c1"}],
                "ips":[{"version":"4","interface":0,"address":"10.0.0.2/24","gateway":"10.0.0.1"},
                       {"version":"4","interface":0,"address":"10.0.0.3/24"},
                       {"version":"6","interface":0,"address":"fd00::2/64","gateway":"fd00::1"}],
                "routes":[{"dst":"0.0.0.0/0","gw":"10.0.0.1"},{"dst":"::/0"}],
                "dns":{"nameservers":["10.0.0.53"]}}),
            _ => json!({"cniVersion": v.as_str(),
                "ip4":{"ip":"10.0.0.2/24","gateway":"10.0.0.1","routes":[{"dst":"0.0.0.0/0","gw":"10.0.0.1"}]},
                "ip6":{"ip":"fd00::2/64","gateway":"fd00::1","routes":[{"dst":"::/0"}]},
                "dns":{"nameservers":["10.0.0.53"]}}),
        }
    }

    #[test]
    fn every_version_matches_golden_json() {
        for s in super::super::version::SUPPORTED {
            let v = Version::parse(s).unwrap();
            assert_eq!(sample().to_json(v), golden(v), "version {s}");
        }
    }

    #[test]
    fn results_round_trip_through_prev_result_parsing() {
        for s in ["0.3.0", "0.3.1", "0.4.0", "1.0.0"] {
            let v = Version::parse(s).unwrap();
            let back = CniOutput::from_json(&sample().to_json(v), Version::V0_1_0).unwrap();
            assert_eq!(back.ips, sample().ips, "{s}");
            assert_eq!(back.interfaces[0].name, "eth0");
        }
        let back =
            CniOutput::from_json(&sample().to_json(Version::V1_1_0), Version::V0_1_0).unwrap();
        assert_eq!(back, sample());
        let legacy = CniOutput::from_json(&golden(Version::V0_2_0), Version::V0_2_0).unwrap();
        assert_eq!(legacy.ips.len(), 2);
        assert_eq!(legacy.routes.len(), 2);
    }

    #[test]
    fn bad_prev_results_are_decode_errors() {
        for bad in [
            json!([]),
            json!({"ips": [{"address": "nope"}]}),
            json!({"cniVersion": "7"}),
            json!({"ip4": {"ip": 5}, "cniVersion": "0.2.0"}),
            json!({"dns": 3}),
        ] {
            let e = CniOutput::from_json(&bad, Version::V1_0_0).unwrap_err();
            assert!(e.code == 6 || e.code == 1, "{bad}: {e}");
        }
    }

    #[test]
    fn dns_merge_prefers_self_per_field() {
        let conf = Dns {
            nameservers: vec!["1.1.1.1".into()],
            ..Default::default()
        };
        let ipam = Dns {
            nameservers: vec!["9.9.9.9".into()],
            domain: Some("x".into()),
            ..Default::default()
        };
        let m = conf.merged_over(&ipam);
        assert_eq!(m.nameservers, vec!["1.1.1.1"]);
        assert_eq!(m.domain.as_deref(), Some("x"));
    }
}
