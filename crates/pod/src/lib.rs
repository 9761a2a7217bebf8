//! # ferro-pod: what the main plugins share for one pod attachment
//!
//! `bridge`, `flat` and `overlay` each attach one pod to a node in their own model, and each
//! does the same things around that model: open the pod's namespace, take an IPAM lease and
//! give it back when ADD fails, delete the host veth and the pod's masquerade state on DEL,
//! describe the pod firewall of the network, refuse CHECK without `prevResult`. Those parts
//! live here, once; each plugin keeps only its model (its `plan.rs` and `apply.rs`).
//!
//! ## Layout
//! - [`session`]: the pod's namespace and the netlink connections of one ADD or CHECK;
//! - [`attachment`]: the frame of an ADD (namespace, node facts, IPAM lease, plan, then the
//!   model's kernel work; with [`add_early`], the model's first kernel work runs while the
//!   IPAM request is in flight) and its end (keep the lease, or remove the host veth and
//!   release it); the frames of CHECK and STATUS; the DEL body; GC;
//! - [`ipam`]: the attachment's IPAM: `cluster-ipam` in-process, any other type by exec, and
//!   the lease a failed ADD gives back;
//! - [`report`]: attachment reports to the node's `ferro-agent` (the `agent` key), spooled
//!   when the agent cannot take them;
//! - [`firewall`]: the pod firewall of a network (masquerade, anti-spoofing), pure;
//! - [`keys`]: the keys `flat` and `overlay` share (`snat`/`ipMasq`, `antiSpoofing`,
//!   `nonMasqueradeCIDRs`, a required `ipam`);
//! - [`check`](mod@check): CHECK's typed differences and the rule that CHECK needs `prevResult`;
//! - [`transparent`]: CHECK of a transparent-mode attachment (`flat`, `overlay`): the kernel
//!   facts, read first, then compared by a pure function;
//! - [`error`]: [`PodError`], whose CNI codes are assigned in one place.
//!
//! Pure parts (firewall, keys, check rendering, the transparent comparison)
//! are unit-tested here; the kernel parts run in the plugins' binary tests.
#![forbid(unsafe_code)]

pub mod attachment;
pub mod check;
pub mod cluster_dns;
pub mod error;
pub mod firewall;
pub mod ipam;
pub mod keys;
pub mod report;
pub mod session;
pub mod transparent;

pub use attachment::{add, add_early, check, del, gc, status, Attach, Early, Inputs, Inspect};
pub use check::{prev_result, Difference, Differences};
pub use error::PodError;
/// The masquerade a model asks the node's agent to add ([`add_early`]).
pub use ferro_agent_api::ipam::Masquerade;
pub use firewall::{pod_firewall, union};
pub use keys::SharedKeys;
pub use report::AgentKey;
pub use session::Session;

/// A link-local address (`169.254.0.0/16`, `fe80::/10`), from `ferro-net`.
pub use ferro_net::is_link_local;
