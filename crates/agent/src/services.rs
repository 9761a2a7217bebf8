//! The services loop: the shared cache's snapshots -> the service model and the desired
//! `inet ferro_services` table (pure, `ferro-services`) -> the one nftables batch of
//! differences, applied in the agent's network namespace.
//!
//! The first sync (and any sync after a failure) rebuilds the table whole in one
//! transaction, planned and encoded service by service so that the table is never in
//! memory whole as operations (the first sync of a large cluster is when the agent's memory
//! peaks); the others send only what changed. UDP conntrack entries whose replies come
//! from an endpoint that left a service are deleted after the table no longer sends there.
//! A failed sync is retried with a bounded back-off, on the latest snapshot.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferro_cluster::k8s_openapi::api::core::v1::Service;
use ferro_cluster::network::CLUSTER_NETWORK_NAME;
use ferro_cluster::resource::Attachment;
use ferro_cluster::{Kind, Object, PodView, Settings};
use ferro_services::model::{service_ports, Proto};
use ferro_services::plan::NodeFacts;
use ferro_services::{Planner, ServicePort, Topology};

use crate::cache::{Cache, Snapshot};
use crate::metrics::Metrics;

const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// The cluster's settings, when a valid ClusterNetwork exists.
pub fn settings(s: &Snapshot) -> Option<Settings> {
    match s
        .get(Kind::ClusterNetwork, None, CLUSTER_NETWORK_NAME)?
        .as_ref()
    {
        Object::ClusterNetwork(c) => c.settings().ok(),
        _ => None,
    }
}

/// The services, pods, attachments and live nodes of the snapshot.
pub fn topology(s: &Snapshot) -> Topology<'_> {
    let services: Vec<&Service> = s
        .all(Kind::Service)
        .filter_map(|o| match o.as_ref() {
            Object::Service(x) => Some(&**x),
            _ => None,
        })
        .collect();
    let pods: Vec<&PodView> = s.pods().map(|p| &**p).collect();
    let attachments: Vec<&Attachment> = s
        .all(Kind::Attachment)
        .filter_map(|o| match o.as_ref() {
            Object::Attachment(x) => Some(&**x),
            _ => None,
        })
        .collect();
    Topology {
        services,
        pods,
        attachments,
        live_nodes: s.live_nodes().collect::<BTreeSet<_>>(),
    }
}

/// Every service port of the snapshot, with its endpoints.
pub fn ports_of(s: &Snapshot) -> Vec<ServicePort> {
    service_ports(&topology(s))
}

/// The pod and service CIDRs of the cluster (none before a ClusterNetwork exists).
fn cidrs(s: &Snapshot) -> (Vec<ipnet::IpNet>, Vec<ipnet::IpNet>) {
    settings(s)
        .map(|st| (st.pod_cidrs, st.service_cidrs))
        .unwrap_or_default()
}

/// A UDP flow target: service address and port, endpoint address and port.
type UdpTarget = (IpAddr, u16, IpAddr, u16);

/// What UDP traffic to each virtual address may be sent to.
fn udp_targets(ports: &[ServicePort]) -> BTreeSet<UdpTarget> {
    let mut out = BTreeSet::new();
    for sp in ports.iter().filter(|p| p.proto == Proto::Udp) {
        let vips = sp
            .cluster_ip
            .iter()
            .chain(&sp.external_ips)
            .chain(&sp.lb_ips)
            .map(|ip| (*ip, sp.port));
        for (vip, port) in vips {
            for e in &sp.endpoints {
                out.insert((vip, port, e.ip, e.port));
            }
        }
    }
    out
}

/// Sends `batch` in one nf_tables transaction (the agent's network namespace).
pub(crate) fn apply(batch: &ferro_nftables::Batch) -> Result<(), String> {
    let mut sock = ferro_nftables::NftSocket::open().map_err(|e| e.to_string())?;
    sock.apply(batch).map_err(|e| e.to_string())
}

const IPPROTO_UDP: u8 = 17;

fn flush_udp(gone: &BTreeSet<UdpTarget>) {
    if gone.is_empty() {
        return;
    }
    // `conntrack -D -p udp --orig-dst <service address> --reply-src <endpoint>` for each:
    // without it a UDP client keeps sending to an endpoint that is gone until the entry
    // times out.
    let r = ferro_net::conntrack::dump().and_then(|entries| {
        let victims: Vec<_> = entries
            .into_iter()
            .filter(|e| {
                e.orig.proto == IPPROTO_UDP
                    && gone.iter().any(|(vip, port, ip, tport)| {
                        (e.orig.dst, e.orig.dport) == (*vip, *port)
                            && (e.reply.src, e.reply.sport) == (*ip, *tport)
                    })
            })
            .collect();
        ferro_net::conntrack::delete(&victims)
    });
    match r {
        Ok(n) if n > 0 => {
            log::info!("services: deleted {n} UDP conntrack entries of removed endpoints")
        }
        Ok(_) => {}
        Err(e) => log::warn!("services: {e}"),
    }
}

/// The generations of what the table is computed from.
type Inputs = [u64; 5];

fn inputs(s: &Snapshot) -> Inputs {
    [
        s.generation(Kind::Service),
        s.generation(Kind::Pod),
        s.generation(Kind::Attachment),
        s.generation(Kind::ClusterNetwork),
        s.lease_generation(),
    ]
}

/// Turns forwarding on for the families of `ports`' endpoints: a node that has no pod yet
/// (the plugins turn it on at a pod's ADD) still forwards its Services' traffic (NodePorts,
/// load-balancer addresses it announces) to the endpoints of other nodes.
fn ensure_forwarding(ports: &[ServicePort]) {
    let (v4, v6) = ports
        .iter()
        .flat_map(|p| &p.endpoints)
        .fold((false, false), |(v4, v6), e| {
            (v4 || e.ip.is_ipv4(), v6 || e.ip.is_ipv6())
        });
    if v4 || v6 {
        if let Err(e) = ferro_net::attach::ensure_forwarding(v4, v6) {
            log::warn!("services: turning forwarding on: {e}");
        }
    }
}

/// Runs the loop until the cache stops.
pub async fn run(mut cache: Cache, node: String, metrics: Arc<Metrics>) {
    let Some(mut snap) = cache.ready().await else {
        return;
    };
    let mut planner = Planner::new();
    let mut programmed = false;
    let mut targets: BTreeSet<UdpTarget> = BTreeSet::new();
    let mut backoff = BACKOFF_MIN;
    let mut seen: Option<Inputs> = None;
    loop {
        // Snapshots that changed nothing the table depends on (policies, IPAM blocks...) cost
        // nothing.
        let inputs = inputs(&snap);
        if programmed && seen == Some(inputs) {
            match cache.changed().await {
                Some(s) => snap = s,
                None => return,
            }
            continue;
        }
        seen = Some(inputs);
        let t0 = Instant::now();
        let ports = ports_of(&snap);
        let (pod_cidrs, service_cidrs) = cidrs(&snap);
        let mut batch = planner.update(
            &ports,
            &NodeFacts {
                node: &node,
                pod_cidrs: &pod_cidrs,
                service_cidrs: &service_cidrs,
            },
        );
        let mut failed = false;
        if !batch.is_empty() {
            let ops = batch.len();
            let full = batch.is_load();
            let r = tokio::task::spawn_blocking(move || {
                let mut sock = ferro_nftables::NftSocket::open().map_err(|e| e.to_string())?;
                batch.apply(&mut sock).map_err(|e| e.to_string())
            })
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
            let secs = t0.elapsed().as_secs_f64();
            match r {
                Ok(()) => {
                    metrics.services_sync("ok", secs);
                    let endpoints: usize = ports.iter().map(|p| p.endpoints.len()).sum();
                    log::info!(
                        "services: {} {} service ports, {endpoints} endpoints: {ops} operations in {:.1} ms (revision {})",
                        if full { "programmed" } else { "updated" },
                        ports.len(),
                        secs * 1000.0,
                        snap.revision()
                    );
                    planner.applied();
                    programmed = true;
                    backoff = BACKOFF_MIN;
                    ensure_forwarding(&ports);
                    let now = udp_targets(&ports);
                    let gone: BTreeSet<UdpTarget> = targets.difference(&now).copied().collect();
                    targets = now;
                    tokio::task::spawn_blocking(move || flush_udp(&gone));
                }
                Err(e) => {
                    metrics.services_sync("error", secs);
                    log::warn!("services: applying the table: {e}; rebuilding it in {backoff:?}");
                    planner.forget();
                    programmed = false;
                    failed = true;
                }
            }
        }
        let next = if failed {
            tokio::select! {
                s = cache.changed() => s,
                _ = tokio::time::sleep(backoff) => Some(cache.snapshot()),
            }
        } else {
            cache.changed().await
        };
        if failed {
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
        match next {
            Some(s) => snap = s,
            None => return,
        }
    }
}
