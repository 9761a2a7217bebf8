//! `cnictl ipam show|check|release`: the cluster's address pool, through ferro-agent.
//!
//! - `show [--node N] [-o wide|json]`: each pool (pod CIDR) and how much of it is claimed
//!   and used; each node's blocks and use; with `-o wide`, every block.
//! - `check [-o json]`: what the answering node finds wrong: addresses whose attachment is
//!   gone (leaks: released after the agent's grace period, never while the pod lives),
//!   attachments without their address, conflicts (overlapping blocks, a block this node lost
//!   to another), and blocks of nodes whose lease is gone. Exit status 1 when something is
//!   leaked, missing or in conflict.
//! - `release ADDRESS... | --attachment ID[/IFNAME]... [--force]`: gives addresses back now
//!   (refused for a live pod unless `--force`); `release --node N`: every block of node N,
//!   whose lease must be gone, back to the pool now.

use ferro_agent_api::ipam::{
    IpamAudit, IpamAuditReply, IpamHandle, IpamReclaim, IpamShow, IpamShowReply,
};
use ferro_agent_api::{Request, Response};
use ferro_cluster::table::layout;

use crate::cli::Invocation;
use crate::commands::Ctx;
use crate::error::Error;

fn output(inv: &Invocation, allowed: &[&str]) -> Result<Option<String>, Error> {
    match inv.values("output").last() {
        None => Ok(None),
        Some(o) if allowed.contains(o) => Ok(Some((*o).to_string())),
        Some(o) => Err(Error::usage(format!(
            "-o {o}: unknown output format ({})",
            allowed.join(", ")
        ))),
    }
}

fn json_text<T: serde::Serialize>(v: &T) -> String {
    format!("{}\n", serde_json::to_string_pretty(v).unwrap_or_default())
}

/// `cnictl ipam VERB ...`.
pub fn cmd_ipam(ctx: &mut Ctx<'_>, inv: &Invocation) -> Result<(), Error> {
    let verb = inv.positionals[0].as_str();
    let rest = &inv.positionals[1..];
    if verb != "release" && !rest.is_empty() {
        return Err(Error::usage(format!(
            "ipam {verb}: unexpected argument {:?}",
            rest[0]
        )));
    }
    match verb {
        "show" => show(ctx, inv),
        "check" => check(ctx, inv),
        "release" => release(ctx, inv, rest),
        other => Err(Error::usage(format!(
            "ipam: unknown verb {other:?} (show, check, release)"
        ))),
    }
}

fn show(ctx: &mut Ctx<'_>, inv: &Invocation) -> Result<(), Error> {
    let out = output(inv, &["wide", "json"])?;
    let node = inv.values("node").last().map(|s| s.to_string());
    let reply = match ctx.call(&Request::IpamShow(IpamShow { node }))? {
        Response::IpamShow(r) => r,
        other => {
            return Err(Error::Cluster(format!(
                "unexpected answer from the agent: {other:?}"
            )))
        }
    };
    let text = match out.as_deref() {
        Some("json") => json_text(&reply),
        _ => show_text(&reply, out.as_deref() == Some("wide")),
    };
    ctx.write_out(&text)
}

fn pct(part: u128, whole: u128) -> String {
    if whole == 0 {
        "-".into()
    } else {
        format!("{:.1}%", part as f64 * 100.0 / whole as f64)
    }
}

/// The tables of `show`.
pub fn show_text(r: &IpamShowReply, wide: bool) -> String {
    let mut rows = vec![vec![
        "POOL".to_string(),
        "BLOCK".into(),
        "NODE-BLOCK".into(),
        "BLOCKS".into(),
        "CLAIMED".into(),
        "IN-USE".into(),
        "SIZE".into(),
    ]];
    for p in &r.pools {
        rows.push(vec![
            p.cidr.to_string(),
            format!("/{}", p.block_prefix),
            format!("/{}", p.node_block_prefix),
            p.blocks.to_string(),
            format!(
                "{} ({})",
                p.claimed_addresses,
                pct(p.claimed_addresses, p.size)
            ),
            format!("{} ({})", p.in_use, pct(u128::from(p.in_use), p.size)),
            p.size.to_string(),
        ]);
    }
    let mut text = layout(&rows);
    text.push('\n');
    let mut rows = vec![vec![
        "NODE".to_string(),
        "READY".into(),
        "BLOCKS".into(),
        "IN-USE".into(),
        "CAPACITY".into(),
    ]];
    for n in &r.nodes {
        rows.push(vec![
            n.node.clone(),
            if n.ready { "yes" } else { "no" }.into(),
            n.blocks.to_string(),
            n.in_use.to_string(),
            n.capacity.to_string(),
        ]);
    }
    if r.nodes.is_empty() {
        text.push_str("No blocks claimed.\n");
    } else {
        text.push_str(&layout(&rows));
    }
    if wide && !r.blocks.is_empty() {
        text.push('\n');
        let mut rows = vec![vec![
            "BLOCK".to_string(),
            "NODE".into(),
            "MODE".into(),
            "IN-USE".into(),
            "CAPACITY".into(),
        ]];
        for b in &r.blocks {
            rows.push(vec![
                b.cidr.to_string(),
                b.node.clone(),
                b.mode.as_str().into(),
                b.in_use.to_string(),
                b.capacity.to_string(),
            ]);
        }
        text.push_str(&layout(&rows));
    }
    text
}

fn check(ctx: &mut Ctx<'_>, inv: &Invocation) -> Result<(), Error> {
    let out = output(inv, &["json"])?;
    let reply = match ctx.call(&Request::IpamAudit(IpamAudit {}))? {
        Response::IpamAudit(r) => r,
        other => {
            return Err(Error::Cluster(format!(
                "unexpected answer from the agent: {other:?}"
            )))
        }
    };
    let text = match out.as_deref() {
        Some("json") => json_text(&reply),
        _ => check_text(&reply),
    };
    ctx.write_out(&text)?;
    if reply.clean() {
        Ok(())
    } else {
        Err(Error::Cluster(format!(
            "node {}: {} leaked, {} missing, {} conflicts",
            reply.node,
            reply.leaked.len(),
            reply.missing.len(),
            reply.conflicts.len()
        )))
    }
}

/// The report of `check`.
pub fn check_text(r: &IpamAuditReply) -> String {
    let mut t = format!(
        "Node {}: {} attachments hold addresses.\n",
        r.node, r.allocations
    );
    if !r.store_reachable {
        t.push_str("The store cannot be read: only this node's own state was checked.\n");
    }
    if r.leaked.is_empty() {
        t.push_str("Leaked: none.\n");
    } else {
        t.push_str(&format!("Leaked ({}):\n", r.leaked.len()));
        for l in &r.leaked {
            let pod = l
                .pod
                .as_ref()
                .map_or_else(String::new, |p| format!(" pod {p}"));
            t.push_str(&format!(
                "  {} {}{pod}: {} (seen for {}s, released in {}s)\n",
                l.address, l.handle, l.evidence, l.for_seconds, l.release_in_seconds
            ));
        }
    }
    if r.missing.is_empty() {
        t.push_str("Missing: none.\n");
    } else {
        t.push_str(&format!("Missing ({}):\n", r.missing.len()));
        for m in &r.missing {
            t.push_str(&format!("  {} {}: {}\n", m.address, m.handle, m.detail));
        }
    }
    if r.conflicts.is_empty() {
        t.push_str("Conflicts: none.\n");
    } else {
        t.push_str(&format!("Conflicts ({}):\n", r.conflicts.len()));
        for c in &r.conflicts {
            t.push_str(&format!("  {c}\n"));
        }
    }
    if !r.orphaned.is_empty() {
        t.push_str(&format!(
            "Blocks of nodes whose lease is gone ({}):\n",
            r.orphaned.len()
        ));
        for o in &r.orphaned {
            let when = o.release_in_seconds.map_or_else(
                || "not counted yet".to_string(),
                |s| format!("back to the pool in {s}s"),
            );
            t.push_str(&format!(
                "  {} node {}: {} in use, {when}\n",
                o.cidr, o.node, o.in_use
            ));
        }
    }
    if r.unsynced > 0 {
        t.push_str(&format!(
            "{} allocations are not in the store's copy yet (written within a second, or when the store answers).\n",
            r.unsynced
        ));
    }
    t
}

fn release(ctx: &mut Ctx<'_>, inv: &Invocation, args: &[String]) -> Result<(), Error> {
    let node = inv.values("node").last().map(|s| s.to_string());
    let mut req = IpamReclaim {
        node: node.clone(),
        force: inv.has("force"),
        ..IpamReclaim::default()
    };
    for a in args {
        req.addresses.push(
            a.parse()
                .map_err(|_| Error::usage(format!("ipam release: {a:?} is not an IP address")))?,
        );
    }
    for a in inv.values("attachment") {
        let (id, ifname) = a.split_once('/').unwrap_or((a, ""));
        if id.is_empty() {
            return Err(Error::usage(format!(
                "--attachment {a:?}: want ID[/IFNAME]"
            )));
        }
        req.handles.push(IpamHandle {
            container_id: id.to_string(),
            ifname: if ifname.is_empty() {
                ctx.ifname()
            } else {
                ifname.to_string()
            },
        });
    }
    let named = !req.addresses.is_empty() || !req.handles.is_empty();
    if node.is_some() == named {
        return Err(Error::usage(
            "ipam release: name ADDRESSes and/or --attachment, or --node alone",
        ));
    }
    match ctx.call(&Request::IpamReclaim(req))? {
        Response::IpamReleased { addresses, blocks } => {
            let mut t = String::new();
            for a in addresses {
                t.push_str(&format!("released {a}\n"));
            }
            for b in blocks {
                t.push_str(&format!("block {b} returned to the pool\n"));
            }
            ctx.write_out(&t)
        }
        other => Err(Error::Cluster(format!(
            "unexpected answer from the agent: {other:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferro_agent_api::ipam::*;

    #[test]
    fn the_tables() {
        let r = IpamShowReply {
            pools: vec![PoolUse {
                cidr: "10.244.0.0/16".parse().unwrap(),
                block_prefix: 26,
                node_block_prefix: 24,
                blocks: 3,
                claimed_addresses: 192,
                in_use: 70,
                size: 65536,
            }],
            nodes: vec![NodeUse {
                node: "node-a".into(),
                ready: true,
                blocks: 3,
                in_use: 70,
                capacity: 191,
            }],
            blocks: vec![BlockUse {
                cidr: "10.244.0.0/26".parse().unwrap(),
                node: "node-a".into(),
                mode: IpamMode::Pod,
                in_use: 63,
                capacity: 63,
                live: true,
            }],
        };
        assert_eq!(
            show_text(&r, true),
            "POOL            BLOCK   NODE-BLOCK   BLOCKS   CLAIMED      IN-USE      SIZE\n\
             10.244.0.0/16   /26     /24          3        192 (0.3%)   70 (0.1%)   65536\n\
             \n\
             NODE     READY   BLOCKS   IN-USE   CAPACITY\n\
             node-a   yes     3        70       191\n\
             \n\
             BLOCK           NODE     MODE   IN-USE   CAPACITY\n\
             10.244.0.0/26   node-a   pod    63       63\n"
        );
        let a = IpamAuditReply {
            node: "node-a".into(),
            allocations: 2,
            leaked: vec![Leak {
                address: "10.244.0.5".parse().unwrap(),
                handle: IpamHandle {
                    container_id: "c1".into(),
                    ifname: "eth0".into(),
                },
                pod: None,
                evidence: "netns /run/netns/x is gone".into(),
                for_seconds: 3,
                release_in_seconds: 897,
            }],
            store_reachable: true,
            ..IpamAuditReply::default()
        };
        assert_eq!(
            check_text(&a),
            "Node node-a: 2 attachments hold addresses.\nLeaked (1):\n  10.244.0.5 c1/eth0: netns /run/netns/x is gone (seen for 3s, released in 897s)\nMissing: none.\nConflicts: none.\n"
        );
    }
}
