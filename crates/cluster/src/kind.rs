//! The kinds of resource the cluster knows, how `cnictl` names them (names, plurals, short
//! names, as kubectl does), and who writes them.

use std::fmt;

/// The API group and version of our own kinds.
pub const FERRO_API_VERSION: &str = "ferro-cni.io/v1";

/// A kind of resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// `v1` Namespace.
    Namespace,
    /// `v1` Pod (metadata, labels and container ports are what the cluster uses).
    Pod,
    /// `v1` Service.
    Service,
    /// `networking.k8s.io/v1` NetworkPolicy.
    NetworkPolicy,
    /// `ferro-cni.io/v1` ClusterNetwork: the cluster's address space and settings.
    ClusterNetwork,
    /// `ferro-cni.io/v1` EgressPolicy: what pods may reach outside the cluster.
    EgressPolicy,
    /// `ferro-cni.io/v1` Node: written by each node's agent.
    Node,
    /// `ferro-cni.io/v1` IPAMBlock: a block of pod addresses, written by the agents.
    IpamBlock,
    /// `ferro-cni.io/v1` Attachment: a pod's interface on a node, reported by the plugins.
    Attachment,
}

/// Every kind, in the order `cnictl` lists them.
pub const ALL_KINDS: [Kind; 9] = [
    Kind::Namespace,
    Kind::Pod,
    Kind::Service,
    Kind::NetworkPolicy,
    Kind::ClusterNetwork,
    Kind::EgressPolicy,
    Kind::Node,
    Kind::IpamBlock,
    Kind::Attachment,
];

impl Kind {
    /// The `kind` field.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Namespace => "Namespace",
            Kind::Pod => "Pod",
            Kind::Service => "Service",
            Kind::NetworkPolicy => "NetworkPolicy",
            Kind::ClusterNetwork => "ClusterNetwork",
            Kind::EgressPolicy => "EgressPolicy",
            Kind::Node => "Node",
            Kind::IpamBlock => "IPAMBlock",
            Kind::Attachment => "Attachment",
        }
    }

    /// The `apiVersion` field.
    pub fn api_version(self) -> &'static str {
        match self {
            Kind::Namespace | Kind::Pod | Kind::Service => "v1",
            Kind::NetworkPolicy => "networking.k8s.io/v1",
            Kind::ClusterNetwork
            | Kind::EgressPolicy
            | Kind::Node
            | Kind::IpamBlock
            | Kind::Attachment => FERRO_API_VERSION,
        }
    }

    /// The plural, lower case: the store key's segment and `cnictl get`'s main name.
    pub fn plural(self) -> &'static str {
        match self {
            Kind::Namespace => "namespaces",
            Kind::Pod => "pods",
            Kind::Service => "services",
            Kind::NetworkPolicy => "networkpolicies",
            Kind::ClusterNetwork => "clusternetworks",
            Kind::EgressPolicy => "egresspolicies",
            Kind::Node => "nodes",
            Kind::IpamBlock => "ipamblocks",
            Kind::Attachment => "attachments",
        }
    }

    /// Short names, as kubectl's (`po`, `svc`, `netpol`, `ns`, `no`).
    pub fn short_names(self) -> &'static [&'static str] {
        match self {
            Kind::Namespace => &["ns"],
            Kind::Pod => &["po"],
            Kind::Service => &["svc"],
            Kind::NetworkPolicy => &["netpol"],
            Kind::ClusterNetwork => &["cn"],
            Kind::EgressPolicy => &["egp"],
            Kind::Node => &["no"],
            Kind::IpamBlock => &["ipb"],
            Kind::Attachment => &["att"],
        }
    }

    /// Whether objects of the kind live in a namespace.
    pub fn namespaced(self) -> bool {
        matches!(
            self,
            Kind::Pod | Kind::Service | Kind::NetworkPolicy | Kind::Attachment
        )
    }

    /// Whether the system writes it (agents, plugins): it can be read, not applied.
    pub fn system_written(self) -> bool {
        matches!(self, Kind::Node | Kind::IpamBlock | Kind::Attachment)
    }

    /// The kind with this `apiVersion` and `kind`: `Err` says what is wrong (unknown kind,
    /// or a known kind under another apiVersion).
    pub fn from_type(api_version: &str, kind: &str) -> Result<Kind, String> {
        match ALL_KINDS.iter().find(|k| k.name() == kind) {
            Some(k) if k.api_version() == api_version => Ok(*k),
            Some(k) => Err(format!(
                "apiVersion: {kind} is {}, not {api_version:?}",
                k.api_version()
            )),
            None => Err(format!(
                "unknown kind {kind:?} (apiVersion {api_version:?}); known kinds: {}",
                ALL_KINDS
                    .iter()
                    .filter(|k| !k.system_written())
                    .map(|k| format!("{} ({})", k.name(), k.api_version()))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    /// The kind a command line names: its name, plural or short name, any case
    /// (`pods`, `pod`, `po`, `Pod`, `svc`, `netpol`, `ns`, `nodes`, `ipamblocks`...).
    pub fn from_cli(word: &str) -> Result<Kind, String> {
        let w = word.to_ascii_lowercase();
        ALL_KINDS
            .iter()
            .copied()
            .find(|k| {
                k.name().to_ascii_lowercase() == w
                    || k.plural() == w
                    || k.short_names().contains(&w.as_str())
            })
            .ok_or_else(|| {
                format!(
                    "unknown resource type {word:?}; known: {}",
                    ALL_KINDS
                        .iter()
                        .map(|k| format!("{} ({})", k.plural(), k.short_names().join(", ")))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_names_follow_kubectl() {
        for (w, k) in [
            ("pods", Kind::Pod),
            ("po", Kind::Pod),
            ("Pod", Kind::Pod),
            ("svc", Kind::Service),
            ("services", Kind::Service),
            ("netpol", Kind::NetworkPolicy),
            ("networkpolicy", Kind::NetworkPolicy),
            ("ns", Kind::Namespace),
            ("nodes", Kind::Node),
            ("clusternetworks", Kind::ClusterNetwork),
            ("ipamblocks", Kind::IpamBlock),
            ("IPAMBlock", Kind::IpamBlock),
            ("attachments", Kind::Attachment),
        ] {
            assert_eq!(Kind::from_cli(w), Ok(k), "{w}");
        }
        let e = Kind::from_cli("deployments").unwrap_err();
        assert!(
            e.contains("\"deployments\"") && e.contains("pods (po)"),
            "{e}"
        );
    }

    #[test]
    fn types_are_checked_by_api_version_and_kind() {
        assert_eq!(
            Kind::from_type("networking.k8s.io/v1", "NetworkPolicy"),
            Ok(Kind::NetworkPolicy)
        );
        assert_eq!(
            Kind::from_type("ferro-cni.io/v1", "IPAMBlock"),
            Ok(Kind::IpamBlock)
        );
        let e = Kind::from_type("apps/v1", "Deployment").unwrap_err();
        assert!(e.starts_with("unknown kind \"Deployment\""), "{e}");
        assert!(
            !e.contains("IPAMBlock"),
            "system kinds are not offered: {e}"
        );
        let e = Kind::from_type("v1", "NetworkPolicy").unwrap_err();
        assert!(e.contains("networking.k8s.io/v1"), "{e}");
        assert!(ALL_KINDS
            .iter()
            .all(|k| k.system_written()
                == matches!(k, Kind::Node | Kind::IpamBlock | Kind::Attachment)));
    }
}
