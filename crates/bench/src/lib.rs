//! # ferro-bench: our plugins against the reference plugins, side by side
//!
//! The driver behind `scripts/bench.sh` (issue 7). It acts as a container runtime: it builds
//! each plugin's stdin and environment as libcni does ([`request`]), runs the binaries of
//! both suites from inside a simulated node's network namespace and times each process
//! ([`exec`], [`ns`]), over the workloads of [`workloads`], alternating the suites in small
//! blocks ([`run`]), and renders the figures and the targets ([`report`], [`stats`]).
//!
//! # Layout
//! - [`cli`]: options and the counts of a full and a `--quick` run;
//! - [`request`], [`stats`], [`workloads`], [`report`]: pure, unit-tested;
//! - [`exec`], [`ns`], [`run`], [`machine`]: processes, namespaces, files;
//! - [`output`]: the only module that prints.

pub mod cli;
pub mod error;
pub mod exec;
pub mod machine;
pub mod ns;
pub mod output;
pub mod report;
pub mod request;
pub mod run;
pub mod stats;
pub mod workloads;

use std::path::Path;
use std::time::Instant;

pub use error::Error;

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
pub fn bench(opts: &cli::Options) -> Result<report::Report, Error> {
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
    let cfg = run::Config {
        params: params.clone(),
        ours_src: opts.ours.clone(),
        ref_src: opts.reference.clone(),
        workdir: opts.workdir.clone(),
        ipam_dir: ipam_dir.clone(),
        workloads: opts.workloads.clone(),
        parallel: opts.parallel,
        scale: opts.scale,
        not_built: opts.not_built.clone(),
    };
    let results = {
        let mut b = run::Bench::new(cfg)?;
        b.run_all()
    };
    let _ = std::fs::remove_dir_all(&ipam_dir);
    machine.load_end = machine::loadavg();
    Ok(report::Report {
        started,
        elapsed: t0.elapsed(),
        machine,
        versions: machine::versions(&opts.ours),
        params,
        latency: results.latency,
        parallel: results.parallel,
        scale: results.scale,
        rss: results.rss,
        sizes: results.sizes,
        bare_exec: results.bare_exec,
        floor: results.floor,
        kernel: results.kernel,
    })
}
