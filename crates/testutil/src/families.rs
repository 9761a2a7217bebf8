//! The paths every model carries in each address family, checked the same way for kubenet,
//! flat and overlay: a pod reaches a pod on another node with its own address, both ways;
//! the internet sees the pod's node; the VNet's VM sees the pod itself (flat) or its node
//! (kubenet and overlay, whose pod addresses are private to the cluster).

use std::net::{IpAddr, SocketAddr};

use serde_json::Value;

use crate::netns::Netns;
use crate::probe::{tcp_source, ProbeServer};
use crate::runtime::pod_addr;
use crate::topology::{World, INTERNET, INTERNET6, PEER, PEER6};

/// The port the probe servers of [`assert_paths`] listen on.
pub const PORT: u16 = 7100;

/// A pod, the result of its ADD and the index of its node in the world.
#[derive(Debug, Clone, Copy)]
pub struct PodAt<'a> {
    /// Its namespace.
    pub ns: &'a Netns,
    /// The result of its ADD.
    pub result: &'a Value,
    /// Its node (`world.nodes[node]`).
    pub node: usize,
}

impl<'a> PodAt<'a> {
    /// A pod on node `node`.
    pub fn new(ns: &'a Netns, result: &'a Value, node: usize) -> Self {
        PodAt { ns, result, node }
    }

    /// Its address of one family.
    pub fn addr(&self, v6: bool) -> IpAddr {
        pod_addr(self.result, v6).unwrap_or_else(|| {
            panic!(
                "no IPv{} address in {}",
                if v6 { 6 } else { 4 },
                self.result
            )
        })
    }
}

/// The address of node `i` of one family.
pub fn node_addr(world: &World, i: usize, v6: bool) -> IpAddr {
    let n = &world.nodes[i];
    if v6 {
        n.ip6
    } else {
        n.ip
    }
}

/// Asserts, in each family of `families` (`false`: IPv4, `true`: IPv6), that `a` and `b`
/// (on different nodes) reach each other with their own addresses, that `a` reaches the
/// internet from its node's address, and the VNet's VM from its own address when
/// `vm_sees_pod`, else from its node's. `model` names the model in messages.
pub fn assert_paths(
    model: &str,
    world: &World,
    a: PodAt<'_>,
    b: PodAt<'_>,
    families: &[bool],
    vm_sees_pod: bool,
) {
    let server = |ns: &Netns, ip: IpAddr| ProbeServer::start(&ns.path(), SocketAddr::new(ip, PORT));
    let parse = |s: &str| -> IpAddr { s.parse().expect("a topology address") };
    for &v6 in families {
        let family = if v6 { "IPv6" } else { "IPv4" };
        let (ai, bi) = (a.addr(v6), b.addr(v6));
        let on_a = server(a.ns, ai);
        let on_b = server(b.ns, bi);
        let vm = server(&world.peer, parse(if v6 { PEER6 } else { PEER }));
        let inet = server(
            &world.internet,
            parse(if v6 { INTERNET6 } else { INTERNET }),
        );
        assert_eq!(
            tcp_source(&a.ns.path(), on_b.addr),
            Some(ai),
            "{model}, {family}: pod to pod across nodes keeps the pod's address"
        );
        assert_eq!(
            tcp_source(&b.ns.path(), on_a.addr),
            Some(bi),
            "{model}, {family}: and back"
        );
        let node = node_addr(world, a.node, v6);
        assert_eq!(
            tcp_source(&a.ns.path(), inet.addr),
            Some(node),
            "{model}, {family}: the internet sees the pod's node"
        );
        assert_eq!(
            tcp_source(&a.ns.path(), vm.addr),
            Some(if vm_sees_pod { ai } else { node }),
            "{model}, {family}: the VNet's VM sees the {}",
            if vm_sees_pod { "pod" } else { "pod's node" }
        );
    }
}
