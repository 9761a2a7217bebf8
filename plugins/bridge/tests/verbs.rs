//! bridge's CHECK, GC, STATUS and error paths against real namespaces, and dual stack.
#![allow(clippy::unwrap_used)]

use ferro_testutil::kubenet as common;

use common::{Kubenet, NET};
use ferro_testutil::netns::Netns;
use ferro_testutil::runtime::Runtime;
use ferro_testutil::topology::ping;
use ferro_testutil::{require_root, run_plugin_in, workspace_bin};
use serde_json::json;

/// A hand-made change to a pod's state: (cluster, pod, pod address, host veth).
type Tamper = Box<dyn Fn(&Kubenet, &Netns, &str, &str)>;

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn check_passes_after_add_and_names_what_was_removed_by_hand() {
    require_root();
    let k = Kubenet::new(1);
    // each tampering on a fresh pod; CHECK must notice every one of them
    let cases: [(&str, Tamper); 5] = [
        (
            "address",
            Box::new(|_, pod, ip, _| {
                pod.ip(&["addr", "del", &format!("{ip}/24"), "dev", "eth0"]);
            }),
        ),
        (
            "route",
            Box::new(|_, pod, _, _| {
                pod.ip(&["route", "del", "default"]);
            }),
        ),
        (
            "host interface",
            Box::new(|k, _, _, host| {
                k.node(0).ip(&["link", "set", host, "nomaster"]);
            }),
        ),
        (
            "element",
            Box::new(|k, _, ip, _| {
                k.node(0).exec(&[
                    "nft",
                    "delete",
                    "element",
                    "inet",
                    "ferro_cni",
                    &format!("pods4-{NET}"),
                    &format!("{{ {ip} }}"),
                ]);
            }),
        ),
        (
            "rule",
            Box::new(|k, _, _, _| {
                k.node(0).exec(&[
                    "nft",
                    "flush",
                    "chain",
                    "inet",
                    "ferro_cni",
                    &format!("masq4-{NET}"),
                ]);
            }),
        ),
    ];
    for (what, tamper) in cases.iter() {
        let label = format!("chk-{}", what.replace(' ', ""));
        let (pod, ip, r) = k.pod(0, &label);
        let ok = k.rt[0].check(NET, &pod, &[]);
        assert_eq!(ok.code, 0, "CHECK right after ADD: {}", ok.stderr);
        assert!(ok.stdout.is_empty());
        let host = r["interfaces"][1]["name"].as_str().unwrap().to_string();
        tamper(&k, &pod, &ip, &host);
        let bad = k.rt[0].check(NET, &pod, &[]);
        assert_ne!(bad.code, 0, "CHECK missed a removed {what}");
        assert!(bad.stderr.contains("code 103"), "{what}: {}", bad.stderr);
        k.rt[0].del(NET, &pod);
    }
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn gc_releases_leases_and_masquerade_state_of_invalid_attachments_only() {
    require_root();
    let k = Kubenet::new(1);
    let (keep, keep_ip, _) = k.pod(0, "gc-keep");
    let (_gone, gone_ip, _) = k.pod(0, "gc-gone");
    let id = Runtime::container_id(&keep);
    // GC with only `keep` valid: cnictl DELs nothing itself (--valid is explicit), plugins GC
    let out = k.rt[0].cnictl(&["gc", NET, "--valid", &format!("{id}/eth0")], &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let elems = k.set_elements(0, &format!("pods4-{NET}"));
    assert_eq!(
        elems,
        vec![keep_ip.clone()],
        "gone's element removed, keep's kept"
    );
    assert_eq!(k.leases(0), vec![keep_ip.clone()]);
    assert!(!elems.contains(&gone_ip));
    assert!(ping(&keep, &common::gateway(0)));
    // GC again: nothing more to do
    assert_eq!(
        k.rt[0]
            .cnictl(&["gc", NET, "--valid", &format!("{id}/eth0")], &[])
            .code,
        0
    );
    assert_eq!(k.leases(0).len(), 1);
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn status_reports_an_exhausted_pod_range_with_code_50() {
    require_root();
    let world = ferro_testutil::topology::World::new(1);
    let node = &world.nodes[0].ns;
    let data = tempfile::tempdir().unwrap();
    let rt = Runtime::new(node, &["bridge", "host-local"]);
    // a /29 with rangeStart/rangeEnd of two addresses
    rt.write_conflist("10-small", &json!({"cniVersion":"1.1.0","name":"small","plugins":[{"type":"bridge","bridge":"cbr1","isGateway":true,
        "ipam":{"type":"host-local","dataDir":data.path(),"ranges":[[{"subnet":"10.99.0.0/29","rangeStart":"10.99.0.2","rangeEnd":"10.99.0.3"}]]}}]}));
    assert_eq!(rt.cnictl(&["status", "small"], &[]).code, 0);
    let pods: Vec<Netns> = (0..2).map(|i| Netns::new(&format!("full{i}"))).collect();
    for p in &pods {
        rt.add("small", p);
    }
    let st = rt.cnictl(&["status", "small"], &[]);
    assert_ne!(st.code, 0);
    assert!(st.stderr.contains("code 50"), "{}", st.stderr);
    let third = Netns::new("full2");
    let e = rt.cnictl(&["add", "small", &third.path().display().to_string()], &[]);
    assert!(e.stderr.contains("code 101"), "{}", e.stderr);
    rt.del("small", &pods[0]);
    assert_eq!(rt.cnictl(&["status", "small"], &[]).code, 0);
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn add_onto_an_existing_ifname_fails_and_leaks_nothing() {
    require_root();
    let k = Kubenet::new(1);
    let (pod, _, _) = k.pod(0, "dup");
    let conf = {
        let mut c = common::conflist(0, k.data[0].path(), json!({}))["plugins"][0].clone();
        c["cniVersion"] = json!("1.1.0");
        c["name"] = json!(NET);
        c
    };
    let path = pod.path().display().to_string();
    let env = [
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "another"),
        ("CNI_NETNS", path.as_str()),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", &k.rt[0].plugins.path_str()),
    ];
    let r = run_plugin_in(
        workspace_bin("bridge"),
        &env,
        &conf.to_string(),
        Some(&k.node(0).path()),
    );
    let e = r.err(7);
    assert!(
        e["msg"].as_str().unwrap().contains("eth0 already exists"),
        "{e}"
    );
    assert_eq!(k.leases(0).len(), 1, "no lease taken for the refused ADD");
    assert_eq!(k.set_elements(0, &format!("pods4-{NET}")).len(), 1);
    assert_eq!(k.host_veths(0).len(), 1);
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn unimplemented_reference_keys_are_refused_before_any_kernel_change() {
    require_root();
    let k = Kubenet::new(1);
    let pod = Netns::new("refuse");
    let mut conf = common::conflist(0, k.data[0].path(), json!({"vlanTrunk":[{"id":5}]}))
        ["plugins"][0]
        .clone();
    conf["cniVersion"] = json!("1.0.0");
    conf["name"] = json!(NET);
    let path = pod.path().display().to_string();
    let env = [
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "c"),
        ("CNI_NETNS", path.as_str()),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", &k.rt[0].plugins.path_str()),
    ];
    let e = run_plugin_in(
        workspace_bin("bridge"),
        &env,
        &conf.to_string(),
        Some(&k.node(0).path()),
    )
    .err(2);
    assert!(e["msg"].as_str().unwrap().contains("vlanTrunk"));
    assert!(
        k.node(0)
            .ip_json(&["link", "show", "type", "bridge"])
            .as_array()
            .unwrap()
            .is_empty(),
        "nothing created"
    );
    assert!(k.leases(0).is_empty());
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn dual_stack_pods_get_usable_ipv6_without_dad_and_host_links_ignore_ras() {
    require_root();
    let world = ferro_testutil::topology::World::new(1);
    let node = &world.nodes[0].ns;
    let data = tempfile::tempdir().unwrap();
    let rt = Runtime::new(node, &["bridge", "host-local"]);
    rt.write_conflist("10-ds", &json!({"cniVersion":"1.1.0","name":"ds","plugins":[{"type":"bridge","bridge":"cbr6","isDefaultGateway":true,"ipMasq":true,
        "ipam":{"type":"host-local","dataDir":data.path(),"ranges":[[{"subnet":"10.77.0.0/24"}],[{"subnet":"fd00:77::/64"}]]}}]}));
    let (p1, p2) = (Netns::new("ds1"), Netns::new("ds2"));
    let r = rt.add("ds", &p1);
    rt.add("ds", &p2);
    assert_eq!(r["ips"].as_array().unwrap().len(), 2);
    assert_eq!(
        r["routes"],
        json!([{"dst":"0.0.0.0/0","gw":"10.77.0.1"},{"dst":"::/0","gw":"fd00:77::1"}])
    );
    let v6 = p1.ip(&["-6", "addr", "show", "dev", "eth0", "scope", "global"]);
    assert!(
        v6.contains("fd00:77::2/64") && !v6.contains("tentative"),
        "usable at once: {v6}"
    );
    assert_eq!(
        p1.exec(&["cat", "/proc/sys/net/ipv6/conf/eth0/accept_dad"])
            .trim(),
        "0"
    );
    let host = r["interfaces"][1]["name"].as_str().unwrap();
    assert_eq!(
        node.exec(&["cat", &format!("/proc/sys/net/ipv6/conf/{host}/accept_ra")])
            .trim(),
        "0"
    );
    assert_eq!(
        node.exec(&["cat", "/proc/sys/net/ipv6/conf/cbr6/accept_ra"])
            .trim(),
        "0"
    );
    assert!(ping(&p1, "fd00:77::1"), "v6 gateway");
    assert!(ping(&p1, "fd00:77::3"), "v6 pod to pod");
    rt.del("ds", &p1);
    rt.del("ds", &p2);
}
