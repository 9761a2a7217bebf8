//! Conntrack entry deletion over ctnetlink (`NFNL_SUBSYS_CTNETLINK`), in the calling
//! thread's network namespace.
//!
//! portmap deletes the UDP entries of its host ports on ADD and DEL: a UDP "connection"
//! created before the DNAT rule existed (or while it pointed at a previous pod) would
//! otherwise keep its old translation until it times out, blackholing the port (rule M6 of
//! [docs/conformance.md](../../../docs/conformance.md); the reference portmap deletes them on
//! ADD only).

use std::io;

use ferro_spec::CniError;
use nix::errno::Errno;

use ferro_nftables::sock::{NlSocket, Request, SockError};
use ferro_nftables::uapi::{
    NFNL_SUBSYS_CTNETLINK, NLA_F_NESTED, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST,
};
use ferro_nftables::wire::{AttrWriter, Attrs};

// linux/netfilter/nfnetlink_conntrack.h
const IPCTNL_MSG_CT_GET: u16 = 1;
const IPCTNL_MSG_CT_DELETE: u16 = 2;
const CTA_TUPLE_ORIG: u16 = 1;
const CTA_ZONE: u16 = 18;
const CTA_TUPLE_PROTO: u16 = 2;
const CTA_PROTO_NUM: u16 = 1;
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

/// One entry to delete: its family, original tuple (raw attribute payload) and zone.
struct Victim {
    family: u8,
    tuple: Vec<u8>,
    zone: Option<Vec<u8>>,
}

fn udp_dport(tuple: Attrs<'_>) -> Option<u16> {
    let proto = tuple.attr(CTA_TUPLE_PROTO)?.nested();
    if proto.attr(CTA_PROTO_NUM)?.u8()? != IPPROTO_UDP {
        return None;
    }
    proto.attr(CTA_PROTO_DST_PORT)?.be16()
}

/// Deletes every conntrack entry whose original tuple is UDP with a destination port in
/// `ports` (IPv4 and IPv6); returns how many were deleted. Entries that vanish meanwhile
/// are fine. Equivalent to `conntrack -D -p udp --dport <port>` for each port.
pub fn delete_udp_dport(ports: &[u16]) -> Result<usize, ConntrackError> {
    if ports.is_empty() {
        return Ok(0);
    }
    let mut sock = NlSocket::open().map_err(|source| ConntrackError::Io {
        op: "open netlink socket".into(),
        source,
    })?;
    let op = "dump conntrack table";
    let mut victims = Vec::new();
    let mut complete = false;
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
        victims.clear();
        for m in &reply.msgs {
            let msg = m.as_msg();
            let attrs = msg.nf_attrs();
            let Some(orig) = attrs.attr(CTA_TUPLE_ORIG) else {
                continue;
            };
            if udp_dport(orig.nested()).is_some_and(|p| ports.contains(&p)) {
                victims.push(Victim {
                    family: msg.nf_family(),
                    tuple: orig.data.to_vec(),
                    zone: attrs.attr(CTA_ZONE).map(|z| z.data.to_vec()),
                });
            }
        }
        if !reply.interrupted {
            complete = true;
            break;
        }
    }
    if !complete {
        log::debug!("conntrack dump kept being interrupted; deleting what was seen");
    }
    if victims.is_empty() {
        return Ok(0);
    }
    let reqs: Vec<Request> = victims
        .iter()
        .map(|v| {
            let mut w = AttrWriter::new();
            w.put(CTA_TUPLE_ORIG | NLA_F_NESTED, &v.tuple);
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
    let op = "delete conntrack entries";
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
    log::debug!("conntrack: deleted {deleted} UDP entries for ports {ports:?}");
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udp_destination_port_is_read_from_the_original_tuple() {
        // CTA_TUPLE_ORIG payload: CTA_TUPLE_IP {..} (skipped), CTA_TUPLE_PROTO { NUM 17,
        // SRC_PORT 1000, DST_PORT 5353 } as ctnetlink dumps it.
        let mut w = AttrWriter::new();
        w.nest(1, |w| {
            w.put(1, &[10, 0, 0, 1]);
            w.put(2, &[10, 0, 0, 2]);
        });
        w.nest(CTA_TUPLE_PROTO, |w| {
            w.put_u8(CTA_PROTO_NUM, 17);
            w.put_be16(2, 1000);
            w.put_be16(CTA_PROTO_DST_PORT, 5353);
        });
        let b = w.into_bytes();
        assert_eq!(udp_dport(Attrs::new(&b)), Some(5353));

        let mut w = AttrWriter::new();
        w.nest(CTA_TUPLE_PROTO, |w| {
            w.put_u8(CTA_PROTO_NUM, 6);
            w.put_be16(CTA_PROTO_DST_PORT, 5353);
        });
        let b = w.into_bytes();
        assert_eq!(udp_dport(Attrs::new(&b)), None, "tcp is not udp");
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
