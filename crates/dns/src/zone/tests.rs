use super::*;
use ferro_services::fixtures::{att, pod, svc};
use serde_json::json;

fn zone() -> Zone {
    let services = [
        svc(
            "shop",
            "web",
            json!({"selector":{"app":"web"},"clusterIP":"10.96.0.10","clusterIPs":["10.96.0.10","fd00:96::10"],
                "ports":[{"name":"http","port":80},{"port":81}]}),
        ),
        svc(
            "shop",
            "db",
            json!({"selector":{"app":"db"},"clusterIP":"None","ports":[{"name":"pg","port":5432}]}),
        ),
        svc(
            "shop",
            "alias",
            json!({"type":"ExternalName","externalName":"db.example.com"}),
        ),
    ];
    let pods = [
        pod("shop", "db-1", "db", &[]),
        pod("shop", "db-2", "db", &[]),
        pod("shop", "db-3", "db", &[]),
    ];
    let atts = [
        att("shop", "db-1", "a", &["10.244.1.5/24", "fd00:10:244::5/64"]),
        att("shop", "db-2", "b", &["10.244.2.7/24"]),
        // on a dead node: not ready
        att("shop", "db-3", "gone", &["10.244.3.9/24"]),
    ];
    let t = Topology {
        services: services.iter().collect(),
        pods: pods.iter().collect(),
        attachments: atts.iter().collect(),
        live_nodes: ["a", "b"].into_iter().collect(),
    };
    Zone::build(&t, &["shop", "default"], "Cluster.Local.", 5)
}

fn ask(z: &Zone, name: &str, t: RecordType) -> Option<Answer> {
    z.answer(&Name::from_ascii(name).unwrap(), t)
}

fn data(a: &Answer) -> Vec<String> {
    a.answers.iter().map(|r| r.data.to_string()).collect()
}

#[test]
fn cluster_ip_a_and_aaaa() {
    let z = zone();
    let a = ask(&z, "web.shop.svc.cluster.local.", RecordType::A).unwrap();
    assert_eq!(a.rcode, ResponseCode::NoError);
    assert_eq!(data(&a), ["10.96.0.10"]);
    assert_eq!(a.answers[0].ttl, 5);
    let a = ask(&z, "WEB.shop.svc.cluster.local.", RecordType::AAAA).unwrap();
    assert_eq!(data(&a), ["fd00:96::10"]);
    assert_eq!(a.answers[0].name.to_ascii(), "WEB.shop.svc.cluster.local.");
}

#[test]
fn headless_answers_ready_pods() {
    let z = zone();
    let a = ask(&z, "db.shop.svc.cluster.local.", RecordType::A).unwrap();
    assert_eq!(data(&a), ["10.244.1.5", "10.244.2.7"]);
    let a = ask(&z, "db.shop.svc.cluster.local.", RecordType::AAAA).unwrap();
    assert_eq!(data(&a), ["fd00:10:244::5"]);
    let a = ask(&z, "10-244-2-7.db.shop.svc.cluster.local.", RecordType::A).unwrap();
    assert_eq!(data(&a), ["10.244.2.7"]);
    let a = ask(&z, "10-244-3-9.db.shop.svc.cluster.local.", RecordType::A).unwrap();
    assert_eq!(a.rcode, ResponseCode::NXDomain);
}

#[test]
fn srv_for_named_ports() {
    let z = zone();
    let a = ask(
        &z,
        "_http._tcp.web.shop.svc.cluster.local.",
        RecordType::SRV,
    )
    .unwrap();
    assert_eq!(data(&a), ["0 100 80 web.shop.svc.cluster.local."]);
    assert_eq!(a.additionals.len(), 2);
    let a = ask(&z, "_pg._tcp.db.shop.svc.cluster.local.", RecordType::SRV).unwrap();
    assert_eq!(
        data(&a),
        [
            "0 100 5432 10-244-1-5.db.shop.svc.cluster.local.",
            "0 100 5432 10-244-2-7.db.shop.svc.cluster.local."
        ]
    );
    // a port without a name has no SRV; a named one over another protocol neither
    for n in [
        "_81._tcp.web.shop.svc.cluster.local.",
        "_http._udp.web.shop.svc.cluster.local.",
    ] {
        assert_eq!(
            ask(&z, n, RecordType::SRV).unwrap().rcode,
            ResponseCode::NXDomain,
            "{n}"
        );
    }
}

#[test]
fn pod_names_verified() {
    let z = zone();
    let a = ask(&z, "10-244-1-5.shop.pod.cluster.local.", RecordType::A).unwrap();
    assert_eq!(data(&a), ["10.244.1.5"]);
    let a = ask(
        &z,
        "fd00-10-244--5.shop.pod.cluster.local.",
        RecordType::AAAA,
    )
    .unwrap();
    assert_eq!(data(&a), ["fd00:10:244::5"]);
    for n in [
        "10-244-1-5.default.pod.cluster.local.",
        "10-244-1-6.shop.pod.cluster.local.",
        "not-an-ip.shop.pod.cluster.local.",
    ] {
        assert_eq!(
            ask(&z, n, RecordType::A).unwrap().rcode,
            ResponseCode::NXDomain,
            "{n}"
        );
    }
}

#[test]
fn external_name_is_a_cname_to_chase() {
    let z = zone();
    let a = ask(&z, "alias.shop.svc.cluster.local.", RecordType::A).unwrap();
    assert_eq!(data(&a), ["db.example.com."]);
    assert_eq!(a.chase.unwrap().to_ascii(), "db.example.com.");
    let a = ask(&z, "alias.shop.svc.cluster.local.", RecordType::CNAME).unwrap();
    assert!(a.chase.is_none());
}

#[test]
fn missing_names_and_empty_answers() {
    let z = zone();
    for (n, t, rcode) in [
        (
            "nope.shop.svc.cluster.local.",
            RecordType::A,
            ResponseCode::NXDomain,
        ),
        (
            "web.other.svc.cluster.local.",
            RecordType::A,
            ResponseCode::NXDomain,
        ),
        (
            "a.b.c.d.e.f.cluster.local.",
            RecordType::A,
            ResponseCode::NXDomain,
        ),
        (
            "web.shop.svc.cluster.local.",
            RecordType::MX,
            ResponseCode::NoError,
        ),
        (
            "shop.svc.cluster.local.",
            RecordType::A,
            ResponseCode::NoError,
        ),
        ("svc.cluster.local.", RecordType::A, ResponseCode::NoError),
        ("cluster.local.", RecordType::A, ResponseCode::NoError),
    ] {
        let a = ask(&z, n, t).unwrap();
        assert_eq!(a.rcode, rcode, "{n}");
        assert!(a.answers.is_empty(), "{n}");
        assert_eq!(a.authorities[0].record_type(), RecordType::SOA, "{n}");
    }
    let a = ask(&z, "cluster.local.", RecordType::SOA).unwrap();
    assert_eq!(a.answers[0].record_type(), RecordType::SOA);
}

#[test]
fn names_outside_the_domain_are_forwarded() {
    let z = zone();
    for n in [
        "example.com.",
        "cluster.local.example.com.",
        "xcluster.local.",
    ] {
        assert!(ask(&z, n, RecordType::A).is_none(), "{n}");
    }
}

#[test]
fn dashes() {
    for ip in ["10.244.1.5", "fd00:10:244::5", "::1"] {
        let ip: IpAddr = ip.parse().unwrap();
        assert_eq!(undashed(&dashed(ip)), Some(ip));
    }
    assert_eq!(undashed("web"), None);
}
