//! Every file of `conf-examples/` parses, names plugins that exist, and validates against our
//! built binaries (VERSION of each plugin and IPAM plugin supports the list's version), so the
//! examples cannot rot.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../conf-examples");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("conflist" | "conf")
            )
        })
        .collect();
    v.sort();
    assert!(v.len() >= 4, "conf-examples has {} configurations", v.len());
    v
}

#[test]
fn every_example_validates_against_the_built_plugins() {
    let bin_dir = ferro_testutil::bin_dir();
    for needed in [
        "bridge",
        "flat",
        "overlay",
        "host-local",
        "loopback",
        "portmap",
    ] {
        ferro_testutil::workspace_bin(needed);
    }
    for file in examples() {
        let out = Command::new(env!("CARGO_BIN_EXE_cnictl"))
            .args(["validate"])
            .arg(&file)
            .env("CNI_PATH", &bin_dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{} does not validate:\n{}{}",
            file.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn the_overlay_node_list_example_parses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../conf-examples");
    let text = std::fs::read_to_string(dir.join("nodes.json")).unwrap();
    let nodes = ferro_net::overlay::FileSource::parse(&text, "nodes.json").unwrap();
    assert_eq!(nodes.len(), 2);
}
