//! Links: lookups, veth pairs, bridges, VXLAN devices, flags, MTU, bridge-port settings and
//! VLANs, deletion. `ip link ...`, `bridge vlan ...`.

use std::net::IpAddr;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_ECHO, NLM_F_EXCL};
use netlink_packet_route::link::{
    AfSpecInet, AfSpecUnspec, InetDevConf, InfoBridgePort, InfoData, InfoKind, InfoPortData,
    InfoPortKind, InfoVeth, InfoVxlan, LinkAttribute, LinkExtentMask, LinkFlags, LinkInfo,
    LinkMessage,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::{Batch, Queued, Rtnl, Tolerate};
use crate::error::NetError;
use crate::names::mac_string;
use crate::netns::Netns;

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
    /// Carrier (IFF_LOWER_UP): a bridge has it once one of its ports has.
    pub lower_up: bool,
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
    /// `IFLA_LINK`: a veth's peer ifindex (in the peer's namespace).
    pub peer: Option<u32>,
    /// `IFLA_GROUP` (0: the default group).
    pub group: u32,
    /// `IFLA_IFALIAS`.
    pub alias: Option<String>,
    /// `IFLA_NUM_TX_QUEUES`: the transmit queues the device was allocated with.
    pub tx_queues: u32,
    /// `IFLA_NUM_RX_QUEUES`: the receive queues the device was allocated with.
    pub rx_queues: u32,
}

/// `IFLA_EXT_MASK` asking the kernel to leave the counters out of a link's answer: no
/// lookup reads them, and they are the kernel's largest attributes to fill and ours to
/// parse.
fn skip_stats() -> LinkAttribute {
    LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats])
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

/// One transmit and one receive queue, asked for at creation.
///
/// Without them the kernel allocates a veth end one queue pair per possible CPU, registers
/// it, then cuts the queues in use down to one; cutting the queues of a registered device
/// waits for an expedited RCU grace period under the RTNL lock, once per end, so every
/// pod's creation paid two of them (and every other link change on the node waited
/// behind them). The queues in use are one either way; only the allocation differs, so a
/// pod's veth can no longer be given more channels later (`ethtool -L`), which nothing
/// here does.
fn one_queue() -> [LinkAttribute; 2] {
    [LinkAttribute::NumTxQueues(1), LinkAttribute::NumRxQueues(1)]
}

pub(super) fn parse_link(m: &LinkMessage) -> Link {
    let mut l = Link {
        index: m.header.index,
        up: m.header.flags.contains(LinkFlags::Up),
        lower_up: m.header.flags.contains(LinkFlags::LowerUp),
        promisc: m.header.flags.contains(LinkFlags::Promisc),
        ..Link::default()
    };
    for a in &m.attributes {
        match a {
            LinkAttribute::IfName(n) => l.name = n.clone(),
            LinkAttribute::Address(mac) => l.mac = Some(mac.clone()),
            LinkAttribute::Mtu(mtu) => l.mtu = *mtu,
            LinkAttribute::Controller(m) => l.master = Some(*m),
            LinkAttribute::Link(p) => l.peer = Some(*p),
            LinkAttribute::Group(g) => l.group = *g,
            LinkAttribute::IfAlias(a) => l.alias = Some(a.clone()),
            LinkAttribute::NumTxQueues(n) => l.tx_queues = *n,
            LinkAttribute::NumRxQueues(n) => l.rx_queues = *n,
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

/// `l` as an `RTM_NEWLINK` carrying what [`parse_link`] reads (for round trips in tests and
/// fuzzing; links are created from the specs above).
pub(super) fn link_message(l: &Link) -> LinkMessage {
    let mut m = LinkMessage::default();
    m.header.index = l.index;
    if l.up {
        m.header.flags |= LinkFlags::Up;
    }
    if l.promisc {
        m.header.flags |= LinkFlags::Promisc;
    }
    m.attributes.push(LinkAttribute::IfName(l.name.clone()));
    if let Some(mac) = &l.mac {
        m.attributes.push(LinkAttribute::Address(mac.clone()));
    }
    m.attributes.push(LinkAttribute::Mtu(l.mtu));
    if let Some(master) = l.master {
        m.attributes.push(LinkAttribute::Controller(master));
    }
    if let Some(p) = l.peer {
        m.attributes.push(LinkAttribute::Link(p));
    }
    m.attributes.push(LinkAttribute::Group(l.group));
    if let Some(a) = &l.alias {
        m.attributes.push(LinkAttribute::IfAlias(a.clone()));
    }
    let mut info = Vec::new();
    if let Some(kind) = &l.kind {
        info.push(LinkInfo::Kind(InfoKind::from(kind.as_str())));
    }
    if let Some(x) = &l.vxlan {
        let mut v = vec![
            InfoVxlan::Id(x.vni),
            InfoVxlan::Port(x.port),
            InfoVxlan::Learning(x.learning),
        ];
        match x.local {
            Some(IpAddr::V4(a)) => v.push(InfoVxlan::Local(a)),
            Some(IpAddr::V6(a)) => v.push(InfoVxlan::Local6(a)),
            None => {}
        }
        if let Some(dev) = x.dev {
            v.push(InfoVxlan::Link(dev));
        }
        info.push(LinkInfo::Data(InfoData::Vxlan(v)));
    }
    if let Some(h) = l.hairpin {
        info.push(LinkInfo::PortKind(InfoPortKind::Bridge));
        info.push(LinkInfo::PortData(InfoPortData::BridgePort(vec![
            InfoBridgePort::HairpinMode(h),
        ])));
    }
    if !info.is_empty() {
        m.attributes.push(LinkAttribute::LinkInfo(info));
    }
    m
}

impl Rtnl<'_> {
    /// The link named `name`, or `None`. `ip link show <name>`.
    pub fn link(&self, name: &str) -> Result<Option<Link>, NetError> {
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        m.attributes.push(skip_stats());
        match self.get(
            format!("get link {name} ({})", self.place),
            RouteNetlinkMessage::GetLink(m),
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
        m.attributes.push(skip_stats());
        match self.get(
            format!("get link #{index}"),
            RouteNetlinkMessage::GetLink(m),
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
        match self.default_route_link_of(false)? {
            Some(l) => Ok(Some(l)),
            None => self.default_route_link_of(true),
        }
    }

    /// The link of the default route of one family (`v6`). `ip [-6] route show default`.
    pub fn default_route_link_of(&self, v6: bool) -> Result<Option<Link>, NetError> {
        // Ask the kernel which route it would use towards a documentation address (RFC 5737,
        // RFC 3849): one lookup instead of a dump of every route of the node.
        let probe: IpAddr = if v6 {
            IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1))
        } else {
            IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1))
        };
        match self.route_get(probe)?.and_then(|r| r.oif) {
            Some(oif) => self.link_by_index(oif),
            None => Ok(None),
        }
    }

    /// Every link. `ip link show`.
    pub fn links(&self) -> Result<Vec<Link>, NetError> {
        let msgs = self.dump(
            "dump links",
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
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
    /// set), the peer created directly inside `peer_ns` and left down, each end with one
    /// transmit and one receive queue, which spares the kernel a grace period per end (see
    /// `one_queue`).
    /// `ip link add <name> [address] [mtu] [master] numtxqueues 1 numrxqueues 1 up type veth
    /// peer name <peer> numtxqueues 1 numrxqueues 1 netns <ns>`.
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
        peer.attributes.extend(one_queue());
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
        m.attributes.extend(one_queue());
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
        if let Some(l) = self.bridge_existing(&spec.name)? {
            return Ok(l);
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

    /// The bridge `name`, brought up, when it exists (`None` when it does not). Fails if
    /// `name` exists and is not a bridge. `ip link show <name>; ip link set <name> up`.
    pub fn bridge_existing(&self, name: &str) -> Result<Option<Link>, NetError> {
        self.link(name)?
            .map(|l| self.bridge_checked_up(l))
            .transpose()
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
    pub(super) fn link_set_flag(
        &self,
        index: u32,
        flag: LinkFlags,
        on: bool,
        attrs: Vec<LinkAttribute>,
        op: String,
    ) -> Result<(), NetError> {
        self.one(Self::link_flag_req(index, flag, on, attrs, op))
    }

    /// The request of [`Rtnl::link_set_flag`].
    fn link_flag_req(
        index: u32,
        flag: LinkFlags,
        on: bool,
        attrs: Vec<LinkAttribute>,
        op: String,
    ) -> Queued {
        let mut m = LinkMessage::default();
        m.header.index = index;
        m.header.flags = if on { flag } else { LinkFlags::empty() };
        m.header.change_mask = flag;
        m.attributes = attrs;
        Queued {
            op,
            msg: RouteNetlinkMessage::SetLink(m),
            flags: 0,
            tolerate: Tolerate::Nothing,
        }
    }

    /// `ip link set <index> up`; with `arp_notify`, first `sysctl
    /// net.ipv4.conf.<ifname>.arp_notify=1` (announce the addresses when the link comes up or
    /// changes MAC) in a request of its own (`IFLA_AF_SPEC`, no `/proc/sys` lookup): the
    /// kernel applies `IFLA_AF_SPEC` after the flags of the same request, and the
    /// announcement is made when the link comes up, so both in one request would announce
    /// nothing.
    pub fn link_up_notify(&self, index: u32, arp_notify: bool) -> Result<(), NetError> {
        for q in Self::up_notify_reqs(index, arp_notify) {
            self.one(q)?;
        }
        Ok(())
    }

    /// The requests of [`Rtnl::link_up_notify`], in order.
    fn up_notify_reqs(index: u32, arp_notify: bool) -> Vec<Queued> {
        let mut reqs = Vec::with_capacity(2);
        if arp_notify {
            let mut conf = InetDevConf::default();
            conf.arp_notify = 1;
            let attrs = vec![LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet(vec![
                AfSpecInet::DevConfRequest(conf),
            ])])];
            reqs.push(Self::link_flag_req(
                index,
                LinkFlags::empty(),
                false,
                attrs,
                format!("set link #{index} arp_notify 1"),
            ));
        }
        reqs.push(Self::link_flag_req(
            index,
            LinkFlags::Up,
            true,
            Vec::new(),
            format!("set link #{index} up"),
        ));
        reqs
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
        self.one(Self::bridge_port_req(index, setting, op))
    }

    /// The request of [`Rtnl::bridge_port_set`].
    fn bridge_port_req(index: u32, setting: InfoBridgePort, op: String) -> Queued {
        let mut m = LinkMessage::default();
        m.header.index = index;
        m.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::PortKind(InfoPortKind::Bridge),
            LinkInfo::PortData(InfoPortData::BridgePort(vec![setting])),
        ]));
        Queued {
            op,
            msg: RouteNetlinkMessage::NewLink(m),
            flags: 0,
            tolerate: Tolerate::Nothing,
        }
    }

    /// `ip link set <index> type bridge_slave hairpin on|off`.
    pub fn bridge_port_set_hairpin(&self, index: u32, on: bool) -> Result<(), NetError> {
        self.one(Self::hairpin_req(index, on))
    }

    /// The request of [`Rtnl::bridge_port_set_hairpin`].
    fn hairpin_req(index: u32, on: bool) -> Queued {
        Self::bridge_port_req(
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
}

impl Batch<'_, '_> {
    /// Queues [`Rtnl::link_up_notify`] (one or two requests).
    pub fn link_up_notify(&mut self, index: u32, arp_notify: bool) -> &mut Self {
        for q in Rtnl::up_notify_reqs(index, arp_notify) {
            self.push(q);
        }
        self
    }

    /// Queues [`Rtnl::bridge_port_set_hairpin`].
    pub fn bridge_port_set_hairpin(&mut self, index: u32, on: bool) -> &mut Self {
        self.push(Rtnl::hairpin_req(index, on))
    }
}
