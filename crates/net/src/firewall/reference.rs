//! The reference plugins' iptables-nft state of an attachment (masquerade and host-port chains
//! in `ip nat`/`ip6 nat`), removed by DEL and GC when this suite has taken a node over.
//! What the reference writes, why this is the one exception to "never touch another owner's
//! tables", and how DEL and GC stay cheap: [docs/firewall.md][design].
//!
//! [design]: ../../../../docs/firewall.md#the-reference-plugins-state

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use sha2::{Digest, Sha512};

use super::{guarded, FirewallError, Tag};
use crate::nft::{Batch, CmpOp, Expr, Family, MetaKey, NftSocket, PayloadBase, RuleInfo, TableRef};

/// The chains the reference creates once per node, without a per-attachment comment.
pub const SHARED_CHAINS: [&str; 3] = [
    "CNI-HOSTPORT-DNAT",
    "CNI-HOSTPORT-SETMARK",
    "CNI-HOSTPORT-MASQ",
];

/// The tables iptables-nft writes the reference's rules into: `ip nat`, `ip6 nat`.
pub fn nat_tables() -> [TableRef; 2] {
    [
        TableRef::new(Family::Ip, "nat"),
        TableRef::new(Family::Ip6, "nat"),
    ]
}

fn hashed(prefix: &str, network: &str, container_id: &str) -> String {
    let hex = crate::names::hex(&Sha512::digest(
        format!("{network}{container_id}").as_bytes(),
    ));
    // The reference's chain names are 28 characters (`utils.MustFormatHashWithPrefix`).
    format!("{prefix}{}", &hex[..28 - prefix.len()])
}

/// `CNI-<24 hex>`: the reference's masquerade chain of an attachment (bridge, ptp `ipMasq`).
pub fn masq_chain(network: &str, container_id: &str) -> String {
    hashed("CNI-", network, container_id)
}

/// `CNI-DN-<21 hex>`: the reference portmap's DNAT chain of an attachment.
pub fn dnat_chain(network: &str, container_id: &str) -> String {
    hashed("CNI-DN-", network, container_id)
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Whether `chain` is named like a per-attachment chain of the reference.
fn per_attachment_name(chain: &str) -> bool {
    RefKind::of_chain(chain).is_some()
}

/// What an attachment's reference rule is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RefKind {
    /// The masquerade chain `CNI-<h24>` (comment `name: "N" id: "I"`).
    Masquerade,
    /// The host-port chain `CNI-DN-<h21>` (comment `dnat name: "N" id: "I"`).
    HostPorts,
}

impl RefKind {
    /// The chain the reference names after attachment `network`/`container_id`.
    pub fn chain(self, network: &str, container_id: &str) -> String {
        match self {
            RefKind::Masquerade => masq_chain(network, container_id),
            RefKind::HostPorts => dnat_chain(network, container_id),
        }
    }

    /// The kind of a per-attachment chain, by its name.
    pub fn of_chain(chain: &str) -> Option<RefKind> {
        match chain.strip_prefix("CNI-DN-") {
            Some(h) => is_hex(h, 21).then_some(RefKind::HostPorts),
            None => chain
                .strip_prefix("CNI-")
                .is_some_and(|h| is_hex(h, 24))
                .then_some(RefKind::Masquerade),
        }
    }

    /// Where the reference jumps to such a chain from.
    fn jumps_from(self) -> &'static str {
        match self {
            RefKind::Masquerade => "POSTROUTING",
            RefKind::HostPorts => "CNI-HOSTPORT-DNAT",
        }
    }

    /// `masquerade` or `host-port`, for messages.
    pub fn name(self) -> &'static str {
        match self {
            RefKind::Masquerade => "masquerade",
            RefKind::HostPorts => "host-port",
        }
    }
}

/// The attachment a reference comment names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RefOwner {
    /// Masquerade or host ports.
    pub kind: RefKind,
    /// The network name.
    pub network: String,
    /// The container id.
    pub container_id: String,
}

impl RefOwner {
    /// The chain the reference names after this owner.
    pub fn chain(&self) -> String {
        self.kind.chain(&self.network, &self.container_id)
    }
}

/// A Go `%q` string at the start of `s` (plain characters, `\"` and `\\`): its value and
/// the rest of `s`.
fn go_quoted(s: &str) -> Option<(String, &str)> {
    let mut chars = s.strip_prefix('"')?.char_indices();
    let mut out = String::new();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &s[i + 2..])),
            '\\' => match chars.next()?.1 {
                e @ ('"' | '\\') => out.push(e),
                _ => return None,
            },
            c => out.push(c),
        }
    }
    None
}

/// Parses a reference comment: `name: "N" id: "I"` (masquerade) or `dnat name: "N" id: "I"`
/// (host ports); `None` for anything else.
pub fn parse_comment(comment: &str) -> Option<RefOwner> {
    let (kind, rest) = match comment.strip_prefix("dnat ") {
        Some(r) => (RefKind::HostPorts, r),
        None => (RefKind::Masquerade, comment),
    };
    let (network, rest) = go_quoted(rest.strip_prefix("name: ")?)?;
    let (container_id, rest) = go_quoted(rest.strip_prefix(" id: ")?)?;
    (rest.is_empty() && !network.is_empty() && !container_id.is_empty()).then_some(RefOwner {
        kind,
        network,
        container_id,
    })
}

/// The owner a rule names in its comment, if that owner's chain is the one the rule jumps
/// to or sits in (a comment alone proves nothing: the hash of the chain name must agree).
fn owner_of(rule: &RuleInfo) -> Option<(RefOwner, String)> {
    let owner = parse_comment(&rule.iptables_comment()?)?;
    let chain = owner.chain();
    (rule.jump_target() == Some(chain.as_str()) || rule.chain == chain).then_some((owner, chain))
}

/// The address a rule matches as its source (`-s <addr>`, `ip saddr <addr>`), if it does.
fn source_addr(rule: &RuleInfo) -> Option<IpAddr> {
    rule.exprs.windows(2).find_map(|w| match w {
        [Expr::Payload {
            base: PayloadBase::Network,
            offset,
            len,
            ..
        }, Expr::Cmp {
            op: CmpOp::Eq,
            data,
            ..
        }] => match (*offset, *len, data.len()) {
            (12, 4, 4) => <[u8; 4]>::try_from(data.as_slice()).ok().map(IpAddr::from),
            (8, 16, 16) => <[u8; 16]>::try_from(data.as_slice()).ok().map(IpAddr::from),
            _ => None,
        },
        _ => None,
    })
}

/// The protocol and destination port a DNAT rule maps (`-p tcp --dport 8080 -j DNAT`).
fn mapped_port(rule: &RuleInfo) -> Option<(u8, u16)> {
    if !matches!(rule.exprs.last(), Some(Expr::Target { name, .. }) if name == "DNAT") {
        return None;
    }
    let mut proto = None;
    let mut port = None;
    for w in rule.exprs.windows(2) {
        match w {
            [Expr::Meta {
                key: MetaKey::L4PROTO,
                ..
            }, Expr::Cmp {
                op: CmpOp::Eq,
                data,
                ..
            }] => proto = data.first().copied(),
            [Expr::Payload {
                base: PayloadBase::Transport,
                offset: 2,
                len: 2,
                ..
            }, Expr::Cmp {
                op: CmpOp::Eq,
                data,
                ..
            }] => {
                port = <[u8; 2]>::try_from(data.as_slice())
                    .ok()
                    .map(u16::from_be_bytes)
            }
            _ => {}
        }
    }
    Some((proto?, port?))
}

/// One attachment's reference state in one nat table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefAttachment {
    /// `ip nat` or `ip6 nat`.
    pub table: TableRef,
    /// The network name.
    pub network: String,
    /// The container id.
    pub container_id: String,
    /// Its chains (`CNI-<h24>`, `CNI-DN-<h21>`).
    pub chains: BTreeSet<String>,
    /// The pod addresses its masquerade jump matches.
    pub addresses: Vec<IpAddr>,
    /// The host ports its DNAT rules map (protocol number, port).
    pub host_ports: Vec<(u8, u16)>,
}

impl RefAttachment {
    /// This attachment's state of `kind` only; `None` if it has none.
    fn only(mut self, kind: RefKind) -> Option<RefAttachment> {
        self.chains.retain(|c| RefKind::of_chain(c) == Some(kind));
        match kind {
            RefKind::Masquerade => self.host_ports.clear(),
            RefKind::HostPorts => self.addresses.clear(),
        }
        (!self.chains.is_empty()).then_some(self)
    }
}

/// The reference's attachments found in the rules of one table (pure).
pub fn attachments(table: &TableRef, rules: &[RuleInfo]) -> Vec<RefAttachment> {
    let mut found: BTreeMap<(String, String), RefAttachment> = BTreeMap::new();
    for r in rules {
        let Some((owner, chain)) = owner_of(r) else {
            continue;
        };
        let a = found
            .entry((owner.network.clone(), owner.container_id.clone()))
            .or_insert_with(|| RefAttachment {
                table: table.clone(),
                network: owner.network.clone(),
                container_id: owner.container_id.clone(),
                chains: BTreeSet::new(),
                addresses: Vec::new(),
                host_ports: Vec::new(),
            });
        a.chains.insert(chain);
        if r.jump_target().is_some() && owner.kind == RefKind::Masquerade {
            a.addresses.extend(source_addr(r));
        }
    }
    for a in found.values_mut() {
        let dn = dnat_chain(&a.network, &a.container_id);
        if a.chains.contains(&dn) {
            let mut ports: Vec<(u8, u16)> = rules
                .iter()
                .filter(|r| r.chain == dn)
                .filter_map(mapped_port)
                .collect();
            ports.sort_unstable();
            ports.dedup();
            a.host_ports = ports;
        }
    }
    found.into_values().collect()
}

/// Appends the removal of `doomed` chains to `b`: every rule outside them that jumps to one
/// (by handle), then the chains flushed, then deleted. Rules of other owners that do not jump
/// there are never touched. Deletes are idempotent (a rule or chain gone meanwhile is fine).
pub fn removal_ops(b: &mut Batch, t: &TableRef, rules: &[RuleInfo], doomed: &BTreeSet<String>) {
    for r in rules {
        if !doomed.contains(&r.chain) && r.jump_target().is_some_and(|c| doomed.contains(c)) {
            b.del_rule(t, &r.chain, r.handle, true);
        }
    }
    // All flushed before any is deleted: a doomed chain may jump to another one.
    for c in doomed {
        b.flush_chain(t, c, true);
    }
    for c in doomed {
        b.del_chain(t, c, true);
    }
}

/// Whether per-attachment state of the reference is left in `rules` once `doomed` chains
/// are gone: a rule carrying a reference comment, or a chain named like a per-attachment one.
fn state_left(rules: &[RuleInfo], doomed: &BTreeSet<String>) -> bool {
    let removed = |r: &RuleInfo| {
        doomed.contains(&r.chain) || r.jump_target().is_some_and(|c| doomed.contains(c))
    };
    rules.iter().filter(|r| !removed(r)).any(|r| {
        r.iptables_comment()
            .as_deref()
            .and_then(parse_comment)
            .is_some()
            || per_attachment_name(&r.chain)
            || r.jump_target().is_some_and(per_attachment_name)
    })
}

/// The x_tables (legacy iptables) families that hold a `nat` table in the calling thread's
/// network namespace (`iptables`, `ip6tables`), from `/proc/thread-self/net/ip*_tables_names`.
/// nf_tables cannot see or change those rules.
pub fn legacy_nat_tables() -> Vec<&'static str> {
    [
        ("iptables", "ip_tables_names"),
        ("ip6tables", "ip6_tables_names"),
    ]
    .into_iter()
    .filter(|(_, f)| {
        std::fs::read_to_string(format!("/proc/thread-self/net/{f}"))
            .is_ok_and(|s| s.lines().any(|l| l.trim() == "nat"))
    })
    .map(|(n, _)| n)
    .collect()
}

fn warn_legacy(what: &str) {
    let legacy = legacy_nat_tables();
    if !legacy.is_empty() {
        log::warn!(
            "legacy iptables ({}, x_tables) holds a nat table on this node: {what} there cannot \
             be removed through nf_tables and were left in place; remove them with iptables-legacy",
            legacy.join(", ")
        );
    }
}

/// What [`reference_del`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RefRemoved {
    /// The chains removed, with their table (`ip nat CNI-...`).
    pub chains: Vec<String>,
    /// The host ports their DNAT rules mapped (protocol number, port): stale UDP conntrack
    /// entries of those ports still lead to the old address.
    pub host_ports: Vec<(u8, u16)>,
}

/// DEL: removes the reference's state of `kind` of attachment `network`/`container_id` from
/// `ip nat` and `ip6 nat`: its chain and the rules that jump to it. Each plugin of ours
/// removes the kind its reference namesake wrote (bridge: masquerade, portmap: host ports),
/// so that a reference plugin still chained with ours finds its own state at its own DEL.
/// Idempotent. When there is nothing (the common case), one round trip and no dump: the
/// chain is asked for in both tables in one batch of GETs. Equivalent to:
///
/// ```text
/// nft list chain ip nat CNI-<h24>; nft list chain ip6 nat CNI-<h24>   # missing: done
/// nft -a list chain ip nat POSTROUTING            # CNI-HOSTPORT-DNAT for host ports
/// nft delete rule ip nat POSTROUTING handle <jump>
/// nft flush chain ip nat CNI-<h24>; nft delete chain ip nat CNI-<h24>
/// ```
pub fn reference_del(
    sock: &mut NftSocket,
    kind: RefKind,
    network: &str,
    container_id: &str,
) -> Result<RefRemoved, FirewallError> {
    let chain = kind.chain(network, container_id);
    let tables = nat_tables();
    let asked: Vec<(&TableRef, &str)> = tables.iter().map(|t| (t, chain.as_str())).collect();
    let present = sock.get_chains_in(&asked)?;
    let mut removed = RefRemoved::default();
    for (t, found) in tables.iter().zip(present) {
        if found.is_none() {
            continue;
        }
        let here = reference_del_in(sock, t, kind, &chain)?;
        removed
            .chains
            .extend(here.chains.into_iter().map(|c| format!("{t} {c}")));
        removed.host_ports.extend(here.host_ports);
    }
    removed.host_ports.sort_unstable();
    removed.host_ports.dedup();
    if !removed.chains.is_empty() {
        log::info!(
            "removed the reference plugins' {} state of {network}/{container_id}: {}",
            kind.name(),
            removed.chains.join(", ")
        );
    }
    warn_legacy(&format!(
        "the reference plugins' {} rules of {network}/{container_id} (chain {chain})",
        kind.name()
    ));
    Ok(removed)
}

/// One table of [`reference_del`], once the chain was seen: the chain removed (without the
/// table) and the host ports it mapped.
fn reference_del_in(
    sock: &mut NftSocket,
    t: &TableRef,
    kind: RefKind,
    chain: &str,
) -> Result<RefRemoved, FirewallError> {
    let mut whole_table = false;
    loop {
        let r = guarded(sock, &format!("reference del {t}"), |sock| {
            if sock.get_chain(t, chain)?.is_none() {
                return Ok((Batch::new(), RefRemoved::default()));
            }
            let rules = if whole_table {
                sock.list_rules(t, None)?
            } else {
                let mut rules = sock.list_rules(t, Some(kind.jumps_from()))?;
                if kind == RefKind::HostPorts {
                    rules.extend(sock.list_rules(t, Some(chain))?);
                }
                rules
            };
            let host_ports = rules
                .iter()
                .filter(|r| r.chain == chain)
                .filter_map(mapped_port)
                .collect();
            let mut b = Batch::new();
            removal_ops(&mut b, t, &rules, &BTreeSet::from([chain.to_string()]));
            let chains = vec![chain.to_string()];
            Ok((b, RefRemoved { chains, host_ports }))
        });
        match r {
            // Something besides the reference's own chain jumps there: read the whole table
            // to find it (a rule that leads to the chain goes with it).
            Err(FirewallError::Nft(e))
                if e.errno() == Some(nix::errno::Errno::EBUSY) && !whole_table =>
            {
                log::debug!(
                    "reference del {t}: chain still referenced ({e}); reading the whole table"
                );
                whole_table = true;
            }
            r => return r,
        }
    }
}

/// A GC predicate for [`reference_gc`] from the runtime's valid attachments: the reference
/// keys its state by container id only (it ignores the interface name), so a container id is
/// valid when any valid attachment has it.
pub fn valid_ids(valid: &[Tag]) -> impl Fn(&str) -> bool + '_ {
    move |id| valid.iter().any(|t| t.container_id == id)
}

/// What [`reference_gc`] did in one table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RefGc {
    /// The stale attachments whose state was removed.
    pub removed: Vec<RefAttachment>,
    /// The shared chains removed (no per-attachment state of the reference was left).
    pub shared_removed: Vec<String>,
}

/// GC: removes the reference's state of `kind` of the attachments of `network` whose
/// container id `is_valid` rejects, in `ip nat` and `ip6 nat` (like [`reference_del`]); then, in a table where no per-attachment
/// state of the reference is left (of any network), the shared chains and the rules that
/// jump to them. Attachments are recognised by their comment and the hash of their chain
/// names; nothing else of the table is changed. Equivalent to `nft -a list table ip nat`,
/// then `nft delete rule ... handle N`, `nft flush chain ...`, `nft delete chain ...` for
/// each stale chain.
pub fn reference_gc(
    sock: &mut NftSocket,
    kind: RefKind,
    network: &str,
    is_valid: impl Fn(&str) -> bool,
) -> Result<RefGc, FirewallError> {
    let mut out = RefGc::default();
    for t in &nat_tables() {
        let gc = guarded(sock, &format!("reference gc {t}"), |sock| {
            let rules = sock.list_rules(t, None)?;
            let shared: Vec<&str> = if rules.is_empty() {
                Vec::new()
            } else {
                sock.get_chains(t, &SHARED_CHAINS)?
                    .into_iter()
                    .zip(SHARED_CHAINS)
                    .filter_map(|(c, n)| c.map(|_| n))
                    .collect()
            };
            Ok(gc_plan(t, &rules, &shared, kind, network, &is_valid))
        })?;
        out.removed.extend(gc.removed);
        out.shared_removed
            .extend(gc.shared_removed.into_iter().map(|c| format!("{t} {c}")));
    }
    for a in &out.removed {
        log::info!(
            "gc: removed the reference plugins' {} state of {}/{} ({} {})",
            kind.name(),
            a.network,
            a.container_id,
            a.table,
            a.chains.iter().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    if !out.shared_removed.is_empty() {
        log::info!(
            "gc: no per-attachment state of the reference plugins is left; removed their shared chains {}",
            out.shared_removed.join(", ")
        );
    }
    warn_legacy(&format!(
        "the reference plugins' {} rules of stale attachments of network {network}",
        kind.name()
    ));
    Ok(out)
}

/// GC's decision for one table (pure): the batch, and what it removes.
pub fn gc_plan(
    t: &TableRef,
    rules: &[RuleInfo],
    shared: &[&str],
    kind: RefKind,
    network: &str,
    is_valid: &dyn Fn(&str) -> bool,
) -> (Batch, RefGc) {
    let stale: Vec<RefAttachment> = attachments(t, rules)
        .into_iter()
        .filter(|a| a.network == network && !is_valid(&a.container_id))
        .filter_map(|a| a.only(kind))
        .collect();
    let mut doomed: BTreeSet<String> = stale.iter().flat_map(|a| a.chains.clone()).collect();
    let mut b = Batch::new();
    let mut shared_removed = Vec::new();
    if !state_left(rules, &doomed) {
        shared_removed = shared.iter().map(|s| s.to_string()).collect();
        doomed.extend(shared_removed.iter().cloned());
    }
    removal_ops(&mut b, t, rules, &doomed);
    (
        b,
        RefGc {
            removed: stale,
            shared_removed,
        },
    )
}

/// Everything of the reference in `ip nat` and `ip6 nat`, for people (`cnictl`): the
/// attachments, and the shared chains present. Reads only.
pub fn reference_state(
    sock: &mut NftSocket,
) -> Result<(Vec<RefAttachment>, Vec<String>), FirewallError> {
    let mut found = Vec::new();
    let mut shared = Vec::new();
    for t in &nat_tables() {
        let rules = sock.list_rules(t, None)?;
        found.extend(attachments(t, &rules));
        let present = sock.get_chains(t, &SHARED_CHAINS)?;
        shared.extend(
            present
                .into_iter()
                .flatten()
                .map(|c| format!("{t} {}", c.name)),
        );
    }
    Ok((found, shared))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nft::{Reg, Verdict};

    #[test]
    fn chain_names_are_the_references() {
        // Observed on a node: network kbr, container ctrA.
        assert_eq!(masq_chain("kbr", "ctrA"), "CNI-30b26f549b412d057b79f83d");
        assert_eq!(dnat_chain("kbr", "ctrA"), "CNI-DN-30b26f549b412d057b79f");
        assert_eq!(
            RefKind::of_chain("CNI-30b26f549b412d057b79f83d"),
            Some(RefKind::Masquerade)
        );
        assert_eq!(
            RefKind::of_chain("CNI-DN-30b26f549b412d057b79f"),
            Some(RefKind::HostPorts)
        );
        for other in [
            "CNI-HOSTPORT-DNAT",
            "CNI-FORWARD",
            "CNI-30B26F549B412D057B79F83D",
            "CNI-DN-30b2",
            "KUBE-POSTROUTING",
        ] {
            assert!(!per_attachment_name(other), "{other}");
        }
    }

    #[test]
    fn comments_name_the_owner() {
        assert_eq!(
            parse_comment(r#"name: "kbr" id: "ctrA""#),
            Some(RefOwner {
                kind: RefKind::Masquerade,
                network: "kbr".into(),
                container_id: "ctrA".into()
            })
        );
        let dn = parse_comment(r#"dnat name: "kbr" id: "ctr\"A\\""#).unwrap();
        assert_eq!(
            (dn.kind, dn.container_id.as_str()),
            (RefKind::HostPorts, r#"ctr"A\"#)
        );
        assert_eq!(dn.chain(), dnat_chain("kbr", r#"ctr"A\"#));
        for other in [
            "CNI portfwd requiring masquerade",
            r#"name: "kbr""#,
            r#"name: "kbr" id: "a" extra"#,
            r#"name: "" id: "a""#,
            r#"name: "kbr" id: "a\n""#,
            r#"name: "kbr" id: "a"#,
            "kubenet: SNAT for outbound traffic from cluster",
        ] {
            assert_eq!(parse_comment(other), None, "{other}");
        }
    }

    fn comment(text: &str) -> Expr {
        let mut info = text.as_bytes().to_vec();
        info.resize(256, 0);
        Expr::Match {
            name: "comment".into(),
            rev: 0,
            info,
        }
    }

    fn rule(chain: &str, handle: u64, mut exprs: Vec<Expr>, jump: Option<&str>) -> RuleInfo {
        exprs.push(Expr::Counter);
        exprs.push(match jump {
            Some(c) => Expr::verdict(Verdict::Jump(c.into())),
            None => Expr::verdict(Verdict::Accept),
        });
        RuleInfo {
            chain: chain.into(),
            handle,
            exprs,
            comment: None,
        }
    }

    fn saddr(a: [u8; 4]) -> Vec<Expr> {
        vec![
            Expr::Payload {
                base: PayloadBase::Network,
                offset: 12,
                len: 4,
                dreg: Reg::R1,
            },
            Expr::cmp(CmpOp::Eq, Reg::R1, a.to_vec()),
        ]
    }

    /// The reference's rules for kbr/a (masquerade and host ports), kbr/b (masquerade),
    /// other/c (masquerade) and foreign rules.
    fn node() -> Vec<RuleInfo> {
        let (ma, da, mb, mc) = (
            masq_chain("kbr", "a"),
            dnat_chain("kbr", "a"),
            masq_chain("kbr", "b"),
            masq_chain("other", "c"),
        );
        let dnat = Expr::Target {
            name: "DNAT".into(),
            rev: 2,
            info: vec![0; 40],
        };
        let mut to_pod = vec![
            Expr::meta(MetaKey::L4PROTO, Reg::R1),
            Expr::cmp(CmpOp::Eq, Reg::R1, vec![6]),
            Expr::Payload {
                base: PayloadBase::Transport,
                offset: 2,
                len: 2,
                dreg: Reg::R1,
            },
            Expr::cmp(CmpOp::Eq, Reg::R1, 18900u16.to_be_bytes().to_vec()),
            Expr::Counter,
        ];
        to_pod.push(dnat);
        vec![
            rule("PREROUTING", 1, vec![], Some("CNI-HOSTPORT-DNAT")),
            rule("OUTPUT", 2, vec![], Some("CNI-HOSTPORT-DNAT")),
            rule(
                "POSTROUTING",
                3,
                vec![comment("CNI portfwd requiring masquerade")],
                Some("CNI-HOSTPORT-MASQ"),
            ),
            rule("POSTROUTING", 4, vec![], Some("KUBE-POSTROUTING")),
            rule(
                "POSTROUTING",
                5,
                [
                    saddr([10, 99, 0, 2]),
                    vec![comment(r#"name: "kbr" id: "a""#)],
                ]
                .concat(),
                Some(&ma),
            ),
            rule(&ma, 6, vec![comment(r#"name: "kbr" id: "a""#)], None),
            rule(
                "POSTROUTING",
                7,
                [
                    saddr([10, 99, 0, 3]),
                    vec![comment(r#"name: "kbr" id: "b""#)],
                ]
                .concat(),
                Some(&mb),
            ),
            rule(
                "POSTROUTING",
                8,
                vec![comment(r#"name: "other" id: "c""#)],
                Some(&mc),
            ),
            rule(
                "CNI-HOSTPORT-DNAT",
                9,
                vec![comment(r#"dnat name: "kbr" id: "a""#)],
                Some(&da),
            ),
            rule(&da, 10, vec![], Some("CNI-HOSTPORT-SETMARK")),
            RuleInfo {
                chain: da.clone(),
                handle: 11,
                exprs: to_pod,
                comment: None,
            },
            rule("CNI-HOSTPORT-SETMARK", 12, vec![], None),
            rule("CNI-HOSTPORT-MASQ", 13, vec![], None),
            rule("KUBE-POSTROUTING", 14, vec![], None),
            // A comment naming kbr/z on a rule whose jump is not z's chain: not z's.
            rule(
                "POSTROUTING",
                15,
                vec![comment(r#"name: "kbr" id: "z""#)],
                Some("KUBE-POSTROUTING"),
            ),
        ]
    }

    fn ops(b: &Batch) -> Vec<String> {
        b.ops().iter().map(|o| o.describe()).collect()
    }

    #[test]
    fn attachments_are_attributed_by_comment_and_chain_hash() {
        let t = &nat_tables()[0];
        let found = attachments(t, &node());
        let ids: Vec<(&str, &str)> = found
            .iter()
            .map(|a| (a.network.as_str(), a.container_id.as_str()))
            .collect();
        assert_eq!(ids, [("kbr", "a"), ("kbr", "b"), ("other", "c")]);
        let a = &found[0];
        assert_eq!(
            a.chains,
            BTreeSet::from([masq_chain("kbr", "a"), dnat_chain("kbr", "a")])
        );
        assert_eq!(a.addresses, vec![IpAddr::from([10, 99, 0, 2])]);
        assert_eq!(a.host_ports, vec![(6, 18900)]);
        assert_eq!(found[2].addresses, Vec::<IpAddr>::new());
    }

    #[test]
    fn removal_deletes_the_jumps_then_the_chains_and_nothing_else() {
        let t = &nat_tables()[0];
        let doomed = BTreeSet::from([masq_chain("kbr", "a"), dnat_chain("kbr", "a")]);
        let mut b = Batch::new();
        removal_ops(&mut b, t, &node(), &doomed);
        let (ma, da) = (masq_chain("kbr", "a"), dnat_chain("kbr", "a"));
        let mut want = vec![
            "delete rule ip nat POSTROUTING handle 5".to_string(),
            "delete rule ip nat CNI-HOSTPORT-DNAT handle 9".to_string(),
        ];
        for c in [&ma, &da] {
            want.push(format!("flush chain ip nat {c}"));
            want.push(format!("delete chain ip nat {c}"));
        }
        want.sort();
        let mut got = ops(&b);
        got.sort();
        assert_eq!(got, want);
        assert!(b.ops().iter().all(|o| o.if_exists));
    }

    #[test]
    fn gc_removes_stale_state_of_its_kind_and_keeps_the_shared_chains_while_state_is_left() {
        use RefKind::{HostPorts, Masquerade};
        let t = &nat_tables()[0];
        let (ma, da) = (masq_chain("kbr", "a"), dnat_chain("kbr", "a"));
        let valid = |id: &str| id == "b";
        // bridge's GC: kbr/a's masquerade chain only; its host ports are portmap's.
        let (b, gc) = gc_plan(t, &node(), &SHARED_CHAINS, Masquerade, "kbr", &valid);
        assert_eq!(gc.removed.len(), 1);
        assert_eq!(gc.removed[0].chains, BTreeSet::from([ma.clone()]));
        assert_eq!(gc.removed[0].host_ports, []);
        assert!(gc.shared_removed.is_empty(), "kbr/b and other/c are left");
        assert_eq!(
            ops(&b),
            [
                "delete rule ip nat POSTROUTING handle 5".to_string(),
                format!("flush chain ip nat {ma}"),
                format!("delete chain ip nat {ma}")
            ]
        );
        // portmap's GC: kbr/a's host-port chain.
        let (b, gc) = gc_plan(t, &node(), &SHARED_CHAINS, HostPorts, "kbr", &valid);
        assert_eq!(gc.removed[0].chains, BTreeSet::from([da.clone()]));
        assert_eq!(gc.removed[0].host_ports, [(6, 18900)]);
        assert_eq!(b.len(), 3);

        // Nothing valid in kbr, but other/c is still the reference's: shared chains stay.
        let (_, gc) = gc_plan(t, &node(), &SHARED_CHAINS, Masquerade, "kbr", &|_| false);
        assert_eq!(gc.removed.len(), 2);
        assert!(gc.shared_removed.is_empty());

        // Once portmap's GC took the host ports (9-11 gone) and other/c is gone (8): a rule
        // with a reference comment that GC cannot attribute (15) is kept, and counts as
        // state of the reference, so the shared chains stay.
        let without = |gone: &[u64]| -> Vec<RuleInfo> {
            node()
                .into_iter()
                .filter(|r| !gone.contains(&r.handle))
                .collect()
        };
        let rules = without(&[8, 9, 10, 11]);
        let (b, gc) = gc_plan(t, &rules, &SHARED_CHAINS, Masquerade, "kbr", &|_| false);
        assert!(gc.shared_removed.is_empty());
        assert!(!ops(&b).iter().any(|o| o.ends_with("handle 15")));

        // Without it, the last GC takes the shared chains and their jumps along.
        let rules = without(&[8, 9, 10, 11, 15]);
        let (b, gc) = gc_plan(t, &rules, &SHARED_CHAINS, Masquerade, "kbr", &|_| false);
        assert_eq!(gc.shared_removed.len(), 3);
        let got = ops(&b);
        for h in [1, 2, 3, 5, 7] {
            assert!(
                got.iter().any(|o| o.ends_with(&format!("handle {h}"))),
                "{h}: {got:?}"
            );
        }
        // The foreign rules stay.
        for h in [4, 14] {
            assert!(
                !got.iter().any(|o| o.ends_with(&format!("handle {h}"))),
                "{h}"
            );
        }
        for c in SHARED_CHAINS {
            assert!(got.contains(&format!("delete chain ip nat {c}")), "{c}");
        }
        assert!(!got.iter().any(|o| o.contains("KUBE")), "{got:?}");

        // A node with only foreign rules and no shared chain: nothing to do.
        let foreign = vec![rule("POSTROUTING", 4, vec![], Some("KUBE-POSTROUTING"))];
        let (b, gc) = gc_plan(t, &foreign, &[], HostPorts, "kbr", &|_| false);
        assert!(b.is_empty() && gc == RefGc::default());
    }

    #[test]
    fn an_unattributable_per_attachment_chain_keeps_the_shared_chains() {
        let t = &nat_tables()[0];
        // A DN chain whose jump lost its comment: not removable by GC, and still state.
        let rules = vec![
            rule("CNI-HOSTPORT-DNAT", 1, vec![], Some(&dnat_chain("x", "y"))),
            rule(&dnat_chain("x", "y"), 2, vec![], None),
        ];
        let (b, gc) = gc_plan(t, &rules, &SHARED_CHAINS, RefKind::HostPorts, "x", &|_| {
            false
        });
        assert!(b.is_empty(), "{:?}", ops(&b));
        assert!(gc.removed.is_empty() && gc.shared_removed.is_empty());
    }
}
