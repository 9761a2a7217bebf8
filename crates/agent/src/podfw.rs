//! A pod's masquerade on ADD and its firewall removal on DEL, on the agent's long-lived
//! netfilter socket.
//!
//! ADD: an address request may carry the masquerade the plugin would add for the addresses
//! ([`ferro_agent_api::ipam::Masquerade`]); the agent adds it here before it answers, while
//! the plugin creates the pod's links, with the code the plugin would have run
//! ([`ferro_net::firewall::PodFirewall::add_on`]): the plugin's process then opens no
//! netfilter socket and reads no chain.
//!
//! Deleting set elements queues destroy work in the kernel, and closing any netfilter socket
//! while such work is pending waits for it (a grace period, under the nftables commit
//! mutex). A plugin that removed its pod's masquerade elements itself paid that wait when it
//! exited, and parallel DELs queued behind each other. With an agent, the DEL report asks
//! the agent to remove them ([`ferro_agent_api::FirewallRemoval`]): it does so here, with
//! the code the plugin would have run ([`ferro_net::firewall::pod_del_on`]), on one socket
//! that stays open, owned by a thread of its own (the socket is blocking; the thread keeps it
//! off the async runtime). A failed removal closes the socket (the next one opens a new
//! one) and is reported as such: the plugin then removes the state itself.
//!
//! Adding pod after pod, the thread reads and compares a network's masquerade chains at most
//! once a [`VERIFIED_FOR`]: in between, an ADD of the same network with the same
//! non-masquerade destinations only adds its elements (one transaction, nothing read). That
//! transaction fails if the sets are gone, and the ADD then takes the full path at once.

use std::net::IpAddr;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ferro_agent_api::ipam::{IpamIp, Masquerade};
use ferro_agent_api::{AttachmentReport, FirewallRemoval, FirewallRemoved};
use ferro_net::firewall::{self, masq_elems_ops, pod_del_on, MasqSpec, Tag};
use ferro_nftables::{Batch, NftSocket};
use tokio::sync::oneshot;

use crate::AgentError;

/// How long a verified masquerade is taken as it was read.
pub const VERIFIED_FOR: Duration = Duration::from_secs(1);

type Job = Box<dyn FnOnce(&mut Slot) + Send>;

/// What the thread keeps: its socket (`None` after a failure) and the masquerade it last
/// verified per network, with when.
#[derive(Default)]
struct Slot {
    sock: Option<NftSocket>,
    verified: Vec<(MasqSpec, Instant)>,
}

impl Slot {
    /// `spec` was read (or written) as it is within [`VERIFIED_FOR`].
    fn fresh(&self, spec: &MasqSpec) -> bool {
        self.verified
            .iter()
            .any(|(s, at)| s == spec && at.elapsed() < VERIFIED_FOR)
    }

    fn mark(&mut self, spec: MasqSpec) {
        self.forget(&spec.network);
        self.verified.push((spec, Instant::now()));
    }

    fn forget(&mut self, network: &str) {
        self.verified.retain(|(s, _)| s.network != network);
    }
}

/// The thread owning the socket (it ends when every handle is dropped).
#[derive(Debug, Clone)]
pub struct PodFirewall {
    tx: mpsc::Sender<Job>,
}

impl PodFirewall {
    /// Starts the thread in the caller's network namespace (the node's) and opens the
    /// socket.
    pub fn start() -> Result<PodFirewall, AgentError> {
        let sock = NftSocket::open()
            .map_err(|e| AgentError::io("opening netfilter", std::io::Error::other(e)))?;
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("podfw".into())
            .spawn(move || {
                let mut slot = Slot {
                    sock: Some(sock),
                    ..Slot::default()
                };
                while let Ok(job) = rx.recv() {
                    job(&mut slot);
                }
            })
            .map_err(|e| AgentError::io("starting the pod firewall thread", e))?;
        Ok(PodFirewall { tx })
    }

    /// Removes `what` of the attachment of `report` (its network, container and interface
    /// name the tag); the addresses whose masquerade elements were removed.
    pub async fn remove(
        &self,
        report: &AttachmentReport,
        what: &FirewallRemoval,
    ) -> Result<FirewallRemoved, String> {
        let tag = Tag::new(&report.network, &report.container_id, &report.ifname);
        let what = what.clone();
        self.run(move |sock, _| {
            let (unmasked, reference) = pod_del_on(
                sock,
                what.masquerade,
                &tag.network,
                what.addresses.as_deref(),
                &tag,
            );
            match (unmasked, reference) {
                (Ok(unmasked), Ok(_)) => Ok(FirewallRemoved { unmasked }),
                (Err(e), _) | (_, Err(e)) => Err(e.to_string()),
            }
        })
        .await
    }

    /// Adds `what` for `ips`, the addresses just handed out to the attachment `tag` names:
    /// the network's chains and sets ensured, the addresses' elements with the tag.
    pub async fn masquerade(
        &self,
        tag: Tag,
        what: &Masquerade,
        ips: &[IpamIp],
    ) -> Result<(), String> {
        let addresses: Vec<_> = ips.iter().map(|i| i.address).collect();
        let spec = MasqSpec::for_addresses(&tag.network, &addresses, &what.keep_source);
        let pod: Vec<IpAddr> = addresses.iter().map(|a| a.addr()).collect();
        self.run(move |sock, verified| {
            if verified.fresh(&spec) {
                let mut b = Batch::new();
                masq_elems_ops(&mut b, &spec.network, &pod, &tag).map_err(|e| e.to_string())?;
                match sock.apply(&b) {
                    Ok(()) => return Ok(()),
                    Err(e) => {
                        log::info!(
                            "masquerade of {}: adding its elements: {e}; reading the chains again",
                            tag.network
                        );
                        verified.forget(&spec.network);
                    }
                }
            }
            let fw = firewall::PodFirewall {
                masq: Some(spec.clone()),
                antispoof_prefix: None,
            };
            fw.add_on(sock, &pod, &tag).map_err(|e| e.to_string())?;
            verified.mark(spec);
            Ok(())
        })
        .await
    }

    /// Runs `work` on the thread's socket (opened again if a failure closed it); a failure
    /// closes it, so the next job starts on a fresh one, and forgets what was verified.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut NftSocket, &mut Slot) -> Result<T, String> + Send + 'static,
    ) -> Result<T, String> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |slot| {
            let _ = tx.send(on_socket(slot, work));
        });
        self.tx
            .send(job)
            .map_err(|_| "the pod firewall thread stopped".to_string())?;
        rx.await
            .map_err(|_| "the pod firewall thread stopped".to_string())?
    }
}

fn on_socket<T>(
    slot: &mut Slot,
    work: impl FnOnce(&mut NftSocket, &mut Slot) -> Result<T, String>,
) -> Result<T, String> {
    let mut sock = match slot.sock.take() {
        Some(s) => s,
        None => NftSocket::open().map_err(|e| e.to_string())?,
    };
    let done = work(&mut sock, slot);
    match done {
        Ok(_) => slot.sock = Some(sock),
        Err(_) => slot.verified.clear(),
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(network: &str, keep: &str) -> MasqSpec {
        MasqSpec {
            network: network.to_string(),
            non_masquerade: vec![keep.parse().unwrap()],
        }
    }

    #[test]
    fn a_verified_masquerade_is_fresh_for_its_network_and_destinations_only() {
        let mut slot = Slot::default();
        let a = spec("kubenet", "10.244.0.0/16");
        assert!(!slot.fresh(&a), "nothing verified yet");
        slot.mark(a.clone());
        assert!(slot.fresh(&a));
        // other destinations of the same network: read again, and they replace the first
        let b = spec("kubenet", "10.0.0.0/8");
        assert!(!slot.fresh(&b));
        slot.mark(b.clone());
        assert!(slot.fresh(&b));
        assert!(!slot.fresh(&a), "the chains now hold b's rules");
        // another network is its own entry
        let c = spec("other", "10.244.0.0/16");
        slot.mark(c.clone());
        assert!(slot.fresh(&b) && slot.fresh(&c));
        slot.forget("kubenet");
        assert!(!slot.fresh(&b) && slot.fresh(&c));
    }

    #[test]
    fn a_verified_masquerade_goes_stale() {
        let mut slot = Slot::default();
        let a = spec("kubenet", "10.244.0.0/16");
        let long_ago = Instant::now()
            .checked_sub(VERIFIED_FOR + Duration::from_millis(1))
            .unwrap();
        slot.verified.push((a.clone(), long_ago));
        assert!(!slot.fresh(&a));
    }
}
