//! The store side: every write of IPAM state is one transaction with compares.
//!
//! - [`claim`]: list the blocks, walk the pool to a free candidate, create it with this
//!   node's affinity (compares: [`super::pool::claim_plan`]); a lost race makes it look
//!   again, a few times.
//! - [`write_block`]: the owner's copy of a block's allocations, if the key is unchanged
//!   since the owner last saw it; otherwise the answer says who holds it now.
//! - [`recreate`]: a block the owner holds that vanished from the store (a restore, a
//!   reclaim while the node was away) is claimed again, unless another block took its place.
//! - [`release_block`]: an empty block goes back, if unchanged.
//! - [`reclaim_block`]: another node's block goes back, if unchanged, while that node's
//!   lease record is still absent and its Node unchanged since it was seen gone.

use std::collections::BTreeMap;

use ferro_agent_api::ipam::IpamMode;
use ferro_cluster::network::CLUSTER_NETWORK_NAME;
use ferro_cluster::resource::ClusterNetwork;
use ferro_cluster::{keys, Kind};
use ferro_store::{Compare, KeyValue, Op, Store, StoreError, Txn};
use ipnet::IpNet;
use serde_json::json;

use super::block::{family, size};
use super::pool::{claim_plan, find_free, node_seed, overlap, sizes, Pool};
use super::stored::{block_key, blocks_prefix, counter_key, decode, decode_all, StoredBlock};

/// How often a claim looks again after losing a race.
const CLAIM_ATTEMPTS: usize = 10;

/// Why a claim failed.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    /// No free block (the message names the pool and its use).
    #[error("{0}")]
    Exhausted(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Races lost every time.
    #[error("claiming a block of {0}: other nodes' claims won {CLAIM_ATTEMPTS} times in a row; try again")]
    Conflict(IpNet),
}

/// The pools the ClusterNetwork defines: `Ok(None)` when there is none, `Err` (inner) when
/// its settings are invalid.
pub async fn read_pools<S: Store>(
    store: &S,
) -> Result<Result<Option<Vec<Pool>>, String>, StoreError> {
    let key = keys::object(Kind::ClusterNetwork, None, CLUSTER_NETWORK_NAME);
    let Some(kv) = store.get(&key).await? else {
        return Ok(Ok(None));
    };
    let cn: ClusterNetwork = match serde_json::from_slice(&kv.value) {
        Ok(c) => c,
        Err(e) => return Ok(Err(format!("{key}: {e}"))),
    };
    Ok(match cn.spec.settings() {
        Ok(s) => Ok(Some(super::pool::pools(&s))),
        Err(e) => Err(format!("ClusterNetwork default: {}", e.join("; "))),
    })
}

/// The claim transaction of `cand` (see the module doc of [`super::pool`]).
pub fn create_txn(
    pool: &Pool,
    cand: IpNet,
    present: &[IpNet],
    counter: Option<&KeyValue>,
    value: Vec<u8>,
) -> Txn {
    let plan = claim_plan(cand, &sizes(pool, present));
    let mut txn = Txn::new().when(Compare::absent(block_key(&cand)));
    for s in &plan.supernets {
        txn = txn.when(Compare::absent(block_key(s)));
    }
    let ckey = counter_key(pool.family());
    if plan.compare_counter {
        txn = txn.when(Compare::unchanged(
            &ckey,
            counter.map_or(0, |kv| kv.mod_revision),
        ));
    }
    txn = txn.then(Op::put(block_key(&cand), value));
    if plan.bump_counter {
        let n = counter
            .and_then(|kv| serde_json::from_slice::<serde_json::Value>(&kv.value).ok())
            .and_then(|v| v["claims"].as_u64())
            .unwrap_or(0);
        let v = json!({"family": pool.family().as_str(), "claims": n + 1});
        txn = txn.then(Op::put(ckey, v.to_string()));
    }
    txn
}

/// Why the pool has no block left, in words: its blocks, who holds them, their use.
pub fn exhausted(pool: &Pool, mode: IpamMode, blocks: &[StoredBlock]) -> String {
    let inside: Vec<&StoredBlock> = blocks
        .iter()
        .filter(|b| overlap(&b.cidr, &pool.cidr))
        .collect();
    let mut by_node: BTreeMap<&str, usize> = BTreeMap::new();
    let (mut used, mut capacity) = (0u64, 0u128);
    for b in &inside {
        *by_node.entry(b.node.as_str()).or_default() += 1;
        used += b.in_use();
        capacity += b
            .status
            .as_ref()
            .map_or_else(|| size(&b.cidr), |s| s.capacity);
    }
    let mut top: Vec<(&str, usize)> = by_node.into_iter().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let shown: Vec<String> = top
        .iter()
        .take(5)
        .map(|(n, c)| format!("{n} {c}"))
        .collect();
    let more = if top.len() > 5 {
        format!(", {} more", top.len() - 5)
    } else {
        String::new()
    };
    format!(
        "pool {} ({}) has no free /{} block for a {}-mode claim: {} blocks are claimed by {} nodes ({}{more}), {used} of {capacity} addresses in use; free some (cnictl ipam show, cnictl ipam release --node) or add room to the ClusterNetwork",
        pool.cidr,
        family(&pool.cidr).as_str(),
        pool.prefix(mode),
        mode.as_str(),
        inside.len(),
        top.len(),
        shown.join(", "),
    )
}

/// Claims a free block of `mode` in `pool` for `node`, its value made by `value_for`;
/// the block and its key's revision.
pub async fn claim<S: Store>(
    store: &S,
    node: &str,
    pool: &Pool,
    mode: IpamMode,
    value_for: impl Fn(IpNet) -> Vec<u8>,
) -> Result<(IpNet, i64), ClaimError> {
    let prefix = pool.prefix(mode);
    let mut last = pool.cidr;
    for attempt in 1..=CLAIM_ATTEMPTS {
        // The counter first: a claim committed after this read changes it or shows in the list.
        let counter = store.get(&counter_key(pool.family())).await?;
        let listing = store.list(&blocks_prefix()).await?;
        let blocks = decode_all(&listing.kvs);
        let present: Vec<IpNet> = blocks.iter().map(|b| b.cidr).collect();
        let Some(cand) = find_free(pool.cidr, prefix, &present, node_seed(node)) else {
            return Err(ClaimError::Exhausted(exhausted(pool, mode, &blocks)));
        };
        last = cand;
        let txn = create_txn(pool, cand, &present, counter.as_ref(), value_for(cand));
        let r = store.txn(txn).await?;
        if r.succeeded {
            return Ok((cand, r.revision));
        }
        log::debug!("claim of {cand}: another claim won (attempt {attempt}); looking again");
    }
    Err(ClaimError::Conflict(last))
}

/// What [`write_block`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// Written; the key's new revision.
    Ok(i64),
    /// The key changed but the block is still this node's: its revision now (write again).
    Moved(i64),
    /// The key is gone.
    Vanished,
    /// Another node holds the block now.
    Taken(String),
}

/// Writes the owner's copy of block `cidr` if its key is still at `rev`.
pub async fn write_block<S: Store>(
    store: &S,
    node: &str,
    cidr: &IpNet,
    rev: i64,
    value: Vec<u8>,
) -> Result<Written, StoreError> {
    let key = block_key(cidr);
    let r = store
        .txn(
            Txn::new()
                .when(Compare::unchanged(&key, rev))
                .then(Op::put(&key, value)),
        )
        .await?;
    if r.succeeded {
        return Ok(Written::Ok(r.revision));
    }
    Ok(match r.current.into_iter().next().flatten() {
        None => Written::Vanished,
        Some(kv) => match decode(&kv) {
            Some(b) if b.node == node => Written::Moved(kv.mod_revision),
            Some(b) => Written::Taken(b.node),
            None => Written::Taken(String::from("(unreadable value)")),
        },
    })
}

/// What [`recreate`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recreated {
    /// Claimed again; the key's revision.
    Created(i64),
    /// It is there and this node's (the revision).
    Mine(i64),
    /// Another node's block holds (part of) it.
    Taken(IpNet, String),
    /// A race was lost: try again later.
    Retry,
}

/// Claims back block `cidr` of `pool` that this node holds but the store lacks.
pub async fn recreate<S: Store>(
    store: &S,
    node: &str,
    pool: &Pool,
    cidr: &IpNet,
    value: Vec<u8>,
) -> Result<Recreated, StoreError> {
    let counter = store.get(&counter_key(pool.family())).await?;
    let listing = store.list(&blocks_prefix()).await?;
    let blocks = decode_all(&listing.kvs);
    if let Some(b) = blocks.iter().find(|b| overlap(&b.cidr, cidr)) {
        return Ok(if b.cidr == *cidr && b.node == node {
            Recreated::Mine(b.rev)
        } else {
            Recreated::Taken(b.cidr, b.node.clone())
        });
    }
    let present: Vec<IpNet> = blocks.iter().map(|b| b.cidr).collect();
    let r = store
        .txn(create_txn(pool, *cidr, &present, counter.as_ref(), value))
        .await?;
    Ok(if r.succeeded {
        Recreated::Created(r.revision)
    } else {
        Recreated::Retry
    })
}

/// Deletes block `cidr` if its key is still at `rev`.
pub async fn release_block<S: Store>(
    store: &S,
    cidr: &IpNet,
    rev: i64,
) -> Result<bool, StoreError> {
    let key = block_key(cidr);
    Ok(store
        .txn(
            Txn::new()
                .when(Compare::unchanged(&key, rev))
                .then(Op::delete(&key)),
        )
        .await?
        .succeeded)
}

/// Deletes another node's block `b` if it is unchanged, the node's lease record is absent
/// and its Node unchanged since revision `node_rev` (0: no Node object).
pub async fn reclaim_block<S: Store>(
    store: &S,
    b: &StoredBlock,
    node_rev: i64,
) -> Result<bool, StoreError> {
    let key = block_key(&b.cidr);
    let txn = Txn::new()
        .when(Compare::unchanged(&key, b.rev))
        .when(Compare::absent(keys::node_lease(&b.node)))
        .when(Compare::unchanged(
            keys::object(Kind::Node, None, &b.node),
            node_rev,
        ))
        .then(Op::delete(&key));
    Ok(store.txn(txn).await?.succeeded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipam::block::Block;
    use crate::ipam::stored::encode;
    use ferro_store::Embedded;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn pool() -> Pool {
        Pool {
            cidr: net("10.244.0.0/24"),
            block_prefix: 26,
            node_block_prefix: 25,
        }
    }

    fn value(node: &'static str, mode: IpamMode) -> impl Fn(IpNet) -> Vec<u8> {
        move |c| encode(&Block::new(c, mode, None), node, 0, None)
    }

    async fn store() -> (Embedded, tempfile::TempDir) {
        let d = tempfile::tempdir().unwrap();
        (Embedded::open(&d.path().join("s.redb")).await.unwrap(), d)
    }

    #[tokio::test]
    async fn claims_fill_the_pool_without_overlap_then_name_its_use() {
        let (s, _d) = store().await;
        let p = pool();
        let mut got = Vec::new();
        for n in ["node-a", "node-b", "node-c", "node-d"] {
            let (c, rev) = claim(&s, n, &p, IpamMode::Pod, value(n, IpamMode::Pod))
                .await
                .unwrap();
            assert!(rev > 0);
            assert!(got.iter().all(|g| !overlap(g, &c)), "{c} overlaps {got:?}");
            got.push(c);
        }
        let e = claim(
            &s,
            "node-e",
            &p,
            IpamMode::Pod,
            value("node-e", IpamMode::Pod),
        )
        .await
        .unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, ClaimError::Exhausted(_)));
        assert!(
            msg.starts_with("pool 10.244.0.0/24 (ipv4) has no free /26 block for a pod-mode claim: 4 blocks are claimed by 4 nodes (node-a 1, node-b 1, node-c 1, node-d 1), 0 of 256 addresses in use"),
            "{msg}"
        );
        // a node block (a bigger size) cannot overlap them either
        let e = claim(
            &s,
            "node-e",
            &p,
            IpamMode::Node,
            value("node-e", IpamMode::Node),
        )
        .await
        .unwrap_err();
        assert!(e.to_string().contains("no free /25 block"), "{e}");
    }

    #[tokio::test]
    async fn racing_claims_of_different_sizes_cannot_both_win() {
        let (s, _d) = store().await;
        let p = pool();
        // Both "listed" an empty pool: their transactions are built from the same view.
        let small = create_txn(
            &p,
            net("10.244.0.0/26"),
            &[],
            None,
            value("a", IpamMode::Pod)(net("10.244.0.0/26")),
        );
        let big = create_txn(
            &p,
            net("10.244.0.0/25"),
            &[],
            None,
            value("b", IpamMode::Node)(net("10.244.0.0/25")),
        );
        assert!(s.txn(small.clone()).await.unwrap().succeeded);
        assert!(
            !s.txn(big.clone()).await.unwrap().succeeded,
            "the counter moved"
        );
        // the other order
        let (s2, _d2) = store().await;
        assert!(s2.txn(big).await.unwrap().succeeded);
        assert!(!s2.txn(small).await.unwrap().succeeded, "the /25 is there");
        // same size, same key: create-if-absent alone
        let (s3, _d3) = store().await;
        let a = create_txn(&p, net("10.244.0.64/26"), &[], None, b"a".to_vec());
        assert!(s3.txn(a.clone()).await.unwrap().succeeded);
        assert!(!s3.txn(a).await.unwrap().succeeded);
    }

    #[tokio::test]
    async fn writes_compare_and_tell_who_holds_the_block() {
        let (s, _d) = store().await;
        let p = pool();
        let (c, rev) = claim(
            &s,
            "node-a",
            &p,
            IpamMode::Pod,
            value("node-a", IpamMode::Pod),
        )
        .await
        .unwrap();
        let v = value("node-a", IpamMode::Pod)(c);
        let Written::Ok(rev2) = write_block(&s, "node-a", &c, rev, v.clone()).await.unwrap() else {
            panic!()
        };
        assert_eq!(
            write_block(&s, "node-a", &c, rev, v.clone()).await.unwrap(),
            Written::Moved(rev2)
        );
        s.put(&block_key(&c), value("node-b", IpamMode::Pod)(c))
            .await
            .unwrap();
        assert_eq!(
            write_block(&s, "node-a", &c, rev2, v.clone())
                .await
                .unwrap(),
            Written::Taken("node-b".into())
        );
        s.delete(&block_key(&c)).await.unwrap();
        assert_eq!(
            write_block(&s, "node-a", &c, rev2, v.clone())
                .await
                .unwrap(),
            Written::Vanished
        );
        // claimed back, unless another node's block is in the way
        let Recreated::Created(r) = recreate(&s, "node-a", &p, &c, v.clone()).await.unwrap() else {
            panic!()
        };
        assert_eq!(
            recreate(&s, "node-a", &p, &c, v.clone()).await.unwrap(),
            Recreated::Mine(r)
        );
        assert!(
            !release_block(&s, &c, r - 1).await.unwrap(),
            "stale revision"
        );
        assert!(release_block(&s, &c, r).await.unwrap());
        let big = IpNet::new(c.network(), 25).unwrap().trunc();
        s.put(&block_key(&big), value("node-b", IpamMode::Node)(big))
            .await
            .unwrap();
        assert_eq!(
            recreate(&s, "node-a", &p, &c, v).await.unwrap(),
            Recreated::Taken(big, "node-b".into())
        );
    }

    #[tokio::test]
    async fn reclaim_needs_the_lease_gone_and_the_node_unchanged() {
        let (s, _d) = store().await;
        let p = pool();
        let (c, _) = claim(
            &s,
            "node-b",
            &p,
            IpamMode::Pod,
            value("node-b", IpamMode::Pod),
        )
        .await
        .unwrap();
        let node_key = keys::object(Kind::Node, None, "node-b");
        let node_rev = s.put(&node_key, b"{}".to_vec()).await.unwrap();
        let sb = decode(&s.get(&block_key(&c)).await.unwrap().unwrap()).unwrap();
        s.put(&keys::node_lease("node-b"), b"{}".to_vec())
            .await
            .unwrap();
        assert!(!reclaim_block(&s, &sb, node_rev).await.unwrap(), "alive");
        s.delete(&keys::node_lease("node-b")).await.unwrap();
        assert!(
            !reclaim_block(&s, &sb, node_rev - 1).await.unwrap(),
            "the node came and went"
        );
        assert!(reclaim_block(&s, &sb, node_rev).await.unwrap());
        assert!(s.get(&block_key(&c)).await.unwrap().is_none());
    }
}
