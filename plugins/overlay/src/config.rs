//! The overlay configuration: the node-level keys (shared with `cnictl overlay sync`, parsed
//! by `ferro_net::overlay::NodeConfig`) plus the pod-level ones.

use ipnet::IpNet;
use serde::Deserialize;

use ferro_net::overlay::NodeConfig;
use ferro_spec::{CniError, Request};

/// Validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Pod CIDR, slice, VXLAN and node list settings.
    pub node: NodeConfig,
    /// More destinations that keep the pod's address besides the pod CIDR.
    pub non_masquerade_cidrs: Vec<IpNet>,
    /// SNAT traffic leaving the cluster.
    pub snat: bool,
    /// Drop forged source addresses from pods.
    pub anti_spoofing: bool,
    /// `dns` of the config, overriding the IPAM's.
    pub dns: Option<ferro_spec::Dns>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    #[serde(default, rename = "nonMasqueradeCIDRs")]
    non_masquerade_cidrs: Vec<IpNet>,
    #[serde(default)]
    snat: Option<bool>,
    #[serde(default)]
    ip_masq: Option<bool>,
    #[serde(default)]
    anti_spoofing: Option<bool>,
}

impl Config {
    /// Parses and validates.
    pub fn from_request(req: &Request) -> Result<Config, CniError> {
        let node = NodeConfig::from_value(&serde_json::Value::Object(req.conf.raw.clone()))?;
        let raw: Raw = req.section()?;
        if req.conf.ipam_type().is_none() {
            return Err(CniError::invalid_config(
                "ipam: required (e.g. host-local over this node's slice)",
            ));
        }
        Ok(Config {
            node,
            non_masquerade_cidrs: raw.non_masquerade_cidrs.iter().map(IpNet::trunc).collect(),
            snat: raw.snat.or(raw.ip_masq).unwrap_or(true),
            anti_spoofing: raw.anti_spoofing.unwrap_or(true),
            dns: req.conf.dns.clone(),
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
        assert!(c.snat && c.anti_spoofing);
        assert_eq!(c.node.vni, 1);
        assert!(!parse(json!({"ipMasq": false})).unwrap().snat);
    }

    #[test]
    fn errors_name_the_key() {
        for (extra, key) in [
            (json!({"ipam": null}), "ipam"),
            (json!({"podCIDR": null}), "podCIDR"),
            (json!({"snat": 1}), "snat"),
        ] {
            let e = parse(extra.clone()).unwrap_err();
            assert!(e.msg.contains(key), "{extra}: {}", e.msg);
        }
    }
}
