//! Uniquely named network namespaces for tests, removed on drop.
//!
//! Names are `<prefix>-<label>` where the prefix is unique per test process (`ft<pid>`), so
//! parallel tests and leftovers of killed runs never collide; `scripts/test.sh` also removes
//! every namespace whose name starts with `ft` after a run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A named network namespace under `/run/netns`, deleted when dropped.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

/// The per-process name prefix (`ft<pid>`).
pub fn prefix() -> String {
    format!("ft{}", std::process::id())
}

impl Netns {
    /// Creates `<prefix>-<n>-<label>` with `lo` up.
    pub fn new(label: &str) -> Netns {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("{}-{n}-{label}", prefix());
        sh(&["ip", "netns", "add", &name]);
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// Creates exactly `name` (no per-process prefix) with `lo` up: for namespaces a tool
    /// leaves behind on purpose (see [`Netns::keep`]); tests use [`Netns::new`].
    pub fn named(name: &str) -> Netns {
        sh(&["ip", "netns", "add", name]);
        let ns = Netns { name: name.into() };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// Keeps the namespace when this handle goes away (it is not deleted); returns its name.
    pub fn keep(self) -> String {
        let mut me = std::mem::ManuallyDrop::new(self);
        std::mem::take(&mut me.name)
    }

    /// Whether a namespace of that name exists under /run/netns.
    pub fn exists(name: &str) -> bool {
        Path::new("/run/netns").join(name).exists()
    }

    /// The namespace name (for `ip netns exec`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The path to hand to plugins as `CNI_NETNS`.
    pub fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.name)
    }

    /// Runs a command inside the namespace; panics with its output if it fails.
    pub fn exec(&self, args: &[&str]) -> String {
        let mut all = vec!["ip", "netns", "exec", &self.name];
        all.extend_from_slice(args);
        sh(&all)
    }

    /// Runs a command inside the namespace and returns whether it succeeded (output ignored).
    pub fn try_exec(&self, args: &[&str]) -> bool {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// `ip <args>` inside the namespace.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut all = vec!["ip", "-n", &self.name];
        all.extend_from_slice(args);
        sh(&all)
    }

    /// `ip -j <args>` inside the namespace, parsed.
    pub fn ip_json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["ip", "-j", "-n", &self.name];
        all.extend_from_slice(args);
        let out = sh(&all);
        if out.trim().is_empty() {
            return serde_json::Value::Array(vec![]);
        }
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("ip -j output ({e}): {out}"))
    }

    /// The names of the namespace's links (`ip -j link show`).
    pub fn link_names(&self) -> Vec<String> {
        self.ip_json(&["link", "show"])
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l["ifname"].as_str().map(str::to_string))
            .collect()
    }

    /// Runs `f` on a fresh thread that has entered this namespace.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = self.path();
        std::thread::scope(|s| {
            s.spawn(move || {
                let fd = std::fs::File::open(&path).expect("open netns");
                nix::sched::setns(&fd, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
                f()
            })
            .join()
            .expect("thread in netns panicked")
        })
    }

    /// Runs the future `f` makes to completion on a runtime of its own, inside this
    /// namespace (for async clients: the store, etcd).
    pub fn block_on<T: Send, F: std::future::Future<Output = T>>(
        &self,
        f: impl FnOnce() -> F + Send,
    ) -> T {
        self.run(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a tokio runtime")
                .block_on(f())
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// Runs a command; panics with stdout and stderr if it fails. Returns stdout.
pub fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
