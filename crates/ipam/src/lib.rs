//! # ferro-ipam: host-local address management
//!
//! The logic behind the `host-local` plugin, with no CNI protocol beyond error conversion:
//!
//! - [`config`]: the `ipam` section (range sets, the legacy single range, `ipRanges`,
//!   `routes`, `dataDir`, `resolvConf`) canonicalized, and the requested addresses
//!   (`CNI_ARGS IP`, `args.cni.ips`, `runtimeConfig.ips`);
//! - [`allocator`]: pure decisions for ADD, DEL, CHECK, GC and STATUS over a [`store::Store`];
//! - [`store`]: the store traits and the lease format;
//! - [`disk`]: the file store, compatible with the reference plugin's
//!   `<dataDir>/<network>/<ip>` layout, crash-safe, with a per-attachment index;
//! - [`error`]: [`IpamError`] and its conversion to [`ferro_spec::CniError`].
//!
//! ```no_run
//! # fn main() -> Result<(), ferro_ipam::IpamError> {
//! use ferro_ipam::{allocator, DiskStore, IpamConfig};
//! use ferro_spec::{Attachment, Version};
//!
//! let ipam = serde_json::json!({"ranges": [[{"subnet": "10.22.0.0/24"}]], "dataDir": "/run/ipam"});
//! let conf = IpamConfig::parse(&ipam, None, Version::V1_0_0)?;
//! let store = DiskStore::new(&conf.data_dir, "mynet");
//! store.create()?;
//! let att = Attachment { container_id: "ctr1".into(), ifname: "eth0".into() };
//! let got = allocator::allocate(&mut store.lock()?, &conf, &att, &[])?;
//! assert_eq!(got[0].address.to_string(), "10.22.0.2/24");
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]

pub mod allocator;
pub mod config;
pub mod disk;
pub mod error;
pub mod store;

#[cfg(test)]
mod fake;

pub use allocator::{Allocation, GcReport};
pub use config::{IpamConfig, Range, RangeSet, Requested};
pub use disk::DiskStore;
pub use error::IpamError;
pub use store::{Lease, Owner, Store, StoreMut};
