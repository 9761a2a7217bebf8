//! The etcd backend against a real 3-member etcd 3.4 cluster (Debian's `etcd-server`), one
//! member per simulated node on its VNet address (root: network namespaces). The client runs
//! inside node A's namespace, as an agent would.
//!
//! Proven here: transactions conflict as compare-and-swap must; a lease's keys vanish when it
//! expires or is revoked; a watch resumes after the member serving it is killed, delivering
//! every change once and in order; compaction ends a watch with `Compacted` and a relist
//! recovers; TLS with client certificates (and refusal without one); an unreachable store is
//! `Unavailable`.
#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::time::{Duration, Instant};

use ferro_store::{
    Compare, Etcd, EtcdConfig, Event, EventKind, Op, Revision, Store, StoreError, Txn, Watch,
};
use ferro_testutil::etcd::EtcdCluster;
use ferro_testutil::netns::Netns;
use ferro_testutil::pki::TestCa;
use ferro_testutil::topology::World;

/// Runs `f` on a current-thread runtime inside `ns` (its sockets live there).
fn cluster(world: &World, ca: Option<&TestCa>) -> EtcdCluster {
    let nodes: Vec<(&Netns, std::net::IpAddr)> =
        world.nodes.iter().map(|n| (&n.ns, n.ip)).collect();
    EtcdCluster::start(&nodes, ca)
}

async fn connect(endpoints: Vec<String>) -> Etcd {
    let mut cfg = EtcdConfig::new(endpoints);
    cfg.dial_timeout_seconds = Some(10.0);
    cfg.request_timeout_seconds = Some(15.0);
    Etcd::connect(&cfg).await.unwrap()
}

async fn next(w: &mut Watch) -> Vec<Event> {
    tokio::time::timeout(Duration::from_secs(30), w.next())
        .await
        .expect("a watch event within 30 s")
        .unwrap()
}

/// Reads from `w` until it has seen `n` events; their (key, revision).
async fn take(w: &mut Watch, n: usize) -> Vec<(String, Revision)> {
    let mut out = Vec::new();
    while out.len() < n {
        for e in next(w).await {
            out.push((e.kv.key.clone(), e.revision()));
        }
    }
    out
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn transactions_leases_compaction_and_unreachable() {
    ferro_testutil::require_root();
    let world = World::new(3);
    let etcd = cluster(&world, None);
    let endpoints = etcd.endpoints();
    world.nodes[0].ns.block_on(|| async move {
        let s = connect(endpoints.clone()).await;

        // compare-and-swap
        assert!(s.create("/t/x", b"a".to_vec(), None).await.unwrap());
        assert!(!s.create("/t/x", b"b".to_vec(), None).await.unwrap());
        let seen = s.get("/t/x").await.unwrap().unwrap();
        assert_eq!((seen.version, seen.value.as_slice()), (1, &b"a"[..]));
        s.put("/t/x", b"changed".to_vec()).await.unwrap();
        let r = s
            .txn(
                Txn::new()
                    .when(Compare::unchanged("/t/x", seen.mod_revision))
                    .then(Op::put("/t/x", b"stale"))
                    .then(Op::put("/t/y", b"1")),
            )
            .await
            .unwrap();
        assert!(!r.succeeded, "a stale mod_revision loses");
        assert_eq!(r.current[0].as_ref().unwrap().value, b"changed");
        assert!(s.get("/t/y").await.unwrap().is_none(), "nothing written");
        let fresh = r.current[0].as_ref().unwrap().mod_revision;
        let ok = s
            .txn(
                Txn::new()
                    .when(Compare::unchanged("/t/x", fresh))
                    .then(Op::put("/t/x", b"won"))
                    .then(Op::put("/t/y", b"1")),
            )
            .await
            .unwrap();
        assert!(ok.succeeded);
        let l = s.list("/t/").await.unwrap();
        assert_eq!(l.kvs.len(), 2);
        assert!(l.kvs.iter().all(|kv| kv.mod_revision == ok.revision));

        // leases: expiry deletes the keys; revoke at once; keepalive of a dead lease fails
        let lease = s.grant(Duration::from_secs(2)).await.unwrap();
        let put = s
            .txn(Txn::new().then(Op::put_leased("/t/leased", b"x", lease.id)))
            .await
            .unwrap();
        // from the next revision, not "from now": the member serving the watch may not have
        // applied the put yet
        let mut w = s.watch("/t/leased", put.revision + 1).await.unwrap();
        let t0 = Instant::now();
        let ev = next(&mut w).await;
        eprintln!("2 s lease expired after {:.1?}", t0.elapsed());
        assert_eq!(ev[0].kind, EventKind::Delete);
        assert!(s.get("/t/leased").await.unwrap().is_none());
        assert!(matches!(
            s.keepalive(lease.id).await,
            Err(StoreError::LeaseNotFound(id)) if id == lease.id
        ));
        let lease = s.grant(Duration::from_secs(60)).await.unwrap();
        s.keepalive(lease.id).await.unwrap();
        s.txn(Txn::new().then(Op::put_leased("/t/leased", b"x", lease.id)))
            .await
            .unwrap();
        s.revoke(lease.id).await.unwrap();
        assert!(
            s.get("/t/leased").await.unwrap().is_none(),
            "revoked: gone at once"
        );
        s.revoke(lease.id).await.unwrap();
        assert!(matches!(
            s.txn(Txn::new().then(Op::put_leased("/t/late", b"x", lease.id)))
                .await,
            Err(StoreError::LeaseNotFound(_))
        ));

        // compaction: a watch from before it ends with Compacted; relist and go on
        let old = s.put("/c/a", b"1".to_vec()).await.unwrap();
        s.put("/c/b", b"1".to_vec()).await.unwrap();
        let now = s.put("/c/c", b"1".to_vec()).await.unwrap();
        s.compact(now).await.unwrap();
        let mut w = s.watch("/c/", old).await.unwrap();
        match tokio::time::timeout(Duration::from_secs(30), w.next())
            .await
            .unwrap()
        {
            Err(StoreError::Compacted {
                requested,
                compacted,
            }) => assert_eq!((requested, compacted), (old, now)),
            other => panic!("expected Compacted, got {other:?}"),
        }
        let l = s.list("/c/").await.unwrap();
        assert_eq!(l.kvs.len(), 3);
        let mut w = s.watch("/c/", l.revision + 1).await.unwrap();
        let r = s.put("/c/d", b"1".to_vec()).await.unwrap();
        assert_eq!(take(&mut w, 1).await, [("/c/d".to_string(), r)]);

        // unreachable: refused, and silent (no such host)
        let mut cfg = EtcdConfig::new(vec!["http://127.0.0.1:1".into()]);
        cfg.dial_timeout_seconds = Some(2.0);
        let e = Etcd::connect(&cfg).await.unwrap_err();
        assert!(e.is_unavailable(), "{e}");
        assert!(e.to_string().contains("127.0.0.1:1"), "{e}");
        let mut cfg = EtcdConfig::new(vec!["http://10.240.0.99:2379".into()]);
        cfg.dial_timeout_seconds = Some(1.0);
        let t0 = Instant::now();
        let e = Etcd::connect(&cfg).await.unwrap_err();
        eprintln!("silent endpoint reported after {:.1?}: {e}", t0.elapsed());
        assert!(e.is_unavailable(), "{e}");
    });
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn watches_resume_after_the_member_serving_them_is_killed() {
    ferro_testutil::require_root();
    let world = World::new(3);
    let mut etcd = cluster(&world, None);
    let all = etcd.endpoints();
    let (m0, m1) = (etcd.endpoint(0), etcd.endpoint(1));
    let ns = &world.nodes[0].ns;
    let rt = ns.run(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    });
    // The runtime's sockets must be made inside node A: every block_on runs there.
    let run =
        |f: std::pin::Pin<Box<dyn Future<Output = ()> + Send + '_>>| ns.run(|| rt.block_on(f));

    let mut only_m0 = None;
    let mut balanced = None;
    let mut writer = None;
    run(Box::pin(async {
        let w = connect(vec![m1.clone()]).await;
        let start = w.put("/w/start", b"1".to_vec()).await.unwrap();
        let a = connect(vec![m0.clone()]).await;
        only_m0 = Some((a.watch("/w/", start).await.unwrap(), a));
        let b = connect(all.clone()).await;
        balanced = Some((b.watch("/w/", start).await.unwrap(), b));
        writer = Some(w);
        let (wa, _) = only_m0.as_mut().unwrap();
        assert_eq!(take(wa, 1).await[0].0, "/w/start");
        let (wb, _) = balanced.as_mut().unwrap();
        assert_eq!(take(wb, 1).await[0].0, "/w/start");
    }));

    // The watch that can only use member 0: writes made while member 0 is dead arrive once
    // it is back, in order, none twice.
    etcd.kill(0);
    let mut expected = Vec::new();
    run(Box::pin(async {
        let w = writer.as_ref().unwrap();
        for k in ["/w/dead-1", "/w/dead-2", "/w/dead-3"] {
            expected.push((k.to_string(), w.put(k, b"1".to_vec()).await.unwrap()));
        }
    }));
    etcd.restart(0);
    run(Box::pin(async {
        let (wa, _) = only_m0.as_mut().unwrap();
        let t0 = Instant::now();
        assert_eq!(take(wa, 3).await, expected);
        eprintln!(
            "watch on the restarted member resumed after {:.1?}",
            t0.elapsed()
        );
        let w = writer.as_ref().unwrap();
        let r = w.put("/w/after", b"1".to_vec()).await.unwrap();
        assert_eq!(take(wa, 1).await, [("/w/after".to_string(), r)]);
        let (wb, _) = balanced.as_mut().unwrap();
        let mut all_so_far = expected.clone();
        all_so_far.push(("/w/after".to_string(), r));
        assert_eq!(take(wb, 4).await, all_so_far);
    }));

    // The watch over every endpoint: kill each member in turn (one of them serves it) and
    // keep writing through the others; it never misses a change.
    for i in 0..3 {
        etcd.kill(i);
        let via = etcd.endpoint((i + 1) % 3);
        run(Box::pin(async {
            let w = connect(vec![via.clone()]).await;
            let mut want = Vec::new();
            for j in 0..3 {
                let k = format!("/w/m{i}-down-{j}");
                want.push((k.clone(), w.put(&k, b"1".to_vec()).await.unwrap()));
            }
            let (wb, _) = balanced.as_mut().unwrap();
            let t0 = Instant::now();
            assert_eq!(take(wb, 3).await, want, "member {i} down");
            eprintln!(
                "member {i} down: changes arrived after {:.1?}",
                t0.elapsed()
            );
        }));
        etcd.restart(i);
    }
    drop(only_m0);
    drop(balanced);
    drop(writer);
    ns.run(move || drop(rt));
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn tls_with_client_certificates() {
    ferro_testutil::require_root();
    let world = World::new(3);
    let ca = TestCa::new("ferro-test-ca");
    let etcd = cluster(&world, Some(&ca));
    let client = ca.issue("node-a", &[world.nodes[0].ip]);
    let other_ca = TestCa::new("someone-else");
    let stranger = other_ca.issue("stranger", &[world.nodes[0].ip]);
    let endpoints = etcd.endpoints();
    assert!(endpoints.iter().all(|e| e.starts_with("https://")));
    world.nodes[0].ns.block_on(|| async move {
        let base = |cert: Option<(&std::path::Path, &std::path::Path)>, ca: &std::path::Path| {
            let mut c = EtcdConfig::new(endpoints.clone());
            c.ca_file = Some(ca.to_path_buf());
            if let Some((cert, key)) = cert {
                c.cert_file = Some(cert.to_path_buf());
                c.key_file = Some(key.to_path_buf());
            }
            // a refused handshake is retried as any unreachable member: keep it short
            c.dial_timeout_seconds = Some(1.0);
            c
        };
        let mut good = base(Some((&client.cert, &client.key)), &ca.ca());
        good.dial_timeout_seconds = Some(10.0);
        let s = Etcd::connect(&good).await.unwrap();
        let r = s.put("/tls/ok", b"1".to_vec()).await.unwrap();
        assert_eq!(s.get("/tls/ok").await.unwrap().unwrap().mod_revision, r);

        let no_cert = Etcd::connect(&base(None, &ca.ca())).await.unwrap_err();
        assert!(no_cert.is_unavailable(), "{no_cert}");
        eprintln!("without a client certificate: {no_cert}");
        let wrong = Etcd::connect(&base(Some((&stranger.cert, &stranger.key)), &ca.ca()))
            .await
            .unwrap_err();
        assert!(wrong.is_unavailable(), "{wrong}");
        let untrusted = Etcd::connect(&base(Some((&client.cert, &client.key)), &other_ca.ca()))
            .await
            .unwrap_err();
        assert!(untrusted.is_unavailable(), "{untrusted}");
        eprintln!("server not trusted: {untrusted}");

        let mut missing = good.clone();
        missing.key_file = Some("/nonexistent/key.pem".into());
        let e = Etcd::connect(&missing).await.unwrap_err();
        assert!(
            matches!(&e, StoreError::Config(m) if m.contains("keyFile /nonexistent/key.pem")),
            "{e}"
        );
        let mut plain = good.clone();
        plain.endpoints = vec!["http://10.240.0.4:2379".into()];
        assert!(matches!(
            Etcd::connect(&plain).await,
            Err(StoreError::Config(_))
        ));
    });
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn a_listing_larger_than_one_grpc_message() {
    ferro_testutil::require_root();
    let world = World::new(1);
    let etcd = cluster(&world, None);
    let endpoints = etcd.endpoints();
    world.nodes[0].ns.block_on(|| async move {
        let s = connect(endpoints).await;
        // 5,000 values of 1.5 KB: 7.5 MB, more than the 4 MiB a gRPC answer may hold
        let value = vec![b'x'; 1500];
        for chunk in (0..5000).collect::<Vec<_>>().chunks(100) {
            let mut t = Txn::new();
            for i in chunk {
                t = t.then(Op::put(format!("/big/k{i:05}"), value.clone()));
            }
            s.txn(t).await.unwrap();
        }
        s.put("/bigger", b"not under the prefix".to_vec())
            .await
            .unwrap();
        let l = s.list("/big/").await.unwrap();
        assert_eq!(l.kvs.len(), 5000);
        let keys: Vec<&str> = l.kvs.iter().map(|kv| kv.key.as_str()).collect();
        assert_eq!(keys[0], "/big/k00000");
        assert_eq!(keys[4999], "/big/k04999");
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "sorted, no repeats");
        assert!(l.kvs.iter().all(|kv| kv.mod_revision <= l.revision));
    });
}
