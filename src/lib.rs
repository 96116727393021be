//! mactrunk: a CNI plugin that attaches containers to a physical L2 network
//! through macvlan, with a crash-safe host-local IPAM.

pub mod cni;
pub mod ipam;
pub mod store;
