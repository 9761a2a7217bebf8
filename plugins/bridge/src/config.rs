//! The bridge configuration: the reference bridge plugin's keys plus `nonMasqueradeCIDRs`
//! (listed in [the plugin's README](../README.md#configuration)). Validated before the first
//! kernel call.
//!
//! Reference keys this plugin does not implement are refused with code 2 naming key and
//! value, never silently ignored. Keys unknown to the reference (kubenet's `addIf`, vendor
//! keys) are tolerated, as the Go plugin tolerates them.

use ipnet::IpNet;
use serde::Deserialize;
use serde_json::Value;

use ferro_spec::{CniError, Request};

/// Validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Bridge name (`cni0`).
    pub bridge: String,
    /// Gateway address(es) on the bridge, forwarding on.
    pub is_gateway: bool,
    /// Default route via the gateway in the pod (implies `is_gateway`).
    pub is_default_gateway: bool,
    /// Replace a different address already on the bridge.
    pub force_address: bool,
    /// Masquerade pod traffic leaving the pod subnet and `non_masquerade_cidrs`.
    pub ip_masq: bool,
    /// Destinations that keep the pod's source address besides the pod subnet
    /// (ip-masq-agent's `nonMasqueradeCIDRs`: cluster and VNet ranges).
    pub non_masquerade_cidrs: Vec<IpNet>,
    /// MTU of the bridge and both veth ends (kernel default when `None`).
    pub mtu: Option<u32>,
    /// Hairpin on the host veth port.
    pub hairpin_mode: bool,
    /// Promiscuous bridge.
    pub promisc_mode: bool,
    /// Access VLAN of the host veth port.
    pub vlan: Option<u16>,
    /// Keep the default VLAN 1 on the port when `vlan` is set.
    pub preserve_default_vlan: bool,
    /// IPv6 duplicate address detection in the pod.
    pub enable_dad: bool,
    /// Leave the container interface down (L2 only, no IPAM).
    pub disable_container_interface: bool,
    /// Bridge port isolation on the host veth.
    pub port_isolation: bool,
    /// `dns` of the config, overriding the IPAM's.
    pub dns: Option<ferro_spec::Dns>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    #[serde(default)]
    bridge: Option<String>,
    #[serde(default)]
    is_gateway: bool,
    #[serde(default)]
    is_default_gateway: bool,
    #[serde(default)]
    force_address: bool,
    #[serde(default)]
    ip_masq: bool,
    #[serde(default)]
    ip_masq_backend: Option<String>,
    #[serde(default, rename = "nonMasqueradeCIDRs")]
    non_masquerade_cidrs: Vec<IpNet>,
    #[serde(default)]
    mtu: Option<u32>,
    #[serde(default)]
    hairpin_mode: bool,
    #[serde(default)]
    promisc_mode: bool,
    #[serde(default)]
    vlan: Option<i64>,
    #[serde(default)]
    vlan_trunk: Option<Value>,
    #[serde(default)]
    preserve_default_vlan: Option<bool>,
    #[serde(default)]
    macspoofchk: bool,
    #[serde(default)]
    enabledad: bool,
    #[serde(default)]
    disable_container_interface: bool,
    #[serde(default)]
    port_isolation: bool,
}

/// The default bridge name of the reference plugin.
pub const DEFAULT_BRIDGE: &str = "cni0";

impl Config {
    /// Parses and validates the bridge keys of `req`.
    pub fn from_request(req: &Request) -> Result<Config, CniError> {
        let raw: Raw = req.section()?;
        let bridge = raw.bridge.unwrap_or_else(|| DEFAULT_BRIDGE.to_string());
        ferro_spec::env::validate_ifname(&bridge)
            .map_err(|e| CniError::invalid_config(format!("bridge: {e}")))?;
        if let Some(b) = raw.ip_masq_backend.as_deref() {
            if b != "nftables" {
                return Err(
                    CniError::unsupported_field("ipMasqBackend", &Value::from(b))
                        .with_details("this plugin masquerades with nftables only"),
                );
            }
        }
        if let Some(t) = raw
            .vlan_trunk
            .as_ref()
            .filter(|t| !t.is_null() && t.as_array().is_none_or(|a| !a.is_empty()))
        {
            return Err(CniError::unsupported_field("vlanTrunk", t));
        }
        if raw.macspoofchk {
            return Err(CniError::unsupported_field("macspoofchk", &Value::Bool(true))
                .with_details("MAC spoof checking is not implemented; the flat and overlay plugins drop forged source addresses instead"));
        }
        let vlan = match raw.vlan {
            None | Some(0) => None,
            Some(v) if (1..=4094).contains(&v) => Some(v as u16),
            Some(v) => {
                return Err(CniError::invalid_config(format!(
                    "vlan: {v} is out of range 0-4094"
                )))
            }
        };
        if vlan.is_some() && (raw.is_gateway || raw.is_default_gateway) {
            return Err(CniError::unsupported_field("vlan", &Value::from(vlan.unwrap_or_default()))
                .with_details("a VLAN together with isGateway (gateway on a bridge VLAN interface) is not implemented"));
        }
        if raw.preserve_default_vlan.is_some() && vlan.is_none() {
            log::debug!("preserveDefaultVlan has no effect without vlan");
        }
        if raw.hairpin_mode && raw.promisc_mode {
            return Err(CniError::invalid_config(
                "hairpinMode and promiscMode cannot both be set",
            ));
        }
        let mtu = ferro_spec::conf::mtu(raw.mtu, "mtu")?;
        if raw.disable_container_interface && req.conf.ipam_type().is_some() {
            return Err(CniError::invalid_config(
                "disableContainerInterface cannot be used with ipam: an interface that stays down cannot hold addresses",
            ));
        }
        if !raw.non_masquerade_cidrs.is_empty() && !raw.ip_masq {
            log::debug!("nonMasqueradeCIDRs has no effect without ipMasq");
        }
        Ok(Config {
            bridge,
            is_gateway: raw.is_gateway || raw.is_default_gateway,
            is_default_gateway: raw.is_default_gateway,
            force_address: raw.force_address,
            ip_masq: raw.ip_masq,
            non_masquerade_cidrs: raw.non_masquerade_cidrs.iter().map(|n| n.trunc()).collect(),
            mtu,
            hairpin_mode: raw.hairpin_mode,
            promisc_mode: raw.promisc_mode,
            vlan,
            preserve_default_vlan: raw.preserve_default_vlan.unwrap_or(false),
            enable_dad: raw.enabledad,
            disable_container_interface: raw.disable_container_interface,
            port_isolation: raw.port_isolation,
            dns: req.conf.dns.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferro_testutil::{add_request, with_keys};
    use serde_json::json;

    fn parse(extra: Value) -> Result<Config, CniError> {
        let conf = with_keys(
            json!({"cniVersion": "1.0.0", "name": "n", "type": "bridge"}),
            extra,
        );
        Config::from_request(&add_request(conf))
    }

    #[test]
    fn defaults_match_the_reference() {
        let c = parse(json!({})).unwrap();
        assert_eq!(c.bridge, "cni0");
        assert!(!c.is_gateway && !c.ip_masq && !c.hairpin_mode && !c.enable_dad);
        assert_eq!(c.mtu, None);
    }

    #[test]
    fn the_kubenet_config_is_accepted_unchanged() {
        let c = parse(json!({"cniVersion":"0.1.0","name":"kubenet","type":"bridge","bridge":"cbr0","mtu":1460,
            "addIf":"eth0","isGateway":true,"ipMasq":false,"hairpinMode":true,
            "ipam":{"type":"host-local","ranges":[[{"subnet":"10.244.1.0/24"}]],"routes":[{"dst":"0.0.0.0/0"}]}}))
        .unwrap();
        assert_eq!(
            (c.bridge.as_str(), c.mtu, c.is_gateway, c.hairpin_mode),
            ("cbr0", Some(1460), true, true)
        );
    }

    #[test]
    fn default_gateway_implies_gateway() {
        assert!(parse(json!({"isDefaultGateway": true})).unwrap().is_gateway);
    }

    #[test]
    fn unimplemented_reference_keys_are_code_2_naming_them() {
        for (k, v) in [
            ("vlanTrunk", json!([{"id": 5}])),
            ("ipMasqBackend", json!("iptables")),
            ("macspoofchk", json!(true)),
        ] {
            let e = parse(json!({k: v})).unwrap_err();
            assert_eq!(e.code.number(), 2, "{k}");
            assert!(e.msg.contains(k), "{}", e.msg);
        }
        let e = parse(json!({"vlan": 10, "isGateway": true})).unwrap_err();
        assert_eq!(e.code.number(), 2);
        assert!(parse(json!({"ipMasqBackend": "nftables", "vlanTrunk": []})).is_ok());
    }

    #[test]
    fn invalid_values_are_code_7_or_6_naming_the_key() {
        for (k, v, code) in [
            ("vlan", json!(5000), 7),
            ("mtu", json!(20), 7),
            ("bridge", json!("a/b"), 7),
            ("bridge", json!("waytoolongbridgename"), 7),
            ("isGateway", json!("yes"), 6),
            ("nonMasqueradeCIDRs", json!(["10.0.0.0/33"]), 7),
        ] {
            let e = parse(json!({k: v})).unwrap_err();
            assert_eq!(e.code.number(), code, "{k}: {}", e.msg);
            assert!(e.msg.contains(k), "{}", e.msg);
        }
        let e = parse(json!({"hairpinMode": true, "promiscMode": true})).unwrap_err();
        assert_eq!(e.code.number(), 7);
        let e = parse(json!({"disableContainerInterface": true, "ipam": {"type": "host-local"}}))
            .unwrap_err();
        assert!(e.msg.contains("disableContainerInterface"));
    }

    #[test]
    fn non_masquerade_cidrs_are_normalized() {
        let c = parse(json!({"ipMasq": true, "nonMasqueradeCIDRs": ["10.1.2.3/8", "fd00::1/48"]}))
            .unwrap();
        assert_eq!(
            c.non_masquerade_cidrs,
            vec![
                "10.0.0.0/8".parse::<IpNet>().unwrap(),
                "fd00::/48".parse().unwrap()
            ]
        );
    }
}
