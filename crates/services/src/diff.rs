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

use crate::plan::{ChainDef, Ruleset, TABLE};

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
    let t = table();
    let mut b = Batch::new();
    let empty = BTreeMap::new();
    let Some(old) = old else {
        b.add_table(&t).del_table(&t, false).add_table(&t);
        for (name, def) in &new.chains {
            b.add_chain(&t, chain_obj(name, def));
        }
        for def in new.sets.values() {
            b.add_set(&t, def.clone());
        }
        for (set, elems) in &new.elems {
            if !elems.is_empty() {
                b.add_elems(&t, set, elems.values().cloned().collect());
            }
        }
        for (name, def) in &new.chains {
            add_rules(&mut b, &t, name, def);
        }
        return b;
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
    // 2. New chains and sets.
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
    b
}

#[cfg(test)]
mod tests;
