//! Gratuitous announcements of an address: a gratuitous ARP request (IPv4) or an unsolicited
//! neighbour advertisement with the override flag (IPv6), sent on one link from its MAC.
//!
//! When a load-balancer address moves to another node, the clients on the VNet still hold
//! the old node's MAC in their neighbour caches; without an announcement they keep sending
//! to a dead node until their entry times out (tens of seconds). Linux updates an existing
//! entry from either message at once (`arping -U` and `ndisc6`'s unsolicited advertisement
//! do the same). The kernel itself announces only on link changes (`arp_notify`,
//! `ndisc_notify`), not when an address is added, so the frames are built here and sent on
//! a packet socket (`AF_PACKET`, `SOCK_DGRAM`: the kernel adds the Ethernet header).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;

use nix::sys::socket::{
    sendto, socket, AddressFamily, LinkAddr, MsgFlags, SockFlag, SockType, SockaddrLike,
};

use crate::error::NetError;

const ETH_P_ARP: u16 = 0x0806;
const ETH_P_IPV6: u16 = 0x86dd;
const BROADCAST: [u8; 6] = [0xff; 6];
/// `33:33:00:00:00:01`: the Ethernet group of `ff02::1` (all nodes).
const ALL_NODES_MAC: [u8; 6] = [0x33, 0x33, 0, 0, 0, 1];
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// The gratuitous ARP request for `ip` from `mac`: sender and target address both `ip`.
pub fn garp_frame(mac: [u8; 6], ip: Ipv4Addr) -> Vec<u8> {
    let mut f = Vec::with_capacity(28);
    f.extend_from_slice(&1u16.to_be_bytes()); // hardware: Ethernet
    f.extend_from_slice(&0x0800u16.to_be_bytes()); // protocol: IPv4
    f.extend_from_slice(&[6, 4]); // address lengths
    f.extend_from_slice(&1u16.to_be_bytes()); // request
    f.extend_from_slice(&mac);
    f.extend_from_slice(&ip.octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&ip.octets());
    f
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for c in data.chunks(2) {
        let w = u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]);
        sum += u32::from(w);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The unsolicited neighbour advertisement of `ip` from `mac` to all nodes: an IPv6 packet
/// (hop limit 255) carrying ICMPv6 type 136 with the override flag and the target
/// link-layer address option.
pub fn unsolicited_na_packet(mac: [u8; 6], ip: Ipv6Addr) -> Vec<u8> {
    let mut icmp = Vec::with_capacity(32);
    icmp.extend_from_slice(&[136, 0, 0, 0]); // type, code, checksum (below)
    icmp.extend_from_slice(&0x2000_0000u32.to_be_bytes()); // O (override)
    icmp.extend_from_slice(&ip.octets());
    icmp.extend_from_slice(&[2, 1]); // option: target link-layer address, 8 bytes
    icmp.extend_from_slice(&mac);
    let mut pseudo = Vec::with_capacity(40 + icmp.len());
    pseudo.extend_from_slice(&ip.octets());
    pseudo.extend_from_slice(&ALL_NODES.octets());
    pseudo.extend_from_slice(&(icmp.len() as u32).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, 58]);
    pseudo.extend_from_slice(&icmp);
    let sum = checksum(&pseudo);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    let mut p = Vec::with_capacity(40 + icmp.len());
    p.extend_from_slice(&[0x60, 0, 0, 0]); // version 6, no class or flow
    p.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
    p.extend_from_slice(&[58, 255]); // ICMPv6, hop limit 255
    p.extend_from_slice(&ip.octets());
    p.extend_from_slice(&ALL_NODES.octets());
    p.extend_from_slice(&icmp);
    p
}

/// The link-layer destination of a packet socket send. Building a `sockaddr_ll` is the one
/// thing nix offers no safe constructor for: the structure is filled here field by field
/// and handed to nix's checked conversion.
#[allow(unsafe_code)]
fn link_addr(ifindex: u32, proto: u16, dst: [u8; 6]) -> Result<LinkAddr, NetError> {
    let mut addr = [0u8; 8];
    addr[..6].copy_from_slice(&dst);
    let sll = nix::libc::sockaddr_ll {
        sll_family: nix::libc::AF_PACKET as u16,
        sll_protocol: proto.to_be(),
        sll_ifindex: i32::try_from(ifindex).unwrap_or(0),
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 6,
        sll_addr: addr,
    };
    let len = std::mem::size_of::<nix::libc::sockaddr_ll>() as nix::libc::socklen_t;
    // SAFETY: `sll` is a fully initialised `sockaddr_ll` that lives for the call, and `len`
    // is its size; `from_raw` checks the family and length and copies it.
    unsafe {
        LinkAddr::from_raw(
            std::ptr::from_ref(&sll).cast::<nix::libc::sockaddr>(),
            Some(len),
        )
    }
    .ok_or_else(|| NetError::Other(format!("link #{ifindex}: bad link-layer address")))
}

/// Announces `ip` on link `ifindex` whose MAC is `mac`, in the calling thread's network
/// namespace: one gratuitous ARP request or one unsolicited neighbour advertisement.
// A packet socket: ferro-net is where the workspace opens raw sockets (clippy.toml).
#[allow(clippy::disallowed_methods)]
pub fn announce(ifindex: u32, mac: [u8; 6], ip: IpAddr) -> Result<(), NetError> {
    let (proto, dst, frame) = match ip {
        IpAddr::V4(a) => (ETH_P_ARP, BROADCAST, garp_frame(mac, a)),
        IpAddr::V6(a) => (ETH_P_IPV6, ALL_NODES_MAC, unsolicited_na_packet(mac, a)),
    };
    let what = format!("announce {ip} on link #{ifindex}");
    let fd = socket(
        AddressFamily::Packet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| NetError::io(&what, std::io::Error::from(e)))?;
    let to = link_addr(ifindex, proto, dst)?;
    sendto(fd.as_raw_fd(), &frame, &to, MsgFlags::empty())
        .map_err(|e| NetError::io(&what, std::io::Error::from(e)))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gratuitous_arp_names_the_address_twice() {
        let f = garp_frame([2, 0, 0, 0, 0, 1], Ipv4Addr::new(10, 240, 1, 1));
        assert_eq!(f.len(), 28);
        assert_eq!(&f[6..8], &[0, 1], "request");
        assert_eq!(&f[14..18], &[10, 240, 1, 1], "sender");
        assert_eq!(&f[24..28], &[10, 240, 1, 1], "target");
    }

    #[test]
    fn the_advertisement_checksums_to_zero() {
        let ip: Ipv6Addr = "fd00:240::1:1".parse().unwrap();
        let p = unsolicited_na_packet([2, 0, 0, 0, 0, 1], ip);
        assert_eq!(p.len(), 40 + 32);
        assert_eq!((p[6], p[7]), (58, 255));
        // The one's complement sum over pseudo-header and message is 0xffff.
        let icmp = &p[40..];
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&p[8..40]);
        pseudo.extend_from_slice(&32u32.to_be_bytes());
        pseudo.extend_from_slice(&[0, 0, 0, 58]);
        pseudo.extend_from_slice(icmp);
        assert_eq!(checksum(&pseudo), 0);
        assert_eq!(icmp[0], 136);
        assert_eq!(icmp[4] & 0x20, 0x20, "override");
    }
}
