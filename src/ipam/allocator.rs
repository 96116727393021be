//! The allocation strategy over any [`Store`]: idempotent per owner, one
//! address per range set, static requests first, round-robin otherwise, and
//! all-or-nothing across sets. The store is handed in already locked.

use std::net::IpAddr;

use super::config::IpamConfig;
use super::range::{Candidates, dynamic_ok};
use crate::cni::{CniError, code};
use crate::ipam::store::{Owner, Store};

/// One address given to an owner, with the range it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assigned {
    pub set: usize,
    pub ip: IpAddr,
    pub prefix: u8,
    pub gateway: Option<IpAddr>,
    /// Reserved by this call (false: the owner already held it). A rollback
    /// gives back only these.
    pub fresh: bool,
}

pub(crate) fn assigned(conf: &IpamConfig, set: usize, ip: IpAddr) -> Result<Assigned, CniError> {
    let range = conf
        .range_sets
        .get(set)
        .and_then(|s| s.range_for(ip))
        .ok_or_else(|| CniError::internal(format!("{ip} is not in range set {set}")))?;
    Ok(Assigned {
        set,
        ip,
        prefix: range.subnet.prefix(),
        gateway: range.gateway,
        fresh: false,
    })
}

/// Which range set (if any) an address already held belongs to.
fn set_of(conf: &IpamConfig, ip: IpAddr) -> Option<usize> {
    conf.range_sets
        .iter()
        .position(|s| s.ranges.iter().any(|r| r.contains(ip)))
        .or_else(|| {
            conf.range_sets
                .iter()
                .position(|s| s.range_for(ip).is_some())
        })
}

/// Give `owner` one address per range set. Returns them in set order.
/// `netns` identifies the network namespace of this ADD: an owner whose
/// addresses were given for another namespace is a live attachment of the
/// same container ID and interface elsewhere, and is refused (code 4) rather
/// than handed the same addresses (as host-local refuses a duplicate).
pub fn allocate<S: Store>(
    store: &mut S,
    conf: &IpamConfig,
    owner: &Owner,
    netns: Option<&str>,
) -> Result<Vec<Assigned>, CniError> {
    let held = store.owned_by(owner)?;
    if let Some(want) = netns {
        if !held.is_empty()
            && let Some(prev) = store.netns_of(owner)?
            && prev != want
        {
            let list: Vec<String> = held.iter().map(IpAddr::to_string).collect();
            return Err(CniError::env(format!(
                "CNI_CONTAINERID/CNI_IFNAME: {owner} already holds {} for another network namespace; DEL that attachment first",
                list.join(", ")
            )));
        }
        store.bind_netns(owner, want);
    }
    let mut have: Vec<Option<IpAddr>> = vec![None; conf.range_sets.len()];
    let mut stale = Vec::new();
    for ip in held {
        match set_of(conf, ip) {
            Some(i) if have[i].is_none() => have[i] = Some(ip),
            _ => stale.push(ip),
        }
    }
    // A static request that differs from what the owner holds is a conflict.
    for req in &conf.static_ips {
        let Some(set) = conf.range_sets.get(req.set) else {
            return Err(CniError::internal(format!(
                "{}: no range set {}",
                req.key, req.set
            )));
        };
        if let Some(cur) = have[req.set]
            && cur != req.ip
        {
            return Err(CniError::config(
                &req.key,
                format!(
                    "{} is requested but {owner} already holds {cur} in range set {}; delete the attachment first",
                    req.ip, set.key
                ),
            ));
        }
    }
    if stale.is_empty() && have.iter().all(Option::is_some) {
        // Idempotent ADD: the owner already holds a complete allocation.
        return have
            .iter()
            .enumerate()
            .filter_map(|(i, ip)| ip.map(|ip| assigned(conf, i, ip)))
            .collect();
    }
    // A partial or outdated allocation (crash mid-ADD, edited config): keep
    // what still fits, fill the gaps, then drop the rest (only on success,
    // so a failed ADD leaves the owner as it was).
    let mut new: Vec<IpAddr> = Vec::new();
    let result = fill(store, conf, owner, &mut have, &mut new).and_then(|()| {
        for ip in &stale {
            store.unreserve(owner, *ip)?;
            store.unreserve(&owner.legacy(), *ip)?;
        }
        Ok(())
    });
    if let Err(e) = result {
        for ip in new.iter().rev() {
            // Best effort; the original error is what the caller needs.
            let _ = store.unreserve(owner, *ip);
        }
        return Err(e);
    }
    have.iter()
        .enumerate()
        .map(|(i, ip)| {
            let ip = ip.ok_or_else(|| {
                CniError::internal(format!("range set {i} left without an address"))
            })?;
            let mut a = assigned(conf, i, ip)?;
            a.fresh = new.contains(&ip);
            Ok(a)
        })
        .collect()
}

fn fill<S: Store>(
    store: &mut S,
    conf: &IpamConfig,
    owner: &Owner,
    have: &mut [Option<IpAddr>],
    new: &mut Vec<IpAddr>,
) -> Result<(), CniError> {
    for (i, set) in conf.range_sets.iter().enumerate() {
        if have[i].is_some() {
            continue;
        }
        if let Some(req) = conf.static_ips.iter().find(|r| r.set == i) {
            match store.holder(req.ip)? {
                Some(h) if h != *owner => {
                    return Err(CniError::new(
                        code::ADDRESS_IN_USE,
                        format!("{}: {} is already held by {h}", req.key, req.ip),
                    ));
                }
                _ => {}
            }
            if !store.reserve(owner, req.ip)? {
                return Err(CniError::new(
                    code::ADDRESS_IN_USE,
                    format!(
                        "{}: {} is already held by another attachment",
                        req.key, req.ip
                    ),
                ));
            }
            new.push(req.ip);
            have[i] = Some(req.ip);
            continue;
        }
        let last = store.last_reserved(i)?;
        let mut got = None;
        for (_, ip) in Candidates::new(set, &conf.exclusions, last) {
            match store.holder(ip)? {
                None => {}
                // Our own record without index entry (a crash leftover): adopt it.
                Some(h) if h == *owner => {}
                Some(_) => continue,
            }
            if store.reserve(owner, ip)? {
                got = Some(ip);
                break;
            }
        }
        let Some(ip) = got else {
            return Err(CniError::new(
                code::POOL_EXHAUSTED,
                format!(
                    "no free address in range set {} ({})",
                    set.key,
                    set.describe()
                ),
            ));
        };
        new.push(ip);
        have[i] = Some(ip);
        store.set_last_reserved(i, ip)?;
    }
    Ok(())
}

/// Does the set have at least one address free for dynamic allocation?
/// Counts from a full listing (STATUS is rare, a scan is fine).
pub(crate) fn used_in_set(conf: &IpamConfig, set: usize, held: &[IpAddr]) -> u128 {
    let Some(s) = conf.range_sets.get(set) else {
        return 0;
    };
    held.iter()
        .filter(|ip| dynamic_ok(s, &conf.exclusions, **ip))
        .count() as u128
}
