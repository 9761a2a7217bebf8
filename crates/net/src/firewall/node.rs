//! What the node's firewall holds of the suite, for people (`cnictl firewall show`), and its
//! removal (`cnictl firewall remove`: going back to the reference plugins).

use std::net::IpAddr;

use super::hostports::{hostports_list, HostPortsOf};
use super::{table, FirewallError};
use crate::nft::{Batch, NftSocket};

/// A pod address in a masquerade set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasqueradedPod {
    /// The set (`pods4-<network>`, `pods6-<network>`).
    pub set: String,
    /// The address.
    pub address: IpAddr,
    /// The element's comment (`<containerID>/<ifname>`).
    pub owner: Option<String>,
}

/// The suite's table on this node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OurState {
    /// Whether `inet ferro_cni` exists.
    pub table: bool,
    /// Its chains and sets (`NFTA_TABLE_USE`).
    pub objects: u32,
    /// Masqueraded pod addresses.
    pub pods: Vec<MasqueradedPod>,
    /// Host ports.
    pub host_ports: Vec<HostPortsOf>,
}

impl OurState {
    /// Whether any attachment still has state in the table (a pod address or a host port).
    pub fn has_attachments(&self) -> bool {
        !self.pods.is_empty() || !self.host_ports.is_empty()
    }
}

/// Reads the suite's table: its pods' addresses and host ports. Equivalent to `nft list
/// table inet ferro_cni`.
pub fn ours(sock: &mut NftSocket) -> Result<OurState, FirewallError> {
    let t = table();
    let Some(info) = sock.get_table(&t)? else {
        return Ok(OurState::default());
    };
    let mut pods = Vec::new();
    for s in sock.list_sets(&t)? {
        if !(s.name.starts_with("pods4-") || s.name.starts_with("pods6-")) {
            continue;
        }
        for e in sock.list_elems(&t, &s.name)?.unwrap_or_default() {
            let address = match e.key.len() {
                4 => <[u8; 4]>::try_from(e.key.as_slice()).ok().map(IpAddr::from),
                16 => <[u8; 16]>::try_from(e.key.as_slice())
                    .ok()
                    .map(IpAddr::from),
                _ => None,
            };
            if let Some(address) = address {
                pods.push(MasqueradedPod {
                    set: s.name.clone(),
                    address,
                    owner: e.comment,
                });
            }
        }
    }
    Ok(OurState {
        table: true,
        objects: info.objects,
        pods,
        host_ports: hostports_list(sock)?,
    })
}

/// Deletes the suite's table, and with it every chain, rule, set and map of the suite
/// (`nft delete table inet ferro_cni`); `false` when there was none. Pods attached by the
/// suite lose their masquerade and host ports.
pub fn remove_ours(sock: &mut NftSocket) -> Result<bool, FirewallError> {
    let t = table();
    if sock.get_table(&t)?.is_none() {
        return Ok(false);
    }
    let mut b = Batch::new();
    b.del_table(&t, true);
    sock.apply(&b)?;
    Ok(true)
}
