//! The node firewall end to end (root), under kubenet, flat and overlay: two nodes, a server
//! listening on node A's own port 30080 and 22, a client on the VNet's VM. With the
//! ClusterNetwork's `nodeFirewall` on, the port is closed to the VM (the other node and the
//! pods still reach it); a NodePort Service on that port opens it (to the Service), deleting
//! the Service closes it again; a pod's hostPort is open while the Pod publishes it (and
//! only then: its portmap DNAT alone does not open it); a LoadBalancer address is open on
//! the node announcing it; the operator's extra (SSH) stays open; turning the firewall off
//! removes the table. Under flat, where pods take VNet addresses, the VM (an address of the
//! pod CIDR that is no pod) stays outside.

#![allow(clippy::unwrap_used)] // test code: a panic is a failure

mod edge;

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use edge::{until, Cluster, Model};
use ferro_testutil::probe::{tcp_who, ProbeServer};
use serde_json::json;

/// The ClusterNetwork of `model` with `firewall` (YAML lines under `spec`); kubenet and
/// overlay get a load-balancer pool on the VNet (under flat the VNet is the pod CIDR).
fn network(model: Model, firewall: &str) -> String {
    let (pods, services, pool) = match model {
        Model::Kubenet => (
            "[10.244.0.0/16, fd00:10:244::/56]",
            "[10.96.0.0/16, fd00:96::/112]",
            true,
        ),
        Model::Flat => ("[10.240.0.0/16]", "[10.96.0.0/16]", false),
        Model::Overlay => ("[10.244.0.0/16]", "[10.96.0.0/16]", true),
    };
    let pool = if pool {
        "  loadBalancerPools: [{name: vnet, cidrs: [10.240.1.0/28]}]\n"
    } else {
        ""
    };
    format!(
        "apiVersion: ferro-cni.io/v1
kind: ClusterNetwork
metadata: {{name: default}}
spec:
  podCIDRs: {pods}
  serviceCIDRs: {services}
{pool}{firewall}"
    )
}

/// Who answers at `ip:port` from `ns` (`None`: nothing within 0.7 s).
fn who(ns: &Path, ip: IpAddr, port: u16) -> Option<String> {
    tcp_who(ns, SocketAddr::new(ip, port), Duration::from_millis(700))
        .ok()
        .map(|(_, l)| l)
}

fn firewall_follows_what_is_published(model: Model) {
    let mut c = Cluster::new(model, 2, &[], 30, json!({}));
    c.pod(0, "web-1", "web", 8080);
    // node B runs a pod too (a node without any has no overlay device yet, so under overlay
    // it could not forward load-balancer traffic to web-1 on node A)
    c.pod(1, "idle", "idle", 0);
    let a = c.world.nodes[0].ip;
    let node_a = c.node(0).path();
    let _listener =
        ProbeServer::start_labelled(&node_a, "0.0.0.0:30080".parse().unwrap(), "node-a");
    let _ssh = ProbeServer::start_labelled(&node_a, "0.0.0.0:22".parse().unwrap(), "ssh");
    let vm = &c.world.peer.path();
    assert_eq!(
        who(vm, a, 30080).as_deref(),
        Some("node-a"),
        "before the firewall"
    );

    c.apply(&network(model, "  nodeFirewall: {enabled: true}\n"));
    let t = until(Duration::from_secs(5), "the port closed to the VM", || {
        who(vm, a, 30080).is_none()
    });
    eprintln!("{model:?}: firewall on within {t:?} (a probe costs up to 0.7 s)");
    assert_eq!(
        who(vm, a, 22).as_deref(),
        Some("ssh"),
        "the default extra: SSH"
    );
    assert_eq!(
        who(&c.node(1).path(), a, 30080).as_deref(),
        Some("node-a"),
        "another node of the cluster"
    );
    let pod = &c.pods["web-1"].ns.path();
    assert_eq!(
        who(pod, a, 30080).as_deref(),
        Some("node-a"),
        "a pod reaching its node"
    );

    // a NodePort Service opens its port, its deletion closes it
    c.apply("apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\nspec: {type: NodePort, selector: {app: web}, ports: [{port: 80, targetPort: 8080, nodePort: 30080}]}\n");
    let t = until(Duration::from_secs(5), "the NodePort open", || {
        who(vm, a, 30080).as_deref() == Some("web-1")
    });
    eprintln!("{model:?}: NodePort open {t:?} after the Service's apply returned");
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
    eprintln!("{model:?}: closed again {t:?} after the Service's delete returned");

    // a hostPort: open while the Pod publishes it
    assert_eq!(who(vm, a, 31080), None, "the hostPort before its pod");
    c.pod_with(0, "hp", "hp", 8081, Some(31080));
    let t = until(Duration::from_secs(5), "the hostPort open", || {
        who(vm, a, 31080).as_deref() == Some("hp")
    });
    eprintln!("{model:?}: hostPort open {t:?} after its Pod was in the store");
    assert!(
        c.cnictl(&["get", "nodefirewall"])
            .contains("hostPort of pod shop/hp"),
        "the rule's reason"
    );
    // the same pod's spec without the hostPort: portmap's DNAT is still there (node B
    // reaches it) but the firewall no longer lets the VM in
    c.apply("apiVersion: v1\nkind: Pod\nmetadata: {name: hp, namespace: shop, labels: {app: hp}}\nspec: {containers: [{name: c, image: x, ports: [{name: http, containerPort: 8081}]}]}\n");
    let t = until(Duration::from_secs(5), "the hostPort closed", || {
        who(vm, a, 31080).is_none()
    });
    eprintln!("{model:?}: hostPort closed {t:?} after the Pod stopped publishing it");
    assert_eq!(
        who(&c.node(1).path(), a, 31080).as_deref(),
        Some("hp"),
        "portmap's DNAT from another node"
    );
    c.delete_pod("hp");
    c.cnictl(&["delete", "pod", "hp", "-n", "shop"]);

    // a load-balancer address: open on the node announcing it
    if model != Model::Flat {
        c.apply("apiVersion: v1\nkind: Service\nmetadata: {name: web-lb, namespace: shop}\nspec: {type: LoadBalancer, selector: {app: web}, ports: [{port: 80, targetPort: 8080}]}\n");
        let mut lb: Option<IpAddr> = None;
        until(Duration::from_secs(10), "a load-balancer address", || {
            lb = c.svc("web-lb")["status"]["loadBalancer"]["ingress"][0]["ip"]
                .as_str()
                .and_then(|s| s.parse().ok());
            lb.is_some_and(|ip| c.world.holders(ip).len() == 1)
        });
        let lb = lb.unwrap();
        let holder = c.world.holders(lb)[0];
        let t0 = std::time::Instant::now();
        while who(vm, lb, 80).as_deref() != Some("web-1") {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "{lb}:80 (held by node {holder}) not answering the VM; the firewalls:\n{}\n{}",
                c.agents[0].cnictl(&["get", "nodefirewall"], None).stdout,
                c.agents[1].cnictl(&["get", "nodefirewall"], None).stdout
            );
        }
        let t = t0.elapsed();
        eprintln!(
            "{model:?}: {lb}:80 (announced by node {holder}) answering the VM {t:?} after it was announced"
        );
        let out = c.agents[holder].cnictl(&["get", "nodefirewall"], None);
        assert!(
            out.stdout
                .lines()
                .any(|l| l.contains(&format!("daddr {lb} tcp dport 80 accept"))
                    && l.contains("announced by this node")),
            "{}",
            out.stdout
        );
        let other = c.agents[1 - holder].cnictl(&["get", "nodefirewall"], None);
        assert!(
            !other.stdout.contains(&format!("daddr {lb} ")),
            "{}",
            other.stdout
        );
        c.cnictl(&["delete", "svc", "web-lb", "-n", "shop"]);
        until(Duration::from_secs(5), "the load balancer gone", || {
            who(vm, lb, 80).is_none()
        });
    }

    c.apply(&network(model, "  nodeFirewall: {enabled: false}\n"));
    until(Duration::from_secs(5), "the firewall off", || {
        who(vm, a, 30080).as_deref() == Some("node-a")
    });
    let tables = c
        .node(0)
        .run(|| ferro_testutil::nft::nft(&["list", "tables"]));
    assert!(!tables.contains("ferro_nodefw"), "{tables}");
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn node_firewall_follows_what_is_published_under_kubenet() {
    firewall_follows_what_is_published(Model::Kubenet);
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn node_firewall_follows_what_is_published_under_flat() {
    firewall_follows_what_is_published(Model::Flat);
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn node_firewall_follows_what_is_published_under_overlay() {
    firewall_follows_what_is_published(Model::Overlay);
}
