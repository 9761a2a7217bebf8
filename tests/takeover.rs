//! Taking over a node from the reference plugins (Debian's `containernetworking-plugins`
//! 1.1.1 in `/usr/lib/cni`, iptables-nft), and going back.
//!
//! The reference ADDs pods (bridge with `ipMasq`, portmap with a hostPort), then the binaries
//! are swapped for ours on the running node (same conf dir, same result cache), and every
//! later DEL and GC is ours: it must leave no rule mentioning the container id, the address or
//! the host port, and the next pod that gets the address must receive nothing on the old host
//! port (a stale hostPort hands traffic to a pod that never asked for it). Pods of both kinds
//! share one bridge. Going back, `scripts/uninstall.sh` takes every rule, set and table of ours
//! away and puts the reference binaries back.
//!
//! Everything runs on a simulated node (its own network namespace); traffic comes from the
//! simulated internet host and is answered by a probe that reports the source it sees.
#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::Command;

use ferro_e2e::Ran;
use ferro_testutil::netns::Netns;
use ferro_testutil::probe::{tcp_source, ProbeServer};
use ferro_testutil::runtime::{pod_ip, Runtime};
use ferro_testutil::topology::{World, INTERNET};
use ferro_testutil::{require_root, run_plugin_in, PluginDir, PluginRun};
use serde_json::{json, Value};

const PLUGINS: [&str; 3] = ["bridge", "portmap", "host-local"];

fn reference() -> PluginDir {
    PluginDir::mixed(&[], &PLUGINS)
}

fn ours() -> PluginDir {
    PluginDir::mixed(&PLUGINS, &[])
}

/// The list both suites run: 1.0.0, the newest the reference 1.1.1 speaks.
fn list(data: &Path, bridge: &str, subnet: &str) -> Value {
    json!({"cniVersion":"1.0.0","name":"kbr","plugins":[
        {"type":"bridge","bridge":bridge,"isGateway":true,"ipMasq":true,
         "ipam":{"type":"host-local","dataDir":data,"ranges":[[{"subnet":subnet}]],
                 "routes":[{"dst":"0.0.0.0/0"}]}},
        {"type":"portmap","capabilities":{"portMappings":true}}]})
}

fn host_port(port: u16) -> String {
    json!({"portMappings":[{"hostPort":port,"containerPort":8080,"protocol":"tcp"}]}).to_string()
}

/// A pod added through `rt`, with `port` published when given and `ip` pinned when given.
fn add(rt: &Runtime, port: Option<u16>, ip: Option<&str>) -> (Netns, String) {
    let pod = Netns::new("pod");
    let caps = port.map(host_port);
    let args = ip.map(|ip| format!("IgnoreUnknown=1;IP={ip}"));
    let mut env = Vec::new();
    if let Some(c) = &caps {
        env.push(("CAP_ARGS", c.as_str()));
    }
    if let Some(a) = &args {
        env.push(("CNI_ARGS", a.as_str()));
    }
    let r = rt.add_with("kbr", &pod, &env);
    let got = pod_ip(&r);
    if let Some(ip) = ip {
        assert_eq!(got, ip, "the pinned address");
    }
    (pod, got)
}

fn del(rt: &Runtime, pod: &Netns, port: Option<u16>) {
    let caps = port.map(host_port);
    let env: Vec<(&str, &str)> = caps.iter().map(|c| ("CAP_ARGS", c.as_str())).collect();
    rt.del_with("kbr", pod, &env);
}

/// GC of every plugin of `list` (ours), in order, at 1.1.0 with `valid` as
/// `cni.dev/valid-attachments`, as libcni sends it.
fn gc(node: &Netns, plugins: &PluginDir, list: &Value, valid: &[&str]) -> Vec<PluginRun> {
    let path = plugins.path_str();
    let env = [
        ("CNI_COMMAND", "GC"),
        ("CNI_CONTAINERID", ""),
        ("CNI_NETNS", ""),
        ("CNI_IFNAME", ""),
        ("CNI_PATH", path.as_str()),
    ];
    let attachments: Vec<Value> = valid
        .iter()
        .map(|id| json!({"containerID": id, "ifname": "eth0"}))
        .collect();
    list["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let mut conf = p.clone();
            conf["cniVersion"] = json!("1.1.0");
            conf["name"] = list["name"].clone();
            conf["cni.dev/valid-attachments"] = json!(attachments);
            conf["cni.dev/attachments"] = json!(attachments);
            let bin = plugins.path().join(p["type"].as_str().unwrap());
            let run = run_plugin_in(&bin, &env, &conf.to_string(), Some(&node.path()));
            run.ok();
            run
        })
        .collect()
}

/// The node's whole firewall: what iptables-nft shows (both families) and nft's ruleset.
fn firewall(node: &Netns) -> String {
    let mut s = String::new();
    for cmd in [
        &["iptables-nft-save"][..],
        &["ip6tables-nft-save"],
        &["nft", "list", "ruleset"],
    ] {
        for l in node.exec(cmd).lines().filter(|l| !l.starts_with('#')) {
            s += l;
            s.push('\n');
        }
    }
    s
}

/// The lines of the node's firewall that mention any of `needles`.
fn mentions(node: &Netns, needles: &[&str]) -> Vec<String> {
    firewall(node)
        .lines()
        .filter(|l| needles.iter().any(|n| l.contains(n)))
        .map(String::from)
        .collect()
}

/// What the internet host sees answering at node:port (the pod's probe reports the source).
fn from_internet(world: &World, port: u16) -> Option<IpAddr> {
    tcp_source(
        &world.internet.path(),
        SocketAddr::new(world.nodes[0].ip, port),
    )
}

fn internet() -> Option<IpAddr> {
    Some(INTERNET.parse().unwrap())
}

fn probe(pod: &Netns, ip: &str) -> ProbeServer {
    ProbeServer::start(&pod.path(), SocketAddr::new(ip.parse().unwrap(), 8080))
}

/// A pod reaches the internet host, which sees the node's address (masquerade).
fn masqueraded(world: &World, pod: &Netns) -> bool {
    let srv = ProbeServer::start(
        &world.internet.path(),
        SocketAddr::new(internet().unwrap(), 7000),
    );
    let seen = tcp_source(&pod.path(), srv.addr);
    seen == Some(world.nodes[0].ip)
}

fn lease_held(data: &Path, ip: &str) -> bool {
    data.join("kbr").join(ip).exists()
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn reference_pods_deleted_by_ours_leave_no_trace_and_their_address_inherits_nothing() {
    require_root();
    let world = World::new(1);
    let node = &world.nodes[0].ns;
    let data = tempfile::tempdir().unwrap();
    let l = list(data.path(), "cbr71", "10.71.0.0/24");
    let mut rt = Runtime::with_plugins(node, reference());
    rt.write_conflist("10-kbr", &l);

    // The reference makes two pods, each publishing a host port.
    let (a, ip_a) = add(&rt, Some(18900), None);
    let (b, ip_b) = add(&rt, Some(18901), None);
    let (id_a, id_b) = (Runtime::container_id(&a), Runtime::container_id(&b));
    let srv_a = probe(&a, &ip_a);
    assert_eq!(
        from_internet(&world, 18900),
        internet(),
        "the reference's host port"
    );
    assert!(masqueraded(&world, &a), "the reference's masquerade");
    drop(srv_a);
    assert!(!mentions(node, &[&id_a, &id_b]).is_empty());

    // The binaries are swapped; the pods keep running.
    rt.swap_plugins(ours());

    // a: DEL as libcni sends it (prevResult from the cache, runtimeConfig, the netns alive).
    del(&rt, &a, Some(18900));
    // b: its netns is gone and the runtime repeats DEL without netns nor prevResult.
    drop(b);
    rt.bare_del_all(&l, &id_b);

    for (id, ip, port) in [(&id_a, &ip_a, "18900"), (&id_b, &ip_b, "18901")] {
        assert_eq!(
            mentions(node, &[id, &format!("{ip}/"), &format!("{ip} "), port]),
            Vec::<String>::new(),
            "nothing of {id} is left:\n{}",
            firewall(node)
        );
        assert!(!lease_held(data.path(), ip), "{ip} is released");
    }
    // What the reference shares between pods stays until GC finds none of its pods left.
    assert!(firewall(node).contains("CNI-HOSTPORT-DNAT"));

    // New pods inherit the addresses and publish nothing: the old host ports reach nobody.
    for (ip, port) in [(&ip_a, 18900), (&ip_b, 18901)] {
        let (pod, _) = add(&rt, None, Some(ip));
        let _srv = probe(&pod, ip);
        // (It announced its address: the node's neighbour entry of the old pod is replaced.)
        assert!(
            tcp_source(&node.path(), SocketAddr::new(ip.parse().unwrap(), 8080)).is_some(),
            "the new pod at {ip} answers; the node's neighbours:\n{}",
            node.exec(&["ip", "neigh"])
        );
        assert_eq!(from_internet(&world, port), None, "old host port {port}");
        del(&rt, &pod, None);
    }
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn gc_by_ours_removes_what_the_runtime_no_longer_lists_and_keeps_the_rest() {
    require_root();
    let world = World::new(1);
    let node = &world.nodes[0].ns;
    let data = tempfile::tempdir().unwrap();
    let l = list(data.path(), "cbr72", "10.72.0.0/24");
    let mut rt = Runtime::with_plugins(node, reference());
    rt.write_conflist("10-kbr", &l);

    // Pod a publishes 18910, and the reference's own DEL without a netns forgets it (the
    // reference leaks: its lease goes, its chains stay).
    let (a, ip_a) = add(&rt, Some(18910), None);
    let id_a = Runtime::container_id(&a);
    drop(a);
    rt.bare_del_all(&l, &id_a);
    assert!(!lease_held(data.path(), &ip_a));
    assert!(!mentions(node, &[&id_a]).is_empty(), "the reference leaked");
    // The defect itself: the next pod at that address, publishing nothing, gets the traffic.
    let (c, _) = add(&rt, Some(18911), Some(&ip_a));
    let id_c = Runtime::container_id(&c);
    let srv_c = probe(&c, &ip_a);
    assert_eq!(from_internet(&world, 18910), internet(), "stale host port");

    // Ours take over; GC with c as the only valid attachment.
    rt.swap_plugins(ours());
    gc(node, &rt.plugins, &l, &[&id_c]);
    assert_eq!(
        from_internet(&world, 18910),
        None,
        "stale host port after GC"
    );
    assert_eq!(mentions(node, &[&id_a, "18910"]), Vec::<String>::new());
    // c, valid, keeps everything: its host port, its masquerade, its lease.
    assert_eq!(from_internet(&world, 18911), internet());
    assert!(masqueraded(&world, &c));
    assert!(lease_held(data.path(), &ip_a));
    drop(srv_c);

    // c goes too (its runtime lost it): nothing of the reference is left, shared chains
    // included, and nothing else was touched (the nat tables stay, empty).
    gc(node, &rt.plugins, &l, &[]);
    let fw = firewall(node);
    assert_eq!(
        mentions(node, &["CNI-", &id_c, &ip_a, "18911"]),
        Vec::<String>::new(),
        "{fw}"
    );
    assert!(!lease_held(data.path(), &ip_a));
    drop(c);
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn pods_of_both_suites_share_a_bridge_and_deleting_ours_leaves_the_references_alone() {
    require_root();
    let world = World::new(1);
    let node = &world.nodes[0].ns;
    let data = tempfile::tempdir().unwrap();
    let l = list(data.path(), "cbr73", "10.73.0.0/24");
    let mut rt = Runtime::with_plugins(node, reference());
    rt.write_conflist("10-kbr", &l);
    let (r, ip_r) = add(&rt, Some(18920), None);
    rt.swap_plugins(ours());
    let (o, ip_o) = add(&rt, Some(18921), None);
    let (_sr, _so) = (probe(&r, &ip_r), probe(&o, &ip_o));
    for (pod, port) in [(&r, 18920), (&o, 18921)] {
        assert!(masqueraded(&world, pod), "{port}");
        assert_eq!(from_internet(&world, port), internet(), "{port}");
    }
    // Ours goes: the reference's pod keeps its masquerade and host port.
    del(&rt, &o, Some(18921));
    assert_eq!(from_internet(&world, 18921), None);
    assert_eq!(from_internet(&world, 18920), internet());
    assert!(masqueraded(&world, &r));
    // The reference's goes, through ours.
    let id_r = Runtime::container_id(&r);
    del(&rt, &r, Some(18920));
    assert_eq!(mentions(node, &[&id_r, "18920"]), Vec::<String>::new());
    assert_eq!(from_internet(&world, 18920), None);
}

/// Runs `scripts/<name> <args>` on the node (in its network namespace).
fn script(node: &Netns, name: &str, args: &[&str]) -> Ran {
    Ran::of(
        Command::new("ip")
            .args(["netns", "exec", node.name()])
            .arg(ferro_e2e::repo().join("scripts").join(name))
            .args(args)
            .output()
            .unwrap(),
    )
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn going_back_to_the_reference_removes_everything_of_ours() {
    require_root();
    let world = World::new(1);
    let node = &world.nodes[0].ns;
    let data = tempfile::tempdir().unwrap();
    let l = list(data.path(), "cbr74", "10.74.0.0/24");
    // The plugin directory holds the reference plugins; install.sh puts ours over them.
    let reference_plugins = ["bridge", "portmap", "host-local", "loopback"];
    let rt = Runtime::with_plugins(node, PluginDir::mixed(&[], &reference_plugins));
    rt.write_conflist("10-kbr", &l);
    let prefix = rt.plugins.path_str();
    let from = ferro_testutil::bin_dir().display().to_string();
    let install = || {
        script(
            node,
            "install.sh",
            &["--from", &from, "--prefix", &prefix, "--force"],
        )
        .ok("install.sh");
    };
    let is_reference = || {
        reference_plugins.iter().all(|p| {
            std::fs::read_link(rt.plugins.path().join(p)).ok()
                == Some(Path::new("/usr/lib/cni").join(p))
        }) && !rt.plugins.path().join("cnictl").exists()
    };

    // Drained first (the pods of ours deleted by ours): nothing of ours is left.
    install();
    let (p, _) = add(&rt, Some(18930), None);
    del(&rt, &p, Some(18930));
    drop(p);
    script(node, "uninstall.sh", &["--prefix", &prefix]).ok("uninstall.sh");
    assert!(!firewall(node).contains("ferro"), "{}", firewall(node));
    assert!(is_reference());

    // Not drained: a pod of ours with a host port.
    install();
    let (o, ip_o) = add(&rt, Some(18931), None);
    let _so = probe(&o, &ip_o);
    assert_eq!(from_internet(&world, 18931), internet());
    let cnictl = rt.plugins.path().join("cnictl").display().to_string();
    let shown = node.exec(&[&cnictl, "firewall", "show"]);
    assert!(
        shown.contains(&ip_o) && shown.contains("tcp 18931"),
        "{shown}"
    );
    // Refused while it still has state, naming why; nothing is changed.
    let refused = script(node, "uninstall.sh", &["--prefix", &prefix]);
    assert_ne!(refused.code, 0);
    assert!(refused.stderr.contains("--force"), "{}", refused.stderr);
    assert!(firewall(node).contains("table inet ferro_cni"));
    assert!(rt.plugins.path().join("cnictl").exists());
    // Forced: the pod loses its masquerade and host port; nothing of ours is left.
    script(node, "uninstall.sh", &["--prefix", &prefix, "--force"]).ok("uninstall.sh --force");
    let fw = firewall(node);
    assert!(!fw.contains("ferro"), "{fw}");
    assert_eq!(from_internet(&world, 18931), None);
    assert!(is_reference());

    // The reference bridge cannot DEL a running pod it did not make (it exits 999 removing a
    // masquerade chain that never existed) until the pod's namespace is gone: why the node
    // is drained first. Then it releases the address.
    let env_caps = host_port(18931);
    let netns = o.path().display().to_string();
    let failed = rt.cnictl(&["del", "kbr", &netns], &[("CAP_ARGS", env_caps.as_str())]);
    assert_ne!(failed.code, 0);
    assert!(
        failed.stderr.contains("does not exist"),
        "{}",
        failed.stderr
    );
    drop(o);
    rt.cnictl(&["del", "kbr", &netns], &[("CAP_ARGS", env_caps.as_str())])
        .ok();
    assert!(!lease_held(data.path(), &ip_o));

    // A new pod of the reference at that address publishes its own port and receives
    // nothing on the old one.
    let (n, _) = add(&rt, Some(18932), Some(&ip_o));
    let _sn = probe(&n, &ip_o);
    assert_eq!(from_internet(&world, 18932), internet());
    assert_eq!(from_internet(&world, 18931), None);
    assert!(masqueraded(&world, &n));
    del(&rt, &n, Some(18932));
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn with_legacy_iptables_del_and_gc_say_what_they_cannot_remove_and_succeed() {
    require_root();
    let world = World::new(1);
    let node = &world.nodes[0].ns;
    let data = tempfile::tempdir().unwrap();
    let l = list(data.path(), "cbr75", "10.75.0.0/24");
    let rt = Runtime::with_plugins(node, ours());
    // Legacy iptables in use on this node (x_tables, invisible to nf_tables).
    node.exec(&["iptables-legacy", "-t", "nat", "-N", "CNI-LEGACY"]);
    let path = rt.plugins.path_str();
    for p in ["portmap", "bridge"] {
        let conf = json!({"cniVersion":"1.1.0","name":"kbr"});
        let mut conf = serde_json::from_value::<serde_json::Map<String, Value>>(conf).unwrap();
        for (k, v) in l["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["type"] == p)
            .unwrap()
            .as_object()
            .unwrap()
        {
            conf.insert(k.clone(), v.clone());
        }
        for (verb, id) in [("DEL", "gone"), ("GC", "")] {
            let env = [
                ("CNI_COMMAND", verb),
                ("CNI_CONTAINERID", id),
                ("CNI_NETNS", ""),
                ("CNI_IFNAME", if verb == "DEL" { "eth0" } else { "" }),
                ("CNI_PATH", path.as_str()),
            ];
            let run = run_plugin_in(
                rt.plugins.path().join(p),
                &env,
                &Value::Object(conf.clone()).to_string(),
                Some(&node.path()),
            );
            run.ok();
            let lines: Vec<&str> = run
                .stderr
                .lines()
                .filter(|l| l.contains("legacy iptables"))
                .collect();
            assert_eq!(lines.len(), 1, "{p} {verb}: {}", run.stderr);
            assert!(lines[0].contains("iptables-legacy"), "{}", lines[0]);
            if verb == "DEL" {
                let chain = if p == "bridge" { "CNI-" } else { "CNI-DN-" };
                assert!(
                    lines[0].contains(chain) && lines[0].contains("kbr/gone"),
                    "{}",
                    lines[0]
                );
            }
        }
    }
}
