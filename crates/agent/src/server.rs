//! The unix socket: created root-only (its directory, when the agent creates it, mode 0700;
//! the socket mode 0600), one task per connection, one JSON request per line answered by
//! one JSON response per line.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use ferro_agent_api::{ErrorCode, Request, Response, MAX_LINE};
use ferro_store::Store;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use crate::api::Api;
use crate::metrics::Metrics;
use crate::state::make_private_dir;
use crate::AgentError;

/// The socket file, removed when dropped.
#[derive(Debug)]
pub struct SocketFile {
    path: PathBuf,
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Binds the socket at `path`: creates its directory (0700) when missing, replaces a stale
/// socket file, refuses when another process serves it, sets mode 0600.
pub fn bind(path: &Path) -> Result<(UnixListener, SocketFile), AgentError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            make_private_dir(dir)?;
        }
    }
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(AgentError::io(
                format!("socket {}", path.display()),
                std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "a file that is not a socket is in the way",
                ),
            ));
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(AgentError::io(
                format!("socket {}", path.display()),
                std::io::Error::new(
                    std::io::ErrorKind::AddrInUse,
                    "another process serves it (another ferro-agent?)",
                ),
            ));
        }
        std::fs::remove_file(path)
            .map_err(|e| AgentError::io(format!("removing stale socket {}", path.display()), e))?;
    }
    let listener = UnixListener::bind(path)
        .map_err(|e| AgentError::io(format!("binding socket {}", path.display()), e))?;
    let file = SocketFile {
        path: path.to_path_buf(),
    };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| AgentError::io(format!("chmod 0600 {}", path.display()), e))?;
    Ok((listener, file))
}

/// Accepts connections until the task is dropped.
pub async fn serve<S: Store + Clone + 'static>(
    listener: UnixListener,
    api: Arc<Api<S>>,
    metrics: Arc<Metrics>,
) {
    loop {
        match listener.accept().await {
            Ok((conn, _)) => {
                let (api, metrics) = (api.clone(), metrics.clone());
                tokio::spawn(async move { connection(conn, &api, &metrics).await });
            }
            Err(e) => {
                log::warn!("socket: accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

fn op_name(r: &Request) -> &'static str {
    match r {
        Request::Status => "status",
        Request::Apply { .. } => "apply",
        Request::Get { .. } => "get",
        Request::List { .. } => "list",
        Request::Delete { .. } => "delete",
        Request::Describe { .. } => "describe",
        Request::PolicyExplain { .. } => "policyExplain",
        Request::PolicyStats { .. } => "policyStats",
        Request::IpamAllocate(_) => "ipamAllocate",
        Request::IpamRelease(_) => "ipamRelease",
        Request::IpamCheck(_) => "ipamCheck",
        Request::IpamGc(_) => "ipamGC",
        Request::IpamStatus(_) => "ipamStatus",
        Request::IpamShow(_) => "ipamShow",
        Request::IpamAudit(_) => "ipamAudit",
        Request::IpamReclaim(_) => "ipamReclaim",
        Request::Report { .. } => "report",
        Request::NodeFirewall => "nodeFirewall",
    }
}

fn code_name(r: &Response) -> &'static str {
    match r {
        Response::Error { error } => error.code.as_str(),
        _ => "ok",
    }
}

async fn connection<S: Store + Clone + 'static>(conn: UnixStream, api: &Api<S>, metrics: &Metrics) {
    let (r, mut w) = conn.into_split();
    let mut r = BufReader::new(r);
    loop {
        let mut line = Vec::new();
        let n = match (&mut r)
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut line)
            .await
        {
            Ok(n) => n,
            Err(e) => {
                log::debug!("socket: read: {e}");
                return;
            }
        };
        if n == 0 {
            return;
        }
        let t0 = Instant::now();
        let (op, resp) = if !line.ends_with(b"\n") && n as u64 >= MAX_LINE as u64 {
            (
                "unknown",
                Response::error(
                    ErrorCode::BadRequest,
                    format!("request longer than {MAX_LINE} bytes"),
                ),
            )
        } else {
            match serde_json::from_slice::<Request>(&line) {
                Ok(req) => {
                    let op = op_name(&req);
                    log::debug!("socket: {op}");
                    (op, api.handle(req).await)
                }
                Err(e) => (
                    "unknown",
                    Response::error(ErrorCode::BadRequest, format!("not a request: {e}")),
                ),
            }
        };
        metrics.request(op, code_name(&resp), t0.elapsed().as_secs_f64());
        let mut out = serde_json::to_vec(&resp).unwrap_or_else(|e| {
            serde_json::to_vec(&Response::error(ErrorCode::Internal, e.to_string()))
                .unwrap_or_default()
        });
        out.push(b'\n');
        if w.write_all(&out).await.is_err() {
            return;
        }
        if matches!(resp, Response::Error { ref error } if error.code == ErrorCode::BadRequest)
            && op == "unknown"
        {
            // The stream may be out of step: close it.
            return;
        }
    }
}
