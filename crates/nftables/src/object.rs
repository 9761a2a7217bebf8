//! nf_tables objects as data: tables, chains, rules, sets and maps, set elements, and the
//! libnftnl userdata (comments, byte orders) nft attaches to them. [`crate::Batch`] turns
//! operations on them into messages.

use std::fmt;
use std::net::IpAddr;

use crate::expr::{Data, Expr, Verdict};
use crate::uapi::{
    NFTA_DATA_VALUE, NFTA_LIST_ELEM, NFTA_SET_ELEM_DATA, NFTA_SET_ELEM_KEY, NFTA_SET_ELEM_KEY_END,
    NFTA_SET_ELEM_USERDATA, NFT_SET_CONCAT, NFT_SET_INTERVAL, NFT_SET_MAP, UDATA_COMMENT,
    UDATA_SET_COMMENT, UDATA_SET_DATABYTEORDER, UDATA_SET_DATA_INTERVAL, UDATA_SET_KEYBYTEORDER,
};
use crate::wire::AttrWriter;

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
    /// A table of `family`.
    pub fn new(family: Family, name: impl Into<String>) -> TableRef {
        TableRef {
            family,
            name: name.into(),
        }
    }

    /// A table of the `inet` family.
    pub fn inet(name: impl Into<String>) -> TableRef {
        TableRef::new(Family::Inet, name)
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
    pub(crate) fn raw(self) -> u32 {
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
    /// `integer` of 32 bits, host byte order (what `numgen` and `jhash` produce).
    Integer,
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
            DataType::Integer => 4,
        }
    }

    /// Size in bytes.
    pub fn size(self) -> u32 {
        match self {
            DataType::Ipv4Addr | DataType::Mark | DataType::Integer => 4,
            DataType::Ipv6Addr => 16,
            DataType::InetProto => 1,
            DataType::InetService => 2,
        }
    }

    /// nft's `enum byteorder`: 1 host, 2 big endian.
    fn byteorder(self) -> u32 {
        match self {
            DataType::Mark | DataType::Integer => 1,
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
            DataType::Integer => "integer",
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
    /// Default element timeout in milliseconds (sets with `NFT_SET_TIMEOUT`).
    pub timeout_ms: Option<u64>,
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
            timeout_ms: None,
        }
    }

    /// `set <name> { type <key>; flags dynamic,timeout; timeout <t>; }`: a set the packet
    /// path fills (`update @set { ... }`) whose elements expire after `timeout_ms`.
    pub fn dynamic_timeout(name: impl Into<String>, key: Vec<DataType>, timeout_ms: u64) -> SetDef {
        SetDef {
            flags: crate::uapi::NFT_SET_TIMEOUT | crate::uapi::NFT_SET_EVAL,
            timeout_ms: Some(timeout_ms),
            ..SetDef::set(name, key)
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

    /// `flags interval`: elements are ranges. A concatenation of ranges needs kernel 5.6
    /// (elements made with [`Elem::range`]; the kernel refuses overlapping ones).
    pub fn with_interval(mut self) -> SetDef {
        self.flags |= NFT_SET_INTERVAL;
        self
    }

    /// Whether elements are ranges of a concatenation (`NFTA_SET_DESC_CONCAT` is sent).
    pub fn concat_intervals(&self) -> bool {
        self.flags & NFT_SET_INTERVAL != 0 && self.key.len() > 1
    }

    /// The lengths of the key's fields, in bytes.
    pub fn field_lens(&self) -> Vec<u32> {
        self.key.iter().map(|t| t.size()).collect()
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

    pub(crate) fn flags_on_wire(&self) -> u32 {
        self.flags
            | if self.data.is_some() { NFT_SET_MAP } else { 0 }
            | if self.concat_intervals() {
                NFT_SET_CONCAT
            } else {
                0
            }
    }

    pub(crate) fn userdata(&self) -> Vec<u8> {
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
    /// The last key of a range (sets with [`SetDef::with_interval`] and a concatenated
    /// key).
    pub key_end: Option<Vec<u8>>,
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
        Elem {
            key: key_bytes(parts),
            key_end: None,
            data: None,
            comment: None,
            label: parts
                .iter()
                .map(KeyPart::label)
                .collect::<Vec<_>>()
                .join(" . "),
        }
    }

    /// A 32-bit integer element in host byte order (the keys of a `numgen` map).
    pub fn int(n: u32) -> Elem {
        Elem {
            key: n.to_ne_bytes().to_vec(),
            key_end: None,
            data: None,
            comment: None,
            label: n.to_string(),
        }
    }

    /// A range element of a concatenated interval set, from `first` to `last` field by
    /// field: `10.0.0.0-10.0.0.255 . tcp . 80-81` is `first = [10.0.0.0, tcp, 80]`,
    /// `last = [10.0.0.255, tcp, 81]`.
    pub fn range(first: &[KeyPart], last: &[KeyPart]) -> Elem {
        let label = first
            .iter()
            .zip(last)
            .map(|(a, b)| {
                if a == b {
                    a.label()
                } else {
                    format!("{}-{}", a.label(), b.label())
                }
            })
            .collect::<Vec<_>>()
            .join(" . ");
        Elem {
            key: key_bytes(first),
            key_end: Some(key_bytes(last)),
            data: None,
            comment: None,
            label,
        }
    }

    /// An element from raw key bytes.
    pub fn raw(key: Vec<u8>) -> Elem {
        let label = key.iter().map(|b| format!("{b:02x}")).collect();
        Elem {
            key,
            key_end: None,
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

    /// Encodes the element as the `index`-th (from 0) of its message's list: libnftnl
    /// numbers the list's attributes 1, 2, 3... (the kernel ignores their type).
    pub(crate) fn encode(&self, w: &mut AttrWriter, index: usize, key_only: bool) {
        let ty = u16::try_from(index + 1).unwrap_or(NFTA_LIST_ELEM);
        w.nest(ty, |w| {
            w.nest(NFTA_SET_ELEM_KEY, |w| w.put(NFTA_DATA_VALUE, &self.key));
            if let Some(end) = &self.key_end {
                w.nest(NFTA_SET_ELEM_KEY_END, |w| w.put(NFTA_DATA_VALUE, end));
            }
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

/// The key of `parts` as the kernel stores it: fields of a concatenation each padded to 4
/// bytes.
fn key_bytes(parts: &[KeyPart]) -> Vec<u8> {
    let mut key = Vec::new();
    for p in parts {
        key.extend_from_slice(&p.bytes());
        if parts.len() > 1 {
            key.resize(key.len().div_ceil(4) * 4, 0);
        }
    }
    key
}

fn udata_u32(out: &mut Vec<u8>, ty: u8, v: u32) {
    out.push(ty);
    out.push(4);
    out.extend_from_slice(&v.to_ne_bytes());
}

pub(crate) fn udata_str(out: &mut Vec<u8>, ty: u8, s: &str) {
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
