//! The embedded backend: one redb file, opened by one process (the agent).
//!
//! Tables:
//! - `kv`: key -> record (create revision, mod revision, version, lease, value);
//! - `log`: (revision, index) -> event, the history watches replay; entries older than the
//!   compaction revision are removed (automatically once more than `history` revisions
//!   accumulate, or by [`crate::Store::compact`]);
//! - `meta`: the revision, the compaction revision, the next lease id;
//! - `leases`: lease id -> TTL in seconds; `lease_keys`: lease id -> the keys attached to it.
//!
//! Leases live in memory with their deadline; a task revokes expired ones (deleting their
//! keys at one revision). After a restart every stored lease gets a full TTL again, as etcd
//! does after a leader change. Writes are serialized by a mutex and committed durably
//! (fsync); reads run on their own read transactions. The blocking database work runs on
//! tokio's blocking pool. Watches replay the log from the requested revision, then follow a
//! broadcast of committed batches; a watch that falls behind the broadcast replays the log
//! again from where it was, so it never skips or repeats a revision.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use redb::{
    Database, MultimapTableDefinition, ReadableDatabase, ReadableMultimapTable, ReadableTable,
    TableDefinition, WriteTransaction,
};
use tokio::sync::{broadcast, mpsc};

use crate::watch::WATCH_BUFFER;
use crate::{
    Event, EventKind, KeyValue, Lease, LeaseId, Listing, Op, Result, Revision, Store, StoreError,
    Txn, TxnResult, Watch,
};

const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
const LOG: TableDefinition<(u64, u32), &[u8]> = TableDefinition::new("log");
const META: TableDefinition<&str, i64> = TableDefinition::new("meta");
const LEASES: TableDefinition<i64, i64> = TableDefinition::new("leases");
const LEASE_KEYS: MultimapTableDefinition<i64, &str> = MultimapTableDefinition::new("lease_keys");

const META_REVISION: &str = "revision";
const META_COMPACTED: &str = "compacted";
const META_NEXT_LEASE: &str = "next_lease";

/// Revisions of history kept for watches by default.
pub const DEFAULT_HISTORY: i64 = 10_000;
/// How often expired leases are looked for.
const EXPIRY_TICK: Duration = Duration::from_millis(100);

/// The embedded store. Cheap to clone (a shared handle).
#[derive(Clone)]
pub struct Embedded {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Embedded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedded")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

struct Inner {
    db: Database,
    path: PathBuf,
    history: i64,
    state: Mutex<State>,
    events: broadcast::Sender<Arc<Vec<Event>>>,
}

struct State {
    revision: Revision,
    compacted: Revision,
    leases: HashMap<i64, LeaseClock>,
}

struct LeaseClock {
    ttl: Duration,
    deadline: Instant,
}

/// A key's stored record: four i64 (create revision, mod revision, version, lease or 0)
/// then the value.
fn encode_record(kv: &KeyValue) -> Vec<u8> {
    let mut b = Vec::with_capacity(32 + kv.value.len());
    for n in [
        kv.create_revision,
        kv.mod_revision,
        kv.version,
        kv.lease.map_or(0, |l| l.0),
    ] {
        b.extend_from_slice(&n.to_le_bytes());
    }
    b.extend_from_slice(&kv.value);
    b
}

fn read_i64(b: &[u8], at: usize) -> Option<i64> {
    b.get(at..at + 8)
        .and_then(|s| s.try_into().ok())
        .map(i64::from_le_bytes)
}

fn decode_record(key: &str, b: &[u8]) -> Option<KeyValue> {
    let lease = read_i64(b, 24)?;
    Some(KeyValue {
        key: key.to_string(),
        create_revision: read_i64(b, 0)?,
        mod_revision: read_i64(b, 8)?,
        version: read_i64(b, 16)?,
        lease: (lease != 0).then_some(LeaseId(lease)),
        value: b.get(32..)?.to_vec(),
    })
}

/// A log entry: the kind (0 put, 1 delete), the key's length (u32), the key, the record.
fn encode_event(e: &Event) -> Vec<u8> {
    let mut b = vec![match e.kind {
        EventKind::Put => 0u8,
        EventKind::Delete => 1,
    }];
    b.extend_from_slice(&(e.kv.key.len() as u32).to_le_bytes());
    b.extend_from_slice(e.kv.key.as_bytes());
    b.extend_from_slice(&encode_record(&e.kv));
    b
}

fn decode_event(b: &[u8]) -> Option<Event> {
    let kind = match b.first()? {
        0 => EventKind::Put,
        1 => EventKind::Delete,
        _ => return None,
    };
    let len = u32::from_le_bytes(b.get(1..5)?.try_into().ok()?) as usize;
    let key = std::str::from_utf8(b.get(5..5 + len)?).ok()?;
    let kv = decode_record(key, b.get(5 + len..)?)?;
    Some(Event { kind, kv })
}

impl Inner {
    fn err(&self, detail: impl std::fmt::Display) -> StoreError {
        StoreError::Database {
            path: self.path.display().to_string(),
            detail: detail.to_string(),
        }
    }

    fn corrupt(&self, what: &str) -> StoreError {
        self.err(format!("corrupt {what}"))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves no half-written state behind (the write
        // transaction is dropped, so aborted): the state is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let rtx = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = match rtx.open_table(KV) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(self.err(e)),
        };
        let got = table.get(key).map_err(|e| self.err(e))?;
        match got {
            None => Ok(None),
            Some(v) => decode_record(key, v.value())
                .map(Some)
                .ok_or_else(|| self.corrupt("record")),
        }
    }

    fn list(&self, prefix: &str) -> Result<Listing> {
        let rtx = self.db.begin_read().map_err(|e| self.err(e))?;
        let revision = match rtx.open_table(META) {
            Ok(t) => t
                .get(META_REVISION)
                .map_err(|e| self.err(e))?
                .map_or(1, |v| v.value()),
            Err(redb::TableError::TableDoesNotExist(_)) => 1,
            Err(e) => return Err(self.err(e)),
        };
        let table = match rtx.open_table(KV) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => {
                return Ok(Listing {
                    kvs: Vec::new(),
                    revision,
                })
            }
            Err(e) => return Err(self.err(e)),
        };
        let mut kvs = Vec::new();
        for item in table.range(prefix..).map_err(|e| self.err(e))? {
            let (k, v) = item.map_err(|e| self.err(e))?;
            let key = k.value();
            if !key.starts_with(prefix) {
                break;
            }
            kvs.push(decode_record(key, v.value()).ok_or_else(|| self.corrupt("record"))?);
        }
        Ok(Listing { kvs, revision })
    }

    /// Events of revisions >= `from` under `prefix`, from the log, with the compaction
    /// revision the read saw.
    fn history(&self, prefix: &str, from: Revision) -> Result<(Vec<Event>, Revision)> {
        let rtx = self.db.begin_read().map_err(|e| self.err(e))?;
        let compacted = match rtx.open_table(META) {
            Ok(t) => t
                .get(META_COMPACTED)
                .map_err(|e| self.err(e))?
                .map_or(0, |v| v.value()),
            Err(redb::TableError::TableDoesNotExist(_)) => 0,
            Err(e) => return Err(self.err(e)),
        };
        let table = match rtx.open_table(LOG) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok((Vec::new(), compacted)),
            Err(e) => return Err(self.err(e)),
        };
        let mut out = Vec::new();
        let start = (from.max(0) as u64, 0u32);
        for item in table.range(start..).map_err(|e| self.err(e))? {
            let (_, v) = item.map_err(|e| self.err(e))?;
            let e = decode_event(v.value()).ok_or_else(|| self.corrupt("log entry"))?;
            if e.kv.key.starts_with(prefix) {
                out.push(e);
            }
        }
        Ok((out, compacted))
    }

    /// Applies `ops` at a new revision inside `wtx` (the caller commits). Returns the events
    /// (empty when nothing changed).
    fn write_ops(
        &self,
        wtx: &WriteTransaction,
        revision: Revision,
        ops: &[Op],
    ) -> Result<Vec<Event>> {
        let mut kv = wtx.open_table(KV).map_err(|e| self.err(e))?;
        let mut index = wtx
            .open_multimap_table(LEASE_KEYS)
            .map_err(|e| self.err(e))?;
        let mut events = Vec::new();
        for op in ops {
            let old = match kv.get(op.key()).map_err(|e| self.err(e))? {
                None => None,
                Some(v) => {
                    Some(decode_record(op.key(), v.value()).ok_or_else(|| self.corrupt("record"))?)
                }
            };
            if let Some(LeaseId(l)) = old.as_ref().and_then(|o| o.lease) {
                index.remove(l, op.key()).map_err(|e| self.err(e))?;
            }
            match op {
                Op::Put { key, value, lease } => {
                    let new = KeyValue {
                        key: key.clone(),
                        value: value.clone(),
                        create_revision: old.as_ref().map_or(revision, |o| o.create_revision),
                        mod_revision: revision,
                        version: old.as_ref().map_or(0, |o| o.version) + 1,
                        lease: *lease,
                    };
                    kv.insert(key.as_str(), encode_record(&new).as_slice())
                        .map_err(|e| self.err(e))?;
                    if let Some(LeaseId(l)) = lease {
                        index.insert(*l, key.as_str()).map_err(|e| self.err(e))?;
                    }
                    events.push(Event {
                        kind: EventKind::Put,
                        kv: new,
                    });
                }
                Op::Delete { key } => {
                    if old.is_some() {
                        kv.remove(key.as_str()).map_err(|e| self.err(e))?;
                        events.push(Event {
                            kind: EventKind::Delete,
                            kv: KeyValue {
                                key: key.clone(),
                                value: Vec::new(),
                                create_revision: 0,
                                mod_revision: revision,
                                version: 0,
                                lease: None,
                            },
                        });
                    }
                }
            }
        }
        Ok(events)
    }

    /// Records `events` at `revision` in the log and the meta table, compacting old history
    /// when it has grown past twice the configured length. Returns the new compaction
    /// revision.
    fn log_events(
        &self,
        wtx: &WriteTransaction,
        st: &State,
        revision: Revision,
        events: &[Event],
    ) -> Result<Revision> {
        let mut log = wtx.open_table(LOG).map_err(|e| self.err(e))?;
        for (i, e) in events.iter().enumerate() {
            log.insert((revision as u64, i as u32), encode_event(e).as_slice())
                .map_err(|e| self.err(e))?;
        }
        let mut meta = wtx.open_table(META).map_err(|e| self.err(e))?;
        meta.insert(META_REVISION, revision)
            .map_err(|e| self.err(e))?;
        let mut compacted = st.compacted;
        if revision - st.compacted > 2 * self.history {
            compacted = revision - self.history;
            log.retain_in(..(compacted as u64, 0), |_, _| false)
                .map_err(|e| self.err(e))?;
            meta.insert(META_COMPACTED, compacted)
                .map_err(|e| self.err(e))?;
        }
        Ok(compacted)
    }

    fn commit(&self, wtx: WriteTransaction) -> Result<()> {
        wtx.commit().map_err(|e| self.err(e))
    }

    fn publish(&self, events: Vec<Event>) {
        // No receiver is fine: nobody watches.
        let _ = self.events.send(Arc::new(events));
    }

    fn txn(&self, txn: &Txn) -> Result<TxnResult> {
        let mut seen = HashSet::new();
        for op in &txn.ops {
            if !seen.insert(op.key()) {
                return Err(StoreError::Rejected(format!(
                    "duplicate key {:?} in one transaction",
                    op.key()
                )));
            }
        }
        let mut st = self.lock();
        let wtx = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let kv = wtx.open_table(KV).map_err(|e| self.err(e))?;
            let mut current = Vec::new();
            let mut ok = true;
            for c in &txn.compares {
                let cur = match kv.get(c.key()).map_err(|e| self.err(e))? {
                    None => None,
                    Some(v) => Some(
                        decode_record(c.key(), v.value()).ok_or_else(|| self.corrupt("record"))?,
                    ),
                };
                ok &= c.holds(cur.as_ref());
                current.push(cur);
            }
            if !ok {
                return Ok(TxnResult {
                    succeeded: false,
                    revision: st.revision,
                    current,
                });
            }
        }
        for op in &txn.ops {
            if let Op::Put { lease: Some(l), .. } = op {
                if !st.leases.contains_key(&l.0) {
                    return Err(StoreError::LeaseNotFound(*l));
                }
            }
        }
        let revision = st.revision + 1;
        let events = self.write_ops(&wtx, revision, &txn.ops)?;
        if events.is_empty() {
            return Ok(TxnResult {
                succeeded: true,
                revision: st.revision,
                current: Vec::new(),
            });
        }
        let compacted = self.log_events(&wtx, &st, revision, &events)?;
        self.commit(wtx)?;
        st.revision = revision;
        st.compacted = compacted;
        self.publish(events);
        Ok(TxnResult {
            succeeded: true,
            revision,
            current: Vec::new(),
        })
    }

    fn grant(&self, ttl: Duration) -> Result<Lease> {
        let secs = ttl.as_secs().max(1) as i64;
        let mut st = self.lock();
        let wtx = self.db.begin_write().map_err(|e| self.err(e))?;
        let id = {
            let mut meta = wtx.open_table(META).map_err(|e| self.err(e))?;
            let id = meta
                .get(META_NEXT_LEASE)
                .map_err(|e| self.err(e))?
                .map_or(1, |v| v.value());
            meta.insert(META_NEXT_LEASE, id + 1)
                .map_err(|e| self.err(e))?;
            let mut leases = wtx.open_table(LEASES).map_err(|e| self.err(e))?;
            leases.insert(id, secs).map_err(|e| self.err(e))?;
            id
        };
        self.commit(wtx)?;
        let ttl = Duration::from_secs(secs as u64);
        st.leases.insert(
            id,
            LeaseClock {
                ttl,
                deadline: Instant::now() + ttl,
            },
        );
        Ok(Lease {
            id: LeaseId(id),
            ttl,
        })
    }

    fn keepalive(&self, lease: LeaseId) -> Result<()> {
        let mut st = self.lock();
        match st.leases.get_mut(&lease.0) {
            Some(c) => {
                c.deadline = Instant::now() + c.ttl;
                Ok(())
            }
            None => Err(StoreError::LeaseNotFound(lease)),
        }
    }

    /// Deletes the leases `ids` and their keys at one revision.
    fn end_leases(&self, ids: &[i64]) -> Result<()> {
        let mut st = self.lock();
        let ids: Vec<i64> = ids
            .iter()
            .copied()
            .filter(|i| st.leases.contains_key(i))
            .collect();
        if ids.is_empty() {
            return Ok(());
        }
        let wtx = self.db.begin_write().map_err(|e| self.err(e))?;
        let mut ops = Vec::new();
        {
            let index = wtx
                .open_multimap_table(LEASE_KEYS)
                .map_err(|e| self.err(e))?;
            for id in &ids {
                for k in index.get(*id).map_err(|e| self.err(e))? {
                    ops.push(Op::delete(k.map_err(|e| self.err(e))?.value()));
                }
            }
        }
        let revision = st.revision + 1;
        let events = self.write_ops(&wtx, revision, &ops)?;
        {
            let mut leases = wtx.open_table(LEASES).map_err(|e| self.err(e))?;
            let mut index = wtx
                .open_multimap_table(LEASE_KEYS)
                .map_err(|e| self.err(e))?;
            for id in &ids {
                leases.remove(*id).map_err(|e| self.err(e))?;
                index.remove_all(*id).map_err(|e| self.err(e))?;
            }
        }
        let compacted = if events.is_empty() {
            st.compacted
        } else {
            self.log_events(&wtx, &st, revision, &events)?
        };
        self.commit(wtx)?;
        for id in &ids {
            st.leases.remove(id);
        }
        if !events.is_empty() {
            st.revision = revision;
            st.compacted = compacted;
            self.publish(events);
        }
        Ok(())
    }

    fn expired(&self) -> Vec<i64> {
        let now = Instant::now();
        self.lock()
            .leases
            .iter()
            .filter(|(_, c)| c.deadline <= now)
            .map(|(id, _)| *id)
            .collect()
    }

    fn compact(&self, revision: Revision) -> Result<()> {
        let mut st = self.lock();
        if revision > st.revision {
            return Err(StoreError::Rejected(format!(
                "cannot compact to revision {revision}: the store is at {}",
                st.revision
            )));
        }
        if revision <= st.compacted {
            return Err(StoreError::Compacted {
                requested: revision,
                compacted: st.compacted,
            });
        }
        let wtx = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut log = wtx.open_table(LOG).map_err(|e| self.err(e))?;
            log.retain_in(..(revision as u64, 0), |_, _| false)
                .map_err(|e| self.err(e))?;
            let mut meta = wtx.open_table(META).map_err(|e| self.err(e))?;
            meta.insert(META_COMPACTED, revision)
                .map_err(|e| self.err(e))?;
        }
        self.commit(wtx)?;
        st.compacted = revision;
        Ok(())
    }
}

impl Embedded {
    /// Opens (creating when missing) the database at `path` and starts the lease clock. Must
    /// be called inside a tokio runtime. Fails when another process has it open.
    pub async fn open(path: &Path) -> Result<Embedded> {
        Self::open_with_history(path, DEFAULT_HISTORY).await
    }

    /// Like [`Embedded::open`], keeping `history` revisions for watches (tests use a short
    /// history to exercise compaction).
    pub async fn open_with_history(path: &Path, history: i64) -> Result<Embedded> {
        let p = path.to_path_buf();
        let inner = tokio::task::spawn_blocking(move || Self::open_blocking(p, history))
            .await
            .map_err(|e| StoreError::Database {
                path: path.display().to_string(),
                detail: e.to_string(),
            })??;
        let inner = Arc::new(inner);
        tokio::spawn(expire_leases(Arc::downgrade(&inner)));
        Ok(Embedded { inner })
    }

    fn open_blocking(path: PathBuf, history: i64) -> Result<Inner> {
        let err = |detail: String| StoreError::Database {
            path: path.display().to_string(),
            detail,
        };
        let db = Database::create(&path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => {
                err("already open by another process (another ferro-agent?)".to_string())
            }
            e => err(e.to_string()),
        })?;
        // Make every table exist, and read the state.
        let wtx = db.begin_write().map_err(|e| err(e.to_string()))?;
        let (revision, compacted, leases) = {
            wtx.open_table(KV).map_err(|e| err(e.to_string()))?;
            wtx.open_table(LOG).map_err(|e| err(e.to_string()))?;
            wtx.open_multimap_table(LEASE_KEYS)
                .map_err(|e| err(e.to_string()))?;
            let meta = wtx.open_table(META).map_err(|e| err(e.to_string()))?;
            let get = |k: &str| -> Result<Option<i64>> {
                Ok(meta
                    .get(k)
                    .map_err(|e| err(e.to_string()))?
                    .map(|v| v.value()))
            };
            let revision = get(META_REVISION)?.unwrap_or(1);
            let compacted = get(META_COMPACTED)?.unwrap_or(0);
            let table = wtx.open_table(LEASES).map_err(|e| err(e.to_string()))?;
            let now = Instant::now();
            let mut leases = HashMap::new();
            for item in table.iter().map_err(|e| err(e.to_string()))? {
                let (id, ttl) = item.map_err(|e| err(e.to_string()))?;
                let ttl = Duration::from_secs(ttl.value().max(1) as u64);
                leases.insert(
                    id.value(),
                    LeaseClock {
                        ttl,
                        deadline: now + ttl,
                    },
                );
            }
            (revision, compacted, leases)
        };
        wtx.commit().map_err(|e| err(e.to_string()))?;
        let (events, _) = broadcast::channel(1024);
        Ok(Inner {
            db,
            path,
            history: history.max(1),
            state: Mutex::new(State {
                revision,
                compacted,
                leases,
            }),
            events,
        })
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| self.inner.err(e))?
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }
}

/// Revokes leases whose deadline passed, until the store is dropped.
async fn expire_leases(inner: Weak<Inner>) {
    loop {
        tokio::time::sleep(EXPIRY_TICK).await;
        let Some(inner) = inner.upgrade() else { return };
        let expired = inner.expired();
        if expired.is_empty() {
            continue;
        }
        let res = tokio::task::spawn_blocking(move || {
            let r = inner.end_leases(&expired);
            (r, expired)
        })
        .await;
        match res {
            Ok((Ok(()), ids)) => {
                for id in ids {
                    log::debug!("lease {} expired", LeaseId(id));
                }
            }
            Ok((Err(e), _)) => log::warn!("expiring leases: {e}"),
            Err(e) => log::warn!("expiring leases: {e}"),
        }
    }
}

impl Store for Embedded {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let key = key.to_string();
        self.blocking(move |i| i.get(&key)).await
    }

    async fn list(&self, prefix: &str) -> Result<Listing> {
        let prefix = prefix.to_string();
        self.blocking(move |i| i.list(&prefix)).await
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResult> {
        self.blocking(move |i| i.txn(&txn)).await
    }

    async fn grant(&self, ttl: Duration) -> Result<Lease> {
        self.blocking(move |i| i.grant(ttl)).await
    }

    async fn keepalive(&self, lease: LeaseId) -> Result<()> {
        self.inner.keepalive(lease)
    }

    async fn revoke(&self, lease: LeaseId) -> Result<()> {
        self.blocking(move |i| i.end_leases(&[lease.0])).await
    }

    async fn watch(&self, prefix: &str, from: Revision) -> Result<Watch> {
        // Subscribe first, then read where the log stands: nothing committed in between is
        // missed (it is in the log, the broadcast, or both; duplicates are skipped by
        // revision).
        let live = self.inner.events.subscribe();
        let start = if from > 0 {
            from
        } else {
            self.inner.lock().revision + 1
        };
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        let task = tokio::spawn(follow(
            Arc::downgrade(&self.inner),
            prefix.to_string(),
            start,
            live,
            tx,
        ));
        Ok(Watch::new(rx, task))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        self.blocking(move |i| i.compact(revision)).await
    }
}

/// Sends `events` (already filtered) grouped as they come; `false` when the watch is gone.
async fn deliver(tx: &mpsc::Sender<Result<Vec<Event>>>, events: Vec<Event>) -> bool {
    events.is_empty() || tx.send(Ok(events)).await.is_ok()
}

/// A watch's task: replays the log from `next`, then follows the live batches; replays again
/// whenever it lagged behind the broadcast.
async fn follow(
    inner: Weak<Inner>,
    prefix: String,
    mut next: Revision,
    mut live: broadcast::Receiver<Arc<Vec<Event>>>,
    tx: mpsc::Sender<Result<Vec<Event>>>,
) {
    loop {
        // Replay.
        let Some(strong) = inner.upgrade() else {
            return;
        };
        let p = prefix.clone();
        let replay = tokio::task::spawn_blocking(move || strong.history(&p, next)).await;
        let (events, compacted) = match replay {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
            Err(_) => return,
        };
        if next < compacted {
            let _ = tx
                .send(Err(StoreError::Compacted {
                    requested: next,
                    compacted,
                }))
                .await;
            return;
        }
        if let Some(last) = events.last() {
            next = last.revision() + 1;
        }
        if !deliver(&tx, events).await {
            return;
        }
        // Follow.
        loop {
            match live.recv().await {
                Ok(batch) => {
                    let events: Vec<Event> = batch
                        .iter()
                        .filter(|e| e.revision() >= next && e.kv.key.starts_with(&prefix))
                        .cloned()
                        .collect();
                    if let Some(r) = batch.first().map(Event::revision) {
                        next = next.max(r + 1);
                    }
                    if !deliver(&tx, events).await {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => break,
                Err(broadcast::error::RecvError::Closed) => {
                    let _ = tx.send(Err(StoreError::Closed)).await;
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
