//! The codec against nft itself: every message of three batches nft sent (the CNI suite's
//! whole model, a set of other expressions, and deletes; captured by
//! `tests/fixtures/capture.sh` from the commands in `tests/fixtures/*.nft`) is rebuilt with
//! [`Batch`] and [`RuleBuilder`] and compared byte for byte; rule expressions are also
//! decoded back and printed in `nft --debug=netlink` notation.

#![allow(clippy::unwrap_used)] // test code: a panic is a failure

use std::net::IpAddr;

use ferro_nftables::uapi::{
    NFTA_SET_DESC, NFTA_SET_ELEM_LIST_ELEMENTS, NFTA_SET_USERDATA, NFT_MSG_NEWSET, NLA_F_NESTED,
    NLM_F_ACK, NLM_F_CREATE,
};
use ferro_nftables::wire::{self, AttrWriter, Attrs};
use ferro_nftables::*;
use ipnet::IpNet;

/// One captured message (a record of a `tests/fixtures/*.txt` file).
#[derive(Debug)]
struct Fixture {
    /// The nft command that produced it.
    nft: String,
    /// `NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_*`.
    msg_type: u16,
    /// The `nlmsg_flags` nft used (nft asks for no ACK; we do).
    nft_flags: u16,
    /// `nft --debug=netlink` for rules.
    debug: Vec<String>,
    /// `nfgenmsg` + attributes.
    payload: Vec<u8>,
}

fn parse_fixtures(text: &str) -> Vec<Fixture> {
    let mut out: Vec<Fixture> = Vec::new();
    for line in text.lines() {
        let (key, rest) = line.split_once(' ').unwrap_or((line, ""));
        match key {
            "" | "#" => {}
            "nft" => out.push(Fixture {
                nft: rest.to_string(),
                msg_type: 0,
                nft_flags: 0,
                debug: Vec::new(),
                payload: Vec::new(),
            }),
            _ => {
                let fx = out.last_mut().expect("a record starts with its nft line");
                match key {
                    "type" => {
                        let f: Vec<&str> = rest.split(' ').collect();
                        assert_eq!(f.len(), 3, "type line: {line}");
                        fx.msg_type = u16::from_str_radix(f[0], 16).unwrap();
                        fx.nft_flags = u16::from_str_radix(f[2], 16).unwrap();
                    }
                    "payload" => {
                        let hex: String = rest.split_whitespace().collect();
                        for i in (0..hex.len()).step_by(2) {
                            fx.payload
                                .push(u8::from_str_radix(&hex[i..i + 2], 16).unwrap());
                        }
                    }
                    "debug" => fx.debug.push(rest.to_string()),
                    other => panic!("unknown fixture line {other:?}: {line}"),
                }
            }
        }
    }
    out
}

fn fixtures(name: &str) -> Vec<Fixture> {
    let text = match name {
        "model" => include_str!("fixtures/model.txt"),
        "more" => include_str!("fixtures/more.txt"),
        "del" => include_str!("fixtures/del.txt"),
        "policy" => include_str!("fixtures/policy.txt"),
        _ => unreachable!(),
    };
    let fx = parse_fixtures(text);
    assert!(!fx.is_empty(), "no records in fixtures/{name}.txt");
    fx
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

const HP: &str = "hp-0123456789abcdef";

/// The batch nft sends for `full.nft` (the suite's model), op for op.
fn model_batch() -> Batch {
    let t = TableRef::inet("ferro_cni");
    let mut b = Batch::new();
    b.add_table(&t)
        .add_set(&t, SetDef::set("pods4-kbr", vec![DataType::Ipv4Addr]))
        .add_set(&t, SetDef::set("pods6-kbr", vec![DataType::Ipv6Addr]))
        .add_chain(
            &t,
            Chain::base(
                "masq-kbr",
                ChainType::Nat,
                Hook::Postrouting,
                priority::SRCNAT,
            ),
        )
        .add_chain(&t, Chain::regular("masq4-kbr"))
        .add_chain(
            &t,
            Chain::base(
                "antispoof-fl",
                ChainType::Filter,
                Hook::Prerouting,
                priority::RAW,
            ),
        )
        .add_set(
            &t,
            SetDef::vmap(
                "hostports-ip4",
                vec![
                    DataType::Ipv4Addr,
                    DataType::InetProto,
                    DataType::InetService,
                ],
            ),
        )
        .add_set(
            &t,
            SetDef::vmap(
                "hostports-ip6",
                vec![
                    DataType::Ipv6Addr,
                    DataType::InetProto,
                    DataType::InetService,
                ],
            ),
        )
        .add_set(
            &t,
            SetDef::vmap(
                "hostports-any",
                vec![DataType::InetProto, DataType::InetService],
            ),
        )
        .add_chain(
            &t,
            Chain::base(
                "hostports-prerouting",
                ChainType::Nat,
                Hook::Prerouting,
                priority::DSTNAT,
            ),
        )
        .add_chain(
            &t,
            Chain::base(
                "hostports-output",
                ChainType::Nat,
                Hook::Output,
                priority::DSTNAT,
            ),
        )
        .add_chain(&t, Chain::regular("hostports"))
        .add_chain(
            &t,
            Chain::base(
                "hostports-masq",
                ChainType::Nat,
                Hook::Postrouting,
                priority::SRCNAT,
            ),
        )
        .add_chain(&t, Chain::regular(HP).with_comment("kbr/ctr1/eth0"))
        .add_elems(
            &t,
            "pods4-kbr",
            vec![Elem::addr(ip("10.244.0.5")).with_comment("ctr1/eth0")],
        )
        .add_elems(
            &t,
            "pods6-kbr",
            vec![Elem::addr(ip("fd00::5")).with_comment("ctr1/eth0")],
        );
    for r in model_rules() {
        b.add_rule(&t, r);
    }
    let jump = Verdict::Jump(HP.into());
    b.add_elems(
        &t,
        "hostports-any",
        vec![Elem::concat(&[KeyPart::Proto(6), KeyPart::Port(8080)]).with_verdict(jump.clone())],
    )
    .add_elems(
        &t,
        "hostports-ip4",
        vec![Elem::concat(&[
            KeyPart::Addr(ip("192.168.1.1")),
            KeyPart::Proto(6),
            KeyPart::Port(8080),
        ])
        .with_verdict(jump.clone())],
    )
    .add_elems(
        &t,
        "hostports-ip6",
        vec![Elem::concat(&[
            KeyPart::Addr(ip("fd00::1")),
            KeyPart::Proto(17),
            KeyPart::Port(53),
        ])
        .with_verdict(jump)],
    );
    b
}

fn model_rules() -> Vec<Rule> {
    vec![
        RuleBuilder::new()
            .meta_nfproto(nfproto::IPV4)
            .addr_in_set(false, Dir::Src, "pods4-kbr", false)
            .verdict(Verdict::Goto("masq4-kbr".into()))
            .build("masq-kbr"),
        RuleBuilder::new()
            .addr_cidr(Dir::Dst, net("10.244.0.0/16"))
            .verdict(Verdict::Return)
            .build("masq4-kbr"),
        RuleBuilder::new()
            .addr_cidr(Dir::Dst, net("224.0.0.0/4"))
            .verdict(Verdict::Return)
            .build("masq4-kbr"),
        RuleBuilder::new()
            .addr_cidr(Dir::Dst, net("255.255.255.255/32"))
            .verdict(Verdict::Return)
            .build("masq4-kbr"),
        RuleBuilder::new().masquerade().build("masq4-kbr"),
        RuleBuilder::new()
            .iifname_prefix("fl")
            .fib_saddr_iif_oif_missing()
            .verdict(Verdict::Drop)
            .build("antispoof-fl"),
        RuleBuilder::new()
            .fib_daddr_type(RTN_LOCAL)
            .verdict(Verdict::Jump("hostports".into()))
            .build("hostports-prerouting"),
        RuleBuilder::new()
            .meta_nfproto(nfproto::IPV4)
            .concat_vmap(
                &[
                    KeyField::Ip4(Dir::Dst),
                    KeyField::L4Proto,
                    KeyField::ThDport,
                ],
                "hostports-ip4",
            )
            .build("hostports"),
        RuleBuilder::new()
            .meta_nfproto(nfproto::IPV6)
            .concat_vmap(
                &[
                    KeyField::Ip6(Dir::Dst),
                    KeyField::L4Proto,
                    KeyField::ThDport,
                ],
                "hostports-ip6",
            )
            .build("hostports"),
        RuleBuilder::new()
            .concat_vmap(&[KeyField::L4Proto, KeyField::ThDport], "hostports-any")
            .build("hostports"),
        RuleBuilder::new()
            .mark_masked_eq(0x2000, 0x2000)
            .masquerade()
            .build("hostports-masq"),
        RuleBuilder::new()
            .addr_cidr(Dir::Src, net("10.244.0.0/24"))
            .l4proto(6)
            .th_dport(8080)
            .set_mark_or(0x2000)
            .build(HP),
        RuleBuilder::new()
            .addr(Dir::Dst, ip("192.168.1.1"))
            .l4proto(6)
            .th_dport(8080)
            .dnat(ip("10.244.0.5"), Some(80))
            .build(HP),
        RuleBuilder::new()
            .l4proto(17)
            .th_dport(53)
            .dnat(ip("fd00::5"), Some(53))
            .build(HP),
        RuleBuilder::new()
            .l4proto(17)
            .th_dport(53)
            .dnat(ip("10.244.0.5"), Some(53))
            .build(HP)
            .with_comment("hi"),
    ]
}

/// `base.nft` + `more.nft`: other expressions the builder offers.
fn more_batch() -> Batch {
    let t = TableRef::inet("ferro_cni");
    let mut b = Batch::new();
    b.add_table(&t)
        .add_set(&t, SetDef::set("pods4-kbr", vec![DataType::Ipv4Addr]))
        .add_chain(&t, Chain::regular("c"))
        .add_chain(&t, Chain::regular("d"));
    let rules = vec![
        RuleBuilder::new().counter().verdict(Verdict::Accept),
        RuleBuilder::new()
            .ct_state_any(CT_STATE_ESTABLISHED | CT_STATE_RELATED)
            .verdict(Verdict::Accept),
        RuleBuilder::new()
            .ct_status_any(CT_STATUS_DNAT)
            .verdict(Verdict::Accept),
        RuleBuilder::new()
            .iifname("eth0")
            .oifname("veth1")
            .verdict(Verdict::Drop),
        RuleBuilder::new().iif(1).verdict(Verdict::Jump("d".into())),
        RuleBuilder::new()
            .addr_in_set(false, Dir::Src, "pods4-kbr", true)
            .verdict(Verdict::Return),
        RuleBuilder::new()
            .meta_nfproto(nfproto::IPV4)
            .snat(ip("192.168.1.1"), None),
        RuleBuilder::new().set_mark(0x10),
        RuleBuilder::new()
            .expr(Expr::meta(MetaKey::MARK, Reg::R1))
            .expr(Expr::Bitwise {
                sreg: Reg::R1,
                dreg: Reg::R1,
                len: 4,
                mask: 0xffff_0000u32.to_ne_bytes().to_vec(),
                xor: vec![0; 4],
                explicit_op: true,
            })
            .expr(Expr::cmp(CmpOp::Neq, Reg::R1, vec![0; 4]))
            .expr(Expr::meta(MetaKey::MARK, Reg::R1))
            .expr(Expr::Bitwise {
                sreg: Reg::R1,
                dreg: Reg::R1,
                len: 4,
                mask: 0x0000_ffffu32.to_ne_bytes().to_vec(),
                xor: vec![0; 4],
                explicit_op: true,
            })
            .expr(Expr::MetaSet {
                key: MetaKey::MARK,
                sreg: Reg::R1,
            }),
        RuleBuilder::new()
            .addr_cidr(Dir::Src, net("fd00::/64"))
            .verdict(Verdict::Return),
        RuleBuilder::new()
            .l4proto(17)
            .expr(Expr::meta(MetaKey::L4PROTO, Reg::R1))
            .expr(Expr::cmp(CmpOp::Neq, Reg::R1, vec![6]))
            .verdict(Verdict::Return),
    ];
    for r in rules {
        b.add_rule(&t, r.build("c"));
    }
    b
}

/// `del.nft`.
fn del_batch() -> Batch {
    let t = TableRef::inet("ferro_cni");
    let mut b = Batch::new();
    b.del_rule(&t, "c", 4, false)
        .flush_chain(&t, "c", false)
        .del_chain(&t, "d", false)
        .del_elems(&t, "pods4-kbr", vec![Elem::addr(ip("10.0.0.1"))], false)
        .flush_set(&t, "pods4-kbr", false)
        .del_set(&t, "pods4-kbr", false)
        .del_table(&t, false);
    b
}

/// `policy.nft`: NetworkPolicy's objects (interval concatenations, counters, log, limit).
fn policy_batch() -> Batch {
    let t = TableRef::inet("ferro_policy");
    let key4 = vec![
        DataType::Ipv4Addr,
        DataType::InetProto,
        DataType::InetService,
    ];
    let key6 = vec![
        DataType::Ipv6Addr,
        DataType::InetProto,
        DataType::InetService,
    ];
    let mut b = Batch::new();
    b.add_table(&t)
        .add_set(&t, SetDef::set("in-a-4", key4).with_interval())
        .add_set(&t, SetDef::set("in-a-6", key6).with_interval())
        .add_set(&t, SetDef::vmap("in4", vec![DataType::Ipv4Addr]))
        .add_counter(&t, "drops-x")
        .add_counter(&t, "drops-y")
        .add_chain(&t, Chain::regular("pod-x"))
        .add_elems(
            &t,
            "in-a-4",
            vec![
                Elem::range(
                    &[
                        KeyPart::Addr(ip("10.0.0.0")),
                        KeyPart::Proto(6),
                        KeyPart::Port(80),
                    ],
                    &[
                        KeyPart::Addr(ip("10.0.0.255")),
                        KeyPart::Proto(6),
                        KeyPart::Port(81),
                    ],
                ),
                policy_any_elem(),
            ],
        )
        .add_elems(
            &t,
            "in-a-6",
            vec![Elem::range(
                &[
                    KeyPart::Addr(ip("fd00::1")),
                    KeyPart::Proto(17),
                    KeyPart::Port(53),
                ],
                &[
                    KeyPart::Addr(ip("fd00::9")),
                    KeyPart::Proto(17),
                    KeyPart::Port(53),
                ],
            )],
        )
        .add_elems(
            &t,
            "in4",
            vec![Elem::addr(ip("10.0.0.7")).with_verdict(Verdict::Jump("pod-x".into()))],
        );
    for r in policy_rules() {
        b.add_rule(&t, r);
    }
    b.del_elems(&t, "in-a-4", vec![policy_any_elem()], false)
        .del_counter(&t, "drops-y", false);
    b
}

fn policy_any_elem() -> Elem {
    Elem::range(
        &[
            KeyPart::Addr(ip("10.1.0.5")),
            KeyPart::Proto(0),
            KeyPart::Port(0),
        ],
        &[
            KeyPart::Addr(ip("10.1.0.5")),
            KeyPart::Proto(255),
            KeyPart::Port(65535),
        ],
    )
}

fn policy_rules() -> Vec<Rule> {
    let tuple = |v6: bool, dir: Dir| {
        [
            if v6 {
                KeyField::Ip6(dir)
            } else {
                KeyField::Ip4(dir)
            },
            KeyField::L4Proto,
            KeyField::ThDport,
        ]
    };
    vec![
        RuleBuilder::new()
            .concat_lookup(&tuple(false, Dir::Src), "in-a-4", true)
            .verdict(Verdict::Return)
            .build("pod-x"),
        RuleBuilder::new()
            .concat_lookup(&tuple(true, Dir::Dst), "in-a-6", true)
            .verdict(Verdict::Return)
            .build("pod-x"),
        RuleBuilder::new()
            .limit_per_second(10, 20)
            .log_group(7, Some("in x/a"))
            .build("pod-x"),
        RuleBuilder::new()
            .counter_named("drops-x")
            .verdict(Verdict::Drop)
            .build("pod-x"),
        RuleBuilder::new()
            .l4proto(58)
            .transport_byte_range(0, 133, 137)
            .verdict(Verdict::Accept)
            .build("pod-x"),
        RuleBuilder::new()
            .meta_nfproto(nfproto::IPV4)
            .concat_vmap(&[KeyField::Ip4(Dir::Dst)], "in4")
            .build("pod-x"),
    ]
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// nft 1.0.6 also writes, for a set with a concatenated key, a `NFTNL_UDATA_SET_KEY_TYPEOF`
/// TLV (type 3) describing an empty concatenation; we do not (nft reads the key type from
/// `NFTA_SET_KEY_TYPE` when it is absent). Strip it from the capture before comparing.
fn without_typeof_udata(payload: &[u8]) -> Vec<u8> {
    let mut out = payload[..4].to_vec();
    let mut w = AttrWriter::new();
    for a in Attrs::new(&payload[4..]) {
        if a.ty == NFTA_SET_USERDATA {
            let mut u = Vec::new();
            let mut rest = a.data;
            while rest.len() >= 2 {
                let len = 2 + usize::from(rest[1]);
                if rest[0] != 3 {
                    u.extend_from_slice(&rest[..len]);
                }
                rest = &rest[len..];
            }
            w.put(a.ty, &u);
        } else if a.ty == NFTA_SET_DESC {
            // Parsed attributes lose their flags: the description is nested.
            w.put(a.ty | NLA_F_NESTED, a.data);
        } else {
            w.put(a.ty, a.data);
        }
    }
    out.extend_from_slice(&w.into_bytes());
    out
}

/// The messages of `batch` as the socket sends them, without BEGIN and END: (type, flags,
/// payload after the nlmsghdr).
fn encoded(batch: &Batch) -> Vec<(u16, u16, Vec<u8>)> {
    let buf = batch.encode(1, None);
    let msgs: Vec<_> = wire::messages(&buf).collect();
    assert_eq!(
        msgs.len(),
        batch.len() + 2,
        "BEGIN, one message per op, END"
    );
    msgs[1..msgs.len() - 1]
        .iter()
        .map(|m| (m.ty, m.flags, m.payload.to_vec()))
        .collect()
}

fn check_batch(batch: &Batch, fixtures: &[Fixture]) {
    assert_eq!(batch.len(), fixtures.len(), "one op per captured message");
    for ((op, (ty, flags, payload)), fx) in batch.ops().iter().zip(encoded(batch)).zip(fixtures) {
        assert_eq!(ty, fx.msg_type, "message type of `{}`", fx.nft);
        // nft asks for no ACK; we ask for one per message. `add table` also carries
        // NLM_F_CREATE here (nft relies on the kernel creating tables without it).
        let mut want_flags = fx.nft_flags | NLM_F_ACK;
        if matches!(op.kind, OpKind::AddTable) {
            want_flags |= NLM_F_CREATE;
        }
        assert_eq!(flags, want_flags, "flags of `{}`", fx.nft);
        let want = if ty & 0xff == NFT_MSG_NEWSET {
            without_typeof_udata(&fx.payload)
        } else {
            fx.payload.clone()
        };
        assert_eq!(
            hex(&payload),
            hex(&want),
            "payload of `{}` differs from nft's",
            fx.nft
        );
    }
}

#[test]
fn the_model_is_encoded_exactly_as_nft_encodes_it() {
    check_batch(&model_batch(), &fixtures("model"));
}

#[test]
fn other_expressions_are_encoded_exactly_as_nft_encodes_them() {
    check_batch(&more_batch(), &fixtures("more"));
}

#[test]
fn deletes_and_flushes_are_encoded_exactly_as_nft_encodes_them() {
    check_batch(&del_batch(), &fixtures("del"));
}

#[test]
fn policy_objects_are_encoded_exactly_as_nft_encodes_them() {
    check_batch(&policy_batch(), &fixtures("policy"));
}

#[test]
fn only_the_vmap_sets_differ_from_nft_and_only_in_typeof_userdata() {
    // Guard the exception above: plain sets match with their userdata untouched.
    let model = fixtures("model");
    let ours = encoded(&model_batch());
    assert_eq!(model[1].payload, ours[1].2);
    assert_ne!(without_typeof_udata(&model[6].payload), model[6].payload);
}

fn all_rules() -> Vec<(Rule, Fixture)> {
    let mut out = Vec::new();
    for (b, fxs) in [
        (model_batch(), fixtures("model")),
        (more_batch(), fixtures("more")),
        (policy_batch(), fixtures("policy")),
    ] {
        for (op, fx) in b.ops().iter().zip(fxs) {
            if let OpKind::AddRule(r) = &op.kind {
                out.push((r.clone(), fx));
            }
        }
    }
    out
}

#[test]
fn captured_rules_decode_to_the_expressions_that_built_them() {
    let rules = all_rules();
    assert_eq!(rules.len(), 32);
    for (r, fx) in rules {
        let decoded = RuleInfo::decode(Attrs::new(&fx.payload[4..]));
        assert_eq!(decoded.chain, r.chain, "chain of `{}`", fx.nft);
        assert_eq!(decoded.comment, r.comment, "comment of `{}`", fx.nft);
        assert_eq!(decoded.exprs, r.exprs, "decoding `{}`", fx.nft);
    }
}

#[test]
fn expressions_print_like_nft_debug_netlink() {
    for (r, fx) in all_rules() {
        let ours: Vec<String> = r.exprs.iter().map(|e| e.to_string()).collect();
        assert_eq!(ours, fx.debug, "`nft --debug=netlink {}`", fx.nft);
    }
}

#[test]
fn captured_elements_and_sets_decode_with_their_comments() {
    let model = fixtures("model");
    // `add element ... pods4-kbr { 10.244.0.5 comment "ctr1/eth0" }`
    let elems = ElemInfo::decode_list(Attrs::new(&model[14].payload[4..]));
    assert_eq!(elems.len(), 1);
    assert_eq!(elems[0].key, [10, 244, 0, 5]);
    assert_eq!(elems[0].comment.as_deref(), Some("ctr1/eth0"));
    // `add element ... hostports-any { tcp . 8080 : jump hp-... }`
    let elems = ElemInfo::decode_list(Attrs::new(&model[31].payload[4..]));
    assert_eq!(elems[0].target_chain(), Some(HP));
    // `add map ... hostports-ip4 { type ipv4_addr . inet_proto . inet_service : verdict; }`
    let set = SetInfo::decode(Attrs::new(&model[6].payload[4..]));
    assert_eq!(set.name, "hostports-ip4");
    assert_eq!(set.data_type, Some(NFT_DATA_VERDICT));
    assert_eq!(set.flags & NFT_SET_MAP, NFT_SET_MAP);
    assert_eq!(set.key_len, 12);
}

#[test]
fn descriptions_read_like_nft_commands() {
    let b = model_batch();
    let d: Vec<String> = b.ops().iter().map(Op::describe).collect();
    assert_eq!(d[0], "add table inet ferro_cni");
    assert_eq!(d[6], "add map inet ferro_cni hostports-ip4");
    assert_eq!(d[13], format!("add chain inet ferro_cni {HP}"));
    assert_eq!(d[14], "add element inet ferro_cni pods4-kbr { 10.244.0.5 }");
    assert_eq!(d[16], "add rule inet ferro_cni masq-kbr");
    assert_eq!(
        d[32],
        "add element inet ferro_cni hostports-ip4 { 192.168.1.1 . tcp . 8080 }"
    );
    let d = del_batch();
    assert_eq!(
        d.ops()[0].describe(),
        "delete rule inet ferro_cni c handle 4"
    );
}

/// Many interval elements of concatenations (about 44 bytes each) do not fit one netlink
/// attribute (at most 65535 bytes): they go in several messages, each element list whole
/// (the kernel would otherwise take only those within the truncated length, silently).
#[test]
fn many_elements_are_split_into_messages_that_each_fit() {
    let t = TableRef::inet("ferro_policy");
    let elems: Vec<Elem> = (0..5000u32)
        .map(|i| {
            let a = IpAddr::from(std::net::Ipv4Addr::from(0x0a63_0000 + i * 2));
            Elem::range(
                &[KeyPart::Addr(a), KeyPart::Proto(6), KeyPart::Port(9000)],
                &[KeyPart::Addr(a), KeyPart::Proto(6), KeyPart::Port(9099)],
            )
        })
        .collect();
    for del in [false, true] {
        let mut b = Batch::new();
        if del {
            b.del_elems(&t, "in-a-4", elems.clone(), false);
        } else {
            b.add_elems(&t, "in-a-4", elems.clone());
        }
        assert!(b.len() >= 4, "{} messages for 5000 elements", b.len());
        let mut count = 0;
        for (_, _, payload) in encoded(&b) {
            let list = Attrs::new(&payload[4..])
                .find(|a| a.ty == NFTA_SET_ELEM_LIST_ELEMENTS)
                .expect("an element list");
            // the attribute's own length covers every element it holds
            let n = Attrs::new(list.data).count();
            assert!(n > 0);
            count += n;
        }
        assert_eq!(count, 5000, "every element sent (delete: {del})");
    }
}
