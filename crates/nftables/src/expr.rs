//! nf_tables expressions: typed, and encoded exactly as `nft` 1.0.x encodes them (attribute
//! order included). Decoding is in [`crate::decode`], printing in [`crate::print`].
//!
//! The wire format of each expression is `NFTA_LIST_ELEM { NFTA_EXPR_NAME "<name>",
//! NFTA_EXPR_DATA { ... } }`; the per-expression attributes are in `linux/netfilter/nf_tables.h`.

use crate::uapi::*;
use crate::wire::AttrWriter;

/// An nf_tables register as it appears on the wire.
///
/// The kernel has sixteen 4-byte registers (`NFT_REG32_00..15` = 8..23); the four legacy
/// 16-byte registers `NFT_REG_1..4` (= 1..4) alias slots 0, 4, 8 and 12. Like `nft`, slots
/// that start a 16-byte register are written with the legacy number, others with the
/// 32-bit one; the kernel dumps them back the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Reg(pub u32);

impl Reg {
    /// `NFT_REG_VERDICT`.
    pub const VERDICT: Reg = Reg(0);
    /// `NFT_REG_1` (slots 0-3).
    pub const R1: Reg = Reg(1);
    /// `NFT_REG_2` (slots 4-7).
    pub const R2: Reg = Reg(2);

    /// The register starting at 4-byte slot `n` (0..16), numbered as nft numbers it.
    pub const fn slot(n: u32) -> Reg {
        if n.is_multiple_of(4) {
            Reg(1 + n / 4)
        } else {
            Reg(8 + n)
        }
    }
}

/// `enum nft_meta_keys` (the subset the suite uses has names; others keep their number).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MetaKey(pub u32);

impl MetaKey {
    /// `NFT_META_LEN`.
    pub const LEN: MetaKey = MetaKey(0);
    /// `NFT_META_PROTOCOL` (ethertype).
    pub const PROTOCOL: MetaKey = MetaKey(1);
    /// `NFT_META_MARK`.
    pub const MARK: MetaKey = MetaKey(3);
    /// `NFT_META_IIF` (ifindex).
    pub const IIF: MetaKey = MetaKey(4);
    /// `NFT_META_OIF` (ifindex).
    pub const OIF: MetaKey = MetaKey(5);
    /// `NFT_META_IIFNAME`.
    pub const IIFNAME: MetaKey = MetaKey(6);
    /// `NFT_META_OIFNAME`.
    pub const OIFNAME: MetaKey = MetaKey(7);
    /// `NFT_META_NFPROTO`.
    pub const NFPROTO: MetaKey = MetaKey(15);
    /// `NFT_META_L4PROTO`.
    pub const L4PROTO: MetaKey = MetaKey(16);
}

/// `enum nft_ct_keys` (named subset).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CtKey(pub u32);

impl CtKey {
    /// `NFT_CT_STATE` (bitmask of `NF_CT_STATE_*_BIT`).
    pub const STATE: CtKey = CtKey(0);
    /// `NFT_CT_DIRECTION`.
    pub const DIRECTION: CtKey = CtKey(1);
    /// `NFT_CT_STATUS` (`IPS_*` bits).
    pub const STATUS: CtKey = CtKey(2);
    /// `NFT_CT_MARK`.
    pub const MARK: CtKey = CtKey(3);
}

/// Which header a payload expression reads (`enum nft_payload_bases`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PayloadBase {
    /// `NFT_PAYLOAD_LL_HEADER`.
    Link,
    /// `NFT_PAYLOAD_NETWORK_HEADER`.
    Network,
    /// `NFT_PAYLOAD_TRANSPORT_HEADER`.
    Transport,
    /// Any other base, by number.
    Other(u32),
}

impl PayloadBase {
    fn raw(self) -> u32 {
        match self {
            PayloadBase::Link => 0,
            PayloadBase::Network => 1,
            PayloadBase::Transport => 2,
            PayloadBase::Other(n) => n,
        }
    }

    pub(crate) fn from_raw(n: u32) -> Self {
        match n {
            0 => PayloadBase::Link,
            1 => PayloadBase::Network,
            2 => PayloadBase::Transport,
            n => PayloadBase::Other(n),
        }
    }
}

/// `enum nft_cmp_ops`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CmpOp {
    /// `NFT_CMP_EQ`.
    Eq,
    /// `NFT_CMP_NEQ`.
    Neq,
    /// `NFT_CMP_LT`.
    Lt,
    /// `NFT_CMP_LTE`.
    Lte,
    /// `NFT_CMP_GT`.
    Gt,
    /// `NFT_CMP_GTE`.
    Gte,
}

impl CmpOp {
    fn raw(self) -> u32 {
        match self {
            CmpOp::Eq => 0,
            CmpOp::Neq => 1,
            CmpOp::Lt => 2,
            CmpOp::Lte => 3,
            CmpOp::Gt => 4,
            CmpOp::Gte => 5,
        }
    }

    pub(crate) fn from_raw(n: u32) -> Option<Self> {
        Some(match n {
            0 => CmpOp::Eq,
            1 => CmpOp::Neq,
            2 => CmpOp::Lt,
            3 => CmpOp::Lte,
            4 => CmpOp::Gt,
            5 => CmpOp::Gte,
            _ => return None,
        })
    }
}

/// A verdict (`immediate reg 0 ...`, or the data of a verdict-map element).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// `accept` (`NF_ACCEPT`).
    Accept,
    /// `drop` (`NF_DROP`).
    Drop,
    /// `continue` (`NFT_CONTINUE`).
    Continue,
    /// `return` (`NFT_RETURN`).
    Return,
    /// `jump <chain>` (`NFT_JUMP`).
    Jump(String),
    /// `goto <chain>` (`NFT_GOTO`).
    Goto(String),
}

impl Verdict {
    fn code(&self) -> i32 {
        match self {
            Verdict::Accept => 1,
            Verdict::Drop => 0,
            Verdict::Continue => -1,
            Verdict::Return => -5,
            Verdict::Jump(_) => -3,
            Verdict::Goto(_) => -4,
        }
    }

    /// The chain a jump or goto targets.
    pub fn chain(&self) -> Option<&str> {
        match self {
            Verdict::Jump(c) | Verdict::Goto(c) => Some(c),
            _ => None,
        }
    }

    pub(crate) fn encode(&self, w: &mut AttrWriter) {
        w.nest(NFTA_DATA_VERDICT, |w| {
            w.put_be32(NFTA_VERDICT_CODE, self.code() as u32);
            if let Some(c) = self.chain() {
                w.put_strz(NFTA_VERDICT_CHAIN, c);
            }
        });
    }
}

/// `struct nft_data`: a value or a verdict.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Data {
    /// `NFTA_DATA_VALUE`: raw bytes as they sit in the register.
    Value(Vec<u8>),
    /// `NFTA_DATA_VERDICT`.
    Verdict(Verdict),
}

impl Data {
    pub(crate) fn encode(&self, w: &mut AttrWriter) {
        match self {
            Data::Value(v) => w.put(NFTA_DATA_VALUE, v),
            Data::Verdict(v) => v.encode(w),
        }
    }
}

/// Source or destination NAT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NatKind {
    /// `NFT_NAT_SNAT`.
    Snat,
    /// `NFT_NAT_DNAT`.
    Dnat,
}

/// What a fib lookup returns (`enum nft_fib_result`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FibResult {
    /// `NFT_FIB_RESULT_OIF`: the output interface index.
    Oif,
    /// `NFT_FIB_RESULT_OIFNAME`: the output interface name.
    OifName,
    /// `NFT_FIB_RESULT_ADDRTYPE`: the route type (`RTN_LOCAL` = 2 ...).
    AddrType,
}

impl FibResult {
    fn raw(self) -> u32 {
        match self {
            FibResult::Oif => 1,
            FibResult::OifName => 2,
            FibResult::AddrType => 3,
        }
    }
}

/// One nf_tables expression.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Expr {
    /// `[ meta load <key> => reg N ]`.
    Meta {
        /// What to load.
        key: MetaKey,
        /// Destination register.
        dreg: Reg,
    },
    /// `[ meta set <key> with reg N ]`.
    MetaSet {
        /// What to set.
        key: MetaKey,
        /// Source register.
        sreg: Reg,
    },
    /// `[ payload load <len>b @ <base> header + <offset> => reg N ]`.
    Payload {
        /// Header.
        base: PayloadBase,
        /// Byte offset in the header.
        offset: u32,
        /// Bytes to load.
        len: u32,
        /// Destination register.
        dreg: Reg,
    },
    /// `[ cmp <op> reg N <data> ]`.
    Cmp {
        /// Register compared.
        sreg: Reg,
        /// Comparison.
        op: CmpOp,
        /// Value (its length is the number of bytes compared: a prefix compare is shorter).
        data: Vec<u8>,
    },
    /// `[ bitwise reg D = ( reg S & mask ) ^ xor ]`.
    Bitwise {
        /// Source register.
        sreg: Reg,
        /// Destination register.
        dreg: Reg,
        /// Operand length in bytes.
        len: u32,
        /// AND mask.
        mask: Vec<u8>,
        /// XOR value.
        xor: Vec<u8>,
        /// Whether `NFTA_BITWISE_OP` (mask-and-xor, 0) is sent: nft sends it for `meta mark &`
        /// and `... | bits`, but not for CIDR masks; the kernel treats both the same.
        explicit_op: bool,
    },
    /// `[ lookup reg S set <name> [dreg D] [0x1] ]`: a set match (inverted with flag 0x1),
    /// or a map/verdict-map lookup when `dreg` is given (`dreg 0` = verdict map).
    Lookup {
        /// The set's name.
        set: String,
        /// Register holding the key (the first of a concatenation).
        sreg: Reg,
        /// Where a map writes its data.
        dreg: Option<Reg>,
        /// `!= @set`.
        inverted: bool,
    },
    /// `[ immediate reg N <data> ]` (a verdict when `dreg` is [`Reg::VERDICT`]).
    Immediate {
        /// Destination register.
        dreg: Reg,
        /// What to load.
        data: Data,
    },
    /// `[ nat dnat ip addr_min reg 1 proto_min reg 2 flags 0x2 ]`.
    Nat {
        /// snat or dnat.
        kind: NatKind,
        /// `NFPROTO_IPV4` or `NFPROTO_IPV6`.
        family: u8,
        /// Register holding the address.
        addr: Option<Reg>,
        /// Register holding the port (network byte order).
        proto: Option<Reg>,
        /// `NF_NAT_RANGE_*` flags as sent.
        flags: u32,
    },
    /// `[ masq ]` (with `NF_NAT_RANGE_*` flags when non-zero).
    Masq {
        /// Flags (`random`, `persistent`...), 0 for plain `masquerade`.
        flags: u32,
    },
    /// `[ fib saddr . iif oif present => reg 1 ]`.
    Fib {
        /// `FIB_F_*` flags.
        flags: u32,
        /// What to return.
        result: FibResult,
        /// Destination register.
        dreg: Reg,
    },
    /// `[ ct load <key> => reg N ]`.
    Ct {
        /// What to load.
        key: CtKey,
        /// Destination register.
        dreg: Reg,
    },
    /// `[ counter ]`.
    Counter,
    /// `[ numgen reg N = random mod M offset O ]` (`numgen random mod M`; `inc` when not
    /// random).
    Numgen {
        /// Destination register.
        dreg: Reg,
        /// The modulus: values are `offset .. offset + modulus`.
        modulus: u32,
        /// `random` (else `inc`).
        random: bool,
        /// Added to the value.
        offset: u32,
    },
    /// `[ reject type T code C ]`: `reject with icmpx port-unreachable` is type 2 code 1;
    /// `reject with tcp reset` is type 1.
    Reject {
        /// `NFT_REJECT_*`.
        kind: u32,
        /// The ICMP (or ICMPX) code.
        code: u8,
    },
    /// `[ dynset update reg_key N set <name> timeout T ]`: `update @set { <key> }` adds the
    /// key held in `sreg` to the set (or refreshes its timeout) from the packet path.
    Dynset {
        /// The set (created with `dynamic`, `timeout`).
        set: String,
        /// `NFT_DYNSET_OP_*` (1: update).
        op: u32,
        /// Register holding the key.
        sreg: Reg,
        /// Element timeout in milliseconds (`None`: the set's).
        timeout_ms: Option<u64>,
    },
    /// `[ byteorder reg D = hton(reg S, size, len) ]`: nft puts one after `meta l4proto`
    /// in the key of a concatenated interval lookup (a no-op for one byte).
    Byteorder {
        /// Source register.
        sreg: Reg,
        /// Destination register.
        dreg: Reg,
        /// `true`: host to network (`hton`), `false`: `ntoh`.
        hton: bool,
        /// Bytes converted.
        len: u32,
        /// Unit size (2, 4 or 8).
        size: u32,
    },
    /// `[ limit rate N/unit burst B type packets flags F ]`: matches while under the rate.
    Limit {
        /// Packets (or bytes) per `unit_secs`.
        rate: u64,
        /// The unit, in seconds (1: `/second`, 60: `/minute`).
        unit_secs: u64,
        /// Burst.
        burst: u32,
        /// Counts bytes rather than packets.
        bytes: bool,
        /// `limit rate over`: matches when above the rate.
        over: bool,
    },
    /// `[ log prefix P group G ]`: the packet to nfnetlink_log group `group`.
    Log {
        /// The prefix (up to 127 bytes).
        prefix: Option<String>,
        /// The nflog group.
        group: u16,
    },
    /// `[ objref type 1 name N ]`: a named counter (`counter name "N"`).
    CounterRef {
        /// The counter object's name.
        name: String,
    },
    /// `[ match name <name> rev <rev> ]`: an x_tables match run by `nft_compat`, as
    /// iptables-nft writes the matches it has no native translation for (`comment`,
    /// `multiport`, `addrtype`...). Decoded so that other owners' rules can be recognised;
    /// this suite never writes one.
    Match {
        /// The x_tables match name.
        name: String,
        /// Its revision.
        rev: u32,
        /// Its payload (`struct xt_comment_info` for `comment`...), as the kernel stores it.
        info: Vec<u8>,
    },
    /// `[ target name <name> rev <rev> ]`: an x_tables target run by `nft_compat`
    /// (`MASQUERADE`, `DNAT`, `MARK`... as iptables-nft writes them).
    Target {
        /// The x_tables target name.
        name: String,
        /// Its revision.
        rev: u32,
        /// Its payload, as the kernel stores it.
        info: Vec<u8>,
    },
    /// An expression this codec does not model (decoded from the kernel only).
    Unknown {
        /// Its `NFTA_EXPR_NAME`.
        name: String,
    },
}

/// Context for encoding: the ids of sets created earlier in the same batch (nft sends
/// `NFTA_LOOKUP_SET_ID` for them; the kernel resolves names first, so this is cosmetic).
pub(crate) type SetIds<'a> = &'a dyn Fn(&str) -> Option<u32>;

impl Expr {
    /// `[ meta load key => reg dreg ]`.
    pub fn meta(key: MetaKey, dreg: Reg) -> Expr {
        Expr::Meta { key, dreg }
    }

    /// `[ cmp op reg sreg data ]`.
    pub fn cmp(op: CmpOp, sreg: Reg, data: impl Into<Vec<u8>>) -> Expr {
        Expr::Cmp {
            sreg,
            op,
            data: data.into(),
        }
    }

    /// `[ immediate reg 0 <verdict> ]`.
    pub fn verdict(v: Verdict) -> Expr {
        Expr::Immediate {
            dreg: Reg::VERDICT,
            data: Data::Verdict(v),
        }
    }

    /// `[ immediate reg N <bytes> ]`.
    pub fn immediate(dreg: Reg, value: impl Into<Vec<u8>>) -> Expr {
        Expr::Immediate {
            dreg,
            data: Data::Value(value.into()),
        }
    }

    /// The expression's `NFTA_EXPR_NAME`.
    pub fn name(&self) -> &str {
        match self {
            Expr::Meta { .. } | Expr::MetaSet { .. } => "meta",
            Expr::Payload { .. } => "payload",
            Expr::Cmp { .. } => "cmp",
            Expr::Bitwise { .. } => "bitwise",
            Expr::Lookup { .. } => "lookup",
            Expr::Immediate { .. } => "immediate",
            Expr::Nat { .. } => "nat",
            Expr::Masq { .. } => "masq",
            Expr::Fib { .. } => "fib",
            Expr::Ct { .. } => "ct",
            Expr::Counter => "counter",
            Expr::Numgen { .. } => "numgen",
            Expr::Reject { .. } => "reject",
            Expr::Dynset { .. } => "dynset",
            Expr::Byteorder { .. } => "byteorder",
            Expr::Limit { .. } => "limit",
            Expr::Log { .. } => "log",
            Expr::CounterRef { .. } => "objref",
            Expr::Match { .. } => "match",
            Expr::Target { .. } => "target",
            Expr::Unknown { name } => name,
        }
    }

    /// Encodes the expression as one `NFTA_LIST_ELEM`, attribute order as nft's.
    pub(crate) fn encode(&self, w: &mut AttrWriter, set_ids: SetIds<'_>) {
        w.nest(NFTA_LIST_ELEM, |w| {
            w.put_strz(NFTA_EXPR_NAME, self.name());
            w.nest(NFTA_EXPR_DATA, |w| self.encode_data(w, set_ids));
        });
    }

    fn encode_data(&self, w: &mut AttrWriter, set_ids: SetIds<'_>) {
        match self {
            Expr::Meta { key, dreg } => {
                w.put_be32(NFTA_META_KEY, key.0);
                w.put_be32(NFTA_META_DREG, dreg.0);
            }
            Expr::MetaSet { key, sreg } => {
                w.put_be32(NFTA_META_KEY, key.0);
                w.put_be32(NFTA_META_SREG, sreg.0);
            }
            Expr::Payload {
                base,
                offset,
                len,
                dreg,
            } => {
                w.put_be32(NFTA_PAYLOAD_DREG, dreg.0);
                w.put_be32(NFTA_PAYLOAD_BASE, base.raw());
                w.put_be32(NFTA_PAYLOAD_OFFSET, *offset);
                w.put_be32(NFTA_PAYLOAD_LEN, *len);
            }
            Expr::Cmp { sreg, op, data } => {
                w.put_be32(NFTA_CMP_SREG, sreg.0);
                w.put_be32(NFTA_CMP_OP, op.raw());
                w.nest(NFTA_CMP_DATA, |w| w.put(NFTA_DATA_VALUE, data));
            }
            Expr::Bitwise {
                sreg,
                dreg,
                len,
                mask,
                xor,
                explicit_op,
            } => {
                w.put_be32(NFTA_BITWISE_SREG, sreg.0);
                w.put_be32(NFTA_BITWISE_DREG, dreg.0);
                if *explicit_op {
                    w.put_be32(NFTA_BITWISE_OP, 0);
                }
                w.put_be32(NFTA_BITWISE_LEN, *len);
                w.nest(NFTA_BITWISE_MASK, |w| w.put(NFTA_DATA_VALUE, mask));
                w.nest(NFTA_BITWISE_XOR, |w| w.put(NFTA_DATA_VALUE, xor));
            }
            Expr::Lookup {
                set,
                sreg,
                dreg,
                inverted,
            } => {
                w.put_be32(NFTA_LOOKUP_SREG, sreg.0);
                if let Some(d) = dreg {
                    w.put_be32(NFTA_LOOKUP_DREG, d.0);
                }
                w.put_strz(NFTA_LOOKUP_SET, set);
                if let Some(id) = set_ids(set) {
                    w.put_be32(NFTA_LOOKUP_SET_ID, id);
                }
                if *inverted {
                    w.put_be32(NFTA_LOOKUP_FLAGS, NFT_LOOKUP_F_INV);
                }
            }
            Expr::Immediate { dreg, data } => {
                w.put_be32(NFTA_IMMEDIATE_DREG, dreg.0);
                w.nest(NFTA_IMMEDIATE_DATA, |w| data.encode(w));
            }
            Expr::Nat {
                kind,
                family,
                addr,
                proto,
                flags,
            } => {
                w.put_be32(
                    NFTA_NAT_TYPE,
                    match kind {
                        NatKind::Snat => 0,
                        NatKind::Dnat => 1,
                    },
                );
                w.put_be32(NFTA_NAT_FAMILY, u32::from(*family));
                if let Some(r) = addr {
                    w.put_be32(NFTA_NAT_REG_ADDR_MIN, r.0);
                }
                if let Some(r) = proto {
                    w.put_be32(NFTA_NAT_REG_PROTO_MIN, r.0);
                }
                if *flags != 0 {
                    w.put_be32(NFTA_NAT_FLAGS, *flags);
                }
            }
            Expr::Masq { flags } => {
                if *flags != 0 {
                    w.put_be32(NFTA_MASQ_FLAGS, *flags);
                }
            }
            Expr::Fib {
                flags,
                result,
                dreg,
            } => {
                w.put_be32(NFTA_FIB_FLAGS, *flags);
                w.put_be32(NFTA_FIB_RESULT, result.raw());
                w.put_be32(NFTA_FIB_DREG, dreg.0);
            }
            Expr::Ct { key, dreg } => {
                w.put_be32(NFTA_CT_KEY, key.0);
                w.put_be32(NFTA_CT_DREG, dreg.0);
            }
            Expr::Match { name, rev, info } => {
                w.put_strz(NFTA_MATCH_NAME, name);
                w.put_be32(NFTA_MATCH_REV, *rev);
                w.put(NFTA_MATCH_INFO, info);
            }
            Expr::Target { name, rev, info } => {
                w.put_strz(NFTA_TARGET_NAME, name);
                w.put_be32(NFTA_TARGET_REV, *rev);
                w.put(NFTA_TARGET_INFO, info);
            }
            Expr::Numgen {
                dreg,
                modulus,
                random,
                offset,
            } => {
                w.put_be32(NFTA_NG_DREG, dreg.0);
                w.put_be32(NFTA_NG_MODULUS, *modulus);
                w.put_be32(NFTA_NG_TYPE, u32::from(*random));
                if *offset != 0 {
                    w.put_be32(NFTA_NG_OFFSET, *offset);
                }
            }
            Expr::Reject { kind, code } => {
                w.put_be32(NFTA_REJECT_TYPE, *kind);
                w.put_u8(NFTA_REJECT_ICMP_CODE, *code);
            }
            Expr::Dynset {
                set,
                op,
                sreg,
                timeout_ms,
            } => {
                w.put_be32(NFTA_DYNSET_SREG_KEY, sreg.0);
                w.put_strz(NFTA_DYNSET_SET_NAME, set);
                if let Some(id) = set_ids(set) {
                    w.put_be32(NFTA_DYNSET_SET_ID, id);
                }
                w.put_be32(NFTA_DYNSET_OP, *op);
                if let Some(t) = timeout_ms {
                    w.put_be64(NFTA_DYNSET_TIMEOUT, *t);
                }
            }
            Expr::Byteorder {
                sreg,
                dreg,
                hton,
                len,
                size,
            } => {
                w.put_be32(NFTA_BYTEORDER_SREG, sreg.0);
                w.put_be32(NFTA_BYTEORDER_DREG, dreg.0);
                w.put_be32(NFTA_BYTEORDER_OP, u32::from(*hton));
                w.put_be32(NFTA_BYTEORDER_LEN, *len);
                w.put_be32(NFTA_BYTEORDER_SIZE, *size);
            }
            Expr::Limit {
                rate,
                unit_secs,
                burst,
                bytes,
                over,
            } => {
                w.put_be64(NFTA_LIMIT_RATE, *rate);
                w.put_be64(NFTA_LIMIT_UNIT, *unit_secs);
                w.put_be32(NFTA_LIMIT_BURST, *burst);
                w.put_be32(NFTA_LIMIT_TYPE, u32::from(*bytes));
                w.put_be32(NFTA_LIMIT_FLAGS, u32::from(*over));
            }
            Expr::Log { prefix, group } => {
                if let Some(p) = prefix {
                    w.put_strz(NFTA_LOG_PREFIX, p);
                }
                w.put_be16(NFTA_LOG_GROUP, *group);
            }
            Expr::CounterRef { name } => {
                w.put_be32(NFTA_OBJREF_IMM_TYPE, NFT_OBJECT_COUNTER);
                // nft sends this name without its NUL (the kernel accepts both).
                w.put(NFTA_OBJREF_IMM_NAME, name.as_bytes());
            }
            Expr::Counter | Expr::Unknown { .. } => {}
        }
    }

    /// The text of an x_tables `comment` match (`-m comment --comment "..."`, which
    /// iptables-nft stores as `[ match name comment rev 0 ]` with a `struct xt_comment_info`:
    /// the text, NUL-padded to 256 bytes); `None` for any other expression.
    pub fn xt_comment(&self) -> Option<String> {
        match self {
            Expr::Match { name, info, .. } if name == "comment" => {
                let end = info.iter().position(|&b| b == 0).unwrap_or(info.len());
                Some(String::from_utf8_lossy(&info[..end]).into_owned())
            }
            _ => None,
        }
    }

    /// The expression with the differences that do not change behaviour removed, for
    /// comparing what we sent with what the kernel dumps: the kernel adds `MAP_IPS` and
    /// `PROTO_SPECIFIED` to nat flags from the registers given, always dumps the bitwise op,
    /// and may dump a verdict map's data register.
    pub fn normalized(&self) -> Expr {
        match self {
            Expr::Bitwise {
                sreg,
                dreg,
                len,
                mask,
                xor,
                ..
            } => Expr::Bitwise {
                sreg: *sreg,
                dreg: *dreg,
                len: *len,
                mask: mask.clone(),
                xor: xor.clone(),
                explicit_op: false,
            },
            Expr::Nat {
                kind,
                family,
                addr,
                proto,
                flags,
            } => Expr::Nat {
                kind: *kind,
                family: *family,
                addr: *addr,
                proto: *proto,
                flags: flags & !(NF_NAT_RANGE_MAP_IPS | NF_NAT_RANGE_PROTO_SPECIFIED),
            },
            e => e.clone(),
        }
    }
}
