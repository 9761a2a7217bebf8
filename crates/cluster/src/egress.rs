//! `ferro-cni.io/v1` EgressPolicy: what pods may reach outside the cluster.
//!
//! ```yaml
//! apiVersion: ferro-cni.io/v1
//! kind: EgressPolicy
//! metadata: {name: shop-out}
//! spec:
//!   namespaces: [shop]                      # absent: every namespace (cluster-wide)
//!   podSelector: {matchLabels: {app: web}}  # absent: every pod of those namespaces
//!   defaultAction: Deny                     # Allow (the default) or Deny
//!   allow:
//!   - toCIDRs: [198.51.100.0/24]
//!     ports: [{port: 443, protocol: TCP}]   # absent: every port and protocol
//!   - toNames: [api.example.com, "*.blob.example.net"]
//! ```
//!
//! A pod's traffic leaves the cluster when its destination is neither a pod nor a service
//! address (the ClusterNetwork's CIDRs) nor a node. Such traffic is allowed when no policy
//! selects the pod, when a policy selecting it has `defaultAction: Allow`, or when a rule of
//! a policy selecting it allows the destination (by CIDR, or by name: an address the cluster
//! DNS answered for an allowed name), port and protocol; otherwise it is dropped.

use std::collections::BTreeMap;

use ipnet::IpNet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use serde::{Deserialize, Serialize};

pub use crate::egress_names::{NamePattern, PatternError};
use crate::selector::Selector;

/// An EgressPolicy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EgressPolicy {
    /// `ferro-cni.io/v1`.
    pub api_version: String,
    /// `EgressPolicy`.
    pub kind: String,
    /// Name, labels, annotations.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// What it selects and allows.
    #[serde(default)]
    pub spec: EgressPolicySpec,
}

/// The spec of an [`EgressPolicy`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EgressPolicySpec {
    /// The namespaces whose pods it applies to (absent: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<Vec<String>>,
    /// The pods it applies to in those namespaces (absent: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_selector: Option<LabelSelector>,
    /// `Allow` (default) or `Deny`: what happens to traffic no rule allows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_action: Option<String>,
    /// The allow rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow: Option<Vec<EgressRule>>,
}

/// One allow rule: destinations (CIDRs, names or both) and ports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EgressRule {
    /// Destination CIDRs.
    #[serde(rename = "toCIDRs", default, skip_serializing_if = "Option::is_none")]
    pub to_cidrs: Option<Vec<String>>,
    /// Destination names: exact, or `*.` wildcards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_names: Option<Vec<String>>,
    /// Ports (absent: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<EgressPort>>,
}

/// A port and protocol.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EgressPort {
    /// The port.
    pub port: i32,
    /// `TCP` (default), `UDP` or `SCTP`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
}

/// A checked rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Destination CIDRs (host bits dropped).
    pub cidrs: Vec<IpNet>,
    /// Destination names.
    pub names: Vec<NamePattern>,
    /// (IP protocol number, port); empty: every port and protocol.
    pub ports: Vec<(u8, u16)>,
}

/// A checked policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Egress {
    /// The policy's name.
    pub name: String,
    /// The namespaces it applies to (`None`: all).
    pub namespaces: Option<Vec<String>>,
    /// The pods it applies to.
    pub selector: Selector,
    /// Whether traffic no rule allows is dropped.
    pub deny: bool,
    /// The allow rules.
    pub rules: Vec<Rule>,
}

fn proto_number(p: Option<&str>) -> Option<u8> {
    match p.unwrap_or("TCP") {
        "TCP" => Some(6),
        "UDP" => Some(17),
        "SCTP" => Some(132),
        _ => None,
    }
}

/// A port and protocol, checked: (IP protocol number, port); the error names the field
/// (`port: ...` or `protocol: ...`).
pub fn port_of(p: &EgressPort) -> Result<(u8, u16), String> {
    let proto = proto_number(p.protocol.as_deref()).ok_or_else(|| {
        format!(
            "protocol: {:?} is not one of TCP, UDP, SCTP",
            p.protocol.as_deref().unwrap_or_default()
        )
    })?;
    let port = u16::try_from(p.port)
        .ok()
        .filter(|n| *n != 0)
        .ok_or_else(|| format!("port: {} is not a port (1-65535)", p.port))?;
    Ok((proto, port))
}

impl EgressPolicy {
    /// The checked policy; every problem names its field.
    pub fn checked(&self) -> Result<Egress, Vec<String>> {
        let mut errors = Vec::new();
        let s = &self.spec;
        for (i, ns) in s.namespaces.iter().flatten().enumerate() {
            if let Some(e) = crate::names::dns1123_label(ns) {
                errors.push(format!("spec.namespaces[{i}]: {e}"));
            }
        }
        let selector = match &s.pod_selector {
            None => Selector::everything(),
            Some(sel) => Selector::parse(sel).unwrap_or_else(|es| {
                errors.extend(es.into_iter().map(|e| format!("spec.podSelector.{e}")));
                Selector::everything()
            }),
        };
        let deny = match s.default_action.as_deref() {
            None | Some("Allow") => false,
            Some("Deny") => true,
            Some(o) => {
                errors.push(format!(
                    "spec.defaultAction: {o:?} is not one of Allow, Deny"
                ));
                false
            }
        };
        let mut rules = Vec::new();
        for (i, r) in s.allow.iter().flatten().enumerate() {
            let at = format!("spec.allow[{i}]");
            let mut rule = Rule {
                cidrs: Vec::new(),
                names: Vec::new(),
                ports: Vec::new(),
            };
            for (j, c) in r.to_cidrs.iter().flatten().enumerate() {
                match c.parse::<IpNet>() {
                    Ok(n) => rule.cidrs.push(n.trunc()),
                    Err(_) => errors.push(format!("{at}.toCIDRs[{j}]: {c:?} is not a CIDR")),
                }
            }
            for (j, n) in r.to_names.iter().flatten().enumerate() {
                match NamePattern::parse(n) {
                    Ok(p) => rule.names.push(p),
                    Err(e) => errors.push(format!("{at}.toNames[{j}]: {e}")),
                }
            }
            if rule.cidrs.is_empty() && rule.names.is_empty() {
                errors.push(format!(
                    "{at}: allows nothing (give toCIDRs, toNames or both)"
                ));
            }
            for (j, p) in r.ports.iter().flatten().enumerate() {
                match port_of(p) {
                    Ok(x) => rule.ports.push(x),
                    Err(e) => errors.push(format!("{at}.ports[{j}].{e}")),
                }
            }
            rules.push(rule);
        }
        if errors.is_empty() {
            Ok(Egress {
                name: self.metadata.name.clone().unwrap_or_default(),
                namespaces: s.namespaces.clone(),
                selector,
                deny,
                rules,
            })
        } else {
            Err(errors)
        }
    }
}

impl Egress {
    /// Whether it applies to a pod of `namespace` with `labels`.
    pub fn selects(&self, namespace: &str, labels: &BTreeMap<String, String>) -> bool {
        self.namespaces
            .as_ref()
            .is_none_or(|n| n.iter().any(|x| x == namespace))
            && self.selector.matches(labels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(spec: serde_json::Value) -> EgressPolicy {
        serde_json::from_value(
            serde_json::json!({"apiVersion":"ferro-cni.io/v1","kind":"EgressPolicy",
            "metadata":{"name":"p"},"spec":spec}),
        )
        .unwrap()
    }

    #[test]
    fn checked_view() {
        let e = policy(serde_json::json!({"namespaces":["shop"],"podSelector":{"matchLabels":{"app":"web"}},
            "defaultAction":"Deny","allow":[{"toCIDRs":["198.51.100.9/24"],"ports":[{"port":443}]},
            {"toNames":["API.example.com","*.blob.example.net"],"ports":[{"port":53,"protocol":"UDP"}]}]}))
        .checked()
        .unwrap();
        assert!(e.deny);
        assert_eq!(
            e.rules[0].cidrs,
            vec!["198.51.100.0/24".parse::<IpNet>().unwrap()]
        );
        assert_eq!(e.rules[0].ports, vec![(6, 443)]);
        assert_eq!(e.rules[1].names[0].to_string(), "api.example.com");
        assert_eq!(e.rules[1].ports, vec![(17, 53)]);
        let web: BTreeMap<String, String> = [("app".to_string(), "web".to_string())].into();
        assert!(e.selects("shop", &web));
        assert!(!e.selects("other", &web));
        assert!(!e.selects("shop", &BTreeMap::new()));
        let all = policy(serde_json::json!({})).checked().unwrap();
        assert!(!all.deny && all.selects("any", &BTreeMap::new()));
    }

    #[test]
    fn mistakes_name_the_field() {
        let e = policy(serde_json::json!({"namespaces":["Bad_NS"],"defaultAction":"deny",
            "podSelector":{"matchExpressions":[{"key":"a","operator":"Maybe"}]},
            "allow":[{"toCIDRs":["x"],"toNames":["a b"],"ports":[{"port":0},{"port":1,"protocol":"ICMP"}]},{}]}))
        .checked()
        .unwrap_err();
        for want in [
            "spec.namespaces[0]",
            "spec.defaultAction",
            "spec.podSelector.",
            "spec.allow[0].toCIDRs[0]",
            "spec.allow[0].toNames[0]",
            "spec.allow[0].ports[0].port",
            "spec.allow[0].ports[1].protocol",
            "spec.allow[1]: allows nothing",
        ] {
            assert!(e.iter().any(|m| m.starts_with(want)), "{want}: {e:?}");
        }
    }
}
