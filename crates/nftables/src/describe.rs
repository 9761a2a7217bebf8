//! Operations and batches in nft syntax (`add rule inet ferro_cni masq-kbr`), for error
//! messages and logs.

use crate::batch::{Batch, Op, OpKind};
use crate::object::Elem;

impl Op {
    /// The operation in nft syntax, for error messages and logs:
    /// `add rule inet ferro_cni masq-kbr`.
    pub fn describe(&self) -> String {
        let t = &self.table;
        match &self.kind {
            OpKind::AddTable => format!("add table {t}"),
            OpKind::DelTable => format!("delete table {t}"),
            OpKind::AddChain(c) => format!("add chain {t} {}", c.name),
            OpKind::DelChain(c) => format!("delete chain {t} {c}"),
            OpKind::FlushChain(c) => format!("flush chain {t} {c}"),
            OpKind::AddRule(r) => format!("add rule {t} {}", r.chain),
            OpKind::DelRule { chain, handle } => {
                format!("delete rule {t} {chain} handle {handle}")
            }
            OpKind::AddSet(s) => format!(
                "add {} {t} {}",
                if s.data.is_some() { "map" } else { "set" },
                s.name
            ),
            OpKind::DelSet(s) => format!("delete set {t} {s}"),
            OpKind::FlushSet(s) => format!("flush set {t} {s}"),
            OpKind::AddElems { set, elems } => {
                format!("add element {t} {set} {{ {} }}", labels(elems))
            }
            OpKind::DelElems { set, elems } => {
                format!("delete element {t} {set} {{ {} }}", labels(elems))
            }
            OpKind::AddCounter(c) => format!("add counter {t} {c}"),
            OpKind::DelCounter(c) => format!("delete counter {t} {c}"),
        }
    }
}

impl Batch {
    /// The batch as nft commands, one per line (for logs).
    pub fn describe(&self) -> String {
        self.ops()
            .iter()
            .map(Op::describe)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn labels(elems: &[Elem]) -> String {
    elems
        .iter()
        .map(|e| e.label.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
