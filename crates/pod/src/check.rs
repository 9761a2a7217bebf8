//! CHECK's answer: typed [`Difference`]s between the kernel and what ADD made, rendered into
//! the CNI error (code 103) only at the edge; and the rule every plugin applies first, that
//! CHECK needs `prevResult`.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use ferro_spec::{CniResult, Request};

use crate::error::PodError;

/// One way an attachment differs from what ADD made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Difference {
    /// A link ADD creates does not exist; `role` says what it is to the attachment
    /// (`bridge`, `host interface`, `container interface`, `vxlan device`).
    LinkMissing {
        /// What the link is to the attachment.
        role: &'static str,
        /// Its name.
        name: String,
    },
    /// A link of that name exists but is not of the kind ADD creates.
    NotA {
        /// The link.
        name: String,
        /// The kind it should be (`bridge`).
        kind: &'static str,
    },
    /// A link ADD brings up is down.
    Down {
        /// The link.
        name: String,
    },
    /// A setting of a link differs from what ADD set (`MAC`, `hairpin`, `promiscuous mode`).
    Setting {
        /// The link.
        link: String,
        /// The setting.
        setting: &'static str,
        /// What the kernel has.
        have: String,
        /// What ADD set.
        want: String,
    },
    /// The host veth is not a port of the bridge.
    NotAPort {
        /// The host veth.
        port: String,
        /// The bridge.
        bridge: String,
    },
    /// An address ADD put on a link is gone.
    AddressMissing {
        /// The address with its prefix.
        address: IpNet,
        /// The link.
        link: String,
    },
    /// A gateway address ADD put on the bridge is gone.
    GatewayMissing {
        /// The gateway.
        gateway: IpAddr,
        /// The bridge.
        bridge: String,
    },
    /// A route ADD added is gone.
    RouteMissing {
        /// Its destination.
        dst: IpNet,
        /// Its gateway, when it has one.
        via: Option<IpAddr>,
        /// Where it should be (`in the pod`).
        place: &'static str,
    },
    /// The permanent neighbour entry of the pod's gateway is gone.
    NeighbourMissing {
        /// The gateway.
        ip: IpAddr,
        /// Where it should be (`in the pod`).
        place: &'static str,
    },
    /// The node's route to a pod address through its host veth is gone.
    HostRouteMissing {
        /// The pod address.
        address: IpAddr,
        /// The host veth.
        link: String,
    },
    /// The node no longer answers ARP/NDP for a pod address on its uplink.
    NotPublished {
        /// The pod address.
        address: IpAddr,
        /// The uplink.
        uplink: String,
    },
    /// The VXLAN peers differ from the node list (by pod slice).
    Peers {
        /// Slices of listed nodes without a peer.
        missing: Vec<IpNet>,
        /// Slices whose peer has another address or MAC.
        changed: Vec<IpNet>,
        /// Peers of nodes no longer listed.
        stale: Vec<IpNet>,
    },
    /// `prevResult` names no container interface `ifname`.
    NotInPrevResult {
        /// `CNI_IFNAME`.
        ifname: String,
    },
    /// `prevResult` puts the container interface in another namespace than `CNI_NETNS`.
    Sandbox {
        /// `CNI_IFNAME`.
        ifname: String,
        /// The sandbox `prevResult` gives, if any.
        have: Option<String>,
        /// `CNI_NETNS`.
        want: String,
    },
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Difference::LinkMissing { role, name } => write!(f, "{role} {name} is missing"),
            Difference::NotA { name, kind } => write!(f, "{name} is not a {kind}"),
            Difference::Down { name } => write!(f, "{name} is down"),
            Difference::Setting {
                link,
                setting,
                have,
                want,
            } => write!(f, "{setting} of {link} is {have}, expected {want}"),
            Difference::NotAPort { port, bridge } => write!(f, "{port} is not a port of {bridge}"),
            Difference::AddressMissing { address, link } => {
                write!(f, "address {address} is missing from {link}")
            }
            Difference::GatewayMissing { gateway, bridge } => {
                write!(f, "gateway {gateway} is missing from bridge {bridge}")
            }
            Difference::RouteMissing { dst, via, place } => {
                if dst.prefix_len() == 0 {
                    write!(f, "default route")?;
                } else {
                    write!(f, "route to {dst}")?;
                }
                if let Some(gw) = via {
                    write!(f, " via {gw}")?;
                }
                write!(f, " is missing {place}")
            }
            Difference::NeighbourMissing { ip, place } => {
                write!(f, "gateway neighbour {ip} is missing {place}")
            }
            Difference::HostRouteMissing { address, link } => {
                write!(f, "host route to {address} via {link} is missing")
            }
            Difference::NotPublished { address, uplink } => {
                write!(f, "pod address {address} is not published on uplink {uplink}")
            }
            Difference::Peers {
                missing,
                changed,
                stale,
            } => write!(
                f,
                "overlay peers differ from the node list: missing {missing:?}, changed {changed:?}, stale {stale:?}"
            ),
            Difference::NotInPrevResult { ifname } => {
                write!(f, "prevResult has no container interface {ifname}")
            }
            Difference::Sandbox { ifname, have, want } => write!(
                f,
                "interface {ifname} of prevResult is in {}, not in CNI_NETNS {want}",
                have.as_deref().unwrap_or("no namespace")
            ),
        }
    }
}

/// Everything a CHECK found different, in the order it looked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Differences(pub Vec<Difference>);

impl Differences {
    /// Nothing differs.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Notes one difference.
    pub fn push(&mut self, d: Difference) {
        self.0.push(d);
    }

    /// Appends another CHECK's findings.
    pub fn extend(&mut self, other: Differences) {
        self.0.extend(other.0);
    }

    /// `Ok` when nothing differs, else the CHECK failure (code 103).
    pub fn into_result(self) -> Result<(), PodError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(PodError::Differs(self))
        }
    }
}

impl fmt::Display for Differences {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, "; ")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// CHECK compares the kernel with the result of ADD, so it needs `prevResult` (code 7
/// without it).
pub fn prev_result(req: &Request) -> Result<&CniResult, PodError> {
    req.prev_result.as_ref().ok_or(PodError::NoPrevResult)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn each_difference_names_the_object() {
        for (d, text) in [
            (
                Difference::LinkMissing {
                    role: "bridge",
                    name: "cbr0".into(),
                },
                "bridge cbr0 is missing",
            ),
            (
                Difference::NotA {
                    name: "cbr0".into(),
                    kind: "bridge",
                },
                "cbr0 is not a bridge",
            ),
            (
                Difference::Setting {
                    link: "eth0".into(),
                    setting: "MAC",
                    have: "02:00:00:00:00:01".into(),
                    want: "02:00:00:00:00:02".into(),
                },
                "MAC of eth0 is 02:00:00:00:00:01, expected 02:00:00:00:00:02",
            ),
            (
                Difference::NotAPort {
                    port: "veth1".into(),
                    bridge: "cbr0".into(),
                },
                "veth1 is not a port of cbr0",
            ),
            (
                Difference::AddressMissing {
                    address: net("10.0.0.2/24"),
                    link: "eth0".into(),
                },
                "address 10.0.0.2/24 is missing from eth0",
            ),
            (
                Difference::GatewayMissing {
                    gateway: ip("10.0.0.1"),
                    bridge: "cbr0".into(),
                },
                "gateway 10.0.0.1 is missing from bridge cbr0",
            ),
            (
                Difference::RouteMissing {
                    dst: net("0.0.0.0/0"),
                    via: Some(ip("169.254.1.1")),
                    place: "in the pod",
                },
                "default route via 169.254.1.1 is missing in the pod",
            ),
            (
                Difference::RouteMissing {
                    dst: net("192.168.0.0/16"),
                    via: None,
                    place: "in the container",
                },
                "route to 192.168.0.0/16 is missing in the container",
            ),
            (
                Difference::NeighbourMissing {
                    ip: ip("fe80::1234:5678:9abc"),
                    place: "in the pod",
                },
                "gateway neighbour fe80::1234:5678:9abc is missing in the pod",
            ),
            (
                Difference::HostRouteMissing {
                    address: ip("10.240.0.20"),
                    link: "fc0123".into(),
                },
                "host route to 10.240.0.20 via fc0123 is missing",
            ),
            (
                Difference::NotPublished {
                    address: ip("10.240.0.20"),
                    uplink: "eth0".into(),
                },
                "pod address 10.240.0.20 is not published on uplink eth0",
            ),
            (
                Difference::Peers {
                    missing: vec![net("10.244.2.0/24")],
                    changed: vec![],
                    stale: vec![],
                },
                "overlay peers differ from the node list: missing [10.244.2.0/24], changed [], stale []",
            ),
            (
                Difference::NotInPrevResult {
                    ifname: "eth0".into(),
                },
                "prevResult has no container interface eth0",
            ),
            (
                Difference::Sandbox {
                    ifname: "eth0".into(),
                    have: None,
                    want: "/run/netns/p".into(),
                },
                "interface eth0 of prevResult is in no namespace, not in CNI_NETNS /run/netns/p",
            ),
        ] {
            assert_eq!(d.to_string(), text);
        }
    }

    #[test]
    fn differences_join_in_order_and_only_a_non_empty_list_fails() {
        assert!(Differences::default().into_result().is_ok());
        let mut d = Differences::default();
        d.push(Difference::Down {
            name: "eth0".into(),
        });
        d.extend(Differences(vec![Difference::Down { name: "fc1".into() }]));
        assert_eq!(d.to_string(), "eth0 is down; fc1 is down");
        assert!(matches!(d.into_result(), Err(PodError::Differs(_))));
    }

    #[test]
    fn check_without_prev_result_is_refused() {
        let req = ferro_testutil::add_request(serde_json::json!({
            "cniVersion": "1.0.0", "name": "n", "type": "bridge"
        }));
        assert!(matches!(prev_result(&req), Err(PodError::NoPrevResult)));
    }
}
