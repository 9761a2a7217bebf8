use std::collections::BTreeMap;

use ferro_policy::cases::{self, Action, Scenario};
use ferro_policy::ruleset::Ruleset;

use super::*;
use crate::cache::snapshot_of;

fn scenario_with(policy: &str) -> Scenario {
    let mut s = Scenario::new(cases::model_addrs);
    s.run(&Action::Apply(policy.to_string())).unwrap();
    s
}

fn a_from_b() -> String {
    cases::policy(
        "x",
        "a-from-b",
        "{podSelector: {matchLabels: {pod: a}}, ingress: [{from: [{podSelector: {matchLabels: {pod: b}}}], ports: [{port: 80}]}]}",
    )
}

#[test]
fn explanations_name_the_policy_rule_peer_and_port() {
    let c = scenario_with(&a_from_b()).cluster();
    let e = explain(&c, "x/b", "x/a", 80, "TCP", None).unwrap();
    assert!(e.allowed);
    assert!(
        e.text.contains("allowed by NetworkPolicy x/a-from-b, ingress[0] from[0] (podSelector pod=b), ports[0] (80/TCP)"),
        "{}",
        e.text
    );
    assert!(
        e.text.contains("egress of the source: not isolated"),
        "{}",
        e.text
    );
    assert_eq!(e.from_address, "10.241.0.11");
    assert_eq!(e.decision["ingress"]["verdict"], "allowed");
    assert_eq!(e.decision["ingress"]["policy"]["name"], "a-from-b");

    let e = explain(&c, "x/c", "x/a", 80, "tcp", Some(6)).unwrap();
    assert!(!e.allowed);
    assert!(
        e.text
            .contains("denied: isolated for ingress by x/a-from-b, and no rule of it matches"),
        "{}",
        e.text
    );
    assert!(
        e.from_address.contains(':'),
        "IPv6 asked: {}",
        e.from_address
    );

    // Addresses work as ends; ICMP has no port; a pod to itself is loopback.
    let e = explain(&c, "10.241.0.11", "x/a", 0, "ICMP", None).unwrap();
    assert!(!e.allowed, "ping is not port 80");
    let e = explain(&c, "x/a", "x/a", 80, "UDP", None).unwrap();
    assert!(e.allowed && e.text.contains("loopback"), "{}", e.text);
}

#[test]
fn explain_refuses_what_it_cannot_resolve() {
    let c = scenario_with(&a_from_b()).cluster();
    let e = explain(&c, "x/nope", "x/a", 80, "TCP", None).unwrap_err();
    assert_eq!(e.code, ErrorCode::NotFound);
    assert!(
        e.message.contains("pod x/nope has no address"),
        "{}",
        e.message
    );
    let e = explain(&c, "x/b", "x/a", 80, "GRE?", None).unwrap_err();
    assert_eq!(e.code, ErrorCode::BadRequest);
    let e = explain(&c, "x/b", "x/a", 80, "TCP", Some(5)).unwrap_err();
    assert!(e.message.contains("family 5"), "{}", e.message);
    let e = explain(&c, "10.0.0.1", "fd00::1", 80, "TCP", None).unwrap_err();
    assert!(
        e.message.contains("different address families"),
        "{}",
        e.message
    );
}

#[test]
fn drops_add_up_per_pod_and_per_policy() {
    let mut s = scenario_with(&a_from_b());
    s.run(&Action::Apply(cases::policy(
        "x",
        "deny-all",
        "{podSelector: {}, policyTypes: [Ingress]}",
    )))
    .unwrap();
    let c = s.cluster();
    let np = node_policy(&c, cases::NODES[0]);
    let rs = Ruleset::of(&np, None);
    let p = Programmed {
        revision: 1,
        node: Arc::new(np),
        ruleset: Arc::new(rs.clone()),
    };
    // Node A holds x/a and x/c (isolated for ingress).
    let mut counters = BTreeMap::new();
    for (name, chain) in &rs.chains {
        let n = if &*chain.pod.name == "a" { 5 } else { 2 };
        counters.insert(name.clone(), (n, n * 100));
    }
    let st = stats_of(&p, &counters);
    assert_eq!(st.pods.len(), 2, "{st:?}");
    let a = st.pods.iter().find(|d| d.pod == "a").unwrap();
    assert_eq!(
        (a.packets, a.bytes, a.direction.as_str()),
        (5, 500, "ingress")
    );
    assert_eq!(a.policies, ["a-from-b", "deny-all"]);
    let deny = st.policies.iter().find(|d| d.policy == "deny-all").unwrap();
    assert_eq!((deny.pods, deny.packets), (2, 7));
    let ab = st.policies.iter().find(|d| d.policy == "a-from-b").unwrap();
    assert_eq!((ab.pods, ab.packets), (1, 5));
}

#[test]
fn a_reported_attachment_counts_before_the_store_has_it() {
    let snap = snapshot_of([
        (
            "/ferro-cni/v1/namespaces/x",
            r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"x"}}"#,
        ),
        (
            "/ferro-cni/v1/pods/x/a",
            r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a","namespace":"x","labels":{"pod":"a"}}}"#,
        ),
    ]);
    let att: Attachment = serde_json::from_str(
        r#"{"apiVersion":"ferro-cni.io/v1","kind":"Attachment","metadata":{"name":"a-eth0","namespace":"x"},
            "spec":{"node":"node-a","pod":"a","containerID":"c1","interface":"eth0","addresses":["10.240.0.10/24"]}}"#,
    )
    .unwrap();
    let key = "/ferro-cni/v1/attachments/x/a-eth0".to_string();
    let none = cluster_of(&snap, &BTreeMap::new());
    assert!(none.pods().next().is_none());
    let with = cluster_of(&snap, &BTreeMap::from([(key.clone(), Some(att))]));
    let pod = with.pods().next().unwrap();
    assert_eq!(pod.key, Key::new("x", "a"));
    assert_eq!(pod.labels.get("pod").map(String::as_str), Some("a"));
    assert_eq!(pod.node, "node-a");
    // Reported gone: hidden even if a snapshot still holds it.
    let gone = cluster_of(&snap, &BTreeMap::from([(key, None)]));
    assert!(gone.pods().next().is_none());
}

/// The loop's model, updated snapshot after snapshot (with attachments reported and not yet
/// stored laid over it), equals the cluster built whole from each snapshot.
#[test]
fn the_model_follows_changes_as_a_rebuild_would() {
    use crate::cache::snapshot_after;
    let pod = |name: &str, app: &str| {
        format!(
            r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{name}","namespace":"x","labels":{{"app":"{app}"}}}}}}"#
        )
    };
    let att = |name: &str, node: &str, addr: &str| {
        format!(
            r#"{{"apiVersion":"ferro-cni.io/v1","kind":"Attachment","metadata":{{"name":"{name}-eth0","namespace":"x"}},
                "spec":{{"node":"{node}","pod":"{name}","containerID":"c-{name}","interface":"eth0","addresses":["{addr}/24"]}}}}"#
        )
    };
    let pol = |name: &str, app: &str| {
        format!(
            r#"{{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{{"name":"{name}","namespace":"x"}},
                "spec":{{"podSelector":{{"matchLabels":{{"app":"{app}"}}}},"ingress":[]}}}}"#
        )
    };
    let pk = |n: &str| format!("/ferro-cni/v1/pods/x/{n}");
    let ak = |n: &str| format!("/ferro-cni/v1/attachments/x/{n}-eth0");
    let nk = |n: &str| format!("/ferro-cni/v1/networkpolicies/x/{n}");
    let (pa, pb, aa, ab) = (
        pod("a", "web"),
        pod("b", "db"),
        att("a", "node-a", "10.0.0.1"),
        att("b", "node-b", "10.0.0.2"),
    );
    let s0 = snapshot_of([
        (pk("a").as_str(), pa.as_str()),
        (ak("a").as_str(), aa.as_str()),
    ]);
    let reported: Attachment = serde_json::from_str(&att("c", "node-a", "10.0.0.3")).unwrap();
    let (pa2, ac, p1, clash) = (
        pod("a", "db"),
        att("c", "node-a", "10.0.0.3"),
        pol("p1", "web"),
        att("d", "node-b", "10.0.0.2"),
    );
    type Step<'a> = (
        Vec<(String, Option<&'a str>)>,
        BTreeMap<String, Option<Attachment>>,
    );
    let steps: Vec<Step> = vec![
        (
            vec![
                (pk("b"), Some(&pb)),
                (ak("b"), Some(&ab)),
                (nk("p1"), Some(&p1)),
            ],
            BTreeMap::new(),
        ),
        // c reported, not stored yet; then stored; a relabelled
        (vec![], BTreeMap::from([(ak("c"), Some(reported.clone()))])),
        (
            vec![(ak("c"), Some(&ac)), (pk("a"), Some(&pa2))],
            BTreeMap::from([(ak("c"), Some(reported))]),
        ),
        (vec![], BTreeMap::new()),
        // b reported gone while the store still holds it; an address clash
        (
            vec![(ak("d"), Some(&clash))],
            BTreeMap::from([(ak("b"), None)]),
        ),
        (
            vec![(ak("b"), None), (nk("p1"), None), (pk("a"), None)],
            BTreeMap::new(),
        ),
    ];
    let mut model = Model::default();
    let mut snap = Arc::new(s0);
    model.update(&snap, &BTreeMap::new());
    for (i, (changes, pending)) in steps.into_iter().enumerate() {
        let next = snapshot_after(&snap, changes.iter().map(|(k, v)| (k.as_str(), *v)));
        snap = Arc::new(next);
        model.update(&snap, &pending);
        let whole = cluster_of(&snap, &pending);
        let c = model.cluster().unwrap();
        let pods = |c: &Cluster| c.pods().cloned().collect::<Vec<_>>();
        assert_eq!(pods(c), pods(&whole), "step {i}");
        assert_eq!(c.problems(), whole.problems(), "step {i}");
        let pols = |c: &Cluster| c.policies().map(|p| p.key.clone()).collect::<Vec<_>>();
        assert_eq!(pols(c), pols(&whole), "step {i}");
        assert_eq!(
            node_policy(c, "node-a"),
            node_policy(&whole, "node-a"),
            "step {i}"
        );
    }
}
