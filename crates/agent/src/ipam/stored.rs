//! How IPAM state looks in the store, and how the agent's state is reconciled with it at
//! start (pure).
//!
//! ```text
//! /ferro-cni/v1/ipamblocks/<address>-<prefix>   one block: an IPAMBlock (spec: cidr, node; status below)
//! /ferro-cni/v1/ipampools/<ipv4|ipv6>           the pool's claim counter (see super::pool)
//! ```
//!
//! A block's `status` is the owner's copy of its allocations, written by the owner alone
//! (asynchronously, batched) with `syncedSeq`, the owner's journal sequence number at the
//! time: `{"mode":"pod","syncedSeq":42,"inUse":2,"capacity":64,"allocations":[{"address":
//! "10.244.3.5","containerID":…,"ifname":"eth0","network":…,"pod":{…},"since":…,"seq":…}]}`.
//! The journal is the authority on a node's allocations; the store on which node a block
//! belongs to.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ferro_agent_api::ipam::{Family, IpamMode};
use ferro_cluster::k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use ferro_cluster::resource::{IpamBlock, IpamBlockSpec};
use ferro_cluster::{keys, Kind, NodeLease};
use ferro_store::{KeyValue, Store, StoreError};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::block::Block;
use super::pool::overlap;
use super::state::{AddrRecord, NodeState, Record, Status};

/// The prefix of every pool claim counter.
pub const POOL_COUNTERS: &str = "/ferro-cni/v1/ipampools/";

/// The key of `cidr`'s block.
pub fn block_key(cidr: &IpNet) -> String {
    keys::object(Kind::IpamBlock, None, &keys::block_name(cidr))
}

/// The prefix of every block.
pub fn blocks_prefix() -> String {
    keys::prefix(Kind::IpamBlock, None)
}

/// The key of the claim counter of `family`'s pool.
pub fn counter_key(family: Family) -> String {
    format!("{POOL_COUNTERS}{}", family.as_str())
}

/// A block's `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockStatus {
    /// Node or pod mode.
    pub mode: IpamMode,
    /// The owner's journal sequence number when it wrote this copy.
    #[serde(default)]
    pub synced_seq: u64,
    /// Addresses in use.
    #[serde(default)]
    pub in_use: u64,
    /// Addresses the block can hand out.
    #[serde(default, with = "ferro_agent_api::ipam::count")]
    pub capacity: u128,
    /// The allocations.
    #[serde(default)]
    pub allocations: Vec<AddrRecord>,
}

/// A block as read from the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBlock {
    /// The block.
    pub cidr: IpNet,
    /// Its node.
    pub node: String,
    /// Its status (none right after a claim by an agent that wrote none).
    pub status: Option<BlockStatus>,
    /// The key's modification revision.
    pub rev: i64,
    /// `metadata.creationTimestamp`, as written.
    pub created: Option<Time>,
}

impl StoredBlock {
    /// Its mode (pod when the status does not say).
    pub fn mode(&self) -> IpamMode {
        self.status.as_ref().map_or(IpamMode::Pod, |s| s.mode)
    }

    /// Addresses in use, per its copy.
    pub fn in_use(&self) -> u64 {
        self.status
            .as_ref()
            .map_or(0, |s| s.allocations.len() as u64)
    }
}

/// Decodes a block; `None` when the value is not one.
pub fn decode(kv: &KeyValue) -> Option<StoredBlock> {
    let b: IpamBlock = serde_json::from_slice(&kv.value).ok()?;
    let cidr: IpNet = b.spec.cidr.parse().ok()?;
    Some(StoredBlock {
        cidr: cidr.trunc(),
        node: b.spec.node.unwrap_or_default(),
        status: b.status.and_then(|s| serde_json::from_value(s).ok()),
        rev: kv.mod_revision,
        created: b.metadata.creation_timestamp,
    })
}

/// Every block of a listing.
pub fn decode_all(kvs: &[KeyValue]) -> Vec<StoredBlock> {
    kvs.iter().filter_map(decode).collect()
}

/// The value of `block`, held by `node`, as of journal sequence `seq`.
pub fn encode(block: &Block, node: &str, seq: u64, created: Option<Time>) -> Vec<u8> {
    let status = BlockStatus {
        mode: block.mode,
        synced_seq: seq,
        in_use: block.used(),
        capacity: block.capacity(),
        allocations: block
            .iter()
            .map(|(address, a)| AddrRecord {
                address,
                alloc: a.clone(),
            })
            .collect(),
    };
    let b = IpamBlock {
        api_version: Kind::IpamBlock.api_version().to_string(),
        kind: Kind::IpamBlock.name().to_string(),
        metadata: ObjectMeta {
            name: Some(keys::block_name(&block.cidr)),
            creation_timestamp: Some(created.unwrap_or_else(|| Time(ferro_cluster::now()))),
            ..ObjectMeta::default()
        },
        spec: IpamBlockSpec {
            cidr: block.cidr.to_string(),
            node: Some(node.to_string()),
        },
        status: serde_json::to_value(status).ok(),
    };
    serde_json::to_vec(&b).unwrap_or_default()
}

/// The nodes whose agent holds a live lease (their lease records).
pub async fn alive_nodes<S: Store>(store: &S) -> Result<BTreeSet<String>, StoreError> {
    let leases = store.list(keys::NODE_LEASES).await?;
    Ok(leases
        .kvs
        .iter()
        .filter_map(|kv| serde_json::from_slice::<NodeLease>(&kv.value).ok())
        .map(|l| l.node)
        .collect())
}

/// What [`reconcile`] found, for the log.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Lines to log (warnings).
    pub notes: Vec<String>,
    /// Blocks whose store copy must be (re)written.
    pub dirty: BTreeSet<IpNet>,
    /// Blocks the store gives to another node.
    pub lost: BTreeSet<IpNet>,
}

/// Brings the state replayed from the journal in line with the blocks read from the store
/// (all of them), at start:
/// - a block both hold: the journal wins, unless the store's copy is newer than anything
///   the journal recorded (the journal lost its tail, or the state directory is new), in
///   which case the copy's allocations are added;
/// - a block the store gives this node that the journal does not know: adopted, with its
///   allocations when its copy is newer than the journal, empty otherwise (a stale copy of
///   a block released since);
/// - a block the journal holds and the store lacks: kept, and written back (claimed again
///   when nobody took its place);
/// - a block the journal holds that the store gives another node, or that overlaps another
///   node's block: lost. Its addresses are kept until their pods go; nothing new comes
///   from it.
pub fn reconcile(state: &mut NodeState, node: &str, stored: &[StoredBlock]) -> Reconciled {
    let mut out = Reconciled::default();
    let journal_seq = state.seq;
    for sb in stored.iter().filter(|b| b.node == node) {
        let newer = sb
            .status
            .as_ref()
            .is_some_and(|s| s.synced_seq > journal_seq);
        if !state.blocks.contains_key(&sb.cidr) {
            if state.blocks.keys().any(|c| overlap(c, &sb.cidr)) {
                out.notes.push(format!(
                    "block {}: the store gives it to this node but it overlaps a block the journal holds; ignored",
                    sb.cidr
                ));
                continue;
            }
            out.notes.push(format!(
                "block {}: held in the store but not in the journal; adopted{}",
                sb.cidr,
                if newer {
                    " with the store's allocations (the journal is behind)"
                } else {
                    " empty (the store's copy is older than the journal)"
                }
            ));
            state.apply(&Record::Claim {
                cidr: sb.cidr,
                mode: sb.mode(),
            });
        }
        if newer {
            for a in sb.status.iter().flat_map(|s| &s.allocations) {
                let held = state.alloc_of(a.address).map(|x| x.handle.clone());
                match held {
                    Some(h) if h == a.alloc.handle => {}
                    Some(h) => out.notes.push(format!(
                        "{}: the store's copy says {}, the journal {h}; the journal wins",
                        a.address, a.alloc.handle
                    )),
                    None => {
                        let problems = state.apply(&Record::Alloc {
                            ips: vec![a.address],
                            alloc: a.alloc.clone(),
                        });
                        out.notes.extend(problems);
                    }
                }
            }
        }
        if let Some(h) = state.blocks.get_mut(&sb.cidr) {
            h.rev = sb.rev;
            if same_allocations(&h.block, sb) {
                h.synced = h.changes;
            } else {
                out.dirty.insert(sb.cidr);
            }
        }
    }
    let max_seq = stored
        .iter()
        .filter(|b| b.node == node)
        .filter_map(|b| b.status.as_ref().map(|s| s.synced_seq))
        .max()
        .unwrap_or(0);
    state.seq = state.seq.max(max_seq);
    let mine: BTreeSet<IpNet> = stored
        .iter()
        .filter(|b| b.node == node)
        .map(|b| b.cidr)
        .collect();
    for (cidr, h) in &mut state.blocks {
        if mine.contains(cidr) {
            continue;
        }
        if let Some(other) = stored
            .iter()
            .find(|b| b.node != node && overlap(&b.cidr, cidr))
        {
            h.status = Status::Lost;
            h.rev = 0;
            out.lost.insert(*cidr);
            out.notes.push(format!(
                "block {cidr}: the store gives {} to node {}; this node stops using it ({} addresses still held here)",
                other.cidr,
                other.node,
                h.block.used()
            ));
        } else {
            h.rev = 0;
            out.dirty.insert(*cidr);
            out.notes.push(format!(
                "block {cidr}: missing from the store; claiming it back"
            ));
        }
    }
    out
}

/// Whether the store's copy lists exactly the block's allocations.
fn same_allocations(b: &Block, sb: &StoredBlock) -> bool {
    let Some(s) = &sb.status else {
        return b.is_empty();
    };
    let mine: BTreeSet<(IpAddr, &str, &str)> = b
        .iter()
        .map(|(ip, a)| (ip, a.handle.container_id.as_str(), a.handle.ifname.as_str()))
        .collect();
    let theirs: BTreeSet<(IpAddr, &str, &str)> = s
        .allocations
        .iter()
        .map(|a| {
            (
                a.address,
                a.alloc.handle.container_id.as_str(),
                a.alloc.handle.ifname.as_str(),
            )
        })
        .collect();
    mine == theirs && s.mode == b.mode
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipam::block::Alloc;
    use crate::ipam::pool::Pool;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn alloc(id: &str, seq: u64) -> Alloc {
        Alloc {
            seq,
            ..crate::ipam::block::test_alloc(id)
        }
    }

    fn stored(cidr: &str, node: &str, seq: u64, allocs: &[(&str, &str)]) -> StoredBlock {
        let mut b = Block::new(net(cidr), IpamMode::Pod, None);
        for (ip, id) in allocs {
            b.insert(ip.parse().unwrap(), alloc(id, seq));
        }
        let kv = KeyValue {
            key: block_key(&b.cidr),
            value: encode(&b, node, seq, None),
            create_revision: 5,
            mod_revision: 9,
            version: 1,
            lease: None,
        };
        decode(&kv).unwrap()
    }

    fn journal_state() -> NodeState {
        let mut s = NodeState::default();
        s.apply(&Record::Pools {
            pools: vec![Pool {
                cidr: net("10.244.0.0/16"),
                block_prefix: 26,
                node_block_prefix: 24,
            }],
        });
        for c in ["10.244.1.0/26", "10.244.2.0/26", "10.244.3.0/26"] {
            s.apply(&Record::Claim {
                cidr: net(c),
                mode: IpamMode::Pod,
            });
        }
        s.apply(&Record::Alloc {
            ips: vec!["10.244.1.1".parse().unwrap()],
            alloc: alloc("a", 10),
        });
        s
    }

    #[test]
    fn the_store_encoding_round_trips() {
        let sb = stored("10.244.1.0/26", "node-a", 3, &[("10.244.1.5", "x")]);
        assert_eq!(sb.cidr, net("10.244.1.0/26"));
        assert_eq!(sb.node, "node-a");
        assert_eq!(sb.rev, 9);
        let st = sb.status.unwrap();
        assert_eq!((st.synced_seq, st.in_use, st.capacity), (3, 1, 64));
        assert_eq!(st.allocations[0].alloc.handle.container_id, "x");
        assert_eq!(
            block_key(&sb.cidr),
            "/ferro-cni/v1/ipamblocks/10.244.1.0-26"
        );
        assert_eq!(counter_key(Family::Ipv6), "/ferro-cni/v1/ipampools/ipv6");
    }

    #[test]
    fn journal_wins_store_owns_blocks() {
        let mut s = journal_state();
        let r = reconcile(
            &mut s,
            "node-a",
            &[
                // in sync
                stored("10.244.1.0/26", "node-a", 10, &[("10.244.1.1", "a")]),
                // a stale copy (older than the journal) listing a released pod
                stored("10.244.2.0/26", "node-a", 4, &[("10.244.2.7", "gone")]),
                // taken by another node
                stored("10.244.3.0/26", "node-b", 2, &[]),
                // mine in the store, unknown to the journal, newer than it
                stored("10.244.4.0/26", "node-a", 12, &[("10.244.4.2", "b")]),
                // mine, unknown, older: adopted empty
                stored("10.244.5.0/26", "node-a", 3, &[("10.244.5.2", "old")]),
            ],
        );
        assert_eq!(s.blocks[&net("10.244.1.0/26")].rev, 9);
        assert!(!s.blocks[&net("10.244.1.0/26")].dirty());
        assert!(s.alloc_of("10.244.2.7".parse().unwrap()).is_none());
        assert!(r.dirty.contains(&net("10.244.2.0/26")), "rewritten");
        assert_eq!(r.lost, [net("10.244.3.0/26")].into());
        assert_eq!(s.blocks[&net("10.244.3.0/26")].status, Status::Lost);
        assert_eq!(
            s.alloc_of("10.244.4.2".parse().unwrap())
                .unwrap()
                .handle
                .container_id,
            "b"
        );
        assert!(s.blocks[&net("10.244.5.0/26")].block.is_empty());
        assert_eq!(s.seq, 12, "sequence numbers never go back");
        assert!(r
            .notes
            .iter()
            .any(|n| n.contains("10.244.3.0/26") && n.contains("node-b")));
    }

    #[test]
    fn a_lost_journal_is_rebuilt_from_the_store_and_missing_blocks_are_claimed_back() {
        let mut fresh = NodeState::default();
        let r = reconcile(
            &mut fresh,
            "node-a",
            &[stored(
                "10.244.1.0/26",
                "node-a",
                7,
                &[("10.244.1.1", "a"), ("10.244.1.2", "b")],
            )],
        );
        assert_eq!(fresh.handles.len(), 2);
        assert!(r.dirty.is_empty(), "the copy matches");
        let mut s = journal_state();
        let r = reconcile(&mut s, "node-a", &[]);
        assert_eq!(r.dirty.len(), 3);
        assert!(s
            .blocks
            .values()
            .all(|h| h.rev == 0 && h.status == Status::Active));
    }
}
