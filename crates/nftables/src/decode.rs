//! Decoding what the kernel sends back: expressions of dumped rules, set-element data, and
//! the tables, chains, rules, sets and elements of `GET` and dump replies. Anything this
//! crate does not model decodes to something inspectable ([`Expr::Unknown`]) rather than
//! failing the whole reply.

use crate::expr::{
    CmpOp, CtKey, Data, Expr, FibResult, MetaKey, NatKind, PayloadBase, Reg, Verdict,
};
use crate::object::{comment_of, set_comment_of, BaseChain, ChainType, Hook, Policy};
use crate::uapi::*;
use crate::wire::Attrs;

impl Verdict {
    /// Decodes an `NFTA_DATA_VERDICT` payload; `None` for codes this crate does not model.
    pub fn decode(attrs: Attrs<'_>) -> Option<Verdict> {
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

impl Data {
    /// Decodes a `struct nft_data` attribute payload (a value or a verdict).
    pub fn decode(attrs: Attrs<'_>) -> Option<Data> {
        if let Some(v) = attrs.attr(NFTA_DATA_VALUE) {
            return Some(Data::Value(v.data.to_vec()));
        }
        Verdict::decode(attrs.attr(NFTA_DATA_VERDICT)?.nested()).map(Data::Verdict)
    }
}

impl Expr {
    /// Decodes one `NFTA_LIST_ELEM` payload as the kernel dumps it. Expressions outside the
    /// modelled set, or with missing attributes, become [`Expr::Unknown`].
    pub fn decode(elem: Attrs<'_>) -> Expr {
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
            "numgen" => Expr::Numgen {
                dreg: reg_of(NFTA_NG_DREG)?,
                modulus: u32_of(NFTA_NG_MODULUS)?,
                random: u32_of(NFTA_NG_TYPE).unwrap_or(0) == 1,
                offset: u32_of(NFTA_NG_OFFSET).unwrap_or(0),
            },
            "reject" => Expr::Reject {
                kind: u32_of(NFTA_REJECT_TYPE)?,
                code: d
                    .attr(NFTA_REJECT_ICMP_CODE)
                    .and_then(|a| a.u8())
                    .unwrap_or(0),
            },
            "dynset" => Expr::Dynset {
                set: d.attr(NFTA_DYNSET_SET_NAME)?.string(),
                op: u32_of(NFTA_DYNSET_OP)?,
                sreg: reg_of(NFTA_DYNSET_SREG_KEY)?,
                timeout_ms: d
                    .attr(NFTA_DYNSET_TIMEOUT)
                    .and_then(|a| a.be64())
                    .filter(|t| *t != 0),
            },
            "byteorder" => Expr::Byteorder {
                sreg: reg_of(NFTA_BYTEORDER_SREG)?,
                dreg: reg_of(NFTA_BYTEORDER_DREG)?,
                hton: u32_of(NFTA_BYTEORDER_OP)? == 1,
                len: u32_of(NFTA_BYTEORDER_LEN)?,
                size: u32_of(NFTA_BYTEORDER_SIZE)?,
            },
            "limit" => Expr::Limit {
                rate: d.attr(NFTA_LIMIT_RATE)?.be64()?,
                unit_secs: d.attr(NFTA_LIMIT_UNIT)?.be64()?,
                burst: u32_of(NFTA_LIMIT_BURST).unwrap_or(0),
                bytes: u32_of(NFTA_LIMIT_TYPE).unwrap_or(0) == 1,
                over: u32_of(NFTA_LIMIT_FLAGS).unwrap_or(0) & 1 != 0,
            },
            "log" => Expr::Log {
                prefix: d.attr(NFTA_LOG_PREFIX).map(|a| a.string()),
                group: d.attr(NFTA_LOG_GROUP)?.be16()?,
            },
            "objref" if u32_of(NFTA_OBJREF_IMM_TYPE)? == NFT_OBJECT_COUNTER => Expr::CounterRef {
                name: d.attr(NFTA_OBJREF_IMM_NAME)?.string(),
            },
            "match" => {
                let (name, rev, info) = xt_of(d)?;
                Expr::Match { name, rev, info }
            }
            "target" => {
                let (name, rev, info) = xt_of(d)?;
                Expr::Target { name, rev, info }
            }
            _ => return None,
        })
    }
}

/// Name, revision and payload of an x_tables match or target (`NFTA_MATCH_*` and
/// `NFTA_TARGET_*` share their numbers).
fn xt_of(d: &Attrs<'_>) -> Option<(String, u32, Vec<u8>)> {
    debug_assert_eq!(
        (NFTA_MATCH_NAME, NFTA_MATCH_REV, NFTA_MATCH_INFO),
        (NFTA_TARGET_NAME, NFTA_TARGET_REV, NFTA_TARGET_INFO)
    );
    Some((
        d.attr(NFTA_MATCH_NAME)?.string(),
        d.attr(NFTA_MATCH_REV).and_then(|a| a.be32()).unwrap_or(0),
        d.attr(NFTA_MATCH_INFO)
            .map(|a| a.data.to_vec())
            .unwrap_or_default(),
    ))
}

/// A table as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableInfo {
    /// Name.
    pub name: String,
    /// `NFT_TABLE_F_*`.
    pub flags: u32,
    /// Objects in it (chains, sets...: `NFTA_TABLE_USE`).
    pub objects: u32,
    /// Handle.
    pub handle: u64,
}

/// A chain as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainInfo {
    /// Name.
    pub name: String,
    /// Handle.
    pub handle: u64,
    /// Hook, type and priority, for base chains.
    pub base: Option<BaseChain>,
    /// Comment.
    pub comment: Option<String>,
    /// References (rules, plus jumps and map elements pointing at it).
    pub references: u32,
}

/// A rule as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleInfo {
    /// Its chain.
    pub chain: String,
    /// Handle (for `delete rule ... handle N`).
    pub handle: u64,
    /// Decoded expressions.
    pub exprs: Vec<Expr>,
    /// Comment.
    pub comment: Option<String>,
}

impl RuleInfo {
    /// The rule's comment as iptables-nft records it: the text of its x_tables `comment`
    /// match (`-m comment --comment`), else the userdata comment nft (and newer iptables-nft)
    /// attach.
    pub fn iptables_comment(&self) -> Option<String> {
        self.exprs
            .iter()
            .find_map(Expr::xt_comment)
            .or_else(|| self.comment.clone())
    }

    /// The chain the rule's verdict jumps or goes to (`-j <chain>`, `jump <chain>`), if its
    /// last expression is such a verdict.
    pub fn jump_target(&self) -> Option<&str> {
        match self.exprs.last() {
            Some(Expr::Immediate {
                dreg,
                data: Data::Verdict(v),
            }) if *dreg == Reg::VERDICT => v.chain(),
            _ => None,
        }
    }

    /// Whether the rule does what `exprs` says (compared after [`Expr::normalized`]).
    pub fn matches(&self, exprs: &[Expr]) -> bool {
        self.exprs.len() == exprs.len()
            && self
                .exprs
                .iter()
                .zip(exprs)
                .all(|(a, b)| a.normalized() == b.normalized())
    }
}

/// A set as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetInfo {
    /// Name.
    pub name: String,
    /// `NFT_SET_*` flags.
    pub flags: u32,
    /// nft key type id.
    pub key_type: u32,
    /// Key length.
    pub key_len: u32,
    /// Data type for maps ([`NFT_DATA_VERDICT`] for verdict maps).
    pub data_type: Option<u32>,
    /// Comment.
    pub comment: Option<String>,
}

/// A named counter as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterInfo {
    /// Name.
    pub name: String,
    /// Packets counted.
    pub packets: u64,
    /// Bytes counted.
    pub bytes: u64,
}

impl CounterInfo {
    /// Decodes the attributes of an `NFT_MSG_NEWOBJ` reply; `None` for other objects.
    pub fn decode(a: Attrs<'_>) -> Option<CounterInfo> {
        if a.attr(NFTA_OBJ_TYPE)?.be32()? != NFT_OBJECT_COUNTER {
            return None;
        }
        let d = a.attr(NFTA_OBJ_DATA)?.nested();
        Some(CounterInfo {
            name: a.attr(NFTA_OBJ_NAME)?.string(),
            packets: d
                .attr(NFTA_COUNTER_PACKETS)
                .and_then(|x| x.be64())
                .unwrap_or(0),
            bytes: d
                .attr(NFTA_COUNTER_BYTES)
                .and_then(|x| x.be64())
                .unwrap_or(0),
        })
    }
}

/// A set element as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElemInfo {
    /// Key bytes.
    pub key: Vec<u8>,
    /// The last key of a range element (concatenated interval sets).
    pub key_end: Option<Vec<u8>>,
    /// Data (value or verdict) of map elements.
    pub data: Option<Data>,
    /// Comment.
    pub comment: Option<String>,
}

impl ElemInfo {
    /// The chain a verdict-map element jumps or goes to.
    pub fn target_chain(&self) -> Option<&str> {
        match &self.data {
            Some(Data::Verdict(v)) => v.chain(),
            _ => None,
        }
    }
}

impl TableInfo {
    /// Decodes the attributes of an `NFT_MSG_NEWTABLE` reply (after the `nfgenmsg`).
    pub fn decode(a: Attrs<'_>) -> TableInfo {
        TableInfo {
            name: a
                .attr(NFTA_TABLE_NAME)
                .map(|x| x.string())
                .unwrap_or_default(),
            flags: a.attr(NFTA_TABLE_FLAGS).and_then(|x| x.be32()).unwrap_or(0),
            objects: a.attr(NFTA_TABLE_USE).and_then(|x| x.be32()).unwrap_or(0),
            handle: a
                .attr(NFTA_TABLE_HANDLE)
                .and_then(|x| x.be64())
                .unwrap_or(0),
        }
    }
}

impl ChainInfo {
    /// Decodes the attributes of an `NFT_MSG_NEWCHAIN` reply (after the `nfgenmsg`).
    pub fn decode(a: Attrs<'_>) -> ChainInfo {
        let base = a.attr(NFTA_CHAIN_HOOK).and_then(|h| {
            let h = h.nested();
            Some(BaseChain {
                kind: ChainType::from_name(&a.attr(NFTA_CHAIN_TYPE)?.string())?,
                hook: Hook::from_raw(h.attr(NFTA_HOOK_HOOKNUM)?.be32()?)?,
                priority: h.attr(NFTA_HOOK_PRIORITY)?.be32()? as i32,
                policy: match a.attr(NFTA_CHAIN_POLICY).and_then(|p| p.be32()) {
                    Some(0) => Policy::Drop,
                    _ => Policy::Accept,
                },
            })
        });
        ChainInfo {
            name: a
                .attr(NFTA_CHAIN_NAME)
                .map(|x| x.string())
                .unwrap_or_default(),
            handle: a
                .attr(NFTA_CHAIN_HANDLE)
                .and_then(|x| x.be64())
                .unwrap_or(0),
            base,
            comment: a.attr(NFTA_CHAIN_USERDATA).and_then(|u| comment_of(u.data)),
            references: a.attr(NFTA_CHAIN_USE).and_then(|x| x.be32()).unwrap_or(0),
        }
    }
}

impl RuleInfo {
    /// Decodes the attributes of an `NFT_MSG_NEWRULE` message (after the `nfgenmsg`): what
    /// the kernel dumps, or what nft sends.
    pub fn decode(a: Attrs<'_>) -> RuleInfo {
        let exprs = a
            .attr(NFTA_RULE_EXPRESSIONS)
            .map(|e| {
                e.nested()
                    .filter(|x| x.ty == NFTA_LIST_ELEM)
                    .map(|x| Expr::decode(x.nested()))
                    .collect()
            })
            .unwrap_or_default();
        RuleInfo {
            chain: a
                .attr(NFTA_RULE_CHAIN)
                .map(|x| x.string())
                .unwrap_or_default(),
            handle: a.attr(NFTA_RULE_HANDLE).and_then(|x| x.be64()).unwrap_or(0),
            exprs,
            comment: a.attr(NFTA_RULE_USERDATA).and_then(|u| comment_of(u.data)),
        }
    }
}

impl SetInfo {
    /// Decodes the attributes of an `NFT_MSG_NEWSET` message (after the `nfgenmsg`).
    pub fn decode(a: Attrs<'_>) -> SetInfo {
        let u32_of = |ty| a.attr(ty).and_then(|x| x.be32());
        SetInfo {
            name: a
                .attr(NFTA_SET_NAME)
                .map(|x| x.string())
                .unwrap_or_default(),
            flags: u32_of(NFTA_SET_FLAGS).unwrap_or(0),
            key_type: u32_of(NFTA_SET_KEY_TYPE).unwrap_or(0),
            key_len: u32_of(NFTA_SET_KEY_LEN).unwrap_or(0),
            data_type: u32_of(NFTA_SET_DATA_TYPE),
            comment: a
                .attr(NFTA_SET_USERDATA)
                .and_then(|u| set_comment_of(u.data)),
        }
    }
}

impl ElemInfo {
    /// Decodes the elements of an `NFT_MSG_NEWSETELEM` message (after the `nfgenmsg`).
    /// Interval ends and catch-all elements are skipped.
    pub fn decode_list(a: Attrs<'_>) -> Vec<ElemInfo> {
        let Some(list) = a.attr(NFTA_SET_ELEM_LIST_ELEMENTS) else {
            return Vec::new();
        };
        list.nested()
            .filter(|e| e.ty == NFTA_LIST_ELEM)
            .filter_map(|e| {
                let e = e.nested();
                // Skip interval ends and catch-all elements: not used by this suite.
                if e.attr(NFTA_SET_ELEM_FLAGS)
                    .and_then(|f| f.be32())
                    .unwrap_or(0)
                    != 0
                {
                    return None;
                }
                Some(ElemInfo {
                    key: e
                        .attr(NFTA_SET_ELEM_KEY)?
                        .nested()
                        .attr(NFTA_DATA_VALUE)?
                        .data
                        .to_vec(),
                    key_end: e
                        .attr(NFTA_SET_ELEM_KEY_END)
                        .and_then(|k| k.nested().attr(NFTA_DATA_VALUE))
                        .map(|v| v.data.to_vec()),
                    data: e
                        .attr(NFTA_SET_ELEM_DATA)
                        .and_then(|d| Data::decode(d.nested())),
                    comment: e
                        .attr(NFTA_SET_ELEM_USERDATA)
                        .and_then(|u| comment_of(u.data)),
                })
            })
            .collect()
    }
}
