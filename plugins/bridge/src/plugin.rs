//! The verbs: the config and the plan first (pure), then `apply.rs`; DEL and GC are the
//! shared pod-attachment steps of `ferro-pod`.

use ferro_pod::PodError;
use ferro_spec::{CniError, CniResult, Plugin, Request};
use ipnet::IpNet;

use crate::apply;
use crate::config::Config;
use crate::plan::{self, Expected};

/// The bridge plugin.
#[derive(Debug)]
pub struct Bridge;

impl Plugin for Bridge {
    fn name(&self) -> &'static str {
        "bridge"
    }

    fn cni_args(&self) -> Option<&'static [&'static str]> {
        Some(&["MAC", "IP"])
    }

    fn add(&self, req: &Request) -> Result<CniResult, CniError> {
        let cfg = Config::from_request(req)?;
        let att = plan::attachment(req)?;
        ferro_pod::add_early(
            req,
            &cfg,
            plan::HOST_PREFIX,
            |_, _| Ok(()),
            |cfg, (), host, ns| apply::create(cfg, &att, host, ns),
            plan::agent_masquerade(&cfg),
            |cfg, (), i| plan::plan(cfg, &att, i),
            |a, (), made, plan| apply::add(a, &cfg, made, plan),
        )
    }

    fn del(&self, req: &Request) -> Result<(), CniError> {
        let cfg = Config::from_request(req)?;
        ferro_pod::del(req, cfg.ip_masq, plan::HOST_PREFIX, |_, _| {})
    }

    fn check(&self, req: &Request) -> Result<(), CniError> {
        let cfg = Config::from_request(req)?;
        ferro_pod::check(req, |c| {
            let want = Expected {
                prev: c.prev,
                ifname: &req.cmd.ifname,
                netns: &c.sandbox,
                host_veth: &plan::host_veth(&req.cmd.container_id, &req.cmd.ifname),
            };
            let facts =
                apply::read_facts(&cfg, &want, c.host, c.pod).map_err(PodError::CheckRead)?;
            plan::check(&cfg, &want, &facts).into_result()?;
            let subnets: Vec<IpNet> = c.addrs().iter().map(IpNet::trunc).collect();
            c.firewall(&plan::firewall(&req.conf.name, &cfg, &subnets))
        })
    }

    fn gc(&self, req: &Request) -> Result<(), CniError> {
        let cfg = Config::from_request(req)?;
        let (_, errors) = ferro_pod::gc(req, cfg.ip_masq);
        errors.finish()
    }

    fn status(&self, req: &Request) -> Result<(), CniError> {
        if req.conf.ipam_type().is_some() {
            ferro_pod::ipam::status(req)?;
        }
        Ok(())
    }
}
