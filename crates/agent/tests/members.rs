//! Membership from the store (root: network namespaces): three simulated nodes, one etcd
//! member on node A, an agent per node, pods of `overlay` (peers from the agent) or
//! `bridge` (kubenet, routes from the agent). Nothing but the agents' store tells a node
//! about another: no node list, no static route.
//!
//! Proven with real packets: a node that joins is reachable from the other nodes' pods
//! once its lease appears, without its own address seen as anything but the pod's; a node
//! whose lease expires (kill -9) or is revoked (SIGTERM) leaves every peer's neighbour, FDB
//! and route tables; a VTEP MAC that changes is replaced on the peers. The delays are
//! measured from the lease record's event (a watch of the store from node A) and printed;
//! only generous bounds are asserted (a shared, noisy machine).
#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferro_cluster::keys;
use ferro_store::{Etcd, EtcdConfig, EventKind, Store};
use ferro_testutil::agent::Agent;
use ferro_testutil::etcd::EtcdCluster;
use ferro_testutil::netns::Netns;
use ferro_testutil::probe::{tcp_source, ProbeServer};
use ferro_testutil::require_root;
use ferro_testutil::runtime::{pod_ip, Runtime};
use ferro_testutil::topology::World;
use serde_json::{json, Value};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ferro-agent"))
}

/// The generous bound on every delay (the design's is 1 s; the figures are printed).
const BOUND: Duration = Duration::from_secs(10);

/// What the store's watch (from node A) saw: when, put or delete, which key.
type Seen = Arc<Mutex<Vec<(Instant, EventKind, String)>>>;

/// A watch of the node leases and nodes, from node A, recording each event as it arrives.
struct Watcher {
    seen: Seen,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watcher {
    fn start(ns: &Netns, endpoints: Vec<String>) -> Watcher {
        let seen: Seen = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (path, s2, stop2) = (ns.path(), seen.clone(), stop.clone());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let fd = std::fs::File::open(&path).unwrap();
            nix::sched::setns(&fd, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let store = Etcd::connect(&EtcdConfig::new(endpoints)).await.unwrap();
                let mut leases = store.watch(keys::NODE_LEASES, 0).await.unwrap();
                let mut nodes = store.watch("/ferro-cni/v1/nodes/", 0).await.unwrap();
                ready_tx.send(()).unwrap();
                while !stop2.load(Ordering::Relaxed) {
                    let evs = tokio::select! {
                        r = leases.next() => r.unwrap(),
                        r = nodes.next() => r.unwrap(),
                        () = tokio::time::sleep(Duration::from_millis(100)) => Vec::new(),
                    };
                    let now = Instant::now();
                    let mut s = s2.lock().unwrap();
                    for e in evs {
                        s.push((now, e.kind, e.kv.key));
                    }
                }
            });
        });
        ready_rx.recv_timeout(Duration::from_secs(30)).unwrap();
        Watcher {
            seen,
            stop,
            thread: Some(thread),
        }
    }

    /// The first event of `kind` on `key` seen at or after `since`, waiting for it.
    fn event(&self, kind: EventKind, key: &str, since: Instant) -> Instant {
        let t0 = Instant::now();
        loop {
            let found = self
                .seen
                .lock()
                .unwrap()
                .iter()
                .find(|(t, k, kk)| *t >= since && *k == kind && kk == key)
                .map(|(t, _, _)| *t);
            if let Some(t) = found {
                return t;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "no {kind:?} of {key} seen"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One simulated node's runtime and agent directories.
struct Node {
    rt: Runtime,
    _data: tempfile::TempDir,
    run: tempfile::TempDir,
}

impl Node {
    fn socket(&self) -> PathBuf {
        self.run.path().join("agent.sock")
    }
}

fn short_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("ft")
        .tempdir_in("/tmp")
        .unwrap()
}

/// The agent configuration of node `i` (`node-a`...).
fn agent_config(world: &World, i: usize, node: &Node, etcd: &EtcdCluster, extra: Value) -> Value {
    let name = format!("node-{}", (b'a' + i as u8) as char);
    let mut c = json!({"nodeName": name, "nodeAddresses": [world.nodes[i].ip.to_string()],
        "store": {"etcd": {"endpoints": etcd.endpoints()}}, "leaseTTL": 2, "resyncSeconds": 1,
        "socket": node.socket(), "podCIDRs": [format!("10.244.{}.0/24", i + 1)]});
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

/// Pings `dst` from `from` until it answers; the moment it did.
fn ping_until(from: &Netns, dst: &str, deadline: Duration) -> Instant {
    let t0 = Instant::now();
    loop {
        if from.try_exec(&["ping", "-c1", "-W", "0.2", "-q", dst]) {
            return Instant::now();
        }
        assert!(
            t0.elapsed() < deadline,
            "{dst} not reachable after {deadline:?}"
        );
    }
}

/// Polls `gone` until it holds; the moment it did.
fn until(what: &str, deadline: Duration, mut gone: impl FnMut() -> bool) -> Instant {
    let t0 = Instant::now();
    loop {
        if gone() {
            return Instant::now();
        }
        assert!(t0.elapsed() < deadline, "{what}: not after {deadline:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn ms(later: Instant, earlier: Instant) -> String {
    if later >= earlier {
        format!("{} ms", later.duration_since(earlier).as_millis())
    } else {
        format!("-{} ms", earlier.duration_since(later).as_millis())
    }
}

/// Node `ns`'s VXLAN entries for the peer whose slice starts at `gw`: (neighbour MAC, FDB
/// MACs to `underlay`, route present).
fn peer_state(ns: &Netns, gw: &str, underlay: &str) -> (Option<String>, Vec<String>, bool) {
    let neigh = ns
        .ip_json(&["neigh", "show", "dev", "ferro.1"])
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["dst"] == gw)
        .and_then(|n| n["lladdr"].as_str().map(str::to_string));
    let fdb_out = ns.exec(&["bridge", "-j", "fdb", "show", "dev", "ferro.1"]);
    let fdb: Value = serde_json::from_str(if fdb_out.trim().is_empty() {
        "[]"
    } else {
        &fdb_out
    })
    .unwrap();
    let macs = fdb
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["dst"] == underlay)
        .filter_map(|f| f["mac"].as_str().map(str::to_string))
        .collect();
    let route = ns
        .ip_json(&["route", "show", "dev", "ferro.1"])
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["gateway"] == gw);
    (neigh, macs, route)
}

/// Three nodes, one etcd member on node A, a watch of the store from node A.
fn cluster() -> (World, EtcdCluster, Watcher) {
    let world = World::new(3);
    let etcd = EtcdCluster::start(&[(&world.nodes[0].ns, world.nodes[0].ip)], None);
    let watch = Watcher::start(&world.nodes[0].ns, etcd.endpoints());
    (world, etcd, watch)
}

/// A runtime per node with `plugins` and the conflist `conflist(i, data dir, agent socket)`.
fn runtimes(
    world: &World,
    plugins: &[&str],
    conflist: impl Fn(usize, &Path, &Path) -> Value,
) -> Vec<Node> {
    (0..world.nodes.len())
        .map(|i| {
            let data = tempfile::tempdir().unwrap();
            let run = short_dir();
            let rt = Runtime::new(&world.nodes[i].ns, plugins);
            rt.write_conflist(
                "10-net",
                &conflist(i, data.path(), &run.path().join("agent.sock")),
            );
            Node {
                rt,
                _data: data,
                run,
            }
        })
        .collect()
}

fn no_peer(ns: &Netns, gw: &str, underlay: &str) -> bool {
    let (n, f, r) = peer_state(ns, gw, underlay);
    n.is_none() && f.is_empty() && !r
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn overlay_nodes_join_and_leave_through_the_store() {
    require_root();
    let (world, etcd, watch) = cluster();
    let nodes = runtimes(&world, &["overlay", "host-local"], |i, data, socket| {
        let slice = format!("10.244.{}.0/24", i + 1);
        json!({"cniVersion": "1.1.0", "name": "ovl", "plugins": [
            {"type": "overlay", "podCIDR": "10.244.0.0/16", "nodeSubnet": slice, "nodeList": "agent",
             "agent": {"socket": socket},
             "ipam": {"type": "host-local", "dataDir": data, "ranges": [[{"subnet": slice}]]}}]})
    });
    let config = |i: usize| agent_config(&world, i, &nodes[i], &etcd, json!({"overlay": {}}));
    let mut agents: Vec<Agent> = (0..2)
        .map(|i| Agent::start(bin(), Some(&world.nodes[i].ns), config(i)))
        .collect();

    let pod = |i: usize, label: &str| {
        let p = Netns::new(label);
        let ip = pod_ip(&nodes[i].rt.add("ovl", &p));
        (p, ip)
    };
    let (pa, ip_a) = pod(0, "mem-a");
    let (pb, ip_b) = pod(1, "mem-b");
    ping_until(&pa, &ip_b, BOUND);
    ping_until(&pb, &ip_a, BOUND);

    // node C: a pod first (its agent is not there: the plugin makes the device, the report
    // waits in the spool); nothing reaches it
    let (pc, ip_c) = pod(2, "mem-c");
    assert!(!pa.try_exec(&["ping", "-c1", "-W", "0.5", "-q", &ip_c]));
    let c_lease = keys::node_lease("node-c");
    let (a_ns, b_ns) = (&world.nodes[0].ns, &world.nodes[1].ns);
    let c_ip = world.nodes[2].ip.to_string();
    assert!(no_peer(a_ns, "10.244.3.0", &c_ip));

    // C joins: its agent registers; pods of A and B reach pod C
    let t0 = Instant::now();
    let pinger = {
        let (path, ip) = (pa.path(), ip_c.clone());
        std::thread::spawn(move || {
            let fd = std::fs::File::open(&path).unwrap();
            nix::sched::setns(&fd, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let t0 = Instant::now();
            loop {
                let ok = std::process::Command::new("ping")
                    .args(["-c1", "-W", "0.1", "-q", &ip])
                    .output()
                    .unwrap()
                    .status
                    .success();
                if ok {
                    return Instant::now();
                }
                assert!(
                    t0.elapsed() < Duration::from_secs(60),
                    "pod C never answered"
                );
            }
        })
    };
    agents.push(Agent::start(bin(), Some(&world.nodes[2].ns), config(2)));
    let appeared = watch.event(EventKind::Put, &c_lease, t0);
    let reached = pinger.join().unwrap();
    println!(
        "join: pod A reached pod C {} after node C's lease appeared (one ping every 100 ms at most)",
        ms(reached, appeared)
    );
    assert!(reached.duration_since(appeared) < BOUND);
    ping_until(&pb, &ip_c, BOUND);
    ping_until(&pc, &ip_a, BOUND);
    let on_c = ProbeServer::start(&pc.path(), SocketAddr::new(ip_c.parse().unwrap(), 7000));
    assert_eq!(
        tcp_source(&pa.path(), on_c.addr),
        Some(ip_a.parse::<IpAddr>().unwrap()),
        "across nodes, pod C sees pod A's own address"
    );
    // CHECK with nodeList "agent": the device, the pod, the firewall; the peers are the agent's
    let checked = nodes[0].rt.check("ovl", &pa, &[]);
    assert_eq!(checked.code, 0, "{}", checked.stderr);
    let (mac_on_a, fdb_on_a, route_on_a) = peer_state(a_ns, "10.244.3.0", &c_ip);
    assert!(mac_on_a.is_some() && fdb_on_a.len() == 1 && route_on_a);

    // what the cluster knows now: the nodes with their VTEP MACs and slices, every pod's
    // attachment (C's spooled report replayed)
    let nodes_wide = agents[0].cnictl(&["get", "nodes", "-o", "wide"], None);
    println!("cnictl get nodes -o wide\n{}", nodes_wide.stdout);
    let c_line = nodes_wide
        .stdout
        .lines()
        .find(|l| l.starts_with("node-c"))
        .unwrap();
    assert!(
        c_line.contains("Ready")
            && c_line.contains(mac_on_a.as_deref().unwrap())
            && c_line.contains("10.244.3.0/24"),
        "{}",
        nodes_wide.stdout
    );
    let listed = |a: &Agent| a.cnictl(&["get", "attachments", "-A"], None).stdout;
    until("every pod's attachment", BOUND, || {
        let att = listed(&agents[0]);
        [("node-a", &ip_a), ("node-b", &ip_b), ("node-c", &ip_c)]
            .iter()
            .all(|(node, ip)| {
                att.lines()
                    .any(|l| l.contains(node) && l.contains(&format!("{ip}/24")))
            })
    });
    println!("cnictl get attachments -A\n{}", listed(&agents[0]));

    // C dies: when its lease expires, A and B drop it
    agents[2].kill9();
    let killed = Instant::now();
    let expired = watch.event(EventKind::Delete, &c_lease, killed);
    let gone_a = until("node C gone from node A", BOUND, || {
        no_peer(a_ns, "10.244.3.0", &c_ip)
    });
    let gone_b = until("node C gone from node B", BOUND, || {
        no_peer(b_ns, "10.244.3.0", &c_ip)
    });
    println!(
        "leave (lease expired {} after kill -9, TTL 2 s): node C's neighbour, FDB and route gone from node A {} and from node B {} after the expiry",
        ms(expired, killed),
        ms(gone_a, expired),
        ms(gone_b, expired)
    );
    assert!(gone_a.duration_since(expired) < BOUND && gone_b.duration_since(expired) < BOUND);
    ping_until(&pa, &ip_b, BOUND);

    // C comes back
    let t1 = Instant::now();
    agents[2].restart();
    agents[2].wait_ready();
    let back = watch.event(EventKind::Put, &c_lease, t1);
    let reached = ping_until(&pa, &ip_c, BOUND);
    println!(
        "rejoin: pod A reached pod C {} after node C's lease appeared again",
        ms(reached, back)
    );

    // C's VXLAN device gets another MAC (recreated, say): C publishes it, A and B replace it
    let new_mac = "02:aa:bb:cc:dd:03";
    let c_ns = &world.nodes[2].ns;
    let t2 = Instant::now();
    c_ns.ip(&["link", "set", "ferro.1", "down"]);
    c_ns.ip(&["link", "set", "ferro.1", "address", new_mac]);
    c_ns.ip(&["link", "set", "ferro.1", "up"]);
    let published = watch.event(EventKind::Put, "/ferro-cni/v1/nodes/node-c", t2);
    let replaced = until("node C's new MAC on node A", BOUND, || {
        let (n, f, r) = peer_state(a_ns, "10.244.3.0", &c_ip);
        n.as_deref() == Some(new_mac) && f == [new_mac] && r
    });
    until("node C's new MAC on node B", BOUND, || {
        peer_state(b_ns, "10.244.3.0", &c_ip).1 == [new_mac]
    });
    println!(
        "VTEP MAC change: published by node C {} after the change (resync every 1 s), replaced on node A {} after it was published",
        ms(published, t2),
        ms(replaced, published)
    );
    ping_until(&pa, &ip_c, BOUND);
    ping_until(&pc, &ip_b, BOUND);

    // C stops (SIGTERM): its lease is revoked at once, and A and B drop it at once
    let t3 = Instant::now();
    assert_eq!(agents[2].term().code(), Some(0));
    let revoked = watch.event(EventKind::Delete, &c_lease, t3);
    let gone_a = until("node C gone from node A", BOUND, || {
        no_peer(a_ns, "10.244.3.0", &c_ip)
    });
    println!(
        "leave (SIGTERM): node C gone from node A {} after its lease was revoked",
        ms(gone_a, revoked)
    );
    let metrics_like = agents[0].log();
    assert!(
        metrics_like.contains("overlay peers: added"),
        "{metrics_like}"
    );
    for (i, p) in [(0, &pa), (1, &pb), (2, &pc)] {
        nodes[i].rt.del("ovl", p);
    }
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn kubenet_routes_follow_the_nodes() {
    require_root();
    let (world, etcd, watch) = cluster();
    let nodes = runtimes(
        &world,
        &["bridge", "host-local", "portmap"],
        |i, data, socket| {
            ferro_testutil::kubenet::conflist(i, data, json!({"agent": {"socket": socket}}))
        },
    );
    let config =
        |i: usize| agent_config(&world, i, &nodes[i], &etcd, json!({"kubenetRoutes": true}));
    let mut agents: Vec<Agent> = (0..2)
        .map(|i| Agent::start(bin(), Some(&world.nodes[i].ns), config(i)))
        .collect();
    let pod = |i: usize, label: &str| {
        let p = Netns::new(label);
        let ip = pod_ip(&nodes[i].rt.add(ferro_testutil::kubenet::NET, &p));
        (p, ip)
    };
    let (pa, ip_a) = pod(0, "kr-a");
    let (pb, ip_b) = pod(1, "kr-b");
    ping_until(&pa, &ip_b, BOUND);
    let (pc, ip_c) = pod(2, "kr-c");
    assert!(!pa.try_exec(&["ping", "-c1", "-W", "0.5", "-q", &ip_c]));
    let a_ns = &world.nodes[0].ns;
    let ours = |ns: &Netns| ns.ip(&["route", "show", "proto", "77"]);
    assert_eq!(ours(a_ns).trim(), "10.244.2.0/24 via 10.240.0.5 dev eth0");

    let c_lease = keys::node_lease("node-c");
    let t0 = Instant::now();
    agents.push(Agent::start(bin(), Some(&world.nodes[2].ns), config(2)));
    let appeared = watch.event(EventKind::Put, &c_lease, t0);
    let reached = ping_until(&pa, &ip_c, BOUND);
    println!(
        "kubenet join: pod A reached pod C {} after node C's lease appeared",
        ms(reached, appeared)
    );
    ping_until(&pc, &ip_b, BOUND);
    let on_c = ProbeServer::start(&pc.path(), SocketAddr::new(ip_c.parse().unwrap(), 7000));
    assert_eq!(
        tcp_source(&pa.path(), on_c.addr),
        Some(ip_a.parse::<IpAddr>().unwrap())
    );
    assert_eq!(
        ours(a_ns),
        "10.244.2.0/24 via 10.240.0.5 dev eth0 \n10.244.3.0/24 via 10.240.0.6 dev eth0 \n"
    );

    agents[2].kill9();
    let killed = Instant::now();
    let expired = watch.event(EventKind::Delete, &c_lease, killed);
    let b_ns = &world.nodes[1].ns;
    let gone_a = until("node C's route gone from node A", BOUND, || {
        !ours(a_ns).contains("10.244.3.0")
    });
    let gone_b = until("node C's route gone from node B", BOUND, || {
        !ours(b_ns).contains("10.244.3.0")
    });
    println!(
        "kubenet leave: node C's route gone from node A {} and from node B {} after its lease expired",
        ms(gone_a, expired),
        ms(gone_b, expired)
    );
    ping_until(&pa, &ip_b, BOUND);
    // A's agent stops: it leaves its own node's routes as they are, but its lease is
    // revoked, so B drops the route to A's pods until A's agent is back
    let t1 = Instant::now();
    assert_eq!(agents[0].term().code(), Some(0));
    assert!(ours(a_ns).contains("10.244.2.0/24"));
    until("node A's route gone from node B", BOUND, || {
        !ours(b_ns).contains("10.244.1.0")
    });
    agents[0].restart();
    agents[0].wait_ready();
    let reached = ping_until(&pa, &ip_b, BOUND);
    println!(
        "kubenet agent restart (SIGTERM, start again): pod A reached pod B again {} after the stop",
        ms(reached, t1)
    );
    for (i, p) in [(0, &pa), (1, &pb), (2, &pc)] {
        nodes[i].rt.del(ferro_testutil::kubenet::NET, p);
    }
}
