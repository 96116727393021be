//! Side effects on the system: netlink, network namespaces, sysctls, files,
//! the log. Nothing here knows about attachments or address pools.

pub mod arp;
pub(crate) mod fs;
pub(crate) mod log;
pub mod netlink;
pub mod netns;
pub mod sysctl;
