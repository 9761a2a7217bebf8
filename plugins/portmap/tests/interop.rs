//! Chaining with the reference plugins (rule P20 of
//! [docs/conformance.md](../../../docs/conformance.md)), through cnictl (our libcni equivalent):
//! our bridge with the reference portmap, and the reference bridge with ours. The host port must
//! answer from another host either way, and DEL must leave nothing.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;

use ferro_testutil::netns::Netns;
use ferro_testutil::probe::{tcp_source, ProbeServer};
use ferro_testutil::runtime::{pod_ip, Runtime};
use ferro_testutil::topology::{World, INTERNET};
use ferro_testutil::{require_root, PluginDir};
use serde_json::json;

fn list(data: &std::path::Path) -> serde_json::Value {
    // 1.0.0: the reference plugins here (v1.1.1) stop there
    json!({"cniVersion":"1.0.0","name":"mix","plugins":[
        {"type":"bridge","bridge":"cbr7","isGateway":true,"ipMasq":true,
         "ipam":{"type":"host-local","dataDir":data,"ranges":[[{"subnet":"10.66.0.0/24"}]],"routes":[{"dst":"0.0.0.0/0"}]}},
        {"type":"portmap","capabilities":{"portMappings":true}}]})
}

/// `check`: run CHECK too. The reference portmap v1.1.1's CHECK fails on IPv4-only pods (it
/// looks for an IPv6 DNAT chain it never created), so it is skipped when that plugin is in the
/// chain.
fn host_port_round_trip(plugins: PluginDir, check: bool) {
    let world = World::new(1);
    let node = &world.nodes[0];
    let data = tempfile::tempdir().unwrap();
    let rt = Runtime::with_plugins(&node.ns, plugins);
    rt.write_conflist("10-mix", &list(data.path()));
    let pod = Netns::new("mix");
    let caps =
        json!({"portMappings":[{"hostPort":8095,"containerPort":80,"protocol":"tcp"}]}).to_string();
    let r = rt.add_with("mix", &pod, &[("CAP_ARGS", caps.as_str())]);
    let ip = pod_ip(&r);
    let _srv = ProbeServer::start(&pod.path(), SocketAddr::new(ip.parse().unwrap(), 80));
    let seen = tcp_source(&world.internet.path(), SocketAddr::new(node.ip, 8095));
    assert_eq!(
        seen,
        Some(INTERNET.parse().unwrap()),
        "the host port answers from another host"
    );
    if check {
        let chk = rt.check("mix", &pod, &[("CAP_ARGS", caps.as_str())]);
        assert_eq!(chk.code, 0, "{}", chk.stderr);
    }
    rt.del_with("mix", &pod, &[("CAP_ARGS", caps.as_str())]);
    assert_eq!(
        tcp_source(&world.internet.path(), SocketAddr::new(node.ip, 8095)),
        None,
        "unmapped after DEL"
    );
    let leases: Vec<_> = std::fs::read_dir(data.path().join("mix"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with("10."))
        .collect();
    assert!(leases.is_empty(), "{leases:?}");
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn our_bridge_with_the_reference_portmap() {
    require_root();
    host_port_round_trip(
        PluginDir::mixed(&["bridge", "host-local"], &["portmap"]),
        false,
    );
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn the_reference_bridge_with_our_portmap() {
    require_root();
    host_port_round_trip(
        PluginDir::mixed(&["portmap"], &["bridge", "host-local"]),
        true,
    );
}
