//! Egress control (the `egress` key, on by default): the EgressPolicies of the shared
//! cache's snapshots and this node's pods -> the desired `inet ferro_egress` table ([`plan`],
//! pure) -> the difference, one nf_tables batch (the whole table at start and after a
//! failure).
//!
//! Names: the cluster DNS server hands every reply to [`Egress::observe`] before sending it.
//! When the question (or a name of the answer's CNAME chain) is allowed to the asking pod by
//! a policy selecting it, the answer's addresses go into that rule's set, and the set is in
//! the kernel before the pod gets the reply: its first connection passes. Each address
//! stays for the record's TTL (at least `egressMinTTL` seconds), renewed by every answer
//! that carries it; connections opened meanwhile outlive it (conntrack).

pub mod plan;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferro_agent_api::policy::{EgressDrops, EgressVerdict};
use ferro_agent_api::{ApiError, ErrorCode};
use ferro_cluster::egress::EgressPolicy;
use ferro_cluster::{Kind, Object};
use ferro_dns::hickory_proto::op::Message;
use ferro_dns::hickory_proto::rr::RData;
use ferro_nftables::TableRef;
use ferro_services::plan::Ruleset;
use tokio::sync::Mutex;

use crate::cache::{Cache, Snapshot};
use plan::{Inputs, Learned, LocalPod, NameRule, TABLE};

/// How often expired answers are taken out of the sets (and a failed sync retried).
const TICK: Duration = Duration::from_secs(1);
/// What [`inputs_of`] reads (with the lease records).
const KINDS: [Kind; 5] = [
    Kind::EgressPolicy,
    Kind::Pod,
    Kind::Attachment,
    Kind::ClusterNetwork,
    Kind::Node,
];

#[derive(Debug, Default)]
struct State {
    inputs: Inputs,
    rules: Vec<NameRule>,
    /// (set, address) -> until when it is allowed.
    learned: BTreeMap<(String, IpAddr), Instant>,
    programmed: Option<Ruleset>,
    /// The snapshot `inputs` came from (explanations look at pods of every node).
    snapshot: Option<Arc<Snapshot>>,
}

/// The node's egress state, shared by its loop and the DNS server.
#[derive(Debug)]
pub struct Egress {
    state: Mutex<State>,
    floor: Duration,
    /// The drop counters as last read (for the metrics).
    drops: std::sync::Mutex<Vec<EgressDrops>>,
}

/// The names a reply speaks of: its question, and the owners and targets of its answers.
fn names_of(reply: &Message) -> Vec<String> {
    let mut out: Vec<String> = reply.queries.iter().map(|q| q.name().to_ascii()).collect();
    for r in &reply.answers {
        out.push(r.name.to_ascii());
        if let RData::CNAME(c) = &r.data {
            out.push(c.0.to_ascii());
        }
    }
    out
}

impl Egress {
    /// With answers kept at least `floor`.
    pub fn new(floor: Duration) -> Egress {
        Egress {
            state: Mutex::new(State::default()),
            floor,
            drops: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Called with each DNS reply before it is sent to `client`: the addresses it carries
    /// for names a policy allows `client` are in the kernel when this returns.
    pub async fn observe(&self, client: IpAddr, reply: &Message) {
        let addrs: Vec<(IpAddr, u32)> = reply
            .answers
            .iter()
            .filter_map(|r| Some((r.data.ip_addr()?, r.ttl)))
            .collect();
        if addrs.is_empty() {
            return;
        }
        let names = names_of(reply);
        let mut st = self.state.lock().await;
        let sets: Vec<String> = st
            .rules
            .iter()
            .filter(|r| r.allows(client, &names))
            .flat_map(|r| addrs.iter().map(|(ip, _)| r.set_for(*ip).to_string()))
            .collect();
        if sets.is_empty() {
            return;
        }
        let now = Instant::now();
        let mut new = false;
        for set in sets {
            for (ip, ttl) in addrs
                .iter()
                .filter(|(ip, _)| set.starts_with(if ip.is_ipv6() { "dns6" } else { "dns4" }))
            {
                let until = now + Duration::from_secs(u64::from(*ttl)).max(self.floor);
                let e = st.learned.entry((set.clone(), *ip)).or_insert_with(|| {
                    new = true;
                    until
                });
                *e = (*e).max(until);
            }
        }
        if new {
            if let Err(e) = sync(&mut st).await {
                log::warn!("egress: adding answered addresses: {e}");
            }
        }
    }

    /// The drops of this node's pods, read from the kernel now.
    pub async fn drops(&self) -> Result<Vec<EgressDrops>, String> {
        let denied = plan::denials(&self.state.lock().await.inputs);
        if denied.is_empty() {
            // no Deny policy selects a pod here: nothing to read from the kernel
            self.drops.lock().unwrap_or_else(|e| e.into_inner()).clear();
            return Ok(Vec::new());
        }
        let counters = crate::policy::kernel::read_counters(TableRef::inet(TABLE)).await?;
        let mut seen = BTreeMap::new();
        for d in denied.into_values() {
            let (packets, bytes) = counters.get(&d.counter).copied().unwrap_or((0, 0));
            let (namespace, pod) = d.pod.split_once('/').unwrap_or(("", &d.pod));
            seen.entry(d.counter).or_insert(EgressDrops {
                namespace: namespace.to_string(),
                pod: pod.to_string(),
                policy: d.policy,
                packets,
                bytes,
            });
        }
        let drops: Vec<EgressDrops> = seen.into_values().collect();
        *self.drops.lock().unwrap_or_else(|e| e.into_inner()) = drops.clone();
        Ok(drops)
    }

    /// The drops as last read.
    pub fn last_drops(&self) -> Vec<EgressDrops> {
        self.drops.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The egress part of an explanation: `from` (`namespace/pod`, a pod of `default` or a
    /// pod's address) connecting to `to` (an address, or a pod: inside the cluster).
    /// Returns the addresses used and the verdict; `None` when `from` is not a pod.
    pub async fn explain(
        &self,
        from: &str,
        to: &str,
        proto: u8,
        port: Option<u16>,
        v6: bool,
    ) -> Result<Option<(IpAddr, IpAddr, EgressVerdict)>, ApiError> {
        let st = self.state.lock().await;
        let Some(snap) = &st.snapshot else {
            return Ok(None);
        };
        let all = inputs_of(snap, None);
        let pick = |p: &LocalPod, v6: bool| {
            p.ips
                .iter()
                .copied()
                .find(|a| a.is_ipv6() == v6)
                .or_else(|| p.ips.first().copied())
        };
        let find = |s: &str| -> Option<&LocalPod> {
            if let Ok(a) = s.parse::<IpAddr>() {
                return all.pods.iter().find(|p| p.ips.contains(&a));
            }
            let (ns, name) = s.split_once('/').unwrap_or(("default", s));
            all.pods
                .iter()
                .find(|p| p.namespace == ns && p.name == name)
        };
        let Some(pod) = find(from) else {
            return Ok(None);
        };
        let src = from
            .parse::<IpAddr>()
            .ok()
            .or_else(|| pick(pod, v6))
            .ok_or_else(|| {
                ApiError::new(ErrorCode::NotFound, format!("pod {from} has no address"))
            })?;
        let dst = match to.parse::<IpAddr>() {
            Ok(a) => a,
            Err(_) => find(to)
                .and_then(|p| pick(p, src.is_ipv6()))
                .ok_or_else(|| {
                    ApiError::new(
                        ErrorCode::NotFound,
                        format!(
                            "pod {to} has no address (no attachment reported): give an address"
                        ),
                    )
                })?,
        };
        let here = st.inputs.pods.iter().any(|p| p == pod);
        let learned = here.then(|| learned_of(&st.learned));
        let d = plan::decide(&all, learned.as_ref(), pod, dst, proto, port);
        Ok(Some((
            src,
            dst,
            EgressVerdict {
                allowed: d.allowed,
                policy: d.policy,
                rule: d.rule,
                text: d.text,
            },
        )))
    }
}

/// The learned addresses per set.
fn learned_of(learned: &BTreeMap<(String, IpAddr), Instant>) -> Learned {
    let mut out: Learned = BTreeMap::new();
    for (set, ip) in learned.keys() {
        out.entry(set.clone()).or_default().insert(*ip);
    }
    out
}

async fn sync(st: &mut State) -> Result<(), String> {
    let learned = learned_of(&st.learned);
    let desired = plan::plan(&st.inputs, &learned);
    let batch =
        ferro_services::diff::diff_in(&TableRef::inet(TABLE), st.programmed.as_ref(), &desired);
    if batch.is_empty() {
        return Ok(());
    }
    let full = st.programmed.is_none();
    let ops = batch.len();
    let r = tokio::task::spawn_blocking(move || crate::services::apply(&batch))
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
    match r {
        Ok(()) => {
            log::debug!(
                "egress: {} ({ops} operations)",
                if full { "table programmed" } else { "updated" }
            );
            st.programmed = Some(desired);
            Ok(())
        }
        Err(e) => {
            st.programmed = None;
            Err(e)
        }
    }
}

/// The inputs of snapshot `s` for node `node` (`None`: with the pods of every node).
pub fn inputs_of(s: &Snapshot, node: Option<&str>) -> Inputs {
    let mut policies: Vec<ferro_cluster::egress::Egress> = s
        .all(Kind::EgressPolicy)
        .filter_map(|o| match o.as_ref() {
            Object::EgressPolicy(p) => checked(p),
            _ => None,
        })
        .collect();
    policies.sort_by(|a, b| a.name.cmp(&b.name));
    let t = crate::services::topology(s);
    let addrs = ferro_services::model::pod_addresses(&t.attachments, &t.live_nodes);
    let mut pods = Vec::new();
    for ((ns, name), a) in &addrs {
        if node.is_some_and(|n| n != a.node) {
            continue;
        }
        let labels = s
            .pod(ns, name)
            .map(|p| (*p.labels).clone())
            .unwrap_or_default();
        pods.push(LocalPod {
            namespace: ns.to_string(),
            name: name.to_string(),
            labels,
            ips: a.v4.iter().chain(&a.v6).copied().collect(),
        });
    }
    let cluster = crate::services::settings(s)
        .map(|st| st.pod_cidrs.into_iter().chain(st.service_cidrs).collect())
        .unwrap_or_default();
    let nodes = crate::nodefw::node_addresses(s, None);
    Inputs {
        policies,
        pods,
        cluster,
        nodes,
    }
}

fn checked(p: &EgressPolicy) -> Option<ferro_cluster::egress::Egress> {
    match p.checked() {
        Ok(e) => Some(e),
        Err(e) => {
            log::warn!(
                "egress: policy {}: {} (ignored)",
                p.metadata.name.as_deref().unwrap_or_default(),
                e.join("; ")
            );
            None
        }
    }
}

/// Runs the loop until the cache stops.
pub async fn run(egress: Arc<Egress>, mut cache: Cache, node: String) {
    let Some(mut snap) = cache.ready().await else {
        return;
    };
    let mut tick = tokio::time::interval(TICK);
    // The stamp of the snapshot the inputs were last computed from: snapshots (and ticks)
    // that changed nothing egress reads cost nothing.
    let mut stamp: Option<Vec<u64>> = None;
    loop {
        let now_stamp = snap.stamp(&KINDS);
        let inputs = (stamp.as_ref() != Some(&now_stamp)).then(|| inputs_of(&snap, Some(&node)));
        stamp = Some(now_stamp);
        {
            let mut st = egress.state.lock().await;
            let now = Instant::now();
            let before = st.learned.len();
            st.learned.retain(|_, until| *until > now);
            let expired = before - st.learned.len();
            if expired > 0 {
                log::debug!("egress: {expired} answered addresses expired");
            }
            let mut changed = false;
            if let Some(inputs) = inputs.filter(|i| *i != st.inputs) {
                st.rules = plan::name_rules(&inputs);
                st.inputs = inputs;
                changed = true;
            }
            st.snapshot = Some(snap.clone());
            if changed || expired > 0 || st.programmed.is_none() {
                if let Err(e) = sync(&mut st).await {
                    log::warn!("egress: applying the table: {e}; rebuilding it in {TICK:?}");
                }
            }
        }
        if let Err(e) = egress.drops().await {
            log::debug!("egress: reading the drop counters: {e}");
        }
        tokio::select! {
            s = cache.changed() => match s {
                Some(s) => snap = s,
                None => return,
            },
            _ = tick.tick() => {}
        }
    }
}
