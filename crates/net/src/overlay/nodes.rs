//! The cluster's nodes as the overlay needs them ([`NodeLease`]), where they come from
//! ([`PeerSource`]) and the first source, a JSON node list ([`FileSource`]).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::Deserialize;

use super::config::one_per_family;
use super::family::{family_name, FamilyNets};
use crate::error::NetError;
use crate::names;

/// One node of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLease {
    /// Node name.
    pub name: String,
    /// Underlay (VNet) address: where its VXLAN packets go. Every node of a list has one of
    /// the same family, IPv4 or IPv6.
    pub address: IpAddr,
    /// Its slices of the pod CIDRs, at most one per family.
    pub pod_subnets: FamilyNets,
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

/// Where the node leases come from. The file source is the first; the cluster's node leases
/// are the next (the trait is all the overlay plugin and `cnictl overlay sync` depend on).
pub trait PeerSource {
    /// Every node of the cluster, this one included.
    fn leases(&self) -> Result<Vec<NodeLease>, NetError>;
    /// For messages (`file /etc/ferro-cni/nodes.json`).
    fn describe(&self) -> String;
}

/// The family every lease's address has (`Some(true)`: IPv6), `None` for no lease; an
/// error naming the first node whose address is of the other family.
pub fn underlay_family(leases: &[NodeLease]) -> Result<Option<bool>, String> {
    let Some(first) = leases.first() else {
        return Ok(None);
    };
    let v6 = first.address.is_ipv6();
    match leases.iter().find(|l| l.address.is_ipv6() != v6) {
        Some(l) => Err(format!(
            "node {}: address {} is {}, but node {} has an {} address: every node of a list \
             uses one family",
            l.name,
            l.address,
            family_name(!v6),
            first.name,
            family_name(v6)
        )),
        None => Ok(Some(v6)),
    }
}

/// A JSON node list: `{"nodes": [{"name", "address", "podSubnet" or "podSubnets",
/// "vtepMAC"?}]}`.
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
    #[serde(default)]
    pod_subnet: Option<IpNet>,
    #[serde(default)]
    pod_subnets: Option<Vec<IpNet>>,
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

    /// Parses node list text (the file format), validating it: names and addresses unique,
    /// addresses of one family, slices (one per family) neither repeated nor overlapping.
    pub fn parse(text: &str, origin: &str) -> Result<Vec<NodeLease>, NetError> {
        let raw: RawList = serde_json::from_str(text)
            .map_err(|e| NetError::Other(format!("node list {origin}: {e}")))?;
        let mut out: Vec<NodeLease> = Vec::new();
        for (i, n) in raw.nodes.into_iter().enumerate() {
            let at = format!("node list {origin}: nodes[{i}] ({})", n.name);
            let bad = |msg: String| NetError::Other(format!("{at}: {msg}"));
            let pod_subnets = one_per_family(
                n.pod_subnet,
                n.pod_subnets.as_deref(),
                "podSubnet",
                "podSubnets",
            )
            .map_err(bad)?
            .ok_or_else(|| {
                bad("podSubnet or podSubnets: required (its slice of each pod CIDR)".into())
            })?;
            let vtep_mac = match n.vtep_mac.as_deref() {
                None => None,
                Some(s) => {
                    Some(names::parse_mac(s).ok_or_else(|| bad(format!("invalid vtepMAC {s:?}")))?)
                }
            };
            if let Some(dup) = out
                .iter()
                .find(|o| o.name == n.name || o.address == n.address)
            {
                return Err(bad(format!(
                    "duplicates the name or address of {}",
                    dup.name
                )));
            }
            for o in &out {
                if let Some((mine, theirs)) = pod_subnets.overlap(&o.pod_subnets) {
                    let what = if mine == theirs {
                        "repeats"
                    } else {
                        "overlaps"
                    };
                    return Err(bad(format!(
                        "podSubnet {mine} {what} {theirs} of {}",
                        o.name
                    )));
                }
            }
            out.push(NodeLease {
                name: n.name,
                address: n.address,
                pod_subnets,
                vtep_mac,
            });
        }
        underlay_family(&out).map_err(|e| NetError::Other(format!("node list {origin}: {e}")))?;
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

/// Which leases are this node: by name when given, else by a slice it shares with
/// `own_subnets`, else by underlay address.
pub fn split_self(
    leases: Vec<NodeLease>,
    node_name: Option<&str>,
    own_subnets: Option<&FamilyNets>,
    own_address: Option<IpAddr>,
) -> (Option<NodeLease>, Vec<NodeLease>) {
    let is_self = |l: &NodeLease| match (node_name, own_subnets) {
        (Some(n), _) => l.name == n,
        (None, Some(s)) => s.iter().any(|x| l.pod_subnets.of(x.addr()) == Some(x)),
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

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &str = r#"{"nodes": [
        {"name": "a", "address": "10.240.0.4", "podSubnet": "10.244.1.0/24"},
        {"name": "b", "address": "10.240.0.5", "podSubnet": "10.244.2.0/24", "vtepMAC": "02:00:00:00:00:0b"}
    ]}"#;

    const DUAL: &str = r#"{"nodes": [
        {"name": "a", "address": "fd00:240::4", "podSubnets": ["10.244.1.0/24", "fd00:10:244:1::/64"]},
        {"name": "b", "address": "fd00:240::5", "podSubnets": ["fd00:10:244:2::/64", "10.244.2.0/24"]}
    ]}"#;

    #[test]
    fn parses_a_node_list() {
        let l = FileSource::parse(LIST, "t").unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(l[1].mac(), [2, 0, 0, 0, 0, 0x0b]);
        assert_eq!(l[0].mac(), vtep_mac_for("10.240.0.4".parse().unwrap()));
        assert_eq!(l[0].mac()[0] & 3, 2, "local unicast");
        assert_eq!(underlay_family(&l), Ok(Some(false)));
    }

    #[test]
    fn parses_a_dual_stack_list_over_ipv6() {
        let l = FileSource::parse(DUAL, "t").unwrap();
        assert_eq!(
            l[1].pod_subnets.to_string(),
            "10.244.2.0/24, fd00:10:244:2::/64"
        );
        assert_eq!(underlay_family(&l), Ok(Some(true)));
        assert_eq!(underlay_family(&[]), Ok(None));
    }

    #[test]
    fn rejects_bad_lists_naming_the_node() {
        for (text, needle) in [
            (
                r#"{"nodes":[{"name":"a","address":"10.240.0.4","podSubnet":"10.244.1.1/24"}]}"#,
                "nodes[0] (a): podSubnet: 10.244.1.1/24 has host bits set",
            ),
            (
                r#"{"nodes":[{"name":"a","address":"10.240.0.4","podSubnet":"10.244.1.0/24","vtepMAC":"zz"}]}"#,
                "vtepMAC",
            ),
            (
                r#"{"nodes":[{"name":"a","address":"10.240.0.4","podSubnet":"10.244.1.0/24"},{"name":"a","address":"10.240.0.5","podSubnet":"10.244.2.0/24"}]}"#,
                "nodes[1] (a): duplicates the name or address of a",
            ),
            (
                r#"{"nodes":[{"name":"a","address":"10.240.0.4","podSubnet":"10.244.0.0/16"},{"name":"b","address":"10.240.0.5","podSubnet":"10.244.2.0/24"}]}"#,
                "nodes[1] (b): podSubnet 10.244.2.0/24 overlaps 10.244.0.0/16 of a",
            ),
            (
                r#"{"nodes":[{"name":"a","address":"10.240.0.4","podSubnets":["10.244.1.0/24","fd00:10:244:1::/64"]},{"name":"b","address":"10.240.0.5","podSubnets":["10.244.2.0/24","fd00:10:244:1::/64"]}]}"#,
                "nodes[1] (b): podSubnet fd00:10:244:1::/64 repeats fd00:10:244:1::/64 of a",
            ),
            (
                r#"{"nodes":[{"name":"a","address":"10.240.0.4","podSubnet":"10.244.1.0/24","extra":1}]}"#,
                "extra",
            ),
            (
                r#"{"nodes":[{"name":"a","address":"x","podSubnet":"10.244.1.0/24"}]}"#,
                "node list t",
            ),
            (
                r#"{"nodes":[{"name":"a","address":"10.240.0.4"}]}"#,
                "nodes[0] (a): podSubnet or podSubnets: required",
            ),
            (
                r#"{"nodes":[{"name":"a","address":"10.240.0.4","podSubnet":"10.244.1.0/24","podSubnets":["10.244.1.0/24"]}]}"#,
                "nodes[0] (a): podSubnet and podSubnets: give one of them",
            ),
            (
                r#"{"nodes":[{"name":"a","address":"10.240.0.4","podSubnets":["10.244.1.0/24","10.244.9.0/24"]}]}"#,
                "nodes[0] (a): podSubnets: two IPv4 CIDRs",
            ),
            (
                r#"{"nodes":[{"name":"a","address":"10.240.0.4","podSubnet":"10.244.1.0/24"},{"name":"b","address":"fd00:240::5","podSubnet":"10.244.2.0/24"}]}"#,
                "node list t: node b: address fd00:240::5 is IPv6, but node a has an IPv4 address",
            ),
        ] {
            let e = FileSource::parse(text, "t").unwrap_err().to_string();
            assert!(e.contains(needle), "{e} does not mention {needle}");
        }
    }

    #[test]
    fn a_lease_source_of_mixed_families_is_refused() {
        let mut l = FileSource::parse(LIST, "t").unwrap();
        l[1].address = "fd00:240::5".parse().unwrap();
        assert_eq!(
            underlay_family(&l).unwrap_err(),
            "node b: address fd00:240::5 is IPv6, but node a has an IPv4 address: every node \
             of a list uses one family"
        );
    }

    #[test]
    fn finds_itself_by_name_slice_or_address() {
        let l = FileSource::parse(LIST, "t").unwrap();
        let (me, others) = split_self(l.clone(), Some("b"), None, None);
        assert_eq!(me.unwrap().name, "b");
        assert_eq!(others.len(), 1);
        let own = FamilyNets::from("10.244.1.0/24".parse::<IpNet>().unwrap());
        let (me, _) = split_self(l.clone(), None, Some(&own), None);
        assert_eq!(me.unwrap().name, "a");
        let (me, others) = split_self(l, None, None, Some("10.240.0.9".parse().unwrap()));
        assert!(me.is_none());
        assert_eq!(others.len(), 2);
        // by its IPv6 slice in a dual-stack list
        let own6 = FamilyNets::from("fd00:10:244:2::/64".parse::<IpNet>().unwrap());
        let (me, _) = split_self(
            FileSource::parse(DUAL, "t").unwrap(),
            None,
            Some(&own6),
            None,
        );
        assert_eq!(me.unwrap().name, "b");
    }
}
