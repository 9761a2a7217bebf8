//! CHECK of a transparent-mode attachment (`flat`, `overlay`): the veth pair, the pod's
//! addresses, gateway neighbours and default routes, and the node's host routes. [`read`]
//! takes what the kernel has; [`differences`] compares it with the attachment, purely;
//! [`check`] does both.

use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use ferro_net::rtnl::{Link, NeighSpec, RouteSpec};
use ferro_net::transparent::{TransparentPod, GATEWAY_V4, GATEWAY_V6};
use ferro_net::{NetError, Rtnl};

use ferro_spec::CniError;

use crate::attachment::Inspect;
use crate::check::{Difference, Differences};
use crate::error::PodError;

const IN_POD: &str = "in the pod";

/// What the kernel holds of one transparent-mode attachment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// The host veth, if it exists.
    pub host_veth: Option<Link>,
    /// The container interface, if it exists.
    pub container: Option<Link>,
    /// The addresses on the container interface.
    pub addrs: Vec<IpNet>,
    /// The neighbour entries on the container interface.
    pub neighbours: Vec<NeighSpec>,
    /// The pod's main-table routes, of the families the pod has.
    pub routes: Vec<RouteSpec>,
    /// The node's main-table routes out of the host veth, of the families the pod has.
    pub host_routes: Vec<RouteSpec>,
}

fn families(p: &TransparentPod) -> [(bool, bool); 2] {
    [
        (p.addrs.iter().any(|a| a.addr().is_ipv4()), false),
        (p.addrs.iter().any(|a| a.addr().is_ipv6()), true),
    ]
}

/// Reads the facts of `p`: both links, and when both exist, the pod's addresses,
/// neighbours and routes and the node's routes through the host veth.
pub fn read(host: &Rtnl<'_>, pod: &Rtnl<'_>, p: &TransparentPod) -> Result<Facts, NetError> {
    let mut f = Facts {
        host_veth: host.link(&p.host_veth())?,
        container: pod.link(&p.ifname)?,
        ..Facts::default()
    };
    let (Some(hv), Some(link)) = (&f.host_veth, &f.container) else {
        return Ok(f);
    };
    let (hv, link) = (hv.index, link.index);
    f.addrs = pod.addrs(Some(link))?.into_iter().map(|a| a.addr).collect();
    f.neighbours = pod.neighs(link, false)?;
    for (used, v6) in families(p) {
        if used {
            f.routes.extend(pod.routes(v6, None)?);
            f.host_routes.extend(host.routes_on(v6, None, Some(hv))?);
        }
    }
    Ok(f)
}

/// CHECK of `p`: [`read`], then [`differences`] (code 103 naming them; a failed read is
/// code 103 too).
pub fn check(c: &Inspect<'_>, p: &TransparentPod) -> Result<(), CniError> {
    let facts = read(c.host, c.pod, p).map_err(PodError::CheckRead)?;
    Ok(differences(p, &facts).into_result()?)
}

/// How the facts differ from what ADD makes for `p`.
pub fn differences(p: &TransparentPod, f: &Facts) -> Differences {
    let mut d = Differences::default();
    let name = p.host_veth();
    if f.host_veth.is_none() {
        d.push(Difference::LinkMissing {
            role: "host interface",
            name: name.clone(),
        });
    }
    if f.container.is_none() {
        d.push(Difference::LinkMissing {
            role: "container interface",
            name: p.ifname.clone(),
        });
    }
    let (Some(hv), Some(link)) = (&f.host_veth, &f.container) else {
        return d;
    };
    for l in [link, hv] {
        if !l.up {
            d.push(Difference::Down {
                name: l.name.clone(),
            });
        }
    }
    for a in &p.addrs {
        if !f.addrs.contains(a) {
            d.push(Difference::AddressMissing {
                address: *a,
                link: p.ifname.clone(),
            });
        }
    }
    for (used, v6) in families(p) {
        if !used {
            continue;
        }
        let (gw, default) = if v6 {
            (IpAddr::V6(GATEWAY_V6), IpNet::V6(Ipv6Net::default()))
        } else {
            (IpAddr::V4(GATEWAY_V4), IpNet::V4(Ipv4Net::default()))
        };
        if !f
            .neighbours
            .iter()
            .any(|n| n.ip == gw && n.mac == Some(p.host_mac()))
        {
            d.push(Difference::NeighbourMissing {
                ip: gw,
                place: IN_POD,
            });
        }
        if !f
            .routes
            .iter()
            .any(|r| r.dst.prefix_len() == 0 && r.dst.addr().is_ipv6() == v6 && r.gw == Some(gw))
        {
            d.push(Difference::RouteMissing {
                dst: default,
                via: Some(gw),
                place: IN_POD,
            });
        }
        for a in p.addrs.iter().filter(|a| a.addr().is_ipv6() == v6) {
            if !f
                .host_routes
                .iter()
                .any(|r| r.dst == IpNet::from(a.addr()) && r.oif == Some(hv.index))
            {
                d.push(Difference::HostRouteMissing {
                    address: a.addr(),
                    link: name.clone(),
                });
            }
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(addrs: &[&str]) -> TransparentPod {
        TransparentPod {
            container_id: "c1".into(),
            ifname: "eth0".into(),
            addrs: addrs.iter().map(|a| a.parse().unwrap()).collect(),
            mtu: Some(1500),
            extra_routes: Vec::new(),
        }
    }

    fn link(index: u32, name: &str) -> Link {
        Link {
            index,
            name: name.into(),
            up: true,
            ..Link::default()
        }
    }

    /// The facts right after ADD: what `attach` makes.
    fn as_added(p: &TransparentPod) -> Facts {
        let mut f = Facts {
            host_veth: Some(link(7, &p.host_veth())),
            container: Some(link(2, "eth0")),
            addrs: p.addrs.clone(),
            ..Facts::default()
        };
        for r in p.pod_routes() {
            f.routes.push(RouteSpec { oif: Some(2), ..r });
        }
        for a in &p.addrs {
            let gw = if a.addr().is_ipv4() {
                IpAddr::V4(GATEWAY_V4)
            } else {
                IpAddr::V6(GATEWAY_V6)
            };
            if !f.neighbours.iter().any(|n| n.ip == gw) {
                f.neighbours.push(NeighSpec {
                    ifindex: 2,
                    ip: gw,
                    mac: Some(p.host_mac()),
                    proxy: false,
                });
            }
            f.host_routes
                .push(RouteSpec::new(IpNet::from(a.addr()), None, Some(7)));
        }
        f
    }

    #[test]
    fn an_attachment_as_added_has_no_difference() {
        for addrs in [
            &["10.240.0.20/16"][..],
            &["fd00:240::20/64"],
            &["10.240.0.20/16", "fd00:240::20/64"],
        ] {
            let p = pod(addrs);
            assert_eq!(differences(&p, &as_added(&p)), Differences::default());
        }
    }

    #[test]
    fn missing_links_stop_the_comparison_there() {
        let p = pod(&["10.240.0.20/16"]);
        let d = differences(&p, &Facts::default());
        assert_eq!(
            d.to_string(),
            format!(
                "host interface {} is missing; container interface eth0 is missing",
                p.host_veth()
            )
        );
    }

    #[test]
    fn every_lost_piece_is_named() {
        let p = pod(&["10.240.0.20/16", "fd00:240::20/64"]);
        let mut f = as_added(&p);
        f.container.as_mut().unwrap().up = false;
        f.addrs.retain(|a| a.addr().is_ipv4());
        f.neighbours.retain(|n| n.ip.is_ipv6());
        f.routes.retain(|r| r.dst.addr().is_ipv4());
        f.host_routes.clear();
        let got: Vec<String> = differences(&p, &f)
            .0
            .iter()
            .map(|d| d.to_string())
            .collect();
        let hv = p.host_veth();
        assert_eq!(
            got,
            vec![
                "eth0 is down".to_string(),
                "address fd00:240::20/64 is missing from eth0".into(),
                "gateway neighbour 169.254.1.1 is missing in the pod".into(),
                format!("host route to 10.240.0.20 via {hv} is missing"),
                "default route via fe80::1234:5678:9abc is missing in the pod".into(),
                format!("host route to fd00:240::20 via {hv} is missing"),
            ]
        );
    }

    #[test]
    fn a_neighbour_with_another_mac_or_a_route_elsewhere_does_not_count() {
        let p = pod(&["10.240.0.20/16"]);
        let mut f = as_added(&p);
        f.neighbours[0].mac = Some([2, 0, 0, 0, 0, 1]);
        f.host_routes[0].oif = Some(99);
        let d = differences(&p, &f);
        assert_eq!(d.0.len(), 2, "{d}");
        assert!(matches!(d.0[0], Difference::NeighbourMissing { .. }));
        assert!(matches!(d.0[1], Difference::HostRouteMissing { .. }));
    }
}
