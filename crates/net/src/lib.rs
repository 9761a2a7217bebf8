//! # ferro-net: every kernel side effect of the suite
//!
//! Only this crate (and the nf_tables codec it builds on, `ferro-nftables`) talks netlink,
//! nftables or sysctl; `clippy.toml` rejects netlink sockets opened anywhere else. Operations
//! are small and idempotent (`ensure_*`), each documented with its `ip`/`nft` equivalent.
//!
//! ## Layout
//! - [`announce`]: gratuitous ARP and unsolicited neighbour advertisements (a load-balancer
//!   address moving to this node);
//! - [`attach`]: applying an IPAM result inside the pod (shared by every main plugin);
//! - [`netns`]: opening `CNI_NETNS`, running code inside it;
//! - [`rtnl`]: links (veth, bridge, vxlan), addresses, routes, neighbours, FDB over route
//!   netlink (on `ferro-nftables`' synchronous netlink socket), one file per object, one
//!   exchange per request or batch, interrupted dumps read again;
//! - [`overlay`]: the VXLAN device (over an IPv4 or IPv6 underlay) and per-node peers
//!   (neighbour, FDB, route per pod family), reconciled; pod CIDRs and slices per family;
//! - [`transparent`]: Azure CNI transparent mode pod attachment (flat and overlay);
//! - [`sysctl`]: per-namespace sysctls, read before written;
//! - [`names`]: deterministic interface names and MACs per attachment;
//! - [`nft`]: the nf_tables codec, re-exported from `ferro-nftables` (batches sent as one
//!   transaction, reads of one table only); its errors reach the runtime through
//!   [`firewall::FirewallError`], which maps them to CNI codes;
//! - [`firewall`]: the suite's nftables model (masquerade sets, anti-spoofing, host ports),
//!   built as batch operations on [`nft`]; and the removal of the reference plugins'
//!   iptables-nft state of a pod (a node taken over from them: the one exception to "never
//!   touch another owner's tables"); the design is in
//!   [docs/firewall.md](../../../docs/firewall.md);
//! - [`conntrack`]: conntrack entry removal over ctnetlink, on `ferro-nftables`' netfilter
//!   netlink socket.

pub mod announce;
pub mod attach;
pub mod conntrack;
pub mod error;
pub mod firewall;
pub mod names;
pub mod netns;
pub mod overlay;
pub mod rtnl;
pub mod sysctl;
pub mod transparent;

pub use ferro_nftables as nft;

pub use error::NetError;
pub use netns::Netns;
pub use rtnl::{Kernel, Link, Rtnl};

use std::net::IpAddr;

/// A link-local address (`169.254.0.0/16`, `fe80::/10`): never a node's VNet or pod
/// address, never clashing with a gateway.
pub fn is_link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => a.is_link_local(),
        IpAddr::V6(a) => (a.segments()[0] & 0xffc0) == 0xfe80,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_local_in_both_families() {
        for (ip, want) in [
            ("169.254.1.1", true),
            ("169.255.0.1", false),
            ("10.0.0.1", false),
            ("fe80::1", true),
            ("febf::1", true),
            ("fec0::1", false),
            ("fd00::1", false),
        ] {
            assert_eq!(is_link_local(ip.parse().unwrap()), want, "{ip}");
        }
    }
}
