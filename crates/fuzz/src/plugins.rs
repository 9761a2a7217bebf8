//! Each plugin's configuration, parsed by the plugin's own parser after the request checks
//! every plugin shares ([`ferro_spec::Request::parse`]), plus the two files plugins read
//! besides stdin: the overlay's node list and host-local's `resolvConf`.
//!
//! Invariants of every configuration target: no panic; a refusal is a CNI error with a
//! configuration code naming what is wrong; parsing the printed configuration again gives
//! the same result (the parser depends on the values, not on the bytes).

use std::fmt::Debug;
use std::net::IpAddr;

use ferro_ipam::config::requested_ips;
use ferro_ipam::{allocator, IpamConfig};
use ferro_net::overlay::{split_self, FileSource};
use ferro_spec::{CniError, Code, Command, Plugin, Request};
use serde_json::Value;

use crate::check_error;
use crate::spec::pod_env;

/// Codes a configuration parser may answer with.
fn check_config_error(e: &CniError) {
    assert!(
        matches!(
            e.code,
            Code::IncompatibleVersion
                | Code::UnsupportedField
                | Code::InvalidEnv
                | Code::Decode
                | Code::InvalidConfig
        ),
        "code {} for a configuration: {e}",
        e.code.number()
    );
    check_error(e);
}

/// Builds the ADD request of `plugin` from `stdin` and parses it with `parse`, then again
/// from the printed configuration; both must agree. Returns the request and the result.
fn parse_twice<T: PartialEq + Debug>(
    plugin: &dyn Plugin,
    stdin: &[u8],
    parse: impl Fn(&Request) -> Result<T, CniError>,
) -> Option<(Request, T)> {
    let req = match Request::parse(plugin, Command::Add, pod_env(Command::Add), stdin.to_vec()) {
        Ok(r) => r,
        Err(e) => {
            check_config_error(&e);
            return None;
        }
    };
    let first = parse(&req);
    let printed = serde_json::to_vec(&Value::Object(req.conf.raw.clone())).expect("serializes");
    let again = Request::parse(plugin, Command::Add, pod_env(Command::Add), printed)
        .expect("the printed configuration is accepted again");
    let second = parse(&again);
    match (first, second) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a, b, "printed configuration parses differently");
            Some((req, a))
        }
        (Err(a), Err(b)) => {
            check_config_error(&a);
            // Messages may quote a number printed and read again: the workspace reads
            // numbers correctly rounded (serde_json's float_roundtrip), so they match too.
            assert_eq!(a, b, "printed configuration fails differently");
            None
        }
        (a, b) => panic!("printed configuration parses differently: {a:?} then {b:?}"),
    }
}

/// Input: a `bridge` configuration (stdin).
pub fn bridge(data: &[u8]) {
    use ferro_bridge::config::Config;
    if let Some((_, c)) = parse_twice(&ferro_bridge::plugin::Bridge, data, Config::from_request) {
        ferro_spec::env::validate_ifname(&c.bridge).expect("bridge name validated");
        assert!(c.vlan.is_none_or(|v| (1..=4094).contains(&v)));
        assert!(!c.is_default_gateway || c.is_gateway);
        assert!(c.non_masquerade_cidrs.iter().all(|n| *n == n.trunc()));
    }
}

/// Input: a `flat` configuration (stdin).
pub fn flat(data: &[u8]) {
    use ferro_flat::config::Config;
    if let Some((_, c)) = parse_twice(&ferro_flat::plugin::Flat, data, Config::from_request) {
        if let Some(u) = &c.uplink {
            ferro_spec::env::validate_ifname(u).expect("uplink validated");
        }
        assert!(c.vnet_cidrs.is_none_or(|v| !v.is_empty()));
    }
}

/// Input: an `overlay` configuration (stdin).
pub fn overlay(data: &[u8]) {
    use ferro_overlay::config::Config;
    if let Some((_, c)) = parse_twice(&ferro_overlay::plugin::Overlay, data, Config::from_request) {
        let n = &c.node;
        assert!(n.pod_cidrs.iter().all(|c| c == c.trunc()));
        // every slice given is inside the pod CIDR of its family
        assert!(n.node_subnets.is_none_or(|s| s
            .iter()
            .all(|s| n.pod_cidrs.of(s.addr()).is_some_and(|c| c.contains(&s)))));
        assert!((1..=0xff_ffff).contains(&n.vni) && n.port != 0);
    }
}

/// Input: a `portmap` configuration (stdin).
pub fn portmap(data: &[u8]) {
    use ferro_portmap::config::Config;
    if let Some((req, c)) = parse_twice(&ferro_portmap::plugin::Portmap, data, Config::from_request)
    {
        assert!(c.mark_masq_bit <= 31);
        // The capability argument portmap acts on.
        match req.conf.runtime_config.port_mappings() {
            Ok(maps) => assert!(maps
                .iter()
                .all(|m| m.host_port != 0 && m.container_port != 0)),
            Err(e) => check_config_error(&e),
        }
    }
}

/// Input: a configuration whose `ipam` is host-local's (stdin). Besides the `ipam` section,
/// reads the requested addresses as ADD does and walks the first candidates of every range
/// set, which must lie in the set.
pub fn host_local(data: &[u8]) {
    let parse = |req: &Request| -> Result<IpamConfig, CniError> {
        Ok(IpamConfig::from_netconf(&req.conf, req.version)?)
    };
    let Some((req, conf)) = parse_twice(&ferro_host_local::plugin::HostLocal, data, parse) else {
        return;
    };
    for set in &conf.range_sets {
        assert!(!set.ranges.is_empty(), "{set}: empty set");
        for r in &set.ranges {
            assert!(
                r.subnet.contains(&r.start) && r.subnet.contains(&r.end),
                "{r}"
            );
            assert!(key(r.start) <= key(r.end), "{r}: start after end");
        }
        let last = set.ranges.last().map(|r| r.end);
        for (r, ip) in allocator::candidates(set, last).take(64) {
            assert!(
                set.contains(ip) && r.contains(ip) && ip != r.gateway,
                "{ip} from {set}"
            );
        }
    }
    let runtime_ips = match req.conf.runtime_config.ips() {
        Ok(v) => v,
        Err(e) => return check_config_error(&e),
    };
    let requested = requested_ips(
        req.conf.cni_arg("ips"),
        req.cmd.args.get("IP"),
        &runtime_ips,
    );
    match requested.map_err(CniError::from) {
        Ok(r) => {
            if let Err(e) = allocator::assign_requested(&conf, &r) {
                check_error(&CniError::from(e));
            }
        }
        Err(e) => check_config_error(&e),
    }
}

fn key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// Input: an overlay node list file. Invariants: accepted nodes have pod subnets without
/// host bits that overlap no other node's, and unique names and addresses; each node, looked
/// up by name or by slice, is found and every other node is its peer.
pub fn node_list(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(leases) = FileSource::parse(&text, "fuzz") else {
        return;
    };
    for (i, l) in leases.iter().enumerate() {
        assert!(l.pod_subnets.iter().all(|s| s == s.trunc()), "{}", l.name);
        let _ = l.mac();
        for o in &leases[..i] {
            assert!(
                o.name != l.name && o.address != l.address,
                "{} twice",
                l.name
            );
            for (a, b) in o
                .pod_subnets
                .iter()
                .flat_map(|a| l.pod_subnets.iter().map(move |b| (a, b)))
            {
                assert!(
                    a.addr().is_ipv6() != b.addr().is_ipv6()
                        || (!a.contains(&b.network()) && !b.contains(&a.network())),
                    "{} overlaps {}",
                    l.name,
                    o.name
                );
            }
        }
    }
    for l in leases.iter().take(8) {
        for (name, subnets) in [(Some(l.name.as_str()), None), (None, Some(&l.pod_subnets))] {
            let (me, peers) = split_self(leases.clone(), name, subnets, None);
            assert_eq!(me.as_ref(), Some(l));
            assert_eq!(peers.len() + 1, leases.len());
        }
    }
}

/// Input: a resolv.conf (host-local's `resolvConf`). Invariant: every field read is one
/// white-space-free word.
pub fn resolv_conf(data: &[u8]) {
    let dns = ferro_host_local::dns::parse(&String::from_utf8_lossy(data));
    let words = dns
        .nameservers
        .iter()
        .chain(dns.domain.iter())
        .chain(dns.search.iter())
        .chain(dns.options.iter());
    for w in words {
        assert!(!w.is_empty() && !w.contains(char::is_whitespace), "{w:?}");
    }
}
