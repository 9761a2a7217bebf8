use super::*;
use crate::resource::Object;

fn one(text: &str) -> Result<Applicable, ManifestError> {
    let docs = parse_documents("app.yaml", text).unwrap();
    assert_eq!(docs.len(), 1, "{docs:?}");
    admit(&docs[0])
}

fn err(text: &str) -> String {
    one(text).unwrap_err().to_string()
}

const APP: &str = "\
apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
# a comment between documents
apiVersion: v1
kind: Pod
metadata:
  name: web-1
  namespace: shop
  labels: {app: web}
spec:
  containers:
  - name: nginx
    image: nginx
    ports:
    - {name: http, containerPort: 80}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: http}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-web, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Ingress]
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: shop}}
    ports: [{port: http}]
";

#[test]
fn a_multi_document_manifest_is_admitted_whole() {
    let all = admit_all("app.yaml", APP).unwrap();
    let kinds: Vec<String> = all.iter().map(|a| a.object.describe()).collect();
    assert_eq!(
        kinds,
        [
            "Namespace shop",
            "Pod shop/web-1",
            "Service shop/web",
            "NetworkPolicy shop/allow-web"
        ]
    );
    assert_eq!(all[2].origin.to_string(), "app.yaml: document 3");
    assert_eq!(all[1].object.key(), "/ferro-cni/v1/pods/shop/web-1");
    let Object::Namespace(ns) = &all[0].object else {
        panic!()
    };
    assert_eq!(
        ns.metadata.labels.as_ref().unwrap()["kubernetes.io/metadata.name"],
        "shop",
        "namespaces carry their name as a label"
    );
}

#[test]
fn json_streams_and_lists_are_manifests_too() {
    let text = r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"a"}}
{"apiVersion":"v1","kind":"List","items":[
  {"apiVersion":"v1","kind":"Namespace","metadata":{"name":"b"}},
  {"apiVersion":"v1","kind":"Namespace","metadata":{"name":"c","labels":{"x":"-bad"}}}]}"#;
    let errors = admit_all("ns.json", text).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert_eq!(
        errors[0].to_string(),
        "ns.json: document 2, item 2 (Namespace c): metadata.labels.x: label value \"-bad\" \
         must be empty or at most 63 letters, digits, '-', '_' or '.', starting and ending \
         with a letter or digit"
    );
    let docs = parse_documents("-", "{\"a\":").unwrap_err();
    assert!(
        docs.to_string().starts_with("<stdin>: invalid JSON"),
        "{docs}"
    );
}

#[test]
fn unknown_fields_are_named_by_their_full_path() {
    let e = err("apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p, namespace: default, labelz: {}}
spec:
  podSelectr: {}
  podSelector: {}
  ingress:
  - from: [{podSelector: {matchLabel: {a: b}}}]
");
    assert_eq!(
        e,
        "app.yaml: document 1 (NetworkPolicy default/p): unknown field metadata.labelz; \
         unknown field spec.ingress[0].from[0].podSelector.matchLabel; unknown field \
         spec.podSelectr"
    );
    let e = err("apiVersion: ferro-cni.io/v1
kind: ClusterNetwork
metadata: {name: default}
spec: {podCIDRs: [10.244.0.0/16], ipamBlockSize: {ipv4: 26, ipv5: 3}}
");
    assert!(e.ends_with("unknown field spec.ipamBlockSize.ipv5"), "{e}");
    // null for an unknown field says nothing: tolerated (Kubernetes drops nulls too)
    one("apiVersion: v1\nkind: Namespace\nmetadata: {name: n, whatever: null}\n").unwrap();
}

#[test]
fn wrong_types_are_named_by_their_path() {
    let e = err("apiVersion: v1
kind: Service
metadata: {name: s}
spec:
  ports: [{port: 80}, {port: eighty, name: b}]
");
    assert!(
        e.starts_with(
            "app.yaml: document 1 (Service s): spec.ports[1].port: invalid type: string \"eighty\""
        ),
        "{e}"
    );
}

#[test]
fn kinds_are_checked() {
    let e = err("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n");
    assert!(
        e.starts_with("app.yaml: document 1 (Deployment d): unknown kind \"Deployment\""),
        "{e}"
    );
    let e = err("apiVersion: v1\nkind: NetworkPolicy\nmetadata: {name: d}\n");
    assert!(
        e.contains("apiVersion: NetworkPolicy is networking.k8s.io/v1"),
        "{e}"
    );
    let e = err("kind: Pod\nmetadata: {name: d}\n");
    assert!(e.ends_with("apiVersion: missing"), "{e}");
    let e = err("- 1\n- 2\n");
    assert!(
        e.ends_with("a document must be a mapping (apiVersion, kind, metadata...), not a list"),
        "{e}"
    );
    for system in ["Node", "IPAMBlock", "Attachment"] {
        let e = err(&format!(
            "apiVersion: ferro-cni.io/v1\nkind: {system}\nmetadata: {{name: x}}\n"
        ));
        assert!(
            e.contains(&format!("{system} is written by the cluster itself")),
            "{e}"
        );
    }
}

#[test]
fn yaml_syntax_errors_say_where() {
    let e = parse_documents("bad.yaml", "a: 1\n  b: 2\n").unwrap_err();
    assert_eq!(
        e.to_string(),
        "bad.yaml: invalid YAML: line 2 column 4: mapping values are not allowed in this context"
    );
}

#[test]
fn normalization_defaults_the_namespace_and_drops_server_fields() {
    let a = one("apiVersion: v1
kind: Pod
metadata:
  name: p
  uid: 5d2c
  resourceVersion: \"42\"
  creationTimestamp: \"2024-01-01T00:00:00Z\"
spec: {containers: [{name: c}]}
status: {phase: Running}
")
    .unwrap();
    assert_eq!(a.precondition, Some(42));
    assert_eq!(a.object.namespace(), Some("default"));
    let v = a.object.to_value();
    assert_eq!(
        v["metadata"],
        serde_json::json!({"name": "p", "namespace": "default"})
    );
    assert!(v.get("status").is_none());
    let e = err("apiVersion: v1\nkind: Namespace\nmetadata: {name: n, namespace: x}\n");
    assert!(
        e.ends_with("metadata.namespace: Namespace is cluster-scoped: remove metadata.namespace"),
        "{e}"
    );
    let e = err("apiVersion: v1\nkind: Namespace\nmetadata: {generateName: n-}\n");
    assert!(
        e.ends_with("metadata.generateName is not supported: give metadata.name"),
        "{e}"
    );
    let e = err("apiVersion: v1\nkind: Namespace\nmetadata: {name: n, resourceVersion: abc}\n");
    assert!(e.contains("metadata.resourceVersion: \"abc\""), "{e}");
}

#[test]
fn meaning_is_checked_with_every_problem_reported() {
    let e = err("apiVersion: v1
kind: Pod
metadata: {name: Web_1, labels: {app: -x}}
spec:
  containers:
  - name: a
    ports:
    - {containerPort: 0, protocol: ICMP, name: http}
    - {containerPort: 80, name: http}
  - name: a
");
    for want in [
        "metadata.name: \"Web_1\" is not a DNS-1123 subdomain",
        "metadata.labels.app: label value \"-x\"",
        "spec.containers[0].ports[0].containerPort: 0 is not a port (1-65535)",
        "spec.containers[0].ports[0].protocol: \"ICMP\" is not one of TCP, UDP, SCTP",
        "spec.containers[0].ports[1].name: \"http\" is used twice in the pod",
        "spec.containers[1].name: \"a\" is used twice",
    ] {
        assert!(e.contains(want), "missing {want:?} in {e}");
    }

    let e = err("apiVersion: v1
kind: Service
metadata: {name: 1svc}
spec:
  type: NodePrt
  clusterIP: 10.96.0.300
  ports: [{port: 80, targetPort: 70000}, {port: 80, name: b, nodePort: 30080}]
  sessionAffinity: ClientIP
  sessionAffinityConfig: {clientIP: {timeoutSeconds: 0}}
");
    for want in [
        "metadata.name: \"1svc\" must start with a lower-case letter",
        "spec.type: \"NodePrt\" is not one of ClusterIP, NodePort, LoadBalancer, ExternalName",
        "spec.ports[0].name: needed when a service has several ports",
        "spec.ports[0].targetPort: 70000 is not a port",
        "spec.ports[1]: port 80 TCP is given twice",
        "spec.clusterIP: \"10.96.0.300\" is not an IP address",
        "spec.sessionAffinityConfig.clientIP.timeoutSeconds: 0 is not between 1 and 86400",
    ] {
        assert!(e.contains(want), "missing {want:?} in {e}");
    }

    let e = err("apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p}
spec:
  podSelector: {matchExpressions: [{key: app, operator: In}]}
  policyTypes: [Ingress, Sideways]
  ingress:
  - from:
    - ipBlock: {cidr: 10.0.0.0/8, except: [192.168.0.0/16, 10.0.0.0/8]}
    - ipBlock: {cidr: 10.0.0.1/8}
      podSelector: {}
    - {}
    ports: [{port: http, endPort: 90}, {port: 100, endPort: 90}]
");
    for want in [
        "spec.podSelector.matchExpressions[0].values: In needs at least one value",
        "spec.policyTypes[1]: \"Sideways\" is not one of Ingress, Egress",
        "spec.ingress[0].from[0].ipBlock.except[0]: 192.168.0.0/16 is not strictly inside 10.0.0.0/8",
        "spec.ingress[0].from[0].ipBlock.except[1]: 10.0.0.0/8 is not strictly inside 10.0.0.0/8",
        "spec.ingress[0].from[1].ipBlock: cannot be combined",
        "spec.ingress[0].from[2]: a peer needs podSelector, namespaceSelector or ipBlock",
        "spec.ingress[0].ports[0].endPort: needs a numeric port",
        "spec.ingress[0].ports[1].endPort: 90 is below port 100",
    ] {
        assert!(e.contains(want), "missing {want:?} in {e}");
    }

    let e = err("apiVersion: ferro-cni.io/v1
kind: ClusterNetwork
metadata: {name: other}
spec: {podCIDRs: [10.244.0.0/16]}
");
    assert!(
        e.contains("the cluster has one ClusterNetwork, named \"default\""),
        "{e}"
    );
}

#[test]
fn services_are_checked_against_the_cluster() {
    use crate::resource::ClusterNetworkSpec;
    let settings = ClusterNetworkSpec {
        pod_cidrs: Some(vec!["10.244.0.0/16".into()]),
        service_cidrs: Some(vec!["10.96.0.0/12".into()]),
        ..Default::default()
    }
    .settings()
    .unwrap();
    let a = one("apiVersion: v1
kind: Service
metadata: {name: s}
spec:
  type: LoadBalancer
  clusterIP: 10.200.0.1
  loadBalancerIP: 192.0.2.1
  ports: [{port: 80, nodePort: 8080}]
")
    .unwrap();
    let Object::Service(s) = &a.object else {
        panic!()
    };
    let e = crate::validate::service_in_cluster(s, &settings);
    assert_eq!(
        e,
        [
            "spec.ports[0].nodePort: 8080 is outside the cluster's NodePort range 30000-32767",
            "spec.clusterIP: 10.200.0.1 is outside the cluster's service CIDRs (10.96.0.0/12)",
            "spec.loadBalancerIP: 192.0.2.1 is in no load-balancer pool of the cluster",
        ]
    );
}

#[test]
fn unknown_fields_compares_given_with_understood() {
    use serde_json::json;
    let given = json!({"a": 1, "b": {"c": [ {"d": 1, "e": 2} ]}, "n": null});
    let understood = json!({"a": 1, "b": {"c": [ {"d": 1} ]}});
    assert_eq!(unknown_fields(&given, &understood), ["b.c[0].e"]);
}

#[test]
fn yaml_1_2_scalars_keep_names_as_strings() {
    let a = one("apiVersion: v1\nkind: Namespace\nmetadata: {name: n, labels: {on: yes, mode: '0755', z: 0755}}\n")
        .unwrap();
    assert_eq!(a.object.name(), "n");
    let l = a.object.labels();
    assert_eq!(
        (l["on"].as_str(), l["mode"].as_str(), l["z"].as_str()),
        ("yes", "0755", "0755")
    );
}
