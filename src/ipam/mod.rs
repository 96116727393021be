//! host-local-compatible IPAM: config, range math, allocation, and the
//! commands (ADD, DEL, CHECK, GC, STATUS, listing) over a [`FileStore`].

pub(crate) mod allocator;
pub mod cluster;
pub mod config;
pub(crate) mod delegate;
pub mod plugin;
pub mod range;
pub(crate) mod resolv;
pub mod store;

use std::io;
use std::net::IpAddr;
use std::path::Path;

use ipnetwork::IpNetwork;

use crate::cni::{CniError, CniOutput, Dns, IpConfig, code};
use crate::ipam::store::{Allocation, FileStore, Owner, Store, StoreError, StoreReader};

pub use allocator::{Assigned, allocate};
pub use config::{IpamConfig, StaticIp, StoreLocation};
pub use range::{Exclusions, Range, RangeSet};

/// Is there a store directory at all? (DEL, GC, listing must not create one.)
fn store_exists(dir: &Path) -> Result<bool, CniError> {
    match std::fs::symlink_metadata(dir) {
        Ok(_) => Ok(true),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            Ok(false)
        }
        Err(e) => Err(StoreError::io("stat", dir, e).into()),
    }
}

/// The DNS of the result: `dns` over `resolvConf`, per field.
pub fn dns(conf: &IpamConfig) -> Result<Dns, CniError> {
    let Some(path) = &conf.resolv_conf else {
        return Ok(conf.dns.clone());
    };
    let from_file = resolv::read(path).map_err(|e| {
        CniError::config(
            "ipam.resolvConf",
            format!("cannot read {}: {e}", path.display()),
        )
    })?;
    Ok(conf.dns.clone().merged_over(&from_file))
}

/// Build the IPAM part of a result from the assigned addresses.
pub fn output(conf: &IpamConfig, assigned: &[Assigned], dns: Dns) -> Result<CniOutput, CniError> {
    let ips = assigned
        .iter()
        .map(|a| {
            Ok(IpConfig {
                address: IpNetwork::new(a.ip, a.prefix)
                    .map_err(|e| CniError::internal(format!("{}/{}: {e}", a.ip, a.prefix)))?,
                gateway: a.gateway,
                interface: None,
            })
        })
        .collect::<Result<Vec<_>, CniError>>()?;
    Ok(CniOutput {
        interfaces: Vec::new(),
        ips,
        routes: conf.routes.clone(),
        dns,
    })
}

/// ADD: one address per range set for `owner` (the same ones again if it
/// already holds them), plus the configured routes and DNS.
#[cfg(test)]
pub fn add(conf: &IpamConfig, owner: &Owner) -> Result<CniOutput, CniError> {
    add_in(conf, owner, None).map(|a| a.out)
}

/// What ADD gave: the IPAM result, and the addresses this call reserved
/// (the owner may have held others already: a rollback gives back only these).
#[derive(Debug, Clone, PartialEq)]
pub struct Added {
    pub out: CniOutput,
    pub fresh: Vec<IpAddr>,
}

/// ADD for the network namespace `netns` (an id from `NetNs::id`; None when
/// unknown): an owner already holding addresses for another namespace is
/// refused, see [`allocate`].
pub fn add_in(conf: &IpamConfig, owner: &Owner, netns: Option<&str>) -> Result<Added, CniError> {
    owner.validate()?;
    let dns = dns(conf)?; // before taking the lock: a bad resolvConf allocates nothing
    let loc = conf.location();
    let mut store = FileStore::open(&loc.dir, loc.lock_timeout)?;
    allocate_durably(&mut store, conf, owner, netns, dns)
}

/// [`allocate`] and commit; a commit that fails gives back this call's
/// addresses rather than report success.
fn allocate_durably(
    store: &mut FileStore,
    conf: &IpamConfig,
    owner: &Owner,
    netns: Option<&str>,
    dns: Dns,
) -> Result<Added, CniError> {
    let assigned = match &conf.cluster {
        None => allocate(store, conf, owner, netns)?,
        // etcd (through the helper) only if the node's blocks cannot serve it.
        Some(_) => cluster::allocate(store, conf, owner, netns)?,
    };
    let fresh: Vec<IpAddr> = assigned.iter().filter(|a| a.fresh).map(|a| a.ip).collect();
    if let Err(e) = store.commit() {
        for ip in &fresh {
            let _ = store.unreserve(owner, *ip);
        }
        return Err(e.into());
    }
    Ok(Added {
        out: output(conf, &assigned, dns)?,
        fresh,
    })
}

/// What [`quarantine`] did with the addresses it was given.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Quarantined {
    /// Handed to their quarantine holders.
    pub quarantined: Vec<IpAddr>,
    /// Given back instead of quarantined: the store held `limit` quarantined
    /// addresses already.
    pub released: Vec<IpAddr>,
    /// Quarantined addresses the store held before this call.
    pub held_before: usize,
    /// With `replace`: the owner's new addresses.
    pub added: Option<Added>,
}

/// Addresses of `owner` found in use on the network (an ARP probe was
/// answered, IPv6 DAD failed), each with what showed it (a MAC, or
/// `ipv6-dad`). Each is handed to its quarantine holder `conflict:<by>`
/// and made durable at once, so that no allocation gives it out again until
/// `mactrunk-ipam release` frees it, as long as the store holds fewer than
/// `limit` quarantined addresses: past that, the address is given back
/// instead (a network that answers for everything, e.g. through proxy ARP,
/// must not turn its whole range into quarantines, one retried ADD after
/// another). With `replace`, `owner` then gets new addresses for the range
/// sets that lost theirs, under the same lock (the round-robin cursor moves
/// past the ones just found). Addresses `owner` does not hold are left as
/// they are and reported in neither list.
pub fn quarantine(
    conf: &IpamConfig,
    owner: &Owner,
    netns: Option<&str>,
    found: &[(IpAddr, String)],
    limit: usize,
    replace: bool,
) -> Result<Quarantined, CniError> {
    owner.validate()?;
    let loc = conf.location();
    let mut store = FileStore::open(&loc.dir, loc.lock_timeout)?;
    let mut done = Quarantined::default();
    if !found.is_empty() {
        // A scan of the whole store, on this rare path only (an address
        // found in use); entries it cannot read are no quarantines.
        let (all, _) = store.scan()?;
        done.held_before = all.iter().filter(|a| a.owner.is_quarantine()).count();
    }
    let mut room = limit.saturating_sub(done.held_before);
    for (ip, by) in found {
        if room > 0 {
            if store.quarantine(owner, *ip, &Owner::quarantine(by))? {
                done.quarantined.push(*ip);
                room -= 1;
            }
        } else if store.unreserve(owner, *ip)? {
            done.released.push(*ip);
        }
    }
    store.commit()?;
    if replace {
        let dns = dns(conf)?;
        done.added = Some(allocate_durably(&mut store, conf, owner, netns, dns)?);
    }
    Ok(done)
}

/// Rollback of a failed ADD: give back exactly the addresses that ADD
/// reserved (`Added::fresh`), nothing the owner held before.
pub fn release_fresh(loc: &StoreLocation, owner: &Owner, fresh: &[IpAddr]) -> Result<(), CniError> {
    if fresh.is_empty() {
        return Ok(());
    }
    let mut store = FileStore::open(&loc.dir, loc.lock_timeout)?;
    for ip in fresh {
        store.unreserve(owner, *ip)?;
    }
    store.commit()?;
    Ok(())
}

/// The IPAM config of a netconf in cluster mode, parsed leniently for DEL
/// and GC (None: no `ipam.cluster`, or a config that no longer parses: the
/// local part of DEL and GC still runs). Without `ipam.cluster` nothing
/// beyond one map lookup is done.
pub fn cluster_conf_of(conf: &serde_json::Value) -> Option<IpamConfig> {
    conf.get("ipam")
        .and_then(|i| i.get("cluster"))
        .filter(|c| !c.is_null())?;
    IpamConfig::from_netconf(conf, &crate::cni::env::CniArgs::default()).ok()
}

/// DEL: release everything `owner` holds. Idempotent; a missing store is fine.
pub fn del(loc: &StoreLocation, owner: &Owner) -> Result<(), CniError> {
    del_in(loc, owner, None)
}

/// DEL, and in cluster mode (`conf` from [`cluster_conf_of`]) the return of
/// a block that became empty: best effort, never an error of the DEL.
pub fn del_in(
    loc: &StoreLocation,
    owner: &Owner,
    conf: Option<&IpamConfig>,
) -> Result<(), CniError> {
    if owner.validate().is_err() {
        // ADD refuses such an owner (an over-long container ID), so it holds
        // nothing; failing its DEL would make the runtime retry forever.
        return Ok(());
    }
    if !store_exists(&loc.dir)? {
        return Ok(());
    }
    let mut store = FileStore::open(&loc.dir, loc.lock_timeout)?;
    let released = store.release(owner)?;
    store.commit()?;
    if let Some(conf) = conf
        && !released.is_empty()
    {
        cluster::after_release(&mut store, conf, &released);
    }
    Ok(())
}

/// CHECK: does `owner` hold exactly `expected` (the prevResult's addresses),
/// each inside a configured range set? Code 104 if not.
pub fn check(conf: &IpamConfig, owner: &Owner, expected: &[IpAddr]) -> Result<(), CniError> {
    owner.validate()?;
    let loc = conf.location();
    let mut held = if store_exists(&loc.dir)? {
        let mut store = FileStore::open(&loc.dir, loc.lock_timeout)?;
        store.owned_by(owner)?
    } else {
        Vec::new()
    };
    check_held(conf, owner, &mut held, expected)
}

fn check_held(
    conf: &IpamConfig,
    owner: &Owner,
    held: &mut [IpAddr],
    expected: &[IpAddr],
) -> Result<(), CniError> {
    let mut want = expected.to_vec();
    held.sort();
    want.sort();
    want.dedup();
    let list = |v: &[IpAddr]| {
        let s: Vec<String> = v.iter().map(IpAddr::to_string).collect();
        format!("[{}]", s.join(", "))
    };
    if *held != *want {
        return Err(CniError::new(
            code::CHECK_FAILED,
            format!(
                "ipam: {owner} holds {} in {} but prevResult lists {}",
                list(held),
                conf.location().dir.display(),
                list(&want)
            ),
        ));
    }
    for ip in held.iter() {
        if !conf.range_sets.iter().any(|s| s.range_for(*ip).is_some()) {
            return Err(CniError::new(
                code::CHECK_FAILED,
                format!("ipam: {ip} held by {owner} is not in any configured range set"),
            ));
        }
    }
    Ok(())
}

/// What GC did.
#[derive(Debug, Default)]
pub struct GcReport {
    /// Allocations released.
    pub released: Vec<Allocation>,
    /// Allocations kept (owner still valid).
    pub kept: usize,
    /// Index entries dropped because their records were gone.
    pub index_entries_dropped: usize,
    /// Failures; GC carried on after each.
    pub errors: Vec<CniError>,
}

impl GcReport {
    /// All failures as one error (the first one's code), if there were any.
    pub fn error(&self) -> Option<CniError> {
        let first = self.errors.first()?;
        let msgs: Vec<&str> = self.errors.iter().map(|e| e.msg.as_str()).collect();
        Some(CniError::new(
            first.code,
            format!("GC: {} failure(s): {}", self.errors.len(), msgs.join("; ")),
        ))
    }
}

/// Is an allocation of `owner` still wanted, given the valid attachments?
fn is_valid(owner: &Owner, valid: &[Owner]) -> bool {
    if owner.is_legacy() {
        !owner.container_id.is_empty() && valid.iter().any(|v| v.container_id == owner.container_id)
    } else {
        valid.contains(owner)
    }
}

/// GC: release every allocation whose owner is not in `valid` (`None`:
/// release nothing). Scans the store; carries on after individual failures.
pub fn gc(loc: &StoreLocation, valid: Option<&[Owner]>) -> Result<GcReport, CniError> {
    gc_in(loc, valid, None)
}

/// GC, and in cluster mode (`conf` from [`cluster_conf_of`]) then the
/// reconcile with etcd and the return of every empty block. etcd trouble
/// does not fail GC: the local part is done, a warning goes to stderr.
pub fn gc_in(
    loc: &StoreLocation,
    valid: Option<&[Owner]>,
    conf: Option<&IpamConfig>,
) -> Result<GcReport, CniError> {
    let Some(valid) = valid else {
        return Ok(GcReport::default());
    };
    if !store_exists(&loc.dir)? {
        return Ok(GcReport::default());
    }
    let mut store = FileStore::open(&loc.dir, loc.lock_timeout)?;
    let report = gc_store(&mut store, valid);
    if let Some(conf) = conf
        && conf.cluster.is_some()
        && let Err(e) = cluster::gc(&mut store, conf)
    {
        eprintln!(
            "mactrunk-ipam: GC of network {}: local part done; cluster blocks not reconciled: {}",
            conf.network, e.msg
        );
    }
    Ok(report)
}

pub(crate) fn gc_store<S: Store>(store: &mut S, valid: &[Owner]) -> GcReport {
    let mut report = GcReport::default();
    let all = match store.scan() {
        Ok((a, problems)) => {
            report
                .errors
                .extend(problems.into_iter().map(CniError::from));
            a
        }
        Err(e) => {
            report.errors.push(e.into());
            return report;
        }
    };
    for a in all {
        // A quarantine is no attachment's: only `mactrunk-ipam release` ends it.
        if a.owner.is_quarantine() || is_valid(&a.owner, valid) {
            report.kept += 1;
            continue;
        }
        match store.unreserve(&a.owner, a.ip) {
            Ok(_) => report.released.push(a),
            Err(e) => report
                .errors
                .push(CniError::from(e).context(format!("release {}", a.ip))),
        }
    }
    match store.clean_index() {
        Ok(n) => report.index_entries_dropped = n,
        Err(e) => report.errors.push(e.into()),
    }
    if let Err(e) = store.commit() {
        report.errors.push(e.into());
    }
    report
}

/// Usage of one range set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeSetUsage {
    pub set: usize,
    /// The set's config key, e.g. `ipam.ranges[0]`.
    pub key: String,
    pub ranges: Vec<Range>,
    /// Addresses available for dynamic allocation (gateway and exclusions not counted).
    pub capacity: u128,
    /// Of those, how many are allocated.
    pub used: u128,
    /// Allocations inside the set's subnets but outside its ranges (static).
    pub static_outside: u128,
}

impl RangeSetUsage {
    pub fn free(&self) -> u128 {
        self.capacity.saturating_sub(self.used)
    }
}

/// Per range set: capacity and how many of `held` are in use there (pure;
/// [`usage`] reads `held` from the store).
pub fn usage_of(conf: &IpamConfig, held: &[IpAddr]) -> Vec<RangeSetUsage> {
    conf.range_sets
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let used = allocator::used_in_set(conf, i, held);
            let in_subnets = held.iter().filter(|ip| s.range_for(**ip).is_some()).count() as u128;
            let in_ranges = held
                .iter()
                .filter(|ip| s.ranges.iter().any(|r| r.contains(**ip)))
                .count() as u128;
            RangeSetUsage {
                set: i,
                key: s.key.clone(),
                ranges: s.ranges.clone(),
                capacity: s.capacity(&conf.exclusions),
                used,
                static_outside: in_subnets.saturating_sub(in_ranges),
            }
        })
        .collect()
}

/// Per range set: capacity and addresses in use. Scans the store.
pub fn usage(conf: &IpamConfig) -> Result<Vec<RangeSetUsage>, CniError> {
    let held: Vec<IpAddr> = list(&conf.location())?.into_iter().map(|a| a.ip).collect();
    Ok(usage_of(conf, &held))
}

/// STATUS: code 50 when some range set has no free address, or the store
/// cannot be written (as the ADD would find it: a real write + fsync in the
/// store; for a store that does not exist yet, the free blocks and inodes of
/// the filesystem it would be created on). STATUS is rare: probing is fine.
pub fn status(conf: &IpamConfig) -> Result<(), CniError> {
    let loc = conf.location();
    let unavailable = |msg: String| CniError::new(code::NOT_AVAILABLE, msg);
    let held: Vec<IpAddr> = if store_exists(&loc.dir)? {
        let mut store = FileStore::open(&loc.dir, loc.lock_timeout).map_err(|e| match e {
            StoreError::LockTimeout { .. } => CniError::from(e),
            other => unavailable(other.to_string()),
        })?;
        store.probe_write().map_err(|e| {
            unavailable(format!(
                "IPAM store {} cannot be written, ADD would fail: {e}",
                loc.dir.display()
            ))
        })?;
        if conf.cluster.is_some() {
            return cluster::status(&mut store, conf);
        }
        store.all()?.into_iter().map(|a| a.ip).collect()
    } else {
        let parent = writable_ancestor(&loc.dir).map_err(unavailable)?;
        has_room(parent).map_err(|e| {
            unavailable(format!(
                "IPAM store {} cannot be created in {}: {e}",
                loc.dir.display(),
                parent.display()
            ))
        })?;
        Vec::new()
    };
    for u in usage_of(conf, &held) {
        if u.free() == 0 {
            return Err(unavailable(format!(
                "range set {} has no free address ({} of {} in use: {})",
                u.key,
                u.used,
                u.capacity,
                u.ranges
                    .iter()
                    .map(Range::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    Ok(())
}

/// The nearest existing ancestor of `dir` must be writable (the store would
/// be created there); returns it.
fn writable_ancestor(dir: &Path) -> Result<&Path, String> {
    let mut p = dir;
    loop {
        match std::fs::metadata(p) {
            Ok(m) if !m.is_dir() => {
                return Err(format!(
                    "IPAM store {}: {} is not a directory",
                    dir.display(),
                    p.display()
                ));
            }
            Ok(_) => {
                return access_w(p).map(|()| p).map_err(|e| {
                    format!(
                        "IPAM store {}: {} is not writable: {e}",
                        dir.display(),
                        p.display()
                    )
                });
            }
            Err(_) => match p.parent() {
                Some(parent) => p = parent,
                None => {
                    return Err(format!(
                        "IPAM store {}: no existing parent directory",
                        dir.display()
                    ));
                }
            },
        }
    }
}

/// Does the filesystem of `dir` have a free block and a free inode for us?
/// Root may use the blocks and inodes reserved for root, as ADD would.
fn has_room(dir: &Path) -> Result<(), String> {
    let st = nix::sys::statvfs::statvfs(dir).map_err(|e| format!("statvfs: {e}"))?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let (blocks, inodes) = if root {
        (st.blocks_free(), st.files_free())
    } else {
        (st.blocks_available(), st.files_available())
    };
    // A filesystem that reports no inode counts at all (files == 0) has no
    // inode limit.
    if blocks == 0 {
        Err("no space left on the filesystem (0 free blocks)".into())
    } else if inodes == 0 && st.files() != 0 {
        Err("no free inode left on the filesystem".into())
    } else if st.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY) {
        Err("the filesystem is mounted read-only".into())
    } else {
        Ok(())
    }
}

fn access_w(p: &Path) -> Result<(), io::Error> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).map_err(io::Error::other)?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    let rc = unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Every allocation in the store (for the admin CLI). A missing store is
/// empty. Read-only: writes nothing, creates nothing (see [`StoreReader`]).
pub fn list(loc: &StoreLocation) -> Result<Vec<Allocation>, CniError> {
    if !store_exists(&loc.dir)? {
        return Ok(Vec::new());
    }
    Ok(StoreReader::open(&loc.dir, loc.lock_timeout)?.all()?)
}

#[cfg(test)]
mod tests;
