//! The libcni algorithms over a [`NetworkList`]: ADD, CHECK, DEL, GC and STATUS, with the
//! result cache.
//!
//! | verb   | order   | on error | `prevResult` | cache |
//! |--------|---------|----------|--------------|-------|
//! | ADD    | list    | stop; then DEL the whole list in reverse (cnictl only, unless `--no-cleanup`) | previous plugin's result | written after success |
//! | CHECK  | list    | stop     | cached result in the list's version | read (needs ≥ 0.4.0; `disableCheck`: no call) |
//! | DEL    | reverse | stop     | cached result in the list's version, only for ≥ 0.4.0 | removed after success; an unreadable file is removed first |
//! | GC     | list    | go on, report all | none | DEL every stale cached attachment of the network, then GC (≥ 1.1.0) with the valid ones; `disableGC`: nothing |
//! | STATUS | list    | stop     | none | none (≥ 1.1.0, else nothing to do) |
//!
//! Notes go to the injected `log` writer (stderr): plugin stderr on success, skipped steps,
//! cleanup failures.

use std::io::Write;
use std::path::Path;

use ferro_spec::{Attachment, CniError, CniResult, Command, Version};
use serde_json::{Map, Value};

use crate::cache::{self, Cache, CacheEntry, Key};
use crate::conflist::{NetworkList, PluginConf};
use crate::error::Error;
use crate::exec::{plugin_error, CniVars, Exec};
use crate::identity::validate_attachment;
use crate::request;

/// The runtime's side of one attachment (libcni `RuntimeConf`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuntimeConf {
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_NETNS`.
    pub netns: String,
    /// `CNI_IFNAME`.
    pub ifname: String,
    /// `CNI_ARGS` pairs.
    pub args: Vec<(String, String)>,
    /// Capability arguments (`CAP_ARGS`), filtered per plugin into `runtimeConfig`.
    pub cap_args: Map<String, Value>,
}

impl RuntimeConf {
    fn key<'a>(&'a self, list: &'a NetworkList) -> Key<'a> {
        Key {
            network: &list.name,
            container_id: &self.container_id,
            ifname: &self.ifname,
        }
    }

    fn args_string(&self) -> String {
        self.args
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(";")
    }
}

/// Which cached attachments GC keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Validity {
    /// Exactly these (the operator's `--valid` list); sent to the plugins as given.
    Explicit(Vec<Attachment>),
    /// An attachment is valid while the netns recorded in its cache entry exists. Entries
    /// without a recorded netns (written by libcni 1.1.x, e.g. cnitool 1.1.2) cannot be judged
    /// and are kept.
    NetnsAlive,
}

/// What GC did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Stale attachments that were deleted (DEL succeeded).
    pub deleted: Vec<Attachment>,
    /// The valid set sent to the plugins.
    pub valid: Vec<Attachment>,
    /// Whether the GC verb was sent (list version ≥ 1.1.0).
    pub gc_sent: bool,
    /// Cached attachments kept because their liveness is unknown (no netns recorded).
    pub unknown: Vec<Attachment>,
}

/// Splits the network's cached attachments into valid and stale (pure).
pub fn partition_cached(
    cached: &[CacheEntry],
    validity: &Validity,
    netns_exists: &dyn Fn(&str) -> bool,
) -> (Vec<Attachment>, Vec<CacheEntry>, Vec<Attachment>) {
    let att = |e: &CacheEntry| Attachment {
        container_id: e.container_id.clone(),
        ifname: e.if_name.clone(),
    };
    let mut valid = Vec::new();
    let mut stale = Vec::new();
    let mut unknown = Vec::new();
    match validity {
        Validity::Explicit(list) => {
            for e in cached {
                if !list.contains(&att(e)) {
                    stale.push(e.clone());
                }
            }
            for a in list {
                if !valid.contains(a) {
                    valid.push(a.clone());
                }
            }
        }
        Validity::NetnsAlive => {
            for e in cached {
                if e.netns.is_empty() {
                    unknown.push(att(e));
                    valid.push(att(e));
                } else if netns_exists(&e.netns) {
                    valid.push(att(e));
                } else {
                    stale.push(e.clone());
                }
            }
        }
    }
    (valid, stale, unknown)
}

/// Runs lists of plugins through an [`Exec`], with a result cache.
pub struct Runtime<'a> {
    exec: &'a dyn Exec,
    cache: Cache,
    cni_path: String,
    log: &'a mut dyn Write,
}

impl std::fmt::Debug for Runtime<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("cache", &self.cache)
            .field("cni_path", &self.cni_path)
            .finish_non_exhaustive()
    }
}

/// The parsed, fixed-up result of one ADD (libcni `fixupResultVersion` + `create.Create`):
/// a JSON object whose `cniVersion` (inserted when missing) is a known version and whose
/// layout parses.
pub fn parse_add_result(stdout: &[u8], list_version: &str) -> Result<Value, CniError> {
    let mut v: Value = serde_json::from_slice(stdout).map_err(|e| {
        CniError::decode(format!(
            "failed to unmarshal raw result {:?}: {e}",
            String::from_utf8_lossy(stdout)
        ))
    })?;
    let obj = v
        .as_object_mut()
        .ok_or_else(|| CniError::decode("result is not a JSON object"))?;
    let has_version = obj
        .get("cniVersion")
        .and_then(Value::as_str)
        .is_some_and(|s| !s.is_empty());
    if !has_version {
        obj.insert("cniVersion".into(), Value::from(list_version));
    }
    let ver = obj
        .get("cniVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    ver.parse::<Version>().map_err(|_| {
        CniError::incompatible_version(format!("unsupported CNI result version {ver:?}"))
    })?;
    CniResult::from_value(&v)?;
    Ok(v)
}

impl<'a> Runtime<'a> {
    /// A runtime over `exec`, caching under `cache_dir`, passing `cni_path` to plugins.
    pub fn new(
        exec: &'a dyn Exec,
        cache_dir: &Path,
        cni_path: &str,
        log: &'a mut dyn Write,
    ) -> Self {
        Runtime {
            exec,
            cache: Cache::new(cache_dir),
            cni_path: cni_path.to_string(),
            log,
        }
    }

    fn note(&mut self, msg: impl std::fmt::Display) {
        let _ = writeln!(self.log, "cnictl: {msg}");
    }

    fn vars(&self, command: Command, rt: Option<&RuntimeConf>) -> CniVars {
        let mut v = CniVars {
            command: command.as_str().to_string(),
            path: self.cni_path.clone(),
            ..Default::default()
        };
        if let Some(rt) = rt {
            v.container_id = rt.container_id.clone();
            v.netns = rt.netns.clone();
            v.args = rt.args_string();
            v.ifname = rt.ifname.clone();
        }
        v
    }

    /// Runs one plugin; returns its stdout on success.
    fn invoke(
        &mut self,
        plugin: &PluginConf,
        request: &Value,
        vars: &CniVars,
    ) -> Result<Vec<u8>, Error> {
        let tag = |e: CniError| Error::plugin(&plugin.plugin_type, e);
        let bin = self.exec.find(&plugin.plugin_type).map_err(tag)?;
        let out = self
            .exec
            .run(&bin, &request::encode(request), vars)
            .map_err(tag)?;
        let stderr_used = !out.success && out.stdout.iter().all(u8::is_ascii_whitespace);
        if !out.stderr.is_empty() && !stderr_used {
            let _ = self.log.write_all(&out.stderr);
        }
        if out.success {
            Ok(out.stdout)
        } else {
            Err(tag(plugin_error(&out)))
        }
    }

    /// ADD every plugin in order; cache and return the final result. When a plugin fails and
    /// `cleanup` is set, DEL runs over the whole list in reverse before the ADD error is
    /// returned, so nothing is left half-attached.
    pub fn add(
        &mut self,
        list: &NetworkList,
        rt: &RuntimeConf,
        cleanup: bool,
    ) -> Result<Value, Error> {
        list.version()?;
        validate_attachment(&list.name, &rt.container_id, &rt.ifname)?;
        let vars = self.vars(Command::Add, Some(rt));
        let mut prev: Option<Value> = None;
        let mut failure = None;
        for plugin in &list.plugins {
            let req = request::attach_request(
                plugin,
                &list.name,
                &list.cni_version,
                prev.as_ref(),
                &rt.cap_args,
            );
            let step = self.invoke(plugin, &req, &vars).and_then(|out| {
                parse_add_result(&out, &list.cni_version)
                    .map_err(|e| Error::plugin(&plugin.plugin_type, e))
            });
            match step {
                Ok(v) => prev = Some(v),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        let outcome = match (failure, prev) {
            (Some(e), _) => Err(e),
            (None, None) => Err(Error::cni(CniError::invalid_config(
                "network list has no plugins",
            ))),
            (None, Some(result)) => {
                let entry = CacheEntry {
                    container_id: rt.container_id.clone(),
                    config: list.bytes.clone(),
                    if_name: rt.ifname.clone(),
                    network_name: list.name.clone(),
                    netns: rt.netns.clone(),
                    cni_args: rt.args.clone(),
                    capability_args: rt.cap_args.clone(),
                    result: result.as_object().cloned(),
                };
                match self.cache.write(&entry) {
                    Ok(_) => Ok(result),
                    Err(e) => Err(Error::cni(e.context(format_args!(
                        "failed to set network {:?} cached result",
                        list.name
                    )))),
                }
            }
        };
        if outcome.is_err() && cleanup {
            self.cleanup(list, rt);
        }
        outcome
    }

    /// DEL of every plugin in reverse after a failed ADD: no `prevResult`, keeps going on
    /// errors (reported as notes), removes the cache entry when every DEL succeeded.
    fn cleanup(&mut self, list: &NetworkList, rt: &RuntimeConf) {
        self.note(format_args!(
            "add failed: running DEL on all {} plugin(s) of {:?} in reverse order (--no-cleanup disables this)",
            list.plugins.len(),
            list.name
        ));
        let vars = self.vars(Command::Del, Some(rt));
        let mut ok = true;
        for plugin in list.plugins.iter().rev() {
            let req =
                request::attach_request(plugin, &list.name, &list.cni_version, None, &rt.cap_args);
            if let Err(e) = self.invoke(plugin, &req, &vars) {
                ok = false;
                for line in e.lines("add: cleanup DEL") {
                    let _ = writeln!(self.log, "{line}");
                }
            }
        }
        if ok {
            let _ = self.cache.remove(rt.key(list));
        }
    }

    /// The cached result of the attachment in the list's version; `None` without a cache file.
    pub fn cached_result(
        &self,
        list: &NetworkList,
        rt: &RuntimeConf,
        version: Version,
    ) -> Result<Option<Value>, CniError> {
        let Some(bytes) = self.cache.read(rt.key(list))? else {
            return Ok(None);
        };
        let raw = cache::result_of(&bytes)?;
        cache::convert_result(&raw, version).map(Some)
    }

    /// CHECK every plugin in order against the cached result.
    pub fn check(&mut self, list: &NetworkList, rt: &RuntimeConf) -> Result<(), Error> {
        let version = list.version()?;
        if !version.allows_check() {
            return Err(Error::cni(CniError::incompatible_version(format!(
                "configuration version {:?} does not support the CHECK command",
                list.cni_version
            ))));
        }
        if list.disable_check {
            self.note(format_args!(
                "check: network {:?} sets disableCheck: nothing to do",
                list.name
            ));
            return Ok(());
        }
        validate_attachment(&list.name, &rt.container_id, &rt.ifname)?;
        let prev = self.cached_result(list, rt, version).map_err(|e| {
            Error::cni(e.context(format_args!(
                "failed to get network {:?} cached result",
                list.name
            )))
        })?;
        if prev.is_none() {
            self.note(format_args!(
                "check: no cached result for {}: CHECK runs without prevResult",
                self.cache.path(rt.key(list)).display()
            ));
        }
        let vars = self.vars(Command::Check, Some(rt));
        for plugin in &list.plugins {
            let req = request::attach_request(
                plugin,
                &list.name,
                &list.cni_version,
                prev.as_ref(),
                &rt.cap_args,
            );
            self.invoke(plugin, &req, &vars)?;
        }
        Ok(())
    }

    /// DEL every plugin in reverse order, then remove the cache entry.
    pub fn del(&mut self, list: &NetworkList, rt: &RuntimeConf) -> Result<(), Error> {
        let version = list.version()?;
        validate_attachment(&list.name, &rt.container_id, &rt.ifname)?;
        let mut prev = None;
        if version >= Version::V0_4_0 {
            match self.cached_result(list, rt, version) {
                Ok(p) => prev = p,
                Err(e) => {
                    let path = self.cache.path(rt.key(list));
                    self.note(format_args!(
                        "del: ignoring unusable cache file {}: {e}",
                        path.display()
                    ));
                    self.cache.remove(rt.key(list))?;
                }
            }
        }
        let vars = self.vars(Command::Del, Some(rt));
        for plugin in list.plugins.iter().rev() {
            let req = request::attach_request(
                plugin,
                &list.name,
                &list.cni_version,
                prev.as_ref(),
                &rt.cap_args,
            );
            self.invoke(plugin, &req, &vars)?;
        }
        self.cache.remove(rt.key(list))?;
        Ok(())
    }

    /// GC: DEL every cached attachment of the network that is not valid, then (≥ 1.1.0) GC
    /// every plugin with the valid set, continuing past errors and returning them all.
    pub fn gc(&mut self, list: &NetworkList, validity: &Validity) -> Result<GcReport, Error> {
        let mut report = GcReport::default();
        if list.disable_gc {
            self.note(format_args!(
                "gc: network {:?} sets disableGC: nothing to do",
                list.name
            ));
            return Ok(report);
        }
        let version = list.version()?;
        let cached: Vec<CacheEntry> = self
            .cache
            .list()?
            .into_iter()
            .filter(|e| e.network_name == list.name)
            .collect();
        let exists = |p: &str| Path::new(p).exists();
        let (valid, stale, unknown) = partition_cached(&cached, validity, &exists);
        for a in &unknown {
            self.note(format_args!(
                "gc: cached attachment {}/{} records no netns (written by an older libcni): kept as valid",
                a.container_id, a.ifname
            ));
        }
        let mut errors = Vec::new();
        for entry in stale {
            let rt = RuntimeConf {
                container_id: entry.container_id.clone(),
                netns: entry.netns.clone(),
                ifname: entry.if_name.clone(),
                args: entry.cni_args.clone(),
                cap_args: entry.capability_args.clone(),
            };
            match self.del(list, &rt) {
                Ok(()) => report.deleted.push(Attachment {
                    container_id: rt.container_id,
                    ifname: rt.ifname,
                }),
                Err(e) => errors.push(e.context(format_args!(
                    "failed to delete stale attachment {} {}",
                    rt.container_id, rt.ifname
                ))),
            }
        }
        if version.allows_gc_and_status() {
            let vars = self.vars(Command::Gc, None);
            for plugin in &list.plugins {
                let req = request::gc_request(plugin, &list.name, &list.cni_version, &valid);
                if let Err(e) = self.invoke(plugin, &req, &vars) {
                    errors.push(e.context("failed to GC plugin"));
                }
            }
            report.gc_sent = true;
        } else {
            self.note(format_args!(
                "gc: network {:?} uses cniVersion {:?} (< 1.1.0): stale attachments deleted, GC verb not sent",
                list.name, list.cni_version
            ));
        }
        report.valid = valid;
        report.unknown = unknown;
        if errors.is_empty() {
            Ok(report)
        } else {
            Err(Error::Many(errors))
        }
    }

    /// STATUS every plugin in order, stopping at the first error. Returns false (and calls
    /// nothing) below 1.1.0, where STATUS does not exist.
    pub fn status(&mut self, list: &NetworkList) -> Result<bool, Error> {
        let version = list.version()?;
        if !version.allows_gc_and_status() {
            self.note(format_args!(
                "status: network {:?} uses cniVersion {:?} (< 1.1.0): STATUS is not defined, nothing to ask",
                list.name, list.cni_version
            ));
            return Ok(false);
        }
        let vars = self.vars(Command::Status, None);
        for plugin in &list.plugins {
            let req = request::status_request(plugin, &list.name, &list.cni_version);
            self.invoke(plugin, &req, &vars)?;
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conflist::parse_list;
    use crate::exec::Outcome;
    use serde_json::json;
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::path::PathBuf;

    /// A recording fake: answers per (type, verb), records every call.
    #[derive(Default)]
    struct Fake {
        answers: HashMap<(String, String), Outcome>,
        calls: RefCell<Vec<(String, CniVars, Value)>>,
    }

    impl Fake {
        fn answer(&mut self, ty: &str, verb: &str, success: bool, stdout: &str) {
            self.answers.insert(
                (ty.into(), verb.into()),
                Outcome {
                    success,
                    status: "exit status: 1".into(),
                    stdout: stdout.into(),
                    stderr: Vec::new(),
                },
            );
        }
        fn calls(&self) -> Vec<String> {
            self.calls
                .borrow()
                .iter()
                .map(|(t, v, _)| format!("{} {t}", v.command))
                .collect()
        }
        fn stdin(&self, i: usize) -> Value {
            self.calls.borrow()[i].2.clone()
        }
    }

    impl Exec for Fake {
        fn find(&self, plugin_type: &str) -> Result<PathBuf, CniError> {
            Ok(PathBuf::from(plugin_type))
        }
        fn run(&self, bin: &Path, stdin: &[u8], vars: &CniVars) -> Result<Outcome, CniError> {
            let ty = bin.to_string_lossy().into_owned();
            self.calls.borrow_mut().push((
                ty.clone(),
                vars.clone(),
                serde_json::from_slice(stdin).unwrap(),
            ));
            Ok(self
                .answers
                .get(&(ty.clone(), vars.command.clone()))
                .cloned()
                .unwrap_or(Outcome {
                    success: true,
                    stdout: format!(
                        r#"{{"cniVersion":"1.0.0","ips":[{{"address":"10.0.0.{}/24"}}]}}"#,
                        ty.len()
                    )
                    .into_bytes(),
                    ..Default::default()
                }))
        }
    }

    fn list(version: &str, types: &[&str]) -> NetworkList {
        let plugins: Vec<Value> = types.iter().map(|t| json!({"type": t})).collect();
        parse_list(
            json!({"cniVersion": version, "name": "net", "plugins": plugins})
                .to_string()
                .as_bytes(),
        )
        .unwrap()
    }

    fn rt() -> RuntimeConf {
        RuntimeConf {
            container_id: "c1".into(),
            netns: "/run/netns/c1".into(),
            ifname: "eth0".into(),
            args: vec![("K".into(), "V".into())],
            cap_args: Map::new(),
        }
    }

    #[test]
    fn add_chains_prev_results_and_caches_the_last() {
        let d = tempfile::tempdir().unwrap();
        let fake = Fake::default();
        let mut log = Vec::new();
        let mut r = Runtime::new(&fake, d.path(), "/bin", &mut log);
        let l = list("1.0.0", &["a", "bb", "ccc"]);
        let res = r.add(&l, &rt(), true).unwrap();
        assert_eq!(res["ips"][0]["address"], "10.0.0.3/24");
        assert_eq!(fake.calls(), ["ADD a", "ADD bb", "ADD ccc"]);
        assert!(fake.stdin(0).get("prevResult").is_none());
        assert_eq!(
            fake.stdin(1)["prevResult"]["ips"][0]["address"],
            "10.0.0.1/24"
        );
        assert_eq!(
            fake.stdin(2)["prevResult"]["ips"][0]["address"],
            "10.0.0.2/24"
        );
        let v = &fake.calls.borrow()[0].1;
        assert_eq!(
            v,
            &CniVars {
                command: "ADD".into(),
                container_id: "c1".into(),
                netns: "/run/netns/c1".into(),
                args: "K=V".into(),
                ifname: "eth0".into(),
                path: "/bin".into(),
            }
        );
        let cached =
            CacheEntry::from_bytes(&std::fs::read(d.path().join("results/net-c1-eth0")).unwrap())
                .unwrap();
        assert_eq!(cached.netns, "/run/netns/c1");
        assert_eq!(Value::Object(cached.result.unwrap()), res);
    }

    #[test]
    fn a_result_without_version_gets_the_list_version() {
        let v = parse_add_result(br#"{"ips":[{"address":"10.0.0.2/24"}]}"#, "1.1.0").unwrap();
        assert_eq!(v["cniVersion"], "1.1.0");
        assert_eq!(parse_add_result(b"", "1.0.0").unwrap_err().code.number(), 6);
        assert_eq!(
            parse_add_result(br#"{"cniVersion":"7.0.0"}"#, "1.0.0")
                .unwrap_err()
                .code
                .number(),
            1
        );
        assert_eq!(
            parse_add_result(b"[1]", "1.0.0").unwrap_err().code.number(),
            6
        );
    }

    #[test]
    fn failed_add_cleans_up_in_reverse_unless_disabled() {
        let d = tempfile::tempdir().unwrap();
        let mut fake = Fake::default();
        fake.answer("bb", "ADD", false, r#"{"code":11,"msg":"later"}"#);
        let l = list("1.0.0", &["a", "bb", "ccc"]);
        let mut log = Vec::new();
        let e = Runtime::new(&fake, d.path(), "/bin", &mut log)
            .add(&l, &rt(), true)
            .unwrap_err();
        assert_eq!(e.lines("add"), ["cnictl: add bb: later (code 11)"]);
        assert_eq!(
            fake.calls(),
            ["ADD a", "ADD bb", "DEL ccc", "DEL bb", "DEL a"]
        );
        assert!(fake.stdin(2).get("prevResult").is_none());
        assert!(!d.path().join("results/net-c1-eth0").exists());

        let fake2 = Fake {
            answers: fake.answers.clone(),
            ..Default::default()
        };
        let mut log = Vec::new();
        Runtime::new(&fake2, d.path(), "/bin", &mut log)
            .add(&l, &rt(), false)
            .unwrap_err();
        assert_eq!(fake2.calls(), ["ADD a", "ADD bb"]);
    }

    #[test]
    fn del_prev_result_depends_on_version() {
        for (version, expect_prev) in [
            ("0.3.1", false),
            ("0.4.0", true),
            ("1.0.0", true),
            ("1.1.0", true),
        ] {
            let d = tempfile::tempdir().unwrap();
            let fake = Fake::default();
            let l = list(version, &["a", "bb"]);
            let mut log = Vec::new();
            let mut r = Runtime::new(&fake, d.path(), "/bin", &mut log);
            r.add(&l, &rt(), true).unwrap();
            r.del(&l, &rt()).unwrap();
            assert_eq!(
                fake.calls(),
                ["ADD a", "ADD bb", "DEL bb", "DEL a"],
                "{version}"
            );
            for i in [2, 3] {
                let stdin = fake.stdin(i);
                assert_eq!(
                    stdin.get("prevResult").is_some(),
                    expect_prev,
                    "{version}: {stdin}"
                );
                if expect_prev {
                    // The cached 1.0.0 result, converted to the list's version.
                    assert_eq!(stdin["prevResult"]["cniVersion"], version);
                    assert_eq!(stdin["prevResult"]["ips"][0]["address"], "10.0.0.2/24");
                }
            }
            assert!(
                !d.path().join("results/net-c1-eth0").exists(),
                "{version}: cache removed"
            );
        }
    }

    #[test]
    fn del_with_a_broken_cache_removes_it_and_goes_on() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("results")).unwrap();
        std::fs::write(d.path().join("results/net-c1-eth0"), "{broken").unwrap();
        let fake = Fake::default();
        let mut log = Vec::new();
        Runtime::new(&fake, d.path(), "/bin", &mut log)
            .del(&list("1.0.0", &["a"]), &rt())
            .unwrap();
        assert!(fake.stdin(0).get("prevResult").is_none());
        assert!(!d.path().join("results/net-c1-eth0").exists());
        assert!(String::from_utf8(log)
            .unwrap()
            .contains("ignoring unusable cache file"));
    }

    #[test]
    fn check_rules() {
        let d = tempfile::tempdir().unwrap();
        let fake = Fake::default();
        let mut log = Vec::new();
        let mut r = Runtime::new(&fake, d.path(), "/bin", &mut log);
        let e = r.check(&list("0.3.1", &["a"]), &rt()).unwrap_err();
        assert_eq!(e.code(), Some(1));
        let mut l = list("1.0.0", &["a", "bb"]);
        l.disable_check = true;
        r.check(&l, &rt()).unwrap();
        assert!(fake.calls().is_empty());
        l.disable_check = false;
        r.add(&l, &rt(), true).unwrap();
        r.check(&l, &rt()).unwrap();
        assert_eq!(fake.calls(), ["ADD a", "ADD bb", "CHECK a", "CHECK bb"]);
        assert_eq!(
            fake.stdin(2)["prevResult"]["ips"][0]["address"],
            "10.0.0.2/24"
        );
    }

    #[test]
    fn validation_happens_before_any_plugin_runs() {
        let d = tempfile::tempdir().unwrap();
        let fake = Fake::default();
        let mut log = Vec::new();
        let mut r = Runtime::new(&fake, d.path(), "/bin", &mut log);
        let l = list("1.0.0", &["a"]);
        let mut bad = rt();
        bad.container_id.clear();
        assert_eq!(r.add(&l, &bad, true).unwrap_err().code(), Some(3));
        bad.container_id = "bad id".into();
        assert_eq!(r.del(&l, &bad).unwrap_err().code(), Some(4));
        let mut bad = rt();
        bad.ifname = "x/y".into();
        assert_eq!(r.check(&l, &bad).unwrap_err().code(), Some(4));
        assert_eq!(
            r.add(&list("9.9.9", &["a"]), &rt(), true)
                .unwrap_err()
                .code(),
            Some(1)
        );
        assert!(fake.calls().is_empty());
    }

    fn entry(cid: &str, netns: &str) -> CacheEntry {
        CacheEntry {
            container_id: cid.into(),
            if_name: "eth0".into(),
            network_name: "net".into(),
            netns: netns.into(),
            ..Default::default()
        }
    }

    #[test]
    fn partition_by_netns_liveness_or_explicit_list() {
        let cached = [
            entry("alive", "/ns/alive"),
            entry("gone", "/ns/gone"),
            entry("old", ""),
        ];
        let exists = |p: &str| p == "/ns/alive";
        let (valid, stale, unknown) = partition_cached(&cached, &Validity::NetnsAlive, &exists);
        let ids = |v: &[Attachment]| v.iter().map(|a| a.container_id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&valid), ["alive", "old"]);
        assert_eq!(
            stale
                .iter()
                .map(|e| e.container_id.as_str())
                .collect::<Vec<_>>(),
            ["gone"]
        );
        assert_eq!(ids(&unknown), ["old"]);

        let keep = Attachment {
            container_id: "gone".into(),
            ifname: "eth0".into(),
        };
        let extra = Attachment {
            container_id: "elsewhere".into(),
            ifname: "net1".into(),
        };
        let (valid, stale, _) = partition_cached(
            &cached,
            &Validity::Explicit(vec![keep.clone(), extra.clone(), keep.clone()]),
            &exists,
        );
        assert_eq!(valid, [keep, extra]);
        assert_eq!(
            stale
                .iter()
                .map(|e| e.container_id.as_str())
                .collect::<Vec<_>>(),
            ["alive", "old"]
        );
    }

    #[test]
    fn gc_deletes_stale_then_gcs_every_plugin_and_collects_errors() {
        let d = tempfile::tempdir().unwrap();
        let cache = Cache::new(d.path());
        let alive = d.path().join("alive-ns");
        std::fs::write(&alive, "").unwrap();
        for (cid, ns) in [("a1", alive.to_str().unwrap()), ("s1", "/nonexistent/ns")] {
            let mut e = entry(cid, ns);
            e.config = b"{}".to_vec();
            e.cni_args = vec![("X".into(), cid.into())];
            e.result = Some(
                json!({"cniVersion": "1.1.0", "ips": [{"address": "10.0.0.9/24"}]})
                    .as_object()
                    .cloned()
                    .unwrap(),
            );
            cache.write(&e).unwrap();
        }
        let mut other = entry("o1", "/nonexistent/ns");
        other.network_name = "other".into();
        cache.write(&other).unwrap();

        let mut fake = Fake::default();
        fake.answer("a", "GC", false, r#"{"code":100,"msg":"a broke"}"#);
        let l = list("1.1.0", &["a", "bb"]);
        let mut log = Vec::new();
        let e = Runtime::new(&fake, d.path(), "/bin", &mut log)
            .gc(&l, &Validity::NetnsAlive)
            .unwrap_err();
        assert_eq!(
            fake.calls(),
            ["DEL bb", "DEL a", "GC a", "GC bb"],
            "GC goes on after a's error"
        );
        assert_eq!(
            e.lines("gc"),
            ["cnictl: gc a: failed to GC plugin: a broke (code 100)"]
        );
        // The stale DEL used the cached netns, args and result.
        let del = &fake.calls.borrow()[0];
        assert_eq!(
            (
                del.1.container_id.as_str(),
                del.1.netns.as_str(),
                del.1.args.as_str()
            ),
            ("s1", "/nonexistent/ns", "X=s1")
        );
        assert_eq!(del.2["prevResult"]["ips"][0]["address"], "10.0.0.9/24");
        let gc = fake.stdin(3);
        let valid = json!([{"containerID": "a1", "ifname": "eth0"}]);
        assert_eq!(gc["cni.dev/valid-attachments"], valid);
        assert_eq!(gc["cni.dev/attachments"], valid);
        let gc_vars = &fake.calls.borrow()[3].1;
        assert_eq!(
            (
                gc_vars.container_id.as_str(),
                gc_vars.ifname.as_str(),
                gc_vars.netns.as_str()
            ),
            ("", "", "")
        );
        assert!(!d.path().join("results/net-s1-eth0").exists());
        assert!(d.path().join("results/net-a1-eth0").exists());
        assert!(
            d.path().join("results/other-o1-eth0").exists(),
            "other networks are untouched"
        );
    }

    #[test]
    fn gc_below_1_1_0_only_deletes_and_disable_gc_does_nothing() {
        let d = tempfile::tempdir().unwrap();
        let cache = Cache::new(d.path());
        cache.write(&entry("s1", "/nonexistent/ns")).unwrap();
        let fake = Fake::default();
        let mut l = list("1.0.0", &["a"]);
        l.disable_gc = true;
        let mut log = Vec::new();
        let mut r = Runtime::new(&fake, d.path(), "/bin", &mut log);
        assert_eq!(
            r.gc(&l, &Validity::NetnsAlive).unwrap(),
            GcReport::default()
        );
        assert!(fake.calls().is_empty());
        l.disable_gc = false;
        let rep = r.gc(&l, &Validity::NetnsAlive).unwrap();
        assert!(!rep.gc_sent);
        assert_eq!(fake.calls(), ["DEL a"]);
    }

    #[test]
    fn status_stops_at_first_error_and_is_a_no_op_below_1_1_0() {
        let d = tempfile::tempdir().unwrap();
        let mut fake = Fake::default();
        fake.answer(
            "bb",
            "STATUS",
            false,
            r#"{"code":50,"msg":"pool exhausted"}"#,
        );
        let mut log = Vec::new();
        let mut r = Runtime::new(&fake, d.path(), "/bin", &mut log);
        assert!(!r.status(&list("1.0.0", &["a"])).unwrap());
        assert!(fake.calls().is_empty());
        let e = r.status(&list("1.1.0", &["a", "bb", "ccc"])).unwrap_err();
        assert_eq!(e.code(), Some(50));
        assert_eq!(fake.calls(), ["STATUS a", "STATUS bb"]);
        assert_eq!(
            fake.stdin(0),
            json!({"type": "a", "name": "net", "cniVersion": "1.1.0"})
        );
    }
}
