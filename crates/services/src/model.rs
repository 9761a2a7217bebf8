//! Services as the datapath sees them: one [`ServicePort`] per port and address family of
//! every service, with its virtual addresses, policies and endpoints.
//!
//! Endpoints are pods of the service's namespace whose labels match its selector, that have
//! an address (an `Attachment` of theirs reports one) on a node whose agent holds a live
//! lease. `targetPort` is resolved per pod: a number is used as is, a name is looked up in
//! the pod's container ports (a pod without that name is no endpoint of that port).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::net::IpAddr;

use ferro_cluster::k8s_openapi::api::core::v1::{Service, ServicePort as K8sPort};
use ferro_cluster::k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use ferro_cluster::resource::Attachment;
use ferro_cluster::PodView;
use ipnet::IpNet;

use crate::alloc::is_ours;

/// The default `sessionAffinityConfig.clientIP.timeoutSeconds` (3 hours).
pub const DEFAULT_AFFINITY_SECONDS: u32 = 10_800;

/// A transport protocol of a service port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Proto {
    /// TCP (6).
    Tcp,
    /// UDP (17).
    Udp,
    /// SCTP (132).
    Sctp,
}

impl Proto {
    /// From the Kubernetes name (`TCP` when absent).
    pub fn parse(s: Option<&str>) -> Option<Proto> {
        match s.unwrap_or("TCP") {
            "TCP" => Some(Proto::Tcp),
            "UDP" => Some(Proto::Udp),
            "SCTP" => Some(Proto::Sctp),
            _ => None,
        }
    }

    /// The IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            Proto::Tcp => 6,
            Proto::Udp => 17,
            Proto::Sctp => 132,
        }
    }

    /// `tcp`, `udp`, `sctp`.
    pub fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Sctp => "sctp",
        }
    }
}

/// One backend of a service port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Endpoint {
    /// Its address.
    pub ip: IpAddr,
    /// The port on the pod (`targetPort`, resolved).
    pub port: u16,
    /// The pod's name.
    pub pod: String,
    /// The node it runs on.
    pub node: String,
}

/// One port of one service in one address family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    /// The service's namespace.
    pub namespace: String,
    /// The service's name.
    pub service: String,
    /// The port's name (its number when unnamed).
    pub port_name: String,
    /// Its protocol.
    pub proto: Proto,
    /// IPv6 (else IPv4).
    pub v6: bool,
    /// The service port.
    pub port: u16,
    /// The ClusterIP of this family (none for a service without one).
    pub cluster_ip: Option<IpAddr>,
    /// `spec.externalIPs` of this family.
    pub external_ips: Vec<IpAddr>,
    /// Load-balancer addresses of this family (`status.loadBalancer.ingress`, ours only).
    pub lb_ips: Vec<IpAddr>,
    /// The NodePort (NodePort and LoadBalancer services).
    pub node_port: Option<u16>,
    /// `loadBalancerSourceRanges` of this family: other sources are dropped on `lb_ips`.
    pub source_ranges: Vec<IpNet>,
    /// `externalTrafficPolicy: Local`.
    pub external_local: bool,
    /// `internalTrafficPolicy: Local`.
    pub internal_local: bool,
    /// `sessionAffinity: ClientIP`: its timeout in seconds.
    pub affinity_seconds: Option<u32>,
    /// Every endpoint, in address order.
    pub endpoints: Vec<Endpoint>,
}

impl ServicePort {
    /// `namespace/service/proto/port-name`, how kube-proxy names a service port.
    pub fn id(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.namespace,
            self.service,
            self.proto.name(),
            self.port_name
        )
    }

    /// The endpoints on `node`.
    pub fn local_endpoints<'a>(&'a self, node: &'a str) -> impl Iterator<Item = &'a Endpoint> {
        self.endpoints.iter().filter(move |e| e.node == node)
    }

    /// Whether it is reachable from outside through a node (NodePort, external or
    /// load-balancer addresses).
    pub fn has_external(&self) -> bool {
        self.node_port.is_some() || !self.external_ips.is_empty() || !self.lb_ips.is_empty()
    }
}

impl fmt::Display for ServicePort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.id(), if self.v6 { " (IPv6)" } else { "" })
    }
}

/// What the model is computed from: the cluster's resources as of one snapshot.
#[derive(Debug, Clone, Default)]
pub struct Topology<'a> {
    /// Every service.
    pub services: Vec<&'a Service>,
    /// Every pod.
    pub pods: Vec<&'a PodView>,
    /// Every attachment.
    pub attachments: Vec<&'a Attachment>,
    /// The nodes whose agents hold a live lease.
    pub live_nodes: BTreeSet<&'a str>,
}

/// A pod's address per family and its node, from its attachments: the first address of
/// each family in interface order (`eth0` before `net1`), on a live node.
#[derive(Debug, Clone, Default)]
pub struct PodAddrs {
    /// Its IPv4 address.
    pub v4: Option<IpAddr>,
    /// Its IPv6 address.
    pub v6: Option<IpAddr>,
    /// Its node.
    pub node: String,
}

fn ip_of(cidr: &str) -> Option<IpAddr> {
    cidr.split('/').next()?.parse().ok()
}

/// Every attached pod's addresses on a live node, by (namespace, name).
pub fn pod_addresses<'a>(
    attachments: &[&'a Attachment],
    live: &BTreeSet<&str>,
) -> BTreeMap<(&'a str, &'a str), PodAddrs> {
    let mut sorted: Vec<&&Attachment> = attachments
        .iter()
        .filter(|a| a.spec.pod.is_some() && live.contains(a.spec.node.as_str()))
        .collect();
    sorted.sort_by(|a, b| {
        (&a.spec.interface, &a.metadata.name).cmp(&(&b.spec.interface, &b.metadata.name))
    });
    let mut out: BTreeMap<(&str, &str), PodAddrs> = BTreeMap::new();
    for a in sorted {
        let ns = a.metadata.namespace.as_deref().unwrap_or_default();
        let pod = a.spec.pod.as_deref().unwrap_or_default();
        let e = out.entry((ns, pod)).or_insert_with(|| PodAddrs {
            node: a.spec.node.clone(),
            ..PodAddrs::default()
        });
        for ip in a.spec.addresses.iter().filter_map(|c| ip_of(c)) {
            let slot = if ip.is_ipv6() { &mut e.v6 } else { &mut e.v4 };
            if slot.is_none() {
                *slot = Some(ip);
            }
        }
    }
    out
}

/// The port a pod serves `target` on for `proto`: a number as is, a name from the pod's
/// container ports.
pub fn resolve_target(pod: &PodView, target: &IntOrString, proto: Proto) -> Option<u16> {
    match target {
        IntOrString::Int(n) => u16::try_from(*n).ok().filter(|p| *p != 0),
        IntOrString::String(name) => {
            if let Ok(n) = name.parse::<u16>() {
                return Some(n).filter(|p| *p != 0);
            }
            pod.ports
                .iter()
                .find(|p| {
                    p.name.as_deref() == Some(name.as_str())
                        && Proto::parse(p.protocol.as_deref()) == Some(proto)
                })
                .and_then(|p| u16::try_from(p.container_port).ok())
        }
    }
}

fn addrs(list: Option<&Vec<String>>) -> Vec<IpAddr> {
    list.into_iter()
        .flatten()
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// The address families a service serves, IPv4 before IPv6 when both: those of its
/// ClusterIPs, else of `spec.ipFamilies`, else IPv4.
pub fn families(svc: &Service) -> Vec<bool> {
    let Some(spec) = &svc.spec else {
        return vec![false];
    };
    let mut ips = addrs(spec.cluster_ips.as_ref());
    ips.extend(
        spec.cluster_ip
            .as_deref()
            .and_then(|s| s.parse::<IpAddr>().ok()),
    );
    let mut f: Vec<bool> = if ips.is_empty() {
        spec.ip_families
            .iter()
            .flatten()
            .map(|f| f == "IPv6")
            .collect()
    } else {
        ips.iter().map(IpAddr::is_ipv6).collect()
    };
    if f.is_empty() {
        f.push(false);
    }
    f.sort();
    f.dedup();
    f
}

/// The load-balancer addresses a service holds, when its class is ours (or unset).
pub fn lb_addresses(svc: &Service) -> Vec<IpAddr> {
    let spec = svc.spec.as_ref();
    if spec.and_then(|s| s.type_.as_deref()) != Some("LoadBalancer") || !is_ours(svc) {
        return Vec::new();
    }
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|l| l.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|i| i.ip.as_deref()?.parse().ok())
        .collect()
}

fn port_name(p: &K8sPort) -> String {
    p.name
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| p.port.to_string())
}

/// The pods of a cluster indexed for selectors: per namespace, each label (key and value)
/// to the pods carrying it, in the order given.
#[derive(Debug, Default)]
pub struct PodsByNamespace<'a> {
    by_label: BTreeMap<&'a str, HashMap<(&'a str, &'a str), Vec<&'a PodView>>>,
}

/// Indexes `pods` by namespace and label.
pub fn pods_by_namespace<'a>(pods: &[&'a PodView]) -> PodsByNamespace<'a> {
    let mut out = PodsByNamespace::default();
    for p in pods {
        let labels = out.by_label.entry(p.namespace.as_str()).or_default();
        for (k, v) in p.labels.iter() {
            labels.entry((k.as_str(), v.as_str())).or_default().push(p);
        }
    }
    out
}

/// The pods `svc`'s selector matches in its namespace (none without a selector: such a
/// service has no endpoints the cluster computes). The selector's label carried by the
/// fewest pods gives the candidates; the others are checked on those alone.
pub fn selected_pods<'a>(svc: &Service, pods_by_ns: &PodsByNamespace<'a>) -> Vec<&'a PodView> {
    let ns = svc.metadata.namespace.as_deref().unwrap_or_default();
    let Some(m) = svc
        .spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .filter(|m| !m.is_empty())
    else {
        return Vec::new();
    };
    let Some(labels) = pods_by_ns.by_label.get(ns) else {
        return Vec::new();
    };
    let lists: Option<Vec<&Vec<&PodView>>> = m
        .iter()
        .map(|(k, v)| labels.get(&(k.as_str(), v.as_str())))
        .collect();
    let Some(fewest) = lists.and_then(|l| l.into_iter().min_by_key(|l| l.len())) else {
        return Vec::new();
    };
    fewest
        .iter()
        .copied()
        .filter(|p| m.iter().all(|(k, v)| p.labels.get(k) == Some(v)))
        .collect()
}

pub fn service_ports(t: &Topology<'_>) -> Vec<ServicePort> {
    let addrs_by_pod = pod_addresses(&t.attachments, &t.live_nodes);
    let pods_by_ns = pods_by_namespace(&t.pods);
    let mut out = Vec::new();
    for svc in &t.services {
        let Some(spec) = &svc.spec else { continue };
        let ty = spec.type_.as_deref().unwrap_or("ClusterIP");
        if ty == "ExternalName" || spec.cluster_ip.as_deref() == Some("None") {
            continue;
        }
        let ns = svc.metadata.namespace.as_deref().unwrap_or_default();
        let name = svc.metadata.name.as_deref().unwrap_or_default();
        let mut cluster_ips = addrs(spec.cluster_ips.as_ref());
        if let Some(ip) = spec.cluster_ip.as_deref().and_then(|s| s.parse().ok()) {
            if !cluster_ips.contains(&ip) {
                cluster_ips.insert(0, ip);
            }
        }
        let external_ips = addrs(spec.external_ips.as_ref());
        let lb_ips = lb_addresses(svc);
        let ranges: Vec<IpNet> = spec
            .load_balancer_source_ranges
            .iter()
            .flatten()
            .filter_map(|s| s.trim().parse::<IpNet>().ok().map(|n| n.trunc()))
            .collect();
        let affinity = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
            spec.session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds)
                .and_then(|s| u32::try_from(s).ok())
                .filter(|s| *s > 0)
                .unwrap_or(DEFAULT_AFFINITY_SECONDS)
        });
        let selected = selected_pods(svc, &pods_by_ns);
        for v6 in families(svc) {
            let fam = |ips: &[IpAddr]| -> Vec<IpAddr> {
                ips.iter().copied().filter(|i| i.is_ipv6() == v6).collect()
            };
            for p in spec.ports.iter().flatten() {
                let Some(proto) = Proto::parse(p.protocol.as_deref()) else {
                    continue;
                };
                let Ok(port) = u16::try_from(p.port) else {
                    continue;
                };
                let target = p.target_port.clone().unwrap_or(IntOrString::Int(p.port));
                let mut endpoints: Vec<Endpoint> = selected
                    .iter()
                    .filter_map(|pod| {
                        let pname = pod.name.as_str();
                        let a = addrs_by_pod.get(&(ns, pname))?;
                        let ip = if v6 { a.v6 } else { a.v4 }?;
                        Some(Endpoint {
                            ip,
                            port: resolve_target(pod, &target, proto)?,
                            pod: pname.to_string(),
                            node: a.node.clone(),
                        })
                    })
                    .collect();
                endpoints.sort();
                endpoints.dedup_by(|a, b| a.ip == b.ip && a.port == b.port);
                out.push(ServicePort {
                    namespace: ns.to_string(),
                    service: name.to_string(),
                    port_name: port_name(p),
                    proto,
                    v6,
                    port,
                    cluster_ip: fam(&cluster_ips).first().copied(),
                    external_ips: fam(&external_ips),
                    lb_ips: fam(&lb_ips),
                    node_port: matches!(ty, "NodePort" | "LoadBalancer")
                        .then_some(p.node_port)
                        .flatten()
                        .and_then(|n| u16::try_from(n).ok())
                        .filter(|n| *n != 0),
                    source_ranges: ranges
                        .iter()
                        .copied()
                        .filter(|r| matches!(r, IpNet::V6(_)) == v6)
                        .collect(),
                    external_local: spec.external_traffic_policy.as_deref() == Some("Local"),
                    internal_local: spec.internal_traffic_policy.as_deref() == Some("Local"),
                    affinity_seconds: affinity,
                    endpoints,
                });
            }
        }
    }
    out.sort_by_key(|a| (a.id(), a.v6));
    out
}

#[cfg(test)]
mod tests;
