//! A private world for driving `cnictl` (and cnitool): temporary NETCONFPATH, cache and plugin
//! directories, and a fake plugin that records every call and answers what it is told.
//!
//! The fake plugin is one shell script installed under several names (the name is its CNI
//! `type`). Each call appends, under `<world>/rec/`, `NNN-<type>-<VERB>.stdin` (its stdin,
//! byte for byte) and `NNN-<type>-<VERB>.env` (its `CNI_*` and `FAKE_*` variables, sorted),
//! numbered in call order. It then prints `<world>/ctl/<type>.<VERB>.stderr` to stderr and
//! `<world>/ctl/<type>.<VERB>.stdout` to stdout, and exits with `<world>/ctl/<type>.<VERB>.rc`
//! (0 when absent). It finds the world through `FAKE_DIR`, which it only sees if cnictl passes
//! its whole environment on, as libcni does.
// Helpers of test crates: a failed setup step should panic right there.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

pub const FAKE: &str = r#"#!/bin/sh
t=${0##*/}
d="$FAKE_DIR"
n=$(cat "$d/seq" 2>/dev/null || echo 0)
n=$((n+1))
echo "$n" > "$d/seq"
p=$(printf '%03d' "$n")
cat > "$d/rec/$p-$t-$CNI_COMMAND.stdin"
env | grep -E '^(CNI_|FAKE_)' | sort > "$d/rec/$p-$t-$CNI_COMMAND.env"
c="$d/ctl/$t.$CNI_COMMAND"
if [ -f "$c.stderr" ]; then cat "$c.stderr" >&2; fi
if [ -f "$c.stdout" ]; then cat "$c.stdout"; fi
if [ -f "$c.rc" ]; then exit "$(cat "$c.rc")"; fi
exit 0
"#;

/// cnitool 1.1.2: `$CNITOOL` (set by scripts/test.sh), else where the build script puts it.
pub fn cnitool() -> String {
    std::env::var("CNITOOL").unwrap_or_else(|_| "/var/tmp/cnitool/bin/cnitool".to_string())
}

/// One recorded plugin call.
#[derive(Debug, Clone)]
pub struct Call {
    pub plugin: String,
    pub verb: String,
    pub stdin_raw: String,
    pub env: BTreeMap<String, String>,
}

impl Call {
    pub fn stdin(&self) -> Value {
        serde_json::from_str(&self.stdin_raw).unwrap_or_else(|e| {
            panic!(
                "stdin of {} {} is not JSON ({e}): {}",
                self.verb, self.plugin, self.stdin_raw
            )
        })
    }

    pub fn var(&self, k: &str) -> &str {
        self.env.get(k).unwrap_or_else(|| {
            panic!(
                "{k} not set for {} {}: {:?}",
                self.verb, self.plugin, self.env
            )
        })
    }

    pub fn label(&self) -> String {
        format!("{} {}", self.verb, self.plugin)
    }
}

/// What a cnictl run produced.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn ok(&self) -> &Self {
        assert_eq!(
            self.code, 0,
            "cnictl failed:\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }

    pub fn failed(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "wrong exit status:\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }
}

pub struct World {
    pub dir: tempfile::TempDir,
}

impl World {
    pub fn new() -> World {
        let dir = tempfile::Builder::new()
            .prefix("cnictl-test-")
            .tempdir()
            .unwrap();
        for sub in ["net.d", "bin", "cache", "rec", "ctl"] {
            fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        World { dir }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn netconf(&self) -> PathBuf {
        self.path("net.d")
    }

    pub fn bin(&self) -> PathBuf {
        self.path("bin")
    }

    pub fn cache(&self) -> PathBuf {
        self.path("cache")
    }

    /// Installs the fake plugin under each of `names`.
    pub fn fakes(&self, names: &[&str]) {
        for n in names {
            let p = self.bin().join(n);
            fs::write(&p, FAKE).unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        }
    }

    /// Writes a file under `net.d/`.
    pub fn conf(&self, rel: &str, text: &str) {
        let p = self.netconf().join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    /// What `plugin` prints (and its exit status) for `verb`.
    pub fn answer(&self, plugin: &str, verb: &str, stdout: &str, rc: i32) {
        fs::write(self.path(&format!("ctl/{plugin}.{verb}.stdout")), stdout).unwrap();
        fs::write(
            self.path(&format!("ctl/{plugin}.{verb}.rc")),
            rc.to_string(),
        )
        .unwrap();
    }

    pub fn answer_stderr(&self, plugin: &str, verb: &str, stderr: &str) {
        fs::write(self.path(&format!("ctl/{plugin}.{verb}.stderr")), stderr).unwrap();
    }

    /// A successful VERSION answer supporting `versions`.
    pub fn supports(&self, plugin: &str, versions: &[&str]) {
        let v = serde_json::json!({"cniVersion": "1.1.0", "supportedVersions": versions});
        self.answer(plugin, "VERSION", &v.to_string(), 0);
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        let mut names: Vec<String> = fs::read_dir(self.path("rec"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".stdin"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|n| {
                let stem = n.trim_end_matches(".stdin");
                let (_seq, rest) = stem.split_once('-').unwrap();
                let (plugin, verb) = rest.rsplit_once('-').unwrap();
                let env = fs::read_to_string(self.path(&format!("rec/{stem}.env")))
                    .unwrap()
                    .lines()
                    .filter_map(|l| {
                        l.split_once('=')
                            .map(|(k, v)| (k.to_string(), v.to_string()))
                    })
                    .collect();
                Call {
                    plugin: plugin.to_string(),
                    verb: verb.to_string(),
                    stdin_raw: fs::read_to_string(self.path(&format!("rec/{n}"))).unwrap(),
                    env,
                }
            })
            .collect()
    }

    pub fn labels(&self) -> Vec<String> {
        self.calls().iter().map(Call::label).collect()
    }

    /// Forgets the recorded calls.
    pub fn reset_calls(&self) {
        fs::remove_dir_all(self.path("rec")).unwrap();
        fs::create_dir_all(self.path("rec")).unwrap();
        let _ = fs::remove_file(self.path("seq"));
    }

    /// The environment cnictl and cnitool run with: only PATH and what the test sets.
    pub fn base_env(&self) -> Vec<(String, String)> {
        vec![
            ("PATH".into(), "/usr/sbin:/usr/bin:/sbin:/bin".into()),
            ("NETCONFPATH".into(), self.netconf().display().to_string()),
            ("CNI_PATH".into(), self.bin().display().to_string()),
            ("FAKE_DIR".into(), self.dir.path().display().to_string()),
            ("FAKE_MARK".into(), "inherited".into()),
        ]
    }

    /// Runs cnictl with `--cache-dir <world>/cache`, the base environment plus `env`.
    pub fn cnictl(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut full = vec![
            "--cache-dir".to_string(),
            self.cache().display().to_string(),
        ];
        full.extend(args.iter().map(|s| s.to_string()));
        self.cnictl_raw(&full, env)
    }

    /// Runs cnictl with exactly `args`.
    pub fn cnictl_raw(&self, args: &[String], env: &[(&str, &str)]) -> Run {
        let out = Command::new(env!("CARGO_BIN_EXE_cnictl"))
            .args(args)
            .env_clear()
            .envs(self.base_env())
            .envs(env.iter().copied())
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// The cache file of an attachment.
    pub fn cache_file(&self, network: &str, container_id: &str, ifname: &str) -> PathBuf {
        self.cache()
            .join(format!("results/{network}-{container_id}-{ifname}"))
    }

    pub fn cache_files(&self) -> Vec<String> {
        match fs::read_dir(self.cache().join("results")) {
            Err(_) => Vec::new(),
            Ok(rd) => {
                let mut v: Vec<String> = rd
                    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect();
                v.sort();
                v
            }
        }
    }
}

/// cnitool's container id for an absolute netns path (computed by the library under test,
/// itself checked against ids cnitool produced).
pub fn container_id(netns: &Path) -> String {
    ferro_cnictl::identity::cnitool_container_id(&netns.display().to_string())
}
