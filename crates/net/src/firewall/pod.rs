//! The firewall work of one pod attachment, as the main plugins (bridge, flat, overlay) need
//! it: one transaction on ADD (masquerade and anti-spoofing together), tag-based removal on
//! DEL (with or without `prevResult`, the reference plugins' state of the attachment
//! included), checks, and GC from the runtime's valid attachments.

use std::net::IpAddr;

use ferro_spec::Attachment;

use super::antispoof::antispoof_ensure;
use super::masq::masq_add;
use super::reference::{reference_del, reference_gc, valid_ids, RefGc, RefKind, RefRemoved};
use super::{antispoof_check, masq_check, masq_gc, masq_remove};
use super::{valid_in, FirewallError, MasqSpec, Tag};
use crate::nft::{Batch, NftError, NftSocket};

/// What the firewall does for the pods of one network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodFirewall {
    /// Masquerade (with its non-masquerade destinations), when enabled.
    pub masq: Option<MasqSpec>,
    /// The host-interface prefix whose traffic is reverse-path checked, when enabled.
    pub antispoof_prefix: Option<String>,
}

impl PodFirewall {
    /// Nothing to do (neither masquerade nor anti-spoofing).
    pub fn is_empty(&self) -> bool {
        self.masq.is_none() && self.antispoof_prefix.is_none()
    }

    /// ADD: a few small reads, then at most one transaction holding only what is missing
    /// (in the steady state, the pod's set elements). Without anything enabled, no socket
    /// is opened.
    pub fn add(&self, ips: &[IpAddr], tag: &Tag) -> Result<(), FirewallError> {
        if self.is_empty() {
            return Ok(());
        }
        self.add_on(&mut NftSocket::open()?, ips, tag)
    }

    /// [`PodFirewall::add`] on an open socket (a node agent's long-lived one).
    pub fn add_on(
        &self,
        sock: &mut NftSocket,
        ips: &[IpAddr],
        tag: &Tag,
    ) -> Result<(), FirewallError> {
        let mut b = Batch::new();
        if let Some(m) = &self.masq {
            masq_add(sock, &mut b, m, ips, tag)?;
        }
        if let Some(p) = &self.antispoof_prefix {
            antispoof_ensure(sock, &mut b, p)?;
        }
        if !b.is_empty() {
            sock.apply(&b)?;
        }
        Ok(())
    }

    /// CHECK: the masquerade rules and this pod's elements, and the anti-spoofing rule.
    pub fn check(&self, ips: &[IpAddr], tag: &Tag) -> Result<(), FirewallError> {
        if self.is_empty() {
            return Ok(());
        }
        let mut sock = NftSocket::open()?;
        if let Some(m) = &self.masq {
            masq_check(&mut sock, m, ips, tag)?;
        }
        if let Some(p) = &self.antispoof_prefix {
            antispoof_check(&mut sock, p)?;
        }
        Ok(())
    }
}

/// Removes the masquerade elements of `ips` that carry the attachment's `tag`, on a socket of
/// its own: an ADD that failed after they were added (by the node's agent) takes them back.
pub fn masq_unwind(network: &str, ips: &[IpAddr], tag: &Tag) -> Result<Vec<IpAddr>, FirewallError> {
    let mut sock = NftSocket::open()?;
    masq_remove(&mut sock, network, Some(ips), tag)
}

/// The tags of the runtime's valid attachments of `network` (GC's
/// `cni.dev/valid-attachments`; `None`, no key at all, is the empty set).
pub fn valid_tags(network: &str, valid: Option<&[Attachment]>) -> Vec<Tag> {
    valid
        .unwrap_or_default()
        .iter()
        .map(|a| Tag::new(network, &a.container_id, &a.ifname))
        .collect()
}

/// A copy of a socket failure, for the second of two results it fails.
fn same_failure(e: &NftError) -> FirewallError {
    FirewallError::Nft(match e {
        NftError::Io { op, source } => NftError::Io {
            op: op.clone(),
            source: std::io::Error::new(source.kind(), source.to_string()),
        },
        other => NftError::Protocol {
            op: "open netlink socket".into(),
            msg: other.to_string(),
        },
    })
}

/// What [`pod_del_around`] did.
#[derive(Debug)]
pub struct PodDel<T> {
    /// The masquerade elements removed (their addresses), or the failure.
    pub unmasked: Result<Vec<IpAddr>, FirewallError>,
    /// The reference plugins' state of the attachment removed (taking over a node).
    pub reference: Result<RefRemoved, FirewallError>,
    /// What `teardown` returned.
    pub teardown: T,
}

/// DEL's firewall part, around the link teardown: [`pod_del_on`] on a socket of its own,
/// then runs `teardown` with the netfilter socket still open. Deleted objects are freed
/// after an RCU grace period, which the kernel makes the closing of any netfilter socket
/// wait for; the link deletion waits for one too, and this way both waits overlap.
pub fn pod_del_around<T>(
    masquerade: bool,
    network: &str,
    ips: Option<&[IpAddr]>,
    tag: &Tag,
    teardown: impl FnOnce() -> T,
) -> PodDel<T> {
    let mut sock = match NftSocket::open() {
        Ok(s) => s,
        Err(e) => {
            return PodDel {
                unmasked: Err(same_failure(&e)),
                reference: Err(e.into()),
                teardown: teardown(),
            }
        }
    };
    let (unmasked, reference) = pod_del_on(&mut sock, masquerade, network, ips, tag);
    let done = teardown();
    drop(sock);
    PodDel {
        unmasked,
        reference,
        teardown: done,
    }
}

/// The firewall state of one attachment that DEL removes, on an open netfilter socket (the
/// plugin's own, or a node agent's long-lived one, which never closes and so never waits
/// for the kernel's destroy work): with `masquerade`, its masquerade elements (found by
/// address when `ips` is given, by tag otherwise; their addresses are returned), and the
/// reference plugins' masquerade chain of the attachment ([`reference_del`]: one round trip
/// when there is none). Anti-spoofing has no per-pod state. A node without our table is
/// success.
pub fn pod_del_on(
    sock: &mut NftSocket,
    masquerade: bool,
    network: &str,
    ips: Option<&[IpAddr]>,
    tag: &Tag,
) -> (
    Result<Vec<IpAddr>, FirewallError>,
    Result<RefRemoved, FirewallError>,
) {
    let unmasked = if masquerade {
        masq_remove(sock, network, ips, tag)
    } else {
        Ok(Vec::new())
    };
    let reference = reference_del(sock, RefKind::Masquerade, network, &tag.container_id);
    (unmasked, reference)
}

/// GC: with `masquerade`, removes the masquerade elements of attachments not in `valid` (the
/// runtime's `cni.dev/valid-attachments`; `None`, no key at all, means the empty set, as Go
/// plugins read it) and returns their addresses; and removes the reference plugins'
/// masquerade chains of `network`'s attachments not in `valid` ([`reference_gc`]).
pub fn pod_gc(
    network: &str,
    masquerade: bool,
    valid: Option<&[Attachment]>,
) -> (
    Result<Vec<IpAddr>, FirewallError>,
    Result<RefGc, FirewallError>,
) {
    let tags = valid_tags(network, valid);
    let mut sock = match NftSocket::open() {
        Ok(s) => s,
        Err(e) => return (Err(same_failure(&e)), Err(e.into())),
    };
    let unmasked = if masquerade {
        masq_gc(&mut sock, network, valid_in(&tags))
    } else {
        Ok(Vec::new())
    };
    let reference = reference_gc(&mut sock, RefKind::Masquerade, network, valid_ids(&tags));
    (unmasked, reference)
}
