//! Drives the built `cnictl` against fake plugins that record their stdin and environment:
//! what every plugin receives, in which order, and what cnictl prints and returns.

// Helpers outside #[test] functions panic on failed setup, like the tests themselves.
#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use base64::Engine;
use common::{container_id, World};
use serde_json::{json, Value};

const A_RESULT: &str = r#"{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"/run/netns/x"}],"ips":[{"address":"10.9.0.2/24","interface":0,"gateway":"10.9.0.1"}],"dns":{}}"#;
// No cniVersion: libcni (and cnictl) take the list's.
const B_RESULT: &str = r#"{"interfaces":[{"name":"eth0","sandbox":"/run/netns/x"}],"ips":[{"address":"10.9.0.2/24","interface":0,"gateway":"10.9.0.1"}],"routes":[{"dst":"0.0.0.0/0"}]}"#;

const CHAIN: &str = r#"{"cniVersion":"1.0.0","name":"chain","plugins":[
  {"type":"pa","capabilities":{"portMappings":true,"mac":false},"runtimeConfig":{"written":true},"html":"<b>","n":1.0},
  {"type":"pb","runtimeConfig":{"kept":1}}
]}
"#;
const CNI_ARGS: &str = "IgnoreUnknown=1;K8S_POD_NAME=web";
const CAP_ARGS: &str = r#"{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}],"mac":"aa:bb:cc:dd:ee:ff"}"#;

fn chain_world() -> World {
    let w = World::new();
    w.fakes(&["pa", "pb", "pc"]);
    w.conf("10-chain.conflist", CHAIN);
    w.answer("pa", "ADD", A_RESULT, 0);
    w.answer("pb", "ADD", B_RESULT, 0);
    w
}

fn b_final() -> Value {
    let mut v: Value = serde_json::from_str(B_RESULT).unwrap();
    v["cniVersion"] = json!("1.0.0");
    v
}

fn env_map(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn add_builds_libcni_requests_and_environment_and_caches_the_result() {
    let w = chain_world();
    let netns = w.path("ns/pod1");
    let cid = container_id(&netns);
    // A relative netns path is made absolute against the working directory, as cnitool does.
    let run = w.cnictl(
        &["add", "chain", "ns/pod1"],
        &[("CNI_ARGS", CNI_ARGS), ("CAP_ARGS", CAP_ARGS)],
    );
    run.ok();

    let calls = w.calls();
    assert_eq!(w.labels(), ["ADD pa", "ADD pb"]);
    // Golden stdin of the first plugin: Go-encoded, name and version injected, only the enabled
    // capability that the runtime supplied in runtimeConfig (replacing the written one), the
    // capabilities object passed through, no prevResult.
    assert_eq!(
        calls[0].stdin_raw,
        r#"{"capabilities":{"mac":false,"portMappings":true},"cniVersion":"1.0.0","html":"\u003cb\u003e","n":1,"name":"chain","runtimeConfig":{"portMappings":[{"containerPort":80,"hostPort":8080,"protocol":"tcp"}]},"type":"pa"}"#
    );
    // The second gets the first one's result as prevResult; no capabilities, so its written
    // runtimeConfig stays.
    assert_eq!(
        calls[1].stdin(),
        json!({"cniVersion": "1.0.0", "name": "chain", "type": "pb", "runtimeConfig": {"kept": 1},
               "prevResult": serde_json::from_str::<Value>(A_RESULT).unwrap()})
    );
    let netns_s = netns.display().to_string();
    let bin = w.bin().display().to_string();
    let fake_dir = w.dir.path().display().to_string();
    for c in &calls {
        assert_eq!(
            c.env,
            env_map(&[
                ("CNI_ARGS", CNI_ARGS),
                ("CNI_COMMAND", "ADD"),
                ("CNI_CONTAINERID", &cid),
                ("CNI_IFNAME", "eth0"),
                ("CNI_NETNS", &netns_s),
                ("CNI_PATH", &bin),
                ("FAKE_DIR", &fake_dir),
                ("FAKE_MARK", "inherited"),
            ]),
            "{}",
            c.label()
        );
    }

    // stdout: the final result, cniVersion filled in, indented with four spaces like cnitool.
    assert_eq!(run.json(), b_final());
    assert!(
        run.stdout
            .starts_with("{\n    \"cniVersion\": \"1.0.0\",\n"),
        "{}",
        run.stdout
    );

    // The cache file, in libcni's format.
    let file = w.cache_file("chain", &cid, "eth0");
    assert_eq!(
        fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        fs::metadata(w.cache().join("results"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );
    let raw = fs::read_to_string(&file).unwrap();
    assert!(
        raw.starts_with(&format!(
            r#"{{"kind":"cniCacheV1","containerId":"{cid}","config":""#
        )),
        "{raw}"
    );
    let cached: Value = serde_json::from_str(&raw).unwrap();
    let config = base64::engine::general_purpose::STANDARD
        .decode(cached["config"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        config,
        CHAIN.as_bytes(),
        "config holds the conflist bytes as read"
    );
    assert_eq!(cached["ifName"], "eth0");
    assert_eq!(cached["networkName"], "chain");
    assert_eq!(cached["netns"], json!(netns_s));
    assert_eq!(
        cached["cniArgs"],
        json!([["IgnoreUnknown", "1"], ["K8S_POD_NAME", "web"]])
    );
    assert_eq!(
        cached["capabilityArgs"],
        serde_json::from_str::<Value>(CAP_ARGS).unwrap()
    );
    assert_eq!(cached["result"], b_final());
}

#[test]
fn flags_set_ifname_container_id_and_cache_dir() {
    let w = chain_world();
    let other_cache = w.path("other-cache");
    let run = w.cnictl_raw(
        &[
            "add".into(),
            "--ifname".into(),
            "net1".into(),
            "chain".into(),
            "/run/netns/x".into(),
            "--container-id=mine".into(),
        ],
        &[
            ("CNI_CACHE_DIR", other_cache.to_str().unwrap()),
            ("CNI_IFNAME", "ignored0"),
        ],
    );
    run.ok();
    let c = &w.calls()[0];
    assert_eq!(
        (c.var("CNI_IFNAME"), c.var("CNI_CONTAINERID")),
        ("net1", "mine")
    );
    assert_eq!(c.var("CNI_ARGS"), "");
    assert!(other_cache.join("results/chain-mine-net1").is_file());

    // CNI_IFNAME is used when no flag is given.
    w.reset_calls();
    w.cnictl(&["add", "chain", "/run/netns/y"], &[("CNI_IFNAME", "net7")])
        .ok();
    assert_eq!(w.calls()[0].var("CNI_IFNAME"), "net7");
}

#[test]
fn check_and_del_send_the_cached_result_and_del_runs_in_reverse() {
    let w = chain_world();
    let netns = w.path("ns/pod1");
    let ns = netns.to_str().unwrap();
    let cid = container_id(&netns);
    w.cnictl(&["add", "chain", ns], &[]).ok();

    w.reset_calls();
    let run = w.cnictl(&["check", "chain", ns], &[("CAP_ARGS", CAP_ARGS)]);
    run.ok();
    assert_eq!(run.stdout, "");
    assert_eq!(w.labels(), ["CHECK pa", "CHECK pb"]);
    for c in w.calls() {
        assert_eq!(c.stdin()["prevResult"], b_final(), "{}", c.label());
        assert_eq!(c.var("CNI_COMMAND"), "CHECK");
        assert_eq!(c.var("CNI_CONTAINERID"), cid);
        assert_eq!(c.var("CNI_NETNS"), ns);
    }
    assert_eq!(
        w.calls()[0].stdin()["runtimeConfig"],
        json!({"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]})
    );

    w.reset_calls();
    let run = w.cnictl(&["del", "chain", ns], &[]);
    run.ok();
    assert_eq!(run.stdout, "");
    assert_eq!(w.labels(), ["DEL pb", "DEL pa"]);
    for c in w.calls() {
        assert_eq!(c.stdin()["prevResult"], b_final(), "{}", c.label());
        assert_eq!(c.var("CNI_COMMAND"), "DEL");
    }
    // No CAP_ARGS this time: the written runtimeConfig is what pa gets.
    assert_eq!(w.calls()[0].stdin()["runtimeConfig"], json!({"kept": 1}));
    assert_eq!(
        w.calls()[1].stdin()["runtimeConfig"],
        json!({"written": true})
    );
    assert!(w.cache_files().is_empty(), "cache removed after DEL");

    // DEL again: still fine, no prevResult any more.
    w.reset_calls();
    w.cnictl(&["del", "chain", ns], &[]).ok();
    assert_eq!(w.labels(), ["DEL pb", "DEL pa"]);
    assert!(w
        .calls()
        .iter()
        .all(|c| c.stdin().get("prevResult").is_none()));
}

#[test]
fn del_sends_prev_result_from_0_4_0_on_in_the_list_version() {
    for (version, prev) in [
        ("0.3.1", false),
        ("0.4.0", true),
        ("1.0.0", true),
        ("1.1.0", true),
    ] {
        let w = World::new();
        w.fakes(&["pa"]);
        w.conf(
            "v.conflist",
            &format!(r#"{{"cniVersion":"{version}","name":"v","plugins":[{{"type":"pa"}}]}}"#),
        );
        // The plugin answers 1.0.0 whatever it is asked; the cache keeps that.
        w.answer("pa", "ADD", A_RESULT, 0);
        w.cnictl(&["add", "v", "/run/netns/v"], &[]).ok();
        w.cnictl(&["del", "v", "/run/netns/v"], &[]).ok();
        let del = &w.calls()[1];
        assert_eq!(del.label(), "DEL pa");
        match prev {
            false => assert!(del.stdin().get("prevResult").is_none(), "{version}"),
            true => {
                let p = &del.stdin()["prevResult"];
                assert_eq!(p["cniVersion"], version, "converted to the list version");
                assert_eq!(p["ips"][0]["address"], "10.9.0.2/24");
                assert_eq!(
                    p["ips"][0].get("version").is_some(),
                    version == "0.4.0",
                    "{version}: {p}"
                );
            }
        }
        assert!(w.cache_files().is_empty(), "{version}: cache removed");
    }
}

#[test]
fn check_needs_0_4_0_and_disable_check_calls_nothing() {
    let w = World::new();
    w.fakes(&["pa"]);
    w.conf(
        "old.conflist",
        r#"{"cniVersion":"0.3.1","name":"old","plugins":[{"type":"pa"}]}"#,
    );
    w.conf(
        "off.conflist",
        r#"{"cniVersion":"1.0.0","name":"off","disableCheck":"True","plugins":[{"type":"pa"}]}"#,
    );
    let run = w.cnictl(&["check", "old", "/run/netns/a"], &[]);
    run.failed(1);
    assert!(run.stderr.contains("cnictl: check: configuration version \"0.3.1\" does not support the CHECK command (code 1)"), "{}", run.stderr);
    w.cnictl(&["check", "off", "/run/netns/a"], &[]).ok();
    assert!(w.calls().is_empty());
}

#[test]
fn a_failed_add_reports_the_plugin_error_and_cleans_up_the_whole_list() {
    let w = chain_world();
    w.conf("20-three.conflist", r#"{"cniVersion":"1.0.0","name":"three","plugins":[{"type":"pa"},{"type":"pb"},{"type":"pc"}]}"#);
    w.answer(
        "pb",
        "ADD",
        r#"{"code":7,"msg":"bad subnet","details":"10.0.0.0/33"}"#,
        1,
    );
    w.answer_stderr("pb", "ADD", "pb log line\n");
    let run = w.cnictl(&["add", "three", "/run/netns/a"], &[]);
    run.failed(1);
    assert_eq!(run.stdout, "");
    assert!(
        run.stderr
            .contains("cnictl: add pb: bad subnet: 10.0.0.0/33 (code 7)"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("pb log line"),
        "plugin stderr is passed on: {}",
        run.stderr
    );
    // DEL of every plugin in reverse, including pc which never got ADD; no prevResult.
    assert_eq!(
        w.labels(),
        ["ADD pa", "ADD pb", "DEL pc", "DEL pb", "DEL pa"]
    );
    assert!(w.calls()[2..]
        .iter()
        .all(|c| c.stdin().get("prevResult").is_none()));
    assert!(w.cache_files().is_empty());

    w.reset_calls();
    w.cnictl(&["add", "three", "/run/netns/a", "--no-cleanup"], &[])
        .failed(1);
    assert_eq!(w.labels(), ["ADD pa", "ADD pb"]);

    // A cleanup DEL that fails is reported; the ADD error is still the verdict.
    w.reset_calls();
    w.answer("pa", "DEL", r#"{"code":11,"msg":"busy"}"#, 1);
    let run = w.cnictl(&["add", "three", "/run/netns/a"], &[]);
    run.failed(1);
    assert!(
        run.stderr.contains("cleanup DEL pa: busy (code 11)"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .trim_end()
            .ends_with("cnictl: add pb: bad subnet: 10.0.0.0/33 (code 7)"),
        "{}",
        run.stderr
    );
    assert_eq!(
        w.labels(),
        ["ADD pa", "ADD pb", "DEL pc", "DEL pb", "DEL pa"]
    );
}

#[test]
fn plugin_failures_without_error_json_follow_libcni() {
    let w = chain_world();
    w.answer("pa", "ADD", "", 2);
    w.answer_stderr("pa", "ADD", "kaboom");
    let run = w.cnictl(&["add", "chain", "/run/netns/a", "--no-cleanup"], &[]);
    run.failed(1);
    assert!(
        run.stderr
            .contains(r#"cnictl: add pa: netplugin failed: "kaboom" (code 102)"#),
        "{}",
        run.stderr
    );

    // A plugin that succeeds without a result breaks ADD (code 6).
    w.answer("pa", "ADD", "", 0);
    let run = w.cnictl(&["add", "chain", "/run/netns/a", "--no-cleanup"], &[]);
    run.failed(1);
    assert!(
        run.stderr
            .contains("cnictl: add pa: failed to unmarshal raw result"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("(code 6)"), "{}", run.stderr);

    // A plugin missing from CNI_PATH.
    w.conf(
        "30-missing.conflist",
        r#"{"cniVersion":"1.0.0","name":"missing","plugins":[{"type":"nowhere"}]}"#,
    );
    let run = w.cnictl(&["add", "missing", "/run/netns/a", "--no-cleanup"], &[]);
    run.failed(1);
    assert!(
        run.stderr
            .contains("cnictl: add nowhere: failed to find plugin \"nowhere\""),
        "{}",
        run.stderr
    );
}

#[test]
fn del_stops_at_the_first_error_and_keeps_the_cache() {
    let w = chain_world();
    w.conf("20-three.conflist", r#"{"cniVersion":"1.0.0","name":"three","plugins":[{"type":"pa"},{"type":"pb"},{"type":"pc"}]}"#);
    w.answer("pc", "ADD", B_RESULT, 0);
    w.cnictl(&["add", "three", "/run/netns/a"], &[]).ok();
    w.reset_calls();
    w.answer("pb", "DEL", r#"{"code":11,"msg":"try later"}"#, 1);
    let run = w.cnictl(&["del", "three", "/run/netns/a"], &[]);
    run.failed(1);
    assert!(
        run.stderr.contains("cnictl: del pb: try later (code 11)"),
        "{}",
        run.stderr
    );
    assert_eq!(w.labels(), ["DEL pc", "DEL pb"]);
    assert_eq!(
        w.cache_files().len(),
        1,
        "a failed DEL keeps the cached result"
    );
}

#[test]
fn del_with_a_broken_cache_file_removes_it_and_proceeds() {
    let w = chain_world();
    let cid = container_id(std::path::Path::new("/run/netns/a"));
    let file = w.cache_file("chain", &cid, "eth0");
    fs::create_dir_all(file.parent().unwrap()).unwrap();
    fs::write(&file, "{not json").unwrap();
    let run = w.cnictl(&["del", "chain", "/run/netns/a"], &[]);
    run.ok();
    assert!(
        run.stderr.contains("ignoring unusable cache file"),
        "{}",
        run.stderr
    );
    assert_eq!(w.labels(), ["DEL pb", "DEL pa"]);
    assert!(w
        .calls()
        .iter()
        .all(|c| c.stdin().get("prevResult").is_none()));
    assert!(!file.exists());
}

#[test]
fn gc_deletes_stale_attachments_then_sends_gc_with_the_valid_ones() {
    let w = World::new();
    w.fakes(&["pa", "pb"]);
    w.conf("10-gc.conflist", r#"{"cniVersion":"1.1.0","name":"gcnet","plugins":[{"type":"pa","capabilities":{"ips":true}},{"type":"pb"}]}"#);
    w.conf(
        "20-other.conflist",
        r#"{"cniVersion":"1.1.0","name":"other","plugins":[{"type":"pa"}]}"#,
    );
    w.answer("pa", "ADD", A_RESULT, 0);
    w.answer("pb", "ADD", A_RESULT, 0);
    fs::create_dir_all(w.path("ns")).unwrap();
    let alive = w.path("ns/alive");
    let gone = w.path("ns/gone");
    fs::write(&alive, "").unwrap();
    fs::write(&gone, "").unwrap();
    let (alive_s, gone_s) = (alive.to_str().unwrap(), gone.to_str().unwrap());
    w.cnictl(&["add", "gcnet", alive_s], &[]).ok();
    w.cnictl(&["add", "gcnet", gone_s], &[("CNI_ARGS", "K=gone")])
        .ok();
    w.cnictl(&["add", "other", gone_s], &[]).ok();
    fs::remove_file(&gone).unwrap();
    let (alive_id, gone_id) = (container_id(&alive), container_id(&gone));

    w.reset_calls();
    let run = w.cnictl(&["gc", "gcnet"], &[]);
    run.ok();
    assert_eq!(run.stdout, "");
    assert!(
        run.stderr
            .contains("1 stale attachment(s) deleted, 1 valid, GC sent to 2 plugin(s)"),
        "{}",
        run.stderr
    );
    assert_eq!(w.labels(), ["DEL pb", "DEL pa", "GC pa", "GC pb"]);
    let calls = w.calls();
    for del in &calls[..2] {
        assert_eq!(del.var("CNI_CONTAINERID"), gone_id);
        assert_eq!(
            del.var("CNI_NETNS"),
            gone_s,
            "the netns recorded in the cache"
        );
        assert_eq!(
            del.var("CNI_ARGS"),
            "K=gone",
            "the CNI_ARGS recorded in the cache"
        );
        assert_eq!(del.stdin()["prevResult"]["cniVersion"], "1.1.0");
    }
    let valid = json!([{"containerID": alive_id, "ifname": "eth0"}]);
    assert_eq!(
        calls[2].stdin(),
        json!({"type": "pa", "capabilities": {"ips": true}, "name": "gcnet", "cniVersion": "1.1.0",
               "cni.dev/valid-attachments": valid, "cni.dev/attachments": valid})
    );
    assert_eq!(calls[3].stdin()["cni.dev/attachments"], valid);
    let bin = w.bin().display().to_string();
    let fake_dir = w.dir.path().display().to_string();
    for gc in &calls[2..] {
        assert_eq!(
            gc.env,
            env_map(&[
                ("CNI_ARGS", ""),
                ("CNI_COMMAND", "GC"),
                ("CNI_CONTAINERID", ""),
                ("CNI_IFNAME", ""),
                ("CNI_NETNS", ""),
                ("CNI_PATH", &bin),
                ("FAKE_DIR", &fake_dir),
                ("FAKE_MARK", "inherited"),
            ])
        );
    }
    assert_eq!(
        w.cache_files(),
        [
            format!("gcnet-{alive_id}-eth0"),
            format!("other-{gone_id}-eth0")
        ],
        "the stale entry is gone; the live one and other networks stay"
    );

    // An explicit valid set: the live attachment is now stale; the set is sent as given.
    w.reset_calls();
    w.cnictl(&["gc", "gcnet", "--valid", "kept-elsewhere/net1"], &[])
        .ok();
    assert_eq!(w.labels(), ["DEL pb", "DEL pa", "GC pa", "GC pb"]);
    assert_eq!(w.calls()[0].var("CNI_CONTAINERID"), alive_id);
    assert_eq!(
        w.calls()[2].stdin()["cni.dev/valid-attachments"],
        json!([{"containerID": "kept-elsewhere", "ifname": "net1"}])
    );
    assert_eq!(w.cache_files(), [format!("other-{gone_id}-eth0")]);

    // GC keeps going after a plugin fails and reports every failure.
    w.reset_calls();
    w.answer("pa", "GC", r#"{"code":100,"msg":"store locked"}"#, 1);
    w.answer("pb", "GC", r#"{"code":101,"msg":"also broken"}"#, 1);
    let run = w.cnictl(&["gc", "gcnet"], &[]);
    run.failed(1);
    assert_eq!(w.labels(), ["GC pa", "GC pb"]);
    assert_eq!(w.calls()[0].stdin()["cni.dev/valid-attachments"], json!([]));
    assert!(
        run.stderr
            .contains("cnictl: gc pa: failed to GC plugin: store locked (code 100)"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("cnictl: gc pb: failed to GC plugin: also broken (code 101)"),
        "{}",
        run.stderr
    );
}

#[test]
fn gc_respects_disable_gc_and_skips_the_verb_below_1_1_0() {
    let w = World::new();
    w.fakes(&["pa"]);
    w.answer("pa", "ADD", A_RESULT, 0);
    w.conf(
        "a.conflist",
        r#"{"cniVersion":"1.1.0","name":"nogc","disableGC":"true","plugins":[{"type":"pa"}]}"#,
    );
    w.conf(
        "b.conflist",
        r#"{"cniVersion":"1.0.0","name":"old","plugins":[{"type":"pa"}]}"#,
    );
    w.cnictl(&["add", "nogc", "/nonexistent/a"], &[]).ok();
    w.cnictl(&["add", "old", "/nonexistent/a"], &[]).ok();
    w.reset_calls();
    w.cnictl(&["gc", "nogc"], &[]).ok();
    assert!(w.calls().is_empty());
    assert_eq!(w.cache_files().len(), 2);
    // 1.0.0: stale attachments still get DEL (libcni), the GC verb is not sent.
    let run = w.cnictl(&["gc", "old"], &[]);
    run.ok();
    assert_eq!(w.labels(), ["DEL pa"]);
    assert!(run.stderr.contains("GC verb not sent"), "{}", run.stderr);
    assert_eq!(w.cache_files().len(), 1);
}

#[test]
fn status_runs_in_order_and_stops_at_the_first_error() {
    let w = World::new();
    w.fakes(&["pa", "pb", "pc"]);
    w.conf("s.conflist", r#"{"cniVersion":"1.1.0","name":"st","plugins":[{"type":"pa","capabilities":{"portMappings":true}},{"type":"pb"},{"type":"pc"}]}"#);
    w.conf(
        "o.conflist",
        r#"{"cniVersion":"1.0.0","name":"old","plugins":[{"type":"pa"}]}"#,
    );
    let run = w.cnictl(
        &["status", "st"],
        &[("CAP_ARGS", CAP_ARGS), ("CNI_ARGS", CNI_ARGS)],
    );
    run.ok();
    assert_eq!((run.stdout.as_str(), run.stderr.as_str()), ("", ""));
    assert_eq!(w.labels(), ["STATUS pa", "STATUS pb", "STATUS pc"]);
    let first = &w.calls()[0];
    assert_eq!(
        first.stdin_raw,
        r#"{"capabilities":{"portMappings":true},"cniVersion":"1.1.0","name":"st","type":"pa"}"#
    );
    assert_eq!(
        (
            first.var("CNI_COMMAND"),
            first.var("CNI_CONTAINERID"),
            first.var("CNI_NETNS"),
            first.var("CNI_IFNAME"),
            first.var("CNI_ARGS")
        ),
        ("STATUS", "", "", "", "")
    );

    w.reset_calls();
    w.answer(
        "pb",
        "STATUS",
        r#"{"code":50,"msg":"address pool exhausted"}"#,
        1,
    );
    let run = w.cnictl(&["status", "st"], &[]);
    run.failed(1);
    assert!(
        run.stderr
            .contains("cnictl: status pb: address pool exhausted (code 50)"),
        "{}",
        run.stderr
    );
    assert_eq!(w.labels(), ["STATUS pa", "STATUS pb"]);

    w.reset_calls();
    let run = w.cnictl(&["status", "old"], &[]);
    run.ok();
    assert!(w.calls().is_empty());
    assert!(
        run.stderr.contains("STATUS is not defined"),
        "{}",
        run.stderr
    );
}

#[test]
fn validate_probes_every_plugin_and_ipam_plugin_like_libcni() {
    let w = World::new();
    w.fakes(&["pa", "pb", "pi"]);
    w.supports("pa", &["0.4.0", "1.0.0", "1.1.0"]);
    w.supports("pb", &["1.1.0"]);
    w.supports("pi", &["0.4.0", "1.0.0", "1.1.0"]);
    w.conf("v.conflist", r#"{"cniVersion":"1.1.0","name":"v","plugins":[{"type":"pa","ipam":{"type":"pi"}},{"type":"pb"}]}"#);
    let run = w.cnictl(&["validate", "v"], &[]);
    run.ok();
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", run.stdout);
    assert!(
        lines[0].starts_with("ok    plugins[0] pa"),
        "{}",
        run.stdout
    );
    assert!(
        lines[1].starts_with("ok    plugins[0].ipam pi"),
        "{}",
        run.stdout
    );
    assert!(
        lines[1].ends_with("supports 0.4.0 1.0.0 1.1.0"),
        "{}",
        run.stdout
    );
    assert!(
        lines[3].starts_with("network \"v\" (cniVersion 1.1.0, 2 plugins")
            && lines[3].ends_with(": valid"),
        "{}",
        run.stdout
    );
    // The VERSION probe: libcni's stdin and dummy variables.
    let calls = w.calls();
    assert_eq!(w.labels(), ["VERSION pa", "VERSION pi", "VERSION pb"]);
    assert_eq!(calls[0].stdin_raw, r#"{"cniVersion":"1.1.0"}"#);
    assert_eq!(
        (
            calls[0].var("CNI_NETNS"),
            calls[0].var("CNI_IFNAME"),
            calls[0].var("CNI_PATH"),
            calls[0].var("CNI_CONTAINERID"),
            calls[0].var("CNI_ARGS")
        ),
        ("dummy", "dummy", "dummy", "", "")
    );

    // An IPAM plugin that stops at 1.0.0, and one that is missing.
    w.supports("pi", &["0.4.0", "1.0.0"]);
    w.conf("w.conflist", r#"{"cniVersion":"1.1.0","name":"w","plugins":[{"type":"pa","ipam":{"type":"pi"}},{"type":"absent"}]}"#);
    let run = w.cnictl(&["validate", "w"], &[]);
    run.failed(1);
    assert!(
        run.stdout.contains("FAIL  plugins[0].ipam pi"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("does not support cniVersion 1.1.0 (supports 0.4.0 1.0.0)"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("FAIL  plugins[1] absent"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("INVALID (2 problems)"),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr.contains("network \"w\" is not valid"),
        "{}",
        run.stderr
    );

    // By file name, and a plugin that does not know VERSION (libcni: it supports 0.1.0).
    w.answer(
        "pb",
        "VERSION",
        r#"{"code":4,"msg":"unknown CNI_COMMAND: VERSION"}"#,
        1,
    );
    let file = w.path("solo.conf");
    fs::write(&file, r#"{"cniVersion":"0.1.0","name":"solo","type":"pb"}"#).unwrap();
    let run = w.cnictl(&["validate", file.to_str().unwrap()], &[]);
    run.ok();
    assert!(
        run.stdout.contains("ok    plugins[0] pb") && run.stdout.contains("supports 0.1.0"),
        "{}",
        run.stdout
    );
}

#[test]
fn validate_against_the_reference_host_local() {
    let w = World::new();
    let path = format!("{}:/usr/lib/cni", w.bin().display());
    w.conf("a.conflist", r#"{"cniVersion":"1.1.0","name":"new","plugins":[{"type":"host-local","ipam":{"type":"host-local","subnet":"10.5.0.0/24"}}]}"#);
    w.conf("b.conflist", r#"{"cniVersion":"1.0.0","name":"ok","plugins":[{"type":"host-local","ipam":{"type":"host-local","subnet":"10.5.0.0/24"}}]}"#);
    let run = w.cnictl(&["validate", "new"], &[("CNI_PATH", &path)]);
    run.failed(1);
    assert!(
        run.stdout.contains("FAIL  plugins[0] host-local       /usr/lib/cni/host-local  does not support cniVersion 1.1.0 (supports 0.1.0 0.2.0 0.3.0 0.3.1 0.4.0 1.0.0)"),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr
            .contains("plugins[0] host-local: does not support cniVersion 1.1.0"),
        "{}",
        run.stderr
    );
    let run = w.cnictl(&["validate", "ok"], &[("CNI_PATH", &path)]);
    run.ok();
    assert!(
        run.stdout.contains("ok    plugins[0] host-local"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains(": valid"), "{}", run.stdout);
}

#[test]
fn config_sources_sibling_folder_legacy_conf_and_conf_file() {
    let w = World::new();
    w.fakes(&["pa", "pb"]);
    w.answer("pa", "ADD", A_RESULT, 0);
    w.answer("pb", "ADD", A_RESULT, 0);
    // Sibling folder plugins run after the inlined ones.
    w.conf(
        "10-sib.conflist",
        r#"{"cniVersion":"1.1.0","name":"sib","plugins":[{"type":"pa"}]}"#,
    );
    w.conf("sib/10-b.conf", r#"{"type":"pb","extra":1}"#);
    w.cnictl(&["add", "sib", "/run/netns/a"], &[]).ok();
    assert_eq!(w.labels(), ["ADD pa", "ADD pb"]);
    assert_eq!(w.calls()[1].stdin()["extra"], 1);
    assert_eq!(w.calls()[1].stdin()["name"], "sib");

    // A legacy single-plugin file is upconverted; the cache holds libcni's upconverted bytes.
    w.reset_calls();
    w.conf(
        "30-leg.conf",
        r#"{"cniVersion":"0.4.0","name":"leg","type":"pa","x":"<"}"#,
    );
    w.cnictl(&["add", "leg", "/run/netns/a"], &[]).ok();
    assert_eq!(w.labels(), ["ADD pa"]);
    let cid = container_id(std::path::Path::new("/run/netns/a"));
    let cached: Value =
        serde_json::from_slice(&fs::read(w.cache_file("leg", &cid, "eth0")).unwrap()).unwrap();
    let config = base64::engine::general_purpose::STANDARD
        .decode(cached["config"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        String::from_utf8(config).unwrap(),
        r#"{"cniVersion":"0.4.0","name":"leg","plugins":[{"cniVersion":"0.4.0","name":"leg","type":"pa","x":"\u003c"}]}"#
    );

    // --conf-file: a file outside NETCONFPATH; its name must match.
    w.reset_calls();
    let file = w.path("elsewhere.conflist");
    fs::write(
        &file,
        r#"{"cniVersion":"1.0.0","name":"else","plugins":[{"type":"pb"}]}"#,
    )
    .unwrap();
    let f = file.to_str().unwrap();
    w.cnictl(&["--conf-file", f, "add", "else", "/run/netns/b"], &[])
        .ok();
    assert_eq!(w.labels(), ["ADD pb"]);
    let run = w.cnictl(&["--conf-file", f, "add", "sib", "/run/netns/b"], &[]);
    run.failed(1);
    assert!(
        run.stderr
            .contains("defines network \"else\", not \"sib\" (code 7)"),
        "{}",
        run.stderr
    );
}

#[test]
fn environment_and_command_line_errors() {
    let w = chain_world();
    let run = w.cnictl(&["add", "nosuch", "/run/netns/a"], &[]);
    run.failed(1);
    assert!(
        run.stderr
            .contains("no net configuration with name \"nosuch\""),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("(code 7)"), "{}", run.stderr);

    let run = w.cnictl(&["add", "chain", "/run/netns/a"], &[("CNI_PATH", "")]);
    run.failed(1);
    assert!(
        run.stderr.contains("CNI_PATH is not set") && run.stderr.contains("(code 4)"),
        "{}",
        run.stderr
    );

    let run = w.cnictl(&["add", "chain", "/run/netns/a"], &[("CNI_ARGS", "A=b=c")]);
    run.failed(1);
    assert!(run.stderr.contains("(code 4)"), "{}", run.stderr);

    let run = w.cnictl(&["add", "chain", "/run/netns/a"], &[("CAP_ARGS", "{")]);
    run.failed(1);
    assert!(
        run.stderr.contains("CAP_ARGS is not valid JSON") && run.stderr.contains("(code 6)"),
        "{}",
        run.stderr
    );

    // cnitool semantics: CNI_IFNAME set but empty is an (invalid) interface name.
    let run = w.cnictl(&["add", "chain", "/run/netns/a"], &[("CNI_IFNAME", "")]);
    run.failed(1);
    assert!(
        run.stderr.contains("interface name is empty (code 4)"),
        "{}",
        run.stderr
    );

    let run = w.cnictl(
        &["--container-id", "bad id", "del", "chain", "/run/netns/a"],
        &[],
    );
    run.failed(1);
    assert!(
        run.stderr
            .contains("invalid characters in containerID: bad id (code 4)"),
        "{}",
        run.stderr
    );
    let run = w.cnictl(&["--container-id", "", "del", "chain", "/run/netns/a"], &[]);
    run.failed(1);
    assert!(
        run.stderr.contains("missing containerID (code 3)"),
        "{}",
        run.stderr
    );
    assert!(w.calls().is_empty(), "nothing ran");

    let run = w.cnictl_raw(&[], &[]);
    run.failed(2);
    assert!(run.stderr.contains("Usage: cnictl"), "{}", run.stderr);
    let run = w.cnictl_raw(&["frob".into()], &[]);
    run.failed(2);
    assert!(
        run.stderr.contains("unknown command \"frob\""),
        "{}",
        run.stderr
    );
    let run = w.cnictl_raw(&["add".into(), "chain".into()], &[]);
    run.failed(2);
    let run = w.cnictl_raw(&["--help".into()], &[]);
    run.ok();
    for cmd in ["add", "check", "del", "gc", "status", "validate"] {
        assert!(
            run.stdout.contains(&format!("\n  {cmd} ")),
            "{cmd}: {}",
            run.stdout
        );
    }
    let run = w.cnictl_raw(&["add".into(), "--help".into()], &[]);
    run.ok();
    assert!(run.stdout.contains("--no-cleanup"), "{}", run.stdout);
}

#[test]
fn plan_takes_one_cidr_per_family_repeated_or_comma_separated() {
    let w = World::new();
    let run = w.cnictl(
        &[
            "plan",
            "--nodes",
            "250",
            "--max-pods",
            "110",
            "--vnet",
            "10.240.0.0/16,fd00:240::/64",
            "--pod-cidr",
            "10.244.0.0/16",
            "--pod-cidr",
            "fd00:10:244::/56",
            "--model",
            "kubenet",
            "--json",
        ],
        &[],
    );
    assert_ne!(run.code, 0, "250 nodes do not fit: {}", run.stdout);
    let plan: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(plan[0]["maxNodes"], 199, "one route per node and family");
    assert_eq!(plan[0]["families"][1]["family"], "IPv6");
    let bad = w.cnictl(
        &[
            "plan",
            "--nodes",
            "1",
            "--max-pods",
            "1",
            "--vnet",
            "10.240.0.0/16",
            "--pod-cidr",
            "10.244.0.0/16,10.245.0.0/16",
        ],
        &[],
    );
    assert!(
        bad.stderr.contains("--pod-cidr: two IPv4 CIDRs"),
        "{}",
        bad.stderr
    );
}
