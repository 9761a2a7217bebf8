//! Services end to end (root): real agents on simulated kubenet nodes sharing an etcd store,
//! real pods (the bridge plugin attaches them, dual stack) running servers that report which
//! pod answered and the source address they saw, real clients in pods, on nodes, on the
//! VNet's VM and on the internet host.
//!
//! The pods' plugins report each ADD and DEL to their node's agent (the `agent` key of the
//! network lists, the pod named by `CNI_ARGS`), which records them as `Attachment` objects:
//! a pod becomes an endpoint, and leaves, the way it does on a real node.

#![allow(clippy::unwrap_used)] // test code: a panic is a failure

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use ferro_cluster::keys;
use ferro_store::{Etcd, EtcdConfig, Store};
use ferro_testutil::agent::Agent;
use ferro_testutil::etcd::EtcdCluster;
use ferro_testutil::kubenet::{self, Kubenet};
use ferro_testutil::netns::Netns;
use ferro_testutil::nft::nft;
use ferro_testutil::probe::{tcp_who, tcp_who_within, udp_who, ProbeServer};
use ferro_testutil::runtime::{pod_addr, Runtime};
use ferro_testutil::topology::World;
use serde_json::{json, Value};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ferro-agent"))
}

const NAMES: [&str; 3] = ["node-a", "node-b", "node-c"];

struct Pod {
    ns: Netns,
    node: usize,
    v4: IpAddr,
    v6: Option<IpAddr>,
    _servers: Vec<ProbeServer>,
}

/// The network model the pods are attached with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Model {
    /// kubenet: bridge + host-local, a pod subnet per node routed by the VNet (dual stack).
    Kubenet,
    /// Azure CNI: pods hold VNet addresses (dual stack).
    Flat,
    /// VXLAN overlay between the nodes (IPv4).
    Overlay,
}

struct Cluster {
    world: World,
    rt: Vec<Runtime>,
    net: &'static str,
    _data: Vec<tempfile::TempDir>,
    _list: tempfile::NamedTempFile,
    etcd: EtcdCluster,
    agents: Vec<Agent>,
    pods: BTreeMap<String, Pod>,
}

/// The ClusterNetwork of `model` and the namespace `shop`.
fn network(model: Model) -> &'static str {
    match model {
        Model::Kubenet => {
            "apiVersion: ferro-cni.io/v1
kind: ClusterNetwork
metadata: {name: default}
spec:
  podCIDRs: [10.244.0.0/16, fd00:10:244::/56]
  serviceCIDRs: [10.96.0.0/16, fd00:96::/112]
  nodePortRange: 30000-30999
  loadBalancerPools: [{name: vnet, cidrs: [10.240.1.0/28, fd00:240::1:0/124]}]
---
apiVersion: v1
kind: Namespace
metadata: {name: shop}
"
        }
        Model::Flat => {
            "apiVersion: ferro-cni.io/v1
kind: ClusterNetwork
metadata: {name: default}
spec:
  podCIDRs: [10.240.0.0/16, fd00:240::/64]
  serviceCIDRs: [10.96.0.0/16, fd00:96::/112]
  nodePortRange: 30000-30999
---
apiVersion: v1
kind: Namespace
metadata: {name: shop}
"
        }
        Model::Overlay => {
            "apiVersion: ferro-cni.io/v1
kind: ClusterNetwork
metadata: {name: default}
spec:
  podCIDRs: [10.244.0.0/16]
  serviceCIDRs: [10.96.0.0/16]
  nodePortRange: 30000-30999
---
apiVersion: v1
kind: Namespace
metadata: {name: shop}
"
        }
    }
}

/// The simulated network and a runtime per node for `model` (the network lists come with
/// the agents: [`conflist`]).
fn world_for(model: Model, nodes: usize) -> (World, Vec<Runtime>) {
    match model {
        // (its routes: every host of the VNet routes each node's pod subnets to the node)
        Model::Kubenet => {
            let k = Kubenet::dual_stack(nodes);
            (k.world, k.rt)
        }
        Model::Flat => {
            let world = World::new(nodes);
            let rt = (world.nodes.iter())
                .map(|n| Runtime::new(&n.ns, &["flat", "host-local"]))
                .collect();
            (world, rt)
        }
        Model::Overlay => {
            let world = World::new(nodes);
            let rt = (world.nodes.iter())
                .map(|n| Runtime::new(&n.ns, &["overlay", "host-local"]))
                .collect();
            (world, rt)
        }
    }
}

/// The file and network name of `model`'s list.
fn network_name(model: Model) -> (&'static str, &'static str) {
    match model {
        Model::Kubenet => ("10-kube", kubenet::NET),
        Model::Flat => ("10-azure", "azure"),
        Model::Overlay => ("10-ovl", "ovl"),
    }
}

/// Node `i`'s network list under `model` (IPAM data in `data`; the overlay's node list at
/// `list`), its plugin reporting to the agent at `socket`.
fn conflist(model: Model, i: usize, data: &Path, list: &Path, socket: &Path) -> Value {
    let agent = json!({"agent": {"socket": socket}});
    match model {
        Model::Kubenet => kubenet::conflist_dual_stack(i, data, agent),
        Model::Flat => {
            let start = 20 + 10 * i;
            json!({"cniVersion":"1.1.0","name":"azure","plugins":[
                {"type":"flat","vnetCIDRs":["10.240.0.0/16","fd00:240::/64"],"agent":agent["agent"],
                 "ipam":{"type":"host-local","dataDir":data,"ranges":[
                    [{"subnet":"10.240.0.0/16","rangeStart":format!("10.240.0.{start}"),"rangeEnd":format!("10.240.0.{}", start + 9),"gateway":"10.240.0.1"}],
                    [{"subnet":"fd00:240::/64","rangeStart":format!("fd00:240::{start}"),"rangeEnd":format!("fd00:240::{}", start + 9)}]]}}]})
        }
        Model::Overlay => json!({"cniVersion":"1.1.0","name":"ovl","plugins":[
            {"type":"overlay","podCIDR":"10.244.0.0/16","nodeName":format!("node{i}"),"nodeList":list,
             "agent":agent["agent"],
             "ipam":{"type":"host-local","dataDir":data,"ranges":[[{"subnet":format!("10.244.{}.0/24", i + 1)}]]}}]}),
    }
}

/// The overlay's static node list (each node's address and pod subnet).
fn node_list(world: &World) -> tempfile::NamedTempFile {
    let list = tempfile::NamedTempFile::new().unwrap();
    let nodes: Vec<Value> = (world.nodes.iter().enumerate())
        .map(|(i, n)| json!({"name": format!("node{i}"), "address": n.ip.to_string(), "podSubnet": format!("10.244.{}.0/24", i + 1)}))
        .collect();
    std::fs::write(list.path(), json!({ "nodes": nodes }).to_string()).unwrap();
    list
}

/// `CNI_ARGS` naming pod `shop/<name>`.
fn k8s(name: &str) -> String {
    format!("IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME={name}")
}

impl Cluster {
    /// A dual-stack kubenet cluster of `nodes` nodes, agents with lease TTL `ttl`; the store
    /// is one etcd member on the VNet's VM (so any node can die).
    fn new(nodes: usize, ttl: u64) -> Cluster {
        Self::with(Model::Kubenet, nodes, ttl)
    }

    /// The same with pods attached by `model`.
    fn with(model: Model, nodes: usize, ttl: u64) -> Cluster {
        ferro_testutil::require_root();
        let (world, rt) = world_for(model, nodes);
        let vm: IpAddr = ferro_testutil::topology::PEER.parse().unwrap();
        let etcd = EtcdCluster::start(&[(&world.peer, vm)], None);
        let agents = world
            .nodes
            .iter()
            .zip(NAMES)
            .map(|(n, name)| {
                Agent::start(
                    bin(),
                    Some(&n.ns),
                    json!({"nodeName": name, "nodeAddresses": [n.ip.to_string(), n.ip6.to_string()],
                        "store": {"etcd": {"endpoints": etcd.endpoints(), "dialTimeoutSeconds": 10}},
                        "leaseTTL": ttl, "logLevel": "info"}),
                )
            })
            .collect::<Vec<Agent>>();
        let list = node_list(&world);
        let (file, net) = network_name(model);
        let mut data = Vec::new();
        for (i, a) in agents.iter().enumerate() {
            let d = tempfile::tempdir().unwrap();
            rt[i].write_conflist(
                file,
                &conflist(model, i, d.path(), list.path(), &a.socket()),
            );
            data.push(d);
        }
        let c = Cluster {
            world,
            rt,
            net,
            _data: data,
            _list: list,
            etcd,
            agents,
            pods: BTreeMap::new(),
        };
        c.apply(network(model));
        c
    }

    fn node(&self, i: usize) -> &Netns {
        &self.world.nodes[i].ns
    }

    fn apply(&self, text: &str) -> String {
        let out = self.agents[0].cnictl(&["apply", "-f", "-"], Some(text));
        assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
        out.stdout
    }

    /// A pod `name` (labels `app`) on node `i` serving TCP and UDP on `port` of both its
    /// addresses, and its Pod resource; its plugin reports it to node `i`'s agent. Returns
    /// once the store joins the pod with its attachment (it has an address).
    fn pod(&mut self, i: usize, name: &str, app: &str, port: u16) {
        let ns = Netns::new(name);
        let result = self.rt[i].add_with(self.net, &ns, &[("CNI_ARGS", &k8s(name))]);
        let v4 = pod_addr(&result, false).unwrap();
        let v6 = pod_addr(&result, true);
        let mut servers = vec![ProbeServer::start_labelled(
            &ns.path(),
            SocketAddr::new(v4, port),
            name,
        )];
        if let Some(v6) = v6 {
            servers.push(ProbeServer::start_labelled(
                &ns.path(),
                SocketAddr::new(v6, port),
                name,
            ));
        }
        self.apply(&format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: shop, labels: {{app: {app}}}}}\nspec: {{containers: [{{name: c, image: x, ports: [{{name: http, containerPort: {port}}}]}}]}}\n"
        ));
        until(Duration::from_secs(10), "the pod's attachment", || {
            let out =
                self.agents[0].cnictl(&["get", "pod", name, "-n", "shop", "-o", "json"], None);
            serde_json::from_str::<Value>(&out.stdout)
                .is_ok_and(|p| p["status"]["podIP"] == json!(v4.to_string()))
        });
        self.pods.insert(
            name.to_string(),
            Pod {
                ns,
                node: i,
                v4,
                v6,
                _servers: servers,
            },
        );
    }

    /// Deletes pod `name` as its runtime would (DEL, reported to its node's agent).
    fn delete_pod(&mut self, name: &str) {
        let p = self.pods.remove(name).unwrap();
        self.rt[p.node].del_with(self.net, &p.ns, &[("CNI_ARGS", &k8s(name))]);
    }

    /// Node `i`'s services table, as `nft` lists it.
    fn table(&self, i: usize) -> String {
        self.node(i)
            .run(|| nft(&["list", "table", "inet", "ferro_services"]))
    }

    fn svc(&self, name: &str) -> Value {
        let out = self.agents[0].cnictl(&["get", "svc", name, "-n", "shop", "-o", "json"], None);
        assert_eq!(out.code, 0, "{}", out.stderr);
        serde_json::from_str(&out.stdout).unwrap()
    }

    fn cluster_ip(&self, name: &str, v6: bool) -> IpAddr {
        let s = self.svc(name);
        s["spec"]["clusterIPs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().parse::<IpAddr>().unwrap())
            .find(|ip| ip.is_ipv6() == v6)
            .unwrap_or_else(|| panic!("{name} has no ClusterIP of that family: {s}"))
    }

    fn node_port(&self, name: &str) -> u16 {
        self.svc(name)["spec"]["ports"][0]["nodePort"]
            .as_u64()
            .unwrap() as u16
    }
}

/// Who answers `n` connections from `ns` to `dst`, per label, and the sources they saw.
fn tally(ns: &Netns, dst: SocketAddr, n: usize) -> (BTreeMap<String, usize>, Vec<IpAddr>) {
    let mut who = BTreeMap::new();
    let mut sources = Vec::new();
    for _ in 0..n {
        let (src, label) = tcp_who(&ns.path(), dst, Duration::from_secs(3))
            .unwrap_or_else(|e| panic!("{dst}: {e:?}"));
        *who.entry(label).or_insert(0) += 1;
        sources.push(src);
    }
    (who, sources)
}

/// Waits (up to `limit`) until `f` holds; how long it took.
fn until(limit: Duration, what: &str, mut f: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    t0.elapsed()
}

fn answers(ns: &Netns, dst: SocketAddr) -> bool {
    tcp_who(&ns.path(), dst, Duration::from_millis(500)).is_ok()
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn cluster_ips_node_ports_policies_affinity_and_hairpin_under_kubenet() {
    let mut c = Cluster::new(2, 10);
    c.pod(0, "web-1", "web", 8080);
    c.pod(1, "web-2", "web", 8080);
    c.pod(0, "solo-1", "solo", 8080);
    c.pod(0, "client", "client", 9);
    c.pod(1, "far", "client", 9);
    c.apply(
        "apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {selector: {app: web}, ipFamilyPolicy: RequireDualStack, ports: [{name: http, port: 80, targetPort: http}, {name: dns, port: 53, protocol: UDP, targetPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: np, namespace: shop}
spec: {type: NodePort, ipFamilyPolicy: PreferDualStack, selector: {app: web}, ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: solo, namespace: shop}
spec: {type: NodePort, externalTrafficPolicy: Local, selector: {app: solo}, ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: sticky, namespace: shop}
spec: {selector: {app: web}, sessionAffinity: ClientIP, ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: brief, namespace: shop}
spec: {selector: {app: web}, sessionAffinity: ClientIP, sessionAffinityConfig: {clientIP: {timeoutSeconds: 1}}, ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: empty, namespace: shop}
spec: {type: NodePort, ipFamilyPolicy: PreferDualStack, selector: {app: nothing}, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: inner, namespace: shop}
spec: {selector: {app: web}, internalTrafficPolicy: Local, ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: headless, namespace: shop}
spec: {clusterIP: None, selector: {app: web}, ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: alias, namespace: shop}
spec: {type: ExternalName, externalName: db.example.com}
",
    );
    let client = &c.pods["client"].ns;
    let web4 = SocketAddr::new(c.cluster_ip("web", false), 80);
    let web6 = SocketAddr::new(c.cluster_ip("web", true), 80);
    let took = until(Duration::from_secs(10), "the ClusterIP answers", || {
        answers(client, web4)
    });
    eprintln!("ClusterIP answering {took:?} after the apply returned");

    // Headless: no VIP; ExternalName: no address either (a DNS name, nothing to program);
    // neither appears in any node's table, and everything else works beside them.
    let headless = c.svc("headless");
    assert_eq!(headless["spec"]["clusterIP"], "None", "{headless}");
    assert!(
        headless["spec"]["clusterIPs"]
            .as_array()
            .is_none_or(|a| a.iter().all(|ip| ip == "None")),
        "{headless}"
    );
    let alias = c.svc("alias");
    assert!(alias["spec"]["clusterIP"].is_null(), "{alias}");
    for i in 0..2 {
        let t = c.table(i);
        assert!(t.contains("shop/web/"), "{t}");
        assert!(
            !t.contains("shop/headless") && !t.contains("shop/alias"),
            "{t}"
        );
    }

    // Balancing over both endpoints (one on each node), each roughly its share, from a pod
    // on either node; the pod's own address is kept.
    let n = 40;
    for from in ["client", "far"] {
        for dst in [web4, web6] {
            let (who, sources) = tally(&c.pods[from].ns, dst, n);
            eprintln!("{from} -> {dst}: {who:?} over {n} connections");
            assert_eq!(who.len(), 2, "{who:?}");
            for (pod, k) in &who {
                assert!(*k >= n / 5, "{pod} got {k} of {n}");
            }
            let own = if dst.is_ipv6() {
                c.pods[from].v6.unwrap()
            } else {
                c.pods[from].v4
            };
            assert!(sources.iter().all(|s| *s == own), "{sources:?}");
        }
    }
    // UDP, by targetPort number on a port of its own.
    let dns = SocketAddr::new(web4.ip(), 53);
    let (src, pod) = udp_who(&client.path(), None, dns).expect("UDP through the ClusterIP");
    assert!(
        pod.starts_with("web-") && src == c.pods["client"].v4,
        "{src} {pod}"
    );

    // From either node itself (not a pod), both families: both endpoints answer, the
    // connections masqueraded to the node's side.
    for i in 0..2 {
        for dst in [web4, web6] {
            let (who, sources) = tally(c.node(i), dst, 16);
            assert_eq!(who.len(), 2, "node {i} -> {dst}: {who:?}");
            assert!(
                sources
                    .iter()
                    .all(|s| !c.pods.values().any(|p| p.v4 == *s || p.v6 == Some(*s))),
                "node {i} -> {dst}: masqueraded: {sources:?}"
            );
        }
    }

    // Hairpin: solo-1 reaching its own service lands on itself, masqueraded.
    let solo = SocketAddr::new(c.cluster_ip("solo", false), 80);
    let (src, pod) =
        tcp_who(&c.pods["solo-1"].ns.path(), solo, Duration::from_secs(3)).expect("hairpin");
    assert_eq!(pod, "solo-1");
    eprintln!("hairpin: solo-1 reached itself, seen from {src}");

    // Affinity: one client always lands on one pod (default timeout: 3 hours).
    let sticky = SocketAddr::new(c.cluster_ip("sticky", false), 80);
    let (who, _) = tally(client, sticky, 20);
    assert_eq!(who.len(), 1, "affinity: {who:?}");
    // With a timeout of 1 s: sticky while the client keeps coming, free again once it has
    // been away longer than the timeout (then each new pick is even, so a round lands on the
    // other pod with a chance of one half).
    let brief = SocketAddr::new(c.cluster_ip("brief", false), 80);
    let (who, _) = tally(client, brief, 10);
    assert_eq!(who.len(), 1, "affinity within the timeout: {who:?}");
    let first = who.keys().next().unwrap().clone();
    let rounds = (1..=12).find(|_| {
        std::thread::sleep(Duration::from_millis(1500));
        tally(client, brief, 1).0.keys().next() != Some(&first)
    });
    eprintln!("affinity with a 1 s timeout: another pod after {rounds:?} pauses of 1.5 s");
    assert!(
        rounds.is_some(),
        "always {first} after 12 pauses longer than the timeout"
    );

    // internalTrafficPolicy: Local: a node's clients reach only that node's endpoint.
    let inner = SocketAddr::new(c.cluster_ip("inner", false), 80);
    let (who, _) = tally(client, inner, 20);
    assert_eq!(who.keys().collect::<Vec<_>>(), ["web-1"], "{who:?}");
    let (who, _) = tally(&c.pods["far"].ns, inner, 20);
    assert_eq!(who.keys().collect::<Vec<_>>(), ["web-2"], "{who:?}");

    // No endpoints: refused at once, not a timeout, in both families; over its NodePort
    // from outside too. (The deadline stays under the 1 s of a SYN retransmission: a
    // refusal that only came with the second SYN would fail.)
    for v6 in [false, true] {
        let empty = SocketAddr::new(c.cluster_ip("empty", v6), 80);
        let t0 = Instant::now();
        let e = tcp_who(&client.path(), empty, Duration::from_millis(900)).unwrap_err();
        assert_eq!(e, ErrorKind::ConnectionRefused, "{empty}: {e:?}");
        eprintln!(
            "{empty}, a service without endpoints, refused the connection in {:?}",
            t0.elapsed()
        );
    }
    for ip in [c.world.nodes[0].ip, c.world.nodes[1].ip6] {
        let np_empty = SocketAddr::new(ip, c.node_port("empty"));
        let e = tcp_who(&c.world.peer.path(), np_empty, Duration::from_millis(900)).unwrap_err();
        assert_eq!(e, ErrorKind::ConnectionRefused, "{np_empty}: {e:?}");
    }

    // NodePort from outside the cluster, on every node, both families: Cluster policy
    // balances over all endpoints and masquerades.
    let np = c.node_port("np");
    for node in &c.world.nodes {
        for ip in [node.ip, node.ip6] {
            let dst = SocketAddr::new(ip, np);
            let (who, sources) = tally(&c.world.peer, dst, 20);
            eprintln!("VM -> NodePort {dst}: {who:?}");
            assert_eq!(who.len(), 2, "{dst}: {who:?}");
            let peer: IpAddr = if ip.is_ipv6() {
                ferro_testutil::topology::PEER6.parse().unwrap()
            } else {
                ferro_testutil::topology::PEER.parse().unwrap()
            };
            assert!(
                sources.iter().all(|s| *s != peer),
                "masqueraded: {sources:?}"
            );
        }
    }
    // From the internet host too.
    let (who, _) = tally(
        &c.world.internet,
        SocketAddr::new(c.world.nodes[1].ip, np),
        10,
    );
    assert!(!who.is_empty());
    // Not on the loopback addresses: nothing listens there, so the node refuses (a NodePort
    // served there would answer).
    for lo in ["127.0.0.1", "::1"] {
        let dst = SocketAddr::new(lo.parse().unwrap(), np);
        let e = tcp_who(&c.node(0).path(), dst, Duration::from_secs(1)).unwrap_err();
        assert_eq!(e, ErrorKind::ConnectionRefused, "{dst}: {e:?}");
    }

    // externalTrafficPolicy: Local keeps the client's address and uses this node's
    // endpoints only; a node without one drops (no answer, no refusal).
    let solo_np = c.node_port("solo");
    let peer = &c.world.peer;
    let (src, pod) = tcp_who(
        &peer.path(),
        SocketAddr::new(c.world.nodes[0].ip, solo_np),
        Duration::from_secs(3),
    )
    .unwrap();
    assert_eq!(
        (src.to_string().as_str(), pod.as_str()),
        (ferro_testutil::topology::PEER, "solo-1")
    );
    let e = tcp_who(
        &peer.path(),
        SocketAddr::new(c.world.nodes[1].ip, solo_np),
        Duration::from_secs(1),
    )
    .unwrap_err();
    assert_eq!(e, ErrorKind::TimedOut, "dropped, not refused: {e:?}");

    // A UDP flow pinned (by conntrack) to web-2, from a fixed source port.
    let client_v4 = c.pods["client"].v4;
    let pinned = (20000..20100)
        .map(|p| SocketAddr::new(client_v4, p))
        .find(|from| {
            udp_who(&client.path(), Some(*from), dns).is_some_and(|(_, pod)| pod == "web-2")
        })
        .expect("a source port whose flow lands on web-2");

    // A pod leaving: its runtime's DEL reports to node B's agent, which deletes its
    // attachment; every node's table drops the endpoint.
    let web2 = c.pods["web-2"].v4.to_string();
    let t0 = Instant::now();
    c.delete_pod("web-2");
    let del = t0.elapsed();
    let gone = until(Duration::from_secs(10), "web-2 leaves every table", || {
        (0..2).all(|i| !c.table(i).contains(&web2))
    });
    eprintln!(
        "a pod leaving: its DEL took {del:?}; its endpoint was out of both nodes' tables \
         {gone:?} after the DEL returned"
    );
    let client = &c.pods["client"].ns;
    let (who, _) = tally(client, web4, 20);
    assert_eq!(who.keys().collect::<Vec<_>>(), ["web-1"]);
    // The pinned UDP flow's conntrack entry went with the endpoint: the same source port now
    // reaches web-1 (kept, the entry would still send it to web-2's old address, where
    // nothing answers).
    let (_, pod) = udp_who(&client.path(), Some(pinned), dns).expect("UDP after the change");
    assert_eq!(pod, "web-1", "stale UDP conntrack entry flushed");
}

fn lb_ip(c: &Cluster, name: &str, v6: bool) -> IpAddr {
    let s = c.svc(name);
    s["status"]["loadBalancer"]["ingress"]
        .as_array()
        .unwrap_or_else(|| panic!("{name} has no load-balancer address: {s}"))
        .iter()
        .map(|i| i["ip"].as_str().unwrap().parse::<IpAddr>().unwrap())
        .find(|ip| ip.is_ipv6() == v6)
        .unwrap()
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn load_balancers_are_announced_by_one_node_and_move_when_it_dies() {
    let ttl = 3;
    let mut c = Cluster::new(3, ttl);
    for i in 0..3 {
        c.pod(i, &format!("web-{}", i + 1), "web", 8080);
    }
    c.pod(1, "solo-1", "solo", 8080);
    c.apply(
        "apiVersion: v1
kind: Service
metadata: {name: lb, namespace: shop}
spec: {type: LoadBalancer, ipFamilyPolicy: PreferDualStack, selector: {app: web}, ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: fw, namespace: shop}
spec: {type: LoadBalancer, loadBalancerSourceRanges: [203.0.113.0/24], selector: {app: web}, ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: local, namespace: shop}
spec: {type: LoadBalancer, externalTrafficPolicy: Local, selector: {app: solo}, ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: ext, namespace: shop}
spec: {externalIPs: [10.240.2.1], selector: {app: web}, ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: theirs, namespace: shop}
spec: {type: LoadBalancer, loadBalancerClass: example.com/lb, selector: {app: web}, ports: [{port: 80, targetPort: 8080}]}
",
    );
    let peer = &c.world.peer;
    let lb4 = lb_ip(&c, "lb", false);
    let lb6 = lb_ip(&c, "lb", true);
    assert!(lb4.to_string().starts_with("10.240.1."), "{lb4}");
    for ip in [lb4, lb6] {
        let t = until(Duration::from_secs(10), "the address is announced", || {
            c.world.holders(ip).len() == 1
        });
        eprintln!(
            "{ip} announced by node {:?} {t:?} after the apply",
            c.world.holders(ip)
        );
        let (who, _) = tally(peer, SocketAddr::new(ip, 80), 30);
        assert!(who.len() >= 2, "balanced over the cluster: {who:?}");
    }
    // Another class's service: no address, nobody announces.
    assert!(c.svc("theirs")["status"]["loadBalancer"]["ingress"].is_null());

    // Source ranges: the internet host (203.0.113.10) gets in, the VNet's VM does not.
    let fw = SocketAddr::new(lb_ip(&c, "fw", false), 80);
    until(Duration::from_secs(10), "fw announced", || {
        c.world.holders(fw.ip()).len() == 1
    });
    assert!(answers(&c.world.internet, fw), "allowed source");
    let e = tcp_who(&peer.path(), fw, Duration::from_secs(1)).unwrap_err();
    assert_eq!(e, ErrorKind::TimedOut, "other sources dropped");

    // externalTrafficPolicy: Local: announced by the node with the endpoint, the client's
    // address kept.
    let local = lb_ip(&c, "local", false);
    until(Duration::from_secs(10), "local announced", || {
        c.world.holders(local) == [1]
    });
    let (src, pod) = tcp_who(
        &peer.path(),
        SocketAddr::new(local, 80),
        Duration::from_secs(3),
    )
    .unwrap();
    assert_eq!(
        (src.to_string().as_str(), pod.as_str()),
        (ferro_testutil::topology::PEER, "solo-1")
    );

    // External IPs: routed to a node by the network, served there.
    peer.ip(&[
        "route",
        "add",
        "10.240.2.1/32",
        "via",
        &c.world.nodes[0].ip.to_string(),
    ]);
    assert!(answers(peer, "10.240.2.1:80".parse().unwrap()));

    // The announcing node dies (its agent killed, its link down): the address moves within
    // the lease TTL and a few seconds, and the VM's connections work again.
    let dst = SocketAddr::new(lb4, 80);
    let dead = c.world.holders(lb4)[0];
    assert!(answers(peer, dst));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let prober = {
        let (stop, path) = (stop.clone(), peer.path());
        std::thread::spawn(move || {
            let mut log = Vec::new();
            let t0 = Instant::now();
            // Until told to stop, and then until an attempt succeeds, at most 20 more. Each
            // attempt waits 300 ms to connect and 300 ms for the answer (a connection caught
            // by the death would otherwise wait for it much longer).
            let mut extra = 0;
            loop {
                let stopping = stop.load(std::sync::atomic::Ordering::Relaxed);
                if stopping && (log.last().is_some_and(|(_, _, ok)| *ok) || extra == 20) {
                    break;
                }
                extra += usize::from(stopping);
                let start = t0.elapsed();
                let ms300 = Duration::from_millis(300);
                let ok = tcp_who_within(&path, dst, ms300, ms300).is_ok();
                log.push((start, t0.elapsed(), ok));
                std::thread::sleep(Duration::from_millis(50));
            }
            log
        })
    };
    let cip = SocketAddr::new(c.cluster_ip("lb", false), 80);
    std::thread::sleep(Duration::from_millis(500));
    c.agents[dead].kill9();
    c.node(dead).ip(&["link", "set", "eth0", "down"]);
    let killed = Instant::now();
    // Meanwhile: when the dead node's lease record goes, and when a pod on a surviving node
    // stops losing connections to the dead node's endpoint through the ClusterIP.
    let survivor = (0..3).find(|i| *i != dead).unwrap();
    let client = &c.pods[&format!("web-{}", survivor + 1)].ns;
    let dead_name = NAMES[dead];
    let dead_pod = c.pods[&format!("web-{}", dead + 1)].v4.to_string();
    let (lease_gone, tables_clean, endpoints_clean, moved) = std::thread::scope(|sc| {
        let moved = sc.spawn(|| {
            until(
                Duration::from_secs(ttl + 30),
                "another node announces the address",
                || c.world.holders(lb4).iter().any(|i| *i != dead),
            );
            killed.elapsed()
        });
        let lease = sc.spawn(|| {
            let key = keys::node_lease(dead_name);
            let endpoints = c.etcd.endpoints();
            c.world.peer.block_on(move || async move {
                let s = Etcd::connect(&EtcdConfig::new(endpoints)).await.unwrap();
                while s.get(&key).await.unwrap().is_some() {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                killed.elapsed()
            })
        });
        let tables = sc.spawn(|| {
            until(
                Duration::from_secs(ttl + 30),
                "the dead node's endpoint leaves the survivors' tables",
                || {
                    (0..3)
                        .filter(|i| *i != dead)
                        .all(|i| !c.table(i).contains(&dead_pod))
                },
            );
            killed.elapsed()
        });
        let mut streak = 0;
        while streak < 10 {
            assert!(
                killed.elapsed() < Duration::from_secs(ttl + 30),
                "endpoints never cleaned"
            );
            if tcp_who(&client.path(), cip, Duration::from_millis(300)).is_ok() {
                streak += 1;
            } else {
                streak = 0;
            }
        }
        (
            lease.join().unwrap(),
            tables.join().unwrap(),
            killed.elapsed(),
            moved.join().unwrap(),
        )
    });
    eprintln!(
        "the dead node's lease record went {lease_gone:?} after it died; its endpoint was out \
         of both surviving nodes' tables {:?} after that; 10 connections in a row from a \
         surviving node all answered {:?} after it",
        tables_clean.saturating_sub(lease_gone),
        endpoints_clean.saturating_sub(lease_gone)
    );
    until(
        Duration::from_secs(20),
        "the VM reaches the service again",
        || answers(peer, dst),
    );
    let back = killed.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let log = prober.join().unwrap();
    // From the start of the first failed attempt to the end of the last one (an attempt
    // caught by the death may hang until its read times out).
    let first_fail = log.iter().find(|(_, _, ok)| !ok).map(|(t, _, _)| *t);
    let last_fail = log.iter().rev().find(|(_, _, ok)| !ok).map(|(_, t, _)| *t);
    let outage = match (first_fail, last_fail) {
        (Some(a), Some(b)) => b.saturating_sub(a),
        _ => Duration::ZERO,
    };
    eprintln!(
        "failover (lease TTL {ttl} s): address moved {moved:?} after the node died, the VM's \
         connections worked again after {back:?}; outage seen by the VM's client {outage:?} \
         ({} probes)",
        log.len()
    );
    let tail: Vec<String> = log
        .iter()
        .rev()
        .take(8)
        .map(|(t, _, ok)| format!("{t:?} {ok}"))
        .collect();
    assert!(
        log.last().unwrap().2,
        "the client ends up connected: {tail:?}"
    );
    assert!(
        first_fail.is_some(),
        "the death was seen by the client: {tail:?}"
    );
}

/// Median of `n` TCP handshakes from `ns` to `dst` (`connect` returns when the SYN-ACK is
/// back: the first packet's way through the table and the answer), inside the namespace.
fn connect_median(ns: &Netns, dst: SocketAddr, n: usize) -> Duration {
    let mut v: Vec<Duration> = ns.run(|| {
        (0..n)
            .map(|_| {
                let t0 = Instant::now();
                let s = std::net::TcpStream::connect_timeout(&dst, Duration::from_secs(3));
                let d = t0.elapsed();
                s.unwrap();
                d
            })
            .collect()
    });
    v.sort();
    v[n / 2]
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn many_services_apply_at_once_and_one_change_costs_one_service() {
    // FERRO_SERVICES_SCALE=1000x10 runs the full scale case; CI runs a modest one.
    let scale = std::env::var("FERRO_SERVICES_SCALE").unwrap_or_else(|_| "200x5".into());
    let (services, endpoints) = scale
        .split_once('x')
        .map(|(a, b)| (a.parse::<usize>().unwrap(), b.parse::<usize>().unwrap()))
        .expect("FERRO_SERVICES_SCALE=<services>x<endpoints>");
    let mut c = Cluster::new(2, 10);
    for i in 0..endpoints {
        c.pod(i % 2, &format!("be-{i}"), "be", 8080);
    }
    c.pod(0, "client", "client", 9);
    // Applied 25 services at a time: one apply is one store transaction, and etcd takes
    // at most 128 operations in one (its --max-txn-ops default).
    let t0 = Instant::now();
    for chunk in (0..services).collect::<Vec<_>>().chunks(25) {
        let mut text = String::new();
        for i in chunk {
            text.push_str(&format!(
                "apiVersion: v1\nkind: Service\nmetadata: {{name: s{i:05}, namespace: shop}}\nspec: {{selector: {{app: be}}, ports: [{{port: 80, targetPort: 8080}}]}}\n---\n"
            ));
        }
        c.apply(&text);
    }
    let applied = t0.elapsed();
    let first = SocketAddr::new(c.cluster_ip("s00000", false), 80);
    let last = SocketAddr::new(c.cluster_ip(&format!("s{:05}", services - 1), false), 80);
    let client = &c.pods["client"].ns;
    let ready = until(Duration::from_secs(120), "the last service answers", || {
        answers(client, last)
    }) + applied;
    let (who, _) = tally(client, last, 4 * endpoints);
    assert!(who.len() > endpoints / 2, "{who:?}");
    let m_first = connect_median(client, first, 21);
    let m_last = connect_median(client, last, 21);
    // One change at that size: the last service selects another pod.
    c.pod(1, "late", "late", 8080);
    let last_name = format!("s{:05}", services - 1);
    let t1 = Instant::now();
    c.apply(&format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {last_name}, namespace: shop}}\nspec: {{selector: {{app: late}}, ports: [{{port: 80, targetPort: 8080}}]}}\n"
    ));
    let client = &c.pods["client"].ns;
    until(
        Duration::from_secs(30),
        "the change reaches the datapath",
        || tally(client, last, 2).0.keys().all(|k| k == "late"),
    );
    let change = t1.elapsed();
    let log = c.agents[0].log();
    let syncs: Vec<&str> = log.lines().filter(|l| l.contains("services: ")).collect();
    eprintln!(
        "scale {services} services x {endpoints} endpoints: apply answered in {applied:?}, the \
         last service answered {ready:?} after the apply started; TCP handshake (median of \
         21) {m_first:?} to the first service, {m_last:?} to the last; one service changed \
         (another selector) and answering from its new endpoint {change:?} after the apply \
         started\n  agent syncs:\n    {}",
        syncs[syncs.len().saturating_sub(3)..].join("\n    ")
    );
}

/// The same service behaviour whatever attaches the pods: ClusterIP from pods on either node
/// over both endpoints with the pod's address kept (each family the model gives pods),
/// from either node over both endpoints, hairpin, and a NodePort from the VNet's VM on every
/// node over both endpoints.
fn services_under(model: Model) {
    let mut c = Cluster::with(model, 2, 10);
    c.pod(0, "web-1", "web", 8080);
    c.pod(1, "web-2", "web", 8080);
    c.pod(1, "solo-1", "solo", 8080);
    c.pod(0, "near", "client", 9);
    c.pod(1, "far", "client", 9);
    let dual = c.pods["near"].v6.is_some();
    let policy = if dual {
        "PreferDualStack"
    } else {
        "SingleStack"
    };
    c.apply(&format!(
        "apiVersion: v1
kind: Service
metadata: {{name: web, namespace: shop}}
spec: {{type: NodePort, ipFamilyPolicy: {policy}, selector: {{app: web}}, ports: [{{port: 80, targetPort: 8080}}]}}
---
apiVersion: v1
kind: Service
metadata: {{name: solo, namespace: shop}}
spec: {{selector: {{app: solo}}, ports: [{{port: 80, targetPort: 8080}}]}}
"
    ));
    let mut vips = vec![SocketAddr::new(c.cluster_ip("web", false), 80)];
    if dual {
        vips.push(SocketAddr::new(c.cluster_ip("web", true), 80));
    }
    until(Duration::from_secs(10), "the ClusterIP answers", || {
        answers(&c.pods["near"].ns, vips[0])
    });
    for client in ["near", "far"] {
        for dst in &vips {
            let (who, sources) = tally(&c.pods[client].ns, *dst, 30);
            eprintln!("{model:?}: {client} -> {dst}: {who:?}");
            assert_eq!(who.len(), 2, "{model:?} {client} {dst}: {who:?}");
            let own = if dst.is_ipv6() {
                c.pods[client].v6.unwrap()
            } else {
                c.pods[client].v4
            };
            assert!(sources.iter().all(|s| *s == own), "{sources:?}");
        }
    }
    for i in 0..2 {
        for dst in &vips {
            let (who, _) = tally(c.node(i), *dst, 16);
            assert_eq!(who.len(), 2, "{model:?}: node {i} -> {dst}: {who:?}");
        }
    }
    let solo = SocketAddr::new(c.cluster_ip("solo", false), 80);
    let (_, pod) = tcp_who(&c.pods["solo-1"].ns.path(), solo, Duration::from_secs(3)).unwrap();
    assert_eq!(pod, "solo-1", "hairpin");
    let np = c.node_port("web");
    for node in &c.world.nodes {
        let dst = SocketAddr::new(node.ip, np);
        let (who, _) = tally(&c.world.peer, dst, 20);
        assert_eq!(who.len(), 2, "{model:?}: NodePort {dst}: {who:?}");
    }
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn services_work_the_same_under_the_flat_model() {
    services_under(Model::Flat);
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn services_work_the_same_under_the_overlay_model() {
    services_under(Model::Overlay);
}
