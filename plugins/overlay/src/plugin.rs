//! The verbs of `overlay`: the config and the plan first (pure), then `apply.rs`. Pods
//! attach in transparent mode (shared with `flat`); DEL and GC are the shared
//! pod-attachment steps of `ferro-pod`.

use ferro_net::transparent;
use ferro_spec::{CniError, CniResult, Plugin, Request};

use crate::apply;
use crate::config::Config;
use crate::plan;

/// The overlay plugin.
#[derive(Debug)]
pub struct Overlay;

impl Plugin for Overlay {
    fn name(&self) -> &'static str {
        "overlay"
    }

    fn cni_args(&self) -> Option<&'static [&'static str]> {
        Some(&["IP"])
    }

    fn add(&self, req: &Request) -> Result<CniResult, CniError> {
        let cfg = Config::from_request(req)?;
        ferro_pod::add(
            req,
            &cfg,
            transparent::HOST_PREFIX,
            apply::node_view,
            plan::plan,
            |a, view, plan| apply::add(a, &cfg, view, plan),
        )
    }

    fn del(&self, req: &Request) -> Result<(), CniError> {
        let cfg = Config::from_request(req)?;
        ferro_pod::del(req, cfg.shared.snat, transparent::HOST_PREFIX, |_, _| {})
    }

    fn check(&self, req: &Request) -> Result<(), CniError> {
        let cfg = Config::from_request(req)?;
        ferro_pod::check(req, |c| {
            let view = apply::node_view(&cfg, c.host)?;
            apply::check_node(c.host, &cfg, &view)?;
            let p = plan::pod(req, c.addrs(), view.mtu, Vec::new());
            ferro_pod::transparent::check(c, &p)?;
            c.firewall(&plan::firewall(&req.conf.name, &cfg))
        })
    }

    fn gc(&self, req: &Request) -> Result<(), CniError> {
        let cfg = Config::from_request(req)?;
        let (_, errors) = ferro_pod::gc(req, cfg.shared.snat);
        errors.finish()
    }

    fn status(&self, req: &Request) -> Result<(), CniError> {
        let cfg = Config::from_request(req)?;
        ferro_pod::status(req, |host| apply::node_view(&cfg, host).map(drop))
    }
}
