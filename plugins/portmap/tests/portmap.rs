//! portmap end to end on a kubenet node (rules M1–M8 of
//! [docs/conformance.md](../../../docs/conformance.md)): host ports reached from another host, from
//! the node on its address and on 127.0.0.1, and from the pod itself.
#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, SocketAddr};

use ferro_testutil::kubenet::{Kubenet, NET};
use ferro_testutil::probe::{tcp_source, udp_source, ProbeServer};
use ferro_testutil::topology::INTERNET;
use ferro_testutil::{require_root, run_plugin_in, workspace_bin};
use serde_json::json;

fn sock(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), port)
}

fn caps(maps: serde_json::Value) -> String {
    json!({ "portMappings": maps }).to_string()
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn host_ports_from_outside_the_node_localhost_and_hairpin() {
    require_root();
    let k = Kubenet::new(1);
    let node_ip = k.world.nodes[0].ip.to_string();
    // containerd's capitalised keys (M: both spellings)
    let c = caps(json!([{"HostPort":8080,"ContainerPort":80,"Protocol":"tcp","HostIP":""}]));
    let (a, a_ip, r) = k.pod_with(0, "pm-a", &[("CAP_ARGS", c.as_str())]);
    assert_eq!(
        r["ips"][0]["interface"], 2,
        "portmap passes the result through"
    );
    let (a2, _, _) = k.pod(0, "pm-a2");
    let _srv = ProbeServer::start(&a.path(), sock(&a_ip, 80));

    // M1: from another host, the client's own address arrives (no masquerade)
    let inet: IpAddr = INTERNET.parse().unwrap();
    assert_eq!(
        tcp_source(&k.world.internet.path(), sock(&node_ip, 8080)),
        Some(inet)
    );
    // from the node on its own address, and on 127.0.0.1 (M3: route_localnet + masquerade)
    assert!(
        tcp_source(&k.node(0).path(), sock(&node_ip, 8080)).is_some(),
        "node -> own address:8080"
    );
    let gw: IpAddr = "10.244.1.1".parse().unwrap();
    assert_eq!(
        tcp_source(&k.node(0).path(), sock("127.0.0.1", 8080)),
        Some(gw),
        "127.0.0.1:8080, masqueraded to the bridge"
    );
    assert_eq!(
        k.node(0)
            .exec(&["cat", "/proc/sys/net/ipv4/conf/cbr0/route_localnet"])
            .trim(),
        "1"
    );
    assert_eq!(
        k.node(0)
            .exec(&["cat", "/proc/sys/net/ipv4/conf/eth0/route_localnet"])
            .trim(),
        "0",
        "scoped to the bridge"
    );
    // M4: hairpin, the pod reaching its own host port, and a neighbour on the same bridge
    assert_eq!(
        tcp_source(&a.path(), sock(&node_ip, 8080)),
        Some(gw),
        "hairpin"
    );
    assert_eq!(
        tcp_source(&a2.path(), sock(&node_ip, 8080)),
        Some(gw),
        "same-bridge neighbour"
    );

    // M7: CHECK finds a missing mapping
    assert_eq!(k.rt[0].check(NET, &a, &[("CAP_ARGS", c.as_str())]).code, 0);
    k.node(0).exec(&[
        "nft",
        "delete",
        "element",
        "inet",
        "ferro_cni",
        "hostports-any",
        "{ tcp . 8080 }",
    ]);
    let bad = k.rt[0].check(NET, &a, &[("CAP_ARGS", c.as_str())]);
    assert!(
        bad.code != 0 && bad.stderr.contains("8080"),
        "{}",
        bad.stderr
    );

    // M5: DEL removes everything, also when called again and without portMappings
    k.rt[0].del_with(NET, &a, &[("CAP_ARGS", c.as_str())]);
    let table = k
        .node(0)
        .exec(&["nft", "list", "table", "inet", "ferro_cni"]);
    assert!(
        !table.contains("chain hp-") && !table.contains("8080"),
        "{table}"
    );
    let conf = json!({"cniVersion":"1.0.0","name":NET,"type":"portmap","prevResult":r});
    let env = [
        ("CNI_COMMAND", "DEL"),
        ("CNI_CONTAINERID", "whatever"),
        ("CNI_NETNS", ""),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", &k.rt[0].plugins.path_str()),
    ];
    run_plugin_in(
        workspace_bin("portmap"),
        &env,
        &conf.to_string(),
        Some(&k.node(0).path()),
    )
    .ok();
    assert_eq!(
        tcp_source(&k.world.internet.path(), sock(&node_ip, 8080)),
        None,
        "unmapped"
    );
    k.rt[0].del(NET, &a2);
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn host_ip_scoping() {
    require_root();
    let k = Kubenet::new(1);
    k.node(0)
        .ip(&["addr", "add", "10.240.0.44/16", "dev", "eth0"]);
    let c = caps(json!([{"hostPort":8081,"containerPort":80,"hostIP":"10.240.0.44"}]));
    let (b, b_ip, _) = k.pod_with(0, "pm-b", &[("CAP_ARGS", c.as_str())]);
    let _srv = ProbeServer::start(&b.path(), sock(&b_ip, 80));
    let inet = k.world.internet.path();
    assert!(
        tcp_source(&inet, sock("10.240.0.44", 8081)).is_some(),
        "reached on its hostIP"
    );
    assert_eq!(
        tcp_source(&inet, sock("10.240.0.4", 8081)),
        None,
        "not on the node's other address"
    );
    k.rt[0].del_with(NET, &b, &[("CAP_ARGS", c.as_str())]);
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn a_remapped_udp_port_is_not_blackholed_by_old_conntrack_entries() {
    require_root();
    let k = Kubenet::new(1);
    let c = caps(json!([{"hostPort":5353,"containerPort":53,"protocol":"udp"}]));
    let inet = k.world.internet.path();
    let from = Some(sock(INTERNET, 40053));
    let (a, a_ip, _) = k.pod_with(0, "udp-a", &[("CAP_ARGS", c.as_str())]);
    {
        let _srv = ProbeServer::start(&a.path(), sock(&a_ip, 53));
        assert_eq!(
            udp_source(&inet, from, sock("10.240.0.4", 5353)),
            Some(INTERNET.parse().unwrap())
        );
    }
    k.rt[0].del_with(NET, &a, &[("CAP_ARGS", c.as_str())]);
    // same client address and port, now mapped to another pod
    let (b, b_ip, _) = k.pod_with(0, "udp-b", &[("CAP_ARGS", c.as_str())]);
    let _srv = ProbeServer::start(&b.path(), sock(&b_ip, 53));
    assert_eq!(
        udp_source(&inet, from, sock("10.240.0.4", 5353)),
        Some(INTERNET.parse().unwrap()),
        "reaches the new pod"
    );
    let ct = k.node(0).exec(&["conntrack", "-L", "-p", "udp"]);
    assert!(
        !ct.contains(&format!("dst={a_ip} ")),
        "no entry towards the old pod: {ct}"
    );
    k.rt[0].del_with(NET, &b, &[("CAP_ARGS", c.as_str())]);
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn two_pods_claiming_one_host_port_last_wins_and_the_loser_leaving_keeps_it() {
    require_root();
    let k = Kubenet::new(1);
    let c = caps(json!([{"hostPort":8090,"containerPort":80}]));
    let (d, d_ip, _) = k.pod_with(0, "lw-d", &[("CAP_ARGS", c.as_str())]);
    let (e, e_ip, _) = k.pod_with(0, "lw-e", &[("CAP_ARGS", c.as_str())]);
    let _sd = ProbeServer::start(&d.path(), sock(&d_ip, 80));
    let _se = ProbeServer::start(&e.path(), sock(&e_ip, 80));
    let inet = k.world.internet.path();
    // the probe answers with the client address; tell the pods apart by who accepts: stop D
    drop(_sd);
    assert!(
        tcp_source(&inet, sock("10.240.0.4", 8090)).is_some(),
        "the last ADD (E) holds the port"
    );
    k.rt[0].del_with(NET, &d, &[("CAP_ARGS", c.as_str())]);
    assert!(
        tcp_source(&inet, sock("10.240.0.4", 8090)).is_some(),
        "D leaving does not unmap E"
    );
    k.rt[0].del_with(NET, &e, &[("CAP_ARGS", c.as_str())]);
    assert_eq!(tcp_source(&inet, sock("10.240.0.4", 8090)), None);
}
