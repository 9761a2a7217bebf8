//! `cluster-ipam`: addresses from the cluster's shared pool, through the node's ferro-agent.
//! The verbs live in `ferro_agent_api::cni` (the main plugins of the suite run the same
//! functions in-process); `main` only hands the process to the dispatcher.
#![no_main]
#![deny(unsafe_code)]

use ferro_agent_api::cni;
use ferro_spec::{CniError, CniResult, Plugin, Request};

/// The cluster-ipam plugin.
#[derive(Debug, Default, Clone, Copy)]
struct ClusterIpam;

impl Plugin for ClusterIpam {
    fn name(&self) -> &'static str {
        ferro_agent_api::CLUSTER_IPAM
    }

    fn cni_args(&self) -> Option<&'static [&'static str]> {
        Some(cni::CNI_ARGS)
    }

    fn add(&self, req: &Request) -> Result<CniResult, CniError> {
        cni::add(req)
    }

    fn del(&self, req: &Request) -> Result<(), CniError> {
        cni::del(req)
    }

    fn check(&self, req: &Request) -> Result<(), CniError> {
        cni::check(req)
    }

    fn gc(&self, req: &Request) -> Result<(), CniError> {
        cni::gc(req)
    }

    fn status(&self, req: &Request) -> Result<(), CniError> {
        cni::status(req)
    }
}

ferro_spec::plugin_main!(ClusterIpam);
