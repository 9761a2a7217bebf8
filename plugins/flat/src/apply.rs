//! The kernel calls of `flat`, in the order the plan asks for them: the reads the plan
//! needs, the transparent-mode attachment, proxy ARP/NDP on the uplink, the firewall.

use std::net::IpAddr;

use ipnet::IpNet;

use ferro_net::firewall::Tag;
use ferro_net::rtnl::{Link, NeighSpec, Rtnl};
use ferro_net::transparent;
use ferro_net::{attach, sysctl};
use ferro_pod::Attach;
use ferro_spec::{CniError, CniResult, Request};

use crate::config::Config;
use crate::plan::{self, Node, Plan};

/// Reads the uplink (and, without `vnetCIDRs`, its addresses) and resolves the node facts.
pub fn node(cfg: &Config, host: &Rtnl<'_>) -> Result<Node, CniError> {
    let uplink = match &cfg.uplink {
        Some(name) => host.link(name)?,
        None => host.default_route_link()?,
    };
    let addrs: Option<Vec<IpNet>> = match (&uplink, &cfg.vnet_cidrs) {
        (Some(l), None) => Some(
            host.addrs(Some(l.index))?
                .into_iter()
                .map(|a| a.addr)
                .collect(),
        ),
        _ => None,
    };
    Ok(plan::node(cfg, uplink, addrs.as_deref())?)
}

/// ADD once the plan is made: the attachment, then forwarding, publication and the
/// firewall. Any failure removes the veth pair and the proxy entries and releases the lease.
pub fn add(a: Attach<'_>, node: &Node, plan: &Plan) -> Result<CniResult, CniError> {
    let host = a.host;
    let outcome = transparent::attach(host, a.pod, a.ns, &plan.pod)
        .map_err(CniError::from)
        .and_then(|_| finish_add(a.req, plan, host, node))
        .map(|()| plan.result.clone());
    a.settle(outcome, &plan.pod.host_veth(), || {
        unpublish(host, &node.uplink, &plan.ips())
    })
}

fn finish_add(req: &Request, plan: &Plan, host: &Rtnl<'_>, node: &Node) -> Result<(), CniError> {
    attach::ensure_forwarding_on(host, plan.v4, plan.v6)?;
    if !plan.publish.is_empty() {
        if plan.v6 {
            sysctl::ensure_if_present(
                &format!("net/ipv6/conf/{}/proxy_ndp", node.uplink.name),
                "1",
            )?;
        }
        // answered at once, not after the kernel's random proxy delay (up to 0.8 s)
        for (on, v6) in [(plan.v4, false), (plan.v6, true)] {
            if on {
                host.neigh_proxy_delay_off(node.uplink.index, v6)?;
            }
        }
        for ip in &plan.publish {
            host.neigh_replace(&NeighSpec {
                ifindex: node.uplink.index,
                ip: *ip,
                mac: None,
                proxy: true,
            })?;
        }
    }
    plan.firewall.add(&plan.ips(), &Tag::of(req))?;
    Ok(())
}

/// DEL's part after the shared teardown: unpublishes `known` (the addresses known to have
/// been the pod's), or, without any, the orphans.
pub fn del_published(req: &Request, cfg: &Config, host: &Rtnl<'_>, known: &[IpAddr]) {
    let node = match node(cfg, host) {
        Ok(n) => n,
        Err(e) => {
            log::warn!("cannot find the uplink to remove proxy entries: {e}");
            return;
        }
    };
    match plan::unpublish(known, req.prev_result.is_some()) {
        plan::Unpublish::These(ips) => unpublish(host, &node.uplink, &ips),
        plan::Unpublish::Orphans => unpublish_orphans(host, &node),
    }
}

/// Reads the uplink's proxy entries, our links and the host routes, and removes the
/// entries [`plan::orphans`] finds; best effort.
fn unpublish_orphans(host: &Rtnl<'_>, node: &Node) {
    let (Ok(proxies), Ok(links)) = (host.neighs(node.uplink.index, true), host.links()) else {
        return;
    };
    let mut routes = host.routes(false, None).unwrap_or_default();
    routes.extend(host.routes(true, None).unwrap_or_default());
    let proxies: Vec<IpAddr> = proxies.iter().map(|p| p.ip).collect();
    let orphans = plan::orphans(&proxies, &node.vnet, &links, &routes);
    unpublish(host, &node.uplink, &orphans);
}

/// Removes the proxy entries of `ips` from the uplink; best effort.
pub fn unpublish(host: &Rtnl<'_>, uplink: &Link, ips: &[IpAddr]) {
    for ip in ips {
        if let Err(e) = host.neigh_del(&NeighSpec {
            ifindex: uplink.index,
            ip: *ip,
            mac: None,
            proxy: true,
        }) {
            log::warn!("removing proxy entry {ip} from {}: {e}", uplink.name);
        }
    }
}

/// The uplink's proxy entries (CHECK).
pub fn published(host: &Rtnl<'_>, node: &Node) -> Result<Vec<IpAddr>, CniError> {
    Ok(host
        .neighs(node.uplink.index, true)?
        .iter()
        .map(|n| n.ip)
        .collect())
}
