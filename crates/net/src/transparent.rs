//! Azure CNI's transparent mode, shared by the `flat` and `overlay` plugins: no bridge; a
//! veth per pod; on the node a host route to each pod address through its veth; in the pod
//! a virtual gateway (169.254.1.1, `fe80::1234:5678:9abc` for IPv6) answered by a permanent
//! neighbour entry pointing at the host veth's MAC, and no subnet route, so every packet,
//! same-subnet traffic included, goes through the node. This is the layout azure-vnet
//! installs in its transparent mode (the Linux default of Azure CNI).
//!
//! ```text
//! pod:  ip addr add 10.240.0.20/16 dev eth0 noprefixroute
//!       ip route add 169.254.1.1 dev eth0 scope link
//!       ip route add default via 169.254.1.1 dev eth0
//!       ip neigh add 169.254.1.1 lladdr <host veth MAC> dev eth0 nud permanent
//! node: ip route add 10.240.0.20/32 dev fc<hash>
//!       ip neigh add <pod IPv6 address> lladdr <pod MAC> dev fc<hash> nud permanent
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use ferro_spec::{CniResult, Dns, Interface, IpConfig, Route};

use crate::attach::{self, PodInterface};
use crate::error::NetError;
use crate::names;
use crate::netns::Netns;
use crate::rtnl::{Link, NeighSpec, RouteSpec, Rtnl, VethSpec};
use crate::sysctl;

/// Prefix of host-side veth names in transparent mode: `fc` + 13 hex digits.
pub const HOST_PREFIX: &str = "fc";

/// The virtual IPv4 gateway every pod uses.
pub const GATEWAY_V4: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 1);

/// The virtual IPv6 gateway (link-local, as azure-vnet uses).
pub const GATEWAY_V6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0x1234, 0x5678, 0x9abc);

/// One pod attachment in transparent mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransparentPod {
    /// Container id (names and MACs derive from it).
    pub container_id: String,
    /// `CNI_IFNAME`.
    pub ifname: String,
    /// Pod addresses with their subnet prefix.
    pub addrs: Vec<IpNet>,
    /// MTU of both veth ends.
    pub mtu: Option<u32>,
    /// Extra routes for the pod (always via the virtual gateway); the default route is
    /// always added.
    pub extra_routes: Vec<IpNet>,
}

impl TransparentPod {
    /// Host-side veth name.
    pub fn host_veth(&self) -> String {
        host_veth(&self.container_id, &self.ifname)
    }

    /// Host-side veth MAC (the pod's gateway MAC).
    pub fn host_mac(&self) -> [u8; 6] {
        names::mac(&["host", &self.container_id, &self.ifname])
    }

    /// Container interface MAC.
    pub fn container_mac(&self) -> [u8; 6] {
        names::mac(&["pod", &self.container_id, &self.ifname])
    }

    fn families(&self) -> (bool, bool) {
        (
            self.addrs.iter().any(|a| a.addr().is_ipv4()),
            self.addrs.iter().any(|a| a.addr().is_ipv6()),
        )
    }

    /// The routes the pod gets (also what the result reports): a default route per family
    /// via the virtual gateway, plus the extra routes.
    pub fn pod_routes(&self) -> Vec<RouteSpec> {
        let (v4, v6) = self.families();
        let mut routes = Vec::new();
        if v4 {
            routes.push(RouteSpec::new(
                IpNet::from(IpAddr::V4(GATEWAY_V4)),
                None,
                None,
            ));
        }
        let mut dsts: Vec<IpNet> = Vec::new();
        if v4 {
            dsts.push(IpNet::V4(ipnet::Ipv4Net::default()));
        }
        if v6 {
            dsts.push(IpNet::V6(ipnet::Ipv6Net::default()));
        }
        for d in self.extra_routes.iter().map(IpNet::trunc) {
            if !dsts.contains(&d) && ((d.addr().is_ipv4() && v4) || (d.addr().is_ipv6() && v6)) {
                dsts.push(d);
            }
        }
        for d in dsts {
            let gw = if d.addr().is_ipv4() {
                IpAddr::V4(GATEWAY_V4)
            } else {
                IpAddr::V6(GATEWAY_V6)
            };
            routes.push(RouteSpec::new(d, Some(gw), None));
        }
        routes
    }
}

/// Index of the container interface in a transparent-mode result (`[host veth, container]`).
pub const CONTAINER_INDEX: usize = 1;

impl TransparentPod {
    /// The CNI result: `[host veth, container]`, every address with the virtual gateway,
    /// every route via it.
    pub fn result(&self, netns: &str, dns: Dns) -> CniResult {
        let gw = |a: IpAddr| {
            if a.is_ipv4() {
                IpAddr::V4(GATEWAY_V4)
            } else {
                IpAddr::V6(GATEWAY_V6)
            }
        };
        CniResult {
            interfaces: vec![
                Interface {
                    name: self.host_veth(),
                    mac: Some(names::mac_string(&self.host_mac())),
                    mtu: self.mtu,
                    ..Interface::default()
                },
                Interface {
                    name: self.ifname.clone(),
                    mac: Some(names::mac_string(&self.container_mac())),
                    mtu: self.mtu,
                    sandbox: Some(netns.to_string()),
                    ..Interface::default()
                },
            ],
            ips: self
                .addrs
                .iter()
                .map(|a| IpConfig {
                    address: *a,
                    gateway: Some(gw(a.addr())),
                    interface: Some(CONTAINER_INDEX),
                })
                .collect(),
            routes: self
                .pod_routes()
                .iter()
                .filter(|r| r.gw.is_some())
                .map(|r| Route::new(r.dst, r.gw))
                .collect(),
            dns,
        }
    }
}

/// The host veth name of an attachment.
pub fn host_veth(container_id: &str, ifname: &str) -> String {
    names::host_ifname(HOST_PREFIX, container_id, ifname)
}

fn host_route(addr: &IpNet, oif: u32) -> RouteSpec {
    let host = IpNet::from(addr.addr());
    let mut r = RouteSpec::new(host, None, Some(oif));
    r.scope = Some(253);
    r
}

/// Creates the veth pair, configures the pod side and routes the pod's addresses to it.
/// Returns the host veth. On failure the caller deletes the host veth by name
/// ([`host_veth`]), which takes the pair and the host routes through it along.
pub fn attach(
    host: &Rtnl<'_>,
    pod: &Rtnl<'_>,
    ns: &Netns,
    p: &TransparentPod,
) -> Result<Link, NetError> {
    let host_name = p.host_veth();
    let echoed = host.veth_add(&VethSpec {
        name: host_name.clone(),
        mac: Some(p.host_mac()),
        mtu: p.mtu,
        master: None,
        peer_name: p.ifname.clone(),
        peer_mac: Some(p.container_mac()),
        peer_ns: Some(ns),
    })?;
    let hv = match echoed {
        Some(l) => l,
        None => host.link_required(&host_name)?,
    };
    let (_, v6) = p.families();
    if v6 {
        sysctl::ensure_if_present(&format!("net/ipv6/conf/{host_name}/accept_ra"), "0")?;
    }
    let host_mac = p.host_mac();
    let mut neighbours = Vec::new();
    let (v4, v6) = p.families();
    if v4 {
        neighbours.push((IpAddr::V4(GATEWAY_V4), host_mac));
    }
    if v6 {
        neighbours.push((IpAddr::V6(GATEWAY_V6), host_mac));
    }
    attach::configure(
        pod,
        ns,
        &PodInterface {
            ifname: p.ifname.clone(),
            addrs: p.addrs.clone(),
            no_prefix_routes: true,
            neighbours,
            routes: p.pod_routes(),
            enable_dad: false,
            index: hv.peer,
        },
    )?;
    for a in &p.addrs {
        host.route_add(&host_route(a, hv.index), true)?;
        if a.addr().is_ipv6() {
            // The node reaches the pod's IPv6 addresses without NDP: the kernel sends no
            // neighbour solicitation before the host veth's link-local address has passed
            // duplicate address detection, so a new pod would be unreachable from the node
            // (and every other node) for its first second or two.
            host.neigh_replace(&NeighSpec {
                ifindex: hv.index,
                ip: a.addr(),
                mac: Some(p.container_mac()),
                proxy: false,
            })?;
        }
    }
    Ok(hv)
}
