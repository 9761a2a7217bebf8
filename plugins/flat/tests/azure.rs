//! The Azure CNI model end to end on the simulated network
//! ([docs/testing.md](../../../docs/testing.md)): pods hold VNet addresses from each node's
//! reserved range; proven with real packets and a server that reports the source address it sees.
#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, SocketAddr};

use ferro_testutil::families::{assert_paths, PodAt};
use ferro_testutil::netns::Netns;
use ferro_testutil::probe::{tcp_source, udp_source, ArrivalCounter, ProbeServer};
use ferro_testutil::runtime::{pod_ip, Runtime};
use ferro_testutil::topology::{ping, World, INTERNET, PEER, PEER6};
use ferro_testutil::{cnitool, require_root};
use serde_json::{json, Value};

const NET: &str = "azure";

struct Azure {
    world: World,
    rt: Vec<Runtime>,
    data: Vec<tempfile::TempDir>,
}

/// Node `i` reserves .20+10i to .29+10i of the VNet subnet (and the same in IPv6 when asked).
fn conflist(i: usize, data: &std::path::Path, dual: bool) -> Value {
    let start = 20 + 10 * i;
    let mut ranges = vec![
        json!([{"subnet":"10.240.0.0/16","rangeStart":format!("10.240.0.{start}"),"rangeEnd":format!("10.240.0.{}", start + 9),"gateway":"10.240.0.1"}]),
    ];
    if dual {
        ranges.push(json!([{"subnet":"fd00:240::/64","rangeStart":format!("fd00:240::{start}"),"rangeEnd":format!("fd00:240::{}", start + 9)}]));
    }
    json!({"cniVersion":"1.1.0","name":NET,"plugins":[
        {"type":"flat","vnetCIDRs":["10.240.0.0/16","fd00:240::/64"],"ipam":{"type":"host-local","dataDir":data,"ranges":ranges}},
        {"type":"portmap","capabilities":{"portMappings":true}}]})
}

impl Azure {
    fn new(dual: bool) -> Azure {
        let world = World::new(2);
        let mut rt = Vec::new();
        let mut data = Vec::new();
        for (i, n) in world.nodes.iter().enumerate() {
            let d = tempfile::tempdir().unwrap();
            let r = Runtime::new(&n.ns, &["flat", "host-local", "portmap"]);
            r.write_conflist("10-azure", &conflist(i, d.path(), dual));
            rt.push(r);
            data.push(d);
        }
        Azure { world, rt, data }
    }

    fn pod(&self, i: usize, label: &str) -> (Netns, String, Value) {
        let pod = Netns::new(label);
        let r = self.rt[i].add(NET, &pod);
        let ip = pod_ip(&r);
        (pod, ip, r)
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

    fn proxies(&self, i: usize) -> String {
        self.world.nodes[i].ns.ip(&["neigh", "show", "proxy"])
    }

    /// The random delay (in 1/100 s) node `i`'s uplink holds proxied ARP (`ipv6`: NDP)
    /// replies back by; the kernel's default is 80.
    fn proxy_delay(&self, i: usize, ipv6: bool) -> String {
        let n = &self.world.nodes[i];
        let key = format!(
            "net.{}.neigh.{}.proxy_delay",
            if ipv6 { "ipv6" } else { "ipv4" },
            n.uplink
        );
        n.ns.exec(&["sysctl", "-n", &key]).trim().to_string()
    }
}

fn sock(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), port)
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn pods_hold_vnet_addresses_reached_without_nat_and_leave_the_vnet_as_the_node() {
    require_root();
    let az = Azure::new(false);
    let (a, a_ip, r) = az.pod(0, "az-a");
    let (b, b_ip, _) = az.pod(1, "az-b");
    assert_eq!(a_ip, "10.240.0.20", "node A's reserved range");
    assert_eq!(b_ip, "10.240.0.30", "node B's reserved range");
    assert_eq!(r["ips"][0]["address"], "10.240.0.20/16");
    assert_eq!(r["ips"][0]["gateway"], "169.254.1.1");
    // the pod has no subnet route: even same-subnet traffic goes through the node
    let routes = a.ip(&["route"]);
    assert!(!routes.contains("10.240.0.0/16"), "{routes}");
    // each node answers ARP for its pods at once: the first packet to a pod on another node
    // does not wait for the kernel's random proxy delay (up to 0.8 s per direction)
    for i in 0..2 {
        assert_eq!(az.proxy_delay(i, false), "0", "node {i}");
    }

    let on_peer = ProbeServer::start(&az.world.peer.path(), sock(PEER, 7000));
    let on_b = ProbeServer::start(&b.path(), sock(&b_ip, 7000));
    let on_inet = ProbeServer::start(&az.world.internet.path(), sock(INTERNET, 7000));
    let me: IpAddr = a_ip.parse().unwrap();
    assert_eq!(
        tcp_source(&az.world.peer.path(), sock(&a_ip, 7000)),
        None,
        "(no server on the pod yet)"
    );
    let on_a = ProbeServer::start(&a.path(), sock(&a_ip, 7000));
    assert_eq!(
        tcp_source(&az.world.peer.path(), on_a.addr),
        Some(PEER.parse().unwrap()),
        "the peer reaches the pod directly"
    );
    assert_eq!(
        tcp_source(&a.path(), on_peer.addr),
        Some(me),
        "the peer sees the pod's own address"
    );
    assert_eq!(
        tcp_source(&a.path(), on_b.addr),
        Some(me),
        "pod to pod across nodes without NAT"
    );
    assert_eq!(
        tcp_source(&a.path(), on_inet.addr),
        Some(az.world.nodes[0].ip),
        "leaving the VNet: the node's address"
    );
    assert!(ping(&a, "10.240.0.30"));
    for (i, p) in [(0, &a), (1, &b)] {
        az.rt[i].del(NET, p);
    }
    assert!(az.proxies(0).trim().is_empty() && az.proxies(1).trim().is_empty());
    assert_eq!(az.leases(0) + az.leases(1), 0);
}

/// Counts, in the peer VM, the packets arriving from `src` (an nft counter in the peer's own
/// namespace, which the test created).
#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn a_pod_sending_from_a_forged_address_gets_nothing_through() {
    require_root();
    let az = Azure::new(false);
    let (a, a_ip, _) = az.pod(0, "spoof-a");
    let (_b, b_ip, _) = az.pod(0, "spoof-b");
    let peer = &az.world.peer;
    let seen = ArrivalCounter::install(
        peer,
        7001,
        &[a_ip.as_str(), b_ip.as_str(), "10.240.0.77", "192.0.2.9"],
    );
    let _srv = ProbeServer::start(&peer.path(), sock(PEER, 7001));
    // the pod's own address gets through
    assert_eq!(
        udp_source(&a.path(), Some(sock(&a_ip, 0)), sock(PEER, 7001)),
        Some(a_ip.parse().unwrap())
    );
    assert!(seen.count(&a_ip) > 0);
    // forged: the other pod's address, a free VNet address, an outside address
    for forged in [b_ip.as_str(), "10.240.0.77", "192.0.2.9"] {
        a.ip(&["addr", "add", &format!("{forged}/32"), "dev", "eth0"]);
        assert_eq!(
            udp_source(&a.path(), Some(sock(forged, 0)), sock(PEER, 7001)),
            None
        );
        assert_eq!(
            seen.count(forged),
            0,
            "a packet from {forged} reached the VM"
        );
    }
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn del_after_the_netns_is_gone_leaves_no_route_proxy_entry_element_or_lease() {
    require_root();
    let az = Azure::new(false);
    let (p1, ip1, r1) = az.pod(0, "azgone1");
    let (p2, ip2, _) = az.pod(0, "azgone2");
    let id2 = Runtime::container_id(&p2);
    let host1 = r1["interfaces"][0]["name"].as_str().unwrap().to_string();
    let (n1, n2) = (p1.name().to_string(), p2.name().to_string());
    drop(p1);
    drop(p2);
    // the runtime's DEL (prevResult from cache) and a bare DEL (no netns, no prevResult)
    assert_eq!(
        az.rt[0]
            .cnictl(&["del", NET, &format!("/run/netns/{n1}")], &[])
            .code,
        0
    );
    az.rt[0].bare_del(&conflist(0, az.data[0].path(), false), &id2);
    let node = &az.world.nodes[0].ns;
    let routes = node.ip(&["route"]);
    assert!(
        !routes.contains(&ip1) && !routes.contains(&ip2),
        "host routes left: {routes}"
    );
    assert!(
        az.proxies(0).trim().is_empty(),
        "proxy entries left: {}",
        az.proxies(0)
    );
    assert!(!node.ip(&["link"]).contains(&host1));
    let table = node.exec(&["nft", "list", "table", "inet", "ferro_cni"]);
    assert!(
        !table.contains(&ip1) && !table.contains(&ip2),
        "SNAT elements left:\n{table}"
    );
    assert_eq!(az.leases(0), 0);
    let _ = n2;
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn check_finds_tampering_and_gc_reclaims_stale_attachments() {
    require_root();
    let az = Azure::new(false);
    let (a, a_ip, _) = az.pod(0, "chk-a");
    let (gone, gone_ip, _) = az.pod(0, "chk-gone");
    assert_eq!(az.rt[0].check(NET, &a, &[]).code, 0);
    az.world.nodes[0]
        .ns
        .ip(&["neigh", "del", "proxy", &a_ip, "dev", "eth0"]);
    let bad = az.rt[0].check(NET, &a, &[]);
    assert!(
        bad.code != 0 && bad.stderr.contains("not published"),
        "{}",
        bad.stderr
    );
    // GC: only `a` is valid
    let id = Runtime::container_id(&a);
    assert_eq!(
        az.rt[0]
            .cnictl(&["gc", NET, "--valid", &format!("{id}/eth0")], &[])
            .code,
        0
    );
    assert_eq!(az.leases(0), 1);
    let table = az.world.nodes[0]
        .ns
        .exec(&["nft", "list", "table", "inet", "ferro_cni"]);
    assert!(
        table.contains(&a_ip) && !table.contains(&gone_ip),
        "{table}"
    );
    assert!(!az.proxies(0).contains(&gone_ip));
    drop(gone);
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn dual_stack_pods_are_reached_over_ipv6_from_the_vnet() {
    require_root();
    let az = Azure::new(true);
    let (a, _, r) = az.pod(0, "ds-a");
    let v6 = r["ips"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["address"].as_str().unwrap().contains(':'))
        .unwrap()
        .clone();
    assert_eq!(v6["address"], "fd00:240::20/64");
    assert_eq!(v6["gateway"], "fe80::1234:5678:9abc");
    assert_eq!(az.proxy_delay(0, true), "0", "NDP answered at once");
    assert_eq!(az.proxy_delay(0, false), "0", "ARP answered at once");
    assert!(
        ping(&az.world.peer, "fd00:240::20"),
        "the VM reaches the pod over IPv6"
    );
    let _srv = ProbeServer::start(
        &az.world.peer.path(),
        SocketAddr::new(PEER6.parse().unwrap(), 7002),
    );
    assert_eq!(
        tcp_source(&a.path(), SocketAddr::new(PEER6.parse().unwrap(), 7002)),
        Some("fd00:240::20".parse().unwrap())
    );
    az.rt[0].del(NET, &a);
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn dual_stack_pods_reach_each_other_across_nodes_in_both_families() {
    require_root();
    let az = Azure::new(true);
    let (a, _, ra) = az.pod(0, "fds-a");
    let (b, _, rb) = az.pod(1, "fds-b");
    assert_paths(
        "flat",
        &az.world,
        PodAt::new(&a, &ra, 0),
        PodAt::new(&b, &rb, 1),
        &[false, true],
        true,
    );
    az.rt[0].del(NET, &a);
    az.rt[1].del(NET, &b);
    assert_eq!(az.leases(0) + az.leases(1), 0);
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn cnitool_runs_the_flat_example_with_portmap() {
    require_root();
    let az = Azure::new(false);
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../conf-examples/flat.conflist"
    ))
    .unwrap();
    let mut list: Value = serde_json::from_str(&example).unwrap();
    list["plugins"][0]["ipam"]["dataDir"] = json!(az.data[0].path());
    let pod = Netns::new("az-tool");
    let caps = r#"{"portMappings":[{"hostPort":8089,"containerPort":80,"protocol":"tcp"}]}"#;
    let out = cnitool::RoundTrip {
        node: &az.world.nodes[0].ns,
        plugin_dir: az.rt[0].plugins.path(),
        list: &list,
        network: "azure",
        pod: &pod,
        cap_args: Some(caps),
        after_add: "",
        after_del: "",
    }
    .run();
    assert!(out.contains("inet 10.240.0.20/16"), "{out}");
    assert_eq!(az.leases(0), 0);
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn status_is_code_50_when_the_nodes_reserved_range_is_exhausted() {
    require_root();
    let world = World::new(1);
    let data = tempfile::tempdir().unwrap();
    let rt = Runtime::new(&world.nodes[0].ns, &["flat", "host-local"]);
    // maxPods = 2: the node reserved .20 and .21 of the VNet subnet
    rt.write_conflist(
        "10-small",
        &json!({"cniVersion":"1.1.0","name":"small","plugins":[{"type":"flat","vnetCIDRs":["10.240.0.0/16"],
            "ipam":{"type":"host-local","dataDir":data.path(),"ranges":[[{"subnet":"10.240.0.0/16","rangeStart":"10.240.0.20","rangeEnd":"10.240.0.21","gateway":"10.240.0.1"}]]}}]}),
    );
    assert_eq!(rt.cnictl(&["status", "small"], &[]).code, 0);
    let pods: Vec<Netns> = (0..2).map(|i| Netns::new(&format!("st{i}"))).collect();
    for p in &pods {
        rt.add("small", p);
    }
    let st = rt.cnictl(&["status", "small"], &[]);
    assert!(
        st.code != 0 && st.stderr.contains("code 50"),
        "{}",
        st.stderr
    );
    rt.del("small", &pods[1]);
    assert_eq!(rt.cnictl(&["status", "small"], &[]).code, 0);
}
