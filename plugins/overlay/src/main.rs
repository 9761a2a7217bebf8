//! `overlay`: pods in a private pod CIDR, one slice per node, VXLAN between nodes. See README.md.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    ferro_spec::run(&ferro_overlay::plugin::Overlay)
}
