//! Address ranges and the boxes (address range × protocol range × port range) a node's sets
//! hold: unions, differences, and the decomposition of overlapping grants into disjoint
//! boxes (the kernel's concatenated interval sets refuse overlapping elements, and a
//! disjoint, merged form makes the same grants always give the same elements).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// An address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl Family {
    /// The family of `a`.
    pub fn of(a: IpAddr) -> Family {
        if a.is_ipv6() {
            Family::V6
        } else {
            Family::V4
        }
    }

    /// The highest address.
    pub fn max(self) -> u128 {
        match self {
            Family::V4 => u128::from(u32::MAX),
            Family::V6 => u128::MAX,
        }
    }

    /// The address with number `n`.
    pub fn addr(self, n: u128) -> IpAddr {
        match self {
            Family::V4 => IpAddr::V4(Ipv4Addr::from(u32::try_from(n).unwrap_or(u32::MAX))),
            Family::V6 => IpAddr::V6(Ipv6Addr::from(n)),
        }
    }
}

/// The number of an address (within its family).
pub fn number(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// An inclusive range of numbers (addresses of one family, protocols or ports).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span {
    /// First.
    pub lo: u128,
    /// Last.
    pub hi: u128,
}

impl Span {
    /// `lo..=hi`.
    pub fn new(lo: u128, hi: u128) -> Span {
        Span { lo, hi }
    }

    /// One value.
    pub fn one(v: u128) -> Span {
        Span { lo: v, hi: v }
    }

    /// The addresses of `net`.
    pub fn of_net(net: &IpNet) -> Span {
        let net = net.trunc();
        Span::new(number(net.network()), number(net.broadcast()))
    }

    /// Whether `v` is inside.
    pub fn contains(&self, v: u128) -> bool {
        self.lo <= v && v <= self.hi
    }
}

/// The union of `spans`: sorted, disjoint, adjacent ranges merged.
pub fn union(mut spans: Vec<Span>) -> Vec<Span> {
    spans.sort();
    let mut out: Vec<Span> = Vec::with_capacity(spans.len());
    for s in spans {
        match out.last_mut() {
            Some(l) if s.lo <= l.hi.saturating_add(1) => l.hi = l.hi.max(s.hi),
            _ => out.push(s),
        }
    }
    out
}

/// `a` minus `b` (both sorted and disjoint, as [`union`] makes them).
pub fn subtract(a: &[Span], b: &[Span]) -> Vec<Span> {
    let mut out = Vec::new();
    let mut j = 0;
    for s in a {
        let mut lo = s.lo;
        let hi = s.hi;
        while j < b.len() && b[j].hi < lo {
            j += 1;
        }
        let mut k = j;
        let mut open = true;
        while k < b.len() && b[k].lo <= hi {
            if b[k].lo > lo {
                out.push(Span::new(lo, b[k].lo - 1));
            }
            if b[k].hi >= hi {
                open = false;
                break;
            }
            lo = b[k].hi + 1;
            k += 1;
        }
        if open {
            out.push(Span::new(lo, hi));
        }
    }
    out
}

/// What a grant lets through besides its addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Service {
    /// Every protocol, every port.
    Any,
    /// One protocol, a range of ports.
    Ports {
        /// IP protocol number.
        proto: u8,
        /// First port.
        lo: u16,
        /// Last port.
        hi: u16,
    },
}

/// One element of a node's set: an address range, a protocol range and a port range
/// (`addr . meta l4proto . th dport`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Elem {
    /// Addresses (of the set's family).
    pub addr: Span,
    /// Protocols: one, or `0-255` for every protocol.
    pub proto: (u8, u8),
    /// Ports.
    pub port: (u16, u16),
}

impl Elem {
    /// Whether the element holds the address number `addr`, protocol and port.
    pub fn contains(&self, addr: u128, proto: u8, port: u16) -> bool {
        self.addr.contains(addr)
            && (self.proto.0..=self.proto.1).contains(&proto)
            && (self.port.0..=self.port.1).contains(&port)
    }
}

/// Decomposes `grants` (address range, service) into disjoint elements covering exactly
/// their union, merged where they can be: ranges granted every protocol become
/// `range . 0-255 . 0-65535`; the rest, per protocol, `range . proto . port range` with the
/// every-protocol ranges cut out.
pub fn decompose(grants: &[(Span, Service)]) -> Vec<Elem> {
    let any = union(
        grants
            .iter()
            .filter(|(_, s)| *s == Service::Any)
            .map(|(a, _)| *a)
            .collect(),
    );
    let mut out: Vec<Elem> = any
        .iter()
        .map(|a| Elem {
            addr: *a,
            proto: (0, 255),
            port: (0, u16::MAX),
        })
        .collect();
    // Per protocol: (addresses, ports) rectangles.
    let mut by_proto: BTreeMap<u8, Vec<(Span, u16, u16)>> = BTreeMap::new();
    for (a, s) in grants {
        if let Service::Ports { proto, lo, hi } = *s {
            by_proto.entry(proto).or_default().push((*a, lo, hi));
        }
    }
    for (proto, rects) in by_proto {
        // Port breakpoints: every range starts a segment and ends one.
        let mut cuts: Vec<u32> = rects
            .iter()
            .flat_map(|(_, lo, hi)| [u32::from(*lo), u32::from(*hi) + 1])
            .collect();
        cuts.sort_unstable();
        cuts.dedup();
        let mut prev: Option<(u16, u16, Vec<Span>)> = None;
        let flush = |p: Option<(u16, u16, Vec<Span>)>, out: &mut Vec<Elem>| {
            if let Some((lo, hi, spans)) = p {
                for a in spans {
                    out.push(Elem {
                        addr: a,
                        proto: (proto, proto),
                        port: (lo, hi),
                    });
                }
            }
        };
        for w in cuts.windows(2) {
            let (lo, hi) = (w[0], w[1] - 1);
            let covering: Vec<Span> = rects
                .iter()
                .filter(|(_, a, b)| u32::from(*a) <= lo && hi <= u32::from(*b))
                .map(|(s, _, _)| *s)
                .collect();
            let spans = subtract(&union(covering), &any);
            let (lo, hi) = (lo as u16, hi as u16);
            match &mut prev {
                Some((_, phi, pspans))
                    if *pspans == spans && u32::from(*phi) + 1 == u32::from(lo) =>
                {
                    *phi = hi;
                }
                _ => {
                    flush(prev.take(), &mut out);
                    if !spans.is_empty() {
                        prev = Some((lo, hi, spans));
                    }
                }
            }
        }
        flush(prev, &mut out);
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(lo: u128, hi: u128) -> Span {
        Span::new(lo, hi)
    }

    #[test]
    fn unions_merge_overlapping_and_adjacent() {
        assert_eq!(
            union(vec![s(5, 9), s(1, 2), s(3, 3), s(8, 12), s(20, 20)]),
            vec![s(1, 3), s(5, 12), s(20, 20)]
        );
        assert_eq!(union(vec![]), vec![]);
        assert_eq!(union(vec![s(0, u128::MAX), s(4, 4)]), vec![s(0, u128::MAX)]);
    }

    #[test]
    fn differences_cut_holes_and_edges() {
        let a = vec![s(0, 100)];
        assert_eq!(subtract(&a, &[s(10, 20)]), vec![s(0, 9), s(21, 100)]);
        assert_eq!(subtract(&a, &[s(0, 5), s(95, 200)]), vec![s(6, 94)]);
        assert_eq!(subtract(&a, &[s(0, 100)]), vec![]);
        assert_eq!(
            subtract(&[s(0, 10), s(20, 30)], &[s(5, 25)]),
            vec![s(0, 4), s(26, 30)]
        );
        assert_eq!(subtract(&[s(0, 10)], &[]), vec![s(0, 10)]);
        assert_eq!(
            subtract(&[s(0, u128::MAX)], &[s(0, 0), s(u128::MAX, u128::MAX)]),
            vec![s(1, u128::MAX - 1)]
        );
    }

    fn tcp(lo: u16, hi: u16) -> Service {
        Service::Ports { proto: 6, lo, hi }
    }

    fn covered(elems: &[Elem], a: u128, p: u8, port: u16) -> usize {
        elems.iter().filter(|e| e.contains(a, p, port)).count()
    }

    #[test]
    fn overlapping_grants_become_disjoint_elements() {
        let grants = [
            (s(10, 20), tcp(80, 81)),
            (s(15, 30), tcp(81, 90)),
            (s(40, 40), Service::Any),
            (s(18, 18), Service::Any),
            (
                s(50, 60),
                Service::Ports {
                    proto: 17,
                    lo: 53,
                    hi: 53,
                },
            ),
        ];
        let e = decompose(&grants);
        // Every point of every grant is in exactly one element, nothing else is.
        for a in 0..70u128 {
            for (p, ports) in [(6u8, 70..100u16), (17, 50..56), (1, 0..3)] {
                for port in ports {
                    let want = grants.iter().any(|(sp, sv)| {
                        sp.contains(a)
                            && match sv {
                                Service::Any => true,
                                Service::Ports { proto, lo, hi } => {
                                    *proto == p && (*lo..=*hi).contains(&port)
                                }
                            }
                    });
                    let n = covered(&e, a, p, port);
                    assert_eq!(
                        n,
                        usize::from(want),
                        "addr {a} proto {p} port {port}: {e:?}"
                    );
                }
            }
        }
        // Merged: 80 has 10-20 only, 81 has 10-30, 82-90 has 15-30 (18 cut out everywhere).
        assert!(e.contains(&Elem {
            addr: s(40, 40),
            proto: (0, 255),
            port: (0, 65535)
        }));
        assert!(e.contains(&Elem {
            addr: s(19, 30),
            proto: (6, 6),
            port: (81, 81)
        }));
        assert!(e.contains(&Elem {
            addr: s(19, 30),
            proto: (6, 6),
            port: (82, 90)
        }));
    }

    #[test]
    fn equal_neighbouring_port_segments_merge() {
        let e = decompose(&[(s(1, 1), tcp(80, 80)), (s(1, 1), tcp(81, 85))]);
        assert_eq!(
            e,
            vec![Elem {
                addr: s(1, 1),
                proto: (6, 6),
                port: (80, 85)
            }]
        );
        let whole = decompose(&[(s(0, 9), tcp(0, 65535)), (s(5, 5), tcp(65535, 65535))]);
        assert_eq!(whole.len(), 1, "{whole:?}");
    }

    #[test]
    fn networks_are_spans() {
        let n: IpNet = "10.0.0.0/8".parse().unwrap();
        let sp = Span::of_net(&n);
        assert_eq!(Family::V4.addr(sp.lo).to_string(), "10.0.0.0");
        assert_eq!(Family::V4.addr(sp.hi).to_string(), "10.255.255.255");
        let n6: IpNet = "fd00::/8".parse().unwrap();
        assert_eq!(
            Family::V6.addr(Span::of_net(&n6).hi).to_string(),
            "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
        );
    }
}
