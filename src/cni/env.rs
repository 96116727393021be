//! The `CNI_*` environment: which variables each command needs, their
//! validation (container ID, interface name) and `CNI_ARGS` parsing.

use super::error::{CniError, code};
use super::names;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Version,
    Gc,
    Status,
}

impl Command {
    pub fn parse(s: &str) -> Result<Command, CniError> {
        Ok(match s {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "VERSION" => Command::Version,
            "GC" => Command::Gc,
            "STATUS" => Command::Status,
            other => {
                return Err(CniError::env(format!(
                    "CNI_COMMAND: unknown command {other:?} (expected ADD, DEL, CHECK, VERSION, GC or STATUS)"
                )));
            }
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Version => "VERSION",
            Command::Gc => "GC",
            Command::Status => "STATUS",
        }
    }

    /// Commands that act on one attachment and so need container ID and ifname.
    pub fn is_per_attachment(self) -> bool {
        matches!(self, Command::Add | Command::Del | Command::Check)
    }
}

/// Everything the runtime passed in the environment, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CmdArgs {
    pub container_id: String,
    /// Empty when not given (allowed for DEL, GC, STATUS).
    pub netns: String,
    pub ifname: String,
    pub args: CniArgs,
    pub path: Vec<String>,
    /// `CNI_NETNS_OVERRIDE`: allow `CNI_NETNS` to be our own namespace.
    pub netns_override: bool,
}

impl CmdArgs {
    /// Read and validate the variables `cmd` needs. `getenv` returns None for unset.
    pub fn from_env(
        cmd: Command,
        getenv: &dyn Fn(&str) -> Option<String>,
    ) -> Result<CmdArgs, CniError> {
        let get = |k: &str| getenv(k).unwrap_or_default();
        let mut out = CmdArgs {
            path: get("CNI_PATH")
                .split(':')
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect(),
            netns_override: matches!(get("CNI_NETNS_OVERRIDE").as_str(), "1" | "true"),
            ..Default::default()
        };
        if !cmd.is_per_attachment() {
            return Ok(out);
        }
        out.container_id = get("CNI_CONTAINERID");
        out.netns = get("CNI_NETNS");
        out.ifname = get("CNI_IFNAME");
        let mut missing = Vec::new();
        if out.container_id.is_empty() {
            missing.push("CNI_CONTAINERID");
        }
        if out.netns.is_empty() && cmd != Command::Del {
            missing.push("CNI_NETNS");
        }
        if out.ifname.is_empty() {
            missing.push("CNI_IFNAME");
        }
        if !missing.is_empty() {
            return Err(CniError::env(format!(
                "required environment variables missing: {}",
                missing.join(", ")
            )));
        }
        validate_container_id(&out.container_id)?;
        validate_ifname("CNI_IFNAME", &out.ifname)?;
        out.args = CniArgs::parse(&get("CNI_ARGS"))?;
        Ok(out)
    }
}

/// The CNI identifier pattern (see [`names`]); it also keeps the ID safe to
/// use as a file name in the IPAM store.
pub fn validate_container_id(id: &str) -> Result<(), CniError> {
    match names::id_problem(id) {
        None => Ok(()),
        Some(p) => Err(CniError::env(format!(
            "CNI_CONTAINERID: invalid container ID {:?}: {p}",
            id.escape_debug().to_string()
        ))),
    }
}

fn validate_ifname(var: &str, name: &str) -> Result<(), CniError> {
    match names::interface_name_problem(name) {
        None => Ok(()),
        Some(p) => Err(CniError::env(format!(
            "{var}: interface name {:?} {p}",
            name.escape_debug().to_string()
        ))),
    }
}

/// `CNI_ARGS`: `K=V;K2=V2`. Keys we understand are kept; an unknown key is an
/// error (code 2) unless `IgnoreUnknown` is `1`/`true`, as the CNI library does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniArgs {
    pub ip: Vec<String>,
    pub mac: Option<String>,
    pub k8s_pod_namespace: Option<String>,
    pub k8s_pod_name: Option<String>,
}

impl CniArgs {
    pub fn parse(s: &str) -> Result<CniArgs, CniError> {
        let mut out = CniArgs::default();
        if s.is_empty() {
            return Ok(out);
        }
        let mut pairs = Vec::new();
        for pair in s.split(';') {
            let kv: Vec<&str> = pair.split('=').collect();
            if kv.len() != 2 {
                return Err(CniError::env(format!(
                    "CNI_ARGS: invalid pair {pair:?}: expected KEY=VALUE"
                )));
            }
            pairs.push((kv[0], kv[1]));
        }
        let ignore_unknown = pairs.iter().any(|(k, v)| {
            *k == "IgnoreUnknown" && matches!(v.to_ascii_lowercase().as_str(), "1" | "true")
        });
        for (k, v) in pairs {
            match k {
                "IgnoreUnknown" => {}
                // `IP=a,b` is accepted as a list, as the static IPAM does.
                "IP" => out
                    .ip
                    .extend(v.split(',').filter(|s| !s.is_empty()).map(str::to_string)),
                "MAC" => out.mac = Some(v.to_string()),
                "K8S_POD_NAMESPACE" => out.k8s_pod_namespace = Some(v.to_string()),
                "K8S_POD_NAME" => out.k8s_pod_name = Some(v.to_string()),
                "K8S_POD_INFRA_CONTAINER_ID" | "K8S_POD_UID" => {}
                _ if ignore_unknown => {}
                other => {
                    return Err(CniError::new(
                        code::UNSUPPORTED_FIELD,
                        format!(
                            "CNI_ARGS: unknown key {other:?} with value {v:?} (set IgnoreUnknown=1 to ignore it)"
                        ),
                    ));
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn add_requires_netns_del_does_not() {
        let e = env(&[("CNI_CONTAINERID", "abc"), ("CNI_IFNAME", "eth0")]);
        let err = CmdArgs::from_env(Command::Add, &e).unwrap_err();
        assert_eq!(err.code, 4);
        assert!(err.msg.contains("CNI_NETNS"), "{}", err.msg);
        assert!(CmdArgs::from_env(Command::Del, &e).is_ok());
    }

    #[test]
    fn missing_variables_are_all_named() {
        let err = CmdArgs::from_env(Command::Check, &env(&[])).unwrap_err();
        for v in ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"] {
            assert!(err.msg.contains(v), "{}", err.msg);
        }
    }

    #[test]
    fn gc_and_status_need_no_container_env() {
        let e = env(&[("CNI_PATH", "/opt/cni/bin::/usr/lib/cni")]);
        let a = CmdArgs::from_env(Command::Gc, &e).unwrap();
        assert_eq!(a.path, vec!["/opt/cni/bin", "/usr/lib/cni"]);
        assert!(CmdArgs::from_env(Command::Status, &env(&[])).is_ok());
    }

    #[test]
    fn container_id_rules() {
        for bad in ["", "-abc", ".abc", "a/b", "../x", "a b", "a\u{7}", "ä"] {
            let e = env(&[("CNI_CONTAINERID", bad), ("CNI_IFNAME", "eth0")]);
            let err = CmdArgs::from_env(Command::Del, &e).unwrap_err();
            assert_eq!(err.code, 4, "{bad:?}");
        }
        assert!(validate_container_id("a1_b.c-d").is_ok());
    }

    #[test]
    fn unknown_command_is_code_4() {
        assert_eq!(Command::parse("ADDX").unwrap_err().code, 4);
        assert_eq!(Command::parse("").unwrap_err().code, 4);
    }

    #[test]
    fn cni_args_parsing() {
        let a = CniArgs::parse(
            "IgnoreUnknown=1;K8S_POD_NAME=p;FOO=bar;IP=10.0.0.5/24;MAC=02:00:00:00:00:01",
        )
        .unwrap();
        assert_eq!(a.ip, vec!["10.0.0.5/24"]);
        assert_eq!(a.mac.as_deref(), Some("02:00:00:00:00:01"));
        assert_eq!(a.k8s_pod_name.as_deref(), Some("p"));
        let e = CniArgs::parse("FOO=bar").unwrap_err();
        assert_eq!(e.code, 2);
        assert!(e.msg.contains("FOO"));
        assert_eq!(CniArgs::parse("IP").unwrap_err().code, 4);
        assert_eq!(CniArgs::parse("IP=a=b").unwrap_err().code, 4);
        assert_eq!(CniArgs::parse("IP=1.2.3.4,1.2.3.5").unwrap().ip.len(), 2);
    }
}
