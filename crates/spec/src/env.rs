//! The process environment as a value, and the `CNI_*` variables validated per verb.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::args::CniArgs;
use crate::conf::is_valid_identifier;
use crate::error::CniError;

/// A CNI verb.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// Attach.
    Add,
    /// Detach (idempotent, best effort).
    Del,
    /// Verify an attachment (0.4.0+).
    Check,
    /// Report supported versions.
    Version,
    /// Remove stale resources (1.1.0+).
    Gc,
    /// Readiness (1.1.0+).
    Status,
}

impl Command {
    /// The `CNI_COMMAND` spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Version => "VERSION",
            Command::Gc => "GC",
            Command::Status => "STATUS",
        }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Command {
    type Err = CniError;

    fn from_str(s: &str) -> Result<Self, CniError> {
        Ok(match s {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "VERSION" => Command::Version,
            "GC" => Command::Gc,
            "STATUS" => Command::Status,
            other => {
                return Err(CniError::invalid_env(format!(
                    "unknown CNI_COMMAND: {other}"
                )))
            }
        })
    }
}

/// The environment a plugin was started with. The dispatcher reads `CNI_*` from it and
/// delegation passes it on unchanged, so tests inject it instead of touching the process's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Env {
    vars: BTreeMap<String, String>,
}

impl Env {
    /// The current process environment (non-UTF-8 variables are skipped).
    pub fn from_process() -> Self {
        Env {
            vars: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
        }
    }

    /// An environment made of the given pairs only.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Env {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// The value of `key`, if set (possibly empty).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars.get(key).map(String::as_str)
    }

    /// The value of `key` if set and non-empty.
    pub fn get_nonempty(&self, key: &str) -> Option<&str> {
        self.get(key).filter(|v| !v.is_empty())
    }

    /// Sets (or replaces) a variable.
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.vars.insert(key.into(), value.into());
    }

    /// All variables.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// The validated `CNI_*` variables of one invocation.
#[derive(Debug, Clone)]
pub struct CmdArgs {
    /// `CNI_COMMAND`.
    pub command: Command,
    /// `CNI_CONTAINERID` (empty for GC and STATUS).
    pub container_id: String,
    /// `CNI_NETNS`; `None` when unset or empty.
    pub netns: Option<PathBuf>,
    /// `CNI_IFNAME` (empty for GC and STATUS).
    pub ifname: String,
    /// `CNI_ARGS`, parsed.
    pub args: CniArgs,
    /// `CNI_PATH`, split on `:`.
    pub path: Vec<PathBuf>,
}

/// libcni's `ValidateInterfaceName`: non-empty, at most 15 bytes, not `.` or `..`, no `/`,
/// `:` or white space.
pub fn validate_ifname(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("interface name is empty".into());
    }
    if name.len() > 15 {
        return Err(format!(
            "interface name {name:?} is longer than 15 characters"
        ));
    }
    if name == "." || name == ".." {
        return Err(format!("interface name {name:?} is not allowed"));
    }
    if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace())
    {
        return Err(format!(
            "interface name {name:?} contains '/', ':' or white space"
        ));
    }
    Ok(())
}

impl CmdArgs {
    /// Reads and validates the variables `command` needs (the CNI specification's
    /// "Parameters" of the execution protocol):
    /// ADD and CHECK need `CNI_CONTAINERID`, `CNI_NETNS`, `CNI_IFNAME`; DEL needs
    /// `CNI_CONTAINERID` and `CNI_IFNAME`; GC and STATUS need none of them. `CNI_PATH` is
    /// checked where a plugin delegates. All failures are code 4 and name the variables.
    pub fn from_env(command: Command, env: &Env) -> Result<Self, CniError> {
        let required: &[&str] = match command {
            Command::Add | Command::Check => &["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"],
            Command::Del => &["CNI_CONTAINERID", "CNI_IFNAME"],
            Command::Gc | Command::Status | Command::Version => &[],
        };
        let missing: Vec<&str> = required
            .iter()
            .copied()
            .filter(|k| env.get_nonempty(k).is_none())
            .collect();
        if !missing.is_empty() {
            return Err(CniError::invalid_env(format!(
                "required env variables {missing:?} missing"
            )));
        }
        let container_id = env.get("CNI_CONTAINERID").unwrap_or_default().to_string();
        if !container_id.is_empty() && !is_valid_identifier(&container_id) {
            return Err(CniError::invalid_env(format!(
                "CNI_CONTAINERID {container_id:?} is invalid: must start with a letter or digit, followed by letters, digits, '_', '.' or '-'"
            )));
        }
        let ifname = env.get("CNI_IFNAME").unwrap_or_default().to_string();
        if required.contains(&"CNI_IFNAME") {
            validate_ifname(&ifname)
                .map_err(|e| CniError::invalid_env(format!("CNI_IFNAME: {e}")))?;
        }
        let args = CniArgs::parse(env.get("CNI_ARGS").unwrap_or_default())?;
        let path = env
            .get("CNI_PATH")
            .unwrap_or_default()
            .split(':')
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .collect();
        Ok(CmdArgs {
            command,
            container_id,
            netns: env.get_nonempty("CNI_NETNS").map(PathBuf::from),
            ifname,
            args,
            path,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn add_names_every_missing_variable() {
        let e = CmdArgs::from_env(Command::Add, &env(&[("CNI_CONTAINERID", "c")])).unwrap_err();
        assert_eq!(e.code.number(), 4);
        assert!(
            e.msg.contains("CNI_NETNS") && e.msg.contains("CNI_IFNAME"),
            "{}",
            e.msg
        );
        assert!(!e.msg.contains("CNI_CONTAINERID"));
    }

    #[test]
    fn del_does_not_need_a_netns() {
        let a = CmdArgs::from_env(
            Command::Del,
            &env(&[
                ("CNI_CONTAINERID", "c"),
                ("CNI_IFNAME", "eth0"),
                ("CNI_NETNS", ""),
            ]),
        )
        .unwrap();
        assert!(a.netns.is_none());
        assert!(a.path.is_empty());
    }

    #[test]
    fn gc_and_status_need_nothing() {
        assert!(
            CmdArgs::from_env(
                Command::Gc,
                &env(&[("CNI_PATH", "/opt/cni/bin:/usr/lib/cni")])
            )
            .unwrap()
            .path
            .len()
                == 2
        );
        assert!(CmdArgs::from_env(Command::Status, &Env::default()).is_ok());
    }

    #[test]
    fn bad_container_ids_and_ifnames_are_code_4() {
        let base = [("CNI_NETNS", "/run/netns/x"), ("CNI_IFNAME", "eth0")];
        let mut e1 = base.to_vec();
        e1.push(("CNI_CONTAINERID", "bad id"));
        let e = CmdArgs::from_env(Command::Add, &env(&e1)).unwrap_err();
        assert_eq!(e.code.number(), 4);
        assert!(e.msg.contains("CNI_CONTAINERID"));
        for bad in ["eth0:1", "a/b", "..", "0123456789abcdef", "e th"] {
            let e = CmdArgs::from_env(
                Command::Add,
                &env(&[
                    ("CNI_CONTAINERID", "c"),
                    ("CNI_NETNS", "/x"),
                    ("CNI_IFNAME", bad),
                ]),
            )
            .unwrap_err();
            assert_eq!(e.code.number(), 4, "{bad}");
            assert!(e.msg.contains("CNI_IFNAME"), "{}", e.msg);
        }
    }

    #[test]
    fn unknown_command_is_code_4() {
        let e = "FOO".parse::<Command>().unwrap_err();
        assert_eq!(
            (e.code.number(), e.msg.as_str()),
            (4, "unknown CNI_COMMAND: FOO")
        );
    }
}
