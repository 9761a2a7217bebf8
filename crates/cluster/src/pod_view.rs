//! What a node agent keeps of a `Pod`: its identity, labels and container ports.
//!
//! A decoded Kubernetes `Pod` is over two kilobytes before its first field is set, and as
//! much again per container: holding ten thousand of them costs more memory than all the
//! rest of an agent's view of the cluster. Nothing on a node reads more of a pod than
//! [`PodView`] holds (Services resolve named target ports, NetworkPolicy matches labels
//! and named ports, the node firewall opens hostPorts, egress rules match labels).

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{ContainerPort, Pod};

/// A `Pod` as the node agent keeps it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PodView {
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.labels`, shared with whatever else keeps them (the policy model).
    pub labels: Arc<BTreeMap<String, String>>,
    /// Every container's ports, containers in order (`spec.containers[*].ports`).
    pub ports: Vec<ContainerPort>,
}

impl From<&Pod> for PodView {
    fn from(p: &Pod) -> PodView {
        PodView {
            namespace: p.metadata.namespace.clone().unwrap_or_default(),
            name: p.metadata.name.clone().unwrap_or_default(),
            labels: Arc::new(p.metadata.labels.clone().unwrap_or_default()),
            ports: p
                .spec
                .iter()
                .flat_map(|s| &s.containers)
                .flat_map(|c| c.ports.iter().flatten())
                .cloned()
                .collect(),
        }
    }
}

impl From<Pod> for PodView {
    fn from(p: Pod) -> PodView {
        PodView::from(&p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_view_keeps_identity_labels_and_every_containers_ports_in_order() {
        let p: Pod = serde_json::from_value(json!({
            "metadata": {"namespace": "shop", "name": "web-1", "labels": {"app": "web"},
                         "annotations": {"a": "b"}},
            "spec": {"containers": [
                {"name": "a", "image": "x", "ports": [{"name": "http", "containerPort": 8080}]},
                {"name": "b", "image": "y"},
                {"name": "c", "image": "z", "ports": [
                    {"containerPort": 53, "protocol": "UDP", "hostPort": 5353, "hostIP": "10.0.0.1"}]}
            ]},
            "status": {"phase": "Running"}
        }))
        .unwrap();
        let v = PodView::from(&p);
        assert_eq!((v.namespace.as_str(), v.name.as_str()), ("shop", "web-1"));
        assert_eq!(v.labels.get("app").map(String::as_str), Some("web"));
        assert_eq!(v.ports.len(), 2);
        assert_eq!(v.ports[0].name.as_deref(), Some("http"));
        assert_eq!(v.ports[0].container_port, 8080);
        assert_eq!(
            (
                v.ports[1].container_port,
                v.ports[1].host_port,
                v.ports[1].host_ip.as_deref()
            ),
            (53, Some(5353), Some("10.0.0.1"))
        );
        assert_eq!(v.ports[1].protocol.as_deref(), Some("UDP"));
    }

    #[test]
    fn a_pod_without_metadata_or_spec_is_an_empty_view() {
        assert_eq!(PodView::from(&Pod::default()), PodView::default());
    }
}
