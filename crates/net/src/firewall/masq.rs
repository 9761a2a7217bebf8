//! Masquerade per network (bridge `ipMasq`, flat, overlay): a set of pod addresses per family
//! and three chains that do not grow with the number of pods; ADD sends only what is missing.
//! The layout and the steady path: [docs/firewall.md](../../../../docs/firewall.md#masquerade).

use std::net::IpAddr;

use ipnet::IpNet;

use super::tag::{StoredTag, Tag};
use super::{check_network, ensure_table, guarded, net_key, table, FirewallError};
use crate::nft::{
    nfproto, priority, Batch, Chain, ChainType, DataType, Dir, Elem, ElemInfo, Hook, NftSocket,
    Rule, RuleBuilder, RuleInfo, SetDef, Verdict,
};

/// What a network masquerades: everything leaving for addresses outside `non_masquerade`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasqSpec {
    /// The network name (`N` in the object names).
    pub network: String,
    /// Destinations reached without NAT: the pod subnet, VNet/cluster CIDRs,
    /// `nonMasqueradeCIDRs`. Multicast and broadcast are always added.
    pub non_masquerade: Vec<IpNet>,
}

impl MasqSpec {
    /// The masquerade of a pod with `addresses` (with their prefix lengths): no NAT towards
    /// the addresses' subnets, then towards `keep_source`, each destination once.
    pub fn for_addresses(network: &str, addresses: &[IpNet], keep_source: &[IpNet]) -> MasqSpec {
        let mut non_masquerade: Vec<IpNet> = Vec::new();
        for n in addresses
            .iter()
            .map(IpNet::trunc)
            .chain(keep_source.iter().copied())
        {
            if !non_masquerade.contains(&n) {
                non_masquerade.push(n);
            }
        }
        MasqSpec {
            network: network.to_string(),
            non_masquerade,
        }
    }
}

/// The objects of one network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasqNames {
    /// `pods4-N`.
    pub pods4: String,
    /// `pods6-N`.
    pub pods6: String,
    /// `masq-N` (the base chain).
    pub base: String,
    /// `masq4-N`.
    pub chain4: String,
    /// `masq6-N`.
    pub chain6: String,
}

/// The object names for `network`.
pub fn masq_names(network: &str) -> MasqNames {
    let n = net_key(network);
    MasqNames {
        pods4: format!("pods4-{n}"),
        pods6: format!("pods6-{n}"),
        base: format!("masq-{n}"),
        chain4: format!("masq4-{n}"),
        chain6: format!("masq6-{n}"),
    }
}

const ALWAYS_V4: [&str; 2] = ["224.0.0.0/4", "255.255.255.255/32"];
const ALWAYS_V6: [&str; 2] = ["ff00::/8", "fe80::/10"];

/// The non-masquerade CIDRs of one family, canonical and without duplicates, caller's
/// order first, then multicast/broadcast (link-local for v6).
fn exempt(spec: &MasqSpec, v6: bool) -> Vec<IpNet> {
    let always = if v6 { ALWAYS_V6 } else { ALWAYS_V4 };
    let mut out: Vec<IpNet> = Vec::new();
    let extra = always.iter().filter_map(|s| s.parse::<IpNet>().ok());
    for n in spec.non_masquerade.iter().copied().chain(extra) {
        let n = n.trunc();
        if matches!(n, IpNet::V6(_)) == v6 && !out.contains(&n) {
            out.push(n);
        }
    }
    out
}

/// The rules of the three chains: (base chain, `masq4-N`, `masq6-N`).
pub(crate) fn masq_rules(spec: &MasqSpec) -> (Vec<Rule>, Vec<Rule>, Vec<Rule>) {
    let n = masq_names(&spec.network);
    let base = vec![
        RuleBuilder::new()
            .meta_nfproto(nfproto::IPV4)
            .addr_in_set(false, Dir::Src, &n.pods4, false)
            .verdict(Verdict::Goto(n.chain4.clone()))
            .build(&n.base),
        RuleBuilder::new()
            .meta_nfproto(nfproto::IPV6)
            .addr_in_set(true, Dir::Src, &n.pods6, false)
            .verdict(Verdict::Goto(n.chain6.clone()))
            .build(&n.base),
    ];
    let family = |v6: bool, chain: &str| -> Vec<Rule> {
        let mut rules: Vec<Rule> = exempt(spec, v6)
            .into_iter()
            .map(|net| {
                RuleBuilder::new()
                    .addr_cidr(Dir::Dst, net)
                    .verdict(Verdict::Return)
                    .build(chain)
            })
            .collect();
        rules.push(RuleBuilder::new().masquerade().build(chain));
        rules
    };
    let v4 = family(false, &n.chain4);
    let v6 = family(true, &n.chain6);
    (base, v4, v6)
}

/// Appends to `batch` what the masquerade of one attachment still needs, after reading the
/// chains and the pod's elements: nothing but `add element` in the steady state; the whole
/// rebuild of [`masq_add_ops`] when a chain is missing or differs; a delete and re-add of an
/// element only when the address still carries another attachment's tag (reassigned).
pub fn masq_add(
    sock: &mut NftSocket,
    batch: &mut Batch,
    spec: &MasqSpec,
    pod_ips: &[IpAddr],
    tag: &Tag,
) -> Result<(), FirewallError> {
    check_network(&spec.network)?;
    let t = table();
    let n = masq_names(&spec.network);
    let (base, v4, v6) = masq_rules(spec);
    let comment = tag.element_comment();
    let keys: Vec<(&str, Elem)> = pod_ips
        .iter()
        .map(|ip| {
            (
                if ip.is_ipv4() {
                    n.pods4.as_str()
                } else {
                    n.pods6.as_str()
                },
                Elem::addr(*ip),
            )
        })
        .collect();
    let pairs: Vec<(&str, &Elem)> = keys.iter().map(|(s, e)| (*s, e)).collect();
    // The three chains and the pod's elements, read in one round trip.
    let (have, existing) = sock.rules_and_elems(&t, &[&n.base, &n.chain4, &n.chain6], &pairs)?;
    let chains_ok = have
        .iter()
        .zip([(&n.base, &base), (&n.chain4, &v4), (&n.chain6, &v6)])
        .all(|(h, (c, w))| rules_differ(c, h, w).is_none());
    if !chains_ok {
        masq_add_ops(batch, spec, &[], tag)?;
    }
    for ((set, elem), old) in keys.iter().zip(existing) {
        match old.as_ref().and_then(|o| o.comment.as_deref()) {
            Some(c) if c == comment => {}
            Some(_) => {
                batch
                    .del_elems(&t, set, vec![elem.clone()], true)
                    .add_elems(&t, set, vec![elem.clone().with_comment(&comment)]);
            }
            None if old.is_some() => {
                batch
                    .del_elems(&t, set, vec![elem.clone()], true)
                    .add_elems(&t, set, vec![elem.clone().with_comment(&comment)]);
            }
            None => {
                batch.add_elems(&t, set, vec![elem.clone().with_comment(&comment)]);
            }
        }
    }
    Ok(())
}

/// Appends the full masquerade ADD of one attachment to `batch`, without reading (the
/// rebuild path of [`masq_add`]). Equivalent to:
///
/// ```text
/// nft add table inet ferro_cni
/// nft add set inet ferro_cni pods4-N '{ type ipv4_addr; }'    # and pods6-N
/// nft add chain inet ferro_cni masq-N '{ type nat hook postrouting priority srcnat; }'
/// nft add chain inet ferro_cni masq4-N; nft add chain inet ferro_cni masq6-N
/// nft flush chain inet ferro_cni masq-N   # and masq4-N, masq6-N, then re-add their rules
/// nft add element inet ferro_cni pods4-N '{ 10.244.0.5 }'
/// nft delete element inet ferro_cni pods4-N '{ 10.244.0.5 }'
/// nft add element inet ferro_cni pods4-N '{ 10.244.0.5 comment "<ctr>/<ifname>" }'
/// ```
///
/// The add/delete/add of each element (no-op, remove, insert, all in the same
/// transaction) makes the element carry this attachment's tag even when an address was
/// reassigned and still holds another attachment's comment, without reading first: the
/// transaction needs one round trip and no GET.
pub fn masq_add_ops(
    batch: &mut Batch,
    spec: &MasqSpec,
    pod_ips: &[IpAddr],
    tag: &Tag,
) -> Result<(), FirewallError> {
    check_network(&spec.network)?;
    let t = table();
    let n = masq_names(&spec.network);
    ensure_table(batch);
    batch
        .add_set(&t, SetDef::set(&n.pods4, vec![DataType::Ipv4Addr]))
        .add_set(&t, SetDef::set(&n.pods6, vec![DataType::Ipv6Addr]))
        .add_chain(
            &t,
            Chain::base(&n.base, ChainType::Nat, Hook::Postrouting, priority::SRCNAT),
        )
        .add_chain(&t, Chain::regular(&n.chain4))
        .add_chain(&t, Chain::regular(&n.chain6));
    for c in [&n.base, &n.chain4, &n.chain6] {
        batch.flush_chain(&t, c, false);
    }
    let (base, v4, v6) = masq_rules(spec);
    for r in base.into_iter().chain(v4).chain(v6) {
        batch.add_rule(&t, r);
    }
    masq_elem_ops(batch, &n, pod_ips, tag);
    Ok(())
}

/// Appends only the elements of [`masq_add_ops`] (no read, no chain or set), for a caller
/// that verified the network's chains itself a moment ago: a node agent adding pod after pod.
/// The transaction fails (`ENOENT`) if the sets are gone; the caller then takes the full
/// path. Equivalent to the three element commands of [`masq_add_ops`].
pub fn masq_elems_ops(
    batch: &mut Batch,
    network: &str,
    pod_ips: &[IpAddr],
    tag: &Tag,
) -> Result<(), FirewallError> {
    check_network(network)?;
    masq_elem_ops(batch, &masq_names(network), pod_ips, tag);
    Ok(())
}

fn masq_elem_ops(batch: &mut Batch, n: &MasqNames, pod_ips: &[IpAddr], tag: &Tag) {
    let t = table();
    let comment = tag.element_comment();
    for ip in pod_ips {
        let set = if ip.is_ipv4() { &n.pods4 } else { &n.pods6 };
        batch
            .add_elems(&t, set, vec![Elem::addr(*ip)])
            .del_elems(&t, set, vec![Elem::addr(*ip)], false)
            .add_elems(&t, set, vec![Elem::addr(*ip).with_comment(&comment)]);
    }
}

/// The elements of `network`'s two sets that a predicate selects, read at one generation.
fn select(
    sock: &mut NftSocket,
    network: &str,
    ips: Option<&[IpAddr]>,
    keep: impl Fn(&ElemInfo) -> bool,
) -> Result<Vec<(String, ElemInfo)>, FirewallError> {
    let t = table();
    let n = masq_names(network);
    let mut found = Vec::new();
    for (set, v6) in [(&n.pods4, false), (&n.pods6, true)] {
        let elems: Vec<ElemInfo> = match ips {
            Some(ips) => {
                let keys: Vec<Elem> = ips
                    .iter()
                    .filter(|ip| ip.is_ipv6() == v6)
                    .map(|ip| Elem::addr(*ip))
                    .collect();
                if keys.is_empty() {
                    continue;
                }
                sock.get_elems(&t, set, &keys)?
                    .into_iter()
                    .flatten()
                    .collect()
            }
            None => sock.list_elems(&t, set)?.unwrap_or_default(),
        };
        found.extend(
            elems
                .into_iter()
                .filter(|e| keep(e))
                .map(|e| (set.clone(), e)),
        );
    }
    Ok(found)
}

/// Deletes the selected elements in one transaction made against the generation they were
/// read at (see [`guarded`]: another ADD may have re-tagged an element meanwhile).
fn delete_selected(
    sock: &mut NftSocket,
    what: &str,
    network: &str,
    ips: Option<&[IpAddr]>,
    keep: impl Fn(&ElemInfo) -> bool,
) -> Result<Vec<IpAddr>, FirewallError> {
    guarded(sock, what, |sock| {
        let doomed = select(sock, network, ips, &keep)?;
        let t = table();
        let mut b = Batch::new();
        for (set, e) in &doomed {
            b.del_elems(&t, set, vec![Elem::raw(e.key.clone())], true);
        }
        let removed = doomed
            .iter()
            .filter_map(|(_, e)| key_addr(&e.key))
            .collect();
        Ok((b, removed))
    })
}

/// The address an element key of `pods4-N`/`pods6-N` holds.
fn key_addr(key: &[u8]) -> Option<IpAddr> {
    match key.len() {
        4 => <[u8; 4]>::try_from(key).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(key).ok().map(IpAddr::from),
        _ => None,
    }
}

/// Removes this attachment's pod addresses from `network`'s sets; returns the addresses
/// removed (a plugin uses them to undo per-address state when DEL has no `prevResult`).
/// Elements whose comment is another attachment's (the address was reassigned) are kept.
/// With `ips = None` (DEL without `prevResult`) the two sets are listed to find them.
/// A missing table, set or element is success. Equivalent to:
///
/// ```text
/// nft get element inet ferro_cni pods4-N '{ 10.244.0.5 }'   # or: nft list set ... pods4-N
/// nft delete element inet ferro_cni pods4-N '{ 10.244.0.5 }' # if its comment is the tag
/// ```
pub fn masq_remove(
    sock: &mut NftSocket,
    network: &str,
    ips: Option<&[IpAddr]>,
    tag: &Tag,
) -> Result<Vec<IpAddr>, FirewallError> {
    check_network(network)?;
    delete_selected(sock, "masquerade remove", network, ips, |e| {
        e.comment
            .as_deref()
            .and_then(StoredTag::parse_element)
            .is_some_and(|s| tag.matches(&s))
    })
}

/// Deletes the elements of `network`'s sets whose tag `is_valid` rejects; returns their
/// addresses.
/// Elements without a tag comment (not ours to judge) are kept. Equivalent to `nft list set`
/// of both sets, then `nft delete element` for each stale one.
pub fn masq_gc(
    sock: &mut NftSocket,
    network: &str,
    is_valid: impl Fn(&StoredTag) -> bool,
) -> Result<Vec<IpAddr>, FirewallError> {
    check_network(network)?;
    delete_selected(sock, "masquerade gc", network, None, |e| {
        e.comment
            .as_deref()
            .and_then(StoredTag::parse_element)
            .is_some_and(|s| !is_valid(&s))
    })
}

/// How the rules read from `chain` differ from `want` (`None`: the same, in order).
fn rules_differ(chain: &str, have: &[RuleInfo], want: &[Rule]) -> Option<String> {
    let t = table();
    if have.len() != want.len() {
        return Some(format!(
            "chain {t} {chain} has {} rules, expected {}",
            have.len(),
            want.len()
        ));
    }
    let (i, (h, w)) = have
        .iter()
        .zip(want)
        .enumerate()
        .find(|(_, (h, w))| !h.matches(&w.exprs))?;
    let show = |e: &[crate::nft::Expr]| {
        e.iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    };
    Some(format!(
        "rule {} of chain {t} {chain} differs: expected {}, found {}",
        i + 1,
        show(&w.exprs),
        show(&h.exprs)
    ))
}

/// Compares the rules of `chain` with `want`; the error names the chain and the first
/// difference.
pub(crate) fn check_rules(
    sock: &mut NftSocket,
    chain: &str,
    want: &[Rule],
) -> Result<(), FirewallError> {
    let have = sock.list_rules(&table(), Some(chain))?;
    match rules_differ(chain, &have, want) {
        Some(d) => Err(FirewallError::Check(d)),
        None => Ok(()),
    }
}

/// CHECK: errors (naming what is missing) unless the table, the base chain with its two
/// rules, the regular chains with the expected rules, and this attachment's tagged elements
/// are present. Equivalent to reading `nft list table inet ferro_cni` restricted to
/// `masq-N`, `masq4-N`, `masq6-N` and `nft get element` of the pod's addresses.
pub fn masq_check(
    sock: &mut NftSocket,
    spec: &MasqSpec,
    ips: &[IpAddr],
    tag: &Tag,
) -> Result<(), FirewallError> {
    check_network(&spec.network)?;
    let t = table();
    let n = masq_names(&spec.network);
    if sock.get_table(&t)?.is_none() {
        return Err(FirewallError::Check(format!("table {t} is missing")));
    }
    let chains = sock.get_chains(&t, &[&n.base, &n.chain4, &n.chain6])?;
    for (name, info) in [&n.base, &n.chain4, &n.chain6].iter().zip(&chains) {
        if info.is_none() {
            return Err(FirewallError::Check(format!("chain {t} {name} is missing")));
        }
    }
    match chains[0].as_ref().and_then(|c| c.base) {
        Some(b)
            if b.kind == ChainType::Nat
                && b.hook == Hook::Postrouting
                && b.priority == priority::SRCNAT => {}
        _ => {
            return Err(FirewallError::Check(format!(
                "chain {t} {} is not a nat postrouting srcnat base chain",
                n.base
            )))
        }
    }
    let (base, v4, v6) = masq_rules(spec);
    check_rules(sock, &n.base, &base)?;
    check_rules(sock, &n.chain4, &v4)?;
    check_rules(sock, &n.chain6, &v6)?;
    for ip in ips {
        let set = if ip.is_ipv4() { &n.pods4 } else { &n.pods6 };
        let got = sock.get_elems(&t, set, &[Elem::addr(*ip)])?.pop().flatten();
        match got {
            None => {
                return Err(FirewallError::Check(format!(
                    "element {ip} of set {t} {set} is missing"
                )))
            }
            Some(e) => {
                let mine = e
                    .comment
                    .as_deref()
                    .and_then(StoredTag::parse_element)
                    .is_some_and(|s| tag.matches(&s));
                if !mine {
                    return Err(FirewallError::Check(format!(
                        "element {ip} of set {t} {set} belongs to {:?}, not {}",
                        e.comment.unwrap_or_default(),
                        tag.element_comment()
                    )));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nft::OpKind;

    fn spec() -> MasqSpec {
        MasqSpec {
            network: "kbr".into(),
            non_masquerade: vec![
                "10.244.0.0/16".parse().unwrap(),
                "10.0.0.5/8".parse().unwrap(), // host bits are dropped
                "10.0.0.0/8".parse().unwrap(), // duplicate after truncation
                "fd00::/64".parse().unwrap(),
            ],
        }
    }

    #[test]
    fn chains_have_one_rule_per_exempt_cidr_plus_masquerade() {
        let (base, v4, v6) = masq_rules(&spec());
        assert_eq!(base.len(), 2);
        // 10.244/16, 10/8, 224/4, 255.255.255.255/32, masquerade
        assert_eq!(v4.len(), 5);
        // fd00::/64, ff00::/8, fe80::/10, masquerade
        assert_eq!(v6.len(), 4);
        assert!(v4.iter().all(|r| r.chain == "masq4-kbr"));
        assert_eq!(
            v4.last().unwrap().exprs,
            vec![crate::nft::Expr::Masq { flags: 0 }]
        );
        assert_eq!(
            base[0].exprs.last().unwrap(),
            &crate::nft::Expr::verdict(Verdict::Goto("masq4-kbr".into()))
        );
    }

    #[test]
    fn add_is_one_batch_whose_size_does_not_depend_on_other_pods() {
        let tag = Tag::new("kbr", "ctr1", "eth0");
        let ips: Vec<IpAddr> = vec!["10.244.0.5".parse().unwrap(), "fd00::5".parse().unwrap()];
        let mut b = Batch::new();
        masq_add_ops(&mut b, &spec(), &ips, &tag).unwrap();
        // table, 2 sets, 3 chains, 3 flushes, 2 + 5 + 4 rules, 3 ops per address
        assert_eq!(b.len(), 1 + 2 + 3 + 3 + 11 + 3 * 2);
        let tagged: Vec<_> = b
            .ops()
            .iter()
            .filter_map(|o| match &o.kind {
                OpKind::AddElems { set, elems } if elems[0].comment.is_some() => {
                    Some((set.clone(), elems[0].comment.clone().unwrap()))
                }
                _ => None,
            })
            .collect();
        assert_eq!(
            tagged,
            vec![
                ("pods4-kbr".to_string(), "ctr1/eth0".to_string()),
                ("pods6-kbr".to_string(), "ctr1/eth0".to_string())
            ]
        );
        assert!(b.describe().contains("flush chain inet ferro_cni masq-kbr"));
        let mut empty = Batch::new();
        let bad = MasqSpec {
            network: String::new(),
            non_masquerade: vec![],
        };
        assert!(masq_add_ops(&mut empty, &bad, &ips, &tag).is_err());
    }
}
