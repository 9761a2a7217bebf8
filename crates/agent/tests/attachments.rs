//! Attachment reports (root: network namespaces). Real plugins (`bridge` under kubenet,
//! `flat` under the Azure CNI model) on a simulated node report to a real agent through the
//! `agent` key of their configuration; `cnictl` reads what the agent recorded.
//!
//! Proven here: ADD and DEL are recorded as the node's Attachments, with the pod's
//! namespace and name from `K8S_POD_*` and the addresses of the result; labels come from
//! the Pod resource (none without one) and `get pods -o wide` shows the pod's address;
//! with the agent down (killed), ADD and DEL still succeed, their reports wait in the
//! spool, and the restarted agent catches up: the store's Attachments then match the pods
//! that exist, including a pod whose veth vanished without a DEL.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use ferro_testutil::agent::Agent;
use ferro_testutil::kubenet::{self, Kubenet};
use ferro_testutil::netns::Netns;
use ferro_testutil::require_root;
use ferro_testutil::runtime::{pod_ip, Runtime};
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
metadata: {name: web-1, namespace: shop, labels: {app: web, tier: front}}
spec: {containers: [{name: web, image: nginx}]}
";

/// `CNI_ARGS` as containerd sends them for pod `ns/name`.
fn k8s(ns: &str, name: &str) -> String {
    format!("IgnoreUnknown=1;K8S_POD_NAMESPACE={ns};K8S_POD_NAME={name};K8S_POD_INFRA_CONTAINER_ID=x;K8S_POD_UID=u-{name}")
}

/// `(namespace, pod, addresses, network)` of every Attachment, as `cnictl get -A -o json`
/// shows them, sorted.
fn attachments(a: &Agent) -> Vec<(String, String, Vec<String>, String)> {
    let out = a.cnictl(&["get", "attachments", "-A", "-o", "json"], None);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    let mut got: Vec<_> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["metadata"]["namespace"].as_str().unwrap().to_string(),
                i["spec"]["pod"].as_str().unwrap_or("<none>").to_string(),
                i["spec"]["addresses"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_str().unwrap().to_string())
                    .collect(),
                i["spec"]["network"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    got.sort();
    got
}

/// Waits (up to 10 s: the agent writes the store just after it answers a report) until the
/// Attachments are `want`; panics with what they are.
fn wait_for(a: &Agent, want: &[(String, String, Vec<String>, String)]) {
    let t0 = std::time::Instant::now();
    loop {
        let got = attachments(a);
        if got == want {
            return;
        }
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(10),
            "attachments:\n{got:#?}\nwant:\n{want:#?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn att(
    ns: &str,
    pod: &str,
    ip: &str,
    prefix: u8,
    net: &str,
) -> (String, String, Vec<String>, String) {
    (
        ns.to_string(),
        pod.to_string(),
        vec![format!("{ip}/{prefix}")],
        net.to_string(),
    )
}

/// The spool's pending files.
fn spooled(run: &Path) -> usize {
    std::fs::read_dir(run.join("spool"))
        .map(|rd| {
            rd.filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".json")
            })
            .count()
        })
        .unwrap_or(0)
}

/// The flat (Azure CNI) network of node A, reporting to the same agent.
fn flat(data: &Path, socket: &Path) -> Value {
    json!({"cniVersion":"1.1.0","name":"azure","plugins":[
        {"type":"flat","vnetCIDRs":["10.240.0.0/16"],"agent":{"socket":socket},
         "ipam":{"type":"host-local","dataDir":data,"ranges":[[{"subnet":"10.240.0.0/16","rangeStart":"10.240.0.20","rangeEnd":"10.240.0.29","gateway":"10.240.0.1"}]]}}]})
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn reports_with_and_without_the_agent_and_the_catch_up() {
    require_root();
    // the agent's socket directory, known before the cluster's conflists are written
    let run = tempfile::Builder::new()
        .prefix("ft")
        .tempdir_in("/tmp")
        .unwrap();
    let socket: PathBuf = run.path().join("agent.sock");
    let k = Kubenet::with(1, json!({"agent": {"socket": socket}}));
    let flat_data = tempfile::tempdir().unwrap();
    let flat_rt = Runtime::new(k.node(0), &["flat", "host-local"]);
    flat_rt.write_conflist("10-azure", &flat(flat_data.path(), &socket));
    let mut a = Agent::start(
        bin(),
        Some(k.node(0)),
        json!({"nodeName": "node-a", "nodeAddresses": ["10.240.0.4"], "socket": socket}),
    );
    let out = a.cnictl(&["apply", "-f", "-"], Some(APP));
    assert_eq!(out.code, 0, "{}", out.stderr);

    // the agent is there: each ADD is recorded at once
    let (p1, ip1, _) = k.pod_with(0, "att-web1", &[("CNI_ARGS", &k8s("shop", "web-1"))]);
    let (p2, ip2, _) = k.pod_with(0, "att-web2", &[("CNI_ARGS", &k8s("shop", "web-2"))]);
    let p3 = Netns::new("att-bare");
    let ip3 = pod_ip(&k.rt[0].add(kubenet::NET, &p3));
    let p4 = Netns::new("att-flat");
    let ip4 = pod_ip(&flat_rt.add_with("azure", &p4, &[("CNI_ARGS", &k8s("shop", "db-1"))]));
    let mut want = vec![
        att("default", "<none>", &ip3, 24, kubenet::NET),
        att("shop", "db-1", &ip4, 16, "azure"),
        att("shop", "web-1", &ip1, 24, kubenet::NET),
        att("shop", "web-2", &ip2, 24, kubenet::NET),
    ];
    wait_for(&a, &want);
    assert_eq!(
        spooled(run.path()),
        0,
        "nothing spooled while the agent answers"
    );

    // labels come from the Pod resource; web-2 has none
    let wide = a.cnictl(&["get", "att", "-n", "shop", "-o", "wide"], None);
    println!("cnictl get attachments -n shop -o wide\n{}", wide.stdout);
    let line = |name: &str| {
        wide.stdout
            .lines()
            .find(|l| l.split_whitespace().nth(2) == Some(name))
            .unwrap_or_else(|| panic!("no {name} in\n{}", wide.stdout))
            .to_string()
    };
    assert!(
        line("web-1").contains("app=web,tier=front"),
        "{}",
        wide.stdout
    );
    assert!(line("web-2").contains("<none>"), "{}", wide.stdout);
    assert!(line("web-1").starts_with("web-1-eth0-"), "{}", wide.stdout);
    let pods = a.cnictl(&["get", "pods", "-n", "shop", "-o", "wide"], None);
    println!("cnictl get pods -n shop -o wide\n{}", pods.stdout);
    assert!(
        pods.stdout.starts_with("NAME    CONTAINERS   NODE     IP "),
        "{}",
        pods.stdout
    );
    let web1 = pods.stdout.lines().nth(1).unwrap();
    assert!(
        web1.starts_with("web-1   1            node-a   ") && web1.contains(&format!(" {ip1} ")),
        "{}",
        pods.stdout
    );

    // a DEL with the agent there: gone at once
    k.rt[0].del_with(kubenet::NET, &p2, &[("CNI_ARGS", &k8s("shop", "web-2"))]);
    want.retain(|w| w.1 != "web-2");
    wait_for(&a, &want);

    // the agent dies: ADD and DEL keep working, their reports wait in the spool
    a.kill9();
    let (p5, ip5, _) = k.pod_with(0, "att-web5", &[("CNI_ARGS", &k8s("shop", "web-5"))]);
    k.rt[0].del(kubenet::NET, &p3); // DEL without K8S_POD_* (as ctr sends it)
    flat_rt.del_with("azure", &p4, &[("CNI_ARGS", &k8s("shop", "db-1"))]);
    assert_eq!(spooled(run.path()), 3, "one file per report");
    // and web-1's veth vanishes without any DEL (the runtime crashed, say)
    let veths = k.host_veths(0);
    assert_eq!(veths.len(), 2, "{veths:?}");
    let host1 = ferro_net::names::host_ifname("veth", &Runtime::container_id(&p1), "eth0");
    assert!(veths.contains(&host1), "{veths:?} / {host1}");
    k.node(0).ip(&["link", "del", &host1]);

    // the agent comes back and catches up before it answers anything
    a.restart();
    a.wait_ready();
    want = vec![att("shop", "web-5", &ip5, 24, kubenet::NET)];
    wait_for(&a, &want);
    assert_eq!(spooled(run.path()), 0, "the spool is empty once applied");
    let log = a.log();
    assert!(log.contains("spool: replayed 3 request(s)"), "{log}");
    assert!(log.contains("is gone: forgotten"), "{log}");

    // what a report costs a plugin: one request, one answer (the agent records it locally
    // and in the store before it answers)
    let n = 50;
    let t0 = std::time::Instant::now();
    for i in 0..n {
        let report = ferro_agent_api::AttachmentReport {
            event: if i % 2 == 0 {
                ferro_agent_api::AttachmentEvent::Add
            } else {
                ferro_agent_api::AttachmentEvent::Del
            },
            plugin: "bridge".into(),
            network: "timing".into(),
            container_id: format!("timing-{}", i / 2),
            ifname: "eth0".into(),
            pod_namespace: Some("shop".into()),
            pod_name: Some(format!("t-{}", i / 2)),
            host_interface: "vethtiming".into(),
            addresses: vec!["10.244.9.9/24".into()],
            firewall: None,
        };
        let r = ferro_agent_api::call(
            &socket,
            &ferro_agent_api::Request::Report { report },
            std::time::Duration::from_secs(10),
        )
        .unwrap();
        assert!(
            matches!(r, ferro_agent_api::Response::Reported { .. }),
            "{r:?}"
        );
    }
    println!(
        "a report, delivered: {:.2} ms on average over {n} (connect, request, answer; embedded store)",
        t0.elapsed().as_secs_f64() * 1000.0 / f64::from(n)
    );

    // DEL of the rest, with the agent there
    k.rt[0].del_with(kubenet::NET, &p5, &[("CNI_ARGS", &k8s("shop", "web-5"))]);
    k.rt[0].del_with(kubenet::NET, &p1, &[("CNI_ARGS", &k8s("shop", "web-1"))]);
    wait_for(&a, &[]);
    let none = a.cnictl(&["get", "attachments", "-A"], None);
    assert_eq!(none.stderr, "No resources found.\n");
    assert_eq!(a.term().code(), Some(0));
}
