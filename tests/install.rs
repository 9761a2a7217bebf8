//! `scripts/install.sh`: installs exactly the binaries, the chosen example and its
//! manifest into a temporary prefix and conf dir; an installed binary answers VERSION; files
//! that are not ours are refused, or with `--force` kept and put back; `--uninstall` leaves the
//! directories exactly as they were.
//!
//! The test installs the binaries this test run built (`--from`): the release build the script
//! does by default is the same copy step after a `cargo build --release`. Nothing outside the
//! temporary directory is read or written (no root needed).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use ferro_e2e::{repo, Ran};

const BINARIES: [&str; 8] = [
    "bridge",
    "cluster-ipam",
    "cnictl",
    "flat",
    "host-local",
    "loopback",
    "overlay",
    "portmap",
];

fn install(args: &[&str]) -> Ran {
    let out = Command::new(repo().join("scripts/install.sh"))
        .args(args)
        .output()
        .unwrap();
    Ran {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Every file and directory under `root`, relative to it, directories with a trailing `/`.
fn tree(root: &Path) -> BTreeSet<String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            if p.is_dir() {
                out.insert(format!("{rel}/"));
                walk(root, &p, out);
            } else {
                out.insert(rel);
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(root, root, &mut out);
    out
}

#[test]
fn install_puts_exactly_its_files_and_uninstall_removes_exactly_them() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    // what was there before: another plugin in the plugin dir, another config in the conf dir
    std::fs::create_dir_all(root.join("opt/cni")).unwrap();
    std::fs::create_dir_all(root.join("etc/cni/net.d")).unwrap();
    std::fs::write(root.join("etc/cni/net.d/05-other.conflist"), "{}").unwrap();
    let before = tree(root);

    let prefix = root.join("opt/cni/bin");
    let conf_dir = root.join("etc/cni/net.d");
    let from = ferro_testutil::bin_dir();
    let (p, c, f) = (
        prefix.to_str().unwrap(),
        conf_dir.to_str().unwrap(),
        from.to_str().unwrap(),
    );
    let out = install(&[
        "--from",
        f,
        "--prefix",
        p,
        "--conf-dir",
        c,
        "--conf",
        "kubenet",
    ]);
    out.ok("install.sh");
    assert!(
        out.stderr.contains("lexically first file") && out.stderr.contains("05-other.conflist"),
        "it warns that containerd would read another file: {}",
        out.stderr
    );
    let mut expected = before.clone();
    expected.insert("opt/cni/bin/".into());
    for b in BINARIES {
        expected.insert(format!("opt/cni/bin/{b}"));
    }
    expected.insert("opt/cni/bin/ferro-cni.manifest".into());
    expected.insert("etc/cni/net.d/10-kubenet.conflist".into());
    assert_eq!(tree(root), expected);
    assert_eq!(
        std::fs::read_to_string(conf_dir.join("10-kubenet.conflist")).unwrap(),
        ferro_e2e::example("kubenet.conflist")
    );
    for b in BINARIES {
        let from_bytes = std::fs::read(from.join(b)).unwrap();
        assert!(std::fs::read(prefix.join(b)).unwrap() == from_bytes, "{b}");
    }

    // an installed plugin answers VERSION
    let run = ferro_testutil::run_plugin(
        prefix.join("bridge"),
        &[("CNI_COMMAND", "VERSION")],
        r#"{"cniVersion":"1.0.0"}"#,
    );
    let v = run.ok();
    assert_eq!(v["cniVersion"], "1.0.0");
    assert!(v["supportedVersions"]
        .as_array()
        .unwrap()
        .contains(&"1.1.0".into()));

    // installing again (an upgrade) is fine: the files are ours
    install(&["--from", f, "--prefix", p]).ok("install.sh again");

    install(&["--prefix", p, "--uninstall"]).ok("install.sh --uninstall");
    assert_eq!(
        tree(root),
        before,
        "uninstall leaves exactly what was there"
    );
}

#[test]
fn the_agent_its_unit_and_its_configuration() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    std::fs::create_dir_all(root.join("usr/local")).unwrap();
    let before = tree(root);
    let d = |p: &str| root.join(p).display().to_string();
    let from = ferro_testutil::bin_dir();
    let args = [
        "--from".to_string(),
        from.display().to_string(),
        "--prefix".into(),
        d("opt/cni/bin"),
        "--agent".into(),
        "--sbin-dir".into(),
        d("usr/local/sbin"),
        "--unit-dir".into(),
        d("etc/systemd/system"),
        "--etc-dir".into(),
        d("etc/ferro-cni"),
    ];
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = install(&argv);
    out.ok("install.sh --agent");
    assert!(
        out.stdout.contains("systemctl enable --now ferro-agent"),
        "{}",
        out.stdout
    );
    let after = tree(root);
    for f in [
        "usr/local/sbin/ferro-agent",
        "etc/systemd/system/ferro-agent.service",
        "etc/ferro-cni/agent.json",
        "opt/cni/bin/cnictl",
    ] {
        assert!(after.contains(f), "{f} in {after:?}");
    }
    assert_eq!(
        std::fs::read(root.join("usr/local/sbin/ferro-agent")).unwrap(),
        std::fs::read(from.join("ferro-agent")).unwrap()
    );
    let unit =
        std::fs::read_to_string(root.join("etc/systemd/system/ferro-agent.service")).unwrap();
    assert!(
        unit.contains(&format!(
            "ExecStart={} --config {}/agent.json",
            d("usr/local/sbin/ferro-agent"),
            d("etc/ferro-cni")
        )),
        "{unit}"
    );
    assert!(
        unit.contains("KillSignal=SIGTERM") && unit.contains("RuntimeDirectoryMode=0700"),
        "{unit}"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("etc/ferro-cni/agent.json")).unwrap(),
        ferro_e2e::example("agent-embedded.json")
    );

    // an edited configuration survives a reinstall and the uninstall
    std::fs::write(
        root.join("etc/ferro-cni/agent.json"),
        "{\"nodeName\":\"mine\"}",
    )
    .unwrap();
    let again = install(&argv);
    again.ok("install.sh --agent again");
    assert!(again.stdout.contains("kept"), "{}", again.stdout);
    install(&["--prefix", &d("opt/cni/bin"), "--uninstall"]).ok("uninstall");
    let mut expected = before.clone();
    expected.insert("etc/".into());
    expected.insert("etc/ferro-cni/".into());
    expected.insert("etc/ferro-cni/agent.json".into());
    assert_eq!(
        tree(root),
        expected,
        "only the edited configuration is left"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("etc/ferro-cni/agent.json")).unwrap(),
        "{\"nodeName\":\"mine\"}"
    );
}

#[test]
fn files_that_are_not_ours_are_refused_or_kept_and_put_back() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    let prefix = root.join("bin");
    std::fs::create_dir_all(&prefix).unwrap();
    // a reference plugin of the same name, as distributions ship in /opt/cni/bin
    std::fs::write(prefix.join("bridge"), "reference bridge").unwrap();
    std::fs::write(prefix.join("macvlan"), "reference macvlan").unwrap();
    let before = tree(root);
    let from = ferro_testutil::bin_dir();
    let (p, f) = (prefix.to_str().unwrap(), from.to_str().unwrap());

    let refused = install(&["--from", f, "--prefix", p]);
    assert_ne!(refused.code, 0);
    assert!(refused.stderr.contains("--force"), "{}", refused.stderr);
    assert_eq!(
        std::fs::read_to_string(prefix.join("bridge")).unwrap(),
        "reference bridge"
    );
    install(&["--prefix", p, "--uninstall"]).ok("uninstall after a refused install");
    assert_eq!(
        tree(root),
        before,
        "a refused install is undone by --uninstall"
    );

    install(&["--from", f, "--prefix", p, "--force"]).ok("install.sh --force");
    assert_eq!(
        std::fs::read_to_string(prefix.join("bridge.ferro-cni-orig")).unwrap(),
        "reference bridge"
    );
    assert!(tree(root).contains("bin/flat"));
    install(&["--prefix", p, "--uninstall"]).ok("install.sh --uninstall");
    assert_eq!(
        tree(root),
        before,
        "the reference plugin is back, nothing else"
    );
    assert_eq!(
        std::fs::read_to_string(prefix.join("bridge")).unwrap(),
        "reference bridge"
    );

    let unknown = install(&["--from", f, "--prefix", p, "--conf", "calico"]);
    assert_ne!(unknown.code, 0);
    assert!(
        unknown.stderr.contains("unknown model"),
        "{}",
        unknown.stderr
    );
}
