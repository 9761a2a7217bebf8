//! The ClusterNetwork's settings, checked and with their defaults: what the later parts
//! (IPAM, kubenet routes, services, DNS) read.

use std::ops::RangeInclusive;

use ipnet::IpNet;

use crate::names;
use crate::resource::{ClusterNetwork, ClusterNetworkSpec, FamilyPrefixes};

/// The name of the cluster's one ClusterNetwork.
pub const CLUSTER_NETWORK_NAME: &str = "default";
/// Default IPAM block prefix for IPv4.
pub const DEFAULT_BLOCK_V4: u8 = 26;
/// Default IPAM block prefix for IPv6.
pub const DEFAULT_BLOCK_V6: u8 = 122;
/// Default kubenet node block prefix for IPv4.
pub const DEFAULT_NODE_BLOCK_V4: u8 = 24;
/// Default kubenet node block prefix for IPv6.
pub const DEFAULT_NODE_BLOCK_V6: u8 = 64;
/// Default NodePort range.
pub const DEFAULT_NODE_PORTS: RangeInclusive<u16> = 30000..=32767;
/// Default DNS domain.
pub const DEFAULT_DNS_DOMAIN: &str = "cluster.local";

/// A ClusterNetwork's settings with defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Pod CIDRs, at most one per family.
    pub pod_cidrs: Vec<IpNet>,
    /// IPAM block prefix, IPv4.
    pub block_v4: u8,
    /// IPAM block prefix, IPv6.
    pub block_v6: u8,
    /// Kubenet node block prefix, IPv4.
    pub node_block_v4: u8,
    /// Kubenet node block prefix, IPv6.
    pub node_block_v6: u8,
    /// Service CIDRs, at most one per family (none: services get no ClusterIP).
    pub service_cidrs: Vec<IpNet>,
    /// NodePort range.
    pub node_ports: RangeInclusive<u16>,
    /// Load-balancer pools: name and CIDRs.
    pub load_balancer_pools: Vec<(String, Vec<IpNet>)>,
    /// DNS domain.
    pub dns_domain: String,
}

impl Settings {
    /// The pod CIDR of a family (`true`: IPv6).
    pub fn pod_cidr(&self, v6: bool) -> Option<IpNet> {
        self.pod_cidrs
            .iter()
            .copied()
            .find(|n| matches!(n, IpNet::V6(_)) == v6)
    }

    /// The IPAM block prefix for `cidr`'s family.
    pub fn block_prefix(&self, cidr: &IpNet) -> u8 {
        match cidr {
            IpNet::V4(_) => self.block_v4,
            IpNet::V6(_) => self.block_v6,
        }
    }
}

/// Parses `s` as a CIDR in canonical form (no host bits).
pub fn parse_cidr(s: &str) -> Result<IpNet, String> {
    let n: IpNet = s
        .parse()
        .map_err(|_| format!("{s:?} is not a CIDR (address/prefix)"))?;
    if n.trunc() != n {
        return Err(format!(
            "{s:?} has host bits set (did you mean {}?)",
            n.trunc()
        ));
    }
    Ok(n)
}

fn overlap(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// Parses a list of CIDRs at `path`, at most one per family when `per_family`.
fn cidr_list(
    path: &str,
    list: Option<&Vec<String>>,
    per_family: bool,
    errors: &mut Vec<String>,
) -> Vec<IpNet> {
    let mut out: Vec<IpNet> = Vec::new();
    for (i, s) in list.into_iter().flatten().enumerate() {
        match parse_cidr(s) {
            Ok(n) => {
                if per_family
                    && out
                        .iter()
                        .any(|o| matches!(o, IpNet::V6(_)) == matches!(n, IpNet::V6(_)))
                {
                    errors.push(format!("{path}[{i}]: {s} is a second CIDR of its family"));
                }
                out.push(n);
            }
            Err(e) => errors.push(format!("{path}[{i}]: {e}")),
        }
    }
    out
}

fn prefix(
    path: &str,
    given: Option<&FamilyPrefixes>,
    default: (u8, u8),
    pods: &[IpNet],
    errors: &mut Vec<String>,
) -> (u8, u8) {
    let v4 = given.and_then(|g| g.ipv4).unwrap_or(default.0);
    let v6 = given.and_then(|g| g.ipv6).unwrap_or(default.1);
    for (fam, p, max, is6) in [("ipv4", v4, 32, false), ("ipv6", v6, 128, true)] {
        if p > max {
            errors.push(format!("{path}.{fam}: /{p} is longer than /{max}"));
            continue;
        }
        if let Some(pod) = pods.iter().find(|n| matches!(n, IpNet::V6(_)) == is6) {
            if p < pod.prefix_len() {
                errors.push(format!(
                    "{path}.{fam}: /{p} is larger than the pod CIDR {pod}"
                ));
            }
        }
    }
    (v4, v6)
}

impl ClusterNetworkSpec {
    /// Checks the settings and applies defaults; errors name the field (`spec.podCIDRs[1]`).
    pub fn settings(&self) -> Result<Settings, Vec<String>> {
        let mut errors = Vec::new();
        if self.pod_cidrs.as_ref().is_none_or(Vec::is_empty) {
            errors.push("spec.podCIDRs: at least one pod CIDR is needed".to_string());
        }
        let pods = cidr_list("spec.podCIDRs", self.pod_cidrs.as_ref(), true, &mut errors);
        let (block_v4, block_v6) = prefix(
            "spec.ipamBlockSize",
            self.ipam_block_size.as_ref(),
            (DEFAULT_BLOCK_V4, DEFAULT_BLOCK_V6),
            &pods,
            &mut errors,
        );
        let (node_block_v4, node_block_v6) = prefix(
            "spec.nodeBlockSize",
            self.node_block_size.as_ref(),
            (DEFAULT_NODE_BLOCK_V4, DEFAULT_NODE_BLOCK_V6),
            &pods,
            &mut errors,
        );
        let services = cidr_list(
            "spec.serviceCIDRs",
            self.service_cidrs.as_ref(),
            true,
            &mut errors,
        );
        for (i, s) in services.iter().enumerate() {
            if let Some(p) = pods.iter().find(|p| overlap(p, s)) {
                errors.push(format!(
                    "spec.serviceCIDRs[{i}]: {s} overlaps the pod CIDR {p}"
                ));
            }
        }
        let node_ports = match self.node_port_range.as_deref() {
            None => DEFAULT_NODE_PORTS,
            Some(r) => match r.split_once('-').and_then(|(a, b)| {
                Some((a.trim().parse::<u16>().ok()?, b.trim().parse::<u16>().ok()?))
            }) {
                Some((a, b)) if a >= 1 && a <= b => a..=b,
                _ => {
                    errors.push(format!(
                        "spec.nodePortRange: {r:?} is not FIRST-LAST with 1 <= FIRST <= LAST <= 65535"
                    ));
                    DEFAULT_NODE_PORTS
                }
            },
        };
        let mut pools: Vec<(String, Vec<IpNet>)> = Vec::new();
        for (i, p) in self.load_balancer_pools.iter().flatten().enumerate() {
            let at = format!("spec.loadBalancerPools[{i}]");
            if let Some(e) = names::dns1123_label(&p.name) {
                errors.push(format!("{at}.name: {e}"));
            }
            if pools.iter().any(|(n, _)| *n == p.name) {
                errors.push(format!("{at}.name: {:?} is used twice", p.name));
            }
            if p.cidrs.is_empty() {
                errors.push(format!("{at}.cidrs: at least one CIDR is needed"));
            }
            let cidrs = cidr_list(&format!("{at}.cidrs"), Some(&p.cidrs), false, &mut errors);
            for (j, c) in cidrs.iter().enumerate() {
                let clash = pods
                    .iter()
                    .chain(services.iter())
                    .chain(pools.iter().flat_map(|(_, v)| v.iter()))
                    .find(|o| overlap(o, c));
                if let Some(o) = clash {
                    errors.push(format!("{at}.cidrs[{j}]: {c} overlaps {o}"));
                }
            }
            pools.push((p.name.clone(), cidrs));
        }
        let dns_domain = self
            .dns_domain
            .clone()
            .unwrap_or_else(|| DEFAULT_DNS_DOMAIN.to_string());
        if let Some(e) = names::dns1123_subdomain(&dns_domain) {
            errors.push(format!("spec.dnsDomain: {e}"));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Settings {
            pod_cidrs: pods,
            block_v4,
            block_v6,
            node_block_v4,
            node_block_v6,
            service_cidrs: services,
            node_ports,
            load_balancer_pools: pools,
            dns_domain,
        })
    }
}

impl ClusterNetwork {
    /// Its settings (see [`ClusterNetworkSpec::settings`]).
    pub fn settings(&self) -> Result<Settings, Vec<String>> {
        self.spec.settings()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::LoadBalancerPool;

    fn spec(pods: &[&str]) -> ClusterNetworkSpec {
        ClusterNetworkSpec {
            pod_cidrs: Some(pods.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        }
    }

    #[test]
    fn defaults() {
        let s = spec(&["10.244.0.0/16", "fd00:244::/56"])
            .settings()
            .unwrap();
        assert_eq!((s.block_v4, s.block_v6), (26, 122));
        assert_eq!((s.node_block_v4, s.node_block_v6), (24, 64));
        assert_eq!(s.node_ports, 30000..=32767);
        assert_eq!(s.dns_domain, "cluster.local");
        assert_eq!(s.pod_cidr(true), Some("fd00:244::/56".parse().unwrap()));
        assert!(s.service_cidrs.is_empty());
    }

    #[test]
    fn mistakes_name_their_field() {
        let mut sp = spec(&[
            "10.244.1.0/16",
            "10.245.0.0/16",
            "10.246.0.0/16",
            "nonsense",
        ]);
        sp.service_cidrs = Some(vec!["10.244.0.0/20".into()]);
        sp.ipam_block_size = Some(FamilyPrefixes {
            ipv4: Some(12),
            ipv6: Some(130),
        });
        sp.node_port_range = Some("32767-30000".into());
        sp.dns_domain = Some("Cluster_Local".into());
        sp.load_balancer_pools = Some(vec![
            LoadBalancerPool {
                name: "pub".into(),
                cidrs: vec!["10.245.1.0/24".into()],
            },
            LoadBalancerPool {
                name: "pub".into(),
                cidrs: vec![],
            },
        ]);
        let e = sp.settings().unwrap_err();
        let want = [
            "spec.podCIDRs[0]: \"10.244.1.0/16\" has host bits set (did you mean 10.244.0.0/16?)",
            "spec.podCIDRs[2]: 10.246.0.0/16 is a second CIDR of its family",
            "spec.podCIDRs[3]: \"nonsense\" is not a CIDR",
            "spec.ipamBlockSize.ipv4: /12 is larger than the pod CIDR 10.245.0.0/16",
            "spec.ipamBlockSize.ipv6: /130 is longer than /128",
            "spec.nodePortRange",
            "spec.loadBalancerPools[0].cidrs[0]: 10.245.1.0/24 overlaps 10.245.0.0/16",
            "spec.loadBalancerPools[1].name: \"pub\" is used twice",
            "spec.loadBalancerPools[1].cidrs: at least one CIDR is needed",
            "spec.dnsDomain",
        ];
        for w in want {
            assert!(
                e.iter().any(|x| x.starts_with(w)),
                "missing {w:?} in {e:#?}"
            );
        }
        let e = ClusterNetworkSpec::default().settings().unwrap_err();
        assert_eq!(e, ["spec.podCIDRs: at least one pod CIDR is needed"]);
        let mut sp = spec(&["10.244.0.0/16"]);
        sp.service_cidrs = Some(vec!["10.244.128.0/20".into()]);
        let e = sp.settings().unwrap_err();
        assert_eq!(
            e,
            ["spec.serviceCIDRs[0]: 10.244.128.0/20 overlaps the pod CIDR 10.244.0.0/16"]
        );
    }
}
