//! cluster-ipam on simulated clusters (root: network namespaces). Nodes on the simulated
//! VNet each run an etcd member of one cluster on their VNet address and their ferro-agent;
//! the built plugins run as a runtime runs them.
//!
//! Proven here (figures are printed, never asserted):
//! - 3 nodes × 100 concurrent ADDs: no address twice, every address inside a block of its
//!   own node;
//! - an etcd member killed during a storm: no ADD fails;
//! - every member stopped: ADDs from claimed blocks succeed, the ADD that needs a claim fails
//!   with code 11 naming the store, DELs succeed; members back: every node's copies converge
//!   and `cnictl ipam check` is clean;
//! - `kill -9` of an agent during a storm, then a restart: no address twice, nothing leaked,
//!   every successful ADD's address held by its attachment;
//! - the embedded store on one node: the same storm, restart and check without etcd;
//! - kubenet pods on node blocks (pod CIDRs written to the Nodes) reaching each other across
//!   nodes without NAT, and flat pods taking VNet addresses from the shared pool, reached by a
//!   VM of the VNet without NAT;
//! - overlay pods taking host addresses of the shared pool (no node slice), every block of
//!   every node routed over VXLAN by the other nodes' agents as it is claimed (a node's second
//!   block included) and dropped when it is given back, pods reaching each other across nodes
//!   without NAT in both families.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferro_testutil::agent::Agent;
use ferro_testutil::etcd::EtcdCluster;
use ferro_testutil::netns::Netns;
use ferro_testutil::probe::{tcp_source, ProbeServer};
use ferro_testutil::runtime::{pod_addr, pod_ip, Runtime};
use ferro_testutil::topology::{ping, World, PEER};
use ferro_testutil::{run_plugin, workspace_bin, PluginRun};
use ipnet::IpNet;
use serde_json::{json, Value};

use common::{audit, bin, CN};

const NAMES: [&str; 3] = ["node-a", "node-b", "node-c"];

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../conf-examples")
        .join(name)
}

/// A world of `nodes` nodes, an etcd member on each of the first `members`, an agent on each.
struct Cluster {
    world: World,
    etcd: EtcdCluster,
    agents: Vec<Agent>,
}

fn cluster(nodes: usize, members: usize) -> Cluster {
    cluster_with(nodes, members, &json!({}))
}

/// [`cluster`] with more keys in every agent's configuration.
fn cluster_with(nodes: usize, members: usize, extra: &Value) -> Cluster {
    let world = World::new(nodes);
    let on: Vec<(&Netns, IpAddr)> = world
        .nodes
        .iter()
        .take(members)
        .map(|n| (&n.ns, n.ip))
        .collect();
    let etcd = EtcdCluster::start(&on, None);
    let agents = world
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let mut cfg = json!({"nodeName": NAMES[i], "nodeAddresses": [n.ip.to_string()], "leaseTTL": 3,
                   "store": {"etcd": {"endpoints": etcd.endpoints(), "dialTimeoutSeconds": 10, "requestTimeoutSeconds": 3}},
                   "ipam": {"leakGraceSeconds": 2, "nodeGraceSeconds": 120, "emptyBlockGraceSeconds": 5}});
            for (k, v) in extra.as_object().into_iter().flatten() {
                cfg[k] = v.clone();
            }
            Agent::start(&workspace_bin("ferro-agent"), Some(&n.ns), cfg)
        })
        .collect();
    Cluster {
        world,
        etcd,
        agents,
    }
}

fn apply(a: &Agent, text: &str) {
    let out = a.cnictl(&["apply", "-f", "-"], Some(text));
    assert_eq!(out.code, 0, "{}", out.stderr);
}

/// The stdin of an IPAM-only call (pod mode, as under flat).
fn ipam_conf(a: &Agent, families: &[&str]) -> Value {
    json!({"cniVersion": "1.1.0", "name": "storm", "type": "flat",
           "ipam": {"type": "cluster-ipam", "socket": a.socket(), "families": families, "timeoutSeconds": 20}})
}

fn ipam_call(cmd: &str, id: &str, conf: &Value, netns: &str) -> PluginRun {
    run_plugin(
        bin(),
        &[
            ("CNI_COMMAND", cmd),
            ("CNI_CONTAINERID", id),
            ("CNI_NETNS", netns),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", "/opt/cni/bin"),
        ],
        &conf.to_string(),
    )
}

/// The addresses of an ADD result.
fn addresses(r: &Value) -> Vec<IpAddr> {
    r["ips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            i["address"]
                .as_str()
                .unwrap()
                .parse::<IpNet>()
                .unwrap()
                .addr()
        })
        .collect()
}

/// One ADD per id, all at once; each answer (in id order). `done` counts the finished ones.
fn storm(
    conf: &Value,
    ids: &[String],
    netns: impl Fn(&str) -> String,
    done: &Arc<AtomicUsize>,
) -> Vec<PluginRun> {
    let handles: Vec<_> = ids
        .iter()
        .map(|id| {
            let (conf, id, ns, done) = (conf.clone(), id.clone(), netns(id), done.clone());
            std::thread::spawn(move || {
                let r = ipam_call("ADD", &id, &conf, &ns);
                done.fetch_add(1, Ordering::SeqCst);
                r
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

fn ids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

/// `cnictl ipam show -o json` through `a`.
fn show(a: &Agent) -> Value {
    let out = a.cnictl(&["ipam", "show", "-o", "json"], None);
    assert_eq!(out.code, 0, "{}", out.stderr);
    serde_json::from_str(&out.stdout).unwrap()
}

/// Every block and its node.
fn blocks(a: &Agent) -> Vec<(IpNet, String)> {
    show(a)["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["cidr"].as_str().unwrap().parse().unwrap(),
                b["node"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Waits until every agent's store copies are current and its check is clean.
fn converge(agents: &[&Agent], within: Duration) -> Duration {
    let t0 = Instant::now();
    loop {
        let pending: Vec<String> = agents
            .iter()
            .filter_map(|a| {
                let r = audit(a);
                let clean = r["leaked"].as_array().unwrap().is_empty()
                    && r["missing"].as_array().unwrap().is_empty()
                    && r["conflicts"].as_array().unwrap().is_empty();
                (r["unsynced"] != 0 || !clean || r["storeReachable"] != true).then(|| r.to_string())
            })
            .collect();
        if pending.is_empty() {
            return t0.elapsed();
        }
        assert!(
            t0.elapsed() < within,
            "not converged after {within:?}: {pending:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Every allocation in the store's copies: address -> (node, container id).
fn stored_allocations(a: &Agent) -> BTreeMap<IpAddr, (String, String)> {
    let out = a.cnictl(&["get", "ipamblocks", "-o", "json"], None);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    let mut m = BTreeMap::new();
    for b in v["items"].as_array().unwrap() {
        let node = b["spec"]["node"].as_str().unwrap().to_string();
        for al in b["status"]["allocations"].as_array().into_iter().flatten() {
            let ip: IpAddr = al["address"].as_str().unwrap().parse().unwrap();
            let prev = m.insert(
                ip,
                (
                    node.clone(),
                    al["containerID"].as_str().unwrap().to_string(),
                ),
            );
            assert!(prev.is_none(), "{ip} listed twice");
        }
    }
    m
}

/// Asserts every answer succeeded, no address twice (across `seen` too), each inside a
/// block of `node`; returns the addresses by id.
fn check_storm(
    runs: &[PluginRun],
    ids: &[String],
    node: &str,
    blocks: &[(IpNet, String)],
    seen: &mut BTreeSet<IpAddr>,
) -> BTreeMap<String, Vec<IpAddr>> {
    let mut out = BTreeMap::new();
    for (r, id) in runs.iter().zip(ids) {
        let v = r.ok();
        for ip in addresses(&v) {
            assert!(seen.insert(ip), "{ip} handed out twice");
            let holder = blocks.iter().find(|(b, _)| b.contains(&ip));
            assert_eq!(
                holder.map(|(_, n)| n.as_str()),
                Some(node),
                "{ip} ({id}) is not in a block of {node}: {holder:?}"
            );
        }
        out.insert(id.clone(), addresses(&v));
    }
    out
}

/// Addresses by container id (sorted).
type ByContainer = BTreeMap<String, Vec<IpAddr>>;

/// 100 ADDs at once on `a` (each with its own netns file), `a` killed with SIGKILL after 30
/// answers; every failed ADD then gets what a runtime does: a DEL (spooled: the agent is
/// down) and its netns removed; `a` started again. Returns the failed ids with their
/// answers, the successful ones' addresses by id, and the directory of the successful ones'
/// netns files (they live while it does: the agent would see their pods gone otherwise).
fn kill_during_storm(
    a: &mut Agent,
    conf: &Value,
) -> (Vec<(String, PluginRun)>, ByContainer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let kids = ids("kill", 100);
    for id in &kids {
        std::fs::write(dir.path().join(id), b"").unwrap();
    }
    let done = Arc::new(AtomicUsize::new(0));
    let runner = {
        let (conf, kids, done, d) = (
            conf.clone(),
            kids.clone(),
            done.clone(),
            dir.path().to_path_buf(),
        );
        std::thread::spawn(move || {
            storm(&conf, &kids, |id| d.join(id).display().to_string(), &done)
        })
    };
    while done.load(Ordering::SeqCst) < 30 {
        std::thread::sleep(Duration::from_millis(2));
    }
    a.kill9();
    let at = done.load(Ordering::SeqCst);
    let runs = runner.join().unwrap();
    let mut ok = BTreeMap::new();
    let mut failed = Vec::new();
    for (id, r) in kids.into_iter().zip(runs) {
        if r.code == 0 {
            let mut v = addresses(&r.json());
            v.sort();
            ok.insert(id, v);
            continue;
        }
        assert_eq!(r.json()["code"], 11, "{}", r.stdout);
        let ns = dir.path().join(&id).display().to_string();
        let d = ipam_call("DEL", &id, conf, &ns);
        assert_eq!(d.code, 0, "{}", d.stderr);
        std::fs::remove_file(&ns).unwrap();
        failed.push((id, r));
    }
    eprintln!(
        "agent killed after {at} answers: {} ADDs succeeded, {} failed",
        ok.len(),
        failed.len()
    );
    assert!(!failed.is_empty(), "the kill came too late to matter");
    a.restart();
    a.wait_ready();
    (failed, ok, dir)
}

/// The store's copies by container id (sorted addresses).
fn held_by_container(a: &Agent) -> ByContainer {
    let mut m: BTreeMap<String, Vec<IpAddr>> = BTreeMap::new();
    for (ip, (_, id)) in stored_allocations(a) {
        m.entry(id).or_default().push(ip);
    }
    m
}

/// After [`kill_during_storm`]: every successful ADD's addresses held by its attachment, no
/// failed one holding any, nothing seen twice.
fn check_after_kill(
    held: &ByContainer,
    failed: &[(String, PluginRun)],
    ok: &ByContainer,
    seen: &mut BTreeSet<IpAddr>,
) {
    for (id, want) in ok {
        assert_eq!(held.get(id), Some(want), "{id}");
        for ip in want {
            assert!(seen.insert(*ip), "{ip} handed out twice");
        }
    }
    for (id, _) in failed {
        assert!(
            !held.contains_key(id),
            "{id} failed but holds {:?}",
            held[id]
        );
    }
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn three_nodes_on_etcd_storms_outages_and_a_killed_agent() {
    ferro_testutil::require_root();
    let mut c = cluster(3, 3);
    apply(&c.agents[0], CN);
    let mut seen = BTreeSet::new();

    // 3 nodes × 100 concurrent dual-stack ADDs
    let t0 = Instant::now();
    let done = Arc::new(AtomicUsize::new(0));
    let storms: Vec<_> = (0..3)
        .map(|n| {
            let conf = ipam_conf(&c.agents[n], &["ipv4", "ipv6"]);
            let ids = ids(&format!("s{n}"), 100);
            let done = done.clone();
            std::thread::spawn(move || {
                let runs = storm(&conf, &ids, |_| "/run/netns/none".into(), &done);
                (ids, runs)
            })
        })
        .collect();
    let results: Vec<_> = storms.into_iter().map(|h| h.join().unwrap()).collect();
    eprintln!(
        "storm: 3 nodes x 100 concurrent dual-stack ADDs in {:.2?}",
        t0.elapsed()
    );
    let bl = blocks(&c.agents[0]);
    for (n, (ids, runs)) in results.iter().enumerate() {
        check_storm(runs, ids, NAMES[n], &bl, &mut seen);
    }
    assert_eq!(seen.len(), 600);

    // one member killed during a storm: nothing fails
    let done = Arc::new(AtomicUsize::new(0));
    let storms: Vec<_> = (0..3)
        .map(|n| {
            let conf = ipam_conf(&c.agents[n], &["ipv4", "ipv6"]);
            let ids = ids(&format!("k{n}"), 60);
            let done = done.clone();
            std::thread::spawn(move || {
                let runs = storm(&conf, &ids, |_| "/run/netns/none".into(), &done);
                (ids, runs)
            })
        })
        .collect();
    while done.load(Ordering::SeqCst) < 30 {
        std::thread::sleep(Duration::from_millis(5));
    }
    c.etcd.kill(1);
    let killed_at = done.load(Ordering::SeqCst);
    let results: Vec<_> = storms.into_iter().map(|h| h.join().unwrap()).collect();
    eprintln!("member m1 killed after {killed_at} of 180 ADDs; all answered");
    let bl = blocks(&c.agents[0]);
    for (n, (ids, runs)) in results.iter().enumerate() {
        check_storm(runs, ids, NAMES[n], &bl, &mut seen);
    }
    c.etcd.restart(1);

    // every member stopped
    let a = &c.agents[0];
    let free: u128 = show(a)["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["node"] == "node-a" && !b["cidr"].as_str().unwrap().contains(':'))
        .map(|b| b["capacity"].as_u64().unwrap() as u128 - b["inUse"].as_u64().unwrap() as u128)
        .sum();
    c.etcd.kill_all();
    let v4 = ipam_conf(a, &["ipv4"]);
    let t0 = Instant::now();
    for i in 0..free {
        let r = ipam_call("ADD", &format!("down-{i}"), &v4, "/run/netns/none").ok();
        for ip in addresses(&r) {
            assert!(seen.insert(ip), "{ip} handed out twice");
        }
    }
    eprintln!(
        "store down: {free} ADDs from claimed blocks in {:.2?} ({:.1} ms each)",
        t0.elapsed(),
        t0.elapsed().as_secs_f64() * 1000.0 / free.max(1) as f64
    );
    let e = ipam_call("ADD", "needs-a-claim", &v4, "/run/netns/none").err(11);
    let msg = e["msg"].as_str().unwrap();
    assert!(
        msg.starts_with("node node-a: claiming a new ipv4 block: ")
            && msg.contains("store unavailable: etcd http://10.240.0.4:2379"),
        "{e}"
    );
    for i in 0..10 {
        assert_eq!(
            ipam_call("DEL", &format!("s0-{i}"), &v4, "").ok(),
            Value::Null
        );
    }
    let check = a.cnictl(&["ipam", "check"], None);
    assert!(
        check.stdout.contains("The store cannot be read"),
        "{}",
        check.stdout
    );
    // back: the copies catch up everywhere
    let t0 = Instant::now();
    c.etcd.restart_stopped();
    let back = t0.elapsed();
    let took = converge(
        &c.agents.iter().collect::<Vec<_>>(),
        Duration::from_secs(60),
    );
    eprintln!("members back after {back:.1?}; every node converged {took:.1?} later");
    let stored = stored_allocations(a);
    assert_eq!(
        stored.values().filter(|(n, _)| n == "node-a").count() as u64,
        audit(a)["allocations"].as_u64().unwrap() * 2 - free as u64,
        "dual-stack pods hold two addresses, the {free} added while the store was down one"
    );
    ipam_call("ADD", "needs-a-claim", &v4, "/run/netns/none").ok();

    // kill -9 of node B's agent during a storm, then a restart
    let conf = ipam_conf(&c.agents[1], &["ipv4", "ipv6"]);
    let (failed, ok, _pods) = kill_during_storm(&mut c.agents[1], &conf);
    converge(
        &c.agents.iter().collect::<Vec<_>>(),
        Duration::from_secs(60),
    );
    check_after_kill(&held_by_container(&c.agents[0]), &failed, &ok, &mut seen);
    let chk = c.agents[1].cnictl(&["ipam", "check"], None);
    assert_eq!(chk.code, 0, "{}{}", chk.stdout, chk.stderr);
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn the_embedded_store_on_one_node_storm_kill_and_restart() {
    ferro_testutil::require_root();
    let node = Netns::new("node");
    let mut a = Agent::start(
        &workspace_bin("ferro-agent"),
        Some(&node),
        json!({"nodeName": "node-a", "leaseTTL": 3,
               "ipam": {"leakGraceSeconds": 2, "nodeGraceSeconds": 120, "emptyBlockGraceSeconds": 5}}),
    );
    apply(&a, CN);
    let conf = ipam_conf(&a, &["ipv4", "ipv6"]);
    let t0 = Instant::now();
    let first = ids("s", 100);
    let runs = storm(
        &conf,
        &first,
        |_| "/run/netns/none".into(),
        &Arc::new(AtomicUsize::new(0)),
    );
    eprintln!(
        "embedded store: 100 concurrent dual-stack ADDs in {:.2?}",
        t0.elapsed()
    );
    let mut seen = BTreeSet::new();
    check_storm(&runs, &first, "node-a", &blocks(&a), &mut seen);
    let (failed, ok, _pods) = kill_during_storm(&mut a, &conf);
    converge(&[&a], Duration::from_secs(30));
    let held = held_by_container(&a);
    assert_eq!(held.len(), 200 - failed.len());
    check_after_kill(&held, &failed, &ok, &mut seen);
    let chk = a.cnictl(&["ipam", "check"], None);
    assert_eq!(chk.code, 0, "{}{}", chk.stdout, chk.stderr);
}

/// `conf-examples/cluster/<file>` with its ipam and its attachment reports pointed at `a`.
fn cluster_example(file: &str, a: &Agent) -> Value {
    let mut v: Value = serde_json::from_str(
        &std::fs::read_to_string(example(&format!("cluster/{file}"))).unwrap(),
    )
    .unwrap();
    v["plugins"][0]["ipam"]["socket"] = json!(a.socket());
    v["plugins"][0]["agent"]["socket"] = json!(a.socket());
    v
}

/// A runtime per node of `c` with `main`, cluster-ipam, portmap and loopback, its network
/// `conf-examples/cluster/<file>` pointed at the node's agent.
fn runtimes(c: &Cluster, main: &str, file: &str) -> Vec<Runtime> {
    c.agents
        .iter()
        .zip(&c.world.nodes)
        .map(|(a, n)| {
            let r = Runtime::new(&n.ns, &[main, "cluster-ipam", "portmap", "loopback"]);
            r.write_conflist("10-net", &cluster_example(file, a));
            r
        })
        .collect()
}

/// Every agent's check is clean and no attachment holds an address (every pod deleted).
fn nothing_held(c: &Cluster) {
    for a in &c.agents {
        let chk = a.cnictl(&["ipam", "check"], None);
        assert_eq!(chk.code, 0, "{}", chk.stdout);
        assert!(
            chk.stdout.contains("0 attachments hold addresses"),
            "{}",
            chk.stdout
        );
    }
}

/// The Node's `spec.podCIDRs`, once written.
fn pod_cidrs(a: &Agent, node: &str) -> Vec<String> {
    let t0 = Instant::now();
    loop {
        let out = a.cnictl(&["get", "nodes", node, "-o", "json"], None);
        let v: Value = serde_json::from_str(&out.stdout).unwrap();
        if let Some(c) = v["spec"]["podCIDRs"].as_array() {
            return c.iter().map(|x| x.as_str().unwrap().to_string()).collect();
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "{}", out.stdout);
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn kubenet_nodes_take_node_blocks_and_their_pods_talk_across_nodes() {
    ferro_testutil::require_root();
    // the agents route each other's node blocks (kubenet on one L2 segment)
    let c = cluster_with(2, 1, &json!({"kubenetRoutes": true}));
    apply(
        &c.agents[0],
        &std::fs::read_to_string(example("clusternetwork.yaml")).unwrap(),
    );
    let rts = runtimes(&c, "bridge", "kubenet.conflist");
    let (p1, p2, p3) = (Netns::new("pod1"), Netns::new("pod2"), Netns::new("pod3"));
    let r1 = rts[0].add("kubenet", &p1);
    let r2 = rts[0].add("kubenet", &p2);
    let r3 = rts[1].add("kubenet", &p3);
    let cidr_a = pod_cidrs(&c.agents[0], "node-a");
    let cidr_b = pod_cidrs(&c.agents[0], "node-b");
    assert_eq!(cidr_a.len(), 2, "a /24 and a /64: {cidr_a:?}");
    let block_a: IpNet = cidr_a[0].parse().unwrap();
    let block_b: IpNet = cidr_b[0].parse().unwrap();
    assert_eq!(block_a.prefix_len(), 24);
    let (ip1, ip2, ip3) = (pod_ip(&r1), pod_ip(&r2), pod_ip(&r3));
    for ip in [&ip1, &ip2] {
        assert!(
            block_a.contains(&ip.parse::<IpAddr>().unwrap()),
            "{ip} outside {block_a}"
        );
    }
    assert!(block_b.contains(&ip3.parse::<IpAddr>().unwrap()));
    assert_eq!(
        r1["ips"][0]["gateway"]
            .as_str()
            .unwrap()
            .parse::<IpAddr>()
            .unwrap(),
        {
            let IpNet::V4(n) = block_a else { panic!() };
            IpAddr::V4((u32::from(n.network()) + 1).into())
        }
    );
    // the plugins reported their pods to their agents: the cluster sees every attachment
    let t0 = Instant::now();
    loop {
        let out = c.agents[0].cnictl(&["get", "attachments", "-A", "-o", "wide"], None);
        if [&ip1, &ip2, &ip3]
            .iter()
            .all(|ip| out.stdout.contains(ip.as_str()))
        {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "attachments not all in the store:\n{}{}",
            out.stdout,
            out.stderr
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // each node block routed to its node by the other node's agent (from its Node's podCIDRs)
    let t0 = Instant::now();
    while !ping(&p1, &ip3) {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "no route to node B's block {block_b} on node A"
        );
    }
    println!(
        "pod on A reaches pod on B through the agents' routes after {:?}",
        t0.elapsed()
    );
    assert!(ping(&p1, &ip2), "pod to pod on node A");
    assert!(ping(&p1, &ip3), "pod on A to pod on B");
    let srv = ProbeServer::start(&p3.path(), SocketAddr::new(ip3.parse().unwrap(), 8080));
    assert_eq!(
        tcp_source(&p1.path(), srv.addr),
        Some(ip1.parse().unwrap()),
        "no NAT between pods"
    );
    drop(srv);
    for (r, p) in [(&rts[0], &p1), (&rts[0], &p2), (&rts[1], &p3)] {
        r.del("kubenet", p);
    }
    nothing_held(&c);
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn flat_pods_take_vnet_addresses_from_the_shared_pool() {
    ferro_testutil::require_root();
    let c = cluster(2, 1);
    apply(
        &c.agents[0],
        &std::fs::read_to_string(example("cluster/clusternetwork-flat.yaml")).unwrap(),
    );
    let rts = runtimes(&c, "flat", "flat.conflist");
    let (p1, p2) = (Netns::new("pod1"), Netns::new("pod2"));
    let ip1 = pod_ip(&rts[0].add("azure", &p1));
    let ip2 = pod_ip(&rts[1].add("azure", &p2));
    let pool: IpNet = "10.240.128.0/17".parse().unwrap();
    for ip in [&ip1, &ip2] {
        assert!(
            pool.contains(&ip.parse::<IpAddr>().unwrap()),
            "{ip} outside the pool"
        );
    }
    let bl = blocks(&c.agents[0]);
    assert_eq!(bl.len(), 2, "one /28 per node: {bl:?}");
    assert!(bl.iter().all(|(b, _)| b.prefix_len() == 28));
    // the VM of the VNet reaches the pods directly and they see its address
    assert!(ping(&c.world.peer, &ip1));
    let srv = ProbeServer::start(&p1.path(), SocketAddr::new(ip1.parse().unwrap(), 8080));
    assert_eq!(
        tcp_source(&c.world.peer.path(), srv.addr),
        Some(PEER.parse().unwrap())
    );
    drop(srv);
    assert!(ping(&p1, &ip2), "pod on A to pod on B");
    let srv = ProbeServer::start(&p2.path(), SocketAddr::new(ip2.parse().unwrap(), 8080));
    assert_eq!(
        tcp_source(&p1.path(), srv.addr),
        Some(ip1.parse().unwrap()),
        "no NAT inside the VNet"
    );
    drop(srv);
    rts[0].del("azure", &p1);
    rts[1].del("azure", &p2);
    let chk = c.agents[1].cnictl(&["ipam", "check"], None);
    assert_eq!(chk.code, 0, "{}", chk.stdout);
}

/// The dual-stack pool of `clusternetwork.yaml` in blocks of 8 addresses, so that a few pods
/// fill one.
const SMALL_BLOCKS: &str = "apiVersion: ferro-cni.io/v1
kind: ClusterNetwork
metadata: {name: default}
spec:
  podCIDRs: [10.244.0.0/16, fd00:244::/56]
  ipamBlockSize: {ipv4: 29, ipv6: 125}
";

/// The blocks of `node` (both families).
fn blocks_of(a: &Agent, node: &str) -> BTreeSet<IpNet> {
    blocks(a)
        .into_iter()
        .filter(|(_, n)| n == node)
        .map(|(b, _)| b)
        .collect()
}

/// The destinations routed over the VXLAN device of `ns` (both families).
fn vxlan_routes(ns: &Netns) -> BTreeSet<IpNet> {
    let mut out = BTreeSet::new();
    for fam in ["-4", "-6"] {
        for r in ns
            .ip_json(&[fam, "route", "show", "dev", "ferro.1"])
            .as_array()
            .unwrap()
        {
            if r["gateway"].is_string() {
                out.insert(r["dst"].as_str().unwrap().parse::<IpNet>().unwrap());
            }
        }
    }
    out
}

/// Both addresses of an overlay pod's result (IPv4, IPv6), checked to be host addresses.
fn pod_pair(r: &Value) -> (IpAddr, IpAddr) {
    for ip in r["ips"].as_array().unwrap() {
        let net: IpNet = ip["address"].as_str().unwrap().parse().unwrap();
        assert_eq!(net.prefix_len(), net.max_prefix_len(), "{r}");
    }
    (pod_addr(r, false).unwrap(), pod_addr(r, true).unwrap())
}

/// Pings `dst` from `from` until it answers (membership follows the store).
fn ping_within(from: &Netns, dst: IpAddr, within: Duration) -> Duration {
    let t0 = Instant::now();
    while !from.try_exec(&["ping", "-c1", "-W", "0.3", "-q", &dst.to_string()]) {
        assert!(t0.elapsed() < within, "{dst} unreachable after {within:?}");
    }
    t0.elapsed()
}

/// TCP from `from` to a probe server on `to` at `dst`: the source address the server saw.
fn seen_source(from: &Netns, to: &Netns, dst: IpAddr) -> Option<IpAddr> {
    let srv = ProbeServer::start(&to.path(), SocketAddr::new(dst, 8080));
    tcp_source(&from.path(), srv.addr)
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn overlay_pods_take_pool_addresses_and_every_block_is_routed_to_its_node() {
    ferro_testutil::require_root();
    // the agents keep the VXLAN device and route every other node's blocks over it
    let c = cluster_with(3, 1, &json!({"overlay": {}}));
    apply(&c.agents[0], SMALL_BLOCKS);
    let rts = runtimes(&c, "overlay", "overlay.conflist");
    let pods: Vec<Netns> = (0..3).map(|i| Netns::new(&format!("ovp{i}"))).collect();
    let addrs: Vec<(IpAddr, IpAddr)> = (0..3)
        .map(|i| pod_pair(&rts[i].add("overlay", &pods[i])))
        .collect();
    let pool = ["10.244.0.0/16", "fd00:244::/56"].map(|p| p.parse::<IpNet>().unwrap());
    for (i, (v4, v6)) in addrs.iter().enumerate() {
        let mine = blocks_of(&c.agents[0], NAMES[i]);
        for ip in [v4, v6] {
            assert!(pool.iter().any(|p| p.contains(ip)), "{ip} outside the pool");
            assert!(
                mine.iter().any(|b| b.contains(ip)),
                "{ip} not in a block of {}: {mine:?}",
                NAMES[i]
            );
        }
    }
    // every pair of nodes, both families, and no NAT between pods
    let mut slowest = Duration::ZERO;
    for (from, pod) in pods.iter().enumerate() {
        for (_, &(v4, v6)) in addrs.iter().enumerate().filter(|(to, _)| *to != from) {
            slowest = slowest.max(ping_within(pod, v4, Duration::from_secs(20)));
            slowest = slowest.max(ping_within(pod, v6, Duration::from_secs(20)));
        }
    }
    println!("every pod reaches every other node's pods (both families); the slowest first answer after {slowest:?}");
    for (from, to) in [(0, 1), (1, 2), (2, 0)] {
        for v6 in [false, true] {
            let (dst, src) = if v6 {
                (addrs[to].1, addrs[from].1)
            } else {
                (addrs[to].0, addrs[from].0)
            };
            assert_eq!(
                seen_source(&pods[from], &pods[to], dst),
                Some(src),
                "node {from} to node {to}: the pod's own address"
            );
        }
    }
    let (a_ns, b_ns, c_ns) = (
        &c.world.nodes[0].ns,
        &c.world.nodes[1].ns,
        &c.world.nodes[2].ns,
    );
    let first_b = blocks_of(&c.agents[0], "node-b");
    assert_eq!(first_b.len(), 2, "a block per family: {first_b:?}");
    assert!(
        first_b.is_subset(&vxlan_routes(a_ns)),
        "node B's blocks on node A"
    );
    // no address of a pooled block is local to a node: the device carries none
    let dev = a_ns.ip_json(&["addr", "show", "dev", "ferro.1"]);
    assert_eq!(dev[0]["ifname"], "ferro.1", "{dev}");
    assert!(
        dev[0]["addr_info"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|a| a["scope"] != "global"),
        "{dev}"
    );

    // node B's blocks fill up (IPAM-only ADDs): its next pod is in a second block, which the
    // other nodes route to B as soon as B claims it
    let b = &c.agents[1];
    let mut fillers = Vec::new();
    for fam in ["ipv4", "ipv6"] {
        let free: u64 = show(b)["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| {
                x["node"] == "node-b"
                    && x["cidr"].as_str().unwrap().contains(':') == (fam == "ipv6")
            })
            .map(|x| x["capacity"].as_u64().unwrap() - x["inUse"].as_u64().unwrap())
            .sum();
        let conf = ipam_conf(b, &[fam]);
        for i in 0..free {
            let id = format!("fill-{fam}-{i}");
            ipam_call("ADD", &id, &conf, "/run/netns/none").ok();
            fillers.push((id, conf.clone()));
        }
    }
    let p_b2 = Netns::new("ovp-b2");
    let t0 = Instant::now();
    let (b2_v4, b2_v6) = pod_pair(&rts[1].add("overlay", &p_b2));
    let now_b = blocks_of(&c.agents[0], "node-b");
    let second: BTreeSet<IpNet> = now_b.difference(&first_b).copied().collect();
    assert_eq!(second.len(), 2, "a second block per family: {now_b:?}");
    for ip in [b2_v4, b2_v6] {
        assert!(
            second.iter().any(|s| s.contains(&ip)),
            "{ip} not in {second:?}"
        );
    }
    for (ns, pod) in [(a_ns, &pods[0]), (c_ns, &pods[2])] {
        ping_within(pod, b2_v4, Duration::from_secs(20));
        ping_within(pod, b2_v6, Duration::from_secs(20));
        assert!(second.is_subset(&vxlan_routes(ns)));
    }
    println!(
        "node B's second blocks {second:?} reached from nodes A and C {:?} after the ADD started",
        t0.elapsed()
    );
    assert_eq!(seen_source(&pods[0], &p_b2, b2_v4), Some(addrs[0].0));
    assert_eq!(seen_source(&pods[2], &p_b2, b2_v6), Some(addrs[2].1));
    // the pod on B's first block still answers
    assert!(ping(&pods[0], &addrs[1].0.to_string()));

    // everything on B's surplus blocks goes: once empty for the grace period, they return to
    // the pool and leave every other node's routes
    rts[1].del("overlay", &p_b2);
    for (id, conf) in &fillers {
        assert_eq!(ipam_call("DEL", id, conf, "").ok(), Value::Null);
    }
    let t0 = Instant::now();
    let kept = loop {
        let now_b = blocks_of(&c.agents[0], "node-b");
        if now_b.len() == 2 {
            break now_b;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "B keeps {now_b:?}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(kept, first_b, "B's first pod still holds its first blocks");
    let returned = &second;
    for ns in [a_ns, c_ns] {
        let t1 = Instant::now();
        loop {
            let routes = vxlan_routes(ns);
            if routes.is_disjoint(returned) && kept.is_subset(&routes) {
                break;
            }
            assert!(t1.elapsed() < Duration::from_secs(20), "{routes:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    println!("node B gave back {returned:?} {:?} after its last pods there went; the other nodes dropped them", t0.elapsed());
    // B's own routes: the other nodes' blocks, never its own
    let on_b = vxlan_routes(b_ns);
    assert!(on_b.is_disjoint(&kept), "{on_b:?}");
    assert!(
        ping(&pods[0], &addrs[1].0.to_string()),
        "B's first pod still reached"
    );

    let checked = rts[0].check("overlay", &pods[0], &[]);
    assert_eq!(checked.code, 0, "{}", checked.stderr);
    let sync = rts[0].cnictl(&["overlay", "sync", "overlay"], &[]);
    assert_eq!(sync.code, 0, "{}", sync.stderr);
    assert!(
        sync.stdout.contains("peers kept by ferro-agent"),
        "{}",
        sync.stdout
    );
    for (i, p) in pods.iter().enumerate() {
        rts[i].del("overlay", p);
    }
    nothing_held(&c);
}
