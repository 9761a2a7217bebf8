//! `portmap`: host ports for pods. See README.md.
#![forbid(unsafe_code)]

mod config;
mod plugin;

fn main() -> std::process::ExitCode {
    ferro_spec::run(&plugin::Portmap)
}
