//! The pure plan of `overlay`: every decision, none of the kernel calls (`apply.rs` makes
//! those). The node's view (slice, VXLAN device, peers, MTU) is read before IPAM; once
//! IPAM has answered, [`plan`] checks the addresses against the slice and builds the
//! transparent-mode attachment, the firewall and the result, before the VXLAN device or
//! any link is touched. CHECK compares the device and its peers in [`node_differences`].

use std::net::IpAddr;

use ipnet::IpNet;

use ferro_net::firewall::PodFirewall;
use ferro_net::overlay::{family_name, NodeView, SyncReport};
use ferro_net::transparent::TransparentPod;
use ferro_pod::{Difference, Differences, Inputs, PodError};
use ferro_spec::{CniResult, Request};

use crate::config::Config;

/// What ADD creates once the node's VXLAN device and peers are in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The pod attachment.
    pub pod: TransparentPod,
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

    /// Whether the pod has IPv4 and IPv6 addresses: the families the node must forward.
    pub fn families(&self) -> (bool, bool) {
        let ips = self.ips();
        (
            ips.iter().any(IpAddr::is_ipv4),
            ips.iter().any(IpAddr::is_ipv6),
        )
    }
}

/// The network's pod firewall: SNAT (to the node's address of the packet's family) outside
/// the pod CIDRs and `nonMasqueradeCIDRs`; anti-spoofing on the pod veths.
pub fn firewall(network: &str, cfg: &Config) -> PodFirewall {
    cfg.shared.firewall(network, &cfg.node.pod_cidrs.to_vec())
}

/// The transparent-mode attachment of the request with `addrs`.
pub fn pod(req: &Request, addrs: Vec<IpNet>, mtu: u32, extra_routes: Vec<IpNet>) -> TransparentPod {
    TransparentPod {
        container_id: req.cmd.container_id.clone(),
        ifname: req.cmd.ifname.clone(),
        addrs,
        mtu: Some(mtu),
        extra_routes,
    }
}

/// From the IPAM result to what ADD creates. Every address must be inside this node's
/// slice of its family (inside the pod CIDR of its family when the network is pooled: the
/// agents route each node's blocks), and every family of the pod CIDRs must have one (code
/// 7): VXLAN peers route each slice or block to its node, so a pod address elsewhere would
/// be unreachable from the other nodes, and a dual-stack pod missing a family half attached.
pub fn plan(cfg: &Config, view: &NodeView, i: &Inputs<'_>) -> Result<Plan, PodError> {
    let (req, ipam) = (i.req, i.ipam);
    let addrs: Vec<IpNet> = ipam.ips.iter().map(|i| i.address).collect();
    if addrs.is_empty() {
        return Err(PodError::NoAddress);
    }
    let pooled = cfg.node.pooled;
    let space = if pooled {
        &cfg.node.pod_cidrs
    } else {
        &view.slices
    };
    if let Some(a) = addrs.iter().find(|a| !space.contains(a.addr())) {
        let v6 = a.addr().is_ipv6();
        return Err(PodError::Invalid(match space.get(v6) {
            Some(c) if pooled => format!(
                "ipam returned {a}, outside the {} pod CIDR {c}: the pool of the \
                 ClusterNetwork must be the network's {}",
                family_name(v6),
                cfg.node.cidrs_key()
            ),
            Some(slice) => format!(
                "ipam returned {a}, outside this node's slice {slice}: point ipam at the slice"
            ),
            None => format!(
                "ipam returned {a}, but the network has no {} pod CIDR ({} {})",
                family_name(v6),
                cfg.node.cidrs_key(),
                cfg.node.pod_cidrs
            ),
        }));
    }
    for c in space.iter() {
        let v6 = c.addr().is_ipv6();
        if !addrs.iter().any(|a| a.addr().is_ipv6() == v6) {
            let hint = if pooled {
                "leave ipam.families out or name both".to_string()
            } else {
                format!(
                    "give ipam one range set per family (this node's slices: {})",
                    view.slices
                )
            };
            return Err(PodError::Invalid(format!(
                "ipam returned no {} address, and the network has the pod CIDRs {}: {hint}",
                family_name(v6),
                cfg.node.pod_cidrs,
            )));
        }
    }
    let pod = pod(
        req,
        addrs,
        view.mtu,
        ipam.routes.iter().map(|r| r.dst()).collect(),
    );
    let result = pod.result(
        i.sandbox,
        cfg.dns.clone().unwrap_or_else(|| ipam.dns.clone()),
    );
    Ok(Plan {
        pod,
        firewall: firewall(&req.conf.name, cfg),
        result,
    })
}

/// CHECK of the node side: the VXLAN device `device` exists (`exists`) and its peers match
/// the node list (`drift`, a dry-run reconcile, read only when the device exists).
pub fn node_differences(device: &str, exists: bool, drift: Option<&SyncReport>) -> Differences {
    let mut d = Differences::default();
    if !exists {
        d.push(Difference::LinkMissing {
            role: "vxlan device",
            name: device.to_string(),
        });
    }
    if let Some(r) = drift.filter(|r| !r.is_noop()) {
        d.push(Difference::Peers {
            missing: r.added.clone(),
            changed: r.updated.clone(),
            stale: r.removed.clone(),
        });
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferro_net::firewall::MasqSpec;
    use ferro_net::overlay::{Device, FamilyNets};
    use ferro_net::transparent;
    use serde_json::json;

    fn req() -> Request {
        ferro_testutil::add_request(
            json!({"cniVersion": "1.1.0", "name": "ovl", "type": "overlay",
            "podCIDR": "10.244.0.0/16", "nodeSubnet": "10.244.1.0/24", "nodeList": "/n.json",
            "nonMasqueradeCIDRs": ["10.0.0.0/8"], "ipam": {"type": "host-local"}}),
        )
    }

    fn cfg() -> Config {
        Config::from_request(&req()).unwrap()
    }

    fn view_with(slices: &[&str]) -> NodeView {
        let slices = FamilyNets::new(
            &slices
                .iter()
                .map(|s| s.parse().unwrap())
                .collect::<Vec<_>>(),
        )
        .unwrap();
        NodeView {
            slices,
            peers: Vec::new(),
            device: Device {
                name: "ferro.1".into(),
                vni: 1,
                port: 8472,
                underlay: 2,
                local: "10.240.0.4".parse().unwrap(),
                mtu: 1450,
                mac: [2, 0, 0, 0, 0, 4],
                slices,
            },
            mtu: 1450,
        }
    }

    fn view() -> NodeView {
        view_with(&["10.244.1.0/24"])
    }

    fn ipam(v: serde_json::Value) -> CniResult {
        CniResult::from_value(&v).unwrap()
    }

    fn planned(netns: &str, ipam: &CniResult) -> Result<Plan, PodError> {
        let req = req();
        plan(
            &cfg(),
            &view(),
            &Inputs {
                req: &req,
                sandbox: netns,
                ipam,
            },
        )
    }

    #[test]
    fn the_plan_routes_everything_through_the_node_and_snats_outside_the_pod_cidr() {
        let p = planned("/run/netns/p", &ipam(json!({"ips": [{"address": "10.244.1.7/24", "gateway": "10.244.1.1"}], "dns": {"nameservers": ["10.96.0.10"]}})))
        .unwrap();
        assert_eq!(p.pod.mtu, Some(1450));
        assert_eq!(p.ips(), vec!["10.244.1.7".parse::<IpAddr>().unwrap()]);
        let r = p.result.to_value(ferro_spec::Version::V1_1_0).unwrap();
        assert_eq!(
            r,
            json!({"cniVersion": "1.1.0",
                "interfaces": [
                    {"name": p.pod.host_veth(), "mac": ferro_net::names::mac_string(&p.pod.host_mac()), "mtu": 1450},
                    {"name": "eth0", "mac": ferro_net::names::mac_string(&p.pod.container_mac()), "mtu": 1450, "sandbox": "/run/netns/p"}],
                "ips": [{"address": "10.244.1.7/24", "gateway": "169.254.1.1", "interface": 1}],
                "routes": [{"dst": "0.0.0.0/0", "gw": "169.254.1.1"}],
                "dns": {"nameservers": ["10.96.0.10"]}})
        );
        assert_eq!(
            p.firewall,
            PodFirewall {
                masq: Some(MasqSpec {
                    network: "ovl".into(),
                    non_masquerade: ["10.244.0.0/16", "10.0.0.0/8"]
                        .iter()
                        .map(|n| n.parse().unwrap())
                        .collect(),
                }),
                antispoof_prefix: Some(transparent::HOST_PREFIX.into()),
            },
            "SNAT outside the pod CIDR and nonMasqueradeCIDRs, anti-spoofing on the pod veths"
        );
    }

    #[test]
    fn addresses_outside_the_slice_or_none_at_all_are_code_7() {
        let e = planned("/x", &ipam(json!({"ips": [{"address": "10.244.2.7/24"}]}))).unwrap_err();
        assert_eq!(
            e.to_string(),
            "ipam returned 10.244.2.7/24, outside this node's slice 10.244.1.0/24: point ipam at the slice"
        );
        assert_eq!(ferro_spec::CniError::from(e).code.number(), 7);
        let e = planned("/x", &CniResult::default()).unwrap_err();
        assert_eq!(e.to_string(), "ipam returned no address");
        // an address of a family the network does not use
        let e = planned(
            "/x",
            &ipam(json!({"ips": [{"address": "10.244.1.7/24"}, {"address": "fd00:244::7/64"}]})),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "ipam returned fd00:244::7/64, but the network has no IPv6 pod CIDR (podCIDR 10.244.0.0/16)"
        );
    }

    fn dual() -> (Request, Config, NodeView) {
        let req = ferro_testutil::add_request(
            json!({"cniVersion": "1.1.0", "name": "ovl", "type": "overlay",
            "podCIDRs": ["10.244.0.0/16", "fd00:10:244::/56"], "nodeName": "a", "nodeList": "/n.json",
            "ipam": {"type": "host-local"}}),
        );
        let cfg = Config::from_request(&req).unwrap();
        (
            req,
            cfg,
            view_with(&["10.244.1.0/24", "fd00:10:244:1::/64"]),
        )
    }

    /// The plan of `req` on `view` (sandbox `/x`).
    fn plan_of(req: &Request, view: &NodeView, ipam: &CniResult) -> Result<Plan, PodError> {
        let cfg = Config::from_request(req).unwrap();
        let i = Inputs {
            req,
            sandbox: "/x",
            ipam,
        };
        plan(&cfg, view, &i)
    }

    fn planned_dual(ipam: &CniResult) -> Result<Plan, PodError> {
        let (req, _, view) = dual();
        plan_of(&req, &view, ipam)
    }

    #[test]
    fn a_dual_stack_pod_gets_one_address_per_family_and_snat_in_both() {
        let p = planned_dual(&ipam(
            json!({"ips": [{"address": "10.244.1.7/24"}, {"address": "fd00:10:244:1::7/64"}]}),
        ))
        .unwrap();
        assert_eq!(p.families(), (true, true));
        let r = p.result.to_value(ferro_spec::Version::V1_1_0).unwrap();
        assert_eq!(
            r["routes"],
            json!([{"dst": "0.0.0.0/0", "gw": "169.254.1.1"}, {"dst": "::/0", "gw": "fe80::1234:5678:9abc"}])
        );
        assert_eq!(
            p.firewall.masq.unwrap().non_masquerade,
            vec![
                "10.244.0.0/16".parse::<IpNet>().unwrap(),
                "fd00:10:244::/56".parse().unwrap()
            ],
            "both pod CIDRs keep the pod's address"
        );
    }

    #[test]
    fn a_dual_stack_pod_missing_a_family_or_outside_a_slice_is_code_7() {
        for (ips, msg) in [
            (
                json!([{"address": "10.244.1.7/24"}]),
                "ipam returned no IPv6 address, and the network has the pod CIDRs 10.244.0.0/16, \
                 fd00:10:244::/56: give ipam one range set per family (this node's slices: \
                 10.244.1.0/24, fd00:10:244:1::/64)",
            ),
            (
                json!([{"address": "10.244.1.7/24"}, {"address": "fd00:10:244:2::7/64"}]),
                "ipam returned fd00:10:244:2::7/64, outside this node's slice fd00:10:244:1::/64: \
                 point ipam at the slice",
            ),
        ] {
            let e = planned_dual(&ipam(json!({ "ips": ips }))).unwrap_err();
            assert_eq!(e.to_string(), msg);
            assert_eq!(ferro_spec::CniError::from(e).code.number(), 7);
        }
    }

    fn planned_pooled(ipam: &CniResult) -> Result<Plan, PodError> {
        let req = ferro_testutil::add_request(
            json!({"cniVersion": "1.1.0", "name": "ovl", "type": "overlay",
            "podCIDRs": ["10.244.0.0/16", "fd00:244::/56"], "nodeList": "agent",
            "ipam": {"type": "cluster-ipam"}}),
        );
        plan_of(&req, &view_with(&[]), ipam)
    }

    #[test]
    fn a_pooled_pod_takes_host_addresses_anywhere_in_the_pod_cidrs() {
        let p = planned_pooled(&ipam(
            json!({"ips": [{"address": "10.244.7.65/32"}, {"address": "fd00:244::47/128"}]}),
        ))
        .unwrap();
        assert_eq!(p.families(), (true, true));
        let r = p.result.to_value(ferro_spec::Version::V1_1_0).unwrap();
        assert_eq!(
            r["ips"],
            json!([{"address": "10.244.7.65/32", "gateway": "169.254.1.1", "interface": 1},
                   {"address": "fd00:244::47/128", "gateway": "fe80::1234:5678:9abc", "interface": 1}])
        );
        for (ips, msg) in [
            (
                json!([{"address": "10.245.0.5/32"}, {"address": "fd00:244::47/128"}]),
                "ipam returned 10.245.0.5/32, outside the IPv4 pod CIDR 10.244.0.0/16: the pool \
                 of the ClusterNetwork must be the network's podCIDRs",
            ),
            (
                json!([{"address": "10.244.7.65/32"}]),
                "ipam returned no IPv6 address, and the network has the pod CIDRs 10.244.0.0/16, \
                 fd00:244::/56: leave ipam.families out or name both",
            ),
        ] {
            let e = planned_pooled(&ipam(json!({ "ips": ips }))).unwrap_err();
            assert_eq!(e.to_string(), msg);
            assert_eq!(ferro_spec::CniError::from(e).code.number(), 7);
        }
    }

    #[test]
    fn check_names_a_missing_device_and_drifted_peers() {
        assert!(node_differences("ferro.1", true, Some(&SyncReport::default())).is_empty());
        assert_eq!(
            node_differences("ferro.1", false, None).to_string(),
            "vxlan device ferro.1 is missing"
        );
        let drift = SyncReport {
            added: vec!["10.244.3.0/24".parse().unwrap()],
            removed: vec!["10.244.9.0/24".parse().unwrap()],
            ..SyncReport::default()
        };
        assert_eq!(
            node_differences("ferro.1", true, Some(&drift)).to_string(),
            "overlay peers differ from the node list: missing [10.244.3.0/24], changed [], stale [10.244.9.0/24]"
        );
    }
}
