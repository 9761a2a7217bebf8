//! cnictl and cnitool 1.1.2 (real libcni) on the same result cache: an attachment made by one
//! is found and removed by the other.
//!
//! cnitool's cache directory is fixed at `/var/lib/cni`, so every scenario runs in a private
//! mount namespace (`unshare --mount --propagation private`) with a tmpfs over `/var/lib/cni`
//! (or over `/var/lib`, with `cni` created inside, when the host has no `/var/lib/cni`): the
//! machine's directory is never read or written, which each test checks afterwards.

// Helpers outside #[test] functions panic on failed setup, like the tests themselves.
#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::{cnitool, container_id, World};
use serde_json::{json, Value};

/// The host's `/var/lib/cni/results` listing (None when absent), to prove it is untouched.
fn host_cache_state() -> Option<Vec<String>> {
    let rd = fs::read_dir("/var/lib/cni/results").ok()?;
    let mut v: Vec<String> = rd
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    Some(v)
}

/// Runs `script` (sh, `set -e`) in a private mount namespace with an empty tmpfs at
/// `/var/lib/cni`. `$CNICTL`, `$CNITOOL` and `$OUT` (a directory of the world) are set.
fn in_private_cache(w: &World, script: &str, env: &[(&str, &str)]) {
    ferro_testutil::require_root();
    let cnitool = cnitool();
    assert!(
        Path::new(&cnitool).is_file(),
        "cnitool 1.1.2 is expected at {cnitool}"
    );
    let before = host_cache_state();
    fs::create_dir_all(w.path("out")).unwrap();
    let full = format!(
        "set -eu\n\
         if [ -d /var/lib/cni ]; then mount -t tmpfs tmpfs /var/lib/cni; \
         else mount -t tmpfs tmpfs /var/lib && mkdir /var/lib/cni; fi\n\
         {script}"
    );
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &full])
        .env_clear()
        .envs(w.base_env())
        .envs(env.iter().copied())
        .env("CNICTL", env!("CARGO_BIN_EXE_cnictl"))
        .env("CNITOOL", &cnitool)
        .env("OUT", w.path("out"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "scenario failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        host_cache_state(),
        before,
        "the host's /var/lib/cni must not change"
    );
}

fn read(w: &World, rel: &str) -> String {
    fs::read_to_string(w.path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn json_file(w: &World, rel: &str) -> Value {
    serde_json::from_str(&read(w, rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// What the fake plugin prints, already in the layout Go's types write (so libcni's
/// re-encoding changes nothing and the two caches can be compared byte for byte).
fn fake_result(version: &str) -> Value {
    let ip = if version == "0.4.0" {
        json!({"version": "4", "interface": 0, "address": "10.44.0.7/24", "gateway": "10.44.0.1"})
    } else {
        json!({"interface": 0, "address": "10.44.0.7/24", "gateway": "10.44.0.1"})
    };
    json!({
        "cniVersion": version,
        "interfaces": [{"name": "eth0", "mac": "0a:58:0a:2c:00:07", "sandbox": "/run/netns/pod"}],
        "ips": [ip],
        "routes": [{"dst": "0.0.0.0/0", "gw": "10.44.0.1"}],
        "dns": {}
    })
}

const SCENARIO: &str = r#"
NS="$OUT/netns-pod"
$CNITOOL add interop "$NS" > "$OUT/1-cnitool-add.json"
cp /var/lib/cni/results/* "$OUT/1-cnitool-cache"
$CNICTL del interop "$NS"
ls -A /var/lib/cni/results > "$OUT/2-after-cnictl-del"
$CNICTL add interop "$NS" > "$OUT/3-cnictl-add.json"
cp /var/lib/cni/results/* "$OUT/3-cnictl-cache"
ls -A /var/lib/cni/results > "$OUT/3-cache-files"
$CNITOOL del interop "$NS"
ls -A /var/lib/cni/results > "$OUT/4-after-cnitool-del"
"#;

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn cnitool_and_cnictl_find_each_others_cache_with_a_fake_plugin() {
    for version in ["0.4.0", "1.0.0"] {
        let w = World::new();
        w.fakes(&["pa"]);
        w.conf(
            "10-interop.conflist",
            &format!(
                r#"{{"cniVersion":"{version}","name":"interop","plugins":[{{"type":"pa","capabilities":{{"portMappings":true}},"x":"<&>"}}]}}"#
            ),
        );
        let result = fake_result(version);
        w.answer("pa", "ADD", &result.to_string(), 0);
        in_private_cache(
            &w,
            SCENARIO,
            &[
                ("CNI_ARGS", "K8S_POD_NAME=web;IgnoreUnknown=1"),
                (
                    "CAP_ARGS",
                    r#"{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}],"bandwidth":{}}"#,
                ),
            ],
        );
        let netns = w.path("out/netns-pod");
        let cid = container_id(&netns);
        let calls = w.calls();
        assert_eq!(
            w.labels(),
            ["ADD pa", "DEL pa", "ADD pa", "DEL pa"],
            "{version}"
        );
        let (tool_add, ctl_del, ctl_add, tool_del) = (&calls[0], &calls[1], &calls[2], &calls[3]);

        // Same attachment identity and environment from both tools.
        assert_eq!(tool_add.var("CNI_CONTAINERID"), cid);
        assert_eq!(tool_add.env, ctl_add.env, "{version}: ADD environment");
        assert_eq!(tool_del.env, ctl_del.env, "{version}: DEL environment");
        // ADD stdin: byte for byte what libcni sends.
        assert_eq!(
            ctl_add.stdin_raw, tool_add.stdin_raw,
            "{version}: ADD stdin bytes"
        );
        // DEL after the other tool's ADD: the cached result arrives as prevResult (libcni
        // writes it in Go struct field order, cnictl sorted: equal as JSON).
        assert_eq!(
            ctl_del.stdin()["prevResult"],
            result,
            "{version}: cnictl found cnitool's cache"
        );
        assert_eq!(
            tool_del.stdin()["prevResult"],
            result,
            "{version}: cnitool found cnictl's cache"
        );
        assert_eq!(ctl_del.stdin(), tool_del.stdin(), "{version}: DEL stdin");

        // Each DEL removed the other tool's cache file.
        assert_eq!(read(&w, "out/2-after-cnictl-del"), "", "{version}");
        assert_eq!(read(&w, "out/4-after-cnitool-del"), "", "{version}");
        assert_eq!(
            read(&w, "out/3-cache-files"),
            format!("interop-{cid}-eth0\n")
        );

        // The cache files are byte-identical but for libcni 1.2's netns field.
        let ours = read(&w, "out/3-cnictl-cache");
        let theirs = read(&w, "out/1-cnitool-cache");
        let netns_field = format!(r#","netns":"{}""#, netns.display());
        assert!(ours.contains(&netns_field), "{ours}");
        assert_eq!(
            ours.replace(&netns_field, ""),
            theirs,
            "{version}: cache bytes"
        );

        // Both print the same result.
        assert_eq!(
            json_file(&w, "out/3-cnictl-add.json"),
            json_file(&w, "out/1-cnitool-add.json")
        );
    }
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn a_host_local_lease_is_released_across_the_two_tools() {
    let w = World::new();
    let data = w.path("ipam");
    w.conf(
        "10-hl.conflist",
        &format!(
            r#"{{"cniVersion":"1.0.0","name":"hlnet","plugins":[{{"type":"host-local","ipam":{{"type":"host-local","subnet":"10.123.0.0/24","dataDir":"{}"}}}}]}}"#,
            data.display()
        ),
    );
    in_private_cache(
        &w,
        r#"
NS="$OUT/netns-hl"
leases() { ls -A "$OUT/../ipam/hlnet" | grep '^10\.' || true; }
$CNITOOL add hlnet "$NS" > "$OUT/hl1.json"
leases > "$OUT/hl1.leases"
$CNICTL del hlnet "$NS"
leases > "$OUT/hl2.leases"
ls -A /var/lib/cni/results > "$OUT/hl2.cache"
$CNICTL add hlnet "$NS" > "$OUT/hl3.json"
leases > "$OUT/hl3.leases"
ls -A /var/lib/cni/results > "$OUT/hl3.cache"
for f in "$OUT"/../ipam/hlnet/10.*; do cat "$f"; echo; done > "$OUT/hl3.owner"
$CNITOOL del hlnet "$NS"
leases > "$OUT/hl4.leases"
ls -A /var/lib/cni/results > "$OUT/hl4.cache"
"#,
        &[("CNI_PATH", "/usr/lib/cni")],
    );
    let cid = container_id(&w.path("out/netns-hl"));
    let first = json_file(&w, "out/hl1.json");
    assert_eq!(first["ips"][0]["address"], "10.123.0.2/24");
    assert_eq!(
        read(&w, "out/hl1.leases"),
        "10.123.0.2\n",
        "cnitool's ADD leased .2"
    );
    assert_eq!(
        read(&w, "out/hl2.leases"),
        "",
        "cnictl's DEL released cnitool's lease"
    );
    assert_eq!(
        read(&w, "out/hl2.cache"),
        "",
        "and removed cnitool's cache file"
    );

    let second = json_file(&w, "out/hl3.json");
    let addr = second["ips"][0]["address"].as_str().unwrap().to_string();
    let ip = addr.split('/').next().unwrap();
    assert_eq!(
        read(&w, "out/hl3.leases"),
        format!("{ip}\n"),
        "cnictl's ADD leased {ip}"
    );
    assert!(
        read(&w, "out/hl3.owner").starts_with(&cid),
        "the lease belongs to {cid}"
    );
    assert_eq!(read(&w, "out/hl3.cache"), format!("hlnet-{cid}-eth0\n"));
    assert_eq!(
        read(&w, "out/hl4.leases"),
        "",
        "cnitool's DEL released cnictl's lease"
    );
    assert_eq!(
        read(&w, "out/hl4.cache"),
        "",
        "and removed cnictl's cache file"
    );
}
