//! Supported spec versions and what each one's result format contains.

use std::fmt;

use super::error::{CniError, code};

/// Versions we accept in `cniVersion`, oldest first (the Go library's `version.All`).
pub const SUPPORTED: [&str; 7] = [
    "0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(usize);

impl Version {
    pub const V0_1_0: Version = Version(0);
    pub const V0_2_0: Version = Version(1);
    pub const V0_3_0: Version = Version(2);
    pub const V0_3_1: Version = Version(3);
    pub const V0_4_0: Version = Version(4);
    pub const V1_0_0: Version = Version(5);
    pub const V1_1_0: Version = Version(6);
    pub const LATEST: Version = Version::V1_1_0;

    /// Exact string match against the supported list; anything else is code 1.
    pub fn parse(s: &str) -> Result<Version, CniError> {
        SUPPORTED
            .iter()
            .position(|v| *v == s)
            .map(Version)
            .ok_or_else(|| {
                CniError::new(
                    code::INCOMPATIBLE_VERSION,
                    format!("cniVersion: unsupported version {s:?}"),
                )
                .with_details(format!("supported versions: {}", SUPPORTED.join(", ")))
            })
    }

    pub fn as_str(self) -> &'static str {
        SUPPORTED[self.0]
    }

    /// 0.1.0 and 0.2.0 use the `ip4`/`ip6` result form.
    pub fn is_legacy_result(self) -> bool {
        self < Version::V0_3_0
    }

    /// 0.3.x and 0.4.0 tag every IP with `"version": "4"|"6"`.
    pub fn ips_carry_version(self) -> bool {
        self >= Version::V0_3_0 && self < Version::V1_0_0
    }

    /// Interface `mtu`, `socketPath`, `pciID` appeared in 1.1.
    pub fn has_interface_mtu(self) -> bool {
        self >= Version::V1_1_0
    }

    /// Route `mtu`, `advmss`, `priority`, `table`, `scope` appeared in 1.1.
    pub fn has_route_extras(self) -> bool {
        self >= Version::V1_1_0
    }

    /// CHECK exists from 0.4.0 on.
    pub fn supports_check(self) -> bool {
        self >= Version::V0_4_0
    }

    /// GC and STATUS exist from 1.1.0 on.
    pub fn supports_gc_status(self) -> bool {
        self >= Version::V1_1_0
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
