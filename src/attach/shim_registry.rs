//! Ownership and reference counts of the host shims mactrunk creates
//! (`hostShim`), with the host routes each attachment put on them.
//!
//! ```text
//! <dataDir>/.mactrunk-shims/       host-wide: networks on one parent share its shim
//!   lock                           flock (bounded wait -> code 11)
//!   mts-eth0.json                  one record per shim mactrunk created (see ShimRecord)
//!   .tmp.<link>.<pid>              temp files; anything left there is a crash leftover
//!   <link>.json.corrupt-<secs>     a record that did not parse, moved aside (never trusted)
//! ```
//!
//! The same discipline as the VLAN registry (`vlan_registry`): ADD writes
//! the record, with its user and the routes it is about to add, before it
//! creates the shim or adds a route, then records the ifindex; DEL deletes
//! the routes before it drops the user, and the shim before it drops the
//! record. So after a kill -9 at any point every shim and every route
//! mactrunk made is covered by a record that lists the attachment that made
//! it: that attachment's DEL, or a GC that does not list it, removes them;
//! and a shim is deleted only once no record lists a user of it. A link
//! without a record is never touched.
//!
//! The files are the generic registry's (`registry`), except that, unlike
//! the VLAN registry, records are replaced without fsync (write + rename: a
//! kill -9 still sees the old or the new file whole; `Record::DURABLE`). What a
//! record describes is kernel state, which a power loss takes away with it;
//! the record carries the kernel's boot id, and a record of another boot
//! describes nothing that still exists: it is discarded, never acted on (a
//! link that now has the shim's name belongs to somebody else). That keeps
//! two fsyncs out of every ADD and DEL with `hostShim`.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::registry::{self, Record, RegistryError};
use super::shim::{self, Plan};
use super::undo::Undo;
use super::vlan::Ownership;
use super::vlan_registry::crash_point;
use crate::cni::{CniError, code};
use crate::ipam::store::Owner;
use crate::sys::fs::boot_id;
use crate::sys::log::{Level, log_at};
use crate::sys::netlink::{
    LinkError, LinkInfo, LinkKind, LinkOps, LinkSpec, MacvlanMode, RTPROT_MACTRUNK, format_mac,
};

/// The registry directory's name under the dataDir.
pub const DIR_NAME: &str = ".mactrunk-shims";

/// The attachment that uses a shim: (network, containerID, ifname).
pub(crate) type UserKey = registry::User;
#[cfg(test)]
pub(crate) use super::registry::test_hooks;

/// The locked shim registry (see [`registry::Registry`]).
type Registry = registry::Registry<ShimRecord>;

/// One host route an attachment put on the shim: `ip`/32 (/128) with the
/// host's `src` as preferred source.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub(crate) struct ShimRoute {
    pub ip: IpAddr,
    pub src: IpAddr,
}

/// One attachment using the shim: who, the MAC of its container link (the
/// host's neighbour entries point at it), and its routes.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub(crate) struct ShimUser {
    #[serde(flatten)]
    pub key: UserKey,
    pub mac: String,
    pub routes: Vec<ShimRoute>,
}

/// The record of one shim mactrunk created: `<link>.json`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub(crate) struct ShimRecord {
    pub link: String,
    /// The link it sits on (`eth0`, or a VLAN link `eth0.50`).
    pub parent: String,
    pub mac: String,
    /// None between writing the record and creating the shim.
    #[serde(default)]
    pub ifindex: Option<u32>,
    /// The kernel's boot id when the record was written.
    #[serde(rename = "bootId", default)]
    pub boot_id: String,
    #[serde(default)]
    pub created: String,
    pub users: Vec<ShimUser>,
}

impl ShimRecord {
    fn new(link: &str, parent: &LinkInfo, mac: [u8; 6]) -> ShimRecord {
        ShimRecord {
            link: link.to_string(),
            parent: parent.name.clone(),
            mac: format_mac(&mac),
            ifindex: None,
            boot_id: boot_id().to_string(),
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

    pub fn user(&self, key: &UserKey) -> Option<&ShimUser> {
        self.users.iter().find(|u| &u.key == key)
    }

    /// Put `user` in, replacing an entry of the same attachment (a retried
    /// ADD); returns the replaced entry.
    pub fn upsert(&mut self, user: &ShimUser) -> Option<ShimUser> {
        let old = self.take(&user.key);
        self.users.push(user.clone());
        old
    }

    /// Remove the entry of `key`.
    pub fn take(&mut self, key: &UserKey) -> Option<ShimUser> {
        let i = self.users.iter().position(|u| &u.key == key)?;
        Some(self.users.remove(i))
    }

    /// Another attachment that routes `ip` through this shim.
    fn claimed_by_other(&self, key: &UserKey, ip: IpAddr) -> Option<&ShimUser> {
        self.users
            .iter()
            .find(|u| &u.key != key && u.routes.iter().any(|r| r.ip == ip))
    }

    fn claims(&self, ip: IpAddr) -> bool {
        self.users
            .iter()
            .any(|u| u.routes.iter().any(|r| r.ip == ip))
    }
}

impl Record for ShimRecord {
    const DIR: &'static str = DIR_NAME;
    const WHAT: &'static str = "shim registry";
    const UNREADABLE: &'static str = "its shim is treated as not created by mactrunk";
    /// See the module docs: a record of another boot is discarded instead.
    const DURABLE: bool = false;

    fn key(&self) -> &str {
        &self.link
    }

    fn has_user(&self, user: &UserKey) -> bool {
        self.user(user).is_some()
    }

    fn in_use(&self) -> bool {
        !self.users.is_empty()
    }

    /// Written during another boot: nothing it describes exists any more.
    fn is_stale(&self) -> bool {
        self.boot_id != boot_id()
    }
}

/// `<dataDir>/.mactrunk-shims`.
pub fn dir_in(data_dir: &Path) -> PathBuf {
    registry::dir_in::<ShimRecord>(data_dir)
}

/// One record, read without the lock (CHECK); None if missing, unreadable,
/// of another boot or naming another link.
pub fn peek(data_dir: &Path, link: &str) -> Option<ShimRecord> {
    registry::peek::<ShimRecord>(data_dir, link).filter(|r| r.link == link)
}

/// Registry errors as CNI errors naming the shim registry.
fn cni(e: RegistryError) -> CniError {
    registry::cni::<ShimRecord>(e)
}

fn kernel(e: LinkError, what: impl std::fmt::Display) -> CniError {
    CniError::from(e).context(what)
}

/// Parse a MAC as a record stores it.
fn parse_mac(s: &str) -> Option<[u8; 6]> {
    crate::attach::config::parse_unicast_mac(s).ok()
}

/// ADD: make sure the shim of `parent` exists, is up and is ours, and record
/// `user` (with the routes it is about to add) as a user, all under the
/// registry lock. Returns the shim. The caller adds the routes afterwards:
/// the record already covers them, and no other command removes a shim
/// that has a user. Refused (code 7, naming `hostShim`): a link of the
/// shim's name mactrunk did not create. Code 102: another attachment on
/// this host already routes one of these addresses through the shim.
pub(crate) fn ensure(
    host: &dyn LinkOps,
    data_dir: &Path,
    timeout: Duration,
    parent: &LinkInfo,
    user: &ShimUser,
) -> Result<LinkInfo, CniError> {
    let reg = Registry::open(data_dir, timeout).map_err(cni)?;
    let name = shim::name(&parent.name);
    let record = match reg.load(&name).map_err(cni)? {
        Some(r) if r.is_stale() => {
            log_at!(
                Level::Info,
                "shim registry: the record of {name} is from another boot; starting afresh"
            );
            None
        }
        other => other,
    };
    if let Some(rec) = &record {
        for r in &user.routes {
            if let Some(other) = rec.claimed_by_other(&user.key, r.ip) {
                return Err(CniError::new(
                    code::ADDRESS_IN_USE,
                    format!(
                        "{} is in use on the network: attachment {}/{}/{} on this host has it too (hostShim routes it through {name})",
                        r.ip, other.key.network, other.key.container_id, other.key.ifname
                    ),
                ));
            }
        }
    }
    let link = host.link_by_name(&name)?;
    let owned = record
        .as_ref()
        .map_or(Ownership::None, ShimRecord::ownership);
    match (shim::plan(parent.index, link.as_ref(), owned), link, record) {
        (Plan::Conflict(why), _, _) => Err(CniError::config("hostShim", why)),
        (Plan::UseOwned { set_up }, Some(mut link), Some(mut rec)) => {
            if set_up {
                host.set_up(link.index)
                    .map_err(|e| kernel(e, format!("setting host shim {name} up")))?;
                link.up = true;
            }
            rec.ifindex = Some(link.index);
            let old = rec.upsert(user);
            reg.save(&rec).map_err(cni)?;
            if let Some(old) = old {
                drop_stale_routes(host, link.index, &old, user);
            }
            Ok(link)
        }
        (Plan::Create, _, record) => create(host, &reg, &name, parent, record, user),
        _ => Err(CniError::internal(format!(
            "shim registry: inconsistent plan for {name}"
        ))),
    }
}

/// A retried ADD of the same attachment replaced its entry: routes of the
/// old entry that the new one does not have go.
fn drop_stale_routes(host: &dyn LinkOps, index: u32, old: &ShimUser, new: &ShimUser) {
    for r in &old.routes {
        if !new.routes.iter().any(|n| n.ip == r.ip) {
            remove_route(host, index, r.ip);
        }
    }
}

/// Delete the host route and the neighbour entry of `ip` on the shim, best
/// effort (missing is fine); returns the first real failure.
fn remove_route(host: &dyn LinkOps, index: u32, ip: IpAddr) -> Option<CniError> {
    let mut first = None;
    if let Err(e) = host.delete_host_route(index, ip)
        && !e.is_not_found()
    {
        first = Some(kernel(e, format!("deleting the host route to {ip}")));
    }
    if let Err(e) = host.delete_neighbour(index, ip)
        && !e.is_not_found()
    {
        log_at!(Level::Warn, "deleting the neighbour entry {ip}: {e}");
    }
    first
}

/// Create the shim: the record (pending, with the user) first, so a crash
/// after the creation leaves it covered; then the link (bridge mode, its
/// derived MAC, its alias), its sysctls, up, and its ifindex in the record.
/// Any failure restores the record and deletes a link this call made. A
/// record of a shim that vanished keeps its users: their routes are put on
/// the new shim again (the derived MAC is the one their containers know).
fn create(
    host: &dyn LinkOps,
    reg: &Registry,
    name: &str,
    parent: &LinkInfo,
    record: Option<ShimRecord>,
    user: &ShimUser,
) -> Result<LinkInfo, CniError> {
    let mac = shim::mac(parent.mac, name);
    let previous = record.clone();
    let mut rec = match record {
        Some(mut r) => {
            log_at!(
                Level::Warn,
                "shim registry: host shim {name} is recorded but missing; creating it again"
            );
            r.ifindex = None;
            r.parent = parent.name.clone();
            r.mac = format_mac(&mac);
            r
        }
        None => ShimRecord::new(name, parent, mac),
    };
    rec.upsert(user);
    reg.save(&rec).map_err(cni)?;
    let mut undo = Undo::new();
    undo.push(
        format!("restoring the record of host shim {name}"),
        || match &previous {
            Some(p) => reg.save(p).map_err(cni),
            None => reg.remove(name).map_err(cni),
        },
    );
    crash_point("shim-after-record");
    let spec = LinkSpec {
        name,
        parent: parent.index,
        kind: LinkKind::Macvlan {
            mode: MacvlanMode::Bridge,
            bcqueuelen: None,
        },
        mtu: None,
        mac: Some(mac),
        netns: None,
    };
    match host.create_link(&spec) {
        Ok(()) => {}
        Err(LinkError::Exists(_)) => {
            return Err(CniError::config(
                "hostShim",
                format!(
                    "link {name:?} appeared while mactrunk was creating its host shim there (made by someone else): it is left alone; try again"
                ),
            ));
        }
        Err(e) if e.errno() == Some(libc::EBUSY) => {
            return Err(CniError::config(
                "hostShim",
                format!(
                    "cannot put the host shim {name} on {:?}: the kernel refused with EBUSY (the parent carries ipvlan links, or is a bridge or bond port)",
                    parent.name
                ),
            ));
        }
        Err(e) => {
            return Err(kernel(
                e,
                format!("creating host shim {name} on {:?}", parent.name),
            ));
        }
    }
    crash_point("shim-after-create");
    let mut link = match host.link_by_name(name) {
        Ok(Some(l)) => l,
        Ok(None) => {
            return Err(CniError::kernel(format!(
                "host shim {name} vanished right after its creation"
            )));
        }
        Err(e) => {
            // It exists but cannot be seen: keep the pending record that
            // covers it; this attachment's DEL (or GC) removes it.
            undo.commit();
            return Err(e.into());
        }
    };
    let index = link.index;
    undo.push(format!("deleting host shim {name}"), move || {
        match host.delete(index) {
            Ok(()) | Err(LinkError::NotFound(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    });
    let tag = shim::tag(&parent.name);
    host.rename(index, None, Some(&tag))
        .map_err(|e| kernel(e, format!("tagging host shim {name}")))?;
    link.alias = Some(tag);
    for failed in host.write_sysctls(&shim::sysctls(name))? {
        log_at!(Level::Warn, "host shim {name}: sysctl {failed}");
    }
    host.set_up(index)
        .map_err(|e| kernel(e, format!("setting host shim {name} up")))?;
    link.up = true;
    rec.ifindex = Some(index);
    reg.save(&rec).map_err(cni)?;
    undo.commit();
    log_at!(
        Level::Info,
        "created host shim {name} ({}) on {} for {} {} {}",
        format_mac(&mac),
        parent.name,
        user.key.network,
        user.key.container_id,
        user.key.ifname
    );
    heal(host, index, &rec, user);
    Ok(link)
}

/// The shim was created again for a record that lists other users: their
/// routes and neighbour entries go on it again (best effort, logged).
fn heal(host: &dyn LinkOps, index: u32, rec: &ShimRecord, except: &ShimUser) {
    for u in rec.users.iter().filter(|u| u.key != except.key) {
        let Some(mac) = parse_mac(&u.mac) else {
            log_at!(
                Level::Warn,
                "host shim {}: user {}/{} has no usable MAC {:?}; its routes stay off",
                rec.link,
                u.key.network,
                u.key.container_id,
                u.mac
            );
            continue;
        };
        for r in &u.routes {
            let res = host.set_neighbour(index, r.ip, mac).and_then(|()| {
                match host.add_host_route(index, r.ip, Some(r.src)) {
                    Err(LinkError::Exists(_)) => Ok(()),
                    other => other,
                }
            });
            if let Err(e) = res {
                log_at!(
                    Level::Warn,
                    "host shim {}: restoring the route to {} failed: {e}",
                    rec.link,
                    r.ip
                );
            }
        }
    }
}

/// The host shim's link of `rec` if it is still the one mactrunk created.
fn owned_link(host: &dyn LinkOps, rec: &ShimRecord) -> Result<Option<LinkInfo>, CniError> {
    Ok(host
        .link_by_name(&rec.link)?
        .filter(|l| shim::may_delete(l, rec.ownership())))
}

/// Delete the shim of `rec` if it is still ours (missing is fine).
fn delete_shim(
    host: &dyn LinkOps,
    rec: &ShimRecord,
    link: Option<&LinkInfo>,
) -> Result<bool, CniError> {
    let Some(link) = link else {
        return Ok(false);
    };
    match host.delete(link.index) {
        Ok(()) | Err(LinkError::NotFound(_)) => {
            log_at!(
                Level::Info,
                "deleted host shim {} (no users left)",
                rec.link
            );
            Ok(true)
        }
        Err(e) => Err(kernel(e, format!("deleting host shim {}", rec.link))),
    }
}

/// DEL and ADD's rollback: `key` no longer uses a shim. Its routes and
/// neighbour entries go, then its entry, and the shim with its last user.
/// Needs nothing of the config beyond the dataDir; works when the shim or
/// the parent is gone. `host` is used only when a record lists `key`.
pub(crate) fn release(
    host: &dyn LinkOps,
    data_dir: &Path,
    timeout: Duration,
    key: &UserKey,
) -> Result<(), CniError> {
    let candidates = registry::records_with_user::<ShimRecord>(data_dir, key);
    if candidates.is_empty() {
        return Ok(());
    }
    let reg = Registry::open(data_dir, timeout).map_err(cni)?;
    let mut first_err = None;
    for name in candidates {
        let Some(mut rec) = reg.load(&name).map_err(cni)? else {
            continue;
        };
        let Some(user) = rec.take(key) else {
            continue;
        };
        let link = if rec.is_stale() {
            None
        } else {
            owned_link(host, &rec)?
        };
        if let Some(l) = &link {
            for r in &user.routes {
                if let Some(e) = remove_route(host, l.index, r.ip) {
                    first_err.get_or_insert(e);
                }
            }
        }
        crash_point("shim-release-after-routes");
        let r = reg.settle(&rec, true, |rec| delete_shim(host, rec, link.as_ref()));
        if let Err(e) = r {
            first_err.get_or_insert(e);
        }
    }
    first_err.map_or(Ok(()), Err)
}

/// GC: drop the users of `network` that are not in `valid` (with their
/// routes), delete routes of mactrunk's on a shim that no user claims (left
/// by a kill -9 between a route and its record, or by hand), and delete the
/// shims nobody uses. Records of another boot are dropped. Returns the
/// number of shims deleted.
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
    let mut deleted = 0;
    let mut first_err = None;
    for mut rec in reg.records().map_err(cni)? {
        if rec.is_stale() {
            log_at!(
                Level::Info,
                "shim registry: dropping the record of {} from another boot",
                rec.link
            );
            if let Err(e) = reg.remove(&rec.link).map_err(cni) {
                first_err.get_or_insert(e);
            }
            continue;
        }
        let before = rec.users.len();
        let (stale, kept): (Vec<ShimUser>, Vec<ShimUser>) = rec.users.drain(..).partition(|u| {
            u.key.network == network
                && !valid.contains(&Owner::new(
                    u.key.container_id.clone(),
                    u.key.ifname.clone(),
                ))
        });
        rec.users = kept;
        let link = owned_link(host, &rec)?;
        if let Some(l) = &link {
            for u in &stale {
                for r in &u.routes {
                    if let Some(e) = remove_route(host, l.index, r.ip) {
                        first_err.get_or_insert(e);
                    }
                }
            }
            sweep(host, l.index, &rec);
        }
        let changed = rec.users.len() != before;
        match reg.settle(&rec, changed, |rec| delete_shim(host, rec, link.as_ref())) {
            Ok(d) => deleted += usize::from(d),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    first_err.map_or(Ok(deleted), Err)
}

/// Routes of mactrunk's (protocol [`RTPROT_MACTRUNK`]) and permanent
/// neighbour entries on the shim that no user of `rec` claims.
fn sweep(host: &dyn LinkOps, index: u32, rec: &ShimRecord) {
    match host.routes_of(index) {
        Ok(routes) => {
            for r in routes {
                let ip = r.dst.ip();
                if r.protocol == RTPROT_MACTRUNK
                    && r.dst.prefix() == if ip.is_ipv4() { 32 } else { 128 }
                    && !rec.claims(ip)
                {
                    log_at!(
                        Level::Info,
                        "GC: deleting the host route to {ip} on {} (no attachment claims it)",
                        rec.link
                    );
                    remove_route(host, index, ip);
                }
            }
        }
        Err(e) => log_at!(Level::Warn, "GC: listing the routes of {}: {e}", rec.link),
    }
    match host.neighbours(index) {
        Ok(ns) => {
            for n in ns.into_iter().filter(|n| n.permanent && !rec.claims(n.ip)) {
                if let Err(e) = host.delete_neighbour(index, n.ip)
                    && !e.is_not_found()
                {
                    log_at!(
                        Level::Warn,
                        "GC: deleting the neighbour {} on {}: {e}",
                        n.ip,
                        rec.link
                    );
                }
            }
        }
        Err(e) => log_at!(
            Level::Warn,
            "GC: listing the neighbours of {}: {e}",
            rec.link
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn key(n: &str, c: &str) -> UserKey {
        UserKey {
            network: n.into(),
            container_id: c.into(),
            ifname: "eth0".into(),
        }
    }

    fn user(n: &str, c: &str, ip: &str) -> ShimUser {
        ShimUser {
            key: key(n, c),
            mac: "02:aa:00:00:00:01".into(),
            routes: vec![ShimRoute {
                ip: ip.parse().unwrap(),
                src: "10.0.0.5".parse().unwrap(),
            }],
        }
    }

    fn parent() -> LinkInfo {
        LinkInfo {
            index: 2,
            name: "eth0".into(),
            mac: Some([2, 0, 0, 0, 0, 2]),
            ..LinkInfo::default()
        }
    }

    #[test]
    fn record_format_is_plain_json() {
        let d = tempfile::tempdir().unwrap();
        let reg = Registry::open(d.path(), Duration::from_secs(1)).unwrap();
        let mut r = ShimRecord::new("mts-eth0", &parent(), [6, 1, 2, 3, 4, 5]);
        r.ifindex = Some(9);
        r.upsert(&user("net1", "c1", "10.0.0.100"));
        reg.save(&r).unwrap();
        let text = fs::read_to_string(d.path().join(".mactrunk-shims/mts-eth0.json")).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["link"], "mts-eth0");
        assert_eq!(v["parent"], "eth0");
        assert_eq!(v["mac"], "06:01:02:03:04:05");
        assert_eq!(v["ifindex"], 9);
        assert_eq!(v["bootId"], boot_id());
        assert_eq!(
            v["users"],
            serde_json::json!([{"network": "net1", "containerID": "c1", "ifname": "eth0",
                "mac": "02:aa:00:00:00:01",
                "routes": [{"ip": "10.0.0.100", "src": "10.0.0.5"}]}])
        );
        assert_eq!(reg.load("mts-eth0").unwrap(), Some(r.clone()));
        assert_eq!(peek(d.path(), "mts-eth0"), Some(r));
        assert_eq!(
            registry::records_with_user::<ShimRecord>(d.path(), &key("net1", "c1")),
            ["mts-eth0"]
        );
        assert!(registry::records_with_user::<ShimRecord>(d.path(), &key("net2", "c1")).is_empty());
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(d.path().join(DIR_NAME)).unwrap().permissions();
        assert_eq!(mode.mode() & 0o777, 0o700);
    }

    #[test]
    fn users_are_keyed_by_attachment() {
        let mut r = ShimRecord::new("mts-eth0", &parent(), [6, 0, 0, 0, 0, 1]);
        assert!(r.upsert(&user("a", "c1", "10.0.0.1")).is_none());
        let old = r.upsert(&user("a", "c1", "10.0.0.2")).unwrap();
        assert_eq!(old.routes[0].ip, "10.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(r.users.len(), 1, "a retry replaces its entry");
        r.upsert(&user("b", "c1", "10.0.0.3"));
        assert!(r.claims("10.0.0.3".parse().unwrap()));
        assert!(!r.claims("10.0.0.1".parse().unwrap()));
        assert!(
            r.claimed_by_other(&key("a", "c1"), "10.0.0.3".parse().unwrap())
                .is_some()
        );
        assert!(
            r.claimed_by_other(&key("b", "c1"), "10.0.0.3".parse().unwrap())
                .is_none()
        );
        assert!(r.take(&key("a", "c1")).is_some());
        assert!(r.take(&key("a", "c1")).is_none());
    }

    #[test]
    fn stale_and_corrupt_records_are_never_acted_on() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join(DIR_NAME);
        fs::create_dir_all(&dir).unwrap();
        let mut old = ShimRecord::new("mts-eth1", &parent(), [6, 0, 0, 0, 0, 1]);
        old.boot_id = "another-boot".into();
        old.upsert(&user("n", "c", "10.0.0.9"));
        fs::write(dir.join("mts-eth1.json"), serde_json::to_vec(&old).unwrap()).unwrap();
        fs::write(dir.join("mts-eth2.json"), b"{\"link\": ").unwrap();
        fs::write(dir.join(".tmp.mts-eth0.77"), b"x").unwrap();
        assert!(old.is_stale());
        assert_eq!(peek(d.path(), "mts-eth1"), None, "another boot");
        let reg = Registry::open(d.path(), Duration::from_secs(1)).unwrap();
        assert!(!dir.join(".tmp.mts-eth0.77").exists());
        assert_eq!(reg.load("mts-eth2").unwrap(), None);
        assert!(
            reg.load("mts-eth1").unwrap().unwrap().is_stale(),
            "handed over under the lock, for release and GC to drop"
        );
        assert!(!dir.join("mts-eth2.json").exists(), "moved aside");
        assert!(fs::read_dir(&dir).unwrap().any(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".corrupt-")
        }));
    }

    #[test]
    fn lock_is_bounded_and_code_11() {
        let d = tempfile::tempdir().unwrap();
        let _held = Registry::open(d.path(), Duration::from_secs(1)).unwrap();
        let e = cni(Registry::open(d.path(), Duration::from_millis(30))
            .err()
            .unwrap());
        assert_eq!(e.code, code::TRY_AGAIN_LATER);
        assert!(e.msg.contains(".mactrunk-shims"), "{}", e.msg);
    }
}
