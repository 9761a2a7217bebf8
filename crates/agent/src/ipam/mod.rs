//! # Cluster IPAM: one address pool for the cluster
//!
//! The ClusterNetwork's pod CIDRs (one per family) are the pool. Each node's agent claims
//! blocks of it for itself, one store transaction per claim (the Calico way), and hands out
//! addresses from its own blocks with no store round trip on the ADD path:
//!
//! ```text
//! cluster-ipam ADD ──socket──> allocate in memory ─> journal append ─> answer
//!                                    │ (blocks full)                     │
//!                                    └─> claim a block: one txn          └─> the store's copy of the
//!                                                                             block, batched, later
//! ```
//!
//! - **Modes.** `pod` (flat, overlay): single addresses (`/32`, `/128`) from any of the node's
//!   blocks of `ipamBlockSize`; a node claims another block when its blocks are full, and
//!   gives back a block that stayed empty (it keeps one). `node` (kubenet's bridge): one block
//!   of `nodeBlockSize` per family is the node's pod CIDR (written to its Node as
//!   `spec.podCIDRs`); the gateway is its first address.
//! - **Never twice.** An address is handed out under the state's lock and journaled (one
//!   `write(2)`) before the answer, so after a crash or `kill -9` the journal replays every
//!   address any plugin received; a torn last line belongs to an answer never sent. A block is
//!   created with create-if-absent (and, when block sizes are mixed, compares that exclude
//!   overlaps), so two nodes never hold one address range. The store says which node holds a
//!   block: an agent that finds its block taken stops using it.
//! - **Store down.** ADD, DEL and CHECK work from memory; only a claim needs the store (code
//!   11, naming it). The store's copies catch up when it is back. An agent that has not
//!   reached the store for half of `nodeGraceSeconds` stops handing out addresses: past
//!   `nodeGraceSeconds` other nodes may take its blocks back.
//! - **Leaks.** An address whose attachment is gone ([`leak`]) is released after
//!   `leakGraceSeconds`, checked again first; the blocks of a node whose lease record has been
//!   gone for `nodeGraceSeconds` return to the pool (the `maintain` loop).
//!
//! # Layout
//! - [`block`], [`pool`], [`state`], [`leak`]: pure (allocator, candidates and claim compares,
//!   the node's state and its journal records, leak evidence);
//! - [`stored`]: the store's form, and the start-up reconciliation (pure);
//! - [`claim`]: the store transactions;
//! - this module: [`Ipam`], the requests; `maintain`: the loops (store copies, empty
//!   blocks, leaks, other nodes' blocks); `report`: `cnictl ipam show|check|release`;
//! - [`config`], [`metrics`].

pub mod block;
pub mod claim;
pub mod config;
pub mod leak;
mod maintain;
pub mod metrics;
pub mod pool;
mod report;
pub mod state;
pub mod stored;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ferro_agent_api::ipam::{
    Family, IpamAllocate, IpamCheck, IpamGc, IpamHandle, IpamIp, IpamMode, IpamRelease, IpamStatus,
};
use ferro_agent_api::{ApiError, ErrorCode, Request, Response};
use ferro_cluster::k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use ferro_store::{Store, StoreError};
use ipnet::IpNet;
use tokio::sync::Notify;

pub use config::IpamConfig;

use crate::journal::Journal;
use crate::metrics::Metrics;
use crate::AgentError;
use block::{Alloc, Block};
use leak::Suspect;
use state::{NodeState, Record, Shortage, Status};

/// The journal is compacted when it grows past this, or past four times its last snapshot.
const COMPACT_MIN: u64 = 1 << 20;

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn store_error(what: &str, e: &StoreError) -> ApiError {
    let code = if e.is_unavailable() {
        ErrorCode::Unavailable
    } else {
        ErrorCode::Internal
    };
    ApiError::new(code, format!("{what}: {e}"))
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::BadRequest, msg)
}

fn check_handle(h: &IpamHandle) -> Result<(), ApiError> {
    if h.container_id.is_empty() {
        return Err(bad("containerID: empty"));
    }
    if h.ifname.is_empty() {
        return Err(bad("ifname: empty"));
    }
    Ok(())
}

/// The node's view of its blocks and allocations, and what it keeps about them.
#[derive(Debug)]
struct Inner {
    state: NodeState,
    journal: Journal,
    compact_at: u64,
    /// Allocations whose attachment looks gone.
    suspects: BTreeMap<IpamHandle, Suspect>,
    /// Allocations the runtime's GC did not list, since when.
    gc_marks: BTreeMap<IpamHandle, Instant>,
    /// Attachments the store has shown since the agent started.
    seen_attachments: BTreeSet<IpamHandle>,
    /// Blocks that are empty, since when.
    empty_since: BTreeMap<IpNet, Instant>,
    /// Blocks' creation times, as the store has them.
    created: BTreeMap<IpNet, Time>,
}

impl Inner {
    /// Journals `r` (compacting when the journal has grown).
    fn journal(&mut self, r: &Record) -> std::io::Result<()> {
        self.journal.append(r)?;
        if self.journal.len() > self.compact_at {
            if let Err(e) = self.compact() {
                log::warn!("ipam: compacting {}: {e}", self.journal.path().display());
            }
        }
        Ok(())
    }

    /// Replaces the journal by one snapshot.
    fn compact(&mut self) -> std::io::Result<()> {
        let snap = Record::Snapshot(self.state.snapshot());
        self.journal.rewrite(&[snap])?;
        self.compact_at = COMPACT_MIN.max(self.journal.len() * 4);
        Ok(())
    }

    /// Forgets suspicion about `h` (it was shown live, or released).
    fn forgive(&mut self, h: &IpamHandle) {
        self.suspects.remove(h);
        self.gc_marks.remove(h);
    }
}

/// When the store last answered an IPAM request.
#[derive(Debug, Clone, Copy)]
struct Contact {
    last: Instant,
}

/// Cluster IPAM on this node.
pub struct Ipam<S> {
    store: S,
    node: String,
    cfg: IpamConfig,
    lease_ttl: Duration,
    metrics: Arc<Metrics>,
    inner: Mutex<Inner>,
    claiming: tokio::sync::Mutex<()>,
    wake: Notify,
    contact: Mutex<Contact>,
    /// Other nodes seen without a lease: since when, and their Node's revision then.
    gone_nodes: Mutex<BTreeMap<String, (Instant, i64)>>,
}

impl<S> std::fmt::Debug for Ipam<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ipam")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl<S: Store + Clone + 'static> Ipam<S> {
    /// Starts IPAM for `node`: replays the journal in `state_dir`, reads the pools and the
    /// blocks from the store, reconciles them (see [`stored::reconcile`]) and compacts the
    /// journal.
    pub async fn open(
        store: S,
        node: &str,
        cfg: IpamConfig,
        lease_ttl: Duration,
        state_dir: &Path,
        metrics: Arc<Metrics>,
    ) -> Result<Ipam<S>, AgentError> {
        let journal = Journal::open(state_dir)
            .map_err(|e| AgentError::io(format!("opening {}/journal", state_dir.display()), e))?;
        let replay = journal
            .replay::<Record>()
            .map_err(|e| AgentError::io(format!("reading {}", journal.path().display()), e))?;
        let mut state = NodeState::default();
        let mut problems = Vec::new();
        for r in &replay.records {
            problems.extend(state.apply(r));
        }
        if replay.skipped > 0 {
            log::warn!(
                "ipam: {}: {} unreadable lines skipped",
                journal.path().display(),
                replay.skipped
            );
        }
        for p in problems.iter().take(20) {
            log::warn!("ipam: journal: {p}");
        }
        let from_journal = state.handles.len();
        match claim::read_pools(&store).await? {
            Ok(Some(pools)) => {
                if pools != state.pools {
                    state.apply(&Record::Pools { pools });
                }
            }
            Ok(None) => {
                log::info!("ipam: no ClusterNetwork yet: cluster-ipam answers once one is applied")
            }
            Err(e) => log::warn!("ipam: {e}"),
        }
        let listing = store.list(&stored::blocks_prefix()).await?;
        let blocks = stored::decode_all(&listing.kvs);
        let rec = stored::reconcile(&mut state, node, &blocks);
        for n in &rec.notes {
            log::warn!("ipam: {n}");
        }
        let created = blocks
            .iter()
            .filter(|b| b.node == node)
            .filter_map(|b| Some((b.cidr, b.created.clone()?)))
            .collect();
        let mut inner = Inner {
            state,
            journal,
            compact_at: COMPACT_MIN,
            suspects: BTreeMap::new(),
            gc_marks: BTreeMap::new(),
            seen_attachments: BTreeSet::new(),
            empty_since: BTreeMap::new(),
            created,
        };
        inner.compact().map_err(|e| {
            AgentError::io(format!("compacting {}", inner.journal.path().display()), e)
        })?;
        log::info!(
            "ipam: {} blocks, {} attachments ({} from the journal), {} pools",
            inner.state.blocks.len(),
            inner.state.handles.len(),
            from_journal,
            inner.state.pools.len()
        );
        let ipam = Ipam {
            store,
            node: node.to_string(),
            cfg,
            lease_ttl,
            metrics,
            inner: Mutex::new(inner),
            claiming: tokio::sync::Mutex::new(()),
            wake: Notify::new(),
            contact: Mutex::new(Contact {
                last: Instant::now(),
            }),
            gone_nodes: Mutex::new(BTreeMap::new()),
        };
        ipam.update_gauges();
        Ok(ipam)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The store answered.
    fn contact_ok(&self) {
        self.contact.lock().unwrap_or_else(|p| p.into_inner()).last = Instant::now();
    }

    /// How long since the store last answered.
    fn since_contact(&self) -> Duration {
        self.contact
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .last
            .elapsed()
    }

    /// Refuses to hand out addresses when the store has been away for half the node grace
    /// (other nodes may take this node's blocks back after the whole of it).
    fn fresh_enough(&self) -> Result<(), ApiError> {
        let away = self.since_contact();
        if away > self.cfg.node_grace / 2 {
            return Err(ApiError::new(
                ErrorCode::Unavailable,
                format!(
                    "the store has not answered for {}s: this node's blocks may be given to other nodes after nodeGraceSeconds ({}s), so no address is handed out until it is back",
                    away.as_secs(),
                    self.cfg.node_grace.as_secs()
                ),
            ));
        }
        Ok(())
    }

    /// Updates the holdings gauges.
    fn update_gauges(&self) {
        let g = self.lock();
        for f in [Family::Ipv4, Family::Ipv6] {
            let blocks: Vec<&Block> = g
                .state
                .blocks
                .values()
                .map(|h| &h.block)
                .filter(|b| b.family() == f)
                .collect();
            let count = |m| blocks.iter().filter(|b| b.mode == m).count() as i64;
            let used: u64 = blocks.iter().map(|b| b.used()).sum();
            let cap: u128 = blocks.iter().map(|b| b.capacity()).sum();
            self.metrics.ipam.holdings(
                f.as_str(),
                count(IpamMode::Node),
                count(IpamMode::Pod),
                i64::try_from(used).unwrap_or(i64::MAX),
                i64::try_from(cap).unwrap_or(i64::MAX),
            );
        }
        let unsynced = g.state.blocks.values().filter(|h| h.dirty()).count();
        self.metrics.ipam.set_unsynced(unsynced);
        self.metrics.ipam.set_suspects(g.suspects.len());
    }

    /// Answers an IPAM request.
    pub async fn handle(&self, req: Request) -> Result<Response, ApiError> {
        match req {
            Request::IpamAllocate(r) => {
                let res = self.allocate(r).await;
                let result = match &res {
                    Ok(_) => "ok",
                    Err(e) => e.code.as_str(),
                };
                if result != "ok" {
                    self.metrics.ipam.allocation(result);
                }
                res.map(|ips| Response::IpamAllocated {
                    ips,
                    attachment: None,
                    masqueraded: false,
                })
            }
            Request::IpamRelease(r) => {
                self.release(&r, "del")
                    .map(|addresses| Response::IpamReleased {
                        addresses,
                        blocks: Vec::new(),
                    })
            }
            Request::IpamCheck(r) => self.check(&r),
            Request::IpamGc(r) => self.gc(&r),
            Request::IpamStatus(r) => self.status(&r),
            Request::IpamShow(r) => self.show(&r).await.map(Response::IpamShow),
            Request::IpamAudit(_) => self.audit().await.map(Response::IpamAudit),
            Request::IpamReclaim(r) => self.reclaim(&r).await,
            other => Err(bad(format!("not an IPAM request: {other:?}"))),
        }
    }

    /// ADD.
    async fn allocate(&self, req: IpamAllocate) -> Result<Vec<IpamIp>, ApiError> {
        check_handle(&req.handle)?;
        if req.network.is_empty() {
            return Err(bad("network: empty"));
        }
        let netns = req
            .netns
            .clone()
            .filter(|p| !p.is_empty() && Path::new(p).exists());
        let mut shortage = None;
        for _ in 0..6 {
            let need = {
                let mut g = self.lock();
                if let Some(ips) = g.state.existing(&req.handle) {
                    g.forgive(&req.handle);
                    self.metrics.ipam.allocation("existing");
                    return Ok(ips);
                }
                self.fresh_enough()?;
                if g.state.pools.is_empty() {
                    None
                } else {
                    let families = req.families.clone().unwrap_or_else(|| {
                        let mut f: Vec<Family> = g.state.pools.iter().map(|p| p.family()).collect();
                        f.sort();
                        f
                    });
                    if families.is_empty() {
                        return Err(ApiError::new(ErrorCode::Invalid, "families: empty"));
                    }
                    let alloc = Alloc {
                        handle: req.handle.clone(),
                        network: req.network.clone(),
                        pod: req.pod.clone(),
                        netns: netns.clone(),
                        since: now_secs(),
                        seq: 0,
                    };
                    match g.state.allocate(&families, req.mode, alloc) {
                        Ok((rec, ips)) => {
                            if let Err(e) = g.journal(&rec) {
                                g.state.release(&req.handle, &[]);
                                return Err(ApiError::new(
                                    ErrorCode::Internal,
                                    format!("ipam: journal {}: {e}", g.journal.path().display()),
                                ));
                            }
                            drop(g);
                            self.wake.notify_one();
                            self.metrics.ipam.allocation("ok");
                            self.update_gauges();
                            log::debug!("ipam: {} got {ips:?}", req.handle);
                            return Ok(ips);
                        }
                        Err(Shortage::NeedBlock(f)) => Some(f),
                        Err(Shortage::NoPool(f)) => {
                            let have: Vec<String> =
                                g.state.pools.iter().map(|p| p.cidr.to_string()).collect();
                            return Err(ApiError::new(
                                ErrorCode::Invalid,
                                format!(
                                    "the ClusterNetwork has no {} pod CIDR (spec.podCIDRs: {}): this network asks for one",
                                    f.as_str(),
                                    have.join(", ")
                                ),
                            ));
                        }
                        Err(Shortage::NodeBlockFull(cidr, used)) => {
                            return Err(ApiError::new(
                                ErrorCode::Exhausted,
                                format!(
                                    "node block {cidr} of node {} is full ({used} addresses in use): a node keeps one block under node mode (nodeBlockSize); release leaked addresses (cnictl ipam check) or give nodes larger blocks",
                                    self.node
                                ),
                            ));
                        }
                    }
                }
            };
            match need {
                None => self.refresh_pools().await.map(drop)?,
                Some(f) => {
                    shortage = Some(f);
                    self.claim(f, req.mode).await?;
                }
            }
        }
        Err(ApiError::new(
            ErrorCode::Conflict,
            format!(
                "no room after claiming blocks of {} repeatedly (other requests took it first); try again",
                shortage.map_or("?", Family::as_str)
            ),
        ))
    }

    /// Reads the pools from the ClusterNetwork; journals a change.
    async fn refresh_pools(&self) -> Result<Vec<pool::Pool>, ApiError> {
        let pools = match claim::read_pools(&self.store).await {
            Err(e) => return Err(store_error("reading the ClusterNetwork", &e)),
            Ok(Err(e)) => return Err(ApiError::new(ErrorCode::Invalid, e)),
            Ok(Ok(None)) => {
                self.contact_ok();
                return Err(ApiError::new(
                    ErrorCode::Invalid,
                    "no ClusterNetwork: apply one with spec.podCIDRs (cnictl apply -f clusternetwork.yaml) before using cluster-ipam",
                ));
            }
            Ok(Ok(Some(p))) => p,
        };
        self.contact_ok();
        let mut g = self.lock();
        if g.state.pools != pools {
            let r = Record::Pools {
                pools: pools.clone(),
            };
            g.state.apply(&r);
            if let Err(e) = g.journal(&r) {
                log::warn!("ipam: journal: {e}");
            }
            log::info!(
                "ipam: pools {}",
                pools
                    .iter()
                    .map(|p| format!(
                        "{} (/{}, node /{})",
                        p.cidr, p.block_prefix, p.node_block_prefix
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        Ok(pools)
    }

    /// Claims a block of `family` for `mode`, one claim at a time on this node (requests
    /// waiting for the same shortage find it solved when their turn comes).
    async fn claim(&self, family: Family, mode: IpamMode) -> Result<(), ApiError> {
        let _one = self.claiming.lock().await;
        if self.lock().state.pick(family, mode).is_ok() {
            return Ok(());
        }
        let what = format!(
            "node {}: claiming a new {} block",
            self.node,
            family.as_str()
        );
        let pools = self.refresh_pools().await.map_err(|e| match e.code {
            ErrorCode::Unavailable => ApiError::new(e.code, format!("{what}: {}", e.message)),
            _ => e,
        })?;
        let Some(pool) = pools.iter().find(|p| p.family() == family).copied() else {
            return Err(ApiError::new(
                ErrorCode::Invalid,
                format!("the ClusterNetwork has no {} pod CIDR", family.as_str()),
            ));
        };
        let seq = self.lock().state.seq;
        let node = self.node.clone();
        let t0 = Instant::now();
        let res = claim::claim(&self.store, &node, &pool, mode, |c| {
            stored::encode(&Block::new(c, mode, Some(pool.cidr)), &node, seq, None)
        })
        .await;
        let secs = t0.elapsed().as_secs_f64();
        match res {
            Ok((cidr, rev)) => {
                self.metrics.ipam.claim("ok", secs);
                self.contact_ok();
                {
                    let mut g = self.lock();
                    let r = Record::Claim { cidr, mode };
                    g.state.apply(&r);
                    if let Err(e) = g.journal(&r) {
                        log::warn!("ipam: journal: {e}");
                    }
                    if let Some(h) = g.state.blocks.get_mut(&cidr) {
                        h.rev = rev;
                        h.synced = h.changes;
                    }
                    g.created.insert(cidr, Time(ferro_cluster::now()));
                }
                log::info!(
                    "ipam: claimed block {cidr} ({} mode) in {:.1} ms",
                    mode.as_str(),
                    secs * 1000.0
                );
                self.wake.notify_one();
                self.update_gauges();
                Ok(())
            }
            Err(claim::ClaimError::Exhausted(m)) => {
                self.contact_ok();
                self.metrics.ipam.claim("exhausted", secs);
                log::warn!("ipam: {m}");
                Err(ApiError::new(ErrorCode::Exhausted, m))
            }
            Err(claim::ClaimError::Store(e)) => {
                self.metrics.ipam.claim("unavailable", secs);
                Err(store_error(&what, &e))
            }
            Err(e @ claim::ClaimError::Conflict(_)) => {
                self.contact_ok();
                self.metrics.ipam.claim("conflict", secs);
                Err(ApiError::new(ErrorCode::Conflict, e.to_string()))
            }
        }
    }

    /// DEL (and releases for other reasons): the attachment's addresses go back to their
    /// blocks; nothing held is fine.
    pub fn release(&self, req: &IpamRelease, reason: &str) -> Result<Vec<IpAddr>, ApiError> {
        check_handle(&req.handle)?;
        let mut g = self.lock();
        g.forgive(&req.handle);
        let Some((rec, ips)) = g.state.release(&req.handle, &[]) else {
            return Ok(Vec::new());
        };
        if let Err(e) = g.journal(&rec) {
            // Not durable: after a crash the address would come back as held, a leak the
            // leak collection frees; never a duplicate.
            log::error!("ipam: journal {}: {e}", g.journal.path().display());
        }
        drop(g);
        self.wake.notify_one();
        self.metrics.ipam.released(reason, ips.len());
        self.update_gauges();
        log::debug!("ipam: {} released {ips:?} ({reason})", req.handle);
        Ok(ips)
    }

    /// A DEL a plugin spooled at `at_ms` while the agent was away: skipped when the
    /// attachment was added again after it.
    pub fn release_spooled(&self, req: &IpamRelease, at_ms: u64) -> Result<Vec<IpAddr>, ApiError> {
        let newer = {
            let g = self.lock();
            g.state.handles.get(&req.handle).and_then(|ips| {
                ips.iter()
                    .filter_map(|ip| g.state.alloc_of(*ip))
                    .map(|a| a.since)
                    .max()
            })
        };
        if let Some(since) = newer.filter(|s| s.saturating_mul(1000) > at_ms) {
            log::info!(
                "ipam: spooled release of {} ignored: it was added again since ({since})",
                req.handle
            );
            return Ok(Vec::new());
        }
        self.release(req, "spool")
    }

    /// CHECK: the attachment holds exactly what ADD gave it.
    fn check(&self, req: &IpamCheck) -> Result<Response, ApiError> {
        check_handle(&req.handle)?;
        let mut g = self.lock();
        let Some(held) = g.state.handles.get(&req.handle).cloned() else {
            return Err(ApiError::new(
                ErrorCode::NotFound,
                format!("{} holds no address from cluster-ipam", req.handle),
            ));
        };
        let mut missing: Vec<String> = req
            .addresses
            .iter()
            .filter(|a| !held.contains(a))
            .map(ToString::to_string)
            .collect();
        missing.sort();
        if !missing.is_empty() {
            let mut h: Vec<String> = held.iter().map(ToString::to_string).collect();
            h.sort();
            return Err(ApiError::new(
                ErrorCode::NotFound,
                format!(
                    "{} does not hold {} (it holds {})",
                    req.handle,
                    missing.join(", "),
                    h.join(", ")
                ),
            ));
        }
        g.forgive(&req.handle);
        Ok(Response::IpamOk { detail: None })
    }

    /// GC: the network's allocations the runtime did not list become leak suspects.
    fn gc(&self, req: &IpamGc) -> Result<Response, ApiError> {
        let valid: BTreeSet<&IpamHandle> = req.valid.iter().collect();
        let mut g = self.lock();
        let now = Instant::now();
        let handles: Vec<IpamHandle> = g
            .state
            .allocations()
            .filter(|(_, a)| a.network == req.network)
            .map(|(_, a)| a.handle.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut marked = 0;
        for h in handles {
            if valid.contains(&h) {
                g.gc_marks.remove(&h);
            } else {
                g.gc_marks.entry(h).or_insert(now);
                marked += 1;
            }
        }
        Ok(Response::IpamOk {
            detail: Some(format!(
                "{marked} attachments of network {} are not in the runtime's list: released after {}s unless they show up again",
                req.network,
                self.cfg.leak_grace.as_secs()
            )),
        })
    }

    /// STATUS: an ADD of this shape can be served now (from a block with room, or by a
    /// claim while the store answers).
    fn status(&self, req: &IpamStatus) -> Result<Response, ApiError> {
        self.fresh_enough()?;
        let g = self.lock();
        if g.state.pools.is_empty() {
            return Err(ApiError::new(
                ErrorCode::Invalid,
                "no ClusterNetwork: apply one with spec.podCIDRs",
            ));
        }
        let families = req
            .families
            .clone()
            .unwrap_or_else(|| g.state.pools.iter().map(|p| p.family()).collect());
        for f in families {
            match g.state.pick(f, req.mode) {
                Ok(_) => {}
                Err(Shortage::NeedBlock(_)) => {
                    if self.since_contact() > self.lease_ttl.max(Duration::from_secs(10)) {
                        return Err(ApiError::new(
                            ErrorCode::Unavailable,
                            format!(
                                "no {} block with room and the store has not answered for {}s",
                                f.as_str(),
                                self.since_contact().as_secs()
                            ),
                        ));
                    }
                }
                Err(Shortage::NoPool(f)) => {
                    return Err(ApiError::new(
                        ErrorCode::Invalid,
                        format!("the ClusterNetwork has no {} pod CIDR", f.as_str()),
                    ))
                }
                Err(Shortage::NodeBlockFull(c, used)) => {
                    return Err(ApiError::new(
                        ErrorCode::Exhausted,
                        format!("node block {c} is full ({used} addresses in use)"),
                    ))
                }
            }
        }
        Ok(Response::IpamOk { detail: None })
    }

    /// Stops cleanly: the store's copies brought up to date (bounded), the journal synced.
    pub async fn shutdown(&self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), self.sync_once()).await;
        let g = self.lock();
        if let Err(e) = g.journal.sync() {
            log::warn!("ipam: syncing the journal: {e}");
        }
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.node
    }
}

/// Whether a block may be handed out from (for the report).
fn status_name(s: Status) -> &'static str {
    match s {
        Status::Active => "active",
        Status::Releasing => "releasing",
        Status::Lost => "lost",
    }
}

#[cfg(test)]
mod tests;
