//! A real etcd cluster for tests: Debian 12's `etcd` 3.4 (package `etcd-server`), one member
//! per simulated node, listening on the node's VNet address inside the node's network
//! namespace, with its data directory under the test's temporary directory. Members are
//! started by the test (never the packaged service), stopped by their pid when the cluster is
//! dropped (also when the test fails), and can be killed and restarted one by one.
//!
//! Ports: 2379 clients, 2380 peers, 2381 metrics and `/health` (plain HTTP even when the
//! client port uses TLS, so readiness is checked the same way).

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::netns::Netns;
use crate::pki::{Issued, TestCa};

/// The client port.
pub const CLIENT_PORT: u16 = 2379;
const PEER_PORT: u16 = 2380;
const METRICS_PORT: u16 = 2381;

/// One member.
#[derive(Debug)]
struct Member {
    name: String,
    ns: PathBuf,
    ns_name: String,
    ip: IpAddr,
    data: PathBuf,
    log: PathBuf,
    tls: Option<Issued>,
    child: Option<Child>,
}

/// A running cluster; dropping it kills every member.
#[derive(Debug)]
pub struct EtcdCluster {
    members: Vec<Member>,
    initial: String,
    token: String,
    ca: Option<PathBuf>,
    dir: tempfile::TempDir,
}

fn url(scheme: &str, ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(a) => format!("{scheme}://{a}:{port}"),
        IpAddr::V6(a) => format!("{scheme}://[{a}]:{port}"),
    }
}

/// `GET path` over plain HTTP from inside `ns`; the body, or `None`.
fn http_get(ns: &Path, addr: SocketAddr, path: &str) -> Option<String> {
    let ns = ns.to_path_buf();
    let path = path.to_string();
    std::thread::spawn(move || {
        let fd = std::fs::File::open(&ns).ok()?;
        nix::sched::setns(&fd, nix::sched::CloneFlags::CLONE_NEWNET).ok()?;
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        write!(s, "GET {path} HTTP/1.0\r\nHost: etcd\r\n\r\n").ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        out.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
    })
    .join()
    .ok()
    .flatten()
}

impl Member {
    fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    fn spawn(&mut self, initial: &str, token: &str, ca: Option<&Path>, state: &str) {
        let client = url(self.scheme(), self.ip, CLIENT_PORT);
        let peer = url("http", self.ip, PEER_PORT);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("etcd log file");
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", self.ns.display()))
            .arg("--")
            .arg("etcd")
            .args(["--name", &self.name])
            .arg("--data-dir")
            .arg(&self.data)
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", initial])
            .args(["--initial-cluster-token", token])
            .args(["--initial-cluster-state", state])
            .args(["--listen-metrics-urls", &url("http", self.ip, METRICS_PORT)])
            .args(["--logger", "zap", "--log-outputs", "stderr"])
            // test data: durability is not the point, speed is
            .arg("--unsafe-no-fsync");
        if let (Some(t), Some(ca)) = (&self.tls, ca) {
            cmd.arg("--cert-file")
                .arg(&t.cert)
                .arg("--key-file")
                .arg(&t.key)
                .arg("--trusted-ca-file")
                .arg(ca)
                .arg("--client-cert-auth");
        }
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log);
        // nsenter enters the namespace and execs etcd: the child's pid is etcd's.
        self.child = Some(cmd.spawn().expect("run etcd (package etcd-server)"));
    }

    fn healthy(&self) -> bool {
        http_get(&self.ns, SocketAddr::new(self.ip, METRICS_PORT), "/health")
            .is_some_and(|b| b.contains("\"health\":\"true\""))
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }
}

impl EtcdCluster {
    /// Starts one member per `(node namespace, address)` and waits until every member is
    /// healthy (has a leader). With `ca`, clients must present a certificate it signed, and
    /// members serve certificates it issued for their addresses.
    pub fn start(nodes: &[(&Netns, IpAddr)], ca: Option<&TestCa>) -> EtcdCluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let token = format!(
            "{}-{}",
            crate::netns::prefix(),
            dir.path().display().to_string().len()
        );
        let mut members = Vec::new();
        for (i, (ns, ip)) in nodes.iter().enumerate() {
            let name = format!("m{i}");
            members.push(Member {
                tls: ca.map(|ca| ca.issue(&format!("etcd-{name}"), &[*ip])),
                data: dir.path().join(format!("{name}.data")),
                log: dir.path().join(format!("{name}.log")),
                ns: ns.path(),
                ns_name: ns.name().to_string(),
                ip: *ip,
                name,
                child: None,
            });
        }
        let initial = members
            .iter()
            .map(|m| format!("{}={}", m.name, url("http", m.ip, PEER_PORT)))
            .collect::<Vec<_>>()
            .join(",");
        let mut c = EtcdCluster {
            members,
            initial,
            token,
            ca: ca.map(TestCa::ca),
            dir,
        };
        for i in 0..c.members.len() {
            let (initial, token, ca) = (c.initial.clone(), c.token.clone(), c.ca.clone());
            c.members[i].spawn(&initial, &token, ca.as_deref(), "new");
        }
        let t0 = Instant::now();
        for i in 0..c.members.len() {
            c.wait_healthy(i);
        }
        eprintln!(
            "etcd: {} members healthy after {:.1?}",
            c.members.len(),
            t0.elapsed()
        );
        c
    }

    /// Waits (up to 30 s) until member `i` reports itself healthy; panics with its log.
    pub fn wait_healthy(&self, i: usize) {
        let t0 = Instant::now();
        let m = &self.members[i];
        while !m.healthy() {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "etcd member {} on {} ({}) not healthy after 30 s; its log:\n{}",
                m.name,
                m.ip,
                m.ns_name,
                m.log_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Every member's client URL.
    pub fn endpoints(&self) -> Vec<String> {
        (0..self.members.len()).map(|i| self.endpoint(i)).collect()
    }

    /// Member `i`'s client URL.
    pub fn endpoint(&self, i: usize) -> String {
        let m = &self.members[i];
        url(m.scheme(), m.ip, CLIENT_PORT)
    }

    /// The CA the members trust (with TLS).
    pub fn ca(&self) -> Option<&Path> {
        self.ca.as_deref()
    }

    /// Kills member `i` (SIGKILL) and waits for it to exit.
    pub fn kill(&mut self, i: usize) {
        self.members[i].kill();
    }

    /// Starts member `i` again on its data directory and waits until it is healthy.
    pub fn restart(&mut self, i: usize) {
        let (initial, token, ca) = (self.initial.clone(), self.token.clone(), self.ca.clone());
        self.members[i].spawn(&initial, &token, ca.as_deref(), "existing");
        self.wait_healthy(i);
    }

    /// Kills every member (the cluster is gone until [`EtcdCluster::restart_stopped`]).
    pub fn kill_all(&mut self) {
        for m in &mut self.members {
            m.kill();
        }
    }

    /// Starts every stopped member again on its data directory, all before waiting (a
    /// cluster that lost its quorum comes back only with enough members), and waits until
    /// each is healthy.
    pub fn restart_stopped(&mut self) {
        let (initial, token, ca) = (self.initial.clone(), self.token.clone(), self.ca.clone());
        for m in self.members.iter_mut().filter(|m| m.child.is_none()) {
            m.spawn(&initial, &token, ca.as_deref(), "existing");
        }
        for i in 0..self.members.len() {
            self.wait_healthy(i);
        }
    }

    /// The last lines of member `i`'s log.
    pub fn log_tail(&self, i: usize) -> String {
        self.members[i].log_tail()
    }

    /// The directory holding the members' data and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for m in &mut self.members {
            m.kill();
            if std::thread::panicking() {
                eprintln!(
                    "--- etcd member {} ({}) log tail:\n{}",
                    m.name,
                    m.ip,
                    m.log_tail()
                );
            }
        }
    }
}
