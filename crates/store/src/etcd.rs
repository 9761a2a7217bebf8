//! The etcd v3 backend, over the `etcd-client` crate (gRPC).
//!
//! - Every request has a deadline (`requestTimeoutSeconds`); within it, transient failures
//!   (no leader, leader changed, member down, an attempt unanswered for a third of the
//!   deadline) are retried. No answer in time, a refused connection or a failed TLS handshake
//!   is [`StoreError::Unavailable`], naming the endpoints.
//! - The client balances over every endpoint; a dead member is skipped.
//! - A watch is a task that keeps the next revision it owes its consumer: when the stream
//!   breaks (member killed, connection lost, no leader) it opens a new one from that revision
//!   after a bounded back-off (100 ms doubling to 5 s), so no change is lost or repeated. When
//!   etcd answers that the revision is compacted, the watch ends with
//!   [`StoreError::Compacted`].
//! - TLS: the CA that signed the members' certificates, and a client certificate and key
//!   when the members require one (`--client-cert-auth`).

use std::time::Duration;

use etcd_client::{
    Certificate, Client, ConnectOptions, GetOptions, Identity, TlsOptions, TxnOp, TxnOpResponse,
    WatchOptions,
};
use tokio::sync::mpsc;

use crate::config::EtcdConfig;
use crate::watch::WATCH_BUFFER;
use crate::{
    Compare, Event, EventKind, KeyValue, Lease, LeaseId, Listing, Op, Result, Revision, Store,
    StoreError, Txn, TxnResult, Watch,
};

/// Longest wait between two attempts to re-open a broken watch.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Keys per page of a listing.
const LIST_PAGE: i64 = 2000;

/// The end of the range of keys starting with `prefix` (exclusive): the prefix with its
/// last byte below 0xff increased, the bytes after it dropped; `\0` (every key) when
/// there is none.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// A connection to an etcd cluster. Cheap to clone.
#[derive(Clone)]
pub struct Etcd {
    client: Client,
    endpoints: String,
    timeout: Duration,
}

impl std::fmt::Debug for Etcd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Etcd")
            .field("endpoints", &self.endpoints)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// An error and its sources, joined (tonic's transport errors say little at the top).
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = c.source();
    }
    s
}

fn read_pem(what: &str, path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| StoreError::Config(format!("{what} {}: {e}", path.display())))
}

impl Etcd {
    /// Connects to the cluster of `cfg` and checks that it answers (a read within the dial
    /// timeout): an unreachable cluster is [`StoreError::Unavailable`] here, not later.
    pub async fn connect(cfg: &EtcdConfig) -> Result<Etcd> {
        if cfg.endpoints.is_empty() {
            return Err(StoreError::Config("etcd: no endpoints".into()));
        }
        let mut opts = ConnectOptions::new()
            .with_connect_timeout(cfg.dial_timeout())
            .with_keep_alive(Duration::from_secs(5), Duration::from_secs(5))
            .with_require_leader(true);
        let tls = cfg.ca_file.is_some() || cfg.cert_file.is_some();
        if tls {
            let mut t = TlsOptions::new();
            if let Some(ca) = &cfg.ca_file {
                t = t.ca_certificate(Certificate::from_pem(read_pem("caFile", ca)?));
            }
            match (&cfg.cert_file, &cfg.key_file) {
                (Some(c), Some(k)) => {
                    t = t.identity(Identity::from_pem(
                        read_pem("certFile", c)?,
                        read_pem("keyFile", k)?,
                    ));
                }
                (None, None) => {}
                _ => {
                    return Err(StoreError::Config(
                        "etcd: certFile and keyFile go together".into(),
                    ))
                }
            }
            opts = opts.with_tls(t);
        }
        let mut endpoints = Vec::new();
        for e in &cfg.endpoints {
            if tls && e.starts_with("http://") {
                return Err(StoreError::Config(format!(
                    "etcd endpoint {e}: http:// with TLS files configured (use https://)"
                )));
            }
            endpoints.push(e.clone());
        }
        let shown = endpoints.join(", ");
        let client = Client::connect(&endpoints, Some(opts))
            .await
            .map_err(|e| match e {
                etcd_client::Error::InvalidArgs(m) => StoreError::Config(format!("etcd: {m}")),
                etcd_client::Error::InvalidUri(u) => {
                    StoreError::Config(format!("etcd endpoints {shown}: {u}"))
                }
                e => StoreError::Unavailable {
                    detail: format!("etcd {shown}: {}", chain(&e)),
                },
            })?;
        let etcd = Etcd {
            client,
            endpoints: shown,
            timeout: cfg.request_timeout(),
        };
        // The client connects lazily: ask something, within the dial timeout.
        etcd.call_within(cfg.dial_timeout(), |mut c| async move {
            c.get("/", Some(GetOptions::new().with_count_only())).await
        })
        .await?;
        Ok(etcd)
    }

    fn timed_out(&self, t: Duration) -> StoreError {
        StoreError::Unavailable {
            detail: format!("etcd {}: no answer within {t:?}", self.endpoints),
        }
    }

    fn map_err(&self, e: etcd_client::Error) -> StoreError {
        use tonic::Code;
        match e {
            etcd_client::Error::GRpcStatus(s) => {
                let msg = s.message();
                match s.code() {
                    _ if msg.contains("required revision has been compacted") => {
                        StoreError::Compacted {
                            requested: 0,
                            compacted: 0,
                        }
                    }
                    Code::NotFound if msg.contains("lease not found") => {
                        StoreError::LeaseNotFound(LeaseId(0))
                    }
                    Code::Unavailable
                    | Code::DeadlineExceeded
                    | Code::Cancelled
                    | Code::Unknown
                    | Code::Aborted => StoreError::Unavailable {
                        detail: format!("etcd {}: {}", self.endpoints, chain(&s)),
                    },
                    _ => StoreError::Rejected(format!("etcd: {msg}")),
                }
            }
            etcd_client::Error::LeaseKeepAliveError(m) if m.contains("not found") => {
                StoreError::LeaseNotFound(LeaseId(0))
            }
            etcd_client::Error::Utf8Error(e) => StoreError::Protocol(e.to_string()),
            e => StoreError::Unavailable {
                detail: format!("etcd {}: {}", self.endpoints, chain(&e)),
            },
        }
    }

    /// Runs one request, retrying transient failures (no leader, leader changed, a member
    /// down) with a short back-off until the request timeout has passed. A write may so be
    /// applied although etcd reported a failure: every write that must not race carries a
    /// compare, which then fails, and the caller reads again.
    async fn call<T, F, Fut>(&self, f: F) -> Result<T>
    where
        F: FnMut(Client) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        self.call_within(self.timeout, f).await
    }

    async fn call_within<T, F, Fut>(&self, timeout: Duration, mut f: F) -> Result<T>
    where
        F: FnMut(Client) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        let deadline = tokio::time::Instant::now() + timeout;
        // One attempt gets a third of the time: a request stuck on a member that lost its
        // leader (etcd answers it only after its own 7 s) is abandoned and sent again.
        let attempt = (timeout / 3).max(Duration::from_secs(1));
        let mut pause = Duration::from_millis(50);
        loop {
            let until = deadline.min(tokio::time::Instant::now() + attempt);
            let last = match tokio::time::timeout_at(until, f(self.client.clone())).await {
                Err(_) if until >= deadline => return Err(self.timed_out(timeout)),
                Err(_) => self.timed_out(attempt),
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) => self.map_err(e),
            };
            if !last.is_unavailable() || tokio::time::Instant::now() + pause >= deadline {
                return Err(last);
            }
            log::debug!("etcd: {last}; retrying");
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }

    /// The endpoints, for messages.
    pub fn endpoints(&self) -> &str {
        &self.endpoints
    }
}

fn convert(kv: &etcd_client::KeyValue) -> Result<KeyValue> {
    Ok(KeyValue {
        key: kv
            .key_str()
            .map_err(|e| StoreError::Protocol(format!("non-UTF-8 key: {e}")))?
            .to_string(),
        value: kv.value().to_vec(),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
        version: kv.version(),
        lease: (kv.lease() != 0).then_some(LeaseId(kv.lease())),
    })
}

fn convert_event(e: &etcd_client::Event) -> Result<Option<Event>> {
    let Some(kv) = e.kv() else { return Ok(None) };
    let mut kv = convert(kv)?;
    let kind = match e.event_type() {
        etcd_client::EventType::Put => EventKind::Put,
        etcd_client::EventType::Delete => {
            kv.value.clear();
            kv.create_revision = 0;
            kv.version = 0;
            kv.lease = None;
            EventKind::Delete
        }
    };
    Ok(Some(Event { kind, kv }))
}

fn compare(c: &Compare) -> etcd_client::Compare {
    use etcd_client::CompareOp::Equal;
    match c {
        Compare::Version { key, version } => {
            etcd_client::Compare::version(key.as_str(), Equal, *version)
        }
        Compare::ModRevision { key, revision } => {
            etcd_client::Compare::mod_revision(key.as_str(), Equal, *revision)
        }
    }
}

fn txn_op(op: &Op) -> TxnOp {
    match op {
        Op::Put { key, value, lease } => TxnOp::put(
            key.as_str(),
            value.clone(),
            lease.map(|l| etcd_client::PutOptions::new().with_lease(l.0)),
        ),
        Op::Delete { key } => TxnOp::delete(key.as_str(), None),
    }
}

impl Store for Etcd {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let resp = self
            .call(|mut c| async move { c.get(key, None).await })
            .await?;
        resp.kvs().first().map(convert).transpose()
    }

    async fn list(&self, prefix: &str) -> Result<Listing> {
        // In pages of LIST_PAGE keys, every page read at the first one's revision: one
        // answer holding a whole large store would exceed the gRPC message limit (4 MiB;
        // 10,000 pods with their attachments are more).
        let end = prefix_end(prefix.as_bytes());
        let mut from = prefix.as_bytes().to_vec();
        let mut revision = 0;
        let mut kvs = Vec::new();
        loop {
            let resp = self
                .call(|mut c| {
                    let (from, end) = (from.clone(), end.clone());
                    async move {
                        let mut o = GetOptions::new().with_range(end).with_limit(LIST_PAGE);
                        if revision > 0 {
                            o = o.with_revision(revision);
                        }
                        c.get(from, Some(o)).await
                    }
                })
                .await?;
            if revision == 0 {
                revision = resp.header().map_or(0, |h| h.revision());
            }
            for kv in resp.kvs() {
                kvs.push(convert(kv)?);
            }
            match resp.kvs().last() {
                Some(last) if resp.more() => {
                    from = last.key().to_vec();
                    from.push(0);
                }
                _ => break,
            }
        }
        Ok(Listing { kvs, revision })
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResult> {
        let lease_of_put = txn.ops.iter().find_map(|o| match o {
            Op::Put { lease: Some(l), .. } => Some(*l),
            _ => None,
        });
        let t = etcd_client::Txn::new()
            .when(txn.compares.iter().map(compare).collect::<Vec<_>>())
            .and_then(txn.ops.iter().map(txn_op).collect::<Vec<_>>())
            .or_else(
                txn.compares
                    .iter()
                    .map(|c| TxnOp::get(c.key(), None))
                    .collect::<Vec<_>>(),
            );
        let resp = self
            .call(|mut c| {
                let t = t.clone();
                async move { c.txn(t).await }
            })
            .await
            .map_err(|e| match (e, lease_of_put) {
                (StoreError::LeaseNotFound(_), Some(l)) => StoreError::LeaseNotFound(l),
                (e, _) => e,
            })?;
        let revision = resp.header().map_or(0, |h| h.revision());
        let mut current = Vec::new();
        if !resp.succeeded() {
            for r in resp.op_responses() {
                if let TxnOpResponse::Get(g) = r {
                    current.push(g.kvs().first().map(convert).transpose()?);
                }
            }
        }
        Ok(TxnResult {
            succeeded: resp.succeeded(),
            revision,
            current,
        })
    }

    async fn grant(&self, ttl: Duration) -> Result<Lease> {
        let secs = ttl.as_secs().max(1) as i64;
        let resp = self
            .call(|mut c| async move { c.lease_grant(secs, None).await })
            .await?;
        if !resp.error().is_empty() {
            return Err(StoreError::Rejected(format!(
                "etcd lease grant: {}",
                resp.error()
            )));
        }
        Ok(Lease {
            id: LeaseId(resp.id()),
            ttl: Duration::from_secs(resp.ttl().max(1) as u64),
        })
    }

    async fn keepalive(&self, lease: LeaseId) -> Result<()> {
        // One round trip: the client sends a keep-alive and reads its answer (TTL 0 when the
        // lease is gone).
        self.call(|mut c| async move { c.lease_keep_alive(lease.0).await })
            .await
            .map(|_| ())
            .map_err(|e| match e {
                StoreError::LeaseNotFound(_) => StoreError::LeaseNotFound(lease),
                e => e,
            })
    }

    async fn revoke(&self, lease: LeaseId) -> Result<()> {
        match self
            .call(|mut c| async move { c.lease_revoke(lease.0).await })
            .await
        {
            Ok(_) | Err(StoreError::LeaseNotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn watch(&self, prefix: &str, from: Revision) -> Result<Watch> {
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        let task = tokio::spawn(follow(self.clone(), prefix.to_string(), from, tx));
        Ok(Watch::new(rx, task))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        self.call(|mut c| async move { c.compact(revision, None).await })
            .await
            .map(|_| ())
            .map_err(|e| match e {
                StoreError::Compacted { .. } => StoreError::Compacted {
                    requested: revision,
                    compacted: revision,
                },
                e => e,
            })
    }
}

/// What one watch stream ended with.
enum StreamEnd {
    /// Broken: open another from the next revision.
    Broken(String),
    /// The consumer is gone, or the watch is over (compacted, reported).
    Done,
}

/// Where a watch stands: the next revision it owes its consumer, and its back-off.
struct Resume {
    next: Revision,
    failures: u32,
    backoff: Duration,
}

/// A watch's task: opens a stream from the next revision owed, forwards its events, re-opens
/// it after a back-off when it breaks.
async fn follow(etcd: Etcd, prefix: String, from: Revision, tx: mpsc::Sender<Result<Vec<Event>>>) {
    let mut r = Resume {
        next: from,
        failures: 0,
        backoff: Duration::from_millis(100),
    };
    loop {
        match stream_once(&etcd, &prefix, &mut r, &tx).await {
            StreamEnd::Done => return,
            StreamEnd::Broken(why) => {
                if r.failures == 0 {
                    log::warn!("watch {prefix}: {why}; resuming from revision {}", r.next);
                }
                r.failures += 1;
                tokio::time::sleep(r.backoff).await;
                r.backoff = (r.backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

async fn stream_once(
    etcd: &Etcd,
    prefix: &str,
    r: &mut Resume,
    tx: &mpsc::Sender<Result<Vec<Event>>>,
) -> StreamEnd {
    let mut opts = WatchOptions::new().with_prefix();
    if r.next > 0 {
        opts = opts.with_start_revision(r.next);
    }
    let mut stream = match etcd
        .call(|mut c| {
            let opts = opts.clone();
            async move { c.watch(prefix, Some(opts)).await }
        })
        .await
    {
        Ok(s) => s,
        Err(e) => return StreamEnd::Broken(e.to_string()),
    };
    loop {
        let resp = match stream.message().await {
            Ok(Some(resp)) => resp,
            Ok(None) => return StreamEnd::Broken("stream closed".into()),
            Err(e) => return StreamEnd::Broken(etcd.map_err(e).to_string()),
        };
        if resp.compact_revision() > 0 {
            let _ = tx
                .send(Err(StoreError::Compacted {
                    requested: r.next,
                    compacted: resp.compact_revision(),
                }))
                .await;
            return StreamEnd::Done;
        }
        if resp.created() {
            if r.failures > 0 {
                log::info!("watch {prefix}: resumed from revision {}", r.next);
            }
            r.failures = 0;
            r.backoff = Duration::from_millis(100);
            if r.next <= 0 {
                // "from now": pin the revision so that a resume continues from here.
                r.next = resp.header().map_or(0, |h| h.revision()) + 1;
            }
        }
        if resp.canceled() {
            return StreamEnd::Broken(format!("canceled by etcd: {}", resp.cancel_reason()));
        }
        let mut events = Vec::new();
        for e in resp.events() {
            match convert_event(e) {
                Ok(Some(ev)) if ev.revision() >= r.next => events.push(ev),
                Ok(_) => {}
                Err(err) => {
                    let _ = tx.send(Err(err)).await;
                    return StreamEnd::Done;
                }
            }
        }
        if let Some(last) = events.last() {
            r.next = last.revision() + 1;
            if tx.send(Ok(events)).await.is_err() {
                return StreamEnd::Done;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn the_end_of_a_prefix_range() {
        assert_eq!(prefix_end(b"/a/"), b"/a0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
        assert_eq!(prefix_end(b""), vec![0]);
    }
}
