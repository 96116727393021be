//! Ownership and reference counts of the VLAN links mactrunk creates.
//!
//! ```text
//! <dataDir>/.mactrunk-vlans/       host-wide: networks sharing eth0.50 share one count
//!   lock                           flock (the IPAM store's lock helper), bounded wait -> code 11
//!   eth0.50.json                   one record per VLAN link mactrunk created (see VlanRecord)
//!   .tmp.<link>.<pid>              temp files; anything left there is a crash leftover
//!   <link>.json.corrupt-<secs>     a record that did not parse, moved aside (never trusted)
//! ```
//!
//! A network name never starts with '.', so the directory cannot clash with a
//! network's IPAM store next to it.
//!
//! Crash safety: ADD writes the record (with its user, `ifindex: null`) before
//! it creates the link, then records the ifindex. Writes are temp + fsync +
//! rename + fsync(dir). So after a crash at any point the link is either
//! absent or covered by a record, and the user that was being added is in it:
//! that attachment's DEL (or GC) removes the link. A link without a record
//! is never deleted.
//!
//! The files are small JSON documents meant to be read by humans (`cat`).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::registry::{self, Record, RegistryError};
use super::undo::Undo;
use crate::attach::vlan::{self, Ownership, Plan, VlanParent};
use crate::cni::CniError;
use crate::ipam::store::Owner;
use crate::sys::log::Level;
use crate::sys::log::log_at;
use crate::sys::netlink::{LinkError, LinkInfo, LinkOps, VlanProtocol};

/// The registry directory's name under the dataDir.
pub const DIR_NAME: &str = ".mactrunk-vlans";

/// One attachment using a VLAN link.
pub(crate) use super::registry::User as VlanUser;
#[cfg(test)]
pub(crate) use super::registry::test_hooks;

/// The locked VLAN registry (see [`registry::Registry`]).
type Registry = registry::Registry<VlanRecord>;

/// The record of one VLAN link mactrunk created: `<link>.json`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub(crate) struct VlanRecord {
    /// The VLAN link's name (`eth0.50`, or the short form of a long name).
    pub link: String,
    pub lower: String,
    pub vid: u16,
    /// `802.1Q` or `802.1ad`.
    pub protocol: String,
    /// The link's ifindex once it was created; `null` between writing the
    /// record and the creation. Guards against deleting a link of the same
    /// name that somebody else made after ours was gone.
    #[serde(default)]
    pub ifindex: Option<u32>,
    /// When mactrunk created it (RFC 3339, UTC).
    #[serde(default)]
    pub created: String,
    pub users: Vec<VlanUser>,
}

impl VlanRecord {
    pub fn new(parent: &VlanParent, protocol: VlanProtocol) -> VlanRecord {
        VlanRecord {
            link: parent.link_name.clone(),
            lower: parent.lower.clone(),
            vid: parent.vid,
            protocol: protocol.to_string(),
            ifindex: None,
            created: crate::sys::log::rfc3339_seconds(SystemTime::now()),
            users: Vec::new(),
        }
    }

    pub fn ownership(&self) -> Ownership {
        match self.ifindex {
            Some(i) => Ownership::Created(i),
            None => Ownership::Pending,
        }
    }

    pub fn parent(&self) -> VlanParent {
        VlanParent {
            lower: self.lower.clone(),
            vid: self.vid,
            link_name: self.link.clone(),
        }
    }

    pub fn protocol(&self) -> VlanProtocol {
        self.protocol.parse().unwrap_or_default()
    }

    /// Add `user` unless it is there already; true if the record changed.
    pub fn add_user(&mut self, user: &VlanUser) -> bool {
        registry::add_user(&mut self.users, user)
    }

    /// Remove `user`; true if it was there.
    pub fn remove_user(&mut self, user: &VlanUser) -> bool {
        registry::remove_user(&mut self.users, user)
    }
}

impl Record for VlanRecord {
    const DIR: &'static str = DIR_NAME;
    const WHAT: &'static str = "VLAN registry";
    const UNREADABLE: &'static str = "its link is treated as not created by mactrunk";

    fn key(&self) -> &str {
        &self.link
    }

    fn has_user(&self, user: &VlanUser) -> bool {
        self.users.contains(user)
    }

    fn in_use(&self) -> bool {
        !self.users.is_empty()
    }
}

/// `<dataDir>/.mactrunk-vlans`.
pub fn dir_in(data_dir: &Path) -> PathBuf {
    registry::dir_in::<VlanRecord>(data_dir)
}

/// The link names of the records that list `user`, read without the lock
/// (records are replaced atomically). Empty when there is no registry.
pub fn records_with_user(data_dir: &Path, user: &VlanUser) -> Vec<String> {
    registry::records_with_user::<VlanRecord>(data_dir, user)
}

/// Read one record without taking the lock (STATUS). None if there is none
/// or it cannot be read.
pub fn peek(data_dir: &Path, link: &str) -> Option<VlanRecord> {
    registry::peek(data_dir, link)
}

/// Every record of the registry in `data_dir`, read without the lock and
/// without changing anything (the admin tool's metrics): the records that
/// parse, and a message per file that does not. Empty when there is no
/// registry.
pub fn peek_all(data_dir: &Path) -> (Vec<VlanRecord>, Vec<String>) {
    registry::peek_all(data_dir)
}

/// Registry errors as CNI errors naming the VLAN registry.
fn cni(e: RegistryError) -> CniError {
    registry::cni::<VlanRecord>(e)
}

/// Test hook, compiled only with the `fault-injection` feature (release
/// builds and `install.sh` leave it out): `MACTRUNK_TEST_CRASH_AT=<point>`
/// makes the process SIGKILL itself at that point, so the VM suite can check
/// what a crash leaves behind deterministically. Points: `after-record`
/// (record written, link not created), `after-create` (link created, ifindex
/// not yet recorded), `after-link` (in ADD: VLAN parent ready, addresses
/// allocated, the macvlan created and tagged but not configured); for the
/// host shim (`shim_registry`): `shim-after-record`, `shim-after-create`,
/// `after-shim-routes` (host routes added, container side not) and, in DEL,
/// `shim-release-after-routes`.
#[cfg(feature = "fault-injection")]
pub fn crash_point(point: &str) {
    if std::env::var_os("MACTRUNK_TEST_CRASH_AT").is_some_and(|v| v == point) {
        // SAFETY: plain syscalls on our own pid.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}

/// Without the `fault-injection` feature the hook does not exist.
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn crash_point(_point: &str) {}

/// What ADD wants as parent: the VLAN, its protocol, and the config key it
/// came from (`vlan` or `master`, for error messages).
#[derive(Debug, Clone)]
pub(crate) struct VlanWant {
    pub parent: VlanParent,
    pub protocol: VlanProtocol,
    pub key: &'static str,
}

/// The VLAN parent ADD got from [`ensure`].
#[derive(Debug)]
pub(crate) struct Ensured {
    pub link: LinkInfo,
    /// mactrunk created it (now or earlier): the attachment is a user of it.
    pub owned: bool,
}

fn kernel(e: LinkError, what: impl std::fmt::Display) -> CniError {
    CniError::from(e).context(what)
}

/// Make sure the VLAN link exists, is the right VLAN and, when mactrunk owns
/// it, is up; record `user` as a user when it is owned. All under the
/// registry lock, so concurrent ADDs of the same VLAN serialize here.
pub(crate) fn ensure(
    host: &dyn LinkOps,
    data_dir: &Path,
    timeout: Duration,
    want: &VlanWant,
    user: &VlanUser,
) -> Result<Ensured, CniError> {
    let reg = Registry::open(data_dir, timeout).map_err(cni)?;
    let name = &want.parent.link_name;
    let lower = host.link_by_name(&want.parent.lower)?.ok_or_else(|| {
        CniError::config(
            "master",
            format!(
                "interface {:?} (lower link of VLAN {}) not found in the {}",
                want.parent.lower,
                want.parent.vid,
                host.label()
            ),
        )
    })?;
    let link = host.link_by_name(name)?;
    let record = reg.load(name).map_err(cni)?;
    let owned = record
        .as_ref()
        .map_or(Ownership::None, VlanRecord::ownership);
    match (
        vlan::plan(
            &want.parent,
            want.protocol,
            lower.index,
            link.as_ref(),
            owned,
        ),
        link,
        record,
    ) {
        (Plan::Conflict(why), _, _) => Err(CniError::config(want.key, why)),
        (Plan::UseForeign { stale_record }, Some(link), _) => use_foreign(&reg, link, stale_record),
        (Plan::UseOwned { set_up }, Some(link), Some(rec)) => {
            use_owned(host, &reg, link, rec, set_up, user)
        }
        (Plan::Create, _, record) => create(host, &reg, want, &lower, record, user),
        _ => Err(CniError::internal(format!(
            "VLAN registry: inconsistent plan for {name}"
        ))),
    }
}

/// A link of the VLAN's name mactrunk did not create: used as it is.
fn use_foreign(reg: &Registry, link: LinkInfo, stale_record: bool) -> Result<Ensured, CniError> {
    let name = &link.name;
    if stale_record {
        log_at!(
            Level::Warn,
            "VLAN registry: {name} was replaced by a link mactrunk did not create (ifindex {}); dropping the stale record",
            link.index
        );
        reg.remove(name).map_err(cni)?;
    }
    if !link.up {
        log_at!(
            Level::Warn,
            "VLAN parent {name} was not created by mactrunk and is down; leaving it as it is"
        );
    }
    Ok(Ensured { link, owned: false })
}

/// Ours already: up it if needed, and count the user.
fn use_owned(
    host: &dyn LinkOps,
    reg: &Registry,
    mut link: LinkInfo,
    mut rec: VlanRecord,
    set_up: bool,
    user: &VlanUser,
) -> Result<Ensured, CniError> {
    if set_up {
        host.set_up(link.index)
            .map_err(|e| kernel(e, format!("setting VLAN parent {} up", link.name)))?;
        link.up = true;
    }
    let mut changed = rec.add_user(user);
    if rec.ifindex.is_none() {
        rec.ifindex = Some(link.index);
        changed = true;
    }
    if changed {
        reg.save(&rec).map_err(cni)?;
    }
    Ok(Ensured { link, owned: true })
}

/// Create the VLAN link: the record (with the user) first, so a crash after
/// the creation always leaves it covered; then the link, up, and its ifindex
/// in the record. Any failure restores the record as it was and removes a
/// link this call made.
fn create(
    host: &dyn LinkOps,
    reg: &Registry,
    want: &VlanWant,
    lower: &LinkInfo,
    record: Option<VlanRecord>,
    user: &VlanUser,
) -> Result<Ensured, CniError> {
    let name = &want.parent.link_name;
    let previous = record.clone();
    let mut rec = match record {
        Some(mut r) => {
            // Our link vanished (deleted by hand, or the lower link went and
            // came back): its users' macvlans went with it.
            log_at!(
                Level::Warn,
                "VLAN registry: {name} is recorded but missing; creating it again"
            );
            r.ifindex = None;
            r
        }
        None => VlanRecord::new(&want.parent, want.protocol),
    };
    rec.add_user(user);
    reg.save(&rec).map_err(cni)?;
    let mut undo = Undo::new();
    undo.push(format!("restoring the VLAN record of {name}"), || {
        match &previous {
            Some(p) => reg.save(p),
            None => reg.remove(name),
        }
        .map_err(cni)
    });
    crash_point("after-record");
    match host.create_vlan(name, lower.index, want.parent.vid, want.protocol) {
        Ok(()) => {}
        Err(LinkError::Exists(_)) => {
            // Created by someone outside this registry meanwhile: not ours.
            drop(undo);
            return match host.link_by_name(name)? {
                Some(l) => match vlan::mismatch(&want.parent, want.protocol, lower.index, &l) {
                    None => Ok(Ensured {
                        link: l,
                        owned: false,
                    }),
                    Some(why) => Err(CniError::config(want.key, why)),
                },
                None => Err(CniError::kernel(format!(
                    "creating VLAN {name}: the name was taken, then vanished; try again"
                ))),
            };
        }
        Err(e) => {
            return Err(kernel(
                e,
                format!(
                    "creating VLAN {name} (id {}, {}) on {:?}",
                    want.parent.vid, want.protocol, want.parent.lower
                ),
            ));
        }
    }
    crash_point("after-create");
    let mut link = match host.link_by_name(name) {
        Ok(Some(l)) => l,
        Ok(None) => {
            return Err(CniError::kernel(format!(
                "VLAN {name} vanished right after its creation"
            )));
        }
        Err(e) => {
            // The link exists but we cannot see its index: keep the pending
            // record covering it; this attachment's DEL (or GC) removes it.
            undo.commit();
            return Err(e.into());
        }
    };
    let index = link.index;
    undo.push(format!("deleting VLAN {name}"), move || {
        host.delete(index).map_err(CniError::from)
    });
    host.set_up(index)
        .map_err(|e| kernel(e, format!("setting VLAN parent {name} up")))?;
    link.up = true;
    rec.ifindex = Some(index);
    reg.save(&rec).map_err(cni)?;
    undo.commit();
    log_at!(
        Level::Info,
        "created VLAN parent {name} (id {}, {}) on {} for {} {} {}",
        want.parent.vid,
        want.protocol,
        want.parent.lower,
        user.network,
        user.container_id,
        user.ifname
    );
    Ok(Ensured { link, owned: true })
}

/// Delete the link of `rec` if it is still the one mactrunk created
/// (NotFound is fine). Never deletes anything else.
fn delete_owned(host: &dyn LinkOps, rec: &VlanRecord) -> Result<(), CniError> {
    let Some(link) = host.link_by_name(&rec.link)? else {
        return Ok(());
    };
    let lower = host.link_by_name(&rec.lower)?.map(|l| l.index);
    if !vlan::may_delete(&rec.parent(), rec.protocol(), lower, &link, rec.ownership()) {
        log_at!(
            Level::Warn,
            "not deleting {}: it is no longer the VLAN link mactrunk created",
            rec.link
        );
        return Ok(());
    }
    match host.delete(link.index) {
        Ok(()) | Err(LinkError::NotFound(_)) => {
            log_at!(
                Level::Info,
                "deleted VLAN parent {} (no users left)",
                rec.link
            );
            Ok(())
        }
        Err(e) => Err(kernel(e, format!("deleting VLAN parent {}", rec.link))),
    }
}

/// Drop `user` from the records that list it (at most a few: one per VLAN
/// the attachment sat on) and delete links that have no user left. Needs no
/// config beyond the dataDir, and works when the lower link is gone.
/// `host` is used only when a record lists the user.
pub(crate) fn release(
    host: &dyn LinkOps,
    data_dir: &Path,
    timeout: Duration,
    user: &VlanUser,
) -> Result<(), CniError> {
    let candidates = records_with_user(data_dir, user);
    if candidates.is_empty() {
        return Ok(());
    }
    let reg = Registry::open(data_dir, timeout).map_err(cni)?;
    let mut first_err = None;
    for name in candidates {
        let Some(mut rec) = reg.load(&name).map_err(cni)? else {
            continue;
        };
        if !rec.remove_user(user) {
            continue;
        }
        let r = reg.settle(&rec, true, |rec| delete_owned(host, rec).map(|()| true));
        if let Err(e) = r {
            first_err.get_or_insert(e);
        }
    }
    first_err.map_or(Ok(()), Err)
}

/// GC: drop the users of `network` that are not in `valid`, then delete the
/// owned links nobody uses.
pub(crate) fn gc(
    host: &dyn LinkOps,
    data_dir: &Path,
    timeout: Duration,
    network: &str,
    valid: &[Owner],
) -> Result<usize, CniError> {
    if !dir_in(data_dir).is_dir() {
        return Ok(0);
    }
    let reg = Registry::open(data_dir, timeout).map_err(cni)?;
    let records = reg.records().map_err(cni)?;
    if records.is_empty() {
        return Ok(0);
    }
    let mut deleted = 0;
    let mut first_err = None;
    for mut rec in records {
        let changed = registry::retain_valid(&mut rec.users, network, valid);
        match reg.settle(&rec, changed, |rec| delete_owned(host, rec).map(|()| true)) {
            Ok(d) => deleted += usize::from(d),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    first_err.map_or(Ok(deleted), Err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cni::code;
    use std::fs;
    const TMP_PREFIX: &str = ".tmp.";

    fn user(n: &str, c: &str) -> VlanUser {
        VlanUser {
            network: n.into(),
            container_id: c.into(),
            ifname: "eth0".into(),
        }
    }

    fn rec(link: &str) -> VlanRecord {
        let mut r = VlanRecord::new(&VlanParent::new("eth0", 50), VlanProtocol::Dot1Q);
        r.link = link.into();
        r
    }

    #[test]
    fn record_format_is_plain_json() {
        let d = tempfile::tempdir().unwrap();
        let reg = Registry::open(d.path(), Duration::from_secs(1)).unwrap();
        let mut r = rec("eth0.50");
        r.ifindex = Some(7);
        r.add_user(&user("net1", "c1"));
        reg.save(&r).unwrap();
        let text = fs::read_to_string(d.path().join(".mactrunk-vlans/eth0.50.json")).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["link"], "eth0.50");
        assert_eq!(v["lower"], "eth0");
        assert_eq!(v["vid"], 50);
        assert_eq!(v["protocol"], "802.1Q");
        assert_eq!(v["ifindex"], 7);
        assert_eq!(
            v["users"],
            serde_json::json!([{"network": "net1", "containerID": "c1", "ifname": "eth0"}])
        );
        assert!(v["created"].as_str().unwrap().ends_with('Z'));
        assert!(text.contains('\n'), "pretty, for humans");
        assert_eq!(reg.load("eth0.50").unwrap(), Some(r));
        let mode = fs::metadata(d.path().join(".mactrunk-vlans"))
            .unwrap()
            .permissions();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(mode.mode() & 0o777, 0o700);
    }

    #[test]
    fn settle_saves_used_records_and_retires_unused_ones() {
        let d = tempfile::tempdir().unwrap();
        let reg = Registry::open(d.path(), Duration::from_secs(1)).unwrap();
        let file = d.path().join(".mactrunk-vlans/eth0.50.json");
        let mut r = rec("eth0.50");
        r.add_user(&user("net1", "c1"));
        // In use: saved when changed, untouched otherwise; retire never runs.
        let never = |_: &VlanRecord| -> Result<bool, CniError> { panic!("retired in use") };
        assert!(!reg.settle(&r, false, never).unwrap());
        assert!(!file.exists());
        assert!(!reg.settle(&r, true, never).unwrap());
        assert_eq!(reg.load("eth0.50").unwrap(), Some(r.clone()));
        // Unused and the delete fails: kept, without the user, for GC.
        r.remove_user(&user("net1", "c1"));
        let e = reg
            .settle(&r, true, |_| Err(CniError::new(code::INTERNAL, "busy")))
            .unwrap_err();
        assert_eq!(e.msg, "busy");
        assert_eq!(reg.load("eth0.50").unwrap(), Some(r.clone()));
        // Unused and deleted: the record goes, retire's answer comes back.
        assert!(reg.settle(&r, false, |_| Ok(true)).unwrap());
        assert!(!file.exists());
    }

    #[test]
    fn users_are_a_set() {
        let mut r = rec("eth0.50");
        assert!(r.add_user(&user("a", "c1")));
        assert!(!r.add_user(&user("a", "c1")));
        assert!(r.add_user(&user("b", "c1")), "other network, other user");
        assert!(r.remove_user(&user("a", "c1")));
        assert!(!r.remove_user(&user("a", "c1")));
        assert_eq!(r.users, vec![user("b", "c1")]);
    }

    #[test]
    fn crash_leftovers() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join(DIR_NAME);
        fs::create_dir_all(&dir).unwrap();
        // A temp file of a write that never got renamed, and a torn record.
        fs::write(dir.join(".tmp.eth0.50.1234"), b"{\"link\": \"eth0.5").unwrap();
        fs::write(dir.join("eth0.60.json"), b"{\"link\": ").unwrap();
        // A record that names another link than its file.
        let mut other = rec("eth0.70");
        other.link = "eth9.70".into();
        fs::write(
            dir.join("eth0.70.json"),
            serde_json::to_vec(&other).unwrap(),
        )
        .unwrap();
        let reg = Registry::open(d.path(), Duration::from_secs(1)).unwrap();
        assert!(!dir.join(".tmp.eth0.50.1234").exists());
        assert_eq!(
            reg.load("eth0.60").unwrap(),
            None,
            "unreadable: not trusted"
        );
        assert!(!dir.join("eth0.60.json").exists());
        let aside: Vec<String> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".corrupt-"))
            .collect();
        assert_eq!(aside.len(), 1, "{aside:?}");
        assert!(reg.records().unwrap().is_empty());
        assert!(!dir.join("eth0.70.json").exists());
        // A pending record (crash between the record and the creation) is kept.
        let mut p = rec("eth0.50");
        p.add_user(&user("n", "c"));
        reg.save(&p).unwrap();
        drop(reg);
        let reg = Registry::open(d.path(), Duration::from_secs(1)).unwrap();
        assert_eq!(
            reg.load("eth0.50").unwrap().unwrap().ownership(),
            Ownership::Pending
        );
    }

    #[test]
    fn unlocked_lookup_of_a_user() {
        let d = tempfile::tempdir().unwrap();
        assert!(records_with_user(d.path(), &user("n", "c1")).is_empty());
        let reg = Registry::open(d.path(), Duration::from_secs(1)).unwrap();
        for (l, c) in [("eth0.50", "c1"), ("eth0.51", "c2"), ("eth1.50", "c1")] {
            let mut r = rec(l);
            r.add_user(&user("n", c));
            reg.save(&r).unwrap();
        }
        assert_eq!(
            records_with_user(d.path(), &user("n", "c1")),
            vec!["eth0.50", "eth1.50"]
        );
        assert!(records_with_user(d.path(), &user("other", "c1")).is_empty());
        assert_eq!(
            peek(d.path(), "eth0.51").unwrap().users,
            vec![user("n", "c2")]
        );
        assert!(peek(d.path(), "eth9.1").is_none());
        assert!(peek(d.path(), "../x").is_none());
    }

    #[test]
    fn peek_all_reads_without_changing_anything() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(peek_all(d.path()), (vec![], vec![]));
        let reg = Registry::open(d.path(), Duration::from_secs(1)).unwrap();
        let mut r = rec("eth0.50");
        r.add_user(&user("n", "c1"));
        r.add_user(&user("m", "c2"));
        reg.save(&r).unwrap();
        reg.save(&rec("eth1.7")).unwrap();
        let dir = dir_in(d.path());
        fs::write(dir.join("eth0.60.json"), b"{not json").unwrap();
        fs::write(dir.join(".tmp.eth0.61.9"), b"x").unwrap();
        // read while another holder has the lock: no wait, no change
        let (records, problems) = peek_all(d.path());
        let users: Vec<(String, usize)> = records
            .iter()
            .map(|r| (r.link.clone(), r.users.len()))
            .collect();
        assert_eq!(
            users,
            [("eth0.50".to_string(), 2), ("eth1.7".to_string(), 0)]
        );
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("eth0.60.json"), "{problems:?}");
        assert!(dir.join("eth0.60.json").exists(), "nothing moved aside");
        assert!(dir.join(".tmp.eth0.61.9").exists(), "nothing cleaned");
    }

    #[test]
    fn lock_is_bounded_and_code_11() {
        let d = tempfile::tempdir().unwrap();
        let _held = Registry::open(d.path(), Duration::from_secs(1)).unwrap();
        let e = Registry::open(d.path(), Duration::from_millis(30)).unwrap_err();
        let e = cni(e);
        assert_eq!(e.code, code::TRY_AGAIN_LATER);
        assert!(e.msg.contains(".mactrunk-vlans"), "{}", e.msg);
    }

    #[test]
    fn concurrent_users_keep_an_exact_count() {
        // 8 processes' worth of read-modify-write under the lock, from threads
        // (flock is per open file description, so threads exclude each other).
        let d = tempfile::tempdir().unwrap();
        let path = d.path().to_path_buf();
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let path = path.clone();
                std::thread::spawn(move || {
                    for j in 0..20 {
                        let reg = Registry::open(&path, Duration::from_secs(10)).unwrap();
                        let mut r = reg
                            .load("eth0.50")
                            .unwrap()
                            .unwrap_or_else(|| rec("eth0.50"));
                        r.add_user(&user("n", &format!("c{i}-{j}")));
                        reg.save(&r).unwrap();
                    }
                    for j in (0..20).step_by(2) {
                        let reg = Registry::open(&path, Duration::from_secs(10)).unwrap();
                        let mut r = reg.load("eth0.50").unwrap().unwrap();
                        assert!(r.remove_user(&user("n", &format!("c{i}-{j}"))));
                        reg.save(&r).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let reg = Registry::open(&path, Duration::from_secs(1)).unwrap();
        assert_eq!(reg.load("eth0.50").unwrap().unwrap().users.len(), 8 * 10);
        let leftovers = fs::read_dir(&reg.dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with(TMP_PREFIX)
            })
            .count();
        assert_eq!(leftovers, 0);
    }
}
