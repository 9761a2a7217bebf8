//! The agent's one view of the cluster: every resource under the store's root, followed by a
//! single watch and shared by every loop (membership, policy, services...), so each resource
//! kind is read from the store once per agent, not once per feature.
//!
//! [`follow`] lists the root, publishes a [`Snapshot`], then applies each batch of watched
//! changes and publishes the next one. A loop holds a [`Cache`] (a `tokio::sync::watch`
//! receiver of snapshots): it waits for a newer snapshot, computes its desired state from it
//! (a pure function) and applies the difference. Snapshots are cheap to publish and to hold:
//! objects are shared (`Arc`), and so is each kind's map until one of its objects changes
//! (a change copies that kind's map spine only). Each kind has a
//! generation number that moves when an object of that kind changes, so a loop can tell which
//! kinds changed since the snapshot it last handled even when it skipped snapshots in between.
//!
//! Pods are kept as [`PodView`]s (identity, labels, container ports: all a node reads of a
//! pod), not as decoded `Object`s, which would cost several kilobytes each; see
//! [`Snapshot::pods`].
//!
//! When the watch's history was compacted the cache lists again (a relist, counted in
//! [`Snapshot::relists`]) instead of missing changes; when the store is unreachable it keeps
//! the last snapshot and retries with a bounded back-off.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ferro_cluster::{keys, Kind, NodeLease, Object, PodView, ALL_KINDS};
use ferro_services::announce::{self, Announcement};
use ferro_store::{Event, EventKind, KeyValue, Revision, Store, StoreError};
use tokio::sync::watch;

/// Back-off bounds while the store cannot be read.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// A load-balancer address's announcement record and its revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnouncementRecord {
    /// Who announces it.
    pub announcement: Announcement,
    /// The record's modification revision (for compares).
    pub revision: Revision,
}

/// Every resource as of one store revision.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    revision: Revision,
    /// Per kind (all but `Pod`), shared with the snapshots before it until an object of
    /// that kind changes.
    objects: BTreeMap<Kind, Arc<BTreeMap<String, Arc<Object>>>>,
    /// The pods, the same way.
    pods: Arc<BTreeMap<String, Arc<PodView>>>,
    leases: BTreeMap<String, Arc<NodeLease>>,
    announcements: BTreeMap<std::net::IpAddr, Arc<AnnouncementRecord>>,
    generations: BTreeMap<Kind, u64>,
    lease_generation: u64,
    announcement_generation: u64,
    relists: u64,
}

impl Snapshot {
    /// The store revision this snapshot reflects (0 before the first listing).
    pub fn revision(&self) -> Revision {
        self.revision
    }

    /// How many times the cache had to list everything again (compacted history).
    pub fn relists(&self) -> u64 {
        self.relists
    }

    /// Every object of `kind`, in key order (for namespaced kinds: by namespace, then name).
    /// Pods are not held as objects: see [`Snapshot::pods`].
    pub fn all(&self, kind: Kind) -> impl Iterator<Item = &Arc<Object>> {
        self.kind(kind).values()
    }

    /// The objects of `kind` by store key (empty when there are none). Pods are read with
    /// [`Snapshot::pods`] and its siblings.
    fn kind(&self, kind: Kind) -> &BTreeMap<String, Arc<Object>> {
        debug_assert!(kind != Kind::Pod, "pods are read with Snapshot::pods");
        static EMPTY: BTreeMap<String, Arc<Object>> = BTreeMap::new();
        self.objects.get(&kind).map_or(&EMPTY, |m| &**m)
    }

    /// Every pod, in key order (by namespace, then name).
    pub fn pods(&self) -> impl Iterator<Item = &Arc<PodView>> {
        self.pods.values()
    }

    /// Every pod with its store key, in key order.
    pub fn pods_keyed(&self) -> impl Iterator<Item = (&str, &Arc<PodView>)> {
        self.pods.iter().map(|(k, p)| (k.as_str(), p))
    }

    /// One pod.
    pub fn pod(&self, namespace: &str, name: &str) -> Option<&Arc<PodView>> {
        self.pods
            .get(&keys::object(Kind::Pod, Some(namespace), name))
    }

    /// The pods that differ between `before` and this snapshot, as
    /// [`Snapshot::changes_since`] does for objects.
    pub fn pod_changes_since<'a>(
        &'a self,
        before: &'a Snapshot,
    ) -> Vec<(&'a str, Option<&'a Arc<PodView>>)> {
        if self.generation(Kind::Pod) == before.generation(Kind::Pod) {
            return Vec::new();
        }
        changed_entries(&before.pods, &self.pods)
    }

    /// One object.
    pub fn get(&self, kind: Kind, namespace: Option<&str>, name: &str) -> Option<&Arc<Object>> {
        self.kind(kind).get(&keys::object(kind, namespace, name))
    }

    /// The object of `kind` stored at `key`.
    pub fn get_key(&self, kind: Kind, key: &str) -> Option<&Arc<Object>> {
        self.kind(kind).get(key)
    }

    /// The objects of `kind` that differ between `before` and this snapshot, by store key,
    /// each with its object now (`None`: removed). Unchanged objects are the same `Arc` in
    /// both (a snapshot shares what it did not change), so this walks the two maps once and
    /// compares pointers; a kind whose generation did not move is skipped outright.
    pub fn changes_since<'a>(
        &'a self,
        before: &'a Snapshot,
        kind: Kind,
    ) -> Vec<(&'a str, Option<&'a Arc<Object>>)> {
        if self.generation(kind) == before.generation(kind) {
            return Vec::new();
        }
        changed_entries(before.kind(kind), self.kind(kind))
    }

    /// Every object of `kind` with its store key, in key order.
    pub fn all_keyed(&self, kind: Kind) -> impl Iterator<Item = (&str, &Arc<Object>)> {
        self.kind(kind).iter().map(|(k, o)| (k.as_str(), o))
    }

    /// The lease record of node `name`, when its agent holds a live lease.
    pub fn node_lease(&self, name: &str) -> Option<&Arc<NodeLease>> {
        self.leases.get(name)
    }

    /// The nodes whose agents hold a live lease.
    pub fn live_nodes(&self) -> impl Iterator<Item = &str> {
        self.leases.keys().map(String::as_str)
    }

    /// The announcement record of load-balancer address `ip`.
    pub fn announcement(&self, ip: std::net::IpAddr) -> Option<&Arc<AnnouncementRecord>> {
        self.announcements.get(&ip)
    }

    /// Every announcement record, by address.
    pub fn announcements(
        &self,
    ) -> impl Iterator<Item = (&std::net::IpAddr, &Arc<AnnouncementRecord>)> {
        self.announcements.iter()
    }

    /// The generation of `kind`: it changes whenever an object of that kind does.
    pub fn generation(&self, kind: Kind) -> u64 {
        self.generations.get(&kind).copied().unwrap_or(0)
    }

    /// The generation of the node lease records.
    pub fn lease_generation(&self) -> u64 {
        self.lease_generation
    }

    /// A stamp of what a loop reads: the generations of `kinds`, of the lease records and
    /// of the load-balancer announcements. Two snapshots with equal stamps hold the same
    /// such inputs, so a loop can skip recomputing them.
    pub fn stamp(&self, kinds: &[Kind]) -> Vec<u64> {
        kinds
            .iter()
            .map(|k| self.generation(*k))
            .chain([self.lease_generation, self.announcement_generation])
            .collect()
    }

    /// Applies one change; `false` when the key is not one the cache keeps (or a delete of
    /// what is not there).
    fn apply(&mut self, ev: &Event) -> bool {
        let changed = match ev.kind {
            EventKind::Put => self.insert(&ev.kv),
            EventKind::Delete => self.remove(&ev.kv.key),
        };
        match changed {
            Some(Changed::Kind(k)) => *self.generations.entry(k).or_default() += 1,
            Some(Changed::Leases) => self.lease_generation += 1,
            Some(Changed::Announcements) => self.announcement_generation += 1,
            None => {}
        }
        self.revision = self.revision.max(ev.revision());
        changed.is_some()
    }

    fn insert(&mut self, kv: &KeyValue) -> Option<Changed> {
        match classify(&kv.key)? {
            Entry::Announcement(ip) => match serde_json::from_slice::<Announcement>(&kv.value) {
                Ok(a) => {
                    self.announcements.insert(
                        ip,
                        Arc::new(AnnouncementRecord {
                            announcement: a,
                            revision: kv.mod_revision,
                        }),
                    );
                    Some(Changed::Announcements)
                }
                Err(e) => {
                    log::warn!("cache: ignoring {}: {e}", kv.key);
                    None
                }
            },
            Entry::Lease(node) => match serde_json::from_slice::<NodeLease>(&kv.value) {
                Ok(l) => {
                    self.leases.insert(node.to_string(), Arc::new(l));
                    Some(Changed::Leases)
                }
                Err(e) => {
                    log::warn!("cache: ignoring {}: {e}", kv.key);
                    None
                }
            },
            Entry::Object(kind) => {
                let decoded = serde_json::from_slice(&kv.value)
                    .map_err(|e| e.to_string())
                    .and_then(|v| Object::from_value(kind, v).map_err(|e| e.to_string()));
                match decoded {
                    Ok(Object::Pod(p)) => {
                        Arc::make_mut(&mut self.pods)
                            .insert(kv.key.clone(), Arc::new(PodView::from(*p)));
                        Some(Changed::Kind(kind))
                    }
                    Ok(o) => {
                        Arc::make_mut(self.objects.entry(kind).or_default())
                            .insert(kv.key.clone(), Arc::new(o));
                        Some(Changed::Kind(kind))
                    }
                    Err(e) => {
                        log::warn!("cache: ignoring {}: {e}", kv.key);
                        None
                    }
                }
            }
        }
    }

    fn remove(&mut self, key: &str) -> Option<Changed> {
        match classify(key)? {
            Entry::Announcement(ip) => self
                .announcements
                .remove(&ip)
                .map(|_| Changed::Announcements),
            Entry::Lease(node) => self.leases.remove(node).map(|_| Changed::Leases),
            Entry::Object(Kind::Pod) => {
                if !self.pods.contains_key(key) {
                    return None;
                }
                Arc::make_mut(&mut self.pods)
                    .remove(key)
                    .map(|_| Changed::Kind(Kind::Pod))
            }
            Entry::Object(kind) => {
                let m = self.objects.get_mut(&kind)?;
                if !m.contains_key(key) {
                    return None;
                }
                Arc::make_mut(m).remove(key).map(|_| Changed::Kind(kind))
            }
        }
    }

    /// A fresh snapshot from a full listing; every generation moves one step past `self`'s,
    /// so a loop that handled an older snapshot sees every kind as changed.
    fn relisted(&self, kvs: &[KeyValue], revision: Revision) -> Snapshot {
        let mut s = Snapshot {
            revision,
            relists: self.relists + u64::from(self.revision != 0),
            lease_generation: self.lease_generation + 1,
            announcement_generation: self.announcement_generation + 1,
            generations: ALL_KINDS
                .iter()
                .map(|k| (*k, self.generation(*k) + 1))
                .collect(),
            ..Snapshot::default()
        };
        for kv in kvs {
            s.insert(kv);
        }
        s
    }
}

/// The entries that differ between two maps whose unchanged values are shared (the same
/// `Arc`), by key, each with its value in `new` (`None`: removed): one walk of both maps,
/// comparing pointers.
fn changed_entries<'a, T>(
    old: &'a BTreeMap<String, Arc<T>>,
    new: &'a BTreeMap<String, Arc<T>>,
) -> Vec<(&'a str, Option<&'a Arc<T>>)> {
    if std::ptr::eq(old, new) {
        return Vec::new();
    }
    let mut out = Vec::new();
    let (mut o, mut n) = (old.iter().peekable(), new.iter().peekable());
    loop {
        match (o.peek(), n.peek()) {
            (None, None) => break,
            (Some((ko, _)), None) => {
                out.push((ko.as_str(), None));
                o.next();
            }
            (None, Some((kn, vn))) => {
                out.push((kn.as_str(), Some(*vn)));
                n.next();
            }
            (Some((ko, vo)), Some((kn, vn))) => match ko.cmp(kn) {
                std::cmp::Ordering::Less => {
                    out.push((ko.as_str(), None));
                    o.next();
                }
                std::cmp::Ordering::Greater => {
                    out.push((kn.as_str(), Some(*vn)));
                    n.next();
                }
                std::cmp::Ordering::Equal => {
                    if !Arc::ptr_eq(vo, vn) {
                        out.push((kn.as_str(), Some(*vn)));
                    }
                    o.next();
                    n.next();
                }
            },
        }
    }
    out
}

/// What one change touched.
enum Changed {
    Kind(Kind),
    Leases,
    Announcements,
}

enum Entry<'a> {
    Object(Kind),
    Lease(&'a str),
    Announcement(std::net::IpAddr),
}

/// What a key under the root holds.
fn classify(key: &str) -> Option<Entry<'_>> {
    if let Some(node) = key.strip_prefix(keys::NODE_LEASES) {
        return Some(Entry::Lease(node));
    }
    if key.starts_with(announce::ANNOUNCERS) {
        return announce::address_of(key).map(Entry::Announcement);
    }
    keys::kind_of(key).map(Entry::Object)
}

/// A loop's handle on the cache: the latest snapshot, and a way to wait for a newer one.
#[derive(Debug, Clone)]
pub struct Cache {
    rx: watch::Receiver<Arc<Snapshot>>,
}

impl Cache {
    /// The latest snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.rx.borrow().clone()
    }

    /// Waits until a snapshot newer than the last one this handle returned exists, and
    /// returns it; `None` when the cache has stopped.
    pub async fn changed(&mut self) -> Option<Arc<Snapshot>> {
        self.rx.changed().await.ok()?;
        Some(self.rx.borrow_and_update().clone())
    }

    /// Waits for the first listing; `None` when the cache stopped before it.
    pub async fn ready(&mut self) -> Option<Arc<Snapshot>> {
        let s = self.rx.wait_for(|s| s.revision() != 0).await.ok()?.clone();
        Some(s)
    }

    /// A cache that holds `snapshot` and never changes (tests of loops).
    pub fn fixed(snapshot: Snapshot) -> (Cache, watch::Sender<Arc<Snapshot>>) {
        let (tx, rx) = watch::channel(Arc::new(snapshot));
        (Cache { rx }, tx)
    }
}

/// Builds a snapshot from `(key, JSON)` pairs (tests of loops and of the pure stages).
pub fn snapshot_of<'a>(entries: impl IntoIterator<Item = (&'a str, &'a str)>) -> Snapshot {
    let kvs: Vec<KeyValue> = entries
        .into_iter()
        .enumerate()
        .map(|(i, (k, v))| KeyValue {
            key: k.to_string(),
            value: v.as_bytes().to_vec(),
            create_revision: i as Revision + 1,
            mod_revision: i as Revision + 1,
            version: 1,
            lease: None,
        })
        .collect();
    let rev = kvs.len() as Revision;
    Snapshot::default().relisted(&kvs, rev.max(1))
}

/// The snapshot after `s` when the store puts (`Some(JSON)`) or deletes (`None`) the given
/// keys, as the cache makes it from a watch: unchanged objects stay shared (tests of loops
/// that follow changes).
pub fn snapshot_after<'a>(
    s: &Snapshot,
    changes: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
) -> Snapshot {
    let mut next = s.clone();
    for (rev, (k, v)) in (s.revision + 1..).zip(changes) {
        let kv = KeyValue {
            key: k.to_string(),
            value: v.unwrap_or_default().as_bytes().to_vec(),
            create_revision: rev,
            mod_revision: rev,
            version: 1,
            lease: None,
        };
        let kind = if v.is_some() {
            EventKind::Put
        } else {
            EventKind::Delete
        };
        next.apply(&Event { kind, kv });
    }
    next
}

/// Starts following the store: the returned [`Cache`] sees the first snapshot once the root
/// has been listed (see [`Cache::ready`]). The task runs until the runtime stops or every
/// [`Cache`] is dropped.
pub fn follow<S>(store: S) -> (Cache, tokio::task::JoinHandle<()>)
where
    S: Store + Clone + 'static,
{
    let (tx, rx) = watch::channel(Arc::new(Snapshot::default()));
    let task = tokio::spawn(async move { run(store, tx).await });
    (Cache { rx }, task)
}

async fn run<S: Store>(store: S, tx: watch::Sender<Arc<Snapshot>>) {
    let mut backoff = BACKOFF_MIN;
    let mut current = tx.borrow().clone();
    loop {
        if tx.is_closed() {
            return;
        }
        // (Re)list: the first time, after a compaction, and after an error we could not
        // resume from.
        let listing = match store.list(keys::ROOT).await {
            Ok(l) => l,
            Err(e) => {
                log::warn!("cache: listing the store: {e}; retrying in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        let revision = listing.revision;
        let next = current.relisted(&listing.kvs, revision.max(1));
        // The listing's raw values (several megabytes at scale) are not kept past decoding.
        drop(listing);
        if current.revision() != 0 {
            log::info!("cache: listed the store again at revision {revision}");
        }
        current = Arc::new(next);
        tx.send_replace(current.clone());
        backoff = BACKOFF_MIN;
        let mut from = revision + 1;
        // Follow until the watch cannot go on.
        loop {
            let mut w = match store.watch(keys::ROOT, from).await {
                Ok(w) => w,
                Err(StoreError::Compacted { .. }) => break,
                Err(e) => {
                    log::warn!("cache: watching the store: {e}; retrying in {backoff:?}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
            };
            let ended = loop {
                match w.next().await {
                    Ok(events) => {
                        backoff = BACKOFF_MIN;
                        let mut next = (*current).clone();
                        let mut any = false;
                        for ev in &events {
                            any |= next.apply(ev);
                            from = from.max(ev.revision() + 1);
                        }
                        if any || next.revision() != current.revision() {
                            current = Arc::new(next);
                            if tx.send(current.clone()).is_err() {
                                return;
                            }
                        }
                    }
                    Err(e) => break e,
                }
            };
            match ended {
                StoreError::Compacted { .. } => break,
                StoreError::Closed => return,
                e => {
                    log::warn!("cache: watch ended: {e}; resuming from revision {from}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferro_store::Embedded;

    fn pod(ns: &str, name: &str, app: &str) -> String {
        format!(
            r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{name}","namespace":"{ns}","labels":{{"app":"{app}"}}}}}}"#
        )
    }

    #[test]
    fn snapshots_index_objects_by_kind_and_namespace() {
        let a = pod("x", "a", "web");
        let b = pod("y", "b", "db");
        let s = snapshot_of([
            ("/ferro-cni/v1/pods/x/a", a.as_str()),
            ("/ferro-cni/v1/pods/y/b", b.as_str()),
            (
                "/ferro-cni/v1/nodeleases/n1",
                r#"{"node":"n1","lease":"1f","ttlSeconds":10,"since":"2026-01-01T00:00:00Z"}"#,
            ),
            ("/ferro-cni/v1/unknownthings/z", "{}"),
        ]);
        let pods: Vec<_> = s
            .pods()
            .map(|p| {
                (
                    p.namespace.as_str(),
                    p.name.as_str(),
                    p.labels["app"].as_str(),
                )
            })
            .collect();
        assert_eq!(pods, [("x", "a", "web"), ("y", "b", "db")]);
        assert!(s.pod("y", "b").is_some());
        assert!(s.pod("x", "b").is_none());
        assert_eq!(s.all(Kind::Namespace).count(), 0);
        assert_eq!(s.live_nodes().collect::<Vec<_>>(), ["n1"]);
        assert_eq!(s.all(Kind::Service).count(), 0);
    }

    #[test]
    fn a_stamp_moves_with_its_kinds_and_the_lease_records_only() {
        let mut s = snapshot_of([]);
        let kinds = [Kind::Pod, Kind::Attachment];
        let put = |key: &str, value: Vec<u8>, rev: i64| Event {
            kind: EventKind::Put,
            kv: KeyValue {
                key: key.into(),
                value,
                create_revision: rev,
                mod_revision: rev,
                version: 1,
                lease: None,
            },
        };
        let before = s.stamp(&kinds);
        let svc =
            br#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"s","namespace":"x"}}"#;
        assert!(s.apply(&put("/ferro-cni/v1/services/x/s", svc.to_vec(), 5)));
        assert_eq!(s.stamp(&kinds), before, "a Service is not read");
        assert!(s.apply(&put(
            "/ferro-cni/v1/pods/x/a",
            pod("x", "a", "web").into_bytes(),
            6
        )));
        let after_pod = s.stamp(&kinds);
        assert_ne!(after_pod, before);
        let lease = br#"{"node":"n1","lease":"1","ttlSeconds":10,"since":"2026-01-01T00:00:00Z"}"#;
        assert!(s.apply(&put(&keys::node_lease("n1"), lease.to_vec(), 7)));
        assert_ne!(
            s.stamp(&kinds),
            after_pod,
            "the lease records are always read"
        );
    }

    #[test]
    fn generations_move_only_for_the_kind_that_changed() {
        let mut s = snapshot_of([]);
        let pods = s.generation(Kind::Pod);
        let svcs = s.generation(Kind::Service);
        let p = pod("x", "a", "web");
        let ev = Event {
            kind: EventKind::Put,
            kv: KeyValue {
                key: "/ferro-cni/v1/pods/x/a".into(),
                value: p.into_bytes(),
                create_revision: 7,
                mod_revision: 7,
                version: 1,
                lease: None,
            },
        };
        assert!(s.apply(&ev));
        assert_eq!(s.revision(), 7);
        assert_ne!(s.generation(Kind::Pod), pods);
        assert_eq!(s.generation(Kind::Service), svcs);
        let del = Event {
            kind: EventKind::Delete,
            kv: KeyValue {
                key: "/ferro-cni/v1/pods/x/a".into(),
                mod_revision: 8,
                ..ev.kv.clone()
            },
        };
        let before = s.generation(Kind::Pod);
        assert!(s.apply(&del));
        assert_ne!(s.generation(Kind::Pod), before);
        assert_eq!(s.pods().count(), 0);
        // deleting what is not there changes nothing
        let before = s.generation(Kind::Pod);
        assert!(!s.apply(&del));
        assert_eq!(s.generation(Kind::Pod), before);
    }

    #[test]
    fn a_relist_moves_every_generation_past_the_old_snapshot() {
        let old = snapshot_of([]);
        let p = pod("x", "a", "web");
        let kv = KeyValue {
            key: "/ferro-cni/v1/pods/x/a".into(),
            value: p.into_bytes(),
            create_revision: 3,
            mod_revision: 3,
            version: 1,
            lease: None,
        };
        let new = old.relisted(&[kv], 40);
        assert_eq!(new.revision(), 40);
        assert_eq!(new.relists(), 1);
        for k in ALL_KINDS {
            assert!(new.generation(k) > old.generation(k), "{k:?}");
        }
        assert_eq!(new.pods().count(), 1);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn follows_the_store_from_listing_to_watch() {
        let dir = tempfile::tempdir().unwrap();
        let store = Embedded::open(&dir.path().join("s.redb")).await.unwrap();
        store
            .put("/ferro-cni/v1/pods/x/a", pod("x", "a", "web").into_bytes())
            .await
            .unwrap();
        let (mut cache, task) = follow(store.clone());
        let first = cache.ready().await.unwrap();
        assert_eq!(first.pods().count(), 1);
        store
            .put("/ferro-cni/v1/pods/x/b", pod("x", "b", "db").into_bytes())
            .await
            .unwrap();
        let next = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                let s = cache.changed().await.unwrap();
                if s.pods().count() == 2 {
                    return s;
                }
            }
        })
        .await
        .expect("the cache follows the store");
        assert!(next.revision() > first.revision());
        task.abort();
    }
}
