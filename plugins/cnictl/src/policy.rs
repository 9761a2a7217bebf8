//! `cnictl policy explain FROM TO PORT/PROTO` and `cnictl get policystats`: NetworkPolicy as
//! the node's agent computes and programs it.

use ferro_agent_api::policy::PolicyStats;
use ferro_agent_api::{Request, Response};

use crate::cli::Invocation;
use crate::commands::Ctx;
use crate::error::Error;

/// The words `cnictl get` accepts for drop counters.
pub const STATS_KINDS: [&str; 3] = ["policystats", "policystat", "pstats"];

/// `PORT/PROTO`: `80/TCP`, `53/udp`, `80` (TCP), `icmp`, `icmpv6`, `sctp/8080`... The port
/// is 0 for protocols without ports.
pub fn port_proto(s: &str) -> Result<(u16, String), Error> {
    let bad = || {
        Error::usage(format!(
            "{s:?}: PORT/PROTO, e.g. 80/TCP, 53/UDP, 8080 (TCP), ICMP"
        ))
    };
    let (a, b) = match s.split_once('/') {
        Some((a, b)) => (a, Some(b)),
        None => (s, None),
    };
    let port_of = |p: &str| p.parse::<u16>().map_err(|_| bad());
    match (a.parse::<u16>(), b) {
        (Ok(port), None) => Ok((port, "TCP".into())),
        (Ok(port), Some(proto)) => Ok((port, proto.to_ascii_uppercase())),
        (Err(_), None) => match a.to_ascii_uppercase().as_str() {
            p @ ("ICMP" | "ICMPV6") => Ok((0, p.into())),
            _ => Err(bad()),
        },
        (Err(_), Some(port)) => Ok((port_of(port)?, a.to_ascii_uppercase())),
    }
}

/// `cnictl policy explain FROM TO PORT/PROTO [--family 4|6] [-o json]`.
pub fn cmd_policy(ctx: &mut Ctx<'_>, inv: &Invocation) -> Result<(), Error> {
    match inv.positionals.first().map(String::as_str) {
        Some("explain") => {}
        Some("stats") => return stats(ctx, inv),
        Some(other) => {
            return Err(Error::usage(format!(
                "policy {other}: unknown (explain FROM TO PORT/PROTO, stats)"
            )))
        }
        None => return Err(Error::usage("policy: explain or stats")),
    }
    if inv.positionals.len() != 4 {
        return Err(Error::usage(
            "policy explain FROM TO PORT/PROTO: FROM and TO are pods (namespace/name) or addresses",
        ));
    }
    let (port, protocol) = port_proto(&inv.positionals[3])?;
    let family = match inv.values("family").last() {
        None => None,
        Some(f) => Some(
            f.parse::<u8>()
                .ok()
                .filter(|f| *f == 4 || *f == 6)
                .ok_or_else(|| Error::usage(format!("--family {f}: 4 or 6")))?,
        ),
    };
    let req = Request::PolicyExplain {
        from: inv.positionals[1].clone(),
        to: inv.positionals[2].clone(),
        port,
        protocol,
        family,
    };
    match ctx.call(&req)? {
        Response::Explanation { explanation } => {
            let text = if inv.values("output").last() == Some(&"json") {
                format!(
                    "{}\n",
                    serde_json::to_string_pretty(&explanation).unwrap_or_default()
                )
            } else {
                format!(
                    "{}  ({} -> {})\n",
                    explanation.text.trim_end(),
                    explanation.from_address,
                    explanation.to_address
                )
            };
            ctx.write_out(&text)
        }
        other => Err(crate::cluster::unexpected(&other)),
    }
}

fn stats(ctx: &mut Ctx<'_>, inv: &Invocation) -> Result<(), Error> {
    let namespace = inv.values("namespace").last().map(|s| s.to_string());
    let s = fetch(ctx, namespace)?;
    let json = inv.values("output").last() == Some(&"json");
    ctx.write_out(&render(&s, json, true))
}

fn fetch(ctx: &Ctx<'_>, namespace: Option<String>) -> Result<PolicyStats, Error> {
    match ctx.call(&Request::PolicyStats { namespace })? {
        Response::PolicyStats { stats } => Ok(stats),
        other => Err(crate::cluster::unexpected(&other)),
    }
}

/// `cnictl get policystats [-n NS | -A] [-o json|yaml|wide]`.
pub fn cmd_get_stats(ctx: &mut Ctx<'_>, inv: &Invocation) -> Result<(), Error> {
    let all = inv.has("all-namespaces");
    let ns = inv.values("namespace").last().map(|s| s.to_string());
    if all && ns.is_some() {
        return Err(Error::usage("-n and -A exclude each other"));
    }
    if inv.positionals.len() > 1 {
        return Err(Error::usage("get policystats takes no NAME"));
    }
    let namespace = if all {
        None
    } else {
        Some(ns.unwrap_or_else(|| "default".into()))
    };
    let s = fetch(ctx, namespace)?;
    let text = match inv.values("output").last().copied() {
        Some("json") => render(&s, true, false),
        Some("yaml") => {
            ferro_cluster::manifest::to_yaml(&serde_json::to_value(&s).unwrap_or_default())
        }
        Some("wide") | None => render(&s, false, all),
        Some(o) => {
            return Err(Error::usage(format!(
                "-o {o}: unknown output format (yaml, json, wide)"
            )))
        }
    };
    ctx.write_out(&text)
}

/// Two tables: drops per pod and direction, then per policy; or the JSON.
pub fn render(s: &PolicyStats, json: bool, all_namespaces: bool) -> String {
    if json {
        return format!("{}\n", serde_json::to_string_pretty(s).unwrap_or_default());
    }
    let mut out = String::new();
    if s.pods.is_empty() {
        out = format!(
            "No pod of node {} is isolated by a NetworkPolicy{}.\n",
            s.node,
            if all_namespaces {
                ""
            } else {
                " in this namespace"
            }
        );
    } else {
        out.push_str(&network_policy_tables(s));
    }
    if !s.egress.is_empty() {
        let mut rows = vec![vec![
            "NAMESPACE".to_string(),
            "POD".into(),
            "EGRESS POLICY".into(),
            "DROPPED".into(),
            "BYTES".into(),
        ]];
        for d in &s.egress {
            rows.push(vec![
                d.namespace.clone(),
                d.pod.clone(),
                d.policy.clone(),
                d.packets.to_string(),
                d.bytes.to_string(),
            ]);
        }
        out.push_str("\nConnections leaving the cluster dropped by an EgressPolicy\n");
        out.push_str(&ferro_cluster::table::layout(&rows));
    }
    out
}

/// The NetworkPolicy tables: per pod and direction, then per policy.
fn network_policy_tables(s: &PolicyStats) -> String {
    let mut rows = vec![vec![
        "NAMESPACE".to_string(),
        "POD".into(),
        "DIRECTION".into(),
        "DROPPED".into(),
        "BYTES".into(),
        "POLICIES".into(),
    ]];
    for d in &s.pods {
        rows.push(vec![
            d.namespace.clone(),
            d.pod.clone(),
            d.direction.clone(),
            d.packets.to_string(),
            d.bytes.to_string(),
            d.policies.join(","),
        ]);
    }
    let mut out = format!("Node {}: drops per pod\n", s.node);
    out.push_str(&ferro_cluster::table::layout(&rows));
    let mut rows = vec![vec![
        "NAMESPACE".to_string(),
        "POLICY".into(),
        "PODS".into(),
        "DROPPED".into(),
        "BYTES".into(),
    ]];
    for d in &s.policies {
        rows.push(vec![
            d.namespace.clone(),
            d.policy.clone(),
            d.pods.to_string(),
            d.packets.to_string(),
            d.bytes.to_string(),
        ]);
    }
    out.push_str("\nDrops at the pods each policy isolates\n");
    out.push_str(&ferro_cluster::table::layout(&rows));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferro_agent_api::policy::{PodDrops, PolicyDrops};

    #[test]
    fn ports_and_protocols_read_as_written() {
        assert_eq!(port_proto("80/TCP").unwrap(), (80, "TCP".into()));
        assert_eq!(port_proto("53/udp").unwrap(), (53, "UDP".into()));
        assert_eq!(port_proto("8080").unwrap(), (8080, "TCP".into()));
        assert_eq!(port_proto("icmp").unwrap(), (0, "ICMP".into()));
        assert_eq!(port_proto("sctp/9").unwrap(), (9, "SCTP".into()));
        assert!(port_proto("x/y").is_err());
        assert!(port_proto("99999/TCP").is_err());
        assert!(port_proto("gre").is_err());
    }

    #[test]
    fn stats_render_as_two_tables() {
        let s = PolicyStats {
            node: "node-a".into(),
            revision: 7,
            pods: vec![PodDrops {
                namespace: "x".into(),
                pod: "a".into(),
                direction: "ingress".into(),
                policies: vec!["deny-all".into(), "web".into()],
                packets: 12,
                bytes: 720,
            }],
            policies: vec![PolicyDrops {
                namespace: "x".into(),
                policy: "deny-all".into(),
                pods: 1,
                packets: 12,
                bytes: 720,
            }],
            egress: Vec::new(),
        };
        let t = render(&s, false, true);
        assert_eq!(
            t,
            "Node node-a: drops per pod
NAMESPACE   POD   DIRECTION   DROPPED   BYTES   POLICIES
x           a     ingress     12        720     deny-all,web

Drops at the pods each policy isolates
NAMESPACE   POLICY     PODS   DROPPED   BYTES
x           deny-all   1      12        720
"
        );
        let e = PolicyStats {
            pods: Vec::new(),
            policies: Vec::new(),
            egress: vec![ferro_agent_api::policy::EgressDrops {
                namespace: "x".into(),
                pod: "a".into(),
                policy: "x-out".into(),
                packets: 3,
                bytes: 180,
            }],
            ..s.clone()
        };
        assert_eq!(
            render(&e, false, false),
            "No pod of node node-a is isolated by a NetworkPolicy in this namespace.

Connections leaving the cluster dropped by an EgressPolicy
NAMESPACE   POD   EGRESS POLICY   DROPPED   BYTES
x           a     x-out           3         180
"
        );
        assert!(render(&PolicyStats::default(), false, false).starts_with("No pod of node"));
        assert!(render(&s, true, false).contains("\"packets\": 12"));
    }
}
