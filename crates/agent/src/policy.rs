//! NetworkPolicy on this node: the loop that keeps table `inet ferro_policy` equal to what the
//! cluster asks, and what the API reads from it (explanations, drop counters).
//!
//! ```text
//! cache snapshot (namespaces, pods, attachments, policies, nodes)
//!   + attachments reported a moment ago, not yet in a snapshot
//!   -> the loop's model (ferro-policy's LiveCluster, updated with the objects that changed)
//!   -> this node's classes (named as programmed where they only changed key) -> Ruleset
//!   -> one nf_tables batch: everything at start, the difference afterwards
//!   -> conntrack entries of connections the change forbids, deleted
//! ```
//!
//! - A sync runs whenever a snapshot changed one of the kinds policy reads (per-kind
//!   generations), or an attachment was reported; snapshots that arrive while a sync runs
//!   are folded into the next one.
//! - A pod is never reachable against policy, not even for its first packet: the plugins
//!   report an attachment during ADD, and the agent programs the pod's policy before it
//!   answers ([`PolicyHandle::attached`]); until the runtime has its ADD answer, nothing runs
//!   in the pod.
//! - A batch the kernel refuses is logged, and the next sync replaces the whole table (in
//!   one transaction), with a bounded back-off.
//! - After a change that can deny what was allowed (elements removed, a pod newly
//!   isolated), the conntrack entries of the node's pods are checked against the new sets
//!   and those now denied are deleted: such connections stop, the others are not touched.

pub(crate) mod kernel;
pub mod log;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use ferro_agent_api::policy::{Explanation, PodDrops, PolicyDrops, PolicyStats};
use ferro_agent_api::{ApiError, ErrorCode};
use ferro_cluster::resource::Attachment;
use ferro_cluster::{Kind, Object};
use ferro_policy::ruleset::{self, Changes, LogOptions, Ruleset};
use ferro_policy::{decide, node_policy, Cluster, Key, LiveCluster, NodePolicy};
use tokio::sync::{mpsc, oneshot, watch};

use crate::cache::{Cache, Snapshot};
use crate::metrics::Metrics;

/// The kinds a sync reads.
const KINDS: [Kind; 5] = [
    Kind::Namespace,
    Kind::Pod,
    Kind::Attachment,
    Kind::NetworkPolicy,
    Kind::Node,
];
/// Back-off bounds after a failed sync.
const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// How long a reported attachment waits for its sync before the report is answered anyway.
pub const ATTACH_WAIT: Duration = Duration::from_millis(1500);
/// How often drop counters are read for the metrics.
const COUNTERS_EVERY: Duration = Duration::from_secs(5);

/// What the loop needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyConfig {
    /// This node's name.
    pub node: String,
    /// Logging of denied connection attempts.
    pub deny_log: Option<LogOptions>,
}

/// What is programmed, as of one sync.
#[derive(Debug)]
pub struct Programmed {
    /// The store revision of the snapshot it came from.
    pub revision: i64,
    /// What this node enforces.
    pub node: Arc<NodePolicy>,
    /// The table's objects.
    pub ruleset: Arc<Ruleset>,
}

/// A note to the loop from outside.
enum Note {
    /// An attachment was reported made: program it, then answer.
    Attached(Box<Attachment>, oneshot::Sender<()>),
    /// An attachment (by store key) was reported gone.
    Detached(String),
}

/// The loop's model of the cluster, kept up to date from snapshot to snapshot: a sync costs
/// what changed since the last one, not the size of the cluster.
#[derive(Debug, Default)]
pub(crate) struct Model {
    live: LiveCluster,
    /// The snapshot it reflects (none before the first sync).
    seen: Option<Arc<Snapshot>>,
    /// The keys of the pending attachments laid over it last time.
    overlaid: BTreeSet<String>,
}

impl Model {
    /// Brings the model to `snapshot` with `pending` attachments (by store key; `None`:
    /// gone) laid over it.
    pub(crate) fn update(
        &mut self,
        snapshot: &Arc<Snapshot>,
        pending: &BTreeMap<String, Option<Attachment>>,
    ) {
        let mut overlay: BTreeSet<String> = self.overlaid.iter().cloned().collect();
        overlay.extend(pending.keys().cloned());
        let pods = match &self.seen {
            Some(before) => snapshot.pod_changes_since(before),
            None => snapshot.pods_keyed().map(|(k, p)| (k, Some(p))).collect(),
        };
        for (key, p) in pods {
            match p {
                Some(p) => self.live.put_pod(p),
                None => self.live.remove(key),
            }
        }
        for kind in KINDS.into_iter().filter(|k| *k != Kind::Pod) {
            let changes: Vec<(&str, Option<&Arc<Object>>)> = match &self.seen {
                Some(before) => snapshot.changes_since(before, kind),
                None => snapshot
                    .all_keyed(kind)
                    .map(|(k, o)| (k, Some(o)))
                    .collect(),
            };
            for (key, o) in changes {
                if kind == Kind::Attachment && overlay.contains(key) {
                    continue;
                }
                match o {
                    Some(o) => self.live.put(key, o),
                    None => self.live.remove(key),
                }
            }
        }
        for key in &overlay {
            match pending.get(key) {
                Some(Some(a)) => self.live.put_attachment(key, a),
                Some(None) => self.live.remove(key),
                None => match snapshot.get_key(Kind::Attachment, key) {
                    Some(o) => self.live.put(key, o),
                    None => self.live.remove(key),
                },
            }
        }
        self.overlaid = pending.keys().cloned().collect();
        self.seen = Some(snapshot.clone());
        self.live.cluster();
    }

    /// The cluster as of the last update (`None` before the first).
    pub(crate) fn cluster(&self) -> Option<&Cluster> {
        self.seen.as_ref().map(|_| self.live.settled())
    }
}

#[derive(Debug)]
struct Shared {
    node: String,
    programmed: RwLock<Option<Arc<Programmed>>>,
    /// The cluster as the loop last saw it.
    model: RwLock<Model>,
    /// Drop counters as last read, by counter name.
    counters: Mutex<BTreeMap<String, (u64, u64)>>,
    /// Syncs done (moves after every successful sync).
    syncs: watch::Sender<u64>,
}

/// The loop's handle: what the API and the attachment reports use.
#[derive(Debug, Clone)]
pub struct PolicyHandle {
    shared: Arc<Shared>,
    tx: mpsc::UnboundedSender<Note>,
    cache: Cache,
}

impl PolicyHandle {
    /// The last programmed state, once the first sync is done.
    pub fn programmed(&self) -> Option<Arc<Programmed>> {
        self.shared
            .programmed
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Programs `a` (an attachment of this node a plugin just reported) before returning:
    /// the pod's ingress and egress are enforced from its first packet. Returns after at
    /// most [`ATTACH_WAIT`] (logged when it takes longer).
    pub async fn attached(&self, a: Attachment) {
        let (tx, rx) = oneshot::channel();
        let name = format!(
            "{}/{}",
            a.metadata.namespace.as_deref().unwrap_or_default(),
            a.metadata.name.as_deref().unwrap_or_default()
        );
        if self.tx.send(Note::Attached(Box::new(a), tx)).is_err() {
            return;
        }
        if tokio::time::timeout(ATTACH_WAIT, rx).await.is_err() {
            ::log::warn!("policy: attachment {name} not programmed within {ATTACH_WAIT:?}");
        }
    }

    /// Forgets the attachment with store key `key` at once (DEL reported).
    pub fn detached(&self, key: String) {
        let _ = self.tx.send(Note::Detached(key));
    }

    /// Waits until a sync has programmed a snapshot of at least `revision` (tests,
    /// benchmarks); `false` on timeout.
    pub async fn wait_revision(&self, revision: i64, timeout: Duration) -> bool {
        let mut rx = self.shared.syncs.subscribe();
        let done = || self.programmed().is_some_and(|p| p.revision >= revision);
        tokio::time::timeout(timeout, async {
            while !done() {
                if rx.changed().await.is_err() {
                    return false;
                }
            }
            true
        })
        .await
        .unwrap_or(false)
    }

    /// `policyExplain`: the decision for a connection from `from` to `to`, from the loop's
    /// model as of its last sync (or the cache's latest snapshot, before the first sync).
    pub fn explain(
        &self,
        from: &str,
        to: &str,
        port: u16,
        protocol: &str,
        family: Option<u8>,
    ) -> Result<Explanation, ApiError> {
        let model = self.shared.model.read().unwrap_or_else(|e| e.into_inner());
        match model.cluster() {
            Some(c) => explain(c, from, to, port, protocol, family),
            None => explain(
                &cluster_of(&self.cache.snapshot(), &BTreeMap::new()),
                from,
                to,
                port,
                protocol,
                family,
            ),
        }
    }

    /// `policyStats`: drops of this node's pods, read from the kernel now.
    pub async fn stats(&self, namespace: Option<&str>) -> Result<PolicyStats, ApiError> {
        let counters = kernel::read_counters(ferro_policy::ruleset::table())
            .await
            .map_err(|e| ApiError::new(ErrorCode::Internal, format!("policy: {e}")))?;
        *self
            .shared
            .counters
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = counters.clone();
        let Some(p) = self.programmed() else {
            return Ok(PolicyStats {
                node: self.shared.node.clone(),
                ..PolicyStats::default()
            });
        };
        let mut s = stats_of(&p, &counters);
        s.node = self.shared.node.clone();
        s.revision = p.revision;
        if let Some(ns) = namespace {
            s.pods.retain(|d| d.namespace == ns);
            s.policies.retain(|d| d.namespace == ns);
        }
        Ok(s)
    }

    /// The drop counters as last read, with what they count: for the metrics.
    pub fn last_stats(&self) -> Option<PolicyStats> {
        let p = self.programmed()?;
        let counters = self
            .shared
            .counters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        Some(stats_of(&p, &counters))
    }
}

/// The per-pod and per-policy drop counts of `p`, from the counters' values.
pub fn stats_of(p: &Programmed, counters: &BTreeMap<String, (u64, u64)>) -> PolicyStats {
    let mut pods = Vec::new();
    let mut by_policy: BTreeMap<Key, (BTreeMap<Key, ()>, u64, u64)> = BTreeMap::new();
    for (name, chain) in &p.ruleset.chains {
        let (packets, bytes) = counters.get(name).copied().unwrap_or((0, 0));
        let policies: Vec<String> = p
            .node
            .classes
            .get(&chain.class)
            .map(|c| c.key.policies.clone())
            .unwrap_or_default();
        for pol in &policies {
            let e = by_policy
                .entry(Key::new(chain.pod.namespace.clone(), pol.clone()))
                .or_default();
            e.0.insert(chain.pod.clone(), ());
            e.1 += packets;
            e.2 += bytes;
        }
        pods.push(PodDrops {
            namespace: chain.pod.namespace.to_string(),
            pod: chain.pod.name.to_string(),
            direction: chain.dir.to_string(),
            policies,
            packets,
            bytes,
        });
    }
    PolicyStats {
        node: String::new(),
        revision: p.revision,
        pods,
        policies: by_policy
            .into_iter()
            .map(|(k, (pods, packets, bytes))| PolicyDrops {
                namespace: k.namespace.to_string(),
                policy: k.name.to_string(),
                pods: pods.len(),
                packets,
                bytes,
            })
            .collect(),
        egress: Vec::new(),
    }
}

/// Resolves an endpoint: `ns/pod`, `pod` (in `default`) or an address.
fn endpoint(c: &Cluster, s: &str, v6: bool) -> Result<IpAddr, ApiError> {
    if let Ok(a) = s.parse::<IpAddr>() {
        return Ok(a);
    }
    let key = Key::parse(s);
    let pod = c.pod(&key).ok_or_else(|| {
        ApiError::new(
            ErrorCode::NotFound,
            format!("pod {key} has no address (no attachment reported): give an address"),
        )
    })?;
    pod.addrs
        .iter()
        .copied()
        .find(|a| a.is_ipv6() == v6)
        .or_else(|| pod.addrs.first().copied())
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("pod {key} has no address")))
}

/// The IP protocol number of `protocol` (`TCP`, `UDP`, `SCTP`, `ICMP`, `ICMPv6`, a number).
pub(crate) fn protocol_number(protocol: &str) -> Result<u8, ApiError> {
    match protocol.to_ascii_uppercase().as_str() {
        "TCP" => Ok(6),
        "UDP" => Ok(17),
        "SCTP" => Ok(132),
        "ICMP" => Ok(1),
        "ICMPV6" | "IPV6-ICMP" => Ok(58),
        n => n.parse().map_err(|_| {
            ApiError::new(
                ErrorCode::BadRequest,
                format!("protocol {protocol:?}: not TCP, UDP, SCTP, ICMP, ICMPv6 or a number"),
            )
        }),
    }
}

/// The decision for `from` -> `to` in `c`.
pub fn explain(
    c: &Cluster,
    from: &str,
    to: &str,
    port: u16,
    protocol: &str,
    family: Option<u8>,
) -> Result<Explanation, ApiError> {
    // Without a family: the destination address's, else IPv4.
    let v6 = match family {
        None => to.parse::<IpAddr>().is_ok_and(|a| a.is_ipv6()),
        Some(4) => false,
        Some(6) => true,
        Some(f) => {
            return Err(ApiError::new(
                ErrorCode::BadRequest,
                format!("family {f}: 4 or 6"),
            ))
        }
    };
    let proto = protocol_number(protocol)?;
    let src = endpoint(c, from, v6)?;
    let dst = endpoint(c, to, src.is_ipv6())?;
    if src.is_ipv6() != dst.is_ipv6() {
        return Err(ApiError::new(
            ErrorCode::BadRequest,
            format!("{src} and {dst} are of different address families"),
        ));
    }
    let ports = matches!(proto, 6 | 17 | 132);
    let d = decide(c, src, dst, proto, ports.then_some(port));
    Ok(Explanation {
        allowed: d.allowed,
        text: ferro_policy::decide::explain(c, &d),
        egress: None,
        decision: serde_json::to_value(&d).unwrap_or_default(),
        from_address: src.to_string(),
        to_address: dst.to_string(),
    })
}

/// The cluster of `snapshot`, with `pending` attachments (by store key; `None`: gone) laid
/// over it.
fn cluster_of(snapshot: &Snapshot, pending: &BTreeMap<String, Option<Attachment>>) -> Cluster {
    let mut live = LiveCluster::new();
    for p in snapshot.pods() {
        live.put_pod(p);
    }
    for (key, o) in KINDS
        .iter()
        .filter(|k| **k != Kind::Pod)
        .flat_map(|k| snapshot.all_keyed(*k))
        .filter(|(key, _)| !pending.contains_key(*key))
    {
        live.put(key, o);
    }
    for (key, a) in pending.iter().filter_map(|(k, a)| Some((k, a.as_ref()?))) {
        live.put_attachment(key, a);
    }
    live.into_cluster()
}

fn generations(s: &Snapshot) -> [u64; 5] {
    KINDS.map(|k| s.generation(k))
}

/// Starts the loop; the handle serves the API and the attachment reports.
pub fn spawn(
    cache: Cache,
    cfg: PolicyConfig,
    metrics: Arc<Metrics>,
) -> (PolicyHandle, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let (syncs, _) = watch::channel(0);
    let shared = Arc::new(Shared {
        node: cfg.node.clone(),
        programmed: RwLock::new(None),
        model: RwLock::new(Model::default()),
        counters: Mutex::new(BTreeMap::new()),
        syncs,
    });
    let handle = PolicyHandle {
        shared: shared.clone(),
        tx,
        cache: cache.clone(),
    };
    metrics.set_policy(handle.clone());
    let task = tokio::spawn(run(cache, cfg, shared, rx, metrics));
    (handle, task)
}

async fn run(
    mut cache: Cache,
    cfg: PolicyConfig,
    shared: Arc<Shared>,
    mut rx: mpsc::UnboundedReceiver<Note>,
    metrics: Arc<Metrics>,
) {
    let Some(mut snapshot) = cache.ready().await else {
        return;
    };
    let mut handled: Option<[u64; 5]> = None;
    let mut programmed: Option<Ruleset> = None;
    // Attachments reported but maybe not in a snapshot yet, by store key; their waiters.
    let mut pending: BTreeMap<String, Option<Attachment>> = BTreeMap::new();
    let mut waiters: Vec<(String, oneshot::Sender<()>)> = Vec::new();
    let mut backoff = BACKOFF_MIN;
    let mut failed = false;
    let mut counters_at = Instant::now();
    let _deny_log = cfg.deny_log.map(|o| log::DenyLog::start(o, shared.clone()));
    loop {
        let gens = generations(&snapshot);
        if failed || handled != Some(gens) || !waiters.is_empty() {
            // Pending attachments the snapshot now holds (as reported) are no longer owed.
            pending.retain(|key, a| {
                match (
                    a,
                    snapshot.get_key(Kind::Attachment, key).map(|o| o.as_ref()),
                ) {
                    (Some(a), Some(Object::Attachment(s))) => s.spec != a.spec,
                    (None, None) => false,
                    _ => true,
                }
            });
            let t0 = Instant::now();
            match sync(&cfg, &shared, &snapshot, &pending, programmed.as_ref()).await {
                Ok((state, next, changes)) => {
                    let elapsed = t0.elapsed();
                    metrics.policy_sync("ok", elapsed.as_secs_f64(), &next);
                    if changes.added + changes.removed + changes.chains + changes.sets > 0 {
                        ::log::info!(
                            "policy: programmed revision {} in {elapsed:.1?}: {} pods isolated, {} elements (+{} -{}), {} chains and {} sets changed",
                            state.revision,
                            next.chains.len(),
                            next.elements(),
                            changes.added,
                            changes.removed,
                            changes.chains,
                            changes.sets
                        );
                    }
                    *shared.programmed.write().unwrap_or_else(|e| e.into_inner()) =
                        Some(Arc::new(state));
                    programmed = Some(next);
                    handled = Some(gens);
                    failed = false;
                    backoff = BACKOFF_MIN;
                    shared.syncs.send_modify(|n| *n += 1);
                    for (_, w) in waiters.drain(..) {
                        let _ = w.send(());
                    }
                }
                Err(e) => {
                    metrics.policy_sync("error", t0.elapsed().as_secs_f64(), &Ruleset::default());
                    ::log::warn!("policy: {e}; the table is replaced whole in {backoff:?}");
                    programmed = None;
                    failed = true;
                }
            }
        }
        if counters_at.elapsed() >= COUNTERS_EVERY {
            counters_at = Instant::now();
            if let Ok(c) = kernel::read_counters(ferro_policy::ruleset::table()).await {
                *shared.counters.lock().unwrap_or_else(|e| e.into_inner()) = c;
            }
        }
        let pause = if failed { backoff } else { COUNTERS_EVERY };
        tokio::select! {
            s = cache.changed() => match s {
                Some(s) => snapshot = s,
                None => return,
            },
            n = rx.recv() => match n {
                Some(Note::Attached(a, w)) => {
                    let key = a.metadata.namespace.as_deref().map(|ns| {
                        ferro_cluster::keys::object(Kind::Attachment, Some(ns), a.metadata.name.as_deref().unwrap_or_default())
                    }).unwrap_or_default();
                    waiters.push((key.clone(), w));
                    pending.insert(key, Some(*a));
                    // Take every note already queued into the same sync.
                    while let Ok(n) = rx.try_recv() {
                        absorb(n, &mut pending, &mut waiters);
                    }
                }
                Some(n) => absorb(n, &mut pending, &mut waiters),
                None => return,
            },
            _ = tokio::time::sleep(pause) => {
                if failed {
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }
}

fn absorb(
    n: Note,
    pending: &mut BTreeMap<String, Option<Attachment>>,
    waiters: &mut Vec<(String, oneshot::Sender<()>)>,
) {
    match n {
        Note::Attached(a, w) => {
            let key = ferro_cluster::keys::object(
                Kind::Attachment,
                a.metadata.namespace.as_deref(),
                a.metadata.name.as_deref().unwrap_or_default(),
            );
            waiters.push((key.clone(), w));
            pending.insert(key, Some(*a));
        }
        Note::Detached(key) => {
            pending.insert(key, None);
        }
    }
}

/// One sync: the model brought to `snapshot` (and `pending`), the desired table from it
/// (class names carried from what is programmed), the batch against `programmed` (none:
/// the whole table), applied; then the conntrack entries the change forbids.
async fn sync(
    cfg: &PolicyConfig,
    shared: &Shared,
    snapshot: &Arc<Snapshot>,
    pending: &BTreeMap<String, Option<Attachment>>,
    programmed: Option<&Ruleset>,
) -> Result<(Programmed, Ruleset, Changes), String> {
    let prev = programmed.and_then(|_| {
        shared
            .programmed
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    });
    let mut np = {
        let mut model = shared.model.write().unwrap_or_else(|e| e.into_inner());
        model.update(snapshot, pending);
        let cluster = model.live.settled();
        for p in cluster.problems() {
            ::log::debug!("policy: {p}");
        }
        node_policy(cluster, &cfg.node)
    };
    if let Some(prev) = &prev {
        np.carry_names(&prev.node);
    }
    let next = Ruleset::of(&np, cfg.deny_log);
    let (batch, changes) = match programmed {
        None => {
            let b = ruleset::full(&next);
            let ch = Changes {
                added: next.elements(),
                chains: next.chains.len(),
                sets: next.sets.len(),
                removed: 0,
            };
            (b, ch)
        }
        Some(old) => ruleset::diff(old, &next),
    };
    if !batch.is_empty() {
        kernel::apply(batch).await?;
    }
    let np = Arc::new(np);
    if programmed.is_none() || changes.may_deny() {
        match kernel::forget_denied(np.clone()).await {
            Ok(0) => {}
            Ok(n) => ::log::info!("policy: {n} connections no longer allowed were cut"),
            Err(e) => ::log::warn!("policy: conntrack: {e}"),
        }
    }
    Ok((
        Programmed {
            revision: snapshot.revision(),
            node: np,
            ruleset: Arc::new(next.clone()),
        },
        next,
        changes,
    ))
}

/// The conntrack entries of connections `np` no longer allows (see
/// [`NodePolicy::cuts`]): their source, and their real destination (where replies come
/// from, after DNAT) and its port.
pub(crate) fn denied_entries(
    np: &NodePolicy,
    local: &HashSet<IpAddr>,
    entries: Vec<ferro_net::conntrack::Entry>,
) -> Vec<ferro_net::conntrack::Entry> {
    entries
        .into_iter()
        .filter(|e| {
            let port = if matches!(e.orig.proto, 6 | 17 | 132) {
                e.reply.sport
            } else {
                0
            };
            np.cuts(local, e.orig.src, e.reply.src, e.orig.proto, port)
        })
        .collect()
}

#[cfg(test)]
mod tests;
