//! bridge with a node agent: `cluster-ipam` answered in the bridge's own process, and DEL
//! leaving the veth pair to the agent, which deletes detached pairs in batches; against the
//! reference bridge + host-local, one attachment at a time and as a churn of
//! [`CHURN_PODS`] pods at the parallel scenario's parallelism ([`run`]).

pub mod run;

use minijinja::{context, Value};

use crate::outcome::{missing_sides, Outcome};
use crate::report::format::{fmt_ms, fmt_ratio2, ratio_cell};
use crate::report::table::Table;
use crate::report::target::{Target, Verdict};
use crate::report::{Report, Section};
use crate::scenario::parallel::{ParallelRow, ParallelStats};
use crate::stats::{ratio, Summary};

/// Pods of the churn.
pub const CHURN_PODS: usize = 110;

/// One suite's cycles.
#[derive(Debug, Clone, PartialEq)]
pub struct CycleStats {
    /// ADD of the list.
    pub add: Summary,
    /// DEL of the list.
    pub del: Summary,
    /// ADD + DEL.
    pub cycle: Summary,
    /// Ours: from DEL's return until the detached pair was gone.
    pub gone: Option<Summary>,
}

/// The scenario's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentBench {
    /// Ours, cycles.
    pub ours: Outcome<CycleStats>,
    /// The reference, cycles.
    pub reference: Outcome<CycleStats>,
    /// The churn, as the parallel scenario measures its rounds (ours' leftovers: addresses
    /// the agent still holds and detached links).
    pub churn: ParallelRow,
    /// Ours: from the last DEL's return until every detached pair was gone, per round.
    pub churn_gone: Option<Summary>,
}

/// The churn's wall time: ADDs and DELs.
fn wall(x: &ParallelStats) -> std::time::Duration {
    x.add_wall.median + x.del_wall.median
}

const TARGET_ADD: &str =
    "bridge + cluster-ipam with an agent: ADD at least 10× faster than bridge + host-local";
const TARGET_CYCLE: &str =
    "bridge + cluster-ipam with an agent: full cycle at least 10× faster than bridge + host-local";
const TARGET_CHURN: &str = "churn (110 pods at parallelism 8, added then deleted): at least 10× less wall time, 0 duplicates, 0 leftovers";

impl AgentBench {
    fn latency_table(&self) -> String {
        let (o, r) = (&self.ours, &self.reference);
        let mut t = Table::medians(&[""]);
        type Pick = fn(&CycleStats) -> Summary;
        let rows: [(&str, Pick); 3] = [
            ("ADD", |x| x.add),
            ("DEL", |x| x.del),
            ("cycle", |x| x.cycle),
        ];
        for (what, f) in rows {
            t.row(vec![
                what.into(),
                o.cell(|x| fmt_ms(f(x).median)),
                o.cell(|x| fmt_ms(f(x).p95)),
                r.cell(|x| fmt_ms(f(x).median)),
                r.cell(|x| fmt_ms(f(x).p95)),
                ratio_cell(o, r, |x| f(x).median),
            ]);
        }
        t.row(vec![
            "links gone, after DEL returned".into(),
            o.cell(|x| x.gone.map_or("–".into(), |g| fmt_ms(g.median))),
            o.cell(|x| x.gone.map_or("–".into(), |g| fmt_ms(g.p95))),
            "(in DEL)".into(),
            String::new(),
            String::new(),
        ]);
        t.render()
    }

    fn churn_table(&self) -> String {
        let (o, r) = (&self.churn.ours, &self.churn.reference);
        self.churn.table_with(|t| {
            t.row(vec![
                "ADDs + DELs, wall ms".into(),
                o.cell(|x| fmt_ms(wall(x))),
                r.cell(|x| fmt_ms(wall(x))),
                ratio_cell(o, r, wall),
            ]);
            t.row(vec![
                "links gone, ms after the last DEL (median of rounds)".into(),
                self.churn_gone.map_or("–".into(), |g| fmt_ms(g.median)),
                "(in DEL)".into(),
                String::new(),
            ]);
        })
    }
}

/// A 10× ratio target on both sides' figure `f`; `also` adds a figure of ours and whether
/// it is acceptable.
fn ratio_target<T>(
    text: &'static str,
    o: &Outcome<T>,
    r: &Outcome<T>,
    f: impl Fn(&T) -> std::time::Duration,
    also: impl Fn(&T) -> Option<(String, bool)>,
) -> Target {
    let (Some(ours), Some(reference)) = (o.done(), r.done()) else {
        return Target::not_evaluated(text, &missing_sides(o, r));
    };
    let x = ratio(f(reference), f(ours));
    let extra = also(ours);
    Target {
        text,
        figure: format!(
            "{} ({} ms vs {} ms){}",
            fmt_ratio2(x),
            fmt_ms(f(ours)),
            fmt_ms(f(reference)),
            extra
                .as_ref()
                .map_or(String::new(), |(e, _)| format!(", {e}"))
        ),
        verdict: Verdict::of(x.is_some_and(|x| x >= 10.0) && extra.is_none_or(|(_, ok)| ok)),
    }
}

/// The least an ADD with an agent can cost on this machine: one plugin process (the
/// smallest median `VERSION` of ours) and the kernel's creation of one pod's veth pair on the
/// bridge with its address and route (the scale part's measurement with 10 pods attached).
/// IPAM and the report cost a socket round trip each on top.
fn add_floor(report: &Report) -> Option<std::time::Duration> {
    let kernel = report.scale.as_ref()?.kernel?[0].0;
    Some(report.floor.process_start()? + kernel)
}

/// The scenario's figures: `None` when it did not run.
impl Section for Option<AgentBench> {
    fn key(&self) -> &'static str {
        "agent"
    }

    fn view(&self, _report: &Report) -> Value {
        let Some(a) = self else {
            return Value::from(());
        };
        context! {
            pods => a.churn.pods,
            workers => a.churn.workers,
            latency_table => a.latency_table(),
            churn_table => a.churn_table(),
            cycles => a.ours.cell(|x| x.add.n.to_string()),
        }
    }

    fn targets(&self, report: &Report) -> Vec<Target> {
        let Some(a) = self else {
            return [TARGET_ADD, TARGET_CYCLE, TARGET_CHURN]
                .iter()
                .map(|t| Target::not_evaluated(t, "agent scenario skipped"))
                .collect();
        };
        let floor = add_floor(report);
        vec![
            ratio_target(
                TARGET_ADD,
                &a.ours,
                &a.reference,
                |x| x.add.median,
                |_| {
                    let (floor, reference) = (floor?, a.reference.done()?.add.median);
                    Some((
                        format!(
                            "floor on this machine {} ms (one plugin process, the kernel creating one pod's veth pair with its address and route), so at most {} is possible",
                            fmt_ms(floor),
                            fmt_ratio2(ratio(reference, floor))
                        ),
                        true,
                    ))
                },
            ),
            ratio_target(
                TARGET_CYCLE,
                &a.ours,
                &a.reference,
                |x| x.cycle.median,
                |_| None,
            ),
            ratio_target(TARGET_CHURN, &a.churn.ours, &a.churn.reference, wall, |x| {
                Some((
                    format!(
                        "{} duplicates, {} leftovers, {} failures",
                        x.duplicates, x.leftover_leases, x.failures
                    ),
                    x.duplicates + x.leftover_leases + x.failures == 0,
                ))
            }),
        ]
    }

    fn problems(&self) -> Vec<String> {
        let Some(a) = self else {
            return Vec::new();
        };
        let mut items: Vec<String> = [
            (a.ours.why(), "ours"),
            (a.reference.why(), "reference"),
            (a.churn.ours.why(), "ours, churn"),
            (a.churn.reference.why(), "reference, churn"),
        ]
        .iter()
        .filter_map(|(w, who)| Some(format!("agent ({who}): {}", (*w)?)))
        .collect();
        items.extend(
            [(&a.churn.ours, "ours"), (&a.churn.reference, "reference")]
                .iter()
                .filter_map(|(o, who)| {
                    let f = o.done()?.first_failure.as_deref()?;
                    Some(format!("agent churn ({who}), first failure: {f}"))
                }),
        );
        items
    }

    fn failed(&self) -> bool {
        self.as_ref().is_some_and(|a| {
            a.ours.failed()
                || a.reference.failed()
                || a.churn.ours.failed()
                || a.churn.reference.failed()
        })
    }
}
