//! The `ipam` section of `cluster-ipam`, checked.
//!
//! ```json
//! "ipam": {"type": "cluster-ipam", "socket": "/run/ferro-cni/agent.sock", "mode": "node",
//!          "families": ["ipv4", "ipv6"], "routes": [{"dst": "0.0.0.0/0"}], "timeoutSeconds": 15}
//! ```
//!
//! `mode` defaults from the main plugin: `bridge` (kubenet: one on-link block per node, the
//! gateway on the bridge) takes `node`, every other type `pod` (single routed addresses).

use std::path::PathBuf;
use std::time::Duration;

use ferro_agent_api::ipam::{Family, IpamMode};
use ferro_spec::conf::parse_section;
use ferro_spec::{CniError, Request, Route};
use serde::Deserialize;

/// Default time the agent has to answer (a claim may need the store).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Section {
    #[serde(rename = "type")]
    _type: String,
    socket: Option<PathBuf>,
    mode: Option<IpamMode>,
    families: Option<Vec<Family>>,
    #[serde(default)]
    routes: Vec<Route>,
    timeout_seconds: Option<f64>,
}

/// The checked section.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The agent's socket.
    pub socket: PathBuf,
    /// How addresses are cut.
    pub mode: IpamMode,
    /// The families wanted (`None`: every family of the pool).
    pub families: Option<Vec<Family>>,
    /// Routes copied into the result.
    pub routes: Vec<Route>,
    /// How long the agent has to answer.
    pub timeout: Duration,
}

impl Config {
    /// Parses the request's `ipam` section; errors name the key.
    pub fn from_request(req: &Request) -> Result<Config, CniError> {
        let ipam = req
            .conf
            .ipam
            .as_ref()
            .ok_or_else(|| CniError::invalid_config("ipam: missing"))?;
        let s: Section = parse_section(&serde_json::Value::Object(ipam.raw.clone()), "ipam")?;
        let mode = s.mode.unwrap_or(if req.conf.plugin_type == "bridge" {
            IpamMode::Node
        } else {
            IpamMode::Pod
        });
        if let Some(f) = &s.families {
            if f.is_empty() {
                return Err(CniError::invalid_config(
                    "ipam.families: empty (leave it out for every family of the pool)",
                ));
            }
            if f.len() == 2 && f[0] == f[1] {
                return Err(CniError::invalid_config(format!(
                    "ipam.families: {} twice",
                    f[0].as_str()
                )));
            }
        }
        let timeout = match s.timeout_seconds {
            None => DEFAULT_TIMEOUT,
            Some(t) if t > 0.0 && t <= 300.0 => Duration::from_secs_f64(t),
            Some(t) => {
                return Err(CniError::invalid_config(format!(
                    "ipam.timeoutSeconds: {t} is not between 0 and 300"
                )))
            }
        };
        Ok(Config {
            socket: s
                .socket
                .unwrap_or_else(|| PathBuf::from(ferro_agent_api::DEFAULT_SOCKET)),
            mode,
            families: s.families,
            routes: s.routes,
            timeout,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferro_spec::Code;
    use serde_json::{json, Value};

    fn parse(main: &str, ipam: Value) -> Result<Config, CniError> {
        let conf = json!({"cniVersion": "1.1.0", "name": "n", "type": main, "ipam": ipam});
        Config::from_request(&ferro_testutil::add_request(conf))
    }

    #[test]
    fn the_mode_follows_the_main_plugin_unless_set() {
        let c = parse("bridge", json!({"type": "cluster-ipam"})).unwrap();
        assert_eq!(c.mode, IpamMode::Node);
        assert_eq!(c.socket, PathBuf::from("/run/ferro-cni/agent.sock"));
        assert_eq!(c.timeout, DEFAULT_TIMEOUT);
        assert_eq!(
            parse("flat", json!({"type": "cluster-ipam"})).unwrap().mode,
            IpamMode::Pod
        );
        assert_eq!(
            parse("overlay", json!({"type": "cluster-ipam"}))
                .unwrap()
                .mode,
            IpamMode::Pod
        );
        let c = parse(
            "bridge",
            json!({"type": "cluster-ipam", "mode": "pod", "families": ["ipv6"], "socket": "/tmp/a.sock",
                   "routes": [{"dst": "0.0.0.0/0"}], "timeoutSeconds": 2.5}),
        )
        .unwrap();
        assert_eq!(c.mode, IpamMode::Pod);
        assert_eq!(c.families, Some(vec![Family::Ipv6]));
        assert_eq!(c.routes.len(), 1);
        assert_eq!(c.timeout, Duration::from_millis(2500));
    }

    #[test]
    fn mistakes_name_the_key() {
        for (ipam, code, want) in [
            (
                json!({"type": "cluster-ipam", "sokcet": "/x"}),
                Code::InvalidConfig,
                "ipam.sokcet: unknown field `sokcet`",
            ),
            (
                json!({"type": "cluster-ipam", "mode": "cluster"}),
                Code::InvalidConfig,
                "ipam.mode: unknown variant `cluster`",
            ),
            (
                json!({"type": "cluster-ipam", "families": ["ipv4", "ipv7"]}),
                Code::InvalidConfig,
                "ipam.families[1]: unknown variant `ipv7`",
            ),
            (
                json!({"type": "cluster-ipam", "families": []}),
                Code::InvalidConfig,
                "ipam.families: empty",
            ),
            (
                json!({"type": "cluster-ipam", "families": ["ipv4", "ipv4"]}),
                Code::InvalidConfig,
                "ipam.families: ipv4 twice",
            ),
            (
                json!({"type": "cluster-ipam", "timeoutSeconds": 0}),
                Code::InvalidConfig,
                "ipam.timeoutSeconds: 0 is not between",
            ),
            (
                json!({"type": "cluster-ipam", "socket": 5}),
                Code::Decode,
                "ipam.socket: invalid type",
            ),
        ] {
            let e = parse("flat", ipam.clone()).unwrap_err();
            assert_eq!(e.code, code, "{ipam}: {}", e.msg);
            assert!(e.msg.starts_with(want), "{ipam}: {}", e.msg);
        }
    }
}
