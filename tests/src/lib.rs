//! # ferro-e2e: the suite under the clients operators use
//!
//! The end-to-end suites of the repository's `tests/` (a package of its own: a virtual workspace
//! root cannot hold test targets). Each client runs on a simulated node of
//! [`ferro_testutil::topology::World`] ([docs/testing.md](../../docs/testing.md)) exactly as on a
//! real one, but isolated from the machine: the shell helpers of `scripts/runtimes.sh` (shared with
//! `scripts/demo.sh`) start it in the node's network namespace and a private mount namespace where
//! our directories are shown over `/etc/cni/net.d`, `/opt/cni/bin`, `/var/lib/cni` and the
//! runtime's own state directories. Long-running clients are stopped by their pid when the guard
//! drops, also when a test fails.
//!
//! - [`Plugins`]: a plugin directory whose entries record every call (the `CNI_*` variables
//!   and stdin) before running our binary (or a reference plugin from `/usr/lib/cni`);
//! - [`Containerd`], [`Podman`]: the clients, with their guards; [`cnitool`];
//! - [`Cluster`]: the simulated network with node B running one of the example models through
//!   `cnictl`, so node A's client has a pod on another node to reach;
//! - [`ensure_programs`]: installs a client's Debian packages when one of its programs is
//!   missing, so a fresh machine passes.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use ferro_testutil::netns::Netns;
use ferro_testutil::runtime::{pod_ip, Runtime};
use ferro_testutil::topology::World;
use serde_json::{json, Value};

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the e2e package lives in the repository")
        .to_path_buf()
}

/// The text of `conf-examples/<name>`.
pub fn example(name: &str) -> String {
    let p = repo().join("conf-examples").join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// What a command did.
#[derive(Debug, Clone)]
pub struct Ran {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    /// stdout.
    pub stdout: String,
    /// stderr.
    pub stderr: String,
}

impl Ran {
    fn from(out: Output) -> Ran {
        Ran {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// What a finished command did.
    pub fn of(out: Output) -> Ran {
        Ran::from(out)
    }

    /// Panics (with both outputs) unless it succeeded; returns stdout.
    pub fn ok(&self, what: &str) -> &str {
        assert_eq!(
            self.code, 0,
            "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        );
        &self.stdout
    }
}

/// Runs `script` with bash (`set -euo pipefail`, `scripts/lib.sh` and `scripts/runtimes.sh`
/// sourced) and `args` as `$1`...; killed after `secs` seconds.
pub fn shell<S: AsRef<OsStr>>(secs: u32, script: &str, args: &[S]) -> Ran {
    let root = repo();
    let full = format!(
        "set -euo pipefail\nsource {root}/scripts/lib.sh\nsource {root}/scripts/runtimes.sh\n{script}",
        root = root.display()
    );
    let out = Command::new("timeout")
        .args([
            "--kill-after=5",
            &secs.to_string(),
            "bash",
            "-c",
            &full,
            "ferro-e2e",
        ])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run bash");
    Ran::from(out)
}

/// Makes sure every program of `needs` (`(program, Debian package)`; a program is a path or a
/// name looked up in `PATH`) exists, installing the packages of the missing ones with
/// `ensure_packages` of `scripts/lib.sh`. Test processes run in parallel: a lock file
/// serialises them.
pub fn ensure_programs(needs: &[(&str, &str)]) {
    let missing = |needs: &[(&str, &str)]| -> Vec<String> {
        let mut pkgs: Vec<String> = needs
            .iter()
            .filter(|(prog, _)| !program_exists(prog))
            .map(|(_, pkg)| pkg.to_string())
            .collect();
        pkgs.dedup();
        pkgs
    };
    if missing(needs).is_empty() {
        return;
    }
    let lock = File::create(std::env::temp_dir().join("ferro-e2e-apt.lock")).expect("apt lock");
    lock.lock().expect("lock");
    let pkgs = missing(needs);
    if !pkgs.is_empty() {
        shell(900, "ensure_packages \"$@\"", &pkgs).ok("installing Debian packages");
        let still = missing(needs);
        assert!(still.is_empty(), "still missing after apt-get: {still:?}");
    }
}

fn program_exists(prog: &str) -> bool {
    if prog.contains('/') {
        return Path::new(prog).exists();
    }
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(prog).is_file()))
        .unwrap_or(false)
}

/// cnitool 1.1.2: `$CNITOOL`, default `/var/tmp/cnitool/bin/cnitool`, built from Debian's
/// source package by `scripts/lib.sh ensure_cnitool` when missing.
pub fn cnitool() -> PathBuf {
    let path = PathBuf::from(
        std::env::var("CNITOOL").unwrap_or_else(|_| "/var/tmp/cnitool/bin/cnitool".into()),
    );
    if !path.exists() {
        let lock = File::create(std::env::temp_dir().join("ferro-e2e-apt.lock")).expect("apt lock");
        lock.lock().expect("lock");
        if !path.exists() {
            let dir = path
                .parent()
                .and_then(Path::parent)
                .expect("$CNITOOL is <dir>/bin/cnitool");
            shell(1800, "CNITOOL_DIR=$1 ensure_cnitool", &[dir.as_os_str()]).ok("building cnitool");
        }
    }
    path
}

/// One recorded plugin call.
#[derive(Debug, Clone)]
pub struct Call {
    /// The plugin (file name in the plugin directory).
    pub plugin: String,
    /// `CNI_*` variables and `CAP_ARGS`.
    pub env: BTreeMap<String, String>,
    /// What the runtime wrote on stdin.
    pub stdin: String,
}

impl Call {
    /// `CNI_COMMAND`.
    pub fn command(&self) -> &str {
        self.var("CNI_COMMAND")
    }

    /// A variable, "" when unset.
    pub fn var(&self, name: &str) -> &str {
        self.env.get(name).map(String::as_str).unwrap_or("")
    }

    /// stdin as JSON (`Null` when it is not JSON).
    pub fn conf(&self) -> Value {
        serde_json::from_str(&self.stdin).unwrap_or(Value::Null)
    }

    /// One line: what the runtime sent, for the test log.
    pub fn summary(&self) -> String {
        let conf = self.conf();
        format!(
            "{} {} container={:?} netns={:?} ifname={:?} args={:?} path={:?} cniVersion={} \
             runtimeConfig={} prevResult={}",
            self.plugin,
            self.command(),
            self.var("CNI_CONTAINERID"),
            self.var("CNI_NETNS"),
            self.var("CNI_IFNAME"),
            self.var("CNI_ARGS"),
            self.var("CNI_PATH"),
            conf["cniVersion"],
            conf.get("runtimeConfig").unwrap_or(&Value::Null),
            conf.get("prevResult").is_some(),
        )
    }
}

/// A plugin directory for a client: one recording wrapper per plugin, running our binary
/// (`ferro_testutil::bin_dir()`) or, for names we do not build, the reference plugin in
/// `/usr/lib/cni`.
#[derive(Debug)]
pub struct Plugins {
    dir: tempfile::TempDir,
    calls: tempfile::TempDir,
}

impl Plugins {
    /// Wrappers for `names`.
    pub fn new(names: &[&str]) -> Plugins {
        let dir = tempfile::tempdir().expect("tempdir");
        let calls = tempfile::tempdir().expect("tempdir");
        for name in names {
            let ours = ferro_testutil::bin_dir().join(name);
            let real = if ours.exists() {
                ours
            } else {
                Path::new("/usr/lib/cni").join(name)
            };
            assert!(
                real.exists(),
                "plugin {name}: neither built nor in /usr/lib/cni"
            );
            let script = format!(
                "#!/bin/sh\n\
                 # Records one call (CNI_* variables, CAP_ARGS, stdin), then runs the plugin.\n\
                 rec={calls}/$(date +%s%N)-$$-{name}\n\
                 env | grep -E '^(CNI_[A-Z]+|CAP_ARGS)=' >\"$rec.env\"\n\
                 cat >\"$rec.stdin\"\n\
                 exec {real} \"$@\" <\"$rec.stdin\"\n",
                calls = calls.path().display(),
                real = real.display()
            );
            let path = dir.path().join(name);
            std::fs::write(&path, script).expect("write wrapper");
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                .expect("chmod wrapper");
        }
        Plugins { dir, calls }
    }

    /// The directory (`CNI_PATH`, `cni_plugin_dirs`, or what is shown over `/opt/cni/bin`).
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        let mut stems: Vec<String> = std::fs::read_dir(self.calls.path())
            .expect("calls dir")
            .filter_map(|e| {
                let n = e.ok()?.file_name().to_string_lossy().into_owned();
                n.strip_suffix(".env").map(str::to_string)
            })
            .collect();
        stems.sort();
        stems
            .into_iter()
            .map(|stem| {
                let read = |ext: &str| {
                    std::fs::read_to_string(self.calls.path().join(format!("{stem}.{ext}")))
                        .unwrap_or_default()
                };
                let env = read("env")
                    .lines()
                    .filter_map(|l| l.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                Call {
                    plugin: stem.splitn(3, '-').nth(2).unwrap_or_default().to_string(),
                    env,
                    stdin: read("stdin"),
                }
            })
            .collect()
    }

    /// Prints every call (the test log shows it when a test fails).
    pub fn print_calls(&self, client: &str) {
        for c in self.calls() {
            eprintln!("{client} sent: {}", c.summary());
        }
    }

    /// The calls of one `CNI_COMMAND`.
    pub fn calls_of(&self, command: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.command() == command)
            .collect()
    }
}

/// A containerd 1.6 of our own on a node (`containerd_start` of `scripts/runtimes.sh`):
/// config, root, state and socket under a temporary directory; stopped by its pid on drop.
#[derive(Debug)]
pub struct Containerd {
    work: tempfile::TempDir,
    /// containerd's pid.
    pub pid: u32,
}

/// The programs containerd tests run, with their packages.
pub const CONTAINERD_PROGRAMS: &[(&str, &str)] = &[
    ("containerd", "containerd"),
    ("ctr", "containerd"),
    ("containerd-shim-runc-v2", "containerd"),
    ("runc", "runc"),
    ("/bin/busybox", "busybox-static"),
];

impl Containerd {
    /// Starts containerd on `node`: `conf_dir` is its `/etc/cni/net.d`, `plugins` its
    /// `/opt/cni/bin`; `binds` are more `(directory, shown at)` pairs.
    pub fn start(node: &Netns, conf_dir: &Path, plugins: &Path, binds: &[(&Path, &str)]) -> Self {
        ensure_programs(CONTAINERD_PROGRAMS);
        let work = tempfile::tempdir().expect("tempdir");
        let mut args: Vec<String> = vec![
            work.path().display().to_string(),
            node.path().display().to_string(),
            conf_dir.display().to_string(),
            plugins.display().to_string(),
        ];
        args.extend(binds.iter().map(|(s, d)| format!("{}={d}", s.display())));
        let started = shell(60, "containerd_start \"$@\"", &args);
        let pid = std::fs::read_to_string(work.path().join("containerd.pid"))
            .ok()
            .and_then(|p| p.trim().parse().ok());
        let c = Containerd {
            work,
            pid: pid.unwrap_or(0),
        };
        started.ok("starting containerd");
        assert!(c.pid > 0, "containerd wrote no pid");
        c
    }

    fn w(&self) -> String {
        self.work.path().display().to_string()
    }

    /// `ctr <args>` against this containerd (in its namespaces).
    pub fn ctr(&self, args: &[&str]) -> Ran {
        let mut a = vec![self.w()];
        a.extend(args.iter().map(|s| s.to_string()));
        shell(120, "ctr_node \"$@\"", &a)
    }

    /// Builds the busybox image offline and imports it.
    pub fn import_busybox(&self) {
        shell(120, "ctr_import_busybox \"$1\"", &[self.w()]).ok("importing the busybox image");
    }

    /// `ctr run --rm --cni` of the busybox image, container `id`, running `sh -c <script>`.
    pub fn run_cni(&self, id: &str, script: &str) -> Ran {
        shell(
            120,
            "ctr_run_cni \"$@\"",
            &[&self.w(), id, "sh", "-c", script],
        )
    }

    /// The directory shown at `/var/lib/cni` (libcni's cache, host-local's default dataDir).
    pub fn var_lib_cni(&self) -> PathBuf {
        self.work.path().join("var-lib-cni")
    }

    /// containerd's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.work.path().join("containerd.log")).unwrap_or_default()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = shell(60, "containerd_stop \"$1\"", &[self.w()]);
        if std::path::Path::new(&format!("/proc/{}", self.pid)).exists() {
            // containerd_stop could not run: stop it by its pid anyway.
            let _ = Command::new("kill")
                .args(["-KILL", &self.pid.to_string()])
                .status();
        }
    }
}

/// The programs podman tests run, with their packages.
pub const PODMAN_PROGRAMS: &[(&str, &str)] = &[
    ("podman", "podman"),
    ("conmon", "conmon"),
    ("runc", "runc"),
    ("/bin/busybox", "busybox-static"),
    ("/usr/lib/cni/firewall", "containernetworking-plugins"),
    ("/usr/lib/cni/tuning", "containernetworking-plugins"),
];

/// podman 4.3 with its CNI backend on a node (`podman_start` of `scripts/runtimes.sh`):
/// private `containers.conf` and vfs storage under a temporary directory, run in a holder's
/// mount namespace; every container and the holder are stopped by pid on drop.
#[derive(Debug)]
pub struct Podman {
    work: tempfile::TempDir,
    /// Its `network_config_dir`.
    pub netconf: PathBuf,
    /// A busybox root file system for `--rootfs`.
    pub rootfs: PathBuf,
    /// The holder's pid.
    pub pid: u32,
}

impl Podman {
    /// Prepares podman on `node` with `plugins` as its only CNI plugin directory.
    pub fn start(node: &Netns, plugins: &Path) -> Podman {
        ensure_programs(PODMAN_PROGRAMS);
        let work = tempfile::tempdir().expect("tempdir");
        let netconf = work.path().join("net.d");
        let rootfs = work.path().join("rootfs");
        std::fs::create_dir_all(&netconf).expect("mkdir");
        let w = work.path().display().to_string();
        let started = shell(
            60,
            "busybox_rootfs \"$5\"; podman_start \"$1\" \"$2\" \"$3\" \"$4\"",
            &[
                w.as_str(),
                &node.path().display().to_string(),
                &plugins.display().to_string(),
                &netconf.display().to_string(),
                &rootfs.display().to_string(),
            ],
        );
        let pid = std::fs::read_to_string(work.path().join("podman.pid"))
            .ok()
            .and_then(|p| p.trim().parse().ok());
        let p = Podman {
            work,
            netconf,
            rootfs,
            pid: pid.unwrap_or(0),
        };
        started.ok("preparing podman");
        assert!(p.pid > 0, "no holder pid");
        p
    }

    fn w(&self) -> String {
        self.work.path().display().to_string()
    }

    /// `podman <args>`.
    pub fn podman(&self, args: &[&str]) -> Ran {
        let mut a = vec![self.w()];
        a.extend(args.iter().map(|s| s.to_string()));
        shell(120, "podman_node \"$@\"", &a)
    }

    /// `podman run <args>` (with our cgroup parent).
    pub fn run(&self, args: &[&str]) -> Ran {
        let mut a = vec![self.w()];
        a.extend(args.iter().map(|s| s.to_string()));
        shell(120, "podman_run \"$@\"", &a)
    }

    /// The directory shown at `/var/lib/cni` (libcni's cache, host-local's default dataDir).
    pub fn var_lib_cni(&self) -> PathBuf {
        self.work.path().join("var-lib-cni")
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = shell(60, "podman_stop \"$1\"", &[self.w()]);
    }
}

/// The lease files (addresses) host-local keeps under `<data>/<network>`.
pub fn leases(data: &Path, network: &str) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(data.join(network)) else {
        return vec![];
    };
    let mut v: Vec<String> = rd
        .filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
        .collect();
    v.sort();
    v
}

/// Names of the links of `ns` that start with `veth` or `fc` (pod veths of bridge, flat and
/// overlay).
pub fn pod_veths(ns: &Netns) -> Vec<String> {
    ns.ip_json(&["link"])
        .as_array()
        .expect("ip -j link")
        .iter()
        .filter_map(|l| l["ifname"].as_str().map(str::to_string))
        .filter(|n| n.starts_with("veth") || n.starts_with("fc"))
        .collect()
}

/// Our nftables table on `ns` as text ("" when it does not exist).
pub fn our_table(ns: &Netns) -> String {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns.name(),
            "nft",
            "list",
            "table",
            "inet",
            "ferro_cni",
        ])
        .output()
        .expect("nft");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The example models.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    /// `kubenet.conflist`: bridge + host-local + portmap.
    Kubenet,
    /// `flat.conflist`: flat + host-local + portmap.
    Flat,
    /// `overlay.conflist`: overlay + host-local + portmap.
    Overlay,
}

impl Model {
    /// The example file (written for node A).
    pub fn file(self) -> &'static str {
        match self {
            Model::Kubenet => "kubenet.conflist",
            Model::Flat => "flat.conflist",
            Model::Overlay => "overlay.conflist",
        }
    }

    /// The network name of the example.
    pub fn network(self) -> &'static str {
        match self {
            Model::Kubenet => "kubenet",
            Model::Flat => "azure",
            Model::Overlay => "overlay",
        }
    }

    /// The plugin types of the list.
    pub fn plugins(self) -> &'static [&'static str] {
        match self {
            Model::Kubenet => &["bridge", "host-local", "portmap", "loopback"],
            Model::Flat => &["flat", "host-local", "portmap", "loopback"],
            Model::Overlay => &["overlay", "host-local", "portmap", "loopback"],
        }
    }

    /// Whether `ip` is an address the example hands out on node A.
    pub fn is_node_a_address(self, ip: &str) -> bool {
        let Ok(std::net::IpAddr::V4(a)) = ip.parse::<std::net::IpAddr>() else {
            return false;
        };
        let o = a.octets();
        match self {
            Model::Kubenet | Model::Overlay => o[..3] == [10, 244, 1] && o[3] > 1,
            Model::Flat => o[..3] == [10, 240, 0] && (20..=49).contains(&o[3]),
        }
    }

    /// The source address a VM on the VNet sees from the pod `ip` of node A: the pod's own
    /// under flat (pods are VNet addresses), node A's under kubenet and overlay (NAT).
    pub fn vm_sees(self, ip: &str) -> String {
        match self {
            Model::Flat => ip.to_string(),
            Model::Kubenet | Model::Overlay => "10.240.0.4".into(),
        }
    }

    /// Whether a VM on the VNet reaches pods directly: under kubenet through the route
    /// table, under flat because they are VNet addresses; overlay pods are private to the
    /// cluster.
    pub fn vm_reaches_pods(self) -> bool {
        self != Model::Overlay
    }

    /// What a pod on node A pings to prove its gateway forwards: the bridge address for
    /// kubenet; node A's own address for flat and overlay, whose gateway 169.254.1.1 is a
    /// virtual one (a neighbour entry, no address answers it).
    pub fn gateway_target(self) -> &'static str {
        match self {
            Model::Kubenet => "10.244.1.1",
            Model::Flat | Model::Overlay => "10.240.0.4",
        }
    }
}

/// The simulated network with two nodes for one example model: node B runs the example (with
/// node B's values, a private dataDir) through `cnictl`; node A is left to the client under
/// test. For kubenet, the nodes and the VM on the VNet route each node's pod slice to it (what
/// AKS's route table does);
/// for overlay, `conf-examples/nodes.json` (its addresses are the world's nodes) is in
/// [`Cluster::etc_ferro`], to be shown at `/etc/ferro-cni`.
#[derive(Debug)]
pub struct Cluster {
    /// The model.
    pub model: Model,
    /// The simulated network (node A = `nodes[0]`, B = `nodes[1]`).
    pub world: World,
    /// Node B's runtime.
    pub rt_b: Runtime,
    data_b: tempfile::TempDir,
    /// A directory holding the example `nodes.json`.
    pub etc_ferro: tempfile::TempDir,
}

impl Cluster {
    /// Builds it.
    pub fn new(model: Model) -> Cluster {
        ferro_testutil::require_root();
        let world = World::new(2);
        let etc_ferro = tempfile::tempdir().expect("tempdir");
        std::fs::write(etc_ferro.path().join("nodes.json"), example("nodes.json"))
            .expect("write nodes.json");
        let data_b = tempfile::tempdir().expect("tempdir");
        let mut list: Value = serde_json::from_str(&example(model.file())).expect("example");
        let p = &mut list["plugins"][0];
        p["ipam"]["dataDir"] = json!(data_b.path());
        match model {
            Model::Kubenet => {
                p["ipam"]["ranges"] = json!([[{"subnet": "10.244.2.0/24"}]]);
                let (a, b) = (&world.nodes[0].ns, &world.nodes[1].ns);
                a.ip(&["route", "add", "10.244.2.0/24", "via", "10.240.0.5"]);
                b.ip(&["route", "add", "10.244.1.0/24", "via", "10.240.0.4"]);
                for (slice, node) in [
                    ("10.244.1.0/24", "10.240.0.4"),
                    ("10.244.2.0/24", "10.240.0.5"),
                ] {
                    world.peer.ip(&["route", "add", slice, "via", node]);
                }
            }
            Model::Flat => {
                p["ipam"]["ranges"][0][0]["rangeStart"] = json!("10.240.0.50");
                p["ipam"]["ranges"][0][0]["rangeEnd"] = json!("10.240.0.59");
            }
            Model::Overlay => {
                p["nodeSubnet"] = json!("10.244.2.0/24");
                p["ipam"]["ranges"] = json!([[{"subnet": "10.244.2.0/24"}]]);
                p["nodeList"] = json!(etc_ferro.path().join("nodes.json"));
            }
        }
        let rt_b = Runtime::new(&world.nodes[1].ns, model.plugins());
        rt_b.write_conflist("10-example", &list);
        Cluster {
            model,
            world,
            rt_b,
            data_b,
            etc_ferro,
        }
    }

    /// Node A's namespace.
    pub fn node_a(&self) -> &Netns {
        &self.world.nodes[0].ns
    }

    /// Attaches a pod on node B; returns it and its address.
    pub fn pod_b(&self, label: &str) -> (Netns, String) {
        let pod = Netns::new(label);
        let r = self.rt_b.add(self.model.network(), &pod);
        let ip = pod_ip(&r);
        (pod, ip)
    }

    /// Detaches a pod of node B.
    pub fn del_b(&self, pod: &Netns) {
        self.rt_b.del(self.model.network(), pod);
    }

    /// Node B's leases.
    pub fn leases_b(&self) -> Vec<String> {
        leases(self.data_b.path(), self.model.network())
    }
}
