//! The parts of a network config every command and both plugins read the
//! same way: `cniVersion`, `name`, the IPAM kind, and typed access to JSON
//! fields with errors that name the key (code 7).

use serde_json::{Map, Value};

use super::names::network_name_problem;
use super::{CniError, Version};

/// Where addresses come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpamKind {
    /// `"ipam": {}` or no usable type: an L2-only interface.
    None,
    /// `mactrunk-ipam`, run inside this process.
    InProcess,
    /// Any other plugin, executed from `CNI_PATH`.
    Delegate(String),
}

/// Fields every command needs before anything else: version and name. Parsed
/// first so that even a config with other errors gets its errors in its own version.
pub fn parse_version(conf: &Value) -> Result<Version, CniError> {
    match conf.get("cniVersion") {
        None | Some(Value::Null) => Ok(Version::V0_1_0),
        Some(Value::String(s)) => Version::parse(s),
        Some(other) => Err(CniError::config(
            "cniVersion",
            format!("expected a string, got {}", type_name(other)),
        )),
    }
}

pub fn parse_name(conf: &Value) -> Result<String, CniError> {
    match conf.get("name") {
        Some(Value::String(s)) => match network_name_problem(s) {
            None => Ok(s.clone()),
            Some(p) => Err(CniError::config(
                "name",
                format!(
                    "invalid network name {:?}: {p}",
                    s.escape_debug().to_string()
                ),
            )),
        },
        None | Some(Value::Null) => Err(CniError::config("name", "missing network name")),
        Some(other) => Err(CniError::config(
            "name",
            format!("expected a string, got {}", type_name(other)),
        )),
    }
}

/// The IPAM type decides in-process vs delegated execution. A type that could
/// name a file outside `CNI_PATH` is refused.
pub fn parse_ipam_kind(obj: &Map<String, Value>) -> Result<IpamKind, CniError> {
    let ipam = match obj.get("ipam") {
        None | Some(Value::Null) => return Ok(IpamKind::None),
        Some(Value::Object(m)) => m,
        Some(other) => {
            return Err(CniError::config(
                "ipam",
                format!("expected an object, got {}", type_name(other)),
            ));
        }
    };
    match ipam.get("type") {
        None | Some(Value::Null) => {
            if ipam.is_empty() {
                Ok(IpamKind::None)
            } else {
                Err(CniError::config("ipam.type", "missing IPAM plugin type"))
            }
        }
        Some(Value::String(t)) if t == "mactrunk-ipam" => Ok(IpamKind::InProcess),
        Some(Value::String(t)) if t.is_empty() => Ok(IpamKind::None),
        Some(Value::String(t)) => {
            if t.contains('/') || t.contains("..") || t.chars().any(|c| c.is_control()) {
                Err(CniError::config(
                    "ipam.type",
                    format!(
                        "invalid plugin name {:?}: must be a file name in CNI_PATH",
                        t.escape_debug().to_string()
                    ),
                ))
            } else {
                Ok(IpamKind::Delegate(t.clone()))
            }
        }
        Some(other) => Err(CniError::config(
            "ipam.type",
            format!("expected a string, got {}", type_name(other)),
        )),
    }
}

pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

pub fn opt_string(obj: &Map<String, Value>, key: &str) -> Result<Option<String>, CniError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(CniError::config(
            key,
            format!("expected a string, got {}", type_name(other)),
        )),
    }
}

pub fn opt_bool(obj: &Map<String, Value>, key: &str) -> Result<Option<bool>, CniError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(CniError::config(
            key,
            format!("expected true or false, got {}", type_name(other)),
        )),
    }
}

/// A non-negative integer no larger than `max`.
pub fn opt_u64(obj: &Map<String, Value>, key: &str, max: u64) -> Result<Option<u64>, CniError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(v) if v <= max => Ok(Some(v)),
            _ => Err(CniError::config(
                key,
                format!("{n} is out of range: expected an integer from 0 to {max}"),
            )),
        },
        Some(other) => Err(CniError::config(
            key,
            format!("expected an integer, got {}", type_name(other)),
        )),
    }
}
