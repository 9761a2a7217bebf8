//! Expressions printed as `nft --debug=netlink` prints them (libnftnl's notation:
//! `[ meta load nfproto => reg 1 ]`), so what the codec sends or decodes can be compared
//! with nft's own output line for line.

use std::fmt;

use crate::expr::{CmpOp, Data, Expr, FibResult, MetaKey, NatKind, PayloadBase, Reg, Verdict};
use crate::uapi::{
    nfproto, FIB_F_DADDR, FIB_F_IIF, FIB_F_MARK, FIB_F_OIF, FIB_F_PRESENT, FIB_F_SADDR,
};

impl MetaKey {
    /// libnftnl's name of the key, for the keys this crate names.
    pub fn name(self) -> Option<&'static str> {
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

impl CmpOp {
    /// libnftnl's name of the operator.
    pub fn name(self) -> &'static str {
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

impl fmt::Display for Reg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "reg {}", self.0)
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
            Expr::Numgen {
                dreg,
                modulus,
                random,
                offset,
            } => write!(
                f,
                "numgen {dreg} = {} mod {modulus} offset {offset}",
                if *random { "random" } else { "inc" }
            )?,
            Expr::Reject { kind, code } => write!(f, "reject type {kind} code {code}")?,
            Expr::Dynset {
                set,
                op,
                sreg,
                timeout_ms,
            } => {
                let o = if *op == 1 { "update" } else { "add" };
                write!(f, "dynset {o} reg_key {sreg} set {set}")?;
                if let Some(t) = timeout_ms {
                    write!(f, " timeout {t}ms")?;
                }
            }
            Expr::Byteorder {
                sreg,
                dreg,
                hton,
                len,
                size,
            } => {
                let op = if *hton { "hton" } else { "ntoh" };
                write!(f, "byteorder {dreg} = {op}({sreg}, {size}, {len})")?;
            }
            Expr::Limit {
                rate,
                unit_secs,
                burst,
                bytes,
                over,
            } => {
                let unit = match unit_secs {
                    1 => "second".to_string(),
                    60 => "minute".to_string(),
                    3600 => "hour".to_string(),
                    86400 => "day".to_string(),
                    n => format!("{n}s"),
                };
                let ty = if *bytes { "bytes" } else { "packets" };
                write!(
                    f,
                    "limit rate {rate}/{unit} burst {burst} type {ty} flags 0x{:x}",
                    u32::from(*over)
                )?;
            }
            Expr::Log { prefix, group } => {
                f.write_str("log")?;
                if let Some(p) = prefix {
                    write!(f, " prefix {p}")?;
                }
                write!(f, " group {group} snaplen 0 qthreshold 0")?;
            }
            Expr::CounterRef { name } => write!(f, "objref type 1 name {name}")?,
            Expr::Match { name, rev, .. } => write!(f, "match name {name} rev {rev}")?,
            Expr::Target { name, rev, .. } => write!(f, "target name {name} rev {rev}")?,
            Expr::Unknown { name } => write!(f, "{name} (not decoded)")?,
        }
        f.write_str(" ]")
    }
}
