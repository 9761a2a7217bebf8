//! Measuring the scale scenario: per suite a fresh node with a probe pod; background pods
//! are attached until the small number is reached, cycles of the probe pod measured in
//! alternating blocks, then the same at the large number; the kernel's share is measured
//! on the node at both sizes; at the end the background pods are detached.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::{ScaleRow, ScaleStats};
use crate::error::Error;
use crate::harness::{
    batch_dir, netns_name, order, timed, write_batch, Bench, Participant, ONE_QUEUE,
};
use crate::ns::{self, PodNs};
use crate::outcome::Outcome;
use crate::output::progress;
use crate::report::format::fmt_s;
use crate::request::Attachment;
use crate::stats::Summary;
use crate::workloads::{Suite, WorkloadId};

/// A suite during the scale scenario.
#[derive(Debug)]
struct ScaleState {
    p: Participant,
    probe: PodNs,
    attached: Vec<(PodNs, Attachment, Value)>,
    fill: Duration,
    /// (ADD, DEL) of each measured cycle.
    small: Vec<(Duration, Duration)>,
    large: Vec<(Duration, Duration)>,
}

/// The scale scenario.
pub fn run(b: &mut Bench) -> ScaleRow {
    let prm = b.params().clone();
    progress(&format!(
        "scale: cycles with {} and {} pods attached",
        prm.scale_small, prm.scale_large
    ));
    let mut outcome: [Outcome<ScaleStats>; 2] = [Outcome::Skipped, Outcome::Skipped];
    let mut st: Vec<Option<ScaleState>> = Vec::new();
    for s in Suite::BOTH {
        let state = b
            .participant(s, WorkloadId::BridgeMasq, "scale")
            .and_then(|p| {
                let probe = b.pod().map_err(|e| Outcome::Failed(e.to_string()))?;
                b.cycles(&p, probe.path(), 1)
                    .map_err(|e| Outcome::Failed(format!("warm-up: {e}")))?;
                Ok(ScaleState {
                    p,
                    probe,
                    attached: Vec::new(),
                    fill: Duration::ZERO,
                    small: Vec::new(),
                    large: Vec::new(),
                })
            });
        match state {
            Ok(x) => st.push(Some(x)),
            Err(o) => {
                outcome[s.index()] = o.relabel();
                st.push(None);
            }
        }
    }
    let mut kernel: [Option<(Duration, Duration)>; 2] = [None, None];
    for (target, large) in [(prm.scale_small, false), (prm.scale_large, true)] {
        for s in Suite::BOTH {
            let i = s.index();
            if let Some(mut x) = st[i].take() {
                progress(&format!(
                    "scale: attaching {} background pods ({})",
                    target,
                    s.label()
                ));
                match fill(b, &mut x, target) {
                    Ok(()) => st[i] = Some(x),
                    Err(e) => outcome[i] = Outcome::Failed(format!("attaching pods: {e}")),
                }
            }
        }
        let mut round = 0;
        loop {
            let pending = st.iter().flatten().any(|x| {
                let v = if large { &x.large } else { &x.small };
                v.len() < prm.scale_cycles
            });
            if !pending {
                break;
            }
            for s in order(round) {
                let i = s.index();
                let Some(mut x) = st[i].take() else {
                    continue;
                };
                let have = if large { x.large.len() } else { x.small.len() };
                let n = 5.min(prm.scale_cycles.saturating_sub(have));
                let probe = x.probe.path().to_path_buf();
                match b.cycles(&x.p, &probe, n) {
                    Ok(samples) => {
                        let v = if large { &mut x.large } else { &mut x.small };
                        v.extend(samples.iter().map(|(a, d)| {
                            (a.iter().sum::<Duration>(), d.iter().sum::<Duration>())
                        }));
                        st[i] = Some(x);
                    }
                    Err(e) => outcome[i] = Outcome::Failed(e.to_string()),
                }
            }
            round += 1;
        }
        // the kernel alone, on the first running suite's node
        if let Some(x) = st.iter().flatten().next() {
            let node = x.p.node.ns.clone();
            kernel[usize::from(large)] = bridge_veth_probe(b, &node).ok();
        }
    }
    for s in Suite::BOTH {
        let i = s.index();
        if let Some(x) = st[i].take() {
            progress(&format!("scale: detaching the pods ({})", s.label()));
            outcome[i] = match drain(b, x) {
                Ok(v) => Outcome::Done(v),
                Err(e) => Outcome::Failed(e.to_string()),
            };
        }
    }
    let [ours, reference] = outcome;
    ScaleRow {
        small_pods: prm.scale_small,
        large_pods: prm.scale_large,
        ours,
        reference,
        kernel: match kernel {
            [Some(a), Some(b)] => Some([a, b]),
            _ => None,
        },
    }
}

/// The kernel's share of one cycle on the node's `cbr0`, the way any bridge plugin must
/// do it: a veth pair into a pod, the pod end up with an address and a route, then the
/// pair deleted. One pod at a time (10 of them, medians), each step an `ip -batch` minus
/// an empty one, so each step also waits for what the previous ones left the kernel
/// (the new port's link watch work holding rtnl, the pod's first multicast packets
/// flooded to every port), as a plugin's next request does; the deletion also pays for
/// the slowdown of the process that follows it.
fn bridge_veth_probe(b: &mut Bench, node: &Path) -> Result<(Duration, Duration), Error> {
    const N: usize = 10;
    let pod = b.pod()?;
    let pod_name = netns_name(&pod);
    let dir = batch_dir(&b.workdir().join("scale-probe"))?;
    let write = |name: String, lines: &[String]| write_batch(&dir, &name, lines);
    let empty = write("empty.batch".into(), &[])?;
    let mut steps = Vec::new();
    for i in 0..N {
        let add = write(
            format!("add{i}.batch"),
            &[format!(
                "link add fbs{i} master cbr0 up {ONE_QUEUE} type veth peer name eth{i} {ONE_QUEUE} netns {pod_name}"
            )],
        )?;
        let conf = write(
            format!("conf{i}.batch"),
            &[
                format!("link set eth{i} up"),
                format!("addr add 192.0.2.{}/32 dev eth{i}", i + 1),
                format!("route add 198.51.100.{}/32 dev eth{i}", i + 1),
            ],
        )?;
        let del = write(format!("del{i}.batch"), &[format!("link del fbs{i}")])?;
        steps.push((add, conf, del));
    }
    let pod_path = pod.path().to_path_buf();
    let r = ns::in_netns(node, || -> Result<(Duration, Duration), Error> {
        let run = |file: &str| -> Result<Duration, Error> {
            let base = timed(&["ip", "-batch", &empty])?;
            Ok(timed(&["ip", "-batch", file])?.saturating_sub(base))
        };
        let (mut adds, mut dels) = (Vec::new(), Vec::new());
        for (add, conf, del) in &steps {
            let created = run(add)?;
            let configured = ns::in_netns(&pod_path, || run(conf))??;
            adds.push(created + configured);
            // A deletion leaves work behind (RCU callbacks, run in softirq on whatever
            // runs next): a plugin's IPAM delegate starts right after it, so the probe
            // charges the next process start's slowdown to the deletion too.
            let base = timed(&["ip", "-batch", &empty])?;
            let deleted = timed(&["ip", "-batch", del])?.saturating_sub(base);
            let next = timed(&["ip", "-batch", &empty])?.saturating_sub(base);
            dels.push(deleted + next);
        }
        let none = || Error::Other("no samples".into());
        Ok((
            Summary::of(&adds).ok_or_else(none)?.median,
            Summary::of(&dels).ok_or_else(none)?.median,
        ))
    })?;
    b.bury([pod]);
    r
}

/// Attaches background pods until `target` are attached.
fn fill(b: &mut Bench, x: &mut ScaleState, target: usize) -> Result<(), Error> {
    while x.attached.len() < target {
        // in slices of 100, with progress: the reference slows down as pods accumulate
        let mut new = Vec::new();
        while x.attached.len() + new.len() < target && new.len() < 100 {
            let pod = b.pod()?;
            let att = b.attachment(x.p.suite, pod.path());
            new.push((pod, att));
        }
        let chain = &x.p.chain;
        let results = ns::in_netns(&x.p.node.ns, || {
            new.iter()
                .map(|(_, att)| {
                    chain
                        .add(att)
                        .map(|r| (r.per_plugin.iter().sum::<Duration>(), r.result))
                })
                .collect::<Result<Vec<_>, Error>>()
        })??;
        for ((pod, att), (took, result)) in new.into_iter().zip(results) {
            x.fill += took;
            x.attached.push((pod, att, result));
        }
        if target > 100 {
            progress(&format!(
                "scale: {} pods attached ({}), {} so far",
                x.attached.len(),
                x.p.suite.label(),
                fmt_s(x.fill)
            ));
        }
    }
    Ok(())
}

/// Detaches every background pod and summarises.
fn drain(b: &mut Bench, x: ScaleState) -> Result<ScaleStats, Error> {
    let chain = &x.p.chain;
    let drain = ns::in_netns(&x.p.node.ns, || {
        x.attached
            .iter()
            .map(|(_, att, res)| {
                chain
                    .del(att, Some(res))
                    .map(|d| d.iter().sum::<Duration>())
            })
            .sum::<Result<Duration, Error>>()
    })??;
    let leftover_leases = x.p.leases_left();
    // the namespaces go at the end of the run (see Bench::bury)
    b.bury(x.attached.into_iter().map(|(pod, _, _)| pod));
    let cycles = |v: &[(Duration, Duration)]| {
        let c: Vec<Duration> = v.iter().map(|(a, d)| *a + *d).collect();
        let a: Vec<Duration> = v.iter().map(|(a, _)| *a).collect();
        let d: Vec<Duration> = v.iter().map(|(_, d)| *d).collect();
        Some((
            Summary::of(&c)?,
            Summary::of(&a)?.median,
            Summary::of(&d)?.median,
        ))
    };
    match (cycles(&x.small), cycles(&x.large)) {
        (Some((small, small_add, small_del)), Some((large, large_add, large_del))) => {
            Ok(ScaleStats {
                small,
                large,
                small_add,
                small_del,
                large_add,
                large_del,
                fill: x.fill,
                drain,
                leftover_leases,
            })
        }
        _ => Err(Error::Other("no samples".into())),
    }
}
