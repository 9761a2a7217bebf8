//! # ferro-policy: Kubernetes NetworkPolicy, pure
//!
//! Everything about `networking.k8s.io/v1` NetworkPolicy that needs no kernel:
//!
//! - [`model`]: the cluster as policy sees it ([`Cluster`]: namespaces and their labels,
//!   pods with labels, addresses, node and named ports, compiled policies);
//! - [`live`]: the same model kept up to date object by object ([`LiveCluster`]);
//! - [`decide`](mod@decide): the decision for one connection attempt and why (what `cnictl policy
//!   explain` prints);
//! - [`matrix`]: reachability matrices between pods, predicted from the model (the truth
//!   tables the tests probe);
//! - [`node`]: what one node enforces: its pods' classes and the elements of each class;
//! - [`space`]: address, protocol and port ranges, and their decomposition into the disjoint
//!   elements the kernel's interval sets take;
//! - [`ruleset`]: the nf_tables objects of a node (table `inet ferro_policy`), built whole
//!   or as the difference between two states;
//! - [`cases`]: the truth-table world (namespaces x, y, z; pods a, b, c) and the upstream
//!   cases, shared by the unit tests and the end-to-end suites.
#![forbid(unsafe_code)]

pub mod cases;
pub mod decide;
pub mod live;
pub mod matrix;
pub mod model;
pub mod node;
pub mod ruleset;
pub mod space;
pub mod text;

pub use decide::{decide, Decision, Side};
pub use live::LiveCluster;
pub use model::{Cluster, Direction, Key, Pod, Policy, Proto};
pub use node::{node_policy, NodePolicy};

#[cfg(test)]
mod tests;
