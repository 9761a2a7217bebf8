//! The kubenet model end to end: real packets between namespaces, NAT proven by a server that
//! reports the source address it sees. B1–B8 are rules of
//! [docs/conformance.md](../../../docs/conformance.md).
#![allow(clippy::unwrap_used)]

use ferro_testutil::kubenet as common;

use std::net::{IpAddr, SocketAddr};

use common::{gateway, Kubenet, NET};
use ferro_testutil::families::{assert_paths, PodAt};
use ferro_testutil::netns::Netns;
use ferro_testutil::probe::{tcp_source, ProbeServer};
use ferro_testutil::runtime::{pod_ip, Runtime};
use ferro_testutil::topology::{ping, INTERNET, PEER};
use ferro_testutil::{cnitool, require_root};
use serde_json::json;

fn sock(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), port)
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn pods_reach_each_other_the_gateway_other_nodes_and_the_internet() {
    require_root();
    let k = Kubenet::new(2);
    let (a1, a1_ip, r) = k.pod(0, "a1");
    let (a2, a2_ip, _) = k.pod(0, "a2");
    let (b1, b1_ip, _) = k.pod(1, "b1");
    // result layout (B7) and the real MACs
    assert_eq!(r["interfaces"][0]["name"], "cbr0");
    assert_eq!(
        r["interfaces"][2]["sandbox"],
        a1.path().display().to_string()
    );
    let mac = a1.ip_json(&["link", "show", "eth0"])[0]["address"].clone();
    assert_eq!(r["interfaces"][2]["mac"], mac);
    let br_mac = k.node(0).ip_json(&["link", "show", "cbr0"])[0]["address"].clone();
    assert_eq!(r["interfaces"][0]["mac"], br_mac);

    assert!(ping(&a1, &gateway(0)), "pod reaches its gateway");
    assert!(ping(&a1, &a2_ip), "pods on one node reach each other");
    assert!(
        ping(&a1, &b1_ip),
        "pod reaches a pod on another node through the per-node routes"
    );

    let on_a2 = ProbeServer::start(&a2.path(), sock(&a2_ip, 7000));
    let on_b1 = ProbeServer::start(&b1.path(), sock(&b1_ip, 7000));
    let on_inet = ProbeServer::start(&k.world.internet.path(), sock(INTERNET, 7000));
    let on_vm = ProbeServer::start(&k.world.peer.path(), sock(PEER, 7000));
    let on_a1 = ProbeServer::start(&a1.path(), sock(&a1_ip, 7001));
    let me: IpAddr = a1_ip.parse().unwrap();
    assert_eq!(
        tcp_source(&a1.path(), on_a2.addr),
        Some(me),
        "same node: the pod's own address"
    );
    assert_eq!(
        tcp_source(&a1.path(), on_b1.addr),
        Some(me),
        "across nodes: the pod's own address"
    );
    assert_eq!(
        tcp_source(&a1.path(), on_vm.addr),
        Some(k.world.nodes[0].ip),
        "a VM on the VNet: node A's address (kubenet NATs everything outside the pod CIDR)"
    );
    assert_eq!(
        tcp_source(&k.world.peer.path(), on_a1.addr),
        Some(PEER.parse().unwrap()),
        "the VM reaches the pod through the route table, with its own address"
    );
    assert_eq!(
        tcp_source(&a1.path(), on_inet.addr),
        Some(k.world.nodes[0].ip),
        "internet: node A's address"
    );
    assert_eq!(
        tcp_source(&b1.path(), on_inet.addr),
        Some(k.world.nodes[1].ip),
        "from B: node B's address"
    );

    // B4 MTU on the bridge and both veth ends, B5 hairpin, B8 forwarding
    assert_eq!(a1.ip_json(&["link", "show", "eth0"])[0]["mtu"], 1460);
    let host = &r["interfaces"][1]["name"].as_str().unwrap().to_string();
    let hv = k.node(0).ip_json(&["-d", "link", "show", host]);
    assert_eq!(hv[0]["mtu"], 1460);
    assert_eq!(hv[0]["linkinfo"]["info_slave_data"]["hairpin"], true);
    assert_eq!(
        k.node(0)
            .exec(&["cat", "/proc/sys/net/ipv4/ip_forward"])
            .trim(),
        "1"
    );
    // the pod announces its address when its link comes up or changes MAC
    assert_eq!(
        a1.exec(&["cat", "/proc/sys/net/ipv4/conf/eth0/arp_notify"])
            .trim(),
        "1"
    );
    // B2 the gateway on the bridge
    let addrs = k.node(0).ip(&["-4", "addr", "show", "cbr0"]);
    assert!(addrs.contains(&format!("{}/24", gateway(0))), "{addrs}");
    // B6 the masquerade state: one set element per pod, tagged, rules constant
    let elems = k.set_elements(0, &format!("pods4-{NET}"));
    assert_eq!(elems.len(), 2, "{elems:?}");
    assert!(elems.contains(&a1_ip) && elems.contains(&a2_ip));

    for (i, p) in [(0, &a1), (0, &a2), (1, &b1)] {
        k.rt[i].del(NET, p);
    }
    assert!(k.set_elements(0, &format!("pods4-{NET}")).is_empty());
    assert!(k.leases(0).is_empty() && k.leases(1).is_empty());
    assert!(k.host_veths(0).is_empty());
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn dual_stack_pods_reach_each_other_across_nodes_in_both_families() {
    require_root();
    let k = Kubenet::dual_stack(2);
    let (a, _, ra) = k.pod(0, "kds-a");
    let (b, _, rb) = k.pod(1, "kds-b");
    for i in 0..2 {
        assert_eq!(
            k.node(i)
                .exec(&["sysctl", "-n", "net.ipv6.conf.all.forwarding"])
                .trim(),
            "1",
            "node {i} forwards IPv6"
        );
        // without it the node could not reach its first pod over IPv6 for a second or
        // two: no neighbour solicitation from the bridge's tentative link-local address
        assert_eq!(
            k.node(i)
                .exec(&["sysctl", "-n", "net.ipv6.conf.cbr0.accept_dad"])
                .trim(),
            "0"
        );
    }
    assert_paths(
        "kubenet",
        &k.world,
        PodAt::new(&a, &ra, 0),
        PodAt::new(&b, &rb, 1),
        &[false, true],
        false,
    );
    k.rt[0].del(NET, &a);
    k.rt[1].del(NET, &b);
    assert!(k.leases(0).is_empty() && k.leases(1).is_empty());
    assert!(k.set_elements(0, &format!("pods6-{NET}")).is_empty());
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn del_after_the_netns_is_gone_leaves_no_link_rule_element_or_lease() {
    require_root();
    let k = Kubenet::new(1);
    // one pod deleted by the runtime (prevResult from its cache), one by a bare DEL without
    // netns and without prevResult (what ctr and 0.3.x runtimes send)
    let (p1, ip1, _) = k.pod(0, "gone1");
    let (p2, ip2, _) = k.pod(0, "gone2");
    let p2_path = p2.path().display().to_string();
    let p2_id = Runtime::container_id(&p2);
    let hostports =
        json!({"portMappings":[{"hostPort":9090,"containerPort":80,"protocol":"tcp"}]}).to_string();
    let (p3, _, _) = k.pod_with(0, "gone3", &[("CAP_ARGS", hostports.as_str())]);
    assert_eq!(k.leases(0).len(), 3);
    assert_eq!(k.set_elements(0, &format!("pods4-{NET}")).len(), 3);
    drop(p1.path());
    let (n1, n2) = (p1.name().to_string(), p2.name().to_string());
    drop(p1);
    drop(p2);
    assert!(!Netns::exists(&n1) && !Netns::exists(&n2));

    // the runtime's DEL of p1: cache holds prevResult, netns is gone
    let out = k.rt[0].cnictl(&["del", NET, &format!("/run/netns/{n1}")], &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    // a bare DEL of p2: no netns, no prevResult
    k.rt[0].bare_del(&common::conflist(0, k.data[0].path(), json!({})), &p2_id);
    let _ = p2_path;
    let elems = k.set_elements(0, &format!("pods4-{NET}"));
    assert!(
        !elems.contains(&ip1) && !elems.contains(&ip2),
        "no masquerade element left: {elems:?}"
    );
    assert_eq!(
        k.leases(0).len(),
        1,
        "only p3's lease is left: {:?}",
        k.leases(0)
    );
    assert_eq!(k.host_veths(0).len(), 1);
    // p3 with host ports: its netns goes, DEL without portMappings still unmaps
    let n3 = p3.name().to_string();
    drop(p3);
    let out = k.rt[0].cnictl(&["del", NET, &format!("/run/netns/{n3}")], &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(k.leases(0).is_empty());
    assert!(k.set_elements(0, &format!("pods4-{NET}")).is_empty());
    assert!(k.host_veths(0).is_empty());
    let table = k
        .node(0)
        .exec(&["nft", "list", "table", "inet", "ferro_cni"]);
    assert!(
        !table.contains("chain hp-") && !table.contains("9090"),
        "host port state left:\n{table}"
    );
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn fifty_parallel_adds_on_one_bridge_get_distinct_addresses() {
    require_root();
    let k = Kubenet::new(1);
    let pods: Vec<Netns> = (0..50).map(|i| Netns::new(&format!("par{i}"))).collect();
    let results = std::sync::Mutex::new(Vec::new());
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if i >= pods.len() {
                    break;
                }
                let r = k.rt[0].add(NET, &pods[i]);
                results.lock().unwrap().push(pod_ip(&r));
            });
        }
    });
    let mut ips = results.into_inner().unwrap();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 50, "50 distinct addresses");
    assert_eq!(
        k.node(0)
            .ip_json(&["link", "show", "type", "bridge"])
            .as_array()
            .unwrap()
            .len(),
        1,
        "one bridge"
    );
    assert_eq!(k.set_elements(0, &format!("pods4-{NET}")).len(), 50);
    assert!(ping(&pods[17], &gateway(0)));
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if i >= pods.len() {
                    break;
                }
                k.rt[0].del(NET, &pods[i]);
            });
        }
    });
    assert!(k.leases(0).is_empty());
    assert!(k.set_elements(0, &format!("pods4-{NET}")).is_empty());
    assert!(k.host_veths(0).is_empty());
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn cnitool_runs_the_kubenet_example_through_add_check_and_del() {
    require_root();
    let k = Kubenet::new(1);
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../conf-examples/kubenet.conflist"
    ))
    .unwrap();
    let mut list: serde_json::Value = serde_json::from_str(&example).unwrap();
    // the only change: a private dataDir instead of /var/lib/cni/networks
    list["plugins"][0]["ipam"]["dataDir"] = json!(k.data[0].path());
    let pod = Netns::new("cnitool");
    let caps = r#"{"portMappings":[{"hostPort":8088,"containerPort":80,"protocol":"tcp"}]}"#;
    let out = cnitool::RoundTrip {
        node: k.node(0),
        plugin_dir: k.rt[0].plugins.path(),
        list: &list,
        network: "kubenet",
        pod: &pod,
        cap_args: Some(caps),
        after_add: "$NODE nft list table inet ferro_cni | grep -q 8088",
        after_del: "! $NODE nft list table inet ferro_cni | grep -q 8088",
    }
    .run();
    assert!(
        out.contains("\"cniVersion\": \"1.0.0\"") && out.contains("inet 10.244.1."),
        "{out}"
    );
    assert!(k.leases(0).is_empty());
}
