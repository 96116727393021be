//! mactrunk: a CNI plugin that attaches containers to a physical L2 network
//! through macvlan, with a crash-safe host-local IPAM.

pub mod announce;
pub mod cni;
pub mod link;
pub mod netns;
pub mod sysctl;
