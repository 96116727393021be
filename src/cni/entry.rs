//! Process glue shared by both binaries: real environment and streams, panic
//! containment, exit status.

use std::io::Write;

use crate::cni::CniError;
use crate::cni::skel::{self, Outcome, Plugin};
use crate::cni::version::SUPPORTED;

/// What `--version` prints (without the newline), e.g.
/// `mactrunk 0.1.0 (CNI plugin; spec versions 0.1.0, ..., 1.1.0)`.
pub fn version_text(name: &str) -> String {
    format!(
        "{name} {} (CNI plugin; spec versions {})",
        env!("CARGO_PKG_VERSION"),
        SUPPORTED.join(", ")
    )
}

pub fn main(plugin: &(dyn Plugin + std::panic::RefUnwindSafe), name: &str) -> i32 {
    // args_os: std::env::args() panics on an argument that is not UTF-8.
    if let Some(a) = std::env::args_os().nth(1)
        && (a == "--version" || a == "-V")
    {
        println!("{}", version_text(name));
        return 0;
    }
    let outcome = std::panic::catch_unwind(|| {
        skel::run(
            plugin,
            &|k| std::env::var(k).ok(),
            &mut std::io::stdin().lock(),
        )
    })
    .unwrap_or_else(|_| {
        // The panic message already went to stderr; the runtime still needs a
        // parseable error on stdout (CNI#732).
        Outcome::error(
            &CniError::internal(format!("{name} hit an internal error (see its stderr)")),
            crate::cni::Version::LATEST.as_str(),
        )
    });
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(outcome.stdout.as_bytes());
    let _ = stdout.flush();
    outcome.status
}
