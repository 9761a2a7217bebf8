//! The verbs of `flat`.

use std::net::IpAddr;

use ipnet::IpNet;

use ferro_net::firewall::{self, MasqSpec, PodFirewall, Tag};
use ferro_net::rtnl::{Link, NeighSpec, Rtnl};
use ferro_net::transparent;
use ferro_net::{attach, sysctl, Kernel, Netns};
use ferro_spec::delegate::{self, IpamLease};
use ferro_spec::{CniError, CniResult, FirstError, Plugin, Request};

use crate::config::Config;
use crate::plan::{self, Plan};

/// The flat plugin.
#[derive(Debug)]
pub struct Flat;

/// The node facts a config may leave to defaults.
struct Node {
    uplink: Link,
    vnet: Vec<IpNet>,
    mtu: Option<u32>,
}

fn is_link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => a.is_link_local(),
        IpAddr::V6(a) => (a.segments()[0] & 0xffc0) == 0xfe80,
    }
}

fn node_facts(cfg: &Config, host: &Rtnl<'_>) -> Result<Node, CniError> {
    let uplink = match &cfg.uplink {
        Some(name) => host.link(name)?.ok_or_else(|| {
            CniError::invalid_config(format!(
                "uplink: interface {name:?} does not exist on the node"
            ))
        })?,
        None => host.default_route_link()?.ok_or_else(|| {
            CniError::invalid_config(
                "uplink: not set and the node has no default route to take it from",
            )
        })?,
    };
    let vnet = match &cfg.vnet_cidrs {
        Some(v) => v.clone(),
        None => {
            let v: Vec<IpNet> = host
                .addrs(Some(uplink.index))?
                .iter()
                .filter(|a| !is_link_local(a.addr.addr()))
                .map(|a| a.addr.trunc())
                .collect();
            if v.is_empty() {
                return Err(CniError::invalid_config(format!(
                    "vnetCIDRs: not set and uplink {} has no address to take the VNet from",
                    uplink.name
                )));
            }
            v
        }
    };
    let mtu = cfg.mtu.or(Some(uplink.mtu).filter(|m| *m > 0));
    Ok(Node { uplink, vnet, mtu })
}

impl Plugin for Flat {
    fn name(&self) -> &'static str {
        "flat"
    }

    fn cni_args(&self) -> Option<&'static [&'static str]> {
        Some(&["IP"])
    }

    fn add(&self, req: &Request) -> Result<CniResult, CniError> {
        let cfg = Config::from_request(req)?;
        let ns = Netns::open_pod(req.netns()?)?;
        let k = Kernel::new()?;
        let host = k.connect(None)?;
        let pod = k.connect(Some(&ns))?;
        attach::ensure_ifname_free(&pod, &ns, &req.cmd.ifname)?;
        let node = node_facts(&cfg, &host)?;

        let lease = IpamLease::acquire(req)?;
        let plan = plan::plan(
            &cfg,
            &req.cmd.container_id,
            &req.cmd.ifname,
            &ns.path().display().to_string(),
            &node.vnet,
            node.mtu,
            &lease.result,
        )?;
        let done = transparent::attach(&host, &pod, &ns, &plan.pod)
            .map_err(CniError::from)
            .and_then(|_| finish_add(req, &cfg, &plan, &host, &node));
        match done {
            Ok(()) => {
                lease.keep();
                Ok(plan.result)
            }
            Err(e) => {
                if let Err(e2) = transparent::detach(&host, &req.cmd.container_id, &req.cmd.ifname)
                {
                    log::warn!("rolling back {}: {e2}", plan.pod.host_veth());
                }
                unpublish(
                    &host,
                    &node.uplink,
                    &plan.pod.addrs.iter().map(|a| a.addr()).collect::<Vec<_>>(),
                );
                Err(e)
            }
        }
    }

    fn del(&self, req: &Request) -> Result<(), CniError> {
        let cfg = Config::from_request(req)?;
        let mut errors = FirstError::default();
        let k = Kernel::new()?;
        let host = k.connect(None)?;
        // The SNAT elements (by prevResult's addresses, else by tag) around the veth
        // deletion, so that their RCU grace periods overlap; IPAM DEL alongside, on a thread.
        // The elements removed also name the addresses to unpublish without prevResult.
        let hint = req.prev_ips();
        let ((unmasked, detached), released) = delegate::ipam_del_alongside(req, || {
            let out = firewall::pod_del_around(
                cfg.snat,
                &req.conf.name,
                hint.as_deref(),
                &Tag::of(req),
                || transparent::detach(&host, &req.cmd.container_id, &req.cmd.ifname),
            );
            if cfg.publish_pod_addresses {
                let mut ips = hint.clone().unwrap_or_default();
                if let Ok(removed) = &out.0 {
                    ips.extend(
                        removed
                            .iter()
                            .filter(|r| !ips.contains(r))
                            .copied()
                            .collect::<Vec<_>>(),
                    );
                }
                match node_facts(&cfg, &host) {
                    Ok(node) if ips.is_empty() && req.prev_result.is_none() => {
                        unpublish_orphans(&host, &node)
                    }
                    Ok(node) => unpublish(&host, &node.uplink, &ips),
                    Err(e) => log::warn!("cannot find the uplink to remove proxy entries: {e}"),
                }
            }
            out
        });
        errors.note(unmasked);
        errors.note(detached);
        errors.note(released);
        errors.finish()
    }

    fn check(&self, req: &Request) -> Result<(), CniError> {
        let cfg = Config::from_request(req)?;
        let prev = req.prev_result.as_ref().ok_or_else(|| {
            CniError::invalid_config("CHECK needs prevResult (the result of ADD)")
        })?;
        delegate::ipam_check(req)?;
        let ns = Netns::open_pod(req.netns()?)?;
        let k = Kernel::new()?;
        let host = k.connect(None)?;
        let pod = k.connect(Some(&ns))?;
        let node = node_facts(&cfg, &host)?;
        let addrs: Vec<IpNet> = prev
            .addresses_of(&req.cmd.ifname)
            .iter()
            .map(|i| i.address)
            .collect();
        let p = transparent::TransparentPod {
            container_id: req.cmd.container_id.clone(),
            ifname: req.cmd.ifname.clone(),
            addrs: addrs.clone(),
            mtu: node.mtu,
            extra_routes: Vec::new(),
        };
        transparent::check(&host, &pod, &p).map_err(CniError::check_failed)?;
        let ips: Vec<IpAddr> = addrs.iter().map(|a| a.addr()).collect();
        pod_firewall(req, &cfg, &no_masq(&cfg, &node.vnet)).check(&ips, &Tag::of(req))?;
        if cfg.publish_pod_addresses {
            let proxies = host.neighs(node.uplink.index, true)?;
            for a in &addrs {
                if !proxies.iter().any(|n| n.ip == a.addr()) {
                    return Err(CniError::check_failed(format!(
                        "pod address {} is not published on uplink {}",
                        a.addr(),
                        node.uplink.name
                    )));
                }
            }
        }
        Ok(())
    }

    fn gc(&self, req: &Request) -> Result<(), CniError> {
        let cfg = Config::from_request(req)?;
        let mut errors = FirstError::default();
        errors.note(delegate::ipam_gc(req));
        if cfg.snat {
            let gone = errors.note(firewall::pod_gc(
                &req.conf.name,
                req.conf.valid_attachments.as_deref(),
            ));
            if let Some(gone) = gone.filter(|g| !g.is_empty()) {
                log::info!("gc: removed SNAT state of {gone:?}");
                if cfg.publish_pod_addresses {
                    let k = Kernel::new()?;
                    let host = k.connect(None)?;
                    if let Some(node) = errors.note(node_facts(&cfg, &host)) {
                        unpublish(&host, &node.uplink, &gone);
                    }
                }
            }
        }
        errors.finish()
    }

    fn status(&self, req: &Request) -> Result<(), CniError> {
        let cfg = Config::from_request(req)?;
        let k = Kernel::new()?;
        let host = k.connect(None)?;
        node_facts(&cfg, &host).map_err(|e| CniError::not_available(e.msg))?;
        delegate::ipam_status(req)
    }
}

/// What the firewall does for this network's pods.
fn pod_firewall(req: &Request, cfg: &Config, no_masq: &[IpNet]) -> PodFirewall {
    PodFirewall {
        masq: cfg.snat.then(|| MasqSpec {
            network: req.conf.name.clone(),
            non_masquerade: no_masq.to_vec(),
        }),
        antispoof_prefix: cfg
            .anti_spoofing
            .then(|| transparent::HOST_PREFIX.to_string()),
    }
}

/// The non-masquerade destinations: the VNet and `nonMasqueradeCIDRs`.
fn no_masq(cfg: &Config, vnet: &[IpNet]) -> Vec<IpNet> {
    let mut v = vnet.to_vec();
    for c in &cfg.non_masquerade_cidrs {
        if !v.contains(c) {
            v.push(*c);
        }
    }
    v
}

fn finish_add(
    req: &Request,
    cfg: &Config,
    plan: &Plan,
    host: &Rtnl<'_>,
    node: &Node,
) -> Result<(), CniError> {
    let v4 = plan.pod.addrs.iter().any(|a| a.addr().is_ipv4());
    let v6 = plan.pod.addrs.iter().any(|a| a.addr().is_ipv6());
    attach::ensure_forwarding(v4, v6)?;
    if cfg.publish_pod_addresses {
        if v6 {
            sysctl::ensure_if_present(
                &format!("net/ipv6/conf/{}/proxy_ndp", node.uplink.name),
                "1",
            )?;
        }
        // answered at once, not after the kernel's random proxy delay (up to 0.8 s)
        for (on, v6) in [(v4, false), (v6, true)] {
            if on {
                host.neigh_proxy_delay_off(node.uplink.index, v6)?;
            }
        }
        for a in &plan.pod.addrs {
            host.neigh_replace(&NeighSpec {
                ifindex: node.uplink.index,
                ip: a.addr(),
                mac: None,
                proxy: true,
            })?;
        }
    }
    let ips: Vec<IpAddr> = plan.pod.addrs.iter().map(|a| a.addr()).collect();
    pod_firewall(req, cfg, &plan.no_masq).add(&ips, &Tag::of(req))?;
    Ok(())
}

/// DEL without any record of the pod's addresses (no prevResult, no SNAT set): remove every
/// proxy entry of the uplink whose address no longer has a host route through one of our
/// pod veths (the pod's route went with its veth), so nothing is left published for it.
fn unpublish_orphans(host: &Rtnl<'_>, node: &Node) {
    let (Ok(proxies), Ok(links)) = (host.neighs(node.uplink.index, true), host.links()) else {
        return;
    };
    let ours: Vec<u32> = links
        .iter()
        .filter(|l| l.name.starts_with(transparent::HOST_PREFIX))
        .map(|l| l.index)
        .collect();
    let mut routes = host.routes(false, None).unwrap_or_default();
    routes.extend(host.routes(true, None).unwrap_or_default());
    let orphans: Vec<IpAddr> = proxies
        .iter()
        .map(|p| p.ip)
        .filter(|ip| node.vnet.iter().any(|v| v.contains(ip)))
        .filter(|ip| {
            !routes
                .iter()
                .any(|r| r.dst.addr() == *ip && r.oif.is_some_and(|o| ours.contains(&o)))
        })
        .collect();
    unpublish(host, &node.uplink, &orphans);
}

/// Removes the proxy entries of `ips` from the uplink; best effort.
fn unpublish(host: &Rtnl<'_>, uplink: &Link, ips: &[IpAddr]) {
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
