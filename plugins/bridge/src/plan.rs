//! The pure plan of `bridge`: every decision, none of the kernel calls (`apply.rs` makes
//! those). In the order ADD takes them:
//!
//! 1. [`attachment`], before anything touches the kernel or IPAM: the names and MACs of the
//!    veth pair (a bad `MAC` argument is code 7 with nothing created, no lease taken);
//! 2. [`plan`], once IPAM has answered and before the link work: addresses, routes, the
//!    gateways for the bridge, the firewall and the result (an unusable IPAM result is code
//!    7 before any link exists; the lease is given back);
//! 3. [`gateway_clash`], from the bridge's addresses read when a gateway was new to it: the
//!    `forceAddress` decision.
//!
//! CHECK compares what [`Facts`] holds with `prevResult` in [`check`].

use std::net::IpAddr;

use ipnet::IpNet;

use ferro_net::firewall::{MasqSpec, PodFirewall};
use ferro_net::names;
use ferro_net::rtnl::{Link, RouteSpec, MAIN_TABLE};
use ferro_pod::{is_link_local, Difference, Differences, Inputs, Masquerade, PodError};
use ferro_spec::{CniResult, Interface, IpConfig, Request, Route};

use crate::config::Config;

/// Index of the container interface in the result (`[bridge, host veth, container]`).
pub const CONTAINER_INDEX: usize = 2;

/// Prefix of our host-side veth names: `veth` + 11 hex digits of the attachment hash.
pub const HOST_PREFIX: &str = "veth";

/// The veth pair of one attachment, named and addressed before any kernel call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// `CNI_IFNAME`, the container end.
    pub ifname: String,
    /// The host end, named after the attachment so DEL finds it without the pod's namespace.
    pub host_veth: String,
    /// Host veth MAC.
    pub host_mac: [u8; 6],
    /// Container interface MAC.
    pub container_mac: [u8; 6],
}

/// What ADD creates once the bridge exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The veth pair.
    pub att: Attachment,
    /// Container addresses (IPAM result, prefix of the subnet).
    pub addrs: Vec<IpNet>,
    /// Container routes (gateway filled in).
    pub routes: Vec<RouteSpec>,
    /// Gateway addresses for the bridge, with the subnet prefix (when `isGateway`).
    pub gateways: Vec<IpNet>,
    /// The pod has IPv4 / IPv6 addresses (forwarding, `accept_ra`).
    pub v4: bool,
    /// See `v4`.
    pub v6: bool,
    /// The network's pod firewall (masquerade except towards the pod subnets and
    /// `nonMasqueradeCIDRs`).
    pub firewall: PodFirewall,
    /// The result, but for the bridge's MAC (known once the bridge exists).
    pub result: CniResult,
}

impl Plan {
    /// The pod's addresses without their prefixes (firewall set elements).
    pub fn ips(&self) -> Vec<IpAddr> {
        self.addrs.iter().map(IpNet::addr).collect()
    }
}

/// Whether ADD turns IPv6 duplicate address detection off on the bridge before the pod's
/// side comes up: for an IPv6 pod when no port of the bridge carries yet. The bridge's
/// link-local address then appears (again) with this pod, and would stay tentative for
/// DAD's second or two, during which the kernel sends no neighbour solicitation for traffic
/// it forwards to the pods: a new pod would be unreachable from other nodes. Nothing but
/// pod veths is on the bridge to clash with.
pub fn bridge_dad_off(plan: &Plan, bridge: &Link) -> bool {
    plan.v6 && !bridge.lower_up
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

/// The host veth of an attachment.
pub fn host_veth(container_id: &str, ifname: &str) -> String {
    names::host_ifname(HOST_PREFIX, container_id, ifname)
}

/// The container MAC: `CNI_ARGS MAC=`, then `args.cni.mac`, then `runtimeConfig.mac` (last
/// one wins, as in the reference), else derived from the attachment.
pub fn container_mac(req: &Request) -> Result<[u8; 6], PodError> {
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
            .ok_or_else(|| PodError::Invalid(format!("{from}: invalid unicast MAC address {s:?}"))),
    }
}

/// Step 1: the veth pair of the request's attachment.
pub fn attachment(req: &Request) -> Result<Attachment, PodError> {
    let (id, ifname) = (&req.cmd.container_id, &req.cmd.ifname);
    Ok(Attachment {
        ifname: ifname.clone(),
        host_veth: host_veth(id, ifname),
        host_mac: names::mac(&["host", id, ifname]),
        container_mac: container_mac(req)?,
    })
}

/// The masquerade of [`firewall`] as the node's agent adds it for the addresses it hands
/// out (`MasqSpec::for_addresses` with `nonMasqueradeCIDRs`): `None` without `ipMasq`.
pub fn agent_masquerade(cfg: &Config) -> Option<Masquerade> {
    cfg.ip_masq.then(|| Masquerade {
        keep_source: cfg.non_masquerade_cidrs.clone(),
    })
}

/// The network's pod firewall for pods in `subnets`.
pub fn firewall(network: &str, cfg: &Config, subnets: &[IpNet]) -> PodFirewall {
    // The same construction as the agent's (`agent_masquerade`), so both add the same chains.
    PodFirewall {
        masq: cfg
            .ip_masq
            .then(|| MasqSpec::for_addresses(network, subnets, &cfg.non_masquerade_cidrs)),
        antispoof_prefix: None,
    }
}

/// Step 2: from the IPAM result (empty without `ipam`) to what ADD creates.
pub fn plan(cfg: &Config, att: &Attachment, i: &Inputs<'_>) -> Result<Plan, PodError> {
    let ipam = i.ipam;
    let mut result = CniResult {
        interfaces: vec![
            Interface {
                name: cfg.bridge.clone(),
                ..Interface::default()
            },
            Interface {
                name: att.host_veth.clone(),
                mac: Some(names::mac_string(&att.host_mac)),
                mtu: cfg.mtu,
                ..Interface::default()
            },
            Interface {
                name: att.ifname.clone(),
                mac: Some(names::mac_string(&att.container_mac)),
                mtu: cfg.mtu,
                sandbox: Some(i.sandbox.to_string()),
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
            return Err(PodError::Invalid(format!(
                "ipam returned {} whose gateway is the address itself",
                ip.address
            )));
        }
        if let (true, Some(g)) = (cfg.is_gateway, gw) {
            if !subnet.contains(&g) {
                return Err(PodError::Invalid(format!(
                    "gateway {g} is outside the pod subnet {subnet}"
                )));
            }
            let gnet = IpNet::new(g, subnet.prefix_len())
                .map_err(|e| PodError::Invalid(format!("gateway {g}: {e}")))?;
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
    let addrs: Vec<IpNet> = result.ips.iter().map(|i| i.address).collect();
    Ok(Plan {
        att: att.clone(),
        v4: addrs.iter().any(|a| a.addr().is_ipv4()),
        v6: addrs.iter().any(|a| a.addr().is_ipv6()),
        addrs,
        routes,
        gateways,
        firewall: firewall(&i.req.conf.name, cfg, &subnets),
        result,
    })
}

/// Step 3, for a gateway `gw` just added to `bridge`, given every address the bridge now
/// has: the addresses to remove (those of the family that clash with it, with
/// `forceAddress`), or code 7 naming them (without it; reference behaviour). Link-local
/// addresses never clash; an IPv6 address clashes only when one prefix holds the other.
pub fn gateway_clash(
    bridge: &str,
    gw: IpNet,
    have: &[IpNet],
    force: bool,
) -> Result<Vec<IpNet>, PodError> {
    let clashing: Vec<IpNet> = have
        .iter()
        .copied()
        .filter(|a| {
            *a != gw
                && a.addr().is_ipv4() == gw.addr().is_ipv4()
                && !is_link_local(a.addr())
                && (gw.addr().is_ipv4() || a.contains(&gw.addr()) || gw.contains(&a.addr()))
        })
        .collect();
    if clashing.is_empty() || force {
        return Ok(clashing);
    }
    Err(PodError::Invalid(format!(
        "{bridge:?} already has an IP address different from {gw}: {} (set forceAddress to replace it)",
        clashing
            .iter()
            .map(IpNet::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    )))
}

/// What CHECK reads of one attachment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// The link named like the bridge, if any.
    pub bridge: Option<Link>,
    /// The container interface, if it exists.
    pub container: Option<Link>,
    /// The host veth, if it exists.
    pub host_veth: Option<Link>,
    /// The container interface's addresses (read when it exists and is configured).
    pub container_addrs: Vec<IpNet>,
    /// The pod's routes in the families and tables of `prevResult`'s routes.
    pub container_routes: Vec<RouteSpec>,
    /// The bridge's addresses (read with `isGateway`).
    pub bridge_addrs: Vec<IpNet>,
}

/// What CHECK expects: `prevResult` as seen from this request.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    /// `prevResult`.
    pub prev: &'a CniResult,
    /// `CNI_IFNAME`.
    pub ifname: &'a str,
    /// `CNI_NETNS` as results name it.
    pub netns: &'a str,
    /// The attachment's host veth.
    pub host_veth: &'a str,
}

/// The `(IPv6, table)` pairs whose routes CHECK reads: those of `prevResult`'s routes.
pub fn route_tables(prev: &CniResult) -> Vec<(bool, Option<u32>)> {
    let mut v = Vec::new();
    for r in &prev.routes {
        let k = (r.dst().addr().is_ipv6(), r.table);
        if !v.contains(&k) {
            v.push(k);
        }
    }
    v
}

/// CHECK: how the facts differ from what ADD made (the spec asks for an error when something
/// that ADD made or `prevResult` lists is missing or in an invalid state): the bridge,
/// the container interface as `prevResult` gives it, its host veth on the bridge, hairpin,
/// and, for a configured interface, its addresses and routes and the gateways on the bridge.
pub fn check(cfg: &Config, want: &Expected<'_>, f: &Facts) -> Differences {
    let mut d = Differences::default();
    let ifname = want.ifname.to_string();
    match &f.bridge {
        None => d.push(Difference::LinkMissing {
            role: "bridge",
            name: cfg.bridge.clone(),
        }),
        Some(br) if br.kind.as_deref() != Some("bridge") => d.push(Difference::NotA {
            name: cfg.bridge.clone(),
            kind: "bridge",
        }),
        Some(br) if cfg.promisc_mode && !br.promisc => d.push(Difference::Setting {
            link: cfg.bridge.clone(),
            setting: "promiscuous mode",
            have: "off".into(),
            want: "on".into(),
        }),
        Some(_) => {}
    }
    let Some(idx) = want.prev.container_interface(want.ifname) else {
        d.push(Difference::NotInPrevResult { ifname });
        return d;
    };
    let iface = &want.prev.interfaces[idx];
    if iface.sandbox.as_deref() != Some(want.netns) {
        d.push(Difference::Sandbox {
            ifname: ifname.clone(),
            have: iface.sandbox.clone(),
            want: want.netns.to_string(),
        });
    }
    match &f.container {
        None => d.push(Difference::LinkMissing {
            role: "container interface",
            name: ifname.clone(),
        }),
        Some(link) => {
            if let (Some(m), Some(have)) = (&iface.mac, link.mac_string()) {
                if !m.eq_ignore_ascii_case(&have) {
                    d.push(Difference::Setting {
                        link: ifname.clone(),
                        setting: "MAC",
                        have,
                        want: m.clone(),
                    });
                }
            }
        }
    }
    match &f.host_veth {
        None => d.push(Difference::LinkMissing {
            role: "host interface",
            name: want.host_veth.to_string(),
        }),
        Some(hv) => {
            if f.bridge
                .as_ref()
                .is_none_or(|br| hv.master != Some(br.index))
            {
                d.push(Difference::NotAPort {
                    port: want.host_veth.to_string(),
                    bridge: cfg.bridge.clone(),
                });
            }
            if cfg.hairpin_mode && hv.hairpin != Some(true) {
                d.push(Difference::Setting {
                    link: want.host_veth.to_string(),
                    setting: "hairpin",
                    have: "off".into(),
                    want: "on".into(),
                });
            }
        }
    }
    if cfg.disable_container_interface {
        return d;
    }
    let Some(link) = &f.container else {
        return d;
    };
    if !link.up {
        d.push(Difference::Down {
            name: ifname.clone(),
        });
    }
    let addrs = want.prev.addresses_of(want.ifname);
    for ip in &addrs {
        if !f.container_addrs.contains(&ip.address) {
            d.push(Difference::AddressMissing {
                address: ip.address,
                link: ifname.clone(),
            });
        }
    }
    for r in &want.prev.routes {
        let table = Some(r.table.unwrap_or(MAIN_TABLE));
        if !f.container_routes.iter().any(|x| {
            x.table == table
                && x.dst == r.dst().trunc()
                && x.oif == Some(link.index)
                && (r.gw.is_none() || x.gw == r.gw)
        }) {
            d.push(Difference::RouteMissing {
                dst: r.dst(),
                via: r.gw,
                place: "in the container",
            });
        }
    }
    if cfg.is_gateway && f.bridge.is_some() {
        for gw in addrs.iter().filter_map(|i| i.gateway) {
            if !f.bridge_addrs.iter().any(|a| a.addr() == gw) {
                d.push(Difference::GatewayMissing {
                    gateway: gw,
                    bridge: cfg.bridge.clone(),
                });
            }
        }
    }
    d
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

    fn att(id: &str, container_mac: [u8; 6]) -> Attachment {
        Attachment {
            ifname: "eth0".into(),
            host_veth: host_veth(id, "eth0"),
            host_mac: names::mac(&["host", id, "eth0"]),
            container_mac,
        }
    }

    /// `plan` for container `id`, interface eth0, network `n`.
    fn planned(
        cfg: &Config,
        id: &str,
        netns: &str,
        mac: [u8; 6],
        ipam: &CniResult,
    ) -> Result<Plan, PodError> {
        let req = ferro_testutil::add_request(
            json!({"cniVersion": "1.0.0", "name": "n", "type": "bridge"}),
        );
        let i = Inputs {
            req: &req,
            sandbox: netns,
            ipam,
        };
        plan(cfg, &att(id, mac), &i)
    }

    #[test]
    fn result_layout_bridge_host_container() {
        let p = planned(
            &cfg(json!({"bridge": "cbr0", "isGateway": true, "mtu": 1460})),
            "ctr1",
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
        assert_eq!(p.firewall.masq, None, "no masquerade without ipMasq");
    }

    #[test]
    fn default_gateway_adds_a_default_route_per_family() {
        let p = planned(
            &cfg(json!({"isDefaultGateway": true})),
            "c",
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
    fn dad_goes_off_on_a_bridge_without_carrier_for_ipv6_pods_only() {
        let c = cfg(json!({"isGateway": true}));
        let dual = planned(
            &c,
            "c",
            "/x",
            [2, 0, 0, 0, 0, 1],
            &ipam(json!({"ips": [{"address": "10.98.0.2/24"}, {"address": "fd00:98::2/64"}]})),
        )
        .unwrap();
        let v4 = planned(
            &c,
            "c",
            "/x",
            [2, 0, 0, 0, 0, 1],
            &ipam(json!({"ips": [{"address": "10.98.0.2/24"}]})),
        )
        .unwrap();
        let fresh = Link::default();
        let carrying = Link {
            lower_up: true,
            ..Link::default()
        };
        assert!(bridge_dad_off(&dual, &fresh));
        assert!(
            !bridge_dad_off(&dual, &carrying),
            "a bridge whose ports carry has long passed DAD: nothing to write"
        );
        assert!(!bridge_dad_off(&v4, &fresh));
    }

    #[test]
    fn without_gateway_no_bridge_address_and_no_default_route() {
        let p = planned(
            &cfg(json!({})),
            "c",
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
        let p = planned(
            &cfg(json!({"dns": {"nameservers": ["10.0.0.10"]}})),
            "c",
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
        let req = |id: &str| {
            let mut r = ferro_testutil::add_request(
                json!({"cniVersion": "1.0.0", "name": "n", "type": "bridge"}),
            );
            r.cmd.container_id = id.into();
            r
        };
        let (a, b) = (
            attachment(&req("c1")).unwrap(),
            attachment(&req("c2")).unwrap(),
        );
        assert_ne!(a.host_veth, b.host_veth);
        assert_ne!(a.host_mac, b.host_mac);
        assert_ne!(a.container_mac, b.container_mac);
        assert_eq!(a, attachment(&req("c1")).unwrap(), "derived, not random");
        assert!(a.host_veth.starts_with(HOST_PREFIX) && a.host_veth.len() == 15);
        assert_eq!(a.host_veth, host_veth("c1", "eth0"));
    }

    #[test]
    fn the_mac_argument_last_given_wins_and_a_bad_one_is_code_7() {
        let req = |conf: serde_json::Value, cni_args: &str| {
            let mut r = ferro_testutil::add_request(ferro_testutil::with_keys(
                json!({"cniVersion": "1.0.0", "name": "n", "type": "bridge"}),
                conf,
            ));
            r.cmd.args = ferro_spec::args::CniArgs::parse(cni_args).unwrap();
            r
        };
        let both = req(
            json!({"args": {"cni": {"mac": "02:00:00:00:00:02"}}}),
            "MAC=02:00:00:00:00:01",
        );
        assert_eq!(container_mac(&both).unwrap(), [2, 0, 0, 0, 0, 2]);
        let only_env = req(json!({}), "MAC=02:00:00:00:00:01");
        assert_eq!(container_mac(&only_env).unwrap(), [2, 0, 0, 0, 0, 1]);
        let multicast = req(json!({}), "MAC=01:00:5e:00:00:01");
        let e = ferro_spec::CniError::from(attachment(&multicast).unwrap_err());
        assert_eq!(e.code.number(), 7);
        assert!(e.msg.contains("CNI_ARGS MAC"), "{}", e.msg);
    }

    #[test]
    fn masquerade_keeps_the_pod_subnets_and_the_extra_cidrs() {
        let p = planned(
            &cfg(json!({"ipMasq": true, "nonMasqueradeCIDRs": ["10.0.0.0/8", "10.244.1.0/24"]})),
            "c",
            "/x",
            [2, 0, 0, 0, 0, 1],
            &ipam(json!({"ips": [{"address": "10.244.1.5/24"}, {"address": "fd00:244::5/64"}]})),
        )
        .unwrap();
        let m = p.firewall.masq.clone().unwrap();
        assert_eq!(m.network, "n");
        assert_eq!(
            m.non_masquerade,
            ["10.244.1.0/24", "fd00:244::/64", "10.0.0.0/8"]
                .iter()
                .map(|s| s.parse::<IpNet>().unwrap())
                .collect::<Vec<_>>()
        );
        assert_eq!(p.firewall.antispoof_prefix, None);
        // what the node's agent adds for the same addresses, asked with `agent_masquerade`
        let c = cfg(json!({"ipMasq": true, "nonMasqueradeCIDRs": ["10.0.0.0/8", "10.244.1.0/24"]}));
        let asked = agent_masquerade(&c).unwrap();
        let addresses: Vec<IpNet> = ["10.244.1.5/24", "fd00:244::5/64"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(
            ferro_net::firewall::MasqSpec::for_addresses("n", &addresses, &asked.keep_source),
            m
        );
        assert_eq!(agent_masquerade(&cfg(json!({"ipMasq": false}))), None);
        assert!(p.v4 && p.v6);
        assert_eq!(
            p.ips(),
            vec![
                "10.244.1.5".parse::<IpAddr>().unwrap(),
                "fd00:244::5".parse().unwrap()
            ]
        );
    }

    #[test]
    fn a_gateway_outside_the_subnet_is_refused() {
        let e = planned(
            &cfg(json!({"isGateway": true})),
            "c",
            "/x",
            [2, 0, 0, 0, 0, 1],
            &ipam(json!({"ips": [{"address": "10.98.0.2/24", "gateway": "10.99.0.1"}]})),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "gateway 10.99.0.1 is outside the pod subnet 10.98.0.0/24"
        );
    }

    fn nets(v: &[&str]) -> Vec<IpNet> {
        v.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn gateway_clash_needs_force_address_to_replace() {
        let gw: IpNet = "10.88.0.1/24".parse().unwrap();
        // only the new gateway and link-local or other-family addresses: nothing clashes
        assert_eq!(
            gateway_clash(
                "cbr0",
                gw,
                &nets(&["10.88.0.1/24", "169.254.3.1/16", "fd00::1/64"]),
                false
            )
            .unwrap(),
            vec![]
        );
        let have = nets(&["10.77.7.1/24", "10.88.0.1/24", "10.66.0.1/24"]);
        let e = gateway_clash("cbr0", gw, &have, false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "\"cbr0\" already has an IP address different from 10.88.0.1/24: 10.77.7.1/24, 10.66.0.1/24 (set forceAddress to replace it)"
        );
        assert_eq!(ferro_spec::CniError::from(e).code.number(), 7);
        assert_eq!(
            gateway_clash("cbr0", gw, &have, true).unwrap(),
            nets(&["10.77.7.1/24", "10.66.0.1/24"])
        );
    }

    #[test]
    fn an_ipv6_gateway_clashes_only_with_an_overlapping_prefix() {
        let gw: IpNet = "fd00:88::1/64".parse().unwrap();
        let have = nets(&[
            "fd00:88::1/64",
            "fd00:77::1/64",
            "fd00:88::9/64",
            "fe80::1/64",
        ]);
        assert_eq!(
            gateway_clash("cbr0", gw, &have, true).unwrap(),
            nets(&["fd00:88::9/64"])
        );
    }

    fn link(index: u32, name: &str, kind: &str) -> Link {
        Link {
            index,
            name: name.into(),
            up: true,
            kind: Some(kind.into()),
            ..Link::default()
        }
    }

    /// A CHECK of an attachment as ADD left it: the plan's result as `prevResult`, the
    /// kernel as `apply` leaves it.
    fn as_added(cfg: &Config) -> (Plan, Facts) {
        let p = planned(
            cfg,
            "c",
            "/run/netns/p",
            [2, 0, 0, 0, 0, 9],
            &ipam(
                json!({"ips": [{"address": "10.244.1.5/24", "gateway": "10.244.1.1"}],
                "routes": [{"dst": "0.0.0.0/0"}, {"dst": "10.96.0.0/12", "gw": "10.244.1.254"}]}),
            ),
        )
        .unwrap();
        let bridge = link(3, &cfg.bridge, "bridge");
        let mut hv = link(7, &p.att.host_veth, "veth");
        hv.master = Some(3);
        hv.hairpin = Some(cfg.hairpin_mode);
        let mut container = link(2, "eth0", "veth");
        container.mac = Some(p.att.container_mac.to_vec());
        let f = Facts {
            bridge: Some(bridge),
            container: Some(container),
            host_veth: Some(hv),
            container_addrs: p.addrs.clone(),
            container_routes: p
                .routes
                .iter()
                .map(|r| RouteSpec {
                    oif: Some(2),
                    table: Some(MAIN_TABLE),
                    ..r.clone()
                })
                .collect(),
            bridge_addrs: p.gateways.clone(),
        };
        (p, f)
    }

    fn diffs(cfg: &Config, p: &Plan, f: &Facts) -> Vec<String> {
        let want = Expected {
            prev: &p.result,
            ifname: "eth0",
            netns: "/run/netns/p",
            host_veth: &p.att.host_veth,
        };
        check(cfg, &want, f)
            .0
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn check_finds_nothing_right_after_add() {
        for c in [
            cfg(json!({"bridge": "cbr0", "isGateway": true, "hairpinMode": true})),
            cfg(json!({"bridge": "cbr0", "promiscMode": true})),
        ] {
            let (p, mut f) = as_added(&c);
            if let Some(br) = f.bridge.as_mut() {
                br.promisc = c.promisc_mode;
            }
            assert_eq!(diffs(&c, &p, &f), Vec::<String>::new());
        }
    }

    #[test]
    fn check_names_every_difference() {
        let c = cfg(json!({"bridge": "cbr0", "isGateway": true, "hairpinMode": true}));
        let (p, mut f) = as_added(&c);
        let hv = p.att.host_veth.clone();
        f.container.as_mut().unwrap().mac = Some(vec![2, 0, 0, 0, 0, 8]);
        f.container.as_mut().unwrap().up = false;
        f.host_veth.as_mut().unwrap().hairpin = Some(false);
        f.host_veth.as_mut().unwrap().master = Some(99);
        f.container_addrs.clear();
        f.container_routes.remove(1);
        f.bridge_addrs.clear();
        assert_eq!(
            diffs(&c, &p, &f),
            vec![
                "MAC of eth0 is 02:00:00:00:00:08, expected 02:00:00:00:00:09".to_string(),
                format!("{hv} is not a port of cbr0"),
                format!("hairpin of {hv} is off, expected on"),
                "eth0 is down".into(),
                "address 10.244.1.5/24 is missing from eth0".into(),
                "route to 10.96.0.0/12 via 10.244.1.254 is missing in the container".into(),
                "gateway 10.244.1.1 is missing from bridge cbr0".into(),
            ]
        );
    }

    #[test]
    fn check_of_missing_links_and_a_foreign_prev_result() {
        let c = cfg(json!({"bridge": "cbr0", "isGateway": true}));
        let (p, f) = as_added(&c);
        let gone = Facts {
            bridge: Some(link(3, "cbr0", "veth")),
            ..Facts::default()
        };
        assert_eq!(
            diffs(&c, &p, &gone),
            vec![
                "cbr0 is not a bridge".to_string(),
                "container interface eth0 is missing".into(),
                format!("host interface {} is missing", p.att.host_veth),
            ]
        );
        let mut elsewhere = p.clone();
        elsewhere.result.interfaces[CONTAINER_INDEX].sandbox = Some("/run/netns/q".into());
        assert_eq!(
            diffs(&c, &elsewhere, &f),
            vec!["interface eth0 of prevResult is in /run/netns/q, not in CNI_NETNS /run/netns/p"]
        );
        let mut other_if = p.clone();
        other_if.result.interfaces[CONTAINER_INDEX].name = "net1".into();
        assert_eq!(
            diffs(&c, &other_if, &f),
            vec!["prevResult has no container interface eth0"]
        );
        let promisc = cfg(json!({"bridge": "cbr0", "promiscMode": true}));
        assert_eq!(
            diffs(&promisc, &p, &f),
            vec!["promiscuous mode of cbr0 is off, expected on"]
        );
    }

    #[test]
    fn an_l2_only_attachment_is_not_checked_for_addresses() {
        let c = cfg(json!({"bridge": "cbr0", "disableContainerInterface": true}));
        let (p, mut f) = as_added(&c);
        f.container.as_mut().unwrap().up = false;
        f.container_addrs.clear();
        f.container_routes.clear();
        assert_eq!(diffs(&c, &p, &f), Vec::<String>::new());
    }

    #[test]
    fn routes_are_read_once_per_family_and_table() {
        let prev = ipam(
            json!({"routes": [{"dst": "0.0.0.0/0"}, {"dst": "10.96.0.0/12"},
            {"dst": "::/0"}, {"dst": "10.0.0.0/8", "table": 100}]}),
        );
        assert_eq!(
            route_tables(&prev),
            vec![(false, None), (true, None), (false, Some(100))]
        );
    }

    #[test]
    fn a_gateway_equal_to_the_address_is_refused() {
        let e = planned(
            &cfg(json!({"isGateway": true})),
            "c",
            "/x",
            [2, 0, 0, 0, 0, 1],
            &ipam(json!({"ips": [{"address": "10.98.0.1/24"}]})),
        )
        .unwrap_err();
        assert_eq!(ferro_spec::CniError::from(e).code.number(), 7);
    }
}
