//! Floor: what any implementation pays on this machine. The start of a plugin process
//! (`VERSION` of each binary, fork+exec of `true`), the kernel work of a cycle (`ip -batch`
//! veth pairs, `nft` set elements), and from them the least a cycle of each workload can
//! cost. Measured in slices spread over the run ([`run`]).

pub mod run;

use std::time::Duration;

use minijinja::{context, Value};

use crate::outcome::{Outcome, PluginPair};
use crate::report::format::{fmt_ms, fmt_ratio, ratio_cell};
use crate::report::table::Table;
use crate::report::{Report, Section};
use crate::stats::{ratio, Summary};
use crate::workloads::WorkloadId;

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

/// The floor figures of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Floor {
    /// Fork+exec+wait of `true`, no CNI at all.
    pub bare_exec: Option<Summary>,
    /// `VERSION` of each binary, ours next to the reference's counterpart.
    pub version: Vec<FloorRow>,
    /// Kernel costs.
    pub kernel: Outcome<KernelFloor>,
}

impl Floor {
    /// The process start used by the floors: the smallest median `VERSION` time of our
    /// binaries (the fastest-starting binaries measured).
    pub fn process_start(&self) -> Option<Duration> {
        self.version
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

    fn version_table(&self) -> String {
        let mut t = Table::medians(&["VERSION of (ours / ref)"]);
        for r in &self.version {
            t.row(vec![
                r.label(),
                r.ours.cell(|x| fmt_ms(x.median)),
                r.ours.cell(|x| fmt_ms(x.p95)),
                r.reference.cell(|x| fmt_ms(x.median)),
                r.reference.cell(|x| fmt_ms(x.p95)),
                ratio_cell(&r.ours, &r.reference, |x| x.median),
            ]);
        }
        t.render()
    }

    fn kernel_table(k: &KernelFloor) -> String {
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
        t.render()
    }

    /// The floor of each workload's cycle that ran, next to both suites' cycles.
    fn cycle_table(&self, report: &Report) -> String {
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
        for r in &report.latency.rows {
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
        t.render()
    }
}

impl Section for Floor {
    fn key(&self) -> &'static str {
        "floor"
    }

    fn view(&self, report: &Report) -> Value {
        let bare_exec = self.bare_exec.map(|b| {
            context! { median => fmt_ms(b.median), p95 => fmt_ms(b.p95) }
        });
        let kernel = self.kernel.done().map(|k| {
            context! {
                table => Floor::kernel_table(k),
                nft_delete_extra => fmt_ms(k.nft_delete_extra()),
            }
        });
        context! {
            bare_exec,
            version_table => self.version_table(),
            kernel,
            kernel_missing => self.kernel.why().unwrap_or(self.kernel.missing()),
            cycle_table => self.cycle_table(report),
        }
    }
}
