//! The agent's configuration file (JSON), checked before anything starts.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ferro_store::StoreConfig;
use serde::Deserialize;

use crate::AgentError;

/// Default configuration file.
pub const DEFAULT_CONFIG: &str = "/etc/ferro-cni/agent.json";
/// Default state directory.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/ferro-cni";
/// Default node lease TTL.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(10);

/// The file as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct File {
    node_name: Option<String>,
    node_address: Option<String>,
    node_addresses: Option<Vec<String>>,
    store: Option<StoreConfig>,
    socket: Option<PathBuf>,
    state_dir: Option<PathBuf>,
    metrics: Option<String>,
    #[serde(rename = "leaseTTL")]
    lease_ttl: Option<u64>,
    log_level: Option<String>,
    policy: Option<PolicyFile>,
}

/// The `policy` key as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PolicyFile {
    enabled: Option<bool>,
    deny_log: Option<DenyLogFile>,
}

/// `policy.denyLog` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DenyLogFile {
    group: Option<u16>,
    rate_per_second: Option<u64>,
    burst: Option<u32>,
}

/// Default nflog group of the deny log.
pub const DEFAULT_DENY_LOG_GROUP: u16 = 1701;
/// Default packets logged per second per pod and direction.
pub const DEFAULT_DENY_LOG_RATE: u64 = 10;
/// Default burst.
pub const DEFAULT_DENY_LOG_BURST: u32 = 20;

/// NetworkPolicy settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicySettings {
    /// Whether the agent enforces NetworkPolicy (default yes).
    pub enabled: bool,
    /// Logging of denied connection attempts (default off).
    pub deny_log: Option<ferro_policy::ruleset::LogOptions>,
}

/// The checked configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// This node's name (default: the host name).
    pub node_name: String,
    /// This node's underlay addresses, at most one per family.
    pub node_addresses: Vec<IpAddr>,
    /// The store.
    pub store: StoreConfig,
    /// The API socket.
    pub socket: PathBuf,
    /// The state directory (lock, lease record, journal).
    pub state_dir: PathBuf,
    /// Where to serve Prometheus metrics (`None`: off).
    pub metrics: Option<std::net::SocketAddr>,
    /// The node lease's TTL.
    pub lease_ttl: Duration,
    /// Log level.
    pub log_level: log::LevelFilter,
    /// NetworkPolicy.
    pub policy: PolicySettings,
}

fn invalid(path: &Path, msg: impl std::fmt::Display) -> AgentError {
    AgentError::Config(format!("{}: {msg}", path.display()))
}

impl Config {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Config, AgentError> {
        let text = std::fs::read_to_string(path).map_err(|e| invalid(path, e))?;
        Config::parse(path, &text)
    }

    /// Checks `text`, the content of `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Config, AgentError> {
        let de = &mut serde_json::Deserializer::from_str(text);
        let f: File = serde_path_to_error::deserialize(de).map_err(|e| {
            let at = e.path().to_string();
            if at == "." || at == "?" {
                invalid(path, e.into_inner())
            } else {
                invalid(path, format!("{at}: {}", e.into_inner()))
            }
        })?;
        let node_name = match f.node_name {
            Some(n) => n,
            None => std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .map_err(|e| invalid(path, format!("nodeName: not set and no host name: {e}")))?,
        };
        if let Some(e) = ferro_cluster::names::dns1123_subdomain(&node_name) {
            return Err(invalid(path, format!("nodeName: {e}")));
        }
        let mut node_addresses = Vec::new();
        let given: Vec<(String, String)> = f
            .node_address
            .iter()
            .map(|a| ("nodeAddress".to_string(), a.clone()))
            .chain(
                f.node_addresses
                    .iter()
                    .flatten()
                    .enumerate()
                    .map(|(i, a)| (format!("nodeAddresses[{i}]"), a.clone())),
            )
            .collect();
        for (key, a) in given {
            let ip: IpAddr = a
                .parse()
                .map_err(|_| invalid(path, format!("{key}: {a:?} is not an IP address")))?;
            if node_addresses
                .iter()
                .any(|o: &IpAddr| o.is_ipv6() == ip.is_ipv6())
            {
                return Err(invalid(
                    path,
                    format!("{key}: {ip} is a second address of its family (one per family)"),
                ));
            }
            node_addresses.push(ip);
        }
        let store = f.store.unwrap_or_default();
        if let StoreConfig::Etcd(e) = &store {
            e.check().map_err(|m| invalid(path, m))?;
        }
        let metrics = match f.metrics {
            None => None,
            Some(m) => Some(m.parse().map_err(|_| {
                invalid(
                    path,
                    format!("metrics: {m:?} is not ADDRESS:PORT (e.g. 127.0.0.1:9464)"),
                )
            })?),
        };
        let lease_ttl = match f.lease_ttl {
            None => DEFAULT_LEASE_TTL,
            Some(s) if (1..=3600).contains(&s) => Duration::from_secs(s),
            Some(s) => {
                return Err(invalid(
                    path,
                    format!("leaseTTL: {s} is not between 1 and 3600 seconds"),
                ))
            }
        };
        let log_level = match f.log_level.as_deref() {
            None => log::LevelFilter::Info,
            Some(l) => l.parse().map_err(|_| {
                invalid(
                    path,
                    format!("logLevel: {l:?} is not one of error, warn, info, debug, trace"),
                )
            })?,
        };
        let p = f.policy.unwrap_or_default();
        let deny_log = match p.deny_log {
            None => None,
            Some(d) => {
                let rate = d.rate_per_second.unwrap_or(DEFAULT_DENY_LOG_RATE);
                if rate == 0 {
                    return Err(invalid(
                        path,
                        "policy.denyLog.ratePerSecond: 0 logs nothing (remove denyLog instead)",
                    ));
                }
                Some(ferro_policy::ruleset::LogOptions {
                    group: d.group.unwrap_or(DEFAULT_DENY_LOG_GROUP),
                    rate,
                    burst: d.burst.unwrap_or(DEFAULT_DENY_LOG_BURST),
                })
            }
        };
        let policy = PolicySettings {
            enabled: p.enabled.unwrap_or(true),
            deny_log,
        };
        Ok(Config {
            node_name,
            node_addresses,
            store,
            socket: f
                .socket
                .unwrap_or_else(|| PathBuf::from(ferro_agent_api::DEFAULT_SOCKET)),
            state_dir: f
                .state_dir
                .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR)),
            metrics,
            lease_ttl,
            log_level,
            policy,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(Path::new("agent.json"), text).map_err(|e| {
            let s = e.to_string();
            s.strip_prefix("configuration: ").unwrap_or(&s).to_string()
        })
    }

    #[test]
    fn defaults() {
        let c = parse(r#"{"nodeName":"node-a"}"#).unwrap();
        assert_eq!(c.store, StoreConfig::default());
        assert_eq!(c.socket, PathBuf::from("/run/ferro-cni/agent.sock"));
        assert_eq!(c.state_dir, PathBuf::from("/var/lib/ferro-cni"));
        assert_eq!(c.lease_ttl, Duration::from_secs(10));
        assert_eq!(c.metrics, None);
        assert_eq!(c.log_level, log::LevelFilter::Info);
        assert!(c.node_addresses.is_empty());
        assert!(c.policy.enabled);
        assert_eq!(c.policy.deny_log, None);
    }

    #[test]
    fn policy_settings() {
        let c = parse(r#"{"nodeName":"n","policy":{"enabled":false,"denyLog":{}}}"#).unwrap();
        assert!(!c.policy.enabled);
        assert_eq!(
            c.policy.deny_log,
            Some(ferro_policy::ruleset::LogOptions {
                group: 1701,
                rate: 10,
                burst: 20
            })
        );
        let c = parse(
            r#"{"nodeName":"n","policy":{"denyLog":{"group":7,"ratePerSecond":2,"burst":3}}}"#,
        )
        .unwrap();
        assert_eq!(
            c.policy.deny_log.map(|d| (d.group, d.rate, d.burst)),
            Some((7, 2, 3))
        );
        let e = parse(r#"{"nodeName":"n","policy":{"denylog":{}}}"#).unwrap_err();
        assert!(e.contains("policy.denylog") || e.contains("denylog"), "{e}");
        let e = parse(r#"{"nodeName":"n","policy":{"denyLog":{"ratePerSecond":0}}}"#).unwrap_err();
        assert!(e.contains("policy.denyLog.ratePerSecond"), "{e}");
    }

    #[test]
    fn everything_set() {
        let c = parse(
            r#"{"nodeName":"node-a","nodeAddresses":["10.240.0.4","fd00:240::4"],
                "store":{"etcd":{"endpoints":["https://10.240.0.4:2379"],"caFile":"/ca","certFile":"/c","keyFile":"/k"}},
                "socket":"/tmp/a.sock","stateDir":"/tmp/state","metrics":"127.0.0.1:9464","leaseTTL":5,"logLevel":"debug"}"#,
        )
        .unwrap();
        assert_eq!(c.node_addresses.len(), 2);
        assert_eq!(c.metrics, Some("127.0.0.1:9464".parse().unwrap()));
        assert_eq!(c.lease_ttl, Duration::from_secs(5));
        assert!(matches!(c.store, StoreConfig::Etcd(_)));
    }

    #[test]
    fn mistakes_name_the_key() {
        for (text, want) in [
            (
                r#"{"nodeName":"node-a","leaseTtl":5}"#,
                "agent.json: leaseTtl: unknown field `leaseTtl`",
            ),
            (
                r#"{"nodeName":"Node_A"}"#,
                "agent.json: nodeName: \"Node_A\" is not a DNS-1123 subdomain",
            ),
            (
                r#"{"nodeName":"a","nodeAddress":"10.0.0.1","nodeAddresses":["10.0.0.2"]}"#,
                "agent.json: nodeAddresses[0]: 10.0.0.2 is a second address of its family",
            ),
            (
                r#"{"nodeName":"a","nodeAddresses":["x"]}"#,
                "agent.json: nodeAddresses[0]: \"x\" is not an IP address",
            ),
            (
                r#"{"nodeName":"a","store":{"etcd":{"endpoints":[]}}}"#,
                "agent.json: store.etcd.endpoints: at least one endpoint is needed",
            ),
            (
                r#"{"nodeName":"a","store":{"etcd":{"endpoints":["x:1"],"cafile":"/x"}}}"#,
                "agent.json: store.etcd.cafile: unknown field `cafile`",
            ),
            (
                r#"{"nodeName":"a","store":{"zookeeper":{}}}"#,
                "agent.json: store: unknown variant `zookeeper`",
            ),
            (
                r#"{"nodeName":"a","leaseTTL":0}"#,
                "agent.json: leaseTTL: 0 is not between 1 and 3600 seconds",
            ),
            (
                r#"{"nodeName":"a","metrics":"9464"}"#,
                "agent.json: metrics: \"9464\" is not ADDRESS:PORT",
            ),
            (
                r#"{"nodeName":"a","logLevel":"loud"}"#,
                "agent.json: logLevel: \"loud\"",
            ),
            (r#"{"nodeName":"a""#, "agent.json: EOF while parsing"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.starts_with(want), "{text}: {e}");
        }
    }
}
