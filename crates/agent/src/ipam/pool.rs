//! The pool, pure: which block a node claims next, and what the claim transaction must
//! compare so that two claims can never overlap.
//!
//! A pool is one pod CIDR of the ClusterNetwork, cut into aligned blocks of a fixed prefix
//! (`ipamBlockSize`, or `nodeBlockSize` for kubenet's node blocks). A node walks the
//! candidates from a pseudo-random start derived from its name (so that nodes claiming at the
//! same moment rarely want the same block) to the first one no existing block overlaps.
//!
//! The claim transaction (see [`claim_plan`]): blocks of one size are either the same key or
//! disjoint, so create-if-absent on the block's key settles a race between two claims of one
//! size. When the pool mixes sizes (kubenet node blocks beside pod-mode blocks), a claim also
//! requires the keys of the larger blocks that would contain it to be absent, and a claim of a
//! larger block requires the pool's claim counter to be unchanged since it listed the blocks,
//! a counter every claim of a smaller block bumps: whichever commits second fails and looks
//! again.

use std::collections::BTreeSet;

use ferro_agent_api::ipam::{Family, IpamMode};
use ipnet::IpNet;

use super::block::{family, from_u128, size, to_u128};

/// One pool: a pod CIDR and the sizes of the blocks cut from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pool {
    /// The pod CIDR.
    pub cidr: IpNet,
    /// Prefix of pod-mode blocks.
    pub block_prefix: u8,
    /// Prefix of node-mode blocks.
    pub node_block_prefix: u8,
}

impl Pool {
    /// Its family.
    pub fn family(&self) -> Family {
        family(&self.cidr)
    }

    /// The prefix of the blocks of `mode`.
    pub fn prefix(&self, mode: IpamMode) -> u8 {
        match mode {
            IpamMode::Node => self.node_block_prefix,
            IpamMode::Pod => self.block_prefix,
        }
    }

    /// How many blocks of `mode` the pool holds.
    pub fn block_count(&self, mode: IpamMode) -> u128 {
        let bits = u32::from(self.prefix(mode).saturating_sub(self.cidr.prefix_len()));
        1u128.checked_shl(bits).unwrap_or(u128::MAX)
    }
}

/// The pools of a ClusterNetwork, at most one per family.
pub fn pools(s: &ferro_cluster::Settings) -> Vec<Pool> {
    s.pod_cidrs
        .iter()
        .map(|c| Pool {
            cidr: *c,
            block_prefix: s.block_prefix(c),
            node_block_prefix: match c {
                IpNet::V4(_) => s.node_block_v4,
                IpNet::V6(_) => s.node_block_v6,
            },
        })
        .collect()
}

/// A node's pseudo-random starting point (FNV-1a of its name: stable across versions and
/// machines).
pub fn node_seed(node: &str) -> u128 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in node.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    u128::from(h)
}

/// The first block of `prefix` in `pool` that no block of `taken` overlaps, walking from
/// candidate `seed % count` and wrapping; `None` when every candidate is taken.
pub fn find_free(pool: IpNet, prefix: u8, taken: &[IpNet], seed: u128) -> Option<IpNet> {
    if prefix < pool.prefix_len() || prefix > pool.max_prefix_len() {
        return None;
    }
    let bits = u32::from(prefix - pool.prefix_len());
    let count = 1u128.checked_shl(bits).unwrap_or(u128::MAX);
    let bs = size(&IpNet::new(pool.network(), prefix).ok()?);
    let base = to_u128(pool.network());
    let pool_end = base + (size(&pool) - 1);
    // Each taken block as the range of candidate indexes it covers.
    let mut spans: Vec<(u128, u128)> = taken
        .iter()
        .filter(|t| family(t) == family(&pool))
        .filter_map(|t| {
            let lo = to_u128(t.network());
            let hi = lo + (size(t) - 1);
            if hi < base || lo > pool_end {
                return None;
            }
            let first = lo.max(base) - base;
            let last = hi.min(pool_end) - base;
            Some((first / bs, last / bs))
        })
        .collect();
    spans.sort_unstable();
    let mut merged: Vec<(u128, u128)> = Vec::with_capacity(spans.len());
    for (lo, hi) in spans {
        match merged.last_mut() {
            Some(m) if lo <= m.1.saturating_add(1) => m.1 = m.1.max(hi),
            _ => merged.push((lo, hi)),
        }
    }
    let first_free_from = |from: u128| -> Option<u128> {
        let mut p = from;
        for &(lo, hi) in merged.iter().filter(|(_, hi)| *hi >= from) {
            if lo > p {
                return Some(p);
            }
            p = hi.checked_add(1)?;
        }
        (p < count).then_some(p)
    };
    let start = seed % count;
    let i = first_free_from(start).or_else(|| first_free_from(0).filter(|p| *p < start))?;
    IpNet::new(from_u128(family(&pool), base + i * bs), prefix).ok()
}

/// What the claim transaction of a block compares and writes besides the block itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimPlan {
    /// Keys of larger blocks that would contain it: they must be absent.
    pub supernets: Vec<IpNet>,
    /// Smaller blocks may exist: the pool's claim counter must be unchanged.
    pub compare_counter: bool,
    /// Larger blocks may exist: bump the counter so that their claims see this one.
    pub bump_counter: bool,
}

/// The compares of a claim of `cand` in a pool whose blocks come in `sizes` (prefix
/// lengths: the configured ones and every one present).
pub fn claim_plan(cand: IpNet, sizes: &BTreeSet<u8>) -> ClaimPlan {
    let p = cand.prefix_len();
    ClaimPlan {
        supernets: sizes
            .iter()
            .filter(|q| **q < p)
            .filter_map(|q| IpNet::new(cand.network(), *q).ok().map(|n| n.trunc()))
            .collect(),
        compare_counter: sizes.iter().any(|q| *q > p),
        bump_counter: sizes.iter().any(|q| *q < p),
    }
}

/// Whether two blocks share an address.
pub fn overlap(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// The sizes in play in `pool`: the configured ones and those of the blocks present.
pub fn sizes(pool: &Pool, present: &[IpNet]) -> BTreeSet<u8> {
    let mut s: BTreeSet<u8> = [pool.block_prefix, pool.node_block_prefix].into();
    s.extend(
        present
            .iter()
            .filter(|b| overlap(b, &pool.cidr))
            .map(IpNet::prefix_len),
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn the_walk_starts_at_the_seed_skips_what_is_taken_and_wraps() {
        let pool = net("10.244.0.0/24");
        assert_eq!(find_free(pool, 26, &[], 2), Some(net("10.244.0.128/26")));
        assert_eq!(
            find_free(pool, 26, &[net("10.244.0.128/26")], 2),
            Some(net("10.244.0.192/26"))
        );
        assert_eq!(
            find_free(pool, 26, &[net("10.244.0.128/25")], 6),
            Some(net("10.244.0.0/26")),
            "wraps to the front"
        );
        let all = [
            net("10.244.0.0/25"),
            net("10.244.0.128/26"),
            net("10.244.0.192/26"),
        ];
        assert_eq!(find_free(pool, 26, &all, 0), None);
        // a smaller block takes its whole candidate; a bigger one every candidate inside it
        assert_eq!(
            find_free(pool, 25, &[net("10.244.0.5/32")], 0),
            Some(net("10.244.0.128/25"))
        );
        assert_eq!(
            find_free(pool, 26, &[net("10.244.0.0/16")], 0),
            None,
            "a block around the whole pool"
        );
        // blocks of the other family or outside the pool do not matter
        assert_eq!(
            find_free(pool, 26, &[net("fd00::/64"), net("10.245.0.0/24")], 0),
            Some(net("10.244.0.0/26"))
        );
        assert_eq!(find_free(pool, 23, &[], 0), None, "bigger than the pool");
    }

    #[test]
    fn big_v6_pools_are_walked_without_enumerating() {
        let pool = net("fd00:244::/56");
        let seed = node_seed("node-a");
        let a = find_free(pool, 122, &[], seed).unwrap();
        assert!(pool.contains(&a.network()) && a.prefix_len() == 122);
        let b = find_free(pool, 122, &[a], seed).unwrap();
        assert_eq!(
            super::to_u128(b.network()) - super::to_u128(a.network()),
            64,
            "the next candidate"
        );
        let n = find_free(pool, 64, &[a, b], seed).unwrap();
        assert!(!n.contains(&a.network()), "{n} holds {a}");
    }

    #[test]
    fn nodes_start_apart() {
        let pool = net("10.244.0.0/16");
        let starts: BTreeSet<IpNet> = ["node-a", "node-b", "node-c", "node-d"]
            .iter()
            .map(|n| find_free(pool, 26, &[], node_seed(n)).unwrap())
            .collect();
        assert_eq!(starts.len(), 4, "{starts:?}");
        assert_eq!(node_seed("node-a"), node_seed("node-a"));
    }

    #[test]
    fn claims_of_mixed_sizes_compare_what_they_could_overlap() {
        let sizes: BTreeSet<u8> = [24, 26].into();
        let small = claim_plan(net("10.244.1.64/26"), &sizes);
        assert_eq!(small.supernets, [net("10.244.1.0/24")]);
        assert!(!small.compare_counter && small.bump_counter);
        let big = claim_plan(net("10.244.1.0/24"), &sizes);
        assert!(big.supernets.is_empty());
        assert!(big.compare_counter && !big.bump_counter);
        let one: BTreeSet<u8> = [26].into();
        let plain = claim_plan(net("10.244.1.64/26"), &one);
        assert_eq!(
            plain,
            ClaimPlan {
                supernets: vec![],
                compare_counter: false,
                bump_counter: false
            },
            "one size: the block key alone"
        );
        let p = Pool {
            cidr: net("10.244.0.0/16"),
            block_prefix: 26,
            node_block_prefix: 24,
        };
        assert_eq!(
            sizes_of(&p, &[net("10.244.9.0/28"), net("10.9.0.0/20")]),
            [24, 26, 28].into()
        );
        assert_eq!(p.block_count(IpamMode::Pod), 1024);
        assert_eq!(p.block_count(IpamMode::Node), 256);
    }

    fn sizes_of(p: &Pool, present: &[IpNet]) -> BTreeSet<u8> {
        sizes(p, present)
    }
}
