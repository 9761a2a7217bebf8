//! Driving the plugins like a container runtime: `cnictl` (our libcni equivalent) running
//! inside a node's namespace with a private conf dir, cache dir and plugin dir.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::netns::Netns;
use crate::{workspace_bin, PluginDir, PluginRun};

/// One node's runtime: its conflists, its result cache, the plugins it runs.
#[derive(Debug)]
pub struct Runtime {
    /// `CNI_PATH`.
    pub plugins: PluginDir,
    conf: tempfile::TempDir,
    cache: tempfile::TempDir,
    node: PathBuf,
}

impl Runtime {
    /// A runtime on the node whose namespace is `node`, with the given plugins.
    pub fn new(node: &Netns, plugins: &[&str]) -> Runtime {
        Runtime {
            plugins: PluginDir::new(plugins),
            conf: tempfile::tempdir().expect("tempdir"),
            cache: tempfile::tempdir().expect("tempdir"),
            node: node.path(),
        }
    }

    /// A runtime with a given plugin dir (e.g. [`PluginDir::mixed`]).
    pub fn with_plugins(node: &Netns, plugins: PluginDir) -> Runtime {
        Runtime {
            plugins,
            conf: tempfile::tempdir().expect("tempdir"),
            cache: tempfile::tempdir().expect("tempdir"),
            node: node.path(),
        }
    }

    /// Runs the plugins of `plugins` from now on, keeping the conf dir and the result cache
    /// (binaries swapped on a node whose pods keep running); returns the previous ones.
    pub fn swap_plugins(&mut self, plugins: PluginDir) -> PluginDir {
        std::mem::replace(&mut self.plugins, plugins)
    }

    /// Writes `<name>.conflist` into the conf dir.
    pub fn write_conflist(&self, name: &str, list: &Value) {
        std::fs::write(
            self.conf.path().join(format!("{name}.conflist")),
            list.to_string(),
        )
        .expect("write conflist");
    }

    /// The conf dir (`NETCONFPATH`).
    pub fn conf_dir(&self) -> &Path {
        self.conf.path()
    }

    /// The cache dir.
    pub fn cache_dir(&self) -> &Path {
        self.cache.path()
    }

    /// Runs `cnictl <args>` in the node with `CAP_ARGS`/`CNI_ARGS` from `env`.
    pub fn cnictl(&self, args: &[&str], env: &[(&str, &str)]) -> PluginRun {
        let out = Command::new("nsenter")
            .arg(format!("--net={}", self.node.display()))
            .arg(workspace_bin("cnictl"))
            .arg("--cache-dir")
            .arg(self.cache.path())
            .args(args)
            .env("NETCONFPATH", self.conf.path())
            .env("CNI_PATH", self.plugins.path())
            .envs(env.iter().copied())
            .output()
            .expect("run cnictl");
        PluginRun {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `cnictl add`; panics on failure; returns the result.
    pub fn add(&self, network: &str, pod: &Netns) -> Value {
        self.add_with(network, pod, &[])
    }

    /// `cnictl add` with extra environment (`CAP_ARGS`, `CNI_ARGS`, `CNI_IFNAME`).
    pub fn add_with(&self, network: &str, pod: &Netns, env: &[(&str, &str)]) -> Value {
        let p = pod.path().display().to_string();
        self.cnictl(&["add", network, &p], env).ok()
    }

    /// `cnictl del`; panics on failure.
    pub fn del(&self, network: &str, pod: &Netns) {
        self.del_with(network, pod, &[]);
    }

    /// `cnictl del` with extra environment.
    pub fn del_with(&self, network: &str, pod: &Netns, env: &[(&str, &str)]) {
        let p = pod.path().display().to_string();
        self.cnictl(&["del", network, &p], env).ok();
    }

    /// `cnictl check`.
    pub fn check(&self, network: &str, pod: &Netns, env: &[(&str, &str)]) -> PluginRun {
        let p = pod.path().display().to_string();
        self.cnictl(&["check", network, &p], env)
    }

    /// A bare DEL of the first plugin of `list` for `container_id`, the way ctr and 0.3.x
    /// runtimes send it: no `CNI_NETNS`, no `prevResult`; run twice (DEL is idempotent).
    /// Panics unless both succeed.
    pub fn bare_del(&self, list: &Value, container_id: &str) {
        let plugin = list["plugins"][0]["type"].as_str().expect("plugin type");
        for _ in 0..2 {
            self.bare_del_of(list, 0, workspace_bin(plugin), container_id);
        }
    }

    /// A bare DEL of every plugin of `list`, in reverse order, as this runtime's plugins
    /// (ours or the reference's), twice: what containerd repeats on RemovePodSandbox once the
    /// pod's namespace is gone (no `CNI_NETNS`, no `prevResult`, no `runtimeConfig`). Panics
    /// unless every call succeeds.
    pub fn bare_del_all(&self, list: &Value, container_id: &str) {
        let n = list["plugins"].as_array().map_or(0, Vec::len);
        for _ in 0..2 {
            for i in (0..n).rev() {
                let plugin = list["plugins"][i]["type"].as_str().expect("plugin type");
                let bin = self.plugins.path().join(plugin);
                self.bare_del_of(list, i, bin, container_id);
            }
        }
    }

    fn bare_del_of(&self, list: &Value, i: usize, bin: PathBuf, container_id: &str) {
        let mut conf = list["plugins"][i].clone();
        conf["cniVersion"] = list["cniVersion"].clone();
        conf["name"] = list["name"].clone();
        let path = self.plugins.path_str();
        let env = [
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", container_id),
            ("CNI_NETNS", ""),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", path.as_str()),
        ];
        crate::run_plugin_in(bin, &env, &conf.to_string(), Some(&self.node)).ok();
    }

    /// The container id cnictl (like cnitool) derives for `pod`.
    pub fn container_id(pod: &Netns) -> String {
        use sha2::{Digest, Sha512};
        let d = Sha512::digest(pod.path().display().to_string().as_bytes());
        let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
        format!("cnitool-{}", &hex[..20])
    }
}

/// The first IPv4 address of a result's container interface.
pub fn pod_ip(result: &Value) -> String {
    pod_addr(result, false)
        .unwrap_or_else(|| panic!("no IPv4 address in {result}"))
        .to_string()
}

/// The first address of one family (`v6`) of a result, without its prefix.
pub fn pod_addr(result: &Value, v6: bool) -> Option<std::net::IpAddr> {
    result["ips"]
        .as_array()?
        .iter()
        .filter_map(|i| i["address"].as_str()?.split('/').next()?.parse().ok())
        .find(|a: &std::net::IpAddr| a.is_ipv6() == v6)
}
