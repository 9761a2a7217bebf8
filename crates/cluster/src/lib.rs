//! # ferro-cluster: the cluster's resource model, pure
//!
//! What the cluster stores and how users write it, with no I/O:
//!
//! - [`Kind`]: the kinds (Kubernetes' `Namespace`, `Pod`, `Service`, `NetworkPolicy`; ours
//!   under `ferro-cni.io/v1`: `ClusterNetwork`, and the system-written `Node`, `IPAMBlock`,
//!   `Attachment`), their names on the command line, who writes them;
//! - [`resource`]: our kinds' types and [`Object`], any resource; [`PodView`], what a node
//!   agent keeps of a `Pod`;
//! - [`manifest`]: multi-document YAML or JSON decoded strictly (unknown fields refused), with
//!   file, document and field path in every message; [`manifest::admit`] for what a user
//!   applies;
//! - [`validate`]: names, labels, ports, protocols, addresses, selectors;
//! - [`network`]: the ClusterNetwork's settings with defaults (pod CIDRs, block sizes,
//!   service CIDRs, NodePort range, load-balancer pools, DNS domain);
//! - [`selector`]: label selectors, checked and matched;
//! - [`attachment`]: attachments' names, and their join with pods (labels one way,
//!   addresses and node the other);
//! - [`keys`]: the store's key layout;
//! - [`table`]: `cnictl get` tables and `cnictl describe` text.
//!
//! The Kubernetes types are `k8s-openapi`'s (API version 1.33), so manifests written for
//! Kubernetes apply unchanged.
#![forbid(unsafe_code)]

pub mod attachment;
pub mod egress;
mod egress_names;
pub mod keys;
pub mod kind;
pub mod manifest;
pub mod names;
pub mod network;
pub mod nodefw;
mod pod_view;
pub mod resource;
pub mod selector;
pub mod table;
pub mod validate;

pub use k8s_openapi;
pub use kind::{Kind, ALL_KINDS, FERRO_API_VERSION};
pub use manifest::{Applicable, Document, ManifestError, Origin};
pub use network::Settings;
pub use pod_view::PodView;
pub use resource::{NodeLease, Object};
pub use selector::Selector;

/// The current time, to the second (what `creationTimestamp` holds).
pub fn now() -> k8s_openapi::jiff::Timestamp {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    k8s_openapi::jiff::Timestamp::from_second(i64::try_from(secs).unwrap_or(0))
        .unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH)
}
