//! `portmap`: host ports for pods. See README.md.
#![no_main]
#![deny(unsafe_code)]

ferro_spec::plugin_main!(ferro_portmap::plugin::Portmap);
