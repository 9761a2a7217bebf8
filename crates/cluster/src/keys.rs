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
