//! The one batch that turns the programmed table into the desired one.
//!
//! With nothing known about the kernel (the agent starting) the table is rebuilt whole in
//! one transaction: `add table; delete table; add table; ...`, so packets see the old table
//! or the new one, never a half. After that only differences are sent, in an order the
//! kernel accepts within one transaction:
//!
//! 1. elements that go away or change are deleted;
//! 2. new chains and sets are added;
//! 3. new and changed elements are added;
//! 4. chains whose rules changed are flushed and written again (new chains get their
//!    rules);
//! 5. chains that go away are flushed, then sets that go away deleted, then those chains
//!    (nothing refers to them any more).
//!
//! A service whose endpoints change costs a flush and a few rules of its own chains and map
//! elements; the rest of the table is not touched.

use std::collections::{BTreeMap, HashMap, HashSet};

use ferro_nftables::{Batch, Chain, Elem, EncodedBatch, NftError, NftSocket, TableRef};
use ipnet::IpNet;

use crate::model::ServicePort;
use crate::plan::{common, fragment, ChainDef, NodeFacts, Ruleset, TABLE};

/// The table.
pub fn table() -> TableRef {
    TableRef::inet(TABLE)
}

fn chain_obj(name: &str, def: &ChainDef) -> Chain {
    Chain {
        name: name.to_string(),
        base: def.base,
        comment: None,
    }
}

fn add_rules(b: &mut Batch, t: &TableRef, name: &str, def: &ChainDef) {
    for r in &def.rules {
        b.add_rule(t, ferro_nftables::Rule::new(name, r.exprs.clone()));
    }
}

fn same(a: &Elem, b: &Elem) -> bool {
    a.key == b.key && a.data == b.data
}

/// The batch taking the kernel from `old` (`None`: unknown) to `new`; empty when nothing
/// changed.
pub fn diff(old: Option<&Ruleset>, new: &Ruleset) -> Batch {
    diff_in(&table(), old, new)
}

/// [`diff`] from nothing (`diff(None, &new)`), consuming `new`: the batch takes its rules
/// and elements instead of copies, so a whole table is in memory once while it is loaded
/// (the first sync of a large cluster, when the agent's memory peaks).
pub fn load(new: Ruleset) -> Batch {
    load_in(&table(), new)
}

/// [`load`] into table `t`: the table created afresh (added, deleted, added: whatever was
/// there goes in the same transaction), then its counters, chains, sets, elements and rules.
fn load_in(t: &TableRef, new: Ruleset) -> Batch {
    let mut b = Batch::new();
    b.add_table(t).del_table(t, false).add_table(t);
    for name in &new.counters {
        b.add_counter(t, name);
    }
    for (name, def) in &new.chains {
        b.add_chain(t, chain_obj(name, def));
    }
    for def in new.sets.values() {
        b.add_set(t, def.clone());
    }
    for (set, elems) in new.elems {
        if !elems.is_empty() {
            b.add_elems(t, &set, elems.into_values().collect());
        }
    }
    for (name, def) in new.chains {
        for r in def.rules {
            b.add_rule(t, ferro_nftables::Rule::new(&name, r.exprs));
        }
    }
    b
}

/// [`diff`] for a ruleset of another table `t` (another feature's table built with these
/// types).
pub fn diff_in(t: &TableRef, old: Option<&Ruleset>, new: &Ruleset) -> Batch {
    let t = t.clone();
    let mut b = Batch::new();
    let empty = BTreeMap::new();
    let Some(old) = old else {
        return load_in(&t, new.clone());
    };
    // 1. Elements that go or change.
    for (set, old_elems) in &old.elems {
        if !new.sets.contains_key(set) {
            continue;
        }
        let new_elems = new.elems.get(set).unwrap_or(&empty);
        let gone: Vec<Elem> = old_elems
            .values()
            .filter(|e| new_elems.get(&e.key).is_none_or(|n| !same(n, e)))
            .cloned()
            .collect();
        if !gone.is_empty() {
            b.del_elems(&t, set, gone, false);
        }
    }
    // 2. New counters, chains and sets.
    for name in new.counters.difference(&old.counters) {
        b.add_counter(&t, name);
    }
    for (name, def) in &new.chains {
        if !old.chains.contains_key(name) {
            b.add_chain(&t, chain_obj(name, def));
        }
    }
    for (name, def) in &new.sets {
        if !old.sets.contains_key(name) {
            b.add_set(&t, def.clone());
        }
    }
    // 3. New and changed elements.
    for (set, new_elems) in &new.elems {
        let old_elems = old.elems.get(set).unwrap_or(&empty);
        let added: Vec<Elem> = new_elems
            .values()
            .filter(|e| old_elems.get(&e.key).is_none_or(|o| !same(o, e)))
            .cloned()
            .collect();
        if !added.is_empty() {
            b.add_elems(&t, set, added);
        }
    }
    // 4. Chains whose rules changed, and the rules of new chains.
    for (name, def) in &new.chains {
        match old.chains.get(name) {
            Some(o) if o.rules == def.rules => {}
            Some(_) => {
                b.flush_chain(&t, name, false);
                add_rules(&mut b, &t, name, def);
            }
            None => add_rules(&mut b, &t, name, def),
        }
    }
    // 5. What goes away.
    let gone_chains: Vec<&String> = old
        .chains
        .keys()
        .filter(|n| !new.chains.contains_key(*n))
        .collect();
    for name in &gone_chains {
        b.flush_chain(&t, name, false);
    }
    for name in old.sets.keys().filter(|n| !new.sets.contains_key(*n)) {
        b.del_set(&t, name, false);
    }
    for name in gone_chains {
        b.del_chain(&t, name, false);
    }
    for name in old.counters.difference(&new.counters) {
        b.del_counter(&t, name, false);
    }
    b
}

/// The programmed table, kept per service so that a sync plans and compares only the
/// services that changed: the CPU a change costs does not grow with the number of services
/// (the model itself is still computed whole). Only each service's ports are kept: its part
/// of the table is planned again when it changes (a pure function of the ports and the
/// facts), which costs far less than holding every service's rules in memory.
#[derive(Debug, Default)]
pub struct Planner {
    /// The facts the table was planned with (node, pod CIDRs, service CIDRs).
    facts: Option<(String, Vec<IpNet>, Vec<IpNet>)>,
    /// The common part.
    common: Ruleset,
    /// Each service's ports, by (namespace, name).
    services: BTreeMap<(String, String), Vec<ServicePort>>,
    /// Whether the kernel holds what this planner holds.
    programmed: bool,
}

fn by_service(ports: &[ServicePort]) -> BTreeMap<(String, String), Vec<ServicePort>> {
    let mut m: BTreeMap<(String, String), Vec<ServicePort>> = BTreeMap::new();
    for p in ports {
        m.entry((p.namespace.clone(), p.service.clone()))
            .or_default()
            .push(p.clone());
    }
    m
}

/// What [`Planner::update`] sends.
#[derive(Debug)]
pub enum Transaction {
    /// The whole table, encoded service by service as it was planned: its operations are
    /// never all in memory, only their encoding.
    Load(EncodedBatch),
    /// Only what changed.
    Changes(Batch),
}

impl Transaction {
    /// Number of operations.
    pub fn len(&self) -> usize {
        match self {
            Transaction::Load(e) => e.len(),
            Transaction::Changes(b) => b.len(),
        }
    }

    /// Nothing to send.
    pub fn is_empty(&self) -> bool {
        match self {
            Transaction::Load(e) => e.is_empty(),
            Transaction::Changes(b) => b.is_empty(),
        }
    }

    /// The whole table (not only changes).
    pub fn is_load(&self) -> bool {
        matches!(self, Transaction::Load(_))
    }

    /// Applies it as one transaction.
    pub fn apply(&mut self, sock: &mut NftSocket) -> Result<(), NftError> {
        match self {
            Transaction::Load(e) => sock.apply_encoded(e),
            Transaction::Changes(b) => sock.apply(b),
        }
    }
}

/// The names a streamed load has sent (see [`Planner::load_pieces`]).
#[derive(Default)]
struct Sent {
    chains: HashSet<String>,
    sets: HashSet<String>,
    counters: HashSet<String>,
    elems: HashMap<String, HashSet<Vec<u8>>>,
}

impl Sent {
    /// The elements of `set` not sent yet, now marked sent.
    fn new_elems(
        &mut self,
        set: &str,
        elems: impl IntoIterator<Item = (Vec<u8>, Elem)>,
    ) -> Vec<Elem> {
        let sent = self.elems.entry(set.to_string()).or_default();
        elems
            .into_iter()
            .filter_map(|(k, e)| sent.insert(k).then_some(e))
            .collect()
    }
}

impl Planner {
    /// A planner that knows nothing of the kernel: its first batch rebuilds the table.
    pub fn new() -> Planner {
        Planner::default()
    }

    /// The next batch for `ports`: the whole table when nothing is known of the kernel (the
    /// first time, after [`Planner::forget`], or when the facts changed), else the
    /// differences of the services that changed. Call [`Planner::applied`] once the kernel
    /// took it.
    pub fn update(&mut self, ports: &[ServicePort], facts: &NodeFacts<'_>) -> Transaction {
        let key = (
            facts.node.to_string(),
            facts.pod_cidrs.to_vec(),
            facts.service_cidrs.to_vec(),
        );
        let wanted = by_service(ports);
        if !self.programmed || self.facts.as_ref() != Some(&key) {
            self.facts = Some(key);
            self.common = common(facts);
            self.services = wanted;
            let mut load = EncodedBatch::new();
            self.load_pieces(facts, |piece| load.append(piece));
            return Transaction::Load(load);
        }
        let mut old = self.common.clone();
        let mut new = self.common.clone();
        let gone: Vec<(String, String)> = self
            .services
            .keys()
            .filter(|k| !wanted.contains_key(*k))
            .cloned()
            .collect();
        for k in gone {
            if let Some(had) = self.services.remove(&k) {
                old.merge(&fragment(&had, facts));
            }
        }
        for (k, v) in wanted {
            match self.services.get(&k) {
                Some(had) if *had == v => {}
                _ => {
                    if let Some(had) = self.services.get(&k) {
                        old.merge(&fragment(had, facts));
                    }
                    new.merge(&fragment(&v, facts));
                    self.services.insert(k, v);
                }
            }
        }
        Transaction::Changes(diff(Some(&old), &new))
    }

    /// The whole table, as [`load`] of [`Planner::ruleset`] sends it but planned and handed
    /// to `piece` service by service, so that the table is never whole in memory:
    ///
    /// 1. the table created afresh, with the common part's counters, chains and sets;
    /// 2. for each service: its counters, chains and sets, its elements (of its own sets
    ///    and of the shared maps), then its chains' rules;
    /// 3. the common part's elements and rules.
    ///
    /// Where [`Planner::ruleset`] lets a later service's object replace an earlier one of
    /// the same name (or element key), the services are taken last first and a name or key
    /// already sent is skipped: the same table. A service's part of the table refers only
    /// to its own objects and the common part's, so every object exists before it is used.
    pub fn load_pieces(&self, facts: &NodeFacts<'_>, mut piece: impl FnMut(Batch)) {
        let t = table();
        let c = &self.common;
        let mut sent = Sent::default();
        let mut b = Batch::new();
        b.add_table(&t).del_table(&t, false).add_table(&t);
        for name in &c.counters {
            sent.counters.insert(name.clone());
            b.add_counter(&t, name);
        }
        for (name, def) in &c.chains {
            sent.chains.insert(name.clone());
            b.add_chain(&t, chain_obj(name, def));
        }
        for (name, def) in &c.sets {
            sent.sets.insert(name.clone());
            b.add_set(&t, def.clone());
        }
        piece(std::mem::take(&mut b));
        for ports in self.services.values().rev() {
            let f = fragment(ports, facts);
            for name in f.counters {
                if sent.counters.insert(name.clone()) {
                    b.add_counter(&t, &name);
                }
            }
            let mut chains = Vec::new();
            for (name, def) in f.chains {
                if sent.chains.insert(name.clone()) {
                    b.add_chain(&t, chain_obj(&name, &def));
                    chains.push((name, def));
                }
            }
            for (name, def) in f.sets {
                if sent.sets.insert(name) {
                    b.add_set(&t, def);
                }
            }
            for (set, elems) in f.elems {
                let elems = sent.new_elems(&set, elems);
                if !elems.is_empty() {
                    b.add_elems(&t, &set, elems);
                }
            }
            for (name, def) in chains {
                for r in def.rules {
                    b.add_rule(&t, ferro_nftables::Rule::new(&name, r.exprs));
                }
            }
            piece(std::mem::take(&mut b));
        }
        for (set, elems) in &c.elems {
            let elems = sent.new_elems(set, elems.iter().map(|(k, e)| (k.clone(), e.clone())));
            if !elems.is_empty() {
                b.add_elems(&t, set, elems);
            }
        }
        for (name, def) in &c.chains {
            add_rules(&mut b, &t, name, def);
        }
        piece(b);
    }

    /// The kernel took the last batch.
    pub fn applied(&mut self) {
        self.programmed = true;
    }

    /// The kernel may not hold what the planner thinks (a batch failed): the next
    /// [`Planner::update`] rebuilds the table.
    pub fn forget(&mut self) {
        self.programmed = false;
    }

    /// The whole table as planned (`facts`: those of the last update).
    pub fn ruleset(&self, facts: &NodeFacts<'_>) -> Ruleset {
        let mut r = self.common.clone();
        for ports in self.services.values() {
            r.merge(&fragment(ports, facts));
        }
        r
    }
}

#[cfg(test)]
mod tests;
