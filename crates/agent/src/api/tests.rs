use ferro_agent_api::{Action, ApplyDocument, ErrorCode, Request, Response, Target};
use ferro_store::Embedded;
use serde_json::json;

use super::*;

struct T {
    api: Api<Embedded>,
    _dir: tempfile::TempDir,
}

async fn api() -> T {
    let dir = tempfile::tempdir().unwrap();
    let store = Embedded::open(&dir.path().join("s.redb")).await.unwrap();
    let api = Api::new(store, "node-a".into(), "embedded".into());
    api.ensure_system_namespaces().await.unwrap();
    T { api, _dir: dir }
}

fn docs(text: &str) -> Vec<ApplyDocument> {
    ferro_cluster::manifest::parse_documents("app.yaml", text)
        .unwrap()
        .into_iter()
        .map(|d| ApplyDocument {
            source: d.origin.source,
            document: d.origin.document,
            item: d.origin.item,
            object: d.value,
        })
        .collect()
}

async fn apply(t: &T, text: &str) -> Response {
    t.api
        .handle(Request::Apply {
            documents: docs(text),
        })
        .await
}

fn actions(r: &Response) -> Vec<Action> {
    match r {
        Response::Applied { results, .. } | Response::Deleted { results, .. } => {
            results.iter().map(|o| o.action).collect()
        }
        other => panic!("not applied: {other:?}"),
    }
}

fn error(r: Response) -> (ErrorCode, String) {
    match r {
        Response::Error { error } => (error.code, error.message),
        other => panic!("not an error: {other:?}"),
    }
}

async fn list(t: &T, kind: &str) -> Vec<Value> {
    match t
        .api
        .handle(Request::List {
            kind: kind.into(),
            namespace: None,
        })
        .await
    {
        Response::List { items, .. } => items,
        other => panic!("{other:?}"),
    }
}

const APP: &str = "apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Pod
metadata: {name: web-1, namespace: shop, labels: {app: web}}
spec: {containers: [{name: c, ports: [{name: http, containerPort: 80}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {selector: {app: web}, ports: [{port: 80, targetPort: http}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web, namespace: shop}
spec: {podSelector: {matchLabels: {app: web}}}
";

#[tokio::test]
async fn apply_creates_then_reports_unchanged_and_configured() {
    let t = api().await;
    let r = apply(&t, APP).await;
    assert_eq!(actions(&r), [Action::Created; 4]);
    let again = apply(&t, APP).await;
    assert_eq!(actions(&again), [Action::Unchanged; 4]);
    let changed = apply(&t, &APP.replace("targetPort: http", "targetPort: 8080")).await;
    assert_eq!(
        actions(&changed),
        [
            Action::Unchanged,
            Action::Unchanged,
            Action::Configured,
            Action::Unchanged
        ]
    );
    let ns = list(&t, "ns").await;
    let names: Vec<&str> = ns
        .iter()
        .map(|n| n["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["default", "kube-system", "shop"]);
    assert_eq!(
        ns[2]["metadata"]["labels"]["kubernetes.io/metadata.name"],
        "shop"
    );
    assert!(ns[2]["metadata"]["creationTimestamp"].is_string());
}

#[tokio::test]
async fn a_failing_document_writes_nothing() {
    let t = api().await;
    let bad = format!("{APP}---\napiVersion: v1\nkind: Pod\nmetadata: {{name: p, namespace: nope}}\nspec: {{containers: [{{name: c}}]}}\n");
    let (code, msg) = error(apply(&t, &bad).await);
    assert_eq!(code, ErrorCode::Invalid);
    assert_eq!(
        msg,
        "app.yaml: document 5 (Pod nope/p): namespace \"nope\" does not exist (create it first, or in the same apply)"
    );
    assert!(list(&t, "pods").await.is_empty(), "nothing written");
    assert_eq!(list(&t, "ns").await.len(), 2);
    let (code, msg) = error(
        t.api
            .handle(Request::Apply {
                documents: vec![ApplyDocument {
                    source: "x.json".into(),
                    document: 1,
                    item: None,
                    object: json!({"apiVersion": "ferro-cni.io/v1", "kind": "Node", "metadata": {"name": "n"}}),
                }],
            })
            .await,
    );
    assert_eq!(code, ErrorCode::Invalid);
    assert!(
        msg.contains("Node is written by the cluster itself"),
        "{msg}"
    );
    let (_, msg) = error(
        apply(
            &t,
            &format!("{APP}---\n{}", APP.split("---").nth(1).unwrap()),
        )
        .await,
    );
    assert!(
        msg.contains("document 5 (Pod shop/web-1): also in app.yaml: document 2"),
        "{msg}"
    );
}

#[tokio::test]
async fn resource_versions_are_preconditions() {
    let t = api().await;
    apply(&t, APP).await;
    let pod = match t
        .api
        .handle(Request::Get {
            kind: "po".into(),
            namespace: Some("shop".into()),
            name: "web-1".into(),
        })
        .await
    {
        Response::Object { object } => object,
        other => panic!("{other:?}"),
    };
    let rv = pod["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let mut edited = pod.clone();
    edited["metadata"]["labels"]["tier"] = json!("fe");
    let doc = |o: Value| Request::Apply {
        documents: vec![ApplyDocument {
            source: "-".into(),
            document: 1,
            item: None,
            object: o,
        }],
    };
    assert_eq!(
        actions(&t.api.handle(doc(edited.clone())).await),
        [Action::Configured]
    );
    let (code, msg) = error(t.api.handle(doc(edited)).await);
    assert_eq!(code, ErrorCode::Conflict);
    assert!(msg.contains(&format!("the manifest names {rv}")), "{msg}");
}

#[tokio::test]
async fn services_are_checked_against_the_cluster_network() {
    let t = api().await;
    apply(
        &t,
        "apiVersion: ferro-cni.io/v1\nkind: ClusterNetwork\nmetadata: {name: default}\nspec: {podCIDRs: [10.244.0.0/16], serviceCIDRs: [10.96.0.0/12]}\n",
    )
    .await;
    let (code, msg) = error(
        apply(
            &t,
            "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {type: NodePort, ports: [{port: 80, nodePort: 80}]}\n",
        )
        .await,
    );
    assert_eq!(code, ErrorCode::Invalid);
    assert!(
        msg.contains(
            "spec.ports[0].nodePort: 80 is outside the cluster's NodePort range 30000-32767"
        ),
        "{msg}"
    );
}

#[tokio::test]
async fn deleting_a_namespace_deletes_what_is_in_it() {
    let t = api().await;
    apply(&t, APP).await;
    let r = t
        .api
        .handle(Request::Delete {
            targets: vec![
                Target {
                    kind: "namespace".into(),
                    namespace: None,
                    name: "shop".into(),
                },
                Target {
                    kind: "svc".into(),
                    namespace: Some("shop".into()),
                    name: "gone".into(),
                },
            ],
        })
        .await;
    assert_eq!(actions(&r), [Action::Deleted, Action::NotFound]);
    for k in ["pods", "services", "networkpolicies"] {
        assert!(list(&t, k).await.is_empty(), "{k}");
    }
    for (kind, name) in [("ns", "default"), ("nodes", "node-a")] {
        let (code, _) = error(
            t.api
                .handle(Request::Delete {
                    targets: vec![Target {
                        kind: kind.into(),
                        namespace: None,
                        name: name.into(),
                    }],
                })
                .await,
        );
        assert_eq!(code, ErrorCode::Forbidden, "{kind}");
    }
}

#[tokio::test]
async fn describe_adds_what_selects_what() {
    let t = api().await;
    apply(&t, APP).await;
    let facts = |r: Response| match r {
        Response::Description { facts, .. } => facts,
        other => panic!("{other:?}"),
    };
    let d = |kind: &str, name: &str| Request::Describe {
        kind: kind.into(),
        namespace: Some("shop".into()),
        name: name.into(),
    };
    assert_eq!(
        facts(t.api.handle(d("svc", "web")).await),
        [("Pods".to_string(), "web-1".to_string())]
    );
    assert_eq!(
        facts(t.api.handle(d("netpol", "web")).await),
        [("Selected pods".to_string(), "web-1".to_string())]
    );
    assert_eq!(
        facts(t.api.handle(d("po", "web-1")).await),
        [
            ("Services".to_string(), "web".to_string()),
            ("NetworkPolicies".to_string(), "web".to_string())
        ]
    );
    let (code, msg) = error(t.api.handle(d("po", "nope")).await);
    assert_eq!(
        (code, msg.as_str()),
        (
            ErrorCode::NotFound,
            "pods \"nope\" not found in namespace \"shop\""
        )
    );
    let (code, _) = error(t.api.handle(d("deployments", "x")).await);
    assert_eq!(code, ErrorCode::BadRequest);
}

const NET: &str = "apiVersion: ferro-cni.io/v1\nkind: ClusterNetwork\nmetadata: {name: default}\nspec: {podCIDRs: [10.244.0.0/16, fd00:244::/56], serviceCIDRs: [10.96.0.0/24, fd00:96::/120], nodePortRange: 30000-30099, loadBalancerPools: [{name: vnet, cidrs: [10.240.1.0/29, fd00:240::1:0/125]}]}\n";

async fn get_svc(t: &T, ns: &str, name: &str) -> Value {
    match t
        .api
        .handle(Request::Get {
            kind: "svc".into(),
            namespace: Some(ns.into()),
            name: name.into(),
        })
        .await
    {
        Response::Object { object } => object,
        other => panic!("{other:?}"),
    }
}

async fn records(t: &T) -> Vec<String> {
    let mut out = Vec::new();
    for p in [
        ferro_services::alloc::CLUSTER_IPS,
        ferro_services::alloc::NODE_PORTS,
        ferro_services::alloc::LB_IPS,
    ] {
        out.extend(
            t.api
                .store
                .list(p)
                .await
                .unwrap()
                .kvs
                .into_iter()
                .map(|kv| kv.key),
        );
    }
    out
}

#[tokio::test]
async fn services_get_their_addresses_and_ports_allocated_and_keep_them() {
    let t = api().await;
    apply(&t, NET).await;
    let svc = "apiVersion: v1\nkind: Service\nmetadata: {name: lb}\nspec: {type: LoadBalancer, ipFamilyPolicy: PreferDualStack, selector: {app: web}, ports: [{name: a, port: 80}, {name: b, port: 53, protocol: UDP}]}\n";
    let r = apply(&t, svc).await;
    assert_eq!(actions(&r), [Action::Created]);
    let Response::Applied { results, .. } = &r else {
        panic!("{r:?}")
    };
    // The answer names what was allocated: two ClusterIPs, two NodePorts, two addresses.
    let told = results[0].to_string();
    assert_eq!(results[0].allocated.len(), 6, "{told}");
    assert!(
        told.contains(": clusterIP 10.96.0.") && told.contains("nodePort 3"),
        "{told}"
    );
    assert!(
        told.contains("/UDP") && told.contains("loadBalancerIP 10.240.1."),
        "{told}"
    );
    let s = get_svc(&t, "default", "lb").await;
    let ips: Vec<&str> = s["spec"]["clusterIPs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(ips.len(), 2, "{s}");
    assert!(
        ips[0].starts_with("10.96.0.") && ips[1].starts_with("fd00:96::"),
        "{ips:?}"
    );
    assert_eq!(s["spec"]["clusterIP"], ips[0]);
    assert_eq!(s["spec"]["ipFamilies"], json!(["IPv4", "IPv6"]));
    let np: Vec<u64> = s["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["nodePort"].as_u64().unwrap())
        .collect();
    assert!(
        np.iter().all(|p| (30000..=30099).contains(p)) && np[0] != np[1],
        "{np:?}"
    );
    let ingress = s["status"]["loadBalancer"]["ingress"].as_array().unwrap();
    assert_eq!(ingress.len(), 2, "{s}");
    assert!(ingress[0]["ip"].as_str().unwrap().starts_with("10.240.1."));
    assert_eq!(records(&t).await.len(), 6, "{:?}", records(&t).await);
    // Applying the same manifest again changes nothing: the allocations are kept.
    assert_eq!(actions(&apply(&t, svc).await), [Action::Unchanged]);
    assert_eq!(get_svc(&t, "default", "lb").await, s);
    // Back to ClusterIP: the NodePorts and the load-balancer addresses are released.
    let plain = svc.replace("type: LoadBalancer, ", "");
    assert_eq!(actions(&apply(&t, &plain).await), [Action::Configured]);
    let p = get_svc(&t, "default", "lb").await;
    assert_eq!(p["spec"]["clusterIPs"], s["spec"]["clusterIPs"]);
    assert!(p["spec"]["ports"][0].get("nodePort").is_none(), "{p}");
    assert_eq!(records(&t).await.len(), 2, "{:?}", records(&t).await);
    // Deleting it releases the rest.
    t.api
        .handle(Request::Delete {
            targets: vec![Target {
                kind: "svc".into(),
                namespace: None,
                name: "lb".into(),
            }],
        })
        .await;
    assert!(records(&t).await.is_empty(), "{:?}", records(&t).await);
}

#[tokio::test]
async fn given_values_are_checked_and_conflicts_refused_with_the_owner_named() {
    let t = api().await;
    apply(&t, NET).await;
    let one = "apiVersion: v1\nkind: Service\nmetadata: {name: one}\nspec: {type: NodePort, clusterIP: 10.96.0.10, ports: [{port: 80, nodePort: 30010}]}\n";
    assert_eq!(actions(&apply(&t, one).await), [Action::Created]);
    let (code, msg) = error(apply(&t, &one.replace("name: one", "name: two")).await);
    assert_eq!(code, ErrorCode::Invalid);
    assert!(
        msg.contains("spec.clusterIP: 10.96.0.10 is already allocated to service default/one"),
        "{msg}"
    );
    assert!(
        msg.contains("spec.ports[0].nodePort: 30010 is already allocated to service default/one"),
        "{msg}"
    );
    let (_, msg) = error(
        apply(
            &t,
            "apiVersion: v1\nkind: Service\nmetadata: {name: out}\nspec: {clusterIP: 10.97.0.1, ports: [{port: 80}]}\n",
        )
        .await,
    );
    assert!(
        msg.contains("spec.clusterIP: 10.97.0.1 is outside the cluster's service CIDRs"),
        "{msg}"
    );
    let (_, msg) = error(apply(&t, &one.replace("10.96.0.10", "10.96.0.11")).await);
    assert!(
        msg.contains("may not change (the service has 10.96.0.10)"),
        "{msg}"
    );
    // Two services in one apply never share a value.
    let pair = "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {type: NodePort, ports: [{port: 80}]}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: b}\nspec: {type: NodePort, ports: [{port: 80}]}\n";
    apply(&t, pair).await;
    let (a, b) = (
        get_svc(&t, "default", "a").await,
        get_svc(&t, "default", "b").await,
    );
    assert_ne!(a["spec"]["clusterIP"], b["spec"]["clusterIP"]);
    assert_ne!(
        a["spec"]["ports"][0]["nodePort"],
        b["spec"]["ports"][0]["nodePort"]
    );
}

#[tokio::test]
async fn concurrent_applies_never_hand_out_one_address_twice() {
    // Two agents' APIs over one store, applying many services at once: the compares make
    // the losers choose again.
    let t = api().await;
    apply(&t, NET).await;
    let other = Api::new(t.api.store.clone(), "node-b".into(), "embedded".into());
    let mk = |i: usize| {
        Request::Apply {
        documents: docs(&format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: s{i}}}\nspec: {{type: NodePort, ports: [{{port: 80}}]}}\n"
        )),
    }
    };
    let mut tasks = Vec::new();
    for i in 0..40 {
        let api = if i % 2 == 0 {
            t.api.clone()
        } else {
            other.clone()
        };
        let req = mk(i);
        tasks.push(tokio::spawn(async move { api.handle(req).await }));
    }
    for task in tasks {
        let r = task.await.unwrap();
        assert!(matches!(r, Response::Applied { .. }), "{r:?}");
    }
    let svcs = list(&t, "svc").await;
    let ips: BTreeSet<String> = svcs
        .iter()
        .map(|s| s["spec"]["clusterIP"].as_str().unwrap().to_string())
        .collect();
    let ports: BTreeSet<u64> = svcs
        .iter()
        .map(|s| s["spec"]["ports"][0]["nodePort"].as_u64().unwrap())
        .collect();
    assert_eq!((ips.len(), ports.len()), (40, 40));
    assert_eq!(records(&t).await.len(), 80);
}
