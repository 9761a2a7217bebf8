//! Decoding rules that iptables-nft wrote, from the kernel's own dump: the reference CNI
//! plugins' nat rules (`tests/fixtures/xtables.v4.rules`, `xtables.v6.rules`, loaded with
//! iptables-nft-restore and dumped by `tests/fixtures/capture.sh`). Each dumped rule must
//! decode to its chain and handle, print as `nft --debug=netlink` printed it, and give back the
//! comment and the jump or target the rules file wrote.

#![allow(clippy::unwrap_used)] // test code: a panic is a failure

use std::collections::BTreeMap;

use ferro_nftables::wire::{AttrWriter, Attrs};
use ferro_nftables::*;

/// One dumped rule (a record of `tests/fixtures/xtables.txt`).
#[derive(Debug, Default)]
struct Dumped {
    family: String,
    chain: String,
    handle: u64,
    msg_type: u16,
    payload: Vec<u8>,
    debug: Vec<String>,
}

fn dumped() -> Vec<Dumped> {
    let mut out: Vec<Dumped> = Vec::new();
    for line in include_str!("fixtures/xtables.txt").lines() {
        let (key, rest) = line.split_once(' ').unwrap_or((line, ""));
        match key {
            "" | "#" => {}
            "rule" => {
                let f: Vec<&str> = rest.split(' ').collect();
                assert_eq!(f.len(), 4, "rule line: {line}");
                out.push(Dumped {
                    family: f[0].to_string(),
                    chain: f[2].to_string(),
                    handle: f[3].parse().unwrap(),
                    ..Dumped::default()
                });
            }
            _ => {
                let d = out.last_mut().expect("a record starts with its rule line");
                match key {
                    "type" => {
                        d.msg_type =
                            u16::from_str_radix(rest.split(' ').next().unwrap(), 16).unwrap()
                    }
                    "payload" => {
                        let hex: String = rest.split_whitespace().collect();
                        for i in (0..hex.len()).step_by(2) {
                            d.payload
                                .push(u8::from_str_radix(&hex[i..i + 2], 16).unwrap());
                        }
                    }
                    "debug" => d.debug.push(rest.to_string()),
                    other => panic!("unknown fixture line {other:?}: {line}"),
                }
            }
        }
    }
    assert_eq!(out.len(), 28, "records in fixtures/xtables.txt");
    out
}

/// What a `-A` line of an iptables-save file says about the rule: its chain, its comment,
/// and where `-j` sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Written {
    chain: String,
    comment: Option<String>,
    jump: Jump,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Jump {
    Accept,
    Chain(String),
    Target(String),
}

/// Splits an iptables-save line into words, honouring double quotes and `\"`.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let (mut quoted, mut escaped, mut any) = (false, false, false);
    for c in line.chars() {
        match c {
            _ if escaped => {
                cur.push(c);
                escaped = false;
            }
            '\\' if quoted => escaped = true,
            '"' => {
                quoted = !quoted;
                any = true;
            }
            ' ' if !quoted => {
                if any || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                any = false;
            }
            c => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn written(rules: &str) -> BTreeMap<String, Vec<Written>> {
    let mut by_chain: BTreeMap<String, Vec<Written>> = BTreeMap::new();
    for line in rules.lines().filter(|l| l.starts_with("-A ")) {
        let w = words(line);
        let after = |flag: &str| w.iter().position(|x| x == flag).map(|i| w[i + 1].clone());
        let jump = match after("-j").unwrap().as_str() {
            "ACCEPT" => Jump::Accept,
            t @ ("MASQUERADE" | "DNAT" | "MARK") => Jump::Target(t.to_string()),
            c => Jump::Chain(c.to_string()),
        };
        by_chain.entry(w[1].clone()).or_default().push(Written {
            chain: w[1].clone(),
            comment: after("--comment"),
            jump,
        });
    }
    by_chain
}

fn decoded_as_written(r: &RuleInfo) -> Written {
    let jump = match (r.jump_target(), r.exprs.last()) {
        (Some(c), _) => Jump::Chain(c.to_string()),
        (None, Some(Expr::Target { name, .. })) => Jump::Target(name.clone()),
        (None, Some(Expr::Immediate { .. })) => Jump::Accept,
        (None, other) => panic!("rule of {} ends with {other:?}", r.chain),
    };
    Written {
        chain: r.chain.clone(),
        comment: r.iptables_comment(),
        jump,
    }
}

fn decode(d: &Dumped) -> RuleInfo {
    RuleInfo::decode(Attrs::new(&d.payload[4..]))
}

#[test]
fn dumped_rules_decode_to_their_chain_and_handle_and_print_like_nft() {
    for d in dumped() {
        assert_eq!(d.msg_type, 0x0a06, "NFT_MSG_NEWRULE");
        let r = decode(&d);
        assert_eq!((r.chain.as_str(), r.handle), (d.chain.as_str(), d.handle));
        let printed: Vec<String> = r.exprs.iter().map(|e| e.to_string()).collect();
        assert_eq!(printed, d.debug, "rule {} {}", d.chain, d.handle);
        assert!(
            !r.exprs.iter().any(|e| matches!(e, Expr::Unknown { .. })),
            "{r:?}"
        );
    }
}

#[test]
fn comments_jumps_and_targets_read_back_as_the_rules_file_wrote_them() {
    for (family, file) in [
        ("ip", include_str!("fixtures/xtables.v4.rules")),
        ("ip6", include_str!("fixtures/xtables.v6.rules")),
    ] {
        let want = written(file);
        let mut got: BTreeMap<String, Vec<Written>> = BTreeMap::new();
        for d in dumped().iter().filter(|d| d.family == family) {
            let r = decode(d);
            got.entry(r.chain.clone())
                .or_default()
                .push(decoded_as_written(&r));
        }
        assert_eq!(got, want, "{family} nat");
    }
}

#[test]
fn the_reference_rules_carry_their_owner_in_the_comment_match_only() {
    let all = dumped();
    let jump = all
        .iter()
        .map(decode)
        .find(|r| {
            r.chain == "POSTROUTING" && r.jump_target() == Some("CNI-30b26f549b412d057b79f83d")
        })
        .unwrap();
    assert_eq!(
        jump.iptables_comment().as_deref(),
        Some(r#"name: "kbr" id: "ctrA""#)
    );
    // iptables 1.8.9 writes no userdata comment: the match is the only record.
    assert_eq!(jump.comment, None);
    // struct xt_comment_info: the text, NUL-padded to XT_MAX_COMMENT_LEN (256).
    let Some(Expr::Match { name, rev, info }) =
        jump.exprs.iter().find(|e| matches!(e, Expr::Match { .. }))
    else {
        panic!("no match expression in {jump:?}")
    };
    assert_eq!((name.as_str(), *rev, info.len()), ("comment", 0, 256));
    let dnat = all
        .iter()
        .map(decode)
        .find(|r| r.chain == "CNI-HOSTPORT-DNAT")
        .unwrap();
    assert_eq!(
        dnat.iptables_comment().as_deref(),
        Some(r#"dnat name: "kbr" id: "ctrA""#)
    );
    assert_eq!(dnat.jump_target(), Some("CNI-DN-30b26f549b412d057b79f"));
    // A rule without a comment match and without a jump.
    let dn = all
        .iter()
        .map(decode)
        .find(|r| {
            r.exprs
                .iter()
                .any(|e| matches!(e, Expr::Target { name, .. } if name == "DNAT"))
        })
        .unwrap();
    assert_eq!((dn.iptables_comment(), dn.jump_target()), (None, None));
}

#[test]
fn match_and_target_expressions_encode_as_they_decode() {
    for d in dumped() {
        let r = decode(&d);
        for e in r
            .exprs
            .iter()
            .filter(|e| matches!(e, Expr::Match { .. } | Expr::Target { .. }))
        {
            // Encode the expression as one rule's list element, then decode it back.
            let rule = Rule::new(&r.chain, vec![e.clone()]);
            let mut b = Batch::new();
            b.add_rule(&TableRef::new(Family::Ip, "nat"), rule);
            let buf = b.encode(1, None);
            let msg = ferro_nftables::wire::messages(&buf)
                .find(|m| m.ty == 0x0a06)
                .unwrap();
            let back = RuleInfo::decode(msg.nf_attrs());
            assert_eq!(back.exprs, vec![e.clone()]);
        }
    }
    // An empty writer stays usable by the helper above.
    assert!(AttrWriter::new().into_bytes().is_empty());
}
