//! The kubenet cluster the bridge and portmap tests build: the [`World`], one runtime
//! (cnictl, private conf/cache/plugin dirs) per node, a pod CIDR slice per node, and the
//! per-node routes AKS's route table would hold, on every node and on the VM of the VNet.
//! Masquerade exempts the cluster's pod CIDR only, as kubenet does: pods see pod addresses,
//! the VM and the internet see the node's.

use std::path::PathBuf;

use crate::netns::Netns;
use crate::runtime::Runtime;
use crate::topology::World;
use serde_json::{json, Value};

/// The network name.
pub const NET: &str = "kube";

/// A kubenet cluster.
#[derive(Debug)]
pub struct Kubenet {
    /// The simulated network.
    pub world: World,
    /// One runtime per node.
    pub rt: Vec<Runtime>,
    /// One host-local data dir per node.
    pub data: Vec<tempfile::TempDir>,
}

/// The pod subnet of node `i`.
pub fn slice(i: usize) -> String {
    format!("10.244.{}.0/24", i + 1)
}

/// The IPv6 pod subnet of node `i` (dual-stack clusters).
pub fn slice6(i: usize) -> String {
    format!("fd00:10:244:{}::/64", i + 1)
}

/// The gateway of node `i`.
pub fn gateway(i: usize) -> String {
    format!("10.244.{}.1", i + 1)
}

/// The conflist of node `i` (bridge + portmap), `extra` merged into the bridge object.
pub fn conflist(i: usize, data: &std::path::Path, extra: Value) -> Value {
    conflist_of(i, data, extra, false)
}

/// [`conflist`], dual stack with `dual`: a range set and a default route per family, both
/// pod CIDRs kept unmasqueraded.
fn conflist_of(i: usize, data: &std::path::Path, extra: Value, dual: bool) -> Value {
    let mut bridge = json!({"type":"bridge","bridge":"cbr0","isGateway":true,"hairpinMode":true,"mtu":1460,
        "ipMasq":true,"nonMasqueradeCIDRs":["10.244.0.0/16"],
        "ipam":{"type":"host-local","dataDir":data,"ranges":[[{"subnet":slice(i)}]],"routes":[{"dst":"0.0.0.0/0"}]}});
    if dual {
        bridge["nonMasqueradeCIDRs"] = json!(["10.244.0.0/16", "fd00:10:244::/56"]);
        bridge["ipam"]["ranges"] = json!([[{"subnet": slice(i)}], [{"subnet": slice6(i)}]]);
        bridge["ipam"]["routes"] = json!([{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]);
    }
    for (k, v) in extra.as_object().expect("kubenet test cluster") {
        bridge[k] = v.clone();
    }
    json!({"cniVersion":"1.1.0","name":NET,"plugins":[bridge,{"type":"portmap","capabilities":{"portMappings":true}}]})
}

impl Kubenet {
    /// A cluster of `nodes` nodes.
    pub fn new(nodes: usize) -> Kubenet {
        Self::with(nodes, json!({}))
    }

    /// A cluster whose bridge objects get the keys of `extra`.
    pub fn with(nodes: usize, extra: Value) -> Kubenet {
        Self::build(nodes, extra, false)
    }

    /// A dual-stack cluster: each node has an IPv4 and an IPv6 pod subnet, and every host of
    /// the VNet routes the nodes' subnets of both families to their VNet address of that
    /// family.
    pub fn dual_stack(nodes: usize) -> Kubenet {
        Self::build(nodes, json!({}), true)
    }

    fn build(nodes: usize, extra: Value, dual: bool) -> Kubenet {
        let world = World::new(nodes);
        let mut rt = Vec::new();
        let mut data = Vec::new();
        for (i, n) in world.nodes.iter().enumerate() {
            let d = tempfile::tempdir().expect("kubenet test cluster");
            let r = Runtime::new(&n.ns, &["bridge", "host-local", "portmap", "loopback"]);
            r.write_conflist("10-kube", &conflist_of(i, d.path(), extra.clone(), dual));
            for (j, m) in world.nodes.iter().enumerate() {
                if i != j {
                    n.ns.ip(&["route", "add", &slice(j), "via", &m.ip.to_string()]);
                    if dual {
                        n.ns.ip(&["-6", "route", "add", &slice6(j), "via", &m.ip6.to_string()]);
                    }
                }
            }
            world
                .peer
                .ip(&["route", "add", &slice(i), "via", &n.ip.to_string()]);
            if dual {
                world
                    .peer
                    .ip(&["-6", "route", "add", &slice6(i), "via", &n.ip6.to_string()]);
            }
            rt.push(r);
            data.push(d);
        }
        Kubenet { world, rt, data }
    }

    /// The namespace of node `i`.
    pub fn node(&self, i: usize) -> &Netns {
        &self.world.nodes[i].ns
    }

    /// Attaches a new pod on node `i`; returns it and its IPv4 address.
    pub fn pod(&self, i: usize, label: &str) -> (Netns, String, Value) {
        self.pod_with(i, label, &[])
    }

    /// [`Kubenet::pod`] with extra runtime environment (`CAP_ARGS`).
    pub fn pod_with(&self, i: usize, label: &str, env: &[(&str, &str)]) -> (Netns, String, Value) {
        let pod = Netns::new(label);
        let r = self.rt[i].add_with(NET, &pod, env);
        let ip = crate::runtime::pod_ip(&r);
        (pod, ip, r)
    }

    /// The lease files of node `i` (everything but `lock`, `last_reserved_ip.*` and the index).
    pub fn leases(&self, i: usize) -> Vec<String> {
        let dir: PathBuf = self.data[i].path().join(NET);
        let Ok(rd) = std::fs::read_dir(dir) else {
            return vec![];
        };
        rd.map(|e| {
            e.expect("kubenet test cluster")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|n| n != "lock" && !n.starts_with("last_reserved_ip") && !n.starts_with('.'))
        .collect()
    }

    /// `nft -j list set` of a set in our table on node `i`: the element addresses.
    pub fn set_elements(&self, i: usize, set: &str) -> Vec<String> {
        let ok = self
            .node(i)
            .try_exec(&["nft", "list", "table", "inet", "ferro_cni"]);
        if !ok {
            return vec![];
        }
        let out = self
            .node(i)
            .exec(&["nft", "-j", "list", "set", "inet", "ferro_cni", set]);
        let v: Value = serde_json::from_str(&out).expect("kubenet test cluster");
        let mut found = Vec::new();
        for item in v["nftables"].as_array().expect("kubenet test cluster") {
            if let Some(elems) = item["set"]["elem"].as_array() {
                for e in elems {
                    let s = e.get("elem").map(|x| x["val"].clone()).unwrap_or(e.clone());
                    found.push(
                        s.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| s.to_string()),
                    );
                }
            }
        }
        found
    }

    /// Links of node `i` whose name starts with `veth`.
    pub fn host_veths(&self, i: usize) -> Vec<String> {
        self.node(i)
            .ip_json(&["link"])
            .as_array()
            .expect("kubenet test cluster")
            .iter()
            .filter_map(|l| l["ifname"].as_str().map(str::to_string))
            .filter(|n| n.starts_with("veth"))
            .collect()
    }
}
