//! `host-local`: node-local IPAM, store-compatible with the reference plugin, with GC and
//! STATUS. The plugin lives in the library; `main` only hands the process to the dispatcher.
#![no_main]
#![deny(unsafe_code)]

ferro_spec::plugin_main!(ferro_host_local::plugin::HostLocal);
