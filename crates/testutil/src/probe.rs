//! A server that answers every TCP connection or UDP datagram with the source address it
//! sees, and its client. Tests use it to prove NAT (the far end sees the node's address) and
//! no-NAT (it sees the pod's own address) with real packets.
//!
//! Both sides run on threads that entered the namespace, inside the test process: no
//! external tools, no leftover processes.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

fn enter(ns: &Path) {
    let f = std::fs::File::open(ns).unwrap_or_else(|e| panic!("open {}: {e}", ns.display()));
    nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
}

/// A running probe server; stopped when dropped.
#[derive(Debug)]
pub struct ProbeServer {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl ProbeServer {
    /// Listens on `addr` (TCP and UDP, same port) inside the namespace at `ns`.
    pub fn start(ns: &Path, addr: SocketAddr) -> ProbeServer {
        Self::start_inner(ns, addr, None)
    }

    /// Like [`ProbeServer::start`], and every answer also names the server (`label`, e.g.
    /// the pod's name): which backend of a service answered ([`tcp_who`], [`udp_who`]).
    pub fn start_labelled(ns: &Path, addr: SocketAddr, label: &str) -> ProbeServer {
        Self::start_inner(ns, addr, Some(label.to_string()))
    }

    fn start_inner(ns: &Path, addr: SocketAddr, label: Option<String>) -> ProbeServer {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let mut threads = Vec::new();
        for udp in [false, true] {
            let ns: PathBuf = ns.to_path_buf();
            let stop = stop.clone();
            let tx = tx.clone();
            let tail = label.as_ref().map(|l| format!(" {l}")).unwrap_or_default();
            threads.push(std::thread::spawn(move || {
                enter(&ns);
                if udp {
                    let s = UdpSocket::bind(addr).expect("bind udp probe");
                    s.set_read_timeout(Some(Duration::from_millis(50))).ok();
                    tx.send(()).ok();
                    let mut buf = [0u8; 2048];
                    while !stop.load(Ordering::Relaxed) {
                        if let Ok((_, from)) = s.recv_from(&mut buf) {
                            let _ = s.send_to(format!("{}{tail}\n", from.ip()).as_bytes(), from);
                        }
                    }
                } else {
                    let l = TcpListener::bind(addr).expect("bind tcp probe");
                    l.set_nonblocking(true).ok();
                    tx.send(()).ok();
                    while !stop.load(Ordering::Relaxed) {
                        match l.accept() {
                            Ok((mut c, from)) => {
                                c.set_nonblocking(false).ok();
                                // Drain what the client sends (bulk transfer tests), then answer.
                                c.set_read_timeout(Some(Duration::from_millis(200))).ok();
                                let mut total = 0usize;
                                let mut buf = vec![0u8; 65536];
                                while let Ok(n) = c.read(&mut buf) {
                                    if n == 0 {
                                        break;
                                    }
                                    total += n;
                                }
                                let _ = c
                                    .write_all(format!("{} {total}{tail}\n", from.ip()).as_bytes());
                            }
                            Err(_) => std::thread::sleep(Duration::from_millis(10)),
                        }
                    }
                }
            }));
        }
        for _ in 0..2 {
            rx.recv_timeout(Duration::from_secs(5))
                .expect("probe server did not start");
        }
        ProbeServer {
            stop,
            threads,
            addr,
        }
    }
}

impl Drop for ProbeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Connects over TCP from inside `ns` to `dst`, sends `payload` bytes, and returns the source
/// address the server saw and how many bytes it received; `None` when nothing got through
/// within the timeout.
pub fn tcp_seen_from(ns: &Path, dst: SocketAddr, payload: usize) -> Option<(IpAddr, usize)> {
    let ns = ns.to_path_buf();
    std::thread::spawn(move || {
        enter(&ns);
        let mut c = TcpStream::connect_timeout(&dst, Duration::from_secs(2)).ok()?;
        c.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        c.set_write_timeout(Some(Duration::from_secs(5))).ok()?;
        let chunk = vec![0x5au8; 65536];
        let mut left = payload;
        while left > 0 {
            let n = left.min(chunk.len());
            c.write_all(&chunk[..n]).ok()?;
            left -= n;
        }
        c.shutdown(std::net::Shutdown::Write).ok()?;
        let mut s = String::new();
        c.read_to_string(&mut s).ok()?;
        let mut it = s.split_whitespace();
        let ip = it.next()?.parse().ok()?;
        let n = it.next()?.parse().ok()?;
        Some((ip, n))
    })
    .join()
    .ok()
    .flatten()
}

/// [`tcp_seen_from`] without payload: just the source address the server saw.
pub fn tcp_source(ns: &Path, dst: SocketAddr) -> Option<IpAddr> {
    tcp_seen_from(ns, dst, 0).map(|(ip, _)| ip)
}

/// Sends one UDP datagram from inside `ns` (optionally from `bind`) and returns the source
/// address the server saw.
pub fn udp_source(ns: &Path, bind: Option<SocketAddr>, dst: SocketAddr) -> Option<IpAddr> {
    udp_who(ns, bind, dst).map(|(ip, _)| ip)
}

/// Connects over TCP from inside `ns` to `dst`: the source address a labelled server
/// ([`ProbeServer::start_labelled`]) saw and its label; the error kind when the connection
/// failed (`ConnectionRefused` for a reject, `TimedOut` when nothing answered within
/// `timeout`).
pub fn tcp_who(
    ns: &Path,
    dst: SocketAddr,
    timeout: Duration,
) -> Result<(IpAddr, String), std::io::ErrorKind> {
    tcp_who_within(ns, dst, timeout, Duration::from_secs(5))
}

/// [`tcp_who`], waiting at most `read` for the answer once connected (a probe that must not
/// hang on a connection whose server died).
pub fn tcp_who_within(
    ns: &Path,
    dst: SocketAddr,
    timeout: Duration,
    read: Duration,
) -> Result<(IpAddr, String), std::io::ErrorKind> {
    let ns = ns.to_path_buf();
    std::thread::spawn(move || {
        enter(&ns);
        let mut c = TcpStream::connect_timeout(&dst, timeout).map_err(|e| e.kind())?;
        c.set_read_timeout(Some(read)).map_err(|e| e.kind())?;
        c.shutdown(std::net::Shutdown::Write)
            .map_err(|e| e.kind())?;
        let mut s = String::new();
        c.read_to_string(&mut s).map_err(|e| e.kind())?;
        let mut it = s.split_whitespace();
        let ip = it
            .next()
            .and_then(|x| x.parse().ok())
            .ok_or(std::io::ErrorKind::InvalidData)?;
        let _bytes = it.next();
        Ok((ip, it.next().unwrap_or_default().to_string()))
    })
    .join()
    .unwrap_or(Err(std::io::ErrorKind::Other))
}

/// One UDP datagram from inside `ns` (from `bind` when given) to a labelled server: the
/// source it saw and its label; `None` when nothing answered (three tries).
pub fn udp_who(ns: &Path, bind: Option<SocketAddr>, dst: SocketAddr) -> Option<(IpAddr, String)> {
    let ns = ns.to_path_buf();
    std::thread::spawn(move || {
        enter(&ns);
        let any: SocketAddr = if dst.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }
            .parse()
            .ok()?;
        let s = UdpSocket::bind(bind.unwrap_or(any)).ok()?;
        s.set_read_timeout(Some(Duration::from_millis(700))).ok()?;
        let mut buf = [0u8; 256];
        for _ in 0..3 {
            s.send_to(b"probe", dst).ok()?;
            if let Ok((n, _)) = s.recv_from(&mut buf) {
                let text = std::str::from_utf8(&buf[..n]).ok()?;
                let mut it = text.split_whitespace();
                let ip = it.next()?.parse().ok()?;
                return Some((ip, it.next().unwrap_or_default().to_string()));
            }
        }
        None
    })
    .join()
    .ok()
    .flatten()
}

/// Counts the UDP packets to `port` that arrive in a namespace, per source address, at
/// prerouting (a table `inet probe` of the test's own): proves that a packet never arrived,
/// where a missing answer alone could also be a lost reply.
#[derive(Debug)]
pub struct ArrivalCounter<'a> {
    ns: &'a crate::netns::Netns,
}

impl<'a> ArrivalCounter<'a> {
    /// Installs one counter per source in `sources` (either family) for UDP packets to
    /// `port`.
    pub fn install(ns: &'a crate::netns::Netns, port: u16, sources: &[&str]) -> Self {
        ns.exec(&["nft", "add", "table", "inet", "probe"]);
        ns.exec(&[
            "nft",
            "add",
            "chain",
            "inet",
            "probe",
            "seen",
            "{ type filter hook prerouting priority 0; }",
        ]);
        let port = port.to_string();
        for src in sources {
            let l3 = if src.contains(':') { "ip6" } else { "ip" };
            ns.exec(&[
                "nft", "add", "rule", "inet", "probe", "seen", l3, "saddr", src, "udp", "dport",
                &port, "counter",
            ]);
        }
        ArrivalCounter { ns }
    }

    /// Packets seen from `src` so far.
    pub fn count(&self, src: &str) -> u64 {
        let quoted = format!("\"{src}\"");
        counted(self.ns, &["inet", "probe", "seen"], |r| {
            r["expr"].to_string().contains(&quoted)
        })
    }
}

/// Counts the frames a Linux bridge forwards (the simulated VNet switch, in its own
/// namespace) with a table `bridge wire` of the test's own: per address, the frames whose
/// IP source or destination is that address as sent (a packet carried in VXLAN shows only
/// the nodes' addresses), and the UDP datagrams to one port (the VXLAN traffic itself).
#[derive(Debug)]
pub struct WireCounter<'a> {
    ns: &'a crate::netns::Netns,
}

impl<'a> WireCounter<'a> {
    /// Installs the counters in `ns` (whose bridge forwards the traffic): one pair per
    /// address of `addrs` (either family), one for UDP to `udp_port`.
    pub fn install(ns: &'a crate::netns::Netns, addrs: &[&str], udp_port: u16) -> Self {
        ns.exec(&["nft", "add", "table", "bridge", "wire"]);
        ns.exec(&[
            "nft",
            "add",
            "chain",
            "bridge",
            "wire",
            "seen",
            "{ type filter hook forward priority 0; }",
        ]);
        for a in addrs {
            let l3 = if a.contains(':') { "ip6" } else { "ip" };
            for dir in ["saddr", "daddr"] {
                let comment = format!("\"raw {a}\"");
                ns.exec(&[
                    "nft", "add", "rule", "bridge", "wire", "seen", l3, dir, a, "counter",
                    "comment", &comment,
                ]);
            }
        }
        let port = udp_port.to_string();
        ns.exec(&[
            "nft", "add", "rule", "bridge", "wire", "seen", "udp", "dport", &port, "counter",
            "comment", "\"udp\"",
        ]);
        WireCounter { ns }
    }

    fn count(&self, comment: &str) -> u64 {
        counted(self.ns, &["bridge", "wire", "seen"], |r| {
            r["comment"].as_str() == Some(comment)
        })
    }

    /// Frames forwarded so far with `addr` as their IP source or destination.
    pub fn raw(&self, addr: &str) -> u64 {
        self.count(&format!("raw {addr}"))
    }

    /// UDP datagrams to the port forwarded so far.
    pub fn udp(&self) -> u64 {
        self.count("udp")
    }
}

/// The sum of the packet counters of the rules of a chain (`[family, table, chain]`) in
/// `ns` that `pick` selects (`nft -j list chain`).
fn counted(
    ns: &crate::netns::Netns,
    chain: &[&str; 3],
    pick: impl Fn(&serde_json::Value) -> bool,
) -> u64 {
    let mut args = vec!["nft", "-j", "list", "chain"];
    args.extend_from_slice(chain);
    let out = ns.exec(&args);
    let v: serde_json::Value = serde_json::from_str(&out).expect("nft -j output");
    v["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x.get("rule"))
        .filter(|r| pick(r))
        .flat_map(|r| {
            r["expr"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e["counter"]["packets"].as_u64())
        })
        .sum()
}
