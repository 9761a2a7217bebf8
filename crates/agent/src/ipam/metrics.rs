//! Cluster IPAM's Prometheus metrics (part of the agent's `/metrics`):
//!
//! | metric | labels | what |
//! |---|---|---|
//! | `ferro_agent_ipam_blocks` | `family`, `mode` | blocks this node holds |
//! | `ferro_agent_ipam_addresses_in_use` | `family` | addresses handed out |
//! | `ferro_agent_ipam_addresses_capacity` | `family` | addresses the node's blocks can hand out |
//! | `ferro_agent_ipam_allocations_total` | `result` | ADDs answered: `ok`, `existing`, or an error code |
//! | `ferro_agent_ipam_releases_total` | `reason` | addresses given back: `del`, `leak`, `operator`, `spool` |
//! | `ferro_agent_ipam_claims_total` | `result` | block claims: `ok`, `exhausted`, `conflict`, `unavailable` |
//! | `ferro_agent_ipam_claim_duration_seconds` | | time to claim a block in the store |
//! | `ferro_agent_ipam_block_releases_total` | `reason` | blocks given back: `empty`, `node-gone`, `operator`, `lost` |
//! | `ferro_agent_ipam_unsynced_blocks` | | blocks whose store copy is behind |
//! | `ferro_agent_ipam_leak_suspects` | | allocations whose attachment looks gone |
//! | `ferro_agent_ipam_loop_runs_total` | `loop`, `result` | passes of the `sync` and `maintain` loops |
//! | `ferro_agent_ipam_loop_duration_seconds` | `loop` | their duration |

use std::sync::atomic::AtomicI64;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;
type Hist = Family<Labels, Histogram, fn() -> Histogram>;

fn histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 18))
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
}

/// The IPAM metrics.
#[derive(Debug, Clone)]
pub struct IpamMetrics {
    blocks: Family<Labels, Gauge<i64, AtomicI64>>,
    in_use: Family<Labels, Gauge<i64, AtomicI64>>,
    capacity: Family<Labels, Gauge<i64, AtomicI64>>,
    allocations: Family<Labels, Counter>,
    releases: Family<Labels, Counter>,
    claims: Family<Labels, Counter>,
    claim_seconds: Histogram,
    block_releases: Family<Labels, Counter>,
    unsynced: Gauge<i64, AtomicI64>,
    suspects: Gauge<i64, AtomicI64>,
    loop_runs: Family<Labels, Counter>,
    loop_seconds: Hist,
}

impl IpamMetrics {
    /// Creates them, registered in `r`.
    pub fn register(r: &mut Registry) -> IpamMetrics {
        let m = IpamMetrics {
            blocks: Family::default(),
            in_use: Family::default(),
            capacity: Family::default(),
            allocations: Family::default(),
            releases: Family::default(),
            claims: Family::default(),
            claim_seconds: histogram(),
            block_releases: Family::default(),
            unsynced: Gauge::default(),
            suspects: Gauge::default(),
            loop_runs: Family::default(),
            loop_seconds: Hist::new_with_constructor(histogram),
        };
        r.register(
            "ferro_agent_ipam_blocks",
            "IPAM blocks this node holds",
            m.blocks.clone(),
        );
        r.register(
            "ferro_agent_ipam_addresses_in_use",
            "Addresses handed out",
            m.in_use.clone(),
        );
        r.register(
            "ferro_agent_ipam_addresses_capacity",
            "Addresses the node's blocks can hand out",
            m.capacity.clone(),
        );
        r.register(
            "ferro_agent_ipam_allocations",
            "IPAM ADDs answered",
            m.allocations.clone(),
        );
        r.register(
            "ferro_agent_ipam_releases",
            "Addresses given back",
            m.releases.clone(),
        );
        r.register("ferro_agent_ipam_claims", "Block claims", m.claims.clone());
        r.register(
            "ferro_agent_ipam_claim_duration_seconds",
            "Time to claim a block in the store",
            m.claim_seconds.clone(),
        );
        r.register(
            "ferro_agent_ipam_block_releases",
            "Blocks given back to the pool",
            m.block_releases.clone(),
        );
        r.register(
            "ferro_agent_ipam_unsynced_blocks",
            "Blocks whose store copy is behind",
            m.unsynced.clone(),
        );
        r.register(
            "ferro_agent_ipam_leak_suspects",
            "Allocations whose attachment looks gone",
            m.suspects.clone(),
        );
        r.register(
            "ferro_agent_ipam_loop_runs",
            "Passes of the IPAM loops",
            m.loop_runs.clone(),
        );
        r.register(
            "ferro_agent_ipam_loop_duration_seconds",
            "Duration of a pass of an IPAM loop",
            m.loop_seconds.clone(),
        );
        m
    }

    /// Sets the node's holdings for `family`: blocks per mode, addresses in use, capacity.
    pub fn holdings(
        &self,
        family: &str,
        node_blocks: i64,
        pod_blocks: i64,
        in_use: i64,
        capacity: i64,
    ) {
        self.blocks
            .get_or_create(&labels(&[("family", family), ("mode", "node")]))
            .set(node_blocks);
        self.blocks
            .get_or_create(&labels(&[("family", family), ("mode", "pod")]))
            .set(pod_blocks);
        self.in_use
            .get_or_create(&labels(&[("family", family)]))
            .set(in_use);
        self.capacity
            .get_or_create(&labels(&[("family", family)]))
            .set(capacity);
    }

    /// Counts an ADD answered with `result`.
    pub fn allocation(&self, result: &str) {
        self.allocations
            .get_or_create(&labels(&[("result", result)]))
            .inc();
    }

    /// Counts `n` addresses given back for `reason`.
    pub fn released(&self, reason: &str, n: usize) {
        self.releases
            .get_or_create(&labels(&[("reason", reason)]))
            .inc_by(n as u64);
    }

    /// Counts a claim and its duration.
    pub fn claim(&self, result: &str, seconds: f64) {
        self.claims
            .get_or_create(&labels(&[("result", result)]))
            .inc();
        self.claim_seconds.observe(seconds);
    }

    /// Counts a block given back.
    pub fn block_released(&self, reason: &str) {
        self.block_releases
            .get_or_create(&labels(&[("reason", reason)]))
            .inc();
    }

    /// Blocks whose store copy is behind.
    pub fn set_unsynced(&self, n: usize) {
        self.unsynced.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Allocations whose attachment looks gone.
    pub fn set_suspects(&self, n: usize) {
        self.suspects.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Counts a pass of loop `name`.
    pub fn loop_pass(&self, name: &str, result: &str, seconds: f64) {
        self.loop_runs
            .get_or_create(&labels(&[("loop", name), ("result", result)]))
            .inc();
        self.loop_seconds
            .get_or_create(&labels(&[("loop", name)]))
            .observe(seconds);
    }
}
