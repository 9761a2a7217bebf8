//! The `ipam` key of the agent's configuration.
//!
//! ```json
//! "ipam": {"leakGraceSeconds": 900, "nodeGraceSeconds": 3600, "emptyBlockGraceSeconds": 60}
//! ```

use std::time::Duration;

use serde::Deserialize;

/// Default time an address whose attachment looks gone is kept before it is released.
pub const DEFAULT_LEAK_GRACE: Duration = Duration::from_secs(900);
/// Default time a node's lease must stay gone before its blocks return to the pool.
pub const DEFAULT_NODE_GRACE: Duration = Duration::from_secs(3600);
/// Default time a surplus block must stay empty before it returns to the pool.
pub const DEFAULT_EMPTY_BLOCK_GRACE: Duration = Duration::from_secs(60);
/// `nodeGraceSeconds` must be at least this many lease TTLs.
pub const NODE_GRACE_TTLS: u32 = 4;

/// The `ipam` object as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IpamFile {
    leak_grace_seconds: Option<u64>,
    node_grace_seconds: Option<u64>,
    empty_block_grace_seconds: Option<u64>,
}

/// The checked settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpamConfig {
    /// An address whose attachment looks gone is released after this, checked again first.
    pub leak_grace: Duration,
    /// Every block of a node whose lease has been gone this long returns to the pool. An
    /// agent that has not reached the store for half of it stops handing out addresses.
    pub node_grace: Duration,
    /// A block beyond the node's last one that stayed empty this long returns to the pool.
    pub empty_block_grace: Duration,
}

impl Default for IpamConfig {
    fn default() -> Self {
        IpamConfig {
            leak_grace: DEFAULT_LEAK_GRACE,
            node_grace: DEFAULT_NODE_GRACE,
            empty_block_grace: DEFAULT_EMPTY_BLOCK_GRACE,
        }
    }
}

impl IpamFile {
    /// Checks the values against each other and the lease TTL; errors name the key.
    pub fn check(&self, lease_ttl: Duration) -> Result<IpamConfig, String> {
        let secs = |key: &str, v: Option<u64>, default: Duration| match v {
            None => Ok(default),
            Some(s) if (1..=30 * 86400).contains(&s) => Ok(Duration::from_secs(s)),
            Some(s) => Err(format!(
                "ipam.{key}: {s} is not between 1 and 2592000 seconds"
            )),
        };
        let c = IpamConfig {
            leak_grace: secs(
                "leakGraceSeconds",
                self.leak_grace_seconds,
                DEFAULT_LEAK_GRACE,
            )?,
            node_grace: secs(
                "nodeGraceSeconds",
                self.node_grace_seconds,
                DEFAULT_NODE_GRACE,
            )?,
            empty_block_grace: secs(
                "emptyBlockGraceSeconds",
                self.empty_block_grace_seconds,
                DEFAULT_EMPTY_BLOCK_GRACE,
            )?,
        };
        let floor = lease_ttl * NODE_GRACE_TTLS;
        if c.node_grace < floor {
            return Err(format!(
                "ipam.nodeGraceSeconds: {} is less than {NODE_GRACE_TTLS} lease TTLs ({} s): a node whose agent restarts or whose store link blinks would lose its blocks",
                c.node_grace.as_secs(),
                floor.as_secs()
            ));
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(v: serde_json::Value, ttl: u64) -> Result<IpamConfig, String> {
        let f: IpamFile = serde_json::from_value(v).map_err(|e| e.to_string())?;
        f.check(Duration::from_secs(ttl))
    }

    #[test]
    fn defaults_and_limits() {
        assert_eq!(
            check(serde_json::json!({}), 10).unwrap(),
            IpamConfig::default()
        );
        let c = check(
            serde_json::json!({"leakGraceSeconds": 2, "nodeGraceSeconds": 12, "emptyBlockGraceSeconds": 1}),
            3,
        )
        .unwrap();
        assert_eq!(c.leak_grace, Duration::from_secs(2));
        assert_eq!(c.node_grace, Duration::from_secs(12));
        let e = check(serde_json::json!({"nodeGraceSeconds": 30}), 10).unwrap_err();
        assert!(
            e.starts_with("ipam.nodeGraceSeconds: 30 is less than 4 lease TTLs (40 s)"),
            "{e}"
        );
        let e = check(serde_json::json!({"leakGraceSeconds": 0}), 10).unwrap_err();
        assert!(
            e.starts_with("ipam.leakGraceSeconds: 0 is not between"),
            "{e}"
        );
        let e = check(serde_json::json!({"leakGrace": 5}), 10).unwrap_err();
        assert!(e.contains("unknown field `leakGrace`"), "{e}");
    }
}
