//! The IPAM loops, each an idempotent pass over (the node's state, the store), with a metric
//! per pass and a bounded back-off:
//!
//! - `sync` (woken by every change, at least every second): writes the store's copy of each
//!   block whose copy is behind (batched: changes made while a pass runs go in the next),
//!   claims back a held block the store lost, marks lost a block the store gives to another
//!   node, keeps the Node's `spec.podCIDRs` equal to its node-mode blocks, and every five
//!   seconds reads the ClusterNetwork (which also tells whether the store answers; after an
//!   outage longer than the lease TTL the node's blocks are checked again first);
//! - `maintain` (every quarter of the shortest grace period, between 1 and 30 s): releases
//!   leaked addresses, drops lost blocks once empty, gives back blocks that stayed empty,
//!   and returns to the pool the blocks of nodes whose lease has been gone for the node
//!   grace period.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferro_agent_api::ipam::{IpamHandle, IpamMode, IpamRelease};
use ferro_cluster::resource::{Attachment, Node};
use ferro_cluster::{keys, Kind};
use ferro_store::{Compare, Op, Store, StoreError, Txn};
use ipnet::IpNet;

use super::claim::{self, Recreated, Written};
use super::leak::{self, Facts};
use super::state::{Record, Status};
use super::stored;
use super::Ipam;

const HEARTBEAT: Duration = Duration::from_secs(5);
const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

fn exists(p: &str) -> bool {
    Path::new(p).exists()
}

/// One block's copy to write, taken under the lock.
struct Pending {
    cidr: IpNet,
    value: Vec<u8>,
    rev: i64,
    changes: u64,
    pool: Option<super::pool::Pool>,
}

impl<S: Store + Clone + 'static> Ipam<S> {
    /// Runs the loops until the task is dropped.
    pub async fn run(self: Arc<Self>) {
        tokio::join!(self.clone().sync_loop(), self.maintain_loop());
    }

    async fn sync_loop(self: Arc<Self>) {
        let mut backoff = BACKOFF_MIN;
        let mut failing = false;
        loop {
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            // Let a burst of changes gather into one pass.
            tokio::time::sleep(Duration::from_millis(50)).await;
            let t0 = Instant::now();
            let r = self.sync_once().await;
            let secs = t0.elapsed().as_secs_f64();
            match r {
                Ok(()) => {
                    self.metrics.ipam.loop_pass("sync", "ok", secs);
                    if failing {
                        log::info!("ipam: the store answers again; block copies are up to date");
                    }
                    failing = false;
                    backoff = BACKOFF_MIN;
                }
                Err(e) => {
                    self.metrics.ipam.loop_pass("sync", "error", secs);
                    if !failing {
                        log::warn!("ipam: sync: {e}; retrying (addresses are still handed out from the blocks held)");
                    }
                    failing = true;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
            self.update_gauges();
        }
    }

    /// One pass of the sync loop.
    pub(super) async fn sync_once(&self) -> Result<(), StoreError> {
        let away = self.since_contact();
        if away >= HEARTBEAT {
            match self.refresh_pools().await {
                Ok(_) => {}
                Err(e) if e.code == ferro_agent_api::ErrorCode::Unavailable => {
                    return Err(StoreError::Unavailable { detail: e.message })
                }
                Err(e) => log::debug!("ipam: {e}"),
            }
            if away > self.lease_ttl {
                self.verify_blocks().await?;
            }
        }
        let pending: Vec<Pending> = {
            let mut g = self.lock();
            let seq = g.state.seq;
            let pools = g.state.pools.clone();
            let created = g.created.clone();
            let mut out = Vec::new();
            for h in g.state.blocks.values_mut() {
                if !h.dirty() {
                    continue;
                }
                if h.status == Status::Lost {
                    // Not this node's copy to write any more.
                    h.synced = h.changes;
                    continue;
                }
                out.push(Pending {
                    cidr: h.block.cidr,
                    value: stored::encode(
                        &h.block,
                        &self.node,
                        seq,
                        created.get(&h.block.cidr).cloned(),
                    ),
                    rev: h.rev,
                    changes: h.changes,
                    pool: pools
                        .iter()
                        .find(|p| p.cidr.contains(&h.block.cidr.network()))
                        .copied(),
                });
            }
            out
        };
        for p in pending {
            if p.rev == 0 {
                self.claim_back(&p).await?;
                continue;
            }
            let w = claim::write_block(&self.store, &self.node, &p.cidr, p.rev, p.value).await?;
            self.contact_ok();
            let mut g = self.lock();
            let Some(h) = g.state.blocks.get_mut(&p.cidr) else {
                continue;
            };
            match w {
                Written::Ok(rev) => {
                    h.rev = rev;
                    h.synced = p.changes;
                }
                Written::Moved(rev) => {
                    h.rev = rev;
                    drop(g);
                    self.wake.notify_one();
                }
                Written::Vanished => {
                    h.rev = 0;
                    drop(g);
                    self.wake.notify_one();
                }
                Written::Taken(other) => {
                    h.status = Status::Lost;
                    let used = h.block.used();
                    drop(g);
                    log::error!(
                        "ipam: block {} now belongs to node {other} in the store; this node stops using it ({used} addresses still held here)",
                        p.cidr
                    );
                    self.metrics.ipam.block_released("lost");
                }
            }
        }
        self.sync_node_cidrs().await?;
        // (the store's answers above count as contact; a pass with nothing to write does not)
        Ok(())
    }

    /// A held block the store lacks: claimed back unless another block took its place.
    async fn claim_back(&self, p: &Pending) -> Result<(), StoreError> {
        let Some(pool) = p.pool else {
            // Outside the pools now: nothing to claim back; it goes when empty.
            let mut g = self.lock();
            if let Some(h) = g.state.blocks.get_mut(&p.cidr) {
                h.status = Status::Lost;
            }
            return Ok(());
        };
        let r = claim::recreate(&self.store, &self.node, &pool, &p.cidr, p.value.clone()).await?;
        self.contact_ok();
        let mut g = self.lock();
        let Some(h) = g.state.blocks.get_mut(&p.cidr) else {
            return Ok(());
        };
        match r {
            Recreated::Created(rev) => {
                h.rev = rev;
                h.synced = p.changes;
                log::warn!(
                    "ipam: block {} was missing from the store; claimed it back",
                    p.cidr
                );
            }
            Recreated::Mine(rev) => h.rev = rev,
            Recreated::Retry => {}
            Recreated::Taken(other, node) => {
                h.status = Status::Lost;
                let used = h.block.used();
                drop(g);
                log::error!(
                    "ipam: block {} is gone from the store and {other} of node {node} took its place; this node stops using it ({used} addresses still held here)",
                    p.cidr
                );
                self.metrics.ipam.block_released("lost");
            }
        }
        Ok(())
    }

    /// After an outage: each held block's key, read again (a block taken meanwhile is
    /// lost; one that vanished is claimed back by the next pass).
    async fn verify_blocks(&self) -> Result<(), StoreError> {
        let held: Vec<IpNet> = self
            .lock()
            .state
            .blocks
            .iter()
            .filter(|(_, h)| h.status != Status::Lost)
            .map(|(c, _)| *c)
            .collect();
        for cidr in held {
            let kv = self.store.get(&stored::block_key(&cidr)).await?;
            self.contact_ok();
            let mut g = self.lock();
            let Some(h) = g.state.blocks.get_mut(&cidr) else {
                continue;
            };
            match kv.as_ref().and_then(stored::decode) {
                None => h.rev = 0,
                Some(b) if b.node == self.node => {
                    if b.rev != h.rev {
                        h.rev = b.rev;
                        h.changes += 1; // write our copy over whatever is there
                    }
                }
                Some(b) => {
                    h.status = Status::Lost;
                    log::error!(
                        "ipam: block {cidr} was given to node {} while this node could not reach the store; this node stops using it",
                        b.node
                    );
                }
            }
        }
        Ok(())
    }

    /// Keeps the Node's `spec.podCIDRs` equal to its node-mode blocks (kubenet).
    async fn sync_node_cidrs(&self) -> Result<(), StoreError> {
        let want: Vec<String> = {
            let g = self.lock();
            let mut v: Vec<IpNet> = g
                .state
                .blocks
                .values()
                .filter(|h| h.block.mode == IpamMode::Node && h.status == Status::Active)
                .map(|h| h.block.cidr)
                .collect();
            v.sort_by_key(|c| (c.addr().is_ipv6(), *c));
            v.iter().map(ToString::to_string).collect()
        };
        if want.is_empty() {
            return Ok(());
        }
        let key = keys::object(Kind::Node, None, &self.node);
        for _ in 0..3 {
            let Some(kv) = self.store.get(&key).await? else {
                return Ok(());
            };
            self.contact_ok();
            let Ok(mut node) = serde_json::from_slice::<Node>(&kv.value) else {
                return Ok(());
            };
            if node.spec.pod_cidrs.as_ref() == Some(&want) {
                return Ok(());
            }
            node.spec.pod_cidrs = Some(want.clone());
            let value = serde_json::to_vec(&node).unwrap_or_default();
            let r = self
                .store
                .txn(
                    Txn::new()
                        .when(Compare::unchanged(&key, kv.mod_revision))
                        .then(Op::put(&key, value)),
                )
                .await?;
            if r.succeeded {
                log::info!("ipam: node {} podCIDRs {}", self.node, want.join(", "));
                return Ok(());
            }
        }
        Ok(())
    }

    async fn maintain_loop(self: Arc<Self>) {
        let shortest = self
            .cfg
            .leak_grace
            .min(self.cfg.empty_block_grace)
            .min(self.cfg.node_grace);
        let tick = (shortest / 4).clamp(Duration::from_secs(1), Duration::from_secs(30));
        let mut failing = false;
        loop {
            tokio::time::sleep(tick).await;
            let t0 = Instant::now();
            let r = self.maintain_once().await;
            let secs = t0.elapsed().as_secs_f64();
            match r {
                Ok(()) => {
                    self.metrics.ipam.loop_pass("maintain", "ok", secs);
                    failing = false;
                }
                Err(e) => {
                    self.metrics.ipam.loop_pass("maintain", "error", secs);
                    if !failing {
                        log::warn!("ipam: maintain: {e}; retrying");
                    }
                    failing = true;
                }
            }
            self.update_gauges();
        }
    }

    /// One pass of the maintain loop: every step runs; the first store error is returned.
    pub(super) async fn maintain_once(&self) -> Result<(), StoreError> {
        let mut first = None;
        // Attachment records matter only for allocations whose network namespace the agent
        // could not see (the namespace path is the better evidence): read them only then.
        let need = self
            .lock()
            .state
            .allocations()
            .any(|(_, a)| a.netns.is_none());
        let attachments = if need {
            match self.node_attachments().await {
                Ok(a) => Some(a),
                Err(e) => {
                    first.get_or_insert(e);
                    None
                }
            }
        } else {
            None
        };
        self.collect_leaks(attachments.as_ref());
        self.drop_lost_empty();
        if let Err(e) = self.release_empty().await {
            first.get_or_insert(e);
        }
        if let Err(e) = self.reclaim_gone_nodes().await {
            first.get_or_insert(e);
        }
        first.map_or(Ok(()), Err)
    }

    /// The attachments the store holds for this node (by handle), with their addresses.
    pub(super) async fn node_attachments(
        &self,
    ) -> Result<BTreeMap<IpamHandle, Vec<String>>, StoreError> {
        let l = self
            .store
            .list(&keys::prefix(Kind::Attachment, None))
            .await?;
        Ok(l.kvs
            .iter()
            .filter_map(|kv| serde_json::from_slice::<Attachment>(&kv.value).ok())
            .filter(|a| a.spec.node == self.node)
            .map(|a| {
                (
                    IpamHandle {
                        container_id: a.spec.container_id,
                        ifname: a.spec.interface,
                    },
                    a.spec.addresses,
                )
            })
            .collect())
    }

    /// Suspects reviewed; those whose grace is over looked at again and released.
    fn collect_leaks(&self, attachments: Option<&BTreeMap<IpamHandle, Vec<String>>>) {
        let atts: Option<BTreeSet<IpamHandle>> = attachments.map(|a| a.keys().cloned().collect());
        let due = {
            let mut g = self.lock();
            if let Some(a) = &atts {
                g.seen_attachments.extend(a.iter().cloned());
            }
            let inner = &mut *g;
            let facts = Facts {
                exists: &exists,
                attachments: atts.as_ref(),
                seen: &inner.seen_attachments,
                gc_marked: &inner.gc_marks,
            };
            let allocs: Vec<_> = inner.state.allocations().map(|(_, a)| a.clone()).collect();
            leak::review(
                &mut inner.suspects,
                allocs.iter(),
                &facts,
                Instant::now(),
                self.cfg.leak_grace,
            )
        };
        for (handle, why) in due {
            // Right before releasing: look again.
            let again = {
                let g = self.lock();
                let facts = Facts {
                    exists: &exists,
                    attachments: atts.as_ref(),
                    seen: &g.seen_attachments,
                    gc_marked: &g.gc_marks,
                };
                g.state
                    .handles
                    .get(&handle)
                    .and_then(|ips| ips.first())
                    .and_then(|ip| g.state.alloc_of(*ip))
                    .map(|a| leak::evidence(a, &facts))
            };
            if !matches!(again, Some(leak::Evidence::Gone(_))) {
                self.lock().suspects.remove(&handle);
                continue;
            }
            let req = IpamRelease {
                network: None,
                handle: handle.clone(),
            };
            if let Ok(ips) = self.release(&req, "leak") {
                log::warn!(
                    "ipam: released {ips:?} of {handle}: {why} for {}s (leak)",
                    self.cfg.leak_grace.as_secs()
                );
            }
        }
    }

    /// A lost block with nothing left in it is forgotten.
    fn drop_lost_empty(&self) {
        let mut g = self.lock();
        let gone: Vec<IpNet> = g
            .state
            .blocks
            .values()
            .filter(|h| h.status == Status::Lost && h.block.is_empty())
            .map(|h| h.block.cidr)
            .collect();
        for cidr in gone {
            let r = Record::Drop { cidr };
            g.state.apply(&r);
            if let Err(e) = g.journal(&r) {
                log::warn!("ipam: journal: {e}");
            }
            log::info!("ipam: lost block {cidr} is empty: forgotten");
        }
    }

    /// Gives back blocks that stayed empty past the grace (the node keeps one per family).
    async fn release_empty(&self) -> Result<(), StoreError> {
        let now = Instant::now();
        let due: Vec<(IpNet, i64)> = {
            let mut g = self.lock();
            let candidates = g.state.releasable_empty();
            g.empty_since.retain(|c, _| candidates.contains(c));
            let mut due = Vec::new();
            for c in candidates {
                let since = *g.empty_since.entry(c).or_insert(now);
                let Some(h) = g.state.blocks.get_mut(&c) else {
                    continue;
                };
                if now.duration_since(since) >= self.cfg.empty_block_grace && h.rev != 0 {
                    h.status = Status::Releasing;
                    due.push((c, h.rev));
                }
            }
            due
        };
        let mut first = None;
        for (cidr, rev) in due {
            let r = claim::release_block(&self.store, &cidr, rev).await;
            let mut g = self.lock();
            match r {
                Ok(true) => {
                    let rec = Record::Drop { cidr };
                    g.state.apply(&rec);
                    g.empty_since.remove(&cidr);
                    g.created.remove(&cidr);
                    if let Err(e) = g.journal(&rec) {
                        log::warn!("ipam: journal: {e}");
                    }
                    drop(g);
                    self.metrics.ipam.block_released("empty");
                    log::info!(
                        "ipam: block {cidr} stayed empty for {}s: back to the pool",
                        self.cfg.empty_block_grace.as_secs()
                    );
                }
                other => {
                    if let Some(h) = g.state.blocks.get_mut(&cidr) {
                        h.status = Status::Active;
                        if matches!(other, Ok(false)) {
                            // the key moved: the sync pass finds out why
                            h.changes += 1;
                        }
                    }
                    if let Err(e) = other {
                        first.get_or_insert(e);
                    }
                }
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Other nodes seen without a lease are tracked; when one has been gone for the node
    /// grace (and its Node has not changed since), its blocks go back to the pool.
    async fn reclaim_gone_nodes(&self) -> Result<(), StoreError> {
        let alive = stored::alive_nodes(&self.store).await?;
        let nodes = self.store.list(&keys::prefix(Kind::Node, None)).await?;
        let node_revs: BTreeMap<String, i64> = nodes
            .kvs
            .iter()
            .filter_map(|kv| {
                let name = kv.key.rsplit('/').next()?.to_string();
                Some((name, kv.mod_revision))
            })
            .collect();
        let now = Instant::now();
        let due: BTreeMap<String, i64> = {
            let mut gone = self.gone_nodes.lock().unwrap_or_else(|p| p.into_inner());
            gone.retain(|n, _| !alive.contains(n) && node_revs.contains_key(n));
            for (n, rev) in &node_revs {
                if alive.contains(n) || *n == self.node {
                    continue;
                }
                let e = gone.entry(n.clone()).or_insert((now, *rev));
                if e.1 != *rev {
                    // it registered again in between: count from now
                    *e = (now, *rev);
                }
            }
            gone.iter()
                .filter(|(_, (since, _))| now.duration_since(*since) >= self.cfg.node_grace)
                .map(|(n, (_, rev))| (n.clone(), *rev))
                .collect()
        };
        if due.is_empty() {
            return Ok(());
        }
        let listing = self.store.list(&stored::blocks_prefix()).await?;
        for b in stored::decode_all(&listing.kvs) {
            let Some(rev) = due.get(&b.node) else {
                continue;
            };
            if claim::reclaim_block(&self.store, &b, *rev).await? {
                self.metrics.ipam.block_released("node-gone");
                log::warn!(
                    "ipam: block {} of node {} returned to the pool: the node's lease has been gone for {}s ({} addresses were listed in use)",
                    b.cidr,
                    b.node,
                    self.cfg.node_grace.as_secs(),
                    b.in_use()
                );
            }
        }
        Ok(())
    }

    /// How long node `n` has been seen gone, and when its blocks go (for the report).
    pub(super) fn gone_for(&self, n: &str) -> Option<(Duration, Duration)> {
        let gone = self.gone_nodes.lock().unwrap_or_else(|p| p.into_inner());
        gone.get(n).map(|(since, _)| {
            let d = since.elapsed();
            (d, self.cfg.node_grace.saturating_sub(d))
        })
    }
}
