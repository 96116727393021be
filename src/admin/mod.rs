//! `mactrunk-ipam` run by hand: inspect and repair IPAM stores.
//!
//! ```text
//! mactrunk-ipam list    [--data-dir DIR] [NETWORK]
//! mactrunk-ipam usage   [--config FILE | --conf-dir DIR]
//! mactrunk-ipam release [--data-dir DIR] NETWORK (--ip IP | --container ID [--ifname IF])
//! mactrunk-ipam gc      [--data-dir DIR] NETWORK (--keep ID[:IFNAME])... [--keep-file FILE] [--dry-run]
//! ```
//!
//! Every command takes `--json` (one JSON document on stdout) and `--help`.
//! Exit status: 0 success, 1 failure (message on stderr), 2 usage error.
//!
//! The stores are the ones the plugins write (`<dataDir>/<network>/`, the
//! reference host-local layout). `release` and `gc` take the store's lock,
//! so they are safe next to a runtime that is adding and deleting
//! containers; the read-only commands (`list`, `usage`, `gc --dry-run`) open
//! stores with [`StoreReader`](crate::ipam::store::StoreReader): shared lock if the store has a lock file,
//! and nothing created or written, whatever directory they are pointed at.
//!
//! - [`args`]: the command line (pure);
//! - [`report`]: what a command did, as a table or as JSON (pure);
//! - [`commands`]: what each command does against the stores;
//! - here: the process glue (exit statuses, usage errors, `--json` errors,
//!   `--version`).

mod args;
mod commands;
mod report;
#[cfg(test)]
mod tests;

use std::io::Write;

use serde_json::json;

use args::{HELP, parse_args};
use commands::execute;

/// Exit statuses.
const EXIT_OK: i32 = 0;
const EXIT_FAILURE: i32 = 1;
const EXIT_USAGE: i32 = 2;

/// Was `--json` given (before a `--`)? Looked up in the raw arguments, so
/// that a usage error, too, is reported as JSON when the caller asked for it.
fn wants_json<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> bool {
    args.iter()
        .map(AsRef::as_ref)
        .take_while(|a| *a != "--")
        .any(|a| a == "--json")
}

/// A failure as the one JSON document on stdout (`--json`).
fn json_error(out: &mut dyn Write, msg: &str, status: i32) {
    let _ = writeln!(out, "{}", json!({"error": msg, "exitStatus": status}));
    let _ = out.flush();
}

/// Parse, execute, print; returns the exit status.
fn run(args: &[String], out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let json = wants_json(args);
    let inv = match parse_args(args) {
        Ok(i) => i,
        Err(e) => {
            let _ = writeln!(err, "mactrunk-ipam: {}\n", e.msg);
            let _ = write!(err, "{}", e.help);
            if json {
                json_error(out, &e.msg, EXIT_USAGE);
            }
            return EXIT_USAGE;
        }
    };
    match inv.cmd {
        args::Cmd::Help(text) => {
            let _ = write!(out, "{text}");
            return EXIT_OK;
        }
        args::Cmd::Version => {
            let _ = writeln!(out, "{}", crate::cni::entry::version_text("mactrunk-ipam"));
            return EXIT_OK;
        }
        _ => {}
    }
    match execute(&inv.cmd) {
        Ok(report) => {
            let written = if inv.json {
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
                EXIT_FAILURE
            } else {
                EXIT_OK
            }
        }
        Err(f) => {
            let _ = writeln!(err, "mactrunk-ipam: {f}");
            if inv.json {
                json_error(out, &f.0, EXIT_FAILURE);
            }
            EXIT_FAILURE
        }
    }
}

/// [`run`] for the process's raw arguments: one that is not UTF-8 is a usage
/// error (exit 2), and a panic is a failure (exit 1), never exit 101; with
/// `--json` each still prints its JSON error on stdout.
fn run_os(args: &[std::ffi::OsString], out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let json = wants_json(args);
    let mut strings = Vec::with_capacity(args.len());
    for (i, a) in args.iter().enumerate() {
        match a.to_str() {
            Some(s) => strings.push(s.to_string()),
            None => {
                let msg = format!(
                    "argument {} is not valid UTF-8: {:?}",
                    i + 1,
                    a.to_string_lossy()
                );
                let _ = writeln!(err, "mactrunk-ipam: {msg}\n");
                let _ = write!(err, "{HELP}");
                if json {
                    json_error(out, &msg, EXIT_USAGE);
                }
                return EXIT_USAGE;
            }
        }
    }
    let status = {
        let (o, e) = (&mut *out, &mut *err);
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&strings, o, e)))
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

pub fn main(args: &[std::ffi::OsString]) -> i32 {
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    run_os(args, &mut stdout.lock(), &mut stderr.lock())
}
