//! Route netlink (links, addresses, routes, neighbours, FDB): messages of
//! `netlink-packet-route` on the workspace's synchronous netlink socket
//! ([`ferro_nftables::sock::NlSocket`]), no async runtime.
//!
//! [`Kernel::connect`] opens one connection per namespace. The socket of a pod connection is
//! created inside the pod's namespace and stays bound to it, so no namespace switch is needed
//! afterwards. Every operation is one request and, where it says so, idempotent; each names
//! its `ip` equivalent. Every request goes through one exchange (`Rtnl::exchange`: one
//! `sendmsg`, the answers filed by sequence number); dumps that the kernel flags as
//! interrupted by a concurrent change (`NLM_F_DUMP_INTR`) are read again, a bounded number of
//! times. Steps that need nothing back but their ACK can be queued in a [`Batch`] instead:
//! sent in one datagram, answered together.
//!
//! ## Layout
//! - this module: [`Kernel`], [`Rtnl`], [`Batch`], the reply loop and the dump retry;
//! - `link`: links (veth, bridge, vxlan), their flags, bridge ports and VLANs ([`Link`]);
//! - `addr`: addresses ([`AddrInfo`]);
//! - `route`: routes ([`RouteSpec`]);
//! - `neigh`: neighbour and proxy entries, the neighbour table's proxy delay ([`NeighSpec`]);
//! - `fdb`: FDB entries of VXLAN devices ([`FdbEntry`]);
//! - [`detach`]: veth pairs taken out of service at once and deleted later, in batches.

mod addr;
pub mod detach;
mod fdb;
mod link;
mod neigh;
mod route;

use std::marker::PhantomData;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use ferro_nftables::sock::{self, NlSocket, SockError};
use netlink_packet_core::{
    NetlinkMessage, NetlinkPayload, ParseableParametrized, NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR,
    NLM_F_REQUEST,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::protocols::NETLINK_ROUTE;

use crate::error::NetError;
use crate::netns::Netns;

pub use addr::{AddrInfo, AddrOpts};
pub use fdb::FdbEntry;
pub use link::{BridgeSpec, Link, VethSpec, VxlanInfo, VxlanSpec};
pub use neigh::NeighSpec;
pub use route::{describe_route, RouteSpec};

/// How often a dump interrupted by a concurrent change (`NLM_F_DUMP_INTR`) is read again.
const DUMP_ATTEMPTS: usize = 5;

/// The main routing table.
pub const MAIN_TABLE: u32 = 254;

/// Where the route-netlink connections of one plugin invocation (or one agent worker) are
/// opened; the connections borrow it, so they end with it.
#[derive(Debug)]
pub struct Kernel {
    _private: (),
}

/// One route-netlink connection, bound to the namespace it was opened in. Clones share the
/// socket.
#[derive(Debug, Clone)]
pub struct Rtnl<'k> {
    sock: Arc<Mutex<NlSocket>>,
    /// Where this connection lives, for error messages ("host" or the netns path).
    place: String,
    _kernel: PhantomData<&'k Kernel>,
}

impl Kernel {
    /// Nothing is opened until [`Kernel::connect`].
    pub fn new() -> Result<Kernel, NetError> {
        Ok(Kernel { _private: () })
    }

    /// Opens a connection in the calling thread's namespace (`None`) or inside `ns`.
    pub fn connect(&self, ns: Option<&Netns>) -> Result<Rtnl<'_>, NetError> {
        let opened = match ns {
            None => open_route(),
            Some(ns) => ns.run(open_route)?,
        };
        let sock = opened.map_err(|e| NetError::io("open netlink socket", e))?;
        Ok(Rtnl {
            sock: Arc::new(Mutex::new(sock)),
            place: ns.map_or_else(|| "host".to_string(), |n| n.path().display().to_string()),
            _kernel: PhantomData,
        })
    }
}

/// A route-netlink socket in the calling thread's namespace. Strict checking lets the kernel
/// filter dumps (by link, table, output interface), so lookups stay O(1) in the number of
/// pods instead of walking every address, route and neighbour of the node.
fn open_route() -> std::io::Result<NlSocket> {
    let s = NlSocket::open_protocol(NETLINK_ROUTE)?;
    s.strict_check()?;
    Ok(s)
}

/// `e`, a failure of the socket itself while carrying out `op`.
fn sock_error(op: &str, e: SockError) -> NetError {
    match e {
        SockError::Io(e) => NetError::io(op, e),
        SockError::Kernel(errno, _) => NetError::Netlink {
            op: op.to_string(),
            errno,
        },
        SockError::Protocol(m) => NetError::Other(format!("{op}: {m}")),
    }
}

/// What the kernel answered to one request: the messages before the ACK or `NLMSG_DONE`, and
/// whether a dump was flagged as interrupted.
#[derive(Debug, Default)]
struct Replies {
    msgs: Vec<RouteNetlinkMessage>,
    interrupted: bool,
}

impl Replies {
    /// Files one reply; an error answer ends the request with that error.
    fn absorb(&mut self, op: &str, m: NetlinkMessage<RouteNetlinkMessage>) -> Result<(), NetError> {
        if m.header.flags & NLM_F_DUMP_INTR != 0 {
            self.interrupted = true;
        }
        match m.payload {
            NetlinkPayload::InnerMessage(inner) => self.msgs.push(inner),
            NetlinkPayload::Error(e) => {
                if let Some(code) = e.code {
                    // errno as the kernel negates it; saturating, so a corrupt i32::MIN
                    // cannot overflow.
                    return Err(NetError::Netlink {
                        op: op.to_string(),
                        errno: code.get().saturating_neg(),
                    });
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// What the socket filed for one request, read as route-netlink messages: its error answer,
/// or the messages answered before its ACK or the end of its dump. A message the codec cannot
/// read is left out (logged), as a kernel newer than the codec may send one.
fn read_reply(op: &str, r: sock::Reply) -> Result<Replies, NetError> {
    if let Some((errno, _)) = r.error {
        return Err(NetError::Netlink {
            op: op.to_string(),
            errno,
        });
    }
    let mut msgs = Vec::with_capacity(r.msgs.len());
    for m in &r.msgs {
        match RouteNetlinkMessage::parse_with_param(m.payload.as_slice(), m.ty) {
            Ok(parsed) => msgs.push(parsed),
            Err(e) => log::warn!("{op}: an answer of type {} left unread: {e}", m.ty),
        }
    }
    Ok(Replies {
        msgs,
        interrupted: r.interrupted,
    })
}

/// Runs `attempt` (one dump) until the kernel answers without `NLM_F_DUMP_INTR`, at most
/// [`DUMP_ATTEMPTS`] times; a dump interrupted every time is an error naming `op`.
fn retry_interrupted(
    op: &str,
    mut attempt: impl FnMut() -> Result<Replies, NetError>,
) -> Result<Vec<RouteNetlinkMessage>, NetError> {
    for _ in 0..DUMP_ATTEMPTS {
        let r = attempt()?;
        if !r.interrupted {
            return Ok(r.msgs);
        }
        log::debug!("{op}: interrupted by a concurrent change; dumping again");
    }
    Err(NetError::Other(format!(
        "{op}: interrupted {DUMP_ATTEMPTS} times by concurrent changes"
    )))
}

impl Rtnl<'_> {
    /// The one exchange with the kernel: sends every message (each with `NLM_F_REQUEST |`
    /// its flags, consecutive sequence numbers) in one datagram, which the kernel carries out
    /// in order, and reads the answers until each request has its ACK, its error or the end
    /// of its dump. A request that is not a dump always asks for an ACK, so a GET ends there
    /// too. The outer error is the socket's (naming the first request); the inner ones are
    /// each request's.
    fn exchange(
        &self,
        reqs: Vec<(RouteNetlinkMessage, u16)>,
        first_op: &str,
    ) -> Result<Vec<sock::Reply>, NetError> {
        let mut sock = self.sock.lock().unwrap_or_else(PoisonError::into_inner);
        let n = u32::try_from(reqs.len()).unwrap_or(u32::MAX);
        let first = sock.alloc_seq(n);
        let mut buf = Vec::with_capacity(256 * reqs.len());
        for (i, (msg, flags)) in (0u32..).zip(reqs) {
            let mut m = NetlinkMessage::from(msg);
            m.header.flags = NLM_F_REQUEST
                | flags
                | if flags & NLM_F_DUMP == NLM_F_DUMP {
                    0
                } else {
                    NLM_F_ACK
                };
            m.header.sequence_number = first.wrapping_add(i);
            m.finalize();
            let at = buf.len();
            buf.resize(at + m.buffer_len(), 0);
            m.serialize(&mut buf[at..]);
        }
        sock.exchange(&buf, first, n as usize)
            .map_err(|e| sock_error(first_op, e))
    }

    /// One request: sends `msg` with `NLM_F_REQUEST | flags` and collects what the kernel
    /// answers until the ACK (or the end of the dump); an error answer is an error naming `op`.
    fn request(
        &self,
        op: String,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Replies, NetError> {
        let mut replies = self.exchange(vec![(msg, flags)], &op)?;
        read_reply(&op, replies.pop().unwrap_or_default())
    }

    /// Sends every request of `batch` at once, then reads their answers (one wait for all of
    /// them instead of one per request; the kernel carries them out in the order sent).
    /// Every answer is read; the first error a request does not tolerate is returned.
    fn run_batch(&self, batch: Vec<Queued>) -> Result<(), NetError> {
        let first_op = batch.first().map(|q| q.op.clone()).unwrap_or_default();
        let mut ops = Vec::with_capacity(batch.len());
        let mut reqs = Vec::with_capacity(batch.len());
        for q in batch {
            ops.push((q.op, q.tolerate));
            reqs.push((q.msg, NLM_F_ACK | q.flags));
        }
        let replies = self.exchange(reqs, &first_op)?;
        let mut first = None;
        for ((op, tolerate), r) in ops.iter().zip(replies) {
            match read_reply(op, r) {
                Err(e) if !tolerate.allows(&e) => {
                    first.get_or_insert(e);
                }
                _ => {}
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// [`crate::sysctl::forwarding`] asked on this connection (its namespace's forwarding
    /// per family) instead of a socket opened for it.
    pub fn forwarding(&self) -> (Option<bool>, Option<bool>) {
        let mut sock = self.sock.lock().unwrap_or_else(PoisonError::into_inner);
        crate::sysctl::forwarding_on(&mut sock)
    }

    /// Requests queued on this connection, sent together by [`Batch::run`].
    pub fn batch(&self) -> Batch<'_, '_> {
        Batch {
            rtnl: self,
            queued: Vec::new(),
        }
    }

    /// Sends one queued request and waits for its ACK; an error it tolerates is success.
    fn one(&self, q: Queued) -> Result<(), NetError> {
        match self.ack(q.op, q.msg, q.flags) {
            Err(e) if q.tolerate.allows(&e) => Ok(()),
            other => other,
        }
    }

    /// Sends one request and waits for its ACK.
    fn ack(
        &self,
        op: impl Into<String>,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<(), NetError> {
        self.request(op.into(), msg, NLM_F_ACK | flags).map(drop)
    }

    /// Sends one request, waits for its ACK and returns the messages answered before it
    /// (with `NLM_F_ECHO`, the kernel's copy of the created object).
    fn ack_echo(
        &self,
        op: impl Into<String>,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>, NetError> {
        self.request(op.into(), msg, NLM_F_ACK | flags)
            .map(|r| r.msgs)
    }

    /// A GET of one object.
    fn get(
        &self,
        op: impl Into<String>,
        msg: RouteNetlinkMessage,
    ) -> Result<Vec<RouteNetlinkMessage>, NetError> {
        self.request(op.into(), msg, 0).map(|r| r.msgs)
    }

    /// A dump, read again while the kernel flags it as interrupted.
    fn dump(
        &self,
        op: &str,
        msg: RouteNetlinkMessage,
    ) -> Result<Vec<RouteNetlinkMessage>, NetError> {
        retry_interrupted(op, || self.request(op.to_string(), msg.clone(), NLM_F_DUMP))
    }
}

/// An error answer a queued request counts as success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tolerate {
    /// None.
    Nothing,
    /// `EEXIST`: what the request creates is there already.
    Exists,
    /// What the request removes is gone already ([`NetError::is_not_found`]).
    NotFound,
}

impl Tolerate {
    fn allows(self, e: &NetError) -> bool {
        match self {
            Tolerate::Nothing => false,
            Tolerate::Exists => e.is_exists(),
            Tolerate::NotFound => e.is_not_found(),
        }
    }
}

/// One request of a [`Batch`]: the message, its flags besides `NLM_F_REQUEST | NLM_F_ACK`,
/// the operation for messages and what it tolerates.
#[derive(Debug)]
struct Queued {
    op: String,
    msg: RouteNetlinkMessage,
    flags: u16,
    tolerate: Tolerate,
}

/// Requests on one connection that need no answer but their ACK, sent back to back and
/// answered together: the kernel carries them out one after the other, in the order queued,
/// and the caller waits once instead of once per request. Each request means what the call
/// of the same name on [`Rtnl`] means (an address already present is success, and so on).
/// A request whose predecessor failed is still carried out, so a batch holds only steps the
/// caller undoes as a whole when any of them fails (a new interface it deletes again). The
/// queueing methods live beside their one-request forms (`addr`, `link`, `neigh`, `route`).
#[derive(Debug)]
#[must_use = "a batch does nothing until it is run"]
pub struct Batch<'r, 'k> {
    rtnl: &'r Rtnl<'k>,
    queued: Vec<Queued>,
}

impl Batch<'_, '_> {
    /// Sends the queued requests and reads every answer; the first error of a request that
    /// does not tolerate it, naming the request.
    pub fn run(self) -> Result<(), NetError> {
        if self.queued.is_empty() {
            return Ok(());
        }
        self.rtnl.run_batch(self.queued)
    }

    /// How many requests are queued.
    pub fn len(&self) -> usize {
        self.queued.len()
    }

    /// Nothing queued.
    pub fn is_empty(&self) -> bool {
        self.queued.is_empty()
    }

    fn push(&mut self, q: Queued) -> &mut Self {
        self.queued.push(q);
        self
    }
}

/// One reply message, read by the same functions the lookups and dumps use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// `RTM_NEWLINK`.
    Link(Link),
    /// `RTM_NEWADDR` with an address.
    Addr(AddrInfo),
    /// `RTM_NEWROUTE`.
    Route(RouteSpec),
    /// `RTM_NEWNEIGH` of an IPv4/IPv6 neighbour or proxy entry.
    Neigh(NeighSpec),
    /// `RTM_NEWNEIGH` of an FDB entry with a remote destination.
    Fdb(FdbEntry),
    /// Anything else the suite reads nothing from (including ACKs and `NLMSG_DONE`).
    Other,
}

/// Reads the route-netlink messages of one received datagram as answers are read: framed by
/// their length, an error answer becoming the request's error, then parsed by the readers of links,
/// addresses, routes, neighbours and FDB entries. Pure: for tests and fuzzing (in
/// production the kernel is the only sender). Stops at the first message that does not frame
/// or parse.
pub fn decode_datagram(mut buf: &[u8]) -> Vec<Result<Decoded, NetError>> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let Ok(frame) = netlink_packet_core::NetlinkBuffer::new_checked(buf) else {
            break;
        };
        let len = (frame.length() as usize).min(buf.len());
        let Ok(m) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf[..len]) else {
            break;
        };
        buf = &buf[len..];
        let mut replies = Replies::default();
        if let Err(e) = replies.absorb("decode", m) {
            out.push(Err(e));
            continue;
        }
        out.extend(replies.msgs.iter().map(|m| Ok(decode_one(m))));
    }
    out
}

/// `d` as one netlink message: routes, addresses, neighbour and FDB entries as the requests
/// that create them write them, links with what the link reader reads. The inverse of
/// [`decode_datagram`], for round trips and seed messages in tests and fuzzing; `None` for
/// [`Decoded::Other`].
pub fn encode(d: &Decoded) -> Option<Vec<u8>> {
    let msg = match d {
        Decoded::Link(l) => RouteNetlinkMessage::NewLink(link::link_message(l)),
        Decoded::Addr(a) => RouteNetlinkMessage::NewAddress(addr::addr_message(
            a.index,
            a.addr,
            AddrOpts::default(),
        )),
        Decoded::Route(r) => RouteNetlinkMessage::NewRoute(Rtnl::route_message(r)),
        Decoded::Neigh(n) => RouteNetlinkMessage::NewNeighbour(Rtnl::neigh_message(n)),
        Decoded::Fdb(f) => RouteNetlinkMessage::NewNeighbour(Rtnl::fdb_message(f)),
        Decoded::Other => return None,
    };
    let mut m = NetlinkMessage::from(msg);
    m.finalize();
    let mut buf = vec![0; m.buffer_len()];
    m.serialize(&mut buf);
    Some(buf)
}

fn decode_one(m: &RouteNetlinkMessage) -> Decoded {
    let decoded = match m {
        RouteNetlinkMessage::NewLink(l) => Some(Decoded::Link(link::parse_link(l))),
        RouteNetlinkMessage::NewAddress(a) => addr::parse_addr(a).map(Decoded::Addr),
        RouteNetlinkMessage::NewRoute(r) => route::parse_route(r).map(Decoded::Route),
        RouteNetlinkMessage::NewNeighbour(n) => fdb::parse_fdb(n)
            .map(Decoded::Fdb)
            .or_else(|| neigh::parse_neigh(n).map(Decoded::Neigh)),
        _ => None,
    };
    decoded.unwrap_or(Decoded::Other)
}

fn family_of(ip: IpAddr) -> AddressFamily {
    match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroI32;

    use netlink_packet_core::{ErrorMessage, NetlinkHeader, NLM_F_MULTIPART};
    use netlink_packet_route::link::LinkMessage;

    use super::*;

    fn reply(
        flags: u16,
        payload: NetlinkPayload<RouteNetlinkMessage>,
    ) -> NetlinkMessage<RouteNetlinkMessage> {
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        NetlinkMessage::new(header, payload)
    }

    fn link_entry(flags: u16) -> NetlinkMessage<RouteNetlinkMessage> {
        reply(
            flags,
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(LinkMessage::default())),
        )
    }

    #[test]
    fn the_reply_loop_collects_entries_and_notices_an_interrupted_dump() {
        let mut r = Replies::default();
        r.absorb("dump links", link_entry(NLM_F_MULTIPART)).unwrap();
        assert!(!r.interrupted);
        r.absorb("dump links", link_entry(NLM_F_MULTIPART | NLM_F_DUMP_INTR))
            .unwrap();
        assert!(r.interrupted);
        assert_eq!(r.msgs.len(), 2);
        // An ACK (error code 0) is not an error.
        r.absorb(
            "dump links",
            reply(0, NetlinkPayload::Error(ErrorMessage::default())),
        )
        .unwrap();
        let mut nack = ErrorMessage::default();
        nack.code = NonZeroI32::new(-19);
        let e = r
            .absorb(
                "get link eth9 (host)",
                reply(0, NetlinkPayload::Error(nack)),
            )
            .unwrap_err();
        assert!(e.is_not_found());
        assert_eq!(
            e.to_string(),
            "get link eth9 (host): No such device (os error 19)"
        );
    }

    #[test]
    fn an_error_code_of_i32_min_does_not_overflow() {
        // Found while writing the rtnl_decode fuzz target: `-code` overflowed (a panic in
        // debug builds) for a corrupt NLMSG_ERROR carrying i32::MIN.
        let mut nack = ErrorMessage::default();
        nack.code = NonZeroI32::new(i32::MIN);
        let e = Replies::default()
            .absorb("get link", reply(0, NetlinkPayload::Error(nack)))
            .unwrap_err();
        assert_eq!(e.errno(), Some(i32::MAX));
    }

    #[test]
    fn replies_decode_and_what_the_suite_writes_reads_back() {
        let route = RouteSpec {
            table: Some(MAIN_TABLE),
            scope: Some(0),
            protocol: Some(77),
            ..RouteSpec::new(
                "10.244.2.0/24".parse().unwrap(),
                Some("10.240.0.5".parse().unwrap()),
                Some(3),
            )
        };
        let fdb = FdbEntry {
            ifindex: 7,
            mac: [2, 0, 0, 0, 0, 1],
            dst: "10.240.0.5".parse().unwrap(),
        };
        let mut dgram = encode(&Decoded::Route(route.clone())).unwrap();
        dgram.extend(encode(&Decoded::Fdb(fdb.clone())).unwrap());
        let got: Vec<Decoded> = decode_datagram(&dgram)
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(got, [Decoded::Route(route), Decoded::Fdb(fdb)]);
        assert!(
            decode_datagram(&dgram[..10]).is_empty(),
            "a truncated header"
        );
    }

    #[test]
    fn an_interrupted_dump_is_read_again_until_consistent() {
        // The kernel flags the first two dumps (the table changed meanwhile), not the third.
        let mut attempts = 0;
        let msgs = retry_interrupted("dump routes", || {
            attempts += 1;
            let mut r = Replies::default();
            let flags = if attempts < 3 {
                NLM_F_MULTIPART | NLM_F_DUMP_INTR
            } else {
                NLM_F_MULTIPART
            };
            for _ in 0..attempts {
                r.absorb("dump routes", link_entry(flags))?;
            }
            Ok(r)
        })
        .unwrap();
        assert_eq!(attempts, 3);
        assert_eq!(msgs.len(), 3, "the entries of the consistent dump only");
    }

    #[test]
    fn a_dump_interrupted_every_time_is_an_error_and_errors_are_not_retried() {
        let mut attempts = 0;
        let e = retry_interrupted("dump neighbours", || {
            attempts += 1;
            let mut r = Replies::default();
            r.absorb(
                "dump neighbours",
                link_entry(NLM_F_MULTIPART | NLM_F_DUMP_INTR),
            )?;
            Ok(r)
        })
        .unwrap_err();
        assert_eq!(attempts, DUMP_ATTEMPTS);
        assert!(
            e.to_string().starts_with("dump neighbours: interrupted"),
            "{e}"
        );

        let mut attempts = 0;
        let e = retry_interrupted("dump fdb", || {
            attempts += 1;
            Err(NetError::Netlink {
                op: "dump fdb".into(),
                errno: 1,
            })
        })
        .unwrap_err();
        assert_eq!((attempts, e.errno()), (1, Some(1)));
    }
}
