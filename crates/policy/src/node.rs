//! What one node enforces: for each of its pods, which *class* it belongs to per direction,
//! and for each class the elements of what it allows, per address family.
//!
//! A node enforces ingress and egress of its own pods only (the other end's node enforces
//! the other direction). A pod isolated for a direction belongs to the class named after
//! what decides its rules: the direction, its namespace, the policies isolating it and (for
//! ingress) how it resolves the named ports those policies use. Pods with the same class
//! share one set; a change of labels that leaves a pod's class alone rewrites nothing of
//! it, and a change of the cluster (a pod starting elsewhere, a policy edited) rewrites only
//! the elements of the classes it touches.
//!
//! A class's elements are `peer-addresses . protocol . port` boxes (see [`crate::space`]):
//! the union of what its rules allow, flattened. The decision they encode is the one of
//! [`crate::decide`](mod@crate::decide); the unit tests check the two agree.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::net::IpAddr;

use sha2::{Digest, Sha256};

use crate::model::{Cluster, Direction, Key, Peer, Pod, PortMatch, Rule};
use crate::space::{decompose, number, union, Elem, Family, Service, Span};

/// What decides a class: every pod with the same key has the same rules.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClassKey {
    /// The direction.
    pub dir: Direction,
    /// The pods' namespace.
    pub namespace: String,
    /// The policies isolating them for `dir`, by name.
    pub policies: Vec<String>,
    /// Ingress: the named ports of those rules and what they resolve to on the pod
    /// (`(name, protocol number, port)`; port 0 when the pod does not have it).
    pub named: Vec<(String, u8, u16)>,
}

impl ClassKey {
    /// The class's name: `in-` or `eg-` and 12 hex digits of a hash of the key.
    pub fn name(&self) -> String {
        let mut h = Sha256::new();
        h.update(format!("{:?}", self).as_bytes());
        let d = h.finalize();
        let hex: String = d[..6].iter().map(|b| format!("{b:02x}")).collect();
        let dir = match self.dir {
            Direction::Ingress => "in",
            Direction::Egress => "eg",
        };
        format!("{dir}-{hex}")
    }

    /// What the class is, for comments: `ingress x: allow-a, deny-all`.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "{} {}: {}",
            self.dir,
            self.namespace,
            self.policies.join(", ")
        );
        if !self.named.is_empty() {
            let named: Vec<String> = self
                .named
                .iter()
                .map(|(n, _, p)| format!("{n}={p}"))
                .collect();
            let _ = write!(s, " ({})", named.join(", "));
        }
        s
    }
}

/// A class: its key and its elements per family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Class {
    /// What decides it.
    pub key: ClassKey,
    /// IPv4 elements (peer addresses, protocols, ports), disjoint and sorted.
    pub v4: Vec<Elem>,
    /// IPv6 elements.
    pub v6: Vec<Elem>,
}

impl Class {
    /// Whether the class allows the peer `addr` with `proto` and `port` (0 for protocols
    /// without ports).
    pub fn allows(&self, addr: IpAddr, proto: u8, port: u16) -> bool {
        let elems = match Family::of(addr) {
            Family::V4 => &self.v4,
            Family::V6 => &self.v6,
        };
        let n = number(addr);
        elems.iter().any(|e| e.contains(n, proto, port))
    }

    /// The elements of `family`.
    pub fn elems(&self, family: Family) -> &[Elem] {
        match family {
            Family::V4 => &self.v4,
            Family::V6 => &self.v6,
        }
    }
}

/// One of the node's pods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalPod {
    /// Namespace and name.
    pub key: Key,
    /// Its addresses.
    pub addrs: Vec<IpAddr>,
    /// Its ingress class, when isolated for ingress.
    pub ingress: Option<String>,
    /// Its egress class, when isolated for egress.
    pub egress: Option<String>,
}

impl LocalPod {
    /// The class of `dir`.
    pub fn class(&self, dir: Direction) -> Option<&str> {
        match dir {
            Direction::Ingress => self.ingress.as_deref(),
            Direction::Egress => self.egress.as_deref(),
        }
    }
}

/// Everything one node enforces.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodePolicy {
    /// The node's pods, by key.
    pub pods: BTreeMap<Key, LocalPod>,
    /// The classes its pods belong to, by name.
    pub classes: BTreeMap<String, Class>,
    /// The node's own addresses (ingress from them is always allowed).
    pub node_addrs: Vec<IpAddr>,
}

impl NodePolicy {
    /// The local pod with address `a`.
    pub fn pod_at(&self, a: IpAddr) -> Option<&LocalPod> {
        self.pods.values().find(|p| p.addrs.contains(&a))
    }

    /// Whether the node lets a new connection from `src` to `dst` (`proto`, destination
    /// `port`, 0 without ports) through, as its sets would: the local source's egress
    /// class and the local destination's ingress class must both allow it. Ends the node
    /// does not hold are not its to check.
    pub fn allows(&self, src: IpAddr, dst: IpAddr, proto: u8, port: u16) -> bool {
        let sp = self.pod_at(src);
        let dp = self.pod_at(dst);
        if sp.is_some() && sp.map(|p| &p.key) == dp.map(|p| &p.key) {
            return true;
        }
        let check = |pod: Option<&LocalPod>, dir: Direction, peer: IpAddr| match pod
            .and_then(|p| p.class(dir))
            .and_then(|c| self.classes.get(c))
        {
            Some(class) => class.allows(peer, proto, port),
            None => true,
        };
        let egress = check(sp, Direction::Egress, dst);
        let ingress = self.node_addrs.contains(&src) || check(dp, Direction::Ingress, src);
        egress && ingress
    }
}

/// Set sizes under which a renamed class is always cheap to carry (the kernel's work is small
/// either way).
const CARRY_SMALL: usize = 256;

impl NodePolicy {
    /// Keeps the names `prev` gave its classes where a class of `self` is new only by name:
    /// a class whose key changed (a policy added to the ones isolating its pods, one
    /// removed) takes over the set of the class its pods had, when that class is gone and
    /// the elements differ little. The node then changes a few elements of a set it has
    /// instead of creating the class's whole set again and deleting the old one: in the
    /// kernel's interval sets, removing an element costs time that grows with the set, so a
    /// class is carried only when at most one element of its interval sets goes (or both are
    /// small, or the elements removed are single addresses, which the kernel hashes);
    /// otherwise it gets its own new set.
    pub fn carry_names(&mut self, prev: &NodePolicy) {
        let fresh: Vec<String> = self
            .classes
            .keys()
            .filter(|n| !prev.classes.contains_key(*n))
            .cloned()
            .collect();
        if fresh.is_empty() {
            return;
        }
        let mut free: std::collections::BTreeSet<&String> = prev
            .classes
            .keys()
            .filter(|n| !self.classes.contains_key(*n))
            .collect();
        let mut renames: BTreeMap<String, String> = BTreeMap::new();
        for name in fresh {
            let class = &self.classes[&name];
            let dir = class.key.dir;
            // The old class of the pods now in this one.
            let old = self
                .pods
                .values()
                .filter(|p| p.class(dir) == Some(name.as_str()))
                .filter_map(|p| prev.pods.get(&p.key)?.class(dir))
                .find(|o| free.contains(&o.to_string()));
            let Some(old) = old.map(str::to_string) else {
                continue;
            };
            let before = &prev.classes[&old];
            if before.key.namespace != class.key.namespace || !cheap_to_carry(before, class) {
                continue;
            }
            free.remove(&old);
            renames.insert(name, old);
        }
        for (new, old) in renames {
            if let Some(c) = self.classes.remove(&new) {
                self.classes.insert(old.clone(), c);
            }
            for p in self.pods.values_mut() {
                for c in [&mut p.ingress, &mut p.egress] {
                    if c.as_deref() == Some(new.as_str()) {
                        *c = Some(old.clone());
                    }
                }
            }
        }
    }
}

/// Whether turning `before`'s elements into `after`'s is cheaper than a new set.
fn cheap_to_carry(before: &Class, after: &Class) -> bool {
    let (old, new) = (
        before.v4.len() + before.v6.len(),
        after.v4.len() + after.v6.len(),
    );
    if old + new <= CARRY_SMALL {
        return true;
    }
    // Only removals from the interval set cost time growing with the set.
    let gone = [Family::V4, Family::V6]
        .iter()
        .map(|f| {
            let now: std::collections::BTreeSet<&Elem> = after.elems(*f).iter().collect();
            before
                .elems(*f)
                .iter()
                .filter(|e| !now.contains(e))
                .filter(|e| crate::ruleset::place(e).0 == crate::ruleset::SetKind::Ranges)
                .count()
        })
        .sum::<usize>();
    gone <= 1
}

impl NodePolicy {
    /// Whether an existing connection from `src` to `dst` (its real destination, after
    /// any DNAT; `proto`, destination `port`, 0 without ports) must be cut: one of its ends
    /// is a pod of this node, the node's own addresses (`local`, where traffic is not
    /// forwarded, so not the policy's) are neither end, and the sets deny it.
    pub fn cuts(
        &self,
        local: &std::collections::HashSet<IpAddr>,
        src: IpAddr,
        dst: IpAddr,
        proto: u8,
        port: u16,
    ) -> bool {
        if local.contains(&src) || local.contains(&dst) {
            return false;
        }
        if self.pod_at(src).is_none() && self.pod_at(dst).is_none() {
            return false;
        }
        !self.allows(src, dst, proto, port)
    }
}

/// Every address of both families.
fn everything() -> [(Family, Span); 2] {
    [
        (Family::V4, Span::new(0, Family::V4.max())),
        (Family::V6, Span::new(0, Family::V6.max())),
    ]
}

/// The address spans of a block peer, per family.
fn block_spans(peer: &Peer) -> Vec<(Family, Span)> {
    let Peer::Block { cidr, except } = peer else {
        return Vec::new();
    };
    let fam = Family::of(cidr.addr());
    let ex = union(except.iter().map(Span::of_net).collect());
    crate::space::subtract(&[Span::of_net(cidr)], &ex)
        .into_iter()
        .map(|s| (fam, s))
        .collect()
}

/// Grants of the rules, per family, being built.
#[derive(Default)]
struct Grants {
    v4: Vec<(Span, Service)>,
    v6: Vec<(Span, Service)>,
}

impl Grants {
    fn push(&mut self, fam: Family, s: Span, svc: Service) {
        match fam {
            Family::V4 => self.v4.push((s, svc)),
            Family::V6 => self.v6.push((s, svc)),
        }
    }

    fn push_addr(&mut self, a: IpAddr, svc: Service) {
        self.push(Family::of(a), Span::one(number(a)), svc);
    }
}

/// The services a rule's ports give for destination pod `dst` (`None`: no pod, so named
/// ports resolve to nothing); empty when the rule has ports and none apply.
fn services(rule: &Rule, dst: Option<&Pod>) -> Vec<Service> {
    let Some(ports) = &rule.ports else {
        return vec![Service::Any];
    };
    ports
        .iter()
        .filter_map(|p| {
            let proto = p.proto.number();
            match &p.port {
                PortMatch::Any => Some(Service::Ports {
                    proto,
                    lo: 0,
                    hi: u16::MAX,
                }),
                PortMatch::Range(lo, hi) => Some(Service::Ports {
                    proto,
                    lo: *lo,
                    hi: *hi,
                }),
                PortMatch::Named(n) => {
                    dst.and_then(|d| d.named_port(n, p.proto))
                        .map(|port| Service::Ports {
                            proto,
                            lo: port,
                            hi: port,
                        })
                }
            }
        })
        .collect()
}

fn has_named(rule: &Rule) -> bool {
    rule.ports
        .iter()
        .flatten()
        .any(|p| matches!(p.port, PortMatch::Named(_)))
}

/// Builds classes, remembering which pods each peer selects (many classes share policies).
struct Builder<'a> {
    c: &'a Cluster,
    peers: HashMap<(Key, Direction, usize, usize), Vec<&'a Pod>>,
}

impl<'a> Builder<'a> {
    fn peer_pods(
        &mut self,
        policy: &Key,
        dir: Direction,
        r: usize,
        i: usize,
        peer: &'a Peer,
    ) -> Vec<&'a Pod> {
        let c = self.c;
        self.peers
            .entry((policy.clone(), dir, r, i))
            .or_insert_with(|| c.peer_pods(peer, &policy.namespace))
            .clone()
    }

    /// The ingress key of `pod` (isolated by `policies`).
    fn ingress_key(&self, pod: &Pod, policies: &[&crate::model::Policy]) -> ClassKey {
        let mut named = Vec::new();
        for p in policies {
            for r in p.ingress.iter().flatten() {
                for ps in r.ports.iter().flatten() {
                    if let PortMatch::Named(n) = &ps.port {
                        let v = (
                            n.clone(),
                            ps.proto.number(),
                            pod.named_port(n, ps.proto).unwrap_or(0),
                        );
                        if !named.contains(&v) {
                            named.push(v);
                        }
                    }
                }
            }
        }
        named.sort();
        ClassKey {
            dir: Direction::Ingress,
            namespace: pod.key.namespace.to_string(),
            policies: policies.iter().map(|p| p.key.name.to_string()).collect(),
            named,
        }
    }

    /// The addresses `rule`'s peers cover (every address without peers), and the pods they
    /// select (with `with_pods`: also those inside address blocks; for named ports).
    fn rule_peers(
        &mut self,
        pkey: &Key,
        dir: Direction,
        ri: usize,
        rule: &'a Rule,
        with_pods: bool,
    ) -> (Vec<(Family, Span)>, Vec<&'a Pod>) {
        let mut spans: Vec<(Family, Span)> = Vec::new();
        let mut pods: Vec<&'a Pod> = Vec::new();
        match &rule.peers {
            None => {
                spans.extend(everything());
                if with_pods {
                    pods.extend(self.c.pods());
                }
            }
            Some(peers) => {
                for (pi, peer) in peers.iter().enumerate() {
                    let selected = matches!(peer, Peer::Pods { .. }) || with_pods;
                    if let Peer::Block { .. } = peer {
                        spans.extend(block_spans(peer));
                    }
                    if !selected {
                        continue;
                    }
                    for p in self.peer_pods(pkey, dir, ri, pi, peer) {
                        if let Peer::Pods { .. } = peer {
                            spans.extend(
                                p.addrs
                                    .iter()
                                    .map(|a| (Family::of(*a), Span::one(number(*a)))),
                            );
                        }
                        if with_pods {
                            pods.push(p);
                        }
                    }
                }
            }
        }
        (spans, pods)
    }

    /// The elements of the class `key` of `pod` (`pod` stands for every pod of the class).
    fn class(&mut self, key: ClassKey, pod: &Pod) -> Class {
        let c = self.c;
        let mut g = Grants::default();
        for name in &key.policies {
            let pkey = Key::new(key.namespace.clone(), name.clone());
            let Some(policy) = c.policy(&pkey) else {
                continue;
            };
            for (ri, rule) in policy.rules(key.dir).into_iter().flatten().enumerate() {
                // Ports that need no destination pod apply to whole peers; named ports
                // resolve on the destination: the pod itself for ingress, each peer pod for
                // egress.
                let (plain, named) = match key.dir {
                    Direction::Ingress => (services(rule, Some(pod)), false),
                    Direction::Egress => (services(rule, None), has_named(rule)),
                };
                if rule.ports.is_some() && plain.is_empty() && !named {
                    continue;
                }
                let (spans, dst_pods) = self.rule_peers(&pkey, key.dir, ri, rule, named);
                for (f, s) in &spans {
                    for svc in &plain {
                        g.push(*f, *s, *svc);
                    }
                }
                for d in dst_pods {
                    let resolved: Vec<Service> = rule
                        .ports
                        .iter()
                        .flatten()
                        .filter_map(|ps| match &ps.port {
                            PortMatch::Named(n) => {
                                d.named_port(n, ps.proto).map(|port| Service::Ports {
                                    proto: ps.proto.number(),
                                    lo: port,
                                    hi: port,
                                })
                            }
                            _ => None,
                        })
                        .collect();
                    for a in &d.addrs {
                        // Only addresses the peers cover (a block may hold a pod's IPv4
                        // address but not its IPv6 one).
                        let (fam, n) = (Family::of(*a), number(*a));
                        if !spans.iter().any(|(f, s)| *f == fam && s.contains(n)) {
                            continue;
                        }
                        for svc in &resolved {
                            g.push_addr(*a, *svc);
                        }
                    }
                }
            }
        }
        Class {
            key,
            v4: decompose(&g.v4),
            v6: decompose(&g.v6),
        }
    }
}

/// What node `node` enforces in cluster `c`.
pub fn node_policy(c: &Cluster, node: &str) -> NodePolicy {
    let mut b = Builder {
        c,
        peers: HashMap::new(),
    };
    let mut out = NodePolicy {
        node_addrs: c.node_addrs(node).to_vec(),
        ..NodePolicy::default()
    };
    for pod in c.pods().filter(|p| p.node == node && !p.addrs.is_empty()) {
        let mut local = LocalPod {
            key: pod.key.clone(),
            addrs: pod.addrs.clone(),
            ingress: None,
            egress: None,
        };
        for dir in [Direction::Ingress, Direction::Egress] {
            let policies = c.isolating(pod, dir);
            if policies.is_empty() {
                continue;
            }
            let key = match dir {
                Direction::Ingress => b.ingress_key(pod, &policies),
                Direction::Egress => ClassKey {
                    dir,
                    namespace: pod.key.namespace.to_string(),
                    policies: policies.iter().map(|p| p.key.name.to_string()).collect(),
                    named: Vec::new(),
                },
            };
            let name = key.name();
            if !out.classes.contains_key(&name) {
                let class = b.class(key, pod);
                out.classes.insert(name.clone(), class);
            }
            match dir {
                Direction::Ingress => local.ingress = Some(name),
                Direction::Egress => local.egress = Some(name),
            }
        }
        out.pods.insert(pod.key.clone(), local);
    }
    out
}
