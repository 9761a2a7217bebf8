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
    assert_eq!(
        denials(&inp).get(&web),
        Some(&("shop/web-1".to_string(), "shop-out".to_string()))
    );
    assert!(!denials(&inp).contains_key(&db));
}

#[test]
fn no_policy_no_jump() {
    let mut inp = inputs();
    inp.policies.clear();
    let t = plan(&inp, &Learned::new());
    assert_eq!(t.chains.len(), 1);
    assert_eq!(t.chains["forward"].rules.len(), 5);
}
