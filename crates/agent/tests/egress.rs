//! Egress control end to end (root): an EgressPolicy denying a pod's traffic out of the
//! cluster except one CIDR and names; the pod resolves through the node's cluster DNS
//! (dnsmasq on the internet host as upstream, TTL 1 s) and connects to servers on the
//! internet host, which holds many addresses. Names allowed work on the first connection
//! every time (each try a name never asked before, so each is a first connection); other
//! names and addresses are dropped; an answer that changes after its TTL moves the allowed
//! address; pods the policy does not select are untouched.

#![allow(clippy::unwrap_used)] // test code: a panic is a failure

mod edge;

use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use edge::{dns_server, until, Cluster, Model};
use ferro_dns::hickory_proto::rr::RecordType;
use ferro_testutil::dns::{addresses, query, resolve};
use ferro_testutil::netns::Netns;
use ferro_testutil::probe::{tcp_who, ProbeServer};
use serde_json::{json, Value};

const POLICY: &str = "apiVersion: ferro-cni.io/v1
kind: EgressPolicy
metadata: {name: client-out}
spec:
  namespaces: [shop]
  podSelector: {matchLabels: {app: client}}
  defaultAction: Deny
  allow:
  - toCIDRs: [203.0.113.10/32]
    ports: [{port: 8080}]
  - toNames: [api.example.com, \"*.cdn.example.com\"]
";

/// Where each agent serves its metrics, in its node's namespace.
const METRICS: &str = "127.0.0.1:9464";

/// Node 0's agent's metrics.
fn scrape(c: &Cluster) -> String {
    use std::io::{Read, Write};
    c.node(0).run(|| {
        let mut s = std::net::TcpStream::connect(METRICS).unwrap();
        s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    })
}

/// The internet host's extra addresses: 203.0.113.<n>.
fn inet(n: u8) -> IpAddr {
    format!("203.0.113.{n}").parse().unwrap()
}

fn reaches(ns: &Netns, ip: IpAddr, port: u16) -> bool {
    tcp_who(
        &ns.path(),
        SocketAddr::new(ip, port),
        Duration::from_millis(700),
    )
    .is_ok()
}

/// Names n1..n<count>.cdn.example.com -> 203.0.113.<100+i>, and the others.
fn records(count: u8) -> Vec<(String, String)> {
    let mut r: Vec<(String, String)> = (1..=count)
        .map(|i| (format!("n{i}.cdn.example.com"), inet(100 + i).to_string()))
        .collect();
    r.push(("api.example.com".into(), inet(20).to_string()));
    r.push(("other.example.com".into(), inet(21).to_string()));
    r.push(("moving.cdn.example.com".into(), inet(30).to_string()));
    r.push(("v6.cdn.example.com".into(), inet6(20).to_string()));
    r.push(("other6.example.com".into(), inet6(21).to_string()));
    r
}

/// The internet host's extra IPv6 addresses: 2001:db8:113::<n>.
fn inet6(n: u8) -> IpAddr {
    format!("2001:db8:113::{n}").parse().unwrap()
}

fn as_refs(r: &[(String, String)]) -> Vec<(&str, &str)> {
    r.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect()
}

/// The cluster with a client (selected) and a bystander (not selected) on node 0, servers on
/// the internet host's addresses, before the policy.
fn setup(model: Model, tries: u8) -> (Cluster, Vec<ProbeServer>) {
    let recs = records(tries);
    let mut c = Cluster::new(
        model,
        1,
        &as_refs(&recs),
        1,
        json!({"egressMinTTL": 1, "metrics": METRICS}),
    );
    let inet_ns = &c.world.internet;
    for n in [20, 21, 22, 30, 31]
        .into_iter()
        .chain((1..=tries).map(|i| 100 + i))
    {
        inet_ns.ip(&["addr", "add", &format!("{}/24", inet(n)), "dev", "eth0"]);
    }
    let mut servers = vec![ProbeServer::start_labelled(
        &inet_ns.path(),
        "0.0.0.0:8080".parse().unwrap(),
        "inet",
    )];
    if model == Model::Kubenet {
        // dual stack: the internet's IPv6 addresses too
        for n in [20, 21, 22] {
            inet_ns.ip(&[
                "addr",
                "add",
                &format!("{}/64", inet6(n)),
                "dev",
                "eth0",
                "nodad",
            ]);
            servers.push(ProbeServer::start_labelled(
                &inet_ns.path(),
                SocketAddr::new(inet6(n), 8080),
                "inet6",
            ));
        }
    }
    c.pod(0, "client", "client", 0);
    c.pod(0, "bystander", "other", 0);
    // before any policy everything is reachable
    for ip in [inet(10), inet(20), inet(22)] {
        assert!(
            reaches(&c.pods["client"].ns, ip, 8080),
            "{ip} before the policy"
        );
    }
    if model == Model::Kubenet {
        assert!(
            reaches(&c.pods["client"].ns, inet6(22), 8080),
            "{} before the policy",
            inet6(22)
        );
    }
    (c, servers)
}

fn apply_policy(c: &Cluster) {
    c.apply(POLICY);
    let client = &c.pods["client"].ns;
    let t = until(
        Duration::from_secs(5),
        "the policy dropping 203.0.113.22",
        || !reaches(client, inet(22), 8080),
    );
    eprintln!("policy in force within {t:?} of its apply (a probe costs up to 0.7 s)");
}

/// One egress case every model must show: an allowed name works at once, another address
/// is dropped, DNS still answers.
fn basic_case(c: &Cluster) {
    let client = &c.pods["client"];
    assert_eq!(
        resolve(&client.ns, &client.resolv, "api.example.com"),
        vec![inet(20)]
    );
    assert_eq!(
        tcp_who(
            &client.ns.path(),
            SocketAddr::new(inet(20), 8080),
            Duration::from_millis(900)
        )
        .map(|(_, l)| l),
        Ok("inet".to_string()),
        "the allowed name's first connection"
    );
    assert_eq!(
        resolve(&client.ns, &client.resolv, "other.example.com"),
        vec![inet(21)]
    );
    assert_eq!(
        tcp_who(
            &client.ns.path(),
            SocketAddr::new(inet(21), 8080),
            Duration::from_millis(700)
        )
        .map(|(_, l)| l),
        Err(ErrorKind::TimedOut),
        "a name the policy does not allow"
    );
    assert!(
        reaches(&client.ns, inet(10), 8080),
        "the allowed CIDR and port"
    );
    assert!(
        !reaches(&client.ns, inet(10), 8081),
        "the allowed CIDR on another port"
    );
    assert!(
        reaches(&c.pods["bystander"].ns, inet(22), 8080),
        "a pod no policy selects"
    );
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn egress_by_address_and_name_under_kubenet() {
    let (c, _server) = setup(Model::Kubenet, 100);
    apply_policy(&c);
    basic_case(&c);
    let client = &c.pods["client"];
    let s = dns_server();

    // 100 names never asked before: each answer's address is new to the node, each
    // connection the first to it
    let mut failures = Vec::new();
    let (mut dns_new, mut connect_first, mut connect_again) = (Vec::new(), Vec::new(), Vec::new());
    for i in 1..=100u8 {
        let name = format!("n{i}.cdn.example.com.");
        let t0 = Instant::now();
        let m = query(&client.ns, s, &name, RecordType::A, false).unwrap();
        dns_new.push(t0.elapsed());
        assert_eq!(addresses(&m), vec![inet(100 + i)], "{name}");
        let dst = SocketAddr::new(inet(100 + i), 8080);
        // under the SYN retransmission time (1 s): a first SYN dropped is a failure
        let t0 = Instant::now();
        match tcp_who(&client.ns.path(), dst, Duration::from_millis(900)) {
            Ok(_) => connect_first.push(t0.elapsed()),
            Err(e) => failures.push(format!("{name}: {e:?}")),
        }
        let t0 = Instant::now();
        if tcp_who(&client.ns.path(), dst, Duration::from_secs(2)).is_ok() {
            connect_again.push(t0.elapsed());
        }
    }
    assert!(
        failures.is_empty(),
        "first connections failed: {failures:?}"
    );
    // the same query again (the cache answers, the address is already allowed)
    let mut dns_cached = Vec::new();
    for _ in 0..20 {
        let t0 = Instant::now();
        query(&client.ns, s, "api.example.com.", RecordType::A, false).unwrap();
        dns_cached.push(t0.elapsed());
    }
    eprintln!(
        "100/100 first connections by name; median DNS answer adding a new address {:?} (an answer already allowed {:?}); median first connection {:?}, second {:?}",
        median(&mut dns_new),
        median(&mut dns_cached),
        median(&mut connect_first),
        median(&mut connect_again)
    );

    // an answer that changes after its TTL moves the allowed address
    let name = "moving.cdn.example.com";
    assert_eq!(resolve(&client.ns, &client.resolv, name), vec![inet(30)]);
    assert!(reaches(&client.ns, inet(30), 8080));
    let mut recs = records(100);
    recs.retain(|(n, _)| n != name);
    recs.push((name.into(), inet(31).to_string()));
    c.internet_dns.set(&as_refs(&recs));
    let t = until(Duration::from_secs(6), "the old address expiring", || {
        !reaches(&client.ns, inet(30), 8080)
    });
    eprintln!(
        "the old address stopped passing {t:?} after the answer changed (TTL 1 s, floor 1 s)"
    );
    assert_eq!(resolve(&client.ns, &client.resolv, name), vec![inet(31)]);
    assert!(reaches(&client.ns, inet(31), 8080), "the new address");

    // IPv6: an allowed name's AAAA answer opens its address at once, others stay dropped
    let m = query(
        &client.ns,
        s,
        "v6.cdn.example.com.",
        RecordType::AAAA,
        false,
    )
    .unwrap();
    assert_eq!(addresses(&m), vec![inet6(20)]);
    assert!(
        reaches(&client.ns, inet6(20), 8080),
        "an allowed name's IPv6 address, first connection"
    );
    let m = query(
        &client.ns,
        s,
        "other6.example.com.",
        RecordType::AAAA,
        false,
    )
    .unwrap();
    assert_eq!(addresses(&m), vec![inet6(21)]);
    assert!(
        !reaches(&client.ns, inet6(21), 8080),
        "a name not allowed, IPv6"
    );
    assert!(
        !reaches(&client.ns, inet6(22), 8080),
        "an address not allowed, IPv6"
    );
    assert!(
        reaches(&c.pods["bystander"].ns, inet6(22), 8080),
        "a pod no policy selects, IPv6"
    );

    // explained as the table decides
    let explain = |to: &str, port: &str| -> Value {
        serde_json::from_str(&c.cnictl(&[
            "policy",
            "explain",
            "shop/client",
            to,
            port,
            "-o",
            "json",
        ]))
        .unwrap()
    };
    let e = explain(&inet(21).to_string(), "8080/TCP");
    assert_eq!(e["allowed"], json!(false), "{e}");
    assert_eq!(e["egress"]["policy"], json!("client-out"), "{e}");
    // an answered name's address is allowed for its TTL (1 s here): ask, then explain at once
    // (again if a loaded machine took longer than the TTL in between)
    let answered = |name: &str, ip: IpAddr| -> Value {
        let mut e = Value::Null;
        for _ in 0..5 {
            query(&client.ns, s, name, RecordType::A, false).unwrap();
            e = explain(&ip.to_string(), "8080/TCP");
            if e["allowed"] == json!(true) {
                break;
            }
        }
        e
    };
    let e = answered("api.example.com.", inet(20));
    assert_eq!(
        (&e["allowed"], &e["egress"]["rule"]),
        (&json!(true), &json!(1)),
        "{e}"
    );
    assert!(
        e["text"]
            .as_str()
            .unwrap()
            .contains("answered for one of its names"),
        "{e}"
    );
    let e = explain(&inet(10).to_string(), "8081/TCP");
    assert_eq!(e["allowed"], json!(false), "{e}");
    let e = explain(&inet6(21).to_string(), "8080/TCP");
    assert_eq!(e["allowed"], json!(false), "{e}");
    let text = c.cnictl(&[
        "policy",
        "explain",
        "shop/client",
        &inet(22).to_string(),
        "8080/TCP",
    ]);
    assert!(text.starts_with("denied"), "{text}");
    assert!(text.contains("denied by EgressPolicy client-out"), "{text}");
    let e = explain("shop/bystander", "80/TCP");
    assert!(
        e["egress"]["text"]
            .as_str()
            .unwrap()
            .contains("inside the cluster"),
        "{e}"
    );

    // denied attempts are counted per pod, through the API and the metrics
    let stats: Value =
        serde_json::from_str(&c.cnictl(&["get", "policystats", "-n", "shop", "-o", "json"]))
            .unwrap();
    let drops = stats["egress"]
        .as_array()
        .unwrap_or_else(|| panic!("no egress drops: {stats}"))
        .iter()
        .find(|d| d["pod"] == json!("client"))
        .unwrap_or_else(|| panic!("no drops of the client: {stats}"))
        .clone();
    assert_eq!(drops["policy"], json!("client-out"));
    assert!(drops["packets"].as_u64().unwrap() > 0, "{drops}");
    let text = c.cnictl(&["get", "policystats", "-n", "shop"]);
    assert!(text.contains("dropped by an EgressPolicy"), "{text}");
    let metrics = scrape(&c);
    let line = metrics
        .lines()
        .find(|l| {
            l.starts_with("ferro_agent_egress_drops_total")
                && l.contains("pod=\"client\"")
                && l.contains("policy=\"client-out\"")
        })
        .unwrap_or_else(|| panic!("no egress drop metric:\n{metrics}"));
    let counted: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(counted > 0.0, "{line}");

    // deleting the policy restores everything
    c.cnictl(&["delete", "egresspolicy", "client-out"]);
    until(Duration::from_secs(5), "the policy gone", || {
        reaches(&client.ns, inet(22), 8080)
    });
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn egress_under_flat() {
    let (c, _server) = setup(Model::Flat, 1);
    apply_policy(&c);
    basic_case(&c);
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn egress_under_overlay() {
    let (c, _server) = setup(Model::Overlay, 1);
    apply_policy(&c);
    basic_case(&c);
}
