//! The node's attachments: what the plugins report, recorded locally first, then kept in
//! step with the store's `Attachment` objects of this node.
//!
//! ```text
//! report (socket or spool) ──> <stateDir>/attachments/<id>.json ──> /ferro-cni/v1/attachments/<ns>/<name>
//!                                       ^                                 ^
//!                      the node's links (host veths) ──── resync ─────────┘
//! ```
//!
//! - A report is applied to the local record (one file per attachment, named after its
//!   container id and interface, written whole by rename) and answered; its store write
//!   follows in the background, in report order, so the plugin never waits for the store.
//!   The local record is what the node knows; the store is told when it can be: a store
//!   that cannot be reached does not lose the report, the next resync writes it.
//! - DEL needs no more than the container id and interface: the record says where the
//!   store object is (without a record, the store's attachments of this node are searched).
//! - [`Attachments::resync`] (at start, after a store failure, and every minute) compares
//!   three things: the records, the node's links, and the store's attachments of this node.
//!   A record whose host veth no longer exists is stale (its DEL was never heard): it is
//!   forgotten, unless it is pending: a plugin's address request records the attachment
//!   before its veth exists (`ipamAllocate`'s `report`), with a marker file beside the
//!   record, and such a record waits up to [`PENDING`] for its veth. The store then gets exactly the remaining records: missing ones written
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
use tokio::sync::{mpsc, oneshot};

use crate::api::{store_error, Api};
use crate::kernel::KernelWorker;
use crate::metrics::Metrics;
use crate::state::make_private_dir;
use crate::AgentError;

/// How often the spool is looked at (and a failed resync retried).
const TICK: Duration = Duration::from_secs(1);
/// How often the records, the links and the store are compared anyway.
const RESYNC_EVERY: Duration = Duration::from_secs(60);
/// How long a record may wait for its host veth: an ADD records its attachment with its
/// address request, before it creates the veth pair. A record that young without its link
/// is kept by a resync; one whose ADD failed is removed by the plugin's DEL report, or by a
/// resync once it is older.
pub const PENDING: Duration = Duration::from_secs(60);
/// How long a report's store write waits for the writes of other reports: reports arriving
/// together (a node's pods started or stopped at once) share one transaction, an attachment
/// added and deleted within it costs the store nothing, and the write does not compete for
/// the node's CPUs with the ADD that asked for it.
pub const WRITE_WINDOW: Duration = Duration::from_millis(10);
/// The most writes in one store transaction (etcd's `--max-txn-ops` default).
pub const MAX_TXN_OPS: usize = 128;

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
    writer: Writer<S>,
    dir: PathBuf,
    links: LinkSource,
    /// One change at a time (records and store in step).
    lock: tokio::sync::Mutex<()>,
    /// The store writes of reports, in order, to the writer task.
    tx: mpsc::UnboundedSender<StoreOp>,
}

/// A store write a report owes.
#[derive(Debug)]
enum StoreOp {
    /// Write the attachment (and delete its previous key).
    Put(Box<Attachment>, Option<String>),
    /// Delete a key.
    Delete(String),
    /// Delete this node's attachment of a container and interface, wherever it is.
    DeleteFound(String, String),
    /// Answer once everything before is done.
    Flush(oneshot::Sender<()>),
}

/// What writes the store: the report's writes (in the background, in order) and the resync.
#[derive(Debug, Clone)]
struct Writer<S> {
    store: S,
    node: String,
    /// Set when the store missed a change: the next tick resyncs.
    dirty: Arc<AtomicBool>,
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
        Object::Attachment(a) => Some(*a),
        _ => None,
    }
}

/// Whether `a`'s host veth is among `links`.
fn linked(a: &Attachment, links: &BTreeSet<String>) -> bool {
    a.spec
        .host_interface
        .as_ref()
        .is_some_and(|h| links.contains(h))
}

/// The resync plan: `records` (this node's, by id), the node's `links`, the ids of records
/// still waiting for their veth (`pending`: written within [`PENDING`]), the store's
/// attachments of this node (`stored`, by key).
pub fn plan_resync(
    records: &BTreeMap<String, Attachment>,
    links: &BTreeSet<String>,
    pending: &BTreeSet<String>,
    stored: &BTreeMap<String, Attachment>,
) -> Resync {
    let mut r = Resync::default();
    let mut wanted = BTreeSet::new();
    for (id, a) in records {
        if !linked(a, links) && !pending.contains(id) {
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
        allocated: vec![],
    }
}

/// The store writes of `ops` (puts and deletes, in report order) as each key's last: an
/// attachment (write it) or `None` (delete it). A put whose attachment moved deletes its
/// previous key first.
fn coalesce(ops: Vec<StoreOp>) -> BTreeMap<String, Option<Attachment>> {
    let mut want = BTreeMap::new();
    for op in ops {
        match op {
            StoreOp::Put(a, stale) => {
                if let Some(stale) = stale {
                    want.insert(stale, None);
                }
                want.insert(key_of(&a), Some(*a));
            }
            StoreOp::Delete(key) => {
                want.insert(key, None);
            }
            StoreOp::DeleteFound(..) | StoreOp::Flush(_) => {}
        }
    }
    want
}

impl<S: Store> Attachments<S> {
    /// The attachments of `node`, recorded under `<state_dir>/attachments` (created, mode
    /// 0700); starts the task that writes reports to the store (it ends with this value).
    pub fn open(
        store: S,
        node: String,
        state_dir: &Path,
        links: LinkSource,
    ) -> Result<Self, AgentError>
    where
        S: Clone + 'static,
    {
        let dir = state_dir.join("attachments");
        make_private_dir(&dir)?;
        let writer = Writer {
            store,
            node,
            dirty: Arc::new(AtomicBool::new(true)),
        };
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(writer.clone().run(rx));
        Ok(Attachments {
            writer,
            dir,
            links,
            lock: tokio::sync::Mutex::new(()),
            tx,
        })
    }

    /// Whether a resync is owed (a store write failed since the last one, or none ran yet).
    pub fn dirty(&self) -> bool {
        self.writer.dirty.load(Ordering::Relaxed)
    }

    /// Waits until the store writes of every report so far are done (or failed).
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(StoreOp::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    fn send(&self, op: StoreOp) {
        if self.tx.send(op).is_err() {
            // the writer is gone (the agent is stopping): the next start resyncs
            self.writer.dirty.store(true, Ordering::Relaxed);
        }
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
        // Not synced: a record must outlive the agent, not the node (a node that loses power
        // loses its pods too, and the resync forgets them).
        std::io::Write::write_all(&mut f, &body).map_err(internal)?;
        std::fs::rename(&tmp, self.record_path(id)).map_err(internal)
    }

    /// The marker of a record made before its veth exists (hidden: not a record).
    fn pending_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!(".{id}.pending"))
    }

    /// Whether record `id` was made before its veth, less than `age` ago.
    fn pending_within(&self, id: &str, age: Duration) -> bool {
        std::fs::metadata(self.pending_path(id))
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().map_or(true, |e| e < age))
    }

    fn mark_pending(&self, id: &str) -> Result<(), ApiError> {
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(self.pending_path(id))
            .map(drop)
            .map_err(|e| {
                ApiError::new(
                    ErrorCode::Internal,
                    format!("recording attachment in {}: {e}", self.dir.display()),
                )
            })
    }

    fn remove_file(path: &Path, what: &str) {
        if let Err(e) = std::fs::remove_file(path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                log::warn!("attachments: removing {what} {}: {e}", path.display());
            }
        }
    }

    fn forget_record(&self, id: &str) {
        Self::remove_file(&self.record_path(id), "record");
        Self::remove_file(&self.pending_path(id), "marker");
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
    pub fn object(&self, r: &AttachmentReport) -> Attachment {
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
                node: self.writer.node.clone(),
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

    /// Applies one report to the local record and queues its store write (done in the
    /// background, in order: the answer does not wait for the store). Only a record that
    /// cannot be written is an error. The action says what changed in the record.
    pub async fn report(&self, r: &AttachmentReport) -> Result<Outcome, ApiError> {
        self.record(r, false).await
    }

    /// [`Attachments::report`] of an ADD whose veth does not exist yet (an address request
    /// carrying its report): the record is marked pending, so that a resync before the veth
    /// exists keeps it (for up to [`PENDING`]).
    pub async fn report_pending(&self, r: &AttachmentReport) -> Result<Outcome, ApiError> {
        self.record(r, true).await
    }

    async fn record(&self, r: &AttachmentReport, pending: bool) -> Result<Outcome, ApiError> {
        if r.container_id.is_empty() || r.ifname.is_empty() {
            return Err(ApiError::new(
                ErrorCode::BadRequest,
                "report: containerID and ifname are required",
            ));
        }
        let _g = self.lock.lock().await;
        let id = record_id(&r.container_id, &r.ifname);
        let old = self.read_record(&id);
        let (shown, action) = match r.event {
            AttachmentEvent::Add => {
                let mut a = self.object(r);
                let action = match &old {
                    None => Action::Created,
                    Some(o) if same(o, &a) => {
                        a.metadata.creation_timestamp = o.metadata.creation_timestamp.clone();
                        Action::Unchanged
                    }
                    Some(_) => Action::Configured,
                };
                if pending {
                    self.mark_pending(&id)?;
                } else if old.is_some() {
                    Self::remove_file(&self.pending_path(&id), "marker");
                }
                self.write_record(&id, &a)?;
                let stale = old.as_ref().map(key_of).filter(|k| *k != key_of(&a));
                self.send(StoreOp::Put(Box::new(a.clone()), stale));
                (a, action)
            }
            AttachmentEvent::Del => {
                self.forget_record(&id);
                match old {
                    Some(a) => {
                        self.send(StoreOp::Delete(key_of(&a)));
                        (a, Action::Deleted)
                    }
                    None => {
                        self.send(StoreOp::DeleteFound(
                            r.container_id.clone(),
                            r.ifname.clone(),
                        ));
                        (self.object(r), Action::NotFound)
                    }
                }
            }
        };
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

    /// Brings records and store in step with the node (see the module documentation).
    pub async fn resync(&self) -> Result<Resync, ApiError> {
        let _g = self.lock.lock().await;
        // The reports' store writes queued so far land first (no new one can be queued while
        // the lock is held): one landing after this comparison would undo what it decides,
        // e.g. put back the object of a record it forgets.
        self.flush().await;
        let dirty = &self.writer.dirty;
        dirty.store(false, Ordering::Relaxed);
        let failed = |e: ApiError| {
            dirty.store(true, Ordering::Relaxed);
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
        let stored = self
            .writer
            .stored()
            .await
            .map_err(|e| failed(store_error(e)))?;
        let pending: BTreeSet<String> = records
            .iter()
            .filter(|(id, a)| !linked(a, &links) && self.pending_within(id, PENDING))
            .map(|(id, _)| id.clone())
            .collect();
        let plan = plan_resync(&records, &links, &pending, &stored);
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
            self.writer
                .commit(txn.ops)
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

impl<S: Store> Writer<S> {
    /// Applies the reports' store writes until every sender is gone: the writes queued
    /// within [`WRITE_WINDOW`] of the first go together ([`Writer::apply`]).
    async fn run(self, mut rx: mpsc::UnboundedReceiver<StoreOp>) {
        while let Some(first) = rx.recv().await {
            if !matches!(first, StoreOp::Flush(_)) {
                tokio::time::sleep(WRITE_WINDOW).await;
            }
            let mut ops = vec![first];
            while let Ok(op) = rx.try_recv() {
                ops.push(op);
            }
            self.apply(ops).await;
        }
    }

    /// Applies `ops` in order, each key's last write winning ([`coalesce`]); a search of
    /// the store (a DEL without a record) or a flush first writes what precedes it.
    async fn apply(&self, ops: Vec<StoreOp>) {
        let mut pending = Vec::new();
        for op in ops {
            match op {
                StoreOp::Put(..) | StoreOp::Delete(_) => pending.push(op),
                StoreOp::DeleteFound(container_id, ifname) => {
                    self.write(coalesce(std::mem::take(&mut pending))).await;
                    if let Some(key) = self.find(&container_id, &ifname).await {
                        self.write(BTreeMap::from([(key, None)])).await;
                    }
                }
                StoreOp::Flush(done) => {
                    self.write(coalesce(std::mem::take(&mut pending))).await;
                    let _ = done.send(());
                }
            }
        }
        self.write(coalesce(pending)).await;
    }

    fn missed(&self, what: &str, e: &StoreError) {
        log::warn!("attachments: {what}: {e} (kept; the store gets it when it answers)");
        self.dirty.store(true, Ordering::Relaxed);
    }

    /// Brings the store's keys to `want` (`None`: absent): an attachment the store has
    /// already is not written again (its creation time is kept when it changes), an absent
    /// key is not deleted, the rest goes in transactions of at most [`MAX_TXN_OPS`].
    async fn write(&self, want: BTreeMap<String, Option<Attachment>>) {
        let mut ops = Vec::new();
        for (key, want) in want {
            let cur = match self.store.get(&key).await {
                Ok(cur) => cur,
                Err(e) => return self.missed(&format!("reading {key}"), &e),
            };
            match want {
                Some(mut a) => {
                    let cur = cur.as_ref().and_then(decode);
                    if cur.as_ref().is_some_and(|c| same(c, &a)) {
                        continue;
                    }
                    if let Some(c) = cur {
                        a.metadata.creation_timestamp = c.metadata.creation_timestamp;
                    }
                    ops.push(Op::put(&key, serde_json::to_vec(&a).unwrap_or_default()));
                }
                None if cur.is_some() => ops.push(Op::delete(&key)),
                None => {}
            }
        }
        if let Err(e) = self.commit(ops).await {
            self.missed("writing attachments", &e);
        }
    }

    /// Writes `ops` in transactions of at most [`MAX_TXN_OPS`].
    async fn commit(&self, ops: Vec<Op>) -> Result<(), StoreError> {
        for chunk in ops.chunks(MAX_TXN_OPS) {
            self.store
                .txn(Txn {
                    compares: Vec::new(),
                    ops: chunk.to_vec(),
                })
                .await?;
        }
        Ok(())
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

    /// The key of this node's attachment of `container_id`/`ifname` in the store (a DEL
    /// without a record).
    async fn find(&self, container_id: &str, ifname: &str) -> Option<String> {
        match self.stored().await {
            Ok(m) => m
                .into_iter()
                .find(|(_, a)| a.spec.container_id == container_id && a.spec.interface == ifname)
                .map(|(k, _)| k),
            Err(e) => {
                self.missed(&format!("looking for {container_id}/{ifname}"), &e);
                None
            }
        }
    }
}

/// Every second: replays what waits in the spool; resyncs when a store write failed, and
/// every minute anyway. Runs until the task is dropped.
pub async fn keep_in_step<S: Store + Clone + 'static>(
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
