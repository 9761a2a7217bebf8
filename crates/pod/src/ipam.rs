//! The IPAM of an attachment: `cluster-ipam` runs in this process (one request to the node's
//! agent, the same functions the `cluster-ipam` binary runs, `ferro_agent_api::cni`); any
//! other type is delegated by exec over `CNI_PATH`, as the specification describes.
//!
//! Both paths give the same result and the same errors: the in-process path checks
//! `CNI_ARGS` as the binary's dispatcher would, and its errors carry the `cluster-ipam: `
//! prefix a delegated error gets.

use ferro_agent_api::ipam::Masquerade;
use ferro_agent_api::{cni, AttachmentReport, CLUSTER_IPAM};
use ferro_spec::delegate;
use ferro_spec::{CniError, CniResult, Code, Request};

/// Whether `req`'s IPAM runs in this process.
pub fn in_process(req: &Request) -> bool {
    req.conf.ipam_type() == Some(CLUSTER_IPAM)
}

/// Runs `verb` in-process (with the binary's `CNI_ARGS` check and error prefix) for
/// `cluster-ipam`, else `delegated`.
fn run<T>(
    req: &Request,
    verb: impl FnOnce(&Request) -> Result<T, CniError>,
    delegated: impl FnOnce(&Request) -> Result<T, CniError>,
) -> Result<T, CniError> {
    if !in_process(req) {
        return delegated(req);
    }
    local(req, verb)
}

/// Runs `verb` as the `cluster-ipam` binary's dispatcher would: `CNI_ARGS` checked, errors
/// prefixed.
fn local<T>(
    req: &Request,
    verb: impl FnOnce(&Request) -> Result<T, CniError>,
) -> Result<T, CniError> {
    req.cmd
        .args
        .check_known(cni::CNI_ARGS)
        .and_then(|()| verb(req))
        .map_err(|e| e.context(CLUSTER_IPAM))
}

/// IPAM ADD.
pub fn add(req: &Request) -> Result<CniResult, CniError> {
    run(req, cni::add, delegate::ipam_add)
}

/// IPAM DEL.
pub fn del(req: &Request) -> Result<(), CniError> {
    run(req, cni::del, delegate::ipam_del)
}

/// IPAM CHECK.
pub fn check(req: &Request) -> Result<(), CniError> {
    run(req, cni::check, delegate::ipam_check)
}

/// IPAM GC.
pub fn gc(req: &Request) -> Result<(), CniError> {
    run(req, cni::gc, delegate::ipam_gc)
}

/// IPAM STATUS.
pub fn status(req: &Request) -> Result<(), CniError> {
    run(req, cni::status, delegate::ipam_status)
}

/// IPAM DEL (when the configuration has IPAM) on a helper thread while `teardown` runs:
/// a delegate's process start and lease release overlap the kernel's part of DEL. The
/// address may be handed out again before the interface holding it is gone, as with the
/// reference plugins, which release it first. Returns `teardown`'s value and the release's
/// outcome.
pub fn del_alongside<T>(req: &Request, teardown: impl FnOnce() -> T) -> (T, Result<(), CniError>) {
    if req.conf.ipam_type().is_none() {
        return (teardown(), Ok(()));
    }
    std::thread::scope(|s| {
        let ipam = s.spawn(|| del(req));
        let done = teardown();
        let released = ipam.join().unwrap_or_else(|_| {
            Err(CniError::new(
                Code::Internal,
                "the IPAM DEL thread panicked".to_string(),
            ))
        });
        (done, released)
    })
}

/// IPAM ADD carrying the attachment's ADD report when IPAM runs in this process (see
/// `ferro_agent_api::cni::add_reporting`): the result, and whether the agent recorded
/// the report. A delegated IPAM never records it.
pub fn add_reporting(
    req: &Request,
    report: Option<AttachmentReport>,
) -> Result<(CniResult, bool), CniError> {
    run(
        req,
        |q| cni::add_reporting(q, report),
        |q| delegate::ipam_add(q).map(|r| (r, false)),
    )
}

/// An IPAM allocation made during ADD. Dropping it without [`Lease::keep`] releases it
/// (IPAM DEL), so every early return of a failed ADD gives the address back.
#[derive(Debug)]
pub struct Lease<'a> {
    req: &'a Request,
    /// The IPAM result.
    pub result: CniResult,
    /// The agent recorded the attachment's ADD report with the allocation.
    pub reported: bool,
    /// The agent added the masquerade the request asked for (see [`PendingLease::send`]).
    pub masqueraded: bool,
    armed: bool,
}

impl<'a> Lease<'a> {
    /// Runs IPAM ADD.
    pub fn acquire(req: &'a Request) -> Result<Self, CniError> {
        Self::acquire_reporting(req, None)
    }

    /// Runs IPAM ADD, asking the agent to record `report` with the allocation (in-process
    /// cluster IPAM only; see [`add_reporting`]).
    pub fn acquire_reporting(
        req: &'a Request,
        report: Option<AttachmentReport>,
    ) -> Result<Self, CniError> {
        let (result, reported) = add_reporting(req, report)?;
        Ok(Lease {
            req,
            result,
            reported,
            masqueraded: false,
            armed: true,
        })
    }

    /// ADD succeeded: keep the allocation.
    pub fn keep(mut self) -> CniResult {
        self.armed = false;
        std::mem::take(&mut self.result)
    }
}

/// A [`Lease`] whose request is on its way to the agent (in-process `cluster-ipam` only):
/// the caller works while the agent allocates, then [`PendingLease::finish`] reads the
/// answer.
#[derive(Debug)]
pub struct PendingLease<'a> {
    req: &'a Request,
    add: cni::PendingAdd,
}

impl<'a> PendingLease<'a> {
    /// Sends [`Lease::acquire_reporting`]'s request without waiting for its answer (with
    /// the binary's `CNI_ARGS` check and error prefix), asking the agent to add
    /// `masquerade` for the addresses it hands out. Only for the in-process IPAM
    /// ([`in_process`]); any other type is an internal error.
    pub fn send(
        req: &'a Request,
        report: Option<AttachmentReport>,
        masquerade: Option<Masquerade>,
    ) -> Result<Self, CniError> {
        if !in_process(req) {
            return Err(CniError::internal(
                "an IPAM request can be sent ahead only to the agent (cluster-ipam)",
            ));
        }
        local(req, |q| cni::PendingAdd::send(q, report, masquerade))
            .map(|add| PendingLease { req, add })
    }

    /// The agent's answer: the lease, released on drop unless kept.
    pub fn finish(self) -> Result<Lease<'a>, CniError> {
        let (result, done) = self.add.finish().map_err(|e| e.context(CLUSTER_IPAM))?;
        Ok(Lease {
            req: self.req,
            result,
            reported: done.reported,
            masqueraded: done.masqueraded,
            armed: true,
        })
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if self.armed {
            if let Err(e) = del(self.req) {
                log::warn!("releasing IPAM after a failed ADD: {e}");
            }
        }
    }
}
