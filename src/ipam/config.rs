//! The `ipam` section (plus `name`, `runtimeConfig` and `args`) parsed into a
//! validated [`IpamConfig`]. Every error starts with the key path; all are code
//! 7 except a cniVersion that cannot express the range sets (code 1).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnetwork::IpNetwork;
use serde_json::{Map, Value};

use super::range::{Exclusions, RangeSet, canonicalize};
use crate::cni::env::CniArgs;
use crate::cni::netconf::parse_name;
use crate::cni::types::legacy_version_error;
use crate::cni::{CniError, Dns, Route, Version};

pub const DEFAULT_DATA_DIR: &str = "/var/lib/cni/networks";
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_millis(10_000);

/// A requested (static) address, already matched to its range set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticIp {
    pub set: usize,
    pub ip: IpAddr,
    /// Where it came from, for messages: `runtimeConfig.ips[0]`, `args.cni.ips[1]`, `CNI_ARGS IP`.
    pub key: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpamConfig {
    /// The network `name`: the store's directory under `data_dir`.
    pub network: String,
    pub data_dir: PathBuf,
    pub lock_timeout: Duration,
    /// Range sets in order: `runtimeConfig.ipRanges`, the legacy `subnet`, then `ranges`.
    pub range_sets: Vec<RangeSet>,
    pub exclude: Vec<IpNetwork>,
    pub exclusions: Exclusions,
    pub routes: Vec<Route>,
    pub dns: Dns,
    pub resolv_conf: Option<PathBuf>,
    /// At most one per range set.
    pub static_ips: Vec<StaticIp>,
    /// `ipam.cluster`: addresses come from this node's etcd-claimed blocks.
    pub cluster: Option<super::cluster::ClusterConfig>,
}

/// Where the store lives. Needs only `name` and `ipam.dataDir` (+ `lockTimeout`),
/// so DEL and GC work even when the ranges no longer parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreLocation {
    /// `<dataDir>/<name>`
    pub dir: PathBuf,
    pub lock_timeout: Duration,
}

impl StoreLocation {
    pub fn from_netconf(conf: &Value) -> Result<StoreLocation, CniError> {
        let top = conf
            .as_object()
            .ok_or_else(|| CniError::config("config", "expected a JSON object"))?;
        let name = parse_name(conf)?;
        let empty = Map::new();
        let ipam = match top.get("ipam") {
            None | Some(Value::Null) => &empty,
            Some(Value::Object(m)) => m,
            Some(_) => return Err(CniError::config("ipam", "expected an object")),
        };
        Ok(StoreLocation {
            dir: data_dir(ipam)?.join(name),
            // Lenient: DEL and GC must work even if this key was broken later.
            lock_timeout: lock_timeout(ipam).unwrap_or(DEFAULT_LOCK_TIMEOUT),
        })
    }
}

impl IpamConfig {
    pub fn location(&self) -> StoreLocation {
        StoreLocation {
            dir: self.data_dir.join(&self.network),
            lock_timeout: self.lock_timeout,
        }
    }

    /// Parse from the whole network config plus the parsed `CNI_ARGS`.
    pub fn from_netconf(conf: &Value, args: &CniArgs) -> Result<IpamConfig, CniError> {
        let top = conf
            .as_object()
            .ok_or_else(|| CniError::config("config", "expected a JSON object"))?;
        let network = parse_name(conf)?;
        let ipam = match top.get("ipam") {
            Some(Value::Object(m)) => m,
            None | Some(Value::Null) => return Err(CniError::config("ipam", "missing")),
            Some(_) => return Err(CniError::config("ipam", "expected an object")),
        };
        let empty = Map::new();
        let runtime = match top.get("runtimeConfig") {
            None | Some(Value::Null) => &empty,
            Some(Value::Object(m)) => m,
            Some(_) => return Err(CniError::config("runtimeConfig", "expected an object")),
        };

        // Range sets: runtimeConfig.ipRanges, then the legacy shorthand, then ranges.
        let mut range_sets = Vec::new();
        if let Some(v) = runtime.get("ipRanges").filter(|v| !v.is_null()) {
            range_sets.extend(parse_range_sets(v, "runtimeConfig.ipRanges")?);
        }
        if let Some(set) = parse_legacy_range(ipam)? {
            range_sets.push(set);
        }
        if let Some(v) = ipam.get("ranges").filter(|v| !v.is_null()) {
            range_sets.extend(parse_range_sets(v, "ipam.ranges")?);
        }
        if range_sets.is_empty() {
            return Err(CniError::config(
                "ipam.ranges",
                "at least one range set is required (or ipam.subnet)",
            ));
        }
        for (i, a) in range_sets.iter().enumerate() {
            for b in &range_sets[..i] {
                if a.overlaps(b) {
                    return Err(CniError::config(
                        &a.key,
                        format!("overlaps range set {} ({})", b.key, b.describe()),
                    ));
                }
            }
        }

        check_legacy_version(top, &range_sets)?;

        let exclude = parse_exclude(ipam)?;
        let exclusions = Exclusions::new(&exclude);

        let routes = match ipam.get("routes") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(list)) => list
                .iter()
                .enumerate()
                .map(|(i, r)| parse_route(r, &format!("ipam.routes[{i}]")))
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(CniError::config("ipam.routes", "expected an array")),
        };
        let dns = match ipam.get("dns") {
            None | Some(Value::Null) => Dns::default(),
            Some(v @ Value::Object(_)) => {
                serde_json::from_value(v.clone()).map_err(|e| CniError::config("ipam.dns", e))?
            }
            Some(_) => return Err(CniError::config("ipam.dns", "expected an object")),
        };
        let resolv_conf = match ipam.get("resolvConf") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.is_empty() => None,
            Some(Value::String(s)) => Some(PathBuf::from(s)),
            Some(_) => {
                return Err(CniError::config(
                    "ipam.resolvConf",
                    "expected a string (a path)",
                ));
            }
        };

        let mut cfg = IpamConfig {
            network,
            data_dir: data_dir(ipam)?,
            lock_timeout: lock_timeout(ipam)?,
            range_sets,
            exclude,
            exclusions,
            routes,
            dns,
            resolv_conf,
            static_ips: Vec::new(),
            cluster: super::cluster::ClusterConfig::parse(ipam)?,
        };
        cfg.static_ips = cfg.parse_static_ips(top, runtime, args)?;
        if let Some(c) = cfg.cluster.as_mut() {
            c.netconf = std::sync::Arc::new(conf.clone());
        }
        Ok(cfg)
    }

    /// One source only: runtimeConfig.ips, else args.cni.ips, else CNI_ARGS IP=.
    fn parse_static_ips(
        &self,
        top: &Map<String, Value>,
        runtime: &Map<String, Value>,
        args: &CniArgs,
    ) -> Result<Vec<StaticIp>, CniError> {
        let from_runtime = string_list(runtime.get("ips"), "runtimeConfig.ips")?;
        let args_ips = top
            .get("args")
            .and_then(|a| a.get("cni"))
            .and_then(|c| c.get("ips"));
        let from_args = string_list(args_ips, "args.cni.ips")?;
        let requested: Vec<(String, String)> = if !from_runtime.is_empty() {
            from_runtime
        } else if !from_args.is_empty() {
            from_args
        } else {
            args.ip
                .iter()
                .map(|s| ("CNI_ARGS IP".to_string(), s.clone()))
                .collect()
        };
        let mut out: Vec<StaticIp> = Vec::new();
        for (key, text) in requested {
            let (ip, prefix) =
                parse_ip_with_prefix(&text).map_err(|p| CniError::config(&key, p))?;
            // Prefer the set whose [rangeStart, rangeEnd] holds it, then any subnet.
            let found = self
                .range_sets
                .iter()
                .enumerate()
                .find(|(_, s)| s.ranges.iter().any(|r| r.contains(ip)))
                .or_else(|| {
                    self.range_sets
                        .iter()
                        .enumerate()
                        .find(|(_, s)| s.range_for(ip).is_some())
                })
                .and_then(|(i, s)| s.range_for(ip).map(|r| (i, s, r)));
            let Some((set_idx, set, range)) = found else {
                return Err(CniError::config(
                    &key,
                    format!(
                        "{ip} is not in the subnet of any range set ({})",
                        self.describe_sets()
                    ),
                ));
            };
            if let Some(p) = prefix
                && p != range.subnet.prefix()
            {
                return Err(CniError::config(
                    &key,
                    format!("{text}: prefix /{p} does not match subnet {}", range.subnet),
                ));
            }
            if set.is_gateway(ip) {
                return Err(CniError::config(
                    &key,
                    format!("{ip} is the gateway of {}", set.key),
                ));
            }
            if let Some(what) = range.reserved_edge(ip) {
                return Err(CniError::config(
                    &key,
                    format!("{ip} is the {what} address of {}", range.subnet),
                ));
            }
            if let Some(n) = self.exclude.iter().find(|n| n.contains(ip)) {
                return Err(CniError::config(
                    &key,
                    format!("{ip} is excluded (ipam.exclude {n})"),
                ));
            }
            if let Some(prev) = out.iter().find(|s| s.set == set_idx) {
                return Err(CniError::config(
                    &key,
                    format!(
                        "{ip} and {} are both in range set {}: at most one address per range set",
                        prev.ip, set.key
                    ),
                ));
            }
            out.push(StaticIp {
                set: set_idx,
                ip,
                key,
            });
        }
        Ok(out)
    }

    pub(crate) fn describe_sets(&self) -> String {
        let parts: Vec<String> = self
            .range_sets
            .iter()
            .map(|s| format!("{}: {}", s.key, s.describe()))
            .collect();
        parts.join("; ")
    }
}

/// A 0.1.0/0.2.0 result holds one IPv4 and one IPv6 address; each range set
/// yields one. Refused before anything is allocated.
fn check_legacy_version(top: &Map<String, Value>, sets: &[RangeSet]) -> Result<(), CniError> {
    let Some(version) = top
        .get("cniVersion")
        .and_then(Value::as_str)
        .and_then(|v| Version::parse(v).ok())
    else {
        return Ok(());
    };
    if !version.is_legacy_result() {
        return Ok(());
    }
    for (fam, v4) in [("IPv4", true), ("IPv6", false)] {
        let n = sets.iter().filter(|s| s.is_ipv4() == v4).count();
        if n > 1 {
            return Err(legacy_version_error(version, fam, n, "range sets"));
        }
    }
    Ok(())
}

fn data_dir(ipam: &Map<String, Value>) -> Result<PathBuf, CniError> {
    match ipam.get("dataDir") {
        None | Some(Value::Null) => Ok(PathBuf::from(DEFAULT_DATA_DIR)),
        Some(Value::String(s)) if s.starts_with('/') && !s.contains('\0') => Ok(PathBuf::from(s)),
        Some(Value::String(s)) => Err(CniError::config(
            "ipam.dataDir",
            format!("{s:?} is not an absolute path"),
        )),
        Some(_) => Err(CniError::config(
            "ipam.dataDir",
            "expected a string (a path)",
        )),
    }
}

fn lock_timeout(ipam: &Map<String, Value>) -> Result<Duration, CniError> {
    match ipam.get("lockTimeout") {
        None | Some(Value::Null) => Ok(DEFAULT_LOCK_TIMEOUT),
        Some(v) => v.as_u64().map(Duration::from_millis).ok_or_else(|| {
            CniError::config(
                "ipam.lockTimeout",
                format!("{v} is not a non-negative integer (milliseconds)"),
            )
        }),
    }
}

fn field_ip(obj: &Map<String, Value>, field: &str, key: &str) -> Result<Option<IpAddr>, CniError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => s
            .parse()
            .map(Some)
            .map_err(|_| CniError::config(key, format!("invalid IP address {s:?}"))),
        Some(_) => Err(CniError::config(key, "expected a string (an IP address)")),
    }
}

fn parse_cidr(s: &str, key: &str) -> Result<IpNetwork, CniError> {
    if !s.contains('/') {
        return Err(CniError::config(
            key,
            format!("{s:?} is not in CIDR notation (e.g. 10.0.0.0/24)"),
        ));
    }
    s.parse()
        .map_err(|e| CniError::config(key, format!("invalid CIDR {s:?}: {e}")))
}

/// One range object; `prefix` is the key of the object (`ipam.ranges[0][1]`),
/// or `ipam` for the legacy shorthand (fields then read `ipam.subnet`, ...).
fn parse_range(obj: &Map<String, Value>, prefix: &str) -> Result<super::range::Range, CniError> {
    let key = |f: &str| format!("{prefix}.{f}");
    let subnet = match obj.get("subnet") {
        Some(Value::String(s)) => parse_cidr(s, &key("subnet"))?,
        None | Some(Value::Null) => return Err(CniError::config(&key("subnet"), "missing")),
        Some(_) => {
            return Err(CniError::config(
                &key("subnet"),
                "expected a string (a CIDR)",
            ));
        }
    };
    let start = field_ip(obj, "rangeStart", &key("rangeStart"))?;
    let end = field_ip(obj, "rangeEnd", &key("rangeEnd"))?;
    let gw = field_ip(obj, "gateway", &key("gateway"))?;
    canonicalize(subnet, start, end, gw)
        .map_err(|(field, problem)| CniError::config(&key(field), problem))
}

fn parse_legacy_range(ipam: &Map<String, Value>) -> Result<Option<RangeSet>, CniError> {
    let has = |k: &str| ipam.get(k).is_some_and(|v| !v.is_null());
    if !has("subnet") {
        for k in ["rangeStart", "rangeEnd", "gateway"] {
            if has(k) {
                return Err(CniError::config(
                    &format!("ipam.{k}"),
                    "needs ipam.subnet (or put it in ipam.ranges)",
                ));
            }
        }
        return Ok(None);
    }
    let r = parse_range(ipam, "ipam")?;
    Ok(Some(RangeSet {
        ranges: vec![r],
        key: "ipam.subnet".into(),
    }))
}

fn parse_range_sets(v: &Value, key: &str) -> Result<Vec<RangeSet>, CniError> {
    let Value::Array(sets) = v else {
        return Err(CniError::config(
            key,
            "expected an array of range sets (arrays of ranges)",
        ));
    };
    let mut out = Vec::with_capacity(sets.len());
    for (i, set) in sets.iter().enumerate() {
        let set_key = format!("{key}[{i}]");
        let Value::Array(ranges) = set else {
            return Err(CniError::config(&set_key, "expected an array of ranges"));
        };
        if ranges.is_empty() {
            return Err(CniError::config(&set_key, "empty range set"));
        }
        let mut parsed: Vec<super::range::Range> = Vec::with_capacity(ranges.len());
        for (j, r) in ranges.iter().enumerate() {
            let rkey = format!("{set_key}[{j}]");
            let Value::Object(obj) = r else {
                return Err(CniError::config(
                    &rkey,
                    "expected an object {subnet, rangeStart, rangeEnd, gateway}",
                ));
            };
            let range = parse_range(obj, &rkey)?;
            if let Some(first) = parsed.first()
                && first.is_ipv4() != range.is_ipv4()
            {
                return Err(CniError::config(
                    &format!("{rkey}.subnet"),
                    format!(
                        "{} mixes address families within range set {set_key}",
                        range.subnet
                    ),
                ));
            }
            if let Some((k, other)) = parsed.iter().enumerate().find(|(_, o)| o.overlaps(&range)) {
                return Err(CniError::config(
                    &rkey,
                    format!("overlaps {set_key}[{k}] ({other})"),
                ));
            }
            parsed.push(range);
        }
        out.push(RangeSet {
            ranges: parsed,
            key: set_key,
        });
    }
    Ok(out)
}

fn parse_exclude(ipam: &Map<String, Value>) -> Result<Vec<IpNetwork>, CniError> {
    let list = match ipam.get("exclude") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(l)) => l,
        Some(_) => {
            return Err(CniError::config(
                "ipam.exclude",
                "expected an array of IPs or CIDRs",
            ));
        }
    };
    let mut out = Vec::with_capacity(list.len());
    for (i, v) in list.iter().enumerate() {
        let key = format!("ipam.exclude[{i}]");
        let Value::String(s) = v else {
            return Err(CniError::config(
                &key,
                "expected a string (an IP or a CIDR)",
            ));
        };
        let net = if s.contains('/') {
            let n = parse_cidr(s, &key)?;
            if n.ip() != n.network() {
                return Err(CniError::config(
                    &key,
                    format!(
                        "{s} has host bits set (the network address is {}/{})",
                        n.network(),
                        n.prefix()
                    ),
                ));
            }
            n
        } else {
            let ip: IpAddr = s
                .parse()
                .map_err(|_| CniError::config(&key, format!("invalid IP address {s:?}")))?;
            IpNetwork::from(ip)
        };
        out.push(net);
    }
    Ok(out)
}

fn parse_route(v: &Value, key: &str) -> Result<Route, CniError> {
    let r: Route = serde_json::from_value(v.clone()).map_err(|e| CniError::config(key, e))?;
    if let Some(gw) = r.gw
        && gw.is_ipv4() != r.dst.is_ipv4()
    {
        return Err(CniError::config(
            &format!("{key}.gw"),
            format!("{gw} is not of the same family as dst {}", r.dst),
        ));
    }
    if r.dst.ip() != r.dst.network() {
        return Err(CniError::config(
            &format!("{key}.dst"),
            format!(
                "{} has host bits set (the network address is {}/{})",
                r.dst,
                r.dst.network(),
                r.dst.prefix()
            ),
        ));
    }
    Ok(r)
}

/// A list of strings at `key`, each paired with its own key (`key[i]`).
fn string_list(v: Option<&Value>, key: &str) -> Result<Vec<(String, String)>, CniError> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(list)) => list
            .iter()
            .enumerate()
            .map(|(i, s)| match s {
                Value::String(s) => Ok((format!("{key}[{i}]"), s.clone())),
                _ => Err(CniError::config(
                    &format!("{key}[{i}]"),
                    "expected a string (an IP address)",
                )),
            })
            .collect(),
        Some(_) => Err(CniError::config(key, "expected an array of IP addresses")),
    }
}

/// `10.0.0.5` or `10.0.0.5/24`.
fn parse_ip_with_prefix(s: &str) -> Result<(IpAddr, Option<u8>), String> {
    let (addr, prefix) = match s.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (s, None),
    };
    let ip: IpAddr = addr
        .trim()
        .parse()
        .map_err(|_| format!("invalid IP address {s:?}"))?;
    let prefix = match prefix {
        None => None,
        Some(p) => {
            let max = if ip.is_ipv4() { 32 } else { 128 };
            match p.parse::<u8>() {
                Ok(n) if n <= max => Some(n),
                _ => return Err(format!("invalid prefix length in {s:?}")),
            }
        }
    };
    Ok((ip, prefix))
}
