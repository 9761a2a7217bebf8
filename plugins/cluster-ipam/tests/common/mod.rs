//! What the cluster-ipam tests share: the plugin, a ClusterNetwork, the agent's audit.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::Path;

use ferro_testutil::agent::Agent;
use serde_json::Value;

/// A dual-stack ClusterNetwork with the default block sizes.
pub const CN: &str = "apiVersion: ferro-cni.io/v1
kind: ClusterNetwork
metadata: {name: default}
spec:
  podCIDRs: [10.244.0.0/16, fd00:244::/56]
";

/// The plugin under test.
pub fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_cluster-ipam"))
}

/// The agent's audit, as `cnictl ipam check -o json` prints it.
pub fn audit(a: &Agent) -> Value {
    let out = a.cnictl(&["ipam", "check", "-o", "json"], None);
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", out.stdout, out.stderr))
}
