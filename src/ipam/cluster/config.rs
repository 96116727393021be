//! The `ipam.cluster` key: where etcd is and how this node takes part. Every
//! bad value is code 7 naming its key (`ipam.cluster.blockSize`, ...).

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::cni::CniError;

pub const DEFAULT_TIMEOUT_MS: u64 = 2000;
pub const DEFAULT_PREFIX: &str = "/mactrunk/v1";
/// Default block prefix lengths (see [`ClusterConfig::block_len`]).
pub const DEFAULT_BLOCK_V4: u8 = 28;
pub const DEFAULT_BLOCK_V6: u8 = 122;
const MAX_NODE_NAME: usize = 253;

/// Paths of the etcd client TLS material (read by the plugin, sent as PEM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsPaths {
    pub ca: PathBuf,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    pub endpoints: Vec<String>,
    pub node: String,
    /// `blockSize` as configured (None: the default rule).
    pub block_v4: Option<u8>,
    pub block_v6: Option<u8>,
    pub timeout: Duration,
    /// Key prefix, without a trailing '/'.
    pub prefix: String,
    pub tls: Option<TlsPaths>,
    /// The whole network config (set by `IpamConfig::from_netconf`): the
    /// etcd helper re-reads the IPAM config from it.
    /// Shared, not copied: the owned-block fast path clones configs.
    pub netconf: std::sync::Arc<Value>,
}

impl ClusterConfig {
    /// The block prefix length for a subnet of `subnet_len` bits: the
    /// configured one, else 28 (IPv4) / 122 (IPv6), but for small subnets
    /// `subnet_len + 2` capped at 30 / 126 when that is longer (a /27 gets
    /// /29 blocks, a /29 gets /30 blocks: at least 4 blocks where it can,
    /// so a VLAN's small subnet still spreads over a few nodes). Never
    /// shorter than the subnet itself (then the subnet is one block).
    pub fn block_len(&self, v4: bool, subnet_len: u8) -> u8 {
        let (conf, default, cap, max) = if v4 {
            (self.block_v4, DEFAULT_BLOCK_V4, 30, 32)
        } else {
            (self.block_v6, DEFAULT_BLOCK_V6, 126, 128)
        };
        let len = conf.unwrap_or_else(|| default.max(subnet_len.saturating_add(2).min(cap)));
        len.max(subnet_len).min(max)
    }

    /// The etcd key prefix of network `net`.
    pub fn net_prefix(&self, net: &str) -> String {
        format!("{}/networks/{net}/", self.prefix)
    }

    pub fn endpoints_text(&self) -> String {
        self.endpoints.join(", ")
    }

    /// Parse `ipam.cluster`; None when absent (local mode, no etcd at all).
    pub fn parse(ipam: &Map<String, Value>) -> Result<Option<ClusterConfig>, CniError> {
        let c = match ipam.get("cluster") {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Object(m)) => m,
            Some(_) => return Err(CniError::config("ipam.cluster", "expected an object")),
        };
        const KNOWN: [&str; 6] = [
            "etcdEndpoints",
            "nodeName",
            "blockSize",
            "timeoutMs",
            "prefix",
            "tls",
        ];
        if let Some(k) = c.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return Err(CniError::config(
                &format!("ipam.cluster.{k}"),
                format!("unknown key (known: {})", KNOWN.join(", ")),
            ));
        }
        let endpoints = endpoints(c.get("etcdEndpoints"))?;
        let node = match c.get("nodeName") {
            None | Some(Value::Null) => {
                let host = host_name().map_err(|e| {
                    CniError::config(
                        "ipam.cluster.nodeName",
                        format!("not set and the host name is unknown: {e}"),
                    )
                })?;
                if let Some(p) = node_name_problem(&host) {
                    return Err(CniError::config(
                        "ipam.cluster.nodeName",
                        format!("not set and the host name {host:?} is not usable: {p}"),
                    ));
                }
                host
            }
            Some(Value::String(s)) => {
                if let Some(p) = node_name_problem(s) {
                    return Err(CniError::config(
                        "ipam.cluster.nodeName",
                        format!("{:?} {p}", s.escape_debug().to_string()),
                    ));
                }
                s.clone()
            }
            Some(_) => {
                return Err(CniError::config(
                    "ipam.cluster.nodeName",
                    "expected a string",
                ));
            }
        };
        let (block_v4, block_v6) = block_size(c.get("blockSize"))?;
        let timeout = match c.get("timeoutMs") {
            None | Some(Value::Null) => Duration::from_millis(DEFAULT_TIMEOUT_MS),
            Some(v) => match v.as_u64() {
                Some(n) if (100..=60_000).contains(&n) => Duration::from_millis(n),
                _ => {
                    return Err(CniError::config(
                        "ipam.cluster.timeoutMs",
                        format!("{v} is not an integer from 100 to 60000 (milliseconds)"),
                    ));
                }
            },
        };
        let prefix = match c.get("prefix") {
            None | Some(Value::Null) => DEFAULT_PREFIX.to_string(),
            Some(Value::String(s)) => {
                if let Some(p) = prefix_problem(s) {
                    return Err(CniError::config(
                        "ipam.cluster.prefix",
                        format!("{:?} {p}", s.escape_debug().to_string()),
                    ));
                }
                s.trim_end_matches('/').to_string()
            }
            Some(_) => return Err(CniError::config("ipam.cluster.prefix", "expected a string")),
        };
        let tls = tls(c.get("tls"))?;
        if tls.is_some() && endpoints.iter().any(|e| e.starts_with("http://")) {
            return Err(CniError::config(
                "ipam.cluster.etcdEndpoints",
                "http:// endpoints with ipam.cluster.tls: use https:// for all of them",
            ));
        }
        Ok(Some(ClusterConfig {
            endpoints,
            node,
            block_v4,
            block_v6,
            timeout,
            prefix,
            tls,
            netconf: std::sync::Arc::new(Value::Null),
        }))
    }
}

fn endpoints(v: Option<&Value>) -> Result<Vec<String>, CniError> {
    const KEY: &str = "ipam.cluster.etcdEndpoints";
    let list = match v {
        Some(Value::Array(l)) if !l.is_empty() => l,
        Some(Value::Array(_)) => return Err(CniError::config(KEY, "empty: at least one URL")),
        None | Some(Value::Null) => return Err(CniError::config(KEY, "missing")),
        Some(_) => {
            return Err(CniError::config(
                KEY,
                "expected an array of URLs (http://host:port or https://host:port)",
            ));
        }
    };
    let mut out = Vec::with_capacity(list.len());
    for (i, e) in list.iter().enumerate() {
        let key = format!("{KEY}[{i}]");
        let Value::String(s) = e else {
            return Err(CniError::config(&key, "expected a string (a URL)"));
        };
        let rest = s
            .strip_prefix("http://")
            .or_else(|| s.strip_prefix("https://"));
        let ok = rest.is_some_and(|r| {
            let hostport = r.trim_end_matches('/');
            !hostport.is_empty()
                && !hostport.contains('/')
                && hostport
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-_:[]".contains(c))
        });
        if !ok || s.len() > 512 {
            return Err(CniError::config(
                &key,
                format!(
                    "{:?} is not an http:// or https:// URL of host:port",
                    s.escape_debug().to_string()
                ),
            ));
        }
        out.push(s.trim_end_matches('/').to_string());
    }
    Ok(out)
}

fn block_size(v: Option<&Value>) -> Result<(Option<u8>, Option<u8>), CniError> {
    const KEY: &str = "ipam.cluster.blockSize";
    let one = |v: &Value, key: &str, max: u64| -> Result<Option<u8>, CniError> {
        match v {
            Value::Null => Ok(None),
            _ => match v.as_u64() {
                Some(n) if (1..=max).contains(&n) => Ok(Some(n as u8)),
                _ => Err(CniError::config(
                    key,
                    format!("{v} is not a prefix length from 1 to {max}"),
                )),
            },
        }
    };
    match v {
        None | Some(Value::Null) => Ok((None, None)),
        // A plain number is the IPv4 block (the common case); IPv6 keeps its default.
        Some(n @ Value::Number(_)) => Ok((one(n, KEY, 32)?, None)),
        Some(Value::Object(m)) => {
            if let Some(k) = m.keys().find(|k| *k != "v4" && *k != "v6") {
                return Err(CniError::config(
                    &format!("{KEY}.{k}"),
                    "unknown key (known: v4, v6)",
                ));
            }
            let v4 = match m.get("v4") {
                Some(v) => one(v, &format!("{KEY}.v4"), 32)?,
                None => None,
            };
            let v6 = match m.get("v6") {
                Some(v) => one(v, &format!("{KEY}.v6"), 128)?,
                None => None,
            };
            Ok((v4, v6))
        }
        Some(_) => Err(CniError::config(
            KEY,
            "expected a prefix length (IPv4) or {\"v4\": N, \"v6\": M}",
        )),
    }
}

fn tls(v: Option<&Value>) -> Result<Option<TlsPaths>, CniError> {
    let m = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(m)) => m,
        Some(_) => {
            return Err(CniError::config(
                "ipam.cluster.tls",
                "expected an object {ca, cert, key}",
            ));
        }
    };
    if let Some(k) = m
        .keys()
        .find(|k| !["ca", "cert", "key"].contains(&k.as_str()))
    {
        return Err(CniError::config(
            &format!("ipam.cluster.tls.{k}"),
            "unknown key (known: ca, cert, key)",
        ));
    }
    let path = |f: &str| -> Result<Option<PathBuf>, CniError> {
        let key = format!("ipam.cluster.tls.{f}");
        match m.get(f) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.starts_with('/') && !s.contains('\0') => {
                Ok(Some(PathBuf::from(s)))
            }
            Some(Value::String(s)) => Err(CniError::config(
                &key,
                format!("{s:?} is not an absolute path"),
            )),
            Some(_) => Err(CniError::config(&key, "expected a string (a path)")),
        }
    };
    let ca = path("ca")?.ok_or_else(|| CniError::config("ipam.cluster.tls.ca", "missing"))?;
    let cert = path("cert")?;
    let key = path("key")?;
    if cert.is_some() != key.is_some() {
        let missing = if cert.is_some() { "key" } else { "cert" };
        return Err(CniError::config(
            &format!("ipam.cluster.tls.{missing}"),
            "missing: cert and key go together",
        ));
    }
    Ok(Some(TlsPaths { ca, cert, key }))
}

/// Node names are etcd key components and appear in messages: DNS-name
/// characters only (letters, digits, '-', '.', '_'), 1..=253 bytes.
pub fn node_name_problem(s: &str) -> Option<&'static str> {
    if s.is_empty() {
        Some("is empty")
    } else if s.len() > MAX_NODE_NAME {
        Some("is longer than 253 bytes")
    } else if s == "." || s == ".." {
        Some("must not be \".\" or \"..\"")
    } else if !s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
    {
        Some("may hold only letters, digits, '-', '.' and '_'")
    } else {
        None
    }
}

fn prefix_problem(s: &str) -> Option<&'static str> {
    if !s.starts_with('/') {
        Some("must start with '/'")
    } else if s.len() > 256 {
        Some("is longer than 256 bytes")
    } else if s.split('/').any(|p| p == ".." || p == ".") {
        Some("must not contain \".\" or \"..\" components")
    } else if s.chars().any(|c| c.is_control() || c.is_whitespace()) {
        Some("must not contain control characters or whitespace")
    } else {
        None
    }
}

/// The kernel's host name (what `hostname` prints), bounded read.
fn host_name() -> Result<String, String> {
    let p = std::path::Path::new("/proc/sys/kernel/hostname");
    let raw = crate::sys::fs::read_regular(p, 256)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("{} is missing", p.display()))?;
    Ok(String::from_utf8_lossy(&raw).trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(cluster: Value) -> Result<Option<ClusterConfig>, CniError> {
        let ipam = json!({"cluster": cluster});
        ClusterConfig::parse(ipam.as_object().unwrap())
    }

    #[test]
    fn minimal_and_defaults() {
        let c = parse(json!({"etcdEndpoints": ["http://127.0.0.1:2379"], "nodeName": "n1"}))
            .unwrap()
            .unwrap();
        assert_eq!(c.prefix, "/mactrunk/v1");
        assert_eq!(c.timeout, Duration::from_millis(2000));
        assert_eq!(c.node, "n1");
        assert_eq!(c.block_len(true, 24), 28);
        assert_eq!(c.block_len(true, 16), 28);
        assert_eq!(c.block_len(true, 27), 29);
        assert_eq!(c.block_len(true, 29), 30);
        assert_eq!(c.block_len(true, 30), 30);
        assert_eq!(c.block_len(true, 32), 32);
        assert_eq!(c.block_len(false, 64), 122);
        assert_eq!(c.block_len(false, 121), 123);
        assert_eq!(c.block_len(false, 125), 126);
        assert_eq!(c.net_prefix("net1"), "/mactrunk/v1/networks/net1/");
        assert!(parse(Value::Null).unwrap().is_none());
        // The host name is the default node name (whatever it is here).
        let _ = parse(json!({"etcdEndpoints": ["http://127.0.0.1:2379"]}));
    }

    #[test]
    fn block_size_forms() {
        let base = |b: Value| {
            parse(json!({"etcdEndpoints": ["http://h:1"], "nodeName": "n", "blockSize": b}))
        };
        let c = base(json!(26)).unwrap().unwrap();
        assert_eq!((c.block_len(true, 24), c.block_len(false, 64)), (26, 122));
        let c = base(json!({"v4": 27, "v6": 120})).unwrap().unwrap();
        assert_eq!((c.block_len(true, 24), c.block_len(false, 64)), (27, 120));
        // Never shorter than the subnet: the subnet is then one block.
        assert_eq!(c.block_len(true, 29), 29);
    }

    #[test]
    fn bad_values_name_their_key() {
        let ok = json!({"etcdEndpoints": ["https://h:1"], "nodeName": "n"});
        let with = |k: &str, v: Value| {
            let mut o = ok.clone();
            o[k] = v;
            o
        };
        let cases = [
            (json!([]), "ipam.cluster"),
            (json!({"nodeName": "n"}), "ipam.cluster.etcdEndpoints"),
            (
                with("etcdEndpoints", json!([])),
                "ipam.cluster.etcdEndpoints",
            ),
            (
                with("etcdEndpoints", json!(["ftp://h:1"])),
                "ipam.cluster.etcdEndpoints[0]",
            ),
            (
                with("etcdEndpoints", json!(["http://h:1", 5])),
                "ipam.cluster.etcdEndpoints[1]",
            ),
            (with("nodeName", json!("a/b")), "ipam.cluster.nodeName"),
            (with("nodeName", json!("")), "ipam.cluster.nodeName"),
            (
                with("nodeName", json!("x".repeat(254))),
                "ipam.cluster.nodeName",
            ),
            (with("blockSize", json!(33)), "ipam.cluster.blockSize"),
            (with("blockSize", json!(0)), "ipam.cluster.blockSize"),
            (with("blockSize", json!("28")), "ipam.cluster.blockSize"),
            (
                with("blockSize", json!({"v6": 129})),
                "ipam.cluster.blockSize.v6",
            ),
            (
                with("blockSize", json!({"v5": 1})),
                "ipam.cluster.blockSize.v5",
            ),
            (with("timeoutMs", json!(99)), "ipam.cluster.timeoutMs"),
            (with("timeoutMs", json!(60_001)), "ipam.cluster.timeoutMs"),
            (with("timeoutMs", json!(-1)), "ipam.cluster.timeoutMs"),
            (with("prefix", json!("x")), "ipam.cluster.prefix"),
            (with("prefix", json!("/a/../b")), "ipam.cluster.prefix"),
            (with("prefix", json!("/a\nb")), "ipam.cluster.prefix"),
            (
                with("tls", json!({"cert": "/c", "key": "/k"})),
                "ipam.cluster.tls.ca",
            ),
            (
                with("tls", json!({"ca": "/c", "cert": "/c"})),
                "ipam.cluster.tls.key",
            ),
            (with("tls", json!({"ca": "rel"})), "ipam.cluster.tls.ca"),
            (with("bogus", json!(1)), "ipam.cluster.bogus"),
        ];
        for (v, key) in cases {
            let e = parse(v.clone()).unwrap_err();
            assert_eq!(e.code, 7, "{v}");
            assert!(e.msg.starts_with(&format!("{key}:")), "{v}: {}", e.msg);
        }
        let e =
            parse(json!({"etcdEndpoints": ["http://h:1"], "nodeName": "n", "tls": {"ca": "/c"}}))
                .unwrap_err();
        assert!(
            e.msg.starts_with("ipam.cluster.etcdEndpoints:"),
            "{}",
            e.msg
        );
    }
}
