//! The real [`ClusterKv`]: a `mactrunk-etcd` child process (see its source
//! for the protocol), started from this program's own directory, at most
//! once per plugin call and only when an operation needs etcd. The deadline
//! is enforced here, not trusted to the child: past it the child is killed
//! and the call fails as unreachable (CNI code 11).

use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::config::ClusterConfig;
use super::kv::{ClusterKv, Kv, KvError};
use crate::cni::CniError;

pub const HELPER: &str = "mactrunk-etcd";
/// TLS files are small; bound the reads of paths a config names.
const MAX_PEM: u64 = 1 << 20;
/// A response line larger than this is not from our helper.
const MAX_RESPONSE: usize = 64 << 20;

/// The helper beside the running executable (mactrunk or mactrunk-ipam are
/// installed in the same directory). No environment override: a plugin
/// must not be steerable into exec'ing something else.
pub fn helper_path() -> Result<PathBuf, KvError> {
    let exe = std::env::current_exe()
        .map_err(|e| KvError::other(format!("cannot find this program's directory: {e}")))?;
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

/// A running helper with one etcd connection.
pub struct EtcdExec {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: ChildStdout,
    buf: Vec<u8>,
    deadline: Instant,
    /// For messages: the endpoints and the configured timeout.
    what: String,
    dead: bool,
}

impl EtcdExec {
    /// Start the helper and connect, all within `budget` from now (also the
    /// budget of every later request of this process: one plugin call).
    pub fn start(
        cluster: &ClusterConfig,
        tls: Value,
        budget: Duration,
    ) -> Result<EtcdExec, KvError> {
        let path = helper_path()?;
        let what = format!(
            "etcd at {} (ipam.cluster.timeoutMs {} ms)",
            cluster.endpoints_text(),
            cluster.timeout.as_millis()
        );
        let deadline = Instant::now() + budget;
        let mut child = Command::new(&path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                KvError::other(format!(
                    "cannot run {} (the cluster IPAM's etcd helper, installed beside the plugin): {e}",
                    path.display()
                ))
            })?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(KvError::other("etcd helper: no pipes"));
        };
        set_nonblocking(&stdout).map_err(|e| KvError::other(format!("etcd helper: {e}")))?;
        let mut me = EtcdExec {
            child,
            stdin: Some(stdin),
            stdout,
            buf: Vec::new(),
            deadline,
            what,
            dead: false,
        };
        let session = json!({
            "endpoints": cluster.endpoints,
            "tls": tls,
            "timeoutMs": budget.as_millis() as u64,
        });
        me.call(&session)?;
        Ok(me)
    }

    /// One request line, one response line, before the deadline.
    fn call(&mut self, req: &Value) -> Result<Value, KvError> {
        if self.dead {
            return Err(KvError::unreachable(format!(
                "{} unreachable: gave up earlier in this call",
                self.what
            )));
        }
        let mut line = req.to_string();
        line.push('\n');
        let written = match self.stdin.as_mut() {
            Some(w) => w.write_all(line.as_bytes()).and_then(|()| w.flush()),
            None => Err(io::Error::other("stdin closed")),
        };
        if let Err(e) = written {
            self.kill();
            return Err(KvError::other(format!("etcd helper exited: {e}")));
        }
        let resp = match self.read_line() {
            Ok(l) => l,
            Err(e) => {
                self.kill();
                return Err(e);
            }
        };
        let v: Value = serde_json::from_slice(&resp)
            .map_err(|e| KvError::other(format!("etcd helper: bad response: {e}")))?;
        if v.get("ok").and_then(Value::as_bool) == Some(true) {
            return Ok(v);
        }
        let msg = v.get("msg").and_then(Value::as_str).unwrap_or("failed");
        if v.get("unreachable").and_then(Value::as_bool) == Some(true) {
            Err(KvError::unreachable(format!(
                "{} unreachable: {msg}",
                self.what
            )))
        } else {
            Err(KvError::other(format!("{}: {msg}", self.what)))
        }
    }

    fn read_line(&mut self) -> Result<Vec<u8>, KvError> {
        let fd = self.stdout.as_raw_fd();
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let rest = self.buf.split_off(i + 1);
                let mut line = std::mem::replace(&mut self.buf, rest);
                line.pop();
                return Ok(line);
            }
            if self.buf.len() > MAX_RESPONSE {
                return Err(KvError::other("etcd helper: response too long"));
            }
            let left = self.deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(KvError::unreachable(format!(
                    "{} unreachable: no answer within the timeout",
                    self.what
                )));
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
                return Err(KvError::other(format!("etcd helper: poll: {e}")));
            }
            if rc == 0 {
                continue; // the deadline check above ends it
            }
            let mut chunk = [0u8; 16 * 1024];
            // SAFETY: reading into a local buffer of the given length.
            let n = unsafe { libc::read(fd, chunk.as_mut_ptr().cast(), chunk.len()) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if matches!(
                    e.kind(),
                    io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
                ) {
                    continue;
                }
                return Err(KvError::other(format!("etcd helper: read: {e}")));
            }
            if n == 0 {
                return Err(KvError::other("etcd helper exited without an answer"));
            }
            self.buf.extend_from_slice(&chunk[..n as usize]);
        }
    }

    fn kill(&mut self) {
        if !self.dead {
            self.dead = true;
            self.stdin = None;
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Drop for EtcdExec {
    /// Every answer is in: the helper has nothing left to do that matters.
    fn drop(&mut self) {
        self.kill();
    }
}

fn set_nonblocking(f: &impl AsRawFd) -> io::Result<()> {
    let fd = f.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn str_field(v: &Value, f: &str) -> Result<String, KvError> {
    v.get(f)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| KvError::other(format!("etcd helper: response without {f}")))
}

impl ClusterKv for EtcdExec {
    fn list(&mut self, prefix: &str) -> Result<Vec<Kv>, KvError> {
        let v = self.call(&json!({"op": "list", "prefix": prefix}))?;
        let kvs = v
            .get("kvs")
            .and_then(Value::as_array)
            .ok_or_else(|| KvError::other("etcd helper: response without kvs"))?;
        kvs.iter()
            .map(|kv| {
                Ok(Kv {
                    key: str_field(kv, "key")?,
                    value: str_field(kv, "value")?,
                })
            })
            .collect()
    }

    fn create(&mut self, key: &str, value: &str) -> Result<Option<String>, KvError> {
        let v = self.call(&json!({"op": "create", "key": key, "value": value}))?;
        match v.get("created").and_then(Value::as_bool) {
            Some(true) => Ok(None),
            Some(false) => Ok(Some(str_field(&v, "value")?)),
            None => Err(KvError::other("etcd helper: response without created")),
        }
    }

    fn delete_if(&mut self, key: &str, value: &str) -> Result<bool, KvError> {
        let v = self.call(&json!({"op": "deleteIf", "key": key, "value": value}))?;
        v.get("deleted")
            .and_then(Value::as_bool)
            .ok_or_else(|| KvError::other("etcd helper: response without deleted"))
    }

    fn put(&mut self, key: &str, value: &str) -> Result<(), KvError> {
        self.call(&json!({"op": "put", "key": key, "value": value}))
            .map(|_| ())
    }
}
