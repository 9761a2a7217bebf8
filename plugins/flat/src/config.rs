//! The flat configuration. Keys of our own: the network's block is owned by this plugin,
//! so unknown keys at the top level are tolerated (runtimes add keys) but typed strictly.

use ipnet::IpNet;
use serde::Deserialize;

use ferro_pod::SharedKeys;
use ferro_spec::{CniError, Request};

/// Validated configuration (`uplink`/`vnet_cidrs`/`mtu` may still need the node's defaults,
/// resolved by `plan::node` from what `apply::node` reads on the node).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The node's VNet interface; `None`: the interface of the default route.
    pub uplink: Option<String>,
    /// The VNet address spaces: traffic to them keeps the pod's address. `None`: the
    /// subnets of the uplink's addresses.
    pub vnet_cidrs: Option<Vec<IpNet>>,
    /// `snat`/`ipMasq` (SNAT traffic leaving the VNet to the node's address),
    /// `antiSpoofing`, `nonMasqueradeCIDRs`: the keys shared with `overlay`.
    pub shared: SharedKeys,
    /// Answer ARP/NDP for pod addresses on the uplink (off on fabrics that deliver pod
    /// addresses to the node themselves, like Azure's).
    pub publish_pod_addresses: bool,
    /// MTU of the pod veth pair; `None`: the uplink's.
    pub mtu: Option<u32>,
    /// `dns` of the config, overriding the IPAM's.
    pub dns: Option<ferro_spec::Dns>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    #[serde(default)]
    uplink: Option<String>,
    #[serde(default, rename = "vnetCIDRs")]
    vnet_cidrs: Option<Vec<IpNet>>,
    #[serde(default)]
    publish_pod_addresses: Option<bool>,
    #[serde(default)]
    mtu: Option<u32>,
}

impl Config {
    /// Parses and validates.
    pub fn from_request(req: &Request) -> Result<Config, CniError> {
        let raw: Raw = req.section()?;
        if let Some(u) = &raw.uplink {
            ferro_spec::env::validate_ifname(u)
                .map_err(|e| CniError::invalid_config(format!("uplink: {e}")))?;
        }
        if let Some(v) = &raw.vnet_cidrs {
            if v.is_empty() {
                return Err(CniError::invalid_config(
                    "vnetCIDRs: empty list: every pod packet would be masqueraded, even inside the VNet (omit the key to use the uplink's subnets)",
                ));
            }
        }
        let mtu = ferro_spec::conf::mtu(raw.mtu, "mtu")?;
        let shared = SharedKeys::from_request(
            req,
            "host-local over this node's reserved range of the VNet subnet",
        )?;
        Ok(Config {
            uplink: raw.uplink,
            vnet_cidrs: raw.vnet_cidrs.map(|v| v.iter().map(IpNet::trunc).collect()),
            shared,
            publish_pod_addresses: raw.publish_pod_addresses.unwrap_or(true),
            mtu,
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
        let base = json!({"cniVersion": "1.1.0", "name": "azure", "type": "flat", "ipam": {"type": "host-local"}});
        Config::from_request(&add_request(with_keys(base, extra)))
    }

    #[test]
    fn defaults() {
        let c = parse(json!({})).unwrap();
        assert!(c.shared.snat && c.publish_pod_addresses && c.shared.anti_spoofing);
        assert_eq!((c.uplink, c.vnet_cidrs, c.mtu), (None, None, None));
    }

    #[test]
    fn keys_are_read_and_normalized() {
        let c = parse(json!({"uplink": "eth1", "vnetCIDRs": ["10.240.1.2/16"], "nonMasqueradeCIDRs": ["10.0.0.0/8"], "snat": false, "publishPodAddresses": false, "mtu": 1400})).unwrap();
        assert_eq!(c.vnet_cidrs, Some(vec!["10.240.0.0/16".parse().unwrap()]));
        assert_eq!(
            (c.shared.snat, c.publish_pod_addresses, c.mtu),
            (false, false, Some(1400))
        );
        assert!(!parse(json!({"ipMasq": false})).unwrap().shared.snat);
    }

    #[test]
    fn errors_name_the_key() {
        for (extra, key, code) in [
            (json!({"vnetCIDRs": []}), "vnetCIDRs", 7),
            (json!({"vnetCIDRs": ["nope"]}), "vnetCIDRs", 7),
            (json!({"uplink": "a b"}), "uplink", 7),
            (json!({"mtu": 10}), "mtu", 7),
            (json!({"snat": "yes"}), "snat", 6),
            (json!({"ipam": {}}), "ipam", 7),
        ] {
            let e = parse(extra).unwrap_err();
            assert_eq!(e.code.number(), code, "{key}: {}", e.msg);
            assert!(e.msg.contains(key), "{}", e.msg);
        }
    }
}
