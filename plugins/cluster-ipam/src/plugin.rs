//! The verbs: each is one request to the node's ferro-agent over its socket.
//!
//! | verb | request | when the agent cannot be reached |
//! |---|---|---|
//! | ADD | `ipamAllocate` | code 11 (try again later) |
//! | DEL | `ipamRelease` | spooled beside the socket, success (the agent replays it when it starts) |
//! | CHECK | `ipamCheck` | code 11 |
//! | GC | `ipamGC` | code 11 |
//! | STATUS | `ipamStatus` | code 50 |

use std::net::IpAddr;

use ferro_agent_api::ipam::{
    IpamAllocate, IpamCheck, IpamGc, IpamHandle, IpamRelease, IpamStatus, PodRef,
};
use ferro_agent_api::spool::Spool;
use ferro_agent_api::{call, ClientError, ErrorCode, Request, Response};
use ferro_spec::args::K8S_KEYS;
use ferro_spec::{CniError, CniResult, Code, IpConfig, Plugin};

use crate::config::Config;

/// The cluster-ipam plugin.
#[derive(Debug, Default, Clone, Copy)]
pub struct ClusterIpam;

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

impl Plugin for ClusterIpam {
    fn name(&self) -> &'static str {
        "cluster-ipam"
    }

    fn cni_args(&self) -> Option<&'static [&'static str]> {
        Some(K8S_KEYS)
    }

    fn add(&self, req: &ferro_spec::Request) -> Result<CniResult, CniError> {
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
        });
        match ask(&cfg, &r, Code::Internal)? {
            Response::IpamAllocated { ips } => Ok(CniResult {
                interfaces: Vec::new(),
                ips: ips
                    .into_iter()
                    .map(|i| IpConfig {
                        address: i.address,
                        gateway: i.gateway,
                        interface: None,
                    })
                    .collect(),
                routes: cfg.routes,
                dns: req.conf.dns.clone().unwrap_or_default(),
            }),
            other => Err(CniError::internal(format!(
                "ferro-agent answered ADD with {other:?}"
            ))),
        }
    }

    fn del(&self, req: &ferro_spec::Request) -> Result<(), CniError> {
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

    fn check(&self, req: &ferro_spec::Request) -> Result<(), CniError> {
        let cfg = Config::from_request(req)?;
        let addresses: Vec<IpAddr> = req.prev_ips().unwrap_or_default();
        let r = Request::IpamCheck(IpamCheck {
            handle: handle(req),
            addresses,
        });
        ask(&cfg, &r, Code::CheckFailed).map(drop)
    }

    fn gc(&self, req: &ferro_spec::Request) -> Result<(), CniError> {
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

    fn status(&self, req: &ferro_spec::Request) -> Result<(), CniError> {
        let cfg = Config::from_request(req)?;
        let r = Request::IpamStatus(IpamStatus {
            mode: cfg.mode,
            families: cfg.families.clone(),
        });
        ask(&cfg, &r, Code::NotAvailable)
            .map(drop)
            .map_err(|e| CniError::not_available(e.msg))
    }
}
