//! Who announces each load-balancer address on the VNet.
//!
//! Exactly one node answers ARP (IPv4) or neighbour solicitations (IPv6) for a load-balancer
//! address: the holder of its announcement record,
//!
//! ```text
//! /ferro-cni/v1/lbannouncers/<address>     {"node":"node-b","address":"10.240.1.1"}
//! ```
//!
//! created only when absent and attached to the holder's node lease, so it vanishes when that
//! node stops or dies (lease TTL) and another node can take it. The nodes that may hold it
//! are the live nodes, or with `externalTrafficPolicy: Local` the live nodes running one of
//! the service's endpoints; they are ranked by a hash of (node, address) as MetalLB does, so
//! addresses spread over the nodes and every node agrees on the order. The best-ranked
//! candidate claims an absent record at once, the others only after a delay that grows with
//! their rank: the store's create-if-absent picks one winner whatever the timing.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::model::ServicePort;

/// Prefix of the announcement records.
pub const ANNOUNCERS: &str = "/ferro-cni/v1/lbannouncers/";

/// The value of an announcement record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announcement {
    /// The node announcing the address.
    pub node: String,
    /// The address.
    pub address: String,
}

/// The record of address `ip`.
pub fn key(ip: IpAddr) -> String {
    format!("{ANNOUNCERS}{}", ip.to_string().replace(':', "-"))
}

/// The address a record is for.
pub fn address_of(key: &str) -> Option<IpAddr> {
    let rest = key.strip_prefix(ANNOUNCERS)?;
    rest.parse::<Ipv4Addr>()
        .map(IpAddr::V4)
        .or_else(|_| rest.replace('-', ":").parse::<Ipv6Addr>().map(IpAddr::V6))
        .ok()
}

fn rank(node: &str, ip: IpAddr) -> [u8; 32] {
    Sha256::digest(format!("{node}\0{ip}").as_bytes()).into()
}

/// Every load-balancer address of `ports` with the nodes that may announce it, best first.
/// An address whose service has `externalTrafficPolicy: Local` may be announced only by a
/// node running one of its endpoints; others by any live node.
pub fn candidates(ports: &[ServicePort], live: &BTreeSet<&str>) -> BTreeMap<IpAddr, Vec<String>> {
    let mut with_eps: BTreeMap<IpAddr, (bool, BTreeSet<String>)> = BTreeMap::new();
    for sp in ports {
        for ip in &sp.lb_ips {
            let e = with_eps.entry(*ip).or_default();
            e.0 |= sp.external_local;
            e.1.extend(sp.endpoints.iter().map(|ep| ep.node.clone()));
        }
    }
    with_eps
        .into_iter()
        .map(|(ip, (local, nodes))| {
            let mut c: Vec<String> = live
                .iter()
                .filter(|n| !local || nodes.contains(**n))
                .map(|n| n.to_string())
                .collect();
            c.sort_by_key(|n| rank(n, ip));
            (ip, c)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Endpoint, Proto};

    fn sp(lb: &str, local: bool, eps: &[&str]) -> ServicePort {
        ServicePort {
            namespace: "x".into(),
            service: "s".into(),
            port_name: "80".into(),
            proto: Proto::Tcp,
            v6: false,
            port: 80,
            cluster_ip: None,
            external_ips: vec![],
            lb_ips: vec![lb.parse().unwrap()],
            node_port: None,
            source_ranges: vec![],
            external_local: local,
            internal_local: false,
            affinity_seconds: None,
            endpoints: eps
                .iter()
                .enumerate()
                .map(|(i, n)| Endpoint {
                    ip: format!("10.244.0.{i}").parse().unwrap(),
                    port: 80,
                    pod: format!("p{i}"),
                    node: n.to_string(),
                })
                .collect(),
        }
    }

    #[test]
    fn live_nodes_ranked_and_local_policy_needs_an_endpoint() {
        let live: BTreeSet<&str> = ["a", "b", "c"].into_iter().collect();
        let c = candidates(&[sp("10.240.1.1", false, &["a"])], &live);
        let one = &c[&"10.240.1.1".parse::<IpAddr>().unwrap()];
        assert_eq!(one.len(), 3);
        // Every node computes the same order; another address may rank them otherwise.
        assert_eq!(
            one,
            &candidates(&[sp("10.240.1.1", false, &[])], &live)
                [&"10.240.1.1".parse::<IpAddr>().unwrap()]
        );
        let spread: BTreeSet<String> = (1..40)
            .map(|i| {
                let ip = format!("10.240.1.{i}");
                candidates(&[sp(&ip, false, &[])], &live)[&ip.parse::<IpAddr>().unwrap()][0].clone()
            })
            .collect();
        assert_eq!(spread.len(), 3, "addresses spread over the nodes");
        let c = candidates(&[sp("10.240.1.2", true, &["b", "dead"])], &live);
        assert_eq!(c[&"10.240.1.2".parse::<IpAddr>().unwrap()], ["b"]);
    }

    #[test]
    fn keys_round_trip() {
        for ip in ["10.240.1.1", "fd00:240::1:1"] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(address_of(&key(ip)), Some(ip));
        }
        assert_eq!(
            key("fd00::1".parse().unwrap()),
            "/ferro-cni/v1/lbannouncers/fd00--1"
        );
    }
}
