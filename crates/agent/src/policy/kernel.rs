//! The policy loop's kernel work, each job on a thread of its own (netlink calls block; a
//! fresh thread is in the agent's network namespace and outside the async runtime).

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use ferro_nftables::{Batch, NftSocket, TableRef};
use ferro_policy::NodePolicy;
use tokio::sync::oneshot;

/// Runs `f` on a new thread and waits for its result.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    let (tx, rx) = oneshot::channel();
    std::thread::Builder::new()
        .name("policy-kernel".into())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(|e| format!("starting a thread: {e}"))?;
    rx.await.map_err(|_| "the kernel thread died".to_string())
}

/// Applies `batch` (one transaction).
pub(crate) async fn apply(batch: Batch) -> Result<(), String> {
    blocking(move || {
        NftSocket::open()
            .and_then(|mut s| s.apply(&batch))
            .map_err(|e| e.to_string())
    })
    .await?
}

/// The named counters of table `t` (the policy table: [`ferro_policy::ruleset::table`]): name ->
/// (packets, bytes).
pub(crate) async fn read_counters(t: TableRef) -> Result<BTreeMap<String, (u64, u64)>, String> {
    blocking(move || {
        let mut s = NftSocket::open().map_err(|e| e.to_string())?;
        let list = s.list_counters(&t).map_err(|e| e.to_string())?;
        Ok(list
            .into_iter()
            .map(|c| (c.name, (c.packets, c.bytes)))
            .collect())
    })
    .await?
}

/// Deletes the conntrack entries of connections `np` no longer allows; how many.
pub(crate) async fn forget_denied(np: Arc<NodePolicy>) -> Result<usize, String> {
    blocking(move || {
        let local: HashSet<IpAddr> = local_addresses()?;
        let entries = ferro_net::conntrack::dump().map_err(|e| e.to_string())?;
        let victims = super::denied_entries(&np, &local, entries);
        for v in &victims {
            log::debug!(
                "policy: cutting {} {}:{} -> {}:{}",
                ferro_nftables::proto_name(v.orig.proto),
                v.orig.src,
                v.orig.sport,
                v.reply.src,
                v.reply.sport
            );
        }
        ferro_net::conntrack::delete(&victims).map_err(|e| e.to_string())
    })
    .await?
}

/// Every address of the node's interfaces.
fn local_addresses() -> Result<HashSet<IpAddr>, String> {
    let k = ferro_net::Kernel::new().map_err(|e| e.to_string())?;
    let h = k.connect(None).map_err(|e| e.to_string())?;
    let addrs = h.addrs(None).map_err(|e| e.to_string())?;
    Ok(addrs.into_iter().map(|a| a.addr.addr()).collect())
}
