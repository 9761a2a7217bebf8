//! NetworkPolicy: what enforcing it costs the datapath, against no policy in the same run,
//! and how long the agent takes to program many policies ([`run`]).
//!
//! Two pods of one node (kubenet bridge, reported to the node's `ferro-agent`), measured in
//! three configurations, alternated round by round:
//! - **no policy**: the agent stopped and its table removed (the anchor);
//! - **0 policies**: the agent running with the cluster's pods known (the table's base chain
//!   and empty dispatch maps on every forwarded packet);
//! - **1,000 policies**: 1,000 policies isolating the server pod (and the client's egress),
//!   their peers selecting 10,000 pods of another node, so the sets hold 10,000 pods'
//!   addresses.
//!
//! Figures: TCP throughput (iperf3, one stream) and the rate of new TCP connections (one
//! client opening and resetting connections as fast as it can), each the median of the
//! rounds; the time from `cnictl apply` of the 1,000 policies to the node enforcing them,
//! and of one more change on top.

pub mod run;

use std::time::Duration;

use minijinja::{context, Value};

use crate::outcome::Outcome;
use crate::report::format::{fmt_ms, fmt_s};
use crate::report::table::Table;
use crate::report::target::{Target, Verdict};
use crate::report::{Report, Section};

/// One configuration's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyConfigRow {
    /// What was measured.
    pub label: String,
    /// TCP throughput, bits per second (median of the rounds).
    pub throughput: Outcome<f64>,
    /// New TCP connections per second (median of the rounds).
    pub conn_rate: Outcome<f64>,
}

/// The policy scenario's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyBench {
    /// Policies applied in the largest configuration.
    pub policies: usize,
    /// Pods of the other node whose addresses fill the sets.
    pub pods: usize,
    /// Rounds of the three configurations.
    pub rounds: usize,
    /// No policy (the anchor), 0 policies, 1,000 policies: the medians over the rounds.
    pub rows: Vec<PolicyConfigRow>,
    /// Each round's figures, in the same order.
    pub per_round: Vec<Round>,
    /// Elements of the node's sets and maps with the policies applied.
    pub elements: Outcome<usize>,
    /// `cnictl apply` of the policies answered (median of the rounds).
    pub apply_answered: Outcome<Duration>,
    /// The policies enforced on the node, from the start of the apply (median of rounds).
    pub apply_enforced: Outcome<Duration>,
    /// One more policy, with the others in place: enforced after (median of rounds).
    pub change_enforced: Outcome<Duration>,
}

impl PolicyBench {
    /// The scenario failed before it measured anything.
    pub fn failed(policies: usize, pods: usize, rounds: usize, why: &str) -> PolicyBench {
        let f = || Outcome::Failed(why.to_string());
        PolicyBench {
            policies,
            pods,
            rounds,
            rows: Vec::new(),
            per_round: Vec::new(),
            elements: Outcome::Failed(why.to_string()),
            apply_answered: f(),
            apply_enforced: f(),
            change_enforced: f(),
        }
    }

    fn table(&self) -> String {
        config_table(&self.rows, "vs no policy")
    }

    /// The worst ratio to the anchor of a figure over the policy configurations, each the
    /// median of its rounds' ratios ([`paired_ratio`]).
    fn worst(&self, pick: Pick) -> Option<f64> {
        (1..self.rows.len())
            .filter_map(|i| ratio(&self.per_round, &self.rows, i, pick))
            .reduce(f64::min)
    }
}

/// One round of a datapath comparison: `(throughput, connections/s)` of each configuration,
/// the anchor first (`None`: that measurement failed).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Round {
    /// The configurations' figures, in the order of the rows.
    pub figures: Vec<(Option<f64>, Option<f64>)>,
}

impl Round {
    /// A round of `n` configurations, none measured yet.
    pub fn unmeasured(n: usize) -> Round {
        Round {
            figures: vec![(None, None); n],
        }
    }
}

/// Which figure of a configuration: throughput or connection rate.
pub(crate) type Pick = fn(&(Option<f64>, Option<f64>)) -> Option<f64>;

/// The throughput of a configuration.
pub(crate) const THROUGHPUT: Pick = |f| f.0;

/// The connection rate of a configuration.
pub(crate) const CONN_RATE: Pick = |f| f.1;

/// Configuration `i` against the anchor (configuration 0) measured in the same round: the
/// median of the rounds' ratios. Rounds where either failed are left out; with none left,
/// `None`. A round's configurations are measured minutes apart at most, in an order that
/// alternates, so drift between rounds cancels out of each ratio.
pub(crate) fn paired_ratio(rounds: &[Round], i: usize, pick: Pick) -> Option<f64> {
    let mut v: Vec<f64> = rounds
        .iter()
        .filter_map(|r| {
            let a = r.figures.first().and_then(pick).filter(|a| *a > 0.0)?;
            Some(r.figures.get(i).and_then(pick)? / a)
        })
        .collect();
    run::median(&mut v)
}

/// [`paired_ratio`] over `rounds`; without any (a report from figures that kept no rounds),
/// the ratio of the rows' medians.
pub(crate) fn ratio(
    rounds: &[Round],
    rows: &[PolicyConfigRow],
    i: usize,
    pick: Pick,
) -> Option<f64> {
    if rounds.is_empty() {
        let medians = Round {
            figures: rows
                .iter()
                .map(|r| (r.throughput.done().copied(), r.conn_rate.done().copied()))
                .collect(),
        };
        return paired_ratio(&[medians], i, pick);
    }
    paired_ratio(rounds, i, pick)
}

/// Each round's ratios to the anchor: throughput, then connection rate, of each
/// configuration after the anchor (`names`, in order).
pub(crate) fn rounds_table(rounds: &[Round], names: &[&str]) -> String {
    let mut heads = vec!["round".to_string()];
    for what in ["throughput", "connections/s"] {
        for (k, n) in names.iter().enumerate() {
            heads.push(if k == 0 {
                format!("{what}: {n}")
            } else {
                n.to_string()
            });
        }
    }
    let heads: Vec<&str> = heads.iter().map(String::as_str).collect();
    let mut t = Table::new(&heads, &vec![true; heads.len()]);
    for (n, r) in rounds.iter().enumerate() {
        let mut row = vec![(n + 1).to_string()];
        for pick in [THROUGHPUT, CONN_RATE] {
            for i in 1..=names.len() {
                row.push(match paired_ratio(std::slice::from_ref(r), i, pick) {
                    Some(x) => format!("{x:.2}×"),
                    None => "–".to_string(),
                });
            }
        }
        t.row(row);
    }
    t.render()
}

/// The table of configurations: throughput and connection rate, each with its ratio to the
/// first row (the anchor), under the heading `vs`.
pub(crate) fn config_table(rows: &[PolicyConfigRow], vs: &str) -> String {
    let mut t = Table::new(
        &[
            "configuration",
            "TCP throughput",
            vs,
            "new connections/s",
            vs,
        ],
        &[false, true, true, true, true],
    );
    let anchor = rows.first();
    for r in rows {
        let ratio = |f: fn(&PolicyConfigRow) -> &Outcome<f64>| -> String {
            match (anchor.and_then(|a| f(a).done()), f(r).done()) {
                (Some(a), Some(v)) if *a > 0.0 => format!("{:.2}×", v / a),
                _ => "–".into(),
            }
        };
        t.row(vec![
            r.label.clone(),
            r.throughput.cell(|b| format!("{:.1} Gbit/s", b / 1e9)),
            ratio(|r| &r.throughput),
            r.conn_rate.cell(|c| format!("{c:.0}")),
            ratio(|r| &r.conn_rate),
        ]);
    }
    t.render()
}

/// The targets on the datapath cost (the ratio to no policy, worst configuration).
const TARGET_RATE: &str = "policy keeps >= 90% of the new-connection rate of no policy";
const TARGET_THROUGHPUT: &str = "policy keeps >= 95% of the TCP throughput of no policy";
const TARGET_APPLY: &str = "1,000 policies enforced within 10 s of the apply";

impl Section for Option<PolicyBench> {
    fn key(&self) -> &'static str {
        "policy"
    }

    fn view(&self, _report: &Report) -> Value {
        let Some(p) = self else {
            return Value::from(false);
        };
        context! {
            policies => p.policies,
            pods => p.pods,
            rounds => p.rounds,
            table => p.table(),
            rounds_table => rounds_table(&p.per_round, &["0 policies", &format!("{} policies", p.policies)]),
            elements => p.elements.cell(|e| e.to_string()),
            apply_answered => p.apply_answered.cell(|d| fmt_s(*d)),
            apply_enforced => p.apply_enforced.cell(|d| fmt_s(*d)),
            change_enforced => p.change_enforced.cell(|d| format!("{} ms", fmt_ms(*d))),
        }
    }

    fn targets(&self, _report: &Report) -> Vec<Target> {
        let Some(p) = self else {
            return Vec::new();
        };
        let ratio = |text: &'static str, worst: Option<f64>, min: f64| match worst {
            Some(w) => Target {
                text,
                figure: format!("worst: {w:.2}× of no policy"),
                verdict: Verdict::of(w >= min),
            },
            None => Target::not_evaluated(text, "not measured"),
        };
        vec![
            ratio(TARGET_RATE, p.worst(CONN_RATE), 0.90),
            ratio(TARGET_THROUGHPUT, p.worst(THROUGHPUT), 0.95),
            match p.apply_enforced.done() {
                Some(d) => Target {
                    text: TARGET_APPLY,
                    figure: fmt_s(*d),
                    verdict: Verdict::of(*d <= Duration::from_secs(10)),
                },
                None => Target::not_evaluated(TARGET_APPLY, "not measured"),
            },
        ]
    }

    fn problems(&self) -> Vec<String> {
        let Some(p) = self else {
            return Vec::new();
        };
        let mut out = Vec::new();
        // A run that failed before measuring gives every figure the same error: said once.
        let mut said: Vec<&str> = Vec::new();
        for (what, o) in [
            ("policy: apply", p.apply_enforced.why()),
            ("policy: one change", p.change_enforced.why()),
            ("policy: elements", p.elements.why()),
        ] {
            if let Some(w) = o.filter(|w| !said.contains(w)) {
                said.push(w);
                out.push(format!("{what}: {w}"));
            }
        }
        for r in &p.rows {
            for (what, o) in [("throughput", &r.throughput), ("connections", &r.conn_rate)] {
                if let Some(w) = o.why() {
                    out.push(format!("policy: {} {what}: {w}", r.label));
                }
            }
        }
        out
    }

    fn failed(&self) -> bool {
        self.as_ref().is_some_and(|p| {
            p.apply_enforced.failed()
                || p.rows
                    .iter()
                    .any(|r| r.throughput.failed() || r.conn_rate.failed())
        })
    }
}
