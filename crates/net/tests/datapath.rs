//! Real packets through the firewall model. A "node" namespace holds the table; a "pod"
//! namespace hangs off it through a veth named with the anti-spoofing prefix (`flpod0`); an
//! "ext" namespace on the node's uplink plays a server outside the pod network. Servers
//! report the source address they see.
//!
//! ```text
//!  pod: eth0 10.244.0.5/24 (+10.200.0.9/32 to forge)   node: flpod0 10.244.0.1/24
//!       default via 10.244.0.1                               up0 192.168.100.1/24, 10.10.0.1/24
//!                                                       ext: e0 192.168.100.2/24, 10.10.0.2/24
//!                                                            10.244.0.0/16 via 10.10.0.1
//! ```
//!
//! Non-masquerade CIDRs are the pod subnet and 10.10.0.0/24: a pod reaching 192.168.100.2 is
//! masqueraded to 192.168.100.1, reaching 10.10.0.2 it keeps its address.

#![allow(clippy::unwrap_used)] // test code: a panic is a failure

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use ferro_net::conntrack;
use ferro_net::firewall::*;
use ferro_net::nft::{Batch, NftSocket};
use ferro_spec::{PortMapping, Protocol};
use ferro_testutil::netns::Netns;
use ferro_testutil::require_root;

const WAIT: Duration = Duration::from_millis(500);

struct World {
    node: Netns,
    pod: Netns,
    ext: Netns,
}

fn world() -> World {
    require_root();
    let node = Netns::new("dp-node");
    let pod = Netns::new("dp-pod");
    let ext = Netns::new("dp-ext");
    node.ip(&[
        "link",
        "add",
        "flpod0",
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        pod.name(),
    ]);
    node.ip(&[
        "link",
        "add",
        "up0",
        "type",
        "veth",
        "peer",
        "name",
        "e0",
        "netns",
        ext.name(),
    ]);
    node.ip(&["addr", "add", "10.244.0.1/24", "dev", "flpod0"]);
    node.ip(&["addr", "add", "192.168.100.1/24", "dev", "up0"]);
    node.ip(&["addr", "add", "10.10.0.1/24", "dev", "up0"]);
    node.ip(&["link", "set", "flpod0", "up"]);
    node.ip(&["link", "set", "up0", "up"]);
    pod.ip(&["addr", "add", "10.244.0.5/24", "dev", "eth0"]);
    pod.ip(&["addr", "add", "10.200.0.9/32", "dev", "eth0"]);
    pod.ip(&["link", "set", "eth0", "up"]);
    pod.ip(&["route", "add", "default", "via", "10.244.0.1"]);
    ext.ip(&["addr", "add", "192.168.100.2/24", "dev", "e0"]);
    ext.ip(&["addr", "add", "10.10.0.2/24", "dev", "e0"]);
    ext.ip(&["link", "set", "e0", "up"]);
    ext.ip(&["route", "add", "10.244.0.0/16", "via", "10.10.0.1"]);
    for kv in [
        "net.ipv4.ip_forward=1",
        // New namespaces inherit the host's IPv4 settings; the forged-source checks must
        // see our rule, not the kernel's reverse-path filter.
        "net.ipv4.conf.all.rp_filter=0",
        "net.ipv4.conf.flpod0.rp_filter=0",
        // 127.0.0.1:<hostPort> DNATed out of flpod0 (what portmap sets with snat).
        "net.ipv4.conf.flpod0.route_localnet=1",
    ] {
        node.exec(&["sysctl", "-qw", kv]);
    }
    World { node, pod, ext }
}

/// A server thread inside a namespace, recording the source of each request and answering
/// with it. Stopped and joined on drop.
struct Server {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<String>>>,
    handle: Option<JoinHandle<()>>,
}

impl Server {
    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn enter(path: &PathBuf) {
    let f = std::fs::File::open(path).unwrap();
    nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
}

fn server(ns: &Netns, port: u16, tcp: bool) -> Server {
    let path = ns.path();
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = mpsc::channel();
    let (s2, seen2) = (stop.clone(), seen.clone());
    let handle = std::thread::spawn(move || {
        enter(&path);
        if tcp {
            let l = TcpListener::bind(("0.0.0.0", port)).unwrap();
            l.set_nonblocking(true).unwrap();
            tx.send(()).unwrap();
            while !s2.load(Ordering::SeqCst) {
                match l.accept() {
                    Ok((mut st, peer)) => {
                        seen2.lock().unwrap().push(peer.ip().to_string());
                        st.set_nonblocking(false).unwrap();
                        let _ = st.write_all(peer.ip().to_string().as_bytes());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        } else {
            let s = UdpSocket::bind(("0.0.0.0", port)).unwrap();
            s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
            tx.send(()).unwrap();
            let mut buf = [0u8; 64];
            while !s2.load(Ordering::SeqCst) {
                if let Ok((_, peer)) = s.recv_from(&mut buf) {
                    seen2.lock().unwrap().push(peer.ip().to_string());
                    let _ = s.send_to(peer.ip().to_string().as_bytes(), peer);
                }
            }
        }
    });
    rx.recv().unwrap();
    Server {
        stop,
        seen,
        handle: Some(handle),
    }
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// Sends one UDP datagram from `ns` (from `src` if given) and returns the answer: the source
/// address the server saw.
fn udp_probe(ns: &Netns, src: Option<&str>, dst: &str) -> Option<String> {
    let dst = sa(dst);
    let src = src.map(sa).unwrap_or(sa("0.0.0.0:0"));
    ns.run(move || {
        let s = UdpSocket::bind(src).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        s.send_to(b"who am i", dst).unwrap();
        let mut buf = [0u8; 64];
        let (n, _) = s.recv_from(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    })
}

/// Sends one UDP datagram from `src` without waiting for an answer (forged sources get none).
fn udp_send(ns: &Netns, src: &str, dst: &str) {
    let (src, dst) = (sa(src), sa(dst));
    ns.run(move || {
        UdpSocket::bind(src)
            .unwrap()
            .send_to(b"forged", dst)
            .unwrap();
    });
    std::thread::sleep(Duration::from_millis(100));
}

/// Connects over TCP from `ns` and returns the source address the server saw.
fn tcp_probe(ns: &Netns, dst: &str) -> Option<String> {
    let dst = sa(dst);
    ns.run(move || {
        let mut st = TcpStream::connect_timeout(&dst, WAIT).ok()?;
        st.set_read_timeout(Some(WAIT)).unwrap();
        let mut s = String::new();
        st.read_to_string(&mut s).ok()?;
        Some(s)
    })
}

fn apply_in(ns: &Netns, f: impl FnOnce(&mut NftSocket) + Send) {
    ns.run(|| {
        let mut sock = NftSocket::open().unwrap();
        f(&mut sock)
    })
}

fn masq_spec() -> MasqSpec {
    MasqSpec {
        network: "kbr".into(),
        non_masquerade: vec![
            "10.244.0.0/24".parse().unwrap(),
            "10.10.0.0/24".parse().unwrap(),
        ],
    }
}

fn pod_tag() -> Tag {
    Tag::new("kbr", "ctr1", "eth0")
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn masquerade_rewrites_the_source_outside_non_masquerade_cidrs_only() {
    let w = world();
    let udp = server(&w.ext, 7000, false);
    let tcp = server(&w.ext, 7001, true);
    // Without the firewall the pod's own address arrives everywhere.
    assert_eq!(
        udp_probe(&w.pod, None, "192.168.100.2:7000").as_deref(),
        Some("10.244.0.5")
    );

    apply_in(&w.node, |sock| {
        let mut b = Batch::new();
        masq_add_ops(
            &mut b,
            &masq_spec(),
            &["10.244.0.5".parse().unwrap()],
            &pod_tag(),
        )
        .unwrap();
        sock.apply(&b).unwrap();
    });
    assert_eq!(
        udp_probe(&w.pod, None, "192.168.100.2:7000").as_deref(),
        Some("192.168.100.1")
    );
    assert_eq!(
        tcp_probe(&w.pod, "192.168.100.2:7001").as_deref(),
        Some("192.168.100.1")
    );
    // Inside a non-masquerade CIDR: the pod's address.
    assert_eq!(
        udp_probe(&w.pod, None, "10.10.0.2:7000").as_deref(),
        Some("10.244.0.5")
    );
    assert_eq!(
        tcp_probe(&w.pod, "10.10.0.2:7001").as_deref(),
        Some("10.244.0.5")
    );
    // A source that is not in the pod set is not masqueraded (it is only forwarded).
    udp_send(&w.pod, "10.200.0.9:0", "192.168.100.2:7000");

    // After the attachment's removal its traffic leaves unmasqueraded again.
    apply_in(&w.node, |sock| {
        assert_eq!(masq_remove(sock, "kbr", None, &pod_tag()).unwrap().len(), 1);
    });
    assert_eq!(
        udp_probe(&w.pod, None, "192.168.100.2:7000").as_deref(),
        Some("10.244.0.5")
    );
    let seen = udp.seen();
    assert!(seen.contains(&"10.200.0.9".to_string()), "{seen:?}");
    drop(tcp);
}

fn hostports() -> HostPorts {
    HostPorts {
        tag: pod_tag(),
        mappings: vec![
            PortMapping {
                host_port: 8080,
                container_port: 80,
                protocol: Protocol::Tcp,
                host_ip: None,
            },
            PortMapping {
                host_port: 5353,
                container_port: 53,
                protocol: Protocol::Udp,
                host_ip: Some("192.168.100.1".parse().unwrap()),
            },
        ],
        pod_v4: Some((
            "10.244.0.5".parse().unwrap(),
            "10.244.0.0/24".parse().unwrap(),
        )),
        pod_v6: None,
        snat: true,
        mark_bit: 13,
    }
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn a_host_port_reaches_the_pod_from_outside_by_hairpin_and_from_localhost() {
    let w = world();
    let web = server(&w.pod, 80, true);
    assert_eq!(
        tcp_probe(&w.ext, "192.168.100.1:8080"),
        None,
        "nothing listens before"
    );
    apply_in(&w.node, |sock| {
        hostports_add(sock, &hostports()).unwrap();
    });
    // From outside: DNAT only, the pod sees the client.
    assert_eq!(
        tcp_probe(&w.ext, "192.168.100.1:8080").as_deref(),
        Some("192.168.100.2")
    );
    // Hairpin: the pod reaches itself through the node's address, masqueraded (marked).
    assert_eq!(
        tcp_probe(&w.pod, "192.168.100.1:8080").as_deref(),
        Some("10.244.0.1")
    );
    // Localhost on the node (output hook), masqueraded as well.
    assert_eq!(
        tcp_probe(&w.node, "127.0.0.1:8080").as_deref(),
        Some("10.244.0.1")
    );
    // The UDP mapping is scoped to its host address: 10.10.0.1 is not mapped.
    let dns = server(&w.pod, 53, false);
    assert_eq!(
        udp_probe(&w.ext, None, "192.168.100.1:5353").as_deref(),
        Some("192.168.100.2")
    );
    assert_eq!(udp_probe(&w.ext, None, "10.10.0.1:5353"), None);

    apply_in(&w.node, |sock| {
        let removed = hostports_del(sock, &pod_tag()).unwrap();
        assert_eq!(removed.len(), 2);
    });
    assert_eq!(
        tcp_probe(&w.ext, "192.168.100.1:8080"),
        None,
        "unmapped after DEL"
    );
    assert_eq!(web.seen().len(), 3);
    drop(dns);
}

fn udp_mapping(ctr: &str, pod: &str, container_port: u16) -> HostPorts {
    HostPorts {
        tag: Tag::new("kbr", ctr, "eth0"),
        mappings: vec![PortMapping {
            host_port: 5353,
            container_port,
            protocol: Protocol::Udp,
            host_ip: None,
        }],
        pod_v4: Some((pod.parse().unwrap(), "10.244.0.0/24".parse().unwrap())),
        pod_v6: None,
        snat: true,
        mark_bit: 13,
    }
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn a_remapped_udp_host_port_is_blackholed_by_the_old_conntrack_entry_until_deleted() {
    let w = world();
    w.pod.ip(&["addr", "add", "10.244.0.6/24", "dev", "eth0"]);
    let client = "192.168.100.2:40000";
    // Pod A serves udp/5353 (container port 53); a client talks to it from a fixed port.
    let a = udp_mapping("a", "10.244.0.5", 53);
    let old = server(&w.pod, 53, false);
    apply_in(&w.node, |sock| {
        hostports_add(sock, &a).unwrap();
    });
    assert_eq!(
        udp_probe(&w.ext, Some(client), "192.168.100.1:5353").as_deref(),
        Some("192.168.100.2")
    );
    // A goes away (DEL without flushing conntrack), B takes the port (container port 54).
    drop(old);
    let new = server(&w.pod, 54, false);
    apply_in(&w.node, |sock| {
        hostports_del(sock, &a.tag).unwrap();
        hostports_add(sock, &udp_mapping("b", "10.244.0.6", 54)).unwrap();
    });
    assert_eq!(
        udp_probe(&w.ext, Some(client), "192.168.100.1:5353"),
        None,
        "the flow's conntrack entry still translates to A"
    );
    assert!(new.seen().is_empty());
    // What portmap does on ADD and DEL (M6).
    let deleted = w.node.run(|| conntrack::delete_udp_dport(&[5353]).unwrap());
    assert!(deleted >= 1, "{deleted}");
    assert_eq!(
        udp_probe(&w.ext, Some(client), "192.168.100.1:5353").as_deref(),
        Some("192.168.100.2")
    );
    assert_eq!(new.seen(), vec!["192.168.100.2".to_string()]);
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn antispoofing_drops_packets_from_addresses_not_routed_to_the_pods_veth() {
    let w = world();
    let udp = server(&w.ext, 7002, false);
    // No answer can come back to a forged source: look at what the server received.
    let forged = |src: &str| udp_send(&w.pod, src, "10.10.0.2:7002");
    forged("10.200.0.9:0");
    assert_eq!(
        udp.seen(),
        vec!["10.200.0.9".to_string()],
        "forwarded without the rule"
    );

    apply_in(&w.node, |sock| {
        let mut b = Batch::new();
        antispoof_ops(&mut b, "fl").unwrap();
        sock.apply(&b).unwrap();
    });
    forged("10.200.0.9:0");
    // 10.10.0.77 is routed on the node, but through up0, not through the pod's veth.
    w.pod.ip(&["addr", "add", "10.10.0.77/32", "dev", "eth0"]);
    forged("10.10.0.77:0");
    assert_eq!(
        udp.seen(),
        vec!["10.200.0.9".to_string()],
        "forged sources dropped"
    );
    // The pod's own address still passes, both ways.
    assert_eq!(
        udp_probe(&w.pod, None, "10.10.0.2:7002").as_deref(),
        Some("10.244.0.5")
    );
}
