//! Scale: the ADD+DEL cycle of one more pod with few and with many pods already attached to
//! the node, and the kernel's own share of that cycle measured on the same node ([`run`]).

pub mod run;

use std::fmt::Write as _;
use std::time::Duration;

use minijinja::{context, Value};

use crate::outcome::{missing_sides, Outcome};
use crate::report::format::{fmt_ms, fmt_ratio, fmt_ratio2, fmt_s, ratio_cell};
use crate::report::table::Table;
use crate::report::target::{Target, Verdict};
use crate::report::{Report, Section};
use crate::stats::{ratio, Summary};
use crate::workloads::WorkloadId;

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

/// The target on the scale run.
const TARGET: &str = "ADD+DEL at 1000 pods within 1.3× of the same at 10 pods";

impl ScaleRow {
    /// The least an ADD+DEL cycle can cost with the small and with the large number of pods
    /// attached: its plugin processes, each at least `process_start`, and the kernel's veth
    /// creation (pod end up) and deletion measured on the same node at that size.
    pub fn floor(&self, process_start: Option<Duration>) -> Option<[Duration; 2]> {
        let [small, large] = self.kernel?;
        let procs = process_start? * WorkloadId::BridgeMasq.floor_model().processes;
        Some([procs + small.0 + small.1, procs + large.0 + large.1])
    }

    fn table(&self) -> String {
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
        let (o, r) = (&self.ours, &self.reference);
        type Case = fn(&ScaleStats) -> (Summary, Duration, Duration);
        let cases: [(usize, Case); 2] = [
            (self.small_pods, |x| (x.small, x.small_add, x.small_del)),
            (self.large_pods, |x| (x.large, x.large_add, x.large_del)),
        ];
        for (n, f) in cases {
            t.row(vec![
                n.to_string(),
                o.cell(|x| fmt_ms(f(x).1)),
                o.cell(|x| fmt_ms(f(x).2)),
                o.cell(|x| fmt_ms(f(x).0.median)),
                o.cell(|x| fmt_ms(f(x).0.p95)),
                r.cell(|x| fmt_ms(f(x).1)),
                r.cell(|x| fmt_ms(f(x).2)),
                r.cell(|x| fmt_ms(f(x).0.median)),
                r.cell(|x| fmt_ms(f(x).0.p95)),
                ratio_cell(o, r, |x| f(x).0.median),
            ]);
        }
        let g = |a: Duration, b: Duration| fmt_ratio(ratio(a, b));
        t.row(vec![
            format!("growth {} / {}", self.large_pods, self.small_pods),
            o.cell(|x| g(x.large_add, x.small_add)),
            o.cell(|x| g(x.large_del, x.small_del)),
            o.cell(|x| g(x.large.median, x.small.median)),
            String::new(),
            r.cell(|x| g(x.large_add, x.small_add)),
            r.cell(|x| g(x.large_del, x.small_del)),
            r.cell(|x| g(x.large.median, x.small.median)),
            String::new(),
            String::new(),
        ]);
        t.render()
    }

    /// `f` of each suite, for the prose.
    fn both(&self, f: impl Fn(&ScaleStats) -> String) -> Value {
        context! {
            ours => self.ours.cell(&f),
            reference => self.reference.cell(&f),
        }
    }
}

/// The scenario's figures: `None` when it did not run.
impl Section for Option<ScaleRow> {
    fn key(&self) -> &'static str {
        "scale"
    }

    fn view(&self, report: &Report) -> Value {
        let Some(s) = self else {
            return Value::from(());
        };
        let kernel = s.kernel.map(|[small, large]| {
            context! {
                small_create => fmt_ms(small.0),
                large_create => fmt_ms(large.0),
                small_delete => fmt_ms(small.1),
                large_delete => fmt_ms(large.1),
            }
        });
        let floor = match (s.floor(report.floor.process_start()), s.ours.done()) {
            (Some([fs, fl]), Some(o)) => Some(context! {
                processes => WorkloadId::BridgeMasq.floor_model().processes,
                small => fmt_ms(fs),
                large => fmt_ms(fl),
                growth => fmt_ratio2(ratio(fl, fs)),
                ours_above_small => fmt_ms(o.small.median.saturating_sub(fs)),
                ours_above_large => fmt_ms(o.large.median.saturating_sub(fl)),
            }),
            _ => None,
        };
        context! {
            small_pods => s.small_pods,
            large_pods => s.large_pods,
            table => s.table(),
            kernel,
            floor,
            fill => s.both(|x| fmt_s(x.fill)),
            drain => s.both(|x| fmt_s(x.drain)),
            leftover_leases => s.both(|x| x.leftover_leases.to_string()),
        }
    }

    fn targets(&self, report: &Report) -> Vec<Target> {
        let Some(s) = self else {
            return vec![Target::not_evaluated(TARGET, "scale run skipped")];
        };
        let Some(o) = s.ours.done() else {
            return vec![Target::not_evaluated(
                TARGET,
                &missing_sides(&s.ours, &Outcome::Done(())),
            )];
        };
        let growth = ratio(o.large.median, o.small.median);
        let mut figure = format!(
            "{} ({} ms at {} pods, {} ms at {})",
            fmt_ratio2(growth),
            fmt_ms(o.large.median),
            s.large_pods,
            fmt_ms(o.small.median),
            s.small_pods
        );
        if s.large_pods < 1000 {
            let _ = write!(figure, "; quick run: {} pods, not 1000", s.large_pods);
        }
        let met = growth.is_some_and(|g| g <= 1.3);
        if let (false, Some([small, large])) = (met, s.floor(report.floor.process_start())) {
            let _ = write!(
                figure,
                "; the floor on this machine grows {} ({} → {} ms)",
                fmt_ratio2(ratio(large, small)),
                fmt_ms(small),
                fmt_ms(large)
            );
        }
        vec![Target {
            text: TARGET,
            figure,
            verdict: Verdict::of(met),
        }]
    }

    fn problems(&self) -> Vec<String> {
        let Some(s) = self else {
            return Vec::new();
        };
        [(&s.ours, "ours"), (&s.reference, "reference")]
            .iter()
            .filter_map(|(o, who)| Some(format!("scale ({who}): {}", o.why()?)))
            .collect()
    }

    fn failed(&self) -> bool {
        self.as_ref()
            .is_some_and(|s| s.ours.failed() || s.reference.failed())
    }
}
