//! The loopback binary, run as a runtime runs it, against real namespaces.

use ferro_testutil::netns::Netns;
use ferro_testutil::{require_root, run_plugin};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_loopback");

fn env<'a>(cmd: &'a str, ns: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("CNI_COMMAND", cmd),
        ("CNI_CONTAINERID", "ctr-lo"),
        ("CNI_NETNS", ns),
        ("CNI_IFNAME", "lo"),
        ("CNI_PATH", "/nonexistent"),
    ]
}

fn lo_state(ns: &Netns) -> String {
    ns.ip_json(&["link", "show", "lo"])[0]["operstate"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn add_brings_lo_up_and_reports_its_addresses() {
    require_root();
    let ns = Netns::new("lo-add");
    ns.ip(&["link", "set", "lo", "down"]);
    let path = ns.path().display().to_string();
    let conf = r#"{"cniVersion":"1.0.0","name":"lo","type":"loopback"}"#;
    let r = run_plugin(BIN, &env("ADD", &path), conf).ok();
    assert_eq!(
        r["interfaces"][0],
        json!({"name":"lo","mac":"00:00:00:00:00:00","sandbox": path})
    );
    let ips: Vec<&str> = r["ips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["address"].as_str().unwrap())
        .collect();
    assert!(ips.contains(&"127.0.0.1/8"), "{r}");
    assert!(r["ips"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["interface"] == 0));
    assert_eq!(lo_state(&ns), "UNKNOWN", "lo is up (operstate UNKNOWN)");
    assert!(ns.try_exec(&["ping", "-c1", "-W1", "127.0.0.1"]));

    run_plugin(BIN, &env("CHECK", &path), conf).ok();
    run_plugin(BIN, &env("DEL", &path), conf).ok();
    assert_eq!(lo_state(&ns), "DOWN");
    let e = run_plugin(BIN, &env("CHECK", &path), conf).err(103);
    assert!(e["msg"].as_str().unwrap().contains("lo is down"));
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn chained_add_passes_prev_result_through() {
    require_root();
    let ns = Netns::new("lo-chain");
    let path = ns.path().display().to_string();
    let prev = json!({"cniVersion":"0.4.0","interfaces":[{"name":"eth0","sandbox":path}],
        "ips":[{"version":"4","address":"10.1.0.5/24","gateway":"10.1.0.1","interface":0}]});
    let conf =
        json!({"cniVersion":"0.4.0","name":"n","type":"loopback","prevResult":prev}).to_string();
    let r = run_plugin(BIN, &env("ADD", &path), &conf).ok();
    assert_eq!(
        r, prev,
        "P9: a plugin that changes nothing outputs prevResult"
    );
}

#[test]
fn del_without_netns_or_with_a_vanished_one_succeeds() {
    let conf = r#"{"cniVersion":"1.0.0","name":"lo","type":"loopback"}"#;
    run_plugin(BIN, &env("DEL", ""), conf).ok();
    run_plugin(BIN, &env("DEL", "/run/netns/does-not-exist-ferro"), conf).ok();
}

#[test]
fn add_into_a_missing_netns_is_an_error_object() {
    let conf = r#"{"cniVersion":"1.0.0","name":"lo","type":"loopback"}"#;
    let e = run_plugin(BIN, &env("ADD", "/run/netns/does-not-exist-ferro"), conf).err(3);
    assert!(e["msg"].as_str().unwrap().contains("does-not-exist-ferro"));
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn add_refuses_the_plugins_own_namespace() {
    require_root();
    let conf = r#"{"cniVersion":"1.0.0","name":"lo","type":"loopback"}"#;
    let e = run_plugin(BIN, &env("ADD", "/proc/self/ns/net"), conf);
    // /proc/self is the plugin process itself: same namespace as the plugin
    let v = e.err(4);
    assert!(v["msg"].as_str().unwrap().contains("CNI_NETNS"));
}

/// The binaries start without Rust's runtime start-up (`ferro_spec::entry`), which is what
/// ignores SIGPIPE in other programs: a result pipe nobody reads any more must still be an
/// error the plugin handles, not a signal that kills it.
#[test]
fn a_result_pipe_closed_by_the_runtime_does_not_kill_the_plugin() {
    use std::io::Write;
    use std::os::unix::process::ExitStatusExt;
    use std::process::{Command, Stdio};
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut child = Command::new(BIN)
        .env_clear()
        .env("CNI_COMMAND", "VERSION")
        .stdin(Stdio::piped())
        .stdout(writer)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut conf = child.stdin.take().unwrap();
    conf.write_all(br#"{"cniVersion":"1.0.0"}"#).unwrap();
    drop(conf);
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), None, "{status}");
}
