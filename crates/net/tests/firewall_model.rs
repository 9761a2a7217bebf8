//! The suite's firewall model against the kernel, each test in a private network namespace,
//! verified with `nft -j list table inet ferro_cni`.

#![allow(clippy::unwrap_used)] // test code: a panic is a failure

use std::net::IpAddr;

use ferro_net::conntrack;
use ferro_net::firewall::*;
use ferro_net::nft::{Batch, NftSocket};
use ferro_spec::{CniError, PortMapping, Protocol};
use ferro_testutil::nft::{
    elem_comments, in_netns, listing, map_entries, nft, rule_handle, rules, sh,
};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn spec() -> MasqSpec {
    MasqSpec {
        network: "kbr".into(),
        non_masquerade: vec![
            "10.244.0.0/16".parse().unwrap(),
            "10.240.0.0/16".parse().unwrap(),
            "fd00::/64".parse().unwrap(),
        ],
    }
}

fn tag(ctr: &str) -> Tag {
    Tag::new("kbr", ctr, "eth0")
}

fn masq_add(sock: &mut NftSocket, ips: &[&str], t: &Tag) {
    let ips: Vec<IpAddr> = ips.iter().map(|s| ip(s)).collect();
    let mut b = Batch::new();
    masq_add_ops(&mut b, &spec(), &ips, t).unwrap();
    sock.apply(&b).unwrap();
}

/// (address, comment) of both pod sets.
fn pods() -> Vec<(String, Option<String>)> {
    let mut v = elem_comments("pods4-kbr");
    v.extend(elem_comments("pods6-kbr"));
    v.sort();
    v
}

fn entry(a: &str, c: &str) -> (String, Option<String>) {
    (a.to_string(), Some(c.to_string()))
}

// ---- masquerade ----------------------------------------------------------------------------

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn masq_add_twice_keeps_one_copy_of_each_rule_and_rules_do_not_grow_with_pods() {
    in_netns(|| {
        let mut sock = NftSocket::open().unwrap();
        masq_add(&mut sock, &["10.244.0.5", "fd00::5"], &tag("ctr1"));
        masq_add(&mut sock, &["10.244.0.5", "fd00::5"], &tag("ctr1"));
        assert_eq!(rules("masq-kbr").len(), 2);
        // 10.244/16, 10.240/16, 224/4, 255.255.255.255, masquerade
        assert_eq!(rules("masq4-kbr").len(), 5);
        // fd00::/64, ff00::/8, fe80::/10, masquerade
        assert_eq!(rules("masq6-kbr").len(), 4);
        assert_eq!(
            pods(),
            vec![
                entry("10.244.0.5", "ctr1/eth0"),
                entry("fd00::5", "ctr1/eth0")
            ]
        );
        let before = listing();
        masq_add(&mut sock, &["10.244.0.6"], &tag("ctr2"));
        assert_eq!(rules("masq-kbr").len(), 2);
        assert_eq!(rules("masq4-kbr").len(), 5);
        assert_eq!(pods().len(), 3);
        // Only the set changed.
        let strip = |s: &str| {
            s.lines()
                .filter(|l| !l.contains("elements"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(strip(&before), strip(&listing()));
        let l = listing();
        assert!(l.contains("ip saddr @pods4-kbr goto masq4-kbr"), "{l}");
        assert!(l.contains("ip6 saddr @pods6-kbr goto masq6-kbr"), "{l}");
        assert!(
            l.contains("type nat hook postrouting priority srcnat; policy accept;"),
            "{l}"
        );
    })
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn masq_add_rebuilds_a_rule_deleted_by_hand_and_check_notices_it() {
    in_netns(|| {
        let mut sock = NftSocket::open().unwrap();
        let ips = [ip("10.244.0.5")];
        masq_add(&mut sock, &["10.244.0.5"], &tag("ctr1"));
        masq_check(&mut sock, &spec(), &ips, &tag("ctr1")).unwrap();

        let h = rule_handle("masq4-kbr", "masquerade");
        nft(&[
            "delete",
            "rule",
            "inet",
            "ferro_cni",
            "masq4-kbr",
            "handle",
            &h.to_string(),
        ]);
        let err = masq_check(&mut sock, &spec(), &ips, &tag("ctr1")).unwrap_err();
        assert!(err.is_check_failure());
        assert_eq!(
            err.to_string(),
            "nft check: chain inet ferro_cni masq4-kbr has 4 rules, expected 5"
        );
        assert_eq!(CniError::from(err).code.number(), 103);

        // A changed rule is noticed too (same count, different content).
        let h = rule_handle("masq-kbr", "pods4-kbr");
        nft(&[
            "replace",
            "rule",
            "inet",
            "ferro_cni",
            "masq-kbr",
            "handle",
            &h.to_string(),
            "ip",
            "saddr",
            "@pods4-kbr",
            "accept",
        ]);
        let err = masq_check(&mut sock, &spec(), &ips, &tag("ctr1"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("nft check: rule 1 of chain inet ferro_cni masq-kbr differs"),
            "{err}"
        );

        // The next ADD (any pod of the network) heals the chains.
        masq_add(&mut sock, &["10.244.0.6"], &tag("ctr2"));
        assert_eq!(rules("masq4-kbr").len(), 5);
        masq_check(&mut sock, &spec(), &ips, &tag("ctr1")).unwrap();
    })
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn masq_check_names_a_missing_element_chain_or_table() {
    in_netns(|| {
        let mut sock = NftSocket::open().unwrap();
        let ips = [ip("10.244.0.5"), ip("fd00::5")];
        masq_add(&mut sock, &["10.244.0.5", "fd00::5"], &tag("ctr1"));
        masq_check(&mut sock, &spec(), &ips, &tag("ctr1")).unwrap();
        // Another attachment's check fails on ownership.
        let err = masq_check(&mut sock, &spec(), &ips, &tag("ctr9"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("belongs to \"ctr1/eth0\""), "{err}");

        nft(&[
            "delete",
            "element",
            "inet",
            "ferro_cni",
            "pods6-kbr",
            "{",
            "fd00::5",
            "}",
        ]);
        let err = masq_check(&mut sock, &spec(), &ips, &tag("ctr1")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "nft check: element fd00::5 of set inet ferro_cni pods6-kbr is missing"
        );
        nft(&["flush", "chain", "inet", "ferro_cni", "masq-kbr"]);
        nft(&["delete", "chain", "inet", "ferro_cni", "masq-kbr"]);
        let err = masq_check(&mut sock, &spec(), &ips, &tag("ctr1")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "nft check: chain inet ferro_cni masq-kbr is missing"
        );
        nft(&["delete", "table", "inet", "ferro_cni"]);
        let err = masq_check(&mut sock, &spec(), &ips, &tag("ctr1")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "nft check: table inet ferro_cni is missing"
        );
    })
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn masq_remove_with_ips_and_without_and_again() {
    in_netns(|| {
        let mut sock = NftSocket::open().unwrap();
        // Nothing there yet: success.
        assert_eq!(
            masq_remove(&mut sock, "kbr", None, &tag("ctr1"))
                .unwrap()
                .len(),
            0
        );
        assert_eq!(
            masq_remove(&mut sock, "kbr", Some(&[ip("10.244.0.5")]), &tag("ctr1"))
                .unwrap()
                .len(),
            0
        );
        masq_add(&mut sock, &["10.244.0.5", "fd00::5"], &tag("ctr1"));
        masq_add(&mut sock, &["10.244.0.6", "fd00::6"], &tag("ctr2"));

        let n = masq_remove(
            &mut sock,
            "kbr",
            Some(&[ip("10.244.0.5"), ip("fd00::5")]),
            &tag("ctr1"),
        )
        .unwrap()
        .len();
        assert_eq!(n, 2);
        assert_eq!(
            pods(),
            vec![
                entry("10.244.0.6", "ctr2/eth0"),
                entry("fd00::6", "ctr2/eth0")
            ]
        );
        // DEL without prevResult: the sets are listed to find the attachment's elements.
        assert_eq!(
            masq_remove(&mut sock, "kbr", None, &tag("ctr2"))
                .unwrap()
                .len(),
            2
        );
        assert!(pods().is_empty());
        // Again: idempotent.
        assert_eq!(
            masq_remove(&mut sock, "kbr", None, &tag("ctr2"))
                .unwrap()
                .len(),
            0
        );
        // The chains stay for the network's other pods.
        assert_eq!(rules("masq-kbr").len(), 2);
    })
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn masq_remove_keeps_an_address_retagged_by_another_attachment() {
    in_netns(|| {
        let mut sock = NftSocket::open().unwrap();
        masq_add(&mut sock, &["10.244.0.5"], &tag("old"));
        // The address was released and handed to a new pod before the old DEL ran.
        masq_add(&mut sock, &["10.244.0.5"], &tag("new"));
        assert_eq!(pods(), vec![entry("10.244.0.5", "new/eth0")]);
        assert_eq!(
            masq_remove(&mut sock, "kbr", Some(&[ip("10.244.0.5")]), &tag("old"))
                .unwrap()
                .len(),
            0
        );
        assert_eq!(
            masq_remove(&mut sock, "kbr", None, &tag("old"))
                .unwrap()
                .len(),
            0
        );
        assert_eq!(pods(), vec![entry("10.244.0.5", "new/eth0")]);
        masq_check(&mut sock, &spec(), &[ip("10.244.0.5")], &tag("new")).unwrap();
    })
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn masq_gc_deletes_elements_of_invalid_attachments_only() {
    in_netns(|| {
        let mut sock = NftSocket::open().unwrap();
        masq_add(&mut sock, &["10.244.0.1", "fd00::1"], &tag("a"));
        masq_add(&mut sock, &["10.244.0.2"], &tag("b"));
        masq_add(&mut sock, &["10.244.0.3"], &tag("c"));
        // Someone else's element without a tag: not ours to judge.
        nft(&[
            "add",
            "element",
            "inet",
            "ferro_cni",
            "pods4-kbr",
            "{",
            "10.244.0.99",
            "}",
        ]);
        let valid = [tag("b")];
        assert_eq!(
            masq_gc(&mut sock, "kbr", valid_in(&valid)).unwrap().len(),
            3
        );
        assert_eq!(
            pods(),
            vec![
                entry("10.244.0.2", "b/eth0"),
                ("10.244.0.99".to_string(), None)
            ]
        );
        assert_eq!(
            masq_gc(&mut sock, "kbr", valid_in(&valid)).unwrap().len(),
            0
        );
        // A network without objects: nothing to do.
        assert_eq!(masq_gc(&mut sock, "other", |_| false).unwrap().len(), 0);
    })
}

// ---- anti-spoofing -------------------------------------------------------------------------

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn antispoof_is_one_rule_rebuilt_by_each_add_and_combined_with_masquerade() {
    in_netns(|| {
        let mut sock = NftSocket::open().unwrap();
        // One transaction for both (what the flat plugin sends).
        let mut b = Batch::new();
        masq_add_ops(&mut b, &spec(), &[ip("10.240.0.5")], &tag("ctr1")).unwrap();
        antispoof_ops(&mut b, "fl").unwrap();
        sock.apply(&b).unwrap();
        sock.apply(&b).unwrap();
        assert_eq!(rules("antispoof-fl").len(), 1);
        let l = listing();
        assert!(
            l.contains("type filter hook prerouting priority raw; policy accept;"),
            "{l}"
        );
        assert!(
            l.contains("iifname \"fl*\" fib saddr . iif oif missing drop"),
            "{l}"
        );
        antispoof_check(&mut sock, "fl").unwrap();
        let err = antispoof_check(&mut sock, "ov").unwrap_err().to_string();
        assert_eq!(
            err,
            "nft check: chain inet ferro_cni antispoof-ov is missing"
        );

        nft(&["flush", "chain", "inet", "ferro_cni", "antispoof-fl"]);
        let err = antispoof_check(&mut sock, "fl").unwrap_err().to_string();
        assert!(
            err.contains("antispoof-fl has 0 rules, expected 1"),
            "{err}"
        );
        let mut b = Batch::new();
        antispoof_ops(&mut b, "fl").unwrap();
        sock.apply(&b).unwrap();
        antispoof_check(&mut sock, "fl").unwrap();

        let mut b = Batch::new();
        antispoof_remove_ops(&mut b, "fl").unwrap();
        sock.apply(&b).unwrap();
        sock.apply(&b).unwrap(); // idempotent
        assert!(!listing().contains("antispoof-fl"));
    })
}

// ---- host ports ----------------------------------------------------------------------------

fn pm(
    host_port: u16,
    container_port: u16,
    protocol: Protocol,
    host_ip: Option<&str>,
) -> PortMapping {
    PortMapping {
        host_port,
        container_port,
        protocol,
        host_ip: host_ip.map(|s| s.parse().unwrap()),
    }
}

fn hp(ctr: &str, pod4: &str, mappings: Vec<PortMapping>) -> HostPorts {
    HostPorts {
        tag: tag(ctr),
        mappings,
        pod_v4: Some((pod4.parse().unwrap(), "10.244.0.0/24".parse().unwrap())),
        pod_v6: Some(("fd00::5".parse().unwrap(), "fd00::/64".parse().unwrap())),
        snat: true,
        mark_bit: 13,
    }
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn hostports_add_check_del_and_del_again_without_mappings() {
    in_netns(|| {
        let mut sock = NftSocket::open().unwrap();
        let h = hp(
            "ctr1",
            "10.244.0.5",
            vec![
                pm(8080, 80, Protocol::Tcp, None),
                pm(5353, 53, Protocol::Udp, Some("0.0.0.0")),
                pm(9000, 9000, Protocol::Sctp, Some("192.0.2.1")),
                pm(9001, 9001, Protocol::Tcp, Some("fd00::1")),
            ],
        );
        assert!(hostports_add(&mut sock, &h).unwrap().is_empty());
        assert!(
            hostports_add(&mut sock, &h).unwrap().is_empty(),
            "ADD again: nothing taken over"
        );
        hostports_check(&mut sock, &h).unwrap();
        let chain = h.tag.hostports_chain();
        let c = Some("kbr/ctr1/eth0".to_string());
        assert_eq!(
            map_entries("hostports-any"),
            vec![
                ("tcp . 8080".to_string(), c.clone(), chain.clone()),
                ("udp . 5353".to_string(), c.clone(), chain.clone())
            ]
        );
        assert_eq!(
            map_entries("hostports-ip4"),
            vec![(
                "192.0.2.1 . sctp . 9000".to_string(),
                c.clone(),
                chain.clone()
            )]
        );
        assert_eq!(
            map_entries("hostports-ip6"),
            vec![("fd00::1 . tcp . 9001".to_string(), c, chain.clone())]
        );
        // "" = 3 v4 + 2 v6; 0.0.0.0 = 3; 192.0.2.1 = 3; fd00::1 = 2
        assert_eq!(rules(&chain).len(), 13);
        let l = listing();
        assert!(l.contains("tcp dport 8080 dnat ip to 10.244.0.5:80"), "{l}");
        assert!(l.contains("tcp dport 8080 dnat ip6 to [fd00::5]:80"), "{l}");
        assert!(
            l.contains("ip daddr 192.0.2.1 sctp dport 9000 dnat ip to 10.244.0.5:9000"),
            "{l}"
        );
        assert!(
            l.contains("ip saddr 127.0.0.0/8 udp dport 5353 meta mark set meta mark | 0x00002000"),
            "{l}"
        );
        assert!(
            l.contains("meta mark & 0x00002000 == 0x00002000 masquerade"),
            "{l}"
        );
        assert!(l.contains("fib daddr type local jump hostports"), "{l}");
        assert_eq!(rules("hostports").len(), 3);

        // DEL knows only the attachment: the kernel objects are the record.
        let mut removed = hostports_del(&mut sock, &h.tag).unwrap();
        removed.sort_by_key(|p| p.port);
        let ports: Vec<(u8, u16)> = removed.iter().map(|p| (p.protocol, p.port)).collect();
        assert_eq!(ports, vec![(17, 5353), (6, 8080), (132, 9000), (6, 9001)]);
        assert!(map_entries("hostports-any").is_empty());
        assert!(map_entries("hostports-ip4").is_empty() && map_entries("hostports-ip6").is_empty());
        assert!(!listing().contains(&chain));
        // Shared objects stay for other pods.
        assert_eq!(rules("hostports").len(), 3);
        // Again: nothing to do.
        assert!(hostports_del(&mut sock, &h.tag).unwrap().is_empty());
        let err = hostports_check(&mut sock, &h).unwrap_err();
        assert!(err.is_check_failure());
        assert!(err.to_string().contains(&format!(
            "chain inet ferro_cni {chain} of kbr/ctr1/eth0 is missing"
        )));
    })
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn hostports_on_a_node_without_our_table_del_is_a_no_op() {
    in_netns(|| {
        let mut sock = NftSocket::open().unwrap();
        assert!(hostports_del(&mut sock, &tag("x")).unwrap().is_empty());
        assert_eq!(hostports_gc(&mut sock, "kbr", |_| false).unwrap(), 0);
        assert!(listing().is_empty());
    })
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn hostports_last_add_wins_a_key_and_the_losers_del_keeps_the_winners_element() {
    in_netns(|| {
        let mut sock = NftSocket::open().unwrap();
        let a = hp("a", "10.244.0.5", vec![pm(8080, 80, Protocol::Tcp, None)]);
        let b = hp(
            "b",
            "10.244.0.6",
            vec![
                pm(8080, 8080, Protocol::Tcp, None),
                pm(9090, 90, Protocol::Tcp, None),
            ],
        );
        assert!(hostports_add(&mut sock, &a).unwrap().is_empty());
        let replaced = hostports_add(&mut sock, &b).unwrap();
        assert_eq!(
            replaced,
            vec![Replaced {
                map: "hostports-any".into(),
                key: "tcp . 8080".into(),
                previous_chain: a.tag.hostports_chain(),
                previous_owner: Some("kbr/a/eth0".into()),
            }]
        );
        let entries = map_entries("hostports-any");
        assert_eq!(entries.len(), 2);
        assert!(
            entries
                .iter()
                .all(|(_, _, t)| *t == b.tag.hostports_chain()),
            "{entries:?}"
        );
        hostports_check(&mut sock, &b).unwrap();
        let err = hostports_check(&mut sock, &a).unwrap_err().to_string();
        assert!(err.contains("mapping tcp *:8080 -> 10.244.0.5:80"), "{err}");
        assert!(
            err.contains(&format!("jumps to {}", b.tag.hostports_chain())),
            "{err}"
        );

        // The loser's DEL removes its chain but not the winner's element.
        assert!(hostports_del(&mut sock, &a.tag).unwrap().is_empty());
        assert!(!listing().contains(&a.tag.hostports_chain()));
        assert_eq!(map_entries("hostports-any").len(), 2);
        hostports_check(&mut sock, &b).unwrap();
    })
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn hostports_check_names_the_mapping_whose_rule_or_element_is_missing() {
    in_netns(|| {
        let mut sock = NftSocket::open().unwrap();
        let h = hp(
            "ctr1",
            "10.244.0.5",
            vec![
                pm(8080, 80, Protocol::Tcp, None),
                pm(5353, 53, Protocol::Udp, None),
            ],
        );
        hostports_add(&mut sock, &h).unwrap();
        let chain = h.tag.hostports_chain();
        let handle = rule_handle(&chain, "5353");
        // That is the first rule of the udp mapping (the v4 hairpin mark).
        nft(&[
            "delete",
            "rule",
            "inet",
            "ferro_cni",
            &chain,
            "handle",
            &handle.to_string(),
        ]);
        let err = hostports_check(&mut sock, &h).unwrap_err().to_string();
        assert!(err.contains("mapping udp *:5353 -> 10.244.0.5:53"), "{err}");

        hostports_add(&mut sock, &h).unwrap();
        hostports_check(&mut sock, &h).unwrap();
        nft(&[
            "delete",
            "element",
            "inet",
            "ferro_cni",
            "hostports-any",
            "{",
            "tcp",
            ".",
            "8080",
            "}",
        ]);
        let err = hostports_check(&mut sock, &h).unwrap_err().to_string();
        assert_eq!(
            err,
            "nft check: mapping tcp *:8080 -> 10.244.0.5:80: element tcp . 8080 is missing from map inet ferro_cni hostports-any"
        );
        hostports_add(&mut sock, &h).unwrap();
        hostports_check(&mut sock, &h).unwrap();
    })
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn the_node_listing_names_our_pods_and_host_ports_and_removal_takes_the_whole_table() {
    use ferro_net::firewall::node::{ours, remove_ours};
    in_netns(|| {
        let mut sock = NftSocket::open().unwrap();
        assert_eq!(ours(&mut sock).unwrap(), Default::default());
        assert!(!remove_ours(&mut sock).unwrap());
        masq_add(&mut sock, &["10.244.0.5"], &tag("ctr1"));
        hostports_add(
            &mut sock,
            &hp(
                "ctr1",
                "10.244.0.5",
                vec![pm(8080, 80, Protocol::Tcp, None)],
            ),
        )
        .unwrap();
        let o = ours(&mut sock).unwrap();
        assert!(o.table && o.has_attachments() && o.objects > 0);
        assert_eq!(o.pods.len(), 1);
        assert_eq!(
            (
                o.pods[0].set.as_str(),
                o.pods[0].address,
                o.pods[0].owner.as_deref()
            ),
            ("pods4-kbr", ip("10.244.0.5"), Some("ctr1/eth0"))
        );
        assert_eq!(o.host_ports.len(), 1);
        assert_eq!(o.host_ports[0].owner.as_deref(), Some("kbr/ctr1/eth0"));
        assert_eq!(o.host_ports[0].chain, tag("ctr1").hostports_chain());
        assert_eq!(
            (
                o.host_ports[0].ports[0].protocol,
                o.host_ports[0].ports[0].port
            ),
            (6, 8080)
        );
        assert!(remove_ours(&mut sock).unwrap());
        assert_eq!(nft(&["list", "ruleset"]), "");
        assert!(!remove_ours(&mut sock).unwrap());
    })
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn hostports_gc_removes_invalid_attachments_of_that_network_only() {
    in_netns(|| {
        let mut sock = NftSocket::open().unwrap();
        let a = hp("a", "10.244.0.5", vec![pm(1001, 80, Protocol::Tcp, None)]);
        let b = hp("b", "10.244.0.6", vec![pm(1002, 80, Protocol::Tcp, None)]);
        let mut c = hp(
            "c",
            "10.244.0.7",
            vec![pm(1003, 80, Protocol::Udp, Some("192.0.2.1"))],
        );
        c.tag = Tag::new("other", "c", "eth0");
        for h in [&a, &b, &c] {
            hostports_add(&mut sock, h).unwrap();
        }
        let valid = [b.tag.clone()];
        assert_eq!(hostports_gc(&mut sock, "kbr", valid_in(&valid)).unwrap(), 1);
        let l = listing();
        assert!(!l.contains(&a.tag.hostports_chain()), "{l}");
        assert!(
            l.contains(&b.tag.hostports_chain()) && l.contains(&c.tag.hostports_chain()),
            "{l}"
        );
        assert_eq!(map_entries("hostports-any").len(), 1);
        assert_eq!(map_entries("hostports-ip4").len(), 1);
        hostports_check(&mut sock, &b).unwrap();
        hostports_check(&mut sock, &c).unwrap();
        assert_eq!(hostports_gc(&mut sock, "kbr", valid_in(&valid)).unwrap(), 0);
        assert_eq!(hostports_gc(&mut sock, "other", |_| false).unwrap(), 1);
        assert!(map_entries("hostports-ip4").is_empty());
    })
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn the_whole_model_lists_as_one_table() {
    in_netns(|| {
        let mut sock = NftSocket::open().unwrap();
        let t = tag("ctr1");
        let mut b = Batch::new();
        masq_add_ops(&mut b, &spec(), &[ip("10.244.0.5"), ip("fd00::5")], &t).unwrap();
        antispoof_ops(&mut b, "fl").unwrap();
        sock.apply(&b).unwrap();
        let h = hp(
            "ctr1",
            "10.244.0.5",
            vec![
                pm(8080, 80, Protocol::Tcp, None),
                pm(5353, 53, Protocol::Udp, Some("192.0.2.1")),
            ],
        );
        hostports_add(&mut sock, &h).unwrap();
        let l = listing();
        println!("{l}");
        for needle in [
            "set pods4-kbr",
            "elements = { 10.244.0.5 comment \"ctr1/eth0\" }",
            "map hostports-any",
            "chain masq-kbr",
            "chain antispoof-fl",
            "chain hostports-prerouting",
            "chain hostports-output",
            "chain hostports-masq",
            "comment \"kbr/ctr1/eth0\"",
        ] {
            assert!(l.contains(needle), "{needle} missing from:\n{l}");
        }
        // Nothing outside our table.
        let tables = nft(&["list", "tables"]);
        assert_eq!(tables.trim(), "table inet ferro_cni");
    })
}

// ---- conntrack -----------------------------------------------------------------------------

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn udp_conntrack_entries_of_the_given_ports_are_deleted() {
    in_netns(|| {
        let add = |args: &[&str]| {
            let mut a = vec!["conntrack", "-I"];
            a.extend_from_slice(args);
            a.extend_from_slice(&["-t", "300"]);
            sh(&a);
        };
        add(&[
            "-p", "udp", "-s", "10.0.0.1", "-d", "10.0.0.2", "--sport", "1000", "--dport", "5353",
        ]);
        add(&[
            "-p", "udp", "-s", "10.0.0.3", "-d", "10.0.0.2", "--sport", "1001", "--dport", "5353",
        ]);
        add(&[
            "-p", "udp", "-s", "fd00::1", "-d", "fd00::2", "--sport", "1000", "--dport", "5353",
        ]);
        add(&[
            "-p", "udp", "-s", "10.0.0.1", "-d", "10.0.0.2", "--sport", "1000", "--dport", "53",
        ]);
        add(&[
            "-p",
            "tcp",
            "-s",
            "10.0.0.1",
            "-d",
            "10.0.0.2",
            "--sport",
            "1000",
            "--dport",
            "5353",
            "--state",
            "ESTABLISHED",
        ]);
        let count = || sh(&["conntrack", "-L"]).lines().count();
        assert_eq!(count(), 5);
        // The dump reads every entry with both tuples.
        let all = conntrack::dump().unwrap();
        assert_eq!(all.len(), 5, "{all:?}");
        let tcp = all.iter().find(|e| e.orig.proto == 6).unwrap();
        assert_eq!(
            (
                tcp.orig.src.to_string(),
                tcp.orig.dport,
                tcp.reply.src.to_string(),
                tcp.reply.sport
            ),
            ("10.0.0.1".to_string(), 5353, "10.0.0.2".to_string(), 5353)
        );
        assert!(all
            .iter()
            .any(|e| e.orig.src.is_ipv6() && e.orig.dport == 5353));

        assert_eq!(conntrack::delete_udp_dport(&[5353, 7777]).unwrap(), 3);
        let left = sh(&["conntrack", "-L"]);
        assert_eq!(left.lines().count(), 2, "{left}");
        assert!(left.contains("dport=53 ") && left.contains("tcp"), "{left}");
        assert!(
            !left
                .lines()
                .any(|l| l.starts_with("udp") && l.contains("dport=5353")),
            "{left}"
        );
        // Again, and with nothing to match: zero.
        assert_eq!(conntrack::delete_udp_dport(&[5353]).unwrap(), 0);
        assert_eq!(conntrack::delete_udp_dport(&[]).unwrap(), 0);
    })
}
