//! What a resource must mean, beyond its shape: names, labels, ports, protocols, addresses,
//! selectors. Pure: references to other objects (a Pod's namespace existing) and the
//! cluster's settings (a NodePort in range) are checked where the store is
//! ([`service_in_cluster`] takes the settings).
//!
//! Every problem names its field, from the object's root (`spec.ports[1].targetPort: ...`).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::network::{parse_cidr, Settings, CLUSTER_NETWORK_NAME};
use crate::resource::Object;
use crate::{names, Kind, Selector};

/// The namespace of namespaced objects that name none.
pub const DEFAULT_NAMESPACE: &str = "default";
/// The label every namespace carries, set to its name.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";
/// Protocols of ports.
pub const PROTOCOLS: [&str; 3] = ["TCP", "UDP", "SCTP"];

/// Prepares an object a user applies: the default namespace, the namespace name label,
/// server-managed fields and status removed. Returns the `resourceVersion` it carried (a
/// precondition for the update).
pub fn normalize(o: &mut Object) -> Result<Option<i64>, Vec<String>> {
    let kind = o.kind();
    let mut errors = Vec::new();
    let m = o.meta_mut();
    if m.name.as_deref().is_none_or(str::is_empty) {
        errors.push(if m.generate_name.is_some() {
            "metadata.generateName is not supported: give metadata.name".to_string()
        } else {
            "metadata.name: missing".to_string()
        });
    }
    if kind.namespaced() {
        if m.namespace.as_deref().is_none_or(str::is_empty) {
            m.namespace = Some(DEFAULT_NAMESPACE.to_string());
        }
    } else if m.namespace.is_some() {
        errors.push(format!(
            "metadata.namespace: {kind} is cluster-scoped: remove metadata.namespace"
        ));
    }
    let precondition = match m.resource_version.take() {
        None => None,
        Some(rv) => match rv.parse::<i64>() {
            Ok(r) if r > 0 => Some(r),
            _ => {
                errors.push(format!(
                    "metadata.resourceVersion: {rv:?} is not a revision of this store"
                ));
                None
            }
        },
    };
    m.uid = None;
    m.creation_timestamp = None;
    m.deletion_timestamp = None;
    m.deletion_grace_period_seconds = None;
    m.generation = None;
    m.managed_fields = None;
    m.self_link = None;
    if kind == Kind::Namespace {
        let name = m.name.clone().unwrap_or_default();
        m.labels
            .get_or_insert_with(BTreeMap::new)
            .insert(NAMESPACE_NAME_LABEL.to_string(), name);
    }
    match o {
        Object::Pod(p) => p.status = None,
        Object::Service(s) => s.status = None,
        Object::Namespace(n) => n.status = None,
        _ => {}
    }
    if errors.is_empty() {
        Ok(precondition)
    } else {
        Err(errors)
    }
}

fn meta(kind: Kind, m: &ObjectMeta, errors: &mut Vec<String>) {
    if let Some(name) = m.name.as_deref() {
        let bad = match kind {
            Kind::Namespace => names::dns1123_label(name),
            Kind::Service => names::dns1035_label(name),
            _ => names::dns1123_subdomain(name),
        };
        if let Some(e) = bad {
            errors.push(format!("metadata.name: {e}"));
        }
        if kind == Kind::ClusterNetwork && name != CLUSTER_NETWORK_NAME {
            errors.push(format!(
                "metadata.name: the cluster has one ClusterNetwork, named {CLUSTER_NETWORK_NAME:?} (not {name:?})"
            ));
        }
    }
    if let Some(ns) = m.namespace.as_deref() {
        if let Some(e) = names::dns1123_label(ns) {
            errors.push(format!("metadata.namespace: {e}"));
        }
    }
    for (k, v) in m.labels.iter().flatten() {
        if let Some(e) = names::label_key(k) {
            errors.push(format!("metadata.labels: {e}"));
        }
        if let Some(e) = names::label_value(v) {
            errors.push(format!("metadata.labels.{k}: {e}"));
        }
    }
    for k in m.annotations.iter().flatten().map(|(k, _)| k) {
        if let Some(e) = names::label_key(k) {
            errors.push(format!(
                "metadata.annotations: {}",
                e.replace("label key", "key")
            ));
        }
    }
}

/// Every problem of `o`, each naming its field.
pub fn object(o: &Object) -> Vec<String> {
    let mut errors = Vec::new();
    meta(o.kind(), o.meta(), &mut errors);
    match o {
        Object::Namespace(_) => {}
        Object::Pod(p) => pod(p, &mut errors),
        Object::Service(s) => service(s, &mut errors),
        Object::NetworkPolicy(n) => network_policy(n, &mut errors),
        Object::ClusterNetwork(c) => {
            if let Err(e) = c.settings() {
                errors.extend(e);
            }
            if let Some(f) = &c.spec.node_firewall {
                if let Err(e) = f.checked() {
                    errors.extend(e);
                }
            }
        }
        Object::EgressPolicy(e) => {
            if let Err(e) = e.checked() {
                errors.extend(e);
            }
        }
        Object::Node(_) | Object::IpamBlock(_) | Object::Attachment(_) => {}
    }
    errors
}

fn protocol(at: &str, p: Option<&String>, errors: &mut Vec<String>) {
    if let Some(p) = p {
        if !PROTOCOLS.contains(&p.as_str()) {
            errors.push(format!("{at}: {p:?} is not one of TCP, UDP, SCTP"));
        }
    }
}

fn port_number(at: &str, n: i32, errors: &mut Vec<String>) {
    if !(1..=65535).contains(&n) {
        errors.push(format!("{at}: {n} is not a port (1-65535)"));
    }
}

fn int_or_name(at: &str, v: &IntOrString, errors: &mut Vec<String>) {
    match v {
        IntOrString::Int(n) => port_number(at, *n, errors),
        IntOrString::String(s) => {
            if let Some(e) = names::iana_svc_name(s) {
                errors.push(format!("{at}: {e}"));
            }
        }
    }
}

fn pod(p: &Pod, errors: &mut Vec<String>) {
    let Some(spec) = &p.spec else {
        errors.push("spec: missing (a Pod needs at least one container)".into());
        return;
    };
    if spec.containers.is_empty() {
        errors.push("spec.containers: at least one container is needed".into());
    }
    if let Some(n) = &spec.node_name {
        if let Some(e) = names::dns1123_subdomain(n) {
            errors.push(format!("spec.nodeName: {e}"));
        }
    }
    let mut container_names = BTreeSet::new();
    let mut port_names = BTreeSet::new();
    let all = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| ("spec.initContainers", c))
        .chain(spec.containers.iter().map(|c| ("spec.containers", c)));
    let mut index: BTreeMap<&str, usize> = BTreeMap::new();
    for (list, c) in all {
        let i = index.entry(list).or_default();
        let at = format!("{list}[{i}]");
        *i += 1;
        if let Some(e) = names::dns1123_label(&c.name) {
            errors.push(format!("{at}.name: {e}"));
        } else if !container_names.insert(c.name.clone()) {
            errors.push(format!("{at}.name: {:?} is used twice", c.name));
        }
        for (j, port) in c.ports.iter().flatten().enumerate() {
            let pat = format!("{at}.ports[{j}]");
            port_number(&format!("{pat}.containerPort"), port.container_port, errors);
            if let Some(h) = port.host_port {
                if h != 0 {
                    port_number(&format!("{pat}.hostPort"), h, errors);
                }
            }
            if let Some(ip) = &port.host_ip {
                if ip.parse::<IpAddr>().is_err() {
                    errors.push(format!("{pat}.hostIP: {ip:?} is not an IP address"));
                }
            }
            protocol(&format!("{pat}.protocol"), port.protocol.as_ref(), errors);
            if let Some(n) = &port.name {
                if let Some(e) = names::iana_svc_name(n) {
                    errors.push(format!("{pat}.name: {e}"));
                } else if !port_names.insert(n.clone()) {
                    errors.push(format!("{pat}.name: {n:?} is used twice in the pod"));
                }
            }
        }
    }
}

fn labels_map(at: &str, m: Option<&BTreeMap<String, String>>, errors: &mut Vec<String>) {
    for (k, v) in m.into_iter().flatten() {
        if let Some(e) = names::label_key(k) {
            errors.push(format!("{at}: {e}"));
        }
        if let Some(e) = names::label_value(v) {
            errors.push(format!("{at}.{k}: {e}"));
        }
    }
}

const SERVICE_TYPES: [&str; 4] = ["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"];

fn one_of(at: &str, v: Option<&String>, allowed: &[&str], errors: &mut Vec<String>) {
    if let Some(v) = v {
        if !allowed.contains(&v.as_str()) {
            errors.push(format!("{at}: {v:?} is not one of {}", allowed.join(", ")));
        }
    }
}

fn service(s: &Service, errors: &mut Vec<String>) {
    let Some(spec) = &s.spec else {
        errors.push("spec: missing".into());
        return;
    };
    one_of("spec.type", spec.type_.as_ref(), &SERVICE_TYPES, errors);
    let ty = spec.type_.as_deref().unwrap_or("ClusterIP");
    let headless = spec.cluster_ip.as_deref() == Some("None");
    let ports = spec.ports.as_deref().unwrap_or(&[]);
    if ty == "ExternalName" {
        match spec.external_name.as_deref() {
            None | Some("") => {
                errors.push("spec.externalName: needed for type ExternalName".into())
            }
            Some(n) => {
                if let Some(e) = names::dns1123_subdomain(n.trim_end_matches('.')) {
                    errors.push(format!("spec.externalName: {e}"));
                }
            }
        }
    } else {
        if ports.is_empty() && !headless {
            errors.push("spec.ports: at least one port is needed".into());
        }
        if spec.external_name.is_some() {
            errors.push("spec.externalName: only for type ExternalName".into());
        }
    }
    let mut seen_names = BTreeSet::new();
    let mut seen_ports = BTreeSet::new();
    for (i, p) in ports.iter().enumerate() {
        let at = format!("spec.ports[{i}]");
        port_number(&format!("{at}.port"), p.port, errors);
        protocol(&format!("{at}.protocol"), p.protocol.as_ref(), errors);
        let proto = p.protocol.clone().unwrap_or_else(|| "TCP".into());
        if !seen_ports.insert((p.port, proto.clone())) {
            errors.push(format!("{at}: port {} {proto} is given twice", p.port));
        }
        match &p.name {
            Some(n) => {
                if let Some(e) = names::dns1123_label(n) {
                    errors.push(format!("{at}.name: {e}"));
                } else if !seen_names.insert(n.clone()) {
                    errors.push(format!("{at}.name: {n:?} is used twice"));
                }
            }
            None if ports.len() > 1 => errors.push(format!(
                "{at}.name: needed when a service has several ports"
            )),
            None => {}
        }
        if let Some(t) = &p.target_port {
            int_or_name(&format!("{at}.targetPort"), t, errors);
        }
        if let Some(np) = p.node_port {
            if np != 0 {
                port_number(&format!("{at}.nodePort"), np, errors);
                if !matches!(ty, "NodePort" | "LoadBalancer") {
                    errors.push(format!(
                        "{at}.nodePort: only for type NodePort or LoadBalancer"
                    ));
                }
            }
        }
    }
    let ips: Vec<&String> = spec
        .cluster_ip
        .iter()
        .chain(spec.cluster_ips.iter().flatten())
        .collect();
    for ip in ips {
        if !ip.is_empty() && ip != "None" && ip.parse::<IpAddr>().is_err() {
            errors.push(format!(
                "spec.clusterIP: {ip:?} is not an IP address, \"None\" or empty"
            ));
        }
    }
    if let (Some(a), Some(list)) = (&spec.cluster_ip, &spec.cluster_ips) {
        if list.first() != Some(a) {
            errors.push("spec.clusterIPs: its first entry must be spec.clusterIP".into());
        }
    }
    for (i, f) in spec.ip_families.iter().flatten().enumerate() {
        one_of(
            &format!("spec.ipFamilies[{i}]"),
            Some(f),
            &["IPv4", "IPv6"],
            errors,
        );
    }
    one_of(
        "spec.ipFamilyPolicy",
        spec.ip_family_policy.as_ref(),
        &["SingleStack", "PreferDualStack", "RequireDualStack"],
        errors,
    );
    one_of(
        "spec.sessionAffinity",
        spec.session_affinity.as_ref(),
        &["None", "ClientIP"],
        errors,
    );
    let timeout = spec
        .session_affinity_config
        .as_ref()
        .and_then(|c| c.client_ip.as_ref())
        .and_then(|c| c.timeout_seconds);
    if let Some(t) = timeout.filter(|t| !(1..=86400).contains(t)) {
        errors.push(format!(
            "spec.sessionAffinityConfig.clientIP.timeoutSeconds: {t} is not between 1 and 86400"
        ));
    }
    one_of(
        "spec.externalTrafficPolicy",
        spec.external_traffic_policy.as_ref(),
        &["Cluster", "Local"],
        errors,
    );
    if spec.external_traffic_policy.is_some() && !matches!(ty, "NodePort" | "LoadBalancer") {
        errors.push("spec.externalTrafficPolicy: only for type NodePort or LoadBalancer".into());
    }
    one_of(
        "spec.internalTrafficPolicy",
        spec.internal_traffic_policy.as_ref(),
        &["Cluster", "Local"],
        errors,
    );
    labels_map("spec.selector", spec.selector.as_ref(), errors);
    for (i, ip) in spec.external_ips.iter().flatten().enumerate() {
        if ip.parse::<IpAddr>().is_err() {
            errors.push(format!(
                "spec.externalIPs[{i}]: {ip:?} is not an IP address"
            ));
        }
    }
    if let Some(ip) = &spec.load_balancer_ip {
        if ip.parse::<IpAddr>().is_err() {
            errors.push(format!("spec.loadBalancerIP: {ip:?} is not an IP address"));
        }
    }
    for (i, r) in spec
        .load_balancer_source_ranges
        .iter()
        .flatten()
        .enumerate()
    {
        if let Err(e) = parse_cidr(r) {
            errors.push(format!("spec.loadBalancerSourceRanges[{i}]: {e}"));
        }
    }
}

fn selector(at: &str, s: &LabelSelector, errors: &mut Vec<String>) {
    if let Err(e) = Selector::parse(s) {
        errors.extend(e.into_iter().map(|e| format!("{at}.{e}")));
    }
}

fn policy_ports(at: &str, ports: Option<&Vec<NetworkPolicyPort>>, errors: &mut Vec<String>) {
    for (i, p) in ports.into_iter().flatten().enumerate() {
        let pat = format!("{at}.ports[{i}]");
        protocol(&format!("{pat}.protocol"), p.protocol.as_ref(), errors);
        if let Some(port) = &p.port {
            int_or_name(&format!("{pat}.port"), port, errors);
        }
        if let Some(end) = p.end_port {
            match &p.port {
                Some(IntOrString::Int(start)) => {
                    port_number(&format!("{pat}.endPort"), end, errors);
                    if end < *start {
                        errors.push(format!("{pat}.endPort: {end} is below port {start}"));
                    }
                }
                _ => errors.push(format!("{pat}.endPort: needs a numeric port")),
            }
        }
    }
}

fn policy_peers(at: &str, peers: Option<&Vec<NetworkPolicyPeer>>, errors: &mut Vec<String>) {
    for (i, p) in peers.into_iter().flatten().enumerate() {
        let pat = format!("{at}[{i}]");
        let selectors = p.pod_selector.is_some() || p.namespace_selector.is_some();
        if let Some(s) = &p.pod_selector {
            selector(&format!("{pat}.podSelector"), s, errors);
        }
        if let Some(s) = &p.namespace_selector {
            selector(&format!("{pat}.namespaceSelector"), s, errors);
        }
        match &p.ip_block {
            Some(_) if selectors => errors.push(format!(
                "{pat}.ipBlock: cannot be combined with podSelector or namespaceSelector in one peer"
            )),
            Some(b) => match parse_cidr(&b.cidr) {
                Err(e) => errors.push(format!("{pat}.ipBlock.cidr: {e}")),
                Ok(net) => {
                    for (j, x) in b.except.iter().flatten().enumerate() {
                        match parse_cidr(x) {
                            Err(e) => errors.push(format!("{pat}.ipBlock.except[{j}]: {e}")),
                            Ok(ex) => {
                                let inside = matches!(
                                    (&net, &ex),
                                    (IpNet::V4(_), IpNet::V4(_)) | (IpNet::V6(_), IpNet::V6(_))
                                ) && net.contains(&ex)
                                    && ex.prefix_len() > net.prefix_len();
                                if !inside {
                                    errors.push(format!(
                                        "{pat}.ipBlock.except[{j}]: {ex} is not strictly inside {net}"
                                    ));
                                }
                            }
                        }
                    }
                }
            },
            None if !selectors => errors.push(format!(
                "{pat}: a peer needs podSelector, namespaceSelector or ipBlock"
            )),
            None => {}
        }
    }
}

fn network_policy(n: &NetworkPolicy, errors: &mut Vec<String>) {
    let Some(spec) = &n.spec else {
        errors.push("spec: missing".into());
        return;
    };
    match &spec.pod_selector {
        Some(s) => selector("spec.podSelector", s, errors),
        None => {
            errors.push("spec.podSelector: missing ({} selects every pod of the namespace)".into())
        }
    }
    let mut seen = BTreeSet::new();
    for (i, t) in spec.policy_types.iter().flatten().enumerate() {
        one_of(
            &format!("spec.policyTypes[{i}]"),
            Some(t),
            &["Ingress", "Egress"],
            errors,
        );
        if !seen.insert(t) {
            errors.push(format!("spec.policyTypes[{i}]: {t:?} is given twice"));
        }
    }
    for (i, r) in spec.ingress.iter().flatten().enumerate() {
        let at = format!("spec.ingress[{i}]");
        policy_peers(&format!("{at}.from"), r.from.as_ref(), errors);
        policy_ports(&at, r.ports.as_ref(), errors);
    }
    for (i, r) in spec.egress.iter().flatten().enumerate() {
        let at = format!("spec.egress[{i}]");
        policy_peers(&format!("{at}.to"), r.to.as_ref(), errors);
        policy_ports(&at, r.ports.as_ref(), errors);
    }
}

/// Checks a Service against the cluster's settings: NodePorts in the range, a given
/// ClusterIP inside a service CIDR, a given load-balancer address inside a pool.
pub fn service_in_cluster(s: &Service, settings: &Settings) -> Vec<String> {
    let mut errors = Vec::new();
    let Some(spec) = &s.spec else {
        return errors;
    };
    for (i, p) in spec.ports.iter().flatten().enumerate() {
        if let Some(np) = p.node_port.filter(|n| *n != 0) {
            let ok = u16::try_from(np).is_ok_and(|n| settings.node_ports.contains(&n));
            if !ok {
                errors.push(format!(
                    "spec.ports[{i}].nodePort: {np} is outside the cluster's NodePort range {}-{}",
                    settings.node_ports.start(),
                    settings.node_ports.end()
                ));
            }
        }
    }
    for ip in spec
        .cluster_ip
        .iter()
        .chain(spec.cluster_ips.iter().flatten())
    {
        if let Ok(a) = ip.parse::<IpAddr>() {
            if !settings.service_cidrs.iter().any(|n| n.contains(&a)) {
                errors.push(format!(
                    "spec.clusterIP: {a} is outside the cluster's service CIDRs ({})",
                    if settings.service_cidrs.is_empty() {
                        "none configured".to_string()
                    } else {
                        settings
                            .service_cidrs
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                ));
            }
        }
    }
    if let Some(Ok(a)) = spec.load_balancer_ip.as_ref().map(|s| s.parse::<IpAddr>()) {
        let in_pool = settings
            .load_balancer_pools
            .iter()
            .any(|(_, cidrs)| cidrs.iter().any(|c| c.contains(&a)));
        if !in_pool {
            errors.push(format!(
                "spec.loadBalancerIP: {a} is in no load-balancer pool of the cluster"
            ));
        }
    }
    errors
}
