//! Deterministic names and MAC addresses for the objects a plugin creates per attachment.
//!
//! Host-side interface names are derived from `(container id, ifname)`, so DEL finds them
//! without the pod's namespace and without `prevResult`, and a repeated ADD collides instead
//! of leaking a second veth.

use sha2::{Digest, Sha256};

fn digest(parts: &[&str]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    h.finalize().into()
}

/// Lower-case hex of `bytes`, two digits each (a table lookup per nibble: a plugin formats
/// a few hashes per ADD, and `format!` per byte costs an allocation each).
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        push_hex(&mut s, *b);
    }
    s
}

fn push_hex(s: &mut String, b: u8) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    s.push(char::from(DIGITS[usize::from(b >> 4)]));
    s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
}

/// `<prefix><hex>` filling the 15 characters an interface name may have.
pub fn host_ifname(prefix: &str, container_id: &str, ifname: &str) -> String {
    let keep = 15usize.saturating_sub(prefix.len()).max(1);
    let mut name = prefix.to_string();
    name.push_str(&hex(&digest(&[container_id, ifname]))[..keep]);
    name
}

/// A stable, locally administered unicast MAC derived from `parts`.
pub fn mac(parts: &[&str]) -> [u8; 6] {
    let d = digest(parts);
    let mut m = [0u8; 6];
    m.copy_from_slice(&d[..6]);
    m[0] = (m[0] & 0xfe) | 0x02;
    m
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn mac_string(m: &[u8]) -> String {
    let mut s = String::with_capacity(m.len() * 3);
    for (i, b) in m.iter().enumerate() {
        if i > 0 {
            s.push(':');
        }
        push_hex(&mut s, *b);
    }
    s
}

/// Parses `aa:bb:cc:dd:ee:ff` (case-insensitive).
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return None;
    }
    let mut m = [0u8; 6];
    for (i, p) in parts.iter().enumerate() {
        if p.len() != 2 {
            return None;
        }
        m[i] = u8::from_str_radix(p, 16).ok()?;
    }
    Some(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_fit_ifnamsiz_and_are_stable() {
        let a = host_ifname("veth", "ctr1", "eth0");
        assert_eq!(a.len(), 15);
        assert!(a.starts_with("veth"));
        assert_eq!(a, host_ifname("veth", "ctr1", "eth0"));
        assert_ne!(a, host_ifname("veth", "ctr1", "eth1"));
        assert_ne!(a, host_ifname("veth", "ctr2", "eth0"));
        // the separator keeps ("ab","c") and ("a","bc") apart
        assert_ne!(host_ifname("v", "ab", "c"), host_ifname("v", "a", "bc"));
    }

    #[test]
    fn macs_are_local_unicast_and_round_trip() {
        let m = mac(&["x", "y"]);
        assert_eq!(m[0] & 0x01, 0, "unicast");
        assert_eq!(m[0] & 0x02, 0x02, "locally administered");
        let s = mac_string(&m);
        assert_eq!(parse_mac(&s), Some(m));
        assert_eq!(
            parse_mac("AA:bb:cc:dd:ee:ff"),
            Some([0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff])
        );
        assert_eq!(parse_mac("aa:bb:cc:dd:ee"), None);
        assert_eq!(parse_mac("aa:bb:cc:dd:ee:fg"), None);
    }
}
