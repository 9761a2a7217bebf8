//! The truth-table world and its cases, in the style of the upstream e2e tests and cyclonus:
//! namespaces x, y, z (labelled `ns=<name>`), pods a, b, c in each (labelled `pod=<name>`)
//! spread over two nodes, servers on TCP, UDP (and SCTP, where the kernel has it) ports 80
//! and 81 with named ports `serve-80-tcp`..., plus a port named `http` that is 80 on pods a
//! and b but 81 on pods c.
//!
//! Each [`Case`] is a list of steps: manifests to apply (policies, relabelled pods or
//! namespaces; `{v4:x/b}` and `{v6:x/b}` stand for that pod's addresses) or objects to
//! delete, then the matrices expected, written by hand. The unit tests check the model
//! against these matrices; the end-to-end suites run the same steps against real agents
//! and compare every probed matrix with the model's prediction.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ferro_cluster::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use ferro_cluster::manifest::{admit, parse_documents};
use ferro_cluster::resource::{Attachment, AttachmentSpec};
use ferro_cluster::{Kind, Object};

use crate::model::{Cluster, Key, Proto};

/// The namespaces.
pub const NAMESPACES: [&str; 3] = ["x", "y", "z"];
/// The pods of each namespace.
pub const PODS: [&str; 3] = ["a", "b", "c"];
/// The server ports.
pub const PORTS: [u16; 2] = [80, 81];
/// The probes of every step: each protocol with traffic on each port.
pub const PROBES: [(Proto, u16); 4] = [
    (Proto::Tcp, 80),
    (Proto::Tcp, 81),
    (Proto::Udp, 80),
    (Proto::Udp, 81),
];

/// What every step probes: each of [`PROBES`] over IPv4 then IPv6 (`(proto, port, v6)`).
pub fn probes() -> Vec<(Proto, u16, bool)> {
    [false, true]
        .iter()
        .flat_map(|v6| PROBES.iter().map(move |(p, port)| (*p, *port, *v6)))
        .collect()
}

/// Every pod, in matrix order: x/a, x/b, x/c, y/a ... z/c.
pub fn pods() -> Vec<Key> {
    NAMESPACES
        .iter()
        .flat_map(|ns| PODS.iter().map(move |p| Key::new(*ns, *p)))
        .collect()
}

/// The node (0 or 1) pod `k` runs on: alternating, so that every namespace has pods on both
/// nodes and every pair of pods is covered on one node and across nodes.
pub fn node_of(k: &Key) -> usize {
    let n = NAMESPACES
        .iter()
        .position(|x| **x == *k.namespace)
        .unwrap_or(0);
    let p = PODS.iter().position(|x| **x == *k.name).unwrap_or(0);
    (n + p) % 2
}

/// The manifest of namespace `ns` with its usual label and `extra` ones.
pub fn namespace_manifest(ns: &str, extra: &[(&str, &str)]) -> String {
    let mut labels = format!("ns: {ns}");
    for (k, v) in extra {
        labels.push_str(&format!(", {k}: {v}"));
    }
    format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}, labels: {{{labels}}}}}\n")
}

/// The manifest of pod `ns/pod` with label `pod: <label>` and the world's named ports.
pub fn pod_manifest(ns: &str, pod: &str, label: &str) -> String {
    let http = if pod == "c" { 81 } else { 80 };
    let mut ports = String::new();
    for port in PORTS {
        for proto in ["TCP", "UDP", "SCTP"] {
            ports.push_str(&format!(
                "      - {{name: serve-{port}-{}, containerPort: {port}, protocol: {proto}}}\n",
                proto.to_ascii_lowercase()
            ));
        }
    }
    ports.push_str(&format!(
        "      - {{name: http, containerPort: {http}, protocol: TCP}}\n"
    ));
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {pod}, namespace: {ns}, labels: {{pod: {label}}}}}\n\
         spec:\n  containers:\n    - name: server\n      image: busybox\n      ports:\n{ports}"
    )
}

/// The whole world: three namespaces, nine pods, as one multi-document manifest.
pub fn world_manifest() -> String {
    let mut docs: Vec<String> = NAMESPACES
        .iter()
        .map(|n| namespace_manifest(n, &[]))
        .collect();
    for ns in NAMESPACES {
        for p in PODS {
            docs.push(pod_manifest(ns, p, p));
        }
    }
    docs.join("---\n")
}

/// A NetworkPolicy `ns/name` with `spec` (YAML flow style).
pub fn policy(ns: &str, name: &str, spec: &str) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: {name}, namespace: {ns}}}\nspec: {spec}\n"
    )
}

/// Replaces `{v4:ns/pod}` and `{v6:ns/pod}` in `text` with the pod's address of that
/// family (a documentation address that is nobody's when it has none).
pub fn fill(text: &str, addr: impl Fn(&Key, bool) -> Option<IpAddr>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("{v") {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let (Some(end), true) = (
            tail.find('}'),
            tail[2..].starts_with('4') || tail[2..].starts_with('6'),
        ) else {
            out.push_str("{v");
            rest = &tail[2..];
            continue;
        };
        let v6 = tail.as_bytes()[2] == b'6';
        let key = Key::parse(&tail[4..end]);
        let a = addr(&key, v6).map_or_else(
            || {
                if v6 {
                    "2001:db8::1".to_string()
                } else {
                    "192.0.2.1".to_string()
                }
            },
            |a| a.to_string(),
        );
        out.push_str(&a);
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    out
}

/// One change of a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Apply a manifest (placeholders filled first).
    Apply(String),
    /// Delete an object: kind (`netpol`...), namespace, name.
    Delete(&'static str, &'static str, &'static str),
}

/// A matrix a step expects, written by hand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expect {
    /// The protocol probed.
    pub proto: Proto,
    /// The port.
    pub port: u16,
    /// One row per source pod, in [`pods`] order: `.` allowed, `X` denied.
    pub rows: [&'static str; 9],
}

/// One step of a case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// What the step does, in words.
    pub what: &'static str,
    /// The changes.
    pub actions: Vec<Action>,
    /// The matrices expected afterwards.
    pub expect: Vec<Expect>,
}

/// A case: steps run in order on the world, which is reset afterwards (policies deleted,
/// labels restored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    /// Its name.
    pub name: &'static str,
    /// Its steps.
    pub steps: Vec<Step>,
    /// For SCTP (not probed: no SCTP sockets here): elements the programmed ingress sets of
    /// pod x/a must contain, as `proto . port` (`sctp . 80`).
    pub sctp: Option<&'static str>,
}

const OPEN: [&str; 9] = [
    ".........",
    ".........",
    ".........",
    ".........",
    ".........",
    ".........",
    ".........",
    ".........",
    ".........",
];
/// Nothing reaches x/a but itself.
const XA_CLOSED: [&str; 9] = [
    ".........",
    "X........",
    "X........",
    "X........",
    "X........",
    "X........",
    "X........",
    "X........",
    "X........",
];
/// x/a is reached from namespace y only.
const XA_FROM_Y: [&str; 9] = [
    ".........",
    "X........",
    "X........",
    ".........",
    ".........",
    ".........",
    "X........",
    "X........",
    "X........",
];
/// x/a is reached from x/b only.
const XA_FROM_XB: [&str; 9] = [
    ".........",
    ".........",
    "X........",
    "X........",
    "X........",
    "X........",
    "X........",
    "X........",
    "X........",
];
/// x/a is reached from x/b and x/c.
const XA_FROM_X: [&str; 9] = [
    ".........",
    ".........",
    ".........",
    "X........",
    "X........",
    "X........",
    "X........",
    "X........",
    "X........",
];
/// Nothing reaches namespace x from outside a pod itself.
const X_CLOSED_IN: [&str; 9] = [
    ".XX......",
    "X.X......",
    "XX.......",
    "XXX......",
    "XXX......",
    "XXX......",
    "XXX......",
    "XXX......",
    "XXX......",
];
/// Pods of x reach nothing but themselves.
const X_CLOSED_OUT: [&str; 9] = [
    ".XXXXXXXX",
    "X.XXXXXXX",
    "XX.XXXXXX",
    ".........",
    ".........",
    ".........",
    ".........",
    ".........",
    ".........",
];

fn tcp(port: u16, rows: [&'static str; 9]) -> Expect {
    Expect {
        proto: Proto::Tcp,
        port,
        rows,
    }
}

fn udp(port: u16, rows: [&'static str; 9]) -> Expect {
    Expect {
        proto: Proto::Udp,
        port,
        rows,
    }
}

fn apply(m: String) -> Action {
    Action::Apply(m)
}

fn step(what: &'static str, actions: Vec<Action>, expect: Vec<Expect>) -> Step {
    Step {
        what,
        actions,
        expect,
    }
}

fn case(name: &'static str, steps: Vec<Step>) -> Case {
    Case {
        name,
        steps,
        sctp: None,
    }
}

/// A one-step case: apply `manifests`, expect `expect`.
fn simple(name: &'static str, manifests: Vec<String>, expect: Vec<Expect>) -> Case {
    case(
        name,
        vec![step(
            name,
            manifests.into_iter().map(apply).collect(),
            expect,
        )],
    )
}

const A: &str = "{matchLabels: {pod: a}}";

/// Every case.
pub fn cases() -> Vec<Case> {
    let mut v = vec![
        simple(
            "deny all ingress in a namespace",
            vec![policy("x", "deny-ingress", "{podSelector: {}, policyTypes: [Ingress]}")],
            vec![tcp(80, X_CLOSED_IN), udp(81, X_CLOSED_IN)],
        ),
        simple(
            "deny all ingress and egress in a namespace",
            vec![policy(
                "x",
                "deny-all",
                "{podSelector: {}, policyTypes: [Ingress, Egress]}",
            )],
            vec![tcp(
                80,
                [".XXXXXXXX", "X.XXXXXXX", "XX.XXXXXX", "XXX......", "XXX......", "XXX......", "XXX......", "XXX......", "XXX......"],
            )],
        ),
        simple(
            "allow a pod from a pod of its namespace",
            vec![policy(
                "x",
                "a-from-b",
                &format!("{{podSelector: {A}, ingress: [{{from: [{{podSelector: {{matchLabels: {{pod: b}}}}}}]}}]}}"),
            )],
            vec![tcp(80, XA_FROM_XB), udp(81, XA_FROM_XB)],
        ),
        simple(
            "allow a pod from another namespace by its name label",
            vec![policy(
                "x",
                "a-from-y",
                &format!("{{podSelector: {A}, ingress: [{{from: [{{namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: y}}}}}}]}}]}}"),
            )],
            vec![tcp(80, XA_FROM_Y)],
        ),
        simple(
            "allow by namespace AND pod in one peer",
            vec![policy(
                "x",
                "a-from-b-elsewhere",
                &format!("{{podSelector: {A}, ingress: [{{from: [{{namespaceSelector: {{matchExpressions: [{{key: ns, operator: NotIn, values: [x]}}]}}, podSelector: {{matchLabels: {{pod: b}}}}}}]}}]}}"),
            )],
            vec![tcp(
                80,
                [".........", "X........", "X........", "X........", ".........", "X........", "X........", ".........", "X........"],
            )],
        ),
        simple(
            "allow by namespace OR pod in two peers",
            vec![policy(
                "x",
                "a-from-elsewhere-or-b",
                &format!("{{podSelector: {A}, ingress: [{{from: [{{namespaceSelector: {{matchExpressions: [{{key: ns, operator: NotIn, values: [x]}}]}}}}, {{podSelector: {{matchLabels: {{pod: b}}}}}}]}}]}}"),
            )],
            vec![tcp(
                80,
                [".........", ".........", "X........", ".........", ".........", ".........", ".........", ".........", "........."],
            )],
        ),
        simple(
            "pod expressions (In) in a labelled namespace",
            vec![policy(
                "x",
                "a-from-y-b-c",
                &format!("{{podSelector: {A}, ingress: [{{from: [{{namespaceSelector: {{matchLabels: {{ns: y}}}}, podSelector: {{matchExpressions: [{{key: pod, operator: In, values: [b, c]}}]}}}}]}}]}}"),
            )],
            vec![tcp(
                80,
                [".........", "X........", "X........", "X........", ".........", ".........", "X........", "X........", "X........"],
            )],
        ),
        simple(
            "two pod peers of one rule",
            vec![policy(
                "x",
                "a-from-b-and-c",
                &format!("{{podSelector: {A}, ingress: [{{from: [{{podSelector: {{matchLabels: {{pod: b}}}}}}, {{podSelector: {{matchLabels: {{pod: c}}}}}}]}}]}}"),
            )],
            vec![tcp(80, XA_FROM_X)],
        ),
        simple(
            "a numbered port from one namespace",
            vec![policy(
                "x",
                "a-81-from-y",
                &format!("{{podSelector: {A}, ingress: [{{from: [{{namespaceSelector: {{matchLabels: {{ns: y}}}}}}], ports: [{{port: 81, protocol: TCP}}]}}]}}"),
            )],
            vec![tcp(81, XA_FROM_Y), tcp(80, XA_CLOSED), udp(81, XA_CLOSED)],
        ),
        case(
            "stacked policies open one port each",
            vec![
                step(
                    "81 from y",
                    vec![apply(policy(
                        "x",
                        "a-81-from-y",
                        &format!("{{podSelector: {A}, ingress: [{{from: [{{namespaceSelector: {{matchLabels: {{ns: y}}}}}}], ports: [{{port: 81}}]}}]}}"),
                    ))],
                    vec![tcp(81, XA_FROM_Y), tcp(80, XA_CLOSED)],
                ),
                step(
                    "and 80 from y",
                    vec![apply(policy(
                        "x",
                        "a-80-from-y",
                        &format!("{{podSelector: {A}, ingress: [{{from: [{{namespaceSelector: {{matchLabels: {{ns: y}}}}}}], ports: [{{port: 80}}]}}]}}"),
                    ))],
                    vec![tcp(81, XA_FROM_Y), tcp(80, XA_FROM_Y)],
                ),
            ],
        ),
        simple(
            "an empty rule allows everything",
            vec![policy("x", "allow-all", "{podSelector: {}, ingress: [{}]}")],
            vec![tcp(80, OPEN), udp(81, OPEN)],
        ),
        simple(
            "a named port for a whole namespace",
            vec![policy(
                "x",
                "only-serve-81",
                "{podSelector: {}, ingress: [{ports: [{port: serve-81-tcp}]}]}",
            )],
            vec![tcp(81, OPEN), tcp(80, X_CLOSED_IN), udp(81, X_CLOSED_IN)],
        ),
        simple(
            "one port name, different numbers on different pods",
            vec![policy(
                "x",
                "only-http",
                "{podSelector: {}, ingress: [{ports: [{port: http}]}]}",
            )],
            vec![
                tcp(
                    80,
                    ["..X......", "..X......", ".........", "..X......", "..X......", "..X......", "..X......", "..X......", "..X......"],
                ),
                tcp(
                    81,
                    [".X.......", "X........", "XX.......", "XX.......", "XX.......", "XX.......", "XX.......", "XX.......", "XX......."],
                ),
            ],
        ),
        simple(
            "egress on a named port only",
            vec![policy(
                "x",
                "egress-serve-80",
                "{podSelector: {}, policyTypes: [Egress], egress: [{ports: [{port: serve-80-tcp}]}]}",
            )],
            vec![tcp(80, OPEN), tcp(81, X_CLOSED_OUT), udp(80, X_CLOSED_OUT)],
        ),
        simple(
            "egress to one namespace",
            vec![policy(
                "x",
                "a-to-z",
                &format!("{{podSelector: {A}, policyTypes: [Egress], egress: [{{to: [{{namespaceSelector: {{matchLabels: {{ns: z}}}}}}]}}]}}"),
            )],
            vec![tcp(
                80,
                [".XXXXX...", ".........", ".........", ".........", ".........", ".........", ".........", ".........", "........."],
            )],
        ),
        simple(
            "ingress and egress in one policy",
            vec![policy(
                "x",
                "a-both",
                &format!("{{podSelector: {A}, policyTypes: [Ingress, Egress], ingress: [{{from: [{{podSelector: {{matchLabels: {{pod: b}}}}}}]}}], egress: [{{to: [{{namespaceSelector: {{matchLabels: {{ns: y}}}}}}]}}]}}"),
            )],
            vec![tcp(
                80,
                [".XX...XXX", ".........", "X........", "X........", "X........", "X........", "X........", "X........", "X........"],
            )],
        ),
        simple(
            "egress to an address block",
            vec![policy(
                "x",
                "a-to-yb",
                &format!("{{podSelector: {A}, policyTypes: [Egress], egress: [{{to: [{{ipBlock: {{cidr: \"{{v4:y/b}}/32\"}}}}, {{ipBlock: {{cidr: \"{{v6:y/b}}/128\"}}}}]}}]}}"),
            )],
            vec![tcp(
                80,
                [".XXX.XXXX", ".........", ".........", ".........", ".........", ".........", ".........", ".........", "........."],
            )],
        ),
        simple(
            "egress to a block with an exception",
            vec![policy(
                "x",
                "a-to-all-but-xb",
                &format!("{{podSelector: {A}, policyTypes: [Egress], egress: [{{to: [{{ipBlock: {{cidr: 0.0.0.0/0, except: [\"{{v4:x/b}}/32\"]}}}}, {{ipBlock: {{cidr: \"::/0\", except: [\"{{v6:x/b}}/128\"]}}}}]}}]}}"),
            )],
            vec![tcp(
                80,
                [".X.......", ".........", ".........", ".........", ".........", ".........", ".........", ".........", "........."],
            )],
        ),
        simple(
            "ingress from a block with an exception",
            vec![policy(
                "x",
                "a-from-all-but-ya",
                &format!("{{podSelector: {A}, ingress: [{{from: [{{ipBlock: {{cidr: 0.0.0.0/0, except: [\"{{v4:y/a}}/32\"]}}}}, {{ipBlock: {{cidr: \"::/0\", except: [\"{{v6:y/a}}/128\"]}}}}]}}]}}"),
            )],
            vec![tcp(
                80,
                [".........", ".........", ".........", "X........", ".........", ".........", ".........", ".........", "........."],
            )],
        ),
        case(
            "an address in an exception allowed by another policy",
            vec![
                step(
                    "everything but y/b",
                    vec![apply(policy(
                        "x",
                        "a-to-all-but-yb",
                        &format!("{{podSelector: {A}, policyTypes: [Egress], egress: [{{to: [{{ipBlock: {{cidr: 0.0.0.0/0, except: [\"{{v4:y/b}}/32\"]}}}}, {{ipBlock: {{cidr: \"::/0\", except: [\"{{v6:y/b}}/128\"]}}}}]}}]}}"),
                    ))],
                    vec![tcp(
                        80,
                        ["....X....", ".........", ".........", ".........", ".........", ".........", ".........", ".........", "........."],
                    )],
                ),
                step(
                    "and y/b by another policy",
                    vec![apply(policy(
                        "x",
                        "a-to-yb",
                        &format!("{{podSelector: {A}, policyTypes: [Egress], egress: [{{to: [{{ipBlock: {{cidr: \"{{v4:y/b}}/32\"}}}}, {{ipBlock: {{cidr: \"{{v6:y/b}}/128\"}}}}]}}]}}"),
                    ))],
                    vec![tcp(80, OPEN)],
                ),
            ],
        ),
        case(
            "relabelling a pod",
            vec![
                step(
                    "x/a from pod=b",
                    vec![apply(policy(
                        "x",
                        "a-from-b",
                        &format!("{{podSelector: {A}, ingress: [{{from: [{{podSelector: {{matchLabels: {{pod: b}}}}}}]}}]}}"),
                    ))],
                    vec![tcp(80, XA_FROM_XB)],
                ),
                step(
                    "x/c labelled pod=b",
                    vec![apply(pod_manifest("x", "c", "b"))],
                    vec![tcp(80, XA_FROM_X)],
                ),
                step(
                    "x/c labelled back",
                    vec![apply(pod_manifest("x", "c", "c"))],
                    vec![tcp(80, XA_FROM_XB)],
                ),
            ],
        ),
        case(
            "relabelling a namespace",
            vec![
                step(
                    "x/a from team=blue namespaces",
                    vec![apply(policy(
                        "x",
                        "a-from-blue",
                        &format!("{{podSelector: {A}, ingress: [{{from: [{{namespaceSelector: {{matchLabels: {{team: blue}}}}}}]}}]}}"),
                    ))],
                    vec![tcp(80, XA_CLOSED)],
                ),
                step(
                    "y labelled team=blue",
                    vec![apply(namespace_manifest("y", &[("team", "blue")]))],
                    vec![tcp(80, XA_FROM_Y)],
                ),
                step(
                    "the label removed",
                    vec![apply(namespace_manifest("y", &[]))],
                    vec![tcp(80, XA_CLOSED)],
                ),
            ],
        ),
        case(
            "updating a policy",
            vec![
                step(
                    "x/a from pod=b",
                    vec![apply(policy(
                        "x",
                        "a-from",
                        &format!("{{podSelector: {A}, ingress: [{{from: [{{podSelector: {{matchLabels: {{pod: b}}}}}}]}}]}}"),
                    ))],
                    vec![tcp(80, XA_FROM_XB)],
                ),
                step(
                    "changed to pod=c",
                    vec![apply(policy(
                        "x",
                        "a-from",
                        &format!("{{podSelector: {A}, ingress: [{{from: [{{podSelector: {{matchLabels: {{pod: c}}}}}}]}}]}}"),
                    ))],
                    vec![tcp(
                        80,
                        [".........", "X........", ".........", "X........", "X........", "X........", "X........", "X........", "X........"],
                    )],
                ),
            ],
        ),
        case(
            "deleting a policy restores connectivity",
            vec![
                step(
                    "deny all ingress in x",
                    vec![apply(policy(
                        "x",
                        "deny-ingress",
                        "{podSelector: {}, policyTypes: [Ingress]}",
                    ))],
                    vec![tcp(80, X_CLOSED_IN)],
                ),
                step(
                    "deleted",
                    vec![Action::Delete("networkpolicy", "x", "deny-ingress")],
                    vec![tcp(80, OPEN), udp(80, OPEN)],
                ),
            ],
        ),
        simple(
            "UDP only",
            vec![policy(
                "x",
                "a-udp-80",
                &format!("{{podSelector: {A}, ingress: [{{ports: [{{protocol: UDP, port: 80}}]}}]}}"),
            )],
            vec![udp(80, OPEN), tcp(80, XA_CLOSED), udp(81, XA_CLOSED)],
        ),
        simple(
            "a port range (endPort)",
            vec![policy(
                "x",
                "a-80-81",
                &format!("{{podSelector: {A}, ingress: [{{ports: [{{protocol: TCP, port: 80, endPort: 81}}]}}]}}"),
            )],
            vec![tcp(80, OPEN), tcp(81, OPEN), udp(80, XA_CLOSED)],
        ),
        simple(
            "a protocol without a port",
            vec![policy(
                "x",
                "a-tcp",
                &format!("{{podSelector: {A}, ingress: [{{ports: [{{protocol: TCP}}]}}]}}"),
            )],
            vec![tcp(80, OPEN), tcp(81, OPEN), udp(81, XA_CLOSED)],
        ),
        simple(
            "an allow-all ingress policy beside a narrow one",
            vec![
                policy(
                    "x",
                    "a-80-from-b",
                    &format!("{{podSelector: {A}, ingress: [{{from: [{{podSelector: {{matchLabels: {{pod: b}}}}}}], ports: [{{port: 80}}]}}]}}"),
                ),
                policy("x", "a-all", &format!("{{podSelector: {A}, ingress: [{{}}]}}")),
            ],
            vec![tcp(80, OPEN), udp(81, OPEN)],
        ),
        simple(
            "an allow-all egress policy beside a narrow one",
            vec![
                policy(
                    "x",
                    "a-to-y",
                    &format!("{{podSelector: {A}, policyTypes: [Egress], egress: [{{to: [{{namespaceSelector: {{matchLabels: {{ns: y}}}}}}]}}]}}"),
                ),
                policy(
                    "x",
                    "a-to-all",
                    &format!("{{podSelector: {A}, policyTypes: [Egress], egress: [{{}}]}}"),
                ),
            ],
            vec![tcp(80, OPEN)],
        ),
        simple(
            "the client's egress denies what the server's ingress allows",
            vec![
                policy("x", "a-no-egress", &format!("{{podSelector: {A}, policyTypes: [Egress]}}")),
                policy("y", "y-all-in", "{podSelector: {}, ingress: [{}]}"),
            ],
            vec![tcp(
                80,
                [".XXXXXXXX", ".........", ".........", ".........", ".........", ".........", ".........", ".........", "........."],
            )],
        ),
        simple(
            "deny all egress of a namespace",
            vec![policy("x", "deny-egress", "{podSelector: {}, policyTypes: [Egress]}")],
            vec![tcp(80, X_CLOSED_OUT), udp(81, X_CLOSED_OUT)],
        ),
        simple(
            "namespace expressions on the name label",
            vec![policy(
                "x",
                "a-from-y-expr",
                &format!("{{podSelector: {A}, ingress: [{{from: [{{namespaceSelector: {{matchExpressions: [{{key: kubernetes.io/metadata.name, operator: In, values: [y]}}]}}}}]}}]}}"),
            )],
            vec![tcp(80, XA_FROM_Y)],
        ),
        case(
            "Exists and DoesNotExist",
            vec![
                step(
                    "z labelled team=red; x/a from pods with a pod label in namespaces without team",
                    vec![
                        apply(namespace_manifest("z", &[("team", "red")])),
                        apply(policy(
                            "x",
                            "a-from-teamless",
                            &format!("{{podSelector: {A}, ingress: [{{from: [{{namespaceSelector: {{matchExpressions: [{{key: team, operator: DoesNotExist}}]}}, podSelector: {{matchExpressions: [{{key: pod, operator: Exists}}]}}}}]}}]}}"),
                        )),
                    ],
                    vec![tcp(
                        80,
                        [".........", ".........", ".........", ".........", ".........", ".........", "X........", "X........", "X........"],
                    )],
                ),
                step(
                    "z without team",
                    vec![apply(namespace_manifest("z", &[]))],
                    vec![tcp(80, OPEN)],
                ),
            ],
        ),
    ];
    let mut sctp = simple(
        "SCTP is not TCP",
        vec![policy(
            "x",
            "a-sctp-80",
            &format!("{{podSelector: {A}, ingress: [{{ports: [{{protocol: SCTP, port: 80}}]}}]}}"),
        )],
        vec![tcp(80, XA_CLOSED), udp(80, XA_CLOSED)],
    );
    sctp.sctp = Some("sctp . 80");
    v.push(sctp);
    v
}

/// The node names of the world.
pub const NODES: [&str; 2] = ["node-a", "node-b"];

/// The addresses the model world gives pod `k` (when no real ones are at hand):
/// `10.24<node>.0.<n>` and `fd00:24<node>::<n>`, `n` from 10 in matrix order.
pub fn model_addrs(k: &Key) -> Vec<IpAddr> {
    let i = pods().iter().position(|p| p == k).unwrap_or(0) + 10;
    let node = node_of(k);
    [format!("10.24{node}.0.{i}"), format!("fd00:24{node}::{i}")]
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// The world as objects, changed step by step: what an agent would hold in its cache.
#[derive(Debug, Clone)]
pub struct Scenario {
    objects: BTreeMap<(Kind, String, String), Object>,
    addrs: BTreeMap<Key, Vec<IpAddr>>,
}

impl Scenario {
    /// The world's namespaces and pods, each pod attached on its node ([`NODES`]) with
    /// `addrs(pod)`.
    pub fn new(addrs: impl Fn(&Key) -> Vec<IpAddr>) -> Scenario {
        let mut s = Scenario {
            objects: BTreeMap::new(),
            addrs: pods().iter().map(|k| (k.clone(), addrs(k))).collect(),
        };
        s.apply_text(&world_manifest())
            .unwrap_or_else(|e| panic!("the world's manifest: {e}"));
        for k in pods() {
            let a = s.attachment(&k, NODES[node_of(&k)]);
            s.put(Object::Attachment(Box::new(a)));
        }
        s
    }

    /// An attachment of pod `k` on `node` with its addresses.
    fn attachment(&self, k: &Key, node: &str) -> Attachment {
        let prefix = |a: &IpAddr| if a.is_ipv6() { 128 } else { 32 };
        Attachment {
            api_version: crate::model::FERRO_API.into(),
            kind: "Attachment".into(),
            metadata: ObjectMeta {
                name: Some(format!("{}-eth0", k.name)),
                namespace: Some(k.namespace.to_string()),
                ..Default::default()
            },
            spec: AttachmentSpec {
                node: node.into(),
                pod: Some(k.name.to_string()),
                interface: "eth0".into(),
                addresses: self.addrs[k]
                    .iter()
                    .map(|a| format!("{a}/{}", prefix(a)))
                    .collect(),
                ..Default::default()
            },
        }
    }

    fn put(&mut self, o: Object) {
        self.objects.insert(
            (
                o.kind(),
                o.namespace().unwrap_or_default().to_string(),
                o.name().to_string(),
            ),
            o,
        );
    }

    /// Applies a manifest (checked as the agent checks it).
    pub fn apply_text(&mut self, text: &str) -> Result<(), String> {
        for d in parse_documents("case", text).map_err(|e| e.to_string())? {
            let o = admit(&d).map_err(|e| e.to_string())?.object;
            self.put(o);
        }
        Ok(())
    }

    /// Runs one action of a step.
    pub fn run(&mut self, a: &Action) -> Result<(), String> {
        match a {
            Action::Apply(m) => self.apply_text(&self.fill(m)),
            Action::Delete(kind, ns, name) => {
                let k = Kind::from_cli(kind)?;
                self.objects
                    .remove(&(k, ns.to_string(), name.to_string()))
                    .map(|_| ())
                    .ok_or_else(|| format!("{kind} {ns}/{name} is not there"))
            }
        }
    }

    /// `text` with the pods' addresses filled in.
    pub fn fill(&self, text: &str) -> String {
        fill(text, |k, v6| {
            self.addrs
                .get(k)?
                .iter()
                .copied()
                .find(|a| a.is_ipv6() == v6)
        })
    }

    /// Pod `k` starts on `node` with `addrs` (its `Pod` is applied with label `pod=<name>`).
    pub fn start_pod(&mut self, k: &Key, node: &str, addrs: Vec<IpAddr>) {
        self.apply_text(&pod_manifest(&k.namespace, &k.name, &k.name))
            .unwrap_or_else(|e| panic!("{e}"));
        self.addrs.insert(k.clone(), addrs);
        let a = self.attachment(k, node);
        self.put(Object::Attachment(Box::new(a)));
    }

    /// The pods' addresses.
    pub fn addrs(&self, k: &Key) -> &[IpAddr] {
        self.addrs.get(k).map_or(&[], Vec::as_slice)
    }

    /// The cluster as policy sees it now.
    pub fn cluster(&self) -> Cluster {
        Cluster::from_objects(self.objects.values())
    }
}
