//! Anti-spoofing for pods whose host-side veths are named `<P><hash>` (flat and overlay):
//!
//! ```text
//! table inet ferro_cni {
//!   chain antispoof-P {
//!     type filter hook prerouting priority raw; policy accept;
//!     iifname "P*" fib saddr . iif oif missing drop
//!   }
//! }
//! ```
//!
//! A strict reverse-path check: a packet from a pod is dropped unless its source address is
//! routed back through the veth it arrived on, so a pod can only send from the addresses
//! the node routes to it (v4 and v6 in one rule). Note that IPv6 packets sourced from `::`
//! (duplicate address detection) fail the check too; the plugins turn DAD off in pods.

use super::masq::check_rules;
use super::{ensure_table, table, FirewallError};
use crate::nft::{priority, Batch, Chain, ChainType, Hook, NftSocket, Rule, RuleBuilder, Verdict};

/// `antispoof-<prefix>`.
pub fn antispoof_chain(prefix: &str) -> String {
    format!("antispoof-{prefix}")
}

fn check_prefix(prefix: &str) -> Result<(), FirewallError> {
    let ok = !prefix.is_empty()
        && prefix.len() < 15
        && prefix
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/' && b != b'*' && b != b':');
    if ok {
        Ok(())
    } else {
        Err(FirewallError::Invalid(format!(
            "interface prefix {prefix:?} must be 1-14 printable characters without '/', ':' or '*'"
        )))
    }
}

fn rule(prefix: &str) -> Rule {
    RuleBuilder::new()
        .iifname_prefix(prefix)
        .fib_saddr_iif_oif_missing()
        .verdict(Verdict::Drop)
        .build(&antispoof_chain(prefix))
}

/// Appends the anti-spoofing chain for host interfaces named `<prefix>*`, flushed and
/// rebuilt. Equivalent to:
///
/// ```text
/// nft add table inet ferro_cni
/// nft add chain inet ferro_cni antispoof-P '{ type filter hook prerouting priority raw; }'
/// nft flush chain inet ferro_cni antispoof-P
/// nft add rule inet ferro_cni antispoof-P iifname "P*" fib saddr . iif oif missing drop
/// ```
pub fn antispoof_ops(batch: &mut Batch, prefix: &str) -> Result<(), FirewallError> {
    check_prefix(prefix)?;
    let t = table();
    let chain = antispoof_chain(prefix);
    ensure_table(batch);
    batch
        .add_chain(
            &t,
            Chain::base(&chain, ChainType::Filter, Hook::Prerouting, priority::RAW),
        )
        .flush_chain(&t, &chain, false)
        .add_rule(&t, rule(prefix));
    Ok(())
}

/// Appends [`antispoof_ops`] only when `antispoof-P` does not already hold exactly the rule
/// (one small read instead of a rebuild that would create nf_tables destroy work).
pub fn antispoof_ensure(
    sock: &mut NftSocket,
    batch: &mut Batch,
    prefix: &str,
) -> Result<(), FirewallError> {
    check_prefix(prefix)?;
    if !super::rules_match(sock, &antispoof_chain(prefix), &[rule(prefix)])? {
        antispoof_ops(batch, prefix)?;
    }
    Ok(())
}

/// Appends the removal of the chain (when the last pod of that prefix is gone); a missing
/// chain is success. Equivalent to `nft flush chain ...; nft delete chain inet ferro_cni
/// antispoof-P`.
pub fn antispoof_remove_ops(batch: &mut Batch, prefix: &str) -> Result<(), FirewallError> {
    check_prefix(prefix)?;
    let t = table();
    let chain = antispoof_chain(prefix);
    batch
        .flush_chain(&t, &chain, true)
        .del_chain(&t, &chain, true);
    Ok(())
}

/// CHECK: errors unless `antispoof-P` is a filter prerouting base chain at priority raw
/// holding exactly the rule. Equivalent to reading `nft list chain inet ferro_cni
/// antispoof-P`.
pub fn antispoof_check(sock: &mut NftSocket, prefix: &str) -> Result<(), FirewallError> {
    check_prefix(prefix)?;
    let t = table();
    let chain = antispoof_chain(prefix);
    let Some(info) = sock.get_chain(&t, &chain)? else {
        return Err(FirewallError::Check(format!(
            "chain {t} {chain} is missing"
        )));
    };
    match info.base {
        Some(b)
            if b.kind == ChainType::Filter
                && b.hook == Hook::Prerouting
                && b.priority == priority::RAW => {}
        _ => {
            return Err(FirewallError::Check(format!(
                "chain {t} {chain} is not a filter prerouting raw base chain"
            )))
        }
    }
    check_rules(sock, &chain, &[rule(prefix)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nft::{Expr, OpKind};

    #[test]
    fn one_rule_matching_the_prefix() {
        let mut b = Batch::new();
        antispoof_ops(&mut b, "fl").unwrap();
        let d = b.describe();
        assert!(d.contains("add chain inet ferro_cni antispoof-fl"), "{d}");
        assert!(d.contains("flush chain inet ferro_cni antispoof-fl"), "{d}");
        let rules: Vec<_> = b
            .ops()
            .iter()
            .filter_map(|o| match &o.kind {
                OpKind::AddRule(r) => Some(r),
                _ => None,
            })
            .collect();
        assert_eq!(rules.len(), 1);
        let shown: Vec<String> = rules[0].exprs.iter().map(Expr::to_string).collect();
        assert_eq!(
            shown,
            [
                "[ meta load iifname => reg 1 ]",
                "[ cmp eq reg 1 0x00006c66 ]",
                "[ fib saddr . iif oif present => reg 1 ]",
                "[ cmp eq reg 1 0x00000000 ]",
                "[ immediate reg 0 drop ]",
            ]
        );
    }

    #[test]
    fn bad_prefixes_are_refused() {
        for p in ["", "a*", "a/b", "abcdefghijklmnop", "a b"] {
            assert!(antispoof_ops(&mut Batch::new(), p).is_err(), "{p:?}");
        }
    }
}
