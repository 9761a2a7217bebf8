//! Applying an IPAM result inside the pod: the step every main plugin (bridge, flat,
//! overlay) shares, like the reference plugins' `ipam.ConfigureIface`.
//!
//! Order matters and is fixed here: sysctls of the interface (DAD), addresses (with `nodad`
//! unless DAD is wanted, so IPv6 addresses are usable immediately instead of after a 1–2 s
//! settle), link up with `arp_notify` (as the reference does it: the link comes up with its
//! addresses, so the kernel announces them with a gratuitous ARP), static neighbours, then
//! routes. Everything after the sysctls goes to the kernel as one batch of requests, which it
//! carries out in that order.

use std::net::IpAddr;

use ferro_spec::CniError;
use ipnet::IpNet;

use crate::error::NetError;
use crate::netns::Netns;
use crate::rtnl::{AddrOpts, NeighSpec, RouteSpec, Rtnl};
use crate::sysctl;

/// What the pod's interface gets.
#[derive(Debug, Clone, Default)]
pub struct PodInterface {
    /// The interface name (`CNI_IFNAME`).
    pub ifname: String,
    /// Addresses with their subnet prefix.
    pub addrs: Vec<IpNet>,
    /// Skip the connected prefix route of each address (the L3 models route everything,
    /// even same-subnet traffic, through the node).
    pub no_prefix_routes: bool,
    /// Permanent neighbour entries to add (e.g. the virtual gateway 169.254.1.1 → host veth MAC).
    pub neighbours: Vec<(IpAddr, [u8; 6])>,
    /// Routes, in order; `oif` is filled in with the interface.
    pub routes: Vec<RouteSpec>,
    /// Keep IPv6 duplicate address detection on (bridge `enabledad`).
    pub enable_dad: bool,
    /// The interface's ifindex in the pod, when the caller knows it from creating it (the
    /// veth end's `IFLA_LINK` in the kernel's answer): the interface is then taken as just
    /// created (down) and not looked up by name.
    pub index: Option<u32>,
}

/// Fails with code 7 (invalid configuration) when `ifname` already exists in the pod (checked
/// before IPAM so a refused ADD allocates nothing).
pub fn ensure_ifname_free(pod: &Rtnl<'_>, ns: &Netns, ifname: &str) -> Result<(), CniError> {
    let taken = pod
        .link(ifname)
        .map_err(|e| CniError::invalid_config(e.to_string()))?;
    if taken.is_some() {
        return Err(CniError::invalid_config(format!(
            "container interface {ifname} already exists in {}",
            ns.path().display()
        )));
    }
    Ok(())
}

/// Configures the pod interface as described. The interface's sysctls are written first;
/// its addresses, link state, neighbours and routes then go to the kernel as one batch (one
/// wait for all the answers; the kernel applies them in the order above). A failed request
/// does not stop the ones after it: on failure the caller removes the interface, as it must
/// anyway.
pub fn configure(pod: &Rtnl<'_>, ns: &Netns, cfg: &PodInterface) -> Result<(), NetError> {
    let (index, up) = match cfg.index {
        Some(index) => (index, false),
        None => {
            let link = pod.link_required(&cfg.ifname)?;
            (link.index, link.up)
        }
    };
    let has_v6 = cfg.addrs.iter().any(|a| a.addr().is_ipv6());
    let has_v4 = cfg.addrs.iter().any(|a| a.addr().is_ipv4());
    let ifname = cfg.ifname.as_str();
    if has_v6 {
        // IPv6 settings exist only under /proc/sys (rtnetlink sets none of these).
        ns.run(|| -> Result<(), NetError> {
            sysctl::ensure_if_present(&format!("net/ipv6/conf/{ifname}/disable_ipv6"), "0")?;
            sysctl::ensure_if_present("net/ipv6/conf/lo/disable_ipv6", "0")?;
            sysctl::ensure_if_present(&format!("net/ipv6/conf/{ifname}/keep_addr_on_down"), "1")?;
            if cfg.enable_dad {
                sysctl::ensure_if_present(&format!("net/ipv6/conf/{ifname}/enhanced_dad"), "1")?;
                sysctl::ensure_if_present(&format!("net/ipv6/conf/{ifname}/accept_dad"), "1")?;
            } else {
                sysctl::ensure_if_present(&format!("net/ipv6/conf/{ifname}/accept_dad"), "0")?;
            }
            Ok(())
        })??;
    }
    let opts = AddrOpts {
        nodad: !cfg.enable_dad,
        noprefixroute: cfg.no_prefix_routes,
    };
    let mut batch = pod.batch();
    for a in &cfg.addrs {
        batch.addr_add(index, *a, opts);
    }
    // Up once the addresses exist, with arp_notify for IPv4 set just before: bringing the
    // link up then announces the IPv4 addresses (gratuitous ARP), so a neighbour entry
    // left on the node by an earlier pod with the same address (another MAC) is replaced at
    // once instead of blackholing the new pod until it expires.
    if !up || has_v4 {
        batch.link_up_notify(index, has_v4);
    }
    for (ip, mac) in &cfg.neighbours {
        batch.neigh_replace(&NeighSpec {
            ifindex: index,
            ip: *ip,
            mac: Some(*mac),
            proxy: false,
        });
    }
    for r in &cfg.routes {
        let mut r = r.clone();
        r.oif = Some(index);
        batch.route_add(&r, false);
    }
    batch.run()
}

/// Enables forwarding on the node for the families in use
/// (`sysctl net.ipv4.ip_forward=1`, `net.ipv6.conf.all.forwarding=1`), read before written.
/// The steady state (already on) costs one netlink round trip and no `/proc/sys` lookup.
pub fn ensure_forwarding(v4: bool, v6: bool) -> Result<(), NetError> {
    forwarding_from(sysctl::forwarding(), v4, v6)
}

/// [`ensure_forwarding`] in `host`'s namespace, read on that connection (no socket of its
/// own).
pub fn ensure_forwarding_on(host: &Rtnl<'_>, v4: bool, v6: bool) -> Result<(), NetError> {
    forwarding_from(host.forwarding(), v4, v6)
}

/// Writes what `state` (forwarding per family, as read) lacks of `v4` and `v6`.
fn forwarding_from(
    state: (Option<bool>, Option<bool>),
    v4: bool,
    v6: bool,
) -> Result<(), NetError> {
    let (on4, on6) = state;
    if v4 && on4 != Some(true) {
        sysctl::ensure("net/ipv4/ip_forward", "1")?;
    }
    if v6 && on6 != Some(true) {
        sysctl::ensure_if_present("net/ipv6/conf/all/forwarding", "1")?;
    }
    Ok(())
}
