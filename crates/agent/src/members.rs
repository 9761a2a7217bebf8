//! Membership: the other live nodes, as the store knows them, programmed into this node's
//! kernel: VXLAN peers (overlay) and routes to their pod CIDRs (kubenet).
//!
//! ```text
//! the agent's cache (one watch of the store) ──> members() ──> overlay_peers()  ──> overlay::reconcile (neighbour, FDB, route per subnet)
//!   nodes, node leases, IPAM blocks             (pure)     └─> kubenet_routes() ──> routes of protocol 77 in the main table
//! ```
//!
//! - A node is a member while its lease record exists (`/ferro-cni/v1/nodeleases/<node>`):
//!   its agent registering makes it one, its lease expiring or being revoked (the record's
//!   deletion event) ends it. A snapshot of the cache in which nodes, leases or IPAM blocks
//!   changed is applied as soon as it is published: no polling.
//! - A member's pod subnets are its `Node`'s `spec.podCIDRs` and the IPAM blocks affine to
//!   it (pooled blocks too: under a shared pool each block of a node is one peer, added when
//!   the node claims it and removed when it gives it back); its VTEP MAC is `spec.vtepMAC` (else derived from its address, as the node-list
//!   file does); its underlay address is the one of the local VXLAN address's family.
//! - The desired state is a pure function of the snapshot ([`members`], [`overlay_peers`],
//!   [`kubenet_routes`]); the kernel side ([`overlay_apply`], [`routes_apply`]) changes only
//!   what differs, through `ferro-net`'s overlay module (the code `cnictl overlay sync`
//!   uses) and its route calls.
//! - The whole state is compared again every `resyncSeconds` (drift, this node's own VTEP
//!   MAC); a failed pass is retried with a bounded back-off.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferro_cluster::{Kind, Object};
use ferro_net::names;
use ferro_net::overlay::{self, Device, FamilyNets, Peer, SyncReport};
use ferro_net::rtnl::RouteSpec;
use ferro_net::{NetError, Rtnl};
use ferro_store::Store;
use ipnet::IpNet;

use crate::cache::{Cache, Snapshot};
use crate::config::{Config, OverlayConfig};
use crate::kernel::KernelWorker;
use crate::metrics::Metrics;
use crate::node::{self, SharedFacts};

/// The route protocol (`ip route ... proto 77`) of the kubenet routes the agent owns: the
/// routes it finds with it are its own to replace or remove, and no others.
pub const ROUTE_PROTOCOL: u8 = 77;

/// The longest pause after failures (a reconcile retried, a watch restarted).
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// The IPAM blocks of `snap` affine to `node` (their CIDRs).
fn blocks_of<'a>(snap: &'a Snapshot, node: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    snap.all(Kind::IpamBlock)
        .filter_map(move |o| match o.as_ref() {
            Object::IpamBlock(b) if b.spec.node.as_deref() == Some(node) => {
                Some(b.spec.cidr.as_str())
            }
            _ => None,
        })
}

/// This node's own pod subnets: its slices (`configured`, then its `Node`'s
/// `spec.podCIDRs`: kubenet-style node blocks, whose network address no pod gets) and every
/// pod subnet it has at all (the slices and the IPAM blocks affine to it, pooled blocks
/// included, any address of which may be a pod's).
pub fn own_subnets(snap: &Snapshot, me: &str, configured: &[IpNet]) -> Own {
    let mut own = Own {
        slices: configured.to_vec(),
        all: Vec::new(),
    };
    if let Some(Object::Node(n)) = snap.get(Kind::Node, None, me).map(AsRef::as_ref) {
        for c in n.spec.pod_cidrs.iter().flatten() {
            if let Ok(net) = c.parse::<IpNet>() {
                if !own.slices.contains(&net.trunc()) {
                    own.slices.push(net.trunc());
                }
            }
        }
    }
    own.all = own.slices.clone();
    for c in blocks_of(snap, me) {
        if let Ok(n) = c.parse::<IpNet>() {
            if !own.all.contains(&n) {
                own.all.push(n);
            }
        }
    }
    own
}

/// This node's pod subnets, see [`own_subnets`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Own {
    /// The slices: the first of each family gives the VXLAN device its address.
    pub slices: Vec<IpNet>,
    /// Every pod subnet: while there is none, the node needs no VXLAN device.
    pub all: Vec<IpNet>,
}

/// What membership reads of a snapshot: when none of it moved, there is nothing to do.
fn generations(snap: &Snapshot) -> (u64, u64, u64) {
    (
        snap.generation(Kind::Node),
        snap.generation(Kind::IpamBlock),
        snap.lease_generation(),
    )
}

/// Another live node, as this node programs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Its name.
    pub name: String,
    /// Its underlay addresses.
    pub addresses: Vec<IpAddr>,
    /// Its VTEP MAC, when it published one.
    pub vtep_mac: Option<[u8; 6]>,
    /// Its pod subnets (pod CIDRs and IPAM blocks), sorted.
    pub subnets: Vec<IpNet>,
}

/// The other live nodes (sorted by name) and what was wrong with their records. A subnet
/// claimed by two nodes stays with the first by name.
pub fn members(snap: &Snapshot, me: &str) -> (Vec<Member>, Vec<String>) {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    let mut claimed: BTreeMap<IpNet, String> = BTreeMap::new();
    let mut live: Vec<&str> = snap.live_nodes().filter(|n| *n != me).collect();
    live.sort_unstable();
    for name in live {
        let Some(Object::Node(node)) = snap.get(Kind::Node, None, name).map(AsRef::as_ref) else {
            continue; // a lease record before its Node: the Node's event follows
        };
        let spec = &node.spec;
        let mut addresses = Vec::new();
        for a in &spec.addresses {
            match a.parse::<IpAddr>() {
                Ok(ip) => addresses.push(ip),
                Err(_) => problems.push(format!("node {name}: address {a:?} is not an IP address")),
            }
        }
        let vtep_mac = spec.vtep_mac.as_deref().and_then(|m| {
            let mac = names::parse_mac(m);
            if mac.is_none() {
                problems.push(format!("node {name}: vtepMAC {m:?} is not a MAC address"));
            }
            mac
        });
        let mut subnets = Vec::new();
        let cidrs = spec.pod_cidrs.iter().flatten().map(String::as_str);
        for c in cidrs.chain(blocks_of(snap, name)) {
            let Ok(net) = c.parse::<IpNet>() else {
                problems.push(format!("node {name}: pod subnet {c:?} is not a CIDR"));
                continue;
            };
            let net = net.trunc();
            if subnets.contains(&net) {
                continue;
            }
            match claimed.get(&net) {
                Some(other) => problems.push(format!(
                    "node {name}: pod subnet {net} is also node {other}'s: ignored here"
                )),
                None => {
                    claimed.insert(net, name.to_string());
                    subnets.push(net);
                }
            }
        }
        subnets.sort();
        out.push(Member {
            name: name.to_string(),
            addresses,
            vtep_mac,
            subnets,
        });
    }
    (out, problems)
}

/// The VXLAN peers of `members` over an underlay of the family of `local`: one per pod
/// subnet, to the member's address of that family, with its published VTEP MAC (else the
/// one derived from that address).
pub fn overlay_peers(members: &[Member], local: IpAddr) -> (Vec<Peer>, Vec<String>) {
    let mut peers = Vec::new();
    let mut problems = Vec::new();
    for m in members {
        let Some(underlay) = m.addresses.iter().find(|a| a.is_ipv6() == local.is_ipv6()) else {
            problems.push(format!(
                "node {}: no {} address to reach its VTEP over the underlay",
                m.name,
                if local.is_ipv6() { "IPv6" } else { "IPv4" }
            ));
            continue;
        };
        let mac = m
            .vtep_mac
            .unwrap_or_else(|| overlay::vtep_mac_for(*underlay));
        peers.extend(m.subnets.iter().map(|s| Peer {
            subnet: *s,
            mac,
            underlay: *underlay,
        }));
    }
    (peers, problems)
}

/// The kubenet routes to `members`: each pod subnet via the member's address of its family
/// (on the same L2 segment), marked [`ROUTE_PROTOCOL`].
pub fn kubenet_routes(members: &[Member]) -> (Vec<RouteSpec>, Vec<String>) {
    let mut routes = Vec::new();
    let mut problems = Vec::new();
    for m in members {
        for s in &m.subnets {
            let v6 = s.addr().is_ipv6();
            match m.addresses.iter().find(|a| a.is_ipv6() == v6) {
                Some(gw) => {
                    let mut r = RouteSpec::new(*s, Some(*gw), None);
                    r.protocol = Some(ROUTE_PROTOCOL);
                    routes.push(r);
                }
                None => problems.push(format!(
                    "node {}: no {} address to route {s} via",
                    m.name,
                    if v6 { "IPv6" } else { "IPv4" }
                )),
            }
        }
    }
    (routes, problems)
}

/// This node's VXLAN device as `cfg` and the kernel describe it: over the underlay
/// (`overlay.underlay`, else the default route's interface) from its address chosen as the
/// `overlay` plugin chooses it with `nodeList: "agent"` (IPv4 when it has one, else IPv6),
/// with the network address of the first slice of each family as its addresses (none under
/// a shared pool: a pooled block's every address may be a pod's); `None` while the node has
/// no pod subnet yet. The MAC is derived from that address (as the plugin derives it) when
/// the device is created; an existing device keeps its own.
pub fn device(host: &Rtnl<'_>, cfg: &OverlayConfig, own: &Own) -> Result<Option<Device>, NetError> {
    if own.all.is_empty() {
        return Ok(None);
    }
    let first = |v6: bool| {
        own.slices
            .iter()
            .copied()
            .find(|s| s.addr().is_ipv6() == v6)
    };
    let firsts: Vec<IpNet> = [first(false), first(true)].into_iter().flatten().collect();
    let slices = FamilyNets::new(&firsts).map_err(NetError::Other)?;
    let (underlay, addrs) = overlay::underlay_of(host, cfg.underlay.as_deref(), None)
        .map_err(|e| NetError::Other(e.msg))?;
    let local = overlay::local_address(&underlay, &addrs, None, None)
        .map_err(|e| NetError::Other(e.msg))?;
    Ok(Some(Device {
        name: overlay::device_name(cfg.vni),
        vni: cfg.vni,
        port: cfg.port,
        underlay: underlay.index,
        local,
        mtu: cfg
            .mtu
            .unwrap_or(underlay.mtu.saturating_sub(overlay::vxlan_overhead(local))),
        mac: overlay::vtep_mac_for(local),
        slices,
    }))
}

/// What [`overlay_apply`] did.
#[derive(Debug, Clone, Default)]
pub struct OverlayDone {
    /// The device's MAC (`None`: no device yet, the node has no pod subnet).
    pub mac: Option<String>,
    /// What changed.
    pub report: SyncReport,
    /// Peers programmed.
    pub peers: usize,
    /// What could not be programmed.
    pub problems: Vec<String>,
}

/// Ensures this node's VXLAN device (see [`device`]) and, unless `members` is `None`,
/// reconciles its peers with theirs.
pub fn overlay_apply(
    host: &Rtnl<'_>,
    cfg: &OverlayConfig,
    own: &Own,
    members: Option<&[Member]>,
) -> Result<OverlayDone, NetError> {
    let Some(d) = device(host, cfg, own)? else {
        return Ok(OverlayDone::default());
    };
    let link = overlay::ensure_device(host, &d)?;
    let mut done = OverlayDone {
        mac: link.mac_string(),
        ..Default::default()
    };
    if let Some(members) = members {
        let (peers, problems) = overlay_peers(members, d.local);
        done.report = overlay::reconcile(host, &link, &peers, true, false)?;
        done.peers = peers.len();
        done.problems = problems;
    }
    Ok(done)
}

/// What [`routes_apply`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoutesDone {
    /// Routes added (or taken over from another owner).
    pub added: Vec<IpNet>,
    /// Routes removed.
    pub removed: Vec<IpNet>,
    /// Routes in place.
    pub routes: usize,
    /// What could not be added.
    pub problems: Vec<String>,
}

/// Makes the main table's routes of [`ROUTE_PROTOCOL`] exactly `want`: others of that
/// protocol removed, missing ones added (replacing a route to the same destination).
pub fn routes_apply(host: &Rtnl<'_>, want: &[RouteSpec]) -> Result<RoutesDone, NetError> {
    let mut have = host.routes(false, None)?;
    have.extend(host.routes(true, None)?);
    have.retain(|r| r.protocol == Some(ROUTE_PROTOCOL));
    let same = |a: &RouteSpec, b: &RouteSpec| a.dst == b.dst && a.gw == b.gw;
    let mut done = RoutesDone::default();
    for h in have.iter().filter(|h| !want.iter().any(|w| same(w, h))) {
        host.route_del(h)?;
        done.removed.push(h.dst);
    }
    for w in want {
        if have.iter().any(|h| same(w, h)) {
            done.routes += 1;
            continue;
        }
        match host.route_add(w, true) {
            Ok(()) => {
                done.added.push(w.dst);
                done.routes += 1;
            }
            Err(e) => done.problems.push(e.to_string()),
        }
    }
    Ok(done)
}

/// The membership loop's inputs.
#[derive(Debug)]
pub struct Membership<S> {
    /// The store.
    pub store: S,
    /// The agent's configuration.
    pub cfg: Config,
    /// The node's kernel.
    pub kernel: KernelWorker,
    /// What the agent publishes (the VTEP MAC).
    pub facts: SharedFacts,
    /// Metrics.
    pub metrics: Arc<Metrics>,
}

/// A bounded exponential back-off: 100 ms doubling up to [`MAX_BACKOFF`].
#[derive(Debug, Default)]
struct Backoff(u32);

impl Backoff {
    fn next(&mut self) -> Duration {
        let d = Duration::from_millis(100u64 << self.0.min(7)).min(MAX_BACKOFF);
        self.0 += 1;
        d
    }

    fn reset(&mut self) {
        self.0 = 0;
    }
}

impl<S: Store + Clone + 'static> Membership<S> {
    /// Whether there is anything for the loop to do.
    pub fn wanted(cfg: &Config) -> bool {
        cfg.overlay.is_some() || cfg.kubenet_routes
    }

    /// Follows the agent's cache until it stops (or the task is dropped).
    pub async fn run(self, mut cache: Cache) {
        let Some(mut snap) = cache.ready().await else {
            return;
        };
        let mut seen = generations(&snap);
        let mut problems = Vec::new();
        let mut retry = Backoff::default();
        let mut next = tokio::time::Instant::now();
        let mut changed = true;
        loop {
            if changed || tokio::time::Instant::now() >= next {
                next = match self.reconcile(&snap, &mut problems).await {
                    Ok(()) => {
                        retry.reset();
                        tokio::time::Instant::now() + self.cfg.resync
                    }
                    Err(e) => {
                        let pause = retry.next();
                        log::warn!("membership: {e}; again in {pause:?}");
                        tokio::time::Instant::now() + pause
                    }
                };
            }
            tokio::select! {
                s = cache.changed() => {
                    let Some(s) = s else { return };
                    let g = generations(&s);
                    changed = g != seen;
                    seen = g;
                    snap = s;
                }
                () = tokio::time::sleep_until(next) => changed = false,
            }
        }
    }

    /// One pass: the desired state from `cache`, applied to the kernel; this node's VTEP MAC
    /// published when it changed. `problems` are logged when they differ from the last
    /// pass's.
    async fn reconcile(&self, snap: &Snapshot, problems: &mut Vec<String>) -> Result<(), String> {
        let t0 = Instant::now();
        let me = &self.cfg.node_name;
        let (members, mut now) = members(snap, me);
        let mut failed = None;
        let mut peers = 0;
        if let Some(o) = self.cfg.overlay.clone() {
            let own = own_subnets(snap, me, &self.cfg.pod_cidrs);
            let ms = members.clone();
            match self
                .kernel
                .run(move |h| overlay_apply(h, &o, &own, Some(&ms)))
                .await
                .and_then(|r| r)
            {
                Ok(done) => {
                    peers = done.peers;
                    now.extend(done.problems);
                    let r = &done.report;
                    if !r.is_noop() {
                        log::info!(
                            "overlay peers: added {:?}, changed {:?}, removed {:?} ({} programmed)",
                            r.added,
                            r.updated,
                            r.removed,
                            done.peers
                        );
                    }
                    self.publish_mac(done.mac).await;
                }
                Err(e) => failed = Some(format!("overlay: {e}")),
            }
        }
        let mut routes = 0;
        if self.cfg.kubenet_routes {
            let (want, p) = kubenet_routes(&members);
            now.extend(p);
            match self
                .kernel
                .run(move |h| routes_apply(h, &want))
                .await
                .and_then(|r| r)
            {
                Ok(done) => {
                    routes = done.routes;
                    now.extend(done.problems);
                    if !done.added.is_empty() || !done.removed.is_empty() {
                        log::info!(
                            "kubenet routes: added {:?}, removed {:?} ({} in place)",
                            done.added,
                            done.removed,
                            done.routes
                        );
                    }
                }
                Err(e) => failed = Some(format!("kubenet routes: {e}")),
            }
        }
        if now != *problems {
            for p in &now {
                log::warn!("membership: {p}");
            }
            *problems = now;
        }
        self.metrics.membership(
            t0.elapsed().as_secs_f64(),
            failed.is_none(),
            members.len(),
            peers,
            routes,
        );
        failed.map_or(Ok(()), Err)
    }

    /// Publishes the device's MAC in the node's `Node` when it differs from the last one.
    async fn publish_mac(&self, mac: Option<String>) {
        let Some(mac) = mac else { return };
        {
            let mut f = self.facts.lock().unwrap_or_else(|p| p.into_inner());
            if f.vtep_mac.as_deref() == Some(mac.as_str()) {
                return;
            }
            f.vtep_mac = Some(mac);
        }
        if let Err(e) = node::publish(&self.store, &self.cfg, &self.facts).await {
            log::warn!("node {}: publishing the VTEP MAC: {e}", self.cfg.node_name);
            // published with the next change or registration
            self.facts
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .vtep_mac = None;
        }
    }
}

#[cfg(test)]
mod tests;
