//! # The suite's firewall: one nftables table, `inet ferro_cni`
//!
//! Built as operations on an [`nft::Batch`](crate::nft::Batch), so a plugin sends one
//! transaction per CNI call (and may combine masquerade and anti-spoofing in it); ownership is
//! recorded in the kernel objects' comments ([`Tag`]), so DEL and GC need no state of their own.
//!
//! - [`masq`]: masquerade per network with sets of pod addresses;
//! - [`antispoof`]: a strict reverse-path check per host-interface prefix;
//! - [`hostports`]: host ports (portmap) with verdict maps and one chain per attachment;
//! - [`reference`](mod@reference): the reference plugins' iptables state of an attachment,
//!   removed by DEL and GC on a node taken over from them (the one exception to "never touch
//!   another owner's tables");
//! - [`node`]: the suite's state on the node, listed for people and removed whole.
//!
//! The design, with what each part writes: [docs/firewall.md](../../../../docs/firewall.md).

pub mod antispoof;
pub mod hostports;
pub mod masq;
pub mod node;
pub mod pod;
pub mod reference;
mod tag;

pub use antispoof::{
    antispoof_chain, antispoof_check, antispoof_ensure, antispoof_ops, antispoof_remove_ops,
};
pub use hostports::{
    hostports_add, hostports_check, hostports_del, hostports_gc, hostports_list, hostports_plan,
    HostPorts, HostPortsOf, HostPortsPlan, MappedPort, Replaced,
};
pub use masq::{
    masq_add, masq_add_ops, masq_check, masq_elems_ops, masq_gc, masq_names, masq_remove,
    MasqNames, MasqSpec,
};
pub use pod::{masq_unwind, pod_del_around, pod_del_on, pod_gc, valid_tags, PodDel, PodFirewall};
pub use reference::{
    legacy_nat_tables, reference_del, reference_gc, reference_state, valid_ids, RefAttachment,
    RefGc, RefKind, RefRemoved,
};
pub use tag::{valid_in, StoredTag, Tag};

use ferro_spec::CniError;
use sha2::{Digest, Sha256};

use crate::nft::{Batch, NftError, NftSocket, TableRef};

/// The one table the suite owns.
pub const TABLE: &str = "ferro_cni";

/// `inet ferro_cni`.
pub fn table() -> TableRef {
    TableRef::inet(TABLE)
}

/// How often an operation that lost a race (the ruleset changed between its read and its
/// transaction) is retried.
const RACE_ATTEMPTS: usize = 5;

/// A firewall operation failed.
#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    /// The kernel refused or a socket call failed.
    #[error(transparent)]
    Nft(#[from] NftError),
    /// CHECK found the firewall different from what ADD creates; the message names what.
    #[error("nft check: {0}")]
    Check(String),
    /// The request itself is unusable (bad prefix, mark bit out of range...).
    #[error("firewall: {0}")]
    Invalid(String),
}

impl FirewallError {
    /// A CHECK failure (plugins return code 103 for it).
    pub fn is_check_failure(&self) -> bool {
        matches!(self, FirewallError::Check(_))
    }
}

impl From<FirewallError> for CniError {
    /// Check failures are code 103, invalid requests 7, kernel failures 100 (naming the nft
    /// object).
    fn from(e: FirewallError) -> Self {
        match &e {
            FirewallError::Check(_) => CniError::check_failed(e.to_string()),
            FirewallError::Invalid(_) => CniError::invalid_config(e.to_string()),
            FirewallError::Nft(_) => CniError::internal(e.to_string()),
        }
    }
}

/// `nft add table inet ferro_cni`.
/// Whether `chain` of our table holds exactly `want`; `false` when it (or the table) is
/// missing or differs. Lets an ADD leave correct chains alone: re-sending a chain or
/// flushing it creates nf_tables destroy work, which costs an RCU grace period that the
/// kernel makes the process wait for when it closes its netfilter socket.
pub(crate) fn rules_match(
    sock: &mut crate::nft::NftSocket,
    chain: &str,
    want: &[crate::nft::Rule],
) -> Result<bool, FirewallError> {
    match masq::check_rules(sock, chain, want) {
        Ok(()) => Ok(true),
        Err(FirewallError::Check(_)) => Ok(false),
        Err(FirewallError::Nft(e)) if e.is_not_found() => Ok(false),
        Err(e) => Err(e),
    }
}

pub(crate) fn ensure_table(b: &mut Batch) {
    b.add_table(&table());
}

/// The part of object names that stands for a network: the name itself, or `h<16 hex>` when
/// it would push a set or chain name past the kernel's 255 bytes.
pub(crate) fn net_key(network: &str) -> String {
    if network.len() <= 200 && !network.contains('\0') {
        network.to_string()
    } else {
        let d = Sha256::digest(network.as_bytes());
        format!("h{}", crate::names::hex(&d[..8]))
    }
}

pub(crate) fn check_network(network: &str) -> Result<(), FirewallError> {
    if network.is_empty() {
        return Err(FirewallError::Invalid("empty network name".into()));
    }
    Ok(())
}

/// Runs `f` again (bounded) while it fails because the ruleset changed under it.
pub(crate) fn retry_races<T>(
    what: &str,
    mut f: impl FnMut() -> Result<T, FirewallError>,
    is_race: impl Fn(&NftError) -> bool,
) -> Result<T, FirewallError> {
    let mut last = None;
    for _ in 0..RACE_ATTEMPTS {
        match f() {
            Err(FirewallError::Nft(e)) if is_race(&e) => {
                log::debug!("{what}: the ruleset changed meanwhile ({e}); retrying");
                last = Some(e);
            }
            r => return r,
        }
    }
    Err(match last {
        Some(e) => FirewallError::Nft(e),
        None => FirewallError::Invalid(format!("{what}: no attempt made")),
    })
}

/// Reads and decides with `f`, then applies its batch (if not empty) against the ruleset
/// generation the reads saw; all of it retried when the ruleset changed in between, the last
/// attempt without the guard (so that a node whose ruleset never stops changing cannot make
/// a DEL or GC fail). Returns `f`'s value.
pub(crate) fn guarded<T>(
    sock: &mut NftSocket,
    what: &str,
    mut f: impl FnMut(&mut NftSocket) -> Result<(Batch, T), FirewallError>,
) -> Result<T, FirewallError> {
    let mut attempt = 0;
    retry_races(
        what,
        || {
            attempt += 1;
            let genid = sock.generation()?;
            let (b, out) = f(sock)?;
            if !b.is_empty() {
                log::debug!("{what}:\n{}", b.describe());
                if attempt < RACE_ATTEMPTS {
                    sock.apply_at(&b, genid)?;
                } else {
                    sock.apply(&b)?;
                }
            }
            Ok(out)
        },
        NftError::is_generation_changed,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_cni_codes() {
        let c: CniError =
            FirewallError::Check("chain inet ferro_cni masq-x is missing".into()).into();
        assert_eq!(c.code.number(), 103);
        assert!(c.msg.contains("masq-x"));
        let n: CniError = FirewallError::Nft(NftError::kernel(
            "add rule inet ferro_cni masq-kbr",
            22,
            None,
        ))
        .into();
        assert_eq!(n.code.number(), 100);
        assert_eq!(
            n.msg,
            "nft: add rule inet ferro_cni masq-kbr: Invalid argument"
        );
        let i: CniError = FirewallError::Invalid("bad".into()).into();
        assert_eq!(i.code.number(), 7);
    }

    #[test]
    fn long_network_names_are_shortened_in_object_names() {
        assert_eq!(net_key("kbr"), "kbr");
        let k = net_key(&"n".repeat(250));
        assert!(k.starts_with('h') && k.len() == 17);
        assert_eq!(k, net_key(&"n".repeat(250)));
    }
}
