//! The dispatcher: environment and stdin in, one JSON document on stdout, an exit code out.
//!
//! [`dispatch`] takes the environment, stdin, stdout and stderr as parameters so every verb
//! and every error path is tested in-process; only [`run`], called from a binary's `main`,
//! touches the real process edge. Order of checks (mirroring libcni's skel): command,
//! VERSION, stdin (5), JSON (6), environment (4), `cniVersion` (1), verb rules (1), `name` (7),
//! shared keys (6/7), `prevResult` (6), `CNI_ARGS` (4), then the plugin.

use std::io::{Read, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};

use serde_json::Value;

use crate::conf::NetConf;
use crate::env::{CmdArgs, Command, Env};
use crate::error::CniError;
use crate::result::CniResult;
use crate::version::{self, Version};

/// The initial size of the buffer stdin is read into.
const STDIN_CAPACITY: usize = 16 * 1024;

/// Everything a verb needs: validated variables, the parsed shared config, the raw stdin
/// bytes (passed unchanged to delegates) and the environment.
#[derive(Debug, Clone)]
pub struct Request {
    /// The `CNI_*` variables.
    pub cmd: CmdArgs,
    /// The requested version; results are written in it.
    pub version: Version,
    /// Shared config keys and the whole object.
    pub conf: NetConf,
    /// `prevResult`, parsed from whichever version it was written in.
    pub prev_result: Option<CniResult>,
    /// stdin, byte for byte.
    pub stdin: Vec<u8>,
    /// The environment, passed on to delegates.
    pub env: Env,
}

impl Request {
    /// The netns path, or code 4 naming `CNI_NETNS` (for verbs that must enter it).
    pub fn netns(&self) -> Result<&std::path::Path, CniError> {
        self.cmd
            .netns
            .as_deref()
            .ok_or_else(|| CniError::invalid_env("required env variables [\"CNI_NETNS\"] missing"))
    }

    /// The container interface's addresses in `prevResult` (`None` without `prevResult`).
    pub fn prev_addresses(&self) -> Option<Vec<ipnet::IpNet>> {
        self.prev_result.as_ref().map(|p| {
            p.addresses_of(&self.cmd.ifname)
                .iter()
                .map(|i| i.address)
                .collect()
        })
    }

    /// The addresses of [`Request::prev_addresses`], without their prefix lengths.
    pub fn prev_ips(&self) -> Option<Vec<std::net::IpAddr>> {
        self.prev_addresses()
            .map(|v| v.iter().map(ipnet::IpNet::addr).collect())
    }

    /// Parses this plugin's own keys (see [`NetConf::section`]).
    pub fn section<T: serde::de::DeserializeOwned>(&self) -> Result<T, CniError> {
        self.conf.section()
    }
}

/// A CNI plugin: one implementation per binary.
pub trait Plugin {
    /// The binary name (= CNI `type`), used in the about text and logs.
    fn name(&self) -> &'static str;

    /// The versions this plugin answers to (all by default).
    fn versions(&self) -> &'static [Version] {
        version::ALL
    }

    /// The `CNI_ARGS` keys this plugin reads; `None` means it ignores `CNI_ARGS` entirely.
    fn cni_args(&self) -> Option<&'static [&'static str]> {
        None
    }

    /// ADD: attach and return the result.
    fn add(&self, req: &Request) -> Result<CniResult, CniError>;
    /// DEL: detach; must succeed when there is nothing left to delete.
    fn del(&self, req: &Request) -> Result<(), CniError>;
    /// CHECK: verify the attachment against `prevResult`.
    fn check(&self, req: &Request) -> Result<(), CniError>;
    /// GC: remove resources of attachments not in `conf.valid_attachments`.
    fn gc(&self, _req: &Request) -> Result<(), CniError> {
        Ok(())
    }
    /// STATUS: `Ok` when ADD can be serviced.
    fn status(&self, _req: &Request) -> Result<(), CniError> {
        Ok(())
    }
}

/// Runs `plugin` against the real process environment and stdio. The only place that
/// touches the process edge; the process exits with its value ([`crate::entry::start`]).
pub fn run(plugin: &dyn Plugin) -> u8 {
    let env = Env::from_process();
    crate::logging::init(plugin.name(), &env);
    dispatch(
        plugin,
        env,
        &mut std::io::stdin().lock(),
        &mut std::io::stdout().lock(),
        // not locked: a verb's helper threads log to stderr while the verb runs
        &mut std::io::stderr(),
    )
}

/// Handles one invocation; returns the process exit code (0 success, 1 error).
pub fn dispatch(
    plugin: &dyn Plugin,
    env: Env,
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> u8 {
    let Some(command) = env.get_nonempty("CNI_COMMAND") else {
        let _ = writeln!(
            stderr,
            "ferro-cni {} plugin {}\nCNI protocol versions supported: {}",
            plugin.name(),
            env!("CARGO_PKG_VERSION"),
            version::supported_strings(plugin.versions()).join(", ")
        );
        return 0;
    };
    // Read stdin before judging the command: a runtime writing the config must never see
    // EPIPE because we answered early. A configuration list rarely exceeds a few KiB: one
    // buffer of that size takes it in one read (and the read that sees its end), where an
    // empty one grows through five.
    let mut input = Vec::with_capacity(STDIN_CAPACITY);
    let read = stdin.read_to_end(&mut input);
    let command = match command.parse::<Command>() {
        Ok(c) => c,
        Err(e) => return reply_error(stdout, version::LATEST.as_str(), &e),
    };
    if command == Command::Version {
        return reply_version(plugin, &input, stdout);
    }
    if let Err(e) = read {
        return reply_error(
            stdout,
            version::LATEST.as_str(),
            &CniError::io(format!("reading stdin: {e}")),
        );
    }
    // The version string for error replies, as soon as we can tell it.
    let parsed: Result<Value, _> = serde_json::from_slice(&input);
    let reply_version_str = parsed
        .as_ref()
        .ok()
        .and_then(|v| v.get("cniVersion"))
        .and_then(Value::as_str)
        .filter(|s| s.parse::<Version>().is_ok())
        .unwrap_or(version::LATEST.as_str())
        .to_string();

    match prepare(plugin, command, env, input, parsed) {
        Err(e) => reply_error(stdout, &reply_version_str, &e),
        Ok(req) => {
            let outcome = catch_unwind(AssertUnwindSafe(|| run_verb(plugin, &req)));
            let outcome = outcome.unwrap_or_else(|panic| {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                Err(CniError::internal(format!("internal error: {what}")))
            });
            match outcome {
                Ok(None) => 0,
                Ok(Some(v)) => match write_json(stdout, &v) {
                    Ok(()) => 0,
                    Err(e) => {
                        log::error!("writing result: {e}");
                        1
                    }
                },
                Err(e) => {
                    log::debug!("{} failed: {e}", req.cmd.command);
                    reply_error(stdout, &reply_version_str, &e)
                }
            }
        }
    }
}

impl Request {
    /// Builds the request of one invocation of `plugin` from the verb, the environment and
    /// stdin, with every check [`dispatch`] makes before calling the plugin (environment,
    /// JSON, `cniVersion` and the verb rules, shared keys, `prevResult`, `CNI_ARGS`): what a
    /// plugin's configuration parser sees, for tests and fuzzing without a process.
    pub fn parse(
        plugin: &dyn Plugin,
        command: Command,
        env: Env,
        stdin: Vec<u8>,
    ) -> Result<Request, CniError> {
        let parsed = serde_json::from_slice(&stdin);
        prepare(plugin, command, env, stdin, parsed)
    }
}

fn prepare(
    plugin: &dyn Plugin,
    command: Command,
    env: Env,
    input: Vec<u8>,
    parsed: Result<Value, serde_json::Error>,
) -> Result<Request, CniError> {
    let cmd = CmdArgs::from_env(command, &env)?;
    let value =
        parsed.map_err(|e| CniError::decode(format!("invalid network configuration JSON: {e}")))?;
    if !value.is_object() {
        return Err(CniError::decode(
            "network configuration must be a JSON object",
        ));
    }
    let version_str = match value.get("cniVersion") {
        None | Some(Value::Null) => "0.1.0",
        Some(Value::String(s)) => s.as_str(),
        Some(other) => {
            return Err(CniError::decode(format!(
                "cniVersion: expected a string, got {other}"
            )))
        }
    };
    let version = version_str
        .parse::<Version>()
        .ok()
        .filter(|v| plugin.versions().contains(v))
        .ok_or_else(|| {
            // libcni's words, and its details with Go's %q of a list: ["0.1.0" "0.2.0"]
            let supported: Vec<String> = version::supported_strings(plugin.versions())
                .iter()
                .map(|v| format!("{v:?}"))
                .collect();
            CniError::incompatible_version("incompatible CNI versions").with_details(format!(
                "config is {version_str:?}, plugin supports [{}]",
                supported.join(" ")
            ))
        })?;
    if !version.allows(command) {
        return Err(CniError::verb_not_in_version(command, version));
    }
    let conf = NetConf::from_value(&value)?;
    let prev_result = match value.get("prevResult") {
        None | Some(Value::Null) => None,
        Some(v) => match CniResult::from_value(v) {
            Ok(r) => Some(r),
            // DEL is best effort: clean up without the hint rather than refuse to clean up.
            Err(e) if command == Command::Del => {
                log::warn!("ignoring an unreadable prevResult on DEL: {e}");
                None
            }
            Err(e) => return Err(e.context("prevResult")),
        },
    };
    if let Some(known) = plugin.cni_args() {
        cmd.args.check_known(known)?;
    }
    Ok(Request {
        cmd,
        version,
        conf,
        prev_result,
        stdin: input,
        env,
    })
}

fn run_verb(plugin: &dyn Plugin, req: &Request) -> Result<Option<Value>, CniError> {
    log::debug!(
        "{} container={} ifname={} netns={:?}",
        req.cmd.command,
        req.cmd.container_id,
        req.cmd.ifname,
        req.cmd.netns
    );
    match req.cmd.command {
        Command::Add => plugin.add(req)?.to_value(req.version).map(Some),
        Command::Del => plugin.del(req).map(|()| None),
        Command::Check => plugin.check(req).map(|()| None),
        Command::Gc => plugin.gc(req).map(|()| None),
        Command::Status => plugin.status(req).map(|()| None),
        Command::Version => unreachable!("VERSION is answered before a request is built"),
    }
}

fn reply_version(plugin: &dyn Plugin, input: &[u8], stdout: &mut dyn Write) -> u8 {
    // libcni sends {"cniVersion": "<its current>"}; echo it back (spec), else our newest.
    let asked = serde_json::from_slice::<Value>(input)
        .ok()
        .and_then(|v| {
            v.get("cniVersion")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| version::LATEST.as_str().to_string());
    let reply = serde_json::json!({
        "cniVersion": asked,
        "supportedVersions": version::supported_strings(plugin.versions()),
    });
    match write_json(stdout, &reply) {
        Ok(()) => 0,
        Err(_) => 1,
    }
}

fn reply_error(stdout: &mut dyn Write, version: &str, e: &CniError) -> u8 {
    if let Some(note) = &e.note {
        log::warn!("{}: {note}", e.msg);
    }
    let _ = write_json(stdout, &e.to_json(version));
    1
}

fn write_json(out: &mut dyn Write, v: &Value) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, v)?;
    out.write_all(b"\n")?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::IpConfig;
    use serde_json::json;
    use std::cell::RefCell;

    /// A plugin that records the request and answers with a fixed result.
    #[derive(Default)]
    struct Probe {
        seen: RefCell<Vec<Command>>,
        fail_with: Option<CniError>,
        panic: bool,
    }

    impl Plugin for Probe {
        fn name(&self) -> &'static str {
            "probe"
        }
        fn cni_args(&self) -> Option<&'static [&'static str]> {
            Some(&["IP"])
        }
        fn add(&self, req: &Request) -> Result<CniResult, CniError> {
            self.seen.borrow_mut().push(req.cmd.command);
            if self.panic {
                panic!("boom");
            }
            if let Some(e) = &self.fail_with {
                return Err(e.clone());
            }
            Ok(CniResult {
                ips: vec![IpConfig {
                    address: "10.0.0.2/24".parse().unwrap(),
                    gateway: Some("10.0.0.1".parse().unwrap()),
                    interface: None,
                }],
                ..CniResult::default()
            })
        }
        fn del(&self, req: &Request) -> Result<(), CniError> {
            self.seen.borrow_mut().push(req.cmd.command);
            Ok(())
        }
        fn check(&self, req: &Request) -> Result<(), CniError> {
            self.seen.borrow_mut().push(req.cmd.command);
            Ok(())
        }
        fn gc(&self, req: &Request) -> Result<(), CniError> {
            self.seen.borrow_mut().push(req.cmd.command);
            Ok(())
        }
    }

    fn env_for(cmd: &str) -> Vec<(&'static str, String)> {
        vec![
            ("CNI_COMMAND", cmd.to_string()),
            ("CNI_CONTAINERID", "ctr1".into()),
            ("CNI_NETNS", "/run/netns/x".into()),
            ("CNI_IFNAME", "eth0".into()),
            ("CNI_PATH", "/opt/cni/bin".into()),
        ]
    }

    fn call(p: &Probe, env: Vec<(&'static str, String)>, stdin: &str) -> (u8, String, String) {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let code = dispatch(
            p,
            Env::from_pairs(env),
            &mut stdin.as_bytes(),
            &mut out,
            &mut err,
        );
        (
            code,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    fn error_code(out: &str) -> u64 {
        let v: Value = serde_json::from_str(out).expect("stdout is one JSON document");
        v["code"].as_u64().expect("error has a code")
    }

    const CONF: &str = r#"{"cniVersion":"1.0.0","name":"net","type":"probe"}"#;

    #[test]
    fn version_echoes_input_and_lists_versions() {
        let p = Probe::default();
        for (stdin, want) in [
            (r#"{"cniVersion":"1.1.0"}"#, "1.1.0"),
            ("", "1.1.0"),
            (r#"{"cniVersion":"0.4.0"}"#, "0.4.0"),
        ] {
            let mut env = env_for("VERSION");
            env.push(("CNI_NETNS", "dummy".into()));
            let (code, out, _) = call(&p, env, stdin);
            assert_eq!(code, 0);
            let v: Value = serde_json::from_str(&out).unwrap();
            assert_eq!(v["cniVersion"], want);
            assert_eq!(
                v["supportedVersions"],
                json!(["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
            );
        }
    }

    #[test]
    fn unknown_command_is_code_4() {
        let (code, out, _) = call(&Probe::default(), env_for("FROB"), CONF);
        assert_eq!((code, error_code(&out)), (1, 4));
        assert!(out.contains("FROB"));
    }

    #[test]
    fn missing_command_prints_about_to_stderr_only() {
        let (code, out, err) = call(&Probe::default(), vec![], "");
        assert_eq!(code, 0);
        assert!(out.is_empty());
        assert!(err.contains("CNI protocol versions supported"));
    }

    #[test]
    fn missing_env_names_the_variable() {
        let env: Vec<_> = env_for("ADD")
            .into_iter()
            .filter(|(k, _)| *k != "CNI_IFNAME")
            .collect();
        let (code, out, _) = call(&Probe::default(), env, CONF);
        assert_eq!((code, error_code(&out)), (1, 4));
        assert!(out.contains("CNI_IFNAME"));
    }

    #[test]
    fn bad_json_bad_name_bad_ids() {
        let p = Probe::default();
        let (_, out, _) = call(&p, env_for("ADD"), "{not json");
        assert_eq!(error_code(&out), 6);
        let (_, out, _) = call(&p, env_for("ADD"), r#"{"cniVersion":"1.0.0"}"#);
        assert_eq!(error_code(&out), 7);
        assert!(out.contains("missing network name"));
        let mut env = env_for("ADD");
        env.push(("CNI_CONTAINERID", "a b".into()));
        let (_, out, _) = call(&p, env, CONF);
        assert_eq!(error_code(&out), 4);
        let mut env = env_for("ADD");
        env.push(("CNI_IFNAME", "eth0:1".into()));
        let (_, out, _) = call(&p, env, CONF);
        assert_eq!(error_code(&out), 4);
        let mut env = env_for("ADD");
        env.push(("CNI_CONTAINERID", "".into()));
        let (_, out, _) = call(&p, env, CONF);
        assert_eq!(error_code(&out), 4);
        assert!(
            p.seen.borrow().is_empty(),
            "no verb runs after a validation error"
        );
    }

    #[test]
    fn version_rules() {
        let p = Probe::default();
        let (_, out, _) = call(&p, env_for("ADD"), r#"{"cniVersion":"9.9.9","name":"n"}"#);
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["code"], 1);
        // libcni's words: Go tools compare `msg; details` as one text
        assert_eq!(v["msg"], "incompatible CNI versions");
        assert_eq!(
            v["details"],
            r#"config is "9.9.9", plugin supports ["0.1.0" "0.2.0" "0.3.0" "0.3.1" "0.4.0" "1.0.0" "1.1.0"]"#
        );
        for (verb, version) in [
            ("CHECK", "0.3.1"),
            ("CHECK", "0.1.0"),
            ("GC", "1.0.0"),
            ("STATUS", "1.0.0"),
        ] {
            let conf = format!(r#"{{"cniVersion":"{version}","name":"n"}}"#);
            let (code, out, _) = call(&p, env_for(verb), &conf);
            let v: Value = serde_json::from_str(&out).unwrap();
            assert_eq!((code, &v["code"]), (1, &json!(1)), "{verb} {version}");
            assert_eq!(v["msg"], format!("config version does not allow {verb}"));
            assert!(v.get("details").is_none(), "{v}");
        }
        assert!(p.seen.borrow().is_empty(), "the plugin was never called");
        let (code, out, _) = call(&p, env_for("GC"), r#"{"cniVersion":"1.1.0","name":"n"}"#);
        assert_eq!((code, out.as_str()), (0, ""));
        let (code, out, _) = call(&p, env_for("CHECK"), r#"{"cniVersion":"0.4.0","name":"n"}"#);
        assert_eq!(
            (code, out.as_str()),
            (0, ""),
            "CHECK prints nothing on success"
        );
    }

    #[test]
    fn error_json_carries_the_request_version() {
        let p = Probe {
            fail_with: Some(CniError::invalid_config("ipam.subnet: bad")),
            ..Probe::default()
        };
        let (code, out, _) = call(&p, env_for("ADD"), r#"{"cniVersion":"0.4.0","name":"n"}"#);
        assert_eq!(code, 1);
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            v,
            json!({"cniVersion":"0.4.0","code":7,"msg":"ipam.subnet: bad"})
        );
    }

    #[test]
    fn add_answers_in_the_requested_version() {
        let p = Probe::default();
        for ver in ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"] {
            let conf = format!(r#"{{"cniVersion":"{ver}","name":"n"}}"#);
            let (code, out, _) = call(&p, env_for("ADD"), &conf);
            assert_eq!(code, 0);
            let v: Value = serde_json::from_str(&out).unwrap();
            assert_eq!(v["cniVersion"], ver);
            assert_eq!(v["ips"][0].get("version").is_some(), ver.starts_with("0."));
        }
        let (_, out, _) = call(&p, env_for("ADD"), r#"{"name":"n"}"#);
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            v["cniVersion"], "0.1.0",
            "no cniVersion means 0.1.0, as in libcni"
        );
        assert_eq!(v["ip4"]["ip"], "10.0.0.2/24");
    }

    #[test]
    fn reserved_and_vendor_keys_are_tolerated() {
        let conf = r#"{"cniVersion":"1.1.0","name":"n","type":"probe","capabilities":{"portMappings":true},
            "args":{"cni":{"labels":[]}},"runtimeConfig":{"whatever":1},"cni.dev/foo":1,"vendor":{"x":1}}"#;
        let (code, _, _) = call(&Probe::default(), env_for("ADD"), conf);
        assert_eq!(code, 0);
    }

    #[test]
    fn cni_args_rules() {
        let p = Probe::default();
        let mut env = env_for("ADD");
        env.push(("CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p;K8S_POD_INFRA_CONTAINER_ID=x;K8S_POD_UID=u".into()));
        assert_eq!(call(&p, env, CONF).0, 0);
        let mut env = env_for("ADD");
        env.push(("CNI_ARGS", "K8S_POD_NAME=p".into()));
        let (_, out, _) = call(&p, env, CONF);
        assert_eq!(error_code(&out), 4);
        assert!(out.contains("K8S_POD_NAME"));
    }

    #[test]
    fn bad_prev_result_is_code_6_naming_prev_result() {
        let conf =
            r#"{"cniVersion":"1.0.0","name":"n","prevResult":{"ips":[{"address":"bogus"}]}}"#;
        let (_, out, _) = call(&Probe::default(), env_for("ADD"), conf);
        assert_eq!(error_code(&out), 6);
        assert!(out.contains("prevResult"), "{out}");
    }

    #[test]
    fn del_survives_an_unreadable_prev_result() {
        let conf =
            r#"{"cniVersion":"1.0.0","name":"n","prevResult":{"ips":[{"address":"bogus"}]}}"#;
        let p = Probe::default();
        let (code, out, _) = call(&p, env_for("DEL"), conf);
        assert_eq!((code, out.as_str()), (0, ""));
        assert_eq!(*p.seen.borrow(), vec![Command::Del]);
    }

    #[test]
    fn a_panic_becomes_an_error_object() {
        let p = Probe {
            panic: true,
            ..Probe::default()
        };
        let (code, out, _) = call(&p, env_for("ADD"), CONF);
        assert_eq!(code, 1);
        assert_eq!(error_code(&out), 100);
        assert!(out.contains("boom"));
    }

    #[test]
    fn stdout_is_exactly_one_line_of_json() {
        let (_, out, _) = call(&Probe::default(), env_for("ADD"), CONF);
        assert_eq!(out.matches('\n').count(), 1);
        assert!(out.ends_with('\n'));
    }
}
