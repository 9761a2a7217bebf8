//! `overlay`: pods in a private pod CIDR, one slice per node, VXLAN between nodes. See README.md.
#![forbid(unsafe_code)]

mod apply;
mod config;
mod plan;
mod plugin;

fn main() -> std::process::ExitCode {
    ferro_spec::run(&plugin::Overlay)
}
