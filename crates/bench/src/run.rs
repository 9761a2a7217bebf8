//! The run: every scenario configured, in report order, with the floor measured in slices
//! before, between and after them.

use crate::error::Error;
use crate::harness::{Bench, Config};
use crate::output::progress;
use crate::scenario::agent::{self, AgentBench};
use crate::scenario::cluster_ipam::{self, ClusterIpam};
use crate::scenario::cluster_scale::{self, ClusterScaleBench};
use crate::scenario::cost::{self, Cost};
use crate::scenario::floor::{self, Floor};
use crate::scenario::latency::{self, Latency};
use crate::scenario::parallel::{self, ParallelRow};
use crate::scenario::policy::{self, PolicyBench};
use crate::scenario::scale::{self, ScaleRow};
use crate::scenario::services::{self, ServicesBench};

/// The figures of every scenario (the report adds the machine and the versions).
#[derive(Debug)]
pub struct Figures {
    /// Sequential workloads.
    pub latency: Latency,
    /// Parallel scenario, when run.
    pub parallel: Option<ParallelRow>,
    /// Scale scenario, when run.
    pub scale: Option<ScaleRow>,
    /// Services scenario, when run.
    pub services: Option<ServicesBench>,
    /// Cluster IPAM scenario, when run.
    pub cluster_ipam: Option<ClusterIpam>,
    /// Agent scenario, when run.
    pub agent: Option<AgentBench>,
    /// NetworkPolicy scenario, when run.
    pub policy: Option<PolicyBench>,
    /// Agent-at-scale scenario, when run.
    pub cluster_scale: Option<ClusterScaleBench>,
    /// Peak RSS and binary sizes.
    pub cost: Cost,
    /// Process start and kernel work.
    pub floor: Floor,
}

/// Stages the binaries, runs everything `cfg` asks for and removes the namespaces again.
pub fn run_all(cfg: Config) -> Result<Figures, Error> {
    let mut b = Bench::new(cfg)?;
    let mut floor = floor::run::Sampler::default();
    let parts = b.cfg.workloads.len()
        + usize::from(b.cfg.parallel)
        + usize::from(b.cfg.scale)
        + usize::from(b.cfg.services)
        + usize::from(b.cfg.cluster_ipam)
        + usize::from(b.cfg.agent)
        + usize::from(b.cfg.policy)
        + usize::from(b.cfg.cluster_scale)
        + 1;
    let slice = b.params().floor_calls.div_ceil(parts);
    progress("floor: process start and kernel work, in slices between the workloads");
    floor.slice(&mut b, slice);
    let mut rows = Vec::new();
    let mut rss = Vec::new();
    for w in b.cfg.workloads.clone() {
        let (row, r) = latency::run::run(&mut b, w);
        rows.push(row);
        rss.extend(r);
        floor.slice(&mut b, slice);
    }
    let parallel = b.cfg.parallel.then(|| parallel::run::run(&mut b));
    if parallel.is_some() {
        floor.slice(&mut b, slice);
    }
    let scale = b.cfg.scale.then(|| scale::run::run(&mut b));
    if scale.is_some() {
        floor.slice(&mut b, slice);
    }
    let services = b.cfg.services.then(|| services::run::run(&mut b));
    if services.is_some() {
        floor.slice(&mut b, slice);
    }
    let cluster_ipam = b.cfg.cluster_ipam.then(|| cluster_ipam::run::run(&mut b));
    if cluster_ipam.is_some() {
        floor.slice(&mut b, slice);
    }
    let agent = b.cfg.agent.then(|| agent::run::run(&mut b));
    if agent.is_some() {
        floor.slice(&mut b, slice);
    }
    let policy = b.cfg.policy.then(|| policy::run::run(&mut b));
    if policy.is_some() {
        floor.slice(&mut b, slice);
    }
    let cluster_scale = b.cfg.cluster_scale.then(|| cluster_scale::run::run(&mut b));
    if cluster_scale.is_some() {
        floor.slice(&mut b, slice);
    }
    let floor = floor.finish(&mut b);
    let sizes = cost::run::sizes(&b);
    Ok(Figures {
        latency: Latency { rows },
        parallel,
        scale,
        services,
        cluster_ipam,
        agent,
        policy,
        cluster_scale,
        cost: Cost { rss, sizes },
        floor,
    })
}
