//! Running plugin binaries as a runtime does, timed with [`Instant`] around each process:
//! spawn, stdin written, stdout and stderr read to the end, exit status reaped.
//!
//! The process starts from the calling thread, so it inherits that thread's network
//! namespace: callers enter the node's namespace first (see [`crate::ns`]), which costs
//! nothing per invocation and is the same for both suites.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::error::Error;
use crate::request::{plugin_env, plugin_request, Attachment, ConfList, Verb};

/// GNU time, for the peak RSS of one process (`-f %M`: maximum resident set in KiB).
pub const TIME_BIN: &str = "/usr/bin/time";

/// One finished plugin process.
#[derive(Debug, Clone)]
pub struct Invoked {
    /// Wall time from spawn to reaped exit.
    pub elapsed: Duration,
    /// Exit status (-1 when killed by a signal).
    pub status: i32,
    /// stdout.
    pub stdout: Vec<u8>,
    /// stderr.
    pub stderr: Vec<u8>,
}

/// Runs `bin` with exactly `env` and `stdin`; with `rss_file`, under `/usr/bin/time -f %M
/// -o rss_file` (not used for timed runs).
pub fn invoke(
    bin: &Path,
    env: &[(String, String)],
    stdin: &[u8],
    rss_file: Option<&Path>,
) -> Result<Invoked, Error> {
    let mut cmd = match rss_file {
        Some(f) => {
            let mut c = Command::new(TIME_BIN);
            c.arg("-f").arg("%M").arg("-o").arg(f).arg(bin);
            c
        }
        None => Command::new(bin),
    };
    cmd.env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd.spawn().map_err(|e| Error::io("running", bin, e))?;
    if let Some(mut pipe) = child.stdin.take() {
        // A plugin that exits without reading its stdin is judged by its exit status.
        let _ = pipe.write_all(stdin);
    }
    let out = child
        .wait_with_output()
        .map_err(|e| Error::io("waiting for", bin, e))?;
    let elapsed = start.elapsed();
    Ok(Invoked {
        elapsed,
        status: out.status.code().unwrap_or(-1),
        stdout: out.stdout,
        stderr: out.stderr,
    })
}

/// A conflist run against attachments by one suite, the way libcni runs it.
#[derive(Debug, Clone)]
pub struct Chain {
    /// The list.
    pub list: ConfList,
    /// The capability arguments the runtime supplies (`portMappings`).
    pub cap_args: Map<String, Value>,
    /// `CNI_PATH`: the suite's plugin directory.
    pub cni_path: PathBuf,
    /// More environment for every plugin (both suites get the same).
    pub extra_env: Vec<(String, String)>,
}

/// What an ADD of the whole list produced.
#[derive(Debug, Clone)]
pub struct AddRun {
    /// Time of each plugin process, in list order.
    pub per_plugin: Vec<Duration>,
    /// The final result (cached by the runtime, `prevResult` of DEL).
    pub result: Value,
}

impl Chain {
    /// The binary of plugin `idx`.
    pub fn bin(&self, idx: usize) -> PathBuf {
        self.cni_path.join(self.list.plugin_type(idx))
    }

    fn run_one(
        &self,
        verb: Verb,
        idx: usize,
        att: &Attachment,
        prev: Option<&Value>,
        rss_file: Option<&Path>,
    ) -> Result<Invoked, Error> {
        let stdin = plugin_request(&self.list, idx, prev, &self.cap_args).to_string();
        let env = plugin_env(verb, att, &self.cni_path, &self.extra_env);
        let inv = invoke(&self.bin(idx), &env, stdin.as_bytes(), rss_file)?;
        if inv.status != 0 {
            let stderr = String::from_utf8_lossy(&inv.stderr).trim().to_string();
            return Err(Error::Plugin {
                plugin: self.list.plugin_type(idx).to_string(),
                verb: verb.as_str(),
                status: inv.status,
                stdout: String::from_utf8_lossy(&inv.stdout).trim().to_string(),
                stderr: if stderr.is_empty() {
                    stderr
                } else {
                    format!(" | stderr: {stderr}")
                },
            });
        }
        Ok(inv)
    }

    /// ADD of every plugin in order, each with the previous result as `prevResult`. On a
    /// failure the list is DELeted (as a runtime does) and the error returned.
    pub fn add(&self, att: &Attachment) -> Result<AddRun, Error> {
        self.add_measuring(att, None)
    }

    /// Like [`Chain::add`]; with `rss = Some((idx, file))` plugin `idx` runs under GNU time
    /// writing its peak RSS to `file`.
    pub fn add_measuring(
        &self,
        att: &Attachment,
        rss: Option<(usize, &Path)>,
    ) -> Result<AddRun, Error> {
        let mut per_plugin = Vec::with_capacity(self.list.plugins.len());
        let mut prev: Option<Value> = None;
        for idx in 0..self.list.plugins.len() {
            let rss_file = rss.and_then(|(i, f)| (i == idx).then_some(f));
            let inv = match self.run_one(Verb::Add, idx, att, prev.as_ref(), rss_file) {
                Ok(inv) => inv,
                Err(e) => {
                    let _ = self.del(att, prev.as_ref());
                    return Err(e);
                }
            };
            per_plugin.push(inv.elapsed);
            let result: Value = serde_json::from_slice(&inv.stdout).map_err(|e| {
                Error::Other(format!(
                    "{} ADD printed no result ({e}): {}",
                    self.list.plugin_type(idx),
                    String::from_utf8_lossy(&inv.stdout)
                ))
            })?;
            prev = Some(result);
        }
        Ok(AddRun {
            per_plugin,
            result: prev.unwrap_or(Value::Null),
        })
    }

    /// DEL of every plugin in reverse order, each with `prev` (the final ADD result) as
    /// `prevResult`. Returns the time of each plugin process in *list* order.
    pub fn del(&self, att: &Attachment, prev: Option<&Value>) -> Result<Vec<Duration>, Error> {
        let n = self.list.plugins.len();
        let mut per_plugin = vec![Duration::ZERO; n];
        for idx in (0..n).rev() {
            per_plugin[idx] = self.run_one(Verb::Del, idx, att, prev, None)?.elapsed;
        }
        Ok(per_plugin)
    }
}

/// `VERSION` of `bin`: the cost of starting the process and printing a constant answer.
pub fn version_call(bin: &Path, cni_path: &Path) -> Result<Duration, Error> {
    let att = Attachment {
        container_id: String::new(),
        netns: PathBuf::new(),
        ifname: String::new(),
        pod_name: String::new(),
    };
    let env: Vec<(String, String)> = plugin_env(Verb::Version, &att, cni_path, &[])
        .into_iter()
        .filter(|(k, _)| k == "CNI_COMMAND" || k == "CNI_PATH" || k == "PATH")
        .collect();
    let stdin = format!(r#"{{"cniVersion":"{}"}}"#, crate::request::CNI_VERSION);
    let inv = invoke(bin, &env, stdin.as_bytes(), None)?;
    if inv.status != 0 {
        return Err(Error::Other(format!(
            "{} VERSION exited {}: {}",
            bin.display(),
            inv.status,
            String::from_utf8_lossy(&inv.stdout)
        )));
    }
    Ok(inv.elapsed)
}

/// Runs a plain program without arguments (the bare fork+exec floor, e.g. `true`).
pub fn bare_exec(bin: &Path) -> Result<Duration, Error> {
    let env = vec![("PATH".to_string(), crate::request::PLUGIN_PATH.to_string())];
    let inv = invoke(bin, &env, b"", None)?;
    if inv.status != 0 {
        return Err(Error::Other(format!(
            "{} exited {}",
            bin.display(),
            inv.status
        )));
    }
    Ok(inv.elapsed)
}
