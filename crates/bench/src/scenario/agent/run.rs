//! Measuring bridge with a node agent. Ours: bridge + `cluster-ipam` (answered in the
//! bridge's own process) with the `agent` key, a ferro-agent on an embedded store running in
//! the node's namespace (DEL detaches, the agent deletes detached pairs in batches); the
//! reference: bridge + host-local, the same list otherwise (masquerade, hairpin, cbr0).
//!
//! - Latency: ADD+DEL cycles alternating in blocks after a warm-up, as the sequential
//!   workloads do; after each of our DELs the driver polls the node's links (a netlink dump
//!   every millisecond) until the detached pair is gone, and records how long after DEL
//!   returned that was. The next cycle starts only then, so no deletion overlaps an ADD.
//! - Churn: [`CHURN_PODS`] pods attached by the parallel scenario's workers at once, then
//!   detached the same way; wall times, duplicate addresses, failures, leftovers (ours:
//!   addresses the agent still holds and detached links left; the reference: lease files),
//!   and, for ours, when the last detached link was gone after the last DEL.

use std::path::Path;
use std::time::{Duration, Instant};

use ferro_agent_api::ipam::IpamAudit;
use ferro_agent_api::{Request, Response};
use ferro_net::{Kernel, Rtnl};
use ferro_testutil::agent::Agent;
use serde_json::json;

use super::{AgentBench, CycleStats, CHURN_PODS};
use crate::error::Error;
use crate::harness::{order, Bench, Participant};
use crate::ns::{self, PodNs};
use crate::outcome::Outcome;
use crate::output::progress;
use crate::request::Attachment;
use crate::scenario::cluster_ipam::run::{prepare, start_agent, tail};
use crate::scenario::parallel::run::{self as parallel, stats, RoundOut};
use crate::scenario::parallel::ParallelRow;
use crate::stats::Summary;
use crate::workloads::{Suite, WorkloadId};

/// How long detached links may take to go before the run counts them as left.
const GONE_WITHIN: Duration = Duration::from_secs(30);

/// Ours with the agent: `cluster-ipam` through `socket`, reports to it.
fn with_agent(p: &mut Participant, socket: &Path) {
    let main = &mut p.chain.list.plugins[0];
    main["ipam"] =
        json!({"type": "cluster-ipam", "socket": socket, "routes": [{"dst": "0.0.0.0/0"}]});
    main["agent"] = json!({"socket": socket});
}

/// Polls `h`'s links until no detached one is left; the time since `since`.
fn wait_gone(h: &Rtnl<'_>, since: Instant) -> Result<Duration, Error> {
    loop {
        let left = h
            .detached_links()
            .map_err(|e| Error::Other(e.to_string()))?;
        if left.is_empty() {
            return Ok(since.elapsed());
        }
        if since.elapsed() > GONE_WITHIN {
            return Err(Error::Other(format!(
                "{} detached links still there after {GONE_WITHIN:?}",
                left.len()
            )));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Runs `f` in `node`'s namespace with a netlink connection there.
fn on_node<T: Send>(
    node: &Path,
    f: impl FnOnce(&Rtnl<'_>) -> Result<T, Error> + Send,
) -> Result<T, Error> {
    ns::in_netns(node, || {
        let k = Kernel::new().map_err(|e| Error::Other(e.to_string()))?;
        let h = k.connect(None).map_err(|e| Error::Other(e.to_string()))?;
        f(&h)
    })?
}

/// Samples of one suite: ADD, DEL, and (ours) the links' time to go.
#[derive(Debug, Default)]
struct Acc {
    add: Vec<Duration>,
    del: Vec<Duration>,
    gone: Vec<Duration>,
}

impl Acc {
    fn stats(&self) -> Outcome<CycleStats> {
        let cycle: Vec<Duration> = self
            .add
            .iter()
            .zip(&self.del)
            .map(|(a, d)| *a + *d)
            .collect();
        match (
            Summary::of(&self.add),
            Summary::of(&self.del),
            Summary::of(&cycle),
        ) {
            (Some(add), Some(del), Some(cycle)) => Outcome::Done(CycleStats {
                add,
                del,
                cycle,
                gone: Summary::of(&self.gone),
            }),
            _ => Outcome::Failed("no samples".into()),
        }
    }
}

/// `n` cycles of `p` in `pod`; with `agent`, each waits for the detached links to go.
fn cycles(
    b: &mut Bench,
    p: &Participant,
    pod: &Path,
    n: usize,
    agent: bool,
    acc: &mut Acc,
) -> Result<(), Error> {
    let atts: Vec<Attachment> = (0..n).map(|_| b.attachment(p.suite, pod)).collect();
    let chain = &p.chain;
    let out = on_node(&p.node.ns, |h| {
        let mut out = Vec::new();
        for a in &atts {
            let add = chain.add(a)?;
            let del = chain.del(a, Some(&add.result))?;
            let returned = Instant::now();
            let gone = if agent {
                Some(wait_gone(h, returned)?)
            } else {
                None
            };
            out.push((add.per_plugin.iter().sum(), del.iter().sum(), gone));
        }
        Ok(out)
    })?;
    for (add, del, gone) in out {
        acc.add.push(add);
        acc.del.push(del);
        acc.gone.extend(gone);
    }
    Ok(())
}

/// Addresses the agent still holds.
fn held(a: &Agent) -> Result<usize, Error> {
    let r = ferro_agent_api::call(
        &a.socket(),
        &Request::IpamAudit(IpamAudit::default()),
        Duration::from_secs(10),
    )
    .map_err(|e| Error::Other(e.to_string()))?;
    match r {
        Response::IpamAudit(a) => Ok(usize::try_from(a.allocations).unwrap_or(usize::MAX)),
        other => Err(Error::Other(format!("audit answered {other:?}"))),
    }
}

/// One side of the scenario: its participant, latency pod, churn pods, samples.
struct Side {
    p: Participant,
    pod: PodNs,
    churn_pods: Vec<PodNs>,
    acc: Acc,
    churn: Vec<RoundOut>,
    gone: Vec<Duration>,
}

/// Runs the scenario.
pub fn run(b: &mut Bench) -> AgentBench {
    let prm = b.params().clone();
    progress(&format!(
        "agent: bridge + cluster-ipam with ferro-agent against bridge + host-local; churn of \
         {CHURN_PODS} pods at parallelism {}",
        prm.parallel_workers
    ));
    let mut out = AgentBench {
        ours: Outcome::Skipped,
        reference: Outcome::Skipped,
        churn: ParallelRow {
            pods: CHURN_PODS,
            workers: prm.parallel_workers,
            rounds: prm.parallel_rounds,
            ours: Outcome::Skipped,
            reference: Outcome::Skipped,
        },
        churn_gone: None,
    };
    let agent_bin = b.cfg.ours_src.join("ferro-agent");
    if !agent_bin.exists() {
        out.ours = Outcome::NotBuilt(format!("{} not built", agent_bin.display()));
        out.churn.ours = out.ours.clone().relabel();
    }
    let mut agent: Option<Agent> = None;
    let mut sides: Vec<Option<Side>> = Vec::new();
    for s in Suite::BOTH {
        let side = (|| -> Result<Side, Outcome<()>> {
            if s == Suite::Ours && !agent_bin.exists() {
                return Err(Outcome::Skipped);
            }
            let mut p = b.participant(s, WorkloadId::BridgeMasq, "agent")?;
            let failed = |e: String| Outcome::Failed(e);
            if s == Suite::Ours {
                let d = b.workdir().join("agent-scenario");
                std::fs::create_dir_all(&d).map_err(|e| failed(e.to_string()))?;
                let store = d.join("store.redb");
                prepare(&store, 0).map_err(failed)?;
                let a = start_agent(&agent_bin, &store, Some(&p.node.ns)).map_err(failed)?;
                with_agent(&mut p, &a.socket());
                agent = Some(a);
            }
            let pod = b.pod().map_err(|e| failed(e.to_string()))?;
            let churn_pods = (0..CHURN_PODS)
                .map(|_| b.pod())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| failed(e.to_string()))?;
            let mut acc = Acc::default();
            cycles(b, &p, pod.path(), prm.warmup, s == Suite::Ours, &mut acc)
                .map_err(|e| failed(format!("warm-up: {e}")))?;
            Ok(Side {
                p,
                pod,
                churn_pods,
                acc: Acc::default(),
                churn: Vec::new(),
                gone: Vec::new(),
            })
        })();
        match side {
            Ok(side) => sides.push(Some(side)),
            Err(o) => {
                let o: Outcome<CycleStats> = o.relabel();
                if s == Suite::Ours {
                    if !matches!(o, Outcome::Skipped) {
                        out.churn.ours = o.clone().relabel();
                        out.ours = o;
                    }
                } else {
                    out.churn.reference = o.clone().relabel();
                    out.reference = o;
                }
                sides.push(None);
            }
        }
    }
    let mut errors: [Option<String>; 2] = [None, None];
    let mut round = 0;
    loop {
        let mut progressed = false;
        for s in order(round) {
            let i = s.index();
            let Some(side) = sides[i].as_mut() else {
                continue;
            };
            if errors[i].is_some() || side.acc.add.len() >= prm.cycles {
                continue;
            }
            let n = prm.block.min(prm.cycles - side.acc.add.len());
            let pod = side.pod.path().to_path_buf();
            if let Err(e) = cycles(b, &side.p, &pod, n, s == Suite::Ours, &mut side.acc) {
                errors[i] = Some(e.to_string());
            }
            progressed = true;
        }
        round += 1;
        if !progressed {
            break;
        }
    }
    for r in 0..prm.parallel_rounds {
        for s in order(r) {
            let i = s.index();
            let Some(side) = sides[i].as_mut() else {
                continue;
            };
            let agent_side = s == Suite::Ours;
            let r =
                parallel::round(b, &side.p, &side.churn_pods, prm.parallel_workers).and_then(|r| {
                    if agent_side {
                        let at = r.deleted_at;
                        side.gone
                            .push(on_node(&side.p.node.ns, |h| wait_gone(h, at))?);
                    }
                    Ok(r)
                });
            match r {
                Ok(r) => side.churn.push(r),
                Err(e) => errors[i] = Some(format!("churn: {e}")),
            }
        }
    }
    for s in Suite::BOTH {
        let i = s.index();
        let Some(side) = sides[i].take() else {
            continue;
        };
        let lat = match &errors[i] {
            Some(e) => Outcome::Failed(e.clone()),
            None => side.acc.stats(),
        };
        let leftovers = if s == Suite::Ours {
            agent.as_ref().map_or(Ok(0), held).and_then(|n| {
                let links = on_node(&side.p.node.ns, |h| {
                    h.detached_links().map_err(|e| Error::Other(e.to_string()))
                })?;
                Ok(n + links.len())
            })
        } else {
            Ok(side.p.leases_left())
        };
        let churn = match (&errors[i], leftovers) {
            (Some(e), _) => Outcome::Failed(e.clone()),
            (None, Err(e)) => Outcome::Failed(format!("counting leftovers: {e}")),
            (None, Ok(n)) => stats(&side.churn, n),
        };
        if s == Suite::Ours {
            out.churn_gone = Summary::of(&side.gone);
        }
        if s == Suite::Ours {
            out.ours = lat;
            out.churn.ours = churn;
        } else {
            out.reference = lat;
            out.churn.reference = churn;
        }
        b.bury(side.churn_pods);
        b.bury([side.pod]);
    }
    if let (Some(a), true) = (&agent, out.ours.failed() || out.churn.ours.failed()) {
        let note = format!(" (agent: {})", tail(&a.log()));
        for o in [&mut out.ours] {
            if let Outcome::Failed(e) = o {
                e.push_str(&note);
            }
        }
    }
    drop(agent);
    out
}
