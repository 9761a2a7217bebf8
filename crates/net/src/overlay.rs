//! The overlay network's node-side state: one VXLAN device per node and, per remote node,
//! exactly one neighbour entry, one FDB entry and one on-link route to its pod slice, in
//! flannel's vxlan-backend layout (datapath-anchors.md §3.1):
//!
//! ```text
//! ip neigh replace 10.244.2.0 lladdr <vtep mac B> dev ferro.1 nud permanent
//! bridge fdb replace <vtep mac B> dev ferro.1 dst 10.240.0.5 self permanent
//! ip route replace 10.244.2.0/24 via 10.244.2.0 dev ferro.1 onlink
//! ```
//!
//! The nodes come from a [`PeerSource`]; [`FileSource`] reads a node list that the operator
//! or a configuration tool writes. [`reconcile`] diffs the kernel state against it and
//! changes only what differs (add order: neighbour, FDB, route; removal in reverse).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::Deserialize;

use crate::error::NetError;
use crate::names;
use crate::rtnl::{AddrOpts, FdbEntry, Link, NeighSpec, RouteSpec, Rtnl, VxlanSpec};

/// One node of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLease {
    /// Node name.
    pub name: String,
    /// Underlay (VNet) address: where its VXLAN packets go.
    pub address: IpAddr,
    /// Its slice of the pod CIDR.
    pub pod_subnet: IpNet,
    /// Its VTEP MAC, when the list knows it.
    pub vtep_mac: Option<[u8; 6]>,
}

impl NodeLease {
    /// The VTEP MAC: the listed one, else one derived from the node's underlay address, so
    /// every node computes the same MAC for it without exchanging anything.
    pub fn mac(&self) -> [u8; 6] {
        self.vtep_mac.unwrap_or_else(|| vtep_mac_for(self.address))
    }
}

/// The derived VTEP MAC of the node whose underlay address is `address`.
pub fn vtep_mac_for(address: IpAddr) -> [u8; 6] {
    names::mac(&["vtep", &address.to_string()])
}

/// Where the node leases come from. The file source is the first; node leases in etcd are
/// the next (the trait is all the overlay plugin and `cnictl overlay sync` depend on).
pub trait PeerSource {
    /// Every node of the cluster, this one included.
    fn leases(&self) -> Result<Vec<NodeLease>, NetError>;
    /// For messages (`file /etc/ferro-cni/nodes.json`).
    fn describe(&self) -> String;
}

/// A JSON node list: `{"nodes": [{"name", "address", "podSubnet", "vtepMAC"?}]}`.
#[derive(Debug, Clone)]
pub struct FileSource {
    path: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawList {
    nodes: Vec<RawNode>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawNode {
    name: String,
    address: IpAddr,
    pod_subnet: IpNet,
    #[serde(default, rename = "vtepMAC")]
    vtep_mac: Option<String>,
}

impl FileSource {
    /// A source reading `path` on every call.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileSource { path: path.into() }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Parses node list text (the file format), validating it.
    pub fn parse(text: &str, origin: &str) -> Result<Vec<NodeLease>, NetError> {
        let raw: RawList = serde_json::from_str(text)
            .map_err(|e| NetError::Other(format!("node list {origin}: {e}")))?;
        let mut out: Vec<NodeLease> = Vec::new();
        for (i, n) in raw.nodes.into_iter().enumerate() {
            let at = format!("node list {origin}: nodes[{i}] ({})", n.name);
            if n.pod_subnet != n.pod_subnet.trunc() {
                return Err(NetError::Other(format!(
                    "{at}: podSubnet {} has host bits set",
                    n.pod_subnet
                )));
            }
            let vtep_mac = match n.vtep_mac.as_deref() {
                None => None,
                Some(s) => Some(
                    names::parse_mac(s)
                        .ok_or_else(|| NetError::Other(format!("{at}: invalid vtepMAC {s:?}")))?,
                ),
            };
            if let Some(dup) = out.iter().find(|o| {
                o.name == n.name || o.address == n.address || o.pod_subnet == n.pod_subnet
            }) {
                return Err(NetError::Other(format!(
                    "{at}: duplicates the name, address or podSubnet of {}",
                    dup.name
                )));
            }
            if let Some(o) = out.iter().find(|o| {
                o.pod_subnet.contains(&n.pod_subnet.network())
                    || n.pod_subnet.contains(&o.pod_subnet.network())
            }) {
                return Err(NetError::Other(format!(
                    "{at}: podSubnet {} overlaps {} of {}",
                    n.pod_subnet, o.pod_subnet, o.name
                )));
            }
            out.push(NodeLease {
                name: n.name,
                address: n.address,
                pod_subnet: n.pod_subnet,
                vtep_mac,
            });
        }
        Ok(out)
    }
}

impl PeerSource for FileSource {
    fn leases(&self) -> Result<Vec<NodeLease>, NetError> {
        let text = std::fs::read_to_string(&self.path)
            .map_err(|e| NetError::io(format!("read node list {}", self.path.display()), e))?;
        FileSource::parse(&text, &self.path.display().to_string())
    }

    fn describe(&self) -> String {
        format!("file {}", self.path.display())
    }
}

/// A remote node as the kernel needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Its pod slice.
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

/// Which leases are this node: by name when given, else by pod slice, else by underlay
/// address.
pub fn split_self(
    leases: Vec<NodeLease>,
    node_name: Option<&str>,
    own_subnet: Option<IpNet>,
    own_address: Option<IpAddr>,
) -> (Option<NodeLease>, Vec<NodeLease>) {
    let is_self = |l: &NodeLease| match (node_name, own_subnet) {
        (Some(n), _) => l.name == n,
        (None, Some(s)) => l.pod_subnet == s,
        (None, None) => Some(l.address) == own_address,
    };
    let mut me = None;
    let mut others = Vec::new();
    for l in leases {
        if me.is_none() && is_self(&l) {
            me = Some(l);
        } else {
            others.push(l);
        }
    }
    (me, others)
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
    /// This node's pod slice (its network address goes on the device as /32).
    pub slice: IpNet,
}

/// The default device name for a VNI.
pub fn device_name(vni: u32) -> String {
    format!("ferro.{vni}")
}

/// Creates the device if missing (race-free), learning off, with the slice's network
/// address as /32 (so no broadcast route is created). Never torn down by a pod's DEL.
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
    let own = IpNet::new(
        d.slice.network(),
        if d.slice.network().is_ipv4() { 32 } else { 128 },
    )
    .map_err(|e| NetError::Other(e.to_string()))?;
    host.addr_add(
        link.index,
        own,
        AddrOpts {
            nodad: true,
            noprefixroute: false,
        },
    )?;
    Ok(link)
}

/// What [`reconcile`] changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Peers added.
    pub added: Vec<IpNet>,
    /// Peers whose address or MAC changed.
    pub updated: Vec<IpNet>,
    /// Peers removed.
    pub removed: Vec<IpNet>,
    /// Peers already correct.
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
        let mut r = host.routes(false, None)?;
        r.extend(host.routes(true, None)?);
        r.into_iter().filter(|r| r.oif == Some(dev.index)).collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &str = r#"{"nodes": [
        {"name": "a", "address": "10.240.0.4", "podSubnet": "10.244.1.0/24"},
        {"name": "b", "address": "10.240.0.5", "podSubnet": "10.244.2.0/24", "vtepMAC": "02:00:00:00:00:0b"}
    ]}"#;

    #[test]
    fn parses_a_node_list() {
        let l = FileSource::parse(LIST, "t").unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(l[1].mac(), [2, 0, 0, 0, 0, 0x0b]);
        assert_eq!(l[0].mac(), vtep_mac_for("10.240.0.4".parse().unwrap()));
        assert_eq!(l[0].mac()[0] & 3, 2, "local unicast");
    }

    #[test]
    fn rejects_bad_lists_naming_the_node() {
        for (text, needle) in [
            (
                r#"{"nodes":[{"name":"a","address":"10.240.0.4","podSubnet":"10.244.1.1/24"}]}"#,
                "host bits",
            ),
            (
                r#"{"nodes":[{"name":"a","address":"10.240.0.4","podSubnet":"10.244.1.0/24","vtepMAC":"zz"}]}"#,
                "vtepMAC",
            ),
            (
                r#"{"nodes":[{"name":"a","address":"10.240.0.4","podSubnet":"10.244.1.0/24"},{"name":"a","address":"10.240.0.5","podSubnet":"10.244.2.0/24"}]}"#,
                "duplicates",
            ),
            (
                r#"{"nodes":[{"name":"a","address":"10.240.0.4","podSubnet":"10.244.0.0/16"},{"name":"b","address":"10.240.0.5","podSubnet":"10.244.2.0/24"}]}"#,
                "overlaps",
            ),
            (
                r#"{"nodes":[{"name":"a","address":"10.240.0.4","podSubnet":"10.244.1.0/24","extra":1}]}"#,
                "extra",
            ),
            (
                r#"{"nodes":[{"name":"a","address":"x","podSubnet":"10.244.1.0/24"}]}"#,
                "node list t",
            ),
        ] {
            let e = FileSource::parse(text, "t").unwrap_err().to_string();
            assert!(e.contains(needle), "{e} does not mention {needle}");
        }
    }

    #[test]
    fn finds_itself_by_name_slice_or_address() {
        let l = FileSource::parse(LIST, "t").unwrap();
        let (me, others) = split_self(l.clone(), Some("b"), None, None);
        assert_eq!(me.unwrap().name, "b");
        assert_eq!(others.len(), 1);
        let (me, _) = split_self(
            l.clone(),
            None,
            Some("10.244.1.0/24".parse().unwrap()),
            None,
        );
        assert_eq!(me.unwrap().name, "a");
        let (me, others) = split_self(l, None, None, Some("10.240.0.9".parse().unwrap()));
        assert!(me.is_none());
        assert_eq!(others.len(), 2);
    }
}
