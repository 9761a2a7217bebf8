//! The store's one error type.

use crate::types::{LeaseId, Revision};

/// A failure of a store operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store cannot be reached (etcd members down, refused, timed out, TLS handshake
    /// refused). Transient: callers retry later (plugins answer CNI code 11, "try again
    /// later").
    #[error("store unavailable: {detail}")]
    Unavailable {
        /// What failed, naming the endpoints.
        detail: String,
    },
    /// A watch asked for revisions the store has already compacted away: the caller lists
    /// again and watches from the listing's revision.
    #[error("revision {requested} is compacted (the oldest kept is {compacted}): list again")]
    Compacted {
        /// The revision asked for.
        requested: Revision,
        /// The store's compaction revision.
        compacted: Revision,
    },
    /// The lease does not exist (it expired or was revoked).
    #[error("lease {0} not found (expired or revoked)")]
    LeaseNotFound(LeaseId),
    /// The configuration of the store is wrong (a missing certificate file, no endpoints).
    #[error("store configuration: {0}")]
    Config(String),
    /// The embedded database failed (I/O, corruption, already opened by another process).
    #[error("embedded store {path}: {detail}")]
    Database {
        /// The database file.
        path: String,
        /// What failed.
        detail: String,
    },
    /// The store answered something this client cannot use.
    #[error("store protocol: {0}")]
    Protocol(String),
    /// The store refused the request (e.g. a value too large).
    #[error("store refused the request: {0}")]
    Rejected(String),
    /// The store handle was closed.
    #[error("store closed")]
    Closed,
}

impl StoreError {
    /// Whether retrying later may succeed (the store is unreachable).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. })
    }
}
