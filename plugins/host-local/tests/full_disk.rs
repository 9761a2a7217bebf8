//! A full file system (ENOSPC) leaves the store consistent: no partial lease, no temporary
//! file, no index entry, and an error (code 100) naming the file. Needs root: the test re-runs
//! itself inside a private mount namespace (`unshare --mount --propagation private`) and
//! mounts a 64 KiB tmpfs there, so nothing outside the test sees the mount.
#![allow(clippy::unwrap_used)] // test code: a panic is a failure

mod common;

use std::fs;
use std::io::{ErrorKind, Write};
use std::path::Path;
use std::process::Command;

use common::Net;
use serde_json::json;

const INNER: &str = "FERRO_FULL_DISK_INNER";
const TEST: &str = "enospc_at_every_step_leaves_the_store_consistent";

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn enospc_at_every_step_leaves_the_store_consistent() {
    ferro_testutil::require_root();
    if std::env::var_os(INNER).is_none() {
        let status = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "--"])
            .arg(std::env::current_exe().expect("test binary"))
            .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
            .env(INNER, "1")
            .status()
            .expect("running unshare");
        assert!(
            status.success(),
            "the test failed inside its mount namespace"
        );
        return;
    }
    inside_private_mount_namespace();
}

fn mount_ns(pid: &str) -> std::path::PathBuf {
    fs::read_link(format!("/proc/{pid}/ns/mnt")).expect("mount namespace")
}

/// Fills the file system at `dir` with one-page files; returns them.
fn fill(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for i in 0.. {
        let p = dir.join(format!("fill-{i}"));
        let mut f = fs::File::create(&p).expect("create filler");
        match f.write_all(&[0u8; 4096]) {
            Ok(()) => files.push(p),
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(28), "unexpected error filling: {e}");
                drop(f);
                fs::remove_file(&p).expect("remove partial filler");
                break;
            }
        }
    }
    files
}

fn inside_private_mount_namespace() {
    let parent = std::os::unix::process::parent_id().to_string();
    assert_ne!(
        mount_ns("self"),
        mount_ns(&parent),
        "not in a private mount namespace"
    );
    let root = tempfile::tempdir().expect("tempdir");
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k,mode=0755", "ferro-full-disk"])
        .arg(root.path())
        .status()
        .expect("running mount");
    assert!(ok.success(), "mount tmpfs failed");

    let data = root.path().join("data");
    let mut failures = 0;
    let mut successes = 0;
    for free_pages in 0..8 {
        let _ = fs::remove_dir_all(&data);
        for e in fs::read_dir(root.path()).unwrap() {
            fs::remove_file(e.unwrap().path()).unwrap();
        }
        let mut fillers = fill(root.path());
        assert!(
            fillers.len() >= 8,
            "tmpfs too small: {} pages",
            fillers.len()
        );
        for p in fillers.drain(..free_pages) {
            fs::remove_file(p).unwrap();
        }

        let net = Net::with_ipam(json!({"dataDir": data,
            "ranges": [[{"subnet": "10.70.0.0/24"}], [{"subnet": "fd00:70::/64"}]]}));
        let id = format!("ctr{free_pages}");
        let r = net.run("ADD", &id, &net.conf());
        let stray: Vec<String> = net
            .files()
            .into_iter()
            .filter(|f| f.starts_with(".ferro-tmp"))
            .collect();
        assert!(
            stray.is_empty(),
            "{free_pages} free pages: temporary files left: {stray:?}"
        );
        if r.code == 0 {
            successes += 1;
            let leases = net.leases();
            assert_eq!(leases.len(), 2, "{free_pages} free pages");
            assert!(leases.values().all(|c| *c == format!("{id}\r\neth0")));
            net.run("CHECK", &id, &net.conf()).ok();
            net.run("DEL", &id, &net.conf()).ok();
            assert!(net.leases().is_empty());
        } else {
            failures += 1;
            let e = r.json();
            let code = e["code"].as_u64().unwrap();
            let msg = e["msg"].as_str().unwrap();
            assert!(code == 100 || code == 5, "{free_pages} free pages: {e}");
            assert!(msg.contains("No space left on device"), "{msg}");
            assert!(
                msg.contains(&data.display().to_string()),
                "the error names the path: {msg}"
            );
            eprintln!("{free_pages} free pages: {msg}");
            assert!(
                net.leases().is_empty(),
                "{free_pages} free pages: partial lease {:?}",
                net.leases()
            );
            let index = net.dir().join(".ferro-index");
            let entries = fs::read_dir(&index).map(|d| d.count()).unwrap_or(0);
            assert_eq!(entries, 0, "{free_pages} free pages: index entries left");
            // Space comes back: the same ADD now succeeds (nothing blocks, no duplicate).
            for p in &fillers {
                fs::remove_file(p).unwrap();
            }
            fillers.clear();
            net.run("ADD", &id, &net.conf()).ok();
            assert_eq!(net.leases().len(), 2);
        }
        match fs::remove_dir_all(&data) {
            Err(e) if e.kind() != ErrorKind::NotFound => panic!("{e}"),
            _ => {}
        }
    }
    assert!(
        failures >= 3 && successes >= 1,
        "{failures} failures, {successes} successes"
    );
    Command::new("umount")
        .arg(root.path())
        .status()
        .expect("umount");
}
