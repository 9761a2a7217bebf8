//! The spool: requests a plugin could not deliver to the agent (not running yet, restarting,
//! or not answering in time), kept as files until the agent applies them.
//!
//! ```text
//! <spool dir>/                               mode 0700, root only (default: `spool` next to the socket)
//!   0001733312345678-0004242-000000.json     {"at": <ms since 1970>, "request": {...}}, mode 0600
//!   .0001733312345678-0004242-000001.json.tmp  being written (ignored)
//!   0001733312340000-0004100-000000.rejected   a file the agent could not use (kept for people)
//! ```
//!
//! - A file holds one [`Request`] and when it was spooled. It is written under a dot name,
//!   synced, then renamed into place, so a reader never sees half a request.
//! - Names sort in the order the requests were made: milliseconds since 1970, the writer's
//!   pid, a per-process counter. Requests about one attachment are made one after the other
//!   by the runtime (ADD returns before DEL starts), so replaying in name order keeps their
//!   order (two spooled within the same millisecond by two processes may swap: the agent's
//!   resync of attachments against the node's links repairs that case).
//! - The agent replays pending files in name order at start, before it serves its socket,
//!   whenever it finds files (it looks every second), and before it handles any request
//!   that the spool could be ahead of; it deletes each file once applied, and renames one it
//!   cannot read or that it refuses `.rejected`. `at` lets it judge a request by its age
//!   (an address release spooled before the attachment was made again must not take the new
//!   addresses away).
//! - Replaying is only correct for requests that are idempotent and carry everything they
//!   need: attachment reports, address releases.
//!
//! [`deliver`] is what a plugin calls: the request goes to the agent, or into the spool when
//! the agent cannot take it now.

use std::fs::{DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

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

/// One pending file, as read back.
#[derive(Debug)]
pub struct Entry {
    /// The file.
    pub path: PathBuf,
    /// When it was spooled (milliseconds since 1970; from the name when the file is
    /// unreadable).
    pub at_ms: u64,
    /// The request, or why it cannot be read.
    pub request: Result<Request, String>,
}

/// A file's content.
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
    /// The spool at `dir`.
    pub fn at(dir: impl Into<PathBuf>) -> Spool {
        Spool { dir: dir.into() }
    }

    /// The spool next to `socket` (`<socket's directory>/spool`): plugins and the agent find
    /// the same one from the socket alone.
    pub fn for_socket(socket: &Path) -> Spool {
        let dir = socket
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        Spool::at(dir.join(SPOOL_DIR_NAME))
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `req` as a new pending file (creating the directory, mode 0700, when missing);
    /// returns its path.
    pub fn push(&self, req: &Request) -> std::io::Result<PathBuf> {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)?;
        let at = now_ms();
        let body = serde_json::to_vec(&Stored {
            at,
            request: req.clone(),
        })
        .map_err(std::io::Error::other)?;
        // Zero-padded: names sort as the requests were made (within one millisecond, one
        // process's in its order).
        let name = format!(
            "{at:016}-{:07}-{:06}.{PENDING}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed) % 1_000_000
        );
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let path = self.dir.join(name);
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
    pub fn entries(&self) -> std::io::Result<Vec<Entry>> {
        let rd = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut names = Vec::new();
        for e in rd {
            let name = e?.file_name().to_string_lossy().into_owned();
            if !name.starts_with('.') && name.ends_with(&format!(".{PENDING}")) {
                names.push(name);
            }
        }
        names.sort();
        Ok(names
            .into_iter()
            .map(|name| {
                let path = self.dir.join(&name);
                let stored = std::fs::read(&path)
                    .map_err(|e| e.to_string())
                    .and_then(|b| {
                        serde_json::from_slice::<Stored>(&b)
                            .map_err(|e| format!("not a spooled request: {e}"))
                    });
                match stored {
                    Ok(s) => Entry {
                        path,
                        at_ms: s.at,
                        request: Ok(s.request),
                    },
                    Err(e) => Entry {
                        at_ms: name
                            .split('-')
                            .next()
                            .and_then(|t| t.parse().ok())
                            .unwrap_or(0),
                        path,
                        request: Err(e),
                    },
                }
            })
            .collect())
    }

    /// The request was applied: the file goes (already gone is fine).
    pub fn remove(&self, entry: &Entry) -> std::io::Result<()> {
        match std::fs::remove_file(&entry.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// The request cannot be applied, now or later: the file is renamed `.rejected` (no
    /// longer pending, kept for people to look at); returns the new path.
    pub fn reject(&self, entry: &Entry) -> std::io::Result<PathBuf> {
        let to = entry.path.with_extension(REJECTED);
        std::fs::rename(&entry.path, &to).map(|()| to)
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
/// cannot act now, writes it to `spool` instead ([`Request::spoolable`]: without a DEL
/// report's firewall removal, which the caller then does itself).
pub fn deliver(socket: &Path, spool: &Spool, req: &Request, timeout: Duration) -> Delivery {
    let reason = match Client::connect(socket, timeout).and_then(|mut c| c.call(req)) {
        Ok(r) => return Delivery::Delivered(r),
        Err(e) if !worth_spooling(&e) => return Delivery::Refused(e),
        Err(e) => e,
    };
    match spool.push(&req.spoolable()) {
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
                firewall: None,
            },
        }
    }

    #[test]
    fn files_are_private_whole_and_replayed_in_order() {
        let t = tempfile::tempdir().unwrap();
        let spool = Spool::at(t.path().join("run/spool"));
        assert!(spool.entries().unwrap().is_empty(), "no directory yet");
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
        let t0 = now_ms();
        for r in &reqs {
            spool.push(r).unwrap();
        }
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(spool.dir()), 0o700);
        let entries = spool.entries().unwrap();
        assert_eq!(entries.len(), 30);
        let back: Vec<Request> = entries.iter().map(|e| e.request.clone().unwrap()).collect();
        assert_eq!(back, reqs, "name order is the order of writing");
        assert!(entries.iter().all(|e| mode(&e.path) == 0o600));
        assert!(entries.iter().all(|e| e.at_ms >= t0 && e.at_ms <= now_ms()));
        for e in &entries {
            spool.remove(e).unwrap();
            spool.remove(e).unwrap();
        }
        assert!(spool.entries().unwrap().is_empty());
        assert_eq!(
            std::fs::read_dir(spool.dir()).unwrap().count(),
            0,
            "no temporary file left"
        );
    }

    #[test]
    fn half_written_and_rejected_files_are_not_pending() {
        let t = tempfile::tempdir().unwrap();
        let spool = Spool::at(t.path());
        std::fs::write(t.path().join(".0000000000000001-1-0.json.tmp"), b"{\"at\":").unwrap();
        std::fs::write(t.path().join("0000000000000002-1-0.json"), b"not json").unwrap();
        let e = spool.entries().unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].at_ms, 2, "from the name");
        let why = e[0].request.as_ref().unwrap_err();
        assert!(why.starts_with("not a spooled request"), "{why}");
        let to = spool.reject(&e[0]).unwrap();
        assert!(to.ends_with("0000000000000002-1-0.rejected"));
        assert!(spool.entries().unwrap().is_empty());
    }

    #[test]
    fn the_spool_lives_next_to_the_socket() {
        assert_eq!(
            Spool::for_socket(Path::new("/run/ferro-cni/agent.sock")).dir(),
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
        let spool = Spool::for_socket(&sock);
        let req = report(AttachmentEvent::Add, "c1");
        match deliver(&sock, &spool, &req, Duration::from_secs(1)) {
            Delivery::Spooled { reason, path } => {
                assert!(reason.is_try_again(), "{reason}");
                assert!(path.starts_with(t.path().join("spool")));
            }
            other => panic!("{other:?}"),
        }
        let e = spool.entries().unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].request.as_ref().unwrap(), &req);
    }

    #[test]
    fn a_spooled_del_report_carries_no_firewall_removal() {
        let t = tempfile::tempdir().unwrap();
        let sock = t.path().join("agent.sock");
        let spool = Spool::for_socket(&sock);
        let mut req = report(AttachmentEvent::Del, "c1");
        if let Request::Report { report } = &mut req {
            report.firewall = Some(crate::FirewallRemoval {
                masquerade: true,
                addresses: Some(vec!["10.244.1.5".parse().unwrap()]),
            });
        }
        assert!(matches!(
            deliver(&sock, &spool, &req, Duration::from_secs(1)),
            Delivery::Spooled { .. }
        ));
        let e = spool.entries().unwrap();
        let Ok(Request::Report { report }) = &e[0].request else {
            panic!("{:?}", e[0].request);
        };
        assert_eq!(report.firewall, None);
        assert_eq!(&req.spoolable(), e[0].request.as_ref().unwrap());
        assert_ne!(req.spoolable(), req);
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
