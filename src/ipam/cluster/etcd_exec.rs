//! The side effect of cluster mode in the plugin: the `mactrunk-etcd`
//! helper process, started from this program's own directory only when an
//! operation needs etcd, at most once per plugin call.
//!
//! The plugin does not link an etcd client, nor the block engine that talks
//! to it: both live in the helper (`mactrunk-etcd engine`), which runs
//! [`super::remote::serve`] on this plugin's store **under this plugin's
//! lock** (the lock's descriptor is inherited: one flock, one holder at a
//! time for the node's other plugin calls). One JSON request on the
//! helper's stdin, one JSON response line on its stdout. The deadline is
//! enforced here, not trusted to the helper: past it the helper is killed
//! (a kill -9 of the engine is as safe as one of the plugin: see
//! docs/cluster.md) and the call fails with code 11.

use std::io::{self, Write};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::config::ClusterConfig;
use crate::cni::{CniError, code};

pub const HELPER: &str = "mactrunk-etcd";
/// TLS files are small; bound the reads of paths a config names.
const MAX_PEM: u64 = 1 << 20;
/// A response line larger than this is not from our helper.
const MAX_RESPONSE: usize = 16 << 20;

/// The helper beside the running executable (mactrunk and mactrunk-ipam are
/// installed in the same directory). No environment override: a plugin
/// must not be steerable into exec'ing something else.
pub fn helper_path() -> Result<PathBuf, CniError> {
    let exe = std::env::current_exe().map_err(|e| {
        CniError::new(
            code::IO,
            format!("cannot find this program's directory: {e}"),
        )
    })?;
    Ok(exe.with_file_name(HELPER))
}

/// The PEM texts of `cluster.tls`, read with the store's no-follow,
/// regular-file, bounded reads (the paths come from the config). Code 7
/// naming the key when one cannot be read.
pub fn read_tls(cluster: &ClusterConfig) -> Result<Value, CniError> {
    let Some(tls) = &cluster.tls else {
        return Ok(Value::Null);
    };
    let read = |field: &str, p: &std::path::Path| -> Result<String, CniError> {
        let key = format!("ipam.cluster.tls.{field}");
        let raw = crate::sys::fs::read_regular(p, MAX_PEM)
            .map_err(|e| CniError::config(&key, format!("cannot read {}: {e}", p.display())))?
            .ok_or_else(|| CniError::config(&key, format!("{} does not exist", p.display())))?;
        String::from_utf8(raw)
            .map_err(|_| CniError::config(&key, format!("{} is not PEM text", p.display())))
    };
    let mut out = json!({"ca": read("ca", &tls.ca)?});
    if let (Some(c), Some(k)) = (&tls.cert, &tls.key) {
        out["cert"] = read("cert", c)?.into();
        out["key"] = read("key", k)?.into();
    }
    Ok(out)
}

/// "etcd at URL, ... (ipam.cluster.timeoutMs N ms)", for messages.
pub fn what(cluster: &ClusterConfig) -> String {
    format!(
        "etcd at {} (ipam.cluster.timeoutMs {} ms)",
        cluster.endpoints_text(),
        cluster.timeout.as_millis()
    )
}

/// Run one engine request in the helper on the store locked by `lock`,
/// within `budget`. The response's `{"ok": false, "code", "msg"}` comes
/// back as that CNI error.
pub fn call(
    cluster: &ClusterConfig,
    lock: BorrowedFd<'_>,
    mut req: Value,
    budget: Duration,
) -> Result<Value, CniError> {
    let deadline = Instant::now() + budget;
    let path = helper_path()?;
    // A copy of the lock's descriptor without FD_CLOEXEC, for the helper to
    // inherit (F_DUPFD does not copy the flag); closed here after the spawn.
    // SAFETY: fcntl on a descriptor we hold; the result is checked.
    let fd = unsafe { libc::fcntl(lock.as_raw_fd(), libc::F_DUPFD, 3) };
    if fd < 0 {
        return Err(CniError::new(
            code::IO,
            format!(
                "cluster IPAM: dup of the store lock: {}",
                io::Error::last_os_error()
            ),
        ));
    }
    req["lockFd"] = json!(fd);
    req["budgetMs"] = json!(budget.as_millis() as u64);
    let spawned = Command::new(&path)
        .arg("engine")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn();
    // SAFETY: `fd` is ours (from F_DUPFD above) and closed exactly once.
    unsafe { libc::close(fd) };
    let mut child = spawned.map_err(|e| {
        CniError::new(
            code::IO,
            format!(
                "cannot run {} (the cluster IPAM's etcd helper, installed beside the plugin): {e}",
                path.display()
            ),
        )
    })?;
    let result = exchange(&mut child, &req, deadline);
    if result.is_err() {
        let _ = child.kill();
    }
    let _ = child.wait();
    let v = result.map_err(|e| match e {
        Exchange::Timeout => CniError::new(
            code::TRY_AGAIN_LATER,
            format!(
                "{} unreachable: no answer within the timeout",
                what(cluster)
            ),
        ),
        Exchange::Broken(m) => CniError::new(code::IO, format!("etcd helper: {m}")),
    })?;
    if v.get("ok").and_then(Value::as_bool) == Some(true) {
        return Ok(v);
    }
    let c = v
        .get("code")
        .and_then(Value::as_u64)
        .and_then(|c| u32::try_from(c).ok())
        .unwrap_or(code::INTERNAL);
    let msg = v.get("msg").and_then(Value::as_str).unwrap_or("failed");
    Err(CniError::new(c, msg))
}

enum Exchange {
    Timeout,
    Broken(String),
}

fn exchange(
    child: &mut std::process::Child,
    req: &Value,
    deadline: Instant,
) -> Result<Value, Exchange> {
    let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        return Err(Exchange::Broken("no pipes".into()));
    };
    let mut line = req.to_string();
    line.push('\n');
    // One small request: fits the pipe buffer, so this does not block on a
    // helper that does not read.
    stdin
        .write_all(line.as_bytes())
        .map_err(|e| Exchange::Broken(format!("write: {e}")))?;
    drop(stdin);
    let fd = stdout.as_raw_fd();
    let mut buf: Vec<u8> = Vec::new();
    loop {
        if let Some(i) = buf.iter().position(|&b| b == b'\n') {
            buf.truncate(i);
            return serde_json::from_slice(&buf)
                .map_err(|e| Exchange::Broken(format!("bad response: {e}")));
        }
        if buf.len() > MAX_RESPONSE {
            return Err(Exchange::Broken("response too long".into()));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Exchange::Timeout);
        }
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd for the duration of the call.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(Exchange::Broken(format!("poll: {e}")));
        }
        if rc == 0 {
            continue; // the deadline check above ends it
        }
        let mut chunk = [0u8; 16 * 1024];
        // SAFETY: reading into a local buffer of the given length; poll said
        // the descriptor is readable, so this does not block.
        let n = unsafe { libc::read(fd, chunk.as_mut_ptr().cast(), chunk.len()) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(Exchange::Broken(format!("read: {e}")));
        }
        if n == 0 {
            return Err(Exchange::Broken("exited without an answer".into()));
        }
        buf.extend_from_slice(&chunk[..n as usize]);
    }
}
