//! The verbs of `overlay`. Pods attach in transparent mode (shared with `flat`); this file
//! adds the node's VXLAN device and peers.

use ipnet::IpNet;

use ferro_net::firewall::{self, MasqSpec, PodFirewall, Tag};
use ferro_net::overlay::{self, FileSource, NodeView};
use ferro_net::rtnl::Rtnl;
use ferro_net::transparent::{self, TransparentPod};
use ferro_net::{attach, Kernel, Netns};
use ferro_spec::delegate::{self, IpamLease};
use ferro_spec::{CniError, CniResult, FirstError, Plugin, Request};

use crate::config::Config;

/// The overlay plugin.
#[derive(Debug)]
pub struct Overlay;

fn node_view(cfg: &Config, host: &Rtnl<'_>) -> Result<NodeView, CniError> {
    overlay::view(&cfg.node, host, &FileSource::new(&cfg.node.node_list))
}

/// What the firewall does for this network's pods: SNAT outside the pod CIDR and
/// `nonMasqueradeCIDRs`; anti-spoofing on the pod veths.
fn pod_firewall(req: &Request, cfg: &Config) -> PodFirewall {
    let mut no_masq = vec![cfg.node.pod_cidr];
    no_masq.extend(
        cfg.non_masquerade_cidrs
            .iter()
            .filter(|c| **c != cfg.node.pod_cidr),
    );
    PodFirewall {
        masq: cfg.snat.then(|| MasqSpec {
            network: req.conf.name.clone(),
            non_masquerade: no_masq,
        }),
        antispoof_prefix: cfg
            .anti_spoofing
            .then(|| transparent::HOST_PREFIX.to_string()),
    }
}

fn pod_of(req: &Request, addrs: Vec<IpNet>, mtu: u32, extra_routes: Vec<IpNet>) -> TransparentPod {
    TransparentPod {
        container_id: req.cmd.container_id.clone(),
        ifname: req.cmd.ifname.clone(),
        addrs,
        mtu: Some(mtu),
        extra_routes,
    }
}

impl Plugin for Overlay {
    fn name(&self) -> &'static str {
        "overlay"
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
        let view = node_view(&cfg, &host)?;
        let dev = overlay::ensure_device(&host, &view.device)?;
        overlay::reconcile(&host, &dev, &view.peers, false, false)?;
        attach::ensure_forwarding(true, false)?;

        let lease = IpamLease::acquire(req)?;
        let addrs: Vec<IpNet> = lease.result.ips.iter().map(|i| i.address).collect();
        if addrs.is_empty() {
            return Err(CniError::invalid_config("ipam returned no address"));
        }
        if let Some(a) = addrs
            .iter()
            .find(|a| a.addr().is_ipv4() && !view.slice.contains(&a.addr()))
        {
            return Err(CniError::invalid_config(format!(
                "ipam returned {a}, outside this node's slice {}: point ipam at the slice",
                view.slice
            )));
        }
        let p = pod_of(
            req,
            addrs,
            view.mtu,
            lease.result.routes.iter().map(|r| r.dst()).collect(),
        );
        let ips: Vec<std::net::IpAddr> = p.addrs.iter().map(|a| a.addr()).collect();
        let attached = transparent::attach(&host, &pod, &ns, &p)
            .map_err(CniError::from)
            .and_then(|_| {
                pod_firewall(req, &cfg)
                    .add(&ips, &Tag::of(req))
                    .map_err(CniError::from)
            });
        match attached {
            Ok(()) => {
                let dns = cfg.dns.clone().unwrap_or_else(|| lease.result.dns.clone());
                let result = p.result(&ns.path().display().to_string(), dns);
                lease.keep();
                Ok(result)
            }
            Err(e) => {
                if let Err(e2) = transparent::detach(&host, &req.cmd.container_id, &req.cmd.ifname)
                {
                    log::warn!("rolling back {}: {e2}", p.host_veth());
                }
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
        let ips = req.prev_ips();
        let ((unmasked, detached), released) = delegate::ipam_del_alongside(req, || {
            firewall::pod_del_around(
                cfg.snat,
                &req.conf.name,
                ips.as_deref(),
                &Tag::of(req),
                || transparent::detach(&host, &req.cmd.container_id, &req.cmd.ifname),
            )
        });
        errors.note(unmasked);
        errors.note(detached);
        errors.note(released);
        errors.finish()
    }

    fn check(&self, req: &Request) -> Result<(), CniError> {
        let cfg = Config::from_request(req)?;
        if req.prev_result.is_none() {
            return Err(CniError::invalid_config(
                "CHECK needs prevResult (the result of ADD)",
            ));
        }
        delegate::ipam_check(req)?;
        let ns = Netns::open_pod(req.netns()?)?;
        let k = Kernel::new()?;
        let host = k.connect(None)?;
        let pod = k.connect(Some(&ns))?;
        let view = node_view(&cfg, &host)?;
        let dev = host.link(&view.device.name)?.ok_or_else(|| {
            CniError::check_failed(format!("vxlan device {} is missing", view.device.name))
        })?;
        let drift = overlay::reconcile(&host, &dev, &view.peers, true, true)?;
        if !drift.is_noop() {
            return Err(CniError::check_failed(format!(
                "overlay peers differ from the node list: missing {:?}, changed {:?}, stale {:?}",
                drift.added, drift.updated, drift.removed
            )));
        }
        let addrs: Vec<IpNet> = req.prev_addresses().unwrap_or_default();
        let ips: Vec<std::net::IpAddr> = addrs.iter().map(IpNet::addr).collect();
        let p = pod_of(req, addrs, view.mtu, Vec::new());
        transparent::check(&host, &pod, &p).map_err(CniError::check_failed)?;
        pod_firewall(req, &cfg).check(&ips, &Tag::of(req))?;
        Ok(())
    }

    fn gc(&self, req: &Request) -> Result<(), CniError> {
        let cfg = Config::from_request(req)?;
        let mut errors = FirstError::default();
        errors.note(delegate::ipam_gc(req));
        if cfg.snat {
            errors.note(firewall::pod_gc(
                &req.conf.name,
                req.conf.valid_attachments.as_deref(),
            ));
        }
        errors.finish()
    }

    fn status(&self, req: &Request) -> Result<(), CniError> {
        let cfg = Config::from_request(req)?;
        let k = Kernel::new()?;
        let host = k.connect(None)?;
        node_view(&cfg, &host).map_err(|e| CniError::not_available(e.msg))?;
        delegate::ipam_status(req)
    }
}
