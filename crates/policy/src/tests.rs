//! The model against the hand-written truth tables of every case, the node's sets against
//! the model, and the ruleset's batches against a model of the kernel's table.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crate::cases::{self, Action, Case, Scenario, NODES};
use crate::decide::{decide, explain};
use crate::matrix::{compare, Matrix};
use crate::model::Key;
use crate::node::node_policy;
use crate::ruleset::{self, Ruleset};

fn addrs_of(k: &Key) -> (IpAddr, IpAddr) {
    let a = cases::model_addrs(k);
    (a[0], a[1])
}

fn world() -> Scenario {
    Scenario::new(cases::model_addrs)
}

fn run_action(w: &mut Scenario, a: &Action) {
    w.run(a).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn the_model_gives_the_hand_written_truth_table_of_every_case() {
    let pods = cases::pods();
    let mut failures = Vec::new();
    for Case { name, steps, .. } in cases::cases() {
        let mut w = world();
        for s in steps {
            for a in &s.actions {
                run_action(&mut w, a);
            }
            let c = w.cluster();
            assert!(c.problems().is_empty(), "{name}: {:?}", c.problems());
            for e in &s.expect {
                let want = Matrix::parse(&pods, &e.rows).unwrap();
                for v6 in [false, true] {
                    let got = Matrix::predict(&c, &pods, e.proto, e.port, v6);
                    if got != want {
                        failures.push(format!(
                            "{name} / {} / {}/{} IPv{}:\n{}",
                            s.what,
                            e.proto,
                            e.port,
                            if v6 { 6 } else { 4 },
                            compare("model", &got, "by hand", &want)
                        ));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every probe of every pair, on the protocols and ports of the world and ICMP.
fn all_probes() -> Vec<(u8, u16)> {
    let mut v = vec![(1u8, 0u16), (58, 0)];
    for p in [6u8, 17, 132] {
        for port in [79u16, 80, 81, 82] {
            v.push((p, port));
        }
    }
    v
}

#[test]
fn what_the_nodes_program_decides_as_the_model_for_every_case() {
    let pods = cases::pods();
    let mut checked = 0;
    for case in cases::cases() {
        let mut w = world();
        for s in &case.steps {
            for a in &s.actions {
                run_action(&mut w, a);
            }
            let c = w.cluster();
            let nodes: Vec<_> = NODES.iter().map(|n| node_policy(&c, n)).collect();
            for from in &pods {
                for to in &pods {
                    for v6 in [false, true] {
                        let pick = |k: &Key| {
                            let (a, b) = addrs_of(k);
                            if v6 {
                                b
                            } else {
                                a
                            }
                        };
                        let (src, dst) = (pick(from), pick(to));
                        for (proto, port) in all_probes() {
                            let d = decide(&c, src, dst, proto, (port != 0).then_some(port));
                            // The source's node checks egress, the destination's ingress.
                            let on_src = nodes[cases::node_of(from)].allows(src, dst, proto, port);
                            let on_dst = nodes[cases::node_of(to)].allows(src, dst, proto, port);
                            assert_eq!(
                                on_src && on_dst,
                                d.allowed,
                                "{}: {} {from} -> {to} proto {proto} port {port}\n{}",
                                case.name,
                                s.what,
                                explain(&c, &d)
                            );
                            checked += 1;
                        }
                    }
                }
            }
        }
    }
    assert!(checked > 50_000, "{checked}");
}

#[test]
fn sctp_rules_land_in_the_sets_of_the_selected_pod() {
    let case = cases::cases()
        .into_iter()
        .find(|c| c.sctp.is_some())
        .unwrap();
    let mut w = world();
    for a in &case.steps[0].actions {
        run_action(&mut w, a);
    }
    let c = w.cluster();
    let xa = Key::new("x", "a");
    let np = node_policy(&c, NODES[cases::node_of(&xa)]);
    let r = Ruleset::of(&np, None);
    let text = ruleset::render(&r);
    let class = np.pods[&xa].ingress.clone().unwrap();
    assert!(
        text.contains(&format!("set {class}-4"))
            && text.contains("0.0.0.0-255.255.255.255 . sctp . 80"),
        "{text}"
    );
}

/// An element as the kernel model keeps it: key, last key, data.
type ModelElem = (Vec<u8>, Option<Vec<u8>>, String);

/// A model of the kernel's table, fed the operations of batches.
#[derive(Debug, Default, PartialEq, Eq)]
struct KernelModel {
    sets: BTreeMap<String, BTreeSet<ModelElem>>,
    chains: BTreeMap<String, usize>,
    counters: BTreeSet<String>,
    base: bool,
}

impl KernelModel {
    fn apply(&mut self, b: &ferro_nftables::Batch) {
        use ferro_nftables::OpKind;
        for op in b.ops() {
            let d = op.describe();
            match &op.kind {
                OpKind::AddTable => {}
                OpKind::DelTable => *self = KernelModel::default(),
                OpKind::AddSet(s) => {
                    self.sets.entry(s.name.clone()).or_default();
                }
                OpKind::DelSet(s) => {
                    assert!(self.sets.remove(s).is_some(), "{d}");
                }
                OpKind::AddElems { set, elems } => {
                    let s = self.sets.get_mut(set).unwrap_or_else(|| panic!("{d}"));
                    for e in elems {
                        let data = format!("{:?}", e.data);
                        assert!(
                            s.insert((e.key.clone(), e.key_end.clone(), data)),
                            "{d}: already there"
                        );
                    }
                }
                OpKind::DelElems { set, elems } => {
                    let s = self.sets.get_mut(set).unwrap_or_else(|| panic!("{d}"));
                    for e in elems {
                        let before = s.len();
                        s.retain(|(k, ke, _)| !(k == &e.key && ke == &e.key_end));
                        assert_eq!(s.len() + 1, before, "{d}: not there");
                    }
                }
                OpKind::AddChain(c) => {
                    if c.base.is_some() {
                        self.base = true;
                    } else {
                        self.chains.entry(c.name.clone()).or_default();
                    }
                }
                OpKind::FlushChain(c) => {
                    *self.chains.get_mut(c).unwrap_or_else(|| panic!("{d}")) = 0;
                }
                OpKind::DelChain(c) => {
                    assert_eq!(self.chains.remove(c), Some(0), "{d}: missing or not empty");
                }
                OpKind::AddRule(r) => {
                    if r.chain != ruleset::FORWARD {
                        *self
                            .chains
                            .get_mut(&r.chain)
                            .unwrap_or_else(|| panic!("{d}")) += 1;
                    }
                }
                OpKind::AddCounter(c) => {
                    self.counters.insert(c.clone());
                }
                OpKind::DelCounter(c) => {
                    assert!(self.counters.remove(c), "{d}");
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
}

fn state_after(w: &Scenario) -> Ruleset {
    let c = w.cluster();
    Ruleset::of(&node_policy(&c, NODES[0]), None)
}

fn node_after(w: &Scenario) -> crate::NodePolicy {
    node_policy(&w.cluster(), NODES[0])
}

#[test]
fn a_diff_turns_one_programmed_state_into_the_next_exactly() {
    // Walk every step of every case on one node; after each, the table made by the diffs
    // equals the table made whole. Twice: with class names as computed, and carried from
    // the state before (as the agent does).
    for carry in [false, true] {
        let mut kernel = KernelModel::default();
        let mut programmed = Ruleset::default();
        let mut prev = crate::NodePolicy::default();
        kernel.apply(&ruleset::full(&programmed));
        for case in cases::cases() {
            let mut w = world();
            let mut states = vec![node_after(&w)];
            for s in &case.steps {
                for a in &s.actions {
                    run_action(&mut w, a);
                }
                states.push(node_after(&w));
            }
            states.push(node_after(&world()));
            for mut np in states {
                if carry {
                    np.carry_names(&prev);
                }
                let next = Ruleset::of(&np, None);
                let (b, _) = ruleset::diff(&programmed, &next);
                kernel.apply(&b);
                let mut whole = KernelModel::default();
                whole.apply(&ruleset::full(&next));
                assert_eq!(kernel, whole, "{} (carry: {carry})", case.name);
                assert!(ruleset::diff(&next, &next).0.is_empty());
                programmed = next;
                prev = np;
            }
        }
    }
}

#[test]
fn a_policy_added_to_a_pods_class_keeps_its_set() {
    let mut w = world();
    let a_from = |name: &str, from: &str| {
        Action::Apply(cases::policy(
            "x",
            name,
            &format!("{{podSelector: {{matchLabels: {{pod: a}}}}, ingress: [{{from: [{{podSelector: {{matchLabels: {{pod: {from}}}}}}}]}}]}}"),
        ))
    };
    run_action(&mut w, &a_from("a-from-b", "b"));
    let before = node_after(&w);
    // The same rule again under another name: the class's key changes, its elements not.
    run_action(&mut w, &a_from("again", "b"));
    let mut after = node_after(&w);
    let fresh = Ruleset::of(&after, None);
    let (_, ch) = ruleset::diff(&Ruleset::of(&before, None), &fresh);
    assert_eq!(
        ch.sets, 12,
        "without carrying: a new class's six sets, the old six gone"
    );
    after.carry_names(&before);
    let (b, ch) = ruleset::diff(&Ruleset::of(&before, None), &Ruleset::of(&after, None));
    assert!(b.is_empty(), "{}", b.describe());
    assert_eq!(ch, ruleset::Changes::default());
    // The class still says which policies it stands for.
    let class = after.classes.values().next().unwrap();
    assert_eq!(class.key.policies, ["a-from-b", "again"]);
    // A rule letting c in too adds c's two addresses to the same sets.
    run_action(&mut w, &a_from("from-c", "c"));
    let mut third = node_after(&w);
    third.carry_names(&after);
    let (b, ch) = ruleset::diff(&Ruleset::of(&after, None), &Ruleset::of(&third, None));
    assert_eq!(
        (ch.added, ch.removed, ch.sets, ch.chains),
        (2, 0, 0, 0),
        "{}",
        b.describe()
    );
}

#[test]
fn a_pod_starting_elsewhere_only_adds_elements_to_the_classes_that_select_it() {
    let mut w = world();
    run_action(
        &mut w,
        &Action::Apply(cases::policy(
            "x",
            "a-from-y",
            "{podSelector: {matchLabels: {pod: a}}, ingress: [{from: [{namespaceSelector: {matchLabels: {ns: y}}}]}]}",
        )),
    );
    run_action(
        &mut w,
        &Action::Apply(cases::policy(
            "x",
            "c-from-z",
            "{podSelector: {matchLabels: {pod: c}}, ingress: [{from: [{namespaceSelector: {matchLabels: {ns: z}}}]}]}",
        )),
    );
    let before = state_after(&w);
    // y/d starts on node B.
    w.start_pod(
        &Key::new("y", "d"),
        NODES[1],
        vec!["10.241.0.99".parse().unwrap()],
    );
    let after = state_after(&w);
    let (b, ch) = ruleset::diff(&before, &after);
    assert_eq!(
        (ch.added, ch.removed, ch.chains, ch.sets),
        (1, 0, 0, 0),
        "{}",
        b.describe()
    );
    assert_eq!(b.len(), 1);
    let d = b.describe();
    // a single address with every port: the class's hashed address set
    assert!(d.contains("add element inet ferro_policy in-"), "{d}");
    assert!(d.contains("-4a { 10.241.0.99 }"), "{d}");
    assert!(!ch.may_deny());
}

#[test]
fn a_pod_relabelled_out_of_a_peer_is_removed_from_the_sets_only() {
    let mut w = world();
    run_action(
        &mut w,
        &Action::Apply(cases::policy(
            "x",
            "a-from-b",
            "{podSelector: {matchLabels: {pod: a}}, ingress: [{from: [{podSelector: {matchLabels: {pod: b}}}]}]}",
        )),
    );
    let before = state_after(&w);
    w.apply_text(&cases::pod_manifest("x", "b", "bee")).unwrap();
    let after = state_after(&w);
    let (b, ch) = ruleset::diff(&before, &after);
    assert_eq!(
        (ch.added, ch.removed, ch.chains, ch.sets),
        (0, 2, 0, 0),
        "{}",
        b.describe()
    );
    assert!(ch.may_deny());
}

#[test]
fn the_ruleset_of_a_small_node_reads_as_documented() {
    let mut w = world();
    run_action(
        &mut w,
        &Action::Apply(cases::policy(
            "x",
            "a-from-y-80",
            "{podSelector: {matchLabels: {pod: a}}, policyTypes: [Ingress, Egress], ingress: [{from: [{namespaceSelector: {matchLabels: {ns: y}}}], ports: [{port: 80}, {port: serve-81-udp, protocol: UDP}]}], egress: [{to: [{ipBlock: {cidr: 10.0.0.0/8, except: [10.241.0.0/16]}}]}]}",
        )),
    );
    let c = w.cluster();
    let np = node_policy(&c, NODES[0]);
    let r = Ruleset::of(
        &np,
        Some(ruleset::LogOptions {
            group: 7,
            rate: 5,
            burst: 10,
        }),
    );
    let text = ruleset::render(&r);
    let xa = Key::new("x", "a");
    let i = np.pods[&xa].ingress.clone().unwrap();
    let e = np.pods[&xa].egress.clone().unwrap();
    let chain_in = ruleset::pod_chain(&xa, crate::Direction::Ingress);
    let chain_eg = ruleset::pod_chain(&xa, crate::Direction::Egress);
    let want = format!(
        "table inet ferro_policy {{
\tmap eg4 {{ type ipv4_addr : verdict
\t\t10.240.0.10 : jump {chain_eg}
\t}}
\tmap eg6 {{ type ipv6_addr : verdict
\t\tfd00:240::10 : jump {chain_eg}
\t}}
\tmap in4 {{ type ipv4_addr : verdict
\t\t10.240.0.10 : jump {chain_in}
\t}}
\tmap in6 {{ type ipv6_addr : verdict
\t\tfd00:240::10 : jump {chain_in}
\t}}
\tset {e}-4 {{ type ipv4_addr . inet_proto . inet_service; flags interval
\t\t10.0.0.0-10.240.255.255 . 0-255 . 0-65535
\t\t10.242.0.0-10.255.255.255 . 0-255 . 0-65535
\t}}
\tset {e}-4a {{ type ipv4_addr
\t}}
\tset {e}-4x {{ type ipv4_addr . inet_proto . inet_service
\t}}
\tset {e}-6 {{ type ipv6_addr . inet_proto . inet_service; flags interval
\t}}
\tset {e}-6a {{ type ipv6_addr
\t}}
\tset {e}-6x {{ type ipv6_addr . inet_proto . inet_service
\t}}
\tset {i}-4 {{ type ipv4_addr . inet_proto . inet_service; flags interval
\t}}
\tset {i}-4a {{ type ipv4_addr
\t}}
\tset {i}-4x {{ type ipv4_addr . inet_proto . inet_service
\t\t10.240.0.14 . tcp . 80
\t\t10.240.0.14 . udp . 81
\t\t10.241.0.13 . tcp . 80
\t\t10.241.0.13 . udp . 81
\t\t10.241.0.15 . tcp . 80
\t\t10.241.0.15 . udp . 81
\t}}
\tset {i}-6 {{ type ipv6_addr . inet_proto . inet_service; flags interval
\t}}
\tset {i}-6a {{ type ipv6_addr
\t}}
\tset {i}-6x {{ type ipv6_addr . inet_proto . inet_service
\t\tfd00:240::14 . tcp . 80
\t\tfd00:240::14 . udp . 81
\t\tfd00:241::13 . tcp . 80
\t\tfd00:241::13 . udp . 81
\t\tfd00:241::15 . tcp . 80
\t\tfd00:241::15 . udp . 81
\t}}
\tcounter {chain_eg}
\tchain {chain_eg} {{ # egress x/a
\t\tip daddr . meta l4proto . th dport @{e}-4x return
\t\tip daddr @{e}-4a return
\t\tip daddr . meta l4proto . th dport @{e}-4 return
\t\tip6 daddr . meta l4proto . th dport @{e}-6x return
\t\tip6 daddr @{e}-6a return
\t\tip6 daddr . meta l4proto . th dport @{e}-6 return
\t\tlimit rate 5/second burst 10 packets log prefix \"egress x/a\" group 7
\t\tcounter name \"{chain_eg}\" drop
\t}}
\tcounter {chain_in}
\tchain {chain_in} {{ # ingress x/a
\t\tip saddr . meta l4proto . th dport @{i}-4x return
\t\tip saddr @{i}-4a return
\t\tip saddr . meta l4proto . th dport @{i}-4 return
\t\tip6 saddr . meta l4proto . th dport @{i}-6x return
\t\tip6 saddr @{i}-6a return
\t\tip6 saddr . meta l4proto . th dport @{i}-6 return
\t\tlimit rate 5/second burst 10 packets log prefix \"ingress x/a\" group 7
\t\tcounter name \"{chain_in}\" drop
\t}}
\tchain forward {{ type filter hook forward priority filter; policy accept
\t\tct state established,related accept
\t\tmeta l4proto ipv6-icmp icmpv6 type 133-137 accept
\t\tip saddr vmap @eg4
\t\tip6 saddr vmap @eg6
\t\tip daddr vmap @in4
\t\tip6 daddr vmap @in6
\t}}
}}
"
    );
    assert_eq!(text, want, "\n{text}");
}

#[test]
fn connections_are_cut_only_when_a_local_end_is_now_denied() {
    let mut w = world();
    run_action(
        &mut w,
        &Action::Apply(cases::policy(
            "x",
            "a-from-b",
            "{podSelector: {matchLabels: {pod: a}}, ingress: [{from: [{podSelector: {matchLabels: {pod: b}}}]}]}",
        )),
    );
    let c = w.cluster();
    let xa = Key::new("x", "a");
    let np = node_policy(&c, NODES[cases::node_of(&xa)]);
    let (xa4, _) = addrs_of(&xa);
    let (xb4, _) = addrs_of(&Key::new("x", "b"));
    let (xc4, _) = addrs_of(&Key::new("x", "c"));
    let none = std::collections::HashSet::new();
    assert!(!np.cuts(&none, xb4, xa4, 6, 80), "x/b may reach x/a");
    assert!(np.cuts(&none, xc4, xa4, 6, 80), "x/c may not any more");
    assert!(np.cuts(&none, xc4, xa4, 1, 0), "nor ping it");
    // Replies go the other way: x/a's own connections are not isolated (egress).
    assert!(!np.cuts(&none, xa4, xc4, 6, 80));
    // An end that is the node's own address is the node's, not the policy's.
    let node: IpAddr = "10.240.0.1".parse().unwrap();
    let local = std::collections::HashSet::from([node]);
    assert!(!np.cuts(&local, node, xa4, 6, 80));
    // Neither end on this node: not this node's to cut.
    let (yb4, _) = addrs_of(&Key::new("y", "b"));
    let (ya4, _) = addrs_of(&Key::new("y", "a"));
    assert!(!np.cuts(&none, ya4, yb4, 6, 80));
}

#[test]
fn the_three_tier_example_lets_each_tier_reach_only_the_next() {
    use crate::model::Proto;
    let mut s = world();
    s.apply_text(include_str!("../../../conf-examples/three-tier.yaml"))
        .unwrap();
    for (i, name) in ["frontend", "backend", "database"].iter().enumerate() {
        s.start_pod(
            &Key::new("tiers", *name),
            NODES[i % 2],
            vec![format!("10.24{}.9.{}", i % 2, i + 1).parse().unwrap()],
        );
    }
    // The pods' own labels (start_pod labels them pod=<name>): the example's.
    s.apply_text(include_str!("../../../conf-examples/three-tier.yaml"))
        .unwrap();
    let c = s.cluster();
    let t = |n: &str| Key::new("tiers", n);
    let allowed = |from: &Key, to: &Key, port: u16| {
        crate::decide::decide_pods(&c, from, to, Proto::Tcp, port, false)
            .unwrap()
            .allowed
    };
    let outsider = Key::new("y", "a");
    assert!(allowed(&outsider, &t("frontend"), 80));
    assert!(!allowed(&outsider, &t("frontend"), 8080));
    assert!(!allowed(&outsider, &t("backend"), 8080));
    assert!(allowed(&t("frontend"), &t("backend"), 8080));
    assert!(!allowed(&t("frontend"), &t("database"), 5432));
    assert!(allowed(&t("backend"), &t("database"), 5432));
    assert!(!allowed(&t("database"), &t("backend"), 8080));
    assert!(
        !allowed(&t("backend"), &t("frontend"), 80),
        "egress is to the database only"
    );
    assert!(!allowed(&t("frontend"), &outsider, 80));
}

/// `peer_pods` (label index) selects exactly what matching every pod in full selects.
fn peers_agree_with_a_full_scan(c: &crate::Cluster, what: &str) {
    use crate::model::Direction;
    for p in c.policies() {
        for dir in [Direction::Ingress, Direction::Egress] {
            for rule in p.rules(dir).into_iter().flatten() {
                for peer in rule.peers.iter().flatten() {
                    let ns = &p.key.namespace;
                    let indexed: Vec<&Key> =
                        c.peer_pods(peer, ns).into_iter().map(|p| &p.key).collect();
                    let scanned: Vec<&Key> = c
                        .pods()
                        .filter(|pod| c.peer_matches_pod(peer, ns, pod))
                        .map(|p| &p.key)
                        .collect();
                    assert_eq!(indexed, scanned, "{what}: policy {} peer {peer:?}", p.key);
                }
            }
        }
    }
}

#[test]
fn the_label_index_selects_what_a_full_scan_selects_in_every_case() {
    for Case { name, steps, .. } in cases::cases() {
        let mut w = world();
        for (i, s) in steps.iter().enumerate() {
            for a in &s.actions {
                run_action(&mut w, a);
            }
            peers_agree_with_a_full_scan(&w.cluster(), &format!("{name}, step {i}"));
        }
    }
}

#[test]
fn a_relabelled_pod_leaves_the_label_index() {
    let mut c = crate::model::cluster_of_values(&[
        serde_json::json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "p", "namespace": "x"},
            "spec": {"podSelector": {}, "ingress": [{"from": [
                {"podSelector": {"matchLabels": {"app": "web"}}},
                {"podSelector": {"matchExpressions": [{"key": "tier", "operator": "Exists"}]}},
                {"namespaceSelector": {}, "podSelector": {"matchExpressions": [
                    {"key": "app", "operator": "In", "values": ["web", "db"]}]}}]}]}}),
    ])
    .unwrap();
    let pod = |name: &str, labels: &[(&str, &str)], ip: &str| crate::model::Pod {
        key: Key::new("x", name),
        labels: std::sync::Arc::new(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        node: "n".into(),
        addrs: vec![ip.parse().unwrap()],
        ports: Vec::new(),
    };
    c.add_pod(pod("a", &[("app", "web"), ("tier", "1")], "10.0.0.1"));
    c.add_pod(pod("b", &[("app", "db")], "10.0.0.2"));
    peers_agree_with_a_full_scan(&c, "before");
    let peers = |c: &crate::Cluster| -> Vec<usize> {
        let p = c.policies().next().unwrap();
        p.ingress.as_ref().unwrap()[0]
            .peers
            .iter()
            .flatten()
            .map(|peer| c.peer_pods(peer, "x").len())
            .collect()
    };
    assert_eq!(peers(&c), [1, 1, 2]);
    c.add_pod(pod("a", &[("app", "cache")], "10.0.0.1"));
    peers_agree_with_a_full_scan(&c, "after");
    assert_eq!(peers(&c), [0, 0, 1]);
}

#[test]
fn single_addresses_go_to_the_hashed_sets_and_ranges_to_the_interval_set() {
    use crate::ruleset::{place, SetKind};
    use crate::space::{Elem, Span};
    let e = |lo: u128, hi: u128, proto: (u8, u8), port: (u16, u16)| Elem {
        addr: Span::new(lo, hi),
        proto,
        port,
    };
    // one address, one port; a run of three with one port: three exact elements
    assert_eq!(place(&e(5, 5, (6, 6), (80, 80))).0, SetKind::Exact);
    let (k, v) = place(&e(5, 7, (17, 17), (53, 53)));
    assert_eq!((k, v.len()), (SetKind::Exact, 3));
    assert!(v
        .iter()
        .all(|x| x.addr.lo == x.addr.hi && x.port == (53, 53)));
    // every protocol and port: the address set
    let (k, v) = place(&e(9, 10, (0, 255), (0, u16::MAX)));
    assert_eq!((k, v.len()), (SetKind::Addrs, 2));
    // a block, a port range, a protocol without ports: the interval set, whole
    assert_eq!(
        place(&e(0, 255, (6, 6), (80, 80))),
        (SetKind::Ranges, vec![e(0, 255, (6, 6), (80, 80))])
    );
    assert_eq!(place(&e(5, 5, (6, 6), (80, 90))).0, SetKind::Ranges);
    assert_eq!(place(&e(5, 5, (1, 1), (0, u16::MAX))).0, SetKind::Ranges);
}
