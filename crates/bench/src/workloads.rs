//! The benchmark's workloads as configuration lists, one per suite. Both suites get the same
//! list except where a path or a node's own address space must differ (`dataDir`, the flat
//! node's reserved range), and, for `flat`, the reference's closest L3 analogue.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use crate::request::ConfList;

/// Which plugins run: ours or the reference (Debian's containernetworking-plugins).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Suite {
    /// ferro-cni, built in release mode.
    Ours,
    /// The reference Go plugins in `/usr/lib/cni`.
    Ref,
}

impl Suite {
    /// Both, ours first.
    pub const BOTH: [Suite; 2] = [Suite::Ours, Suite::Ref];

    /// Short label for tables.
    pub fn label(self) -> &'static str {
        match self {
            Suite::Ours => "ours",
            Suite::Ref => "reference",
        }
    }

    /// Directory / name component.
    pub fn tag(self) -> &'static str {
        match self {
            Suite::Ours => "ours",
            Suite::Ref => "ref",
        }
    }

    /// Index of the suite's entry in per-suite arrays (`[ours, reference]`).
    pub fn index(self) -> usize {
        match self {
            Suite::Ours => 0,
            Suite::Ref => 1,
        }
    }

    /// Seed of the suite's container ids.
    pub fn seed(self) -> u64 {
        match self {
            Suite::Ours => 1,
            Suite::Ref => 2,
        }
    }
}

/// The sequential (ADD, DEL, cycle latency) workloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WorkloadId {
    /// host-local run directly, as the only plugin.
    HostLocal,
    /// The same with the `dataDir` on tmpfs (no disk behind the lease writes).
    HostLocalTmpfs,
    /// bridge + host-local with `ipMasq: true`.
    BridgeMasq,
    /// bridge + host-local, then portmap with one TCP hostPort.
    BridgePortmap,
    /// flat + host-local (reference analogue: ptp + host-local + ipMasq).
    Flat,
    /// overlay + host-local (ours only).
    Overlay,
}

impl WorkloadId {
    /// Every workload, in report order.
    pub const ALL: [WorkloadId; 6] = [
        WorkloadId::HostLocal,
        WorkloadId::HostLocalTmpfs,
        WorkloadId::BridgeMasq,
        WorkloadId::BridgePortmap,
        WorkloadId::Flat,
        WorkloadId::Overlay,
    ];

    /// Key used on the command line (`--only`) and in names.
    pub fn key(self) -> &'static str {
        match self {
            WorkloadId::HostLocal => "host-local",
            WorkloadId::HostLocalTmpfs => "host-local-tmpfs",
            WorkloadId::BridgeMasq => "bridge-masq",
            WorkloadId::BridgePortmap => "bridge-portmap",
            WorkloadId::Flat => "flat",
            WorkloadId::Overlay => "overlay",
        }
    }

    /// Title in the report.
    pub fn title(self) -> &'static str {
        match self {
            WorkloadId::HostLocal => "host-local alone",
            WorkloadId::HostLocalTmpfs => "host-local alone, dataDir on tmpfs",
            WorkloadId::BridgeMasq => "bridge + host-local + masquerade",
            WorkloadId::BridgePortmap => "bridge + host-local + portmap (1 TCP hostPort)",
            WorkloadId::Flat => "flat + host-local",
            WorkloadId::Overlay => "overlay + host-local",
        }
    }

    /// Parses a [`WorkloadId::key`].
    pub fn from_key(s: &str) -> Option<WorkloadId> {
        WorkloadId::ALL.into_iter().find(|w| w.key() == s)
    }

    /// What the reference runs instead, when it is not the same list.
    pub fn reference_note(self) -> Option<&'static str> {
        match self {
            WorkloadId::Flat => Some(
                "the reference has no flat plugin; its closest L3 analogue is measured instead: \
                 ptp + host-local + ipMasq (veth, /32 host route, per-pod masquerade), same IPAM",
            ),
            WorkloadId::Overlay => Some("no reference equivalent: absolute figures only"),
            _ => None,
        }
    }

    /// Network name of the list.
    pub fn network(self) -> String {
        format!("bench-{}", self.key())
    }
}

/// What differs between the two suites' node setups.
#[derive(Debug, Clone)]
pub struct SuiteSetup {
    /// The suite.
    pub suite: Suite,
    /// host-local `dataDir` of this suite.
    pub data_dir: PathBuf,
    /// The node's name (overlay node list).
    pub node_name: String,
    /// The overlay node list file.
    pub node_list: PathBuf,
}

/// The pod subnet of the bridge workloads (large enough for the 1000-pod scale run).
pub const POD_SUBNET: &str = "10.244.0.0/16";
/// The VNet of the simulated nodes ([`ferro_testutil::topology`]).
pub const VNET: &str = "10.240.0.0/16";
/// The overlay pod CIDR and this node's slice.
pub const OVERLAY_CIDR: &str = "10.244.0.0/16";
/// This node's overlay slice.
pub const OVERLAY_SLICE: &str = "10.244.1.0/24";
/// The host port of the portmap workload.
pub const HOST_PORT: u16 = 30080;

fn ipam(data_dir: &Path, range: Value) -> Value {
    json!({
        "type": "host-local",
        "ranges": [[range]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": data_dir,
    })
}

/// kubenet's bridge (cbr0, gateway on the bridge, hairpin), with or without masquerade.
fn bridge(ip_masq: bool, data_dir: &Path) -> Value {
    json!({
        "type": "bridge",
        "bridge": "cbr0",
        "isGateway": true,
        "ipMasq": ip_masq,
        "hairpinMode": true,
        "ipam": ipam(data_dir, json!({"subnet": POD_SUBNET})),
    })
}

/// The flat node's share of the VNet subnet (`rangeStart`, `rangeEnd`): each node reserves
/// its own part, as AKS does per node; same size for both suites.
pub fn flat_range(suite: Suite) -> (&'static str, &'static str) {
    match suite {
        Suite::Ours => ("10.240.16.1", "10.240.23.254"),
        Suite::Ref => ("10.240.32.1", "10.240.39.254"),
    }
}

/// The list `suite` runs for workload `w`; `None` when the reference has nothing to run.
pub fn conflist(w: WorkloadId, s: &SuiteSetup) -> Option<ConfList> {
    let dd = s.data_dir.as_path();
    let plugins = match w {
        WorkloadId::HostLocal | WorkloadId::HostLocalTmpfs => vec![json!({
            "type": "host-local",
            "ipam": ipam(dd, json!({"subnet": POD_SUBNET})),
        })],
        WorkloadId::BridgeMasq => vec![bridge(true, dd)],
        WorkloadId::BridgePortmap => vec![
            bridge(false, dd),
            json!({"type": "portmap", "capabilities": {"portMappings": true}, "snat": true}),
        ],
        WorkloadId::Flat => {
            let (start, end) = flat_range(s.suite);
            let ipam = ipam(
                dd,
                json!({"subnet": VNET, "rangeStart": start, "rangeEnd": end}),
            );
            match s.suite {
                Suite::Ours => vec![json!({"type": "flat", "vnetCIDRs": [VNET], "ipam": ipam})],
                Suite::Ref => vec![json!({"type": "ptp", "ipMasq": true, "ipam": ipam})],
            }
        }
        WorkloadId::Overlay => match s.suite {
            Suite::Ours => vec![json!({
                "type": "overlay",
                "podCIDR": OVERLAY_CIDR,
                "nodeName": s.node_name,
                "nodeList": s.node_list,
                "ipam": ipam(dd, json!({"subnet": OVERLAY_SLICE})),
            })],
            Suite::Ref => return None,
        },
    };
    Some(ConfList::new(&w.network(), plugins))
}

/// The capability arguments the runtime supplies for `w`.
pub fn cap_args(w: WorkloadId) -> Map<String, Value> {
    let mut m = Map::new();
    if w == WorkloadId::BridgePortmap {
        m.insert(
            "portMappings".into(),
            json!([{"hostPort": HOST_PORT, "containerPort": 80, "protocol": "tcp"}]),
        );
    }
    m
}

/// The overlay node list: this node owning [`OVERLAY_SLICE`] and three remote nodes (peers
/// that ADD reconciles: neighbour, FDB entry and route each).
pub fn overlay_node_list(node_name: &str, node_ip: IpAddr) -> Value {
    let mut nodes = vec![
        json!({"name": node_name, "address": node_ip.to_string(), "podSubnet": OVERLAY_SLICE}),
    ];
    for i in 2..=4 {
        nodes.push(json!({
            "name": format!("remote-{i}"),
            "address": format!("10.240.0.{}", 200 + i),
            "podSubnet": format!("10.244.{i}.0/24"),
        }));
    }
    json!({ "nodes": nodes })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(suite: Suite) -> SuiteSetup {
        SuiteSetup {
            suite,
            data_dir: PathBuf::from(format!("/tmp/b/ipam/{}", suite.tag())),
            node_name: "n".into(),
            node_list: PathBuf::from("/tmp/b/nodes.json"),
        }
    }

    /// Blanks `dataDir` so the two suites' lists can be compared.
    fn without_data_dir(mut l: ConfList) -> ConfList {
        for p in &mut l.plugins {
            if let Some(ipam) = p.get_mut("ipam") {
                ipam["dataDir"] = Value::Null;
            }
        }
        l
    }

    #[test]
    fn both_suites_run_identical_lists_except_data_dir() {
        for w in [
            WorkloadId::HostLocal,
            WorkloadId::HostLocalTmpfs,
            WorkloadId::BridgeMasq,
            WorkloadId::BridgePortmap,
        ] {
            let a = conflist(w, &setup(Suite::Ours)).unwrap();
            let b = conflist(w, &setup(Suite::Ref)).unwrap();
            assert_ne!(a, b, "{w:?}: separate data dirs");
            assert_eq!(without_data_dir(a), without_data_dir(b), "{w:?}");
        }
    }

    #[test]
    fn masquerade_only_where_asked() {
        let m = conflist(WorkloadId::BridgeMasq, &setup(Suite::Ours)).unwrap();
        assert_eq!(m.plugins[0]["ipMasq"], true);
        let p = conflist(WorkloadId::BridgePortmap, &setup(Suite::Ours)).unwrap();
        assert_eq!(p.types(), ["bridge", "portmap"]);
        assert_eq!(p.plugins[0]["ipMasq"], false);
        assert_eq!(
            cap_args(WorkloadId::BridgePortmap)["portMappings"][0]["hostPort"],
            30080
        );
        assert!(cap_args(WorkloadId::BridgeMasq).is_empty());
    }

    #[test]
    fn flat_against_ptp_with_the_same_ipam_shape() {
        let a = conflist(WorkloadId::Flat, &setup(Suite::Ours)).unwrap();
        let b = conflist(WorkloadId::Flat, &setup(Suite::Ref)).unwrap();
        assert_eq!(a.types(), ["flat"]);
        assert_eq!(b.types(), ["ptp"]);
        assert_eq!(b.plugins[0]["ipMasq"], true);
        let (ra, rb) = (
            &a.plugins[0]["ipam"]["ranges"][0][0],
            &b.plugins[0]["ipam"]["ranges"][0][0],
        );
        assert_eq!(ra["subnet"], rb["subnet"]);
        assert_ne!(ra["rangeStart"], rb["rangeStart"], "disjoint node ranges");
        assert!(WorkloadId::Flat.reference_note().unwrap().contains("ptp"));
    }

    #[test]
    fn overlay_is_ours_only() {
        assert!(conflist(WorkloadId::Overlay, &setup(Suite::Ref)).is_none());
        let o = conflist(WorkloadId::Overlay, &setup(Suite::Ours)).unwrap();
        assert_eq!(o.plugins[0]["nodeList"], "/tmp/b/nodes.json");
        let nl = overlay_node_list("n", "10.240.0.4".parse().unwrap());
        assert_eq!(nl["nodes"].as_array().unwrap().len(), 4);
        assert_eq!(nl["nodes"][0]["podSubnet"], OVERLAY_SLICE);
    }

    #[test]
    fn keys_round_trip() {
        for w in WorkloadId::ALL {
            assert_eq!(WorkloadId::from_key(w.key()), Some(w));
        }
        assert_eq!(WorkloadId::from_key("nope"), None);
    }
}
