//! `mactrunk-ipam` run by hand: inspect and repair IPAM stores.

pub fn main(args: &[String]) -> i32 {
    eprintln!("mactrunk-ipam: unknown arguments {args:?}; the admin commands are not built yet");
    2
}
