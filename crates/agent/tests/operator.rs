//! ferro-agent as an operator runs it (root: network namespaces). The built binary runs in
//! simulated nodes' namespaces, against the embedded store and against a real 3-member etcd
//! cluster with TLS client certificates; `cnictl` talks to it through its socket.
//!
//! Proven here: apply/get/describe/delete; every kind of bad input refused with a clear
//! message and nothing written (compared with `get -o json` before and after); the socket
//! is 0600 in a 0700 directory; an unreachable store at start stops the agent with an
//! error, having written nothing; SIGTERM removes the socket and releases the node lease at
//! once; after kill -9 the lease expires with its TTL, and the restarted agent takes its own
//! lease back at once; agents on several nodes share the store.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use ferro_cluster::keys;
use ferro_store::{Etcd, EtcdConfig, Store};
use ferro_testutil::agent::Agent;
use ferro_testutil::etcd::EtcdCluster;
use ferro_testutil::netns::Netns;
use ferro_testutil::pki::{Issued, TestCa};
use ferro_testutil::topology::World;
use serde_json::{json, Value};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ferro-agent"))
}

const APP: &str = "apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Pod
metadata: {name: web-1, namespace: shop, labels: {app: web}}
spec: {containers: [{name: web, image: nginx, ports: [{name: http, containerPort: 80}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {selector: {app: web}, ports: [{port: 80, targetPort: http}]}
";

/// Everything the cluster holds, as `cnictl get -A -o json` sees it, kind by kind.
fn snapshot(a: &Agent) -> Vec<Value> {
    ["ns", "pods", "svc", "netpol", "clusternetworks"]
        .iter()
        .map(|k| {
            let out = a.cnictl(&["get", k, "-A", "-o", "json"], None);
            assert_eq!(out.code, 0, "{}", out.stderr);
            serde_json::from_str(&out.stdout).unwrap()
        })
        .collect()
}

/// Applies `text` from stdin; asserts it is refused with every `want` in the message and
/// that nothing changed.
fn refused(a: &Agent, text: &str, want: &[&str]) {
    let before = snapshot(a);
    let out = a.cnictl(&["apply", "-f", "-"], Some(text));
    assert_eq!(out.code, 1, "accepted?\n{}{}", out.stdout, out.stderr);
    for w in want {
        assert!(out.stderr.contains(w), "missing {w:?} in\n{}", out.stderr);
    }
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    assert_eq!(snapshot(a), before, "nothing written");
}

/// The agent's own check (cnictl checks first, so send the document raw over the socket).
fn refused_by_agent(a: &Agent, doc: Value, want: &str) {
    use ferro_agent_api::{call, ApplyDocument, ClientError, Request};
    let before = snapshot(a);
    let e = call(
        &a.socket(),
        &Request::Apply {
            documents: vec![ApplyDocument {
                source: "raw.json".into(),
                document: 1,
                item: None,
                object: doc,
            }],
        },
        Duration::from_secs(30),
    )
    .unwrap_err();
    match e {
        ClientError::Api(e) => assert!(e.message.contains(want), "{}", e.message),
        e => panic!("{e}"),
    }
    assert_eq!(snapshot(a), before, "nothing written");
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn embedded_store_on_one_node() {
    ferro_testutil::require_root();
    let node = Netns::new("node");
    let mut a = Agent::start(
        bin(),
        Some(&node),
        json!({"nodeName": "node-a", "nodeAddresses": ["10.240.0.4"], "leaseTTL": 30}),
    );

    // the socket: 0600, in a directory the agent made 0700
    let sock = a.socket();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&sock), 0o600);
    assert_eq!(mode(sock.parent().unwrap()), 0o700);

    let out = a.cnictl(&["apply", "-f", "-"], Some(APP));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "namespace/shop created\npod/web-1 created (namespace shop)\nservice/web created (namespace shop)\n"
    );
    let again = a.cnictl(&["apply", "-f", "-"], Some(APP));
    assert!(
        again.stdout.contains("pod/web-1 unchanged"),
        "{}",
        again.stdout
    );
    let pods = a.cnictl(&["get", "po", "-n", "shop"], None);
    assert!(
        pods.stdout
            .starts_with("NAME    CONTAINERS   NODE     AGE\nweb-1   1            <none>   "),
        "{}",
        pods.stdout
    );
    let nodes = a.cnictl(&["get", "nodes"], None);
    assert!(
        nodes.stdout.contains("node-a   Ready    10.240.0.4"),
        "{}",
        nodes.stdout
    );
    let d = a.cnictl(&["describe", "svc", "web", "-n", "shop"], None);
    assert!(d.stdout.contains("Pods:         web-1\n"), "{}", d.stdout);
    let y = a.cnictl(&["get", "svc", "web", "-n", "shop", "-o", "yaml"], None);
    assert!(
        y.stdout.contains("kind: Service\n") && y.stdout.contains("resourceVersion:"),
        "{}",
        y.stdout
    );

    // bad input: refused whole, clearly, nothing written
    refused(
        &a,
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: x\n",
        &["<stdin>: invalid YAML: line"],
    );
    refused(
        &a,
        &format!("{APP}---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: p, namespace: shop}}\nspec: {{podSelectr: {{}}}}\n"),
        &["<stdin>: document 4 (NetworkPolicy shop/p): unknown field spec.podSelectr", "nothing was applied"],
    );
    refused(
        &a,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n",
        &["unknown kind \"Deployment\""],
    );
    refused(
        &a,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: nope}\nspec: {containers: [{name: c}]}\n",
        &["<stdin>: document 1 (Pod nope/p): namespace \"nope\" does not exist"],
    );
    for k in ["Node", "IPAMBlock", "Attachment"] {
        refused(
            &a,
            &format!("apiVersion: ferro-cni.io/v1\nkind: {k}\nmetadata: {{name: x}}\n"),
            &[&format!("{k} is written by the cluster itself")],
        );
    }
    // the agent checks again what a client sends, whatever the client
    refused_by_agent(
        &a,
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "shop"}, "spec": {"containers": [{"name": "c", "ports": [{"containerPort": 99999}]}]}}),
        "raw.json: document 1 (Pod shop/p): spec.containers[0].ports[0].containerPort: 99999 is not a port",
    );
    refused_by_agent(
        &a,
        json!({"apiVersion": "ferro-cni.io/v1", "kind": "Node", "metadata": {"name": "n"}}),
        "Node is written by the cluster itself",
    );

    // delete by kind and name, and by file
    let del = a.cnictl(&["delete", "svc", "web", "-n", "shop"], None);
    assert_eq!(
        (del.code, del.stdout.as_str()),
        (0, "service/web deleted (namespace shop)\n"),
        "{}",
        del.stderr
    );
    let del = a.cnictl(&["delete", "-f", "-"], Some(APP));
    assert_eq!(del.code, 1, "the service was already gone");
    assert!(
        del.stdout.contains("namespace/shop deleted"),
        "{}",
        del.stdout
    );
    assert!(
        del.stderr
            .contains("service \"web\" not found in namespace \"shop\""),
        "{}",
        del.stderr
    );
    let gone = a.cnictl(&["get", "pods", "-A"], None);
    assert_eq!((gone.code, gone.stdout.as_str()), (0, ""));

    // SIGTERM: clean exit, socket removed, node lease released (the store file shows it)
    let st = a.term();
    assert!(st.success(), "{st}\n{}", a.log());
    assert!(!sock.exists(), "socket removed");
    assert!(a.log().contains("SIGTERM: stopping"), "{}", a.log());
    let db = a.state_dir().join("store.redb");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let s = ferro_store::Embedded::open(&db).await.unwrap();
        assert!(
            s.get(&keys::node_lease("node-a")).await.unwrap().is_none(),
            "lease record gone"
        );
        assert!(
            s.get(&keys::object(ferro_cluster::Kind::Node, None, "node-a"))
                .await
                .unwrap()
                .is_some(),
            "the Node stays"
        );
    });
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn an_unreachable_store_stops_the_agent_before_it_writes_anything() {
    ferro_testutil::require_root();
    let node = Netns::new("node");
    let mut a = Agent::spawn(
        bin(),
        Some(&node),
        json!({"nodeName": "node-a", "store": {"etcd": {"endpoints": ["http://127.0.0.1:1", "http://10.240.0.99:2379"], "dialTimeoutSeconds": 2}}}),
    );
    let t0 = Instant::now();
    let st = a
        .wait_exit(Duration::from_secs(60))
        .expect("the agent exits");
    eprintln!("unreachable store reported after {:.1?}", t0.elapsed());
    assert_eq!(st.code(), Some(1), "{}", a.log());
    let log = a.log();
    assert!(
        log.contains(
            "ERROR store: store unavailable: etcd http://127.0.0.1:1, http://10.240.0.99:2379"
        ),
        "{log}"
    );
    assert!(
        !a.socket().exists() && !a.socket().parent().unwrap().exists(),
        "no socket"
    );
    assert!(!a.state_dir().exists(), "no state directory");
    let bad = Agent::spawn(bin(), None, json!({"nodeName": "node-a", "leaseTtl": 3}));
    let mut bad = bad;
    let st = bad.wait_exit(Duration::from_secs(30)).unwrap();
    assert_eq!(st.code(), Some(2));
    assert!(
        bad.log().contains("leaseTtl: unknown field `leaseTtl`"),
        "{}",
        bad.log()
    );
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn agents_on_three_nodes_share_an_etcd_store_with_tls() {
    ferro_testutil::require_root();
    let world = World::new(3);
    let ca = TestCa::new("ferro-test-ca");
    let nodes: Vec<(&Netns, std::net::IpAddr)> =
        world.nodes.iter().map(|n| (&n.ns, n.ip)).collect();
    let etcd = EtcdCluster::start(&nodes, Some(&ca));
    let ttl = 4;
    let store = |c: &Issued| {
        json!({"etcd": {
            "endpoints": etcd.endpoints(),
            "caFile": ca.ca(), "certFile": c.cert, "keyFile": c.key,
            "dialTimeoutSeconds": 10,
        }})
    };
    let certs: Vec<Issued> = world
        .nodes
        .iter()
        .zip(["node-a", "node-b", "node-c"])
        .map(|(n, name)| ca.issue(name, &[n.ip]))
        .collect();
    let mut agents: Vec<Agent> = world
        .nodes
        .iter()
        .zip(["node-a", "node-b", "node-c"])
        .zip(&certs)
        .map(|((n, name), c)| {
            Agent::start(
                bin(),
                Some(&n.ns),
                json!({"nodeName": name, "nodeAddresses": [n.ip.to_string(), n.ip6.to_string()], "store": store(c), "leaseTTL": ttl}),
            )
        })
        .collect();
    let nodes_table = |a: &Agent| a.cnictl(&["get", "nodes"], None).stdout;
    let t = nodes_table(&agents[0]);
    for n in ["node-a", "node-b", "node-c"] {
        assert!(
            t.lines().any(|l| l.starts_with(n) && l.contains("Ready ")),
            "{n} in\n{t}"
        );
    }

    // one node applies, another reads: one store
    let out = agents[0].cnictl(&["apply", "-f", "-"], Some(APP));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let pods = agents[1].cnictl(&["get", "pods", "-n", "shop", "-o", "json"], None);
    let v: Value = serde_json::from_str(&pods.stdout).unwrap();
    assert_eq!(v["items"][0]["metadata"]["name"], "web-1");
    let refused = agents[2].cnictl(
        &["apply", "-f", "-"],
        Some("apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: nope}\nspec: {containers: [{name: c}]}\n"),
    );
    assert!(
        refused.stderr.contains("namespace \"nope\" does not exist"),
        "{}",
        refused.stderr
    );

    // a client of the store, on node A, to look at the lease records directly
    let a_ns = &world.nodes[0].ns;
    let endpoints = etcd.endpoints();
    let (cert_a, ca_file) = (certs[0].clone(), ca.ca());
    let lease_of = |node: &'static str| {
        let (endpoints, cert_a, ca_file) = (endpoints.clone(), cert_a.clone(), ca_file.clone());
        a_ns.block_on(move || async move {
            let mut cfg = EtcdConfig::new(endpoints);
            cfg.ca_file = Some(ca_file);
            cfg.cert_file = Some(cert_a.cert);
            cfg.key_file = Some(cert_a.key);
            let s = Etcd::connect(&cfg).await.unwrap();
            s.get(&keys::node_lease(node)).await.unwrap()
        })
    };
    assert!(lease_of("node-b").is_some());

    // SIGTERM on node B: the lease record is gone when the agent has exited, not after a TTL
    let st = agents[1].term();
    assert!(st.success(), "{}", agents[1].log());
    assert!(
        lease_of("node-b").is_none(),
        "node B's lease record vanished at once"
    );
    assert!(nodes_table(&agents[0])
        .lines()
        .any(|l| l.starts_with("node-b") && l.contains("NotReady")));

    // kill -9 on node C: the record stays until the lease expires
    agents[2].kill9();
    let killed = Instant::now();
    assert!(
        lease_of("node-c").is_some(),
        "still there right after kill -9 (TTL {ttl} s)"
    );
    while lease_of("node-c").is_some() {
        assert!(
            killed.elapsed() < Duration::from_secs(60),
            "node C's lease never expired"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!(
        "node C's lease ({ttl} s TTL) expired {:.1?} after kill -9",
        killed.elapsed()
    );

    // restarted after kill -9 again, node C takes its own previous lease back at once
    agents[2].restart();
    agents[2].wait_ready();
    agents[2].kill9();
    let t0 = Instant::now();
    agents[2].restart();
    agents[2].wait_ready();
    eprintln!(
        "node C re-registered {:.1?} after a kill -9 restart",
        t0.elapsed()
    );
    assert!(
        agents[2]
            .log()
            .contains("taking over the lease of this agent's previous run"),
        "{}",
        agents[2].log()
    );
    assert!(nodes_table(&agents[0])
        .lines()
        .any(|l| l.starts_with("node-c") && l.contains("Ready ")));

    // a second agent under a taken name is refused (after waiting for the record, up to 2 TTL)
    let mut dup = Agent::spawn(
        bin(),
        Some(&world.nodes[1].ns),
        json!({"nodeName": "node-a", "store": store(&certs[1]), "leaseTTL": ttl}),
    );
    let st = dup.wait_exit(Duration::from_secs(60)).expect("refused");
    assert_eq!(st.code(), Some(1));
    assert!(
        dup.log()
            .contains("node node-a: its lease is held by another live agent"),
        "{}",
        dup.log()
    );
}
