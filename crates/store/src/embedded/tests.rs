use std::time::Duration;

use super::*;
use crate::Compare;

async fn open(dir: &tempfile::TempDir) -> Embedded {
    Embedded::open(&dir.path().join("store.redb"))
        .await
        .unwrap()
}

/// Waits (generously) for `cond`, printing how long it took.
async fn eventually<F, Fut>(what: &str, mut cond: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let t0 = Instant::now();
    while !cond().await {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "{what}: not within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = t0.elapsed();
    eprintln!("{what}: {took:?}");
    took
}

async fn next(w: &mut Watch) -> Vec<Event> {
    tokio::time::timeout(Duration::from_secs(10), w.next())
        .await
        .expect("a watch event within 10 s")
        .unwrap()
}

#[tokio::test]
async fn revisions_versions_and_metadata_follow_etcd() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir).await;
    let r0 = s.list("").await.unwrap().revision;
    assert_eq!(r0, 1, "an empty store is at revision 1, as etcd");
    let r1 = s.put("/a", b"1".to_vec()).await.unwrap();
    assert_eq!(r1, 2);
    let r2 = s.put("/a", b"2".to_vec()).await.unwrap();
    let kv = s.get("/a").await.unwrap().unwrap();
    assert_eq!(
        (kv.create_revision, kv.mod_revision, kv.version, kv.value),
        (r1, r2, 2, b"2".to_vec())
    );
    // deleting a missing key changes nothing, not even the revision
    assert_eq!(s.delete("/missing").await.unwrap(), r2);
    let r3 = s.delete("/a").await.unwrap();
    assert_eq!(r3, r2 + 1);
    assert_eq!(s.get("/a").await.unwrap(), None);
    // re-created: a new life, version 1
    let r4 = s.put("/a", b"3".to_vec()).await.unwrap();
    let kv = s.get("/a").await.unwrap().unwrap();
    assert_eq!((kv.create_revision, kv.version), (r4, 1));
}

#[tokio::test]
async fn transactions_apply_all_or_nothing_and_report_conflicts() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir).await;
    assert!(s.create("/x", b"mine".to_vec(), None).await.unwrap());
    assert!(
        !s.create("/x", b"theirs".to_vec(), None).await.unwrap(),
        "create-if-absent fails once the key exists"
    );
    assert_eq!(s.get("/x").await.unwrap().unwrap().value, b"mine");

    let seen = s.get("/x").await.unwrap().unwrap();
    s.put("/x", b"changed meanwhile".to_vec()).await.unwrap();
    let before = s.list("").await.unwrap();
    let stale = Txn::new()
        .when(Compare::unchanged("/x", seen.mod_revision))
        .when(Compare::absent("/y"))
        .then(Op::put("/x", b"stale write"))
        .then(Op::put("/y", b"1"));
    let r = s.txn(stale).await.unwrap();
    assert!(!r.succeeded);
    assert_eq!(r.revision, before.revision);
    assert_eq!(r.current.len(), 2);
    assert_eq!(
        r.current[0].as_ref().unwrap().value,
        b"changed meanwhile",
        "a failed txn returns the compared keys' present state"
    );
    assert_eq!(r.current[1], None);
    assert_eq!(
        s.list("").await.unwrap(),
        before,
        "a failed txn writes nothing"
    );

    let fresh = r.current[0].as_ref().unwrap().mod_revision;
    let ok = Txn::new()
        .when(Compare::unchanged("/x", fresh))
        .then(Op::put("/x", b"retried"))
        .then(Op::put("/y", b"1"))
        .then(Op::delete("/nothing"));
    let r = s.txn(ok).await.unwrap();
    assert!(r.succeeded);
    assert_eq!(r.revision, before.revision + 1, "one txn, one revision");
    let l = s.list("/").await.unwrap();
    assert!(l.kvs.iter().all(|kv| kv.mod_revision == r.revision));

    let dup = Txn::new().then(Op::put("/d", b"1")).then(Op::delete("/d"));
    assert!(matches!(
        s.txn(dup).await,
        Err(StoreError::Rejected(m)) if m.contains("duplicate key")
    ));
}

#[tokio::test]
async fn lists_are_sorted_and_bounded_by_the_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir).await;
    for k in ["/p/b", "/p/a", "/p0", "/q", "/p/c/d"] {
        s.put(k, k.as_bytes().to_vec()).await.unwrap();
    }
    let l = s.list("/p/").await.unwrap();
    let keys: Vec<&str> = l.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["/p/a", "/p/b", "/p/c/d"]);
    assert_eq!(l.revision, 6);
}

#[tokio::test]
async fn leases_expire_renew_revoke_and_detach() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir).await;
    let short = s.grant(Duration::from_secs(1)).await.unwrap();
    assert_eq!(short.ttl, Duration::from_secs(1));
    s.txn(Txn::new().then(Op::put_leased("/l/short", b"x", short.id)))
        .await
        .unwrap();
    // detached by a put without the lease: survives the lease
    s.txn(Txn::new().then(Op::put_leased("/l/detached", b"x", short.id)))
        .await
        .unwrap();
    s.put("/l/detached", b"y".to_vec()).await.unwrap();
    assert_eq!(
        s.get("/l/short").await.unwrap().unwrap().lease,
        Some(short.id)
    );

    let mut w = s.watch("/l/", 0).await.unwrap();
    eventually("a 1 s lease expiring", || async {
        s.get("/l/short").await.unwrap().is_none()
    })
    .await;
    let ev = next(&mut w).await;
    assert_eq!(ev.len(), 1);
    assert_eq!(
        (ev[0].kind, ev[0].kv.key.as_str()),
        (EventKind::Delete, "/l/short")
    );
    assert!(s.get("/l/detached").await.unwrap().is_some());
    assert!(matches!(
        s.keepalive(short.id).await,
        Err(StoreError::LeaseNotFound(id)) if id == short.id
    ));
    // a put on an expired lease fails and writes nothing
    let r = s
        .txn(
            Txn::new()
                .then(Op::put("/l/other", b"1"))
                .then(Op::put_leased("/l/late", b"x", short.id)),
        )
        .await;
    assert!(matches!(r, Err(StoreError::LeaseNotFound(_))));
    assert!(s.get("/l/other").await.unwrap().is_none());

    // renewed: outlives its TTL
    let kept = s.grant(Duration::from_secs(1)).await.unwrap();
    s.txn(Txn::new().then(Op::put_leased("/l/kept", b"x", kept.id)))
        .await
        .unwrap();
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        s.keepalive(kept.id).await.unwrap();
    }
    assert!(
        s.get("/l/kept").await.unwrap().is_some(),
        "kept alive for 1.8 s past a 1 s TTL"
    );
    // revoked: gone at once
    s.revoke(kept.id).await.unwrap();
    assert!(s.get("/l/kept").await.unwrap().is_none());
    s.revoke(kept.id).await.unwrap(); // revoking again is fine
}

#[tokio::test]
async fn watches_replay_from_a_revision_then_follow_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir).await;
    let r1 = s.put("/w/a", b"1".to_vec()).await.unwrap();
    s.put("/other", b"1".to_vec()).await.unwrap();
    let r3 = s.put("/w/b", b"1".to_vec()).await.unwrap();
    let mut w = s.watch("/w/", r1).await.unwrap();
    let mut now = s.watch("/w/", 0).await.unwrap();
    let ev = next(&mut w).await;
    let revs: Vec<Revision> = ev.iter().map(Event::revision).collect();
    assert_eq!(revs, [r1, r3], "history replayed, filtered by prefix");
    s.txn(
        Txn::new()
            .then(Op::put("/w/c", b"1"))
            .then(Op::delete("/w/a")),
    )
    .await
    .unwrap();
    let ev = next(&mut w).await;
    assert_eq!(ev.len(), 2);
    assert_eq!(ev[0].revision(), ev[1].revision());
    assert_eq!(
        (ev[1].kind, ev[1].kv.key.as_str()),
        (EventKind::Delete, "/w/a")
    );
    let ev = next(&mut now).await;
    assert_eq!(ev.len(), 2, "a watch from 0 sees only what comes after it");
}

#[tokio::test]
async fn a_watch_that_falls_behind_catches_up_without_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir).await;
    let mut w = s.watch("/n/", 0).await.unwrap();
    // More batches than the watch's buffer and the broadcast hold together: its task lags
    // and replays from the log.
    let n = 1500;
    for i in 0..n {
        s.put(&format!("/n/{}", i % 7), i.to_string().into_bytes())
            .await
            .unwrap();
    }
    let mut revs = Vec::new();
    while revs.len() < n {
        revs.extend(next(&mut w).await.iter().map(Event::revision));
    }
    assert_eq!(revs.len(), n);
    assert!(
        revs.windows(2).all(|p| p[1] == p[0] + 1),
        "every revision once, in order"
    );
}

#[tokio::test]
async fn compaction_ends_watches_from_older_revisions() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir).await;
    let old = s.put("/c/a", b"1".to_vec()).await.unwrap();
    let mid = s.put("/c/b", b"1".to_vec()).await.unwrap();
    s.put("/c/c", b"1".to_vec()).await.unwrap();
    s.compact(mid).await.unwrap();
    let mut w = s.watch("/c/", old).await.unwrap();
    match tokio::time::timeout(Duration::from_secs(10), w.next())
        .await
        .unwrap()
    {
        Err(StoreError::Compacted {
            requested,
            compacted,
        }) => assert_eq!((requested, compacted), (old, mid)),
        other => panic!("expected Compacted, got {other:?}"),
    }
    // relist and watch from the listing
    let l = s.list("/c/").await.unwrap();
    assert_eq!(l.kvs.len(), 3);
    let mut w = s.watch("/c/", mid).await.unwrap();
    assert_eq!(
        next(&mut w).await.len(),
        2,
        "from the compaction revision on is kept"
    );
    assert!(matches!(
        s.compact(old).await,
        Err(StoreError::Compacted { .. })
    ));
    assert!(matches!(
        s.compact(l.revision + 5).await,
        Err(StoreError::Rejected(_))
    ));
}

#[tokio::test]
async fn history_is_compacted_automatically() {
    let dir = tempfile::tempdir().unwrap();
    let s = Embedded::open_with_history(&dir.path().join("s.redb"), 10)
        .await
        .unwrap();
    let first = s.put("/h", b"0".to_vec()).await.unwrap();
    for i in 0..30 {
        s.put("/h", i.to_string().into_bytes()).await.unwrap();
    }
    let mut w = s.watch("/h", first).await.unwrap();
    assert!(matches!(
        tokio::time::timeout(Duration::from_secs(10), w.next())
            .await
            .unwrap(),
        Err(StoreError::Compacted { .. })
    ));
    let now = s.list("/h").await.unwrap().revision;
    let mut w = s.watch("/h", now - 5).await.unwrap();
    assert_eq!(next(&mut w).await.len(), 6);
}

#[tokio::test]
async fn reopening_keeps_data_revisions_and_leases() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let (rev, lease) = {
        let s = Embedded::open(&path).await.unwrap();
        let again = Embedded::open(&path).await.unwrap_err();
        assert!(again.to_string().contains("already open"), "{again}");
        let lease = s.grant(Duration::from_secs(1)).await.unwrap();
        s.txn(Txn::new().then(Op::put_leased("/r/leased", b"x", lease.id)))
            .await
            .unwrap();
        (s.put("/r/kept", b"x".to_vec()).await.unwrap(), lease)
    };
    // the lease clock task may still hold the database for a moment
    let s = loop {
        match Embedded::open(&path).await {
            Ok(s) => break s,
            Err(e) if e.to_string().contains("already open") => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(s.list("/r/").await.unwrap().revision, rev);
    assert!(s.get("/r/kept").await.unwrap().is_some());
    assert_eq!(
        s.get("/r/leased").await.unwrap().unwrap().lease,
        Some(lease.id),
        "the lease survived the restart"
    );
    let next_lease = s.grant(Duration::from_secs(5)).await.unwrap();
    assert_ne!(next_lease.id, lease.id, "lease ids are never reused");
    eventually("a restored lease expiring", || async {
        s.get("/r/leased").await.unwrap().is_none()
    })
    .await;
    assert!(s.put("/r/kept", b"y".to_vec()).await.unwrap() > rev);
}
