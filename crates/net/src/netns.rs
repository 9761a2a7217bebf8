//! Network namespace handles and running code inside one.
//!
//! A namespace switch is per thread (`setns(2)`), so plugins stay single-threaded while they
//! switch, and switch only through [`Netns::run`], which always returns to the original
//! namespace. Netlink sockets are opened inside the target namespace and stay bound to it, so
//! most work needs no switch at all (see [`crate::rtnl::Kernel::connect`]).

use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::NetError;

/// An open network namespace (`CNI_NETNS`).
#[derive(Debug)]
pub struct Netns {
    path: PathBuf,
    ns: netns_rs::NetNs,
}

impl Netns {
    /// Opens the namespace at `path` (`/run/netns/x`, `/proc/<pid>/ns/net`).
    /// A missing path is [`NetError::NetnsMissing`].
    pub fn open(path: &Path) -> Result<Netns, NetError> {
        if !path.exists() {
            return Err(NetError::NetnsMissing(path.display().to_string()));
        }
        let ns = netns_rs::get_from_path(path).map_err(|e| {
            NetError::Other(format!("open network namespace {}: {e}", path.display()))
        })?;
        Ok(Netns {
            path: path.to_path_buf(),
            ns,
        })
    }

    /// Opens `CNI_NETNS` for ADD and CHECK: it must exist (code 3) and must not be the
    /// plugin's own namespace (code 4: a runtime passing the host namespace would otherwise
    /// have us configure the node as a pod).
    pub fn open_pod(path: &Path) -> Result<Netns, ferro_spec::CniError> {
        let ns = Netns::open(path)?;
        if ns.is_current() {
            return Err(ferro_spec::CniError::invalid_env(format!(
                "CNI_NETNS {} is the plugin's own network namespace",
                path.display()
            )));
        }
        Ok(ns)
    }

    /// Opens `path` if it exists; `Ok(None)` when it is gone (DEL after the netns was removed).
    pub fn open_if_exists(path: &Path) -> Result<Option<Netns>, NetError> {
        match Netns::open(path) {
            Ok(ns) => Ok(Some(ns)),
            Err(NetError::NetnsMissing(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The path it was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The raw fd, for `IFLA_NET_NS_FD` (creating a link directly inside the namespace).
    pub fn raw_fd(&self) -> RawFd {
        self.ns.file().as_fd().as_raw_fd()
    }

    /// True when this is the namespace the calling thread is in: a runtime passing the host
    /// namespace as `CNI_NETNS` would otherwise have us configure the node as a pod.
    pub fn is_current(&self) -> bool {
        let (Ok(a), Ok(b)) = (
            self.ns.file().metadata(),
            std::fs::metadata("/proc/thread-self/ns/net"),
        ) else {
            return false;
        };
        a.dev() == b.dev() && a.ino() == b.ino()
    }

    /// Runs `f` with the calling thread inside this namespace, then switches back.
    ///
    /// Panics if switching back fails: continuing in the pod's namespace would apply node
    /// configuration to the pod. The dispatcher turns the panic into an error object.
    pub fn run<T>(&self, f: impl FnOnce() -> T) -> Result<T, NetError> {
        let home = netns_rs::get_from_current_thread()
            .map_err(|e| NetError::Other(format!("open current network namespace: {e}")))?;
        self.ns.enter().map_err(|e| {
            NetError::Other(format!(
                "enter network namespace {}: {e}",
                self.path.display()
            ))
        })?;
        let out = f();
        if let Err(e) = home.enter() {
            panic!("cannot return to the original network namespace: {e}");
        }
        Ok(out)
    }
}
