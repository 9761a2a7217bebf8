//! Requests a plugin could not deliver, kept until the agent can take them.
//!
//! A DEL must succeed even when the agent is down (the runtime would otherwise retry forever
//! or leak), so the plugin writes its request to the spool instead and answers success; the
//! agent replays the spool when it starts (before it serves anything) and every few seconds
//! while it runs, oldest first, and deletes each entry once handled.
//!
//! ```text
//! <socket directory>/spool/                 (/run/ferro-cni/spool by default, mode 0700)
//!     <ms since 1970, 16 digits>-<pid>-<n>.json   {"at": <ms>, "request": {...}}
//! ```
//!
//! Each entry is written to a temporary name and renamed, so a reader never sees half of
//! one. `at` lets the agent skip a stale request: a release spooled before the same
//! attachment was added again must not take the new addresses away.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::Request;

/// The spool directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spool {
    dir: PathBuf,
}

/// One spooled request, as read back.
#[derive(Debug)]
pub struct Entry {
    /// Its file.
    pub path: PathBuf,
    /// When it was spooled (milliseconds since 1970).
    pub at_ms: u64,
    /// The request, or why it cannot be read.
    pub request: Result<Request, String>,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    at: u64,
    request: Request,
}

/// Milliseconds since 1970, now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

static SEQ: AtomicU64 = AtomicU64::new(0);

impl Spool {
    /// The spool that goes with the agent socket `socket`: `spool/` beside it.
    pub fn for_socket(socket: &Path) -> Spool {
        let dir = socket
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        Spool {
            dir: dir.join("spool"),
        }
    }

    /// A spool in `dir`.
    pub fn at(dir: impl Into<PathBuf>) -> Spool {
        Spool { dir: dir.into() }
    }

    /// Its directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Keeps `request` for the agent (creating the directory, mode 0700, when missing);
    /// returns the entry's path.
    pub fn push(&self, request: &Request) -> std::io::Result<PathBuf> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)?;
        let at = now_ms();
        let name = format!(
            "{at:016}-{}-{}.json",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let body = serde_json::to_vec(&Stored {
            at,
            request: request.clone(),
        })
        .map_err(std::io::Error::other)?;
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&body)?;
        drop(f);
        let path = self.dir.join(name);
        std::fs::rename(&tmp, &path)?;
        Ok(path)
    }

    /// Every entry, oldest first (none when the directory does not exist).
    pub fn entries(&self) -> std::io::Result<Vec<Entry>> {
        let rd = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut names: Vec<String> = rd
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| !n.starts_with('.') && n.ends_with(".json"))
            .collect();
        names.sort();
        Ok(names
            .into_iter()
            .map(|n| {
                let path = self.dir.join(&n);
                let parsed = std::fs::read(&path)
                    .map_err(|e| e.to_string())
                    .and_then(|b| serde_json::from_slice::<Stored>(&b).map_err(|e| e.to_string()));
                let at_fallback = n
                    .split('-')
                    .next()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                match parsed {
                    Ok(s) => Entry {
                        path,
                        at_ms: s.at,
                        request: Ok(s.request),
                    },
                    Err(e) => Entry {
                        path,
                        at_ms: at_fallback,
                        request: Err(e),
                    },
                }
            })
            .collect())
    }

    /// Forgets a handled entry.
    pub fn remove(&self, entry: &Entry) -> std::io::Result<()> {
        match std::fs::remove_file(&entry.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipam::{IpamHandle, IpamRelease};

    #[test]
    fn entries_come_back_oldest_first_and_go_when_removed() {
        let t = tempfile::tempdir().unwrap();
        let s = Spool::for_socket(&t.path().join("run/agent.sock"));
        assert_eq!(s.dir(), t.path().join("run/spool"));
        assert!(s.entries().unwrap().is_empty(), "no directory, no entries");
        let rel = |id: &str| {
            Request::IpamRelease(IpamRelease {
                network: Some("n".into()),
                handle: IpamHandle {
                    container_id: id.into(),
                    ifname: "eth0".into(),
                },
            })
        };
        s.push(&rel("a")).unwrap();
        s.push(&rel("b")).unwrap();
        std::fs::write(s.dir().join("0000000000000001-1-1.json"), b"{torn").unwrap();
        let e = s.entries().unwrap();
        assert_eq!(e.len(), 3);
        assert!(e[0].request.is_err(), "the unreadable one sorts first");
        assert_eq!(e[0].at_ms, 1);
        assert_eq!(e[1].request.as_ref().unwrap(), &rel("a"));
        assert_eq!(e[2].request.as_ref().unwrap(), &rel("b"));
        assert!(e[1].at_ms <= e[2].at_ms && e[1].at_ms > 0);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(s.dir()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        for x in &e {
            s.remove(x).unwrap();
            s.remove(x).unwrap();
        }
        assert!(s.entries().unwrap().is_empty());
    }
}
