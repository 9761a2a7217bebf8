//! `loopback`: brings `lo` up inside the pod's network namespace.
#![no_main]
#![deny(unsafe_code)]

mod plugin;

ferro_spec::plugin_main!(plugin::Loopback);
