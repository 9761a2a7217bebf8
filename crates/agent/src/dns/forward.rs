//! Names outside the cluster domain: asked of the node's upstream resolvers (UDP, TCP when
//! the answer is truncated; each upstream in turn), answers kept in a cache for as long as
//! their TTLs allow and served with their TTLs aged.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ferro_dns::hickory_proto::op::{Edns, Message, Query};
use ferro_dns::hickory_proto::rr::{DNSClass, RecordType};
use ferro_dns::message::{aged, cache_seconds, MAX_UDP};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// How long one upstream gets to answer.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    name: String,
    qtype: RecordType,
    qclass: DNSClass,
}

#[derive(Debug)]
struct Entry {
    answer: Message,
    stored: Instant,
    lifetime: Duration,
}

/// Where an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The cache.
    Cache,
    /// An upstream, just now.
    Upstream,
}

/// The forwarder: upstreams and the cache.
#[derive(Debug)]
pub struct Forwarder {
    upstreams: Vec<SocketAddr>,
    cache: Mutex<HashMap<Key, Entry>>,
    capacity: usize,
}

fn key(q: &Query) -> Key {
    Key {
        name: q.name().to_lowercase().to_ascii(),
        qtype: q.query_type(),
        qclass: q.query_class(),
    }
}

impl Forwarder {
    /// A forwarder to `upstreams` keeping at most `capacity` answers.
    pub fn new(upstreams: Vec<SocketAddr>, capacity: usize) -> Forwarder {
        Forwarder {
            upstreams,
            cache: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    /// The upstreams.
    pub fn upstreams(&self) -> &[SocketAddr] {
        &self.upstreams
    }

    fn cached(&self, k: &Key) -> Option<Message> {
        let mut c = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let e = c.get(k)?;
        let age = e.stored.elapsed();
        if age >= e.lifetime {
            c.remove(k);
            return None;
        }
        Some(aged(&e.answer, age.as_secs() as u32))
    }

    fn store(&self, k: Key, answer: &Message) {
        let Some(secs) = cache_seconds(answer).filter(|s| *s > 0) else {
            return;
        };
        let mut c = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if c.len() >= self.capacity {
            c.retain(|_, e| e.stored.elapsed() < e.lifetime);
            if c.len() >= self.capacity {
                // still full of live answers: start again rather than grow without bound
                c.clear();
            }
        }
        c.insert(
            k,
            Entry {
                answer: answer.clone(),
                stored: Instant::now(),
                lifetime: Duration::from_secs(u64::from(secs)),
            },
        );
    }

    /// The answer to `q`: from the cache while it is fresh, else from the first upstream
    /// that answers. `None` when none does.
    pub async fn resolve(&self, q: &Query) -> Option<(Message, Source)> {
        let k = key(q);
        if let Some(m) = self.cached(&k) {
            return Some((m, Source::Cache));
        }
        let mut ask = Message::query();
        ask.metadata.recursion_desired = true;
        ask.add_query(q.clone());
        let mut e = Edns::new();
        e.set_max_payload(MAX_UDP);
        ask.set_edns(e);
        for up in &self.upstreams {
            match exchange(&ask, *up).await {
                Ok(m) => {
                    self.store(k, &m);
                    return Some((m, Source::Upstream));
                }
                Err(e) => log::debug!("dns: upstream {up}: {e}"),
            }
        }
        None
    }
}

/// One question to one upstream: UDP, then TCP when the answer is truncated.
async fn exchange(ask: &Message, up: SocketAddr) -> Result<Message, String> {
    let bytes = ask.to_vec().map_err(|e| e.to_string())?;
    let bind: SocketAddr = if up.is_ipv6() {
        "[::]:0".parse().map_err(|_| "bind")?
    } else {
        "0.0.0.0:0".parse().map_err(|_| "bind")?
    };
    let sock = UdpSocket::bind(bind).await.map_err(|e| e.to_string())?;
    sock.connect(up).await.map_err(|e| e.to_string())?;
    sock.send(&bytes).await.map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 65535];
    let answer = tokio::time::timeout(UPSTREAM_TIMEOUT, async {
        loop {
            let n = sock.recv(&mut buf).await.map_err(|e| e.to_string())?;
            match Message::from_vec(&buf[..n]) {
                Ok(m) if m.metadata.id == ask.metadata.id && m.queries == ask.queries => {
                    return Ok::<Message, String>(m)
                }
                // a stray or forged datagram: keep waiting for the real one
                _ => continue,
            }
        }
    })
    .await
    .map_err(|_| "no answer within 2 s".to_string())??;
    if !answer.metadata.truncation {
        return Ok(answer);
    }
    tokio::time::timeout(UPSTREAM_TIMEOUT, tcp_exchange(&bytes, up))
        .await
        .map_err(|_| "no TCP answer within 2 s".to_string())?
}

async fn tcp_exchange(bytes: &[u8], up: SocketAddr) -> Result<Message, String> {
    let mut s = TcpStream::connect(up).await.map_err(|e| e.to_string())?;
    let len = u16::try_from(bytes.len()).map_err(|_| "query too long")?;
    s.write_all(&len.to_be_bytes())
        .await
        .map_err(|e| e.to_string())?;
    s.write_all(bytes).await.map_err(|e| e.to_string())?;
    let mut l = [0u8; 2];
    s.read_exact(&mut l).await.map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(l))];
    s.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
    Message::from_vec(&buf).map_err(|e| e.to_string())
}
