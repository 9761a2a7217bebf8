//! The crate's one error type, and its conversion to the CNI error object.
//!
//! Every variant carries the context an operator needs (key path, address, range set, file).
//! [`From<IpamError> for CniError`](IpamError) is the only place spec codes are assigned:
//! 7 for configuration, 4 for a malformed `CNI_ARGS` value, 101 when no address can be had,
//! 103 for CHECK, 100 for the store's file operations, and 50 only for STATUS.

use std::io;
use std::net::IpAddr;
use std::path::PathBuf;

use ferro_spec::{CniError, Code, Version};

/// Everything that can go wrong in the IPAM: configuration, requests, allocation, the store.
#[derive(Debug, thiserror::Error)]
pub enum IpamError {
    /// A configuration key holds an invalid value (code 7). `path` is the key path, e.g.
    /// `ipam.ranges[1][0].rangeStart`.
    #[error("{path}: {msg}")]
    Config {
        /// Key path.
        path: String,
        /// What is wrong with it.
        msg: String,
    },

    /// A 0.1.0/0.2.0 request with more than one IPv4 or IPv6 range set, which its result
    /// could not hold (code 7). Reported in the reference plugins' words (see
    /// [`CniError::several_addresses_per_family`]); this text goes to the log.
    #[error("ipam.ranges: cniVersion {version} allows at most one IPv4 and one IPv6 range set ({v4} IPv4, {v6} IPv6 given)")]
    SeveralPerFamily {
        /// The request's version.
        version: Version,
        /// IPv4 range sets given.
        v4: usize,
        /// IPv6 range sets given.
        v6: usize,
    },

    /// A configuration key has the wrong JSON type (code 6).
    #[error("{path}: {msg}")]
    Decode {
        /// Key path.
        path: String,
        /// What was expected.
        msg: String,
    },

    /// A `CNI_ARGS` value is malformed (code 4).
    #[error("{key}: {msg}")]
    InvalidArgs {
        /// `CNI_ARGS IP`.
        key: String,
        /// What is wrong with it.
        msg: String,
    },

    /// A requested address lies in no configured range set (code 7).
    #[error("requested address {ip} ({source_key}) is not in any configured range set")]
    RequestedOutside {
        /// The address.
        ip: IpAddr,
        /// Where it was requested (`CNI_ARGS IP`, `args.cni.ips[0]`, `runtimeConfig.ips[1]`).
        source_key: String,
    },

    /// A requested address is the gateway of its range (code 7).
    #[error("requested address {ip} ({source_key}) is the gateway of {set}")]
    RequestedGateway {
        /// The address.
        ip: IpAddr,
        /// Where it was requested.
        source_key: String,
        /// The range set, described.
        set: String,
    },

    /// Two requested addresses fall in the same range set (code 7).
    #[error("requested addresses {first} and {second} ({source_key}) are both in {set}: one address per range set")]
    RequestedSameSet {
        /// The address that was kept.
        first: IpAddr,
        /// The extra one.
        second: IpAddr,
        /// Where the extra one was requested.
        source_key: String,
        /// The range set, described.
        set: String,
    },

    /// A requested address is leased to another attachment (code 101).
    #[error("requested IP address {ip} is not available in {set}: leased to {owner}")]
    RequestedTaken {
        /// The address.
        ip: IpAddr,
        /// The range set, described.
        set: String,
        /// Who holds it.
        owner: String,
    },

    /// Every address of a range set is leased (code 101).
    #[error("no IP addresses available in {set}")]
    Exhausted {
        /// The range set, described.
        set: String,
    },

    /// The attachment already holds an address in a range set (code 101).
    #[error("{ip} has been allocated to {container_id}, duplicate allocation is not allowed")]
    Duplicate {
        /// The address it holds.
        ip: IpAddr,
        /// Its container id.
        container_id: String,
    },

    /// STATUS: a range set has no free address (code 50).
    #[error("{set} has no free address left")]
    PoolExhausted {
        /// The range set, described.
        set: String,
    },

    /// CHECK found leases that differ from `prevResult` (code 103).
    #[error("{0}")]
    CheckFailed(String),

    /// A file operation of the store failed (code 100); names the operation and the path.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done (`writing lease`, `locking`...).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },

    /// Several independent failures (DEL and GC keep going); the code is the first one's.
    #[error("{first} (and {more} more error(s))")]
    Several {
        /// The first failure.
        first: Box<IpamError>,
        /// How many more.
        more: usize,
    },
}

impl IpamError {
    /// A code-7 configuration error at `path`.
    pub fn config(path: impl Into<String>, msg: impl Into<String>) -> Self {
        IpamError::Config {
            path: path.into(),
            msg: msg.into(),
        }
    }

    /// A code-6 wrong-type error at `path`.
    pub fn decode(path: impl Into<String>, msg: impl Into<String>) -> Self {
        IpamError::Decode {
            path: path.into(),
            msg: msg.into(),
        }
    }

    /// A closure turning an `io::Error` into [`IpamError::Io`] for `op` on `path`.
    pub fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| IpamError::Io { op, path, source }
    }

    /// Folds a list of errors into one (`None` when empty).
    pub fn collect(mut errors: Vec<IpamError>) -> Option<IpamError> {
        match errors.len() {
            0 => None,
            1 => errors.pop(),
            n => {
                let first = errors.swap_remove(0);
                Some(IpamError::Several {
                    first: Box::new(first),
                    more: n - 1,
                })
            }
        }
    }

    /// The spec code this error is reported with.
    pub fn code(&self) -> Code {
        match self {
            IpamError::Config { .. }
            | IpamError::SeveralPerFamily { .. }
            | IpamError::RequestedOutside { .. }
            | IpamError::RequestedGateway { .. }
            | IpamError::RequestedSameSet { .. } => Code::InvalidConfig,
            IpamError::Decode { .. } => Code::Decode,
            IpamError::InvalidArgs { .. } => Code::InvalidEnv,
            IpamError::RequestedTaken { .. }
            | IpamError::Exhausted { .. }
            | IpamError::Duplicate { .. } => Code::AddressUnavailable,
            IpamError::PoolExhausted { .. } => Code::NotAvailable,
            IpamError::CheckFailed(_) => Code::CheckFailed,
            IpamError::Io { .. } => Code::Internal,
            IpamError::Several { first, .. } => first.code(),
        }
    }
}

impl From<IpamError> for CniError {
    fn from(e: IpamError) -> Self {
        match e {
            IpamError::SeveralPerFamily { version, .. } => {
                CniError::several_addresses_per_family(version, e.to_string())
            }
            e => CniError::new(e.code(), e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_the_spec_table() {
        let ip: IpAddr = "10.0.0.2".parse().unwrap();
        let cases: Vec<(IpamError, u32)> = vec![
            (IpamError::config("ipam.subnet", "bad"), 7),
            (IpamError::decode("ipam.subnet", "expected a string"), 6),
            (
                IpamError::InvalidArgs {
                    key: "CNI_ARGS IP".into(),
                    msg: "x".into(),
                },
                4,
            ),
            (
                IpamError::RequestedOutside {
                    ip,
                    source_key: "CNI_ARGS IP".into(),
                },
                7,
            ),
            (
                IpamError::RequestedGateway {
                    ip,
                    source_key: "x".into(),
                    set: "s".into(),
                },
                7,
            ),
            (IpamError::Exhausted { set: "s".into() }, 101),
            (
                IpamError::RequestedTaken {
                    ip,
                    set: "s".into(),
                    owner: "o".into(),
                },
                101,
            ),
            (
                IpamError::Duplicate {
                    ip,
                    container_id: "c".into(),
                },
                101,
            ),
            (IpamError::PoolExhausted { set: "s".into() }, 50),
            (IpamError::CheckFailed("x".into()), 103),
            (
                IpamError::io("writing lease", "/x/10.0.0.2")(io::Error::from_raw_os_error(28)),
                100,
            ),
        ];
        for (e, code) in cases {
            let c: CniError = e.into();
            assert_eq!(c.code.number(), code, "{}", c.msg);
        }
    }

    #[test]
    fn io_errors_name_operation_and_path() {
        let e = IpamError::io("writing lease", "/d/net/10.0.0.2")(io::Error::from_raw_os_error(28));
        let msg = e.to_string();
        assert!(msg.starts_with("writing lease /d/net/10.0.0.2: "), "{msg}");
        assert!(msg.contains("No space left"), "{msg}");
    }

    #[test]
    fn several_keeps_the_first_code() {
        let e = IpamError::collect(vec![
            IpamError::Exhausted { set: "a".into() },
            IpamError::config("x", "y"),
        ])
        .unwrap();
        assert_eq!(e.code(), Code::AddressUnavailable);
        assert!(e.to_string().contains("1 more"));
        assert!(IpamError::collect(vec![]).is_none());
    }
}
