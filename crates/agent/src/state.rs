//! The agent's state directory: a lock (one agent per directory), the record of its node
//! lease (so that a restarted agent takes over its own previous lease at once instead of
//! waiting for it to expire), and the journal.
//!
//! ```text
//! <stateDir>/agent.lock    held (flock) while the agent runs
//! <stateDir>/lease         the node lease's id (hexadecimal), while registered
//! <stateDir>/journal       see [`crate::journal`]
//! ```

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ferro_store::LeaseId;

use crate::AgentError;

/// The state directory, locked.
#[derive(Debug)]
pub struct StateDir {
    dir: PathBuf,
    _lock: File,
}

/// Creates `dir` (and missing parents) with mode 0700.
pub fn make_private_dir(dir: &Path) -> Result<(), AgentError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| AgentError::io(format!("creating {}", dir.display()), e))
}

impl StateDir {
    /// Creates (mode 0700) and locks `dir`; fails when another agent holds it.
    pub fn open(dir: &Path) -> Result<StateDir, AgentError> {
        make_private_dir(dir)?;
        let path = dir.join("agent.lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| AgentError::io(format!("opening {}", path.display()), e))?;
        let _ = lock.set_permissions(std::fs::Permissions::from_mode(0o600));
        lock.try_lock().map_err(|e| {
            AgentError::io(
                format!(
                    "locking {} (is another ferro-agent using this stateDir?)",
                    path.display()
                ),
                match e {
                    std::fs::TryLockError::WouldBlock => std::io::Error::new(
                        std::io::ErrorKind::WouldBlock,
                        "held by another process",
                    ),
                    std::fs::TryLockError::Error(e) => e,
                },
            )
        })?;
        Ok(StateDir {
            dir: dir.to_path_buf(),
            _lock: lock,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    fn lease_path(&self) -> PathBuf {
        self.dir.join("lease")
    }

    /// The lease recorded by a previous run, if any.
    pub fn previous_lease(&self) -> Option<LeaseId> {
        std::fs::read_to_string(self.lease_path())
            .ok()
            .and_then(|s| s.trim().parse().ok())
    }

    /// Records the node lease.
    pub fn record_lease(&self, lease: LeaseId) -> Result<(), AgentError> {
        let p = self.lease_path();
        let tmp = self.dir.join("lease.tmp");
        std::fs::write(&tmp, format!("{lease}\n"))
            .and_then(|()| std::fs::rename(&tmp, &p))
            .map_err(|e| AgentError::io(format!("writing {}", p.display()), e))
    }

    /// Forgets the node lease (after revoking it).
    pub fn clear_lease(&self) {
        let _ = std::fs::remove_file(self.lease_path());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_agent_per_directory_and_the_lease_record() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("state");
        let s = StateDir::open(&d).unwrap();
        let mode = std::fs::metadata(&d).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        let e = StateDir::open(&d).unwrap_err().to_string();
        assert!(e.contains("another ferro-agent"), "{e}");
        assert_eq!(s.previous_lease(), None);
        s.record_lease(LeaseId(0x1234)).unwrap();
        assert_eq!(s.previous_lease(), Some(LeaseId(0x1234)));
        s.clear_lease();
        assert_eq!(s.previous_lease(), None);
        drop(s);
        StateDir::open(&d).unwrap();
    }
}
