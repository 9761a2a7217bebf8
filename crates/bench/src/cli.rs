//! The command line.

use std::path::PathBuf;

use crate::error::Error;
use crate::workloads::WorkloadId;

/// Usage text.
pub const USAGE: &str = "\
usage: ferro-bench --ours DIR --out FILE [options]

Times our CNI plugins and the reference ones side by side, as a runtime runs them, and
writes a Markdown report. Run it through scripts/bench.sh, which builds our plugins,
installs the reference and gives the run a private mount namespace.

  --ours DIR          our release binaries (target/release)
  --ref DIR           the reference binaries (default /usr/lib/cni)
  --out FILE          the Markdown report to write (replaced atomically)
  --quick             few cycles, small scale case (CI: proves the bench still runs)
  --workdir DIR       scratch directory (default /tmp/ferro-bench)
  --ipam-dir DIR      where the host-local dataDirs go: a directory of the run's own
                      is created in DIR and removed afterwards (default WORKDIR, a tmpfs
                      under bench.sh; bench.sh passes a disk directory, as
                      /var/lib/cni/networks is on a node)
  --only LIST         comma-separated subset of: host-local, host-local-tmpfs,
                      bridge-masq, bridge-portmap, flat, overlay, parallel, scale,
                      services, cluster-ipam, agent, policy, cluster-scale
  --cycles N          measured cycles per workload and suite (default 200, quick 20)
  --scale-pods N      pods attached in the large scale case (default 1000, quick 100;
                      at most 1020: a Linux bridge takes at most 1024 ports)
  --services LIST     service counts of the services scenario (default 100,1000,10000;
                      quick 100,1000)
  --not-built NAME    treat our binary NAME as not built (repeatable)
  --allow-shared-mount-ns
                      run even outside a private mount namespace (namespaces then
                      appear in the machine's /run/netns while the bench runs)
  -h, --help          this text
";

/// The most pods the scale run attaches: a Linux bridge takes at most 1024 ports
/// (`BR_MAX_PORTS`), and the probe pod and warm-up need a few.
pub const MAX_SCALE_PODS: usize = 1020;

/// The parameters of the run.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    /// `--quick`.
    pub quick: bool,
    /// Measured cycles per suite and workload.
    pub cycles: usize,
    /// Cycles per A/B block.
    pub block: usize,
    /// Unmeasured warm-up cycles per suite and workload.
    pub warmup: usize,
    /// Pods of the parallel run.
    pub parallel_pods: usize,
    /// Workers of the parallel run.
    pub parallel_workers: usize,
    /// Rounds of the parallel run per suite.
    pub parallel_rounds: usize,
    /// Pods attached in the small scale case.
    pub scale_small: usize,
    /// Pods attached in the large scale case.
    pub scale_large: usize,
    /// Measured cycles per scale case and suite.
    pub scale_cycles: usize,
    /// VERSION calls per binary.
    pub floor_calls: usize,
    /// Service counts of the services scenario.
    pub services_sizes: Vec<usize>,
    /// Block claims measured per simulated store size (cluster IPAM).
    pub claims: usize,
    /// Where the host-local `dataDir`s were, with their file system.
    pub ipam_location: String,
}

/// Parsed options.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// `--quick`.
    pub quick: bool,
    /// `--ours`.
    pub ours: PathBuf,
    /// `--ref`.
    pub reference: PathBuf,
    /// `--out`.
    pub out: PathBuf,
    /// `--workdir`.
    pub workdir: PathBuf,
    /// `--ipam-dir`.
    pub ipam_dir: Option<PathBuf>,
    /// Sequential workloads to run.
    pub workloads: Vec<WorkloadId>,
    /// Run the parallel scenario.
    pub parallel: bool,
    /// Run the scale scenario.
    pub scale: bool,
    /// Run the services scenario.
    pub services: bool,
    /// `--services`.
    pub services_sizes: Option<Vec<usize>>,
    /// Run the cluster IPAM scenario.
    pub cluster_ipam: bool,
    /// Run the agent scenario (in-process cluster IPAM, batched deletion).
    pub agent: bool,
    /// Run the NetworkPolicy scenario.
    pub policy: bool,
    /// Run the agent-at-scale scenario.
    pub cluster_scale: bool,
    /// `--cycles`.
    pub cycles: Option<usize>,
    /// `--scale-pods`.
    pub scale_pods: Option<usize>,
    /// `--not-built`.
    pub not_built: Vec<String>,
    /// `--allow-shared-mount-ns`.
    pub allow_shared_mount_ns: bool,
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    /// Run the bench.
    Run(Box<Options>),
    /// Print the usage.
    Help,
}

fn positive(flag: &str, v: &str) -> Result<usize, Error> {
    match v.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(Error::Usage(format!(
            "{flag}: expected a positive number, got {v:?}"
        ))),
    }
}

/// Parses the arguments (without the program name).
pub fn parse(args: &[String]) -> Result<Parsed, Error> {
    let mut o = Options {
        quick: false,
        ours: PathBuf::new(),
        reference: PathBuf::from("/usr/lib/cni"),
        out: PathBuf::new(),
        workdir: PathBuf::from("/tmp/ferro-bench"),
        ipam_dir: None,
        workloads: WorkloadId::ALL.to_vec(),
        parallel: true,
        scale: true,
        services: true,
        services_sizes: None,
        cluster_ipam: true,
        agent: true,
        policy: true,
        cluster_scale: true,
        cycles: None,
        scale_pods: None,
        not_built: Vec::new(),
        allow_shared_mount_ns: false,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (a.as_str(), None),
        };
        let mut value = || -> Result<String, Error> {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(|| Error::Usage(format!("{flag} needs a value")))
        };
        match flag {
            "-h" | "--help" => return Ok(Parsed::Help),
            "--quick" => o.quick = true,
            "--allow-shared-mount-ns" => o.allow_shared_mount_ns = true,
            "--ours" => o.ours = PathBuf::from(value()?),
            "--ref" => o.reference = PathBuf::from(value()?),
            "--out" => o.out = PathBuf::from(value()?),
            "--workdir" => o.workdir = PathBuf::from(value()?),
            "--ipam-dir" => o.ipam_dir = Some(PathBuf::from(value()?)),
            "--cycles" => o.cycles = Some(positive(flag, &value()?)?),
            "--scale-pods" => {
                let n = positive(flag, &value()?)?;
                if !(11..=MAX_SCALE_PODS).contains(&n) {
                    return Err(Error::Usage(format!(
                        "--scale-pods: between 11 and {MAX_SCALE_PODS} (a Linux bridge takes at \
                         most 1024 ports), got {n}"
                    )));
                }
                o.scale_pods = Some(n);
            }
            "--not-built" => o.not_built.push(value()?),
            "--services" => {
                let v = value()?;
                let sizes = v
                    .split(',')
                    .map(|n| positive(flag, n.trim()))
                    .collect::<Result<Vec<_>, _>>()?;
                o.services_sizes = Some(sizes);
            }
            "--only" => {
                let v = value()?;
                o.workloads.clear();
                o.parallel = false;
                o.scale = false;
                o.services = false;
                o.cluster_ipam = false;
                o.agent = false;
                o.policy = false;
                o.cluster_scale = false;
                for k in v.split(',').map(str::trim).filter(|k| !k.is_empty()) {
                    match k {
                        "parallel" => o.parallel = true,
                        "scale" => o.scale = true,
                        "services" => o.services = true,
                        "cluster-ipam" => o.cluster_ipam = true,
                        "agent" => o.agent = true,
                        "policy" => o.policy = true,
                        "cluster-scale" => o.cluster_scale = true,
                        _ => match WorkloadId::from_key(k) {
                            Some(w) => o.workloads.push(w),
                            None => {
                                return Err(Error::Usage(format!("--only: unknown part {k:?}")))
                            }
                        },
                    }
                }
            }
            _ => return Err(Error::Usage(format!("unknown argument {a:?}"))),
        }
    }
    if o.ours.as_os_str().is_empty() {
        return Err(Error::Usage("--ours is required".into()));
    }
    if o.out.as_os_str().is_empty() {
        return Err(Error::Usage("--out is required".into()));
    }
    Ok(Parsed::Run(Box::new(o)))
}

/// The counts of a run: the full ones, or a small fraction of them with `--quick`.
pub fn params(o: &Options) -> Params {
    let (cycles, block, warmup, rounds, scale_large, scale_cycles, floor, claims) = if o.quick {
        (20, 5, 1, 1, 100, 10, 20, 3)
    } else {
        (200, 10, 3, 3, 1000, 60, 200, 20)
    };
    Params {
        quick: o.quick,
        cycles: o.cycles.unwrap_or(cycles),
        block,
        warmup,
        parallel_pods: 50,
        parallel_workers: 8,
        parallel_rounds: rounds,
        scale_small: 10,
        scale_large: o.scale_pods.unwrap_or(scale_large),
        scale_cycles,
        floor_calls: floor,
        services_sizes: o.services_sizes.clone().unwrap_or_else(|| {
            if o.quick {
                vec![100, 1000]
            } else {
                vec![100, 1000, 10_000]
            }
        }),
        claims,
        ipam_location: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    fn run(s: &str) -> Options {
        match parse(&args(s)).unwrap() {
            Parsed::Run(o) => *o,
            Parsed::Help => panic!("help"),
        }
    }

    #[test]
    fn defaults_and_required() {
        let o = run("--ours /t/release --out docs/benchmarks.md");
        assert_eq!(o.reference, PathBuf::from("/usr/lib/cni"));
        assert_eq!(o.workloads, WorkloadId::ALL);
        assert!(o.parallel && o.scale && o.services && o.policy && !o.quick);
        assert!(matches!(parse(&args("--out x")), Err(Error::Usage(_))));
        assert!(matches!(parse(&args("--ours x")), Err(Error::Usage(_))));
        assert_eq!(parse(&args("--help")).unwrap(), Parsed::Help);
    }

    #[test]
    fn only_selects_parts() {
        let o = run("--ours a --out b --only=bridge-masq,scale");
        assert_eq!(o.workloads, [WorkloadId::BridgeMasq]);
        assert!(o.scale && !o.parallel && !o.services && !o.cluster_ipam && !o.policy);
        let o = run("--ours a --out b --only cluster-ipam");
        assert!(o.cluster_ipam && o.workloads.is_empty() && !o.services && !o.policy && !o.agent);
        let o = run("--ours a --out b --only agent");
        assert!(o.agent && o.workloads.is_empty() && !o.cluster_ipam && !o.parallel);
        let o = run("--ours a --out b --only policy");
        assert!(o.policy && o.workloads.is_empty() && !o.scale && !o.services && !o.cluster_ipam);
        let o = run("--ours a --out b --only services,policy");
        assert!(o.services && o.policy && o.workloads.is_empty() && !o.cluster_ipam);
        assert!(parse(&args("--ours a --out b --only bogus")).is_err());
    }

    #[test]
    fn quick_and_full_counts() {
        let full = params(&run("--ours a --out b"));
        assert_eq!(
            (full.cycles, full.scale_small, full.scale_large),
            (200, 10, 1000)
        );
        assert_eq!((full.parallel_pods, full.parallel_workers), (50, 8));
        let quick = params(&run(
            "--ours a --out b --quick --cycles 7 --not-built portmap",
        ));
        assert!(quick.quick);
        assert_eq!(quick.cycles, 7);
        assert!(quick.scale_large < 1000);
        assert!(parse(&args("--ours a --out b --cycles 0")).is_err());
        assert!(parse(&args("--ours a --out b --cycles")).is_err());
        assert!(parse(&args("--ours a --out b --scale-pods 2000")).is_err());
        assert!(parse(&args("--ours a --out b --scale-pods 10")).is_err());
        assert_eq!(
            params(&run("--ours a --out b --scale-pods 300")).scale_large,
            300
        );
    }
}
