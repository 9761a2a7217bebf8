//! What each plugin reads on stdin, built as libcni builds it (`buildOneConfig`,
//! `injectRuntimeConfig`, `GCNetworkList`, `GetStatusNetworkList`).
//!
//! Starting from the plugin object as written in the list:
//! - `name` and `cniVersion` are set to the list's;
//! - ADD, CHECK, DEL: `prevResult` is set when there is one (ADD: the previous plugin's
//!   result; CHECK and DEL: the cached result, converted to the list's version), otherwise
//!   any `prevResult` written in the file stays;
//! - ADD, CHECK, DEL: `runtimeConfig` is set to the capability arguments whose names the
//!   plugin declares with `"capabilities": {"<name>": true}`, only when that intersection is
//!   non-empty, and then it *replaces* a `runtimeConfig` written in the file;
//! - GC: `cni.dev/valid-attachments` and the legacy `cni.dev/attachments`, both the same list;
//! - every other key is passed verbatim, `capabilities` included.
//!
//! The bytes are Go's encoding of the result ([`crate::gojson`]).

use ferro_spec::Attachment;
use serde_json::{Map, Value};

use crate::conflist::PluginConf;
use crate::gojson;

/// The `runtimeConfig` libcni injects: capability arguments whose name the plugin enables.
pub fn runtime_config(plugin: &PluginConf, cap_args: &Map<String, Value>) -> Map<String, Value> {
    plugin
        .capabilities
        .iter()
        .filter(|(_, enabled)| **enabled)
        .filter_map(|(name, _)| cap_args.get(name).map(|v| (name.clone(), v.clone())))
        .collect()
}

fn base(plugin: &PluginConf, list_name: &str, cni_version: &str) -> Map<String, Value> {
    let mut m = plugin.conf.clone();
    m.insert("name".into(), Value::from(list_name));
    m.insert("cniVersion".into(), Value::from(cni_version));
    m
}

/// The request of ADD, CHECK or DEL for one plugin.
pub fn attach_request(
    plugin: &PluginConf,
    list_name: &str,
    cni_version: &str,
    prev_result: Option<&Value>,
    cap_args: &Map<String, Value>,
) -> Value {
    let mut m = base(plugin, list_name, cni_version);
    if let Some(prev) = prev_result {
        m.insert("prevResult".into(), prev.clone());
    }
    let rc = runtime_config(plugin, cap_args);
    if !rc.is_empty() {
        m.insert("runtimeConfig".into(), Value::Object(rc));
    }
    Value::Object(m)
}

/// The request of GC for one plugin: both attachment keys carry `valid`.
pub fn gc_request(
    plugin: &PluginConf,
    list_name: &str,
    cni_version: &str,
    valid: &[Attachment],
) -> Value {
    let mut m = base(plugin, list_name, cni_version);
    let list: Vec<Value> = valid
        .iter()
        .map(|a| {
            let mut o = Map::new();
            o.insert("containerID".into(), Value::from(a.container_id.as_str()));
            o.insert("ifname".into(), Value::from(a.ifname.as_str()));
            Value::Object(o)
        })
        .collect();
    m.insert(
        "cni.dev/valid-attachments".into(),
        Value::Array(list.clone()),
    );
    m.insert("cni.dev/attachments".into(), Value::Array(list));
    Value::Object(m)
}

/// The request of STATUS for one plugin (no runtime data at all).
pub fn status_request(plugin: &PluginConf, list_name: &str, cni_version: &str) -> Value {
    Value::Object(base(plugin, list_name, cni_version))
}

/// The stdin bytes for a request.
pub fn encode(request: &Value) -> Vec<u8> {
    gojson::to_vec(request)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conflist::parse_plugin;
    use serde_json::json;

    fn plugin(v: Value) -> PluginConf {
        parse_plugin(&v).unwrap()
    }

    fn caps() -> Map<String, Value> {
        json!({
            "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}],
            "bandwidth": {"ingressRate": 1000},
            "mac": "aa:bb:cc:dd:ee:ff"
        })
        .as_object()
        .cloned()
        .unwrap()
    }

    #[test]
    fn add_request_injects_name_version_and_capability_intersection() {
        // Golden bytes: sorted keys, `capabilities` passed through, `runtimeConfig` holding only
        // the enabled capabilities the runtime supplied (mac is disabled, dns not supplied),
        // replacing the one written in the file; the list's name and version win.
        let p = plugin(json!({
            "type": "portmap", "name": "ignored", "cniVersion": "0.3.1",
            "capabilities": {"portMappings": true, "bandwidth": true, "mac": false, "dns": true},
            "runtimeConfig": {"written": 1},
            "snat": true
        }));
        let req = attach_request(&p, "net", "1.1.0", None, &caps());
        assert_eq!(
            String::from_utf8(encode(&req)).unwrap(),
            r#"{"capabilities":{"bandwidth":true,"dns":true,"mac":false,"portMappings":true},"cniVersion":"1.1.0","name":"net","runtimeConfig":{"bandwidth":{"ingressRate":1000},"portMappings":[{"containerPort":80,"hostPort":8080,"protocol":"tcp"}]},"snat":true,"type":"portmap"}"#
        );
    }

    #[test]
    fn written_runtime_config_stays_when_nothing_matches() {
        let p = plugin(
            json!({"type": "x", "capabilities": {"ips": true}, "runtimeConfig": {"keep": 1}}),
        );
        let req = attach_request(&p, "net", "1.0.0", None, &caps());
        assert_eq!(req["runtimeConfig"], json!({"keep": 1}));
        // No capabilities at all: no runtimeConfig key is added.
        let p = plugin(json!({"type": "x"}));
        let req = attach_request(&p, "net", "1.0.0", None, &caps());
        assert!(req.get("runtimeConfig").is_none());
        assert!(req.get("prevResult").is_none());
        assert_eq!(
            String::from_utf8(encode(&req)).unwrap(),
            r#"{"cniVersion":"1.0.0","name":"net","type":"x"}"#
        );
    }

    #[test]
    fn prev_result_is_injected_verbatim_and_replaces_a_written_one() {
        let prev = json!({"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.2/24"}]});
        let p = plugin(json!({"type": "x", "prevResult": {"stale": true}}));
        let req = attach_request(&p, "net", "1.0.0", Some(&prev), &Map::new());
        assert_eq!(req["prevResult"], prev);
        // Without one, a prevResult written in the file stays (libcni only sets, never removes).
        let req = attach_request(&p, "net", "1.0.0", None, &Map::new());
        assert_eq!(req["prevResult"], json!({"stale": true}));
    }

    #[test]
    fn gc_request_carries_both_attachment_keys() {
        let p = plugin(json!({"type": "host-local", "capabilities": {"ips": true}}));
        let valid = vec![Attachment {
            container_id: "c1".into(),
            ifname: "eth0".into(),
        }];
        let req = gc_request(&p, "net", "1.1.0", &valid);
        assert_eq!(
            String::from_utf8(encode(&req)).unwrap(),
            r#"{"capabilities":{"ips":true},"cni.dev/attachments":[{"containerID":"c1","ifname":"eth0"}],"cni.dev/valid-attachments":[{"containerID":"c1","ifname":"eth0"}],"cniVersion":"1.1.0","name":"net","type":"host-local"}"#
        );
        // An empty valid set is sent as an explicit empty list.
        let req = gc_request(&p, "net", "1.1.0", &[]);
        assert_eq!(req["cni.dev/valid-attachments"], json!([]));
        assert_eq!(req["cni.dev/attachments"], json!([]));
    }

    #[test]
    fn status_request_has_only_name_and_version_injected() {
        let p = plugin(
            json!({"type": "bridge", "capabilities": {"portMappings": true}, "runtimeConfig": {"x": 1}}),
        );
        assert_eq!(
            status_request(&p, "net", "1.1.0"),
            json!({"type": "bridge", "capabilities": {"portMappings": true}, "runtimeConfig": {"x": 1}, "name": "net", "cniVersion": "1.1.0"})
        );
    }
}
