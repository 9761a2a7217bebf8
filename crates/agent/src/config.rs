//! The agent's configuration file (JSON), checked before anything starts.

use std::net::IpAddr;

use ipnet::IpNet;
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
    spool: Option<PathBuf>,
    state_dir: Option<PathBuf>,
    metrics: Option<String>,
    #[serde(rename = "leaseTTL")]
    lease_ttl: Option<u64>,
    log_level: Option<String>,
    services: Option<bool>,
    policy: Option<PolicyFile>,
    ipam: Option<crate::ipam::config::IpamFile>,
    dns: Option<crate::dns::DnsFile>,
    egress: Option<bool>,
    #[serde(rename = "egressMinTTL")]
    egress_min_ttl: Option<u64>,
    #[serde(rename = "podCIDRs")]
    pod_cidrs: Option<Vec<String>>,
    overlay: Option<RawOverlay>,
    kubenet_routes: Option<bool>,
    resync_seconds: Option<u64>,
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

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawOverlay {
    vni: Option<u32>,
    port: Option<u16>,
    underlay: Option<String>,
    mtu: Option<u32>,
}

/// The `overlay` key: the agent keeps the node's VXLAN device and its peers (the other
/// nodes' VTEP MACs, addresses and pod CIDRs) in step with the store. The same settings as
/// the `overlay` plugin's, which must agree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlayConfig {
    /// VXLAN network identifier (default 1).
    pub vni: u32,
    /// VXLAN UDP port (default 8472).
    pub port: u16,
    /// The underlay interface (default: the default route's).
    pub underlay: Option<String>,
    /// The device's MTU (default: the underlay's, less the VXLAN overhead).
    pub mtu: Option<u32>,
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
    /// The spool plugins write to when the agent cannot take their requests (default:
    /// `spool` next to the socket).
    pub spool: PathBuf,
    /// The state directory (lock, lease record, journal).
    pub state_dir: PathBuf,
    /// Where to serve Prometheus metrics (`None`: off).
    pub metrics: Option<std::net::SocketAddr>,
    /// The node lease's TTL.
    pub lease_ttl: Duration,
    /// Log level.
    pub log_level: log::LevelFilter,
    /// Whether the agent provides Services on this node (the `inet ferro_services` table and
    /// load-balancer announcements); off where another service proxy runs.
    pub services: bool,
    /// NetworkPolicy.
    pub policy: PolicySettings,
    /// Cluster IPAM's grace periods.
    pub ipam: crate::ipam::IpamConfig,
    /// The cluster DNS server (`None`: off).
    pub dns: Option<crate::dns::DnsConfig>,
    /// Whether the agent enforces EgressPolicies on this node (`inet ferro_egress`).
    pub egress: bool,
    /// How long an address answered for an allowed name stays allowed at least.
    pub egress_min_ttl: Duration,
    /// This node's pod CIDRs (its slice of the cluster's pod space, at most one per
    /// family), published in its `Node` for the other nodes' overlay peers and kubenet routes.
    pub pod_cidrs: Vec<IpNet>,
    /// Keep the VXLAN peers (`None`: the agent leaves VXLAN alone).
    pub overlay: Option<OverlayConfig>,
    /// Route the other nodes' pod CIDRs via their node addresses (kubenet on one L2
    /// segment).
    pub kubenet_routes: bool,
    /// How often membership is compared with the kernel even when nothing changed.
    pub resync: Duration,
}

/// Default least time an address answered for an allowed name stays allowed.
pub const DEFAULT_EGRESS_MIN_TTL: Duration = Duration::from_secs(30);

/// Default full resync of membership.
pub const DEFAULT_RESYNC: Duration = Duration::from_secs(30);

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
        let ipam = f
            .ipam
            .unwrap_or_default()
            .check(lease_ttl)
            .map_err(|m| invalid(path, m))?;
        let dns = match &f.dns {
            None => None,
            Some(d) => Some(d.check().map_err(|m| invalid(path, m))?),
        };
        let egress_min_ttl = match f.egress_min_ttl {
            None => DEFAULT_EGRESS_MIN_TTL,
            Some(s) if (1..=86400).contains(&s) => Duration::from_secs(s),
            Some(s) => {
                return Err(invalid(
                    path,
                    format!("egressMinTTL: {s} is not between 1 and 86400 seconds"),
                ))
            }
        };
        let socket = f
            .socket
            .unwrap_or_else(|| PathBuf::from(ferro_agent_api::DEFAULT_SOCKET));
        let spool = f.spool.unwrap_or_else(|| {
            ferro_agent_api::Spool::for_socket(&socket)
                .dir()
                .to_path_buf()
        });
        for (key, p) in [("socket", &socket), ("spool", &spool)] {
            if !p.is_absolute() {
                return Err(invalid(
                    path,
                    format!("{key}: {} is not an absolute path", p.display()),
                ));
            }
        }
        let mut pod_cidrs: Vec<IpNet> = Vec::new();
        for (i, c) in f.pod_cidrs.iter().flatten().enumerate() {
            let key = format!("podCIDRs[{i}]");
            let net: IpNet = c
                .parse()
                .map_err(|_| invalid(path, format!("{key}: {c:?} is not a CIDR")))?;
            if net != net.trunc() {
                return Err(invalid(path, format!("{key}: {net} has host bits set")));
            }
            if pod_cidrs
                .iter()
                .any(|o| o.addr().is_ipv6() == net.addr().is_ipv6())
            {
                return Err(invalid(
                    path,
                    format!("{key}: {net} is a second CIDR of its family (one per family)"),
                ));
            }
            pod_cidrs.push(net);
        }
        let overlay = match f.overlay {
            None => None,
            Some(o) => {
                let vni = o.vni.unwrap_or(1);
                if !(1..=0xff_ffff).contains(&vni) {
                    return Err(invalid(
                        path,
                        format!("overlay.vni: {vni} is out of range 1-16777215"),
                    ));
                }
                let port = o.port.unwrap_or(8472);
                if port == 0 {
                    return Err(invalid(path, "overlay.port: 0 is not a UDP port"));
                }
                if let Some(u) = &o.underlay {
                    ferro_spec::env::validate_ifname(u)
                        .map_err(|e| invalid(path, format!("overlay.underlay: {e}")))?;
                }
                let mtu = ferro_spec::conf::mtu(o.mtu, "overlay.mtu")
                    .map_err(|e| invalid(path, e.msg))?;
                Some(OverlayConfig {
                    vni,
                    port,
                    underlay: o.underlay,
                    mtu,
                })
            }
        };
        let resync = match f.resync_seconds {
            None => DEFAULT_RESYNC,
            Some(s) if (1..=3600).contains(&s) => Duration::from_secs(s),
            Some(s) => {
                return Err(invalid(
                    path,
                    format!("resyncSeconds: {s} is not between 1 and 3600"),
                ))
            }
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
            ipam,
            dns,
            egress: f.egress.unwrap_or(true),
            egress_min_ttl,
            pod_cidrs,
            overlay,
            kubenet_routes: f.kubenet_routes.unwrap_or(false),
            resync,
            node_name,
            node_addresses,
            store,
            socket,
            spool,
            state_dir: f
                .state_dir
                .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR)),
            metrics,
            lease_ttl,
            log_level,
            services: f.services.unwrap_or(true),
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
        assert_eq!(c.spool, PathBuf::from("/run/ferro-cni/spool"));
        assert_eq!(c.state_dir, PathBuf::from("/var/lib/ferro-cni"));
        assert_eq!(c.lease_ttl, Duration::from_secs(10));
        assert_eq!(c.metrics, None);
        assert_eq!(c.log_level, log::LevelFilter::Info);
        assert!(c.node_addresses.is_empty());
        assert!(c.policy.enabled);
        assert_eq!(c.policy.deny_log, None);
        assert_eq!(c.ipam, crate::ipam::IpamConfig::default());
        assert!(c.pod_cidrs.is_empty() && c.overlay.is_none() && !c.kubenet_routes);
        assert_eq!(c.resync, Duration::from_secs(30));
        let o = parse(r#"{"nodeName":"a","overlay":{}}"#)
            .unwrap()
            .overlay
            .unwrap();
        assert_eq!((o.vni, o.port, o.underlay, o.mtu), (1, 8472, None, None));
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
                "socket":"/tmp/a.sock","stateDir":"/tmp/state","metrics":"127.0.0.1:9464","leaseTTL":5,"logLevel":"debug",
                "podCIDRs":["10.244.1.0/24","fd00:10:244:1::/64"],"overlay":{"vni":7,"port":4789,"underlay":"eth0","mtu":1400},
                "kubenetRoutes":true,"resyncSeconds":5}"#,
        )
        .unwrap();
        assert_eq!(c.pod_cidrs.len(), 2);
        assert_eq!(
            c.overlay,
            Some(OverlayConfig {
                vni: 7,
                port: 4789,
                underlay: Some("eth0".into()),
                mtu: Some(1400)
            })
        );
        assert!(c.kubenet_routes);
        assert_eq!(c.resync, Duration::from_secs(5));
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
            (
                r#"{"nodeName":"a","ipam":{"leakgrace":1}}"#,
                "agent.json: ipam.leakgrace: unknown field `leakgrace`",
            ),
            (
                r#"{"nodeName":"a","leaseTTL":10,"ipam":{"nodeGraceSeconds":20}}"#,
                "agent.json: ipam.nodeGraceSeconds: 20 is less than 4 lease TTLs (40 s)",
            ),
            (
                r#"{"nodeName":"a","spool":"spool"}"#,
                "agent.json: spool: spool is not an absolute path",
            ),
            (
                r#"{"nodeName":"a","podCIDRs":["10.244.1.1/24"]}"#,
                "agent.json: podCIDRs[0]: 10.244.1.1/24 has host bits set",
            ),
            (
                r#"{"nodeName":"a","podCIDRs":["10.244.1.0/24","10.244.2.0/24"]}"#,
                "agent.json: podCIDRs[1]: 10.244.2.0/24 is a second CIDR of its family",
            ),
            (
                r#"{"nodeName":"a","podCIDRs":["x"]}"#,
                "agent.json: podCIDRs[0]: \"x\" is not a CIDR",
            ),
            (
                r#"{"nodeName":"a","overlay":{"vni":0}}"#,
                "agent.json: overlay.vni: 0 is out of range",
            ),
            (
                r#"{"nodeName":"a","overlay":{"port":0}}"#,
                "agent.json: overlay.port: 0 is not a UDP port",
            ),
            (
                r#"{"nodeName":"a","overlay":{"mtu":20}}"#,
                "agent.json: overlay.mtu: 20",
            ),
            (
                r#"{"nodeName":"a","overlay":{"underlay":"a b"}}"#,
                "agent.json: overlay.underlay:",
            ),
            (
                r#"{"nodeName":"a","overlay":{"vnid":2}}"#,
                "agent.json: overlay.vnid: unknown field",
            ),
            (
                r#"{"nodeName":"a","kubenetRoutes":"yes"}"#,
                "agent.json: kubenetRoutes: invalid type",
            ),
            (
                r#"{"nodeName":"a","resyncSeconds":0}"#,
                "agent.json: resyncSeconds: 0 is not between 1 and 3600",
            ),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.starts_with(want), "{text}: {e}");
        }
    }
}
