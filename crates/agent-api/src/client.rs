//! The blocking client.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{ApiError, ErrorCode, Request, Response, MAX_LINE};

/// A failure to get an answer from the agent, or the agent's own error.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens on the socket (the agent is not running, or another socket path).
    #[error("cannot reach ferro-agent at {path}: {source} (is the agent running? --socket or FERRO_AGENT_SOCKET choose another socket)")]
    NotRunning {
        /// The socket.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The connection failed mid-way (or timed out).
    #[error("ferro-agent at {path}: {source}")]
    Io {
        /// The socket.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The agent answered something that is not a response.
    #[error("ferro-agent at {path}: unexpected answer: {detail}")]
    Protocol {
        /// The socket.
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },
    /// The agent answered with an error.
    #[error("{0}")]
    Api(#[from] ApiError),
}

impl ClientError {
    /// Whether a caller should try again later (CNI code 11): the agent is not there, or
    /// it cannot reach the store.
    pub fn is_try_again(&self) -> bool {
        match self {
            ClientError::NotRunning { .. } => true,
            ClientError::Api(e) => e.code == ErrorCode::Unavailable,
            _ => false,
        }
    }
}

/// A connection to the agent.
#[derive(Debug)]
pub struct Client {
    path: PathBuf,
    writer: UnixStream,
    reader: BufReader<UnixStream>,
}

impl Client {
    /// Connects to the agent's socket; every answer must come within `timeout`.
    pub fn connect(path: &Path, timeout: Duration) -> Result<Client, ClientError> {
        let stream = UnixStream::connect(path).map_err(|source| ClientError::NotRunning {
            path: path.to_path_buf(),
            source,
        })?;
        let io = |source| ClientError::Io {
            path: path.to_path_buf(),
            source,
        };
        stream.set_read_timeout(Some(timeout)).map_err(io)?;
        stream.set_write_timeout(Some(timeout)).map_err(io)?;
        let reader = BufReader::new(stream.try_clone().map_err(io)?);
        Ok(Client {
            path: path.to_path_buf(),
            writer: stream,
            reader,
        })
    }

    /// Sends `req` and waits for its answer; an error answer is [`ClientError::Api`].
    pub fn call(&mut self, req: &Request) -> Result<Response, ClientError> {
        self.send(req)?;
        self.receive()
    }

    /// Sends `req` without waiting for its answer, so the caller can work while the agent
    /// does; [`Client::receive`] reads the answer.
    pub fn send(&mut self, req: &Request) -> Result<(), ClientError> {
        let mut line = serde_json::to_vec(req).map_err(|e| ClientError::Protocol {
            path: self.path.clone(),
            detail: e.to_string(),
        })?;
        line.push(b'\n');
        self.writer
            .write_all(&line)
            .map_err(|source| ClientError::Io {
                path: self.path.clone(),
                source,
            })
    }

    /// Waits for the answer to the request sent last; an error answer is
    /// [`ClientError::Api`].
    pub fn receive(&mut self) -> Result<Response, ClientError> {
        let mut answer = Vec::new();
        let n = Read::take(&mut self.reader, MAX_LINE as u64)
            .read_until(b'\n', &mut answer)
            .map_err(|source| ClientError::Io {
                path: self.path.clone(),
                source,
            })?;
        if n == 0 {
            // It went away mid-request (a restart, a crash): try again later.
            return Err(ClientError::Io {
                path: self.path.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the agent closed the connection",
                ),
            });
        }
        match serde_json::from_slice::<Response>(&answer) {
            Ok(Response::Error { error }) => Err(ClientError::Api(error)),
            Ok(r) => Ok(r),
            Err(e) => Err(ClientError::Protocol {
                path: self.path.clone(),
                detail: e.to_string(),
            }),
        }
    }
}

/// One request on a fresh connection.
pub fn call(path: &Path, req: &Request, timeout: Duration) -> Result<Response, ClientError> {
    Client::connect(path, timeout)?.call(req)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    #[test]
    fn one_line_per_message_both_ways() {
        // short: a socket path has at most 107 bytes, and TMPDIR may be deep
        let dir = tempfile::Builder::new()
            .prefix("ft")
            .tempdir_in("/tmp")
            .unwrap();
        let path = dir.path().join("s");
        let listener = UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (s, _) = listener.accept().unwrap();
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut w = s;
            for answer in [
                r#"{"result":"status","node":"a","store":"embedded /x","version":"0.1.0","revision":7}"#,
                r#"{"result":"error","error":{"code":"unavailable","message":"store unavailable"}}"#,
            ] {
                let mut line = String::new();
                r.read_line(&mut line).unwrap();
                assert!(line.ends_with('\n') && !line[..line.len() - 1].contains('\n'));
                let _: Request = serde_json::from_str(&line).unwrap();
                w.write_all(answer.as_bytes()).unwrap();
                w.write_all(b"\n").unwrap();
            }
        });
        let mut c = Client::connect(&path, Duration::from_secs(5)).unwrap();
        let r = c.call(&Request::Status).unwrap();
        assert!(matches!(r, Response::Status { revision: 7, .. }));
        let e = c
            .call(&Request::Get {
                kind: "pods".into(),
                namespace: None,
                name: "x".into(),
            })
            .unwrap_err();
        assert!(e.is_try_again(), "{e}");
        assert_eq!(e.to_string(), "store unavailable");
        server.join().unwrap();
        let e = c.call(&Request::Status).unwrap_err();
        assert!(
            matches!(e, ClientError::Protocol { .. } | ClientError::Io { .. }),
            "{e}"
        );
    }

    #[test]
    fn no_agent_is_try_again() {
        let dir = tempfile::tempdir().unwrap();
        let e = call(
            &dir.path().join("none"),
            &Request::Status,
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(e.is_try_again());
        assert!(e.to_string().contains("is the agent running?"), "{e}");
    }

    #[test]
    fn requests_are_tagged_by_op() {
        let r = Request::List {
            kind: "pods".into(),
            namespace: None,
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"op":"list","kind":"pods"}"#
        );
        let o = crate::Outcome {
            kind: "Pod".into(),
            namespace: Some("shop".into()),
            name: "web".into(),
            action: crate::Action::Created,
            allocated: vec![],
        };
        assert_eq!(o.to_string(), "pod/web created (namespace shop)");
        let s = crate::Outcome {
            kind: "Service".into(),
            name: "web".into(),
            allocated: vec!["clusterIP 10.96.0.10".into(), "nodePort 30080/TCP".into()],
            ..o
        };
        assert_eq!(
            s.to_string(),
            "service/web created (namespace shop): clusterIP 10.96.0.10, nodePort 30080/TCP"
        );
    }

    #[test]
    fn ipam_ops_and_their_wire_form() {
        use crate::ipam::*;
        let handle = IpamHandle {
            container_id: "c1".into(),
            ifname: "eth0".into(),
        };
        let r = Request::IpamAllocate(IpamAllocate {
            network: "kubenet".into(),
            handle: handle.clone(),
            netns: Some("/run/netns/p".into()),
            pod: Some(PodRef {
                namespace: "shop".into(),
                name: "web-1".into(),
            }),
            mode: IpamMode::Node,
            families: Some(vec![Family::Ipv4]),
            report: None,
            masquerade: None,
        });
        let s = serde_json::to_string(&r).unwrap();
        assert_eq!(
            s,
            r#"{"op":"ipamAllocate","network":"kubenet","containerID":"c1","ifname":"eth0","netns":"/run/netns/p","pod":{"namespace":"shop","name":"web-1"},"mode":"node","families":["ipv4"]}"#
        );
        assert_eq!(serde_json::from_str::<Request>(&s).unwrap(), r);
        let gc = Request::IpamGc(IpamGc {
            network: "n".into(),
            valid: vec![handle],
        });
        let s = serde_json::to_string(&gc).unwrap();
        assert!(s.starts_with(r#"{"op":"ipamGC","#), "{s}");
        assert_eq!(serde_json::from_str::<Request>(&s).unwrap(), gc);
        for (op, want) in [
            (
                r#"{"op":"ipamShow"}"#,
                Request::IpamShow(IpamShow::default()),
            ),
            (
                r#"{"op":"ipamAudit"}"#,
                Request::IpamAudit(IpamAudit::default()),
            ),
            (
                r#"{"op":"ipamReclaim","node":"b"}"#,
                Request::IpamReclaim(IpamReclaim {
                    node: Some("b".into()),
                    ..IpamReclaim::default()
                }),
            ),
        ] {
            assert_eq!(serde_json::from_str::<Request>(op).unwrap(), want, "{op}");
        }
        let a = Response::IpamAllocated {
            ips: vec![IpamIp {
                address: "10.244.1.2/24".parse().unwrap(),
                gateway: Some("10.244.1.1".parse().unwrap()),
                block: "10.244.1.0/24".parse().unwrap(),
            }],
            attachment: None,
            masqueraded: false,
        };
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            r#"{"result":"ipamAllocated","ips":[{"address":"10.244.1.2/24","gateway":"10.244.1.1","block":"10.244.1.0/24"}]}"#
        );
        // IPv6 pools are larger than 64-bit counts: strings beyond, and back
        let show = Response::IpamShow(IpamShowReply {
            pools: vec![PoolUse {
                cidr: "fd00::/56".parse().unwrap(),
                block_prefix: 122,
                node_block_prefix: 64,
                blocks: 1,
                claimed_addresses: 64,
                in_use: 1,
                size: 1 << 72,
            }],
            ..IpamShowReply::default()
        });
        let text = serde_json::to_string(&show).unwrap();
        assert!(
            text.contains(r#""claimedAddresses":64,"inUse":1,"size":"4722366482869645213696""#),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<Response>(&text).unwrap(), show);
        let e = Response::error(ErrorCode::Exhausted, "pool 10.244.0.0/16 is exhausted");
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"result":"error","error":{"code":"exhausted","message":"pool 10.244.0.0/16 is exhausted"}}"#
        );
    }
}
