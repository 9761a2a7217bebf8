//! `ferro-world`: builds and removes the simulated network of the tests
//! ([`ferro_testutil::topology::World`]) for scripts, so that the demo and the tests run on
//! one description of it.
//!
//! ```text
//! ferro-world up PREFIX [NODES]   build it (2 nodes by default) and leave it; print shell
//!                                 assignments describing it (for `eval`)
//! ferro-world down PREFIX [NODES] delete its namespaces (other PREFIX-* ones are left alone)
//! ```
//!
//! Namespaces are named `PREFIX-vnet`, `PREFIX-router`, `PREFIX-inet`, `PREFIX-peer`,
//! `PREFIX-nodea`, `PREFIX-nodeb`... Run as root, in the network namespace (and best in the
//! private mount namespace) the namespaces should live in.

use std::io::Write;
use std::process::{Command, ExitCode};

use ferro_testutil::netns::Netns;
use ferro_testutil::topology::{
    World, INTERNET, INTERNET6, PEER, PEER6, ROUTER_VNET, ROUTER_VNET6, VNET, VNET6,
};

const USAGE: &str = "usage: ferro-world up PREFIX [NODES] | ferro-world down PREFIX [NODES]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(out) => {
            let mut stdout = std::io::stdout().lock();
            if stdout.write_all(out.as_bytes()).is_err() {
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "ferro-world: {e}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &[String]) -> Result<String, String> {
    let (verb, prefix, nodes) = match args {
        [v, p] => (v.as_str(), p.as_str(), 2),
        [v, p, n] => (
            v.as_str(),
            p.as_str(),
            n.parse::<usize>()
                .ok()
                .filter(|n| (1..=26).contains(n))
                .ok_or(format!("NODES must be 1 to 26, got {n:?}"))?,
        ),
        _ => return Err("wrong arguments".into()),
    };
    if prefix.is_empty()
        || !prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(format!(
            "PREFIX must be letters, digits, - or _, got {prefix:?}"
        ));
    }
    match verb {
        "up" => Ok(up(prefix, nodes)),
        "down" => down(prefix, nodes).map(|()| String::new()),
        other => Err(format!("unknown verb {other:?}")),
    }
}

/// Builds the world and describes it as shell assignments.
fn up(prefix: &str, nodes: usize) -> String {
    let world = World::with_prefix(prefix, nodes);
    let node_ips: Vec<String> = world.nodes.iter().map(|n| n.ip.to_string()).collect();
    let node_ips6: Vec<String> = world.nodes.iter().map(|n| n.ip6.to_string()).collect();
    let names = world.keep();
    format!(
        "WORLD_VNET='{VNET}'\nWORLD_ROUTER='{ROUTER_VNET}'\nWORLD_PEER='{PEER}'\n\
         WORLD_INTERNET='{INTERNET}'\nWORLD_NODE_IPS='{}'\n\
         WORLD_VNET6='{VNET6}'\nWORLD_ROUTER6='{ROUTER_VNET6}'\nWORLD_PEER6='{PEER6}'\n\
         WORLD_INTERNET6='{INTERNET6}'\nWORLD_NODE_IPS6='{}'\nWORLD_NAMESPACES='{}'\n",
        node_ips.join(" "),
        node_ips6.join(" "),
        names.join(" ")
    )
}

/// Deletes the world's namespaces that exist.
fn down(prefix: &str, nodes: usize) -> Result<(), String> {
    let mut failed = Vec::new();
    for label in World::labels(nodes) {
        let name = format!("{prefix}-{label}");
        if !Netns::exists(&name) {
            continue;
        }
        let ok = Command::new("ip")
            .args(["netns", "del", &name])
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            failed.push(name);
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("could not delete {}", failed.join(", ")))
    }
}
