//! The nf_tables objects one node programs for NetworkPolicy, as data ([`Ruleset`]), built
//! from what it enforces ([`NodePolicy`]), and the batches that create it whole
//! ([`full`]) or change one state into another ([`diff`]) touching only what differs.
//!
//! ```text
//! table inet ferro_policy {
//!   map in4 / in6  { type ipv{4,6}_addr : verdict }   isolated local pod address -> jump its ingress chain
//!   map eg4 / eg6  { type ipv{4,6}_addr : verdict }   isolated local pod address -> jump its egress chain
//!   set in-<hash>-4x / -6x { type ipv{4,6}_addr . inet_proto . inet_service }
//!                                                       what a class allows: one peer, protocol, port
//!   set in-<hash>-4a / -6a { type ipv{4,6}_addr }      one peer, every protocol and port
//!   set in-<hash>-4 / -6 { type ipv{4,6}_addr . inet_proto . inet_service; flags interval }
//!                                                       the rest: address blocks, port ranges
//!   set eg-<hash>-4x, -4a, -4, -6x, -6a, -6             the same for egress classes
//!   counter pod-in-<ns>.<pod>-<hash> ...                drops per pod and direction
//!   chain pod-in-<ns>.<pod>-<hash> {                    one per isolated pod and direction
//!     ip saddr . meta l4proto . th dport @in-<hash>-4x return
//!     ip saddr @in-<hash>-4a return
//!     ip saddr . meta l4proto . th dport @in-<hash>-4 return
//!     (the same for ip6 and the -6 sets)
//!     [limit rate R/second burst B packets log prefix "ingress x/a" group G]
//!     counter name "pod-in-..." drop
//!   }
//!   chain forward {                                     type filter hook forward priority filter
//!     ct state established,related accept               replies and admitted connections
//!     meta l4proto ipv6-icmp icmpv6 type 133-137 accept neighbour discovery on a bridge
//!     ip saddr vmap @eg4 ; ip6 saddr vmap @eg6           the source's egress, when local and isolated
//!     ip daddr vmap @in4 ; ip6 daddr vmap @in6           the destination's ingress, likewise
//!   }
//! }
//! ```
//! A packet costs the same whatever the number of pods, policies and rules: at most two
//! verdict-map lookups and, per isolated end, three set lookups of its family. Nothing grows
//! with peers but set elements.
//!
//! A class's elements are spread over three sets per family by what they hold: the kernel
//! keeps an interval set of concatenations (`pipapo`) in lookup tables that a removal
//! rebuilds, so removing one element costs time growing with the set (tens of milliseconds
//! at ten thousand elements); the two hashed sets add and remove in constant time. Pods are
//! single addresses, so a pod starting, stopping or changing labels only touches the hashed
//! sets; small runs of adjacent addresses are split into single ones for the same reason.
//! Only address blocks and port ranges go to the interval set.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::IpAddr;

use ferro_nftables::{
    priority, Batch, Chain, ChainType, DataType, Dir, Elem as NftElem, Hook, KeyField, KeyPart,
    RuleBuilder, SetDef, TableRef, Verdict, CT_STATE_ESTABLISHED, CT_STATE_RELATED,
};
use sha2::{Digest, Sha256};

use crate::model::{Direction, Key};
use crate::node::NodePolicy;
use crate::space::{Elem, Family};

/// The table's name (family `inet`).
pub const TABLE: &str = "ferro_policy";
/// The base chain.
pub const FORWARD: &str = "forward";
/// Elements per `add element` message.
const CHUNK: usize = 2048;
/// Runs of adjacent addresses up to this long are split into single addresses (hashed sets).
const SPLIT_RUN: u128 = 16;
/// The longest log prefix the kernel keeps (`NF_LOG_PREFIXLEN` 128, NUL included).
const MAX_PREFIX: usize = 127;

/// The table.
pub fn table() -> TableRef {
    TableRef::inet(TABLE)
}

/// Logging of denied connection attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogOptions {
    /// The nfnetlink_log group the packets go to.
    pub group: u16,
    /// Packets logged per second, per pod and direction.
    pub rate: u64,
    /// Burst.
    pub burst: u32,
}

/// The dispatch verdict map of a direction and family.
pub fn dispatch_map(dir: Direction, family: Family) -> &'static str {
    match (dir, family) {
        (Direction::Ingress, Family::V4) => "in4",
        (Direction::Ingress, Family::V6) => "in6",
        (Direction::Egress, Family::V4) => "eg4",
        (Direction::Egress, Family::V6) => "eg6",
    }
}

/// Which of a class's sets an element is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SetKind {
    /// One address, one protocol with ports, one port: hashed.
    Exact,
    /// One address, every protocol and port: hashed, keyed by the address alone.
    Addrs,
    /// Anything else (address ranges, port ranges): an interval set.
    Ranges,
}

impl SetKind {
    /// The three, in the order the chains look them up.
    pub const ALL: [SetKind; 3] = [SetKind::Exact, SetKind::Addrs, SetKind::Ranges];
}

/// The set of `class` for `family` and `kind`: `<class>-4x`, `<class>-4a`, `<class>-4`.
pub fn class_set(class: &str, family: Family, kind: SetKind) -> String {
    let f = match family {
        Family::V4 => "4",
        Family::V6 => "6",
    };
    let k = match kind {
        SetKind::Exact => "x",
        SetKind::Addrs => "a",
        SetKind::Ranges => "",
    };
    format!("{class}-{f}{k}")
}

/// Where the elements of `e` go: single addresses with one port (or every port) to the
/// hashed sets (a short run of addresses split into its addresses), the rest to the interval
/// set.
pub fn place(e: &Elem) -> (SetKind, Vec<Elem>) {
    let one_port =
        e.proto.0 == e.proto.1 && matches!(e.proto.0, 6 | 17 | 132) && e.port.0 == e.port.1;
    let every = e.proto == (0, 255) && e.port == (0, u16::MAX);
    let kind = match (one_port, every) {
        (true, _) => SetKind::Exact,
        (_, true) => SetKind::Addrs,
        _ => return (SetKind::Ranges, vec![*e]),
    };
    if e.addr.hi - e.addr.lo >= SPLIT_RUN {
        return (SetKind::Ranges, vec![*e]);
    }
    let singles = (e.addr.lo..=e.addr.hi)
        .map(|a| Elem {
            addr: crate::space::Span::one(a),
            ..*e
        })
        .collect();
    (kind, singles)
}

/// One of a class's sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassSet {
    /// Its address family.
    pub family: Family,
    /// What it holds.
    pub kind: SetKind,
    /// Its elements.
    pub elems: BTreeSet<Elem>,
}

/// The chain (and counter) of `pod` for `dir`: `pod-in-<ns>.<name>-<8 hex digits>`, the
/// readable part cut to 40 characters.
pub fn pod_chain(pod: &Key, dir: Direction) -> String {
    let d = Sha256::digest(format!("{}/{}", pod.namespace, pod.name).as_bytes());
    let hash: String = d[..4].iter().map(|b| format!("{b:02x}")).collect();
    let dir = match dir {
        Direction::Ingress => "in",
        Direction::Egress => "eg",
    };
    let readable: String = format!("{}.{}", pod.namespace, pod.name)
        .chars()
        .take(40)
        .collect();
    format!("pod-{dir}-{readable}-{hash}")
}

/// One pod's chain for one direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodChain {
    /// The pod.
    pub pod: Key,
    /// The direction.
    pub dir: Direction,
    /// Its class.
    pub class: String,
}

/// Everything in the table, as data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ruleset {
    /// Class sets by name.
    pub sets: BTreeMap<String, ClassSet>,
    /// Pod chains (and their counters, of the same name) by name.
    pub chains: BTreeMap<String, PodChain>,
    /// The dispatch maps: name -> address -> pod chain.
    pub maps: BTreeMap<&'static str, BTreeMap<IpAddr, String>>,
    /// Logging of denied attempts.
    pub log: Option<LogOptions>,
}

impl Ruleset {
    /// The objects for `np`.
    pub fn of(np: &NodePolicy, log: Option<LogOptions>) -> Ruleset {
        let mut r = Ruleset {
            log,
            ..Ruleset::default()
        };
        for dir in [Direction::Ingress, Direction::Egress] {
            for fam in [Family::V4, Family::V6] {
                r.maps.insert(dispatch_map(dir, fam), BTreeMap::new());
            }
        }
        for (name, class) in &np.classes {
            for family in [Family::V4, Family::V6] {
                for kind in SetKind::ALL {
                    r.sets.insert(
                        class_set(name, family, kind),
                        ClassSet {
                            family,
                            kind,
                            elems: BTreeSet::new(),
                        },
                    );
                }
                for e in class.elems(family) {
                    let (kind, elems) = place(e);
                    if let Some(set) = r.sets.get_mut(&class_set(name, family, kind)) {
                        set.elems.extend(elems);
                    }
                }
            }
        }
        for pod in np.pods.values() {
            for dir in [Direction::Ingress, Direction::Egress] {
                let Some(class) = pod.class(dir) else {
                    continue;
                };
                let chain = pod_chain(&pod.key, dir);
                for a in &pod.addrs {
                    if let Some(m) = r.maps.get_mut(dispatch_map(dir, Family::of(*a))) {
                        m.insert(*a, chain.clone());
                    }
                }
                r.chains.insert(
                    chain,
                    PodChain {
                        pod: pod.key.clone(),
                        dir,
                        class: class.to_string(),
                    },
                );
            }
        }
        r
    }

    /// Number of set elements (dispatch maps included).
    pub fn elements(&self) -> usize {
        self.sets.values().map(|s| s.elems.len()).sum::<usize>()
            + self.maps.values().map(BTreeMap::len).sum::<usize>()
    }

    /// The pod chain `name`'s rules.
    fn chain_rules(&self, name: &str, c: &PodChain) -> Vec<ferro_nftables::Rule> {
        let dir = match c.dir {
            Direction::Ingress => Dir::Src,
            Direction::Egress => Dir::Dst,
        };
        let mut rules = Vec::new();
        for (fam, field) in [
            (Family::V4, KeyField::Ip4(dir)),
            (Family::V6, KeyField::Ip6(dir)),
        ] {
            for kind in SetKind::ALL {
                let set = class_set(&c.class, fam, kind);
                let b = match kind {
                    SetKind::Exact => RuleBuilder::new().concat_lookup(
                        &[field, KeyField::L4Proto, KeyField::ThDport],
                        &set,
                        false,
                    ),
                    SetKind::Addrs => RuleBuilder::new().concat_lookup(&[field], &set, false),
                    SetKind::Ranges => RuleBuilder::new().concat_lookup(
                        &[field, KeyField::L4Proto, KeyField::ThDport],
                        &set,
                        true,
                    ),
                };
                rules.push(b.verdict(Verdict::Return).build(name));
            }
        }
        if let Some(l) = &self.log {
            rules.push(
                RuleBuilder::new()
                    .limit_per_second(l.rate, l.burst)
                    .log_group(l.group, Some(&log_prefix(c)))
                    .build(name),
            );
        }
        rules.push(
            RuleBuilder::new()
                .counter_named(name)
                .verdict(Verdict::Drop)
                .build(name),
        );
        rules
    }
}

/// The log prefix of a pod chain: `ingress x/a` (what the agent reads back).
pub fn log_prefix(c: &PodChain) -> String {
    let p = format!("{} {}", c.dir, c.pod);
    p.chars().take(MAX_PREFIX).collect()
}

/// The key parts of one element's first and last keys.
fn elem_parts(fam: Family, e: &Elem) -> ([KeyPart; 3], [KeyPart; 3]) {
    (
        [
            KeyPart::Addr(fam.addr(e.addr.lo)),
            KeyPart::Proto(e.proto.0),
            KeyPart::Port(e.port.0),
        ],
        [
            KeyPart::Addr(fam.addr(e.addr.hi)),
            KeyPart::Proto(e.proto.1),
            KeyPart::Port(e.port.1),
        ],
    )
}

/// Element `e` as set `s` holds it.
fn set_elem(s: &ClassSet, e: &Elem) -> NftElem {
    let (a, b) = elem_parts(s.family, e);
    match s.kind {
        SetKind::Exact => NftElem::concat(&a),
        SetKind::Addrs => NftElem::addr(s.family.addr(e.addr.lo)),
        SetKind::Ranges => NftElem::range(&a, &b),
    }
}

fn class_set_def(name: &str, s: &ClassSet) -> SetDef {
    let addr = match s.family {
        Family::V4 => DataType::Ipv4Addr,
        Family::V6 => DataType::Ipv6Addr,
    };
    match s.kind {
        SetKind::Exact => SetDef::set(name, vec![addr, DataType::InetProto, DataType::InetService]),
        SetKind::Addrs => SetDef::set(name, vec![addr]),
        SetKind::Ranges => {
            SetDef::set(name, vec![addr, DataType::InetProto, DataType::InetService])
                .with_interval()
        }
    }
}

fn map_def(name: &str) -> SetDef {
    let addr = if name.ends_with('6') {
        DataType::Ipv6Addr
    } else {
        DataType::Ipv4Addr
    };
    SetDef::vmap(name, vec![addr])
}

fn add_elems(b: &mut Batch, t: &TableRef, set: &str, elems: Vec<NftElem>) {
    for chunk in elems.chunks(CHUNK) {
        b.add_elems(t, set, chunk.to_vec());
    }
}

fn del_elems(b: &mut Batch, t: &TableRef, set: &str, elems: Vec<NftElem>) {
    for chunk in elems.chunks(CHUNK) {
        b.del_elems(t, set, chunk.to_vec(), false);
    }
}

fn map_elem(a: IpAddr, chain: &str) -> NftElem {
    NftElem::addr(a).with_verdict(Verdict::Jump(chain.to_string()))
}

fn forward_rules() -> Vec<ferro_nftables::Rule> {
    let mut rules = vec![
        RuleBuilder::new()
            .ct_state_any(CT_STATE_ESTABLISHED | CT_STATE_RELATED)
            .verdict(Verdict::Accept)
            .build(FORWARD),
        RuleBuilder::new()
            .l4proto(58)
            .transport_byte_range(0, 133, 137)
            .verdict(Verdict::Accept)
            .build(FORWARD),
    ];
    for (dir, d) in [
        (Direction::Egress, Dir::Src),
        (Direction::Ingress, Dir::Dst),
    ] {
        for (fam, field) in [
            (Family::V4, KeyField::Ip4(d)),
            (Family::V6, KeyField::Ip6(d)),
        ] {
            rules.push(
                RuleBuilder::new()
                    .concat_vmap(&[field], dispatch_map(dir, fam))
                    .build(FORWARD),
            );
        }
    }
    rules
}

/// The batch that replaces whatever the table holds with `r`, in one transaction.
pub fn full(r: &Ruleset) -> Batch {
    let t = table();
    let mut b = Batch::new();
    b.add_table(&t).del_table(&t, false).add_table(&t);
    for name in r.maps.keys() {
        b.add_set(&t, map_def(name));
    }
    for (name, set) in &r.sets {
        b.add_set(&t, class_set_def(name, set));
        add_elems(
            &mut b,
            &t,
            name,
            set.elems.iter().map(|e| set_elem(set, e)).collect(),
        );
    }
    for (name, c) in &r.chains {
        b.add_counter(&t, name);
        b.add_chain(&t, Chain::regular(name).with_comment(log_prefix(c)));
        for rule in r.chain_rules(name, c) {
            b.add_rule(&t, rule);
        }
    }
    for (name, m) in &r.maps {
        let elems: Vec<NftElem> = m.iter().map(|(a, c)| map_elem(*a, c)).collect();
        add_elems(&mut b, &t, name, elems);
    }
    b.add_chain(
        &t,
        Chain::base(FORWARD, ChainType::Filter, Hook::Forward, priority::FILTER)
            .with_comment("NetworkPolicy"),
    );
    for rule in forward_rules() {
        b.add_rule(&t, rule);
    }
    b
}

/// What a [`diff`] changes, for logs and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Changes {
    /// Elements added (sets and maps).
    pub added: usize,
    /// Elements removed.
    pub removed: usize,
    /// Chains created, rewritten or removed.
    pub chains: usize,
    /// Sets created or removed.
    pub sets: usize,
}

impl Changes {
    /// Whether a connection allowed before may be denied now: elements were removed or
    /// chains changed (a pod newly isolated, or moved to another class).
    pub fn may_deny(&self) -> bool {
        self.removed > 0 || self.chains > 0
    }
}

/// The batch that turns `old` (what is programmed) into `new`, touching only what differs,
/// and what it changes. Empty when they are equal.
pub fn diff(old: &Ruleset, new: &Ruleset) -> (Batch, Changes) {
    let t = table();
    let mut b = Batch::new();
    let mut ch = Changes::default();
    // 1. New sets, with their elements (and the dispatch maps, when the old state is
    //    empty).
    for name in new.maps.keys().filter(|m| !old.maps.contains_key(*m)) {
        b.add_set(&t, map_def(name));
        ch.sets += 1;
    }
    for (name, set) in &new.sets {
        if !old.sets.contains_key(name) {
            b.add_set(&t, class_set_def(name, set));
            ch.sets += 1;
            ch.added += set.elems.len();
            add_elems(
                &mut b,
                &t,
                name,
                set.elems.iter().map(|e| set_elem(set, e)).collect(),
            );
        }
    }
    // 2. Changed sets: removals first (the new elements may overlap the old ones).
    let mut adds = Vec::new();
    for (name, set) in &new.sets {
        let Some(before) = old.sets.get(name) else {
            continue;
        };
        let gone: Vec<NftElem> = before
            .elems
            .difference(&set.elems)
            .map(|e| set_elem(set, e))
            .collect();
        let came: Vec<NftElem> = set
            .elems
            .difference(&before.elems)
            .map(|e| set_elem(set, e))
            .collect();
        ch.removed += gone.len();
        ch.added += came.len();
        if !gone.is_empty() {
            del_elems(&mut b, &t, name, gone);
        }
        if !came.is_empty() {
            adds.push((name.clone(), came));
        }
    }
    for (name, came) in adds {
        add_elems(&mut b, &t, &name, came);
    }
    // 3. Pod chains: new ones made, changed ones rewritten (the counter stays).
    let log_changed = old.log != new.log;
    for (name, c) in &new.chains {
        match old.chains.get(name) {
            Some(o) if o == c && !log_changed => continue,
            Some(_) => {
                b.flush_chain(&t, name, false);
            }
            None => {
                b.add_counter(&t, name);
                b.add_chain(&t, Chain::regular(name).with_comment(log_prefix(c)));
            }
        }
        ch.chains += 1;
        for rule in new.chain_rules(name, c) {
            b.add_rule(&t, rule);
        }
    }
    // 4. Dispatch maps.
    for (map, entries) in &new.maps {
        let empty = BTreeMap::new();
        let before = old.maps.get(map).unwrap_or(&empty);
        let gone: Vec<NftElem> = before
            .iter()
            .filter(|(a, c)| entries.get(a) != Some(c))
            .map(|(a, c)| map_elem(*a, c))
            .collect();
        let came: Vec<NftElem> = entries
            .iter()
            .filter(|(a, c)| before.get(a) != Some(c))
            .map(|(a, c)| map_elem(*a, c))
            .collect();
        ch.removed += gone.len();
        ch.added += came.len();
        if !gone.is_empty() {
            del_elems(&mut b, &t, map, gone);
        }
        if !came.is_empty() {
            add_elems(&mut b, &t, map, came);
        }
    }
    // 5. What is no longer used: chains (after the map elements jumping to them), then the
    //    sets and counters their rules referenced.
    for name in old.chains.keys().filter(|n| !new.chains.contains_key(*n)) {
        b.flush_chain(&t, name, false);
        b.del_chain(&t, name, false);
        b.del_counter(&t, name, false);
        ch.chains += 1;
    }
    for name in old.sets.keys().filter(|n| !new.sets.contains_key(*n)) {
        b.del_set(&t, name, false);
        ch.sets += 1;
    }
    (b, ch)
}

/// The ruleset in nft's syntax (as `nft list table inet ferro_policy` would show it, in a
/// stable order): golden tests and `cnictl`'s views.
pub fn render(r: &Ruleset) -> String {
    let mut s = format!("table inet {TABLE} {{\n");
    for (name, m) in &r.maps {
        let addr = if name.ends_with('6') {
            "ipv6_addr"
        } else {
            "ipv4_addr"
        };
        let _ = writeln!(s, "\tmap {name} {{ type {addr} : verdict");
        for (a, c) in m {
            let _ = writeln!(s, "\t\t{a} : jump {c}");
        }
        s.push_str("\t}\n");
    }
    for (name, set) in &r.sets {
        let addr = match set.family {
            Family::V4 => "ipv4_addr",
            Family::V6 => "ipv6_addr",
        };
        let ty = match set.kind {
            SetKind::Exact => format!("{addr} . inet_proto . inet_service"),
            SetKind::Addrs => addr.to_string(),
            SetKind::Ranges => format!("{addr} . inet_proto . inet_service; flags interval"),
        };
        let _ = writeln!(s, "\tset {name} {{ type {ty}");
        for e in &set.elems {
            let _ = writeln!(s, "\t\t{}", set_elem(set, e).label);
        }
        s.push_str("\t}\n");
    }
    for (name, c) in &r.chains {
        let peer = match c.dir {
            Direction::Ingress => "saddr",
            Direction::Egress => "daddr",
        };
        let _ = writeln!(s, "\tcounter {name}");
        let _ = writeln!(s, "\tchain {name} {{ # {}", log_prefix(c));
        for (fam, f) in [(Family::V4, "ip"), (Family::V6, "ip6")] {
            for kind in SetKind::ALL {
                let set = class_set(&c.class, fam, kind);
                let _ = match kind {
                    SetKind::Addrs => writeln!(s, "\t\t{f} {peer} @{set} return"),
                    _ => writeln!(s, "\t\t{f} {peer} . meta l4proto . th dport @{set} return"),
                };
            }
        }
        if let Some(l) = &r.log {
            let _ = writeln!(
                s,
                "\t\tlimit rate {}/second burst {} packets log prefix \"{}\" group {}",
                l.rate,
                l.burst,
                log_prefix(c),
                l.group
            );
        }
        let _ = writeln!(s, "\t\tcounter name \"{name}\" drop\n\t}}");
    }
    s.push_str(
        "\tchain forward { type filter hook forward priority filter; policy accept\n\
         \t\tct state established,related accept\n\
         \t\tmeta l4proto ipv6-icmp icmpv6 type 133-137 accept\n\
         \t\tip saddr vmap @eg4\n\t\tip6 saddr vmap @eg6\n\
         \t\tip daddr vmap @in4\n\t\tip6 daddr vmap @in6\n\t}\n}\n",
    );
    s
}
