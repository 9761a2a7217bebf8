//! `overlay`: pods in a private pod CIDR, one slice per node, VXLAN between nodes. See README.md.
#![no_main]
#![deny(unsafe_code)]

ferro_spec::plugin_main!(ferro_overlay::plugin::Overlay);
