use std::collections::BTreeSet;

use ferro_cluster::resource::{ClusterNetworkSpec, LoadBalancerPool};
use serde_json::json;

use super::*;
use crate::fixtures::{svc, svc_status};

fn settings(services: &[&str]) -> Settings {
    ClusterNetworkSpec {
        pod_cidrs: Some(vec!["10.244.0.0/16".into(), "fd00:244::/56".into()]),
        service_cidrs: Some(services.iter().map(|s| s.to_string()).collect()),
        load_balancer_pools: Some(vec![
            LoadBalancerPool {
                name: "vnet".into(),
                cidrs: vec!["10.240.1.0/28".into(), "fd00:240::1:0/124".into()],
            },
            LoadBalancerPool {
                name: "other".into(),
                cidrs: vec!["10.250.0.0/24".into()],
            },
        ]),
        ..Default::default()
    }
    .settings()
    .unwrap()
}

#[test]
fn cluster_ips_by_family_policy() {
    let s = settings(&["10.96.0.0/16", "fd00:96::/112"]);
    let n = needs(&svc("a", "b", json!({"ports":[{"port":80}]})), None, &s).unwrap();
    assert_eq!(n.cluster_ips, [Slot::Pick("10.96.0.0/16".parse().unwrap())]);
    assert_eq!(n.node_ports, [None]);
    let n = needs(
        &svc(
            "a",
            "b",
            json!({"ipFamilyPolicy":"RequireDualStack","ipFamilies":["IPv6","IPv4"],"ports":[{"port":80}]}),
        ),
        None,
        &s,
    )
    .unwrap();
    assert_eq!(
        n.cluster_ips,
        [
            Slot::Pick("fd00:96::/112".parse().unwrap()),
            Slot::Pick("10.96.0.0/16".parse().unwrap())
        ]
    );
    let given = svc(
        "a",
        "b",
        json!({"clusterIP":"10.96.0.10","ports":[{"port":80}]}),
    );
    let n = needs(&given, None, &s).unwrap();
    assert_eq!(n.cluster_ips, [Slot::Fixed("10.96.0.10".parse().unwrap())]);
    // An update without the address keeps the stored one; another address is refused.
    let n = needs(
        &svc("a", "b", json!({"ports":[{"port":80}]})),
        Some(&given),
        &s,
    )
    .unwrap();
    assert_eq!(n.cluster_ips, [Slot::Fixed("10.96.0.10".parse().unwrap())]);
    let e = needs(
        &svc(
            "a",
            "b",
            json!({"clusterIP":"10.96.0.11","ports":[{"port":80}]}),
        ),
        Some(&given),
        &s,
    )
    .unwrap_err();
    assert_eq!(
        e,
        ["spec.clusterIP: 10.96.0.11 may not change (the service has 10.96.0.10)"]
    );
    let one = settings(&["10.96.0.0/16"]);
    let e = needs(
        &svc(
            "a",
            "b",
            json!({"ipFamilyPolicy":"RequireDualStack","ports":[{"port":80}]}),
        ),
        None,
        &one,
    )
    .unwrap_err();
    assert!(
        e[0].starts_with("spec.ipFamilyPolicy: RequireDualStack"),
        "{e:?}"
    );
    let e = needs(
        &svc(
            "a",
            "b",
            json!({"ipFamilies":["IPv6"],"ports":[{"port":80}]}),
        ),
        None,
        &one,
    )
    .unwrap_err();
    assert_eq!(e, ["spec.ipFamilies: the cluster has no IPv6 service CIDR"]);
    let n = needs(
        &svc("a", "b", json!({"clusterIP":"None","ports":[{"port":80}]})),
        None,
        &s,
    )
    .unwrap();
    assert!(n.cluster_ips.is_empty(), "headless");
}

#[test]
fn node_ports_and_load_balancer_addresses() {
    let s = settings(&["10.96.0.0/16"]);
    let np = svc(
        "a",
        "b",
        json!({"type":"NodePort","ports":[{"name":"x","port":80,"nodePort":30080},{"name":"y","port":81}]}),
    );
    let n = needs(&np, None, &s).unwrap();
    assert_eq!(
        n.node_ports,
        [Some(Slot::Fixed(30080)), Some(Slot::Pick(30000..=32767))]
    );
    // The stored service's NodePorts are kept when the manifest leaves them out.
    let stored = svc(
        "a",
        "b",
        json!({"type":"NodePort","ports":[{"name":"x","port":80,"nodePort":30080},{"name":"y","port":81,"nodePort":31000}]}),
    );
    let again = svc(
        "a",
        "b",
        json!({"type":"NodePort","ports":[{"name":"x","port":80},{"name":"y","port":81}]}),
    );
    let n = needs(&again, Some(&stored), &s).unwrap();
    assert_eq!(
        n.node_ports,
        [Some(Slot::Fixed(30080)), Some(Slot::Fixed(31000))]
    );
    let lb = svc(
        "a",
        "b",
        json!({"type":"LoadBalancer","ports":[{"port":80}]}),
    );
    let n = needs(&lb, None, &s).unwrap();
    assert_eq!(
        n.lb_ips,
        [Slot::Pick(vec![
            "10.240.1.0/28".parse().unwrap(),
            "10.250.0.0/24".parse().unwrap()
        ])]
    );
    let mut pooled = lb.clone();
    pooled.metadata.annotations = Some([(POOL_ANNOTATION.to_string(), "other".to_string())].into());
    let n = needs(&pooled, None, &s).unwrap();
    assert_eq!(
        n.lb_ips,
        [Slot::Pick(vec!["10.250.0.0/24".parse().unwrap()])]
    );
    pooled.metadata.annotations = Some([(POOL_ANNOTATION.to_string(), "nope".to_string())].into());
    assert!(needs(&pooled, None, &s).unwrap_err()[0].contains("no load-balancer pool \"nope\""));
    let had = svc_status(
        "a",
        "b",
        json!({"type":"LoadBalancer","ports":[{"port":80}]}),
        json!({"loadBalancer":{"ingress":[{"ip":"10.240.1.3"}]}}),
    );
    let n = needs(&lb, Some(&had), &s).unwrap();
    assert_eq!(n.lb_ips, [Slot::Fixed("10.240.1.3".parse().unwrap())]);
    let theirs = svc(
        "a",
        "b",
        json!({"type":"LoadBalancer","loadBalancerClass":"x.io/lb","ports":[{"port":80}]}),
    );
    assert!(needs(&theirs, None, &s).unwrap().lb_ips.is_empty());
}

#[test]
fn picks_skip_taken_network_and_broadcast() {
    let net: IpNet = "10.96.0.0/30".parse().unwrap();
    let mut taken = BTreeSet::new();
    let a = pick_address(&[net], &taken, 0).unwrap();
    assert_eq!(a.to_string(), "10.96.0.1");
    taken.insert(a);
    assert_eq!(
        pick_address(&[net], &taken, 0).unwrap().to_string(),
        "10.96.0.2"
    );
    taken.insert("10.96.0.2".parse().unwrap());
    assert_eq!(pick_address(&[net], &taken, 7), None, "full");
    let two: Vec<IpNet> = vec![net, "10.97.0.0/30".parse().unwrap()];
    assert_eq!(
        pick_address(&two, &taken, 0).unwrap().to_string(),
        "10.97.0.1"
    );
    let v6: IpNet = "fd00:96::/64".parse().unwrap();
    let a = pick_address(&[v6], &BTreeSet::new(), 41).unwrap();
    assert!(v6.contains(&a) && a.to_string() != "fd00:96::");
    let mut ports = BTreeSet::new();
    for _ in 0..3 {
        let p = pick_port(&(30000..=30002), &ports, 5).unwrap();
        assert!(ports.insert(p));
    }
    assert_eq!(pick_port(&(30000..=30002), &ports, 5), None);
}

#[test]
fn keys_and_filling_in() {
    let ip: IpAddr = "fd00:96::a".parse().unwrap();
    assert_eq!(cluster_ip_key(ip), "/ferro-cni/v1/serviceips/fd00-96--a");
    assert_eq!(address_of_key(&cluster_ip_key(ip)), Some(ip));
    assert_eq!(
        address_of_key(&lb_ip_key("10.240.1.1".parse().unwrap()))
            .unwrap()
            .to_string(),
        "10.240.1.1"
    );
    assert_eq!(port_of_key(&node_port_key(30080)), Some(30080));
    let mut s = svc(
        "a",
        "b",
        json!({"type":"LoadBalancer","ports":[{"port":80}]}),
    );
    fill(
        &mut s,
        &["10.96.0.7".parse().unwrap()],
        &[Some(31234)],
        &["10.240.1.4".parse().unwrap()],
    );
    let v = serde_json::to_value(&s).unwrap();
    assert_eq!(v["spec"]["clusterIPs"], json!(["10.96.0.7"]));
    assert_eq!(v["spec"]["ipFamilies"], json!(["IPv4"]));
    assert_eq!(v["spec"]["ports"][0]["nodePort"], json!(31234));
    assert_eq!(
        v["status"]["loadBalancer"]["ingress"][0]["ip"],
        json!("10.240.1.4")
    );
    let held: Vec<String> = held_keys(&s).into_iter().collect();
    assert_eq!(
        held,
        [
            "/ferro-cni/v1/loadbalancerips/10.240.1.4",
            "/ferro-cni/v1/nodeports/31234",
            "/ferro-cni/v1/serviceips/10.96.0.7"
        ]
    );
}
