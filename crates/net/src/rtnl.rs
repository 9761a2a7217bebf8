//! Route netlink (links, addresses, routes, neighbours, FDB) over `rtnetlink`, driven
//! synchronously on a current-thread runtime.
//!
//! [`Kernel`] owns the runtime; [`Kernel::connect`] opens one connection per namespace. The
//! socket of a pod connection is created inside the pod's namespace and stays bound to it,
//! so no namespace switch is needed afterwards. Every operation is one request and, where it
//! says so, idempotent; each names its `ip` equivalent.

use std::net::IpAddr;

use futures::StreamExt;
use ipnet::IpNet;
use netlink_packet_core::{
    NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_ECHO, NLM_F_EXCL,
    NLM_F_REPLACE, NLM_F_REQUEST,
};
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage,
};
use netlink_packet_route::link::{
    AfSpecInet, AfSpecUnspec, InetDevConf, InfoBridgePort, InfoData, InfoKind, InfoPortData,
    InfoPortKind, InfoVeth, InfoVxlan, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::neighbour_table::{
    NeighbourTableAttribute, NeighbourTableMessage, NeighbourTableParameter,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteMessage, RouteMetric, RouteProtocol, RouteScope,
    RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::error::NetError;
use crate::names::mac_string;
use crate::netns::Netns;

/// The main routing table.
pub const MAIN_TABLE: u32 = 254;

/// The runtime that drives every netlink connection of one plugin invocation.
#[derive(Debug)]
pub struct Kernel {
    rt: tokio::runtime::Runtime,
}

/// One route-netlink connection, bound to the namespace it was opened in.
#[derive(Debug, Clone)]
pub struct Rtnl<'k> {
    rt: &'k tokio::runtime::Runtime,
    handle: rtnetlink::Handle,
    /// Where this connection lives, for error messages ("host" or the netns path).
    place: String,
}

impl Kernel {
    /// A current-thread runtime; never a multi-threaded one, since namespaces are per thread.
    pub fn new() -> Result<Kernel, NetError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .map_err(|e| NetError::io("start netlink runtime", e))?;
        Ok(Kernel { rt })
    }

    /// Opens a connection in the calling thread's namespace (`None`) or inside `ns`.
    pub fn connect(&self, ns: Option<&Netns>) -> Result<Rtnl<'_>, NetError> {
        let _ctx = self.rt.enter();
        // Strict checking lets the kernel filter dumps (by link, table, output interface),
        // so lookups stay O(1) in the number of pods instead of walking every address, route
        // and neighbour of the node.
        let opened = match ns {
            None => rtnetlink::new_connection_with_strict_check(),
            Some(ns) => ns.run(rtnetlink::new_connection_with_strict_check)?,
        };
        let (conn, handle, _) = opened.map_err(|e| NetError::io("open netlink socket", e))?;
        self.rt.spawn(conn);
        Ok(Rtnl {
            rt: &self.rt,
            handle,
            place: ns.map_or_else(|| "host".to_string(), |n| n.path().display().to_string()),
        })
    }
}

/// A link as the kernel reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Link {
    /// ifindex.
    pub index: u32,
    /// Name.
    pub name: String,
    /// Hardware address.
    pub mac: Option<Vec<u8>>,
    /// MTU.
    pub mtu: u32,
    /// Administratively up (IFF_UP).
    pub up: bool,
    /// Promiscuous (IFF_PROMISC).
    pub promisc: bool,
    /// `IFLA_INFO_KIND` (`bridge`, `veth`, `vxlan`...).
    pub kind: Option<String>,
    /// ifindex of the master (bridge).
    pub master: Option<u32>,
    /// Bridge port hairpin mode, when the link is a bridge port.
    pub hairpin: Option<bool>,
    /// VXLAN: VNI, destination port, local address, underlay ifindex, learning.
    pub vxlan: Option<VxlanInfo>,
}

impl Link {
    /// The MAC as `aa:bb:...`.
    pub fn mac_string(&self) -> Option<String> {
        self.mac.as_deref().map(mac_string)
    }
}

/// VXLAN parameters of a link.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VxlanInfo {
    /// VNI.
    pub vni: u32,
    /// UDP destination port.
    pub port: u16,
    /// Local (source) address.
    pub local: Option<IpAddr>,
    /// Underlay ifindex.
    pub dev: Option<u32>,
    /// Source-address learning.
    pub learning: bool,
}

/// The host end of a veth pair and its peer, created in one request.
#[derive(Debug, Clone, Default)]
pub struct VethSpec<'a> {
    /// Host-side name.
    pub name: String,
    /// Host-side MAC.
    pub mac: Option<[u8; 6]>,
    /// MTU of both ends.
    pub mtu: Option<u32>,
    /// Bridge to enslave the host end to.
    pub master: Option<u32>,
    /// Peer name (the container interface name when `peer_ns` is set).
    pub peer_name: String,
    /// Peer MAC.
    pub peer_mac: Option<[u8; 6]>,
    /// Namespace to create the peer in.
    pub peer_ns: Option<&'a Netns>,
}

/// A bridge to create if missing.
#[derive(Debug, Clone, Default)]
pub struct BridgeSpec {
    /// Name.
    pub name: String,
    /// MTU at creation.
    pub mtu: Option<u32>,
    /// Fixed MAC (so the bridge does not copy the lowest port MAC).
    pub mac: Option<[u8; 6]>,
    /// `vlan_filtering` on.
    pub vlan_filtering: bool,
}

/// A VXLAN device to create if missing.
#[derive(Debug, Clone, Default)]
pub struct VxlanSpec {
    /// Name.
    pub name: String,
    /// VNI.
    pub vni: u32,
    /// UDP port.
    pub port: u16,
    /// Local underlay address.
    pub local: Option<IpAddr>,
    /// Underlay ifindex.
    pub dev: Option<u32>,
    /// MTU.
    pub mtu: Option<u32>,
    /// MAC.
    pub mac: Option<[u8; 6]>,
}

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
        }
    }
}

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

/// Options of [`Rtnl::addr_add`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AddrOpts {
    /// IPv6: skip duplicate address detection (`nodad`).
    pub nodad: bool,
    /// Do not create the connected prefix route (`noprefixroute`): the L3 models route
    /// everything, even the pod's own subnet, through the node.
    pub noprefixroute: bool,
}

/// An address on a link, as reported by the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddrInfo {
    /// ifindex.
    pub index: u32,
    /// Address with prefix.
    pub addr: IpNet,
}

fn family_of(ip: IpAddr) -> AddressFamily {
    match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

fn route_addr(ip: IpAddr) -> RouteAddress {
    match ip {
        IpAddr::V4(a) => RouteAddress::Inet(a),
        IpAddr::V6(a) => RouteAddress::Inet6(a),
    }
}

fn neigh_addr(ip: IpAddr) -> NeighbourAddress {
    match ip {
        IpAddr::V4(a) => NeighbourAddress::Inet(a),
        IpAddr::V6(a) => NeighbourAddress::Inet6(a),
    }
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

fn parse_link(m: &LinkMessage) -> Link {
    let mut l = Link {
        index: m.header.index,
        up: m.header.flags.contains(LinkFlags::Up),
        promisc: m.header.flags.contains(LinkFlags::Promisc),
        ..Link::default()
    };
    for a in &m.attributes {
        match a {
            LinkAttribute::IfName(n) => l.name = n.clone(),
            LinkAttribute::Address(mac) => l.mac = Some(mac.clone()),
            LinkAttribute::Mtu(mtu) => l.mtu = *mtu,
            LinkAttribute::Controller(m) => l.master = Some(*m),
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    match i {
                        LinkInfo::Kind(k) => l.kind = Some(k.to_string()),
                        LinkInfo::PortData(InfoPortData::BridgePort(p)) => {
                            for x in p {
                                if let InfoBridgePort::HairpinMode(h) = x {
                                    l.hairpin = Some(*h);
                                }
                            }
                        }
                        LinkInfo::Data(InfoData::Vxlan(v)) => {
                            let mut x = VxlanInfo::default();
                            for a in v {
                                match a {
                                    InfoVxlan::Id(id) => x.vni = *id,
                                    InfoVxlan::Port(p) => x.port = *p,
                                    InfoVxlan::Local(a) => x.local = Some(IpAddr::V4(*a)),
                                    InfoVxlan::Local6(a) => x.local = Some(IpAddr::V6(*a)),
                                    InfoVxlan::Link(i) => x.dev = Some(*i),
                                    InfoVxlan::Learning(b) => x.learning = *b,
                                    _ => {}
                                }
                            }
                            l.vxlan = Some(x);
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    l
}

impl Rtnl<'_> {
    /// Sends one request and waits for its ACK.
    fn ack(
        &self,
        op: impl Into<String>,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<(), NetError> {
        self.ack_echo(op, msg, flags).map(drop)
    }

    /// Sends one request, waits for its ACK and returns the messages answered before it
    /// (with `NLM_F_ECHO`, the kernel's copy of the created object).
    fn ack_echo(
        &self,
        op: impl Into<String>,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>, NetError> {
        let mut req = NetlinkMessage::from(msg);
        req.header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        let mut handle = self.handle.clone();
        let op = op.into();
        self.rt.block_on(async move {
            let mut resp = handle
                .request(req)
                .map_err(|e| NetError::Other(format!("{op}: {e}")))?;
            let mut echoed = Vec::new();
            while let Some(m) = resp.next().await {
                match m.payload {
                    NetlinkPayload::Error(e) => {
                        if let Some(code) = e.code {
                            return Err(NetError::Netlink {
                                op,
                                errno: -code.get(),
                            });
                        }
                    }
                    NetlinkPayload::InnerMessage(inner) => echoed.push(inner),
                    _ => {}
                }
            }
            Ok(echoed)
        })
    }

    /// Sends a request that answers with messages (a GET or a dump).
    fn fetch(
        &self,
        op: impl Into<String>,
        msg: RouteNetlinkMessage,
        dump: bool,
    ) -> Result<Vec<RouteNetlinkMessage>, NetError> {
        let mut req = NetlinkMessage::from(msg);
        req.header.flags = NLM_F_REQUEST | if dump { NLM_F_DUMP } else { 0 };
        let mut handle = self.handle.clone();
        let op = op.into();
        self.rt.block_on(async move {
            let mut resp = handle
                .request(req)
                .map_err(|e| NetError::Other(format!("{op}: {e}")))?;
            let mut out = Vec::new();
            while let Some(m) = resp.next().await {
                match m.payload {
                    NetlinkPayload::InnerMessage(inner) => out.push(inner),
                    NetlinkPayload::Error(e) => {
                        if let Some(code) = e.code {
                            return Err(NetError::Netlink {
                                op,
                                errno: -code.get(),
                            });
                        }
                    }
                    _ => {}
                }
            }
            Ok(out)
        })
    }

    // ---------------------------------------------------------------- links

    /// The link named `name`, or `None`. `ip link show <name>`.
    pub fn link(&self, name: &str) -> Result<Option<Link>, NetError> {
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        match self.fetch(
            format!("get link {name} ({})", self.place),
            RouteNetlinkMessage::GetLink(m),
            false,
        ) {
            Ok(msgs) => Ok(msgs.iter().find_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(parse_link(l)),
                _ => None,
            })),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The link named `name`, or an error naming it.
    pub fn link_required(&self, name: &str) -> Result<Link, NetError> {
        self.link(name)?.ok_or_else(|| NetError::Netlink {
            op: format!("link {name} ({})", self.place),
            errno: crate::error::libc_errno::ENODEV,
        })
    }

    /// The link with ifindex `index`, or `None`.
    pub fn link_by_index(&self, index: u32) -> Result<Option<Link>, NetError> {
        let mut m = LinkMessage::default();
        m.header.index = index;
        match self.fetch(
            format!("get link #{index}"),
            RouteNetlinkMessage::GetLink(m),
            false,
        ) {
            Ok(msgs) => Ok(msgs.iter().find_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(parse_link(l)),
                _ => None,
            })),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The link of the default route (IPv4 first, then IPv6): a node's uplink when the
    /// configuration does not name it. `ip route show default`.
    pub fn default_route_link(&self) -> Result<Option<Link>, NetError> {
        // Ask the kernel which route it would use towards a documentation address (RFC 5737,
        // RFC 3849): one lookup instead of a dump of every route of the node.
        for probe in ["192.0.2.1", "2001:db8::1"] {
            let ip: IpAddr = probe
                .parse()
                .map_err(|_| NetError::Other(format!("bad probe address {probe}")))?;
            if let Some(oif) = self.route_get(ip)?.and_then(|r| r.oif) {
                return self.link_by_index(oif);
            }
        }
        Ok(None)
    }

    /// Every link. `ip link show`.
    pub fn links(&self) -> Result<Vec<Link>, NetError> {
        let msgs = self.fetch(
            "dump links",
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            true,
        )?;
        Ok(msgs
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(parse_link(l)),
                _ => None,
            })
            .collect())
    }

    /// Creates a veth pair in one request, the host end up (and enslaved when `master` is
    /// set), the peer created directly inside `peer_ns` and left down.
    /// `ip link add <name> [address] [mtu] [master] up type veth peer name <peer> netns <ns>`.
    /// Fails with EEXIST if either name is taken. Returns the host end as the kernel echoes
    /// it (`NLM_F_ECHO`; `None` on kernels that do not echo link creation), which saves the
    /// lookup that would otherwise follow.
    pub fn veth_add(&self, spec: &VethSpec<'_>) -> Result<Option<Link>, NetError> {
        let mut peer = LinkMessage::default();
        peer.attributes
            .push(LinkAttribute::IfName(spec.peer_name.clone()));
        if let Some(mac) = spec.peer_mac {
            peer.attributes.push(LinkAttribute::Address(mac.to_vec()));
        }
        if let Some(mtu) = spec.mtu {
            peer.attributes.push(LinkAttribute::Mtu(mtu));
        }
        if let Some(ns) = spec.peer_ns {
            peer.attributes.push(LinkAttribute::NetNsFd(ns.raw_fd()));
        }
        let mut m = LinkMessage::default();
        m.header.flags = LinkFlags::Up;
        m.header.change_mask = LinkFlags::Up;
        m.attributes.push(LinkAttribute::IfName(spec.name.clone()));
        if let Some(mac) = spec.mac {
            m.attributes.push(LinkAttribute::Address(mac.to_vec()));
        }
        if let Some(mtu) = spec.mtu {
            m.attributes.push(LinkAttribute::Mtu(mtu));
        }
        if let Some(master) = spec.master {
            m.attributes.push(LinkAttribute::Controller(master));
        }
        m.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
        ]));
        let echoed = self.ack_echo(
            format!("add veth {} (peer {})", spec.name, spec.peer_name),
            RouteNetlinkMessage::NewLink(m),
            NLM_F_CREATE | NLM_F_EXCL | NLM_F_ECHO,
        )?;
        Ok(echoed.iter().find_map(|m| match m {
            RouteNetlinkMessage::NewLink(l) => Some(parse_link(l)).filter(|l| l.name == spec.name),
            _ => None,
        }))
    }

    /// Creates the bridge if missing (race-free: create-exclusive, then read) and brings it
    /// up. Fails if `name` exists and is not a bridge.
    /// `ip link add <name> [address] [mtu] type bridge [vlan_filtering 1]; ip link set <name> up`.
    pub fn bridge_ensure(&self, spec: &BridgeSpec) -> Result<Link, NetError> {
        if let Some(l) = self.link(&spec.name)? {
            return self.bridge_checked_up(l);
        }
        let mut m = LinkMessage::default();
        m.header.flags = LinkFlags::Up;
        m.header.change_mask = LinkFlags::Up;
        m.attributes.push(LinkAttribute::IfName(spec.name.clone()));
        if let Some(mac) = spec.mac {
            m.attributes.push(LinkAttribute::Address(mac.to_vec()));
        }
        if let Some(mtu) = spec.mtu {
            m.attributes.push(LinkAttribute::Mtu(mtu));
        }
        let mut info = vec![LinkInfo::Kind(InfoKind::Bridge)];
        if spec.vlan_filtering {
            info.push(LinkInfo::Data(InfoData::Bridge(vec![
                netlink_packet_route::link::InfoBridge::VlanFiltering(true),
            ])));
        }
        m.attributes.push(LinkAttribute::LinkInfo(info));
        match self.ack(
            format!("add bridge {}", spec.name),
            RouteNetlinkMessage::NewLink(m),
            NLM_F_CREATE | NLM_F_EXCL,
        ) {
            Ok(()) => {}
            Err(e) if e.is_exists() => {} // another ADD won the race
            Err(e) => return Err(e),
        }
        let l = self.link_required(&spec.name)?;
        self.bridge_checked_up(l)
    }

    fn bridge_checked_up(&self, l: Link) -> Result<Link, NetError> {
        if l.kind.as_deref() != Some("bridge") {
            return Err(NetError::Other(format!(
                "{} already exists and is not a bridge (kind {})",
                l.name,
                l.kind.as_deref().unwrap_or("none")
            )));
        }
        if !l.up {
            self.link_set_up(l.index, true)?;
        }
        Ok(Link { up: true, ..l })
    }

    /// Creates the VXLAN device if missing, learning off, up. An existing device with other
    /// VNI, port, local address or underlay is an error naming the difference.
    /// `ip link add <name> type vxlan id <vni> dstport <port> local <ip> dev <dev> nolearning`.
    pub fn vxlan_ensure(&self, spec: &VxlanSpec) -> Result<Link, NetError> {
        if self.link(&spec.name)?.is_none() {
            let mut m = LinkMessage::default();
            m.header.flags = LinkFlags::Up;
            m.header.change_mask = LinkFlags::Up;
            m.attributes.push(LinkAttribute::IfName(spec.name.clone()));
            if let Some(mac) = spec.mac {
                m.attributes.push(LinkAttribute::Address(mac.to_vec()));
            }
            if let Some(mtu) = spec.mtu {
                m.attributes.push(LinkAttribute::Mtu(mtu));
            }
            let mut data = vec![
                InfoVxlan::Id(spec.vni),
                InfoVxlan::Port(spec.port),
                InfoVxlan::Learning(false),
            ];
            match spec.local {
                Some(IpAddr::V4(a)) => data.push(InfoVxlan::Local(a)),
                Some(IpAddr::V6(a)) => data.push(InfoVxlan::Local6(a)),
                None => {}
            }
            if let Some(dev) = spec.dev {
                data.push(InfoVxlan::Link(dev));
            }
            m.attributes.push(LinkAttribute::LinkInfo(vec![
                LinkInfo::Kind(InfoKind::Vxlan),
                LinkInfo::Data(InfoData::Vxlan(data)),
            ]));
            match self.ack(
                format!("add vxlan {}", spec.name),
                RouteNetlinkMessage::NewLink(m),
                NLM_F_CREATE | NLM_F_EXCL,
            ) {
                Ok(()) => {}
                Err(e) if e.is_exists() => {}
                Err(e) => return Err(e),
            }
        }
        let l = self.link_required(&spec.name)?;
        let Some(v) = &l.vxlan else {
            return Err(NetError::Other(format!(
                "{} already exists and is not a vxlan device",
                spec.name
            )));
        };
        let mut diffs = Vec::new();
        if v.vni != spec.vni {
            diffs.push(format!("vni {} (want {})", v.vni, spec.vni));
        }
        if v.port != spec.port {
            diffs.push(format!("dstport {} (want {})", v.port, spec.port));
        }
        if spec.local.is_some() && v.local != spec.local {
            diffs.push(format!("local {:?} (want {:?})", v.local, spec.local));
        }
        if spec.dev.is_some() && v.dev != spec.dev {
            diffs.push(format!("dev #{:?} (want #{:?})", v.dev, spec.dev));
        }
        if !diffs.is_empty() {
            return Err(NetError::Other(format!(
                "vxlan device {} exists with different settings: {}",
                spec.name,
                diffs.join(", ")
            )));
        }
        if !l.up {
            self.link_set_up(l.index, true)?;
        }
        Ok(l)
    }

    /// Sets or clears one `IFF_*` flag of a link, with `attrs` in the same request.
    fn link_set_flag(
        &self,
        index: u32,
        flag: LinkFlags,
        on: bool,
        attrs: Vec<LinkAttribute>,
        op: String,
    ) -> Result<(), NetError> {
        let mut m = LinkMessage::default();
        m.header.index = index;
        m.header.flags = if on { flag } else { LinkFlags::empty() };
        m.header.change_mask = flag;
        m.attributes = attrs;
        self.ack(op, RouteNetlinkMessage::SetLink(m), 0)
    }

    /// `ip link set <index> up`; with `arp_notify`, also `sysctl
    /// net.ipv4.conf.<ifname>.arp_notify=1` (announce the addresses when the link comes up or
    /// changes MAC) in the same request (`IFLA_AF_SPEC`), without a `/proc/sys` lookup.
    pub fn link_up_notify(&self, index: u32, arp_notify: bool) -> Result<(), NetError> {
        let mut attrs = Vec::new();
        if arp_notify {
            let mut conf = InetDevConf::default();
            conf.arp_notify = 1;
            attrs.push(LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet(vec![
                AfSpecInet::DevConfRequest(conf),
            ])]));
        }
        self.link_set_flag(
            index,
            LinkFlags::Up,
            true,
            attrs,
            format!("set link #{index} up (arp_notify {})", u8::from(arp_notify)),
        )
    }

    /// `ip link set <index> up|down`.
    pub fn link_set_up(&self, index: u32, up: bool) -> Result<(), NetError> {
        let state = if up { "up" } else { "down" };
        self.link_set_flag(
            index,
            LinkFlags::Up,
            up,
            Vec::new(),
            format!("set link #{index} {state}"),
        )
    }

    /// `ip link set <index> promisc on|off`.
    pub fn link_set_promisc(&self, index: u32, on: bool) -> Result<(), NetError> {
        self.link_set_flag(
            index,
            LinkFlags::Promisc,
            on,
            Vec::new(),
            format!("set link #{index} promisc {on}"),
        )
    }

    /// `ip link set <index> mtu <mtu>`.
    pub fn link_set_mtu(&self, index: u32, mtu: u32) -> Result<(), NetError> {
        let mut m = LinkMessage::default();
        m.header.index = index;
        m.attributes.push(LinkAttribute::Mtu(mtu));
        self.ack(
            format!("set link #{index} mtu {mtu}"),
            RouteNetlinkMessage::SetLink(m),
            0,
        )
    }

    /// `ip link set <index> type bridge_slave <setting>`.
    fn bridge_port_set(
        &self,
        index: u32,
        setting: InfoBridgePort,
        op: String,
    ) -> Result<(), NetError> {
        let mut m = LinkMessage::default();
        m.header.index = index;
        m.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::PortKind(InfoPortKind::Bridge),
            LinkInfo::PortData(InfoPortData::BridgePort(vec![setting])),
        ]));
        self.ack(op, RouteNetlinkMessage::NewLink(m), 0)
    }

    /// `ip link set <index> type bridge_slave hairpin on|off`.
    pub fn bridge_port_set_hairpin(&self, index: u32, on: bool) -> Result<(), NetError> {
        self.bridge_port_set(
            index,
            InfoBridgePort::HairpinMode(on),
            format!("set hairpin {on} on link #{index}"),
        )
    }

    /// `ip link set <index> type bridge_slave isolated on|off`.
    pub fn bridge_port_set_isolated(&self, index: u32, on: bool) -> Result<(), NetError> {
        self.bridge_port_set(
            index,
            InfoBridgePort::Isolated(on),
            format!("set isolated {on} on link #{index}"),
        )
    }

    /// `bridge vlan add vid <vid> dev <index> [pvid] [untagged] [self]` (`on_bridge` adds it to
    /// the bridge device itself).
    pub fn bridge_vlan_add(
        &self,
        index: u32,
        vid: u16,
        pvid_untagged: bool,
        on_bridge: bool,
    ) -> Result<(), NetError> {
        self.bridge_vlan(index, vid, pvid_untagged, on_bridge, true)
    }

    /// `bridge vlan del vid <vid> dev <index> [self]`; a missing VLAN is success.
    pub fn bridge_vlan_del(&self, index: u32, vid: u16, on_bridge: bool) -> Result<(), NetError> {
        match self.bridge_vlan(index, vid, false, on_bridge, false) {
            Err(e) if e.is_not_found() => Ok(()),
            other => other,
        }
    }

    fn bridge_vlan(
        &self,
        index: u32,
        vid: u16,
        pvid_untagged: bool,
        on_bridge: bool,
        add: bool,
    ) -> Result<(), NetError> {
        use netlink_packet_route::link::{
            AfSpecBridge, BridgeFlag, BridgeVlanInfo, BridgeVlanInfoFlags,
        };
        let mut m = LinkMessage::default();
        m.header.interface_family = AddressFamily::Bridge;
        m.header.index = index;
        let mut flags = BridgeVlanInfoFlags::empty();
        if pvid_untagged {
            flags |= BridgeVlanInfoFlags::Pvid | BridgeVlanInfoFlags::Untagged;
        }
        let mut spec = Vec::new();
        if on_bridge {
            spec.push(AfSpecBridge::Flags(BridgeFlag::LowerDev));
        }
        spec.push(AfSpecBridge::VlanInfo(BridgeVlanInfo { flags, vid }));
        m.attributes.push(LinkAttribute::AfSpecBridge(spec));
        let op = format!(
            "{} vlan {vid} on link #{index}",
            if add { "add" } else { "delete" }
        );
        if add {
            self.ack(op, RouteNetlinkMessage::SetLink(m), 0)
        } else {
            self.ack(op, RouteNetlinkMessage::DelLink(m), 0)
        }
    }

    /// `ip link del <index>`; `Ok(false)` when it was already gone.
    pub fn link_del(&self, index: u32) -> Result<bool, NetError> {
        let mut m = LinkMessage::default();
        m.header.index = index;
        match self.ack(
            format!("delete link #{index}"),
            RouteNetlinkMessage::DelLink(m),
            0,
        ) {
            Ok(()) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `ip link del <name>`; `Ok(false)` when it was already gone.
    pub fn link_del_name(&self, name: &str) -> Result<bool, NetError> {
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        match self.ack(
            format!("delete link {name} ({})", self.place),
            RouteNetlinkMessage::DelLink(m),
            0,
        ) {
            Ok(()) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    // ------------------------------------------------------------ addresses

    /// `ip addr add <addr> dev <index> [nodad] [noprefixroute]`; an address already present
    /// is success.
    pub fn addr_add(&self, index: u32, addr: IpNet, opts: AddrOpts) -> Result<(), NetError> {
        self.addr_add_new(index, addr, opts).map(drop)
    }

    fn addr_add_inner(&self, index: u32, addr: IpNet, opts: AddrOpts) -> Result<(), NetError> {
        let mut m = AddressMessage::default();
        m.header.family = family_of(addr.addr());
        m.header.prefix_len = addr.prefix_len();
        m.header.index = index;
        let mut flags = AddressFlags::empty();
        if opts.nodad && addr.addr().is_ipv6() {
            m.header.flags = AddressHeaderFlags::Nodad;
            flags |= AddressFlags::Nodad;
        }
        if opts.noprefixroute {
            flags |= AddressFlags::Noprefixroute;
        }
        if !flags.is_empty() {
            m.attributes.push(AddressAttribute::Flags(flags));
        }
        m.attributes.push(AddressAttribute::Local(addr.addr()));
        m.attributes.push(AddressAttribute::Address(addr.addr()));
        if let IpNet::V4(v4) = addr {
            if v4.prefix_len() < 31 {
                m.attributes
                    .push(AddressAttribute::Broadcast(v4.broadcast()));
            }
        }
        self.ack(
            format!("add address {addr} to link #{index} ({})", self.place),
            RouteNetlinkMessage::NewAddress(m),
            NLM_F_CREATE | NLM_F_EXCL,
        )
    }

    /// `ip addr add`, reporting whether the address was new (`false`: it was already there).
    pub fn addr_add_new(&self, index: u32, addr: IpNet, opts: AddrOpts) -> Result<bool, NetError> {
        match self.addr_add_inner(index, addr, opts) {
            Ok(()) => Ok(true),
            Err(e) if e.is_exists() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `ip addr del <addr> dev <index>`; a missing address is success.
    pub fn addr_del(&self, index: u32, addr: IpNet) -> Result<(), NetError> {
        let mut m = AddressMessage::default();
        m.header.family = family_of(addr.addr());
        m.header.prefix_len = addr.prefix_len();
        m.header.index = index;
        m.attributes.push(AddressAttribute::Local(addr.addr()));
        match self.ack(
            format!("delete address {addr} from link #{index}"),
            RouteNetlinkMessage::DelAddress(m),
            0,
        ) {
            Err(e) if e.is_not_found() => Ok(()),
            other => other,
        }
    }

    /// Addresses, of one link when `index` is set. `ip addr show [dev]`.
    pub fn addrs(&self, index: Option<u32>) -> Result<Vec<AddrInfo>, NetError> {
        // With strict checking the kernel returns only this link's addresses.
        let mut q = AddressMessage::default();
        q.header.index = index.unwrap_or(0);
        let msgs = self.fetch("dump addresses", RouteNetlinkMessage::GetAddress(q), true)?;
        Ok(msgs
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewAddress(a) => {
                    if index.is_some_and(|i| i != a.header.index) {
                        return None;
                    }
                    let ip = a.attributes.iter().find_map(|x| match x {
                        AddressAttribute::Local(ip) => Some(*ip),
                        _ => None,
                    });
                    let ip = ip.or_else(|| {
                        a.attributes.iter().find_map(|x| match x {
                            AddressAttribute::Address(ip) => Some(*ip),
                            _ => None,
                        })
                    })?;
                    Some(AddrInfo {
                        index: a.header.index,
                        addr: IpNet::new(ip, a.header.prefix_len).ok()?,
                    })
                }
                _ => None,
            })
            .collect())
    }

    // --------------------------------------------------------------- routes

    fn route_message(r: &RouteSpec) -> RouteMessage {
        let mut m = RouteMessage::default();
        m.header.address_family = family_of(r.dst.addr());
        m.header.destination_prefix_length = r.dst.prefix_len();
        let table = r.table.unwrap_or(MAIN_TABLE);
        m.header.table = u8::try_from(table).unwrap_or(252); // RT_TABLE_COMPAT, real id below
        m.header.protocol = RouteProtocol::Boot;
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
        let flags = NLM_F_CREATE | if replace { NLM_F_REPLACE } else { NLM_F_EXCL };
        match self.ack(
            format!("add route {} ({})", describe_route(r), self.place),
            RouteNetlinkMessage::NewRoute(Self::route_message(r)),
            flags,
        ) {
            Err(e) if !replace && e.is_exists() => Ok(()),
            other => other,
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
        match self.fetch(
            format!("get route to {dst}"),
            RouteNetlinkMessage::GetRoute(q),
            false,
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
        let msgs = self.fetch("dump routes", RouteNetlinkMessage::GetRoute(q), true)?;
        Ok(msgs
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewRoute(r) => parse_route(r)
                    .filter(|x| x.table == Some(want) && (oif.is_none() || x.oif == oif)),
                _ => None,
            })
            .collect())
    }

    // ----------------------------------------------------------- neighbours

    fn neigh_message(n: &NeighSpec) -> NeighbourMessage {
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
        self.ack(
            format!(
                "replace {}neighbour {} on link #{} ({})",
                if n.proxy { "proxy " } else { "" },
                n.ip,
                n.ifindex,
                self.place
            ),
            RouteNetlinkMessage::NewNeighbour(Self::neigh_message(n)),
            NLM_F_CREATE | NLM_F_REPLACE,
        )
    }

    /// `ip neigh del [proxy] <ip> dev <if>`; a missing entry is success.
    pub fn neigh_del(&self, n: &NeighSpec) -> Result<(), NetError> {
        match self.ack(
            format!(
                "delete {}neighbour {} on link #{}",
                if n.proxy { "proxy " } else { "" },
                n.ip,
                n.ifindex
            ),
            RouteNetlinkMessage::DelNeighbour(Self::neigh_message(n)),
            0,
        ) {
            Err(e) if e.is_not_found() => Ok(()),
            other => other,
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
        let msgs = self.fetch(
            "dump neighbours",
            RouteNetlinkMessage::GetNeighbour(q),
            true,
        )?;
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
                    let mut ip = None;
                    let mut mac = None;
                    for a in &n.attributes {
                        match a {
                            NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => {
                                ip = Some(IpAddr::V4(*a))
                            }
                            NeighbourAttribute::Destination(NeighbourAddress::Inet6(a)) => {
                                ip = Some(IpAddr::V6(*a))
                            }
                            NeighbourAttribute::LinkLayerAddress(l) if l.len() == 6 => {
                                let mut m = [0u8; 6];
                                m.copy_from_slice(l);
                                mac = Some(m);
                            }
                            _ => {}
                        }
                    }
                    Some(NeighSpec {
                        ifindex,
                        ip: ip?,
                        mac,
                        proxy,
                    })
                }
                _ => None,
            })
            .collect())
    }

    // ------------------------------------------------------------------ fdb

    fn fdb_message(f: &FdbEntry) -> NeighbourMessage {
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
        let msgs = self.fetch("dump fdb", RouteNetlinkMessage::GetNeighbour(q), true)?;
        Ok(msgs
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewNeighbour(n)
                    if n.header.ifindex == ifindex && n.header.family == AddressFamily::Bridge =>
                {
                    let mut mac = None;
                    let mut dst = None;
                    for a in &n.attributes {
                        match a {
                            NeighbourAttribute::LinkLayerAddress(l) if l.len() == 6 => {
                                let mut m = [0u8; 6];
                                m.copy_from_slice(l);
                                mac = Some(m);
                            }
                            NeighbourAttribute::Destination(d) => dst = neigh_ip(d),
                            _ => {}
                        }
                    }
                    Some(FdbEntry {
                        ifindex,
                        mac: mac?,
                        dst: dst?,
                    })
                }
                _ => None,
            })
            .collect())
    }
}

fn parse_route(r: &RouteMessage) -> Option<RouteSpec> {
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
    s
}
