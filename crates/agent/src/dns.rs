//! The cluster DNS server (the `dns` key): UDP and TCP on node-local addresses, the cluster
//! zone (`ferro-dns`) rebuilt from each snapshot of the shared cache that changes what it
//! answers, every other name forwarded to the node's upstream resolvers through a cache.
//!
//! Egress by name hooks in here: before a reply leaves for a pod, the addresses it carries
//! for names an egress policy allows that pod are added to the node's allowed sets
//! ([`crate::egress`]), so the pod's first connection already passes.

pub mod config;
pub mod forward;

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use ferro_cluster::Kind;
use ferro_dns::hickory_proto::op::{Query, ResponseCode};
use ferro_dns::message::{self, encode, parse_query, udp_limit, Refusal};
use ferro_dns::Zone;
use ferro_net::rtnl::AddrOpts;
use ferro_net::Kernel;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

use crate::cache::{Cache, Snapshot};
use crate::egress::Egress;
use crate::AgentError;
pub use config::{DnsConfig, DnsFile};
use forward::{Forwarder, Source};

/// How long a TCP client may stay idle between queries.
const TCP_IDLE: Duration = Duration::from_secs(10);

type Labels = Vec<(String, String)>;

/// The DNS server's metrics.
#[derive(Debug, Clone, Default)]
pub struct DnsMetrics {
    queries: Family<Labels, Counter>,
}

impl DnsMetrics {
    /// Registers `ferro_agent_dns_queries_total{answer}`.
    pub fn register(registry: &mut Registry) -> DnsMetrics {
        let m = DnsMetrics::default();
        registry.register(
            "ferro_agent_dns_queries",
            "DNS queries answered, by where the answer came from (cluster, cache, upstream, failed, malformed)",
            m.queries.clone(),
        );
        m
    }

    fn count(&self, answer: &str) {
        self.queries
            .get_or_create(&vec![("answer".to_string(), answer.to_string())])
            .inc();
    }
}

/// The server's state, shared by its tasks.
#[derive(Debug)]
pub struct Server {
    zone: RwLock<Arc<Zone>>,
    forwarder: Forwarder,
    domain: Option<String>,
    ttl: u32,
    metrics: DnsMetrics,
    egress: Option<Arc<Egress>>,
}

/// The zone of snapshot `s`: of `domain`, else of the ClusterNetwork's `dnsDomain`.
pub fn zone_of(s: &Snapshot, domain: Option<&str>, ttl: u32) -> Zone {
    let namespaces: Vec<&str> = s.all(Kind::Namespace).map(|o| o.name()).collect();
    let from_cluster = crate::services::settings(s).map(|st| st.dns_domain);
    let domain = domain
        .or(from_cluster.as_deref())
        .unwrap_or(ferro_cluster::network::DEFAULT_DNS_DOMAIN);
    Zone::build(&crate::services::topology(s), &namespaces, domain, ttl)
}

impl Server {
    fn zone(&self) -> Arc<Zone> {
        self.zone.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The reply to `buf` from `client`, encoded (`None`: nothing to send).
    pub async fn handle(&self, buf: &[u8], client: IpAddr, udp: bool) -> Option<Vec<u8>> {
        let q = match parse_query(buf) {
            Ok(q) => q,
            Err(Refusal(r)) => {
                self.metrics.count("malformed");
                return r;
            }
        };
        let limit = if udp { udp_limit(&q) } else { 65535 };
        let question = q.queries[0].clone();
        let (reply, how) = match self.zone().answer(question.name(), question.query_type()) {
            Some(a) => {
                let mut r = message::from_answer(&q, &a);
                if let Some(target) = &a.chase {
                    let chase = Query::query(target.clone(), question.query_type());
                    if let Some((m, _)) = self.forwarder.resolve(&chase).await {
                        r.answers.extend(m.answers);
                    }
                }
                (r, "cluster")
            }
            None => match self.forwarder.resolve(&question).await {
                Some((m, Source::Cache)) => (message::relay(&q, &m), "cache"),
                Some((m, Source::Upstream)) => (message::relay(&q, &m), "upstream"),
                None => (message::failure(&q, ResponseCode::ServFail), "failed"),
            },
        };
        self.metrics.count(how);
        if let Some(e) = &self.egress {
            e.observe(client, &reply).await;
        }
        encode(&reply, limit)
    }
}

/// Adds `addresses` to `lo` when no link of the node holds them (and brings `lo` up).
fn ensure_addresses(addresses: &[IpAddr]) -> Result<(), String> {
    let k = Kernel::new().map_err(|e| e.to_string())?;
    let r = k.connect(None).map_err(|e| e.to_string())?;
    let lo = r.link_required("lo").map_err(|e| e.to_string())?;
    r.link_set_up(lo.index, true).map_err(|e| e.to_string())?;
    let have: Vec<IpAddr> = r
        .addrs(None)
        .map_err(|e| e.to_string())?
        .iter()
        .map(|a| a.addr.addr())
        .collect();
    for ip in addresses.iter().filter(|ip| !have.contains(ip)) {
        r.addr_add(
            lo.index,
            ipnet::IpNet::from(*ip),
            AddrOpts {
                nodad: true,
                noprefixroute: true,
            },
        )
        .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Starts the server: its addresses, its sockets (errors here stop the agent's start), the
/// zone loop and the listeners. Returns the tasks.
pub async fn start(
    cfg: &DnsConfig,
    cache: Cache,
    metrics: DnsMetrics,
    egress: Option<Arc<Egress>>,
) -> Result<Vec<tokio::task::JoinHandle<()>>, AgentError> {
    let addresses = cfg.addresses.clone();
    tokio::task::spawn_blocking(move || ensure_addresses(&addresses))
        .await
        .map_err(|e| AgentError::Config(format!("dns: {e}")))?
        .map_err(|e| AgentError::Config(format!("dns: adding the listening addresses: {e}")))?;
    let upstreams = cfg.upstreams().map_err(|e| {
        AgentError::Config(format!(
            "dns: no upstreams given and the node's cannot be read: {e}"
        ))
    })?;
    if upstreams.is_empty() {
        log::warn!("dns: no upstream resolvers: names outside the cluster fail (SERVFAIL)");
    }
    let server = Arc::new(Server {
        zone: RwLock::new(Arc::new(zone_of(
            &cache.snapshot(),
            cfg.domain.as_deref(),
            cfg.ttl,
        ))),
        forwarder: Forwarder::new(upstreams, cfg.cache_size),
        domain: cfg.domain.clone(),
        ttl: cfg.ttl,
        metrics,
        egress,
    });
    let mut tasks = Vec::new();
    for ip in &cfg.addresses {
        let at = SocketAddr::new(*ip, cfg.port);
        let udp = UdpSocket::bind(at)
            .await
            .map_err(|e| AgentError::io(format!("dns: binding UDP {at}"), e))?;
        let tcp = TcpListener::bind(at)
            .await
            .map_err(|e| AgentError::io(format!("dns: binding TCP {at}"), e))?;
        tasks.push(tokio::spawn(serve_udp(Arc::new(udp), server.clone())));
        tasks.push(tokio::spawn(serve_tcp(tcp, server.clone())));
    }
    log::info!(
        "dns: serving {} on {:?} port {}, upstreams {:?}",
        server.zone().domain(),
        cfg.addresses,
        cfg.port,
        server.forwarder.upstreams()
    );
    tasks.push(tokio::spawn(follow(cache, server)));
    Ok(tasks)
}

/// The generations the zone depends on.
fn inputs(s: &Snapshot) -> [u64; 6] {
    [
        s.generation(Kind::ClusterNetwork),
        s.generation(Kind::Service),
        s.generation(Kind::Pod),
        s.generation(Kind::Attachment),
        s.generation(Kind::Namespace),
        s.lease_generation(),
    ]
}

/// Rebuilds the zone whenever a snapshot changes what it is made of.
async fn follow(mut cache: Cache, server: Arc<Server>) {
    let mut seen = inputs(&cache.snapshot());
    while let Some(s) = cache.changed().await {
        let now = inputs(&s);
        if now == seen {
            continue;
        }
        seen = now;
        let z = zone_of(&s, server.domain.as_deref(), server.ttl);
        *server.zone.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(z);
        log::debug!("dns: zone of revision {}", s.revision());
    }
}

async fn serve_udp(sock: Arc<UdpSocket>, server: Arc<Server>) {
    let mut buf = vec![0u8; 65535];
    loop {
        let (n, from) = match sock.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                log::warn!("dns: UDP receive: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let query = buf[..n].to_vec();
        let (sock, server) = (sock.clone(), server.clone());
        tokio::spawn(async move {
            if let Some(r) = server.handle(&query, from.ip(), true).await {
                if let Err(e) = sock.send_to(&r, from).await {
                    log::debug!("dns: reply to {from}: {e}");
                }
            }
        });
    }
}

async fn serve_tcp(l: TcpListener, server: Arc<Server>) {
    loop {
        match l.accept().await {
            Ok((s, from)) => {
                tokio::spawn(tcp_client(s, from, server.clone()));
            }
            Err(e) => {
                log::warn!("dns: TCP accept: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

async fn tcp_client(mut s: TcpStream, from: SocketAddr, server: Arc<Server>) {
    loop {
        let mut l = [0u8; 2];
        match tokio::time::timeout(TCP_IDLE, s.read_exact(&mut l)).await {
            Ok(Ok(_)) => {}
            _ => return,
        }
        let mut buf = vec![0u8; usize::from(u16::from_be_bytes(l))];
        match tokio::time::timeout(TCP_IDLE, s.read_exact(&mut buf)).await {
            Ok(Ok(_)) => {}
            _ => return,
        }
        let Some(r) = server.handle(&buf, from.ip(), false).await else {
            continue;
        };
        let Ok(len) = u16::try_from(r.len()) else {
            continue;
        };
        if s.write_all(&len.to_be_bytes()).await.is_err() || s.write_all(&r).await.is_err() {
            return;
        }
    }
}
