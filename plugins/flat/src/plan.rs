//! The pure plan of `flat`: every decision, none of the kernel calls (`apply.rs` makes
//! those). In the order ADD takes them:
//!
//! 1. [`node`], from the uplink and its addresses read on the node, before IPAM: the VNet
//!    and the MTU (code 7 when the node cannot supply what the config leaves out; no lease
//!    taken);
//! 2. [`plan`], once IPAM has answered and before the link work: the transparent-mode
//!    attachment, the addresses to publish on the uplink, the firewall, the result.
//!
//! DEL decides what to unpublish with [`unpublish`] and, without any record of the pod's
//! addresses, finds the [`orphans`]; CHECK compares the uplink's proxy entries in
//! [`unpublished`].

use std::net::IpAddr;

use ipnet::IpNet;

use ferro_net::firewall::PodFirewall;
use ferro_net::rtnl::{Link, RouteSpec};
use ferro_net::transparent::{self, TransparentPod};
use ferro_pod::{is_link_local, Difference, Differences, Inputs, PodError};
use ferro_spec::{CniResult, Request};

use crate::config::Config;

/// The node facts a config may leave to defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The VNet interface.
    pub uplink: Link,
    /// The VNet CIDRs: configured, or the subnets of the uplink's addresses.
    pub vnet: Vec<IpNet>,
    /// The pods' MTU: configured, or the uplink's.
    pub mtu: Option<u32>,
}

/// What ADD creates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The pod attachment.
    pub pod: TransparentPod,
    /// The pod has IPv4 / IPv6 addresses (forwarding, proxy ARP / NDP).
    pub v4: bool,
    /// See `v4`.
    pub v6: bool,
    /// The addresses the uplink answers ARP/NDP for (none with `publishPodAddresses` off).
    pub publish: Vec<IpAddr>,
    /// The network's pod firewall.
    pub firewall: PodFirewall,
    /// The result.
    pub result: CniResult,
}

impl Plan {
    /// The pod's addresses without their prefixes.
    pub fn ips(&self) -> Vec<IpAddr> {
        self.pod.addrs.iter().map(IpNet::addr).collect()
    }
}

/// Step 1: the node facts, from `uplink` (the configured interface or the default route's,
/// `None` when there is none) and, when `vnetCIDRs` is not configured, its addresses.
pub fn node(
    cfg: &Config,
    uplink: Option<Link>,
    uplink_addrs: Option<&[IpNet]>,
) -> Result<Node, PodError> {
    let uplink = uplink.ok_or_else(|| {
        PodError::Invalid(match &cfg.uplink {
            Some(name) => format!("uplink: interface {name:?} does not exist on the node"),
            None => "uplink: not set and the node has no default route to take it from".into(),
        })
    })?;
    let vnet = match &cfg.vnet_cidrs {
        Some(v) => v.clone(),
        None => {
            let v: Vec<IpNet> = uplink_addrs
                .unwrap_or_default()
                .iter()
                .filter(|a| !is_link_local(a.addr()))
                .map(IpNet::trunc)
                .collect();
            if v.is_empty() {
                return Err(PodError::Invalid(format!(
                    "vnetCIDRs: not set and uplink {} has no address to take the VNet from",
                    uplink.name
                )));
            }
            v
        }
    };
    let mtu = cfg.mtu.or(Some(uplink.mtu).filter(|m| *m > 0));
    Ok(Node { uplink, vnet, mtu })
}

/// The network's pod firewall: SNAT except towards the VNet and `nonMasqueradeCIDRs`;
/// anti-spoofing on the pod veths.
pub fn firewall(network: &str, cfg: &Config, node: &Node) -> PodFirewall {
    cfg.shared.firewall(network, &node.vnet)
}

/// The transparent-mode attachment of the request with `addrs`.
pub fn pod(
    req: &Request,
    node: &Node,
    addrs: Vec<IpNet>,
    extra_routes: Vec<IpNet>,
) -> TransparentPod {
    TransparentPod {
        container_id: req.cmd.container_id.clone(),
        ifname: req.cmd.ifname.clone(),
        addrs,
        mtu: node.mtu,
        extra_routes,
    }
}

/// Step 2: from the IPAM result to what ADD creates.
pub fn plan(cfg: &Config, node: &Node, i: &Inputs<'_>) -> Result<Plan, PodError> {
    let (req, ipam) = (i.req, i.ipam);
    if ipam.ips.is_empty() {
        return Err(PodError::NoAddress);
    }
    let pod = pod(
        req,
        node,
        ipam.ips.iter().map(|i| i.address).collect(),
        ipam.routes.iter().map(|r| r.dst()).collect(),
    );
    for a in &pod.addrs {
        if !node.vnet.iter().any(|v| v.contains(&a.addr())) {
            log::warn!(
                "pod address {a} is outside the VNet CIDRs {:?}: its traffic to the VNet will be masqueraded",
                node.vnet
            );
        }
    }
    let result = pod.result(
        i.sandbox,
        cfg.dns.clone().unwrap_or_else(|| ipam.dns.clone()),
    );
    let ips: Vec<IpAddr> = pod.addrs.iter().map(IpNet::addr).collect();
    Ok(Plan {
        v4: ips.iter().any(IpAddr::is_ipv4),
        v6: ips.iter().any(IpAddr::is_ipv6),
        publish: if cfg.publish_pod_addresses {
            ips
        } else {
            Vec::new()
        },
        firewall: firewall(&req.conf.name, cfg, node),
        pod,
        result,
    })
}

/// What DEL unpublishes from the uplink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unpublish {
    /// These addresses (`prevResult`'s and those of the removed SNAT elements).
    These(Vec<IpAddr>),
    /// Nothing records the pod's addresses (no `prevResult`, no SNAT element): every proxy
    /// entry whose pod is gone ([`orphans`]).
    Orphans,
}

/// DEL: the addresses known to have been the pod's, or the orphans when none is known and
/// there was no `prevResult`.
pub fn unpublish(known: &[IpAddr], has_prev_result: bool) -> Unpublish {
    if known.is_empty() && !has_prev_result {
        Unpublish::Orphans
    } else {
        Unpublish::These(known.to_vec())
    }
}

/// The uplink's proxy entries (`proxies`) inside the VNet whose address no longer has a
/// host route (in `routes`) through one of our pod veths (in `links`): the pod's route went
/// with its veth, so nothing is left to answer for.
pub fn orphans(
    proxies: &[IpAddr],
    vnet: &[IpNet],
    links: &[Link],
    routes: &[RouteSpec],
) -> Vec<IpAddr> {
    let ours: Vec<u32> = links
        .iter()
        .filter(|l| l.name.starts_with(transparent::HOST_PREFIX))
        .map(|l| l.index)
        .collect();
    proxies
        .iter()
        .copied()
        .filter(|ip| vnet.iter().any(|v| v.contains(ip)))
        .filter(|ip| {
            !routes
                .iter()
                .any(|r| r.dst.addr() == *ip && r.oif.is_some_and(|o| ours.contains(&o)))
        })
        .collect()
}

/// CHECK: the pod addresses the uplink does not answer for, given its proxy entries.
pub fn unpublished(addrs: &[IpNet], proxies: &[IpAddr], uplink: &str) -> Differences {
    Differences(
        addrs
            .iter()
            .map(IpNet::addr)
            .filter(|a| !proxies.contains(a))
            .map(|address| Difference::NotPublished {
                address,
                uplink: uplink.to_string(),
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferro_net::names::mac_string;
    use ferro_pod::SharedKeys;
    use serde_json::json;

    fn cfg() -> Config {
        Config {
            uplink: None,
            vnet_cidrs: None,
            shared: SharedKeys {
                non_masquerade_cidrs: vec!["10.0.0.0/8".parse().unwrap()],
                snat: true,
                anti_spoofing: true,
            },
            publish_pod_addresses: true,
            mtu: None,
            dns: None,
        }
    }

    fn uplink() -> Link {
        Link {
            index: 2,
            name: "eth0".into(),
            mtu: 1500,
            up: true,
            ..Link::default()
        }
    }

    fn nets(v: &[&str]) -> Vec<IpNet> {
        v.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn ips(v: &[&str]) -> Vec<IpAddr> {
        v.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn node_of(vnet: &[&str]) -> Node {
        Node {
            uplink: uplink(),
            vnet: nets(vnet),
            mtu: Some(1500),
        }
    }

    fn req() -> Request {
        ferro_testutil::add_request(
            json!({"cniVersion": "1.1.0", "name": "azure", "type": "flat", "ipam": {"type": "host-local"}}),
        )
    }

    fn planned(cfg: &Config, netns: &str, node: &Node, ipam: &CniResult) -> Result<Plan, PodError> {
        let req = req();
        plan(
            cfg,
            node,
            &Inputs {
                req: &req,
                sandbox: netns,
                ipam,
            },
        )
    }

    #[test]
    fn the_node_supplies_what_the_config_leaves_out() {
        let n = node(
            &cfg(),
            Some(uplink()),
            Some(&nets(&["10.240.0.4/16", "fe80::1/64", "fd00:240::4/64"])),
        )
        .unwrap();
        assert_eq!(n.vnet, nets(&["10.240.0.0/16", "fd00:240::/64"]));
        assert_eq!(n.mtu, Some(1500));
        let mut own = cfg();
        own.vnet_cidrs = Some(nets(&["10.240.0.0/12"]));
        own.mtu = Some(1400);
        let n = node(&own, Some(uplink()), None).unwrap();
        assert_eq!((n.vnet, n.mtu), (nets(&["10.240.0.0/12"]), Some(1400)));
    }

    #[test]
    fn a_node_that_cannot_supply_them_is_code_7_naming_the_key() {
        let mut named = cfg();
        named.uplink = Some("eth9".into());
        for (c, up, addrs, msg) in [
            (
                named,
                None,
                None,
                "uplink: interface \"eth9\" does not exist on the node",
            ),
            (
                cfg(),
                None,
                None,
                "uplink: not set and the node has no default route to take it from",
            ),
            (
                cfg(),
                Some(uplink()),
                Some(nets(&["169.254.0.1/16"])),
                "vnetCIDRs: not set and uplink eth0 has no address to take the VNet from",
            ),
        ] {
            let e = node(&c, up, addrs.as_deref()).unwrap_err();
            assert_eq!(e.to_string(), msg);
            assert_eq!(ferro_spec::CniError::from(e).code.number(), 7);
        }
    }

    #[test]
    fn result_points_every_route_at_the_virtual_gateway() {
        let ipam = CniResult::from_value(&json!({"ips": [{"address": "10.240.0.20/16", "gateway": "10.240.0.1"}, {"address": "fd00:240::20/64"}],
            "routes": [{"dst": "0.0.0.0/0"}, {"dst": "192.168.0.0/16", "gw": "10.240.0.1"}]}))
        .unwrap();
        let p = planned(&cfg(), "/run/netns/p", &node_of(&["10.240.0.0/16"]), &ipam).unwrap();
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
            p.firewall.masq.as_ref().unwrap().non_masquerade,
            nets(&["10.240.0.0/16", "10.0.0.0/8"])
        );
        assert_eq!(
            p.firewall.antispoof_prefix.as_deref(),
            Some(transparent::HOST_PREFIX)
        );
        assert_eq!(p.publish, ips(&["10.240.0.20", "fd00:240::20"]));
        assert!(p.v4 && p.v6);
        assert_eq!(r["interfaces"][0]["mac"], mac_string(&p.pod.host_mac()));
    }

    #[test]
    fn nothing_is_published_or_snatted_when_switched_off() {
        let mut c = cfg();
        c.publish_pod_addresses = false;
        c.shared.snat = false;
        c.shared.anti_spoofing = false;
        let ipam = CniResult::from_value(&json!({"ips": [{"address": "10.240.0.20/16"}]})).unwrap();
        let p = planned(&c, "/x", &node_of(&["10.240.0.0/16"]), &ipam).unwrap();
        assert!(p.publish.is_empty());
        assert!(p.firewall.is_empty());
        assert_eq!(p.ips(), ips(&["10.240.0.20"]));
        assert!(p.v4 && !p.v6);
    }

    #[test]
    fn an_empty_ipam_result_is_refused() {
        let e = planned(&cfg(), "/x", &node_of(&[]), &CniResult::default()).unwrap_err();
        assert_eq!(ferro_spec::CniError::from(e).code.number(), 7);
    }

    #[test]
    fn del_unpublishes_what_is_known_else_the_orphans() {
        let known = ips(&["10.240.0.20"]);
        assert_eq!(unpublish(&known, false), Unpublish::These(known.clone()));
        assert_eq!(unpublish(&[], true), Unpublish::These(vec![]));
        assert_eq!(unpublish(&[], false), Unpublish::Orphans);
    }

    #[test]
    fn orphans_are_vnet_proxies_without_a_route_through_a_pod_veth() {
        let link = |index, name: &str| Link {
            index,
            name: name.into(),
            ..Link::default()
        };
        let links = [
            link(2, "eth0"),
            link(7, "fc0123456789abc"),
            link(8, "veth1"),
        ];
        let route = |dst: &str, oif| RouteSpec::new(dst.parse().unwrap(), None, Some(oif));
        let routes = [
            route("10.240.0.20/32", 7), // a live pod
            route("10.240.0.21/32", 8), // through someone else's veth
            route("10.240.0.0/16", 2),
        ];
        assert_eq!(
            orphans(
                &ips(&["10.240.0.20", "10.240.0.21", "10.240.0.22", "192.168.1.1"]),
                &nets(&["10.240.0.0/16"]),
                &links,
                &routes
            ),
            ips(&["10.240.0.21", "10.240.0.22"])
        );
    }

    #[test]
    fn check_names_each_unpublished_address() {
        let d = unpublished(
            &nets(&["10.240.0.20/16", "fd00:240::20/64"]),
            &ips(&["10.240.0.20"]),
            "eth0",
        );
        assert_eq!(
            d.to_string(),
            "pod address fd00:240::20 is not published on uplink eth0"
        );
        assert!(unpublished(&nets(&["10.240.0.20/16"]), &ips(&["10.240.0.20"]), "eth0").is_empty());
    }
}
