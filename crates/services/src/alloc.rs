//! What a service needs allocated, and the choice of free values.
//!
//! A ClusterIP (one per family the service serves), a NodePort per port (NodePort and
//! LoadBalancer services) and a load-balancer address per family (LoadBalancer services of
//! our class) are each recorded under a key of their own, owned by the service:
//!
//! ```text
//! /ferro-cni/v1/serviceips/<address>          {"service":"shop/web"}   a ClusterIP
//! /ferro-cni/v1/nodeports/<port>              {"service":"shop/web"}   a NodePort
//! /ferro-cni/v1/loadbalancerips/<address>     {"service":"shop/web"}   a load-balancer address
//! ```
//!
//! The agent writes the service and the keys it newly holds in one store transaction whose
//! compares require each new key to be absent: two nodes applying at once never hand out one
//! value (the loser's transaction fails and it chooses again). [`needs`] says what to keep
//! and what to choose; [`pick_address`] and [`pick_port`] choose; [`fill`] writes the
//! result into the service.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::RangeInclusive;

use ferro_cluster::k8s_openapi::api::core::v1::{
    LoadBalancerIngress, LoadBalancerStatus, Service, ServiceStatus,
};
use ferro_cluster::keys::ROOT;
use ferro_cluster::Settings;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// The `spec.loadBalancerClass` of the cluster's own load balancer; services of another
/// class are left to their controller (no address, no announcement).
pub const LOAD_BALANCER_CLASS: &str = "ferro-cni.io/load-balancer";
/// The annotation naming the `loadBalancerPools` entry a service takes its address from
/// (default: the first pool with an address of the family).
pub const POOL_ANNOTATION: &str = "ferro-cni.io/load-balancer-pool";

/// Prefix of the ClusterIP records.
pub const CLUSTER_IPS: &str = "/ferro-cni/v1/serviceips/";
/// Prefix of the NodePort records.
pub const NODE_PORTS: &str = "/ferro-cni/v1/nodeports/";
/// Prefix of the load-balancer address records.
pub const LB_IPS: &str = "/ferro-cni/v1/loadbalancerips/";

/// The value of an allocation record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// `namespace/name` of the service holding it.
    pub service: String,
}

fn addr_key(prefix: &str, ip: IpAddr) -> String {
    format!("{prefix}{}", ip.to_string().replace(':', "-"))
}

/// The record of ClusterIP `ip`.
pub fn cluster_ip_key(ip: IpAddr) -> String {
    addr_key(CLUSTER_IPS, ip)
}

/// The record of NodePort `port`.
pub fn node_port_key(port: u16) -> String {
    format!("{NODE_PORTS}{port}")
}

/// The record of load-balancer address `ip`.
pub fn lb_ip_key(ip: IpAddr) -> String {
    addr_key(LB_IPS, ip)
}

/// The address a ClusterIP or load-balancer record is for.
pub fn address_of_key(key: &str) -> Option<IpAddr> {
    let rest = key
        .strip_prefix(CLUSTER_IPS)
        .or_else(|| key.strip_prefix(LB_IPS))?;
    rest.parse::<Ipv4Addr>()
        .map(IpAddr::V4)
        .or_else(|_| rest.replace('-', ":").parse::<Ipv6Addr>().map(IpAddr::V6))
        .ok()
}

/// The port a NodePort record is for.
pub fn port_of_key(key: &str) -> Option<u16> {
    key.strip_prefix(NODE_PORTS)?.parse().ok()
}

// Every record lives under the root, in plurals no resource kind uses.
const _: () = assert!(CLUSTER_IPS.len() > ROOT.len());

/// `namespace/name`.
pub fn service_id(svc: &Service) -> String {
    format!(
        "{}/{}",
        svc.metadata.namespace.as_deref().unwrap_or_default(),
        svc.metadata.name.as_deref().unwrap_or_default()
    )
}

/// Whether the cluster's load balancer serves `svc` (its class is ours or unset).
pub fn is_ours(svc: &Service) -> bool {
    svc.spec
        .as_ref()
        .and_then(|s| s.load_balancer_class.as_deref())
        .is_none_or(|c| c == LOAD_BALANCER_CLASS)
}

/// A value kept (given in the manifest, or allocated before), or one to choose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Slot<T, From> {
    /// This value.
    Fixed(T),
    /// Any free value from here.
    Pick(From),
}

/// What a service needs, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Needs {
    /// One per family the service serves (primary first): its ClusterIP.
    pub cluster_ips: Vec<Slot<IpAddr, IpNet>>,
    /// Per entry of `spec.ports`: its NodePort, when it gets one.
    pub node_ports: Vec<Option<Slot<u16, RangeInclusive<u16>>>>,
    /// One per family with a pool: its load-balancer address.
    pub lb_ips: Vec<Slot<IpAddr, Vec<IpNet>>>,
}

fn parse_ips(svc: &Service) -> Vec<IpAddr> {
    let Some(spec) = &svc.spec else {
        return Vec::new();
    };
    let mut v: Vec<IpAddr> = spec
        .cluster_ip
        .iter()
        .chain(spec.cluster_ips.iter().flatten())
        .filter_map(|s| s.parse().ok())
        .collect();
    let mut seen = BTreeSet::new();
    v.retain(|ip| seen.insert(*ip));
    v
}

fn family_name(v6: bool) -> &'static str {
    if v6 {
        "IPv6"
    } else {
        "IPv4"
    }
}

/// What `svc` needs, keeping what it was given and what `previous` (the stored version)
/// already holds. Errors name the field.
pub fn needs(
    svc: &Service,
    previous: Option<&Service>,
    settings: &Settings,
) -> Result<Needs, Vec<String>> {
    let mut errors = Vec::new();
    let mut out = Needs::default();
    let Some(spec) = &svc.spec else {
        return Ok(out);
    };
    let ty = spec.type_.as_deref().unwrap_or("ClusterIP");
    if ty == "ExternalName" {
        return Ok(out);
    }
    let prev_spec = previous.and_then(|p| p.spec.as_ref());
    let headless = spec.cluster_ip.as_deref() == Some("None");
    let given = parse_ips(svc);
    let before = previous.map(parse_ips).unwrap_or_default();
    if !given.is_empty() && !before.is_empty() && given != before {
        errors.push(format!(
            "spec.clusterIP: {} may not change (the service has {})",
            given[0], before[0]
        ));
    }
    let ips = if given.is_empty() { before } else { given };

    // Families: those of the addresses, else spec.ipFamilies and the policy.
    let configured: Vec<bool> = settings
        .service_cidrs
        .iter()
        .map(|c| matches!(c, IpNet::V6(_)))
        .collect();
    let asked: Vec<bool> = spec
        .ip_families
        .iter()
        .flatten()
        .map(|f| f == "IPv6")
        .collect();
    let policy = spec.ip_family_policy.as_deref().unwrap_or("SingleStack");
    let mut fams: Vec<bool> = ips.iter().map(IpAddr::is_ipv6).collect();
    if fams.is_empty() {
        fams = asked.clone();
        if fams.is_empty() {
            fams.extend(configured.first().copied());
        }
    }
    if policy != "SingleStack" {
        for f in &configured {
            if !fams.contains(f) {
                fams.push(*f);
            }
        }
    }
    if policy == "SingleStack" {
        fams.truncate(1);
    }
    if policy == "RequireDualStack" && !(configured.contains(&false) && configured.contains(&true))
    {
        errors.push(
            "spec.ipFamilyPolicy: RequireDualStack, but the cluster has a service CIDR of one family only"
                .to_string(),
        );
    }
    if !headless && !settings.service_cidrs.is_empty() {
        for (i, v6) in fams.iter().enumerate() {
            match ips.iter().find(|ip| ip.is_ipv6() == *v6) {
                Some(ip) => out.cluster_ips.push(Slot::Fixed(*ip)),
                None => match settings
                    .service_cidrs
                    .iter()
                    .find(|c| matches!(c, IpNet::V6(_)) == *v6)
                {
                    Some(c) => out.cluster_ips.push(Slot::Pick(*c)),
                    None if i == 0 || policy == "RequireDualStack" => errors.push(format!(
                        "spec.ipFamilies: the cluster has no {} service CIDR",
                        family_name(*v6)
                    )),
                    None => {}
                },
            }
        }
    }

    // NodePorts.
    let lb = ty == "LoadBalancer";
    let wants_node_ports =
        ty == "NodePort" || (lb && spec.allocate_load_balancer_node_ports != Some(false));
    let mut fixed_ports: Vec<(u16, String)> = Vec::new();
    for (i, p) in spec.ports.iter().flatten().enumerate() {
        let proto = p.protocol.clone().unwrap_or_else(|| "TCP".into());
        let given = p
            .node_port
            .filter(|n| *n != 0)
            .and_then(|n| u16::try_from(n).ok());
        let kept = || {
            prev_spec?
                .ports
                .iter()
                .flatten()
                .find(|q| {
                    q.port == p.port && q.protocol.clone().unwrap_or_else(|| "TCP".into()) == proto
                })?
                .node_port
                .filter(|n| *n != 0)
                .and_then(|n| u16::try_from(n).ok())
        };
        let slot = if given.is_some() || wants_node_ports {
            match given.or_else(kept) {
                Some(n) => {
                    if fixed_ports.iter().any(|(m, pr)| *m == n && *pr == proto) {
                        errors.push(format!(
                            "spec.ports[{i}].nodePort: {n} {proto} is used twice in the service"
                        ));
                    }
                    fixed_ports.push((n, proto));
                    Some(Slot::Fixed(n))
                }
                None => Some(Slot::Pick(settings.node_ports.clone())),
            }
        } else {
            None
        };
        out.node_ports.push(slot);
    }

    // Load-balancer addresses.
    if lb && is_ours(svc) {
        let pool = svc
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(POOL_ANNOTATION));
        let pools: Vec<&(String, Vec<IpNet>)> = settings
            .load_balancer_pools
            .iter()
            .filter(|(n, _)| pool.is_none_or(|p| p == n))
            .collect();
        if let Some(p) = pool {
            if pools.is_empty() {
                errors.push(format!(
                    "metadata.annotations.{POOL_ANNOTATION}: the cluster has no load-balancer pool {p:?}"
                ));
            }
        }
        let given: Option<IpAddr> = spec
            .load_balancer_ip
            .as_deref()
            .filter(|s| !s.is_empty())
            .and_then(|s| s.parse().ok());
        let had: Vec<IpAddr> = previous.map(crate::model::lb_addresses).unwrap_or_default();
        let in_pool = |ip: &IpAddr| pools.iter().any(|(_, c)| c.iter().any(|c| c.contains(ip)));
        for v6 in &fams {
            let cidrs: Vec<IpNet> = pools
                .iter()
                .flat_map(|(_, c)| c.iter().copied())
                .filter(|c| matches!(c, IpNet::V6(_)) == *v6)
                .collect();
            let fixed = given.filter(|ip| ip.is_ipv6() == *v6).or_else(|| {
                had.iter()
                    .copied()
                    .find(|ip| ip.is_ipv6() == *v6 && in_pool(ip))
            });
            match fixed {
                Some(ip) => out.lb_ips.push(Slot::Fixed(ip)),
                None if !cidrs.is_empty() => out.lb_ips.push(Slot::Pick(cidrs)),
                None => {}
            }
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// The number of usable addresses of `net` and the offset of the first: IPv4 leaves out the
/// network and broadcast addresses (when the prefix leaves room), IPv6 the subnet-router
/// anycast address.
fn usable(net: &IpNet) -> (u128, u128) {
    let host_bits = u32::from(net.max_prefix_len() - net.prefix_len());
    let size: u128 = if host_bits >= 128 {
        u128::MAX
    } else {
        1u128 << host_bits
    };
    match net {
        IpNet::V4(_) if size > 2 => (size - 2, 1),
        IpNet::V6(_) if size > 1 => (size - 1, 1),
        _ => (size, 0),
    }
}

fn nth(net: &IpNet, n: u128) -> IpAddr {
    match net {
        IpNet::V4(v) => IpAddr::V4(Ipv4Addr::from(
            u32::from(v.network()).wrapping_add(n as u32),
        )),
        IpNet::V6(v) => IpAddr::V6(Ipv6Addr::from(u128::from(v.network()).wrapping_add(n))),
    }
}

/// How many candidates a choice looks at before giving up (a huge IPv6 range is never
/// walked whole).
const MAX_PROBES: u128 = 1 << 20;

/// A free address of `cidrs` (in order), starting at an offset derived from `seed` so that
/// concurrent allocators rarely collide; `None` when every probed address is `taken`.
pub fn pick_address(cidrs: &[IpNet], taken: &BTreeSet<IpAddr>, seed: u64) -> Option<IpAddr> {
    for net in cidrs {
        let (count, first) = usable(net);
        if count == 0 {
            continue;
        }
        let start = u128::from(seed) % count;
        for k in 0..count.min(MAX_PROBES) {
            let ip = nth(net, first + (start + k) % count);
            if !taken.contains(&ip) {
                return Some(ip);
            }
        }
    }
    None
}

/// A free port of `range`, starting at an offset derived from `seed`.
pub fn pick_port(range: &RangeInclusive<u16>, taken: &BTreeSet<u16>, seed: u64) -> Option<u16> {
    let (a, b) = (u32::from(*range.start()), u32::from(*range.end()));
    if a > b {
        return None;
    }
    let count = b - a + 1;
    let start = (seed % u64::from(count)) as u32;
    (0..count)
        .map(|k| a + (start + k) % count)
        .filter_map(|p| u16::try_from(p).ok())
        .find(|p| !taken.contains(p))
}

/// Writes the chosen values into the service: `spec.clusterIP(s)`, `spec.ipFamilies` and
/// `spec.ipFamilyPolicy` (when it has ClusterIPs), each port's `nodePort`, and
/// `status.loadBalancer.ingress`.
pub fn fill(svc: &mut Service, cluster_ips: &[IpAddr], node_ports: &[Option<u16>], lb: &[IpAddr]) {
    let Some(spec) = svc.spec.as_mut() else {
        return;
    };
    if !cluster_ips.is_empty() {
        spec.cluster_ip = Some(cluster_ips[0].to_string());
        spec.cluster_ips = Some(cluster_ips.iter().map(ToString::to_string).collect());
        spec.ip_families = Some(
            cluster_ips
                .iter()
                .map(|ip| family_name(ip.is_ipv6()).to_string())
                .collect(),
        );
        spec.ip_family_policy
            .get_or_insert_with(|| "SingleStack".to_string());
    }
    for (p, n) in spec.ports.iter_mut().flatten().zip(node_ports) {
        if let Some(n) = n {
            p.node_port = Some(i32::from(*n));
        }
    }
    if !lb.is_empty() {
        svc.status = Some(ServiceStatus {
            load_balancer: Some(LoadBalancerStatus {
                ingress: Some(
                    lb.iter()
                        .map(|ip| LoadBalancerIngress {
                            ip: Some(ip.to_string()),
                            ip_mode: Some("VIP".to_string()),
                            ..Default::default()
                        })
                        .collect(),
                ),
            }),
            ..Default::default()
        });
    }
}

/// The allocation records a stored service holds: its ClusterIPs inside the cluster's
/// service CIDRs, its NodePorts, its load-balancer addresses.
pub fn held_keys(svc: &Service) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let Some(spec) = &svc.spec else {
        return out;
    };
    for ip in parse_ips(svc) {
        out.insert(cluster_ip_key(ip));
    }
    for p in spec.ports.iter().flatten() {
        if let Some(n) = p
            .node_port
            .filter(|n| *n != 0)
            .and_then(|n| u16::try_from(n).ok())
        {
            out.insert(node_port_key(n));
        }
    }
    for ip in crate::model::lb_addresses(svc) {
        out.insert(lb_ip_key(ip));
    }
    out
}

#[cfg(test)]
mod tests;
