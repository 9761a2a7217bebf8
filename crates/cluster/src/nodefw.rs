//! The node firewall setting of the ClusterNetwork (opt-in):
//!
//! ```yaml
//! spec:
//!   nodeFirewall:
//!     enabled: true
//!     allow: [{port: 22, protocol: TCP}]   # the operator's extras (default: SSH)
//! ```
//!
//! With it every node drops inbound traffic to its own addresses except what the cluster
//! publishes (NodePorts, hostPorts, load-balancer and external addresses), cluster traffic
//! and the extras.

use serde::{Deserialize, Serialize};

/// The `nodeFirewall` object as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeFirewallSpec {
    /// On or off (default off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Extra ports open on every node (default: 22/TCP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow: Option<Vec<crate::egress::EgressPort>>,
}

/// The checked setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeFirewall {
    /// Whether nodes filter.
    pub enabled: bool,
    /// (IP protocol, port) open on every node.
    pub extras: Vec<(u8, u16)>,
}

impl NodeFirewallSpec {
    /// The checked view; errors name the field.
    pub fn checked(&self) -> Result<NodeFirewall, Vec<String>> {
        let mut errors = Vec::new();
        let mut extras = Vec::new();
        match &self.allow {
            None => extras.push((6, 22)),
            Some(ports) => {
                for (i, p) in ports.iter().enumerate() {
                    let at = format!("spec.nodeFirewall.allow[{i}]");
                    match crate::egress::port_of(p) {
                        Ok(x) => extras.push(x),
                        Err(e) => errors.push(format!("{at}.{e}")),
                    }
                }
            }
        }
        if errors.is_empty() {
            Ok(NodeFirewall {
                enabled: self.enabled.unwrap_or(false),
                extras,
            })
        } else {
            Err(errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_mistakes() {
        let f: NodeFirewallSpec =
            serde_json::from_value(serde_json::json!({"enabled": true})).unwrap();
        assert_eq!(
            f.checked().unwrap(),
            NodeFirewall {
                enabled: true,
                extras: vec![(6, 22)]
            }
        );
        let f: NodeFirewallSpec = serde_json::from_value(
            serde_json::json!({"allow": [{"port": 2222}, {"port": 0}, {"port": 53, "protocol": "ICMP"}]}),
        )
        .unwrap();
        let e = f.checked().unwrap_err();
        assert!(e[0].starts_with("spec.nodeFirewall.allow[1].port"), "{e:?}");
        assert!(
            e[1].starts_with("spec.nodeFirewall.allow[2].protocol"),
            "{e:?}"
        );
    }
}
