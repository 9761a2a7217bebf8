//! `cluster-ipam`: addresses from the cluster's shared pool, through the node's ferro-agent.
//! The verbs live in [`plugin`], the `ipam` section in [`config`]; `main` only hands the
//! process to the dispatcher.
#![forbid(unsafe_code)]

mod config;
mod plugin;

fn main() -> std::process::ExitCode {
    ferro_spec::run(&plugin::ClusterIpam)
}
