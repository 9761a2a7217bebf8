//! Helpers shared by the binary tests: a private network (its own `dataDir`), running our
//! binary or the reference one as a runtime would, and reading the store back.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use ferro_testutil::{run_plugin, PluginRun};
use serde_json::{json, Value};

/// Our binary.
pub const OURS: &str = env!("CARGO_BIN_EXE_host-local");
/// The reference binary (containernetworking-plugins 1.1.1, Debian).
pub const REFERENCE: &str = "/usr/lib/cni/host-local";

/// A network with a private `dataDir`.
#[derive(Debug)]
pub struct Net {
    pub tmp: tempfile::TempDir,
    pub name: String,
    pub version: String,
    pub ipam: Value,
    /// Extra top-level keys (`runtimeConfig`, `args`, `prevResult`...).
    pub extra: Value,
}

impl Net {
    /// A network named `net1` at cniVersion 1.1.0 with the given `ranges`.
    pub fn new(ranges: Value) -> Net {
        Net::with_ipam(json!({ "ranges": ranges }))
    }

    /// A network with the given `ipam` keys (`type` and `dataDir` are added).
    pub fn with_ipam(mut ipam: Value) -> Net {
        let tmp = tempfile::tempdir().expect("tempdir");
        ipam["type"] = json!("host-local");
        if ipam.get("dataDir").is_none() {
            ipam["dataDir"] = json!(tmp.path().join("data"));
        }
        Net {
            tmp,
            name: "net1".into(),
            version: "1.1.0".into(),
            ipam,
            extra: json!({}),
        }
    }

    pub fn version(mut self, v: &str) -> Net {
        self.version = v.into();
        self
    }

    /// The stdin config.
    pub fn conf(&self) -> Value {
        let mut c = json!({
            "cniVersion": self.version,
            "name": self.name,
            "type": "host-local",
            "ipam": self.ipam,
        });
        if let Value::Object(extra) = &self.extra {
            for (k, v) in extra {
                c[k] = v.clone();
            }
        }
        c
    }

    /// The config with extra top-level keys.
    pub fn conf_with(&self, extra: Value) -> Value {
        let mut c = self.conf();
        if let Value::Object(extra) = extra {
            for (k, v) in extra {
                c[k] = v;
            }
        }
        c
    }

    pub fn data_dir(&self) -> PathBuf {
        PathBuf::from(self.ipam["dataDir"].as_str().expect("dataDir"))
    }

    /// `<dataDir>/<network>`.
    pub fn dir(&self) -> PathBuf {
        self.data_dir().join(&self.name)
    }

    /// Lease files: name -> content.
    pub fn leases(&self) -> BTreeMap<String, String> {
        leases_in(&self.dir())
    }

    /// Every top-level entry of the network directory, sorted.
    pub fn files(&self) -> Vec<String> {
        let mut v: Vec<String> = match fs::read_dir(self.dir()) {
            Ok(rd) => rd
                .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
                .collect(),
            Err(_) => Vec::new(),
        };
        v.sort();
        v
    }

    /// Runs our binary.
    pub fn run(&self, cmd: &str, id: &str, conf: &Value) -> PluginRun {
        run_as(OURS, cmd, id, "eth0", conf, "")
    }

    /// Runs the reference binary.
    pub fn reference(&self, cmd: &str, id: &str, conf: &Value) -> PluginRun {
        run_as(REFERENCE, cmd, id, "eth0", conf, "")
    }

    /// ADD with our binary; the addresses of the result.
    pub fn add(&self, id: &str) -> Vec<String> {
        addresses(&self.run("ADD", id, &self.conf()).ok())
    }
}

/// Runs `bin` as a runtime would for `cmd` on `(id, ifname)`. GC and STATUS get the empty
/// attachment variables libcni sends.
pub fn run_as(
    bin: &str,
    cmd: &str,
    id: &str,
    ifname: &str,
    conf: &Value,
    cni_args: &str,
) -> PluginRun {
    let attachment_verb = !matches!(cmd, "GC" | "STATUS");
    let env: Vec<(&str, &str)> = vec![
        ("CNI_COMMAND", cmd),
        ("CNI_CONTAINERID", if attachment_verb { id } else { "" }),
        (
            "CNI_NETNS",
            if attachment_verb {
                "/var/run/netns/ferro-test-none"
            } else {
                ""
            },
        ),
        ("CNI_IFNAME", if attachment_verb { ifname } else { "" }),
        ("CNI_PATH", "/usr/lib/cni"),
        ("CNI_ARGS", cni_args),
    ];
    run_plugin(bin, &env, &conf.to_string())
}

/// The `address` of every `ips` entry of a result.
pub fn addresses(result: &Value) -> Vec<String> {
    result["ips"]
        .as_array()
        .map(|ips| {
            ips.iter()
                .map(|ip| ip["address"].as_str().expect("address").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Lease files of a directory: names that parse as addresses -> content.
pub fn leases_in(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd {
            let e = e.expect("entry");
            let name = e.file_name().into_string().expect("utf-8");
            if name.parse::<std::net::IpAddr>().is_ok() {
                out.insert(name, fs::read_to_string(e.path()).expect("lease"));
            }
        }
    }
    out
}

/// Panics unless the reference binary is installed (nothing is skipped silently).
pub fn require_reference() {
    assert!(
        Path::new(REFERENCE).exists(),
        "{REFERENCE} is missing: install containernetworking-plugins (apt-get install containernetworking-plugins)"
    );
}
