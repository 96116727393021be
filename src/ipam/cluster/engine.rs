//! The block engine: claim, reconcile, return and the static-address check,
//! on top of [`ClusterKv`] and the node's locked [`Store`].
//!
//! The invariant that makes duplicates impossible: **the node's local list
//! of owned blocks is always a subset of the blocks etcd says it owns**, and
//! the allocator only ever picks addresses inside listed blocks. So:
//! - a block enters the local list only after etcd's create transaction said
//!   this node won it (or a list showed it is this node's: reconcile);
//! - a block leaves the local list (durably, under the store lock, only when
//!   no local allocation is in it) before its etcd key is deleted.
//!
//! A crash between the etcd claim and the local record leaves a block that is
//! this node's in etcd but not listed locally: harmless (nobody allocates
//! there) and adopted by the next reconcile (every claim and every GC lists
//! the network's blocks first). A crash between the local removal and the
//! etcd delete leaves the same state. The store lock is held throughout, so
//! the node's own concurrent plugin calls see one consistent list.

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ipnetwork::IpNetwork;
use serde_json::{Value, json};

use super::blocks::{
    block_capacity, block_count, block_key, block_of, choose_free, insert_by, len_for, overlaps,
    parse_block_key, restrict, seed,
};
use super::config::ClusterConfig;
use super::kv::{ClusterKv, KvError};
use crate::cni::{CniError, code};
use crate::ipam::allocator::{Assigned, allocate};
use crate::ipam::config::IpamConfig;
use crate::ipam::range::{Candidates, RangeSet};
use crate::ipam::store::{Owner, Store, StoreError};
use crate::sys::log::{Level, log_at};

/// The store file with the node's owned blocks (not an address record: the
/// host-local layout scanner skips it).
pub const BLOCKS_FILE: &str = ".cluster-blocks";
/// The store file with the session settings, for the admin commands.
pub const SESSION_FILE: &str = ".cluster.json";
/// Create transactions one claim may lose to other nodes before giving up
/// (each loss re-lists: the picture changed).
const MAX_CLAIM_TRIES: usize = 8;
/// Rounds of "allocate, claim what is missing" in one ADD.
const MAX_ROUNDS: usize = 4;
/// Blocks above this size are checked for emptiness by one scan of the
/// store instead of one lookup per address.
const LOOKUP_LIMIT: u128 = 1024;

/// A block this node owns, with the exact etcd value (for the conditional delete).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owned {
    pub block: IpNetwork,
    pub value: String,
}

/// Makes the etcd connection (starts the helper) when first needed.
type Connect<'a> = Box<dyn FnOnce() -> Result<Box<dyn ClusterKv + 'a>, CniError> + 'a>;

/// etcd, connected on first use, at most once per plugin call (a failed
/// connection is not retried within the call).
pub struct Etcd<'a> {
    make: Option<Connect<'a>>,
    kv: Option<Box<dyn ClusterKv + 'a>>,
    failed: Option<CniError>,
    /// Set once anything was asked of etcd (tests: "an owned-block ADD does
    /// not talk to etcd").
    pub used: bool,
    /// The node's usage report went with a claim already.
    reported: bool,
}

impl<'a> Etcd<'a> {
    pub fn lazy(make: impl FnOnce() -> Result<Box<dyn ClusterKv + 'a>, CniError> + 'a) -> Etcd<'a> {
        Etcd {
            make: Some(Box::new(make)),
            kv: None,
            failed: None,
            used: false,
            reported: false,
        }
    }

    fn get(&mut self) -> Result<&mut (dyn ClusterKv + 'a), CniError> {
        self.used = true;
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if self.kv.is_none() {
            let make = self
                .make
                .take()
                .ok_or_else(|| CniError::internal("etcd connection used after failure"))?;
            match make() {
                Ok(kv) => self.kv = Some(kv),
                Err(e) => {
                    self.failed = Some(e.clone());
                    return Err(e);
                }
            }
        }
        match self.kv.as_deref_mut() {
            Some(kv) => Ok(kv),
            None => Err(CniError::internal("etcd connection missing")),
        }
    }
}

/// The node's owned blocks as listed in its store (empty when there is no
/// list yet). Small and free of etcd: the plugin reads it on every ADD.
/// The blocks an owned-block list names, leniently (the admin reports show
/// what is readable; the engine uses the strict [`load_owned`]).
pub fn listed_blocks(text: &str) -> Vec<IpNetwork> {
    serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| {
            v.get("blocks")?.as_array().map(|l| {
                l.iter()
                    .filter_map(|b| b.get("block")?.as_str()?.parse().ok())
                    .collect()
            })
        })
        .unwrap_or_default()
}

pub fn load_owned<S: Store>(store: &mut S) -> Result<Vec<Owned>, CniError> {
    let Some(text) = store.read_meta(BLOCKS_FILE)? else {
        return Ok(Vec::new());
    };
    let corrupt = |p: String| StoreError::Corrupt {
        path: BLOCKS_FILE.into(),
        problem: p,
    };
    let v: Value = serde_json::from_str(&text).map_err(|e| corrupt(e.to_string()))?;
    let list = v
        .get("blocks")
        .and_then(Value::as_array)
        .ok_or_else(|| corrupt("no blocks list".into()))?;
    let mut out = Vec::with_capacity(list.len());
    for b in list {
        let block = b
            .get("block")
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<IpNetwork>().ok())
            .filter(|n| n.network() == n.ip())
            .ok_or_else(|| corrupt(format!("bad block entry {b}")))?;
        let value = b
            .get("value")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        out.push(Owned { block, value });
    }
    Ok(out)
}

/// Does any record (allocation or quarantine) lie in `block`?
pub fn block_in_use<S: Store>(store: &mut S, block: &IpNetwork) -> Result<bool, CniError> {
    let size = match block {
        IpNetwork::V4(n) => 1u128 << (32 - u32::from(n.prefix())),
        IpNetwork::V6(n) => 1u128
            .checked_shl(128 - u32::from(n.prefix()))
            .unwrap_or(u128::MAX),
    };
    if size <= LOOKUP_LIMIT {
        let first = crate::ipam::range::to_u128(block.network());
        for i in 0..size {
            let ip = crate::ipam::range::from_u128(block.is_ipv4(), first + i);
            if store.holder(ip)?.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    } else {
        Ok(store.all()?.iter().any(|a| block.contains(a.ip)))
    }
}

/// Is there a free dynamic address of set `i` inside `blocks`?
pub fn has_room<S: Store>(
    store: &mut S,
    conf: &IpamConfig,
    i: usize,
    blocks: &[IpNetwork],
) -> Result<bool, CniError> {
    let narrowed = restrict(conf, blocks);
    let Some(set) = narrowed.range_sets.get(i) else {
        return Ok(false);
    };
    for (_, ip) in Candidates::new(set, &narrowed.exclusions, None) {
        if store.holder(ip)?.is_none() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// A KV failure as the CNI error the runtime sees: code 11 for "etcd could
/// not be reached in time" (retry later), code 5 for a refusal.
pub fn kv_error(e: KvError) -> CniError {
    let c = if e.unreachable {
        code::TRY_AGAIN_LATER
    } else {
        code::IO
    };
    CniError::new(c, e.msg)
}

/// The engine for one network of one node, over a locked store.
pub struct Engine<'s, 'e, S: Store> {
    pub store: &'s mut S,
    pub cluster: &'s ClusterConfig,
    pub network: &'s str,
    pub etcd: &'s mut Etcd<'e>,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The owner node of a block value (None: not a block value of ours).
pub fn value_node(v: &str) -> Option<String> {
    serde_json::from_str::<Value>(v)
        .ok()?
        .get("node")?
        .as_str()
        .map(str::to_string)
}

impl<'e, S: Store> Engine<'_, 'e, S> {
    fn blocks_prefix(&self) -> String {
        format!("{}blocks/", self.cluster.net_prefix(self.network))
    }

    fn block_etcd_key(&self, b: &IpNetwork) -> String {
        format!("{}{}", self.blocks_prefix(), block_key(b))
    }

    fn node_key(&self) -> String {
        format!(
            "{}nodes/{}",
            self.cluster.net_prefix(self.network),
            self.cluster.node
        )
    }

    /// The local list of owned blocks (empty when there is none yet).
    pub fn load(&mut self) -> Result<Vec<Owned>, CniError> {
        load_owned(self.store)
    }

    /// Write the local list, durably (fsync of the file and the store
    /// directory) before anything is done on its strength in etcd.
    fn save(&mut self, owned: &[Owned]) -> Result<(), CniError> {
        let blocks: Vec<Value> = owned
            .iter()
            .map(|o| json!({"block": o.block.to_string(), "value": o.value}))
            .collect();
        let doc = json!({"node": self.cluster.node, "blocks": blocks});
        self.store
            .write_meta(BLOCKS_FILE, &format!("{doc:#}\n"))
            .map_err(CniError::from)
    }

    /// Keep a copy of the settings next to the store, so that the admin
    /// commands on this node reach etcd with just `--data-dir` (written only
    /// when it changed, on paths that talk to etcd anyway).
    fn save_session(&mut self) {
        let c = self.cluster;
        let mut doc = json!({
            "etcdEndpoints": c.endpoints,
            "nodeName": c.node,
            "timeoutMs": c.timeout.as_millis() as u64,
            "prefix": c.prefix,
        });
        if c.block_v4.is_some() || c.block_v6.is_some() {
            doc["blockSize"] = json!({"v4": c.block_v4, "v6": c.block_v6});
        }
        if let Some(t) = &c.tls {
            doc["tls"] = json!({"ca": t.ca, "cert": t.cert, "key": t.key});
        }
        let text = format!("{doc:#}\n");
        if self.store.read_meta(SESSION_FILE).ok().flatten().as_deref() == Some(text.as_str()) {
            return;
        }
        if let Err(e) = self.store.write_meta(SESSION_FILE, &text) {
            log_at!(Level::Warn, "cluster IPAM: cannot save {SESSION_FILE}: {e}");
        }
    }

    fn kv(&mut self) -> Result<&mut (dyn ClusterKv + 'e), CniError> {
        self.etcd.get()
    }

    /// Every block of this network in etcd: (block, value).
    fn list_blocks(&mut self) -> Result<Vec<(IpNetwork, String)>, CniError> {
        let prefix = self.blocks_prefix();
        let kvs = self.kv()?.list(&prefix).map_err(kv_error)?;
        Ok(kvs
            .into_iter()
            .filter_map(|kv| {
                let b = parse_block_key(kv.key.strip_prefix(&prefix)?)?;
                Some((b, kv.value))
            })
            .collect())
    }

    /// Make the local list agree with etcd's view of this node: adopt every
    /// block etcd says is ours (a claim whose local record a crash lost);
    /// re-claim a listed block that is gone from etcd (an admin released it
    /// under us); drop, with a warning, one etcd gives to another node.
    /// Returns whether the list changed.
    fn reconcile(
        &mut self,
        owned: &mut Vec<Owned>,
        etcd: &[(IpNetwork, String)],
    ) -> Result<bool, CniError> {
        let me = self.cluster.node.clone();
        let mut changed = false;
        let mut keep = Vec::with_capacity(owned.len());
        for o in owned.drain(..) {
            match etcd.iter().find(|(b, _)| *b == o.block) {
                Some((_, v)) if value_node(v).as_deref() == Some(me.as_str()) => {
                    if *v != o.value {
                        changed = true;
                    }
                    keep.push(Owned {
                        block: o.block,
                        value: v.clone(),
                    });
                }
                Some((_, v)) => {
                    log_at!(
                        Level::Warn,
                        "cluster IPAM: block {} of network {} is node {:?}'s in etcd now, no longer ours: dropped (addresses still held in it are duplicates until released)",
                        o.block,
                        self.network,
                        value_node(v).unwrap_or_default()
                    );
                    changed = true;
                }
                None => {
                    let key = self.block_etcd_key(&o.block);
                    let value = o.value.clone();
                    match self.kv()?.create(&key, &value).map_err(kv_error)? {
                        None => keep.push(o),
                        Some(v) if value_node(&v).as_deref() == Some(me.as_str()) => {
                            keep.push(Owned {
                                block: o.block,
                                value: v,
                            })
                        }
                        Some(v) => {
                            log_at!(
                                Level::Warn,
                                "cluster IPAM: block {} of network {} was released in etcd and taken by node {:?}: dropped",
                                o.block,
                                self.network,
                                value_node(&v).unwrap_or_default()
                            );
                            changed = true;
                        }
                    }
                }
            }
        }
        for (b, v) in etcd {
            if value_node(v).as_deref() == Some(me.as_str()) && !keep.iter().any(|o| o.block == *b)
            {
                keep.push(Owned {
                    block: *b,
                    value: v.clone(),
                });
                changed = true;
            }
        }
        let mut sorted = Vec::with_capacity(keep.len());
        for o in keep {
            insert_by(&mut sorted, o, |o| o.block);
        }
        *owned = sorted;
        if changed {
            self.save(owned)?;
        }
        Ok(changed)
    }

    fn block_value(&self, subnet: &IpNetwork) -> String {
        json!({"node": self.cluster.node, "claimed": now_secs(), "subnet": subnet.to_string()})
            .to_string()
    }

    /// Claim `block` with one create transaction: Ok(None) when won (and
    /// recorded locally), Ok(Some(owner value)) when it exists already.
    fn claim(
        &mut self,
        owned: &mut Vec<Owned>,
        block: IpNetwork,
        subnet: &IpNetwork,
    ) -> Result<Option<String>, CniError> {
        let key = self.block_etcd_key(&block);
        let value = self.block_value(subnet);
        // The usage report rides on the claim's transaction. Every claim is
        // for an address about to be allocated, so it counts one more than
        // the node holds now (if that allocation fails, the report errs on
        // the side of "in use", the side release-node refuses on).
        let mut with_block = owned.clone();
        insert_by(
            &mut with_block,
            Owned {
                block,
                value: value.clone(),
            },
            |o| o.block,
        );
        let (report_key, report) = self.report_value(&with_block, 1);
        match self
            .kv()?
            .create_with(&key, &value, (&report_key, &report))
            .map_err(kv_error)?
        {
            None => {
                self.etcd.reported = true;
                insert_by(owned, Owned { block, value }, |o| o.block);
                // A crash right here leaves the block ours in etcd only:
                // reconcile adopts it (see the module docs).
                self.save(owned)?;
                Ok(None)
            }
            Some(v) => Ok(Some(v)),
        }
    }

    /// This node's usage report (`nodes/<node>`): key and value, counting
    /// `pending` addresses about to be allocated.
    fn report_value(&mut self, owned: &[Owned], pending: usize) -> (String, String) {
        let used = self.used_in(owned) + pending;
        let blocks: Vec<String> = owned.iter().map(|o| o.block.to_string()).collect();
        let value = json!({"used": used, "blocks": blocks, "updated": now_secs()}).to_string();
        (self.node_key(), value)
    }

    /// Write this node's usage report; best effort.
    fn report(&mut self, owned: &[Owned]) {
        let (key, value) = self.report_value(owned, 0);
        if let Ok(kv) = self.kv()
            && let Err(e) = kv.put(&key, &value)
        {
            log_at!(Level::Warn, "cluster IPAM: usage report: {e}");
        }
    }

    /// Local allocations inside `owned` blocks.
    fn used_in(&mut self, owned: &[Owned]) -> usize {
        match self.store.all() {
            Ok(all) => all
                .iter()
                .filter(|a| owned.iter().any(|o| o.block.contains(a.ip)))
                .count(),
            Err(_) => 0,
        }
    }

    fn block_in_use(&mut self, block: &IpNetwork) -> Result<bool, CniError> {
        block_in_use(self.store, block)
    }

    fn has_room(
        &mut self,
        conf: &IpamConfig,
        i: usize,
        blocks: &[IpNetwork],
    ) -> Result<bool, CniError> {
        has_room(self.store, conf, i, blocks)
    }

    /// ADD: addresses for `owner` from owned blocks, claiming blocks (and
    /// the blocks of static requests) only when needed. An ADD with room in
    /// its blocks and no static outside them never touches etcd.
    pub fn allocate(
        &mut self,
        conf: &IpamConfig,
        owner: &Owner,
        netns: Option<&str>,
    ) -> Result<Vec<Assigned>, CniError> {
        let mut owned = self.load()?;
        let held = self.store.owned_by(owner)?;
        for req in &conf.static_ips {
            if held.contains(&req.ip) || owned.iter().any(|o| o.block.contains(req.ip)) {
                continue;
            }
            self.static_block(conf, &mut owned, req.set, req.ip, &req.key)?;
        }
        let mut listed = false;
        for _ in 0..MAX_ROUNDS {
            let blocks: Vec<IpNetwork> = owned.iter().map(|o| o.block).collect();
            let narrowed = restrict(conf, &blocks);
            let err = match allocate(self.store, &narrowed, owner, netns) {
                Ok(a) => {
                    if self.etcd.used && !self.etcd.reported {
                        // We talked to etcd anyway: tell it how full we are
                        // (a claim carried the report already).
                        self.report(&owned);
                    }
                    return Ok(a);
                }
                Err(e) if e.code == code::POOL_EXHAUSTED => e,
                Err(e) => return Err(e),
            };
            // Which sets lack room? (Those where the owner holds nothing yet.)
            let held = self.store.owned_by(owner)?;
            let mut need = Vec::new();
            for (i, set) in conf.range_sets.iter().enumerate() {
                if held.iter().any(|ip| set.range_for(*ip).is_some()) {
                    continue;
                }
                if !self.has_room(conf, i, &blocks)? {
                    need.push(i);
                }
            }
            if need.is_empty() {
                return Err(err);
            }
            let etcd = self.list_blocks()?;
            if !listed {
                listed = true;
                self.save_session();
                if self.reconcile(&mut owned, &etcd)? {
                    let blocks: Vec<IpNetwork> = owned.iter().map(|o| o.block).collect();
                    let mut still = Vec::new();
                    for i in need {
                        if !self.has_room(conf, i, &blocks)? {
                            still.push(i);
                        }
                    }
                    need = still;
                }
            }
            for i in need {
                self.claim_for_set(conf, &mut owned, i, etcd.iter().map(|(b, _)| *b).collect())?;
            }
        }
        Err(CniError::new(
            code::TRY_AGAIN_LATER,
            format!(
                "cluster IPAM: no address after {MAX_ROUNDS} rounds of block claims for node {}; try again",
                self.cluster.node
            ),
        ))
    }

    /// Claim a free block of set `i` (retrying on lost races).
    fn claim_for_set(
        &mut self,
        conf: &IpamConfig,
        owned: &mut Vec<Owned>,
        i: usize,
        mut taken: Vec<IpNetwork>,
    ) -> Result<(), CniError> {
        let Some(set) = conf.range_sets.get(i) else {
            return Err(CniError::internal(format!("no range set {i}")));
        };
        taken.extend(owned.iter().map(|o| o.block));
        for _ in 0..MAX_CLAIM_TRIES {
            let Some(block) = choose_free(
                self.cluster,
                set,
                &conf.exclusions,
                &taken,
                seed(&self.cluster.node),
            ) else {
                return Err(no_free_block(self.cluster, set));
            };
            let subnet = set
                .range_for(block.network())
                .or_else(|| {
                    set.ranges
                        .iter()
                        .find(|r| r.subnet.contains(block.network()))
                })
                .map(|r| r.subnet)
                .unwrap_or(block);
            match self.claim(owned, block, &subnet)? {
                None => return Ok(()),
                Some(_) => taken.push(block),
            }
        }
        Err(CniError::new(
            code::TRY_AGAIN_LATER,
            format!(
                "cluster IPAM: lost {MAX_CLAIM_TRIES} block claims in a row in {} for node {} (many nodes claiming at once); try again",
                set.describe(),
                self.cluster.node
            ),
        ))
    }

    /// A static address outside the node's blocks: its block is claimed if
    /// free; in another node's block it is refused, naming the owner.
    fn static_block(
        &mut self,
        conf: &IpamConfig,
        owned: &mut Vec<Owned>,
        set: usize,
        ip: IpAddr,
        key: &str,
    ) -> Result<(), CniError> {
        let Some(range) = conf.range_sets.get(set).and_then(|s| s.range_for(ip)) else {
            return Err(CniError::internal(format!("{key}: {ip} has no range")));
        };
        let subnet = range.subnet;
        let block = block_of(ip, len_for(self.cluster, range));
        let etcd = self.list_blocks()?;
        self.save_session();
        self.reconcile(owned, &etcd)?;
        if owned.iter().any(|o| o.block.contains(ip)) {
            return Ok(());
        }
        let refuse = |b: &IpNetwork, v: &str| {
            CniError::new(
                code::ADDRESS_IN_USE,
                format!(
                    "{key}: {ip} is in block {b} of node {:?} (cluster IPAM): only that node can give it out",
                    value_node(v).unwrap_or_else(|| "?".into())
                ),
            )
        };
        if let Some((b, v)) = etcd.iter().find(|(b, _)| overlaps(b, &block)) {
            return Err(refuse(b, v));
        }
        match self.claim(owned, block, &subnet)? {
            None => Ok(()),
            Some(v) if value_node(&v).as_deref() == Some(self.cluster.node.as_str()) => {
                self.reconcile(owned, &[(block, v)])?;
                Ok(())
            }
            Some(v) => Err(refuse(&block, &v)),
        }
    }

    /// Give `block` back: out of the local list (durably), then the
    /// conditional etcd delete. Errors of the etcd part are returned but the
    /// local part stands: the block is then ours in etcd only, and the next
    /// reconcile adopts it again (and GC returns it).
    fn give_back(&mut self, owned: &mut Vec<Owned>, block: &IpNetwork) -> Result<(), CniError> {
        let Some(pos) = owned.iter().position(|o| o.block == *block) else {
            return Ok(());
        };
        let o = owned.remove(pos);
        self.save(owned)?;
        let key = self.block_etcd_key(&o.block);
        self.kv()?.delete_if(&key, &o.value).map_err(kv_error)?;
        Ok(())
    }

    /// After a DEL released `released`: a block that became empty goes back
    /// to the pool when another owned block of its range set still has a free
    /// address (the node keeps one block with room: the next ADD needs no
    /// etcd). Best effort: failures are logged, never returned.
    pub fn after_release(&mut self, conf: &IpamConfig, released: &[IpAddr]) {
        if let Err(e) = self.try_after_release(conf, released) {
            log_at!(
                Level::Warn,
                "cluster IPAM: returning an empty block failed (the next claim or GC returns it): {}",
                e.msg
            );
        }
    }

    fn try_after_release(
        &mut self,
        conf: &IpamConfig,
        released: &[IpAddr],
    ) -> Result<(), CniError> {
        let mut owned = self.load()?;
        if owned.len() < 2 {
            return Ok(());
        }
        let mut candidates: Vec<IpNetwork> = owned
            .iter()
            .map(|o| o.block)
            .filter(|b| released.iter().any(|ip| b.contains(*ip)))
            .collect();
        candidates.dedup();
        let mut returned = false;
        for b in candidates {
            if self.block_in_use(&b)? {
                continue;
            }
            let Some(set) = conf
                .range_sets
                .iter()
                .position(|s| s.ranges.iter().any(|r| r.subnet.contains(b.network())))
            else {
                continue;
            };
            let others: Vec<IpNetwork> =
                owned.iter().map(|o| o.block).filter(|o| *o != b).collect();
            if !self.has_room(conf, set, &others)? {
                continue;
            }
            self.give_back(&mut owned, &b)?;
            returned = true;
        }
        if returned {
            self.report(&owned);
        }
        Ok(())
    }

    /// GC: reconcile, then return every owned block without a record in
    /// it (the spare too: GC is the tidy-up), and write the usage report.
    /// Returns the blocks given back.
    pub fn gc(&mut self) -> Result<Vec<IpNetwork>, CniError> {
        let mut owned = self.load()?;
        let etcd = self.list_blocks()?;
        self.save_session();
        self.reconcile(&mut owned, &etcd)?;
        let mut given = Vec::new();
        for b in owned.iter().map(|o| o.block).collect::<Vec<_>>() {
            if !self.block_in_use(&b)? {
                self.give_back(&mut owned, &b)?;
                given.push(b);
            }
        }
        self.report(&owned);
        Ok(given)
    }

    /// STATUS: code 50 when a range set has no free address in the node's
    /// blocks and etcd has no free block for it either (or cannot be asked).
    pub fn status(&mut self, conf: &IpamConfig) -> Result<(), CniError> {
        let owned = self.load()?;
        let blocks: Vec<IpNetwork> = owned.iter().map(|o| o.block).collect();
        let mut etcd: Option<Vec<IpNetwork>> = None;
        for (i, set) in conf.range_sets.iter().enumerate() {
            if self.has_room(conf, i, &blocks)? {
                continue;
            }
            if etcd.is_none() {
                let listed = self.list_blocks().map_err(|e| {
                    CniError::new(
                        code::NOT_AVAILABLE,
                        format!(
                            "range set {}: node {}'s blocks are full and etcd cannot be asked for another: {}",
                            set.key, self.cluster.node, e.msg
                        ),
                    )
                })?;
                etcd = Some(listed.into_iter().map(|(b, _)| b).collect());
            }
            let mut taken = etcd.clone().unwrap_or_default();
            taken.extend(blocks.iter().copied());
            if choose_free(self.cluster, set, &conf.exclusions, &taken, 0).is_none() {
                let e = no_free_block(self.cluster, set);
                return Err(CniError::new(code::NOT_AVAILABLE, e.msg));
            }
        }
        Ok(())
    }
}

/// "no free block in 10.88.0.0/24 for node X: all N blocks are claimed"
/// (the store's range-full code, 101).
fn no_free_block(cluster: &ClusterConfig, set: &RangeSet) -> CniError {
    let subnets: Vec<String> = set.ranges.iter().map(|r| r.subnet.to_string()).collect();
    CniError::new(
        code::POOL_EXHAUSTED,
        format!(
            "no free block in {} for node {}: all {} blocks are claimed (ipam.cluster; {} is full on this node)",
            subnets.join(", "),
            cluster.node,
            block_count(cluster, set),
            set.key
        ),
    )
}

/// Usage of the node's blocks for metrics and the admin listing: capacity
/// (dynamic addresses of owned blocks in the set) per range set.
pub fn owned_capacity(conf: &IpamConfig, owned: &[IpNetwork]) -> Vec<u128> {
    conf.range_sets
        .iter()
        .map(|s| {
            owned
                .iter()
                .map(|b| block_capacity(s, &conf.exclusions, b))
                .fold(0u128, u128::saturating_add)
        })
        .collect()
}

/// The local budget of a best-effort etcd call (DEL's block return): short,
/// so that a DEL with etcd down costs little.
pub fn best_effort_budget(cluster: &ClusterConfig) -> Duration {
    cluster.timeout.min(Duration::from_millis(500))
}
