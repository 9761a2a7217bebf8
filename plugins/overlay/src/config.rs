//! The overlay configuration.

use std::path::PathBuf;

use ipnet::IpNet;
use serde::Deserialize;

use ferro_spec::{CniError, Request};

/// Validated configuration (underlay and MTU defaults are resolved against the kernel).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The cluster pod CIDR (every node's slice is inside it).
    pub pod_cidr: IpNet,
    /// This node's slice, when given directly.
    pub node_subnet: Option<IpNet>,
    /// This node's name in the node list, to look its slice up.
    pub node_name: Option<String>,
    /// VXLAN network identifier.
    pub vni: u32,
    /// VXLAN UDP port.
    pub port: u16,
    /// The underlay interface; `None`: the default route's.
    pub underlay: Option<String>,
    /// Pod MTU; `None`: underlay MTU − 50.
    pub mtu: Option<u32>,
    /// More destinations that keep the pod's address besides the pod CIDR.
    pub non_masquerade_cidrs: Vec<IpNet>,
    /// The node list file (the peer source).
    pub node_list: PathBuf,
    /// SNAT traffic leaving the cluster.
    pub snat: bool,
    /// Drop forged source addresses from pods.
    pub anti_spoofing: bool,
    /// `dns` of the config, overriding the IPAM's.
    pub dns: Option<ferro_spec::Dns>,
}

/// VXLAN header and outer headers over an IPv4 underlay.
pub const VXLAN_OVERHEAD: u32 = 50;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    #[serde(default, rename = "podCIDR")]
    pod_cidr: Option<IpNet>,
    #[serde(default)]
    node_subnet: Option<IpNet>,
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
    #[serde(default, rename = "nonMasqueradeCIDRs")]
    non_masquerade_cidrs: Vec<IpNet>,
    #[serde(default)]
    node_list: Option<PathBuf>,
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
        let raw: Raw = req.section()?;
        let pod_cidr = raw.pod_cidr.ok_or_else(|| {
            CniError::invalid_config("podCIDR: required (the cluster pod CIDR, e.g. 10.244.0.0/16)")
        })?;
        if pod_cidr != pod_cidr.trunc() {
            return Err(CniError::invalid_config(format!(
                "podCIDR: {pod_cidr} has host bits set"
            )));
        }
        if let Some(s) = raw.node_subnet {
            if s != s.trunc() {
                return Err(CniError::invalid_config(format!(
                    "nodeSubnet: {s} has host bits set"
                )));
            }
            if !pod_cidr.contains(&s) {
                return Err(CniError::invalid_config(format!(
                    "nodeSubnet: {s} is not inside podCIDR {pod_cidr}"
                )));
            }
        }
        if raw.node_subnet.is_none() && raw.node_name.is_none() {
            return Err(CniError::invalid_config(
                "nodeSubnet or nodeName: one is required to know this node's slice",
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
        let mtu = match raw.mtu {
            None | Some(0) => None,
            Some(m) if (68..=65535).contains(&m) => Some(m),
            Some(m) => {
                return Err(CniError::invalid_config(format!(
                    "mtu: {m} is out of range 68-65535"
                )))
            }
        };
        let node_list = raw.node_list.ok_or_else(|| {
            CniError::invalid_config("nodeList: required (the file listing the cluster's nodes)")
        })?;
        if req.conf.ipam_type().is_none() {
            return Err(CniError::invalid_config(
                "ipam: required (e.g. host-local over this node's slice)",
            ));
        }
        Ok(Config {
            pod_cidr,
            node_subnet: raw.node_subnet,
            node_name: raw.node_name,
            vni,
            port,
            underlay: raw.underlay,
            mtu,
            non_masquerade_cidrs: raw.non_masquerade_cidrs.iter().map(IpNet::trunc).collect(),
            node_list,
            snat: raw.snat.or(raw.ip_masq).unwrap_or(true),
            anti_spoofing: raw.anti_spoofing.unwrap_or(true),
            dns: req.conf.dns.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferro_spec::{CmdArgs, Command, Env, NetConf, Version};
    use serde_json::{json, Value};

    fn parse(extra: Value) -> Result<Config, CniError> {
        let mut conf = json!({"cniVersion": "1.1.0", "name": "ovl", "type": "overlay", "podCIDR": "10.244.0.0/16",
            "nodeSubnet": "10.244.1.0/24", "nodeList": "/etc/ferro-cni/nodes.json", "ipam": {"type": "host-local"}});
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                conf.as_object_mut().unwrap().remove(k);
            } else {
                conf[k] = v.clone();
            }
        }
        let env = Env::from_pairs([
            ("CNI_CONTAINERID", "c1"),
            ("CNI_NETNS", "/x"),
            ("CNI_IFNAME", "eth0"),
        ]);
        let req = Request {
            cmd: CmdArgs::from_env(Command::Add, &env).unwrap(),
            version: Version::V1_1_0,
            conf: NetConf::from_value(&conf).unwrap(),
            prev_result: None,
            stdin: vec![],
            env,
        };
        Config::from_request(&req)
    }

    #[test]
    fn defaults_follow_flannel() {
        let c = parse(json!({})).unwrap();
        assert_eq!(
            (c.vni, c.port, c.mtu, c.snat, c.anti_spoofing),
            (1, 8472, None, true, true)
        );
    }

    #[test]
    fn errors_name_the_key() {
        for (extra, key) in [
            (json!({"podCIDR": null}), "podCIDR"),
            (json!({"podCIDR": "10.244.0.1/16"}), "podCIDR"),
            (json!({"nodeSubnet": "10.245.1.0/24"}), "nodeSubnet"),
            (json!({"nodeSubnet": null}), "nodeName"),
            (json!({"vni": 0}), "vni"),
            (json!({"vni": 16777216}), "vni"),
            (json!({"port": 0}), "port"),
            (json!({"mtu": 40}), "mtu"),
            (json!({"nodeList": null}), "nodeList"),
            (json!({"underlay": "a:b"}), "underlay"),
            (json!({"ipam": null}), "ipam"),
        ] {
            let e = parse(extra.clone()).unwrap_err();
            assert!(e.msg.contains(key), "{extra}: {}", e.msg);
        }
    }
}
