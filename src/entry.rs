//! Process glue shared by both binaries: real environment and streams, panic
//! containment, exit status.

use std::io::Write;

use crate::cni::CniError;
use crate::cni::version::SUPPORTED;
use crate::skel::{self, Outcome, Plugin};

pub fn main(plugin: &(dyn Plugin + std::panic::RefUnwindSafe), name: &str) -> i32 {
    if let Some(a) = std::env::args().nth(1)
        && (a == "--version" || a == "-V")
    {
        {
            println!(
                "{name} {} (CNI plugin; spec versions {})",
                env!("CARGO_PKG_VERSION"),
                SUPPORTED.join(", ")
            );
            return 0;
        }
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
