//! Every verb of the built binary, every error code path and every version's result layout,
//! each on a private `dataDir`.
#![allow(clippy::unwrap_used)] // test code: a panic is a failure

mod common;

use std::fs;

use common::{addresses, run_as, Net, OURS};
use ferro_testutil::run_plugin;
use serde_json::{json, Value};

fn dual_stack() -> Value {
    json!([[{"subnet": "10.22.0.0/24"}], [{"subnet": "fd00:22::/64"}]])
}

#[test]
fn version_lists_every_supported_version() {
    let r = run_plugin(
        OURS,
        &[("CNI_COMMAND", "VERSION")],
        r#"{"cniVersion":"1.1.0"}"#,
    );
    assert_eq!(
        r.ok(),
        json!({"cniVersion": "1.1.0", "supportedVersions": ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]})
    );
}

#[test]
fn add_result_layout_in_every_version() {
    let resolv = tempfile::NamedTempFile::new().unwrap();
    fs::write(resolv.path(), "nameserver 10.0.0.10\nsearch svc.local\n").unwrap();
    let routes = json!([{"dst": "0.0.0.0/0"}, {"dst": "::/0", "gw": "fd00:22::1"}, {"dst": "192.168.0.0/16", "priority": 5}]);
    let dns = json!({"nameservers": ["10.0.0.10"], "search": ["svc.local"]});
    for version in [
        "0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0",
    ] {
        let net = Net::with_ipam(
            json!({"ranges": dual_stack(), "routes": routes, "resolvConf": resolv.path()}),
        )
        .version(version);
        let got = net.run("ADD", "ctr1", &net.conf()).ok();
        let want = match version {
            "0.1.0" | "0.2.0" => json!({
                "cniVersion": version,
                "ip4": {"ip": "10.22.0.2/24", "gateway": "10.22.0.1", "routes": [{"dst": "0.0.0.0/0"}, {"dst": "192.168.0.0/16"}]},
                "ip6": {"ip": "fd00:22::2/64", "gateway": "fd00:22::1", "routes": [{"dst": "::/0", "gw": "fd00:22::1"}]},
                "dns": dns,
            }),
            "0.3.0" | "0.3.1" | "0.4.0" => json!({
                "cniVersion": version,
                "ips": [
                    {"version": "4", "address": "10.22.0.2/24", "gateway": "10.22.0.1"},
                    {"version": "6", "address": "fd00:22::2/64", "gateway": "fd00:22::1"}
                ],
                "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0", "gw": "fd00:22::1"}, {"dst": "192.168.0.0/16"}],
                "dns": dns,
            }),
            "1.0.0" => json!({
                "cniVersion": version,
                "ips": [
                    {"address": "10.22.0.2/24", "gateway": "10.22.0.1"},
                    {"address": "fd00:22::2/64", "gateway": "fd00:22::1"}
                ],
                "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0", "gw": "fd00:22::1"}, {"dst": "192.168.0.0/16"}],
                "dns": dns,
            }),
            _ => json!({
                "cniVersion": version,
                "ips": [
                    {"address": "10.22.0.2/24", "gateway": "10.22.0.1"},
                    {"address": "fd00:22::2/64", "gateway": "fd00:22::1"}
                ],
                "routes": routes,
                "dns": dns,
            }),
        };
        assert_eq!(got, want, "cniVersion {version}");
        assert!(got.get("interfaces").is_none(), "P8: no interfaces");
    }
}

#[test]
fn add_writes_the_reference_files() {
    let net = Net::new(dual_stack());
    net.add("ctr1");
    assert_eq!(
        net.files(),
        [
            ".ferro-index",
            "10.22.0.2",
            "fd00:22::2",
            "last_reserved_ip.0",
            "last_reserved_ip.1",
            "lock"
        ]
    );
    assert_eq!(
        fs::read(net.dir().join("10.22.0.2")).unwrap(),
        b"ctr1\r\neth0"
    );
    assert_eq!(
        fs::read(net.dir().join("fd00:22::2")).unwrap(),
        b"ctr1\r\neth0"
    );
    assert_eq!(
        fs::read(net.dir().join("last_reserved_ip.1")).unwrap(),
        b"fd00:22::2"
    );
}

#[test]
fn round_robin_skips_the_gateway_and_does_not_reuse_at_once() {
    let net = Net::new(json!([[{"subnet": "10.0.0.0/29"}]]));
    assert_eq!(net.add("a"), ["10.0.0.2/29"]);
    assert_eq!(net.add("b"), ["10.0.0.3/29"]);
    net.run("DEL", "a", &net.conf()).ok();
    assert_eq!(net.add("c"), ["10.0.0.4/29"]);
    assert_eq!(net.add("d"), ["10.0.0.5/29"]);
    assert_eq!(
        net.add("e"),
        ["10.0.0.6/29"],
        "v4 excludes the broadcast .7"
    );
    assert_eq!(
        net.add("f"),
        ["10.0.0.2/29"],
        "wraps, skipping the gateway .1"
    );
}

#[test]
fn exhaustion_is_101_then_status_is_50() {
    let net = Net::new(json!([[{"subnet": "10.0.0.0/30"}]]));
    net.run("STATUS", "", &net.conf()).ok();
    assert_eq!(net.add("a"), ["10.0.0.2/30"]);
    let e = net.run("ADD", "b", &net.conf()).err(101);
    assert_eq!(
        e["msg"],
        "no IP addresses available in range set ipam.ranges[0] (10.0.0.1-10.0.0.2)"
    );
    let e = net.run("STATUS", "", &net.conf()).err(50);
    assert_eq!(
        e["msg"],
        "range set ipam.ranges[0] (10.0.0.1-10.0.0.2) has no free address left"
    );
    assert_eq!(net.leases().len(), 1, "the failed ADD leaked nothing");
    net.run("DEL", "a", &net.conf()).ok();
    assert_eq!(net.run("STATUS", "", &net.conf()).ok(), Value::Null);
}

#[test]
fn a_failure_in_a_later_range_set_releases_the_earlier_ones() {
    let net = Net::new(json!([[{"subnet": "10.0.0.0/24"}], [{"subnet": "10.1.0.0/30"}]]));
    net.add("a");
    let e = net.run("ADD", "b", &net.conf()).err(101);
    assert!(e["msg"].as_str().unwrap().contains("ipam.ranges[1]"), "{e}");
    assert_eq!(net.leases().len(), 2);
    assert_eq!(
        net.run("STATUS", "", &net.conf()).err(50)["msg"],
        "range set ipam.ranges[1] (10.1.0.1-10.1.0.2) has no free address left"
    );
}

#[test]
fn duplicate_add_is_101() {
    let net = Net::new(dual_stack());
    net.add("ctr1");
    let e = net.run("ADD", "ctr1", &net.conf()).err(101);
    assert_eq!(
        e["msg"],
        "10.22.0.2 has been allocated to ctr1, duplicate allocation is not allowed"
    );
    assert_eq!(net.leases().len(), 2);
    // Another interface of the same container is another attachment.
    let r = run_as(OURS, "ADD", "ctr1", "net1", &net.conf(), "").ok();
    assert_eq!(addresses(&r), ["10.22.0.3/24", "fd00:22::3/64"]);
}

#[test]
fn requested_addresses_from_every_source() {
    let net = Net::new(dual_stack());
    let r = run_as(OURS, "ADD", "a", "eth0", &net.conf(), "IP=10.22.0.50").ok();
    assert_eq!(addresses(&r), ["10.22.0.50/24", "fd00:22::2/64"]);
    let r = run_as(
        OURS,
        "ADD",
        "b",
        "eth0",
        &net.conf(),
        "IP=10.22.0.60,fd00:22::60",
    )
    .ok();
    assert_eq!(addresses(&r), ["10.22.0.60/24", "fd00:22::60/64"]);
    let conf = net.conf_with(json!({"args": {"cni": {"ips": ["10.22.0.70/24"]}}}));
    assert_eq!(
        addresses(&net.run("ADD", "c", &conf).ok()),
        ["10.22.0.70/24", "fd00:22::61/64"]
    );
    let conf = net.conf_with(json!({"runtimeConfig": {"ips": ["fd00:22::80/64"]}}));
    assert_eq!(
        addresses(&net.run("ADD", "d", &conf).ok()),
        ["10.22.0.71/24", "fd00:22::80/64"]
    );
    // The sources are merged, as the reference does.
    let conf = net.conf_with(json!({"args": {"cni": {"ips": ["10.22.0.90"]}}, "runtimeConfig": {"ips": ["fd00:22::90"]}}));
    assert_eq!(
        addresses(&net.run("ADD", "e", &conf).ok()),
        ["10.22.0.90/24", "fd00:22::90/64"]
    );
    // containerd's CNI_ARGS.
    let args = "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=x;K8S_POD_UID=u;IP=10.22.0.99";
    let r = run_as(OURS, "ADD", "f", "eth0", &net.conf(), args).ok();
    assert_eq!(addresses(&r)[0], "10.22.0.99/24");
}

#[test]
fn requested_address_errors() {
    let net = Net::new(dual_stack());
    net.add("a");
    let before = net.leases();
    let cases: [(&str, &str, u64, &str); 6] = [
        ("b", "IP=10.99.0.5", 7, "requested address 10.99.0.5 (CNI_ARGS IP) is not in any configured range set"),
        ("b", "IP=10.22.0.1", 7, "requested address 10.22.0.1 (CNI_ARGS IP) is the gateway of range set ipam.ranges[0]"),
        ("b", "IP=10.22.0.2", 101, "requested IP address 10.22.0.2 is not available in range set ipam.ranges[0] (10.22.0.1-10.22.0.254): leased to container a interface eth0"),
        ("b", "IP=10.22.0.7,10.22.0.8", 7, "requested addresses 10.22.0.7 and 10.22.0.8 (CNI_ARGS IP) are both in range set ipam.ranges[0]"),
        ("b", "IP=10.22.0.300", 4, "CNI_ARGS IP: invalid IP \"10.22.0.300\""),
        ("b", "ip=10.22.0.9", 4, "CNI_ARGS: unknown keys [\"ip\"]"),
    ];
    for (id, args, code, want) in cases {
        let e = run_as(OURS, "ADD", id, "eth0", &net.conf(), args).err(code);
        assert!(e["msg"].as_str().unwrap().starts_with(want), "{args}: {e}");
    }
    let conf = net.conf_with(json!({"runtimeConfig": {"ips": ["nope"]}}));
    let e = net.run("ADD", "b", &conf).err(7);
    assert!(
        e["msg"]
            .as_str()
            .unwrap()
            .starts_with("runtimeConfig.ips[0]"),
        "{e}"
    );
    assert_eq!(net.leases(), before, "no failed request leaked a lease");
}

#[test]
fn ip_ranges_capability_is_prepended() {
    let net = Net::new(json!([[{"subnet": "10.22.0.0/24"}]]));
    let conf = net.conf_with(json!({
        "capabilities": {"ipRanges": true},
        "runtimeConfig": {"ipRanges": [[{"Subnet": "10.77.0.0/24", "RangeStart": "10.77.0.100"}]]}
    }));
    let r = net.run("ADD", "a", &conf).ok();
    assert_eq!(addresses(&r), ["10.77.0.100/24", "10.22.0.2/24"]);
    assert_eq!(
        fs::read(net.dir().join("last_reserved_ip.0")).unwrap(),
        b"10.77.0.100"
    );
    net.run("DEL", "a", &conf).ok();
    assert!(net.leases().is_empty());
}

#[test]
fn bad_configs_name_the_key() {
    let cases: Vec<(Value, u64, &str)> = vec![
        (
            json!({"ranges": [[{"subnet": "10.0.0.0/31"}]]}),
            7,
            "ipam.ranges[0][0].subnet: network 10.0.0.0/31 too small to allocate from",
        ),
        (
            json!({"ranges": [[{"subnet": "fd00::/128"}]]}),
            7,
            "ipam.ranges[0][0].subnet: network fd00::/128 too small",
        ),
        (
            json!({"subnet": "10.0.0.0/32"}),
            7,
            "ipam.subnet: network 10.0.0.0/32 too small",
        ),
        (
            json!({"ranges": [[{"subnet": "10.0.0.9/24"}]]}),
            7,
            "ipam.ranges[0][0].subnet: 10.0.0.9/24 has host bits set",
        ),
        (
            json!({"ranges": [[{"subnet": "10.1.0.0/24"}], [{"subnet": "10.2.0.0/24", "rangeStart": "10.1.0.5"}]]}),
            7,
            "ipam.ranges[1][0].rangeStart: 10.1.0.5 is outside subnet 10.2.0.0/24",
        ),
        (
            json!({"ranges": [[{"subnet": "10.0.0.0/24"}], [{"subnet": "10.0.0.128/25"}]]}),
            7,
            "ipam.ranges[1]: range set overlaps range set ipam.ranges[0]",
        ),
        (
            json!({"ranges": [[{"subnet": "10.0.0.0/24"}, {"subnet": "10.0.0.0/25"}]]}),
            7,
            "ipam.ranges[0][1]: range 10.0.0.1-10.0.0.126 overlaps range",
        ),
        (
            json!({"ranges": []}),
            7,
            "ipam.ranges: no IP ranges specified",
        ),
        (
            json!({"ranges": [[{"subnet": "10.0.0.0/24"}]], "resolvConf": "/nonexistent/resolv.conf"}),
            7,
            "ipam.resolvConf: cannot read /nonexistent/resolv.conf",
        ),
        (
            json!({"ranges": [[{"subnet": 10}]]}),
            6,
            "ipam.ranges[0][0].subnet: expected a string",
        ),
        (
            json!({"ranges": {"subnet": "10.0.0.0/24"}}),
            6,
            "ipam.ranges: expected a list",
        ),
    ];
    for (ipam, code, want) in cases {
        let net = Net::with_ipam(ipam.clone());
        // resolvConf is only read by ADD; every other error fails every verb.
        let verbs: &[&str] = if want.starts_with("ipam.resolvConf") {
            &["ADD"]
        } else {
            &["ADD", "DEL", "STATUS"]
        };
        for cmd in verbs {
            let e = net.run(cmd, "a", &net.conf()).err(code);
            assert!(
                e["msg"].as_str().unwrap().starts_with(want),
                "{cmd} {ipam}: {e}"
            );
        }
        assert!(
            net.files().is_empty(),
            "nothing created for an invalid config"
        );
    }
    // Two v4 sets are refused before 0.3.0, on DEL too (the config is invalid), in the
    // reference's words; which key holds what goes to the log.
    let net = Net::new(json!([[{"subnet": "10.0.0.0/24"}], [{"subnet": "10.1.0.0/24"}]]))
        .version("0.2.0");
    for cmd in ["ADD", "DEL"] {
        let run = net.run(cmd, "a", &net.conf());
        let e = run.err(7);
        assert_eq!(
            e["msg"], "CNI version 0.2.0 does not support more than 1 address per family",
            "{cmd}"
        );
        assert!(e.get("details").is_none(), "{e}");
        assert!(
            run.stderr.contains("ipam.ranges: cniVersion 0.2.0 allows at most one IPv4 and one IPv6 range set (2 IPv4, 0 IPv6 given)"),
            "{cmd}: {}",
            run.stderr
        );
    }
    // No ipam section at all.
    let conf = json!({"cniVersion": "1.0.0", "name": "n", "type": "host-local"});
    let e = run_as(OURS, "ADD", "a", "eth0", &conf, "").err(7);
    assert!(
        e["msg"].as_str().unwrap().starts_with("ipam: missing"),
        "{e}"
    );
}

#[test]
fn del_is_idempotent_and_best_effort() {
    let net = Net::new(dual_stack());
    // Nothing was ever created: the data directory does not exist.
    net.run("DEL", "a", &net.conf()).ok();
    assert!(
        !net.data_dir().exists(),
        "DEL does not create the data directory"
    );
    net.add("a");
    // Without CNI_NETNS and without prevResult.
    let env = [
        ("CNI_COMMAND", "DEL"),
        ("CNI_CONTAINERID", "a"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/usr/lib/cni"),
    ];
    assert_eq!(
        run_plugin(OURS, &env, &net.conf().to_string()).ok(),
        Value::Null
    );
    assert!(net.leases().is_empty());
    net.run("DEL", "a", &net.conf()).ok();
    net.run("DEL", "never-added", &net.conf()).ok();
    assert_eq!(
        net.files(),
        ["last_reserved_ip.0", "last_reserved_ip.1", "lock"]
    );
    // DEL at an old version (no prevResult on DEL in 0.3.x).
    let old = Net::new(dual_stack()).version("0.3.1");
    old.add("a");
    old.run("DEL", "a", &old.conf()).ok();
    assert!(old.leases().is_empty());
}

#[test]
fn del_releases_every_lease_of_the_attachment_and_nothing_else() {
    let net = Net::new(dual_stack());
    net.add("a");
    run_as(OURS, "ADD", "a", "net1", &net.conf(), "").ok();
    net.add("b");
    let prev = net.run("ADD", "c", &net.conf()).ok();
    net.run("DEL", "a", &net.conf()).ok();
    let left: Vec<String> = net.leases().into_values().collect();
    assert_eq!(left.len(), 6);
    assert!(left.iter().all(|c| c != "a\r\neth0"));
    assert_eq!(left.iter().filter(|c| *c == "a\r\nnet1").count(), 2);
    // With prevResult as the runtime sends it.
    net.run("DEL", "c", &net.conf_with(json!({"prevResult": prev})))
        .ok();
    assert_eq!(net.leases().len(), 4);
}

#[test]
fn check_compares_leases_with_prev_result() {
    let net = Net::new(dual_stack());
    let prev = net.run("ADD", "a", &net.conf()).ok();
    net.add("b");
    let with_prev = net.conf_with(json!({"prevResult": prev}));
    let ok = net.run("CHECK", "a", &with_prev);
    assert_eq!(
        (ok.code, ok.stdout.as_str()),
        (0, ""),
        "CHECK prints nothing on success"
    );
    net.run("CHECK", "a", &net.conf()).ok();
    // prevResult names an address this attachment does not hold.
    let mut other = prev.clone();
    other["ips"][0]["address"] = json!("10.22.0.3/24");
    let e = net
        .run("CHECK", "a", &net.conf_with(json!({"prevResult": other})))
        .err(103);
    assert!(
        e["msg"]
            .as_str()
            .unwrap()
            .contains("10.22.0.3 from prevResult is leased to container b"),
        "{e}"
    );
    // The lease was removed behind our back.
    fs::remove_file(net.dir().join("fd00:22::2")).unwrap();
    let e = net.run("CHECK", "a", &with_prev).err(103);
    assert!(
        e["msg"]
            .as_str()
            .unwrap()
            .starts_with("address fd00:22::2 from prevResult has no lease"),
        "{e}"
    );
    // Never added.
    let e = net.run("CHECK", "zz", &net.conf()).err(103);
    assert!(e["msg"].as_str().unwrap().contains("container zz"), "{e}");
    // CHECK does not exist before 0.4.0.
    let old = Net::new(dual_stack()).version("0.3.1");
    old.run("CHECK", "a", &old.conf()).err(1);
}

#[test]
fn gc_honours_each_key() {
    let setup = || {
        let net = Net::new(dual_stack());
        for id in ["a", "b", "c"] {
            net.add(id);
        }
        fs::write(net.dir().join("10.22.0.200"), "legacy").unwrap();
        net
    };
    let keep = json!([{"containerID": "a", "ifname": "eth0"}, {"containerID": "legacy", "ifname": "eth0"}]);
    for key in ["cni.dev/valid-attachments", "cni.dev/attachments"] {
        let net = setup();
        let gc = net.run("GC", "", &net.conf_with(json!({ key: keep })));
        assert_eq!((gc.code, gc.stdout.as_str()), (0, ""), "{}", gc.stderr);
        let left: Vec<(String, String)> = net.leases().into_iter().collect();
        assert_eq!(
            left,
            [
                ("10.22.0.2".to_string(), "a\r\neth0".to_string()),
                ("10.22.0.200".to_string(), "legacy".to_string()),
                ("fd00:22::2".to_string(), "a\r\neth0".to_string()),
            ],
            "{key}"
        );
        assert!(net.files().contains(&"lock".to_string()));
        assert_eq!(
            fs::read(net.dir().join("last_reserved_ip.0")).unwrap(),
            b"10.22.0.4"
        );
        assert_eq!(
            fs::read_dir(net.dir().join(".ferro-index"))
                .unwrap()
                .count(),
            1
        );
        // GC twice is a no-op; the next ADD continues the round robin.
        net.run("GC", "", &net.conf_with(json!({ key: keep }))).ok();
        assert_eq!(net.leases().len(), 3);
        assert_eq!(net.add("d"), ["10.22.0.5/24", "fd00:22::5/64"]);
    }
    // Both keys: the union is valid.
    let net = setup();
    let conf = net.conf_with(json!({
        "cni.dev/valid-attachments": [{"containerID": "a", "ifname": "eth0"}],
        "cni.dev/attachments": [{"containerID": "b", "ifname": "eth0"}]
    }));
    net.run("GC", "", &conf).ok();
    assert_eq!(net.leases().len(), 4);
    // No key (cnitool gc): the empty set, as Go plugins read it; a warning is logged.
    let net = setup();
    let gc = net.run("GC", "", &net.conf());
    gc.ok();
    assert!(gc.stderr.contains("valid-attachments"), "{}", gc.stderr);
    assert!(net.leases().is_empty());
    assert_eq!(
        net.files(),
        ["last_reserved_ip.0", "last_reserved_ip.1", "lock"]
    );
    // An explicit empty list too.
    let net = setup();
    net.run(
        "GC",
        "",
        &net.conf_with(json!({"cni.dev/valid-attachments": []})),
    )
    .ok();
    assert!(net.leases().is_empty());
    // A missing data directory is nothing to collect.
    let net = Net::new(dual_stack());
    net.run("GC", "", &net.conf()).ok();
}

#[test]
fn gc_and_status_need_1_1_0() {
    let net = Net::new(dual_stack()).version("1.0.0");
    net.run("GC", "", &net.conf()).err(1);
    net.run("STATUS", "", &net.conf()).err(1);
}

#[test]
fn status_is_ready_on_a_fresh_network() {
    let net = Net::new(dual_stack());
    let r = net.run("STATUS", "", &net.conf());
    assert_eq!((r.code, r.stdout.as_str()), (0, ""));
    assert!(!net.data_dir().exists(), "STATUS creates nothing");
    net.add("a");
    net.run("STATUS", "", &net.conf()).ok();
}

#[test]
fn legacy_top_level_range_is_used() {
    let net = Net::with_ipam(
        json!({"subnet": "10.40.0.0/24", "rangeStart": "10.40.0.10", "gateway": "10.40.0.254",
        "routes": [{"dst": "0.0.0.0/0"}]}),
    );
    let r = net.run("ADD", "a", &net.conf()).ok();
    assert_eq!(
        r["ips"],
        json!([{"address": "10.40.0.10/24", "gateway": "10.40.0.254"}])
    );
    assert_eq!(r["routes"], json!([{"dst": "0.0.0.0/0"}]));
}
