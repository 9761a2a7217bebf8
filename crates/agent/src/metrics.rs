//! Prometheus metrics (`prometheus-client`), served at `http://<metrics>/metrics` when the
//! `metrics` key is set:
//!
//! | metric | labels | what |
//! |---|---|---|
//! | `ferro_agent_requests_total` | `op`, `result` | socket requests answered (`result`: `ok` or an error code) |
//! | `ferro_agent_request_duration_seconds` | `op` | time to answer them |
//! | `ferro_agent_lease_renewals_total` | `result` | node lease renewals (`ok`, `unavailable`, `expired`) |
//! | `ferro_agent_node_registered` | | 1 while the node holds its lease |
//! | `ferro_agent_services_syncs_total` | `result` | services table syncs (`ok`, `error`) |
//! | `ferro_agent_services_sync_duration_seconds` | | time to compute and apply one |
//! | `ferro_agent_lb_announcements_total` | `event` | load-balancer addresses `claimed`, `released`, `lost` |
//! | `ferro_agent_policy_syncs_total` | `result` | NetworkPolicy syncs (`ok`, `error`) |
//! | `ferro_agent_policy_sync_duration_seconds` | | time from a change seen to the table programmed |
//! | `ferro_agent_policy_chains` | | isolated pods of this node, per direction |
//! | `ferro_agent_policy_elements` | | elements of the policy sets and maps |
//! | `ferro_agent_policy_pod_drops_total` | `namespace`, `pod`, `direction` | packets dropped at a pod of this node |
//! | `ferro_agent_policy_drops_total` | `namespace`, `policy` | packets dropped at the pods of this node a policy isolates |
//! | `ferro_agent_egress_drops_total` | `namespace`, `pod`, `policy` | packets leaving the cluster an EgressPolicy dropped, per pod of this node |
//! | `ferro_agent_spool_replayed_total` | `result` | spooled requests replayed: `applied`, `rejected` |
//! | `ferro_agent_attachments` | | attachments the node records |
//! | `ferro_agent_membership_reconciles_total` | `result` | membership passes (`ok`, `error`) |
//! | `ferro_agent_membership_reconcile_duration_seconds` | | time of one pass |
//! | `ferro_agent_membership_nodes` | | other live nodes |
//! | `ferro_agent_membership_peers` | | VXLAN peers (pod subnets) programmed |
//! | `ferro_agent_membership_routes` | | kubenet routes programmed |
//!
//! | `ferro_agent_dns_queries_total` | `answer` | DNS queries answered: `cluster`, `cache`, `upstream`, `failed` (no upstream answered), `malformed` |
//!
//! and cluster IPAM's (`ferro_agent_ipam_*`, see [`crate::ipam::metrics`]).

use std::sync::atomic::AtomicI64;
use std::sync::{Arc, OnceLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::MetricType;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use ferro_policy::ruleset::Ruleset;

use crate::policy::PolicyHandle;

type Labels = Vec<(String, String)>;

fn histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 18))
}

/// The agent's metrics.
pub struct Metrics {
    registry: Registry,
    requests: Family<Labels, Counter>,
    request_seconds: Family<Labels, Histogram, fn() -> Histogram>,
    lease_renewals: Family<Labels, Counter>,
    registered: Gauge<i64, AtomicI64>,
    service_syncs: Family<Labels, Counter>,
    service_sync_seconds: Histogram,
    announcements: Family<Labels, Counter>,
    policy_syncs: Family<Labels, Counter>,
    policy_sync_seconds: Histogram,
    policy_chains: Gauge<i64, AtomicI64>,
    policy_elements: Gauge<i64, AtomicI64>,
    policy: Arc<OnceLock<PolicyHandle>>,
    egress: Arc<OnceLock<Arc<crate::egress::Egress>>>,
    /// Cluster IPAM's.
    pub ipam: crate::ipam::metrics::IpamMetrics,
    /// The DNS server's.
    pub dns: crate::dns::DnsMetrics,
    replayed: Family<Labels, Counter>,
    attachments: Gauge<i64, AtomicI64>,
    reconciles: Family<Labels, Counter>,
    reconcile_seconds: Histogram,
    members: Gauge<i64, AtomicI64>,
    peers: Gauge<i64, AtomicI64>,
    routes: Gauge<i64, AtomicI64>,
}

/// The drop counters, read from the policy loop's last reading at each scrape.
#[derive(Debug)]
struct DropCollector {
    policy: Arc<OnceLock<PolicyHandle>>,
    egress: Arc<OnceLock<Arc<crate::egress::Egress>>>,
}

impl Collector for DropCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        if let Some(e) = self.egress.get() {
            let mut drops = encoder.encode_descriptor(
                "ferro_agent_egress_drops",
                "Packets leaving the cluster an EgressPolicy dropped, per pod of this node",
                None,
                MetricType::Counter,
            )?;
            for d in e.last_drops() {
                let labels: Labels = vec![
                    ("namespace".into(), d.namespace.clone()),
                    ("pod".into(), d.pod.clone()),
                    ("policy".into(), d.policy.clone()),
                ];
                ConstCounter::new(d.packets).encode(drops.encode_family(&labels)?)?;
            }
        }
        let Some(stats) = self.policy.get().and_then(PolicyHandle::last_stats) else {
            return Ok(());
        };
        let mut pods = encoder.encode_descriptor(
            "ferro_agent_policy_pod_drops",
            "Packets NetworkPolicy dropped at a pod of this node",
            None,
            MetricType::Counter,
        )?;
        for d in &stats.pods {
            let labels: Labels = vec![
                ("namespace".into(), d.namespace.clone()),
                ("pod".into(), d.pod.clone()),
                ("direction".into(), d.direction.clone()),
            ];
            ConstCounter::new(d.packets).encode(pods.encode_family(&labels)?)?;
        }
        let mut policies = encoder.encode_descriptor(
            "ferro_agent_policy_drops",
            "Packets dropped at the pods of this node a NetworkPolicy isolates",
            None,
            MetricType::Counter,
        )?;
        for d in &stats.policies {
            let labels: Labels = vec![
                ("namespace".into(), d.namespace.clone()),
                ("policy".into(), d.policy.clone()),
            ];
            ConstCounter::new(d.packets).encode(policies.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<Labels, Counter>::default();
        let request_seconds =
            Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(histogram);
        let lease_renewals = Family::<Labels, Counter>::default();
        let registered = Gauge::<i64, AtomicI64>::default();
        let service_syncs = Family::<Labels, Counter>::default();
        let service_sync_seconds = histogram();
        let announcements = Family::<Labels, Counter>::default();
        registry.register(
            "ferro_agent_services_syncs",
            "Services table syncs",
            service_syncs.clone(),
        );
        registry.register(
            "ferro_agent_services_sync_duration_seconds",
            "Time to compute and apply one services table sync",
            service_sync_seconds.clone(),
        );
        registry.register(
            "ferro_agent_lb_announcements",
            "Load-balancer addresses claimed, released or lost by this node",
            announcements.clone(),
        );
        registry.register(
            "ferro_agent_requests",
            "Socket requests answered",
            requests.clone(),
        );
        registry.register(
            "ferro_agent_request_duration_seconds",
            "Time to answer a socket request",
            request_seconds.clone(),
        );
        registry.register(
            "ferro_agent_lease_renewals",
            "Node lease renewals",
            lease_renewals.clone(),
        );
        registry.register(
            "ferro_agent_node_registered",
            "1 while the node holds its lease",
            registered.clone(),
        );
        let policy_syncs = Family::<Labels, Counter>::default();
        let policy_sync_seconds = histogram();
        let policy_chains = Gauge::<i64, AtomicI64>::default();
        let policy_elements = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "ferro_agent_policy_syncs",
            "NetworkPolicy syncs",
            policy_syncs.clone(),
        );
        registry.register(
            "ferro_agent_policy_sync_duration_seconds",
            "Time from a change seen to the NetworkPolicy table programmed",
            policy_sync_seconds.clone(),
        );
        registry.register(
            "ferro_agent_policy_chains",
            "Isolated pods of this node, per direction",
            policy_chains.clone(),
        );
        registry.register(
            "ferro_agent_policy_elements",
            "Elements of the NetworkPolicy sets and maps",
            policy_elements.clone(),
        );
        let policy = Arc::new(OnceLock::new());
        let egress = Arc::new(OnceLock::new());
        registry.register_collector(Box::new(DropCollector {
            policy: policy.clone(),
            egress: egress.clone(),
        }));
        let ipam = crate::ipam::metrics::IpamMetrics::register(&mut registry);
        let dns = crate::dns::DnsMetrics::register(&mut registry);
        let replayed = Family::<Labels, Counter>::default();
        registry.register(
            "ferro_agent_spool_replayed",
            "Spooled requests replayed",
            replayed.clone(),
        );
        let attachments = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "ferro_agent_attachments",
            "Attachments the node records",
            attachments.clone(),
        );
        let reconciles = Family::<Labels, Counter>::default();
        registry.register(
            "ferro_agent_membership_reconciles",
            "Membership passes",
            reconciles.clone(),
        );
        let reconcile_seconds = histogram();
        registry.register(
            "ferro_agent_membership_reconcile_duration_seconds",
            "Time of one membership pass",
            reconcile_seconds.clone(),
        );
        let gauge = |registry: &mut Registry, name: &str, help: &str| {
            let g = Gauge::<i64, AtomicI64>::default();
            registry.register(name, help, g.clone());
            g
        };
        let members = gauge(
            &mut registry,
            "ferro_agent_membership_nodes",
            "Other live nodes",
        );
        let peers = gauge(
            &mut registry,
            "ferro_agent_membership_peers",
            "VXLAN peers (pod subnets) programmed",
        );
        let routes = gauge(
            &mut registry,
            "ferro_agent_membership_routes",
            "Kubenet routes programmed",
        );
        Metrics {
            ipam,
            dns,
            registry,
            requests,
            request_seconds,
            lease_renewals,
            registered,
            service_syncs,
            service_sync_seconds,
            announcements,
            policy_syncs,
            policy_sync_seconds,
            policy_chains,
            policy_elements,
            policy,
            egress,
            replayed,
            attachments,
            reconciles,
            reconcile_seconds,
            members,
            peers,
            routes,
        }
    }
}

impl Metrics {
    /// Counts one answered request.
    pub fn request(&self, op: &str, result: &str, seconds: f64) {
        self.requests
            .get_or_create(&vec![
                ("op".to_string(), op.to_string()),
                ("result".to_string(), result.to_string()),
            ])
            .inc();
        self.request_seconds
            .get_or_create(&vec![("op".to_string(), op.to_string())])
            .observe(seconds);
    }

    /// Counts one lease renewal.
    pub fn renewal(&self, result: &str) {
        self.lease_renewals
            .get_or_create(&vec![("result".to_string(), result.to_string())])
            .inc();
    }

    /// Whether the node holds its lease.
    pub fn set_registered(&self, yes: bool) {
        self.registered.set(i64::from(yes));
    }

    /// Counts one services table sync.
    pub fn services_sync(&self, result: &str, seconds: f64) {
        self.service_syncs
            .get_or_create(&vec![("result".to_string(), result.to_string())])
            .inc();
        self.service_sync_seconds.observe(seconds);
    }

    /// Counts one load-balancer announcement event.
    pub fn announcement(&self, event: &str) {
        self.announcements
            .get_or_create(&vec![("event".to_string(), event.to_string())])
            .inc();
    }

    /// Counts one NetworkPolicy sync and what it programmed.
    pub fn policy_sync(&self, result: &str, seconds: f64, programmed: &Ruleset) {
        self.policy_syncs
            .get_or_create(&vec![("result".to_string(), result.to_string())])
            .inc();
        if result == "ok" {
            self.policy_sync_seconds.observe(seconds);
            self.policy_chains
                .set(i64::try_from(programmed.chains.len()).unwrap_or(i64::MAX));
            self.policy_elements
                .set(i64::try_from(programmed.elements()).unwrap_or(i64::MAX));
        }
    }

    /// The egress control whose drop counters are exported.
    pub fn set_egress(&self, egress: Arc<crate::egress::Egress>) {
        let _ = self.egress.set(egress);
    }

    /// Counts the drops of the NetworkPolicy loop `handle` from now on.
    pub fn set_policy(&self, handle: PolicyHandle) {
        let _ = self.policy.set(handle);
    }

    /// Counts what a spool replay did.
    pub fn replayed(&self, r: crate::api::Replayed) {
        for (result, n) in [("applied", r.applied), ("rejected", r.rejected)] {
            if n > 0 {
                self.replayed
                    .get_or_create(&vec![("result".to_string(), result.to_string())])
                    .inc_by(n as u64);
            }
        }
    }

    /// How many attachments the node records.
    pub fn set_attachments(&self, n: usize) {
        self.attachments.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Records one membership pass.
    pub fn membership(&self, seconds: f64, ok: bool, nodes: usize, peers: usize, routes: usize) {
        let result = if ok { "ok" } else { "error" };
        self.reconciles
            .get_or_create(&vec![("result".to_string(), result.to_string())])
            .inc();
        self.reconcile_seconds.observe(seconds);
        let n = |x: usize| i64::try_from(x).unwrap_or(i64::MAX);
        self.members.set(n(nodes));
        self.peers.set(n(peers));
        self.routes.set(n(routes));
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = encode(&mut s, &self.registry);
        s
    }
}

/// Serves `GET /metrics` (anything else: 404) on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    loop {
        let Ok((mut conn, _)) = listener.accept().await else {
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let mut n = 0;
            // Read the request head (bounded), then answer and close.
            while n < buf.len() {
                match tokio::time::timeout(
                    std::time::Duration::from_secs(5),
                    conn.read(&mut buf[n..]),
                )
                .await
                {
                    Ok(Ok(0)) | Err(_) | Ok(Err(_)) => break,
                    Ok(Ok(k)) => n += k,
                }
                if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            let head = String::from_utf8_lossy(&buf[..n]);
            let (status, ctype, body) = if head.starts_with("GET /metrics ") {
                (
                    "200 OK",
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    metrics.render(),
                )
            } else {
                (
                    "404 Not Found",
                    "text/plain",
                    "not found: try /metrics\n".to_string(),
                )
            };
            let reply = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = conn.write_all(reply.as_bytes()).await;
            let _ = conn.shutdown().await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_names_every_metric() {
        let m = Metrics::default();
        m.request("apply", "ok", 0.002);
        m.renewal("ok");
        m.set_registered(true);
        m.ipam.claim("ok", 0.002);
        m.ipam.holdings("ipv4", 1, 2, 70, 191);
        m.replayed(crate::api::Replayed {
            applied: 3,
            rejected: 1,
            left: 0,
        });
        m.set_attachments(2);
        m.membership(0.004, true, 2, 4, 0);
        m.membership(0.001, false, 2, 4, 0);
        let t = m.render();
        for want in [
            "ferro_agent_spool_replayed_total{result=\"applied\"} 3",
            "ferro_agent_spool_replayed_total{result=\"rejected\"} 1",
            "ferro_agent_attachments 2",
            "ferro_agent_membership_reconciles_total{result=\"ok\"} 1",
            "ferro_agent_membership_reconciles_total{result=\"error\"} 1",
            "ferro_agent_membership_reconcile_duration_seconds_count 2",
            "ferro_agent_membership_nodes 2",
            "ferro_agent_membership_peers 4",
            "ferro_agent_membership_routes 0",
            "ferro_agent_requests_total{op=\"apply\",result=\"ok\"} 1",
            "ferro_agent_request_duration_seconds_count{op=\"apply\"} 1",
            "ferro_agent_lease_renewals_total{result=\"ok\"} 1",
            "ferro_agent_node_registered 1",
            "ferro_agent_ipam_claims_total{result=\"ok\"} 1",
            "ferro_agent_ipam_claim_duration_seconds_count 1",
            "ferro_agent_ipam_blocks{family=\"ipv4\",mode=\"pod\"} 2",
            "ferro_agent_ipam_addresses_in_use{family=\"ipv4\"} 70",
        ] {
            assert!(t.contains(want), "missing {want} in\n{t}");
        }
    }
}
