use std::sync::Mutex;

use ferro_agent_api::{Request, Response, Spool};
use ferro_store::Embedded;
use serde_json::{json, Value};

use super::*;

struct T {
    store: Embedded,
    att: Arc<Attachments<Embedded>>,
    api: Api<Embedded>,
    spool: Spool,
    dir: tempfile::TempDir,
}

fn links(names: &[&str]) -> LinkSource {
    LinkSource::Given(Mutex::new(names.iter().map(|s| s.to_string()).collect()))
}

async fn setup(node_links: &[&str]) -> T {
    let dir = tempfile::tempdir().unwrap();
    let store = Embedded::open(&dir.path().join("s.redb")).await.unwrap();
    let att = Arc::new(
        Attachments::open(
            store.clone(),
            "node-a".into(),
            &dir.path().join("state"),
            links(node_links),
        )
        .unwrap(),
    );
    let spool = Spool::at(dir.path().join("spool"));
    let api = Api::new(store.clone(), "node-a".into(), "embedded".into())
        .with_attachments(att.clone(), spool.clone());
    api.ensure_system_namespaces().await.unwrap();
    T {
        store,
        att,
        api,
        spool,
        dir,
    }
}

fn report(event: AttachmentEvent, cid: &str, pod: Option<(&str, &str)>) -> AttachmentReport {
    AttachmentReport {
        event,
        plugin: "bridge".into(),
        network: "kubenet".into(),
        container_id: cid.into(),
        ifname: "eth0".into(),
        pod_namespace: pod.map(|p| p.0.to_string()),
        pod_name: pod.map(|p| p.1.to_string()),
        host_interface: format!("veth{cid}"),
        addresses: if event == AttachmentEvent::Add {
            vec![format!("10.244.1.{}/24", cid.len())]
        } else {
            Vec::new()
        },
        firewall: None,
    }
}

fn set_links(t: &T, names: &[&str]) {
    match &t.att.links {
        LinkSource::Given(m) => *m.lock().unwrap() = names.iter().map(|s| s.to_string()).collect(),
        LinkSource::Kernel(_) => unreachable!(),
    }
}

/// `namespace/name -> spec.containerID` of every attachment in the store.
async fn stored(t: &T) -> BTreeMap<String, String> {
    let l = t.store.list("/ferro-cni/v1/attachments/").await.unwrap();
    l.kvs
        .iter()
        .map(|kv| {
            let v: Value = serde_json::from_slice(&kv.value).unwrap();
            (
                kv.key
                    .trim_start_matches("/ferro-cni/v1/attachments/")
                    .to_string(),
                v["spec"]["containerID"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn action(r: Result<Outcome, ApiError>) -> Action {
    r.unwrap().action
}

#[tokio::test]
async fn add_and_del_write_and_remove_the_store_object() {
    let t = setup(&["vethc1"]).await;
    let add = report(AttachmentEvent::Add, "c1", Some(("shop", "web-1")));
    let o = t.att.report(&add).await.unwrap();
    assert_eq!(o.action, Action::Created);
    t.att.flush().await;
    assert_eq!(o.namespace.as_deref(), Some("shop"));
    assert!(o.name.starts_with("web-1-eth0-"), "{}", o.name);
    let key = format!("/ferro-cni/v1/attachments/shop/{}", o.name);
    let v: Value =
        serde_json::from_slice(&t.store.get(&key).await.unwrap().unwrap().value).unwrap();
    assert_eq!(
        v["spec"],
        json!({"node": "node-a", "pod": "web-1", "containerID": "c1", "interface": "eth0",
               "hostInterface": "vethc1", "addresses": ["10.244.1.2/24"], "network": "kubenet",
               "plugin": "bridge"})
    );
    assert_eq!(action(t.att.report(&add).await), Action::Unchanged);
    assert_eq!(t.att.count(), 1);
    // DEL as ctr sends it: no pod name, no addresses
    let del = report(AttachmentEvent::Del, "c1", None);
    assert_eq!(action(t.att.report(&del).await), Action::Deleted);
    t.att.flush().await;
    assert!(t.store.get(&key).await.unwrap().is_none());
    assert_eq!(t.att.count(), 0);
    assert_eq!(action(t.att.report(&del).await), Action::NotFound);
}

#[tokio::test]
async fn del_without_a_record_finds_the_object_in_the_store() {
    let t = setup(&["vethc1"]).await;
    t.att
        .report(&report(AttachmentEvent::Add, "c1", Some(("shop", "web-1"))))
        .await
        .unwrap();
    t.att.flush().await;
    assert_eq!(stored(&t).await.len(), 1);
    std::fs::remove_dir_all(t.dir.path().join("state/attachments")).unwrap();
    std::fs::create_dir(t.dir.path().join("state/attachments")).unwrap();
    let del = report(AttachmentEvent::Del, "c1", None);
    assert_eq!(
        action(t.att.report(&del).await),
        Action::NotFound,
        "not in the records"
    );
    t.att.flush().await;
    assert!(stored(&t).await.is_empty(), "but found in the store");
}

#[tokio::test]
async fn a_pod_renamed_for_one_sandbox_moves_its_object() {
    let t = setup(&["vethc1"]).await;
    t.att
        .report(&report(AttachmentEvent::Add, "c1", None))
        .await
        .unwrap();
    let o = t
        .att
        .report(&report(AttachmentEvent::Add, "c1", Some(("shop", "web-1"))))
        .await
        .unwrap();
    t.att.flush().await;
    let keys: Vec<String> = stored(&t).await.into_keys().collect();
    assert_eq!(keys, [format!("shop/{}", o.name)]);
}

#[test]
fn the_resync_plan() {
    let a = |ns: &str, pod: &str, cid: &str, host: &str| {
        let mut x = Attachment {
            metadata: ObjectMeta {
                namespace: Some(ns.into()),
                name: Some(attachment::name(Some(pod), cid, "eth0")),
                ..Default::default()
            },
            ..Default::default()
        };
        x.spec.container_id = cid.into();
        x.spec.host_interface = Some(host.into());
        x.spec.node = "node-a".into();
        x
    };
    let live = a("shop", "web-1", "c1", "v1");
    let gone = a("shop", "web-2", "c2", "v2");
    let lost = a("shop", "web-3", "c3", "v3");
    let records: BTreeMap<String, Attachment> = [
        ("r1".to_string(), live.clone()),
        ("r2".to_string(), gone.clone()),
        ("r3".to_string(), lost.clone()),
    ]
    .into();
    let links: BTreeSet<String> = ["v1", "v3", "eth0"].map(String::from).into();
    let orphan = a("shop", "web-9", "c9", "v9");
    let mut changed = live.clone();
    changed.spec.addresses = vec!["10.0.0.1/24".into()];
    let stored: BTreeMap<String, Attachment> = [
        (key_of(&live), changed),
        (key_of(&gone), gone.clone()),
        (key_of(&orphan), orphan.clone()),
    ]
    .into();
    let none = BTreeSet::new();
    let p = plan_resync(&records, &links, &none, &stored);
    assert_eq!(p.forget, ["r2"], "its veth is gone");
    assert_eq!(
        p.put,
        [live.clone(), lost],
        "changed in the store, and missing from it"
    );
    assert_eq!(p.delete, [key_of(&gone), key_of(&orphan)]);
    let stored_same: BTreeMap<String, Attachment> = [(key_of(&live), live.clone())].into();
    let only_live: BTreeMap<String, Attachment> = [("r1".to_string(), live)].into();
    assert_eq!(
        plan_resync(&only_live, &links, &none, &stored_same),
        Resync::default(),
        "nothing to do"
    );
    // A record written by an address request whose ADD is still creating the veth: kept,
    // and kept in the store.
    let pending: BTreeSet<String> = ["r2".to_string()].into();
    let p = plan_resync(&records, &links, &pending, &stored);
    assert!(p.forget.is_empty(), "{p:?}");
    assert_eq!(p.delete, [key_of(&orphan)], "its store object stays");
}

#[tokio::test]
async fn resync_forgets_the_dead_restores_the_lost_and_spares_other_nodes() {
    let t = setup(&["vethc1", "vethc22"]).await;
    t.att
        .report(&report(AttachmentEvent::Add, "c1", Some(("shop", "web-1"))))
        .await
        .unwrap();
    t.att
        .report(&report(
            AttachmentEvent::Add,
            "c22",
            Some(("shop", "web-2")),
        ))
        .await
        .unwrap();
    // another node's attachment, and one of this node nothing backs
    let other = json!({"apiVersion": "ferro-cni.io/v1", "kind": "Attachment",
        "metadata": {"name": "x-eth0-1", "namespace": "shop"},
        "spec": {"node": "node-b", "containerID": "cx", "interface": "eth0"}});
    let orphan = json!({"apiVersion": "ferro-cni.io/v1", "kind": "Attachment",
        "metadata": {"name": "y-eth0-1", "namespace": "shop"},
        "spec": {"node": "node-a", "containerID": "cy", "interface": "eth0"}});
    t.store
        .put(
            "/ferro-cni/v1/attachments/shop/x-eth0-1",
            other.to_string().into_bytes(),
        )
        .await
        .unwrap();
    t.store
        .put(
            "/ferro-cni/v1/attachments/shop/y-eth0-1",
            orphan.to_string().into_bytes(),
        )
        .await
        .unwrap();
    // web-2's veth disappears without a DEL; web-1's object is lost from the store
    t.att.flush().await;
    set_links(&t, &["vethc1"]);
    let web1: Vec<String> = stored(&t)
        .await
        .into_iter()
        .filter(|(_, c)| c == "c1")
        .map(|(k, _)| k)
        .collect();
    t.store
        .delete(&format!("/ferro-cni/v1/attachments/{}", web1[0]))
        .await
        .unwrap();
    let p = t.att.resync().await.unwrap();
    assert_eq!((p.forget.len(), p.put.len(), p.delete.len()), (1, 1, 2));
    let after: Vec<String> = stored(&t).await.into_values().collect();
    assert_eq!(after, ["c1", "cx"]);
    assert_eq!(t.att.count(), 1);
    assert_eq!(t.att.resync().await.unwrap(), Resync::default());
}

#[tokio::test]
async fn the_spool_is_replayed_before_a_report_and_in_order() {
    let t = setup(&["vethc1", "vethc2"]).await;
    // while the agent was away: c1 added, c2 added and deleted
    for (ev, cid) in [
        (AttachmentEvent::Add, "c1"),
        (AttachmentEvent::Add, "c2"),
        (AttachmentEvent::Del, "c2"),
    ] {
        t.spool
            .push(&Request::Report {
                report: report(ev, cid, Some(("default", cid))),
            })
            .unwrap();
    }
    t.spool.push(&Request::Status).unwrap();
    std::fs::write(
        t.spool.dir().join("9999999999999999-1-0.json"),
        b"{\"at\":1,\"request\":{\"op\":\"nope\"}}",
    )
    .unwrap();
    // a report now: c1's DEL, which must come after its spooled ADD
    let r = t
        .api
        .handle(Request::Report {
            report: report(AttachmentEvent::Del, "c1", Some(("default", "c1"))),
        })
        .await;
    assert!(
        matches!(&r, Response::Reported { outcome, .. } if outcome.action == Action::Deleted),
        "{r:?}"
    );
    t.att.flush().await;
    assert!(stored(&t).await.is_empty(), "{:?}", stored(&t).await);
    assert!(t.spool.entries().unwrap().is_empty());
    let rejected: Vec<String> = std::fs::read_dir(t.spool.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(rejected, ["9999999999999999-1-0.rejected"]);
    // and on its own
    t.spool
        .push(&Request::Report {
            report: report(AttachmentEvent::Add, "c2", Some(("default", "c2"))),
        })
        .unwrap();
    let done = t.api.replay().await;
    assert_eq!((done.applied, done.rejected, done.left), (1, 0, 0));
    t.att.flush().await;
    assert_eq!(stored(&t).await.into_values().collect::<Vec<_>>(), ["c2"]);
}

#[tokio::test]
async fn reads_join_pods_and_attachments() {
    let t = setup(&["vethc1", "vethc2"]).await;
    let docs = vec![ferro_agent_api::ApplyDocument {
        source: "app.yaml".into(),
        document: 1,
        item: None,
        object: json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-1", "namespace": "default", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "nginx"}]}}),
    }];
    let r = t.api.handle(Request::Apply { documents: docs }).await;
    assert!(matches!(r, Response::Applied { .. }), "{r:?}");
    t.att
        .report(&report(
            AttachmentEvent::Add,
            "c1",
            Some(("default", "web-1")),
        ))
        .await
        .unwrap();
    t.att
        .report(&report(
            AttachmentEvent::Add,
            "c2",
            Some(("default", "ghost")),
        ))
        .await
        .unwrap();
    t.att.flush().await;
    let list = |kind: &str| Request::List {
        kind: kind.into(),
        namespace: None,
    };
    let Response::List { items, .. } = t.api.handle(list("att")).await else {
        panic!()
    };
    let labels: Vec<(String, Value)> = items
        .iter()
        .map(|i| {
            (
                i["spec"]["pod"].as_str().unwrap().to_string(),
                i["metadata"]["labels"].clone(),
            )
        })
        .collect();
    assert_eq!(
        labels,
        [
            ("ghost".to_string(), Value::Null),
            ("web-1".to_string(), json!({"app": "web"}))
        ]
    );
    let Response::Object { object } = t
        .api
        .handle(Request::Get {
            kind: "pods".into(),
            namespace: None,
            name: "web-1".into(),
        })
        .await
    else {
        panic!()
    };
    assert_eq!(object["status"]["podIP"], "10.244.1.2");
    assert_eq!(object["spec"]["nodeName"], "node-a");
    // nothing of it is stored in the Pod itself
    let raw = t
        .store
        .get("/ferro-cni/v1/pods/default/web-1")
        .await
        .unwrap()
        .unwrap();
    let raw: Value = serde_json::from_slice(&raw.value).unwrap();
    assert!(
        raw.get("status").is_none() && raw["spec"].get("nodeName").is_none(),
        "{raw}"
    );
}

#[tokio::test]
async fn a_record_made_before_its_veth_waits_for_it_then_is_forgotten() {
    let t = setup(&["vethc1"]).await;
    let pending = report(AttachmentEvent::Add, "c2", Some(("shop", "web-2")));
    assert_eq!(
        action(t.att.report_pending(&pending).await),
        Action::Created
    );
    let id = record_id("c2", "eth0");
    assert!(t.att.pending_path(&id).exists());
    // a resync while the ADD is still creating the veth keeps the record, and stores it
    let p = t.att.resync().await.unwrap();
    assert!(p.forget.is_empty(), "{p:?}");
    assert_eq!(t.att.count(), 1);
    assert_eq!(stored(&t).await.into_values().collect::<Vec<_>>(), ["c2"]);
    // the veth came: nothing to do
    set_links(&t, &["vethc1", "vethc2"]);
    assert_eq!(t.att.resync().await.unwrap(), Resync::default());
    // an ADD that never made its veth (nor sent its DEL): forgotten once the wait is over
    set_links(&t, &["vethc1"]);
    let marker = std::fs::File::options()
        .write(true)
        .open(t.att.pending_path(&id))
        .unwrap();
    marker
        .set_modified(std::time::SystemTime::now() - PENDING - Duration::from_secs(1))
        .unwrap();
    let p = t.att.resync().await.unwrap();
    assert_eq!(p.forget, std::slice::from_ref(&id));
    assert_eq!(t.att.count(), 0);
    assert!(!t.att.pending_path(&id).exists(), "the marker goes too");
    assert!(stored(&t).await.is_empty());
    // a DEL report (the ADD failed after its address request) takes record and marker back
    t.att.report_pending(&pending).await.unwrap();
    let del = report(AttachmentEvent::Del, "c2", None);
    assert_eq!(action(t.att.report(&del).await), Action::Deleted);
    assert!(!t.att.pending_path(&id).exists());
    assert_eq!(t.att.count(), 0);
    // a plain report of the same attachment (its veth exists) drops the marker
    t.att.report_pending(&pending).await.unwrap();
    t.att.report(&pending).await.unwrap();
    assert!(!t.att.pending_path(&id).exists());
}

#[tokio::test]
async fn the_store_writes_of_a_window_are_each_keys_last() {
    let t = setup(&[]).await;
    let obj = |cid: &str, pod: Option<(&str, &str)>| {
        t.att.object(&report(AttachmentEvent::Add, cid, pod))
    };
    let (a, b, b_moved) = (
        obj("c1", Some(("shop", "web-1"))),
        obj("c2", None),
        obj("c2", Some(("shop", "web-2"))),
    );
    let want = coalesce(vec![
        StoreOp::Put(Box::new(a.clone()), None),
        StoreOp::Put(Box::new(b.clone()), None),
        StoreOp::Delete(key_of(&a)),
        StoreOp::Put(Box::new(b_moved.clone()), Some(key_of(&b))),
    ]);
    let want: Vec<(String, Option<String>)> = want
        .into_iter()
        .map(|(k, v)| (k, v.map(|a| a.spec.container_id)))
        .collect();
    let mut expected = vec![
        (key_of(&a), None),
        (key_of(&b), None),
        (key_of(&b_moved), Some("c2".to_string())),
    ];
    expected.sort();
    assert_eq!(want, expected);
}

#[tokio::test]
async fn an_attachment_added_and_deleted_within_the_window_costs_the_store_nothing() {
    let t = setup(&["vethc1"]).await;
    let before = t.store.list("/ferro-cni/v1/attachments/").await.unwrap();
    t.att
        .report(&report(AttachmentEvent::Add, "c1", Some(("shop", "web-1"))))
        .await
        .unwrap();
    t.att
        .report(&report(AttachmentEvent::Del, "c1", None))
        .await
        .unwrap();
    t.att.flush().await;
    let after = t.store.list("/ferro-cni/v1/attachments/").await.unwrap();
    assert!(after.kvs.is_empty());
    assert_eq!(after.revision, before.revision, "no transaction at all");
}

#[tokio::test]
async fn a_window_larger_than_one_transaction_reaches_the_store_whole() {
    let t = setup(&[]).await;
    let n = 2 * MAX_TXN_OPS + 10;
    let ops: Vec<StoreOp> = (0..n)
        .map(|i| {
            let a = t.att.object(&report(
                AttachmentEvent::Add,
                &format!("c{i}"),
                Some(("shop", &format!("web-{i}"))),
            ));
            StoreOp::Put(Box::new(a), None)
        })
        .collect();
    let before = t.store.list("/ferro-cni/v1/attachments/").await.unwrap();
    t.att.writer.apply(ops).await;
    let after = t.store.list("/ferro-cni/v1/attachments/").await.unwrap();
    assert_eq!(after.kvs.len(), n);
    assert_eq!(after.revision - before.revision, 3, "three transactions");
}
