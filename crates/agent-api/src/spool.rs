//! The spool: requests a plugin could not deliver to the agent (not running yet, restarting,
//! or not answering in time), kept as files until the agent applies them.
//!
//! ```text
//! <spool dir>/                       mode 0700, root only (default: `spool` next to the socket)
//!   01733312345678901234-0004242-0000.json    one request per file, mode 0600
//!   .01733312345678901234-0004242-0001.tmp    being written (ignored)
//!   01733312345678000000-0004100-0000.rejected  a file the agent could not use (kept for people)
//! ```
//!
//! - A file holds one [`Request`] as JSON. It is written under a dot name, synced, then
//!   renamed into place, so a reader never sees half a request.
//! - Names sort in the order the requests were made: the wall clock in nanoseconds, the
//!   writer's pid, a per-process counter. Requests about one attachment are made one after
//!   the other by the runtime (ADD returns before DEL starts), so replaying in name order
//!   keeps their order.
//! - The agent replays pending files in name order at start, before it serves its socket,
//!   whenever it finds files (it looks every second), and before it handles any request
//!   that the spool could be ahead of; it deletes each file once applied, and renames one it
//!   cannot read or that the agent refuses to `.rejected`.
//! - Replaying is only correct for requests that are idempotent and carry everything they
//!   need: attachment reports, address releases.
//!
//! [`deliver`] is what a plugin calls: the request goes to the agent, or into the spool when
//! the agent cannot take it now.

use std::fs::{DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::client::{Client, ClientError};
use crate::{ErrorCode, Request, Response};

/// The spool directory's name next to the agent's socket (`/run/ferro-cni/spool` for the
/// default socket).
pub const SPOOL_DIR_NAME: &str = "spool";

/// The extension of pending files.
const PENDING: &str = "json";
/// The extension of files the agent could not use.
const REJECTED: &str = "rejected";

/// A spool directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spool {
    dir: PathBuf,
}

/// A pending request file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spooled {
    path: PathBuf,
}

/// A spool file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// Reading it failed.
    #[error("spool file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// It is not a request.
    #[error("spool file {path}: not a request: {source}")]
    Decode {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A file name that sorts after every earlier one of this process and, clock permitting, of
/// every other writer.
fn next_name() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    format!("{nanos:020}-{:07}-{seq:04}", std::process::id())
}

impl Spool {
    /// The spool at `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Spool {
        Spool { dir: dir.into() }
    }

    /// The spool next to `socket` (`<socket's directory>/spool`): plugins and the agent find
    /// the same one from the socket alone.
    pub fn next_to(socket: &Path) -> Spool {
        let dir = socket.parent().unwrap_or_else(|| Path::new("/"));
        Spool::new(dir.join(SPOOL_DIR_NAME))
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `req` as a new pending file (creating the directory, mode 0700, when missing);
    /// returns its path.
    pub fn put(&self, req: &Request) -> std::io::Result<PathBuf> {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)?;
        let body = serde_json::to_vec(req).map_err(std::io::Error::other)?;
        let name = next_name();
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let path = self.dir.join(format!("{name}.{PENDING}"));
        let written = (|| {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&body)?;
            f.sync_data()?;
            std::fs::rename(&tmp, &path)
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written.map(|()| path)
    }

    /// The pending files, oldest first (none when the directory does not exist).
    pub fn pending(&self) -> std::io::Result<Vec<Spooled>> {
        let rd = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for e in rd {
            let e = e?;
            let name = e.file_name();
            let name = name.to_string_lossy();
            if !name.starts_with('.') && name.ends_with(&format!(".{PENDING}")) {
                out.push(Spooled { path: e.path() });
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }
}

impl Spooled {
    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The request it holds.
    pub fn read(&self) -> Result<Request, SpoolError> {
        let bytes = std::fs::read(&self.path).map_err(|source| SpoolError::Io {
            path: self.path.clone(),
            source,
        })?;
        serde_json::from_slice(&bytes).map_err(|source| SpoolError::Decode {
            path: self.path.clone(),
            source,
        })
    }

    /// The request was applied: the file goes (already gone is fine).
    pub fn done(self) -> std::io::Result<()> {
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// The request cannot be applied, now or later: the file is renamed `.rejected` (no
    /// longer pending, kept for people to look at); returns the new path.
    pub fn reject(self) -> std::io::Result<PathBuf> {
        let to = self.path.with_extension(REJECTED);
        std::fs::rename(&self.path, &to).map(|()| to)
    }
}

/// What became of a request given to [`deliver`].
#[derive(Debug)]
pub enum Delivery {
    /// The agent answered it.
    Delivered(Response),
    /// The agent could not take it now; it waits in the spool.
    Spooled {
        /// Why it was not delivered.
        reason: ClientError,
        /// The spool file.
        path: PathBuf,
    },
    /// The agent refused it (a bad request: sending it again would not help); not spooled.
    Refused(ClientError),
    /// Neither delivered nor spooled (the spool could not be written either).
    Lost {
        /// Why it was not delivered.
        reason: ClientError,
        /// Why it was not spooled.
        spool: std::io::Error,
    },
}

/// Whether a failure to deliver is worth keeping the request for: the agent is not there,
/// the connection failed, or the agent could not act on it now.
fn worth_spooling(e: &ClientError) -> bool {
    match e {
        ClientError::Api(a) => matches!(a.code, ErrorCode::Unavailable | ErrorCode::Internal),
        _ => true,
    }
}

/// Sends `req` to the agent at `socket` (one connection, one request, answers within
/// `timeout`); when the agent is not running, does not answer in time, or answers that it
/// cannot act now, writes it to `spool` instead.
pub fn deliver(socket: &Path, spool: &Spool, req: &Request, timeout: Duration) -> Delivery {
    let reason = match Client::connect(socket, timeout).and_then(|mut c| c.call(req)) {
        Ok(r) => return Delivery::Delivered(r),
        Err(e) if !worth_spooling(&e) => return Delivery::Refused(e),
        Err(e) => e,
    };
    match spool.put(req) {
        Ok(path) => Delivery::Spooled { reason, path },
        Err(spool) => Delivery::Lost { reason, spool },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AttachmentEvent, AttachmentReport};
    use std::os::unix::fs::PermissionsExt;

    fn report(event: AttachmentEvent, id: &str) -> Request {
        Request::Report {
            report: AttachmentReport {
                event,
                plugin: "bridge".into(),
                network: "kubenet".into(),
                container_id: id.into(),
                ifname: "eth0".into(),
                pod_namespace: Some("shop".into()),
                pod_name: Some("web-1".into()),
                host_interface: "veth0123".into(),
                addresses: vec!["10.244.1.5/24".into()],
            },
        }
    }

    #[test]
    fn files_are_private_whole_and_replayed_in_order() {
        let t = tempfile::tempdir().unwrap();
        let spool = Spool::new(t.path().join("run/spool"));
        assert!(spool.pending().unwrap().is_empty(), "no directory yet");
        let reqs: Vec<Request> = (0..30)
            .map(|i| {
                let ev = if i % 2 == 0 {
                    AttachmentEvent::Add
                } else {
                    AttachmentEvent::Del
                };
                report(ev, &format!("c{i}"))
            })
            .collect();
        for r in &reqs {
            spool.put(r).unwrap();
        }
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(spool.dir()), 0o700);
        let pending = spool.pending().unwrap();
        assert_eq!(pending.len(), 30);
        let back: Vec<Request> = pending.iter().map(|p| p.read().unwrap()).collect();
        assert_eq!(back, reqs, "name order is the order of writing");
        assert!(pending.iter().all(|p| mode(p.path()) == 0o600));
        for p in pending {
            p.done().unwrap();
        }
        assert!(spool.pending().unwrap().is_empty());
        assert_eq!(
            std::fs::read_dir(spool.dir()).unwrap().count(),
            0,
            "no temporary file left"
        );
    }

    #[test]
    fn half_written_and_rejected_files_are_not_pending() {
        let t = tempfile::tempdir().unwrap();
        let spool = Spool::new(t.path());
        std::fs::write(t.path().join(".0001-1-0.tmp"), b"{\"op\":").unwrap();
        std::fs::write(t.path().join("0002-1-0.json"), b"not json").unwrap();
        let p = spool.pending().unwrap();
        assert_eq!(p.len(), 1);
        let e = p[0].read().unwrap_err();
        assert!(
            e.to_string().contains("0002-1-0.json: not a request"),
            "{e}"
        );
        let to = p.into_iter().next().unwrap().reject().unwrap();
        assert!(to.ends_with("0002-1-0.rejected"));
        assert!(spool.pending().unwrap().is_empty());
    }

    #[test]
    fn the_spool_lives_next_to_the_socket() {
        assert_eq!(
            Spool::next_to(Path::new("/run/ferro-cni/agent.sock")).dir(),
            Path::new("/run/ferro-cni/spool")
        );
    }

    #[test]
    fn without_an_agent_the_request_is_spooled() {
        let t = tempfile::Builder::new()
            .prefix("ft")
            .tempdir_in("/tmp")
            .unwrap();
        let sock = t.path().join("agent.sock");
        let spool = Spool::next_to(&sock);
        let req = report(AttachmentEvent::Add, "c1");
        match deliver(&sock, &spool, &req, Duration::from_secs(1)) {
            Delivery::Spooled { reason, path } => {
                assert!(reason.is_try_again(), "{reason}");
                assert!(path.starts_with(t.path().join("spool")));
            }
            other => panic!("{other:?}"),
        }
        let p = spool.pending().unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].read().unwrap(), req);
    }

    #[test]
    fn what_is_worth_spooling() {
        use crate::ApiError;
        let api = |c| ClientError::Api(ApiError::new(c, "x"));
        assert!(worth_spooling(&api(ErrorCode::Unavailable)));
        assert!(worth_spooling(&api(ErrorCode::Internal)));
        assert!(!worth_spooling(&api(ErrorCode::BadRequest)));
        assert!(!worth_spooling(&api(ErrorCode::Invalid)));
        assert!(worth_spooling(&ClientError::Protocol {
            path: "/s".into(),
            detail: "closed".into()
        }));
    }
}
