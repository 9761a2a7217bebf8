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

use std::sync::mpsc;

use std::net::IpAddr;

use ferro_agent_api::ipam::{IpamIp, Masquerade};
use ferro_agent_api::{AttachmentReport, FirewallRemoval, FirewallRemoved};
use ferro_net::firewall::{self, pod_del_on, MasqSpec, Tag};
use ferro_nftables::NftSocket;
use tokio::sync::oneshot;

use crate::AgentError;

type Job = Box<dyn FnOnce(&mut Option<NftSocket>) + Send>;

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
                let mut sock = Some(sock);
                while let Ok(job) = rx.recv() {
                    job(&mut sock);
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
        self.run(move |sock| {
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
        let fw = firewall::PodFirewall {
            masq: Some(MasqSpec::for_addresses(
                &tag.network,
                &addresses,
                &what.keep_source,
            )),
            antispoof_prefix: None,
        };
        let pod: Vec<IpAddr> = addresses.iter().map(|a| a.addr()).collect();
        self.run(move |sock| fw.add_on(sock, &pod, &tag).map_err(|e| e.to_string()))
            .await
    }

    /// Runs `work` on the thread's socket (opened again if a failure closed it); a failure
    /// closes it, so the next job starts on a fresh one.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut NftSocket) -> Result<T, String> + Send + 'static,
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
    slot: &mut Option<NftSocket>,
    work: impl FnOnce(&mut NftSocket) -> Result<T, String>,
) -> Result<T, String> {
    if slot.is_none() {
        *slot = Some(NftSocket::open().map_err(|e| e.to_string())?);
    }
    let sock = slot.as_mut().expect("opened above");
    work(sock).inspect_err(|_| *slot = None)
}
