//! The node's egress table, `inet ferro_egress`, as data (pure): what the kernel must hold
//! for the EgressPolicies that select this node's pods.
//!
//! ```text
//! chain forward { type filter hook forward priority filter; policy accept;   (only when it drops)
//!     ct state established,related accept          (live connections keep working)
//!     ip daddr <pod or service CIDR> accept          (inside the cluster: NetworkPolicy's)
//!     ip daddr @nodes accept                         (the cluster's nodes)
//!     ip saddr @src-<hash>-<policy> jump egp-<hash>-<policy>     (each policy, by name)
//!     ip saddr <pod> counter drop                    (each selected pod of a Deny policy)
//! }
//! chain egp-<hash>-<policy> {
//!     ip daddr 198.51.100.0/24 meta l4proto tcp th dport 443 accept   (toCIDRs x ports)
//!     ip daddr @dns-<hash>-<i>-<policy> accept                        (toNames: answered addresses)
//!     accept                                          (defaultAction: Allow)
//! }
//! ```
//!
//! Traffic to the node itself (the cluster DNS among it) goes through the input hook, not
//! forward: pods always reach the cluster DNS. A connection allowed at its first packet
//! stays allowed (conntrack) when the answer that allowed it expires.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ferro_cluster::egress::{Egress, NamePattern};
use ferro_nftables::{
    priority, BaseChain, ChainType, DataType, Dir, Elem, Hook, Policy, RuleBuilder, SetDef,
    Verdict, CT_STATE_ESTABLISHED, CT_STATE_RELATED,
};
use ferro_services::plan::{object_name, rule, PlannedRule, Ruleset};
use ipnet::IpNet;

/// The table's name (family `inet`).
pub const TABLE: &str = "ferro_egress";

/// A pod of this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalPod {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its addresses.
    pub ips: Vec<IpAddr>,
}

/// What the table is computed from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inputs {
    /// Every valid policy, by name.
    pub policies: Vec<Egress>,
    /// This node's pods.
    pub pods: Vec<LocalPod>,
    /// The cluster's pod and service CIDRs.
    pub cluster: Vec<IpNet>,
    /// The live nodes' addresses.
    pub nodes: Vec<IpAddr>,
}

/// A rule allowing names: the sets its answered addresses go to, and whose answers count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameRule {
    /// The policy.
    pub policy: String,
    /// The IPv4 and IPv6 sets.
    pub sets: [String; 2],
    /// The names.
    pub patterns: Vec<NamePattern>,
    /// The addresses of the pods the policy selects on this node.
    pub pods: BTreeSet<IpAddr>,
}

impl NameRule {
    /// Whether an answer about `names` (the question and the names in its answer) to `pod`
    /// counts for this rule.
    pub fn allows(&self, pod: IpAddr, names: &[String]) -> bool {
        self.pods.contains(&pod)
            && names
                .iter()
                .any(|n| self.patterns.iter().any(|p| p.matches(n)))
    }

    /// The set an address of this rule goes to.
    pub fn set_for(&self, ip: IpAddr) -> &str {
        &self.sets[usize::from(ip.is_ipv6())]
    }
}

/// Addresses answered for allowed names, per set.
pub type Learned = BTreeMap<String, BTreeSet<IpAddr>>;

fn fam(v6: bool) -> &'static str {
    if v6 {
        "ip6"
    } else {
        "ip"
    }
}

fn addr_type(v6: bool) -> DataType {
    if v6 {
        DataType::Ipv6Addr
    } else {
        DataType::Ipv4Addr
    }
}

fn cidr_text(n: &IpNet) -> String {
    if n.prefix_len() == n.max_prefix_len() {
        n.addr().to_string()
    } else {
        n.to_string()
    }
}

fn selected<'a>(p: &Egress, pods: &'a [LocalPod]) -> Vec<&'a LocalPod> {
    pods.iter()
        .filter(|l| p.selects(&l.namespace, &l.labels))
        .collect()
}

fn src_set(p: &Egress, v6: bool) -> String {
    object_name(if v6 { "src6" } else { "src4" }, &p.name)
}

fn chain_name(p: &Egress) -> String {
    object_name("egp", &p.name)
}

fn dns_set(p: &Egress, i: usize, v6: bool) -> String {
    object_name(&format!("dns{}-{i}", if v6 { 6 } else { 4 }), &p.name)
}

/// The rules allowing names, for the DNS server.
pub fn name_rules(inp: &Inputs) -> Vec<NameRule> {
    let mut out = Vec::new();
    for p in &inp.policies {
        let pods: BTreeSet<IpAddr> = selected(p, &inp.pods)
            .iter()
            .flat_map(|l| l.ips.iter().copied())
            .collect();
        if pods.is_empty() {
            continue;
        }
        for (i, r) in p.rules.iter().enumerate() {
            if !r.names.is_empty() {
                out.push(NameRule {
                    policy: p.name.clone(),
                    sets: [dns_set(p, i, false), dns_set(p, i, true)],
                    patterns: r.names.clone(),
                    pods: pods.clone(),
                });
            }
        }
    }
    out
}

/// `dst` then each port (or none), then accept.
fn allow_rules(dst: (&str, RuleBuilder), ports: &[(u8, u16)]) -> Vec<PlannedRule> {
    if ports.is_empty() {
        return vec![rule(
            format!("{} accept", dst.0),
            dst.1.verdict(Verdict::Accept),
        )];
    }
    ports
        .iter()
        .map(|(proto, port)| {
            rule(
                format!(
                    "{} meta l4proto {} th dport {port} accept",
                    dst.0,
                    ferro_nftables::proto_name(*proto)
                ),
                dst.1
                    .clone()
                    .l4proto(*proto)
                    .th_dport(*port)
                    .verdict(Verdict::Accept),
            )
        })
        .collect()
}

/// The table for `inp`, with the `learned` addresses in the name sets.
pub fn plan(inp: &Inputs, learned: &Learned) -> Ruleset {
    let mut r = Ruleset::default();
    let mut forward = vec![rule(
        "ct state established,related accept",
        RuleBuilder::new()
            .ct_state_any(CT_STATE_ESTABLISHED | CT_STATE_RELATED)
            .verdict(Verdict::Accept),
    )];
    for n in &inp.cluster {
        forward.push(rule(
            format!("{} daddr {} accept", fam(n.addr().is_ipv6()), cidr_text(n)),
            RuleBuilder::new()
                .addr_cidr(Dir::Dst, *n)
                .verdict(Verdict::Accept),
        ));
    }
    for v6 in [false, true] {
        let set = if v6 { "nodes6" } else { "nodes4" };
        r.set(SetDef::set(set, vec![addr_type(v6)]));
        for ip in inp.nodes.iter().filter(|ip| ip.is_ipv6() == v6) {
            r.elem(set, Elem::addr(*ip));
        }
        forward.push(rule(
            format!("{} daddr @{set} accept", fam(v6)),
            RuleBuilder::new()
                .addr_in_set(v6, Dir::Dst, set, false)
                .verdict(Verdict::Accept),
        ));
    }
    for p in &inp.policies {
        let pods = selected(p, &inp.pods);
        if pods.is_empty() {
            continue;
        }
        let chain = chain_name(p);
        for v6 in [false, true] {
            let set = src_set(p, v6);
            r.set(SetDef::set(&set, vec![addr_type(v6)]).with_comment(p.name.clone()));
            let ips: Vec<IpAddr> = pods
                .iter()
                .flat_map(|l| l.ips.iter().copied())
                .filter(|ip| ip.is_ipv6() == v6)
                .collect();
            if ips.is_empty() {
                continue;
            }
            for ip in ips {
                r.elem(&set, Elem::addr(ip));
            }
            forward.push(rule(
                format!("{} saddr @{set} jump {chain}", fam(v6)),
                RuleBuilder::new()
                    .addr_in_set(v6, Dir::Src, &set, false)
                    .verdict(Verdict::Jump(chain.clone())),
            ));
        }
        let mut rules = Vec::new();
        for (i, rl) in p.rules.iter().enumerate() {
            for n in &rl.cidrs {
                let text = format!("{} daddr {}", fam(n.addr().is_ipv6()), cidr_text(n));
                rules.extend(allow_rules(
                    (&text, RuleBuilder::new().addr_cidr(Dir::Dst, *n)),
                    &rl.ports,
                ));
            }
            if rl.names.is_empty() {
                continue;
            }
            for v6 in [false, true] {
                let set = dns_set(p, i, v6);
                let names: Vec<String> = rl.names.iter().map(ToString::to_string).collect();
                r.set(SetDef::set(&set, vec![addr_type(v6)]).with_comment(names.join(" ")));
                for ip in learned.get(&set).into_iter().flatten() {
                    r.elem(&set, Elem::addr(*ip));
                }
                let text = format!("{} daddr @{set}", fam(v6));
                rules.extend(allow_rules(
                    (
                        &text,
                        RuleBuilder::new().addr_in_set(v6, Dir::Dst, &set, false),
                    ),
                    &rl.ports,
                ));
            }
        }
        if !p.deny {
            rules.push(rule("accept", RuleBuilder::new().verdict(Verdict::Accept)));
        }
        r.chain(&chain, None, rules);
    }
    let denied = denials(inp);
    for (ip, d) in &denied {
        let ip = *ip;
        r.counter(&d.counter);
        forward.push(rule(
            format!(
                "{} saddr {ip} counter name \"{}\" drop",
                fam(ip.is_ipv6()),
                d.counter
            ),
            RuleBuilder::new()
                .addr(Dir::Src, ip)
                .counter_named(&d.counter)
                .verdict(Verdict::Drop),
        ));
    }
    // Only the drops change a verdict: every other path of `forward` ends in accept. With
    // no pod to drop for, the chain is left out of the kernel, so that the node's forwarded
    // packets do not pay for a hook that decides nothing (a few percent of a node's rate of
    // new connections); the policies' chains and sets stay, with the addresses they learn.
    if !denied.is_empty() {
        r.chain(
            "forward",
            Some(BaseChain {
                kind: ChainType::Filter,
                hook: Hook::Forward,
                priority: priority::FILTER,
                policy: Policy::Accept,
            }),
            forward,
        );
    }
    r
}

/// A pod address a Deny policy drops what no rule allows of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    /// The pod, `namespace/name`.
    pub pod: String,
    /// The first Deny policy selecting it, by name (the one its drops are counted for).
    pub policy: String,
    /// The named counter of the pod's drops (one per pod, both families).
    pub counter: String,
}

/// Who is denied by which policy: each pod address of a Deny policy.
pub fn denials(inp: &Inputs) -> BTreeMap<IpAddr, Denied> {
    let mut out = BTreeMap::new();
    for p in inp.policies.iter().filter(|p| p.deny) {
        for l in selected(p, &inp.pods) {
            let pod = format!("{}/{}", l.namespace, l.name);
            for ip in &l.ips {
                out.entry(*ip).or_insert_with(|| Denied {
                    counter: object_name("drop", &pod),
                    pod: pod.clone(),
                    policy: p.name.clone(),
                });
            }
        }
    }
    out
}

/// The egress decision for one connection of a pod (pure: what the table does with its
/// first packet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Whether the table lets it through.
    pub allowed: bool,
    /// The policy that decided (`None`: none applies).
    pub policy: Option<String>,
    /// Its allow rule that matched (`None`: the policy's default action).
    pub rule: Option<usize>,
    /// The decision in words.
    pub text: String,
}

fn ports_text(ports: &[(u8, u16)]) -> String {
    if ports.is_empty() {
        return "every port".into();
    }
    ports
        .iter()
        .map(|(proto, port)| {
            format!(
                "{port}/{}",
                ferro_nftables::proto_name(*proto).to_ascii_uppercase()
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The decision for a connection of `pod` (one of `inp.pods`) to `dst`, protocol `proto`
/// and port `port`, with the addresses answered so far in `learned` (the sets of the node
/// the pod runs on; `None`: not known here, the name rules are described instead).
pub fn decide(
    inp: &Inputs,
    learned: Option<&Learned>,
    pod: &LocalPod,
    dst: IpAddr,
    proto: u8,
    port: Option<u16>,
) -> Decision {
    let not_egress = |text: String| Decision {
        allowed: true,
        policy: None,
        rule: None,
        text,
    };
    if let Some(n) = inp.cluster.iter().find(|n| n.contains(&dst)) {
        return not_egress(format!(
            "{dst} is inside the cluster ({n}): EgressPolicy does not apply"
        ));
    }
    if inp.nodes.contains(&dst) {
        return not_egress(format!(
            "{dst} is a node of the cluster: EgressPolicy does not apply"
        ));
    }
    let port_ok = |ports: &[(u8, u16)]| {
        ports.is_empty() || ports.iter().any(|(p, n)| *p == proto && Some(*n) == port)
    };
    let mut deny: Option<&Egress> = None;
    // Name rules whose answers live on another node.
    let mut elsewhere: Vec<String> = Vec::new();
    for p in inp
        .policies
        .iter()
        .filter(|p| p.selects(&pod.namespace, &pod.labels))
    {
        for (i, rl) in p.rules.iter().enumerate() {
            if !port_ok(&rl.ports) {
                continue;
            }
            if let Some(n) = rl.cidrs.iter().find(|n| n.contains(&dst)) {
                return Decision {
                    allowed: true,
                    policy: Some(p.name.clone()),
                    rule: Some(i),
                    text: format!(
                        "allowed by EgressPolicy {}, allow[{i}] (toCIDRs {n}, {})",
                        p.name,
                        ports_text(&rl.ports)
                    ),
                };
            }
            if rl.names.is_empty() {
                continue;
            }
            let names: Vec<String> = rl.names.iter().map(ToString::to_string).collect();
            let set = dns_set(p, i, dst.is_ipv6());
            match learned {
                Some(l) if l.get(&set).is_some_and(|s| s.contains(&dst)) => {
                    return Decision {
                        allowed: true,
                        policy: Some(p.name.clone()),
                        rule: Some(i),
                        text: format!(
                            "allowed by EgressPolicy {}, allow[{i}]: {dst} was answered for \
                             one of its names ({}), {}",
                            p.name,
                            names.join(", "),
                            ports_text(&rl.ports)
                        ),
                    }
                }
                Some(_) => {}
                None => elsewhere.push(format!("{} allow[{i}] ({})", p.name, names.join(", "))),
            }
        }
        if !p.deny {
            return Decision {
                allowed: true,
                policy: Some(p.name.clone()),
                rule: None,
                text: format!("allowed by EgressPolicy {} (defaultAction Allow)", p.name),
            };
        }
        deny.get_or_insert(p);
    }
    match deny {
        Some(p) => {
            let what = match port {
                Some(n) => format!(
                    "{n}/{}",
                    ferro_nftables::proto_name(proto).to_ascii_uppercase()
                ),
                None => ferro_nftables::proto_name(proto).to_ascii_uppercase(),
            };
            let mut text = format!(
                "denied by EgressPolicy {} (defaultAction Deny: no allow rule of a policy \
                 selecting the pod matches {dst}, {what})",
                p.name
            );
            if !elsewhere.is_empty() {
                text.push_str(&format!(
                    "; unless the cluster DNS of the pod's node answered {dst} for a name of {} \
                     (known on that node only)",
                    elsewhere.join("; ")
                ));
            }
            Decision {
                allowed: false,
                policy: Some(p.name.clone()),
                rule: None,
                text,
            }
        }
        None => not_egress("no EgressPolicy selects the pod: allowed".into()),
    }
}

#[cfg(test)]
mod tests;
