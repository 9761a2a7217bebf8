//! nf_tables expressions: a typed builder encoded exactly as `nft` 1.0.x encodes them
//! (attribute order included), and a decoder for the rules the kernel dumps back.
//!
//! The wire format of each expression is `NFTA_LIST_ELEM { NFTA_EXPR_NAME "<name>",
//! NFTA_EXPR_DATA { ... } }`; the per-expression attributes are in `linux/netfilter/nf_tables.h`.
//! `nft --debug=netlink add rule ...` prints the same expressions in the notation used by
//! [`Expr`]'s `Display` (`[ meta load nfproto => reg 1 ]`).

use std::fmt;

use super::wire::{AttrWriter, Attrs};

// ---- attribute numbers (nf_tables.h) ---------------------------------------------------------

const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;

const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_VERDICT_CHAIN: u16 = 2;

const NFTA_META_DREG: u16 = 1;
const NFTA_META_KEY: u16 = 2;
const NFTA_META_SREG: u16 = 3;

const NFTA_PAYLOAD_DREG: u16 = 1;
const NFTA_PAYLOAD_BASE: u16 = 2;
const NFTA_PAYLOAD_OFFSET: u16 = 3;
const NFTA_PAYLOAD_LEN: u16 = 4;

const NFTA_CMP_SREG: u16 = 1;
const NFTA_CMP_OP: u16 = 2;
const NFTA_CMP_DATA: u16 = 3;

const NFTA_BITWISE_SREG: u16 = 1;
const NFTA_BITWISE_DREG: u16 = 2;
const NFTA_BITWISE_LEN: u16 = 3;
const NFTA_BITWISE_MASK: u16 = 4;
const NFTA_BITWISE_XOR: u16 = 5;
const NFTA_BITWISE_OP: u16 = 6;

const NFTA_LOOKUP_SET: u16 = 1;
const NFTA_LOOKUP_SREG: u16 = 2;
const NFTA_LOOKUP_DREG: u16 = 3;
const NFTA_LOOKUP_SET_ID: u16 = 4;
const NFTA_LOOKUP_FLAGS: u16 = 5;
const NFT_LOOKUP_F_INV: u32 = 1;

const NFTA_IMMEDIATE_DREG: u16 = 1;
const NFTA_IMMEDIATE_DATA: u16 = 2;

const NFTA_NAT_TYPE: u16 = 1;
const NFTA_NAT_FAMILY: u16 = 2;
const NFTA_NAT_REG_ADDR_MIN: u16 = 3;
const NFTA_NAT_REG_PROTO_MIN: u16 = 5;
const NFTA_NAT_FLAGS: u16 = 7;

const NFTA_MASQ_FLAGS: u16 = 1;

const NFTA_FIB_DREG: u16 = 1;
const NFTA_FIB_RESULT: u16 = 2;
const NFTA_FIB_FLAGS: u16 = 3;

const NFTA_CT_DREG: u16 = 1;
const NFTA_CT_KEY: u16 = 2;

/// `NF_NAT_RANGE_MAP_IPS`: set by the kernel itself when an address register is given.
pub const NF_NAT_RANGE_MAP_IPS: u32 = 0x1;
/// `NF_NAT_RANGE_PROTO_SPECIFIED`: a port register is given (nft sets it explicitly).
pub const NF_NAT_RANGE_PROTO_SPECIFIED: u32 = 0x2;

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

/// `NFPROTO_*` values (the `meta nfproto` and nat `family` numbers).
pub mod nfproto {
    /// `NFPROTO_INET`.
    pub const INET: u8 = 1;
    /// `NFPROTO_IPV4`.
    pub const IPV4: u8 = 2;
    /// `NFPROTO_IPV6`.
    pub const IPV6: u8 = 10;
}

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

impl fmt::Display for Reg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "reg {}", self.0)
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

    fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0 => "len",
            1 => "protocol",
            3 => "mark",
            4 => "iif",
            5 => "oif",
            6 => "iifname",
            7 => "oifname",
            15 => "nfproto",
            16 => "l4proto",
            _ => return None,
        })
    }
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

    fn from_raw(n: u32) -> Self {
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

    fn from_raw(n: u32) -> Option<Self> {
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

    fn name(self) -> &'static str {
        match self {
            CmpOp::Eq => "eq",
            CmpOp::Neq => "neq",
            CmpOp::Lt => "lt",
            CmpOp::Lte => "lte",
            CmpOp::Gt => "gt",
            CmpOp::Gte => "gte",
        }
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

    pub(crate) fn decode(attrs: Attrs<'_>) -> Option<Verdict> {
        let code = attrs.attr(NFTA_VERDICT_CODE)?.be32()? as i32;
        let chain = attrs.attr(NFTA_VERDICT_CHAIN).map(|a| a.string());
        Some(match (code, chain) {
            (1, _) => Verdict::Accept,
            (0, _) => Verdict::Drop,
            (-1, _) => Verdict::Continue,
            (-5, _) => Verdict::Return,
            (-3, Some(c)) => Verdict::Jump(c),
            (-4, Some(c)) => Verdict::Goto(c),
            _ => return None,
        })
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Accept => f.write_str("accept"),
            Verdict::Drop => f.write_str("drop"),
            Verdict::Continue => f.write_str("continue"),
            Verdict::Return => f.write_str("return"),
            Verdict::Jump(c) => write!(f, "jump -> {c}"),
            Verdict::Goto(c) => write!(f, "goto -> {c}"),
        }
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

    pub(crate) fn decode(attrs: Attrs<'_>) -> Option<Data> {
        if let Some(v) = attrs.attr(NFTA_DATA_VALUE) {
            return Some(Data::Value(v.data.to_vec()));
        }
        Verdict::decode(attrs.attr(NFTA_DATA_VERDICT)?.nested()).map(Data::Verdict)
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
            Expr::Counter | Expr::Unknown { .. } => {}
        }
    }

    /// Decodes one `NFTA_LIST_ELEM` payload as the kernel dumps it. Expressions outside the
    /// modelled set, or with missing attributes, become [`Expr::Unknown`].
    pub(crate) fn decode(elem: Attrs<'_>) -> Expr {
        let name = elem
            .attr(NFTA_EXPR_NAME)
            .map(|a| a.string())
            .unwrap_or_default();
        let data = elem
            .attr(NFTA_EXPR_DATA)
            .map(|a| a.nested())
            .unwrap_or_else(|| Attrs::new(&[]));
        Self::decode_data(&name, &data).unwrap_or(Expr::Unknown { name })
    }

    fn decode_data(name: &str, d: &Attrs<'_>) -> Option<Expr> {
        let u32_of = |ty: u16| d.attr(ty).and_then(|a| a.be32());
        let reg_of = |ty: u16| u32_of(ty).map(Reg);
        let value_of = |ty: u16| -> Option<Vec<u8>> {
            Some(d.attr(ty)?.nested().attr(NFTA_DATA_VALUE)?.data.to_vec())
        };
        Some(match name {
            "meta" => {
                let key = MetaKey(u32_of(NFTA_META_KEY)?);
                match (reg_of(NFTA_META_DREG), reg_of(NFTA_META_SREG)) {
                    (Some(dreg), _) => Expr::Meta { key, dreg },
                    (None, Some(sreg)) => Expr::MetaSet { key, sreg },
                    _ => return None,
                }
            }
            "payload" => Expr::Payload {
                base: PayloadBase::from_raw(u32_of(NFTA_PAYLOAD_BASE)?),
                offset: u32_of(NFTA_PAYLOAD_OFFSET)?,
                len: u32_of(NFTA_PAYLOAD_LEN)?,
                dreg: reg_of(NFTA_PAYLOAD_DREG)?,
            },
            "cmp" => Expr::Cmp {
                sreg: reg_of(NFTA_CMP_SREG)?,
                op: CmpOp::from_raw(u32_of(NFTA_CMP_OP)?)?,
                data: value_of(NFTA_CMP_DATA)?,
            },
            "bitwise" => {
                if u32_of(NFTA_BITWISE_OP).unwrap_or(0) != 0 {
                    return None; // shifts: not modelled
                }
                Expr::Bitwise {
                    sreg: reg_of(NFTA_BITWISE_SREG)?,
                    dreg: reg_of(NFTA_BITWISE_DREG)?,
                    len: u32_of(NFTA_BITWISE_LEN)?,
                    mask: value_of(NFTA_BITWISE_MASK)?,
                    xor: value_of(NFTA_BITWISE_XOR)?,
                    explicit_op: d.attr(NFTA_BITWISE_OP).is_some(),
                }
            }
            "lookup" => Expr::Lookup {
                set: d.attr(NFTA_LOOKUP_SET)?.string(),
                sreg: reg_of(NFTA_LOOKUP_SREG)?,
                dreg: reg_of(NFTA_LOOKUP_DREG),
                inverted: u32_of(NFTA_LOOKUP_FLAGS).unwrap_or(0) & NFT_LOOKUP_F_INV != 0,
            },
            "immediate" => Expr::Immediate {
                dreg: reg_of(NFTA_IMMEDIATE_DREG)?,
                data: Data::decode(d.attr(NFTA_IMMEDIATE_DATA)?.nested())?,
            },
            "nat" => Expr::Nat {
                kind: match u32_of(NFTA_NAT_TYPE)? {
                    0 => NatKind::Snat,
                    1 => NatKind::Dnat,
                    _ => return None,
                },
                family: u8::try_from(u32_of(NFTA_NAT_FAMILY)?).ok()?,
                addr: reg_of(NFTA_NAT_REG_ADDR_MIN),
                proto: reg_of(NFTA_NAT_REG_PROTO_MIN),
                flags: u32_of(NFTA_NAT_FLAGS).unwrap_or(0),
            },
            "masq" => Expr::Masq {
                flags: u32_of(NFTA_MASQ_FLAGS).unwrap_or(0),
            },
            "fib" => Expr::Fib {
                flags: u32_of(NFTA_FIB_FLAGS)?,
                result: match u32_of(NFTA_FIB_RESULT)? {
                    1 => FibResult::Oif,
                    2 => FibResult::OifName,
                    3 => FibResult::AddrType,
                    _ => return None,
                },
                dreg: reg_of(NFTA_FIB_DREG)?,
            },
            "ct" => Expr::Ct {
                key: CtKey(u32_of(NFTA_CT_KEY)?),
                dreg: reg_of(NFTA_CT_DREG)?,
            },
            "counter" => Expr::Counter,
            _ => return None,
        })
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

fn hex_words(f: &mut fmt::Formatter<'_>, data: &[u8]) -> fmt::Result {
    // libnftnl prints register contents as host-endian 32-bit words.
    for (i, chunk) in data.chunks(4).enumerate() {
        let mut w = [0u8; 4];
        w[..chunk.len()].copy_from_slice(chunk);
        if i > 0 {
            f.write_str(" ")?;
        }
        write!(f, "0x{:08x}", u32::from_ne_bytes(w))?;
    }
    Ok(())
}

/// The notation of `nft --debug=netlink` (libnftnl's debug output).
impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[ ")?;
        match self {
            Expr::Meta { key, dreg } => match key.name() {
                Some(n) => write!(f, "meta load {n} => {dreg}")?,
                None => write!(f, "meta load {} => {dreg}", key.0)?,
            },
            Expr::MetaSet { key, sreg } => match key.name() {
                Some(n) => write!(f, "meta set {n} with {sreg}")?,
                None => write!(f, "meta set {} with {sreg}", key.0)?,
            },
            Expr::Payload {
                base,
                offset,
                len,
                dreg,
            } => {
                let b = match base {
                    PayloadBase::Link => "link",
                    PayloadBase::Network => "network",
                    PayloadBase::Transport => "transport",
                    PayloadBase::Other(_) => "other",
                };
                write!(f, "payload load {len}b @ {b} header + {offset} => {dreg}")?;
            }
            Expr::Cmp { sreg, op, data } => {
                write!(f, "cmp {} {sreg} ", op.name())?;
                hex_words(f, data)?;
            }
            Expr::Bitwise {
                sreg,
                dreg,
                mask,
                xor,
                ..
            } => {
                write!(f, "bitwise {dreg} = ( {sreg} & ")?;
                hex_words(f, mask)?;
                f.write_str(" ) ^ ")?;
                hex_words(f, xor)?;
            }
            Expr::Lookup {
                set,
                sreg,
                dreg,
                inverted,
            } => {
                write!(f, "lookup {sreg} set {set}")?;
                if let Some(d) = dreg {
                    write!(f, " dreg {}", d.0)?;
                }
                if *inverted {
                    f.write_str(" 0x1")?;
                }
            }
            Expr::Immediate { dreg, data } => {
                write!(f, "immediate {dreg} ")?;
                match data {
                    Data::Value(v) => hex_words(f, v)?,
                    Data::Verdict(v) => write!(f, "{v}")?,
                }
            }
            Expr::Nat {
                kind,
                family,
                addr,
                proto,
                flags,
            } => {
                let k = match kind {
                    NatKind::Snat => "snat",
                    NatKind::Dnat => "dnat",
                };
                let fam = match *family {
                    nfproto::IPV4 => "ip",
                    nfproto::IPV6 => "ip6",
                    _ => "inet",
                };
                write!(f, "nat {k} {fam}")?;
                if let Some(a) = addr {
                    write!(f, " addr_min {a}")?;
                }
                if let Some(p) = proto {
                    write!(f, " proto_min {p}")?;
                }
                if *flags != 0 {
                    write!(f, " flags 0x{flags:x}")?;
                }
            }
            Expr::Masq { flags } => {
                f.write_str("masq")?;
                if *flags != 0 {
                    write!(f, " flags 0x{flags:x}")?;
                }
            }
            Expr::Fib {
                flags,
                result,
                dreg,
            } => {
                f.write_str("fib")?;
                let mut sep = " ";
                for (bit, n) in [
                    (FIB_F_SADDR, "saddr"),
                    (FIB_F_DADDR, "daddr"),
                    (FIB_F_MARK, "mark"),
                    (FIB_F_IIF, "iif"),
                    (FIB_F_OIF, "oif"),
                ] {
                    if flags & bit != 0 {
                        write!(f, "{sep}{n}")?;
                        sep = " . ";
                    }
                }
                let r = match result {
                    FibResult::Oif => "oif",
                    FibResult::OifName => "oifname",
                    FibResult::AddrType => "type",
                };
                write!(f, " {r}")?;
                if flags & FIB_F_PRESENT != 0 {
                    f.write_str(" present")?;
                }
                write!(f, " => {dreg}")?;
            }
            Expr::Ct { key, dreg } => {
                let n = match key.0 {
                    0 => "state".to_string(),
                    1 => "direction".to_string(),
                    2 => "status".to_string(),
                    3 => "mark".to_string(),
                    k => k.to_string(),
                };
                write!(f, "ct load {n} => {dreg}")?;
            }
            Expr::Counter => f.write_str("counter pkts 0 bytes 0")?,
            Expr::Unknown { name } => write!(f, "{name} (not decoded)")?,
        }
        f.write_str(" ]")
    }
}
