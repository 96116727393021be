//! mactrunk: a CNI plugin that attaches containers to a physical L2 network
//! through macvlan, with a crash-safe host-local IPAM.

pub mod admin;
pub mod cni;
pub mod config;
pub mod delegate;
pub mod entry;
pub mod fs_safe;
pub mod ipam;
pub mod link;
pub mod log;
pub mod netns;
pub mod plugin;
pub mod skel;
pub mod standalone_ipam;
pub mod store;
pub mod sysctl;
pub mod vlan;
pub mod vlan_registry;
