//! Running the scenarios: the sequential workloads with A/B alternation, the parallel run,
//! the scale run, peak RSS, binary sizes and the process-start floor.

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use ferro_testutil::topology::World;
use serde_json::Value;

use crate::error::Error;
use crate::exec::{self, Chain};
use crate::ns::{self, PodNs};
use crate::output::progress;
use crate::report::{
    ChainStats, FloorRow, KernelFloor, LatencyRow, Outcome, ParallelRow, ParallelStats, Params,
    RssRow, ScaleRow, ScaleStats, SizeRow,
};
use crate::request::{result_addresses, Attachment, ConfList};
use crate::stats::{sum_columns, Summary};
use crate::workloads::{self, Suite, SuiteSetup, WorkloadId};

/// Our binaries the bench may run.
pub const OURS: [&str; 5] = ["host-local", "bridge", "portmap", "flat", "overlay"];
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
    /// Our binaries to treat as not built (their build failed).
    pub not_built: Vec<String>,
}

/// The results of the scenarios (the report adds machine and versions).
#[derive(Debug)]
pub struct Results {
    /// Sequential workloads.
    pub latency: Vec<LatencyRow>,
    /// Peak RSS.
    pub rss: Vec<RssRow>,
    /// Parallel.
    pub parallel: Option<ParallelRow>,
    /// Scale.
    pub scale: Option<ScaleRow>,
    /// `true` fork+exec.
    pub bare_exec: Option<Summary>,
    /// VERSION floor.
    pub floor: Vec<FloorRow>,
    /// Sizes.
    pub sizes: Vec<SizeRow>,
    /// Kernel costs.
    pub kernel: Outcome<KernelFloor>,
}

/// A node the bench created.
#[derive(Debug, Clone)]
struct Node {
    ns: PathBuf,
    name: String,
    ip: IpAddr,
}

/// The bench: the world of namespaces and the staged binaries.
#[derive(Debug)]
pub struct Bench {
    cfg: Config,
    world: World,
    extra_env: Vec<(String, String)>,
    next_id: [u64; 2],
    next_pod: u64,
    probe: Option<Probe>,
    probe_pod: Option<PodNs>,
    floor: FloorAcc,
    /// Pod namespaces kept until the end of the run.
    graveyard: Vec<PodNs>,
}

/// The probe node of the floor measurements.
#[derive(Debug, Clone)]
struct Probe {
    node: PathBuf,
    batch: usize,
    empty: String,
    add: String,
    del: String,
}

/// Floor samples gathered over the run.
#[derive(Debug)]
struct FloorAcc {
    turn: usize,
    bare: Vec<Duration>,
    /// Per [`PAIRS`] entry: ours, reference.
    version: Vec<[Result<Vec<Duration>, String>; 2]>,
    veth_add: Vec<Duration>,
    veth_del: Vec<Duration>,
    nft_list: Vec<Duration>,
    nft_add: Vec<Duration>,
    nft_del: Vec<Duration>,
    error: Option<String>,
}

impl Default for FloorAcc {
    fn default() -> Self {
        FloorAcc {
            turn: 0,
            bare: Vec::new(),
            version: PAIRS
                .iter()
                .map(|_| [Ok(Vec::new()), Ok(Vec::new())])
                .collect(),
            veth_add: Vec::new(),
            veth_del: Vec::new(),
            nft_list: Vec::new(),
            nft_add: Vec::new(),
            nft_del: Vec::new(),
            error: None,
        }
    }
}

/// Runs a helper program (`ip`, `nft`) with only `PATH`, timed; an error when it fails.
/// Creates the directory of a probe's `ip -batch` files.
fn batch_dir(dir: &Path) -> Result<PathBuf, Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
    Ok(dir.to_path_buf())
}

/// Writes one `ip -batch` file of `lines` into `dir`; returns its path.
fn write_batch(dir: &Path, name: &str, lines: &[String]) -> Result<String, Error> {
    let p = dir.join(name);
    let mut body = lines.join("\n");
    body.push('\n');
    std::fs::write(&p, body).map_err(|e| Error::io("writing", &p, e))?;
    Ok(p.display().to_string())
}

fn timed(args: &[&str]) -> Result<Duration, Error> {
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

/// One ADD+DEL cycle: the time of each plugin process of the ADD, then of the DEL.
type CycleSample = (Vec<Duration>, Vec<Duration>);

/// Samples of one suite on one list: per plugin, per cycle.
#[derive(Debug, Default)]
struct Acc {
    add: Vec<Vec<Duration>>,
    del: Vec<Vec<Duration>>,
}

impl Acc {
    fn push(&mut self, add: &[Duration], del: &[Duration]) {
        if self.add.len() < add.len() {
            self.add.resize(add.len(), Vec::new());
            self.del.resize(del.len(), Vec::new());
        }
        for (i, d) in add.iter().enumerate() {
            self.add[i].push(*d);
        }
        for (i, d) in del.iter().enumerate() {
            self.del[i].push(*d);
        }
    }

    fn cycles(&self) -> usize {
        self.add.first().map_or(0, Vec::len)
    }

    fn stats(&self, plugins: Vec<String>, leftover_leases: usize) -> Option<ChainStats> {
        let add = sum_columns(&self.add);
        let del = sum_columns(&self.del);
        let cycle: Vec<Duration> = add.iter().zip(&del).map(|(a, d)| *a + *d).collect();
        Some(ChainStats {
            plugins,
            add: Summary::of(&add)?,
            del: Summary::of(&del)?,
            cycle: Summary::of(&cycle)?,
            add_per_plugin: self.add.iter().filter_map(|v| Summary::of(v)).collect(),
            del_per_plugin: self.del.iter().filter_map(|v| Summary::of(v)).collect(),
            leftover_leases,
        })
    }
}

/// One suite taking part in a scenario.
#[derive(Debug)]
struct Participant {
    suite: Suite,
    node: Node,
    chain: Chain,
    data_dir: PathBuf,
}

impl Participant {
    fn leases_left(&self) -> usize {
        count_leases(&self.data_dir.join(&self.chain.list.name))
    }
}

fn idx(s: Suite) -> usize {
    match s {
        Suite::Ours => 0,
        Suite::Ref => 1,
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

/// Addresses present in more than one result.
pub fn duplicates(results: &[Value]) -> usize {
    let mut seen = HashSet::new();
    let mut dups = 0;
    for r in results {
        for a in result_addresses(r) {
            if !seen.insert(a) {
                dups += 1;
            }
        }
    }
    dups
}

/// Parses GNU time's `-f %M` output (the last line; a failed command adds a line before it).
pub fn parse_rss(s: &str) -> Option<u64> {
    s.lines()
        .rev()
        .find(|l| !l.trim().is_empty())?
        .trim()
        .parse()
        .ok()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs `jobs` jobs on `workers` threads inside the namespace `node`; returns the wall time
/// from the start barrier to the last worker's end and each job's outcome.
fn parallel_phase<T: Send>(
    node: &Path,
    jobs: usize,
    workers: usize,
    job: impl Fn(usize) -> Result<T, Error> + Sync,
) -> Result<(Duration, Vec<Result<T, String>>), Error> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<T, String>>>> =
        Mutex::new((0..jobs).map(|_| None).collect());
    let ends: Mutex<Vec<Instant>> = Mutex::new(Vec::new());
    let barrier = Barrier::new(workers + 1);
    let start = std::thread::scope(|s| -> Result<Instant, Error> {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| -> Result<(), Error> {
                    let entered = ns::enter(node);
                    barrier.wait();
                    entered?;
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        if i >= jobs {
                            break;
                        }
                        let r = job(i).map_err(|e| e.to_string());
                        lock(&results)[i] = Some(r);
                    }
                    lock(&ends).push(Instant::now());
                    Ok(())
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        for h in handles {
            h.join()
                .map_err(|_| Error::Other("parallel worker panicked".into()))??;
        }
        Ok(start)
    })?;
    let end = lock(&ends).iter().max().copied().unwrap_or(start);
    let results = results
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err("not run".into())))
        .collect();
    Ok((end.saturating_duration_since(start), results))
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
            probe: None,
            probe_pod: None,
            floor: FloorAcc::default(),
            graveyard: Vec::new(),
        })
    }

    fn cni_path(&self, s: Suite) -> PathBuf {
        self.cfg.workdir.join("bin").join(s.tag())
    }

    fn node(&mut self) -> Node {
        let n = self.world.add_node();
        Node {
            ns: n.ns.path(),
            name: n.ns.name().to_string(),
            ip: n.ip,
        }
    }

    fn pod(&mut self) -> Result<PodNs, Error> {
        self.next_pod += 1;
        PodNs::create(&format!("fb{}-{}", std::process::id(), self.next_pod))
    }

    fn attachment(&mut self, s: Suite, netns: &Path) -> Attachment {
        let n = &mut self.next_id[idx(s)];
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
    fn participant(
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
            node_ip: node.ip,
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
    fn cycles(&mut self, p: &Participant, pod: &Path, n: usize) -> Result<Vec<CycleSample>, Error> {
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

    /// Peak RSS (KiB) of plugin `i` of `p`'s list during one ADD.
    fn rss(&mut self, p: &Participant, pod: &Path, i: usize) -> Result<u64, Error> {
        let att = self.attachment(p.suite, pod);
        let file = self.cfg.workdir.join(format!("rss-{}-{i}", p.suite.tag()));
        let chain = &p.chain;
        ns::in_netns(&p.node.ns, || -> Result<(), Error> {
            let add = chain.add_measuring(&att, Some((i, &file)))?;
            chain.del(&att, Some(&add.result))?;
            Ok(())
        })??;
        let text = std::fs::read_to_string(&file).map_err(|e| Error::io("reading", &file, e))?;
        parse_rss(&text).ok_or_else(|| Error::Other(format!("no RSS in time's output: {text}")))
    }

    /// One sequential workload, both suites, alternating.
    pub fn latency(&mut self, w: WorkloadId) -> (LatencyRow, Vec<RssRow>) {
        progress(&format!("workload {}", w.title()));
        let prm = self.cfg.params.clone();
        let mut parts: Vec<Option<(Participant, PodNs, Acc)>> = Vec::new();
        let mut outcome: [Outcome<ChainStats>; 2] = [Outcome::Skipped, Outcome::Skipped];
        let mut names: [Vec<String>; 2] = [Vec::new(), Vec::new()];
        for s in Suite::BOTH {
            match self.participant(s, w, w.key()) {
                Ok(p) => {
                    names[idx(s)] = p.chain.list.types();
                    match self.pod() {
                        Ok(pod) => parts.push(Some((p, pod, Acc::default()))),
                        Err(e) => {
                            outcome[idx(s)] = Outcome::Failed(e.to_string());
                            parts.push(None);
                        }
                    }
                }
                Err(o) => {
                    outcome[idx(s)] = relabel(o);
                    parts.push(None);
                }
            }
        }
        // names of lists that could not run (for the RSS rows)
        for s in Suite::BOTH {
            if names[idx(s)].is_empty() {
                names[idx(s)] = self.list_types(s, w);
            }
        }
        // warm-up
        for s in Suite::BOTH {
            let i = idx(s);
            let Some((p, pod, _)) = parts[i].take() else {
                continue;
            };
            match self.cycles(&p, pod.path(), prm.warmup) {
                Ok(_) => parts[i] = Some((p, pod, Acc::default())),
                Err(e) => outcome[i] = Outcome::Failed(format!("warm-up: {e}")),
            }
        }
        // A/B blocks
        let mut round = 0;
        loop {
            let pending = Suite::BOTH.iter().any(|s| {
                parts[idx(*s)]
                    .as_ref()
                    .is_some_and(|(_, _, a)| a.cycles() < prm.cycles)
            });
            if !pending {
                break;
            }
            for s in order(round) {
                let i = idx(s);
                let Some((p, pod, mut acc)) = parts[i].take() else {
                    continue;
                };
                let n = prm.block.min(prm.cycles.saturating_sub(acc.cycles()));
                if n == 0 {
                    parts[i] = Some((p, pod, acc));
                    continue;
                }
                match self.cycles(&p, pod.path(), n) {
                    Ok(samples) => {
                        for (a, d) in &samples {
                            acc.push(a, d);
                        }
                        parts[i] = Some((p, pod, acc));
                    }
                    Err(e) => outcome[i] = Outcome::Failed(e.to_string()),
                }
            }
            round += 1;
        }
        // figures, then peak RSS of each plugin process
        let nplugins = names[0].len().max(names[1].len());
        let mut rss: [Vec<Outcome<u64>>; 2] = [Vec::new(), Vec::new()];
        for s in Suite::BOTH {
            let i = idx(s);
            if let Some((p, pod, acc)) = parts[i].take() {
                let leftover = p.leases_left();
                outcome[i] = match acc.stats(p.chain.list.types(), leftover) {
                    Some(st) => Outcome::Done(st),
                    None => Outcome::Failed("no samples".into()),
                };
                for k in 0..p.chain.list.plugins.len() {
                    rss[i].push(match self.rss(&p, pod.path(), k) {
                        Ok(v) => Outcome::Done(v),
                        Err(e) => Outcome::Failed(e.to_string()),
                    });
                }
                self.graveyard.push(pod);
            }
        }
        let rss_rows = (0..nplugins)
            .map(|k| {
                let cell = |s: Suite| -> Outcome<u64> {
                    rss[idx(s)]
                        .get(k)
                        .cloned()
                        .unwrap_or_else(|| match &outcome[idx(s)] {
                            Outcome::Done(_) => Outcome::Failed("not measured".into()),
                            Outcome::NotBuilt(m) => Outcome::NotBuilt(m.clone()),
                            Outcome::NoEquivalent => Outcome::NoEquivalent,
                            Outcome::Failed(_) => Outcome::Failed("workload failed".into()),
                            Outcome::Skipped => Outcome::Skipped,
                        })
                };
                RssRow {
                    workload: w,
                    ours_plugin: names[0].get(k).cloned().unwrap_or_else(|| "–".into()),
                    ref_plugin: names[1].get(k).cloned().unwrap_or_else(|| "–".into()),
                    ours: cell(Suite::Ours),
                    reference: cell(Suite::Ref),
                }
            })
            .collect();
        let [ours, reference] = outcome;
        (
            LatencyRow {
                id: w,
                ours,
                reference,
            },
            rss_rows,
        )
    }

    fn list_types(&self, s: Suite, w: WorkloadId) -> Vec<String> {
        let setup = SuiteSetup {
            suite: s,
            data_dir: PathBuf::new(),
            node_name: String::new(),
            node_ip: IpAddr::from([0, 0, 0, 0]),
            node_list: PathBuf::new(),
        };
        workloads::conflist(w, &setup)
            .map(|l| l.types())
            .unwrap_or_default()
    }

    /// The parallel scenario.
    pub fn parallel(&mut self) -> ParallelRow {
        let prm = self.cfg.params.clone();
        progress(&format!(
            "parallel: {} ADDs at parallelism {}, {} round(s) per suite",
            prm.parallel_pods, prm.parallel_workers, prm.parallel_rounds
        ));
        let mut outcome: [Outcome<ParallelStats>; 2] = [Outcome::Skipped, Outcome::Skipped];
        let mut parts: Vec<Option<(Participant, Vec<PodNs>)>> = Vec::new();
        for s in Suite::BOTH {
            let p = match self.participant(s, WorkloadId::BridgeMasq, "parallel") {
                Ok(p) => p,
                Err(o) => {
                    outcome[idx(s)] = relabel(o);
                    parts.push(None);
                    continue;
                }
            };
            let pods: Result<Vec<PodNs>, Error> =
                (0..prm.parallel_pods + 1).map(|_| self.pod()).collect();
            let pods = match pods {
                Ok(v) => v,
                Err(e) => {
                    outcome[idx(s)] = Outcome::Failed(e.to_string());
                    parts.push(None);
                    continue;
                }
            };
            // warm-up: the bridge and the NAT state exist before the measured ADDs
            let warm = pods[prm.parallel_pods].path().to_path_buf();
            match self.cycles(&p, &warm, 1) {
                Ok(_) => parts.push(Some((p, pods))),
                Err(e) => {
                    outcome[idx(s)] = Outcome::Failed(format!("warm-up: {e}"));
                    parts.push(None);
                }
            }
        }
        let mut rounds: [Vec<RoundOut>; 2] = [Vec::new(), Vec::new()];
        for r in 0..prm.parallel_rounds {
            for s in order(r) {
                let i = idx(s);
                let Some((p, pods)) = parts[i].take() else {
                    continue;
                };
                match self.parallel_round(&p, &pods[..prm.parallel_pods], prm.parallel_workers) {
                    Ok(out) => {
                        rounds[i].push(out);
                        parts[i] = Some((p, pods));
                    }
                    Err(e) => outcome[i] = Outcome::Failed(e.to_string()),
                }
            }
        }
        for s in Suite::BOTH {
            let i = idx(s);
            if let Some((p, pods)) = parts[i].take() {
                self.graveyard.extend(pods);
                let rs = &rounds[i];
                let adds: Vec<Duration> = rs.iter().map(|r| r.add_wall).collect();
                let dels: Vec<Duration> = rs.iter().map(|r| r.del_wall).collect();
                outcome[i] = match (Summary::of(&adds), Summary::of(&dels)) {
                    (Some(add_wall), Some(del_wall)) => Outcome::Done(ParallelStats {
                        add_wall,
                        del_wall,
                        duplicates: rs.iter().map(|r| r.duplicates).sum(),
                        failures: rs.iter().map(|r| r.failures).sum(),
                        first_failure: rs.iter().find_map(|r| r.first_failure.clone()),
                        leftover_leases: p.leases_left(),
                    }),
                    _ => Outcome::Failed("no rounds".into()),
                };
            }
        }
        let [ours, reference] = outcome;
        ParallelRow {
            pods: prm.parallel_pods,
            workers: prm.parallel_workers,
            rounds: prm.parallel_rounds,
            ours,
            reference,
        }
    }

    fn parallel_round(
        &mut self,
        p: &Participant,
        pods: &[PodNs],
        workers: usize,
    ) -> Result<RoundOut, Error> {
        let atts: Vec<Attachment> = pods
            .iter()
            .map(|pod| self.attachment(p.suite, pod.path()))
            .collect();
        let chain = &p.chain;
        let (add_wall, added) = parallel_phase(&p.node.ns, atts.len(), workers, |i| {
            chain.add(&atts[i]).map(|r| r.result)
        })?;
        let ok: Vec<Value> = added
            .iter()
            .filter_map(|r| r.as_ref().ok().cloned())
            .collect();
        let dups = duplicates(&ok);
        let (del_wall, deleted) = parallel_phase(&p.node.ns, atts.len(), workers, |i| {
            chain.del(&atts[i], added[i].as_ref().ok())
        })?;
        let errors: Vec<String> = added
            .iter()
            .filter_map(|r| r.as_ref().err().cloned())
            .chain(deleted.iter().filter_map(|r| r.as_ref().err().cloned()))
            .collect();
        Ok(RoundOut {
            add_wall,
            del_wall,
            duplicates: dups,
            failures: errors.len(),
            first_failure: errors.into_iter().next(),
        })
    }

    /// The scale scenario.
    pub fn scale(&mut self) -> ScaleRow {
        let prm = self.cfg.params.clone();
        progress(&format!(
            "scale: cycles with {} and {} pods attached",
            prm.scale_small, prm.scale_large
        ));
        let mut outcome: [Outcome<ScaleStats>; 2] = [Outcome::Skipped, Outcome::Skipped];
        let mut st: Vec<Option<ScaleState>> = Vec::new();
        for s in Suite::BOTH {
            let state = self
                .participant(s, WorkloadId::BridgeMasq, "scale")
                .and_then(|p| {
                    let probe = self.pod().map_err(|e| Outcome::Failed(e.to_string()))?;
                    self.cycles(&p, probe.path(), 1)
                        .map_err(|e| Outcome::Failed(format!("warm-up: {e}")))?;
                    Ok(ScaleState {
                        p,
                        probe,
                        attached: Vec::new(),
                        fill: Duration::ZERO,
                        small: Vec::new(),
                        large: Vec::new(),
                    })
                });
            match state {
                Ok(x) => st.push(Some(x)),
                Err(o) => {
                    outcome[idx(s)] = relabel(o);
                    st.push(None);
                }
            }
        }
        let mut kernel: [Option<(Duration, Duration)>; 2] = [None, None];
        for (target, large) in [(prm.scale_small, false), (prm.scale_large, true)] {
            for s in Suite::BOTH {
                let i = idx(s);
                if let Some(mut x) = st[i].take() {
                    progress(&format!(
                        "scale: attaching {} background pods ({})",
                        target,
                        s.label()
                    ));
                    match self.fill(&mut x, target) {
                        Ok(()) => st[i] = Some(x),
                        Err(e) => outcome[i] = Outcome::Failed(format!("attaching pods: {e}")),
                    }
                }
            }
            let mut round = 0;
            loop {
                let pending = st.iter().flatten().any(|x| {
                    let v = if large { &x.large } else { &x.small };
                    v.len() < prm.scale_cycles
                });
                if !pending {
                    break;
                }
                for s in order(round) {
                    let i = idx(s);
                    let Some(mut x) = st[i].take() else {
                        continue;
                    };
                    let have = if large { x.large.len() } else { x.small.len() };
                    let n = 5.min(prm.scale_cycles.saturating_sub(have));
                    let probe = x.probe.path().to_path_buf();
                    match self.cycles(&x.p, &probe, n) {
                        Ok(samples) => {
                            let v = if large { &mut x.large } else { &mut x.small };
                            v.extend(samples.iter().map(|(a, d)| {
                                (a.iter().sum::<Duration>(), d.iter().sum::<Duration>())
                            }));
                            st[i] = Some(x);
                        }
                        Err(e) => outcome[i] = Outcome::Failed(e.to_string()),
                    }
                }
                round += 1;
            }
            // the kernel alone, on the first running suite's node
            if let Some(x) = st.iter().flatten().next() {
                let node = x.p.node.ns.clone();
                kernel[usize::from(large)] = self.bridge_veth_probe(&node).ok();
            }
        }
        for s in Suite::BOTH {
            let i = idx(s);
            if let Some(x) = st[i].take() {
                progress(&format!("scale: detaching the pods ({})", s.label()));
                outcome[i] = match self.drain(x) {
                    Ok(v) => Outcome::Done(v),
                    Err(e) => Outcome::Failed(e.to_string()),
                };
            }
        }
        let [ours, reference] = outcome;
        ScaleRow {
            small_pods: prm.scale_small,
            large_pods: prm.scale_large,
            ours,
            reference,
            kernel: match kernel {
                [Some(a), Some(b)] => Some([a, b]),
                _ => None,
            },
        }
    }

    /// The kernel's share of one cycle on the node's `cbr0`, the way any bridge plugin must
    /// do it: a veth pair into a pod, the pod end up with an address and a route, then the
    /// pair deleted. One pod at a time (10 of them, medians), each step an `ip -batch` minus
    /// an empty one, so each step also waits for what the previous ones left the kernel
    /// (the new port's link watch work holding rtnl, the pod's first multicast packets
    /// flooded to every port), as a plugin's next request does; the deletion also pays for
    /// the slowdown of the process that follows it.
    fn bridge_veth_probe(&mut self, node: &Path) -> Result<(Duration, Duration), Error> {
        const N: usize = 10;
        let pod = self.pod()?;
        let pod_name = pod
            .path()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let dir = batch_dir(&self.cfg.workdir.join("scale-probe"))?;
        let write = |name: String, lines: &[String]| write_batch(&dir, &name, lines);
        let empty = write("empty.batch".into(), &[])?;
        let mut steps = Vec::new();
        for i in 0..N {
            let add = write(
                format!("add{i}.batch"),
                &[format!(
                    "link add fbs{i} master cbr0 up type veth peer name eth{i} netns {pod_name}"
                )],
            )?;
            let conf = write(
                format!("conf{i}.batch"),
                &[
                    format!("link set eth{i} up"),
                    format!("addr add 192.0.2.{}/32 dev eth{i}", i + 1),
                    format!("route add 198.51.100.{}/32 dev eth{i}", i + 1),
                ],
            )?;
            let del = write(format!("del{i}.batch"), &[format!("link del fbs{i}")])?;
            steps.push((add, conf, del));
        }
        let pod_path = pod.path().to_path_buf();
        let r = ns::in_netns(node, || -> Result<(Duration, Duration), Error> {
            let run = |file: &str| -> Result<Duration, Error> {
                let base = timed(&["ip", "-batch", &empty])?;
                Ok(timed(&["ip", "-batch", file])?.saturating_sub(base))
            };
            let (mut adds, mut dels) = (Vec::new(), Vec::new());
            for (add, conf, del) in &steps {
                let created = run(add)?;
                let configured = ns::in_netns(&pod_path, || run(conf))??;
                adds.push(created + configured);
                // A deletion leaves work behind (RCU callbacks, run in softirq on whatever
                // runs next): a plugin's IPAM delegate starts right after it, so the probe
                // charges the next process start's slowdown to the deletion too.
                let base = timed(&["ip", "-batch", &empty])?;
                let deleted = timed(&["ip", "-batch", del])?.saturating_sub(base);
                let next = timed(&["ip", "-batch", &empty])?.saturating_sub(base);
                dels.push(deleted + next);
            }
            let none = || Error::Other("no samples".into());
            Ok((
                Summary::of(&adds).ok_or_else(none)?.median,
                Summary::of(&dels).ok_or_else(none)?.median,
            ))
        })?;
        self.graveyard.push(pod);
        r
    }

    /// Attaches background pods until `target` are attached.
    fn fill(&mut self, x: &mut ScaleState, target: usize) -> Result<(), Error> {
        while x.attached.len() < target {
            // in slices of 100, with progress: the reference slows down as pods accumulate
            let mut new = Vec::new();
            while x.attached.len() + new.len() < target && new.len() < 100 {
                let pod = self.pod()?;
                let att = self.attachment(x.p.suite, pod.path());
                new.push((pod, att));
            }
            let chain = &x.p.chain;
            let results = ns::in_netns(&x.p.node.ns, || {
                new.iter()
                    .map(|(_, att)| {
                        chain
                            .add(att)
                            .map(|r| (r.per_plugin.iter().sum::<Duration>(), r.result))
                    })
                    .collect::<Result<Vec<_>, Error>>()
            })??;
            for ((pod, att), (took, result)) in new.into_iter().zip(results) {
                x.fill += took;
                x.attached.push((pod, att, result));
            }
            if target > 100 {
                progress(&format!(
                    "scale: {} pods attached ({}), {} so far",
                    x.attached.len(),
                    x.p.suite.label(),
                    crate::report::fmt_s(x.fill)
                ));
            }
        }
        Ok(())
    }

    /// Detaches every background pod and summarises.
    fn drain(&mut self, x: ScaleState) -> Result<ScaleStats, Error> {
        let chain = &x.p.chain;
        let drain = ns::in_netns(&x.p.node.ns, || {
            x.attached
                .iter()
                .map(|(_, att, res)| {
                    chain
                        .del(att, Some(res))
                        .map(|d| d.iter().sum::<Duration>())
                })
                .sum::<Result<Duration, Error>>()
        })??;
        let leftover_leases = x.p.leases_left();
        // the namespaces go at the end of the run: destroying a thousand of them keeps the
        // kernel busy for a while, which must not overlap a measurement
        self.graveyard
            .extend(x.attached.into_iter().map(|(pod, _, _)| pod));
        let cycles = |v: &[(Duration, Duration)]| {
            let c: Vec<Duration> = v.iter().map(|(a, d)| *a + *d).collect();
            let a: Vec<Duration> = v.iter().map(|(a, _)| *a).collect();
            let d: Vec<Duration> = v.iter().map(|(_, d)| *d).collect();
            Some((
                Summary::of(&c)?,
                Summary::of(&a)?.median,
                Summary::of(&d)?.median,
            ))
        };
        match (cycles(&x.small), cycles(&x.large)) {
            (Some((small, small_add, small_del)), Some((large, large_add, large_del))) => {
                Ok(ScaleStats {
                    small,
                    large,
                    small_add,
                    small_del,
                    large_add,
                    large_del,
                    fill: x.fill,
                    drain,
                    leftover_leases,
                })
            }
            _ => Err(Error::Other("no samples".into())),
        }
    }

    /// The probe node and pod of the floor measurements, created on first use, with the
    /// `ip -batch` files and the nft set they use.
    fn probe(&mut self) -> Result<Probe, Error> {
        if let Some(p) = &self.probe {
            return Ok(p.clone());
        }
        let node = self.node();
        let pod = self.pod()?;
        let pod_name = pod
            .path()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let batch = if self.cfg.params.quick { 20 } else { 50 };
        let dir = batch_dir(&self.cfg.workdir.join("kernel-floor"))?;
        let write = |name: &str, lines: Vec<String>| write_batch(&dir, name, &lines);
        let probe = Probe {
            node: node.ns,
            batch,
            empty: write("empty.batch", Vec::new())?,
            add: write(
                "add.batch",
                (0..batch)
                    .map(|i| format!("link add fbv{i} type veth peer name eth{i} netns {pod_name}"))
                    .collect(),
            )?,
            del: write(
                "del.batch",
                (0..batch).map(|i| format!("link del fbv{i}")).collect(),
            )?,
        };
        ns::in_netns(&probe.node, || -> Result<(), Error> {
            timed(&["nft", "add table inet fbprobe"])?;
            timed(&["nft", "add set inet fbprobe s { type ipv4_addr ; }"])?;
            Ok(())
        })??;
        self.probe_pod = Some(pod);
        self.probe = Some(probe.clone());
        Ok(probe)
    }

    /// One slice of the floor measurements: `calls` rounds of `true`, `VERSION` of every
    /// binary (order rotated, suites alternating), and the kernel probes. The floor is
    /// measured in slices spread over the run, so it sees the same machine load as the
    /// workloads.
    pub fn floor_slice(&mut self, calls: usize) {
        let probe = match self.probe() {
            Ok(p) => p,
            Err(e) => {
                self.floor.error.get_or_insert(e.to_string());
                return;
            }
        };
        let ours_dir = self.cni_path(Suite::Ours);
        let ref_dir = self.cni_path(Suite::Ref);
        let truth = ["/bin/true", "/usr/bin/true"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists());
        let acc = &mut self.floor;
        let r = ns::in_netns(&probe.node, || -> Result<(), Error> {
            for c in 0..calls {
                let turn = acc.turn;
                acc.turn += 1;
                if let Some(t) = &truth {
                    acc.bare.push(exec::bare_exec(t)?);
                }
                for j in 0..PAIRS.len() {
                    // rotate the order of the binaries from one call to the next
                    let k = (j + turn) % PAIRS.len();
                    let (o, r) = PAIRS[k];
                    for s in order(turn) {
                        let (dir, name) = match s {
                            Suite::Ours => (&ours_dir, Some(o)),
                            Suite::Ref => (&ref_dir, r),
                        };
                        let Some(name) = name else { continue };
                        let bin = dir.join(name);
                        if !bin.exists() {
                            continue;
                        }
                        let slot = &mut acc.version[k][idx(s)];
                        if let Ok(v) = slot {
                            match exec::version_call(&bin, dir) {
                                Ok(d) => v.push(d),
                                Err(e) => *slot = Err(e.to_string()),
                            }
                        }
                    }
                }
                if c == 0 {
                    // veth pairs: one batch of creations and one of deletions per slice
                    let base = timed(&["ip", "-batch", &probe.empty])?;
                    let add = timed(&["ip", "-batch", &probe.add])?;
                    acc.veth_add
                        .push(add.saturating_sub(base) / probe.batch as u32);
                    let base = timed(&["ip", "-batch", &probe.empty])?;
                    let del = timed(&["ip", "-batch", &probe.del])?;
                    acc.veth_del
                        .push(del.saturating_sub(base) / probe.batch as u32);
                }
                if c < 10 {
                    acc.nft_list
                        .push(timed(&["nft", "list set inet fbprobe s"])?);
                    acc.nft_add
                        .push(timed(&["nft", "add element inet fbprobe s { 10.99.0.1 }"])?);
                    acc.nft_del.push(timed(&[
                        "nft",
                        "delete element inet fbprobe s { 10.99.0.1 }",
                    ])?);
                }
            }
            Ok(())
        });
        if let Err(e) = r.and_then(|x| x) {
            acc.error.get_or_insert(e.to_string());
        }
    }

    /// The floor figures from all slices.
    fn floor_results(&self) -> (Option<Summary>, Vec<FloorRow>, Outcome<KernelFloor>) {
        let acc = &self.floor;
        let ours_dir = self.cni_path(Suite::Ours);
        let ref_dir = self.cni_path(Suite::Ref);
        let rows = PAIRS
            .iter()
            .zip(&acc.version)
            .map(|((o, r), [ours, reference])| {
                let conv = |x: &Result<Vec<Duration>, String>, exists: bool| match x {
                    Ok(v) => match Summary::of(v) {
                        Some(s) => Outcome::Done(s),
                        None if exists => Outcome::Failed(
                            acc.error.clone().unwrap_or_else(|| "no samples".into()),
                        ),
                        None => Outcome::NotBuilt("not built".into()),
                    },
                    Err(e) => Outcome::Failed(e.clone()),
                };
                FloorRow {
                    ours_plugin: o.to_string(),
                    ref_plugin: r.unwrap_or("–").to_string(),
                    ours: conv(ours, ours_dir.join(o).exists()),
                    reference: match r {
                        Some(r) => conv(reference, ref_dir.join(r).exists()),
                        None => Outcome::NoEquivalent,
                    },
                }
            })
            .collect();
        let kernel = match (
            Summary::of(&acc.veth_add),
            Summary::of(&acc.veth_del),
            Summary::of(&acc.nft_list),
            Summary::of(&acc.nft_add),
            Summary::of(&acc.nft_del),
        ) {
            (Some(va), Some(vd), Some(nl), Some(na), Some(nd)) => Outcome::Done(KernelFloor {
                batch: self.probe.as_ref().map_or(0, |p| p.batch),
                veth_add: va.median,
                veth_del: vd.median,
                nft_list: nl,
                nft_add: na,
                nft_del: nd,
            }),
            _ => Outcome::Failed(acc.error.clone().unwrap_or_else(|| "no samples".into())),
        };
        (Summary::of(&acc.bare), rows, kernel)
    }

    /// Stripped sizes of both suites' binaries.
    pub fn sizes(&self) -> Vec<SizeRow> {
        let strip_dir = self.cfg.workdir.join("stripped");
        let _ = std::fs::create_dir_all(&strip_dir);
        let size = |s: Suite, name: &str| -> Outcome<u64> {
            let bin = self.cni_path(s).join(name);
            if !bin.exists() {
                return match s {
                    Suite::Ours => Outcome::NotBuilt(format!("{name} not built")),
                    Suite::Ref => Outcome::Failed(format!("{} missing", bin.display())),
                };
            }
            let out = strip_dir.join(format!("{}-{name}", s.tag()));
            let stripped = std::process::Command::new("strip")
                .arg("-s")
                .arg("-o")
                .arg(&out)
                .arg(&bin)
                .output()
                .is_ok_and(|o| o.status.success());
            let measured = if stripped { out } else { bin };
            match std::fs::metadata(&measured) {
                Ok(m) => Outcome::Done(m.len()),
                Err(e) => Outcome::Failed(e.to_string()),
            }
        };
        PAIRS
            .iter()
            .map(|(o, r)| SizeRow {
                ours_plugin: o.to_string(),
                ref_plugin: r.unwrap_or("–").to_string(),
                ours: size(Suite::Ours, o),
                reference: r.map_or(Outcome::NoEquivalent, |r| size(Suite::Ref, r)),
            })
            .collect()
    }

    /// Runs everything configured.
    pub fn run_all(&mut self) -> Results {
        let parts = self.cfg.workloads.len()
            + usize::from(self.cfg.parallel)
            + usize::from(self.cfg.scale)
            + 1;
        let slice = self.cfg.params.floor_calls.div_ceil(parts);
        progress("floor: process start and kernel work, in slices between the workloads");
        self.floor_slice(slice);
        let mut latency = Vec::new();
        let mut rss = Vec::new();
        for w in self.cfg.workloads.clone() {
            let (row, r) = self.latency(w);
            latency.push(row);
            rss.extend(r);
            self.floor_slice(slice);
        }
        let parallel = self.cfg.parallel.then(|| self.parallel());
        if parallel.is_some() {
            self.floor_slice(slice);
        }
        let scale = self.cfg.scale.then(|| self.scale());
        if scale.is_some() {
            self.floor_slice(slice);
        }
        let (bare_exec, floor, kernel) = self.floor_results();
        let sizes = self.sizes();
        Results {
            kernel,
            latency,
            rss,
            parallel,
            scale,
            bare_exec,
            floor,
            sizes,
        }
    }
}

/// A participant's non-`Done` outcome, retyped.
fn relabel<A, B>(o: Outcome<A>) -> Outcome<B> {
    match o {
        Outcome::Done(_) | Outcome::Skipped => Outcome::Skipped,
        Outcome::NotBuilt(m) => Outcome::NotBuilt(m),
        Outcome::NoEquivalent => Outcome::NoEquivalent,
        Outcome::Failed(m) => Outcome::Failed(m),
    }
}

/// One parallel round of one suite.
#[derive(Debug)]
struct RoundOut {
    add_wall: Duration,
    del_wall: Duration,
    duplicates: usize,
    failures: usize,
    first_failure: Option<String>,
}

/// A suite during the scale scenario.
#[derive(Debug)]
struct ScaleState {
    p: Participant,
    probe: PodNs,
    attached: Vec<(PodNs, Attachment, Value)>,
    fill: Duration,
    /// (ADD, DEL) of each measured cycle.
    small: Vec<(Duration, Duration)>,
    large: Vec<(Duration, Duration)>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn abba_order() {
        assert_eq!(order(0), [Suite::Ours, Suite::Ref]);
        assert_eq!(order(1), [Suite::Ref, Suite::Ours]);
        assert_eq!(order(2), order(0));
    }

    #[test]
    fn duplicates_count_repeated_addresses() {
        let a = json!({"ips":[{"address":"10.0.0.2/24"}]});
        let b = json!({"ips":[{"address":"10.0.0.3/24"}]});
        assert_eq!(duplicates(&[a.clone(), b.clone()]), 0);
        assert_eq!(duplicates(&[a.clone(), b, a.clone(), a]), 2);
    }

    #[test]
    fn rss_from_gnu_time() {
        assert_eq!(parse_rss("4312\n"), Some(4312));
        assert_eq!(
            parse_rss("Command exited with non-zero status 1\n8120\n"),
            Some(8120)
        );
        assert_eq!(parse_rss(""), None);
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

    #[test]
    fn accumulated_samples_sum_per_cycle() {
        let ms = Duration::from_millis;
        let mut acc = Acc::default();
        acc.push(&[ms(2), ms(3)], &[ms(1), ms(1)]);
        acc.push(&[ms(4), ms(5)], &[ms(2), ms(2)]);
        acc.push(&[ms(6), ms(7)], &[ms(3), ms(3)]);
        assert_eq!(acc.cycles(), 3);
        let st = acc
            .stats(vec!["bridge".into(), "portmap".into()], 0)
            .unwrap();
        assert_eq!(st.add.median, ms(9));
        assert_eq!(st.del.median, ms(4));
        assert_eq!(st.cycle.median, ms(13));
        assert_eq!(st.add_per_plugin[1].median, ms(5));
        assert!(Acc::default().stats(vec![], 0).is_none());
    }
}
