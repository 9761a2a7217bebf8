//! Addresses. `ip addr ...`.

use ipnet::IpNet;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage,
};
use netlink_packet_route::RouteNetlinkMessage;

use super::{family_of, Batch, Queued, Rtnl, Tolerate};
use crate::error::NetError;

/// Options of [`Rtnl::addr_add`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AddrOpts {
    /// IPv6: skip duplicate address detection (`nodad`).
    pub nodad: bool,
    /// Do not create the connected prefix route (`noprefixroute`): the L3 models route
    /// everything, even the pod's own subnet, through the node.
    pub noprefixroute: bool,
}

/// An address on a link, as reported by the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddrInfo {
    /// ifindex.
    pub index: u32,
    /// Address with prefix.
    pub addr: IpNet,
}

impl Rtnl<'_> {
    /// `ip addr add <addr> dev <index> [nodad] [noprefixroute]`; an address already present
    /// is success.
    pub fn addr_add(&self, index: u32, addr: IpNet, opts: AddrOpts) -> Result<(), NetError> {
        self.addr_add_new(index, addr, opts).map(drop)
    }

    /// The request of [`Rtnl::addr_add`].
    fn addr_add_req(&self, index: u32, addr: IpNet, opts: AddrOpts) -> Queued {
        Queued {
            op: format!("add address {addr} to link #{index} ({})", self.place),
            msg: RouteNetlinkMessage::NewAddress(addr_message(index, addr, opts)),
            flags: NLM_F_CREATE | NLM_F_EXCL,
            tolerate: Tolerate::Exists,
        }
    }

    /// `ip addr add`, reporting whether the address was new (`false`: it was already there).
    pub fn addr_add_new(&self, index: u32, addr: IpNet, opts: AddrOpts) -> Result<bool, NetError> {
        let q = self.addr_add_req(index, addr, opts);
        match self.ack(q.op, q.msg, q.flags) {
            Ok(()) => Ok(true),
            Err(e) if e.is_exists() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `ip addr del <addr> dev <index>`; a missing address is success.
    pub fn addr_del(&self, index: u32, addr: IpNet) -> Result<(), NetError> {
        let mut m = AddressMessage::default();
        m.header.family = family_of(addr.addr());
        m.header.prefix_len = addr.prefix_len();
        m.header.index = index;
        m.attributes.push(AddressAttribute::Local(addr.addr()));
        match self.ack(
            format!("delete address {addr} from link #{index}"),
            RouteNetlinkMessage::DelAddress(m),
            0,
        ) {
            Err(e) if e.is_not_found() => Ok(()),
            other => other,
        }
    }

    /// Addresses, of one link when `index` is set. `ip addr show [dev]`.
    pub fn addrs(&self, index: Option<u32>) -> Result<Vec<AddrInfo>, NetError> {
        // With strict checking the kernel returns only this link's addresses.
        let mut q = AddressMessage::default();
        q.header.index = index.unwrap_or(0);
        let msgs = self.dump("dump addresses", RouteNetlinkMessage::GetAddress(q))?;
        Ok(msgs
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewAddress(a) if index.is_none_or(|i| i == a.header.index) => {
                    parse_addr(a)
                }
                _ => None,
            })
            .collect())
    }
}

/// An address as the kernel reports it (`IFA_LOCAL`, else `IFA_ADDRESS`, with the header's
/// prefix length); `None` without an address or with an impossible prefix length.
pub(super) fn parse_addr(a: &AddressMessage) -> Option<AddrInfo> {
    let ip = a.attributes.iter().find_map(|x| match x {
        AddressAttribute::Local(ip) => Some(*ip),
        _ => None,
    });
    let ip = ip.or_else(|| {
        a.attributes.iter().find_map(|x| match x {
            AddressAttribute::Address(ip) => Some(*ip),
            _ => None,
        })
    })?;
    Some(AddrInfo {
        index: a.header.index,
        addr: IpNet::new(ip, a.header.prefix_len).ok()?,
    })
}

/// The `RTM_NEWADDR` message of `ip addr add <addr> dev <index>`.
pub(super) fn addr_message(index: u32, addr: IpNet, opts: AddrOpts) -> AddressMessage {
    let mut m = AddressMessage::default();
    m.header.family = family_of(addr.addr());
    m.header.prefix_len = addr.prefix_len();
    m.header.index = index;
    let mut flags = AddressFlags::empty();
    if opts.nodad && addr.addr().is_ipv6() {
        m.header.flags = AddressHeaderFlags::Nodad;
        flags |= AddressFlags::Nodad;
    }
    if opts.noprefixroute {
        flags |= AddressFlags::Noprefixroute;
    }
    if !flags.is_empty() {
        m.attributes.push(AddressAttribute::Flags(flags));
    }
    m.attributes.push(AddressAttribute::Local(addr.addr()));
    m.attributes.push(AddressAttribute::Address(addr.addr()));
    if let IpNet::V4(v4) = addr {
        if v4.prefix_len() < 31 {
            m.attributes
                .push(AddressAttribute::Broadcast(v4.broadcast()));
        }
    }
    m
}

impl Batch<'_, '_> {
    /// Queues [`Rtnl::addr_add`].
    pub fn addr_add(&mut self, index: u32, addr: IpNet, opts: AddrOpts) -> &mut Self {
        let q = self.rtnl.addr_add_req(index, addr, opts);
        self.push(q)
    }
}
