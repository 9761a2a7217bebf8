//! The overlay network's node-side state: one VXLAN device per node and, per remote node,
//! one FDB entry and, per address family of the pod CIDRs, one neighbour entry and one
//! on-link route to its slice, in flannel's vxlan-backend layout:
//!
//! ```text
//! ip neigh replace 10.244.2.0 lladdr <vtep mac B> dev ferro.1 nud permanent
//! ip neigh replace fd00:10:244:2:: lladdr <vtep mac B> dev ferro.1 nud permanent
//! bridge fdb replace <vtep mac B> dev ferro.1 dst 10.240.0.5 self permanent
//! ip route replace 10.244.2.0/24 via 10.244.2.0 dev ferro.1 onlink
//! ip route replace fd00:10:244:2::/64 via fd00:10:244:2:: dev ferro.1 onlink
//! ```
//!
//! The device carries Ethernet frames, so one device serves both pod families; it runs over
//! the underlay family of the node list's addresses (every node of a network uses one), and
//! costs 50 bytes of MTU over IPv4, 70 over IPv6.
//!
//! - [`NodeConfig`] (`config`): the node-level keys of the plugin object;
//! - [`FamilyNets`] (`family`): networks held one per family (pod CIDRs, a node's slices);
//! - [`NodeLease`], [`PeerSource`], [`FileSource`] (`nodes`): the cluster's nodes and where
//!   they come from (a node list that the operator or a configuration tool writes);
//! - [`view`]: this node's slices, VXLAN device and peers, from the three ([`local_address`]:
//!   the VXLAN source address, also what ferro-agent uses for the device it keeps);
//! - [`ensure_device`], [`reconcile`] (`device`): the kernel side; [`reconcile`] diffs it
//!   against the peers and changes only what differs (add order: neighbour, FDB, route;
//!   removal in reverse).

mod config;
mod device;
mod family;
mod nodes;

pub use config::{NodeConfig, IPV6_MIN_MTU};
pub use device::{device_name, ensure_device, reconcile, Device, Peer, SyncReport};
pub use family::{family_name, FamilyNets};
pub use nodes::{split_self, underlay_family, vtep_mac_for, FileSource, NodeLease, PeerSource};

use std::net::IpAddr;

use ferro_spec::CniError;

use crate::is_link_local;
use crate::rtnl::{Link, Rtnl};

/// VXLAN header and outer headers over an IPv4 underlay (outer IPv4 20, UDP 8, VXLAN 8,
/// inner Ethernet 14).
pub const VXLAN_OVERHEAD: u32 = 50;

/// The same over an IPv6 underlay (the outer IPv6 header is 40 bytes).
pub const VXLAN_OVERHEAD_V6: u32 = 70;

/// The VXLAN overhead over an underlay of the family of `local`.
pub fn vxlan_overhead(local: IpAddr) -> u32 {
    if local.is_ipv6() {
        VXLAN_OVERHEAD_V6
    } else {
        VXLAN_OVERHEAD
    }
}

/// This node as the overlay sees it.
#[derive(Debug, Clone)]
pub struct NodeView {
    /// This node's slices, one per family of the pod CIDRs (none when the network is
    /// [pooled](NodeConfig::pooled)).
    pub slices: FamilyNets,
    /// The other nodes' slices.
    pub peers: Vec<Peer>,
    /// The VXLAN device to ensure.
    pub device: Device,
    /// Pod MTU.
    pub mtu: u32,
}

/// Works out this node's slices, VXLAN device and peers from the config, the node list and
/// the kernel (the underlay interface and its address of the node list's family). Config,
/// node-list and underlay problems are code 7, naming the key or the node.
pub fn view(
    cfg: &NodeConfig,
    host: &Rtnl<'_>,
    source: &dyn PeerSource,
) -> Result<NodeView, CniError> {
    let invalid = CniError::invalid_config;
    let leases = source
        .leases()
        .map_err(|e| invalid(format!("nodeList: {e}")))?;
    let family = underlay_family(&leases)
        .map_err(|e| invalid(format!("nodeList: {}: {e}", source.describe())))?;
    let (underlay, addrs) = underlay_of(host, cfg.underlay.as_deref(), family)?;
    view_of(cfg, leases, &underlay, &addrs, &source.describe())
}

/// The underlay interface (`name`, else the interface of the default route of `family`,
/// `None`: of either) and its addresses. Code 7 naming `underlay` when there is none.
pub fn underlay_of(
    host: &Rtnl<'_>,
    name: Option<&str>,
    family: Option<bool>,
) -> Result<(Link, Vec<IpAddr>), CniError> {
    let invalid = CniError::invalid_config;
    let underlay = match name {
        Some(n) => host.link(n)?.ok_or_else(|| {
            invalid(format!(
                "underlay: interface {n:?} does not exist on the node"
            ))
        })?,
        None => match family {
            Some(v6) => host.default_route_link_of(v6)?,
            None => host.default_route_link()?,
        }
        .ok_or_else(|| {
            invalid(format!(
                "underlay: not set and the node has no {}default route to take it from",
                family.map_or(String::new(), |v6| format!("{} ", family_name(v6)))
            ))
        })?,
    };
    let addrs: Vec<IpAddr> = host
        .addrs(Some(underlay.index))?
        .into_iter()
        .map(|a| a.addr.addr())
        .collect();
    Ok((underlay, addrs))
}

/// [`view`]'s decisions, pure: `leases` from the source described as `origin`, the underlay
/// link and its addresses.
pub fn view_of(
    cfg: &NodeConfig,
    leases: Vec<NodeLease>,
    underlay: &Link,
    addrs: &[IpAddr],
    origin: &str,
) -> Result<NodeView, CniError> {
    let invalid = CniError::invalid_config;
    let family =
        underlay_family(&leases).map_err(|e| invalid(format!("nodeList: {origin}: {e}")))?;
    let (me, others) = split_self(
        leases,
        cfg.node_name.as_deref(),
        cfg.node_subnets.as_ref(),
        None,
    );
    let local = local_address(underlay, addrs, family, me.as_ref().map(|m| m.address))?;
    let key = cfg.cidrs_key();
    let slices_of = |l: &NodeLease| -> Result<FamilyNets, CniError> {
        let s = l.pod_subnets.restricted_to(&cfg.pod_cidrs);
        s.check_slices_of(&cfg.pod_cidrs, key)
            .map_err(|e| invalid(format!("nodeList: node {} in {origin}: {e}", l.name)))?;
        Ok(s)
    };
    let slices = match (&cfg.node_subnets, &me) {
        (None, _) if cfg.pooled => FamilyNets::default(),
        (Some(s), Some(m)) => {
            let listed = slices_of(m)?;
            if listed != *s {
                return Err(invalid(format!(
                    "nodeSubnet: {s} differs from {listed} listed for node {} in {origin}",
                    m.name
                )));
            }
            *s
        }
        (Some(s), None) => *s,
        (None, Some(m)) => slices_of(m)?,
        (None, None) => {
            return Err(invalid(format!(
                "nodeName {:?} is not in {origin}",
                cfg.node_name.as_deref().unwrap_or_default()
            )))
        }
    };
    let mut peers = Vec::new();
    for l in &others {
        for subnet in slices_of(l)?.iter() {
            peers.push(Peer {
                subnet,
                mac: l.mac(),
                underlay: l.address,
            });
        }
    }
    let overhead = vxlan_overhead(local);
    let mtu = match cfg.mtu {
        Some(m) => m,
        None => {
            let m = underlay.mtu.saturating_sub(overhead);
            if m < IPV6_MIN_MTU && cfg.pod_cidrs.families().1 {
                return Err(invalid(format!(
                    "mtu: not set, and the underlay {} (MTU {}) less the VXLAN overhead ({overhead}) \
                     leaves {m}, below the {IPV6_MIN_MTU} IPv6 pods need",
                    underlay.name, underlay.mtu
                )));
            }
            m
        }
    };
    let mac = me
        .as_ref()
        .map_or_else(|| vtep_mac_for(local), NodeLease::mac);
    Ok(NodeView {
        device: Device {
            name: device_name(cfg.vni),
            vni: cfg.vni,
            port: cfg.port,
            underlay: underlay.index,
            local,
            mtu,
            mac,
            slices,
        },
        slices,
        peers,
        mtu,
    })
}

/// The VXLAN source address on `underlay`: this node's listed address when the interface
/// has it, else its first address of the node list's family (`Some(true)`: IPv6; `None`:
/// IPv4 if it has one), never a link-local one.
pub fn local_address(
    underlay: &Link,
    addrs: &[IpAddr],
    family: Option<bool>,
    listed: Option<IpAddr>,
) -> Result<IpAddr, CniError> {
    let usable: Vec<IpAddr> = addrs
        .iter()
        .copied()
        .filter(|a| !a.is_loopback() && !is_link_local(*a))
        .collect();
    if let Some(a) = listed.filter(|a| usable.contains(a)) {
        return Ok(a);
    }
    let of = |v6: bool| usable.iter().copied().find(|a| a.is_ipv6() == v6);
    match family {
        Some(v6) => of(v6).ok_or_else(|| {
            CniError::invalid_config(format!(
                "underlay: {} has no {} address, and the node list's addresses are {}",
                underlay.name,
                family_name(v6),
                family_name(v6)
            ))
        }),
        None => of(false).or_else(|| of(true)).ok_or_else(|| {
            CniError::invalid_config(format!("underlay: {} has no address", underlay.name))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg(conf: serde_json::Value) -> NodeConfig {
        let mut c = json!({"nodeName": "a", "nodeList": "/n.json"});
        for (k, v) in conf.as_object().unwrap() {
            c[k] = v.clone();
        }
        NodeConfig::from_value(&c).unwrap()
    }

    fn leases(underlay6: bool, nodes: &[(&str, &[&str])]) -> Vec<NodeLease> {
        let list: Vec<serde_json::Value> = nodes
            .iter()
            .enumerate()
            .map(|(i, (name, slices))| {
                let address = if underlay6 {
                    format!("fd00:240::{}", 4 + i)
                } else {
                    format!("10.240.0.{}", 4 + i)
                };
                json!({"name": name, "address": address, "podSubnets": slices})
            })
            .collect();
        FileSource::parse(&json!({ "nodes": list }).to_string(), "t").unwrap()
    }

    fn eth0() -> Link {
        Link {
            index: 2,
            name: "eth0".into(),
            mtu: 1500,
            ..Link::default()
        }
    }

    fn addrs(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    const DUAL: &[(&str, &[&str])] = &[
        ("a", &["10.244.1.0/24", "fd00:10:244:1::/64"]),
        ("b", &["10.244.2.0/24", "fd00:10:244:2::/64"]),
    ];
    const HOST: &[&str] = &["10.240.0.4", "fe80::1", "fd00:240::4"];

    #[test]
    fn dual_stack_over_an_ipv6_underlay() {
        let c = cfg(json!({"podCIDRs": ["10.244.0.0/16", "fd00:10:244::/56"]}));
        let v = view_of(&c, leases(true, DUAL), &eth0(), &addrs(HOST), "t").unwrap();
        assert_eq!(v.device.local, "fd00:240::4".parse::<IpAddr>().unwrap());
        assert_eq!(v.mtu, 1500 - 70, "VXLAN over IPv6 costs 70 bytes");
        assert_eq!(v.slices.to_string(), "10.244.1.0/24, fd00:10:244:1::/64");
        let peer_b: IpAddr = "fd00:240::5".parse().unwrap();
        assert_eq!(
            v.peers
                .iter()
                .map(|p| (p.subnet.to_string(), p.underlay))
                .collect::<Vec<_>>(),
            vec![
                ("10.244.2.0/24".to_string(), peer_b),
                ("fd00:10:244:2::/64".to_string(), peer_b)
            ],
            "one peer per slice, one underlay address"
        );
        // the same list over IPv4
        let v = view_of(&c, leases(false, DUAL), &eth0(), &addrs(HOST), "t").unwrap();
        assert_eq!(v.device.local, "10.240.0.4".parse::<IpAddr>().unwrap());
        assert_eq!(v.mtu, 1450);
    }

    #[test]
    fn a_single_family_network_takes_its_family_of_a_dual_stack_list() {
        let c = cfg(json!({"podCIDR": "fd00:10:244::/56"}));
        let v = view_of(&c, leases(false, DUAL), &eth0(), &addrs(HOST), "t").unwrap();
        assert_eq!(v.slices.to_string(), "fd00:10:244:1::/64");
        assert_eq!(v.peers.len(), 1);
        assert_eq!(v.peers[0].subnet.to_string(), "fd00:10:244:2::/64");
    }

    #[test]
    fn the_listed_address_is_the_source_when_the_underlay_has_it() {
        let c = cfg(json!({"podCIDR": "10.244.0.0/16"}));
        let v = view_of(
            &c,
            leases(false, DUAL),
            &eth0(),
            &addrs(&["10.240.0.99", "10.240.0.4"]),
            "t",
        )
        .unwrap();
        assert_eq!(v.device.local, "10.240.0.4".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn bad_lists_and_underlays_are_code_7_naming_the_node_or_key() {
        let dual = json!({"podCIDRs": ["10.244.0.0/16", "fd00:10:244::/56"]});
        for (conf, nodes, underlay6, host, msg) in [
            (
                dual.clone(),
                &[("a", &["10.244.1.0/24", "fd00:10:244:1::/64"][..]), ("b", &["10.244.2.0/24"][..])][..],
                false,
                HOST,
                "nodeList: node b in t: no IPv6 slice, but podCIDRs has fd00:10:244::/56",
            ),
            (
                dual.clone(),
                &[("a", &["10.244.1.0/24", "fd00:10:244:1::/64"][..]), ("b", &["10.244.2.0/24", "fd00:99::/64"][..])][..],
                false,
                HOST,
                "nodeList: node b in t: fd00:99::/64 is not inside the IPv6 pod CIDR fd00:10:244::/56",
            ),
            (
                dual.clone(),
                DUAL,
                true,
                &["10.240.0.4", "fe80::1"][..],
                "underlay: eth0 has no IPv6 address, and the node list's addresses are IPv6",
            ),
            (
                json!({"podCIDRs": ["10.244.0.0/16", "fd00:10:244::/56"], "nodeSubnets": ["10.244.9.0/24", "fd00:10:244:1::/64"]}),
                DUAL,
                false,
                HOST,
                "nodeSubnet: 10.244.9.0/24, fd00:10:244:1::/64 differs from 10.244.1.0/24, \
                 fd00:10:244:1::/64 listed for node a in t",
            ),
            (
                json!({"podCIDR": "10.244.0.0/16", "nodeName": "z"}),
                DUAL,
                false,
                HOST,
                "nodeName \"z\" is not in t",
            ),
        ] {
            let c = cfg(conf);
            let e = view_of(&c, leases(underlay6, nodes), &eth0(), &addrs(host), "t").unwrap_err();
            assert_eq!(e.code.number(), 7);
            assert_eq!(e.msg, msg);
        }
    }

    #[test]
    fn a_pooled_network_has_no_slice_and_no_device_address() {
        let c = NodeConfig::parse(
            &json!({"podCIDRs": ["10.244.0.0/16", "fd00:10:244::/56"], "nodeList": "agent"}),
            true,
        )
        .unwrap();
        assert!(c.pooled && c.node_subnets.is_none() && c.node_name.is_none());
        let v = view_of(&c, Vec::new(), &eth0(), &addrs(HOST), "ferro-agent").unwrap();
        assert!(v.slices.is_empty() && v.device.slices.is_empty() && v.peers.is_empty());
        assert_eq!(v.device.local, "10.240.0.4".parse::<IpAddr>().unwrap());
        assert_eq!(v.device.mac, vtep_mac_for(v.device.local));
        // IPv6 pods still need an MTU of 1280
        let small = Link {
            mtu: 1320,
            ..eth0()
        };
        let e = view_of(&c, Vec::new(), &small, &addrs(HOST), "ferro-agent").unwrap_err();
        assert!(e.msg.contains("below the 1280 IPv6 pods need"), "{}", e.msg);
        // not pooled: a slice or a name is required
        let e = NodeConfig::parse(
            &json!({"podCIDR": "10.244.0.0/16", "nodeList": "agent"}),
            false,
        )
        .unwrap_err();
        assert!(e.msg.contains("nodeName: one is required"), "{}", e.msg);
    }

    #[test]
    fn an_underlay_too_small_for_ipv6_pods_is_refused_unless_mtu_is_set() {
        let c = cfg(json!({"podCIDR": "fd00:10:244::/56"}));
        let small = Link {
            mtu: 1340,
            ..eth0()
        };
        let e = view_of(&c, leases(true, DUAL), &small, &addrs(HOST), "t").unwrap_err();
        assert_eq!(
            e.msg,
            "mtu: not set, and the underlay eth0 (MTU 1340) less the VXLAN overhead (70) leaves 1270, below the 1280 IPv6 pods need"
        );
        let ok = view_of(&c, leases(false, DUAL), &small, &addrs(HOST), "t").unwrap();
        assert_eq!(ok.mtu, 1290, "over IPv4 the same link leaves enough");
    }
}
