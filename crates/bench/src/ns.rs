//! Namespaces of the bench: pods as pre-created network namespaces (made in-process, like
//! `ip netns add`: a thread unshares its network namespace and bind-mounts it on a file
//! under `/run/netns`), entering a node's namespace for the plugin processes, and the check
//! that the driver runs in a private mount namespace.

use std::fs::File;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

use crate::error::Error;

/// Where pod namespaces are mounted (a private tmpfs under `scripts/bench.sh`).
pub const NETNS_DIR: &str = "/run/netns";

/// A pod's network namespace, removed on drop.
#[derive(Debug)]
pub struct PodNs {
    path: PathBuf,
}

impl PodNs {
    /// Creates `/run/netns/<name>` holding a fresh network namespace.
    pub fn create(name: &str) -> Result<PodNs, Error> {
        let dir = Path::new(NETNS_DIR);
        std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
        let path = dir.join(name);
        File::create(&path).map_err(|e| Error::io("creating", &path, e))?;
        let pod = PodNs { path };
        let target = pod.path.clone();
        std::thread::scope(|s| {
            s.spawn(move || -> Result<(), Error> {
                unshare(CloneFlags::CLONE_NEWNET)
                    .map_err(|e| Error::ns("unshare for", &target, e))?;
                mount(
                    Some("/proc/thread-self/ns/net"),
                    &target,
                    None::<&str>,
                    MsFlags::MS_BIND,
                    None::<&str>,
                )
                .map_err(|e| Error::ns("bind-mounting", &target, e))
            })
            .join()
            .map_err(|_| Error::Other("netns thread panicked".into()))?
        })?;
        Ok(pod)
    }

    /// The path handed to plugins as `CNI_NETNS`.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PodNs {
    fn drop(&mut self) {
        let _ = umount2(&self.path, MntFlags::MNT_DETACH);
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Moves the calling thread into the network namespace at `ns`. Processes it starts
/// afterwards run there.
pub fn enter(ns: &Path) -> Result<(), Error> {
    let f = File::open(ns).map_err(|e| Error::io("opening", ns, e))?;
    setns(&f, CloneFlags::CLONE_NEWNET).map_err(|e| Error::ns("entering", ns, e))
}

/// Runs `f` on a fresh thread inside the network namespace at `ns`.
pub fn in_netns<T: Send>(ns: &Path, f: impl FnOnce() -> T + Send) -> Result<T, Error> {
    std::thread::scope(|s| {
        s.spawn(move || -> Result<T, Error> {
            enter(ns)?;
            Ok(f())
        })
        .join()
        .map_err(|_| Error::Other(format!("thread in {} panicked", ns.display())))?
    })
}

/// True when the driver runs under `scripts/bench.sh`'s private mount namespace: `/run/netns`
/// and the scratch directory `workdir` are on tmpfs mounts whose source names them as ours
/// (`ferro-*`). The namespaces and files the bench creates are then invisible to the machine
/// and vanish with it. (Comparing with PID 1's mount namespace is not possible in every
/// sandbox.)
pub fn in_private_mount_ns(workdir: &Path) -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|m| private_mounts(&m, workdir))
        .unwrap_or(false)
}

/// [`in_private_mount_ns`] on the text of a `mountinfo` file: the mount holding each of
/// `/run/netns` and `workdir` (the last one on the longest matching mount point) is a tmpfs
/// with a `ferro-` source.
pub fn private_mounts(mountinfo: &str, workdir: &Path) -> bool {
    [Path::new(NETNS_DIR), workdir].iter().all(|dir| {
        crate::machine::fs_of(mountinfo, dir)
            .is_some_and(|(fs, src)| fs == "tmpfs" && src.starts_with("ferro-"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_mounts_need_both_of_ours_on_top() {
        let machine = "1 0 254:0 / / rw - ext4 /dev/vda rw\n\
                       22 1 0:21 / /tmp rw,nosuid shared:5 - tmpfs tmpfs rw\n\
                       25 1 0:22 / /run rw shared:6 - tmpfs tmpfs rw\n";
        let work = Path::new("/w/target/bench/scratch/run");
        assert!(!private_mounts(machine, work));
        let ours = format!(
            "{machine}90 1 0:50 / /w/target/bench/scratch rw - tmpfs ferro-tmp rw\n\
             95 25 0:55 / /run/netns rw shared:40 - tmpfs ferro-test rw,mode=755\n"
        );
        assert!(private_mounts(&ours, work));
        assert!(
            !private_mounts(&ours, Path::new("/tmp/ferro-bench")),
            "a workdir outside the private tmpfs"
        );
        let only_scratch =
            format!("{machine}90 1 0:50 / /w/target/bench/scratch rw - tmpfs ferro-tmp rw\n");
        assert!(!private_mounts(&only_scratch, work));
        let netns_bound_over =
            format!("{ours}99 95 0:4 net:[4026532300] /run/netns/x rw - nsfs nsfs rw\n");
        assert!(
            private_mounts(&netns_bound_over, work),
            "namespaces under it do not matter"
        );
    }
}
