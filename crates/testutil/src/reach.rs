//! Many reachability probes at once: who can open a TCP connection to, or get a UDP answer
//! from, whom. The truth-table suites probe every ordered pair of pods on several ports;
//! run one after the other, the denied ones (which wait for their timeout) would take
//! minutes, so every probe runs at the same time, each on its own thread inside its source's
//! network namespace (threads spawned there stay there).
//!
//! The servers are [`crate::probe::ProbeServer`]s: a probe succeeds when the TCP handshake
//! completes, or when a UDP datagram is answered.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// One probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reach {
    /// The source's network namespace.
    pub from: PathBuf,
    /// Where to.
    pub to: SocketAddr,
    /// UDP (else TCP).
    pub udp: bool,
}

fn enter(ns: &Path) {
    let f = std::fs::File::open(ns).unwrap_or_else(|e| panic!("open {}: {e}", ns.display()));
    nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
}

/// Whether one probe gets through within `timeout`.
fn one(p: &Reach, timeout: Duration) -> bool {
    if !p.udp {
        return TcpStream::connect_timeout(&p.to, timeout).is_ok();
    }
    let any = if p.to.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    let Ok(s) = UdpSocket::bind(any) else {
        return false;
    };
    if s.connect(p.to).is_err() {
        return false;
    }
    // Two tries, each half the time: one lost datagram does not make a denial.
    let _ = s.set_read_timeout(Some(timeout / 2));
    let mut buf = [0u8; 256];
    for _ in 0..2 {
        if s.send(b"probe").is_err() {
            return false;
        }
        if s.recv(&mut buf).is_ok() {
            return true;
        }
    }
    false
}

/// Runs every probe at once; whether each got through, in order.
pub fn probe_all(probes: &[Reach], timeout: Duration) -> Vec<bool> {
    let mut by_ns: BTreeMap<&Path, Vec<usize>> = BTreeMap::new();
    for (i, p) in probes.iter().enumerate() {
        by_ns.entry(p.from.as_path()).or_default().push(i);
    }
    let results = Mutex::new(vec![false; probes.len()]);
    std::thread::scope(|s| {
        for (ns, idx) in &by_ns {
            let results = &results;
            s.spawn(move || {
                enter(ns);
                std::thread::scope(|s| {
                    for &i in idx {
                        s.spawn(move || {
                            let ok = one(&probes[i], timeout);
                            results.lock().unwrap_or_else(|e| e.into_inner())[i] = ok;
                        });
                    }
                });
            });
        }
    });
    results.into_inner().unwrap_or_else(|e| e.into_inner())
}

/// What a matrix probes: a protocol, a port and an address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// UDP (else TCP).
    pub udp: bool,
    /// The destination port.
    pub port: u16,
    /// IPv6 (else IPv4).
    pub v6: bool,
}

/// Probes every ordered pair of `pods` (each: its namespace and addresses) for every target,
/// all at once; `[target][from][to]`: whether it got through. A pair of which an end has no
/// address of the target's family is `false`.
pub fn probe_matrices(
    pods: &[(PathBuf, Vec<std::net::IpAddr>)],
    targets: &[Target],
    timeout: Duration,
) -> Vec<Vec<Vec<bool>>> {
    let n = pods.len();
    let mut probes = Vec::new();
    let mut cells = Vec::new();
    for (t, target) in targets.iter().enumerate() {
        for (i, (ns, _)) in pods.iter().enumerate() {
            for (j, (_, addrs)) in pods.iter().enumerate() {
                let Some(a) = addrs.iter().find(|a| a.is_ipv6() == target.v6) else {
                    continue;
                };
                probes.push(Reach {
                    from: ns.clone(),
                    to: SocketAddr::new(*a, target.port),
                    udp: target.udp,
                });
                cells.push((t, i, j));
            }
        }
    }
    let got = probe_all(&probes, timeout);
    let mut out = vec![vec![vec![false; n]; n]; targets.len()];
    for ((t, i, j), ok) in cells.into_iter().zip(got) {
        out[t][i][j] = ok;
    }
    out
}
