//! Per-namespace sysctls under `/proc/sys`, read before written.
//!
//! `/proc/sys/net/*` resolves to the network namespace of the thread that opens the file, so
//! pod sysctls are set inside [`crate::netns::Netns::run`]. Keys use `/` separators
//! (`net/ipv6/conf/eth0/accept_dad`) because interface names may contain dots.

use std::path::PathBuf;

use crate::error::NetError;

fn path(key: &str) -> PathBuf {
    PathBuf::from("/proc/sys").join(key)
}

/// Reads a sysctl (trimmed).
pub fn get(key: &str) -> Result<String, NetError> {
    std::fs::read_to_string(path(key))
        .map(|s| s.trim().to_string())
        .map_err(|e| NetError::io(format!("read sysctl {key}"), e))
}

/// Sets `key` to `value` unless it already has that value. Returns whether it wrote.
/// Equivalent to `sysctl -w key=value`.
pub fn ensure(key: &str, value: &str) -> Result<bool, NetError> {
    if get(key)? == value {
        return Ok(false);
    }
    std::fs::write(path(key), value)
        .map_err(|e| NetError::io(format!("set sysctl {key}={value}"), e))?;
    log::debug!("sysctl {key}={value}");
    Ok(true)
}

/// [`ensure`], ignoring a missing key (e.g. IPv6 disabled on the node): `Ok(false)`.
pub fn ensure_if_present(key: &str, value: &str) -> Result<bool, NetError> {
    match ensure(key, value) {
        Err(e) if e.errno() == Some(crate::error::libc_errno::ENOENT) => Ok(false),
        other => other,
    }
}
