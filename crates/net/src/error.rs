//! Errors of the kernel layer. Each carries the operation and object it failed on, so the
//! message that reaches the runtime says what the plugin was doing (`add address 10.0.0.2/24
//! to eth0: File exists`).

use std::io;

use ferro_spec::{CniError, Code};

/// A failed kernel operation.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// A netlink request was answered with an error.
    #[error("{op}: {}", io::Error::from_raw_os_error(*.errno))]
    Netlink {
        /// What was being done.
        op: String,
        /// The errno the kernel returned.
        errno: i32,
    },
    /// A file operation (sysctl, netns file) failed.
    #[error("{op}: {source}")]
    Io {
        /// What was being done.
        op: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The network namespace does not exist (any more).
    #[error("network namespace {0} does not exist")]
    NetnsMissing(String),
    /// Anything else (unexpected replies, inconsistent state).
    #[error("{0}")]
    Other(String),
}

impl NetError {
    /// The kernel's errno, when the error came from the kernel.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetError::Netlink { errno, .. } => Some(*errno),
            NetError::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    /// The object already exists (EEXIST).
    pub fn is_exists(&self) -> bool {
        self.errno() == Some(libc_errno::EEXIST)
    }

    /// The object (or the device it hangs off) is gone: ENOENT, ENODEV, ESRCH, EADDRNOTAVAIL.
    pub fn is_not_found(&self) -> bool {
        matches!(self, NetError::NetnsMissing(_))
            || matches!(
                self.errno(),
                Some(
                    libc_errno::ENOENT
                        | libc_errno::ENODEV
                        | libc_errno::ESRCH
                        | libc_errno::EADDRNOTAVAIL
                )
            )
    }

    pub(crate) fn io(op: impl Into<String>, source: io::Error) -> Self {
        NetError::Io {
            op: op.into(),
            source,
        }
    }
}

/// errno values used for classification (from `nix`, re-exported here to keep call sites short).
pub(crate) mod libc_errno {
    use nix::errno::Errno;
    pub const EEXIST: i32 = Errno::EEXIST as i32;
    pub const ENOENT: i32 = Errno::ENOENT as i32;
    pub const ENODEV: i32 = Errno::ENODEV as i32;
    pub const ESRCH: i32 = Errno::ESRCH as i32;
    pub const EADDRNOTAVAIL: i32 = Errno::EADDRNOTAVAIL as i32;
    pub const EBUSY: i32 = Errno::EBUSY as i32;
    pub const ENETUNREACH: i32 = Errno::ENETUNREACH as i32;
}

impl From<NetError> for CniError {
    fn from(e: NetError) -> Self {
        match &e {
            NetError::NetnsMissing(_) => CniError::new(Code::UnknownContainer, e.to_string()),
            NetError::Netlink { errno, .. } if *errno == libc_errno::EBUSY => {
                CniError::try_again(e.to_string())
            }
            _ => CniError::internal(e.to_string()),
        }
    }
}
