//! The steps around a plugin's model that every main plugin takes the same way: the frames
//! of ADD (with its IPAM lease and rollback), CHECK and STATUS, DEL and GC.
//!
//! Every model gives a pod one veth pair whose host end is named after the attachment (a
//! prefix of the model and a hash, `ferro_net::names::host_ifname`), so DEL and a failed
//! ADD find it without the pod's namespace, and deleting it takes the pair and every route
//! through it along.

use std::net::IpAddr;

use ipnet::IpNet;

use ferro_agent_api::ipam::Masquerade;
use ferro_agent_api::{AttachmentEvent, AttachmentReport, FirewallRemoval};
use ferro_net::firewall::{self, PodFirewall, Tag};
use ferro_net::{names, Kernel, NetError, Netns, Rtnl};
use ferro_spec::{CniError, CniResult, FirstError, Request};

use crate::check::prev_result;
use crate::error::PodError;
use crate::ipam::{self, Lease, PendingLease};
use crate::report::{self, AgentKey};
use crate::session::Session;

/// IPAM ADD when the configuration has an `ipam` section (`bridge` may be L2-only), with
/// the attachment's ADD `report` for the agent to record alongside (in-process cluster IPAM
/// only). The lease is given back (IPAM DEL) when dropped without [`Attach::settle`]
/// keeping it, so every early return of a failed ADD releases the address.
fn lease(req: &Request, report: Option<AttachmentReport>) -> Result<Option<Lease<'_>>, CniError> {
    match req.conf.ipam_type() {
        Some(_) => Lease::acquire_reporting(req, report).map(Some),
        None => Ok(None),
    }
}

/// What a model's apply step works with once its plan is made: the request, the
/// connections on the node and in the pod, the pod's namespace, and the IPAM lease, which is
/// released unless [`Attach::settle`] keeps it.
#[derive(Debug)]
pub struct Attach<'a> {
    /// The request.
    pub req: &'a Request,
    /// The node's connection.
    pub host: &'a Rtnl<'a>,
    /// The connection inside the pod.
    pub pod: &'a Rtnl<'a>,
    /// The pod's namespace.
    pub ns: &'a Netns,
    /// The IPAM lease (none without `ipam`).
    pub lease: Option<Lease<'a>>,
}

impl Attach<'_> {
    /// The end of an ADD once the host veth exists: on success the lease is kept; on
    /// failure the host veth is deleted (with its peer in the pod and the routes through
    /// it), `undo` removes what the model added elsewhere, then the lease is released.
    /// Returns `outcome`.
    pub fn settle<T>(
        self,
        outcome: Result<T, CniError>,
        host_veth: &str,
        undo: impl FnOnce(),
    ) -> Result<T, CniError> {
        match outcome {
            Ok(v) => {
                if let Some(l) = self.lease {
                    l.keep();
                }
                Ok(v)
            }
            Err(e) => {
                if let Err(e2) = self.host.link_del_name(host_veth) {
                    log::warn!("rolling back {host_veth}: {e2}");
                }
                undo();
                drop(self.lease);
                Err(e)
            }
        }
    }
}

/// What a model's plan is made from besides its configuration and node facts.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    /// The request.
    pub req: &'a Request,
    /// The pod's namespace as results name it (`interfaces[].sandbox`).
    pub sandbox: &'a str,
    /// The IPAM result (empty without `ipam`).
    pub ipam: &'a CniResult,
}

/// ADD, the same frame for every model: the `agent` key read, the pod's namespace opened
/// and `CNI_IFNAME` found free in it, the node facts the model needs read (`read_node`),
/// the IPAM lease taken, the model's plan made from them (`plan`), and only then `apply`,
/// the model's kernel work. A configuration refused before this frame, or a plan refused
/// inside it, leaves nothing behind: no link is touched before `apply`, and the lease is
/// released whenever `apply` is not reached or does not keep it.
///
/// When the `agent` key names one, the attachment (whose host veth has the model's
/// `host_prefix`) is reported to it ([`report`]). When that agent also serves the addresses
/// (in-process `cluster-ipam` on the same socket), the report rides on the address request
/// and the agent records it with the addresses it hands out: one request for both. Should the
/// ADD fail after that, a DEL report takes the record back. Otherwise (another IPAM, an agent
/// that did not record it) the report follows a successful `apply`.
pub fn add<C: Sync, N: Sync, P>(
    req: &Request,
    cfg: &C,
    host_prefix: &str,
    read_node: impl FnOnce(&C, &Rtnl<'_>) -> Result<N, CniError>,
    plan: impl FnOnce(&C, &N, &Inputs<'_>) -> Result<P, PodError>,
    apply: impl FnOnce(Attach<'_>, &N, &P) -> Result<CniResult, CniError>,
) -> Result<CniResult, CniError> {
    frame(
        req,
        cfg,
        host_prefix,
        read_node,
        None::<EarlyStep<C, N, ()>>,
        None,
        plan,
        |a, node, (), plan| apply(a, node, plan),
    )
}

/// What [`add_early`]'s early step made while the addresses were asked for.
#[derive(Debug)]
pub struct Early<K> {
    /// What `apply` gets.
    pub made: K,
    /// The step created the attachment's veth pair (its host end named with the model's
    /// prefix): should the lease or the plan fail, the frame deletes it again.
    pub veth: bool,
}

/// The signature of an early step.
type EarlyStep<C, N, K> = fn(&C, &N, &Rtnl<'_>, &Netns) -> Result<Early<K>, CniError>;

/// [`add`] for a model whose kernel work begins with steps that need no address (the
/// bridge and the veth pair): `early` runs while the IPAM request is in flight, so the
/// answer's wait, the agent's work or the delegate's process, overlaps the kernel's. The
/// agent's request (`cluster-ipam`) is sent before `early` starts and its answer read after
/// ([`PendingLease`]; a request that cannot be sent fails the ADD before `early`); a
/// delegate runs on a helper thread, as [`ipam::del_alongside`] does for DEL. `early` runs
/// after the checks of the pod's namespace and the node facts, so a refused ADD still
/// allocates nothing; a failure of `early` releases the lease, and a failure of the lease
/// or the plan after `early` created the veth pair deletes it.
///
/// `masquerade`, the model's masquerade of the pod's addresses, rides on the address
/// request when the node's agent serves the addresses and takes the attachment's report:
/// the agent adds it on its own netfilter socket while `early` runs, and `apply` sees
/// [`Lease::masqueraded`] (when the agent did not, `apply` adds it as without an agent).
/// An ADD that fails afterwards removes it again.
#[allow(clippy::too_many_arguments)]
pub fn add_early<C: Sync, N: Sync, K: Default + Send, P>(
    req: &Request,
    cfg: &C,
    host_prefix: &str,
    read_node: impl FnOnce(&C, &Rtnl<'_>) -> Result<N, CniError>,
    early: impl FnOnce(&C, &N, &Rtnl<'_>, &Netns) -> Result<Early<K>, CniError> + Send,
    masquerade: Option<Masquerade>,
    plan: impl FnOnce(&C, &N, &Inputs<'_>) -> Result<P, PodError>,
    apply: impl FnOnce(Attach<'_>, &N, K, &P) -> Result<CniResult, CniError>,
) -> Result<CniResult, CniError> {
    frame(
        req,
        cfg,
        host_prefix,
        read_node,
        Some(early),
        masquerade,
        plan,
        apply,
    )
}

/// An IPAM lease taken, none (no `ipam`), or why not.
type Leased<'r> = Result<Option<Lease<'r>>, CniError>;

/// The early step and the lease: together when both exist (the step on a helper thread
/// beside the agent's request, or a delegate on a helper thread beside the step), else the
/// lease alone.
fn lease_along<'r, K: Send>(
    req: &'r Request,
    report: Option<AttachmentReport>,
    masquerade: Option<Masquerade>,
    early: Option<impl FnOnce() -> Result<Early<K>, CniError> + Send>,
) -> (Option<Result<Early<K>, CniError>>, Leased<'r>) {
    match early {
        // The step runs on a helper thread while this one asks the agent and waits for its
        // answer: the agent, woken onto the waiting thread's CPU, runs at once instead of
        // after the whole step (they share a CPU when the scheduler packs them onto one).
        Some(step) if ipam::in_process(req) => std::thread::scope(|s| {
            let made = s.spawn(step);
            let lease = PendingLease::send(req, report, masquerade)
                .and_then(PendingLease::finish)
                .map(Some);
            let made = made
                .join()
                .unwrap_or_else(|_| Err(CniError::internal("the veth thread panicked")));
            (Some(made), lease)
        }),
        // A delegate's process is started and waited for on a helper thread.
        Some(step) if req.conf.ipam_type().is_some() => std::thread::scope(|s| {
            let ipam = s.spawn(|| lease(req, report));
            let made = step();
            let lease = ipam
                .join()
                .unwrap_or_else(|_| Err(CniError::internal("the IPAM thread panicked")));
            (Some(made), lease)
        }),
        Some(step) => (Some(step()), Ok(None)),
        None => (None, lease(req, report)),
    }
}

/// The ADD frame; without an early step, `apply` gets `K::default()`.
#[allow(clippy::too_many_arguments)]
fn frame<C: Sync, N: Sync, K: Default + Send, P>(
    req: &Request,
    cfg: &C,
    host_prefix: &str,
    read_node: impl FnOnce(&C, &Rtnl<'_>) -> Result<N, CniError>,
    early: Option<impl FnOnce(&C, &N, &Rtnl<'_>, &Netns) -> Result<Early<K>, CniError> + Send>,
    masquerade: Option<Masquerade>,
    plan: impl FnOnce(&C, &N, &Inputs<'_>) -> Result<P, PodError>,
    apply: impl FnOnce(Attach<'_>, &N, K, &P) -> Result<CniResult, CniError>,
) -> Result<CniResult, CniError> {
    let agent = AgentKey::from_request(req)?;
    let dns = crate::cluster_dns::from_request(req)?;
    let s = Session::open(req)?;
    let (host, pod) = s.connect_for_add(&req.cmd.ifname)?;
    let node = read_node(cfg, &host)?;
    let host_veth = names::host_ifname(host_prefix, &req.cmd.container_id, &req.cmd.ifname);
    let folded = agent
        .as_ref()
        .filter(|k| report::serves_ipam(k, req))
        .map(|_| report::report_of(req, AttachmentEvent::Add, &host_veth, None));
    // The agent adds the masquerade only when it takes the report (its own node's agent).
    let masquerade = masquerade.filter(|_| folded.is_some());
    let (made, lease) = lease_along(
        req,
        folded,
        masquerade,
        early.map(|step| || step(cfg, &node, &host, &s.ns)),
    );
    // What the early step created goes again if the ADD stops before `apply`.
    let made_veth = matches!(&made, Some(Ok(e)) if e.veth);
    let unmake = |e: CniError| {
        if made_veth {
            if let Err(e2) = host.link_del_name(&host_veth) {
                log::warn!("rolling back {host_veth}: {e2}");
            }
        }
        e
    };
    let lease = lease.map_err(unmake)?;
    let reported = lease.as_ref().is_some_and(|l| l.reported);
    // The addresses the agent masqueraded, for a failed ADD to take back.
    let masqueraded: Option<Vec<IpAddr>> = lease
        .as_ref()
        .filter(|l| l.masqueraded)
        .map(|l| l.result.ips.iter().map(|i| i.address.addr()).collect());
    let empty = CniResult::default();
    let outcome = (|| -> Result<CniResult, CniError> {
        let made = made.transpose()?.map_or_else(K::default, |e| e.made);
        let inputs = Inputs {
            req,
            sandbox: &s.sandbox(),
            ipam: lease.as_ref().map_or(&empty, |l| &l.result),
        };
        let plan = plan(cfg, &node, &inputs).map_err(|e| unmake(e.into()))?;
        let a = Attach {
            req,
            host: &host,
            pod: &pod,
            ns: &s.ns,
            lease,
        };
        apply(a, &node, made, &plan)
    })();
    let mut result = match (outcome, &agent) {
        (Ok(r), _) => r,
        (Err(e), agent) => {
            if let Some(ips) = &masqueraded {
                if let Err(e2) = firewall::masq_unwind(&req.conf.name, ips, &Tag::of(req)) {
                    log::warn!("removing the masquerade of a failed ADD: {e2}");
                }
            }
            if let (Some(k), true) = (agent, reported) {
                report::send(
                    k,
                    report::report_of(req, AttachmentEvent::Del, &host_veth, None),
                );
            }
            return Err(e);
        }
    };
    if let Some(d) = dns {
        result.dns = d;
    }
    if let (Some(k), false) = (&agent, reported) {
        report::send(
            k,
            report::report_of(req, AttachmentEvent::Add, &host_veth, Some(&result)),
        );
    }
    Ok(result)
}

/// What a model's CHECK works with: `prevResult`, the connections on the node and in the
/// pod, and `CNI_NETNS` as results name it.
#[derive(Debug)]
pub struct Inspect<'a> {
    /// The request.
    pub req: &'a Request,
    /// `prevResult`.
    pub prev: &'a CniResult,
    /// The node's connection.
    pub host: &'a Rtnl<'a>,
    /// The connection inside the pod.
    pub pod: &'a Rtnl<'a>,
    /// The pod's namespace as results name it.
    pub sandbox: String,
}

impl Inspect<'_> {
    /// `prevResult`'s addresses of `CNI_IFNAME`.
    pub fn addrs(&self) -> Vec<IpNet> {
        self.prev
            .addresses_of(&self.req.cmd.ifname)
            .iter()
            .map(|i| i.address)
            .collect()
    }

    /// The firewall holds what ADD put there for these addresses (code 103 naming what
    /// differs).
    pub fn firewall(&self, fw: &PodFirewall) -> Result<(), CniError> {
        let ips: Vec<IpAddr> = self.addrs().iter().map(IpNet::addr).collect();
        Ok(fw.check(&ips, &Tag::of(self.req))?)
    }
}

/// CHECK, the same frame for every model: `prevResult` required (code 7), IPAM CHECK when
/// configured, the pod's namespace opened; then the model's `check`, whose differences are
/// code 103.
pub fn check(
    req: &Request,
    check: impl FnOnce(&Inspect<'_>) -> Result<(), CniError>,
) -> Result<(), CniError> {
    let prev = prev_result(req)?;
    if req.conf.ipam_type().is_some() {
        ipam::check(req)?;
    }
    let s = Session::open(req)?;
    let (host, pod) = s.connect()?;
    check(&Inspect {
        req,
        prev,
        host: &host,
        pod: &pod,
        sandbox: s.sandbox(),
    })
}

/// STATUS of a model whose ADD reads node facts: `node_ready` reads them (code 50, with
/// the reason, when it cannot), then IPAM STATUS when configured.
pub fn status(
    req: &Request,
    node_ready: impl FnOnce(&Rtnl<'_>) -> Result<(), CniError>,
) -> Result<(), CniError> {
    let k = Kernel::new()?;
    let host = k.connect(None)?;
    node_ready(&host).map_err(|e| CniError::not_available(e.msg))?;
    if req.conf.ipam_type().is_some() {
        ipam::status(req)?;
    }
    Ok(())
}

/// Detaches the attachment's veth pair for the node's agent to delete with others in one
/// request (`ferro_net::rtnl::detach`): the host end goes down, leaves its bridge and is
/// renamed (its routes and neighbours go with the link state); the pod end, found as the
/// host end's peer in `CNI_NETNS` (when that still exists), goes down, loses its addresses
/// and is renamed, so `CNI_IFNAME` is free in the pod at once. `Ok(false)` when the host end
/// is gone. A failure on the pod's side is returned once the host end is detached, unless it
/// says the pod end is gone (deleted with the pair by the agent meanwhile).
fn detach(k: &Kernel, host: &Rtnl<'_>, req: &Request, host_veth: &str) -> Result<bool, NetError> {
    let Some(h) = host.link(host_veth)? else {
        return Ok(false);
    };
    let detached = host.link_detach(h.index)?;
    let pod_end = || -> Result<(), NetError> {
        let (Some(peer), Some(path)) = (h.peer, req.cmd.netns.as_ref()) else {
            return Ok(());
        };
        let Some(ns) = Netns::open_if_exists(path)? else {
            return Ok(());
        };
        let pod = k.connect(Some(&ns))?;
        let Some(p) = pod.link_by_index(peer)?.filter(|p| p.peer == Some(h.index)) else {
            return Ok(());
        };
        pod.link_detach(p.index)?;
        for a in pod.addrs(Some(p.index))? {
            pod.addr_del(p.index, a.addr)?;
        }
        Ok(())
    };
    match pod_end() {
        // The pair is gone meanwhile (the agent's periodic sweep found the host end already
        // detached and deleted it): nothing of it is left to take out of service.
        Err(e) if e.is_not_found() => {}
        other => other?,
    }
    Ok(detached)
}

/// DEL of one attachment, best effort and idempotent: with `masquerade`, this attachment's
/// masquerade elements are removed (found by `prevResult`'s addresses, else by their tag), and so
/// is the reference plugins' iptables state of the attachment (a node taken over from them).
/// Without an `agent` key, that happens around the deletion of its host veth (the model's
/// `host_prefix` and the attachment's hash), so that the RCU grace periods overlap. With one, the
/// pair is only detached (down, out of its bridge, renamed, both ends) and the agent deletes it
/// shortly after, with every other detached pair of the node in one request; and the DEL report
/// asks the agent to remove the firewall state on its long-lived netfilter socket before it
/// answers (a socket that closes after deleting set elements waits for the kernel's destroy
/// work, and so would this DEL). When the agent does not confirm the removal (not reachable,
/// the report spooled, an agent that does not do it), the plugin removes the state itself.
/// IPAM DEL runs alongside on a thread. Then `after` runs with the node connection and every
/// address known to have been the pod's (`prevResult`'s and those of the removed elements), for
/// per-address state the model keeps elsewhere. Keeps going after a failure and returns the
/// first. A missing netns, link, element, chain or lease is success.
pub fn del(
    req: &Request,
    masquerade: bool,
    host_prefix: &str,
    after: impl FnOnce(&Rtnl<'_>, &[IpAddr]),
) -> Result<(), CniError> {
    let agent = AgentKey::from_request(req)?;
    let host_veth = names::host_ifname(host_prefix, &req.cmd.container_id, &req.cmd.ifname);
    let mut errors = FirstError::default();
    let k = Kernel::new()?;
    let host = k.connect(None)?;
    let hint = req.prev_ips();
    let tag = Tag::of(req);
    let remove_here = |teardown: &dyn Fn() -> Result<bool, NetError>| {
        firewall::pod_del_around(masquerade, &req.conf.name, hint.as_deref(), &tag, teardown)
    };
    let removed = match &agent {
        None => {
            let (out, released) =
                ipam::del_alongside(req, || remove_here(&|| host.link_del_name(&host_veth)));
            let removed = errors.note(out.unmasked);
            errors.note(out.reference);
            errors.note(out.teardown);
            errors.note(released);
            removed
        }
        Some(key) => {
            let (torn, released) = ipam::del_alongside(req, || detach(&k, &host, req, &host_veth));
            errors.note(torn);
            errors.note(released);
            let mut r = report::report_of(req, AttachmentEvent::Del, &host_veth, None);
            r.firewall = Some(FirewallRemoval {
                masquerade,
                addresses: hint.clone(),
            });
            match report::send(key, r) {
                Some(done) => Some(done.unmasked),
                None => {
                    let out = remove_here(&|| Ok(false));
                    let removed = errors.note(out.unmasked);
                    errors.note(out.reference);
                    removed
                }
            }
        }
    };
    let mut known = hint.unwrap_or_default();
    for ip in removed.unwrap_or_default() {
        if !known.contains(&ip) {
            known.push(ip);
        }
    }
    after(&host, &known);
    errors.finish()
}

/// GC: IPAM GC (when configured); the detached veth pairs of the node (see [`del`]) are
/// deleted; then, with `masquerade`, the masquerade elements of
/// attachments the runtime no longer lists (`cni.dev/valid-attachments`), and, always, the
/// reference plugins' iptables state of those attachments. Keeps going after a failure
/// (spec: GC); returns the addresses whose elements were removed, for per-address state the
/// model keeps elsewhere, and the failures so far.
pub fn gc(req: &Request, masquerade: bool) -> (Vec<IpAddr>, FirstError) {
    let mut errors = FirstError::default();
    if req.conf.ipam_type().is_some() {
        errors.note(ipam::gc(req));
    }
    let mut gone = Vec::new();
    let (unmasked, reference) = firewall::pod_gc(
        &req.conf.name,
        masquerade,
        req.conf.valid_attachments.as_deref(),
    );
    if let Some(removed) = errors.note(unmasked).filter(|g| !g.is_empty()) {
        log::info!("gc: removed the masquerade elements of {removed:?}");
        gone = removed;
    }
    errors.note(reference);
    errors.note(reap_detached());
    (gone, errors)
}

/// Deletes the node's detached veth pairs (those DEL left to an agent that may have died
/// since), in one request.
fn reap_detached() -> Result<(), CniError> {
    let k = Kernel::new()?;
    let r = k.connect(None)?.reap_detached()?;
    if !r.deleted.is_empty() {
        log::info!("gc: deleted the detached links {:?}", r.deleted);
    }
    Ok(())
}
