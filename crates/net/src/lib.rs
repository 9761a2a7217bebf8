//! # ferro-net: every kernel side effect of the suite
//!
//! Only this crate talks netlink, nftables or sysctl. Operations are small and idempotent
//! (`ensure_*`), each documented with its `ip`/`nft` equivalent.
//!
//! ## Layout
//! - [`attach`]: applying an IPAM result inside the pod (shared by every main plugin);
//! - [`netns`]: opening `CNI_NETNS`, running code inside it;
//! - [`rtnl`]: links (veth, bridge, vxlan), addresses, routes, neighbours, FDB over rtnetlink;
//! - [`overlay`]: the VXLAN device and per-node peers (neighbour, FDB, route), reconciled;
//! - [`transparent`]: Azure CNI transparent mode pod attachment (flat and overlay);
//! - [`sysctl`]: per-namespace sysctls, read before written;
//! - [`names`]: deterministic interface names and MACs per attachment;
//! - [`nft`]: an nf_tables netlink codec: batches (one transaction per call), dumps of our
//!   own table only;
//! - [`firewall`]: the suite's nftables model (masquerade sets, anti-spoofing, host ports),
//!   built as batch operations on [`nft`];
//! - [`conntrack`]: conntrack entry removal over ctnetlink.

pub mod attach;
pub mod conntrack;
pub mod error;
pub mod firewall;
pub mod names;
pub mod netns;
pub mod nft;
pub mod overlay;
pub mod rtnl;
pub mod sysctl;
pub mod transparent;

pub use error::NetError;
pub use netns::Netns;
pub use rtnl::{Kernel, Link, Rtnl};
