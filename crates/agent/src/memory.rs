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

    /// The allocator's arenas now (`malloc_info`'s `<heap nr=...>` entries).
    #[allow(unsafe_code)]
    fn arenas() -> usize {
        use nix::libc;
        let (mut buf, mut len): (*mut libc::c_char, libc::size_t) = (std::ptr::null_mut(), 0);
        // SAFETY: open_memstream gives a stream writing to a buffer it allocates; the
        // stream is closed before the buffer is read, then the buffer is freed.
        unsafe {
            let f = libc::open_memstream(&mut buf, &mut len);
            assert!(!f.is_null(), "open_memstream failed");
            libc::malloc_info(0, f);
            libc::fclose(f);
            let xml = std::slice::from_raw_parts(buf as *const u8, len).to_vec();
            libc::free(buf.cast());
            String::from_utf8_lossy(&xml).matches("<heap nr=").count()
        }
    }

    /// Threads that allocate at the same time, all alive until each has allocated.
    fn busy_threads(n: usize) {
        let gate = std::sync::Barrier::new(n);
        std::thread::scope(|s| {
            for _ in 0..n {
                s.spawn(|| {
                    let v: Vec<Vec<u8>> = (0..64).map(|i| vec![i as u8; 4096]).collect();
                    gate.wait();
                    drop(v);
                });
            }
        });
    }

    /// Set in the process that runs the check on its own.
    const PROBE: &str = "FERRO_ARENA_PROBE";

    #[test]
    fn with_the_limit_new_threads_get_no_arenas_of_their_own() {
        assert_eq!(ARENAS as usize, crate::WORKERS);
        if std::env::var_os(PROBE).is_none() {
            // The arenas are the process's: other tests' threads already made theirs (up to
            // the default's limit), so the check runs alone in a process of its own.
            let out = std::process::Command::new(std::env::current_exe().unwrap())
                .args([
                    "memory::tests::with_the_limit_new_threads_get_no_arenas_of_their_own",
                    "--exact",
                    "--test-threads=1",
                ])
                .env(PROBE, "1")
                .output()
                .unwrap();
            assert!(
                out.status.success() && String::from_utf8_lossy(&out.stdout).contains("1 passed"),
                "the check in its own process failed:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            return;
        }
        // Without the limit, new threads that allocate get arenas of their own.
        let before = arenas();
        busy_threads(4);
        let unlimited = arenas();
        assert!(
            unlimited > before.max(ARENAS as usize),
            "4 allocating threads made no new arena ({before} -> {unlimited}): cannot test"
        );
        configure();
        busy_threads(8);
        assert_eq!(
            arenas(),
            unlimited,
            "threads made arenas past the limit of {ARENAS}"
        );
    }
}
