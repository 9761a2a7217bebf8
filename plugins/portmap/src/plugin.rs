//! The verbs of `portmap`: the config and the plan first (pure), then `apply.rs`.

use ferro_net::firewall::Tag;
use ferro_spec::{CniError, CniResult, Plugin, Request};

use crate::apply;
use crate::config::Config;
use crate::plan::{self, Plan};

/// The portmap plugin.
#[derive(Debug)]
pub struct Portmap;

impl Plugin for Portmap {
    fn name(&self) -> &'static str {
        "portmap"
    }

    fn add(&self, req: &Request) -> Result<CniResult, CniError> {
        let cfg = Config::from_request(req)?;
        let prev = req.prev_result.as_ref();
        let mappings = match prev {
            Some(_) => req.conf.runtime_config.port_mappings()?,
            None => Vec::new(),
        };
        if let Plan::Map(m) = plan::plan(req, &cfg, prev, mappings)? {
            apply::add(&m)?;
        }
        Ok(prev.cloned().unwrap_or_default())
    }

    fn del(&self, req: &Request) -> Result<(), CniError> {
        Config::from_request(req)?;
        let removed = apply::del(&Tag::of(req))?;
        let given = req.conf.runtime_config.port_mappings().ok();
        apply::flush_udp(&plan::del_udp(&removed, given.as_deref()))
    }

    fn check(&self, req: &Request) -> Result<(), CniError> {
        let cfg = Config::from_request(req)?;
        let prev = ferro_pod::prev_result(req)?;
        let mappings = req.conf.runtime_config.port_mappings()?;
        if mappings.is_empty() {
            return Ok(());
        }
        apply::check(&plan::host_ports(req, &cfg, prev, mappings))
    }

    fn gc(&self, req: &Request) -> Result<(), CniError> {
        apply::gc(req)
    }
}
