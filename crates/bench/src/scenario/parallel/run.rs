//! Measuring the parallel scenario: per suite a fresh node and a pod per ADD; each round
//! attaches every pod from several worker threads at once (each runs whole ADD lists, as a
//! runtime's workers do), then detaches them the same way; the suites alternate by round.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{ParallelRow, ParallelStats};
use crate::error::Error;
use crate::harness::{order, Bench, Participant};
use crate::ns::{self, PodNs};
use crate::outcome::Outcome;
use crate::output::progress;
use crate::request::{result_addresses, Attachment};
use crate::stats::Summary;
use crate::workloads::{Suite, WorkloadId};

/// One parallel round of one suite.
#[derive(Debug)]
pub(crate) struct RoundOut {
    add_wall: Duration,
    del_wall: Duration,
    /// When the last DEL returned.
    pub(crate) deleted_at: Instant,
    duplicates: usize,
    failures: usize,
    first_failure: Option<String>,
}

/// The figures of `rounds` of one suite, with `leftovers` counted after the last.
pub(crate) fn stats(rounds: &[RoundOut], leftovers: usize) -> Outcome<ParallelStats> {
    let adds: Vec<Duration> = rounds.iter().map(|r| r.add_wall).collect();
    let dels: Vec<Duration> = rounds.iter().map(|r| r.del_wall).collect();
    match (Summary::of(&adds), Summary::of(&dels)) {
        (Some(add_wall), Some(del_wall)) => Outcome::Done(ParallelStats {
            add_wall,
            del_wall,
            duplicates: rounds.iter().map(|r| r.duplicates).sum(),
            failures: rounds.iter().map(|r| r.failures).sum(),
            first_failure: rounds.iter().find_map(|r| r.first_failure.clone()),
            leftover_leases: leftovers,
        }),
        _ => Outcome::Failed("no rounds".into()),
    }
}

/// Addresses present in more than one result.
pub fn duplicates(results: &[Value]) -> usize {
    let mut seen = HashSet::new();
    let mut dups = 0;
    for r in results {
        for a in result_addresses(r) {
            if !seen.insert(a) {
                dups += 1;
            }
        }
    }
    dups
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs `jobs` jobs on `workers` threads inside the namespace `node`; returns the wall time
/// from the start barrier to the last worker's end and each job's outcome.
pub(crate) fn parallel_phase<T: Send>(
    node: &Path,
    jobs: usize,
    workers: usize,
    job: impl Fn(usize) -> Result<T, Error> + Sync,
) -> Result<(Duration, Vec<Result<T, String>>), Error> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<T, String>>>> =
        Mutex::new((0..jobs).map(|_| None).collect());
    let ends: Mutex<Vec<Instant>> = Mutex::new(Vec::new());
    let barrier = Barrier::new(workers + 1);
    let start = std::thread::scope(|s| -> Result<Instant, Error> {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| -> Result<(), Error> {
                    let entered = ns::enter(node);
                    barrier.wait();
                    entered?;
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        if i >= jobs {
                            break;
                        }
                        let r = job(i).map_err(|e| e.to_string());
                        lock(&results)[i] = Some(r);
                    }
                    lock(&ends).push(Instant::now());
                    Ok(())
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        for h in handles {
            h.join()
                .map_err(|_| Error::Other("parallel worker panicked".into()))??;
        }
        Ok(start)
    })?;
    let end = lock(&ends).iter().max().copied().unwrap_or(start);
    let results = results
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err("not run".into())))
        .collect();
    Ok((end.saturating_duration_since(start), results))
}

/// The parallel scenario.
pub fn run(b: &mut Bench) -> ParallelRow {
    let prm = b.params().clone();
    progress(&format!(
        "parallel: {} ADDs at parallelism {}, {} round(s) per suite",
        prm.parallel_pods, prm.parallel_workers, prm.parallel_rounds
    ));
    let mut outcome: [Outcome<ParallelStats>; 2] = [Outcome::Skipped, Outcome::Skipped];
    let mut parts: Vec<Option<(Participant, Vec<PodNs>)>> = Vec::new();
    for s in Suite::BOTH {
        let p = match b.participant(s, WorkloadId::BridgeMasq, "parallel") {
            Ok(p) => p,
            Err(o) => {
                outcome[s.index()] = o.relabel();
                parts.push(None);
                continue;
            }
        };
        let pods: Result<Vec<PodNs>, Error> = (0..prm.parallel_pods + 1).map(|_| b.pod()).collect();
        let pods = match pods {
            Ok(v) => v,
            Err(e) => {
                outcome[s.index()] = Outcome::Failed(e.to_string());
                parts.push(None);
                continue;
            }
        };
        // warm-up: the bridge and the NAT state exist before the measured ADDs
        let warm = pods[prm.parallel_pods].path().to_path_buf();
        match b.cycles(&p, &warm, 1) {
            Ok(_) => parts.push(Some((p, pods))),
            Err(e) => {
                outcome[s.index()] = Outcome::Failed(format!("warm-up: {e}"));
                parts.push(None);
            }
        }
    }
    let mut rounds: [Vec<RoundOut>; 2] = [Vec::new(), Vec::new()];
    for r in 0..prm.parallel_rounds {
        for s in order(r) {
            let i = s.index();
            let Some((p, pods)) = parts[i].take() else {
                continue;
            };
            match round(b, &p, &pods[..prm.parallel_pods], prm.parallel_workers) {
                Ok(out) => {
                    rounds[i].push(out);
                    parts[i] = Some((p, pods));
                }
                Err(e) => outcome[i] = Outcome::Failed(e.to_string()),
            }
        }
    }
    for s in Suite::BOTH {
        let i = s.index();
        if let Some((p, pods)) = parts[i].take() {
            b.bury(pods);
            outcome[i] = stats(&rounds[i], p.leases_left());
        }
    }
    let [ours, reference] = outcome;
    ParallelRow {
        pods: prm.parallel_pods,
        workers: prm.parallel_workers,
        rounds: prm.parallel_rounds,
        ours,
        reference,
    }
}

/// One round of `p`: every pod attached at once by `workers` threads, then detached the
/// same way.
pub(crate) fn round(
    b: &mut Bench,
    p: &Participant,
    pods: &[PodNs],
    workers: usize,
) -> Result<RoundOut, Error> {
    let atts: Vec<Attachment> = pods
        .iter()
        .map(|pod| b.attachment(p.suite, pod.path()))
        .collect();
    let chain = &p.chain;
    let (add_wall, added) = parallel_phase(&p.node.ns, atts.len(), workers, |i| {
        chain.add(&atts[i]).map(|r| r.result)
    })?;
    let ok: Vec<Value> = added
        .iter()
        .filter_map(|r| r.as_ref().ok().cloned())
        .collect();
    let dups = duplicates(&ok);
    let (del_wall, deleted) = parallel_phase(&p.node.ns, atts.len(), workers, |i| {
        chain.del(&atts[i], added[i].as_ref().ok())
    })?;
    let deleted_at = Instant::now();
    let errors: Vec<String> = added
        .iter()
        .filter_map(|r| r.as_ref().err().cloned())
        .chain(deleted.iter().filter_map(|r| r.as_ref().err().cloned()))
        .collect();
    Ok(RoundOut {
        add_wall,
        del_wall,
        deleted_at,
        duplicates: dups,
        failures: errors.len(),
        first_failure: errors.into_iter().next(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn duplicates_count_repeated_addresses() {
        let a = json!({"ips":[{"address":"10.0.0.2/24"}]});
        let b = json!({"ips":[{"address":"10.0.0.3/24"}]});
        assert_eq!(duplicates(&[a.clone(), b.clone()]), 0);
        assert_eq!(duplicates(&[a.clone(), b, a.clone(), a]), 2);
    }
}
