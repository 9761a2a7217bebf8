//! The data the [`crate::Store`] trait speaks: keys and their metadata, transactions, leases,
//! watch events. Plain data, shared by both backends.

use std::fmt;
use std::time::Duration;

/// A store revision: a counter over the whole store, increased by one for every transaction
/// (or lease expiry) that changed something. Every key records the revision that created it
/// and the one that last modified it.
pub type Revision = i64;

/// One key with its value and metadata, as etcd reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// The key.
    pub key: String,
    /// The value (empty for a deletion event).
    pub value: Vec<u8>,
    /// The revision that created the key (0 in a deletion event).
    pub create_revision: Revision,
    /// The revision of the last change (in a deletion event: the deletion's revision).
    pub mod_revision: Revision,
    /// How many times the key was written since it was created (1 after creation; 0 in a
    /// deletion event).
    pub version: i64,
    /// The lease the key is attached to, if any.
    pub lease: Option<LeaseId>,
}

/// A lease: keys attached to it are deleted when it expires or is revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LeaseId(pub i64);

impl fmt::Display for LeaseId {
    /// Hexadecimal, as `etcdctl` prints lease ids.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:x}", self.0)
    }
}

impl std::str::FromStr for LeaseId {
    type Err = std::num::ParseIntError;

    /// Parses the hexadecimal form [`fmt::Display`] writes.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        i64::from_str_radix(s, 16).map(LeaseId)
    }
}

/// A condition of a transaction, on one key. Only equality, which is all that
/// compare-and-swap needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compare {
    /// The key's version equals this (0: the key does not exist).
    Version {
        /// The key.
        key: String,
        /// The expected version.
        version: i64,
    },
    /// The key's last modification revision equals this (0: the key does not exist).
    ModRevision {
        /// The key.
        key: String,
        /// The expected revision.
        revision: Revision,
    },
}

impl Compare {
    /// The key does not exist (create-if-absent).
    pub fn absent(key: impl Into<String>) -> Self {
        Compare::Version {
            key: key.into(),
            version: 0,
        }
    }

    /// The key is unchanged since `revision` (update-if-unchanged).
    pub fn unchanged(key: impl Into<String>, revision: Revision) -> Self {
        Compare::ModRevision {
            key: key.into(),
            revision,
        }
    }

    /// The key it is about.
    pub fn key(&self) -> &str {
        match self {
            Compare::Version { key, .. } | Compare::ModRevision { key, .. } => key,
        }
    }

    /// Whether it holds for `current` (the key's present state, `None` when absent).
    pub fn holds(&self, current: Option<&KeyValue>) -> bool {
        match self {
            Compare::Version { version, .. } => current.map_or(0, |kv| kv.version) == *version,
            Compare::ModRevision { revision, .. } => {
                current.map_or(0, |kv| kv.mod_revision) == *revision
            }
        }
    }
}

/// A write in a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Sets the key (creating it when absent), attached to `lease` or to none.
    Put {
        /// The key.
        key: String,
        /// The value.
        value: Vec<u8>,
        /// The lease to attach it to (a put without a lease detaches the key).
        lease: Option<LeaseId>,
    },
    /// Deletes the key (nothing when it is absent).
    Delete {
        /// The key.
        key: String,
    },
}

impl Op {
    /// A put without a lease.
    pub fn put(key: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        Op::Put {
            key: key.into(),
            value: value.into(),
            lease: None,
        }
    }

    /// A put attached to `lease`.
    pub fn put_leased(key: impl Into<String>, value: impl Into<Vec<u8>>, lease: LeaseId) -> Self {
        Op::Put {
            key: key.into(),
            value: value.into(),
            lease: Some(lease),
        }
    }

    /// A deletion.
    pub fn delete(key: impl Into<String>) -> Self {
        Op::Delete { key: key.into() }
    }

    /// The key it writes.
    pub fn key(&self) -> &str {
        match self {
            Op::Put { key, .. } | Op::Delete { key } => key,
        }
    }
}

/// A transaction: when every compare holds, every op is applied, atomically, at one new
/// revision; otherwise nothing is written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Txn {
    /// The conditions (all must hold).
    pub compares: Vec<Compare>,
    /// The writes.
    pub ops: Vec<Op>,
}

impl Txn {
    /// An empty transaction.
    pub fn new() -> Self {
        Txn::default()
    }

    /// Adds a condition.
    pub fn when(mut self, c: Compare) -> Self {
        self.compares.push(c);
        self
    }

    /// Adds a write.
    pub fn then(mut self, op: Op) -> Self {
        self.ops.push(op);
        self
    }
}

/// What a transaction did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnResult {
    /// Whether every compare held (and so the writes were applied).
    pub succeeded: bool,
    /// The store's revision after the transaction (unchanged when nothing was written).
    pub revision: Revision,
    /// When it failed: the present state of each compared key, in the order of the compares
    /// (`None`: absent), so the caller can retry without another read.
    pub current: Vec<Option<KeyValue>>,
}

/// A consistent read of every key under a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// The keys, sorted.
    pub kvs: Vec<KeyValue>,
    /// The revision the read saw: watch from `revision + 1` to follow it.
    pub revision: Revision,
}

/// A granted lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    /// Its id.
    pub id: LeaseId,
    /// Its time to live (the store may round it up).
    pub ttl: Duration,
}

/// A change seen by a watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// The key was created or changed.
    Put,
    /// The key was deleted (also by a lease expiring or being revoked).
    Delete,
}

/// One change of one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Put or delete.
    pub kind: EventKind,
    /// The key after the change: for a put, its new value and metadata; for a delete, the
    /// key with an empty value and `mod_revision` set to the deletion's revision.
    pub kv: KeyValue,
}

impl Event {
    /// The revision of the change.
    pub fn revision(&self) -> Revision {
        self.kv.mod_revision
    }
}
