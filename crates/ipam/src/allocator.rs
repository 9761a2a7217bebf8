//! The allocator: pure decisions over a [`Store`], one function per verb.
//!
//! - [`allocate`] (ADD): one address per range set, round-robin from the set's
//!   `last_reserved_ip` cursor as the reference does, skipping each range's gateway, or the
//!   requested address when one falls in the set; everything taken by the call is released
//!   again if any step fails.
//! - [`release`] (DEL): every lease of the attachment, found through [`find_leases`].
//! - [`check`] (CHECK), [`gc`] (GC), [`status`] (STATUS).
//!
//! Nothing here touches files: the disk store and the test fake implement the same traits.

use std::collections::HashSet;
use std::net::IpAddr;

use ferro_spec::Attachment;
use ipnet::IpNet;

use crate::config::{ip_from_key, ip_key, IpamConfig, Range, RangeSet, Requested};
use crate::error::IpamError;
use crate::store::{lease_name, Lease, Owner, Store, StoreMut};

/// One allocated address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    /// Index of the range set it came from.
    pub set: usize,
    /// The address with its subnet's prefix length.
    pub address: IpNet,
    /// The gateway of its range.
    pub gateway: IpAddr,
}

/// The candidate addresses of a range set in allocation order: starting right after `last`
/// (when `last` lies in the set) or at the first range's start, wrapping through every range
/// of the set once, skipping each range's gateway. `last` itself comes last.
pub fn candidates(set: &RangeSet, last: Option<IpAddr>) -> Candidates<'_> {
    let total = set
        .ranges
        .iter()
        .fold(0u128, |acc, r| acc.saturating_add(r.size()));
    let from_last = last.and_then(|ip| {
        set.ranges
            .iter()
            .position(|r| r.contains(ip))
            .map(|i| (i, ip))
    });
    match (from_last, set.ranges.first()) {
        (Some((range, ip)), _) => Candidates {
            set,
            range,
            cur: ip_key(ip),
            advance: true,
            remaining: total,
        },
        (None, Some(first)) => Candidates {
            set,
            range: 0,
            cur: ip_key(first.start),
            advance: false,
            remaining: total,
        },
        (None, None) => Candidates {
            set,
            range: 0,
            cur: 0,
            advance: false,
            remaining: 0,
        },
    }
}

/// Iterator returned by [`candidates`]: `(range, address)` pairs.
#[derive(Debug, Clone)]
pub struct Candidates<'a> {
    set: &'a RangeSet,
    range: usize,
    cur: u128,
    advance: bool,
    remaining: u128,
}

impl<'a> Iterator for Candidates<'a> {
    type Item = (&'a Range, IpAddr);

    fn next(&mut self) -> Option<Self::Item> {
        let ranges = &self.set.ranges;
        loop {
            if self.remaining == 0 || ranges.is_empty() {
                return None;
            }
            if self.advance {
                if self.cur == ip_key(ranges[self.range].end) {
                    self.range = (self.range + 1) % ranges.len();
                    self.cur = ip_key(ranges[self.range].start);
                } else {
                    self.cur += 1;
                }
            }
            self.advance = true;
            self.remaining -= 1;
            let r = &ranges[self.range];
            let ip = ip_from_key(self.cur, r.start.is_ipv4());
            if ip != r.gateway {
                return Some((r, ip));
            }
        }
    }
}

/// Maps requested addresses to range sets: each must lie in a set, must not be a gateway,
/// and a set takes at most one. Checked before the store is touched.
pub fn assign_requested(
    conf: &IpamConfig,
    requested: &[Requested],
) -> Result<Vec<Option<IpAddr>>, IpamError> {
    let mut out: Vec<Option<IpAddr>> = vec![None; conf.range_sets.len()];
    for req in requested {
        let Some(i) = conf.set_for(req.ip) else {
            return Err(IpamError::RequestedOutside {
                ip: req.ip,
                source_key: req.source_key.clone(),
            });
        };
        let set = &conf.range_sets[i];
        if set.ranges.iter().any(|r| r.gateway == req.ip) {
            return Err(IpamError::RequestedGateway {
                ip: req.ip,
                source_key: req.source_key.clone(),
                set: set.to_string(),
            });
        }
        if let Some(first) = out[i] {
            return Err(IpamError::RequestedSameSet {
                first,
                second: req.ip,
                source_key: req.source_key.clone(),
                set: set.to_string(),
            });
        }
        out[i] = Some(req.ip);
    }
    Ok(out)
}

/// ADD: allocates one address per range set for `att`, the requested one where a request
/// falls in the set. Fails with [`IpamError::Duplicate`] when `att` already holds an address
/// in a configured set. On any failure, the leases taken by this call are released again.
pub fn allocate<S: StoreMut + ?Sized>(
    store: &mut S,
    conf: &IpamConfig,
    att: &Attachment,
    requested: &[Requested],
) -> Result<Vec<Allocation>, IpamError> {
    let wanted = assign_requested(conf, requested)?;

    // Duplicate allocation, through the index (a runtime never ADDs twice without a DEL in
    // between, so this is a guard, not a search).
    let mut kept = Vec::new();
    if let Some(entries) = store.index(att)? {
        for ip in entries {
            if matches!(store.owner(ip)?, Some(o) if o.is(att)) {
                if conf.set_for(ip).is_some() {
                    return Err(IpamError::Duplicate {
                        ip,
                        container_id: att.container_id.clone(),
                    });
                }
                kept.push(ip);
            }
        }
        // Until the new entry is written, a crash must leave no entry (a scan later) rather
        // than an old one that misses the leases taken below.
        store.forget(att)?;
    }

    let mut taken: Vec<IpAddr> = Vec::new();
    let outcome = allocate_all(store, conf, att, &wanted, &mut taken).and_then(|allocs| {
        let mut all = kept.clone();
        all.extend(allocs.iter().map(|a| a.address.addr()));
        store.record(att, &all)?;
        Ok(allocs)
    });
    if outcome.is_err() {
        for ip in taken {
            if let Err(e) = store.release(&lease_name(ip)) {
                log::error!("rolling back the lease of {ip}: {e}");
            }
        }
        if !kept.is_empty() {
            if let Err(e) = store.record(att, &kept) {
                log::warn!("restoring the index entry of {}: {e}", att.container_id);
            }
        }
    }
    outcome
}

fn allocate_all<S: StoreMut + ?Sized>(
    store: &mut S,
    conf: &IpamConfig,
    att: &Attachment,
    wanted: &[Option<IpAddr>],
    taken: &mut Vec<IpAddr>,
) -> Result<Vec<Allocation>, IpamError> {
    let mut allocs = Vec::with_capacity(conf.range_sets.len());
    for (idx, set) in conf.range_sets.iter().enumerate() {
        let (range, ip) = match wanted.get(idx).copied().flatten() {
            Some(ip) => {
                let range = set
                    .range_for(ip)
                    .ok_or_else(|| IpamError::RequestedOutside {
                        ip,
                        source_key: "request".into(),
                    })?;
                if !store.reserve(ip, att, idx)? {
                    let owner = store
                        .owner(ip)?
                        .map_or_else(|| "another attachment".to_string(), |o| o.to_string());
                    return Err(IpamError::RequestedTaken {
                        ip,
                        set: set.to_string(),
                        owner,
                    });
                }
                (range, ip)
            }
            None => {
                let last = store.last_reserved(idx)?;
                let mut got = None;
                for (range, ip) in candidates(set, last) {
                    if store.reserve(ip, att, idx)? {
                        got = Some((range, ip));
                        break;
                    }
                }
                got.ok_or_else(|| IpamError::Exhausted {
                    set: set.to_string(),
                })?
            }
        };
        taken.push(ip);
        allocs.push(Allocation {
            set: idx,
            address: range.address(ip),
            gateway: range.gateway,
        });
    }
    Ok(allocs)
}

/// The leases of one attachment, and whether finding them took a full scan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Found {
    /// The leases, verified against their content.
    pub leases: Vec<Lease>,
    /// True when the index could not be trusted and the whole store was scanned.
    pub scanned: bool,
}

/// Finds every lease of `att`. The index entry is trusted when it exists and every address
/// it lists is still `att`'s lease. Without an entry, `hints` (the `prevResult` addresses)
/// are tried and trusted when they give a lease of `att` in every range set. Otherwise the
/// store is scanned; a scan that finds no current-format lease of `att` returns the legacy
/// (id-only) leases of its container id, as the reference's release does.
pub fn find_leases<S: Store + ?Sized>(
    store: &S,
    conf: &IpamConfig,
    att: &Attachment,
    hints: &[IpAddr],
) -> Result<Found, IpamError> {
    let mut found: Vec<Lease> = Vec::new();
    let add = |found: &mut Vec<Lease>, lease: Lease| {
        if !found.iter().any(|l| l.name == lease.name) {
            found.push(lease);
        }
    };
    let mut complete = false;
    match store.index(att)? {
        Some(entries) => {
            complete = !entries.is_empty();
            for ip in entries {
                match store.owner(ip)? {
                    Some(owner) if owner.is(att) => add(
                        &mut found,
                        Lease {
                            ip,
                            name: lease_name(ip),
                            owner,
                        },
                    ),
                    _ => complete = false,
                }
            }
        }
        None if !hints.is_empty() => {
            for &ip in hints {
                if let Some(owner) = store.owner(ip)? {
                    if owner.is(att) {
                        add(
                            &mut found,
                            Lease {
                                ip,
                                name: lease_name(ip),
                                owner,
                            },
                        );
                    }
                }
            }
            complete = conf
                .range_sets
                .iter()
                .all(|s| found.iter().any(|l| s.contains(l.ip)));
        }
        None => {}
    }
    if complete {
        return Ok(Found {
            leases: found,
            scanned: false,
        });
    }
    let all = store.scan()?;
    for lease in all.iter().filter(|l| l.owner.is(att)) {
        add(&mut found, lease.clone());
    }
    if found.is_empty() {
        found.extend(all.into_iter().filter(|l| l.owner.is_legacy_of(att)));
    }
    Ok(Found {
        leases: found,
        scanned: true,
    })
}

/// DEL: releases every lease of `att` (see [`find_leases`]) and its index entry. Keeps going
/// after a failure and reports all failures at the end. Returns the released addresses.
pub fn release<S: StoreMut + ?Sized>(
    store: &mut S,
    conf: &IpamConfig,
    att: &Attachment,
    hints: &[IpAddr],
) -> Result<Vec<IpAddr>, IpamError> {
    let found = find_leases(&*store, conf, att, hints)?;
    let mut errors = Vec::new();
    let mut released = Vec::new();
    for lease in &found.leases {
        match store.release(&lease.name) {
            Ok(()) => released.push(lease.ip),
            Err(e) => errors.push(e),
        }
    }
    if found.scanned {
        if let Err(e) = store.sweep() {
            log::warn!("removing stale temporary files: {e}");
        }
    }
    // The entry goes last: if a release failed it stays, and the next DEL retries.
    if errors.is_empty() {
        if let Err(e) = store.forget(att) {
            errors.push(e);
        }
    }
    match IpamError::collect(errors) {
        Some(e) => Err(e),
        None => Ok(released),
    }
}

/// CHECK: with `expected` (the `prevResult` addresses), each of them that lies in a
/// configured range set must be `att`'s lease, and `att` must hold no other lease in the
/// configured sets. Without expected addresses in range, `att` must hold at least one lease
/// (the reference's rule).
pub fn check<S: Store + ?Sized>(
    store: &S,
    conf: &IpamConfig,
    att: &Attachment,
    expected: Option<&[IpAddr]>,
) -> Result<(), IpamError> {
    let who = format!("container {} interface {}", att.container_id, att.ifname);
    let expected: Vec<IpAddr> = expected
        .unwrap_or_default()
        .iter()
        .copied()
        .filter(|ip| conf.set_for(*ip).is_some())
        .collect();
    if expected.is_empty() {
        let found = find_leases(store, conf, att, &[])?;
        if found.leases.is_empty() {
            return Err(IpamError::CheckFailed(format!(
                "failed to find an address leased to {who}"
            )));
        }
        return Ok(());
    }
    for &ip in &expected {
        match store.owner(ip)? {
            Some(o) if o.is(att) || o.is_legacy_of(att) => {}
            Some(o) => {
                return Err(IpamError::CheckFailed(format!(
                    "address {ip} from prevResult is leased to {o}, not to {who}"
                )))
            }
            None => {
                return Err(IpamError::CheckFailed(format!(
                    "address {ip} from prevResult has no lease ({who})"
                )))
            }
        }
    }
    let found = find_leases(store, conf, att, &expected)?;
    if let Some(extra) = found
        .leases
        .iter()
        .find(|l| conf.set_for(l.ip).is_some() && !expected.contains(&l.ip))
    {
        return Err(IpamError::CheckFailed(format!(
            "address {} is leased to {who} but is not in prevResult",
            extra.ip
        )));
    }
    Ok(())
}

/// What a GC removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Released leases (file names).
    pub released: Vec<String>,
    /// Attachments whose index entry was removed.
    pub forgotten: Vec<Attachment>,
    /// Stale temporary files removed.
    pub swept: usize,
}

/// GC: releases every lease whose owner is not in `valid` (a legacy id-only lease is valid
/// when any valid attachment has its container id; an empty lease file is a crash leftover
/// and always released), removes index entries of attachments not in `valid`, and stale
/// temporary files. Never touches the lock or the round-robin cursors. Keeps going after a
/// failure and reports all failures at the end.
pub fn gc<S: StoreMut + ?Sized>(
    store: &mut S,
    valid: &[Attachment],
) -> Result<GcReport, IpamError> {
    let mut report = GcReport::default();
    let mut errors = Vec::new();
    match store.sweep() {
        Ok(n) => report.swept = n,
        Err(e) => errors.push(e),
    }
    match store.scan() {
        Ok(leases) => {
            for lease in leases.into_iter().filter(|l| !l.owner.is_valid_in(valid)) {
                match store.release(&lease.name) {
                    Ok(()) => report.released.push(lease.name),
                    Err(e) => errors.push(e),
                }
            }
        }
        Err(e) => errors.push(e),
    }
    match store.indexed() {
        Ok(atts) => {
            for att in atts.into_iter().filter(|a| !valid.contains(a)) {
                match store.forget(&att) {
                    Ok(()) => report.forgotten.push(att),
                    Err(e) => errors.push(e),
                }
            }
        }
        Err(e) => errors.push(e),
    }
    match IpamError::collect(errors) {
        Some(e) => Err(e),
        None => Ok(report),
    }
}

/// How many candidates STATUS probes before counting leases exactly.
const STATUS_PROBES: usize = 16;

/// STATUS: fails with [`IpamError::PoolExhausted`] (code 50) naming the first range set that
/// has no free address. Probes the next few round-robin candidates first (one `stat` each,
/// enough for any pool that is not nearly full); only when they are all taken are the
/// leases counted against each range's capacity. An empty lease file counts as free, since
/// the next ADD reclaims it.
pub fn status<S: Store + ?Sized>(store: &S, conf: &IpamConfig) -> Result<(), IpamError> {
    let mut scanned: Option<HashSet<IpAddr>> = None;
    for (idx, set) in conf.range_sets.iter().enumerate() {
        if !has_free(store, set, idx, &mut scanned)? {
            return Err(IpamError::PoolExhausted {
                set: set.to_string(),
            });
        }
    }
    Ok(())
}

fn has_free<S: Store + ?Sized>(
    store: &S,
    set: &RangeSet,
    idx: usize,
    scanned: &mut Option<HashSet<IpAddr>>,
) -> Result<bool, IpamError> {
    let last = store.last_reserved(idx)?;
    for (_, ip) in candidates(set, last).take(STATUS_PROBES) {
        if matches!(store.owner(ip)?, None | Some(Owner::Empty)) {
            return Ok(true);
        }
    }
    let held = match scanned {
        Some(held) => held,
        None => scanned.insert(
            store
                .scan()?
                .into_iter()
                .filter(|l| l.owner != Owner::Empty)
                .map(|l| l.ip)
                .collect(),
        ),
    };
    Ok(set.ranges.iter().any(|r| {
        let taken = held
            .iter()
            .filter(|ip| r.contains(**ip) && **ip != r.gateway)
            .count() as u128;
        taken < r.capacity()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeStore;
    use ferro_spec::Version;
    use serde_json::json;

    fn conf(ranges: serde_json::Value) -> IpamConfig {
        IpamConfig::parse(&json!({ "ranges": ranges }), None, Version::V1_0_0).unwrap()
    }

    fn att(id: &str) -> Attachment {
        Attachment {
            container_id: id.into(),
            ifname: "eth0".into(),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn req(s: &str) -> Requested {
        Requested {
            ip: ip(s),
            source_key: "CNI_ARGS IP".into(),
        }
    }

    fn one(store: &mut FakeStore, c: &IpamConfig, id: &str) -> String {
        let a = allocate(store, c, &att(id), &[]).unwrap();
        a[0].address.addr().to_string()
    }

    #[test]
    fn first_address_skips_the_gateway_and_carries_the_prefix() {
        let c = conf(json!([[{"subnet": "10.22.0.0/24"}]]));
        let mut s = FakeStore::default();
        let a = allocate(&mut s, &c, &att("a"), &[]).unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].address.to_string(), "10.22.0.2/24");
        assert_eq!(a[0].gateway, ip("10.22.0.1"));
        assert_eq!(s.last.get(&0), Some(&ip("10.22.0.2")));
        assert_eq!(s.index.get(&att("a")), Some(&vec![ip("10.22.0.2")]));
    }

    #[test]
    fn round_robin_continues_after_the_last_reserved_address() {
        let c = conf(json!([[{"subnet": "10.0.0.0/29"}]])); // .2-.6 usable
        let mut s = FakeStore::default();
        assert_eq!(one(&mut s, &c, "a"), "10.0.0.2");
        assert_eq!(one(&mut s, &c, "b"), "10.0.0.3");
        release(&mut s, &c, &att("a"), &[]).unwrap();
        assert_eq!(
            one(&mut s, &c, "c"),
            "10.0.0.4",
            "a freed .2, but the cursor moves on"
        );
        assert_eq!(one(&mut s, &c, "d"), "10.0.0.5");
        assert_eq!(one(&mut s, &c, "e"), "10.0.0.6");
        assert_eq!(
            one(&mut s, &c, "f"),
            "10.0.0.2",
            "wraps to the start, skipping .1"
        );
        // A cursor written by the reference plugin is honoured.
        let mut s = FakeStore::default();
        s.last.insert(0, ip("10.0.0.4"));
        assert_eq!(one(&mut s, &c, "a"), "10.0.0.5");
        // A cursor outside the set (ranges were reordered) restarts at the beginning.
        s.last.insert(0, ip("192.168.0.9"));
        assert_eq!(one(&mut s, &c, "b"), "10.0.0.2");
    }

    #[test]
    fn candidates_walk_every_range_of_a_set_once() {
        let c = conf(json!([[
            {"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.1", "rangeEnd": "10.0.0.3"},
            {"subnet": "10.0.1.0/24", "rangeStart": "10.0.1.5", "rangeEnd": "10.0.1.6"}
        ]]));
        let set = &c.range_sets[0];
        let all: Vec<String> = candidates(set, None)
            .map(|(_, ip)| ip.to_string())
            .collect();
        assert_eq!(all, ["10.0.0.2", "10.0.0.3", "10.0.1.5", "10.0.1.6"]);
        let from: Vec<String> = candidates(set, Some(ip("10.0.0.3")))
            .map(|(_, ip)| ip.to_string())
            .collect();
        assert_eq!(from, ["10.0.1.5", "10.0.1.6", "10.0.0.2", "10.0.0.3"]);
        let from_end: Vec<String> = candidates(set, Some(ip("10.0.1.6")))
            .map(|(r, ip)| format!("{ip}/{}", r.gateway))
            .collect();
        assert_eq!(
            from_end,
            [
                "10.0.0.2/10.0.0.1",
                "10.0.0.3/10.0.0.1",
                "10.0.1.5/10.0.1.1",
                "10.0.1.6/10.0.1.1"
            ]
        );
    }

    #[test]
    fn exhaustion_is_101_and_leaks_nothing() {
        let c = conf(json!([[{"subnet": "10.0.0.0/29"}]]));
        let mut s = FakeStore::default();
        for id in ["a", "b", "c", "d", "e"] {
            one(&mut s, &c, id);
        }
        let e = allocate(&mut s, &c, &att("f"), &[]).unwrap_err();
        assert_eq!(e.code().number(), 101);
        assert_eq!(
            e.to_string(),
            "no IP addresses available in range set ipam.ranges[0] (10.0.0.1-10.0.0.6)"
        );
        assert_eq!(s.leases.len(), 5);
        assert!(!s.index.contains_key(&att("f")));
        let e = status(&s, &c).unwrap_err();
        assert_eq!(e.code().number(), 50);
        assert!(e.to_string().contains("ipam.ranges[0]"), "{e}");
    }

    #[test]
    fn a_failing_second_set_rolls_back_the_first() {
        let c = conf(json!([[{"subnet": "10.0.0.0/24"}], [{"subnet": "10.1.0.0/30"}]]));
        let mut s = FakeStore::default();
        allocate(&mut s, &c, &att("a"), &[]).unwrap(); // takes the only 10.1.0.2
        let e = allocate(&mut s, &c, &att("b"), &[]).unwrap_err();
        assert!(e.to_string().contains("ipam.ranges[1]"), "{e}");
        assert_eq!(s.leases.len(), 2, "b's 10.0.0.3 was released again");
        assert!(s.owner_of("10.0.0.3").is_none());
    }

    #[test]
    fn a_failing_index_write_rolls_back_every_lease() {
        let c = conf(json!([[{"subnet": "10.0.0.0/24"}], [{"subnet": "fd00::/64"}]]));
        let mut s = FakeStore {
            fail_record: true,
            ..FakeStore::default()
        };
        let e = allocate(&mut s, &c, &att("a"), &[]).unwrap_err();
        assert_eq!(e.code().number(), 100);
        assert!(s.leases.is_empty());
        assert!(s.index.is_empty());
    }

    #[test]
    fn a_failing_reserve_rolls_back_earlier_sets() {
        let c = conf(json!([[{"subnet": "10.0.0.0/24"}], [{"subnet": "fd00::/64"}]]));
        let mut s = FakeStore {
            fail_reserve_at: Some(ip("fd00::2")),
            ..FakeStore::default()
        };
        let e = allocate(&mut s, &c, &att("a"), &[]).unwrap_err();
        assert_eq!(e.code().number(), 100);
        assert!(s.leases.is_empty());
    }

    #[test]
    fn requested_addresses() {
        let c = conf(json!([[{"subnet": "10.0.0.0/24"}], [{"subnet": "fd00::/64"}]]));
        let mut s = FakeStore::default();
        let a = allocate(&mut s, &c, &att("a"), &[req("10.0.0.50"), req("fd00::50")]).unwrap();
        assert_eq!(a[0].address.to_string(), "10.0.0.50/24");
        assert_eq!(a[1].address.to_string(), "fd00::50/64");
        // One requested, one allocated.
        let a = allocate(&mut s, &c, &att("b"), &[req("fd00::7")]).unwrap();
        assert_eq!(
            a[0].address.to_string(),
            "10.0.0.51/24",
            "cursor moved past .50"
        );
        assert_eq!(a[1].address.to_string(), "fd00::7/64");

        let before = s.leases.len();
        let cases = [
            (vec![req("10.9.0.1")], 7, "requested address 10.9.0.1 (CNI_ARGS IP) is not in any configured range set"),
            (vec![req("10.0.0.1")], 7, "requested address 10.0.0.1 (CNI_ARGS IP) is the gateway of range set ipam.ranges[0]"),
            (vec![req("10.0.0.7"), req("10.0.0.8")], 7, "requested addresses 10.0.0.7 and 10.0.0.8 (CNI_ARGS IP) are both in range set ipam.ranges[0]"),
            (vec![req("10.0.0.50")], 101, "requested IP address 10.0.0.50 is not available in range set ipam.ranges[0] (10.0.0.1-10.0.0.254): leased to container a interface eth0"),
            (vec![req("fd00::9"), req("10.0.0.50")], 101, "requested IP address 10.0.0.50"),
        ];
        for (reqs, code, want) in cases {
            let e = allocate(&mut s, &c, &att("x"), &reqs).unwrap_err();
            assert_eq!(e.code().number(), code, "{e}");
            assert!(e.to_string().starts_with(want), "{e}");
            assert_eq!(s.leases.len(), before, "nothing leaked by a failed request");
        }
    }

    #[test]
    fn dual_stack_gives_one_address_per_set() {
        let c = conf(json!([[{"subnet": "10.22.0.0/24"}], [{"subnet": "fd00:22::/64"}]]));
        let mut s = FakeStore::default();
        let a = allocate(&mut s, &c, &att("a"), &[]).unwrap();
        let got: Vec<String> = a
            .iter()
            .map(|a| format!("{} {} {}", a.set, a.address, a.gateway))
            .collect();
        assert_eq!(
            got,
            ["0 10.22.0.2/24 10.22.0.1", "1 fd00:22::2/64 fd00:22::1"]
        );
        assert_eq!(s.last.get(&1), Some(&ip("fd00:22::2")));
    }

    #[test]
    fn ip_ranges_come_first() {
        let ipr = json!([[{"subnet": "10.50.0.0/24"}]]);
        let c = IpamConfig::parse(
            &json!({"ranges": [[{"subnet": "10.0.0.0/24"}]]}),
            Some(&ipr),
            Version::V1_0_0,
        )
        .unwrap();
        let mut s = FakeStore::default();
        let a = allocate(&mut s, &c, &att("a"), &[]).unwrap();
        assert_eq!(a[0].address.to_string(), "10.50.0.2/24");
        assert_eq!(a[1].address.to_string(), "10.0.0.2/24");
        assert_eq!(s.last.get(&0), Some(&ip("10.50.0.2")));
    }

    #[test]
    fn duplicate_allocation_is_refused_and_a_stale_index_is_not_a_duplicate() {
        let c = conf(json!([[{"subnet": "10.0.0.0/24"}]]));
        let mut s = FakeStore::default();
        one(&mut s, &c, "a");
        let e = allocate(&mut s, &c, &att("a"), &[]).unwrap_err();
        assert_eq!(e.code().number(), 101);
        assert_eq!(
            e.to_string(),
            "10.0.0.2 has been allocated to a, duplicate allocation is not allowed"
        );
        // Another interface of the same container is a different attachment.
        let eth1 = Attachment {
            container_id: "a".into(),
            ifname: "eth1".into(),
        };
        allocate(&mut s, &c, &eth1, &[]).unwrap();
        // The reference plugin's DEL removed the lease but not our index entry.
        s.leases.remove("10.0.0.2");
        assert_eq!(one(&mut s, &c, "a"), "10.0.0.4");
        assert_eq!(s.index.get(&att("a")), Some(&vec![ip("10.0.0.4")]));
    }

    #[test]
    fn a_lease_outside_the_configured_sets_is_kept_in_the_index() {
        let mut s = FakeStore::default();
        let old = conf(json!([[{"subnet": "10.9.0.0/24"}]]));
        one(&mut s, &old, "a");
        let new = conf(json!([[{"subnet": "10.0.0.0/24"}]]));
        one(&mut s, &new, "a");
        assert_eq!(
            s.index.get(&att("a")),
            Some(&vec![ip("10.9.0.2"), ip("10.0.0.2")])
        );
        let released = release(&mut s, &new, &att("a"), &[]).unwrap();
        assert_eq!(
            released.len(),
            2,
            "DEL releases every lease of the attachment"
        );
        assert!(s.leases.is_empty());
    }

    #[test]
    fn a_crash_at_any_point_of_add_never_leaves_a_trusted_but_incomplete_index() {
        // `a` already holds a lease outside the new config (kept in its index entry), the
        // hardest case: a stale-but-verifiable entry must not survive into the crash window.
        let old = conf(json!([[{"subnet": "10.9.0.0/24"}]]));
        let new = conf(json!([[{"subnet": "10.0.0.0/24"}], [{"subnet": "fd00::/64"}]]));
        for crash in ["10.0.0.2", "fd00::2", "record"] {
            let mut s = FakeStore::default();
            allocate(&mut s, &old, &att("a"), &[]).unwrap();
            if crash == "record" {
                s.crash_in_record = true;
            } else {
                s.crash_after_reserve = Some(ip(crash));
            }
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                allocate(&mut s, &new, &att("a"), &[])
            }));
            assert!(r.is_err(), "the crash was simulated");
            s.crash_after_reserve = None;
            s.crash_in_record = false;
            let truth: HashSet<IpAddr> = s
                .scan()
                .unwrap()
                .into_iter()
                .filter(|l| l.owner.is(&att("a")))
                .map(|l| l.ip)
                .collect();
            let found: HashSet<IpAddr> = find_leases(&s, &new, &att("a"), &[])
                .unwrap()
                .leases
                .into_iter()
                .map(|l| l.ip)
                .collect();
            assert_eq!(found, truth, "crash at {crash}");
            release(&mut s, &new, &att("a"), &[]).unwrap();
            assert!(
                s.leases.is_empty(),
                "crash at {crash}: DEL left {:?}",
                s.leases
            );
        }
    }

    #[test]
    fn find_leases_uses_the_index_then_hints_then_a_scan() {
        let c = conf(json!([[{"subnet": "10.0.0.0/24"}], [{"subnet": "fd00::/64"}]]));
        let mut s = FakeStore::default();
        for id in ["a", "b", "c"] {
            allocate(&mut s, &c, &att(id), &[]).unwrap();
        }
        let f = find_leases(&s, &c, &att("b"), &[]).unwrap();
        assert_eq!((f.leases.len(), f.scanned, s.scans.get()), (2, false, 0));

        // No index entry (leases written by the reference plugin): prevResult hints suffice.
        s.index.remove(&att("b"));
        let hints = [ip("10.0.0.3"), ip("fd00::3")];
        let f = find_leases(&s, &c, &att("b"), &hints).unwrap();
        assert_eq!((f.leases.len(), f.scanned, s.scans.get()), (2, false, 0));
        // Hints that do not cover every set, or no hints: scan.
        let f = find_leases(&s, &c, &att("b"), &hints[..1]).unwrap();
        assert_eq!((f.leases.len(), f.scanned, s.scans.get()), (2, true, 1));
        let f = find_leases(&s, &c, &att("b"), &[]).unwrap();
        assert_eq!((f.leases.len(), f.scanned), (2, true));

        // A stale entry (one lease gone behind our back) is not trusted.
        s.leases.remove("fd00::4");
        let f = find_leases(&s, &c, &att("c"), &[]).unwrap();
        assert_eq!((f.leases.len(), f.scanned), (1, true));
    }

    #[test]
    fn release_takes_every_lease_of_the_attachment_and_nothing_else() {
        let c = conf(json!([[{"subnet": "10.0.0.0/24"}], [{"subnet": "fd00::/64"}]]));
        let mut s = FakeStore::default();
        allocate(&mut s, &c, &att("a"), &[]).unwrap();
        allocate(&mut s, &c, &att("b"), &[]).unwrap();
        let a1 = Attachment {
            container_id: "a".into(),
            ifname: "net1".into(),
        };
        allocate(&mut s, &c, &a1, &[]).unwrap();
        let mut got = release(&mut s, &c, &att("a"), &[]).unwrap();
        got.sort();
        assert_eq!(got, [ip("10.0.0.2"), ip("fd00::2")]);
        assert_eq!(s.leases.len(), 4, "b's and a/net1's leases stay");
        assert!(!s.index.contains_key(&att("a")));
        assert_eq!(s.scans.get(), 0, "the normal DEL path does not scan");
        // Idempotent.
        assert!(release(&mut s, &c, &att("a"), &[]).unwrap().is_empty());
        assert_eq!(s.leases.len(), 4);
    }

    #[test]
    fn release_handles_legacy_leases_like_the_reference() {
        let c = conf(json!([[{"subnet": "10.0.0.0/24"}]]));
        let mut s = FakeStore::default();
        s.put("10.0.0.7", b"old");
        s.put("10.0.0.8", b"other");
        assert_eq!(
            release(&mut s, &c, &att("old"), &[]).unwrap(),
            [ip("10.0.0.7")]
        );
        assert!(s.owner_of("10.0.0.8").is_some());
        // With a current-format lease present, the legacy one is left (it may be another
        // interface's).
        s.put("10.0.0.7", b"old");
        s.put("10.0.0.9", b"old\r\neth0");
        assert_eq!(
            release(&mut s, &c, &att("old"), &[]).unwrap(),
            [ip("10.0.0.9")]
        );
        assert!(s.owner_of("10.0.0.7").is_some());
        assert!(
            s.sweeps > 0,
            "a scan under the lock also sweeps temporary files"
        );
    }

    #[test]
    fn check_compares_leases_with_prev_result() {
        let c = conf(json!([[{"subnet": "10.0.0.0/24"}], [{"subnet": "fd00::/64"}]]));
        let mut s = FakeStore::default();
        allocate(&mut s, &c, &att("a"), &[]).unwrap();
        allocate(&mut s, &c, &att("b"), &[]).unwrap();
        let mine = [ip("10.0.0.2"), ip("fd00::2")];
        check(&s, &c, &att("a"), Some(&mine)).unwrap();
        check(&s, &c, &att("a"), None).unwrap();
        // Addresses outside our ranges (another plugin's) are ignored.
        check(
            &s,
            &c,
            &att("a"),
            Some(&[mine[0], mine[1], ip("192.168.1.1")]),
        )
        .unwrap();

        let e = check(&s, &c, &att("a"), Some(&[ip("10.0.0.3"), mine[1]])).unwrap_err();
        assert_eq!(e.code().number(), 103);
        assert!(
            e.to_string().contains("10.0.0.3") && e.to_string().contains("container b"),
            "{e}"
        );
        let e = check(&s, &c, &att("a"), Some(&[ip("10.0.0.9"), mine[1]])).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("address 10.0.0.9 from prevResult has no lease"),
            "{e}"
        );
        let e = check(&s, &c, &att("a"), Some(&mine[..1])).unwrap_err();
        assert!(
            e.to_string().starts_with(
                "address fd00::2 is leased to container a interface eth0 but is not in prevResult"
            ),
            "{e}"
        );
        let e = check(&s, &c, &att("z"), None).unwrap_err();
        assert_eq!(e.code().number(), 103);
        assert!(e.to_string().contains("container z"), "{e}");
        // A legacy lease of the container satisfies CHECK.
        s.put("10.0.0.77", b"old");
        check(&s, &c, &att("old"), Some(&[ip("10.0.0.77")])).unwrap();
        check(&s, &c, &att("old"), None).unwrap();
    }

    #[test]
    fn gc_releases_only_invalid_leases() {
        let c = conf(json!([[{"subnet": "10.0.0.0/24"}]]));
        let mut s = FakeStore::default();
        for id in ["a", "b", "c"] {
            one(&mut s, &c, id);
        }
        s.put("10.0.0.50", b"legacy-keep");
        s.put("10.0.0.51", b"legacy-drop");
        s.put("10.0.0.52", b"");
        s.temps = 2;
        let valid = [
            att("a"),
            Attachment {
                container_id: "legacy-keep".into(),
                ifname: "net9".into(),
            },
        ];
        let r = gc(&mut s, &valid).unwrap();
        let mut released = r.released.clone();
        released.sort();
        assert_eq!(released, ["10.0.0.3", "10.0.0.4", "10.0.0.51", "10.0.0.52"]);
        assert_eq!(r.forgotten.len(), 2);
        assert_eq!(r.swept, 2);
        let mut left: Vec<&String> = s.leases.keys().collect();
        left.sort();
        assert_eq!(left, ["10.0.0.2", "10.0.0.50"]);
        assert!(s.index.contains_key(&att("a")) && !s.index.contains_key(&att("b")));
        assert_eq!(s.last.get(&0), Some(&ip("10.0.0.4")), "the cursor is kept");
        // Twice is a no-op; an empty valid set releases everything.
        assert!(gc(&mut s, &valid).unwrap().released.is_empty());
        gc(&mut s, &[]).unwrap();
        assert!(s.leases.is_empty() && s.index.is_empty());
    }

    #[test]
    fn status_probes_then_counts() {
        let c = conf(
            json!([[{"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.10", "rangeEnd": "10.0.0.40"}]]),
        );
        let mut s = FakeStore::default();
        status(&s, &c).unwrap();
        assert_eq!(s.scans.get(), 0);
        // Fill all but one address, far from the cursor: the probes miss it, the count finds it.
        for i in 10..=40 {
            if i != 30 {
                s.put(&format!("10.0.0.{i}"), b"x\r\neth0");
            }
        }
        s.last.insert(0, ip("10.0.0.40"));
        status(&s, &c).unwrap();
        assert_eq!(s.scans.get(), 1);
        s.put("10.0.0.30", b"y\r\neth0");
        let e = status(&s, &c).unwrap_err();
        assert_eq!(e.code().number(), 50);
        // An empty (crashed) lease file is reclaimable, so it counts as free.
        s.put("10.0.0.30", b"");
        status(&s, &c).unwrap();
        // A lease file named after the gateway does not use up capacity.
        let c = conf(json!([[{"subnet": "10.0.0.0/29"}]]));
        let mut s = FakeStore::default();
        for i in 1..=6 {
            s.put(&format!("10.0.0.{i}"), b"x\r\neth0");
        }
        assert!(status(&s, &c).is_err());
        s.leases.remove("10.0.0.6");
        status(&s, &c).unwrap();
    }

    #[test]
    fn reserve_reclaims_empty_leases() {
        let c = conf(json!([[{"subnet": "10.0.0.0/29"}]]));
        let mut s = FakeStore::default();
        s.put("10.0.0.2", b"");
        assert_eq!(one(&mut s, &c, "a"), "10.0.0.2");
    }
}
