//! The node firewall (the ClusterNetwork's `nodeFirewall`, opt-in): each snapshot of the
//! shared cache -> what the cluster publishes on this node (NodePorts, this node's pods'
//! hostPorts, load-balancer addresses it announces, external IPs) -> the desired
//! `inet ferro_nodefw` table ([`plan`], pure) -> the difference, one nf_tables batch.
//! Turning it off deletes the table.

pub mod plan;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferro_cluster::network::CLUSTER_NETWORK_NAME;
use ferro_cluster::{Kind, Object};
use ferro_nftables::{Batch, TableRef};
use ferro_services::model::Proto;
use ferro_services::plan::Ruleset;

use crate::cache::{Cache, Snapshot};
use plan::{Inputs, Line, TABLE};

/// What [`inputs_of`] reads (with the lease records and the announcements).
const KINDS: [Kind; 5] = [
    Kind::ClusterNetwork,
    Kind::Service,
    Kind::Pod,
    Kind::Attachment,
    Kind::Node,
];

const BACKOFF: Duration = Duration::from_secs(1);

/// The rules and their reasons as last applied (for `cnictl get nodefirewall`).
pub type Explained = Arc<Mutex<Vec<Line>>>;

/// The addresses of the live nodes of `s` (but `except`).
pub fn node_addresses(s: &Snapshot, except: Option<&str>) -> Vec<IpAddr> {
    let live: BTreeSet<&str> = s.live_nodes().collect();
    s.all(Kind::Node)
        .filter_map(|o| match o.as_ref() {
            Object::Node(n) if live.contains(o.name()) && Some(o.name()) != except => Some(n),
            _ => None,
        })
        .flat_map(|n| n.spec.addresses.iter().filter_map(|a| a.parse().ok()))
        .collect()
}

fn proto_number(p: Option<&str>) -> Option<u8> {
    Proto::parse(p).map(Proto::number)
}

/// The inputs of snapshot `s` for node `node`.
pub fn inputs_of(s: &Snapshot, node: &str) -> Inputs {
    let fw = match s
        .get(Kind::ClusterNetwork, None, CLUSTER_NETWORK_NAME)
        .map(|o| o.as_ref())
    {
        Some(Object::ClusterNetwork(c)) => {
            c.spec.node_firewall.as_ref().and_then(|f| f.checked().ok())
        }
        _ => None,
    };
    let Some(fw) = fw.filter(|f| f.enabled) else {
        return Inputs::default();
    };
    let mut open: BTreeMap<(u8, u16), Vec<String>> = BTreeMap::new();
    for x in &fw.extras {
        open.entry(*x)
            .or_default()
            .push("operator extra (nodeFirewall.allow)".into());
    }
    let mut open_addr: BTreeMap<(IpAddr, u8, u16), Vec<String>> = BTreeMap::new();
    for sp in crate::services::ports_of(s) {
        let svc = format!("{}/{}", sp.namespace, sp.service);
        let proto = sp.proto.number();
        if let Some(np) = sp.node_port {
            let why = format!("NodePort of {svc}");
            let e = open.entry((proto, np)).or_default();
            if !e.contains(&why) {
                e.push(why);
            }
        }
        for ip in &sp.external_ips {
            let why = format!("external IP of {svc}");
            open_addr
                .entry((*ip, proto, sp.port))
                .or_default()
                .push(why);
        }
        for ip in &sp.lb_ips {
            if s.announcement(*ip)
                .is_some_and(|a| a.announcement.node == node)
            {
                let why = format!("load-balancer address of {svc}, announced by this node");
                open_addr
                    .entry((*ip, proto, sp.port))
                    .or_default()
                    .push(why);
            }
        }
    }
    // this node's pods' hostPorts (portmap)
    let t = crate::services::topology(s);
    let addrs = ferro_services::model::pod_addresses(&t.attachments, &t.live_nodes);
    for ((ns, name), a) in &addrs {
        if a.node != node {
            continue;
        }
        let Some(p) = s.pod(ns, name) else {
            continue;
        };
        for cp in &p.ports {
            let (Some(hp), Some(proto)) = (
                cp.host_port
                    .and_then(|h| u16::try_from(h).ok())
                    .filter(|h| *h != 0),
                proto_number(cp.protocol.as_deref()),
            ) else {
                continue;
            };
            open.entry((proto, hp))
                .or_default()
                .push(format!("hostPort of pod {ns}/{name}"));
        }
    }
    let all_pod_cidrs = crate::services::settings(s)
        .map(|st| st.pod_cidrs)
        .unwrap_or_default();
    let every_node = node_addresses(s, None);
    let (wide, pod_cidrs): (Vec<_>, Vec<_>) = all_pod_cidrs
        .into_iter()
        .partition(|n| every_node.iter().any(|ip| n.contains(ip)));
    let pod_addrs = if wide.is_empty() {
        Vec::new()
    } else {
        addrs
            .values()
            .flat_map(|a| a.v4.iter().chain(&a.v6).copied())
            .filter(|ip| wide.iter().any(|n| n.contains(ip)))
            .collect::<BTreeSet<IpAddr>>()
            .into_iter()
            .collect()
    };
    let nodes = node_addresses(s, Some(node));
    Inputs {
        enabled: true,
        pod_cidrs,
        pod_addrs,
        nodes,
        open,
        open_addr,
    }
}

/// Runs the loop until the cache stops.
pub async fn run(mut cache: Cache, node: String, explained: Explained) {
    let Some(mut snap) = cache.ready().await else {
        return;
    };
    let t = TableRef::inet(TABLE);
    let mut programmed: Option<Ruleset> = None;
    let mut seen: Option<Inputs> = None;
    // The stamp of the snapshot `seen` came from: snapshots that changed nothing the
    // firewall reads cost nothing.
    let mut stamp: Option<Vec<u64>> = None;
    loop {
        let now_stamp = snap.stamp(&KINDS);
        let mut failed = false;
        let inputs = if seen.is_some() && stamp.as_ref() == Some(&now_stamp) {
            None
        } else {
            Some(inputs_of(&snap, &node))
        };
        stamp = Some(now_stamp);
        if let Some(inputs) = inputs.filter(|inputs| {
            seen.as_ref() != Some(inputs) || (inputs.enabled && programmed.is_none())
        }) {
            let batch = if inputs.enabled {
                let desired = plan::plan(&inputs);
                let b = ferro_services::diff::diff_in(&t, programmed.as_ref(), &desired);
                programmed = Some(desired);
                b
            } else {
                let mut b = Batch::new();
                // off: nothing of ours stays (also a table an earlier run left)
                b.add_table(&t).del_table(&t, false);
                programmed = None;
                b
            };
            let r = tokio::task::spawn_blocking(move || crate::services::apply(&batch))
                .await
                .unwrap_or_else(|e| Err(e.to_string()));
            match r {
                Ok(()) => {
                    *explained.lock().unwrap_or_else(|p| p.into_inner()) = plan::explain(&inputs);
                    if inputs.enabled {
                        log::info!(
                            "node firewall: {} ports and {} addressed ports open (revision {})",
                            inputs.open.len(),
                            inputs.open_addr.len(),
                            snap.revision()
                        );
                    }
                    seen = Some(inputs);
                }
                Err(e) => {
                    log::warn!(
                        "node firewall: applying the table: {e}; rebuilding it in {BACKOFF:?}"
                    );
                    programmed = None;
                    seen = None;
                    failed = true;
                }
            }
        }
        let next = if failed {
            tokio::select! {
                s = cache.changed() => s,
                _ = tokio::time::sleep(BACKOFF) => Some(cache.snapshot()),
            }
        } else {
            cache.changed().await
        };
        match next {
            Some(s) => snap = s,
            None => return,
        }
    }
}
