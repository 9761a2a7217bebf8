//! `cnictl plan`: address planning for the three models, pure arithmetic, in one or both
//! address families.
//!
//! How each model spends addresses (AKS networking docs):
//! - **flat** (Azure CNI): every node reserves `maxPods` VNet addresses up front, plus its own:
//!   `(nodes + surge) × (maxPods + 1)` addresses of the VNet subnet, in each of its families.
//! - **kubenet**: one VNet address per node; one pod-CIDR slice per node and pod family; one
//!   route per node and pod family in the VNet's route table (Azure route tables hold at most
//!   400 routes, so a dual-stack cluster fits half as many nodes).
//! - **overlay**: one VNet address per node; one pod-CIDR slice (a /24 on Azure) per node and
//!   pod family.
//! - **flat-pool** (flat with `cluster-ipam`): VNet addresses come from one pool shared by
//!   the cluster, in blocks (`--block-prefix`, /28 by default; the same number of addresses
//!   in IPv6) a node claims as its pods come and gives back as they go: each node spends its
//!   own address and the blocks its pods fill (at least one), nothing for pods it does not
//!   run; a surge node starts with one. With `--pods` (the pods the cluster runs; default
//!   every node at maxPods) the figure is what the cluster really consumes.
//!
//! Azure reserves five addresses of every subnet (network, gateway, two DNS, broadcast).
//! `surge` extra nodes exist during upgrades and must fit too. A dual-stack cluster fits
//! when it fits in every family; the figures reported for the whole cluster are those of
//! the family that runs out first, and `families` has each family's.

use ferro_net::overlay::{family_name, FamilyNets};
use ipnet::IpNet;
use serde::Serialize;

/// Addresses Azure reserves in every subnet.
pub const AZURE_RESERVED: u64 = 5;
/// Routes an Azure route table holds (kubenet programs one per node and pod family).
pub const ROUTE_TABLE_LIMIT: u64 = 400;
/// The most pods per node AKS allows under each model.
pub const MAX_PODS_LIMIT: u64 = 250;
/// The default prefix length of a node's IPv6 slice (Kubernetes' node CIDR mask for IPv6).
pub const SLICE_PREFIX_V6: u8 = 64;

/// The question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// Nodes in steady state.
    pub nodes: u64,
    /// Pods per node.
    pub max_pods: u64,
    /// The VNet subnet the nodes live in, one per family.
    pub vnet: FamilyNets,
    /// The pod CIDRs (kubenet and overlay), one per family.
    pub pod_cidrs: FamilyNets,
    /// Prefix length of each node's IPv4 pod slice.
    pub slice_prefix: u8,
    /// Prefix length of each node's IPv6 pod slice.
    pub slice_prefix_v6: u8,
    /// Extra nodes during upgrades.
    pub surge: u64,
    /// Pods the cluster runs (flat-pool; `None`: every node at `max_pods`).
    pub pods: Option<u64>,
    /// Prefix length of the pool's IPv4 blocks (flat-pool; IPv6 blocks hold as many
    /// addresses).
    pub block_prefix: u8,
}

impl Input {
    fn slice_prefix_of(&self, v6: bool) -> u8 {
        if v6 {
            self.slice_prefix_v6
        } else {
            self.slice_prefix
        }
    }

    /// Both families appear in the VNet or the pod CIDRs: limits then name their family.
    fn dual(&self) -> bool {
        let (v4, v6) = self.vnet.families();
        let (p4, p6) = self.pod_cidrs.families();
        (v4 || p4) && (v6 || p6)
    }

    fn label(&self, v6: bool, what: &str) -> String {
        if self.dual() {
            format!("{} {what}", family_name(v6))
        } else {
            what.to_string()
        }
    }
}

/// One family of a model's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FamilyPlan {
    /// `IPv4` or `IPv6`.
    pub family: &'static str,
    /// Usable addresses of the VNet subnet of this family, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vnet_addresses_usable: Option<u64>,
    /// Pod-CIDR slices of this family available (kubenet and overlay).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_slices_available: Option<u64>,
    /// Pod addresses in one slice of this family (kubenet and overlay).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_addresses_per_slice: Option<u64>,
}

/// One model's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelPlan {
    /// `flat`, `kubenet` or `overlay`.
    pub model: &'static str,
    /// VNet subnet addresses the cluster consumes (surge included), in each VNet family.
    pub vnet_addresses_used: u64,
    /// Usable addresses of the VNet subnet (of the family with fewer).
    pub vnet_addresses_usable: u64,
    /// Pod-CIDR slices needed (surge included) in each pod family, for kubenet and overlay.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_slices_used: Option<u64>,
    /// Pod-CIDR slices available (of the family with fewer).
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
    /// Each family's figures, IPv4 first.
    pub families: Vec<FamilyPlan>,
}

/// 2^bits, saturating (IPv6 sizes exceed u64).
fn pow2(bits: u32) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        1u64 << bits
    }
}

/// The addresses of a block of `bits` host bits less `reserved`; `u64::MAX` (more than
/// counts) for 64 bits and more.
fn addresses(bits: u32, reserved: u64) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        pow2(bits).saturating_sub(reserved)
    }
}

fn host_bits(net: IpNet) -> u32 {
    u32::from(net.max_prefix_len() - net.prefix_len())
}

fn usable(net: IpNet) -> u64 {
    addresses(host_bits(net), AZURE_RESERVED)
}

/// Validates the input; messages name the flag.
pub fn validate(i: &Input) -> Result<(), String> {
    if i.nodes == 0 {
        return Err("--nodes: must be at least 1".into());
    }
    if i.max_pods == 0 {
        return Err("--max-pods: must be at least 1".into());
    }
    if i.vnet.is_empty() {
        return Err("--vnet is required".into());
    }
    for v in i.vnet.iter() {
        // Azure's smallest IPv4 subnet is a /29; the same eight addresses in IPv6
        if host_bits(v) < 3 {
            return Err(format!(
                "--vnet: {v} is smaller than Azure's smallest subnet (8 addresses, /29)"
            ));
        }
    }
    if i.pods == Some(0) {
        return Err("--pods: must be at least 1".into());
    }
    let block_bits = 32u32.saturating_sub(u32::from(i.block_prefix));
    if i.block_prefix > 32 || i.vnet.iter().any(|v| block_bits > host_bits(v)) {
        let smallest = i.vnet.iter().map(host_bits).min().unwrap_or(32);
        return Err(format!(
            "--block-prefix: /{} must be between /{} (the VNet subnet's size) and /32",
            i.block_prefix,
            32 - smallest.min(32)
        ));
    }
    for p in i.pod_cidrs.iter() {
        let v6 = p.addr().is_ipv6();
        let (flag, slice) = if v6 {
            ("--slice-prefix-v6", i.slice_prefix_v6)
        } else {
            ("--slice-prefix", i.slice_prefix)
        };
        let most = p.max_prefix_len() - 2;
        if slice < p.prefix_len() || slice > most {
            return Err(format!(
                "{flag}: /{slice} must be between /{} (the {} pod CIDR) and /{most}",
                p.prefix_len(),
                family_name(v6)
            ));
        }
        if let Some(v) = i.vnet.of(p.addr()) {
            if p.contains(&v.network()) || v.contains(&p.network()) {
                return Err(format!("--pod-cidr: {p} overlaps the VNet subnet {v}"));
            }
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

fn aks_limit(i: &Input, problems: &mut Vec<String>) {
    if i.max_pods > MAX_PODS_LIMIT {
        problems.push(format!(
            "maxPods {} is above AKS's limit of {MAX_PODS_LIMIT}",
            i.max_pods
        ));
    }
}

/// The flat model.
pub fn flat(i: &Input) -> ModelPlan {
    let per_node = i.max_pods + 1;
    let total = i.nodes + i.surge;
    let used = total.saturating_mul(per_node);
    let mut problems = Vec::new();
    aks_limit(i, &mut problems);
    let limits: Vec<(u64, String)> = i
        .vnet
        .iter()
        .map(|v| {
            (
                usable(v) / per_node,
                i.label(
                    v.addr().is_ipv6(),
                    &format!("VNet subnet addresses ({per_node} per node: maxPods + the node)"),
                ),
            )
        })
        .collect();
    vnet_only(i, "flat", used, &limits, problems)
}

/// A model that spends only VNet addresses (`flat`, `flat-pool`): `used` of them, the most
/// nodes each VNet family holds in `limits`.
fn vnet_only(
    i: &Input,
    model: &'static str,
    used: u64,
    limits: &[(u64, String)],
    problems: Vec<String>,
) -> ModelPlan {
    let (capacity, limited_by) = pick_limit(limits);
    let vnet_usable = i.vnet.iter().map(usable).min().unwrap_or(0);
    ModelPlan {
        model,
        vnet_addresses_used: used,
        vnet_addresses_usable: vnet_usable,
        pod_slices_used: None,
        pod_slices_available: None,
        fits: used <= vnet_usable && problems.is_empty(),
        max_nodes: capacity.saturating_sub(i.surge),
        limited_by,
        problems,
        families: [false, true]
            .into_iter()
            .filter_map(|v6| {
                let v = i.vnet.get(v6)?;
                Some(FamilyPlan {
                    family: family_name(v6),
                    vnet_addresses_usable: Some(usable(v)),
                    pod_slices_available: None,
                    pod_addresses_per_slice: None,
                })
            })
            .collect(),
    }
}

/// Flat with a shared pool (`cluster-ipam`).
pub fn flat_pool(i: &Input) -> ModelPlan {
    let block = pow2(32u32.saturating_sub(u32::from(i.block_prefix)));
    let pods = i.pods.unwrap_or(i.nodes * i.max_pods);
    let per_node = pods.div_ceil(i.nodes).min(i.max_pods);
    let blocks_per_node = per_node.div_ceil(block).max(1);
    let node_cost = 1 + blocks_per_node * block;
    let surge_cost = 1 + block;
    let used = i.nodes * node_cost + i.surge * surge_cost;
    let mut problems = Vec::new();
    aks_limit(i, &mut problems);
    if pods > i.nodes * i.max_pods {
        problems.push(format!(
            "{pods} pods do not fit {} nodes of maxPods {}",
            i.nodes, i.max_pods
        ));
    }
    let what = format!(
        "VNet subnet addresses (per node: itself + {blocks_per_node} block{} of {block} for {per_node} pods)",
        if blocks_per_node == 1 { "" } else { "s" }
    );
    let limits: Vec<(u64, String)> = i
        .vnet
        .iter()
        .map(|v| {
            let room = usable(v).saturating_sub(i.surge * surge_cost);
            (
                room / node_cost + i.surge,
                i.label(v.addr().is_ipv6(), &what),
            )
        })
        .collect();
    vnet_only(i, "flat-pool", used, &limits, problems)
}

fn sliced(i: &Input, model: &'static str, route_table: bool) -> ModelPlan {
    let total = i.nodes + i.surge;
    let mut problems = Vec::new();
    if i.pod_cidrs.is_empty() {
        problems.push("--pod-cidr is needed for this model".into());
    }
    let mut families = Vec::new();
    let mut limits: Vec<(u64, String)> = i
        .vnet
        .iter()
        .map(|v| {
            (
                usable(v),
                i.label(v.addr().is_ipv6(), "VNet subnet addresses (one per node)"),
            )
        })
        .collect();
    for v6 in [false, true] {
        let vnet = i.vnet.get(v6).map(usable);
        let (slices, per_slice) = match i.pod_cidrs.get(v6) {
            Some(p) => {
                let prefix = i.slice_prefix_of(v6);
                let slices = pow2(u32::from(prefix - p.prefix_len()));
                // network, gateway and (IPv4) broadcast are no pod's
                let reserved = if v6 { 2 } else { 3 };
                let per_slice = addresses(u32::from(p.max_prefix_len() - prefix), reserved);
                if i.max_pods > per_slice {
                    problems.push(format!(
                        "maxPods {} does not fit a{} /{prefix} slice ({per_slice} pod addresses)",
                        i.max_pods,
                        if i.dual() {
                            format!("n {}", family_name(v6))
                        } else {
                            String::new()
                        }
                    ));
                }
                limits.push((
                    slices,
                    i.label(v6, &format!("pod CIDR slices ({slices} × /{prefix})")),
                ));
                (Some(slices), Some(per_slice))
            }
            None => (None, None),
        };
        if vnet.is_some() || slices.is_some() {
            families.push(FamilyPlan {
                family: family_name(v6),
                vnet_addresses_usable: vnet,
                pod_slices_available: slices,
                pod_addresses_per_slice: per_slice,
            });
        }
    }
    if i.pod_cidrs.is_empty() {
        limits.push((0, "pod CIDR slices (no pod CIDR)".into()));
    }
    aks_limit(i, &mut problems);
    if route_table {
        let per_node = i.pod_cidrs.iter().count().max(1) as u64;
        limits.push((
            ROUTE_TABLE_LIMIT / per_node,
            if per_node > 1 {
                format!(
                    "the Azure route table ({ROUTE_TABLE_LIMIT} routes, one per node and pod family)"
                )
            } else {
                format!("the Azure route table ({ROUTE_TABLE_LIMIT} routes, one per node)")
            },
        ));
    }
    let (capacity, limited_by) = pick_limit(&limits);
    ModelPlan {
        model,
        vnet_addresses_used: total,
        vnet_addresses_usable: i.vnet.iter().map(usable).min().unwrap_or(0),
        pod_slices_used: Some(total),
        pod_slices_available: Some(
            families
                .iter()
                .filter_map(|f| f.pod_slices_available)
                .min()
                .unwrap_or(0),
        ),
        fits: total <= capacity && problems.is_empty(),
        max_nodes: capacity.saturating_sub(i.surge),
        limited_by,
        problems,
        families,
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
        "{} nodes (+{} surge), {} pods per node\n",
        i.nodes, i.surge, i.max_pods,
    );
    for v in i.vnet.iter() {
        let n = usable(v);
        let n = if n == u64::MAX {
            "2^64 or more".to_string()
        } else {
            n.to_string()
        };
        s.push_str(&format!(
            "VNet subnet {v}: {n} usable addresses (Azure reserves {AZURE_RESERVED})\n"
        ));
    }
    for p in i.pod_cidrs.iter() {
        s.push_str(&format!(
            "pod CIDR {p}: /{} per node\n",
            i.slice_prefix_of(p.addr().is_ipv6())
        ));
    }
    if plans.iter().any(|p| p.model == "flat-pool") {
        s.push_str(&format!(
            "flat-pool: {} pods, blocks of {} addresses from a shared pool\n",
            i.pods.unwrap_or(i.nodes * i.max_pods),
            pow2(32u32.saturating_sub(u32::from(i.block_prefix)))
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

    fn nets(list: &[&str]) -> FamilyNets {
        FamilyNets::new(&list.iter().map(|n| n.parse().unwrap()).collect::<Vec<_>>()).unwrap()
    }

    fn input(nodes: u64, max_pods: u64, vnet: &str, pod: Option<&str>) -> Input {
        Input {
            nodes,
            max_pods,
            vnet: nets(&[vnet]),
            pod_cidrs: nets(&pod.into_iter().collect::<Vec<_>>()),
            slice_prefix: 24,
            slice_prefix_v6: SLICE_PREFIX_V6,
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
            p.limited_by.contains("1 block of 16 for 10 pods"),
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
        // dual stack: the IPv4 subnet runs out first
        let mut d = dual(50, 30);
        d.pods = Some(500);
        let p = flat_pool(&d);
        assert!(
            p.fits && p.limited_by.starts_with("IPv4 VNet subnet addresses"),
            "{}",
            p.limited_by
        );
    }

    fn dual(nodes: u64, max_pods: u64) -> Input {
        Input {
            vnet: nets(&["10.240.0.0/16", "fd00:240::/64"]),
            pod_cidrs: nets(&["10.244.0.0/16", "fd00:10:244::/56"]),
            ..input(nodes, max_pods, "10.240.0.0/16", None)
        }
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
    fn dual_stack_fits_when_every_family_fits() {
        // IPv6 /56 with /64 slices: 256 slices, as many as the IPv4 /16 with /24 slices
        let i = dual(100, 110);
        let p = overlay(&i);
        assert!(p.fits);
        assert_eq!((p.pod_slices_available, p.max_nodes), (Some(256), 255));
        assert_eq!(p.families.len(), 2);
        assert_eq!(p.families[1].family, "IPv6");
        assert_eq!(p.families[1].pod_slices_available, Some(256));
        assert_eq!(
            p.families[1].vnet_addresses_usable,
            Some(u64::MAX),
            "a /64 has more than a u64 counts"
        );
        // an IPv6 pod CIDR of /60 with /64 slices has 16: IPv6 runs out first
        let mut small6 = i.clone();
        small6.pod_cidrs = nets(&["10.244.0.0/16", "fd00:10:244::/60"]);
        let p = overlay(&small6);
        assert!(!p.fits);
        assert_eq!(p.max_nodes, 15);
        assert_eq!(p.limited_by, "IPv6 pod CIDR slices (16 × /64)");
        // kubenet: one route per node and family, 200 nodes
        let p = kubenet(&dual(250, 110));
        assert_eq!(p.max_nodes, 199);
        assert!(!p.fits);
        assert!(p.limited_by.contains("one per node and pod family"));
        // flat reserves in both VNet families; IPv4 runs out first
        let p = flat(&dual(50, 30));
        assert_eq!(p.vnet_addresses_usable, 65531);
        assert_eq!(
            p.limited_by,
            "IPv4 VNet subnet addresses (31 per node: maxPods + the node)"
        );
        let t = render(&i, &[p]);
        assert!(
            t.contains("VNet subnet fd00:240::/64: ")
                && t.contains("pod CIDR fd00:10:244::/56: /64 per node"),
            "{t}"
        );
    }

    #[test]
    fn ipv6_only_overlay() {
        let i = Input {
            vnet: nets(&["fd00:240::/64"]),
            pod_cidrs: nets(&["fd00:10:244::/56"]),
            ..input(10, 250, "10.240.0.0/16", None)
        };
        validate(&i).unwrap();
        let p = overlay(&i);
        assert!(p.fits, "{p:?}");
        assert_eq!(p.limited_by, "pod CIDR slices (256 × /64)");
        assert_eq!(p.families.len(), 1);
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
        let mut d = dual(1, 30);
        d.slice_prefix_v6 = 40;
        assert_eq!(
            validate(&d).unwrap_err(),
            "--slice-prefix-v6: /40 must be between /56 (the IPv6 pod CIDR) and /126"
        );
        let mut d = dual(1, 30);
        d.pod_cidrs = nets(&["10.244.0.0/16", "fd00:240::/56"]);
        assert!(validate(&d)
            .unwrap_err()
            .contains("overlaps the VNet subnet fd00:240::/64"));
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
        assert_eq!(j[2]["families"][0]["family"], "IPv4");
    }
}
