//! Conntrack entries over ctnetlink (`NFNL_SUBSYS_CTNETLINK`), in the calling thread's
//! network namespace: [`dump`] them with their tuples, [`delete`] some.
//!
//! portmap deletes the UDP entries of its host ports on ADD and DEL: a UDP "connection"
//! created before the DNAT rule existed (or while it pointed at a previous pod) would
//! otherwise keep its old translation until it times out, blackholing the port (rule M6 of
//! [docs/conformance.md](../../../docs/conformance.md); the reference portmap deletes them on
//! ADD only). ferro-agent deletes the entries of connections a NetworkPolicy change forbids,
//! so that they stop instead of living on as established.

use std::io;
use std::net::IpAddr;

use ferro_spec::CniError;
use nix::errno::Errno;

use ferro_nftables::sock::{NlSocket, Request, SockError};
use ferro_nftables::uapi::{
    NFNL_SUBSYS_CTNETLINK, NLA_F_NESTED, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST,
};
use ferro_nftables::wire::{Attr, AttrWriter, Attrs};

// linux/netfilter/nfnetlink_conntrack.h
const IPCTNL_MSG_CT_GET: u16 = 1;
const IPCTNL_MSG_CT_DELETE: u16 = 2;
const CTA_TUPLE_ORIG: u16 = 1;
const CTA_TUPLE_REPLY: u16 = 2;
const CTA_ZONE: u16 = 18;
const CTA_TUPLE_IP: u16 = 1;
const CTA_TUPLE_PROTO: u16 = 2;
const CTA_IP_V4_SRC: u16 = 1;
const CTA_IP_V4_DST: u16 = 2;
const CTA_IP_V6_SRC: u16 = 3;
const CTA_IP_V6_DST: u16 = 4;
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_SRC_PORT: u16 = 2;
const CTA_PROTO_DST_PORT: u16 = 3;
const IPPROTO_UDP: u8 = 17;
/// Dumps interrupted by concurrent table changes are retried this often.
const DUMP_ATTEMPTS: usize = 5;

/// A failed ctnetlink request.
#[derive(Debug, thiserror::Error)]
pub enum ConntrackError {
    /// A socket call failed.
    #[error("conntrack: {op}: {source}")]
    Io {
        /// What was being done.
        op: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The kernel refused.
    #[error("conntrack: {op}: {}", errno.desc())]
    Kernel {
        /// What was being done.
        op: String,
        /// What the kernel answered.
        errno: Errno,
    },
    /// A reply that could not be understood.
    #[error("conntrack: {op}: {msg}")]
    Protocol {
        /// What was being done.
        op: String,
        /// What was wrong.
        msg: String,
    },
}

impl ConntrackError {
    fn from_sock(op: &str, e: SockError) -> ConntrackError {
        let op = op.to_string();
        match e {
            SockError::Io(source) => ConntrackError::Io { op, source },
            SockError::Kernel(errno, _) => ConntrackError::Kernel {
                op,
                errno: Errno::from_raw(errno),
            },
            SockError::Protocol(msg) => ConntrackError::Protocol { op, msg },
        }
    }
}

impl From<ConntrackError> for CniError {
    /// Code 100, naming the operation.
    fn from(e: ConntrackError) -> Self {
        CniError::internal(e.to_string())
    }
}

/// One side of a connection: addresses, protocol and ports (0 for protocols without).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tuple {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// IP protocol number.
    pub proto: u8,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
}

/// A conntrack entry: its tuples as the kernel reports them, and what identifies it for
/// deletion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The original direction (as the first packet had it).
    pub orig: Tuple,
    /// The reply direction: after NAT, `reply.src` is where the connection really goes
    /// (the pod behind a service address) and `reply.sport` its port.
    pub reply: Tuple,
    family: u8,
    raw_orig: Vec<u8>,
    zone: Option<Vec<u8>>,
}

fn ip_of(a: Option<Attr<'_>>) -> Option<IpAddr> {
    let d = a?.data;
    match d.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(d).ok()?)),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(d).ok()?)),
        _ => None,
    }
}

/// Reads a `CTA_TUPLE_*` payload.
fn tuple(t: Attrs<'_>) -> Option<Tuple> {
    let ip = t.attr(CTA_TUPLE_IP)?.nested();
    let src = ip_of(ip.attr(CTA_IP_V4_SRC)).or_else(|| ip_of(ip.attr(CTA_IP_V6_SRC)))?;
    let dst = ip_of(ip.attr(CTA_IP_V4_DST)).or_else(|| ip_of(ip.attr(CTA_IP_V6_DST)))?;
    let proto = t.attr(CTA_TUPLE_PROTO)?.nested();
    Some(Tuple {
        src,
        dst,
        proto: proto.attr(CTA_PROTO_NUM)?.u8()?,
        sport: proto
            .attr(CTA_PROTO_SRC_PORT)
            .and_then(|a| a.be16())
            .unwrap_or(0),
        dport: proto
            .attr(CTA_PROTO_DST_PORT)
            .and_then(|a| a.be16())
            .unwrap_or(0),
    })
}

fn open(op: &str) -> Result<NlSocket, ConntrackError> {
    NlSocket::open().map_err(|source| ConntrackError::Io {
        op: op.into(),
        source,
    })
}

/// Every conntrack entry of the calling thread's network namespace, IPv4 and IPv6 (like
/// `conntrack -L`). A dump interrupted by concurrent changes is taken again, a few times;
/// then what was seen is returned.
pub fn dump() -> Result<Vec<Entry>, ConntrackError> {
    let op = "dump conntrack table";
    let mut sock = open(op)?;
    let mut entries = Vec::new();
    for _ in 0..DUMP_ATTEMPTS {
        let mut replies = sock
            .transact(
                NFNL_SUBSYS_CTNETLINK,
                &[Request {
                    ty: IPCTNL_MSG_CT_GET,
                    flags: NLM_F_REQUEST | NLM_F_DUMP,
                    family: 0, // AF_UNSPEC: both families
                    attrs: Vec::new(),
                }],
            )
            .map_err(|e| ConntrackError::from_sock(op, e))?;
        let reply = replies.pop().unwrap_or_default();
        if let Some((errno, extack)) = reply.error {
            return Err(ConntrackError::from_sock(
                op,
                SockError::Kernel(errno, extack),
            ));
        }
        entries.clear();
        for m in &reply.msgs {
            let msg = m.as_msg();
            let attrs = msg.nf_attrs();
            let (Some(o), Some(r)) = (attrs.attr(CTA_TUPLE_ORIG), attrs.attr(CTA_TUPLE_REPLY))
            else {
                continue;
            };
            let (Some(orig), Some(reply)) = (tuple(o.nested()), tuple(r.nested())) else {
                continue;
            };
            entries.push(Entry {
                orig,
                reply,
                family: msg.nf_family(),
                raw_orig: o.data.to_vec(),
                zone: attrs.attr(CTA_ZONE).map(|z| z.data.to_vec()),
            });
        }
        if !reply.interrupted {
            return Ok(entries);
        }
    }
    log::debug!("conntrack dump kept being interrupted; using what was seen");
    Ok(entries)
}

/// Deletes `entries` (like `conntrack -D` for each); returns how many were deleted.
/// Entries that vanished meanwhile are fine.
pub fn delete(entries: &[Entry]) -> Result<usize, ConntrackError> {
    if entries.is_empty() {
        return Ok(0);
    }
    let op = "delete conntrack entries";
    let mut sock = open(op)?;
    let reqs: Vec<Request> = entries
        .iter()
        .map(|v| {
            let mut w = AttrWriter::new();
            w.put(CTA_TUPLE_ORIG | NLA_F_NESTED, &v.raw_orig);
            if let Some(z) = &v.zone {
                w.put(CTA_ZONE, z);
            }
            Request {
                ty: IPCTNL_MSG_CT_DELETE,
                flags: NLM_F_REQUEST | NLM_F_ACK,
                family: v.family,
                attrs: w.into_bytes(),
            }
        })
        .collect();
    let replies = sock
        .transact(NFNL_SUBSYS_CTNETLINK, &reqs)
        .map_err(|e| ConntrackError::from_sock(op, e))?;
    let mut deleted = 0;
    for r in replies {
        match r.error {
            None => deleted += 1,
            Some((errno, _)) if errno == Errno::ENOENT as i32 => {}
            Some((errno, extack)) => {
                return Err(ConntrackError::from_sock(
                    op,
                    SockError::Kernel(errno, extack),
                ))
            }
        }
    }
    Ok(deleted)
}

/// Deletes every conntrack entry whose original tuple is UDP with a destination port in
/// `ports` (IPv4 and IPv6); returns how many were deleted. Entries that vanish meanwhile
/// are fine. Equivalent to `conntrack -D -p udp --dport <port>` for each port.
pub fn delete_udp_dport(ports: &[u16]) -> Result<usize, ConntrackError> {
    if ports.is_empty() {
        return Ok(0);
    }
    let victims: Vec<Entry> = dump()?
        .into_iter()
        .filter(|e| e.orig.proto == IPPROTO_UDP && ports.contains(&e.orig.dport))
        .collect();
    let deleted = delete(&victims)?;
    log::debug!("conntrack: deleted {deleted} UDP entries for ports {ports:?}");
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tuples_are_read_as_ctnetlink_dumps_them() {
        // A CTA_TUPLE_* payload: CTA_TUPLE_IP { V4_SRC, V4_DST }, CTA_TUPLE_PROTO { NUM 17,
        // SRC_PORT 1000, DST_PORT 5353 }.
        let mut w = AttrWriter::new();
        w.nest(CTA_TUPLE_IP, |w| {
            w.put(CTA_IP_V4_SRC, &[10, 0, 0, 1]);
            w.put(CTA_IP_V4_DST, &[10, 0, 0, 2]);
        });
        w.nest(CTA_TUPLE_PROTO, |w| {
            w.put_u8(CTA_PROTO_NUM, 17);
            w.put_be16(CTA_PROTO_SRC_PORT, 1000);
            w.put_be16(CTA_PROTO_DST_PORT, 5353);
        });
        let b = w.into_bytes();
        assert_eq!(
            tuple(Attrs::new(&b)),
            Some(Tuple {
                src: "10.0.0.1".parse().unwrap(),
                dst: "10.0.0.2".parse().unwrap(),
                proto: 17,
                sport: 1000,
                dport: 5353
            })
        );

        // IPv6 and ICMPv6 (no ports).
        let a6: IpAddr = "fd00::1".parse().unwrap();
        let b6: IpAddr = "fd00::2".parse().unwrap();
        let octets = |a: IpAddr| match a {
            IpAddr::V6(a) => a.octets(),
            IpAddr::V4(_) => unreachable!(),
        };
        let mut w = AttrWriter::new();
        w.nest(CTA_TUPLE_IP, |w| {
            w.put(CTA_IP_V6_SRC, &octets(a6));
            w.put(CTA_IP_V6_DST, &octets(b6));
        });
        w.nest(CTA_TUPLE_PROTO, |w| w.put_u8(CTA_PROTO_NUM, 58));
        let b = w.into_bytes();
        let t = tuple(Attrs::new(&b)).unwrap();
        assert_eq!(
            (t.src, t.dst, t.proto, t.sport, t.dport),
            (a6, b6, 58, 0, 0)
        );

        // No addresses: not a tuple.
        let mut w = AttrWriter::new();
        w.nest(CTA_TUPLE_PROTO, |w| w.put_u8(CTA_PROTO_NUM, 6));
        assert_eq!(tuple(Attrs::new(&w.into_bytes())), None);
    }

    #[test]
    fn errors_name_the_operation() {
        let e = ConntrackError::from_sock("delete conntrack entries", SockError::Kernel(1, None));
        let c: CniError = e.into();
        assert_eq!(c.code.number(), 100);
        assert_eq!(
            c.msg,
            "conntrack: delete conntrack entries: Operation not permitted"
        );
    }
}
