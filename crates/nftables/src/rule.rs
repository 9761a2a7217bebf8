//! [`RuleBuilder`]: rules written as nft statements, producing the expressions nft produces
//! for them (dependencies, register allocation and the CIDR shortcuts included), so the
//! firewall model reads like the `nft` commands it documents.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::expr::{
    CmpOp, CtKey, Data, Expr, FibResult, MetaKey, NatKind, PayloadBase, Reg, Verdict,
};
use crate::object::Rule;
#[cfg(doc)]
use crate::uapi::RTN_LOCAL;
use crate::uapi::{
    nfproto, FIB_F_DADDR, FIB_F_IIF, FIB_F_PRESENT, FIB_F_SADDR, NF_NAT_RANGE_PROTO_RANDOM_FULLY,
    NF_NAT_RANGE_PROTO_SPECIFIED,
};

/// Source or destination address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dir {
    /// `saddr`.
    Src,
    /// `daddr`.
    Dst,
}

/// One field of a concatenated lookup key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyField {
    /// `ip saddr`/`ip daddr`.
    Ip4(Dir),
    /// `ip6 saddr`/`ip6 daddr`.
    Ip6(Dir),
    /// `meta l4proto`.
    L4Proto,
    /// `th dport`.
    ThDport,
}

impl KeyField {
    fn len(self) -> u32 {
        match self {
            KeyField::Ip4(_) => 4,
            KeyField::Ip6(_) => 16,
            KeyField::L4Proto => 1,
            KeyField::ThDport => 2,
        }
    }
}

/// Builds the expressions of one rule, statement by statement.
///
/// Like nft in an `inet` table, matches on IPv4/IPv6 headers add a `meta nfproto` check once
/// per rule; `th dport` and `dnat ip to` add none.
#[derive(Debug, Clone, Default)]
pub struct RuleBuilder {
    exprs: Vec<Expr>,
    nfproto: Option<u8>,
}

fn addr_offset(v6: bool, dir: Dir) -> u32 {
    match (v6, dir) {
        (false, Dir::Src) => 12,
        (false, Dir::Dst) => 16,
        (true, Dir::Src) => 8,
        (true, Dir::Dst) => 24,
    }
}

fn ifname_bytes(name: &str) -> Vec<u8> {
    // An exact interface-name match compares IFNAMSIZ (16) bytes, zero padded.
    let mut b = name.as_bytes().to_vec();
    b.resize(16.max(b.len()), 0);
    b
}

impl RuleBuilder {
    /// An empty rule.
    pub fn new() -> RuleBuilder {
        RuleBuilder::default()
    }

    /// The expressions so far.
    pub fn exprs(&self) -> &[Expr] {
        &self.exprs
    }

    /// Appends a raw expression.
    pub fn expr(mut self, e: Expr) -> RuleBuilder {
        self.exprs.push(e);
        self
    }

    /// `meta nfproto ipv4|ipv6` (`family` is [`nfproto::IPV4`] or [`nfproto::IPV6`]).
    pub fn meta_nfproto(mut self, family: u8) -> RuleBuilder {
        self.exprs.push(Expr::meta(MetaKey::NFPROTO, Reg::R1));
        self.exprs.push(Expr::cmp(CmpOp::Eq, Reg::R1, vec![family]));
        self.nfproto = Some(family);
        self
    }

    fn need_nfproto(self, family: u8) -> RuleBuilder {
        if self.nfproto == Some(family) {
            self
        } else {
            self.meta_nfproto(family)
        }
    }

    fn load_addr(mut self, v6: bool, dir: Dir, len: u32, dreg: Reg) -> RuleBuilder {
        self = self.need_nfproto(if v6 { nfproto::IPV6 } else { nfproto::IPV4 });
        self.exprs.push(Expr::Payload {
            base: PayloadBase::Network,
            offset: addr_offset(v6, dir),
            len,
            dreg,
        });
        self
    }

    /// `ip saddr @set` / `ip6 daddr != @set` ...
    pub fn addr_in_set(mut self, v6: bool, dir: Dir, set: &str, inverted: bool) -> RuleBuilder {
        self = self.load_addr(v6, dir, if v6 { 16 } else { 4 }, Reg::R1);
        self.exprs.push(Expr::Lookup {
            set: set.to_string(),
            sreg: Reg::R1,
            dreg: None,
            inverted,
        });
        self
    }

    /// `ip saddr != 10.0.0.0/8`: [`RuleBuilder::addr_cidr`] with the comparison inverted.
    /// `/0` matches nothing of the family, so it is refused by the caller's logic: here it
    /// compares the family only, like `addr_cidr`.
    pub fn not_addr_cidr(mut self, dir: Dir, net: IpNet) -> RuleBuilder {
        self = self.addr_cidr(dir, net);
        if let Some(Expr::Cmp { op, .. }) = self.exprs.last_mut() {
            if net.prefix_len() != 0 {
                *op = CmpOp::Neq;
            }
        }
        self
    }

    /// `ip daddr 10.0.0.0/8`: like nft, a byte-aligned prefix loads and compares only its
    /// bytes; other prefixes load the address and mask it with `bitwise`. `/0` matches every
    /// address of the family (only the family check remains).
    pub fn addr_cidr(mut self, dir: Dir, net: IpNet) -> RuleBuilder {
        let net = net.trunc();
        let (v6, full, bytes): (bool, u32, Vec<u8>) = match net {
            IpNet::V4(n) => (false, 4, n.network().octets().to_vec()),
            IpNet::V6(n) => (true, 16, n.network().octets().to_vec()),
        };
        let prefix = u32::from(net.prefix_len());
        if prefix == 0 {
            return self.need_nfproto(if v6 { nfproto::IPV6 } else { nfproto::IPV4 });
        }
        if prefix % 8 == 0 {
            let n = prefix / 8;
            self = self.load_addr(v6, dir, n, Reg::R1);
            self.exprs
                .push(Expr::cmp(CmpOp::Eq, Reg::R1, bytes[..n as usize].to_vec()));
        } else {
            self = self.load_addr(v6, dir, full, Reg::R1);
            let mask: Vec<u8> = match net {
                IpNet::V4(n) => n.netmask().octets().to_vec(),
                IpNet::V6(n) => n.netmask().octets().to_vec(),
            };
            self.exprs.push(Expr::Bitwise {
                sreg: Reg::R1,
                dreg: Reg::R1,
                len: full,
                mask,
                xor: vec![0; full as usize],
                explicit_op: false,
            });
            self.exprs.push(Expr::cmp(CmpOp::Eq, Reg::R1, bytes));
        }
        self
    }

    /// `ip daddr 192.168.1.1` (a single address).
    pub fn addr(self, dir: Dir, a: IpAddr) -> RuleBuilder {
        self.addr_cidr(dir, IpNet::from(a))
    }

    /// `meta l4proto <p>`.
    pub fn l4proto(mut self, p: u8) -> RuleBuilder {
        self.exprs.push(Expr::meta(MetaKey::L4PROTO, Reg::R1));
        self.exprs.push(Expr::cmp(CmpOp::Eq, Reg::R1, vec![p]));
        self
    }

    /// `th dport <port>` (any transport header with ports; put `meta l4proto` before it).
    pub fn th_dport(mut self, port: u16) -> RuleBuilder {
        self.exprs.push(Expr::Payload {
            base: PayloadBase::Transport,
            offset: 2,
            len: 2,
            dreg: Reg::R1,
        });
        self.exprs
            .push(Expr::cmp(CmpOp::Eq, Reg::R1, port.to_be_bytes().to_vec()));
        self
    }

    /// `iifname "<name>"`.
    pub fn iifname(mut self, name: &str) -> RuleBuilder {
        self.exprs.push(Expr::meta(MetaKey::IIFNAME, Reg::R1));
        self.exprs
            .push(Expr::cmp(CmpOp::Eq, Reg::R1, ifname_bytes(name)));
        self
    }

    /// `oifname "<name>"`.
    pub fn oifname(mut self, name: &str) -> RuleBuilder {
        self.exprs.push(Expr::meta(MetaKey::OIFNAME, Reg::R1));
        self.exprs
            .push(Expr::cmp(CmpOp::Eq, Reg::R1, ifname_bytes(name)));
        self
    }

    /// `iifname "<prefix>*"`: compares only the prefix's bytes.
    pub fn iifname_prefix(mut self, prefix: &str) -> RuleBuilder {
        self.exprs.push(Expr::meta(MetaKey::IIFNAME, Reg::R1));
        self.exprs
            .push(Expr::cmp(CmpOp::Eq, Reg::R1, prefix.as_bytes().to_vec()));
        self
    }

    /// `meta iif <ifindex>`.
    pub fn iif(mut self, ifindex: u32) -> RuleBuilder {
        self.exprs.push(Expr::meta(MetaKey::IIF, Reg::R1));
        self.exprs.push(Expr::cmp(
            CmpOp::Eq,
            Reg::R1,
            ifindex.to_ne_bytes().to_vec(),
        ));
        self
    }

    /// `meta mark & <mask> == <value>`.
    pub fn mark_masked_eq(mut self, mask: u32, value: u32) -> RuleBuilder {
        self.exprs.push(Expr::meta(MetaKey::MARK, Reg::R1));
        self.exprs.push(Expr::Bitwise {
            sreg: Reg::R1,
            dreg: Reg::R1,
            len: 4,
            mask: mask.to_ne_bytes().to_vec(),
            xor: vec![0; 4],
            explicit_op: true,
        });
        self.exprs
            .push(Expr::cmp(CmpOp::Eq, Reg::R1, value.to_ne_bytes().to_vec()));
        self
    }

    /// `meta mark set (meta mark & <mask>) ^ <xor>`: how nft writes `|` and `&` on the mark.
    fn mark_bitwise(mut self, mask: u32, xor: u32) -> RuleBuilder {
        self.exprs.push(Expr::meta(MetaKey::MARK, Reg::R1));
        self.exprs.push(Expr::Bitwise {
            sreg: Reg::R1,
            dreg: Reg::R1,
            len: 4,
            mask: mask.to_ne_bytes().to_vec(),
            xor: xor.to_ne_bytes().to_vec(),
            explicit_op: true,
        });
        self.exprs.push(Expr::MetaSet {
            key: MetaKey::MARK,
            sreg: Reg::R1,
        });
        self
    }

    /// `meta mark set meta mark | <bits>`.
    pub fn set_mark_or(self, bits: u32) -> RuleBuilder {
        self.mark_bitwise(!bits, bits)
    }

    /// `meta mark set meta mark & ~<bits>` (clears them).
    pub fn clear_mark(self, bits: u32) -> RuleBuilder {
        self.mark_bitwise(!bits, 0)
    }

    /// `meta mark set <value>`.
    pub fn set_mark(mut self, value: u32) -> RuleBuilder {
        self.exprs
            .push(Expr::immediate(Reg::R1, value.to_ne_bytes().to_vec()));
        self.exprs.push(Expr::MetaSet {
            key: MetaKey::MARK,
            sreg: Reg::R1,
        });
        self
    }

    /// `ct state <bits>` (any of them), e.g. `established,related`.
    pub fn ct_state_any(self, bits: u32) -> RuleBuilder {
        self.ct_bits(CtKey::STATE, bits)
    }

    /// `ct status <bits>` (any of them), e.g. `dnat`.
    pub fn ct_status_any(self, bits: u32) -> RuleBuilder {
        self.ct_bits(CtKey::STATUS, bits)
    }

    fn ct_bits(mut self, key: CtKey, bits: u32) -> RuleBuilder {
        self.exprs.push(Expr::Ct { key, dreg: Reg::R1 });
        self.exprs.push(Expr::Bitwise {
            sreg: Reg::R1,
            dreg: Reg::R1,
            len: 4,
            mask: bits.to_ne_bytes().to_vec(),
            xor: vec![0; 4],
            explicit_op: false,
        });
        self.exprs.push(Expr::cmp(CmpOp::Neq, Reg::R1, vec![0; 4]));
        self
    }

    /// `fib saddr . iif oif missing`: the source address is not routed back through the
    /// interface the packet came in on (strict reverse-path check, IPv4 and IPv6).
    pub fn fib_saddr_iif_oif_missing(mut self) -> RuleBuilder {
        self.exprs.push(Expr::Fib {
            flags: FIB_F_SADDR | FIB_F_IIF | FIB_F_PRESENT,
            result: FibResult::Oif,
            dreg: Reg::R1,
        });
        self.exprs.push(Expr::cmp(CmpOp::Eq, Reg::R1, vec![0; 4]));
        self
    }

    /// `fib daddr type <rtn>`; `fib daddr type local` is [`RTN_LOCAL`].
    pub fn fib_daddr_type(mut self, rtn: u32) -> RuleBuilder {
        self.exprs.push(Expr::Fib {
            flags: FIB_F_DADDR,
            result: FibResult::AddrType,
            dreg: Reg::R1,
        });
        self.exprs
            .push(Expr::cmp(CmpOp::Eq, Reg::R1, rtn.to_ne_bytes().to_vec()));
        self
    }

    /// Loads `fields` into consecutive 4-byte register slots, as nft allocates them for a
    /// concatenation; with `interval`, a `byteorder` follows `meta l4proto` as nft emits it
    /// for lookups in concatenated interval sets.
    fn load_concat(mut self, fields: &[KeyField], interval: bool) -> RuleBuilder {
        let mut slot = 0u32;
        for f in fields {
            let dreg = Reg::slot(slot);
            match *f {
                KeyField::Ip4(dir) => self = self.load_addr(false, dir, 4, dreg),
                KeyField::Ip6(dir) => self = self.load_addr(true, dir, 16, dreg),
                KeyField::L4Proto => {
                    self.exprs.push(Expr::meta(MetaKey::L4PROTO, dreg));
                    if interval && fields.len() > 1 {
                        self.exprs.push(Expr::Byteorder {
                            sreg: dreg,
                            dreg,
                            hton: true,
                            len: 1,
                            size: 2,
                        });
                    }
                }
                KeyField::ThDport => self.exprs.push(Expr::Payload {
                    base: PayloadBase::Transport,
                    offset: 2,
                    len: 2,
                    dreg,
                }),
            }
            slot += f.len().div_ceil(4);
        }
        self
    }

    /// `<f1> . <f2> . ... vmap @set`: loads each field into consecutive 4-byte register
    /// slots (as nft allocates them) and looks the concatenation up in a verdict map.
    pub fn concat_vmap(mut self, fields: &[KeyField], set: &str) -> RuleBuilder {
        self = self.load_concat(fields, false);
        self.exprs.push(Expr::Lookup {
            set: set.to_string(),
            sreg: Reg::R1,
            dreg: Some(Reg::VERDICT),
            inverted: false,
        });
        self
    }

    /// `<f1> . <f2> . ... @set`: a set match on a concatenation (`interval`: the set has
    /// `flags interval`).
    pub fn concat_lookup(mut self, fields: &[KeyField], set: &str, interval: bool) -> RuleBuilder {
        self = self.load_concat(fields, interval);
        self.exprs.push(Expr::Lookup {
            set: set.to_string(),
            sreg: Reg::R1,
            dreg: None,
            inverted: false,
        });
        self
    }

    /// `<transport header byte at offset> <lo>-<hi>` (e.g. `icmpv6 type 133-137`, after
    /// `meta l4proto ipv6-icmp`).
    pub fn transport_byte_range(mut self, offset: u32, lo: u8, hi: u8) -> RuleBuilder {
        self.exprs.push(Expr::Payload {
            base: PayloadBase::Transport,
            offset,
            len: 1,
            dreg: Reg::R1,
        });
        self.exprs.push(Expr::cmp(CmpOp::Gte, Reg::R1, vec![lo]));
        self.exprs.push(Expr::cmp(CmpOp::Lte, Reg::R1, vec![hi]));
        self
    }

    /// `limit rate <rate>/second burst <burst> packets`.
    pub fn limit_per_second(mut self, rate: u64, burst: u32) -> RuleBuilder {
        self.exprs.push(Expr::Limit {
            rate,
            unit_secs: 1,
            burst,
            bytes: false,
            over: false,
        });
        self
    }

    /// `log [prefix "<prefix>"] group <group>`: the packet to nfnetlink_log.
    pub fn log_group(mut self, group: u16, prefix: Option<&str>) -> RuleBuilder {
        self.exprs.push(Expr::Log {
            prefix: prefix.map(str::to_string),
            group,
        });
        self
    }

    /// `counter name "<name>"`: counts in a named counter object.
    pub fn counter_named(mut self, name: &str) -> RuleBuilder {
        self.exprs.push(Expr::CounterRef {
            name: name.to_string(),
        });
        self
    }

    fn nat(mut self, kind: NatKind, addr: IpAddr, port: Option<u16>) -> RuleBuilder {
        let (family, bytes) = match addr {
            IpAddr::V4(a) => (nfproto::IPV4, a.octets().to_vec()),
            IpAddr::V6(a) => (nfproto::IPV6, a.octets().to_vec()),
        };
        self.exprs.push(Expr::immediate(Reg::R1, bytes));
        if let Some(p) = port {
            self.exprs
                .push(Expr::immediate(Reg::R2, p.to_be_bytes().to_vec()));
        }
        self.exprs.push(Expr::Nat {
            kind,
            family,
            addr: Some(Reg::R1),
            proto: port.map(|_| Reg::R2),
            flags: if port.is_some() {
                NF_NAT_RANGE_PROTO_SPECIFIED
            } else {
                0
            },
        });
        self
    }

    /// `dnat ip to <addr>[:<port>]` / `dnat ip6 to [<addr>]:<port>`.
    pub fn dnat(self, addr: IpAddr, port: Option<u16>) -> RuleBuilder {
        self.nat(NatKind::Dnat, addr, port)
    }

    /// `snat ip to <addr>[:<port>]`.
    pub fn snat(self, addr: IpAddr, port: Option<u16>) -> RuleBuilder {
        self.nat(NatKind::Snat, addr, port)
    }

    /// `masquerade`.
    pub fn masquerade(mut self) -> RuleBuilder {
        self.exprs.push(Expr::Masq { flags: 0 });
        self
    }

    /// `masquerade fully-random`.
    pub fn masquerade_fully_random(mut self) -> RuleBuilder {
        self.exprs.push(Expr::Masq {
            flags: NF_NAT_RANGE_PROTO_RANDOM_FULLY,
        });
        self
    }

    /// `numgen random mod <n> vmap @<map>`: a map keyed by integers `0..n` chooses the
    /// verdict (a random choice among `n` chains).
    pub fn numgen_vmap(mut self, n: u32, map: &str) -> RuleBuilder {
        self.exprs.push(Expr::Numgen {
            dreg: Reg::R1,
            modulus: n,
            random: true,
            offset: 0,
        });
        self.exprs.push(Expr::Lookup {
            set: map.to_string(),
            sreg: Reg::R1,
            dreg: Some(Reg::VERDICT),
            inverted: false,
        });
        self
    }

    /// `update @<set> { ip saddr }` / `{ ip6 saddr }`: adds the packet's source address to a
    /// dynamic set, or refreshes its timeout.
    pub fn update_saddr(mut self, v6: bool, set: &str) -> RuleBuilder {
        self = self.load_addr(v6, Dir::Src, if v6 { 16 } else { 4 }, Reg::R1);
        self.exprs.push(Expr::Dynset {
            set: set.to_string(),
            op: 1,
            sreg: Reg::R1,
            timeout_ms: None,
        });
        self
    }

    /// `reject` (in an `inet` table: `reject with icmpx port-unreachable`, which a UDP or
    /// SCTP client sees as "connection refused"; the kernel rate-limits ICMP errors, and a
    /// TCP client that already holds its socket's lock when the error comes back sees it
    /// only after its next SYN: prefer [`RuleBuilder::reject_tcp_reset`] for TCP).
    pub fn reject(mut self) -> RuleBuilder {
        self.exprs.push(Expr::Reject { kind: 2, code: 1 });
        self
    }

    /// `reject with tcp reset` (TCP packets only: put `meta l4proto tcp` before it): the
    /// client's `connect` fails with "connection refused" at once, whatever the family.
    pub fn reject_tcp_reset(mut self) -> RuleBuilder {
        self.exprs.push(Expr::Reject { kind: 1, code: 0 });
        self
    }

    /// `counter`.
    pub fn counter(mut self) -> RuleBuilder {
        self.exprs.push(Expr::Counter);
        self
    }

    /// A verdict statement (`accept`, `drop`, `return`, `jump c`, `goto c`).
    pub fn verdict(mut self, v: Verdict) -> RuleBuilder {
        self.exprs.push(Expr::Immediate {
            dreg: Reg::VERDICT,
            data: Data::Verdict(v),
        });
        self
    }

    /// The rule, in `chain`.
    pub fn build(self, chain: &str) -> Rule {
        Rule::new(chain, self.exprs)
    }
}
