//! The reference plugins' own ginkgo suites for `bridge` and `ptp` (containernetworking-plugins
//! 1.1.1, built from Debian 12's source package) pass with our `host-local` as their IPAM:
//! every version from 0.1.0 to 1.0.0, ADD, CHECK and DEL, dual stack, DNS, and the refusals
//! they compare word for word (`config version does not allow CHECK`, `CNI version 0.2.0 does
//! not support more than 1 address per family`).
//!
//! `scripts/reference-suites.sh` does the work: it builds the suites' test binaries (once,
//! under /var/tmp/ferro-reference-suites; `scripts/test.sh` prepares them before the run),
//! runs each in a new network and private mount namespace with the host-local of this test
//! run alone on its PATH, proves from that host-local's own log that it answered the suites,
//! and checks that the namespace it was started in is unchanged.
#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::Instant;

use ferro_e2e::{repo, Ran};
use ferro_testutil::{require_root, workspace_bin};

fn suite(name: &str) {
    require_root();
    let t0 = Instant::now();
    let out = Command::new("timeout")
        .args(["--kill-after=10", "1500"])
        .arg(repo().join("scripts/reference-suites.sh"))
        .args(["--suite", name, "--host-local"])
        .arg(workspace_bin("host-local"))
        .output()
        .unwrap();
    let ran = Ran {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    eprintln!("{}{}", ran.stdout, ran.stderr);
    ran.ok(&format!("the reference {name} suite with our host-local"));
    // the script's own line for the suite: specs run, passed, failed, our host-local's calls
    let line = ran
        .stdout
        .lines()
        .find(|l| l.starts_with(&format!("{name} suite: Ran ")))
        .unwrap_or_else(|| panic!("no summary line for {name}:\n{}", ran.stdout));
    assert!(line.contains(" 0 failed"), "{line}");
    assert!(!line.contains(" 0 specs passed"), "{line}");
    assert!(!line.ends_with(" 0 calls"), "{line}");
    eprintln!("the {name} suite took {:.0?} in all", t0.elapsed());
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn the_reference_bridge_suite_passes_with_our_host_local() {
    suite("bridge");
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn the_reference_ptp_suite_passes_with_our_host_local() {
    suite("ptp");
}
