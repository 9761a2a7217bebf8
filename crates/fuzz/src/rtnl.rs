//! Route-netlink replies (`ferro_net::rtnl`): a received datagram framed and parsed as the
//! connection and the reply loop do, then read by the suite's link, address, route,
//! neighbour and FDB readers.
//!
//! Invariants: no panic; what is read writes back
//! (with the request builders) and reads back the same: at once for canonical values (a
//! route whose destination has no host bits, as the kernel reports routes), after one
//! normalization otherwise.

use ferro_net::rtnl::{decode_datagram, encode, Decoded};

fn reread(d: &Decoded) -> Option<Decoded> {
    let bytes = encode(d)?;
    let mut all = decode_datagram(&bytes);
    assert_eq!(all.len(), 1, "one message written, {} read", all.len());
    Some(all.remove(0).expect("our own message reads back"))
}

fn canonical(d: &Decoded) -> bool {
    match d {
        Decoded::Route(r) => {
            r.dst == r.dst.trunc() && (r.dst.prefix_len() > 0 || r.dst.addr().is_unspecified())
        }
        Decoded::Link(l) => l.kind.is_none() && l.vxlan.is_none(),
        _ => true,
    }
}

/// The target (see the module documentation).
pub fn decode(data: &[u8]) {
    for r in decode_datagram(data) {
        // An error answer ends its request; the reply loop reports it as is.
        let Ok(d) = r else {
            continue;
        };
        let Some(once) = reread(&d) else {
            continue;
        };
        if canonical(&d) {
            assert_eq!(once, d, "read, written, read again");
        }
        let twice = reread(&once).expect("writes again");
        assert_eq!(twice, once, "not stable after one normalization");
    }
}
