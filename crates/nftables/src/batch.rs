//! [`Batch`]: operations on nf_tables objects carried into one kernel transaction.
//!
//! Each operation is data ([`Op`]) until it is encoded, so a plan can be inspected (and
//! tested) before anything reaches the kernel. Encodings follow `nft` 1.0.x attribute for
//! attribute; the crate's `tests/fixtures/` hold what nft sends, compared byte for byte.

use std::collections::HashMap;

use crate::object::{udata_str, Chain, Elem, MapData, Policy, Rule, SetDef, TableRef};
use crate::object::{MAX_COMMENT_LEN, MAX_NAME_LEN};
use crate::uapi::*;
use crate::wire::{self, AttrWriter};

/// One operation of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpKind {
    /// `add table` (creates if missing).
    AddTable,
    /// `delete table`.
    DelTable,
    /// `add chain` (creates if missing, never `EEXIST`).
    AddChain(Chain),
    /// `delete chain`.
    DelChain(String),
    /// `flush chain` (delete every rule).
    FlushChain(String),
    /// `add rule` (appends).
    AddRule(Rule),
    /// `delete rule ... handle N`.
    DelRule {
        /// Chain.
        chain: String,
        /// Rule handle.
        handle: u64,
    },
    /// `add set`/`add map` (creates if missing).
    AddSet(SetDef),
    /// `delete set`.
    DelSet(String),
    /// `flush set`.
    FlushSet(String),
    /// `add element` (creates if missing; same key with other data is `EEXIST`).
    AddElems {
        /// Set.
        set: String,
        /// Elements.
        elems: Vec<Elem>,
    },
    /// `delete element`.
    DelElems {
        /// Set.
        set: String,
        /// Elements (only keys are sent).
        elems: Vec<Elem>,
    },
    /// `add counter` (a named counter; creates if missing, keeping its values).
    AddCounter(String),
    /// `delete counter`.
    DelCounter(String),
}

/// An operation on one table, and whether a missing object is fine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    /// The table.
    pub table: TableRef,
    /// What to do.
    pub kind: OpKind,
    /// For deletes: succeed when the object is already gone (see [`Batch`]).
    pub if_exists: bool,
}

impl Op {
    /// Checks names and comments against the kernel's limits before anything is sent.
    pub(crate) fn validate(&self) -> Result<(), String> {
        let name = |n: &str, what: &str| -> Result<(), String> {
            if n.is_empty() || n.len() > MAX_NAME_LEN || n.contains('\0') {
                return Err(format!(
                    "{what} name {n:?} is empty, too long or contains NUL"
                ));
            }
            Ok(())
        };
        let comment = |c: &Option<String>| -> Result<(), String> {
            match c {
                Some(c) if c.len() > MAX_COMMENT_LEN || c.contains('\0') => Err(format!(
                    "comment of {} bytes exceeds the kernel's {MAX_COMMENT_LEN}",
                    c.len()
                )),
                _ => Ok(()),
            }
        };
        name(&self.table.name, "table")?;
        match &self.kind {
            OpKind::AddTable | OpKind::DelTable => Ok(()),
            OpKind::AddChain(c) => {
                name(&c.name, "chain")?;
                comment(&c.comment)
            }
            OpKind::DelChain(c) | OpKind::FlushChain(c) => name(c, "chain"),
            OpKind::AddRule(r) => {
                name(&r.chain, "chain")?;
                comment(&r.comment)
            }
            OpKind::DelRule { chain, .. } => name(chain, "chain"),
            OpKind::AddSet(s) => {
                name(&s.name, "set")?;
                if s.key.is_empty() {
                    return Err(format!("set {} has no key type", s.name));
                }
                comment(&s.comment)
            }
            OpKind::DelSet(s) | OpKind::FlushSet(s) => name(s, "set"),
            OpKind::AddElems { set, elems } | OpKind::DelElems { set, elems } => {
                name(set, "set")?;
                for e in elems {
                    comment(&e.comment)?;
                }
                Ok(())
            }
            OpKind::AddCounter(c) | OpKind::DelCounter(c) => name(c, "counter"),
        }
    }

    /// Message type, flags (besides `NLM_F_REQUEST|NLM_F_ACK`) and attributes.
    pub(crate) fn encode(&self, set_ids: &HashMap<String, u32>) -> (u16, u16, Vec<u8>) {
        let mut w = AttrWriter::new();
        let t = &self.table.name;
        let ids = |s: &str| set_ids.get(s).copied();
        let (ty, flags) = match &self.kind {
            OpKind::AddTable => {
                w.put_strz(NFTA_TABLE_NAME, t);
                w.put_be32(NFTA_TABLE_FLAGS, 0);
                (NFT_MSG_NEWTABLE, NLM_F_CREATE)
            }
            OpKind::DelTable => {
                w.put_strz(NFTA_TABLE_NAME, t);
                (NFT_MSG_DELTABLE, 0)
            }
            OpKind::AddChain(c) => {
                w.put_strz(NFTA_CHAIN_TABLE, t);
                w.put_strz(NFTA_CHAIN_NAME, &c.name);
                if let Some(b) = &c.base {
                    w.put_strz(NFTA_CHAIN_TYPE, b.kind.name());
                    w.put_be32(
                        NFTA_CHAIN_POLICY,
                        match b.policy {
                            Policy::Accept => 1,
                            Policy::Drop => 0,
                        },
                    );
                    w.nest(NFTA_CHAIN_HOOK, |w| {
                        w.put_be32(NFTA_HOOK_HOOKNUM, b.hook.raw());
                        w.put_be32(NFTA_HOOK_PRIORITY, b.priority as u32);
                    });
                }
                if let Some(cm) = &c.comment {
                    let mut u = Vec::new();
                    udata_str(&mut u, UDATA_COMMENT, cm);
                    w.put(NFTA_CHAIN_USERDATA, &u);
                }
                (NFT_MSG_NEWCHAIN, NLM_F_CREATE)
            }
            OpKind::DelChain(c) => {
                w.put_strz(NFTA_CHAIN_TABLE, t);
                w.put_strz(NFTA_CHAIN_NAME, c);
                (NFT_MSG_DELCHAIN, 0)
            }
            OpKind::FlushChain(c) => {
                w.put_strz(NFTA_RULE_TABLE, t);
                w.put_strz(NFTA_RULE_CHAIN, c);
                (NFT_MSG_DELRULE, 0)
            }
            OpKind::AddRule(r) => {
                w.put_strz(NFTA_RULE_TABLE, t);
                w.put_strz(NFTA_RULE_CHAIN, &r.chain);
                w.nest(NFTA_RULE_EXPRESSIONS, |w| {
                    for e in &r.exprs {
                        e.encode(w, &ids);
                    }
                });
                if let Some(cm) = &r.comment {
                    let mut u = Vec::new();
                    udata_str(&mut u, UDATA_COMMENT, cm);
                    w.put(NFTA_RULE_USERDATA, &u);
                }
                (NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND)
            }
            OpKind::DelRule { chain, handle } => {
                w.put_strz(NFTA_RULE_TABLE, t);
                w.put_strz(NFTA_RULE_CHAIN, chain);
                w.put_be64(NFTA_RULE_HANDLE, *handle);
                (NFT_MSG_DELRULE, 0)
            }
            OpKind::AddSet(s) => {
                w.put_strz(NFTA_SET_TABLE, t);
                w.put_strz(NFTA_SET_NAME, &s.name);
                w.put_be32(NFTA_SET_FLAGS, s.flags_on_wire());
                w.put_be32(NFTA_SET_KEY_TYPE, s.key_type_id());
                w.put_be32(NFTA_SET_KEY_LEN, s.key_len());
                match s.data {
                    Some(MapData::Verdict) => {
                        w.put_be32(NFTA_SET_DATA_TYPE, NFT_DATA_VERDICT);
                        w.put_be32(NFTA_SET_DATA_LEN, 0);
                    }
                    Some(MapData::Value(d)) => {
                        w.put_be32(NFTA_SET_DATA_TYPE, d.id());
                        w.put_be32(NFTA_SET_DATA_LEN, d.size());
                    }
                    None => {}
                }
                if let Some(id) = ids(&s.name) {
                    w.put_be32(NFTA_SET_ID, id);
                }
                if let Some(t) = s.timeout_ms {
                    w.put_be64(NFTA_SET_TIMEOUT, t);
                }
                if s.concat_intervals() {
                    w.nest(NFTA_SET_DESC, |w| {
                        w.nest(NFTA_SET_DESC_CONCAT, |w| {
                            for len in s.field_lens() {
                                w.nest(NFTA_LIST_ELEM, |w| w.put_be32(NFTA_SET_FIELD_LEN, len));
                            }
                        });
                    });
                }
                w.put(NFTA_SET_USERDATA, &s.userdata());
                (NFT_MSG_NEWSET, NLM_F_CREATE)
            }
            OpKind::DelSet(s) => {
                w.put_strz(NFTA_SET_TABLE, t);
                w.put_strz(NFTA_SET_NAME, s);
                (NFT_MSG_DELSET, 0)
            }
            OpKind::FlushSet(s) => {
                // nft sends the set name first here.
                w.put_strz(NFTA_SET_ELEM_LIST_SET, s);
                w.put_strz(NFTA_SET_ELEM_LIST_TABLE, t);
                (NFT_MSG_DELSETELEM, 0)
            }
            OpKind::AddElems { set, elems } => {
                w.put_strz(NFTA_SET_ELEM_LIST_TABLE, t);
                w.put_strz(NFTA_SET_ELEM_LIST_SET, set);
                if let Some(id) = ids(set) {
                    w.put_be32(NFTA_SET_ELEM_LIST_SET_ID, id);
                }
                w.nest(NFTA_SET_ELEM_LIST_ELEMENTS, |w| {
                    for (i, e) in elems.iter().enumerate() {
                        e.encode(w, i, false);
                    }
                });
                (NFT_MSG_NEWSETELEM, NLM_F_CREATE)
            }
            OpKind::DelElems { set, elems } => {
                w.put_strz(NFTA_SET_ELEM_LIST_TABLE, t);
                w.put_strz(NFTA_SET_ELEM_LIST_SET, set);
                w.nest(NFTA_SET_ELEM_LIST_ELEMENTS, |w| {
                    for (i, e) in elems.iter().enumerate() {
                        e.encode(w, i, true);
                    }
                });
                (NFT_MSG_DELSETELEM, 0)
            }
            OpKind::AddCounter(c) => {
                w.put_strz(NFTA_OBJ_TABLE, t);
                w.put_strz(NFTA_OBJ_NAME, c);
                w.put_be32(NFTA_OBJ_TYPE, NFT_OBJECT_COUNTER);
                w.nest(NFTA_OBJ_DATA, |w| {
                    w.put_be64(NFTA_COUNTER_BYTES, 0);
                    w.put_be64(NFTA_COUNTER_PACKETS, 0);
                });
                (NFT_MSG_NEWOBJ, NLM_F_CREATE)
            }
            OpKind::DelCounter(c) => {
                w.put_strz(NFTA_OBJ_TABLE, t);
                w.put_strz(NFTA_OBJ_NAME, c);
                w.put_be32(NFTA_OBJ_TYPE, NFT_OBJECT_COUNTER);
                w.nest(NFTA_OBJ_DATA, |_| {});
                (NFT_MSG_DELOBJ, 0)
            }
        };
        (ty, flags, w.into_bytes())
    }
}

/// Operations sent as ONE nf_tables transaction: `NFNL_MSG_BATCH_BEGIN`, the messages (each
/// asking for an ACK), `NFNL_MSG_BATCH_END`, in one `sendmsg`. The kernel applies all of them
/// or none. Built by appending; applied with [`super::NftSocket::apply`].
///
/// Adds never use `NLM_F_EXCL`, so "ensure" operations are idempotent. Deletes come in two
/// kinds: strict (`del_*`: a missing object fails the transaction) and idempotent
/// (`del_*_if_exists`). For the latter the socket does not rely on `NFT_MSG_DESTROY*`
/// (kernel ≥ 6.3; Debian 12 runs 6.1): it sends the batch, and when the only failures are
/// `ENOENT` answers to idempotent deletes, it drops those operations and sends the rest
/// again (a bounded number of times). No extra round trip in the common case.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    ops: Vec<Op>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Batch {
        Batch::default()
    }

    /// The operations, in order.
    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// No operations.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Appends an operation.
    pub fn push(&mut self, table: &TableRef, kind: OpKind, if_exists: bool) -> &mut Batch {
        self.ops.push(Op {
            table: table.clone(),
            kind,
            if_exists,
        });
        self
    }

    /// Appends every operation of `other`.
    pub fn extend(&mut self, other: Batch) -> &mut Batch {
        self.ops.extend(other.ops);
        self
    }

    /// `nft add table <t>`.
    pub fn add_table(&mut self, t: &TableRef) -> &mut Batch {
        self.push(t, OpKind::AddTable, false)
    }

    /// `nft delete table <t>`; with `if_exists`, a missing table is success.
    pub fn del_table(&mut self, t: &TableRef, if_exists: bool) -> &mut Batch {
        self.push(t, OpKind::DelTable, if_exists)
    }

    /// `nft add chain <t> <name> { type .. hook .. priority ..; comment ".."; }`.
    pub fn add_chain(&mut self, t: &TableRef, chain: Chain) -> &mut Batch {
        self.push(t, OpKind::AddChain(chain), false)
    }

    /// `nft delete chain <t> <name>`.
    pub fn del_chain(&mut self, t: &TableRef, name: &str, if_exists: bool) -> &mut Batch {
        self.push(t, OpKind::DelChain(name.to_string()), if_exists)
    }

    /// `nft flush chain <t> <name>`.
    pub fn flush_chain(&mut self, t: &TableRef, name: &str, if_exists: bool) -> &mut Batch {
        self.push(t, OpKind::FlushChain(name.to_string()), if_exists)
    }

    /// `nft add rule <t> <chain> <exprs> [comment ".."]`.
    pub fn add_rule(&mut self, t: &TableRef, rule: Rule) -> &mut Batch {
        self.push(t, OpKind::AddRule(rule), false)
    }

    /// `nft delete rule <t> <chain> handle <h>`.
    pub fn del_rule(
        &mut self,
        t: &TableRef,
        chain: &str,
        handle: u64,
        if_exists: bool,
    ) -> &mut Batch {
        self.push(
            t,
            OpKind::DelRule {
                chain: chain.to_string(),
                handle,
            },
            if_exists,
        )
    }

    /// `nft add set|map <t> <name> { type ..; }`.
    pub fn add_set(&mut self, t: &TableRef, set: SetDef) -> &mut Batch {
        self.push(t, OpKind::AddSet(set), false)
    }

    /// `nft delete set <t> <name>`.
    pub fn del_set(&mut self, t: &TableRef, name: &str, if_exists: bool) -> &mut Batch {
        self.push(t, OpKind::DelSet(name.to_string()), if_exists)
    }

    /// `nft flush set <t> <name>`.
    pub fn flush_set(&mut self, t: &TableRef, name: &str, if_exists: bool) -> &mut Batch {
        self.push(t, OpKind::FlushSet(name.to_string()), if_exists)
    }

    /// `nft add element <t> <set> { <elems> }`: one message, or several when the elements
    /// would not fit in one netlink attribute (see [`elem_messages`]).
    pub fn add_elems(&mut self, t: &TableRef, set: &str, elems: Vec<Elem>) -> &mut Batch {
        for elems in elem_messages(elems, false) {
            self.push(
                t,
                OpKind::AddElems {
                    set: set.to_string(),
                    elems,
                },
                false,
            );
        }
        self
    }

    /// `nft add counter <t> <name>`.
    pub fn add_counter(&mut self, t: &TableRef, name: &str) -> &mut Batch {
        self.push(t, OpKind::AddCounter(name.to_string()), false)
    }

    /// `nft delete counter <t> <name>`.
    pub fn del_counter(&mut self, t: &TableRef, name: &str, if_exists: bool) -> &mut Batch {
        self.push(t, OpKind::DelCounter(name.to_string()), if_exists)
    }

    /// `nft delete element <t> <set> { <elems> }`. With `if_exists`, each element goes into
    /// its own message so that only the missing ones are dropped on retry.
    pub fn del_elems(
        &mut self,
        t: &TableRef,
        set: &str,
        elems: Vec<Elem>,
        if_exists: bool,
    ) -> &mut Batch {
        if if_exists {
            for e in elems {
                self.push(
                    t,
                    OpKind::DelElems {
                        set: set.to_string(),
                        elems: vec![e],
                    },
                    true,
                );
            }
            self
        } else {
            for elems in elem_messages(elems, true) {
                self.push(
                    t,
                    OpKind::DelElems {
                        set: set.to_string(),
                        elems,
                    },
                    false,
                );
            }
            self
        }
    }

    /// The bytes of the whole transaction, as [`crate::NftSocket::apply`] sends them:
    /// `NFNL_MSG_BATCH_BEGIN` with sequence number `first_seq` (and `NFNL_BATCH_GENID` when
    /// `genid` is given), one message per operation asking for an ACK, `NFNL_MSG_BATCH_END`.
    /// For inspection and tests: split it with [`crate::wire::messages`].
    pub fn encode(&self, first_seq: u32, genid: Option<u32>) -> Vec<u8> {
        let all: Vec<usize> = (0..self.ops.len()).collect();
        encode_batch(self, &all, first_seq, genid)
    }

    /// Set ids like nft assigns them: sets created in this batch are numbered from 1, and
    /// later references to them (lookups, elements) carry the id.
    pub(crate) fn set_ids(&self, include: impl Fn(usize) -> bool) -> HashMap<String, u32> {
        let mut ids = HashMap::new();
        let mut next = 1u32;
        for (i, op) in self.ops.iter().enumerate() {
            if let OpKind::AddSet(s) = &op.kind {
                if include(i) && !ids.contains_key(&s.name) {
                    ids.insert(s.name.clone(), next);
                    next += 1;
                }
            }
        }
        ids
    }
}

/// Flags of a batch message: every message asks for an ACK; adds create, never exclusively.
pub(crate) fn op_flags(extra: u16) -> u16 {
    debug_assert!(extra & NLM_F_EXCL == 0);
    NLM_F_REQUEST | NLM_F_ACK | extra
}

/// The most bytes of elements one message carries: they are one nested netlink attribute,
/// whose length field has 16 bits (65535 bytes with its header). A longer one would be
/// truncated, and the kernel would silently take only the elements that fit.
pub const MAX_ELEMS_BYTES: usize = 60_000;

/// `elems` in groups whose encoding (`key_only`: as a deletion sends them) fits one
/// message's element list ([`MAX_ELEMS_BYTES`]); never an empty group unless `elems` is.
pub fn elem_messages(elems: Vec<Elem>, key_only: bool) -> Vec<Vec<Elem>> {
    let mut out: Vec<Vec<Elem>> = vec![Vec::new()];
    let mut bytes = 0;
    for e in elems {
        let mut w = AttrWriter::new();
        e.encode(&mut w, 0, key_only);
        let size = w.into_bytes().len();
        if bytes + size > MAX_ELEMS_BYTES && out.last().is_some_and(|g| !g.is_empty()) {
            out.push(Vec::new());
            bytes = 0;
        }
        bytes += size;
        if let Some(g) = out.last_mut() {
            g.push(e);
        }
    }
    out
}

/// The bytes of one transaction: `NFNL_MSG_BATCH_BEGIN` (seq `first`, with
/// `NFNL_BATCH_GENID` when given), the `active` operations (seq `first + 1 + k`, each asking
/// for an ACK) and `NFNL_MSG_BATCH_END`.
pub(crate) fn encode_batch(
    batch: &Batch,
    active: &[usize],
    first: u32,
    genid: Option<u32>,
) -> Vec<u8> {
    let ops = batch.ops();
    let ids = batch.set_ids(|i| active.contains(&i));
    let mut buf = Vec::new();
    push_begin(&mut buf, first, genid);
    for (k, &i) in active.iter().enumerate() {
        push_op(&mut buf, &ops[i], &ids, first.wrapping_add(1 + k as u32));
    }
    push_end(&mut buf, first.wrapping_add(1 + active.len() as u32));
    buf
}

/// `NFNL_MSG_BATCH_BEGIN` with sequence number `seq` (and `NFNL_BATCH_GENID` when given).
pub(crate) fn push_begin(buf: &mut Vec<u8>, seq: u32, genid: Option<u32>) {
    let mut begin = AttrWriter::new();
    if let Some(g) = genid {
        begin.put_be32(NFNL_BATCH_GENID, g);
    }
    wire::push_msg(
        buf,
        NFNL_MSG_BATCH_BEGIN,
        NLM_F_REQUEST,
        seq,
        0,
        NFNL_SUBSYS_NFTABLES,
        &begin.into_bytes(),
    );
}

/// One operation's message, asking for an ACK, with sequence number `seq`.
pub(crate) fn push_op(buf: &mut Vec<u8>, op: &Op, ids: &HashMap<String, u32>, seq: u32) {
    push_encoded(buf, op, op.encode(ids), seq);
}

/// The message of `op`, already encoded as `(type, flags, attributes)` by [`Op::encode`].
pub(crate) fn push_encoded(buf: &mut Vec<u8>, op: &Op, encoded: (u16, u16, Vec<u8>), seq: u32) {
    let (ty, flags, attrs) = encoded;
    wire::push_msg(
        buf,
        (NFNL_SUBSYS_NFTABLES << 8) | ty,
        op_flags(flags),
        seq,
        op.table.family.raw(),
        0,
        &attrs,
    );
}

/// `NFNL_MSG_BATCH_END` with sequence number `seq`.
pub(crate) fn push_end(buf: &mut Vec<u8>, seq: u32) {
    wire::push_msg(
        buf,
        NFNL_MSG_BATCH_END,
        NLM_F_REQUEST,
        seq,
        0,
        NFNL_SUBSYS_NFTABLES,
        &[],
    );
}
