//! The store's key layout, in one place.
//!
//! ```text
//! /ferro-cni/v1/<plural>/<name>                 cluster-scoped kinds  (/ferro-cni/v1/nodes/node-a)
//! /ferro-cni/v1/<plural>/<namespace>/<name>     namespaced kinds      (/ferro-cni/v1/pods/default/web-1)
//! /ferro-cni/v1/nodeleases/<node>               a node's liveness record, attached to its agent's lease
//! ```
//! Values are the JSON of the resource (the lease record: [`crate::NodeLease`]). IPAM blocks
//! are named after their CIDR with `/` written `-` (`/ferro-cni/v1/ipamblocks/10.244.0.0-26`).

use crate::Kind;

/// The root of every key.
pub const ROOT: &str = "/ferro-cni/v1/";

/// The prefix of every node lease record.
pub const NODE_LEASES: &str = "/ferro-cni/v1/nodeleases/";

/// The key of an object.
pub fn object(kind: Kind, namespace: Option<&str>, name: &str) -> String {
    match (kind.namespaced(), namespace) {
        (true, Some(ns)) => format!("{ROOT}{}/{ns}/{name}", kind.plural()),
        _ => format!("{ROOT}{}/{name}", kind.plural()),
    }
}

/// The prefix of every object of `kind` (in `namespace` when given and the kind is
/// namespaced).
pub fn prefix(kind: Kind, namespace: Option<&str>) -> String {
    match (kind.namespaced(), namespace) {
        (true, Some(ns)) => format!("{ROOT}{}/{ns}/", kind.plural()),
        _ => format!("{ROOT}{}/", kind.plural()),
    }
}

/// The kind whose objects live under `key`'s first segment below the root (`None` outside
/// the root or for segments of no kind, such as lease records).
pub fn kind_of(key: &str) -> Option<Kind> {
    let plural = key.strip_prefix(ROOT)?.split('/').next()?;
    crate::ALL_KINDS
        .iter()
        .find(|k| k.plural() == plural)
        .copied()
}

/// What an object key names: its kind, namespace (namespaced kinds) and name; `None` for
/// keys that are not an object's (lease records, announcements, anything outside the root).
pub fn parse(key: &str) -> Option<(Kind, Option<&str>, &str)> {
    let kind = kind_of(key)?;
    let rest = key.strip_prefix(ROOT)?.split_once('/')?.1;
    match rest.split_once('/') {
        Some((ns, name)) if kind.namespaced() => Some((kind, Some(ns), name)),
        None if !kind.namespaced() => Some((kind, None, rest)),
        _ => None,
    }
}

/// The key of node `name`'s lease record.
pub fn node_lease(name: &str) -> String {
    format!("{NODE_LEASES}{name}")
}

/// The name of the IPAM block holding `cidr` (`10.244.0.0/26` -> `10.244.0.0-26`).
pub fn block_name(cidr: &ipnet::IpNet) -> String {
    format!("{}-{}", cidr.network(), cidr.prefix_len()).replace(':', "-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_back_into_what_they_name() {
        for (kind, ns, name) in [
            (Kind::Pod, Some("default"), "web-1"),
            (Kind::Node, None, "node-a"),
            (Kind::NetworkPolicy, Some("x"), "deny"),
        ] {
            let k = object(kind, ns, name);
            assert_eq!(parse(&k), Some((kind, ns, name)), "{k}");
            assert_eq!(kind_of(&k), Some(kind));
        }
        assert_eq!(parse(&node_lease("node-a")), None);
        assert_eq!(parse("/ferro-cni/v1/pods/no-namespace"), None);
        assert_eq!(parse("/elsewhere/pods/x/y"), None);
    }

    #[test]
    fn the_layout_of_the_design() {
        assert_eq!(
            object(Kind::Pod, Some("default"), "web-1"),
            "/ferro-cni/v1/pods/default/web-1"
        );
        assert_eq!(
            object(Kind::Node, None, "node-a"),
            "/ferro-cni/v1/nodes/node-a"
        );
        assert_eq!(
            object(Kind::Namespace, Some("ignored"), "x"),
            "/ferro-cni/v1/namespaces/x"
        );
        assert_eq!(
            prefix(Kind::Service, Some("a")),
            "/ferro-cni/v1/services/a/"
        );
        assert_eq!(prefix(Kind::Service, None), "/ferro-cni/v1/services/");
        assert_eq!(node_lease("node-a"), "/ferro-cni/v1/nodeleases/node-a");
        assert_eq!(
            block_name(&"10.244.0.0/26".parse().unwrap()),
            "10.244.0.0-26"
        );
        assert_eq!(
            block_name(&"fd00:244::/122".parse().unwrap()),
            "fd00-244---122"
        );
    }
}
