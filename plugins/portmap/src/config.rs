//! The portmap configuration: the reference portmap plugin's keys (listed in
//! [the plugin's README](../README.md#configuration)). Keys of the reference that only make
//! sense for its iptables backend are refused with code 2.

use serde::Deserialize;
use serde_json::Value;

use ferro_spec::{CniError, Request};

/// Validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Masquerade hairpin and localhost-originated connections (and set `route_localnet`).
    pub snat: bool,
    /// The mark bit that means "needs masquerade".
    pub mark_masq_bit: u8,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    #[serde(default)]
    snat: Option<bool>,
    #[serde(default)]
    mark_masq_bit: Option<i64>,
    #[serde(default)]
    masq_all: Option<bool>,
    #[serde(default)]
    external_set_mark_chain: Option<Value>,
    #[serde(default, rename = "conditionsV4")]
    conditions_v4: Option<Value>,
    #[serde(default, rename = "conditionsV6")]
    conditions_v6: Option<Value>,
    #[serde(default)]
    backend: Option<String>,
}

impl Config {
    /// Parses and validates.
    pub fn from_request(req: &Request) -> Result<Config, CniError> {
        let raw: Raw = req.section()?;
        if let Some(b) = raw.backend.as_deref().filter(|b| *b != "nftables") {
            return Err(CniError::unsupported_field("backend", &Value::from(b))
                .with_details("this plugin uses nftables only"));
        }
        if let Some(v) = raw.external_set_mark_chain.filter(|v| !v.is_null()) {
            return Err(CniError::unsupported_field("externalSetMarkChain", &v)
                .with_details("an iptables-backend option"));
        }
        for (k, v) in [
            ("conditionsV4", raw.conditions_v4),
            ("conditionsV6", raw.conditions_v6),
        ] {
            if let Some(v) =
                v.filter(|v| v.as_array().is_none_or(|a| !a.is_empty()) && !v.is_null())
            {
                return Err(CniError::unsupported_field(k, &v));
            }
        }
        if raw.masq_all == Some(true) {
            return Err(CniError::unsupported_field("masqAll", &Value::Bool(true)));
        }
        let bit = raw.mark_masq_bit.unwrap_or(13);
        if !(0..=31).contains(&bit) {
            return Err(CniError::invalid_config(format!(
                "markMasqBit: {bit} is out of range 0-31"
            )));
        }
        Ok(Config {
            snat: raw.snat.unwrap_or(true),
            mark_masq_bit: bit as u8,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferro_testutil::{add_request, with_keys};
    use serde_json::json;

    fn parse(extra: Value) -> Result<Config, CniError> {
        Config::from_request(&add_request(with_keys(
            json!({"cniVersion": "1.0.0", "name": "n", "type": "portmap"}),
            extra,
        )))
    }

    #[test]
    fn defaults_match_the_reference() {
        assert_eq!(
            parse(json!({})).unwrap(),
            Config {
                snat: true,
                mark_masq_bit: 13
            }
        );
        assert!(!parse(json!({"snat": false})).unwrap().snat);
        assert!(parse(json!({"backend": "nftables", "conditionsV4": []})).is_ok());
    }

    #[test]
    fn iptables_only_keys_are_code_2() {
        for (k, v) in [
            ("backend", json!("iptables")),
            ("externalSetMarkChain", json!("KUBE-MARK-MASQ")),
            ("conditionsV4", json!(["-s", "1.2.3.4"])),
            ("masqAll", json!(true)),
        ] {
            let e = parse(json!({k: v})).unwrap_err();
            assert_eq!(e.code.number(), 2, "{k}");
            assert!(e.msg.contains(k));
        }
        let e = parse(json!({"markMasqBit": 40})).unwrap_err();
        assert_eq!(e.code.number(), 7);
        assert!(e.msg.contains("markMasqBit"));
    }
}
