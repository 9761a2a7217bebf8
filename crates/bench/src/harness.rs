//! What every scenario runs on: the binaries of both suites staged side by side, the
//! simulated VNet with a fresh node per suite and scenario, pods as network namespaces, and
//! ADD+DEL cycles of a suite's list run from inside its node.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ferro_testutil::topology::World;
use serde_json::Value;

use crate::cli::Params;
use crate::error::Error;
use crate::exec::Chain;
use crate::ns::{self, PodNs};
use crate::outcome::Outcome;
use crate::output::progress;
use crate::request::{Attachment, ConfList};
use crate::workloads::{self, Suite, SuiteSetup, WorkloadId};

/// Our binaries the bench may run (staged beside each other; ferro-agent, the server of the
/// cluster IPAM scenario, is run from where it was built).
pub const OURS: [&str; 6] = [
    "host-local",
    "bridge",
    "portmap",
    "flat",
    "overlay",
    "cluster-ipam",
];
/// The reference binaries it may run.
pub const REFS: [&str; 4] = ["host-local", "bridge", "portmap", "ptp"];
/// Ours paired with the reference's counterpart (for floor, size rows).
pub const PAIRS: [(&str, Option<&str>); 5] = [
    ("host-local", Some("host-local")),
    ("bridge", Some("bridge")),
    ("portmap", Some("portmap")),
    ("flat", Some("ptp")),
    ("overlay", None),
];
/// The queues of each end of the floor probes' veth pairs (`ip link` syntax): one each way,
/// as our plugins create them. A veth end created without them is allocated a queue pair
/// per CPU and then cut to one while registered, which waits for an RCU grace period: work
/// an implementation can leave out, so not part of the floor.
pub const ONE_QUEUE: &str = "numtxqueues 1 numrxqueues 1";

/// What to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Counts.
    pub params: Params,
    /// Where our release binaries are.
    pub ours_src: PathBuf,
    /// Where the reference binaries are.
    pub ref_src: PathBuf,
    /// Scratch directory (a private tmpfs under `scripts/bench.sh`).
    pub workdir: PathBuf,
    /// Where the host-local `dataDir`s go (removed afterwards).
    pub ipam_dir: PathBuf,
    /// Sequential workloads to run.
    pub workloads: Vec<WorkloadId>,
    /// Run the parallel scenario.
    pub parallel: bool,
    /// Run the scale scenario.
    pub scale: bool,
    /// Run the services scenario.
    pub services: bool,
    /// Run the cluster IPAM scenario.
    pub cluster_ipam: bool,
    /// Run the agent scenario.
    pub agent: bool,
    /// Run the NetworkPolicy scenario.
    pub policy: bool,
    /// Run the agent-at-scale scenario.
    pub cluster_scale: bool,
    /// Our binaries to treat as not built (their build failed).
    pub not_built: Vec<String>,
}

/// A node the bench created.
#[derive(Debug, Clone)]
pub struct Node {
    /// Its network namespace.
    pub ns: PathBuf,
    /// Its name.
    pub name: String,
    /// Its VNet address.
    pub ip: IpAddr,
}

/// The bench: the world of namespaces and the staged binaries.
#[derive(Debug)]
pub struct Bench {
    /// What to run.
    pub cfg: Config,
    world: World,
    extra_env: Vec<(String, String)>,
    next_id: [u64; 2],
    next_pod: u64,
    /// Pod namespaces kept until the end of the run.
    graveyard: Vec<PodNs>,
}

/// One ADD+DEL cycle: the time of each plugin process of the ADD, then of the DEL.
pub type CycleSample = (Vec<Duration>, Vec<Duration>);

/// One suite taking part in a scenario: its own node and its list.
#[derive(Debug)]
pub struct Participant {
    /// The suite.
    pub suite: Suite,
    /// Its node.
    pub node: Node,
    /// Its list, as the runtime runs it.
    pub chain: Chain,
    /// Its host-local `dataDir`.
    pub data_dir: PathBuf,
}

impl Participant {
    /// Lease files left in the list's IPAM directory.
    pub fn leases_left(&self) -> usize {
        count_leases(&self.data_dir.join(&self.chain.list.name))
    }
}

/// ABBA order of round `r`.
pub fn order(r: usize) -> [Suite; 2] {
    if r.is_multiple_of(2) {
        [Suite::Ours, Suite::Ref]
    } else {
        [Suite::Ref, Suite::Ours]
    }
}

/// Lease files (named after an address) in an IPAM network directory.
pub fn count_leases(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| {
                    e.file_name()
                        .to_str()
                        .is_some_and(|n| n.parse::<IpAddr>().is_ok())
                })
                .count()
        })
        .unwrap_or(0)
}

/// Creates the directory of a probe's `ip -batch` files.
pub fn batch_dir(dir: &Path) -> Result<PathBuf, Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
    Ok(dir.to_path_buf())
}

/// Writes one `ip -batch` file of `lines` into `dir`; returns its path.
pub fn write_batch(dir: &Path, name: &str, lines: &[String]) -> Result<String, Error> {
    let p = dir.join(name);
    let mut body = lines.join("\n");
    body.push('\n');
    std::fs::write(&p, body).map_err(|e| Error::io("writing", &p, e))?;
    Ok(p.display().to_string())
}

/// Runs a helper program (`ip`, `nft`) with only `PATH`, timed; an error when it fails.
pub fn timed(args: &[&str]) -> Result<Duration, Error> {
    let bin = Path::new(args[0]);
    let mut cmd = std::process::Command::new(bin);
    cmd.args(&args[1..])
        .env_clear()
        .env("PATH", crate::request::PLUGIN_PATH)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let t = Instant::now();
    let out = cmd.output().map_err(|e| Error::io("running", bin, e))?;
    let d = t.elapsed();
    if !out.status.success() {
        return Err(Error::Other(format!(
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(d)
}

/// The name of a pod's namespace file, as `ip` takes it (`netns NAME`).
pub fn netns_name(pod: &PodNs) -> String {
    pod.path()
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

impl Bench {
    /// Stages the binaries and builds the (empty) world.
    pub fn new(cfg: Config) -> Result<Bench, Error> {
        let wd = &cfg.workdir;
        std::fs::create_dir_all(wd).map_err(|e| Error::io("creating", wd, e))?;
        for (suite, src, names) in [
            (Suite::Ours, &cfg.ours_src, &OURS[..]),
            (Suite::Ref, &cfg.ref_src, &REFS[..]),
        ] {
            let dst = wd.join("bin").join(suite.tag());
            std::fs::create_dir_all(&dst).map_err(|e| Error::io("creating", &dst, e))?;
            for n in names {
                let from = src.join(n);
                if suite == Suite::Ours && cfg.not_built.iter().any(|x| x == n) {
                    continue;
                }
                if from.exists() {
                    std::fs::copy(&from, dst.join(n))
                        .map_err(|e| Error::io("copying", &from, e))?;
                }
            }
        }
        progress("building the simulated VNet");
        let world = World::new(0);
        let lockfile = wd.join("xtables.lock").display().to_string();
        Ok(Bench {
            cfg,
            world,
            extra_env: vec![("XTABLES_LOCKFILE".into(), lockfile)],
            next_id: [0, 0],
            next_pod: 0,
            graveyard: Vec::new(),
        })
    }

    /// The counts of the run.
    pub fn params(&self) -> &Params {
        &self.cfg.params
    }

    /// The scratch directory.
    pub fn workdir(&self) -> &Path {
        &self.cfg.workdir
    }

    /// The suite's plugin directory (`CNI_PATH`).
    pub fn cni_path(&self, s: Suite) -> PathBuf {
        self.cfg.workdir.join("bin").join(s.tag())
    }

    /// A fresh node on the VNet.
    pub fn node(&mut self) -> Node {
        let n = self.world.add_node();
        Node {
            ns: n.ns.path(),
            name: n.ns.name().to_string(),
            ip: n.ip,
        }
    }

    /// The namespace handle of `node` (a node of this bench), to start services in it.
    pub fn node_netns(&self, node: &Node) -> Option<&ferro_testutil::netns::Netns> {
        self.world
            .nodes
            .iter()
            .find(|n| n.ns.path() == node.ns)
            .map(|n| &n.ns)
    }

    /// A fresh pod namespace.
    pub fn pod(&mut self) -> Result<PodNs, Error> {
        self.next_pod += 1;
        PodNs::create(&format!("fb{}-{}", std::process::id(), self.next_pod))
    }

    /// Keeps pod namespaces until the end of the run: destroying many of them keeps the
    /// kernel busy for a while, which must not overlap a measurement.
    pub fn bury(&mut self, pods: impl IntoIterator<Item = PodNs>) {
        self.graveyard.extend(pods);
    }

    /// A new attachment (container id) of suite `s` in `netns`.
    pub fn attachment(&mut self, s: Suite, netns: &Path) -> Attachment {
        let n = &mut self.next_id[s.index()];
        *n += 1;
        Attachment::new(s.seed(), *n, netns)
    }

    /// Binaries a list needs (plugins and IPAM delegates) that the suite does not have.
    fn missing(&self, s: Suite, list: &ConfList) -> Vec<String> {
        let dir = self.cni_path(s);
        let mut names: Vec<String> = list.types();
        for p in &list.plugins {
            if let Some(t) = p
                .get("ipam")
                .and_then(|i| i.get("type"))
                .and_then(Value::as_str)
            {
                names.push(t.to_string());
            }
        }
        names.dedup();
        names.retain(|n| !dir.join(n).exists());
        names
    }

    /// A participant for `w` (fresh node), or the outcome that replaces it.
    pub fn participant(
        &mut self,
        s: Suite,
        w: WorkloadId,
        scenario: &str,
    ) -> Result<Participant, Outcome<()>> {
        let node = self.node();
        let base = if w == WorkloadId::HostLocalTmpfs {
            self.cfg.workdir.join("ipam-tmpfs")
        } else {
            self.cfg.ipam_dir.clone()
        };
        let data_dir = base.join(scenario).join(s.tag());
        let node_list = self
            .cfg
            .workdir
            .join(format!("nodes-{scenario}-{}.json", s.tag()));
        let setup = SuiteSetup {
            suite: s,
            data_dir: data_dir.clone(),
            node_name: node.name.clone(),
            node_list: node_list.clone(),
        };
        let Some(list) = workloads::conflist(w, &setup) else {
            return Err(Outcome::NoEquivalent);
        };
        if w == WorkloadId::Overlay {
            let body = workloads::overlay_node_list(&node.name, node.ip).to_string();
            std::fs::write(&node_list, body)
                .map_err(|e| Outcome::Failed(Error::io("writing", &node_list, e).to_string()))?;
        }
        let missing = self.missing(s, &list);
        if !missing.is_empty() {
            return Err(Outcome::NotBuilt(format!(
                "{} not built",
                missing.join(", ")
            )));
        }
        Ok(Participant {
            suite: s,
            node,
            chain: Chain {
                list,
                cap_args: workloads::cap_args(w),
                cni_path: self.cni_path(s),
                extra_env: self.extra_env.clone(),
            },
            data_dir,
        })
    }

    /// Full ADD+DEL cycles of `p` over fresh attachments in `pod`.
    pub fn cycles(
        &mut self,
        p: &Participant,
        pod: &Path,
        n: usize,
    ) -> Result<Vec<CycleSample>, Error> {
        let atts: Vec<Attachment> = (0..n).map(|_| self.attachment(p.suite, pod)).collect();
        let chain = &p.chain;
        ns::in_netns(&p.node.ns, || {
            atts.iter()
                .map(|a| {
                    let add = chain.add(a)?;
                    let del = chain.del(a, Some(&add.result))?;
                    Ok((add.per_plugin, del))
                })
                .collect::<Result<Vec<_>, Error>>()
        })?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abba_order() {
        assert_eq!(order(0), [Suite::Ours, Suite::Ref]);
        assert_eq!(order(1), [Suite::Ref, Suite::Ours]);
        assert_eq!(order(2), order(0));
    }

    #[test]
    fn leases_are_files_named_after_addresses() {
        let d = tempfile::tempdir().unwrap();
        for f in ["10.0.0.2", "fd00::3", "lock", "last_reserved_ip.0"] {
            std::fs::write(d.path().join(f), "x").unwrap();
        }
        std::fs::create_dir(d.path().join(".ferro-index")).unwrap();
        assert_eq!(count_leases(d.path()), 2);
        assert_eq!(count_leases(&d.path().join("missing")), 0);
    }
}
