//! IPAM delegation, as the CNI specification's section on delegated plugins describes it:
//! find the delegate on `CNI_PATH`, run it with the original stdin bytes and the same
//! environment (only `CNI_COMMAND` overridden), parse its answer.
//!
//! [`IpamLease`] runs the delegate's DEL when an ADD fails after the delegate's ADD succeeded.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command as Process, Stdio};

use crate::env::Command;
use crate::error::{CniError, Code};
use crate::result::CniResult;
use crate::skel::Request;

/// Finds the executable `plugin_type` in the `CNI_PATH` directories, first match wins.
pub fn find_plugin(plugin_type: &str, path: &[PathBuf]) -> Result<PathBuf, CniError> {
    if plugin_type.is_empty() || plugin_type.contains('/') || plugin_type.contains('\\') {
        return Err(CniError::invalid_config(format!(
            "invalid plugin type {plugin_type:?}"
        )));
    }
    if path.is_empty() {
        return Err(CniError::invalid_env(format!(
            "CNI_PATH is empty: cannot find plugin {plugin_type:?}"
        )));
    }
    path.iter()
        .map(|dir| dir.join(plugin_type))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .ok_or_else(|| {
            CniError::new(
                Code::Delegate,
                format!(
                    "failed to find plugin {plugin_type:?} in CNI_PATH {:?}",
                    path.iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                ),
            )
        })
}

/// Runs `plugin_type` with `command`, the request's stdin and environment. Returns stdout on
/// success; on failure, the delegate's own error object (code kept), or code 102.
pub fn exec(req: &Request, plugin_type: &str, command: Command) -> Result<Vec<u8>, CniError> {
    let bin = find_plugin(plugin_type, &req.cmd.path)?;
    log::debug!("delegating {command} to {}", bin.display());
    let mut child = Process::new(&bin)
        .env_clear()
        .envs(req.env.iter())
        .env("CNI_COMMAND", command.as_str())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| CniError::new(Code::Delegate, format!("cannot run {}: {e}", bin.display())))?;
    let stdin = child.stdin.take();
    let input = req.stdin.as_slice();
    let output = std::thread::scope(|s| {
        // Write stdin on a helper thread so a delegate that answers before reading all of
        // its input cannot deadlock us.
        s.spawn(move || {
            if let Some(mut w) = stdin {
                let _ = w.write_all(input);
            }
        });
        child.wait_with_output()
    })
    .map_err(|e| CniError::new(Code::Delegate, format!("waiting for {plugin_type}: {e}")))?;
    if output.status.success() {
        return Ok(output.stdout);
    }
    let parsed = serde_json::from_slice::<serde_json::Value>(&output.stdout)
        .ok()
        .and_then(|v| CniError::from_json(&v));
    Err(match parsed {
        Some(e) => e.context(plugin_type),
        None => CniError::new(
            Code::Delegate,
            format!(
                "{plugin_type} {command} failed ({}) without an error object: {:?}",
                output.status,
                String::from_utf8_lossy(&output.stdout).trim()
            ),
        ),
    })
}

fn ipam_type(req: &Request) -> Result<&str, CniError> {
    req.conf
        .ipam_type()
        .ok_or_else(|| CniError::invalid_config("ipam.type: missing"))
}

/// IPAM ADD: the delegate's (abbreviated) result.
pub fn ipam_add(req: &Request) -> Result<CniResult, CniError> {
    let t = ipam_type(req)?;
    let out = exec(req, t, Command::Add)?;
    CniResult::from_slice(&out).map_err(|e| e.context(format!("{t} result")))
}

/// IPAM DEL.
pub fn ipam_del(req: &Request) -> Result<(), CniError> {
    exec(req, ipam_type(req)?, Command::Del).map(drop)
}

/// IPAM DEL (when the configuration has IPAM) on a helper thread while `teardown` runs:
/// the delegate's process start and lease release overlap the kernel's part of DEL, which
/// mostly waits for RCU grace periods. The address may be handed out again before the
/// interface holding it is gone, as with the reference plugins, which release it first.
/// Returns `teardown`'s value and the delegate's outcome.
pub fn ipam_del_alongside<T>(
    req: &Request,
    teardown: impl FnOnce() -> T,
) -> (T, Result<(), CniError>) {
    if req.conf.ipam_type().is_none() {
        return (teardown(), Ok(()));
    }
    std::thread::scope(|s| {
        let ipam = s.spawn(|| ipam_del(req));
        let done = teardown();
        let released = ipam.join().unwrap_or_else(|_| {
            Err(CniError::new(
                Code::Internal,
                "the IPAM DEL thread panicked".to_string(),
            ))
        });
        (done, released)
    })
}

/// IPAM CHECK.
pub fn ipam_check(req: &Request) -> Result<(), CniError> {
    exec(req, ipam_type(req)?, Command::Check).map(drop)
}

/// IPAM GC.
pub fn ipam_gc(req: &Request) -> Result<(), CniError> {
    exec(req, ipam_type(req)?, Command::Gc).map(drop)
}

/// IPAM STATUS.
pub fn ipam_status(req: &Request) -> Result<(), CniError> {
    exec(req, ipam_type(req)?, Command::Status).map(drop)
}

/// An IPAM allocation made during ADD. Dropping it without [`IpamLease::keep`] runs the
/// delegate's DEL, so every early return of a failed ADD releases the address.
#[derive(Debug)]
pub struct IpamLease<'a> {
    req: &'a Request,
    /// The delegate's result.
    pub result: CniResult,
    armed: bool,
}

impl<'a> IpamLease<'a> {
    /// Runs IPAM ADD.
    pub fn acquire(req: &'a Request) -> Result<Self, CniError> {
        Ok(IpamLease {
            req,
            result: ipam_add(req)?,
            armed: true,
        })
    }

    /// ADD succeeded: keep the allocation.
    pub fn keep(mut self) -> CniResult {
        self.armed = false;
        std::mem::take(&mut self.result)
    }
}

impl Drop for IpamLease<'_> {
    fn drop(&mut self) {
        if self.armed {
            if let Err(e) = ipam_del(self.req) {
                log::warn!("releasing IPAM after a failed ADD: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn finds_the_first_executable_on_the_path() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let not_exec = a.path().join("host-local");
        std::fs::write(&not_exec, "x").unwrap();
        let exec = b.path().join("host-local");
        std::fs::write(&exec, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&exec, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = vec![a.path().to_path_buf(), b.path().to_path_buf()];
        assert_eq!(find_plugin("host-local", &path).unwrap(), exec);
        let e = find_plugin("static", &path).unwrap_err();
        assert_eq!(e.code.number(), 102);
        assert!(e.msg.contains("static") && e.msg.contains("CNI_PATH"));
        assert_eq!(find_plugin("x", &[]).unwrap_err().code.number(), 4);
        assert_eq!(find_plugin("../x", &path).unwrap_err().code.number(), 7);
    }
}
