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

use ferro_cluster::resource::Attachment;
use ferro_cluster::Object;

use crate::model::{attachment_addrs, named_ports, Cluster, Key, Labels, NamedPort, Pod, Policy};

/// What a store key holds, for removals.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Held {
    Namespace(String),
    Pod(Key),
    Attachment(Key),
    Policy(Key),
    Node(String),
}

/// An attachment as the model uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Attached {
    pod: Key,
    node: String,
    addrs: Vec<IpAddr>,
}

/// A [`Cluster`] kept up to date from object changes.
#[derive(Debug, Default)]
pub struct LiveCluster {
    cluster: Cluster,
    /// By store key: what each key put holds.
    held: HashMap<String, Held>,
    /// The `Pod` resources' labels and named ports.
    pods: HashMap<Key, (Labels, Vec<NamedPort>)>,
    /// Attachments by store key.
    attachments: HashMap<String, Attached>,
    /// Each pod's attachments, by store key (in key order: the first gives the node).
    by_pod: HashMap<Key, BTreeSet<String>>,
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

    /// Object `o`, stored at `key`, was put (created or replaced). Kinds that do not matter
    /// to policy are ignored.
    pub fn put(&mut self, key: &str, o: &Object) {
        match o {
            Object::Namespace(n) => {
                let name = n.metadata.name.clone().unwrap_or_default();
                self.cluster
                    .set_namespace(&name, n.metadata.labels.clone().unwrap_or_default());
                self.hold(key, Held::Namespace(name));
            }
            Object::Pod(p) => {
                let pod = Key::new(
                    p.metadata.namespace.clone().unwrap_or_default(),
                    p.metadata.name.clone().unwrap_or_default(),
                );
                let v = (
                    p.metadata.labels.clone().unwrap_or_default(),
                    named_ports(p),
                );
                if self.pods.get(&pod) != Some(&v) {
                    self.pods.insert(pod.clone(), v);
                    self.dirty.insert(pod.clone());
                }
                self.hold(key, Held::Pod(pod));
            }
            Object::Attachment(a) => self.put_attachment(key, a),
            Object::NetworkPolicy(np) => {
                let pk = Key::new(
                    np.metadata.namespace.clone().unwrap_or_default(),
                    np.metadata.name.clone().unwrap_or_default(),
                );
                match Policy::compile(np) {
                    Ok(p) => self.cluster.add_policy(p),
                    Err(e) => self.cluster.add_invalid_policy(pk.clone(), e),
                }
                self.hold(key, Held::Policy(pk));
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
                self.hold(key, Held::Node(name));
            }
            _ => {}
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
        self.by_pod
            .entry(v.pod.clone())
            .or_default()
            .insert(key.to_string());
        self.held
            .insert(key.to_string(), Held::Attachment(v.pod.clone()));
        self.attachments.insert(key.to_string(), v);
    }

    /// The object stored at `key` was removed (unknown keys are ignored).
    pub fn remove(&mut self, key: &str) {
        let Some(held) = self.held.remove(key) else {
            return;
        };
        match held {
            Held::Namespace(n) => self.cluster.remove_namespace(&n),
            Held::Pod(k) => {
                self.pods.remove(&k);
                self.dirty.insert(k);
            }
            Held::Attachment(k) => {
                self.attachments.remove(key);
                if let Some(s) = self.by_pod.get_mut(&k) {
                    s.remove(key);
                    if s.is_empty() {
                        self.by_pod.remove(&k);
                    }
                }
                self.dirty.insert(k);
            }
            Held::Policy(k) => self.cluster.remove_policy(&k),
            Held::Node(n) => self.cluster.remove_node(&n),
        }
    }

    /// Records what `key` holds; a key that held something else before has it removed.
    fn hold(&mut self, key: &str, h: Held) {
        match self.held.get(key) {
            Some(old) if *old == h => {}
            Some(_) => {
                self.remove(key);
                self.held.insert(key.to_string(), h);
            }
            None => {
                self.held.insert(key.to_string(), h);
            }
        }
    }

    /// Rebuilds the marked pods from their `Pod` resource and attachments.
    fn settle(&mut self) {
        for key in std::mem::take(&mut self.dirty) {
            let atts: Vec<&Attached> = self
                .by_pod
                .get(&key)
                .into_iter()
                .flatten()
                .filter_map(|k| self.attachments.get(k))
                .collect();
            let Some(first) = atts.first() else {
                self.cluster.remove_pod(&key);
                continue;
            };
            let mut addrs: Vec<IpAddr> = Vec::new();
            for a in atts.iter().flat_map(|a| a.addrs.iter()) {
                if !addrs.contains(a) {
                    addrs.push(*a);
                }
            }
            let (labels, ports) = self.pods.get(&key).cloned().unwrap_or_default();
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

    /// How many store keys the model holds (tests).
    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn obj(v: serde_json::Value) -> Object {
        let k = ferro_cluster::Kind::from_type(
            v["apiVersion"].as_str().unwrap(),
            v["kind"].as_str().unwrap(),
        )
        .unwrap();
        Object::from_value(k, v).unwrap()
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
        let steps: Vec<(&str, Option<Object>)> = vec![
            ("p/a", Some(pod("a", json!({"app": "web"})))),
            ("a/a", Some(att("a-eth0", "a", "n1", "10.0.0.1"))),
            ("p/b", Some(pod("b", json!({"app": "db"})))),
            ("a/b", Some(att("b-eth0", "b", "n2", "10.0.0.2"))),
            ("np/1", Some(policy("deny-web", "web"))),
            // relabel, a second attachment, an address clash, removals
            ("p/a", Some(pod("a", json!({"app": "db"})))),
            ("a/a2", Some(att("a-net1", "a", "n1", "10.0.1.1"))),
            ("a/c", Some(att("c-eth0", "c", "n2", "10.0.0.1"))),
            ("a/a", None),
            ("a/a2", None),
            ("p/b", None),
            ("np/1", None),
            ("a/c", None),
        ];
        for (key, o) in steps {
            match &o {
                Some(o) => {
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
        // What is left: b's attachment (its Pod resource gone: no labels).
        let left: Vec<&Pod> = live.cluster().pods().collect();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].key, Key::new("x", "b"));
        assert!(left[0].labels.is_empty());
    }

    /// An address two pods claim stays the first's by key, and goes to the other when the
    /// first is gone.
    #[test]
    fn a_clashing_address_moves_to_the_remaining_pod() {
        let mut live = LiveCluster::new();
        live.put("a/b", &att("b-eth0", "b", "n1", "10.0.0.9"));
        live.put("a/a", &att("a-eth0", "a", "n1", "10.0.0.9"));
        let a: IpAddr = "10.0.0.9".parse().unwrap();
        let c = live.cluster();
        assert_eq!(c.pod_at(a).unwrap().key, Key::new("x", "a"));
        assert_eq!(c.problems().len(), 1, "{:?}", c.problems());
        assert!(c.pod(&Key::new("x", "b")).unwrap().addrs.is_empty());
        live.remove("a/a");
        let c = live.cluster();
        assert_eq!(c.pod_at(a).unwrap().key, Key::new("x", "b"));
        assert_eq!(c.pod(&Key::new("x", "b")).unwrap().addrs, vec![a]);
        assert!(c.problems().is_empty());
    }
}
