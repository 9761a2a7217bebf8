//! Leaks, pure: whether an allocation's attachment is gone, and when its address may go.
//!
//! The agent knows each allocation's attachment (container id and interface) and, when it
//! could see it at ADD, the pod's network namespace path. An allocation is *live* while that
//! path exists, or while the store holds an Attachment record for it. It is *gone* when:
//! - its namespace path, seen at ADD, no longer exists;
//! - its Attachment record, seen before, is no longer in the store;
//! - the runtime's GC of its network did not list it (and nothing showed it live since).
//!
//! Live evidence always wins: a live pod's address is never released. A gone allocation
//! becomes a suspect; when it has been one for the grace period the agent looks again, right
//! before releasing it, and releases it only if it is still gone. Without evidence either way
//! (no namespace path, no Attachment ever reported, no GC) nothing happens.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use ferro_agent_api::ipam::IpamHandle;

use super::block::Alloc;

/// What the agent can tell about an allocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Evidence {
    /// Its pod is there (why).
    Live(String),
    /// Its pod looks gone (why).
    Gone(String),
    /// Nothing is known either way.
    Unknown,
}

/// The facts evidence is drawn from.
pub struct Facts<'a> {
    /// Whether a path exists.
    pub exists: &'a dyn Fn(&str) -> bool,
    /// The attachments the store holds for this node (`None`: not read).
    pub attachments: Option<&'a BTreeSet<IpamHandle>>,
    /// Attachments seen in the store at some point since the agent started.
    pub seen: &'a BTreeSet<IpamHandle>,
    /// Attachments the runtime's GC did not list, by network.
    pub gc_marked: &'a BTreeMap<IpamHandle, Instant>,
}

impl std::fmt::Debug for Facts<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Facts").finish_non_exhaustive()
    }
}

/// The evidence about `a`.
pub fn evidence(a: &Alloc, facts: &Facts<'_>) -> Evidence {
    if let Some(ns) = &a.netns {
        if (facts.exists)(ns) {
            return Evidence::Live(format!("netns {ns} exists"));
        }
        return Evidence::Gone(format!("netns {ns} is gone"));
    }
    if let Some(att) = facts.attachments {
        if att.contains(&a.handle) {
            return Evidence::Live("its Attachment is in the store".into());
        }
        if facts.seen.contains(&a.handle) {
            return Evidence::Gone("its Attachment record is gone from the store".into());
        }
    }
    if facts.gc_marked.contains_key(&a.handle) {
        return Evidence::Gone(format!(
            "the runtime's GC of network {} did not list it",
            a.network
        ));
    }
    Evidence::Unknown
}

/// A suspect: since when, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suspect {
    /// First seen gone.
    pub since: Instant,
    /// The evidence.
    pub why: String,
}

/// Updates `suspects` from the evidence about each allocation at `now`; returns the
/// handles whose grace is over (their evidence was looked at just now).
pub fn review<'a>(
    suspects: &mut BTreeMap<IpamHandle, Suspect>,
    allocations: impl Iterator<Item = &'a Alloc>,
    facts: &Facts<'_>,
    now: Instant,
    grace: Duration,
) -> Vec<(IpamHandle, String)> {
    let mut visited = BTreeSet::new();
    let mut gone = BTreeSet::new();
    let mut due = Vec::new();
    for a in allocations {
        if !visited.insert(a.handle.clone()) {
            continue; // one look per attachment (dual stack has two addresses)
        }
        match evidence(a, facts) {
            Evidence::Gone(why) => {
                gone.insert(a.handle.clone());
                let s = suspects.entry(a.handle.clone()).or_insert(Suspect {
                    since: now,
                    why: why.clone(),
                });
                s.why = why;
                if now.duration_since(s.since) >= grace {
                    due.push((a.handle.clone(), s.why.clone()));
                }
            }
            Evidence::Live(_) | Evidence::Unknown => {}
        }
    }
    suspects.retain(|h, _| gone.contains(h));
    due
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alloc(id: &str, netns: Option<&str>) -> Alloc {
        Alloc {
            netns: netns.map(str::to_string),
            ..crate::ipam::block::test_alloc(id)
        }
    }

    #[test]
    fn live_evidence_wins_and_absence_alone_is_not_evidence() {
        let exists = |p: &str| p == "/run/netns/live";
        let mut marked = BTreeMap::new();
        let seen: BTreeSet<IpamHandle> = [alloc("seen", None).handle].into();
        let atts: BTreeSet<IpamHandle> = [alloc("att", None).handle].into();
        marked.insert(alloc("live", None).handle, Instant::now());
        marked.insert(alloc("gc", None).handle, Instant::now());
        let f = Facts {
            exists: &exists,
            attachments: Some(&atts),
            seen: &seen,
            gc_marked: &marked,
        };
        assert!(matches!(
            evidence(&alloc("live", Some("/run/netns/live")), &f),
            Evidence::Live(_)
        ));
        assert_eq!(
            evidence(&alloc("x", Some("/run/netns/dead")), &f),
            Evidence::Gone("netns /run/netns/dead is gone".into())
        );
        assert!(matches!(
            evidence(&alloc("att", None), &f),
            Evidence::Live(_)
        ));
        assert!(
            matches!(evidence(&alloc("seen", None), &f), Evidence::Gone(w) if w.contains("Attachment"))
        );
        assert!(
            matches!(evidence(&alloc("gc", None), &f), Evidence::Gone(w) if w.contains("GC of network n"))
        );
        assert_eq!(evidence(&alloc("never", None), &f), Evidence::Unknown);
    }

    #[test]
    fn a_suspect_goes_after_the_grace_unless_it_comes_back() {
        let dead = std::cell::Cell::new(true);
        let exists = |_: &str| !dead.get();
        let (seen, marked) = (BTreeSet::new(), BTreeMap::new());
        let f = Facts {
            exists: &exists,
            attachments: None,
            seen: &seen,
            gc_marked: &marked,
        };
        let allocs = [alloc("a", Some("/run/netns/a")), alloc("b", None)];
        let mut s = BTreeMap::new();
        let t0 = Instant::now();
        let grace = Duration::from_secs(10);
        assert!(review(&mut s, allocs.iter(), &f, t0, grace).is_empty());
        assert_eq!(s.len(), 1, "b has no evidence");
        assert!(review(
            &mut s,
            allocs.iter(),
            &f,
            t0 + Duration::from_secs(9),
            grace
        )
        .is_empty());
        dead.set(false);
        assert!(review(
            &mut s,
            allocs.iter(),
            &f,
            t0 + Duration::from_secs(11),
            grace
        )
        .is_empty());
        assert!(s.is_empty(), "it came back: no longer a suspect");
        dead.set(true);
        let t1 = t0 + Duration::from_secs(20);
        review(&mut s, allocs.iter(), &f, t1, grace);
        let due = review(&mut s, allocs.iter(), &f, t1 + grace, grace);
        assert_eq!(
            due,
            [(
                allocs[0].handle.clone(),
                "netns /run/netns/a is gone".to_string()
            )]
        );
        // released: it is no longer among the allocations, and no longer a suspect
        review(&mut s, allocs[1..].iter(), &f, t1 + grace, grace);
        assert!(s.is_empty());
    }
}
