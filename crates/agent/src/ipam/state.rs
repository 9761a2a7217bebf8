//! The node's IPAM state, pure: the blocks it holds, who holds each address, and the
//! journal records that rebuild it.
//!
//! Every change is a [`Record`] applied to a [`NodeState`], and the same record is what the
//! journal keeps, so replaying the journal rebuilds exactly the state the agent answered
//! from. Besides the allocator data, each held block carries its bookkeeping towards the
//! store (the revision the agent last saw, whether its copy there is behind) and whether it
//! may still hand out addresses.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ferro_agent_api::ipam::{Family, IpamHandle, IpamIp, IpamMode, PodRef};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::block::{Alloc, Block};
use super::pool::Pool;

/// One address and its holder, as the journal's snapshot and the store's copy list them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AddrRecord {
    /// The address.
    pub address: IpAddr,
    /// Its holder.
    #[serde(flatten)]
    pub alloc: Alloc,
}

/// A block as the snapshot keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockRecord {
    /// The block.
    pub cidr: IpNet,
    /// Its mode.
    pub mode: IpamMode,
    /// The next address the round robin tries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<IpAddr>,
    /// Its allocations.
    #[serde(default)]
    pub allocations: Vec<AddrRecord>,
}

/// Everything, in one record (the journal starts with one after each compaction).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    /// The last sequence number used.
    pub seq: u64,
    /// The pools, as last read from the ClusterNetwork.
    #[serde(default)]
    pub pools: Vec<Pool>,
    /// The blocks held.
    #[serde(default)]
    pub blocks: Vec<BlockRecord>,
}

/// One journal record: a change of the node's IPAM state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "camelCase")]
pub enum Record {
    /// The whole state.
    Snapshot(Snapshot),
    /// The pools changed (the ClusterNetwork was read).
    Pools {
        /// The pools.
        pools: Vec<Pool>,
    },
    /// A block was claimed (the store transaction succeeded) or adopted.
    Claim {
        /// The block.
        cidr: IpNet,
        /// Its mode.
        mode: IpamMode,
    },
    /// Addresses were handed out.
    Alloc {
        /// The addresses, one per family.
        ips: Vec<IpAddr>,
        /// Their holder.
        #[serde(flatten)]
        alloc: Alloc,
    },
    /// Addresses were given back.
    Release {
        /// Sequence number.
        seq: u64,
        /// The attachment.
        #[serde(flatten)]
        handle: IpamHandle,
        /// The addresses.
        ips: Vec<IpAddr>,
    },
    /// A block is no longer held (released to the pool, or taken by another node).
    Drop {
        /// The block.
        cidr: IpNet,
    },
}

/// Whether a held block may hand out addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Yes.
    Active,
    /// It is being given back to the pool.
    Releasing,
    /// The store says another node holds it (or it vanished and could not be claimed back):
    /// its addresses are kept until their pods go, nothing new comes from it.
    Lost,
}

/// A block the node holds, with its bookkeeping towards the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// The allocator.
    pub block: Block,
    /// Whether it may hand out addresses.
    pub status: Status,
    /// The store revision of its key as the agent last wrote or read it (0: not known to be
    /// in the store).
    pub rev: i64,
    /// Changes made to it (a counter).
    pub changes: u64,
    /// The value of `changes` the store's copy reflects.
    pub synced: u64,
}

impl Held {
    fn new(block: Block) -> Held {
        Held {
            block,
            status: Status::Active,
            rev: 0,
            changes: 1,
            synced: 0,
        }
    }

    /// Whether the store's copy is behind.
    pub fn dirty(&self) -> bool {
        self.changes != self.synced
    }
}

/// Why an allocation cannot be made from the blocks held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shortage {
    /// The pool has no CIDR of this family.
    NoPool(Family),
    /// A block of this family must be claimed first.
    NeedBlock(Family),
    /// The node block of this family is full (node mode keeps one block).
    NodeBlockFull(IpNet, u64),
}

/// The node's IPAM state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeState {
    /// The last sequence number used.
    pub seq: u64,
    /// The pools.
    pub pools: Vec<Pool>,
    /// The blocks held.
    pub blocks: BTreeMap<IpNet, Held>,
    /// Who holds what: each attachment's addresses.
    pub handles: BTreeMap<IpamHandle, Vec<IpAddr>>,
}

impl NodeState {
    /// The pool of `family`.
    pub fn pool(&self, family: Family) -> Option<&Pool> {
        self.pools.iter().find(|p| p.family() == family)
    }

    /// The pool holding `cidr`.
    fn pool_of(&self, cidr: &IpNet) -> Option<IpNet> {
        self.pools
            .iter()
            .map(|p| p.cidr)
            .find(|p| p.contains(&cidr.network()))
    }

    /// The block holding `ip`.
    pub fn block_of(&self, ip: IpAddr) -> Option<&Held> {
        // A node holds a handful of blocks: a scan is cheaper than an index.
        self.blocks.values().find(|h| h.block.cidr.contains(&ip))
    }

    fn block_of_mut(&mut self, ip: IpAddr) -> Option<&mut Held> {
        let cidr = self.block_of(ip)?.block.cidr;
        self.blocks.get_mut(&cidr)
    }

    /// The next sequence number.
    pub fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Applies `r` (replay, or a change just decided). Problems (an address outside every
    /// held block) are returned as text and leave the rest applied.
    pub fn apply(&mut self, r: &Record) -> Vec<String> {
        let mut problems = Vec::new();
        match r {
            Record::Snapshot(s) => {
                *self = NodeState::default();
                self.seq = s.seq;
                self.pools = s.pools.clone();
                for b in &s.blocks {
                    let pool = self.pool_of(&b.cidr);
                    let mut block = Block::new(b.cidr, b.mode, pool);
                    if let Some(o) = b.next.and_then(|n| block.ordinal(n)) {
                        block.cursor = o;
                    }
                    self.blocks.insert(block.cidr, Held::new(block));
                    for a in &b.allocations {
                        self.insert(a.address, a.alloc.clone(), &mut problems);
                    }
                }
            }
            Record::Pools { pools } => self.pools = pools.clone(),
            Record::Claim { cidr, mode } => {
                if !self.blocks.contains_key(cidr) {
                    let pool = self.pool_of(cidr);
                    self.blocks
                        .insert(*cidr, Held::new(Block::new(*cidr, *mode, pool)));
                }
            }
            Record::Alloc { ips, alloc } => {
                self.seq = self.seq.max(alloc.seq);
                for ip in ips {
                    self.insert(*ip, alloc.clone(), &mut problems);
                }
            }
            Record::Release { seq, handle, ips } => {
                self.seq = self.seq.max(*seq);
                self.remove(handle, ips);
            }
            Record::Drop { cidr } => {
                if let Some(h) = self.blocks.remove(cidr) {
                    for (ip, a) in h.block.iter() {
                        if let Some(v) = self.handles.get_mut(&a.handle) {
                            v.retain(|x| *x != ip);
                            if v.is_empty() {
                                self.handles.remove(&a.handle);
                            }
                        }
                    }
                }
            }
        }
        problems
    }

    /// Records `alloc` at `ip` in its block and the handle index.
    fn insert(&mut self, ip: IpAddr, alloc: Alloc, problems: &mut Vec<String>) {
        let handle = alloc.handle.clone();
        match self.block_of_mut(ip) {
            None => problems.push(format!("{ip} ({handle}): in no block held")),
            Some(h) => {
                if h.block.insert(ip, alloc) {
                    h.changes += 1;
                    let v = self.handles.entry(handle).or_default();
                    if !v.contains(&ip) {
                        v.push(ip);
                    }
                } else {
                    problems.push(format!(
                        "{ip} ({handle}): reserved or held by another attachment"
                    ));
                }
            }
        }
    }

    /// Frees `ips` of `handle` (all of them when `ips` is empty).
    fn remove(&mut self, handle: &IpamHandle, ips: &[IpAddr]) -> Vec<IpAddr> {
        let held = self.handles.get(handle).cloned().unwrap_or_default();
        let gone: Vec<IpAddr> = if ips.is_empty() {
            held
        } else {
            held.into_iter().filter(|ip| ips.contains(ip)).collect()
        };
        for ip in &gone {
            if let Some(h) = self.block_of_mut(*ip) {
                if h.block.release(*ip, handle).is_some() {
                    h.changes += 1;
                }
            }
        }
        if let Some(v) = self.handles.get_mut(handle) {
            v.retain(|ip| !gone.contains(ip));
            if v.is_empty() {
                self.handles.remove(handle);
            }
        }
        gone
    }

    /// The whole state as one record.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            seq: self.seq,
            pools: self.pools.clone(),
            blocks: self
                .blocks
                .values()
                .map(|h| block_record(&h.block))
                .collect(),
        }
    }

    /// The answer for an attachment that already holds addresses.
    pub fn existing(&self, handle: &IpamHandle) -> Option<Vec<IpamIp>> {
        let ips = self.handles.get(handle)?;
        Some(
            ips.iter()
                .filter_map(|ip| {
                    let h = self.block_of(*ip)?;
                    Some(IpamIp {
                        address: h.block.pod_address(*ip),
                        gateway: h.block.gateway(),
                        block: h.block.cidr,
                    })
                })
                .collect(),
        )
    }

    /// The block of `family` and `mode` an allocation would use now: node mode, the node
    /// block; pod mode, the fullest block with room (so that the others drain and can go
    /// back to the pool). Only active blocks inside the current pool qualify.
    pub fn pick(&self, family: Family, mode: IpamMode) -> Result<IpNet, Shortage> {
        let pool = self.pool(family).ok_or(Shortage::NoPool(family))?;
        let usable = self.blocks.values().filter(|h| {
            h.status == Status::Active
                && h.block.mode == mode
                && h.block.family() == family
                && pool.cidr.contains(&h.block.cidr.network())
        });
        match mode {
            IpamMode::Node => match usable.min_by_key(|h| h.block.cidr) {
                None => Err(Shortage::NeedBlock(family)),
                Some(h) if h.block.is_full() => {
                    Err(Shortage::NodeBlockFull(h.block.cidr, h.block.used()))
                }
                Some(h) => Ok(h.block.cidr),
            },
            IpamMode::Pod => usable
                .filter(|h| !h.block.is_full())
                .max_by_key(|h| (h.block.used(), std::cmp::Reverse(h.block.cidr)))
                .map(|h| h.block.cidr)
                .ok_or(Shortage::NeedBlock(family)),
        }
    }

    /// Hands out one address per family from the blocks [`NodeState::pick`] chose, all or
    /// nothing; the record to journal and the answer.
    pub fn allocate(
        &mut self,
        families: &[Family],
        mode: IpamMode,
        mut alloc: Alloc,
    ) -> Result<(Record, Vec<IpamIp>), Shortage> {
        let mut chosen = Vec::new();
        for f in families {
            chosen.push(self.pick(*f, mode)?);
        }
        alloc.seq = self.next_seq();
        let mut ips = Vec::new();
        let mut answer = Vec::new();
        for cidr in chosen {
            let Some(h) = self.blocks.get_mut(&cidr) else {
                continue;
            };
            // pick() said there is room
            if let Some(ip) = h.block.allocate(alloc.clone()) {
                h.changes += 1;
                ips.push(ip);
                answer.push(IpamIp {
                    address: h.block.pod_address(ip),
                    gateway: h.block.gateway(),
                    block: cidr,
                });
            }
        }
        self.handles.insert(alloc.handle.clone(), ips.clone());
        Ok((Record::Alloc { ips, alloc }, answer))
    }

    /// Frees the attachment's addresses (`only`: just these); the record to journal (none
    /// when it held nothing) and what was freed.
    pub fn release(
        &mut self,
        handle: &IpamHandle,
        only: &[IpAddr],
    ) -> Option<(Record, Vec<IpAddr>)> {
        self.handles.get(handle)?;
        let gone = self.remove(handle, only);
        if gone.is_empty() {
            return None;
        }
        let seq = self.next_seq();
        Some((
            Record::Release {
                seq,
                handle: handle.clone(),
                ips: gone.clone(),
            },
            gone,
        ))
    }

    /// The allocation of `ip`.
    pub fn alloc_of(&self, ip: IpAddr) -> Option<&Alloc> {
        self.block_of(ip)?.block.get(ip)
    }

    /// Every allocation: address and holder.
    pub fn allocations(&self) -> impl Iterator<Item = (IpAddr, &Alloc)> {
        self.blocks.values().flat_map(|h| h.block.iter())
    }

    /// Empty pod-mode blocks that may go back to the pool: all but one per family (the node
    /// keeps one), never a node block.
    pub fn releasable_empty(&self) -> Vec<IpNet> {
        let mut out = Vec::new();
        for f in [Family::Ipv4, Family::Ipv6] {
            let pod: Vec<&Held> = self
                .blocks
                .values()
                .filter(|h| {
                    h.block.mode == IpamMode::Pod
                        && h.block.family() == f
                        && h.status == Status::Active
                })
                .collect();
            let in_pool = |h: &&Held| {
                self.pool(f)
                    .is_some_and(|p| p.cidr.contains(&h.block.cidr.network()))
            };
            let empty: Vec<&&Held> = pod.iter().filter(|h| h.block.is_empty()).collect();
            // Blocks outside the pool (it changed) all go when empty; inside it, keep one.
            let keep_one = !pod.iter().any(|h| !h.block.is_empty() && in_pool(h));
            let mut kept = false;
            for h in empty {
                if keep_one && !kept && in_pool(h) {
                    kept = true;
                    continue;
                }
                out.push(h.block.cidr);
            }
        }
        out
    }
}

/// The snapshot form of a block.
pub fn block_record(b: &Block) -> BlockRecord {
    BlockRecord {
        cidr: b.cidr,
        mode: b.mode,
        next: Some(b.address(b.cursor)),
        allocations: b
            .iter()
            .map(|(address, a)| AddrRecord {
                address,
                alloc: a.clone(),
            })
            .collect(),
    }
}

/// A pod reference from `K8S_POD_*` values.
pub fn pod_ref(ns: Option<&str>, name: Option<&str>) -> Option<PodRef> {
    Some(PodRef {
        namespace: ns?.to_string(),
        name: name?.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn handle(id: &str) -> IpamHandle {
        IpamHandle {
            container_id: id.into(),
            ifname: "eth0".into(),
        }
    }

    fn alloc(id: &str) -> Alloc {
        Alloc {
            seq: 0,
            ..crate::ipam::block::test_alloc(id)
        }
    }

    fn dual() -> NodeState {
        let mut s = NodeState::default();
        s.apply(&Record::Pools {
            pools: vec![
                Pool {
                    cidr: net("10.244.0.0/16"),
                    block_prefix: 26,
                    node_block_prefix: 24,
                },
                Pool {
                    cidr: net("fd00:244::/56"),
                    block_prefix: 122,
                    node_block_prefix: 64,
                },
            ],
        });
        s
    }

    #[test]
    fn dual_stack_takes_one_address_per_family_or_none() {
        let mut s = dual();
        let both = [Family::Ipv4, Family::Ipv6];
        assert_eq!(
            s.allocate(&both, IpamMode::Pod, alloc("a")).unwrap_err(),
            Shortage::NeedBlock(Family::Ipv4)
        );
        s.apply(&Record::Claim {
            cidr: net("10.244.4.0/26"),
            mode: IpamMode::Pod,
        });
        assert_eq!(
            s.allocate(&both, IpamMode::Pod, alloc("a")).unwrap_err(),
            Shortage::NeedBlock(Family::Ipv6),
            "nothing taken from the IPv4 block"
        );
        assert!(s.blocks[&net("10.244.4.0/26")].block.is_empty());
        s.apply(&Record::Claim {
            cidr: net("fd00:244::40/122"),
            mode: IpamMode::Pod,
        });
        let (rec, ips) = s.allocate(&both, IpamMode::Pod, alloc("a")).unwrap();
        assert_eq!(ips.len(), 2);
        assert_eq!(ips[0].address.to_string(), "10.244.4.0/32");
        assert_eq!(ips[1].address.to_string(), "fd00:244::40/128");
        assert_eq!(s.existing(&handle("a")).unwrap(), ips);
        // replaying the same records gives the same state
        let mut r = dual();
        for rec in [
            Record::Claim {
                cidr: net("10.244.4.0/26"),
                mode: IpamMode::Pod,
            },
            Record::Claim {
                cidr: net("fd00:244::40/122"),
                mode: IpamMode::Pod,
            },
            rec.clone(),
        ] {
            assert!(r.apply(&rec).is_empty());
        }
        assert_eq!(r.handles, s.handles);
        assert_eq!(r.seq, s.seq);
        let (rel, gone) = s.release(&handle("a"), &[]).unwrap();
        assert_eq!(gone.len(), 2);
        assert!(s.release(&handle("a"), &[]).is_none(), "nothing left");
        r.apply(&rel);
        assert!(r.handles.is_empty() && r.allocations().next().is_none());
        // the journal form
        let line = serde_json::to_string(&rec).unwrap();
        assert!(line.starts_with(r#"{"t":"alloc","ips":["10.244.4.0","fd00:244::40"],"containerID":"a","ifname":"eth0""#), "{line}");
        assert_eq!(serde_json::from_str::<Record>(&line).unwrap(), rec);
    }

    #[test]
    fn node_mode_uses_the_node_block_and_reports_it_full() {
        let mut s = dual();
        s.apply(&Record::Claim {
            cidr: net("10.244.9.0/30"),
            mode: IpamMode::Node,
        });
        let (_, ips) = s
            .allocate(&[Family::Ipv4], IpamMode::Node, alloc("a"))
            .unwrap();
        assert_eq!(ips[0].address.to_string(), "10.244.9.2/30");
        assert_eq!(ips[0].gateway, Some("10.244.9.1".parse().unwrap()));
        assert_eq!(
            s.allocate(&[Family::Ipv4], IpamMode::Node, alloc("b"))
                .unwrap_err(),
            Shortage::NodeBlockFull(net("10.244.9.0/30"), 1)
        );
        assert_eq!(
            s.allocate(&[Family::Ipv4], IpamMode::Pod, alloc("b"))
                .unwrap_err(),
            Shortage::NeedBlock(Family::Ipv4),
            "pod mode never takes from the node block"
        );
        let mut v4only = NodeState::default();
        assert_eq!(
            v4only.allocate(&[Family::Ipv6], IpamMode::Pod, alloc("x")),
            Err(Shortage::NoPool(Family::Ipv6))
        );
    }

    #[test]
    fn pod_mode_packs_the_fullest_block_and_frees_the_others() {
        let mut s = dual();
        for c in ["10.244.1.0/26", "10.244.2.0/26"] {
            s.apply(&Record::Claim {
                cidr: net(c),
                mode: IpamMode::Pod,
            });
        }
        let v4 = [Family::Ipv4];
        let (_, first) = s.allocate(&v4, IpamMode::Pod, alloc("a")).unwrap();
        assert_eq!(first[0].block, net("10.244.1.0/26"));
        let (_, second) = s.allocate(&v4, IpamMode::Pod, alloc("b")).unwrap();
        assert_eq!(second[0].block, net("10.244.1.0/26"), "the fuller one");
        assert_eq!(s.releasable_empty(), [net("10.244.2.0/26")]);
        s.release(&handle("a"), &[]).unwrap();
        s.release(&handle("b"), &[]).unwrap();
        assert_eq!(s.releasable_empty().len(), 1, "the node keeps one");
        s.blocks.get_mut(&net("10.244.2.0/26")).unwrap().status = Status::Lost;
        assert!(s.releasable_empty().is_empty());
    }

    #[test]
    fn snapshots_round_trip_and_torn_state_is_reported() {
        let mut s = dual();
        s.apply(&Record::Claim {
            cidr: net("10.244.1.0/26"),
            mode: IpamMode::Pod,
        });
        for id in ["a", "b", "c"] {
            s.allocate(&[Family::Ipv4], IpamMode::Pod, alloc(id))
                .unwrap();
        }
        s.release(&handle("b"), &[]).unwrap();
        let snap = Record::Snapshot(s.snapshot());
        let text = serde_json::to_string(&snap).unwrap();
        let mut r = NodeState::default();
        assert!(r.apply(&serde_json::from_str(&text).unwrap()).is_empty());
        assert_eq!(r.handles, s.handles);
        assert_eq!(r.seq, s.seq);
        let cidr = net("10.244.1.0/26");
        assert_eq!(r.blocks[&cidr].block.cursor, s.blocks[&cidr].block.cursor);
        let bad = Record::Alloc {
            ips: vec!["10.9.9.9".parse().unwrap()],
            alloc: alloc("z"),
        };
        assert_eq!(r.apply(&bad), ["10.9.9.9 (z/eth0): in no block held"]);
        assert!(!r.handles.contains_key(&handle("z")));
    }
}
