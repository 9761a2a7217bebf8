//! The built `cluster-ipam` against a real ferro-agent (embedded store, one node), as a
//! runtime runs it: every verb and every CNI version, what each mode answers, bad input
//! (clear errors, nothing written), the agent away (ADD code 11, STATUS code 50, DEL spooled
//! and replayed when the agent is back), and `cnictl ipam show|check|release`.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use ferro_testutil::agent::Agent;
use ferro_testutil::{run_plugin, workspace_bin, PluginRun};
use serde_json::{json, Value};

use common::{audit, bin, CN};

fn agent() -> Agent {
    Agent::start(
        &workspace_bin("ferro-agent"),
        None,
        json!({"nodeName": "node-a", "leaseTTL": 2,
               "ipam": {"leakGraceSeconds": 2, "nodeGraceSeconds": 20, "emptyBlockGraceSeconds": 1}}),
    )
}

fn conf(a: &Agent, main: &str, version: &str, extra: Value) -> Value {
    let mut ipam = json!({"type": "cluster-ipam", "socket": a.socket(), "timeoutSeconds": 10});
    for (k, v) in extra.as_object().unwrap() {
        ipam[k] = v.clone();
    }
    json!({"cniVersion": version, "name": "net", "type": main, "ipam": ipam})
}

fn run(cmd: &str, id: &str, conf: &Value, args: &str) -> PluginRun {
    run_plugin(
        bin(),
        &[
            ("CNI_COMMAND", cmd),
            ("CNI_CONTAINERID", id),
            ("CNI_NETNS", "/run/netns/none"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", "/opt/cni/bin"),
            ("CNI_ARGS", args),
        ],
        &conf.to_string(),
    )
}

fn allocations(a: &Agent) -> u64 {
    audit(a)["allocations"].as_u64().unwrap()
}

#[test]
fn every_verb_every_version_and_the_agent_away() {
    let mut a = agent();
    let socket = a.socket();
    let flat = |v: &str| {
        json!({"cniVersion": v, "name": "net", "type": "flat",
               "ipam": {"type": "cluster-ipam", "socket": socket, "timeoutSeconds": 10}})
    };

    // no pool yet: a clear error, nothing written
    let e = run("ADD", "c0", &flat("1.1.0"), "").err(7);
    assert!(
        e["msg"]
            .as_str()
            .unwrap()
            .starts_with("no ClusterNetwork: apply one"),
        "{e}"
    );
    let out = a.cnictl(&["apply", "-f", "-"], Some(CN));
    assert_eq!(out.code, 0, "{}", out.stderr);

    // pod mode, every version: one address per family, host prefixes, no gateway
    for (i, v) in [
        "0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0",
    ]
    .iter()
    .enumerate()
    {
        let r = run("ADD", &format!("v{i}"), &flat(v), "").ok();
        assert_eq!(r["cniVersion"], *v);
        if v.starts_with("0.1") || v.starts_with("0.2") {
            assert!(r["ip4"]["ip"].as_str().unwrap().ends_with("/32"), "{r}");
            assert!(r["ip6"]["ip"].as_str().unwrap().ends_with("/128"), "{r}");
        } else {
            let ips = r["ips"].as_array().unwrap();
            assert_eq!(ips.len(), 2, "{r}");
            assert!(
                ips[0]["address"].as_str().unwrap().starts_with("10.244."),
                "{r}"
            );
            assert!(ips[0]["address"].as_str().unwrap().ends_with("/32"));
            assert!(ips[1]["address"].as_str().unwrap().ends_with("/128"));
            assert!(ips[0].get("gateway").is_none());
        }
    }
    // node mode (under bridge): the node block's prefix and its gateway, and the routes given
    let kube = conf(
        &a,
        "bridge",
        "1.0.0",
        json!({"routes": [{"dst": "0.0.0.0/0"}], "families": ["ipv4"]}),
    );
    let r = run(
        "ADD",
        "k1",
        &kube,
        "IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-1",
    )
    .ok();
    let addr = r["ips"][0]["address"].as_str().unwrap().to_string();
    assert!(addr.ends_with("/24"), "{r}");
    let gw = r["ips"][0]["gateway"].as_str().unwrap();
    assert!(gw.ends_with(".1"), "{r}");
    assert_eq!(r["routes"], json!([{"dst": "0.0.0.0/0"}]));
    assert_eq!(r["ips"].as_array().unwrap().len(), 1, "ipv4 only");
    // the same ADD again: the same answer
    assert_eq!(run("ADD", "k1", &kube, "").ok()["ips"], r["ips"]);

    // CHECK against the prevResult; a wrong address or an unknown container is code 103
    let mut chk = kube.clone();
    chk["prevResult"] = r.clone();
    assert_eq!(run("CHECK", "k1", &chk, "").ok(), Value::Null);
    chk["prevResult"]["ips"][0]["address"] = json!("10.244.250.250/24");
    let e = run("CHECK", "k1", &chk, "").err(103);
    assert!(
        e["msg"]
            .as_str()
            .unwrap()
            .contains("does not hold 10.244.250.250"),
        "{e}"
    );
    let e = run("CHECK", "nobody", &kube, "").err(103);
    assert!(
        e["msg"]
            .as_str()
            .unwrap()
            .contains("nobody/eth0 holds no address"),
        "{e}"
    );

    // GC and STATUS
    let mut gc = conf(&a, "flat", "1.1.0", json!({}));
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "v0", "ifname": "eth0"}]);
    assert_eq!(run("GC", "", &gc, "").ok(), Value::Null);
    assert_eq!(run("STATUS", "", &flat("1.1.0"), "").ok(), Value::Null);

    // the pod's name reached the store's copy of the block
    let t0 = Instant::now();
    loop {
        let ipb = a.cnictl(&["get", "ipamblocks", "-o", "json"], None);
        if ipb.stdout.contains("\"name\": \"web-1\"") {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "{}", ipb.stdout);
        std::thread::sleep(Duration::from_millis(100));
    }
    let show = a.cnictl(&["ipam", "show", "-o", "wide"], None);
    assert_eq!(show.code, 0, "{}", show.stderr);
    assert!(
        show.stdout.contains("10.244.0.0/16   /26     /24"),
        "{}",
        show.stdout
    );
    assert!(
        show.stdout.lines().any(|l| l.starts_with("node-a   yes")),
        "{}",
        show.stdout
    );
    let node_block = format!("{}.0/24", addr.rsplit_once('.').unwrap().0);
    assert!(
        show.stdout
            .lines()
            .any(|l| l.starts_with(&node_block) && l.contains(" node-a   node   1 ")),
        "{}",
        show.stdout
    );

    // bad input: clear errors, nothing written
    let before = allocations(&a);
    for (extra, code, want) in [
        (
            json!({"sokcet": "/x"}),
            7,
            "ipam.sokcet: unknown field `sokcet`",
        ),
        (
            json!({"mode": "cluster"}),
            7,
            "ipam.mode: unknown variant `cluster`",
        ),
        (json!({"families": []}), 7, "ipam.families: empty"),
    ] {
        let e = run("ADD", "bad", &conf(&a, "flat", "1.1.0", extra), "").err(code);
        assert!(e["msg"].as_str().unwrap().starts_with(want), "{e}");
    }
    let e = run("ADD", "bad", &flat("1.1.0"), "IP=10.244.0.9").err(4);
    assert!(e["msg"].as_str().unwrap().contains("IP"), "{e}");
    assert_eq!(allocations(&a), before);

    // DEL, twice
    assert_eq!(run("DEL", "v6", &flat("1.1.0"), "").ok(), Value::Null);
    assert_eq!(run("DEL", "v6", &flat("1.1.0"), "").ok(), Value::Null);
    assert_eq!(allocations(&a), before - 1);

    // the agent away: ADD is code 11, STATUS code 50, DEL succeeds and is spooled
    assert!(a.term().success());
    let e = run("ADD", "late", &flat("1.1.0"), "").err(11);
    assert!(
        e["msg"].as_str().unwrap().contains("is the agent running?"),
        "{e}"
    );
    let e = run("STATUS", "", &flat("1.1.0"), "").err(50);
    assert!(
        e["msg"]
            .as_str()
            .unwrap()
            .contains("cannot reach ferro-agent"),
        "{e}"
    );
    let del = run("DEL", "v5", &flat("1.1.0"), "");
    assert_eq!(del.code, 0, "{}", del.stderr);
    assert!(
        del.stderr.contains("the release is spooled in"),
        "{}",
        del.stderr
    );
    let spool = a.socket().parent().unwrap().join("spool");
    assert_eq!(std::fs::read_dir(&spool).unwrap().count(), 1);
    // back: the spool is replayed before anything else
    a.restart();
    a.wait_ready();
    assert_eq!(std::fs::read_dir(&spool).unwrap().count(), 0, "{}", a.log());
    assert_eq!(allocations(&a), before - 2, "{}", a.log());
    assert!(
        a.log().contains("spool: replayed 1 request(s), rejected 0"),
        "{}",
        a.log()
    );
    // the journal kept everything else: the same answer as before the restart
    assert_eq!(run("ADD", "k1", &kube, "").ok()["ips"], r["ips"]);
}

#[test]
fn operators_cannot_release_a_live_pods_address_by_mistake() {
    let a = agent();
    assert_eq!(a.cnictl(&["apply", "-f", "-"], Some(CN)).code, 0);
    let dir = tempfile::tempdir().unwrap();
    let netns = dir.path().join("pod-netns");
    std::fs::write(&netns, b"").unwrap();
    let c = conf(&a, "flat", "1.1.0", json!({"families": ["ipv4"]}));
    let r = run_plugin(
        bin(),
        &[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "live"),
            ("CNI_NETNS", netns.to_str().unwrap()),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", "/opt/cni/bin"),
        ],
        &c.to_string(),
    )
    .ok();
    let ip = r["ips"][0]["address"]
        .as_str()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let out = a.cnictl(&["ipam", "release", &ip], None);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("belongs to a live pod") && out.stderr.contains("exists"),
        "{}",
        out.stderr
    );
    assert_eq!(allocations(&a), 1);
    // its netns goes: a leak, reported, then released by the agent after the grace (2 s)
    std::fs::remove_file(&netns).unwrap();
    let chk = a.cnictl(&["ipam", "check"], None);
    assert_eq!(chk.code, 1, "{}", chk.stdout);
    assert!(
        chk.stdout.contains(&format!(
            "{ip} live/eth0: netns {} is gone",
            netns.display()
        )),
        "{}",
        chk.stdout
    );
    let t0 = Instant::now();
    while allocations(&a) != 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "never released: {}",
            a.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!(
        "leak released {:.1?} after its netns went (grace 2 s)",
        t0.elapsed()
    );
    let chk = a.cnictl(&["ipam", "check"], None);
    assert_eq!(chk.code, 0, "{}{}", chk.stdout, chk.stderr);
    // --force releases a live one; --node refuses a live node
    let r = run("ADD", "other", &c, "").ok();
    let ip = r["ips"][0]["address"]
        .as_str()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let out = a.cnictl(&["ipam", "release", &ip, "--force"], None);
    assert_eq!(
        (out.code, out.stdout.clone()),
        (0, format!("released {ip}\n")),
        "{}",
        out.stderr
    );
    let out = a.cnictl(&["ipam", "release", "--node", "node-a"], None);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("is this node, and alive"),
        "{}",
        out.stderr
    );
    let out = a.cnictl(&["ipam", "release"], None);
    assert_eq!(out.code, 2, "{}", out.stderr);
}
