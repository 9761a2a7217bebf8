//! The node's kernel, from the agent: one thread owning a `ferro-net` netlink connection in
//! the agent's network namespace (the node's), running jobs one at a time.
//!
//! `ferro-net` drives netlink on its own current-thread runtime, which cannot run inside the
//! agent's tokio runtime; the thread keeps the two apart. Async code sends a job and awaits
//! its answer ([`KernelWorker::run`]); jobs are short (a dump, a few changes).

use std::collections::BTreeSet;
use std::sync::mpsc;

use ferro_net::{Kernel, NetError, Rtnl};
use tokio::sync::oneshot;

use crate::AgentError;

type Job = Box<dyn FnOnce(&Rtnl<'_>) + Send>;

/// The kernel thread (it ends when the worker is dropped).
#[derive(Debug, Clone)]
pub struct KernelWorker {
    tx: mpsc::Sender<Job>,
}

impl KernelWorker {
    /// Starts the thread and opens its connection; fails when netlink cannot be opened.
    pub fn start() -> Result<KernelWorker, AgentError> {
        KernelWorker::start_named("kernel")
    }

    /// [`KernelWorker::start`] with a thread of its own name (a second worker keeps long
    /// jobs from holding up the first).
    pub fn start_named(name: &str) -> Result<KernelWorker, AgentError> {
        let (tx, rx) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let kernel = match Kernel::new() {
                    Ok(k) => k,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                let host = match kernel.connect(None) {
                    Ok(h) => h,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                while let Ok(job) = rx.recv() {
                    job(&host);
                }
            })
            .map_err(|e| AgentError::io("starting the kernel thread", e))?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(KernelWorker { tx }),
            Ok(Err(e)) => Err(AgentError::io("opening netlink", std::io::Error::other(e))),
            Err(_) => Err(AgentError::io(
                "opening netlink",
                std::io::Error::other("the kernel thread stopped"),
            )),
        }
    }

    /// Runs `f` on the kernel thread and returns what it returns.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Rtnl<'_>) -> T + Send + 'static,
    ) -> Result<T, NetError> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |host| {
            let _ = tx.send(f(host));
        });
        self.tx
            .send(job)
            .map_err(|_| NetError::Other("the kernel thread stopped".into()))?;
        rx.await
            .map_err(|_| NetError::Other("the kernel thread stopped".into()))
    }

    /// The names of the node's links.
    pub async fn link_names(&self) -> Result<BTreeSet<String>, NetError> {
        self.run(|h| h.links().map(|l| l.into_iter().map(|l| l.name).collect()))
            .await?
    }
}
