//! The overlay in every address family: IPv6-only pods across freshly booted nodes (both
//! forwarding sysctls at 0).
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;

use ferro_testutil::netns::Netns;
use ferro_testutil::probe::{tcp_source, ProbeServer};
use ferro_testutil::require_root;
use ferro_testutil::runtime::Runtime;
use ferro_testutil::topology::World;
use serde_json::{json, Value};

const NET: &str = "ovl6";

fn v6_of(r: &Value) -> String {
    r["ips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["address"].as_str().unwrap())
        .find(|a| a.contains(':'))
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn ipv6_pods_reach_each_other_across_freshly_booted_nodes() {
    require_root();
    let world = World::new(2);
    let list = tempfile::NamedTempFile::new().unwrap();
    let nodes: Vec<Value> = world
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| json!({"name": format!("node{i}"), "address": n.ip.to_string(), "podSubnet": format!("fd00:10:244:{}::/64", i + 1)}))
        .collect();
    std::fs::write(list.path(), json!({"nodes": nodes}).to_string()).unwrap();
    let mut rt = Vec::new();
    let mut data = Vec::new();
    for (i, n) in world.nodes.iter().enumerate() {
        let fwd = n.ns.exec(&["sysctl", "-n", "net.ipv6.conf.all.forwarding"]);
        assert_eq!(fwd.trim(), "0", "nodes boot with IPv6 forwarding off");
        let d = tempfile::tempdir().unwrap();
        let r = Runtime::new(&n.ns, &["overlay", "host-local"]);
        r.write_conflist(
            "10-ovl6",
            &json!({"cniVersion":"1.1.0","name":NET,"plugins":[{"type":"overlay","podCIDR":"fd00:10:244::/56",
                "nodeName":format!("node{i}"),"nodeList":list.path(),
                "ipam":{"type":"host-local","dataDir":d.path(),"ranges":[[{"subnet":format!("fd00:10:244:{}::/64", i + 1)}]]}}]}),
        );
        rt.push(r);
        data.push(d);
    }
    let a = Netns::new("ov6-a");
    let b = Netns::new("ov6-b");
    let a_ip = v6_of(&rt[0].add(NET, &a));
    let b_ip = v6_of(&rt[1].add(NET, &b));
    assert!(a_ip.starts_with("fd00:10:244:1:"), "{a_ip}");
    for (node, ip) in [(&world.nodes[0].ns, &a_ip), (&world.nodes[1].ns, &b_ip)] {
        assert_eq!(
            node.exec(&["sysctl", "-n", "net.ipv6.conf.all.forwarding"])
                .trim(),
            "1",
            "the plugin turned IPv6 forwarding on"
        );
        // the node needs no NDP to reach its pod: it would wait for the host veth's
        // link-local address to pass DAD (a second or two) before asking
        let neigh = node.ip(&["-6", "neigh", "show", ip]);
        assert!(neigh.contains("PERMANENT"), "{neigh}");
    }
    let on_b = ProbeServer::start(&b.path(), SocketAddr::new(b_ip.parse().unwrap(), 7000));
    assert_eq!(
        tcp_source(&a.path(), on_b.addr),
        Some(a_ip.parse().unwrap()),
        "pod A reaches pod B on the other node with its own IPv6 address"
    );
    rt[0].del(NET, &a);
    rt[1].del(NET, &b);
}
