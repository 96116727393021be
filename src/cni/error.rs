//! The CNI error object and the reserved error codes (SPEC.md § Error).

use std::fmt;

/// Error codes reserved by the CNI spec, plus the Go library's 8 and 999.
pub mod code {
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    pub const UNSUPPORTED_FIELD: u32 = 2;
    pub const UNKNOWN_CONTAINER: u32 = 3;
    pub const INVALID_ENV: u32 = 4;
    pub const IO: u32 = 5;
    pub const DECODE: u32 = 6;
    pub const INVALID_CONFIG: u32 = 7;
    pub const INVALID_NETNS: u32 = 8;
    pub const TRY_AGAIN_LATER: u32 = 11;
    pub const NOT_AVAILABLE: u32 = 50;
    pub const LIMITED_CONNECTIVITY: u32 = 51;
    /// Plugin-specific: a kernel (netlink, sysctl, netns) operation failed.
    pub const KERNEL: u32 = 100;
    /// Plugin-specific: an address pool has no free address left.
    pub const POOL_EXHAUSTED: u32 = 101;
    /// Plugin-specific: a requested static address is held by another attachment.
    pub const ADDRESS_IN_USE: u32 = 102;
    /// Plugin-specific: a delegated plugin could not be executed or failed.
    pub const DELEGATE: u32 = 103;
    /// Plugin-specific: CHECK found the attachment differs from prevResult.
    pub const CHECK_FAILED: u32 = 104;
    pub const INTERNAL: u32 = 999;
}

/// A CNI error: printed as `{"cniVersion","code","msg","details"}` on stdout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniError {
    pub code: u32,
    pub msg: String,
    pub details: String,
}

impl CniError {
    pub fn new(code: u32, msg: impl Into<String>) -> Self {
        CniError {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    pub fn with_details(mut self, details: impl Into<String>) -> Self {
        self.details = details.into();
        self
    }

    /// Code 7 with a message that starts with the offending key, e.g. `ipam.ranges[0][0].subnet: ...`.
    pub fn config(key: &str, problem: impl fmt::Display) -> Self {
        CniError::new(code::INVALID_CONFIG, format!("{key}: {problem}"))
    }

    pub fn env(problem: impl Into<String>) -> Self {
        CniError::new(code::INVALID_ENV, problem)
    }

    pub fn kernel(problem: impl Into<String>) -> Self {
        CniError::new(code::KERNEL, problem)
    }

    pub fn internal(problem: impl Into<String>) -> Self {
        CniError::new(code::INTERNAL, problem)
    }

    /// Prefix the message with context, keeping the code.
    pub fn context(mut self, what: impl fmt::Display) -> Self {
        self.msg = format!("{what}: {}", self.msg);
        self
    }

    pub fn to_json(&self, cni_version: &str) -> serde_json::Value {
        let mut obj = serde_json::Map::new();
        obj.insert("cniVersion".into(), cni_version.into());
        obj.insert("code".into(), self.code.into());
        obj.insert("msg".into(), self.msg.clone().into());
        if !self.details.is_empty() {
            obj.insert("details".into(), self.details.clone().into());
        }
        serde_json::Value::Object(obj)
    }
}

impl fmt::Display for CniError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (code {})", self.msg, self.code)?;
        if !self.details.is_empty() {
            write!(f, ": {}", self.details)?;
        }
        Ok(())
    }
}

impl std::error::Error for CniError {}

pub type CniResult<T> = Result<T, CniError>;
