//! Cluster DNS end to end (root): agents serving DNS on 169.254.20.10, pods attached by the
//! model's plugin with the cluster DNS in their result, resolving the way programs do
//! (glibc's `getent` reading the resolv.conf a runtime writes from that result: short names
//! through the search domains), and single queries of every kind over UDP and TCP. The
//! internet host runs dnsmasq, the nodes' upstream.

#![allow(clippy::unwrap_used)] // test code: a panic is a failure

mod edge;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use edge::{dns_server, until, Cluster, Model};
use ferro_dns::hickory_proto::op::{Message, Query, ResponseCode};
use ferro_dns::hickory_proto::rr::{Name, RData, RecordType};
use ferro_testutil::dns::{addresses, query, raw, resolve};
use serde_json::json;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

const SERVICES: &str = "apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {selector: {app: web}, ports: [{name: http, port: 80, targetPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: shop}
spec: {clusterIP: None, selector: {app: web}, ports: [{name: pg, port: 5432}]}
---
apiVersion: v1
kind: Service
metadata: {name: alias, namespace: shop}
spec: {type: ExternalName, externalName: api.example.com}
";

/// What every model must show: short and full service names, headless, ExternalName,
/// forwarding, an unknown name, from a pod on `client_node`.
fn basics(c: &mut Cluster, client_node: usize) {
    c.pod(0, "web-1", "web", 8080);
    c.pod(c.agents.len() - 1, "web-2", "web", 8080);
    c.pod(client_node, "client", "client", 0);
    c.apply(SERVICES);
    let ips = c.cluster_ips("web");
    let client = &c.pods["client"];
    assert!(
        client.resolv.contains("nameserver 169.254.20.10")
            && client
                .resolv
                .contains("search shop.svc.cluster.local svc.cluster.local cluster.local"),
        "the result's dns: {}",
        client.resolv
    );
    // the headless service's pods appear once the zone follows the snapshot
    let mut web_pods: Vec<IpAddr> = ["web-1", "web-2"]
        .iter()
        .flat_map(|p| [Some(c.pods[*p].v4), c.pods[*p].v6])
        .flatten()
        .collect();
    web_pods.sort();
    let client = &c.pods["client"];
    until(Duration::from_secs(5), "the services in the zone", || {
        resolve(&client.ns, &client.resolv, "db") == web_pods
    });
    for name in [
        "web",
        "web.shop",
        "web.shop.svc",
        "web.shop.svc.cluster.local",
    ] {
        assert_eq!(resolve(&client.ns, &client.resolv, name), ips, "{name}");
    }
    assert_eq!(
        resolve(&client.ns, &client.resolv, "alias"),
        vec![ip("198.51.100.7")]
    );
    assert_eq!(
        resolve(&client.ns, &client.resolv, "api.example.com"),
        vec![ip("198.51.100.7")]
    );
    assert!(resolve(&client.ns, &client.resolv, "nope.example.com").is_empty());
    assert!(resolve(&client.ns, &client.resolv, "nope").is_empty());
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn cluster_dns_under_kubenet() {
    let mut c = Cluster::new(
        Model::Kubenet,
        2,
        &[
            ("api.example.com", "198.51.100.7"),
            ("moving.example.com", "198.51.100.1"),
        ],
        2,
        json!({}),
    );
    basics(&mut c, 1);
    let client = &c.pods["client"];
    let s = dns_server();
    // AAAA of a dual-stack service; SRV of a named port, over UDP and TCP
    c.apply("apiVersion: v1\nkind: Service\nmetadata: {name: dual, namespace: shop}\nspec: {ipFamilyPolicy: RequireDualStack, selector: {app: web}, ports: [{port: 80}]}\n");
    let dual = c.cluster_ips("dual");
    until(Duration::from_secs(5), "dual in the zone", || {
        query(
            &client.ns,
            s,
            "dual.shop.svc.cluster.local.",
            RecordType::AAAA,
            false,
        )
        .is_some_and(|m| addresses(&m) == dual[1..])
    });
    for tcp in [false, true] {
        let m = query(
            &client.ns,
            s,
            "_http._tcp.web.shop.svc.cluster.local.",
            RecordType::SRV,
            tcp,
        )
        .unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        let RData::SRV(srv) = &m.answers[0].data else {
            panic!("not an SRV: {m:?}")
        };
        assert_eq!(srv.port, 80, "tcp={tcp}");
        assert_eq!(srv.target.to_ascii(), "web.shop.svc.cluster.local.");
        let m = query(&client.ns, s, "api.example.com.", RecordType::A, tcp).unwrap();
        assert_eq!(addresses(&m), vec![ip("198.51.100.7")], "tcp={tcp}");
    }
    // pod names
    let web1 = c.pods["web-1"].v4;
    let dashed = web1.to_string().replace('.', "-");
    let m = query(
        &client.ns,
        s,
        &format!("{dashed}.shop.pod.cluster.local."),
        RecordType::A,
        false,
    )
    .unwrap();
    assert_eq!(addresses(&m), vec![web1]);
    let m = query(
        &client.ns,
        s,
        "10-1-2-3.shop.pod.cluster.local.",
        RecordType::A,
        false,
    )
    .unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);

    // malformed queries: answered with FORMERR or dropped, never a crash
    let mut good = Message::query();
    good.add_query(Query::query(
        Name::from_ascii("web.shop.svc.cluster.local.").unwrap(),
        RecordType::A,
    ));
    let good = good.to_vec().unwrap();
    let junk: Vec<Vec<u8>> = vec![
        vec![],
        vec![0],
        vec![0xff; 12],
        vec![
            0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c,
        ],
        good[..good.len() - 3].to_vec(),
        (0..600).map(|i| (i * 7 % 251) as u8).collect(),
    ];
    for (i, j) in junk.iter().enumerate() {
        for tcp in [false, true] {
            let r = client.ns.run(|| raw(s, j, tcp));
            if let Some(r) = r {
                let m = Message::from_vec(&r).unwrap();
                assert_eq!(m.metadata.response_code, ResponseCode::FormErr, "junk {i}");
            }
        }
    }
    assert!(c.agents[0].pid().is_some() && c.agents[1].pid().is_some());
    let m = query(
        &client.ns,
        s,
        "web.shop.svc.cluster.local.",
        RecordType::A,
        false,
    )
    .unwrap();
    assert_eq!(
        addresses(&m),
        c.cluster_ips("web"),
        "still answering after the junk"
    );

    // forwarded answers are cached for their TTL (2 s), then asked again
    let moving = "moving.example.com";
    assert_eq!(
        resolve(&client.ns, &client.resolv, moving),
        vec![ip("198.51.100.1")]
    );
    let changed = Instant::now();
    c.internet_dns.set(&[
        ("api.example.com", "198.51.100.7"),
        ("moving.example.com", "198.51.100.2"),
    ]);
    let m = query(&client.ns, s, "moving.example.com.", RecordType::A, false).unwrap();
    if changed.elapsed() < Duration::from_millis(1500) {
        assert_eq!(
            addresses(&m),
            vec![ip("198.51.100.1")],
            "served from the cache"
        );
        assert!(m.answers[0].ttl <= 2);
    }
    let t = until(
        Duration::from_secs(6),
        "the new answer after the TTL",
        || resolve(&client.ns, &client.resolv, moving) == vec![ip("198.51.100.2")],
    );
    eprintln!("upstream change seen by the pod after {t:?} (TTL 2 s)");

    // the zone follows the store: a new service resolves, a deleted one stops resolving
    let t0 = Instant::now();
    c.apply("apiVersion: v1\nkind: Service\nmetadata: {name: late, namespace: shop}\nspec: {selector: {app: web}, ports: [{port: 80}]}\n");
    let applied = t0.elapsed();
    let late = c.cluster_ips("late");
    let t = until(Duration::from_secs(5), "the new service resolving", || {
        query(
            &client.ns,
            s,
            "late.shop.svc.cluster.local.",
            RecordType::A,
            false,
        )
        .is_some_and(|m| addresses(&m) == late)
    });
    eprintln!(
        "a new service resolves {:?} after its apply returned",
        t.saturating_sub(Duration::ZERO)
    );
    let _ = applied;
    c.cnictl(&["delete", "svc", "late", "-n", "shop"]);
    let t = until(Duration::from_secs(5), "the deleted service gone", || {
        query(
            &client.ns,
            s,
            "late.shop.svc.cluster.local.",
            RecordType::A,
            false,
        )
        .is_some_and(|m| m.metadata.response_code == ResponseCode::NXDomain)
    });
    eprintln!("a deleted service answers NXDOMAIN {t:?} after its delete returned");
    // a pod leaving the headless service
    c.delete_pod("web-2");
    let client = &c.pods["client"];
    let web1 = c.pods["web-1"].v4;
    let t = until(
        Duration::from_secs(5),
        "web-2 gone from the headless answer",
        || {
            query(
                &client.ns,
                s,
                "db.shop.svc.cluster.local.",
                RecordType::A,
                false,
            )
            .is_some_and(|m| addresses(&m) == vec![web1])
        },
    );
    eprintln!("a deleted pod leaves the headless answer after {t:?}");
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn cluster_dns_under_flat() {
    let mut c = Cluster::new(
        Model::Flat,
        1,
        &[("api.example.com", "198.51.100.7")],
        30,
        json!({}),
    );
    basics(&mut c, 0);
    // the zone's domain follows the ClusterNetwork's dnsDomain (the agent sets none)
    c.apply("apiVersion: ferro-cni.io/v1\nkind: ClusterNetwork\nmetadata: {name: default}\nspec: {podCIDRs: [10.240.0.0/16], serviceCIDRs: [10.96.0.0/16], dnsDomain: corp.example}\n");
    let ips = c.cluster_ips("web");
    let client = &c.pods["client"];
    let t = until(Duration::from_secs(5), "the new domain", || {
        query(
            &client.ns,
            dns_server(),
            "web.shop.svc.corp.example.",
            RecordType::A,
            false,
        )
        .is_some_and(|m| addresses(&m) == ips)
    });
    eprintln!("the zone moved to the ClusterNetwork's new dnsDomain within {t:?}");
    let m = query(
        &client.ns,
        dns_server(),
        "web.shop.svc.cluster.local.",
        RecordType::A,
        false,
    )
    .unwrap();
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::NXDomain,
        "forwarded: not ours any more"
    );
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn cluster_dns_under_overlay() {
    let mut c = Cluster::new(
        Model::Overlay,
        2,
        &[("api.example.com", "198.51.100.7")],
        30,
        json!({}),
    );
    basics(&mut c, 1);
}
