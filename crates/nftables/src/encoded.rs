//! [`EncodedBatch`]: a transaction encoded as its operations are added.
//!
//! A [`Batch`] keeps every operation as data until it is applied, and builds the encoding
//! then: for a table of tens of thousands of rules, the operations and their bytes are in
//! memory together. An `EncodedBatch` encodes each operation as it is added and keeps only
//! the bytes, in chunks sent together in one `sendmsg`: one transaction, all or nothing,
//! like a `Batch`. The price is that it cannot drop operations and send the rest again, so
//! it takes no idempotent deletes, and an operation the kernel refuses is named from its
//! message.

use std::collections::HashMap;

use crate::batch::{push_encoded, Batch, Op, OpKind};
use crate::error::NftError;
use crate::uapi::*;
use crate::wire::{self, Msg};

/// Bytes of one chunk: large enough that a load of tens of megabytes is a few dozen
/// pieces of one `sendmsg` (the kernel takes at most 1024), small enough that a chunk
/// neither copies much when it grows nor holds much it does not use.
const CHUNK: usize = 256 * 1024;

/// Offset of `nlmsg_seq` in a netlink message header.
const SEQ_AT: usize = 8;

/// Operations encoded for one transaction as they are added (see the module).
#[derive(Debug, Default)]
pub struct EncodedBatch {
    /// The messages, each whole in one chunk, sequence numbers still zero.
    chunks: Vec<Vec<u8>>,
    /// Number of messages.
    count: usize,
    /// Ids of the sets created in this batch (as [`Batch`] numbers them).
    ids: HashMap<String, u32>,
    /// The first operation refused before encoding: (operation, why).
    invalid: Option<(String, String)>,
}

impl EncodedBatch {
    /// An empty batch.
    pub fn new() -> EncodedBatch {
        EncodedBatch::default()
    }

    /// Encodes `op` and appends its message. An operation over the kernel's limits, or an
    /// idempotent delete, is not encoded: the batch remembers the first such refusal and
    /// [`crate::NftSocket::apply_encoded`] returns it without sending anything.
    pub fn push(&mut self, op: &Op) {
        if self.invalid.is_some() {
            return;
        }
        let refused = if op.if_exists {
            Err("an encoded batch takes no idempotent deletes (it cannot resend)".to_string())
        } else {
            op.validate()
        };
        if let Err(msg) = refused {
            self.invalid = Some((op.describe(), msg));
            return;
        }
        if let OpKind::AddSet(s) = &op.kind {
            if !self.ids.contains_key(&s.name) {
                let id = u32::try_from(self.ids.len() + 1).unwrap_or(u32::MAX);
                self.ids.insert(s.name.clone(), id);
            }
        }
        let encoded = op.encode(&self.ids);
        let size = wire::msg_len(encoded.2.len());
        let fits = self
            .chunks
            .last()
            .is_some_and(|c| c.is_empty() || c.len() + size <= CHUNK);
        if !fits {
            self.chunks.push(Vec::with_capacity(CHUNK.max(size)));
        }
        if let Some(chunk) = self.chunks.last_mut() {
            push_encoded(chunk, op, encoded, 0);
            self.count += 1;
        }
    }

    /// Encodes every operation of `batch`, in order, and drops them.
    pub fn append(&mut self, batch: Batch) {
        for op in batch.ops() {
            self.push(op);
        }
    }

    /// Number of operations (messages) encoded.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Nothing encoded (and nothing refused).
    pub fn is_empty(&self) -> bool {
        self.count == 0 && self.invalid.is_none()
    }

    /// Bytes of the encoded messages.
    pub fn bytes(&self) -> usize {
        self.chunks.iter().map(Vec::len).sum()
    }

    /// The messages in order (their sequence numbers are set when the batch is sent), for
    /// inspection and tests.
    pub fn messages(&self) -> impl Iterator<Item = Msg<'_>> {
        self.chunks.iter().flat_map(|c| wire::messages(c))
    }

    /// The chunks, for one `sendmsg`.
    pub(crate) fn chunks(&self) -> &[Vec<u8>] {
        &self.chunks
    }

    /// The refusal [`EncodedBatch::push`] remembered, if any.
    pub(crate) fn check(&self) -> Result<(), NftError> {
        match &self.invalid {
            Some((op, msg)) => Err(NftError::Invalid {
                op: op.clone(),
                msg: msg.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Gives the messages the sequence numbers `first`, `first + 1`, ...
    pub(crate) fn number(&mut self, first: u32) {
        let mut seq = first;
        for chunk in &mut self.chunks {
            let mut at = 0;
            while at + NLMSG_HDRLEN <= chunk.len() {
                let len =
                    u32::from_ne_bytes([chunk[at], chunk[at + 1], chunk[at + 2], chunk[at + 3]])
                        as usize;
                chunk[at + SEQ_AT..at + SEQ_AT + 4].copy_from_slice(&seq.to_ne_bytes());
                seq = seq.wrapping_add(1);
                at += wire::align4(len.max(NLMSG_HDRLEN));
            }
        }
    }

    /// Operation `k` in nft syntax, read back from its message (for errors).
    pub(crate) fn describe(&self, k: usize) -> String {
        self.messages()
            .nth(k)
            .map(|m| describe_msg(&m))
            .unwrap_or_else(|| format!("operation {k} of an encoded batch"))
    }
}

/// A batch message in nft syntax: `add rule inet ferro_services svc-...`.
fn describe_msg(m: &Msg<'_>) -> String {
    let attrs = m.nf_attrs();
    let text = |a: Option<wire::Attr<'_>>| a.map(|a| a.string()).unwrap_or_default();
    let family = match m.nf_family() {
        1 => "inet",
        2 => "ip",
        10 => "ip6",
        _ => "?",
    };
    // Every object's table is attribute 1.
    let table = text(attrs.attr(NFTA_TABLE_NAME));
    let (verb, name) = match m.ty & 0xff {
        NFT_MSG_NEWTABLE => ("add table", None),
        NFT_MSG_DELTABLE => ("delete table", None),
        NFT_MSG_NEWCHAIN => ("add chain", attrs.attr(NFTA_CHAIN_NAME)),
        NFT_MSG_DELCHAIN => ("delete chain", attrs.attr(NFTA_CHAIN_NAME)),
        NFT_MSG_NEWRULE => ("add rule", attrs.attr(NFTA_RULE_CHAIN)),
        NFT_MSG_DELRULE => ("delete rule", attrs.attr(NFTA_RULE_CHAIN)),
        NFT_MSG_NEWSET => ("add set", attrs.attr(NFTA_SET_NAME)),
        NFT_MSG_DELSET => ("delete set", attrs.attr(NFTA_SET_NAME)),
        NFT_MSG_NEWSETELEM => ("add element", attrs.attr(NFTA_SET_ELEM_LIST_SET)),
        NFT_MSG_DELSETELEM => ("delete element", attrs.attr(NFTA_SET_ELEM_LIST_SET)),
        NFT_MSG_NEWOBJ => ("add counter", attrs.attr(NFTA_OBJ_NAME)),
        NFT_MSG_DELOBJ => ("delete counter", attrs.attr(NFTA_OBJ_NAME)),
        _ => ("message", None),
    };
    match name {
        Some(n) => format!("{verb} {family} {table} {}", n.string()),
        None => format!("{verb} {family} {table}"),
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;
    use crate::{Chain, DataType, Dir, Elem, RuleBuilder, SetDef, TableRef, Verdict};

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// A table with sets created in the batch and referenced by elements and rules, and
    /// `rules` rules.
    fn sample(rules: usize) -> Batch {
        let t = TableRef::inet("ferro_test");
        let mut b = Batch::new();
        b.add_table(&t).del_table(&t, false).add_table(&t);
        b.add_chain(&t, Chain::regular("c"));
        b.add_set(&t, SetDef::set("a", vec![DataType::Ipv4Addr]))
            .add_set(&t, SetDef::vmap("m", vec![DataType::Ipv4Addr]))
            .add_elems(&t, "a", vec![Elem::addr(ip("10.0.0.1"))])
            .add_elems(
                &t,
                "m",
                vec![Elem::addr(ip("10.0.0.2")).with_verdict(Verdict::Jump("c".into()))],
            );
        for i in 0..rules {
            let r = RuleBuilder::new()
                .addr(Dir::Src, ip(&format!("10.1.{}.{}", i / 250, i % 250)))
                .addr_in_set(false, Dir::Dst, "a", false)
                .verdict(Verdict::Accept)
                .build("c");
            b.add_rule(&t, r);
        }
        b
    }

    fn encoded(b: &Batch) -> EncodedBatch {
        let mut e = EncodedBatch::new();
        e.append(b.clone());
        e
    }

    /// What `apply_encoded` sends, in one buffer.
    fn wire_bytes(e: &mut EncodedBatch, first: u32) -> Vec<u8> {
        e.check().unwrap();
        e.number(first.wrapping_add(1));
        let mut buf = Vec::new();
        crate::batch::push_begin(&mut buf, first, None);
        for c in e.chunks() {
            buf.extend_from_slice(c);
        }
        crate::batch::push_end(&mut buf, first.wrapping_add(1 + e.len() as u32));
        buf
    }

    #[test]
    fn it_sends_the_bytes_of_the_same_batch_of_operations() {
        let b = sample(3);
        let mut e = encoded(&b);
        assert_eq!(e.len(), b.len());
        assert_eq!(e.chunks().len(), 1);
        assert_eq!(wire_bytes(&mut e, 1000), b.encode(1000, None));
    }

    #[test]
    fn a_large_batch_is_kept_in_chunks_no_message_split() {
        let b = sample(5000);
        let mut e = encoded(&b);
        assert!(e.chunks().len() > 1, "{} chunks", e.chunks().len());
        assert!(e.chunks().iter().all(|c| c.len() <= CHUNK));
        assert_eq!(e.messages().count(), b.len());
        // Sequence numbers run on across chunks, wrapping like the socket's.
        assert_eq!(
            wire_bytes(&mut e, u32::MAX - 10),
            b.encode(u32::MAX - 10, None)
        );
    }

    #[test]
    fn idempotent_deletes_and_names_over_the_limit_are_refused_before_sending() {
        let t = TableRef::inet("ferro_test");
        let mut b = Batch::new();
        b.add_table(&t).flush_chain(&t, "c", true).add_table(&t);
        let e = encoded(&b);
        let err = e.check().unwrap_err().to_string();
        assert!(err.contains("flush chain inet ferro_test c"), "{err}");
        assert!(err.contains("idempotent"), "{err}");
        assert!(!e.is_empty());

        let mut b = Batch::new();
        b.add_chain(&t, Chain::regular("x".repeat(300)));
        let err = encoded(&b).check().unwrap_err().to_string();
        assert!(err.contains("chain name"), "{err}");
    }

    #[test]
    fn a_refused_message_is_named_in_nft_syntax() {
        let e = encoded(&sample(1));
        let all: Vec<String> = (0..e.len()).map(|k| e.describe(k)).collect();
        assert_eq!(
            all,
            [
                "add table inet ferro_test",
                "delete table inet ferro_test",
                "add table inet ferro_test",
                "add chain inet ferro_test c",
                "add set inet ferro_test a",
                "add set inet ferro_test m",
                "add element inet ferro_test a",
                "add element inet ferro_test m",
                "add rule inet ferro_test c",
            ]
        );
        assert_eq!(e.describe(99), "operation 99 of an encoded batch");
    }
}
