//! The `mactrunk-ipam` binary: a CNI IPAM plugin when run by a runtime
//! (`CNI_COMMAND` set), an admin tool for the store when run with arguments.

use mactrunk::ipam::plugin::StandaloneIpam;

fn main() {
    if std::env::var_os("CNI_COMMAND").is_none() && std::env::args_os().len() > 1 {
        // args_os: an argument that is not UTF-8 is a usage error, not a panic.
        let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
        std::process::exit(mactrunk::admin::main(&args));
    }
    std::process::exit(mactrunk::cni::entry::main(&StandaloneIpam, "mactrunk-ipam"));
}
