//! The node firewall's table, `inet ferro_nodefw`, as data (pure), and why each rule is
//! there.
//!
//! ```text
//! chain prerouting { type filter hook prerouting priority -150; policy accept;
//!     fib daddr type != local return                  (only traffic to the node's own addresses)
//!     iifname "lo" accept
//!     ct state established,related accept
//!     meta l4proto icmp accept; meta l4proto ipv6-icmp accept
//!     ip saddr 10.244.0.0/16 accept                   (pods)
//!     ip saddr @nodes4 accept                         (the other nodes: VXLAN, the store, agents)
//!     meta l4proto . th dport vmap @open              (NodePorts, hostPorts, the extras)
//!     ip daddr . meta l4proto . th dport vmap @open-addr4   (load-balancer and external addresses)
//!     counter drop
//! }
//! ```
//!
//! It filters at prerouting, before the services' and portmap's DNAT (priority -100): a
//! NodePort's traffic leaves the node's addresses there and never reaches the input hook.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ferro_nftables::{
    priority, proto_name, BaseChain, ChainType, CmpOp, DataType, Dir, Elem, Expr, Hook, KeyField,
    KeyPart, Policy, RuleBuilder, SetDef, Verdict, CT_STATE_ESTABLISHED, CT_STATE_RELATED,
    RTN_LOCAL,
};
use ferro_services::plan::{rule, PlannedRule, Ruleset};
use ipnet::IpNet;

/// The table's name (family `inet`).
pub const TABLE: &str = "ferro_nodefw";

/// What the table is computed from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inputs {
    /// Whether the ClusterNetwork turns the firewall on.
    pub enabled: bool,
    /// The cluster's pod CIDRs that hold no node address (kubenet, overlay): accepted whole.
    pub pod_cidrs: Vec<IpNet>,
    /// The pods' own addresses in pod CIDRs that hold node addresses too (flat: pods take
    /// VNet addresses, so the CIDR would open the node to the whole VNet): accepted one by
    /// one.
    pub pod_addrs: Vec<IpAddr>,
    /// The live nodes' addresses.
    pub nodes: Vec<IpAddr>,
    /// (protocol, port) open on every address of the node, and why.
    pub open: BTreeMap<(u8, u16), Vec<String>>,
    /// (address, protocol, port) open, and why.
    pub open_addr: BTreeMap<(IpAddr, u8, u16), Vec<String>>,
}

/// One rule and why it exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The rule, in nft syntax.
    pub rule: String,
    /// Why.
    pub why: String,
}

fn accept(text: String, b: RuleBuilder) -> PlannedRule {
    rule(format!("{text} accept"), b.verdict(Verdict::Accept))
}

/// The table (empty when the firewall is off).
pub fn plan(inp: &Inputs) -> Ruleset {
    let mut r = Ruleset::default();
    if !inp.enabled {
        return r;
    }
    let mut not_local = RuleBuilder::new()
        .fib_daddr_type(RTN_LOCAL)
        .exprs()
        .to_vec();
    if let Some(Expr::Cmp { op, .. }) = not_local.last_mut() {
        *op = CmpOp::Neq;
    }
    let mut rules = vec![
        PlannedRule {
            text: "fib daddr type != local return".into(),
            exprs: [
                not_local,
                RuleBuilder::new().verdict(Verdict::Return).exprs().to_vec(),
            ]
            .concat(),
        },
        accept("iifname \"lo\"".into(), RuleBuilder::new().iifname("lo")),
        accept(
            "ct state established,related".into(),
            RuleBuilder::new().ct_state_any(CT_STATE_ESTABLISHED | CT_STATE_RELATED),
        ),
        accept("meta l4proto icmp".into(), RuleBuilder::new().l4proto(1)),
        accept(
            "meta l4proto ipv6-icmp".into(),
            RuleBuilder::new().l4proto(58),
        ),
    ];
    for n in &inp.pod_cidrs {
        let fam = if n.addr().is_ipv6() { "ip6" } else { "ip" };
        rules.push(accept(
            format!("{fam} saddr {n}"),
            RuleBuilder::new().addr_cidr(Dir::Src, *n),
        ));
    }
    for v6 in [false, true] {
        let (fam, set, t) = if v6 {
            ("ip6", "pods6", DataType::Ipv6Addr)
        } else {
            ("ip", "pods4", DataType::Ipv4Addr)
        };
        let ips: Vec<&IpAddr> = inp
            .pod_addrs
            .iter()
            .filter(|ip| ip.is_ipv6() == v6)
            .collect();
        if ips.is_empty() {
            continue;
        }
        r.set(SetDef::set(set, vec![t]));
        for ip in ips {
            r.elem(set, Elem::addr(*ip));
        }
        rules.push(accept(
            format!("{fam} saddr @{set}"),
            RuleBuilder::new().addr_in_set(v6, Dir::Src, set, false),
        ));
    }
    let l4 = [KeyField::L4Proto, KeyField::ThDport];
    r.set(SetDef::vmap(
        "open",
        vec![DataType::InetProto, DataType::InetService],
    ));
    for (proto, port) in inp.open.keys() {
        r.elem(
            "open",
            Elem::concat(&[KeyPart::Proto(*proto), KeyPart::Port(*port)])
                .with_verdict(Verdict::Accept),
        );
    }
    for v6 in [false, true] {
        let (fam, nodes, addr, t) = if v6 {
            ("ip6", "nodes6", "open-addr6", DataType::Ipv6Addr)
        } else {
            ("ip", "nodes4", "open-addr4", DataType::Ipv4Addr)
        };
        r.set(SetDef::set(nodes, vec![t]));
        for ip in inp.nodes.iter().filter(|ip| ip.is_ipv6() == v6) {
            r.elem(nodes, Elem::addr(*ip));
        }
        rules.push(accept(
            format!("{fam} saddr @{nodes}"),
            RuleBuilder::new().addr_in_set(v6, Dir::Src, nodes, false),
        ));
        r.set(SetDef::vmap(
            addr,
            vec![t, DataType::InetProto, DataType::InetService],
        ));
        for (ip, proto, port) in inp.open_addr.keys().filter(|(ip, _, _)| ip.is_ipv6() == v6) {
            r.elem(
                addr,
                Elem::concat(&[
                    KeyPart::Addr(*ip),
                    KeyPart::Proto(*proto),
                    KeyPart::Port(*port),
                ])
                .with_verdict(Verdict::Accept),
            );
        }
    }
    rules.push(rule(
        "meta l4proto . th dport vmap @open",
        RuleBuilder::new().concat_vmap(&l4, "open"),
    ));
    for v6 in [false, true] {
        let (fam, addr, key) = if v6 {
            ("ip6", "open-addr6", KeyField::Ip6(Dir::Dst))
        } else {
            ("ip", "open-addr4", KeyField::Ip4(Dir::Dst))
        };
        rules.push(rule(
            format!("{fam} daddr . meta l4proto . th dport vmap @{addr}"),
            RuleBuilder::new().concat_vmap(&[key, KeyField::L4Proto, KeyField::ThDport], addr),
        ));
    }
    rules.push(rule(
        "counter drop",
        RuleBuilder::new().counter().verdict(Verdict::Drop),
    ));
    r.chain(
        "prerouting",
        Some(BaseChain {
            kind: ChainType::Filter,
            hook: Hook::Prerouting,
            priority: priority::MANGLE,
            policy: Policy::Accept,
        }),
        rules,
    );
    r
}

/// Every rule a person should know about, and why: what `cnictl get nodefirewall` shows.
pub fn explain(inp: &Inputs) -> Vec<Line> {
    let line = |rule: String, why: &str| Line {
        rule,
        why: why.to_string(),
    };
    if !inp.enabled {
        return vec![line(
            "(no table)".into(),
            "the ClusterNetwork's nodeFirewall is not enabled: nothing is filtered",
        )];
    }
    let mut out = vec![
        line("iifname \"lo\" accept".into(), "the node talking to itself"),
        line(
            "ct state established,related accept".into(),
            "replies and the rest of accepted connections",
        ),
        line(
            "meta l4proto icmp, ipv6-icmp accept".into(),
            "ICMP (IPv6 neighbour discovery among it)",
        ),
    ];
    for n in &inp.pod_cidrs {
        out.push(line(
            format!("saddr {n} accept"),
            "the cluster's pods (cluster DNS, health checks)",
        ));
    }
    for ip in &inp.pod_addrs {
        out.push(line(
            format!("saddr {ip} accept"),
            "a pod of the cluster (its pod CIDR holds node addresses: pods one by one)",
        ));
    }
    for ip in &inp.nodes {
        out.push(line(
            format!("saddr {ip} accept"),
            "a node of the cluster (VXLAN, the store, agents)",
        ));
    }
    for ((proto, port), why) in &inp.open {
        out.push(line(
            format!("{} dport {port} accept", proto_name(*proto)),
            &why.join("; "),
        ));
    }
    for ((ip, proto, port), why) in &inp.open_addr {
        out.push(line(
            format!("daddr {ip} {} dport {port} accept", proto_name(*proto)),
            &why.join("; "),
        ));
    }
    out.push(line(
        "counter drop".into(),
        "anything else to the node's own addresses",
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_table_and_reasons() {
        let inp = Inputs {
            enabled: true,
            pod_cidrs: vec!["10.244.0.0/16".parse().unwrap()],
            pod_addrs: Vec::new(),
            nodes: vec![
                "10.240.0.5".parse().unwrap(),
                "fd00:240::5".parse().unwrap(),
            ],
            open: [
                (
                    (6, 22),
                    vec!["operator extra (nodeFirewall.allow)".to_string()],
                ),
                ((6, 30080), vec!["NodePort of shop/web".to_string()]),
            ]
            .into(),
            open_addr: [(
                ("10.240.1.1".parse().unwrap(), 6, 80),
                vec!["load-balancer address of shop/web, announced by this node".to_string()],
            )]
            .into(),
        };
        let text = plan(&inp).render_as(TABLE);
        let want = include_str!("golden.nft");
        if std::env::var_os("FERRO_BLESS").is_some() {
            std::fs::write(
                concat!(env!("CARGO_MANIFEST_DIR"), "/src/nodefw/golden.nft"),
                &text,
            )
            .unwrap();
            return;
        }
        assert_eq!(text, want, "FERRO_BLESS=1 rewrites src/nodefw/golden.nft");
        let lines = explain(&inp);
        assert!(lines
            .iter()
            .any(|l| l.rule == "tcp dport 30080 accept" && l.why == "NodePort of shop/web"));
        assert!(plan(&Inputs::default()).chains.is_empty());
    }

    #[test]
    fn pods_one_by_one_when_their_cidr_holds_the_nodes() {
        let inp = Inputs {
            enabled: true,
            pod_addrs: vec!["10.240.0.21".parse().unwrap()],
            nodes: vec!["10.240.0.5".parse().unwrap()],
            ..Inputs::default()
        };
        let text = plan(&inp).render_as(TABLE);
        assert!(text.contains("ip saddr @pods4 accept"), "{text}");
        assert!(
            text.contains("set pods4 { type ipv4_addr } = {\n\t\t10.240.0.21"),
            "{text}"
        );
        assert!(!text.contains("pods6"), "{text}");
        assert!(explain(&inp)
            .iter()
            .any(|l| l.rule == "saddr 10.240.0.21 accept" && l.why.starts_with("a pod")));
    }
}
