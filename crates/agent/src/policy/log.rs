//! The log of denied connection attempts (`policy.denyLog`): each isolated pod's chain sends
//! what it drops to an nflog group, at most `ratePerSecond` packets a second per pod and
//! direction (`limit` in the rule); a thread of the agent reads them and writes one line per
//! attempt with both ends' pods:
//!
//! ```text
//! policy: denied ingress of x/a: y/b 10.244.1.5:43210 -> x/a 10.244.0.7:80 TCP
//! ```
//!
//! The agent also caps its own output ([`LINES_PER_SECOND`]); what it leaves out, and what
//! the kernel dropped when the reader fell behind, is counted in one line per second. A
//! flood costs the datapath nothing (the kernel limits first) and the agent a bounded
//! amount of work.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferro_nftables::nflog::NflogSocket;
use ferro_policy::ruleset::LogOptions;

use super::Shared;

/// Lines written per second at most, whatever the number of pods.
pub const LINES_PER_SECOND: u32 = 100;

/// The reader; stops when dropped.
#[derive(Debug)]
pub struct DenyLog {
    stop: Arc<AtomicBool>,
}

impl Drop for DenyLog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl DenyLog {
    /// Starts reading group `opts.group`.
    pub(super) fn start(opts: LogOptions, shared: Arc<Shared>) -> DenyLog {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let spawned = std::thread::Builder::new()
            .name("policy-denylog".into())
            .spawn(move || read(opts.group, &shared, &s));
        if let Err(e) = spawned {
            ::log::warn!("policy: deny log: starting its thread: {e}");
        }
        DenyLog { stop }
    }
}

/// `name address:port` of one end.
fn end(shared: &Shared, a: IpAddr, port: u16) -> String {
    let who = shared
        .model
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .cluster()
        .and_then(|c| c.pod_at(a).map(|pod| pod.key.to_string()))
        .unwrap_or_else(|| "-".into());
    let addr = if a.is_ipv6() {
        format!("[{a}]")
    } else {
        a.to_string()
    };
    if port == 0 {
        format!("{who} {addr}")
    } else {
        format!("{who} {addr}:{port}")
    }
}

fn read(group: u16, shared: &Shared, stop: &AtomicBool) {
    let mut sock = match NflogSocket::bind(group) {
        Ok(s) => s,
        Err(e) => {
            ::log::warn!("policy: deny log: {e}: denied attempts are not logged");
            return;
        }
    };
    ::log::info!("policy: deny log reading nflog group {group}");
    let mut window = Instant::now();
    let mut written = 0u32;
    let mut skipped = 0u64;
    let mut lost = false;
    while !stop.load(Ordering::Relaxed) {
        let batch = match sock.next(Duration::from_millis(500)) {
            Ok(b) => b,
            Err(e) => {
                ::log::warn!("policy: deny log: {e}");
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        lost |= batch.lost;
        if window.elapsed() >= Duration::from_secs(1) {
            if skipped > 0 || lost {
                ::log::info!(
                    "policy: {skipped} more denied attempts not logged{}",
                    if lost {
                        " (and some the kernel dropped: the log fell behind)"
                    } else {
                        ""
                    }
                );
            }
            window = Instant::now();
            written = 0;
            skipped = 0;
            lost = false;
        }
        for p in batch.packets {
            if written >= LINES_PER_SECOND {
                skipped += 1;
                continue;
            }
            written += 1;
            let Some(s) = p.summary() else { continue };
            let proto = match ferro_policy::Proto::from_number(s.proto) {
                Some(p) => p.to_string(),
                None => ferro_nftables::proto_name(s.proto).to_ascii_uppercase(),
            };
            ::log::info!(
                "policy: denied {}: {} -> {} {proto}",
                p.prefix.replacen(' ', " of ", 1),
                end(shared, s.src, s.sport),
                end(shared, s.dst, s.dport),
            );
        }
    }
}
