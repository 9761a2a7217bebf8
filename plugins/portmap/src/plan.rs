//! The pure plan of `portmap`: from the config, `prevResult` and `portMappings` to the host
//! ports of the attachment, whether `127.0.0.1` must route to the pod, and the UDP ports
//! whose stale conntrack entries go. `apply.rs` makes the kernel calls.

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use ferro_net::firewall::{HostPorts, MappedPort, Tag};
use ferro_pod::PodError;
use ferro_spec::{CniResult, PortMapping, Protocol, Request};

use crate::config::Config;

/// A pod address with its subnet.
type Addressed<A, N> = Option<(A, N)>;

/// What ADD does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// No `portMappings`: the result passes through untouched.
    PassThrough,
    /// Map these host ports.
    Map(Mapping),
}

/// The host ports of one attachment and what goes with them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// The nftables host ports.
    pub ports: HostPorts,
    /// The pod's IPv4 address, when `127.0.0.1:<hostPort>` must reach it (`snat` and an
    /// IPv4 mapping): `route_localnet` goes on the interface that routes to it.
    pub localnet: Option<Ipv4Addr>,
    /// UDP host ports whose conntrack entries are flushed, so that a stale entry does not
    /// keep sending their packets elsewhere.
    pub flush_udp: Vec<u16>,
}

/// The pod's first IPv4 and IPv6 address with their subnets, from `prevResult`.
pub fn pod_addresses(
    prev: &CniResult,
    ifname: &str,
) -> (Addressed<Ipv4Addr, Ipv4Net>, Addressed<Ipv6Addr, Ipv6Net>) {
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

/// The host ports of the request's attachment.
pub fn host_ports(
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

/// The UDP host ports of `mappings`, sorted, once each.
pub fn udp_ports(mappings: &[PortMapping]) -> Vec<u16> {
    let mut v: Vec<u16> = mappings
        .iter()
        .filter(|m| m.protocol == Protocol::Udp)
        .map(|m| m.host_port)
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// ADD: portmap is a chained plugin, so `prevResult` is required (code 7), and with
/// mappings it must hold an address for `CNI_IFNAME` (code 7).
pub fn plan(
    req: &Request,
    cfg: &Config,
    prev: Option<&CniResult>,
    mappings: Vec<PortMapping>,
) -> Result<Plan, PodError> {
    let prev = prev.ok_or_else(|| {
        PodError::Invalid("portmap must be called as a chained plugin (no prevResult)".into())
    })?;
    if mappings.is_empty() {
        return Ok(Plan::PassThrough);
    }
    let ports = host_ports(req, cfg, prev, mappings);
    if ports.pod_v4.is_none() && ports.pod_v6.is_none() {
        return Err(PodError::Invalid(format!(
            "prevResult has no address for {}: nothing to map host ports to",
            req.cmd.ifname
        )));
    }
    let localnet = match ports.pod_v4 {
        Some((a, _))
            if cfg.snat
                && ports
                    .mappings
                    .iter()
                    .any(|m| m.host_ip.is_none_or(|h| h.is_ipv4())) =>
        {
            Some(a)
        }
        _ => None,
    };
    let flush_udp = udp_ports(&ports.mappings);
    Ok(Plan::Map(Mapping {
        ports,
        localnet,
        flush_udp,
    }))
}

/// DEL: the UDP host ports to flush, from the map keys removed and the mappings DEL was
/// given (if any).
pub fn del_udp(removed: &[MappedPort], mappings: Option<&[PortMapping]>) -> Vec<u16> {
    let mut udp: Vec<u16> = removed
        .iter()
        .filter(|m| m.protocol == Protocol::Udp.number())
        .map(|m| m.port)
        .collect();
    if let Some(m) = mappings {
        udp.extend(udp_ports(m));
    }
    udp.sort_unstable();
    udp.dedup();
    udp
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn req(conf: serde_json::Value) -> Request {
        ferro_testutil::add_request(ferro_testutil::with_keys(
            json!({"cniVersion": "1.0.0", "name": "kbr", "type": "portmap"}),
            conf,
        ))
    }

    fn prev() -> CniResult {
        CniResult::from_value(&json!({
            "interfaces": [{"name": "cbr0"}, {"name": "veth1"}, {"name": "eth0", "sandbox": "/run/netns/p"}],
            "ips": [{"address": "10.244.1.5/24", "interface": 2}, {"address": "10.244.1.6/24", "interface": 2},
                    {"address": "fd00:244::5/64", "interface": 2}, {"address": "10.9.9.9/24", "interface": 1}]}))
        .unwrap()
    }

    fn cfg(snat: bool) -> Config {
        Config {
            snat,
            mark_masq_bit: 13,
        }
    }

    fn mappings(v: serde_json::Value) -> Vec<PortMapping> {
        req(json!({"runtimeConfig": {"portMappings": v}}))
            .conf
            .runtime_config
            .port_mappings()
            .unwrap()
    }

    #[test]
    fn the_first_address_of_each_family_of_the_interface_is_mapped() {
        let (v4, v6) = pod_addresses(&prev(), "eth0");
        assert_eq!(
            v4,
            Some((
                "10.244.1.5".parse().unwrap(),
                "10.244.1.0/24".parse().unwrap()
            ))
        );
        assert_eq!(
            v6,
            Some((
                "fd00:244::5".parse().unwrap(),
                "fd00:244::/64".parse().unwrap()
            ))
        );
        assert_eq!(pod_addresses(&prev(), "net1"), (None, None));
    }

    #[test]
    fn a_mapping_plan_names_the_tag_localnet_and_udp_ports() {
        let r = req(json!({}));
        let m = mappings(json!([
            {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
            {"hostPort": 5353, "containerPort": 53, "protocol": "udp"},
            {"hostPort": 53, "containerPort": 53, "protocol": "udp"},
            {"hostPort": 5353, "containerPort": 53, "protocol": "udp", "hostIP": "10.240.0.4"}
        ]));
        let Plan::Map(p) = plan(&r, &cfg(true), Some(&prev()), m.clone()).unwrap() else {
            panic!("no mapping planned")
        };
        assert_eq!(p.ports, host_ports(&r, &cfg(true), &prev(), m));
        assert_eq!(p.ports.tag, Tag::of(&r));
        assert_eq!(p.localnet, Some("10.244.1.5".parse().unwrap()));
        assert_eq!(p.flush_udp, vec![53, 5353]);
    }

    #[test]
    fn localnet_only_with_snat_and_an_ipv4_mapping() {
        let v6_only =
            mappings(json!([{"hostPort": 8080, "containerPort": 80, "hostIP": "fd00::4"}]));
        let any = mappings(json!([{"hostPort": 8080, "containerPort": 80}]));
        for (snat, m, want) in [
            (true, v6_only, false),
            (false, any.clone(), false),
            (true, any, true),
        ] {
            let Plan::Map(p) = plan(&req(json!({})), &cfg(snat), Some(&prev()), m).unwrap() else {
                panic!("no mapping planned")
            };
            assert_eq!(p.localnet.is_some(), want, "snat {snat}");
        }
    }

    #[test]
    fn refusals_and_pass_through() {
        let r = req(json!({}));
        let m = mappings(json!([{"hostPort": 8080, "containerPort": 80}]));
        let e = plan(&r, &cfg(true), None, m.clone()).unwrap_err();
        assert!(e.to_string().contains("chained plugin"), "{e}");
        assert_eq!(ferro_spec::CniError::from(e).code.number(), 7);
        assert_eq!(
            plan(&r, &cfg(true), Some(&prev()), Vec::new()).unwrap(),
            Plan::PassThrough
        );
        let e = plan(&r, &cfg(true), Some(&CniResult::default()), m).unwrap_err();
        assert_eq!(
            e.to_string(),
            "prevResult has no address for eth0: nothing to map host ports to"
        );
    }

    #[test]
    fn del_flushes_the_removed_and_the_given_udp_ports_once() {
        let removed = [
            MappedPort {
                protocol: 17,
                port: 5353,
                host_ip: None,
            },
            MappedPort {
                protocol: 6,
                port: 8080,
                host_ip: None,
            },
        ];
        let given = mappings(
            json!([{"hostPort": 5353, "containerPort": 53, "protocol": "udp"},
            {"hostPort": 53, "containerPort": 53, "protocol": "udp"}]),
        );
        assert_eq!(del_udp(&removed, Some(&given)), vec![53, 5353]);
        assert_eq!(del_udp(&removed, None), vec![5353]);
        assert_eq!(del_udp(&[], None), Vec::<u16>::new());
    }
}
