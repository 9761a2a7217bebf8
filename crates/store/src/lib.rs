//! # ferro-store: the cluster's one source of truth
//!
//! One trait, [`Store`], with the semantics of etcd v3 that the cluster layer relies on
//! (revisions, transactions with compares, leases, resumable watches; listed on the trait),
//! and two backends: [`Embedded`], a [redb](https://www.redb.org) file that only the agent
//! opens (one node, no other service to run), and [`Etcd`], an etcd v3 cluster (many nodes)
//! through the `etcd-client` crate, with TLS client certificates when configured.
//! [`AnyStore`] holds either, chosen by a [`StoreConfig`] (the agent's `store` key). How the
//! cluster uses it: [docs/cluster.md](../../../docs/cluster.md#the-store).
//!
//! # Layout
//! - [`types`]: keys, transactions, leases, events (plain data);
//! - [`embedded`]: the redb backend (revisions, history log, leases and their expiry);
//! - [`etcd`]: the etcd backend (timeouts, TLS, resuming watches);
//! - [`config`]: [`StoreConfig`] and [`AnyStore`];
//! - [`mod@error`]: the error type, [`StoreError`].

pub mod config;
pub mod embedded;
pub mod error;
pub mod etcd;
pub mod types;
mod watch;

use std::future::Future;
use std::time::Duration;

pub use config::{AnyStore, EmbeddedConfig, EtcdConfig, StoreConfig};
pub use embedded::Embedded;
pub use error::StoreError;
pub use etcd::Etcd;
pub use types::{
    Compare, Event, EventKind, KeyValue, Lease, LeaseId, Listing, Op, Revision, Txn, TxnResult,
};
pub use watch::Watch;

/// A result of a store operation.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The operations the cluster layer needs from a store. What every backend guarantees:
/// - a global [`Revision`], increased by every change; each key carries the revision that
///   created it, the one that last changed it, and its version;
/// - [`Store::txn`]: compares ([`Compare::absent`] for create-if-absent,
///   [`Compare::unchanged`] for update-if-unchanged) then writes, atomically at one revision;
///   a failed transaction returns the compared keys' present state;
/// - leases ([`Store::grant`], [`Store::keepalive`], [`Store::revoke`]): keys put with a
///   lease are deleted when it expires or is revoked (a later put without the lease, or with
///   another, detaches the key);
/// - [`Store::watch`]: every change under a prefix from a given revision on, in revision
///   order, each exactly once. The watch survives disconnects by resuming from the last
///   revision it delivered. When the revisions it needs are compacted it ends with
///   [`StoreError::Compacted`]: the caller lists again ([`Store::list`] returns the revision
///   to watch from) and starts a new watch;
/// - an unreachable store is always [`StoreError::Unavailable`].
pub trait Store: Send + Sync {
    /// The key's present value, or `None`.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<KeyValue>>> + Send;

    /// Every key starting with `prefix`, sorted, and the revision of the read.
    fn list(&self, prefix: &str) -> impl Future<Output = Result<Listing>> + Send;

    /// Applies `txn` when its compares hold.
    fn txn(&self, txn: Txn) -> impl Future<Output = Result<TxnResult>> + Send;

    /// Grants a lease of `ttl` (whole seconds, at least one; etcd may round it up).
    fn grant(&self, ttl: Duration) -> impl Future<Output = Result<Lease>> + Send;

    /// Renews the lease for its full TTL. [`StoreError::LeaseNotFound`] when it has expired
    /// or was revoked.
    fn keepalive(&self, lease: LeaseId) -> impl Future<Output = Result<()>> + Send;

    /// Revokes the lease: its keys are deleted at once. Revoking a lease that no longer
    /// exists succeeds.
    fn revoke(&self, lease: LeaseId) -> impl Future<Output = Result<()>> + Send;

    /// Watches every key starting with `prefix`, from revision `from` (inclusive; 0: from the
    /// next change).
    fn watch(&self, prefix: &str, from: Revision) -> impl Future<Output = Result<Watch>> + Send;

    /// Forgets the history before `revision`: watches from older revisions then fail with
    /// [`StoreError::Compacted`].
    fn compact(&self, revision: Revision) -> impl Future<Output = Result<()>> + Send;

    /// Sets `key` (no lease); returns the new revision.
    fn put(&self, key: &str, value: Vec<u8>) -> impl Future<Output = Result<Revision>> + Send {
        async move {
            Ok(self
                .txn(Txn::new().then(Op::put(key, value)))
                .await?
                .revision)
        }
    }

    /// Deletes `key` (absent is fine); returns the store's revision afterwards.
    fn delete(&self, key: &str) -> impl Future<Output = Result<Revision>> + Send {
        async move { Ok(self.txn(Txn::new().then(Op::delete(key))).await?.revision) }
    }

    /// Creates `key` when it is absent; `false` when it already exists.
    fn create(
        &self,
        key: &str,
        value: Vec<u8>,
        lease: Option<LeaseId>,
    ) -> impl Future<Output = Result<bool>> + Send {
        async move {
            let op = Op::Put {
                key: key.to_string(),
                value,
                lease,
            };
            Ok(self
                .txn(Txn::new().when(Compare::absent(key)).then(op))
                .await?
                .succeeded)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_ids_print_and_parse_as_hex() {
        let id = LeaseId(0x694d_7c3a_11f2_0a05);
        assert_eq!(id.to_string(), "694d7c3a11f20a05");
        assert_eq!("694d7c3a11f20a05".parse::<LeaseId>(), Ok(id));
    }

    #[test]
    fn compares_follow_etcd() {
        let kv = KeyValue {
            key: "k".into(),
            value: b"v".to_vec(),
            create_revision: 3,
            mod_revision: 5,
            version: 2,
            lease: None,
        };
        assert!(Compare::absent("k").holds(None));
        assert!(!Compare::absent("k").holds(Some(&kv)));
        assert!(Compare::unchanged("k", 5).holds(Some(&kv)));
        assert!(!Compare::unchanged("k", 4).holds(Some(&kv)));
        assert!(Compare::unchanged("k", 0).holds(None));
    }
}
