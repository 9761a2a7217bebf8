//! `cnictl validate`: libcni's `ValidateNetworkList`, extended to IPAM plugins and reported
//! line by line.
//!
//! Every plugin of the list, and every plugin's `ipam.type`, is looked up on `CNI_PATH` and
//! asked VERSION the way libcni asks (`pkg/invoke` `GetVersionInfo`): stdin
//! `{"cniVersion":"1.1.0"}`, `CNI_COMMAND=VERSION`, `CNI_NETNS`, `CNI_IFNAME` and `CNI_PATH`
//! set to `dummy`, the other two empty. The reply must carry a non-empty `cniVersion` and a
//! non-empty `supportedVersions` (a bare `0.2.0` reply means 0.1.0 and 0.2.0; a plugin that
//! answers `unknown CNI_COMMAND: VERSION` supports 0.1.0 only), and the list's version must be
//! among the supported ones, exactly.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use ferro_spec::version::LATEST;
use serde_json::Value;

use crate::conflist::NetworkList;
use crate::exec::{plugin_error, CniVars, Exec};

/// One plugin (or IPAM plugin) checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginCheck {
    /// `plugins[i]` or `plugins[i].ipam`.
    pub role: String,
    /// The plugin type.
    pub plugin_type: String,
    /// Where it was found.
    pub path: Option<PathBuf>,
    /// Its supported versions, when it answered.
    pub supported: Vec<String>,
    /// What is wrong, if anything.
    pub problem: Option<String>,
}

/// The outcome of a validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Network name.
    pub network: String,
    /// The version the list runs at.
    pub version: String,
    /// Where the list came from.
    pub source: Option<PathBuf>,
    /// Problems of the list itself (an unsupported version).
    pub list_problems: Vec<String>,
    /// One entry per plugin and IPAM plugin.
    pub checks: Vec<PluginCheck>,
}

impl Report {
    /// All problems, list first.
    pub fn problems(&self) -> Vec<String> {
        let mut all = self.list_problems.clone();
        all.extend(self.checks.iter().filter_map(|c| {
            c.problem
                .as_ref()
                .map(|p| format!("{} {}: {p}", c.role, c.plugin_type))
        }));
        all
    }

    /// The report as printed: one line per plugin, then the verdict.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let width = self
            .checks
            .iter()
            .map(|c| c.role.len() + c.plugin_type.len() + 1)
            .max()
            .unwrap_or(0);
        let path_of = |c: &PluginCheck| {
            c.path
                .as_ref()
                .map_or_else(|| "-".to_string(), |p| p.display().to_string())
        };
        let path_width = self
            .checks
            .iter()
            .map(|c| path_of(c).len())
            .max()
            .unwrap_or(0);
        for p in &self.list_problems {
            let _ = writeln!(s, "FAIL  list: {p}");
        }
        for c in &self.checks {
            let what = format!("{} {}", c.role, c.plugin_type);
            let path = path_of(c);
            let status = match &c.problem {
                None => format!("supports {}", c.supported.join(" ")),
                Some(p) => p.clone(),
            };
            let mark = if c.problem.is_none() { "ok  " } else { "FAIL" };
            let _ = writeln!(s, "{mark}  {what:width$}  {path:path_width$}  {status}");
        }
        let n = self.problems().len();
        let from = self
            .source
            .as_ref()
            .map(|p| format!(", {}", p.display()))
            .unwrap_or_default();
        let plugins = self
            .checks
            .iter()
            .filter(|c| !c.role.ends_with(".ipam"))
            .count();
        let verdict = if n == 0 {
            "valid".to_string()
        } else {
            format!("INVALID ({n} problem{})", if n == 1 { "" } else { "s" })
        };
        let _ = writeln!(
            s,
            "network {:?} (cniVersion {}, {plugins} plugin{}{from}): {verdict}",
            self.network,
            self.version,
            if plugins == 1 { "" } else { "s" }
        );
        s
    }
}

/// Decodes a VERSION reply (libcni `PluginDecoder`): the supported versions.
pub fn parse_version_reply(stdout: &[u8]) -> Result<Vec<String>, String> {
    let v: Value =
        serde_json::from_slice(stdout).map_err(|e| format!("decoding version info: {e}"))?;
    let cni_version = v
        .get("cniVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if cni_version.is_empty() {
        return Err("decoding version info: missing field cniVersion".into());
    }
    let supported: Vec<String> = match v.get("supportedVersions") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .ok_or("decoding version info: supportedVersions must hold strings")
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err("decoding version info: supportedVersions must be a list".into()),
    };
    if supported.is_empty() {
        if cni_version == "0.2.0" {
            return Ok(vec!["0.1.0".into(), "0.2.0".into()]);
        }
        return Err("decoding version info: missing field supportedVersions".into());
    }
    Ok(supported)
}

/// The environment of libcni's VERSION probe.
pub fn version_probe_vars() -> CniVars {
    CniVars {
        command: "VERSION".into(),
        netns: "dummy".into(),
        ifname: "dummy".into(),
        path: "dummy".into(),
        ..Default::default()
    }
}

/// Where a plugin was found, and its supported versions or what went wrong.
type Probe = (Option<PathBuf>, Result<Vec<String>, String>);

fn probe(exec: &dyn Exec, plugin_type: &str) -> Probe {
    let bin = match exec.find(plugin_type) {
        Ok(b) => b,
        Err(e) => return (None, Err(e.msg)),
    };
    let stdin = format!(r#"{{"cniVersion":"{}"}}"#, LATEST.as_str());
    let answer = match exec.run(&bin, stdin.as_bytes(), &version_probe_vars()) {
        Err(e) => Err(e.msg),
        Ok(out) if out.success => parse_version_reply(&out.stdout),
        Ok(out) => {
            let e = plugin_error(&out);
            if e.msg == "unknown CNI_COMMAND: VERSION" {
                Ok(vec!["0.1.0".into()])
            } else {
                Err(format!(
                    "VERSION failed: {} (code {})",
                    e.msg,
                    e.code.number()
                ))
            }
        }
    };
    (Some(bin), answer)
}

/// Validates `list` against the plugins on the executor's path.
pub fn validate(list: &NetworkList, exec: &dyn Exec) -> Report {
    let mut report = Report {
        network: list.name.clone(),
        version: list.cni_version.clone(),
        source: list.source.clone(),
        list_problems: Vec::new(),
        checks: Vec::new(),
    };
    if let Err(e) = list.version() {
        report.list_problems.push(e.to_string());
    }
    // libcni: a list without a version is checked as 0.1.0.
    let want = if list.cni_version.is_empty() {
        "0.1.0".to_string()
    } else {
        list.cni_version.clone()
    };
    let mut seen: BTreeMap<String, Probe> = BTreeMap::new();
    let mut targets = Vec::new();
    for (i, p) in list.plugins.iter().enumerate() {
        targets.push((format!("plugins[{i}]"), p.plugin_type.clone()));
        if let Some(ipam) = &p.ipam_type {
            targets.push((format!("plugins[{i}].ipam"), ipam.clone()));
        }
    }
    for (role, plugin_type) in targets {
        let (path, answer) = seen
            .entry(plugin_type.clone())
            .or_insert_with(|| probe(exec, &plugin_type))
            .clone();
        let (supported, problem) = match answer {
            Ok(s) => {
                let problem = (!s.contains(&want)).then(|| {
                    format!(
                        "does not support cniVersion {want} (supports {})",
                        s.join(" ")
                    )
                });
                (s, problem)
            }
            Err(e) => (Vec::new(), Some(e)),
        };
        report.checks.push(PluginCheck {
            role,
            plugin_type,
            path,
            supported,
            problem,
        });
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_aligns_columns_and_states_the_verdict() {
        let check = |role: &str, ty: &str, path: Option<&str>, problem: Option<&str>| PluginCheck {
            role: role.into(),
            plugin_type: ty.into(),
            path: path.map(PathBuf::from),
            supported: vec!["1.0.0".into(), "1.1.0".into()],
            problem: problem.map(str::to_string),
        };
        let mut r = Report {
            network: "n".into(),
            version: "1.1.0".into(),
            source: Some(PathBuf::from("/etc/cni/net.d/10-n.conflist")),
            list_problems: Vec::new(),
            checks: vec![
                check("plugins[0]", "bridge", Some("/opt/cni/bin/bridge"), None),
                check(
                    "plugins[0].ipam",
                    "host-local",
                    Some("/bin/host-local"),
                    None,
                ),
            ],
        };
        assert_eq!(
            r.render(),
            "ok    plugins[0] bridge           /opt/cni/bin/bridge  supports 1.0.0 1.1.0\n\
             ok    plugins[0].ipam host-local  /bin/host-local      supports 1.0.0 1.1.0\n\
             network \"n\" (cniVersion 1.1.0, 1 plugin, /etc/cni/net.d/10-n.conflist): valid\n"
        );
        r.checks
            .push(check("plugins[1]", "gone", None, Some("not found")));
        let text = r.render();
        assert!(
            text.contains("FAIL  plugins[1] gone             -                    not found\n"),
            "{text}"
        );
        assert!(
            text.ends_with("2 plugins, /etc/cni/net.d/10-n.conflist): INVALID (1 problem)\n"),
            "{text}"
        );
        assert_eq!(r.problems(), ["plugins[1] gone: not found"]);
    }

    #[test]
    fn version_replies_are_decoded_like_libcni() {
        assert_eq!(
            parse_version_reply(br#"{"cniVersion":"1.0.0","supportedVersions":["0.4.0","1.0.0"]}"#)
                .unwrap(),
            ["0.4.0", "1.0.0"]
        );
        assert_eq!(
            parse_version_reply(br#"{"cniVersion":"0.2.0"}"#).unwrap(),
            ["0.1.0", "0.2.0"]
        );
        assert!(parse_version_reply(br#"{"cniVersion":"1.0.0"}"#).is_err());
        assert!(parse_version_reply(br#"{"supportedVersions":["1.0.0"]}"#).is_err());
        assert!(parse_version_reply(b"nope").is_err());
    }

    #[test]
    fn probe_environment_matches_libcni() {
        let v = version_probe_vars();
        assert_eq!(
            v.pairs(),
            [
                ("CNI_COMMAND", "VERSION"),
                ("CNI_CONTAINERID", ""),
                ("CNI_NETNS", "dummy"),
                ("CNI_ARGS", ""),
                ("CNI_IFNAME", "dummy"),
                ("CNI_PATH", "dummy"),
            ]
        );
    }
}
