//! NetworkPolicy requests: why a connection is allowed or denied, and what was dropped.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The answer to an explain request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    /// Allowed or denied.
    pub allowed: bool,
    /// The decision in words, several lines (`allowed: x/a -> y/b`, then each side).
    pub text: String,
    /// The decision as data (which policy, rule, peer and port decided each side).
    pub decision: Value,
    /// The source address used.
    pub from_address: String,
    /// The destination address used.
    pub to_address: String,
    /// The EgressPolicy part, for a pod's connection (absent when egress control is off or
    /// the source is not a pod).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<EgressVerdict>,
}

/// What the EgressPolicies do with a connection leaving the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EgressVerdict {
    /// Allowed or denied by the egress table.
    pub allowed: bool,
    /// The policy that decided (`None`: none applies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// The index of its allow rule that matched (`None`: its default action).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<usize>,
    /// The decision in words.
    pub text: String,
}

/// Drops of one pod by the egress table, on this node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EgressDrops {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod.
    pub pod: String,
    /// The Deny policy its drops are counted for (the first selecting it, by name).
    pub policy: String,
    /// Packets dropped.
    pub packets: u64,
    /// Bytes dropped.
    pub bytes: u64,
}

/// Drops of one pod in one direction, on this node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodDrops {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod.
    pub pod: String,
    /// `ingress` or `egress`.
    pub direction: String,
    /// The policies isolating the pod in that direction.
    pub policies: Vec<String>,
    /// Packets dropped.
    pub packets: u64,
    /// Bytes dropped.
    pub bytes: u64,
}

/// Drops of the pods one policy isolates, on this node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyDrops {
    /// The policy's namespace.
    pub namespace: String,
    /// The policy.
    pub policy: String,
    /// Pods of this node it isolates (in any direction).
    pub pods: usize,
    /// Packets dropped at those pods in the directions it isolates.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
}

/// What the node's policy tables dropped.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyStats {
    /// The node.
    pub node: String,
    /// The store revision the node's policy tables were last programmed from (0: not yet);
    /// a change of revision R is enforced on this node once this is at least R.
    #[serde(default)]
    pub revision: i64,
    /// Per isolated pod and direction.
    pub pods: Vec<PodDrops>,
    /// Per policy selecting pods of this node.
    pub policies: Vec<PolicyDrops>,
    /// Connections leaving the cluster dropped by an EgressPolicy, per pod of this node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<EgressDrops>,
}
