//! Measuring services, side by side at each size.
//!
//! Each side gets a fresh pair of namespaces: a node, and a pod behind a veth pair holding
//! every endpoint address and a server that accepts and closes connections on port 8080.
//! The same `N` services (ClusterIPs `10.96.x.y`, port 80, the same endpoints) are loaded:
//! - ours: the service model -> `ferro_services::Planner` (the table planned, diffed against
//!   nothing) -> one nf_tables batch, timed from the model to the kernel's answer (what an
//!   agent's first sync does); then one service loses an endpoint: the planner plans that
//!   service again, diffs it, and the difference is applied (what an agent's next sync does);
//! - the anchor: kube-proxy's iptables ruleset for the same services, written as kube-proxy
//!   writes it (`KUBE-SERVICES` with one rule per service, a `KUBE-SVC-*` chain choosing a
//!   `KUBE-SEP-*` chain with `statistic --mode random --probability 1/k`, the SEP chain
//!   marking hairpin traffic and DNATing), loaded with `iptables-restore` (the process timed);
//!   then the same change as kube-proxy's partial sync sends it (`--noflush`: `KUBE-SERVICES`
//!   whole, the changed service's chains, the removed endpoint's chain deleted).
//!
//! Then a client on the node opens TCP connections to the last service (the last rule of
//! `KUBE-SERVICES`) one after the other for a fixed time: connections per second.

use std::fmt::Write as _;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferro_nftables::NftSocket;
use ferro_services::model::{Endpoint, Proto};
use ferro_services::plan::NodeFacts;
use ferro_services::{Planner, ServicePort};
use sha2::{Digest, Sha256};

use super::{ServicesBench, ServicesRow};
use crate::harness::Bench;
use crate::ns::{in_netns, PodNs};
use crate::outcome::Outcome;
use crate::output::progress;

const ENDPOINTS: usize = 4;
const TARGET_PORT: u16 = 8080;

fn endpoint_ip(k: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 250, 0, 11 + k as u8))
}

fn vip(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(
        u32::from(Ipv4Addr::new(10, 96, 0, 0)) + 1 + i as u32,
    ))
}

/// `n` services of one TCP port, each with the first `eps[i]` endpoints.
fn model(n: usize, fewer: Option<usize>) -> Vec<ServicePort> {
    (0..n)
        .map(|i| {
            let k = if fewer == Some(i) {
                ENDPOINTS - 1
            } else {
                ENDPOINTS
            };
            ServicePort {
                namespace: "bench".into(),
                service: format!("s{i:05}"),
                port_name: "http".into(),
                proto: Proto::Tcp,
                v6: false,
                port: 80,
                cluster_ip: Some(vip(i)),
                external_ips: vec![],
                lb_ips: vec![],
                node_port: None,
                source_ranges: vec![],
                external_local: false,
                internal_local: false,
                affinity_seconds: None,
                endpoints: (0..k)
                    .map(|e| Endpoint {
                        ip: endpoint_ip(e),
                        port: TARGET_PORT,
                        pod: format!("be-{e}"),
                        node: "bench".into(),
                    })
                    .collect(),
            }
        })
        .collect()
}

fn kp_hash(s: &str) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let d = Sha256::digest(s.as_bytes());
    let mut bits: u128 = 0;
    for b in &d[..10] {
        bits = (bits << 8) | u128::from(*b);
    }
    (0..16)
        .map(|i| char::from(ALPHABET[((bits >> (75 - 5 * i)) & 31) as usize]))
        .collect()
}

fn svc_chain(i: usize) -> String {
    format!("KUBE-SVC-{}", kp_hash(&format!("bench/s{i:05}:http tcp")))
}

fn sep_chain(i: usize, e: usize) -> String {
    format!(
        "KUBE-SEP-{}",
        kp_hash(&format!(
            "bench/s{i:05}:http tcp {}:{TARGET_PORT}",
            endpoint_ip(e)
        ))
    )
}

fn svc_rule(out: &mut String, i: usize) {
    let _ = writeln!(
        out,
        "-A KUBE-SERVICES -d {}/32 -p tcp -m comment --comment \"bench/s{i:05}:http cluster IP\" -m tcp --dport 80 -j {}",
        vip(i),
        svc_chain(i)
    );
}

/// The rules of service `i`'s chains with `k` endpoints.
fn svc_chains(out: &mut String, i: usize, k: usize) {
    let svc = svc_chain(i);
    let _ = writeln!(
        out,
        "-A {svc} ! -s 10.250.0.0/24 -d {}/32 -p tcp -m comment --comment \"bench/s{i:05}:http cluster IP\" -m tcp --dport 80 -j KUBE-MARK-MASQ",
        vip(i)
    );
    for e in 0..k {
        let ep = endpoint_ip(e);
        let stat = if e + 1 < k {
            format!(
                " -m statistic --mode random --probability {:.11}",
                1.0 / (k - e) as f64
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "-A {svc} -m comment --comment \"bench/s{i:05}:http -> {ep}:{TARGET_PORT}\"{stat} -j {}",
            sep_chain(i, e)
        );
    }
    for e in 0..k {
        let sep = sep_chain(i, e);
        let ep = endpoint_ip(e);
        let _ = writeln!(
            out,
            "-A {sep} -s {ep}/32 -m comment --comment \"bench/s{i:05}:http\" -j KUBE-MARK-MASQ"
        );
        let _ = writeln!(
            out,
            "-A {sep} -p tcp -m comment --comment \"bench/s{i:05}:http\" -m tcp -j DNAT --to-destination {ep}:{TARGET_PORT}"
        );
    }
}

/// kube-proxy's iptables `nat` table for `n` services.
fn iptables_full(n: usize) -> String {
    let mut s = String::from("*nat\n");
    for c in [
        "KUBE-SERVICES",
        "KUBE-POSTROUTING",
        "KUBE-MARK-MASQ",
        "KUBE-NODEPORTS",
    ] {
        let _ = writeln!(s, ":{c} - [0:0]");
    }
    for i in 0..n {
        let _ = writeln!(s, ":{} - [0:0]", svc_chain(i));
        for e in 0..ENDPOINTS {
            let _ = writeln!(s, ":{} - [0:0]", sep_chain(i, e));
        }
    }
    s.push_str(
        "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n\
         -A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n\
         -A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING\n\
         -A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000\n\
         -A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN\n\
         -A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0\n\
         -A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE --random-fully\n",
    );
    for i in 0..n {
        svc_rule(&mut s, i);
    }
    s.push_str("-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS\n");
    for i in 0..n {
        svc_chains(&mut s, i, ENDPOINTS);
    }
    s.push_str("COMMIT\n");
    s
}

/// kube-proxy's partial sync after service `i` lost its last endpoint.
fn iptables_change(n: usize, i: usize) -> String {
    let mut s = String::from("*nat\n:KUBE-SERVICES - [0:0]\n");
    let _ = writeln!(s, ":{} - [0:0]", svc_chain(i));
    for e in 0..ENDPOINTS {
        let _ = writeln!(s, ":{} - [0:0]", sep_chain(i, e));
    }
    for k in 0..n {
        svc_rule(&mut s, k);
    }
    s.push_str("-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS\n");
    svc_chains(&mut s, i, ENDPOINTS - 1);
    let _ = writeln!(s, "-X {}", sep_chain(i, ENDPOINTS - 1));
    s.push_str("COMMIT\n");
    s
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A node and a pod serving on every endpoint address.
struct Bed {
    node: PodNs,
    _pod: PodNs,
    stop: Arc<AtomicBool>,
    server: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Bed {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.server.take() {
            let _ = t.join();
        }
    }
}

fn bed(tag: &str) -> Result<Bed, String> {
    let node_name = format!("fbsvc-node-{tag}");
    let pod_name = format!("fbsvc-pod-{tag}");
    let node = PodNs::create(&node_name).map_err(|e| e.to_string())?;
    let pod = PodNs::create(&pod_name).map_err(|e| e.to_string())?;
    let (n, p) = (node_name.as_str(), pod_name.as_str());
    ip(&["-n", n, "link", "set", "lo", "up"])?;
    ip(&["-n", p, "link", "set", "lo", "up"])?;
    ip(&[
        "-n", n, "link", "add", "veth0", "type", "veth", "peer", "name", "eth0", "netns", p,
    ])?;
    ip(&["-n", n, "addr", "add", "10.250.0.1/24", "dev", "veth0"])?;
    ip(&["-n", n, "link", "set", "veth0", "up"])?;
    // The node's default route: a ClusterIP must be routable for a local client to connect
    // at all (its DNAT happens after the route lookup of connect()).
    ip(&["-n", n, "route", "add", "default", "dev", "veth0"])?;
    for k in 0..ENDPOINTS {
        ip(&[
            "-n",
            p,
            "addr",
            "add",
            &format!("{}/24", endpoint_ip(k)),
            "dev",
            "eth0",
        ])?;
    }
    ip(&["-n", p, "link", "set", "eth0", "up"])?;
    ip(&["-n", p, "route", "add", "default", "via", "10.250.0.1"])?;
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = std::sync::mpsc::channel();
    let server = {
        let (stop, path) = (stop.clone(), pod.path().to_path_buf());
        std::thread::spawn(move || {
            if crate::ns::enter(&path).is_err() {
                let _ = tx.send(false);
                return;
            }
            let Ok(l) = TcpListener::bind(("0.0.0.0", TARGET_PORT)) else {
                let _ = tx.send(false);
                return;
            };
            let _ = l.set_nonblocking(true);
            let _ = tx.send(true);
            while !stop.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((c, _)) => drop(c),
                    Err(_) => std::thread::sleep(Duration::from_micros(200)),
                }
            }
        })
    };
    if rx.recv_timeout(Duration::from_secs(5)) != Ok(true) {
        return Err("the bench's server did not start".into());
    }
    Ok(Bed {
        node,
        _pod: pod,
        stop,
        server: Some(server),
    })
}

/// Connections per second from `ns` to `dst` over `window`, one after the other.
fn rate(ns: &Path, dst: SocketAddr, window: Duration) -> Outcome<f64> {
    let r = in_netns(ns, || -> Result<f64, String> {
        let t0 = Instant::now();
        let mut n = 0u64;
        let mut buf = [0u8; 16];
        while t0.elapsed() < window {
            let mut c = TcpStream::connect_timeout(&dst, Duration::from_secs(2))
                .map_err(|e| format!("connecting to {dst}: {e}"))?;
            let _ = c.read(&mut buf);
            n += 1;
        }
        Ok(n as f64 / t0.elapsed().as_secs_f64())
    });
    match r {
        Ok(Ok(v)) => Outcome::Done(v),
        Ok(Err(e)) => Outcome::Failed(e),
        Err(e) => Outcome::Failed(e.to_string()),
    }
}

fn done<T>(r: Result<T, String>) -> Outcome<T> {
    match r {
        Ok(v) => Outcome::Done(v),
        Err(e) => Outcome::Failed(e),
    }
}

struct Side {
    apply: Outcome<Duration>,
    change: Outcome<Duration>,
    rate: Outcome<f64>,
}

fn failed(e: String) -> Side {
    Side {
        apply: Outcome::Failed(e.clone()),
        change: Outcome::Failed(e.clone()),
        rate: Outcome::Failed(e),
    }
}

fn ours(n: usize, window: Duration) -> Side {
    let b = match bed(&format!("ours-{n}")) {
        Ok(b) => b,
        Err(e) => return failed(e),
    };
    let pods: Vec<ipnet::IpNet> = vec!["10.250.0.0/24".parse().expect("cidr")];
    let svcs: Vec<ipnet::IpNet> = vec!["10.96.0.0/16".parse().expect("cidr")];
    let facts = NodeFacts {
        node: "bench",
        pod_cidrs: &pods,
        service_cidrs: &svcs,
    };
    let full = model(n, None);
    let changed = model(n, Some(n / 2));
    let r = in_netns(b.node.path(), || {
        let mut sock = NftSocket::open().map_err(|e| e.to_string())?;
        let mut planner = Planner::new();
        let t0 = Instant::now();
        planner
            .update(&full, &facts)
            .apply(&mut sock)
            .map_err(|e| e.to_string())?;
        planner.applied();
        let apply = t0.elapsed();
        let t1 = Instant::now();
        planner
            .update(&changed, &facts)
            .apply(&mut sock)
            .map_err(|e| e.to_string())?;
        planner.applied();
        Ok::<_, String>((apply, t1.elapsed()))
    });
    let (apply, change) = match r {
        Ok(Ok((a, c))) => (Outcome::Done(a), Outcome::Done(c)),
        Ok(Err(e)) => return failed(e),
        Err(e) => return failed(e.to_string()),
    };
    Side {
        apply,
        change,
        rate: rate(b.node.path(), SocketAddr::new(vip(n - 1), 80), window),
    }
}

fn restore(ns: &Path, text: &str, noflush: bool) -> Result<Duration, String> {
    let r = in_netns(ns, || {
        let mut cmd = Command::new("iptables-restore");
        if noflush {
            cmd.arg("--noflush");
        }
        let mut child = cmd
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| format!("iptables-restore: {e}"))?;
        let t0 = Instant::now();
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().ok_or("iptables-restore: no stdin")?;
            stdin
                .write_all(text.as_bytes())
                .map_err(|e| format!("iptables-restore: {e}"))?;
        }
        let out = child
            .wait_with_output()
            .map_err(|e| format!("iptables-restore: {e}"))?;
        let d = t0.elapsed();
        if out.status.success() {
            Ok(d)
        } else {
            Err(format!(
                "iptables-restore: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    });
    r.map_err(|e| e.to_string())?
}

fn anchor(n: usize, window: Duration) -> Side {
    let b = match bed(&format!("ipt-{n}")) {
        Ok(b) => b,
        Err(e) => return failed(e),
    };
    let apply = done(restore(b.node.path(), &iptables_full(n), false));
    let change = done(restore(b.node.path(), &iptables_change(n, n / 2), true));
    let rate = if apply.done().is_some() {
        rate(b.node.path(), SocketAddr::new(vip(n - 1), 80), window)
    } else {
        Outcome::Skipped
    };
    Side {
        apply,
        change,
        rate,
    }
}

fn iptables_version() -> String {
    Command::new("iptables-restore")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|e| format!("iptables-restore: {e}"))
}

/// Measures every size of the run's parameters.
pub fn run(b: &mut Bench) -> ServicesBench {
    let sizes = b.params().services_sizes.clone();
    let window = if b.params().quick {
        Duration::from_millis(500)
    } else {
        Duration::from_secs(3)
    };
    let mut rows = Vec::new();
    for n in sizes {
        progress(&format!(
            "services: {n} services x {ENDPOINTS} endpoints, ours then iptables"
        ));
        let o = ours(n, window);
        let r = anchor(n, window);
        rows.push(ServicesRow {
            services: n,
            ours_apply: o.apply,
            ref_apply: r.apply,
            ours_change: o.change,
            ref_change: r.change,
            ours_rate: o.rate,
            ref_rate: r.rate,
        });
    }
    ServicesBench {
        endpoints: ENDPOINTS,
        rate_window: window,
        iptables: iptables_version(),
        rows,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_anchor_is_kube_proxys_iptables_layout() {
        let full = iptables_full(3);
        assert_eq!(full.matches("-A KUBE-SERVICES -d ").count(), 3);
        assert!(full.contains("-m statistic --mode random --probability 0.25000000000"));
        assert!(full.contains("-m statistic --mode random --probability 0.50000000000"));
        assert!(full.contains("-j DNAT --to-destination 10.250.0.14:8080"));
        assert!(svc_chain(0).len() <= 28 && sep_chain(0, 0).len() <= 28);
        let change = iptables_change(3, 1);
        assert_eq!(
            change.matches("-A KUBE-SERVICES -d ").count(),
            3,
            "KUBE-SERVICES whole"
        );
        assert!(change.contains(&format!("-X {}", sep_chain(1, 3))));
        assert!(!change.contains(&svc_chain(0).to_string().replace("KUBE-SVC", "-A KUBE-SVC")));
        let m = model(3, Some(1));
        assert_eq!(m[1].endpoints.len(), ENDPOINTS - 1);
        assert_eq!(m[2].cluster_ip, Some("10.96.0.3".parse().unwrap()));
    }
}
