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

use std::collections::BTreeMap;

use ferro_nftables::{Batch, Chain, Elem, TableRef};
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

impl Planner {
    /// A planner that knows nothing of the kernel: its first batch rebuilds the table.
    pub fn new() -> Planner {
        Planner::default()
    }

    /// The next batch for `ports`: the whole table when nothing is known of the kernel (the
    /// first time, after [`Planner::forget`], or when the facts changed), else the
    /// differences of the services that changed. Call [`Planner::applied`] once the kernel
    /// took it.
    pub fn update(&mut self, ports: &[ServicePort], facts: &NodeFacts<'_>) -> Batch {
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
            return load(self.ruleset(facts));
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
        diff(Some(&old), &new)
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
