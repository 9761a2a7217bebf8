//! Measuring the floor: a probe node and pod of its own; in each slice, `true` and `VERSION`
//! of every binary (the order of the binaries rotated, the suites alternating), one
//! `ip -batch` of veth creations and one of deletions, and a few `nft` set element
//! processes. The run takes slices before, between and after the scenarios, so the floor
//! sees the same machine load as they do.

use std::path::PathBuf;
use std::time::Duration;

use super::{Floor, FloorRow, KernelFloor};
use crate::error::Error;
use crate::exec;
use crate::harness::{batch_dir, netns_name, order, timed, write_batch, Bench, ONE_QUEUE, PAIRS};
use crate::ns::{self, PodNs};
use crate::outcome::Outcome;
use crate::stats::Summary;
use crate::workloads::Suite;

/// The probe node of the floor measurements.
#[derive(Debug, Clone)]
struct Probe {
    node: PathBuf,
    batch: usize,
    empty: String,
    add: String,
    del: String,
}

/// Floor samples gathered over the run.
#[derive(Debug)]
struct FloorAcc {
    turn: usize,
    bare: Vec<Duration>,
    /// Per [`PAIRS`] entry: ours, reference.
    version: Vec<[Result<Vec<Duration>, String>; 2]>,
    veth_add: Vec<Duration>,
    veth_del: Vec<Duration>,
    nft_list: Vec<Duration>,
    nft_add: Vec<Duration>,
    nft_del: Vec<Duration>,
    error: Option<String>,
}

impl Default for FloorAcc {
    fn default() -> Self {
        FloorAcc {
            turn: 0,
            bare: Vec::new(),
            version: PAIRS
                .iter()
                .map(|_| [Ok(Vec::new()), Ok(Vec::new())])
                .collect(),
            veth_add: Vec::new(),
            veth_del: Vec::new(),
            nft_list: Vec::new(),
            nft_add: Vec::new(),
            nft_del: Vec::new(),
            error: None,
        }
    }
}

/// The floor measurements of a run, taken slice by slice.
#[derive(Debug, Default)]
pub struct Sampler {
    probe: Option<Probe>,
    probe_pod: Option<PodNs>,
    acc: FloorAcc,
}

impl Sampler {
    /// The probe node and pod of the floor measurements, created on first use, with the
    /// `ip -batch` files and the nft set they use.
    fn probe(&mut self, b: &mut Bench) -> Result<Probe, Error> {
        if let Some(p) = &self.probe {
            return Ok(p.clone());
        }
        let node = b.node();
        let pod = b.pod()?;
        let pod_name = netns_name(&pod);
        let batch = if b.params().quick { 20 } else { 50 };
        let dir = batch_dir(&b.workdir().join("kernel-floor"))?;
        let write = |name: &str, lines: Vec<String>| write_batch(&dir, name, &lines);
        let probe = Probe {
            node: node.ns,
            batch,
            empty: write("empty.batch", Vec::new())?,
            add: write(
                "add.batch",
                (0..batch)
                    .map(|i| format!("link add fbv{i} {ONE_QUEUE} type veth peer name eth{i} {ONE_QUEUE} netns {pod_name}"))
                    .collect(),
            )?,
            del: write(
                "del.batch",
                (0..batch).map(|i| format!("link del fbv{i}")).collect(),
            )?,
        };
        ns::in_netns(&probe.node, || -> Result<(), Error> {
            timed(&["nft", "add table inet fbprobe"])?;
            timed(&["nft", "add set inet fbprobe s { type ipv4_addr ; }"])?;
            Ok(())
        })??;
        self.probe_pod = Some(pod);
        self.probe = Some(probe.clone());
        Ok(probe)
    }

    /// One slice of the floor measurements: `calls` rounds of `true`, `VERSION` of every
    /// binary (order rotated, suites alternating), and the kernel probes. The floor is
    /// measured in slices spread over the run, so it sees the same machine load as the
    /// workloads.
    pub fn slice(&mut self, b: &mut Bench, calls: usize) {
        let probe = match self.probe(b) {
            Ok(p) => p,
            Err(e) => {
                self.acc.error.get_or_insert(e.to_string());
                return;
            }
        };
        let ours_dir = b.cni_path(Suite::Ours);
        let ref_dir = b.cni_path(Suite::Ref);
        let truth = ["/bin/true", "/usr/bin/true"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists());
        let acc = &mut self.acc;
        let r = ns::in_netns(&probe.node, || -> Result<(), Error> {
            for c in 0..calls {
                let turn = acc.turn;
                acc.turn += 1;
                if let Some(t) = &truth {
                    acc.bare.push(exec::bare_exec(t)?);
                }
                for j in 0..PAIRS.len() {
                    // rotate the order of the binaries from one call to the next
                    let k = (j + turn) % PAIRS.len();
                    let (o, r) = PAIRS[k];
                    for s in order(turn) {
                        let (dir, name) = match s {
                            Suite::Ours => (&ours_dir, Some(o)),
                            Suite::Ref => (&ref_dir, r),
                        };
                        let Some(name) = name else { continue };
                        let bin = dir.join(name);
                        if !bin.exists() {
                            continue;
                        }
                        let slot = &mut acc.version[k][s.index()];
                        if let Ok(v) = slot {
                            match exec::version_call(&bin, dir) {
                                Ok(d) => v.push(d),
                                Err(e) => *slot = Err(e.to_string()),
                            }
                        }
                    }
                }
                if c == 0 {
                    // veth pairs: one batch of creations and one of deletions per slice
                    let base = timed(&["ip", "-batch", &probe.empty])?;
                    let add = timed(&["ip", "-batch", &probe.add])?;
                    acc.veth_add
                        .push(add.saturating_sub(base) / probe.batch as u32);
                    let base = timed(&["ip", "-batch", &probe.empty])?;
                    let del = timed(&["ip", "-batch", &probe.del])?;
                    acc.veth_del
                        .push(del.saturating_sub(base) / probe.batch as u32);
                }
                if c < 10 {
                    acc.nft_list
                        .push(timed(&["nft", "list set inet fbprobe s"])?);
                    acc.nft_add
                        .push(timed(&["nft", "add element inet fbprobe s { 10.99.0.1 }"])?);
                    acc.nft_del.push(timed(&[
                        "nft",
                        "delete element inet fbprobe s { 10.99.0.1 }",
                    ])?);
                }
            }
            Ok(())
        });
        if let Err(e) = r.and_then(|x| x) {
            acc.error.get_or_insert(e.to_string());
        }
    }

    /// The floor figures from all slices; the probe pod joins the others until the end of
    /// the run.
    pub fn finish(self, b: &mut Bench) -> Floor {
        let acc = &self.acc;
        let ours_dir = b.cni_path(Suite::Ours);
        let ref_dir = b.cni_path(Suite::Ref);
        let rows = PAIRS
            .iter()
            .zip(&acc.version)
            .map(|((o, r), [ours, reference])| {
                let conv = |x: &Result<Vec<Duration>, String>, exists: bool| match x {
                    Ok(v) => match Summary::of(v) {
                        Some(s) => Outcome::Done(s),
                        None if exists => Outcome::Failed(
                            acc.error.clone().unwrap_or_else(|| "no samples".into()),
                        ),
                        None => Outcome::NotBuilt("not built".into()),
                    },
                    Err(e) => Outcome::Failed(e.clone()),
                };
                FloorRow {
                    ours_plugin: o.to_string(),
                    ref_plugin: r.unwrap_or("–").to_string(),
                    ours: conv(ours, ours_dir.join(o).exists()),
                    reference: match r {
                        Some(r) => conv(reference, ref_dir.join(r).exists()),
                        None => Outcome::NoEquivalent,
                    },
                }
            })
            .collect();
        let kernel = match (
            Summary::of(&acc.veth_add),
            Summary::of(&acc.veth_del),
            Summary::of(&acc.nft_list),
            Summary::of(&acc.nft_add),
            Summary::of(&acc.nft_del),
        ) {
            (Some(va), Some(vd), Some(nl), Some(na), Some(nd)) => Outcome::Done(KernelFloor {
                batch: self.probe.as_ref().map_or(0, |p| p.batch),
                veth_add: va.median,
                veth_del: vd.median,
                nft_list: nl,
                nft_add: na,
                nft_del: nd,
            }),
            _ => Outcome::Failed(acc.error.clone().unwrap_or_else(|| "no samples".into())),
        };
        let bare_exec = Summary::of(&acc.bare);
        b.bury(self.probe_pod);
        Floor {
            bare_exec,
            version: rows,
            kernel,
        }
    }
}
