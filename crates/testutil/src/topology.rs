//! The simulated network every datapath test builds, out of namespaces that are all removed
//! when the [`World`] is dropped. What each model must show on it:
//! [docs/testing.md](../../../docs/testing.md#the-simulated-network).
//!
//! ```text
//!   internet 203.0.113.10      ── router ── vnet bridge (VNet 10.240.0.0/16, fd00:240::/64)
//!            2001:db8:113::10                 ├── node A  10.240.0.4, fd00:240::4 (uplink eth0)
//!                                             ├── node B  10.240.0.5, fd00:240::5
//!                                             ├── node C  10.240.0.6, fd00:240::6 (when asked for)
//!                                             └── peer    10.240.0.100, fd00:240::100 (a VM, not a node)
//! ```
//! The router forwards between the VNet and the internet subnet, in both families, without
//! any NAT; it knows no route to any pod address, and the internet host none but its own
//! subnet and the router. So a pod reaching the internet is answered only if its traffic was
//! SNATed to an address of the VNet.
//!
//! Nodes start as a freshly booted node does: forwarding off in both families
//! (`net.ipv4.ip_forward=0`, `net.ipv6.conf.all.forwarding=0`), whatever the machine's own
//! settings (a new namespace inherits the IPv4 ones); a plugin turns on what its pods need.

use std::net::IpAddr;

use crate::netns::Netns;

/// The VNet.
pub const VNET: &str = "10.240.0.0/16";
/// The VNet's IPv6 prefix.
pub const VNET6: &str = "fd00:240::/64";
/// VNet prefix length.
pub const VNET_PREFIX: u8 = 16;
/// The router's VNet address (every host's default gateway on the VNet).
pub const ROUTER_VNET: &str = "10.240.0.1";
/// The router's IPv6 VNet address.
pub const ROUTER_VNET6: &str = "fd00:240::1";
/// The internet host.
pub const INTERNET: &str = "203.0.113.10";
/// The internet host's IPv6 address.
pub const INTERNET6: &str = "2001:db8:113::10";
/// The router's IPv6 address on the internet side.
const ROUTER_INET6: &str = "2001:db8:113::1";
/// The peer VM on the VNet.
pub const PEER: &str = "10.240.0.100";
/// The peer VM's IPv6 address.
pub const PEER6: &str = "fd00:240::100";

/// A simulated node: its namespace and underlay address.
#[derive(Debug)]
pub struct Node {
    /// The node's network namespace (plugins "run on the node" inside it).
    pub ns: Netns,
    /// Its VNet address.
    pub ip: IpAddr,
    /// Its IPv6 VNet address.
    pub ip6: IpAddr,
    /// Its uplink name inside the node namespace.
    pub uplink: String,
}

/// The whole world.
#[derive(Debug)]
pub struct World {
    /// The VNet switch.
    pub vnet: Netns,
    /// The router between the VNet and the internet.
    pub router: Netns,
    /// The internet host.
    pub internet: Netns,
    /// A VM on the VNet that is not a node.
    pub peer: Netns,
    /// The nodes.
    pub nodes: Vec<Node>,
    /// `Some(p)`: namespaces are named exactly `p-<label>` (see [`World::with_prefix`]).
    prefix: Option<String>,
}

/// A namespace of the world: `<prefix>-<label>` when the world has a prefix, else a test
/// namespace (`ft<pid>-<n>-<label>`).
fn namespace(prefix: Option<&str>, label: &str) -> Netns {
    match prefix {
        Some(p) => Netns::named(&format!("{p}-{label}")),
        None => Netns::new(label),
    }
}

fn wire(vnet: &Netns, other: &Netns, vnet_side: &str, inner: &str) {
    vnet.ip(&[
        "link",
        "add",
        vnet_side,
        "type",
        "veth",
        "peer",
        "name",
        inner,
        "netns",
        other.name(),
    ]);
    vnet.ip(&["link", "set", vnet_side, "master", "vnet0", "up"]);
    settled(other, inner);
    other.ip(&["link", "set", inner, "up"]);
}

/// The VNet's hosts have been up for long: their links' IPv6 duplicate address detection
/// is over. Without this, a link's link-local address stays tentative for a second or two
/// after it comes up, and the kernel sends no neighbour solicitation from it, so the first
/// packets a host forwards over it would be lost. Only the world's own links: a link a
/// plugin creates goes through DAD as on a real node. Called before the link comes up.
fn settled(ns: &Netns, ifname: &str) {
    ns.exec(&[
        "sysctl",
        "-qw",
        &format!("net.ipv6.conf.{ifname}.accept_dad=0"),
    ]);
}

impl World {
    /// The indices of the nodes holding `ip` on one of their links (a load-balancer address
    /// is held by one).
    pub fn holders(&self, ip: IpAddr) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|i| {
                self.nodes[*i]
                    .ns
                    .ip(&["addr", "show"])
                    .contains(&format!(" {ip}/"))
            })
            .collect()
    }

    /// Builds the world with `nodes` nodes (A, B, C...).
    pub fn new(nodes: usize) -> World {
        Self::build(None, nodes)
    }

    /// The same world with namespaces named exactly `<prefix>-vnet`, `-router`, `-inet`,
    /// `-peer`, `-nodea`, `-nodeb`... (the demo's, through `ferro-world`).
    pub fn with_prefix(prefix: &str, nodes: usize) -> World {
        Self::build(Some(prefix), nodes)
    }

    /// The labels of the namespaces of a world of `nodes` nodes, in the order they are made.
    pub fn labels(nodes: usize) -> Vec<String> {
        let mut l: Vec<String> = ["vnet", "router", "inet", "peer"].map(String::from).into();
        l.extend((0..nodes).map(node_label));
        l
    }

    /// Keeps every namespace when the world goes away (see [`Netns::keep`]); returns their
    /// names in the order of [`World::labels`].
    pub fn keep(self) -> Vec<String> {
        let mut names = vec![
            self.vnet.keep(),
            self.router.keep(),
            self.internet.keep(),
            self.peer.keep(),
        ];
        names.extend(self.nodes.into_iter().map(|n| n.ns.keep()));
        names
    }

    fn build(prefix: Option<&str>, nodes: usize) -> World {
        let vnet = namespace(prefix, "vnet");
        vnet.ip(&["link", "add", "vnet0", "type", "bridge"]);
        vnet.ip(&["link", "set", "vnet0", "up"]);

        let router = namespace(prefix, "router");
        wire(&vnet, &router, "v-router", "eth0");
        router.ip(&[
            "addr",
            "add",
            &format!("{ROUTER_VNET}/{VNET_PREFIX}"),
            "dev",
            "eth0",
        ]);
        router.ip(&[
            "-6",
            "addr",
            "add",
            &format!("{ROUTER_VNET6}/64"),
            "dev",
            "eth0",
            "nodad",
        ]);
        let internet = namespace(prefix, "inet");
        router.ip(&[
            "link",
            "add",
            "eth1",
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            internet.name(),
        ]);
        router.ip(&["addr", "add", "203.0.113.1/24", "dev", "eth1"]);
        settled(&router, "eth1");
        settled(&internet, "eth0");
        router.ip(&["link", "set", "eth1", "up"]);
        router.ip(&[
            "-6",
            "addr",
            "add",
            &format!("{ROUTER_INET6}/64"),
            "dev",
            "eth1",
            "nodad",
        ]);
        router.exec(&[
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
            "net.ipv6.conf.all.forwarding=1",
        ]);
        internet.ip(&["addr", "add", &format!("{INTERNET}/24"), "dev", "eth0"]);
        internet.ip(&[
            "-6",
            "addr",
            "add",
            &format!("{INTERNET6}/64"),
            "dev",
            "eth0",
            "nodad",
        ]);
        internet.ip(&["link", "set", "eth0", "up"]);
        internet.ip(&["route", "add", "default", "via", "203.0.113.1"]);
        internet.ip(&["-6", "route", "add", "default", "via", ROUTER_INET6]);

        let peer = namespace(prefix, "peer");
        wire(&vnet, &peer, "v-peer", "eth0");
        peer.ip(&[
            "addr",
            "add",
            &format!("{PEER}/{VNET_PREFIX}"),
            "dev",
            "eth0",
        ]);
        peer.ip(&[
            "-6",
            "addr",
            "add",
            &format!("{PEER6}/64"),
            "dev",
            "eth0",
            "nodad",
        ]);
        peer.ip(&["route", "add", "default", "via", ROUTER_VNET]);
        peer.ip(&["-6", "route", "add", "default", "via", ROUTER_VNET6]);

        let mut world = World {
            vnet,
            router,
            internet,
            peer,
            nodes: Vec::new(),
            prefix: prefix.map(str::to_string),
        };
        for _ in 0..nodes {
            world.add_node();
        }
        world
    }

    /// Adds one more node (10.240.0.4, .5, .6, ...).
    pub fn add_node(&mut self) -> &Node {
        let i = self.nodes.len();
        let label = node_label(i);
        let ns = namespace(self.prefix.as_deref(), &label);
        // a freshly booted node: no forwarding in either family until a plugin asks for it
        ns.exec(&[
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=0",
            "net.ipv6.conf.all.forwarding=0",
        ]);
        wire(&self.vnet, &ns, &format!("v-{label}"), "eth0");
        let ip = format!("10.240.0.{}", 4 + i);
        let ip6 = format!("fd00:240::{}", 4 + i);
        ns.ip(&["addr", "add", &format!("{ip}/{VNET_PREFIX}"), "dev", "eth0"]);
        ns.ip(&[
            "-6",
            "addr",
            "add",
            &format!("{ip6}/64"),
            "dev",
            "eth0",
            "nodad",
        ]);
        ns.ip(&["route", "add", "default", "via", ROUTER_VNET]);
        ns.ip(&["-6", "route", "add", "default", "via", ROUTER_VNET6]);
        self.nodes.push(Node {
            ns,
            ip: ip.parse().expect("node ip"),
            ip6: ip6.parse().expect("node ip6"),
            uplink: "eth0".into(),
        });
        self.nodes.last().expect("just pushed")
    }
}

/// The label of node `i`: `nodea`, `nodeb`...
fn node_label(i: usize) -> String {
    let letter = char::from(b'a' + u8::try_from(i).expect("at most 26 nodes"));
    format!("node{letter}")
}

/// `ping -c1 -W1` from `ns` to `dst`, up to three tries; true when answered.
pub fn ping(ns: &Netns, dst: &str) -> bool {
    (0..3).any(|_| ns.try_exec(&["ping", "-c1", "-W1", "-q", dst]))
}

/// Pings with a given payload size and the don't-fragment bit set (`ping -M do -s size`).
pub fn ping_df(ns: &Netns, dst: &str, size: usize) -> bool {
    let s = size.to_string();
    (0..2).any(|_| ns.try_exec(&["ping", "-c1", "-W1", "-q", "-M", "do", "-s", &s, dst]))
}
