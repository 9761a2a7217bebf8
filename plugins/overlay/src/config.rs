//! The overlay configuration: the node-level keys (shared with `cnictl overlay sync`, parsed
//! by `ferro_net::overlay::NodeConfig`), the pod-level keys shared with `flat`
//! (`ferro_pod::SharedKeys`) and `dns`. `nodeList: "agent"` leaves the peers to ferro-agent;
//! with `ipam` `cluster-ipam` besides, the network is pooled: no node slice, pods take host
//! addresses of the node's blocks of the cluster's pool, which the agents route.

use ferro_agent_api::{AGENT_NODE_LIST, CLUSTER_IPAM};
use ferro_net::overlay::NodeConfig;
use ferro_pod::SharedKeys;
use ferro_spec::{CniError, Request};

/// Validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Pod CIDR, slice, VXLAN and node list settings.
    pub node: NodeConfig,
    /// `snat`/`ipMasq` (SNAT traffic leaving the cluster), `antiSpoofing`,
    /// `nonMasqueradeCIDRs` (more destinations that keep the pod's address besides the pod
    /// CIDR).
    pub shared: SharedKeys,
    /// `dns` of the config, overriding the IPAM's.
    pub dns: Option<ferro_spec::Dns>,
    /// `nodeList: "agent"`: ferro-agent keeps the VXLAN peers (from the store's nodes); the
    /// plugin ensures the device and leaves its peers alone.
    pub peers_from_agent: bool,
}

impl Config {
    /// Parses and validates.
    pub fn from_request(req: &Request) -> Result<Config, CniError> {
        let raw = serde_json::Value::Object(req.conf.raw.clone());
        let peers_from_agent =
            raw.get("nodeList").and_then(|v| v.as_str()) == Some(AGENT_NODE_LIST);
        let cluster_ipam = req.conf.ipam_type() == Some(CLUSTER_IPAM);
        let node = NodeConfig::parse(&raw, peers_from_agent && cluster_ipam)?;
        if cluster_ipam && !peers_from_agent {
            return Err(CniError::invalid_config(format!(
                "ipam: {CLUSTER_IPAM} needs nodeList {AGENT_NODE_LIST:?} (pods take addresses \
                 of the node's blocks of the cluster's pool, which ferro-agent routes to the \
                 node; a node list file knows only slices)"
            )));
        }
        if node.pooled {
            if let Some(s) = &node.node_subnets {
                return Err(CniError::invalid_config(format!(
                    "nodeSubnet: {s} given, but ipam {CLUSTER_IPAM} hands out addresses of \
                     the cluster's pool, not of a slice: leave nodeSubnet(s) out"
                )));
            }
        } else if peers_from_agent && node.node_subnets.is_none() {
            return Err(CniError::invalid_config(format!(
                "nodeSubnet or nodeSubnets: required with nodeList {AGENT_NODE_LIST:?} (this \
                 node's slices; ferro-agent programs the peers), unless ipam is {CLUSTER_IPAM}"
            )));
        }
        let shared = SharedKeys::from_request(req, "host-local over this node's slice")?;
        Ok(Config {
            node,
            shared,
            dns: req.conf.dns.clone(),
            peers_from_agent,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferro_testutil::{add_request, with_keys};
    use serde_json::{json, Value};

    fn parse(extra: Value) -> Result<Config, CniError> {
        let base = json!({"cniVersion": "1.1.0", "name": "ovl", "type": "overlay", "podCIDR": "10.244.0.0/16",
            "nodeSubnet": "10.244.1.0/24", "nodeList": "/etc/ferro-cni/nodes.json", "ipam": {"type": "host-local"}});
        Config::from_request(&add_request(with_keys(base, extra)))
    }

    #[test]
    fn defaults() {
        let c = parse(json!({})).unwrap();
        assert!(c.shared.snat && c.shared.anti_spoofing);
        assert_eq!(c.node.vni, 1);
        assert!(!parse(json!({"ipMasq": false})).unwrap().shared.snat);
        assert!(!parse(json!({})).unwrap().peers_from_agent);
        assert!(
            parse(json!({"nodeList": "agent"}))
                .unwrap()
                .peers_from_agent
        );
    }

    #[test]
    fn cluster_ipam_with_the_agent_needs_no_slice() {
        let pooled =
            json!({"nodeList": "agent", "nodeSubnet": null, "ipam": {"type": "cluster-ipam"}});
        let c = parse(pooled.clone()).unwrap();
        assert!(c.node.pooled && c.peers_from_agent && c.node.node_subnets.is_none());
        assert!(!parse(json!({"nodeList": "agent"})).unwrap().node.pooled);
        for (extra, msg) in [
            (
                json!({"nodeList": "agent", "ipam": {"type": "cluster-ipam"}}),
                "nodeSubnet: 10.244.1.0/24 given, but ipam cluster-ipam hands out addresses of \
                 the cluster's pool, not of a slice: leave nodeSubnet(s) out",
            ),
            (
                json!({"nodeSubnet": null, "nodeName": "a", "ipam": {"type": "cluster-ipam"}}),
                "ipam: cluster-ipam needs nodeList \"agent\"",
            ),
        ] {
            let e = parse(extra.clone()).unwrap_err();
            assert_eq!(e.code.number(), 7);
            assert!(e.msg.starts_with(msg), "{extra}: {}", e.msg);
        }
    }

    #[test]
    fn errors_name_the_key() {
        for (extra, key) in [
            (json!({"ipam": null}), "ipam"),
            (json!({"podCIDR": null}), "podCIDR"),
            (json!({"snat": 1}), "snat"),
            (
                json!({"nodeList": "agent", "nodeSubnet": null, "nodeName": "a"}),
                "nodeSubnet or nodeSubnets: required with nodeList \"agent\"",
            ),
        ] {
            let e = parse(extra.clone()).unwrap_err();
            assert!(e.msg.contains(key), "{extra}: {}", e.msg);
        }
    }
}
