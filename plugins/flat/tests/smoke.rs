//! First light for flat: pods with VNet addresses on two nodes, reachable from the peer.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;

use ferro_testutil::netns::Netns;
use ferro_testutil::probe::{tcp_source, ProbeServer};
use ferro_testutil::topology::{ping, World, PEER};
use ferro_testutil::{require_root, run_plugin_in, PluginDir};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_flat");

#[test]
fn pods_hold_vnet_addresses_and_the_peer_reaches_them_directly() {
    require_root();
    let world = World::new(2);
    let dir = PluginDir::new(&["static"]);
    let mut pods = Vec::new();
    for (i, ip) in ["10.240.0.20", "10.240.0.30"].iter().enumerate() {
        let node = &world.nodes[i];
        let pod = Netns::new(&format!("fpod{i}"));
        let conf = json!({"cniVersion":"1.0.0","name":"azure","type":"flat",
            "ipam":{"type":"static","addresses":[{"address":format!("{ip}/16")}]}});
        let cid = format!("ctr{i}");
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
        pods.push((pod, conf, cid));
    }
    assert!(ping(&pods[0].0, "10.240.0.4"), "pod reaches its node");
    assert!(ping(&world.peer, "10.240.0.20"), "peer reaches pod A");
    assert!(ping(&world.peer, "10.240.0.30"), "peer reaches pod B");
    assert!(
        ping(&pods[0].0, "10.240.0.30"),
        "pod A reaches pod B across nodes"
    );
    let server = ProbeServer::start(
        &world.peer.path(),
        SocketAddr::new(PEER.parse().unwrap(), 7001),
    );
    assert_eq!(
        tcp_source(&pods[0].0.path(), server.addr),
        Some("10.240.0.20".parse().unwrap()),
        "peer sees the pod's own address"
    );
    let srv_b = ProbeServer::start(&pods[1].0.path(), "10.240.0.30:7002".parse().unwrap());
    assert_eq!(
        tcp_source(&world.peer.path(), srv_b.addr),
        Some(PEER.parse().unwrap())
    );
    assert_eq!(
        tcp_source(&pods[0].0.path(), srv_b.addr),
        Some("10.240.0.20".parse().unwrap()),
        "pod to pod across nodes without NAT"
    );
    for (i, (pod, conf, cid)) in pods.iter().enumerate() {
        let path = pod.path().display().to_string();
        let mut c = conf.clone();
        c["prevResult"] = json!({"cniVersion":"1.0.0","interfaces":[{"name":"x"},{"name":"eth0","sandbox":path}],"ips":[{"address":format!("10.240.0.{}/16", if i == 0 {20} else {30}),"interface":1}]});
        let env = [
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", cid.as_str()),
            ("CNI_NETNS", path.as_str()),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", &dir.path_str()),
        ];
        run_plugin_in(BIN, &env, &c.to_string(), Some(&world.nodes[i].ns.path())).ok();
        let proxies = world.nodes[i].ns.ip(&["neigh", "show", "proxy"]);
        assert!(proxies.trim().is_empty(), "proxy entries left: {proxies}");
    }
    assert!(!ping(&world.peer, "10.240.0.20"));
}
