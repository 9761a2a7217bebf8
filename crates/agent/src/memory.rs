//! Giving memory back to the system after a burst of work.
//!
//! A sync of a large cluster (the first one above all: every object decoded, every table
//! planned whole) allocates far more for a moment than the agent keeps, and the C library's
//! allocator keeps what was freed for later: the process's resident memory would stay at
//! its peak. So every few seconds, when the cluster changed since the last time, the agent
//! asks the allocator to return its free pages to the system (`malloc_trim`). While nothing
//! changes it does nothing: an idle agent stays idle.

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
