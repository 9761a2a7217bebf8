//! Running plugins as libcni does (`pkg/invoke`): find the binary on `CNI_PATH`, start it with
//! the whole environment of cnictl plus the six `CNI_*` variables (always all six, possibly
//! empty), the request on stdin, and read stdout/stderr. A start that fails with "text file
//! busy" is retried up to 5 times, one second apart. A failed plugin's error comes from its
//! stdout ([`plugin_error`]).
//!
//! The [`Exec`] trait is the seam between the runtime algorithms and processes; tests of
//! [`crate::runtime`] use a recording fake.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};
use std::time::Duration;

use ferro_spec::{CniError, Code, Env};
use serde_json::Value;

use crate::error::exec_error;

/// The `CNI_*` variables of one invocation (libcni `invoke.Args`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniVars {
    /// `CNI_COMMAND`.
    pub command: String,
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_NETNS`.
    pub netns: String,
    /// `CNI_ARGS` (`K=V;K2=V2`).
    pub args: String,
    /// `CNI_IFNAME`.
    pub ifname: String,
    /// `CNI_PATH`.
    pub path: String,
}

impl CniVars {
    /// The six variables, in libcni's order.
    pub fn pairs(&self) -> [(&'static str, &str); 6] {
        [
            ("CNI_COMMAND", self.command.as_str()),
            ("CNI_CONTAINERID", self.container_id.as_str()),
            ("CNI_NETNS", self.netns.as_str()),
            ("CNI_ARGS", self.args.as_str()),
            ("CNI_IFNAME", self.ifname.as_str()),
            ("CNI_PATH", self.path.as_str()),
        ]
    }
}

/// What a finished plugin process left.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Exit status 0.
    pub success: bool,
    /// How it ended (`exit status: 1`), for messages.
    pub status: String,
    /// Everything it wrote on stdout.
    pub stdout: Vec<u8>,
    /// Everything it wrote on stderr.
    pub stderr: Vec<u8>,
}

/// Finds and runs plugins.
pub trait Exec {
    /// The executable for `plugin_type` (code 102 when it is not on `CNI_PATH`).
    fn find(&self, plugin_type: &str) -> Result<PathBuf, CniError>;
    /// Runs `bin` with `stdin` and `vars` on top of the base environment. `Err` only when the
    /// process could not be started at all (code 102).
    fn run(&self, bin: &Path, stdin: &[u8], vars: &CniVars) -> Result<Outcome, CniError>;
}

/// Splits `CNI_PATH` into directories (empty elements skipped).
pub fn split_path(cni_path: &str) -> Vec<PathBuf> {
    cni_path
        .split(':')
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .collect()
}

/// Real processes.
#[derive(Debug, Clone)]
pub struct ProcessExec {
    /// The environment every plugin inherits (cnictl's own).
    pub base_env: Env,
    /// `CNI_PATH`, split.
    pub path: Vec<PathBuf>,
    /// Pause between retries on "text file busy".
    pub busy_retry_delay: Duration,
}

impl ProcessExec {
    /// Plugins found on `cni_path`, run with `base_env`.
    pub fn new(base_env: Env, cni_path: &str) -> Self {
        ProcessExec {
            base_env,
            path: split_path(cni_path),
            busy_retry_delay: Duration::from_secs(1),
        }
    }
}

impl Exec for ProcessExec {
    fn find(&self, plugin_type: &str) -> Result<PathBuf, CniError> {
        ferro_spec::delegate::find_plugin(plugin_type, &self.path)
            .map_err(|e| CniError::new(Code::Delegate, e.msg))
    }

    fn run(&self, bin: &Path, stdin: &[u8], vars: &CniVars) -> Result<Outcome, CniError> {
        let mut attempts = 0;
        let mut child = loop {
            let spawned = Process::new(bin)
                .env_clear()
                .envs(self.base_env.iter())
                .envs(vars.pairs())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn();
            match spawned {
                Ok(c) => break c,
                Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && attempts < 5 => {
                    attempts += 1;
                    std::thread::sleep(self.busy_retry_delay);
                }
                Err(e) => return Err(exec_error(format!("cannot run {}: {e}", bin.display()))),
            }
        };
        let input = child.stdin.take();
        let output = std::thread::scope(|s| {
            // Feed stdin on a helper thread: a plugin may answer before reading it all.
            s.spawn(move || {
                if let Some(mut w) = input {
                    let _ = w.write_all(stdin);
                }
            });
            child.wait_with_output()
        })
        .map_err(|e| exec_error(format!("waiting for {}: {e}", bin.display())))?;
        Ok(Outcome {
            success: output.status.success(),
            status: output.status.to_string(),
            stdout: output.stdout,
            stderr: output.stderr,
        })
    }
}

/// The error of a failed plugin (libcni `pluginErr`): the `{code, msg, details}` object it
/// printed on stdout; with empty stdout, a message quoting its stderr (or its exit status);
/// with unparsable stdout, a message quoting it. The last two carry code 102.
pub fn plugin_error(out: &Outcome) -> CniError {
    if out.stdout.iter().all(u8::is_ascii_whitespace) {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return if stderr.is_empty() {
            exec_error(format!(
                "netplugin failed with no error message: {}",
                out.status
            ))
        } else {
            exec_error(format!("netplugin failed: {:?}", stderr))
        };
    }
    match serde_json::from_slice::<Value>(&out.stdout) {
        Ok(Value::Object(o)) => {
            let code = o.get("code").and_then(Value::as_u64).unwrap_or(0);
            let text = |k: &str| {
                o.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            let mut e = CniError::new(
                Code::from_number(u32::try_from(code).unwrap_or(u32::MAX)),
                text("msg"),
            );
            let details = text("details");
            if !details.is_empty() {
                e = e.with_details(details);
            }
            e
        }
        Ok(_) => exec_error(format!(
            "netplugin failed but error parsing its diagnostic message {:?}: not an object",
            String::from_utf8_lossy(&out.stdout)
        )),
        Err(err) => exec_error(format!(
            "netplugin failed but error parsing its diagnostic message {:?}: {err}",
            String::from_utf8_lossy(&out.stdout)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn failed(stdout: &str, stderr: &str) -> Outcome {
        Outcome {
            success: false,
            status: "exit status: 1".into(),
            stdout: stdout.into(),
            stderr: stderr.into(),
        }
    }

    #[test]
    fn errors_are_parsed_like_libcni() {
        let e = plugin_error(&failed(r#"{"code":7,"msg":"bad","details":"d"}"#, "log"));
        assert_eq!(
            (e.code.number(), e.msg.as_str(), e.details.as_deref()),
            (7, "bad", Some("d"))
        );
        let e = plugin_error(&failed(
            r#"{"cniVersion":"1.0.0","code":999,"msg":"x"}"#,
            "",
        ));
        assert_eq!((e.code.number(), e.details), (999, None));
        let e = plugin_error(&failed("", "boom\n"));
        assert_eq!(e.msg, "netplugin failed: \"boom\\n\"");
        let e = plugin_error(&failed("", ""));
        assert_eq!(
            e.msg,
            "netplugin failed with no error message: exit status: 1"
        );
        let e = plugin_error(&failed("not json", "ignored"));
        assert!(
            e.msg.starts_with(
                "netplugin failed but error parsing its diagnostic message \"not json\""
            ),
            "{}",
            e.msg
        );
        assert_eq!(e.code.number(), 102);
    }

    #[test]
    fn runs_with_base_env_plus_the_six_variables() {
        let d = tempfile::tempdir().unwrap();
        let bin = d.path().join("p");
        std::fs::write(
            &bin,
            "#!/bin/sh\ncat\nenv | grep -E '^(CNI_|BASE_)' | sort >&2\nexit 3\n",
        )
        .unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let exec = ProcessExec::new(
            Env::from_pairs([
                ("BASE_X", "1"),
                ("CNI_NETNS", "overridden"),
                ("PATH", "/usr/bin:/bin"),
            ]),
            &d.path().to_string_lossy(),
        );
        assert_eq!(exec.find("p").unwrap(), bin);
        assert_eq!(exec.find("absent").unwrap_err().code.number(), 102);
        let vars = CniVars {
            command: "DEL".into(),
            container_id: "c".into(),
            ifname: "eth0".into(),
            ..Default::default()
        };
        let out = exec.run(&bin, b"hello", &vars).unwrap();
        assert!(!out.success);
        assert_eq!(out.stdout, b"hello");
        assert_eq!(
            String::from_utf8(out.stderr).unwrap(),
            "BASE_X=1\nCNI_ARGS=\nCNI_COMMAND=DEL\nCNI_CONTAINERID=c\nCNI_IFNAME=eth0\nCNI_NETNS=\nCNI_PATH=\n"
        );
    }
}
