use serde_json::json;

use super::*;
use crate::cache::snapshot_of;

fn node(name: &str, addrs: &[&str], cidrs: &[&str], mac: Option<&str>) -> (String, String) {
    let mut spec = json!({"addresses": addrs, "podCIDRs": cidrs});
    if let Some(m) = mac {
        spec["vtepMAC"] = json!(m);
    }
    (
        format!("/ferro-cni/v1/nodes/{name}"),
        json!({"apiVersion": "ferro-cni.io/v1", "kind": "Node", "metadata": {"name": name}, "spec": spec})
            .to_string(),
    )
}

fn lease(name: &str) -> (String, String) {
    (
        format!("/ferro-cni/v1/nodeleases/{name}"),
        json!({"node": name, "lease": "1", "ttlSeconds": 10, "since": "x"}).to_string(),
    )
}

fn block(cidr: &str, node: &str) -> (String, String) {
    let name = cidr.replace('/', "-");
    (
        format!("/ferro-cni/v1/ipamblocks/{name}"),
        json!({"apiVersion": "ferro-cni.io/v1", "kind": "IPAMBlock", "metadata": {"name": name},
               "spec": {"cidr": cidr, "node": node}})
        .to_string(),
    )
}

fn snap(entries: &[(String, String)]) -> Snapshot {
    snapshot_of(entries.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A cluster of a (this node), b and c, all live.
fn cluster() -> Vec<(String, String)> {
    vec![
        node("node-a", &["10.240.0.4"], &["10.244.1.0/24"], None),
        node(
            "node-b",
            &["10.240.0.5", "fd00:240::5"],
            &["10.244.2.0/24", "fd00:10:244:2::/64"],
            Some("02:00:00:00:00:0b"),
        ),
        node("node-c", &["10.240.0.6"], &["10.244.3.0/24"], None),
        lease("node-a"),
        lease("node-b"),
        lease("node-c"),
    ]
}

fn names(m: &[Member]) -> Vec<&str> {
    m.iter().map(|m| m.name.as_str()).collect()
}

#[test]
fn members_are_the_other_live_nodes() {
    let mut c = cluster();
    let (m, problems) = members(&snap(&c), "node-a");
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(names(&m), ["node-b", "node-c"]);
    assert_eq!(m[0].vtep_mac, Some([2, 0, 0, 0, 0, 0x0b]));
    assert_eq!(
        m[0].subnets,
        [net("10.244.2.0/24"), net("fd00:10:244:2::/64")]
    );
    // node C's lease is gone (expired): no member any more, though its Node stays
    c.retain(|(k, _)| k != "/ferro-cni/v1/nodeleases/node-c");
    assert_eq!(names(&members(&snap(&c), "node-a").0), ["node-b"]);
    // a lease record whose Node is not there yet: not yet a member
    c.push(lease("node-d"));
    assert_eq!(members(&snap(&c), "node-a").0.len(), 1);
    c.push(node("node-d", &["10.240.0.7"], &["10.244.4.0/24"], None));
    assert_eq!(names(&members(&snap(&c), "node-a").0), ["node-b", "node-d"]);
}

#[test]
fn ipam_blocks_join_a_nodes_subnets() {
    let mut c = cluster();
    c.push(block("10.244.128.0/26", "node-c"));
    c.push(block("10.244.128.64/26", "node-a"));
    let s = snap(&c);
    let (m, _) = members(&s, "node-a");
    assert_eq!(m[1].subnets, [net("10.244.3.0/24"), net("10.244.128.0/26")]);
    let own = own_subnets(&s, "node-a", &[net("10.244.1.0/24")]);
    assert_eq!(own.slices, [net("10.244.1.0/24")]);
    assert_eq!(own.all, [net("10.244.1.0/24"), net("10.244.128.64/26")]);
    // pooled (no slice configured, no podCIDRs in the Node): the blocks are the node's pod
    // subnets but none is a slice (no block address goes on the VXLAN device)
    c[0] = node("node-a", &["10.240.0.4"], &[], None);
    let own = own_subnets(&snap(&c), "node-a", &[]);
    assert!(own.slices.is_empty());
    assert_eq!(own.all, [net("10.244.128.64/26")]);
    // a node block (kubenet-style, written to the Node's podCIDRs) is a slice
    c[0] = node("node-a", &["10.240.0.4"], &["10.244.9.0/24"], None);
    c.push(block("10.244.9.0/24", "node-a"));
    let own = own_subnets(&snap(&c), "node-a", &[]);
    assert_eq!(own.slices, [net("10.244.9.0/24")]);
    assert_eq!(own.all, [net("10.244.9.0/24"), net("10.244.128.64/26")]);
}

#[test]
fn bad_records_are_reported_not_programmed() {
    let mut c = cluster();
    c[2] = node(
        "node-c",
        &["nope", "10.240.0.6"],
        &["10.244.3.0/24", "x", "10.244.2.0/24"],
        Some("zz"),
    );
    let (m, problems) = members(&snap(&c), "node-a");
    assert_eq!(m[1].addresses, [ip("10.240.0.6")]);
    assert_eq!(m[1].vtep_mac, None);
    assert_eq!(m[1].subnets, [net("10.244.3.0/24")]);
    assert_eq!(
        problems,
        [
            "node node-c: address \"nope\" is not an IP address",
            "node node-c: vtepMAC \"zz\" is not a MAC address",
            "node node-c: pod subnet \"x\" is not a CIDR",
            "node node-c: pod subnet 10.244.2.0/24 is also node node-b's: ignored here",
        ]
    );
}

#[test]
fn overlay_peers_follow_the_underlay_family() {
    let (m, _) = members(&snap(&cluster()), "node-a");
    let (peers, problems) = overlay_peers(&m, ip("10.240.0.4"));
    assert!(problems.is_empty());
    let b_mac = [2, 0, 0, 0, 0, 0x0b];
    assert_eq!(
        peers,
        [
            Peer {
                subnet: net("10.244.2.0/24"),
                mac: b_mac,
                underlay: ip("10.240.0.5")
            },
            Peer {
                subnet: net("fd00:10:244:2::/64"),
                mac: b_mac,
                underlay: ip("10.240.0.5")
            },
            Peer {
                subnet: net("10.244.3.0/24"),
                mac: overlay::vtep_mac_for(ip("10.240.0.6")),
                underlay: ip("10.240.0.6")
            },
        ]
    );
    let (peers6, problems6) = overlay_peers(&m, ip("fd00:240::4"));
    assert_eq!(peers6.len(), 2, "node C has no IPv6 address");
    assert_eq!(peers6[0].underlay, ip("fd00:240::5"));
    assert_eq!(
        problems6,
        ["node node-c: no IPv6 address to reach its VTEP over the underlay"]
    );
}

#[test]
fn kubenet_routes_go_via_the_nodes_address_of_their_family() {
    let (m, _) = members(&snap(&cluster()), "node-a");
    let (routes, problems) = kubenet_routes(&m);
    let shown: Vec<String> = routes
        .iter()
        .map(|r| {
            assert_eq!(r.protocol, Some(ROUTE_PROTOCOL));
            format!("{} via {}", r.dst, r.gw.unwrap())
        })
        .collect();
    assert_eq!(
        shown,
        [
            "10.244.2.0/24 via 10.240.0.5",
            "fd00:10:244:2::/64 via fd00:240::5",
            "10.244.3.0/24 via 10.240.0.6"
        ]
    );
    assert!(problems.is_empty());
    let mut c = cluster();
    c[2] = node("node-c", &["10.240.0.6"], &["fd00:10:244:3::/64"], None);
    let (_, problems) = kubenet_routes(&members(&snap(&c), "node-a").0);
    assert_eq!(
        problems,
        ["node node-c: no IPv6 address to route fd00:10:244:3::/64 via"]
    );
}

#[test]
fn the_backoff_is_bounded() {
    let mut b = Backoff::default();
    let seen: Vec<Duration> = (0..10).map(|_| b.next()).collect();
    assert_eq!(seen[0], Duration::from_millis(100));
    assert_eq!(seen[1], Duration::from_millis(200));
    assert_eq!(*seen.last().unwrap(), MAX_BACKOFF);
    b.reset();
    assert_eq!(b.next(), Duration::from_millis(100));
}
