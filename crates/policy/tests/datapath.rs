//! The ruleset against the kernel (root), without an agent: two simulated nodes, each with
//! a bridge and the truth-table world's pods on it (same-node traffic is bridged, and goes
//! through the `inet` forward hook because the bridge calls it), routed to each other. For
//! every step of every case the nodes' tables are changed by the minimal difference, and
//! every ordered pair of pods is probed on TCP and UDP ports 80 and 81 over IPv4 and IPv6;
//! the probed matrices must equal the model's.

#![allow(clippy::unwrap_used)] // test code: a panic is a failure

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ferro_nftables::NftSocket;
use ferro_policy::cases::{self, Scenario, NODES};
use ferro_policy::matrix;
use ferro_policy::ruleset::{self, Ruleset};
use ferro_policy::{node_policy, Key, Proto};
use ferro_testutil::netns::Netns;
use ferro_testutil::probe::ProbeServer;
use ferro_testutil::reach::{probe_matrices, Target};

/// Two nodes with their pods.
struct Nodes {
    nodes: Vec<Netns>,
    pods: Vec<(Key, Netns)>,
    _servers: Vec<ProbeServer>,
}

fn build() -> Nodes {
    ferro_testutil::require_root();
    let nodes: Vec<Netns> = (0..2).map(|i| Netns::new(&format!("pnode{i}"))).collect();
    nodes[0].ip(&[
        "link",
        "add",
        "uplink",
        "type",
        "veth",
        "peer",
        "name",
        "uplink",
        "netns",
        nodes[1].name(),
    ]);
    for (i, n) in nodes.iter().enumerate() {
        let other = 1 - i;
        n.exec(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        n.exec(&["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]);
        n.ip(&[
            "addr",
            "add",
            &format!("10.250.0.{}/24", i + 1),
            "dev",
            "uplink",
        ]);
        n.ip(&[
            "addr",
            "add",
            &format!("fd00:250::{}/64", i + 1),
            "dev",
            "uplink",
            "nodad",
        ]);
        n.ip(&["link", "set", "uplink", "up"]);
        n.ip(&[
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "nf_call_iptables",
            "1",
            "nf_call_ip6tables",
            "1",
        ]);
        n.ip(&["addr", "add", &format!("10.24{i}.0.1/24"), "dev", "br0"]);
        n.ip(&[
            "addr",
            "add",
            &format!("fd00:24{i}::1/64"),
            "dev",
            "br0",
            "nodad",
        ]);
        n.ip(&["link", "set", "br0", "up"]);
        n.ip(&[
            "route",
            "add",
            &format!("10.24{other}.0.0/24"),
            "via",
            &format!("10.250.0.{}", other + 1),
        ]);
        n.ip(&[
            "-6",
            "route",
            "add",
            &format!("fd00:24{other}::/64"),
            "via",
            &format!("fd00:250::{}", other + 1),
        ]);
    }
    let mut pods = Vec::new();
    let mut servers = Vec::new();
    for (i, k) in cases::pods().into_iter().enumerate() {
        let node = &nodes[cases::node_of(&k)];
        let n = cases::node_of(&k);
        let ns = Netns::new(&format!("p{}{}", k.namespace, k.name));
        let host = format!("p{i}");
        node.ip(&[
            "link",
            "add",
            &host,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            ns.name(),
        ]);
        node.ip(&["link", "set", &host, "master", "br0", "up"]);
        let addrs = cases::model_addrs(&k);
        ns.ip(&["addr", "add", &format!("{}/24", addrs[0]), "dev", "eth0"]);
        ns.ip(&[
            "addr",
            "add",
            &format!("{}/64", addrs[1]),
            "dev",
            "eth0",
            "nodad",
        ]);
        ns.ip(&["link", "set", "eth0", "up"]);
        ns.ip(&["route", "add", "default", "via", &format!("10.24{n}.0.1")]);
        ns.ip(&[
            "-6",
            "route",
            "add",
            "default",
            "via",
            &format!("fd00:24{n}::1"),
        ]);
        for port in cases::PORTS {
            servers.push(ProbeServer::start(
                &ns.path(),
                SocketAddr::new("::".parse().unwrap(), port),
            ));
        }
        pods.push((k, ns));
    }
    Nodes {
        nodes,
        pods,
        _servers: servers,
    }
}

/// Probes until the matrices equal the model's (up to `deadline`); the differences left.
fn converge(n: &Nodes, s: &Scenario, deadline: Duration) -> Vec<String> {
    let keys = cases::pods();
    let pods: Vec<(PathBuf, Vec<IpAddr>)> = n
        .pods
        .iter()
        .map(|(k, ns)| (ns.path(), s.addrs(k).to_vec()))
        .collect();
    matrix::converge(&s.cluster(), &keys, deadline, |probes| {
        let targets: Vec<Target> = probes
            .iter()
            .map(|&(proto, port, v6)| Target {
                udp: proto == Proto::Udp,
                port,
                v6,
            })
            .collect();
        probe_matrices(&pods, &targets, Duration::from_millis(1000))
    })
}

fn program(n: &Nodes, programmed: &mut [Option<Ruleset>], s: &Scenario) {
    let c = s.cluster();
    for (i, node) in n.nodes.iter().enumerate() {
        let next = Ruleset::of(&node_policy(&c, NODES[i]), None);
        let batch = match &programmed[i] {
            None => ruleset::full(&next),
            Some(old) => ruleset::diff(old, &next).0,
        };
        node.run(|| NftSocket::open().unwrap().apply(&batch))
            .unwrap_or_else(|e| panic!("node {i}: {e}"));
        programmed[i] = Some(next);
    }
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn every_case_on_two_nodes_over_both_families_matches_the_model() {
    let n = build();
    let mut programmed = vec![None, None];
    let fresh = Scenario::new(cases::model_addrs);
    program(&n, &mut programmed, &fresh);
    let open = converge(&n, &fresh, Duration::from_secs(10));
    assert!(open.is_empty(), "no policy yet:\n{}", open.join("\n"));
    let mut failures = Vec::new();
    let t0 = Instant::now();
    let mut steps = 0;
    for case in cases::cases() {
        let mut s = Scenario::new(cases::model_addrs);
        for step in &case.steps {
            for a in &step.actions {
                s.run(a).unwrap();
            }
            program(&n, &mut programmed, &s);
            let diffs = converge(&n, &s, Duration::from_secs(5));
            if !diffs.is_empty() {
                failures.push(format!(
                    "{} / {}:\n{}",
                    case.name,
                    step.what,
                    diffs.join("\n")
                ));
            }
            steps += 1;
        }
        // Back to no policy, by differences as well.
        program(&n, &mut programmed, &fresh);
    }
    eprintln!(
        "{} cases, {steps} steps probed (81 pairs x 8 probes each) in {:.1?}",
        cases::cases().len(),
        t0.elapsed()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
