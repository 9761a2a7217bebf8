//! Routes. `ip route ...`.

use std::net::IpAddr;

use ipnet::IpNet;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteMessage, RouteMetric, RouteProtocol, RouteScope,
    RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::{family_of, Batch, Queued, Rtnl, Tolerate, MAIN_TABLE};
use crate::error::NetError;

/// A route, for adding, deleting and comparing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    /// Destination.
    pub dst: IpNet,
    /// Gateway.
    pub gw: Option<IpAddr>,
    /// Output interface.
    pub oif: Option<u32>,
    /// Table (main when `None`).
    pub table: Option<u32>,
    /// Metric.
    pub priority: Option<u32>,
    /// Scope (`RT_SCOPE_*`): 0 universe, 253 link, 254 host.
    pub scope: Option<u8>,
    /// `onlink`: the gateway is on the link even without a matching prefix.
    pub onlink: bool,
    /// Preferred source.
    pub src: Option<IpAddr>,
    /// Route MTU.
    pub mtu: Option<u32>,
    /// Advertised MSS.
    pub advmss: Option<u32>,
    /// Who made it (`RTPROT_*`, `ip route ... proto N`): `boot` when `None` on adding; set
    /// by a dump. A daemon marks its routes with its own number to find them again.
    pub protocol: Option<u8>,
}

impl RouteSpec {
    /// A route to `dst`, optionally via `gw`, optionally out of `oif`.
    pub fn new(dst: IpNet, gw: Option<IpAddr>, oif: Option<u32>) -> Self {
        RouteSpec {
            dst,
            gw,
            oif,
            table: None,
            priority: None,
            scope: None,
            onlink: false,
            src: None,
            mtu: None,
            advmss: None,
            protocol: None,
        }
    }
}

fn route_addr(ip: IpAddr) -> RouteAddress {
    match ip {
        IpAddr::V4(a) => RouteAddress::Inet(a),
        IpAddr::V6(a) => RouteAddress::Inet6(a),
    }
}

impl Rtnl<'_> {
    pub(super) fn route_message(r: &RouteSpec) -> RouteMessage {
        let mut m = RouteMessage::default();
        m.header.address_family = family_of(r.dst.addr());
        m.header.destination_prefix_length = r.dst.prefix_len();
        let table = r.table.unwrap_or(MAIN_TABLE);
        m.header.table = u8::try_from(table).unwrap_or(252); // RT_TABLE_COMPAT, real id below
        m.header.protocol = r.protocol.map_or(RouteProtocol::Boot, RouteProtocol::from);
        m.header.kind = RouteType::Unicast;
        m.header.scope = match r.scope {
            Some(s) => RouteScope::from(s),
            None if r.gw.is_none() => RouteScope::Link,
            None => RouteScope::Universe,
        };
        if r.onlink {
            m.header.flags = RouteFlags::Onlink;
        }
        if r.dst.prefix_len() > 0 {
            m.attributes
                .push(RouteAttribute::Destination(route_addr(r.dst.network())));
        }
        if let Some(gw) = r.gw {
            m.attributes.push(RouteAttribute::Gateway(route_addr(gw)));
        }
        if let Some(oif) = r.oif {
            m.attributes.push(RouteAttribute::Oif(oif));
        }
        if table > 255 {
            m.attributes.push(RouteAttribute::Table(table));
        }
        if let Some(p) = r.priority {
            m.attributes.push(RouteAttribute::Priority(p));
        }
        if let Some(src) = r.src {
            m.attributes
                .push(RouteAttribute::PrefSource(route_addr(src)));
        }
        let mut metrics = Vec::new();
        if let Some(mtu) = r.mtu {
            metrics.push(RouteMetric::Mtu(mtu));
        }
        if let Some(mss) = r.advmss {
            metrics.push(RouteMetric::Advmss(mss));
        }
        if !metrics.is_empty() {
            m.attributes.push(RouteAttribute::Metrics(metrics));
        }
        m
    }

    /// `ip route add <route>`; with `replace`, `ip route replace`. Without `replace`, an
    /// identical route already present is success.
    pub fn route_add(&self, r: &RouteSpec, replace: bool) -> Result<(), NetError> {
        self.one(self.route_add_req(r, replace))
    }

    /// The request of [`Rtnl::route_add`].
    fn route_add_req(&self, r: &RouteSpec, replace: bool) -> Queued {
        Queued {
            op: format!("add route {} ({})", describe_route(r), self.place),
            msg: RouteNetlinkMessage::NewRoute(Self::route_message(r)),
            flags: NLM_F_CREATE | if replace { NLM_F_REPLACE } else { NLM_F_EXCL },
            tolerate: if replace {
                Tolerate::Nothing
            } else {
                Tolerate::Exists
            },
        }
    }

    /// `ip route del <route>`; a missing route is success.
    pub fn route_del(&self, r: &RouteSpec) -> Result<(), NetError> {
        let mut m = Self::route_message(r);
        m.header.scope = RouteScope::NoWhere;
        match self.ack(
            format!("delete route {} ({})", describe_route(r), self.place),
            RouteNetlinkMessage::DelRoute(m),
            0,
        ) {
            Err(e) if e.is_not_found() => Ok(()),
            other => other,
        }
    }

    /// The route the kernel would use to reach `dst`. `ip route get <dst>`.
    pub fn route_get(&self, dst: IpAddr) -> Result<Option<RouteSpec>, NetError> {
        let mut q = RouteMessage::default();
        q.header.address_family = family_of(dst);
        q.header.destination_prefix_length = if dst.is_ipv4() { 32 } else { 128 };
        q.attributes
            .push(RouteAttribute::Destination(route_addr(dst)));
        match self.get(
            format!("get route to {dst}"),
            RouteNetlinkMessage::GetRoute(q),
        ) {
            Ok(msgs) => Ok(msgs.iter().find_map(|m| match m {
                RouteNetlinkMessage::NewRoute(r) => parse_route(r),
                _ => None,
            })),
            Err(e)
                if e.is_not_found() || e.errno() == Some(crate::error::libc_errno::ENETUNREACH) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Routes of one family in the main table (or `table`). `ip route show [table]`.
    pub fn routes(&self, v6: bool, table: Option<u32>) -> Result<Vec<RouteSpec>, NetError> {
        self.routes_on(v6, table, None)
    }

    /// Routes of one family in the main table (or `table`), only those out of `oif` when
    /// given; the kernel filters (strict checking), so the cost follows the answer, not the
    /// routing table. `ip route show [table T] [dev D]`.
    pub fn routes_on(
        &self,
        v6: bool,
        table: Option<u32>,
        oif: Option<u32>,
    ) -> Result<Vec<RouteSpec>, NetError> {
        let mut q = RouteMessage::default();
        q.header.address_family = if v6 {
            AddressFamily::Inet6
        } else {
            AddressFamily::Inet
        };
        let want = table.unwrap_or(MAIN_TABLE);
        q.attributes.push(RouteAttribute::Table(want));
        if let Some(o) = oif {
            q.attributes.push(RouteAttribute::Oif(o));
        }
        let msgs = self.dump("dump routes", RouteNetlinkMessage::GetRoute(q))?;
        Ok(msgs
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewRoute(r) => parse_route(r)
                    .filter(|x| x.table == Some(want) && (oif.is_none() || x.oif == oif)),
                _ => None,
            })
            .collect())
    }
}

pub(super) fn parse_route(r: &RouteMessage) -> Option<RouteSpec> {
    let v6 = r.header.address_family == AddressFamily::Inet6;
    let mut dst = None;
    let mut spec = RouteSpec::new(
        if v6 {
            "::/0".parse().ok()?
        } else {
            "0.0.0.0/0".parse().ok()?
        },
        None,
        None,
    );
    spec.table = Some(u32::from(r.header.table));
    spec.scope = Some(u8::from(r.header.scope));
    spec.onlink = r.header.flags.contains(RouteFlags::Onlink);
    spec.protocol = Some(u8::from(r.header.protocol));
    for a in &r.attributes {
        match a {
            RouteAttribute::Destination(RouteAddress::Inet(a)) => dst = Some(IpAddr::V4(*a)),
            RouteAttribute::Destination(RouteAddress::Inet6(a)) => dst = Some(IpAddr::V6(*a)),
            RouteAttribute::Gateway(RouteAddress::Inet(a)) => spec.gw = Some(IpAddr::V4(*a)),
            RouteAttribute::Gateway(RouteAddress::Inet6(a)) => spec.gw = Some(IpAddr::V6(*a)),
            RouteAttribute::PrefSource(RouteAddress::Inet(a)) => spec.src = Some(IpAddr::V4(*a)),
            RouteAttribute::PrefSource(RouteAddress::Inet6(a)) => spec.src = Some(IpAddr::V6(*a)),
            RouteAttribute::Oif(o) => spec.oif = Some(*o),
            RouteAttribute::Table(t) => spec.table = Some(*t),
            RouteAttribute::Priority(p) => spec.priority = Some(*p),
            RouteAttribute::Metrics(ms) => {
                for m in ms {
                    match m {
                        RouteMetric::Mtu(x) => spec.mtu = Some(*x),
                        RouteMetric::Advmss(x) => spec.advmss = Some(*x),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    if let Some(d) = dst {
        spec.dst = IpNet::new(d, r.header.destination_prefix_length).ok()?;
    }
    Some(spec)
}

/// `10.0.0.0/24 via 10.0.0.1 dev #3` for messages.
pub fn describe_route(r: &RouteSpec) -> String {
    let mut s = r.dst.to_string();
    if let Some(gw) = r.gw {
        s.push_str(&format!(" via {gw}"));
    }
    if let Some(oif) = r.oif {
        s.push_str(&format!(" dev #{oif}"));
    }
    if r.onlink {
        s.push_str(" onlink");
    }
    if let Some(t) = r.table.filter(|t| *t != MAIN_TABLE) {
        s.push_str(&format!(" table {t}"));
    }
    if let Some(p) = r.protocol {
        s.push_str(&format!(" proto {p}"));
    }
    s
}

impl Batch<'_, '_> {
    /// Queues [`Rtnl::route_add`].
    pub fn route_add(&mut self, r: &RouteSpec, replace: bool) -> &mut Self {
        let q = self.rtnl.route_add_req(r, replace);
        self.push(q)
    }
}
