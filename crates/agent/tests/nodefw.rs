//! The node firewall end to end (root): two kubenet nodes, a server listening on node A's
//! own port 30080 and 22, a client on the VNet's VM. With the ClusterNetwork's
//! `nodeFirewall` on, the port is closed to the VM (the other node still reaches it); a
//! NodePort Service on that port opens it (to the Service), deleting the Service closes it
//! again; the operator's extra (SSH) stays open; turning the firewall off removes the table.

#![allow(clippy::unwrap_used)] // test code: a panic is a failure

mod edge;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use edge::{until, Cluster, Model};
use ferro_testutil::netns::Netns;
use ferro_testutil::probe::{tcp_who, ProbeServer};
use serde_json::json;

fn network(firewall: &str) -> String {
    format!(
        "apiVersion: ferro-cni.io/v1
kind: ClusterNetwork
metadata: {{name: default}}
spec:
  podCIDRs: [10.244.0.0/16, fd00:10:244::/56]
  serviceCIDRs: [10.96.0.0/16, fd00:96::/112]
{firewall}"
    )
}

/// Who answers at `ip:port` from `ns` (`None`: nothing within 0.7 s).
fn who(ns: &Netns, ip: IpAddr, port: u16) -> Option<String> {
    tcp_who(
        &ns.path(),
        SocketAddr::new(ip, port),
        Duration::from_millis(700),
    )
    .ok()
    .map(|(_, l)| l)
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn node_firewall_follows_services_under_kubenet() {
    let mut c = Cluster::new(Model::Kubenet, 2, &[], 30, json!({}));
    c.pod(0, "web-1", "web", 8080);
    let a = c.world.nodes[0].ip;
    let node_a = c.node(0).path();
    let _listener =
        ProbeServer::start_labelled(&node_a, "0.0.0.0:30080".parse().unwrap(), "node-a");
    let _ssh = ProbeServer::start_labelled(&node_a, "0.0.0.0:22".parse().unwrap(), "ssh");
    let vm = &c.world.peer;
    assert_eq!(
        who(vm, a, 30080).as_deref(),
        Some("node-a"),
        "before the firewall"
    );

    c.apply(&network("  nodeFirewall: {enabled: true}\n"));
    let t = until(Duration::from_secs(5), "the port closed to the VM", || {
        who(vm, a, 30080).is_none()
    });
    eprintln!("firewall on within {t:?} (a probe costs up to 0.7 s)");
    assert_eq!(
        who(vm, a, 22).as_deref(),
        Some("ssh"),
        "the default extra: SSH"
    );
    assert_eq!(
        who(c.node(1), a, 30080).as_deref(),
        Some("node-a"),
        "another node of the cluster"
    );
    let pod = &c.pods["web-1"].ns;
    let gw: IpAddr = "10.244.1.1".parse().unwrap();
    assert!(who(pod, gw, 30080).is_some(), "a pod reaching its node");

    c.apply("apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\nspec: {type: NodePort, selector: {app: web}, ports: [{port: 80, targetPort: 8080, nodePort: 30080}]}\n");
    let t = until(Duration::from_secs(5), "the NodePort open", || {
        who(vm, a, 30080).as_deref() == Some("web-1")
    });
    eprintln!("NodePort open {t:?} after the Service's apply returned");
    let rules = c.cnictl(&["get", "nodefirewall"]);
    assert!(
        rules
            .lines()
            .any(|l| l.contains("tcp dport 30080 accept") && l.contains("NodePort of shop/web")),
        "{rules}"
    );
    assert!(rules.contains("operator extra"), "{rules}");

    c.cnictl(&["delete", "svc", "web", "-n", "shop"]);
    let t = until(Duration::from_secs(5), "the port closed again", || {
        who(vm, a, 30080).is_none()
    });
    eprintln!("closed again {t:?} after the Service's delete returned");

    c.apply(&network("  nodeFirewall: {enabled: false}\n"));
    until(Duration::from_secs(5), "the firewall off", || {
        who(vm, a, 30080).as_deref() == Some("node-a")
    });
    let tables = c
        .node(0)
        .run(|| ferro_testutil::nft::nft(&["list", "tables"]));
    assert!(!tables.contains("ferro_nodefw"), "{tables}");
}
