//! `cnictl ipam show|check|release`: the pool's use, what looks wrong, and releases an
//! operator asks for.
//!
//! `show` and the store part of `check` read every block (the owner's copies), with this
//! node's own blocks taken from memory (always current). The node part of `check` (leaks,
//! missing addresses) is the answering node's: run it on each node.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::Path;

use ferro_agent_api::ipam::{
    BlockUse, IpamAuditReply, IpamHandle, IpamReclaim, IpamShow, IpamShowReply, Leak, Missing,
    NodeUse, Orphan, PoolUse,
};
use ferro_agent_api::{ApiError, ErrorCode, Response};
use ferro_cluster::{keys, Kind};
use ferro_store::{Compare, Op, Store, StoreError, Txn};
use ipnet::IpNet;

use super::block::size;
use super::leak::{self, Evidence, Facts};
use super::pool::overlap;
use super::state::Status;
use super::stored::{self, StoredBlock};
use super::{status_name, store_error, Ipam};

fn exists(p: &str) -> bool {
    Path::new(p).exists()
}

impl<S: Store + Clone + 'static> Ipam<S> {
    /// Every block from the store, this node's from memory; the nodes with a live lease.
    async fn blocks_and_leases(&self) -> Result<(Vec<BlockUse>, BTreeSet<String>), StoreError> {
        let listing = self.store.list(&stored::blocks_prefix()).await?;
        let alive = stored::alive_nodes(&self.store).await?;
        self.contact_ok();
        let g = self.lock();
        let mut out: BTreeMap<IpNet, BlockUse> = stored::decode_all(&listing.kvs)
            .into_iter()
            .filter(|b| b.node != self.node)
            .map(|b| {
                (
                    b.cidr,
                    BlockUse {
                        cidr: b.cidr,
                        node: b.node.clone(),
                        mode: b.mode(),
                        in_use: b.in_use(),
                        capacity: b
                            .status
                            .as_ref()
                            .map_or_else(|| size(&b.cidr), |s| s.capacity),
                        live: false,
                    },
                )
            })
            .collect();
        for h in g.state.blocks.values().filter(|h| h.status != Status::Lost) {
            out.insert(
                h.block.cidr,
                BlockUse {
                    cidr: h.block.cidr,
                    node: self.node.clone(),
                    mode: h.block.mode,
                    in_use: h.block.used(),
                    capacity: h.block.capacity(),
                    live: true,
                },
            );
        }
        Ok((out.into_values().collect(), alive))
    }

    /// `cnictl ipam show`.
    pub(super) async fn show(&self, req: &IpamShow) -> Result<IpamShowReply, ApiError> {
        let (mut blocks, alive) = self
            .blocks_and_leases()
            .await
            .map_err(|e| store_error("reading the blocks", &e))?;
        let pools = self.lock().state.pools.clone();
        let pool_use = pools
            .iter()
            .map(|p| {
                let inside: Vec<&BlockUse> = blocks
                    .iter()
                    .filter(|b| overlap(&b.cidr, &p.cidr))
                    .collect();
                PoolUse {
                    cidr: p.cidr,
                    block_prefix: p.block_prefix,
                    node_block_prefix: p.node_block_prefix,
                    blocks: inside.len() as u64,
                    claimed_addresses: inside.iter().map(|b| size(&b.cidr)).sum(),
                    in_use: inside.iter().map(|b| b.in_use).sum(),
                    size: size(&p.cidr),
                }
            })
            .collect();
        if let Some(n) = &req.node {
            blocks.retain(|b| &b.node == n);
        }
        let mut nodes: BTreeMap<String, NodeUse> = BTreeMap::new();
        for b in &blocks {
            let n = nodes.entry(b.node.clone()).or_insert_with(|| NodeUse {
                node: b.node.clone(),
                ready: alive.contains(&b.node),
                blocks: 0,
                in_use: 0,
                capacity: 0,
            });
            n.blocks += 1;
            n.in_use += b.in_use;
            n.capacity += b.capacity;
        }
        Ok(IpamShowReply {
            pools: pool_use,
            nodes: nodes.into_values().collect(),
            blocks,
        })
    }

    /// `cnictl ipam check`.
    pub(super) async fn audit(&self) -> Result<IpamAuditReply, ApiError> {
        let attachments = self.node_attachments().await.ok();
        let stored_blocks: Option<Vec<StoredBlock>> =
            match self.store.list(&stored::blocks_prefix()).await {
                Ok(l) => Some(stored::decode_all(&l.kvs)),
                Err(_) => None,
            };
        let alive = stored::alive_nodes(&self.store).await.ok();
        let mut r = IpamAuditReply {
            node: self.node.clone(),
            store_reachable: stored_blocks.is_some() && alive.is_some() && attachments.is_some(),
            ..IpamAuditReply::default()
        };
        let g = self.lock();
        r.allocations = g.state.handles.len() as u64;
        // this node: leaks
        let atts: Option<BTreeSet<IpamHandle>> =
            attachments.as_ref().map(|a| a.keys().cloned().collect());
        let mut seen = g.seen_attachments.clone();
        seen.extend(atts.iter().flatten().cloned());
        let facts = Facts {
            exists: &exists,
            attachments: atts.as_ref(),
            seen: &seen,
            gc_marked: &g.gc_marks,
        };
        for (ip, a) in g.state.allocations() {
            if let Evidence::Gone(why) = leak::evidence(a, &facts) {
                let (for_s, left) =
                    g.suspects
                        .get(&a.handle)
                        .map_or((0, self.cfg.leak_grace.as_secs()), |s| {
                            let d = s.since.elapsed();
                            (d.as_secs(), self.cfg.leak_grace.saturating_sub(d).as_secs())
                        });
                r.leaked.push(Leak {
                    address: ip,
                    handle: a.handle.clone(),
                    pod: a.pod.clone(),
                    evidence: why,
                    for_seconds: for_s,
                    release_in_seconds: left,
                });
            }
        }
        // this node: lost blocks still holding addresses
        for h in g
            .state
            .blocks
            .values()
            .filter(|h| h.status == Status::Lost && !h.block.is_empty())
        {
            let owner = stored_blocks
                .iter()
                .flatten()
                .find(|b| overlap(&b.cidr, &h.block.cidr))
                .map_or_else(
                    || "no node (it is gone from the store)".to_string(),
                    |b| format!("node {} ({})", b.node, b.cidr),
                );
            let held: Vec<String> = h
                .block
                .iter()
                .map(|(ip, a)| format!("{ip} ({})", a.handle))
                .collect();
            r.conflicts.push(format!(
                "block {} ({}) belongs to {owner} in the store, but this node still has {} addresses in it: {}",
                h.block.cidr,
                status_name(h.status),
                held.len(),
                held.join(", ")
            ));
        }
        // this node: attachments without their address
        if let Some(atts) = &attachments {
            for (handle, addrs) in atts {
                for a in addrs {
                    let Ok(net) = a.parse::<IpNet>() else {
                        continue;
                    };
                    let ip = net.addr();
                    if !g.state.pools.iter().any(|p| p.cidr.contains(&ip)) {
                        continue; // another IPAM's address
                    }
                    let held = g.state.handles.get(handle).is_some_and(|v| v.contains(&ip));
                    if !held {
                        let detail = match g.state.alloc_of(ip) {
                            Some(o) => format!("this node gave {ip} to {} instead", o.handle),
                            None => format!("this node holds no allocation of {ip}"),
                        };
                        r.missing.push(Missing {
                            address: ip,
                            handle: handle.clone(),
                            detail,
                        });
                    }
                }
            }
        }
        // the cluster: overlapping blocks, orphans, copies behind
        if let Some(blocks) = &stored_blocks {
            let mut sorted: Vec<&StoredBlock> = blocks.iter().collect();
            sorted.sort_by_key(|b| {
                (
                    b.cidr.addr().is_ipv6(),
                    super::block::to_u128(b.cidr.network()),
                )
            });
            for w in 0..sorted.len() {
                for x in sorted.iter().skip(w + 1) {
                    if x.cidr.addr().is_ipv6() != sorted[w].cidr.addr().is_ipv6()
                        || super::block::to_u128(x.cidr.network())
                            > super::block::to_u128(sorted[w].cidr.broadcast())
                    {
                        break;
                    }
                    r.conflicts.push(format!(
                        "blocks {} (node {}) and {} (node {}) overlap",
                        sorted[w].cidr, sorted[w].node, x.cidr, x.node
                    ));
                }
            }
            if let Some(alive) = &alive {
                for b in blocks
                    .iter()
                    .filter(|b| !alive.contains(&b.node) && b.node != self.node)
                {
                    r.orphaned.push(Orphan {
                        cidr: b.cidr,
                        node: b.node.clone(),
                        in_use: b.in_use(),
                        release_in_seconds: self.gone_for(&b.node).map(|(_, left)| left.as_secs()),
                    });
                }
            }
            let mine: BTreeMap<IpNet, &StoredBlock> = blocks
                .iter()
                .filter(|b| b.node == self.node)
                .map(|b| (b.cidr, b))
                .collect();
            for h in g.state.blocks.values().filter(|h| h.status != Status::Lost) {
                let copy: BTreeSet<(IpAddr, &IpamHandle)> = mine
                    .get(&h.block.cidr)
                    .and_then(|b| b.status.as_ref())
                    .map(|s| {
                        s.allocations
                            .iter()
                            .map(|a| (a.address, &a.alloc.handle))
                            .collect()
                    })
                    .unwrap_or_default();
                r.unsynced += h
                    .block
                    .iter()
                    .filter(|(ip, a)| !copy.contains(&(*ip, &a.handle)))
                    .count() as u64;
            }
        } else {
            r.unsynced = g
                .state
                .blocks
                .values()
                .filter(|h| h.dirty())
                .map(|h| h.block.used())
                .sum();
        }
        Ok(r)
    }

    /// `cnictl ipam release`.
    pub(super) async fn reclaim(&self, req: &IpamReclaim) -> Result<Response, ApiError> {
        if let Some(node) = &req.node {
            return self.reclaim_node(node).await;
        }
        if req.addresses.is_empty() && req.handles.is_empty() {
            return Err(ApiError::new(
                ErrorCode::BadRequest,
                "nothing to release: name addresses, attachments or a node",
            ));
        }
        let atts = self.node_attachments().await.ok();
        let live_check = |a: &super::block::Alloc, g: &super::Inner| -> Option<String> {
            let set: Option<BTreeSet<IpamHandle>> =
                atts.as_ref().map(|m| m.keys().cloned().collect());
            let facts = Facts {
                exists: &exists,
                attachments: set.as_ref(),
                seen: &g.seen_attachments,
                gc_marked: &g.gc_marks,
            };
            match leak::evidence(a, &facts) {
                Evidence::Live(why) => Some(why),
                _ => None,
            }
        };
        // Check everything first: nothing is released unless all may be.
        let mut plan: Vec<(IpamHandle, Vec<IpAddr>)> = Vec::new();
        let mut elsewhere: Vec<IpAddr> = Vec::new();
        {
            let g = self.lock();
            for h in &req.handles {
                let Some(ips) = g.state.handles.get(h) else {
                    return Err(ApiError::new(
                        ErrorCode::NotFound,
                        format!("{h} holds no address on node {}", self.node),
                    ));
                };
                plan.push((h.clone(), ips.clone()));
            }
            for ip in &req.addresses {
                match g.state.alloc_of(*ip) {
                    Some(a) => plan.push((a.handle.clone(), vec![*ip])),
                    None if g.state.block_of(*ip).is_some() => {
                        return Err(ApiError::new(
                            ErrorCode::NotFound,
                            format!("{ip} is free (block of node {})", self.node),
                        ))
                    }
                    None => elsewhere.push(*ip),
                }
            }
            if !req.force {
                for (h, ips) in &plan {
                    let a = ips.first().and_then(|ip| g.state.alloc_of(*ip));
                    if let Some(why) = a.and_then(|a| live_check(a, &g)) {
                        let pod = a
                            .and_then(|a| a.pod.as_ref())
                            .map_or_else(String::new, |p| format!("pod {p}, "));
                        return Err(ApiError::new(
                            ErrorCode::Forbidden,
                            format!(
                                "{} belongs to a live pod ({pod}{h}: {why}): not released (--force releases it anyway)",
                                ips.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
                            ),
                        ));
                    }
                }
            }
        }
        let mut released = Vec::new();
        for ip in elsewhere {
            released.push(self.release_foreign(ip).await?);
        }
        for (h, ips) in plan {
            let mut g = self.lock();
            g.forgive(&h);
            if let Some((rec, gone)) = g.state.release(&h, &ips) {
                if let Err(e) = g.journal(&rec) {
                    log::error!("ipam: journal: {e}");
                }
                log::warn!("ipam: operator released {gone:?} of {h}");
                self.metrics.ipam.released("operator", gone.len());
                released.extend(gone);
            }
        }
        self.wake.notify_one();
        self.update_gauges();
        Ok(Response::IpamReleased {
            addresses: released,
            blocks: Vec::new(),
        })
    }

    /// An address in another node's block: only when that node's lease is gone, from the
    /// store's copy.
    async fn release_foreign(&self, ip: IpAddr) -> Result<IpAddr, ApiError> {
        let e = |err: StoreError| store_error("reading the blocks", &err);
        let listing = self.store.list(&stored::blocks_prefix()).await.map_err(e)?;
        let Some((kv, b)) = listing
            .kvs
            .iter()
            .filter_map(|kv| Some((kv, stored::decode(kv)?)))
            .find(|(_, b)| b.cidr.contains(&ip))
        else {
            return Err(ApiError::new(
                ErrorCode::NotFound,
                format!("{ip} is in no block of the pool"),
            ));
        };
        if self
            .store
            .get(&keys::node_lease(&b.node))
            .await
            .map_err(e)?
            .is_some()
        {
            return Err(ApiError::new(
                ErrorCode::Forbidden,
                format!(
                    "{ip} is in block {} of node {}, which is alive: run cnictl ipam release on that node",
                    b.cidr, b.node
                ),
            ));
        }
        let mut value: serde_json::Value = serde_json::from_slice(&kv.value)
            .map_err(|x| ApiError::new(ErrorCode::Internal, x.to_string()))?;
        let list = value["status"]["allocations"].as_array_mut();
        let Some(list) = list else {
            return Err(ApiError::new(
                ErrorCode::NotFound,
                format!("{ip} is free (block {} of node {})", b.cidr, b.node),
            ));
        };
        let before = list.len();
        list.retain(|a| a["address"].as_str() != Some(&ip.to_string()));
        if list.len() == before {
            return Err(ApiError::new(
                ErrorCode::NotFound,
                format!("{ip} is free (block {} of node {})", b.cidr, b.node),
            ));
        }
        let n = list.len();
        value["status"]["inUse"] = n.into();
        let txn = Txn::new()
            .when(Compare::unchanged(&kv.key, kv.mod_revision))
            .when(Compare::absent(keys::node_lease(&b.node)))
            .then(Op::put(&kv.key, value.to_string()));
        let ok = self.store.txn(txn).await.map_err(e)?.succeeded;
        if !ok {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                format!("block {} changed meanwhile: try again", b.cidr),
            ));
        }
        log::warn!(
            "ipam: operator released {ip} from block {} of node {} (gone)",
            b.cidr,
            b.node
        );
        self.metrics.ipam.released("operator", 1);
        Ok(ip)
    }

    /// Every block of `node`, whose lease must be gone, back to the pool now.
    async fn reclaim_node(&self, node: &str) -> Result<Response, ApiError> {
        if node == self.node {
            return Err(ApiError::new(
                ErrorCode::Forbidden,
                format!(
                    "node {node} is this node, and alive: its empty blocks go back by themselves"
                ),
            ));
        }
        let e = |err: StoreError| store_error("reading the store", &err);
        if self
            .store
            .get(&keys::node_lease(node))
            .await
            .map_err(e)?
            .is_some()
        {
            return Err(ApiError::new(
                ErrorCode::Forbidden,
                format!("node {node} holds a live lease: its blocks stay (stop its agent first, or wait for its lease to expire)"),
            ));
        }
        let node_rev = self
            .store
            .get(&keys::object(Kind::Node, None, node))
            .await
            .map_err(e)?
            .map_or(0, |kv| kv.mod_revision);
        let listing = self.store.list(&stored::blocks_prefix()).await.map_err(e)?;
        let mut blocks = Vec::new();
        for b in stored::decode_all(&listing.kvs)
            .into_iter()
            .filter(|b| b.node == node)
        {
            if super::claim::reclaim_block(&self.store, &b, node_rev)
                .await
                .map_err(e)?
            {
                log::warn!(
                    "ipam: operator returned block {} of node {node} to the pool ({} addresses were listed in use)",
                    b.cidr,
                    b.in_use()
                );
                self.metrics.ipam.block_released("operator");
                blocks.push(b.cidr);
            }
        }
        if blocks.is_empty() {
            return Err(ApiError::new(
                ErrorCode::NotFound,
                format!("node {node} holds no block"),
            ));
        }
        Ok(Response::IpamReleased {
            addresses: Vec::new(),
            blocks,
        })
    }
}
