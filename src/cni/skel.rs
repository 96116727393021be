//! The command dispatcher both binaries share (the role of the Go library's
//! `skel`): environment and stdin in, one JSON document and an exit status
//! out. It reads no process globals itself, so it is unit-testable.

use std::io::Read;

use serde_json::Value;

use crate::cni::env::{CmdArgs, Command};
use crate::cni::netconf::{parse_name, parse_version};
use crate::cni::{CniError, CniOutput, Version, code, version::SUPPORTED};

/// One invocation, validated up to the point every command shares.
pub struct Request {
    pub command: Command,
    pub args: CmdArgs,
    /// stdin exactly as received (delegates get these bytes).
    pub raw: Vec<u8>,
    pub conf: Value,
    pub version: Version,
    pub name: String,
}

pub trait Plugin {
    fn add(&self, req: &Request) -> Result<CniOutput, CniError>;
    fn del(&self, req: &Request) -> Result<(), CniError>;
    fn check(&self, req: &Request) -> Result<(), CniError>;
    fn gc(&self, req: &Request) -> Result<(), CniError>;
    fn status(&self, req: &Request) -> Result<(), CniError>;
}

/// What to print on stdout and the exit status.
#[derive(Debug, PartialEq)]
pub struct Outcome {
    pub stdout: String,
    pub status: i32,
}

impl Outcome {
    fn ok(doc: Option<Value>) -> Outcome {
        Outcome {
            stdout: doc.map(|d| d.to_string() + "\n").unwrap_or_default(),
            status: 0,
        }
    }

    pub fn error(err: &CniError, version: &str) -> Outcome {
        Outcome {
            stdout: err.to_json(version).to_string() + "\n",
            status: 1,
        }
    }
}

pub fn run(
    plugin: &dyn Plugin,
    getenv: &dyn Fn(&str) -> Option<String>,
    stdin: &mut dyn Read,
) -> Outcome {
    let mut version_for_errors = Version::LATEST.as_str();
    match dispatch(plugin, getenv, stdin, &mut version_for_errors) {
        Ok(doc) => Outcome::ok(doc),
        Err(e) => Outcome::error(&e, version_for_errors),
    }
}

fn dispatch(
    plugin: &dyn Plugin,
    getenv: &dyn Fn(&str) -> Option<String>,
    stdin: &mut dyn Read,
    version_for_errors: &mut &'static str,
) -> Result<Option<Value>, CniError> {
    let command = match getenv("CNI_COMMAND") {
        None => {
            return Err(CniError::env(
                "CNI_COMMAND: not set (this program is a CNI plugin: run it from a container runtime or cnitool)",
            ));
        }
        Some(c) => Command::parse(&c)?,
    };
    if command == Command::Version {
        return Ok(Some(version_reply(stdin)));
    }
    let args = CmdArgs::from_env(command, getenv)?;
    let mut raw = Vec::new();
    stdin.read_to_end(&mut raw).map_err(|e| {
        CniError::new(
            code::IO,
            format!("reading the network config from stdin: {e}"),
        )
    })?;
    let conf: Value = serde_json::from_slice(&raw).map_err(|e| {
        CniError::new(
            code::DECODE,
            format!("network config on stdin is not valid JSON: {e}"),
        )
    })?;
    if !conf.is_object() {
        return Err(CniError::new(
            code::DECODE,
            "network config on stdin is not a JSON object",
        ));
    }
    let version = parse_version(&conf)?;
    *version_for_errors = version.as_str();
    let name = parse_name(&conf)?;
    match command {
        Command::Check if !version.supports_check() => {
            return Err(CniError::new(
                code::INCOMPATIBLE_VERSION,
                format!("cniVersion: CHECK needs config version 0.4.0 or later, got {version}"),
            ));
        }
        Command::Gc | Command::Status if !version.supports_gc_status() => {
            return Err(CniError::new(
                code::INCOMPATIBLE_VERSION,
                format!(
                    "cniVersion: {} needs config version 1.1.0 or later, got {version}",
                    command.as_str()
                ),
            ));
        }
        _ => {}
    }
    let req = Request {
        command,
        args,
        raw,
        conf,
        version,
        name,
    };
    match command {
        Command::Add => plugin.add(&req).map(|r| Some(r.to_json(version))),
        Command::Del => plugin.del(&req).map(|_| None),
        Command::Check => plugin.check(&req).map(|_| None),
        Command::Gc => plugin.gc(&req).map(|_| None),
        Command::Status => plugin.status(&req).map(|_| None),
        Command::Version => Ok(Some(version_reply(&mut std::io::empty()))),
    }
}

/// `cniVersion` echoes the config's when it sent a supported one.
fn version_reply(stdin: &mut dyn Read) -> Value {
    let mut raw = Vec::new();
    let _ = stdin.read_to_end(&mut raw);
    let echoed = serde_json::from_slice::<Value>(&raw)
        .ok()
        .and_then(|v| {
            v.get("cniVersion")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .and_then(|v| Version::parse(&v).ok())
        .unwrap_or(Version::LATEST);
    serde_json::json!({"cniVersion": echoed.as_str(), "supportedVersions": SUPPORTED})
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::HashMap;

    /// Records which command reached the plugin.
    #[derive(Default)]
    struct Recorder(RefCell<Vec<&'static str>>);

    impl Plugin for Recorder {
        fn add(&self, _: &Request) -> Result<CniOutput, CniError> {
            self.0.borrow_mut().push("add");
            Ok(CniOutput::default())
        }
        fn del(&self, _: &Request) -> Result<(), CniError> {
            self.0.borrow_mut().push("del");
            Ok(())
        }
        fn check(&self, _: &Request) -> Result<(), CniError> {
            self.0.borrow_mut().push("check");
            Ok(())
        }
        fn gc(&self, _: &Request) -> Result<(), CniError> {
            self.0.borrow_mut().push("gc");
            Ok(())
        }
        fn status(&self, _: &Request) -> Result<(), CniError> {
            Err(CniError::new(code::NOT_AVAILABLE, "pool exhausted"))
        }
    }

    fn invoke(env: &[(&str, &str)], stdin: &str) -> (Outcome, Vec<&'static str>) {
        let m: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let p = Recorder::default();
        let out = run(&p, &|k| m.get(k).cloned(), &mut stdin.as_bytes());
        let calls = p.0.borrow().clone();
        (out, calls)
    }

    const ADD_ENV: [(&str, &str); 4] = [
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "c1"),
        ("CNI_NETNS", "/run/netns/x"),
        ("CNI_IFNAME", "eth0"),
    ];

    fn code_of(out: &Outcome) -> u64 {
        let v: Value = serde_json::from_str(&out.stdout).unwrap();
        v["code"].as_u64().unwrap()
    }

    #[test]
    fn version_lists_all_and_echoes() {
        let (out, _) = invoke(&[("CNI_COMMAND", "VERSION")], r#"{"cniVersion":"0.4.0"}"#);
        let v: Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(v["cniVersion"], "0.4.0");
        assert_eq!(v["supportedVersions"].as_array().unwrap().len(), 7);
        let (out, _) = invoke(&[("CNI_COMMAND", "VERSION")], "garbage");
        assert_eq!(
            serde_json::from_str::<Value>(&out.stdout).unwrap()["cniVersion"],
            "1.1.0"
        );
    }

    #[test]
    fn input_errors_have_spec_codes_and_never_reach_the_plugin() {
        type Case<'a> = (Vec<(&'a str, &'a str)>, &'a str, u64);
        let cases: Vec<Case> = vec![
            (vec![], "{}", 4),
            (vec![("CNI_COMMAND", "FOO")], "{}", 4),
            (ADD_ENV.to_vec(), "", 6),
            (ADD_ENV.to_vec(), "{\"name\":", 6),
            (ADD_ENV.to_vec(), "[1,2]", 6),
            (ADD_ENV.to_vec(), "\"str\"", 6),
            (ADD_ENV.to_vec(), r#"{"cniVersion":"9.9.9","name":"n"}"#, 1),
            (ADD_ENV.to_vec(), r#"{"cniVersion":"1.0.0"}"#, 7),
            (
                ADD_ENV.to_vec(),
                r#"{"cniVersion":"1.0.0","name":"a/b"}"#,
                7,
            ),
            (
                ADD_ENV[..3].to_vec(),
                r#"{"cniVersion":"1.0.0","name":"n"}"#,
                4,
            ),
        ];
        for (env, stdin, want) in cases {
            let (out, calls) = invoke(&env, stdin);
            assert_eq!(out.status, 1, "{stdin}");
            assert_eq!(code_of(&out), want, "{env:?} {stdin}: {}", out.stdout);
            assert!(calls.is_empty());
            assert_eq!(out.stdout.lines().count(), 1);
        }
    }

    #[test]
    fn command_version_gates() {
        let mut env = ADD_ENV.to_vec();
        env[0] = ("CNI_COMMAND", "CHECK");
        let (out, calls) = invoke(&env, r#"{"cniVersion":"0.3.1","name":"n"}"#);
        assert_eq!((code_of(&out), calls.len()), (1, 0));
        let (out, calls) = invoke(&env, r#"{"cniVersion":"0.4.0","name":"n"}"#);
        assert_eq!((out.status, calls), (0, vec!["check"]));
        let (out, _) = invoke(
            &[("CNI_COMMAND", "GC")],
            r#"{"cniVersion":"1.0.0","name":"n"}"#,
        );
        assert_eq!(code_of(&out), 1);
        let (out, calls) = invoke(
            &[("CNI_COMMAND", "GC")],
            r#"{"cniVersion":"1.1.0","name":"n"}"#,
        );
        assert_eq!(
            (out.status, calls, out.stdout.as_str()),
            (0, vec!["gc"], "")
        );
    }

    #[test]
    fn errors_carry_the_config_version() {
        let (out, _) = invoke(
            &[("CNI_COMMAND", "STATUS")],
            r#"{"cniVersion":"1.1.0","name":"n"}"#,
        );
        let v: Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(
            (v["code"].as_u64(), v["cniVersion"].as_str()),
            (Some(50), Some("1.1.0"))
        );
        let (out, calls) = invoke(&ADD_ENV, r#"{"cniVersion":"0.2.0","name":"n"}"#);
        assert_eq!(calls, vec!["add"]);
        assert_eq!(
            serde_json::from_str::<Value>(&out.stdout).unwrap()["cniVersion"],
            "0.2.0"
        );
    }
}
