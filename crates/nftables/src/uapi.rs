//! Every kernel constant the crate uses, in one place, grouped by the UAPI header it comes
//! from: `linux/netlink.h`, `linux/netfilter/nfnetlink.h`, `linux/netfilter/nf_tables.h`,
//! `linux/netfilter/nf_nat.h`, `linux/netfilter/nf_conntrack_common.h`, `linux/rtnetlink.h`,
//! plus libnftnl's userdata TLV types (`libnftnl/udata.h`), which nft writes into comments
//! and set descriptions.
//!
//! Names are the kernel's, so a constant can be looked up in the header it is quoted from.

// ---- linux/netlink.h -------------------------------------------------------------------------

/// Length of `struct nlmsghdr`.
pub const NLMSG_HDRLEN: usize = 16;

/// `NLMSG_NOOP`.
pub const NLMSG_NOOP: u16 = 1;
/// `NLMSG_ERROR`: an error, or an ACK (error 0).
pub const NLMSG_ERROR: u16 = 2;
/// `NLMSG_DONE`: the end of a dump.
pub const NLMSG_DONE: u16 = 3;

/// `NLM_F_REQUEST`.
pub const NLM_F_REQUEST: u16 = 0x001;
/// `NLM_F_ACK`: answer with an ACK (or the error).
pub const NLM_F_ACK: u16 = 0x004;
/// `NLM_F_DUMP_INTR`: the dump was interrupted by a change; its content is inconsistent.
pub const NLM_F_DUMP_INTR: u16 = 0x010;
/// `NLM_F_DUMP` (`NLM_F_ROOT | NLM_F_MATCH`).
pub const NLM_F_DUMP: u16 = 0x300;
/// `NLM_F_EXCL`: fail if the object exists.
pub const NLM_F_EXCL: u16 = 0x200;
/// `NLM_F_CREATE`: create the object if missing.
pub const NLM_F_CREATE: u16 = 0x400;
/// `NLM_F_APPEND`: add at the end (rules).
pub const NLM_F_APPEND: u16 = 0x800;
/// In an `NLMSG_ERROR`: the original message is not echoed past its header.
pub const NLM_F_CAPPED: u16 = 0x100;
/// In an `NLMSG_ERROR`: extended-ack TLVs follow.
pub const NLM_F_ACK_TLVS: u16 = 0x200;
/// `NLMSGERR_ATTR_MSG`: the extended-ack message string.
pub const NLMSGERR_ATTR_MSG: u16 = 1;

/// `NLA_F_NESTED`.
pub const NLA_F_NESTED: u16 = 0x8000;
/// `NLA_F_NET_BYTEORDER`.
pub const NLA_F_NET_BYTEORDER: u16 = 0x4000;
/// `NLA_TYPE_MASK`: the attribute type without the two flags above.
pub const NLA_TYPE_MASK: u16 = !(NLA_F_NESTED | NLA_F_NET_BYTEORDER);

// ---- linux/netfilter/nfnetlink.h ------------------------------------------------------------

/// Length of `struct nfgenmsg`.
pub const NFGENMSG_LEN: usize = 4;
/// `NFNL_SUBSYS_CTNETLINK`.
pub const NFNL_SUBSYS_CTNETLINK: u16 = 1;
/// `NFNL_SUBSYS_NFTABLES`.
pub const NFNL_SUBSYS_NFTABLES: u16 = 10;
/// `NFNL_MSG_BATCH_BEGIN` (`NLMSG_MIN_TYPE`).
pub const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
/// `NFNL_MSG_BATCH_END`.
pub const NFNL_MSG_BATCH_END: u16 = 0x11;
/// `NFNL_BATCH_GENID`: apply the batch only if the ruleset generation is still this one.
pub const NFNL_BATCH_GENID: u16 = 1;

// ---- linux/netfilter/nf_tables.h: message types (enum nf_tables_msg_types) -------------------

/// `NFT_MSG_NEWTABLE`.
pub const NFT_MSG_NEWTABLE: u16 = 0;
/// `NFT_MSG_GETTABLE`.
pub const NFT_MSG_GETTABLE: u16 = 1;
/// `NFT_MSG_DELTABLE`.
pub const NFT_MSG_DELTABLE: u16 = 2;
/// `NFT_MSG_NEWCHAIN`.
pub const NFT_MSG_NEWCHAIN: u16 = 3;
/// `NFT_MSG_GETCHAIN`.
pub const NFT_MSG_GETCHAIN: u16 = 4;
/// `NFT_MSG_DELCHAIN`.
pub const NFT_MSG_DELCHAIN: u16 = 5;
/// `NFT_MSG_NEWRULE`.
pub const NFT_MSG_NEWRULE: u16 = 6;
/// `NFT_MSG_GETRULE`.
pub const NFT_MSG_GETRULE: u16 = 7;
/// `NFT_MSG_DELRULE`.
pub const NFT_MSG_DELRULE: u16 = 8;
/// `NFT_MSG_NEWSET`.
pub const NFT_MSG_NEWSET: u16 = 9;
/// `NFT_MSG_GETSET`.
pub const NFT_MSG_GETSET: u16 = 10;
/// `NFT_MSG_DELSET`.
pub const NFT_MSG_DELSET: u16 = 11;
/// `NFT_MSG_NEWSETELEM`.
pub const NFT_MSG_NEWSETELEM: u16 = 12;
/// `NFT_MSG_GETSETELEM`.
pub const NFT_MSG_GETSETELEM: u16 = 13;
/// `NFT_MSG_DELSETELEM`.
pub const NFT_MSG_DELSETELEM: u16 = 14;
/// `NFT_MSG_GETGEN`.
pub const NFT_MSG_GETGEN: u16 = 16;
/// `NFT_MSG_NEWOBJ` (stateful objects: named counters).
pub const NFT_MSG_NEWOBJ: u16 = 18;
/// `NFT_MSG_GETOBJ`.
pub const NFT_MSG_GETOBJ: u16 = 19;
/// `NFT_MSG_DELOBJ`.
pub const NFT_MSG_DELOBJ: u16 = 20;

// ---- nf_tables.h: object attributes ----------------------------------------------------------

/// `NFTA_TABLE_NAME`.
pub const NFTA_TABLE_NAME: u16 = 1;
/// `NFTA_TABLE_FLAGS`.
pub const NFTA_TABLE_FLAGS: u16 = 2;
/// `NFTA_TABLE_USE`.
pub const NFTA_TABLE_USE: u16 = 3;
/// `NFTA_TABLE_HANDLE`.
pub const NFTA_TABLE_HANDLE: u16 = 4;

/// `NFTA_CHAIN_TABLE`.
pub const NFTA_CHAIN_TABLE: u16 = 1;
/// `NFTA_CHAIN_HANDLE`.
pub const NFTA_CHAIN_HANDLE: u16 = 2;
/// `NFTA_CHAIN_NAME`.
pub const NFTA_CHAIN_NAME: u16 = 3;
/// `NFTA_CHAIN_HOOK`.
pub const NFTA_CHAIN_HOOK: u16 = 4;
/// `NFTA_CHAIN_POLICY`.
pub const NFTA_CHAIN_POLICY: u16 = 5;
/// `NFTA_CHAIN_USE`.
pub const NFTA_CHAIN_USE: u16 = 6;
/// `NFTA_CHAIN_TYPE`.
pub const NFTA_CHAIN_TYPE: u16 = 7;
/// `NFTA_CHAIN_USERDATA`.
pub const NFTA_CHAIN_USERDATA: u16 = 12;
/// `NFTA_HOOK_HOOKNUM`.
pub const NFTA_HOOK_HOOKNUM: u16 = 1;
/// `NFTA_HOOK_PRIORITY`.
pub const NFTA_HOOK_PRIORITY: u16 = 2;

/// `NFTA_RULE_TABLE`.
pub const NFTA_RULE_TABLE: u16 = 1;
/// `NFTA_RULE_CHAIN`.
pub const NFTA_RULE_CHAIN: u16 = 2;
/// `NFTA_RULE_HANDLE`.
pub const NFTA_RULE_HANDLE: u16 = 3;
/// `NFTA_RULE_EXPRESSIONS`.
pub const NFTA_RULE_EXPRESSIONS: u16 = 4;
/// `NFTA_RULE_USERDATA`.
pub const NFTA_RULE_USERDATA: u16 = 7;

/// `NFTA_SET_TABLE`.
pub const NFTA_SET_TABLE: u16 = 1;
/// `NFTA_SET_NAME`.
pub const NFTA_SET_NAME: u16 = 2;
/// `NFTA_SET_FLAGS`.
pub const NFTA_SET_FLAGS: u16 = 3;
/// `NFTA_SET_KEY_TYPE`.
pub const NFTA_SET_KEY_TYPE: u16 = 4;
/// `NFTA_SET_KEY_LEN`.
pub const NFTA_SET_KEY_LEN: u16 = 5;
/// `NFTA_SET_DATA_TYPE`.
pub const NFTA_SET_DATA_TYPE: u16 = 6;
/// `NFTA_SET_DATA_LEN`.
pub const NFTA_SET_DATA_LEN: u16 = 7;
/// `NFTA_SET_ID`.
pub const NFTA_SET_ID: u16 = 10;
/// `NFTA_SET_TIMEOUT` (milliseconds, big endian 64 bits).
pub const NFTA_SET_TIMEOUT: u16 = 11;
/// `NFTA_SET_USERDATA`.
pub const NFTA_SET_USERDATA: u16 = 13;
/// `NFTA_SET_DESC`: the set's description (concatenated field lengths).
pub const NFTA_SET_DESC: u16 = 9;
/// `NFTA_SET_DESC_CONCAT`: a list of `NFTA_LIST_ELEM { NFTA_SET_FIELD_LEN }`.
pub const NFTA_SET_DESC_CONCAT: u16 = 2;
/// `NFTA_SET_FIELD_LEN`: one field's length in bytes.
pub const NFTA_SET_FIELD_LEN: u16 = 1;
/// `NFT_SET_INTERVAL`: elements are ranges.
pub const NFT_SET_INTERVAL: u32 = 0x4;
/// `NFT_SET_CONCAT`: a concatenation of ranges (set by nft with interval concatenations).
pub const NFT_SET_CONCAT: u32 = 0x80;
/// `NFTA_SET_ELEM_KEY_END`: the last key of a range element of a concatenated interval set.
pub const NFTA_SET_ELEM_KEY_END: u16 = 10;

/// `NFTA_SET_ELEM_LIST_TABLE`.
pub const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
/// `NFTA_SET_ELEM_LIST_SET`.
pub const NFTA_SET_ELEM_LIST_SET: u16 = 2;
/// `NFTA_SET_ELEM_LIST_ELEMENTS`.
pub const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
/// `NFTA_SET_ELEM_LIST_SET_ID`.
pub const NFTA_SET_ELEM_LIST_SET_ID: u16 = 4;
/// `NFTA_SET_ELEM_KEY`.
pub const NFTA_SET_ELEM_KEY: u16 = 1;
/// `NFTA_SET_ELEM_DATA`.
pub const NFTA_SET_ELEM_DATA: u16 = 2;
/// `NFTA_SET_ELEM_FLAGS`.
pub const NFTA_SET_ELEM_FLAGS: u16 = 3;
/// `NFTA_SET_ELEM_USERDATA`.
pub const NFTA_SET_ELEM_USERDATA: u16 = 6;

/// `NFTA_LIST_ELEM`.
pub const NFTA_LIST_ELEM: u16 = 1;
/// `NFTA_GEN_ID`.
pub const NFTA_GEN_ID: u16 = 1;

/// `NFT_SET_MAP`.
pub const NFT_SET_MAP: u32 = 0x8;
/// `NFT_SET_TIMEOUT`: elements expire.
pub const NFT_SET_TIMEOUT: u32 = 0x10;
/// `NFT_SET_EVAL`: the set is updated from the packet path (`dynamic`).
pub const NFT_SET_EVAL: u32 = 0x20;
/// `NFT_DATA_VERDICT`: the data type of a verdict map.
pub const NFT_DATA_VERDICT: u32 = 0xffff_ff00;

// ---- nf_tables.h: data and expression attributes ---------------------------------------------

/// `NFTA_DATA_VALUE`.
pub const NFTA_DATA_VALUE: u16 = 1;
/// `NFTA_DATA_VERDICT`.
pub const NFTA_DATA_VERDICT: u16 = 2;
/// `NFTA_VERDICT_CODE`.
pub const NFTA_VERDICT_CODE: u16 = 1;
/// `NFTA_VERDICT_CHAIN`.
pub const NFTA_VERDICT_CHAIN: u16 = 2;

/// `NFTA_EXPR_NAME`.
pub const NFTA_EXPR_NAME: u16 = 1;
/// `NFTA_EXPR_DATA`.
pub const NFTA_EXPR_DATA: u16 = 2;

/// `NFTA_META_DREG`.
pub const NFTA_META_DREG: u16 = 1;
/// `NFTA_META_KEY`.
pub const NFTA_META_KEY: u16 = 2;
/// `NFTA_META_SREG`.
pub const NFTA_META_SREG: u16 = 3;

/// `NFTA_PAYLOAD_DREG`.
pub const NFTA_PAYLOAD_DREG: u16 = 1;
/// `NFTA_PAYLOAD_BASE`.
pub const NFTA_PAYLOAD_BASE: u16 = 2;
/// `NFTA_PAYLOAD_OFFSET`.
pub const NFTA_PAYLOAD_OFFSET: u16 = 3;
/// `NFTA_PAYLOAD_LEN`.
pub const NFTA_PAYLOAD_LEN: u16 = 4;

/// `NFTA_CMP_SREG`.
pub const NFTA_CMP_SREG: u16 = 1;
/// `NFTA_CMP_OP`.
pub const NFTA_CMP_OP: u16 = 2;
/// `NFTA_CMP_DATA`.
pub const NFTA_CMP_DATA: u16 = 3;

/// `NFTA_BITWISE_SREG`.
pub const NFTA_BITWISE_SREG: u16 = 1;
/// `NFTA_BITWISE_DREG`.
pub const NFTA_BITWISE_DREG: u16 = 2;
/// `NFTA_BITWISE_LEN`.
pub const NFTA_BITWISE_LEN: u16 = 3;
/// `NFTA_BITWISE_MASK`.
pub const NFTA_BITWISE_MASK: u16 = 4;
/// `NFTA_BITWISE_XOR`.
pub const NFTA_BITWISE_XOR: u16 = 5;
/// `NFTA_BITWISE_OP`.
pub const NFTA_BITWISE_OP: u16 = 6;

/// `NFTA_LOOKUP_SET`.
pub const NFTA_LOOKUP_SET: u16 = 1;
/// `NFTA_LOOKUP_SREG`.
pub const NFTA_LOOKUP_SREG: u16 = 2;
/// `NFTA_LOOKUP_DREG`.
pub const NFTA_LOOKUP_DREG: u16 = 3;
/// `NFTA_LOOKUP_SET_ID`.
pub const NFTA_LOOKUP_SET_ID: u16 = 4;
/// `NFTA_LOOKUP_FLAGS`.
pub const NFTA_LOOKUP_FLAGS: u16 = 5;
/// `NFTA_BYTEORDER_SREG`.
pub const NFTA_BYTEORDER_SREG: u16 = 1;
/// `NFTA_BYTEORDER_DREG`.
pub const NFTA_BYTEORDER_DREG: u16 = 2;
/// `NFTA_BYTEORDER_OP` (0 ntoh, 1 hton).
pub const NFTA_BYTEORDER_OP: u16 = 3;
/// `NFTA_BYTEORDER_LEN`.
pub const NFTA_BYTEORDER_LEN: u16 = 4;
/// `NFTA_BYTEORDER_SIZE`.
pub const NFTA_BYTEORDER_SIZE: u16 = 5;

/// `NFTA_LIMIT_RATE`.
pub const NFTA_LIMIT_RATE: u16 = 1;
/// `NFTA_LIMIT_UNIT` (seconds).
pub const NFTA_LIMIT_UNIT: u16 = 2;
/// `NFTA_LIMIT_BURST`.
pub const NFTA_LIMIT_BURST: u16 = 3;
/// `NFTA_LIMIT_TYPE` (0 packets, 1 bytes).
pub const NFTA_LIMIT_TYPE: u16 = 4;
/// `NFTA_LIMIT_FLAGS` (1: `over`).
pub const NFTA_LIMIT_FLAGS: u16 = 5;

/// `NFTA_LOG_GROUP`: the nfnetlink_log group (16 bits).
pub const NFTA_LOG_GROUP: u16 = 1;
/// `NFTA_LOG_PREFIX`.
pub const NFTA_LOG_PREFIX: u16 = 2;

/// `NFTA_OBJREF_IMM_TYPE`.
pub const NFTA_OBJREF_IMM_TYPE: u16 = 1;
/// `NFTA_OBJREF_IMM_NAME`.
pub const NFTA_OBJREF_IMM_NAME: u16 = 2;

/// `NFTA_OBJ_TABLE`.
pub const NFTA_OBJ_TABLE: u16 = 1;
/// `NFTA_OBJ_NAME`.
pub const NFTA_OBJ_NAME: u16 = 2;
/// `NFTA_OBJ_TYPE`.
pub const NFTA_OBJ_TYPE: u16 = 3;
/// `NFTA_OBJ_DATA`.
pub const NFTA_OBJ_DATA: u16 = 4;
/// `NFT_OBJECT_COUNTER`.
pub const NFT_OBJECT_COUNTER: u32 = 1;
/// `NFTA_COUNTER_BYTES`.
pub const NFTA_COUNTER_BYTES: u16 = 1;
/// `NFTA_COUNTER_PACKETS`.
pub const NFTA_COUNTER_PACKETS: u16 = 2;

/// `NFT_LOOKUP_F_INV`: `!= @set`.
pub const NFT_LOOKUP_F_INV: u32 = 1;

/// `NFTA_IMMEDIATE_DREG`.
pub const NFTA_IMMEDIATE_DREG: u16 = 1;
/// `NFTA_IMMEDIATE_DATA`.
pub const NFTA_IMMEDIATE_DATA: u16 = 2;

/// `NFTA_NAT_TYPE`.
pub const NFTA_NAT_TYPE: u16 = 1;
/// `NFTA_NAT_FAMILY`.
pub const NFTA_NAT_FAMILY: u16 = 2;
/// `NFTA_NAT_REG_ADDR_MIN`.
pub const NFTA_NAT_REG_ADDR_MIN: u16 = 3;
/// `NFTA_NAT_REG_PROTO_MIN`.
pub const NFTA_NAT_REG_PROTO_MIN: u16 = 5;
/// `NFTA_NAT_FLAGS`.
pub const NFTA_NAT_FLAGS: u16 = 7;

/// `NFTA_MASQ_FLAGS`.
pub const NFTA_MASQ_FLAGS: u16 = 1;
/// `NF_NAT_RANGE_PROTO_RANDOM_FULLY` (`masquerade fully-random`).
pub const NF_NAT_RANGE_PROTO_RANDOM_FULLY: u32 = 0x10;

/// `NFTA_NG_DREG`.
pub const NFTA_NG_DREG: u16 = 1;
/// `NFTA_NG_MODULUS`.
pub const NFTA_NG_MODULUS: u16 = 2;
/// `NFTA_NG_TYPE` (`NFT_NG_INCREMENTAL` 0, `NFT_NG_RANDOM` 1).
pub const NFTA_NG_TYPE: u16 = 3;
/// `NFTA_NG_OFFSET`.
pub const NFTA_NG_OFFSET: u16 = 4;

/// `NFTA_REJECT_TYPE` (`NFT_REJECT_ICMP_UNREACH` 0, `NFT_REJECT_TCP_RST` 1,
/// `NFT_REJECT_ICMPX_UNREACH` 2).
pub const NFTA_REJECT_TYPE: u16 = 1;
/// `NFTA_REJECT_ICMP_CODE`.
pub const NFTA_REJECT_ICMP_CODE: u16 = 2;

/// `NFTA_DYNSET_SET_NAME`.
pub const NFTA_DYNSET_SET_NAME: u16 = 1;
/// `NFTA_DYNSET_SET_ID`.
pub const NFTA_DYNSET_SET_ID: u16 = 2;
/// `NFTA_DYNSET_OP` (`NFT_DYNSET_OP_ADD` 0, `NFT_DYNSET_OP_UPDATE` 1).
pub const NFTA_DYNSET_OP: u16 = 3;
/// `NFTA_DYNSET_SREG_KEY`.
pub const NFTA_DYNSET_SREG_KEY: u16 = 4;
/// `NFTA_DYNSET_TIMEOUT` (milliseconds, big endian 64 bits).
pub const NFTA_DYNSET_TIMEOUT: u16 = 6;

/// `NFTA_FIB_DREG`.
pub const NFTA_FIB_DREG: u16 = 1;
/// `NFTA_FIB_RESULT`.
pub const NFTA_FIB_RESULT: u16 = 2;
/// `NFTA_FIB_FLAGS`.
pub const NFTA_FIB_FLAGS: u16 = 3;

/// `NFTA_CT_DREG`.
pub const NFTA_CT_DREG: u16 = 1;
/// `NFTA_CT_KEY`.
pub const NFTA_CT_KEY: u16 = 2;

/// `NFTA_MATCH_NAME` (an x_tables match run by `nft_compat`, as iptables-nft writes them).
pub const NFTA_MATCH_NAME: u16 = 1;
/// `NFTA_MATCH_REV`.
pub const NFTA_MATCH_REV: u16 = 2;
/// `NFTA_MATCH_INFO`: the match's x_tables payload (e.g. `struct xt_comment_info`).
pub const NFTA_MATCH_INFO: u16 = 3;
/// `NFTA_TARGET_NAME` (an x_tables target run by `nft_compat`).
pub const NFTA_TARGET_NAME: u16 = 1;
/// `NFTA_TARGET_REV`.
pub const NFTA_TARGET_REV: u16 = 2;
/// `NFTA_TARGET_INFO`: the target's x_tables payload.
pub const NFTA_TARGET_INFO: u16 = 3;

/// `NFTA_FIB_F_SADDR`: look up the source address.
pub const FIB_F_SADDR: u32 = 1 << 0;
/// `NFTA_FIB_F_DADDR`: look up the destination address.
pub const FIB_F_DADDR: u32 = 1 << 1;
/// `NFTA_FIB_F_MARK`: use the packet mark.
pub const FIB_F_MARK: u32 = 1 << 2;
/// `NFTA_FIB_F_IIF`: restrict the lookup to the input interface.
pub const FIB_F_IIF: u32 = 1 << 3;
/// `NFTA_FIB_F_OIF`: restrict the lookup to the output interface.
pub const FIB_F_OIF: u32 = 1 << 4;
/// `NFTA_FIB_F_PRESENT`: only test for existence (`oif missing` / `oif exists`).
pub const FIB_F_PRESENT: u32 = 1 << 5;

/// `NFPROTO_*` values (`linux/netfilter.h`: the `meta nfproto` and nat `family` numbers).
pub mod nfproto {
    /// `NFPROTO_INET`.
    pub const INET: u8 = 1;
    /// `NFPROTO_IPV4`.
    pub const IPV4: u8 = 2;
    /// `NFPROTO_IPV6`.
    pub const IPV6: u8 = 10;
}

// ---- linux/netfilter/nf_nat.h ----------------------------------------------------------------

/// `NF_NAT_RANGE_MAP_IPS`: set by the kernel itself when an address register is given.
pub const NF_NAT_RANGE_MAP_IPS: u32 = 0x1;
/// `NF_NAT_RANGE_PROTO_SPECIFIED`: a port register is given (nft sets it explicitly).
pub const NF_NAT_RANGE_PROTO_SPECIFIED: u32 = 0x2;

// ---- linux/netfilter/nf_conntrack_common.h, linux/rtnetlink.h --------------------------------

/// `NF_CT_STATE_BIT(IP_CT_ESTABLISHED)`.
pub const CT_STATE_ESTABLISHED: u32 = 1 << 1;
/// `NF_CT_STATE_BIT(IP_CT_RELATED)`.
pub const CT_STATE_RELATED: u32 = 1 << 2;
/// `NF_CT_STATE_BIT(IP_CT_NEW)`.
pub const CT_STATE_NEW: u32 = 1 << 3;
/// `IPS_DST_NAT` in `ct status`.
pub const CT_STATUS_DNAT: u32 = 1 << 5;
/// `RTN_LOCAL`: the route type of the node's own addresses (`fib daddr type local`).
pub const RTN_LOCAL: u32 = 2;

// ---- libnftnl/udata.h: userdata TLV types ----------------------------------------------------

/// `NFTNL_UDATA_{TABLE,CHAIN,RULE,SET_ELEM}_COMMENT`: comments of tables, chains, rules and
/// set elements.
pub const UDATA_COMMENT: u8 = 0;
/// `NFTNL_UDATA_SET_KEYBYTEORDER`.
pub const UDATA_SET_KEYBYTEORDER: u8 = 0;
/// `NFTNL_UDATA_SET_DATABYTEORDER`.
pub const UDATA_SET_DATABYTEORDER: u8 = 1;
/// `NFTNL_UDATA_SET_DATA_INTERVAL`.
pub const UDATA_SET_DATA_INTERVAL: u8 = 6;
/// `NFTNL_UDATA_SET_COMMENT`.
pub const UDATA_SET_COMMENT: u8 = 7;
