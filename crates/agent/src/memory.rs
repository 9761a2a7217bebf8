//! Giving memory back to the system after a burst of work.
//!
//! A sync of a large cluster (the first one above all: every object decoded, every table
//! planned whole) allocates far more for a moment than the agent keeps, and the C library's
//! allocator keeps what was freed for later: the process's resident memory would stay at
//! its peak. So every few seconds, when the cluster changed since the last time, the agent
//! asks the allocator to return its free pages to the system (`malloc_trim`). While nothing
//! changes it does nothing: an idle agent stays idle.
//!
//! The allocator is also set up once at start ([`configure`]): by default the C library gives
//! each thread that meets contention an arena of its own (up to eight per core), and memory
//! freed in one arena serves only that arena's threads. The first sync runs on the runtime's
//! workers and blocking threads at once, so each held its own share of the burst at the
//! peak. Two arenas, one per worker of the runtime, lower the peak of the first sync of a
//! large cluster by about 5 MB (`docs/performance.md`, "Fifth round").

use std::time::Duration;

use crate::cache::Cache;

/// How often the cluster's revision is looked at.
const EVERY: Duration = Duration::from_secs(2);

/// Runs until the runtime stops.
pub async fn run(cache: Cache) {
    let mut seen = 0;
    loop {
        tokio::time::sleep(EVERY).await;
        let rev = cache.snapshot().revision();
        if rev != seen {
            seen = rev;
            trim();
        }
    }
}

/// At most this many allocator arenas: one per worker of the runtime (see [`configure`]).
const ARENAS: i32 = crate::WORKERS as i32;

/// Sets the allocator up for the agent (glibc; elsewhere nothing): at most `ARENAS`
/// arenas. Called before any thread is started; a refusal is logged and the default kept.
pub fn configure() {
    if !limit_arenas(ARENAS) {
        log::warn!("the allocator refused M_ARENA_MAX={ARENAS}; keeping its default");
    }
}

/// Limits the allocator to `n` arenas (`mallopt(M_ARENA_MAX)`): whether it accepted.
/// Without glibc, nothing to do: `true`.
#[allow(unsafe_code)]
fn limit_arenas(n: i32) -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt takes two integers and changes only the allocator's own settings.
    unsafe {
        nix::libc::mallopt(nix::libc::M_ARENA_MAX, n) == 1
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        let _ = n;
        true
    }
}

/// Returns the allocator's free pages to the system (glibc; elsewhere nothing).
#[allow(unsafe_code)]
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointer and touches only the allocator's own free
    // lists, under the allocator's locks: it is safe from any thread at any time.
    unsafe {
        nix::libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allocator_takes_the_arena_limit() {
        assert!(
            limit_arenas(ARENAS),
            "mallopt(M_ARENA_MAX, {ARENAS}) refused"
        );
        assert_eq!(ARENAS as usize, crate::WORKERS);
    }
}
