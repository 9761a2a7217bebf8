//! `host-local`: node-local IPAM, store-compatible with the reference plugin, with GC and
//! STATUS. The plugin lives in the library; `main` only hands the process to the dispatcher.

fn main() -> std::process::ExitCode {
    ferro_spec::run(&ferro_host_local::plugin::HostLocal)
}
