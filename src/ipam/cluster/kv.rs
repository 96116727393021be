//! The KV primitives the block engine needs from etcd, as a trait: the real
//! one is the `mactrunk-etcd` child ([`super::etcd_exec`]), [`MemKv`] a
//! thread-safe in-memory double with the same semantics for the tests.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

/// One key as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kv {
    pub key: String,
    pub value: String,
}

/// A failed KV call. `unreachable`: etcd could not be reached in time
/// (CNI code 11); else etcd (or the helper) refused the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvError {
    pub unreachable: bool,
    pub msg: String,
}

impl KvError {
    pub fn unreachable(msg: impl Into<String>) -> KvError {
        KvError {
            unreachable: true,
            msg: msg.into(),
        }
    }

    pub fn other(msg: impl Into<String>) -> KvError {
        KvError {
            unreachable: false,
            msg: msg.into(),
        }
    }
}

impl fmt::Display for KvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

/// etcd, as far as the engine is concerned. Each call is one etcd request
/// (`create` and `delete_if` one transaction each).
pub trait ClusterKv {
    /// Every key under `prefix`.
    fn list(&mut self, prefix: &str) -> Result<Vec<Kv>, KvError>;
    /// Put `key` only if it does not exist: `Ok(None)` if this call created
    /// it, else `Ok(Some(current value))`.
    fn create(&mut self, key: &str, value: &str) -> Result<Option<String>, KvError>;
    /// [`ClusterKv::create`], and when it creates, `also` is put in the
    /// same transaction (a claim carries the node's usage report: one etcd
    /// round trip and one raft commit instead of two).
    fn create_with(
        &mut self,
        key: &str,
        value: &str,
        also: (&str, &str),
    ) -> Result<Option<String>, KvError> {
        let created = self.create(key, value)?;
        if created.is_none() {
            self.put(also.0, also.1)?;
        }
        Ok(created)
    }
    /// Delete `key` only if its value is `value`; whether it was deleted.
    fn delete_if(&mut self, key: &str, value: &str) -> Result<bool, KvError>;
    fn put(&mut self, key: &str, value: &str) -> Result<(), KvError>;
}

/// In-memory etcd for tests: clones share one map (threads race on it as
/// nodes race on etcd). `down` makes every call fail as unreachable etcd.
#[derive(Debug, Clone, Default)]
pub struct MemKv {
    pub map: Arc<Mutex<BTreeMap<String, String>>>,
    pub down: Arc<Mutex<bool>>,
    /// Calls made through this handle's clones (tests check "no etcd").
    pub calls: Arc<Mutex<u64>>,
}

impl MemKv {
    pub fn new() -> MemKv {
        MemKv::default()
    }

    pub fn set_down(&self, down: bool) {
        if let Ok(mut d) = self.down.lock() {
            *d = down;
        }
    }

    pub fn calls(&self) -> u64 {
        self.calls.lock().map(|c| *c).unwrap_or(0)
    }

    pub fn snapshot(&self) -> BTreeMap<String, String> {
        self.map.lock().map(|m| m.clone()).unwrap_or_default()
    }

    fn enter(&self) -> Result<std::sync::MutexGuard<'_, BTreeMap<String, String>>, KvError> {
        if let Ok(mut c) = self.calls.lock() {
            *c += 1;
        }
        if self.down.lock().map(|d| *d).unwrap_or(false) {
            return Err(KvError::unreachable("etcd is down (test)"));
        }
        self.map
            .lock()
            .map_err(|_| KvError::other("poisoned (test)"))
    }
}

impl ClusterKv for MemKv {
    fn list(&mut self, prefix: &str) -> Result<Vec<Kv>, KvError> {
        Ok(self
            .enter()?
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| Kv {
                key: k.clone(),
                value: v.clone(),
            })
            .collect())
    }

    fn create(&mut self, key: &str, value: &str) -> Result<Option<String>, KvError> {
        let mut m = self.enter()?;
        if let Some(v) = m.get(key) {
            return Ok(Some(v.clone()));
        }
        m.insert(key.to_string(), value.to_string());
        Ok(None)
    }

    /// One call, as etcd's one transaction.
    fn create_with(
        &mut self,
        key: &str,
        value: &str,
        also: (&str, &str),
    ) -> Result<Option<String>, KvError> {
        let mut m = self.enter()?;
        if let Some(v) = m.get(key) {
            return Ok(Some(v.clone()));
        }
        m.insert(key.to_string(), value.to_string());
        m.insert(also.0.to_string(), also.1.to_string());
        Ok(None)
    }

    fn delete_if(&mut self, key: &str, value: &str) -> Result<bool, KvError> {
        let mut m = self.enter()?;
        if m.get(key).is_some_and(|v| v == value) {
            m.remove(key);
            return Ok(true);
        }
        Ok(false)
    }

    fn put(&mut self, key: &str, value: &str) -> Result<(), KvError> {
        self.enter()?.insert(key.to_string(), value.to_string());
        Ok(())
    }
}
