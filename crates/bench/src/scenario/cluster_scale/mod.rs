//! The agent at scale: one `ferro-agent` on a store (an etcd member started by the bench)
//! holding 100 nodes, 10,000 pods, 1,000 Services and 1,000 NetworkPolicies ([`run`]).
//!
//! Figures:
//! - how long one change written to the store takes to be in this node's kernel (a pod
//!   added on another node, a pod relabelled, a policy applied): from the store's answer
//!   to the write to the agent having programmed that revision;
//! - the agent's resident memory with everything loaded, and its CPU use while nothing
//!   changes;
//! - TCP throughput and the rate of new TCP connections from a pod of another node to a pod
//!   of this node, with everything loaded against no policy and no services (the agent
//!   stopped and its tables removed), alternated round by round.

pub mod run;

use std::time::Duration;

use minijinja::{context, Value};

use crate::outcome::Outcome;
use crate::report::format::fmt_ms;
use crate::report::table::Table;
use crate::report::target::{Target, Verdict};
use crate::report::{Report, Section};
use crate::scenario::policy::{
    config_table, ratio, rounds_table, Pick, PolicyConfigRow, Round, CONN_RATE, THROUGHPUT,
};

/// What the store holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    /// Nodes (this one, the client's, simulated ones).
    pub nodes: usize,
    /// Pods with an attachment.
    pub pods: usize,
    /// Services.
    pub services: usize,
    /// NetworkPolicies.
    pub policies: usize,
}

/// One kind of change, timed several times.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeRow {
    /// What was changed.
    pub label: String,
    /// From the store write to the agent's kernel state: the median.
    pub median: Outcome<Duration>,
    /// The slowest.
    pub max: Outcome<Duration>,
    /// How many times.
    pub samples: usize,
}

/// The scenario's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterScaleBench {
    /// What the store holds.
    pub sizes: Sizes,
    /// Rounds of the datapath configurations.
    pub rounds: usize,
    /// From the agent's start to its first policy sync with everything (median of rounds).
    pub start: Outcome<Duration>,
    /// One row per kind of change.
    pub changes: Vec<ChangeRow>,
    /// The agent's resident memory with everything loaded, once settled (after the idle
    /// window), bytes.
    pub rss: Outcome<u64>,
    /// The same right after the last change, bytes.
    pub rss_busy: Outcome<u64>,
    /// Its peak resident memory since it started (VmHWM), bytes: the target's figure.
    pub rss_peak: Outcome<u64>,
    /// Its CPU use while idle, percent of one core, and over how long.
    pub idle_cpu: Outcome<f64>,
    /// How long the idle CPU was measured.
    pub idle_window: Duration,
    /// No policy and no services (the anchor), everything loaded, conntrack alone: the
    /// medians over the rounds.
    pub rows: Vec<PolicyConfigRow>,
    /// Each round's figures.
    pub per_round: Vec<Round>,
}

impl ClusterScaleBench {
    /// The scenario failed before it measured anything.
    pub fn failed(sizes: Sizes, rounds: usize, idle_window: Duration, why: &str) -> Self {
        let f = || Outcome::Failed(why.to_string());
        ClusterScaleBench {
            sizes,
            rounds,
            start: f(),
            changes: Vec::new(),
            rss: Outcome::Failed(why.to_string()),
            rss_busy: Outcome::Failed(why.to_string()),
            rss_peak: Outcome::Failed(why.to_string()),
            idle_cpu: Outcome::Failed(why.to_string()),
            idle_window,
            rows: Vec::new(),
            per_round: Vec::new(),
        }
    }

    fn changes_table(&self) -> String {
        let mut t = Table::new(
            &["change", "times", "median", "slowest"],
            &[false, true, true, true],
        );
        for c in &self.changes {
            t.row(vec![
                c.label.clone(),
                c.samples.to_string(),
                c.median.cell(|d| format!("{} ms", fmt_ms(*d))),
                c.max.cell(|d| format!("{} ms", fmt_ms(*d))),
            ]);
        }
        t.render()
    }

    fn datapath_table(&self) -> String {
        config_table(&self.rows, "vs none")
    }

    /// Configuration `i` (1: everything loaded, 2: conntrack alone, the floor of any
    /// stateful firewall) against no policy and no services: see [`ratio`].
    fn ratio_of(&self, i: usize, pick: Pick) -> Option<f64> {
        ratio(&self.per_round, &self.rows, i, pick)
    }

    fn rounds_table(&self) -> String {
        rounds_table(&self.per_round, &["loaded", "conntrack only"])
    }

    /// The slowest median change.
    fn worst_change(&self) -> Option<Duration> {
        self.changes
            .iter()
            .filter_map(|c| c.median.done())
            .max()
            .copied()
    }
}

const TARGET_CHANGE: &str = "at scale, one change is in the node's kernel within 100 ms";
const TARGET_RSS: &str = "at scale, the agent's resident memory stays under 100 MB";
const TARGET_CPU: &str = "at scale, the idle agent uses under 1% of a core";
const TARGET_THROUGHPUT: &str =
    "at scale, pod-to-pod TCP throughput across nodes >= 95% of no policy and no services";
const TARGET_RATE: &str =
    "at scale, pod-to-pod connection rate across nodes >= 95% of no policy and no services";

impl Section for Option<ClusterScaleBench> {
    fn key(&self) -> &'static str {
        "cluster_scale"
    }

    fn view(&self, _report: &Report) -> Value {
        let Some(c) = self else {
            return Value::from(false);
        };
        context! {
            nodes => c.sizes.nodes,
            pods => c.sizes.pods,
            services => c.sizes.services,
            policies => c.sizes.policies,
            rounds => c.rounds,
            start => c.start.cell(|d| format!("{} ms", fmt_ms(*d))),
            changes => c.changes_table(),
            rss => c.rss.cell(|b| format!("{:.1} MB", *b as f64 / 1e6)),
            rss_busy => c.rss_busy.cell(|b| format!("{:.1} MB", *b as f64 / 1e6)),
            rss_peak => c.rss_peak.cell(|b| format!("{:.1} MB", *b as f64 / 1e6)),
            idle_cpu => c.idle_cpu.cell(|p| format!("{p:.2}%")),
            idle_window => format!("{} s", c.idle_window.as_secs()),
            datapath => c.datapath_table(),
            rounds_table => c.rounds_table(),
        }
    }

    fn targets(&self, _report: &Report) -> Vec<Target> {
        let Some(c) = self else {
            return Vec::new();
        };
        let ratio =
            |text: &'static str, pick: Pick| match (c.ratio_of(1, pick), c.ratio_of(2, pick)) {
                (Some(r), floor) => Target {
                    text,
                    figure: match floor {
                        Some(t) => format!("{r:.2}× of none (conntrack alone: {t:.2}×)"),
                        None => format!("{r:.2}× of none"),
                    },
                    verdict: Verdict::of(r >= 0.95),
                },
                (None, _) => Target::not_evaluated(text, "not measured"),
            };
        vec![
            match c.worst_change() {
                Some(d) => Target {
                    text: TARGET_CHANGE,
                    figure: format!("slowest median: {} ms", fmt_ms(d)),
                    verdict: Verdict::of(d <= Duration::from_millis(100)),
                },
                None => Target::not_evaluated(TARGET_CHANGE, "not measured"),
            },
            // "Stays under": the peak since the agent started (VmHWM), which covers the
            // first sync of everything and every change after it.
            match c.rss_peak.done() {
                Some(b) => Target {
                    text: TARGET_RSS,
                    figure: match c.rss.done() {
                        Some(settled) => format!(
                            "peak {:.1} MB (settled {:.1} MB)",
                            *b as f64 / 1e6,
                            *settled as f64 / 1e6
                        ),
                        None => format!("peak {:.1} MB", *b as f64 / 1e6),
                    },
                    verdict: Verdict::of(*b < 100_000_000),
                },
                None => Target::not_evaluated(TARGET_RSS, "not measured"),
            },
            match c.idle_cpu.done() {
                Some(p) => Target {
                    text: TARGET_CPU,
                    figure: format!("{p:.2}%"),
                    verdict: Verdict::of(*p < 1.0),
                },
                None => Target::not_evaluated(TARGET_CPU, "not measured"),
            },
            ratio(TARGET_THROUGHPUT, THROUGHPUT),
            ratio(TARGET_RATE, CONN_RATE),
        ]
    }

    fn problems(&self) -> Vec<String> {
        let Some(c) = self else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut said: Vec<String> = Vec::new();
        let mut say = |what: String, why: Option<&str>| {
            if let Some(w) = why.filter(|w| !said.iter().any(|s| s == w)) {
                said.push(w.to_string());
                out.push(format!("agent at scale: {what}: {w}"));
            }
        };
        say("start".into(), c.start.why());
        say("memory".into(), c.rss.why());
        say("idle CPU".into(), c.idle_cpu.why());
        for ch in &c.changes {
            say(ch.label.clone(), ch.median.why());
        }
        for r in &c.rows {
            say(format!("{} throughput", r.label), r.throughput.why());
            say(format!("{} connections", r.label), r.conn_rate.why());
        }
        out
    }

    fn failed(&self) -> bool {
        self.as_ref().is_some_and(|c| {
            c.start.failed()
                || c.changes.iter().any(|ch| ch.median.failed())
                || c.rows
                    .iter()
                    .any(|r| r.throughput.failed() || r.conn_rate.failed())
        })
    }
}
