//! Parallel ADDs: a batch of pods attached by several runtime workers at once, then detached
//! the same way; wall time, duplicate addresses and failures ([`run`]).

pub mod run;

use minijinja::{context, Value};

use crate::outcome::{missing_sides, Outcome};
use crate::report::format::{fmt_ms, fmt_ratio2, ratio_cell};
use crate::report::table::Table;
use crate::report::target::{Target, Verdict};
use crate::report::{Report, Section};
use crate::stats::{ratio, Summary};

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

impl ParallelRow {
    fn table(&self) -> String {
        self.table_with(|_| {})
    }

    /// The table, with the rows `extra` adds (a scenario built on this one) between the
    /// wall times and the counts.
    pub(crate) fn table_with(&self, extra: impl FnOnce(&mut Table)) -> String {
        let (o, r) = (&self.ours, &self.reference);
        let mut t = Table::new(
            &["", "ours", "reference", "ratio"],
            &[false, true, true, true],
        );
        t.row(vec![
            format!("{} ADDs, wall ms (median of rounds)", self.pods),
            o.cell(|x| fmt_ms(x.add_wall.median)),
            r.cell(|x| fmt_ms(x.add_wall.median)),
            ratio_cell(o, r, |x| x.add_wall.median),
        ]);
        t.row(vec![
            format!("{} DELs, wall ms (median of rounds)", self.pods),
            o.cell(|x| fmt_ms(x.del_wall.median)),
            r.cell(|x| fmt_ms(x.del_wall.median)),
            ratio_cell(o, r, |x| x.del_wall.median),
        ]);
        extra(&mut t);
        type Count = fn(&ParallelStats) -> usize;
        let counts: [(&str, Count); 3] = [
            ("duplicate addresses", |x| x.duplicates),
            ("failed ADD/DEL", |x| x.failures),
            (
                "left after the DELs (leases; with an agent, addresses and links)",
                |x| x.leftover_leases,
            ),
        ];
        for (what, f) in counts {
            t.row(vec![
                what.into(),
                o.cell(|x| f(x).to_string()),
                r.cell(|x| f(x).to_string()),
                String::new(),
            ]);
        }
        t.render()
    }
}

/// The target on the parallel run.
const TARGET: &str = "50 parallel ADDs: at least 5× less wall time, 0 duplicates";

/// The scenario's figures: `None` when it did not run.
impl Section for Option<ParallelRow> {
    fn key(&self) -> &'static str {
        "parallel"
    }

    fn view(&self, _report: &Report) -> Value {
        let Some(p) = self else {
            return Value::from(());
        };
        context! {
            pods => p.pods,
            workers => p.workers,
            table => p.table(),
        }
    }

    fn targets(&self, _report: &Report) -> Vec<Target> {
        let Some(p) = self else {
            return vec![Target::not_evaluated(TARGET, "parallel run skipped")];
        };
        let (Some(o), Some(r)) = (p.ours.done(), p.reference.done()) else {
            return vec![Target::not_evaluated(
                TARGET,
                &missing_sides(&p.ours, &p.reference),
            )];
        };
        let x = ratio(r.add_wall.median, o.add_wall.median);
        let met = x.is_some_and(|x| x >= 5.0) && o.duplicates == 0 && o.failures == 0;
        vec![Target {
            text: TARGET,
            figure: format!(
                "{} ({} ms vs {} ms), {} duplicates, {} failures",
                fmt_ratio2(x),
                fmt_ms(o.add_wall.median),
                fmt_ms(r.add_wall.median),
                o.duplicates,
                o.failures
            ),
            verdict: Verdict::of(met),
        }]
    }

    fn problems(&self) -> Vec<String> {
        let Some(p) = self else {
            return Vec::new();
        };
        let sides = [(&p.ours, "ours"), (&p.reference, "reference")];
        let mut items: Vec<String> = sides
            .iter()
            .filter_map(|(o, who)| Some(format!("parallel ({who}): {}", o.why()?)))
            .collect();
        items.extend(sides.iter().filter_map(|(o, who)| {
            let f = o.done()?.first_failure.as_deref()?;
            Some(format!("parallel ({who}), first failure: {f}"))
        }));
        items
    }

    fn failed(&self) -> bool {
        self.as_ref()
            .is_some_and(|p| p.ours.failed() || p.reference.failed())
    }
}
