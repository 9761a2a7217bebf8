//! First light for overlay: three nodes, a pod on each, VXLAN between them.
#![allow(clippy::unwrap_used)]

use ferro_testutil::netns::Netns;
use ferro_testutil::probe::{tcp_seen_from, ProbeServer};
use ferro_testutil::topology::{ping, ping_df, World};
use ferro_testutil::{require_root, run_plugin_in, PluginDir};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_overlay");

#[test]
fn pods_on_three_nodes_talk_over_vxlan_without_nat() {
    require_root();
    let world = World::new(3);
    let dir = PluginDir::new(&["static"]);
    let list = tempfile::NamedTempFile::new().unwrap();
    let nodes: Vec<_> = world
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| json!({"name": format!("node{i}"), "address": n.ip.to_string(), "podSubnet": format!("10.244.{}.0/24", i + 1)}))
        .collect();
    std::fs::write(list.path(), json!({"nodes": nodes}).to_string()).unwrap();
    let mut pods = Vec::new();
    for (i, node) in world.nodes.iter().enumerate() {
        let pod = Netns::new(&format!("opod{i}"));
        let conf = json!({"cniVersion":"1.0.0","name":"ovl","type":"overlay","podCIDR":"10.244.0.0/16",
            "nodeName": format!("node{i}"), "nodeList": list.path(),
            "ipam":{"type":"static","addresses":[{"address":format!("10.244.{}.5/24", i + 1)}]}});
        let cid = format!("octr{i}");
        let path = pod.path().display().to_string();
        let env = [
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", cid.as_str()),
            ("CNI_NETNS", path.as_str()),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", &dir.path_str()),
        ];
        let r = run_plugin_in(BIN, &env, &conf.to_string(), Some(&node.ns.path())).ok();
        assert_eq!(r["ips"][0]["gateway"], "169.254.1.1");
        assert_eq!(
            pod.ip_json(&["link", "show", "eth0"])[0]["mtu"],
            1450,
            "underlay MTU - 50"
        );
        pods.push((pod, conf, cid));
    }
    // the first node's ADD ran before the others existed in the kernel, but the list was
    // complete: every node has two peers
    for n in &world.nodes {
        let routes = n.ns.ip(&["route", "show", "dev", "ferro.1"]);
        assert_eq!(
            routes.lines().filter(|l| l.contains("onlink")).count(),
            2,
            "{routes}"
        );
    }
    assert!(ping(&pods[0].0, "10.244.2.5"), "pod on A reaches pod on B");
    assert!(ping(&pods[2].0, "10.244.1.5"), "pod on C reaches pod on A");
    let srv = ProbeServer::start(&pods[1].0.path(), "10.244.2.5:7100".parse().unwrap());
    let seen = tcp_seen_from(&pods[0].0.path(), srv.addr, 4 << 20).expect("tcp transfer");
    assert_eq!(
        seen,
        ("10.244.1.5".parse().unwrap(), 4 << 20),
        "source kept, all bytes through"
    );
    assert!(
        ping_df(&pods[0].0, "10.244.2.5", 1422),
        "MTU-28 with DF passes"
    );
    assert!(
        !ping_df(&pods[0].0, "10.244.2.5", 1423),
        "one byte more is refused"
    );
    assert!(
        !ping(&world.peer, "10.244.1.5"),
        "overlay pods are not VNet-routable"
    );
}
