//! Neighbour entries (ARP/NDP), proxy entries and the neighbour table's proxy delay.
//! `ip neigh ...`, `ip ntable ...`.

use std::net::IpAddr;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_REPLACE};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::neighbour_table::{
    NeighbourTableAttribute, NeighbourTableMessage, NeighbourTableParameter,
};
use netlink_packet_route::route::RouteType;
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::{family_of, Batch, Queued, Rtnl, Tolerate};
use crate::error::NetError;

/// A neighbour (ARP/NDP) entry, or a proxy entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeighSpec {
    /// Interface.
    pub ifindex: u32,
    /// Protocol address.
    pub ip: IpAddr,
    /// Link-layer address (absent for proxy entries).
    pub mac: Option<[u8; 6]>,
    /// Proxy entry (`ip neigh add proxy`).
    pub proxy: bool,
}

pub(super) fn neigh_addr(ip: IpAddr) -> NeighbourAddress {
    match ip {
        IpAddr::V4(a) => NeighbourAddress::Inet(a),
        IpAddr::V6(a) => NeighbourAddress::Inet6(a),
    }
}

impl Rtnl<'_> {
    pub(super) fn neigh_message(n: &NeighSpec) -> NeighbourMessage {
        let mut m = NeighbourMessage::default();
        m.header.family = family_of(n.ip);
        m.header.ifindex = n.ifindex;
        m.header.state = NeighbourState::Permanent;
        m.header.kind = RouteType::Unspec;
        if n.proxy {
            m.header.flags = NeighbourFlags::Proxy;
        }
        m.attributes
            .push(NeighbourAttribute::Destination(neigh_addr(n.ip)));
        if let Some(mac) = n.mac {
            m.attributes
                .push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
        }
        m
    }

    /// `ip neigh replace <ip> lladdr <mac> dev <if> nud permanent`, or
    /// `ip neigh replace proxy <ip> dev <if>`. Idempotent.
    pub fn neigh_replace(&self, n: &NeighSpec) -> Result<(), NetError> {
        self.one(self.neigh_replace_req(n))
    }

    /// The request of [`Rtnl::neigh_replace`].
    fn neigh_replace_req(&self, n: &NeighSpec) -> Queued {
        Queued {
            op: format!(
                "replace {}neighbour {} on link #{} ({})",
                if n.proxy { "proxy " } else { "" },
                n.ip,
                n.ifindex,
                self.place
            ),
            msg: RouteNetlinkMessage::NewNeighbour(Self::neigh_message(n)),
            flags: NLM_F_CREATE | NLM_F_REPLACE,
            tolerate: Tolerate::Nothing,
        }
    }

    /// `ip neigh del [proxy] <ip> dev <if>`; a missing entry is success.
    pub fn neigh_del(&self, n: &NeighSpec) -> Result<(), NetError> {
        self.one(Self::neigh_del_req(n))
    }

    /// The request of [`Rtnl::neigh_del`].
    fn neigh_del_req(n: &NeighSpec) -> Queued {
        Queued {
            op: format!(
                "delete {}neighbour {} on link #{}",
                if n.proxy { "proxy " } else { "" },
                n.ip,
                n.ifindex
            ),
            msg: RouteNetlinkMessage::DelNeighbour(Self::neigh_message(n)),
            flags: 0,
            tolerate: Tolerate::NotFound,
        }
    }

    /// `ip ntable change name arp_cache|ndisc_cache dev <if> proxy_delay 0`: the link answers
    /// ARP (or NDP) for its proxy entries at once. The kernel's default holds each proxied
    /// reply back by a random delay of up to 0.8 s, so the first packet to an address this
    /// node publishes would wait that long. Idempotent.
    pub fn neigh_proxy_delay_off(&self, ifindex: u32, v6: bool) -> Result<(), NetError> {
        let (family, table) = if v6 {
            (AddressFamily::Inet6, "ndisc_cache")
        } else {
            (AddressFamily::Inet, "arp_cache")
        };
        let mut m = NeighbourTableMessage::default();
        m.header.family = family;
        m.attributes = vec![
            NeighbourTableAttribute::Name(table.to_string()),
            NeighbourTableAttribute::Parms(vec![
                NeighbourTableParameter::Ifindex(ifindex),
                NeighbourTableParameter::ProxyDelay(0),
            ]),
        ];
        self.ack(
            format!("set proxy_delay 0 of {table} on link #{ifindex}"),
            RouteNetlinkMessage::SetNeighbourTable(m),
            0,
        )
    }

    /// Permanent neighbour entries (or proxy entries with `proxy`) of one link.
    /// `ip neigh show [proxy] dev <if> nud permanent`.
    pub fn neighs(&self, ifindex: u32, proxy: bool) -> Result<Vec<NeighSpec>, NetError> {
        let mut q = NeighbourMessage::default();
        if proxy {
            q.header.flags = NeighbourFlags::Proxy;
        }
        q.attributes.push(NeighbourAttribute::IfIndex(ifindex));
        let msgs = self.dump("dump neighbours", RouteNetlinkMessage::GetNeighbour(q))?;
        Ok(msgs
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewNeighbour(n) => {
                    if n.header.ifindex != ifindex
                        || !matches!(n.header.family, AddressFamily::Inet | AddressFamily::Inet6)
                        || n.header.flags.contains(NeighbourFlags::Proxy) != proxy
                        || (!proxy && n.header.state != NeighbourState::Permanent)
                    {
                        return None;
                    }
                    parse_neigh(n)
                }
                _ => None,
            })
            .collect())
    }
}

/// A neighbour or proxy entry as the kernel reports it: interface, proxy flag, IPv4 or IPv6
/// destination, a 6-byte link-layer address; `None` without a destination.
pub(super) fn parse_neigh(n: &NeighbourMessage) -> Option<NeighSpec> {
    let mut ip = None;
    let mut mac = None;
    for a in &n.attributes {
        match a {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => ip = Some(IpAddr::V4(*a)),
            NeighbourAttribute::Destination(NeighbourAddress::Inet6(a)) => {
                ip = Some(IpAddr::V6(*a))
            }
            NeighbourAttribute::LinkLayerAddress(l) if l.len() == 6 => {
                mac = <[u8; 6]>::try_from(&l[..]).ok()
            }
            _ => {}
        }
    }
    Some(NeighSpec {
        ifindex: n.header.ifindex,
        ip: ip?,
        mac,
        proxy: n.header.flags.contains(NeighbourFlags::Proxy),
    })
}

impl Batch<'_, '_> {
    /// Queues [`Rtnl::neigh_replace`].
    pub fn neigh_replace(&mut self, n: &NeighSpec) -> &mut Self {
        let q = self.rtnl.neigh_replace_req(n);
        self.push(q)
    }

    /// Queues [`Rtnl::neigh_del`].
    pub fn neigh_del(&mut self, n: &NeighSpec) -> &mut Self {
        self.push(Rtnl::neigh_del_req(n))
    }
}
