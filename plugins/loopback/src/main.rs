//! `loopback`: brings `lo` up inside the pod's network namespace.
#![forbid(unsafe_code)]

mod plugin;

fn main() -> std::process::ExitCode {
    ferro_spec::run(&plugin::Loopback)
}
