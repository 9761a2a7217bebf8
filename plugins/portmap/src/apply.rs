//! The kernel calls of `portmap`: one nftables transaction for the host ports,
//! `route_localnet` on the interface routing to the pod, conntrack flushes. The kernel
//! objects are the record of what was mapped: DEL finds this attachment's chain and map
//! elements by its tag, with or without `portMappings`, and the reference portmap's chain of
//! the attachment by its name (a node taken over from the reference plugins).

use std::net::{IpAddr, Ipv4Addr};

use ferro_net::firewall::{self, HostPorts, MappedPort, RefKind, Tag};
use ferro_net::nft::NftSocket;
use ferro_net::{conntrack, sysctl, Kernel};
use ferro_spec::{CniError, Request};

use crate::plan::Mapping;

fn socket() -> Result<NftSocket, CniError> {
    NftSocket::open().map_err(|e| CniError::internal(e.to_string()))
}

/// ADD: the host ports (last wins over another attachment's), `route_localnet`, the UDP
/// flush.
pub fn add(m: &Mapping) -> Result<(), CniError> {
    let replaced = firewall::hostports_add(&mut socket()?, &m.ports)?;
    for r in &replaced {
        log::warn!("host port taken over from another attachment (last wins): {r:?}");
    }
    if let Some(a) = m.localnet {
        enable_localnet(a)?;
    }
    flush_udp(&m.flush_udp)
}

/// DEL: removes this attachment's host ports, and the reference portmap's host-port chain
/// of the attachment on a node taken over from it; returns the map keys
/// removed, the reference's host ports included. Both are attempted; the first failure is
/// returned.
pub fn del(tag: &Tag) -> Result<Vec<MappedPort>, CniError> {
    let mut sock = socket()?;
    let ours = firewall::hostports_del(&mut sock, tag);
    let reference = firewall::reference_del(
        &mut sock,
        RefKind::HostPorts,
        &tag.network,
        &tag.container_id,
    );
    let mut removed = ours?;
    removed.extend(
        reference?
            .host_ports
            .into_iter()
            .map(|(protocol, port)| MappedPort {
                protocol,
                port,
                host_ip: None,
            }),
    );
    Ok(removed)
}

/// CHECK: the host ports are as ADD made them (code 103 naming what differs).
pub fn check(ports: &HostPorts) -> Result<(), CniError> {
    Ok(firewall::hostports_check(&mut socket()?, ports)?)
}

/// GC: removes the host ports of attachments the runtime no longer lists, and the reference
/// portmap's host-port chains of those attachments. Both are attempted; the first failure is
/// returned.
pub fn gc(req: &Request) -> Result<(), CniError> {
    let tags = firewall::valid_tags(&req.conf.name, req.conf.valid_attachments.as_deref());
    let mut sock = socket()?;
    let ours = firewall::hostports_gc(&mut sock, &req.conf.name, firewall::valid_in(&tags));
    let reference = firewall::reference_gc(
        &mut sock,
        RefKind::HostPorts,
        &req.conf.name,
        firewall::valid_ids(&tags),
    );
    let n = ours?;
    if n > 0 {
        log::info!("gc: removed the host ports of {n} stale attachments");
    }
    reference?;
    Ok(())
}

/// Deletes the conntrack entries of these UDP destination ports (none: nothing to do).
pub fn flush_udp(ports: &[u16]) -> Result<(), CniError> {
    if ports.is_empty() {
        return Ok(());
    }
    conntrack::delete_udp_dport(ports)
        .map(drop)
        .map_err(|e| CniError::internal(e.to_string()))
}

/// `route_localnet=1` on the interface that routes to the pod, so `127.0.0.1:<hostPort>`
/// works (the DNATed packet keeps its 127.0.0.1 source until masquerade). Scoped to that
/// interface only: the bridge for kubenet, the pod's veth for flat and overlay.
fn enable_localnet(pod: Ipv4Addr) -> Result<(), CniError> {
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
