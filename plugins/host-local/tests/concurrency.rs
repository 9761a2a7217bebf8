//! Parallel ADD/DEL storms, and crash safety under `kill -9` (rule P18 of
//! [docs/conformance.md](../../../docs/conformance.md)).
#![allow(clippy::unwrap_used)] // test code: a panic is a failure

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{addresses, require_reference, run_as, Net, OURS, REFERENCE};
use ferro_testutil::PluginRun;
use serde_json::{json, Value};

/// Runs `job(i)` for `i in 0..n` on `parallelism` threads; results in order.
fn parallel<F>(n: usize, parallelism: usize, job: F) -> Vec<PluginRun>
where
    F: Fn(usize) -> PluginRun + Sync,
{
    let next = AtomicUsize::new(0);
    let out: Mutex<Vec<Option<PluginRun>>> = Mutex::new(vec![None; n]);
    thread::scope(|s| {
        for _ in 0..parallelism {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= n {
                    break;
                }
                let r = job(i);
                out.lock().unwrap()[i] = Some(r);
            });
        }
    });
    out.into_inner()
        .unwrap()
        .into_iter()
        .map(|r| r.unwrap())
        .collect()
}

#[test]
fn fifty_parallel_adds_get_distinct_addresses_and_dels_leave_nothing() {
    let net = Net::new(json!([[{"subnet": "10.60.0.0/24"}], [{"subnet": "fd00:60::/64"}]]));
    let conf = net.conf();
    let adds = parallel(50, 8, |i| {
        run_as(OURS, "ADD", &format!("ctr{i}"), "eth0", &conf, "")
    });
    let mut seen = BTreeSet::new();
    for (i, r) in adds.iter().enumerate() {
        for a in addresses(&r.ok()) {
            assert!(seen.insert(a.clone()), "{a} handed out twice (ctr{i})");
        }
    }
    assert_eq!(seen.len(), 100);
    let leases = net.leases();
    assert_eq!(leases.len(), 100);
    assert_eq!(leases.values().collect::<BTreeSet<_>>().len(), 50);

    let dels = parallel(50, 8, |i| {
        run_as(OURS, "DEL", &format!("ctr{i}"), "eth0", &conf, "")
    });
    for r in &dels {
        r.ok();
    }
    assert_eq!(
        net.files(),
        ["last_reserved_ip.0", "last_reserved_ip.1", "lock"]
    );
}

#[test]
fn interleaved_add_del_storm_leaks_nothing() {
    let net = Net::new(json!([[{"subnet": "10.61.0.0/26"}]]));
    let conf = net.conf();
    let runs = parallel(120, 8, |i| {
        let id = format!("ctr{}", i / 2);
        let cmd = if i % 2 == 0 { "ADD" } else { "DEL" };
        (run_as(OURS, cmd, &id, "eth0", &conf, ""), i).0
    });
    for r in &runs {
        // An ADD may race its own DEL (the DEL then finds nothing); both must succeed.
        r.ok();
    }
    // ADDs that ran after their DEL left a lease: release them, then nothing remains.
    let dels = parallel(60, 8, |i| {
        run_as(OURS, "DEL", &format!("ctr{i}"), "eth0", &conf, "")
    });
    for r in &dels {
        r.ok();
    }
    assert_eq!(net.files(), ["last_reserved_ip.0", "lock"]);
}

/// A small deterministic generator (the seed is printed so a failure can be replayed).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, bound: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % bound
    }
}

fn spawn(bin: &str, id: &str, conf: &Value) -> std::process::Child {
    let mut child = Command::new(bin)
        .env_clear()
        .env("CNI_COMMAND", "ADD")
        .env("CNI_CONTAINERID", id)
        .env("CNI_NETNS", "/var/run/netns/ferro-test-none")
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", "/usr/lib/cni")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    // A child killed before reading its stdin makes this write fail; that is fine.
    let _ = child
        .stdin
        .take()
        .expect("stdin")
        .write_all(conf.to_string().as_bytes());
    child
}

#[test]
fn kill_9_during_concurrent_adds_never_double_allocates_or_blocks() {
    require_reference();
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("crash test seed {seed}");
    let mut rng = Lcg(seed);
    // 61 usable IPv4 addresses (.2-.62), 62 IPv6 ones: more than the ADDs of the storm.
    let net = Net::new(json!([[{"subnet": "10.62.0.0/26"}], [{"subnet": "fd00:62::/122"}]]))
        .version("1.0.0");
    let conf = net.conf();

    let mut ids = Vec::new();
    let mut done: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for round in 0..6 {
        // Our plugin, and in some rounds the reference (whose crashes can leave empty files).
        let bin = if round % 3 == 2 { REFERENCE } else { OURS };
        let mut children = Vec::new();
        for j in 0..10 {
            let id = format!("r{round}c{j}");
            children.push((id.clone(), spawn(bin, &id, &conf), rng.next(12)));
            ids.push(id);
        }
        let t0 = std::time::Instant::now();
        let mut order: Vec<usize> = (0..children.len()).collect();
        order.sort_by_key(|&i| children[i].2);
        for i in order {
            let (_, child, delay_ms) = &mut children[i];
            let wait = Duration::from_millis(*delay_ms).saturating_sub(t0.elapsed());
            thread::sleep(wait);
            if rng.next(3) != 0 {
                let _ = child.kill(); // SIGKILL
            }
        }
        for (id, child, _) in children {
            let out = child.wait_with_output().expect("wait");
            if out.status.success() {
                let v: Value = serde_json::from_slice(&out.stdout).expect("result JSON");
                done.insert(id, addresses(&v));
            }
        }
    }
    eprintln!("{} of {} ADDs completed", done.len(), ids.len());

    // No address went to two completed ADDs, and each completed ADD holds its leases.
    let mut owners: BTreeMap<String, &str> = BTreeMap::new();
    for (id, addrs) in &done {
        for a in addrs {
            if let Some(prev) = owners.insert(a.clone(), id) {
                panic!("{a} handed to {prev} and {id} (seed {seed})");
            }
        }
    }
    let leases = net.leases();
    for (id, addrs) in &done {
        for a in addrs {
            let ip = a.split('/').next().unwrap();
            assert_eq!(
                leases.get(ip).map(String::as_str),
                Some(format!("{id}\r\neth0").as_str()),
                "seed {seed}"
            );
        }
    }
    let orphans = leases
        .values()
        .filter(|c| !done.keys().any(|id| **c == format!("{id}\r\neth0")))
        .count();
    let temps = net
        .files()
        .iter()
        .filter(|f| f.starts_with(".ferro-tmp"))
        .count();
    eprintln!("after the storm: {orphans} leases of killed ADDs, {temps} temporary files");
    // Every lease is complete (ours are never torn; the reference's can only be empty).
    for (ip, content) in &leases {
        let complete = ids.iter().any(|id| *content == format!("{id}\r\neth0"));
        assert!(
            complete || content.is_empty(),
            "torn lease {ip}: {content:?} (seed {seed})"
        );
    }

    // DEL everything, in parallel: only crash leftovers of the reference (empty files) remain.
    let dels = parallel(ids.len(), 8, |i| {
        run_as(OURS, "DEL", &ids[i], "eth0", &conf, "")
    });
    for r in &dels {
        r.ok();
    }
    for (ip, content) in net.leases() {
        assert!(
            content.is_empty(),
            "{ip} still leased: {content:?} (seed {seed})"
        );
    }
    assert!(
        !net.files().iter().any(|f| f.starts_with(".ferro")),
        "{:?} (seed {seed})",
        net.files()
    );

    // Nothing blocks allocation: the whole pool can be allocated again, then it is full.
    for i in 0..61 {
        net.run("ADD", &format!("fill{i}"), &conf).ok();
    }
    let e = net.run("ADD", "one-too-many", &conf).err(101);
    assert!(
        e["msg"]
            .as_str()
            .unwrap()
            .contains("no IP addresses available"),
        "{e}"
    );
    assert!(net.leases().values().all(|c| c.starts_with("fill")));
}
