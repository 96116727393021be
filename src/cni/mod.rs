//! The CNI protocol: environment, versions, result format and errors. No I/O
//! beyond what the caller hands in.

pub mod entry;
pub mod env;
pub mod error;
pub mod gc;
pub mod names;
pub mod netconf;
pub mod skel;
pub mod types;
pub mod version;

pub use error::{CniError, CniResult, code};
pub use types::{CniOutput, Dns, Interface, IpConfig, Route};
pub use version::Version;
