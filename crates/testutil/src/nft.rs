//! Helpers for the nftables root tests (the codec's and the firewall model's): a private
//! network namespace per test, and the `nft` command-line tool run inside it to verify what
//! the code built. The table inspected is `inet ferro_cni`.

use std::process::Command;

use nix::sched::{unshare, CloneFlags};
use serde_json::Value;

pub use crate::netns::sh;

/// Runs `f` on a fresh thread that unshared its network namespace (`lo` up). Child processes
/// spawned from that thread (`nft`, `conntrack`, `ip`) run in the same namespace; the
/// namespace disappears with the thread, so nothing needs cleaning up and the root
/// namespace's firewall is never touched.
pub fn in_netns<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    crate::require_root();
    std::thread::scope(|s| {
        s.spawn(|| {
            unshare(CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET)");
            sh(&["ip", "link", "set", "lo", "up"]);
            f()
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    })
}

/// Runs `nft <args>`.
pub fn nft(args: &[&str]) -> String {
    let mut a = vec!["nft"];
    a.extend_from_slice(args);
    sh(&a)
}

/// Feeds a ruleset to `nft -f -`.
pub fn nft_file(text: &str) {
    use std::io::Write;
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("nft");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("nft");
    assert!(
        out.status.success(),
        "nft -f failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `nft list table inet ferro_cni`, or "" when the table does not exist.
pub fn listing() -> String {
    let out = Command::new("nft")
        .args(["list", "table", "inet", "ferro_cni"])
        .output()
        .expect("nft");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `nft -j list table inet ferro_cni`, as the array of `nftables` objects (empty when the
/// table does not exist).
pub fn json() -> Vec<Value> {
    let out = Command::new("nft")
        .args(["-j", "list", "table", "inet", "ferro_cni"])
        .output()
        .expect("nft");
    if !out.status.success() {
        return Vec::new();
    }
    let v: Value = serde_json::from_slice(&out.stdout).expect("nft -j output is JSON");
    v["nftables"].as_array().cloned().unwrap_or_default()
}

/// The rules of `chain`, as nft's JSON `rule` objects.
pub fn rules(chain: &str) -> Vec<Value> {
    json()
        .into_iter()
        .filter_map(|o| o.get("rule").cloned())
        .filter(|r| r["chain"] == chain)
        .collect()
}

/// The chain names of the table.
pub fn chains() -> Vec<String> {
    json()
        .into_iter()
        .filter_map(|o| {
            o.get("chain")
                .and_then(|c| c["name"].as_str())
                .map(String::from)
        })
        .collect()
}

/// The `elem` array of a set or map (empty if missing).
pub fn elems(set: &str) -> Vec<Value> {
    json()
        .into_iter()
        .filter_map(|o| o.get("set").or_else(|| o.get("map")).cloned())
        .find(|s| s["name"] == set)
        .and_then(|s| s.get("elem").and_then(|e| e.as_array().cloned()))
        .unwrap_or_default()
}

/// Set elements as (value, comment) pairs in nft's rendering: `"10.244.0.5"` or, for
/// concatenations and maps, the JSON of the key.
pub fn elem_comments(set: &str) -> Vec<(String, Option<String>)> {
    elems(set)
        .into_iter()
        .map(|e| match e.get("elem") {
            Some(inner) => (
                inner["val"].to_string().trim_matches('"').to_string(),
                inner["comment"].as_str().map(String::from),
            ),
            None => (e.to_string().trim_matches('"').to_string(), None),
        })
        .collect()
}

/// The handle of the first rule of `chain` whose JSON contains `needle`.
pub fn rule_handle(chain: &str, needle: &str) -> u64 {
    rules(chain)
        .into_iter()
        .find(|r| r["expr"].to_string().contains(needle))
        .and_then(|r| r["handle"].as_u64())
        .unwrap_or_else(|| panic!("no rule with {needle} in {chain}:\n{}", listing()))
}

fn json_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Verdict-map entries as (key in nft syntax `tcp . 8080`, comment, jump target).
pub fn map_entries(map: &str) -> Vec<(String, Option<String>, String)> {
    elems(map)
        .into_iter()
        .map(|pair| {
            let (val, comment) = match pair[0].get("elem") {
                Some(e) => (e["val"].clone(), e["comment"].as_str().map(String::from)),
                None => (pair[0].clone(), None),
            };
            let key = match val.get("concat").and_then(|c| c.as_array()) {
                Some(parts) => parts.iter().map(json_text).collect::<Vec<_>>().join(" . "),
                None => json_text(&val),
            };
            let target = pair[1]["jump"]["target"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            (key, comment, target)
        })
        .collect()
}
