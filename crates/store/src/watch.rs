//! The watch handle both backends return: a channel fed by a task that follows the store.

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::{Event, Result, StoreError};

/// How many batches a watch buffers before its task waits for the consumer.
pub(crate) const WATCH_BUFFER: usize = 256;

/// A running watch: [`Watch::next`] yields the changes in revision order. Dropping it stops
/// the task that follows the store.
#[derive(Debug)]
pub struct Watch {
    rx: mpsc::Receiver<Result<Vec<Event>>>,
    task: JoinHandle<()>,
}

impl Watch {
    pub(crate) fn new(rx: mpsc::Receiver<Result<Vec<Event>>>, task: JoinHandle<()>) -> Self {
        Watch { rx, task }
    }

    /// The next changes: one or more events, in revision order, never empty. An error ends
    /// the watch: [`StoreError::Compacted`] (list again, then watch from the listing's
    /// revision) or [`StoreError::Closed`] (the store was closed).
    pub async fn next(&mut self) -> Result<Vec<Event>> {
        self.rx.recv().await.unwrap_or(Err(StoreError::Closed))
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.task.abort();
    }
}
