//! `CNI_ARGS` parsing: never panics; errors are code 2 or 4.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mactrunk::cni::env::CniArgs;

fuzz_target!(|data: &str| {
    if let Err(e) = CniArgs::parse(data) {
        assert!(e.code == 2 || e.code == 4, "{e:?}");
    }
});
