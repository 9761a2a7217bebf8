//! cnictl's inputs: libcni's result cache files (written by cnictl, cnitool, containerd or
//! anything else sharing the cache directory) and network configuration lists.

use ferro_cnictl::cache::{convert_result, result_of, CacheEntry};
use ferro_cnictl::conflist::{parse_list, parse_plugin, upconvert};
use ferro_cnictl::{gojson, request};
use ferro_spec::{Attachment, CniError, Code};
use serde_json::{Map, Value};

use crate::check_error;

fn check_decode(e: &CniError) {
    assert_eq!(e.code, Code::Decode, "{e}");
    check_error(e);
}

/// Go's encoding of `v` must be JSON that reads back to a value written the same way.
fn go_stable(v: &Value) -> Value {
    let bytes = gojson::to_vec(v);
    let back: Value = serde_json::from_slice(&bytes).expect("gojson writes JSON");
    assert_eq!(gojson::to_vec(&back), bytes, "gojson output is not stable");
    back
}

/// Input: a cache file. Invariants: a `cniCacheV1` entry writes back to bytes that read back
/// to the same entry (numbers as Go's float64, once normalized) and writes the same bytes
/// again; the result of any cache file converts to every version or fails with a CNI error.
pub fn cache(data: &[u8]) {
    match CacheEntry::from_bytes(data) {
        Ok(e) => {
            let bytes = e.to_bytes();
            let e2 = CacheEntry::from_bytes(&bytes).expect("our own cache file reads back");
            assert_eq!(
                (
                    &e2.container_id,
                    &e2.config,
                    &e2.if_name,
                    &e2.network_name,
                    &e2.netns
                ),
                (
                    &e.container_id,
                    &e.config,
                    &e.if_name,
                    &e.network_name,
                    &e.netns
                )
            );
            assert_eq!(e2.cni_args, e.cni_args);
            assert_eq!(e2.to_bytes(), bytes, "cache file bytes not stable");
        }
        Err(e) => check_decode(&e),
    }
    let cached = match result_of(data) {
        Ok(v) => v,
        Err(e) => return check_decode(&e),
    };
    for &v in ferro_spec::version::ALL {
        match convert_result(&cached, v) {
            Ok(r) => {
                go_stable(&r);
            }
            Err(e) => check_error(&e),
        }
    }
}

/// Input: a configuration list (`*.conflist`), or a single plugin configuration (`*.conf`).
/// Invariants: a list that loads gives each plugin an ADD, GC and STATUS request whose bytes
/// (Go's encoding) are JSON carrying the list's name and version; a single configuration
/// that parses as a plugin upconverts to a list of that one plugin.
pub fn conflist(data: &[u8]) {
    match parse_list(data) {
        Ok(list) => {
            let caps: Map<String, Value> = serde_json::from_value(serde_json::json!({
                "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}],
                "ips": ["10.0.0.5"],
            }))
            .expect("an object");
            let valid = [Attachment {
                container_id: "c1".into(),
                ifname: "eth0".into(),
            }];
            for p in &list.plugins {
                for req in [
                    request::attach_request(p, &list.name, &list.cni_version, None, &caps),
                    request::gc_request(p, &list.name, &list.cni_version, &valid),
                    request::status_request(p, &list.name, &list.cni_version),
                ] {
                    let back = go_stable(&req);
                    assert_eq!(back["name"], list.name.as_str());
                    assert_eq!(back["cniVersion"], list.cni_version.as_str());
                    assert_eq!(request::encode(&req), gojson::to_vec(&req));
                }
            }
        }
        Err(e) => check_error(&e),
    }
    let Ok(single) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    if parse_plugin(&single).is_ok() && single.get("name").is_some_and(Value::is_string) {
        match upconvert(&single) {
            Ok(list) => assert_eq!(list.plugins.len(), 1),
            Err(e) => check_error(&e),
        }
    }
}
