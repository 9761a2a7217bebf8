//! The cluster zone: what the cluster's resources say about names under the cluster domain.
//!
//! - `<service>.<namespace>.svc.<domain>`: A/AAAA of the ClusterIPs; for a headless service
//!   (`clusterIP: None`) the addresses of its ready pods (selected, attached, on a live node);
//!   an ExternalName service answers a CNAME to its `externalName`;
//! - `_<port>._<proto>.<service>.<namespace>.svc.<domain>`: SRV for each named port (the
//!   service's name as target; for a headless service one record per pod, each pod's name
//!   being `<address-dashed>.<service>.<namespace>.svc.<domain>`);
//! - `<address-dashed>.<namespace>.pod.<domain>` (`10-244-1-5`, `fd00-10-244--5`): the address,
//!   when a pod of that namespace holds it;
//! - any other name under the domain: NXDOMAIN, or an empty answer (NOERROR) for a name that
//!   exists with other types, both with the zone's SOA in the authority section.
//!
//! Names outside the domain are not the zone's: [`Zone::answer`] returns `None` and the
//! server forwards them.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::str::FromStr;

use ferro_cluster::k8s_openapi::api::core::v1::Service;
use ferro_services::model::{
    pod_addresses, pods_by_namespace, selected_pods, PodsByNamespace, Proto,
};
use ferro_services::Topology;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, AAAA, CNAME, SOA, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};

/// The TTL of the zone's answers (seconds): short, so clients follow the store.
pub const DEFAULT_TTL: u32 = 5;

/// What a service name resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// The ClusterIPs.
    Addresses(Vec<IpAddr>),
    /// A headless service's pods: (the pod's label in DNS, its addresses).
    Pods(Vec<(String, Vec<IpAddr>)>),
    /// An ExternalName service.
    Alias(String),
}

/// A named port of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
struct NamedPort {
    name: String,
    proto: &'static str,
    port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Svc {
    target: Target,
    ports: Vec<NamedPort>,
}

/// The zone as of one snapshot of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    domain: String,
    ttl: u32,
    services: BTreeMap<(String, String), Svc>,
    pods: BTreeSet<(String, IpAddr)>,
    namespaces: BTreeSet<String>,
}

/// The zone's answer to one question.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answer {
    /// NOERROR or NXDOMAIN.
    pub rcode: ResponseCode,
    /// The answer section.
    pub answers: Vec<Record>,
    /// The authority section (the SOA of an empty answer or a missing name).
    pub authorities: Vec<Record>,
    /// The additional section (the addresses of SRV targets).
    pub additionals: Vec<Record>,
    /// An ExternalName's target the server should resolve and append (the question's type
    /// is not CNAME).
    pub chase: Option<Name>,
}

/// The label of `ip` in pod names: dots (IPv4) or colons (IPv6) as dashes.
pub fn dashed(ip: IpAddr) -> String {
    ip.to_string().replace(['.', ':'], "-")
}

/// The address a dashed label names, if any.
pub fn undashed(label: &str) -> Option<IpAddr> {
    if label.matches('-').count() == 3 {
        if let Ok(ip) = IpAddr::from_str(&label.replace('-', ".")) {
            return Some(ip);
        }
    }
    IpAddr::from_str(&label.replace('-', ":"))
        .ok()
        .filter(IpAddr::is_ipv6)
}

fn proto_label(p: Proto) -> &'static str {
    match p {
        Proto::Tcp => "_tcp",
        Proto::Udp => "_udp",
        Proto::Sctp => "_sctp",
    }
}

fn addresses(v: Option<&Vec<String>>) -> Vec<IpAddr> {
    v.into_iter()
        .flatten()
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// Normalizes a domain: lower case, no trailing dot.
pub fn normalize(domain: &str) -> String {
    domain.trim_end_matches('.').to_ascii_lowercase()
}

impl Zone {
    /// The zone of `domain` (`cluster.local`) for the cluster `t` (with its namespaces),
    /// answers valid for `ttl` seconds.
    pub fn build(t: &Topology<'_>, namespaces: &[&str], domain: &str, ttl: u32) -> Zone {
        let addrs = pod_addresses(&t.attachments, &t.live_nodes);
        let pods_by_ns = pods_by_namespace(&t.pods);
        let mut pods = BTreeSet::new();
        for ((ns, _), a) in &addrs {
            for ip in a.v4.iter().chain(&a.v6) {
                pods.insert((ns.to_string(), *ip));
            }
        }
        let mut services = BTreeMap::new();
        for svc in &t.services {
            if let Some((key, s)) = service(svc, &pods_by_ns, &addrs) {
                services.insert(key, s);
            }
        }
        Zone {
            domain: normalize(domain),
            ttl,
            services,
            pods,
            namespaces: namespaces.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// The domain (`cluster.local`).
    pub fn domain(&self) -> &str {
        &self.domain
    }

    fn soa(&self) -> Record {
        let origin = Name::from_ascii(format!("{}.", self.domain)).unwrap_or_else(|_| Name::root());
        let host = |l: &str| origin.prepend_label(l).unwrap_or_else(|_| origin.clone());
        Record::from_rdata(
            origin.clone(),
            self.ttl,
            RData::SOA(SOA::new(
                host("ns.dns"),
                host("hostmaster"),
                1,
                7200,
                1800,
                86400,
                self.ttl,
            )),
        )
    }

    fn record(&self, name: &Name, ip: IpAddr) -> Record {
        let data = match ip {
            IpAddr::V4(v4) => RData::A(A(v4)),
            IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
        };
        Record::from_rdata(name.clone(), self.ttl, data)
    }

    /// The answer to (`name`, `qtype`); `None` when `name` is not under the domain.
    pub fn answer(&self, name: &Name, qtype: RecordType) -> Option<Answer> {
        let full = normalize(&name.to_ascii());
        let rel = if full == self.domain {
            ""
        } else {
            full.strip_suffix(&self.domain)?.strip_suffix('.')?
        };
        let labels: Vec<&str> = if rel.is_empty() {
            Vec::new()
        } else {
            rel.split('.').rev().collect()
        };
        let mut out = Answer::default();
        let exists = match labels.as_slice() {
            // the domain itself, `svc`, `pod`, `<ns>.svc`, `<ns>.pod`: empty non-terminals
            [] => {
                if qtype == RecordType::SOA {
                    out.answers.push(self.soa());
                }
                true
            }
            ["svc"] | ["pod"] => true,
            ["svc" | "pod", ns] => self.namespaces.contains(*ns),
            ["svc", ns, svc] => self.service_answer(name, ns, svc, qtype, &mut out),
            ["svc", ns, svc, sub] => self.pod_of_service(name, ns, svc, sub, qtype, &mut out),
            ["svc", ns, svc, proto, port] => self.srv(name, ns, svc, proto, port, qtype, &mut out),
            ["pod", ns, label] => match undashed(label) {
                Some(ip) if self.pods.contains(&(ns.to_string(), ip)) => {
                    if wants(qtype, ip) {
                        out.answers.push(self.record(name, ip));
                    }
                    true
                }
                _ => false,
            },
            _ => false,
        };
        if !exists {
            out.rcode = ResponseCode::NXDomain;
        }
        if out.answers.is_empty() {
            out.authorities.push(self.soa());
        }
        Some(out)
    }

    fn service_answer(
        &self,
        name: &Name,
        ns: &str,
        svc: &str,
        qtype: RecordType,
        out: &mut Answer,
    ) -> bool {
        let Some(s) = self.services.get(&(ns.to_string(), svc.to_string())) else {
            return false;
        };
        match &s.target {
            Target::Addresses(ips) => out.answers.extend(
                ips.iter()
                    .filter(|ip| wants(qtype, **ip))
                    .map(|ip| self.record(name, *ip)),
            ),
            Target::Pods(pods) => out.answers.extend(
                pods.iter()
                    .flat_map(|(_, ips)| ips)
                    .filter(|ip| wants(qtype, **ip))
                    .map(|ip| self.record(name, *ip)),
            ),
            Target::Alias(to) => {
                if let Ok(target) = Name::from_ascii(format!("{}.", to.trim_end_matches('.'))) {
                    out.answers.push(Record::from_rdata(
                        name.clone(),
                        self.ttl,
                        RData::CNAME(CNAME(target.clone())),
                    ));
                    if qtype != RecordType::CNAME {
                        out.chase = Some(target);
                    }
                }
            }
        }
        true
    }

    fn pod_of_service(
        &self,
        name: &Name,
        ns: &str,
        svc: &str,
        sub: &str,
        qtype: RecordType,
        out: &mut Answer,
    ) -> bool {
        let Some(s) = self.services.get(&(ns.to_string(), svc.to_string())) else {
            return false;
        };
        let Target::Pods(pods) = &s.target else {
            return false;
        };
        let Some((_, ips)) = pods.iter().find(|(l, _)| l == sub) else {
            return false;
        };
        out.answers.extend(
            ips.iter()
                .filter(|ip| wants(qtype, **ip))
                .map(|ip| self.record(name, *ip)),
        );
        true
    }

    #[allow(clippy::too_many_arguments)]
    fn srv(
        &self,
        name: &Name,
        ns: &str,
        svc: &str,
        proto: &str,
        port: &str,
        qtype: RecordType,
        out: &mut Answer,
    ) -> bool {
        let Some(s) = self.services.get(&(ns.to_string(), svc.to_string())) else {
            return false;
        };
        let Some(p) = port
            .strip_prefix('_')
            .and_then(|n| s.ports.iter().find(|p| p.name == n && p.proto == proto))
        else {
            return false;
        };
        if !matches!(qtype, RecordType::SRV | RecordType::ANY) {
            return true;
        }
        let base = format!("{svc}.{ns}.svc.{}.", self.domain);
        let srv = |target: &Name| {
            Record::from_rdata(
                name.clone(),
                self.ttl,
                RData::SRV(SRV::new(0, 100, p.port, target.clone())),
            )
        };
        match &s.target {
            Target::Addresses(ips) => {
                if let Ok(target) = Name::from_ascii(&base) {
                    out.answers.push(srv(&target));
                    out.additionals
                        .extend(ips.iter().map(|ip| self.record(&target, *ip)));
                }
            }
            Target::Pods(pods) => {
                for (label, ips) in pods {
                    if let Ok(target) = Name::from_ascii(format!("{label}.{base}")) {
                        out.answers.push(srv(&target));
                        out.additionals
                            .extend(ips.iter().map(|ip| self.record(&target, *ip)));
                    }
                }
            }
            Target::Alias(_) => {}
        }
        true
    }
}

/// Whether a question of type `qtype` wants address `ip`.
fn wants(qtype: RecordType, ip: IpAddr) -> bool {
    match qtype {
        RecordType::A => ip.is_ipv4(),
        RecordType::AAAA => ip.is_ipv6(),
        RecordType::ANY => true,
        _ => false,
    }
}

fn service(
    svc: &Service,
    pods_by_ns: &PodsByNamespace<'_>,
    addrs: &BTreeMap<(&str, &str), ferro_services::model::PodAddrs>,
) -> Option<((String, String), Svc)> {
    let spec = svc.spec.as_ref()?;
    let ns = svc.metadata.namespace.as_deref()?;
    let name = svc.metadata.name.as_deref()?;
    let ports = spec
        .ports
        .iter()
        .flatten()
        .filter_map(|p| {
            Some(NamedPort {
                name: p.name.clone().filter(|n| !n.is_empty())?,
                proto: proto_label(Proto::parse(p.protocol.as_deref())?),
                port: u16::try_from(p.port).ok()?,
            })
        })
        .collect();
    let target = if spec.type_.as_deref() == Some("ExternalName") {
        Target::Alias(spec.external_name.clone()?)
    } else if spec.cluster_ip.as_deref() == Some("None") {
        let mut pods: Vec<(String, Vec<IpAddr>)> = selected_pods(svc, pods_by_ns)
            .iter()
            .filter_map(|p| {
                let a = addrs.get(&(ns, p.name.as_str()))?;
                let ips: Vec<IpAddr> = a.v4.iter().chain(&a.v6).copied().collect();
                let first = *ips.first()?;
                Some((dashed(first), ips))
            })
            .collect();
        pods.sort();
        Target::Pods(pods)
    } else {
        let mut ips = addresses(spec.cluster_ips.as_ref());
        if let Some(ip) = spec.cluster_ip.as_deref().and_then(|s| s.parse().ok()) {
            if !ips.contains(&ip) {
                ips.insert(0, ip);
            }
        }
        if ips.is_empty() {
            return None;
        }
        Target::Addresses(ips)
    };
    Some(((ns.to_string(), name.to_string()), Svc { target, ports }))
}

#[cfg(test)]
mod tests;
