//! # ferro-bench: our plugins against the reference plugins, side by side
//!
//! The driver behind `scripts/bench.sh`. A tool, not a library: the public surface is what
//! `main.rs` needs ([`cli`], [`bench()`], [`Report`], [`write_atomic`], [`output`]). Layout,
//! templates and how to add a scenario: `crates/bench/README.md`.

pub mod cli;
mod error;
mod exec;
mod harness;
mod machine;
mod ns;
mod outcome;
pub mod output;
mod report;
mod request;
mod run;
mod scenario;
mod stats;
mod workloads;

use std::path::Path;
use std::time::Instant;

pub use error::Error;
pub use report::Report;

/// Writes `text` to `path` atomically (a temporary file in the same directory, renamed), so
/// a failed run never leaves a half-written report.
pub fn write_atomic(path: &Path, text: &str) -> Result<(), Error> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "report".into());
    let tmp = dir.join(format!(".{name}.partial-{}", std::process::id()));
    std::fs::write(&tmp, text).map_err(|e| Error::io("writing", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io("renaming to", path, e)
    })
}

/// Runs the bench with `opts` and returns the report.
pub fn bench(opts: &cli::Options) -> Result<Report, Error> {
    if !opts.allow_shared_mount_ns && !ns::in_private_mount_ns(&opts.workdir) {
        return Err(Error::Usage(
            "not in a private mount namespace: run scripts/bench.sh (or pass \
             --allow-shared-mount-ns)"
                .into(),
        ));
    }
    if !nix::unistd::geteuid().is_root() {
        return Err(Error::Usage("needs root (network namespaces)".into()));
    }
    let started = machine::utc_now();
    let t0 = Instant::now();
    let mut machine = machine::machine();
    let mut params = cli::params(opts);
    // a directory of our own inside the one given, so removing it removes nothing else
    let ipam_dir = opts
        .ipam_dir
        .as_ref()
        .unwrap_or(&opts.workdir)
        .join(format!("ferro-bench-ipam.{}", std::process::id()));
    if ipam_dir.exists() {
        return Err(Error::Other(format!(
            "{} already exists",
            ipam_dir.display()
        )));
    }
    params.ipam_location = machine::describe_fs(&ipam_dir);
    let cfg = harness::Config {
        params: params.clone(),
        ours_src: opts.ours.clone(),
        ref_src: opts.reference.clone(),
        workdir: opts.workdir.clone(),
        ipam_dir: ipam_dir.clone(),
        workloads: opts.workloads.clone(),
        parallel: opts.parallel,
        scale: opts.scale,
        services: opts.services,
        cluster_ipam: opts.cluster_ipam,
        agent: opts.agent,
        policy: opts.policy,
        cluster_scale: opts.cluster_scale,
        not_built: opts.not_built.clone(),
    };
    let figures = run::run_all(cfg);
    let _ = std::fs::remove_dir_all(&ipam_dir);
    let figures = figures?;
    machine.load_end = machine::loadavg();
    Ok(Report {
        started,
        elapsed: t0.elapsed(),
        machine,
        versions: machine::versions(&opts.ours),
        params,
        latency: figures.latency,
        parallel: figures.parallel,
        scale: figures.scale,
        services: figures.services,
        cluster_ipam: figures.cluster_ipam,
        agent: figures.agent,
        policy: figures.policy,
        cluster_scale: figures.cluster_scale,
        cost: figures.cost,
        floor: figures.floor,
    })
}
