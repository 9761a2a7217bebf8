//! The pure plan: from the config (node defaults resolved), the attachment and the IPAM
//! result to the pod attachment, the result and the addresses to publish and SNAT.

use ipnet::IpNet;

use ferro_net::transparent::TransparentPod;
use ferro_spec::{CniError, CniResult};

use crate::config::Config;

/// What ADD creates.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The pod attachment.
    pub pod: TransparentPod,
    /// Destinations that keep the pod's source address.
    pub no_masq: Vec<IpNet>,
    /// The result.
    pub result: CniResult,
}

/// Builds the plan. `vnet` are the VNet CIDRs (configured or the uplink's subnets), `mtu`
/// the MTU to use.
pub fn plan(
    cfg: &Config,
    container_id: &str,
    ifname: &str,
    netns: &str,
    vnet: &[IpNet],
    mtu: Option<u32>,
    ipam: &CniResult,
) -> Result<Plan, CniError> {
    if ipam.ips.is_empty() {
        return Err(CniError::invalid_config("ipam returned no address"));
    }
    let pod = TransparentPod {
        container_id: container_id.to_string(),
        ifname: ifname.to_string(),
        addrs: ipam.ips.iter().map(|i| i.address).collect(),
        mtu,
        extra_routes: ipam.routes.iter().map(|r| r.dst()).collect(),
    };
    for a in &pod.addrs {
        if !vnet.iter().any(|v| v.contains(&a.addr())) {
            log::warn!("pod address {a} is outside the VNet CIDRs {vnet:?}: its traffic to the VNet will be masqueraded");
        }
    }
    let result = pod.result(netns, cfg.dns.clone().unwrap_or_else(|| ipam.dns.clone()));
    let mut no_masq: Vec<IpNet> = vnet.to_vec();
    for c in &cfg.non_masquerade_cidrs {
        if !no_masq.contains(c) {
            no_masq.push(*c);
        }
    }
    Ok(Plan {
        pod,
        no_masq,
        result,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferro_net::names::mac_string;
    use serde_json::json;

    fn cfg() -> Config {
        Config {
            uplink: None,
            vnet_cidrs: None,
            non_masquerade_cidrs: vec!["10.0.0.0/8".parse().unwrap()],
            snat: true,
            publish_pod_addresses: true,
            anti_spoofing: true,
            mtu: None,
            dns: None,
        }
    }

    #[test]
    fn result_points_every_route_at_the_virtual_gateway() {
        let ipam = CniResult::from_value(&json!({"ips": [{"address": "10.240.0.20/16", "gateway": "10.240.0.1"}, {"address": "fd00:240::20/64"}],
            "routes": [{"dst": "0.0.0.0/0"}, {"dst": "192.168.0.0/16", "gw": "10.240.0.1"}]}))
        .unwrap();
        let p = plan(
            &cfg(),
            "c1",
            "eth0",
            "/run/netns/p",
            &["10.240.0.0/16".parse().unwrap()],
            Some(1500),
            &ipam,
        )
        .unwrap();
        let r = p.result.to_value(ferro_spec::Version::V1_1_0).unwrap();
        assert_eq!(r["interfaces"].as_array().unwrap().len(), 2);
        assert!(r["interfaces"][0]["name"]
            .as_str()
            .unwrap()
            .starts_with("fc"));
        assert_eq!(r["interfaces"][1]["sandbox"], "/run/netns/p");
        assert_eq!(
            r["ips"][0],
            json!({"address": "10.240.0.20/16", "gateway": "169.254.1.1", "interface": 1})
        );
        assert_eq!(r["ips"][1]["gateway"], "fe80::1234:5678:9abc");
        assert_eq!(
            r["routes"],
            json!([{"dst": "0.0.0.0/0", "gw": "169.254.1.1"}, {"dst": "::/0", "gw": "fe80::1234:5678:9abc"}, {"dst": "192.168.0.0/16", "gw": "169.254.1.1"}])
        );
        assert_eq!(
            p.no_masq,
            vec![
                "10.240.0.0/16".parse::<IpNet>().unwrap(),
                "10.0.0.0/8".parse().unwrap()
            ]
        );
        assert_eq!(r["interfaces"][0]["mac"], mac_string(&p.pod.host_mac()));
    }

    #[test]
    fn an_empty_ipam_result_is_refused() {
        assert_eq!(
            plan(&cfg(), "c", "eth0", "/x", &[], None, &CniResult::default())
                .unwrap_err()
                .code
                .number(),
            7
        );
    }
}
