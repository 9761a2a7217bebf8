//! Per-namespace sysctls under `/proc/sys`, read before written.
//!
//! `/proc/sys/net/*` resolves to the network namespace of the thread that opens the file, so
//! pod sysctls are set inside [`crate::netns::Netns::run`]. Keys use `/` separators
//! (`net/ipv6/conf/eth0/accept_dad`) because interface names may contain dots.
//!
//! Opening a file under `/proc/sys/net` costs time proportional to the number of network
//! namespaces on the machine (each namespace's `net` directory is a dentry of the same name
//! under `/proc/sys`, all compared on lookup): about 1.5 ms with a thousand pods. The steady
//! state therefore reads over netlink where the kernel offers it ([`forwarding`]) and sets
//! per-interface IPv4 settings over netlink too ([`crate::rtnl::Rtnl::link_up_notify`]).

use std::path::PathBuf;

use crate::error::NetError;
use ferro_nftables::sock::{NlSocket, Request};
use ferro_nftables::uapi::{NLM_F_ACK, NLM_F_REQUEST};
use ferro_nftables::wire::AttrWriter;

const RTM_NEWNETCONF: u16 = 80;
const RTM_GETNETCONF: u16 = 82;
const NETCONFA_IFINDEX: u16 = 1;
const NETCONFA_FORWARDING: u16 = 2;
const NETCONFA_IFINDEX_ALL: i32 = -1;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

fn path(key: &str) -> PathBuf {
    PathBuf::from("/proc/sys").join(key)
}

/// Reads a sysctl (trimmed).
pub fn get(key: &str) -> Result<String, NetError> {
    std::fs::read_to_string(path(key))
        .map(|s| s.trim().to_string())
        .map_err(|e| NetError::io(format!("read sysctl {key}"), e))
}

/// Sets `key` to `value` unless it already has that value. Returns whether it wrote.
/// Equivalent to `sysctl -w key=value`.
pub fn ensure(key: &str, value: &str) -> Result<bool, NetError> {
    if get(key)? == value {
        return Ok(false);
    }
    std::fs::write(path(key), value)
        .map_err(|e| NetError::io(format!("set sysctl {key}={value}"), e))?;
    log::debug!("sysctl {key}={value}");
    Ok(true)
}

/// [`ensure`], ignoring a missing key (e.g. IPv6 disabled on the node): `Ok(false)`.
pub fn ensure_if_present(key: &str, value: &str) -> Result<bool, NetError> {
    match ensure(key, value) {
        Err(e) if e.errno() == Some(crate::error::libc_errno::ENOENT) => Ok(false),
        other => other,
    }
}

/// Whether forwarding is on for the namespace of the calling thread, per family
/// (`net.ipv4.ip_forward`, `net.ipv6.conf.all.forwarding`): one netlink round trip
/// (`RTM_GETNETCONF`, `ip netconf show`) for both. `None` for a family the kernel does not
/// answer for (IPv6 disabled) or when netlink fails: the caller falls back to `/proc/sys`.
pub fn forwarding() -> (Option<bool>, Option<bool>) {
    match NlSocket::open_protocol(netlink_sys::protocols::NETLINK_ROUTE) {
        Ok(mut sock) => forwarding_on(&mut sock),
        Err(_) => (None, None),
    }
}

/// [`forwarding`], asked on `sock`, an open route-netlink socket (a connection's own:
/// [`crate::rtnl::Rtnl::forwarding`]).
pub(crate) fn forwarding_on(sock: &mut NlSocket) -> (Option<bool>, Option<bool>) {
    let mut attrs = AttrWriter::new();
    attrs.put(NETCONFA_IFINDEX, &NETCONFA_IFINDEX_ALL.to_ne_bytes());
    let attrs = attrs.into_bytes();
    let reqs: Vec<Request> = [AF_INET, AF_INET6]
        .into_iter()
        .map(|family| Request {
            ty: RTM_GETNETCONF,
            flags: NLM_F_REQUEST | NLM_F_ACK,
            family,
            attrs: attrs.clone(),
        })
        .collect();
    let Ok(replies) = sock.transact(0, &reqs) else {
        return (None, None);
    };
    let state = |i: usize| -> Option<bool> {
        let r = replies.get(i)?;
        if r.error.is_some() {
            return None;
        }
        r.msgs
            .iter()
            .filter(|m| m.ty == RTM_NEWNETCONF)
            .find_map(|m| m.as_msg().nf_attrs().attr(NETCONFA_FORWARDING))
            .and_then(|a| a.data.get(..4)?.try_into().ok())
            .map(|b| i32::from_ne_bytes(b) != 0)
    };
    (state(0), state(1))
}
