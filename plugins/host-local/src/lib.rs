//! `host-local`: node-local IPAM, store-compatible with the reference plugin, with GC and
//! STATUS. The verbs live in [`plugin`], the `resolvConf` reader in [`dns`] (public so that
//! it can be exercised on its own: the fuzz targets under `crates/fuzz` do); the binary
//! (`main.rs`) only hands the process to the dispatcher.

pub mod dns;
pub mod plugin;
