//! Detached veth pairs, deleted in batches.
//!
//! With an agent configured, a plugin's DEL only detaches the attachment's veth pair (down,
//! out of its bridge, renamed and marked: `ferro_net::rtnl::detach`) and leaves the deletion
//! here. Deleting one pair makes the kernel wait for RCU grace periods (about 20 ms); deleting
//! the whole group of detached links in one request waits about as long for all of them.
//! The reaper deletes on a kernel thread of its own (a deletion holds it for those 20 ms
//! without holding up the agent's other kernel work): a DEL report nudges it; it waits
//! [`WINDOW`] for more, then deletes every detached link of the node in one request. Nudges
//! that arrive meanwhile make the next batch. It also sweeps at start (pairs left by an agent
//! that died) and every [`SWEEP`]. It deletes only links carrying every mark of a detached
//! link (name prefix, group, alias).

use std::time::Duration;

use tokio::sync::mpsc;

use crate::kernel::KernelWorker;
use crate::AgentError;

/// How long a nudge waits for others before the batch is deleted.
pub const WINDOW: Duration = Duration::from_millis(5);
/// How often the node is swept without a nudge.
pub const SWEEP: Duration = Duration::from_secs(10);

/// The reaper (its task ends when every handle is dropped).
#[derive(Debug, Clone)]
pub struct Reaper {
    tx: mpsc::UnboundedSender<()>,
}

async fn reap(worker: &KernelWorker) {
    match worker.run(|h| h.reap_detached()).await.and_then(|r| r) {
        Ok(r) => {
            if !r.deleted.is_empty() {
                log::debug!("deleted {} detached links", r.deleted.len());
            }
            if !r.foreign.is_empty() {
                log::warn!(
                    "links {:?} are in the group of detached links without the other marks: \
                     left alone",
                    r.foreign
                );
            }
        }
        Err(e) => log::warn!("deleting detached links: {e}"),
    }
}

impl Reaper {
    /// Starts the reaper in the caller's network namespace (the node's); it sweeps first.
    pub fn start() -> Result<Reaper, AgentError> {
        let worker = KernelWorker::start_named("reaper")?;
        let (tx, mut rx) = mpsc::unbounded_channel::<()>();
        tokio::spawn(async move {
            reap(&worker).await;
            loop {
                match tokio::time::timeout(SWEEP, rx.recv()).await {
                    Ok(Some(())) => {
                        tokio::time::sleep(WINDOW).await;
                        while rx.try_recv().is_ok() {}
                    }
                    Ok(None) => return,
                    Err(_) => {}
                }
                reap(&worker).await;
            }
        });
        Ok(Reaper { tx })
    }

    /// A pair was detached: delete it with the next batch.
    pub fn nudge(&self) {
        let _ = self.tx.send(());
    }
}
