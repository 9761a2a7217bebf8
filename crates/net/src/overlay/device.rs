//! The VXLAN device of a node and, per remote node, its FDB entry and, per family, its
//! neighbour entry and on-link route; [`reconcile`] diffs them against the peers.

use std::net::IpAddr;

use ipnet::IpNet;

use super::family::FamilyNets;
use crate::error::NetError;
use crate::rtnl::{AddrOpts, FdbEntry, Link, NeighSpec, RouteSpec, Rtnl, VxlanSpec};

/// One slice of a remote node as the kernel needs it (a dual-stack node is two peers, one
/// per family, sharing the MAC and underlay address, hence one FDB entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// The slice.
    pub subnet: IpNet,
    /// Its VTEP MAC.
    pub mac: [u8; 6],
    /// Its underlay address.
    pub underlay: IpAddr,
}

impl Peer {
    fn gateway(&self) -> IpAddr {
        self.subnet.network()
    }

    fn route(&self, dev: u32) -> RouteSpec {
        let mut r = RouteSpec::new(self.subnet, Some(self.gateway()), Some(dev));
        r.onlink = true;
        r
    }
}

/// The VXLAN device of a node.
#[derive(Debug, Clone)]
pub struct Device {
    /// Name (`ferro.<vni>`).
    pub name: String,
    /// VNI.
    pub vni: u32,
    /// UDP port.
    pub port: u16,
    /// Underlay link.
    pub underlay: u32,
    /// Underlay source address.
    pub local: IpAddr,
    /// MTU.
    pub mtu: u32,
    /// This node's VTEP MAC.
    pub mac: [u8; 6],
    /// This node's slices (the network address of each goes on the device as /32 or
    /// /128). None under a shared pool: every address of a pooled block may be a pod's, so
    /// none of them may be local to the node.
    pub slices: FamilyNets,
}

/// The default device name for a VNI.
pub fn device_name(vni: u32) -> String {
    format!("ferro.{vni}")
}

/// Creates the device if missing (race-free), learning off, over the underlay of either
/// family (`local` says which), with each slice's network address as /32 (IPv4, so no
/// broadcast route is created) or /128 (IPv6). Never torn down by a pod's DEL.
pub fn ensure_device(host: &Rtnl<'_>, d: &Device) -> Result<Link, NetError> {
    let link = host.vxlan_ensure(&VxlanSpec {
        name: d.name.clone(),
        vni: d.vni,
        port: d.port,
        local: Some(d.local),
        dev: Some(d.underlay),
        mtu: Some(d.mtu),
        mac: Some(d.mac),
    })?;
    for slice in d.slices.iter() {
        host.addr_add(
            link.index,
            IpNet::from(slice.network()),
            AddrOpts {
                nodad: true,
                noprefixroute: false,
            },
        )?;
    }
    Ok(link)
}

/// What [`reconcile`] changed, by slice.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Slices added.
    pub added: Vec<IpNet>,
    /// Slices whose node's address or MAC changed.
    pub updated: Vec<IpNet>,
    /// Slices removed.
    pub removed: Vec<IpNet>,
    /// Slices already correct.
    pub unchanged: usize,
}

impl SyncReport {
    /// True when nothing was changed.
    pub fn is_noop(&self) -> bool {
        self.added.is_empty() && self.updated.is_empty() && self.removed.is_empty()
    }
}

/// Brings the device's neighbour, FDB and route entries in line with `peers`.
///
/// With `verify_routes` false (the per-ADD fast path) routes are only dumped when the
/// neighbour/FDB diff finds a change; with it true (`cnictl overlay sync`, CHECK) they are
/// always compared. With `dry_run`, nothing is changed and the report says what would be.
pub fn reconcile(
    host: &Rtnl<'_>,
    dev: &Link,
    peers: &[Peer],
    verify_routes: bool,
    dry_run: bool,
) -> Result<SyncReport, NetError> {
    let neighs: Vec<NeighSpec> = host.neighs(dev.index, false)?;
    let fdbs: Vec<FdbEntry> = host.fdbs(dev.index)?;
    let mut report = SyncReport::default();
    let neigh_ok = |p: &Peer| {
        neighs
            .iter()
            .any(|n| n.ip == p.gateway() && n.mac == Some(p.mac))
    };
    let fdb_ok = |p: &Peer| fdbs.iter().any(|f| f.mac == p.mac && f.dst == p.underlay);
    let stale_neighs: Vec<&NeighSpec> = neighs
        .iter()
        .filter(|n| {
            !peers
                .iter()
                .any(|p| p.gateway() == n.ip && Some(p.mac) == n.mac)
        })
        .collect();
    let stale_fdbs: Vec<&FdbEntry> = fdbs
        .iter()
        .filter(|f| !peers.iter().any(|p| p.mac == f.mac && p.underlay == f.dst))
        .collect();
    let l2_clean = stale_neighs.is_empty()
        && stale_fdbs.is_empty()
        && peers.iter().all(|p| neigh_ok(p) && fdb_ok(p));
    let check_routes = verify_routes || !l2_clean;
    let routes: Vec<RouteSpec> = if check_routes {
        let mut r = host.routes_on(false, None, Some(dev.index))?;
        r.extend(host.routes_on(true, None, Some(dev.index))?);
        r
    } else {
        Vec::new()
    };
    let route_ok = |p: &Peer| {
        !check_routes
            || routes
                .iter()
                .any(|r| r.dst == p.subnet && r.gw == Some(p.gateway()) && r.onlink)
    };

    // Removals first, route before neighbour and FDB (stop using a path before tearing it down).
    for r in routes
        .iter()
        .filter(|r| r.gw.is_some() && !peers.iter().any(|p| p.subnet == r.dst))
    {
        if !dry_run {
            host.route_del(r)?;
        }
        report.removed.push(r.dst);
    }
    for n in &stale_neighs {
        if !dry_run {
            host.neigh_del(n)?;
        }
        if !peers.iter().any(|p| p.gateway() == n.ip) && !routes.iter().any(|r| r.gw == Some(n.ip))
        {
            let net = IpNet::from(n.ip);
            if !report.removed.iter().any(|x| x.network() == n.ip) {
                report.removed.push(net);
            }
        }
    }
    for f in &stale_fdbs {
        if !dry_run {
            host.fdb_del(f)?;
        }
    }
    for p in peers {
        let (n_ok, f_ok, r_ok) = (neigh_ok(p), fdb_ok(p), route_ok(p));
        if n_ok && f_ok && r_ok {
            report.unchanged += 1;
            continue;
        }
        let known =
            neighs.iter().any(|n| n.ip == p.gateway()) || routes.iter().any(|r| r.dst == p.subnet);
        if !dry_run {
            if !n_ok {
                host.neigh_replace(&NeighSpec {
                    ifindex: dev.index,
                    ip: p.gateway(),
                    mac: Some(p.mac),
                    proxy: false,
                })?;
            }
            if !f_ok {
                host.fdb_replace(&FdbEntry {
                    ifindex: dev.index,
                    mac: p.mac,
                    dst: p.underlay,
                })?;
            }
            if !r_ok || !n_ok {
                host.route_add(&p.route(dev.index), true)?;
            }
        }
        if known {
            report.updated.push(p.subnet);
        } else {
            report.added.push(p.subnet);
        }
    }
    Ok(report)
}
