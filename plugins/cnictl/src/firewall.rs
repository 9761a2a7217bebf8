//! `cnictl firewall show|remove`: what the node's firewall holds of ferro-cni and of the
//! reference plugins (a node taken over from them), and the removal of everything of
//! ferro-cni (going back to the reference plugins). Runs in the calling process's network
//! namespace: run it on the node (or inside the node's namespace).
//!
//! The rendering is pure ([`render_text`], [`render_json`]); the reads and the removal go
//! through `ferro_net::firewall`.

use std::fmt::Write as _;

use ferro_net::firewall::node::{ours, remove_ours, OurState};
use ferro_net::firewall::{legacy_nat_tables, reference_state, RefAttachment};
use ferro_net::nft::{proto_name, NftSocket};
use serde_json::{json, Value};

use crate::error::Error;

/// Everything `show` reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeFirewall {
    /// The suite's table.
    pub ours: OurState,
    /// The reference plugins' attachments in `ip nat`/`ip6 nat`.
    pub reference: Vec<RefAttachment>,
    /// The reference's shared chains present (`ip nat CNI-HOSTPORT-DNAT`...).
    pub shared: Vec<String>,
    /// x_tables families with a `nat` table (legacy iptables), invisible through nf_tables.
    pub legacy_nat: Vec<&'static str>,
}

fn firewall_error(e: impl Into<ferro_spec::CniError>) -> Error {
    Error::cni(e.into())
}

fn socket() -> Result<NftSocket, Error> {
    NftSocket::open().map_err(|e| firewall_error(ferro_net::firewall::FirewallError::from(e)))
}

/// Reads the node's firewall.
pub fn read() -> Result<NodeFirewall, Error> {
    let mut sock = socket()?;
    let ours = ours(&mut sock).map_err(firewall_error)?;
    let (reference, shared) = reference_state(&mut sock).map_err(firewall_error)?;
    Ok(NodeFirewall {
        ours,
        reference,
        shared,
        legacy_nat: legacy_nat_tables(),
    })
}

fn ports_text(ports: impl Iterator<Item = (u8, u16)>) -> String {
    ports
        .map(|(p, n)| format!("{} {n}", proto_name(p)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `show` for people.
pub fn render_text(f: &NodeFirewall) -> String {
    let mut s = String::new();
    if f.ours.table {
        let _ = writeln!(
            s,
            "ferro-cni: table inet ferro_cni ({} chains and sets)",
            f.ours.objects
        );
        for p in &f.ours.pods {
            let _ = writeln!(
                s,
                "  masquerade  {} {} ({})",
                p.set,
                p.address,
                p.owner.as_deref().unwrap_or("no owner")
            );
        }
        for h in &f.ours.host_ports {
            let _ = writeln!(
                s,
                "  host ports  {} {}: {}",
                h.owner.as_deref().unwrap_or("no owner"),
                h.chain,
                ports_text(h.ports.iter().map(|p| (p.protocol, p.port)))
            );
        }
        if !f.ours.has_attachments() {
            s.push_str("  no pod has state in it\n");
        }
    } else {
        s.push_str("ferro-cni: nothing (no table inet ferro_cni)\n");
    }
    if f.reference.is_empty() && f.shared.is_empty() {
        s.push_str("reference plugins (iptables-nft): nothing\n");
    } else {
        s.push_str("reference plugins (iptables-nft):\n");
        for a in &f.reference {
            let addrs: Vec<String> = a.addresses.iter().map(|x| x.to_string()).collect();
            let _ = write!(s, "  {} {}/{}", a.table, a.network, a.container_id);
            if !addrs.is_empty() {
                let _ = write!(s, " {}", addrs.join(", "));
            }
            let chains: Vec<&str> = a.chains.iter().map(String::as_str).collect();
            let _ = write!(s, ": chains {}", chains.join(", "));
            if !a.host_ports.is_empty() {
                let _ = write!(
                    s,
                    "; host ports {}",
                    ports_text(a.host_ports.iter().copied())
                );
            }
            s.push('\n');
        }
        if !f.shared.is_empty() {
            let _ = writeln!(s, "  shared chains: {}", f.shared.join(", "));
        }
    }
    if !f.legacy_nat.is_empty() {
        let _ = writeln!(
            s,
            "legacy iptables (x_tables) holds a nat table ({}): ferro-cni cannot read or \
             remove rules there; check them with iptables-legacy-save -t nat",
            f.legacy_nat.join(", ")
        );
    }
    s
}

/// `show --json`.
pub fn render_json(f: &NodeFirewall) -> Value {
    let port = |p: u8, n: u16| json!({"protocol": proto_name(p), "port": n});
    json!({
        "ferroCni": {
            "table": f.ours.table,
            "objects": f.ours.objects,
            "pods": f.ours.pods.iter().map(|p| json!({
                "set": p.set, "address": p.address.to_string(), "owner": p.owner,
            })).collect::<Vec<_>>(),
            "hostPorts": f.ours.host_ports.iter().map(|h| json!({
                "chain": h.chain, "owner": h.owner,
                "ports": h.ports.iter().map(|p| {
                    let mut v = port(p.protocol, p.port);
                    if let Some(ip) = p.host_ip {
                        v["hostIP"] = json!(ip.to_string());
                    }
                    v
                }).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        },
        "reference": {
            "attachments": f.reference.iter().map(|a| json!({
                "table": a.table.to_string(),
                "network": a.network,
                "containerID": a.container_id,
                "addresses": a.addresses.iter().map(|x| x.to_string()).collect::<Vec<_>>(),
                "hostPorts": a.host_ports.iter().map(|(p, n)| port(*p, *n)).collect::<Vec<_>>(),
                "chains": a.chains,
            })).collect::<Vec<_>>(),
            "sharedChains": f.shared,
        },
        "legacyNat": f.legacy_nat,
    })
}

/// `remove`: deletes the suite's table. Refused (code 7 naming what is left) while pods
/// still have state in it, unless `force`. Returns what to print.
pub fn remove(force: bool) -> Result<String, Error> {
    let mut sock = socket()?;
    let state = ours(&mut sock).map_err(firewall_error)?;
    if !state.table {
        return Ok("nothing to remove: no table inet ferro_cni\n".into());
    }
    if state.has_attachments() && !force {
        return Err(Error::cni(ferro_spec::CniError::invalid_config(format!(
            "{} pod addresses and {} host-port attachments still have state in table inet \
             ferro_cni: delete those pods first, or use --force (they then lose their \
             masquerade and host ports)",
            state.pods.len(),
            state.host_ports.len()
        ))));
    }
    remove_ours(&mut sock).map_err(firewall_error)?;
    Ok(format!(
        "removed table inet ferro_cni ({} chains and sets{})\n",
        state.objects,
        if state.has_attachments() {
            format!(
                "; {} pod addresses and {} host-port attachments lost their state",
                state.pods.len(),
                state.host_ports.len()
            )
        } else {
            String::new()
        }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferro_net::firewall::node::MasqueradedPod;
    use ferro_net::firewall::{HostPortsOf, MappedPort};
    use ferro_net::nft::{Family, TableRef};

    fn sample() -> NodeFirewall {
        NodeFirewall {
            ours: OurState {
                table: true,
                objects: 9,
                pods: vec![MasqueradedPod {
                    set: "pods4-kbr".into(),
                    address: "10.244.0.5".parse().unwrap(),
                    owner: Some("ctr1/eth0".into()),
                }],
                host_ports: vec![HostPortsOf {
                    chain: "hp-0123456789abcdef".into(),
                    owner: Some("kbr/ctr1/eth0".into()),
                    ports: vec![MappedPort {
                        protocol: 6,
                        port: 8080,
                        host_ip: None,
                    }],
                }],
            },
            reference: vec![RefAttachment {
                table: TableRef::new(Family::Ip, "nat"),
                network: "kbr".into(),
                container_id: "ctrA".into(),
                chains: ["CNI-30b26f549b412d057b79f83d".to_string()].into(),
                addresses: vec!["10.99.0.2".parse().unwrap()],
                host_ports: vec![(17, 53)],
            }],
            shared: vec!["ip nat CNI-HOSTPORT-DNAT".into()],
            legacy_nat: vec!["iptables"],
        }
    }

    #[test]
    fn show_names_every_attachment_of_both_suites() {
        let text = render_text(&sample());
        assert_eq!(
            text,
            "ferro-cni: table inet ferro_cni (9 chains and sets)
  masquerade  pods4-kbr 10.244.0.5 (ctr1/eth0)
  host ports  kbr/ctr1/eth0 hp-0123456789abcdef: tcp 8080
reference plugins (iptables-nft):
  ip nat kbr/ctrA 10.99.0.2: chains CNI-30b26f549b412d057b79f83d; host ports udp 53
  shared chains: ip nat CNI-HOSTPORT-DNAT
legacy iptables (x_tables) holds a nat table (iptables): ferro-cni cannot read or remove rules there; check them with iptables-legacy-save -t nat
"
        );
        let v = render_json(&sample());
        assert_eq!(v["ferroCni"]["pods"][0]["address"], "10.244.0.5");
        assert_eq!(v["ferroCni"]["hostPorts"][0]["ports"][0]["port"], 8080);
        assert_eq!(v["reference"]["attachments"][0]["containerID"], "ctrA");
        assert_eq!(
            v["reference"]["attachments"][0]["hostPorts"][0]["protocol"],
            "udp"
        );
        assert_eq!(v["legacyNat"][0], "iptables");
    }

    #[test]
    fn an_empty_node_says_so() {
        assert_eq!(
            render_text(&NodeFirewall::default()),
            "ferro-cni: nothing (no table inet ferro_cni)\nreference plugins (iptables-nft): nothing\n"
        );
    }
}
