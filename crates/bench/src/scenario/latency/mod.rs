//! Latency of one attachment: each sequential workload's ADD, DEL and ADD+DEL cycle, both
//! suites alternating in blocks ([`run`]); the peak RSS of each plugin process is measured
//! on the way and reported with the costs ([`crate::scenario::cost`]).

pub mod run;

use std::fmt::Write as _;

use minijinja::{context, Value};

use crate::outcome::{missing_sides, Outcome};
use crate::report::format::{fmt_ms, fmt_ratio, fmt_ratio2, ratio_cell};
use crate::report::table::Table;
use crate::report::target::{Target, Verdict};
use crate::report::{Report, Section};
use crate::stats::{ratio, Summary};
use crate::workloads::WorkloadId;

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

/// The sequential workloads that ran, in report order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Latency {
    /// One row per workload.
    pub rows: Vec<LatencyRow>,
}

/// Picks one summary out of a workload's figures.
type Pick = fn(&ChainStats) -> Summary;

/// The ratio targets on workloads: (workload, least ratio of the cycle medians, text).
const TARGETS: [(WorkloadId, f64, &str); 3] = [
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
];

impl Latency {
    /// The row of workload `id`, when it ran.
    pub fn workload(&self, id: WorkloadId) -> Option<&LatencyRow> {
        self.rows.iter().find(|r| r.id == id)
    }

    /// ADD, DEL and cycle of every workload: medians, p95 and the ratio of the medians.
    pub fn table(&self) -> String {
        let mut t = Table::medians(&["workload", ""]);
        for r in &self.rows {
            let verbs: [(&str, Pick); 3] = [
                ("ADD", |c| c.add),
                ("DEL", |c| c.del),
                ("cycle", |c| c.cycle),
            ];
            for (i, (verb, f)) in verbs.into_iter().enumerate() {
                t.row(vec![
                    first_only(i, r.id.title()),
                    verb.to_string(),
                    r.ours.cell(|c| fmt_ms(f(c).median)),
                    r.ours.cell(|c| fmt_ms(f(c).p95)),
                    r.reference.cell(|c| fmt_ms(f(c).median)),
                    r.reference.cell(|c| fmt_ms(f(c).p95)),
                    ratio_cell(&r.ours, &r.reference, |c| f(c).median),
                ]);
            }
        }
        t.render()
    }

    /// The median ADD and DEL of each plugin process of each workload.
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
        for r in &self.rows {
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
                    first_only(i, r.id.title()),
                    plugin,
                    cell(&r.ours, true),
                    cell(&r.reference, true),
                    cell(&r.ours, false),
                    cell(&r.reference, false),
                ]);
            }
        }
        t.render()
    }

    /// The target on workload `id`: our cycle at least `min` times faster. When missed, the
    /// figure names the floor of the cycle on this machine and the best ratio it allows.
    fn ratio_target(
        &self,
        report: &Report,
        id: WorkloadId,
        min: f64,
        text: &'static str,
    ) -> Target {
        let Some(r) = self.workload(id) else {
            return Target::not_evaluated(text, "workload skipped");
        };
        let (Some(o), Some(f)) = (r.ours.done(), r.reference.done()) else {
            return Target::not_evaluated(text, &missing_sides(&r.ours, &r.reference));
        };
        let x = ratio(f.cycle.median, o.cycle.median);
        let met = x.is_some_and(|x| x >= min);
        let mut figure = format!(
            "{} ({} ms vs {} ms)",
            fmt_ratio2(x),
            fmt_ms(o.cycle.median),
            fmt_ms(f.cycle.median)
        );
        if let (false, Some(floor)) = (met, report.floor.cycle_floor(id)) {
            let _ = write!(
                figure,
                "; floor on this machine {} ms, so at most {} is possible",
                fmt_ms(floor),
                fmt_ratio(ratio(f.cycle.median, floor))
            );
        }
        Target {
            text,
            figure,
            verdict: Verdict::of(met),
        }
    }
}

/// `text` on the first line of a row group, empty on the others.
fn first_only(i: usize, text: &str) -> String {
    if i == 0 {
        text.to_string()
    } else {
        String::new()
    }
}

impl Section for Latency {
    fn key(&self) -> &'static str {
        "latency"
    }

    fn view(&self, _report: &Report) -> Value {
        let notes: Vec<Value> = self
            .rows
            .iter()
            .filter_map(|r| {
                let note = r.id.reference_note()?;
                Some(context! { workload => r.id.title(), note })
            })
            .collect();
        context! {
            table => self.table(),
            notes,
            per_plugin => self.per_plugin_table(),
        }
    }

    fn targets(&self, report: &Report) -> Vec<Target> {
        TARGETS
            .into_iter()
            .map(|(id, min, text)| {
                let mut tg = self.ratio_target(report, id, min, text);
                // host-local: the same with the leases on tmpfs, no disk behind the writes
                let tmpfs = self.workload(WorkloadId::HostLocalTmpfs);
                if let (WorkloadId::HostLocal, Some(r)) = (id, tmpfs) {
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
                tg
            })
            .collect()
    }

    fn problems(&self) -> Vec<String> {
        let mut items = Vec::new();
        for r in &self.rows {
            for (o, who) in [(&r.ours, "ours"), (&r.reference, "reference")] {
                if let Some(why) = o.why() {
                    items.push(format!("{} ({who}): {why}", r.id.title()));
                }
            }
            for (o, who) in [(&r.ours, "ours"), (&r.reference, "reference")] {
                if let Some(c) = o.done().filter(|c| c.leftover_leases > 0) {
                    items.push(format!(
                        "{} ({who}): {} lease(s) left after DEL",
                        r.id.title(),
                        c.leftover_leases
                    ));
                }
            }
        }
        items
    }

    fn failed(&self) -> bool {
        self.rows
            .iter()
            .any(|r| r.ours.failed() || r.reference.failed())
    }
}
