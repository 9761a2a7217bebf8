//! The cluster IPAM messages: what the `cluster-ipam` plugin asks on ADD, DEL, CHECK, GC and
//! STATUS, and what `cnictl ipam show|check|release` asks.
//!
//! An attachment is named by its container id and interface (`CNI_CONTAINERID`,
//! `CNI_IFNAME`): that pair is the handle an allocation is recorded under, as host-local does.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// Address counts (`u128`: an IPv6 pool is larger than any 64-bit number) in JSON: a
/// number up to `u64::MAX`, a decimal string beyond. Use with `#[serde(with = "count")]`.
pub mod count {
    use serde::de::{Error, Visitor};
    use serde::{Deserializer, Serializer};

    /// Serializes `n`.
    pub fn serialize<S: Serializer>(n: &u128, s: S) -> Result<S::Ok, S::Error> {
        match u64::try_from(*n) {
            Ok(small) => s.serialize_u64(small),
            Err(_) => s.serialize_str(&n.to_string()),
        }
    }

    struct V;

    impl Visitor<'_> for V {
        type Value = u128;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a count (a number, or a decimal string)")
        }

        fn visit_u64<E: Error>(self, v: u64) -> Result<u128, E> {
            Ok(u128::from(v))
        }

        fn visit_i64<E: Error>(self, v: i64) -> Result<u128, E> {
            u128::try_from(v).map_err(E::custom)
        }

        fn visit_str<E: Error>(self, v: &str) -> Result<u128, E> {
            v.parse().map_err(E::custom)
        }
    }

    /// Deserializes a count.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
        d.deserialize_any(V)
    }
}

/// How a network cuts its addresses out of the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum IpamMode {
    /// One on-link block per node and family (the node's pod CIDR, `nodeBlockSize`), the
    /// gateway at its first address: kubenet's bridge.
    Node,
    /// Single addresses (`/32`, `/128`) out of any of the node's blocks (`ipamBlockSize`),
    /// routed one by one: flat and overlay.
    Pod,
}

impl IpamMode {
    /// `node` or `pod`.
    pub fn as_str(self) -> &'static str {
        match self {
            IpamMode::Node => "node",
            IpamMode::Pod => "pod",
        }
    }
}

/// An address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// IPv4.
    Ipv4,
    /// IPv6.
    Ipv6,
}

impl Family {
    /// The family of `ip`.
    pub fn of(ip: IpAddr) -> Family {
        if ip.is_ipv4() {
            Family::Ipv4
        } else {
            Family::Ipv6
        }
    }

    /// `ipv4` or `ipv6`.
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Ipv4 => "ipv4",
            Family::Ipv6 => "ipv6",
        }
    }
}

/// One attachment: the container id and the interface in it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct IpamHandle {
    /// `CNI_CONTAINERID`.
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// `CNI_IFNAME`.
    pub ifname: String,
}

impl std::fmt::Display for IpamHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.container_id, self.ifname)
    }
}

/// A pod, from `K8S_POD_NAMESPACE` and `K8S_POD_NAME`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PodRef {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

impl std::fmt::Display for PodRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// ADD: one address per family for an attachment, from this node's blocks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpamAllocate {
    /// The CNI network name.
    pub network: String,
    /// The attachment.
    #[serde(flatten)]
    pub handle: IpamHandle,
    /// `CNI_NETNS`: a path the agent watches to tell a live pod from a leak.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<String>,
    /// The pod, when the runtime names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodRef>,
    /// How the network cuts addresses.
    pub mode: IpamMode,
    /// The families wanted (`None`: every family of the pool).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub families: Option<Vec<Family>>,
    /// The attachment the plugin is about to make with these addresses (an ADD report
    /// without its addresses): the agent records it with the addresses it hands out, so the
    /// plugin needs no `report` request after its ADD. The answer's `attachment` says
    /// whether it did; a plugin that gets none (an agent that does not know the field, a
    /// record that could not be written) sends its report itself. A plugin whose ADD fails
    /// afterwards sends the DEL report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<crate::AttachmentReport>,
    /// The masquerade the plugin would add for these addresses once its pod is attached,
    /// for the agent to add now, on its own netfilter socket, before it answers (while the
    /// plugin creates the pod's links). The answer's `masqueraded` says whether it did; a
    /// plugin that gets `false` (an agent that does not know the field, or a failure) adds
    /// it itself. A plugin whose ADD fails afterwards removes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub masquerade: Option<Masquerade>,
}

/// The masquerade of an attachment's addresses (`ferro_net::firewall::masq_add` with the
/// network's `MasqSpec`): the pod's traffic leaves with the node's address, except towards
/// the subnets of its own addresses and `keep_source`, in that order (a subnet listed twice
/// counts once).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Masquerade {
    /// Destinations that keep the pod's source address besides its own subnets
    /// (`nonMasqueradeCIDRs`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keep_source: Vec<IpNet>,
}

impl IpamAllocate {
    /// The ADD report to record once `ips` are handed out: `report` with those addresses,
    /// when it names this request's attachment (`None` otherwise).
    pub fn report_with(&self, ips: &[IpamIp]) -> Option<crate::AttachmentReport> {
        let r = self.report.as_ref()?;
        if r.event != crate::AttachmentEvent::Add
            || r.container_id != self.handle.container_id
            || r.ifname != self.handle.ifname
            || r.network != self.network
        {
            return None;
        }
        let mut r = r.clone();
        r.addresses = ips.iter().map(|i| i.address.to_string()).collect();
        r.firewall = None;
        Some(r)
    }
}

/// DEL: the attachment's addresses go back to their blocks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpamRelease {
    /// The CNI network name (informational: the handle names the attachment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// The attachment.
    #[serde(flatten)]
    pub handle: IpamHandle,
}

/// CHECK: the attachment still holds `addresses`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpamCheck {
    /// The attachment.
    #[serde(flatten)]
    pub handle: IpamHandle,
    /// What ADD returned (from `prevResult`).
    pub addresses: Vec<IpAddr>,
}

/// GC: the runtime's list of the network's live attachments; the network's other
/// allocations are leaks (released after the grace period, checked again first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpamGc {
    /// The CNI network name.
    pub network: String,
    /// `cni.dev/valid-attachments`.
    pub valid: Vec<IpamHandle>,
}

/// STATUS: can an ADD of this shape be served now?
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpamStatus {
    /// How the network cuts addresses.
    pub mode: IpamMode,
    /// The families wanted (`None`: every family of the pool).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub families: Option<Vec<Family>>,
}

/// `cnictl ipam show`: the pool, its blocks and their use.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpamShow {
    /// Only this node's blocks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// `cnictl ipam check`: leaked and missing addresses, conflicts, orphaned blocks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpamAudit {}

/// `cnictl ipam release`: an address of this node (refused while its pod lives, unless
/// `force`), an attachment's addresses, or every block of a node whose lease is gone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpamReclaim {
    /// Addresses to release.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<IpAddr>,
    /// Attachments to release.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub handles: Vec<IpamHandle>,
    /// A node whose lease is gone: every block of it goes back to the pool now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Release addresses even when their pod looks alive.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub force: bool,
}

/// One address handed out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpamIp {
    /// The address with the prefix the pod gets (`/32` and `/128` in pod mode, the block's
    /// prefix in node mode).
    pub address: IpNet,
    /// The gateway (node mode: the block's first address, on the bridge).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// The block it comes from.
    pub block: IpNet,
}

/// One pool (one pod CIDR) and its use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolUse {
    /// The pod CIDR.
    pub cidr: IpNet,
    /// Prefix of pod-mode blocks.
    pub block_prefix: u8,
    /// Prefix of node-mode (kubenet) blocks.
    pub node_block_prefix: u8,
    /// Blocks claimed.
    pub blocks: u64,
    /// Addresses covered by claimed blocks.
    #[serde(with = "count")]
    pub claimed_addresses: u128,
    /// Addresses in use.
    pub in_use: u64,
    /// Addresses of the pool.
    #[serde(with = "count")]
    pub size: u128,
}

/// One node's share of the pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeUse {
    /// The node.
    pub node: String,
    /// Whether its agent holds a live lease.
    pub ready: bool,
    /// Blocks it holds.
    pub blocks: u64,
    /// Addresses in use in them.
    pub in_use: u64,
    /// Addresses they can hand out.
    #[serde(with = "count")]
    pub capacity: u128,
}

/// One block and its use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockUse {
    /// The block.
    pub cidr: IpNet,
    /// The node it belongs to.
    pub node: String,
    /// `node` or `pod`.
    pub mode: IpamMode,
    /// Addresses in use.
    pub in_use: u64,
    /// Addresses it can hand out.
    #[serde(with = "count")]
    pub capacity: u128,
    /// Whether the figures come from the owner's memory (the node answering) rather than
    /// the store's copy.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub live: bool,
}

/// Answer to [`IpamShow`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpamShowReply {
    /// The pools.
    pub pools: Vec<PoolUse>,
    /// The nodes holding blocks.
    pub nodes: Vec<NodeUse>,
    /// Every block.
    pub blocks: Vec<BlockUse>,
}

/// An address whose attachment looks gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Leak {
    /// The address.
    pub address: IpAddr,
    /// Its attachment.
    #[serde(flatten)]
    pub handle: IpamHandle,
    /// Its pod, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodRef>,
    /// Why it looks gone (`netns /run/netns/x is gone`...).
    pub evidence: String,
    /// Seconds since it was first seen gone.
    pub for_seconds: u64,
    /// Seconds until it is released (0: at the next pass).
    pub release_in_seconds: u64,
}

/// An attachment the store knows on this node whose address this node does not hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Missing {
    /// The address the attachment reports.
    pub address: IpAddr,
    /// The attachment.
    #[serde(flatten)]
    pub handle: IpamHandle,
    /// What is wrong.
    pub detail: String,
}

/// A block whose node's lease is gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Orphan {
    /// The block.
    pub cidr: IpNet,
    /// Its node.
    pub node: String,
    /// Addresses the store's copy lists in use.
    pub in_use: u64,
    /// Seconds until it returns to the pool, as this node counts (`None`: not seen gone
    /// long enough to count yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_in_seconds: Option<u64>,
}

/// Answer to [`IpamAudit`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpamAuditReply {
    /// The node that answered (leaks and missing addresses are its own).
    pub node: String,
    /// Allocations this node holds.
    pub allocations: u64,
    /// Addresses whose attachment looks gone.
    pub leaked: Vec<Leak>,
    /// Attachments without their address.
    pub missing: Vec<Missing>,
    /// Overlapping blocks, blocks this node lost to another, addresses held twice.
    pub conflicts: Vec<String>,
    /// Blocks of nodes whose lease is gone.
    pub orphaned: Vec<Orphan>,
    /// Allocations the store's copy does not show yet (written within a second, or the
    /// store is unreachable).
    pub unsynced: u64,
    /// Whether the store could be read (without it only this node's memory is checked).
    pub store_reachable: bool,
}

impl IpamAuditReply {
    /// Nothing leaked, missing or in conflict.
    pub fn clean(&self) -> bool {
        self.leaked.is_empty() && self.missing.is_empty() && self.conflicts.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AttachmentEvent, AttachmentReport};

    fn alloc(report: Option<AttachmentReport>) -> IpamAllocate {
        IpamAllocate {
            network: "kubenet".into(),
            handle: IpamHandle {
                container_id: "c1".into(),
                ifname: "eth0".into(),
            },
            netns: None,
            pod: None,
            mode: IpamMode::Node,
            families: None,
            report,
            masquerade: None,
        }
    }

    fn report(event: AttachmentEvent, container_id: &str) -> AttachmentReport {
        AttachmentReport {
            event,
            plugin: "bridge".into(),
            network: "kubenet".into(),
            container_id: container_id.into(),
            ifname: "eth0".into(),
            pod_namespace: Some("shop".into()),
            pod_name: Some("web-1".into()),
            host_interface: "vethab12".into(),
            addresses: vec!["10.0.0.9/32".into()],
            firewall: Some(crate::FirewallRemoval {
                masquerade: true,
                addresses: None,
            }),
        }
    }

    #[test]
    fn the_folded_report_gets_the_handed_out_addresses() {
        let ips = vec![
            IpamIp {
                address: "10.244.1.7/24".parse().unwrap(),
                gateway: Some("10.244.1.1".parse().unwrap()),
                block: "10.244.1.0/24".parse().unwrap(),
            },
            IpamIp {
                address: "fd00::7/64".parse().unwrap(),
                gateway: None,
                block: "fd00::/64".parse().unwrap(),
            },
        ];
        let r = alloc(Some(report(AttachmentEvent::Add, "c1")))
            .report_with(&ips)
            .unwrap();
        assert_eq!(r.addresses, vec!["10.244.1.7/24", "fd00::7/64"]);
        assert_eq!(r.firewall, None);
        assert_eq!(
            (r.host_interface.as_str(), r.pod_name.as_deref()),
            ("vethab12", Some("web-1"))
        );
        // nothing asked, a DEL, another attachment: nothing to record
        assert_eq!(alloc(None).report_with(&ips), None);
        assert_eq!(
            alloc(Some(report(AttachmentEvent::Del, "c1"))).report_with(&ips),
            None
        );
        assert_eq!(
            alloc(Some(report(AttachmentEvent::Add, "c2"))).report_with(&ips),
            None
        );
        // on the wire the field is left out when empty, and read back
        let a = alloc(Some(report(AttachmentEvent::Add, "c1")));
        let s = serde_json::to_string(&crate::Request::IpamAllocate(a.clone())).unwrap();
        assert!(s.contains(r#""report":{"event":"add""#), "{s}");
        assert_eq!(
            serde_json::from_str::<crate::Request>(&s).unwrap(),
            crate::Request::IpamAllocate(a)
        );
        let bare = serde_json::to_string(&crate::Request::IpamAllocate(alloc(None))).unwrap();
        assert!(!bare.contains("report"), "{bare}");
    }
}
