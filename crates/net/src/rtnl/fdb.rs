//! FDB entries of VXLAN devices (remote VTEPs). `bridge fdb ...`.

use std::net::IpAddr;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_REPLACE};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::RouteType;
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::neigh::neigh_addr;
use super::Rtnl;
use crate::error::NetError;
use crate::names::mac_string;

/// An FDB entry on a VXLAN device: `bridge fdb append <mac> dev <vxlan> dst <ip> self permanent`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FdbEntry {
    /// VXLAN ifindex.
    pub ifindex: u32,
    /// Remote VTEP MAC.
    pub mac: [u8; 6],
    /// Remote underlay address.
    pub dst: IpAddr,
}

/// A neighbour destination as an address; AF_BRIDGE entries carry it as raw bytes.
fn neigh_ip(d: &NeighbourAddress) -> Option<IpAddr> {
    match d {
        NeighbourAddress::Inet(a) => Some(IpAddr::V4(*a)),
        NeighbourAddress::Inet6(a) => Some(IpAddr::V6(*a)),
        NeighbourAddress::Other(b) => match b.len() {
            4 => <[u8; 4]>::try_from(b.as_slice()).ok().map(IpAddr::from),
            16 => <[u8; 16]>::try_from(b.as_slice()).ok().map(IpAddr::from),
            _ => None,
        },
        _ => None,
    }
}

impl Rtnl<'_> {
    pub(super) fn fdb_message(f: &FdbEntry) -> NeighbourMessage {
        let mut m = NeighbourMessage::default();
        m.header.family = AddressFamily::Bridge;
        m.header.ifindex = f.ifindex;
        m.header.state = NeighbourState::Permanent;
        m.header.flags = NeighbourFlags::Own;
        m.header.kind = RouteType::Unspec;
        m.attributes
            .push(NeighbourAttribute::LinkLayerAddress(f.mac.to_vec()));
        m.attributes
            .push(NeighbourAttribute::Destination(neigh_addr(f.dst)));
        m
    }

    /// `bridge fdb replace <mac> dev <vxlan> dst <ip> self permanent`.
    pub fn fdb_replace(&self, f: &FdbEntry) -> Result<(), NetError> {
        self.ack(
            format!(
                "replace fdb {} dst {} on link #{}",
                mac_string(&f.mac),
                f.dst,
                f.ifindex
            ),
            RouteNetlinkMessage::NewNeighbour(Self::fdb_message(f)),
            NLM_F_CREATE | NLM_F_REPLACE,
        )
    }

    /// `bridge fdb del <mac> dev <vxlan> dst <ip> self`; a missing entry is success.
    pub fn fdb_del(&self, f: &FdbEntry) -> Result<(), NetError> {
        match self.ack(
            format!(
                "delete fdb {} dst {} on link #{}",
                mac_string(&f.mac),
                f.dst,
                f.ifindex
            ),
            RouteNetlinkMessage::DelNeighbour(Self::fdb_message(f)),
            0,
        ) {
            Err(e) if e.is_not_found() => Ok(()),
            other => other,
        }
    }

    /// Permanent FDB entries with a remote destination on `ifindex`. `bridge fdb show dev <vxlan>`.
    pub fn fdbs(&self, ifindex: u32) -> Result<Vec<FdbEntry>, NetError> {
        let mut q = NeighbourMessage::default();
        q.header.family = AddressFamily::Bridge;
        q.header.ifindex = ifindex;
        let msgs = self.dump("dump fdb", RouteNetlinkMessage::GetNeighbour(q))?;
        Ok(msgs
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewNeighbour(n) if n.header.ifindex == ifindex => parse_fdb(n),
                _ => None,
            })
            .collect())
    }
}

/// An FDB entry with a remote destination as the kernel reports it (`AF_BRIDGE`, a 6-byte
/// MAC, an IPv4 or IPv6 destination); `None` for anything else.
pub(super) fn parse_fdb(n: &NeighbourMessage) -> Option<FdbEntry> {
    if n.header.family != AddressFamily::Bridge {
        return None;
    }
    let mut mac = None;
    let mut dst = None;
    for a in &n.attributes {
        match a {
            NeighbourAttribute::LinkLayerAddress(l) if l.len() == 6 => {
                mac = <[u8; 6]>::try_from(&l[..]).ok()
            }
            NeighbourAttribute::Destination(d) => dst = neigh_ip(d),
            _ => {}
        }
    }
    Some(FdbEntry {
        ifindex: n.header.ifindex,
        mac: mac?,
        dst: dst?,
    })
}
