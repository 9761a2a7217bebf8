//! `host-local`: node-local IPAM, store-compatible with the reference plugin, with GC and
//! STATUS. The verbs live in [`plugin`]; `main` only hands the process to the dispatcher.

mod dns;
mod plugin;

fn main() -> std::process::ExitCode {
    ferro_spec::run(&plugin::HostLocal)
}
