//! nfnetlink_log: packets a rule sent to an nflog group (`log group N`), read by a process.
//!
//! [`NflogSocket::bind`] subscribes this socket to one group (copying the first bytes of each
//! packet, enough for its IP and transport headers); [`NflogSocket::next`] returns what
//! arrived. The kernel queues packets for the socket and drops them when its buffer is
//! full (reported as [`NflogBatch::lost`], never an error): a flood costs the reader
//! nothing but lost lines.

use std::net::IpAddr;
use std::time::Duration;

use crate::sock::{NlSocket, Request, SockError};
use crate::uapi::{NLM_F_ACK, NLM_F_REQUEST};
use crate::wire::{self, AttrWriter};
use crate::NftError;

/// `NFNL_SUBSYS_ULOG`.
const NFNL_SUBSYS_ULOG: u16 = 4;
/// `NFULNL_MSG_PACKET`.
const NFULNL_MSG_PACKET: u16 = 0;
/// `NFULNL_MSG_CONFIG`.
const NFULNL_MSG_CONFIG: u16 = 1;
/// `NFULA_CFG_CMD`: `struct nfulnl_msg_config_cmd { u8 command; }`.
const NFULA_CFG_CMD: u16 = 1;
/// `NFULA_CFG_MODE`: `struct nfulnl_msg_config_mode { __be32 copy_range; u8 copy_mode; u8 pad; }`.
const NFULA_CFG_MODE: u16 = 2;
/// `NFULA_CFG_TIMEOUT` (hundredths of a second before a partial batch is sent).
const NFULA_CFG_TIMEOUT: u16 = 4;
/// `NFULA_CFG_QTHRESH` (packets batched at most).
const NFULA_CFG_QTHRESH: u16 = 5;
/// `NFULNL_CFG_CMD_BIND`.
const CMD_BIND: u8 = 1;
/// `NFULNL_CFG_CMD_UNBIND`.
const CMD_UNBIND: u8 = 2;
/// `NFULNL_COPY_PACKET`.
const COPY_PACKET: u8 = 2;
/// `NFULA_PAYLOAD`.
const NFULA_PAYLOAD: u16 = 9;
/// `NFULA_PREFIX`.
const NFULA_PREFIX: u16 = 10;
/// Bytes of each packet copied: an IPv6 header and a transport header's ports.
const COPY_RANGE: u32 = 128;
/// `AF_INET`, `AF_INET6`.
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

/// One logged packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NflogPacket {
    /// The rule's prefix.
    pub prefix: String,
    /// `AF_INET` or `AF_INET6`.
    pub family: u8,
    /// The first bytes of the packet, from its network header.
    pub payload: Vec<u8>,
}

impl NflogPacket {
    /// The packet's addresses, protocol and ports (0 without ports), read from its headers.
    pub fn summary(&self) -> Option<PacketSummary> {
        summarize(self.family, &self.payload)
    }
}

/// What a logged packet was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketSummary {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// IP protocol number (the last IPv6 header chain's next header is not followed).
    pub proto: u8,
    /// Source port (TCP, UDP, SCTP), else 0.
    pub sport: u16,
    /// Destination port, else 0.
    pub dport: u16,
}

/// Reads the IPv4 or IPv6 header at the start of `p`, and the ports after it.
pub fn summarize(family: u8, p: &[u8]) -> Option<PacketSummary> {
    let (src, dst, proto, l4) = match family {
        AF_INET => {
            let ihl = usize::from(*p.first()? & 0x0f) * 4;
            let src = IpAddr::from(<[u8; 4]>::try_from(p.get(12..16)?).ok()?);
            let dst = IpAddr::from(<[u8; 4]>::try_from(p.get(16..20)?).ok()?);
            (src, dst, *p.get(9)?, p.get(ihl..))
        }
        AF_INET6 => {
            let src = IpAddr::from(<[u8; 16]>::try_from(p.get(8..24)?).ok()?);
            let dst = IpAddr::from(<[u8; 16]>::try_from(p.get(24..40)?).ok()?);
            (src, dst, *p.get(6)?, p.get(40..))
        }
        _ => return None,
    };
    let ports = matches!(proto, 6 | 17 | 132)
        .then(|| {
            let l4 = l4?;
            Some((
                u16::from_be_bytes([*l4.first()?, *l4.get(1)?]),
                u16::from_be_bytes([*l4.get(2)?, *l4.get(3)?]),
            ))
        })
        .flatten();
    let (sport, dport) = ports.unwrap_or((0, 0));
    Some(PacketSummary {
        src,
        dst,
        proto,
        sport,
        dport,
    })
}

/// What one read returned.
#[derive(Debug, Default)]
pub struct NflogBatch {
    /// The packets.
    pub packets: Vec<NflogPacket>,
    /// The kernel dropped packets since the last read (the socket's buffer was full).
    pub lost: bool,
}

/// A socket subscribed to one nflog group.
#[derive(Debug)]
pub struct NflogSocket {
    sock: NlSocket,
    group: u16,
}

impl NflogSocket {
    /// Opens a socket in the calling thread's network namespace and binds it to `group`
    /// (another process bound to the group: `EBUSY`).
    pub fn bind(group: u16) -> Result<NflogSocket, NftError> {
        let mut sock = NlSocket::open().map_err(|source| NftError::Io {
            op: "open netlink socket".into(),
            source,
        })?;
        let cfg = |f: &dyn Fn(&mut AttrWriter)| {
            let mut w = AttrWriter::new();
            f(&mut w);
            Request {
                ty: NFULNL_MSG_CONFIG,
                flags: NLM_F_REQUEST | NLM_F_ACK,
                family: 0,
                attrs: w.into_bytes(),
            }
        };
        let mut mode = COPY_RANGE.to_be_bytes().to_vec();
        mode.extend_from_slice(&[COPY_PACKET, 0]);
        let reqs = [
            cfg(&|w| w.put(NFULA_CFG_CMD, &[CMD_BIND])),
            cfg(&|w| w.put(NFULA_CFG_MODE, &mode)),
            // Deliver at once: one packet per message, no waiting.
            cfg(&|w| w.put_be32(NFULA_CFG_QTHRESH, 1)),
            cfg(&|w| w.put_be32(NFULA_CFG_TIMEOUT, 0)),
        ];
        let op = format!("bind nflog group {group}");
        let replies = sock
            .transact_res(NFNL_SUBSYS_ULOG, group, &reqs)
            .map_err(|e| NftError::from_sock(op.clone(), e))?;
        for r in replies {
            if let Some((errno, extack)) = r.error {
                return Err(NftError::kernel(op, errno, extack));
            }
        }
        sock.reserve(0, 2048);
        Ok(NflogSocket { sock, group })
    }

    /// The group.
    pub fn group(&self) -> u16 {
        self.group
    }

    /// Waits up to `timeout` for packets.
    pub fn next(&mut self, timeout: Duration) -> Result<NflogBatch, NftError> {
        let mut out = NflogBatch::default();
        let dgram = match self.sock.recv_within(timeout) {
            Ok(Some(d)) => d,
            Ok(None) => return Ok(out),
            Err(SockError::Io(e)) if e.raw_os_error() == Some(nix::libc::ENOBUFS) => {
                out.lost = true;
                return Ok(out);
            }
            Err(e) => return Err(NftError::from_sock("read nflog packets", e)),
        };
        for m in wire::messages(&dgram) {
            if m.ty != (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET {
                continue;
            }
            let a = m.nf_attrs();
            let Some(payload) = a.attr(NFULA_PAYLOAD) else {
                continue;
            };
            out.packets.push(NflogPacket {
                prefix: a.attr(NFULA_PREFIX).map(|p| p.string()).unwrap_or_default(),
                family: m.nf_family(),
                payload: payload.data.to_vec(),
            });
        }
        Ok(out)
    }
}

impl Drop for NflogSocket {
    fn drop(&mut self) {
        let mut w = AttrWriter::new();
        w.put(NFULA_CFG_CMD, &[CMD_UNBIND]);
        let _ = self.sock.transact_res(
            NFNL_SUBSYS_ULOG,
            self.group,
            &[Request {
                ty: NFULNL_MSG_CONFIG,
                flags: NLM_F_REQUEST | NLM_F_ACK,
                family: 0,
                attrs: w.into_bytes(),
            }],
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_of_both_families_are_summarized() {
        // IPv4, IHL 5, TCP 10.0.0.1:40000 -> 10.0.0.2:80.
        let mut p = vec![
            0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        p.extend_from_slice(&40000u16.to_be_bytes());
        p.extend_from_slice(&80u16.to_be_bytes());
        let s = summarize(AF_INET, &p).unwrap();
        assert_eq!(
            (
                s.src.to_string(),
                s.dst.to_string(),
                s.proto,
                s.sport,
                s.dport
            ),
            ("10.0.0.1".into(), "10.0.0.2".into(), 6, 40000, 80)
        );
        // IPv6 UDP fd00::1:53000 -> fd00::2:53.
        let mut p = vec![0x60, 0, 0, 0, 0, 8, 17, 64];
        let a: std::net::Ipv6Addr = "fd00::1".parse().unwrap();
        let b: std::net::Ipv6Addr = "fd00::2".parse().unwrap();
        p.extend_from_slice(&a.octets());
        p.extend_from_slice(&b.octets());
        p.extend_from_slice(&53000u16.to_be_bytes());
        p.extend_from_slice(&53u16.to_be_bytes());
        let s = summarize(AF_INET6, &p).unwrap();
        assert_eq!((s.proto, s.sport, s.dport), (17, 53000, 53));
        assert_eq!(s.dst, IpAddr::V6(b));
        // ICMP: no ports; a truncated header: nothing.
        let mut icmp = p.clone();
        icmp[6] = 58;
        assert_eq!(summarize(AF_INET6, &icmp).unwrap().dport, 0);
        assert_eq!(summarize(AF_INET, &[0x45, 0, 0]), None);
        assert_eq!(summarize(7, &p), None);
    }
}
