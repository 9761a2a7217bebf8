//! libcni's result cache, byte-compatible, so cnitool, containerd and cnictl find each
//! other's attachments.
//!
//! Path: `<cache dir>/results/<network>-<container id>-<ifname>` (directories created 0700,
//! files 0600). Content: Go's encoding of libcni's `cachedInfo` struct, fields in this order,
//! the last four omitted when empty:
//! `{"kind":"cniCacheV1","containerId":…,"config":<base64 of the list bytes>,"ifName":…,
//! "networkName":…,"netns":…,"cniArgs":[[k,v],…],"capabilityArgs":{…},"result":{…}}`.
//! `netns` is written by libcni 1.2 and later; 1.1.x (cnitool 1.1.2) neither writes nor needs
//! it. Maps are written with sorted keys and numbers as Go `float64`s ([`crate::gojson`]).
//!
//! Unlike libcni, cnictl writes the file atomically (a temporary file renamed over it).

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::PathBuf;

use base64::Engine;
use ferro_spec::{CniError, CniResult, Version};
use serde_json::{Map, Value};

use crate::error::io_error;
use crate::gojson;

/// `kind` of the current cache format.
pub const KIND_V1: &str = "cniCacheV1";

/// One cached attachment.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CacheEntry {
    /// `containerId`.
    pub container_id: String,
    /// `config`: the bytes of the list as loaded.
    pub config: Vec<u8>,
    /// `ifName`.
    pub if_name: String,
    /// `networkName`.
    pub network_name: String,
    /// `netns` (empty when unknown, as in files written by libcni 1.1.x).
    pub netns: String,
    /// `cniArgs`: the `CNI_ARGS` pairs of the ADD.
    pub cni_args: Vec<(String, String)>,
    /// `capabilityArgs`: the capability arguments of the ADD.
    pub capability_args: Map<String, Value>,
    /// `result`: the final result of the ADD.
    pub result: Option<Map<String, Value>>,
}

impl CacheEntry {
    /// The file content, as libcni writes it.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut s = String::from("{\"kind\":");
        s.push_str(&gojson::to_string(&Value::from(KIND_V1)));
        let mut field = |name: &str, v: &Value| {
            s.push_str(",\"");
            s.push_str(name);
            s.push_str("\":");
            s.push_str(&gojson::to_string(v));
        };
        field("containerId", &Value::from(self.container_id.as_str()));
        field(
            "config",
            &Value::from(base64::engine::general_purpose::STANDARD.encode(&self.config)),
        );
        field("ifName", &Value::from(self.if_name.as_str()));
        field("networkName", &Value::from(self.network_name.as_str()));
        if !self.netns.is_empty() {
            field("netns", &Value::from(self.netns.as_str()));
        }
        if !self.cni_args.is_empty() {
            let pairs = self
                .cni_args
                .iter()
                .map(|(k, v)| Value::Array(vec![Value::from(k.as_str()), Value::from(v.as_str())]))
                .collect();
            field("cniArgs", &Value::Array(pairs));
        }
        if !self.capability_args.is_empty() {
            field(
                "capabilityArgs",
                &Value::Object(self.capability_args.clone()),
            );
        }
        if let Some(r) = self.result.as_ref().filter(|r| !r.is_empty()) {
            field("result", &Value::Object(r.clone()));
        }
        s.push('}');
        s.into_bytes()
    }

    /// Parses a cache file of kind `cniCacheV1`. Errors (code 6) on anything else; the caller
    /// decides whether to try the legacy layout (a bare result).
    pub fn from_bytes(bytes: &[u8]) -> Result<CacheEntry, CniError> {
        let v: Value = serde_json::from_slice(bytes)
            .map_err(|e| CniError::decode(format!("invalid cache file: {e}")))?;
        let o = v
            .as_object()
            .ok_or_else(|| CniError::decode("invalid cache file: not an object"))?;
        let s = |key: &str| -> Result<String, CniError> {
            match o.get(key) {
                None | Some(Value::Null) => Ok(String::new()),
                Some(Value::String(s)) => Ok(s.clone()),
                Some(_) => Err(CniError::decode(format!(
                    "invalid cache file: {key} is not a string"
                ))),
            }
        };
        let kind = s("kind")?;
        if kind != KIND_V1 {
            return Err(CniError::decode(format!(
                "cache file has wrong kind {kind:?}"
            )));
        }
        let config = base64::engine::general_purpose::STANDARD
            .decode(s("config")?)
            .map_err(|e| CniError::decode(format!("invalid cache file: config: {e}")))?;
        let mut cni_args = Vec::new();
        match o.get("cniArgs") {
            None | Some(Value::Null) => {}
            Some(Value::Array(pairs)) => {
                for p in pairs {
                    let kv = p.as_array().map(Vec::as_slice).unwrap_or_default();
                    let get = |i: usize| kv.get(i).and_then(Value::as_str);
                    match (get(0), get(1)) {
                        (Some(k), Some(v)) => cni_args.push((k.to_string(), v.to_string())),
                        _ => {
                            return Err(CniError::decode(
                                "invalid cache file: cniArgs entries must be [key, value]",
                            ))
                        }
                    }
                }
            }
            Some(_) => return Err(CniError::decode("invalid cache file: cniArgs")),
        }
        let obj = |key: &str| -> Result<Option<Map<String, Value>>, CniError> {
            match o.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Object(m)) => Ok(Some(m.clone())),
                Some(_) => Err(CniError::decode(format!(
                    "invalid cache file: {key} is not an object"
                ))),
            }
        };
        Ok(CacheEntry {
            container_id: s("containerId")?,
            config,
            if_name: s("ifName")?,
            network_name: s("networkName")?,
            netns: s("netns")?,
            cni_args,
            capability_args: obj("capabilityArgs")?.unwrap_or_default(),
            result: obj("result")?,
        })
    }
}

/// The cached result of a file's content: the `result` of a `cniCacheV1` file, or, for the
/// legacy layout, the whole file as a bare result (libcni `getLegacyCachedResult`).
pub fn result_of(bytes: &[u8]) -> Result<Value, CniError> {
    match CacheEntry::from_bytes(bytes) {
        Ok(entry) => entry
            .result
            .map(Value::Object)
            .ok_or_else(|| CniError::decode("cache file holds no result")),
        Err(_) => {
            let v: Value = serde_json::from_slice(bytes)
                .map_err(|e| CniError::decode(format!("invalid cache file: {e}")))?;
            if v.get("cniVersion").and_then(Value::as_str).is_none() {
                return Err(CniError::decode(
                    "invalid cache file: neither cniCacheV1 nor a result",
                ));
            }
            Ok(v)
        }
    }
}

/// A cached result in the layout of `version` (libcni `GetAsVersion`). A result already in
/// that version is returned as stored.
pub fn convert_result(cached: &Value, version: Version) -> Result<Value, CniError> {
    if cached.get("cniVersion").and_then(Value::as_str) == Some(version.as_str()) {
        return Ok(cached.clone());
    }
    CniResult::from_value(cached)?
        .to_value(version)
        .map_err(|e| {
            e.context(format_args!(
                "failed to convert cached result to config version {:?}",
                version.as_str()
            ))
        })
}

/// The result cache under one directory.
#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
}

/// The identity of one attachment in the cache.
#[derive(Debug, Clone, Copy)]
pub struct Key<'a> {
    /// Network name.
    pub network: &'a str,
    /// Container id.
    pub container_id: &'a str,
    /// Interface name.
    pub ifname: &'a str,
}

impl Cache {
    /// The cache rooted at `dir` (libcni's `CacheDir`, `/var/lib/cni` by default).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Cache { dir: dir.into() }
    }

    /// `<dir>/results`.
    pub fn results_dir(&self) -> PathBuf {
        self.dir.join("results")
    }

    /// `<dir>/results/<network>-<container id>-<ifname>`.
    pub fn path(&self, key: Key<'_>) -> PathBuf {
        self.results_dir().join(format!(
            "{}-{}-{}",
            key.network, key.container_id, key.ifname
        ))
    }

    /// The file content for `key`, `None` when there is none.
    pub fn read(&self, key: Key<'_>) -> Result<Option<Vec<u8>>, CniError> {
        let p = self.path(key);
        match fs::read(&p) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error(format_args!("reading {}", p.display()), &e)),
        }
    }

    /// Writes `entry` atomically: `results` is created 0700, the file 0600.
    pub fn write(&self, entry: &CacheEntry) -> Result<PathBuf, CniError> {
        let dir = self.results_dir();
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| io_error(format_args!("creating {}", dir.display()), &e))?;
        let path = self.path(Key {
            network: &entry.network_name,
            container_id: &entry.container_id,
            ifname: &entry.if_name,
        });
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let written = (|| -> std::io::Result<()> {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&entry.to_bytes())?;
            f.sync_all()?;
            fs::rename(&tmp, &path)
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(io_error(format_args!("writing {}", path.display()), &e));
        }
        Ok(path)
    }

    /// Removes the file for `key`; a missing file is fine. Returns whether one was removed.
    pub fn remove(&self, key: Key<'_>) -> Result<bool, CniError> {
        let p = self.path(key);
        match fs::remove_file(&p) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_error(format_args!("removing {}", p.display()), &e)),
        }
    }

    /// Every readable `cniCacheV1` entry with a network and interface name, in file-name
    /// order (libcni `GetCachedAttachments`); anything else is skipped.
    pub fn list(&self) -> Result<Vec<CacheEntry>, CniError> {
        let dir = self.results_dir();
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_error(format_args!("reading {}", dir.display()), &e)),
        };
        let mut names: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        names.sort();
        Ok(names
            .iter()
            .filter(|p| {
                !p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .filter_map(|p| fs::read(p).ok())
            .filter_map(|b| CacheEntry::from_bytes(&b).ok())
            .filter(|e| !e.if_name.is_empty() && !e.network_name.is_empty())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    /// The file cnitool 1.1.2 wrote for `testdata/tnet.conflist` with
    /// `CNI_ARGS='A=1;B=2' CAP_ARGS='{"portMappings":[{"hostPort":80}],"x":3}'`.
    const CNITOOL_TNET: &[u8] = include_bytes!("../testdata/cnitool-cache-tnet");

    fn tnet_entry() -> CacheEntry {
        CacheEntry {
            container_id: "cnitool-09f179ca01cd6d66d4b0".into(),
            config: include_bytes!("../testdata/tnet.conflist").to_vec(),
            if_name: "eth0".into(),
            network_name: "tnet".into(),
            netns: String::new(),
            cni_args: vec![("A".into(), "1".into()), ("B".into(), "2".into())],
            capability_args: obj(json!({"x": 3, "portMappings": [{"hostPort": 80}]})),
            // As the fake plugin printed it (Go struct order); the cache sorts it.
            result: Some(obj(json!({
                "cniVersion": "1.0.0",
                "interfaces": [{"name": "eth0", "sandbox": "/x<y>"}],
                "ips": [{"interface": 0, "address": "10.0.0.2/24"}],
                "dns": {}
            }))),
        }
    }

    #[test]
    fn writes_the_bytes_cnitool_writes() {
        assert_eq!(
            String::from_utf8(tnet_entry().to_bytes()).unwrap(),
            String::from_utf8(CNITOOL_TNET.to_vec()).unwrap()
        );
        let legacy = include_bytes!("../testdata/cnitool-cache-legacy-conf");
        let parsed = CacheEntry::from_bytes(legacy).unwrap();
        assert_eq!(parsed.to_bytes(), legacy.to_vec());
    }

    #[test]
    fn reads_what_cnitool_wrote() {
        let e = CacheEntry::from_bytes(CNITOOL_TNET).unwrap();
        assert_eq!(e, tnet_entry());
        assert_eq!(
            result_of(CNITOOL_TNET).unwrap()["ips"][0]["address"],
            "10.0.0.2/24"
        );
    }

    #[test]
    fn netns_goes_between_network_name_and_cni_args_and_empty_fields_are_omitted() {
        let mut e = tnet_entry();
        e.netns = "/run/netns/a".into();
        let s = String::from_utf8(e.to_bytes()).unwrap();
        assert!(
            s.contains(r#""networkName":"tnet","netns":"/run/netns/a","cniArgs":[["A","1"]"#),
            "{s}"
        );
        // Without the netns field the bytes are cnitool 1.1.2's.
        assert_eq!(
            s.replace(r#","netns":"/run/netns/a""#, ""),
            String::from_utf8(CNITOOL_TNET.to_vec()).unwrap()
        );
        let bare = CacheEntry {
            container_id: "c".into(),
            config: b"{}".to_vec(),
            if_name: "eth0".into(),
            network_name: "n".into(),
            ..Default::default()
        };
        assert_eq!(
            String::from_utf8(bare.to_bytes()).unwrap(),
            r#"{"kind":"cniCacheV1","containerId":"c","config":"e30=","ifName":"eth0","networkName":"n"}"#
        );
        assert_eq!(CacheEntry::from_bytes(&bare.to_bytes()).unwrap(), bare);
    }

    #[test]
    fn legacy_bare_results_and_bad_files() {
        let bare = br#"{"cniVersion":"0.4.0","ips":[{"version":"4","address":"10.0.0.2/24"}]}"#;
        assert_eq!(result_of(bare).unwrap()["cniVersion"], "0.4.0");
        assert!(result_of(b"garbage").is_err());
        assert!(result_of(br#"{"kind":"other"}"#).is_err());
        assert!(result_of(br#"{"kind":"cniCacheV1","containerId":"c"}"#).is_err());
        assert!(CacheEntry::from_bytes(br#"{"kind":"cniCacheV1","cniArgs":[["A"]]}"#).is_err());
    }

    #[test]
    fn converts_to_the_list_version() {
        let cached = json!({
            "cniVersion": "1.0.0",
            "interfaces": [{"name": "eth0", "sandbox": "/run/netns/a"}],
            "ips": [{"address": "10.0.0.2/24", "interface": 0}],
            "dns": {}
        });
        // Same version: as stored (the empty dns included).
        assert_eq!(convert_result(&cached, Version::V1_0_0).unwrap(), cached);
        // 0.4.0 adds ips[].version.
        let v040 = convert_result(&cached, Version::V0_4_0).unwrap();
        assert_eq!(v040["cniVersion"], "0.4.0");
        assert_eq!(v040["ips"][0]["version"], "4");
        let back = convert_result(&v040, Version::V1_1_0).unwrap();
        assert_eq!(back["cniVersion"], "1.1.0");
        assert!(back["ips"][0].get("version").is_none());
    }

    #[test]
    fn write_read_list_remove() {
        let d = tempfile::tempdir().unwrap();
        let cache = Cache::new(d.path().join("cni"));
        assert!(cache.list().unwrap().is_empty());
        let mut e = tnet_entry();
        let path = cache.write(&e).unwrap();
        assert_eq!(
            path,
            d.path()
                .join("cni/results/tnet-cnitool-09f179ca01cd6d66d4b0-eth0")
        );
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&d.path().join("cni/results")), 0o700);
        assert_eq!(mode(&d.path().join("cni")), 0o700);
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(cache.results_dir()).unwrap().count(), 1);

        e.container_id = "a-first".into();
        e.if_name = "net1".into();
        cache.write(&e).unwrap();
        // Files that are not usable cache entries are skipped by list().
        fs::write(cache.results_dir().join("zz-broken"), "{").unwrap();
        fs::write(
            cache.results_dir().join("zz-noif"),
            br#"{"kind":"cniCacheV1","networkName":"n"}"#,
        )
        .unwrap();
        let listed: Vec<String> = cache
            .list()
            .unwrap()
            .into_iter()
            .map(|e| e.container_id)
            .collect();
        assert_eq!(listed, ["a-first", "cnitool-09f179ca01cd6d66d4b0"]);

        let key = Key {
            network: "tnet",
            container_id: "a-first",
            ifname: "net1",
        };
        assert!(cache.read(key).unwrap().is_some());
        assert!(cache.remove(key).unwrap());
        assert!(!cache.remove(key).unwrap());
        assert!(cache.read(key).unwrap().is_none());
    }
}
