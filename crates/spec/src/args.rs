//! `CNI_ARGS`: `K1=V1;K2=V2`, with `IgnoreUnknown` as libcni's `LoadArgs` defines it.
//!
//! Keys are case-sensitive (`IP`, not `ip`). A plugin that reads `CNI_ARGS` declares the keys
//! it knows; any other key is an error (code 4) unless `IgnoreUnknown` is `1` or `true` (any
//! case), which containerd always sends together with its `K8S_POD_*` keys.

use crate::error::CniError;

/// Parsed `CNI_ARGS`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniArgs {
    pairs: Vec<(String, String)>,
}

/// The keys containerd and kubelet send for every pod.
pub const K8S_KEYS: &[&str] = &[
    "K8S_POD_NAMESPACE",
    "K8S_POD_NAME",
    "K8S_POD_INFRA_CONTAINER_ID",
    "K8S_POD_UID",
];

impl CniArgs {
    /// Parses `K=V;K2=V2`. Empty segments (a trailing `;`) are skipped; a segment without
    /// exactly one `=` or with an empty key is an error naming it.
    pub fn parse(s: &str) -> Result<Self, CniError> {
        let mut pairs = Vec::new();
        for seg in s.split(';').filter(|seg| !seg.is_empty()) {
            let mut kv = seg.splitn(3, '=');
            match (kv.next(), kv.next(), kv.next()) {
                (Some(k), Some(v), None) if !k.is_empty() => {
                    pairs.push((k.to_string(), v.to_string()));
                }
                _ => {
                    return Err(CniError::invalid_env(format!(
                        "CNI_ARGS: invalid pair {seg:?}: want KEY=VALUE"
                    )))
                }
            }
        }
        Ok(CniArgs { pairs })
    }

    /// The value of `key` (the last one wins when repeated).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// All pairs, in order.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// True when `IgnoreUnknown` is `1` or `true` (case-insensitive).
    pub fn ignore_unknown(&self) -> bool {
        self.get("IgnoreUnknown")
            .is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
    }

    /// Fails (code 4) on any key outside `known` unless `IgnoreUnknown` is set.
    pub fn check_known(&self, known: &[&str]) -> Result<(), CniError> {
        if self.ignore_unknown() {
            return Ok(());
        }
        let unknown: Vec<&str> = self
            .pairs
            .iter()
            .map(|(k, _)| k.as_str())
            .filter(|k| *k != "IgnoreUnknown" && !known.contains(k))
            .collect();
        if unknown.is_empty() {
            Ok(())
        } else {
            Err(CniError::invalid_env(format!(
                "CNI_ARGS: unknown keys {unknown:?} (set IgnoreUnknown=1 to allow them)"
            )))
        }
    }

    /// Renders `K=V;K2=V2` again.
    pub fn render(&self) -> String {
        self.pairs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(";")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_containerd_style_args() {
        let a = CniArgs::parse("IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=u-1").unwrap();
        assert!(a.ignore_unknown());
        assert_eq!(a.get("K8S_POD_NAME"), Some("web-0"));
        assert!(a.check_known(&["IP"]).is_ok());
    }

    #[test]
    fn unknown_keys_fail_without_ignore_unknown() {
        let a = CniArgs::parse("ip=10.0.0.5").unwrap();
        let e = a.check_known(&["IP"]).unwrap_err();
        assert_eq!(e.code.number(), 4);
        assert!(e.msg.contains("\"ip\""), "{}", e.msg);
        assert!(CniArgs::parse("IP=10.0.0.5")
            .unwrap()
            .check_known(&["IP"])
            .is_ok());
        assert!(CniArgs::parse("IgnoreUnknown=True;x=1")
            .unwrap()
            .check_known(&[])
            .is_ok());
        assert!(CniArgs::parse("IgnoreUnknown=0;x=1")
            .unwrap()
            .check_known(&[])
            .is_err());
    }

    #[test]
    fn malformed_pairs_are_named() {
        for bad in ["IP", "=1", "A=b=c"] {
            let e = CniArgs::parse(bad).unwrap_err();
            assert_eq!(e.code.number(), 4);
            assert!(e.msg.contains(bad), "{}", e.msg);
        }
        assert_eq!(CniArgs::parse("").unwrap().pairs().len(), 0);
        assert_eq!(CniArgs::parse("A=1;").unwrap().render(), "A=1");
    }
}
