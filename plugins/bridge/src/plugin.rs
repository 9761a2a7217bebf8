//! The verbs: apply the plan through `ferro-net`, roll back on a failed ADD, clean up
//! best-effort on DEL.

use std::net::IpAddr;

use ferro_net::attach::{self, PodInterface};
use ferro_net::firewall::{self, MasqSpec, PodFirewall, Tag};
use ferro_net::rtnl::{BridgeSpec, Link, Rtnl, VethSpec};
use ferro_net::{names, sysctl, Kernel, NetError, Netns};
use ferro_spec::delegate::{self, IpamLease};
use ferro_spec::{CniError, CniResult, FirstError, Plugin, Request};
use ipnet::IpNet;

use crate::config::Config;
use crate::plan::{self, Plan, CONTAINER_INDEX};

/// The bridge plugin.
#[derive(Debug)]
pub struct Bridge;

impl Plugin for Bridge {
    fn name(&self) -> &'static str {
        "bridge"
    }

    fn cni_args(&self) -> Option<&'static [&'static str]> {
        Some(&["MAC", "IP"])
    }

    fn add(&self, req: &Request) -> Result<CniResult, CniError> {
        let cfg = Config::from_request(req)?;
        let container_mac = plan::container_mac(req)?;
        let ns = Netns::open_pod(req.netns()?)?;
        let k = Kernel::new()?;
        let host = k.connect(None)?;
        let pod = k.connect(Some(&ns))?;
        attach::ensure_ifname_free(&pod, &ns, &req.cmd.ifname)?;

        let bridge = host.bridge_ensure(&BridgeSpec {
            name: cfg.bridge.clone(),
            mtu: cfg.mtu,
            mac: Some(random_mac()?),
            vlan_filtering: cfg.vlan.is_some(),
        })?;
        if cfg.promisc_mode && !bridge.promisc {
            host.link_set_promisc(bridge.index, true)?;
        }

        let lease = match req.conf.ipam_type() {
            Some(_) => Some(IpamLease::acquire(req)?),
            None => None,
        };
        let empty = CniResult::default();
        let ipam = lease.as_ref().map_or(&empty, |l| &l.result);
        let plan = plan::plan(
            &cfg,
            &req.cmd.container_id,
            &req.cmd.ifname,
            &ns.path().display().to_string(),
            container_mac,
            ipam,
        )?;

        // Node-level state first, while the kernel is quiet: once the new port exists, the
        // kernel's per-port work (link watch, port state selection) holds rtnl for a while,
        // and every later request of ours waits behind it.
        if cfg.is_gateway {
            ensure_gateways(&host, &bridge, &plan.gateways, cfg.force_address)?;
            let v4 = plan.addrs.iter().any(|a| a.addr().is_ipv4());
            let v6 = plan.addrs.iter().any(|a| a.addr().is_ipv6());
            attach::ensure_forwarding(v4, v6)?;
        }
        let echoed = host.veth_add(&VethSpec {
            name: plan.host_veth.clone(),
            mac: Some(plan.host_mac),
            mtu: cfg.mtu,
            master: Some(bridge.index),
            peer_name: req.cmd.ifname.clone(),
            peer_mac: Some(plan.container_mac),
            peer_ns: Some(&ns),
        })
        .map_err(|e| {
            if e.is_exists() {
                CniError::invalid_config(format!(
                    "host interface {} already exists: a previous ADD of this attachment was not deleted",
                    plan.host_veth
                ))
            } else {
                e.into()
            }
        })?;
        // From here on a failure removes the veth pair (and the lease, through its guard).
        let outcome = finish_add(req, &cfg, &plan, &host, &pod, &ns, echoed);
        match outcome {
            Ok(mut result) => {
                result.interfaces[0].mac = bridge.mac_string();
                if let Some(l) = lease {
                    l.keep();
                }
                Ok(result)
            }
            Err(e) => {
                if let Err(e2) = host.link_del_name(&plan.host_veth) {
                    log::warn!("rolling back {}: {e2}", plan.host_veth);
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
        // The host end is named after the attachment: found without the pod's namespace.
        let host_veth =
            names::host_ifname(plan::HOST_PREFIX, &req.cmd.container_id, &req.cmd.ifname);
        // The masquerade elements (by prevResult's addresses, else by tag) around the veth
        // deletion, so that their RCU grace periods overlap; IPAM DEL alongside, on a thread.
        let ips = req.prev_ips();
        let ((unmasked, deleted), released) = delegate::ipam_del_alongside(req, || {
            firewall::pod_del_around(
                cfg.ip_masq,
                &req.conf.name,
                ips.as_deref(),
                &Tag::of(req),
                || host.link_del_name(&host_veth),
            )
        });
        errors.note(unmasked);
        errors.note(deleted);
        errors.note(released);
        errors.finish()
    }

    fn check(&self, req: &Request) -> Result<(), CniError> {
        let cfg = Config::from_request(req)?;
        let prev = req.prev_result.as_ref().ok_or_else(|| {
            CniError::invalid_config("CHECK needs prevResult (the result of ADD)")
        })?;
        if req.conf.ipam_type().is_some() {
            delegate::ipam_check(req)?;
        }
        let ns = Netns::open_pod(req.netns()?)?;
        let k = Kernel::new()?;
        let host = k.connect(None)?;
        let pod = k.connect(Some(&ns))?;
        check_state(req, &cfg, prev, &host, &pod, &ns).map_err(CniError::check_failed)?;
        let addrs = prev.addresses_of(&req.cmd.ifname);
        let subnets: Vec<IpNet> = addrs.iter().map(|i| i.address.trunc()).collect();
        let ips: Vec<IpAddr> = addrs.iter().map(|i| i.address.addr()).collect();
        pod_firewall(req, &cfg, &subnets).check(&ips, &Tag::of(req))?;
        Ok(())
    }

    fn gc(&self, req: &Request) -> Result<(), CniError> {
        let cfg = Config::from_request(req)?;
        // Keep going after an error and report the first at the end (spec: GC).
        let mut errors = FirstError::default();
        if req.conf.ipam_type().is_some() {
            errors.note(delegate::ipam_gc(req));
        }
        if cfg.ip_masq {
            let gone = errors.note(firewall::pod_gc(
                &req.conf.name,
                req.conf.valid_attachments.as_deref(),
            ));
            if let Some(gone) = gone.filter(|g| !g.is_empty()) {
                log::info!("gc: removed masquerade state of {gone:?}");
            }
        }
        errors.finish()
    }

    fn status(&self, req: &Request) -> Result<(), CniError> {
        if req.conf.ipam_type().is_some() {
            delegate::ipam_status(req)?;
        }
        Ok(())
    }
}

/// What the firewall does for this network's pods.
fn pod_firewall(req: &Request, cfg: &Config, subnets: &[IpNet]) -> PodFirewall {
    PodFirewall {
        masq: cfg.ip_masq.then(|| MasqSpec {
            network: req.conf.name.clone(),
            non_masquerade: subnets
                .iter()
                .chain(&cfg.non_masquerade_cidrs)
                .copied()
                .collect(),
        }),
        antispoof_prefix: None,
    }
}

/// A random locally administered MAC for a new bridge, so it never adopts (and then
/// changes with) the lowest port MAC.
fn random_mac() -> Result<[u8; 6], CniError> {
    use std::io::Read;
    let mut m = [0u8; 6];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut m))
        .map_err(|e| CniError::internal(format!("reading /dev/urandom: {e}")))?;
    m[0] = (m[0] & 0xfe) | 0x02;
    Ok(m)
}

fn finish_add(
    req: &Request,
    cfg: &Config,
    plan: &Plan,
    host: &Rtnl<'_>,
    pod: &Rtnl<'_>,
    ns: &Netns,
    echoed: Option<Link>,
) -> Result<CniResult, CniError> {
    let hv = match echoed {
        Some(l) => l,
        None => host.link_required(&plan.host_veth)?,
    };
    if cfg.hairpin_mode {
        host.bridge_port_set_hairpin(hv.index, true)?;
    }
    if cfg.port_isolation {
        host.bridge_port_set_isolated(hv.index, true)?;
    }
    if let Some(vid) = cfg.vlan {
        host.bridge_vlan_add(hv.index, vid, true, false)?;
        if !cfg.preserve_default_vlan {
            host.bridge_vlan_del(hv.index, 1, false)?;
        }
    }
    let v6 = plan.addrs.iter().any(|a| a.addr().is_ipv6());
    if v6 {
        // B9: a host-side link must never configure itself from router advertisements.
        sysctl::ensure_if_present(&format!("net/ipv6/conf/{}/accept_ra", plan.host_veth), "0")?;
        sysctl::ensure_if_present(&format!("net/ipv6/conf/{}/accept_ra", cfg.bridge), "0")?;
    }
    if cfg.disable_container_interface {
        return Ok(plan.result.clone());
    }
    attach::configure(
        pod,
        ns,
        &PodInterface {
            ifname: plan.result.interfaces[CONTAINER_INDEX].name.clone(),
            addrs: plan.addrs.clone(),
            no_prefix_routes: false,
            neighbours: Vec::new(),
            routes: plan.routes.clone(),
            enable_dad: cfg.enable_dad,
        },
    )?;
    let ips: Vec<IpAddr> = plan.addrs.iter().map(|a| a.addr()).collect();
    pod_firewall(req, cfg, &plan.subnets).add(&ips, &Tag::of(req))?;
    Ok(plan.result.clone())
}

/// Puts the gateway addresses on the bridge. A different address of the same family already
/// there is an error unless `forceAddress`, which replaces it (reference B2 behaviour).
fn ensure_gateways(
    host: &Rtnl<'_>,
    bridge: &Link,
    gateways: &[IpNet],
    force: bool,
) -> Result<(), CniError> {
    let opts = ferro_net::rtnl::AddrOpts {
        nodad: true,
        noprefixroute: false,
    };
    for gw in gateways {
        // Steady state: the gateway is already there, one round trip and no dump.
        if !host.addr_add_new(bridge.index, *gw, opts)? {
            continue;
        }
        // It was new: any other address of the family on the bridge clashes with it.
        let clashing: Vec<IpNet> = host
            .addrs(Some(bridge.index))?
            .into_iter()
            .map(|a| a.addr)
            .filter(|a| {
                *a != *gw
                    && a.addr().is_ipv4() == gw.addr().is_ipv4()
                    && !is_link_local(a.addr())
                    && (gw.addr().is_ipv4() || a.contains(&gw.addr()) || gw.contains(&a.addr()))
            })
            .collect();
        if clashing.is_empty() {
            continue;
        }
        if !force {
            host.addr_del(bridge.index, *gw)?;
            return Err(CniError::invalid_config(format!(
                "{:?} already has an IP address different from {gw}: {} (set forceAddress to replace it)",
                bridge.name,
                clashing.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", ")
            )));
        }
        for old in clashing {
            host.addr_del(bridge.index, old)?;
        }
    }
    Ok(())
}

fn is_link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => a.is_link_local(),
        IpAddr::V6(a) => (a.segments()[0] & 0xffc0) == 0xfe80,
    }
}

/// CHECK: what ADD made must still be there (cni-reference §1.4 CHECK).
fn check_state(
    req: &Request,
    cfg: &Config,
    prev: &CniResult,
    host: &Rtnl<'_>,
    pod: &Rtnl<'_>,
    ns: &Netns,
) -> Result<(), String> {
    let e = |x: NetError| x.to_string();
    let br = host
        .link(&cfg.bridge)
        .map_err(e)?
        .ok_or_else(|| format!("bridge {} is missing", cfg.bridge))?;
    if br.kind.as_deref() != Some("bridge") {
        return Err(format!("{} is not a bridge", cfg.bridge));
    }
    if cfg.promisc_mode && !br.promisc {
        return Err(format!("bridge {} is not promiscuous", cfg.bridge));
    }
    let idx = prev
        .container_interface(&req.cmd.ifname)
        .ok_or_else(|| format!("prevResult has no container interface {}", req.cmd.ifname))?;
    let want = &prev.interfaces[idx];
    if want.sandbox.as_deref() != Some(&ns.path().display().to_string()) {
        return Err(format!(
            "interface {} of prevResult is in {:?}, not in CNI_NETNS",
            want.name, want.sandbox
        ));
    }
    let link = pod
        .link(&req.cmd.ifname)
        .map_err(e)?
        .ok_or_else(|| format!("container interface {} is missing", req.cmd.ifname))?;
    if let (Some(m), Some(have)) = (&want.mac, link.mac_string()) {
        if !m.eq_ignore_ascii_case(&have) {
            return Err(format!(
                "{} has MAC {have}, prevResult says {m}",
                req.cmd.ifname
            ));
        }
    }
    let host_veth = names::host_ifname(plan::HOST_PREFIX, &req.cmd.container_id, &req.cmd.ifname);
    let hv = host
        .link(&host_veth)
        .map_err(e)?
        .ok_or_else(|| format!("host interface {host_veth} is missing"))?;
    if hv.master != Some(br.index) {
        return Err(format!("{host_veth} is not a port of {}", cfg.bridge));
    }
    if cfg.hairpin_mode && hv.hairpin != Some(true) {
        return Err(format!("hairpin is off on {host_veth}"));
    }
    if cfg.disable_container_interface {
        return Ok(());
    }
    if !link.up {
        return Err(format!("{} is down", req.cmd.ifname));
    }
    let addrs = pod.addrs(Some(link.index)).map_err(e)?;
    for ip in prev.addresses_of(&req.cmd.ifname) {
        if !addrs.iter().any(|a| a.addr == ip.address) {
            return Err(format!(
                "address {} is missing from {}",
                ip.address, req.cmd.ifname
            ));
        }
    }
    for r in &prev.routes {
        let v6 = r.dst().addr().is_ipv6();
        let routes = pod.routes(v6, r.table).map_err(e)?;
        if !routes.iter().any(|x| {
            x.dst == r.dst().trunc()
                && x.oif == Some(link.index)
                && (r.gw.is_none() || x.gw == r.gw)
        }) {
            return Err(format!("route to {} is missing in the container", r.dst()));
        }
    }
    if cfg.is_gateway {
        let baddrs = host.addrs(Some(br.index)).map_err(e)?;
        for ip in prev.addresses_of(&req.cmd.ifname) {
            if let Some(gw) = ip.gateway {
                if !baddrs.iter().any(|a| a.addr.addr() == gw) {
                    return Err(format!(
                        "gateway {gw} is missing from bridge {}",
                        cfg.bridge
                    ));
                }
            }
        }
    }
    Ok(())
}
