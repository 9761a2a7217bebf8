use super::*;
use ferro_cluster::egress::EgressPolicy;

fn policy(name: &str, spec: serde_json::Value) -> Egress {
    serde_json::from_value::<EgressPolicy>(serde_json::json!({
        "apiVersion": "ferro-cni.io/v1", "kind": "EgressPolicy",
        "metadata": {"name": name}, "spec": spec}))
    .unwrap()
    .checked()
    .unwrap()
}

fn pod(ns: &str, name: &str, app: &str, ips: &[&str]) -> LocalPod {
    LocalPod {
        namespace: ns.into(),
        name: name.into(),
        labels: [("app".to_string(), app.to_string())].into(),
        ips: ips.iter().map(|s| s.parse().unwrap()).collect(),
    }
}

fn inputs() -> Inputs {
    Inputs {
        policies: vec![
            policy(
                "shop-out",
                serde_json::json!({"namespaces": ["shop"], "podSelector": {"matchLabels": {"app": "web"}},
                    "defaultAction": "Deny",
                    "allow": [{"toCIDRs": ["198.51.100.0/24"], "ports": [{"port": 443}, {"port": 53, "protocol": "UDP"}]},
                              {"toNames": ["api.example.com", "*.blob.example.net"]}]}),
            ),
            policy(
                "everyone",
                serde_json::json!({"allow": [{"toCIDRs": ["192.0.2.0/24"]}]}),
            ),
            policy(
                "nobody-here",
                serde_json::json!({"namespaces": ["other"], "defaultAction": "Deny"}),
            ),
        ],
        pods: vec![
            pod("shop", "web-1", "web", &["10.244.1.5", "fd00:10:244:1::5"]),
            pod("shop", "db-1", "db", &["10.244.1.6"]),
        ],
        cluster: vec![
            "10.244.0.0/16".parse().unwrap(),
            "10.96.0.0/16".parse().unwrap(),
        ],
        nodes: vec!["10.240.0.4".parse().unwrap(), "10.240.0.5".parse().unwrap()],
    }
}

#[test]
fn golden_table() {
    let inp = inputs();
    let rules = name_rules(&inp);
    assert_eq!(rules.len(), 1);
    let learned: Learned = [(
        rules[0].sets[0].clone(),
        ["203.0.113.7".parse().unwrap()].into(),
    )]
    .into();
    let text = plan(&inp, &learned).render_as(TABLE);
    let want = include_str!("golden.nft");
    if std::env::var_os("FERRO_BLESS").is_some() {
        std::fs::write(
            concat!(env!("CARGO_MANIFEST_DIR"), "/src/egress/plan/golden.nft"),
            &text,
        )
        .unwrap();
        return;
    }
    assert_eq!(
        text, want,
        "FERRO_BLESS=1 rewrites src/egress/plan/golden.nft"
    );
}

#[test]
fn names_count_for_selected_pods_only() {
    let inp = inputs();
    let r = &name_rules(&inp)[0];
    let web: IpAddr = "10.244.1.5".parse().unwrap();
    let db: IpAddr = "10.244.1.6".parse().unwrap();
    assert!(r.allows(web, &["api.example.com.".into()]));
    assert!(r.allows(web, &["x.blob.example.net".into()]));
    assert!(!r.allows(web, &["example.com".into()]));
    assert!(!r.allows(db, &["api.example.com".into()]));
    assert!(r.set_for("fd00::1".parse().unwrap()).starts_with("dns6-1-"));
    let d = &denials(&inp)[&web];
    assert_eq!(
        (d.pod.as_str(), d.policy.as_str()),
        ("shop/web-1", "shop-out")
    );
    let v6: IpAddr = "fd00:10:244:1::5".parse().unwrap();
    assert_eq!(denials(&inp)[&v6].counter, d.counter, "one counter per pod");
    assert!(!denials(&inp).contains_key(&db));
}

#[test]
fn no_pod_to_drop_for_no_hook() {
    // No policy: no chain at all.
    let mut inp = inputs();
    inp.policies.clear();
    let t = plan(&inp, &Learned::new());
    assert!(t.chains.is_empty(), "{:?}", t.chains.keys());
    // Allow policies only: their chains and name sets stay (the names they learn), but
    // nothing hooks the node's traffic, since nothing would be dropped.
    let mut inp = inputs();
    inp.policies.retain(|p| !p.deny);
    let t = plan(&inp, &Learned::new());
    assert!(!t.chains.is_empty());
    assert!(
        t.chains.values().all(|c| c.base.is_none()),
        "{:?}",
        t.chains.keys()
    );
    assert!(t.sets.keys().any(|s| s.starts_with("src4-")));
    // A Deny policy selecting a pod of this node: the forward chain, jumps and drop.
    let t = plan(&inputs(), &Learned::new());
    let forward = &t.chains["forward"];
    assert!(forward.base.is_some());
    assert!(forward.rules.iter().any(|r| r.text.contains("drop")));
    // The same policy selecting no pod here: no hook again.
    let mut inp = inputs();
    inp.pods.retain(|p| p.labels["app"] != "web");
    assert!(!plan(&inp, &Learned::new()).chains.contains_key("forward"));
}

#[test]
fn decisions_follow_the_table() {
    let inp = inputs();
    let web = &inp.pods[0];
    let db = &inp.pods[1];
    let rule = &name_rules(&inp)[0];
    let learned: Learned = [(
        rule.sets[0].clone(),
        ["203.0.113.7".parse().unwrap()].into(),
    )]
    .into();
    let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
    let d = |pod, dst: &str, proto, port, l: Option<&Learned>| {
        decide(&inp, l, pod, ip(dst), proto, port)
    };
    // Inside the cluster and to nodes: not egress.
    let x = d(web, "10.244.9.9", 6, Some(80), Some(&learned));
    assert!(x.allowed && x.policy.is_none(), "{x:?}");
    assert!(x.text.contains("inside the cluster"), "{}", x.text);
    assert!(d(web, "10.240.0.5", 6, Some(22), Some(&learned)).allowed);
    // A CIDR rule with its ports, and not on other ports.
    let x = d(web, "198.51.100.9", 6, Some(443), Some(&learned));
    assert_eq!((x.allowed, x.rule), (true, Some(0)), "{x:?}");
    assert!(
        x.text
            .contains("allowed by EgressPolicy shop-out, allow[0]"),
        "{}",
        x.text
    );
    // Another port: shop-out has no rule for it, but "everyone" (defaultAction Allow)
    // selects every pod, and a pod is let through when any policy selecting it allows.
    let x = d(web, "198.51.100.9", 6, Some(80), Some(&learned));
    assert_eq!(
        (x.allowed, x.policy.as_deref()),
        (true, Some("everyone")),
        "{x:?}"
    );
    assert!(x.text.contains("defaultAction Allow"), "{}", x.text);
    // A learned answer of an allowed name.
    let x = d(web, "203.0.113.7", 6, Some(443), Some(&learned));
    assert_eq!((x.allowed, x.rule), (true, Some(1)), "{x:?}");
    assert!(x.text.contains("api.example.com"), "{}", x.text);
    // db is selected by "everyone" only.
    let x = d(db, "203.0.113.8", 17, Some(53), Some(&learned));
    assert_eq!(x.policy.as_deref(), Some("everyone"));
}

#[test]
fn deny_without_an_allow_policy_drops_and_names_rules_known_elsewhere() {
    let mut inp = inputs();
    inp.policies.retain(|p| p.name != "everyone");
    let web = inp.pods[0].clone();
    let dst: IpAddr = "203.0.113.7".parse().unwrap();
    let x = decide(&inp, Some(&Learned::new()), &web, dst, 6, Some(443));
    assert!(!x.allowed);
    assert_eq!(x.policy.as_deref(), Some("shop-out"));
    assert!(!x.text.contains("unless"), "{}", x.text);
    // Asked on another node than the pod's: the name rule may allow it there.
    let x = decide(&inp, None, &web, dst, 6, Some(443));
    assert!(!x.allowed);
    assert!(
        x.text.contains("unless the cluster DNS of the pod's node"),
        "{}",
        x.text
    );
    // A pod no policy selects.
    inp.policies.clear();
    let x = decide(&inp, None, &web, dst, 6, Some(443));
    assert!(x.allowed && x.policy.is_none(), "{x:?}");
}
