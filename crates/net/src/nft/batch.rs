//! nf_tables objects (tables, chains, rules, sets, elements) and the [`Batch`] that carries
//! operations on them into one kernel transaction.
//!
//! Each operation is data ([`Op`]) until it is encoded, so a plan can be inspected (and
//! tested) before anything reaches the kernel. Encodings follow `nft` 1.0.x attribute for
//! attribute; the fixtures in `tests.rs` compare them byte for byte with what nft sends.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;

use super::expr::{Data, Expr, Verdict};
use super::wire::{AttrWriter, NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST};

// ---- message types (enum nf_tables_msg_types) ------------------------------------------------

pub(crate) const NFT_MSG_NEWTABLE: u16 = 0;
pub(crate) const NFT_MSG_GETTABLE: u16 = 1;
pub(crate) const NFT_MSG_DELTABLE: u16 = 2;
pub(crate) const NFT_MSG_NEWCHAIN: u16 = 3;
pub(crate) const NFT_MSG_GETCHAIN: u16 = 4;
pub(crate) const NFT_MSG_DELCHAIN: u16 = 5;
pub(crate) const NFT_MSG_NEWRULE: u16 = 6;
pub(crate) const NFT_MSG_GETRULE: u16 = 7;
pub(crate) const NFT_MSG_DELRULE: u16 = 8;
pub(crate) const NFT_MSG_NEWSET: u16 = 9;
pub(crate) const NFT_MSG_GETSET: u16 = 10;
pub(crate) const NFT_MSG_DELSET: u16 = 11;
pub(crate) const NFT_MSG_NEWSETELEM: u16 = 12;
pub(crate) const NFT_MSG_GETSETELEM: u16 = 13;
pub(crate) const NFT_MSG_DELSETELEM: u16 = 14;
pub(crate) const NFT_MSG_GETGEN: u16 = 16;

// ---- attributes ------------------------------------------------------------------------------

pub(crate) const NFTA_TABLE_NAME: u16 = 1;
pub(crate) const NFTA_TABLE_FLAGS: u16 = 2;
pub(crate) const NFTA_TABLE_USE: u16 = 3;
pub(crate) const NFTA_TABLE_HANDLE: u16 = 4;

pub(crate) const NFTA_CHAIN_TABLE: u16 = 1;
pub(crate) const NFTA_CHAIN_HANDLE: u16 = 2;
pub(crate) const NFTA_CHAIN_NAME: u16 = 3;
pub(crate) const NFTA_CHAIN_HOOK: u16 = 4;
pub(crate) const NFTA_CHAIN_POLICY: u16 = 5;
pub(crate) const NFTA_CHAIN_USE: u16 = 6;
pub(crate) const NFTA_CHAIN_TYPE: u16 = 7;
pub(crate) const NFTA_CHAIN_USERDATA: u16 = 12;
pub(crate) const NFTA_HOOK_HOOKNUM: u16 = 1;
pub(crate) const NFTA_HOOK_PRIORITY: u16 = 2;

pub(crate) const NFTA_RULE_TABLE: u16 = 1;
pub(crate) const NFTA_RULE_CHAIN: u16 = 2;
pub(crate) const NFTA_RULE_HANDLE: u16 = 3;
pub(crate) const NFTA_RULE_EXPRESSIONS: u16 = 4;
pub(crate) const NFTA_RULE_USERDATA: u16 = 7;

pub(crate) const NFTA_SET_TABLE: u16 = 1;
pub(crate) const NFTA_SET_NAME: u16 = 2;
pub(crate) const NFTA_SET_FLAGS: u16 = 3;
pub(crate) const NFTA_SET_KEY_TYPE: u16 = 4;
pub(crate) const NFTA_SET_KEY_LEN: u16 = 5;
pub(crate) const NFTA_SET_DATA_TYPE: u16 = 6;
pub(crate) const NFTA_SET_DATA_LEN: u16 = 7;
pub(crate) const NFTA_SET_ID: u16 = 10;
pub(crate) const NFTA_SET_USERDATA: u16 = 13;

pub(crate) const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
pub(crate) const NFTA_SET_ELEM_LIST_SET: u16 = 2;
pub(crate) const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
pub(crate) const NFTA_SET_ELEM_LIST_SET_ID: u16 = 4;
pub(crate) const NFTA_SET_ELEM_KEY: u16 = 1;
pub(crate) const NFTA_SET_ELEM_DATA: u16 = 2;
pub(crate) const NFTA_SET_ELEM_FLAGS: u16 = 3;
pub(crate) const NFTA_SET_ELEM_USERDATA: u16 = 6;
pub(crate) const NFTA_LIST_ELEM: u16 = 1;
pub(crate) const NFTA_DATA_VALUE: u16 = 1;

pub(crate) const NFTA_GEN_ID: u16 = 1;

/// `NFT_SET_MAP`.
pub const NFT_SET_MAP: u32 = 0x8;
/// `NFT_DATA_VERDICT`: the data type of a verdict map.
pub const NFT_DATA_VERDICT: u32 = 0xffff_ff00;

// libnftnl userdata TLV types (libnftnl/udata.h).
const UDATA_COMMENT: u8 = 0; // table, chain, rule and set element comments
const UDATA_SET_KEYBYTEORDER: u8 = 0;
const UDATA_SET_DATABYTEORDER: u8 = 1;
const UDATA_SET_DATA_INTERVAL: u8 = 6;
const UDATA_SET_COMMENT: u8 = 7;

/// The longest comment the kernel keeps: userdata is at most `NFT_USERDATA_MAXLEN` (256)
/// bytes, and the comment TLV needs a type byte, a length byte and the terminating NUL.
pub const MAX_COMMENT_LEN: usize = 253;
/// Longest table, chain or set name (`NFT_NAME_MAXLEN` 256, NUL included).
pub const MAX_NAME_LEN: usize = 255;

/// A table family (`NFPROTO_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// `inet`: IPv4 and IPv6.
    Inet,
    /// `ip`.
    Ip,
    /// `ip6`.
    Ip6,
}

impl Family {
    /// The `nfgen_family` number.
    pub fn raw(self) -> u8 {
        match self {
            Family::Inet => 1,
            Family::Ip => 2,
            Family::Ip6 => 10,
        }
    }

    /// The nft keyword.
    pub fn name(self) -> &'static str {
        match self {
            Family::Inet => "inet",
            Family::Ip => "ip",
            Family::Ip6 => "ip6",
        }
    }
}

/// A table, by family and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TableRef {
    /// Family.
    pub family: Family,
    /// Name.
    pub name: String,
}

impl TableRef {
    /// A table of the `inet` family.
    pub fn inet(name: impl Into<String>) -> TableRef {
        TableRef {
            family: Family::Inet,
            name: name.into(),
        }
    }
}

impl fmt::Display for TableRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.family.name(), self.name)
    }
}

/// A netfilter hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hook {
    /// `prerouting`.
    Prerouting,
    /// `input`.
    Input,
    /// `forward`.
    Forward,
    /// `output`.
    Output,
    /// `postrouting`.
    Postrouting,
}

impl Hook {
    fn raw(self) -> u32 {
        match self {
            Hook::Prerouting => 0,
            Hook::Input => 1,
            Hook::Forward => 2,
            Hook::Output => 3,
            Hook::Postrouting => 4,
        }
    }

    pub(crate) fn from_raw(n: u32) -> Option<Hook> {
        Some(match n {
            0 => Hook::Prerouting,
            1 => Hook::Input,
            2 => Hook::Forward,
            3 => Hook::Output,
            4 => Hook::Postrouting,
            _ => return None,
        })
    }
}

/// A base chain's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChainType {
    /// `filter`.
    Filter,
    /// `nat`.
    Nat,
    /// `route`.
    Route,
}

impl ChainType {
    /// The nft keyword.
    pub fn name(self) -> &'static str {
        match self {
            ChainType::Filter => "filter",
            ChainType::Nat => "nat",
            ChainType::Route => "route",
        }
    }

    pub(crate) fn from_name(s: &str) -> Option<ChainType> {
        Some(match s {
            "filter" => ChainType::Filter,
            "nat" => ChainType::Nat,
            "route" => ChainType::Route,
            _ => return None,
        })
    }
}

/// A base chain's policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Policy {
    /// `accept`.
    Accept,
    /// `drop`.
    Drop,
}

/// Standard priorities (`nft` keywords).
pub mod priority {
    /// `raw`.
    pub const RAW: i32 = -300;
    /// `mangle`.
    pub const MANGLE: i32 = -150;
    /// `dstnat`.
    pub const DSTNAT: i32 = -100;
    /// `filter`.
    pub const FILTER: i32 = 0;
    /// `srcnat`.
    pub const SRCNAT: i32 = 100;
}

/// The hook of a base chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BaseChain {
    /// Type.
    pub kind: ChainType,
    /// Hook.
    pub hook: Hook,
    /// Priority.
    pub priority: i32,
    /// Policy.
    pub policy: Policy,
}

/// A chain to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    /// Name.
    pub name: String,
    /// Hook, for base chains.
    pub base: Option<BaseChain>,
    /// Comment (`nft list` shows `comment "..."`).
    pub comment: Option<String>,
}

impl Chain {
    /// A regular chain (reached by jump/goto).
    pub fn regular(name: impl Into<String>) -> Chain {
        Chain {
            name: name.into(),
            base: None,
            comment: None,
        }
    }

    /// A base chain with policy accept.
    pub fn base(name: impl Into<String>, kind: ChainType, hook: Hook, priority: i32) -> Chain {
        Chain {
            name: name.into(),
            base: Some(BaseChain {
                kind,
                hook,
                priority,
                policy: Policy::Accept,
            }),
            comment: None,
        }
    }

    /// With a comment.
    pub fn with_comment(mut self, comment: impl Into<String>) -> Chain {
        self.comment = Some(comment.into());
        self
    }
}

/// A rule to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The chain it goes into.
    pub chain: String,
    /// Its expressions.
    pub exprs: Vec<Expr>,
    /// Comment.
    pub comment: Option<String>,
}

impl Rule {
    /// A rule of `exprs` in `chain`.
    pub fn new(chain: impl Into<String>, exprs: Vec<Expr>) -> Rule {
        Rule {
            chain: chain.into(),
            exprs,
            comment: None,
        }
    }

    /// With a comment.
    pub fn with_comment(mut self, comment: impl Into<String>) -> Rule {
        self.comment = Some(comment.into());
        self
    }
}

/// Data types of set keys and map values (nft's `TYPE_*` ids).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataType {
    /// `ipv4_addr`.
    Ipv4Addr,
    /// `ipv6_addr`.
    Ipv6Addr,
    /// `inet_proto`.
    InetProto,
    /// `inet_service` (a port).
    InetService,
    /// `mark`.
    Mark,
}

impl DataType {
    /// nft's type id.
    pub fn id(self) -> u32 {
        match self {
            DataType::Ipv4Addr => 7,
            DataType::Ipv6Addr => 8,
            DataType::InetProto => 12,
            DataType::InetService => 13,
            DataType::Mark => 19,
        }
    }

    /// Size in bytes.
    pub fn size(self) -> u32 {
        match self {
            DataType::Ipv4Addr | DataType::Mark => 4,
            DataType::Ipv6Addr => 16,
            DataType::InetProto => 1,
            DataType::InetService => 2,
        }
    }

    /// nft's `enum byteorder`: 1 host, 2 big endian.
    fn byteorder(self) -> u32 {
        match self {
            DataType::Mark => 1,
            _ => 2,
        }
    }

    /// The nft keyword.
    pub fn name(self) -> &'static str {
        match self {
            DataType::Ipv4Addr => "ipv4_addr",
            DataType::Ipv6Addr => "ipv6_addr",
            DataType::InetProto => "inet_proto",
            DataType::InetService => "inet_service",
            DataType::Mark => "mark",
        }
    }
}

/// What a map maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MapData {
    /// A verdict map (`: verdict`).
    Verdict,
    /// A data map.
    Value(DataType),
}

/// A named set or map to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetDef {
    /// Name.
    pub name: String,
    /// Key type; more than one is a concatenation (`ipv4_addr . inet_proto . inet_service`).
    pub key: Vec<DataType>,
    /// Map data, for maps.
    pub data: Option<MapData>,
    /// `NFT_SET_*` flags besides `NFT_SET_MAP` (added for maps).
    pub flags: u32,
    /// Comment.
    pub comment: Option<String>,
}

impl SetDef {
    /// `set <name> { type <key>; }`.
    pub fn set(name: impl Into<String>, key: Vec<DataType>) -> SetDef {
        SetDef {
            name: name.into(),
            key,
            data: None,
            flags: 0,
            comment: None,
        }
    }

    /// `map <name> { type <key> : verdict; }`.
    pub fn vmap(name: impl Into<String>, key: Vec<DataType>) -> SetDef {
        SetDef {
            data: Some(MapData::Verdict),
            ..SetDef::set(name, key)
        }
    }

    /// With a comment.
    pub fn with_comment(mut self, comment: impl Into<String>) -> SetDef {
        self.comment = Some(comment.into());
        self
    }

    /// nft's key type id: concatenations combine 6 bits per field, first field highest.
    pub fn key_type_id(&self) -> u32 {
        self.key.iter().fold(0u32, |acc, t| (acc << 6) | t.id())
    }

    /// Key length: each field is padded to 4 bytes (a register slot).
    pub fn key_len(&self) -> u32 {
        if self.key.len() == 1 {
            self.key[0].size()
        } else {
            self.key.iter().map(|t| t.size().div_ceil(4) * 4).sum()
        }
    }

    fn flags_on_wire(&self) -> u32 {
        self.flags | if self.data.is_some() { NFT_SET_MAP } else { 0 }
    }

    fn userdata(&self) -> Vec<u8> {
        let mut u = Vec::new();
        let key_order = if self.key.len() == 1 {
            self.key[0].byteorder()
        } else {
            0
        };
        udata_u32(&mut u, UDATA_SET_KEYBYTEORDER, key_order);
        if let Some(d) = self.data {
            let order = match d {
                MapData::Verdict => 0,
                MapData::Value(t) => t.byteorder(),
            };
            udata_u32(&mut u, UDATA_SET_DATABYTEORDER, order);
            udata_u32(&mut u, UDATA_SET_DATA_INTERVAL, 0);
        }
        if let Some(c) = &self.comment {
            udata_str(&mut u, UDATA_SET_COMMENT, c);
        }
        u
    }
}

/// A part of a set key, padded to 4 bytes as nft lays concatenations out in registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyPart {
    /// An address (4 or 16 bytes).
    Addr(IpAddr),
    /// An IP protocol number.
    Proto(u8),
    /// A port.
    Port(u16),
}

impl KeyPart {
    fn bytes(&self) -> Vec<u8> {
        match self {
            KeyPart::Addr(IpAddr::V4(a)) => a.octets().to_vec(),
            KeyPart::Addr(IpAddr::V6(a)) => a.octets().to_vec(),
            KeyPart::Proto(p) => vec![*p],
            KeyPart::Port(p) => p.to_be_bytes().to_vec(),
        }
    }

    fn label(&self) -> String {
        match self {
            KeyPart::Addr(a) => a.to_string(),
            KeyPart::Proto(p) => proto_name(*p),
            KeyPart::Port(p) => p.to_string(),
        }
    }
}

/// `tcp`, `udp`, `sctp`, or the number.
pub fn proto_name(p: u8) -> String {
    match p {
        6 => "tcp".into(),
        17 => "udp".into(),
        132 => "sctp".into(),
        1 => "icmp".into(),
        58 => "ipv6-icmp".into(),
        n => n.to_string(),
    }
}

/// A set element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Elem {
    /// The key as the kernel stores it.
    pub key: Vec<u8>,
    /// Map data.
    pub data: Option<Data>,
    /// Comment.
    pub comment: Option<String>,
    /// How the key reads in nft syntax (for messages).
    pub label: String,
}

impl Elem {
    /// An address element (`10.244.0.5`).
    pub fn addr(a: IpAddr) -> Elem {
        Elem::concat(&[KeyPart::Addr(a)])
    }

    /// A (possibly concatenated) key: `192.168.1.1 . tcp . 8080`.
    pub fn concat(parts: &[KeyPart]) -> Elem {
        let mut key = Vec::new();
        for p in parts {
            let b = p.bytes();
            key.extend_from_slice(&b);
            if parts.len() > 1 {
                key.resize(key.len().div_ceil(4) * 4, 0);
            }
        }
        Elem {
            key,
            data: None,
            comment: None,
            label: parts
                .iter()
                .map(KeyPart::label)
                .collect::<Vec<_>>()
                .join(" . "),
        }
    }

    /// An element from raw key bytes.
    pub fn raw(key: Vec<u8>) -> Elem {
        let label = key.iter().map(|b| format!("{b:02x}")).collect();
        Elem {
            key,
            data: None,
            comment: None,
            label,
        }
    }

    /// With a verdict (`: jump chain`).
    pub fn with_verdict(mut self, v: Verdict) -> Elem {
        self.data = Some(Data::Verdict(v));
        self
    }

    /// With a comment.
    pub fn with_comment(mut self, comment: impl Into<String>) -> Elem {
        self.comment = Some(comment.into());
        self
    }

    fn encode(&self, w: &mut AttrWriter, key_only: bool) {
        w.nest(NFTA_LIST_ELEM, |w| {
            w.nest(NFTA_SET_ELEM_KEY, |w| w.put(NFTA_DATA_VALUE, &self.key));
            if key_only {
                return;
            }
            if let Some(d) = &self.data {
                w.nest(NFTA_SET_ELEM_DATA, |w| d.encode(w));
            }
            if let Some(c) = &self.comment {
                let mut u = Vec::new();
                udata_str(&mut u, UDATA_COMMENT, c);
                w.put(NFTA_SET_ELEM_USERDATA, &u);
            }
        });
    }
}

fn udata_u32(out: &mut Vec<u8>, ty: u8, v: u32) {
    out.push(ty);
    out.push(4);
    out.extend_from_slice(&v.to_ne_bytes());
}

fn udata_str(out: &mut Vec<u8>, ty: u8, s: &str) {
    out.push(ty);
    out.push(u8::try_from(s.len() + 1).unwrap_or(u8::MAX));
    out.extend_from_slice(s.as_bytes());
    out.push(0);
}

/// The comment in libnftnl userdata TLVs (`type, len, value`), if there is one of `ty`.
pub(crate) fn udata_comment(udata: &[u8], ty: u8) -> Option<String> {
    let mut rest = udata;
    while rest.len() >= 2 {
        let (t, len) = (rest[0], usize::from(rest[1]));
        let value = rest.get(2..2 + len)?;
        if t == ty {
            let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
            return Some(String::from_utf8_lossy(&value[..end]).into_owned());
        }
        rest = &rest[2 + len..];
    }
    None
}

/// Element, chain and rule comments use TLV type 0, set comments type 7.
pub(crate) fn comment_of(udata: &[u8]) -> Option<String> {
    udata_comment(udata, UDATA_COMMENT)
}

/// Set comments.
pub(crate) fn set_comment_of(udata: &[u8]) -> Option<String> {
    udata_comment(udata, UDATA_SET_COMMENT)
}

/// One operation of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpKind {
    /// `add table` (creates if missing).
    AddTable,
    /// `delete table`.
    DelTable,
    /// `add chain` (creates if missing, never `EEXIST`).
    AddChain(Chain),
    /// `delete chain`.
    DelChain(String),
    /// `flush chain` (delete every rule).
    FlushChain(String),
    /// `add rule` (appends).
    AddRule(Rule),
    /// `delete rule ... handle N`.
    DelRule {
        /// Chain.
        chain: String,
        /// Rule handle.
        handle: u64,
    },
    /// `add set`/`add map` (creates if missing).
    AddSet(SetDef),
    /// `delete set`.
    DelSet(String),
    /// `flush set`.
    FlushSet(String),
    /// `add element` (creates if missing; same key with other data is `EEXIST`).
    AddElems {
        /// Set.
        set: String,
        /// Elements.
        elems: Vec<Elem>,
    },
    /// `delete element`.
    DelElems {
        /// Set.
        set: String,
        /// Elements (only keys are sent).
        elems: Vec<Elem>,
    },
}

/// An operation on one table, and whether a missing object is fine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    /// The table.
    pub table: TableRef,
    /// What to do.
    pub kind: OpKind,
    /// For deletes: succeed when the object is already gone (see [`Batch`]).
    pub if_exists: bool,
}

impl Op {
    /// The operation in nft syntax, for error messages and logs:
    /// `add rule inet ferro_cni masq-kbr`.
    pub fn describe(&self) -> String {
        let t = &self.table;
        match &self.kind {
            OpKind::AddTable => format!("add table {t}"),
            OpKind::DelTable => format!("delete table {t}"),
            OpKind::AddChain(c) => format!("add chain {t} {}", c.name),
            OpKind::DelChain(c) => format!("delete chain {t} {c}"),
            OpKind::FlushChain(c) => format!("flush chain {t} {c}"),
            OpKind::AddRule(r) => format!("add rule {t} {}", r.chain),
            OpKind::DelRule { chain, handle } => {
                format!("delete rule {t} {chain} handle {handle}")
            }
            OpKind::AddSet(s) => format!(
                "add {} {t} {}",
                if s.data.is_some() { "map" } else { "set" },
                s.name
            ),
            OpKind::DelSet(s) => format!("delete set {t} {s}"),
            OpKind::FlushSet(s) => format!("flush set {t} {s}"),
            OpKind::AddElems { set, elems } => {
                format!("add element {t} {set} {{ {} }}", labels(elems))
            }
            OpKind::DelElems { set, elems } => {
                format!("delete element {t} {set} {{ {} }}", labels(elems))
            }
        }
    }

    /// Checks names and comments against the kernel's limits before anything is sent.
    pub(crate) fn validate(&self) -> Result<(), String> {
        let name = |n: &str, what: &str| -> Result<(), String> {
            if n.is_empty() || n.len() > MAX_NAME_LEN || n.contains('\0') {
                return Err(format!(
                    "{what} name {n:?} is empty, too long or contains NUL"
                ));
            }
            Ok(())
        };
        let comment = |c: &Option<String>| -> Result<(), String> {
            match c {
                Some(c) if c.len() > MAX_COMMENT_LEN || c.contains('\0') => Err(format!(
                    "comment of {} bytes exceeds the kernel's {MAX_COMMENT_LEN}",
                    c.len()
                )),
                _ => Ok(()),
            }
        };
        name(&self.table.name, "table")?;
        match &self.kind {
            OpKind::AddTable | OpKind::DelTable => Ok(()),
            OpKind::AddChain(c) => {
                name(&c.name, "chain")?;
                comment(&c.comment)
            }
            OpKind::DelChain(c) | OpKind::FlushChain(c) => name(c, "chain"),
            OpKind::AddRule(r) => {
                name(&r.chain, "chain")?;
                comment(&r.comment)
            }
            OpKind::DelRule { chain, .. } => name(chain, "chain"),
            OpKind::AddSet(s) => {
                name(&s.name, "set")?;
                if s.key.is_empty() {
                    return Err(format!("set {} has no key type", s.name));
                }
                comment(&s.comment)
            }
            OpKind::DelSet(s) | OpKind::FlushSet(s) => name(s, "set"),
            OpKind::AddElems { set, elems } | OpKind::DelElems { set, elems } => {
                name(set, "set")?;
                for e in elems {
                    comment(&e.comment)?;
                }
                Ok(())
            }
        }
    }

    /// Message type, flags (besides `NLM_F_REQUEST|NLM_F_ACK`) and attributes.
    pub(crate) fn encode(&self, set_ids: &HashMap<String, u32>) -> (u16, u16, Vec<u8>) {
        let mut w = AttrWriter::new();
        let t = &self.table.name;
        let ids = |s: &str| set_ids.get(s).copied();
        let (ty, flags) = match &self.kind {
            OpKind::AddTable => {
                w.put_strz(NFTA_TABLE_NAME, t);
                w.put_be32(NFTA_TABLE_FLAGS, 0);
                (NFT_MSG_NEWTABLE, NLM_F_CREATE)
            }
            OpKind::DelTable => {
                w.put_strz(NFTA_TABLE_NAME, t);
                (NFT_MSG_DELTABLE, 0)
            }
            OpKind::AddChain(c) => {
                w.put_strz(NFTA_CHAIN_TABLE, t);
                w.put_strz(NFTA_CHAIN_NAME, &c.name);
                if let Some(b) = &c.base {
                    w.put_strz(NFTA_CHAIN_TYPE, b.kind.name());
                    w.put_be32(
                        NFTA_CHAIN_POLICY,
                        match b.policy {
                            Policy::Accept => 1,
                            Policy::Drop => 0,
                        },
                    );
                    w.nest(NFTA_CHAIN_HOOK, |w| {
                        w.put_be32(NFTA_HOOK_HOOKNUM, b.hook.raw());
                        w.put_be32(NFTA_HOOK_PRIORITY, b.priority as u32);
                    });
                }
                if let Some(cm) = &c.comment {
                    let mut u = Vec::new();
                    udata_str(&mut u, UDATA_COMMENT, cm);
                    w.put(NFTA_CHAIN_USERDATA, &u);
                }
                (NFT_MSG_NEWCHAIN, NLM_F_CREATE)
            }
            OpKind::DelChain(c) => {
                w.put_strz(NFTA_CHAIN_TABLE, t);
                w.put_strz(NFTA_CHAIN_NAME, c);
                (NFT_MSG_DELCHAIN, 0)
            }
            OpKind::FlushChain(c) => {
                w.put_strz(NFTA_RULE_TABLE, t);
                w.put_strz(NFTA_RULE_CHAIN, c);
                (NFT_MSG_DELRULE, 0)
            }
            OpKind::AddRule(r) => {
                w.put_strz(NFTA_RULE_TABLE, t);
                w.put_strz(NFTA_RULE_CHAIN, &r.chain);
                w.nest(NFTA_RULE_EXPRESSIONS, |w| {
                    for e in &r.exprs {
                        e.encode(w, &ids);
                    }
                });
                if let Some(cm) = &r.comment {
                    let mut u = Vec::new();
                    udata_str(&mut u, UDATA_COMMENT, cm);
                    w.put(NFTA_RULE_USERDATA, &u);
                }
                (NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND)
            }
            OpKind::DelRule { chain, handle } => {
                w.put_strz(NFTA_RULE_TABLE, t);
                w.put_strz(NFTA_RULE_CHAIN, chain);
                w.put_be64(NFTA_RULE_HANDLE, *handle);
                (NFT_MSG_DELRULE, 0)
            }
            OpKind::AddSet(s) => {
                w.put_strz(NFTA_SET_TABLE, t);
                w.put_strz(NFTA_SET_NAME, &s.name);
                w.put_be32(NFTA_SET_FLAGS, s.flags_on_wire());
                w.put_be32(NFTA_SET_KEY_TYPE, s.key_type_id());
                w.put_be32(NFTA_SET_KEY_LEN, s.key_len());
                match s.data {
                    Some(MapData::Verdict) => {
                        w.put_be32(NFTA_SET_DATA_TYPE, NFT_DATA_VERDICT);
                        w.put_be32(NFTA_SET_DATA_LEN, 0);
                    }
                    Some(MapData::Value(d)) => {
                        w.put_be32(NFTA_SET_DATA_TYPE, d.id());
                        w.put_be32(NFTA_SET_DATA_LEN, d.size());
                    }
                    None => {}
                }
                if let Some(id) = ids(&s.name) {
                    w.put_be32(NFTA_SET_ID, id);
                }
                w.put(NFTA_SET_USERDATA, &s.userdata());
                (NFT_MSG_NEWSET, NLM_F_CREATE)
            }
            OpKind::DelSet(s) => {
                w.put_strz(NFTA_SET_TABLE, t);
                w.put_strz(NFTA_SET_NAME, s);
                (NFT_MSG_DELSET, 0)
            }
            OpKind::FlushSet(s) => {
                // nft sends the set name first here.
                w.put_strz(NFTA_SET_ELEM_LIST_SET, s);
                w.put_strz(NFTA_SET_ELEM_LIST_TABLE, t);
                (NFT_MSG_DELSETELEM, 0)
            }
            OpKind::AddElems { set, elems } => {
                w.put_strz(NFTA_SET_ELEM_LIST_TABLE, t);
                w.put_strz(NFTA_SET_ELEM_LIST_SET, set);
                if let Some(id) = ids(set) {
                    w.put_be32(NFTA_SET_ELEM_LIST_SET_ID, id);
                }
                w.nest(NFTA_SET_ELEM_LIST_ELEMENTS, |w| {
                    for e in elems {
                        e.encode(w, false);
                    }
                });
                (NFT_MSG_NEWSETELEM, NLM_F_CREATE)
            }
            OpKind::DelElems { set, elems } => {
                w.put_strz(NFTA_SET_ELEM_LIST_TABLE, t);
                w.put_strz(NFTA_SET_ELEM_LIST_SET, set);
                w.nest(NFTA_SET_ELEM_LIST_ELEMENTS, |w| {
                    for e in elems {
                        e.encode(w, true);
                    }
                });
                (NFT_MSG_DELSETELEM, 0)
            }
        };
        (ty, flags, w.into_bytes())
    }
}

fn labels(elems: &[Elem]) -> String {
    elems
        .iter()
        .map(|e| e.label.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Operations sent as ONE nf_tables transaction: `NFNL_MSG_BATCH_BEGIN`, the messages (each
/// asking for an ACK), `NFNL_MSG_BATCH_END`, in one `sendmsg`. The kernel applies all of them
/// or none. Built by appending; applied with [`super::NftSocket::apply`].
///
/// Adds never use `NLM_F_EXCL`, so "ensure" operations are idempotent. Deletes come in two
/// kinds: strict (`del_*`: a missing object fails the transaction) and idempotent
/// (`del_*_if_exists`). For the latter the socket does not rely on `NFT_MSG_DESTROY*`
/// (kernel ≥ 6.3; Debian 12 runs 6.1): it sends the batch, and when the only failures are
/// `ENOENT` answers to idempotent deletes, it drops those operations and sends the rest
/// again (a bounded number of times). No extra round trip in the common case.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    ops: Vec<Op>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Batch {
        Batch::default()
    }

    /// The operations, in order.
    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// No operations.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Appends an operation.
    pub fn push(&mut self, table: &TableRef, kind: OpKind, if_exists: bool) -> &mut Batch {
        self.ops.push(Op {
            table: table.clone(),
            kind,
            if_exists,
        });
        self
    }

    /// Appends every operation of `other`.
    pub fn extend(&mut self, other: Batch) -> &mut Batch {
        self.ops.extend(other.ops);
        self
    }

    /// `nft add table <t>`.
    pub fn add_table(&mut self, t: &TableRef) -> &mut Batch {
        self.push(t, OpKind::AddTable, false)
    }

    /// `nft delete table <t>`; with `if_exists`, a missing table is success.
    pub fn del_table(&mut self, t: &TableRef, if_exists: bool) -> &mut Batch {
        self.push(t, OpKind::DelTable, if_exists)
    }

    /// `nft add chain <t> <name> { type .. hook .. priority ..; comment ".."; }`.
    pub fn add_chain(&mut self, t: &TableRef, chain: Chain) -> &mut Batch {
        self.push(t, OpKind::AddChain(chain), false)
    }

    /// `nft delete chain <t> <name>`.
    pub fn del_chain(&mut self, t: &TableRef, name: &str, if_exists: bool) -> &mut Batch {
        self.push(t, OpKind::DelChain(name.to_string()), if_exists)
    }

    /// `nft flush chain <t> <name>`.
    pub fn flush_chain(&mut self, t: &TableRef, name: &str, if_exists: bool) -> &mut Batch {
        self.push(t, OpKind::FlushChain(name.to_string()), if_exists)
    }

    /// `nft add rule <t> <chain> <exprs> [comment ".."]`.
    pub fn add_rule(&mut self, t: &TableRef, rule: Rule) -> &mut Batch {
        self.push(t, OpKind::AddRule(rule), false)
    }

    /// `nft delete rule <t> <chain> handle <h>`.
    pub fn del_rule(
        &mut self,
        t: &TableRef,
        chain: &str,
        handle: u64,
        if_exists: bool,
    ) -> &mut Batch {
        self.push(
            t,
            OpKind::DelRule {
                chain: chain.to_string(),
                handle,
            },
            if_exists,
        )
    }

    /// `nft add set|map <t> <name> { type ..; }`.
    pub fn add_set(&mut self, t: &TableRef, set: SetDef) -> &mut Batch {
        self.push(t, OpKind::AddSet(set), false)
    }

    /// `nft delete set <t> <name>`.
    pub fn del_set(&mut self, t: &TableRef, name: &str, if_exists: bool) -> &mut Batch {
        self.push(t, OpKind::DelSet(name.to_string()), if_exists)
    }

    /// `nft flush set <t> <name>`.
    pub fn flush_set(&mut self, t: &TableRef, name: &str, if_exists: bool) -> &mut Batch {
        self.push(t, OpKind::FlushSet(name.to_string()), if_exists)
    }

    /// `nft add element <t> <set> { <elems> }`.
    pub fn add_elems(&mut self, t: &TableRef, set: &str, elems: Vec<Elem>) -> &mut Batch {
        self.push(
            t,
            OpKind::AddElems {
                set: set.to_string(),
                elems,
            },
            false,
        )
    }

    /// `nft delete element <t> <set> { <elems> }`. With `if_exists`, each element goes into
    /// its own message so that only the missing ones are dropped on retry.
    pub fn del_elems(
        &mut self,
        t: &TableRef,
        set: &str,
        elems: Vec<Elem>,
        if_exists: bool,
    ) -> &mut Batch {
        if if_exists {
            for e in elems {
                self.push(
                    t,
                    OpKind::DelElems {
                        set: set.to_string(),
                        elems: vec![e],
                    },
                    true,
                );
            }
            self
        } else {
            self.push(
                t,
                OpKind::DelElems {
                    set: set.to_string(),
                    elems,
                },
                false,
            )
        }
    }

    /// The batch as nft commands, one per line (for logs).
    pub fn describe(&self) -> String {
        self.ops
            .iter()
            .map(Op::describe)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Set ids like nft assigns them: sets created in this batch are numbered from 1, and
    /// later references to them (lookups, elements) carry the id.
    pub(crate) fn set_ids(&self, include: impl Fn(usize) -> bool) -> HashMap<String, u32> {
        let mut ids = HashMap::new();
        let mut next = 1u32;
        for (i, op) in self.ops.iter().enumerate() {
            if let OpKind::AddSet(s) = &op.kind {
                if include(i) && !ids.contains_key(&s.name) {
                    ids.insert(s.name.clone(), next);
                    next += 1;
                }
            }
        }
        ids
    }
}

/// Flags of a batch message: every message asks for an ACK; adds create, never exclusively.
pub(crate) fn op_flags(extra: u16) -> u16 {
    debug_assert!(extra & NLM_F_EXCL == 0);
    NLM_F_REQUEST | NLM_F_ACK | extra
}
