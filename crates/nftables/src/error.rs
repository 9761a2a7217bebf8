//! Errors of the nf_tables codec: each names the operation and the object, in nft syntax
//! (`nft: add rule inet ferro_cni masq-kbr: Invalid argument`). Callers map them to their own
//! errors (a CNI plugin to CNI error codes).

use std::io;

use nix::errno::Errno;

use crate::sock::SockError;

/// A failed nf_tables request.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    /// A socket call failed.
    #[error("nft: {op}: {source}")]
    Io {
        /// What was being done.
        op: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The kernel rejected the request.
    #[error("nft: {op}: {}{}", errno.desc(), extack.as_deref().map(|m| format!(" ({m})")).unwrap_or_default())]
    Kernel {
        /// The operation in nft syntax.
        op: String,
        /// What the kernel answered.
        errno: Errno,
        /// The kernel's extended-ack message, if any.
        extack: Option<String>,
    },
    /// A reply that could not be understood.
    #[error("nft: {op}: {msg}")]
    Protocol {
        /// What was being done.
        op: String,
        /// What was wrong.
        msg: String,
    },
    /// A request that cannot be sent (name or comment over the kernel's limits).
    #[error("nft: {op}: {msg}")]
    Invalid {
        /// The operation.
        op: String,
        /// What is wrong with it.
        msg: String,
    },
}

impl NftError {
    pub(crate) fn from_sock(op: impl Into<String>, e: SockError) -> NftError {
        let op = op.into();
        match e {
            SockError::Io(source) => NftError::Io { op, source },
            SockError::Kernel(errno, extack) => NftError::Kernel {
                op,
                errno: Errno::from_raw(errno),
                extack,
            },
            SockError::Protocol(msg) => NftError::Protocol { op, msg },
        }
    }

    /// The kernel refused `op` with `errno` (positive), and said why in `extack`.
    pub fn kernel(op: impl Into<String>, errno: i32, extack: Option<String>) -> NftError {
        NftError::Kernel {
            op: op.into(),
            errno: Errno::from_raw(errno),
            extack,
        }
    }

    /// The kernel's errno, if the kernel answered.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            NftError::Kernel { errno, .. } => Some(*errno),
            NftError::Io { source, .. } => source.raw_os_error().map(Errno::from_raw),
            _ => None,
        }
    }

    /// The object does not exist (`ENOENT`).
    pub fn is_not_found(&self) -> bool {
        self.errno() == Some(Errno::ENOENT)
    }

    /// The object exists with other content (`EEXIST`, e.g. a map key with other data).
    pub fn is_exists(&self) -> bool {
        self.errno() == Some(Errno::EEXIST)
    }

    /// The ruleset changed since the generation the batch was made against (`ERESTART`).
    pub fn is_generation_changed(&self) -> bool {
        self.errno() == Some(Errno::ERESTART)
    }
}
