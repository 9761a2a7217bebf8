//! Every agent configuration of `conf-examples/` loads, and every manifest there is accepted
//! by `cnictl apply` through a running agent (embedded store, no root needed).
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use ferro_testutil::agent::Agent;
use serde_json::json;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../conf-examples")
}

fn files(ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(examples())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some(ext))
        .collect();
    v.sort();
    v
}

#[test]
fn the_agent_configurations_load() {
    let configs: Vec<PathBuf> = files("json")
        .into_iter()
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("agent-")
        })
        .collect();
    assert_eq!(configs.len(), 4, "{configs:?}");
    for c in configs {
        let cfg = ferro_agent::Config::load(&c).unwrap_or_else(|e| panic!("{}: {e}", c.display()));
        assert_eq!(cfg.node_name, "node-a");
        let name = c.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(cfg.kubenet_routes, name == "agent-kubenet.json", "{name}");
        assert_eq!(
            cfg.overlay.is_some(),
            name == "agent-overlay.json",
            "{name}"
        );
    }
}

#[test]
fn the_manifests_apply_through_an_agent() {
    let manifests = files("yaml");
    assert_eq!(manifests.len(), 3, "{manifests:?}");
    let agent = Agent::start(
        Path::new(env!("CARGO_BIN_EXE_ferro-agent")),
        None,
        // In the test's own network namespace: no NetworkPolicy table there.
        json!({"nodeName": "examples", "leaseTTL": 5, "policy": {"enabled": false}}),
    );
    let mut args = vec!["apply".to_string()];
    for m in &manifests {
        args.push("-f".into());
        args.push(m.display().to_string());
    }
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = agent.cnictl(&argv, None);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    for want in [
        "clusternetwork/default created",
        "namespace/shop created",
        "pod/web-1 created (namespace shop)",
        "service/web created (namespace shop)",
        "networkpolicy/web-from-client created (namespace shop)",
        "networkpolicy/default-deny created (namespace tiers)",
    ] {
        assert!(
            out.stdout.contains(want),
            "missing {want:?} in\n{}",
            out.stdout
        );
    }
    let d = agent.cnictl(
        &["describe", "netpol", "web-from-client", "-n", "shop"],
        None,
    );
    assert!(d.stdout.contains("Selected pods:"), "{}", d.stdout);
    assert!(d.stdout.contains("web-1, web-2"), "{}", d.stdout);
}
