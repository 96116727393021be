//! The `mactrunk-ipam` binary: a CNI IPAM plugin when run by a runtime
//! (`CNI_COMMAND` set), an admin tool for the store when run with arguments.

use mactrunk::standalone_ipam::StandaloneIpam;

fn main() {
    if std::env::var_os("CNI_COMMAND").is_none() && std::env::args_os().len() > 1 {
        let args: Vec<String> = std::env::args().skip(1).collect();
        std::process::exit(mactrunk::admin::main(&args));
    }
    std::process::exit(mactrunk::entry::main(&StandaloneIpam, "mactrunk-ipam"));
}
