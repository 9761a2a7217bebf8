//! The inputs of every decision: namespaces with their labels, pods with their labels,
//! addresses, node and named ports, and the network policies, compiled once.
//!
//! A pod's addresses and node come from its `Attachment` records (what the plugins reported;
//! a `Pod` resource without attachments has no address and takes no part in traffic). Its
//! labels and named ports come from the `Pod` resource (none without one); a namespace's
//! labels from its `Namespace`, always with `kubernetes.io/metadata.name`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use ferro_cluster::k8s_openapi::api::core::v1::ContainerPort;
use ferro_cluster::k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort,
};
use ferro_cluster::k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use ferro_cluster::resource::Attachment;
use ferro_cluster::selector::Operator;
use ferro_cluster::validate::NAMESPACE_NAME_LABEL;
use ferro_cluster::{Object, Selector};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// The apiVersion of ferro-cni's own kinds.
pub const FERRO_API: &str = ferro_cluster::FERRO_API_VERSION;

/// Labels of a pod or namespace.
pub type Labels = BTreeMap<String, String>;

/// A pod (or a namespaced policy): namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Key {
    /// The namespace.
    pub namespace: Arc<str>,
    /// The name.
    pub name: Arc<str>,
}

impl Key {
    /// `namespace/name`.
    pub fn new(namespace: impl Into<Arc<str>>, name: impl Into<Arc<str>>) -> Key {
        Key {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// Parses `namespace/name`; a bare `name` is in `default`.
    pub fn parse(s: &str) -> Key {
        match s.split_once('/') {
            Some((ns, n)) => Key::new(ns, n),
            None => Key::new("default", s),
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A transport protocol a policy can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Proto {
    /// TCP (6).
    Tcp,
    /// UDP (17).
    Udp,
    /// SCTP (132).
    Sctp,
}

impl Proto {
    /// The IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            Proto::Tcp => 6,
            Proto::Udp => 17,
            Proto::Sctp => 132,
        }
    }

    /// From the Kubernetes spelling (`TCP`, `UDP`, `SCTP`; any case); `None` for others.
    pub fn parse(s: &str) -> Option<Proto> {
        match s.to_ascii_uppercase().as_str() {
            "TCP" => Some(Proto::Tcp),
            "UDP" => Some(Proto::Udp),
            "SCTP" => Some(Proto::Sctp),
            _ => None,
        }
    }

    /// From the IP protocol number.
    pub fn from_number(n: u8) -> Option<Proto> {
        match n {
            6 => Some(Proto::Tcp),
            17 => Some(Proto::Udp),
            132 => Some(Proto::Sctp),
            _ => None,
        }
    }

    /// A Kubernetes `protocol` field, TCP when absent.
    fn of(p: Option<&String>) -> Option<Proto> {
        p.map_or(Some(Proto::Tcp), |s| Proto::parse(s))
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "TCP",
            Proto::Udp => "UDP",
            Proto::Sctp => "SCTP",
        })
    }
}

/// A named container port of a pod.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NamedPort {
    /// Its name.
    pub name: String,
    /// Its protocol.
    pub proto: Proto,
    /// Its number.
    pub port: u16,
}

/// A pod as policy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pod {
    /// Namespace and name.
    pub key: Key,
    /// Its labels (shared with the cache's view of the pod).
    pub labels: Arc<Labels>,
    /// The node it runs on (empty when unknown).
    pub node: String,
    /// Its addresses, IPv4 first.
    pub addrs: Vec<IpAddr>,
    /// Its named ports.
    pub ports: Vec<NamedPort>,
}

impl Pod {
    /// The number of the port named `name` for `proto`.
    pub fn named_port(&self, name: &str, proto: Proto) -> Option<u16> {
        self.ports
            .iter()
            .find(|p| p.name == name && p.proto == proto)
            .map(|p| p.port)
    }
}

/// Which namespaces a peer's pods live in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Namespaces {
    /// The policy's own (no `namespaceSelector`).
    Own,
    /// Those whose labels match.
    Matching(Selector),
}

/// One peer of a rule (`from` / `to` entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    /// Pods: `podSelector` and/or `namespaceSelector` (both given: both must hold).
    Pods {
        /// The namespaces.
        namespaces: Namespaces,
        /// The pods in them (`None`: all).
        pods: Option<Selector>,
    },
    /// `ipBlock`: a CIDR minus its exceptions.
    Block {
        /// The CIDR.
        cidr: IpNet,
        /// The exceptions.
        except: Vec<IpNet>,
    },
}

impl Peer {
    /// Whether `addr` lies in this block (false for pod peers).
    pub fn block_contains(&self, addr: IpAddr) -> bool {
        match self {
            Peer::Block { cidr, except } => {
                cidr.contains(&addr) && !except.iter().any(|e| e.contains(&addr))
            }
            Peer::Pods { .. } => false,
        }
    }
}

/// Which ports a port entry allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortMatch {
    /// Every port of the protocol (`port` absent).
    Any,
    /// `port` (and `endPort`): an inclusive range.
    Range(u16, u16),
    /// A named port, resolved on the destination pod.
    Named(String),
}

/// One entry of a rule's `ports`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSpec {
    /// The protocol (TCP by default).
    pub proto: Proto,
    /// The ports.
    pub port: PortMatch,
}

/// One ingress or egress rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The peers (`from`/`to`); `None` when absent or empty: every address.
    pub peers: Option<Vec<Peer>>,
    /// The ports; `None` when absent or empty: every port of every protocol.
    pub ports: Option<Vec<PortSpec>>,
}

/// A direction of traffic, from a pod's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Direction {
    /// Traffic to the pod.
    Ingress,
    /// Traffic from the pod.
    Egress,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        })
    }
}

/// A NetworkPolicy, compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Namespace and name.
    pub key: Key,
    /// The pods it selects (in its namespace).
    pub selector: Selector,
    /// Ingress rules when the policy's types include Ingress (empty: deny all).
    pub ingress: Option<Vec<Rule>>,
    /// Egress rules when its types include Egress.
    pub egress: Option<Vec<Rule>>,
}

impl Policy {
    /// The rules of `dir`, when the policy isolates that direction.
    pub fn rules(&self, dir: Direction) -> Option<&[Rule]> {
        match dir {
            Direction::Ingress => self.ingress.as_deref(),
            Direction::Egress => self.egress.as_deref(),
        }
    }

    /// Compiles a NetworkPolicy (validated beforehand; anything that still does not parse
    /// is an error naming the field).
    pub fn compile(np: &NetworkPolicy) -> Result<Policy, String> {
        let key = Key::new(
            np.metadata.namespace.clone().unwrap_or_default(),
            np.metadata.name.clone().unwrap_or_default(),
        );
        let spec = np.spec.clone().unwrap_or_default();
        let selector = match &spec.pod_selector {
            Some(s) => Selector::parse(s).map_err(|e| format!("spec.podSelector.{}", e[0]))?,
            None => Selector::everything(),
        };
        let has_egress = spec.egress.as_ref().is_some_and(|e| !e.is_empty());
        let types: BTreeSet<String> = match &spec.policy_types {
            Some(t) if !t.is_empty() => t.iter().cloned().collect(),
            _ => {
                let mut t = BTreeSet::from(["Ingress".to_string()]);
                if has_egress {
                    t.insert("Egress".into());
                }
                t
            }
        };
        let ingress = if types.contains("Ingress") {
            let mut rules = Vec::new();
            for (i, r) in spec.ingress.iter().flatten().enumerate() {
                let at = format!("spec.ingress[{i}]");
                rules.push(rule(&at, "from", r.from.as_ref(), r.ports.as_ref())?);
            }
            Some(rules)
        } else {
            None
        };
        let egress = if types.contains("Egress") {
            let mut rules = Vec::new();
            for (i, r) in spec.egress.iter().flatten().enumerate() {
                let at = format!("spec.egress[{i}]");
                rules.push(rule(&at, "to", r.to.as_ref(), r.ports.as_ref())?);
            }
            Some(rules)
        } else {
            None
        };
        Ok(Policy {
            key,
            selector,
            ingress,
            egress,
        })
    }
}

fn rule(
    at: &str,
    peers_field: &str,
    peers: Option<&Vec<NetworkPolicyPeer>>,
    ports: Option<&Vec<NetworkPolicyPort>>,
) -> Result<Rule, String> {
    let peers = match peers {
        Some(list) if !list.is_empty() => {
            let mut out = Vec::new();
            for (i, p) in list.iter().enumerate() {
                out.push(peer(&format!("{at}.{peers_field}[{i}]"), p)?);
            }
            Some(out)
        }
        _ => None,
    };
    let ports = match ports {
        Some(list) if !list.is_empty() => {
            let mut out = Vec::new();
            for (i, p) in list.iter().enumerate() {
                out.push(port(&format!("{at}.ports[{i}]"), p)?);
            }
            Some(out)
        }
        _ => None,
    };
    Ok(Rule { peers, ports })
}

fn selector(
    at: &str,
    s: &ferro_cluster::k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
) -> Result<Selector, String> {
    Selector::parse(s).map_err(|e| format!("{at}.{}", e.join("; ")))
}

fn peer(at: &str, p: &NetworkPolicyPeer) -> Result<Peer, String> {
    if let Some(b) = &p.ip_block {
        let cidr: IpNet = b
            .cidr
            .parse()
            .map_err(|_| format!("{at}.ipBlock.cidr: {:?} is not a CIDR", b.cidr))?;
        let mut except = Vec::new();
        for (j, x) in b.except.iter().flatten().enumerate() {
            except.push(
                x.parse::<IpNet>()
                    .map_err(|_| format!("{at}.ipBlock.except[{j}]: {x:?} is not a CIDR"))?
                    .trunc(),
            );
        }
        return Ok(Peer::Block {
            cidr: cidr.trunc(),
            except,
        });
    }
    let namespaces = match &p.namespace_selector {
        Some(s) => Namespaces::Matching(selector(&format!("{at}.namespaceSelector"), s)?),
        None => Namespaces::Own,
    };
    let pods = match &p.pod_selector {
        Some(s) => Some(selector(&format!("{at}.podSelector"), s)?),
        None => None,
    };
    if matches!(namespaces, Namespaces::Own) && pods.is_none() {
        return Err(format!(
            "{at}: a peer needs podSelector, namespaceSelector or ipBlock"
        ));
    }
    Ok(Peer::Pods { namespaces, pods })
}

fn port(at: &str, p: &NetworkPolicyPort) -> Result<PortSpec, String> {
    let proto = Proto::of(p.protocol.as_ref())
        .ok_or_else(|| format!("{at}.protocol: {:?} is not TCP, UDP or SCTP", p.protocol))?;
    let num = |n: i32, field: &str| {
        u16::try_from(n)
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("{at}.{field}: {n} is not a port"))
    };
    let port = match &p.port {
        None => PortMatch::Any,
        Some(IntOrString::Int(n)) => {
            let start = num(*n, "port")?;
            let end = match p.end_port {
                Some(e) => num(e, "endPort")?,
                None => start,
            };
            if end < start {
                return Err(format!("{at}.endPort: {end} is below port {start}"));
            }
            PortMatch::Range(start, end)
        }
        Some(IntOrString::String(s)) => match s.parse::<i32>() {
            // "80" in a manifest is a name to Kubernetes only if not a number.
            Ok(n) => {
                let n = num(n, "port")?;
                PortMatch::Range(n, n)
            }
            Err(_) => PortMatch::Named(s.clone()),
        },
    };
    Ok(PortSpec { proto, port })
}

/// Everything a decision needs, as of one view of the cluster.
///
/// Built whole ([`Cluster::from_objects`]) or kept up to date object by object
/// ([`crate::live::LiveCluster`]): every change (a pod added, replaced or removed, a policy,
/// a namespace, a node) updates the indexes it touches and nothing else.
#[derive(Debug, Clone, Default)]
pub struct Cluster {
    namespaces: BTreeMap<String, Labels>,
    pods: BTreeMap<Key, Pod>,
    by_addr: HashMap<IpAddr, Key>,
    /// Every pod claiming an address (the first by key keeps it), and each pod's claims.
    claims: HashMap<IpAddr, Vec<Key>>,
    claimed: HashMap<Key, Vec<IpAddr>>,
    policies: BTreeMap<Key, Policy>,
    /// Policies that did not compile, with why.
    invalid: BTreeMap<Key, String>,
    nodes: BTreeMap<String, Vec<IpAddr>>,
    /// The label index: key -> value -> the pods with that label.
    by_label: HashMap<String, HashMap<String, BTreeSet<Key>>>,
    /// The namespaces holding pods, with how many.
    pod_namespaces: BTreeMap<Arc<str>, usize>,
}

/// The addresses of an attachment (`10.244.0.5/24` -> `10.244.0.5`).
pub(crate) fn attachment_addrs(a: &Attachment) -> impl Iterator<Item = IpAddr> + '_ {
    a.spec
        .addresses
        .iter()
        .filter_map(|s| s.split('/').next().and_then(|ip| ip.parse::<IpAddr>().ok()))
}

pub(crate) fn named_ports(ports: &[ContainerPort]) -> Vec<NamedPort> {
    let mut out = Vec::new();
    for cp in ports {
        let (Some(name), Some(proto), Ok(port)) = (
            cp.name.as_ref().filter(|n| !n.is_empty()),
            Proto::of(cp.protocol.as_ref()),
            u16::try_from(cp.container_port),
        ) else {
            continue;
        };
        out.push(NamedPort {
            name: name.clone(),
            proto,
            port,
        });
    }
    out
}

impl Cluster {
    /// An empty cluster.
    pub fn new() -> Cluster {
        Cluster::default()
    }

    /// Builds the view from the cluster's objects (any kinds; those that do not matter to
    /// policy are ignored).
    pub fn from_objects<'a>(objects: impl IntoIterator<Item = &'a Object>) -> Cluster {
        let mut live = crate::live::LiveCluster::new();
        for o in objects {
            live.put(&o.key(), o);
        }
        live.into_cluster()
    }

    /// Sets a namespace's labels (`kubernetes.io/metadata.name` is added).
    pub fn set_namespace(&mut self, name: &str, mut labels: Labels) {
        labels.insert(NAMESPACE_NAME_LABEL.into(), name.into());
        self.namespaces.insert(name.into(), labels);
    }

    /// Forgets a namespace's labels.
    pub fn remove_namespace(&mut self, name: &str) {
        self.namespaces.remove(name);
    }

    /// Adds (or replaces) a pod. An address another pod also has stays the pod's first by
    /// key (the other pod is left without it), and the clash is reported in
    /// [`Cluster::problems`].
    pub fn add_pod(&mut self, mut pod: Pod) {
        pod.addrs.sort_by_key(|a| (a.is_ipv6(), *a));
        pod.addrs.dedup();
        self.remove_pod(&pod.key);
        let key = pod.key.clone();
        let addrs = std::mem::take(&mut pod.addrs);
        self.index(&pod);
        self.pods.insert(key.clone(), pod);
        for a in &addrs {
            let c = self.claims.entry(*a).or_default();
            if let Err(at) = c.binary_search(&key) {
                c.insert(at, key.clone());
            }
        }
        self.claimed.insert(key.clone(), addrs.clone());
        for a in addrs {
            self.settle(a);
        }
        self.refilter(&key);
    }

    /// Removes a pod; what it was.
    pub fn remove_pod(&mut self, key: &Key) -> Option<Pod> {
        let old = self.pods.remove(key)?;
        self.unindex(&old);
        for a in self.claimed.remove(key).unwrap_or_default() {
            if let Some(c) = self.claims.get_mut(&a) {
                c.retain(|k| k != key);
                if c.is_empty() {
                    self.claims.remove(&a);
                }
            }
            self.settle(a);
        }
        Some(old)
    }

    /// Gives address `a` to its first claimant by key; every claimant's addresses follow.
    fn settle(&mut self, a: IpAddr) {
        let claimants: Vec<Key> = self.claims.get(&a).cloned().unwrap_or_default();
        match claimants.first() {
            Some(k) => {
                self.by_addr.insert(a, k.clone());
            }
            None => {
                self.by_addr.remove(&a);
            }
        }
        for k in &claimants {
            self.refilter(k);
        }
    }

    /// A pod's addresses: those it claims and holds.
    fn refilter(&mut self, key: &Key) {
        let Some(p) = self.pods.get_mut(key) else {
            return;
        };
        p.addrs = self
            .claimed
            .get(key)
            .into_iter()
            .flatten()
            .filter(|a| self.by_addr.get(a) == Some(key))
            .copied()
            .collect();
    }

    fn index(&mut self, pod: &Pod) {
        for (k, v) in pod.labels.iter() {
            self.by_label
                .entry(k.clone())
                .or_default()
                .entry(v.clone())
                .or_default()
                .insert(pod.key.clone());
        }
        *self
            .pod_namespaces
            .entry(pod.key.namespace.clone())
            .or_default() += 1;
    }

    fn unindex(&mut self, pod: &Pod) {
        for (k, v) in pod.labels.iter() {
            if let Some(values) = self.by_label.get_mut(k) {
                if let Some(keys) = values.get_mut(v) {
                    keys.remove(&pod.key);
                    if keys.is_empty() {
                        values.remove(v);
                    }
                }
                if values.is_empty() {
                    self.by_label.remove(k);
                }
            }
        }
        if let Some(n) = self.pod_namespaces.get_mut(&pod.key.namespace) {
            *n -= 1;
            if *n == 0 {
                self.pod_namespaces.remove(&pod.key.namespace);
            }
        }
    }

    /// The pods that may match `sel`, by key, from the label index: those carrying the label
    /// one of its `In` or `Exists` requirements asks for (the requirement with the fewest
    /// such pods). `None` when no requirement can use the index (every pod may match).
    fn label_candidates(&self, sel: &Selector) -> Option<Vec<&Key>> {
        let mut best: Option<Vec<&BTreeSet<Key>>> = None;
        for r in sel.requirements() {
            let values = self.by_label.get(&r.key);
            let lists: Vec<&BTreeSet<Key>> = match &r.op {
                Operator::In(set) => set
                    .iter()
                    .filter_map(|v| values.and_then(|m| m.get(v)))
                    .collect(),
                Operator::Exists => values.into_iter().flat_map(|m| m.values()).collect(),
                Operator::NotIn(_) | Operator::DoesNotExist => continue,
            };
            let size = |l: &[&BTreeSet<Key>]| l.iter().map(|s| s.len()).sum::<usize>();
            if best.as_ref().is_none_or(|b| size(&lists) < size(b)) {
                best = Some(lists);
            }
        }
        let lists = best?;
        let mut keys: Vec<&Key> = lists.into_iter().flatten().collect();
        if keys.len() > 1 {
            keys.sort_unstable();
            keys.dedup();
        }
        Some(keys)
    }

    /// The pods of namespace `ns`, by key.
    fn pods_in(&self, ns: &str) -> impl Iterator<Item = &Pod> {
        let ns: Arc<str> = ns.into();
        self.pods
            .range(Key::new(ns.clone(), "")..)
            .take_while(move |(k, _)| k.namespace == ns)
            .map(|(_, p)| p)
    }

    /// Adds (or replaces) a policy.
    pub fn add_policy(&mut self, p: Policy) {
        self.invalid.remove(&p.key);
        self.policies.insert(p.key.clone(), p);
    }

    /// Records a policy that does not compile (it is left out, and reported in
    /// [`Cluster::problems`]).
    pub fn add_invalid_policy(&mut self, key: Key, why: String) {
        self.policies.remove(&key);
        self.invalid.insert(key, why);
    }

    /// Removes a policy (valid or not).
    pub fn remove_policy(&mut self, key: &Key) {
        self.policies.remove(key);
        self.invalid.remove(key);
    }

    /// Records a node's addresses.
    pub fn set_node(&mut self, name: &str, addrs: Vec<IpAddr>) {
        self.nodes.insert(name.into(), addrs);
    }

    /// Forgets a node.
    pub fn remove_node(&mut self, name: &str) {
        self.nodes.remove(name);
    }

    /// The labels of namespace `ns` (only `kubernetes.io/metadata.name` when it has no
    /// `Namespace` object).
    pub fn namespace_labels(&self, ns: &str) -> Labels {
        self.namespaces
            .get(ns)
            .cloned()
            .unwrap_or_else(|| Labels::from([(NAMESPACE_NAME_LABEL.to_string(), ns.to_string())]))
    }

    /// Every pod with an address, by key.
    pub fn pods(&self) -> impl Iterator<Item = &Pod> {
        self.pods.values()
    }

    /// One pod.
    pub fn pod(&self, key: &Key) -> Option<&Pod> {
        self.pods.get(key)
    }

    /// The pod that has `addr`.
    pub fn pod_at(&self, addr: IpAddr) -> Option<&Pod> {
        self.by_addr.get(&addr).and_then(|k| self.pods.get(k))
    }

    /// Every policy, by key.
    pub fn policies(&self) -> impl Iterator<Item = &Policy> {
        self.policies.values()
    }

    /// One policy.
    pub fn policy(&self, key: &Key) -> Option<&Policy> {
        self.policies.get(key)
    }

    /// The addresses of node `name`.
    pub fn node_addrs(&self, name: &str) -> &[IpAddr] {
        self.nodes.get(name).map_or(&[], Vec::as_slice)
    }

    /// What could not be used (policies that do not compile, address clashes).
    pub fn problems(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .invalid
            .iter()
            .map(|(k, e)| format!("NetworkPolicy {k}: {e} (ignored)"))
            .collect();
        let mut clashes: Vec<(&IpAddr, &Vec<Key>)> =
            self.claims.iter().filter(|(_, c)| c.len() > 1).collect();
        clashes.sort();
        for (a, c) in clashes {
            for other in &c[1..] {
                out.push(format!(
                    "pods {} and {other} both have address {a}: kept for {}",
                    c[0], c[0]
                ));
            }
        }
        out
    }

    /// The policies of `pod`'s namespace that select it and isolate `dir`, by key.
    pub fn isolating(&self, pod: &Pod, dir: Direction) -> Vec<&Policy> {
        let prefix = Key::new(pod.key.namespace.clone(), String::new());
        self.policies
            .range(prefix..)
            .take_while(|(k, _)| k.namespace == pod.key.namespace)
            .map(|(_, p)| p)
            .filter(|p| p.rules(dir).is_some() && p.selector.matches(&pod.labels))
            .collect()
    }

    /// Whether `peer` (of a policy in namespace `policy_ns`) matches pod `pod`.
    pub fn peer_matches_pod(&self, peer: &Peer, policy_ns: &str, pod: &Pod) -> bool {
        match peer {
            Peer::Pods { namespaces, pods } => {
                let ns_ok = match namespaces {
                    Namespaces::Own => *pod.key.namespace == *policy_ns,
                    Namespaces::Matching(s) => {
                        s.matches(&self.namespace_labels(&pod.key.namespace))
                    }
                };
                ns_ok && pods.as_ref().is_none_or(|s| s.matches(&pod.labels))
            }
            Peer::Block { .. } => pod.addrs.iter().any(|a| peer.block_contains(*a)),
        }
    }

    /// The pods (with addresses) `peer` selects, by key.
    pub fn peer_pods<'a>(&'a self, peer: &Peer, policy_ns: &str) -> Vec<&'a Pod> {
        match peer {
            Peer::Pods {
                namespaces: Namespaces::Own,
                pods,
            } => match pods.as_ref().and_then(|s| self.label_candidates(s)) {
                Some(keys) => keys
                    .into_iter()
                    .filter(|k| *k.namespace == *policy_ns)
                    .filter_map(|k| self.pods.get(k))
                    .filter(|p| self.peer_matches_pod(peer, policy_ns, p))
                    .collect(),
                None => self
                    .pods_in(policy_ns)
                    .filter(|p| self.peer_matches_pod(peer, policy_ns, p))
                    .collect(),
            },
            Peer::Pods {
                namespaces: Namespaces::Matching(sel),
                pods,
            } => {
                let namespaces: BTreeSet<&str> = self
                    .pod_namespaces
                    .keys()
                    .map(|n| &**n)
                    .filter(|ns| sel.matches(&self.namespace_labels(ns)))
                    .collect();
                let pod_ok = |p: &Pod| pods.as_ref().is_none_or(|s| s.matches(&p.labels));
                match pods.as_ref().and_then(|s| self.label_candidates(s)) {
                    Some(keys) => keys
                        .into_iter()
                        .filter(|k| namespaces.contains(&*k.namespace))
                        .filter_map(|k| self.pods.get(k))
                        .filter(|p| pod_ok(p))
                        .collect(),
                    None => namespaces
                        .iter()
                        .flat_map(|ns| self.pods_in(ns))
                        .filter(|p| pod_ok(p))
                        .collect(),
                }
            }
            Peer::Block { .. } => self
                .pods
                .values()
                .filter(|p| p.addrs.iter().any(|a| peer.block_contains(*a)))
                .collect(),
        }
    }
}

/// Builds the view from the objects of a snapshot given as `(kind, JSON)` values (tests).
pub fn cluster_of_values(values: &[serde_json::Value]) -> Result<Cluster, String> {
    let mut objects = Vec::new();
    for v in values {
        objects.push(Object::from_typed(v.clone())?);
    }
    Ok(Cluster::from_objects(&objects))
}
