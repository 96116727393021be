//! The `mactrunk` CNI plugin binary: environment and stdin in, one JSON
//! document on stdout.

use mactrunk::attach::Macvlan;

fn main() {
    std::process::exit(mactrunk::cni::entry::main(&Macvlan, "mactrunk"));
}
