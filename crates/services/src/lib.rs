//! # ferro-services: Services, pure
//!
//! What the agent needs to turn `Service` resources into a node's datapath, without a
//! kernel or a store, so every decision is unit-tested:
//!
//! - [`model`]: each service port of each family, with its virtual addresses (ClusterIPs,
//!   external IPs, load-balancer addresses, the NodePort), its policies and its endpoints:
//!   the pods its selector matches that have an address (an `Attachment`) on a live node,
//!   with `targetPort` resolved per pod;
//! - [`alloc`]: choosing a free ClusterIP, NodePort or load-balancer address, and checking
//!   given ones (the agent turns the choice into a store transaction);
//! - [`mod@plan`]: the node's `inet ferro_services` table as data, in the spirit of kube-proxy's
//!   nftables mode: one verdict-map lookup per packet whatever the number of services, a
//!   chain per service port and per endpoint;
//! - [`announce`]: which node announces each load-balancer address (records attached to
//!   node leases, candidates ranked per address);
//! - [`mod@diff`]: the one nftables batch that turns the programmed table into the desired one,
//!   touching only what changed (or rebuilding it whole at start).
#![forbid(unsafe_code)]

pub mod alloc;
pub mod announce;
pub mod diff;
pub mod fixtures;
pub mod model;
pub mod plan;

pub use diff::{diff, Planner, Transaction};
pub use model::{Endpoint, Proto, ServicePort, Topology};
pub use plan::{plan, Ruleset, MASQUERADE_MARK, TABLE};
