//! `cnictl plan`: address planning for the three models, pure arithmetic.
//!
//! How each model spends addresses (AKS networking docs; datapath-anchors.md §1.4, §1.6, §2):
//! - **flat** (Azure CNI): every node reserves `maxPods` VNet addresses up front, plus its own:
//!   `(nodes + surge) × (maxPods + 1)` addresses of the VNet subnet.
//! - **kubenet**: one VNet address per node; one pod-CIDR slice per node; one route per node in
//!   the VNet's route table (Azure route tables hold at most 400 routes).
//! - **overlay**: one VNet address per node; one pod-CIDR slice (a /24 on Azure) per node.
//! - **flat-pool** (flat with `cluster-ipam`): VNet addresses come from one pool shared by
//!   the cluster, in blocks (`--block-prefix`, /28 by default) a node claims as its pods come
//!   and gives back as they go: each node spends its own address and the blocks its pods
//!   fill (at least one), nothing for pods it does not run; a surge node starts with one.
//!   With `--pods` (the pods the cluster runs; default every node at maxPods) the figure is
//!   what the cluster really consumes.
//!
//! Azure reserves five addresses of every subnet (network, gateway, two DNS, broadcast).
//! `surge` extra nodes exist during upgrades and must fit too.

use ipnet::Ipv4Net;
use serde::Serialize;

/// Addresses Azure reserves in every subnet.
pub const AZURE_RESERVED: u64 = 5;
/// Routes an Azure route table holds (kubenet programs one per node).
pub const ROUTE_TABLE_LIMIT: u64 = 400;
/// The most pods per node AKS allows under each model.
pub const MAX_PODS_LIMIT: u64 = 250;

/// The question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// Nodes in steady state.
    pub nodes: u64,
    /// Pods per node.
    pub max_pods: u64,
    /// The VNet subnet the nodes live in.
    pub vnet: Ipv4Net,
    /// The pod CIDR (kubenet and overlay).
    pub pod_cidr: Option<Ipv4Net>,
    /// Prefix length of each node's pod slice.
    pub slice_prefix: u8,
    /// Extra nodes during upgrades.
    pub surge: u64,
    /// Pods the cluster runs (flat-pool; `None`: every node at `max_pods`).
    pub pods: Option<u64>,
    /// Prefix length of the pool's blocks (flat-pool).
    pub block_prefix: u8,
}

/// One model's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelPlan {
    /// `flat`, `kubenet` or `overlay`.
    pub model: &'static str,
    /// VNet subnet addresses the cluster consumes (surge included).
    pub vnet_addresses_used: u64,
    /// Usable addresses of the VNet subnet.
    pub vnet_addresses_usable: u64,
    /// Pod-CIDR slices needed (surge included), for kubenet and overlay.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_slices_used: Option<u64>,
    /// Pod-CIDR slices available.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_slices_available: Option<u64>,
    /// Whether the cluster fits.
    pub fits: bool,
    /// The most steady-state nodes that fit (leaving room for the surge).
    pub max_nodes: u64,
    /// What runs out first.
    pub limited_by: String,
    /// Other problems (pods per node beyond a slice or beyond AKS's limit).
    pub problems: Vec<String>,
}

fn size(net: Ipv4Net) -> u64 {
    1u64 << (32 - u32::from(net.prefix_len()))
}

fn usable(net: Ipv4Net) -> u64 {
    size(net).saturating_sub(AZURE_RESERVED)
}

/// Validates the input; messages name the flag.
pub fn validate(i: &Input) -> Result<(), String> {
    if i.nodes == 0 {
        return Err("--nodes: must be at least 1".into());
    }
    if i.max_pods == 0 {
        return Err("--max-pods: must be at least 1".into());
    }
    if i.vnet.prefix_len() > 29 {
        return Err(format!(
            "--vnet: {} is smaller than Azure's smallest subnet (/29)",
            i.vnet
        ));
    }
    if i.pods == Some(0) {
        return Err("--pods: must be at least 1".into());
    }
    if i.block_prefix < i.vnet.prefix_len() || i.block_prefix > 32 {
        return Err(format!(
            "--block-prefix: /{} must be between /{} (the VNet subnet) and /32",
            i.block_prefix,
            i.vnet.prefix_len()
        ));
    }
    if let Some(p) = i.pod_cidr {
        if i.slice_prefix < p.prefix_len() || i.slice_prefix > 30 {
            return Err(format!(
                "--slice-prefix: /{} must be between /{} (the pod CIDR) and /30",
                i.slice_prefix,
                p.prefix_len()
            ));
        }
        if p.contains(&i.vnet.network()) || i.vnet.contains(&p.network()) {
            return Err(format!(
                "--pod-cidr: {p} overlaps the VNet subnet {}",
                i.vnet
            ));
        }
    }
    Ok(())
}

fn pick_limit(limits: &[(u64, String)]) -> (u64, String) {
    limits
        .iter()
        .min_by_key(|(n, _)| *n)
        .cloned()
        .unwrap_or((0, "nothing".into()))
}

/// The flat model.
pub fn flat(i: &Input) -> ModelPlan {
    let per_node = i.max_pods + 1;
    let total = i.nodes + i.surge;
    let used = total * per_node;
    let capacity = usable(i.vnet) / per_node;
    let mut problems = Vec::new();
    if i.max_pods > MAX_PODS_LIMIT {
        problems.push(format!(
            "maxPods {} is above AKS's limit of {MAX_PODS_LIMIT}",
            i.max_pods
        ));
    }
    ModelPlan {
        model: "flat",
        vnet_addresses_used: used,
        vnet_addresses_usable: usable(i.vnet),
        pod_slices_used: None,
        pod_slices_available: None,
        fits: used <= usable(i.vnet) && problems.is_empty(),
        max_nodes: capacity.saturating_sub(i.surge),
        limited_by: format!("VNet subnet addresses ({per_node} per node: maxPods + the node)"),
        problems,
    }
}

/// Flat with a shared pool (`cluster-ipam`).
pub fn flat_pool(i: &Input) -> ModelPlan {
    let block = 1u64 << (32 - u32::from(i.block_prefix));
    let pods = i.pods.unwrap_or(i.nodes * i.max_pods);
    let per_node = pods.div_ceil(i.nodes).min(i.max_pods);
    let blocks_per_node = per_node.div_ceil(block).max(1);
    let node_cost = 1 + blocks_per_node * block;
    let surge_cost = 1 + block;
    let used = i.nodes * node_cost + i.surge * surge_cost;
    let room = usable(i.vnet).saturating_sub(i.surge * surge_cost);
    let mut problems = Vec::new();
    if i.max_pods > MAX_PODS_LIMIT {
        problems.push(format!(
            "maxPods {} is above AKS's limit of {MAX_PODS_LIMIT}",
            i.max_pods
        ));
    }
    if pods > i.nodes * i.max_pods {
        problems.push(format!(
            "{pods} pods do not fit {} nodes of maxPods {}",
            i.nodes, i.max_pods
        ));
    }
    ModelPlan {
        model: "flat-pool",
        vnet_addresses_used: used,
        vnet_addresses_usable: usable(i.vnet),
        pod_slices_used: None,
        pod_slices_available: None,
        fits: used <= usable(i.vnet) && problems.is_empty(),
        max_nodes: room / node_cost,
        limited_by: format!(
            "VNet subnet addresses (per node: itself + {blocks_per_node} /{} block{} for {per_node} pods)",
            i.block_prefix,
            if blocks_per_node == 1 { "" } else { "s" }
        ),
        problems,
    }
}

fn sliced(i: &Input, model: &'static str, route_table: bool) -> ModelPlan {
    let total = i.nodes + i.surge;
    let mut problems = Vec::new();
    let (slices, per_slice) = match i.pod_cidr {
        Some(p) => (
            1u64 << (u32::from(i.slice_prefix) - u32::from(p.prefix_len())),
            (1u64 << (32 - u32::from(i.slice_prefix))).saturating_sub(3),
        ),
        None => {
            problems.push("--pod-cidr is needed for this model".into());
            (0, 0)
        }
    };
    if i.pod_cidr.is_some() && i.max_pods > per_slice {
        problems.push(format!(
            "maxPods {} does not fit a /{} slice ({per_slice} pod addresses)",
            i.max_pods, i.slice_prefix
        ));
    }
    if i.max_pods > MAX_PODS_LIMIT {
        problems.push(format!(
            "maxPods {} is above AKS's limit of {MAX_PODS_LIMIT}",
            i.max_pods
        ));
    }
    let mut limits = vec![
        (
            usable(i.vnet),
            "VNet subnet addresses (one per node)".to_string(),
        ),
        (
            slices,
            format!("pod CIDR slices ({slices} × /{})", i.slice_prefix),
        ),
    ];
    if route_table {
        limits.push((
            ROUTE_TABLE_LIMIT,
            format!("the Azure route table ({ROUTE_TABLE_LIMIT} routes, one per node)"),
        ));
    }
    let (capacity, limited_by) = pick_limit(&limits);
    ModelPlan {
        model,
        vnet_addresses_used: total,
        vnet_addresses_usable: usable(i.vnet),
        pod_slices_used: Some(total),
        pod_slices_available: Some(slices),
        fits: total <= capacity && problems.is_empty(),
        max_nodes: capacity.saturating_sub(i.surge),
        limited_by,
        problems,
    }
}

/// The kubenet model.
pub fn kubenet(i: &Input) -> ModelPlan {
    sliced(i, "kubenet", true)
}

/// The overlay model.
pub fn overlay(i: &Input) -> ModelPlan {
    sliced(i, "overlay", false)
}

/// Plain text for people.
pub fn render(i: &Input, plans: &[ModelPlan]) -> String {
    let mut s = format!(
        "{} nodes (+{} surge), {} pods per node\nVNet subnet {}: {} usable addresses (Azure reserves {AZURE_RESERVED})\n",
        i.nodes,
        i.surge,
        i.max_pods,
        i.vnet,
        usable(i.vnet)
    );
    if let Some(p) = i.pod_cidr {
        s.push_str(&format!("pod CIDR {p}: /{} per node\n", i.slice_prefix));
    }
    if plans.iter().any(|p| p.model == "flat-pool") {
        s.push_str(&format!(
            "flat-pool: {} pods, /{} blocks from a shared pool\n",
            i.pods.unwrap_or(i.nodes * i.max_pods),
            i.block_prefix
        ));
    }
    s.push_str(&format!(
        "\n{:<9} {:>15} {:>5} {:>10}  {}\n",
        "model", "VNet addrs used", "fits", "max nodes", "runs out first"
    ));
    for p in plans {
        s.push_str(&format!(
            "{:<9} {:>15} {:>5} {:>10}  {}\n",
            p.model,
            p.vnet_addresses_used,
            if p.fits { "yes" } else { "NO" },
            p.max_nodes,
            p.limited_by
        ));
        for problem in &p.problems {
            s.push_str(&format!("{:<9} {problem}\n", ""));
        }
    }
    let used = |m: &str| {
        plans
            .iter()
            .find(|p| p.model == m)
            .map(|p| p.vnet_addresses_used)
    };
    if let (Some(reserved), Some(pooled)) = (used("flat"), used("flat-pool")) {
        let (word, d) = if pooled <= reserved {
            ("fewer", reserved - pooled)
        } else {
            ("more", pooled - reserved)
        };
        s.push_str(&format!(
            "\nflat with cluster-ipam spends {d} {word} VNet addresses than flat with per-node ranges ({pooled} against {reserved})\n"
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(nodes: u64, max_pods: u64, vnet: &str, pod: Option<&str>) -> Input {
        Input {
            nodes,
            max_pods,
            vnet: vnet.parse().unwrap(),
            pod_cidr: pod.map(|p| p.parse().unwrap()),
            slice_prefix: 24,
            surge: 1,
            pods: None,
            block_prefix: 28,
        }
    }

    #[test]
    fn a_shared_pool_spends_what_the_pods_use() {
        // 50 nodes (+1 surge), maxPods 30, 10 pods per node on average, /28 blocks
        let mut i = input(50, 30, "10.240.0.0/16", None);
        i.pods = Some(500);
        let p = flat_pool(&i);
        assert_eq!(p.vnet_addresses_used, 50 * (1 + 16) + (1 + 16));
        assert_eq!(flat(&i).vnet_addresses_used, 51 * 31);
        assert!(
            p.limited_by.contains("1 /28 block for 10 pods"),
            "{}",
            p.limited_by
        );
        // every node full: 2 blocks each, a little more than reserving maxPods
        i.pods = None;
        let p = flat_pool(&i);
        assert_eq!(p.vnet_addresses_used, 50 * (1 + 32) + 17);
        let t = render(&i, &[flat(&i), flat_pool(&i)]);
        assert!(t.contains("flat with cluster-ipam spends 86 more VNet addresses than flat with per-node ranges (1667 against 1581)"), "{t}");
        i.pods = Some(200);
        let t = render(&i, &[flat(&i), flat_pool(&i)]);
        assert!(t.contains("spends 714 fewer"), "{t}");
        i.pods = Some(2000);
        assert!(!flat_pool(&i).fits);
        i.block_prefix = 12;
        assert!(validate(&i).unwrap_err().starts_with("--block-prefix: /12"));
    }

    #[test]
    fn flat_spends_max_pods_plus_one_per_node() {
        // /24: 256 - 5 = 251 usable; 31 per node; 50+1 nodes need 1581.
        let p = flat(&input(50, 30, "10.240.0.0/24", None));
        assert_eq!(
            (p.vnet_addresses_used, p.vnet_addresses_usable),
            (1581, 251)
        );
        assert!(!p.fits);
        assert_eq!(
            p.max_nodes, 7,
            "251 / 31 = 8 nodes, one of them kept for the surge"
        );
        // the AKS example: maxPods 30 in a /24 holds about 8 nodes
        let p = flat(&input(7, 30, "10.240.0.0/24", None));
        assert!(p.fits);
        assert_eq!(p.vnet_addresses_used, 248);
        // /16: 65531 usable, 31 per node -> 2113 nodes, 2112 with the surge
        assert_eq!(flat(&input(50, 30, "10.240.0.0/16", None)).max_nodes, 2112);
    }

    #[test]
    fn kubenet_runs_out_of_slices_or_routes() {
        // /16 pod CIDR, /24 slices: 256 slices; route table 400; VNet /16 65531
        let p = kubenet(&input(100, 110, "10.240.0.0/16", Some("10.244.0.0/16")));
        assert_eq!(
            (
                p.vnet_addresses_used,
                p.pod_slices_used,
                p.pod_slices_available
            ),
            (101, Some(101), Some(256))
        );
        assert!(p.fits);
        assert_eq!(p.max_nodes, 255);
        assert!(p.limited_by.starts_with("pod CIDR slices"));
        // a /12 pod CIDR has 4096 slices: the route table (400) runs out first
        let p = kubenet(&input(100, 110, "10.240.0.0/16", Some("10.128.0.0/12")));
        assert_eq!(p.max_nodes, 399);
        assert!(p.limited_by.contains("route table"));
        // a /27 VNet subnet: 27 usable addresses run out first
        let p = kubenet(&input(30, 110, "10.240.0.0/27", Some("10.244.0.0/16")));
        assert_eq!((p.max_nodes, p.fits), (26, false));
        assert!(p.limited_by.starts_with("VNet subnet"));
    }

    #[test]
    fn overlay_has_no_route_table_limit() {
        let p = overlay(&input(1000, 250, "10.240.0.0/16", Some("10.128.0.0/12")));
        assert_eq!(
            (p.vnet_addresses_used, p.max_nodes, p.fits),
            (1001, 4095, true)
        );
        assert!(p.limited_by.starts_with("pod CIDR slices (4096"));
    }

    #[test]
    fn pods_per_node_must_fit_the_slice_and_aks() {
        let mut i = input(10, 300, "10.240.0.0/16", Some("10.244.0.0/16"));
        let p = overlay(&i);
        assert!(!p.fits);
        assert_eq!(p.problems.len(), 2, "{:?}", p.problems);
        i.max_pods = 126;
        i.slice_prefix = 25;
        let p = overlay(&i);
        assert!(
            p.problems[0].contains("/25 slice (125 pod addresses)"),
            "{:?}",
            p.problems
        );
        assert!(
            !kubenet(&input(1, 10, "10.240.0.0/16", None)).fits,
            "pod CIDR required"
        );
    }

    #[test]
    fn input_errors_name_the_flag() {
        assert!(validate(&input(0, 30, "10.240.0.0/16", None))
            .unwrap_err()
            .contains("--nodes"));
        assert!(validate(&input(1, 30, "10.240.0.0/30", None))
            .unwrap_err()
            .contains("--vnet"));
        assert!(
            validate(&input(1, 30, "10.240.0.0/16", Some("10.240.0.0/12")))
                .unwrap_err()
                .contains("overlaps")
        );
        let mut i = input(1, 30, "10.240.0.0/16", Some("10.244.0.0/16"));
        i.slice_prefix = 12;
        assert!(validate(&i).unwrap_err().contains("--slice-prefix"));
    }

    #[test]
    fn text_and_json_name_every_model() {
        let i = input(50, 30, "10.240.0.0/16", Some("10.244.0.0/16"));
        let plans = [flat(&i), kubenet(&i), overlay(&i)];
        let t = render(&i, &plans);
        assert!(
            t.contains("flat")
                && t.contains("kubenet")
                && t.contains("overlay")
                && t.contains("65531 usable")
        );
        let j = serde_json::to_value(&plans).unwrap();
        assert_eq!(j[0]["vnetAddressesUsed"], 1581);
        assert_eq!(j[1]["podSlicesAvailable"], 256);
    }
}
