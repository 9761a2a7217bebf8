//! Measuring the agent at scale, on two nodes of the bench's VNet:
//!
//! 1. an etcd member starts in node A's namespace; the bench writes the cluster into it:
//!    namespaces, 100 nodes (A, B and simulated ones, each with a `Node` and a lease
//!    record), 10,000 pods of the simulated nodes (`Pod` and `Attachment`), 1,000 Services
//!    selecting them and 1,000 NetworkPolicies isolating the server pod (each letting one
//!    group of those pods in, one the client);
//! 2. `ferro-agent` starts on node A (timed until its first policy sync of everything); our
//!    bridge plugin attaches the server pod on A (reported to the agent) and the client pod
//!    on B (no agent there: the bench writes its attachment), routes between the nodes'
//!    pod subnets as a cloud route table would;
//! 3. changes, each written to the store and timed from the store's answer until
//!    `cnictl get policystats` shows the agent programmed that revision (its policy loop
//!    publishes a revision only after the kernel accepted the batch);
//! 4. the agent's VmRSS, and its utime+stime over an idle window;
//! 5. rounds of the datapath from the client on B to a server pod on each of three nodes
//!    built alike: A, with everything loaded and the agent idle; N, with no policy and no
//!    services (no agent, no table); T, with the floor of any stateful firewall, conntrack
//!    alone (one table of one rule). The three are measured in short slices, one after
//!    the other in each round, many rounds: whatever the shared machine does during a
//!    round (another tenant, a frequency change) weighs on all three, and the median of
//!    the rounds' ratios is the figure. (Measuring the three on one node in turn needs the
//!    agent stopped and started between them: rounds of minutes, whose drift swamped the
//!    few percent the target is about.)

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ferro_cluster::{keys, Kind};
use ferro_store::{Etcd, EtcdConfig, Op, Store, Txn};
use serde_json::{json, Value};

use super::{ChangeRow, ClusterScaleBench, Round, Sizes};
use crate::error::Error;
use crate::harness::{Bench, Node};
use crate::ns::{self, PodNs};
use crate::outcome::Outcome;
use crate::output::progress;
use crate::request::ConfList;
use crate::scenario::policy::run::{
    attach_pod, median, AgentProc, Samples, Servers, CONN_PORT, IPERF_PORT,
};
use crate::workloads::Suite;

/// The measured pods' namespace (the bench's CNI_ARGS name it).
const NS: &str = "bench";
/// The namespace of the simulated nodes' pods.
const FAR: &str = "far";

/// The datapath's configurations, numbered as [`Round::figures`] and the rows are.
#[derive(Debug, Clone, Copy)]
enum Config {
    /// No policy, no services: a node alike with no agent and no table.
    None = 0,
    /// Everything loaded, the agent running (idle), on node A.
    Loaded = 1,
    /// Conntrack alone ([`conntrack_only`]), on a node alike.
    Tracked = 2,
}

/// The table of the conntrack-only configuration (see [`conntrack_only`]).
const CT_TABLE: &str = "ferro_bench_ct";

/// Installs the least any stateful firewall costs on `node`: one table whose forward chain
/// accepts established and related traffic and does nothing else. The kernel then tracks
/// every connection through the node, which it does not without a table that asks for it.
fn conntrack_only(node: &Path) -> Result<(), Error> {
    use ferro_nftables::{
        priority, Batch, Chain, ChainType, Hook, NftSocket, RuleBuilder, TableRef, Verdict,
        CT_STATE_ESTABLISHED, CT_STATE_RELATED,
    };
    ns::in_netns(node, || -> Result<(), String> {
        let t = TableRef::inet(CT_TABLE);
        let mut b = Batch::new();
        b.add_table(&t)
            .add_chain(
                &t,
                Chain::base(
                    "forward",
                    ChainType::Filter,
                    Hook::Forward,
                    priority::FILTER,
                ),
            )
            .add_rule(
                &t,
                RuleBuilder::new()
                    .ct_state_any(CT_STATE_ESTABLISHED | CT_STATE_RELATED)
                    .verdict(Verdict::Accept)
                    .build("forward"),
            );
        NftSocket::open()
            .and_then(|mut s| s.apply(&b))
            .map_err(|e| e.to_string())
    })?
    .map_err(other)
}

/// What the store holds.
pub fn sizes(quick: bool) -> Sizes {
    if quick {
        Sizes {
            nodes: 10,
            pods: 500,
            services: 50,
            policies: 50,
        }
    } else {
        Sizes {
            nodes: 100,
            pods: 10_000,
            services: 1000,
            policies: 1000,
        }
    }
}

/// Rounds of the datapath, times each change is made, the idle window.
fn counts(quick: bool) -> (usize, usize, Duration) {
    if quick {
        (1, 2, Duration::from_secs(2))
    } else {
        // (many short rounds: the connection rate of one slice swings by a fifth or more on
        // a shared two-core machine, and the median of many paired ratios resolves what
        // five long rounds do not)
        (15, 10, Duration::from_secs(10))
    }
}

/// Seconds of throughput and of connection rate per configuration and round.
const SLICE: (u64, u64) = (2, 1);

/// The scenario.
pub fn run(b: &mut Bench) -> ClusterScaleBench {
    let quick = b.params().quick;
    let s = sizes(quick);
    let (rounds, _, idle) = counts(quick);
    progress(&format!(
        "agent at scale: {} nodes, {} pods, {} services, {} policies",
        s.nodes, s.pods, s.services, s.policies
    ));
    match measure(b) {
        Ok(c) => c,
        Err(e) => ClusterScaleBench::failed(s, rounds, idle, &e.to_string()),
    }
}

fn other(e: impl std::fmt::Display) -> Error {
    Error::Other(format!("agent at scale: {e}"))
}

/// The name of simulated node `i`.
fn sim_node(i: usize) -> String {
    format!("sim-{i:03}")
}

fn node_objects(name: &str, ip: IpAddr) -> Vec<(String, Value)> {
    vec![
        (
            keys::object(Kind::Node, None, name),
            json!({"apiVersion": "ferro-cni.io/v1", "kind": "Node", "metadata": {"name": name},
                   "spec": {"addresses": [ip.to_string()]}}),
        ),
        (
            keys::node_lease(name),
            json!({"node": name, "lease": "0", "ttlSeconds": 3600, "since": "2026-01-01T00:00:00Z"}),
        ),
    ]
}

/// Far pod `i`: its `Pod` (labels `group` for the policies, `app` for the services) and its
/// attachment on a simulated node, address `addr`.
fn far_pod(s: &Sizes, i: usize, name: &str, addr: Ipv4Addr, group: usize) -> Vec<(String, Value)> {
    let att = format!("{name}-eth0");
    let node = sim_node(i % (s.nodes - 2).max(1));
    vec![
        (
            keys::object(Kind::Pod, Some(FAR), name),
            json!({"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": name, "namespace": FAR,
                                "labels": {"group": format!("g{group}"), "app": format!("a{}", i % s.services)}},
                   "spec": {"containers": [{"name": "c", "image": "busybox",
                                            "ports": [{"name": "http", "containerPort": 8080}]}]}}),
        ),
        (
            keys::object(Kind::Attachment, Some(FAR), &att),
            json!({"apiVersion": "ferro-cni.io/v1", "kind": "Attachment",
                   "metadata": {"name": att, "namespace": FAR},
                   "spec": {"node": node, "pod": name, "containerID": format!("c{i}"),
                            "interface": "eth0", "addresses": [format!("{addr}/16")]}}),
        ),
    ]
}

fn far_addr(i: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 99, 0, 0)) + i as u32 + 1)
}

/// A policy isolating the server, letting group `g` of the far pods in on one port.
fn group_policy(name: &str, g: usize) -> (String, Value) {
    (
        keys::object(Kind::NetworkPolicy, Some(NS), name),
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
               "metadata": {"name": name, "namespace": NS},
               "spec": {"podSelector": {"matchLabels": {"app": "server"}},
                        "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": FAR}},
                                               "podSelector": {"matchLabels": {"group": format!("g{g}")}}}],
                                     "ports": [{"port": 9000 + g % 100}]}]}}),
    )
}

/// The store's contents before the agent starts (`b`: the client's node; the agent's own
/// node registers itself).
fn seed_objects(s: &Sizes, b: (&str, IpAddr)) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for ns in [NS, FAR] {
        out.push((
            keys::object(Kind::Namespace, None, ns),
            json!({"apiVersion": "v1", "kind": "Namespace",
                   "metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}}}),
        ));
    }
    out.extend(node_objects(b.0, b.1));
    for i in 0..s.nodes.saturating_sub(2) {
        let ip = Ipv4Addr::new(10, 241, (i / 250) as u8, (i % 250 + 1) as u8);
        out.extend(node_objects(&sim_node(i), IpAddr::V4(ip)));
    }
    for (name, app) in [("client", "client"), ("server", "server")] {
        out.push((
            keys::object(Kind::Pod, Some(NS), name),
            json!({"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": name, "namespace": NS, "labels": {"app": app}},
                   "spec": {"containers": [{"name": "c", "image": "busybox"}]}}),
        ));
    }
    for i in 0..s.pods {
        out.extend(far_pod(s, i, &format!("p{i}"), far_addr(i), i % s.policies));
    }
    for i in 0..s.services {
        let vip = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 96, 0, 0)) + i as u32 + 10);
        let name = format!("s{i}");
        out.push((
            keys::object(Kind::Service, Some(FAR), &name),
            json!({"apiVersion": "v1", "kind": "Service",
                   "metadata": {"name": name, "namespace": FAR},
                   "spec": {"selector": {"app": format!("a{i}")}, "clusterIP": vip.to_string(),
                            "clusterIPs": [vip.to_string()],
                            "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]}}),
        ));
    }
    out.push((
        keys::object(Kind::NetworkPolicy, Some(NS), "client-in"),
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
               "metadata": {"name": "client-in", "namespace": NS},
               "spec": {"podSelector": {"matchLabels": {"app": "server"}},
                        "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "client"}}}],
                                     "ports": [{"port": CONN_PORT}, {"port": IPERF_PORT}]}]}}),
    ));
    for g in 0..s.policies.saturating_sub(1) {
        out.push(group_policy(&format!("g{g}"), g));
    }
    out
}

/// The store, reached from inside node A's namespace (where etcd listens).
struct StoreAt {
    node: std::path::PathBuf,
    endpoint: String,
}

impl StoreAt {
    /// Writes `objects` (in transactions of at most 100 puts); the last revision.
    fn put(&self, objects: &[(String, Value)]) -> Result<i64, Error> {
        let endpoint = self.endpoint.clone();
        ns::in_netns(&self.node, move || -> Result<i64, String> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async {
                let store = Etcd::connect(&EtcdConfig::new(vec![endpoint]))
                    .await
                    .map_err(|e| e.to_string())?;
                let mut rev = 0;
                for chunk in objects.chunks(100) {
                    let mut txn = Txn::new();
                    for (k, v) in chunk {
                        txn = txn.then(Op::put(k.clone(), v.to_string().into_bytes()));
                    }
                    rev = store.txn(txn).await.map_err(|e| e.to_string())?.revision;
                }
                Ok(rev)
            })
        })?
        .map_err(other)
    }
}

/// Waits until the agent's policy loop programmed `revision` (the loop publishes a
/// revision once the kernel accepted it); when. Each poll starts a process: not so often
/// that it loads the machine.
fn until_revision(agent: &AgentProc, revision: i64, deadline: Duration) -> Result<Instant, Error> {
    let what = format!("revision {revision} not programmed");
    agent.until(&what, deadline, Duration::from_millis(5), |v| {
        v["revision"].as_i64().unwrap_or(0) >= revision
    })
}

fn agent_pid(agent: &AgentProc) -> Result<u32, Error> {
    agent
        .child
        .as_ref()
        .map(std::process::Child::id)
        .ok_or_else(|| other("the agent is not running"))
}

/// A memory figure of `pid`'s status (`VmRSS:`, `VmHWM:`), bytes.
fn status_bytes(pid: u32, field: &str) -> Result<u64, Error> {
    let path = format!("/proc/{pid}/status");
    let s =
        std::fs::read_to_string(&path).map_err(|e| Error::io("reading", Path::new(&path), e))?;
    s.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or_else(|| other(format!("no {field} in {path}")))
}

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> Result<u64, Error> {
    let path = format!("/proc/{pid}/stat");
    let s =
        std::fs::read_to_string(&path).map_err(|e| Error::io("reading", Path::new(&path), e))?;
    // The fields after the command name (which may hold spaces) in parentheses.
    let rest = s.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): utime is field 14, stime 15.
    let get = |i: usize| f.get(i - 3).and_then(|v| v.parse::<u64>().ok());
    match (get(14), get(15)) {
        (Some(u), Some(s)) => Ok(u + s),
        _ => Err(other(format!("unexpected {path}"))),
    }
}

/// CPU use of `pid` over `window`, percent of one core.
fn idle_cpu(pid: u32, window: Duration) -> Result<f64, Error> {
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64;
    let (c0, t0) = (cpu_ticks(pid)?, Instant::now());
    std::thread::sleep(window);
    let (c1, t1) = (cpu_ticks(pid)?, t0.elapsed());
    Ok((c1 - c0) as f64 / hz / t1.as_secs_f64() * 100.0)
}

fn ip(args: &[&str]) -> Result<(), Error> {
    let st = Command::new("ip")
        .args(args)
        .stdout(Stdio::null())
        .status()
        .map_err(|e| Error::io("running", Path::new("ip"), e))?;
    if st.success() {
        Ok(())
    } else {
        Err(other(format!("ip {}: {st}", args.join(" "))))
    }
}

/// Attaches pod `name` on `node` with the bridge plugin (subnet `subnet`, reporting to the
/// agent at `socket` when given); its address.
fn attach(
    b: &mut Bench,
    node: &Node,
    name: &str,
    subnet: &str,
    socket: Option<&Path>,
) -> Result<(PodNs, IpAddr), Error> {
    let data = b.cfg.ipam_dir.join(format!("cluster-scale-{name}"));
    let mut conf = json!({"type": "bridge", "bridge": "cbr0", "isGateway": true, "ipMasq": false,
        "ipam": {"type": "host-local", "dataDir": data, "ranges": [[{"subnet": subnet}]],
                 "routes": [{"dst": "0.0.0.0/0"}]}});
    if let Some(s) = socket {
        conf["agent"] = json!({"socket": s});
    }
    let chain = crate::exec::Chain {
        list: ConfList::new("cluster-scale", vec![conf]),
        cap_args: serde_json::Map::new(),
        cni_path: b.cni_path(Suite::Ours),
        extra_env: Vec::new(),
    };
    attach_pod(b, &node.ns, &chain, name)
}

/// Times `reps` changes made by `change(k)` (the objects to write).
fn time_changes(
    store: &StoreAt,
    agent: &AgentProc,
    label: &str,
    reps: usize,
    change: impl Fn(usize) -> Vec<(String, Value)>,
) -> ChangeRow {
    let mut took = Vec::new();
    let mut error = None;
    for k in 0..reps {
        let objs = change(k);
        let r = store.put(&objs).and_then(|rev| {
            let t0 = Instant::now();
            until_revision(agent, rev, Duration::from_secs(30)).map(|t| t.duration_since(t0))
        });
        match r {
            Ok(d) => took.push(d),
            Err(e) => error = Some(e.to_string()),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let fail = || Outcome::Failed(error.clone().unwrap_or_else(|| "not measured".into()));
    let mut secs: Vec<f64> = took.iter().map(Duration::as_secs_f64).collect();
    ChangeRow {
        label: label.to_string(),
        samples: took.len(),
        median: median(&mut secs).map_or_else(fail, |s| Outcome::Done(Duration::from_secs_f64(s))),
        max: took.iter().max().map_or_else(fail, |d| Outcome::Done(*d)),
    }
}

fn measure(b: &mut Bench) -> Result<ClusterScaleBench, Error> {
    let quick = b.params().quick;
    let s = sizes(quick);
    let (rounds, reps, idle) = counts(quick);
    let (na, nb, nn, nt) = (b.node(), b.node(), b.node(), b.node());
    let dir = b.workdir().join("cluster-scale");
    let state = dir.join("state");
    std::fs::create_dir_all(&state).map_err(|e| Error::io("creating", &state, e))?;
    let netns_a = b
        .node_netns(&na)
        .ok_or_else(|| other("node A has no namespace"))?;
    let etcd = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        ferro_testutil::etcd::EtcdCluster::start(&[(netns_a, na.ip)], None)
    }))
    .map_err(|_| other("etcd did not start"))?;
    let store = StoreAt {
        node: na.ns.clone(),
        endpoint: etcd.endpoint(0),
    };
    progress("agent at scale: writing the store");
    let seeded = store.put(&seed_objects(&s, (&nb.name, nb.ip)))?;

    let ours = b.cfg.ours_src.clone();
    let socket = dir.join("agent.sock");
    let cfg = json!({"nodeName": na.name, "nodeAddresses": [na.ip.to_string()],
        "store": {"etcd": {"endpoints": [etcd.endpoint(0)]}}, "socket": socket, "stateDir": state,
        "leaseTTL": 30, "logLevel": "info"});
    let mut agent = AgentProc::new(&ours, &na.ns, &dir, &socket, &cfg)?;
    let t0 = Instant::now();
    agent.start()?;
    let ready = until_revision(&agent, seeded, Duration::from_secs(120))?;
    let start = Outcome::Done(ready.duration_since(t0));

    // The pods (a server on A, N and T, the client on B), and the routes between the
    // nodes' pod subnets.
    let (server, server_ip) = attach(b, &na, "server", "10.244.1.0/24", Some(&socket))?;
    let (client, client_ip) = attach(b, &nb, "client", "10.244.2.0/24", None)?;
    let (server_n, server_n_ip) = attach(b, &nn, "server-n", "10.244.3.0/24", None)?;
    let (server_t, server_t_ip) = attach(b, &nt, "server-t", "10.244.4.0/24", None)?;
    let b_name = netns_name_of(&nb);
    for (node, subnet) in [
        (&na, "10.244.1.0/24"),
        (&nn, "10.244.3.0/24"),
        (&nt, "10.244.4.0/24"),
    ] {
        let name = netns_name_of(node);
        let (to_b, to_node) = (nb.ip.to_string(), node.ip.to_string());
        ip(&[
            "-n",
            &name,
            "route",
            "replace",
            "10.244.2.0/24",
            "via",
            &to_b,
        ])?;
        ip(&["-n", &b_name, "route", "replace", subnet, "via", &to_node])?;
    }
    conntrack_only(&nt.ns)?;
    let client_att = format!("client-{}", nb.name);
    let client_obj = [(
        keys::object(Kind::Attachment, Some(NS), &client_att),
        json!({"apiVersion": "ferro-cni.io/v1", "kind": "Attachment",
               "metadata": {"name": client_att, "namespace": NS},
               "spec": {"node": nb.name, "pod": "client", "containerID": "client",
                        "interface": "eth0", "addresses": [format!("{client_ip}/24")]}}),
    )];
    let rev = store.put(&client_obj)?;
    until_revision(&agent, rev, Duration::from_secs(60))?;
    let servers = [
        Servers::start(&client, &server)?,
        Servers::start(&client, &server_n)?,
        Servers::start(&client, &server_t)?,
    ];

    let mut figures = ClusterScaleBench::failed(s, rounds, idle, "not measured");
    figures.start = start;
    let (mut none, mut loaded, mut tracked) =
        (Samples::default(), Samples::default(), Samples::default());
    let result = (|| -> Result<(), Error> {
        progress("agent at scale: changes");
        let base = s.pods;
        figures.changes.push(time_changes(
            &store,
            &agent,
            "a pod added on another node",
            reps,
            |k| {
                far_pod(
                    &s,
                    base + k,
                    &format!("new{k}"),
                    far_addr(base + k),
                    k % s.policies,
                )
            },
        ));
        figures.changes.push(time_changes(
            &store,
            &agent,
            "a pod's labels changed (another group)",
            reps,
            |k| {
                let mut o = far_pod(&s, k, &format!("p{k}"), far_addr(k), (k + 1) % s.policies);
                o.truncate(1);
                o
            },
        ));
        figures.changes.push(time_changes(
            &store,
            &agent,
            "a NetworkPolicy applied",
            reps,
            |k| vec![group_policy(&format!("extra{k}"), k % s.policies)],
        ));
        let pid = agent_pid(&agent)?;
        let memory = |field: &str| {
            status_bytes(pid, field).map_or_else(|e| Outcome::Failed(e.to_string()), Outcome::Done)
        };
        figures.rss_busy = memory("VmRSS:");
        progress("agent at scale: idle CPU");
        figures.idle_cpu =
            idle_cpu(pid, idle).map_or_else(|e| Outcome::Failed(e.to_string()), Outcome::Done);
        figures.rss = memory("VmRSS:");
        figures.rss_peak = memory("VmHWM:");
        // The three configurations in turn, in each of their six orders over the rounds: a
        // measurement's position in the round (what the one before left behind) weighs on
        // each configuration alike.
        let (tsecs, csecs) = if quick { (1, 1) } else { SLICE };
        for round in 0..rounds {
            progress(&format!(
                "agent at scale: datapath round {} of {rounds}",
                round + 1
            ));
            let mut order = [Config::Loaded, Config::None, Config::Tracked];
            order.rotate_left(round % 3);
            if (round / 3) % 2 == 1 {
                order.reverse();
            }
            let mut this = Round::unmeasured(3);
            for config in order {
                let (samples, ip, node) = match config {
                    Config::Loaded => (&mut loaded, server_ip, &na.ns),
                    Config::None => (&mut none, server_n_ip, &nn.ns),
                    Config::Tracked => (&mut tracked, server_t_ip, &nt.ns),
                };
                this.figures[config as usize] =
                    samples.measure_for(client.path(), ip, node, tsecs, csecs);
            }
            figures.per_round.push(this);
        }
        Ok(())
    })();
    for s in servers {
        s.stop();
    }
    agent.stop();
    drop(etcd);
    b.bury([server, client, server_n, server_t]);
    // The agent's log (its sync times) outlives the run's scratch space when asked for.
    if let Some(keep) = std::env::var_os("FERRO_BENCH_KEEP_LOGS") {
        let _ = std::fs::copy(&agent.log, Path::new(&keep).join("cluster-scale-agent.log"));
    }
    figures.rows = vec![
        none.row("no policy, no services (a node alike: no agent, no tables)".into()),
        loaded.row(format!(
            "{} services, {} policies, {} pods",
            s.services, s.policies, s.pods
        )),
        tracked.row("conntrack only (a node alike, one table: established, related accept)".into()),
    ];
    if let Err(e) = result {
        if figures.changes.is_empty() {
            figures.changes.push(ChangeRow {
                label: "changes".into(),
                median: Outcome::Failed(e.to_string()),
                max: Outcome::Failed(e.to_string()),
                samples: 0,
            });
        }
        if !figures.rss.failed() && figures.rss.done().is_none() {
            figures.rss = Outcome::Failed(e.to_string());
        }
    }
    Ok(figures)
}

fn netns_name_of(n: &Node) -> String {
    n.ns.file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seeded_objects_decode_and_the_sizes_hold() {
        let s = sizes(true);
        let b: IpAddr = "10.240.0.5".parse().unwrap();
        let objs = seed_objects(&s, ("b", b));
        let mut pods = 0;
        let mut services = 0;
        let mut policies = 0;
        let mut nodes = 0;
        for (k, v) in &objs {
            if k.starts_with(&keys::node_lease("")) {
                let l: ferro_cluster::resource::NodeLease =
                    serde_json::from_value(v.clone()).unwrap();
                assert!(!l.node.is_empty());
                continue;
            }
            let o = ferro_cluster::Object::from_typed(v.clone()).unwrap();
            assert_eq!(&o.key(), k);
            match o.kind() {
                Kind::Attachment => pods += 1,
                Kind::Service => services += 1,
                Kind::NetworkPolicy => policies += 1,
                Kind::Node => nodes += 1,
                _ => {}
            }
        }
        // The agent's own node registers itself.
        assert_eq!(
            (pods, services, policies, nodes + 1),
            (s.pods, s.services, s.policies, s.nodes)
        );
    }
}
