//! # ferro-dns: cluster DNS, pure
//!
//! What `ferro-agent`'s DNS server decides, without sockets, so every answer is unit-tested:
//!
//! - [`zone`]: the cluster zone built from one snapshot of the cluster (services, headless
//!   services' pods, SRV for named ports, pod names, ExternalName as CNAME) and its answers;
//! - [`message`]: turning a query into a reply (header flags, EDNS, truncation for UDP), and
//!   the caching rules for upstream answers (how long, TTLs aged on the way out).
//!
//! Messages are read and written with `hickory-proto`'s codec.
#![forbid(unsafe_code)]

pub mod message;
pub mod zone;

pub use hickory_proto;
pub use zone::{Answer, Zone};
