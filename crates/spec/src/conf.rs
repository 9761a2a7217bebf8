//! The network configuration a plugin receives on stdin, and the runtime-supplied parts of it.
//!
//! [`NetConf`] reads the keys every plugin shares (`cniVersion`, `name`, `type`, `ipam`, `dns`,
//! `ipMasq`, `runtimeConfig`, `args`, `prevResult`, the GC attachment lists) and keeps the whole
//! object, so each plugin can parse its own keys with [`parse_section`]. Unknown and reserved
//! keys (`capabilities`, `args`, vendor keys) are tolerated, as the spec and libcni require.

use std::net::IpAddr;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::CniError;
use crate::result::Dns;

/// The keys shared by every plugin configuration.
#[derive(Debug, Clone)]
pub struct NetConf {
    /// `cniVersion` as written (validated by the dispatcher).
    pub cni_version: String,
    /// `name`: the network name.
    pub name: String,
    /// `type`: the plugin binary name.
    pub plugin_type: String,
    /// `ipam`, when present.
    pub ipam: Option<IpamConf>,
    /// `dns`, when present.
    pub dns: Option<Dns>,
    /// `ipMasq` (false when absent).
    pub ip_masq: bool,
    /// `runtimeConfig`: capability arguments from the runtime.
    pub runtime_config: RuntimeConfig,
    /// GC: the attachments that are still valid. `None` when the runtime sent neither
    /// `cni.dev/valid-attachments` nor the legacy `cni.dev/attachments`.
    pub valid_attachments: Option<Vec<Attachment>>,
    /// The whole configuration object, for plugin-specific keys.
    pub raw: Map<String, Value>,
}

/// The `ipam` section: its `type` and every other key (owned by the IPAM plugin).
#[derive(Debug, Clone)]
pub struct IpamConf {
    /// The IPAM plugin binary name; empty means "no IPAM" (L2-only networks).
    pub plugin_type: String,
    /// The whole `ipam` object.
    pub raw: Map<String, Value>,
}

/// One attachment, as listed in GC's `cni.dev/valid-attachments`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
pub struct Attachment {
    /// `CNI_CONTAINERID` of the ADD.
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// `CNI_IFNAME` of the ADD.
    pub ifname: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Common {
    #[serde(default)]
    cni_version: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default, rename = "type")]
    plugin_type: Option<String>,
    #[serde(default)]
    ipam: Option<Map<String, Value>>,
    #[serde(default)]
    dns: Option<Dns>,
    #[serde(default)]
    ip_masq: Option<bool>,
    #[serde(default)]
    runtime_config: Option<Map<String, Value>>,
    #[serde(default, rename = "cni.dev/valid-attachments")]
    valid_attachments: Option<Vec<Attachment>>,
    #[serde(default, rename = "cni.dev/attachments")]
    legacy_attachments: Option<Vec<Attachment>>,
}

/// `name` must match `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$` (libcni `ValidateNetworkName`); the same
/// rule applies to `CNI_CONTAINERID`.
pub fn is_valid_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

impl NetConf {
    /// Reads the shared keys of a configuration object. `name` is validated here (code 7).
    pub fn from_value(v: &Value) -> Result<Self, CniError> {
        let raw = v
            .as_object()
            .cloned()
            .ok_or_else(|| CniError::decode("network configuration must be a JSON object"))?;
        let c: Common = parse_section(v, "")?;
        let name = c
            .name
            .filter(|n| !n.is_empty())
            .ok_or_else(|| CniError::invalid_config("missing network name"))?;
        if !is_valid_identifier(&name) {
            return Err(CniError::invalid_config(format!(
                "invalid network name {name:?}: must start with a letter or digit, followed by letters, digits, '_', '.' or '-'"
            )));
        }
        let ipam = match c.ipam {
            None => None,
            Some(m) => {
                let plugin_type = match m.get("type") {
                    None | Some(Value::Null) => String::new(),
                    Some(Value::String(s)) => s.clone(),
                    Some(other) => {
                        return Err(CniError::decode(format!(
                            "ipam.type: expected a string, got {other}"
                        )))
                    }
                };
                if plugin_type.contains('/') || plugin_type.contains('\\') {
                    return Err(CniError::invalid_config(format!(
                        "ipam.type {plugin_type:?} must be a plugin name, not a path"
                    )));
                }
                Some(IpamConf {
                    plugin_type,
                    raw: m,
                })
            }
        };
        let valid_attachments = match (c.valid_attachments, c.legacy_attachments) {
            (None, None) => None,
            (a, b) => {
                let mut all = a.unwrap_or_default();
                for x in b.unwrap_or_default() {
                    if !all.contains(&x) {
                        all.push(x);
                    }
                }
                Some(all)
            }
        };
        Ok(NetConf {
            cni_version: c.cni_version.unwrap_or_default(),
            name,
            plugin_type: c.plugin_type.unwrap_or_default(),
            ipam,
            dns: c.dns,
            ip_masq: c.ip_masq.unwrap_or(false),
            runtime_config: RuntimeConfig(c.runtime_config.unwrap_or_default()),
            valid_attachments,
            raw,
        })
    }

    /// The IPAM plugin type, when the config names one.
    pub fn ipam_type(&self) -> Option<&str> {
        self.ipam
            .as_ref()
            .map(|i| i.plugin_type.as_str())
            .filter(|t| !t.is_empty())
    }

    /// Deserializes this plugin's own keys from the whole object into `T`. Errors name the
    /// path of the bad key (code 6 for a wrong type, code 7 for a failed validation inside
    /// `T`'s deserializer).
    pub fn section<T: DeserializeOwned>(&self) -> Result<T, CniError> {
        parse_section(&Value::Object(self.raw.clone()), "")
    }

    /// `args.cni.<key>` (the CONVENTIONS.md `args` object), when present.
    pub fn cni_arg(&self, key: &str) -> Option<&Value> {
        self.raw.get("args")?.get("cni")?.get(key)
    }
}

/// Deserializes `v` into `T`, reporting the failing path prefixed with `prefix`
/// (e.g. `ipam.ranges[0][1].subnet: invalid IP network`). Type errors are code 6; errors
/// raised by validating deserializers (messages starting with "invalid value") are code 7.
pub fn parse_section<T: DeserializeOwned>(v: &Value, prefix: &str) -> Result<T, CniError> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        let path = match (prefix.is_empty(), path.as_str()) {
            (true, ".") => String::new(),
            (true, _) => path,
            (false, ".") => prefix.to_string(),
            (false, _) if path.starts_with('[') => format!("{prefix}{path}"),
            (false, _) => format!("{prefix}.{path}"),
        };
        let inner = e.into_inner().to_string();
        let msg = if path.is_empty() {
            inner.clone()
        } else {
            format!("{path}: {inner}")
        };
        if inner.starts_with("invalid type")
            || inner.starts_with("expected")
            || inner.contains("EOF")
        {
            CniError::decode(msg)
        } else {
            CniError::invalid_config(msg)
        }
    })
}

/// Validates an `mtu` key: absent or 0 means "the default" (`None`); otherwise 68 to 65535.
pub fn mtu(value: Option<u32>, key: &str) -> Result<Option<u32>, CniError> {
    match value {
        None | Some(0) => Ok(None),
        Some(m) if (68..=65535).contains(&m) => Ok(Some(m)),
        Some(m) => Err(CniError::invalid_config(format!(
            "{key}: {m} is out of range 68-65535"
        ))),
    }
}

/// Lower-cases every object key, recursively. Capability arguments arrive with Go field
/// names from containerd (`HostPort`) and camelCase from CRI-O and cnitool (`hostPort`);
/// Go plugins match keys case-insensitively, so we normalize before deserializing.
pub fn lowercase_keys(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), lowercase_keys(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(lowercase_keys).collect()),
        other => other.clone(),
    }
}

/// The `runtimeConfig` object: capability arguments injected by the runtime.
#[derive(Debug, Clone, Default)]
pub struct RuntimeConfig(pub Map<String, Value>);

/// Transport protocol of a port mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Protocol {
    /// The IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Sctp => 132,
        }
    }

    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

/// One `portMappings` entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PortMapping {
    /// Port on the node.
    pub host_port: u16,
    /// Port in the container.
    pub container_port: u16,
    /// Protocol (default tcp).
    pub protocol: Protocol,
    /// Node address to match; `None` for all addresses (`""`, absent). `0.0.0.0` and `::`
    /// are kept: they mean "all addresses of that family".
    pub host_ip: Option<IpAddr>,
}

#[derive(Deserialize)]
struct RawPortMapping {
    #[serde(default, rename = "hostport")]
    host_port: Option<i64>,
    #[serde(default, rename = "containerport")]
    container_port: Option<i64>,
    #[serde(default)]
    protocol: Option<String>,
    #[serde(default, rename = "hostip")]
    host_ip: Option<String>,
}

fn port(v: Option<i64>, key: &str) -> Result<u16, CniError> {
    match v {
        Some(p) if (1..=65535).contains(&p) => Ok(p as u16),
        Some(p) => Err(CniError::invalid_config(format!(
            "{key}: port {p} is out of range 1-65535"
        ))),
        None => Err(CniError::invalid_config(format!("{key}: missing"))),
    }
}

impl RuntimeConfig {
    fn get_ci(&self, key: &str) -> Option<&Value> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    }

    /// `runtimeConfig.portMappings`, validated. Keys are matched case-insensitively.
    pub fn port_mappings(&self) -> Result<Vec<PortMapping>, CniError> {
        let Some(v) = self.get_ci("portMappings") else {
            return Ok(Vec::new());
        };
        if v.is_null() {
            return Ok(Vec::new());
        }
        let raw: Vec<RawPortMapping> =
            parse_section(&lowercase_keys(v), "runtimeConfig.portMappings")?;
        raw.into_iter()
            .enumerate()
            .map(|(i, m)| {
                let at = format!("runtimeConfig.portMappings[{i}]");
                let protocol = match m
                    .protocol
                    .as_deref()
                    .map(str::to_ascii_lowercase)
                    .as_deref()
                {
                    None | Some("") | Some("tcp") => Protocol::Tcp,
                    Some("udp") => Protocol::Udp,
                    Some("sctp") => Protocol::Sctp,
                    Some(other) => {
                        return Err(CniError::invalid_config(format!(
                            "{at}.protocol: unknown protocol {other:?} (want tcp, udp or sctp)"
                        )))
                    }
                };
                let host_ip = match m.host_ip.as_deref() {
                    None | Some("") => None,
                    Some(s) => Some(s.parse::<IpAddr>().map_err(|_| {
                        CniError::invalid_config(format!("{at}.hostIP: invalid address {s:?}"))
                    })?),
                };
                Ok(PortMapping {
                    host_port: port(m.host_port, &format!("{at}.hostPort"))?,
                    container_port: port(m.container_port, &format!("{at}.containerPort"))?,
                    protocol,
                    host_ip,
                })
            })
            .collect()
    }

    /// `runtimeConfig.ips` (capability `ips`): requested addresses, `"<ip>[/<prefix>]"`.
    pub fn ips(&self) -> Result<Vec<String>, CniError> {
        match self.get_ci("ips") {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(v) => parse_section(v, "runtimeConfig.ips"),
        }
    }

    /// `runtimeConfig.ipRanges` (capability `ipRanges`), keys lower-cased; the IPAM plugin
    /// gives it a type.
    pub fn ip_ranges(&self) -> Option<Value> {
        self.get_ci("ipRanges")
            .filter(|v| !v.is_null())
            .map(lowercase_keys)
    }

    /// `runtimeConfig.mac` (capability `mac`).
    pub fn mac(&self) -> Option<&str> {
        self.get_ci("mac").and_then(Value::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_shared_keys_and_keeps_unknown_ones() {
        let c = NetConf::from_value(&json!({
            "cniVersion": "1.1.0", "name": "kbr", "type": "bridge", "ipMasq": true,
            "capabilities": {"portMappings": true}, "args": {"cni": {"ips": ["10.0.0.5"]}},
            "vendor.example/x": 1, "cni.dev/extra": "y",
            "ipam": {"type": "host-local", "subnet": "10.0.0.0/24"}
        }))
        .unwrap();
        assert_eq!(c.name, "kbr");
        assert!(c.ip_masq);
        assert_eq!(c.ipam_type(), Some("host-local"));
        assert_eq!(c.cni_arg("ips"), Some(&json!(["10.0.0.5"])));
        assert!(c.raw.contains_key("vendor.example/x"));
        assert!(c.valid_attachments.is_none());
    }

    #[test]
    fn name_is_required_and_validated() {
        let e = NetConf::from_value(&json!({"cniVersion": "1.0.0"})).unwrap_err();
        assert_eq!(
            (e.code.number(), e.msg.as_str()),
            (7, "missing network name")
        );
        let e = NetConf::from_value(&json!({"name": "-bad"})).unwrap_err();
        assert_eq!(e.code.number(), 7);
        assert!(e.msg.contains("-bad"));
        let e = NetConf::from_value(&json!({"name": "a/b"})).unwrap_err();
        assert_eq!(e.code.number(), 7);
    }

    #[test]
    fn wrong_types_name_the_key() {
        let e = NetConf::from_value(&json!({"name": "n", "ipMasq": "yes"})).unwrap_err();
        assert_eq!(e.code.number(), 6);
        assert!(e.msg.starts_with("ipMasq:"), "{}", e.msg);
        let e = NetConf::from_value(&json!({"name": "n", "ipam": {"type": 5}})).unwrap_err();
        assert!(e.msg.contains("ipam.type"), "{}", e.msg);
        let e = NetConf::from_value(&json!({"name": "n", "ipam": {"type": "../x"}})).unwrap_err();
        assert_eq!(e.code.number(), 7);
    }

    #[test]
    fn gc_attachments_merge_both_keys() {
        let c = NetConf::from_value(&json!({"name": "n",
            "cni.dev/valid-attachments": [{"containerID": "a", "ifname": "eth0"}],
            "cni.dev/attachments": [{"containerID": "a", "ifname": "eth0"}, {"containerID": "b", "ifname": "eth0"}]
        }))
        .unwrap();
        let v = c.valid_attachments.unwrap();
        assert_eq!(v.len(), 2);
        let c = NetConf::from_value(&json!({"name": "n", "cni.dev/attachments": []})).unwrap();
        assert_eq!(c.valid_attachments, Some(vec![]));
    }

    #[test]
    fn port_mappings_accept_both_spellings() {
        let rc = RuntimeConfig(
            json!({"PortMappings": [
                {"HostPort": 8080, "ContainerPort": 80, "Protocol": "tcp", "HostIP": ""},
                {"hostPort": 5353, "containerPort": 53, "protocol": "UDP", "hostIP": "192.168.1.4"},
                {"hostPort": 9000, "containerPort": 9000}
            ]})
            .as_object()
            .unwrap()
            .clone(),
        );
        let m = rc.port_mappings().unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(
            (
                m[0].host_port,
                m[0].container_port,
                m[0].protocol,
                m[0].host_ip
            ),
            (8080, 80, Protocol::Tcp, None)
        );
        assert_eq!(m[1].protocol, Protocol::Udp);
        assert_eq!(m[1].host_ip, Some("192.168.1.4".parse().unwrap()));
        assert_eq!(m[2].protocol, Protocol::Tcp);
    }

    #[test]
    fn port_mapping_errors_name_the_entry() {
        for (bad, needle) in [
            (
                json!({"portMappings": [{"hostPort": 0, "containerPort": 80}]}),
                "portMappings[0].hostPort",
            ),
            (
                json!({"portMappings": [{"hostPort": 80, "containerPort": 70000}]}),
                "portMappings[0].containerPort",
            ),
            (
                json!({"portMappings": [{"hostPort": 80, "containerPort": 80, "protocol": "icmp"}]}),
                "protocol",
            ),
            (
                json!({"portMappings": [{"hostPort": 80, "containerPort": 80, "hostIP": "nope"}]}),
                "hostIP",
            ),
            (
                json!({"portMappings": [{"hostPort": "x", "containerPort": 80}]}),
                "portMappings[0]",
            ),
        ] {
            let rc = RuntimeConfig(bad.as_object().unwrap().clone());
            let e = rc.port_mappings().unwrap_err();
            assert!(e.msg.contains(needle), "{} does not name {needle}", e.msg);
        }
    }

    #[test]
    fn identifiers_follow_libcni() {
        for ok in ["a", "0", "abc-1.2_3", "cnitool-20c433bb2b1d6ede56d6"] {
            assert!(is_valid_identifier(ok), "{ok}");
        }
        for bad in ["", "-a", ".a", "a b", "a/b", "a:b", "ä"] {
            assert!(!is_valid_identifier(bad), "{bad}");
        }
    }
}
