//! `mactrunk-ipam` run by hand: inspect and repair IPAM stores.
//!
//! ```text
//! mactrunk-ipam list    [--data-dir DIR] [NETWORK]
//! mactrunk-ipam usage   [--config FILE | --conf-dir DIR]
//! mactrunk-ipam release [--data-dir DIR] NETWORK (--ip IP | --container ID [--ifname IF])
//! mactrunk-ipam gc      [--data-dir DIR] NETWORK (--keep ID[:IFNAME]... | --keep-file FILE) [--dry-run]
//! mactrunk-ipam metrics [--data-dir DIR] [--config FILE | --conf-dir DIR] [--textfile PATH] [--no-netns-check]
//! mactrunk-ipam blocks  [--data-dir DIR] NETWORK
//! mactrunk-ipam release-node [--data-dir DIR] NETWORK NODE [--force]
//! ```
//!
//! Every command takes `--json` (one JSON document on stdout) and `--help`.
//! Exit status: 0 success, 1 failure (message on stderr), 2 usage error.
//!
//! The stores are the ones the plugins write (`<dataDir>/<network>/`, the
//! reference host-local layout). `release` and `gc` take the store's lock,
//! so they are safe next to a runtime that is adding and deleting
//! containers; the read-only commands (`list`, `usage`, `gc --dry-run`) open
//! stores with [`StoreReader`](crate::ipam::store::StoreReader): shared lock
//! if the store has a lock file, and nothing created or written, whatever
//! directory they are pointed at.
//!
//! - [`args`]: the command line, one enum variant per subcommand (pure);
//! - [`report`]: what a command did, as a table or as JSON (pure);
//! - [`metrics`]: the `metrics` report as Prometheus text (pure);
//! - [`commands`]: what each command does against the stores;
//! - here: the process glue (exit statuses, usage errors, `--json` errors,
//!   `--version`).

mod args;
mod cluster;
mod commands;
mod metrics;
mod report;
#[cfg(test)]
mod tests;

use std::ffi::OsString;
use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};

use serde_json::json;

use args::{Parsed, UsageError};
use commands::{Failure, execute};
use report::Report;

/// Makes the etcd connection of the cluster commands (set by mactrunk-etcd).
pub type KvConnect =
    fn(
        &crate::ipam::cluster::ClusterConfig,
    ) -> Result<Box<dyn crate::ipam::cluster::kv::ClusterKv>, crate::cni::CniError>;

/// The cluster commands' etcd connection: set only in mactrunk-etcd, by
/// [`cluster_main`]. mactrunk-ipam execs the helper for `blocks` and
/// `release-node` instead, and links neither them nor an etcd client.
static CLUSTER_KV: std::sync::OnceLock<KvConnect> = std::sync::OnceLock::new();

/// The admin tool as run by mactrunk-etcd (`mactrunk-etcd admin ARGS`),
/// with the cluster commands and `connect` for etcd.
pub fn cluster_main(args: &[OsString], connect: KvConnect) -> i32 {
    let _ = CLUSTER_KV.set(connect);
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    // A closure of its own (not a pointer stored in a static): the plugin's
    // instance of `run` then has no path to the cluster commands at all.
    run(args, &mut stdout.lock(), &mut stderr.lock(), &|c| {
        Some(cluster::execute(c))
    })
}

/// Exit statuses.
const EXIT_OK: i32 = 0;
const EXIT_FAILURE: i32 = 1;
const EXIT_USAGE: i32 = 2;

/// `mactrunk-ipam` run by hand (arguments, no `CNI_COMMAND`): the process's
/// arguments without the program name in, the exit status out.
pub fn main(args: &[OsString]) -> i32 {
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    run(args, &mut stdout.lock(), &mut stderr.lock(), &|_| None)
}

/// Runs the cluster commands (`blocks`, `release-node`) where they are
/// linked (mactrunk-etcd); None: exec the helper.
type ClusterRun<'a> = &'a dyn Fn(&args::Command) -> Option<Result<Report, Failure>>;

/// Parse, execute, print; returns the exit status. A panic is a failure
/// (exit 1), never exit 101; with `--json` it, too, is a JSON error on stdout.
fn run(
    args: &[OsString],
    out: &mut dyn Write,
    err: &mut dyn Write,
    cluster: ClusterRun<'_>,
) -> i32 {
    let json = wants_json(args);
    let status = {
        let (o, e) = (&mut *out, &mut *err);
        catch_unwind(AssertUnwindSafe(|| dispatch(args, json, o, e, cluster)))
    };
    status.unwrap_or_else(|_| {
        // The panic message went to stderr already.
        let msg = "mactrunk-ipam hit an internal error (see its stderr)";
        let _ = writeln!(err, "mactrunk-ipam: {msg}");
        if json {
            json_error(out, msg, EXIT_FAILURE);
        }
        EXIT_FAILURE
    })
}

/// `json`: `--json` among the raw arguments, for errors before the command
/// line is parsed.
fn dispatch(
    args: &[OsString],
    json: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
    cluster: ClusterRun<'_>,
) -> i32 {
    match args::parse(args) {
        Err(e) => usage_error(&e, json, out, err),
        Ok(Parsed::Help(text)) => {
            let _ = write!(out, "{text}");
            EXIT_OK
        }
        Ok(Parsed::Version) => {
            let _ = writeln!(out, "{}", crate::cni::entry::version_text("mactrunk-ipam"));
            EXIT_OK
        }
        Ok(Parsed::Run { cmd, json })
            if matches!(
                cmd,
                args::Command::Blocks { .. } | args::Command::ReleaseNode { .. }
            ) =>
        {
            match cluster(&cmd) {
                Some(Ok(report)) => print_report(&report, json, out, err),
                Some(Err(f)) => failure(&f, json, out, err),
                None => exec_helper(args, json, out, err),
            }
        }
        Ok(Parsed::Run { cmd, json }) => match execute(&cmd) {
            Ok(report) => print_report(&report, json, out, err),
            Err(f) => failure(&f, json, out, err),
        },
    }
}

/// `blocks` and `release-node` run in the etcd helper beside this program:
/// exec it with the same arguments (it prints and exits itself).
fn exec_helper(args: &[OsString], json: bool, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    use std::os::unix::process::CommandExt;
    let f = match crate::ipam::cluster::etcd_exec::helper_path() {
        Ok(path) => {
            let _ = out.flush();
            let e = std::process::Command::new(&path)
                .arg("admin")
                .args(args)
                .exec();
            Failure(format!(
                "cannot run {} (the cluster IPAM's etcd helper, installed beside mactrunk-ipam): {e}",
                path.display()
            ))
        }
        Err(e) => Failure::from(e),
    };
    failure(&f, json, out, err)
}

/// Exit 2: the message and the command's help on stderr, nothing on stdout
/// but the JSON error with `--json`.
fn usage_error(e: &UsageError, json: bool, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let _ = writeln!(err, "mactrunk-ipam: {}\n", e.msg);
    let _ = write!(err, "{}", e.help);
    if json {
        json_error(out, &e.msg, EXIT_USAGE);
    }
    EXIT_USAGE
}

/// Exit 1 with nothing to show: the message on stderr (and as JSON).
fn failure(f: &Failure, json: bool, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let _ = writeln!(err, "mactrunk-ipam: {f}");
    if json {
        json_error(out, &f.0, EXIT_FAILURE);
    }
    EXIT_FAILURE
}

/// The report on stdout; exit 1 if the command partly failed (the report
/// says what) or stdout cannot be written.
fn print_report(report: &Report, json: bool, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let written = if json {
        writeln!(out, "{}", report.to_json())
    } else {
        write!(out, "{}", report.render_table())
    };
    if let Err(e) = written.and_then(|_| out.flush()) {
        let _ = writeln!(err, "mactrunk-ipam: cannot write the output: {e}");
        return EXIT_FAILURE;
    }
    if report.failed() {
        let _ = writeln!(err, "mactrunk-ipam: finished with errors (see the output)");
        return EXIT_FAILURE;
    }
    EXIT_OK
}

/// Was `--json` given (before a `--`)? Looked up in the raw arguments, so
/// that a usage error, too, is reported as JSON when the caller asked for it.
fn wants_json(args: &[OsString]) -> bool {
    args.iter()
        .take_while(|a| *a != "--")
        .any(|a| a == "--json")
}

/// A failure as the one JSON document on stdout (`--json`).
fn json_error(out: &mut dyn Write, msg: &str, status: i32) {
    let _ = writeln!(out, "{}", json!({"error": msg, "exitStatus": status}));
    let _ = out.flush();
}
