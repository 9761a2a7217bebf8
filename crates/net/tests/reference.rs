//! Removing the reference plugins' iptables-nft state (taking over a node), against the
//! kernel, each test in a private network namespace. The state is written by iptables-nft
//! itself, in the layout the reference plugins 1.1.1 write (bridge `ipMasq` and portmap), next
//! to rules of other owners; it is checked with `iptables-nft-save`.

#![allow(clippy::unwrap_used)] // test code: a panic is a failure

use std::io::Write;
use std::process::{Command, Stdio};

use ferro_net::firewall::reference::{dnat_chain, masq_chain, SHARED_CHAINS};
use ferro_net::firewall::*;
use ferro_net::nft::NftSocket;
use ferro_testutil::nft::{in_netns, nft, sh};

/// Feeds `rules` to `<tool> --noflush` (iptables-nft-restore or ip6tables-nft-restore).
fn restore(tool: &str, rules: &str) {
    let mut child = Command::new(tool)
        .arg("--noflush")
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(rules.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{tool}: {}\n{rules}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What the reference writes for one attachment with one host port (`ip` is the pod's
/// address, `net` its subnet), in iptables-save syntax; the shared chains are declared
/// (`:`) by every attachment and created once.
fn reference_rules(network: &str, id: &str, ip: &str, net: &str, port: u16, v6: bool) -> String {
    let (m, d) = (masq_chain(network, id), dnat_chain(network, id));
    let c = format!(r#""name: \"{network}\" id: \"{id}\"""#);
    let (multicast, host, to) = if v6 {
        ("ff00::/8", "128", format!("[{ip}]:80"))
    } else {
        ("224.0.0.0/4", "32", format!("{ip}:80"))
    };
    let mut s = String::from("*nat\n");
    for ch in [&m, &d] {
        s += &format!(":{ch} - [0:0]\n");
    }
    s += &format!(
        "-A POSTROUTING -s {ip}/{host} -m comment --comment {c} -j {m}
-A {m} -d {net} -m comment --comment {c} -j ACCEPT
-A {m} ! -d {multicast} -m comment --comment {c} -j MASQUERADE
-A {d} -s {net} -p tcp -m tcp --dport {port} -j CNI-HOSTPORT-SETMARK
-A {d} -p tcp -m tcp --dport {port} -j DNAT --to-destination {to}
-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment \"dnat name: \\\"{network}\\\" id: \\\"{id}\\\"\" -m multiport --dports {port} -j {d}
COMMIT
"
    );
    s
}

/// The shared chains and their jumps, as the reference's first portmap ADD writes them.
const SHARED: &str = r#"*nat
:CNI-HOSTPORT-DNAT - [0:0]
:CNI-HOSTPORT-SETMARK - [0:0]
:CNI-HOSTPORT-MASQ - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-A OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-A POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ
-A CNI-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE
-A CNI-HOSTPORT-SETMARK -m comment --comment "CNI portfwd masquerade mark" -j MARK --set-xmark 0x2000/0x2000
COMMIT
"#;

/// Another owner's rules in the same table (kube-proxy's shape).
const FOREIGN: &str = r#"*nat
:KUBE-POSTROUTING - [0:0]
-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING
-A KUBE-POSTROUTING -m mark --mark 0x4000/0x4000 -j MASQUERADE
COMMIT
"#;

/// A node with kbr/a (v4 and v6), kbr/b and other/c made by the reference, plus kube-proxy.
fn node() {
    for (tool, shared) in [
        ("iptables-nft-restore", SHARED),
        ("ip6tables-nft-restore", SHARED),
    ] {
        restore(tool, shared);
        restore(tool, FOREIGN);
    }
    restore(
        "iptables-nft-restore",
        &reference_rules("kbr", "a", "10.99.0.2", "10.99.0.0/24", 18900, false),
    );
    restore(
        "ip6tables-nft-restore",
        &reference_rules("kbr", "a", "fd00:99::2", "fd00:99::/64", 18900, true),
    );
    restore(
        "iptables-nft-restore",
        &reference_rules("kbr", "b", "10.99.0.3", "10.99.0.0/24", 18901, false),
    );
    restore(
        "iptables-nft-restore",
        &reference_rules("other", "c", "10.98.0.2", "10.98.0.0/24", 18902, false),
    );
}

/// `iptables-nft-save -t nat` and `ip6tables-nft-save -t nat`, without comments and counters.
fn saved() -> String {
    let mut out = String::new();
    for tool in ["iptables-nft-save", "ip6tables-nft-save"] {
        for l in sh(&[tool, "-t", "nat"]).lines() {
            if !l.starts_with('#') {
                out += l;
                out.push('\n');
            }
        }
    }
    out
}

fn lines_with(s: &str, needle: &str) -> Vec<String> {
    s.lines()
        .filter(|l| l.contains(needle))
        .map(String::from)
        .collect()
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn del_removes_one_attachment_in_both_families_and_nothing_else() {
    in_netns(|| {
        node();
        let before = saved();
        let (ma, da) = (masq_chain("kbr", "a"), dnat_chain("kbr", "a"));
        assert_eq!(lines_with(&before, &ma).len(), 2 * 4, "{before}");
        let mut sock = NftSocket::open().unwrap();
        // portmap's DEL, then bridge's (the reverse order of the list).
        let dn = reference_del(&mut sock, RefKind::HostPorts, "kbr", "a").unwrap();
        assert_eq!(dn.chains, [format!("ip nat {da}"), format!("ip6 nat {da}")]);
        assert_eq!(dn.host_ports, [(6, 18900)]);
        assert_eq!(
            lines_with(&saved(), &ma).len(),
            2 * 4,
            "the masquerade is bridge's"
        );
        let m = reference_del(&mut sock, RefKind::Masquerade, "kbr", "a").unwrap();
        assert_eq!(m.chains, [format!("ip nat {ma}"), format!("ip6 nat {ma}")]);
        assert_eq!(m.host_ports, []);
        let after = saved();
        for gone in [
            ma.as_str(),
            da.as_str(),
            r#"id: \"a\""#,
            "10.99.0.2",
            "fd00:99::2",
            "18900",
        ] {
            assert_eq!(lines_with(&after, gone), Vec::<String>::new(), "{gone}");
        }
        // Everything else is untouched, line for line.
        let kept: Vec<&str> = before
            .lines()
            .filter(|l| !l.contains(&ma) && !l.contains(&da) && !l.contains(r#"id: \"a\""#))
            .collect();
        assert_eq!(after.lines().collect::<Vec<_>>(), kept);
        // Twice in a row: nothing left, nothing changed.
        for kind in [RefKind::HostPorts, RefKind::Masquerade] {
            let again = reference_del(&mut sock, kind, "kbr", "a").unwrap();
            assert_eq!(again, RefRemoved::default());
        }
        assert_eq!(saved(), after);
    });
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn del_on_a_node_without_reference_state_changes_nothing() {
    in_netns(|| {
        let mut sock = NftSocket::open().unwrap();
        // No nat table at all.
        assert!(reference_del(&mut sock, RefKind::Masquerade, "kbr", "a")
            .unwrap()
            .chains
            .is_empty());
        assert_eq!(nft(&["list", "ruleset"]), "");
        // A nat table of someone else.
        restore("iptables-nft-restore", FOREIGN);
        let gen = sock.generation().unwrap();
        for kind in [RefKind::HostPorts, RefKind::Masquerade] {
            let del = reference_del(&mut sock, kind, "kbr", "a").unwrap();
            assert_eq!(del, RefRemoved::default());
        }
        assert_eq!(sock.generation().unwrap(), gen, "nothing was written");
    });
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn a_jump_from_elsewhere_is_found_by_reading_the_whole_table() {
    in_netns(|| {
        node();
        let ma = masq_chain("kbr", "a");
        restore(
            "iptables-nft-restore",
            &format!(
                "*nat\n:ELSEWHERE - [0:0]\n-A ELSEWHERE -j {ma}\n-A ELSEWHERE -j RETURN\nCOMMIT\n"
            ),
        );
        let mut sock = NftSocket::open().unwrap();
        reference_del(&mut sock, RefKind::Masquerade, "kbr", "a").unwrap();
        let after = saved();
        assert!(lines_with(&after, &ma).is_empty(), "{after}");
        // Only the rule leading to the chain went; the chain and its other rule stay.
        assert_eq!(
            lines_with(&after, "-A ELSEWHERE"),
            ["-A ELSEWHERE -j RETURN"]
        );
    });
}

/// GC of both kinds, as a bridge + portmap list runs it (portmap's, then bridge's).
fn gc_both(sock: &mut NftSocket, network: &str, valid: &[&str]) -> (RefGc, RefGc) {
    let is_valid = |id: &str| valid.contains(&id);
    (
        reference_gc(sock, RefKind::HostPorts, network, is_valid).unwrap(),
        reference_gc(sock, RefKind::Masquerade, network, is_valid).unwrap(),
    )
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn gc_keeps_valid_attachments_and_removes_the_shared_chains_with_the_last_one() {
    in_netns(|| {
        node();
        let mut sock = NftSocket::open().unwrap();
        let (dn, m) = gc_both(&mut sock, "kbr", &["b"]);
        let removed = |g: &RefGc| -> Vec<String> {
            g.removed
                .iter()
                .map(|a| format!("{} {}", a.table, a.container_id))
                .collect()
        };
        assert_eq!(removed(&dn), ["ip nat a", "ip6 nat a"]);
        assert_eq!(dn.removed[0].host_ports, [(6, 18900)]);
        assert_eq!(removed(&m), ["ip nat a", "ip6 nat a"]);
        assert_eq!(
            m.removed[0].addresses,
            ["10.99.0.2".parse::<std::net::IpAddr>().unwrap()]
        );
        // ip6 nat held only kbr/a: its shared chains went with its last chain.
        assert!(dn.shared_removed.is_empty());
        assert_eq!(
            m.shared_removed,
            SHARED_CHAINS
                .iter()
                .map(|c| format!("ip6 nat {c}"))
                .collect::<Vec<_>>()
        );
        let s = saved();
        assert!(lines_with(&s, r#"id: \"a\""#).is_empty(), "{s}");
        assert_eq!(lines_with(&s, r#"id: \"b\""#).len(), 4, "{s}");
        assert_eq!(
            lines_with(&s, "CNI-HOSTPORT-DNAT").len(),
            5,
            "ip nat keeps them: {s}"
        );

        // kbr is empty now, but other/c is still the reference's: the shared chains stay.
        let (dn, m) = gc_both(&mut sock, "kbr", &[]);
        assert_eq!((dn.removed.len(), m.removed.len()), (1, 1));
        assert!(dn.shared_removed.is_empty() && m.shared_removed.is_empty());
        assert!(saved().contains(":CNI-HOSTPORT-MASQ"));

        // The last one: nothing of the reference is left, the foreign rules are.
        let (dn, m) = gc_both(&mut sock, "other", &[]);
        assert_eq!((dn.removed.len(), m.removed.len()), (1, 1));
        assert_eq!(m.shared_removed.len(), 3);
        let s = saved();
        assert!(lines_with(&s, "CNI").is_empty(), "{s}");
        assert_eq!(lines_with(&s, "KUBE-POSTROUTING").len(), 2 * 3, "{s}");
        // The tables and their built-in chains belong to iptables-nft and stay.
        assert!(nft(&["list", "tables"]).contains("table ip nat"));

        // Nothing left: GC again is a no-op.
        assert_eq!(
            gc_both(&mut sock, "kbr", &[]),
            (RefGc::default(), RefGc::default())
        );
        assert_eq!(saved(), s);
    });
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn the_state_listing_names_attachments_addresses_and_ports() {
    in_netns(|| {
        node();
        let mut sock = NftSocket::open().unwrap();
        let (found, shared) = reference_state(&mut sock).unwrap();
        let ids: Vec<String> = found
            .iter()
            .map(|a| {
                format!(
                    "{} {}/{} {:?} {:?}",
                    a.table, a.network, a.container_id, a.addresses, a.host_ports
                )
            })
            .collect();
        assert_eq!(
            ids,
            [
                "ip nat kbr/a [10.99.0.2] [(6, 18900)]",
                "ip nat kbr/b [10.99.0.3] [(6, 18901)]",
                "ip nat other/c [10.98.0.2] [(6, 18902)]",
                "ip6 nat kbr/a [fd00:99::2] [(6, 18900)]",
            ]
        );
        assert_eq!(shared.len(), 6);
    });
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn legacy_iptables_is_detected_in_the_namespace_and_del_still_succeeds() {
    in_netns(|| {
        assert_eq!(legacy_nat_tables(), Vec::<&str>::new());
        sh(&[
            "iptables-legacy",
            "-t",
            "nat",
            "-N",
            &masq_chain("kbr", "a"),
        ]);
        assert_eq!(legacy_nat_tables(), ["iptables"]);
        let mut sock = NftSocket::open().unwrap();
        assert!(reference_del(&mut sock, RefKind::Masquerade, "kbr", "a")
            .unwrap()
            .chains
            .is_empty());
        assert!(reference_gc(&mut sock, RefKind::Masquerade, "kbr", |_| false).is_ok());
    });
    // Another namespace does not see it.
    in_netns(|| assert_eq!(legacy_nat_tables(), Vec::<&str>::new()));
}
