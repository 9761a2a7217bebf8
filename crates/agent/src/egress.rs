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

#[derive(Debug, Default)]
struct State {
    inputs: Inputs,
    rules: Vec<NameRule>,
    /// (set, address) -> until when it is allowed.
    learned: BTreeMap<(String, IpAddr), Instant>,
    programmed: Option<Ruleset>,
}

/// The node's egress state, shared by its loop and the DNS server.
#[derive(Debug)]
pub struct Egress {
    state: Mutex<State>,
    floor: Duration,
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

    /// The pods denied by which policy, for `cnictl` and logs (pod address -> (pod,
    /// policy)).
    pub async fn denials(&self) -> BTreeMap<IpAddr, (String, String)> {
        plan::denials(&self.state.lock().await.inputs)
    }
}

async fn sync(st: &mut State) -> Result<(), String> {
    let mut learned: Learned = BTreeMap::new();
    for (set, ip) in st.learned.keys() {
        learned.entry(set.clone()).or_default().insert(*ip);
    }
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

/// The inputs of snapshot `s` for node `node`.
pub fn inputs_of(s: &Snapshot, node: &str) -> Inputs {
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
        if a.node != node {
            continue;
        }
        let labels = s
            .get(Kind::Pod, Some(ns), name)
            .map(|o| o.labels().clone())
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
    loop {
        let inputs = inputs_of(&snap, &node);
        {
            let mut st = egress.state.lock().await;
            let now = Instant::now();
            let before = st.learned.len();
            st.learned.retain(|_, until| *until > now);
            let expired = before - st.learned.len();
            if expired > 0 {
                log::debug!("egress: {expired} answered addresses expired");
            }
            if st.inputs != inputs {
                st.rules = plan::name_rules(&inputs);
                st.inputs = inputs;
            }
            if let Err(e) = sync(&mut st).await {
                log::warn!("egress: applying the table: {e}; rebuilding it in {TICK:?}");
            }
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
