//! IPAM delegation, as the CNI specification's section on delegated plugins describes it:
//! find the delegate on `CNI_PATH`, run it with the original stdin bytes and the same
//! environment (only `CNI_COMMAND` overridden), parse its answer.

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
