//! The verbs. `CNI_IFNAME` is ignored: the plugin always works on `lo`, as the reference does.

use ferro_net::{Kernel, NetError, Netns};
use ferro_spec::{CniError, CniResult, Interface, IpConfig, Plugin, Request};

/// The loopback plugin.
#[derive(Debug)]
pub struct Loopback;

fn open_pod_ns(req: &Request) -> Result<Netns, CniError> {
    Netns::open_pod(req.netns()?)
}

impl Plugin for Loopback {
    fn name(&self) -> &'static str {
        "loopback"
    }

    fn add(&self, req: &Request) -> Result<CniResult, CniError> {
        let ns = open_pod_ns(req)?;
        let k = Kernel::new()?;
        let pod = k.connect(Some(&ns))?;
        let lo = pod.link_required("lo")?;
        let addrs = pod.addrs(Some(lo.index))?;
        if let Some(a) = addrs.iter().find(|a| !a.addr.addr().is_loopback()) {
            return Err(CniError::invalid_config(format!(
                "lo in {} carries a non-loopback address {}",
                ns.path().display(),
                a.addr
            )));
        }
        if !lo.up {
            pod.link_set_up(lo.index, true)?;
        }
        // Chained after another plugin: pass its result through unchanged.
        if let Some(prev) = &req.prev_result {
            return Ok(prev.clone());
        }
        // Addresses appear when lo comes up; read them again.
        let addrs = pod.addrs(Some(lo.index))?;
        Ok(CniResult {
            interfaces: vec![Interface {
                name: "lo".into(),
                mac: Some("00:00:00:00:00:00".into()),
                sandbox: Some(ns.path().display().to_string()),
                ..Interface::default()
            }],
            ips: addrs
                .iter()
                .map(|a| IpConfig {
                    address: a.addr,
                    gateway: None,
                    interface: Some(0),
                })
                .collect(),
            ..CniResult::default()
        })
    }

    fn del(&self, req: &Request) -> Result<(), CniError> {
        let Some(path) = req.cmd.netns.as_deref() else {
            return Ok(());
        };
        let Some(ns) = Netns::open_if_exists(path)? else {
            return Ok(());
        };
        let k = Kernel::new()?;
        let pod = k.connect(Some(&ns))?;
        match pod.link("lo")? {
            Some(lo) if lo.up => match pod.link_set_up(lo.index, false) {
                Err(e) if e.is_not_found() => Ok(()),
                other => other.map_err(CniError::from),
            },
            _ => Ok(()),
        }
    }

    fn check(&self, req: &Request) -> Result<(), CniError> {
        let ns = open_pod_ns(req)?;
        let k = Kernel::new()?;
        let lo = k
            .connect(Some(&ns))?
            .link_required("lo")
            .map_err(|e: NetError| CniError::check_failed(e.to_string()))?;
        if !lo.up {
            return Err(CniError::check_failed(format!(
                "lo is down in {}",
                ns.path().display()
            )));
        }
        Ok(())
    }
}
