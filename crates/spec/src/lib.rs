//! # ferro-spec: the CNI protocol, pure
//!
//! Everything a ferro-cni plugin shares about the protocol and nothing about the kernel:
//!
//! - [`version`]: the supported versions (0.1.0 to 1.1.0) and the per-version verb rules;
//! - [`conf`]: the shared configuration keys, capability arguments (`portMappings` in both
//!   spellings), GC attachment lists;
//! - [`result`]: the canonical result and its layout in every version;
//! - [`error`]: [`CniError`], the one error type facing the runtime, with the spec codes;
//! - [`args`] and [`env`](mod@env): `CNI_ARGS` and the `CNI_*` variables, validated per verb;
//! - [`skel`]: the dispatcher, with environment and stdio injected, and the [`Plugin`] trait;
//! - [`delegate`]: running the IPAM plugin found on `CNI_PATH`;
//! - [`entry`]: the process entry point of a plugin binary ([`plugin_main!`]).
//!
//! Plugin-specific error codes (100 and up): 100 a kernel or file operation failed, 101 no
//! address can be allocated, 102 a delegated plugin failed or could not be run, 103 CHECK found
//! a difference from what ADD created.
// One function may use `unsafe`: the entry point's SIGPIPE disposition (`entry`).
#![deny(unsafe_code)]

pub mod args;
pub mod conf;
pub mod delegate;
pub mod entry;
pub mod env;
pub mod error;
pub mod logging;
pub mod result;
pub mod skel;
pub mod version;

pub use conf::{Attachment, NetConf, PortMapping, Protocol};
pub use env::{CmdArgs, Command, Env};
pub use error::{CniError, Code, FirstError};
pub use result::{CniResult, Dns, Interface, IpConfig, Route};
pub use skel::{dispatch, run, Plugin, Request};
pub use version::Version;
