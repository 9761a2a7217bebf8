//! The kernel calls of `bridge`, in the order the plan asks for them. Every decision taken
//! between two calls is a function of `plan.rs`.

use ferro_net::attach::{self, PodInterface};
use ferro_net::rtnl::{AddrOpts, BridgeSpec, Link, NeighSpec, Rtnl, VethSpec};
use ferro_net::Netns;
use ferro_net::{sysctl, NetError};
use ferro_pod::{Attach, Early, PodError};
use ferro_spec::{CniError, CniResult};
use ipnet::IpNet;

use crate::config::Config;
use crate::plan::{self, Attachment, Expected, Facts, Plan, CONTAINER_INDEX};

/// The bridge and the veth pair on it, as [`create`] made them before the addresses were
/// known.
#[derive(Debug)]
pub struct Created {
    /// The bridge.
    bridge: Link,
    /// The host end as the kernel echoed it, when it did.
    echoed: Option<Link>,
}

/// ADD's first kernel work, which needs no address and runs while IPAM answers: on an
/// existing bridge, the veth pair, its host end on the bridge and its peer in the pod.
/// Without the bridge, nothing (`None`): the first ADD on a node creates the bridge once its
/// plan is made, so a refused plan leaves no bridge behind.
pub fn create(
    cfg: &Config,
    att: &Attachment,
    host: &Rtnl<'_>,
    ns: &Netns,
) -> Result<Early<Option<Created>>, CniError> {
    let made = match host.bridge_existing(&cfg.bridge)? {
        Some(bridge) => {
            let echoed = veth_on(cfg, att, host, ns, &bridge)?;
            Some(Created { bridge, echoed })
        }
        None => None,
    };
    Ok(Early {
        veth: made.is_some(),
        made,
    })
}

/// The veth pair of `att` on `bridge` (promiscuous first when asked), the peer in `ns`.
fn veth_on(
    cfg: &Config,
    att: &Attachment,
    host: &Rtnl<'_>,
    ns: &Netns,
    bridge: &Link,
) -> Result<Option<Link>, CniError> {
    if cfg.promisc_mode && !bridge.promisc {
        host.link_set_promisc(bridge.index, true)?;
    }
    host.veth_add(&VethSpec {
        name: att.host_veth.clone(),
        mac: Some(att.host_mac),
        mtu: cfg.mtu,
        master: Some(bridge.index),
        peer_name: att.ifname.clone(),
        peer_mac: Some(att.container_mac),
        peer_ns: Some(ns),
    })
    .map_err(|e| -> CniError {
        if e.is_exists() {
            PodError::HostVethExists(att.host_veth.clone()).into()
        } else {
            e.into()
        }
    })
}

/// ADD once the plan is made: the bridge and the veth pair unless [`create`] made them,
/// the gateways and forwarding, the port settings, the pod's addresses and routes, the
/// firewall. A failure once the veth pair exists removes it; the lease is released on any
/// failure.
pub fn add(
    a: Attach<'_>,
    cfg: &Config,
    made: Option<Created>,
    plan: &Plan,
) -> Result<CniResult, CniError> {
    let host = a.host;
    let (bridge, echoed) = match made {
        Some(Created { bridge, echoed }) => {
            // The port exists already: its link watch work may hold rtnl for a moment, and
            // the gateway's round trip waits behind it (it is one round trip and no dump in
            // the steady state).
            let outcome = gateways(cfg, host, &bridge, plan);
            (bridge, outcome.map(|()| echoed))
        }
        None => {
            let bridge = host.bridge_ensure(&BridgeSpec {
                name: cfg.bridge.clone(),
                mtu: cfg.mtu,
                mac: Some(random_mac()?),
                vlan_filtering: cfg.vlan.is_some(),
            })?;
            // Node-level state first, while the kernel is quiet: once the new port exists,
            // the kernel's per-port work (link watch, port state selection) holds rtnl for
            // a while, and every later request of ours waits behind it.
            gateways(cfg, host, &bridge, plan)?;
            // a veth that is in the way is not ours to remove: no rollback for it
            let echoed = veth_on(cfg, &plan.att, host, a.ns, &bridge)?;
            (bridge, Ok(echoed))
        }
    };
    // From here on a failure removes the veth pair (and releases the lease).
    let outcome = echoed.and_then(|echoed| {
        let dad_off = plan::bridge_dad_off(plan, &bridge);
        finish_add(&a, cfg, plan, echoed, dad_off, bridge.index)
    });
    let outcome = outcome.map(|mut result| {
        result.interfaces[0].mac = bridge.mac_string();
        result
    });
    a.settle(outcome, &plan.att.host_veth, || {})
}

/// The bridge's gateway addresses and forwarding, for a gateway bridge.
fn gateways(cfg: &Config, host: &Rtnl<'_>, bridge: &Link, plan: &Plan) -> Result<(), CniError> {
    if cfg.is_gateway {
        ensure_gateways(host, bridge, &plan.gateways, cfg.force_address)?;
        attach::ensure_forwarding_on(host, plan.v4, plan.v6)?;
    }
    Ok(())
}

/// A random locally administered MAC for a new bridge, so it never adopts (and then
/// changes with) the lowest port MAC.
fn random_mac() -> Result<[u8; 6], CniError> {
    use std::io::Read;
    let mut m = [0u8; 6];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut m))
        .map_err(|e| CniError::internal(format!("reading /dev/urandom: {e}")))?;
    m[0] = (m[0] & 0xfe) | 0x02;
    Ok(m)
}

fn finish_add(
    a: &Attach<'_>,
    cfg: &Config,
    plan: &Plan,
    echoed: Option<Link>,
    dad_off: bool,
    bridge: u32,
) -> Result<CniResult, CniError> {
    let host = a.host;
    let hv = match echoed {
        Some(l) => l,
        None => host.link_required(&plan.att.host_veth)?,
    };
    // The port's hairpin and the address's old neighbour entries go as one batch below.
    let mut port = host.batch();
    if cfg.hairpin_mode {
        port.bridge_port_set_hairpin(hv.index, true);
    }
    if cfg.port_isolation {
        host.bridge_port_set_isolated(hv.index, true)?;
    }
    if let Some(vid) = cfg.vlan {
        host.bridge_vlan_add(hv.index, vid, true, false)?;
        if !cfg.preserve_default_vlan {
            host.bridge_vlan_del(hv.index, 1, false)?;
        }
    }
    if plan.v6 {
        // B9: a host-side link must never configure itself from router advertisements.
        sysctl::ensure_if_present(
            &format!("net/ipv6/conf/{}/accept_ra", plan.att.host_veth),
            "0",
        )?;
        sysctl::ensure_if_present(&format!("net/ipv6/conf/{}/accept_ra", cfg.bridge), "0")?;
        if dad_off {
            sysctl::ensure_if_present(&format!("net/ipv6/conf/{}/accept_dad", cfg.bridge), "0")?;
        }
    }
    if cfg.disable_container_interface {
        port.run()?;
        return Ok(plan.result.clone());
    }
    // An earlier pod of the same address may have left the node a neighbour entry with its
    // MAC. The new pod's gratuitous announcement replaces it only when the entry has not
    // changed within the last second (the kernel's locktime), so the node would send to
    // the old MAC until the entry failed its probes: forget it now.
    for ip in plan.ips() {
        port.neigh_del(&NeighSpec {
            ifindex: bridge,
            ip,
            mac: None,
            proxy: false,
        });
    }
    port.run()?;
    attach::configure(
        a.pod,
        a.ns,
        &PodInterface {
            ifname: plan.result.interfaces[CONTAINER_INDEX].name.clone(),
            addrs: plan.addrs.clone(),
            no_prefix_routes: false,
            neighbours: Vec::new(),
            routes: plan.routes.clone(),
            enable_dad: cfg.enable_dad,
            index: hv.peer,
        },
    )?;
    // The node's agent added the masquerade while the veth pair was made, or it is added now.
    if !a.lease.as_ref().is_some_and(|l| l.masqueraded) {
        plan.firewall
            .add(&plan.ips(), &ferro_net::firewall::Tag::of(a.req))?;
    }
    Ok(plan.result.clone())
}

/// Puts the gateway addresses on the bridge. Steady state: the gateway is already there, one
/// round trip and no dump. A new one is checked against the bridge's other addresses
/// ([`plan::gateway_clash`]): clashing ones are replaced with `forceAddress`, else the new
/// gateway is taken off again and ADD fails.
fn ensure_gateways(
    host: &Rtnl<'_>,
    bridge: &Link,
    gateways: &[IpNet],
    force: bool,
) -> Result<(), CniError> {
    let opts = AddrOpts {
        nodad: true,
        noprefixroute: false,
    };
    for gw in gateways {
        if !host.addr_add_new(bridge.index, *gw, opts)? {
            continue;
        }
        let have: Vec<IpNet> = host
            .addrs(Some(bridge.index))?
            .into_iter()
            .map(|a| a.addr)
            .collect();
        match plan::gateway_clash(&bridge.name, *gw, &have, force) {
            Ok(replaced) => {
                for old in replaced {
                    host.addr_del(bridge.index, old)?;
                }
            }
            Err(e) => {
                host.addr_del(bridge.index, *gw)?;
                return Err(e.into());
            }
        }
    }
    Ok(())
}

/// CHECK's reads: the three links, and what `plan::check` compares for them.
pub fn read_facts(
    cfg: &Config,
    want: &Expected<'_>,
    host: &Rtnl<'_>,
    pod: &Rtnl<'_>,
) -> Result<Facts, NetError> {
    let mut f = Facts {
        bridge: host.link(&cfg.bridge)?,
        container: pod.link(want.ifname)?,
        host_veth: host.link(want.host_veth)?,
        ..Facts::default()
    };
    if cfg.disable_container_interface {
        return Ok(f);
    }
    if let Some(link) = &f.container {
        f.container_addrs = pod
            .addrs(Some(link.index))?
            .into_iter()
            .map(|a| a.addr)
            .collect();
        for (v6, table) in plan::route_tables(want.prev) {
            f.container_routes.extend(pod.routes(v6, table)?);
        }
    }
    if let (true, Some(br)) = (cfg.is_gateway, &f.bridge) {
        f.bridge_addrs = host
            .addrs(Some(br.index))?
            .into_iter()
            .map(|a| a.addr)
            .collect();
    }
    Ok(f)
}
