//! Cluster IPAM: `cluster-ipam` ADD and DEL (through a running ferro-agent on an embedded
//! store) beside our host-local, IPAM alone, in alternating blocks; and the time the agent
//! takes to claim a block of the pool with 3 and with 100 simulated nodes' blocks in the
//! store ([`run`]). Ours only: the reference suite has no cluster IPAM.

pub mod run;

use minijinja::{context, Value};

use crate::outcome::Outcome;
use crate::report::format::{fmt_ms, fmt_ratio2};
use crate::report::table::Table;
use crate::report::{Report, Section};
use crate::stats::{ratio, Summary};

/// ADD and DEL of one IPAM plugin alone.
#[derive(Debug, Clone, PartialEq)]
pub struct IpamLatency {
    /// ADD.
    pub add: Summary,
    /// DEL.
    pub del: Summary,
}

/// Block claims with a number of simulated nodes in the store.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimRow {
    /// Simulated nodes (each with its blocks in the store).
    pub nodes: usize,
    /// Blocks in the store before the first claim.
    pub blocks: usize,
    /// Claim durations, as the agent measured them.
    pub claims: Outcome<Summary>,
}

/// The scenario's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterIpam {
    /// Our host-local, same method.
    pub host_local: Outcome<IpamLatency>,
    /// cluster-ipam.
    pub cluster_ipam: Outcome<IpamLatency>,
    /// Claims, per store size.
    pub claims: Vec<ClaimRow>,
}

impl ClusterIpam {
    fn latency_table(&self) -> String {
        let mut t = Table::new(
            &["IPAM alone", "", "median", "p95", "÷ host-local"],
            &[false, false, true, true, true],
        );
        type Pick = fn(&IpamLatency) -> Summary;
        let verbs: [(&str, Pick); 2] = [("ADD", |l| l.add), ("DEL", |l| l.del)];
        for (name, o) in [
            ("host-local (ours)", &self.host_local),
            ("cluster-ipam", &self.cluster_ipam),
        ] {
            for (i, (verb, f)) in verbs.iter().enumerate() {
                let vs = match (self.host_local.done(), o.done()) {
                    (Some(h), Some(c)) if name == "cluster-ipam" => {
                        fmt_ratio2(ratio(f(c).median, f(h).median))
                    }
                    _ => String::new(),
                };
                t.row(vec![
                    if i == 0 {
                        name.to_string()
                    } else {
                        String::new()
                    },
                    verb.to_string(),
                    o.cell(|l| fmt_ms(f(l).median)),
                    o.cell(|l| fmt_ms(f(l).p95)),
                    vs,
                ]);
            }
        }
        t.render()
    }

    fn claim_table(&self) -> String {
        let mut t = Table::new(
            &[
                "simulated nodes",
                "blocks in the store",
                "claims",
                "median",
                "p95",
                "max",
            ],
            &[true, true, true, true, true, true],
        );
        for c in &self.claims {
            t.row(vec![
                c.nodes.to_string(),
                c.blocks.to_string(),
                c.claims.cell(|s| s.n.to_string()),
                c.claims.cell(|s| fmt_ms(s.median)),
                c.claims.cell(|s| fmt_ms(s.p95)),
                c.claims.cell(|s| fmt_ms(s.max)),
            ]);
        }
        t.render()
    }
}

/// The scenario's figures: `None` when it did not run.
impl Section for Option<ClusterIpam> {
    fn key(&self) -> &'static str {
        "cluster_ipam"
    }

    fn view(&self, _report: &Report) -> Value {
        let Some(c) = self else {
            return Value::from(());
        };
        context! {
            latency_table => c.latency_table(),
            claim_table => c.claim_table(),
            cycles => c.cluster_ipam.cell(|l| l.add.n.to_string()),
        }
    }

    fn problems(&self) -> Vec<String> {
        let Some(c) = self else {
            return Vec::new();
        };
        let mut out: Vec<String> = [
            (&c.host_local, "host-local"),
            (&c.cluster_ipam, "cluster-ipam"),
        ]
        .iter()
        .filter_map(|(o, who)| Some(format!("cluster IPAM ({who}): {}", o.why()?)))
        .collect();
        out.extend(c.claims.iter().filter_map(|r| {
            Some(format!(
                "cluster IPAM claims with {} nodes: {}",
                r.nodes,
                r.claims.why()?
            ))
        }));
        out
    }

    fn failed(&self) -> bool {
        self.as_ref().is_some_and(|c| {
            c.host_local.failed()
                || c.cluster_ipam.failed()
                || c.claims.iter().any(|r| r.claims.failed())
        })
    }
}
