use std::collections::BTreeSet;

use serde_json::json;

use super::*;
use crate::fixtures::{att, pod, svc, svc_status};

fn topo<'a>(
    services: &'a [Service],
    pods: &'a [PodView],
    atts: &'a [Attachment],
    live: &[&'a str],
) -> Topology<'a> {
    Topology {
        services: services.iter().collect(),
        pods: pods.iter().collect(),
        attachments: atts.iter().collect(),
        live_nodes: live.iter().copied().collect::<BTreeSet<_>>(),
    }
}

#[test]
fn endpoints_are_selected_attached_pods_on_live_nodes_with_resolved_target_ports() {
    let services = [svc(
        "shop",
        "web",
        json!({"selector":{"app":"web"},"clusterIP":"10.96.0.10","ports":[
            {"name":"http","port":80,"targetPort":"http"},
            {"name":"dns","port":53,"protocol":"UDP","targetPort":5353}]}),
    )];
    let pods = [
        pod("shop", "web-1", "web", &[("http", 8080, "TCP")]),
        pod("shop", "web-2", "web", &[("http", 9090, "TCP")]),
        pod("shop", "web-3", "web", &[]), // no port named http
        pod("shop", "web-4", "web", &[("http", 8080, "TCP")]), // not attached
        pod("shop", "web-5", "web", &[("http", 8080, "TCP")]), // on a dead node
        pod("shop", "db-1", "db", &[("http", 8080, "TCP")]), // not selected
        pod("other", "web-1", "web", &[("http", 8080, "TCP")]), // other namespace
    ];
    let atts = [
        att("shop", "web-1", "a", &["10.244.1.5/24"]),
        att("shop", "web-2", "b", &["10.244.2.7/24", "fd00:244::7/64"]),
        att("shop", "web-3", "a", &["10.244.1.6/24"]),
        att("shop", "web-5", "dead", &["10.244.3.2/24"]),
        att("shop", "db-1", "a", &["10.244.1.9/24"]),
        att("other", "web-1", "a", &["10.244.1.10/24"]),
    ];
    let t = topo(&services, &pods, &atts, &["a", "b"]);
    let sp = service_ports(&t);
    assert_eq!(sp.len(), 2);
    let dns = &sp[1];
    assert_eq!(dns.id(), "shop/web/udp/dns");
    let eps: Vec<(String, u16)> = dns
        .endpoints
        .iter()
        .map(|e| (e.ip.to_string(), e.port))
        .collect();
    assert_eq!(
        eps,
        [
            ("10.244.1.5".to_string(), 5353),
            ("10.244.1.6".to_string(), 5353),
            ("10.244.2.7".to_string(), 5353)
        ]
    );
    let http = &sp[0];
    assert_eq!(http.id(), "shop/web/tcp/http");
    assert_eq!(http.cluster_ip, Some("10.96.0.10".parse().unwrap()));
    let eps: Vec<(String, u16, &str)> = http
        .endpoints
        .iter()
        .map(|e| (e.ip.to_string(), e.port, e.node.as_str()))
        .collect();
    assert_eq!(
        eps,
        [
            ("10.244.1.5".to_string(), 8080, "a"),
            ("10.244.2.7".to_string(), 9090, "b")
        ]
    );
    assert_eq!(http.local_endpoints("b").count(), 1);
    assert!(!http.has_external());
}

#[test]
fn families_policies_and_external_addresses() {
    let services = [
        svc_status(
            "x",
            "lb",
            json!({"type":"LoadBalancer","selector":{"app":"a"},
                "clusterIPs":["10.96.0.5","fd00:96::5"],"ipFamilyPolicy":"PreferDualStack",
                "ports":[{"port":443,"nodePort":30443}],"externalIPs":["192.0.2.1"],
                "externalTrafficPolicy":"Local","internalTrafficPolicy":"Local",
                "sessionAffinity":"ClientIP",
                "loadBalancerSourceRanges":["198.51.100.0/24","2001:db8::/32"]}),
            json!({"loadBalancer":{"ingress":[{"ip":"10.240.1.1"},{"ip":"fd00:240::1:1"}]}}),
        ),
        svc_status(
            "x",
            "theirs",
            json!({"type":"LoadBalancer","loadBalancerClass":"example.com/lb","clusterIP":"10.96.0.6","ports":[{"port":80}]}),
            json!({"loadBalancer":{"ingress":[{"ip":"10.240.1.2"}]}}),
        ),
        svc(
            "x",
            "headless",
            json!({"clusterIP":"None","ports":[{"port":80}]}),
        ),
        svc(
            "x",
            "name",
            json!({"type":"ExternalName","externalName":"example.com"}),
        ),
    ];
    let pods = [pod("x", "a-1", "a", &[])];
    let atts = [att("x", "a-1", "n", &["10.244.0.2/24", "fd00:244::2/64"])];
    let t = topo(&services, &pods, &atts, &["n"]);
    let sp = service_ports(&t);
    assert_eq!(sp.len(), 3, "{sp:#?}");
    let (v4, v6) = (&sp[0], &sp[1]);
    assert_eq!((v4.v6, v6.v6), (false, true));
    assert_eq!(v4.lb_ips, ["10.240.1.1".parse::<IpAddr>().unwrap()]);
    assert_eq!(v6.lb_ips, ["fd00:240::1:1".parse::<IpAddr>().unwrap()]);
    assert_eq!(v4.external_ips.len(), 1);
    assert!(v6.external_ips.is_empty());
    assert_eq!(
        v4.source_ranges,
        ["198.51.100.0/24".parse::<IpNet>().unwrap()]
    );
    assert_eq!(v6.endpoints[0].ip.to_string(), "fd00:244::2");
    assert!(v4.external_local && v4.internal_local);
    assert_eq!(v4.affinity_seconds, Some(DEFAULT_AFFINITY_SECONDS));
    assert_eq!(v4.node_port, Some(30443));
    let theirs = &sp[2];
    assert_eq!(theirs.service, "theirs");
    assert!(theirs.lb_ips.is_empty(), "another class: not ours");
    assert!(theirs.node_port.is_none());
}

#[test]
fn a_selector_of_several_labels_selects_pods_carrying_all_of_them() {
    let mut pods = [
        pod("shop", "web-1", "web", &[]),
        pod("shop", "web-2", "web", &[]),
        pod("shop", "db-1", "db", &[]),
        pod("other", "web-1", "web", &[]),
    ];
    // web-2 is also in tier "front", db-1 too
    for i in [1, 2] {
        std::sync::Arc::make_mut(&mut pods[i].labels).insert("tier".into(), "front".into());
    }
    let sel =
        |m: serde_json::Value| svc("shop", "s", json!({"selector": m, "ports": [{"port": 80}]}));
    let index = pods_by_namespace(&pods.iter().collect::<Vec<_>>());
    let names = |s: &Service| -> Vec<String> {
        selected_pods(s, &index)
            .iter()
            .map(|p| p.name.clone())
            .collect()
    };
    assert_eq!(names(&sel(json!({"app": "web"}))), ["web-1", "web-2"]);
    assert_eq!(
        names(&sel(json!({"app": "web", "tier": "front"}))),
        ["web-2"]
    );
    assert_eq!(names(&sel(json!({"tier": "front"}))), ["web-2", "db-1"]);
    assert!(names(&sel(json!({"app": "web", "tier": "back"}))).is_empty());
    assert!(
        names(&sel(json!({}))).is_empty(),
        "no selector, no endpoints"
    );
    let other = svc(
        "nowhere",
        "s",
        json!({"selector": {"app": "web"}, "ports": [{"port": 80}]}),
    );
    assert!(names(&other).is_empty());
}
