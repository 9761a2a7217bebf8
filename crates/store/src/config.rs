//! Which store to use ([`StoreConfig`], the agent's `store` key) and a handle to either
//! backend ([`AnyStore`]).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{
    Embedded, Etcd, KeyValue, Lease, LeaseId, Listing, Result, Revision, Store, Txn, TxnResult,
    Watch,
};

/// The embedded database's file name in the agent's state directory (its default place).
pub const EMBEDDED_FILE: &str = "store.redb";
/// Default time to reach an etcd member.
pub const DEFAULT_DIAL_TIMEOUT: Duration = Duration::from_secs(5);
/// Default deadline of one etcd request.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// `{"embedded": {...}}` or `{"etcd": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum StoreConfig {
    /// One node: a database file only this process opens.
    Embedded(EmbeddedConfig),
    /// Many nodes: an etcd v3 cluster.
    Etcd(EtcdConfig),
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig::Embedded(EmbeddedConfig::default())
    }
}

/// The embedded store's settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EmbeddedConfig {
    /// The database file (default: `store.redb` in the agent's state directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
}

impl EmbeddedConfig {
    /// The database file: `path`, or `store.redb` in `state_dir`.
    pub fn file(&self, state_dir: &std::path::Path) -> PathBuf {
        self.path
            .clone()
            .unwrap_or_else(|| state_dir.join(EMBEDDED_FILE))
    }
}

/// The etcd store's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EtcdConfig {
    /// The members' client URLs (`https://10.240.0.4:2379`, or `host:port`).
    pub endpoints: Vec<String>,
    /// The CA that signed the members' certificates (turns TLS on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// This client's certificate, for members that require one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<PathBuf>,
    /// The key of `certFile`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    /// Seconds to reach a member (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dial_timeout_seconds: Option<f64>,
    /// Seconds one request may take (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_timeout_seconds: Option<f64>,
}

fn seconds(v: Option<f64>, default: Duration) -> Duration {
    v.filter(|s| s.is_finite() && *s > 0.0)
        .map_or(default, Duration::from_secs_f64)
}

impl EtcdConfig {
    /// Plain-text endpoints with default timeouts.
    pub fn new(endpoints: Vec<String>) -> Self {
        EtcdConfig {
            endpoints,
            ca_file: None,
            cert_file: None,
            key_file: None,
            dial_timeout_seconds: None,
            request_timeout_seconds: None,
        }
    }

    /// The time to reach a member.
    pub fn dial_timeout(&self) -> Duration {
        seconds(self.dial_timeout_seconds, DEFAULT_DIAL_TIMEOUT)
    }

    /// The deadline of one request.
    pub fn request_timeout(&self) -> Duration {
        seconds(self.request_timeout_seconds, DEFAULT_REQUEST_TIMEOUT)
    }

    /// Checks what can be checked without connecting: endpoints present, timeouts positive,
    /// certificate and key given together. Returns the first problem, naming its key.
    pub fn check(&self) -> std::result::Result<(), String> {
        if self.endpoints.is_empty() {
            return Err("store.etcd.endpoints: at least one endpoint is needed".into());
        }
        for (k, v) in [
            ("dialTimeoutSeconds", self.dial_timeout_seconds),
            ("requestTimeoutSeconds", self.request_timeout_seconds),
        ] {
            if let Some(s) = v {
                if !(s.is_finite() && s > 0.0) {
                    return Err(format!("store.etcd.{k}: {s} is not a positive number"));
                }
            }
        }
        if self.cert_file.is_some() != self.key_file.is_some() {
            return Err("store.etcd: certFile and keyFile go together".into());
        }
        Ok(())
    }
}

/// Either backend, behind one type.
#[derive(Debug, Clone)]
pub enum AnyStore {
    /// The embedded file.
    Embedded(Embedded),
    /// An etcd cluster (boxed: the client is large).
    Etcd(Box<Etcd>),
}

impl AnyStore {
    /// Opens the store `cfg` names: the embedded file (created when missing, its directory
    /// must exist; `state_dir` holds it unless a path is given), or a connection to etcd that
    /// has answered once.
    pub async fn open(cfg: &StoreConfig, state_dir: &std::path::Path) -> Result<AnyStore> {
        Ok(match cfg {
            StoreConfig::Embedded(e) => {
                AnyStore::Embedded(Embedded::open(&e.file(state_dir)).await?)
            }
            StoreConfig::Etcd(e) => AnyStore::Etcd(Box::new(Etcd::connect(e).await?)),
        })
    }

    /// What it is, for logs: `embedded <path>` or `etcd <endpoints>`.
    pub fn describe(&self) -> String {
        match self {
            AnyStore::Embedded(e) => format!("embedded {}", e.path().display()),
            AnyStore::Etcd(e) => format!("etcd {}", e.endpoints()),
        }
    }
}

macro_rules! both {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            AnyStore::Embedded($s) => $e,
            AnyStore::Etcd($s) => $e,
        }
    };
}

impl Store for AnyStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        both!(self, s => s.get(key).await)
    }

    async fn list(&self, prefix: &str) -> Result<Listing> {
        both!(self, s => s.list(prefix).await)
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResult> {
        both!(self, s => s.txn(txn).await)
    }

    async fn grant(&self, ttl: Duration) -> Result<Lease> {
        both!(self, s => s.grant(ttl).await)
    }

    async fn keepalive(&self, lease: LeaseId) -> Result<()> {
        both!(self, s => s.keepalive(lease).await)
    }

    async fn revoke(&self, lease: LeaseId) -> Result<()> {
        both!(self, s => s.revoke(lease).await)
    }

    async fn watch(&self, prefix: &str, from: Revision) -> Result<Watch> {
        both!(self, s => s.watch(prefix, from).await)
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        both!(self, s => s.compact(revision).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_parse_strictly() {
        let c: StoreConfig = serde_json::from_str(r#"{"embedded":{}}"#).unwrap();
        assert_eq!(c, StoreConfig::default());
        let c: StoreConfig = serde_json::from_str(
            r#"{"etcd":{"endpoints":["https://10.240.0.4:2379"],"caFile":"/ca.pem","certFile":"/c.pem","keyFile":"/k.pem","dialTimeoutSeconds":0.5}}"#,
        )
        .unwrap();
        let StoreConfig::Etcd(e) = c else {
            panic!("etcd")
        };
        assert_eq!(e.dial_timeout(), Duration::from_millis(500));
        assert_eq!(e.request_timeout(), DEFAULT_REQUEST_TIMEOUT);
        assert!(e.check().is_ok());
        let bad = serde_json::from_str::<StoreConfig>(r#"{"etcd":{"endpoints":[],"cafile":"x"}}"#)
            .unwrap_err();
        assert!(bad.to_string().contains("unknown field `cafile`"), "{bad}");
        let mut e = EtcdConfig::new(vec![]);
        assert!(e.check().unwrap_err().contains("endpoints"));
        e.endpoints.push("x:1".into());
        e.cert_file = Some("/c".into());
        assert!(e.check().unwrap_err().contains("keyFile"));
        e.key_file = Some("/k".into());
        e.request_timeout_seconds = Some(-1.0);
        assert!(e.check().unwrap_err().contains("requestTimeoutSeconds"));
    }
}
