//! Attachment reports to the node's `ferro-agent`, when the network configuration has an
//! `agent` key:
//!
//! ```json
//! "agent": {"socket": "/run/ferro-cni/agent.sock"}
//! ```
//!
//! After a successful ADD the plugin sends one `report` request (the pod's namespace and name
//! from `K8S_POD_NAMESPACE`/`K8S_POD_NAME`, the container id, the interface, the host veth,
//! the addresses); after DEL, one more. One connection, one request, one answer. When the
//! agent also serves the addresses ([`serves_ipam`]), the ADD report rides on the address
//! request instead (`ferro_pod::add`). When the
//! agent cannot take it (not running, not answering within [`TIMEOUT`], or unable to act
//! now), the report waits in the spool (`spool` next to the socket unless `agent.spool` says
//! otherwise) and the agent applies it when it can. A report never fails the verb: the
//! attachment exists or is gone whatever the agent hears of it.
//!
//! Without the key nothing here runs: no socket, no file, not a syscall more than before.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use ferro_agent_api::{
    deliver, AttachmentEvent, AttachmentReport, Delivery, FirewallRemoved, Request, Response,
    Spool, DEFAULT_SOCKET,
};
use ferro_spec::{CniError, CniResult};

/// How long a report may wait for the agent's answer before it is spooled.
pub const TIMEOUT: Duration = Duration::from_secs(2);

/// The `agent` key: where the node's agent listens, and its spool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentKey {
    /// The agent's socket.
    pub socket: PathBuf,
    /// Where undeliverable reports wait.
    pub spool: Spool,
}

#[derive(Deserialize)]
struct Raw {
    #[serde(default)]
    agent: Option<RawAgent>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAgent {
    #[serde(default)]
    socket: Option<PathBuf>,
    #[serde(default)]
    spool: Option<PathBuf>,
}

impl AgentKey {
    /// Reads the `agent` key: `None` without it; `{}` is the agent at its default socket.
    /// A key of the wrong type is code 6, a relative path or unknown key code 7, naming it.
    pub fn from_request(req: &ferro_spec::Request) -> Result<Option<AgentKey>, CniError> {
        let raw: Raw = req.section()?;
        let Some(a) = raw.agent else {
            return Ok(None);
        };
        let socket = a.socket.unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET));
        for (key, p) in [
            ("agent.socket", Some(&socket)),
            ("agent.spool", a.spool.as_ref()),
        ] {
            if let Some(p) = p.filter(|p| !p.is_absolute()) {
                return Err(CniError::invalid_config(format!(
                    "{key}: {} is not an absolute path",
                    p.display()
                )));
            }
        }
        let spool = a
            .spool
            .map_or_else(|| Spool::for_socket(&socket), Spool::at);
        Ok(Some(AgentKey { socket, spool }))
    }
}

/// Whether the agent of `key` also serves `req`'s addresses: in-process `cluster-ipam`
/// (see [`crate::ipam::in_process`]) on the same socket. Its ADD report can then ride on
/// the address request.
pub fn serves_ipam(key: &AgentKey, req: &ferro_spec::Request) -> bool {
    crate::ipam::in_process(req)
        && ferro_agent_api::cni::Config::from_request(req).is_ok_and(|c| c.socket == key.socket)
}

/// The report of `req` (ADD or DEL) for the attachment whose host veth is `host_interface`;
/// the addresses are `result`'s of `CNI_IFNAME`.
pub fn report_of(
    req: &ferro_spec::Request,
    event: AttachmentEvent,
    host_interface: &str,
    result: Option<&CniResult>,
) -> AttachmentReport {
    let arg = |k: &str| {
        req.cmd
            .args
            .get(k)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    AttachmentReport {
        event,
        plugin: req.conf.plugin_type.clone(),
        network: req.conf.name.clone(),
        container_id: req.cmd.container_id.clone(),
        ifname: req.cmd.ifname.clone(),
        pod_namespace: arg("K8S_POD_NAMESPACE"),
        pod_name: arg("K8S_POD_NAME"),
        host_interface: host_interface.to_string(),
        addresses: result
            .map(|r| {
                r.addresses_of(&req.cmd.ifname)
                    .iter()
                    .map(|i| i.address.to_string())
                    .collect()
            })
            .unwrap_or_default(),
        firewall: None,
    }
}

/// Sends `report` to the agent, or spools it (without its firewall removal); logs what
/// happened, never fails. Returns the agent's confirmation that it removed the report's
/// firewall state, when the report asked for it and the agent did it.
pub fn send(key: &AgentKey, report: AttachmentReport) -> Option<FirewallRemoved> {
    let what = format!(
        "{:?} report of {}/{}",
        report.event, report.container_id, report.ifname
    );
    match deliver(
        &key.socket,
        &key.spool,
        &Request::Report { report },
        TIMEOUT,
    ) {
        Delivery::Delivered(r) => {
            log::debug!("{what}: delivered to {}", key.socket.display());
            if let Response::Reported { firewall, .. } = r {
                return firewall;
            }
        }
        Delivery::Spooled { reason, path } => {
            log::info!("{what}: spooled to {} ({reason})", path.display());
        }
        Delivery::Refused(e) => log::warn!("{what}: refused by the agent: {e}"),
        Delivery::Lost { reason, spool } => log::warn!(
            "{what}: not delivered ({reason}) and not spooled in {} ({spool})",
            key.spool.dir().display()
        ),
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferro_testutil::{add_request, with_keys};
    use serde_json::{json, Value};

    fn key(extra: Value) -> Result<Option<AgentKey>, CniError> {
        let base = json!({"cniVersion": "1.1.0", "name": "kubenet", "type": "bridge"});
        AgentKey::from_request(&add_request(with_keys(base, extra)))
    }

    #[test]
    fn absent_means_no_agent() {
        assert_eq!(key(json!({})).unwrap(), None);
    }

    #[test]
    fn defaults_and_paths() {
        let k = key(json!({"agent": {}})).unwrap().unwrap();
        assert_eq!(k.socket, PathBuf::from("/run/ferro-cni/agent.sock"));
        assert_eq!(k.spool.dir(), std::path::Path::new("/run/ferro-cni/spool"));
        let k = key(json!({"agent": {"socket": "/run/a/s.sock"}}))
            .unwrap()
            .unwrap();
        assert_eq!(k.spool.dir(), std::path::Path::new("/run/a/spool"));
        let k = key(json!({"agent": {"socket": "/run/a/s.sock", "spool": "/var/spool/f"}}))
            .unwrap()
            .unwrap();
        assert_eq!(k.spool.dir(), std::path::Path::new("/var/spool/f"));
    }

    #[test]
    fn mistakes_name_the_key() {
        for (extra, code, want) in [
            (json!({"agent": true}), 6, "agent: invalid type"),
            (
                json!({"agent": {"sock": "/x"}}),
                7,
                "agent.sock: unknown field",
            ),
            (
                json!({"agent": {"socket": 1}}),
                6,
                "agent.socket: invalid type",
            ),
            (
                json!({"agent": {"socket": "agent.sock"}}),
                7,
                "agent.socket: agent.sock is not an absolute path",
            ),
            (
                json!({"agent": {"spool": "spool"}}),
                7,
                "agent.spool: spool is not an absolute path",
            ),
        ] {
            let e = key(extra.clone()).unwrap_err();
            assert_eq!(e.code.number(), code, "{extra}: {}", e.msg);
            assert!(e.msg.starts_with(want), "{extra}: {}", e.msg);
        }
    }

    #[test]
    fn the_report_carries_the_pod_and_its_addresses() {
        let mut req =
            add_request(json!({"cniVersion": "1.1.0", "name": "kubenet", "type": "bridge"}));
        req.cmd.args = ferro_spec::args::CniArgs::parse(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-1;K8S_POD_UID=u",
        )
        .unwrap();
        let result = CniResult::from_value(&json!({"cniVersion": "1.1.0",
            "interfaces": [{"name": "veth1"}, {"name": "eth0", "sandbox": "/run/netns/x"}],
            "ips": [{"address": "10.244.1.5/24", "interface": 1}, {"address": "fd00::5/64", "interface": 1}]}))
        .unwrap();
        let r = report_of(&req, AttachmentEvent::Add, "veth1", Some(&result));
        assert_eq!(r.pod_namespace.as_deref(), Some("shop"));
        assert_eq!(r.pod_name.as_deref(), Some("web-1"));
        assert_eq!((r.container_id.as_str(), r.ifname.as_str()), ("c1", "eth0"));
        assert_eq!(r.addresses, vec!["10.244.1.5/24", "fd00::5/64"]);
        assert_eq!(
            (r.network.as_str(), r.plugin.as_str()),
            ("kubenet", "bridge")
        );
        let bare = add_request(json!({"cniVersion": "1.1.0", "name": "kubenet", "type": "bridge"}));
        let d = report_of(&bare, AttachmentEvent::Del, "veth1", None);
        assert_eq!((d.pod_namespace, d.pod_name), (None, None));
        assert!(d.addresses.is_empty());
    }
}
