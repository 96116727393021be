//! `mactrunk-etcd`: the etcd helper of mactrunk-ipam's cluster mode.
//!
//! mactrunk-ipam and mactrunk never link an etcd client nor the block engine:
//! both would cost every plugin call size and start time, also without
//! `ipam.cluster`. When an operation really needs etcd (claim or return a
//! block, a static address outside the node's blocks, GC, STATUS with full
//! blocks), the plugin starts this program from its own directory:
//!
//! - `mactrunk-etcd engine`: one JSON request on stdin, run by the engine
//!   (`mactrunk::ipam::cluster::remote`) on the plugin's store under the
//!   plugin's lock (inherited descriptor), one JSON response line on stdout.
//!   The plugin enforces the deadline (it kills this process).
//! - `mactrunk-etcd admin ARGS`: `mactrunk-ipam blocks|release-node ARGS`
//!   exec this.
//!
//! The engine talks to etcd through [`ClusterKv`]; this is its etcd-client
//! implementation (one connection per process, every call bounded by what
//! is left of the budget). TLS material is read by the library's no-follow,
//! bounded reads (the paths come from a possibly hostile config).

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, GetOptions, Identity, TlsOptions, Txn,
    TxnOp, TxnOpResponse,
};
use mactrunk::cni::{CniError, code};
use mactrunk::ipam::cluster::ClusterConfig;
use mactrunk::ipam::cluster::etcd_exec::{read_tls, what};
use mactrunk::ipam::cluster::kv::{ClusterKv, Kv, KvError};
use serde_json::Value;

/// A request is small; anything longer is not from our plugin.
const MAX_REQUEST: u64 = 4 << 20;

/// Is this failure "etcd could not be reached in time" (CNI code 11)
/// rather than etcd refusing the request (bad auth, a bad key)?
fn is_unreachable(e: &etcd_client::Error) -> bool {
    use etcd_client::Error as E;
    match e {
        E::TransportError(_) | E::IoError(_) | E::ElectError(_) => true,
        // gRPC codes (tonic's Code is not re-exported): Cancelled 1,
        // Unknown 2, DeadlineExceeded 4, Unavailable 14.
        E::GRpcStatus(s) => matches!(i32::from(s.code()), 1 | 2 | 4 | 14),
        _ => false,
    }
}

/// Is a failed request worth sending to the next member? Transport errors,
/// a member without a leader, "leader changed", a timeout: another member
/// may well answer.
fn is_retryable(e: &etcd_client::Error) -> bool {
    is_unreachable(e)
}

/// An error with its causes ("transport error: ...: invalid peer
/// certificate: UnknownIssuer"): the top level alone rarely says why.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}

/// Does a failure's text say the TLS handshake was refused (by either
/// side)?
fn is_tls_rejection(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    [
        "certificate",
        "handshake",
        "tls",
        "unknownissuer",
        "unknown ca",
    ]
    .iter()
    .any(|w| t.contains(w))
}

/// The longest one member gets before the next is tried, while untried
/// members remain (a silent member must not eat the whole budget).
const MEMBER_SLICE: Duration = Duration::from_millis(400);
/// Pause before going round the members again (an election takes a
/// moment).
const ROUND_PAUSE: Duration = Duration::from_millis(50);

/// etcd through etcd-client, on a current-thread runtime; every call ends
/// by `deadline`. One member at a time: etcd-client's balanced channel
/// over every endpoint keeps routing some requests to a member that is down
/// (measured: 4 of 10 requests failed after a kill -9 of one member), so
/// this client talks to one member and moves to the next when a request
/// fails in a way another member may not (transport error, no leader,
/// leader changed, no answer), within the deadline. Losing a member costs
/// one failed attempt, not the ADD.
struct EtcdKv {
    rt: tokio::runtime::Runtime,
    endpoints: Vec<String>,
    opts: ConnectOptions,
    /// The member in use and its client (None: not connected yet, or its
    /// last request failed).
    current: usize,
    client: Option<Client>,
    deadline: Instant,
    what: String,
}

impl EtcdKv {
    fn connect(cluster: &ClusterConfig, budget: Duration) -> Result<EtcdKv, CniError> {
        let deadline = Instant::now() + budget;
        let tls = read_tls(cluster)?;
        let what = what(cluster);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| CniError::new(code::IO, format!("etcd helper: runtime: {e}")))?;
        let mut opts = ConnectOptions::new()
            .with_connect_timeout(budget)
            .with_timeout(budget)
            // A member cut off from the others answers "no leader" at once
            // instead of hanging: the next member is tried.
            .with_require_leader(true);
        if let Value::Object(t) = &tls {
            let pem = |k: &str| t.get(k).and_then(Value::as_str).unwrap_or("").as_bytes();
            let mut o = TlsOptions::new().ca_certificate(Certificate::from_pem(pem("ca")));
            if t.contains_key("cert") {
                o = o.identity(Identity::from_pem(pem("cert"), pem("key")));
            }
            opts = opts.with_tls(o);
        }
        let n = cluster.endpoints.len().max(1);
        // Nodes start at different members (spreads the load); the order
        // after that is the configured one.
        let current = (mactrunk::ipam::cluster::blocks::seed(&cluster.node) % n as u128) as usize;
        Ok(EtcdKv {
            rt,
            endpoints: cluster.endpoints.clone(),
            opts,
            current,
            client: None,
            deadline,
            what,
        })
    }

    fn unreachable(&self, why: impl std::fmt::Display) -> KvError {
        KvError::unreachable(format!("{} unreachable: {why}", self.what))
    }

    /// Run one request within what is left of the budget, moving from
    /// member to member while the failure is one another member may not
    /// have. `f` may run more than once: every request this helper sends is
    /// safe to repeat (a create that did land is recognised by its value).
    fn run<T>(
        &mut self,
        f: impl AsyncFn(&mut Client) -> Result<T, etcd_client::Error>,
    ) -> Result<T, KvError> {
        let n = self.endpoints.len();
        if n == 0 {
            return Err(self.unreachable("no endpoint"));
        }
        let mut last: Option<String> = None;
        let mut tried = 0usize;
        let mut tls_rejections = 0usize;
        let mut paused = false;
        loop {
            let left = self.deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let why = last.unwrap_or_else(|| "no answer within the timeout".into());
                return Err(self.unreachable(why));
            }
            if tried > 0 && tried.is_multiple_of(n) && !paused {
                std::thread::sleep(ROUND_PAUSE.min(left));
                paused = true;
                continue;
            }
            paused = false;
            let endpoint = self.endpoints[self.current].clone();
            // While other members are untried in this round, one member gets a
            // slice of the budget; the last one gets the rest.
            let untried = n - tried % n;
            let slice = if untried > 1 {
                (left / untried as u32).max(MEMBER_SLICE).min(left)
            } else {
                left
            };
            let opts = self.opts.clone();
            let client = &mut self.client;
            let outcome = self.rt.block_on(async {
                tokio::time::timeout(slice, async {
                    if client.is_none() {
                        *client = Some(Client::connect([endpoint.as_str()], Some(opts)).await?);
                    }
                    match client.as_mut() {
                        Some(c) => f(c).await,
                        None => Err(etcd_client::Error::InvalidArgs("no client".into())),
                    }
                })
                .await
            });
            let e = match outcome {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) if !is_retryable(&e) => {
                    return Err(KvError {
                        unreachable: false,
                        msg: format!("{}: {}", self.what, chain(&e)),
                    });
                }
                Ok(Err(e)) => {
                    let text = chain(&e);
                    if is_tls_rejection(&text) {
                        tls_rejections += 1;
                    }
                    format!("{endpoint}: {text}")
                }
                Err(_) => format!("{endpoint}: no answer within {} ms", slice.as_millis()),
            };
            // Every member refused our TLS (wrong CA, a client certificate
            // they do not trust, https without `tls`): retrying cannot help
            // and the operator needs the reason, not a timeout.
            if tls_rejections == n {
                return Err(self.unreachable(format!("TLS rejected by every member; {e}")));
            }
            last = Some(e);
            self.client = None;
            self.current = (self.current + 1) % n;
            tried += 1;
        }
    }

    /// The claim: exactly one writer of a key that does not exist wins;
    /// `also` is put in the same transaction when it does.
    fn create_txn(
        &mut self,
        key: &str,
        value: &str,
        also: Option<(&str, &str)>,
    ) -> Result<Option<String>, KvError> {
        self.run(async |c| {
            let mut puts = vec![TxnOp::put(key.as_bytes(), value.as_bytes(), None)];
            if let Some((k, v)) = also {
                puts.push(TxnOp::put(k.as_bytes(), v.as_bytes(), None));
            }
            let txn = Txn::new()
                .when([Compare::create_revision(
                    key.as_bytes(),
                    CompareOp::Equal,
                    0,
                )])
                .and_then(puts)
                .or_else([TxnOp::get(key.as_bytes(), None)]);
            let resp = c.txn(txn).await?;
            if resp.succeeded() {
                return Ok(None);
            }
            let existing = resp
                .op_responses()
                .into_iter()
                .find_map(|op| match op {
                    TxnOpResponse::Get(g) => g
                        .kvs()
                        .first()
                        .map(|kv| String::from_utf8_lossy(kv.value()).into_owned()),
                    _ => None,
                })
                .unwrap_or_default();
            // A retry of a create whose answer was lost finds its own value
            // (node, claim time and subnet: nobody else writes that string).
            if existing == value {
                return Ok(None);
            }
            Ok(Some(existing))
        })
    }
}

impl ClusterKv for EtcdKv {
    fn list(&mut self, prefix: &str) -> Result<Vec<Kv>, KvError> {
        self.run(async |c| {
            let resp = c
                .get(prefix.as_bytes(), Some(GetOptions::new().with_prefix()))
                .await?;
            Ok(resp
                .kvs()
                .iter()
                .map(|kv| Kv {
                    key: String::from_utf8_lossy(kv.key()).into_owned(),
                    value: String::from_utf8_lossy(kv.value()).into_owned(),
                })
                .collect())
        })
    }

    fn create(&mut self, key: &str, value: &str) -> Result<Option<String>, KvError> {
        self.create_txn(key, value, None)
    }

    fn create_with(
        &mut self,
        key: &str,
        value: &str,
        also: (&str, &str),
    ) -> Result<Option<String>, KvError> {
        self.create_txn(key, value, Some(also))
    }

    fn delete_if(&mut self, key: &str, value: &str) -> Result<bool, KvError> {
        self.run(async |c| {
            let txn = Txn::new()
                .when([Compare::value(
                    key.as_bytes(),
                    CompareOp::Equal,
                    value.as_bytes(),
                )])
                .and_then([TxnOp::delete(key.as_bytes(), None)]);
            Ok(c.txn(txn).await?.succeeded())
        })
    }

    fn put(&mut self, key: &str, value: &str) -> Result<(), KvError> {
        self.run(async |c| {
            c.put(key.as_bytes(), value.as_bytes(), None)
                .await
                .map(|_| ())
        })
    }
}

/// `mactrunk-etcd engine`: one request, one response line.
fn engine() -> i32 {
    let mut text = Vec::new();
    let read = io::stdin().lock().take(MAX_REQUEST).read_to_end(&mut text);
    let resp = match read
        .map_err(|e| e.to_string())
        .and_then(|_| serde_json::from_slice::<Value>(&text).map_err(|e| e.to_string()))
    {
        Ok(req) => {
            let budget = Duration::from_millis(
                req.get("budgetMs")
                    .and_then(Value::as_u64)
                    .unwrap_or(2000)
                    .clamp(1, 600_000),
            );
            mactrunk::ipam::cluster::remote::serve(&req, move |cluster| {
                Ok(Box::new(EtcdKv::connect(cluster, budget)?) as Box<dyn ClusterKv>)
            })
        }
        Err(e) => {
            serde_json::json!({"ok": false, "code": code::INTERNAL, "msg": format!("etcd helper request: {e}")})
        }
    };
    let mut out = io::stdout().lock();
    let written = writeln!(out, "{resp}").and_then(|()| out.flush());
    i32::from(written.is_err())
}

fn admin_connect(cluster: &ClusterConfig) -> Result<Box<dyn ClusterKv>, CniError> {
    Ok(Box::new(EtcdKv::connect(cluster, cluster.timeout)?))
}

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let status = match args.first().and_then(|a| a.to_str()) {
        Some("engine") => engine(),
        Some("admin") => mactrunk::admin::cluster_main(&args[1..], admin_connect),
        Some("--version") => {
            println!("mactrunk-etcd {}", env!("CARGO_PKG_VERSION"));
            0
        }
        _ => {
            eprintln!(
                "mactrunk-etcd: the etcd helper of mactrunk-ipam's cluster IPAM (docs/cluster.md); \
                 the plugins run it (`engine`), `mactrunk-ipam blocks|release-node` exec it (`admin`)"
            );
            2
        }
    };
    std::process::exit(status);
}
