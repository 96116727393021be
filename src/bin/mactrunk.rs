//! The `mactrunk` CNI plugin binary: environment and stdin in, one JSON
//! document on stdout.

use mactrunk::plugin::Macvlan;

fn main() {
    std::process::exit(mactrunk::entry::main(&Macvlan, "mactrunk"));
}
