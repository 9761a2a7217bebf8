//! Replays the spool: requests plugins could not deliver while the agent was away (a DEL
//! when the socket did not answer), kept beside the socket (see `ferro_agent_api::spool`).
//! They are replayed, oldest first, before the agent serves anything and then every two
//! seconds (for entries written while it was starting). An entry the store cannot take now
//! stays for the next pass; one that cannot be read is logged and dropped.

use std::time::Duration;

use ferro_agent_api::spool::Spool;
use ferro_agent_api::{ErrorCode, Response};
use ferro_store::Store;

use crate::api::Api;

/// How often the running agent looks at the spool.
pub const EVERY: Duration = Duration::from_secs(2);

/// One pass; how many entries were handled.
pub async fn replay<S: Store + Clone + 'static>(api: &Api<S>, spool: &Spool) -> usize {
    let entries = match spool.entries() {
        Ok(e) => e,
        Err(e) => {
            log::warn!("spool {}: {e}", spool.dir().display());
            return 0;
        }
    };
    let mut done = 0;
    for entry in entries {
        match &entry.request {
            Err(e) => log::warn!("spool {}: unreadable, dropped: {e}", entry.path.display()),
            Ok(req) => {
                let resp = api.handle_spooled(req.clone(), entry.at_ms).await;
                match resp {
                    Response::Error { error } if error.code == ErrorCode::Unavailable => {
                        log::debug!("spool {}: {}; kept", entry.path.display(), error.message);
                        // keep the order: later entries wait too
                        break;
                    }
                    Response::Error { error } => log::warn!(
                        "spool {}: {}: {}; dropped",
                        entry.path.display(),
                        error.code.as_str(),
                        error.message
                    ),
                    _ => log::info!("spool: replayed {}", entry.path.display()),
                }
            }
        }
        if let Err(e) = spool.remove(&entry) {
            log::warn!("spool {}: removing: {e}", entry.path.display());
        }
        done += 1;
    }
    done
}

/// Replays the spool every [`EVERY`] until the task is dropped.
pub async fn replay_loop<S: Store + Clone + 'static>(api: std::sync::Arc<Api<S>>, spool: Spool) {
    loop {
        tokio::time::sleep(EVERY).await;
        replay(&api, &spool).await;
    }
}
