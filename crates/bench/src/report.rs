//! The results of a run and their rendering: the Markdown report (`docs/benchmarks.md`) and
//! the console table, plus the targets of issue 7 judged against the figures. Pure: no I/O.

use std::fmt::Write as _;
use std::time::Duration;

use crate::stats::{ratio, Summary};
use crate::workloads::WorkloadId;

/// A figure of one suite: measured, or why it is missing.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome<T> {
    /// Measured.
    Done(T),
    /// Our binary does not exist (yet); the reason.
    NotBuilt(String),
    /// Nothing to compare with on this side.
    NoEquivalent,
    /// The run failed; the error.
    Failed(String),
    /// Not run (excluded on the command line).
    Skipped,
}

impl<T> Outcome<T> {
    /// The figure when measured.
    pub fn done(&self) -> Option<&T> {
        match self {
            Outcome::Done(t) => Some(t),
            _ => None,
        }
    }

    /// Short text for a table cell when there is no figure.
    fn missing(&self) -> &'static str {
        match self {
            Outcome::Done(_) => "",
            Outcome::NotBuilt(_) => "not built",
            Outcome::NoEquivalent => "n/a",
            Outcome::Failed(_) => "FAILED",
            Outcome::Skipped => "skipped",
        }
    }

    /// `f(figure)` or the missing text.
    fn cell(&self, f: impl FnOnce(&T) -> String) -> String {
        match self {
            Outcome::Done(t) => f(t),
            other => other.missing().to_string(),
        }
    }
}

/// Latencies of one suite on one sequential workload.
#[derive(Debug, Clone, PartialEq)]
pub struct ChainStats {
    /// The plugin types of the list, in order.
    pub plugins: Vec<String>,
    /// ADD of the whole list (sum of its plugin processes).
    pub add: Summary,
    /// DEL of the whole list.
    pub del: Summary,
    /// ADD + DEL.
    pub cycle: Summary,
    /// ADD per plugin process (a main plugin's figure includes its IPAM delegate).
    pub add_per_plugin: Vec<Summary>,
    /// DEL per plugin process.
    pub del_per_plugin: Vec<Summary>,
    /// Lease files left in the IPAM data directory after the last DEL (must be 0).
    pub leftover_leases: usize,
}

/// One sequential workload, both suites.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencyRow {
    /// The workload.
    pub id: WorkloadId,
    /// Ours.
    pub ours: Outcome<ChainStats>,
    /// The reference.
    pub reference: Outcome<ChainStats>,
}

/// The parallel run of one suite.
#[derive(Debug, Clone, PartialEq)]
pub struct ParallelStats {
    /// Wall time of the ADDs, over the rounds.
    pub add_wall: Summary,
    /// Wall time of the DELs, over the rounds.
    pub del_wall: Summary,
    /// Addresses handed out twice among concurrently attached pods, all rounds.
    pub duplicates: usize,
    /// Failed ADDs plus failed DELs, all rounds.
    pub failures: usize,
    /// The first failure, if any.
    pub first_failure: Option<String>,
    /// Lease files left after the last round (must be 0).
    pub leftover_leases: usize,
}

/// The parallel scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct ParallelRow {
    /// Pods per round.
    pub pods: usize,
    /// Concurrent runtime workers.
    pub workers: usize,
    /// Rounds per suite.
    pub rounds: usize,
    /// Ours.
    pub ours: Outcome<ParallelStats>,
    /// The reference.
    pub reference: Outcome<ParallelStats>,
}

/// The scale run of one suite.
#[derive(Debug, Clone, PartialEq)]
pub struct ScaleStats {
    /// ADD+DEL cycle with the small number of pods attached.
    pub small: Summary,
    /// ADD+DEL cycle with the large number of pods attached.
    pub large: Summary,
    /// Median ADD with the small number of pods attached.
    pub small_add: Duration,
    /// Median DEL with the small number attached.
    pub small_del: Duration,
    /// Median ADD with the large number attached.
    pub large_add: Duration,
    /// Median DEL with the large number attached.
    pub large_del: Duration,
    /// Time to attach the background pods (sequential ADDs, all of them).
    pub fill: Duration,
    /// Time to detach them again.
    pub drain: Duration,
    /// Lease files left at the end (must be 0).
    pub leftover_leases: usize,
}

/// The scale scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct ScaleRow {
    /// Pods attached in the small case.
    pub small_pods: usize,
    /// Pods attached in the large case.
    pub large_pods: usize,
    /// Ours.
    pub ours: Outcome<ScaleStats>,
    /// The reference.
    pub reference: Outcome<ScaleStats>,
    /// The kernel alone on the same node: (create, delete) of one veth pair on the bridge,
    /// per pair of an `ip -batch`, with the small and with the large number attached.
    pub kernel: Option<[(Duration, Duration); 2]>,
}

/// Peak RSS of one plugin process during an ADD.
#[derive(Debug, Clone, PartialEq)]
pub struct RssRow {
    /// The workload it ran in.
    pub workload: WorkloadId,
    /// Our plugin.
    pub ours_plugin: String,
    /// The reference's plugin (differs for flat).
    pub ref_plugin: String,
    /// Ours, KiB.
    pub ours: Outcome<u64>,
    /// The reference, KiB.
    pub reference: Outcome<u64>,
}

/// One figure of one of our binaries next to the reference's counterpart.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginPair<T> {
    /// Our plugin.
    pub ours_plugin: String,
    /// The reference's plugin.
    pub ref_plugin: String,
    /// Ours.
    pub ours: Outcome<T>,
    /// The reference.
    pub reference: Outcome<T>,
}

/// Size of one binary, bytes.
pub type SizeRow = PluginPair<u64>;

/// `VERSION` latency of one plugin binary: process start and a constant answer.
pub type FloorRow = PluginPair<Summary>;

/// Kernel costs that every implementation pays, measured with iproute2 and nft in a probe
/// node of the same run.
#[derive(Debug, Clone, PartialEq)]
pub struct KernelFloor {
    /// Operations per `ip -batch`.
    pub batch: usize,
    /// Creating one veth pair with its peer in a pod namespace (`ip -batch`, amortised).
    pub veth_add: Duration,
    /// Deleting one (its peer goes with it).
    pub veth_del: Duration,
    /// An `nft list set` process: process start and a read, no transaction.
    pub nft_list: Summary,
    /// An `nft add element` process: one transaction adding a set element.
    pub nft_add: Summary,
    /// An `nft delete element` process: one transaction removing a set element.
    pub nft_del: Summary,
}

impl KernelFloor {
    /// What removing one nftables object costs beyond the process and a read: the commit
    /// and, when the process closes its netlink socket, the wait for the deferred destroy
    /// work (an RCU grace period).
    pub fn nft_delete_extra(&self) -> Duration {
        self.nft_del.median.saturating_sub(self.nft_list.median)
    }
}

/// The least one ADD+DEL cycle of a workload can cost on this machine, whatever the
/// implementation: what it must do at minimum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FloorModel {
    /// Plugin processes per cycle (a main plugin and its IPAM delegate, on ADD and on DEL).
    pub processes: u32,
    /// veth pairs deleted per cycle.
    pub veth_deletions: u32,
    /// nftables removals per cycle whose wait cannot overlap a veth deletion's: those made
    /// by a process that deletes no veth (portmap's). A masquerade element removed by the
    /// process that also deletes the veth may share its grace period, so it is not counted:
    /// the floor stays a lower bound.
    pub nft_deletions: u32,
}

impl WorkloadId {
    /// The floor model of a workload's cycle.
    pub fn floor_model(self) -> FloorModel {
        let (processes, veth_deletions, nft_deletions) = match self {
            WorkloadId::HostLocal | WorkloadId::HostLocalTmpfs => (2, 0, 0),
            WorkloadId::BridgeMasq | WorkloadId::Flat | WorkloadId::Overlay => (4, 1, 0),
            WorkloadId::BridgePortmap => (6, 1, 1),
        };
        FloorModel {
            processes,
            veth_deletions,
            nft_deletions,
        }
    }
}

/// The machine.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Machine {
    /// CPU model.
    pub cpu: String,
    /// CPUs available to the run.
    pub cores: usize,
    /// Total memory.
    pub memory: String,
    /// Kernel release.
    pub kernel: String,
    /// Distribution and Debian version.
    pub os: String,
    /// Load average (1, 5, 15 min) when the run started.
    pub load_start: String,
    /// Load average when it ended.
    pub load_end: String,
}

/// Versions of everything measured or used.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Versions {
    /// `(component, version)` pairs, in display order.
    pub items: Vec<(String, String)>,
}

/// The parameters of the run.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    /// `--quick`.
    pub quick: bool,
    /// Measured cycles per suite and workload.
    pub cycles: usize,
    /// Cycles per A/B block.
    pub block: usize,
    /// Unmeasured warm-up cycles per suite and workload.
    pub warmup: usize,
    /// Pods of the parallel run.
    pub parallel_pods: usize,
    /// Workers of the parallel run.
    pub parallel_workers: usize,
    /// Rounds of the parallel run per suite.
    pub parallel_rounds: usize,
    /// Pods attached in the small scale case.
    pub scale_small: usize,
    /// Pods attached in the large scale case.
    pub scale_large: usize,
    /// Measured cycles per scale case and suite.
    pub scale_cycles: usize,
    /// VERSION calls per binary.
    pub floor_calls: usize,
    /// Where the host-local `dataDir`s were, with their file system.
    pub ipam_location: String,
}

/// Everything a run produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// When it started (UTC).
    pub started: String,
    /// Wall time of the whole run.
    pub elapsed: Duration,
    /// The machine.
    pub machine: Machine,
    /// Versions.
    pub versions: Versions,
    /// Parameters.
    pub params: Params,
    /// Sequential workloads.
    pub latency: Vec<LatencyRow>,
    /// Parallel scenario.
    pub parallel: Option<ParallelRow>,
    /// Scale scenario.
    pub scale: Option<ScaleRow>,
    /// Peak RSS.
    pub rss: Vec<RssRow>,
    /// Binary sizes.
    pub sizes: Vec<SizeRow>,
    /// Fork+exec+wait of `true`, no CNI at all.
    pub bare_exec: Option<Summary>,
    /// VERSION latencies.
    pub floor: Vec<FloorRow>,
    /// Kernel costs.
    pub kernel: Outcome<KernelFloor>,
}

/// Whether a target is met.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Met.
    Met,
    /// Not met.
    NotMet,
    /// Cannot be judged; why.
    NotEvaluated(String),
}

/// A target of issue 7 with the figure it is judged on.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// The target as the issue states it.
    pub text: &'static str,
    /// The measured figure.
    pub figure: String,
    /// Met or not.
    pub verdict: Verdict,
}

/// Peak RSS limit of the targets: 10 MB.
pub const RSS_LIMIT_BYTES: u64 = 10_000_000;

/// Milliseconds, with a precision that suits the magnitude.
pub fn fmt_ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.2}")
    } else if ms < 1000.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.0}")
    }
}

/// Seconds with one decimal.
pub fn fmt_s(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// A ratio `reference / ours` as `12.3×`.
pub fn fmt_ratio(r: Option<f64>) -> String {
    match r {
        Some(r) => format!("{r:.1}×"),
        None => "–".into(),
    }
}

/// A ratio with two decimals (`1.96×`), for the targets, where the rounding of
/// [`fmt_ratio`] could show a missed bound as met.
pub fn fmt_ratio2(r: Option<f64>) -> String {
    match r {
        Some(r) => format!("{r:.2}×"),
        None => "–".into(),
    }
}

/// KiB as MiB with one decimal.
pub fn fmt_kib(k: u64) -> String {
    format!("{:.1} MiB", k as f64 / 1024.0)
}

/// Bytes as MiB with two decimals.
pub fn fmt_bytes(b: u64) -> String {
    format!("{:.2} MiB", b as f64 / (1024.0 * 1024.0))
}

fn ratio_cell<T>(ours: &Outcome<T>, reference: &Outcome<T>, f: impl Fn(&T) -> Duration) -> String {
    match (ours.done(), reference.done()) {
        (Some(o), Some(r)) => fmt_ratio(ratio(f(r), f(o))),
        _ => "–".into(),
    }
}

/// A Markdown table with padded columns (readable on a console as well).
#[derive(Debug, Default)]
struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    /// Columns aligned right (numbers).
    right: Vec<bool>,
}

impl Table {
    fn new(header: &[&str], right: &[bool]) -> Table {
        Table {
            header: header.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
            right: right.to_vec(),
        }
    }

    fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    fn render(&self) -> String {
        let n = self.header.len();
        let mut width: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate().take(n) {
                width[i] = width[i].max(c.chars().count());
            }
        }
        let line = |cells: &[String]| {
            let mut s = String::from("|");
            for (i, w) in width.iter().enumerate() {
                let c = cells.get(i).map(String::as_str).unwrap_or("");
                let pad = w.saturating_sub(c.chars().count());
                if self.right.get(i).copied().unwrap_or(false) {
                    let _ = write!(s, " {}{} |", " ".repeat(pad), c);
                } else {
                    let _ = write!(s, " {}{} |", c, " ".repeat(pad));
                }
            }
            s.push('\n');
            s
        };
        let mut out = line(&self.header);
        out.push('|');
        for (i, w) in width.iter().enumerate() {
            if self.right.get(i).copied().unwrap_or(false) {
                let _ = write!(out, "{}:|", "-".repeat(w + 1));
            } else {
                let _ = write!(out, "{}|", "-".repeat(w + 2));
            }
        }
        out.push('\n');
        for r in &self.rows {
            out.push_str(&line(r));
        }
        out
    }
}

/// Picks one summary out of a workload's figures.
type Pick = fn(&ChainStats) -> Summary;

impl Report {
    fn workload(&self, id: WorkloadId) -> Option<&LatencyRow> {
        self.latency.iter().find(|r| r.id == id)
    }

    /// The process start used by the floors: the smallest median `VERSION` time of our
    /// binaries (the fastest-starting binaries measured).
    pub fn process_start(&self) -> Option<Duration> {
        self.floor
            .iter()
            .filter_map(|r| r.ours.done().map(|s| s.median))
            .min()
    }

    /// The least a cycle of `w` can cost on this machine (see [`FloorModel`]).
    pub fn cycle_floor(&self, w: WorkloadId) -> Option<Duration> {
        let m = w.floor_model();
        let start = self.process_start()?;
        let k = self.kernel.done();
        if k.is_none() && (m.veth_deletions > 0 || m.nft_deletions > 0) {
            return None;
        }
        let (veth, nft) = k.map_or((Duration::ZERO, Duration::ZERO), |k| {
            (k.veth_del, k.nft_delete_extra())
        });
        Some(start * m.processes + veth * m.veth_deletions + nft * m.nft_deletions)
    }

    /// The least an ADD+DEL cycle of the scale workload can cost with the small and with
    /// the large number of pods attached: its plugin processes and the kernel's veth
    /// creation (pod end up) and deletion measured on the same node at that size.
    pub fn scale_floor(&self) -> Option<[Duration; 2]> {
        let s = self.scale.as_ref()?;
        let [small, large] = s.kernel?;
        let procs = self.process_start()? * WorkloadId::BridgeMasq.floor_model().processes;
        Some([procs + small.0 + small.1, procs + large.0 + large.1])
    }

    /// The targets of issue 7, judged on this run's figures.
    pub fn targets(&self) -> Vec<Target> {
        let mut t = Vec::new();
        for (id, min, text) in [
            (
                WorkloadId::BridgeMasq,
                10.0,
                "bridge + host-local + masquerade full cycle at least 10× faster",
            ),
            (
                WorkloadId::BridgePortmap,
                15.0,
                "bridge + host-local + portmap full cycle at least 15× faster",
            ),
            (
                WorkloadId::HostLocal,
                2.0,
                "host-local alone at least 2× faster (full cycle)",
            ),
        ] {
            let mut tg = ratio_target(self.workload(id), min, text);
            if tg.verdict == Verdict::NotMet {
                let reference = self
                    .workload(id)
                    .and_then(|r| r.reference.done())
                    .map(|c| c.cycle.median);
                if let (Some(f), Some(r)) = (self.cycle_floor(id), reference) {
                    let _ = write!(
                        tg.figure,
                        "; floor on this machine {} ms, so at most {} is possible",
                        fmt_ms(f),
                        fmt_ratio(ratio(r, f))
                    );
                }
            }
            if id == WorkloadId::HostLocal {
                if let Some(r) = self.workload(WorkloadId::HostLocalTmpfs) {
                    if let (Some(o), Some(f)) = (r.ours.done(), r.reference.done()) {
                        let _ = write!(
                            tg.figure,
                            "; with the dataDir on tmpfs {} ({} ms vs {} ms)",
                            fmt_ratio2(ratio(f.cycle.median, o.cycle.median)),
                            fmt_ms(o.cycle.median),
                            fmt_ms(f.cycle.median)
                        );
                    }
                }
            }
            t.push(tg);
        }
        t.push(self.parallel_target());
        t.push(self.scale_target());
        t.push(self.rss_target());
        t
    }

    fn parallel_target(&self) -> Target {
        let text = "50 parallel ADDs: at least 5× less wall time, 0 duplicates";
        let Some(p) = &self.parallel else {
            return not_evaluated(text, "parallel run skipped");
        };
        match (&p.ours, &p.reference) {
            (Outcome::Done(o), Outcome::Done(r)) => {
                let x = ratio(r.add_wall.median, o.add_wall.median);
                let ok = x.is_some_and(|x| x >= 5.0) && o.duplicates == 0 && o.failures == 0;
                Target {
                    text,
                    figure: format!(
                        "{} ({} ms vs {} ms), {} duplicates, {} failures",
                        fmt_ratio2(x),
                        fmt_ms(o.add_wall.median),
                        fmt_ms(r.add_wall.median),
                        o.duplicates,
                        o.failures
                    ),
                    verdict: if ok { Verdict::Met } else { Verdict::NotMet },
                }
            }
            (o, r) => not_evaluated(text, &missing_sides(o, r)),
        }
    }

    fn scale_target(&self) -> Target {
        let text = "ADD+DEL at 1000 pods within 1.3× of the same at 10 pods";
        let Some(s) = &self.scale else {
            return not_evaluated(text, "scale run skipped");
        };
        match &s.ours {
            Outcome::Done(o) => {
                let growth = ratio(o.large.median, o.small.median);
                let mut figure = format!(
                    "{} ({} ms at {} pods, {} ms at {})",
                    growth.map_or("–".into(), |g| format!("{g:.2}×")),
                    fmt_ms(o.large.median),
                    s.large_pods,
                    fmt_ms(o.small.median),
                    s.small_pods
                );
                if s.large_pods < 1000 {
                    let _ = write!(figure, "; quick run: {} pods, not 1000", s.large_pods);
                }
                let met = growth.is_some_and(|g| g <= 1.3);
                if let (false, Some([small, large])) = (met, self.scale_floor()) {
                    let _ = write!(
                        figure,
                        "; the floor on this machine grows {} ({} → {} ms)",
                        ratio(large, small).map_or("–".into(), |g| format!("{g:.2}×")),
                        fmt_ms(small),
                        fmt_ms(large)
                    );
                }
                Target {
                    text,
                    figure,
                    verdict: if met { Verdict::Met } else { Verdict::NotMet },
                }
            }
            other => not_evaluated(text, &missing_sides(other, &Outcome::Done(()))),
        }
    }

    fn rss_target(&self) -> Target {
        let text = "peak RSS under 10 MB per plugin process";
        let measured: Vec<(&str, u64)> = self
            .rss
            .iter()
            .filter_map(|r| r.ours.done().map(|k| (r.ours_plugin.as_str(), *k)))
            .collect();
        let Some(&(worst_plugin, worst)) = measured.iter().max_by_key(|(_, k)| *k) else {
            return not_evaluated(text, "no RSS measured");
        };
        let missing: Vec<&str> = self
            .rss
            .iter()
            .filter(|r| r.ours.done().is_none())
            .map(|r| r.ours_plugin.as_str())
            .collect();
        let mut figure = format!("largest: {worst_plugin} {}", fmt_kib(worst));
        if !missing.is_empty() {
            let _ = write!(figure, "; not measured: {}", missing.join(", "));
        }
        Target {
            text,
            figure,
            verdict: if worst * 1024 < RSS_LIMIT_BYTES {
                Verdict::Met
            } else {
                Verdict::NotMet
            },
        }
    }

    /// The report as Markdown.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        s.push_str("# Benchmarks: ferro-cni and the reference plugins, side by side\n\n");
        let _ = writeln!(
            s,
            "Generated by `scripts/bench.sh` on {} (run time {}). Do not edit by hand: run \
             `scripts/bench.sh` (as root) to regenerate. How the plugins were profiled and where \
             the remaining time goes: [performance.md](performance.md).\n",
            self.started,
            fmt_s(self.elapsed)
        );
        if self.params.quick {
            s.push_str(
                "> **Quick run** (`--quick`): few cycles and a small scale case; the figures \
                 only show that the benchmark runs.\n\n",
            );
        }
        s.push_str("## Targets (issue 7)\n\n");
        s.push_str(&self.targets_table());
        s.push_str(&self.machine_section());
        s.push_str(&self.method_section());
        s.push_str("## Latency of one attachment\n\n");
        s.push_str(
            "Milliseconds per pod: ADD of the whole list, DEL of the whole list, and the full \
             cycle (ADD + DEL). Ratio = reference median / our median.\n\n",
        );
        s.push_str(&self.latency_table());
        for r in &self.latency {
            if let Some(note) = r.id.reference_note() {
                let _ = writeln!(s, "- {}: {note}.", r.id.title());
            }
        }
        s.push('\n');
        s.push_str("### Per plugin process (medians, ms)\n\n");
        s.push_str(
            "A main plugin's figure includes its IPAM delegate (a second process it starts).\n\n",
        );
        s.push_str(&self.per_plugin_table());
        s.push_str(&self.parallel_section());
        s.push_str(&self.scale_section());
        s.push_str(&self.cost_section());
        s.push_str(&self.floor_section());
        s.push_str(&self.problems_section());
        s
    }

    /// The console summary: targets and every figure, without the prose.
    pub fn console(&self) -> String {
        let mut s = String::new();
        s.push_str("latency (ms)\n");
        s.push_str(&self.latency_table());
        s.push_str(&self.parallel_section());
        s.push_str(&self.scale_section());
        s.push_str(&self.cost_section());
        s.push_str("\ntargets\n");
        s.push_str(&self.targets_table());
        s.push_str(&self.problems_section());
        s
    }

    fn targets_table(&self) -> String {
        let mut t = Table::new(&["target", "measured (ours vs reference)", "status"], &[]);
        for tg in self.targets() {
            let v = match &tg.verdict {
                Verdict::Met => "met".to_string(),
                Verdict::NotMet => "**not met**".to_string(),
                Verdict::NotEvaluated(why) => format!("not evaluated: {why}"),
            };
            t.row(vec![tg.text.to_string(), tg.figure, v]);
        }
        t.render() + "\n"
    }

    fn machine_section(&self) -> String {
        let m = &self.machine;
        let mut s = String::from("## Machine and versions\n\n");
        let _ = writeln!(s, "- CPU: {}, {} cores available", m.cpu, m.cores);
        let _ = writeln!(s, "- memory: {}", m.memory);
        let _ = writeln!(s, "- kernel: {}", m.kernel);
        let _ = writeln!(s, "- OS: {}", m.os);
        let _ = writeln!(
            s,
            "- load average (1/5/15 min) at start: {}, at end: {}. The machine may be shared \
             with other work; A/B alternation spreads that load over both suites.",
            m.load_start, m.load_end
        );
        s.push('\n');
        let mut t = Table::new(&["component", "version"], &[]);
        for (k, v) in &self.versions.items {
            t.row(vec![k.clone(), v.clone()]);
        }
        s.push_str(&t.render());
        s.push('\n');
        s
    }

    fn method_section(&self) -> String {
        let p = &self.params;
        let mut s = String::from("## Method\n\n");
        let lines = [
            "The driver (`crates/bench`, binary `ferro-bench`) acts as the runtime: for each \
             plugin of a configuration list it builds stdin as libcni does (the plugin's object \
             with `name` and `cniVersion` of the list, `prevResult`, and `runtimeConfig` for \
             declared capabilities), sets exactly `CNI_COMMAND`, `CNI_CONTAINERID`, `CNI_NETNS`, \
             `CNI_IFNAME`, `CNI_ARGS` (containerd's `IgnoreUnknown=1;K8S_POD_*`), `CNI_PATH` and \
             `PATH`, and runs the binary. ADD runs the list in order, each plugin getting the \
             previous result; DEL runs it in reverse with the final ADD result as `prevResult`. \
             `cniVersion` is 1.0.0, the newest the reference 1.1.1 speaks."
                .to_string(),
            "Each plugin process is timed with `std::time::Instant` from spawn to reaped exit \
             (stdin written, stdout and stderr read). The latency of a list is the sum of its \
             processes; the driver's own JSON work is not counted."
                .to_string(),
            "Plugins run on a simulated node: a network namespace with an uplink on a VNet \
             bridge (`ferro-testutil`'s topology). The driver's thread enters the node's \
             namespace and starts the plugin from there, so no `nsenter` or `ip netns exec` \
             sits in front of either suite. Pods are network namespaces created beforehand \
             (not timed). Each workload gets two fresh, identically built nodes, one per suite; \
             the two suites use the same lists (the bridge, its subnet and the host port \
             included), apart from the host-local `dataDir`."
                .to_string(),
            "Both suites' binaries are copied to the same tmpfs before the run, so they start \
             from the same file system. The whole run happens in a private mount namespace \
             with tmpfs over its scratch directory, `/run/netns`, `/var/lib/cni`, `/run/cni`, \
             `/etc/cni/net.d` and `/opt/cni/bin`; only namespaces created by the run are \
             changed."
                .to_string(),
            format!(
                "A/B alternation: per workload, {} unmeasured warm-up cycle(s) per suite, then \
                 blocks of {} cycles alternating ours/reference (ABBA order), until each suite \
                 has {} measured cycles. Each cycle is a new container id in the same pod \
                 namespace. Median and p95 (nearest rank) over those cycles.",
                p.warmup, p.block, p.cycles
            ),
            format!(
                "Parallel: bridge + host-local + masquerade, {} pods (each its own namespace), \
                 {} runtime workers each running whole ADD lists; wall time from the start \
                 barrier to the last worker's end; then the {} DELs the same way. {} round(s) \
                 per suite, alternating; duplicates = addresses present in more than one \
                 concurrent result.",
                p.parallel_pods, p.parallel_workers, p.parallel_pods, p.parallel_rounds
            ),
            format!(
                "Scale: bridge + host-local + masquerade; ADD+DEL cycle of one more pod with {} \
                 and then {} pods already attached (each in its own namespace), {} cycles per \
                 case and suite in alternating blocks.",
                p.scale_small, p.scale_large, p.scale_cycles
            ),
            format!(
                "host-local `dataDir`: {} — a node keeps leases in `/var/lib/cni/networks`, on \
                 its disk; the workload \"host-local alone, dataDir on tmpfs\" shows the same \
                 without a disk behind the writes (neither suite `fsync`s its leases).",
                p.ipam_location
            ),
            "Cost: peak RSS of each plugin process during one ADD (`/usr/bin/time -f %M` around \
             that process; the kernel reports the larger of the process and the children it \
             waited for, i.e. its IPAM delegate or the reference's `iptables`), and the size of \
             each binary after `strip -s` (ours: release profile, `strip = \"symbols\"`, linked \
             statically as `scripts/install.sh` builds them; Debian's are shipped stripped)."
                .to_string(),
            format!(
                "Floor: `VERSION` of each binary (about {} calls each; starting the process and \
                 printing a constant answer, the least any verb can cost), fork+exec of `true`, \
                 and the kernel work every implementation must do (`ip -batch` veth creation and \
                 deletion, `nft` set element add/delete) in a probe node; measured in slices \
                 before, between and after the scenarios, so under the same machine load.",
                p.floor_calls
            ),
        ];
        for l in lines {
            let _ = writeln!(s, "- {l}");
        }
        s.push('\n');
        s
    }

    fn latency_table(&self) -> String {
        let mut t = Table::new(
            &[
                "workload",
                "",
                "ours median",
                "ours p95",
                "ref median",
                "ref p95",
                "ratio",
            ],
            &[false, false, true, true, true, true, true],
        );
        for r in &self.latency {
            let verbs: [(&str, Pick); 3] = [
                ("ADD", |c| c.add),
                ("DEL", |c| c.del),
                ("cycle", |c| c.cycle),
            ];
            for (i, (verb, f)) in verbs.into_iter().enumerate() {
                t.row(vec![
                    if i == 0 {
                        r.id.title().to_string()
                    } else {
                        String::new()
                    },
                    verb.to_string(),
                    r.ours.cell(|c| fmt_ms(f(c).median)),
                    r.ours.cell(|c| fmt_ms(f(c).p95)),
                    r.reference.cell(|c| fmt_ms(f(c).median)),
                    r.reference.cell(|c| fmt_ms(f(c).p95)),
                    ratio_cell(&r.ours, &r.reference, |c| f(c).median),
                ]);
            }
        }
        t.render() + "\n"
    }

    fn per_plugin_table(&self) -> String {
        let mut t = Table::new(
            &[
                "workload",
                "plugin (ours / ref)",
                "ours ADD",
                "ref ADD",
                "ours DEL",
                "ref DEL",
            ],
            &[false, false, true, true, true, true],
        );
        for r in &self.latency {
            let n = r
                .ours
                .done()
                .map(|c| c.plugins.len())
                .or(r.reference.done().map(|c| c.plugins.len()))
                .unwrap_or(0);
            for i in 0..n {
                let name = |o: &Outcome<ChainStats>| {
                    o.done()
                        .and_then(|c| c.plugins.get(i).cloned())
                        .unwrap_or_else(|| "–".into())
                };
                let plugin = match (r.ours.done(), r.reference.done()) {
                    (Some(_), Some(_)) if name(&r.ours) != name(&r.reference) => {
                        format!("{} / {}", name(&r.ours), name(&r.reference))
                    }
                    (Some(_), _) => name(&r.ours),
                    _ => name(&r.reference),
                };
                let cell = |o: &Outcome<ChainStats>, add: bool| {
                    o.cell(|c| {
                        let v = if add {
                            &c.add_per_plugin
                        } else {
                            &c.del_per_plugin
                        };
                        v.get(i)
                            .map(|s| fmt_ms(s.median))
                            .unwrap_or_else(|| "–".into())
                    })
                };
                t.row(vec![
                    if i == 0 {
                        r.id.title().to_string()
                    } else {
                        String::new()
                    },
                    plugin,
                    cell(&r.ours, true),
                    cell(&r.reference, true),
                    cell(&r.ours, false),
                    cell(&r.reference, false),
                ]);
            }
        }
        t.render() + "\n"
    }

    fn parallel_section(&self) -> String {
        let Some(p) = &self.parallel else {
            return String::new();
        };
        let mut s = format!(
            "## Parallel: {} ADDs at parallelism {}, then {} DELs\n\n",
            p.pods, p.workers, p.pods
        );
        let mut t = Table::new(
            &["", "ours", "reference", "ratio"],
            &[false, true, true, true],
        );
        t.row(vec![
            format!("{} ADDs, wall ms (median of rounds)", p.pods),
            p.ours.cell(|x| fmt_ms(x.add_wall.median)),
            p.reference.cell(|x| fmt_ms(x.add_wall.median)),
            ratio_cell(&p.ours, &p.reference, |x| x.add_wall.median),
        ]);
        t.row(vec![
            format!("{} DELs, wall ms (median of rounds)", p.pods),
            p.ours.cell(|x| fmt_ms(x.del_wall.median)),
            p.reference.cell(|x| fmt_ms(x.del_wall.median)),
            ratio_cell(&p.ours, &p.reference, |x| x.del_wall.median),
        ]);
        t.row(vec![
            "duplicate addresses".into(),
            p.ours.cell(|x| x.duplicates.to_string()),
            p.reference.cell(|x| x.duplicates.to_string()),
            String::new(),
        ]);
        t.row(vec![
            "failed ADD/DEL".into(),
            p.ours.cell(|x| x.failures.to_string()),
            p.reference.cell(|x| x.failures.to_string()),
            String::new(),
        ]);
        t.row(vec![
            "leases left after the DELs".into(),
            p.ours.cell(|x| x.leftover_leases.to_string()),
            p.reference.cell(|x| x.leftover_leases.to_string()),
            String::new(),
        ]);
        s.push_str(&t.render());
        s.push('\n');
        s
    }

    fn scale_section(&self) -> String {
        let Some(sc) = &self.scale else {
            return String::new();
        };
        let mut s = format!(
            "## Scale: ADD+DEL cycle with {} and with {} pods attached \
             (bridge + host-local + masquerade)\n\n",
            sc.small_pods, sc.large_pods
        );
        let mut t = Table::new(
            &[
                "pods attached",
                "ours ADD",
                "ours DEL",
                "ours cycle",
                "ours p95",
                "ref ADD",
                "ref DEL",
                "ref cycle",
                "ref p95",
                "ratio",
            ],
            &[false, true, true, true, true, true, true, true, true, true],
        );
        type Case = fn(&ScaleStats) -> (Summary, Duration, Duration);
        let cases: [(usize, Case); 2] = [
            (sc.small_pods, |x| (x.small, x.small_add, x.small_del)),
            (sc.large_pods, |x| (x.large, x.large_add, x.large_del)),
        ];
        for (n, f) in cases {
            t.row(vec![
                n.to_string(),
                sc.ours.cell(|x| fmt_ms(f(x).1)),
                sc.ours.cell(|x| fmt_ms(f(x).2)),
                sc.ours.cell(|x| fmt_ms(f(x).0.median)),
                sc.ours.cell(|x| fmt_ms(f(x).0.p95)),
                sc.reference.cell(|x| fmt_ms(f(x).1)),
                sc.reference.cell(|x| fmt_ms(f(x).2)),
                sc.reference.cell(|x| fmt_ms(f(x).0.median)),
                sc.reference.cell(|x| fmt_ms(f(x).0.p95)),
                ratio_cell(&sc.ours, &sc.reference, |x| f(x).0.median),
            ]);
        }
        let g = |a: Duration, b: Duration| fmt_ratio(ratio(a, b));
        t.row(vec![
            format!("growth {} / {}", sc.large_pods, sc.small_pods),
            sc.ours.cell(|x| g(x.large_add, x.small_add)),
            sc.ours.cell(|x| g(x.large_del, x.small_del)),
            sc.ours.cell(|x| g(x.large.median, x.small.median)),
            String::new(),
            sc.reference.cell(|x| g(x.large_add, x.small_add)),
            sc.reference.cell(|x| g(x.large_del, x.small_del)),
            sc.reference.cell(|x| g(x.large.median, x.small.median)),
            String::new(),
            String::new(),
        ]);
        s.push_str(&t.render());
        if let Some([small, large]) = sc.kernel {
            let _ = writeln!(
                s,
                "\nThe kernel alone on the same node, one pod at a time as a plugin does it (a \
                 veth pair on the bridge into a pod, the pod end up with an address and a route, \
                 then the pair deleted; each step an `ip -batch` less an empty one, the \
                 deletion with the slowdown it leaves to the next process start, medians of 10 \
                 pods): create {} ms at {} pods, {} ms at {}; delete {} ms and {} ms. A new \
                 bridge port costs more with more ports \
                 (the bridge walks its port list when a port joins or leaves, and the pod's \
                 first multicast packets are flooded to every port), and a deletion waits for \
                 RCU grace periods that take longer on a busier kernel.",
                fmt_ms(small.0),
                sc.small_pods,
                fmt_ms(large.0),
                sc.large_pods,
                fmt_ms(small.1),
                fmt_ms(large.1)
            );
        }
        if let (Some([fs, fl]), Outcome::Done(o)) = (self.scale_floor(), &sc.ours) {
            let _ = writeln!(
                s,
                "\nFloor of one cycle ({} plugin processes, each at least the smallest median \
                 VERSION time, plus that kernel work): {} ms at {} pods, {} ms at {}, a growth \
                 of {}. Ours is {} ms above the floor at {} pods and {} ms at {}: an \
                 implementation adding nothing to the kernel's work would still grow by the \
                 floor's factor.",
                WorkloadId::BridgeMasq.floor_model().processes,
                fmt_ms(fs),
                sc.small_pods,
                fmt_ms(fl),
                sc.large_pods,
                ratio(fl, fs).map_or("–".into(), |g| format!("{g:.2}×")),
                fmt_ms(o.small.median.saturating_sub(fs)),
                sc.small_pods,
                fmt_ms(o.large.median.saturating_sub(fl)),
                sc.large_pods,
            );
        }
        let _ = writeln!(
            s,
            "\nAttaching the {} background pods one by one took {} (ours) and {} (reference); \
             detaching them {} and {}. Leases left at the end: {} and {}.\n",
            sc.large_pods,
            sc.ours.cell(|x| fmt_s(x.fill)),
            sc.reference.cell(|x| fmt_s(x.fill)),
            sc.ours.cell(|x| fmt_s(x.drain)),
            sc.reference.cell(|x| fmt_s(x.drain)),
            sc.ours.cell(|x| x.leftover_leases.to_string()),
            sc.reference.cell(|x| x.leftover_leases.to_string()),
        );
        s
    }

    fn cost_section(&self) -> String {
        let mut s = String::from("## Cost\n\n### Peak RSS of one ADD, per plugin process\n\n");
        let mut t = Table::new(
            &[
                "plugin (ours / ref)",
                "in workload",
                "ours",
                "reference",
                "ratio",
            ],
            &[false, false, true, true, true],
        );
        for r in &self.rss {
            let plugin = if r.ours_plugin == r.ref_plugin {
                r.ours_plugin.clone()
            } else {
                format!("{} / {}", r.ours_plugin, r.ref_plugin)
            };
            let x = match (r.ours.done(), r.reference.done()) {
                (Some(&o), Some(&f)) if o > 0 => format!("{:.1}×", f as f64 / o as f64),
                _ => "–".into(),
            };
            t.row(vec![
                plugin,
                r.workload.key().to_string(),
                r.ours.cell(|k| fmt_kib(*k)),
                r.reference.cell(|k| fmt_kib(*k)),
                x,
            ]);
        }
        s.push_str(&t.render());
        s.push_str("\n### Binary size (stripped)\n\n");
        let mut t = Table::new(
            &["plugin (ours / ref)", "ours", "reference", "ratio"],
            &[false, true, true, true],
        );
        for r in &self.sizes {
            let plugin = if r.ours_plugin == r.ref_plugin {
                r.ours_plugin.clone()
            } else {
                format!("{} / {}", r.ours_plugin, r.ref_plugin)
            };
            let x = match (r.ours.done(), r.reference.done()) {
                (Some(&o), Some(&f)) if o > 0 => format!("{:.1}×", f as f64 / o as f64),
                _ => "–".into(),
            };
            t.row(vec![
                plugin,
                r.ours.cell(|b| fmt_bytes(*b)),
                r.reference.cell(|b| fmt_bytes(*b)),
                x,
            ]);
        }
        s.push_str(&t.render());
        s.push('\n');
        s
    }

    fn floor_section(&self) -> String {
        let mut s = String::from("## Floor: process start\n\n");
        if let Some(b) = &self.bare_exec {
            let _ = writeln!(
                s,
                "Fork, exec and reap of `true` (no CNI at all) from the driver: median {} ms, \
                 p95 {} ms.\n",
                fmt_ms(b.median),
                fmt_ms(b.p95)
            );
        }
        let mut t = Table::new(
            &[
                "VERSION of (ours / ref)",
                "ours median",
                "ours p95",
                "ref median",
                "ref p95",
                "ratio",
            ],
            &[false, true, true, true, true, true],
        );
        for r in &self.floor {
            let plugin = if r.ours_plugin == r.ref_plugin {
                r.ours_plugin.clone()
            } else {
                format!("{} / {}", r.ours_plugin, r.ref_plugin)
            };
            t.row(vec![
                plugin,
                r.ours.cell(|x| fmt_ms(x.median)),
                r.ours.cell(|x| fmt_ms(x.p95)),
                r.reference.cell(|x| fmt_ms(x.median)),
                r.reference.cell(|x| fmt_ms(x.p95)),
                ratio_cell(&r.ours, &r.reference, |x| x.median),
            ]);
        }
        s.push_str(&t.render());
        s.push_str(
            "\nA main plugin that delegates to IPAM starts two processes per verb, so twice the \
             VERSION figure is the floor of its ADD or DEL; the rest is kernel work (netlink, \
             nftables) and file I/O (leases).\n\n",
        );
        s.push_str(&self.kernel_section());
        s
    }

    fn kernel_section(&self) -> String {
        let mut s = String::from(
            "### Kernel work every implementation pays

",
        );
        match &self.kernel {
            Outcome::Done(k) => {
                let mut t = Table::new(&["operation", "median ms", "p95 ms"], &[false, true, true]);
                t.row(vec![
                    format!(
                        "create a veth pair into a pod (`ip -batch` of {}, per pair)",
                        k.batch
                    ),
                    fmt_ms(k.veth_add),
                    String::new(),
                ]);
                t.row(vec![
                    format!("delete a veth pair (`ip -batch` of {}, per pair)", k.batch),
                    fmt_ms(k.veth_del),
                    String::new(),
                ]);
                for (what, x) in [
                    ("`nft list set` process (no transaction)", &k.nft_list),
                    ("`nft add element` process", &k.nft_add),
                    ("`nft delete element` process", &k.nft_del),
                ] {
                    t.row(vec![what.to_string(), fmt_ms(x.median), fmt_ms(x.p95)]);
                }
                s.push_str(&t.render());
                let _ = writeln!(
                    s,
                    "\nDeleting a veth waits in the kernel for RCU grace periods \
                     (`unregister_netdevice`). Removing an nftables object is freed after a grace \
                     period too, and the process that committed it waits for that when it closes \
                     its netlink socket (`nft delete element` − `nft list set` = {} ms). Both \
                     suites pay these on every DEL.\n",
                    fmt_ms(k.nft_delete_extra())
                );
            }
            other => {
                let _ = writeln!(s, "Not measured: {}.\n", other.missing());
            }
        }
        let mut t = Table::new(
            &[
                "workload",
                "processes",
                "veth del",
                "nft del (own process)",
                "floor ms",
                "ours ms",
                "ours above floor",
                "ref ms",
                "best possible ratio",
            ],
            &[false, true, true, true, true, true, true, true, true],
        );
        for r in &self.latency {
            let m = r.id.floor_model();
            let floor = self.cycle_floor(r.id);
            t.row(vec![
                r.id.title().to_string(),
                m.processes.to_string(),
                m.veth_deletions.to_string(),
                m.nft_deletions.to_string(),
                floor.map_or("–".into(), fmt_ms),
                r.ours.cell(|c| fmt_ms(c.cycle.median)),
                match (floor, r.ours.done()) {
                    (Some(f), Some(c)) if c.cycle.median >= f => fmt_ms(c.cycle.median - f),
                    (Some(_), Some(_)) => "0".into(),
                    _ => "–".into(),
                },
                r.reference.cell(|c| fmt_ms(c.cycle.median)),
                match (floor, r.reference.done()) {
                    (Some(f), Some(c)) => fmt_ratio(ratio(c.cycle.median, f)),
                    _ => "–".into(),
                },
            ]);
        }
        s.push_str(
            "Floor of one ADD+DEL cycle on this machine for any implementation: its plugin \
             processes (each at least the smallest median VERSION time of ours), the veth \
             deletions, and the nftables removals made by a process that deletes no veth \
             (portmap's DEL; a masquerade element removed next to the veth deletion may share \
             its grace period, so it is left out and the floor stays a lower bound). The best \
             possible ratio is the reference's cycle over that floor.\n\n",
        );
        s.push_str(&t.render());
        s.push('\n');
        s
    }

    fn problems_section(&self) -> String {
        let mut items: Vec<String> = Vec::new();
        fn note(items: &mut Vec<String>, what: String, o_fail: Option<&str>) {
            if let Some(f) = o_fail {
                items.push(format!("{what}: {f}"));
            }
        }
        fn why<T>(o: &Outcome<T>) -> Option<&str> {
            match o {
                Outcome::Failed(e) | Outcome::NotBuilt(e) => Some(e.as_str()),
                _ => None,
            }
        }
        for r in &self.latency {
            note(&mut items, format!("{} (ours)", r.id.title()), why(&r.ours));
            note(
                &mut items,
                format!("{} (reference)", r.id.title()),
                why(&r.reference),
            );
            for (o, who) in [(&r.ours, "ours"), (&r.reference, "reference")] {
                if let Some(c) = o.done() {
                    if c.leftover_leases > 0 {
                        items.push(format!(
                            "{} ({who}): {} lease(s) left after DEL",
                            r.id.title(),
                            c.leftover_leases
                        ));
                    }
                }
            }
        }
        if let Some(p) = &self.parallel {
            note(&mut items, "parallel (ours)".into(), why(&p.ours));
            note(&mut items, "parallel (reference)".into(), why(&p.reference));
            for (o, who) in [(&p.ours, "ours"), (&p.reference, "reference")] {
                if let Some(f) = o.done().and_then(|x| x.first_failure.as_deref()) {
                    items.push(format!("parallel ({who}), first failure: {f}"));
                }
            }
        }
        if let Some(sc) = &self.scale {
            note(&mut items, "scale (ours)".into(), why(&sc.ours));
            note(&mut items, "scale (reference)".into(), why(&sc.reference));
        }
        for r in &self.rss {
            note(
                &mut items,
                format!("peak RSS of {} (ours)", r.ours_plugin),
                why(&r.ours),
            );
            note(
                &mut items,
                format!("peak RSS of {} (reference)", r.ref_plugin),
                why(&r.reference),
            );
        }
        if items.is_empty() {
            return String::new();
        }
        let mut s = String::from("## Failures and missing figures\n\n");
        items.dedup();
        for i in items {
            let _ = writeln!(s, "- {}", i.replace('\n', " "));
        }
        s.push('\n');
        s
    }

    /// True when some figure failed (not merely missing because not built or skipped).
    pub fn has_failures(&self) -> bool {
        fn failed<T>(o: &Outcome<T>) -> bool {
            matches!(o, Outcome::Failed(_))
        }
        self.latency
            .iter()
            .any(|r| failed(&r.ours) || failed(&r.reference))
            || self
                .parallel
                .as_ref()
                .is_some_and(|p| failed(&p.ours) || failed(&p.reference))
            || self
                .scale
                .as_ref()
                .is_some_and(|p| failed(&p.ours) || failed(&p.reference))
            || self
                .rss
                .iter()
                .any(|r| failed(&r.ours) || failed(&r.reference))
    }
}

/// Which side lacks a figure and why: `ours not built`, `reference failed`, or both.
fn missing_sides<A, B>(ours: &Outcome<A>, reference: &Outcome<B>) -> String {
    let word = |o: &'static str| if o == "FAILED" { "failed" } else { o };
    let mut v = Vec::new();
    if ours.done().is_none() {
        v.push(format!("ours {}", word(ours.missing())));
    }
    if reference.done().is_none() {
        v.push(format!("reference {}", word(reference.missing())));
    }
    v.join(", ")
}

fn not_evaluated(text: &'static str, why: &str) -> Target {
    Target {
        text,
        figure: "–".into(),
        verdict: Verdict::NotEvaluated(why.to_string()),
    }
}

fn ratio_target(row: Option<&LatencyRow>, min: f64, text: &'static str) -> Target {
    let Some(r) = row else {
        return not_evaluated(text, "workload skipped");
    };
    match (&r.ours, &r.reference) {
        (Outcome::Done(o), Outcome::Done(f)) => {
            let x = ratio(f.cycle.median, o.cycle.median);
            Target {
                text,
                figure: format!(
                    "{} ({} ms vs {} ms)",
                    fmt_ratio2(x),
                    fmt_ms(o.cycle.median),
                    fmt_ms(f.cycle.median)
                ),
                verdict: if x.is_some_and(|x| x >= min) {
                    Verdict::Met
                } else {
                    Verdict::NotMet
                },
            }
        }
        (o, f) => not_evaluated(text, &missing_sides(o, f)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    /// A summary with median `d` and p95 `1.5 d`.
    fn fig(d: Duration) -> Summary {
        Summary::of(&[d, d, d * 3 / 2]).unwrap()
    }

    fn chain(plugins: &[&str], add: u64, del: u64) -> ChainStats {
        ChainStats {
            plugins: plugins.iter().map(|s| s.to_string()).collect(),
            add: fig(ms(add)),
            del: fig(ms(del)),
            cycle: fig(ms(add + del)),
            add_per_plugin: plugins.iter().map(|_| fig(ms(add))).collect(),
            del_per_plugin: plugins.iter().map(|_| fig(ms(del))).collect(),
            leftover_leases: 0,
        }
    }

    fn sample(quick: bool) -> Report {
        let par = |add: u64| ParallelStats {
            add_wall: fig(ms(add)),
            del_wall: fig(ms(add * 2)),
            duplicates: 0,
            failures: 0,
            first_failure: None,
            leftover_leases: 0,
        };
        let scale = |small: u64, large: u64| ScaleStats {
            small: fig(ms(small)),
            large: fig(ms(large)),
            small_add: ms(small / 3),
            small_del: ms(small - small / 3),
            large_add: ms(large / 3),
            large_del: ms(large - large / 3),
            fill: Duration::from_secs(3),
            drain: Duration::from_secs(4),
            leftover_leases: 0,
        };
        Report {
            started: "2026-01-01 00:00 UTC".into(),
            elapsed: Duration::from_secs(60),
            machine: Machine {
                cpu: "Test CPU".into(),
                cores: 2,
                memory: "1.0 GiB".into(),
                kernel: "6.1.0".into(),
                os: "Debian GNU/Linux 12 (bookworm) (debian_version 12.11)".into(),
                load_start: "0.1 0.2 0.3".into(),
                load_end: "0.4 0.5 0.6".into(),
            },
            versions: Versions {
                items: vec![(
                    "containernetworking-plugins (reference)".into(),
                    "1.1.1".into(),
                )],
            },
            params: Params {
                quick,
                cycles: 200,
                block: 10,
                warmup: 3,
                parallel_pods: 50,
                parallel_workers: 8,
                parallel_rounds: 3,
                scale_small: 10,
                scale_large: if quick { 100 } else { 1000 },
                scale_cycles: 30,
                floor_calls: 200,
                ipam_location: "/x (ext4 on /dev/vda)".into(),
            },
            latency: vec![
                LatencyRow {
                    id: WorkloadId::HostLocal,
                    ours: Outcome::Done(chain(&["host-local"], 2, 2)),
                    reference: Outcome::Done(chain(&["host-local"], 5, 5)),
                },
                LatencyRow {
                    id: WorkloadId::BridgeMasq,
                    ours: Outcome::Done(chain(&["bridge"], 10, 20)),
                    reference: Outcome::Done(chain(&["bridge"], 100, 200)),
                },
                LatencyRow {
                    id: WorkloadId::BridgePortmap,
                    ours: Outcome::NotBuilt("portmap not built".into()),
                    reference: Outcome::Done(chain(&["bridge", "portmap"], 80, 150)),
                },
                LatencyRow {
                    id: WorkloadId::Flat,
                    ours: Outcome::Done(chain(&["flat"], 20, 40)),
                    reference: Outcome::Failed("ptp ADD failed (exit 1): boom".into()),
                },
                LatencyRow {
                    id: WorkloadId::Overlay,
                    ours: Outcome::Done(chain(&["overlay"], 20, 40)),
                    reference: Outcome::NoEquivalent,
                },
            ],
            parallel: Some(ParallelRow {
                pods: 50,
                workers: 8,
                rounds: 3,
                ours: Outcome::Done(par(400)),
                reference: Outcome::Done(par(1000)),
            }),
            scale: Some(ScaleRow {
                small_pods: 10,
                large_pods: if quick { 100 } else { 1000 },
                ours: Outcome::Done(scale(30, 33)),
                reference: Outcome::Done(scale(300, 900)),
                kernel: Some([(ms(1), ms(20)), (ms(2), ms(24))]),
            }),
            rss: vec![
                RssRow {
                    workload: WorkloadId::HostLocal,
                    ours_plugin: "host-local".into(),
                    ref_plugin: "host-local".into(),
                    ours: Outcome::Done(2048),
                    reference: Outcome::Done(4096),
                },
                RssRow {
                    workload: WorkloadId::BridgePortmap,
                    ours_plugin: "portmap".into(),
                    ref_plugin: "portmap".into(),
                    ours: Outcome::NotBuilt("portmap not built".into()),
                    reference: Outcome::Done(5000),
                },
            ],
            sizes: vec![SizeRow {
                ours_plugin: "flat".into(),
                ref_plugin: "ptp".into(),
                ours: Outcome::Done(1 << 20),
                reference: Outcome::Done(3 << 20),
            }],
            bare_exec: Some(fig(ms(1))),
            floor: vec![FloorRow {
                ours_plugin: "bridge".into(),
                ref_plugin: "bridge".into(),
                ours: Outcome::Done(fig(ms(2))),
                reference: Outcome::Done(fig(ms(5))),
            }],
            kernel: Outcome::Done(KernelFloor {
                batch: 50,
                veth_add: ms(1),
                veth_del: ms(15),
                nft_list: fig(ms(3)),
                nft_add: fig(ms(4)),
                nft_del: fig(ms(13)),
            }),
        }
    }

    /// A quick run where much went wrong: parallel failed on one side, scale skipped, the
    /// kernel probes failed, leases left behind.
    fn degraded() -> Report {
        let mut r = sample(true);
        if let Outcome::Done(c) = &mut r.latency[0].ours {
            c.leftover_leases = 2;
        }
        r.parallel = Some(ParallelRow {
            pods: 50,
            workers: 8,
            rounds: 1,
            ours: Outcome::Done(ParallelStats {
                add_wall: fig(ms(300)),
                del_wall: fig(ms(500)),
                duplicates: 1,
                failures: 2,
                first_failure: Some("bridge ADD failed (exit 1):\nno address".into()),
                leftover_leases: 1,
            }),
            reference: Outcome::Failed("warm-up: bridge ADD failed".into()),
        });
        r.scale = None;
        r.rss[0].reference = Outcome::Failed("no RSS in time's output: ".into());
        r.bare_exec = None;
        r.kernel = Outcome::Failed("nft: not found".into());
        r
    }

    /// Compares `actual` with `testdata/<name>`; `FERRO_BLESS=1` rewrites the file.
    fn golden(name: &str, actual: &str) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata")
            .join(name);
        if std::env::var_os("FERRO_BLESS").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, actual).unwrap();
            return;
        }
        let expected = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (FERRO_BLESS=1 writes it)", path.display()));
        if expected != actual {
            let line = expected
                .lines()
                .zip(actual.lines())
                .position(|(a, b)| a != b)
                .unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
            panic!(
                "{} differs from line {}:\n--- expected\n{}\n--- actual\n{}",
                path.display(),
                line + 1,
                expected.lines().nth(line).unwrap_or("<end>"),
                actual.lines().nth(line).unwrap_or("<end>")
            );
        }
    }

    #[test]
    fn rendering_matches_the_golden_files() {
        golden("report-full.md", &sample(false).markdown());
        golden("console-full.txt", &sample(false).console());
        golden("report-degraded.md", &degraded().markdown());
        golden("console-degraded.txt", &degraded().console());
    }

    fn verdicts(r: &Report) -> Vec<Verdict> {
        r.targets().into_iter().map(|t| t.verdict).collect()
    }

    #[test]
    fn targets_are_judged_on_ratios_of_medians() {
        let r = sample(false);
        let t = r.targets();
        assert_eq!(t.len(), 6);
        // bridge+masq: 300 / 30 = 10.0× -> met (the bound is inclusive)
        assert_eq!(t[0].verdict, Verdict::Met);
        assert!(
            t[0].figure.starts_with("10.00× (30.0 ms vs 300.0 ms)"),
            "{}",
            t[0].figure
        );
        // portmap: ours not built -> not evaluated, saying why
        assert_eq!(t[1].verdict, Verdict::NotEvaluated("ours not built".into()));
        // host-local: 10 / 4 = 2.5× -> met
        assert_eq!(t[2].verdict, Verdict::Met);
        // parallel: 1000 / 400 = 2.5× -> not met
        assert_eq!(t[3].verdict, Verdict::NotMet);
        // scale: 33 / 30 = 1.1 -> met
        assert_eq!(t[4].verdict, Verdict::Met);
        // RSS: 2 MiB -> met, portmap listed as not measured
        assert_eq!(t[5].verdict, Verdict::Met);
        assert!(t[5].figure.contains("not measured: portmap"));
    }

    #[test]
    fn a_missed_ratio_names_the_floor() {
        let mut r = sample(false);
        r.latency[1].ours = Outcome::Done(chain(&["bridge"], 20, 40));
        let t = &r.targets()[0];
        assert_eq!(t.verdict, Verdict::NotMet);
        // floor = 4 processes x 2 ms + 15 ms veth = 23 ms -> 300/23 = 13.0×; the masquerade
        // element's removal may share the veth deletion's grace period: not counted
        assert_eq!(r.cycle_floor(WorkloadId::BridgeMasq), Some(ms(23)));
        assert!(
            t.figure
                .contains("floor on this machine 23.0 ms, so at most 13.0× is possible"),
            "{}",
            t.figure
        );
        // portmap removes its rules in a process of its own: 6 x 2 + 15 + (13 - 3) = 37 ms
        assert_eq!(r.cycle_floor(WorkloadId::BridgePortmap), Some(ms(37)));
        assert_eq!(r.cycle_floor(WorkloadId::HostLocal), Some(ms(4)));
        r.kernel = Outcome::Failed("x".into());
        assert_eq!(r.cycle_floor(WorkloadId::BridgeMasq), None);
        assert_eq!(r.cycle_floor(WorkloadId::HostLocal), Some(ms(4)));
    }

    #[test]
    fn host_local_target_also_shows_tmpfs() {
        let mut r = sample(false);
        r.latency.insert(
            1,
            LatencyRow {
                id: WorkloadId::HostLocalTmpfs,
                ours: Outcome::Done(chain(&["host-local"], 1, 1)),
                reference: Outcome::Done(chain(&["host-local"], 3, 3)),
            },
        );
        let t = &r.targets()[2];
        assert!(
            t.figure
                .ends_with("; with the dataDir on tmpfs 3.00× (2.00 ms vs 6.00 ms)"),
            "{}",
            t.figure
        );
    }

    #[test]
    fn scale_target_over_the_growth_of_our_cycle() {
        let mut r = sample(false);
        r.scale = Some(ScaleRow {
            small_pods: 10,
            large_pods: 1000,
            ours: Outcome::Done(ScaleStats {
                small: fig(ms(30)),
                large: fig(ms(40)),
                small_add: ms(10),
                small_del: ms(20),
                large_add: ms(10),
                large_del: ms(30),
                fill: Duration::ZERO,
                drain: Duration::ZERO,
                leftover_leases: 0,
            }),
            reference: Outcome::Skipped,
            kernel: None,
        });
        assert_eq!(verdicts(&r)[4], Verdict::NotMet);
        assert!(r.targets()[4]
            .figure
            .starts_with("1.33× (40.0 ms at 1000 pods"));
        let quick = sample(true);
        assert!(quick.targets()[4].figure.contains("quick run: 100 pods"));
    }

    #[test]
    fn markdown_has_every_section_and_both_suites() {
        let md = sample(false).markdown();
        for h in [
            "# Benchmarks",
            "## Targets (issue 7)",
            "## Machine and versions",
            "## Method",
            "## Latency of one attachment",
            "### Per plugin process",
            "## Parallel: 50 ADDs at parallelism 8, then 50 DELs",
            "## Scale: ADD+DEL cycle with 10 and with 1000 pods attached",
            "create 1.00 ms at 10 pods, 2.00 ms at 1000; delete 20.0 ms and 24.0 ms",
            "### Peak RSS of one ADD",
            "### Binary size (stripped)",
            "## Floor: process start",
            "### Kernel work every implementation pays",
            "## Failures and missing figures",
        ] {
            assert!(md.contains(h), "missing {h}");
        }
        assert!(!md.contains("Quick run"));
        assert!(
            md.contains("| not built |"),
            "ours portmap shown as not built"
        );
        assert!(md.contains("| FAILED"), "the failed reference flat run");
        assert!(md.contains("ptp ADD failed (exit 1): boom"));
        assert!(
            md.contains("ptp + host-local + ipMasq"),
            "the analogue is named"
        );
        assert!(md.contains("no reference equivalent"));
        assert!(md.contains("Test CPU, 2 cores"));
        assert!(md.contains("/x (ext4 on /dev/vda)"));
        // flat/ptp size ratio 3.0×, RSS ratio 2.0×
        assert!(
            md.contains("| flat / ptp          | 1.00 MiB |  3.00 MiB |  3.0× |"),
            "{md}"
        );
        assert!(sample(true).markdown().contains("**Quick run**"));
    }

    #[test]
    fn tables_are_aligned() {
        let md = sample(false).markdown();
        let mut block: Vec<&str> = Vec::new();
        for line in md.lines().chain(std::iter::once("")) {
            if line.starts_with('|') {
                block.push(line);
            } else if !block.is_empty() {
                let w = block[0].chars().count();
                assert!(
                    block.iter().all(|l| l.chars().count() == w),
                    "misaligned table:\n{}",
                    block.join("\n")
                );
                block.clear();
            }
        }
    }

    #[test]
    fn console_has_figures_and_targets_without_prose() {
        let c = sample(false).console();
        assert!(c.contains("latency (ms)"));
        assert!(c.contains("targets"));
        assert!(!c.contains("## Method"));
    }

    #[test]
    fn failures_are_flagged_but_not_built_is_not_a_failure() {
        let mut r = sample(false);
        assert!(r.has_failures(), "the reference flat failed");
        r.latency[3].reference = Outcome::Done(chain(&["ptp"], 30, 60));
        assert!(!r.has_failures(), "not built and n/a are not failures");
    }

    #[test]
    fn number_formats() {
        assert_eq!(fmt_ms(Duration::from_micros(1234)), "1.23");
        assert_eq!(fmt_ms(Duration::from_micros(12345)), "12.3");
        assert_eq!(fmt_ms(Duration::from_millis(1234)), "1234");
        assert_eq!(fmt_ratio(Some(9.96)), "10.0×");
        assert_eq!(fmt_ratio(None), "–");
        assert_eq!(fmt_kib(2048), "2.0 MiB");
        assert_eq!(fmt_bytes(3 << 20), "3.00 MiB");
    }
}
