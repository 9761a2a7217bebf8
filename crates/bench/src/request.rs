//! What a runtime hands a plugin, built exactly as libcni does (`libcni/api.go`
//! `buildOneConfig` / `injectRuntimeConfig`, `args()`):
//!
//! - stdin: the plugin's object from the list, verbatim (`capabilities` included), with
//!   `name` and `cniVersion` of the list injected, `prevResult` when there is one (never for
//!   the first plugin of an ADD; the final ADD result on DEL), and `runtimeConfig` holding
//!   the capability arguments the plugin declares with `true`, only when that is non-empty
//!   (it then replaces a `runtimeConfig` written in the file);
//! - environment: `CNI_COMMAND`, `CNI_CONTAINERID`, `CNI_NETNS`, `CNI_IFNAME`, `CNI_ARGS`,
//!   `CNI_PATH`, plus the runtime's own `PATH`.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

/// The `cniVersion` of every list: the newest version the reference plugins 1.1.1 speak.
pub const CNI_VERSION: &str = "1.0.0";

/// `PATH` handed to every plugin of both suites (the reference ones exec `iptables`).
pub const PLUGIN_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A network configuration list, as it would sit in `/etc/cni/net.d`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfList {
    /// Network name (`name` of the list).
    pub name: String,
    /// `cniVersion` of the list.
    pub cni_version: String,
    /// The plugin objects, in ADD order.
    pub plugins: Vec<Value>,
}

impl ConfList {
    /// A list of `plugins` named `name`, at [`CNI_VERSION`].
    pub fn new(name: &str, plugins: Vec<Value>) -> ConfList {
        ConfList {
            name: name.to_string(),
            cni_version: CNI_VERSION.to_string(),
            plugins,
        }
    }

    /// The `type` of plugin `i` (the binary run), `""` when missing.
    pub fn plugin_type(&self, i: usize) -> &str {
        self.plugins
            .get(i)
            .and_then(|p| p.get("type"))
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// The `type` of every plugin, in order.
    pub fn types(&self) -> Vec<String> {
        (0..self.plugins.len())
            .map(|i| self.plugin_type(i).to_string())
            .collect()
    }
}

/// The stdin of plugin `idx` of `list`, as libcni builds it.
pub fn plugin_request(
    list: &ConfList,
    idx: usize,
    prev_result: Option<&Value>,
    cap_args: &Map<String, Value>,
) -> Value {
    let mut conf = match list.plugins.get(idx) {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    conf.insert("name".into(), Value::String(list.name.clone()));
    conf.insert("cniVersion".into(), Value::String(list.cni_version.clone()));
    if let Some(prev) = prev_result {
        conf.insert("prevResult".into(), prev.clone());
    }
    let mut rc = Map::new();
    if let Some(Value::Object(caps)) = conf.get("capabilities") {
        for (cap, on) in caps {
            if on.as_bool() == Some(true) {
                if let Some(v) = cap_args.get(cap) {
                    rc.insert(cap.clone(), v.clone());
                }
            }
        }
    }
    if !rc.is_empty() {
        conf.insert("runtimeConfig".into(), Value::Object(rc));
    }
    Value::Object(conf)
}

/// CNI verbs the bench uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// `ADD`
    Add,
    /// `DEL`
    Del,
    /// `VERSION` (the process-start floor)
    Version,
}

impl Verb {
    /// The `CNI_COMMAND` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Add => "ADD",
            Verb::Del => "DEL",
            Verb::Version => "VERSION",
        }
    }
}

/// One attachment: the pod side of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// `CNI_CONTAINERID` (64 hex digits, as containerd's sandbox ids).
    pub container_id: String,
    /// `CNI_NETNS`.
    pub netns: PathBuf,
    /// `CNI_IFNAME`.
    pub ifname: String,
    /// The Kubernetes pod name put into `CNI_ARGS`.
    pub pod_name: String,
}

impl Attachment {
    /// Attachment `n` of a suite (`seed` separates suites), `eth0` in `netns`.
    pub fn new(seed: u64, n: u64, netns: &Path) -> Attachment {
        Attachment {
            container_id: container_id(seed, n),
            netns: netns.to_path_buf(),
            ifname: "eth0".into(),
            pod_name: format!("bench-{seed}-{n}"),
        }
    }

    /// `CNI_ARGS` as containerd's CRI plugin sends them.
    pub fn cni_args(&self) -> String {
        format!(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=bench;K8S_POD_NAME={};K8S_POD_INFRA_CONTAINER_ID={}",
            self.pod_name, self.container_id
        )
    }
}

/// The environment of one plugin process: exactly these variables and nothing else.
pub fn plugin_env(
    verb: Verb,
    att: &Attachment,
    cni_path: &Path,
    extra: &[(String, String)],
) -> Vec<(String, String)> {
    let mut env = vec![
        ("CNI_COMMAND".to_string(), verb.as_str().to_string()),
        ("CNI_CONTAINERID".to_string(), att.container_id.clone()),
        ("CNI_NETNS".to_string(), att.netns.display().to_string()),
        ("CNI_IFNAME".to_string(), att.ifname.clone()),
        ("CNI_ARGS".to_string(), att.cni_args()),
        ("CNI_PATH".to_string(), cni_path.display().to_string()),
        ("PATH".to_string(), PLUGIN_PATH.to_string()),
    ];
    env.extend(extra.iter().cloned());
    env
}

/// A deterministic 64-hex-digit container id, unique per `(seed, n)`.
pub fn container_id(seed: u64, n: u64) -> String {
    let mut state = seed.rotate_left(40) ^ n ^ 0x243f_6a88_85a3_08d3;
    (0..4)
        .map(|_| format!("{:016x}", splitmix64(&mut state)))
        .collect()
}

/// splitmix64 (Steele, Lea, Flood 2014): a bijective mixer, so distinct states give
/// distinct first outputs.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The addresses (without prefix length) in a result's `ips`.
pub fn result_addresses(result: &Value) -> Vec<String> {
    result
        .get("ips")
        .and_then(Value::as_array)
        .map(|ips| {
            ips.iter()
                .filter_map(|ip| ip.get("address").and_then(Value::as_str))
                .map(|a| a.split('/').next().unwrap_or(a).to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::HashSet;

    fn list() -> ConfList {
        ConfList::new(
            "kbr",
            vec![
                json!({"type":"bridge","bridge":"cbr0","ipam":{"type":"host-local"}}),
                json!({"type":"portmap","capabilities":{"portMappings":true,"bandwidth":false},
                       "runtimeConfig":{"stale":1}}),
            ],
        )
    }

    fn caps() -> Map<String, Value> {
        json!({"portMappings":[{"hostPort":30080,"containerPort":80,"protocol":"tcp"}],
               "bandwidth":{"ingressRate":1}})
        .as_object()
        .unwrap()
        .clone()
    }

    #[test]
    fn first_plugin_gets_name_and_version_only() {
        let r = plugin_request(&list(), 0, None, &caps());
        assert_eq!(
            r,
            json!({"type":"bridge","bridge":"cbr0","ipam":{"type":"host-local"},
                   "name":"kbr","cniVersion":"1.0.0"})
        );
    }

    #[test]
    fn chained_plugin_gets_prev_result_and_its_declared_capabilities() {
        let prev = json!({"cniVersion":"1.0.0","ips":[{"address":"10.244.0.2/16"}]});
        let r = plugin_request(&list(), 1, Some(&prev), &caps());
        assert_eq!(r["prevResult"], prev);
        assert_eq!(r["name"], "kbr");
        assert_eq!(
            r["runtimeConfig"],
            json!({"portMappings":[{"hostPort":30080,"containerPort":80,"protocol":"tcp"}]}),
            "only capabilities set to true, replacing the file's runtimeConfig"
        );
        assert_eq!(
            r["capabilities"],
            json!({"portMappings":true,"bandwidth":false}),
            "libcni passes capabilities through"
        );
    }

    #[test]
    fn runtime_config_left_as_written_when_nothing_matches() {
        let r = plugin_request(&list(), 1, None, &Map::new());
        assert_eq!(r["runtimeConfig"], json!({"stale":1}));
    }

    #[test]
    fn list_name_and_version_win() {
        let l = ConfList::new(
            "n",
            vec![json!({"type":"host-local","name":"other","cniVersion":"0.3.1"})],
        );
        let r = plugin_request(&l, 0, None, &Map::new());
        assert_eq!(r["name"], "n");
        assert_eq!(r["cniVersion"], CNI_VERSION);
        assert_eq!(l.types(), ["host-local"]);
    }

    #[test]
    fn env_is_exactly_the_cni_variables() {
        let att = Attachment::new(1, 7, Path::new("/run/netns/p"));
        let env = plugin_env(
            Verb::Del,
            &att,
            Path::new("/opt/x"),
            &[("XTABLES_LOCKFILE".into(), "/tmp/l".into())],
        );
        let keys: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "CNI_COMMAND",
                "CNI_CONTAINERID",
                "CNI_NETNS",
                "CNI_IFNAME",
                "CNI_ARGS",
                "CNI_PATH",
                "PATH",
                "XTABLES_LOCKFILE"
            ]
        );
        assert_eq!(env[0].1, "DEL");
        assert_eq!(env[2].1, "/run/netns/p");
        assert!(env[4]
            .1
            .starts_with("IgnoreUnknown=1;K8S_POD_NAMESPACE=bench;"));
    }

    #[test]
    fn container_ids_are_long_hex_and_unique() {
        let mut seen = HashSet::new();
        for seed in 1..=2 {
            for n in 0..5000 {
                let id = container_id(seed, n);
                assert_eq!(id.len(), 64);
                assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
                assert!(seen.insert(id));
            }
        }
        assert_eq!(container_id(1, 3), container_id(1, 3));
    }

    #[test]
    fn addresses_of_a_result() {
        let r = json!({"ips":[{"address":"10.0.0.2/24"},{"address":"fd00::2/64"}]});
        assert_eq!(result_addresses(&r), ["10.0.0.2", "fd00::2"]);
        assert!(result_addresses(&json!({})).is_empty());
    }
}
