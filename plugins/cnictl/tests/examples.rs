//! Every file of `conf-examples/` parses, names plugins that exist, and validates against our
//! built binaries (VERSION of each plugin and IPAM plugin supports the list's version), so the
//! examples cannot rot.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The network configurations of `conf-examples/` and its `cluster/` (cluster-mode lists).
fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../conf-examples");
    let mut v: Vec<PathBuf> = [dir.clone(), dir.join("cluster")]
        .iter()
        .flat_map(|d| std::fs::read_dir(d).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("conflist" | "conf")
            )
        })
        .collect();
    v.sort();
    assert!(v.len() >= 6, "conf-examples has {} configurations", v.len());
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
        "cluster-ipam",
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
    assert_eq!(
        nodes[0].pod_subnets.families(),
        (true, true),
        "a slice per family: the list serves the single-family and the dual-stack example"
    );
}

/// Runtimes built on libcni before 1.2 (cnitool 1.1.2, containerd 1.6, podman 4.3) use
/// `cniVersion` as it is (they do not know `cniVersions`) and reject a result in a version
/// newer than 1.0.0 ("unsupported CNI result version"): every example must work with them.
#[test]
fn every_example_is_usable_by_libcni_before_1_2() {
    for file in examples() {
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let version = v["cniVersion"].as_str().unwrap_or("");
        assert!(
            ["0.3.0", "0.3.1", "0.4.0", "1.0.0"].contains(&version),
            "{}: cniVersion {version:?} is newer than libcni 1.1 accepts; say 1.0.0 (a list can \
             offer 1.1.0 in cniVersions)",
            file.display()
        );
    }
}

/// The cluster-mode lists are the node-local ones with the agent: the `agent` key, and for
/// the overlay, `nodeList: "agent"` instead of the node list file.
#[test]
fn the_cluster_lists_are_the_node_local_ones_with_an_agent() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../conf-examples");
    let read = |f: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(dir.join(f)).unwrap()).unwrap()
    };
    for model in ["kubenet", "flat", "overlay"] {
        let mut cluster = read(&format!("{model}-cluster.conflist"));
        let main = &mut cluster["plugins"][0];
        assert_eq!(
            main["agent"],
            serde_json::json!({"socket": "/run/ferro-cni/agent.sock"}),
            "{model}"
        );
        main.as_object_mut().unwrap().remove("agent");
        if model == "overlay" {
            assert_eq!(main["nodeList"], "agent");
            main["nodeList"] = "/etc/ferro-cni/nodes.json".into();
        }
        assert_eq!(cluster, read(&format!("{model}.conflist")), "{model}");
    }
}
