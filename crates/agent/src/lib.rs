//! # ferro-agent: the node's cluster agent
//!
//! The one long-running piece of the cluster layer. At start it reads its configuration,
//! opens the store (an unreachable store stops it with a clear error before it writes
//! anything), locks its state directory, makes sure the `default` and `kube-system`
//! namespaces exist, registers its `Node` with a lease it renews, and serves the node's API
//! on a unix socket (and metrics over HTTP when configured). SIGTERM (or SIGINT) stops it
//! cleanly: the socket is removed and the lease revoked, so the node's lease record vanishes
//! at once. It records the attachments the plugins report (replaying those they spooled
//! while it was away) as the node's `Attachment` objects, and provides Services on the node.
//!
//! # Layout
//! - [`config`]: the configuration file;
//! - [`node`]: registration and lease renewal;
//! - [`api`]: what each request does to the store; the spool's replay; [`allocate`]:
//!   services' ClusterIPs, NodePorts and load-balancer addresses, allocated in the apply's
//!   transaction;
//! - [`cache`]: the agent's one view of the cluster (one watch, snapshots shared by every loop);
//! - [`policy`]: NetworkPolicy on this node (table `inet ferro_policy`), explanations and
//!   drop counters;
//! - [`attachments`]: the node's attachments, reported by the plugins, recorded locally and
//!   kept in step with the store and the node's links;
//! - [`memory`]: free memory given back to the system after bursts of work;
//! - [`members`]: the other live nodes programmed into the kernel: VXLAN peers (overlay)
//!   and routes to their pod CIDRs (kubenet);
//! - [`services`]: Services on this node (the `inet ferro_services` table);
//!   [`announcer`]: the load-balancer addresses this node announces on the VNet;
//! - [`podfw`]: a DEL report's pod firewall removal, on a netfilter socket kept open;
//! - [`kernel`]: the thread that talks to the node's kernel; [`reaper`]: the thread that
//!   deletes the veth pairs DEL detached, in batches;
//! - [`server`]: the socket;
//! - [`metrics`]: Prometheus metrics and their endpoint;
//! - [`dns`]: the cluster DNS server (the `dns` key);
//! - [`egress`]: EgressPolicies in `inet ferro_egress` (the `egress` key);
//! - [`nodefw`]: the node firewall in `inet ferro_nodefw` (the ClusterNetwork's `nodeFirewall`);
//! - [`ipam`]: cluster IPAM (blocks of the pool, allocations, the journal, leaks);
//! - [`state`]: the state directory; [`journal`]: the local journal;
//! - [`mod@error`]: the error type, [`AgentError`].

pub mod allocate;
pub mod announcer;
pub mod api;
pub mod attachments;
pub mod cache;
pub mod config;
pub mod dns;
pub mod egress;
pub mod error;
pub mod ipam;
pub mod journal;
pub mod kernel;
mod logger;
pub mod members;
pub mod memory;
pub mod metrics;
pub mod node;
pub mod nodefw;
pub mod podfw;
pub mod policy;
pub mod reaper;
pub mod server;
pub mod services;
pub mod state;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferro_store::{AnyStore, Store, StoreConfig};
use tokio::signal::unix::{signal, SignalKind};

pub use config::Config;
pub use error::AgentError;

/// The agent's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

const USAGE: &str = "\
Usage: ferro-agent [--config FILE]

The node's cluster agent: registers the node in the cluster store with a lease, serves the
node's API on a unix socket (cnictl apply/get/delete/describe/ipam, the cluster-ipam plugin),
runs cluster IPAM (the node's blocks of the cluster's address pool), exports metrics.

  --config FILE   configuration (default /etc/ferro-cni/agent.json)
  --version       print the version
  -h, --help      this help

Exit status: 0 after a clean stop (SIGTERM, SIGINT), 1 on failure, 2 for a bad command line
or configuration.
";

/// The runtime's worker threads.
const WORKERS: usize = 2;

/// Runs the agent with the command line `argv` (without the program name); the exit status.
pub fn main_with_args(argv: &[String]) -> u8 {
    let mut config = PathBuf::from(config::DEFAULT_CONFIG);
    let mut it = argv.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--config" => match it.next() {
                Some(p) => config = PathBuf::from(p),
                None => {
                    eprintln!("ferro-agent: --config needs a file\n\n{USAGE}");
                    return 2;
                }
            },
            s if s.starts_with("--config=") => config = PathBuf::from(&s["--config=".len()..]),
            "--version" => {
                eprintln!("ferro-agent {VERSION}");
                return 0;
            }
            "-h" | "--help" => {
                eprint!("{USAGE}");
                return 0;
            }
            other => {
                eprintln!("ferro-agent: unknown argument {other:?}\n\n{USAGE}");
                return 2;
            }
        }
    }
    let cfg = match Config::load(&config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ferro-agent: {e}");
            return 2;
        }
    };
    logger::init(cfg.log_level);
    memory::configure();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            log::error!("starting the runtime: {e}");
            return 1;
        }
    };
    match rt.block_on(run(cfg)) {
        Ok(()) => 0,
        Err(e) => {
            log::error!("{e}");
            1
        }
    }
}

/// Opens the store `cfg` names (the embedded file's directory is created, mode 0700).
async fn open_store(
    cfg: &StoreConfig,
    state_dir: &std::path::Path,
) -> Result<AnyStore, AgentError> {
    if let StoreConfig::Embedded(e) = cfg {
        let file = e.file(state_dir);
        if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.exists() {
                state::make_private_dir(dir)?;
            }
        }
    }
    Ok(AnyStore::open(cfg, state_dir).await?)
}

/// Runs the agent until SIGTERM or SIGINT.
pub async fn run(cfg: Config) -> Result<(), AgentError> {
    let mut term = signal(SignalKind::terminate())
        .map_err(|e| AgentError::io("installing the SIGTERM handler", e))?;
    let mut int = signal(SignalKind::interrupt())
        .map_err(|e| AgentError::io("installing the SIGINT handler", e))?;

    let store = open_store(&cfg.store, &cfg.state_dir).await?;
    let store_name = store.describe();
    log::info!("store {store_name}: reachable");
    let state = Arc::new(state::StateDir::open(&cfg.state_dir)?);
    let metrics = Arc::new(metrics::Metrics::default());
    let ipam = Arc::new(
        ipam::Ipam::open(
            store.clone(),
            &cfg.node_name,
            cfg.ipam,
            cfg.lease_ttl,
            state.path(),
            metrics.clone(),
        )
        .await?,
    );
    let explained: nodefw::Explained = Arc::default();
    let api = api::Api::new(store.clone(), cfg.node_name.clone(), store_name.clone())
        .with_ipam(ipam.clone())
        .with_nodefw(explained.clone());
    api.ensure_system_namespaces().await?;
    let kernel = kernel::KernelWorker::start()?;
    let facts: node::SharedFacts = Arc::default();
    if let Some(o) = cfg.overlay.clone() {
        // the VXLAN device first, so that the node registers with its VTEP MAC
        let own = members::Own {
            slices: cfg.pod_cidrs.clone(),
            all: cfg.pod_cidrs.clone(),
        };
        match kernel
            .run(move |h| members::overlay_apply(h, &o, &own, None))
            .await
            .and_then(|r| r)
        {
            Ok(d) => facts.lock().unwrap_or_else(|p| p.into_inner()).vtep_mac = d.mac,
            Err(e) => log::warn!("overlay: {e} (retried by the membership loop)"),
        }
    }
    let lease = node::register(&store, &cfg, &state, &facts).await?;
    log::info!(
        "node {} registered: lease {}, TTL {}s",
        cfg.node_name,
        lease.id,
        lease.ttl.as_secs()
    );
    let current: node::CurrentLease = Arc::new(Mutex::new(Some(lease.id)));
    metrics.set_registered(true);

    // The node's attachments: what waits in the spool first, then the records, the links
    // and the store in step, all before the socket takes new reports.
    let attachments = match attachments::Attachments::open(
        store.clone(),
        cfg.node_name.clone(),
        state.path(),
        attachments::LinkSource::Kernel(kernel.clone()),
    ) {
        Ok(a) => Arc::new(a),
        Err(e) => {
            release(&store, &state, &current).await;
            return Err(e);
        }
    };
    // The cluster as every loop sees it: one watch of the store, shared snapshots. The
    // policy loop starts before any report is taken (replayed ones included): a report of
    // a new pod is answered once the pod's policy is programmed.
    let (cache, cache_task) = cache::follow(store.clone());
    let policy = cfg.policy.enabled.then(|| {
        policy::spawn(
            cache.clone(),
            policy::PolicyConfig {
                node: cfg.node_name.clone(),
                deny_log: cfg.policy.deny_log,
            },
            metrics.clone(),
        )
    });
    let stop_loops = |policy: Option<(policy::PolicyHandle, tokio::task::JoinHandle<()>)>| {
        if let Some((_, task)) = policy {
            task.abort();
        }
        cache_task.abort();
    };
    let mut api = api
        .with_attachments(attachments.clone(), ferro_agent_api::Spool::at(&cfg.spool))
        .with_reaper(reaper::Reaper::start()?)
        .with_pod_firewall(podfw::PodFirewall::start()?);
    if let Some((handle, _)) = &policy {
        api = api.with_policy(handle.clone());
    }
    let egress = cfg
        .egress
        .then(|| Arc::new(egress::Egress::new(cfg.egress_min_ttl)));
    if let Some(e) = &egress {
        api = api.with_egress(e.clone());
        metrics.set_egress(e.clone());
    }
    let api = Arc::new(api);
    metrics.replayed(api.replay().await);
    if let Err(e) = attachments.resync().await {
        log::warn!("attachments: resync: {e} (retried every second)");
    }
    metrics.set_attachments(attachments.count());

    let started = async {
        let (listener, socket) = server::bind(&cfg.socket)?;
        let metrics_task = match cfg.metrics {
            None => None,
            Some(addr) => {
                let l = tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|e| AgentError::io(format!("metrics: binding {addr}"), e))?;
                log::info!("metrics on http://{addr}/metrics");
                Some(tokio::spawn(metrics::serve(l, metrics.clone())))
            }
        };
        Ok::<_, AgentError>((listener, socket, metrics_task))
    }
    .await;
    let (listener, socket, metrics_task) = match started {
        Ok(s) => s,
        Err(e) => {
            stop_loops(policy);
            release(&store, &state, &current).await;
            return Err(e);
        }
    };
    let lb_addresses = announcer::LocalAddresses::default();
    let mut loops = Vec::new();
    if cfg.services {
        loops.push(tokio::spawn(services::run(
            cache.clone(),
            cfg.node_name.clone(),
            metrics.clone(),
        )));
        loops.push(tokio::spawn(announcer::run(
            store.clone(),
            cache.clone(),
            cfg.node_name.clone(),
            current.clone(),
            metrics.clone(),
            lb_addresses.clone(),
        )));
    }
    loops.push(tokio::spawn(memory::run(cache.clone())));
    loops.push(tokio::spawn(nodefw::run(
        cache.clone(),
        cfg.node_name.clone(),
        explained.clone(),
    )));
    if let Some(e) = &egress {
        loops.push(tokio::spawn(egress::run(
            e.clone(),
            cache.clone(),
            cfg.node_name.clone(),
        )));
    }
    if let Some(d) = &cfg.dns {
        match dns::start(d, cache.clone(), metrics.dns.clone(), egress.clone()).await {
            Ok(tasks) => loops.extend(tasks),
            Err(e) => {
                for l in &loops {
                    l.abort();
                }
                drop(socket);
                release(&store, &state, &current).await;
                return Err(e);
            }
        }
    }
    let server = tokio::spawn(server::serve(listener, api.clone(), metrics.clone()));
    let ipam_loops = tokio::spawn(ipam.clone().run());
    let in_step = tokio::spawn(attachments::keep_in_step(
        api.clone(),
        attachments.clone(),
        metrics.clone(),
    ));
    let renewer = tokio::spawn(node::keep_alive(
        store.clone(),
        cfg.clone(),
        state.clone(),
        current.clone(),
        facts.clone(),
        metrics.clone(),
    ));
    let membership = members::Membership::<AnyStore>::wanted(&cfg).then(|| {
        tokio::spawn(
            members::Membership {
                store: store.clone(),
                cfg: cfg.clone(),
                kernel: kernel.clone(),
                facts: facts.clone(),
                metrics: metrics.clone(),
            }
            .run(cache.clone()),
        )
    });
    log::info!("serving {}", cfg.socket.display());

    let sig = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    log::info!("{sig}: stopping");
    server.abort();
    in_step.abort();
    if let Some(m) = membership {
        m.abort();
    }
    renewer.abort();
    for l in &loops {
        l.abort();
    }
    ipam_loops.abort();
    ipam.shutdown().await;
    stop_loops(policy);
    // The load-balancer addresses go before the lease: the next candidates claim them as
    // soon as the lease's records vanish.
    let lb = lb_addresses.clone();
    let _ = tokio::task::spawn_blocking(move || announcer::release_all(&lb)).await;
    if let Some(t) = metrics_task {
        t.abort();
    }
    drop(socket);
    release(&store, &state, &current).await;
    log::info!("stopped");
    Ok(())
}

/// Revokes the node lease (its record vanishes at once) and forgets it.
async fn release(store: &AnyStore, state: &state::StateDir, current: &node::CurrentLease) {
    let id = current.lock().unwrap_or_else(|p| p.into_inner()).take();
    let Some(id) = id else { return };
    match tokio::time::timeout(Duration::from_secs(10), store.revoke(id)).await {
        Ok(Ok(())) => {
            state.clear_lease();
            log::info!("lease {id} revoked");
        }
        Ok(Err(e)) => log::warn!("revoking lease {id}: {e} (it expires with its TTL)"),
        Err(_) => log::warn!("revoking lease {id}: no answer (it expires with its TTL)"),
    }
}
