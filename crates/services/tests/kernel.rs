//! The planned table against the kernel (root), in a private network namespace: the whole
//! table applies in one batch, `nft list` shows every rule as the plan wrote it, and the
//! incremental batches (an endpoint more, services removed, back to nothing) apply. The
//! fixture's services include one with UDP, TCP and SCTP ports.

#![allow(clippy::unwrap_used)] // test code: a panic is a failure

use ferro_nftables::NftSocket;
use ferro_services::fixtures::{att, cluster, planned, pod};
use ferro_services::{diff, Ruleset};
use ferro_testutil::nft::{in_netns, nft};

fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn check_listing(r: &Ruleset) {
    let listing = squash(&nft(&["list", "table", "inet", "ferro_services"]));
    for (name, c) in &r.chains {
        assert!(
            listing.contains(&format!("chain {name} {{")),
            "chain {name} missing"
        );
        for rule in &c.rules {
            let want = squash(&rule.text);
            assert!(
                listing.contains(&want),
                "rule `{want}` of {name} not listed as planned:\n{}",
                nft(&["list", "table", "inet", "ferro_services"])
            );
        }
    }
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn the_plan_and_its_diffs_apply_and_list_as_planned() {
    ferro_testutil::require_root();
    in_netns(|| {
        let mut sock = NftSocket::open().unwrap();
        let (s, mut p, mut a) = cluster();
        let first = planned(&s, &p, &a);
        sock.apply(&diff(None, &first)).unwrap();
        check_listing(&first);
        // A service of three protocols: one element per port in the one lookup map.
        let listing = squash(&nft(&["list", "table", "inet", "ferro_services"]));
        for proto_port in ["udp . 53", "tcp . 53", "sctp . 3868"] {
            assert!(
                listing.contains(&format!("10.96.0.15 . {proto_port} : goto svc-")),
                "{proto_port}: {listing}"
            );
        }
        // Applying the full rebuild again (an agent restart) works on an existing table.
        sock.apply(&diff(None, &first)).unwrap();

        p.push(pod("shop", "web-3", "web", &[("http", 8080, "TCP")]));
        a.push(att("shop", "web-3", "a", &["10.244.1.9/24"]));
        let second = planned(&s, &p, &a);
        sock.apply(&diff(Some(&first), &second)).unwrap();
        check_listing(&second);

        let third = planned(&s[..1], &p, &a);
        sock.apply(&diff(Some(&second), &third)).unwrap();
        check_listing(&third);
        let listing = nft(&["list", "table", "inet", "ferro_services"]);
        assert!(!listing.contains("shop/lb"), "{listing}");

        let none = planned(&[], &p, &a);
        sock.apply(&diff(Some(&third), &none)).unwrap();
        let listing = nft(&["list", "table", "inet", "ferro_services"]);
        assert!(!listing.contains("ep-"), "{listing}");
        // Back to the full table from nothing, incrementally.
        sock.apply(&diff(Some(&none), &second)).unwrap();
        check_listing(&second);
    })
}
