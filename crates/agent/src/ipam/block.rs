//! One block of the pool, pure: its addresses by ordinal (offset from the block's network
//! address), the reserved ones, the allocations and a round-robin cursor.
//!
//! Reserved ordinals:
//! - node-mode blocks (kubenet's on-link subnet): the network address, the gateway (network
//!   + 1, which goes on the bridge) and, for IPv4, the broadcast address;
//! - pod-mode blocks (addresses routed one by one): the pool's own network address and, for
//!   IPv4, its broadcast address, when the block holds them.
//!
//! Allocation is round robin from a cursor, as host-local does, so a released address is
//! handed out again only after the rest of the block has been: the address free longest is
//! the next one used.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ferro_agent_api::ipam::{Family, IpamHandle, IpamMode, PodRef};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// An address as a number (IPv4 in the low 32 bits).
pub fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// The address `n` of `family` (IPv4 uses the low 32 bits).
pub fn from_u128(family: Family, n: u128) -> IpAddr {
    match family {
        Family::Ipv4 => IpAddr::V4(Ipv4Addr::from(u32::try_from(n).unwrap_or(u32::MAX))),
        Family::Ipv6 => IpAddr::V6(Ipv6Addr::from(n)),
    }
}

/// The family of a CIDR.
pub fn family(net: &IpNet) -> Family {
    Family::of(net.addr())
}

/// How many addresses `net` spans (saturating at `u128::MAX` for a /0 of IPv6).
pub fn size(net: &IpNet) -> u128 {
    let bits = u32::from(net.max_prefix_len() - net.prefix_len());
    1u128.checked_shl(bits).unwrap_or(u128::MAX)
}

/// One allocation: who holds the address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alloc {
    /// The attachment.
    #[serde(flatten)]
    pub handle: IpamHandle,
    /// The CNI network.
    pub network: String,
    /// The pod, when the runtime named it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodRef>,
    /// `CNI_NETNS`, recorded only when the agent could see it at ADD (its later absence is
    /// then evidence that the pod is gone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<String>,
    /// When it was made (seconds since 1970).
    pub since: u64,
    /// The journal sequence number of the allocation.
    pub seq: u64,
}

/// A block held by this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// The block.
    pub cidr: IpNet,
    /// Node or pod mode.
    pub mode: IpamMode,
    /// Allocations by ordinal.
    pub allocs: BTreeMap<u128, Alloc>,
    /// The next ordinal to try.
    pub cursor: u128,
    reserved: BTreeSet<u128>,
}

impl Block {
    /// An empty block; `pool` (when known) is the pod CIDR it was cut from.
    pub fn new(cidr: IpNet, mode: IpamMode, pool: Option<IpNet>) -> Block {
        let cidr = cidr.trunc();
        let last = size(&cidr) - 1;
        let v4 = family(&cidr) == Family::Ipv4;
        let mut reserved = BTreeSet::new();
        match mode {
            IpamMode::Node => {
                reserved.insert(0);
                reserved.insert(1.min(last));
                if v4 {
                    reserved.insert(last);
                }
            }
            IpamMode::Pod => {
                if let Some(p) = pool {
                    if p.network() == cidr.network() {
                        reserved.insert(0);
                    }
                    if v4 && p.broadcast() == cidr.broadcast() {
                        reserved.insert(last);
                    }
                }
            }
        }
        Block {
            cidr,
            mode,
            allocs: BTreeMap::new(),
            cursor: 0,
            reserved,
        }
    }

    /// Its family.
    pub fn family(&self) -> Family {
        family(&self.cidr)
    }

    /// Addresses it can hand out.
    pub fn capacity(&self) -> u128 {
        size(&self.cidr).saturating_sub(self.reserved.len() as u128)
    }

    /// Addresses in use.
    pub fn used(&self) -> u64 {
        self.allocs.len() as u64
    }

    /// Whether nothing is allocated.
    pub fn is_empty(&self) -> bool {
        self.allocs.is_empty()
    }

    /// Whether every usable address is taken.
    pub fn is_full(&self) -> bool {
        self.allocs.len() as u128 >= self.capacity()
    }

    /// The ordinal of `ip`, when the block holds it.
    pub fn ordinal(&self, ip: IpAddr) -> Option<u128> {
        self.cidr
            .contains(&ip)
            .then(|| to_u128(ip) - to_u128(self.cidr.network()))
    }

    /// The address of ordinal `o`.
    pub fn address(&self, o: u128) -> IpAddr {
        from_u128(self.family(), to_u128(self.cidr.network()) + o)
    }

    /// Whether ordinal `o` is never handed out.
    pub fn is_reserved(&self, o: u128) -> bool {
        self.reserved.contains(&o)
    }

    /// The gateway of a node-mode block (network + 1).
    pub fn gateway(&self) -> Option<IpAddr> {
        (self.mode == IpamMode::Node).then(|| self.address(1))
    }

    /// The address with the prefix a pod gets: the block's in node mode, a host prefix in
    /// pod mode.
    pub fn pod_address(&self, ip: IpAddr) -> IpNet {
        let prefix = match self.mode {
            IpamMode::Node => self.cidr.prefix_len(),
            IpamMode::Pod => self.cidr.max_prefix_len(),
        };
        IpNet::new(ip, prefix).unwrap_or_else(|_| IpNet::from(ip))
    }

    /// Takes the next free address from the cursor on (wrapping), for `alloc`; `None` when
    /// the block is full.
    pub fn allocate(&mut self, alloc: Alloc) -> Option<IpAddr> {
        if self.is_full() {
            return None;
        }
        let total = size(&self.cidr);
        let mut o = self.cursor % total;
        // At most every allocation and every reserved ordinal is skipped before a free one.
        for _ in 0..=(self.allocs.len() + self.reserved.len()) {
            if !self.allocs.contains_key(&o) && !self.reserved.contains(&o) {
                self.allocs.insert(o, alloc);
                self.cursor = if o + 1 >= total { 0 } else { o + 1 };
                return Some(self.address(o));
            }
            o = if o + 1 >= total { 0 } else { o + 1 };
        }
        None
    }

    /// Records `alloc` at `ip` (journal replay, the store's copy); false when the address is
    /// outside the block, reserved or already held by another attachment.
    pub fn insert(&mut self, ip: IpAddr, alloc: Alloc) -> bool {
        let Some(o) = self.ordinal(ip) else {
            return false;
        };
        if self.reserved.contains(&o) {
            return false;
        }
        match self.allocs.get(&o) {
            Some(a) if a.handle != alloc.handle => false,
            _ => {
                self.allocs.insert(o, alloc);
                true
            }
        }
    }

    /// Frees `ip` when `handle` holds it; the allocation it had.
    pub fn release(&mut self, ip: IpAddr, handle: &IpamHandle) -> Option<Alloc> {
        let o = self.ordinal(ip)?;
        if self.allocs.get(&o).is_some_and(|a| &a.handle == handle) {
            self.allocs.remove(&o)
        } else {
            None
        }
    }

    /// The allocation at `ip`.
    pub fn get(&self, ip: IpAddr) -> Option<&Alloc> {
        self.allocs.get(&self.ordinal(ip)?)
    }

    /// Every allocation with its address, in address order.
    pub fn iter(&self) -> impl Iterator<Item = (IpAddr, &Alloc)> {
        self.allocs.iter().map(|(o, a)| (self.address(*o), a))
    }
}

/// An allocation for tests: attachment `<id>/eth0` of network `n`.
#[cfg(test)]
pub(crate) fn test_alloc(id: &str) -> Alloc {
    Alloc {
        handle: IpamHandle {
            container_id: id.into(),
            ifname: "eth0".into(),
        },
        network: "n".into(),
        pod: None,
        netns: None,
        since: 0,
        seq: 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alloc(id: &str) -> Alloc {
        test_alloc(id)
    }

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn node_blocks_keep_network_gateway_and_broadcast() {
        let mut b = Block::new(net("10.244.3.0/24"), IpamMode::Node, None);
        assert_eq!(b.capacity(), 253);
        assert_eq!(b.gateway(), Some("10.244.3.1".parse().unwrap()));
        let ip = b.allocate(alloc("a")).unwrap();
        assert_eq!(ip.to_string(), "10.244.3.2");
        assert_eq!(b.pod_address(ip).to_string(), "10.244.3.2/24");
        for i in 0..252 {
            assert!(b.allocate(alloc(&format!("x{i}"))).is_some(), "{i}");
        }
        assert!(b.is_full());
        assert_eq!(b.allocate(alloc("z")), None);
        assert!(b.get("10.244.3.255".parse().unwrap()).is_none());
        assert!(b.get("10.244.3.1".parse().unwrap()).is_none());
        let v6 = Block::new(net("fd00:244:0:3::/64"), IpamMode::Node, None);
        assert_eq!(v6.capacity(), (1u128 << 64) - 2);
        assert_eq!(v6.gateway(), Some("fd00:244:0:3::1".parse().unwrap()));
    }

    #[test]
    fn pod_blocks_use_every_address_but_the_pools_edges() {
        let pool = Some(net("10.244.0.0/16"));
        let mut first = Block::new(net("10.244.0.0/26"), IpamMode::Pod, pool);
        assert_eq!(first.capacity(), 63);
        assert_eq!(
            first.allocate(alloc("a")).unwrap().to_string(),
            "10.244.0.1"
        );
        let mut mid = Block::new(net("10.244.7.64/26"), IpamMode::Pod, pool);
        assert_eq!(mid.capacity(), 64);
        let ip = mid.allocate(alloc("a")).unwrap();
        assert_eq!(ip.to_string(), "10.244.7.64");
        assert_eq!(mid.pod_address(ip).to_string(), "10.244.7.64/32");
        assert_eq!(mid.gateway(), None);
        let last = Block::new(net("10.244.255.192/26"), IpamMode::Pod, pool);
        assert_eq!(last.capacity(), 63);
        let v6 = Block::new(
            net("fd00:244::/122"),
            IpamMode::Pod,
            Some(net("fd00:244::/56")),
        );
        assert_eq!(
            v6.capacity(),
            63,
            "the pool's subnet-router anycast address"
        );
    }

    #[test]
    fn round_robin_reuses_the_address_free_longest() {
        let mut b = Block::new(net("10.1.0.0/29"), IpamMode::Pod, None);
        let a = b.allocate(alloc("a")).unwrap();
        let bb = b.allocate(alloc("b")).unwrap();
        assert_eq!(
            b.release(a, &alloc("a").handle)
                .unwrap()
                .handle
                .container_id,
            "a"
        );
        assert!(
            b.release(bb, &alloc("a").handle).is_none(),
            "not its holder"
        );
        let c = b.allocate(alloc("c")).unwrap();
        assert_eq!(c.to_string(), "10.1.0.2", "not the one just freed");
        for i in 0..5 {
            b.allocate(alloc(&format!("x{i}"))).unwrap();
        }
        // the cursor wraps: .0, freed first, comes back before anything else
        assert_eq!(b.allocate(alloc("w")), Some(a));
        assert!(b.is_full());
        assert!(b.release(bb, &alloc("b").handle).is_some());
        assert_eq!(b.allocate(alloc("d")), Some(bb));
    }

    #[test]
    fn insert_refuses_reserved_foreign_and_taken_addresses() {
        let mut b = Block::new(net("10.244.3.0/24"), IpamMode::Node, None);
        assert!(!b.insert("10.244.3.1".parse().unwrap(), alloc("a")));
        assert!(!b.insert("10.244.4.1".parse().unwrap(), alloc("a")));
        assert!(b.insert("10.244.3.9".parse().unwrap(), alloc("a")));
        assert!(
            b.insert("10.244.3.9".parse().unwrap(), alloc("a")),
            "same holder"
        );
        assert!(!b.insert("10.244.3.9".parse().unwrap(), alloc("b")));
        assert_eq!(b.used(), 1);
        assert_eq!(
            b.iter().map(|(ip, _)| ip.to_string()).collect::<Vec<_>>(),
            ["10.244.3.9"]
        );
    }
}
