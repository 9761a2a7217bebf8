//! Measuring cluster IPAM. A ferro-agent runs on an embedded store prepared beforehand (the
//! ClusterNetwork, and for the claims the Nodes and blocks of simulated nodes, each block's
//! copy listing some allocations, so a claim lists what a real cluster's store holds). The
//! agent runs in a network namespace of its own (IPAM touches no network); the plugins
//! reach it through its unix socket.
//!
//! - Latency: ADD+DEL cycles of `cluster-ipam` and of our `host-local`, IPAM alone,
//!   alternating in blocks after a warm-up, each process timed as every workload's are.
//! - Claims: sequential ADDs on a /28 pool, so a claim every 16; the agent logs how long
//!   each claim took (list the blocks, pick a candidate, one transaction), which is the
//!   figure reported.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ferro_testutil::agent::Agent;
use serde_json::{json, Value};

use super::{ClaimRow, ClusterIpam, IpamLatency};
use crate::exec::invoke;
use crate::harness::Bench;
use crate::outcome::Outcome;
use crate::output::progress;
use crate::stats::Summary;
use crate::workloads::Suite;

/// Simulated node counts of the claim measurements.
pub const CLAIM_NODES: [usize; 2] = [3, 100];
/// Blocks each simulated node holds.
const BLOCKS_PER_NODE: usize = 4;
/// Allocations listed in each of their copies.
const ALLOCS_PER_BLOCK: usize = 12;
/// The pool and its block prefix.
const POOL: &str = "10.244.0.0/16";
const BLOCK_PREFIX: u8 = 28;

/// Runs the scenario.
pub fn run(b: &mut Bench) -> ClusterIpam {
    let prm = b.params().clone();
    progress(
        "cluster IPAM: cluster-ipam beside host-local; block claims with 3 and 100 simulated nodes",
    );
    let agent_bin = b.cfg.ours_src.join("ferro-agent");
    let plugin = b.cni_path(Suite::Ours).join("cluster-ipam");
    let host_local = b.cni_path(Suite::Ours).join("host-local");
    let missing: Vec<String> = [&agent_bin, &plugin, &host_local]
        .iter()
        .filter(|p| !p.exists())
        .map(|p| p.display().to_string())
        .collect();
    if !missing.is_empty() {
        let why = format!("not built: {}", missing.join(", "));
        return ClusterIpam {
            host_local: Outcome::NotBuilt(why.clone()),
            cluster_ipam: Outcome::NotBuilt(why.clone()),
            claims: CLAIM_NODES
                .iter()
                .map(|n| ClaimRow {
                    nodes: *n,
                    blocks: n * BLOCKS_PER_NODE,
                    claims: Outcome::NotBuilt(why.clone()),
                })
                .collect(),
        };
    }
    let dir = b.workdir().join("cluster-ipam");
    let (host_local, cluster_ipam) = match latency(b, &agent_bin, &plugin, &host_local, &dir) {
        Ok((h, c)) => (Outcome::Done(h), Outcome::Done(c)),
        Err(e) => (Outcome::Failed(e.clone()), Outcome::Failed(e)),
    };
    let claims = CLAIM_NODES
        .iter()
        .map(|n| ClaimRow {
            nodes: *n,
            blocks: n * BLOCKS_PER_NODE,
            claims: match claims(&agent_bin, &plugin, &dir, *n, prm.claims) {
                Ok(s) => Outcome::Done(s),
                Err(e) => Outcome::Failed(e),
            },
        })
        .collect();
    ClusterIpam {
        host_local,
        cluster_ipam,
        claims,
    }
}

/// The block of the pool at `index`.
fn block(index: usize) -> String {
    let base = u32::from(std::net::Ipv4Addr::new(10, 244, 0, 0));
    let size = 1u32 << (32 - u32::from(BLOCK_PREFIX));
    let net = std::net::Ipv4Addr::from(base + u32::try_from(index).unwrap_or(0) * size);
    format!("{net}/{BLOCK_PREFIX}")
}

/// Writes the ClusterNetwork, and `nodes` simulated nodes with their blocks, into a new
/// embedded store at `path` (closed again before the agent opens it).
pub(crate) fn prepare(path: &Path, nodes: usize) -> Result<(), String> {
    use ferro_cluster::{keys, Kind};
    use ferro_store::{Embedded, Store};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let s = Embedded::open(path).await.map_err(|e| e.to_string())?;
        let put = |k: String, v: Value| {
            let s = s.clone();
            async move { s.put(&k, v.to_string().into_bytes()).await.map(drop).map_err(|e| e.to_string()) }
        };
        put(
            keys::object(Kind::ClusterNetwork, None, "default"),
            json!({"apiVersion": "ferro-cni.io/v1", "kind": "ClusterNetwork", "metadata": {"name": "default"},
                   "spec": {"podCIDRs": [POOL], "ipamBlockSize": {"ipv4": BLOCK_PREFIX}}}),
        )
        .await?;
        for i in 0..nodes {
            let node = format!("sim-{i}");
            put(
                keys::object(Kind::Node, None, &node),
                json!({"apiVersion": "ferro-cni.io/v1", "kind": "Node", "metadata": {"name": node},
                       "spec": {"addresses": [format!("10.240.{}.{}", i / 250, 4 + i % 250)]}}),
            )
            .await?;
            for j in 0..BLOCKS_PER_NODE {
                let cidr = block(i * BLOCKS_PER_NODE + j);
                let net: ipnet::Ipv4Net = cidr.parse().map_err(|e| format!("{cidr}: {e}"))?;
                let allocations: Vec<Value> = net
                    .hosts()
                    .take(ALLOCS_PER_BLOCK)
                    .enumerate()
                    .map(|(k, a)| {
                        json!({"address": a.to_string(), "containerID": format!("{node}-{j}-{k}"), "ifname": "eth0",
                               "network": "sim", "pod": {"namespace": "default", "name": format!("p-{node}-{j}-{k}")},
                               "since": 1_767_225_600u64, "seq": k + 1})
                    })
                    .collect();
                let name = keys::block_name(&ipnet::IpNet::V4(net));
                put(
                    keys::object(Kind::IpamBlock, None, &name),
                    json!({"apiVersion": "ferro-cni.io/v1", "kind": "IPAMBlock", "metadata": {"name": name},
                           "spec": {"cidr": cidr, "node": node},
                           "status": {"mode": "pod", "syncedSeq": ALLOCS_PER_BLOCK, "inUse": ALLOCS_PER_BLOCK,
                                      "capacity": 1u32 << (32 - u32::from(BLOCK_PREFIX)), "allocations": allocations}}),
                )
                .await?;
            }
        }
        Ok(())
    })
}

/// Starts an agent on the store at `store` (in the network namespace at `netns`, else in
/// one of its own); waits (up to 30 s) until it serves.
pub(crate) fn start_agent(bin: &Path, store: &Path, netns: Option<&Path>) -> Result<Agent, String> {
    let mut a = Agent::spawn_at(
        bin,
        netns,
        json!({"nodeName": "bench-node", "leaseTTL": 10,
               "store": {"embedded": {"path": store}},
               "ipam": {"leakGraceSeconds": 86400, "nodeGraceSeconds": 86400, "emptyBlockGraceSeconds": 86400}}),
    );
    let t0 = Instant::now();
    loop {
        if std::os::unix::net::UnixStream::connect(a.socket()).is_ok() {
            return Ok(a);
        }
        if let Some(st) = a.wait_exit(Duration::from_millis(50)) {
            return Err(format!("ferro-agent exited ({st}): {}", tail(&a.log())));
        }
        if t0.elapsed() > Duration::from_secs(30) {
            return Err(format!(
                "ferro-agent not serving after 30 s: {}",
                tail(&a.log())
            ));
        }
    }
}

pub(crate) fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(3)..].join(" | ")
}

/// One plugin call, timed; an error names the plugin and its answer.
fn call(bin: &Path, cmd: &str, id: &str, conf: &Value) -> Result<Duration, String> {
    let env: Vec<(String, String)> = [
        ("CNI_COMMAND", cmd),
        ("CNI_CONTAINERID", id),
        ("CNI_NETNS", "/run/netns/ferro-bench-ipam"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/opt/cni/bin"),
        ("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
    .collect();
    let r = invoke(bin, &env, conf.to_string().as_bytes(), None).map_err(|e| e.to_string())?;
    if r.status != 0 {
        return Err(format!(
            "{} {cmd} failed (exit {}): {}",
            bin.display(),
            r.status,
            String::from_utf8_lossy(&r.stdout).trim()
        ));
    }
    Ok(r.elapsed)
}

fn cluster_conf(a: &Agent) -> Value {
    json!({"cniVersion": "1.1.0", "name": "bench-ipam", "type": "flat",
           "ipam": {"type": "cluster-ipam", "socket": a.socket(), "families": ["ipv4"]}})
}

/// ADD+DEL cycles of both, alternating in blocks.
fn latency(
    b: &Bench,
    agent_bin: &Path,
    plugin: &Path,
    host_local: &Path,
    dir: &Path,
) -> Result<(IpamLatency, IpamLatency), String> {
    let prm = b.params().clone();
    let d = dir.join("latency");
    std::fs::create_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
    let store = d.join("store.redb");
    prepare(&store, 0)?;
    let agent = start_agent(agent_bin, &store, None)?;
    let ci = cluster_conf(&agent);
    let hl = json!({"cniVersion": "1.1.0", "name": "bench-ipam", "type": "bridge",
                    "ipam": {"type": "host-local", "dataDir": b.cfg.ipam_dir.join("cluster-ipam-scenario"),
                             "ranges": [[{"subnet": "10.99.0.0/16"}]]}});
    let bins: [(&Path, &Value); 2] = [(host_local, &hl), (plugin, &ci)];
    let mut samples: [(Vec<Duration>, Vec<Duration>); 2] = Default::default();
    let mut n = 0u64;
    for (bin, conf) in bins {
        for _ in 0..prm.warmup {
            n += 1;
            let id = format!("warm-{n}");
            call(bin, "ADD", &id, conf)?;
            call(bin, "DEL", &id, conf)?;
        }
    }
    let mut round = 0;
    while samples.iter().any(|s| s.0.len() < prm.cycles) {
        let order: [usize; 2] = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for i in order {
            let (bin, conf) = bins[i];
            let todo = prm
                .block
                .min(prm.cycles - samples[i].0.len().min(prm.cycles));
            for _ in 0..todo {
                n += 1;
                let id = format!("c-{n}");
                let add = call(bin, "ADD", &id, conf)?;
                let del = call(bin, "DEL", &id, conf)?;
                samples[i].0.push(add);
                samples[i].1.push(del);
            }
        }
        round += 1;
    }
    drop(agent);
    let figs = |s: &(Vec<Duration>, Vec<Duration>)| -> Result<IpamLatency, String> {
        Ok(IpamLatency {
            add: Summary::of(&s.0).ok_or("no samples")?,
            del: Summary::of(&s.1).ok_or("no samples")?,
        })
    };
    Ok((figs(&samples[0])?, figs(&samples[1])?))
}

/// `claims` block claims on a store holding `nodes` simulated nodes' blocks.
fn claims(
    agent_bin: &Path,
    plugin: &Path,
    dir: &Path,
    nodes: usize,
    claims: usize,
) -> Result<Summary, String> {
    let d: PathBuf = dir.join(format!("claims-{nodes}"));
    std::fs::create_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
    let store = d.join("store.redb");
    prepare(&store, nodes)?;
    let agent = start_agent(agent_bin, &store, None)?;
    let conf = cluster_conf(&agent);
    let per_block = 1usize << (32 - u32::from(BLOCK_PREFIX));
    for i in 0..claims * per_block {
        call(plugin, "ADD", &format!("claim-{i}"), &conf)?;
    }
    let times: Vec<Duration> = agent
        .log()
        .lines()
        .filter(|l| l.contains("ipam: claimed block "))
        .filter_map(|l| {
            let ms: f64 = l.rsplit_once(" in ")?.1.strip_suffix(" ms")?.parse().ok()?;
            Some(Duration::from_secs_f64(ms / 1000.0))
        })
        .collect();
    if times.len() < claims {
        return Err(format!(
            "{} claims logged, {claims} expected: {}",
            times.len(),
            tail(&agent.log())
        ));
    }
    Summary::of(&times).ok_or_else(|| "no claims".into())
}
