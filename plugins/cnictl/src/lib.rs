//! # cnictl: the runtime side of CNI, for people
//!
//! `cnictl` runs a network configuration list against a network namespace the way libcni
//! (and so containerd, CRI-O and cnitool) does, and shares libcni's result cache, so an
//! attachment made by one of them can be checked or removed by the other.
//!
//! # Layout
//!
//! - [`cli`]: the command line (global flags, per-command flags, help text);
//! - [`commands`]: the table of subcommands and their handlers;
//! - [`conflist`]: finding and parsing lists (`*.conflist`, legacy `*.conf`, sibling folder,
//!   version selection), pure apart from reading files;
//! - [`request`]: the stdin of every plugin call (`name`, `cniVersion`, `prevResult`,
//!   `runtimeConfig`, GC attachment keys), pure;
//! - [`gojson`]: JSON written the way Go writes it, so the bytes match libcni's;
//! - [`cache`]: the result cache (`<cache>/results/<net>-<id>-<ifname>`, `cniCacheV1`);
//! - [`identity`]: cnitool's container id and path rules, attachment validation;
//! - [`exec`]: running plugins and parsing their errors, behind the [`exec::Exec`] trait;
//! - [`runtime`]: the ADD/CHECK/DEL/GC/STATUS algorithms;
//! - [`validate`]: `cnictl validate`;
//! - [`cluster`]: `apply`, `get`, `delete`, `describe` through ferro-agent's socket;
//! - [`ipam`]: `ipam show|check|release` (the cluster's address pool) through it;
//! - [`firewall`](mod@firewall): `cnictl firewall show|remove` (the node's firewall: ferro-cni's
//!   and the reference plugins' state; going back to the reference plugins);
//! - [`error`]: the one error type.
//!
//! Nothing here writes to the process's stdout or exits: [`run`] takes the output streams and
//! returns the exit status, and `main.rs` only wires the process to it.
#![forbid(unsafe_code)]

pub mod cache;
pub mod cli;
pub mod cluster;
pub mod commands;
pub mod conflist;
pub mod error;
pub mod exec;
pub mod firewall;
pub mod gojson;
pub mod identity;
pub mod ipam;
pub mod plan;
pub mod policy;
pub mod request;
pub mod runtime;
pub mod validate;

use std::io::Write;
use std::path::PathBuf;

use ferro_spec::Env;

pub use error::Error;

/// Runs cnictl with `argv` (without the program name) in `env`, writing results to `out` and
/// diagnostics to `err`. Returns the exit status: 0 success, 1 failure, 2 bad command line.
pub fn run(
    argv: &[String],
    env: &Env,
    cwd: Option<PathBuf>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    let parsed = match cli::parse(argv, commands::SUBCOMMANDS) {
        Ok(p) => p,
        Err(e) => {
            let _ = writeln!(err, "cnictl: {e}");
            let _ = writeln!(err, "run 'cnictl --help' for usage");
            return e.exit_status();
        }
    };
    let Some(command) = parsed.command else {
        let text = cli::usage(commands::SUBCOMMANDS);
        if parsed.global.help {
            let _ = out.write_all(text.as_bytes());
            return 0;
        }
        let _ = err.write_all(text.as_bytes());
        return 2;
    };
    if parsed.global.help {
        let _ = out.write_all(cli::command_usage(command).as_bytes());
        return 0;
    }
    let mut ctx = commands::Ctx {
        env,
        cwd,
        global: parsed.global,
        out,
        err,
    };
    match (command.run)(&mut ctx, &parsed.invocation) {
        Ok(()) => 0,
        Err(e) => {
            for line in e.lines(command.name) {
                let _ = writeln!(ctx.err, "{line}");
            }
            e.exit_status()
        }
    }
}
