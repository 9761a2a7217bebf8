//! DNS for tests: Debian's `dnsmasq` as the simulated internet's resolver (names and
//! addresses the test chooses, short TTLs, answers changed on the fly), pods resolving names
//! the way programs do (glibc's `getent` with the resolv.conf a runtime would write from the
//! CNI result), and single queries of any type over UDP or TCP.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RecordType};

use crate::netns::Netns;

/// A `dnsmasq` serving `records` (name, address) from a hosts file, authoritative for every
/// other name (NXDOMAIN), stopped by its pid when dropped.
#[derive(Debug)]
pub struct Dnsmasq {
    child: Child,
    dir: tempfile::TempDir,
}

fn hosts(records: &[(&str, &str)]) -> String {
    records
        .iter()
        .map(|(name, ip)| format!("{ip} {name}\n"))
        .collect()
}

impl Dnsmasq {
    /// Starts dnsmasq in `ns` on `listen` port 53, answering `records` with TTL `ttl`.
    pub fn start(ns: &Netns, listen: &str, ttl: u32, records: &[(&str, &str)]) -> Dnsmasq {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("hosts");
        std::fs::write(&file, hosts(records)).expect("hosts file");
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                ns.name(),
                "dnsmasq",
                "--keep-in-foreground",
            ])
            .arg("--conf-file=/dev/null")
            .arg("--no-resolv")
            .arg("--no-hosts")
            .arg(format!("--addn-hosts={}", file.display()))
            .arg(format!("--listen-address={listen}"))
            .arg("--bind-interfaces")
            .arg(format!("--local-ttl={ttl}"))
            .arg("--local=/#/")
            .arg("--user=root")
            .arg(format!("--pid-file={}", dir.path().join("pid").display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run dnsmasq (Debian's dnsmasq-base)");
        let d = Dnsmasq { child, dir };
        let server = SocketAddr::new(listen.parse().expect("listen address"), 53);
        let t0 = std::time::Instant::now();
        while query(ns, server, "ready.invalid.", RecordType::A, false).is_none() {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "dnsmasq not answering on {server}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        d
    }

    /// Replaces the records (dnsmasq reads its hosts file again on SIGHUP).
    pub fn set(&self, records: &[(&str, &str)]) {
        std::fs::write(self.dir.path().join("hosts"), hosts(records)).expect("hosts file");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGHUP,
        )
        .expect("SIGHUP dnsmasq");
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The resolv.conf a runtime writes from a CNI result's `dns`.
pub fn resolv_conf(result: &serde_json::Value) -> String {
    let d = &result["dns"];
    let list = |k: &str| -> Vec<String> {
        d[k].as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()
    };
    let mut s = String::new();
    for n in list("nameservers") {
        s.push_str(&format!("nameserver {n}\n"));
    }
    let search = list("search");
    if !search.is_empty() {
        s.push_str(&format!("search {}\n", search.join(" ")));
    }
    let options = list("options");
    if !options.is_empty() {
        s.push_str(&format!("options {}\n", options.join(" ")));
    }
    s
}

/// What a program in `ns` gets for `name` (`getent ahosts`, glibc's resolver reading
/// `resolv_conf`): the addresses, empty when the name does not resolve.
pub fn resolve(ns: &Netns, resolv_conf: &str, name: &str) -> Vec<IpAddr> {
    let f = tempfile::NamedTempFile::new().expect("resolv.conf");
    std::fs::write(f.path(), resolv_conf).expect("write resolv.conf");
    // `ip netns exec` runs the command in a mount namespace of its own: the bind mount
    // stays there
    let out = Command::new("ip")
        .args(["netns", "exec", ns.name(), "sh", "-c"])
        .arg("mount --bind \"$1\" /etc/resolv.conf && exec getent ahosts \"$2\"")
        .args(["sh", &f.path().display().to_string(), name])
        .output()
        .expect("run getent");
    let mut ips: Vec<IpAddr> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    ips.sort();
    ips.dedup();
    ips
}

/// One question to `server` from `ns`, over UDP or TCP; the reply, `None` without one
/// within 2 s.
pub fn query(
    ns: &Netns,
    server: SocketAddr,
    name: &str,
    qtype: RecordType,
    tcp: bool,
) -> Option<Message> {
    let mut m = Message::query();
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).ok()?, qtype));
    let bytes = m.to_vec().ok()?;
    let reply = ns.run(|| raw(server, &bytes, tcp))?;
    Message::from_vec(&reply).ok()
}

/// Sends `bytes` as one message to `server` (from the calling thread's namespace) and
/// returns the reply's bytes.
pub fn raw(server: SocketAddr, bytes: &[u8], tcp: bool) -> Option<Vec<u8>> {
    let timeout = Duration::from_secs(2);
    if tcp {
        let mut s = TcpStream::connect_timeout(&server, timeout).ok()?;
        s.set_read_timeout(Some(timeout)).ok()?;
        let len = u16::try_from(bytes.len()).ok()?;
        s.write_all(&len.to_be_bytes()).ok()?;
        s.write_all(bytes).ok()?;
        let mut l = [0u8; 2];
        s.read_exact(&mut l).ok()?;
        let mut buf = vec![0u8; usize::from(u16::from_be_bytes(l))];
        s.read_exact(&mut buf).ok()?;
        Some(buf)
    } else {
        let bind = if server.is_ipv6() {
            "[::]:0"
        } else {
            "0.0.0.0:0"
        };
        let s = UdpSocket::bind(bind).ok()?;
        s.set_read_timeout(Some(timeout)).ok()?;
        s.send_to(bytes, server).ok()?;
        let mut buf = vec![0u8; 65535];
        let n = s.recv(&mut buf).ok()?;
        buf.truncate(n);
        Some(buf)
    }
}

/// The addresses of the A/AAAA records of a reply's answer section.
pub fn addresses(m: &Message) -> Vec<IpAddr> {
    let mut v: Vec<IpAddr> = m.answers.iter().filter_map(|r| r.data.ip_addr()).collect();
    v.sort();
    v
}
