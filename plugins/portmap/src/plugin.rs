//! The verbs of `portmap`. The kernel objects are the record of what was mapped: DEL finds
//! this attachment's chain and map elements by its tag, with or without `portMappings`.

use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use ferro_net::firewall::{self, HostPorts, Tag};
use ferro_net::nft::NftSocket;
use ferro_net::{conntrack, sysctl, Kernel};
use ferro_spec::{CniError, CniResult, Plugin, PortMapping, Protocol, Request};

use crate::config::Config;

/// The portmap plugin.
#[derive(Debug)]
pub struct Portmap;

/// The pod's first IPv4 and IPv6 address with their subnets, from `prevResult`.
/// A pod address with its subnet.
type Addressed<A, N> = Option<(A, N)>;

fn pod_addresses(
    prev: &CniResult,
    ifname: &str,
) -> (
    Addressed<std::net::Ipv4Addr, Ipv4Net>,
    Addressed<std::net::Ipv6Addr, Ipv6Net>,
) {
    let mut v4 = None;
    let mut v6 = None;
    for ip in prev.addresses_of(ifname) {
        match ip.address {
            IpNet::V4(n) if v4.is_none() => v4 = Some((n.addr(), n.trunc())),
            IpNet::V6(n) if v6.is_none() => v6 = Some((n.addr(), n.trunc())),
            _ => {}
        }
    }
    (v4, v6)
}

fn host_ports(
    req: &Request,
    cfg: &Config,
    prev: &CniResult,
    mappings: Vec<PortMapping>,
) -> HostPorts {
    let (pod_v4, pod_v6) = pod_addresses(prev, &req.cmd.ifname);
    HostPorts {
        tag: Tag::of(req),
        mappings,
        pod_v4,
        pod_v6,
        snat: cfg.snat,
        mark_bit: cfg.mark_masq_bit,
    }
}

fn udp_ports(mappings: &[PortMapping]) -> Vec<u16> {
    let mut v: Vec<u16> = mappings
        .iter()
        .filter(|m| m.protocol == Protocol::Udp)
        .map(|m| m.host_port)
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// `route_localnet=1` on the interface that routes to the pod, so `127.0.0.1:<hostPort>`
/// works (the DNATed packet keeps its 127.0.0.1 source until masquerade). Scoped to that
/// interface only: the bridge for kubenet, the pod's veth for flat and overlay.
fn enable_localnet(pod: std::net::Ipv4Addr) -> Result<(), CniError> {
    let k = Kernel::new()?;
    let host = k.connect(None)?;
    let Some(route) = host.route_get(IpAddr::V4(pod))? else {
        log::warn!("no route to {pod}: 127.0.0.1 host ports will not reach it");
        return Ok(());
    };
    if let Some(link) = route
        .oif
        .map(|i| host.link_by_index(i))
        .transpose()?
        .flatten()
    {
        sysctl::ensure(&format!("net/ipv4/conf/{}/route_localnet", link.name), "1")?;
    }
    Ok(())
}

impl Plugin for Portmap {
    fn name(&self) -> &'static str {
        "portmap"
    }

    fn add(&self, req: &Request) -> Result<CniResult, CniError> {
        let cfg = Config::from_request(req)?;
        let prev = req.prev_result.as_ref().ok_or_else(|| {
            CniError::invalid_config("portmap must be called as a chained plugin (no prevResult)")
        })?;
        let mappings = req.conf.runtime_config.port_mappings()?;
        if mappings.is_empty() {
            return Ok(prev.clone());
        }
        let hp = host_ports(req, &cfg, prev, mappings);
        if hp.pod_v4.is_none() && hp.pod_v6.is_none() {
            return Err(CniError::invalid_config(format!(
                "prevResult has no address for {}: nothing to map host ports to",
                req.cmd.ifname
            )));
        }
        let mut sock = NftSocket::open().map_err(|e| CniError::internal(e.to_string()))?;
        let replaced = firewall::hostports_add(&mut sock, &hp)?;
        for r in &replaced {
            log::warn!("host port taken over from another attachment (last wins): {r:?}");
        }
        if cfg.snat {
            if let Some((a, _)) = hp.pod_v4 {
                if hp
                    .mappings
                    .iter()
                    .any(|m| m.host_ip.is_none_or(|h| h.is_ipv4()))
                {
                    enable_localnet(a)?;
                }
            }
        }
        let udp = udp_ports(&hp.mappings);
        if !udp.is_empty() {
            conntrack::delete_udp_dport(&udp).map_err(|e| CniError::internal(e.to_string()))?;
        }
        Ok(prev.clone())
    }

    fn del(&self, req: &Request) -> Result<(), CniError> {
        Config::from_request(req)?;
        let mut sock = NftSocket::open().map_err(|e| CniError::internal(e.to_string()))?;
        let removed = firewall::hostports_del(&mut sock, &Tag::of(req))?;
        let mut udp: Vec<u16> = removed
            .iter()
            .filter(|m| m.protocol == Protocol::Udp.number())
            .map(|m| m.port)
            .collect();
        if let Ok(m) = req.conf.runtime_config.port_mappings() {
            udp.extend(udp_ports(&m));
        }
        udp.sort_unstable();
        udp.dedup();
        if !udp.is_empty() {
            conntrack::delete_udp_dport(&udp).map_err(|e| CniError::internal(e.to_string()))?;
        }
        Ok(())
    }

    fn check(&self, req: &Request) -> Result<(), CniError> {
        let cfg = Config::from_request(req)?;
        let prev = req.prev_result.as_ref().ok_or_else(|| {
            CniError::invalid_config("CHECK needs prevResult (the result of ADD)")
        })?;
        let mappings = req.conf.runtime_config.port_mappings()?;
        if mappings.is_empty() {
            return Ok(());
        }
        let mut sock = NftSocket::open().map_err(|e| CniError::internal(e.to_string()))?;
        firewall::hostports_check(&mut sock, &host_ports(req, &cfg, prev, mappings))?;
        Ok(())
    }

    fn gc(&self, req: &Request) -> Result<(), CniError> {
        let tags = firewall::valid_tags(&req.conf.name, req.conf.valid_attachments.as_deref());
        let mut sock = NftSocket::open().map_err(|e| CniError::internal(e.to_string()))?;
        let n = firewall::hostports_gc(&mut sock, &req.conf.name, firewall::valid_in(&tags))?;
        if n > 0 {
            log::info!("gc: removed the host ports of {n} stale attachments");
        }
        Ok(())
    }
}
