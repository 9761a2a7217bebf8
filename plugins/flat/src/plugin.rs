//! The verbs of `flat`: the config and the plan first (pure), then `apply.rs`; DEL and GC
//! are the shared pod-attachment steps of `ferro-pod`, plus the uplink's proxy entries.

use ferro_net::{transparent, Kernel};
use ferro_spec::{CniError, CniResult, Plugin, Request};

use crate::apply;
use crate::config::Config;
use crate::plan;

/// The flat plugin.
#[derive(Debug)]
pub struct Flat;

impl Plugin for Flat {
    fn name(&self) -> &'static str {
        "flat"
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
            apply::node,
            plan::plan,
            apply::add,
        )
    }

    fn del(&self, req: &Request) -> Result<(), CniError> {
        let cfg = Config::from_request(req)?;
        ferro_pod::del(
            req,
            cfg.shared.snat,
            transparent::HOST_PREFIX,
            |host, known| {
                if cfg.publish_pod_addresses {
                    apply::del_published(req, &cfg, host, known);
                }
            },
        )
    }

    fn check(&self, req: &Request) -> Result<(), CniError> {
        let cfg = Config::from_request(req)?;
        ferro_pod::check(req, |c| {
            let node = apply::node(&cfg, c.host)?;
            let addrs = c.addrs();
            let p = plan::pod(req, &node, addrs.clone(), Vec::new());
            ferro_pod::transparent::check(c, &p)?;
            c.firewall(&plan::firewall(&req.conf.name, &cfg, &node))?;
            if cfg.publish_pod_addresses {
                let proxies = apply::published(c.host, &node)?;
                plan::unpublished(&addrs, &proxies, &node.uplink.name).into_result()?;
            }
            Ok(())
        })
    }

    fn gc(&self, req: &Request) -> Result<(), CniError> {
        let cfg = Config::from_request(req)?;
        let (gone, mut errors) = ferro_pod::gc(req, cfg.shared.snat);
        if cfg.publish_pod_addresses && !gone.is_empty() {
            let k = Kernel::new()?;
            let host = k.connect(None)?;
            if let Some(node) = errors.note(apply::node(&cfg, &host)) {
                apply::unpublish(&host, &node.uplink, &gone);
            }
        }
        errors.finish()
    }

    fn status(&self, req: &Request) -> Result<(), CniError> {
        let cfg = Config::from_request(req)?;
        ferro_pod::status(req, |host| apply::node(&cfg, host).map(drop))
    }
}
