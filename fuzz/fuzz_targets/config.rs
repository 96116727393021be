//! The network config: `PluginConfig::parse`, `IpamConfig::from_netconf` and
//! `StoreLocation::from_netconf` on any JSON document. The first line of the
//! input (if any) is `CNI_ARGS`, the rest the config.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mactrunk::cni::env::CniArgs;
use mactrunk::attach::config::PluginConfig;
use mactrunk::ipam::{IpamConfig, StoreLocation};

fuzz_target!(|data: &[u8]| {
    let (args, conf) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&b""[..], data),
    };
    let args = CniArgs::parse(&String::from_utf8_lossy(args)).unwrap_or_default();
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(conf) else {
        return;
    };
    for e in [
        PluginConfig::parse(&v, &args).err(),
        IpamConfig::from_netconf(&v, &args).err(),
        StoreLocation::from_netconf(&v).err(),
    ]
    .into_iter()
    .flatten()
    {
        assert_ne!(e.code, 999, "{e:?}");
        assert!(!e.msg.is_empty());
    }
});
