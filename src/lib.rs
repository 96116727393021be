//! mactrunk: a CNI plugin that attaches containers to a physical L2 network
//! through macvlan, with a crash-safe host-local IPAM.
//!
//! Layers (see docs/architecture.md); dependencies point down only:
//! `admin` -> `attach` -> `ipam` -> `sys` -> `cni`.

pub mod admin;
pub mod attach;
pub mod cni;
pub mod ipam;
pub mod sys;
