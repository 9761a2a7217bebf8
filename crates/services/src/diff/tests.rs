use ferro_nftables::OpKind;
use serde_json::json;

use super::*;
use crate::fixtures::{att, cluster, planned, pod};

fn kinds(b: &Batch) -> Vec<String> {
    b.ops().iter().map(|o| o.describe()).collect()
}

/// The changes of a planner's update (not a load).
fn changes(t: Transaction) -> Batch {
    match t {
        Transaction::Changes(b) => b,
        Transaction::Load(_) => panic!("a load where changes were expected"),
    }
}

/// A planner's update is a load that creates the table afresh.
fn assert_load(t: &Transaction) {
    let Transaction::Load(e) = t else {
        panic!("changes where a load was expected");
    };
    let types: Vec<u16> = e.messages().take(3).map(|m| m.ty & 0xff).collect();
    use ferro_nftables::uapi::{NFT_MSG_DELTABLE, NFT_MSG_NEWTABLE};
    assert_eq!(
        types,
        [NFT_MSG_NEWTABLE, NFT_MSG_DELTABLE, NFT_MSG_NEWTABLE]
    );
}

#[test]
fn first_sync_rebuilds_the_table_in_one_transaction() {
    let (s, p, a) = cluster();
    let r = planned(&s, &p, &a);
    let b = diff(None, &r);
    let ops = b.ops();
    assert!(matches!(ops[0].kind, OpKind::AddTable));
    assert!(matches!(ops[1].kind, OpKind::DelTable));
    assert!(matches!(ops[2].kind, OpKind::AddTable));
    let rules = ops
        .iter()
        .filter(|o| matches!(o.kind, OpKind::AddRule(_)))
        .count();
    let planned_rules: usize = r.chains.values().map(|c| c.rules.len()).sum();
    assert_eq!(rules, planned_rules);
    assert!(
        diff(Some(&r), &r).is_empty(),
        "nothing changed, nothing sent"
    );
}

#[test]
fn an_endpoint_change_touches_only_that_service() {
    let (s, mut p, mut a) = cluster();
    let before = planned(&s, &p, &a);
    p.push(pod("shop", "web-3", "web", &[("http", 8080, "TCP")]));
    a.push(att("shop", "web-3", "b", &["10.244.2.9/24"]));
    let only_web = vec![s[0].clone()];
    let _ = only_web;
    let after = planned(&s, &p, &a);
    let b = diff(Some(&before), &after);
    let text = kinds(&b).join("\n");
    // No table rebuild, no change to the shared chains or maps' other services.
    assert!(!text.contains("table inet ferro_services\n"), "{text}");
    for op in b.ops() {
        let named = op.describe();
        assert!(
            !named.contains(" services") && !named.contains("nat-"),
            "touched a shared chain: {named}"
        );
    }
    // The new endpoint's chains appear, and the services' balancing maps are rewritten.
    assert!(text.contains("10.244.2.9"), "{text}");
    // Applying the diff to `before` gives `after`: the reverse goes back.
    let back = diff(Some(&after), &before);
    assert!(
        kinds(&back).iter().any(|k| k.starts_with("delete chain")),
        "{back:?}"
    );
}

#[test]
fn removal_order_lets_the_kernel_accept_it() {
    let (s, p, a) = cluster();
    let before = planned(&s, &p, &a);
    let after = planned(&s[..1], &p, &a);
    let b = diff(Some(&before), &after);
    let ops = b.ops();
    let first = |f: &dyn Fn(&OpKind) -> bool| ops.iter().position(|o| f(&o.kind));
    let last = |f: &dyn Fn(&OpKind) -> bool| ops.iter().rposition(|o| f(&o.kind));
    let del_elems = last(&|k| matches!(k, OpKind::DelElems { .. })).unwrap();
    let flush = first(&|k| matches!(k, OpKind::FlushChain(_))).unwrap();
    let del_set = first(&|k| matches!(k, OpKind::DelSet(_))).unwrap();
    let del_chain = first(&|k| matches!(k, OpKind::DelChain(_))).unwrap();
    assert!(del_elems < flush && flush < del_set && del_set < del_chain);
    let _ = json!({});
}

#[test]
fn the_planner_touches_only_the_services_that_changed() {
    use crate::model::{service_ports, Topology};
    use crate::plan::NodeFacts;
    let (s, mut p, mut a) = cluster();
    let ports_of = |p: &[ferro_cluster::PodView], a: &[ferro_cluster::resource::Attachment]| {
        service_ports(&Topology {
            services: s.iter().collect(),
            pods: p.iter().collect(),
            attachments: a.iter().collect(),
            live_nodes: ["a", "b"].into_iter().collect(),
        })
    };
    let pods: Vec<ipnet::IpNet> = vec![
        "10.244.0.0/16".parse().unwrap(),
        "fd00:244::/56".parse().unwrap(),
    ];
    let svcs: Vec<ipnet::IpNet> = vec![
        "10.96.0.0/16".parse().unwrap(),
        "fd00:96::/112".parse().unwrap(),
    ];
    let facts = NodeFacts {
        node: "a",
        pod_cidrs: &pods,
        service_cidrs: &svcs,
    };
    let mut planner = Planner::new();
    let first = planner.update(&ports_of(&p, &a), &facts);
    assert_load(&first);
    planner.applied();
    assert_eq!(planner.ruleset(&facts), planned(&s, &p, &a));
    assert!(planner.update(&ports_of(&p, &a), &facts).is_empty());
    planner.applied();
    // A pod selected by the `web` app only: every service selecting it changes, the empty
    // one does not.
    p.push(pod("shop", "web-3", "web", &[("http", 8080, "TCP")]));
    a.push(att("shop", "web-3", "b", &["10.244.2.9/24"]));
    let b = changes(planner.update(&ports_of(&p, &a), &facts));
    planner.applied();
    assert_eq!(
        b,
        diff(
            Some(&planned(&s, &p[..p.len() - 1], &a[..a.len() - 1])),
            &planned(&s, &p, &a)
        )
    );
    assert_eq!(planner.ruleset(&facts), planned(&s, &p, &a));
    // A failed batch: the next one rebuilds.
    planner.forget();
    let again = planner.update(&ports_of(&p, &a), &facts);
    assert_load(&again);
    planner.applied();
    // Removing services removes exactly their objects.
    let fewer: Vec<_> = ports_of(&p, &a)
        .into_iter()
        .filter(|sp| sp.service == "web")
        .collect();
    let b = changes(planner.update(&fewer, &facts));
    planner.applied();
    let only_web: Vec<_> = s.iter().take(1).cloned().collect();
    assert_eq!(planner.ruleset(&facts), planned(&only_web, &p, &a));
    assert!(
        b.ops().iter().all(|o| !o.describe().contains("shop/web/")),
        "web untouched"
    );
}

#[test]
fn named_counters_are_made_before_their_rules_and_deleted_after_them() {
    let mut before = Ruleset::default();
    before.counter("kept");
    before.counter("old");
    let mut after = Ruleset::default();
    after.counter("kept");
    after.counter("new");
    after.chain(
        "c",
        None,
        vec![crate::plan::rule(
            "counter name \"new\" drop",
            ferro_nftables::RuleBuilder::new()
                .counter_named("new")
                .verdict(ferro_nftables::Verdict::Drop),
        )],
    );
    let full = kinds(&diff(None, &after));
    let made = full.iter().position(|k| k.contains("counter")).unwrap();
    let rule = full.iter().position(|k| k.starts_with("add rule")).unwrap();
    assert!(made < rule, "{full:?}");
    let text = kinds(&diff(Some(&before), &after)).join("\n");
    assert!(
        text.contains("add counter inet ferro_services new"),
        "{text}"
    );
    assert!(
        text.contains("delete counter inet ferro_services old"),
        "{text}"
    );
    assert!(
        !text.contains("kept"),
        "a kept counter is left alone: {text}"
    );
    assert!(after.render().contains("\tcounter new { }"));
}

#[test]
fn loading_a_ruleset_creates_the_table_afresh_with_every_object_of_it() {
    use ferro_nftables::OpKind;
    let (s, p, a) = cluster();
    let r = planned(&s, &p, &a);
    let b = super::load(r.clone());
    let ops = b.ops();
    let kinds: Vec<String> = ops
        .iter()
        .take(3)
        .map(|o| format!("{:?}", o.kind))
        .collect();
    assert_eq!(kinds, ["AddTable", "DelTable", "AddTable"]);
    let rules: Vec<(&str, &Vec<ferro_nftables::Expr>)> = ops
        .iter()
        .filter_map(|o| match &o.kind {
            OpKind::AddRule(rule) => Some((rule.chain.as_str(), &rule.exprs)),
            _ => None,
        })
        .collect();
    let planned: Vec<(&str, &Vec<ferro_nftables::Expr>)> = r
        .chains
        .iter()
        .flat_map(|(c, d)| d.rules.iter().map(move |x| (c.as_str(), &x.exprs)))
        .collect();
    assert!(!planned.is_empty());
    assert_eq!(rules, planned, "every rule, chain by chain, in order");
    let elems: usize = ops
        .iter()
        .map(|o| match &o.kind {
            OpKind::AddElems { elems, .. } => elems.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(elems, r.elems.values().map(|e| e.len()).sum::<usize>());
    let chains = ops
        .iter()
        .filter(|o| matches!(o.kind, OpKind::AddChain(_)))
        .count();
    assert_eq!(chains, r.chains.len());
    // and the diff from nothing is that load
    assert_eq!(diff(None, &r), b);
}

/// What a load creates, whatever the order it sends it in: the first three operations,
/// and sorted, the chains, sets, counters and elements; each chain's rules in order.
#[derive(Debug, PartialEq, Eq)]
struct Inventory {
    head: Vec<String>,
    chains: Vec<String>,
    sets: Vec<String>,
    counters: Vec<String>,
    elems: Vec<(String, String)>,
    rules: BTreeMap<String, Vec<String>>,
}

fn inventory(b: &Batch) -> Inventory {
    let mut inv = Inventory {
        head: b.ops().iter().take(3).map(|o| o.describe()).collect(),
        chains: Vec::new(),
        sets: Vec::new(),
        counters: Vec::new(),
        elems: Vec::new(),
        rules: BTreeMap::new(),
    };
    for op in b.ops() {
        match &op.kind {
            OpKind::AddChain(c) => inv.chains.push(format!("{c:?}")),
            OpKind::AddSet(d) => inv.sets.push(format!("{d:?}")),
            OpKind::AddCounter(n) => inv.counters.push(n.clone()),
            OpKind::AddElems { set, elems } => inv
                .elems
                .extend(elems.iter().map(|e| (set.clone(), format!("{e:?}")))),
            OpKind::AddRule(r) => inv
                .rules
                .entry(r.chain.clone())
                .or_default()
                .push(format!("{:?}", r.exprs)),
            _ => {}
        }
    }
    inv.chains.sort();
    inv.sets.sort();
    inv.counters.sort();
    inv.elems.sort();
    inv
}

#[test]
fn a_load_planned_service_by_service_sends_the_whole_table_and_only_it() {
    use crate::fixtures::svc;
    use crate::model::{service_ports, Topology};
    let (mut s, p, a) = cluster();
    // A copy of a service under another name claims the same address and port: in the
    // table the later one (by namespace and name) wins, in both ways of loading.
    let mut copy = s[0].clone();
    copy.metadata.name = Some("web-again".into());
    s.push(copy);
    s.push(svc(
        "shop",
        "aff",
        json!({"selector":{"app":"web"},"clusterIP":"10.96.0.77","sessionAffinity":"ClientIP",
               "ports":[{"port":81,"targetPort":8080}]}),
    ));
    let ports = service_ports(&Topology {
        services: s.iter().collect(),
        pods: p.iter().collect(),
        attachments: a.iter().collect(),
        live_nodes: ["a", "b"].into_iter().collect(),
    });
    let pods: Vec<ipnet::IpNet> = vec!["10.244.0.0/16".parse().unwrap()];
    let svcs: Vec<ipnet::IpNet> = vec!["10.96.0.0/16".parse().unwrap()];
    let facts = NodeFacts {
        node: "a",
        pod_cidrs: &pods,
        service_cidrs: &svcs,
    };
    let mut planner = Planner::new();
    let sent = planner.update(&ports, &facts);
    let mut streamed = Batch::new();
    let mut pieces = 0;
    planner.load_pieces(&facts, |b| {
        pieces += 1;
        streamed.extend(b);
    });
    assert!(
        pieces > 3,
        "one piece per service, and the common part's two"
    );
    let whole = load(planner.ruleset(&facts));
    let inv = inventory(&streamed);
    assert!(inv.elems.iter().any(|(_, e)| e.contains("web-again")));
    assert!(inv.sets.len() > 3, "the shared maps and the affinity sets");
    assert_eq!(inv, inventory(&whole));

    // Every chain and set exists before a rule or element goes into it.
    let mut made = HashSet::new();
    for op in streamed.ops() {
        match &op.kind {
            OpKind::AddChain(c) => {
                made.insert(c.name.clone());
            }
            OpKind::AddSet(d) => {
                made.insert(d.name.clone());
            }
            OpKind::AddRule(r) => assert!(made.contains(&r.chain), "{}", op.describe()),
            OpKind::AddElems { set, .. } => assert!(made.contains(set), "{}", op.describe()),
            _ => {}
        }
    }

    // The planner's load is that stream, encoded.
    let Transaction::Load(e) = sent else {
        panic!("a first update is a load")
    };
    let mut expected = EncodedBatch::new();
    expected.append(streamed);
    assert_eq!(e.len(), expected.len());
    assert!(e
        .messages()
        .zip(expected.messages())
        .all(|(x, y)| (x.ty, x.flags, x.payload) == (y.ty, y.flags, y.payload)));
}
