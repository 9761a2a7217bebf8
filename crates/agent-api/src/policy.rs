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
}
