//! Host ports (the portmap plugin): three verdict maps and node-wide chains, plus one chain per
//! attachment; two attachments claiming one port: the last ADD wins. The layout, hairpin,
//! localhost and ownership: [docs/firewall.md](../../../../docs/firewall.md#host-ports).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ferro_spec::PortMapping;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use nix::errno::Errno;

use super::masq::check_rules;
use super::tag::{StoredTag, Tag};
use super::{ensure_table, retry_races, table, FirewallError};
use crate::nft::{
    nfproto, priority, Batch, Chain, ChainType, DataType, Dir, Elem, ElemInfo, Hook, KeyField,
    KeyPart, NftSocket, Rule, RuleBuilder, SetDef, Verdict, RTN_LOCAL,
};

/// `hostports-ip4`.
pub const MAP_IP4: &str = "hostports-ip4";
/// `hostports-ip6`.
pub const MAP_IP6: &str = "hostports-ip6";
/// `hostports-any`.
pub const MAP_ANY: &str = "hostports-any";
const MAPS: [&str; 3] = [MAP_IP4, MAP_IP6, MAP_ANY];
const CH_PRE: &str = "hostports-prerouting";
const CH_OUT: &str = "hostports-output";
const CH_DISPATCH: &str = "hostports";
const CH_MASQ: &str = "hostports-masq";

/// The host ports of one attachment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPorts {
    /// The attachment.
    pub tag: Tag,
    /// `runtimeConfig.portMappings`.
    pub mappings: Vec<PortMapping>,
    /// The pod's IPv4 address and its subnet (hairpin traffic comes from the subnet).
    pub pod_v4: Option<(Ipv4Addr, Ipv4Net)>,
    /// The pod's IPv6 address and its subnet.
    pub pod_v6: Option<(Ipv6Addr, Ipv6Net)>,
    /// Mark hairpin and localhost traffic for masquerade (`snat`, default true).
    pub snat: bool,
    /// `markMasqBit` (0-31, default 13: mark 0x2000).
    pub mark_bit: u8,
}

impl HostPorts {
    /// `1 << mark_bit`.
    pub fn mark(&self) -> u32 {
        1u32 << (self.mark_bit & 31)
    }
}

/// What [`hostports_plan`] computes for one attachment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPortsPlan {
    /// `hp-<hash>`.
    pub chain: String,
    /// Its comment (the tag).
    pub comment: String,
    /// The chain's rules, each with the mapping it implements.
    pub rules: Vec<(Rule, String)>,
    /// Map elements: (map, element, mapping).
    pub elems: Vec<(String, Elem, String)>,
}

/// A key of a host-port map, read back (what DEL removed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MappedPort {
    /// IP protocol number (6 tcp, 17 udp, 132 sctp).
    pub protocol: u8,
    /// The host port.
    pub port: u16,
    /// The host address, for `hostports-ip4`/`-ip6` keys.
    pub host_ip: Option<IpAddr>,
}

/// A key another attachment held before this ADD took it (last wins).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replaced {
    /// The map.
    pub map: String,
    /// The key in nft syntax (`tcp . 8080`).
    pub key: String,
    /// The chain it jumped to.
    pub previous_chain: String,
    /// That element's comment (the previous owner's tag).
    pub previous_owner: Option<String>,
}

fn describe(m: &PortMapping, target: IpAddr) -> String {
    let host = match m.host_ip {
        None => "*".to_string(),
        Some(IpAddr::V6(a)) => format!("[{a}]"),
        Some(a) => a.to_string(),
    };
    let to = match target {
        IpAddr::V6(a) => format!("[{a}]"),
        a => a.to_string(),
    };
    format!(
        "{} {host}:{} -> {to}:{}",
        m.protocol.as_str(),
        m.host_port,
        m.container_port
    )
}

/// The per-attachment chain, its rules and map elements (pure).
///
/// For each mapping and each pod address family it applies to (`hostIP` unset: both;
/// `0.0.0.0`: v4; `::`: v6; a specific address: its family): with `snat`, a rule marking
/// hairpin traffic (source in the pod's subnet) and, for v4, localhost traffic (source
/// 127.0.0.0/8); then the `dnat` to `<pod address>:<containerPort>`, matching
/// `meta l4proto <proto> th dport <hostPort>` and the specific `daddr` if there is one.
pub fn hostports_plan(hp: &HostPorts) -> Result<HostPortsPlan, FirewallError> {
    if hp.mark_bit > 31 {
        return Err(FirewallError::Invalid(format!(
            "markMasqBit {} is out of range 0-31",
            hp.mark_bit
        )));
    }
    super::check_network(&hp.tag.network)?;
    let chain = hp.tag.hostports_chain();
    let comment = hp.tag.chain_comment();
    let mark = hp.mark();
    let mut rules = Vec::new();
    let mut elems: Vec<(String, Elem, String)> = Vec::new();
    for m in &hp.mappings {
        let proto = m.protocol.number();
        let specific = m.host_ip.filter(|a| !a.is_unspecified());
        let (want4, want6) = match m.host_ip {
            None => (true, true),
            Some(IpAddr::V4(_)) => (true, false),
            Some(IpAddr::V6(_)) => (false, true),
        };
        let mut applied = false;
        let base = |specific: Option<IpAddr>| match specific {
            Some(a) => RuleBuilder::new().addr(Dir::Dst, a),
            None => RuleBuilder::new(),
        };
        // Per family: the pod's address, and the sources hairpinned or local traffic comes
        // from (the pod subnet; for IPv4 also 127.0.0.0/8, reached through route_localnet).
        let families = [
            hp.pod_v4
                .filter(|_| want4)
                .map(|(a, s)| (IpAddr::V4(a), vec![IpNet::V4(s), IpNet::V4(loopback4())])),
            hp.pod_v6
                .filter(|_| want6)
                .map(|(a, s)| (IpAddr::V6(a), vec![IpNet::V6(s)])),
        ];
        for (addr, sources) in families.into_iter().flatten() {
            let what = describe(m, addr);
            if hp.snat {
                for src in sources {
                    let r = base(specific)
                        .addr_cidr(Dir::Src, src)
                        .l4proto(proto)
                        .th_dport(m.host_port)
                        .set_mark_or(mark)
                        .build(&chain);
                    rules.push((r, what.clone()));
                }
            }
            let r = base(specific)
                .l4proto(proto)
                .th_dport(m.host_port)
                .dnat(addr, Some(m.container_port))
                .build(&chain);
            rules.push((r, what));
            applied = true;
        }
        if !applied {
            log::debug!(
                "hostports: mapping {} {:?}:{} has no pod address of its family; skipped",
                m.protocol.as_str(),
                m.host_ip,
                m.host_port
            );
            continue;
        }
        let (map, parts) = match specific {
            Some(a @ IpAddr::V4(_)) => (
                MAP_IP4,
                vec![
                    KeyPart::Addr(a),
                    KeyPart::Proto(proto),
                    KeyPart::Port(m.host_port),
                ],
            ),
            Some(a @ IpAddr::V6(_)) => (
                MAP_IP6,
                vec![
                    KeyPart::Addr(a),
                    KeyPart::Proto(proto),
                    KeyPart::Port(m.host_port),
                ],
            ),
            None => (
                MAP_ANY,
                vec![KeyPart::Proto(proto), KeyPart::Port(m.host_port)],
            ),
        };
        let e = Elem::concat(&parts)
            .with_verdict(Verdict::Jump(chain.clone()))
            .with_comment(&comment);
        if !elems.iter().any(|(s, x, _)| s == map && x.key == e.key) {
            let what = describe(
                m,
                hp.pod_v4
                    .map(|(a, _)| IpAddr::V4(a))
                    .or(hp.pod_v6.map(|(a, _)| IpAddr::V6(a)))
                    .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            );
            elems.push((map.to_string(), e, what));
        }
    }
    Ok(HostPortsPlan {
        chain,
        comment,
        rules,
        elems,
    })
}

fn loopback4() -> Ipv4Net {
    Ipv4Net::new(Ipv4Addr::new(127, 0, 0, 0), 8).unwrap_or_default()
}

fn shared_rules(mark: u32) -> Vec<Rule> {
    vec![
        RuleBuilder::new()
            .fib_daddr_type(RTN_LOCAL)
            .verdict(Verdict::Jump(CH_DISPATCH.into()))
            .build(CH_PRE),
        RuleBuilder::new()
            .fib_daddr_type(RTN_LOCAL)
            .verdict(Verdict::Jump(CH_DISPATCH.into()))
            .build(CH_OUT),
        RuleBuilder::new()
            .meta_nfproto(nfproto::IPV4)
            .concat_vmap(
                &[
                    KeyField::Ip4(Dir::Dst),
                    KeyField::L4Proto,
                    KeyField::ThDport,
                ],
                MAP_IP4,
            )
            .build(CH_DISPATCH),
        RuleBuilder::new()
            .meta_nfproto(nfproto::IPV6)
            .concat_vmap(
                &[
                    KeyField::Ip6(Dir::Dst),
                    KeyField::L4Proto,
                    KeyField::ThDport,
                ],
                MAP_IP6,
            )
            .build(CH_DISPATCH),
        RuleBuilder::new()
            .concat_vmap(&[KeyField::L4Proto, KeyField::ThDport], MAP_ANY)
            .build(CH_DISPATCH),
        RuleBuilder::new()
            .mark_masked_eq(mark, mark)
            .masquerade()
            .build(CH_MASQ),
    ]
}

/// Whether the node-wide chains already hold exactly their rules (then nothing shared is
/// re-sent: re-adding or flushing existing chains creates nf_tables destroy work).
fn shared_ok(sock: &mut NftSocket, mark: u32) -> Result<bool, FirewallError> {
    let rules = shared_rules(mark);
    for c in [CH_PRE, CH_OUT, CH_DISPATCH, CH_MASQ] {
        let want: Vec<Rule> = rules.iter().filter(|r| r.chain == c).cloned().collect();
        if !super::rules_match(sock, c, &want)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The node-wide objects, ensured and their chains rebuilt.
fn shared_ops(b: &mut Batch, mark: u32) {
    let t = table();
    ensure_table(b);
    b.add_set(
        &t,
        SetDef::vmap(
            MAP_IP4,
            vec![
                DataType::Ipv4Addr,
                DataType::InetProto,
                DataType::InetService,
            ],
        ),
    )
    .add_set(
        &t,
        SetDef::vmap(
            MAP_IP6,
            vec![
                DataType::Ipv6Addr,
                DataType::InetProto,
                DataType::InetService,
            ],
        ),
    )
    .add_set(
        &t,
        SetDef::vmap(MAP_ANY, vec![DataType::InetProto, DataType::InetService]),
    )
    .add_chain(
        &t,
        Chain::base(CH_PRE, ChainType::Nat, Hook::Prerouting, priority::DSTNAT),
    )
    .add_chain(
        &t,
        Chain::base(CH_OUT, ChainType::Nat, Hook::Output, priority::DSTNAT),
    )
    .add_chain(&t, Chain::regular(CH_DISPATCH))
    .add_chain(
        &t,
        Chain::base(CH_MASQ, ChainType::Nat, Hook::Postrouting, priority::SRCNAT),
    );
    for c in [CH_PRE, CH_OUT, CH_DISPATCH, CH_MASQ] {
        b.flush_chain(&t, c, false);
    }
    for r in shared_rules(mark) {
        b.add_rule(&t, r);
    }
}

/// ADD: sets up this attachment's host ports with at most one (pipelined) GET and one
/// transaction; returns the keys taken over from other attachments (last wins, logged).
/// Equivalent to:
///
/// ```text
/// nft get element inet ferro_cni hostports-any '{ tcp . 8080 }'   # who holds the keys?
/// nft -f - <<EOF
/// add table inet ferro_cni
/// add map inet ferro_cni hostports-any { type inet_proto . inet_service : verdict; }  # ...
/// add chain ...; flush chain ...; add rule ...             # the shared chains, rebuilt
/// add chain inet ferro_cni hp-<hash> { comment "<net>/<ctr>/<ifname>"; }
/// flush chain inet ferro_cni hp-<hash>
/// add rule inet ferro_cni hp-<hash> ...                    # mark + dnat per mapping
/// delete element inet ferro_cni hostports-any { tcp . 8080 }   # if another attachment's
/// add element inet ferro_cni hostports-any { tcp . 8080 comment "..." : jump hp-<hash> }
/// EOF
/// ```
pub fn hostports_add(sock: &mut NftSocket, hp: &HostPorts) -> Result<Vec<Replaced>, FirewallError> {
    let plan = hostports_plan(hp)?;
    if plan.rules.is_empty() {
        return Ok(Vec::new());
    }
    let t = table();
    retry_races(
        "hostports add",
        || {
            let keys: Vec<(&str, &Elem)> =
                plan.elems.iter().map(|(s, e, _)| (s.as_str(), e)).collect();
            let existing = sock.get_elems_in(&t, &keys)?;
            let mut b = Batch::new();
            if !shared_ok(sock, hp.mark())? {
                shared_ops(&mut b, hp.mark());
            }
            b.add_chain(&t, Chain::regular(&plan.chain).with_comment(&plan.comment))
                .flush_chain(&t, &plan.chain, false);
            for (r, _) in &plan.rules {
                b.add_rule(&t, r.clone());
            }
            let mut replaced = Vec::new();
            for ((map, elem, _), old) in plan.elems.iter().zip(existing) {
                if let Some(old) = old {
                    if old.target_chain() != Some(plan.chain.as_str()) {
                        b.del_elems(&t, map, vec![Elem::raw(old.key.clone())], true);
                        replaced.push(Replaced {
                            map: map.clone(),
                            key: elem.label.clone(),
                            previous_chain: old.target_chain().unwrap_or_default().to_string(),
                            previous_owner: old.comment.clone(),
                        });
                    }
                }
                b.add_elems(&t, map, vec![elem.clone()]);
            }
            log::debug!("hostports add {}:\n{}", hp.tag, b.describe());
            sock.apply(&b)?;
            for r in &replaced {
                log::warn!(
                    "hostports: {} {} was mapped by {} ({}); {} takes it over (last wins)",
                    r.map,
                    r.key,
                    r.previous_owner
                        .as_deref()
                        .unwrap_or("an unknown attachment"),
                    r.previous_chain,
                    hp.tag
                );
            }
            Ok(replaced)
        },
        // Someone added one of our keys between the GET and the transaction.
        |e| e.is_exists(),
    )
}

fn mapped_port(map: &str, key: &[u8]) -> Option<MappedPort> {
    let (addr_len, host_ip) = match map {
        MAP_IP4 => (
            4,
            Some(IpAddr::V4(Ipv4Addr::from(
                <[u8; 4]>::try_from(key.get(..4)?).ok()?,
            ))),
        ),
        MAP_IP6 => (
            16,
            Some(IpAddr::V6(Ipv6Addr::from(
                <[u8; 16]>::try_from(key.get(..16)?).ok()?,
            ))),
        ),
        _ => (0, None),
    };
    Some(MappedPort {
        protocol: *key.get(addr_len)?,
        port: u16::from_be_bytes(key.get(addr_len + 4..addr_len + 6)?.try_into().ok()?),
        host_ip,
    })
}

/// The elements of the three maps, keyed by map.
fn map_elems(sock: &mut NftSocket) -> Result<HashMap<&'static str, Vec<ElemInfo>>, FirewallError> {
    let t = table();
    let mut out = HashMap::new();
    for m in MAPS {
        out.insert(m, sock.list_elems(&t, m)?.unwrap_or_default());
    }
    Ok(out)
}

/// One attachment's host ports as the maps hold them (for people: `cnictl firewall show`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPortsOf {
    /// The chain the map elements jump to (`hp-<hash>`).
    pub chain: String,
    /// The elements' comment (the attachment's tag).
    pub owner: Option<String>,
    /// The keys.
    pub ports: Vec<MappedPort>,
}

/// Every host port of the node, grouped by the chain it jumps to. Equivalent to `nft list
/// map inet ferro_cni hostports-any` (and `-ip4`, `-ip6`).
pub fn hostports_list(sock: &mut NftSocket) -> Result<Vec<HostPortsOf>, FirewallError> {
    let elems = map_elems(sock)?;
    let mut out: Vec<HostPortsOf> = Vec::new();
    for m in MAPS {
        for e in elems.get(m).into_iter().flatten() {
            let (Some(chain), Some(port)) = (e.target_chain(), mapped_port(m, &e.key)) else {
                continue;
            };
            match out.iter_mut().find(|h| h.chain == chain) {
                Some(h) => h.ports.push(port),
                None => out.push(HostPortsOf {
                    chain: chain.to_string(),
                    owner: e.comment.clone(),
                    ports: vec![port],
                }),
            }
        }
    }
    Ok(out)
}

/// Appends the removal of `chain` and of every map element jumping to it.
fn remove_chain_ops(
    b: &mut Batch,
    chain: &str,
    elems: &HashMap<&'static str, Vec<ElemInfo>>,
    removed: &mut Vec<MappedPort>,
) {
    let t = table();
    for m in MAPS {
        for e in elems.get(m).into_iter().flatten() {
            if e.target_chain() == Some(chain) {
                if let Some(p) = mapped_port(m, &e.key) {
                    removed.push(p);
                }
                b.del_elems(&t, m, vec![Elem::raw(e.key.clone())], true);
            }
        }
    }
    b.flush_chain(&t, chain, true).del_chain(&t, chain, true);
}

/// DEL: removes this attachment's host ports without needing its mappings (the kernel
/// objects are the record): if `hp-<hash>` does not exist this is a no-op; otherwise the map
/// elements jumping to it are found by listing the three maps, then deleted with the chain
/// in one transaction. Idempotent. Returns the removed keys (so UDP conntrack entries of
/// those ports can be flushed). Equivalent to:
///
/// ```text
/// nft list chain inet ferro_cni hp-<hash>        # missing: done
/// nft list map inet ferro_cni hostports-any      # (and -ip4, -ip6)
/// nft delete element inet ferro_cni hostports-any '{ tcp . 8080 }'   # those jumping to it
/// nft flush chain inet ferro_cni hp-<hash>; nft delete chain inet ferro_cni hp-<hash>
/// ```
pub fn hostports_del(sock: &mut NftSocket, tag: &Tag) -> Result<Vec<MappedPort>, FirewallError> {
    let chain = tag.hostports_chain();
    let t = table();
    retry_races(
        "hostports del",
        || {
            if sock.get_chain(&t, &chain)?.is_none() {
                return Ok(Vec::new());
            }
            let elems = map_elems(sock)?;
            let mut b = Batch::new();
            let mut removed = Vec::new();
            remove_chain_ops(&mut b, &chain, &elems, &mut removed);
            log::debug!("hostports del {tag}:\n{}", b.describe());
            sock.apply(&b)?;
            Ok(removed)
        },
        // A map element pointing at the chain appeared meanwhile.
        |e| e.errno() == Some(Errno::EBUSY),
    )
}

/// GC: deletes the `hp-*` chains of `network` whose attachment `is_valid` rejects, with
/// their map elements, in one transaction; returns how many chains. Chains are found from
/// the rules of our table and the targets of the map elements (never by listing other
/// tables), and attributed by their comment. Equivalent to `nft -a list table inet
/// ferro_cni`, then `nft delete element ...; nft delete chain ...` for each stale one.
pub fn hostports_gc(
    sock: &mut NftSocket,
    network: &str,
    is_valid: impl Fn(&StoredTag) -> bool,
) -> Result<usize, FirewallError> {
    super::check_network(network)?;
    let t = table();
    retry_races(
        "hostports gc",
        || {
            let infos = sock.list_chains(&t)?;
            let elems = map_elems(sock)?;
            let stale: Vec<String> = infos
                .into_iter()
                .filter(|c| {
                    c.name.starts_with("hp-")
                        && c.comment
                            .as_deref()
                            .and_then(StoredTag::parse_chain)
                            .is_some_and(|s| s.is_network(network) && !is_valid(&s))
                })
                .map(|c| c.name)
                .collect();
            if stale.is_empty() {
                return Ok(0);
            }
            let mut b = Batch::new();
            let mut removed = Vec::new();
            for c in &stale {
                remove_chain_ops(&mut b, c, &elems, &mut removed);
            }
            log::debug!("hostports gc {network}:\n{}", b.describe());
            sock.apply(&b)?;
            Ok(stale.len())
        },
        |e| e.errno() == Some(Errno::EBUSY),
    )
}

/// CHECK: errors naming the missing mapping unless the shared chains, this attachment's
/// chain (with its comment and exactly the planned rules) and each expected map element
/// pointing at it exist. Equivalent to reading `nft list chain inet ferro_cni hp-<hash>` and
/// `nft get element` of each key.
pub fn hostports_check(sock: &mut NftSocket, hp: &HostPorts) -> Result<(), FirewallError> {
    let plan = hostports_plan(hp)?;
    if plan.rules.is_empty() {
        return Ok(());
    }
    let t = table();
    let names = [CH_PRE, CH_OUT, CH_DISPATCH, CH_MASQ, plan.chain.as_str()];
    let infos = sock.get_chains(&t, &names)?;
    for (n, i) in names.iter().zip(&infos) {
        if i.is_none() {
            return Err(FirewallError::Check(if *n == plan.chain {
                format!("chain {t} {n} of {} is missing", hp.tag)
            } else {
                format!("chain {t} {n} is missing")
            }));
        }
    }
    if let Some(Some(own)) = infos.last() {
        if own.comment.as_deref() != Some(plan.comment.as_str()) {
            return Err(FirewallError::Check(format!(
                "chain {t} {} has comment {:?}, expected {:?}",
                plan.chain, own.comment, plan.comment
            )));
        }
    }
    for c in [CH_PRE, CH_OUT, CH_DISPATCH, CH_MASQ] {
        let want: Vec<Rule> = shared_rules(hp.mark())
            .into_iter()
            .filter(|r| r.chain == c)
            .collect();
        check_rules(sock, c, &want)?;
    }
    let have = sock.list_rules(&t, Some(&plan.chain))?;
    for (i, (want, what)) in plan.rules.iter().enumerate() {
        if !have.get(i).is_some_and(|h| h.matches(&want.exprs)) {
            return Err(FirewallError::Check(format!(
                "mapping {what}: rule {} of chain {t} {} is missing or differs",
                i + 1,
                plan.chain
            )));
        }
    }
    if have.len() != plan.rules.len() {
        return Err(FirewallError::Check(format!(
            "chain {t} {} has {} rules, expected {}",
            plan.chain,
            have.len(),
            plan.rules.len()
        )));
    }
    let keys: Vec<(&str, &Elem)> = plan.elems.iter().map(|(s, e, _)| (s.as_str(), e)).collect();
    let got = sock.get_elems_in(&t, &keys)?;
    for ((map, e, what), g) in plan.elems.iter().zip(got) {
        match g {
            None => {
                return Err(FirewallError::Check(format!(
                    "mapping {what}: element {} is missing from map {t} {map}",
                    e.label
                )))
            }
            Some(g) if g.target_chain() != Some(plan.chain.as_str()) => {
                return Err(FirewallError::Check(format!(
                    "mapping {what}: element {} of map {t} {map} jumps to {}, not {}",
                    e.label,
                    g.target_chain().unwrap_or("nothing"),
                    plan.chain
                )))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferro_spec::Protocol;

    fn hp(mappings: Vec<PortMapping>) -> HostPorts {
        HostPorts {
            tag: Tag::new("kbr", "ctr1", "eth0"),
            mappings,
            pod_v4: Some((
                "10.244.0.5".parse().unwrap(),
                "10.244.0.0/24".parse().unwrap(),
            )),
            pod_v6: Some(("fd00::5".parse().unwrap(), "fd00::/64".parse().unwrap())),
            snat: true,
            mark_bit: 13,
        }
    }

    fn pm(
        host_port: u16,
        container_port: u16,
        protocol: Protocol,
        host_ip: Option<&str>,
    ) -> PortMapping {
        PortMapping {
            host_port,
            container_port,
            protocol,
            host_ip: host_ip.map(|s| s.parse().unwrap()),
        }
    }

    fn show(r: &Rule) -> String {
        r.exprs
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn host_ip_selects_families_and_maps() {
        let p = hostports_plan(&hp(vec![
            pm(8080, 80, Protocol::Tcp, None),
            pm(53, 53, Protocol::Udp, Some("0.0.0.0")),
            pm(443, 8443, Protocol::Tcp, Some("::")),
            pm(9000, 9000, Protocol::Sctp, Some("192.168.1.1")),
            pm(9001, 9001, Protocol::Tcp, Some("fd01::1")),
        ]))
        .unwrap();
        // rules per family: v4 = 2 marks + dnat, v6 = 1 mark + dnat
        // "": 3 + 2; 0.0.0.0: 3; ::: 2; 192.168.1.1: 3; fd01::1: 2
        assert_eq!(p.rules.len(), 5 + 3 + 2 + 3 + 2);
        let maps: Vec<(&str, &str)> = p
            .elems
            .iter()
            .map(|(m, e, _)| (m.as_str(), e.label.as_str()))
            .collect();
        assert_eq!(
            maps,
            [
                (MAP_ANY, "tcp . 8080"),
                (MAP_ANY, "udp . 53"),
                (MAP_ANY, "tcp . 443"),
                (MAP_IP4, "192.168.1.1 . sctp . 9000"),
                (MAP_IP6, "fd01::1 . tcp . 9001"),
            ]
        );
        assert!(p
            .elems
            .iter()
            .all(|(_, e, _)| e.comment.as_deref() == Some("kbr/ctr1/eth0")
                && e.data == Some(crate::nft::Data::Verdict(Verdict::Jump(p.chain.clone())))));
        // The specific v4 mapping matches its daddr in all three rules.
        let specific: Vec<&Rule> = p
            .rules
            .iter()
            .filter(|(_, w)| w.contains("192.168.1.1"))
            .map(|(r, _)| r)
            .collect();
        assert_eq!(specific.len(), 3);
        assert!(specific
            .iter()
            .all(|r| show(r).contains("cmp eq reg 1 0x0101a8c0")));
        // The last v4 rule of "" is the dnat to 10.244.0.5:80.
        let dnat = show(&p.rules[2].0);
        assert!(dnat.contains("immediate reg 1 0x0500f40a"), "{dnat}");
        assert!(dnat.contains("immediate reg 2 0x00005000"), "{dnat}");
        assert!(
            dnat.contains("nat dnat ip addr_min reg 1 proto_min reg 2 flags 0x2"),
            "{dnat}"
        );
        // The localhost rule is v4 only.
        assert!(show(&p.rules[1].0).contains("cmp eq reg 1 0x0000007f"));
    }

    #[test]
    fn without_snat_only_dnat_rules_and_mapping_of_a_missing_family_is_skipped() {
        let mut h = hp(vec![
            pm(8080, 80, Protocol::Tcp, None),
            pm(1, 1, Protocol::Tcp, Some("::")),
        ]);
        h.snat = false;
        h.pod_v6 = None;
        let p = hostports_plan(&h).unwrap();
        assert_eq!(p.rules.len(), 1);
        assert_eq!(p.elems.len(), 1);
        h.mark_bit = 32;
        assert!(hostports_plan(&h).is_err());
    }

    #[test]
    fn duplicate_keys_give_one_element() {
        let p = hostports_plan(&hp(vec![
            pm(8080, 80, Protocol::Tcp, None),
            pm(8080, 80, Protocol::Tcp, Some("0.0.0.0")),
        ]))
        .unwrap();
        assert_eq!(p.elems.len(), 1);
    }

    #[test]
    fn map_keys_read_back_as_ports() {
        let e = Elem::concat(&[KeyPart::Proto(17), KeyPart::Port(53)]);
        assert_eq!(
            mapped_port(MAP_ANY, &e.key),
            Some(MappedPort {
                protocol: 17,
                port: 53,
                host_ip: None
            })
        );
        let a: IpAddr = "fd01::1".parse().unwrap();
        let e = Elem::concat(&[KeyPart::Addr(a), KeyPart::Proto(6), KeyPart::Port(9001)]);
        assert_eq!(
            mapped_port(MAP_IP6, &e.key),
            Some(MappedPort {
                protocol: 6,
                port: 9001,
                host_ip: Some(a)
            })
        );
        assert_eq!(mapped_port(MAP_IP4, &[1, 2]), None);
    }

    #[test]
    fn the_mark_rule_uses_the_configured_bit() {
        let rules = shared_rules(1 << 14);
        let masq = show(rules.last().unwrap());
        assert!(masq.contains("0x00004000"), "{masq}");
    }
}
