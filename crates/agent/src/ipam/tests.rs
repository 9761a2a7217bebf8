//! The IPAM service over a real (embedded) store, with a switch that makes the store
//! unreachable: allocations, claims, the journal across restarts, outages, leaks, empty
//! blocks, other nodes' blocks.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ferro_agent_api::ipam::*;
use ferro_agent_api::{ErrorCode, Request, Response};
use ferro_cluster::{keys, Kind};
use ferro_store::{
    Embedded, KeyValue, Lease, LeaseId, Listing, Revision, Store, StoreError, Txn, TxnResult, Watch,
};

use super::*;

/// A store that can be switched off.
#[derive(Clone)]
struct Flaky {
    inner: Embedded,
    down: Arc<AtomicBool>,
}

impl Flaky {
    fn check(&self) -> ferro_store::Result<()> {
        if self.down.load(Ordering::SeqCst) {
            Err(StoreError::Unavailable {
                detail: "etcd http://10.240.0.4:2379: connection refused".into(),
            })
        } else {
            Ok(())
        }
    }
}

impl Store for Flaky {
    async fn get(&self, key: &str) -> ferro_store::Result<Option<KeyValue>> {
        self.check()?;
        self.inner.get(key).await
    }
    async fn list(&self, prefix: &str) -> ferro_store::Result<Listing> {
        self.check()?;
        self.inner.list(prefix).await
    }
    async fn txn(&self, txn: Txn) -> ferro_store::Result<TxnResult> {
        self.check()?;
        self.inner.txn(txn).await
    }
    async fn grant(&self, ttl: Duration) -> ferro_store::Result<Lease> {
        self.check()?;
        self.inner.grant(ttl).await
    }
    async fn keepalive(&self, lease: LeaseId) -> ferro_store::Result<()> {
        self.check()?;
        self.inner.keepalive(lease).await
    }
    async fn revoke(&self, lease: LeaseId) -> ferro_store::Result<()> {
        self.check()?;
        self.inner.revoke(lease).await
    }
    async fn watch(&self, prefix: &str, from: Revision) -> ferro_store::Result<Watch> {
        self.check()?;
        self.inner.watch(prefix, from).await
    }
    async fn compact(&self, revision: Revision) -> ferro_store::Result<()> {
        self.check()?;
        self.inner.compact(revision).await
    }
}

struct T {
    store: Flaky,
    dir: tempfile::TempDir,
    cfg: IpamConfig,
}

const CN: &str = r#"{"apiVersion":"ferro-cni.io/v1","kind":"ClusterNetwork","metadata":{"name":"default"},
  "spec":{"podCIDRs":["10.244.0.0/24","fd00:244::/120"],"ipamBlockSize":{"ipv4":28,"ipv6":124},"nodeBlockSize":{"ipv4":26,"ipv6":122}}}"#;

impl T {
    async fn new() -> T {
        let dir = tempfile::tempdir().unwrap();
        let inner = Embedded::open(&dir.path().join("s.redb")).await.unwrap();
        std::fs::create_dir(dir.path().join("a")).unwrap();
        std::fs::create_dir(dir.path().join("b")).unwrap();
        T {
            store: Flaky {
                inner,
                down: Arc::new(AtomicBool::new(false)),
            },
            dir,
            cfg: IpamConfig {
                leak_grace: Duration::from_secs(1),
                node_grace: Duration::from_secs(3),
                empty_block_grace: Duration::from_secs(1),
            },
        }
    }

    async fn cluster_network(&self) {
        let key = keys::object(Kind::ClusterNetwork, None, "default");
        let v: serde_json::Value = serde_json::from_str(CN).unwrap();
        self.store
            .inner
            .put(&key, v.to_string().into_bytes())
            .await
            .unwrap();
        for n in ["node-a", "node-b"] {
            let node = serde_json::json!({"apiVersion":"ferro-cni.io/v1","kind":"Node","metadata":{"name":n},"spec":{"addresses":[]}});
            self.store
                .inner
                .put(
                    &keys::object(Kind::Node, None, n),
                    node.to_string().into_bytes(),
                )
                .await
                .unwrap();
        }
    }

    async fn ipam(&self, node: &str) -> Arc<Ipam<Flaky>> {
        let state = self
            .dir
            .path()
            .join(if node == "node-a" { "a" } else { "b" });
        Arc::new(
            Ipam::open(
                self.store.clone(),
                node,
                self.cfg,
                Duration::from_secs(1),
                &state,
                Arc::new(Metrics::default()),
            )
            .await
            .unwrap(),
        )
    }

    fn down(&self, yes: bool) {
        self.store.down.store(yes, Ordering::SeqCst);
    }

    async fn stored(&self) -> Vec<stored::StoredBlock> {
        let l = self
            .store
            .inner
            .list(&stored::blocks_prefix())
            .await
            .unwrap();
        stored::decode_all(&l.kvs)
    }
}

fn add(id: &str, mode: IpamMode, families: Option<Vec<Family>>) -> Request {
    Request::IpamAllocate(IpamAllocate {
        network: "net".into(),
        handle: handle(id),
        netns: None,
        pod: Some(PodRef {
            namespace: "shop".into(),
            name: format!("pod-{id}"),
        }),
        mode,
        families,
        report: None,
        masquerade: None,
    })
}

fn handle(id: &str) -> IpamHandle {
    IpamHandle {
        container_id: id.into(),
        ifname: "eth0".into(),
    }
}

fn del(id: &str) -> Request {
    Request::IpamRelease(IpamRelease {
        network: Some("net".into()),
        handle: handle(id),
    })
}

fn ips(r: Result<Response, ApiError>) -> Vec<IpamIp> {
    match r {
        Ok(Response::IpamAllocated { ips, .. }) => ips,
        other => panic!("not allocated: {other:?}"),
    }
}

fn err(r: Result<Response, ApiError>) -> ApiError {
    match r {
        Err(e) => e,
        Ok(other) => panic!("not an error: {other:?}"),
    }
}

const V4: Option<Vec<Family>> = None;

fn v4() -> Option<Vec<Family>> {
    Some(vec![Family::Ipv4])
}

#[tokio::test]
async fn without_a_cluster_network_the_answer_says_what_to_do() {
    let t = T::new().await;
    let a = t.ipam("node-a").await;
    let e = err(a.handle(add("c1", IpamMode::Pod, V4)).await);
    assert_eq!(e.code, ErrorCode::Invalid);
    assert!(
        e.message
            .starts_with("no ClusterNetwork: apply one with spec.podCIDRs"),
        "{}",
        e.message
    );
    assert!(t.stored().await.is_empty(), "nothing written");
}

#[tokio::test]
async fn pod_mode_hands_out_distinct_addresses_claiming_blocks_as_needed() {
    let t = T::new().await;
    t.cluster_network().await;
    let a = t.ipam("node-a").await;
    // 40 concurrent dual-stack ADDs: /28 blocks hold 16 (15 in the pool's first), so several claims
    let mut tasks = Vec::new();
    for i in 0..40 {
        let a = a.clone();
        tasks.push(tokio::spawn(async move {
            a.handle(add(&format!("c{i}"), IpamMode::Pod, None)).await
        }));
    }
    let mut seen = BTreeSet::new();
    for t in tasks {
        let got = ips(t.await.unwrap());
        assert_eq!(got.len(), 2, "one per family");
        for ip in got {
            assert!(ip.block.contains(&ip.address.addr()));
            assert_eq!(
                ip.address.prefix_len(),
                ip.address.max_prefix_len(),
                "a host prefix"
            );
            assert_eq!(ip.gateway, None);
            assert!(seen.insert(ip.address.addr()), "{} twice", ip.address);
        }
    }
    // the same ADD again: the same addresses
    let again = ips(a.handle(add("c7", IpamMode::Pod, None)).await);
    assert!(again.iter().all(|i| seen.contains(&i.address.addr())));
    let held: BTreeSet<_> = a.lock().state.blocks.keys().copied().collect();
    let v4_blocks = held.iter().filter(|b| b.addr().is_ipv4()).count();
    assert_eq!(v4_blocks, 3, "{held:?}");
    // every address inside the node's blocks, blocks in the store with its affinity
    a.sync_once().await.unwrap();
    let stored = t.stored().await;
    assert_eq!(stored.len(), held.len());
    for b in &stored {
        assert_eq!(b.node, "node-a");
        assert!(held.contains(&b.cidr));
    }
    let used: u64 = stored.iter().map(stored::StoredBlock::in_use).sum();
    assert_eq!(used, 80, "the copies caught up");
}

#[tokio::test]
async fn the_journal_survives_restarts_and_nothing_is_handed_out_twice() {
    let t = T::new().await;
    t.cluster_network().await;
    let mut before = BTreeSet::new();
    {
        let a = t.ipam("node-a").await;
        for i in 0..20 {
            for ip in ips(a.handle(add(&format!("c{i}"), IpamMode::Pod, v4())).await) {
                before.insert(ip.address.addr());
            }
        }
        a.handle(del("c3")).await.unwrap();
        // dropped without a sync: the store's copies are behind, the journal is not
    }
    let a = t.ipam("node-a").await;
    assert_eq!(a.lock().state.handles.len(), 19);
    for i in 20..40 {
        ips(a.handle(add(&format!("c{i}"), IpamMode::Pod, v4())).await);
    }
    assert!(before.len() == 20);
    // no address held by two attachments
    let all: Vec<_> = a.lock().state.allocations().map(|(ip, _)| ip).collect();
    let distinct: BTreeSet<_> = all.iter().copied().collect();
    assert_eq!(all.len(), distinct.len());
    assert_eq!(all.len(), 39);
    // a torn last line (a crash mid-write) is cut off and the rest replays
    let j = t.dir.path().join("a/journal");
    let mut f = std::fs::OpenOptions::new().append(true).open(&j).unwrap();
    std::io::Write::write_all(&mut f, br#"{"t":"alloc","ips":["10.244.0.9"],"contai"#).unwrap();
    drop(a);
    let a = t.ipam("node-a").await;
    assert_eq!(a.lock().state.handles.len(), 39);
}

#[tokio::test]
async fn node_mode_gives_the_gateway_and_the_nodes_pod_cidrs() {
    let t = T::new().await;
    t.cluster_network().await;
    let a = t.ipam("node-a").await;
    let got = ips(a.handle(add("k1", IpamMode::Node, None)).await);
    assert_eq!(got.len(), 2);
    let first = &got[0];
    assert_eq!(first.address.prefix_len(), 26);
    assert_eq!(first.block.prefix_len(), 26);
    assert_eq!(
        first.gateway,
        Some(super::block::from_u128(
            Family::Ipv4,
            super::block::to_u128(first.block.network()) + 1
        ))
    );
    assert_eq!(got[1].address.prefix_len(), 122);
    a.sync_once().await.unwrap();
    let node = t
        .store
        .inner
        .get(&keys::object(Kind::Node, None, "node-a"))
        .await
        .unwrap()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&node.value).unwrap();
    assert_eq!(
        v["spec"]["podCIDRs"],
        serde_json::json!([got[0].block.to_string(), got[1].block.to_string()])
    );
    // the node block (a /26: 61 usable) fills up: a clear error, no second block
    for i in 0..60 {
        ips(a
            .handle(add(&format!("k{}", i + 2), IpamMode::Node, v4()))
            .await);
    }
    let e = err(a.handle(add("full", IpamMode::Node, v4())).await);
    assert_eq!(e.code, ErrorCode::Exhausted);
    assert!(
        e.message.starts_with(&format!(
            "node block {} of node node-a is full (61 addresses in use)",
            got[0].block
        )),
        "{}",
        e.message
    );
    assert_eq!(a.lock().state.blocks.len(), 2, "one node block per family");
}

#[tokio::test]
async fn store_down_adds_work_from_held_blocks_claims_fail_dels_work_then_it_converges() {
    let t = T::new().await;
    t.cluster_network().await;
    let a = t.ipam("node-a").await;
    ips(a.handle(add("c0", IpamMode::Pod, v4())).await);
    a.sync_once().await.unwrap();
    t.down(true);
    // what is left in the block held
    let cap = a
        .lock()
        .state
        .blocks
        .values()
        .next()
        .unwrap()
        .block
        .capacity() as usize;
    for i in 1..cap {
        ips(a.handle(add(&format!("c{i}"), IpamMode::Pod, v4())).await);
    }
    let e = err(a.handle(add("one-more", IpamMode::Pod, v4())).await);
    assert_eq!(e.code, ErrorCode::Unavailable);
    assert!(
        e.message
            .starts_with("node node-a: claiming a new ipv4 block: ")
            && e.message
                .contains("store unavailable: etcd http://10.240.0.4:2379"),
        "{}",
        e.message
    );
    assert!(a.handle(del("c1")).await.is_ok());
    assert!(a.handle(del("never-added")).await.is_ok());
    assert!(a.sync_once().await.is_err());
    t.down(false);
    a.sync_once().await.unwrap();
    let s = t.stored().await;
    assert_eq!(s.len(), 1);
    assert_eq!(
        s[0].in_use() as usize,
        cap - 1,
        "the block filled, one deleted while the store was down"
    );
    ips(a.handle(add("one-more", IpamMode::Pod, v4())).await);
    assert_eq!(
        t.stored().await.len(),
        1,
        "the address freed while the store was down"
    );
    ips(a.handle(add("two-more", IpamMode::Pod, v4())).await);
    assert_eq!(t.stored().await.len(), 2, "a claim once the store is back");
}

#[tokio::test]
async fn an_agent_away_too_long_stops_handing_out() {
    let t = T::new().await;
    t.cluster_network().await;
    let a = t.ipam("node-a").await;
    ips(a.handle(add("c0", IpamMode::Pod, v4())).await);
    t.down(true);
    a.contact.lock().unwrap().last -= Duration::from_secs(2); // node grace 3 s: half is over
    let e = err(a.handle(add("c1", IpamMode::Pod, v4())).await);
    assert_eq!(e.code, ErrorCode::Unavailable);
    assert!(
        e.message
            .contains("no address is handed out until it is back"),
        "{}",
        e.message
    );
    assert!(
        ips(a.handle(add("c0", IpamMode::Pod, v4())).await).len() == 1,
        "an existing answer is fine"
    );
    assert!(a.handle(del("c0")).await.is_ok(), "DEL always works");
    t.down(false);
    a.sync_once().await.unwrap();
    ips(a.handle(add("c1", IpamMode::Pod, v4())).await);
}

#[tokio::test]
async fn only_the_stores_answers_count_as_contact() {
    let t = T::new().await;
    t.cluster_network().await;
    let a = t.ipam("node-a").await;
    ips(a.handle(add("c0", IpamMode::Pod, v4())).await);
    a.sync_once().await.unwrap();
    t.down(true);
    let before = a.since_contact();
    // an idle pass, nothing to write: no contact claimed
    a.sync_once().await.unwrap();
    assert!(a.since_contact() >= before);
    // the heartbeat is due: it fails, contact stays old
    a.contact.lock().unwrap().last -= Duration::from_secs(6);
    assert!(a.sync_once().await.is_err());
    assert!(a.since_contact() >= Duration::from_secs(6));
    t.down(false);
    a.sync_once().await.unwrap();
    assert!(
        a.since_contact() < Duration::from_secs(1),
        "the heartbeat answered"
    );
}

#[tokio::test]
async fn two_nodes_never_share_a_block_and_a_taken_block_is_not_used() {
    let t = T::new().await;
    t.cluster_network().await;
    let a = t.ipam("node-a").await;
    let b = t.ipam("node-b").await;
    let mut tasks = Vec::new();
    for i in 0..30 {
        let (a, b) = (a.clone(), b.clone());
        tasks.push(tokio::spawn(async move {
            a.handle(add(&format!("a{i}"), IpamMode::Pod, v4())).await
        }));
        tasks.push(tokio::spawn(async move {
            b.handle(add(&format!("b{i}"), IpamMode::Pod, v4())).await
        }));
    }
    let mut seen = BTreeSet::new();
    for t in tasks {
        for ip in ips(t.await.unwrap()) {
            assert!(seen.insert(ip.address.addr()));
        }
    }
    let ba: BTreeSet<_> = a.lock().state.blocks.keys().copied().collect();
    let bb: BTreeSet<_> = b.lock().state.blocks.keys().copied().collect();
    assert!(ba.is_disjoint(&bb));
    // the store gives one of A's blocks to B behind A's back (a restore, say)
    let stolen = *ba.iter().next().unwrap();
    let blk = Block::new(stolen, IpamMode::Pod, None);
    t.store
        .inner
        .put(
            &stored::block_key(&stolen),
            stored::encode(&blk, "node-b", 0, None),
        )
        .await
        .unwrap();
    a.lock().state.blocks.get_mut(&stolen).unwrap().changes += 1;
    a.sync_once().await.unwrap();
    assert_eq!(a.lock().state.blocks[&stolen].status, Status::Lost);
    for i in 30..60 {
        for ip in ips(a.handle(add(&format!("a{i}"), IpamMode::Pod, v4())).await) {
            assert!(
                !stolen.contains(&ip.address.addr()),
                "{ip:?} from the lost block"
            );
        }
    }
    let audit = match a.handle(Request::IpamAudit(IpamAudit {})).await.unwrap() {
        Response::IpamAudit(r) => r,
        other => panic!("{other:?}"),
    };
    assert!(!audit.clean());
    assert!(
        audit
            .conflicts
            .iter()
            .any(|c| c.contains(&stolen.to_string()) && c.contains("node-b")),
        "{audit:?}"
    );
}

#[tokio::test]
async fn leaks_empty_blocks_and_gone_nodes_are_collected() {
    let t = T::new().await;
    t.cluster_network().await;
    let a = t.ipam("node-a").await;
    let ns_dir = tempfile::tempdir().unwrap();
    let live = ns_dir.path().join("live");
    let dead = ns_dir.path().join("dead");
    std::fs::write(&live, b"").unwrap();
    std::fs::write(&dead, b"").unwrap();
    let with_ns = |id: &str, p: &std::path::Path| {
        Request::IpamAllocate(IpamAllocate {
            network: "net".into(),
            handle: handle(id),
            netns: Some(p.display().to_string()),
            pod: None,
            mode: IpamMode::Pod,
            families: v4(),
            report: None,
            masquerade: None,
        })
    };
    ips(a.handle(with_ns("live", &live)).await);
    ips(a.handle(with_ns("dead", &dead)).await);
    ips(a.handle(add("unknown", IpamMode::Pod, v4())).await);
    ips(a.handle(add("gc-ed", IpamMode::Pod, v4())).await);
    std::fs::remove_file(&dead).unwrap();
    a.handle(Request::IpamGc(IpamGc {
        network: "net".into(),
        valid: vec![handle("live"), handle("dead"), handle("unknown")],
    }))
    .await
    .unwrap();
    a.maintain_once().await.unwrap();
    let audit = match a.handle(Request::IpamAudit(IpamAudit {})).await.unwrap() {
        Response::IpamAudit(r) => r,
        other => panic!("{other:?}"),
    };
    let leaked: BTreeSet<String> = audit
        .leaked
        .iter()
        .map(|l| l.handle.container_id.clone())
        .collect();
    assert_eq!(leaked, ["dead".to_string(), "gc-ed".to_string()].into());
    // an operator cannot release a live pod's address by mistake
    let e = err(a
        .handle(Request::IpamReclaim(IpamReclaim {
            handles: vec![handle("live")],
            ..IpamReclaim::default()
        }))
        .await);
    assert_eq!(e.code, ErrorCode::Forbidden);
    assert!(e.message.contains("exists"), "{}", e.message);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    a.maintain_once().await.unwrap();
    let left: BTreeSet<String> = a
        .lock()
        .state
        .handles
        .keys()
        .map(|h| h.container_id.clone())
        .collect();
    assert_eq!(
        left,
        ["live".to_string(), "unknown".to_string()].into(),
        "only the gone ones went"
    );

    // a second block, emptied: back to the pool after its grace; the last one stays
    for i in 0..20 {
        ips(a.handle(add(&format!("x{i}"), IpamMode::Pod, v4())).await);
    }
    assert_eq!(a.lock().state.blocks.len(), 2);
    a.sync_once().await.unwrap();
    for i in 0..20 {
        a.handle(del(&format!("x{i}"))).await.unwrap();
    }
    a.maintain_once().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    a.maintain_once().await.unwrap();
    assert_eq!(
        a.lock().state.blocks.len(),
        1,
        "{:?}",
        a.lock().state.blocks.keys()
    );
    assert_eq!(t.stored().await.len(), 1);

    // node B claims a block and goes away (no lease record): its block returns after the grace
    let b = t.ipam("node-b").await;
    ips(b.handle(add("b0", IpamMode::Pod, v4())).await);
    drop(b);
    assert_eq!(t.stored().await.len(), 2);
    a.maintain_once().await.unwrap();
    tokio::time::sleep(Duration::from_millis(3100)).await;
    a.maintain_once().await.unwrap();
    let s = t.stored().await;
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].node, "node-a");
}

#[tokio::test]
async fn a_spooled_release_does_not_undo_a_later_add() {
    let t = T::new().await;
    t.cluster_network().await;
    let a = t.ipam("node-a").await;
    ips(a.handle(add("c1", IpamMode::Pod, v4())).await);
    let rel = IpamRelease {
        network: None,
        handle: handle("c1"),
    };
    let long_ago = 1000;
    assert!(
        a.release_spooled(&rel, long_ago).unwrap().is_empty(),
        "added after the spooled DEL"
    );
    let later = ferro_agent_api::spool::now_ms() + 1000;
    assert_eq!(a.release_spooled(&rel, later).unwrap().len(), 1);
}
