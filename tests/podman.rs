//! podman 4.3 with its CNI backend: `podman network create` writes a conflist that
//! runs our `bridge`, `host-local` and `portmap` with the reference `firewall` and `tuning`;
//! a container gets its address, pings its gateway and publishes a port that answers from
//! another namespace; a podman network whose conflist is our flat example works too. podman
//! calls VERSION often and sends cniVersion 0.4.0 for the networks it writes.
//!
//! Isolation: podman runs in node A's network namespace and a holder's private mount
//! namespace (scripts/runtimes.sh `podman_start`): private `containers.conf` (CNI backend, the
//! recording plugin dir as its only plugin dir, a private network config dir, cgroupfs,
//! ulimits within the machine's) and vfs storage under a temporary directory; private
//! `/var/lib/cni`, `/run/netns`, `/dev/shm`, `/run/containers`, `/run/libpod`, `/run/runc`,
//! `/var/lib/containers`; containers in a cgroup parent of its own, removed at the end;
//! every process (containers, conmon, the holder) stopped by pid when the test ends.
#![allow(clippy::unwrap_used)]

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use ferro_e2e::{example, leases, our_table, pod_veths, Cluster, Model, Plugins, Podman};
use ferro_testutil::netns::Netns;
use ferro_testutil::probe::ProbeServer;
use ferro_testutil::topology::PEER;

/// Connects from inside `ns` to `dst` (retrying while the server starts) and returns what
/// the server wrote; None when nothing answered.
fn fetch(ns: &Netns, dst: SocketAddr) -> Option<String> {
    ns.run(|| {
        for _ in 0..20 {
            if let Ok(mut c) = TcpStream::connect_timeout(&dst, Duration::from_secs(1)) {
                c.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
                let mut s = String::new();
                c.read_to_string(&mut s).ok()?;
                if !s.is_empty() {
                    return Some(s);
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        None
    })
}

fn address_of(out: &str) -> String {
    out.split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|a| a.split('/').next())
        .unwrap_or_else(|| panic!("no address in:\n{out}"))
        .to_string()
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn podman_network_create_runs_our_bridge_with_the_reference_firewall_and_tuning() {
    let t0 = Instant::now();
    let c = Cluster::new(Model::Kubenet);
    let plugins = Plugins::new(&["bridge", "host-local", "portmap", "firewall", "tuning"]);
    let podman = Podman::start(c.node_a(), plugins.path());
    podman
        .podman(&["network", "create", "--subnet", "10.89.1.0/24", "ferronet"])
        .ok("podman network create");
    let list: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(podman.netconf.join("ferronet.conflist")).unwrap(),
    )
    .unwrap();
    let types: Vec<&str> = list["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["bridge", "portmap", "firewall", "tuning"], "{list}");
    assert_eq!(list["cniVersion"], "0.4.0");

    // a container: its address, its gateway
    let rootfs = podman.rootfs.display().to_string();
    let out = podman
        .run(&[
            "--rm",
            "--network",
            "ferronet",
            "--rootfs",
            &rootfs,
            "sh",
            "-c",
            "ip -4 -o addr show dev eth0; ping -c1 -W2 10.89.1.1 >/dev/null && echo GATEWAY-OK",
        ])
        .ok("podman run")
        .to_string();
    let addr = address_of(&out);
    assert!(addr.starts_with("10.89.1."), "{out}");
    assert!(out.contains("GATEWAY-OK"), "{out}");

    // a published port, answering the VM on the VNet at node A's address
    podman
        .run(&[
            "-d",
            "--name",
            "web",
            "--network",
            "ferronet",
            "-p",
            "8080:80",
            "--rootfs",
            &rootfs,
            "nc",
            "-ll",
            "-p",
            "80",
            "-e",
            "echo",
            "hello from the pod",
        ])
        .ok("podman run -d -p");
    let got = fetch(&c.world.peer, "10.240.0.4:8080".parse().unwrap());
    assert_eq!(got.as_deref(), Some("hello from the pod\n"));
    let web = podman
        .podman(&[
            "inspect",
            "web",
            "--format",
            "{{.NetworkSettings.Networks.ferronet.IPAddress}}",
        ])
        .ok("podman inspect")
        .trim()
        .to_string();
    assert!(our_table(c.node_a()).contains(&web));
    podman
        .podman(&["rm", "--force", "--time", "0", "web"])
        .ok("podman rm");

    // nothing left
    let node = c.node_a();
    assert_eq!(pod_veths(node), Vec::<String>::new());
    let table = our_table(node);
    assert!(!table.contains(&addr) && !table.contains(&web), "{table}");
    assert!(!table.contains("8080"), "host port left:\n{table}");
    assert_eq!(
        leases(&podman.var_lib_cni().join("networks"), "ferronet"),
        Vec::<String>::new()
    );

    // what podman sent
    plugins.print_calls("podman");
    let versions = plugins.calls_of("VERSION");
    assert!(
        versions.len() >= 4,
        "podman asks every plugin for VERSION: {versions:?}"
    );
    let adds = plugins.calls_of("ADD");
    let ours: Vec<_> = adds.iter().filter(|c| c.plugin == "bridge").collect();
    assert_eq!(ours.len(), 2, "{adds:?}");
    for add in &adds {
        assert_eq!(add.conf()["cniVersion"], "0.4.0", "{add:?}");
        assert!(add.var("CNI_NETNS").starts_with("/run/netns/"), "{add:?}");
    }
    let pm = adds
        .iter()
        .filter(|c| c.plugin == "portmap")
        .find(|c| c.conf()["runtimeConfig"]["portMappings"].is_array())
        .expect("portmap got the mapping");
    assert_eq!(
        pm.conf()["runtimeConfig"]["portMappings"][0]["hostPort"],
        8080
    );
    eprintln!("podman network create: {:.1?}", t0.elapsed());
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn podman_runs_a_network_whose_conflist_is_the_flat_example() {
    let t0 = Instant::now();
    let c = Cluster::new(Model::Flat);
    let (b, b_ip) = c.pod_b("pm-b");
    let _on_b = ProbeServer::start(&b.path(), SocketAddr::new(b_ip.parse().unwrap(), 7000));
    let _on_peer = ProbeServer::start(
        &c.world.peer.path(),
        SocketAddr::new(PEER.parse().unwrap(), 7000),
    );
    let plugins = Plugins::new(&["flat", "host-local", "portmap"]);
    let podman = Podman::start(c.node_a(), plugins.path());
    std::fs::write(
        podman.netconf.join("azure.conflist"),
        example("flat.conflist"),
    )
    .unwrap();
    let ls = podman
        .podman(&["network", "ls", "--format", "{{.Name}} {{.Driver}}"])
        .ok("podman network ls")
        .to_string();
    assert!(ls.contains("azure flat"), "{ls}");
    let rootfs = podman.rootfs.display().to_string();
    let out = podman
        .run(&[
            "--rm",
            "--network",
            "azure",
            "--rootfs",
            &rootfs,
            "sh",
            "-c",
            &format!(
                "ip -4 -o addr show dev eth0\n\
                 ping -c1 -W2 10.240.0.4 >/dev/null && echo NODE-OK\n\
                 echo SEEN-BY-B $(nc -w 3 {b_ip} 7000 </dev/null)\n\
                 echo SEEN-BY-VM $(nc -w 3 {PEER} 7000 </dev/null)\n"
            ),
        ])
        .ok("podman run")
        .to_string();
    let addr = address_of(&out);
    assert!(Model::Flat.is_node_a_address(&addr), "{out}");
    assert!(out.contains("NODE-OK"), "{out}");
    assert!(out.contains(&format!("SEEN-BY-B {addr} 0")), "{out}");
    assert!(
        out.contains(&format!("SEEN-BY-VM {addr} 0")),
        "inside the VNet without NAT: {out}"
    );
    assert_eq!(pod_veths(c.node_a()), Vec::<String>::new());
    assert!(!our_table(c.node_a()).contains(&addr));
    assert_eq!(
        leases(&podman.var_lib_cni().join("networks"), "azure"),
        Vec::<String>::new()
    );
    plugins.print_calls("podman");
    let adds = plugins.calls_of("ADD");
    assert!(adds.iter().any(|c| c.plugin == "flat"), "{adds:?}");
    assert!(adds.iter().all(|c| c.conf()["cniVersion"] == "1.0.0"));
    c.del_b(&b);
    eprintln!("podman flat: {:.1?}", t0.elapsed());
}
