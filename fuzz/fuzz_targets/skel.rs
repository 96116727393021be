//! The whole dispatcher (`skel::run`) with a plugin that parses everything the
//! real one parses and touches nothing. Input: NUL-separated fields
//! CNI_COMMAND, CNI_CONTAINERID, CNI_IFNAME, CNI_NETNS, CNI_ARGS, then stdin.
//! A field that is exactly "\x01" is left unset.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mactrunk::cni::CniError;
use mactrunk::cni::CniOutput;
use mactrunk::cni::env::CniArgs;
use mactrunk::attach::config::PluginConfig;
use mactrunk::cni::netconf::IpamKind;
use mactrunk::ipam::{IpamConfig, StoreLocation};
use mactrunk::cni::skel::{self, Plugin, Request};

struct ParseOnly;

impl Plugin for ParseOnly {
    fn add(&self, req: &Request) -> Result<CniOutput, CniError> {
        let conf = PluginConfig::parse(&req.conf, &req.args.args)?;
        if conf.ipam == IpamKind::InProcess {
            IpamConfig::from_netconf(&req.conf, &req.args.args)?;
        }
        Ok(conf.prev_result.unwrap_or_default())
    }
    fn del(&self, req: &Request) -> Result<(), CniError> {
        StoreLocation::from_netconf(&req.conf).map(|_| ())
    }
    fn check(&self, req: &Request) -> Result<(), CniError> {
        PluginConfig::parse(&req.conf, &CniArgs::default()).map(|_| ())
    }
    fn gc(&self, req: &Request) -> Result<(), CniError> {
        mactrunk::cni::gc::valid_attachments(&req.conf).map(|_| ())
    }
    fn status(&self, req: &Request) -> Result<(), CniError> {
        PluginConfig::parse(&req.conf, &req.args.args).map(|_| ())
    }
}

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(6, |b| *b == 0);
    let mut field = || {
        parts.next().and_then(|f| {
            (f != b"\x01").then(|| String::from_utf8_lossy(f).into_owned())
        })
    };
    let (cmd, cid, ifname, netns, args) = (field(), field(), field(), field(), field());
    let stdin: Vec<u8> = parts.next().unwrap_or_default().to_vec();
    let env = |k: &str| match k {
        "CNI_COMMAND" => cmd.clone(),
        "CNI_CONTAINERID" => cid.clone(),
        "CNI_IFNAME" => ifname.clone(),
        "CNI_NETNS" => netns.clone(),
        "CNI_ARGS" => args.clone(),
        _ => None,
    };
    let out = skel::run(&ParseOnly, &env, &mut stdin.as_slice());
    let docs: Vec<serde_json::Value> = serde_json::Deserializer::from_str(&out.stdout)
        .into_iter()
        .collect::<Result<_, _>>()
        .expect("stdout is JSON");
    assert!(docs.len() <= 1, "{:?}", out.stdout);
    if out.status != 0 {
        assert_eq!(out.status, 1);
        let code = docs[0]["code"].as_u64().expect("integer code");
        assert!(code != 0 && code != 999, "{}", out.stdout);
        assert!(docs[0]["cniVersion"].is_string());
    }
});
