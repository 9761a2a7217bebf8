//! The load-balancer announcer: which node answers for each load-balancer address on the
//! VNet, chosen through the store (see `ferro_services::announce` for the records and the
//! ranking).
//!
//! Every pass (each snapshot, and every [`STEP`] while an address has no holder) the loop
//! looks at each load-balancer address this node may announce:
//! - held by this node: the address is on the link that faces it (the link whose subnet
//!   holds it, else the default route's link) as a /32 or /128, so the kernel answers ARP
//!   and neighbour solicitations; when it is new here, gratuitous ARPs (unsolicited
//!   advertisements for IPv6) go out at once and then every 1.1 s for 5 s, so the VNet's
//!   neighbour caches move to this node;
//! - held by another node: the address is not here;
//! - held by nobody: the candidate of rank `r` claims it after `r` × [`STEP`] (create-if-absent,
//!   attached to the node lease; one claim wins).
//!
//! A node that is no longer a candidate (a Local policy and no endpoint left here) deletes its
//! record, so another takes over at once. When the node dies its lease expires, the records
//! go with it, and the next candidate claims them: the address moves within the lease TTL and
//! one [`STEP`]. At start, addresses of the load-balancer pools found on the node's links that
//! this node does not hold are removed (left by a crash); at stop the agent removes those it
//! holds ([`release_all`]) and revokes its lease.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferro_cluster::Kind;
use ferro_net::rtnl::AddrOpts;
use ferro_net::Kernel;
use ferro_services::announce::{self, Announcement};
use ferro_store::{Compare, Op, Revision, Store, Txn};
use ipnet::IpNet;

use crate::cache::{Cache, Snapshot};
use crate::metrics::Metrics;
use crate::node::CurrentLease;
use crate::services::{settings, topology};

/// The delay per rank before a candidate claims an address nobody holds.
pub const STEP: Duration = Duration::from_millis(500);
/// Gratuitous announcements after taking an address: how many, how far apart.
const BURST: (u32, Duration) = (5, Duration::from_millis(1100));

/// The load-balancer addresses configured on this node: address -> link index.
pub type LocalAddresses = Arc<Mutex<BTreeMap<IpAddr, u32>>>;

fn host(ip: IpAddr) -> IpNet {
    IpNet::from(ip)
}

/// Adds `ip` to the link facing it; its index and MAC.
fn add_address(ip: IpAddr) -> Result<(u32, [u8; 6]), String> {
    let k = Kernel::new().map_err(|e| e.to_string())?;
    let r = k.connect(None).map_err(|e| e.to_string())?;
    let addrs = r.addrs(None).map_err(|e| e.to_string())?;
    let index = match addrs
        .iter()
        .find(|a| a.addr.prefix_len() < a.addr.max_prefix_len() && a.addr.contains(&ip))
    {
        Some(a) => a.index,
        None => {
            r.default_route_link_of(ip.is_ipv6())
                .map_err(|e| e.to_string())?
                .ok_or_else(|| {
                    format!("no link faces {ip} (no subnet holds it, no default route)")
                })?
                .index
        }
    };
    let link = r
        .link_by_index(index)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("link #{index} vanished"))?;
    let mac: [u8; 6] = link
        .mac
        .as_deref()
        .and_then(|m| m.try_into().ok())
        .ok_or_else(|| format!("link {} has no Ethernet address", link.name))?;
    r.addr_add(
        index,
        host(ip),
        AddrOpts {
            nodad: true,
            noprefixroute: false,
        },
    )
    .map_err(|e| e.to_string())?;
    Ok((index, mac))
}

fn del_address(ip: IpAddr, index: u32) -> Result<(), String> {
    let k = Kernel::new().map_err(|e| e.to_string())?;
    let r = k.connect(None).map_err(|e| e.to_string())?;
    r.addr_del(index, host(ip)).map_err(|e| e.to_string())
}

/// Host addresses inside `pools` found on the node's links.
fn pool_addresses(pools: &[IpNet]) -> Result<Vec<(IpAddr, u32)>, String> {
    let k = Kernel::new().map_err(|e| e.to_string())?;
    let r = k.connect(None).map_err(|e| e.to_string())?;
    Ok(r.addrs(None)
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|a| a.addr.prefix_len() == a.addr.max_prefix_len())
        .filter(|a| pools.iter().any(|p| p.contains(&a.addr.addr())))
        .map(|a| (a.addr.addr(), a.index))
        .collect())
}

/// Removes every load-balancer address this node configured (the agent stopping).
pub fn release_all(local: &LocalAddresses) {
    let all: Vec<(IpAddr, u32)> = local
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|(a, i)| (*a, *i))
        .collect();
    for (ip, index) in all {
        match del_address(ip, index) {
            Ok(()) => log::info!("load balancer: {ip} no longer announced (stopping)"),
            Err(e) => log::warn!("load balancer: removing {ip}: {e}"),
        }
    }
}

/// The nodes that may announce each load-balancer address, in order.
type Candidates = BTreeMap<IpAddr, Vec<String>>;

struct Announcer<S> {
    store: S,
    node: String,
    lease: CurrentLease,
    metrics: Arc<Metrics>,
    local: LocalAddresses,
    /// Claims this node won, by address, until the cache has caught up with them.
    claimed: BTreeMap<IpAddr, Revision>,
    /// Since when each address has had no holder.
    absent_since: BTreeMap<IpAddr, Instant>,
    /// The candidates per address, and the stamp of the snapshot they came from (a pass
    /// over a snapshot that changed no Service, Pod, Attachment or lease reuses them).
    candidates: Option<(Vec<u64>, Candidates)>,
}

impl<S: Store> Announcer<S> {
    fn is_local(&self, ip: IpAddr) -> bool {
        self.local
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&ip)
    }

    async fn ensure_local(&self, ip: IpAddr) {
        if self.is_local(ip) {
            return;
        }
        match tokio::task::spawn_blocking(move || add_address(ip)).await {
            Ok(Ok((index, mac))) => {
                self.local
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(ip, index);
                self.metrics.announcement("claimed");
                log::info!("load balancer: announcing {ip} (link #{index})");
                tokio::spawn(burst(ip, index, mac, self.local.clone()));
            }
            Ok(Err(e)) => log::warn!("load balancer: adding {ip}: {e}"),
            Err(e) => log::warn!("load balancer: adding {ip}: {e}"),
        }
    }

    async fn ensure_gone(&self, ip: IpAddr, why: &str) {
        let index = self
            .local
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&ip)
            .copied();
        let Some(index) = index else { return };
        match tokio::task::spawn_blocking(move || del_address(ip, index)).await {
            Ok(Ok(())) => {
                self.local
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&ip);
                self.metrics.announcement("released");
                log::info!("load balancer: {ip} no longer announced here ({why})");
            }
            Ok(Err(e)) => log::warn!("load balancer: removing {ip}: {e}"),
            Err(e) => log::warn!("load balancer: removing {ip}: {e}"),
        }
    }

    async fn claim(&mut self, ip: IpAddr) -> bool {
        let lease = *self.lease.lock().unwrap_or_else(|p| p.into_inner());
        let Some(lease) = lease else { return false };
        let key = announce::key(ip);
        let value = serde_json::to_vec(&Announcement {
            node: self.node.clone(),
            address: ip.to_string(),
        })
        .unwrap_or_default();
        let txn = Txn::new()
            .when(Compare::absent(&key))
            .then(Op::put_leased(&key, value, lease));
        match self.store.txn(txn).await {
            Ok(r) if r.succeeded => {
                self.claimed.insert(ip, r.revision);
                true
            }
            Ok(_) => false,
            Err(e) => {
                log::warn!("load balancer: claiming {ip}: {e}");
                false
            }
        }
    }

    async fn unclaim(&mut self, ip: IpAddr, revision: Revision) {
        let key = announce::key(ip);
        let txn = Txn::new()
            .when(Compare::unchanged(&key, revision))
            .then(Op::delete(&key));
        if let Err(e) = self.store.txn(txn).await {
            log::warn!("load balancer: releasing {ip}: {e}");
        }
        self.claimed.remove(&ip);
    }

    /// One pass; whether an address waits for a delayed claim.
    async fn pass(&mut self, snap: &Snapshot) -> bool {
        let stamp = snap.stamp(&[Kind::Service, Kind::Pod, Kind::Attachment]);
        let candidates = match self.candidates.take() {
            Some((s, c)) if s == stamp => c,
            _ => {
                // Only services with load-balancer addresses have candidates.
                let mut t = topology(snap);
                t.services
                    .retain(|s| !ferro_services::model::lb_addresses(s).is_empty());
                let ports = if t.services.is_empty() {
                    Vec::new()
                } else {
                    ferro_services::model::service_ports(&t)
                };
                announce::candidates(&ports, &t.live_nodes)
            }
        };
        let now = Instant::now();
        let mut waiting = false;
        // Claims the cache has seen are its to report from now on.
        self.claimed.retain(|_, rev| *rev > snap.revision());
        for (ip, nodes) in &candidates {
            let ip = *ip;
            let record = snap.announcement(ip);
            let holder = if self.claimed.contains_key(&ip) {
                Some(self.node.as_str())
            } else {
                record.map(|r| r.announcement.node.as_str())
            };
            let rank = nodes.iter().position(|n| *n == self.node);
            match holder {
                Some(h) if h == self.node => {
                    self.absent_since.remove(&ip);
                    if rank.is_none() {
                        if let Some(r) = record {
                            self.unclaim(ip, r.revision).await;
                        }
                        self.ensure_gone(ip, "no longer a candidate").await;
                    } else {
                        self.ensure_local(ip).await;
                    }
                }
                Some(other) => {
                    self.absent_since.remove(&ip);
                    let why = format!("{other} announces it");
                    self.ensure_gone(ip, &why).await;
                }
                None => {
                    self.ensure_gone(ip, "nobody holds it").await;
                    let since = *self.absent_since.entry(ip).or_insert(now);
                    if let Some(r) = rank {
                        if now.duration_since(since) >= STEP * u32::try_from(r).unwrap_or(u32::MAX)
                        {
                            if self.claim(ip).await {
                                self.absent_since.remove(&ip);
                                self.ensure_local(ip).await;
                            }
                        } else {
                            waiting = true;
                        }
                    }
                }
            }
        }
        // Records of addresses no service has any more, and addresses no longer wanted here.
        let mine: Vec<(IpAddr, Revision)> = snap
            .announcements()
            .filter(|(ip, r)| r.announcement.node == self.node && !candidates.contains_key(*ip))
            .map(|(ip, r)| (*ip, r.revision))
            .collect();
        for (ip, rev) in mine {
            self.unclaim(ip, rev).await;
        }
        let configured: Vec<IpAddr> = self
            .local
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .copied()
            .collect();
        for ip in configured {
            if !candidates.contains_key(&ip) {
                self.ensure_gone(ip, "no service has it").await;
            }
        }
        self.absent_since
            .retain(|ip, _| candidates.contains_key(ip));
        self.candidates = Some((stamp, candidates));
        waiting
    }
}

/// Gratuitous announcements of `ip` while it stays here.
async fn burst(ip: IpAddr, index: u32, mac: [u8; 6], local: LocalAddresses) {
    for i in 0..BURST.0 {
        if i > 0 {
            tokio::time::sleep(BURST.1).await;
        }
        let here = local.lock().unwrap_or_else(|p| p.into_inner()).get(&ip) == Some(&index);
        if !here {
            return;
        }
        let r = tokio::task::spawn_blocking(move || ferro_net::announce::announce(index, mac, ip))
            .await;
        if let Ok(Err(e)) = r {
            log::warn!("load balancer: {e}");
        }
    }
}

/// Runs the announcer until the cache stops.
pub async fn run<S: Store>(
    store: S,
    mut cache: Cache,
    node: String,
    lease: CurrentLease,
    metrics: Arc<Metrics>,
    local: LocalAddresses,
) {
    let Some(mut snap) = cache.ready().await else {
        return;
    };
    // Addresses of the pools left on the links by an earlier run: only those this node
    // still holds stay (the first pass adds them back to the map).
    if let Some(st) = settings(&snap) {
        let pools: Vec<IpNet> = st
            .load_balancer_pools
            .iter()
            .flat_map(|(_, c)| c.iter().copied())
            .collect();
        let held: BTreeSet<IpAddr> = snap
            .announcements()
            .filter(|(_, r)| r.announcement.node == node)
            .map(|(ip, _)| *ip)
            .collect();
        if let Ok(Ok(found)) = tokio::task::spawn_blocking(move || pool_addresses(&pools)).await {
            for (ip, index) in found {
                if !held.contains(&ip) {
                    match tokio::task::spawn_blocking(move || del_address(ip, index)).await {
                        Ok(Ok(())) => log::info!("load balancer: removed stale {ip}"),
                        _ => log::warn!("load balancer: could not remove stale {ip}"),
                    }
                }
            }
        }
    }
    let mut a = Announcer {
        store,
        node,
        lease,
        metrics,
        local,
        claimed: BTreeMap::new(),
        absent_since: BTreeMap::new(),
        candidates: None,
    };
    loop {
        let waiting = a.pass(&snap).await;
        let tick = if waiting || !a.claimed.is_empty() {
            STEP / 2
        } else {
            Duration::from_secs(5)
        };
        tokio::select! {
            s = cache.changed() => match s {
                Some(s) => snap = s,
                None => return,
            },
            _ = tokio::time::sleep(tick) => snap = cache.snapshot(),
        }
    }
}
