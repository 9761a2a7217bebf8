//! The pure plan: from the validated config, the attachment and the IPAM result to what
//! must exist. No kernel calls here; `plugin.rs` applies it.

use std::net::IpAddr;

use ipnet::IpNet;

use ferro_net::names;
use ferro_net::rtnl::RouteSpec;
use ferro_spec::{CniError, CniResult, Interface, IpConfig, Route};

use crate::config::Config;

/// Index of the container interface in the result (`[bridge, host veth, container]`).
pub const CONTAINER_INDEX: usize = 2;

/// Prefix of our host-side veth names: `veth` + 11 hex digits of the attachment hash.
pub const HOST_PREFIX: &str = "veth";

/// What ADD creates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Host veth name.
    pub host_veth: String,
    /// Host veth MAC.
    pub host_mac: [u8; 6],
    /// Container interface MAC.
    pub container_mac: [u8; 6],
    /// Container addresses (IPAM result, prefix of the subnet).
    pub addrs: Vec<IpNet>,
    /// Container routes (gateway filled in).
    pub routes: Vec<RouteSpec>,
    /// Gateway addresses for the bridge, with the subnet prefix (when `isGateway`).
    pub gateways: Vec<IpNet>,
    /// Pod subnets (never masqueraded).
    pub subnets: Vec<IpNet>,
    /// The result, but for the bridge's MAC (known once the bridge exists).
    pub result: CniResult,
}

/// The first address of `net` (network + 1): the reference plugin's default gateway.
pub fn first_host(net: IpNet) -> IpAddr {
    match net.trunc() {
        IpNet::V4(n) => IpAddr::V4((u32::from(n.network()) + 1).into()),
        IpNet::V6(n) => IpAddr::V6((u128::from(n.network()) + 1).into()),
    }
}

fn default_dst(v4: bool) -> IpNet {
    if v4 {
        IpNet::V4(ipnet::Ipv4Net::default())
    } else {
        IpNet::V6(ipnet::Ipv6Net::default())
    }
}

/// The container MAC: `CNI_ARGS MAC=`, then `args.cni.mac`, then `runtimeConfig.mac` (last
/// one wins, as in the reference), else derived from the attachment.
pub fn container_mac(req: &ferro_spec::Request) -> Result<[u8; 6], CniError> {
    let mut chosen: Option<(String, &str)> = None;
    if let Some(m) = req.cmd.args.get("MAC") {
        chosen = Some((m.to_string(), "CNI_ARGS MAC"));
    }
    if let Some(m) = req.conf.cni_arg("mac").and_then(|v| v.as_str()) {
        chosen = Some((m.to_string(), "args.cni.mac"));
    }
    if let Some(m) = req.conf.runtime_config.mac() {
        chosen = Some((m.to_string(), "runtimeConfig.mac"));
    }
    match chosen {
        None => Ok(names::mac(&["pod", &req.cmd.container_id, &req.cmd.ifname])),
        Some((s, from)) => names::parse_mac(&s)
            .filter(|m| m[0] & 1 == 0)
            .ok_or_else(|| {
                CniError::invalid_config(format!("{from}: invalid unicast MAC address {s:?}"))
            }),
    }
}

/// Builds the plan.
pub fn plan(
    cfg: &Config,
    container_id: &str,
    ifname: &str,
    netns: &str,
    container_mac: [u8; 6],
    ipam: &CniResult,
) -> Result<Plan, CniError> {
    let host_veth = names::host_ifname(HOST_PREFIX, container_id, ifname);
    let host_mac = names::mac(&["host", container_id, ifname]);
    let mut result = CniResult {
        interfaces: vec![
            Interface {
                name: cfg.bridge.clone(),
                ..Interface::default()
            },
            Interface {
                name: host_veth.clone(),
                mac: Some(names::mac_string(&host_mac)),
                mtu: cfg.mtu,
                ..Interface::default()
            },
            Interface {
                name: ifname.to_string(),
                mac: Some(names::mac_string(&container_mac)),
                mtu: cfg.mtu,
                sandbox: Some(netns.to_string()),
                ..Interface::default()
            },
        ],
        ips: Vec::new(),
        routes: ipam.routes.clone(),
        dns: cfg.dns.clone().unwrap_or_else(|| ipam.dns.clone()),
    };
    let mut gateways = Vec::new();
    let mut subnets = Vec::new();
    for ip in &ipam.ips {
        let subnet = ip.address.trunc();
        let gw = match ip.gateway {
            Some(g) => Some(g),
            None if cfg.is_gateway => Some(first_host(subnet)),
            None => None,
        };
        if gw == Some(ip.address.addr()) {
            return Err(CniError::invalid_config(format!(
                "ipam returned {} whose gateway is the address itself",
                ip.address
            )));
        }
        if let (true, Some(g)) = (cfg.is_gateway, gw) {
            if !subnet.contains(&g) {
                return Err(CniError::invalid_config(format!(
                    "gateway {g} is outside the pod subnet {subnet}"
                )));
            }
            let gnet = IpNet::new(g, subnet.prefix_len())
                .map_err(|e| CniError::internal(e.to_string()))?;
            if !gateways.contains(&gnet) {
                gateways.push(gnet);
            }
        }
        if !subnets.contains(&subnet) {
            subnets.push(subnet);
        }
        result.ips.push(IpConfig {
            address: ip.address,
            gateway: gw,
            interface: Some(CONTAINER_INDEX),
        });
    }
    if cfg.is_default_gateway {
        for v4 in [true, false] {
            let has_default = result
                .routes
                .iter()
                .any(|r| r.dst().prefix_len() == 0 && r.dst().addr().is_ipv4() == v4);
            let gw = result
                .ips
                .iter()
                .find(|i| i.address.addr().is_ipv4() == v4)
                .and_then(|i| i.gateway);
            if let (false, Some(gw)) = (has_default, gw) {
                result.routes.push(Route::new(default_dst(v4), Some(gw)));
            }
        }
    }
    let routes = result
        .routes
        .iter()
        .map(|r| {
            let v4 = r.dst().addr().is_ipv4();
            let gw = r.gw.or_else(|| {
                result
                    .ips
                    .iter()
                    .find(|i| i.address.addr().is_ipv4() == v4)
                    .and_then(|i| i.gateway)
            });
            let mut spec = RouteSpec::new(r.dst().trunc(), gw, None);
            spec.mtu = r.mtu;
            spec.advmss = r.advmss;
            spec.priority = r.priority;
            spec.table = r.table;
            spec.scope = r.scope;
            spec
        })
        .collect();
    Ok(Plan {
        host_veth,
        host_mac,
        container_mac,
        addrs: result.ips.iter().map(|i| i.address).collect(),
        routes,
        gateways,
        subnets,
        result,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg(extra: serde_json::Value) -> Config {
        let conf = ferro_testutil::with_keys(
            json!({"cniVersion": "1.0.0", "name": "n", "type": "bridge"}),
            extra,
        );
        Config::from_request(&ferro_testutil::add_request(conf)).unwrap()
    }

    fn ipam(v: serde_json::Value) -> CniResult {
        CniResult::from_value(&v).unwrap()
    }

    #[test]
    fn b7_result_layout_bridge_host_container() {
        let p = plan(
            &cfg(json!({"bridge": "cbr0", "isGateway": true, "mtu": 1460})),
            "ctr1",
            "eth0",
            "/run/netns/p",
            [2, 0, 0, 0, 0, 9],
            &ipam(json!({"ips": [{"address": "10.244.1.5/24", "gateway": "10.244.1.1"}], "routes": [{"dst": "0.0.0.0/0"}]})),
        )
        .unwrap();
        let r = p.result.to_value(ferro_spec::Version::V1_1_0).unwrap();
        assert_eq!(r["interfaces"][0]["name"], "cbr0");
        assert!(r["interfaces"][1]["name"]
            .as_str()
            .unwrap()
            .starts_with("veth"));
        assert_eq!(r["interfaces"][1]["name"].as_str().unwrap().len(), 15);
        assert_eq!(
            r["interfaces"][2],
            json!({"name": "eth0", "mac": "02:00:00:00:00:09", "mtu": 1460, "sandbox": "/run/netns/p"})
        );
        assert_eq!(
            r["ips"][0],
            json!({"address": "10.244.1.5/24", "gateway": "10.244.1.1", "interface": 2})
        );
        assert_eq!(r["routes"], json!([{"dst": "0.0.0.0/0"}]));
        assert_eq!(p.gateways, vec!["10.244.1.1/24".parse::<IpNet>().unwrap()]);
        assert_eq!(
            p.routes[0].gw,
            Some("10.244.1.1".parse().unwrap()),
            "route gw defaults to the family's gateway"
        );
        assert_eq!(p.subnets, vec!["10.244.1.0/24".parse::<IpNet>().unwrap()]);
    }

    #[test]
    fn b3_default_gateway_adds_a_default_route_per_family() {
        let p = plan(
            &cfg(json!({"isDefaultGateway": true})),
            "c",
            "eth0",
            "/x",
            [2, 0, 0, 0, 0, 1],
            &ipam(json!({"ips": [{"address": "10.98.0.2/24"}, {"address": "fd00:98::2/64"}]})),
        )
        .unwrap();
        let r = p.result.to_value(ferro_spec::Version::V0_3_1).unwrap();
        assert_eq!(
            r["routes"],
            json!([{"dst": "0.0.0.0/0", "gw": "10.98.0.1"}, {"dst": "::/0", "gw": "fd00:98::1"}])
        );
        assert_eq!(
            r["ips"][0]["gateway"], "10.98.0.1",
            "gateway defaults to network+1 with isGateway"
        );
        assert_eq!(p.gateways.len(), 2);
    }

    #[test]
    fn without_gateway_no_bridge_address_and_no_default_route() {
        let p = plan(
            &cfg(json!({})),
            "c",
            "eth0",
            "/x",
            [2, 0, 0, 0, 0, 1],
            &ipam(json!({"ips": [{"address": "10.98.0.2/24"}]})),
        )
        .unwrap();
        assert!(p.gateways.is_empty());
        assert!(p.routes.is_empty());
        assert_eq!(p.result.ips[0].gateway, None);
    }

    #[test]
    fn config_dns_overrides_ipam_dns() {
        let p = plan(
            &cfg(json!({"dns": {"nameservers": ["10.0.0.10"]}})),
            "c",
            "eth0",
            "/x",
            [2, 0, 0, 0, 0, 1],
            &ipam(
                json!({"ips": [{"address": "10.98.0.2/24"}], "dns": {"nameservers": ["1.1.1.1"]}}),
            ),
        )
        .unwrap();
        assert_eq!(p.result.dns.nameservers, vec!["10.0.0.10".to_string()]);
    }

    #[test]
    fn host_names_and_macs_are_per_attachment() {
        let a = plan(
            &cfg(json!({})),
            "c1",
            "eth0",
            "/x",
            [2, 0, 0, 0, 0, 1],
            &CniResult::default(),
        )
        .unwrap();
        let b = plan(
            &cfg(json!({})),
            "c2",
            "eth0",
            "/x",
            [2, 0, 0, 0, 0, 1],
            &CniResult::default(),
        )
        .unwrap();
        assert_ne!(a.host_veth, b.host_veth);
        assert_ne!(a.host_mac, b.host_mac);
    }

    #[test]
    fn a_gateway_equal_to_the_address_is_refused() {
        let e = plan(
            &cfg(json!({"isGateway": true})),
            "c",
            "eth0",
            "/x",
            [2, 0, 0, 0, 0, 1],
            &ipam(json!({"ips": [{"address": "10.98.0.1/24"}]})),
        )
        .unwrap_err();
        assert_eq!(e.code.number(), 7);
    }
}
