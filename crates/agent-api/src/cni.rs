//! The `cluster-ipam` verbs as CNI sees them: the `ipam` section checked, one request to the
//! node's agent per verb, its answer as a CNI result or error. The `cluster-ipam` binary
//! runs them behind the CNI dispatcher; `bridge`, `flat` and `overlay` run the same functions
//! in their own process when their `ipam.type` is `cluster-ipam` (no second process start),
//! so both paths give the same addresses, results and error codes.
//!
//! | verb | request | when the agent cannot be reached |
//! |---|---|---|
//! | ADD | `ipamAllocate` | code 11 (try again later) |
//! | DEL | `ipamRelease` | spooled beside the socket, success (the agent replays it when it starts) |
//! | CHECK | `ipamCheck` | code 11 |
//! | GC | `ipamGC` | code 11 |
//! | STATUS | `ipamStatus` | code 50 |
//!
//! The `ipam` section:
//!
//! ```json
//! "ipam": {"type": "cluster-ipam", "socket": "/run/ferro-cni/agent.sock", "mode": "node",
//!          "families": ["ipv4", "ipv6"], "routes": [{"dst": "0.0.0.0/0"}], "timeoutSeconds": 15}
//! ```
//!
//! `mode` defaults from the main plugin: `bridge` (kubenet: one on-link block per node, the
//! gateway on the bridge) takes `node`, every other type `pod` (single routed addresses).

use std::net::IpAddr;
use std::path::PathBuf;

use std::time::Duration;

use crate::ipam::{
    Family, IpamAllocate, IpamCheck, IpamGc, IpamHandle, IpamMode, IpamRelease, IpamStatus,
    Masquerade, PodRef,
};
use crate::spool::Spool;
use crate::{call, AttachmentReport, Client, ClientError, ErrorCode, Request, Response};
use ferro_spec::args::K8S_KEYS;
use ferro_spec::conf::parse_section;
use ferro_spec::{CniError, CniResult, Code, IpConfig, Route};
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
    pub fn from_request(req: &ferro_spec::Request) -> Result<Config, CniError> {
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
                .unwrap_or_else(|| PathBuf::from(crate::DEFAULT_SOCKET)),
            mode,
            families: s.families,
            routes: s.routes,
            timeout,
        })
    }
}

/// The `CNI_ARGS` keys the verbs read (the rest is refused, code 4, unless `IgnoreUnknown`).
pub const CNI_ARGS: &[&str] = K8S_KEYS;

fn handle(req: &ferro_spec::Request) -> IpamHandle {
    IpamHandle {
        container_id: req.cmd.container_id.clone(),
        ifname: req.cmd.ifname.clone(),
    }
}

/// The CNI error for a failed request (`verb`'s codes for the agent's answers).
fn cni_error(e: ClientError, not_found: Code) -> CniError {
    match e {
        ClientError::NotRunning { .. } | ClientError::Io { .. } => {
            CniError::try_again(e.to_string())
        }
        ClientError::Protocol { .. } => CniError::internal(e.to_string()),
        ClientError::Api(a) => {
            let code = match a.code {
                ErrorCode::Unavailable | ErrorCode::Conflict => Code::TryAgain,
                ErrorCode::Exhausted => Code::AddressUnavailable,
                ErrorCode::Invalid | ErrorCode::BadRequest => Code::InvalidConfig,
                ErrorCode::NotFound => not_found,
                ErrorCode::Forbidden | ErrorCode::Internal => Code::Internal,
            };
            CniError::new(code, a.message)
        }
    }
}

fn ask(cfg: &Config, req: &Request, not_found: Code) -> Result<Response, CniError> {
    call(&cfg.socket, req, cfg.timeout).map_err(|e| cni_error(e, not_found))
}

/// ADD: one address per family of the pool (or of `families`).
pub fn add(req: &ferro_spec::Request) -> Result<CniResult, CniError> {
    add_reporting(req, None).map(|(r, _)| r)
}

/// ADD whose request also carries the attachment the plugin is about to make (`report`,
/// see [`IpamAllocate::report`]): the result, and whether the agent recorded the
/// attachment (if not, the plugin sends its report itself).
pub fn add_reporting(
    req: &ferro_spec::Request,
    report: Option<AttachmentReport>,
) -> Result<(CniResult, bool), CniError> {
    PendingAdd::send(req, report, None)?
        .finish()
        .map(|(r, done)| (r, done.reported))
}

/// What the agent did besides handing out the addresses of an ADD.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Alongside {
    /// It recorded the request's `report`.
    pub reported: bool,
    /// It added the request's `masquerade`.
    pub masqueraded: bool,
}

/// An ADD request sent to the agent and not yet answered: the caller works meanwhile (a
/// plugin creates its veth pair) and then reads the answer with [`PendingAdd::finish`]. No
/// helper thread is needed: the request is on its way before the caller's work starts.
#[derive(Debug)]
pub struct PendingAdd {
    client: Client,
    routes: Vec<Route>,
    dns: ferro_spec::Dns,
}

impl PendingAdd {
    /// Checks `req`'s `ipam` section, connects to the agent and sends [`add_reporting`]'s
    /// request, with `masquerade` for the agent to add (see [`IpamAllocate::masquerade`]).
    pub fn send(
        req: &ferro_spec::Request,
        report: Option<AttachmentReport>,
        masquerade: Option<Masquerade>,
    ) -> Result<PendingAdd, CniError> {
        let cfg = Config::from_request(req)?;
        let args = &req.cmd.args;
        let pod = match (args.get("K8S_POD_NAMESPACE"), args.get("K8S_POD_NAME")) {
            (Some(ns), Some(name)) if !ns.is_empty() && !name.is_empty() => Some(PodRef {
                namespace: ns.to_string(),
                name: name.to_string(),
            }),
            _ => None,
        };
        let r = Request::IpamAllocate(IpamAllocate {
            network: req.conf.name.clone(),
            handle: handle(req),
            netns: req.cmd.netns.as_ref().map(|p| p.display().to_string()),
            pod,
            mode: cfg.mode,
            families: cfg.families.clone(),
            report,
            masquerade,
        });
        let failed = |e| cni_error(e, Code::Internal);
        let mut client = Client::connect(&cfg.socket, cfg.timeout).map_err(failed)?;
        client.send(&r).map_err(failed)?;
        Ok(PendingAdd {
            client,
            routes: cfg.routes,
            dns: req.conf.dns.clone().unwrap_or_default(),
        })
    }

    /// Waits for the agent's answer: the result, and what the agent did alongside.
    pub fn finish(mut self) -> Result<(CniResult, Alongside), CniError> {
        match self
            .client
            .receive()
            .map_err(|e| cni_error(e, Code::Internal))?
        {
            Response::IpamAllocated {
                ips,
                attachment,
                masqueraded,
            } => Ok((
                CniResult {
                    interfaces: Vec::new(),
                    ips: ips
                        .into_iter()
                        .map(|i| IpConfig {
                            address: i.address,
                            gateway: i.gateway,
                            interface: None,
                        })
                        .collect(),
                    routes: self.routes,
                    dns: self.dns,
                },
                Alongside {
                    reported: attachment.is_some(),
                    masqueraded,
                },
            )),
            other => Err(CniError::internal(format!(
                "ferro-agent answered ADD with {other:?}"
            ))),
        }
    }
}

/// DEL: the attachment's addresses are released; spooled when the agent is away.
pub fn del(req: &ferro_spec::Request) -> Result<(), CniError> {
    let cfg = Config::from_request(req)?;
    let r = Request::IpamRelease(IpamRelease {
        network: Some(req.conf.name.clone()),
        handle: handle(req),
    });
    match call(&cfg.socket, &r, cfg.timeout) {
        Ok(_) => Ok(()),
        Err(
            e @ (ClientError::NotRunning { .. }
            | ClientError::Io { .. }
            | ClientError::Protocol { .. }),
        ) => {
            // DEL must not fail because the agent is away: keep it for the agent.
            let spool = Spool::for_socket(&cfg.socket);
            match spool.push(&r) {
                Ok(path) => {
                    log::warn!(
                        "{e}; the release is spooled in {} for the agent",
                        path.display()
                    );
                    Ok(())
                }
                Err(io) => Err(CniError::try_again(format!(
                    "{e}; and it could not be spooled in {}: {io}",
                    spool.dir().display()
                ))),
            }
        }
        Err(e) => Err(cni_error(e, Code::Internal)),
    }
}

/// CHECK: the attachment still holds `prevResult`'s addresses (code 103 otherwise).
pub fn check(req: &ferro_spec::Request) -> Result<(), CniError> {
    let cfg = Config::from_request(req)?;
    let addresses: Vec<IpAddr> = req.prev_ips().unwrap_or_default();
    let r = Request::IpamCheck(IpamCheck {
        handle: handle(req),
        addresses,
    });
    ask(&cfg, &r, Code::CheckFailed).map(drop)
}

/// GC: the network's allocations outside `cni.dev/valid-attachments` are leaks.
pub fn gc(req: &ferro_spec::Request) -> Result<(), CniError> {
    let cfg = Config::from_request(req)?;
    let valid = req
        .conf
        .valid_attachments
        .iter()
        .flatten()
        .map(|a| IpamHandle {
            container_id: a.container_id.clone(),
            ifname: a.ifname.clone(),
        })
        .collect();
    let r = Request::IpamGc(IpamGc {
        network: req.conf.name.clone(),
        valid,
    });
    if let Response::IpamOk { detail: Some(d) } = ask(&cfg, &r, Code::Internal)? {
        log::info!("GC: {d}");
    }
    Ok(())
}

/// STATUS: code 50 unless an ADD of this shape can be served now.
pub fn status(req: &ferro_spec::Request) -> Result<(), CniError> {
    let cfg = Config::from_request(req)?;
    let r = Request::IpamStatus(IpamStatus {
        mode: cfg.mode,
        families: cfg.families.clone(),
    });
    ask(&cfg, &r, Code::NotAvailable)
        .map(drop)
        .map_err(|e| CniError::not_available(e.msg))
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
