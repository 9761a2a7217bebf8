//! The cluster kept up to date object by object: [`LiveCluster`] takes the store's objects as
//! they are put and removed, and changes only the pods, policies, namespaces and nodes they
//! concern, so a change costs what it touches, not the size of the cluster.
//!
//! A pod of the model joins two kinds of objects: its `Pod` resource (labels, named ports)
//! and its `Attachment` records (node, addresses); a pod without attachments takes no part
//! in traffic and is not in the model. Putting or removing either marks the pod; [`LiveCluster::cluster`]
//! rebuilds the marked pods before it answers.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use ferro_cluster::resource::Attachment;
use ferro_cluster::{keys, Kind, Object, PodView};

use crate::model::{attachment_addrs, named_ports, Cluster, Key, Labels, NamedPort, Pod, Policy};

/// An attachment as the model uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Attached {
    pod: Key,
    node: String,
    addrs: Vec<IpAddr>,
}

/// A `Pod` resource's labels and named ports.
type PodFacts = (Arc<Labels>, Vec<NamedPort>);

/// A [`Cluster`] kept up to date from object changes.
///
/// What a pod's `Pod` resource says (labels, named ports) is held once: here while the pod
/// has no attachment, in the cluster's pod once it has one.
#[derive(Debug, Default)]
pub struct LiveCluster {
    cluster: Cluster,
    /// The pods with a `Pod` resource: its facts while they are not in the cluster (`None`
    /// once they moved into the cluster's pod).
    resources: HashMap<Key, Option<PodFacts>>,
    /// Attachments by store key.
    attachments: HashMap<String, Attached>,
    /// Each pod's attachments, by store key, sorted (the first gives the node).
    by_pod: HashMap<Key, Vec<String>>,
    /// Pods to rebuild.
    dirty: BTreeSet<Key>,
}

impl LiveCluster {
    /// An empty cluster.
    pub fn new() -> LiveCluster {
        LiveCluster::default()
    }

    /// The cluster, every change so far applied.
    pub fn cluster(&mut self) -> &Cluster {
        self.settle();
        &self.cluster
    }

    /// The cluster as of the last [`LiveCluster::cluster`] call (changes since not yet
    /// applied to its pods).
    pub fn settled(&self) -> &Cluster {
        &self.cluster
    }

    /// The cluster, consumed.
    pub fn into_cluster(mut self) -> Cluster {
        self.settle();
        self.cluster
    }

    /// Object `o`, stored at `key` (its store key), was put (created or replaced). Kinds
    /// that do not matter to policy are ignored.
    pub fn put(&mut self, key: &str, o: &Object) {
        match o {
            Object::Namespace(n) => {
                let name = n.metadata.name.clone().unwrap_or_default();
                self.cluster
                    .set_namespace(&name, n.metadata.labels.clone().unwrap_or_default());
            }
            Object::Pod(p) => self.put_pod(&PodView::from(&**p)),
            Object::Attachment(a) => self.put_attachment(key, a),
            Object::NetworkPolicy(np) => {
                let pk = Key::new(
                    np.metadata.namespace.clone().unwrap_or_default(),
                    np.metadata.name.clone().unwrap_or_default(),
                );
                match Policy::compile(np) {
                    Ok(p) => self.cluster.add_policy(p),
                    Err(e) => self.cluster.add_invalid_policy(pk, e),
                }
            }
            Object::Node(n) => {
                let name = n.metadata.name.clone().unwrap_or_default();
                let addrs = n
                    .spec
                    .addresses
                    .iter()
                    .filter_map(|a| a.parse().ok())
                    .collect();
                self.cluster.set_node(&name, addrs);
            }
            _ => {}
        }
    }

    /// Pod `p` was put (created or replaced).
    pub fn put_pod(&mut self, p: &PodView) {
        let pod = Key::new(p.namespace.clone(), p.name.clone());
        let ports = named_ports(&p.ports);
        let same = match self.resources.get(&pod) {
            Some(Some((labels, held))) => *labels == p.labels && *held == ports,
            Some(None) => self
                .cluster
                .pod(&pod)
                .is_some_and(|c| c.labels == p.labels && c.ports == ports),
            None => false,
        };
        if !same {
            self.resources
                .insert(pod.clone(), Some((p.labels.clone(), ports)));
            self.dirty.insert(pod);
        }
    }

    /// Attachment `a`, stored at `key`, was put.
    pub fn put_attachment(&mut self, key: &str, a: &Attachment) {
        let ns = a.metadata.namespace.clone().unwrap_or_default();
        let name = a
            .spec
            .pod
            .clone()
            .filter(|p| !p.is_empty())
            .or_else(|| a.metadata.name.clone())
            .unwrap_or_default();
        let mut addrs: Vec<IpAddr> = Vec::new();
        for ip in attachment_addrs(a) {
            if !addrs.contains(&ip) {
                addrs.push(ip);
            }
        }
        let v = Attached {
            pod: Key::new(ns, name),
            node: a.spec.node.clone(),
            addrs,
        };
        if self.attachments.get(key) == Some(&v) {
            return;
        }
        self.remove(key);
        self.dirty.insert(v.pod.clone());
        let list = self.by_pod.entry(v.pod.clone()).or_default();
        if let Err(at) = list.binary_search_by(|k| k.as_str().cmp(key)) {
            list.insert(at, key.to_string());
        }
        self.attachments.insert(key.to_string(), v);
    }

    /// The object stored at `key` was removed (keys the model does not hold are ignored).
    pub fn remove(&mut self, key: &str) {
        if let Some(a) = self.attachments.remove(key) {
            if let Some(list) = self.by_pod.get_mut(&a.pod) {
                list.retain(|k| k != key);
                if list.is_empty() {
                    self.by_pod.remove(&a.pod);
                }
            }
            self.dirty.insert(a.pod);
            return;
        }
        match keys::parse(key) {
            Some((Kind::Namespace, _, name)) => self.cluster.remove_namespace(name),
            Some((Kind::Node, _, name)) => self.cluster.remove_node(name),
            Some((Kind::NetworkPolicy, Some(ns), name)) => {
                self.cluster.remove_policy(&Key::new(ns, name));
            }
            Some((Kind::Pod, Some(ns), name)) => {
                let k = Key::new(ns, name);
                if self.resources.remove(&k).is_some() {
                    self.dirty.insert(k);
                }
            }
            _ => {}
        }
    }

    /// Rebuilds the marked pods from their `Pod` resource and attachments.
    fn settle(&mut self) {
        for key in std::mem::take(&mut self.dirty) {
            let old = self.cluster.remove_pod(&key);
            // The resource's facts: held here, or in the pod just removed.
            let facts = self.resources.get_mut(&key).map(|slot| {
                slot.take()
                    .or_else(|| old.map(|p| (p.labels, p.ports)))
                    .unwrap_or_default()
            });
            let atts: Vec<&Attached> = self
                .by_pod
                .get(&key)
                .into_iter()
                .flatten()
                .filter_map(|k| self.attachments.get(k))
                .collect();
            let Some(first) = atts.first() else {
                if let (Some(slot), Some(f)) = (self.resources.get_mut(&key), facts) {
                    *slot = Some(f);
                }
                continue;
            };
            let mut addrs: Vec<IpAddr> = Vec::new();
            for a in atts.iter().flat_map(|a| a.addrs.iter()) {
                if !addrs.contains(a) {
                    addrs.push(*a);
                }
            }
            let (labels, ports) = facts.unwrap_or_default();
            let pod = Pod {
                key,
                labels,
                node: first.node.clone(),
                addrs,
                ports,
            };
            self.cluster.add_pod(pod);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn obj(v: serde_json::Value) -> Object {
        Object::from_typed(v).unwrap()
    }

    fn pod(name: &str, labels: serde_json::Value) -> Object {
        obj(json!({"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": name, "namespace": "x", "labels": labels}}))
    }

    fn att(name: &str, pod: &str, node: &str, addr: &str) -> Object {
        obj(
            json!({"apiVersion": "ferro-cni.io/v1", "kind": "Attachment",
                   "metadata": {"name": name, "namespace": "x"},
                   "spec": {"node": node, "pod": pod, "containerID": name, "interface": "eth0",
                            "addresses": [format!("{addr}/24")]}}),
        )
    }

    fn policy(name: &str, app: &str) -> Object {
        obj(
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                   "metadata": {"name": name, "namespace": "x"},
                   "spec": {"podSelector": {"matchLabels": {"app": app}}, "ingress": []}}),
        )
    }

    /// The model after each step equals the one built whole from the same objects.
    #[test]
    fn changes_give_the_model_built_whole() {
        let mut live = LiveCluster::new();
        let mut store: BTreeMap<String, Object> = BTreeMap::new();
        let pk = |n: &str| keys::object(Kind::Pod, Some("x"), n);
        let ak = |n: &str| keys::object(Kind::Attachment, Some("x"), n);
        let nk = |n: &str| keys::object(Kind::NetworkPolicy, Some("x"), n);
        let steps: Vec<(String, Option<Object>)> = vec![
            (pk("a"), Some(pod("a", json!({"app": "web"})))),
            (ak("a-eth0"), Some(att("a-eth0", "a", "n1", "10.0.0.1"))),
            (pk("b"), Some(pod("b", json!({"app": "db"})))),
            (ak("b-eth0"), Some(att("b-eth0", "b", "n2", "10.0.0.2"))),
            (nk("deny-web"), Some(policy("deny-web", "web"))),
            // relabel, a second attachment, an address clash, removals
            (pk("a"), Some(pod("a", json!({"app": "db"})))),
            (ak("a-net1"), Some(att("a-net1", "a", "n1", "10.0.1.1"))),
            (ak("c-eth0"), Some(att("c-eth0", "c", "n2", "10.0.0.1"))),
            (ak("a-eth0"), None),
            (pk("a"), None),
            (ak("a-net1"), None),
            (pk("b"), None),
            (nk("deny-web"), None),
            (ak("c-eth0"), None),
            // a Pod resource back for b, whose attachment stayed
            (pk("b"), Some(pod("b", json!({"app": "web"})))),
        ];
        for (key, o) in steps {
            let key = key.as_str();
            match &o {
                Some(o) => {
                    assert_eq!(o.key(), key);
                    live.put(key, o);
                    store.insert(key.to_string(), o.clone());
                }
                None => {
                    live.remove(key);
                    store.remove(key);
                }
            }
            let whole = {
                let mut l = LiveCluster::new();
                for (k, o) in &store {
                    l.put(k, o);
                }
                l.into_cluster()
            };
            let c = live.cluster();
            let pods = |c: &Cluster| c.pods().cloned().collect::<Vec<_>>();
            assert_eq!(pods(c), pods(&whole), "after {key}");
            assert_eq!(c.problems(), whole.problems(), "after {key}");
            let pols = |c: &Cluster| c.policies().map(|p| p.key.clone()).collect::<Vec<_>>();
            assert_eq!(pols(c), pols(&whole), "after {key}");
            for a in ["10.0.0.1", "10.0.0.2", "10.0.1.1"] {
                let a: IpAddr = a.parse().unwrap();
                assert_eq!(
                    c.pod_at(a).map(|p| p.key.clone()),
                    whole.pod_at(a).map(|p| p.key.clone()),
                    "{a} after {key}"
                );
            }
        }
        // What is left: b's attachment, with its Pod resource's new labels.
        let left: Vec<&Pod> = live.cluster().pods().collect();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].key, Key::new("x", "b"));
        assert_eq!(left[0].labels.get("app").map(String::as_str), Some("web"));
    }

    /// An address two pods claim stays the first's by key, and goes to the other when the
    /// first is gone.
    #[test]
    fn a_clashing_address_moves_to_the_remaining_pod() {
        let mut live = LiveCluster::new();
        let (a_key, b_key) = (
            keys::object(Kind::Attachment, Some("x"), "a-eth0"),
            keys::object(Kind::Attachment, Some("x"), "b-eth0"),
        );
        live.put(&b_key, &att("b-eth0", "b", "n1", "10.0.0.9"));
        live.put(&a_key, &att("a-eth0", "a", "n1", "10.0.0.9"));
        let a: IpAddr = "10.0.0.9".parse().unwrap();
        let c = live.cluster();
        assert_eq!(c.pod_at(a).unwrap().key, Key::new("x", "a"));
        assert_eq!(c.problems().len(), 1, "{:?}", c.problems());
        assert!(c.pod(&Key::new("x", "b")).unwrap().addrs.is_empty());
        live.remove(&a_key);
        let c = live.cluster();
        assert_eq!(c.pod_at(a).unwrap().key, Key::new("x", "b"));
        assert_eq!(c.pod(&Key::new("x", "b")).unwrap().addrs, vec![a]);
        assert!(c.problems().is_empty());
    }
}
