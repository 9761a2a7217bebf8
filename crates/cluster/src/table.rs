//! What `cnictl get` and `cnictl describe` print, as kubectl prints it: a table with one
//! row per object (more columns with `-o wide`, a NAMESPACE column with `-A`), and a
//! description of one object.

use std::fmt::Write as _;

use k8s_openapi::api::core::v1::ServicePort;
use k8s_openapi::api::networking::v1::{NetworkPolicyPeer, NetworkPolicyPort};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;

use crate::resource::Object;
use crate::{Kind, Selector};

/// How to render a table.
#[derive(Debug, Clone, Copy)]
pub struct TableOptions {
    /// More columns (`-o wide`).
    pub wide: bool,
    /// A NAMESPACE column (`-A`).
    pub all_namespaces: bool,
    /// The time ages are measured to.
    pub now: Timestamp,
}

/// kubectl's age: `45s`, `12m`, `5h`, `3d`.
pub fn age(meta: &ObjectMeta, now: Timestamp) -> String {
    let Some(t) = &meta.creation_timestamp else {
        return "<unknown>".into();
    };
    let secs = now.as_second().saturating_sub(t.0.as_second()).max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 2 * 3600 => format!("{}m", s / 60),
        s if s < 2 * 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

fn none_if_empty(s: String) -> String {
    if s.is_empty() {
        "<none>".into()
    } else {
        s
    }
}

fn labels_text(meta: &ObjectMeta) -> String {
    none_if_empty(
        meta.labels
            .iter()
            .flatten()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(","),
    )
}

fn port_text(p: &ServicePort) -> String {
    let proto = p.protocol.as_deref().unwrap_or("TCP");
    match p.node_port {
        Some(n) if n != 0 => format!("{}:{n}/{proto}", p.port),
        _ => format!("{}/{proto}", p.port),
    }
}

/// What `kubectl get svc` shows as EXTERNAL-IP: the load-balancer addresses and external
/// IPs, `<pending>` for a LoadBalancer without an address yet, else `<none>`.
fn external_ips(s: &k8s_openapi::api::core::v1::Service) -> String {
    let lb: Vec<String> = s
        .status
        .as_ref()
        .and_then(|st| st.load_balancer.as_ref())
        .and_then(|l| l.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|i| i.ip.clone().or_else(|| i.hostname.clone()))
        .collect();
    let spec = s.spec.as_ref();
    let mut all = lb;
    all.extend(
        spec.and_then(|s| s.external_ips.clone())
            .unwrap_or_default(),
    );
    if all.is_empty() {
        if spec.and_then(|s| s.type_.as_deref()) == Some("LoadBalancer") {
            return "<pending>".into();
        }
        return "<none>".into();
    }
    all.join(",")
}

fn int_or_string(v: &IntOrString) -> String {
    match v {
        IntOrString::Int(n) => n.to_string(),
        IntOrString::String(s) => s.clone(),
    }
}

fn selector_text(
    s: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>,
) -> String {
    match s.map(Selector::parse) {
        Some(Ok(sel)) => sel.to_string(),
        Some(Err(_)) => "<invalid>".into(),
        None => "<none>".into(),
    }
}

/// The columns of `kind` (after NAME, before AGE).
fn columns(kind: Kind, wide: bool) -> Vec<&'static str> {
    let mut c = match kind {
        Kind::Namespace => vec!["STATUS"],
        Kind::Pod => vec!["CONTAINERS", "NODE"],
        Kind::Service => vec!["TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)"],
        Kind::NetworkPolicy => vec!["POD-SELECTOR"],
        Kind::ClusterNetwork => vec!["POD-CIDRS", "SERVICE-CIDRS"],
        Kind::EgressPolicy => vec!["NAMESPACES", "POD-SELECTOR", "DEFAULT", "RULES"],
        Kind::Node => vec!["STATUS", "ADDRESSES"],
        Kind::IpamBlock => vec!["CIDR", "NODE", "MODE", "IN-USE"],
        Kind::Attachment => vec!["NODE", "POD", "INTERFACE", "ADDRESSES"],
    };
    if wide {
        c.extend(match kind {
            Kind::Pod => vec!["IP", "LABELS"],
            Kind::Attachment => vec!["HOST-INTERFACE", "NETWORK", "LABELS"],
            Kind::Service => vec!["SELECTOR"],
            Kind::NetworkPolicy => vec!["POLICY-TYPES"],
            Kind::Node => vec!["VTEP-MAC", "POD-CIDRS", "LEASE"],
            Kind::Namespace => vec!["LABELS"],
            _ => vec![],
        });
    }
    c
}

fn cells(o: &Object, wide: bool) -> Vec<String> {
    let mut c: Vec<String> = match o {
        Object::Namespace(_) => vec!["Active".into()],
        Object::Pod(p) => {
            let spec = p.spec.as_ref();
            vec![
                spec.map_or(0, |s| s.containers.len()).to_string(),
                spec.and_then(|s| s.node_name.clone())
                    .unwrap_or_else(|| "<none>".into()),
            ]
        }
        Object::Service(s) => {
            let spec = s.spec.as_ref();
            vec![
                spec.and_then(|s| s.type_.clone())
                    .unwrap_or_else(|| "ClusterIP".into()),
                spec.and_then(|s| s.cluster_ip.clone())
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| "<none>".into()),
                external_ips(s),
                none_if_empty(
                    spec.and_then(|s| s.ports.as_ref())
                        .map(|ps| ps.iter().map(port_text).collect::<Vec<_>>().join(","))
                        .unwrap_or_default(),
                ),
            ]
        }
        Object::NetworkPolicy(n) => vec![selector_text(
            n.spec.as_ref().and_then(|s| s.pod_selector.as_ref()),
        )],
        Object::EgressPolicy(e) => vec![
            e.spec
                .namespaces
                .as_ref()
                .map_or_else(|| "<all>".to_string(), |n| n.join(",")),
            selector_text(e.spec.pod_selector.as_ref()),
            e.spec
                .default_action
                .clone()
                .unwrap_or_else(|| "Allow".into()),
            e.spec.allow.as_ref().map_or(0, Vec::len).to_string(),
        ],
        Object::ClusterNetwork(c) => vec![
            none_if_empty(c.spec.pod_cidrs.clone().unwrap_or_default().join(",")),
            none_if_empty(c.spec.service_cidrs.clone().unwrap_or_default().join(",")),
        ],
        Object::Node(n) => vec![
            if n.status.as_ref().is_some_and(|s| s.ready) {
                "Ready".into()
            } else {
                "NotReady".into()
            },
            none_if_empty(n.spec.addresses.join(",")),
        ],
        Object::IpamBlock(b) => {
            let st = |k: &str| {
                b.status
                    .as_ref()
                    .and_then(|s| s.get(k))
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
            };
            vec![
                b.spec.cidr.clone(),
                b.spec.node.clone().unwrap_or_else(|| "<none>".into()),
                st("mode").unwrap_or_else(|| "<none>".into()),
                match (st("inUse"), st("capacity")) {
                    (Some(u), Some(c)) => format!("{u}/{c}"),
                    _ => "<none>".into(),
                },
            ]
        }
        Object::Attachment(a) => vec![
            a.spec.node.clone(),
            a.spec.pod.clone().unwrap_or_else(|| "<none>".into()),
            a.spec.interface.clone(),
            none_if_empty(a.spec.addresses.join(",")),
        ],
    };
    if wide {
        match o {
            Object::Pod(p) => {
                c.push(
                    p.status
                        .as_ref()
                        .and_then(|s| s.pod_ip.clone())
                        .unwrap_or_else(|| "<none>".into()),
                );
                c.push(labels_text(&p.metadata));
            }
            Object::Attachment(a) => {
                c.push(
                    a.spec
                        .host_interface
                        .clone()
                        .unwrap_or_else(|| "<none>".into()),
                );
                c.push(a.spec.network.clone().unwrap_or_else(|| "<none>".into()));
                c.push(labels_text(&a.metadata));
            }
            Object::Namespace(n) => c.push(labels_text(&n.metadata)),
            Object::Service(s) => c.push(none_if_empty(
                s.spec
                    .as_ref()
                    .and_then(|s| s.selector.as_ref())
                    .map(|m| Selector::from_map(m).to_string())
                    .unwrap_or_default(),
            )),
            Object::NetworkPolicy(n) => c.push(none_if_empty(
                n.spec
                    .as_ref()
                    .and_then(|s| s.policy_types.clone())
                    .unwrap_or_default()
                    .join(","),
            )),
            Object::Node(n) => {
                c.push(n.spec.vtep_mac.clone().unwrap_or_else(|| "<none>".into()));
                c.push(none_if_empty(
                    n.spec.pod_cidrs.clone().unwrap_or_default().join(","),
                ));
                c.push(
                    n.status
                        .as_ref()
                        .and_then(|s| s.lease.clone())
                        .unwrap_or_else(|| "<none>".into()),
                );
            }
            _ => {}
        }
    }
    c
}

/// Rows as aligned columns (three spaces apart, the last column unpadded), one line each.
pub fn layout(rows: &[Vec<String>]) -> String {
    let n = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..n)
        .map(|i| {
            rows.iter()
                .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i + 1 == r.len() {
                line.push_str(c);
            } else {
                let _ = write!(line, "{c:<w$}   ", w = widths[i]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The table of `objects` of `kind`; empty when there are none (the caller says "No
/// resources found").
pub fn render(kind: Kind, objects: &[Object], opts: TableOptions) -> String {
    if objects.is_empty() {
        return String::new();
    }
    let ns_column = opts.all_namespaces && kind.namespaced();
    let mut head = Vec::new();
    if ns_column {
        head.push("NAMESPACE".to_string());
    }
    head.push("NAME".to_string());
    head.extend(columns(kind, opts.wide).into_iter().map(String::from));
    head.push("AGE".to_string());
    let mut rows = vec![head];
    for o in objects {
        let mut r = Vec::new();
        if ns_column {
            r.push(o.namespace().unwrap_or("").to_string());
        }
        r.push(o.name().to_string());
        r.extend(cells(o, opts.wide));
        r.push(age(o.meta(), opts.now));
        rows.push(r);
    }
    layout(&rows)
}

fn peers_text(peers: Option<&Vec<NetworkPolicyPeer>>) -> String {
    let Some(peers) = peers else {
        return "any".into();
    };
    if peers.is_empty() {
        return "any".into();
    }
    peers
        .iter()
        .map(|p| {
            if let Some(b) = &p.ip_block {
                let except = b.except.clone().unwrap_or_default();
                if except.is_empty() {
                    format!("ipBlock {}", b.cidr)
                } else {
                    format!("ipBlock {} except {}", b.cidr, except.join(","))
                }
            } else {
                let mut parts = Vec::new();
                if let Some(s) = &p.namespace_selector {
                    parts.push(format!("namespaces {}", selector_text(Some(s))));
                }
                if let Some(s) = &p.pod_selector {
                    parts.push(format!("pods {}", selector_text(Some(s))));
                }
                parts.join(" and ")
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn policy_ports_text(ports: Option<&Vec<NetworkPolicyPort>>) -> String {
    match ports {
        None => "all".into(),
        Some(ps) if ps.is_empty() => "all".into(),
        Some(ps) => ps
            .iter()
            .map(|p| {
                let proto = p.protocol.as_deref().unwrap_or("TCP");
                match (&p.port, p.end_port) {
                    (Some(port), Some(end)) => format!("{}-{end}/{proto}", int_or_string(port)),
                    (Some(port), None) => format!("{}/{proto}", int_or_string(port)),
                    (None, _) => format!("all/{proto}"),
                }
            })
            .collect::<Vec<_>>()
            .join(","),
    }
}

/// The description of one object, then the `facts` the agent adds (`Selected pods`,
/// `Lease`...), as `Label:  value` lines.
pub fn describe(o: &Object, facts: &[(String, String)]) -> String {
    let m = o.meta();
    let mut lines: Vec<(String, String)> = vec![("Name".into(), o.name().to_string())];
    if let Some(ns) = o.namespace() {
        lines.push(("Namespace".into(), ns.to_string()));
    }
    lines.push((
        "Kind".into(),
        format!("{} ({})", o.kind(), o.kind().api_version()),
    ));
    lines.push(("Labels".into(), labels_text(m)));
    lines.push((
        "Annotations".into(),
        none_if_empty(
            m.annotations
                .iter()
                .flatten()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(","),
        ),
    ));
    if let Some(t) = &m.creation_timestamp {
        lines.push(("Created".into(), t.0.to_string()));
    }
    if let Some(rv) = &m.resource_version {
        lines.push(("Revision".into(), rv.clone()));
    }
    let mut add = |k: &str, v: String| lines.push((k.to_string(), v));
    match o {
        Object::Namespace(_) => add("Status", "Active".into()),
        Object::Pod(p) => {
            let spec = p.spec.as_ref();
            add(
                "Node",
                spec.and_then(|s| s.node_name.clone())
                    .unwrap_or_else(|| "<none>".into()),
            );
            for c in spec.map(|s| s.containers.as_slice()).unwrap_or(&[]) {
                let ports = c
                    .ports
                    .iter()
                    .flatten()
                    .map(|p| {
                        let proto = p.protocol.as_deref().unwrap_or("TCP");
                        match &p.name {
                            Some(n) => format!("{n} {}/{proto}", p.container_port),
                            None => format!("{}/{proto}", p.container_port),
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                add(
                    "Container",
                    format!(
                        "{} ({}) ports: {}",
                        c.name,
                        c.image.as_deref().unwrap_or("no image"),
                        none_if_empty(ports)
                    ),
                );
            }
        }
        Object::Service(s) => {
            let spec = s.spec.clone().unwrap_or_default();
            add(
                "Type",
                spec.type_.clone().unwrap_or_else(|| "ClusterIP".into()),
            );
            add(
                "Selector",
                none_if_empty(
                    spec.selector
                        .as_ref()
                        .map(|m| Selector::from_map(m).to_string())
                        .unwrap_or_default(),
                ),
            );
            add(
                "ClusterIP",
                spec.cluster_ip
                    .clone()
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| "<none>".into()),
            );
            for p in spec.ports.iter().flatten() {
                add(
                    "Port",
                    format!(
                        "{}{} -> {}",
                        p.name.as_ref().map(|n| format!("{n} ")).unwrap_or_default(),
                        port_text(p),
                        p.target_port
                            .as_ref()
                            .map(int_or_string)
                            .unwrap_or_else(|| p.port.to_string())
                    ),
                );
            }
            if let Some(n) = &spec.external_name {
                add("ExternalName", n.clone());
            }
        }
        Object::NetworkPolicy(n) => {
            let spec = n.spec.clone().unwrap_or_default();
            add("PodSelector", selector_text(spec.pod_selector.as_ref()));
            add(
                "PolicyTypes",
                none_if_empty(spec.policy_types.clone().unwrap_or_default().join(", ")),
            );
            for r in spec.ingress.iter().flatten() {
                add(
                    "Ingress",
                    format!(
                        "from {} to ports {}",
                        peers_text(r.from.as_ref()),
                        policy_ports_text(r.ports.as_ref())
                    ),
                );
            }
            for r in spec.egress.iter().flatten() {
                add(
                    "Egress",
                    format!(
                        "to {} ports {}",
                        peers_text(r.to.as_ref()),
                        policy_ports_text(r.ports.as_ref())
                    ),
                );
            }
        }
        Object::EgressPolicy(e) => {
            add(
                "Namespaces",
                e.spec
                    .namespaces
                    .as_ref()
                    .map_or_else(|| "<all>".to_string(), |n| n.join(", ")),
            );
            add("PodSelector", selector_text(e.spec.pod_selector.as_ref()));
            add(
                "DefaultAction",
                e.spec
                    .default_action
                    .clone()
                    .unwrap_or_else(|| "Allow".into()),
            );
            for r in e.spec.allow.iter().flatten() {
                let ports = r.ports.as_ref().map_or_else(
                    || "<all>".to_string(),
                    |ps| {
                        ps.iter()
                            .map(|p| {
                                format!("{}/{}", p.port, p.protocol.as_deref().unwrap_or("TCP"))
                            })
                            .collect::<Vec<_>>()
                            .join(",")
                    },
                );
                let to: Vec<String> = r
                    .to_cidrs
                    .iter()
                    .flatten()
                    .chain(r.to_names.iter().flatten())
                    .cloned()
                    .collect();
                add("Allow", format!("to {} ports {ports}", to.join(",")));
            }
        }
        Object::ClusterNetwork(c) => match c.settings() {
            Ok(s) => {
                let list = |v: &[ipnet::IpNet]| {
                    none_if_empty(
                        v.iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", "),
                    )
                };
                add("PodCIDRs", list(&s.pod_cidrs));
                add(
                    "IPAMBlockSize",
                    format!("/{} (IPv4), /{} (IPv6)", s.block_v4, s.block_v6),
                );
                add(
                    "NodeBlockSize",
                    format!("/{} (IPv4), /{} (IPv6)", s.node_block_v4, s.node_block_v6),
                );
                add("ServiceCIDRs", list(&s.service_cidrs));
                add(
                    "NodePortRange",
                    format!("{}-{}", s.node_ports.start(), s.node_ports.end()),
                );
                for (name, cidrs) in &s.load_balancer_pools {
                    add("LoadBalancerPool", format!("{name}: {}", list(cidrs)));
                }
                add("DNSDomain", s.dns_domain);
            }
            Err(e) => add("Invalid", e.join("; ")),
        },
        Object::Node(n) => {
            add("Addresses", none_if_empty(n.spec.addresses.join(", ")));
            add(
                "VTEPMAC",
                n.spec.vtep_mac.clone().unwrap_or_else(|| "<none>".into()),
            );
            add(
                "PodCIDRs",
                none_if_empty(n.spec.pod_cidrs.clone().unwrap_or_default().join(", ")),
            );
            if let Some(v) = &n.spec.agent_version {
                add("AgentVersion", v.clone());
            }
            let st = n.status.clone().unwrap_or_default();
            add(
                "Ready",
                if st.ready {
                    "True".into()
                } else {
                    "False".into()
                },
            );
            if let Some(l) = st.lease {
                add(
                    "Lease",
                    format!(
                        "{l} (TTL {}s, since {})",
                        st.lease_ttl_seconds.unwrap_or(0),
                        st.since.unwrap_or_default()
                    ),
                );
            }
            add("Blocks", none_if_empty(st.blocks.join(", ")));
        }
        Object::IpamBlock(b) => {
            add("CIDR", b.spec.cidr.clone());
            add(
                "Node",
                b.spec.node.clone().unwrap_or_else(|| "<none>".into()),
            );
        }
        Object::Attachment(a) => {
            add("Node", a.spec.node.clone());
            add("Pod", a.spec.pod.clone().unwrap_or_else(|| "<none>".into()));
            add("ContainerID", a.spec.container_id.clone());
            add("Interface", a.spec.interface.clone());
            add("Addresses", none_if_empty(a.spec.addresses.join(", ")));
        }
    }
    lines.extend(facts.iter().cloned());
    let w = lines.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 3;
    let mut out = String::new();
    for (k, v) in lines {
        let _ = writeln!(out, "{:<w$}{v}", format!("{k}:"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{admit_all, decode, parse_documents};

    fn objects(text: &str) -> Vec<Object> {
        admit_all("t.yaml", text)
            .unwrap()
            .into_iter()
            .map(|a| a.object)
            .collect()
    }

    fn now() -> Timestamp {
        "2024-01-02T00:00:00Z".parse().unwrap()
    }

    #[test]
    fn external_ips_show_load_balancer_addresses_or_pending() {
        let o = objects(
            "apiVersion: v1
kind: Service
metadata: {name: lb, namespace: shop}
spec: {type: LoadBalancer, clusterIP: 10.96.0.11, externalIPs: [192.0.2.7], ports: [{port: 80, nodePort: 30081}]}
---
apiVersion: v1
kind: Service
metadata: {name: waiting, namespace: shop}
spec: {type: LoadBalancer, clusterIP: 10.96.0.12, ports: [{port: 80}]}
",
        );
        let mut lb = o[0].clone();
        if let Object::Service(s) = &mut lb {
            s.status = serde_json::from_value(serde_json::json!(
                {"loadBalancer": {"ingress": [{"ip": "10.240.1.1"}]}}
            ))
            .unwrap();
        }
        let t = render(
            Kind::Service,
            &[lb, o[1].clone()],
            TableOptions {
                wide: false,
                all_namespaces: false,
                now: now(),
            },
        );
        assert!(t.contains(" 10.240.1.1,192.0.2.7 "), "{t}");
        assert!(t.contains(" <pending> "), "{t}");
    }

    #[test]
    fn service_tables_follow_kubectl() {
        let mut o = objects(
            "apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  type: NodePort
  clusterIP: 10.96.0.10
  selector: {app: web}
  ports: [{name: http, port: 80, nodePort: 30080}, {name: dns, port: 53, protocol: UDP}]
",
        );
        o[0].meta_mut().creation_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                "2024-01-01T23:55:00Z".parse().unwrap(),
            ));
        let t = render(
            Kind::Service,
            &o,
            TableOptions {
                wide: true,
                all_namespaces: true,
                now: now(),
            },
        );
        assert_eq!(
            t,
            "NAMESPACE   NAME   TYPE       CLUSTER-IP   EXTERNAL-IP   PORT(S)               SELECTOR   AGE\n\
             shop        web    NodePort   10.96.0.10   <none>        80:30080/TCP,53/UDP   app=web    5m\n"
        );
        assert_eq!(
            render(
                Kind::Service,
                &[],
                TableOptions {
                    wide: false,
                    all_namespaces: false,
                    now: now()
                }
            ),
            ""
        );
    }

    #[test]
    fn nodes_show_their_lease() {
        let doc = &parse_documents(
            "n.yaml",
            "apiVersion: ferro-cni.io/v1
kind: Node
metadata: {name: node-a}
spec: {addresses: [10.240.0.4]}
status: {ready: true, lease: 694d, leaseTTLSeconds: 10, since: '2024-01-01T00:00:00Z'}
",
        )
        .unwrap()[0];
        let node = decode(doc).unwrap();
        let t = render(
            Kind::Node,
            std::slice::from_ref(&node),
            TableOptions {
                wide: false,
                all_namespaces: true,
                now: now(),
            },
        );
        assert_eq!(
            t,
            "NAME     STATUS   ADDRESSES    AGE\nnode-a   Ready    10.240.0.4   <unknown>\n"
        );
        let d = describe(&node, &[("Attachments".into(), "3".into())]);
        assert!(
            d.contains("Lease:        694d (TTL 10s, since 2024-01-01T00:00:00Z)\n"),
            "{d}"
        );
        assert!(d.ends_with("Attachments:  3\n"), "{d}");
    }

    #[test]
    fn descriptions_of_policies_and_networks() {
        let o = objects(
            "apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p, namespace: x}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{namespaceSelector: {matchLabels: {team: a}}, podSelector: {}}, {ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}}]
    ports: [{port: 80}, {port: 8000, endPort: 8080, protocol: UDP}]
---
apiVersion: ferro-cni.io/v1
kind: ClusterNetwork
metadata: {name: default}
spec: {podCIDRs: [10.244.0.0/16], loadBalancerPools: [{name: pub, cidrs: [192.0.2.0/28]}]}
",
        );
        let d = describe(&o[0], &[]);
        assert!(
            d.contains("Ingress:      from namespaces team=a and pods <none>; ipBlock 10.0.0.0/8 except 10.1.0.0/16 to ports 80/TCP,8000-8080/UDP\n"),
            "{d}"
        );
        assert!(d.contains("PodSelector:  app=web\n"), "{d}");
        let d = describe(&o[1], &[]);
        for want in [
            "IPAMBlockSize:     /26 (IPv4), /122 (IPv6)\n",
            "NodePortRange:     30000-32767\n",
            "LoadBalancerPool:  pub: 192.0.2.0/28\n",
            "DNSDomain:         cluster.local\n",
        ] {
            assert!(d.contains(want), "missing {want:?} in\n{d}");
        }
    }
}
