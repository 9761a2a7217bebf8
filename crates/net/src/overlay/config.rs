//! The node-level keys of an `overlay` plugin object, shared by the plugin and
//! `cnictl overlay sync` so both compute the same view of the node.

use std::path::PathBuf;

use ipnet::IpNet;
use serde::Deserialize;

use ferro_spec::CniError;

use super::family::{family_name, FamilyNets};

/// The smallest MTU an IPv6 link may have (RFC 8200): below it the kernel turns IPv6 off on
/// the interface.
pub const IPV6_MIN_MTU: u32 = 1280;

/// The node-level keys, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    /// The cluster's pod CIDRs, at most one per family (`podCIDRs`, or `podCIDR` for one
    /// family); every node's slices are inside them.
    pub pod_cidrs: FamilyNets,
    /// This node's slices when given directly (`nodeSubnets`, or `nodeSubnet` for one
    /// family): one per family of `pod_cidrs`.
    pub node_subnets: Option<FamilyNets>,
    /// This node's name in the node list, to look its slices up.
    pub node_name: Option<String>,
    /// VXLAN network identifier.
    pub vni: u32,
    /// VXLAN UDP port.
    pub port: u16,
    /// The underlay interface; `None`: the interface of the default route of the node
    /// list's address family.
    pub underlay: Option<String>,
    /// Pod MTU; `None`: underlay MTU − the VXLAN overhead of the underlay's family.
    pub mtu: Option<u32>,
    /// The node list file (the peer source).
    pub node_list: PathBuf,
    /// No slice: pods take host addresses (`/32`, `/128`) of a pool shared by the cluster,
    /// anywhere in the pod CIDRs, and the peers route each node's blocks of it (the cluster
    /// IPAM with ferro-agent). `nodeSubnet(s)` and `nodeName` are then not needed.
    pub pooled: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawNodeConfig {
    #[serde(default, rename = "podCIDR")]
    pod_cidr: Option<IpNet>,
    #[serde(default, rename = "podCIDRs")]
    pod_cidrs: Option<Vec<IpNet>>,
    #[serde(default)]
    node_subnet: Option<IpNet>,
    #[serde(default)]
    node_subnets: Option<Vec<IpNet>>,
    #[serde(default)]
    node_name: Option<String>,
    #[serde(default)]
    vni: Option<u32>,
    #[serde(default)]
    port: Option<u16>,
    #[serde(default)]
    underlay: Option<String>,
    #[serde(default)]
    mtu: Option<u32>,
    #[serde(default)]
    node_list: Option<PathBuf>,
}

/// The networks of a key that takes one network (`single`, e.g. `podCIDR`) or one per
/// family (`list`, e.g. `podCIDRs`), never both. `Ok(None)` when neither is given; the
/// message names the key given.
pub(crate) fn one_per_family(
    single: Option<IpNet>,
    list: Option<&[IpNet]>,
    single_key: &str,
    list_key: &str,
) -> Result<Option<FamilyNets>, String> {
    match (single, list) {
        (Some(_), Some(_)) => Err(format!(
            "{single_key} and {list_key}: give one of them ({list_key} for dual stack)"
        )),
        (Some(n), None) => FamilyNets::new(&[n])
            .map(Some)
            .map_err(|e| format!("{single_key}: {e}")),
        (None, Some([])) => Err(format!(
            "{list_key}: empty (one CIDR per address family, at most two)"
        )),
        (None, Some(l)) => FamilyNets::new(l)
            .map(Some)
            .map_err(|e| format!("{list_key}: {e}")),
        (None, None) => Ok(None),
    }
}

impl NodeConfig {
    /// Reads and validates the node-level keys of an `overlay` plugin object (code 6 for a
    /// wrong type, 7 for a bad value, naming the key).
    pub fn from_value(v: &serde_json::Value) -> Result<NodeConfig, CniError> {
        NodeConfig::parse(v, false)
    }

    /// [`NodeConfig::from_value`] of a network whose pods take addresses of a shared pool
    /// (`pooled`, see [`NodeConfig::pooled`]): no slice nor node name is required.
    pub fn parse(v: &serde_json::Value, pooled: bool) -> Result<NodeConfig, CniError> {
        let raw: RawNodeConfig = ferro_spec::conf::parse_section(v, "")?;
        let pod_cidrs = one_per_family(
            raw.pod_cidr,
            raw.pod_cidrs.as_deref(),
            "podCIDR",
            "podCIDRs",
        )
        .map_err(CniError::invalid_config)?
        .ok_or_else(|| {
            CniError::invalid_config(
                "podCIDR or podCIDRs: required (the cluster pod CIDR, e.g. 10.244.0.0/16; \
                 podCIDRs for dual stack, one per family)",
            )
        })?;
        let cidrs_key = if raw.pod_cidrs.is_some() {
            "podCIDRs"
        } else {
            "podCIDR"
        };
        let subnets_key = if raw.node_subnets.is_some() {
            "nodeSubnets"
        } else {
            "nodeSubnet"
        };
        let node_subnets = one_per_family(
            raw.node_subnet,
            raw.node_subnets.as_deref(),
            "nodeSubnet",
            "nodeSubnets",
        )
        .map_err(CniError::invalid_config)?;
        if let Some(s) = &node_subnets {
            s.check_slices_of(&pod_cidrs, cidrs_key)
                .map_err(|e| CniError::invalid_config(format!("{subnets_key}: {e}")))?;
        }
        if node_subnets.is_none() && raw.node_name.is_none() && !pooled {
            return Err(CniError::invalid_config(
                "nodeSubnet, nodeSubnets or nodeName: one is required to know this node's slices",
            ));
        }
        let vni = raw.vni.unwrap_or(1);
        if !(1..=0xff_ffff).contains(&vni) {
            return Err(CniError::invalid_config(format!(
                "vni: {vni} is out of range 1-16777215"
            )));
        }
        let port = raw.port.unwrap_or(8472);
        if port == 0 {
            return Err(CniError::invalid_config("port: 0 is not a UDP port"));
        }
        if let Some(u) = &raw.underlay {
            ferro_spec::env::validate_ifname(u)
                .map_err(|e| CniError::invalid_config(format!("underlay: {e}")))?;
        }
        let mtu = ferro_spec::conf::mtu(raw.mtu, "mtu")?;
        if let Some(m) = mtu.filter(|m| *m < IPV6_MIN_MTU && pod_cidrs.families().1) {
            return Err(CniError::invalid_config(format!(
                "mtu: {m} is below {IPV6_MIN_MTU}, the least an {} link may have, and {cidrs_key} has {}",
                family_name(true),
                pod_cidrs.get(true).map(|c| c.to_string()).unwrap_or_default()
            )));
        }
        let node_list = raw.node_list.ok_or_else(|| {
            CniError::invalid_config("nodeList: required (the file listing the cluster's nodes)")
        })?;
        Ok(NodeConfig {
            pod_cidrs,
            node_subnets,
            node_name: raw.node_name,
            vni,
            port,
            underlay: raw.underlay,
            mtu,
            node_list,
            pooled,
        })
    }

    /// The key naming the pod CIDRs in messages.
    pub fn cidrs_key(&self) -> &'static str {
        if self.pod_cidrs.families() == (true, true) {
            "podCIDRs"
        } else {
            "podCIDR"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node_cfg(extra: serde_json::Value) -> Result<NodeConfig, CniError> {
        let mut conf = json!({"podCIDR": "10.244.0.0/16", "nodeSubnet": "10.244.1.0/24", "nodeList": "/etc/ferro-cni/nodes.json"});
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                conf.as_object_mut().unwrap().remove(k);
            } else {
                conf[k] = v.clone();
            }
        }
        NodeConfig::from_value(&conf)
    }

    #[test]
    fn node_config_defaults_follow_flannel() {
        let c = node_cfg(json!({})).unwrap();
        assert_eq!((c.vni, c.port, c.mtu), (1, 8472, None));
        assert_eq!(c.pod_cidrs.to_string(), "10.244.0.0/16");
    }

    #[test]
    fn dual_stack_takes_one_cidr_and_one_slice_per_family() {
        let c = node_cfg(
            json!({"podCIDR": null, "podCIDRs": ["fd00:10:244::/56", "10.244.0.0/16"],
            "nodeSubnet": null, "nodeSubnets": ["10.244.1.0/24", "fd00:10:244:1::/64"]}),
        )
        .unwrap();
        assert_eq!(c.pod_cidrs.to_string(), "10.244.0.0/16, fd00:10:244::/56");
        assert_eq!(
            c.node_subnets.unwrap().to_string(),
            "10.244.1.0/24, fd00:10:244:1::/64"
        );
        // IPv6 only, the slice found by name
        let c =
            node_cfg(json!({"podCIDR": "fd00:10:244::/56", "nodeSubnet": null, "nodeName": "a"}))
                .unwrap();
        assert_eq!(c.pod_cidrs.families(), (false, true));
    }

    #[test]
    fn node_config_errors_name_the_key() {
        for (extra, key) in [
            (json!({"podCIDR": null}), "podCIDR or podCIDRs: required"),
            (
                json!({"podCIDR": "10.244.0.1/16"}),
                "podCIDR: 10.244.0.1/16 has host bits set",
            ),
            (
                json!({"nodeSubnet": "10.245.1.0/24"}),
                "nodeSubnet: 10.245.1.0/24 is not inside the IPv4 pod CIDR 10.244.0.0/16",
            ),
            (json!({"nodeSubnet": null}), "nodeName"),
            (json!({"vni": 0}), "vni"),
            (json!({"vni": 16777216}), "vni"),
            (json!({"port": 0}), "port"),
            (json!({"mtu": 40}), "mtu"),
            (json!({"nodeList": null}), "nodeList"),
            (json!({"underlay": "a:b"}), "underlay"),
            (
                json!({"podCIDRs": ["10.245.0.0/16"]}),
                "podCIDR and podCIDRs: give one of them (podCIDRs for dual stack)",
            ),
            (
                json!({"podCIDR": null, "podCIDRs": ["10.244.0.0/16", "10.245.0.0/16"]}),
                "podCIDRs: two IPv4 CIDRs (10.244.0.0/16, 10.245.0.0/16): at most one per family",
            ),
            (json!({"podCIDR": null, "podCIDRs": []}), "podCIDRs: empty"),
            (
                json!({"podCIDR": null, "podCIDRs": ["10.244.0.0/16", "fd00:10:244::/56"]}),
                "nodeSubnet: no IPv6 slice, but podCIDRs has fd00:10:244::/56",
            ),
            (
                json!({"nodeSubnet": null, "nodeSubnets": ["10.244.1.0/24", "fd00:10:244:1::/64"]}),
                "nodeSubnets: fd00:10:244:1::/64 is IPv6, but podCIDR has no IPv6 pod CIDR",
            ),
            (
                json!({"nodeSubnets": ["10.244.1.0/24"]}),
                "nodeSubnet and nodeSubnets: give one of them",
            ),
            (
                json!({"podCIDR": "fd00:10:244::/56", "nodeSubnet": "fd00:10:244:1::/64", "mtu": 1200}),
                "mtu: 1200 is below 1280",
            ),
        ] {
            let e = node_cfg(extra.clone()).unwrap_err();
            assert_eq!(e.code.number(), 7, "{extra}: {}", e.msg);
            assert!(e.msg.contains(key), "{extra}: {}", e.msg);
        }
        let e = node_cfg(json!({"vni": "x"})).unwrap_err();
        assert_eq!(e.code.number(), 6, "a wrong type: {}", e.msg);
        assert!(e.msg.contains("vni"), "{}", e.msg);
    }
}
