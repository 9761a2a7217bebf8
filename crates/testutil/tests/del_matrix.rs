//! The DEL matrix for every plugin of the suite (rule P11 of
//! [docs/conformance.md](../../../docs/conformance.md)): DEL must exit 0 with nothing on
//! stdout when there is nothing to delete, with or without `CNI_NETNS` (empty, or a path that
//! no longer exists), with or without `prevResult`, and when called again. Runs inside a
//! fresh node namespace.
#![allow(clippy::unwrap_used)]

use ferro_testutil::netns::Netns;
use ferro_testutil::{require_root, run_plugin_in, workspace_bin, PluginDir};
use serde_json::{json, Value};

fn configs(data: &std::path::Path, list: &std::path::Path) -> Vec<(&'static str, Value)> {
    let ipam = json!({"type":"host-local","dataDir":data,"ranges":[[{"subnet":"10.55.0.0/24"}]]});
    vec![
        ("host-local", json!({"type":"host-local","ipam":ipam})),
        ("loopback", json!({"type":"loopback"})),
        (
            "bridge",
            json!({"type":"bridge","bridge":"cbr5","isGateway":true,"ipMasq":true,"ipam":ipam}),
        ),
        (
            "flat",
            json!({"type":"flat","vnetCIDRs":["10.55.0.0/16"],"ipam":ipam}),
        ),
        (
            "overlay",
            json!({"type":"overlay","podCIDR":"10.56.0.0/16","nodeSubnet":"10.56.1.0/24","nodeList":list,"ipam":ipam}),
        ),
        (
            "portmap",
            json!({"type":"portmap","capabilities":{"portMappings":true}}),
        ),
    ]
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn del_with_nothing_to_delete_always_succeeds() {
    require_root();
    let node = Netns::new("delmx");
    let pod = Netns::new("delmx-pod");
    let data = tempfile::tempdir().unwrap();
    let list = data.path().join("nodes.json");
    std::fs::write(&list, r#"{"nodes":[]}"#).unwrap();
    let dir = PluginDir::new(&["host-local"]);
    let prev = json!({"cniVersion":"1.1.0","interfaces":[{"name":"eth0","sandbox":"/x"}],"ips":[{"address":"10.55.0.9/24","interface":0}]});
    let pod_path = pod.path().display().to_string();
    for (plugin, obj) in configs(data.path(), &list) {
        for netns in [pod_path.as_str(), "", "/run/netns/ferro-gone-long-ago"] {
            for with_prev in [false, true] {
                for version in ["0.3.1", "0.4.0", "1.0.0", "1.1.0"] {
                    let mut conf = obj.clone();
                    conf["cniVersion"] = json!(version);
                    conf["name"] = json!("delmx");
                    if with_prev {
                        conf["prevResult"] = prev.clone();
                    }
                    let env = [
                        ("CNI_COMMAND", "DEL"),
                        ("CNI_CONTAINERID", "never-added"),
                        ("CNI_NETNS", netns),
                        ("CNI_IFNAME", "eth0"),
                        ("CNI_PATH", &dir.path_str()),
                    ];
                    for _ in 0..2 {
                        let out = run_plugin_in(
                            workspace_bin(plugin),
                            &env,
                            &conf.to_string(),
                            Some(&node.path()),
                        );
                        assert_eq!(out.code, 0, "{plugin} DEL (netns {netns:?}, prevResult {with_prev}, {version}) failed: {}{}", out.stdout, out.stderr);
                        assert!(
                            out.stdout.is_empty(),
                            "{plugin}: DEL prints nothing on success"
                        );
                    }
                }
            }
        }
    }
    // nothing was created by all those DELs
    assert!(node
        .ip_json(&["link", "show", "type", "bridge"])
        .as_array()
        .unwrap()
        .is_empty());
}
