//! # ferro-agent-api: talking to ferro-agent
//!
//! The agent serves its node's API on a unix socket (default
//! [`DEFAULT_SOCKET`], mode 0600, root only). The protocol:
//!
//! - one JSON [`Request`] per line (UTF-8, `\n`-terminated, no newline inside: serde_json's
//!   compact form), answered by one JSON [`Response`] per line, in order; a connection may
//!   carry any number of requests;
//! - requests are tagged by `op` (`status`, `apply`, `get`, `list`, `delete`, `describe`,
//!   `report`, `policyExplain`, `policyStats`, `ipam*`), responses by `result`; a failure is
//!   `{"result":"error","error":{"code":...,"message":...}}`
//!   with an [`ErrorCode`] callers can act on (`unavailable`: the store cannot be reached,
//!   try again later);
//! - plugins report their attachments with `report` ([`AttachmentReport`]);
//! - cluster IPAM ([`ipam`]): `ipamAllocate`, `ipamRelease`, `ipamCheck`, `ipamGC`,
//!   `ipamStatus` for the `cluster-ipam` plugin; `ipamShow`, `ipamAudit`, `ipamReclaim` for
//!   `cnictl ipam show|check|release`;
//! - [`cni`]: the `cluster-ipam` verbs as CNI sees them (the binary runs them, and so do
//!   the main plugins in their own process when their `ipam.type` is `cluster-ipam`);
//! - [`spool`]: requests a plugin could not deliver (attachment reports, address releases
//!   when the agent is down), kept in a directory next to the socket and replayed by the
//!   agent in order.
//!
//! [`Client`] is a blocking client (std only, no async runtime), cheap enough for a plugin's
//! ADD path: one connect, one write, one read. A request the agent cannot take now (it is not
//! running, or cannot reach the store) waits in the [`spool`] until the agent applies it;
//! [`deliver`] sends or spools.

mod client;
pub mod cni;
pub mod ipam;
pub mod policy;
mod proto;
pub mod spool;

pub use client::{call, Client, ClientError};
pub use proto::*;
pub use spool::{deliver, Delivery, Spool};

/// The agent's default socket.
pub const DEFAULT_SOCKET: &str = "/run/ferro-cni/agent.sock";
/// The environment variable clients read the socket path from.
pub const SOCKET_ENV: &str = "FERRO_AGENT_SOCKET";
/// The `nodeList` of an `overlay` plugin that leaves the VXLAN peers to the agent (its
/// `overlay` key), which takes them from the store's nodes.
pub const AGENT_NODE_LIST: &str = "agent";
/// The `ipam` type of the cluster's shared address pool (the `cluster-ipam` plugin, a client
/// of the agent).
pub const CLUSTER_IPAM: &str = "cluster-ipam";
/// The longest line the agent accepts (a request), in bytes.
pub const MAX_LINE: usize = 64 << 20;
