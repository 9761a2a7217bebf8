//! Cost: the peak RSS of each plugin process during one ADD (measured by the latency
//! scenario, [`crate::scenario::latency::run`]) and the stripped size of each binary
//! ([`run`]).

pub mod run;

use std::fmt::Write as _;

use minijinja::{context, Value};

use crate::outcome::{plugin_label, Outcome, PluginPair};
use crate::report::format::{fmt_bytes, fmt_kib, size_ratio_cell};
use crate::report::table::Table;
use crate::report::target::{Target, Verdict};
use crate::report::{Report, Section};
use crate::workloads::WorkloadId;

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

/// Size of one binary, bytes.
pub type SizeRow = PluginPair<u64>;

/// The costs of both suites.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cost {
    /// Peak RSS, per plugin process of each workload.
    pub rss: Vec<RssRow>,
    /// Binary sizes.
    pub sizes: Vec<SizeRow>,
}

/// Peak RSS limit of the targets: 10 MB.
pub const RSS_LIMIT_BYTES: u64 = 10_000_000;

/// The target on peak RSS.
const TARGET: &str = "peak RSS under 10 MB per plugin process";

impl Cost {
    fn rss_table(&self) -> String {
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
            t.row(vec![
                plugin_label(&r.ours_plugin, &r.ref_plugin),
                r.workload.key().to_string(),
                r.ours.cell(|k| fmt_kib(*k)),
                r.reference.cell(|k| fmt_kib(*k)),
                size_ratio_cell(&r.ours, &r.reference),
            ]);
        }
        t.render()
    }

    fn size_table(&self) -> String {
        let mut t = Table::new(
            &["plugin (ours / ref)", "ours", "reference", "ratio"],
            &[false, true, true, true],
        );
        for r in &self.sizes {
            t.row(vec![
                r.label(),
                r.ours.cell(|b| fmt_bytes(*b)),
                r.reference.cell(|b| fmt_bytes(*b)),
                size_ratio_cell(&r.ours, &r.reference),
            ]);
        }
        t.render()
    }
}

impl Section for Cost {
    fn key(&self) -> &'static str {
        "cost"
    }

    fn view(&self, _report: &Report) -> Value {
        context! {
            rss_table => self.rss_table(),
            size_table => self.size_table(),
        }
    }

    fn targets(&self, _report: &Report) -> Vec<Target> {
        let measured = self
            .rss
            .iter()
            .filter_map(|r| r.ours.done().map(|k| (r.ours_plugin.as_str(), *k)));
        let Some((worst_plugin, worst)) = measured.max_by_key(|(_, k)| *k) else {
            return vec![Target::not_evaluated(TARGET, "no RSS measured")];
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
        vec![Target {
            text: TARGET,
            figure,
            verdict: Verdict::of(worst * 1024 < RSS_LIMIT_BYTES),
        }]
    }

    fn problems(&self) -> Vec<String> {
        let mut items = Vec::new();
        for r in &self.rss {
            if let Some(why) = r.ours.why() {
                items.push(format!("peak RSS of {} (ours): {why}", r.ours_plugin));
            }
            if let Some(why) = r.reference.why() {
                items.push(format!("peak RSS of {} (reference): {why}", r.ref_plugin));
            }
        }
        items
    }

    fn failed(&self) -> bool {
        self.rss
            .iter()
            .any(|r| r.ours.failed() || r.reference.failed())
    }
}
