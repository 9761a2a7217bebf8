//! Resources from JSON, for tests (this crate's, the agent's) and examples.

use ferro_cluster::k8s_openapi::api::core::v1::{Pod, Service};
use ferro_cluster::resource::Attachment;
use ferro_cluster::PodView;
use serde_json::{json, Value};

/// A Service from the JSON of its spec (and status).
pub fn svc(ns: &str, name: &str, spec: Value) -> Service {
    serde_json::from_value(json!({"metadata":{"namespace":ns,"name":name},"spec":spec}))
        .expect("service")
}

/// A Service with a status.
pub fn svc_status(ns: &str, name: &str, spec: Value, status: Value) -> Service {
    serde_json::from_value(
        json!({"metadata":{"namespace":ns,"name":name},"spec":spec,"status":status}),
    )
    .expect("service")
}

/// A pod with labels and container ports `[(name, port, proto)]`, as the agent keeps it.
pub fn pod(ns: &str, name: &str, app: &str, ports: &[(&str, i32, &str)]) -> PodView {
    let ports: Vec<Value> = ports
        .iter()
        .map(|(n, p, pr)| json!({"name":n,"containerPort":p,"protocol":pr}))
        .collect();
    let p: Pod = serde_json::from_value(json!({
        "metadata":{"namespace":ns,"name":name,"labels":{"app":app}},
        "spec":{"containers":[{"name":"c","image":"x","ports":ports}]}
    }))
    .expect("pod");
    PodView::from(&p)
}

/// An attachment of pod `ns/name` on `node` with `addrs`.
pub fn att(ns: &str, pod: &str, node: &str, addrs: &[&str]) -> Attachment {
    serde_json::from_value(json!({
        "apiVersion":"ferro-cni.io/v1","kind":"Attachment",
        "metadata":{"namespace":ns,"name":format!("{pod}-eth0")},
        "spec":{"node":node,"pod":pod,"containerID":"c","interface":"eth0","addresses":addrs}
    }))
    .expect("attachment")
}

/// A cluster of eight services (ClusterIP with a named target port; NodePort with
/// `externalTrafficPolicy: Local` and affinity; a dual-stack LoadBalancer with source
/// ranges; one without endpoints; one with `internalTrafficPolicy: Local`; one with three
/// ports of three protocols, UDP, TCP and SCTP, targets by name and number; a headless one
/// and an ExternalName, which program nothing), three pods on nodes `a` and `b`.
pub fn cluster() -> (Vec<Service>, Vec<PodView>, Vec<Attachment>) {
    let services = vec![
        svc(
            "shop",
            "web",
            json!({"selector":{"app":"web"},"clusterIP":"10.96.0.10","ports":[{"name":"http","port":80,"targetPort":"http"}]}),
        ),
        svc(
            "shop",
            "np",
            json!({"type":"NodePort","selector":{"app":"web"},"clusterIP":"10.96.0.11",
                "externalTrafficPolicy":"Local","sessionAffinity":"ClientIP",
                "sessionAffinityConfig":{"clientIP":{"timeoutSeconds":60}},
                "ports":[{"port":8080,"targetPort":8080,"nodePort":30080}]}),
        ),
        svc_status(
            "shop",
            "lb",
            json!({"type":"LoadBalancer","selector":{"app":"web"},"clusterIPs":["10.96.0.12","fd00:96::12"],
                "ipFamilyPolicy":"RequireDualStack","loadBalancerSourceRanges":["198.51.100.0/24"],
                "ports":[{"port":443,"targetPort":8443,"nodePort":30443}]}),
            json!({"loadBalancer":{"ingress":[{"ip":"10.240.1.1"},{"ip":"fd00:240::1:1"}]}}),
        ),
        svc(
            "shop",
            "empty",
            json!({"selector":{"app":"nothing"},"clusterIP":"10.96.0.13","ports":[{"port":53,"protocol":"UDP"}]}),
        ),
        svc(
            "shop",
            "local",
            json!({"selector":{"app":"web"},"clusterIP":"10.96.0.14","internalTrafficPolicy":"Local","ports":[{"port":81,"targetPort":8080}]}),
        ),
        svc(
            "shop",
            "multi",
            json!({"selector":{"app":"db"},"clusterIP":"10.96.0.15","ports":[
                {"name":"dns","port":53,"protocol":"UDP","targetPort":"dns"},
                {"name":"dns-tcp","port":53,"protocol":"TCP","targetPort":5353},
                {"name":"diameter","port":3868,"protocol":"SCTP","targetPort":"diameter"}]}),
        ),
        svc(
            "shop",
            "headless",
            json!({"selector":{"app":"web"},"clusterIP":"None","ports":[{"port":80}]}),
        ),
        svc(
            "shop",
            "alias",
            json!({"type":"ExternalName","externalName":"db.example.com"}),
        ),
    ];
    let pods = vec![
        pod("shop", "web-1", "web", &[("http", 8080, "TCP")]),
        pod("shop", "web-2", "web", &[("http", 8080, "TCP")]),
        pod(
            "shop",
            "db-1",
            "db",
            &[("dns", 5353, "UDP"), ("diameter", 3868, "SCTP")],
        ),
    ];
    let atts = vec![
        att(
            "shop",
            "web-1",
            "a",
            &["10.244.1.5/24", "fd00:244:0:1::5/64"],
        ),
        att(
            "shop",
            "web-2",
            "b",
            &["10.244.2.7/24", "fd00:244:0:2::7/64"],
        ),
        att("shop", "db-1", "b", &["10.244.2.8/24"]),
    ];
    (services, pods, atts)
}

/// The plan of `services` on node `a` of [`cluster`] (pod CIDRs `10.244.0.0/16`,
/// `fd00:244::/56`; service CIDRs `10.96.0.0/16`, `fd00:96::/112`).
pub fn planned(services: &[Service], pods: &[PodView], atts: &[Attachment]) -> crate::Ruleset {
    let t = crate::Topology {
        services: services.iter().collect(),
        pods: pods.iter().collect(),
        attachments: atts.iter().collect(),
        live_nodes: ["a", "b"].into_iter().collect(),
    };
    let pod_cidrs: Vec<ipnet::IpNet> = vec![
        "10.244.0.0/16".parse().expect("cidr"),
        "fd00:244::/56".parse().expect("cidr"),
    ];
    let service_cidrs: Vec<ipnet::IpNet> = vec![
        "10.96.0.0/16".parse().expect("cidr"),
        "fd00:96::/112".parse().expect("cidr"),
    ];
    crate::plan(
        &crate::model::service_ports(&t),
        &crate::plan::NodeFacts {
            node: "a",
            pod_cidrs: &pod_cidrs,
            service_cidrs: &service_cidrs,
        },
    )
}
