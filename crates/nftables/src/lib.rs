//! # ferro-nftables: an nf_tables netlink codec
//!
//! Hand-written, because a CNI plugin may not spawn `nft` (about 4 ms per exec) and the crates
//! that speak nf_tables either exec `nft` (`nftables`), need libclang or C libraries
//! (`rustables`, `nftnl`), or are immature.
//! Nothing in it is specific to one ruleset: tables of any name and family, base and regular
//! chains, rules built from expressions, named sets and (verdict) maps with concatenated keys,
//! interval sets of concatenations (range elements), elements with comments, named counters,
//! rate limits and logging to nfnetlink_log groups ([`nflog`] reads those packets back),
//! `numgen` load balancing, `reject` (ICMP or TCP reset), dynamic sets with timeouts. A
//! [`Batch`] is sent as **one** transaction; [`NftSocket`] reads only the table it is asked
//! about, never the whole ruleset. Kernel: 5.2 (NAT in `inet` tables), 5.6 for interval
//! concatenations, 5.10 for chain comments; `NFT_MSG_DESTROY*` (6.3) is not used (see
//! [`Batch`]).
//!
//! ## Layout
//! - [`uapi`]: every kernel constant (netlink, nfnetlink, nf_tables, libnftnl userdata);
//! - [`wire`], [`sock`]: netlink framing and the synchronous socket (one `sendmsg` of
//!   requests, replies filed by sequence number), public so that other nfnetlink users
//!   (ctnetlink) share them;
//! - `object`: tables, chains, rules, sets, elements as data ([`TableRef`], [`Chain`],
//!   [`SetDef`], [`Elem`]...);
//! - `batch`: [`Op`]/[`Batch`], encoded into one transaction; `describe`: the same in nft
//!   syntax for messages; `error`: [`NftError`], naming the operation that failed;
//! - `encoded`: [`EncodedBatch`], a transaction encoded as it is built, for loads too large
//!   to hold as operations and as bytes at once;
//! - `expr`: [`Expr`], encoded as `nft` encodes it, including the x_tables matches and
//!   targets that iptables-nft stores ([`Expr::Match`], [`Expr::Target`]); `rule`:
//!   [`RuleBuilder`], nft statements as expressions;
//! - [`decode`]: expressions and objects read back from the kernel ([`RuleInfo`], with
//!   [`RuleInfo::iptables_comment`]...); [`print`](mod@print): `nft --debug=netlink` notation;
//! - `socket`: [`NftSocket`]: apply batches, GET and dump objects of one table;
//! - [`nflog`]: a socket bound to an nfnetlink_log group, and the packets it reads.
//!
//! Tests: `tests/encoding.rs` compares with byte-for-byte captures of what nft 1.0.6 sends
//! (`tests/fixtures/`, with the script that took them); `tests/xtables.rs` decodes rules that
//! iptables-nft wrote; `tests/kernel.rs` (root) runs against the kernel in private namespaces.

mod batch;
pub mod decode;
mod describe;
mod encoded;
mod error;
mod expr;
pub mod nflog;
mod object;
pub mod print;
mod rule;
pub mod sock;
mod socket;
pub mod uapi;
pub mod wire;

#[cfg(test)]
mod tests;

pub use batch::{elem_messages, Batch, Op, OpKind, MAX_ELEMS_BYTES};
pub use decode::{ChainInfo, CounterInfo, ElemInfo, RuleInfo, SetInfo, TableInfo};
pub use encoded::EncodedBatch;
pub use error::NftError;
pub use expr::{CmpOp, CtKey, Data, Expr, FibResult, MetaKey, NatKind, PayloadBase, Reg, Verdict};
pub use object::{
    priority, proto_name, BaseChain, Chain, ChainType, DataType, Elem, Family, Hook, KeyPart,
    MapData, Policy, Rule, SetDef, TableRef, MAX_COMMENT_LEN, MAX_NAME_LEN,
};
pub use rule::{Dir, KeyField, RuleBuilder};
pub use socket::NftSocket;
pub use uapi::{
    nfproto, CT_STATE_ESTABLISHED, CT_STATE_NEW, CT_STATE_RELATED, CT_STATUS_DNAT, FIB_F_DADDR,
    FIB_F_IIF, FIB_F_MARK, FIB_F_OIF, FIB_F_PRESENT, FIB_F_SADDR, NFT_DATA_VERDICT,
    NFT_SET_INTERVAL, NFT_SET_MAP, NF_NAT_RANGE_MAP_IPS, NF_NAT_RANGE_PROTO_SPECIFIED, RTN_LOCAL,
};
