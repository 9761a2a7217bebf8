//! The report from fixed figures: targets, sections and the golden files.

use std::time::Duration;

use super::*;
use crate::outcome::Outcome;
use crate::scenario::agent::{AgentBench, CycleStats};
use crate::scenario::cluster_ipam::{ClaimRow, ClusterIpam, IpamLatency};
use crate::scenario::cluster_scale::{ChangeRow, ClusterScaleBench, Sizes};
use crate::scenario::cost::{RssRow, SizeRow};
use crate::scenario::floor::{FloorRow, KernelFloor};
use crate::scenario::latency::{ChainStats, LatencyRow};
use crate::scenario::parallel::ParallelStats;
use crate::scenario::policy::Round;
use crate::scenario::policy::{PolicyBench, PolicyConfigRow};
use crate::scenario::scale::ScaleStats;
use crate::scenario::services::{ServicesBench, ServicesRow};
use crate::stats::Summary;
use crate::workloads::WorkloadId;
use target::Verdict;

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

/// A summary with median `d` and p95 `1.5 d`.
fn fig(d: Duration) -> Summary {
    Summary::of(&[d, d, d * 3 / 2]).unwrap()
}

fn chain(plugins: &[&str], add: u64, del: u64) -> ChainStats {
    ChainStats {
        plugins: plugins.iter().map(|s| s.to_string()).collect(),
        add: fig(ms(add)),
        del: fig(ms(del)),
        cycle: fig(ms(add + del)),
        add_per_plugin: plugins.iter().map(|_| fig(ms(add))).collect(),
        del_per_plugin: plugins.iter().map(|_| fig(ms(del))).collect(),
        leftover_leases: 0,
    }
}

fn policy_row(label: &str, throughput: f64, conn_rate: f64) -> PolicyConfigRow {
    PolicyConfigRow {
        label: label.into(),
        throughput: Outcome::Done(throughput),
        conn_rate: Outcome::Done(conn_rate),
    }
}

fn sample(quick: bool) -> Report {
    let par = |add: u64| ParallelStats {
        add_wall: fig(ms(add)),
        del_wall: fig(ms(add * 2)),
        duplicates: 0,
        failures: 0,
        first_failure: None,
        leftover_leases: 0,
    };
    let scale = |small: u64, large: u64| ScaleStats {
        small: fig(ms(small)),
        large: fig(ms(large)),
        small_add: ms(small / 3),
        small_del: ms(small - small / 3),
        large_add: ms(large / 3),
        large_del: ms(large - large / 3),
        fill: Duration::from_secs(3),
        drain: Duration::from_secs(4),
        leftover_leases: 0,
    };
    Report {
        started: "2026-01-01 00:00 UTC".into(),
        elapsed: Duration::from_secs(60),
        machine: Machine {
            cpu: "Test CPU".into(),
            cores: 2,
            memory: "1.0 GiB".into(),
            kernel: "6.1.0".into(),
            os: "Debian GNU/Linux 12 (bookworm) (debian_version 12.11)".into(),
            load_start: "0.1 0.2 0.3".into(),
            load_end: "0.4 0.5 0.6".into(),
        },
        versions: Versions {
            items: vec![(
                "containernetworking-plugins (reference)".into(),
                "1.1.1".into(),
            )],
        },
        params: Params {
            quick,
            cycles: 200,
            block: 10,
            warmup: 3,
            parallel_pods: 50,
            parallel_workers: 8,
            parallel_rounds: 3,
            scale_small: 10,
            scale_large: if quick { 100 } else { 1000 },
            scale_cycles: 30,
            floor_calls: 200,
            services_sizes: vec![100, 1000],
            claims: 20,
            ipam_location: "/x (ext4 on /dev/vda)".into(),
        },
        latency: Latency {
            rows: vec![
                LatencyRow {
                    id: WorkloadId::HostLocal,
                    ours: Outcome::Done(chain(&["host-local"], 2, 2)),
                    reference: Outcome::Done(chain(&["host-local"], 5, 5)),
                },
                LatencyRow {
                    id: WorkloadId::BridgeMasq,
                    ours: Outcome::Done(chain(&["bridge"], 10, 20)),
                    reference: Outcome::Done(chain(&["bridge"], 100, 200)),
                },
                LatencyRow {
                    id: WorkloadId::BridgePortmap,
                    ours: Outcome::NotBuilt("portmap not built".into()),
                    reference: Outcome::Done(chain(&["bridge", "portmap"], 80, 150)),
                },
                LatencyRow {
                    id: WorkloadId::Flat,
                    ours: Outcome::Done(chain(&["flat"], 20, 40)),
                    reference: Outcome::Failed("ptp ADD failed (exit 1): boom".into()),
                },
                LatencyRow {
                    id: WorkloadId::Overlay,
                    ours: Outcome::Done(chain(&["overlay"], 20, 40)),
                    reference: Outcome::NoEquivalent,
                },
            ],
        },
        parallel: Some(ParallelRow {
            pods: 50,
            workers: 8,
            rounds: 3,
            ours: Outcome::Done(par(400)),
            reference: Outcome::Done(par(1000)),
        }),
        scale: Some(ScaleRow {
            small_pods: 10,
            large_pods: if quick { 100 } else { 1000 },
            ours: Outcome::Done(scale(30, 33)),
            reference: Outcome::Done(scale(300, 900)),
            kernel: Some([(ms(1), ms(20)), (ms(2), ms(24))]),
        }),
        services: Some(ServicesBench {
            endpoints: 4,
            rate_window: ms(3000),
            iptables: "iptables-restore v1.8.9 (nf_tables)".into(),
            rows: vec![
                ServicesRow {
                    services: 100,
                    ours_apply: Outcome::Done(ms(5)),
                    ref_apply: Outcome::Done(ms(50)),
                    ours_change: Outcome::Done(ms(1)),
                    ref_change: Outcome::Done(ms(20)),
                    ours_rate: Outcome::Done(10_000.0),
                    ref_rate: Outcome::Done(9_000.0),
                },
                ServicesRow {
                    services: 1000,
                    ours_apply: Outcome::Done(ms(40)),
                    ref_apply: Outcome::Done(ms(400)),
                    ours_change: Outcome::Done(ms(3)),
                    ref_change: Outcome::Done(ms(90)),
                    ours_rate: Outcome::Done(9_900.0),
                    ref_rate: Outcome::Done(3_000.0),
                },
            ],
        }),
        cluster_ipam: Some(ClusterIpam {
            host_local: Outcome::Done(IpamLatency {
                add: fig(ms(2)),
                del: fig(ms(2)),
            }),
            cluster_ipam: Outcome::Done(IpamLatency {
                add: fig(ms(3)),
                del: fig(ms(2)),
            }),
            claims: vec![
                ClaimRow {
                    nodes: 3,
                    blocks: 12,
                    claims: Outcome::Done(fig(ms(2))),
                },
                ClaimRow {
                    nodes: 100,
                    blocks: 400,
                    claims: Outcome::Done(fig(ms(30))),
                },
            ],
        }),
        agent: Some(AgentBench {
            ours: Outcome::Done(CycleStats {
                add: fig(ms(2)),
                del: fig(ms(3)),
                cycle: fig(ms(5)),
                gone: Some(fig(ms(25))),
            }),
            reference: Outcome::Done(CycleStats {
                add: fig(ms(24)),
                del: fig(ms(70)),
                cycle: fig(ms(94)),
                gone: None,
            }),
            churn: ParallelRow {
                pods: 110,
                workers: 8,
                rounds: 3,
                ours: Outcome::Done(par(100)),
                reference: Outcome::Done(par(1500)),
            },
            churn_gone: Some(fig(ms(40))),
        }),
        policy: Some(PolicyBench {
            policies: 1000,
            pods: 10_000,
            rounds: if quick { 1 } else { 3 },
            rows: vec![
                policy_row("no policy (no table)", 20e9, 10_000.0),
                policy_row("policy table, 0 policies", 19.8e9, 9_800.0),
                policy_row("1000 policies, 10000 pods in the sets", 19.6e9, 8_500.0),
            ],
            per_round: vec![Round {
                figures: vec![
                    (Some(20e9), Some(10_000.0)),
                    (Some(19.8e9), Some(9_800.0)),
                    (Some(19.6e9), Some(8_500.0)),
                ],
            }],
            elements: Outcome::Done(10_203),
            apply_answered: Outcome::Done(ms(900)),
            apply_enforced: Outcome::Done(ms(2_500)),
            change_enforced: Outcome::Done(ms(40)),
        }),
        cluster_scale: None,
        cost: Cost {
            rss: vec![
                RssRow {
                    workload: WorkloadId::HostLocal,
                    ours_plugin: "host-local".into(),
                    ref_plugin: "host-local".into(),
                    ours: Outcome::Done(2048),
                    reference: Outcome::Done(4096),
                },
                RssRow {
                    workload: WorkloadId::BridgePortmap,
                    ours_plugin: "portmap".into(),
                    ref_plugin: "portmap".into(),
                    ours: Outcome::NotBuilt("portmap not built".into()),
                    reference: Outcome::Done(5000),
                },
            ],
            sizes: vec![SizeRow {
                ours_plugin: "flat".into(),
                ref_plugin: "ptp".into(),
                ours: Outcome::Done(1 << 20),
                reference: Outcome::Done(3 << 20),
            }],
        },
        floor: Floor {
            bare_exec: Some(fig(ms(1))),
            version: vec![FloorRow {
                ours_plugin: "bridge".into(),
                ref_plugin: "bridge".into(),
                ours: Outcome::Done(fig(ms(2))),
                reference: Outcome::Done(fig(ms(5))),
            }],
            kernel: Outcome::Done(KernelFloor {
                batch: 50,
                veth_add: ms(1),
                veth_del: ms(15),
                nft_list: fig(ms(3)),
                nft_add: fig(ms(4)),
                nft_del: fig(ms(13)),
            }),
        },
    }
}

/// A quick run where much went wrong: parallel failed on one side, scale skipped, the
/// kernel probes failed, leases left behind.
fn degraded() -> Report {
    let mut r = sample(true);
    if let Outcome::Done(c) = &mut r.latency.rows[0].ours {
        c.leftover_leases = 2;
    }
    r.parallel = Some(ParallelRow {
        pods: 50,
        workers: 8,
        rounds: 1,
        ours: Outcome::Done(ParallelStats {
            add_wall: fig(ms(300)),
            del_wall: fig(ms(500)),
            duplicates: 1,
            failures: 2,
            first_failure: Some("bridge ADD failed (exit 1):\nno address".into()),
            leftover_leases: 1,
        }),
        reference: Outcome::Failed("warm-up: bridge ADD failed".into()),
    });
    r.scale = None;
    if let Some(c) = &mut r.cluster_ipam {
        c.claims[1].claims =
            Outcome::Failed("ferro-agent exited (exit status: 1): store: boom".into());
    }
    let mut p = PolicyBench::failed(1000, 10_000, 1, "cnictl apply -f -: agent not reachable");
    p.rows = vec![
        policy_row("no policy", 20e9, 10_000.0),
        PolicyConfigRow {
            label: "0 policies".into(),
            throughput: Outcome::Done(19e9),
            conn_rate: Outcome::Failed("connections: 0 made, 12 failed in 3s".into()),
        },
    ];
    r.policy = Some(p);
    r.cost.rss[0].reference = Outcome::Failed("no RSS in time's output: ".into());
    r.floor.bare_exec = None;
    r.floor.kernel = Outcome::Failed("nft: not found".into());
    r
}

/// Compares `actual` with `testdata/<name>`; `FERRO_BLESS=1` rewrites the file.
fn golden(name: &str, actual: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name);
    if std::env::var_os("FERRO_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (FERRO_BLESS=1 writes it)", path.display()));
    if expected != actual {
        let line = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
        panic!(
            "{} differs from line {}:\n--- expected\n{}\n--- actual\n{}",
            path.display(),
            line + 1,
            expected.lines().nth(line).unwrap_or("<end>"),
            actual.lines().nth(line).unwrap_or("<end>")
        );
    }
}

#[test]
fn rendering_matches_the_golden_files() {
    golden("report-full.md", &sample(false).markdown().unwrap());
    golden("console-full.txt", &sample(false).console().unwrap());
    golden("report-degraded.md", &degraded().markdown().unwrap());
    golden("console-degraded.txt", &degraded().console().unwrap());
}

fn verdicts(r: &Report) -> Vec<Verdict> {
    r.targets().into_iter().map(|t| t.verdict).collect()
}

#[test]
fn targets_are_judged_on_ratios_of_medians() {
    let r = sample(false);
    let t = r.targets();
    assert_eq!(t.len(), 13);
    // bridge+masq: 300 / 30 = 10.0× -> met (the bound is inclusive)
    assert_eq!(t[0].verdict, Verdict::Met);
    assert!(
        t[0].figure.starts_with("10.00× (30.0 ms vs 300.0 ms)"),
        "{}",
        t[0].figure
    );
    // portmap: ours not built -> not evaluated, saying why
    assert_eq!(t[1].verdict, Verdict::NotEvaluated("ours not built".into()));
    // host-local: 10 / 4 = 2.5× -> met
    assert_eq!(t[2].verdict, Verdict::Met);
    // parallel: 1000 / 400 = 2.5× -> not met
    assert_eq!(t[3].verdict, Verdict::NotMet);
    // scale: 33 / 30 = 1.1 -> met
    assert_eq!(t[4].verdict, Verdict::Met);
    // agent: ADD 24 / 2 = 12×, cycle 94 / 5 = 18.8×, churn 4500 / 300 ms = 15× -> met
    for a in &t[5..8] {
        assert_eq!(a.verdict, Verdict::Met, "{}", a.figure);
    }
    assert!(t[7]
        .figure
        .ends_with("0 duplicates, 0 leftovers, 0 failures"));
    // the ADD's floor: one process (2 ms) + the kernel's pod creation at 10 pods (1 ms)
    assert!(
        t[5].figure.contains("floor on this machine 3.00 ms")
            && t[5].figure.ends_with("so at most 8.00× is possible"),
        "{}",
        t[5].figure
    );
    // policy: connection rate 0.85× of no policy -> not met; throughput 0.98× -> met;
    // 1,000 policies enforced in 2.5 s -> met
    assert_eq!(t[8].verdict, Verdict::NotMet);
    assert_eq!(t[8].figure, "worst: 0.85× of no policy");
    assert_eq!(t[9].verdict, Verdict::Met);
    assert_eq!(t[10].verdict, Verdict::Met);
    // RSS: 2 MiB -> met, portmap listed as not measured
    assert_eq!(t[11].verdict, Verdict::Met);
    assert!(t[11].figure.contains("not measured: portmap"));
    // services: the last target, judged in services_rows_ratios_target_and_failures
    assert_eq!(t[12].verdict, Verdict::Met);
}

#[test]
fn a_missed_ratio_names_the_floor() {
    let mut r = sample(false);
    r.latency.rows[1].ours = Outcome::Done(chain(&["bridge"], 20, 40));
    let t = &r.targets()[0];
    assert_eq!(t.verdict, Verdict::NotMet);
    // floor = 4 processes x 2 ms + 15 ms veth = 23 ms -> 300/23 = 13.0×; the masquerade
    // element's removal may share the veth deletion's grace period: not counted
    assert_eq!(r.floor.cycle_floor(WorkloadId::BridgeMasq), Some(ms(23)));
    assert!(
        t.figure
            .contains("floor on this machine 23.0 ms, so at most 13.0× is possible"),
        "{}",
        t.figure
    );
    // portmap removes its rules in a process of its own: 6 x 2 + 15 + (13 - 3) = 37 ms
    assert_eq!(r.floor.cycle_floor(WorkloadId::BridgePortmap), Some(ms(37)));
    assert_eq!(r.floor.cycle_floor(WorkloadId::HostLocal), Some(ms(4)));
    r.floor.kernel = Outcome::Failed("x".into());
    assert_eq!(r.floor.cycle_floor(WorkloadId::BridgeMasq), None);
    assert_eq!(r.floor.cycle_floor(WorkloadId::HostLocal), Some(ms(4)));
}

#[test]
fn host_local_target_also_shows_tmpfs() {
    let mut r = sample(false);
    r.latency.rows.insert(
        1,
        LatencyRow {
            id: WorkloadId::HostLocalTmpfs,
            ours: Outcome::Done(chain(&["host-local"], 1, 1)),
            reference: Outcome::Done(chain(&["host-local"], 3, 3)),
        },
    );
    let t = &r.targets()[2];
    assert!(
        t.figure
            .ends_with("; with the dataDir on tmpfs 3.00× (2.00 ms vs 6.00 ms)"),
        "{}",
        t.figure
    );
}

#[test]
fn scale_target_over_the_growth_of_our_cycle() {
    let mut r = sample(false);
    r.scale = Some(ScaleRow {
        small_pods: 10,
        large_pods: 1000,
        ours: Outcome::Done(ScaleStats {
            small: fig(ms(30)),
            large: fig(ms(40)),
            small_add: ms(10),
            small_del: ms(20),
            large_add: ms(10),
            large_del: ms(30),
            fill: Duration::ZERO,
            drain: Duration::ZERO,
            leftover_leases: 0,
        }),
        reference: Outcome::Skipped,
        kernel: None,
    });
    assert_eq!(verdicts(&r)[4], Verdict::NotMet);
    assert!(r.targets()[4]
        .figure
        .starts_with("1.33× (40.0 ms at 1000 pods"));
    let quick = sample(true);
    assert!(quick.targets()[4].figure.contains("quick run: 100 pods"));
}

#[test]
fn markdown_has_every_section_and_both_suites() {
    let md = sample(false).markdown().unwrap();
    for h in [
        "# Benchmarks",
        "## Targets",
        "## Machine and versions",
        "## Method",
        "## Latency of one attachment",
        "### Per plugin process",
        "## Parallel: 50 ADDs at parallelism 8, then 50 DELs",
        "## Scale: ADD+DEL cycle with 10 and with 1000 pods attached",
        "create 1.00 ms at 10 pods, 2.00 ms at 1000; delete 20.0 ms and 24.0 ms",
        "## NetworkPolicy: the datapath with and without policy, and the time to apply 1000 policies",
        "enforced all of them 2.5 s after the apply started",
        "### Peak RSS of one ADD",
        "### Binary size (stripped)",
        "## Floor: process start",
        "### Kernel work every implementation pays",
        "## Failures and missing figures",
    ] {
        assert!(md.contains(h), "missing {h}");
    }
    assert!(!md.contains("Quick run"));
    assert!(
        md.contains("| not built |"),
        "ours portmap shown as not built"
    );
    assert!(md.contains("| FAILED"), "the failed reference flat run");
    assert!(md.contains("ptp ADD failed (exit 1): boom"));
    assert!(
        md.contains("ptp + host-local + ipMasq"),
        "the analogue is named"
    );
    assert!(md.contains("no reference equivalent"));
    assert!(md.contains("Test CPU, 2 cores"));
    assert!(md.contains("/x (ext4 on /dev/vda)"));
    // flat/ptp size ratio 3.0×, RSS ratio 2.0×
    assert!(
        md.contains("| flat / ptp          | 1.00 MiB |  3.00 MiB |  3.0× |"),
        "{md}"
    );
    assert!(sample(true).markdown().unwrap().contains("**Quick run**"));
}

#[test]
fn tables_are_aligned() {
    let md = sample(false).markdown().unwrap();
    let mut block: Vec<&str> = Vec::new();
    for line in md.lines().chain(std::iter::once("")) {
        if line.starts_with('|') {
            block.push(line);
        } else if !block.is_empty() {
            let w = block[0].chars().count();
            assert!(
                block.iter().all(|l| l.chars().count() == w),
                "misaligned table:\n{}",
                block.join("\n")
            );
            block.clear();
        }
    }
}

#[test]
fn console_has_figures_and_targets_without_prose() {
    let c = sample(false).console().unwrap();
    assert!(c.contains("latency (ms)"));
    assert!(c.contains("targets"));
    assert!(!c.contains("## Method"));
}

#[test]
fn failures_are_flagged_but_not_built_is_not_a_failure() {
    let mut r = sample(false);
    assert!(r.has_failures(), "the reference flat failed");
    r.latency.rows[3].reference = Outcome::Done(chain(&["ptp"], 30, 60));
    assert!(!r.has_failures(), "not built and n/a are not failures");
}

#[test]
fn skipped_scenarios_leave_no_section_and_no_failure() {
    let mut r = sample(false);
    r.parallel = None;
    r.scale = None;
    r.latency.rows.truncate(2);
    r.cost.rss.truncate(1);
    let md = r.markdown().unwrap();
    let console = r.console().unwrap();
    for text in [&md, &console] {
        assert!(!text.contains("## Parallel"));
        assert!(!text.contains("## Scale"));
        assert!(!text.contains("## Failures"), "nothing failed");
        assert!(text.contains("## Cost"));
    }
    let t = r.targets();
    assert_eq!(
        t[1].verdict,
        Verdict::NotEvaluated("workload skipped".into())
    );
    assert_eq!(
        t[3].verdict,
        Verdict::NotEvaluated("parallel run skipped".into())
    );
    assert_eq!(
        t[4].verdict,
        Verdict::NotEvaluated("scale run skipped".into())
    );
    assert!(!r.has_failures());
}

#[test]
fn a_failed_floor_probe_keeps_the_report() {
    let mut r = sample(false);
    r.floor.kernel = Outcome::Failed("nft: not found".into());
    r.floor.version.clear();
    let md = r.markdown().unwrap();
    assert!(md.contains("Not measured: nft: not found."));
    assert!(
        !md.contains("Floor of one cycle ("),
        "no scale floor without VERSION"
    );
    assert_eq!(r.floor.process_start(), None);
    assert_eq!(r.floor.cycle_floor(WorkloadId::HostLocal), None);
}

#[test]
fn one_blank_line_between_blocks_and_one_newline_at_the_end() {
    let mut bare = sample(false);
    bare.latency.rows.truncate(2);
    bare.cost.rss.truncate(1);
    bare.parallel = None;
    let reports = [sample(false), sample(true), degraded(), bare];
    for r in &reports {
        for text in [r.markdown().unwrap(), r.console().unwrap()] {
            assert!(
                !text.contains("\n\n\n"),
                "two blank lines in a row:\n{text}"
            );
            assert!(
                text.ends_with('\n') && !text.ends_with("\n\n"),
                "one newline at the end"
            );
        }
    }
}

#[test]
fn services_rows_ratios_target_and_failures() {
    let mut r = sample(false);
    if let Some(s) = r.services.as_mut() {
        s.rows[1].ref_apply = Outcome::Failed("iptables-restore: boom".into());
    }
    let md = r.markdown().unwrap();
    assert!(
        md.contains("## Services: 100 to 1000 services of 4 endpoints"),
        "{md}"
    );
    assert!(md.contains("|     1000 |"), "{md}");
    assert!(md.contains("iptables-restore v1.8.9 (nf_tables)"));
    // rate kept from 100 to 1000: ours 0.99, iptables 0.33
    assert!(
        md.contains("keeps 0.99× of its value with our table and 0.33×"),
        "{md}"
    );
    let t = r.targets();
    let s = t.last().unwrap();
    assert_eq!(s.verdict, Verdict::Met, "{}", s.figure);
    assert!(
        s.figure
            .contains("1000 services: ours 3.00 ms, iptables 90.0 ms"),
        "{}",
        s.figure
    );
    assert!(r.has_failures());
    assert!(
        md.contains("services, 1000: apply (iptables): iptables-restore: boom"),
        "{md}"
    );
}

#[test]
fn cluster_scale_section_targets_and_failures() {
    let mut r = sample(false);
    let before = r.targets().len();
    let change = |label: &str, median: u64| ChangeRow {
        label: label.into(),
        median: Outcome::Done(ms(median)),
        max: Outcome::Done(ms(median * 2)),
        samples: 10,
    };
    r.cluster_scale = Some(ClusterScaleBench {
        sizes: Sizes {
            nodes: 100,
            pods: 10_000,
            services: 1000,
            policies: 1000,
        },
        rounds: 3,
        start: Outcome::Done(ms(1500)),
        changes: vec![
            change("a pod added on another node", 20),
            change("a NetworkPolicy applied", 120),
        ],
        rss: Outcome::Done(60_000_000),
        rss_busy: Outcome::Done(70_000_000),
        rss_peak: Outcome::Done(95_000_000),
        idle_cpu: Outcome::Done(0.4),
        idle_window: Duration::from_secs(10),
        rows: vec![
            policy_row("no policy, no services", 10e9, 5_000.0),
            policy_row("1000 services, 1000 policies", 9.7e9, 4_000.0),
            policy_row("conntrack only", 9.8e9, 4_500.0),
        ],
        // the targets take the median of each round's ratios: 0.97× and 0.80× here
        per_round: [(9.7e9, 4_000.0), (9.0e9, 3_500.0), (1.0e10, 4_250.0)]
            .into_iter()
            .map(|(t, c)| Round {
                figures: vec![
                    (Some(10e9), Some(5_000.0)),
                    (Some(t), Some(c)),
                    (Some(9.8e9), Some(4_500.0)),
                ],
            })
            .collect(),
    });
    let md = r.markdown().unwrap();
    assert!(
        md.contains(
            "## The agent at scale: 100 nodes, 10000 pods, 1000 Services, 1000 NetworkPolicies"
        ),
        "{md}"
    );
    assert!(md.contains("| a NetworkPolicy applied"), "{md}");
    assert!(
        md.contains("70.0 MB right after the last change and 60.0 MB once"),
        "{md}"
    );
    assert!(md.contains("the target's figure, was 95.0 MB"), "{md}");
    let t = r.targets();
    assert_eq!(t.len(), before + 5);
    let ours: Vec<&target::Target> = t
        .iter()
        .filter(|t| t.text.starts_with("at scale"))
        .collect();
    // the slowest median (120 ms) misses 100 ms; memory and CPU are met; throughput 0.97×
    // met, connection rate 0.80× not
    assert_eq!(ours[0].verdict, Verdict::NotMet, "{}", ours[0].figure);
    assert_eq!(ours[0].figure, "slowest median: 120.0 ms");
    assert_eq!(ours[1].verdict, Verdict::Met);
    assert_eq!(ours[1].figure, "peak 95.0 MB (settled 60.0 MB)");
    assert_eq!(ours[2].verdict, Verdict::Met);
    assert_eq!(ours[3].verdict, Verdict::Met, "{}", ours[3].figure);
    assert_eq!(ours[4].verdict, Verdict::NotMet, "{}", ours[4].figure);
    // beside each ratio, the floor: conntrack alone against none
    assert_eq!(ours[3].figure, "0.97× of none (conntrack alone: 0.98×)");
    assert_eq!(ours[4].figure, "0.80× of none (conntrack alone: 0.90×)");
    assert!(md.contains("| conntrack only"), "{md}");
    assert!(
        md.contains("|     2 |              0.90× |          0.98× |                 0.70× |          0.90× |"),
        "{md}"
    );
    assert!(!Section::failed(&r.cluster_scale));
    // "Stays under" is judged on the peak: settled under 100 MB is not enough.
    if let Some(c) = r.cluster_scale.as_mut() {
        c.rss_peak = Outcome::Done(120_000_000);
    }
    let t = r.targets();
    let memory = t
        .iter()
        .find(|t| t.text.contains("resident memory"))
        .unwrap();
    assert_eq!(memory.verdict, Verdict::NotMet, "{}", memory.figure);
    if let Some(c) = r.cluster_scale.as_mut() {
        c.changes[0].median = Outcome::Failed("etcd: boom".into());
    }
    assert!(Section::failed(&r.cluster_scale));
    let md = r.markdown().unwrap();
    assert!(
        md.contains("agent at scale: a pod added on another node: etcd: boom"),
        "{md}"
    );
}
