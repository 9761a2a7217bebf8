//! The nf_tables codec against the kernel (root), each test in a private network namespace:
//! transactions, error reporting, idempotent deletes, reads restricted to our table, the
//! generation guard, and batches larger than the default socket buffers.

#![allow(clippy::unwrap_used)] // test code: a panic is a failure

use std::net::IpAddr;

use ferro_nftables::*;
use ferro_testutil::nft::{in_netns, json, listing, map_entries, nft, nft_file, rules};

fn t() -> TableRef {
    TableRef::inet("ferro_cni")
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn a_batch_is_one_transaction_and_the_first_error_names_operation_and_object() {
    in_netns(|| {
        let mut sock = NftSocket::open().unwrap();
        let mut b = Batch::new();
        b.add_table(&t())
            .add_chain(&t(), Chain::regular("c"))
            .add_rule(
                &t(),
                RuleBuilder::new()
                    .counter()
                    .verdict(Verdict::Accept)
                    .build("c"),
            )
            .add_rule(
                &t(),
                RuleBuilder::new().verdict(Verdict::Accept).build("nochain"),
            );
        let err = sock.apply(&b).unwrap_err();
        assert_eq!(
            err.to_string(),
            "nft: add rule inet ferro_cni nochain: No such file or directory"
        );
        assert!(err.is_not_found());
        // Nothing of the failed transaction was applied.
        assert!(!nft(&["list", "tables"]).contains("ferro_cni"));

        // A jump to a chain that does not exist fails as well, and is named.
        let mut b = Batch::new();
        b.add_table(&t())
            .add_chain(&t(), Chain::regular("c"))
            .add_rule(
                &t(),
                RuleBuilder::new()
                    .verdict(Verdict::Jump("missing".into()))
                    .build("c"),
            );
        let err = sock.apply(&b).unwrap_err().to_string();
        assert!(err.starts_with("nft: add rule inet ferro_cni c: "), "{err}");

        // The same batch without the bad rules applies in one go, and again idempotently.
        let mut b = Batch::new();
        b.add_table(&t())
            .add_chain(&t(), Chain::regular("c").with_comment("mine"))
            .add_rule(
                &t(),
                RuleBuilder::new()
                    .counter()
                    .verdict(Verdict::Accept)
                    .build("c"),
            );
        sock.apply(&b).unwrap();
        assert_eq!(rules("c").len(), 1);
        assert!(listing().contains("comment \"mine\""), "{}", listing());
        // Adds never use NLM_F_EXCL: table and chain are ensured, the rule appended again.
        sock.apply(&b).unwrap();
        assert_eq!(rules("c").len(), 2);
    })
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn idempotent_deletes_succeed_when_objects_are_already_gone() {
    in_netns(|| {
        let mut sock = NftSocket::open().unwrap();
        // Nothing exists: every idempotent delete is a no-op.
        let mut b = Batch::new();
        b.del_elems(&t(), "s", vec![Elem::addr(ip("10.0.0.1"))], true)
            .flush_chain(&t(), "x", true)
            .del_chain(&t(), "x", true)
            .del_set(&t(), "s", true)
            .del_table(&t(), true);
        sock.apply(&b).unwrap();

        // A strict delete of a missing object fails and says what.
        let mut b = Batch::new();
        b.del_table(&t(), false);
        let err = sock.apply(&b).unwrap_err();
        assert!(err.is_not_found());
        assert_eq!(
            err.to_string(),
            "nft: delete table inet ferro_cni: No such file or directory"
        );

        // Mixed: existing objects go, missing ones are skipped, in one transaction.
        nft_file(
            "table inet ferro_cni {
               set s { type ipv4_addr; elements = { 10.0.0.1, 10.0.0.3 } }
               chain a { accept; }
             }",
        );
        let mut b = Batch::new();
        b.del_elems(
            &t(),
            "s",
            vec![
                Elem::addr(ip("10.0.0.1")),
                Elem::addr(ip("10.0.0.2")), // missing
            ],
            true,
        )
        .flush_chain(&t(), "a", true)
        .del_chain(&t(), "a", true)
        .del_chain(&t(), "b", true); // missing
        sock.apply(&b).unwrap();
        let l = listing();
        assert!(!l.contains("chain a"), "{l}");
        assert!(!l.contains("10.0.0.1") && l.contains("10.0.0.3"), "{l}");

        // A strict delete of a missing element in a batch with other work aborts all of it.
        let mut b = Batch::new();
        b.del_elems(&t(), "s", vec![Elem::addr(ip("10.0.0.3"))], false)
            .del_elems(&t(), "s", vec![Elem::addr(ip("10.0.0.9"))], false);
        let err = sock.apply(&b).unwrap_err().to_string();
        assert_eq!(
            err,
            "nft: delete element inet ferro_cni s { 10.0.0.9 }: No such file or directory"
        );
        assert!(listing().contains("10.0.0.3"));
    })
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn reads_decode_what_nft_wrote_and_never_leave_our_table() {
    in_netns(|| {
        nft_file(
            r#"table inet ferro_cni {
                 set s { type ipv4_addr; comment "pods"; elements = { 1.2.3.4 comment "a/b" } }
                 chain c { ip saddr 10.0.0.0/8 tcp dport 22 counter accept comment "ssh"; }
                 chain base { type nat hook postrouting priority srcnat; policy accept; }
               }
               table inet other {
                 set s { type ipv4_addr; }
                 chain c { accept; drop; }
               }"#,
        );
        let mut sock = NftSocket::open().unwrap();
        let table = sock.get_table(&t()).unwrap().unwrap();
        assert_eq!((table.name.as_str(), table.objects), ("ferro_cni", 3)); // 2 chains, 1 set
        assert!(sock.get_table(&TableRef::inet("nope")).unwrap().is_none());

        let rules = sock.list_rules(&t(), None).unwrap();
        assert_eq!(rules.len(), 1, "only our table's rules: {rules:?}");
        let r = &rules[0];
        assert_eq!((r.chain.as_str(), r.comment.as_deref()), ("c", Some("ssh")));
        assert!(r.handle > 0);
        let want = RuleBuilder::new()
            .addr_cidr(Dir::Src, "10.0.0.0/8".parse().unwrap())
            .l4proto(6)
            .th_dport(22)
            .counter()
            .verdict(Verdict::Accept)
            .build("c");
        assert!(r.matches(&want.exprs), "{:?}", r.exprs);
        assert!(sock.list_rules(&t(), Some("base")).unwrap().is_empty());
        assert!(sock.list_rules(&t(), Some("none")).unwrap().is_empty());

        let base = sock.get_chain(&t(), "base").unwrap().unwrap();
        assert_eq!(
            base.base,
            Some(BaseChain {
                kind: ChainType::Nat,
                hook: Hook::Postrouting,
                priority: priority::SRCNAT,
                policy: Policy::Accept
            })
        );
        let chains = sock.get_chains(&t(), &["c", "x", "base"]).unwrap();
        assert!(chains[0].as_ref().unwrap().base.is_none());
        assert!(chains[1].is_none() && chains[2].is_some());

        let set = sock.get_set(&t(), "s").unwrap().unwrap();
        assert_eq!((set.key_type, set.key_len), (7, 4));
        assert_eq!(set.comment.as_deref(), Some("pods"));
        assert_eq!(sock.list_sets(&t()).unwrap().len(), 1);
        let elems = sock.list_elems(&t(), "s").unwrap().unwrap();
        assert_eq!(elems.len(), 1);
        assert_eq!(
            (elems[0].key.as_slice(), elems[0].comment.as_deref()),
            (&[1u8, 2, 3, 4][..], Some("a/b"))
        );
        assert!(sock.list_elems(&t(), "missing").unwrap().is_none());
        let got = sock
            .get_elems(
                &t(),
                "s",
                &[Elem::addr(ip("1.2.3.4")), Elem::addr(ip("5.6.7.8"))],
            )
            .unwrap();
        assert_eq!(got[0].as_ref().unwrap().comment.as_deref(), Some("a/b"));
        assert!(got[1].is_none());
        assert_eq!(
            sock.get_elems(&t(), "missing", &[Elem::addr(ip("1.2.3.4"))])
                .unwrap(),
            vec![None]
        );
    })
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn a_batch_made_against_an_old_generation_is_refused() {
    in_netns(|| {
        let mut sock = NftSocket::open().unwrap();
        let g = sock.generation().unwrap();
        nft(&["add", "table", "inet", "someone_else"]);
        let mut b = Batch::new();
        b.add_table(&t());
        let err = sock.apply_at(&b, g).unwrap_err();
        assert!(err.is_generation_changed(), "{err}");
        assert!(json().is_empty(), "nothing applied");
        let g = sock.generation().unwrap();
        sock.apply_at(&b, g).unwrap();
        assert!(nft(&["list", "tables"]).contains("ferro_cni"));
    })
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn an_element_is_retagged_by_add_delete_add_in_one_transaction() {
    in_netns(|| {
        let mut sock = NftSocket::open().unwrap();
        let mut b = Batch::new();
        b.add_table(&t())
            .add_set(&t(), SetDef::set("s", vec![DataType::Ipv4Addr]));
        sock.apply(&b).unwrap();
        for owner in ["a/eth0", "b/eth0", "b/eth0"] {
            let e = Elem::addr(ip("10.0.0.1"));
            let mut b = Batch::new();
            b.add_elems(&t(), "s", vec![e.clone()])
                .del_elems(&t(), "s", vec![e.clone()], false)
                .add_elems(&t(), "s", vec![e.with_comment(owner)]);
            sock.apply(&b).unwrap();
            let got = sock.list_elems(&t(), "s").unwrap().unwrap();
            assert_eq!(got.len(), 1);
            assert_eq!(got[0].comment.as_deref(), Some(owner));
        }
    })
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn verdict_maps_with_concatenated_keys_list_like_nft_maps() {
    in_netns(|| {
        let mut sock = NftSocket::open().unwrap();
        let mut b = Batch::new();
        b.add_table(&t())
            .add_chain(&t(), Chain::regular("target"))
            .add_set(
                &t(),
                SetDef::vmap(
                    "m",
                    vec![
                        DataType::Ipv4Addr,
                        DataType::InetProto,
                        DataType::InetService,
                    ],
                ),
            )
            .add_elems(
                &t(),
                "m",
                vec![Elem::concat(&[
                    KeyPart::Addr(ip("192.0.2.1")),
                    KeyPart::Proto(17),
                    KeyPart::Port(53),
                ])
                .with_verdict(Verdict::Jump("target".into()))
                .with_comment("x/y/z")],
            );
        sock.apply(&b).unwrap();
        assert_eq!(
            map_entries("m"),
            vec![(
                "192.0.2.1 . udp . 53".to_string(),
                Some("x/y/z".to_string()),
                "target".to_string()
            )]
        );
        assert!(listing().contains("type ipv4_addr . inet_proto . inet_service : verdict"));
        let e = &sock.list_elems(&t(), "m").unwrap().unwrap()[0];
        assert_eq!(e.target_chain(), Some("target"));
        // The jump holds a reference: the chain cannot go while the element exists...
        let mut b = Batch::new();
        b.del_chain(&t(), "target", false);
        assert_eq!(
            sock.apply(&b).unwrap_err().errno(),
            Some(nix::errno::Errno::EBUSY)
        );
        // ... but element and chain can go together.
        let mut b = Batch::new();
        b.del_elems(&t(), "m", vec![Elem::raw(e.key.clone())], false)
            .del_chain(&t(), "target", false);
        sock.apply(&b).unwrap();
    })
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn thousands_of_messages_fit_in_one_transaction() {
    in_netns(|| {
        let mut sock = NftSocket::open().unwrap();
        let mut b = Batch::new();
        b.add_table(&t())
            .add_set(&t(), SetDef::set("s", vec![DataType::Ipv4Addr]));
        for i in 0..3000u32 {
            let a = std::net::Ipv4Addr::from(0x0a00_0000 + i);
            b.add_elems(
                &t(),
                "s",
                vec![Elem::addr(a.into()).with_comment(format!("c{i}/eth0"))],
            );
        }
        sock.apply(&b).unwrap();
        assert_eq!(sock.list_elems(&t(), "s").unwrap().unwrap().len(), 3000);
        // And 3000 idempotent deletes, some of them of missing elements.
        let mut b = Batch::new();
        let keys: Vec<Elem> = (0..3100u32)
            .map(|i| Elem::addr(std::net::Ipv4Addr::from(0x0a00_0000 + i).into()))
            .collect();
        b.del_elems(&t(), "s", keys, true);
        sock.apply(&b).unwrap();
        assert!(sock.list_elems(&t(), "s").unwrap().unwrap().is_empty());
    })
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn a_batch_encoded_as_it_is_built_is_one_transaction_of_many_chunks() {
    in_netns(|| {
        let mut sock = NftSocket::open().unwrap();
        // Megabytes of rules and elements, in many chunks of one sendmsg, into a set made
        // in the same transaction (referenced by its id).
        let mut e = EncodedBatch::new();
        let mut b = Batch::new();
        b.add_table(&t())
            .add_chain(&t(), Chain::regular("c"))
            .add_set(&t(), SetDef::set("s", vec![DataType::Ipv4Addr]));
        e.append(b);
        for i in 0..20_000u32 {
            let a = std::net::Ipv4Addr::from(0x0a00_0000 + i);
            let mut b = Batch::new();
            b.add_elems(&t(), "s", vec![Elem::addr(a.into())]).add_rule(
                &t(),
                RuleBuilder::new()
                    .addr(Dir::Src, a.into())
                    .addr_in_set(false, Dir::Dst, "s", false)
                    .verdict(Verdict::Accept)
                    .build("c"),
            );
            e.append(b);
        }
        assert!(e.bytes() > 2 << 20, "{} bytes", e.bytes());
        sock.apply_encoded(&mut e).unwrap();
        assert_eq!(rules("c").len(), 20_000);
        assert_eq!(sock.list_elems(&t(), "s").unwrap().unwrap().len(), 20_000);

        // One bad message at the end: nothing of the transaction is applied, and the
        // error names it, read back from its message.
        let mut e = EncodedBatch::new();
        let mut b = Batch::new();
        b.flush_chain(&t(), "c", false);
        for i in 0..5000u32 {
            b.add_rule(
                &t(),
                RuleBuilder::new()
                    .addr(Dir::Src, std::net::Ipv4Addr::from(0x0b00_0000 + i).into())
                    .verdict(Verdict::Drop)
                    .build("c"),
            );
        }
        b.add_rule(
            &t(),
            RuleBuilder::new().verdict(Verdict::Accept).build("nochain"),
        );
        e.append(b);
        let err = sock.apply_encoded(&mut e).unwrap_err();
        assert_eq!(
            err.to_string(),
            "nft: add rule inet ferro_cni nochain: No such file or directory"
        );
        assert_eq!(rules("c").len(), 20_000, "the flush was not applied either");

        // An idempotent delete is refused before anything is sent.
        let mut e = EncodedBatch::new();
        let mut b = Batch::new();
        b.flush_chain(&t(), "c", false).del_set(&t(), "gone", true);
        e.append(b);
        let err = sock.apply_encoded(&mut e).unwrap_err().to_string();
        assert!(err.contains("delete set inet ferro_cni gone"), "{err}");
        assert_eq!(rules("c").len(), 20_000);
    })
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn a_list_of_elements_longer_than_an_attribute_arrives_whole() {
    // 20,000 keys with comments: several times the 64 KiB one attribute can describe.
    in_netns(|| {
        let mut sock = NftSocket::open().unwrap();
        let elems: Vec<Elem> = (0..20_000u32)
            .map(|i| {
                Elem::addr(std::net::Ipv4Addr::from(0x0a60_0000 + i).into())
                    .with_comment(format!("service {i}"))
            })
            .collect();
        let mut b = Batch::new();
        b.add_table(&t())
            .add_set(&t(), SetDef::set("s", vec![DataType::Ipv4Addr]))
            .add_elems(&t(), "s", elems.clone());
        sock.apply(&b).unwrap();
        assert_eq!(sock.list_elems(&t(), "s").unwrap().unwrap().len(), 20_000);
        let mut b = Batch::new();
        b.del_elems(&t(), "s", elems[..15_000].to_vec(), false);
        sock.apply(&b).unwrap();
        assert_eq!(sock.list_elems(&t(), "s").unwrap().unwrap().len(), 5_000);
    })
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn chains_of_our_table_are_listed_from_our_rules_and_maps_only() {
    in_netns(|| {
        nft_file(
            r#"table inet ferro_cni {
                 chain d { comment "jumped to"; }
                 chain m { }
                 chain lonely { }
                 map v { type inet_proto . inet_service : verdict; elements = { tcp . 80 : jump m } }
                 chain c { tcp dport 22 jump d; }
               }
               table inet other { chain x { accept; }; chain y { }; }"#,
        );
        let mut sock = NftSocket::open().unwrap();
        let mut names: Vec<(String, Option<String>)> = sock
            .list_chains(&t())
            .unwrap()
            .into_iter()
            .map(|c| (c.name, c.comment))
            .collect();
        names.sort();
        assert_eq!(
            names,
            vec![
                ("c".to_string(), None),
                ("d".to_string(), Some("jumped to".to_string())),
                ("m".to_string(), None),
            ]
        );
        assert!(sock
            .list_chains(&TableRef::inet("missing"))
            .unwrap()
            .is_empty());
    })
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn chains_of_several_tables_in_one_round_trip_and_iptables_rules_read_back() {
    in_netns(|| {
        // What iptables-nft writes, by iptables-nft itself.
        ferro_testutil::nft::sh(&["iptables-nft", "-t", "nat", "-N", "CNI-X"]);
        ferro_testutil::nft::sh(&[
            "iptables-nft",
            "-t",
            "nat",
            "-A",
            "POSTROUTING",
            "-s",
            "10.99.0.2",
            "-m",
            "comment",
            "--comment",
            "name: \"kbr\" id: \"a\"",
            "-j",
            "CNI-X",
        ]);
        let nat4 = TableRef::new(Family::Ip, "nat");
        let nat6 = TableRef::new(Family::Ip6, "nat");
        let mut sock = NftSocket::open().unwrap();
        let got = sock
            .get_chains_in(&[
                (&nat4, "CNI-X"),
                (&nat6, "CNI-X"),
                (&nat4, "CNI-Y"),
                (&nat4, "POSTROUTING"),
            ])
            .unwrap();
        let names: Vec<Option<&str>> = got
            .iter()
            .map(|c| c.as_ref().map(|c| c.name.as_str()))
            .collect();
        assert_eq!(
            names,
            [Some("CNI-X"), None, None, Some("POSTROUTING")],
            "a missing table reads as a missing chain"
        );
        let rules = sock.list_rules(&nat4, Some("POSTROUTING")).unwrap();
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].jump_target(), Some("CNI-X"));
        assert_eq!(
            rules[0].iptables_comment().as_deref(),
            Some(r#"name: "kbr" id: "a""#)
        );

        // Our codec writes the same comment match; iptables-nft reads it back.
        let comment = rules[0]
            .exprs
            .iter()
            .find(|e| e.xt_comment().is_some())
            .cloned()
            .unwrap();
        let mut b = Batch::new();
        b.add_rule(
            &nat4,
            Rule::new("CNI-X", vec![comment, Expr::verdict(Verdict::Accept)]),
        );
        sock.apply(&b).unwrap();
        let saved = ferro_testutil::nft::sh(&["iptables-nft-save", "-t", "nat"]);
        assert!(
            saved.contains(r#"-A CNI-X -m comment --comment "name: \"kbr\" id: \"a\"" -j ACCEPT"#),
            "{saved}"
        );
    });
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn the_service_statements_read_back_as_nft_writes_them() {
    // numgen into a named integer map, dynamic sets with timeouts and their updates, reject,
    // negated CIDR, mark clearing and fully random masquerade: what a kube-proxy-like
    // ruleset needs, listed back by nft in its own syntax.
    in_netns(|| {
        let mut sock = NftSocket::open().unwrap();
        let t = TableRef::inet("svc");
        let mut b = Batch::new();
        b.add_table(&t)
            .add_chain(&t, Chain::regular("ep0"))
            .add_chain(&t, Chain::regular("ep1"))
            .add_chain(
                &t,
                Chain::base("nat", ChainType::Nat, Hook::Postrouting, priority::SRCNAT),
            )
            .add_chain(&t, Chain::base("f", ChainType::Filter, Hook::Input, 0))
            .add_set(&t, SetDef::vmap("pick", vec![DataType::Integer]))
            .add_set(
                &t,
                SetDef::dynamic_timeout("aff", vec![DataType::Ipv4Addr], 10_800_000),
            )
            .add_elems(
                &t,
                "pick",
                vec![
                    Elem::int(0).with_verdict(Verdict::Goto("ep0".into())),
                    Elem::int(1).with_verdict(Verdict::Goto("ep1".into())),
                ],
            )
            .add_rule(
                &t,
                RuleBuilder::new()
                    .addr_in_set(false, Dir::Src, "aff", false)
                    .verdict(Verdict::Goto("ep0".into()))
                    .build("f"),
            )
            .add_rule(&t, RuleBuilder::new().numgen_vmap(2, "pick").build("f"))
            .add_rule(
                &t,
                RuleBuilder::new()
                    .not_addr_cidr(Dir::Src, "10.244.0.0/16".parse().unwrap())
                    .reject()
                    .build("f"),
            )
            .add_rule(
                &t,
                RuleBuilder::new().l4proto(6).reject_tcp_reset().build("f"),
            )
            .add_rule(
                &t,
                RuleBuilder::new().update_saddr(false, "aff").build("ep0"),
            )
            .add_rule(
                &t,
                RuleBuilder::new()
                    .mark_masked_eq(0x4000, 0x4000)
                    .clear_mark(0x4000)
                    .masquerade_fully_random()
                    .build("nat"),
            );
        sock.apply(&b).unwrap();
        let l = nft(&["list", "table", "inet", "svc"]);
        for want in [
            "numgen random mod 2 vmap @pick",
            "ip saddr @aff goto ep0",
            "ip saddr != 10.244.0.0/16 reject",
            "meta l4proto tcp reject with tcp reset",
            "update @aff { ip saddr }",
            "meta mark set meta mark & 0xffffbfff",
            "masquerade fully-random",
            "flags dynamic,timeout",
            "timeout 3h",
            "0 : goto ep0, 1 : goto ep1",
        ] {
            assert!(l.contains(want), "missing {want:?} in:\n{l}");
        }
        // The expressions decode back to what was sent.
        let got = sock.list_rules(&t, Some("ep0")).unwrap();
        assert!(matches!(
            got[0].exprs.last(),
            Some(Expr::Dynset { set, op: 1, .. }) if set == "aff"
        ));
    })
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn interval_concatenations_named_counters_and_logging_reach_the_kernel_and_read_back() {
    in_netns(|| {
        let t = TableRef::inet("ferro_policy");
        let mut sock = NftSocket::open().unwrap();
        let range = |a: &str, b: &str, p: u8, lo: u16, hi: u16| {
            Elem::range(
                &[KeyPart::Addr(ip(a)), KeyPart::Proto(p), KeyPart::Port(lo)],
                &[KeyPart::Addr(ip(b)), KeyPart::Proto(p), KeyPart::Port(hi)],
            )
        };
        let key = vec![
            DataType::Ipv4Addr,
            DataType::InetProto,
            DataType::InetService,
        ];
        let mut b = Batch::new();
        b.add_table(&t)
            .add_set(&t, SetDef::set("allow4", key).with_interval())
            .add_counter(&t, "drops")
            .add_chain(&t, Chain::regular("pod"))
            .add_elems(
                &t,
                "allow4",
                vec![
                    range("10.0.0.0", "10.0.0.255", 6, 80, 81),
                    range("10.0.1.7", "10.0.1.7", 17, 53, 53),
                ],
            )
            .add_rule(
                &t,
                RuleBuilder::new()
                    .concat_lookup(
                        &[
                            KeyField::Ip4(Dir::Src),
                            KeyField::L4Proto,
                            KeyField::ThDport,
                        ],
                        "allow4",
                        true,
                    )
                    .verdict(Verdict::Return)
                    .build("pod"),
            )
            .add_rule(
                &t,
                RuleBuilder::new()
                    .limit_per_second(5, 10)
                    .log_group(9, Some("in x/a"))
                    .build("pod"),
            )
            .add_rule(
                &t,
                RuleBuilder::new()
                    .counter_named("drops")
                    .verdict(Verdict::Drop)
                    .build("pod"),
            );
        sock.apply(&b).unwrap();
        let text = nft(&["list", "table", "inet", "ferro_policy"]);
        for want in [
            "10.0.0.0/24 . tcp . 80-81",
            "10.0.1.7 . udp . 53",
            "limit rate 5/second burst 10 packets log prefix \"in x/a\" group 9",
            "counter name \"drops\" drop",
        ] {
            assert!(text.contains(want), "{want:?} in\n{text}");
        }
        let elems = sock.list_elems(&t, "allow4").unwrap().unwrap();
        assert_eq!(elems.len(), 2);
        assert!(elems.iter().all(|e| e.key_end.is_some()), "{elems:?}");
        let counters = sock.list_counters(&t).unwrap();
        assert_eq!(counters.len(), 1);
        assert_eq!(counters[0].name, "drops");
        assert_eq!((counters[0].packets, counters[0].bytes), (0, 0));
        // The rules read back as they were built.
        let dumped = sock.list_rules(&t, Some("pod")).unwrap();
        assert_eq!(dumped.len(), 3);
        assert!(matches!(dumped[2].exprs[0], Expr::CounterRef { ref name } if name == "drops"));
        // Overlapping elements are refused, removing one by its range works, an unused
        // counter can be deleted.
        let mut b = Batch::new();
        b.add_elems(&t, "allow4", vec![range("10.0.0.5", "10.0.0.5", 6, 80, 80)]);
        assert!(sock.apply(&b).is_err());
        let mut b = Batch::new();
        b.del_elems(
            &t,
            "allow4",
            vec![range("10.0.0.0", "10.0.0.255", 6, 80, 81)],
            false,
        )
        .add_elems(&t, "allow4", vec![range("10.0.0.5", "10.0.0.5", 6, 80, 80)])
        .add_counter(&t, "spare");
        sock.apply(&b).unwrap();
        let mut b = Batch::new();
        b.del_counter(&t, "spare", false);
        sock.apply(&b).unwrap();
        assert_eq!(sock.list_counters(&t).unwrap().len(), 1);
        let text = nft(&["list", "set", "inet", "ferro_policy", "allow4"]);
        assert!(text.contains("10.0.0.5 . tcp . 80"), "{text}");
        assert!(!text.contains("10.0.0.0/24"), "{text}");
    })
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn packets_logged_to_an_nflog_group_are_read_back_with_their_prefix() {
    in_netns(|| {
        let t = TableRef::inet("ferro_policy");
        let mut nflog = ferro_nftables::nflog::NflogSocket::bind(4242).unwrap();
        let mut b = Batch::new();
        b.add_table(&t)
            .add_chain(
                &t,
                Chain::base("out", ChainType::Filter, Hook::Output, priority::FILTER),
            )
            .add_rule(
                &t,
                RuleBuilder::new()
                    .l4proto(17)
                    .th_dport(9)
                    .log_group(4242, Some("egress x/a"))
                    .build("out"),
            );
        NftSocket::open().unwrap().apply(&b).unwrap();
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.send_to(b"hello", "127.0.0.1:9").unwrap();
        let mut got = Vec::new();
        for _ in 0..20 {
            got.extend(
                nflog
                    .next(std::time::Duration::from_millis(100))
                    .unwrap()
                    .packets,
            );
            if !got.is_empty() {
                break;
            }
        }
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].prefix, "egress x/a");
        let sum = got[0].summary().unwrap();
        assert_eq!((sum.proto, sum.dport), (17, 9));
        assert_eq!(sum.dst, ip("127.0.0.1"));
        // Nothing else arrives.
        assert!(nflog
            .next(std::time::Duration::from_millis(50))
            .unwrap()
            .packets
            .is_empty());
    })
}
