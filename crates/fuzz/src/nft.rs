//! nf_tables replies (`ferro_nftables`): a received netlink datagram as the socket reads it
//! (messages filed by sequence number, errors and extended acks), then every table, chain,
//! rule, set and element message decoded, and its expressions printed.
//!
//! Invariants: no panic; what decodes re-encodes with the crate's own encoder (rules,
//! chains, elements, within the kernel's name and comment limits) and decodes back to the
//! same value.

use ferro_nftables::decode::{ChainInfo, ElemInfo, RuleInfo, SetInfo, TableInfo};
use ferro_nftables::sock::{absorb, Reply};
use ferro_nftables::uapi::{
    NFNL_SUBSYS_NFTABLES, NFT_MSG_NEWCHAIN, NFT_MSG_NEWRULE, NFT_MSG_NEWSET, NFT_MSG_NEWSETELEM,
    NFT_MSG_NEWTABLE,
};
use ferro_nftables::wire::{messages, Attrs};
use ferro_nftables::{Batch, Chain, Elem, Rule, TableRef, MAX_COMMENT_LEN, MAX_NAME_LEN};

/// The target (see the module documentation).
pub fn decode(data: &[u8]) {
    // Filed as replies to up to four requests starting at the first message's sequence.
    let first = messages(data).next().map_or(0, |m| m.seq);
    let mut replies: Vec<Reply> = (0..4).map(|_| Reply::default()).collect();
    let mut done = vec![false; replies.len()];
    if let Ok(n) = absorb(data, first, &mut replies, &mut done) {
        assert!(n <= replies.len());
        assert_eq!(n, done.iter().filter(|d| **d).count());
    }
    for m in messages(data) {
        let _ = m.error();
        let _ = (m.nf_family(), m.nf_res_id());
        let attrs = m.nf_attrs();
        if m.ty >> 8 != NFNL_SUBSYS_NFTABLES {
            continue;
        }
        match m.ty & 0xff {
            NFT_MSG_NEWTABLE => {
                let _ = TableInfo::decode(attrs);
            }
            NFT_MSG_NEWCHAIN => chain(attrs),
            NFT_MSG_NEWRULE => rule(attrs),
            NFT_MSG_NEWSET => {
                let _ = SetInfo::decode(attrs);
            }
            NFT_MSG_NEWSETELEM => elems(attrs),
            _ => {}
        }
    }
}

fn name_ok(n: &str) -> bool {
    !n.is_empty() && n.len() <= MAX_NAME_LEN
}

fn comment_ok(c: &Option<String>) -> bool {
    c.as_ref().is_none_or(|c| c.len() <= MAX_COMMENT_LEN)
}

/// The attributes of the only operation of `batch` (after BATCH_BEGIN).
fn encoded_op(batch: &Batch) -> Vec<u8> {
    let bytes = batch.encode(1, None);
    let msgs: Vec<_> = messages(&bytes).collect();
    assert_eq!(msgs.len(), 3, "begin, the operation, end");
    msgs[1].payload[4..].to_vec()
}

fn table() -> TableRef {
    TableRef::inet("fuzz")
}

fn rule(attrs: Attrs<'_>) {
    let r = RuleInfo::decode(attrs);
    for e in &r.exprs {
        let printed = e.to_string();
        assert!(
            printed.starts_with("[ ") && printed.ends_with(" ]"),
            "{printed}"
        );
        let _ = e.normalized();
    }
    if !name_ok(&r.chain) || !comment_ok(&r.comment) {
        return;
    }
    let rule = Rule {
        chain: r.chain.clone(),
        exprs: r.exprs.clone(),
        comment: r.comment.clone(),
    };
    let mut b = Batch::new();
    b.add_rule(&table(), rule);
    let again = RuleInfo::decode(Attrs::new(&encoded_op(&b)));
    assert_eq!(again.chain, r.chain);
    assert_eq!(again.exprs, r.exprs, "rule expressions round trip");
    assert_eq!(again.comment, r.comment);
    assert!(again.matches(&r.exprs));
}

fn chain(attrs: Attrs<'_>) {
    let c = ChainInfo::decode(attrs);
    if !name_ok(&c.name) || !comment_ok(&c.comment) {
        return;
    }
    let mut b = Batch::new();
    b.add_chain(
        &table(),
        Chain {
            name: c.name.clone(),
            base: c.base,
            comment: c.comment.clone(),
        },
    );
    let again = ChainInfo::decode(Attrs::new(&encoded_op(&b)));
    assert_eq!(
        (&again.name, again.base, &again.comment),
        (&c.name, c.base, &c.comment),
        "chain round trip"
    );
}

fn elems(attrs: Attrs<'_>) {
    let list = ElemInfo::decode_list(attrs);
    for e in &list {
        let _ = e.target_chain();
    }
    if list.is_empty() || !list.iter().all(|e| comment_ok(&e.comment)) {
        return;
    }
    let elems: Vec<Elem> = list
        .iter()
        .map(|e| Elem {
            data: e.data.clone(),
            comment: e.comment.clone(),
            ..Elem::raw(e.key.clone())
        })
        .collect();
    let mut b = Batch::new();
    b.add_elems(&table(), "set", elems);
    let again = ElemInfo::decode_list(Attrs::new(&encoded_op(&b)));
    assert_eq!(again, list, "element round trip");
}
