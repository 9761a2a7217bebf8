//! IPAM delegation (rule P19 of [docs/conformance.md](../../../docs/conformance.md)): the delegate
//! is found on CNI_PATH, gets the whole config and the same environment, its errors reach the
//! runtime with their code, and a failure after its ADD runs its DEL.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;

use ferro_testutil::netns::Netns;
use ferro_testutil::topology::World;
use ferro_testutil::{require_root, run_plugin_in, workspace_bin};
use serde_json::{json, Value};

/// A fake IPAM plugin that records its stdin and environment per call in `dir` and answers
/// with a fixed address, or with an error when `FAKE_IPAM_FAIL` is in its config, or with
/// an address that is its own gateway when `FAKE_IPAM_SELF_GATEWAY` is.
fn fake_ipam(dir: &std::path::Path) {
    let script = format!(
        r#"#!/bin/sh
n=$(ls {d}/calls 2>/dev/null | wc -l)
mkdir -p {d}/calls/$n
cat > {d}/calls/$n/stdin
env > {d}/calls/$n/env
if grep -q FAKE_IPAM_FAIL {d}/calls/$n/stdin && [ "$CNI_COMMAND" = ADD ]; then
  echo '{{"cniVersion":"1.0.0","code":11,"msg":"pool busy, try later"}}'; exit 1
fi
if grep -q FAKE_IPAM_SELF_GATEWAY {d}/calls/$n/stdin && [ "$CNI_COMMAND" = ADD ]; then
  echo '{{"cniVersion":"1.0.0","ips":[{{"address":"10.88.0.1/24","gateway":"10.88.0.1"}}]}}'; exit 0
fi
[ "$CNI_COMMAND" = ADD ] && echo '{{"cniVersion":"1.0.0","ips":[{{"address":"10.88.0.5/24","gateway":"10.88.0.1"}}]}}'
exit 0
"#,
        d = dir.display()
    );
    let p = dir.join("fake-ipam");
    std::fs::write(&p, script).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn calls(dir: &std::path::Path) -> Vec<(String, String)> {
    let mut v: Vec<_> = std::fs::read_dir(dir.join("calls"))
        .map(|rd| rd.map(|e| e.unwrap().path()).collect())
        .unwrap_or_else(|_| Vec::new());
    v.sort_by_key(|p: &std::path::PathBuf| {
        p.file_name()
            .unwrap()
            .to_string_lossy()
            .parse::<u32>()
            .unwrap()
    });
    v.iter()
        .map(|p| {
            (
                std::fs::read_to_string(p.join("stdin")).unwrap(),
                std::fs::read_to_string(p.join("env")).unwrap(),
            )
        })
        .collect()
}

/// The `CNI_COMMAND` of each delegate call, in order.
fn verbs(dir: &std::path::Path) -> Vec<String> {
    calls(dir)
        .iter()
        .map(|(_, env)| {
            env.lines()
                .find(|l| l.starts_with("CNI_COMMAND="))
                .unwrap()
                .to_string()
        })
        .collect()
}

fn setup() -> (World, tempfile::TempDir, Netns) {
    let world = World::new(1);
    let dir = tempfile::tempdir().unwrap();
    fake_ipam(dir.path());
    (world, dir, Netns::new("deleg"))
}

fn run(
    world: &World,
    dir: &std::path::Path,
    pod: &Netns,
    cmd: &str,
    conf: &Value,
) -> ferro_testutil::PluginRun {
    let path = pod.path().display().to_string();
    let cni_path = format!("/nonexistent:{}", dir.display());
    let env = [
        ("CNI_COMMAND", cmd),
        ("CNI_CONTAINERID", "deleg1"),
        ("CNI_NETNS", path.as_str()),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", cni_path.as_str()),
        ("CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAME=web"),
        ("SOME_RUNTIME_VAR", "passed-through"),
    ];
    run_plugin_in(
        workspace_bin("bridge"),
        &env,
        &conf.to_string(),
        Some(&world.nodes[0].ns.path()),
    )
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn the_delegate_gets_the_whole_config_and_the_same_environment() {
    require_root();
    let (world, dir, pod) = setup();
    let conf = json!({"cniVersion":"1.0.0","name":"deleg","type":"bridge","bridge":"cbr9","isGateway":true,
        "vendorKey":{"x":1},"ipam":{"type":"fake-ipam","anything":"goes"}});
    let r = run(&world, dir.path(), &pod, "ADD", &conf).ok();
    assert_eq!(r["ips"][0]["address"], "10.88.0.5/24");
    let c = calls(dir.path());
    assert_eq!(c.len(), 1);
    let stdin: Value = serde_json::from_str(&c[0].0).unwrap();
    assert_eq!(
        stdin, conf,
        "the delegate's stdin is the plugin's stdin, byte for byte as JSON"
    );
    for line in [
        "CNI_COMMAND=ADD",
        "CNI_CONTAINERID=deleg1",
        "CNI_IFNAME=eth0",
        "CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAME=web",
        "SOME_RUNTIME_VAR=passed-through",
    ] {
        assert!(
            c[0].1.lines().any(|l| l == line),
            "{line} missing from the delegate's environment"
        );
    }
    run(&world, dir.path(), &pod, "DEL", &conf).ok();
    let c = calls(dir.path());
    assert!(c[1].1.lines().any(|l| l == "CNI_COMMAND=DEL"));
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn a_delegate_error_reaches_the_runtime_with_its_code() {
    require_root();
    let (world, dir, pod) = setup();
    let conf = json!({"cniVersion":"1.0.0","name":"deleg","type":"bridge","bridge":"cbr9","ipam":{"type":"fake-ipam","FAKE_IPAM_FAIL":true}});
    let e = run(&world, dir.path(), &pod, "ADD", &conf).err(11);
    assert!(e["msg"].as_str().unwrap().contains("pool busy"), "{e}");
    assert!(
        !pod.link_names().contains(&"eth0".to_string()),
        "no interface left in the pod"
    );
    let conf = json!({"cniVersion":"1.0.0","name":"deleg","type":"bridge","ipam":{"type":"not-on-the-path"}});
    let e = run(&world, dir.path(), &pod, "ADD", &conf).err(102);
    assert!(e["msg"].as_str().unwrap().contains("not-on-the-path"));
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn a_failure_after_ipam_add_releases_the_address() {
    require_root();
    let (world, dir, pod) = setup();
    // the bridge already holds another address and forceAddress is off: the gateway step,
    // after IPAM ADD, fails
    let node = &world.nodes[0].ns;
    node.ip(&["link", "add", "cbr9", "type", "bridge"]);
    node.ip(&["addr", "add", "10.77.7.1/24", "dev", "cbr9"]);
    let conf = json!({"cniVersion":"1.0.0","name":"deleg","type":"bridge","bridge":"cbr9","isGateway":true,"ipam":{"type":"fake-ipam"}});
    let e = run(&world, dir.path(), &pod, "ADD", &conf).err(7);
    assert!(e["msg"].as_str().unwrap().contains("forceAddress"), "{e}");
    assert_eq!(
        verbs(dir.path()),
        ["CNI_COMMAND=ADD", "CNI_COMMAND=DEL"],
        "IPAM DEL ran after the failed ADD"
    );
    assert!(
        node.ip_json(&["link", "show", "master", "cbr9"])
            .as_array()
            .unwrap()
            .is_empty(),
        "the veth pair was removed"
    );
    // with forceAddress the old address is replaced and ADD succeeds
    let mut forced = conf.clone();
    forced["forceAddress"] = json!(true);
    run(&world, dir.path(), &pod, "ADD", &forced).ok();
    let addrs = node.ip(&["-4", "addr", "show", "cbr9"]);
    assert!(
        addrs.contains("10.88.0.1/24") && !addrs.contains("10.77.7.1"),
        "{addrs}"
    );
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn an_unusable_ipam_result_leaves_no_bridge_and_no_lease() {
    require_root();
    let (world, dir, pod) = setup();
    // the plan refuses the result (its address is its own gateway) before any link exists
    let conf = json!({"cniVersion":"1.0.0","name":"deleg","type":"bridge","bridge":"cbr7","isGateway":true,
        "ipam":{"type":"fake-ipam","FAKE_IPAM_SELF_GATEWAY":true}});
    let e = run(&world, dir.path(), &pod, "ADD", &conf).err(7);
    assert!(e["msg"].as_str().unwrap().contains("10.88.0.1/24"), "{e}");
    assert_eq!(
        verbs(dir.path()),
        ["CNI_COMMAND=ADD", "CNI_COMMAND=DEL"],
        "the lease was given back"
    );
    let node = world.nodes[0].ns.link_names();
    assert!(
        !node.iter().any(|l| l == "cbr7" || l.starts_with("veth")),
        "no bridge and no veth were created: {node:?}"
    );
    assert!(
        !pod.link_names().contains(&"eth0".to_string()),
        "no interface in the pod"
    );
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn on_an_existing_bridge_the_pair_made_while_ipam_answered_goes_when_ipam_fails() {
    require_root();
    let (world, dir, pod) = setup();
    // The bridge exists: the veth pair is created while the delegate runs, and removed
    // again when it fails.
    let node = &world.nodes[0].ns;
    node.ip(&["link", "add", "cbr6", "type", "bridge"]);
    let conf = json!({"cniVersion":"1.0.0","name":"deleg","type":"bridge","bridge":"cbr6","isGateway":true,
        "ipam":{"type":"fake-ipam","FAKE_IPAM_FAIL":true}});
    let e = run(&world, dir.path(), &pod, "ADD", &conf).err(11);
    assert!(e["msg"].as_str().unwrap().contains("pool busy"), "{e}");
    assert_eq!(verbs(dir.path()), ["CNI_COMMAND=ADD"], "nothing to release");
    assert!(
        node.ip_json(&["link", "show", "master", "cbr6"])
            .as_array()
            .unwrap()
            .is_empty(),
        "the veth pair was removed"
    );
    assert!(
        !pod.link_names().contains(&"eth0".to_string()),
        "no interface left in the pod"
    );
    // An unusable result (its address is its own gateway): the pair goes, the lease is
    // given back, the bridge stays (it was there before).
    let conf = json!({"cniVersion":"1.0.0","name":"deleg","type":"bridge","bridge":"cbr6","isGateway":true,
        "ipam":{"type":"fake-ipam","FAKE_IPAM_SELF_GATEWAY":true}});
    let e = run(&world, dir.path(), &pod, "ADD", &conf).err(7);
    assert!(e["msg"].as_str().unwrap().contains("10.88.0.1/24"), "{e}");
    assert_eq!(
        verbs(dir.path()),
        ["CNI_COMMAND=ADD", "CNI_COMMAND=ADD", "CNI_COMMAND=DEL"],
        "the lease was given back"
    );
    let links = node.link_names();
    assert!(links.contains(&"cbr6".to_string()), "{links:?}");
    assert!(!links.iter().any(|l| l.starts_with("veth")), "{links:?}");
    assert!(!pod.link_names().contains(&"eth0".to_string()));
    // and then a good ADD on the same bridge works
    let conf = json!({"cniVersion":"1.0.0","name":"deleg","type":"bridge","bridge":"cbr6","isGateway":true,
        "ipam":{"type":"fake-ipam"}});
    run(&world, dir.path(), &pod, "ADD", &conf).ok();
    assert!(pod.link_names().contains(&"eth0".to_string()));
}
