//! `portmap`: host ports for pods. See README.md.
#![forbid(unsafe_code)]

mod apply;
mod config;
mod plan;
mod plugin;

fn main() -> std::process::ExitCode {
    ferro_spec::run(&plugin::Portmap)
}
