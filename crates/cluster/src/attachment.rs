//! Attachments and the pods they belong to, pure.
//!
//! An [`Attachment`] is one interface of one pod on one node, as a plugin reported it. It
//! lives in the pod's namespace (`default` when the runtime did not say) and is named after
//! the pod, the interface and a hash of the container id and interface ([`name`]):
//! `web-1-eth0-5c1f03a2` (at most 63 characters: a long pod name is cut). The hash keeps two sandboxes of one pod name apart (a pod
//! recreated while its old sandbox is still being torn down); the pod name keeps the name
//! readable. Without a pod name the container id's first 12 characters stand in for it.
//!
//! Labels are not copied into attachments: they are the `Pod` resource's, joined when
//! attachments are read ([`join_labels`]), so a label change applies at once and a pod with
//! no `Pod` resource has none. The other way round, a `Pod` read with its attachments gets
//! its addresses and node from them ([`join_pod`]).

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Pod, PodIP, PodSpec, PodStatus};
use sha2::{Digest, Sha256};

use crate::resource::Attachment;
use crate::validate::DEFAULT_NAMESPACE;

/// The longest name made: one DNS-1123 label (so also a valid subdomain).
const MAX_NAME: usize = 63;

/// `s` reduced to what a DNS-1123 label may hold: lower case letters, digits and `-`;
/// anything else becomes `-`.
fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '-' => c,
            'A'..='Z' => c.to_ascii_lowercase(),
            _ => '-',
        })
        .collect()
}

/// An attachment's identity on its node, whatever the pod: 16 hex digits of a hash of its
/// container id and interface (CNI names an attachment by the two).
pub fn identity(container_id: &str, ifname: &str) -> String {
    let digest = Sha256::digest(format!("{container_id}\0{ifname}").as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// The name of the attachment of `ifname` in container `container_id`, of pod `pod` when
/// known: `<pod>-<ifname>-<8 hex digits>` (see the module documentation), the pod name cut
/// to fit 63 characters. Always a valid object name, and the same for the same container and
/// interface whatever the pod.
pub fn name(pod: Option<&str>, container_id: &str, ifname: &str) -> String {
    let id = identity(container_id, ifname);
    let hash = &id[..8];
    let base = match pod.filter(|p| !p.is_empty()) {
        Some(p) => sanitize(p),
        None => sanitize(&container_id.chars().take(12).collect::<String>()),
    };
    let tail = format!("-{}-{hash}", sanitize(ifname));
    let room = MAX_NAME - tail.len();
    let base: String = base.chars().take(room).collect();
    let base = base.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    let base = if base.is_empty() { "pod" } else { base };
    format!("{base}{tail}")
}

/// The namespace of an attachment: the pod's, or `default`.
pub fn namespace(pod_namespace: Option<&str>) -> &str {
    pod_namespace
        .filter(|n| !n.is_empty())
        .unwrap_or(DEFAULT_NAMESPACE)
}

/// `(namespace, pod name)` of a pod.
fn pod_key(p: &Pod) -> (String, String) {
    (
        p.metadata.namespace.clone().unwrap_or_default(),
        p.metadata.name.clone().unwrap_or_default(),
    )
}

/// Sets each attachment's labels to its pod's (`spec.pod` in the attachment's namespace);
/// an attachment without a `Pod` resource has none.
pub fn join_labels(attachments: &mut [Attachment], pods: &[Pod]) {
    let by_pod: BTreeMap<(String, String), &Pod> = pods.iter().map(|p| (pod_key(p), p)).collect();
    for a in attachments {
        let key = (
            a.metadata.namespace.clone().unwrap_or_default(),
            a.spec.pod.clone().unwrap_or_default(),
        );
        a.metadata.labels = by_pod
            .get(&key)
            .and_then(|p| p.metadata.labels.clone())
            .filter(|l| !l.is_empty());
    }
}

/// Fills in a pod's addresses from its attachments (those of its namespace naming it):
/// `status.podIPs` (every address, IPv4 first, then by interface), `status.podIP` (the
/// first), and `spec.nodeName` when the manifest did not set it. A pod without attachments
/// is left as it is.
pub fn join_pod(pod: &mut Pod, attachments: &[Attachment]) {
    let (ns, name) = pod_key(pod);
    let mut mine: Vec<&Attachment> = attachments
        .iter()
        .filter(|a| {
            a.metadata.namespace.as_deref() == Some(ns.as_str())
                && a.spec.pod.as_deref() == Some(name.as_str())
        })
        .collect();
    if mine.is_empty() {
        return;
    }
    mine.sort_by(|a, b| {
        (&a.spec.interface, &a.metadata.name).cmp(&(&b.spec.interface, &b.metadata.name))
    });
    let mut ips: Vec<IpAddr> = Vec::new();
    for a in &mine {
        for addr in &a.spec.addresses {
            let ip = addr
                .split('/')
                .next()
                .and_then(|s| s.parse::<IpAddr>().ok());
            if let Some(ip) = ip.filter(|ip| !ips.contains(ip)) {
                ips.push(ip);
            }
        }
    }
    ips.sort_by_key(IpAddr::is_ipv6);
    let status = pod.status.get_or_insert_with(PodStatus::default);
    status.pod_ip = ips.first().map(ToString::to_string);
    status.pod_ips =
        (!ips.is_empty()).then(|| ips.iter().map(|ip| PodIP { ip: ip.to_string() }).collect());
    let spec = pod.spec.get_or_insert_with(PodSpec::default);
    if spec.node_name.as_deref().is_none_or(str::is_empty) {
        spec.node_name = Some(mine[0].spec.node.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::dns1123_subdomain;
    use crate::resource::AttachmentSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    #[test]
    fn names_are_readable_valid_and_stable() {
        let n = name(Some("web-1"), "4f2c9a", "eth0");
        assert!(
            n.starts_with("web-1-eth0-") && n.len() == "web-1-eth0-".len() + 8,
            "{n}"
        );
        assert_eq!(n, name(Some("web-1"), "4f2c9a", "eth0"));
        assert_ne!(n, name(Some("web-1"), "4f2c9b", "eth0"), "another sandbox");
        assert_ne!(n, name(Some("web-1"), "4f2c9a", "net1"));
        assert!(name(None, "cnitool-0123456789abcdef", "eth0").starts_with("cnitool-0123-eth0-"));
        for n in [
            name(Some(&"a".repeat(253)), "c", "eth0"),
            name(None, "_Weird_ID_", "Eth@0"),
            name(None, "---", "eth0"),
            name(Some(""), "", "e"),
            name(Some("x."), "ABC", "eth0"),
            name(Some("web.v2"), "ABC", "eth0"),
        ] {
            assert_eq!(dns1123_subdomain(&n), None, "{n}");
            assert!(n.len() <= 63, "{n}");
        }
        assert!(name(None, "_Weird_ID_", "Eth@0").starts_with("weird-id-eth-0-"));
        assert!(name(None, "---", "eth0").starts_with("pod-eth0-"));
    }

    #[test]
    fn the_namespace_defaults() {
        assert_eq!(namespace(None), "default");
        assert_eq!(namespace(Some("")), "default");
        assert_eq!(namespace(Some("shop")), "shop");
    }

    fn att(ns: &str, pod: Option<&str>, ifname: &str, node: &str, addrs: &[&str]) -> Attachment {
        Attachment {
            metadata: ObjectMeta {
                namespace: Some(ns.into()),
                name: Some(name(pod, "c", ifname)),
                ..Default::default()
            },
            spec: AttachmentSpec {
                node: node.into(),
                pod: pod.map(str::to_string),
                interface: ifname.into(),
                addresses: addrs.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn pod(ns: &str, name: &str, labels: &[(&str, &str)]) -> Pod {
        Pod {
            metadata: ObjectMeta {
                namespace: Some(ns.into()),
                name: Some(name.into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn labels_come_from_the_pod_of_that_namespace_and_name() {
        let pods = [
            pod("shop", "web-1", &[("app", "web")]),
            pod("other", "db-1", &[("app", "db")]),
        ];
        let mut a = vec![
            att("shop", Some("web-1"), "eth0", "n", &[]),
            att("shop", Some("db-1"), "eth0", "n", &[]),
            att("default", None, "eth0", "n", &[]),
        ];
        a[1].metadata.labels = Some([("stale".to_string(), "x".to_string())].into());
        join_labels(&mut a, &pods);
        assert_eq!(
            a[0].metadata.labels,
            Some([("app".to_string(), "web".to_string())].into())
        );
        assert_eq!(
            a[1].metadata.labels, None,
            "db-1 lives in another namespace"
        );
        assert_eq!(a[2].metadata.labels, None);
    }

    #[test]
    fn a_pod_gets_its_addresses_and_node() {
        let atts = [
            att("shop", Some("web-1"), "net1", "node-b", &["10.9.0.3/24"]),
            att(
                "shop",
                Some("web-1"),
                "eth0",
                "node-b",
                &["fd00::5/64", "10.244.1.5/24"],
            ),
            att("shop", Some("web-2"), "eth0", "node-a", &["10.244.0.9/24"]),
        ];
        let mut p = pod("shop", "web-1", &[]);
        join_pod(&mut p, &atts);
        let st = p.status.clone().unwrap();
        assert_eq!(st.pod_ip.as_deref(), Some("10.244.1.5"));
        let ips: Vec<String> = st.pod_ips.unwrap().into_iter().map(|i| i.ip).collect();
        assert_eq!(ips, ["10.244.1.5", "10.9.0.3", "fd00::5"]);
        assert_eq!(p.spec.unwrap().node_name.as_deref(), Some("node-b"));
        let mut placed = pod("shop", "web-2", &[]);
        placed.spec = Some(PodSpec {
            node_name: Some("node-z".into()),
            ..Default::default()
        });
        join_pod(&mut placed, &atts);
        assert_eq!(
            placed.spec.unwrap().node_name.as_deref(),
            Some("node-z"),
            "kept"
        );
        let mut alone = pod("shop", "web-3", &[]);
        join_pod(&mut alone, &atts);
        assert_eq!(alone.status, None);
    }
}
