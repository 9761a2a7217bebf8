//! The report of a run: `docs/benchmarks.md` and the console summary, both rendered from the
//! templates ([`template`]) with the figures each scenario formats ([`Section`]), and the
//! targets judged on them. Pure: no I/O.

pub mod format;
pub mod table;
pub mod target;
pub mod template;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::time::Duration;

use minijinja::{context, Value};

use crate::cli::Params;
use crate::error::Error;
use crate::machine::{Machine, Versions};
use crate::request::CNI_VERSION;
use crate::scenario::agent::AgentBench;
use crate::scenario::cluster_ipam::ClusterIpam;
use crate::scenario::cluster_scale::ClusterScaleBench;
use crate::scenario::cost::Cost;
use crate::scenario::floor::Floor;
use crate::scenario::latency::Latency;
use crate::scenario::parallel::ParallelRow;
use crate::scenario::policy::PolicyBench;
use crate::scenario::scale::ScaleRow;
use crate::scenario::services::ServicesBench;
use format::fmt_s;
use table::Table;
use target::Target;

/// What the report needs of a scenario's figures.
pub trait Section {
    /// Its name: the key of its figures in the templates, and the name of its section
    /// template.
    fn key(&self) -> &'static str;

    /// Its figures, formatted, for its section template; none when it did not run.
    fn view(&self, report: &Report) -> Value;

    /// The targets judged on its figures.
    fn targets(&self, _report: &Report) -> Vec<Target> {
        Vec::new()
    }

    /// What failed or is missing, one line each, for "Failures and missing figures".
    fn problems(&self) -> Vec<String> {
        Vec::new()
    }

    /// True when a measurement failed (not merely missing because not built or skipped).
    fn failed(&self) -> bool {
        false
    }
}

/// Everything a run produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// When it started (UTC).
    pub started: String,
    /// Wall time of the whole run.
    pub elapsed: Duration,
    /// The machine.
    pub machine: Machine,
    /// Versions.
    pub versions: Versions,
    /// Parameters.
    pub params: Params,
    /// Sequential workloads.
    pub latency: Latency,
    /// Parallel scenario.
    pub parallel: Option<ParallelRow>,
    /// Scale scenario.
    pub scale: Option<ScaleRow>,
    /// Services scenario.
    pub services: Option<ServicesBench>,
    /// Cluster IPAM scenario.
    pub cluster_ipam: Option<ClusterIpam>,
    /// Agent scenario.
    pub agent: Option<AgentBench>,
    /// NetworkPolicy scenario.
    pub policy: Option<PolicyBench>,
    /// Agent-at-scale scenario.
    pub cluster_scale: Option<ClusterScaleBench>,
    /// Peak RSS and binary sizes.
    pub cost: Cost,
    /// Process start and kernel work.
    pub floor: Floor,
}

impl Report {
    /// The scenarios' figures, in report order.
    fn sections(&self) -> [&dyn Section; 10] {
        [
            &self.latency,
            &self.parallel,
            &self.scale,
            &self.cluster_ipam,
            &self.agent,
            &self.policy,
            &self.cluster_scale,
            &self.cost,
            &self.floor,
            &self.services,
        ]
    }

    /// The targets, judged on this run's figures.
    pub fn targets(&self) -> Vec<Target> {
        self.sections()
            .iter()
            .flat_map(|s| s.targets(self))
            .collect()
    }

    /// What failed or is missing, one line each.
    fn problems(&self) -> Vec<String> {
        let mut items: Vec<String> = self.sections().iter().flat_map(|s| s.problems()).collect();
        items.dedup();
        items.iter().map(|p| p.replace('\n', " ")).collect()
    }

    /// True when some figure failed (not merely missing because not built or skipped).
    pub fn has_failures(&self) -> bool {
        self.sections().iter().any(|s| s.failed())
    }

    /// What the templates are filled with: the run's facts and every scenario's view.
    fn context(&self) -> Value {
        let m = &self.machine;
        let p = &self.params;
        let mut versions = Table::new(&["component", "version"], &[]);
        for (k, v) in &self.versions.items {
            versions.row(vec![k.clone(), v.clone()]);
        }
        let mut ctx: BTreeMap<&str, Value> = BTreeMap::new();
        ctx.insert("started", Value::from(self.started.as_str()));
        ctx.insert("elapsed", Value::from(fmt_s(self.elapsed)));
        ctx.insert("quick", Value::from(p.quick));
        ctx.insert("cni_version", Value::from(CNI_VERSION));
        ctx.insert(
            "machine",
            context! {
                cpu => m.cpu.as_str(),
                cores => m.cores,
                memory => m.memory.as_str(),
                kernel => m.kernel.as_str(),
                os => m.os.as_str(),
                load_start => m.load_start.as_str(),
                load_end => m.load_end.as_str(),
            },
        );
        ctx.insert("versions", Value::from(versions.render()));
        ctx.insert(
            "params",
            context! {
                cycles => p.cycles,
                block => p.block,
                warmup => p.warmup,
                parallel_pods => p.parallel_pods,
                parallel_workers => p.parallel_workers,
                parallel_rounds => p.parallel_rounds,
                scale_small => p.scale_small,
                scale_large => p.scale_large,
                scale_cycles => p.scale_cycles,
                claims => p.claims,
                floor_calls => p.floor_calls,
                ipam_location => p.ipam_location.as_str(),
            },
        );
        ctx.insert("targets", Value::from(target::table(&self.targets())));
        ctx.insert("problems", Value::from(self.problems()));
        for s in self.sections() {
            ctx.insert(s.key(), s.view(self));
        }
        Value::from(ctx)
    }

    /// The report as Markdown (`templates/benchmarks.md`).
    pub fn markdown(&self) -> Result<String, Error> {
        template::render("benchmarks.md", self.context())
    }

    /// The console summary: the figures and the targets (`templates/console.txt`).
    pub fn console(&self) -> Result<String, Error> {
        template::render("console.txt", self.context())
    }
}
