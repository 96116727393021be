//! Executing another CNI plugin (a delegated IPAM) from `CNI_PATH`, exactly as
//! the reference plugins do: same environment but `CNI_COMMAND`, same config
//! on stdin, stderr passed through, one JSON document read from stdout.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};

use serde_json::Value;

use crate::cni::env::Command;
use crate::cni::{CniError, code};

/// Find `plugin` in the `CNI_PATH` directories.
pub fn find(plugin: &str, cni_path: &[String]) -> Result<PathBuf, CniError> {
    if cni_path.is_empty() {
        return Err(CniError::env(format!(
            "CNI_PATH: not set, but ipam.type {plugin:?} must be executed from it"
        )));
    }
    cni_path
        .iter()
        .map(|dir| Path::new(dir).join(plugin))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            CniError::new(
                code::DELEGATE,
                format!(
                    "ipam.type: plugin {plugin:?} not found in CNI_PATH ({})",
                    cni_path.join(":")
                ),
            )
        })
}

/// Run the delegate for `cmd` with `stdin` as its config. Returns its stdout
/// JSON (None when it printed nothing, as DEL may), or its error with the
/// delegate's own code.
pub fn exec(
    plugin: &str,
    cni_path: &[String],
    cmd: Command,
    stdin: &[u8],
) -> Result<Option<Value>, CniError> {
    let exe = find(plugin, cni_path)?;
    let mut child = Process::new(&exe)
        .env("CNI_COMMAND", cmd.as_str())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| {
            CniError::new(
                code::DELEGATE,
                format!(
                    "ipam plugin {plugin:?}: cannot execute {}: {e}",
                    exe.display()
                ),
            )
        })?;
    if let Some(mut input) = child.stdin.take() {
        // A plugin may exit without reading its stdin (e.g. VERSION); EPIPE is not our error.
        let _ = input.write_all(stdin);
    }
    let out = child.wait_with_output().map_err(|e| {
        CniError::new(
            code::DELEGATE,
            format!("ipam plugin {plugin:?}: waiting for it failed: {e}"),
        )
    })?;
    let text = String::from_utf8_lossy(&out.stdout);
    let parsed: Option<Value> = if text.trim().is_empty() {
        None
    } else {
        Some(serde_json::from_str(text.trim()).map_err(|e| {
            CniError::new(
                code::DELEGATE,
                format!(
                    "ipam plugin {plugin:?} {}: output is not JSON: {e}",
                    cmd.as_str()
                ),
            )
            .with_details(text.chars().take(512).collect::<String>())
        })?)
    };
    if out.status.success() {
        return Ok(parsed);
    }
    Err(delegate_error(
        plugin,
        cmd,
        parsed.as_ref(),
        out.status.code(),
    ))
}

/// Keep the delegate's code and message, naming the delegate.
fn delegate_error(
    plugin: &str,
    cmd: Command,
    err: Option<&Value>,
    status: Option<i32>,
) -> CniError {
    let what = format!("ipam plugin {plugin:?} {}", cmd.as_str());
    let Some(err) = err else {
        return CniError::new(
            code::DELEGATE,
            format!("{what} failed with exit status {status:?} and no error message"),
        );
    };
    let code = err
        .get("code")
        .and_then(Value::as_u64)
        .and_then(|c| u32::try_from(c).ok())
        .unwrap_or(code::DELEGATE);
    let msg = err.get("msg").and_then(Value::as_str).unwrap_or("failed");
    let details = err.get("details").and_then(Value::as_str).unwrap_or("");
    CniError::new(code, format!("{what}: {msg}")).with_details(details)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn delegate_errors_keep_code_and_name_plugin() {
        let e = delegate_error(
            "host-local",
            Command::Add,
            Some(&json!({"code": 11, "msg": "busy", "details": "d"})),
            Some(1),
        );
        assert_eq!(e.code, 11);
        assert_eq!(e.msg, "ipam plugin \"host-local\" ADD: busy");
        assert_eq!(e.details, "d");
        let e = delegate_error("x", Command::Del, None, Some(2));
        assert_eq!(e.code, code::DELEGATE);
        assert!(e.msg.contains("no error message"));
    }

    #[test]
    fn missing_plugin_and_path() {
        assert_eq!(find("host-local", &[]).unwrap_err().code, 4);
        let e = find("no-such-plugin", &["/nonexistent".into()]).unwrap_err();
        assert_eq!(e.code, code::DELEGATE);
        assert!(e.msg.contains("no-such-plugin"));
    }

    #[test]
    fn exec_reads_result_and_error() {
        let dir = std::env::temp_dir().join(format!("mactrunk-delegate-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |name: &str, body: &str| {
            let p = dir.join(name);
            std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        write("ok", r#"cat >/dev/null; echo "{\"cmd\":\"$CNI_COMMAND\"}""#);
        write("fail", r#"echo '{"code":7,"msg":"bad subnet"}'; exit 1"#);
        write("quiet", "exit 0");
        let path = vec![dir.display().to_string()];
        let v = exec("ok", &path, Command::Check, b"{}").unwrap().unwrap();
        assert_eq!(v["cmd"], "CHECK");
        let e = exec("fail", &path, Command::Add, b"{}").unwrap_err();
        assert_eq!(
            (e.code, e.msg.as_str()),
            (7, "ipam plugin \"fail\" ADD: bad subnet")
        );
        assert_eq!(exec("quiet", &path, Command::Del, b"{}").unwrap(), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
