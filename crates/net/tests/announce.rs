//! Gratuitous ARP and unsolicited neighbour advertisements against real neighbour caches
//! (root): a VM of the simulated VNet that reached an address on node A learns node B's MAC
//! for it as soon as B announces it.

#![allow(clippy::unwrap_used)] // test code: a panic is a failure

use std::net::IpAddr;
use std::time::{Duration, Instant};

use ferro_net::announce::announce;
use ferro_testutil::netns::Netns;
use ferro_testutil::topology::World;

fn mac_of(ns: &Netns, dev: &str) -> String {
    ns.ip_json(&["link", "show", dev])[0]["address"]
        .as_str()
        .unwrap()
        .to_string()
}

fn neigh_mac(ns: &Netns, ip: &str) -> Option<String> {
    let v = ns.ip_json(&["neigh", "show", ip]);
    v.as_array()?
        .first()?
        .get("lladdr")?
        .as_str()
        .map(str::to_string)
}

fn index_of(ns: &Netns, dev: &str) -> u32 {
    ns.ip_json(&["link", "show", dev])[0]["ifindex"]
        .as_u64()
        .unwrap() as u32
}

fn mac_bytes(s: &str) -> [u8; 6] {
    let v: Vec<u8> = s
        .split(':')
        .map(|x| u8::from_str_radix(x, 16).unwrap())
        .collect();
    v.try_into().unwrap()
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn an_announcement_moves_the_address_in_the_neighbours_caches() {
    ferro_testutil::require_root();
    let w = World::new(2);
    let (a, b) = (&w.nodes[0].ns, &w.nodes[1].ns);
    for (ip, plen, ping) in [
        ("10.240.1.1", "32", "ping"),
        ("fd00:240::1:1", "128", "ping"),
    ] {
        let cidr = format!("{ip}/{plen}");
        let mut add = vec!["addr", "add", cidr.as_str(), "dev", "eth0"];
        if ip.contains(':') {
            add.push("nodad");
        }
        a.ip(&add);
        assert!(
            w.peer.try_exec(&[ping, "-c1", "-W2", ip]),
            "the VM reaches {ip} on node A"
        );
        assert_eq!(neigh_mac(&w.peer, ip), Some(mac_of(a, "eth0")));
        a.ip(&["addr", "del", &cidr, "dev", "eth0"]);
        b.ip(&add);
        let (idx, mac) = (index_of(b, "eth0"), mac_bytes(&mac_of(b, "eth0")));
        let target: IpAddr = ip.parse().unwrap();
        let t0 = Instant::now();
        let bp = b.path();
        let netns = ferro_net::Netns::open(&bp).unwrap();
        netns.run(|| announce(idx, mac, target)).unwrap().unwrap();
        let want = Some(mac_of(b, "eth0"));
        while neigh_mac(&w.peer, ip) != want && t0.elapsed() < Duration::from_secs(3) {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(neigh_mac(&w.peer, ip), want, "{ip}: the VM's cache follows");
        eprintln!(
            "{ip}: the VM's cache moved {:?} after the announcement",
            t0.elapsed()
        );
        assert!(
            w.peer.try_exec(&[ping, "-c1", "-W2", ip]),
            "and it reaches B"
        );
    }
}
