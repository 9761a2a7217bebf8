//! Running cnitool 1.1.2 (the CNI project's own client, built by `scripts/build-cnitool.sh`)
//! against a node. Its result cache lives at the fixed path `/var/lib/cni`, so every run
//! happens in a private mount namespace with a tmpfs over `/var/lib`: the machine's real
//! directory is never read or written.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::netns::Netns;

/// The cnitool binary: `$CNITOOL`, else `/var/tmp/cnitool/bin/cnitool`; panics when missing.
pub fn path() -> String {
    let p = std::env::var("CNITOOL").unwrap_or_else(|_| "/var/tmp/cnitool/bin/cnitool".into());
    assert!(
        Path::new(&p).exists(),
        "cnitool 1.1.2 is not built at {p} (scripts/build-cnitool.sh)"
    );
    p
}

/// ADD, CHECK and DEL of a network list on a pod, run on a node.
#[derive(Debug)]
pub struct RoundTrip<'a> {
    /// The node namespace the runtime runs in.
    pub node: &'a Netns,
    /// `CNI_PATH`.
    pub plugin_dir: &'a Path,
    /// The conflist.
    pub list: &'a Value,
    /// Its name.
    pub network: &'a str,
    /// The pod.
    pub pod: &'a Netns,
    /// `CAP_ARGS`.
    pub cap_args: Option<&'a str>,
    /// Shell run after ADD (`$NODE` enters the node: `$NODE nft list ruleset`).
    pub after_add: &'a str,
    /// Shell run after DEL.
    pub after_del: &'a str,
}

impl RoundTrip<'_> {
    /// Runs it; returns the combined output and panics with it when any step fails. After
    /// DEL the result cache must be empty again.
    pub fn run(&self) -> String {
        let conf = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            conf.path().join(format!("10-{}.conflist", self.network)),
            self.list.to_string(),
        )
        .expect("write conflist");
        let script = format!(
            "mount -t tmpfs ferro-cnitool /var/lib\n\
             export NETCONFPATH={conf} CNI_PATH={plugins} CAP_ARGS='{caps}'\n\
             NODE='nsenter --net={node}'\n\
             $NODE {tool} add {net} {pod}\n\
             ip -n {podname} addr show eth0\n\
             {after_add}\n\
             $NODE {tool} check {net} {pod}\n\
             echo CHECK-OK\n\
             $NODE {tool} del {net} {pod}\n\
             echo DEL-OK\n\
             {after_del}\n\
             test -z \"$(ls /var/lib/cni/results)\"",
            conf = conf.path().display(),
            plugins = self.plugin_dir.display(),
            caps = self.cap_args.unwrap_or("{}"),
            node = self.node.path().display(),
            tool = path(),
            net = self.network,
            pod = self.pod.path().display(),
            podname = self.pod.name(),
            after_add = self.after_add,
            after_del = self.after_del,
        );
        let out = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-ec", &script])
            .output()
            .expect("run unshare");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "cnitool round trip of {} failed:\n{text}",
            self.network
        );
        assert!(
            text.contains("CHECK-OK") && text.contains("DEL-OK"),
            "{text}"
        );
        text
    }
}
