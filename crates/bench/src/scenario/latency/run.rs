//! Measuring one sequential workload: a fresh node and pod per suite, warm-up cycles, then
//! blocks of cycles alternating the suites in ABBA order until each has its count; then the
//! peak RSS of each plugin process during one more ADD.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{ChainStats, LatencyRow};
use crate::error::Error;
use crate::harness::{order, Bench, Participant};
use crate::ns::{self, PodNs};
use crate::outcome::Outcome;
use crate::output::progress;
use crate::scenario::cost::RssRow;
use crate::stats::{sum_columns, Summary};
use crate::workloads::{self, Suite, SuiteSetup, WorkloadId};

/// Samples of one suite on one list: per plugin, per cycle.
#[derive(Debug, Default)]
struct Acc {
    add: Vec<Vec<Duration>>,
    del: Vec<Vec<Duration>>,
}

impl Acc {
    fn push(&mut self, add: &[Duration], del: &[Duration]) {
        if self.add.len() < add.len() {
            self.add.resize(add.len(), Vec::new());
            self.del.resize(del.len(), Vec::new());
        }
        for (i, d) in add.iter().enumerate() {
            self.add[i].push(*d);
        }
        for (i, d) in del.iter().enumerate() {
            self.del[i].push(*d);
        }
    }

    fn cycles(&self) -> usize {
        self.add.first().map_or(0, Vec::len)
    }

    fn stats(&self, plugins: Vec<String>, leftover_leases: usize) -> Option<ChainStats> {
        let add = sum_columns(&self.add);
        let del = sum_columns(&self.del);
        let cycle: Vec<Duration> = add.iter().zip(&del).map(|(a, d)| *a + *d).collect();
        Some(ChainStats {
            plugins,
            add: Summary::of(&add)?,
            del: Summary::of(&del)?,
            cycle: Summary::of(&cycle)?,
            add_per_plugin: self.add.iter().filter_map(|v| Summary::of(v)).collect(),
            del_per_plugin: self.del.iter().filter_map(|v| Summary::of(v)).collect(),
            leftover_leases,
        })
    }
}

/// Parses GNU time's `-f %M` output (the last line; a failed command adds a line before it).
pub fn parse_rss(s: &str) -> Option<u64> {
    s.lines()
        .rev()
        .find(|l| !l.trim().is_empty())?
        .trim()
        .parse()
        .ok()
}

/// Peak RSS (KiB) of plugin `i` of `p`'s list during one ADD.
fn rss(b: &mut Bench, p: &Participant, pod: &Path, i: usize) -> Result<u64, Error> {
    let att = b.attachment(p.suite, pod);
    let file = b.workdir().join(format!("rss-{}-{i}", p.suite.tag()));
    let chain = &p.chain;
    ns::in_netns(&p.node.ns, || -> Result<(), Error> {
        let add = chain.add_measuring(&att, Some((i, &file)))?;
        chain.del(&att, Some(&add.result))?;
        Ok(())
    })??;
    let text = std::fs::read_to_string(&file).map_err(|e| Error::io("reading", &file, e))?;
    parse_rss(&text).ok_or_else(|| Error::Other(format!("no RSS in time's output: {text}")))
}

/// The plugin types of `s`'s list for `w`, without a node (for the rows of a list that
/// could not run).
fn list_types(s: Suite, w: WorkloadId) -> Vec<String> {
    let setup = SuiteSetup {
        suite: s,
        data_dir: PathBuf::new(),
        node_name: String::new(),
        node_list: PathBuf::new(),
    };
    workloads::conflist(w, &setup)
        .map(|l| l.types())
        .unwrap_or_default()
}

/// One sequential workload, both suites, alternating; with the peak RSS rows of its plugin
/// processes.
pub fn run(b: &mut Bench, w: WorkloadId) -> (LatencyRow, Vec<RssRow>) {
    progress(&format!("workload {}", w.title()));
    let prm = b.params().clone();
    let mut parts: Vec<Option<(Participant, PodNs, Acc)>> = Vec::new();
    let mut outcome: [Outcome<ChainStats>; 2] = [Outcome::Skipped, Outcome::Skipped];
    let mut names: [Vec<String>; 2] = [Vec::new(), Vec::new()];
    for s in Suite::BOTH {
        match b.participant(s, w, w.key()) {
            Ok(p) => {
                names[s.index()] = p.chain.list.types();
                match b.pod() {
                    Ok(pod) => parts.push(Some((p, pod, Acc::default()))),
                    Err(e) => {
                        outcome[s.index()] = Outcome::Failed(e.to_string());
                        parts.push(None);
                    }
                }
            }
            Err(o) => {
                outcome[s.index()] = o.relabel();
                parts.push(None);
            }
        }
    }
    // names of lists that could not run (for the RSS rows)
    for s in Suite::BOTH {
        if names[s.index()].is_empty() {
            names[s.index()] = list_types(s, w);
        }
    }
    // warm-up
    for s in Suite::BOTH {
        let i = s.index();
        let Some((p, pod, _)) = parts[i].take() else {
            continue;
        };
        match b.cycles(&p, pod.path(), prm.warmup) {
            Ok(_) => parts[i] = Some((p, pod, Acc::default())),
            Err(e) => outcome[i] = Outcome::Failed(format!("warm-up: {e}")),
        }
    }
    // A/B blocks
    let mut round = 0;
    loop {
        let pending = Suite::BOTH.iter().any(|s| {
            parts[s.index()]
                .as_ref()
                .is_some_and(|(_, _, a)| a.cycles() < prm.cycles)
        });
        if !pending {
            break;
        }
        for s in order(round) {
            let i = s.index();
            let Some((p, pod, mut acc)) = parts[i].take() else {
                continue;
            };
            let n = prm.block.min(prm.cycles.saturating_sub(acc.cycles()));
            if n == 0 {
                parts[i] = Some((p, pod, acc));
                continue;
            }
            match b.cycles(&p, pod.path(), n) {
                Ok(samples) => {
                    for (a, d) in &samples {
                        acc.push(a, d);
                    }
                    parts[i] = Some((p, pod, acc));
                }
                Err(e) => outcome[i] = Outcome::Failed(e.to_string()),
            }
        }
        round += 1;
    }
    // figures, then peak RSS of each plugin process
    let nplugins = names[0].len().max(names[1].len());
    let mut rss_kib: [Vec<Outcome<u64>>; 2] = [Vec::new(), Vec::new()];
    for s in Suite::BOTH {
        let i = s.index();
        if let Some((p, pod, acc)) = parts[i].take() {
            let leftover = p.leases_left();
            outcome[i] = match acc.stats(p.chain.list.types(), leftover) {
                Some(st) => Outcome::Done(st),
                None => Outcome::Failed("no samples".into()),
            };
            for k in 0..p.chain.list.plugins.len() {
                rss_kib[i].push(match rss(b, &p, pod.path(), k) {
                    Ok(v) => Outcome::Done(v),
                    Err(e) => Outcome::Failed(e.to_string()),
                });
            }
            b.bury([pod]);
        }
    }
    let rss_rows = (0..nplugins)
        .map(|k| {
            let cell = |s: Suite| -> Outcome<u64> {
                rss_kib[s.index()]
                    .get(k)
                    .cloned()
                    .unwrap_or_else(|| match &outcome[s.index()] {
                        Outcome::Done(_) => Outcome::Failed("not measured".into()),
                        Outcome::Failed(_) => Outcome::Failed("workload failed".into()),
                        other => other.clone().relabel(),
                    })
            };
            RssRow {
                workload: w,
                ours_plugin: names[0].get(k).cloned().unwrap_or_else(|| "–".into()),
                ref_plugin: names[1].get(k).cloned().unwrap_or_else(|| "–".into()),
                ours: cell(Suite::Ours),
                reference: cell(Suite::Ref),
            }
        })
        .collect();
    let [ours, reference] = outcome;
    (
        LatencyRow {
            id: w,
            ours,
            reference,
        },
        rss_rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_from_gnu_time() {
        assert_eq!(parse_rss("4312\n"), Some(4312));
        assert_eq!(
            parse_rss("Command exited with non-zero status 1\n8120\n"),
            Some(8120)
        );
        assert_eq!(parse_rss(""), None);
    }

    #[test]
    fn accumulated_samples_sum_per_cycle() {
        let ms = Duration::from_millis;
        let mut acc = Acc::default();
        acc.push(&[ms(2), ms(3)], &[ms(1), ms(1)]);
        acc.push(&[ms(4), ms(5)], &[ms(2), ms(2)]);
        acc.push(&[ms(6), ms(7)], &[ms(3), ms(3)]);
        assert_eq!(acc.cycles(), 3);
        let st = acc
            .stats(vec!["bridge".into(), "portmap".into()], 0)
            .unwrap();
        assert_eq!(st.add.median, ms(9));
        assert_eq!(st.del.median, ms(4));
        assert_eq!(st.cycle.median, ms(13));
        assert_eq!(st.add_per_plugin[1].median, ms(5));
        assert!(Acc::default().stats(vec![], 0).is_none());
    }
}
