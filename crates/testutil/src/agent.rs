//! A real `ferro-agent` for tests: the built binary, started inside a simulated node's
//! network namespace, or (as root) in a network namespace of its own, with its
//! configuration, socket and state directory in a private temporary directory, stopped by
//! its pid (SIGTERM, or SIGKILL when dropped).
//!
//! The directory is made directly under `/tmp` with a short name: a unix socket's path has at
//! most 107 bytes, and the test run's `TMPDIR` is deliberately deeper than that.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::netns::Netns;
use crate::{workspace_bin, PluginRun};

/// A running (or stopped) agent.
#[derive(Debug)]
pub struct Agent {
    bin: PathBuf,
    netns: Option<PathBuf>,
    dir: tempfile::TempDir,
    config: Value,
    child: Option<Child>,
}

impl Agent {
    /// Starts `bin` with `config` (socket and state directory default to the agent's private
    /// directory: `<dir>/run/agent.sock`, `<dir>/state`) inside `netns` when given, and waits
    /// until it serves its socket. Panics with its log when it does not.
    pub fn start(bin: &Path, netns: Option<&Netns>, config: Value) -> Agent {
        let mut a = Agent::spawn(bin, netns, config);
        a.wait_ready();
        a
    }

    /// Starts the agent without waiting for it.
    pub fn spawn(bin: &Path, netns: Option<&Netns>, config: Value) -> Agent {
        Agent::spawn_at(bin, netns.map(Netns::path).as_deref(), config)
    }

    /// [`Agent::spawn`] in the network namespace at `netns` (a path), when given.
    pub fn spawn_at(bin: &Path, netns: Option<&Path>, mut config: Value) -> Agent {
        let dir = tempfile::Builder::new()
            .prefix("ft")
            .tempdir_in("/tmp")
            .expect("tempdir in /tmp");
        let obj = config.as_object_mut().expect("config is an object");
        obj.entry("socket").or_insert_with(|| {
            dir.path()
                .join("run/agent.sock")
                .display()
                .to_string()
                .into()
        });
        obj.entry("stateDir")
            .or_insert_with(|| dir.path().join("state").display().to_string().into());
        let mut a = Agent {
            bin: bin.to_path_buf(),
            netns: netns.map(Path::to_path_buf),
            dir,
            config,
            child: None,
        };
        a.restart();
        a
    }

    /// Starts the agent again (same configuration and directories) without waiting.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "the agent is still running");
        let cfg = self.dir.path().join("agent.json");
        std::fs::write(&cfg, self.config.to_string()).expect("write agent config");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("agent log");
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net={}", ns.display()))
                    .arg("--")
                    .arg(&self.bin);
                c
            }
            // Without a node's namespace, root runs the agent in a network namespace of its
            // own (only `lo`): whatever it programs (policy, services, egress tables) must
            // never reach the machine's. Unprivileged, it cannot program anything.
            None if nix::unistd::geteuid().is_root() => {
                let mut c = Command::new("unshare");
                c.arg("--net").arg("--").arg(&self.bin);
                c
            }
            None => Command::new(&self.bin),
        };
        // nsenter and unshare exec the agent: the child's pid is the agent's.
        cmd.arg("--config")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        self.child = Some(cmd.spawn().expect("run ferro-agent"));
    }

    /// Waits (up to 30 s) until the socket answers; panics with the log if the agent exits
    /// or does not get there.
    pub fn wait_ready(&mut self) {
        let t0 = Instant::now();
        loop {
            if std::os::unix::net::UnixStream::connect(self.socket()).is_ok() {
                return;
            }
            if let Some(st) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "ferro-agent exited ({st}) before serving; its log:\n{}",
                    self.log()
                );
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "ferro-agent not serving after 30 s; its log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits (up to `timeout`) for the agent to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let t0 = Instant::now();
        loop {
            let c = self.child.as_mut()?;
            if let Ok(Some(st)) = c.try_wait() {
                self.child = None;
                return Some(st);
            }
            if t0.elapsed() > timeout {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM and waits (up to 30 s) for the exit.
    pub fn term(&mut self) -> ExitStatus {
        let pid = self.pid().expect("agent running");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .expect("SIGTERM");
        self.wait_exit(Duration::from_secs(30))
            .unwrap_or_else(|| panic!("ferro-agent ignored SIGTERM; its log:\n{}", self.log()))
    }

    /// SIGKILL, and reaps it.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The agent's pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Its socket.
    pub fn socket(&self) -> PathBuf {
        PathBuf::from(self.config["socket"].as_str().expect("socket"))
    }

    /// Its state directory.
    pub fn state_dir(&self) -> PathBuf {
        PathBuf::from(self.config["stateDir"].as_str().expect("stateDir"))
    }

    /// Its private directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("agent.log")
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Runs the workspace's `cnictl --socket <socket> <args>` (in the agent's network
    /// namespace when it has one), with `stdin`.
    pub fn cnictl(&self, args: &[&str], stdin: Option<&str>) -> PluginRun {
        use std::io::Write;
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net={}", ns.display()))
                    .arg("--")
                    .arg(workspace_bin("cnictl"));
                c
            }
            None => Command::new(workspace_bin("cnictl")),
        };
        cmd.arg("--socket")
            .arg(self.socket())
            .args(args)
            .env_remove("FERRO_AGENT_SOCKET")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("run cnictl");
        let mut input = child.stdin.take().expect("stdin");
        let _ = input.write_all(stdin.unwrap_or("").as_bytes());
        drop(input);
        let out = child.wait_with_output().expect("cnictl output");
        PluginRun {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!(
                "--- ferro-agent log ({}):\n{}",
                self.dir.path().display(),
                self.log()
            );
        }
    }
}
