//! The node's API: what each socket request does to the store.
//!
//! - `apply`: every document is decoded and checked again (never trust the client); a
//!   namespaced object needs its namespace in the store or in the same apply; then one
//!   transaction writes everything, with a compare on every key it read (created objects
//!   must still be absent, updated ones unchanged, namespaces still there), retried a few
//!   times when a concurrent writer got in between. All or nothing.
//! - `get`, `list`, `describe`: read the store; `metadata.resourceVersion` is the object's
//!   revision; nodes get their `status` from their lease records.
//! - `delete`: one transaction; deleting a namespace deletes what is in it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use ferro_agent_api::policy::{Explanation, PolicyStats};
use ferro_agent_api::{
    Action, ApiError, ApplyDocument, AttachmentEvent, AttachmentReport, ErrorCode, FirewallRemoved,
    Outcome, Request, Response, Spool, Target,
};
use ferro_cluster::attachment;
use ferro_cluster::k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use ferro_cluster::manifest::{self, Applicable, Document, Origin};
use ferro_cluster::network::CLUSTER_NETWORK_NAME;
use ferro_cluster::resource::{ClusterNetwork, NodeStatus};
use ferro_cluster::validate::{self, DEFAULT_NAMESPACE};
use ferro_cluster::{keys, Kind, NodeLease, Object, Selector};
use ferro_net::firewall::Tag;
use ferro_store::{Compare, KeyValue, Op, Store, StoreError, Txn};
use serde_json::Value;

use crate::attachments::Attachments;
use crate::policy::PolicyHandle;

/// Namespaces that always exist and cannot be deleted.
pub const SYSTEM_NAMESPACES: [&str; 2] = [DEFAULT_NAMESPACE, "kube-system"];
/// How often an apply or delete is retried when concurrent writers win.
const ATTEMPTS: usize = 5;

type Reply = Result<Response, ApiError>;

/// A store failure as the API reports it (`unavailable`: try again later).
pub(crate) fn store_error(e: StoreError) -> ApiError {
    let code = if e.is_unavailable() {
        ErrorCode::Unavailable
    } else {
        ErrorCode::Internal
    };
    ApiError::new(code, e.to_string())
}

fn kind_of(word: &str) -> Result<Kind, ApiError> {
    Kind::from_cli(word).map_err(|e| ApiError::new(ErrorCode::BadRequest, e))
}

/// A kind's namespace for a request: the given one, or `default` (namespaced kinds only).
fn ns_for(kind: Kind, ns: Option<&str>) -> Option<String> {
    kind.namespaced()
        .then(|| ns.unwrap_or(DEFAULT_NAMESPACE).to_string())
}

fn not_found(kind: Kind, ns: Option<&str>, name: &str) -> ApiError {
    ApiError::new(
        ErrorCode::NotFound,
        match ns {
            Some(ns) => format!("{} {name:?} not found in namespace {ns:?}", kind.plural()),
            None => format!("{} {name:?} not found", kind.plural()),
        },
    )
}

/// Decodes a stored value; `None` (logged) when it is not an object of `kind`.
fn decode_stored(kind: Kind, kv: &KeyValue) -> Option<Object> {
    let v: Value = serde_json::from_slice(&kv.value).ok()?;
    match Object::from_value(kind, v) {
        Ok(mut o) => {
            o.meta_mut().resource_version = Some(kv.mod_revision.to_string());
            Some(o)
        }
        Err(e) => {
            log::warn!("{}: not a {kind}: {e}", kv.key);
            None
        }
    }
}

/// The API, over a store.
#[derive(Debug, Clone)]
pub struct Api<S> {
    store: S,
    node: String,
    store_name: String,
    policy: Option<PolicyHandle>,
    ipam: Option<std::sync::Arc<crate::ipam::Ipam<S>>>,
    attachments: Option<Arc<Attachments<S>>>,
    spool: Option<Spool>,
    nodefw: crate::nodefw::Explained,
    egress: Option<Arc<crate::egress::Egress>>,
    reaper: Option<crate::reaper::Reaper>,
    podfw: Option<crate::podfw::PodFirewall>,
    /// Held while the spool is replayed and while a request the spool could be ahead of is
    /// handled, so that they apply in the order they were made.
    spool_lock: Arc<tokio::sync::Mutex<()>>,
}

/// What replaying the spool did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Replayed {
    /// Requests applied (files removed).
    pub applied: usize,
    /// Files the agent cannot use (renamed `.rejected`).
    pub rejected: usize,
    /// Files left for later (the store could not be reached).
    pub left: usize,
}

impl<S: Store + Clone + 'static> Api<S> {
    /// The API of node `node` over `store` (described as `store_name` in `status`).
    pub fn new(store: S, node: String, store_name: String) -> Self {
        Api {
            store,
            node,
            store_name,
            policy: None,
            ipam: None,
            attachments: None,
            spool: None,
            nodefw: Arc::default(),
            egress: None,
            reaper: None,
            podfw: None,
            spool_lock: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// The same API, showing the node firewall's rules from `explained`.
    pub fn with_nodefw(mut self, explained: crate::nodefw::Explained) -> Self {
        self.nodefw = explained;
        self
    }

    /// With the node's egress control (explanations and drop counters).
    pub fn with_egress(mut self, egress: Arc<crate::egress::Egress>) -> Self {
        self.egress = Some(egress);
        self
    }

    /// With the thread that deletes detached veth pairs (nudged by every DEL report).
    pub fn with_reaper(mut self, reaper: crate::reaper::Reaper) -> Self {
        self.reaper = Some(reaper);
        self
    }

    /// With the long-lived netfilter socket that removes a DEL report's pod firewall state.
    pub fn with_pod_firewall(mut self, podfw: crate::podfw::PodFirewall) -> Self {
        self.podfw = Some(podfw);
        self
    }

    /// With the node's NetworkPolicy loop (explanations and drop counters).
    pub fn with_policy(mut self, policy: PolicyHandle) -> Self {
        self.policy = Some(policy);
        self
    }

    fn policy(&self) -> Result<&PolicyHandle, ApiError> {
        self.policy.as_ref().ok_or_else(|| {
            ApiError::new(
                ErrorCode::BadRequest,
                format!(
                    "NetworkPolicy is off on node {} (the agent's policy.enabled is false)",
                    self.node
                ),
            )
        })
    }

    /// `policyExplain`: NetworkPolicy's decision, and the EgressPolicies' for a pod's
    /// connection leaving the cluster; allowed only when both allow.
    async fn explain(
        &self,
        from: &str,
        to: &str,
        port: u16,
        protocol: &str,
        family: Option<u8>,
    ) -> Result<Explanation, ApiError> {
        let Some(egress) = &self.egress else {
            return self.policy()?.explain(from, to, port, protocol, family);
        };
        let v6 = family == Some(6)
            || (family.is_none() && to.parse::<std::net::IpAddr>().is_ok_and(|a| a.is_ipv6()));
        let proto = crate::policy::protocol_number(protocol)?;
        let port = matches!(proto, 6 | 17 | 132).then_some(port);
        let mut e = match &self.policy {
            Some(p) => p.explain(from, to, port.unwrap_or(0), protocol, family)?,
            None => Explanation {
                allowed: true,
                text: format!(
                    "allowed: {from} -> {to}\n  NetworkPolicy is off on node {}\n",
                    self.node
                ),
                decision: serde_json::Value::Null,
                from_address: String::new(),
                to_address: String::new(),
                egress: None,
            },
        };
        let (from, to) = match e.from_address.is_empty() {
            true => (from.to_string(), to.to_string()),
            false => (e.from_address.clone(), e.to_address.clone()),
        };
        match egress.explain(&from, &to, proto, port, v6).await? {
            Some((src, dst, v)) => {
                e.from_address = src.to_string();
                e.to_address = dst.to_string();
                e.allowed &= v.allowed;
                if !v.allowed && e.text.starts_with("allowed") {
                    e.text = e.text.replacen("allowed", "denied", 1);
                }
                e.text.push_str(&format!("  egress control: {}\n", v.text));
                e.egress = Some(v);
            }
            None if e.from_address.is_empty() => {
                return Err(ApiError::new(
                    ErrorCode::NotFound,
                    format!("{from}: not a pod with a reported address"),
                ))
            }
            None => e
                .text
                .push_str("  egress control: the source is not a pod\n"),
        }
        Ok(e)
    }

    /// `policyStats`: NetworkPolicy's drops and the EgressPolicies' of this node's pods.
    async fn policy_stats(&self, namespace: Option<&str>) -> Result<PolicyStats, ApiError> {
        let mut stats = match (&self.policy, &self.egress) {
            (Some(p), _) => p.stats(namespace).await?,
            (None, Some(_)) => PolicyStats {
                node: self.node.clone(),
                ..PolicyStats::default()
            },
            (None, None) => self.policy()?.stats(namespace).await?,
        };
        if let Some(e) = &self.egress {
            stats.egress = e
                .drops()
                .await
                .map_err(|e| ApiError::new(ErrorCode::Internal, format!("egress: {e}")))?;
            if let Some(ns) = namespace {
                stats.egress.retain(|d| d.namespace == ns);
            }
        }
        Ok(stats)
    }

    /// The same API, answering cluster IPAM requests with `ipam`.
    pub fn with_ipam(mut self, ipam: Arc<crate::ipam::Ipam<S>>) -> Self {
        self.ipam = Some(ipam);
        self
    }

    /// The same API recording the node's attachments (`report`), with `spool` replayed
    /// before any report.
    pub fn with_attachments(mut self, attachments: Arc<Attachments<S>>, spool: Spool) -> Self {
        self.attachments = Some(attachments);
        self.spool = Some(spool);
        self
    }

    /// Answers one request. A report first replays whatever waits in the spool: a report
    /// spooled while the agent was away is older than any it receives now. Address requests
    /// need no such wait (a spooled release older than the attachment's new ADD is skipped
    /// by its time), so they take no lock and read no directory on the ADD path. A DEL
    /// report's firewall removal is done before anything else, and its answer confirms it
    /// (only here: a replayed report never carries one).
    pub async fn handle(&self, req: Request) -> Response {
        if let Request::IpamAllocate(a) = &req {
            if a.report.is_some() && self.attachments.is_some() {
                return self.allocate_and_record(req).await;
            }
        }
        if let Request::Report { report } = &req {
            let removed = self.remove_firewall(report).await;
            let _g = self.spool_lock.lock().await;
            self.replay_locked().await;
            let mut answer = self.dispatch(req).await;
            if let Response::Reported { firewall, .. } = &mut answer {
                *firewall = removed;
            }
            return answer;
        }
        self.dispatch(req).await
    }

    /// An address request that also carries the ADD report of the attachment the plugin is
    /// about to make: the addresses are handed out, then the report is recorded with them as
    /// a `report` request would be (after the spool's replay; with NetworkPolicy on, the
    /// attachment's policy is programmed before the answer, so before its veth exists).
    /// The answer's `attachment` is the record's outcome; without it (the report did not
    /// name this attachment, or recording failed) the plugin reports the attachment itself.
    /// The request's `masquerade` is added alongside the record, on the pod firewall's
    /// socket; the answer's `masqueraded` confirms it (without it the plugin adds it).
    async fn allocate_and_record(&self, req: Request) -> Response {
        let Request::IpamAllocate(a) = &req else {
            return self.dispatch(req).await;
        };
        let a = a.clone();
        let mut answer = self.dispatch(req).await;
        let Response::IpamAllocated {
            ips,
            attachment,
            masqueraded,
        } = &mut answer
        else {
            return answer;
        };
        let Some(report) = a.report_with(ips) else {
            log::warn!(
                "ipamAllocate of {}: its report names another attachment: not recorded",
                a.handle
            );
            return answer;
        };
        let masquerade = async {
            let (Some(what), Some(podfw)) = (&a.masquerade, &self.podfw) else {
                return false;
            };
            let tag = Tag::new(&a.network, &a.handle.container_id, &a.handle.ifname);
            match podfw.masquerade(tag, what, ips).await {
                Ok(()) => {
                    log::debug!("ipamAllocate of {}: masquerade added", a.handle);
                    true
                }
                Err(e) => {
                    log::warn!(
                        "ipamAllocate of {}: adding its masquerade: {e} (left to the plugin)",
                        a.handle
                    );
                    false
                }
            }
        };
        let record = async {
            let _g = self.spool_lock.lock().await;
            self.replay_locked().await;
            self.record(&report, true).await
        };
        let (done, recorded) = tokio::join!(masquerade, record);
        *masqueraded = done;
        match recorded {
            Ok(Response::Reported { outcome, .. }) => *attachment = Some(outcome),
            Ok(_) => {}
            Err(e) => log::warn!(
                "ipamAllocate of {}: recording the attachment: {e} (left to the plugin's report)",
                a.handle
            ),
        }
        answer
    }

    /// The firewall state a DEL report asks to remove, removed: the confirmation, or `None`
    /// (nothing asked, no socket, or the removal failed: the plugin then does it itself).
    async fn remove_firewall(&self, report: &AttachmentReport) -> Option<FirewallRemoved> {
        let (AttachmentEvent::Del, Some(what), Some(podfw)) =
            (report.event, &report.firewall, &self.podfw)
        else {
            return None;
        };
        match podfw.remove(report, what).await {
            Ok(done) => {
                if !done.unmasked.is_empty() {
                    log::info!(
                        "DEL report of {}/{}/{}: removed the masquerade elements of {:?}",
                        report.network,
                        report.container_id,
                        report.ifname,
                        done.unmasked
                    );
                }
                Some(done)
            }
            Err(e) => {
                log::warn!(
                    "DEL report of {}/{}: removing its firewall state: {e} (left to the plugin)",
                    report.container_id,
                    report.ifname
                );
                None
            }
        }
    }

    /// Replays the spool (see [`ferro_agent_api::spool`]): every pending request in order,
    /// each file removed once applied, renamed `.rejected` when refused; stops at the first
    /// that cannot be applied now (the store is unreachable), to keep the order.
    pub async fn replay(&self) -> Replayed {
        let _g = self.spool_lock.lock().await;
        self.replay_locked().await
    }

    async fn replay_locked(&self) -> Replayed {
        let mut done = Replayed::default();
        let Some(spool) = &self.spool else {
            return done;
        };
        let entries = match spool.entries() {
            Ok(e) => e,
            Err(e) => {
                log::warn!("spool {}: {e}", spool.dir().display());
                return done;
            }
        };
        let total = entries.len();
        for (i, entry) in entries.iter().enumerate() {
            let shown = entry.path.display();
            let refused = match &entry.request {
                Err(e) => Some(e.clone()),
                Ok(req) => match self.dispatch_spooled(req.clone(), entry.at_ms).await {
                    Response::Error { error }
                        if matches!(error.code, ErrorCode::Unavailable | ErrorCode::Internal) =>
                    {
                        log::warn!("spool {shown}: {error}; retrying later");
                        done.left = total - i;
                        return done;
                    }
                    Response::Error { error } => Some(error.to_string()),
                    _ => None,
                },
            };
            match refused {
                Some(why) => {
                    log::warn!("spool {shown}: refused: {why}");
                    if let Err(e) = spool.reject(entry) {
                        log::warn!("spool {shown}: renaming: {e}");
                    }
                    done.rejected += 1;
                }
                None => {
                    if let Err(e) = spool.remove(entry) {
                        log::warn!("spool {shown}: removing: {e}");
                    }
                    done.applied += 1;
                }
            }
        }
        if done.applied + done.rejected > 0 {
            log::info!(
                "spool: replayed {} request(s), rejected {}",
                done.applied,
                done.rejected
            );
        }
        done
    }

    /// A request a plugin spooled at `at_ms` while the agent was away: a release is skipped
    /// when its attachment was added again since; anything else is answered as usual.
    async fn dispatch_spooled(&self, req: Request, at_ms: u64) -> Response {
        match (req, &self.ipam) {
            (Request::IpamRelease(r), Some(ipam)) => match ipam.release_spooled(&r, at_ms) {
                Ok(addresses) => Response::IpamReleased {
                    addresses,
                    blocks: Vec::new(),
                },
                Err(error) => Response::Error { error },
            },
            (req, _) => self.dispatch(req).await,
        }
    }

    async fn dispatch(&self, req: Request) -> Response {
        let r = match req {
            Request::Status => self.status().await,
            Request::Apply { documents } => self.apply(documents).await,
            Request::Get {
                kind,
                namespace,
                name,
            } => self.get(&kind, namespace.as_deref(), &name).await,
            Request::List { kind, namespace } => self.list(&kind, namespace.as_deref()).await,
            Request::Delete { targets } => self.delete(targets).await,
            Request::Describe {
                kind,
                namespace,
                name,
            } => self.describe(&kind, namespace.as_deref(), &name).await,
            Request::PolicyExplain {
                from,
                to,
                port,
                protocol,
                family,
            } => self
                .explain(&from, &to, port, &protocol, family)
                .await
                .map(|explanation| Response::Explanation { explanation }),
            Request::PolicyStats { namespace } => self
                .policy_stats(namespace.as_deref())
                .await
                .map(|stats| Response::PolicyStats { stats }),
            ipam @ (Request::IpamAllocate(_)
            | Request::IpamRelease(_)
            | Request::IpamCheck(_)
            | Request::IpamGc(_)
            | Request::IpamStatus(_)
            | Request::IpamShow(_)
            | Request::IpamAudit(_)
            | Request::IpamReclaim(_)) => match &self.ipam {
                Some(i) => {
                    // an audit compares the allocations with the attachments in the store
                    if matches!(ipam, Request::IpamAudit(_) | Request::IpamReclaim(_)) {
                        self.reports_written(Kind::Attachment).await;
                    }
                    i.handle(ipam).await
                }
                None => Err(ApiError::new(
                    ErrorCode::BadRequest,
                    "cluster IPAM is not running on this agent (no ipam in its configuration)",
                )),
            },
            Request::NodeFirewall => Ok(Response::NodeFirewall {
                node: self.node.clone(),
                rules: self
                    .nodefw
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .iter()
                    .map(|l| ferro_agent_api::FirewallRule {
                        rule: l.rule.clone(),
                        why: l.why.clone(),
                    })
                    .collect(),
            }),
            Request::Report { report } => self.report(&report).await,
        };
        r.unwrap_or_else(|error| Response::Error { error })
    }

    /// Records one attachment report. With NetworkPolicy on, a new attachment's policy is
    /// programmed before the answer (the pod is never reachable against policy, not even
    /// by its first packet), and a removed one is forgotten at once.
    async fn report(&self, report: &AttachmentReport) -> Reply {
        self.record(report, false).await
    }

    /// [`Api::report`], the record marked pending when `pending` (its veth is yet to be
    /// made, see [`crate::attachments::PENDING`]).
    async fn record(&self, report: &AttachmentReport, pending: bool) -> Reply {
        if let (AttachmentEvent::Del, Some(r)) = (report.event, &self.reaper) {
            r.nudge();
        }
        let Some(a) = &self.attachments else {
            return Err(ApiError::new(
                ErrorCode::BadRequest,
                "report: this agent does not record attachments",
            ));
        };
        let outcome = if pending {
            a.report_pending(report).await?
        } else {
            a.report(report).await?
        };
        if let Some(p) = &self.policy {
            match report.event {
                AttachmentEvent::Add => p.attached(a.object(report)).await,
                AttachmentEvent::Del => p.detached(keys::object(
                    Kind::Attachment,
                    outcome.namespace.as_deref(),
                    &outcome.name,
                )),
            }
        }
        Ok(Response::Reported {
            outcome,
            firewall: None,
        })
    }

    async fn status(&self) -> Reply {
        let revision = self
            .store
            .list(keys::NODE_LEASES)
            .await
            .map_err(store_error)?
            .revision;
        Ok(Response::Status {
            node: self.node.clone(),
            store: self.store_name.clone(),
            version: crate::VERSION.to_string(),
            revision,
        })
    }

    /// Creates the namespaces that always exist, when missing.
    pub async fn ensure_system_namespaces(&self) -> Result<(), StoreError> {
        for ns in SYSTEM_NAMESPACES {
            let doc = Document {
                origin: Origin::new("built-in", 1),
                value: serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
            };
            let Ok(mut a) = manifest::admit(&doc) else {
                continue;
            };
            a.object.meta_mut().creation_timestamp = Some(Time(ferro_cluster::now()));
            let value = serde_json::to_vec(&a.object.to_value()).unwrap_or_default();
            if self.store.create(&a.object.key(), value, None).await? {
                log::info!("namespace {ns} created");
            }
        }
        Ok(())
    }

    async fn read(&self, key: &str) -> Result<Option<KeyValue>, ApiError> {
        self.store.get(key).await.map_err(store_error)
    }

    async fn apply(&self, documents: Vec<ApplyDocument>) -> Reply {
        // Decode and check everything first: nothing is written unless all is well.
        let mut admitted: Vec<Applicable> = Vec::new();
        let mut problems = Vec::new();
        for d in documents {
            let doc = Document {
                origin: Origin {
                    source: d.source,
                    document: d.document,
                    item: d.item,
                },
                value: d.object,
            };
            match manifest::admit(&doc) {
                Ok(a) => admitted.push(a),
                Err(e) => problems.push(e.to_string()),
            }
        }
        let mut seen: BTreeMap<String, &Origin> = BTreeMap::new();
        for a in &admitted {
            if let Some(first) = seen.insert(a.object.key(), &a.origin) {
                problems.push(format!(
                    "{} ({}): also in {first}: an object appears once per apply",
                    a.origin,
                    a.object.describe()
                ));
            }
        }
        if !problems.is_empty() {
            return Err(ApiError::new(ErrorCode::Invalid, problems.join("\n")));
        }
        if admitted.is_empty() {
            return Err(ApiError::new(
                ErrorCode::Invalid,
                "nothing to apply: no documents",
            ));
        }
        for attempt in 1..=ATTEMPTS {
            if let Some(done) = self.apply_once(&admitted).await? {
                return Ok(done);
            }
            log::info!(
                "apply: a concurrent change won (attempt {attempt} of {ATTEMPTS}); retrying"
            );
        }
        Err(ApiError::new(
            ErrorCode::Conflict,
            format!("apply: concurrent changes won {ATTEMPTS} times in a row; try again"),
        ))
    }

    /// One attempt: `None` when a compare failed (something changed meanwhile).
    async fn apply_once(&self, admitted: &[Applicable]) -> Result<Option<Response>, ApiError> {
        let mut txn = Txn::new();
        let mut problems = Vec::new();
        let mut results = Vec::new();
        // Namespaces: in the store (compared: they must not vanish meanwhile) or applied now.
        let applied_ns: BTreeSet<&str> = admitted
            .iter()
            .filter(|a| a.object.kind() == Kind::Namespace)
            .map(|a| a.object.name())
            .collect();
        let mut checked_ns: BTreeMap<String, bool> = BTreeMap::new();
        for a in admitted {
            let Some(ns) = a.object.namespace() else {
                continue;
            };
            if applied_ns.contains(ns) || checked_ns.contains_key(ns) {
                continue;
            }
            let key = keys::object(Kind::Namespace, None, ns);
            let cur = self.read(&key).await?;
            if let Some(kv) = &cur {
                txn = txn.when(Compare::unchanged(&key, kv.mod_revision));
            }
            checked_ns.insert(ns.to_string(), cur.is_some());
        }
        // The cluster's settings, for services.
        let settings = match admitted.iter().find_map(|a| match &a.object {
            Object::ClusterNetwork(c) => Some(c.clone()),
            _ => None,
        }) {
            Some(c) => c.settings().ok(),
            None => {
                let key = keys::object(Kind::ClusterNetwork, None, CLUSTER_NETWORK_NAME);
                self.read(&key)
                    .await?
                    .and_then(|kv| decode_stored(Kind::ClusterNetwork, &kv))
                    .and_then(|o| match o {
                        Object::ClusterNetwork(c) => Some(c),
                        _ => None,
                    })
                    .and_then(|c: Box<ClusterNetwork>| c.settings().ok())
            }
        };
        let mut allocs = crate::allocate::Allocations::default();
        for a in admitted {
            let o = &a.object;
            let fail = |p: String| format!("{} ({}): {p}", a.origin, o.describe());
            if let Some(ns) = o.namespace() {
                if checked_ns.get(ns) == Some(&false) {
                    problems.push(fail(format!(
                        "namespace {ns:?} does not exist (create it first, or in the same apply)"
                    )));
                    continue;
                }
            }
            if let (Object::Service(s), Some(st)) = (o, &settings) {
                let errs = validate::service_in_cluster(s, st);
                if !errs.is_empty() {
                    problems.push(fail(errs.join("; ")));
                    continue;
                }
            }
            let key = o.key();
            let cur = self.read(&key).await?;
            let mut new = o.clone();
            let mut allocated = Vec::new();
            // A service's ClusterIPs, NodePorts and load-balancer addresses: kept, or
            // allocated in this same transaction.
            if let (Object::Service(svc), Some(st)) = (&mut new, &settings) {
                let old = cur
                    .as_ref()
                    .and_then(|kv| decode_stored(Kind::Service, kv))
                    .and_then(|o| match o {
                        Object::Service(s) => Some(*s),
                        _ => None,
                    });
                match allocs
                    .allocate(&self.store, svc, old.as_ref(), st, txn)
                    .await?
                {
                    Ok((t, chosen)) => {
                        txn = t;
                        allocated = chosen;
                    }
                    Err((t, errs)) => {
                        txn = t;
                        problems.push(fail(errs.join("; ")));
                        continue;
                    }
                }
            }
            let action = match &cur {
                None => {
                    if let Some(rv) = a.precondition {
                        return Err(ApiError::new(
                            ErrorCode::Conflict,
                            fail(format!(
                                "metadata.resourceVersion is {rv} but the object does not exist"
                            )),
                        ));
                    }
                    new.meta_mut().creation_timestamp = Some(Time(ferro_cluster::now()));
                    txn = txn.when(Compare::absent(&key));
                    Action::Created
                }
                Some(kv) => {
                    if let Some(rv) = a.precondition.filter(|rv| *rv != kv.mod_revision) {
                        return Err(ApiError::new(
                            ErrorCode::Conflict,
                            fail(format!(
                                "the object has changed: it is at revision {}, the manifest names {rv} (get it again, or drop metadata.resourceVersion)",
                                kv.mod_revision
                            )),
                        ));
                    }
                    let old = decode_stored(o.kind(), kv);
                    new.meta_mut().creation_timestamp = old
                        .as_ref()
                        .and_then(|x| x.meta().creation_timestamp.clone())
                        .or_else(|| Some(Time(ferro_cluster::now())));
                    txn = txn.when(Compare::unchanged(&key, kv.mod_revision));
                    let same = old.is_some_and(|mut x| {
                        x.meta_mut().resource_version = None;
                        x.to_value() == new.to_value()
                    });
                    if same {
                        Action::Unchanged
                    } else {
                        Action::Configured
                    }
                }
            };
            if action != Action::Unchanged {
                let value = serde_json::to_vec(&new.to_value())
                    .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
                txn = txn.then(Op::put(key, value));
            }
            results.push(Outcome {
                kind: o.kind().name().to_string(),
                namespace: o.namespace().map(str::to_string),
                name: o.name().to_string(),
                action,
                allocated,
            });
        }
        if !problems.is_empty() {
            return Err(ApiError::new(ErrorCode::Invalid, problems.join("\n")));
        }
        let r = self.store.txn(txn).await.map_err(store_error)?;
        if !r.succeeded {
            return Ok(None);
        }
        for o in &results {
            log::info!("apply: {o}");
        }
        Ok(Some(Response::Applied {
            results,
            revision: r.revision,
        }))
    }

    /// Before a read of attachments, or of pods (which show their attachments' addresses):
    /// the store writes of the reports answered so far, done. What this agent answered, its
    /// reads show.
    async fn reports_written(&self, kind: Kind) {
        if let (Kind::Attachment | Kind::Pod, Some(a)) = (kind, &self.attachments) {
            a.flush().await;
        }
    }

    /// Every object of `kind` (in `ns` when given), decoded, with node status filled in.
    async fn objects(&self, kind: Kind, ns: Option<&str>) -> Result<(Vec<Object>, i64), ApiError> {
        self.reports_written(kind).await;
        let l = self
            .store
            .list(&keys::prefix(kind, ns))
            .await
            .map_err(store_error)?;
        let mut out: Vec<Object> = l
            .kvs
            .iter()
            .filter_map(|kv| decode_stored(kind, kv))
            .collect();
        self.decorate(kind, ns, &mut out).await?;
        Ok((out, l.revision))
    }

    /// What a read adds to stored objects: nodes' status (lease, blocks); attachments'
    /// labels (their pods'); pods' addresses and node (their attachments').
    async fn decorate(
        &self,
        kind: Kind,
        ns: Option<&str>,
        objects: &mut [Object],
    ) -> Result<(), ApiError> {
        match kind {
            Kind::Node => self.node_status(objects).await,
            Kind::Attachment => {
                let pods = self.raw(Kind::Pod, ns).await?;
                let pods: Vec<_> = pods.iter().filter_map(Object::as_pod).cloned().collect();
                for a in objects.iter_mut().filter_map(Object::as_attachment_mut) {
                    attachment::join_labels(std::slice::from_mut(a), &pods);
                }
                Ok(())
            }
            Kind::Pod => {
                let atts = self.raw(Kind::Attachment, ns).await?;
                let atts: Vec<_> = atts
                    .iter()
                    .filter_map(Object::as_attachment)
                    .cloned()
                    .collect();
                for p in objects.iter_mut().filter_map(Object::as_pod_mut) {
                    attachment::join_pod(p, &atts);
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Every stored object of `kind` (in `ns` when given), as stored.
    async fn raw(&self, kind: Kind, ns: Option<&str>) -> Result<Vec<Object>, ApiError> {
        let l = self
            .store
            .list(&keys::prefix(kind, ns))
            .await
            .map_err(store_error)?;
        Ok(l.kvs
            .iter()
            .filter_map(|kv| decode_stored(kind, kv))
            .collect())
    }

    /// Fills in each node's status from its lease record.
    async fn node_status(&self, nodes: &mut [Object]) -> Result<(), ApiError> {
        let leases = self
            .store
            .list(keys::NODE_LEASES)
            .await
            .map_err(store_error)?;
        let by_node: BTreeMap<String, NodeLease> = leases
            .kvs
            .iter()
            .filter_map(|kv| serde_json::from_slice::<NodeLease>(&kv.value).ok())
            .map(|l| (l.node.clone(), l))
            .collect();
        let blocks = self.raw(Kind::IpamBlock, None).await?;
        for o in nodes {
            if let Object::Node(n) = o {
                let name = n.metadata.name.clone().unwrap_or_default();
                let l = by_node.get(&name);
                n.status = Some(NodeStatus {
                    ready: l.is_some(),
                    lease: l.map(|l| l.lease.clone()),
                    lease_ttl_seconds: l.map(|l| l.ttl_seconds),
                    since: l.map(|l| l.since.clone()),
                    blocks: blocks
                        .iter()
                        .filter_map(|b| match b {
                            Object::IpamBlock(b) if b.spec.node.as_deref() == Some(&name) => {
                                Some(b.spec.cidr.clone())
                            }
                            _ => None,
                        })
                        .collect(),
                });
            }
        }
        Ok(())
    }

    async fn one(&self, kind: Kind, ns: Option<&str>, name: &str) -> Result<Object, ApiError> {
        self.reports_written(kind).await;
        let ns = ns_for(kind, ns);
        let key = keys::object(kind, ns.as_deref(), name);
        let kv = self
            .read(&key)
            .await?
            .ok_or_else(|| not_found(kind, ns.as_deref(), name))?;
        let mut o = decode_stored(kind, &kv).ok_or_else(|| {
            ApiError::new(
                ErrorCode::Internal,
                format!("{key}: stored value is not a {kind}"),
            )
        })?;
        self.decorate(kind, ns.as_deref(), std::slice::from_mut(&mut o))
            .await?;
        Ok(o)
    }

    async fn get(&self, kind: &str, ns: Option<&str>, name: &str) -> Reply {
        let kind = kind_of(kind)?;
        let o = self.one(kind, ns, name).await?;
        Ok(Response::Object {
            object: o.to_value(),
        })
    }

    async fn list(&self, kind: &str, ns: Option<&str>) -> Reply {
        let kind = kind_of(kind)?;
        let (objects, revision) = self.objects(kind, ns).await?;
        Ok(Response::List {
            items: objects.iter().map(Object::to_value).collect(),
            revision,
        })
    }

    async fn delete(&self, targets: Vec<Target>) -> Reply {
        let mut resolved = Vec::new();
        for t in &targets {
            let kind = kind_of(&t.kind)?;
            if kind.system_written() {
                return Err(ApiError::new(
                    ErrorCode::Forbidden,
                    format!("{kind} is written by the cluster itself: it cannot be deleted"),
                ));
            }
            if kind == Kind::Namespace && SYSTEM_NAMESPACES.contains(&t.name.as_str()) {
                return Err(ApiError::new(
                    ErrorCode::Forbidden,
                    format!("namespace {:?} always exists: it cannot be deleted", t.name),
                ));
            }
            resolved.push((kind, ns_for(kind, t.namespace.as_deref()), t.name.clone()));
        }
        for attempt in 1..=ATTEMPTS {
            if let Some(done) = self.delete_once(&resolved).await? {
                return Ok(done);
            }
            log::info!(
                "delete: a concurrent change won (attempt {attempt} of {ATTEMPTS}); retrying"
            );
        }
        Err(ApiError::new(
            ErrorCode::Conflict,
            format!("delete: concurrent changes won {ATTEMPTS} times in a row; try again"),
        ))
    }

    async fn delete_once(
        &self,
        targets: &[(Kind, Option<String>, String)],
    ) -> Result<Option<Response>, ApiError> {
        let mut txn = Txn::new();
        let mut keys_done = BTreeSet::new();
        let mut results = Vec::new();
        for (kind, ns, name) in targets {
            let key = keys::object(*kind, ns.as_deref(), name);
            let cur = self.read(&key).await?;
            let action = match cur {
                None => Action::NotFound,
                Some(kv) => {
                    if keys_done.insert(key.clone()) {
                        txn = txn
                            .when(Compare::unchanged(&key, kv.mod_revision))
                            .then(Op::delete(&key));
                        txn = crate::allocate::release(txn, &kv, &mut keys_done);
                    }
                    if *kind == Kind::Namespace {
                        // What lives in it goes with it.
                        for k in [Kind::Pod, Kind::Service, Kind::NetworkPolicy] {
                            let l = self
                                .store
                                .list(&keys::prefix(k, Some(name)))
                                .await
                                .map_err(store_error)?;
                            for kv in l.kvs {
                                if keys_done.insert(kv.key.clone()) {
                                    txn = txn
                                        .when(Compare::unchanged(&kv.key, kv.mod_revision))
                                        .then(Op::delete(&kv.key));
                                    txn = crate::allocate::release(txn, &kv, &mut keys_done);
                                }
                            }
                        }
                    }
                    Action::Deleted
                }
            };
            results.push(Outcome {
                kind: kind.name().to_string(),
                namespace: ns.clone(),
                name: name.clone(),
                action,
                allocated: Vec::new(),
            });
        }
        let r = self.store.txn(txn).await.map_err(store_error)?;
        if !r.succeeded {
            return Ok(None);
        }
        for o in results.iter().filter(|o| o.action == Action::Deleted) {
            log::info!("delete: {o}");
        }
        Ok(Some(Response::Deleted {
            results,
            revision: r.revision,
        }))
    }

    async fn describe(&self, kind: &str, ns: Option<&str>, name: &str) -> Reply {
        let kind = kind_of(kind)?;
        let o = self.one(kind, ns, name).await?;
        let mut facts = Vec::new();
        let names = |v: Vec<&Object>| {
            if v.is_empty() {
                "<none>".to_string()
            } else {
                v.iter().map(|o| o.name()).collect::<Vec<_>>().join(", ")
            }
        };
        match &o {
            Object::Namespace(_) => {
                for (k, label) in [
                    (Kind::Pod, "Pods"),
                    (Kind::Service, "Services"),
                    (Kind::NetworkPolicy, "NetworkPolicies"),
                ] {
                    let (objs, _) = self.objects(k, Some(o.name())).await?;
                    facts.push((label.to_string(), objs.len().to_string()));
                }
            }
            Object::Pod(_) => {
                let ns = o.namespace();
                let (svcs, _) = self.objects(Kind::Service, ns).await?;
                let (pols, _) = self.objects(Kind::NetworkPolicy, ns).await?;
                let selecting: Vec<&Object> = svcs
                    .iter()
                    .filter(|s| match s {
                        Object::Service(s) => s
                            .spec
                            .as_ref()
                            .and_then(|sp| sp.selector.as_ref())
                            .is_some_and(|m| {
                                !m.is_empty() && Selector::from_map(m).matches(o.labels())
                            }),
                        _ => false,
                    })
                    .collect();
                facts.push(("Services".to_string(), names(selecting)));
                let policies: Vec<&Object> = pols
                    .iter()
                    .filter(|p| policy_selects(p, o.labels()))
                    .collect();
                facts.push(("NetworkPolicies".to_string(), names(policies)));
            }
            Object::Service(s) => {
                let (pods, _) = self.objects(Kind::Pod, o.namespace()).await?;
                let sel = s.spec.as_ref().and_then(|sp| sp.selector.clone());
                let v = match &sel {
                    Some(m) if !m.is_empty() => {
                        let sel = Selector::from_map(m);
                        names(pods.iter().filter(|p| sel.matches(p.labels())).collect())
                    }
                    _ => "<no selector>".to_string(),
                };
                facts.push(("Pods".to_string(), v));
            }
            Object::NetworkPolicy(_) => {
                let (pods, _) = self.objects(Kind::Pod, o.namespace()).await?;
                facts.push((
                    "Selected pods".to_string(),
                    names(
                        pods.iter()
                            .filter(|p| policy_selects(&o, p.labels()))
                            .collect(),
                    ),
                ));
            }
            _ => {}
        }
        Ok(Response::Description {
            object: o.to_value(),
            facts,
        })
    }
}

/// Whether NetworkPolicy `p` selects a pod with `labels` (same namespace assumed).
fn policy_selects(p: &Object, labels: &BTreeMap<String, String>) -> bool {
    let Object::NetworkPolicy(p) = p else {
        return false;
    };
    p.spec
        .as_ref()
        .and_then(|s| s.pod_selector.as_ref())
        .and_then(|s| Selector::parse(s).ok())
        .is_some_and(|s| s.matches(labels))
}

#[cfg(test)]
mod tests;
