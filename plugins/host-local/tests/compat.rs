//! Store compatibility, both ways, with the reference plugin (`/usr/lib/cni/host-local`,
//! plugins v1.1.1, which speaks up to cniVersion 1.0.0): rule H10 of
//! [docs/conformance.md](../../../docs/conformance.md).
#![allow(clippy::unwrap_used)] // test code: a panic is a failure

mod common;

use std::fs;

use common::{addresses, require_reference, run_as, Net, OURS, REFERENCE};
use serde_json::json;

fn net() -> Net {
    require_reference();
    Net::new(json!([[{"subnet": "10.22.0.0/24"}], [{"subnet": "fd00:22::/64"}]])).version("1.0.0")
}

/// The config for our GC (which needs 1.1.0) with the given valid attachments.
fn gc_conf(net: &Net, valid: serde_json::Value) -> serde_json::Value {
    let mut c = net.conf_with(json!({ "cni.dev/valid-attachments": valid }));
    c["cniVersion"] = json!("1.1.0");
    c
}

#[test]
fn the_reference_allocates_and_we_release() {
    let net = net();
    net.reference("ADD", "a", &net.conf()).ok();
    let prev_b = net.reference("ADD", "b", &net.conf()).ok();
    net.reference("ADD", "c", &net.conf()).ok();
    assert_eq!(net.leases().len(), 6);
    // CHECK finds the reference's leases (a scan: they have no index entry).
    net.run("CHECK", "a", &net.conf()).ok();
    net.run(
        "CHECK",
        "b",
        &net.conf_with(json!({ "prevResult": prev_b })),
    )
    .ok();
    // DEL without prevResult (scan) and with it (the hint path).
    net.run("DEL", "a", &net.conf()).ok();
    net.run("DEL", "b", &net.conf_with(json!({ "prevResult": prev_b })))
        .ok();
    let left: Vec<String> = net.leases().into_values().collect();
    assert_eq!(left, ["c\r\neth0", "c\r\neth0"]);
    // GC releases the reference's leases too.
    net.run("GC", "", &gc_conf(&net, json!([]))).ok();
    assert!(net.leases().is_empty());
}

#[test]
fn we_allocate_and_the_reference_releases() {
    let net = net();
    net.add("a");
    net.add("b");
    net.reference("CHECK", "a", &net.conf()).ok();
    // The reference sees our lease and refuses a duplicate.
    let e = net.reference("ADD", "a", &net.conf()).err(999);
    assert!(
        e["msg"]
            .as_str()
            .unwrap()
            .contains("duplicate allocation is not allowed"),
        "{e}"
    );
    net.reference("DEL", "a", &net.conf()).ok();
    let left: Vec<String> = net.leases().into_values().collect();
    assert_eq!(
        left,
        ["b\r\neth0", "b\r\neth0"],
        "the reference released exactly a's leases"
    );
    // Our index entry for a is now stale: a new ADD of a is not a duplicate, and DEL works.
    assert_eq!(net.add("a"), ["10.22.0.4/24", "fd00:22::4/64"]);
    net.run("DEL", "a", &net.conf()).ok();
    net.reference("DEL", "b", &net.conf()).ok();
    assert!(net.leases().is_empty());
    // b's index entry is stale now (harmless: it is verified before use); GC removes it.
    assert_eq!(
        fs::read_dir(net.dir().join(".ferro-index"))
            .unwrap()
            .count(),
        1
    );
    net.run("GC", "", &gc_conf(&net, json!([]))).ok();
    assert_eq!(
        net.files(),
        ["last_reserved_ip.0", "last_reserved_ip.1", "lock"]
    );
}

#[test]
fn the_round_robin_continues_across_plugins() {
    let net = net();
    let mut got = Vec::new();
    for (i, bin) in [REFERENCE, OURS, REFERENCE, OURS].into_iter().enumerate() {
        let r = run_as(bin, "ADD", &format!("c{i}"), "eth0", &net.conf(), "").ok();
        got.push(addresses(&r));
    }
    assert_eq!(
        got,
        [
            ["10.22.0.2/24", "fd00:22::2/64"],
            ["10.22.0.3/24", "fd00:22::3/64"],
            ["10.22.0.4/24", "fd00:22::4/64"],
            ["10.22.0.5/24", "fd00:22::5/64"],
        ]
    );
    // Release in the other plugin than the one that allocated.
    for (i, bin) in [OURS, REFERENCE, OURS, REFERENCE].into_iter().enumerate() {
        run_as(bin, "DEL", &format!("c{i}"), "eth0", &net.conf(), "").ok();
    }
    assert!(net.leases().is_empty());
}

#[test]
fn ipv6_file_names_are_the_same() {
    // (v1.1.1 does not split a comma-separated IP=, so the request goes through args.)
    let requested = json!({"args": {"cni": {"ips": ["10.22.0.9", "fd00:22:0:0:1:0:0:1"]}}});
    let mut names = Vec::new();
    for bin in [REFERENCE, OURS] {
        let net = net();
        run_as(
            bin,
            "ADD",
            "a",
            "eth0",
            &net.conf_with(requested.clone()),
            "",
        )
        .ok();
        names.push(net.leases().into_keys().collect::<Vec<_>>());
    }
    assert_eq!(names[0], names[1]);
    assert_eq!(names[0], ["10.22.0.9", "fd00:22::1:0:0:1"]);
}

#[test]
fn legacy_and_crashed_files_left_by_the_reference() {
    let net = net();
    net.reference("ADD", "a", &net.conf()).ok();
    // An old reference version wrote the container id alone.
    fs::write(net.dir().join("10.22.0.50"), "legacy").unwrap();
    // The reference crashed between O_EXCL create and write.
    fs::write(net.dir().join("10.22.0.3"), "").unwrap();
    assert_eq!(
        net.add("b"),
        ["10.22.0.3/24", "fd00:22::3/64"],
        "the empty lease is reclaimed"
    );
    net.run("CHECK", "legacy", &net.conf()).ok();
    net.run("DEL", "legacy", &net.conf()).ok();
    assert!(!net.dir().join("10.22.0.50").exists());
    // The reference releases what we wrote over its crashed file.
    net.reference("DEL", "b", &net.conf()).ok();
    assert_eq!(net.leases().len(), 2);
}

/// The errors the reference test suites and Go tools compare as text (`msg`, or
/// `msg; details` when there are details) are the reference's word for word.
#[test]
fn refusals_are_worded_as_the_reference_words_them() {
    require_reference();
    let three = json!([[{"subnet": "10.22.0.0/24"}], [{"subnet": "fd00:22::/64"}], [{"subnet": "fd00:23::/64"}]]);
    let cases = [
        (Net::new(three.clone()).version("0.1.0"), "ADD"),
        (Net::new(three.clone()).version("0.2.0"), "ADD"),
        (Net::new(three).version("0.2.0"), "DEL"),
        (net().version("0.3.1"), "CHECK"),
        (net().version("0.2.0"), "CHECK"),
    ];
    for (net, cmd) in cases {
        let ours = net.run(cmd, "a", &net.conf());
        let theirs = net.reference(cmd, "a", &net.conf());
        assert!(ours.code != 0 && theirs.code != 0, "{cmd}: both refuse");
        let (ours, theirs) = (ours.json(), theirs.json());
        assert_eq!(ours["msg"], theirs["msg"], "{cmd} {}", net.version);
        assert_eq!(
            ours.get("details").is_some(),
            theirs.get("details").is_some_and(|d| d != ""),
            "{cmd} {}: details only where the reference has them",
            net.version
        );
    }
}
