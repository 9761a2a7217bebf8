//! Networks held at most one per address family: a network's pod CIDRs (Kubernetes'
//! `podCIDRs`), a node's slices of them. The cluster layer keeps one pool per family and
//! hands each node one slice per family in the same shape.

use std::fmt;
use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// `IPv4` or `IPv6`, for messages.
pub fn family_name(v6: bool) -> &'static str {
    if v6 {
        "IPv6"
    } else {
        "IPv4"
    }
}

/// At most one network per address family, without host bits. Iterates IPv4 first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct FamilyNets {
    v4: Option<Ipv4Net>,
    v6: Option<Ipv6Net>,
}

impl FamilyNets {
    /// From a list: each network without host bits, at most one per family (the message
    /// names the offending networks, for the caller to prefix with its key).
    pub fn new(nets: &[IpNet]) -> Result<FamilyNets, String> {
        let mut out = FamilyNets::default();
        for n in nets {
            if *n != n.trunc() {
                return Err(format!("{n} has host bits set"));
            }
            if let Some(first) = out.get(n.addr().is_ipv6()) {
                return Err(format!(
                    "two {} CIDRs ({first}, {n}): at most one per family",
                    family_name(n.addr().is_ipv6())
                ));
            }
            match n {
                IpNet::V4(a) => out.v4 = Some(*a),
                IpNet::V6(a) => out.v6 = Some(*a),
            }
        }
        Ok(out)
    }

    /// The network of one family.
    pub fn get(&self, v6: bool) -> Option<IpNet> {
        if v6 {
            self.v6.map(IpNet::V6)
        } else {
            self.v4.map(IpNet::V4)
        }
    }

    /// The network of `ip`'s family.
    pub fn of(&self, ip: IpAddr) -> Option<IpNet> {
        self.get(ip.is_ipv6())
    }

    /// Whether `ip` is inside the network of its family.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.of(ip).is_some_and(|n| n.contains(&ip))
    }

    /// The networks, IPv4 first.
    pub fn iter(&self) -> impl Iterator<Item = IpNet> + '_ {
        self.v4
            .map(IpNet::V4)
            .into_iter()
            .chain(self.v6.map(IpNet::V6))
    }

    /// The networks as a list, IPv4 first.
    pub fn to_vec(&self) -> Vec<IpNet> {
        self.iter().collect()
    }

    /// (has IPv4, has IPv6).
    pub fn families(&self) -> (bool, bool) {
        (self.v4.is_some(), self.v6.is_some())
    }

    /// No network at all.
    pub fn is_empty(&self) -> bool {
        self.v4.is_none() && self.v6.is_none()
    }

    /// Only the families `of` holds: a node's slices for a network that may use fewer
    /// families than the node list gives.
    pub fn restricted_to(&self, of: &FamilyNets) -> FamilyNets {
        FamilyNets {
            v4: self.v4.filter(|_| of.v4.is_some()),
            v6: self.v6.filter(|_| of.v6.is_some()),
        }
    }

    /// Checks that these slices are exactly one per family of `cidrs`, each inside the
    /// network of its family (the message, without a key, names what is wrong).
    pub fn check_slices_of(&self, cidrs: &FamilyNets, cidrs_key: &str) -> Result<(), String> {
        for v6 in [false, true] {
            match (self.get(v6), cidrs.get(v6)) {
                (Some(s), Some(c)) if !c.contains(&s) => {
                    return Err(format!(
                        "{s} is not inside the {} pod CIDR {c}",
                        family_name(v6)
                    ))
                }
                (Some(s), None) => {
                    return Err(format!(
                        "{s} is {}, but {cidrs_key} has no {} pod CIDR",
                        family_name(v6),
                        family_name(v6)
                    ))
                }
                (None, Some(c)) => {
                    return Err(format!(
                        "no {} slice, but {cidrs_key} has {c}",
                        family_name(v6)
                    ))
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Whether a network of `self` and one of `other` overlap (same family).
    pub fn overlap(&self, other: &FamilyNets) -> Option<(IpNet, IpNet)> {
        self.iter().find_map(|a| {
            other
                .of(a.addr())
                .filter(|b| a.contains(&b.network()) || b.contains(&a.network()))
                .map(|b| (a, b))
        })
    }
}

impl fmt::Display for FamilyNets {
    /// `10.244.0.0/16, fd00:10:244::/56`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.iter().map(|n| n.to_string()).collect();
        f.write_str(&parts.join(", "))
    }
}

impl From<IpNet> for FamilyNets {
    fn from(n: IpNet) -> Self {
        match n.trunc() {
            IpNet::V4(a) => FamilyNets {
                v4: Some(a),
                v6: None,
            },
            IpNet::V6(a) => FamilyNets {
                v4: None,
                v6: Some(a),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(s: &[&str]) -> Result<FamilyNets, String> {
        FamilyNets::new(&s.iter().map(|n| n.parse().unwrap()).collect::<Vec<_>>())
    }

    #[test]
    fn one_network_per_family_ipv4_first() {
        let n = nets(&["fd00:10:244::/56", "10.244.0.0/16"]).unwrap();
        assert_eq!(n.to_string(), "10.244.0.0/16, fd00:10:244::/56");
        assert_eq!(n.families(), (true, true));
        assert!(n.contains("fd00:10:244:3::9".parse().unwrap()));
        assert!(!n.contains("fd00:10:245::9".parse().unwrap()));
        assert_eq!(
            nets(&["10.244.0.0/16", "10.245.0.0/16"]).unwrap_err(),
            "two IPv4 CIDRs (10.244.0.0/16, 10.245.0.0/16): at most one per family"
        );
        assert_eq!(
            nets(&["fd00::1/64"]).unwrap_err(),
            "fd00::1/64 has host bits set"
        );
        assert!(nets(&[]).unwrap().is_empty());
    }

    #[test]
    fn slices_cover_every_family_inside_its_pod_cidr() {
        let pods = nets(&["10.244.0.0/16", "fd00:10:244::/56"]).unwrap();
        let ok = nets(&["10.244.1.0/24", "fd00:10:244:1::/64"]).unwrap();
        assert_eq!(ok.check_slices_of(&pods, "podCIDRs"), Ok(()));
        for (slices, msg) in [
            (
                vec!["10.244.1.0/24"],
                "no IPv6 slice, but podCIDRs has fd00:10:244::/56",
            ),
            (
                vec!["10.244.1.0/24", "fd00:99::/64"],
                "fd00:99::/64 is not inside the IPv6 pod CIDR fd00:10:244::/56",
            ),
        ] {
            assert_eq!(
                nets(&slices).unwrap().check_slices_of(&pods, "podCIDRs"),
                Err(msg.to_string())
            );
        }
        let v4 = nets(&["10.244.0.0/16"]).unwrap();
        assert_eq!(
            ok.check_slices_of(&v4, "podCIDR"),
            Err("fd00:10:244:1::/64 is IPv6, but podCIDR has no IPv6 pod CIDR".into())
        );
        assert_eq!(ok.restricted_to(&v4).to_string(), "10.244.1.0/24");
    }

    #[test]
    fn overlap_is_per_family() {
        let a = nets(&["10.244.1.0/24", "fd00:10:244:1::/64"]).unwrap();
        let b = nets(&["10.244.2.0/24", "fd00:10:244::/56"]).unwrap();
        assert_eq!(
            a.overlap(&b),
            Some((
                "fd00:10:244:1::/64".parse().unwrap(),
                "fd00:10:244::/56".parse().unwrap()
            ))
        );
        assert_eq!(a.overlap(&nets(&["10.244.2.0/24"]).unwrap()), None);
    }
}
