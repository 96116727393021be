//! The ipvlan mode and flags of each parent mactrunk's ipvlans sit on, and
//! the attachments that rely on them.
//!
//! The kernel keeps `mode` and `ipvlanFlags` in the parent's ipvlan "port",
//! not in each ipvlan: every new ipvlan sets them for all ipvlans of its
//! parent, in every namespace, so an ADD with other values would silently
//! switch the running containers of other networks (verified on 6.1). The
//! port's mode cannot be read from the host: it shows only on the ipvlans,
//! which live in the containers' namespaces. So mactrunk records it, one
//! record per parent, with the attachments that use it, and refuses an ADD
//! with another mode or other flags while anyone else uses the parent (code
//! 7 naming the key and the network).
//!
//! ```text
//! <dataDir>/.mactrunk-ipvlans/eth0.json
//!   {"parent": "eth0", "ifindex": 2, "mode": "l2", "flags": "bridge", "users": [...]}
//! ```
//!
//! The machinery is the VLAN registry's (`registry`): a lock, crash-safe
//! writes, users per attachment. ADD records its attachment before it
//! creates the ipvlan (so after a crash the ipvlan, if any, is covered and
//! its DEL or GC removes the user), its rollback, DEL and GC remove it, and
//! the record goes with its last user. A record whose ifindex is not the
//! parent's any more is stale: the parent was deleted, and its ipvlans with
//! it. Ipvlans mactrunk did not make (another plugin's, by hand) are not
//! counted; CHECK still reports a mode they switched.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::registry::{self, Record, Registry, User};
use crate::cni::CniError;
use crate::ipam::store::Owner;
use crate::sys::log::{Level, log_at};
use crate::sys::netlink::{IpvlanFlags, IpvlanMode, LinkInfo};

/// The directory's name under the dataDir.
pub const DIR_NAME: &str = ".mactrunk-ipvlans";

/// The ipvlan port of one parent as mactrunk's ipvlans set it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub(crate) struct PortRecord {
    /// The parent's name (a VLAN link's too).
    pub parent: String,
    /// The parent's ifindex when the record was made.
    pub ifindex: u32,
    pub mode: String,
    pub flags: String,
    pub users: Vec<User>,
}

impl Record for PortRecord {
    const DIR: &'static str = DIR_NAME;
    const WHAT: &'static str = "ipvlan port records";
    const UNREADABLE: &'static str =
        "the parent's ipvlan mode is treated as unrecorded (the next ADD records it anew)";

    fn key(&self) -> &str {
        &self.parent
    }

    fn has_user(&self, user: &User) -> bool {
        self.users.contains(user)
    }

    fn in_use(&self) -> bool {
        !self.users.is_empty()
    }
}

/// What an ADD of `user` with `mode` and `flags` on `parent` makes of the
/// parent's record.
#[derive(Debug, PartialEq)]
enum Claim {
    /// Write this record.
    Save(PortRecord),
    /// The record lists the user with these values already.
    Unchanged,
    /// Another attachment relies on other values.
    Refuse(CniError),
}

fn decide(
    existing: Option<PortRecord>,
    parent: &LinkInfo,
    mode: IpvlanMode,
    flags: IpvlanFlags,
    user: &User,
) -> Claim {
    let fresh = || PortRecord {
        parent: parent.name.clone(),
        ifindex: parent.index,
        mode: mode.to_string(),
        flags: flags.to_string(),
        users: vec![user.clone()],
    };
    let Some(mut rec) = existing else {
        return Claim::Save(fresh());
    };
    if rec.ifindex != parent.index {
        log_at!(
            Level::Info,
            "ipvlan port of {:?}: the record is of link index {}, the parent is index {} now (re-created, its ipvlans gone with the old one): starting anew",
            parent.name,
            rec.ifindex,
            parent.index
        );
        return Claim::Save(fresh());
    }
    let others: Vec<&User> = rec.users.iter().filter(|u| *u != user).collect();
    if others.is_empty() {
        // Nobody else relies on the port: this attachment may set it.
        let new = fresh();
        return if new == rec {
            Claim::Unchanged
        } else {
            Claim::Save(new)
        };
    }
    let (want_mode, want_flags) = (mode.to_string(), flags.to_string());
    if rec.mode == want_mode && rec.flags == want_flags {
        return if registry::add_user(&mut rec.users, user) {
            Claim::Save(rec)
        } else {
            Claim::Unchanged
        };
    }
    let (key, want) = if rec.mode != want_mode {
        ("mode", &want_mode)
    } else {
        ("ipvlanFlags", &want_flags)
    };
    let mut networks: Vec<&str> = others.iter().map(|u| u.network.as_str()).collect();
    networks.sort_unstable();
    networks.dedup();
    let named = match networks.as_slice() {
        [one] => format!("network {one:?}"),
        [first, second] => format!("networks {first:?} and {second:?}"),
        [first, rest @ ..] => format!("networks {first:?} and {} more", rest.len()),
        [] => "another network".into(),
    };
    Claim::Refuse(CniError::config(
        key,
        format!(
            "{want} differs from the ipvlan mode {} {} that {named} ({} attachment{}) uses on {:?}: the kernel keeps one mode and one flag set per parent, and an ipvlan created with other ones would switch all of theirs; use mode {} and ipvlanFlags {} here, or another parent (a VLAN of it)",
            rec.mode,
            rec.flags,
            others.len(),
            if others.len() == 1 { "" } else { "s" },
            parent.name,
            rec.mode,
            rec.flags
        ),
    ))
}

/// ADD, before the ipvlan is created on `parent`: record that `user` uses
/// the parent with `mode` and `flags`, or refuse (code 7) if other
/// attachments use it with other ones.
pub(crate) fn claim(
    data_dir: &Path,
    timeout: Duration,
    parent: &LinkInfo,
    mode: IpvlanMode,
    flags: IpvlanFlags,
    user: &User,
) -> Result<(), CniError> {
    let reg = Registry::<PortRecord>::open(data_dir, timeout).map_err(cni)?;
    let existing = reg.load(&parent.name).map_err(cni)?;
    match decide(existing, parent, mode, flags, user) {
        Claim::Save(rec) => reg.save(&rec).map_err(cni),
        Claim::Unchanged => Ok(()),
        Claim::Refuse(e) => Err(e),
    }
}

/// DEL and ADD's rollback: `user` no longer relies on any parent's port; a
/// record goes with its last user. Looks only when the directory exists
/// (an unlocked read finds the records that list the user).
pub(crate) fn release(data_dir: &Path, timeout: Duration, user: &User) -> Result<(), CniError> {
    let listed = registry::records_with_user::<PortRecord>(data_dir, user);
    if listed.is_empty() {
        return Ok(());
    }
    let reg = Registry::<PortRecord>::open(data_dir, timeout).map_err(cni)?;
    for key in listed {
        let Some(mut rec) = reg.load(&key).map_err(cni)? else {
            continue;
        };
        if registry::remove_user(&mut rec.users, user) {
            reg.settle(&rec, true, |_| Ok(true))?;
        }
    }
    Ok(())
}

/// GC: drop the users of `network` that are not in `valid`, and the records
/// left without users. Returns how many records went.
pub(crate) fn gc(
    data_dir: &Path,
    timeout: Duration,
    network: &str,
    valid: &[Owner],
) -> Result<usize, CniError> {
    if !registry::dir_in::<PortRecord>(data_dir).is_dir() {
        return Ok(0);
    }
    let reg = Registry::<PortRecord>::open(data_dir, timeout).map_err(cni)?;
    let mut removed = 0;
    for mut rec in reg.records().map_err(cni)? {
        if registry::retain_valid(&mut rec.users, network, valid) {
            removed += usize::from(reg.settle(&rec, true, |_| Ok(true))?);
        }
    }
    Ok(removed)
}

fn cni(e: registry::RegistryError) -> CniError {
    registry::cni::<PortRecord>(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cni::code;

    fn user(n: &str, c: &str) -> User {
        User {
            network: n.into(),
            container_id: c.into(),
            ifname: "eth0".into(),
        }
    }

    fn eth0(index: u32) -> LinkInfo {
        LinkInfo {
            index,
            name: "eth0".into(),
            ..LinkInfo::default()
        }
    }

    const L2: IpvlanMode = IpvlanMode::L2;
    const L3: IpvlanMode = IpvlanMode::L3;
    const BRIDGE: IpvlanFlags = IpvlanFlags::Bridge;

    fn rec(mode: &str, flags: &str, users: &[User]) -> PortRecord {
        PortRecord {
            parent: "eth0".into(),
            ifindex: 2,
            mode: mode.into(),
            flags: flags.into(),
            users: users.to_vec(),
        }
    }

    #[test]
    fn decisions() {
        let (a, b, c) = (user("l2net", "a"), user("l2net", "b"), user("other", "c"));
        // First user: a record with its values.
        assert_eq!(
            decide(None, &eth0(2), L2, BRIDGE, &a),
            Claim::Save(rec("l2", "bridge", std::slice::from_ref(&a)))
        );
        // Same values: joins; twice: nothing to write.
        let one = rec("l2", "bridge", std::slice::from_ref(&a));
        assert_eq!(
            decide(Some(one.clone()), &eth0(2), L2, BRIDGE, &b),
            Claim::Save(rec("l2", "bridge", &[a.clone(), b.clone()]))
        );
        assert_eq!(
            decide(Some(one.clone()), &eth0(2), L2, BRIDGE, &a),
            Claim::Unchanged
        );
        // Another mode while someone else uses the port: code 7 naming mode
        // and the network.
        let Claim::Refuse(e) = decide(
            Some(rec("l2", "bridge", &[a.clone(), b.clone()])),
            &eth0(2),
            L3,
            BRIDGE,
            &c,
        ) else {
            panic!("not refused")
        };
        assert_eq!(e.code, code::INVALID_CONFIG);
        assert!(
            e.msg.starts_with(
                "mode: l3 differs from the ipvlan mode l2 bridge that network \"l2net\" (2 attachments) uses on \"eth0\": "
            ),
            "{}",
            e.msg
        );
        // Only the flags differ: names ipvlanFlags.
        let Claim::Refuse(e) = decide(Some(one.clone()), &eth0(2), L2, IpvlanFlags::Private, &c)
        else {
            panic!("not refused")
        };
        assert!(
            e.msg
                .starts_with("ipvlanFlags: private differs from the ipvlan mode l2 bridge"),
            "{}",
            e.msg
        );
        assert!(e.msg.contains("(1 attachment) uses"), "{}", e.msg);
        // The only user changes its own mode (a retried ADD with a new
        // config): nobody else is switched.
        assert_eq!(
            decide(Some(one.clone()), &eth0(2), L3, BRIDGE, &a),
            Claim::Save(rec("l3", "bridge", std::slice::from_ref(&a)))
        );
        // The parent was re-created (other ifindex): the old record is stale.
        assert_eq!(
            decide(Some(one), &eth0(9), L3, BRIDGE, &c),
            Claim::Save(PortRecord {
                ifindex: 9,
                ..rec("l3", "bridge", std::slice::from_ref(&c))
            })
        );
        // Several networks are named (at most two, then a count).
        let many = rec(
            "l2",
            "bridge",
            &[user("n1", "1"), user("n2", "2"), user("n3", "3")],
        );
        let Claim::Refuse(e) = decide(Some(many), &eth0(2), L3, BRIDGE, &c) else {
            panic!("not refused")
        };
        assert!(
            e.msg.contains("networks \"n1\" and 2 more (3 attachments)"),
            "{}",
            e.msg
        );
    }

    #[test]
    fn claim_release_gc_on_disk() {
        let d = tempfile::tempdir().unwrap();
        let t = Duration::from_secs(1);
        let (a, b, c) = (user("l2net", "a"), user("l2net", "b"), user("l3net", "c"));
        // Nothing recorded: release and GC touch nothing, create nothing.
        release(d.path(), t, &a).unwrap();
        assert_eq!(gc(d.path(), t, "l2net", &[]).unwrap(), 0);
        assert!(!d.path().join(DIR_NAME).exists());
        claim(d.path(), t, &eth0(2), L2, BRIDGE, &a).unwrap();
        claim(d.path(), t, &eth0(2), L2, BRIDGE, &b).unwrap();
        let file = d.path().join(DIR_NAME).join("eth0.json");
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        assert_eq!(
            (v["parent"].clone(), v["ifindex"].clone(), v["mode"].clone()),
            ("eth0".into(), 2.into(), "l2".into())
        );
        assert_eq!(v["users"].as_array().unwrap().len(), 2);
        let e = claim(d.path(), t, &eth0(2), L3, BRIDGE, &c).unwrap_err();
        assert!(e.msg.starts_with("mode: "), "{}", e.msg);
        // DEL of one: the other keeps the port; the refusal stands.
        release(d.path(), t, &a).unwrap();
        claim(d.path(), t, &eth0(2), L3, BRIDGE, &c).unwrap_err();
        // GC of l2net with nobody valid: the record goes, l3 may come.
        assert_eq!(gc(d.path(), t, "l2net", &[]).unwrap(), 1);
        assert!(!file.exists());
        claim(d.path(), t, &eth0(2), L3, BRIDGE, &c).unwrap();
        // GC keeps valid users and other networks' users.
        assert_eq!(gc(d.path(), t, "l2net", &[]).unwrap(), 0);
        assert_eq!(gc(d.path(), t, "l3net", &[c.owner()]).unwrap(), 0);
        assert!(file.exists());
        release(d.path(), t, &c).unwrap();
        assert!(!file.exists(), "gone with its last user");
    }
}
