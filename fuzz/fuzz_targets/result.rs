//! Results (prevResult, a delegated IPAM's stdout): `CniOutput::from_json` in
//! any default version; whatever parses renders in every version and reads back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mactrunk::cni::{CniOutput, Version};

const VERSIONS: [&str; 7] = ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(rest) else {
        return;
    };
    let default = Version::parse(VERSIONS[sel as usize % VERSIONS.len()]).unwrap();
    match CniOutput::from_json(&v, default) {
        Ok(out) => {
            for ver in VERSIONS {
                let ver = Version::parse(ver).unwrap();
                let doc = out.to_json(ver);
                CniOutput::from_json(&doc, ver).expect("own output reads back");
            }
        }
        Err(e) => assert_ne!(e.code, 999, "{e:?}"),
    }
});
