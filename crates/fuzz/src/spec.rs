//! The CNI protocol (`ferro-spec`): a plugin's whole stdin through the dispatcher, results
//! (`prevResult`, a delegate's stdout) in every version's layout, and `CNI_ARGS` with the
//! other `CNI_*` variables.

use ferro_spec::args::CniArgs;
use ferro_spec::version::{self, Version};
use ferro_spec::{
    dispatch, CmdArgs, CniError, CniResult, Code, Command, Env, IpConfig, Plugin, Request,
};
use serde_json::Value;

use crate::{check_error, parts};

/// A plugin that parses nothing of its own: ADD answers with `prevResult` (as a chained
/// plugin passes it on) or a one-address result, the other verbs succeed. It reads the `IP`
/// key of `CNI_ARGS`, as host-local does.
#[derive(Debug)]
pub struct Echo;

impl Plugin for Echo {
    fn name(&self) -> &'static str {
        "echo"
    }

    fn cni_args(&self) -> Option<&'static [&'static str]> {
        Some(&["IP"])
    }

    fn add(&self, req: &Request) -> Result<CniResult, CniError> {
        Ok(req.prev_result.clone().unwrap_or_else(|| CniResult {
            ips: vec![IpConfig {
                address: "10.22.0.2/24".parse().expect("a valid address"),
                gateway: None,
                interface: None,
            }],
            ..CniResult::default()
        }))
    }

    fn del(&self, _req: &Request) -> Result<(), CniError> {
        Ok(())
    }

    fn check(&self, _req: &Request) -> Result<(), CniError> {
        Ok(())
    }
}

/// The environment of a pod attachment, as a runtime sets it.
pub fn pod_env(command: Command) -> Env {
    Env::from_pairs([
        ("CNI_COMMAND", command.as_str()),
        ("CNI_CONTAINERID", "c1"),
        ("CNI_NETNS", "/run/netns/fuzz"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/nonexistent"),
    ])
}

const COMMANDS: [Command; 6] = [
    Command::Add,
    Command::Del,
    Command::Check,
    Command::Gc,
    Command::Status,
    Command::Version,
];

/// Input: one byte choosing the verb, then stdin. Runs the dispatcher as a plugin binary
/// does. Invariants: exit status 0 or 1; stdout is exactly one JSON document and a newline;
/// a failure is an error object with a known code (never a caught panic); ADD's output is a
/// result in the requested version that reads back.
pub fn request(data: &[u8]) {
    let Some((&verb, stdin)) = data.split_first() else {
        return;
    };
    let command = COMMANDS[usize::from(verb) % COMMANDS.len()];
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let status = dispatch(&Echo, pod_env(command), &mut &stdin[..], &mut out, &mut err);
    assert!(status <= 1, "exit status {status}");
    if status == 0 && out.is_empty() {
        assert!(!matches!(command, Command::Add | Command::Version));
        return;
    }
    assert_eq!(
        out.last(),
        Some(&b'\n'),
        "output not terminated by a newline"
    );
    let reply: Value = serde_json::from_slice(&out).expect("stdout is one JSON document");
    if status == 1 {
        let e = CniError::from_json(&reply).expect("stdout is a CNI error object");
        assert!(
            !e.msg.starts_with("internal error:"),
            "a panic was caught: {}",
            e.msg
        );
        check_error(&e);
        return;
    }
    match command {
        Command::Add => {
            let asked = serde_json::from_slice::<Value>(stdin)
                .ok()
                .and_then(|v| v.get("cniVersion").cloned())
                .filter(|v| !v.is_null())
                .unwrap_or_else(|| Value::from("0.1.0"));
            assert_eq!(reply["cniVersion"], asked, "answered in another version");
            CniResult::from_value(&reply).expect("our own result reads back");
        }
        Command::Version => assert!(reply["supportedVersions"].is_array(), "{reply}"),
        _ => panic!("{command} printed {reply}"),
    }
}

/// Input: a result in any version's layout. Invariants: whatever parses is written in every
/// version (or refused with code 1 where a legacy layout cannot express it), what is written
/// reads back, writing again gives the same JSON, and the newest layout loses nothing.
pub fn result(data: &[u8]) {
    let Ok(v) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let r = match CniResult::from_value(&v) {
        Ok(r) => r,
        Err(e) => {
            assert_eq!(e.code, Code::Decode, "{e}");
            return check_error(&e);
        }
    };
    for &ver in version::ALL {
        let w = match r.to_value(ver) {
            Ok(w) => w,
            Err(e) => {
                assert!(ver.is_legacy_result(), "{ver}: {e}");
                assert_eq!(e.code, Code::IncompatibleVersion, "{e}");
                continue;
            }
        };
        assert_eq!(w["cniVersion"], ver.as_str());
        let r2 = CniResult::from_value(&w)
            .unwrap_or_else(|e| panic!("{ver}: our own output {w} does not read back: {e}"));
        let w2 = r2.to_value(ver).expect("writes again");
        assert_eq!(w, w2, "{ver}: writing is not stable");
        if ver == version::LATEST {
            assert_eq!(r, r2, "{ver} loses information");
        }
        // Text, as a runtime receives it.
        let text = serde_json::to_vec(&w).expect("serializes");
        assert_eq!(CniResult::from_slice(&text).expect("reads back"), r2);
    }
}

/// Input: `CNI_ARGS`, then `CNI_CONTAINERID`, `CNI_IFNAME`, `CNI_NETNS` and `CNI_PATH`, separated
/// by [`crate::SEP`]. Invariants: parsed pairs render and parse back to the same pairs;
/// the variables of every verb validate or fail with code 4.
pub fn cni_args(data: &[u8]) {
    let p = parts(data, 5);
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let args = text(p[0]);
    match CniArgs::parse(&args) {
        Ok(a) => {
            let again = CniArgs::parse(&a.render()).expect("rendered CNI_ARGS parse");
            assert_eq!(a, again, "render/parse round trip");
            if let Err(e) = a.check_known(&["IP"]) {
                assert_eq!(e.code, Code::InvalidEnv);
                check_error(&e);
            }
        }
        Err(e) => {
            assert_eq!(e.code, Code::InvalidEnv);
            check_error(&e);
        }
    }
    let env = Env::from_pairs([
        ("CNI_ARGS", args),
        ("CNI_CONTAINERID", text(p[1])),
        ("CNI_IFNAME", text(p[2])),
        ("CNI_NETNS", text(p[3])),
        ("CNI_PATH", text(p[4])),
    ]);
    for command in COMMANDS {
        match CmdArgs::from_env(command, &env) {
            Ok(c) => {
                if !c.ifname.is_empty() && matches!(command, Command::Add | Command::Del) {
                    ferro_spec::env::validate_ifname(&c.ifname).expect("validated");
                }
            }
            Err(e) => {
                assert_eq!(e.code, Code::InvalidEnv, "{e}");
                check_error(&e);
            }
        }
    }
}

/// The versions, for the seeds.
pub(crate) fn versions() -> &'static [Version] {
    version::ALL
}
