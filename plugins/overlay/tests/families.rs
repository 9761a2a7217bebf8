//! The overlay in every address family, proven with real traffic between two simulated
//! nodes that start as freshly booted nodes do (both forwarding sysctls at 0): IPv6-only and
//! dual-stack pods, over an IPv4 and over an IPv6 underlay. In each family a pod reaches a
//! pod on the other node with its own address, carried in VXLAN (a counter on the VNet
//! switch sees no pod address between the nodes, and proves it would by routing around
//! VXLAN at the end); reaches the VNet's VM and the internet from its node's address of that
//! family; sends a full-MTU packet with DF set across; and DEL leaves nothing of either
//! address.
#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, SocketAddr};

use ferro_testutil::families::{assert_paths, node_addr, PodAt};
use ferro_testutil::netns::Netns;
use ferro_testutil::probe::{tcp_seen_from, udp_source, ArrivalCounter, ProbeServer, WireCounter};
use ferro_testutil::runtime::{pod_addr, Runtime};
use ferro_testutil::topology::{ping_df, World};
use ferro_testutil::{require_root, run_plugin_in, workspace_bin};
use serde_json::{json, Value};

const NET: &str = "ovlds";
const PORT: u16 = 7000;

/// The families of the pods and of the underlay.
#[derive(Debug, Clone, Copy)]
struct Stack {
    v4: bool,
    v6: bool,
    underlay6: bool,
}

impl Stack {
    fn families(self) -> Vec<bool> {
        [(self.v4, false), (self.v6, true)]
            .into_iter()
            .filter(|(on, _)| *on)
            .map(|(_, v6)| v6)
            .collect()
    }

    fn pod_cidrs(self) -> Vec<&'static str> {
        self.families()
            .into_iter()
            .map(|v6| {
                if v6 {
                    "fd00:10:244::/56"
                } else {
                    "10.244.0.0/16"
                }
            })
            .collect()
    }

    /// Node `i`'s slices, one per family.
    fn slices(self, i: usize) -> Vec<String> {
        self.families()
            .into_iter()
            .map(|v6| {
                if v6 {
                    format!("fd00:10:244:{}::/64", i + 1)
                } else {
                    format!("10.244.{}.0/24", i + 1)
                }
            })
            .collect()
    }

    fn mtu(self) -> usize {
        if self.underlay6 {
            1500 - 70
        } else {
            1500 - 50
        }
    }
}

struct Cluster {
    stack: Stack,
    world: World,
    rt: Vec<Runtime>,
    data: Vec<tempfile::TempDir>,
    _list: tempfile::NamedTempFile,
}

struct Pod {
    ns: Netns,
    result: Value,
    node: usize,
    addrs: Vec<IpAddr>,
}

impl Pod {
    fn at(&self) -> PodAt<'_> {
        PodAt::new(&self.ns, &self.result, self.node)
    }

    fn addr(&self, v6: bool) -> IpAddr {
        self.at().addr(v6)
    }
}

impl Cluster {
    fn new(stack: Stack) -> Cluster {
        let world = World::new(2);
        for n in &world.nodes {
            for key in ["net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"] {
                assert_eq!(
                    n.ns.exec(&["sysctl", "-n", key]).trim(),
                    "0",
                    "nodes boot with {key} off"
                );
            }
        }
        let list = tempfile::NamedTempFile::new().unwrap();
        let nodes: Vec<Value> = world
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let address = if stack.underlay6 { n.ip6 } else { n.ip };
                json!({"name": format!("node{i}"), "address": address.to_string(), "podSubnets": stack.slices(i)})
            })
            .collect();
        std::fs::write(list.path(), json!({ "nodes": nodes }).to_string()).unwrap();
        let mut rt = Vec::new();
        let mut data = Vec::new();
        for (i, n) in world.nodes.iter().enumerate() {
            let d = tempfile::tempdir().unwrap();
            let ranges: Vec<Value> = stack
                .slices(i)
                .iter()
                .map(|s| json!([{ "subnet": s }]))
                .collect();
            let r = Runtime::new(&n.ns, &["overlay", "host-local"]);
            r.write_conflist(
                "10-ovlds",
                &json!({"cniVersion":"1.1.0","name":NET,"plugins":[{"type":"overlay","podCIDRs":stack.pod_cidrs(),
                    "nodeName":format!("node{i}"),"nodeList":list.path(),
                    "ipam":{"type":"host-local","dataDir":d.path(),"ranges":ranges}}]}),
            );
            rt.push(r);
            data.push(d);
        }
        Cluster {
            stack,
            world,
            rt,
            data,
            _list: list,
        }
    }

    fn node(&self, i: usize) -> &Netns {
        &self.world.nodes[i].ns
    }

    fn node_addr(&self, i: usize, v6: bool) -> IpAddr {
        node_addr(&self.world, i, v6)
    }

    fn pod(&self, i: usize, label: &str) -> Pod {
        let ns = Netns::new(label);
        let result = self.rt[i].add(NET, &ns);
        let addrs: Vec<IpAddr> = [false, true]
            .into_iter()
            .filter_map(|v6| pod_addr(&result, v6))
            .collect();
        assert_eq!(
            addrs.len(),
            self.stack.families().len(),
            "one address per family: {result}"
        );
        Pod {
            ns,
            result,
            node: i,
            addrs,
        }
    }

    /// Lease files of node `i`.
    fn leases(&self, i: usize) -> Vec<String> {
        std::fs::read_dir(self.data[i].path().join(NET))
            .map(|rd| {
                rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .filter(|n| n.parse::<IpAddr>().is_ok())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The payload of a ping whose packet is exactly `mtu` bytes (IPv4 header 20, IPv6 40,
/// ICMP 8).
fn df_payload(mtu: usize, v6: bool) -> usize {
    mtu - if v6 { 48 } else { 28 }
}

fn carries(stack: Stack) {
    require_root();
    let c = Cluster::new(stack);
    let a = c.pod(0, "ds-a");
    let b = c.pod(1, "ds-b");
    let pod_addrs: Vec<String> = a
        .addrs
        .iter()
        .chain(&b.addrs)
        .map(|x| x.to_string())
        .collect();
    let addr_refs: Vec<&str> = pod_addrs.iter().map(String::as_str).collect();
    let wire = WireCounter::install(&c.world.vnet, &addr_refs, 8472);

    // the node side: forwarding on for exactly the families in use, the device over the
    // underlay's family, the pod's IPv6 addresses reachable without NDP
    for i in 0..2 {
        let node = c.node(i);
        for (key, on) in [
            ("net.ipv4.ip_forward", stack.v4),
            ("net.ipv6.conf.all.forwarding", stack.v6),
        ] {
            assert_eq!(
                node.exec(&["sysctl", "-n", key]).trim(),
                if on { "1" } else { "0" },
                "node {i}: {key}"
            );
        }
        let dev = &node.ip_json(&["-d", "link", "show", "ferro.1"])[0];
        let info = &dev["linkinfo"]["info_data"];
        // `ip -j` names an IPv6 source `local6`
        let local = info["local"].as_str().or(info["local6"].as_str());
        assert_eq!(
            local,
            Some(c.node_addr(i, stack.underlay6).to_string().as_str()),
            "node {i}: VXLAN over the underlay's family: {info}"
        );
        assert_eq!(dev["mtu"], stack.mtu());
        if stack.v6 {
            let pod6 = [&a, &b][i].addr(true).to_string();
            let entry = node.ip(&["-6", "neigh", "show", &pod6]);
            assert!(entry.contains("PERMANENT"), "node {i}: {entry}");
        }
    }
    let neigh = c.node(0).ip(&["neigh", "show", "dev", "ferro.1"]);
    for slice in stack.slices(1) {
        let gw = slice.split('/').next().unwrap();
        assert!(
            neigh.contains(&format!("{gw} lladdr")),
            "node B's {slice} has its neighbour entry: {neigh}"
        );
    }

    assert_paths(
        "overlay",
        &c.world,
        a.at(),
        b.at(),
        &stack.families(),
        false,
    );
    for v6 in stack.families() {
        let (ai, bi) = (a.addr(v6), b.addr(v6));
        let on_b = ProbeServer::start(&b.ns.path(), SocketAddr::new(bi, PORT));
        assert_eq!(
            tcp_seen_from(&a.ns.path(), on_b.addr, 4 << 20),
            Some((ai, 4 << 20)),
            "{v6}: a bulk transfer across nodes"
        );
        let target = bi.to_string();
        let full = df_payload(stack.mtu(), v6);
        assert!(
            ping_df(&a.ns, &target, full),
            "{v6}: a full-MTU packet with DF set crosses"
        );
        assert!(
            !ping_df(&a.ns, &target, full + 1),
            "{v6}: one byte more does not fit the pod MTU"
        );
    }
    for p in &pod_addrs {
        assert_eq!(
            wire.raw(p),
            0,
            "{p} was seen raw between the nodes: not carried in VXLAN"
        );
    }
    let carried = wire.udp();
    assert!(carried > 0, "no VXLAN datagram crossed the VNet");
    eprintln!("{stack:?}: {carried} VXLAN datagrams on the VNet, no pod address in the clear");

    // The check can fail: routed around VXLAN (each slice of B straight to B's VNet
    // address), A's packets cross the VNet with the pod address in the clear.
    for v6 in stack.families() {
        let slice = &stack.slices(1)[usize::from(v6 && stack.v4)];
        let via = c.node_addr(1, v6).to_string();
        c.node(0)
            .ip(&["route", "replace", slice, "via", &via, "dev", "eth0"]);
        let ai = a.addr(v6);
        let _ = udp_source(
            &a.ns.path(),
            Some(SocketAddr::new(ai, 0)),
            SocketAddr::new(b.addr(v6), PORT),
        );
        assert!(
            wire.raw(&ai.to_string()) > 0,
            "{v6}: the counter sees a pod address sent outside VXLAN"
        );
    }

    c.rt[0].del(NET, &a.ns);
    c.rt[1].del(NET, &b.ns);
    for (i, p) in [(0, &a), (1, &b)] {
        assert!(c.leases(i).is_empty(), "node {i}: {:?}", c.leases(i));
        let node = c.node(i);
        let routes = format!("{}{}", node.ip(&["route"]), node.ip(&["-6", "route"]));
        let neigh = node.ip(&["neigh"]);
        let table = node.exec(&["nft", "list", "table", "inet", "ferro_cni"]);
        for ip in p.addrs.iter().map(IpAddr::to_string) {
            assert!(!routes.contains(&format!("{ip} ")), "{ip} left: {routes}");
            assert!(!neigh.contains(&format!("{ip} ")), "{ip} left: {neigh}");
            assert!(!table.contains(&ip), "{ip} left: {table}");
        }
        assert!(!node.ip(&["link"]).contains(" fc"), "no pod veth left");
    }
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn ipv6_pods_over_an_ipv4_underlay() {
    carries(Stack {
        v4: false,
        v6: true,
        underlay6: false,
    });
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn ipv6_pods_over_an_ipv6_underlay() {
    carries(Stack {
        v4: false,
        v6: true,
        underlay6: true,
    });
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn dual_stack_pods_over_an_ipv4_underlay() {
    carries(Stack {
        v4: true,
        v6: true,
        underlay6: false,
    });
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn dual_stack_pods_over_an_ipv6_underlay() {
    carries(Stack {
        v4: true,
        v6: true,
        underlay6: true,
    });
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn check_and_gc_cover_both_families() {
    require_root();
    let c = Cluster::new(Stack {
        v4: true,
        v6: true,
        underlay6: false,
    });
    let a = c.pod(0, "dschk-a");
    let gone = c.pod(0, "dschk-gone");
    assert_eq!(c.rt[0].check(NET, &a.ns, &[]).code, 0);
    // the IPv6 host route of `a` removed by hand: CHECK names it
    let a6 = a.addr(true).to_string();
    c.node(0).ip(&["-6", "route", "del", &a6]);
    let bad = c.rt[0].check(NET, &a.ns, &[]);
    assert!(
        bad.code != 0 && bad.stderr.contains(&format!("host route to {a6}")),
        "{}",
        bad.stderr
    );
    // GC with only `a` valid: both addresses of `gone` lose their lease and SNAT elements
    let id = Runtime::container_id(&a.ns);
    assert_eq!(
        c.rt[0]
            .cnictl(&["gc", NET, "--valid", &format!("{id}/eth0")], &[])
            .code,
        0
    );
    let mut left = c.leases(0);
    left.sort();
    let mut want: Vec<String> = a.addrs.iter().map(IpAddr::to_string).collect();
    want.sort();
    assert_eq!(left, want);
    let table = c
        .node(0)
        .exec(&["nft", "list", "table", "inet", "ferro_cni"]);
    for ip in &a.addrs {
        assert!(table.contains(&ip.to_string()), "{table}");
    }
    for ip in &gone.addrs {
        assert!(!table.contains(&ip.to_string()), "{table}");
    }
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn a_pod_sending_from_a_forged_address_gets_nothing_through_in_either_family() {
    require_root();
    let c = Cluster::new(Stack {
        v4: true,
        v6: true,
        underlay6: false,
    });
    let a = c.pod(0, "dsspoof-a");
    let a2 = c.pod(0, "dsspoof-a2");
    let b = c.pod(1, "dsspoof-b");
    for v6 in [false, true] {
        let (ai, bi) = (a.addr(v6).to_string(), b.addr(v6));
        // another pod's address, a free one of its own slice, of the other node's slice, and
        // one outside the cluster
        let a2i = a2.addr(v6).to_string();
        let forged: [&str; 4] = if v6 {
            [
                &a2i,
                "fd00:10:244:1::200",
                "fd00:10:244:2::200",
                "2001:db8:9::9",
            ]
        } else {
            [&a2i, "10.244.1.200", "10.244.2.200", "192.0.2.9"]
        };
        let port = 7001 + u16::from(v6);
        let mut sources = vec![ai.as_str()];
        sources.extend(forged);
        let seen = ArrivalCounter::install(&b.ns, port, &sources);
        let _srv = ProbeServer::start(&b.ns.path(), SocketAddr::new(bi, port));
        let to = SocketAddr::new(bi, port);
        assert_eq!(
            udp_source(&a.ns.path(), Some(SocketAddr::new(a.addr(v6), 0)), to),
            Some(a.addr(v6))
        );
        assert!(
            seen.count(&ai) > 0,
            "{v6}: the pod's own address gets through"
        );
        for src in forged {
            let host = if v6 { "128" } else { "32" };
            a.ns.ip(&[
                "addr",
                "add",
                &format!("{src}/{host}"),
                "dev",
                "eth0",
                "nodad",
            ]);
            let from = SocketAddr::new(src.parse().unwrap(), 0);
            assert_eq!(udp_source(&a.ns.path(), Some(from), to), None);
            assert_eq!(
                seen.count(src),
                0,
                "a packet from {src} reached the other node's pod"
            );
        }
        b.ns.exec(&["nft", "delete", "table", "inet", "probe"]);
    }
}

/// ADD of `conf` on node 0 of `c`: code 7 whose message contains every one of `needles`,
/// and nothing created (no VXLAN device, no pod veth, no lease).
fn refused(c: &Cluster, label: &str, conf: &Value, needles: &[&str]) {
    let node = c.node(0);
    let pod = Netns::new(label);
    let path = pod.path().display().to_string();
    let bins = ferro_testutil::bin_dir().display().to_string();
    let out = run_plugin_in(
        workspace_bin("overlay"),
        &[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", label),
            ("CNI_NETNS", path.as_str()),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", bins.as_str()),
        ],
        &conf.to_string(),
        Some(&node.path()),
    );
    let e = out.err(7);
    let msg = e["msg"].as_str().unwrap();
    for needle in needles {
        assert!(msg.contains(needle), "{label}: {msg}");
    }
    let links = node.ip(&["-o", "link", "show"]);
    assert!(
        !links.contains("ferro.") && !links.contains(": fc"),
        "{label}: {links}"
    );
    assert!(c.leases(0).is_empty(), "{label}: {:?}", c.leases(0));
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn bad_dual_stack_input_is_code_7_naming_the_key_or_node_and_creates_nothing() {
    require_root();
    let c = Cluster::new(Stack {
        v4: true,
        v6: true,
        underlay6: true,
    });
    let node = c.node(0);
    // an interface with an IPv4 address only
    node.ip(&["link", "add", "u4", "type", "veth", "peer", "name", "u4p"]);
    node.ip(&["addr", "add", "192.0.2.4/24", "dev", "u4"]);
    node.ip(&["link", "set", "u4", "up"]);
    let list = |nodes: Value| {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), json!({ "nodes": nodes }).to_string()).unwrap();
        f
    };
    let without_v6 = list(json!([
        {"name": "node0", "address": "10.240.0.4", "podSubnets": ["10.244.1.0/24", "fd00:10:244:1::/64"]},
        {"name": "node1", "address": "10.240.0.5", "podSubnet": "10.244.2.0/24"}]));
    let mixed = list(json!([
        {"name": "node0", "address": "10.240.0.4", "podSubnets": ["10.244.1.0/24", "fd00:10:244:1::/64"]},
        {"name": "node1", "address": "fd00:240::5", "podSubnets": ["10.244.2.0/24", "fd00:10:244:2::/64"]}]));
    let base = json!({"cniVersion":"1.1.0","name":NET,"type":"overlay","podCIDRs":c.stack.pod_cidrs(),
        "nodeName":"node0","nodeList":c._list.path(),
        "ipam":{"type":"host-local","dataDir":c.data[0].path(),"ranges":[[{"subnet":"10.244.1.0/24"}],[{"subnet":"fd00:10:244:1::/64"}]]}});
    let with = |extra: Value| ferro_testutil::with_keys(base.clone(), extra);
    for (label, conf, needles) in [
        (
            "bad-both",
            with(json!({"podCIDR": "10.244.0.0/16"})),
            &["podCIDR and podCIDRs: give one of them"][..],
        ),
        (
            "bad-twice",
            with(json!({"podCIDRs": ["10.244.0.0/16", "10.245.0.0/16"]})),
            &["podCIDRs: two IPv4 CIDRs (10.244.0.0/16, 10.245.0.0/16)"],
        ),
        (
            "bad-outside",
            with(json!({"nodeName": null, "nodeSubnets": ["10.244.1.0/24", "fd00:99::/64"]})),
            &["nodeSubnets: fd00:99::/64 is not inside the IPv6 pod CIDR fd00:10:244::/56"],
        ),
        (
            "bad-missing",
            with(json!({"nodeList": without_v6.path()})),
            &[
                "nodeList: node node1 in file",
                "no IPv6 slice, but podCIDRs has fd00:10:244::/56",
            ],
        ),
        (
            "bad-mixed",
            with(json!({"nodeList": mixed.path()})),
            &["node node1: address fd00:240::5 is IPv6, but node node0 has an IPv4 address"],
        ),
        (
            "bad-underlay",
            with(json!({"underlay": "u4"})),
            &["underlay: u4 has no IPv6 address, and the node list's addresses are IPv6"],
        ),
    ] {
        refused(&c, label, &conf, needles);
    }
}
