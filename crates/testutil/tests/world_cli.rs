//! `ferro-world up` builds the tests' simulated network under the given names and leaves it
//! (the VM on the VNet reaches the internet host through the router, nodes have their
//! addresses), describes it for a shell, and `ferro-world down` removes exactly its
//! namespaces.
#![allow(clippy::unwrap_used)]

use std::process::Command;

use ferro_testutil::netns::{prefix, Netns};
use ferro_testutil::require_root;
use ferro_testutil::topology::{World, INTERNET, INTERNET6};

fn world(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ferro-world"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn up_builds_the_named_world_and_down_removes_only_it() {
    require_root();
    let p = format!("{}-w", prefix());
    let names: Vec<String> = World::labels(3)
        .iter()
        .map(|l| format!("{p}-{l}"))
        .collect();
    // a namespace of the same prefix that is not the world's stays
    let other = Netns::named(&format!("{p}-pod"));

    let (ok, out) = world(&["up", &p, "3"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("WORLD_NODE_IPS='10.240.0.4 10.240.0.5 10.240.0.6'"),
        "{out}"
    );
    assert!(
        out.contains(&format!("WORLD_NAMESPACES='{}'", names.join(" "))),
        "{out}"
    );
    assert!(out.contains("WORLD_VNET='10.240.0.0/16'"), "{out}");
    assert!(
        out.contains("WORLD_NODE_IPS6='fd00:240::4 fd00:240::5 fd00:240::6'")
            && out.contains("WORLD_INTERNET6='2001:db8:113::10'"),
        "{out}"
    );
    for n in &names {
        assert!(Netns::exists(n), "{n} missing after up");
    }
    for dst in [INTERNET, INTERNET6] {
        let ping = Command::new("ip")
            .args([
                "netns",
                "exec",
                &format!("{p}-peer"),
                "ping",
                "-c1",
                "-W2",
                "-q",
                dst,
            ])
            .status()
            .unwrap();
        assert!(
            ping.success(),
            "the VM does not reach the internet host {dst}"
        );
    }
    let addr = Command::new("ip")
        .args([
            "-n",
            &format!("{p}-nodec"),
            "-4",
            "-o",
            "addr",
            "show",
            "eth0",
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&addr.stdout).contains("10.240.0.6/16"));

    let (ok, out) = world(&["down", &p, "3"]);
    assert!(ok, "{out}");
    for n in &names {
        assert!(!Netns::exists(n), "{n} left after down");
    }
    assert!(
        Netns::exists(other.name()),
        "down removed a namespace that is not the world's"
    );
    // down again: nothing to do, still a success; bad arguments are refused
    assert!(world(&["down", &p, "3"]).0);
    assert!(!world(&["up", "bad/prefix"]).0);
    assert!(!world(&["sideways", &p]).0);
}
