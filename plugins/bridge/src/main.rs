//! `bridge`: the kubenet model. See README.md.
#![no_main]
#![deny(unsafe_code)]

ferro_spec::plugin_main!(ferro_bridge::plugin::Bridge);
