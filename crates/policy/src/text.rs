//! Peers and ports in words, as `kubectl describe networkpolicy` writes them.

use crate::model::{Namespaces, Peer, PortMatch, PortSpec};

/// `namespaceSelector: ns=y, podSelector: pod=a`, `ipBlock: 10.0.0.0/8 except 10.1.0.0/16`.
pub fn peer(p: &Peer) -> String {
    match p {
        Peer::Block { cidr, except } => {
            let mut s = format!("ipBlock {cidr}");
            if !except.is_empty() {
                let ex: Vec<String> = except.iter().map(ToString::to_string).collect();
                s.push_str(&format!(" except {}", ex.join(", ")));
            }
            s
        }
        Peer::Pods { namespaces, pods } => {
            let mut parts = Vec::new();
            if let Namespaces::Matching(sel) = namespaces {
                parts.push(format!("namespaceSelector {sel}"));
            }
            if let Some(sel) = pods {
                parts.push(format!("podSelector {sel}"));
            }
            parts.join(", ")
        }
    }
}

/// `80/TCP`, `80-90/UDP`, `serve-80-tcp/TCP`, `every port/SCTP`.
pub fn port(p: &PortSpec) -> String {
    match &p.port {
        PortMatch::Any => format!("every port/{}", p.proto),
        PortMatch::Range(a, b) if a == b => format!("{a}/{}", p.proto),
        PortMatch::Range(a, b) => format!("{a}-{b}/{}", p.proto),
        PortMatch::Named(n) => format!("{n}/{}", p.proto),
    }
}
