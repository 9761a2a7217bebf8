//! `flat`: the Azure CNI model (transparent mode). See README.md.
#![no_main]
#![deny(unsafe_code)]

ferro_spec::plugin_main!(ferro_flat::plugin::Flat);
