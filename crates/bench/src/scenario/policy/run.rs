//! Measuring the policy scenario on one node of the bench's VNet:
//!
//! 1. the node's store (embedded, written before its agent starts) gets the namespaces, the
//!    two pods' `Pod` objects, and 10,000 pods of another node (`Pod` and `Attachment`
//!    objects, addresses 10.99.0.0/16);
//! 2. `ferro-agent` starts on the node; our bridge plugin attaches the client and the server
//!    pods, reporting them to the agent; the server runs iperf3 and a TCP accept loop;
//! 3. each round measures, in this order: 0 policies (agent running); 1,000 policies
//!    (applied with `cnictl`, timed until the agent enforces them), then one more policy
//!    (timed); no policy (the policies deleted, the agent stopped, its table removed);
//!    then the agent starts again.
//!
//! Throughput: `iperf3 -c` from the client pod, one TCP stream. Connection rate: a thread in
//! the client pod opens and closes TCP connections to the server for a fixed time; the
//! node's conntrack table is emptied before each measurement.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferro_cluster::{keys, Kind};
use ferro_store::{Embedded, Op, Store, Txn};
use serde_json::{json, Value};

use super::{PolicyBench, PolicyConfigRow, Round};
use crate::error::Error;
use crate::harness::{netns_name, Bench, Node};
use crate::ns::{self, PodNs};
use crate::outcome::Outcome;
use crate::output::progress;
use crate::request::{Attachment, ConfList};
use crate::stats::Summary;
use crate::workloads::Suite;

/// Policies in the largest configuration.
pub const POLICIES: usize = 1000;
/// Pods of the other node.
pub const PODS: usize = 10_000;
/// The namespace of the two measured pods (the bench's CNI_ARGS name it).
const NS: &str = "bench";
/// The namespace of the other node's pods.
const FAR: &str = "far";
/// The connection-rate server's port.
pub(crate) const CONN_PORT: u16 = 8000;
/// iperf3's port.
pub(crate) const IPERF_PORT: u16 = 5201;

/// Rounds, iperf3 seconds, connection-rate seconds.
fn counts(quick: bool) -> (usize, u64, u64) {
    if quick {
        (1, 1, 1)
    } else {
        // (five rounds: the connection rate swings by a fifth or more between rounds on a
        // shared two-core machine)
        (5, 5, 3)
    }
}

/// The scenario.
pub fn run(b: &mut Bench) -> PolicyBench {
    let (rounds, _, _) = counts(b.params().quick);
    progress(&format!(
        "policy: datapath with no policy, 0 and {POLICIES} policies ({PODS} pods in the sets)"
    ));
    match measure(b) {
        Ok(p) => p,
        Err(e) => PolicyBench::failed(POLICIES, PODS, rounds, &e.to_string()),
    }
}

fn other(e: impl std::fmt::Display) -> Error {
    Error::Other(format!("policy: {e}"))
}

/// A `ferro-agent` in the node's namespace.
pub(crate) struct AgentProc {
    pub(crate) bin: PathBuf,
    pub(crate) cnictl: PathBuf,
    pub(crate) netns: PathBuf,
    pub(crate) config: PathBuf,
    pub(crate) socket: PathBuf,
    pub(crate) log: PathBuf,
    pub(crate) child: Option<Child>,
}

impl AgentProc {
    /// An agent (not started) of `ours` in the node namespace `netns`, with `cfg` written
    /// to `dir/agent.json` and its log in `dir/agent.log`; `socket` is the one `cfg` names.
    pub(crate) fn new(
        ours: &Path,
        netns: &Path,
        dir: &Path,
        socket: &Path,
        cfg: &Value,
    ) -> Result<AgentProc, Error> {
        let config = dir.join("agent.json");
        std::fs::write(&config, cfg.to_string()).map_err(|e| Error::io("writing", &config, e))?;
        Ok(AgentProc {
            bin: ours.join("ferro-agent"),
            cnictl: ours.join("cnictl"),
            netns: netns.to_path_buf(),
            config,
            socket: socket.to_path_buf(),
            log: dir.join("agent.log"),
            child: None,
        })
    }

    pub(crate) fn start(&mut self) -> Result<(), Error> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| Error::io("opening", &self.log, e))?;
        let child = Command::new("nsenter")
            .arg(format!("--net={}", self.netns.display()))
            .arg("--")
            .arg(&self.bin)
            .arg("--config")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| Error::io("starting", &self.bin, e))?;
        self.child = Some(child);
        let t0 = Instant::now();
        while std::os::unix::net::UnixStream::connect(&self.socket).is_err() {
            if t0.elapsed() > Duration::from_secs(30) {
                return Err(other(format!(
                    "ferro-agent not serving after 30 s (log: {})",
                    self.log.display()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// SIGTERM, and waits for the exit.
    pub(crate) fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(i32::try_from(c.id()).unwrap_or(0));
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let _ = c.wait();
        }
    }

    /// `cnictl --socket S <args>` with `stdin`; its standard output.
    pub(crate) fn cnictl(&self, args: &[&str], stdin: Option<&str>) -> Result<String, Error> {
        use std::io::Write;
        let mut c = Command::new(&self.cnictl)
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::io("starting", &self.cnictl, e))?;
        if let Some(mut i) = c.stdin.take() {
            let _ = i.write_all(stdin.unwrap_or("").as_bytes());
        }
        let out = c
            .wait_with_output()
            .map_err(|e| Error::io("running", &self.cnictl, e))?;
        if !out.status.success() {
            return Err(other(format!(
                "cnictl {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `cnictl get policystats` of the measured pods' namespace.
    pub(crate) fn policystats(&self) -> Result<Value, Error> {
        let out = self.cnictl(&["get", "policystats", "-n", NS, "-o", "json"], None)?;
        serde_json::from_str(&out).map_err(other)
    }

    /// Polls [`AgentProc::policystats`] every `every` until `done` holds for them; when
    /// it did. The error names `what` was awaited.
    pub(crate) fn until(
        &self,
        what: &str,
        deadline: Duration,
        every: Duration,
        mut done: impl FnMut(&Value) -> bool,
    ) -> Result<Instant, Error> {
        let t0 = Instant::now();
        loop {
            if done(&self.policystats()?) {
                return Ok(Instant::now());
            }
            if t0.elapsed() > deadline {
                return Err(other(format!(
                    "{what} after {deadline:?} (log: {})",
                    self.log.display()
                )));
            }
            std::thread::sleep(every);
        }
    }

    /// Waits until the agent has programmed its table with the server's ingress isolated
    /// by `n` policies (how many, as the agent programmed them; none before its first
    /// sync); when it had.
    fn until_policies(&self, n: usize, deadline: Duration) -> Result<Instant, Error> {
        let what = format!("the server's ingress is not isolated by {n} policies");
        self.until(&what, deadline, Duration::from_millis(10), |v| {
            v["revision"].as_i64().unwrap_or(0) != 0
                && v["pods"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|p| p["pod"] == "server" && p["direction"] == "ingress")
                    .and_then(|p| p["policies"].as_array().map(Vec::len))
                    .unwrap_or(0)
                    == n
        })
    }
}

impl Drop for AgentProc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The objects of the store before the agent's first start.
fn seed_objects(node: &str) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for ns in [NS, FAR] {
        out.push((
            keys::object(Kind::Namespace, None, ns),
            json!({"apiVersion": "v1", "kind": "Namespace",
                   "metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}}}),
        ));
    }
    for (name, app) in [("client", "client"), ("server", "server")] {
        out.push((
            keys::object(Kind::Pod, Some(NS), name),
            json!({"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": name, "namespace": NS, "labels": {"app": app}},
                   "spec": {"containers": [{"name": "c", "image": "busybox"}]}}),
        ));
    }
    for i in 0..PODS {
        let name = format!("p{i}");
        let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 99, 0, 0)) + i as u32 + 1);
        out.push((
            keys::object(Kind::Pod, Some(FAR), &name),
            json!({"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": name, "namespace": FAR,
                                "labels": {"group": format!("g{}", i % POLICIES)}},
                   "spec": {"containers": [{"name": "c", "image": "busybox"}]}}),
        ));
        let att = format!("{name}-eth0");
        out.push((
            keys::object(Kind::Attachment, Some(FAR), &att),
            json!({"apiVersion": "ferro-cni.io/v1", "kind": "Attachment",
                   "metadata": {"name": att, "namespace": FAR},
                   "spec": {"node": format!("{node}-far"), "pod": name, "containerID": format!("c{i}"),
                            "interface": "eth0", "addresses": [format!("{ip}/16")]}}),
        ));
    }
    out
}

/// Writes `objects` into the embedded store at `path` (before any agent opens it).
fn seed_store(path: &Path, objects: Vec<(String, Value)>) -> Result<(), Error> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(other)?;
    rt.block_on(async {
        let store = Embedded::open(path).await.map_err(other)?;
        for chunk in objects.chunks(5000) {
            let mut txn = Txn::new();
            for (k, v) in chunk {
                txn = txn.then(Op::put(k.clone(), v.to_string().into_bytes()));
            }
            store.txn(txn).await.map_err(other)?;
        }
        Ok(())
    })
}

/// The manifest of `n` policies isolating the server, each letting one group of the other
/// node's pods in, one the client; and one isolating the client's egress to the server
/// and the other node.
fn policies(n: usize) -> String {
    let mut docs = vec![
        format!(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: client-in, namespace: {NS}}}\n\
             spec: {{podSelector: {{matchLabels: {{app: server}}}}, ingress: [{{from: [{{podSelector: {{matchLabels: {{app: client}}}}}}], ports: [{{port: {CONN_PORT}}}, {{port: {IPERF_PORT}}}]}}]}}\n"
        ),
        format!(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: client-out, namespace: {NS}}}\n\
             spec: {{podSelector: {{matchLabels: {{app: client}}}}, policyTypes: [Egress], egress: [{{to: [{{podSelector: {{matchLabels: {{app: server}}}}}}, {{namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: {FAR}}}}}}}]}}]}}\n"
        ),
    ];
    for g in 0..n.saturating_sub(1) {
        docs.push(format!(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: g{g}, namespace: {NS}}}\n\
             spec: {{podSelector: {{matchLabels: {{app: server}}}}, ingress: [{{from: [{{namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: {FAR}}}}}, podSelector: {{matchLabels: {{group: g{g}}}}}}}], ports: [{{port: {}}}]}}]}}\n",
            9000 + g % 100
        ));
    }
    docs.join("---\n")
}

/// The one policy applied on top of the others.
fn extra_policy() -> String {
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: extra, namespace: {NS}}}\n\
         spec: {{podSelector: {{matchLabels: {{app: server}}}}, ingress: [{{from: [{{namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: {FAR}}}}}, podSelector: {{matchLabels: {{group: g{}}}}}}}]}}]}}\n",
        POLICIES - 1
    )
}

/// Sets and map elements of the node's table.
fn elements(node: &Path) -> Result<usize, Error> {
    ns::in_netns(node, || -> Result<usize, String> {
        let t = ferro_nftables::TableRef::inet("ferro_policy");
        let mut s = ferro_nftables::NftSocket::open().map_err(|e| e.to_string())?;
        let mut n = 0;
        for set in s.list_sets(&t).map_err(|e| e.to_string())? {
            n += s
                .list_elems(&t, &set.name)
                .map_err(|e| e.to_string())?
                .map_or(0, |e| e.len());
        }
        Ok(n)
    })?
    .map_err(other)
}

/// Removes `tables` (inet) from the node and empties its conntrack table.
pub(crate) fn no_tables(node: &Path, tables: &[&str]) -> Result<(), Error> {
    ns::in_netns(node, || -> Result<(), String> {
        let mut b = ferro_nftables::Batch::new();
        for t in tables {
            b.del_table(&ferro_nftables::TableRef::inet(*t), true);
        }
        ferro_nftables::NftSocket::open()
            .and_then(|mut s| s.apply(&b))
            .map_err(|e| e.to_string())
    })?
    .map_err(other)?;
    flush_conntrack(node)
}

pub(crate) fn flush_conntrack(node: &Path) -> Result<(), Error> {
    ns::in_netns(node, || -> Result<usize, String> {
        let all = ferro_net::conntrack::dump().map_err(|e| e.to_string())?;
        ferro_net::conntrack::delete(&all).map_err(|e| e.to_string())
    })?
    .map(drop)
    .map_err(other)
}

/// Attaches pod `name` with `chain` on the node `node`: the pod and its first address.
pub(crate) fn attach_pod(
    b: &mut Bench,
    node: &Path,
    chain: &crate::exec::Chain,
    name: &str,
) -> Result<(PodNs, IpAddr), Error> {
    let pod = b.pod()?;
    let mut att: Attachment = b.attachment(Suite::Ours, pod.path());
    att.pod_name = name.to_string();
    let r = ns::in_netns(node, || chain.add(&att))??;
    let ip: IpAddr = r.result["ips"][0]["address"]
        .as_str()
        .and_then(|a| a.split('/').next())
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| other(format!("no address in {}", r.result)))?;
    Ok((pod, ip))
}

/// The measured pair's servers: iperf3 and the connection-rate accept loop in the server
/// pod; the client pod set up for many short connections.
pub(crate) struct Servers {
    iperf: Child,
    stop: Arc<AtomicBool>,
    acceptor: Option<std::thread::JoinHandle<()>>,
}

impl Servers {
    pub(crate) fn start(client: &PodNs, server: &PodNs) -> Result<Servers, Error> {
        for sysctl in [
            "net.ipv4.tcp_tw_reuse=1",
            "net.ipv4.ip_local_port_range=1024 65000",
        ] {
            let _ = Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &netns_name(client),
                    "sysctl",
                    "-qw",
                    sysctl,
                ])
                .status();
        }
        let iperf = Command::new("ip")
            .args(["netns", "exec", &netns_name(server), "iperf3", "-s", "-p"])
            .arg(IPERF_PORT.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| Error::io("starting", Path::new("iperf3"), e))?;
        let stop = Arc::new(AtomicBool::new(false));
        let acceptor = accept_loop(server.path().to_path_buf(), stop.clone());
        std::thread::sleep(Duration::from_millis(300));
        Ok(Servers {
            iperf,
            stop,
            acceptor: Some(acceptor),
        })
    }

    /// Stops both servers (also done when dropped, so a scenario that fails or panics
    /// half-way leaves no server behind).
    pub(crate) fn stop(self) {
        drop(self);
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
        let _ = self.iperf.kill();
        let _ = self.iperf.wait();
    }
}

/// iperf3 from the client to the server for `secs`: bits per second received.
pub(crate) fn throughput(client: &Path, server: IpAddr, secs: u64) -> Result<f64, Error> {
    let out = Command::new("ip")
        .args(["netns", "exec"])
        .arg(client.file_name().unwrap_or_default())
        .args(["iperf3", "-J", "-c", &server.to_string(), "-p"])
        .arg(IPERF_PORT.to_string())
        .args(["-t", &secs.to_string()])
        .output()
        .map_err(|e| Error::io("running", Path::new("iperf3"), e))?;
    let v: Value =
        serde_json::from_slice(&out.stdout).map_err(|e| other(format!("iperf3 output: {e}")))?;
    v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .ok_or_else(|| other(format!("iperf3: {}", v["error"])))
}

/// New TCP connections per second from the client to the server, for `secs`: each one opened,
/// then reset by the client.
pub(crate) fn conn_rate(client: &Path, server: IpAddr, secs: u64) -> Result<f64, Error> {
    let to = SocketAddr::new(server, CONN_PORT);
    let (n, failed, elapsed) = ns::in_netns(client, || {
        let t0 = Instant::now();
        let end = Duration::from_secs(secs);
        let (mut n, mut failed) = (0u64, 0u64);
        while t0.elapsed() < end {
            match TcpStream::connect_timeout(&to, Duration::from_secs(1)) {
                Ok(s) => {
                    // Reset rather than closed: no TIME_WAIT on either side. Closed, every
                    // connection left one behind, on whichever side happened to close
                    // first; the client's ports (widened, reusable after a second, see
                    // `Servers::start`) were searched past those held, and the rate
                    // depended on when the previous measurement ran.
                    let _ = nix::sys::socket::setsockopt(
                        &s,
                        nix::sys::socket::sockopt::Linger,
                        &nix::libc::linger {
                            l_onoff: 1,
                            l_linger: 0,
                        },
                    );
                    drop(s);
                    n += 1;
                }
                Err(_) => failed += 1,
            }
        }
        (n, failed, t0.elapsed())
    })?;
    if n == 0 || failed > n / 100 {
        return Err(other(format!(
            "connections: {n} made, {failed} failed in {elapsed:?}"
        )));
    }
    Ok(n as f64 / elapsed.as_secs_f64())
}

/// The accept loop of the connection-rate server, in the server pod, until `stop`. It
/// sleeps in `poll` until a connection is queued (or 100 ms pass, to see `stop`) and then
/// accepts all of them, on a listener with the largest queue the kernel allows: a server
/// that polled on a timer, or a queue of 128, let the queue overflow whenever the thread
/// waited for a core, and every SYN dropped then cost the client a one-second retransmit.
pub(crate) fn accept_loop(server: PathBuf, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let _ = ns::in_netns(&server, || {
            let Ok(l) = conn_listener() else {
                return;
            };
            while !stop.load(Ordering::Relaxed) {
                use std::os::fd::AsFd;
                let mut fds = [nix::poll::PollFd::new(
                    l.as_fd(),
                    nix::poll::PollFlags::POLLIN,
                )];
                let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(100u16));
                while let Ok((c, _)) = l.accept() {
                    drop(c);
                }
            }
        });
    })
}

/// The connection-rate server's listener: every address, [`CONN_PORT`], non-blocking, the
/// kernel's largest accept queue (`somaxconn`; `listen` again on a listening socket only
/// changes its queue).
fn conn_listener() -> std::io::Result<TcpListener> {
    let l = TcpListener::bind(("0.0.0.0", CONN_PORT))?;
    nix::sys::socket::listen(&l, nix::sys::socket::Backlog::MAXCONN)?;
    l.set_nonblocking(true)?;
    Ok(l)
}

pub(crate) fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

pub(crate) fn summary(v: &[Duration]) -> Outcome<Duration> {
    match Summary::of(v) {
        Some(s) => Outcome::Done(s.median),
        None => Outcome::Failed("not measured".into()),
    }
}

/// Figures of one configuration over the rounds.
#[derive(Default)]
pub(crate) struct Samples {
    throughput: Vec<f64>,
    conn: Vec<f64>,
    errors: Vec<String>,
}

impl Samples {
    /// Measures throughput and connection rate once; returns them (`None`: that one
    /// failed, its error kept for the row).
    pub(crate) fn measure(
        &mut self,
        client: &Path,
        server: IpAddr,
        node: &Path,
        quick: bool,
    ) -> (Option<f64>, Option<f64>) {
        let (_, tsecs, csecs) = counts(quick);
        self.measure_for(client, server, node, tsecs, csecs)
    }

    /// [`Samples::measure`] with throughput measured for `tsecs` and the connection rate
    /// for `csecs`.
    pub(crate) fn measure_for(
        &mut self,
        client: &Path,
        server: IpAddr,
        node: &Path,
        tsecs: u64,
        csecs: u64,
    ) -> (Option<f64>, Option<f64>) {
        let t = self.one(
            node,
            || throughput(client, server, tsecs),
            |s| &mut s.throughput,
        );
        let c = self.one(node, || conn_rate(client, server, csecs), |s| &mut s.conn);
        (t, c)
    }

    /// One figure, measured with the node's conntrack table emptied first, kept in
    /// `into`; a failure is kept for the row.
    fn one(
        &mut self,
        node: &Path,
        measure: impl FnOnce() -> Result<f64, Error>,
        into: fn(&mut Samples) -> &mut Vec<f64>,
    ) -> Option<f64> {
        if let Err(e) = flush_conntrack(node) {
            self.errors.push(e.to_string());
        }
        match measure() {
            Ok(v) => {
                into(self).push(v);
                Some(v)
            }
            Err(e) => {
                self.errors.push(e.to_string());
                None
            }
        }
    }

    pub(crate) fn row(mut self, label: String) -> PolicyConfigRow {
        let fail = |errors: &[String]| {
            Outcome::Failed(
                errors
                    .first()
                    .cloned()
                    .unwrap_or_else(|| "not measured".into()),
            )
        };
        PolicyConfigRow {
            label,
            throughput: median(&mut self.throughput)
                .map_or_else(|| fail(&self.errors), Outcome::Done),
            conn_rate: median(&mut self.conn).map_or_else(|| fail(&self.errors), Outcome::Done),
        }
    }
}

fn measure(b: &mut Bench) -> Result<PolicyBench, Error> {
    let quick = b.params().quick;
    let (rounds, _, _) = counts(quick);
    let node: Node = b.node();
    let dir = b.workdir().join("policy");
    let run = dir.join("run");
    let state = dir.join("state");
    for d in [&run, &state] {
        std::fs::create_dir_all(d).map_err(|e| Error::io("creating", d, e))?;
    }
    let ours = b.cfg.ours_src.clone();
    let socket = run.join("agent.sock");
    let store = state.join("store.redb");
    seed_store(&store, seed_objects(&node.name))?;
    let cfg = json!({"nodeName": node.name, "nodeAddresses": [node.ip.to_string()],
        "store": {"embedded": {"path": store}}, "socket": socket, "stateDir": state,
        "leaseTTL": 30, "logLevel": "warn"});
    let mut agent = AgentProc::new(&ours, &node.ns, &dir, &socket, &cfg)?;
    agent.start()?;

    // The two pods, attached by our bridge plugin and reported to the agent.
    let data = b.cfg.ipam_dir.join("policy");
    let chain = crate::exec::Chain {
        list: ConfList::new(
            "policy",
            vec![
                json!({"type": "bridge", "bridge": "cbr0", "isGateway": true, "ipMasq": false,
                "agent": {"socket": socket},
                "ipam": {"type": "host-local", "dataDir": data, "ranges": [[{"subnet": "10.244.1.0/24"}]]}}),
            ],
        ),
        cap_args: serde_json::Map::new(),
        cni_path: b.cni_path(Suite::Ours),
        extra_env: Vec::new(),
    };
    let (client_pod, _) = attach_pod(b, &node.ns, &chain, "client")?;
    let (server_pod, server_ip) = attach_pod(b, &node.ns, &chain, "server")?;
    let client = client_pod.path().to_path_buf();
    let servers = Servers::start(&client_pod, &server_pod)?;

    let manifest = policies(POLICIES);
    let (mut none, mut zero, mut many) =
        (Samples::default(), Samples::default(), Samples::default());
    let (mut answered, mut enforced, mut change) = (Vec::new(), Vec::new(), Vec::new());
    let mut elements_seen: Outcome<usize> = Outcome::Failed("not measured".into());
    let mut per_round = Vec::new();
    let result = (|| -> Result<(), Error> {
        // No policy is measured last in even rounds and first in odd ones (the agent
        // stays stopped across the two), so that its position in the round weighs on it and
        // on the policy configurations alike.
        let mut running = true;
        for round in 0..rounds {
            progress(&format!("policy: round {} of {rounds}", round + 1));
            let mut this = Round::unmeasured(3);
            if round % 2 == 1 {
                this.figures[0] = none.measure(&client, server_ip, &node.ns, quick);
            }
            if !running {
                agent.start()?;
                running = true;
            }
            agent.until_policies(0, Duration::from_secs(30))?;
            this.figures[1] = zero.measure(&client, server_ip, &node.ns, quick);

            let t0 = Instant::now();
            agent.cnictl(&["apply", "-f", "-"], Some(&manifest))?;
            answered.push(t0.elapsed());
            let done = agent.until_policies(POLICIES, Duration::from_secs(120))?;
            enforced.push(done.duration_since(t0));
            elements_seen = Outcome::Done(elements(&node.ns)?);
            this.figures[2] = many.measure(&client, server_ip, &node.ns, quick);

            let t0 = Instant::now();
            agent.cnictl(&["apply", "-f", "-"], Some(&extra_policy()))?;
            let done = agent.until_policies(POLICIES + 1, Duration::from_secs(60))?;
            change.push(done.duration_since(t0));

            agent.cnictl(&["delete", "-f", "-"], Some(&manifest))?;
            agent.cnictl(&["delete", "networkpolicy", "extra", "-n", NS], None)?;
            agent.until_policies(0, Duration::from_secs(60))?;
            if round % 2 == 0 {
                agent.stop();
                running = false;
                no_tables(&node.ns, &["ferro_policy"])?;
                this.figures[0] = none.measure(&client, server_ip, &node.ns, quick);
            }
            per_round.push(this);
        }
        Ok(())
    })();
    servers.stop();
    agent.stop();
    b.bury([client_pod, server_pod]);
    if let Err(e) = result {
        let mut p = PolicyBench::failed(POLICIES, PODS, rounds, &e.to_string());
        p.rows = vec![
            none.row("no policy".into()),
            zero.row("0 policies".into()),
            many.row(format!("{POLICIES} policies, {PODS} pods in the sets")),
        ];
        p.per_round = per_round;
        return Ok(p);
    }
    Ok(PolicyBench {
        policies: POLICIES,
        pods: PODS,
        rounds,
        rows: vec![
            none.row("no policy (no table)".into()),
            zero.row("policy table, 0 policies".into()),
            many.row(format!("{POLICIES} policies, {PODS} pods in the sets")),
        ],
        per_round,
        elements: elements_seen,
        apply_answered: summary(&answered),
        apply_enforced: summary(&enforced),
        change_enforced: summary(&change),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policies_are_valid_manifests() {
        for text in [policies(5), extra_policy()] {
            let docs = ferro_cluster::manifest::admit_all("bench", &text)
                .unwrap_or_else(|e| panic!("{e:?}"));
            assert!(!docs.is_empty());
        }
        assert_eq!(
            ferro_cluster::manifest::admit_all("bench", &policies(POLICIES))
                .unwrap()
                .len(),
            POLICIES + 1
        );
    }

    #[test]
    fn the_seeded_objects_decode() {
        let objs = seed_objects("node-a");
        assert_eq!(objs.len(), 4 + 2 * PODS);
        for (k, v) in objs.iter().take(10) {
            let o = ferro_cluster::Object::from_typed(v.clone()).unwrap();
            assert_eq!(&o.key(), k);
        }
    }
}
