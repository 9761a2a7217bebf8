//! The configuration keys `flat` and `overlay` share, read the same way by both.

use ipnet::IpNet;
use serde::Deserialize;

use ferro_net::firewall::PodFirewall;
use ferro_net::transparent;
use ferro_spec::{CniError, Request};

use crate::error::PodError;
use crate::firewall::{pod_firewall, union};

/// `snat` (or the spec's `ipMasq`), `antiSpoofing` and `nonMasqueradeCIDRs`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedKeys {
    /// More destinations that keep the pod's address (ip-masq-agent's
    /// `nonMasqueradeCIDRs`), host bits dropped.
    pub non_masquerade_cidrs: Vec<IpNet>,
    /// SNAT the pod's traffic to the node's address when it leaves the network (default on).
    pub snat: bool,
    /// Drop packets from a pod whose source is not one of its addresses (default on).
    pub anti_spoofing: bool,
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

impl SharedKeys {
    /// Reads the shared keys and requires an `ipam` section (code 7 naming `ipam`, with
    /// `ipam_example` saying what it should allocate from); a key of the wrong type is code 6
    /// naming it. `ipMasq` is the spec's well-known key for the same switch as `snat`;
    /// `snat` wins when both are set.
    pub fn from_request(req: &Request, ipam_example: &'static str) -> Result<Self, CniError> {
        let raw: Raw = req.section()?;
        if req.conf.ipam_type().is_none() {
            return Err(PodError::IpamRequired {
                example: ipam_example,
            }
            .into());
        }
        Ok(SharedKeys {
            non_masquerade_cidrs: raw.non_masquerade_cidrs.iter().map(IpNet::trunc).collect(),
            snat: raw.snat.or(raw.ip_masq).unwrap_or(true),
            anti_spoofing: raw.anti_spoofing.unwrap_or(true),
        })
    }

    /// The pod firewall of a transparent-mode network: SNAT except towards `network_cidrs`
    /// (the VNet, the pod CIDR) and `nonMasqueradeCIDRs`; anti-spoofing on the
    /// transparent-mode host veths.
    pub fn firewall(&self, network: &str, network_cidrs: &[IpNet]) -> PodFirewall {
        pod_firewall(
            network,
            self.snat,
            union(network_cidrs, &self.non_masquerade_cidrs),
            self.anti_spoofing.then_some(transparent::HOST_PREFIX),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferro_testutil::{add_request, with_keys};
    use serde_json::{json, Value};

    fn parse(extra: Value) -> Result<SharedKeys, CniError> {
        let base = json!({"cniVersion": "1.1.0", "name": "azure", "type": "flat", "ipam": {"type": "host-local"}});
        SharedKeys::from_request(&add_request(with_keys(base, extra)), "host-local")
    }

    #[test]
    fn defaults_are_snat_and_antispoofing_on() {
        let k = parse(json!({})).unwrap();
        assert!(k.snat && k.anti_spoofing && k.non_masquerade_cidrs.is_empty());
    }

    #[test]
    fn snat_wins_over_ip_masq_and_cidrs_are_normalized() {
        assert!(!parse(json!({"ipMasq": false})).unwrap().snat);
        assert!(parse(json!({"ipMasq": false, "snat": true})).unwrap().snat);
        let k =
            parse(json!({"antiSpoofing": false, "nonMasqueradeCIDRs": ["10.1.2.3/8"]})).unwrap();
        assert!(!k.anti_spoofing);
        assert_eq!(k.non_masquerade_cidrs, vec!["10.0.0.0/8".parse().unwrap()]);
    }

    #[test]
    fn errors_name_the_key() {
        for (extra, key, code) in [
            (json!({"snat": "yes"}), "snat", 6),
            (json!({"antiSpoofing": 1}), "antiSpoofing", 6),
            (
                json!({"nonMasqueradeCIDRs": ["nope"]}),
                "nonMasqueradeCIDRs",
                7,
            ),
            (json!({"ipam": null}), "ipam", 7),
        ] {
            let e = parse(extra).unwrap_err();
            assert_eq!(e.code.number(), code, "{key}: {}", e.msg);
            assert!(e.msg.contains(key), "{}", e.msg);
        }
        let e = parse(json!({"ipam": null})).unwrap_err();
        assert_eq!(e.msg, "ipam: required (e.g. host-local)");
    }

    #[test]
    fn the_firewall_keeps_the_network_and_the_extra_cidrs() {
        let k = parse(json!({"nonMasqueradeCIDRs": ["10.0.0.0/8", "10.244.0.0/16"]})).unwrap();
        let f = k.firewall("ovl", &["10.244.0.0/16".parse().unwrap()]);
        let m = f.masq.unwrap();
        assert_eq!(
            m.non_masquerade,
            vec![
                "10.244.0.0/16".parse::<IpNet>().unwrap(),
                "10.0.0.0/8".parse().unwrap()
            ]
        );
        assert_eq!(
            f.antispoof_prefix.as_deref(),
            Some(transparent::HOST_PREFIX)
        );
        let off = parse(json!({"snat": false, "antiSpoofing": false})).unwrap();
        assert!(off.firewall("ovl", &[]).is_empty());
    }
}
