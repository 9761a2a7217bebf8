//! CNI specification versions and the per-version rules of the protocol.
//!
//! Versions are compared as (major, minor, patch). The plugin answers in the version it was
//! asked for, so [`Version`] is carried from the request to the result serializer.

use std::fmt;
use std::str::FromStr;

use crate::env::Command;

/// A CNI specification version this suite implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Version {
    /// 0.1.0: `ip4`/`ip6` results, no chaining.
    V0_1_0,
    /// 0.2.0: adds VERSION; same result layout as 0.1.0.
    V0_2_0,
    /// 0.3.0: rich results (`interfaces`, `ips`), network lists, `prevResult`.
    V0_3_0,
    /// 0.3.1: typo fix of 0.3.0.
    V0_3_1,
    /// 0.4.0: CHECK, `prevResult` on DEL.
    V0_4_0,
    /// 1.0.0: `ips[].version` removed, lists only.
    V1_0_0,
    /// 1.1.0: GC and STATUS, `cniVersions`, extended route and interface fields.
    V1_1_0,
}

/// Every version the suite speaks, oldest first (the order of `supportedVersions`).
pub const ALL: &[Version] = &[
    Version::V0_1_0,
    Version::V0_2_0,
    Version::V0_3_0,
    Version::V0_3_1,
    Version::V0_4_0,
    Version::V1_0_0,
    Version::V1_1_0,
];

/// The newest version, used where a request carries none (VERSION with empty stdin, errors
/// raised before the config could be read).
pub const LATEST: Version = Version::V1_1_0;

impl Version {
    /// The version string as written in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::V0_1_0 => "0.1.0",
            Version::V0_2_0 => "0.2.0",
            Version::V0_3_0 => "0.3.0",
            Version::V0_3_1 => "0.3.1",
            Version::V0_4_0 => "0.4.0",
            Version::V1_0_0 => "1.0.0",
            Version::V1_1_0 => "1.1.0",
        }
    }

    /// Results use the 0.1.0/0.2.0 `ip4`/`ip6` layout.
    pub fn is_legacy_result(self) -> bool {
        self <= Version::V0_2_0
    }

    /// `ips[].version` is present in results (0.3.0 to 0.4.0).
    pub fn has_ip_version_field(self) -> bool {
        (Version::V0_3_0..=Version::V0_4_0).contains(&self)
    }

    /// Whether `command` exists in this version (see [`first_version_of`]).
    pub fn allows(self, command: Command) -> bool {
        self >= first_version_of(command)
    }

    /// CHECK exists from 0.4.0 on.
    pub fn allows_check(self) -> bool {
        self.allows(Command::Check)
    }

    /// GC and STATUS exist from 1.1.0 on.
    pub fn allows_gc_and_status(self) -> bool {
        self.allows(Command::Gc)
    }

    /// Network lists exist from 0.3.0 on; `prevResult` is only sent to chained plugins.
    pub fn allows_chaining(self) -> bool {
        self >= Version::V0_3_0
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A version string that is not one of [`ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported CNI version {0:?}")]
pub struct UnknownVersion(pub String);

impl FromStr for Version {
    type Err = UnknownVersion;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ALL.iter()
            .copied()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| UnknownVersion(s.to_string()))
    }
}

/// The first version that defines `command` (ADD, DEL and VERSION exist in every one).
pub fn first_version_of(command: Command) -> Version {
    match command {
        Command::Add | Command::Del | Command::Version => Version::V0_1_0,
        Command::Check => Version::V0_4_0,
        Command::Gc | Command::Status => Version::V1_1_0,
    }
}

/// Parses a semantic version loosely into (major, minor, patch) for ordering versions this
/// suite does not implement (used when picking the highest of a list's `cniVersions`).
pub fn semver_key(s: &str) -> Option<(u64, u64, u64)> {
    let mut it = s.split('.');
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.parse().ok()?;
    let patch = it.next().map_or(Some(0), |p| p.parse().ok())?;
    if it.next().is_some() {
        return None;
    }
    Some((major, minor, patch))
}

/// The supported version strings, as listed in VERSION replies and error details.
pub fn supported_strings(versions: &[Version]) -> Vec<&'static str> {
    versions.iter().map(|v| v.as_str()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_supported_version_and_round_trips() {
        for v in ALL {
            assert_eq!(v.as_str().parse::<Version>().unwrap(), *v);
        }
    }

    #[test]
    fn rejects_unknown_and_sloppy_versions() {
        for s in ["", "1.1", "v1.1.0", "9.9.9", "0.4.0 ", "1.2.0"] {
            assert!(s.parse::<Version>().is_err(), "{s:?} must not parse");
        }
    }

    #[test]
    fn verb_rules_follow_the_spec() {
        assert!(!Version::V0_3_1.allows_check());
        assert!(Version::V0_4_0.allows_check());
        assert!(!Version::V1_0_0.allows_gc_and_status());
        assert!(Version::V1_1_0.allows_gc_and_status());
        assert!(Version::V0_4_0.has_ip_version_field());
        assert!(!Version::V1_0_0.has_ip_version_field());
        assert!(Version::V0_2_0.is_legacy_result());
        assert!(!Version::V0_3_0.is_legacy_result());
    }

    #[test]
    fn semver_key_orders_versions() {
        assert!(semver_key("1.1.0") > semver_key("1.0.0"));
        assert!(semver_key("0.10.0") > semver_key("0.4.0"));
        assert_eq!(semver_key("2.0"), Some((2, 0, 0)));
        assert_eq!(semver_key("x.1.0"), None);
    }
}
