//! Unit tests across modules: batch framing, set ids, limits, userdata, registers and the
//! comparison of sent and dumped expressions. The comparisons with nft's own bytes are in
//! `tests/encoding.rs`.

use std::net::IpAddr;

use crate::batch::encode_batch;
use crate::object::{comment_of, set_comment_of};
use crate::wire::{self, Attrs};
use crate::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn registers_are_numbered_like_nft() {
    assert_eq!(Reg::slot(0), Reg::R1);
    assert_eq!(Reg::slot(1), Reg(9)); // NFT_REG32_01
    assert_eq!(Reg::slot(4), Reg::R2); // 16-byte aligned: legacy NFT_REG_2
    assert_eq!(Reg::slot(5), Reg(13)); // NFT_REG32_05
}

#[test]
fn a_batch_is_framed_by_begin_and_end_with_an_ack_per_message() {
    let t = TableRef::inet("ferro_cni");
    let mut b = Batch::new();
    b.add_table(&t).flush_chain(&t, "c", true);
    let buf = encode_batch(&b, &[0, 1], 100, Some(7));
    let msgs: Vec<_> = wire::messages(&buf).collect();
    assert_eq!(msgs.len(), 4);
    // BEGIN: seq 100, res_id = NFNL_SUBSYS_NFTABLES, NFNL_BATCH_GENID = 7.
    assert_eq!(
        (msgs[0].ty, msgs[0].seq, msgs[0].nf_res_id()),
        (0x10, 100, 10)
    );
    assert_eq!(msgs[0].nf_attrs().attr(1).and_then(|a| a.be32()), Some(7));
    // The operations: consecutive seqs, REQUEST|ACK (+CREATE for the table).
    assert_eq!(
        (msgs[1].ty, msgs[1].seq, msgs[1].flags),
        (0x0a00, 101, 0x0405)
    );
    assert_eq!(
        (msgs[2].ty, msgs[2].seq, msgs[2].flags),
        (0x0a08, 102, 0x0005)
    );
    assert_eq!(msgs[1].nf_family(), 1);
    // END.
    assert_eq!(
        (msgs[3].ty, msgs[3].seq, msgs[3].nf_res_id()),
        (0x11, 103, 10)
    );
    // Without the genid, BEGIN is the bare 20-byte message nft sends.
    let buf = encode_batch(&b, &[1], 5, None);
    assert_eq!(
        &buf[..20],
        &[20, 0, 0, 0, 0x10, 0, 1, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 10]
    );
}

#[test]
fn set_ids_follow_sets_created_in_the_batch_only() {
    let t = TableRef::inet("x");
    let mut b = Batch::new();
    b.add_set(&t, SetDef::set("a", vec![DataType::Ipv4Addr]))
        .add_set(&t, SetDef::set("b", vec![DataType::Ipv4Addr]))
        .add_elems(&t, "c", vec![Elem::addr(ip("10.0.0.1"))]);
    let ids = b.set_ids(|_| true);
    assert_eq!(
        (ids.get("a"), ids.get("b"), ids.get("c")),
        (Some(&1), Some(&2), None)
    );
    // An element of a set created elsewhere carries no NFTA_SET_ELEM_LIST_SET_ID.
    let (_, _, attrs) = b.ops()[2].encode(&ids);
    assert!(Attrs::new(&attrs).attr(4).is_none());
    // Skipped operations do not take ids.
    let ids = b.set_ids(|i| i != 0);
    assert_eq!(ids.get("b"), Some(&1));
}

#[test]
fn names_and_comments_over_the_kernel_limits_are_refused_before_sending() {
    let t = TableRef::inet("ferro_cni");
    let mut b = Batch::new();
    b.add_chain(
        &t,
        Chain::regular("c").with_comment("x".repeat(MAX_COMMENT_LEN)),
    );
    assert!(b.ops()[0].validate().is_ok());
    let mut b = Batch::new();
    b.add_chain(
        &t,
        Chain::regular("c").with_comment("x".repeat(MAX_COMMENT_LEN + 1)),
    );
    assert!(b.ops()[0].validate().unwrap_err().contains("253"));
    let mut b = Batch::new();
    b.add_chain(&t, Chain::regular(""));
    assert!(b.ops()[0].validate().is_err());
    let mut b = Batch::new();
    b.add_elems(
        &t,
        "s",
        vec![Elem::addr(ip("10.0.0.1")).with_comment("y".repeat(300))],
    );
    assert!(b.ops()[0].validate().is_err());
}

#[test]
fn comments_are_libnftnl_userdata_tlvs() {
    // `comment "ctr1/eth0"` on an element: type 0 (NFTNL_UDATA_SET_ELEM_COMMENT), length 10,
    // the string and its NUL (the capture of `add element` in tests/fixtures/model.txt
    // carries exactly these bytes).
    let u = [
        0u8, 10, b'c', b't', b'r', b'1', b'/', b'e', b't', b'h', b'0', 0,
    ];
    assert_eq!(comment_of(&u).as_deref(), Some("ctr1/eth0"));
    // A set comment is type 7, after the byte-order TLVs.
    let mut u = vec![0u8, 4, 2, 0, 0, 0];
    u.extend_from_slice(&[7, 3, b'h', b'i', 0]);
    assert_eq!(set_comment_of(&u).as_deref(), Some("hi"));
    // Truncated TLVs are ignored.
    assert_eq!(comment_of(&[0, 200, b'x']), None);
}

#[test]
fn the_kernels_dump_form_compares_equal_after_normalization() {
    // The kernel dumps nat flags with MAP_IPS added and always includes the bitwise op.
    let sent = Expr::Nat {
        kind: NatKind::Dnat,
        family: nfproto::IPV4,
        addr: Some(Reg::R1),
        proto: Some(Reg::R2),
        flags: NF_NAT_RANGE_PROTO_SPECIFIED,
    };
    let dumped = Expr::Nat {
        kind: NatKind::Dnat,
        family: nfproto::IPV4,
        addr: Some(Reg::R1),
        proto: Some(Reg::R2),
        flags: NF_NAT_RANGE_PROTO_SPECIFIED | NF_NAT_RANGE_MAP_IPS,
    };
    assert_ne!(sent, dumped);
    assert_eq!(sent.normalized(), dumped.normalized());
    let info = RuleInfo {
        chain: "c".into(),
        handle: 3,
        exprs: vec![dumped],
        comment: None,
    };
    assert!(info.matches(std::slice::from_ref(&sent)));
    // ... but a different port register is a different rule.
    let other = Expr::Nat {
        kind: NatKind::Dnat,
        family: nfproto::IPV4,
        addr: Some(Reg::R1),
        proto: Some(Reg::slot(1)),
        flags: NF_NAT_RANGE_PROTO_SPECIFIED,
    };
    assert!(!info.matches(&[other]));
}

#[test]
fn xt_comments_and_jump_targets() {
    let mut info = b"name: \"kbr\" id: \"a\"".to_vec();
    let unpadded = Expr::Match {
        name: "comment".into(),
        rev: 0,
        info: info.clone(),
    };
    assert_eq!(
        unpadded.xt_comment().as_deref(),
        Some(r#"name: "kbr" id: "a""#)
    );
    info.resize(256, 0);
    let padded = Expr::Match {
        name: "comment".into(),
        rev: 0,
        info,
    };
    assert_eq!(padded.xt_comment(), unpadded.xt_comment());
    let other = Expr::Match {
        name: "multiport".into(),
        rev: 1,
        info: vec![0; 8],
    };
    assert_eq!(other.xt_comment(), None);
    assert_eq!(other.to_string(), "[ match name multiport rev 1 ]");

    let rule = |exprs: Vec<Expr>, comment: Option<&str>| RuleInfo {
        chain: "POSTROUTING".into(),
        handle: 1,
        exprs,
        comment: comment.map(String::from),
    };
    let goto = rule(
        vec![Expr::verdict(Verdict::Goto("X".into()))],
        Some("udata"),
    );
    assert_eq!(goto.jump_target(), Some("X"));
    // Without a comment match, the userdata comment.
    assert_eq!(goto.iptables_comment().as_deref(), Some("udata"));
    let both = rule(vec![padded, Expr::verdict(Verdict::Accept)], Some("udata"));
    assert_eq!(both.jump_target(), None);
    assert_eq!(
        both.iptables_comment().as_deref(),
        Some(r#"name: "kbr" id: "a""#)
    );
    // A jump that is not the verdict register is no jump.
    let value = rule(vec![Expr::immediate(Reg::R1, vec![1, 2, 3, 4])], None);
    assert_eq!(
        (value.jump_target(), value.iptables_comment()),
        (None, None)
    );
}
