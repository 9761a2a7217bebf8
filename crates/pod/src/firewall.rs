//! The pod firewall of a network, as data: which destinations keep the pod's source
//! address, whether the pod's traffic is masqueraded, and which host veths are
//! reverse-path checked. Pure; `ferro_net::firewall` applies it.

use ipnet::IpNet;

use ferro_net::firewall::{MasqSpec, PodFirewall};

/// `base` followed by the entries of `extra` it lacks, in order: the destinations that
/// keep the pod's source address (the pod subnet, VNet or pod CIDR, then
/// `nonMasqueradeCIDRs`).
pub fn union(base: &[IpNet], extra: &[IpNet]) -> Vec<IpNet> {
    let mut v = base.to_vec();
    for c in extra {
        if !v.contains(c) {
            v.push(*c);
        }
    }
    v
}

/// What the firewall does for the pods of `network`: with `masquerade`, their traffic is
/// masqueraded unless it goes to `keep_source`; with `antispoof_prefix`, packets from host
/// veths of that prefix whose source is not routed back through them are dropped.
pub fn pod_firewall(
    network: &str,
    masquerade: bool,
    keep_source: Vec<IpNet>,
    antispoof_prefix: Option<&str>,
) -> PodFirewall {
    PodFirewall {
        masq: masquerade.then(|| MasqSpec {
            network: network.to_string(),
            non_masquerade: keep_source,
        }),
        antispoof_prefix: antispoof_prefix.map(str::to_string),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(v: &[&str]) -> Vec<IpNet> {
        v.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn union_keeps_the_base_first_and_drops_repeats() {
        assert_eq!(
            union(
                &nets(&["10.240.0.0/16"]),
                &nets(&["10.0.0.0/8", "10.240.0.0/16", "fd00::/48"])
            ),
            nets(&["10.240.0.0/16", "10.0.0.0/8", "fd00::/48"])
        );
        assert_eq!(union(&[], &[]), vec![]);
    }

    #[test]
    fn masquerade_and_antispoofing_are_independent() {
        let f = pod_firewall("azure", true, nets(&["10.240.0.0/16"]), Some("fc"));
        let m = f.masq.as_ref().unwrap();
        assert_eq!(
            (m.network.as_str(), &m.non_masquerade),
            ("azure", &nets(&["10.240.0.0/16"]))
        );
        assert_eq!(f.antispoof_prefix.as_deref(), Some("fc"));
        let off = pod_firewall("kbr", false, nets(&["10.244.1.0/24"]), None);
        assert!(off.is_empty());
    }
}
