//! The node's registration: its `Node` object and its lease record, written in one
//! transaction with the record attached to a store lease that the agent renews every third
//! of its TTL. The record disappears when the agent stops (the lease is revoked) or dies
//! (the lease expires): that is how other nodes know this one is gone.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferro_cluster::k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use ferro_cluster::resource::{Node, NodeSpec};
use ferro_cluster::{keys, Kind, NodeLease, Object};
use ferro_store::{Compare, Lease, LeaseId, Op, Store, StoreError, Txn};

use crate::config::Config;
use crate::metrics::Metrics;
use crate::state::StateDir;
use crate::AgentError;

/// The lease the node holds now (replaced when it had to register again).
pub type CurrentLease = Arc<Mutex<Option<LeaseId>>>;

/// What the agent learns about its node at run time and publishes in its `Node`, besides
/// its configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeFacts {
    /// The MAC of the node's VXLAN device (`aa:bb:...`), when the agent keeps one.
    pub vtep_mac: Option<String>,
}

/// The facts, shared by the tasks that learn them and the one that registers again.
pub type SharedFacts = Arc<Mutex<NodeFacts>>;

fn json<T: serde::Serialize>(t: &T) -> Vec<u8> {
    serde_json::to_vec(t).unwrap_or_default()
}

/// The Node object to write: the existing one (what other parts set is kept) with this
/// agent's addresses, version, pod CIDRs (when configured) and VTEP MAC (when known).
fn node_object(cfg: &Config, facts: &NodeFacts, existing: Option<&[u8]>) -> Node {
    let mut node = existing
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok())
        .and_then(|v| Object::from_value(Kind::Node, v).ok())
        .and_then(|o| match o {
            Object::Node(n) => Some(*n),
            _ => None,
        })
        .unwrap_or_else(|| Node {
            api_version: Kind::Node.api_version().to_string(),
            kind: Kind::Node.name().to_string(),
            metadata: ObjectMeta {
                name: Some(cfg.node_name.clone()),
                creation_timestamp: Some(Time(ferro_cluster::now())),
                ..Default::default()
            },
            spec: NodeSpec::default(),
            status: None,
        });
    node.spec.addresses = cfg.node_addresses.iter().map(ToString::to_string).collect();
    node.spec.agent_version = Some(crate::VERSION.to_string());
    if !cfg.pod_cidrs.is_empty() {
        node.spec.pod_cidrs = Some(cfg.pod_cidrs.iter().map(ToString::to_string).collect());
    }
    if let Some(mac) = &facts.vtep_mac {
        node.spec.vtep_mac = Some(mac.clone());
    }
    node.status = None;
    node
}

fn facts_now(facts: &SharedFacts) -> NodeFacts {
    facts.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Writes the node's `Node` again when what the agent publishes changed (a new VTEP MAC),
/// with a compare on the object read (retried when another write got in between).
pub async fn publish<S: Store>(
    store: &S,
    cfg: &Config,
    facts: &SharedFacts,
) -> Result<(), StoreError> {
    let key = keys::object(Kind::Node, None, &cfg.node_name);
    for _ in 0..5 {
        let existing = store.get(&key).await?;
        let Some(kv) = existing else {
            return Ok(()); // not registered (yet): registration writes it
        };
        let node = node_object(cfg, &facts_now(facts), Some(&kv.value));
        let old: Option<Node> = serde_json::from_slice(&kv.value).ok();
        if old.is_some_and(|o| o.spec == node.spec) {
            return Ok(());
        }
        let txn = Txn::new()
            .when(Compare::unchanged(&key, kv.mod_revision))
            .then(Op::put(&key, json(&node)));
        if store.txn(txn).await?.succeeded {
            log::info!(
                "node {}: published VTEP MAC {}",
                cfg.node_name,
                node.spec.vtep_mac.as_deref().unwrap_or("<none>")
            );
            return Ok(());
        }
    }
    Ok(())
}

/// Registers the node: grants a lease, then writes the Node and its lease record. A record
/// left by this node's previous run (its lease is in the state directory) is taken over at
/// once; one held by another live agent is waited for up to twice the TTL, then refused.
pub async fn register<S: Store>(
    store: &S,
    cfg: &Config,
    state: &StateDir,
    facts: &SharedFacts,
) -> Result<Lease, AgentError> {
    let lease = store.grant(cfg.lease_ttl).await?;
    let node_key = keys::object(Kind::Node, None, &cfg.node_name);
    let lease_key = keys::node_lease(&cfg.node_name);
    let deadline = tokio::time::Instant::now() + cfg.lease_ttl * 2 + Duration::from_secs(2);
    let mut waited = false;
    loop {
        if let Some(held) = store.get(&lease_key).await? {
            let other: Option<NodeLease> = serde_json::from_slice(&held.value).ok();
            let holder = held.lease;
            if holder.is_some() && holder == state.previous_lease() {
                log::info!(
                    "node {}: taking over the lease of this agent's previous run ({})",
                    cfg.node_name,
                    holder.map(|l| l.to_string()).unwrap_or_default()
                );
                if let Some(l) = holder {
                    store.revoke(l).await?;
                }
                continue;
            }
            if tokio::time::Instant::now() >= deadline {
                let _ = store.revoke(lease.id).await;
                return Err(AgentError::NodeTaken {
                    node: cfg.node_name.clone(),
                    lease: other.map(|o| o.lease).unwrap_or_default(),
                });
            }
            if !waited {
                log::warn!(
                    "node {}: another agent's lease record is present; waiting for it to expire (up to {:?})",
                    cfg.node_name,
                    cfg.lease_ttl * 2
                );
                waited = true;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
            continue;
        }
        let existing = store.get(&node_key).await?;
        let node = node_object(
            cfg,
            &facts_now(facts),
            existing.as_ref().map(|kv| kv.value.as_slice()),
        );
        let record = NodeLease {
            node: cfg.node_name.clone(),
            lease: lease.id.to_string(),
            ttl_seconds: lease.ttl.as_secs(),
            since: ferro_cluster::now().to_string(),
        };
        let txn = Txn::new()
            .when(Compare::unchanged(
                &node_key,
                existing.as_ref().map_or(0, |kv| kv.mod_revision),
            ))
            .when(Compare::absent(&lease_key))
            .then(Op::put(&node_key, json(&node)))
            .then(Op::put_leased(&lease_key, json(&record), lease.id));
        if store.txn(txn).await?.succeeded {
            state.record_lease(lease.id)?;
            return Ok(lease);
        }
    }
}

/// Renews the node's lease every third of its TTL until the task is dropped. A lease that
/// expired anyway (the store did not hear from the agent for a whole TTL) is replaced by a
/// new registration; an unreachable store is retried every second.
pub async fn keep_alive<S: Store>(
    store: S,
    cfg: Config,
    state: Arc<StateDir>,
    current: CurrentLease,
    facts: SharedFacts,
    metrics: Arc<Metrics>,
) {
    let every = (cfg.lease_ttl / 3).max(Duration::from_millis(300));
    let mut outage = false;
    loop {
        let pause = if outage {
            Duration::from_secs(1).min(every)
        } else {
            every
        };
        tokio::time::sleep(pause).await;
        let Some(id) = *current.lock().unwrap_or_else(|p| p.into_inner()) else {
            return;
        };
        match store.keepalive(id).await {
            Ok(()) => {
                metrics.renewal("ok");
                metrics.set_registered(true);
                if outage {
                    log::info!(
                        "node {}: store reachable again, lease {id} renewed",
                        cfg.node_name
                    );
                    outage = false;
                }
            }
            Err(StoreError::LeaseNotFound(_)) => {
                metrics.renewal("expired");
                metrics.set_registered(false);
                log::warn!(
                    "node {}: lease {id} expired (the store did not hear from this agent for {:?}); registering again",
                    cfg.node_name,
                    cfg.lease_ttl
                );
                match register(&store, &cfg, &state, &facts).await {
                    Ok(l) => {
                        *current.lock().unwrap_or_else(|p| p.into_inner()) = Some(l.id);
                        metrics.set_registered(true);
                        log::info!("node {}: registered again, lease {}", cfg.node_name, l.id);
                    }
                    Err(e) => {
                        log::warn!("node {}: registering again: {e}", cfg.node_name);
                        outage = true;
                    }
                }
            }
            Err(e) => {
                metrics.renewal("unavailable");
                if !outage {
                    log::warn!("node {}: renewing lease {id}: {e}; retrying", cfg.node_name);
                }
                outage = true;
            }
        }
    }
}
