//! `bridge`: the kubenet model. See README.md.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    ferro_spec::run(&ferro_bridge::plugin::Bridge)
}
