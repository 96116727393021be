//! `mactrunk-etcd`: the etcd helper of mactrunk-ipam's cluster mode.
//!
//! mactrunk-ipam (and mactrunk's in-process IPAM) never link an etcd client:
//! it would cost every plugin call its size and start time, also without
//! `ipam.cluster`. When an operation really needs etcd (claim or return a
//! block, a static address outside the node's blocks, GC, STATUS, the admin
//! commands), the plugin starts this program from its own directory and
//! talks line-delimited JSON on its stdin/stdout: one request line, one
//! response line, over one etcd connection for the whole plugin call. The
//! block logic stays in the plugin; this is a thin, generic KV layer.
//!
//! ```text
//! -> {"endpoints":["http://..."],"tls":{"ca":PEM,"cert":PEM,"key":PEM}|null,"timeoutMs":N}
//! <- {"ok":true}                                  (connected)
//! -> {"op":"list","prefix":P}
//! <- {"ok":true,"kvs":[{"key":K,"value":V,"modRevision":N}, ...]}
//! -> {"op":"create","key":K,"value":V}            (one txn: put if the key does not exist)
//! <- {"ok":true,"created":true} | {"ok":true,"created":false,"value":EXISTING}
//! -> {"op":"deleteIf","key":K,"value":V}          (one txn: delete if the value is V)
//! <- {"ok":true,"deleted":BOOL}
//! -> {"op":"put","key":K,"value":V}
//! <- {"ok":true}
//! errors: {"ok":false,"unreachable":BOOL,"msg":"..."}
//! ```
//!
//! The TLS material arrives as PEM text, not paths: the plugin opens the
//! files named by a possibly hostile config with its own no-follow, bounded
//! reads. The plugin also enforces the deadline itself (it kills this
//! process); the timeouts here only make a clean error more likely.
//! Nothing but responses goes to stdout; EOF on stdin ends the program.

use std::io::{self, BufRead, Write};
use std::time::Duration;

use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, GetOptions, Identity, TlsOptions, Txn,
    TxnOp, TxnOpResponse,
};
use serde::Deserialize;
use serde_json::{Value, json};

/// A request or session line is small; anything longer is not ours.
const MAX_LINE: usize = 1 << 20;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Tls {
    ca: String,
    cert: Option<String>,
    key: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Session {
    endpoints: Vec<String>,
    tls: Option<Tls>,
    timeout_ms: u64,
}

#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
enum Request {
    List { prefix: String },
    Create { key: String, value: String },
    DeleteIf { key: String, value: String },
    Put { key: String, value: String },
}

fn error(unreachable: bool, msg: impl std::fmt::Display) -> Value {
    json!({"ok": false, "unreachable": unreachable, "msg": msg.to_string()})
}

/// Is this failure "etcd could not be reached in time" (the plugin's code
/// 11) rather than etcd refusing the request (bad auth, a bad key)?
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

fn etcd_error(e: etcd_client::Error) -> Value {
    error(is_unreachable(&e), e)
}

async fn connect(s: &Session) -> Result<Client, Value> {
    if s.endpoints.is_empty() {
        return Err(error(false, "no endpoints"));
    }
    let timeout = Duration::from_millis(s.timeout_ms.clamp(1, 600_000));
    let mut opts = ConnectOptions::new()
        .with_connect_timeout(timeout)
        .with_timeout(timeout);
    if let Some(tls) = &s.tls {
        let mut t = TlsOptions::new().ca_certificate(Certificate::from_pem(tls.ca.as_bytes()));
        match (&tls.cert, &tls.key) {
            (Some(c), Some(k)) => t = t.identity(Identity::from_pem(c.as_bytes(), k.as_bytes())),
            (None, None) => {}
            _ => return Err(error(false, "tls: cert and key go together")),
        }
        opts = opts.with_tls(t);
    }
    Client::connect(&s.endpoints, Some(opts))
        .await
        .map_err(etcd_error)
}

async fn handle(client: &mut Client, req: Request) -> Result<Value, etcd_client::Error> {
    Ok(match req {
        Request::List { prefix } => {
            let resp = client
                .get(prefix.as_bytes(), Some(GetOptions::new().with_prefix()))
                .await?;
            let kvs: Vec<Value> = resp
                .kvs()
                .iter()
                .map(|kv| {
                    json!({
                        "key": String::from_utf8_lossy(kv.key()),
                        "value": String::from_utf8_lossy(kv.value()),
                        "modRevision": kv.mod_revision(),
                    })
                })
                .collect();
            json!({"ok": true, "kvs": kvs})
        }
        Request::Create { key, value } => {
            // The claim: exactly one writer of a key that does not exist wins.
            let txn = Txn::new()
                .when([Compare::create_revision(
                    key.as_bytes(),
                    CompareOp::Equal,
                    0,
                )])
                .and_then([TxnOp::put(key.as_bytes(), value.as_bytes(), None)])
                .or_else([TxnOp::get(key.as_bytes(), None)]);
            let resp = client.txn(txn).await?;
            if resp.succeeded() {
                json!({"ok": true, "created": true})
            } else {
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
                    // Deleted between the compare and the get of the same txn
                    // cannot happen (one revision); empty only if it was "".
                    .unwrap_or_default();
                json!({"ok": true, "created": false, "value": existing})
            }
        }
        Request::DeleteIf { key, value } => {
            let txn = Txn::new()
                .when([Compare::value(
                    key.as_bytes(),
                    CompareOp::Equal,
                    value.as_bytes(),
                )])
                .and_then([TxnOp::delete(key.as_bytes(), None)]);
            let resp = client.txn(txn).await?;
            json!({"ok": true, "deleted": resp.succeeded()})
        }
        Request::Put { key, value } => {
            client.put(key.as_bytes(), value.as_bytes(), None).await?;
            json!({"ok": true})
        }
    })
}

/// One line from stdin, at most MAX_LINE bytes; None at EOF.
fn read_line(input: &mut impl BufRead) -> io::Result<Option<String>> {
    let mut buf = Vec::new();
    let n = std::io::Read::take(&mut *input, MAX_LINE as u64 + 1).read_until(b'\n', &mut buf)?;
    if n == 0 {
        return Ok(None);
    }
    if buf.len() > MAX_LINE {
        return Err(io::Error::other("request line too long"));
    }
    Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
}

fn reply(out: &mut impl Write, v: &Value) -> io::Result<()> {
    let mut line = v.to_string();
    line.push('\n');
    out.write_all(line.as_bytes())?;
    out.flush()
}

fn run() -> io::Result<()> {
    if std::env::args_os().nth(1).is_some_and(|a| a == "--version") {
        println!("mactrunk-etcd {}", env!("CARGO_PKG_VERSION"));
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let stdin = io::stdin();
    let mut input = stdin.lock();
    let stdout = io::stdout();
    let mut out = stdout.lock();

    let Some(first) = read_line(&mut input)? else {
        return Ok(());
    };
    let session: Session = match serde_json::from_str(&first) {
        Ok(s) => s,
        Err(e) => return reply(&mut out, &error(false, format!("session: {e}"))),
    };
    let mut client = match rt.block_on(connect(&session)) {
        Ok(c) => c,
        Err(v) => return reply(&mut out, &v),
    };
    reply(&mut out, &json!({"ok": true}))?;

    while let Some(line) = read_line(&mut input)? {
        if line.trim().is_empty() {
            continue;
        }
        let resp = match serde_json::from_str::<Request>(&line) {
            Ok(req) => rt
                .block_on(handle(&mut client, req))
                .unwrap_or_else(etcd_error),
            Err(e) => error(false, format!("request: {e}")),
        };
        reply(&mut out, &resp)?;
    }
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        // The plugin reads stdout only; this is for a person running it by hand.
        eprintln!("mactrunk-etcd: {e}");
        std::process::exit(1);
    }
}
