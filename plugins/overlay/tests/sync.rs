//! `cnictl overlay sync` keeps the VXLAN peers in line with the node list when nodes join or
//! leave without any pod changing.
#![allow(clippy::unwrap_used)]

use std::process::Command;

use ferro_testutil::netns::Netns;
use ferro_testutil::topology::World;
use ferro_testutil::{require_root, run_plugin_in, workspace_bin, PluginDir};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_overlay");

fn node_list(world: &World, count: usize) -> String {
    let nodes: Vec<_> = world.nodes[..count]
        .iter()
        .enumerate()
        .map(|(i, n)| json!({"name": format!("node{i}"), "address": n.ip.to_string(), "podSubnet": format!("10.244.{}.0/24", i + 1)}))
        .collect();
    json!({"nodes": nodes}).to_string()
}

/// A dual-stack node list over the IPv6 underlay: node `i` has 10.244.<i+1>.0/24 and
/// fd00:10:244:<i+1>::/64.
fn dual_list(world: &World, count: usize) -> String {
    let nodes: Vec<_> = world.nodes[..count]
        .iter()
        .enumerate()
        .map(|(i, n)| json!({"name": format!("node{i}"), "address": n.ip6.to_string(),
            "podSubnets": [format!("10.244.{}.0/24", i + 1), format!("fd00:10:244:{}::/64", i + 1)]}))
        .collect();
    json!({ "nodes": nodes }).to_string()
}

/// (neighbours, fdb entries, routes) on ferro.1, one line each, sorted.
fn peer_state(ns: &Netns) -> (Vec<String>, Vec<String>, Vec<String>) {
    let lines = |s: String| {
        let mut v: Vec<String> = s
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect();
        v.sort();
        v
    };
    (
        lines(ns.ip(&["neigh", "show", "dev", "ferro.1", "nud", "permanent"])),
        lines(
            ns.exec(&["bridge", "fdb", "show", "dev", "ferro.1"])
                .lines()
                .filter(|l| l.contains(" dst "))
                .collect::<Vec<_>>()
                .join("\n"),
        ),
        lines(
            format!(
                "{}\n{}",
                ns.ip(&["route", "show", "dev", "ferro.1"]),
                ns.ip(&["-6", "route", "show", "dev", "ferro.1"])
            )
            .lines()
            .filter(|l| l.contains("onlink"))
            .collect::<Vec<_>>()
            .join("\n"),
        ),
    )
}

/// Writes the network `ovl` made of the overlay plugin object `object` (static IPAM) into a
/// fresh conf dir and runs the plugin's ADD for a pod on `node`, which creates the VXLAN
/// device and its peers. Returns the conf dir and the pod.
fn network_with_a_pod(node: &Netns, object: Value, label: &str) -> (tempfile::TempDir, Netns) {
    let dir = PluginDir::new(&["static"]);
    let confdir = tempfile::tempdir().unwrap();
    let list = json!({"cniVersion":"1.0.0","name":"ovl","plugins":[object.clone()]});
    std::fs::write(confdir.path().join("10-ovl.conflist"), list.to_string()).unwrap();
    let mut conf = object;
    conf["cniVersion"] = json!("1.0.0");
    conf["name"] = json!("ovl");
    let pod = Netns::new(label);
    let path = pod.path().display().to_string();
    let env = [
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", label),
        ("CNI_NETNS", path.as_str()),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", &dir.path_str()),
    ];
    run_plugin_in(BIN, &env, &conf.to_string(), Some(&node.path())).ok();
    (confdir, pod)
}

fn sync(node: &Netns, confdir: &std::path::Path, extra: &[&str]) -> String {
    let out = Command::new("nsenter")
        .arg(format!("--net={}", node.path().display()))
        .arg(workspace_bin("cnictl"))
        .args(["overlay", "sync", "ovl"])
        .args(extra)
        .env("NETCONFPATH", confdir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cnictl overlay sync failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn removing_a_node_from_the_list_removes_exactly_its_entries() {
    require_root();
    let world = World::new(3);
    let list = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(list.path(), node_list(&world, 3)).unwrap();
    let a = &world.nodes[0].ns;
    let (confdir, _pod) = network_with_a_pod(
        a,
        json!({"type":"overlay","podCIDR":"10.244.0.0/16","nodeName":"node0","nodeList": list.path(),
            "ipam":{"type":"static","addresses":[{"address":"10.244.1.5/24"}]}}),
        "spod",
    );

    let (n3, f3, r3) = peer_state(a);
    assert_eq!(
        (n3.len(), f3.len(), r3.len()),
        (2, 2, 2),
        "two peers: {n3:?} {f3:?} {r3:?}"
    );
    assert!(sync(a, confdir.path(), &[]).contains("0 added, 0 updated, 0 removed, 2 unchanged"));

    // node C (10.240.0.6, slice 10.244.3.0/24) leaves
    std::fs::write(list.path(), node_list(&world, 2)).unwrap();
    let report = sync(a, confdir.path(), &["--dry-run"]);
    assert!(report.contains("1 removed"), "{report}");
    assert_eq!(
        peer_state(a),
        (n3.clone(), f3.clone(), r3.clone()),
        "a dry run changes nothing"
    );
    let report = sync(a, confdir.path(), &[]);
    assert!(report.contains("1 removed (10.244.3.0/24)"), "{report}");
    let (n2, f2, r2) = peer_state(a);
    let gone = |before: &[String], after: &[String]| {
        before
            .iter()
            .filter(|l| !after.contains(l))
            .cloned()
            .collect::<Vec<_>>()
    };
    let (gn, gf, gr) = (gone(&n3, &n2), gone(&f3, &f2), gone(&r3, &r2));
    assert!(
        gn.len() == 1 && gn[0].starts_with("10.244.3.0 "),
        "exactly C's neighbour: {gn:?}"
    );
    assert!(
        gf.len() == 1 && gf[0].contains("dst 10.240.0.6"),
        "exactly C's FDB entry: {gf:?}"
    );
    assert!(
        gr.len() == 1 && gr[0].starts_with("10.244.3.0/24 via 10.244.3.0"),
        "exactly C's route: {gr:?}"
    );
    assert_eq!(n2.len() + f2.len() + r2.len(), 3, "B's entries stay");

    // C comes back with another address: added again, pointing at the new address
    std::fs::write(
        list.path(),
        node_list(&world, 3).replace("10.240.0.6", "10.240.0.9"),
    )
    .unwrap();
    let report = sync(a, confdir.path(), &[]);
    assert!(report.contains("1 added (10.244.3.0/24)"), "{report}");
    assert!(peer_state(a).1.iter().any(|l| l.contains("dst 10.240.0.9")));
    // C's address changes again: updated in place
    std::fs::write(list.path(), node_list(&world, 3)).unwrap();
    let report = sync(a, confdir.path(), &[]);
    assert!(report.contains("1 updated (10.244.3.0/24)"), "{report}");
    assert_eq!(peer_state(a), (n3.clone(), f3.clone(), r3.clone()));
    // C's VTEP MAC changes (the list now names one): neighbour and FDB entry replaced
    let with_mac = node_list(&world, 3).replace(
        r#""podSubnet":"10.244.3.0/24""#,
        r#""podSubnet":"10.244.3.0/24","vtepMAC":"02:aa:bb:cc:dd:03""#,
    );
    assert!(with_mac.contains("vtepMAC"));
    std::fs::write(list.path(), with_mac).unwrap();
    let report = sync(a, confdir.path(), &[]);
    assert!(report.contains("1 updated (10.244.3.0/24)"), "{report}");
    let (n, f, r) = peer_state(a);
    assert!(
        n.iter()
            .any(|l| l.starts_with("10.244.3.0 ") && l.contains("02:aa:bb:cc:dd:03")),
        "{n:?}"
    );
    assert!(
        f.iter()
            .any(|l| l.starts_with("02:aa:bb:cc:dd:03") && l.contains("dst 10.240.0.6")),
        "{f:?}"
    );
    assert_eq!(
        (n.len(), f.len(), r.len()),
        (2, 2, 2),
        "the old MAC's entries are gone"
    );
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn dual_stack_peers_over_ipv6_are_synced_in_both_families() {
    require_root();
    let world = World::new(3);
    let list = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(list.path(), dual_list(&world, 3)).unwrap();
    let a = &world.nodes[0].ns;
    let (confdir, _pod) = network_with_a_pod(
        a,
        json!({"type":"overlay","podCIDRs":["10.244.0.0/16","fd00:10:244::/56"],"nodeName":"node0",
            "nodeList": list.path(),"ipam":{"type":"static","addresses":[{"address":"10.244.1.5/24"},
            {"address":"fd00:10:244:1::5/64"}]}}),
        "sdpod",
    );

    let (n3, f3, r3) = peer_state(a);
    assert_eq!(
        (n3.len(), f3.len(), r3.len()),
        (4, 2, 4),
        "two peers, each a neighbour and a route per family and one FDB entry over IPv6: \
         {n3:?} {f3:?} {r3:?}"
    );
    assert!(f3.iter().all(|l| l.contains("dst fd00:240::")), "{f3:?}");
    assert!(sync(a, confdir.path(), &[]).contains("0 added, 0 updated, 0 removed, 4 unchanged"));

    // node C leaves: exactly its entries of both families go
    std::fs::write(list.path(), dual_list(&world, 2)).unwrap();
    let report = sync(a, confdir.path(), &[]);
    assert!(
        report.contains("2 removed (10.244.3.0/24, fd00:10:244:3::/64)"),
        "{report}"
    );
    let (n2, f2, r2) = peer_state(a);
    assert_eq!((n2.len(), f2.len(), r2.len()), (2, 1, 2));
    assert!(n2
        .iter()
        .chain(&r2)
        .all(|l| !l.contains("244.3.") && !l.contains("244:3:")));
    assert!(f2.iter().all(|l| !l.contains("fd00:240::6")), "{f2:?}");
    // C comes back: both slices added again
    std::fs::write(list.path(), dual_list(&world, 3)).unwrap();
    let report = sync(a, confdir.path(), &[]);
    assert!(
        report.contains("2 added (10.244.3.0/24, fd00:10:244:3::/64)"),
        "{report}"
    );
    assert_eq!(peer_state(a), (n3, f3, r3));
}
