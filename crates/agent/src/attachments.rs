//! The node's attachments: what the plugins report, recorded locally first, then kept in
//! step with the store's `Attachment` objects of this node.
//!
//! ```text
//! report (socket or spool) ──> <stateDir>/attachments/<id>.json ──> /ferro-cni/v1/attachments/<ns>/<name>
//!                                       ^                                 ^
//!                      the node's links (host veths) ──── resync ─────────┘
//! ```
//!
//! - A report is applied to the local record first (one file per attachment, named after
//!   its container id and interface, written whole by rename), then to the store. The local
//!   record is what the node knows; the store is told when it can be: a store that cannot be
//!   reached does not lose the report, the next resync writes it.
//! - DEL needs no more than the container id and interface: the record says where the
//!   store object is (without a record, the store's attachments of this node are searched).
//! - [`Attachments::resync`] (at start, after a store failure, and every minute) compares
//!   three things: the records, the node's links, and the store's attachments of this node.
//!   A record whose host veth no longer exists is stale (its DEL was never heard): it is
//!   forgotten. The store then gets exactly the remaining records: missing ones written
//!   (after a store restore, say), others of this node deleted. The plan is pure
//!   ([`plan_resync`]).

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ferro_agent_api::{Action, ApiError, AttachmentEvent, AttachmentReport, ErrorCode, Outcome};
use ferro_cluster::attachment;
use ferro_cluster::k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use ferro_cluster::resource::{Attachment, AttachmentSpec};
use ferro_cluster::{keys, Kind, Object};
use ferro_store::{KeyValue, Op, Store, StoreError, Txn};

use crate::api::{store_error, Api};
use crate::kernel::KernelWorker;
use crate::metrics::Metrics;
use crate::state::make_private_dir;
use crate::AgentError;

/// How often the spool is looked at (and a failed resync retried).
const TICK: Duration = Duration::from_secs(1);
/// How often the records, the links and the store are compared anyway.
const RESYNC_EVERY: Duration = Duration::from_secs(60);

/// Where the node's links come from.
#[derive(Debug)]
pub enum LinkSource {
    /// The kernel (the agent's network namespace).
    Kernel(KernelWorker),
    /// A fixed set (tests).
    #[cfg(test)]
    Given(std::sync::Mutex<BTreeSet<String>>),
}

impl LinkSource {
    async fn names(&self) -> Result<BTreeSet<String>, String> {
        match self {
            LinkSource::Kernel(k) => k.link_names().await.map_err(|e| e.to_string()),
            #[cfg(test)]
            LinkSource::Given(s) => Ok(s.lock().unwrap_or_else(|p| p.into_inner()).clone()),
        }
    }
}

/// The node's attachments.
#[derive(Debug)]
pub struct Attachments<S> {
    store: S,
    node: String,
    dir: PathBuf,
    links: LinkSource,
    /// Set when the store missed a change: the next tick resyncs.
    dirty: AtomicBool,
    /// One change at a time (records and store in step).
    lock: tokio::sync::Mutex<()>,
}

/// What a resync changes.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Resync {
    /// Records whose host veth is gone (their ids).
    pub forget: Vec<String>,
    /// Attachments to write (missing or different in the store).
    pub put: Vec<Attachment>,
    /// Store keys of this node's attachments that no record backs.
    pub delete: Vec<String>,
}

/// The local id of an attachment: its container id and interface.
fn record_id(container_id: &str, ifname: &str) -> String {
    attachment::identity(container_id, ifname)
}

/// An attachment's store key.
fn key_of(a: &Attachment) -> String {
    keys::object(
        Kind::Attachment,
        a.metadata.namespace.as_deref(),
        a.metadata.name.as_deref().unwrap_or_default(),
    )
}

/// The same attachment, as far as the store is concerned (timestamps and revisions aside).
fn same(a: &Attachment, b: &Attachment) -> bool {
    a.metadata.namespace == b.metadata.namespace
        && a.metadata.name == b.metadata.name
        && a.spec == b.spec
}

fn decode(kv: &KeyValue) -> Option<Attachment> {
    let v = serde_json::from_slice(&kv.value).ok()?;
    match Object::from_value(Kind::Attachment, v).ok()? {
        Object::Attachment(a) => Some(a),
        _ => None,
    }
}

/// The resync plan: `records` (this node's, by id), the node's `links`, the store's
/// attachments of this node (`stored`, by key).
pub fn plan_resync(
    records: &BTreeMap<String, Attachment>,
    links: &BTreeSet<String>,
    stored: &BTreeMap<String, Attachment>,
) -> Resync {
    let mut r = Resync::default();
    let mut wanted = BTreeSet::new();
    for (id, a) in records {
        let alive = a
            .spec
            .host_interface
            .as_ref()
            .is_some_and(|h| links.contains(h));
        if !alive {
            r.forget.push(id.clone());
            continue;
        }
        let key = key_of(a);
        if !stored.get(&key).is_some_and(|s| same(s, a)) {
            r.put.push(a.clone());
        }
        wanted.insert(key);
    }
    r.delete = stored
        .keys()
        .filter(|k| !wanted.contains(*k))
        .cloned()
        .collect();
    r
}

fn outcome(a: &Attachment, action: Action) -> Outcome {
    Outcome {
        kind: Kind::Attachment.name().to_string(),
        namespace: a.metadata.namespace.clone(),
        name: a.metadata.name.clone().unwrap_or_default(),
        action,
    }
}

impl<S: Store> Attachments<S> {
    /// The attachments of `node`, recorded under `<state_dir>/attachments` (created, mode
    /// 0700).
    pub fn open(
        store: S,
        node: String,
        state_dir: &Path,
        links: LinkSource,
    ) -> Result<Self, AgentError> {
        let dir = state_dir.join("attachments");
        make_private_dir(&dir)?;
        Ok(Attachments {
            store,
            node,
            dir,
            links,
            dirty: AtomicBool::new(true),
            lock: tokio::sync::Mutex::new(()),
        })
    }

    /// Whether a resync is owed (a store write failed since the last one, or none ran yet).
    pub fn dirty(&self) -> bool {
        self.dirty.load(Ordering::Relaxed)
    }

    fn record_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    fn read_record(&self, id: &str) -> Option<Attachment> {
        let bytes = std::fs::read(self.record_path(id)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    fn write_record(&self, id: &str, a: &Attachment) -> Result<(), ApiError> {
        let internal = |e: std::io::Error| {
            ApiError::new(
                ErrorCode::Internal,
                format!("recording attachment in {}: {e}", self.dir.display()),
            )
        };
        let tmp = self.dir.join(format!(".{id}.tmp"));
        let body = serde_json::to_vec(a).map_err(|e| internal(std::io::Error::other(e)))?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(internal)?;
        std::io::Write::write_all(&mut f, &body).map_err(internal)?;
        f.sync_data().map_err(internal)?;
        std::fs::rename(&tmp, self.record_path(id)).map_err(internal)
    }

    fn forget_record(&self, id: &str) {
        if let Err(e) = std::fs::remove_file(self.record_path(id)) {
            if e.kind() != std::io::ErrorKind::NotFound {
                log::warn!("attachments: removing record {id}: {e}");
            }
        }
    }

    /// Every record, by id (unreadable ones are logged and skipped).
    fn records(&self) -> BTreeMap<String, Attachment> {
        let mut out = BTreeMap::new();
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return out;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(id) = name
                .strip_suffix(".json")
                .filter(|_| !name.starts_with('.'))
            else {
                continue;
            };
            match std::fs::read(e.path())
                .ok()
                .and_then(|b| serde_json::from_slice::<Attachment>(&b).ok())
            {
                Some(a) => {
                    out.insert(id.to_string(), a);
                }
                None => log::warn!(
                    "attachments: record {} is unreadable: skipped",
                    e.path().display()
                ),
            }
        }
        out
    }

    /// The attachment object a report describes.
    fn object(&self, r: &AttachmentReport) -> Attachment {
        let ns = attachment::namespace(r.pod_namespace.as_deref()).to_string();
        Attachment {
            api_version: Kind::Attachment.api_version().to_string(),
            kind: Kind::Attachment.name().to_string(),
            metadata: ObjectMeta {
                name: Some(attachment::name(
                    r.pod_name.as_deref(),
                    &r.container_id,
                    &r.ifname,
                )),
                namespace: Some(ns),
                creation_timestamp: Some(Time(ferro_cluster::now())),
                ..Default::default()
            },
            spec: AttachmentSpec {
                node: self.node.clone(),
                pod: r.pod_name.clone().filter(|p| !p.is_empty()),
                container_id: r.container_id.clone(),
                interface: r.ifname.clone(),
                host_interface: Some(r.host_interface.clone()).filter(|h| !h.is_empty()),
                addresses: r.addresses.clone(),
                network: Some(r.network.clone()).filter(|n| !n.is_empty()),
                plugin: Some(r.plugin.clone()).filter(|p| !p.is_empty()),
            },
        }
    }

    /// Applies one report: the local record, then the store. A store failure is logged and
    /// left to the next resync (the report is kept); only a record that cannot be written
    /// is an error.
    pub async fn report(&self, r: &AttachmentReport) -> Result<Outcome, ApiError> {
        if r.container_id.is_empty() || r.ifname.is_empty() {
            return Err(ApiError::new(
                ErrorCode::BadRequest,
                "report: containerID and ifname are required",
            ));
        }
        let _g = self.lock.lock().await;
        let id = record_id(&r.container_id, &r.ifname);
        let old = self.read_record(&id);
        match r.event {
            AttachmentEvent::Add => {
                let mut a = self.object(r);
                if let Some(o) = old.as_ref().filter(|o| same(o, &a)) {
                    a.metadata.creation_timestamp = o.metadata.creation_timestamp.clone();
                }
                self.write_record(&id, &a)?;
                let stale = old.as_ref().map(key_of).filter(|k| *k != key_of(&a));
                let action = self.store_put(&a, stale).await;
                log::info!(
                    "attachment {}/{} {} ({} {} of container {})",
                    a.metadata.namespace.as_deref().unwrap_or_default(),
                    a.metadata.name.as_deref().unwrap_or_default(),
                    action,
                    r.network,
                    r.ifname,
                    r.container_id
                );
                Ok(outcome(&a, action))
            }
            AttachmentEvent::Del => {
                let key = match &old {
                    Some(a) => Some(key_of(a)),
                    None => self.find_in_store(&r.container_id, &r.ifname).await,
                };
                self.forget_record(&id);
                let action = match &key {
                    Some(k) => self.store_delete(k).await,
                    None => Action::NotFound,
                };
                let shown = old.unwrap_or_else(|| self.object(r));
                log::info!(
                    "attachment {}/{} {action} ({} {} of container {})",
                    shown.metadata.namespace.as_deref().unwrap_or_default(),
                    shown.metadata.name.as_deref().unwrap_or_default(),
                    r.network,
                    r.ifname,
                    r.container_id
                );
                Ok(outcome(&shown, action))
            }
        }
    }

    /// Writes `a` (and deletes `stale`, its previous key); the action, `Created` when the
    /// store could not be reached (it will be).
    async fn store_put(&self, a: &Attachment, stale: Option<String>) -> Action {
        let key = key_of(a);
        let result = async {
            let cur = self.store.get(&key).await?;
            let action = match cur.as_ref().and_then(decode) {
                None => Action::Created,
                Some(c) if same(&c, a) => Action::Unchanged,
                Some(_) => Action::Configured,
            };
            let mut txn = Txn::new();
            if action != Action::Unchanged {
                let mut a = a.clone();
                if let Some(c) = cur.as_ref().and_then(decode) {
                    a.metadata.creation_timestamp = c.metadata.creation_timestamp;
                }
                let value = serde_json::to_vec(&a).unwrap_or_default();
                txn = txn.then(Op::put(&key, value));
            }
            if let Some(s) = &stale {
                txn = txn.then(Op::delete(s));
            }
            if !txn.ops.is_empty() {
                self.store.txn(txn).await?;
            }
            Ok::<_, StoreError>(action)
        }
        .await;
        result.unwrap_or_else(|e| {
            log::warn!("attachments: writing {key}: {e} (kept; written when the store answers)");
            self.dirty.store(true, Ordering::Relaxed);
            Action::Created
        })
    }

    async fn store_delete(&self, key: &str) -> Action {
        let result = async {
            let found = self.store.get(key).await?.is_some();
            if found {
                self.store.delete(key).await?;
            }
            Ok::<_, StoreError>(found)
        }
        .await;
        match result {
            Ok(true) => Action::Deleted,
            Ok(false) => Action::NotFound,
            Err(e) => {
                log::warn!(
                    "attachments: deleting {key}: {e} (the resync deletes it when the store answers)"
                );
                self.dirty.store(true, Ordering::Relaxed);
                Action::Deleted
            }
        }
    }

    /// This node's attachments in the store, by key.
    async fn stored(&self) -> Result<BTreeMap<String, Attachment>, StoreError> {
        let l = self
            .store
            .list(&keys::prefix(Kind::Attachment, None))
            .await?;
        Ok(l.kvs
            .iter()
            .filter_map(|kv| decode(kv).map(|a| (kv.key.clone(), a)))
            .filter(|(_, a)| a.spec.node == self.node)
            .collect())
    }

    /// The key of this node's attachment of `container_id`/`ifname` in the store (DEL
    /// without a record).
    async fn find_in_store(&self, container_id: &str, ifname: &str) -> Option<String> {
        match self.stored().await {
            Ok(m) => m
                .into_iter()
                .find(|(_, a)| a.spec.container_id == container_id && a.spec.interface == ifname)
                .map(|(k, _)| k),
            Err(e) => {
                log::warn!("attachments: looking for {container_id}/{ifname}: {e}");
                self.dirty.store(true, Ordering::Relaxed);
                None
            }
        }
    }

    /// Brings records and store in step with the node (see the module documentation).
    pub async fn resync(&self) -> Result<Resync, ApiError> {
        let _g = self.lock.lock().await;
        self.dirty.store(false, Ordering::Relaxed);
        let failed = |e: ApiError| {
            self.dirty.store(true, Ordering::Relaxed);
            e
        };
        // Records before links: a record exists only once its veth does, so a veth missing
        // from the later listing is really gone.
        let records = self.records();
        let links = self.links.names().await.map_err(|e| {
            failed(ApiError::new(
                ErrorCode::Internal,
                format!("listing links: {e}"),
            ))
        })?;
        let stored = self.stored().await.map_err(|e| failed(store_error(e)))?;
        let plan = plan_resync(&records, &links, &stored);
        for id in &plan.forget {
            if let Some(a) = records.get(id) {
                log::info!(
                    "attachment {}/{}: host interface {} is gone: forgotten",
                    a.metadata.namespace.as_deref().unwrap_or_default(),
                    a.metadata.name.as_deref().unwrap_or_default(),
                    a.spec.host_interface.as_deref().unwrap_or_default()
                );
            }
            self.forget_record(id);
        }
        let mut txn = Txn::new();
        for a in &plan.put {
            let mut a = a.clone();
            if let Some(s) = stored.get(&key_of(&a)) {
                a.metadata.creation_timestamp = s.metadata.creation_timestamp.clone();
            }
            txn = txn.then(Op::put(
                key_of(&a),
                serde_json::to_vec(&a).unwrap_or_default(),
            ));
        }
        for k in &plan.delete {
            txn = txn.then(Op::delete(k));
        }
        if !txn.ops.is_empty() {
            self.store
                .txn(txn)
                .await
                .map_err(|e| failed(store_error(e)))?;
            log::info!(
                "attachments: resync wrote {} and deleted {} in the store",
                plan.put.len(),
                plan.delete.len()
            );
        }
        Ok(plan)
    }

    /// How many attachments the node records.
    pub fn count(&self) -> usize {
        self.records().len()
    }
}

/// Every second: replays what waits in the spool; resyncs when a store write failed, and
/// every minute anyway. Runs until the task is dropped.
pub async fn keep_in_step<S: Store + 'static>(
    api: Arc<Api<S>>,
    attachments: Arc<Attachments<S>>,
    metrics: Arc<Metrics>,
) {
    let mut last = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(TICK).await;
        metrics.replayed(api.replay().await);
        if attachments.dirty() || last.elapsed() >= RESYNC_EVERY {
            last = tokio::time::Instant::now();
            if let Err(e) = attachments.resync().await {
                log::debug!("attachments: resync: {e}");
            }
            metrics.set_attachments(attachments.count());
        }
    }
}

#[cfg(test)]
mod tests;
