//! The resources: Kubernetes' own types for the Kubernetes kinds, and ours (`ferro-cni.io/v1`)
//! in the same apiVersion/kind/metadata/spec/status shape, held together by [`Object`].
//!
//! Our kinds keep every optional field an `Option` (serialized only when set), so that an
//! object serializes back to exactly the fields it was given: that is how unknown fields
//! are found (see [`crate::manifest`]). Defaults are applied by the typed views
//! ([`ClusterNetwork::settings`]).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{keys, Kind};

/// `ferro-cni.io/v1` ClusterNetwork: the cluster's address space and network settings. One
/// per cluster, named `default`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterNetwork {
    /// `ferro-cni.io/v1`.
    pub api_version: String,
    /// `ClusterNetwork`.
    pub kind: String,
    /// Name (`default`), labels, annotations.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The settings.
    #[serde(default)]
    pub spec: ClusterNetworkSpec,
}

/// The settings of a [`ClusterNetwork`]; see [`ClusterNetwork::settings`] for defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterNetworkSpec {
    /// Pod address space, at most one CIDR per family (`10.244.0.0/16`, `fd00:244::/56`).
    #[serde(rename = "podCIDRs", default, skip_serializing_if = "Option::is_none")]
    pub pod_cidrs: Option<Vec<String>>,
    /// Prefix length of the IPAM blocks cut from the pod CIDRs (default /26 and /122).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipam_block_size: Option<FamilyPrefixes>,
    /// Prefix length of each node's pod CIDR under kubenet (default /24 and /64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_block_size: Option<FamilyPrefixes>,
    /// Service (ClusterIP) address space, at most one CIDR per family.
    #[serde(
        rename = "serviceCIDRs",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub service_cidrs: Option<Vec<String>>,
    /// NodePort range, `FIRST-LAST` (default `30000-32767`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_port_range: Option<String>,
    /// Address pools LoadBalancer services take their addresses from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer_pools: Option<Vec<LoadBalancerPool>>,
    /// The cluster's DNS domain (default `cluster.local`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_domain: Option<String>,
    /// The node firewall (off unless `enabled`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_firewall: Option<crate::nodefw::NodeFirewallSpec>,
}

/// A prefix length per address family.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FamilyPrefixes {
    /// For IPv4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<u8>,
    /// For IPv6.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<u8>,
}

/// A pool of load-balancer addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancerPool {
    /// The pool's name (services choose one with an annotation, later).
    #[serde(default)]
    pub name: String,
    /// Its addresses, as CIDRs.
    #[serde(rename = "cidrs", default)]
    pub cidrs: Vec<String>,
}

/// `ferro-cni.io/v1` Node: one per node, written by its agent at start. Its liveness is its
/// lease record ([`NodeLease`]); `status` is filled in when the node is read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    /// `ferro-cni.io/v1`.
    pub api_version: String,
    /// `Node`.
    pub kind: String,
    /// The node's name.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// What the agent registered.
    #[serde(default)]
    pub spec: NodeSpec,
    /// Liveness and what the node holds, as read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<NodeStatus>,
}

/// What a node's agent registers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeSpec {
    /// The node's underlay addresses, at most one per family.
    #[serde(default)]
    pub addresses: Vec<String>,
    /// The MAC address of the node's VXLAN device (overlay), once it exists.
    #[serde(rename = "vtepMAC", default, skip_serializing_if = "Option::is_none")]
    pub vtep_mac: Option<String>,
    /// The node's own pod CIDRs under kubenet (one block of `nodeBlockSize` per family).
    #[serde(rename = "podCIDRs", default, skip_serializing_if = "Option::is_none")]
    pub pod_cidrs: Option<Vec<String>>,
    /// The agent's version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_version: Option<String>,
}

/// A node's state as read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    /// Whether its agent holds a live lease.
    pub ready: bool,
    /// The lease's id (hexadecimal), when live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<String>,
    /// The lease's TTL in seconds, when live.
    #[serde(
        rename = "leaseTTLSeconds",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub lease_ttl_seconds: Option<u64>,
    /// When the agent took the lease (RFC 3339), when live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// The IPAM blocks the node holds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocks: Vec<String>,
}

/// A node's liveness record, at [`keys::node_lease`], attached to its agent's store lease:
/// it disappears when the agent stops (revoked) or dies (expired).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeLease {
    /// The node.
    pub node: String,
    /// The store lease (hexadecimal id).
    pub lease: String,
    /// Its TTL in seconds.
    #[serde(rename = "ttlSeconds")]
    pub ttl_seconds: u64,
    /// When the agent took it (RFC 3339).
    pub since: String,
}

/// `ferro-cni.io/v1` IPAMBlock: a block of pod addresses and the node it belongs to. Its
/// `status` (the allocations) is owned by the IPAM part of the agent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpamBlock {
    /// `ferro-cni.io/v1`.
    pub api_version: String,
    /// `IPAMBlock`.
    pub kind: String,
    /// Named after the CIDR ([`keys::block_name`]).
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The block.
    #[serde(default)]
    pub spec: IpamBlockSpec,
    /// Allocations (shape owned by IPAM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Value>,
}

/// An IPAM block.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpamBlockSpec {
    /// The block's CIDR.
    #[serde(default)]
    pub cidr: String,
    /// The node it is affine to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// `ferro-cni.io/v1` Attachment: one interface of one pod on one node, as a plugin reported
/// it (namespaced: the pod's namespace).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    /// `ferro-cni.io/v1`.
    pub api_version: String,
    /// `Attachment`.
    pub kind: String,
    /// Name and the pod's namespace.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The attachment.
    #[serde(default)]
    pub spec: AttachmentSpec,
}

/// What a plugin reports of an attachment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttachmentSpec {
    /// The node.
    #[serde(default)]
    pub node: String,
    /// The pod's name (`K8S_POD_NAME`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// The container (sandbox) id.
    #[serde(rename = "containerID", default)]
    pub container_id: String,
    /// The interface in the pod.
    #[serde(default)]
    pub interface: String,
    /// The host end of the pod's veth pair, on the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_interface: Option<String>,
    /// The pod's addresses on it, as CIDRs.
    #[serde(default)]
    pub addresses: Vec<String>,
    /// The CNI network name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// The plugin that made it (`bridge`, `flat`, `overlay`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<String>,
}

/// Any resource.
///
/// The kinds a cluster holds by the thousand are boxed: the Kubernetes types are large
/// (a `Pod` is over 2 KB before its containers), and an unboxed enum would give every
/// object, an `Attachment` as much as a `Pod`, the size of the largest.
#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    /// A Namespace.
    Namespace(Box<Namespace>),
    /// A Pod.
    Pod(Box<Pod>),
    /// A Service.
    Service(Box<Service>),
    /// A NetworkPolicy.
    NetworkPolicy(Box<NetworkPolicy>),
    /// The ClusterNetwork.
    ClusterNetwork(Box<ClusterNetwork>),
    /// An EgressPolicy.
    EgressPolicy(Box<crate::egress::EgressPolicy>),
    /// A Node.
    Node(Box<Node>),
    /// An IPAMBlock.
    IpamBlock(Box<IpamBlock>),
    /// An Attachment.
    Attachment(Box<Attachment>),
}

macro_rules! each {
    ($self:expr, $o:ident => $e:expr) => {
        match $self {
            Object::Namespace($o) => $e,
            Object::Pod($o) => $e,
            Object::Service($o) => $e,
            Object::NetworkPolicy($o) => $e,
            Object::ClusterNetwork($o) => $e,
            Object::EgressPolicy($o) => $e,
            Object::Node($o) => $e,
            Object::IpamBlock($o) => $e,
            Object::Attachment($o) => $e,
        }
    };
}

impl Object {
    /// The Pod, when it is one.
    pub fn as_pod(&self) -> Option<&Pod> {
        match self {
            Object::Pod(p) => Some(p),
            _ => None,
        }
    }

    /// The Pod, to change, when it is one.
    pub fn as_pod_mut(&mut self) -> Option<&mut Pod> {
        match self {
            Object::Pod(p) => Some(p),
            _ => None,
        }
    }

    /// The Attachment, when it is one.
    pub fn as_attachment(&self) -> Option<&Attachment> {
        match self {
            Object::Attachment(a) => Some(a),
            _ => None,
        }
    }

    /// The Attachment, to change, when it is one.
    pub fn as_attachment_mut(&mut self) -> Option<&mut Attachment> {
        match self {
            Object::Attachment(a) => Some(a),
            _ => None,
        }
    }

    /// Its kind.
    pub fn kind(&self) -> Kind {
        match self {
            Object::Namespace(_) => Kind::Namespace,
            Object::Pod(_) => Kind::Pod,
            Object::Service(_) => Kind::Service,
            Object::NetworkPolicy(_) => Kind::NetworkPolicy,
            Object::ClusterNetwork(_) => Kind::ClusterNetwork,
            Object::EgressPolicy(_) => Kind::EgressPolicy,
            Object::Node(_) => Kind::Node,
            Object::IpamBlock(_) => Kind::IpamBlock,
            Object::Attachment(_) => Kind::Attachment,
        }
    }

    /// Its metadata.
    pub fn meta(&self) -> &ObjectMeta {
        each!(self, o => &o.metadata)
    }

    /// Its metadata, to change.
    pub fn meta_mut(&mut self) -> &mut ObjectMeta {
        each!(self, o => &mut o.metadata)
    }

    /// Its name (empty when missing).
    pub fn name(&self) -> &str {
        self.meta().name.as_deref().unwrap_or("")
    }

    /// Its namespace (namespaced kinds only).
    pub fn namespace(&self) -> Option<&str> {
        if self.kind().namespaced() {
            self.meta().namespace.as_deref()
        } else {
            None
        }
    }

    /// Its labels.
    pub fn labels(&self) -> &BTreeMap<String, String> {
        static EMPTY: BTreeMap<String, String> = BTreeMap::new();
        self.meta().labels.as_ref().unwrap_or(&EMPTY)
    }

    /// `Kind namespace/name` or `Kind name`, for messages.
    pub fn describe(&self) -> String {
        match self.namespace() {
            Some(ns) => format!("{} {ns}/{}", self.kind(), self.name()),
            None => format!("{} {}", self.kind(), self.name()),
        }
    }

    /// Its store key.
    pub fn key(&self) -> String {
        keys::object(self.kind(), self.namespace(), self.name())
    }

    /// Its JSON (what the store holds).
    pub fn to_value(&self) -> Value {
        // Serializing these types cannot fail: no maps with non-string keys, no custom
        // serializers that error on valid values.
        each!(self, o => serde_json::to_value(o).unwrap_or(Value::Null))
    }

    /// Decodes `v` as the kind its own `apiVersion` and `kind` name (an error names what is
    /// wrong: an unknown kind, another apiVersion, a field that does not decode).
    pub fn from_typed(v: Value) -> Result<Object, String> {
        let kind = Kind::from_type(
            v["apiVersion"].as_str().unwrap_or_default(),
            v["kind"].as_str().unwrap_or_default(),
        )?;
        Object::from_value(kind, v).map_err(|e| e.to_string())
    }

    /// Decodes a stored value of `kind` (written by us: no strictness needed).
    pub fn from_value(kind: Kind, v: Value) -> Result<Object, serde_json::Error> {
        Ok(match kind {
            Kind::Namespace => Object::Namespace(serde_json::from_value(v)?),
            Kind::Pod => Object::Pod(Box::new(serde_json::from_value(v)?)),
            Kind::Service => Object::Service(Box::new(serde_json::from_value(v)?)),
            Kind::NetworkPolicy => Object::NetworkPolicy(Box::new(serde_json::from_value(v)?)),
            Kind::ClusterNetwork => Object::ClusterNetwork(serde_json::from_value(v)?),
            Kind::EgressPolicy => Object::EgressPolicy(serde_json::from_value(v)?),
            Kind::Node => Object::Node(serde_json::from_value(v)?),
            Kind::IpamBlock => Object::IpamBlock(serde_json::from_value(v)?),
            Kind::Attachment => Object::Attachment(Box::new(serde_json::from_value(v)?)),
        })
    }
}
