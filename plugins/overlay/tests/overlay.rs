//! The overlay model end to end: three nodes, pods in the pod CIDR on each, VXLAN
//! between them, SNAT only when leaving the cluster.
#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, SocketAddr};

use ferro_testutil::netns::Netns;
use ferro_testutil::probe::{tcp_seen_from, tcp_source, udp_source, ArrivalCounter, ProbeServer};
use ferro_testutil::runtime::{pod_ip, Runtime};
use ferro_testutil::topology::{ping, ping_df, World, INTERNET, PEER};
use ferro_testutil::{cnitool, require_root};
use serde_json::{json, Value};

const NET: &str = "ovl";

struct Cluster {
    world: World,
    rt: Vec<Runtime>,
    data: Vec<tempfile::TempDir>,
    list: tempfile::NamedTempFile,
}

fn plugin(i: usize, data: &std::path::Path, list: &std::path::Path) -> Value {
    json!({"type":"overlay","podCIDR":"10.244.0.0/16","nodeName":format!("node{i}"),"nodeList":list,
        "ipam":{"type":"host-local","dataDir":data,"ranges":[[{"subnet":format!("10.244.{}.0/24", i + 1)}]]}})
}

impl Cluster {
    fn new(nodes: usize) -> Cluster {
        let world = World::new(nodes);
        let list = tempfile::NamedTempFile::new().unwrap();
        let leases: Vec<Value> = world
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| json!({"name": format!("node{i}"), "address": n.ip.to_string(), "podSubnet": format!("10.244.{}.0/24", i + 1)}))
            .collect();
        std::fs::write(list.path(), json!({"nodes": leases}).to_string()).unwrap();
        let mut rt = Vec::new();
        let mut data = Vec::new();
        for (i, n) in world.nodes.iter().enumerate() {
            let d = tempfile::tempdir().unwrap();
            let r = Runtime::new(&n.ns, &["overlay", "host-local", "portmap"]);
            r.write_conflist(
                "10-ovl",
                &json!({"cniVersion":"1.1.0","name":NET,"plugins":[plugin(i, d.path(), list.path()),
                {"type":"portmap","capabilities":{"portMappings":true}}]}),
            );
            rt.push(r);
            data.push(d);
        }
        Cluster {
            world,
            rt,
            data,
            list,
        }
    }

    fn pod(&self, i: usize, label: &str) -> (Netns, String) {
        let pod = Netns::new(label);
        let r = self.rt[i].add(NET, &pod);
        let ip = pod_ip(&r);
        (pod, ip)
    }

    fn leases(&self, i: usize) -> usize {
        std::fs::read_dir(self.data[i].path().join(NET))
            .map(|rd| {
                rd.filter(|e| {
                    e.as_ref()
                        .unwrap()
                        .file_name()
                        .to_string_lossy()
                        .starts_with("10.")
                })
                .count()
            })
            .unwrap_or(0)
    }
}

fn sock(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), port)
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn pods_talk_across_nodes_without_nat_and_leave_the_cluster_as_their_node() {
    require_root();
    let c = Cluster::new(3);
    let (a, a_ip) = c.pod(0, "ov-a");
    let (b, b_ip) = c.pod(1, "ov-b");
    let (cc, c_ip) = c.pod(2, "ov-c");
    for ip in [&a_ip, &b_ip, &c_ip] {
        assert!(
            ip.starts_with("10.244."),
            "pod CIDR addresses only, never VNet ones: {ip}"
        );
    }
    let me: IpAddr = a_ip.parse().unwrap();
    let on_b = ProbeServer::start(&b.path(), sock(&b_ip, 7000));
    let on_c = ProbeServer::start(&cc.path(), sock(&c_ip, 7000));
    let on_peer = ProbeServer::start(&c.world.peer.path(), sock(PEER, 7000));
    let on_inet = ProbeServer::start(&c.world.internet.path(), sock(INTERNET, 7000));
    assert_eq!(
        tcp_source(&a.path(), on_b.addr),
        Some(me),
        "A to B: the pod's own address"
    );
    assert_eq!(
        tcp_source(&a.path(), on_c.addr),
        Some(me),
        "A to C: the pod's own address"
    );
    assert_eq!(
        tcp_source(&cc.path(), on_b.addr),
        Some(c_ip.parse().unwrap())
    );
    assert_eq!(
        tcp_source(&a.path(), on_peer.addr),
        Some(c.world.nodes[0].ip),
        "to the VNet peer: node A's address"
    );
    assert_eq!(
        tcp_source(&a.path(), on_inet.addr),
        Some(c.world.nodes[0].ip),
        "to the internet: node A's address"
    );
    assert_eq!(
        tcp_source(&b.path(), on_inet.addr),
        Some(c.world.nodes[1].ip)
    );
    assert!(
        !ping(&c.world.peer, &a_ip),
        "the peer cannot reach a pod address: overlay pods are not VNet-routable"
    );
    // a full-size TCP transfer across nodes, and the MTU boundary
    let seen = tcp_seen_from(&a.path(), on_b.addr, 8 << 20).expect("transfer");
    assert_eq!(seen, (me, 8 << 20));
    assert!(ping_df(&a, &b_ip, 1450 - 28), "a DF ping of MTU-28 passes");
    assert!(!ping_df(&a, &b_ip, 1450 - 27), "one byte more is refused");
    let err = a.try_exec(&["ping", "-c1", "-W1", "-M", "do", "-s", "1423", &b_ip]);
    assert!(!err);
    for (i, p) in [(0, &a), (1, &b), (2, &cc)] {
        c.rt[i].del(NET, p);
    }
    for i in 0..3 {
        assert_eq!(c.leases(i), 0);
        let dev = c.world.nodes[i].ns.ip(&["link", "show", "ferro.1"]);
        assert!(
            dev.contains("ferro.1"),
            "the VXLAN device stays after the last pod left"
        );
    }
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn del_after_the_netns_is_gone_leaves_nothing_of_the_pod() {
    require_root();
    let c = Cluster::new(2);
    let (p1, ip1) = c.pod(0, "ovgone1");
    let (p2, ip2) = c.pod(0, "ovgone2");
    let id2 = Runtime::container_id(&p2);
    let n1 = p1.name().to_string();
    drop(p1);
    drop(p2);
    assert_eq!(
        c.rt[0]
            .cnictl(&["del", NET, &format!("/run/netns/{n1}")], &[])
            .code,
        0
    );
    let list = json!({"cniVersion": "1.1.0", "name": NET, "plugins": [plugin(0, c.data[0].path(), c.list.path())]});
    c.rt[0].bare_del(&list, &id2);
    let node = &c.world.nodes[0].ns;
    let routes = node.ip(&["route"]);
    assert!(
        !routes.contains(&format!("{ip1} ")) && !routes.contains(&format!("{ip2} ")),
        "{routes}"
    );
    let table = node.exec(&["nft", "list", "table", "inet", "ferro_cni"]);
    assert!(!table.contains(&ip1) && !table.contains(&ip2), "{table}");
    assert_eq!(c.leases(0), 0);
    assert!(!node.ip(&["link"]).contains(" fc"), "no pod veth left");
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn a_pod_sending_from_a_forged_address_gets_nothing_through() {
    require_root();
    let c = Cluster::new(2);
    let (a, a_ip) = c.pod(0, "ovspoof-a");
    let (_a2, a2_ip) = c.pod(0, "ovspoof-a2");
    let (b, b_ip) = c.pod(1, "ovspoof-b");
    // the far pod counts what arrives: across nodes nothing is NATed, so it sees sources as sent
    let forged = [a2_ip.as_str(), "10.244.1.200", "10.244.2.200", "192.0.2.9"];
    let mut sources = vec![a_ip.as_str()];
    sources.extend(forged);
    let seen = ArrivalCounter::install(&b, 7001, &sources);
    let _srv = ProbeServer::start(&b.path(), sock(&b_ip, 7001));
    assert_eq!(
        udp_source(&a.path(), Some(sock(&a_ip, 0)), sock(&b_ip, 7001)),
        Some(a_ip.parse().unwrap())
    );
    assert!(seen.count(&a_ip) > 0);
    // another pod's address, a free address of its own slice and of another node's, outside
    for src in forged {
        a.ip(&["addr", "add", &format!("{src}/32"), "dev", "eth0"]);
        assert_eq!(
            udp_source(&a.path(), Some(sock(src, 0)), sock(&b_ip, 7001)),
            None
        );
        assert_eq!(
            seen.count(src),
            0,
            "a packet from {src} reached the other node's pod"
        );
    }
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn check_finds_tampering_and_gc_reclaims_stale_attachments() {
    require_root();
    let c = Cluster::new(2);
    let (a, a_ip) = c.pod(0, "ovchk-a");
    let (gone, gone_ip) = c.pod(0, "ovchk-gone");
    assert_eq!(c.rt[0].check(NET, &a, &[]).code, 0);
    let node = &c.world.nodes[0].ns;
    node.ip(&["route", "del", &a_ip]);
    let bad = c.rt[0].check(NET, &a, &[]);
    assert!(
        bad.code != 0 && bad.stderr.contains(&format!("host route to {a_ip}")),
        "{}",
        bad.stderr
    );
    // GC: only `a` is valid
    let id = Runtime::container_id(&a);
    assert_eq!(
        c.rt[0]
            .cnictl(&["gc", NET, "--valid", &format!("{id}/eth0")], &[])
            .code,
        0
    );
    assert_eq!(c.leases(0), 1);
    let table = node.exec(&["nft", "list", "table", "inet", "ferro_cni"]);
    assert!(
        table.contains(&a_ip) && !table.contains(&gone_ip),
        "{table}"
    );
    drop(gone);
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn status_is_code_50_when_the_nodes_slice_is_exhausted() {
    require_root();
    let c = Cluster::new(1);
    let data = tempfile::tempdir().unwrap();
    // a slice of two addresses
    let mut p = plugin(0, data.path(), c.list.path());
    p["ipam"]["ranges"] =
        json!([[{"subnet":"10.244.1.0/24","rangeStart":"10.244.1.10","rangeEnd":"10.244.1.11"}]]);
    c.rt[0].write_conflist(
        "20-small",
        &json!({"cniVersion":"1.1.0","name":"small","plugins":[p]}),
    );
    assert_eq!(c.rt[0].cnictl(&["status", "small"], &[]).code, 0);
    let pods: Vec<Netns> = (0..2).map(|i| Netns::new(&format!("ovst{i}"))).collect();
    for p in &pods {
        c.rt[0].add("small", p);
    }
    let st = c.rt[0].cnictl(&["status", "small"], &[]);
    assert!(
        st.code != 0 && st.stderr.contains("code 50"),
        "{}",
        st.stderr
    );
    c.rt[0].del("small", &pods[1]);
    assert_eq!(c.rt[0].cnictl(&["status", "small"], &[]).code, 0);
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn cnitool_runs_the_overlay_example_with_portmap() {
    require_root();
    let c = Cluster::new(2);
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../conf-examples/overlay.conflist"
    ))
    .unwrap();
    let mut list: Value = serde_json::from_str(&example).unwrap();
    list["plugins"][0]["ipam"]["dataDir"] = json!(c.data[0].path());
    list["plugins"][0]["nodeList"] = json!(c.list.path());
    let pod = Netns::new("ov-tool");
    let caps = r#"{"portMappings":[{"hostPort":8087,"containerPort":80,"protocol":"tcp"}]}"#;
    let out = cnitool::RoundTrip {
        node: &c.world.nodes[0].ns,
        plugin_dir: c.rt[0].plugins.path(),
        list: &list,
        network: "overlay",
        pod: &pod,
        cap_args: Some(caps),
        after_add: "",
        after_del: "",
    }
    .run();
    assert!(out.contains("inet 10.244.1."), "{out}");
    assert_eq!(c.leases(0), 0);
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn an_address_outside_the_slice_creates_nothing_and_keeps_no_lease() {
    require_root();
    let c = Cluster::new(1);
    // IPAM allocates from another node's slice: the plan refuses it before the VXLAN device
    // or any link is created, and the lease is given back
    let mut conf = plugin(0, c.data[0].path(), c.list.path());
    conf["ipam"]["ranges"] = json!([[{"subnet": "10.244.9.0/24"}]]);
    conf["cniVersion"] = json!("1.1.0");
    conf["name"] = json!(NET);
    let pod = Netns::new("ov-slice");
    let path = pod.path().display().to_string();
    let bins = ferro_testutil::bin_dir().display().to_string();
    let out = ferro_testutil::run_plugin_in(
        ferro_testutil::workspace_bin("overlay"),
        &[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "slice1"),
            ("CNI_NETNS", path.as_str()),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", bins.as_str()),
        ],
        &conf.to_string(),
        Some(&c.world.nodes[0].ns.path()),
    );
    let e = out.err(7);
    assert!(
        e["msg"]
            .as_str()
            .unwrap()
            .contains("outside this node's slice"),
        "{e}"
    );
    let links = c.world.nodes[0].ns.ip(&["-o", "link", "show"]);
    assert!(
        !links.contains("ferro.") && !links.contains(": fc"),
        "no VXLAN device and no pod veth: {links}"
    );
    assert_eq!(c.leases(0), 0, "the lease was given back");
    assert!(
        !pod.ip(&["-o", "link", "show"]).contains("eth0"),
        "no interface in the pod"
    );
}
