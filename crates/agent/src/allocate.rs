//! Services' ClusterIPs, NodePorts and load-balancer addresses, allocated in the store
//! transaction that writes the service.
//!
//! Each value a service holds has a record of its own (`ferro_services::alloc` has the
//! layout) naming the service. An apply lists the records once, keeps what the manifest
//! gives and what the stored service already holds, chooses free values for the rest, and
//! adds to the apply's transaction: for each new record a compare that it is still absent
//! and its creation; for each kept record a compare that it is unchanged; the deletion of
//! records the service no longer holds. Two nodes allocating at once cannot both win: the
//! loser's transaction fails, and the apply's retry lists the records again. Deleting a
//! service (or its namespace) deletes its records in the same transaction.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;

use ferro_agent_api::ApiError;
use ferro_cluster::k8s_openapi::api::core::v1::Service;
use ferro_cluster::{keys, Kind, Object, Settings};
use ferro_services::alloc::{self, Owner, Slot};
use ferro_store::{Compare, KeyValue, Op, Revision, Store, Txn};

use crate::api::store_error;

/// The records as listed for one apply attempt, and what this attempt claimed.
#[derive(Debug, Default)]
pub struct Allocations {
    /// key -> (owner, revision), listed on first use.
    records: Option<BTreeMap<String, (String, Revision)>>,
    /// Keys claimed by services earlier in this apply.
    claimed: BTreeSet<String>,
}

/// One allocation's outcome: the transaction extended and what was newly chosen
/// (`clusterIP 10.96.0.10`, `nodePort 30080/TCP`, ...), or the transaction and the problems.
pub type Allocated = Result<(Txn, Vec<String>), (Txn, Vec<String>)>;

fn seed() -> u64 {
    RandomState::new().hash_one(std::time::SystemTime::now())
}

impl Allocations {
    async fn records<S: Store>(
        &mut self,
        store: &S,
    ) -> Result<&BTreeMap<String, (String, Revision)>, ApiError> {
        if self.records.is_none() {
            let mut m = BTreeMap::new();
            for prefix in [alloc::CLUSTER_IPS, alloc::NODE_PORTS, alloc::LB_IPS] {
                let l = store.list(prefix).await.map_err(store_error)?;
                for kv in l.kvs {
                    let owner = serde_json::from_slice::<Owner>(&kv.value)
                        .map(|o| o.service)
                        .unwrap_or_default();
                    m.insert(kv.key, (owner, kv.mod_revision));
                }
            }
            self.records = Some(m);
        }
        Ok(self.records.get_or_insert_with(BTreeMap::new))
    }

    /// Keeps or allocates everything `svc` needs (`old`: the stored version), writes the
    /// values into it, and extends `txn` with the records' compares and writes.
    pub async fn allocate<S: Store>(
        &mut self,
        store: &S,
        svc: &mut Service,
        old: Option<&Service>,
        settings: &Settings,
        txn: Txn,
    ) -> Result<Allocated, ApiError> {
        let needs = match alloc::needs(svc, old, settings) {
            Ok(n) => n,
            Err(e) => return Ok(Err((txn, e))),
        };
        let id = alloc::service_id(svc);
        let records = self.records(store).await?.clone();
        let mut errors = Vec::new();
        let mut chosen = Vec::new();
        let mut mine: BTreeSet<String> = BTreeSet::new();
        let busy = |key: &str, claimed: &BTreeSet<String>, mine: &BTreeSet<String>| {
            mine.contains(key)
                || claimed.contains(key)
                || records.get(key).is_some_and(|(o, _)| *o != id)
        };
        let owner_of = |key: &str| {
            records
                .get(key)
                .map(|(o, _)| o.clone())
                .unwrap_or_else(|| "another service of this apply".to_string())
        };
        let taken_ips = |prefix: &str, claimed: &BTreeSet<String>, mine: &BTreeSet<String>| {
            records
                .iter()
                .filter(|(_, (o, _))| *o != id)
                .map(|(k, _)| k)
                .chain(claimed.iter())
                .chain(mine.iter())
                .filter(|k| k.starts_with(prefix))
                .filter_map(|k| alloc::address_of_key(k))
                .collect::<BTreeSet<IpAddr>>()
        };
        let mut cluster_ips = Vec::new();
        for slot in &needs.cluster_ips {
            match slot {
                Slot::Fixed(ip) => {
                    let k = alloc::cluster_ip_key(*ip);
                    if busy(&k, &self.claimed, &mine) {
                        errors.push(format!(
                            "spec.clusterIP: {ip} is already allocated to service {}",
                            owner_of(&k)
                        ));
                    } else {
                        mine.insert(k);
                        cluster_ips.push(*ip);
                    }
                }
                Slot::Pick(cidr) => {
                    let taken = taken_ips(alloc::CLUSTER_IPS, &self.claimed, &mine);
                    match alloc::pick_address(&[*cidr], &taken, seed()) {
                        Some(ip) => {
                            mine.insert(alloc::cluster_ip_key(ip));
                            cluster_ips.push(ip);
                            chosen.push(format!("clusterIP {ip}"));
                        }
                        None => errors.push(format!(
                            "spec.clusterIP: no free address left in the service CIDR {cidr}"
                        )),
                    }
                }
            }
        }
        let mut node_ports = Vec::new();
        for (i, slot) in needs.node_ports.iter().enumerate() {
            match slot {
                None => node_ports.push(None),
                Some(Slot::Fixed(n)) => {
                    let k = alloc::node_port_key(*n);
                    // One service may use one NodePort for several protocols.
                    if !mine.contains(&k) && busy(&k, &self.claimed, &mine) {
                        errors.push(format!(
                            "spec.ports[{i}].nodePort: {n} is already allocated to service {}",
                            owner_of(&k)
                        ));
                    }
                    mine.insert(k);
                    node_ports.push(Some(*n));
                }
                Some(Slot::Pick(range)) => {
                    let taken: BTreeSet<u16> = records
                        .iter()
                        .filter(|(_, (o, _))| *o != id)
                        .map(|(k, _)| k)
                        .chain(self.claimed.iter())
                        .chain(mine.iter())
                        .filter_map(|k| alloc::port_of_key(k))
                        .collect();
                    match alloc::pick_port(range, &taken, seed()) {
                        Some(n) => {
                            mine.insert(alloc::node_port_key(n));
                            node_ports.push(Some(n));
                            let proto = svc
                                .spec
                                .as_ref()
                                .and_then(|s| s.ports.as_ref()?.get(i)?.protocol.clone())
                                .unwrap_or_else(|| "TCP".into());
                            chosen.push(format!("nodePort {n}/{proto}"));
                        }
                        None => {
                            errors.push(format!(
                                "spec.ports[{i}].nodePort: no free port left in the NodePort range {}-{}",
                                range.start(),
                                range.end()
                            ));
                            node_ports.push(None);
                        }
                    }
                }
            }
        }
        let mut lb = Vec::new();
        for slot in &needs.lb_ips {
            match slot {
                Slot::Fixed(ip) => {
                    let k = alloc::lb_ip_key(*ip);
                    if busy(&k, &self.claimed, &mine) {
                        errors.push(format!(
                            "spec.loadBalancerIP: {ip} is already allocated to service {}",
                            owner_of(&k)
                        ));
                    } else {
                        mine.insert(k);
                        lb.push(*ip);
                    }
                }
                Slot::Pick(cidrs) => {
                    let taken = taken_ips(alloc::LB_IPS, &self.claimed, &mine);
                    match alloc::pick_address(cidrs, &taken, seed()) {
                        Some(ip) => {
                            mine.insert(alloc::lb_ip_key(ip));
                            lb.push(ip);
                            chosen.push(format!("loadBalancerIP {ip}"));
                        }
                        None => errors.push(
                            "status.loadBalancer: no free address left in the load-balancer pools"
                                .to_string(),
                        ),
                    }
                }
            }
        }
        if !errors.is_empty() {
            return Ok(Err((txn, errors)));
        }
        let mut txn = txn;
        let value = serde_json::to_vec(&Owner {
            service: id.clone(),
        })
        .unwrap_or_default();
        for k in &mine {
            match records.get(k) {
                Some((_, rev)) => txn = txn.when(Compare::unchanged(k, *rev)),
                None => {
                    txn = txn.when(Compare::absent(k)).then(Op::put(k, value.clone()));
                }
            }
        }
        // Records the service no longer holds.
        let held = old.map(alloc::held_keys).unwrap_or_default();
        for k in held.difference(&mine) {
            if records.get(k).is_some_and(|(o, _)| *o == id) {
                txn = txn.then(Op::delete(k));
            }
        }
        self.claimed.extend(mine);
        alloc::fill(svc, &cluster_ips, &node_ports, &lb);
        Ok(Ok((txn, chosen)))
    }
}

/// When `kv` is a stored service, adds the deletion of the records it holds to `txn`.
pub fn release(mut txn: Txn, kv: &KeyValue, done: &mut BTreeSet<String>) -> Txn {
    if !kv.key.starts_with(&keys::prefix(Kind::Service, None)) {
        return txn;
    }
    let svc = serde_json::from_slice(&kv.value)
        .ok()
        .and_then(|v| Object::from_value(Kind::Service, v).ok());
    if let Some(Object::Service(s)) = svc {
        for k in alloc::held_keys(&s) {
            if done.insert(k.clone()) {
                txn = txn.then(Op::delete(k));
            }
        }
    }
    txn
}
