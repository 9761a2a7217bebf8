//! First light: one node, two pods, static IPAM (reference), no masquerade.
#![allow(clippy::unwrap_used)]

use ferro_testutil::netns::Netns;
use ferro_testutil::topology::{ping, World};
use ferro_testutil::{require_root, run_plugin_in, PluginDir};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_bridge");

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn two_pods_on_one_bridge_ping_each_other_and_the_gateway() {
    require_root();
    let world = World::new(1);
    let node = &world.nodes[0];
    let dir = PluginDir::new(&["static"]);
    let mut pods = Vec::new();
    for (i, ip) in ["10.244.1.5", "10.244.1.6"].iter().enumerate() {
        let pod = Netns::new(&format!("pod{i}"));
        let conf = json!({"cniVersion":"1.0.0","name":"kube","type":"bridge","bridge":"cbr0","isGateway":true,"mtu":1400,"hairpinMode":true,
            "ipam":{"type":"static","addresses":[{"address":format!("{ip}/24"),"gateway":"10.244.1.1"}],"routes":[{"dst":"0.0.0.0/0"}]}});
        let cid = format!("ctr{i}");
        let path = pod.path().display().to_string();
        let env = [
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", cid.as_str()),
            ("CNI_NETNS", path.as_str()),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", &dir.path_str()),
        ];
        let r = run_plugin_in(BIN, &env, &conf.to_string(), Some(&node.ns.path())).ok();
        assert_eq!(r["interfaces"][0]["name"], "cbr0");
        assert_eq!(r["ips"][0]["interface"], 2);
        pods.push((pod, conf, cid, r));
    }
    assert!(ping(&pods[0].0, "10.244.1.1"), "pod reaches its gateway");
    assert!(ping(&pods[0].0, "10.244.1.6"), "pod reaches the other pod");
    assert!(ping(&pods[1].0, "10.244.1.5"));
    let mtu = node.ns.ip_json(&["link", "show", "cbr0"])[0]["mtu"].as_u64();
    assert_eq!(mtu, Some(1400));
    for (pod, conf, cid, added) in &pods {
        let path = pod.path().display().to_string();
        // CHECK against what ADD answered, then DEL twice (the second finds nothing)
        let mut checked = conf.clone();
        checked["prevResult"] = added.clone();
        for (cmd, conf) in [("CHECK", &checked), ("DEL", conf), ("DEL", conf)] {
            let env = [
                ("CNI_COMMAND", cmd),
                ("CNI_CONTAINERID", cid.as_str()),
                ("CNI_NETNS", path.as_str()),
                ("CNI_IFNAME", "eth0"),
                ("CNI_PATH", &dir.path_str()),
            ];
            run_plugin_in(BIN, &env, &conf.to_string(), Some(&node.ns.path())).ok();
        }
    }
    let links = node.ns.ip_json(&["link", "show", "master", "cbr0"]);
    assert_eq!(
        links.as_array().unwrap().len(),
        0,
        "no port left on the bridge: {links}"
    );
}
