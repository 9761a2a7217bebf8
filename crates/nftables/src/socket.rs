//! [`NftSocket`]: an nf_tables socket that applies batches as one transaction and reads
//! objects back (non-dump GETs of one object, or dumps restricted to one table).

use crate::batch::{encode_batch, push_begin, push_end, Batch};
use crate::decode::{ChainInfo, CounterInfo, ElemInfo, RuleInfo, SetInfo, TableInfo};
use crate::encoded::EncodedBatch;
use crate::error::NftError;
use crate::expr::{Data, Expr};
use crate::object::{Elem, TableRef};
use crate::sock::{self, NlSocket, OwnedMsg, Request};
use crate::uapi::*;
use crate::wire::{self, AttrWriter};

/// How often a dump interrupted by a concurrent ruleset change (`NLM_F_DUMP_INTR`) is retried.
const DUMP_ATTEMPTS: usize = 5;
/// Upper bound on resends of a batch whose idempotent deletes hit missing objects.
const MAX_APPLY_ATTEMPTS: usize = 8;

/// What [`NftSocket::rules_and_elems`] read: the rules of each chain, the element of each key.
pub type RulesAndElems = (Vec<Vec<RuleInfo>>, Vec<Option<ElemInfo>>);

/// An nf_tables socket in the calling thread's network namespace.
#[derive(Debug)]
pub struct NftSocket {
    sock: NlSocket,
}

impl NftSocket {
    /// Opens the socket (`socket(AF_NETLINK, SOCK_RAW, NETLINK_NETFILTER)`).
    pub fn open() -> Result<NftSocket, NftError> {
        let sock = NlSocket::open().map_err(|source| NftError::Io {
            op: "open netlink socket".into(),
            source,
        })?;
        Ok(NftSocket { sock })
    }

    /// Applies `batch` as one transaction (equivalent: `nft -f <file>` with the batch's
    /// commands). Idempotent deletes that find nothing are dropped and the rest resent.
    pub fn apply(&mut self, batch: &Batch) -> Result<(), NftError> {
        self.apply_inner(batch, None)
    }

    /// Like [`NftSocket::apply`], but the kernel refuses the batch (`ERESTART`, see
    /// [`NftError::is_generation_changed`]) if the ruleset changed since generation `genid`
    /// ([`NftSocket::generation`]): read, decide, then write without a race.
    pub fn apply_at(&mut self, batch: &Batch, genid: u32) -> Result<(), NftError> {
        self.apply_inner(batch, Some(genid))
    }

    fn apply_inner(&mut self, batch: &Batch, genid: Option<u32>) -> Result<(), NftError> {
        for op in batch.ops() {
            op.validate().map_err(|msg| NftError::Invalid {
                op: op.describe(),
                msg,
            })?;
        }
        let ops = batch.ops();
        let mut skipped = vec![false; ops.len()];
        let mut last_err = None;
        for _ in 0..MAX_APPLY_ATTEMPTS {
            let active: Vec<usize> = (0..ops.len()).filter(|&i| !skipped[i]).collect();
            if active.is_empty() {
                return Ok(());
            }
            let errors = self.send_batch(batch, &active, genid)?;
            if errors.is_empty() {
                return Ok(());
            }
            let mut retry = false;
            for (i, errno, _) in &errors {
                if ops[*i].if_exists && *errno == nix::errno::Errno::ENOENT as i32 {
                    skipped[*i] = true;
                    retry = true;
                }
            }
            let first = errors.into_iter().find(|(i, _, _)| !skipped[*i]);
            if !retry {
                if let Some((i, errno, extack)) = first {
                    return Err(NftError::kernel(ops[i].describe(), errno, extack));
                }
            }
            last_err = first.map(|(i, errno, extack)| (ops[i].describe(), errno, extack));
        }
        Err(match last_err {
            Some((op, errno, extack)) => NftError::kernel(op, errno, extack),
            None => NftError::Protocol {
                op: "apply batch".into(),
                msg: "too many resends".into(),
            },
        })
    }

    /// Sends the `active` operations of `batch` as one transaction; returns the failed ones
    /// as (operation index, errno, extended ack), in batch order.
    fn send_batch(
        &mut self,
        batch: &Batch,
        active: &[usize],
        genid: Option<u32>,
    ) -> Result<Vec<(usize, i32, Option<String>)>, NftError> {
        let n = u32::try_from(active.len() + 2).unwrap_or(u32::MAX);
        let first = self.sock.alloc_seq(n);
        let buf = encode_batch(batch, active, first, genid);
        let what = format!("batch of {} operations", active.len());
        self.sock.reserve(buf.len(), active.len());
        self.sock
            .send(&buf)
            .map_err(|e| NftError::from_sock(what.as_str(), e))?;
        let failed = self.acks(first, active.len(), &what)?;
        Ok(failed
            .into_iter()
            .map(|(k, e, x)| (active[k], e, x))
            .collect())
    }

    /// Applies `batch`, encoded as it was built, as one transaction. Nothing is sent when
    /// the batch refused an operation ([`EncodedBatch::push`]); a refusal of the kernel names
    /// the first operation it refused.
    pub fn apply_encoded(&mut self, batch: &mut EncodedBatch) -> Result<(), NftError> {
        batch.check()?;
        let count = batch.len();
        if count == 0 {
            return Ok(());
        }
        let first = self
            .sock
            .alloc_seq(u32::try_from(count + 2).unwrap_or(u32::MAX));
        batch.number(first.wrapping_add(1));
        let mut begin = Vec::new();
        push_begin(&mut begin, first, None);
        let mut end = Vec::new();
        push_end(&mut end, first.wrapping_add(1 + count as u32));
        let mut parts: Vec<&[u8]> = Vec::with_capacity(batch.chunks().len() + 2);
        parts.push(&begin);
        parts.extend(batch.chunks().iter().map(Vec::as_slice));
        parts.push(&end);
        let what = format!("batch of {count} operations");
        self.sock
            .reserve(batch.bytes() + begin.len() + end.len(), count);
        self.sock
            .send_parts(&parts)
            .map_err(|e| NftError::from_sock(what.as_str(), e))?;
        let failed = self.acks(first, count, &what)?;
        match failed.into_iter().next() {
            Some((k, errno, extack)) => Err(NftError::kernel(batch.describe(k), errno, extack)),
            None => Ok(()),
        }
    }

    /// Collects the answers to the `n` messages of a transaction whose `BATCH_BEGIN` had
    /// sequence number `first`: the failed ones as (index in the transaction, errno,
    /// extended ack), in order.
    fn acks(
        &mut self,
        first: u32,
        n: usize,
        what: &str,
    ) -> Result<Vec<(usize, i32, Option<String>)>, NftError> {
        let mut results: Vec<Option<(i32, Option<String>)>> = vec![None; n];
        let mut answered = vec![false; n];
        let mut pending = n;
        while pending > 0 {
            let dgram = self.sock.recv().map_err(|e| NftError::from_sock(what, e))?;
            for m in wire::messages(&dgram) {
                let Some((code, extack)) = m.error() else {
                    continue;
                };
                if m.seq == first {
                    // The whole batch was refused (permissions, generation changed...).
                    if code != 0 {
                        return Err(NftError::kernel(what, -code, extack));
                    }
                    continue;
                }
                let k = m.seq.wrapping_sub(first).wrapping_sub(1) as usize;
                if k >= n || answered[k] {
                    continue;
                }
                answered[k] = true;
                pending -= 1;
                if code != 0 {
                    results[k] = Some((-code, extack));
                }
            }
        }
        Ok(results
            .into_iter()
            .enumerate()
            .filter_map(|(k, r)| r.map(|(e, x)| (k, e, x)))
            .collect())
    }

    fn transact(&mut self, op: &str, reqs: Vec<Request>) -> Result<Vec<sock::Reply>, NftError> {
        self.sock
            .transact(NFNL_SUBSYS_NFTABLES, &reqs)
            .map_err(|e| NftError::from_sock(op, e))
    }

    /// One non-dump GET; `Ok(None)` on `ENOENT`.
    fn get_one(
        &mut self,
        op: &str,
        ty: u16,
        family: u8,
        attrs: Vec<u8>,
    ) -> Result<Option<OwnedMsg>, NftError> {
        let mut r = self.transact(
            op,
            vec![Request {
                ty,
                flags: NLM_F_REQUEST | NLM_F_ACK,
                family,
                attrs,
            }],
        )?;
        let reply = r.pop().unwrap_or_default();
        match reply.error {
            Some((errno, _)) if errno == nix::errno::Errno::ENOENT as i32 => Ok(None),
            Some((errno, extack)) => Err(NftError::kernel(op, errno, extack)),
            None => Ok(reply.msgs.into_iter().next()),
        }
    }

    /// A dump, retried while the kernel flags it as interrupted; `Ok(None)` on `ENOENT`.
    fn dump(
        &mut self,
        op: &str,
        ty: u16,
        family: u8,
        attrs: Vec<u8>,
    ) -> Result<Option<Vec<OwnedMsg>>, NftError> {
        for _ in 0..DUMP_ATTEMPTS {
            let mut r = self.transact(
                op,
                vec![Request {
                    ty,
                    flags: NLM_F_REQUEST | NLM_F_DUMP,
                    family,
                    attrs: attrs.clone(),
                }],
            )?;
            let reply = r.pop().unwrap_or_default();
            match reply.error {
                Some((errno, _)) if errno == nix::errno::Errno::ENOENT as i32 => return Ok(None),
                Some((errno, extack)) => return Err(NftError::kernel(op, errno, extack)),
                None if reply.interrupted => continue,
                None => return Ok(Some(reply.msgs)),
            }
        }
        Err(NftError::Protocol {
            op: op.into(),
            msg: format!("dump interrupted {DUMP_ATTEMPTS} times by concurrent changes"),
        })
    }

    /// The ruleset generation (`NFT_MSG_GETGEN`), for [`NftSocket::apply_at`]. No nft
    /// command prints it; nft reads it the same way before each batch to keep its cache.
    pub fn generation(&mut self) -> Result<u32, NftError> {
        let op = "get ruleset generation";
        let m = self
            .get_one(op, NFT_MSG_GETGEN, 0, Vec::new())?
            .ok_or_else(|| NftError::Protocol {
                op: op.into(),
                msg: "no generation in reply".into(),
            })?;
        m.as_msg()
            .nf_attrs()
            .attr(NFTA_GEN_ID)
            .and_then(|a| a.be32())
            .ok_or_else(|| NftError::Protocol {
                op: op.into(),
                msg: "no NFTA_GEN_ID".into(),
            })
    }

    /// `nft list table <t>` without its contents; `None` if it does not exist.
    pub fn get_table(&mut self, t: &TableRef) -> Result<Option<TableInfo>, NftError> {
        let mut w = AttrWriter::new();
        w.put_strz(NFTA_TABLE_NAME, &t.name);
        let op = format!("get table {t}");
        Ok(self
            .get_one(&op, NFT_MSG_GETTABLE, t.family.raw(), w.into_bytes())?
            .map(|m| TableInfo::decode(m.as_msg().nf_attrs())))
    }

    /// `nft list chain <t> <name>` without rules; `None` if it (or the table) does not exist.
    pub fn get_chain(&mut self, t: &TableRef, name: &str) -> Result<Option<ChainInfo>, NftError> {
        Ok(self.get_chains(t, &[name])?.pop().flatten())
    }

    /// `nft list chain <t> <name>` for several chains in one round trip (pipelined non-dump
    /// GETs), in the order asked; `None` for the missing ones.
    pub fn get_chains(
        &mut self,
        t: &TableRef,
        names: &[&str],
    ) -> Result<Vec<Option<ChainInfo>>, NftError> {
        let pairs: Vec<(&TableRef, &str)> = names.iter().map(|n| (t, *n)).collect();
        self.get_chains_in(&pairs)
    }

    /// `nft list chain <t> <name>` for chains of several tables (of any families), still in
    /// one round trip; `None` for a missing chain or table. Non-dump GETs: nothing but the
    /// named chains is read.
    pub fn get_chains_in(
        &mut self,
        chains: &[(&TableRef, &str)],
    ) -> Result<Vec<Option<ChainInfo>>, NftError> {
        let reqs = chains
            .iter()
            .map(|(t, n)| {
                let mut w = AttrWriter::new();
                w.put_strz(NFTA_CHAIN_TABLE, &t.name);
                w.put_strz(NFTA_CHAIN_NAME, n);
                Request {
                    ty: NFT_MSG_GETCHAIN,
                    flags: NLM_F_REQUEST | NLM_F_ACK,
                    family: t.family.raw(),
                    attrs: w.into_bytes(),
                }
            })
            .collect();
        let op = match chains.first() {
            Some((t, _)) if chains.iter().all(|(u, _)| u == t) => {
                format!("get chains of table {t}")
            }
            _ => "get chains".to_string(),
        };
        let replies = self.transact(&op, reqs)?;
        replies
            .into_iter()
            .zip(chains)
            .map(|(r, (t, n))| match r.error {
                Some((errno, _)) if errno == nix::errno::Errno::ENOENT as i32 => Ok(None),
                Some((errno, extack)) => Err(NftError::kernel(
                    format!("get chain {t} {n}"),
                    errno,
                    extack,
                )),
                None => Ok(r
                    .msgs
                    .first()
                    .map(|m| ChainInfo::decode(m.as_msg().nf_attrs()))),
            })
            .collect()
    }

    /// `nft -a list chain <t> <chain>` (or all rules of the table with `None`): a dump
    /// filtered by the kernel to our table (and chain). Missing table/chain: empty.
    pub fn list_rules(
        &mut self,
        t: &TableRef,
        chain: Option<&str>,
    ) -> Result<Vec<RuleInfo>, NftError> {
        let op = match chain {
            Some(c) => format!("list chain {t} {c}"),
            None => format!("list rules of table {t}"),
        };
        let req = rules_dump(t, chain);
        let msgs = self
            .dump(&op, req.ty, req.family, req.attrs)?
            .unwrap_or_default();
        Ok(rules_of(t, chain, &msgs))
    }

    /// [`NftSocket::list_rules`] of each of `chains` (empty for a missing chain or table)
    /// and [`NftSocket::get_elems_in`] of `keys`: the first chain's dump and the element
    /// reads go in one `sendmsg`, the other chains follow one dump each (the kernel refuses
    /// a dump queued behind an unfinished one with `EBUSY`, and a dump finishes only once
    /// its reader has taken its first part).
    pub fn rules_and_elems(
        &mut self,
        t: &TableRef,
        chains: &[&str],
        keys: &[(&str, &Elem)],
    ) -> Result<RulesAndElems, NftError> {
        let Some((first, rest)) = chains.split_first() else {
            return Ok((Vec::new(), self.get_elems_in(t, keys)?));
        };
        let mut reqs = vec![rules_dump(t, Some(first))];
        reqs.extend(keys.iter().map(|(set, k)| elem_get(t, set, k)));
        let op = format!("read chain {t} {first} and elements");
        let mut replies = self.transact(&op, reqs)?.into_iter();
        let r = replies.next().unwrap_or_default();
        let first_rules = match r.error {
            Some((errno, _)) if errno == nix::errno::Errno::ENOENT as i32 => Vec::new(),
            Some((errno, extack)) => {
                return Err(NftError::kernel(
                    format!("list chain {t} {first}"),
                    errno,
                    extack,
                ))
            }
            None if r.interrupted => self.list_rules(t, Some(first))?,
            None => rules_of(t, Some(first), &r.msgs),
        };
        let elems = replies
            .zip(keys)
            .map(|(r, (set, k))| elem_of(t, set, k, r))
            .collect::<Result<_, _>>()?;
        let mut rules = vec![first_rules];
        for c in rest {
            rules.push(self.list_rules(t, Some(c))?);
        }
        Ok((rules, elems))
    }

    /// `nft list chains table <t>`, restricted to chains that hold rules or are the target
    /// of a jump/goto in our rules or verdict maps. The kernel cannot restrict a chain dump
    /// to one table (it dumps every table of the family), so instead of reading other
    /// owners' chains this lists our rules and our maps (dumps the kernel filters by table)
    /// and GETs each chain found. A chain that is empty and unreferenced is not listed.
    pub fn list_chains(&mut self, t: &TableRef) -> Result<Vec<ChainInfo>, NftError> {
        let mut names = std::collections::BTreeSet::new();
        for r in self.list_rules(t, None)? {
            names.insert(r.chain.clone());
            for e in &r.exprs {
                if let Expr::Immediate {
                    data: Data::Verdict(v),
                    ..
                } = e
                {
                    if let Some(c) = v.chain() {
                        names.insert(c.to_string());
                    }
                }
            }
        }
        for s in self.list_sets(t)? {
            if s.data_type != Some(NFT_DATA_VERDICT) {
                continue;
            }
            for e in self.list_elems(t, &s.name)?.unwrap_or_default() {
                if let Some(c) = e.target_chain() {
                    names.insert(c.to_string());
                }
            }
        }
        let list: Vec<&str> = names.iter().map(String::as_str).collect();
        Ok(self.get_chains(t, &list)?.into_iter().flatten().collect())
    }

    /// `nft list set <t> <name>` without elements; `None` if missing.
    pub fn get_set(&mut self, t: &TableRef, name: &str) -> Result<Option<SetInfo>, NftError> {
        let mut w = AttrWriter::new();
        w.put_strz(NFTA_SET_TABLE, &t.name);
        w.put_strz(NFTA_SET_NAME, name);
        let op = format!("get set {t} {name}");
        Ok(self
            .get_one(&op, NFT_MSG_GETSET, t.family.raw(), w.into_bytes())?
            .map(|m| SetInfo::decode(m.as_msg().nf_attrs())))
    }

    /// `nft list sets table <t>`: a dump of the sets of our table only.
    pub fn list_sets(&mut self, t: &TableRef) -> Result<Vec<SetInfo>, NftError> {
        let mut w = AttrWriter::new();
        w.put_strz(NFTA_SET_TABLE, &t.name);
        let op = format!("list sets of table {t}");
        let msgs = self
            .dump(&op, NFT_MSG_GETSET, t.family.raw(), w.into_bytes())?
            .unwrap_or_default();
        Ok(msgs
            .iter()
            .map(|m| m.as_msg().nf_attrs())
            .filter(|a| a.attr(NFTA_SET_TABLE).map(|x| x.string()).as_deref() == Some(&t.name))
            .map(SetInfo::decode)
            .collect())
    }

    /// `nft list set <t> <set>`: every element; `None` if the set (or table) is missing.
    pub fn list_elems(
        &mut self,
        t: &TableRef,
        set: &str,
    ) -> Result<Option<Vec<ElemInfo>>, NftError> {
        let mut w = AttrWriter::new();
        w.put_strz(NFTA_SET_ELEM_LIST_TABLE, &t.name);
        w.put_strz(NFTA_SET_ELEM_LIST_SET, set);
        let op = format!("list set {t} {set}");
        let Some(msgs) = self.dump(&op, NFT_MSG_GETSETELEM, t.family.raw(), w.into_bytes())? else {
            return Ok(None);
        };
        Ok(Some(
            msgs.iter()
                .flat_map(|m| ElemInfo::decode_list(m.as_msg().nf_attrs()))
                .collect(),
        ))
    }

    /// `nft get element <t> <set> { <key> }` for each key, in one round trip (pipelined
    /// non-dump GETs). `None` for keys that are absent, and for all of them when the set is.
    pub fn get_elems(
        &mut self,
        t: &TableRef,
        set: &str,
        keys: &[Elem],
    ) -> Result<Vec<Option<ElemInfo>>, NftError> {
        let pairs: Vec<(&str, &Elem)> = keys.iter().map(|k| (set, k)).collect();
        self.get_elems_in(t, &pairs)
    }

    /// `nft get element <t> <set> { <key> }` for keys of several sets of one table, still
    /// in one round trip (like [`NftSocket::get_elems`]).
    pub fn get_elems_in(
        &mut self,
        t: &TableRef,
        keys: &[(&str, &Elem)],
    ) -> Result<Vec<Option<ElemInfo>>, NftError> {
        let reqs = keys.iter().map(|(set, k)| elem_get(t, set, k)).collect();
        let op = format!("get elements of table {t}");
        let replies = self.transact(&op, reqs)?;
        replies
            .into_iter()
            .zip(keys)
            .map(|(r, (set, k))| elem_of(t, set, k, r))
            .collect()
    }

    /// `nft list counters table <t>`: the named counters of our table and their values (a
    /// dump the kernel filters by table). Missing table: empty.
    pub fn list_counters(&mut self, t: &TableRef) -> Result<Vec<CounterInfo>, NftError> {
        let mut w = AttrWriter::new();
        w.put_strz(NFTA_OBJ_TABLE, &t.name);
        w.put_be32(NFTA_OBJ_TYPE, NFT_OBJECT_COUNTER);
        let op = format!("list counters of table {t}");
        let msgs = self
            .dump(&op, NFT_MSG_GETOBJ, t.family.raw(), w.into_bytes())?
            .unwrap_or_default();
        Ok(msgs
            .iter()
            .map(|m| m.as_msg().nf_attrs())
            .filter(|a| a.attr(NFTA_OBJ_TABLE).map(|x| x.string()).as_deref() == Some(&t.name))
            .filter_map(CounterInfo::decode)
            .collect())
    }
}

/// The dump of `t`'s rules (of `chain` only, when given).
fn rules_dump(t: &TableRef, chain: Option<&str>) -> Request {
    let mut w = AttrWriter::new();
    w.put_strz(NFTA_RULE_TABLE, &t.name);
    if let Some(c) = chain {
        w.put_strz(NFTA_RULE_CHAIN, c);
    }
    Request {
        ty: NFT_MSG_GETRULE,
        flags: NLM_F_REQUEST | NLM_F_DUMP,
        family: t.family.raw(),
        attrs: w.into_bytes(),
    }
}

/// The rules of a dump [`rules_dump`] asked for.
fn rules_of(t: &TableRef, chain: Option<&str>, msgs: &[OwnedMsg]) -> Vec<RuleInfo> {
    msgs.iter()
        .filter_map(|m| {
            let a = m.as_msg().nf_attrs();
            // Defensive: only rules of our table, even if a kernel ignored the filter.
            if a.attr(NFTA_RULE_TABLE).map(|x| x.string()).as_deref() != Some(&t.name) {
                return None;
            }
            Some(RuleInfo::decode(a))
        })
        .filter(|r| chain.is_none_or(|c| r.chain == c))
        .collect()
}

/// `nft get element <t> <set> { <key> }` as a request.
fn elem_get(t: &TableRef, set: &str, k: &Elem) -> Request {
    let mut w = AttrWriter::new();
    w.put_strz(NFTA_SET_ELEM_LIST_TABLE, &t.name);
    w.put_strz(NFTA_SET_ELEM_LIST_SET, set);
    w.nest(NFTA_SET_ELEM_LIST_ELEMENTS, |w| {
        w.nest(NFTA_LIST_ELEM, |w| {
            w.nest(NFTA_SET_ELEM_KEY, |w| w.put(NFTA_DATA_VALUE, &k.key));
        });
    });
    Request {
        ty: NFT_MSG_GETSETELEM,
        flags: NLM_F_REQUEST | NLM_F_ACK,
        family: t.family.raw(),
        attrs: w.into_bytes(),
    }
}

/// The answer to [`elem_get`]: `None` when the element (or its set, or table) is missing.
fn elem_of(
    t: &TableRef,
    set: &str,
    k: &Elem,
    r: sock::Reply,
) -> Result<Option<ElemInfo>, NftError> {
    match r.error {
        Some((errno, _)) if errno == nix::errno::Errno::ENOENT as i32 => Ok(None),
        Some((errno, extack)) => Err(NftError::kernel(
            format!("get element {t} {set} {{ {} }}", k.label),
            errno,
            extack,
        )),
        None => Ok(r
            .msgs
            .iter()
            .flat_map(|m| ElemInfo::decode_list(m.as_msg().nf_attrs()))
            .next()),
    }
}
