//! # ferro-testutil: helpers for tests that run the suite as a runtime would
//!
//! - [`run_plugin`]: run a plugin binary with `CNI_*` variables and a config on stdin, as
//!   libcni does, and capture its exit code, stdout (parsed as JSON) and stderr;
//! - [`netns`]: uniquely named network namespaces that are removed on drop, even when the
//!   test fails, and closures run inside them;
//! - [`probe`]: a TCP/UDP server that answers with the source address it sees, and its client,
//!   so tests prove NAT and no-NAT with real packets; [`reach`]: many TCP/UDP probes at once
//!   (the truth tables of the policy suites);
//! - [`nft`]: a private network namespace per test thread, and `nft` run inside it to check
//!   what nftables code built;
//! - [`topology`]: the simulated VNet, nodes, peer, router and internet host that every
//!   datapath test builds (the `ferro-world` binary builds the same one for
//!   `scripts/demo.sh`; [docs/testing.md](../../../docs/testing.md) says what each model
//!   must show on it);
//! - [`families`]: the paths every model carries in each address family, checked alike;
//! - [`etcd`]: a real etcd cluster, one member per simulated node; [`pki`]: a test CA;
//! - [`agent`]: a real `ferro-agent` with its own socket and state directory, and `cnictl`
//!   talking to it.
//!
//! Tests that need root call [`require_root`] first: it panics with a clear message instead
//! of silently skipping.

pub mod agent;
pub mod cnitool;
pub mod dns;
pub mod etcd;
pub mod families;
pub mod kubenet;
pub mod netns;
pub mod nft;
pub mod pki;
pub mod probe;
pub mod reach;
pub mod runtime;
pub mod topology;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

/// What a plugin run produced.
#[derive(Debug, Clone)]
pub struct PluginRun {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    /// stdout, raw.
    pub stdout: String,
    /// stderr, raw.
    pub stderr: String,
}

impl PluginRun {
    /// stdout parsed as one JSON document; panics with the raw output when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not one JSON document ({e}):\nstdout: {}\nstderr: {}",
                self.stdout, self.stderr
            )
        })
    }

    /// Panics unless the run succeeded; returns stdout as JSON (or `Null` when empty).
    pub fn ok(&self) -> Value {
        assert_eq!(
            self.code, 0,
            "plugin failed:\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        if self.stdout.trim().is_empty() {
            Value::Null
        } else {
            self.json()
        }
    }

    /// Panics unless the run failed with error `code`; returns the error object.
    pub fn err(&self, code: u64) -> Value {
        assert_ne!(
            self.code, 0,
            "plugin unexpectedly succeeded: {}",
            self.stdout
        );
        let v = self.json();
        assert_eq!(
            v["code"].as_u64(),
            Some(code),
            "wrong error code:\nstdout: {}\nstderr: {}",
            self.stdout,
            self.stderr
        );
        v
    }
}

/// Runs `bin` with exactly `env` (plus `PATH`) and `stdin`, like a runtime.
pub fn run_plugin(bin: impl AsRef<Path>, env: &[(&str, &str)], stdin: &str) -> PluginRun {
    run_plugin_in(bin, env, stdin, None)
}

/// Like [`run_plugin`], but the process starts inside the network namespace at `netns`
/// (a plugin "running on a node").
pub fn run_plugin_in(
    bin: impl AsRef<Path>,
    env: &[(&str, &str)],
    stdin: &str,
    netns: Option<&Path>,
) -> PluginRun {
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("nsenter");
            c.arg(format!("--net={}", ns.display()))
                .arg("--")
                .arg(bin.as_ref());
            c
        }
        None => Command::new(bin.as_ref()),
    };
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.as_ref().display()));
    // A plugin may exit without reading its stdin (e.g. VERSION): EPIPE is not a failure, as
    // for Go's os/exec that libcni uses.
    if let Err(e) = child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(stdin.as_bytes())
    {
        assert_eq!(
            e.kind(),
            std::io::ErrorKind::BrokenPipe,
            "writing stdin: {e}"
        );
    }
    let out = child.wait_with_output().expect("waiting for plugin");
    PluginRun {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Panics unless the test runs as root (tests that create namespaces need it). CI runs as
/// root; nothing is skipped silently.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root (network namespaces): mark it #[ignore = \"needs root: run scripts/test.sh\"] and run it through scripts/test.sh"
    );
}

/// The directory holding the workspace's built binaries (`target/<profile>`), derived from
/// the running test executable (`target/<profile>/deps/<test>`).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let deps = exe.parent().expect("deps dir");
    deps.parent().expect("profile dir").to_path_buf()
}

/// A path to a workspace binary built in the same profile as the test (for binaries of
/// *other* packages; a package's own binary is `env!("CARGO_BIN_EXE_<name>")`).
pub fn workspace_bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.exists(),
        "{} is not built; run `cargo build --workspace` first (scripts/test.sh does)",
        p.display()
    );
    p
}

/// A temporary `CNI_PATH` directory holding symlinks to the named workspace binaries (and,
/// for names not built by the workspace, to the reference plugins in `/usr/lib/cni`).
#[derive(Debug)]
pub struct PluginDir {
    dir: tempfile::TempDir,
}

impl PluginDir {
    /// Links `names` into a fresh directory.
    pub fn new(names: &[&str]) -> PluginDir {
        let dir = tempfile::tempdir().expect("tempdir");
        for n in names {
            let ours = bin_dir().join(n);
            let target = if ours.exists() {
                ours
            } else {
                Path::new("/usr/lib/cni").join(n)
            };
            assert!(
                target.exists(),
                "plugin {n} is neither built nor in /usr/lib/cni"
            );
            std::os::unix::fs::symlink(&target, dir.path().join(n)).expect("symlink");
        }
        PluginDir { dir }
    }

    /// Links `ours` from the workspace and `reference` from `/usr/lib/cni` (for interop
    /// tests chaining our plugins with the reference ones).
    pub fn mixed(ours: &[&str], reference: &[&str]) -> PluginDir {
        let dir = tempfile::tempdir().expect("tempdir");
        for n in ours {
            std::os::unix::fs::symlink(workspace_bin(n), dir.path().join(n)).expect("symlink");
        }
        for n in reference {
            let target = Path::new("/usr/lib/cni").join(n);
            assert!(
                target.exists(),
                "reference plugin {n} is not installed (containernetworking-plugins)"
            );
            std::os::unix::fs::symlink(target, dir.path().join(n)).expect("symlink");
        }
        PluginDir { dir }
    }

    /// The directory, for `CNI_PATH`.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The directory as a string.
    pub fn path_str(&self) -> String {
        self.dir.path().display().to_string()
    }
}

/// An ADD request (container `c1`, `eth0`, netns `/run/netns/x`, cniVersion from `conf`) for
/// unit tests of a plugin's configuration parsing and planning.
pub fn add_request(conf: Value) -> ferro_spec::Request {
    let env = ferro_spec::Env::from_pairs([
        ("CNI_CONTAINERID", "c1"),
        ("CNI_NETNS", "/run/netns/x"),
        ("CNI_IFNAME", "eth0"),
    ]);
    let version = conf["cniVersion"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(ferro_spec::Version::V1_1_0);
    ferro_spec::Request {
        cmd: ferro_spec::CmdArgs::from_env(ferro_spec::Command::Add, &env).expect("valid env"),
        version,
        conf: ferro_spec::NetConf::from_value(&conf).expect("valid shared keys"),
        prev_result: None,
        stdin: conf.to_string().into_bytes(),
        env,
    }
}

/// `base` with the keys of `extra` set (a `null` value removes the key): for config tests.
pub fn with_keys(mut base: Value, extra: Value) -> Value {
    for (k, v) in extra.as_object().expect("extra is an object") {
        match (v.is_null(), base.as_object_mut()) {
            (true, Some(m)) => {
                m.remove(k);
            }
            (false, Some(m)) => {
                m.insert(k.clone(), v.clone());
            }
            (_, None) => panic!("base is not an object"),
        }
    }
    base
}
