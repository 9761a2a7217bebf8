//! Loading network configuration lists exactly as libcni does (`libcni/conf.go`).
//!
//! - [`load_network`] (libcni `LoadNetworkConf`): every `*.conflist` in the directory, sorted
//!   lexically, is loaded in turn and the first whose `name` matches wins. A file that fails to
//!   load stops the search with its error, as in libcni, even when it is not the one asked for.
//!   Failing that, the deprecated single-plugin `*.conf`/`*.json` files are searched the same
//!   way and the match is upconverted into a one-plugin list ([`upconvert`]).
//! - [`load_list_file`] (libcni `NetworkConfFromFile`): parses one list and, unless
//!   `loadOnlyInlinedPlugins` is true, appends the plugin objects found in the sibling folder
//!   `<dir of the file>/<network name>/*.conf` (sorted by file name). A list that ends up with
//!   no plugin is an error.
//! - [`parse_list`] (libcni `NetworkConfFromBytes`): `name` (string, required), `cniVersion`,
//!   `cniVersions` ([`select_version`]), `disableCheck`/`disableGC`/`loadOnlyInlinedPlugins` as
//!   a bool or the strings `"true"`/`"false"` in any case, `plugins`.
//!
//! The raw bytes of the file are kept: libcni stores them (base64) in the result cache.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ferro_spec::version::{semver_key, LATEST};
use ferro_spec::{CniError, Version};
use serde_json::{Map, Value};

use crate::error::io_error;
use crate::gojson;

/// One plugin object of a list.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginConf {
    /// `type`: the binary to run.
    pub plugin_type: String,
    /// `capabilities`: capability name to enabled.
    pub capabilities: BTreeMap<String, bool>,
    /// `ipam.type`, when set and non-empty.
    pub ipam_type: Option<String>,
    /// The object as written (what the request is built from).
    pub conf: Map<String, Value>,
}

/// A network configuration list, ready to run.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkList {
    /// `name`.
    pub name: String,
    /// The selected version string (see [`select_version`]); empty when the list has none.
    pub cni_version: String,
    /// `disableCheck`.
    pub disable_check: bool,
    /// `disableGC`.
    pub disable_gc: bool,
    /// `loadOnlyInlinedPlugins`.
    pub load_only_inlined_plugins: bool,
    /// Inlined plugins, then those of the sibling folder.
    pub plugins: Vec<PluginConf>,
    /// The bytes libcni caches as `config`: the file as read, or the upconverted list.
    pub bytes: Vec<u8>,
    /// Where the list came from, for messages.
    pub source: Option<PathBuf>,
}

impl NetworkList {
    /// The selected version as one this suite implements. An empty version is treated as
    /// 0.1.0, as Go's `ParseVersion` does; anything unknown is code 1.
    pub fn version(&self) -> Result<Version, CniError> {
        if self.cni_version.is_empty() {
            return Ok(Version::V0_1_0);
        }
        self.cni_version.parse().map_err(|_| {
            CniError::incompatible_version(format!(
                "network {:?}: unsupported cniVersion {:?}",
                self.name, self.cni_version
            ))
            .with_details(format!(
                "cnictl speaks {}",
                ferro_spec::version::supported_strings(ferro_spec::version::ALL).join(", ")
            ))
        })
    }
}

fn cfg_err(msg: impl Into<String>) -> CniError {
    CniError::invalid_config(msg)
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The version a list runs at (libcni, spec 1.1.0): when `cniVersions` is present, the highest
/// of `cniVersions` ∪ {`cniVersion`} that is not above 1.1.0 (an unparsable entry is an
/// error); without `cniVersions`, `cniVersion` as written.
pub fn select_version(cni_version: &str, cni_versions: Option<&Value>) -> Result<String, CniError> {
    let Some(raw) = cni_versions else {
        return Ok(cni_version.to_string());
    };
    let current = semver_key(LATEST.as_str());
    let Value::Array(items) = raw else {
        return Err(cfg_err(format!(
            "error parsing configuration list: invalid type for cniVersions: {}",
            type_name(raw)
        )));
    };
    let mut candidates: Vec<((u64, u64, u64), String)> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let Value::String(v) = item else {
            return Err(cfg_err(format!(
                "error parsing configuration list: invalid type for cniVersions index {i}: {}",
                type_name(item)
            )));
        };
        let key = semver_key(v).ok_or_else(|| {
            cfg_err(format!(
                "error parsing configuration list: invalid cniVersions entry {v:?} at index {i}"
            ))
        })?;
        if Some(key) <= current {
            candidates.push((key, v.clone()));
        }
    }
    if !cni_version.is_empty() {
        let key = semver_key(cni_version).ok_or_else(|| {
            cfg_err(format!(
                "error parsing configuration list: invalid cniVersion {cni_version:?}"
            ))
        })?;
        if Some(key) <= current {
            candidates.push((key, cni_version.to_string()));
        }
    }
    Ok(candidates
        .into_iter()
        .max_by(|a, b| a.0.cmp(&b.0))
        .map_or_else(|| cni_version.to_string(), |(_, v)| v))
}

/// libcni's `readBool`: absent is false; a bool; or "true"/"false" in any case.
fn read_bool(obj: &Map<String, Value>, key: &str) -> Result<bool, CniError> {
    match obj.get(key) {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) => match s.to_lowercase().as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            other => Err(cfg_err(format!(
                "error parsing configuration list: invalid value {other:?} for {key}"
            ))),
        },
        Some(other) => Err(cfg_err(format!(
            "error parsing configuration list: invalid type {} for {key}",
            type_name(other)
        ))),
    }
}

fn optional_string(obj: &Map<String, Value>, key: &str, what: &str) -> Result<String, CniError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(CniError::decode(format!(
            "{what}: {key}: expected a string, got {}",
            type_name(other)
        ))),
    }
}

/// One plugin object (libcni `NetworkPluginConfFromBytes`): a JSON object with a non-empty
/// string `type`; `capabilities`, when present, maps names to booleans; `ipam.type`, when
/// present, is a string. Every other key is kept as written.
pub fn parse_plugin(v: &Value) -> Result<PluginConf, CniError> {
    let what = "error parsing configuration";
    let conf = match v {
        Value::Object(m) => m.clone(),
        Value::Null => Map::new(),
        other => {
            return Err(CniError::decode(format!(
                "{what}: expected an object, got {}",
                type_name(other)
            )))
        }
    };
    let plugin_type = optional_string(&conf, "type", what)?;
    if plugin_type.is_empty() {
        return Err(cfg_err(format!("{what}: missing 'type'")));
    }
    // Fields Go decodes into typed struct members: a wrong type fails the whole object.
    optional_string(&conf, "name", what)?;
    optional_string(&conf, "cniVersion", what)?;
    let mut capabilities = BTreeMap::new();
    match conf.get("capabilities") {
        None | Some(Value::Null) => {}
        Some(Value::Object(caps)) => {
            for (k, v) in caps {
                match v {
                    Value::Bool(b) => {
                        capabilities.insert(k.clone(), *b);
                    }
                    other => {
                        return Err(CniError::decode(format!(
                            "{what}: capabilities.{k}: expected a bool, got {}",
                            type_name(other)
                        )))
                    }
                }
            }
        }
        Some(other) => {
            return Err(CniError::decode(format!(
                "{what}: capabilities: expected an object, got {}",
                type_name(other)
            )))
        }
    }
    let ipam_type = match conf.get("ipam") {
        None | Some(Value::Null) => None,
        Some(Value::Object(ipam)) => Some(optional_string(ipam, "type", "error parsing ipam")?),
        Some(other) => {
            return Err(CniError::decode(format!(
                "{what}: ipam: expected an object, got {}",
                type_name(other)
            )))
        }
    }
    .filter(|t| !t.is_empty());
    Ok(PluginConf {
        plugin_type,
        capabilities,
        ipam_type,
        conf,
    })
}

/// A list from its bytes (libcni `NetworkConfFromBytes`). Does not look at the sibling
/// folder; a list without `plugins` is returned with no plugins (unless
/// `loadOnlyInlinedPlugins` is true, which makes it an error).
pub fn parse_list(bytes: &[u8]) -> Result<NetworkList, CniError> {
    let what = "error parsing configuration list";
    let raw: Value =
        serde_json::from_slice(bytes).map_err(|e| CniError::decode(format!("{what}: {e}")))?;
    let obj = match raw {
        Value::Object(m) => m,
        Value::Null => Map::new(),
        other => {
            return Err(CniError::decode(format!(
                "{what}: expected an object, got {}",
                type_name(&other)
            )))
        }
    };
    let name = match obj.get("name") {
        None => return Err(cfg_err(format!("{what}: no name"))),
        Some(Value::String(s)) => s.clone(),
        Some(other) => {
            return Err(cfg_err(format!(
                "{what}: invalid name type {}",
                type_name(other)
            )))
        }
    };
    let cni_version = match obj.get("cniVersion") {
        None => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => {
            return Err(cfg_err(format!(
                "{what}: invalid cniVersion type {}",
                type_name(other)
            )))
        }
    };
    let cni_version = select_version(&cni_version, obj.get("cniVersions"))?;
    let disable_check = read_bool(&obj, "disableCheck")?;
    let disable_gc = read_bool(&obj, "disableGC")?;
    let load_only_inlined_plugins = read_bool(&obj, "loadOnlyInlinedPlugins")?;
    let mut list = NetworkList {
        name,
        cni_version,
        disable_check,
        disable_gc,
        load_only_inlined_plugins,
        plugins: Vec::new(),
        bytes: bytes.to_vec(),
        source: None,
    };
    let plugins = match obj.get("plugins") {
        None if load_only_inlined_plugins => {
            return Err(cfg_err(format!(
                "{what}: `loadOnlyInlinedPlugins` is true, and no 'plugins' key"
            )))
        }
        None => return Ok(list),
        Some(Value::Array(p)) => p,
        Some(other) => {
            return Err(cfg_err(format!(
                "{what}: invalid 'plugins' type {}",
                type_name(other)
            )))
        }
    };
    if plugins.is_empty() {
        return Err(cfg_err(format!("{what}: no plugins in list")));
    }
    for (i, p) in plugins.iter().enumerate() {
        let plugin = parse_plugin(p)
            .map_err(|e| e.context(format_args!("failed to parse plugin config {i}")))?;
        list.plugins.push(plugin);
    }
    Ok(list)
}

/// Files directly in `dir` whose extension is one of `exts`, sorted by path (libcni
/// `ConfFiles` + `sort.Strings`). A missing directory has no files.
pub fn conf_files(dir: &Path, exts: &[&str]) -> Result<Vec<PathBuf>, CniError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error(format_args!("reading {}", dir.display()), &e)),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io_error(format_args!("reading {}", dir.display()), &e))?;
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if is_dir {
            continue;
        }
        let path = entry.path();
        let ext = path.extension().and_then(|e| e.to_str());
        if ext.is_some_and(|e| exts.contains(&e)) {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn read(path: &Path) -> Result<Vec<u8>, CniError> {
    std::fs::read(path).map_err(|e| io_error(format_args!("error reading {}", path.display()), &e))
}

/// The plugin objects of the sibling folder `<dir>/<name>/*.conf`, in file-name order.
pub fn sibling_plugins(dir: &Path, name: &str) -> Result<Vec<PluginConf>, CniError> {
    let folder = dir.join(name);
    let mut plugins = Vec::new();
    for file in conf_files(&folder, &["conf"]).map_err(|e| {
        e.context(format_args!(
            "failed to read plugin config files in {}",
            folder.display()
        ))
    })? {
        let bytes = read(&file)?;
        let v: Value = serde_json::from_slice(&bytes).map_err(|e| {
            CniError::decode(format!(
                "error parsing configuration {}: {e}",
                file.display()
            ))
        })?;
        plugins.push(parse_plugin(&v).map_err(|e| e.context(file.display()))?);
    }
    Ok(plugins)
}

/// One list file plus its sibling folder (libcni `NetworkConfFromFile`).
pub fn load_list_file(path: &Path) -> Result<NetworkList, CniError> {
    let bytes = read(path)?;
    let mut list = parse_list(&bytes).map_err(|e| e.context(path.display()))?;
    list.source = Some(path.to_path_buf());
    if !list.load_only_inlined_plugins {
        let dir = path.parent().unwrap_or(Path::new("."));
        list.plugins.extend(sibling_plugins(dir, &list.name)?);
    }
    if list.plugins.is_empty() {
        return Err(cfg_err(format!(
            "{}: no plugin configs found",
            path.display()
        )));
    }
    Ok(list)
}

/// A single-plugin configuration file (`*.conf`/`*.json`, deprecated), parsed as a plugin.
fn load_single(path: &Path) -> Result<(Value, PluginConf), CniError> {
    let bytes = read(path)?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|e| {
        CniError::decode(format!(
            "error parsing configuration {}: {e}",
            path.display()
        ))
    })?;
    let p = parse_plugin(&v).map_err(|e| e.context(path.display()))?;
    Ok((v, p))
}

/// Upconverts a single-plugin configuration into a one-plugin list (libcni
/// `ConfListFromConf`): the list bytes are Go's encoding of
/// `{"cniVersion": <its cniVersion>, "name": <its name>, "plugins": [<the object>]}`.
pub fn upconvert(single: &Value) -> Result<NetworkList, CniError> {
    let obj = single.as_object().cloned().unwrap_or_default();
    let mut list = Map::new();
    let name = obj.get("name").and_then(Value::as_str).unwrap_or_default();
    let version = obj
        .get("cniVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    list.insert("name".into(), Value::from(name));
    list.insert("cniVersion".into(), Value::from(version));
    list.insert("plugins".into(), Value::Array(vec![Value::Object(obj)]));
    parse_list(&gojson::to_vec(&Value::Object(list)))
}

/// The list called `name` in `dir` (libcni `LoadNetworkConf`).
pub fn load_network(dir: &Path, name: &str) -> Result<NetworkList, CniError> {
    let lists = conf_files(dir, &["conflist"])?;
    for file in &lists {
        let list = load_list_file(file)?;
        if list.name == name {
            return Ok(list);
        }
    }
    let singles = conf_files(dir, &["conf", "json"])?;
    let not_found = || {
        cfg_err(format!(
            "no net configuration with name {name:?} in {}",
            dir.display()
        ))
    };
    if singles.is_empty() {
        return Err(if lists.is_empty() {
            cfg_err(format!("no net configurations found in {}", dir.display()))
        } else {
            not_found()
        });
    }
    for file in &singles {
        let (raw, plugin) = load_single(file)?;
        let conf_name = plugin.conf.get("name").and_then(Value::as_str);
        if conf_name == Some(name) {
            let mut list = upconvert(&raw)?;
            list.source = Some(file.clone());
            return Ok(list);
        }
    }
    Err(not_found())
}

/// A file given on the command line: a list (with its sibling folder), or a single-plugin
/// configuration (an object with `type` and no `plugins`), upconverted.
pub fn load_any_file(path: &Path) -> Result<NetworkList, CniError> {
    let bytes = read(path)?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|e| {
        CniError::decode(format!(
            "error parsing configuration {}: {e}",
            path.display()
        ))
    })?;
    let single = v.get("type").is_some() && v.get("plugins").is_none();
    if single {
        parse_plugin(&v).map_err(|e| e.context(path.display()))?;
        let mut list = upconvert(&v)?;
        list.source = Some(path.to_path_buf());
        Ok(list)
    } else {
        load_list_file(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::fs;

    fn write(dir: &Path, name: &str, text: &str) {
        let p = dir.join(name);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).unwrap();
        }
        fs::write(p, text).unwrap();
    }

    fn list_json(name: &str, ty: &str) -> String {
        format!(r#"{{"cniVersion":"1.0.0","name":"{name}","plugins":[{{"type":"{ty}"}}]}}"#)
    }

    #[test]
    fn selects_highest_version_not_above_1_1_0() {
        let vs = json!(["0.3.1", "1.0.0", "1.2.0", "9.0.0"]);
        assert_eq!(select_version("0.4.0", Some(&vs)).unwrap(), "1.0.0");
        let vs = json!(["1.1.0", "0.4.0"]);
        assert_eq!(select_version("1.0.0", Some(&vs)).unwrap(), "1.1.0");
        // cniVersion takes part in the choice.
        assert_eq!(
            select_version("1.1.0", Some(&json!(["0.4.0"]))).unwrap(),
            "1.1.0"
        );
        // Everything too new: cniVersion stays as written (libcni), and is rejected later.
        assert_eq!(
            select_version("2.0.0", Some(&json!(["3.0.0"]))).unwrap(),
            "2.0.0"
        );
        // Without cniVersions, cniVersion is used as written, even when too new.
        assert_eq!(select_version("1.2.0", None).unwrap(), "1.2.0");
        assert_eq!(select_version("", Some(&json!([]))).unwrap(), "");
        assert_eq!(
            select_version("", Some(&json!(["0.4.0"]))).unwrap(),
            "0.4.0"
        );
        // Bad entries are errors.
        assert!(select_version("1.0.0", Some(&json!(["x.y"]))).is_err());
        assert!(select_version("1.0.0", Some(&json!([1]))).is_err());
        assert!(select_version("1.0.0", Some(&json!("1.1.0"))).is_err());
    }

    #[test]
    fn version_rejects_unknown_and_treats_empty_as_0_1_0() {
        let mut l = parse_list(list_json("n", "t").as_bytes()).unwrap();
        assert_eq!(l.version().unwrap(), Version::V1_0_0);
        l.cni_version = "1.2.0".into();
        assert_eq!(l.version().unwrap_err().code.number(), 1);
        l.cni_version = String::new();
        assert_eq!(l.version().unwrap(), Version::V0_1_0);
    }

    #[test]
    fn parses_list_keys_like_libcni() {
        let l = parse_list(
            br#"{"name":"n","cniVersion":"1.1.0","disableCheck":"TRUE","disableGC":true,
                 "plugins":[{"type":"a","capabilities":{"portMappings":true,"mac":false},"ipam":{"type":"host-local"}},{"type":"b","ipam":{}}]}"#,
        )
        .unwrap();
        assert!(l.disable_check && l.disable_gc && !l.load_only_inlined_plugins);
        assert_eq!(l.plugins.len(), 2);
        assert_eq!(l.plugins[0].capabilities.get("portMappings"), Some(&true));
        assert_eq!(l.plugins[0].capabilities.get("mac"), Some(&false));
        assert_eq!(l.plugins[0].ipam_type.as_deref(), Some("host-local"));
        assert_eq!(l.plugins[1].ipam_type, None);
        assert!(l.bytes.starts_with(br#"{"name":"n""#), "raw bytes are kept");

        for (bad, code) in [
            (r#"{"cniVersion":"1.0.0","plugins":[{"type":"a"}]}"#, 7),
            (r#"{"name":1,"plugins":[{"type":"a"}]}"#, 7),
            (
                r#"{"name":"n","disableCheck":"yes","plugins":[{"type":"a"}]}"#,
                7,
            ),
            (
                r#"{"name":"n","disableCheck":1,"plugins":[{"type":"a"}]}"#,
                7,
            ),
            (r#"{"name":"n","plugins":[]}"#, 7),
            (r#"{"name":"n","plugins":{}}"#, 7),
            (r#"{"name":"n","plugins":[{"name":"x"}]}"#, 7),
            (
                r#"{"name":"n","plugins":[{"type":"a","capabilities":{"x":"yes"}}]}"#,
                6,
            ),
            (r#"{"name":"n","loadOnlyInlinedPlugins":true}"#, 7),
            ("{not json", 6),
        ] {
            let e = parse_list(bad.as_bytes()).unwrap_err();
            assert_eq!(e.code.number(), code, "{bad}: {e}");
        }
        // Without plugins (and without the flag) the list parses; the file loader then looks
        // at the sibling folder.
        assert!(parse_list(br#"{"name":"n"}"#).unwrap().plugins.is_empty());
    }

    #[test]
    fn first_matching_conflist_in_lexical_order_wins() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "20-b.conflist", &list_json("net", "second"));
        write(d.path(), "10-a.conflist", &list_json("other", "x"));
        write(d.path(), "15-a.conflist", &list_json("net", "first"));
        // A single-plugin file with the same name loses against any list.
        write(
            d.path(),
            "00-net.conf",
            r#"{"cniVersion":"1.0.0","name":"net","type":"single"}"#,
        );
        // Directories and other extensions are ignored.
        fs::create_dir_all(d.path().join("dir.conflist")).unwrap();
        write(d.path(), "05.conflist.bak", &list_json("net", "bak"));
        let l = load_network(d.path(), "net").unwrap();
        assert_eq!(l.plugins[0].plugin_type, "first");
        assert_eq!(
            l.source.as_deref(),
            Some(d.path().join("15-a.conflist").as_path())
        );
        assert_eq!(l.bytes, list_json("net", "first").into_bytes());

        let e = load_network(d.path(), "missing").unwrap_err();
        assert_eq!(e.code.number(), 7);
        assert!(
            e.msg.contains("no net configuration with name \"missing\""),
            "{e}"
        );
    }

    #[test]
    fn a_broken_earlier_conflist_stops_the_search_like_libcni() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "10-bad.conflist", "{");
        write(d.path(), "20-net.conflist", &list_json("net", "a"));
        assert_eq!(load_network(d.path(), "net").unwrap_err().code.number(), 6);
    }

    #[test]
    fn legacy_conf_is_upconverted_with_go_bytes() {
        // The bytes cnitool 1.1.2 cached for this file (base64 `config` of the fixture).
        let d = tempfile::tempdir().unwrap();
        let conf = include_str!("../testdata/legacy.conf");
        write(d.path(), "20-legacy.conf", conf);
        write(d.path(), "10-other.json", r#"{"name":"other","type":"x"}"#);
        let l = load_network(d.path(), "legacy").unwrap();
        assert_eq!(l.name, "legacy");
        assert_eq!(l.cni_version, "0.4.0");
        assert_eq!(l.plugins.len(), 1);
        assert_eq!(l.plugins[0].plugin_type, "fake");
        let cached: Value =
            serde_json::from_slice(include_bytes!("../testdata/cnitool-cache-legacy-conf"))
                .unwrap();
        use base64::Engine;
        let want = base64::engine::general_purpose::STANDARD
            .decode(cached["config"].as_str().unwrap())
            .unwrap();
        assert_eq!(
            String::from_utf8(l.bytes.clone()).unwrap(),
            String::from_utf8(want).unwrap()
        );
        // A single conf without a type is an error, even when it is not the one asked for.
        write(d.path(), "05-broken.conf", r#"{"name":"x"}"#);
        assert!(load_network(d.path(), "legacy").is_err());
    }

    #[test]
    fn no_files_and_lists_only_give_the_libcni_messages() {
        let d = tempfile::tempdir().unwrap();
        let e = load_network(d.path(), "net").unwrap_err();
        assert!(e.msg.contains("no net configurations found"), "{e}");
        write(d.path(), "10.conflist", &list_json("other", "a"));
        let e = load_network(d.path(), "net").unwrap_err();
        assert!(e.msg.contains("no net configuration with name"), "{e}");
        let e = load_network(&d.path().join("absent"), "net").unwrap_err();
        assert!(e.msg.contains("no net configurations found"), "{e}");
    }

    #[test]
    fn sibling_folder_plugins_are_appended_unless_only_inlined() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            "10-net.conflist",
            r#"{"cniVersion":"1.1.0","name":"net","plugins":[{"type":"inline"}]}"#,
        );
        write(d.path(), "net/20-b.conf", r#"{"type":"sib-b"}"#);
        write(
            d.path(),
            "net/10-a.conf",
            r#"{"type":"sib-a","capabilities":{"portMappings":true}}"#,
        );
        write(d.path(), "net/30-c.json", r#"{"type":"ignored"}"#);
        let l = load_network(d.path(), "net").unwrap();
        let types: Vec<&str> = l.plugins.iter().map(|p| p.plugin_type.as_str()).collect();
        assert_eq!(types, ["inline", "sib-a", "sib-b"]);
        assert_eq!(l.plugins[1].capabilities.get("portMappings"), Some(&true));

        // A list made only of sibling plugins.
        write(
            d.path(),
            "20-solo.conflist",
            r#"{"cniVersion":"1.1.0","name":"solo"}"#,
        );
        write(d.path(), "solo/1.conf", r#"{"type":"only"}"#);
        let l = load_network(d.path(), "solo").unwrap();
        assert_eq!(l.plugins.len(), 1);
        assert_eq!(l.plugins[0].plugin_type, "only");

        // loadOnlyInlinedPlugins ignores the folder.
        write(
            d.path(),
            "10-net.conflist",
            r#"{"cniVersion":"1.1.0","name":"net","loadOnlyInlinedPlugins":"true","plugins":[{"type":"inline"}]}"#,
        );
        let l = load_network(d.path(), "net").unwrap();
        assert_eq!(l.plugins.len(), 1);

        // A sibling plugin without type fails the load.
        write(d.path(), "solo/2.conf", r#"{"x":1}"#);
        assert_eq!(load_network(d.path(), "solo").unwrap_err().code.number(), 7);

        // A list with neither plugins nor a sibling folder is an error ("no plugin configs
        // found"), which stops the search for any name, as in libcni.
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            "10-empty.conflist",
            r#"{"cniVersion":"1.1.0","name":"empty"}"#,
        );
        write(d.path(), "20-net.conflist", &list_json("net", "a"));
        let e = load_network(d.path(), "net").unwrap_err();
        assert!(e.msg.contains("no plugin configs found"), "{e}");
    }

    #[test]
    fn load_any_file_accepts_lists_and_single_confs() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "a.conflist", &list_json("net", "a"));
        write(
            d.path(),
            "b.conf",
            r#"{"cniVersion":"0.4.0","name":"single","type":"b"}"#,
        );
        assert_eq!(
            load_any_file(&d.path().join("a.conflist")).unwrap().name,
            "net"
        );
        let l = load_any_file(&d.path().join("b.conf")).unwrap();
        assert_eq!((l.name.as_str(), l.plugins.len()), ("single", 1));
        assert_eq!(
            l.bytes,
            br#"{"cniVersion":"0.4.0","name":"single","plugins":[{"cniVersion":"0.4.0","name":"single","type":"b"}]}"#
        );
    }
}
