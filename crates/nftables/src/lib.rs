//! # ferro-nftables: an nf_tables netlink codec
//!
//! Hand-written, because a CNI plugin may not spawn `nft` (≈ 4 ms per exec) and the crates
//! that speak nf_tables either exec `nft` (`nftables`), need libclang or C libraries
//! (`rustables`, `nftnl`), or are immature.
//! Nothing in it is specific to one ruleset: tables of any name and family, base and regular
//! chains, rules built from expressions, named sets, data maps and verdict maps with
//! concatenated keys, interval sets of concatenations (range elements), elements with
//! comments, named counters, rate limits and logging to nfnetlink_log groups.
//!
//! - [`Batch`]: operations on tables, chains, rules, sets and elements sent as **one**
//!   transaction (`NFNL_MSG_BATCH_BEGIN` … `NFNL_MSG_BATCH_END`, one `sendmsg`, an ACK per
//!   message); the first error names the operation and object.
//! - [`RuleBuilder`]/[`Expr`]: expressions encoded as `nft` encodes them (the crate's
//!   `tests/fixtures/` are byte-for-byte captures of nft 1.0.6, with the script that took
//!   them), decoded back from dumps, printed as `nft --debug=netlink` prints them.
//! - [`NftSocket`]: the socket, opened in the calling thread's network namespace. Reads are
//!   non-dump GETs of named objects, or dumps the kernel restricts to one table (rules, sets,
//!   elements of one set) and, for rules, to one chain: a caller reads exactly the table it
//!   names, never the whole ruleset.
//! - [`Expr::Match`]/[`Expr::Target`]: the x_tables matches and targets iptables-nft stores
//!   (`nft_compat`), decoded so that its rules can be recognised: their names, and the text
//!   of a `comment` match ([`RuleInfo::iptables_comment`]).
//! - [`sock`]/[`wire`]: the netfilter netlink layer underneath, public so that other
//!   nfnetlink users (ctnetlink) share it instead of framing messages again;
//!   [`nflog`]: packets of `log group N` rules, read back (nfnetlink_log).
//!
//! Kernel requirements: 5.2 for NAT in `inet` tables, 5.6 for interval concatenations, 5.10
//! for chain comments; everything else (fib, concatenations, named counters, non-dump element
//! GET) is older. `NFT_MSG_DESTROY*` (6.3) is
//! not used: see [`Batch`] for how deletes stay idempotent on 6.1.
//!
//! ## Layout
//! - [`uapi`]: every kernel constant (netlink, nfnetlink, nf_tables, libnftnl userdata);
//! - [`wire`]: netlink framing: message headers, attributes built and parsed;
//! - [`sock`]: the synchronous netlink socket: one `sendmsg` of requests, replies filed by
//!   sequence number, interrupted dumps flagged;
//! - `object`: tables, chains, rules, sets, elements as data ([`TableRef`], [`Chain`],
//!   [`SetDef`], [`Elem`]...);
//! - `batch`: [`Op`]/[`Batch`] and their encoding into one transaction; `describe`: the
//!   same in nft syntax for messages;
//! - `expr`: [`Expr`] and its encoding; `rule`: [`RuleBuilder`], nft statements as
//!   expressions;
//! - [`decode`]: expressions and objects read back from the kernel ([`RuleInfo`],
//!   [`SetInfo`], [`ElemInfo`]...); [`print`](mod@print): `nft --debug=netlink` notation;
//! - `socket`: [`NftSocket`]: apply batches, GET and dump objects of one table;
//! - `error`: [`NftError`], naming the operation in nft syntax.
//!
//! Tests: unit tests beside the code; `tests/encoding.rs` against the captures in
//! `tests/fixtures/` of what nft sends; `tests/xtables.rs` against what the kernel dumps for
//! rules iptables-nft wrote (the reference CNI plugins' nat rules);
//! `tests/kernel.rs` (root) against the kernel in private namespaces.

mod batch;
pub mod decode;
mod describe;
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

pub use batch::{Batch, Op, OpKind};
pub use decode::{ChainInfo, CounterInfo, ElemInfo, RuleInfo, SetInfo, TableInfo};
pub use error::NftError;
pub use expr::{CmpOp, CtKey, Data, Expr, FibResult, MetaKey, NatKind, PayloadBase, Reg, Verdict};
pub use object::{
    priority, proto_name, BaseChain, Chain, ChainType, DataType, Elem, Family, Hook, KeyPart,
    MapData, Policy, Rule, SetDef, TableRef, MAX_COMMENT_LEN, MAX_NAME_LEN,
};
pub use rule::{Dir, KeyField, RuleBuilder};
pub use socket::NftSocket;
pub use uapi::{
    nfproto, CT_STATE_ESTABLISHED, CT_STATE_RELATED, CT_STATUS_DNAT, FIB_F_DADDR, FIB_F_IIF,
    FIB_F_MARK, FIB_F_OIF, FIB_F_PRESENT, FIB_F_SADDR, NFT_DATA_VERDICT, NFT_SET_INTERVAL,
    NFT_SET_MAP, NF_NAT_RANGE_MAP_IPS, NF_NAT_RANGE_PROTO_SPECIFIED, RTN_LOCAL,
};
