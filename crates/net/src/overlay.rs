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

use ferro_spec::CniError;

use crate::error::NetError;
use crate::names;
use crate::rtnl::{AddrOpts, FdbEntry, Link, NeighSpec, RouteSpec, Rtnl, VxlanSpec};

/// VXLAN header and outer headers over an IPv4 underlay.
pub const VXLAN_OVERHEAD: u32 = 50;

/// The node-level keys of an `overlay` plugin object, shared by the plugin and
/// `cnictl overlay sync` so both compute the same view of the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    /// The cluster pod CIDR (every node's slice is inside it).
    pub pod_cidr: IpNet,
    /// This node's slice, when given directly.
    pub node_subnet: Option<IpNet>,
    /// This node's name in the node list, to look its slice up.
    pub node_name: Option<String>,
    /// VXLAN network identifier.
    pub vni: u32,
    /// VXLAN UDP port.
    pub port: u16,
    /// The underlay interface; `None`: the default route's.
    pub underlay: Option<String>,
    /// Pod MTU; `None`: underlay MTU − 50.
    pub mtu: Option<u32>,
    /// The node list file (the peer source).
    pub node_list: PathBuf,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawNodeConfig {
    #[serde(default, rename = "podCIDR")]
    pod_cidr: Option<IpNet>,
    #[serde(default)]
    node_subnet: Option<IpNet>,
    #[serde(default)]
    node_name: Option<String>,
    #[serde(default)]
    vni: Option<u32>,
    #[serde(default)]
    port: Option<u16>,
    #[serde(default)]
    underlay: Option<String>,
    #[serde(default)]
    mtu: Option<u32>,
    #[serde(default)]
    node_list: Option<PathBuf>,
}

impl NodeConfig {
    /// Reads and validates the node-level keys of an `overlay` plugin object (code 6 for a
    /// wrong type, 7 for a bad value, naming the key).
    pub fn from_value(v: &serde_json::Value) -> Result<NodeConfig, CniError> {
        let raw: RawNodeConfig = ferro_spec::conf::parse_section(v, "")?;
        let pod_cidr = raw.pod_cidr.ok_or_else(|| {
            CniError::invalid_config("podCIDR: required (the cluster pod CIDR, e.g. 10.244.0.0/16)")
        })?;
        if pod_cidr != pod_cidr.trunc() {
            return Err(CniError::invalid_config(format!(
                "podCIDR: {pod_cidr} has host bits set"
            )));
        }
        if let Some(s) = raw.node_subnet {
            if s != s.trunc() {
                return Err(CniError::invalid_config(format!(
                    "nodeSubnet: {s} has host bits set"
                )));
            }
            if !pod_cidr.contains(&s) {
                return Err(CniError::invalid_config(format!(
                    "nodeSubnet: {s} is not inside podCIDR {pod_cidr}"
                )));
            }
        }
        if raw.node_subnet.is_none() && raw.node_name.is_none() {
            return Err(CniError::invalid_config(
                "nodeSubnet or nodeName: one is required to know this node's slice",
            ));
        }
        let vni = raw.vni.unwrap_or(1);
        if !(1..=0xff_ffff).contains(&vni) {
            return Err(CniError::invalid_config(format!(
                "vni: {vni} is out of range 1-16777215"
            )));
        }
        let port = raw.port.unwrap_or(8472);
        if port == 0 {
            return Err(CniError::invalid_config("port: 0 is not a UDP port"));
        }
        if let Some(u) = &raw.underlay {
            ferro_spec::env::validate_ifname(u)
                .map_err(|e| CniError::invalid_config(format!("underlay: {e}")))?;
        }
        let mtu = ferro_spec::conf::mtu(raw.mtu, "mtu")?;
        let node_list = raw.node_list.ok_or_else(|| {
            CniError::invalid_config("nodeList: required (the file listing the cluster's nodes)")
        })?;
        Ok(NodeConfig {
            pod_cidr,
            node_subnet: raw.node_subnet,
            node_name: raw.node_name,
            vni,
            port,
            underlay: raw.underlay,
            mtu,
            node_list,
        })
    }
}

/// This node as the overlay sees it.
#[derive(Debug, Clone)]
pub struct NodeView {
    /// This node's slice.
    pub slice: IpNet,
    /// The other nodes.
    pub peers: Vec<Peer>,
    /// The VXLAN device to ensure.
    pub device: Device,
    /// Pod MTU.
    pub mtu: u32,
}

/// Works out this node's slice, VXLAN device and peers from the config, the kernel (underlay
/// interface and address) and the node list. Config and node-list problems are code 7.
pub fn view(
    cfg: &NodeConfig,
    host: &Rtnl<'_>,
    source: &dyn PeerSource,
) -> Result<NodeView, CniError> {
    let underlay = match &cfg.underlay {
        Some(n) => host.link(n)?.ok_or_else(|| {
            CniError::invalid_config(format!(
                "underlay: interface {n:?} does not exist on the node"
            ))
        })?,
        None => host.default_route_link()?.ok_or_else(|| {
            CniError::invalid_config(
                "underlay: not set and the node has no default route to take it from",
            )
        })?,
    };
    let local = host
        .addrs(Some(underlay.index))?
        .into_iter()
        .map(|a| a.addr.addr())
        .find(|a| a.is_ipv4())
        .ok_or_else(|| {
            CniError::invalid_config(format!("underlay {} has no IPv4 address", underlay.name))
        })?;
    let leases = source
        .leases()
        .map_err(|e| CniError::invalid_config(format!("nodeList: {e}")))?;
    let (me, others) = split_self(
        leases,
        cfg.node_name.as_deref(),
        cfg.node_subnet,
        Some(local),
    );
    let slice = match (cfg.node_subnet, &me) {
        (Some(s), Some(m)) if m.pod_subnet != s => {
            return Err(CniError::invalid_config(format!(
                "nodeSubnet {s} differs from {} listed for node {} in {}",
                m.pod_subnet,
                m.name,
                source.describe()
            )))
        }
        (Some(s), _) => s,
        (None, Some(m)) => m.pod_subnet,
        (None, None) => {
            return Err(CniError::invalid_config(format!(
                "nodeName {:?} is not in {}",
                cfg.node_name.as_deref().unwrap_or_default(),
                source.describe()
            )))
        }
    };
    if !cfg.pod_cidr.contains(&slice) {
        return Err(CniError::invalid_config(format!(
            "this node's slice {slice} is not inside podCIDR {}",
            cfg.pod_cidr
        )));
    }
    let peers: Vec<Peer> = others
        .iter()
        .filter(|l| {
            let inside = cfg.pod_cidr.contains(&l.pod_subnet);
            if !inside {
                log::warn!(
                    "node {} slice {} is outside podCIDR {}: ignored",
                    l.name,
                    l.pod_subnet,
                    cfg.pod_cidr
                );
            }
            inside
        })
        .map(|l| Peer {
            subnet: l.pod_subnet,
            mac: l.mac(),
            underlay: l.address,
        })
        .collect();
    let mtu = cfg
        .mtu
        .unwrap_or(underlay.mtu.saturating_sub(VXLAN_OVERHEAD));
    let mac = me
        .as_ref()
        .map_or_else(|| vtep_mac_for(local), NodeLease::mac);
    Ok(NodeView {
        device: Device {
            name: device_name(cfg.vni),
            vni: cfg.vni,
            port: cfg.port,
            underlay: underlay.index,
            local,
            mtu,
            mac,
            slice,
        },
        slice,
        peers,
        mtu,
    })
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node_cfg(extra: serde_json::Value) -> Result<NodeConfig, CniError> {
        let mut conf = json!({"podCIDR": "10.244.0.0/16", "nodeSubnet": "10.244.1.0/24", "nodeList": "/etc/ferro-cni/nodes.json"});
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                conf.as_object_mut().unwrap().remove(k);
            } else {
                conf[k] = v.clone();
            }
        }
        NodeConfig::from_value(&conf)
    }

    #[test]
    fn node_config_defaults_follow_flannel() {
        let c = node_cfg(json!({})).unwrap();
        assert_eq!((c.vni, c.port, c.mtu), (1, 8472, None));
    }

    #[test]
    fn node_config_errors_name_the_key() {
        for (extra, key) in [
            (json!({"podCIDR": null}), "podCIDR"),
            (json!({"podCIDR": "10.244.0.1/16"}), "podCIDR"),
            (json!({"nodeSubnet": "10.245.1.0/24"}), "nodeSubnet"),
            (json!({"nodeSubnet": null}), "nodeName"),
            (json!({"vni": 0}), "vni"),
            (json!({"vni": 16777216}), "vni"),
            (json!({"port": 0}), "port"),
            (json!({"mtu": 40}), "mtu"),
            (json!({"nodeList": null}), "nodeList"),
            (json!({"underlay": "a:b"}), "underlay"),
            (json!({"vni": "x"}), "vni"),
        ] {
            let e = node_cfg(extra.clone()).unwrap_err();
            assert!(e.msg.contains(key), "{extra}: {}", e.msg);
        }
    }

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
