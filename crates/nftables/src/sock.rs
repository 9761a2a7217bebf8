//! A synchronous netlink socket (`NETLINK_NETFILTER` by default): send a buffer of requests in
//! one `sendmsg`, then collect the replies of each request by sequence number. nf_tables
//! ([`crate::NftSocket`]), ctnetlink and route netlink (`ferro-net`'s connections, which frame
//! their messages with `netlink-packet-route`) share it.
//!
//! The socket is opened in the calling thread's network namespace and stays bound to it.
//!
//! This module is where the workspace opens its netlink sockets: `clippy.toml`
//! forbids `netlink_sys::Socket` everywhere else, so other crates go through [`NlSocket`]
//! (or [`crate::NftSocket`]) instead of framing and reading netlink themselves.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;

use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};
use nix::sys::socket::{setsockopt, sockopt};
use nix::sys::time::TimeVal;

use crate::uapi::{NLMSG_DONE, NLMSG_ERROR, NLMSG_NOOP, NLM_F_DUMP_INTR};
use crate::wire;

/// How long to wait for the kernel before giving up on a reply (the kernel answers
/// nf_tables and ctnetlink requests synchronously, so this only guards against bugs).
const RECV_TIMEOUT: Duration = Duration::from_secs(10);
/// Receive buffer: larger than the biggest dump skb the kernel builds (32 KiB); small enough
/// to come from the heap rather than a mapping of its own per socket.
const RECV_BUF: usize = 64 * 1024;
/// Requests whose answers fit any socket's default receive buffer with room to spare: for
/// up to this many, [`NlSocket::reserve`] leaves the buffer as it is.
const FEW_REPLIES: usize = 64;
/// A request of at most this many bytes fits the smallest send buffer the kernel allows.
const SMALL_SEND: usize = 4 * 1024;

/// A failure below the nf_tables/ctnetlink layer, given context by the caller.
#[derive(Debug)]
pub enum SockError {
    /// A socket call failed.
    Io(io::Error),
    /// The kernel answered with an error: positive errno, extended-ack message.
    Kernel(i32, Option<String>),
    /// A reply we could not make sense of.
    Protocol(String),
}

/// A received message, owned.
#[derive(Debug, Clone)]
pub struct OwnedMsg {
    /// `nlmsg_type`.
    pub ty: u16,
    /// `nlmsg_flags`.
    pub flags: u16,
    /// `nlmsg_seq`.
    pub seq: u32,
    /// Everything after the `nlmsghdr`.
    pub payload: Vec<u8>,
}

impl OwnedMsg {
    /// The message, borrowed, for parsing.
    pub fn as_msg(&self) -> wire::Msg<'_> {
        wire::Msg {
            ty: self.ty,
            flags: self.flags,
            seq: self.seq,
            payload: &self.payload,
        }
    }
}

/// What the kernel answered to one request of a [`NlSocket::transact`] call.
#[derive(Debug, Default)]
pub struct Reply {
    /// The data messages (dump entries, or the object of a non-dump GET).
    pub msgs: Vec<OwnedMsg>,
    /// `Some((errno, extack))` when the request failed.
    pub error: Option<(i32, Option<String>)>,
    /// A dump whose messages carried `NLM_F_DUMP_INTR` (the ruleset changed meanwhile).
    pub interrupted: bool,
}

/// One request for [`NlSocket::transact`]: must carry `NLM_F_ACK` or `NLM_F_DUMP`, so that
/// it is terminated by an ACK/error or by `NLMSG_DONE`.
#[derive(Debug, Clone)]
pub struct Request {
    /// The message type within the subsystem (the low byte of `nlmsg_type`).
    pub ty: u16,
    /// `nlmsg_flags`.
    pub flags: u16,
    /// `nfgen_family`.
    pub family: u8,
    /// The attributes after the `nfgenmsg`.
    pub attrs: Vec<u8>,
}

/// The socket.
#[derive(Debug)]
pub struct NlSocket {
    sock: Socket,
    seq: u32,
    rbuf: Vec<u8>,
    /// The buffer sizes, once asked for ([`NlSocket::reserve`]).
    sndbuf: Option<usize>,
    rcvbuf: Option<usize>,
}

impl NlSocket {
    /// Opens a `NETLINK_NETFILTER` socket in the calling thread's network namespace.
    pub fn open() -> Result<NlSocket, io::Error> {
        Self::open_protocol(NETLINK_NETFILTER)
    }

    /// Opens a socket of another netlink protocol whose messages have the same 4-byte
    /// family header as nfnetlink (e.g. `NETLINK_ROUTE` netconf requests, whose
    /// `struct netconfmsg` is one family byte padded to 4).
    pub fn open_protocol(protocol: isize) -> Result<NlSocket, io::Error> {
        let mut sock = Socket::new(protocol)?;
        // Port id 0: the kernel picks one (no need to ask which).
        sock.bind(&SocketAddr::new(0, 0))?;
        sock.connect(&SocketAddr::new(0, 0))?;
        // Error messages of the kernel (extended ACK), and ACKs without the echoed request.
        let _ = sock.set_ext_ack(true);
        let _ = sock.set_cap_ack(true);
        setsockopt(
            &sock.as_fd(),
            sockopt::ReceiveTimeout,
            &TimeVal::new(RECV_TIMEOUT.as_secs() as _, 0),
        )
        .map_err(io::Error::from)?;
        // Start from the clock, like libmnl, so replies meant for an earlier process with
        // the same port id are not mistaken for ours.
        let seq = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as u32)
            .unwrap_or(1);
        Ok(NlSocket {
            sock,
            seq,
            rbuf: Vec::with_capacity(RECV_BUF),
            sndbuf: None,
            rcvbuf: None,
        })
    }

    /// Has the kernel check the headers of GET requests strictly and filter dumps by them
    /// (`NETLINK_GET_STRICT_CHK`, route netlink): a dump of one link's addresses returns
    /// only those.
    pub fn strict_check(&self) -> Result<(), io::Error> {
        self.sock.set_netlink_get_strict_chk(true)
    }

    /// Reserves `n` consecutive sequence numbers; returns the first.
    pub fn alloc_seq(&mut self, n: u32) -> u32 {
        let first = self.seq;
        self.seq = self.seq.wrapping_add(n);
        first
    }

    /// Makes sure the socket buffers can hold a request of `send` bytes and the replies to
    /// `replies` messages (each ACK is its own skb, about 1 KiB of receive buffer). Uses
    /// the `*FORCE` options (we run as root) and falls back to the plain ones. A small
    /// request with few answers (most of them: a pod's steps, a lookup) needs no system
    /// call here: the sizes are asked for only when a larger one comes.
    pub fn reserve(&mut self, send: usize, replies: usize) {
        if send > SMALL_SEND {
            let want_snd = send + 16 * 1024;
            let have = *self.sndbuf.get_or_insert_with(|| sndbuf_of(&self.sock));
            if want_snd > have {
                let fd = self.sock.as_fd();
                if setsockopt(&fd, sockopt::SndBufForce, &want_snd).is_err() {
                    let _ = setsockopt(&fd, sockopt::SndBuf, &want_snd);
                }
                self.sndbuf = Some(sndbuf_of(&self.sock).max(want_snd));
            }
        }
        if replies > FEW_REPLIES {
            let want_rcv = replies * 1024 + 256 * 1024;
            let have = *self
                .rcvbuf
                .get_or_insert_with(|| self.sock.get_rx_buf_sz().unwrap_or(0));
            if want_rcv > have {
                let fd = self.sock.as_fd();
                if setsockopt(&fd, sockopt::RcvBufForce, &want_rcv).is_err() {
                    let _ = setsockopt(&fd, sockopt::RcvBuf, &want_rcv);
                }
                self.rcvbuf = Some(self.sock.get_rx_buf_sz().unwrap_or(0).max(want_rcv));
            }
        }
    }

    /// Sends `buf` in one `sendmsg`.
    pub fn send(&mut self, buf: &[u8]) -> Result<(), SockError> {
        self.send_parts(&[buf])
    }

    /// Sends `parts`, one after the other, in one `sendmsg` (one datagram, as if they were
    /// one buffer): a large transaction kept in pieces is not copied together first.
    pub fn send_parts(&mut self, parts: &[&[u8]]) -> Result<(), SockError> {
        // The kernel's limit of pieces per call (UIO_MAXIOV).
        const MAX_PARTS: usize = 1024;
        if parts.len() > MAX_PARTS {
            return Err(SockError::Protocol(format!(
                "{} pieces in one sendmsg, the kernel takes at most {MAX_PARTS}",
                parts.len()
            )));
        }
        let iov: Vec<io::IoSlice<'_>> = parts.iter().map(|p| io::IoSlice::new(p)).collect();
        let total: usize = parts.iter().map(|p| p.len()).sum();
        let n = nix::sys::socket::sendmsg::<()>(
            self.sock.as_raw_fd(),
            &iov,
            &[],
            nix::sys::socket::MsgFlags::empty(),
            None,
        )
        .map_err(|e| SockError::Io(e.into()))?;
        if n != total {
            return Err(SockError::Protocol(format!(
                "short send: {n} of {total} bytes"
            )));
        }
        Ok(())
    }

    /// Receives one datagram (one or more messages).
    pub fn recv(&mut self) -> Result<Vec<u8>, SockError> {
        loop {
            self.rbuf.clear();
            match self.sock.recv(&mut self.rbuf, nix::libc::MSG_TRUNC) {
                Ok(n) if n > self.rbuf.capacity() => {
                    return Err(SockError::Protocol(format!(
                        "reply of {n} bytes truncated to {}",
                        self.rbuf.capacity()
                    )))
                }
                Ok(_) => return Ok(self.rbuf.clone()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Err(SockError::Protocol(format!(
                        "no reply from the kernel within {}s",
                        RECV_TIMEOUT.as_secs()
                    )))
                }
                Err(e) => return Err(SockError::Io(e)),
            }
        }
    }

    /// Waits up to `timeout` for one datagram of messages the kernel sends by itself
    /// (nfnetlink_log packets): `Ok(None)` when none came. An `ENOBUFS` error means the
    /// kernel dropped messages because the receive buffer was full: the caller says so and
    /// goes on.
    pub fn recv_within(&mut self, timeout: Duration) -> Result<Option<Vec<u8>>, SockError> {
        let tv = TimeVal::new(timeout.as_secs() as _, timeout.subsec_micros().max(1) as _);
        setsockopt(&self.sock.as_fd(), sockopt::ReceiveTimeout, &tv)
            .map_err(|e| SockError::Io(e.into()))?;
        let got = loop {
            self.rbuf.clear();
            match self.sock.recv(&mut self.rbuf, nix::libc::MSG_TRUNC) {
                Ok(_) => break Ok(Some(self.rbuf.clone())),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(None),
                Err(e) => break Err(SockError::Io(e)),
            }
        };
        let _ = setsockopt(
            &self.sock.as_fd(),
            sockopt::ReceiveTimeout,
            &TimeVal::new(RECV_TIMEOUT.as_secs() as _, 0),
        );
        got
    }

    /// Sends every request in one `sendmsg` and collects each one's replies. Requests are
    /// independent (not a transaction); each must ask for an ACK or be a dump.
    pub fn transact(&mut self, subsys: u16, reqs: &[Request]) -> Result<Vec<Reply>, SockError> {
        self.transact_res(subsys, 0, reqs)
    }

    /// [`NlSocket::transact`] with `res_id` in every `nfgenmsg` (nfnetlink_log puts the
    /// group there).
    pub fn transact_res(
        &mut self,
        subsys: u16,
        res_id: u16,
        reqs: &[Request],
    ) -> Result<Vec<Reply>, SockError> {
        if reqs.is_empty() {
            return Ok(Vec::new());
        }
        let n = u32::try_from(reqs.len()).unwrap_or(u32::MAX);
        let first = self.alloc_seq(n);
        let mut buf = Vec::new();
        for (i, r) in reqs.iter().enumerate() {
            wire::push_msg(
                &mut buf,
                (subsys << 8) | r.ty,
                r.flags,
                first.wrapping_add(i as u32),
                r.family,
                res_id,
                &r.attrs,
            );
        }
        self.exchange(&buf, first, reqs.len())
    }

    /// Sends `buf`, `count` requests already framed with the sequence numbers from `first`
    /// (from [`NlSocket::alloc_seq`]), in one `sendmsg`, and collects each one's replies; each
    /// must ask for an ACK or be a dump. [`NlSocket::transact`] frames nfnetlink requests for
    /// it; other protocols (route netlink) frame their own.
    pub fn exchange(
        &mut self,
        buf: &[u8],
        first: u32,
        count: usize,
    ) -> Result<Vec<Reply>, SockError> {
        self.reserve(buf.len(), count);
        self.send(buf)?;
        let mut replies: Vec<Reply> = (0..count).map(|_| Reply::default()).collect();
        let mut done = vec![false; count];
        let mut pending = count;
        while pending > 0 {
            let dgram = self.recv()?;
            pending -= absorb(&dgram, first, &mut replies, &mut done)?;
        }
        Ok(replies)
    }
}

/// Files the messages of one received datagram under the requests they answer (by sequence
/// number from `first`); returns how many requests it completed. Messages of other
/// sequence numbers (stale replies) are ignored. Public for tests and fuzzing: it is where
/// every reply datagram is first read.
pub fn absorb(
    dgram: &[u8],
    first: u32,
    replies: &mut [Reply],
    done: &mut [bool],
) -> Result<usize, SockError> {
    let mut completed = 0;
    for m in wire::messages(dgram) {
        let idx = m.seq.wrapping_sub(first) as usize;
        if idx >= replies.len() || done[idx] {
            continue;
        }
        let reply = &mut replies[idx];
        if m.flags & NLM_F_DUMP_INTR != 0 {
            reply.interrupted = true;
        }
        match m.ty {
            NLMSG_NOOP => {}
            NLMSG_ERROR => {
                let (code, extack) = m
                    .error()
                    .ok_or_else(|| SockError::Protocol("short error message".into()))?;
                // Negated as the kernel sends it; saturating, so a corrupt i32::MIN cannot
                // overflow.
                if code != 0 {
                    reply.error = Some((code.saturating_neg(), extack));
                }
                done[idx] = true;
                completed += 1;
            }
            NLMSG_DONE => {
                // A dump may end with a negative error in NLMSG_DONE.
                let code = m
                    .payload
                    .get(..4)
                    .and_then(|b| b.try_into().ok())
                    .map(i32::from_ne_bytes)
                    .unwrap_or(0);
                if code < 0 {
                    reply.error = Some((code.saturating_neg(), None));
                }
                done[idx] = true;
                completed += 1;
            }
            _ => reply.msgs.push(OwnedMsg {
                ty: m.ty,
                flags: m.flags,
                seq: m.seq,
                payload: m.payload.to_vec(),
            }),
        }
    }
    Ok(completed)
}

fn sndbuf_of(sock: &Socket) -> usize {
    nix::sys::socket::getsockopt(&sock.as_fd(), sockopt::SndBuf).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(out: &mut Vec<u8>, ty: u16, flags: u16, seq: u32, payload: &[u8]) {
        out.extend_from_slice(&((16 + payload.len()) as u32).to_ne_bytes());
        out.extend_from_slice(&ty.to_ne_bytes());
        out.extend_from_slice(&flags.to_ne_bytes());
        out.extend_from_slice(&seq.to_ne_bytes());
        out.extend_from_slice(&0u32.to_ne_bytes());
        out.extend_from_slice(payload);
    }

    #[test]
    fn replies_are_filed_by_sequence_and_interrupted_dumps_flagged() {
        let mut replies = vec![Reply::default(), Reply::default()];
        let mut done = vec![false; 2];
        let mut d = Vec::new();
        msg(&mut d, 0x0a0c, 0x2, 99, &[1, 0, 0, 0]); // stale: ignored
        msg(&mut d, 0x0a0c, 0x2 | NLM_F_DUMP_INTR, 10, &[1, 0, 0, 0]); // dump entry
        msg(&mut d, 0x0a0c, 0x2, 10, &[1, 0, 0, 0]);
        assert_eq!(absorb(&d, 10, &mut replies, &mut done).unwrap(), 0);
        let mut d = Vec::new();
        msg(&mut d, NLMSG_DONE, 0x2, 10, &0i32.to_ne_bytes());
        let mut err = (-2i32).to_ne_bytes().to_vec(); // ENOENT for the second request
        err.extend_from_slice(&[0u8; 16]);
        msg(&mut d, NLMSG_ERROR, 0x100, 11, &err);
        assert_eq!(absorb(&d, 10, &mut replies, &mut done).unwrap(), 2);
        assert_eq!(replies[0].msgs.len(), 2);
        assert!(replies[0].interrupted && replies[0].error.is_none());
        assert_eq!(replies[1].error, Some((2, None)));
        assert!(replies[1].msgs.is_empty() && !replies[1].interrupted);
        // Late duplicates of finished requests are ignored.
        assert_eq!(absorb(&d, 10, &mut replies, &mut done).unwrap(), 0);
    }

    #[test]
    fn a_dump_that_fails_midway_reports_the_error_from_nlmsg_done() {
        let mut replies = vec![Reply::default()];
        let mut done = vec![false];
        let mut d = Vec::new();
        msg(&mut d, NLMSG_DONE, 0x2, 7, &(-16i32).to_ne_bytes());
        assert_eq!(absorb(&d, 7, &mut replies, &mut done).unwrap(), 1);
        assert_eq!(replies[0].error, Some((16, None)));
    }

    #[test]
    fn an_error_code_of_i32_min_does_not_overflow() {
        // Found by the nft_decode fuzz target: `-code` overflowed (a panic in debug builds)
        // for an NLMSG_ERROR or NLMSG_DONE carrying i32::MIN.
        let mut replies = vec![Reply::default(), Reply::default()];
        let mut done = vec![false; 2];
        let mut d = Vec::new();
        let mut err = i32::MIN.to_ne_bytes().to_vec();
        err.extend_from_slice(&[0u8; 16]);
        msg(&mut d, NLMSG_ERROR, 0x100, 1, &err);
        msg(&mut d, NLMSG_DONE, 0x2, 2, &i32::MIN.to_ne_bytes());
        assert_eq!(absorb(&d, 1, &mut replies, &mut done).unwrap(), 2);
        assert_eq!(replies[0].error, Some((i32::MAX, None)));
        assert_eq!(replies[1].error, Some((i32::MAX, None)));
    }
}
