//! What the allocator needs from a lease store, and the lease format shared by every store.
//!
//! [`Store`] is the read side (usable without the lock: CHECK, STATUS). [`StoreMut`] adds the
//! operations that change leases; a store hands it out only while holding its lock
//! ([`crate::disk::DiskStore::lock`]), so every `StoreMut` method runs under the lock.
//!
//! The per-attachment index ([`Store::index`], [`StoreMut::record`]) is a cache: a list of
//! addresses recorded after the leases were written. Callers verify every entry against the
//! lease itself ([`Store::owner`]) and fall back to [`Store::scan`] when the index is missing
//! or any entry does not verify, so a missing or stale index only costs a scan.

use std::fmt;
use std::net::IpAddr;

use ferro_spec::Attachment;

use crate::error::IpamError;

/// Who holds a lease, as read from its content.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Owner {
    /// `<containerID>\r\n<ifname>`: the current format.
    Attachment(Attachment),
    /// `<containerID>` alone: the format of old reference versions. It belongs to that
    /// container id, whatever the interface.
    Legacy(String),
    /// Empty (or white space only): a writer crashed between creating and filling the file.
    /// Under the lock this can only be a crash leftover, so the address is reclaimable.
    Empty,
}

impl Owner {
    /// Parses lease content the way the reference compares it: surrounding white space is
    /// trimmed, then `<id>\r\n<ifname>` or, without a line break, `<id>` alone.
    pub fn parse(content: &[u8]) -> Owner {
        let text = String::from_utf8_lossy(content);
        let text = text.trim();
        if text.is_empty() {
            return Owner::Empty;
        }
        match text.split_once("\r\n") {
            Some((id, ifname)) => Owner::Attachment(Attachment {
                container_id: id.trim().to_string(),
                ifname: ifname.to_string(),
            }),
            None => Owner::Legacy(text.to_string()),
        }
    }

    /// True when this lease is exactly `att`'s (current format).
    pub fn is(&self, att: &Attachment) -> bool {
        matches!(self, Owner::Attachment(a) if a == att)
    }

    /// True when this is a legacy (id-only) lease of `att`'s container.
    pub fn is_legacy_of(&self, att: &Attachment) -> bool {
        matches!(self, Owner::Legacy(id) if *id == att.container_id)
    }

    /// True when the GC valid set keeps this lease: an attachment lease whose attachment is
    /// listed, or a legacy lease whose container id appears in any listed attachment.
    pub fn is_valid_in(&self, valid: &[Attachment]) -> bool {
        match self {
            Owner::Attachment(a) => valid.contains(a),
            Owner::Legacy(id) => valid.iter().any(|v| v.container_id == *id),
            Owner::Empty => false,
        }
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Owner::Attachment(a) => {
                write!(f, "container {} interface {}", a.container_id, a.ifname)
            }
            Owner::Legacy(id) => write!(f, "container {id} (legacy lease)"),
            Owner::Empty => f.write_str("nobody (empty lease file)"),
        }
    }
}

/// The lease content for `att`, byte for byte what the reference writes.
pub fn lease_content(att: &Attachment) -> String {
    format!("{}\r\n{}", att.container_id.trim(), att.ifname)
}

/// The file name of the lease of `ip`: the address's canonical text (`10.22.0.2`,
/// `fd00:22::2`), as Go's `net.IP.String()` writes it.
pub fn lease_name(ip: IpAddr) -> String {
    ip.to_string()
}

/// One lease found by a scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The address.
    pub ip: IpAddr,
    /// The file name (normally [`lease_name`] of `ip`; a hand-made file may spell it
    /// differently, and is released under its own name).
    pub name: String,
    /// Who holds it.
    pub owner: Owner,
}

/// Reading leases. Implemented by the disk store (with or without its lock held) and by the
/// in-memory fake used in tests.
pub trait Store {
    /// Who holds `ip`, or `None` when it is free.
    fn owner(&self, ip: IpAddr) -> Result<Option<Owner>, IpamError>;

    /// The address last reserved in range set `set` (round-robin cursor), if readable.
    fn last_reserved(&self, set: usize) -> Result<Option<IpAddr>, IpamError>;

    /// The addresses recorded for `att`, or `None` when it has no index entry. Unverified.
    fn index(&self, att: &Attachment) -> Result<Option<Vec<IpAddr>>, IpamError>;

    /// Every attachment that has an index entry.
    fn indexed(&self) -> Result<Vec<Attachment>, IpamError>;

    /// Every lease (O(number of leases)).
    fn scan(&self) -> Result<Vec<Lease>, IpamError>;
}

/// Changing leases; only available while the store's lock is held.
pub trait StoreMut: Store {
    /// Atomically creates the lease of `ip` for `att` and records `ip` as range set `set`'s
    /// cursor. `Ok(false)` when another lease holds `ip`. An empty lease file (a crashed
    /// writer's) is reclaimed.
    fn reserve(&mut self, ip: IpAddr, att: &Attachment, set: usize) -> Result<bool, IpamError>;

    /// Removes the lease file `name` (see [`Lease::name`]); a missing file is success.
    fn release(&mut self, name: &str) -> Result<(), IpamError>;

    /// Writes `att`'s index entry listing `ips` (replacing any previous one), after making
    /// the leases durable.
    fn record(&mut self, att: &Attachment, ips: &[IpAddr]) -> Result<(), IpamError>;

    /// Removes `att`'s index entry; a missing entry is success.
    fn forget(&mut self, att: &Attachment) -> Result<(), IpamError>;

    /// Removes temporary files left by crashed writers; returns how many.
    fn sweep(&mut self) -> Result<usize, IpamError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn att(id: &str, ifname: &str) -> Attachment {
        Attachment {
            container_id: id.into(),
            ifname: ifname.into(),
        }
    }

    #[test]
    fn lease_format_is_the_reference_one() {
        assert_eq!(
            lease_content(&att("ctr1", "eth0")).as_bytes(),
            b"ctr1\r\neth0"
        );
        assert_eq!(lease_name("10.22.0.2".parse().unwrap()), "10.22.0.2");
        assert_eq!(
            lease_name("fd00:0:0:1:0:0:0:5".parse().unwrap()),
            "fd00:0:0:1::5"
        );
        assert_eq!(lease_name("fd00:22::2".parse().unwrap()), "fd00:22::2");
        assert_eq!(
            lease_name("2001:db8:0:0:1:0:0:1".parse().unwrap()),
            "2001:db8::1:0:0:1"
        );
    }

    #[test]
    fn parses_every_content_the_reference_can_leave() {
        assert_eq!(
            Owner::parse(b"ctr1\r\neth0"),
            Owner::Attachment(att("ctr1", "eth0"))
        );
        assert_eq!(
            Owner::parse(b"ctr1\r\neth0\n"),
            Owner::Attachment(att("ctr1", "eth0"))
        );
        assert_eq!(Owner::parse(b"ctr1"), Owner::Legacy("ctr1".into()));
        assert_eq!(Owner::parse(b"ctr1\n"), Owner::Legacy("ctr1".into()));
        assert_eq!(Owner::parse(b""), Owner::Empty);
        assert_eq!(Owner::parse(b" \r\n"), Owner::Empty);
    }

    #[test]
    fn ownership_rules() {
        let a = att("ctr1", "eth0");
        assert!(Owner::parse(b"ctr1\r\neth0").is(&a));
        assert!(!Owner::parse(b"ctr1\r\neth1").is(&a));
        assert!(!Owner::parse(b"ctr1").is(&a));
        assert!(Owner::parse(b"ctr1").is_legacy_of(&a));
        assert!(!Owner::parse(b"ctr2").is_legacy_of(&a));
        let valid = [att("ctr1", "net1")];
        assert!(
            Owner::Legacy("ctr1".into()).is_valid_in(&valid),
            "legacy belongs to the id"
        );
        assert!(!Owner::Legacy("ctr2".into()).is_valid_in(&valid));
        assert!(!Owner::Attachment(a.clone()).is_valid_in(&valid));
        assert!(Owner::Attachment(att("ctr1", "net1")).is_valid_in(&valid));
        assert!(!Owner::Empty.is_valid_in(&valid));
    }
}
