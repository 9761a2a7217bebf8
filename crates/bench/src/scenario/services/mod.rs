//! Services: our `inet ferro_services` table (what ferro-agent programs, built by
//! `ferro-services` and applied through the nf_tables codec) against the anchor a cluster
//! would otherwise run, kube-proxy's iptables mode (its `KUBE-SERVICES`, `KUBE-SVC-*` and
//! `KUBE-SEP-*` chains with `statistic --mode random`, loaded with `iptables-restore`), with
//! the same services and endpoints: the time to apply the whole ruleset, the time to apply
//! one service's change at that size, and the rate of TCP connections set up through the
//! last service ([`run`]).

pub mod run;

use std::time::Duration;

use minijinja::{context, Value};

use crate::outcome::Outcome;
use crate::report::format::{fmt_ms, fmt_ratio, fmt_ratio2, ratio_cell};
use crate::report::table::Table;
use crate::report::target::{Target, Verdict};
use crate::report::{Report, Section};

/// One size: both sides' figures.
#[derive(Debug, Clone, PartialEq)]
pub struct ServicesRow {
    /// Services (each one port, the same endpoints).
    pub services: usize,
    /// Whole ruleset applied: ours (plan, diff, one batch).
    pub ours_apply: Outcome<Duration>,
    /// Whole ruleset applied: `iptables-restore`.
    pub ref_apply: Outcome<Duration>,
    /// One service's endpoints changed: ours.
    pub ours_change: Outcome<Duration>,
    /// The same as kube-proxy's partial restore (`--noflush`: `KUBE-SERVICES` whole, the
    /// service's chains).
    pub ref_change: Outcome<Duration>,
    /// TCP connections per second through the last service: ours.
    pub ours_rate: Outcome<f64>,
    /// The same through the iptables ruleset.
    pub ref_rate: Outcome<f64>,
}

/// The services scenario's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct ServicesBench {
    /// Endpoints per service.
    pub endpoints: usize,
    /// How long each connection rate was measured.
    pub rate_window: Duration,
    /// `iptables-restore --version`.
    pub iptables: String,
    /// One row per size, smallest first.
    pub rows: Vec<ServicesRow>,
}

const TARGET: &str =
    "one service's change applies faster than kube-proxy's iptables at the largest size";

fn rate_cell(r: &Outcome<f64>) -> String {
    r.cell(|v| format!("{v:.0}"))
}

fn rate_ratio(ours: &Outcome<f64>, reference: &Outcome<f64>) -> String {
    match (ours.done(), reference.done()) {
        (Some(o), Some(r)) if *r > 0.0 => fmt_ratio(Some(o / r)),
        _ => "–".into(),
    }
}

impl ServicesBench {
    fn table(&self) -> String {
        let mut t = Table::new(
            &[
                "services",
                "apply ours",
                "apply iptables",
                "ratio",
                "one change ours",
                "one change iptables",
                "ratio",
                "conn/s ours",
                "conn/s iptables",
                "ratio",
            ],
            &[true, true, true, true, true, true, true, true, true, true],
        );
        for r in &self.rows {
            t.row(vec![
                r.services.to_string(),
                r.ours_apply.cell(|d| fmt_ms(*d)),
                r.ref_apply.cell(|d| fmt_ms(*d)),
                ratio_cell(&r.ours_apply, &r.ref_apply, |d| *d),
                r.ours_change.cell(|d| fmt_ms(*d)),
                r.ref_change.cell(|d| fmt_ms(*d)),
                ratio_cell(&r.ours_change, &r.ref_change, |d| *d),
                rate_cell(&r.ours_rate),
                rate_cell(&r.ref_rate),
                rate_ratio(&r.ours_rate, &r.ref_rate),
            ]);
        }
        t.render()
    }

    /// Connection rate at the largest size over the smallest, per side.
    fn rate_keep(&self) -> (Option<f64>, Option<f64>) {
        let (Some(first), Some(last)) = (self.rows.first(), self.rows.last()) else {
            return (None, None);
        };
        let keep = |a: &Outcome<f64>, b: &Outcome<f64>| match (a.done(), b.done()) {
            (Some(a), Some(b)) if *a > 0.0 => Some(b / a),
            _ => None,
        };
        (
            keep(&first.ours_rate, &last.ours_rate),
            keep(&first.ref_rate, &last.ref_rate),
        )
    }
}

impl Section for Option<ServicesBench> {
    fn key(&self) -> &'static str {
        "services"
    }

    fn view(&self, _report: &Report) -> Value {
        let Some(s) = self else {
            return Value::from(());
        };
        let (ours_keep, ref_keep) = s.rate_keep();
        context! {
            table => s.table(),
            endpoints => s.endpoints,
            iptables => s.iptables.as_str(),
            window => fmt_ms(s.rate_window),
            smallest => s.rows.first().map(|r| r.services),
            largest => s.rows.last().map(|r| r.services),
            ours_keep => fmt_ratio2(ours_keep),
            ref_keep => fmt_ratio2(ref_keep),
        }
    }

    fn targets(&self, _report: &Report) -> Vec<Target> {
        let Some(s) = self else {
            return vec![Target::not_evaluated(TARGET, "services scenario skipped")];
        };
        let Some(last) = s.rows.last() else {
            return vec![Target::not_evaluated(TARGET, "no size measured")];
        };
        match (last.ours_change.done(), last.ref_change.done()) {
            (Some(o), Some(r)) => vec![Target {
                text: TARGET,
                figure: format!(
                    "{} services: ours {} ms, iptables {} ms",
                    last.services,
                    fmt_ms(*o),
                    fmt_ms(*r)
                ),
                verdict: Verdict::of(o < r),
            }],
            _ => vec![Target::not_evaluated(TARGET, "a side was not measured")],
        }
    }

    fn problems(&self) -> Vec<String> {
        let Some(s) = self else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for r in &s.rows {
            let n = r.services;
            for (what, why) in [
                ("apply (ours)", r.ours_apply.why()),
                ("apply (iptables)", r.ref_apply.why()),
                ("one change (ours)", r.ours_change.why()),
                ("one change (iptables)", r.ref_change.why()),
                ("connection rate (ours)", r.ours_rate.why()),
                ("connection rate (iptables)", r.ref_rate.why()),
            ] {
                if let Some(why) = why {
                    out.push(format!("services, {n}: {what}: {why}"));
                }
            }
        }
        out
    }

    fn failed(&self) -> bool {
        self.as_ref().is_some_and(|s| {
            s.rows.iter().any(|r| {
                r.ours_apply.failed()
                    || r.ref_apply.failed()
                    || r.ours_change.failed()
                    || r.ref_change.failed()
                    || r.ours_rate.failed()
                    || r.ref_rate.failed()
            })
        })
    }
}
