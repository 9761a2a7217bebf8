//! # ferro-net: every kernel side effect of the suite
//!
//! Only this crate talks netlink, nftables or sysctl. Operations are small and idempotent
//! (`ensure_*`), each documented with its `ip`/`nft` equivalent.
//!
//! ## Layout
//! - [`nft`]: an nf_tables netlink codec: batches (one transaction per call), dumps of our
//!   own table only;
//! - [`firewall`]: the suite's nftables model (masquerade sets, anti-spoofing, host ports),
//!   built as batch operations on [`nft`];
//! - [`conntrack`]: conntrack entry removal over ctnetlink.

pub mod conntrack;
pub mod firewall;
pub mod nft;
