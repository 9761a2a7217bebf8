//! `portmap`: host ports for pods. See README.md.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    ferro_spec::run(&ferro_portmap::plugin::Portmap)
}
