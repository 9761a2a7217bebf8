//! The decision for one connection attempt, and why: the semantics of `networking.k8s.io/v1`
//! NetworkPolicy, written once. The predicted truth tables, `cnictl policy explain` and the
//! sets a node programs all follow from it.
//!
//! A connection from S to D (protocol, destination port) is allowed when both hold:
//! - S's egress allows it: S is not a pod, or no policy of S's namespace selects S for
//!   Egress, or some Egress rule of such a policy has a peer matching D and a port matching;
//! - D's ingress allows it: D is not a pod, or the source is an address of D's own node, or
//!   no policy selects D for Ingress, or some Ingress rule of such a policy matches S.
//!
//! Named ports resolve on the destination pod. A pod reaching itself (through its loopback)
//! is always allowed. Replies of allowed connections pass (the datapath is stateful).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::model::{Cluster, Direction, Key, Pod, PortMatch, Proto, Rule};

/// Why one side (the source's egress or the destination's ingress) lets a connection
/// through, or not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "camelCase")]
pub enum Side {
    /// The endpoint is no pod: no policy of its own applies.
    NotAPod,
    /// No policy selects the pod for this direction.
    NotIsolated,
    /// Ingress from an address of the pod's own node: always allowed.
    OwnNode,
    /// A rule allows it.
    Allowed {
        /// The policy.
        policy: Key,
        /// The rule's index in `ingress` or `egress`.
        rule: usize,
        /// The matching peer's index in `from`/`to` (`None`: the rule has no peers, so
        /// every address matches).
        peer: Option<usize>,
        /// The matching port's index in `ports` (`None`: the rule has no ports).
        port: Option<usize>,
    },
    /// The pod is isolated and no rule allows it.
    Denied {
        /// The policies isolating the pod in this direction.
        isolated_by: Vec<Key>,
    },
}

impl Side {
    /// Whether this side lets the connection through.
    pub fn allows(&self) -> bool {
        !matches!(self, Side::Denied { .. })
    }
}

/// The decision for one connection attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    /// Allowed or not.
    pub allowed: bool,
    /// The source pod reaches itself (never filtered).
    pub loopback: bool,
    /// The source pod, when the source address is one.
    pub from_pod: Option<Key>,
    /// The destination pod.
    pub to_pod: Option<Key>,
    /// The source's egress.
    pub egress: Side,
    /// The destination's ingress.
    pub ingress: Side,
}

/// Whether `rule`'s ports let `proto`/`port` through to `dst` (named ports resolve on
/// `dst`); the matching entry's index (`None` when the rule has no ports).
pub fn port_matches(
    rule: &Rule,
    proto: u8,
    port: Option<u16>,
    dst: Option<&Pod>,
) -> Option<Option<usize>> {
    let Some(ports) = &rule.ports else {
        return Some(None);
    };
    let proto = Proto::from_number(proto)?;
    let port = port?;
    ports
        .iter()
        .position(|p| {
            p.proto == proto
                && match &p.port {
                    PortMatch::Any => true,
                    PortMatch::Range(a, b) => (*a..=*b).contains(&port),
                    PortMatch::Named(n) => dst.and_then(|d| d.named_port(n, proto)) == Some(port),
                }
        })
        .map(Some)
}

/// The index of the first peer of `rule` (of a policy in `policy_ns`) matching address
/// `addr` (of pod `pod`, if it is one); `Some(None)` when the rule has no peers.
pub fn peer_matches(
    c: &Cluster,
    rule: &Rule,
    policy_ns: &str,
    addr: IpAddr,
    pod: Option<&Pod>,
) -> Option<Option<usize>> {
    let Some(peers) = &rule.peers else {
        return Some(None);
    };
    peers
        .iter()
        .position(|peer| match peer {
            crate::model::Peer::Block { .. } => peer.block_contains(addr),
            crate::model::Peer::Pods { .. } => {
                pod.is_some_and(|p| c.peer_matches_pod(peer, policy_ns, p))
            }
        })
        .map(Some)
}

/// What is attempted: the protocol, the destination port and pod (named ports resolve on
/// it).
struct Attempt<'a> {
    proto: u8,
    port: Option<u16>,
    dst: Option<&'a Pod>,
}

/// One side: `pod`'s policies of `dir` against the other end (`other_addr`, `other_pod`).
fn side(
    c: &Cluster,
    pod: &Pod,
    dir: Direction,
    other_addr: IpAddr,
    other_pod: Option<&Pod>,
    a: &Attempt<'_>,
) -> Side {
    let Attempt { proto, port, dst } = *a;
    let isolating = c.isolating(pod, dir);
    if isolating.is_empty() {
        return Side::NotIsolated;
    }
    for p in &isolating {
        for (i, rule) in p.rules(dir).into_iter().flatten().enumerate() {
            let Some(peer) = peer_matches(c, rule, &p.key.namespace, other_addr, other_pod) else {
                continue;
            };
            if let Some(port) = port_matches(rule, proto, port, dst) {
                return Side::Allowed {
                    policy: p.key.clone(),
                    rule: i,
                    peer,
                    port,
                };
            }
        }
    }
    Side::Denied {
        isolated_by: isolating.iter().map(|p| p.key.clone()).collect(),
    }
}

/// The decision for a connection from `src` to `dst` with IP protocol `proto` (6, 17,
/// 132, or another) and destination port `port` (for protocols with ports).
pub fn decide(c: &Cluster, src: IpAddr, dst: IpAddr, proto: u8, port: Option<u16>) -> Decision {
    let sp = c.pod_at(src);
    let dp = c.pod_at(dst);
    let from_pod = sp.map(|p| p.key.clone());
    let to_pod = dp.map(|p| p.key.clone());
    if sp.is_some() && from_pod == to_pod {
        return Decision {
            allowed: true,
            loopback: true,
            from_pod,
            to_pod,
            egress: Side::NotIsolated,
            ingress: Side::NotIsolated,
        };
    }
    let attempt = Attempt {
        proto,
        port,
        dst: dp,
    };
    let egress = match sp {
        None => Side::NotAPod,
        Some(s) => side(c, s, Direction::Egress, dst, dp, &attempt),
    };
    let ingress = match dp {
        None => Side::NotAPod,
        Some(d) if c.node_addrs(&d.node).contains(&src) => Side::OwnNode,
        Some(d) => side(c, d, Direction::Ingress, src, sp, &attempt),
    };
    Decision {
        allowed: egress.allows() && ingress.allows(),
        loopback: false,
        from_pod,
        to_pod,
        egress,
        ingress,
    }
}

/// The decision between two pods over the family of `v6` (their first addresses of it);
/// `None` when either has no address of that family.
pub fn decide_pods(
    c: &Cluster,
    from: &Key,
    to: &Key,
    proto: Proto,
    port: u16,
    v6: bool,
) -> Option<Decision> {
    let addr = |k: &Key| c.pod(k)?.addrs.iter().copied().find(|a| a.is_ipv6() == v6);
    Some(decide(
        c,
        addr(from)?,
        addr(to)?,
        proto.number(),
        Some(port),
    ))
}

/// A decision in words, several lines: the verdict, then each side.
pub fn explain(c: &Cluster, d: &Decision) -> String {
    let verdict = if d.allowed { "allowed" } else { "denied" };
    let name = |k: &Option<Key>| k.as_ref().map_or("(not a pod)".to_string(), Key::to_string);
    let mut out = format!("{verdict}: {} -> {}\n", name(&d.from_pod), name(&d.to_pod));
    if d.loopback {
        out.push_str("  a pod reaching itself goes through its own loopback: never filtered\n");
        return out;
    }
    for (label, s, dir) in [
        ("egress of the source", &d.egress, Direction::Egress),
        ("ingress of the destination", &d.ingress, Direction::Ingress),
    ] {
        out.push_str(&format!("  {label}: {}\n", side_text(c, s, dir)));
    }
    out
}

/// One side in words.
pub fn side_text(c: &Cluster, s: &Side, dir: Direction) -> String {
    match s {
        Side::NotAPod => "not a pod: no policy applies".into(),
        Side::NotIsolated => format!("not isolated: no policy selects the pod for {dir}"),
        Side::OwnNode => "from the pod's own node: always allowed".into(),
        Side::Allowed {
            policy,
            rule,
            peer,
            port,
        } => {
            let field = match dir {
                Direction::Ingress => ("ingress", "from"),
                Direction::Egress => ("egress", "to"),
            };
            let mut t = format!("allowed by NetworkPolicy {policy}, {}[{rule}]", field.0);
            let r = c
                .policy(policy)
                .and_then(|p| p.rules(dir))
                .and_then(|r| r.get(*rule));
            match peer {
                None => t.push_str(&format!(" (no {}: every peer)", field.1)),
                Some(i) => {
                    t.push_str(&format!(" {}[{i}]", field.1));
                    if let Some(peer) = r.and_then(|r| r.peers.as_ref()).and_then(|p| p.get(*i)) {
                        t.push_str(&format!(" ({})", crate::text::peer(peer)));
                    }
                }
            }
            match port {
                None => t.push_str(", every port"),
                Some(i) => {
                    t.push_str(&format!(", ports[{i}]"));
                    if let Some(p) = r.and_then(|r| r.ports.as_ref()).and_then(|p| p.get(*i)) {
                        t.push_str(&format!(" ({})", crate::text::port(p)));
                    }
                }
            }
            t
        }
        Side::Denied { isolated_by } => {
            let names: Vec<String> = isolated_by.iter().map(Key::to_string).collect();
            format!(
                "denied: isolated for {dir} by {}, and no rule of {} matches",
                names.join(", "),
                if names.len() == 1 { "it" } else { "them" }
            )
        }
    }
}
