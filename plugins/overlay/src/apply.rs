//! The kernel calls of `overlay`: the node's view (read before IPAM), then, once the plan
//! is made, the VXLAN device and its peers, forwarding, the transparent-mode attachment and
//! the firewall.

use ferro_net::attach;
use ferro_net::firewall::Tag;
use ferro_net::overlay::{self, FileSource, NodeLease, NodeView, PeerSource};
use ferro_net::rtnl::Rtnl;
use ferro_net::transparent;
use ferro_net::NetError;
use ferro_pod::Attach;
use ferro_spec::{CniError, CniResult};

use crate::config::Config;
use crate::plan::{self, Plan};

/// The peers of `nodeList: "agent"`: none for the plugin, ferro-agent programs them.
struct AgentPeers;

impl PeerSource for AgentPeers {
    fn leases(&self) -> Result<Vec<NodeLease>, NetError> {
        Ok(Vec::new())
    }

    fn describe(&self) -> String {
        "ferro-agent (nodeList \"agent\")".into()
    }
}

/// This node's slice, VXLAN device, peers and MTU, from the config, the underlay and the
/// node list (none with `nodeList: "agent"`).
pub fn node_view(cfg: &Config, host: &Rtnl<'_>) -> Result<NodeView, CniError> {
    if cfg.peers_from_agent {
        overlay::view(&cfg.node, host, &AgentPeers)
    } else {
        overlay::view(&cfg.node, host, &FileSource::new(&cfg.node.node_list))
    }
}

/// ADD once the plan is made. The VXLAN device and its peers are node-level state, shared
/// by every pod and left in place; a failure after the veth pair exists removes it, and the
/// lease is released on any failure.
pub fn add(
    a: Attach<'_>,
    cfg: &Config,
    view: &NodeView,
    plan: &Plan,
) -> Result<CniResult, CniError> {
    let dev = overlay::ensure_device(a.host, &view.device)?;
    if !cfg.peers_from_agent {
        overlay::reconcile(a.host, &dev, &view.peers, false, false)?;
    }
    let (v4, v6) = plan.families();
    attach::ensure_forwarding_on(a.host, v4, v6)?;
    let outcome = transparent::attach(a.host, a.pod, a.ns, &plan.pod)
        .map_err(CniError::from)
        .and_then(|_| {
            plan.firewall
                .add(&plan.ips(), &Tag::of(a.req))
                .map_err(CniError::from)
        })
        .map(|()| plan.result.clone());
    a.settle(outcome, &plan.pod.host_veth(), || {})
}

/// CHECK of the node side: the VXLAN device exists and its peers match the node list (a
/// dry-run reconcile; not with `nodeList: "agent"`, whose peers are the agent's).
pub fn check_node(host: &Rtnl<'_>, cfg: &Config, view: &NodeView) -> Result<(), CniError> {
    let dev = host.link(&view.device.name)?;
    let drift = match &dev {
        Some(d) if !cfg.peers_from_agent => {
            Some(overlay::reconcile(host, d, &view.peers, true, true)?)
        }
        _ => None,
    };
    Ok(plan::node_differences(&view.device.name, dev.is_some(), drift.as_ref()).into_result()?)
}
