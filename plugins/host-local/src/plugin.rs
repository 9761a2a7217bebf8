//! The verbs: each reads the `ipam` section, opens `<dataDir>/<network>/` and calls the
//! matching [`ferro_ipam::allocator`] function. The lock is taken only around allocation and
//! release (ADD, DEL, GC); CHECK and STATUS only read.

use std::net::IpAddr;

use ferro_ipam::config::requested_ips;
use ferro_ipam::{allocator, DiskStore, IpamConfig};
use ferro_spec::{Attachment, CniError, CniResult, Dns, IpConfig, Plugin, Request};

use crate::dns;

/// The host-local IPAM plugin.
#[derive(Debug, Default, Clone, Copy)]
pub struct HostLocal;

fn config(req: &Request) -> Result<IpamConfig, CniError> {
    Ok(IpamConfig::from_netconf(&req.conf, req.version)?)
}

fn attachment(req: &Request) -> Attachment {
    Attachment {
        container_id: req.cmd.container_id.clone(),
        ifname: req.cmd.ifname.clone(),
    }
}

fn prev_addresses(req: &Request) -> Option<Vec<IpAddr>> {
    req.prev_result
        .as_ref()
        .map(|r| r.ips.iter().map(|ip| ip.address.addr()).collect())
}

impl Plugin for HostLocal {
    fn name(&self) -> &'static str {
        "host-local"
    }

    fn cni_args(&self) -> Option<&'static [&'static str]> {
        Some(&["IP"])
    }

    fn add(&self, req: &Request) -> Result<CniResult, CniError> {
        let conf = config(req)?;
        let runtime_ips = req.conf.runtime_config.ips()?;
        let requested = requested_ips(
            req.conf.cni_arg("ips"),
            req.cmd.args.get("IP"),
            &runtime_ips,
        )?;
        let dns = match &conf.resolv_conf {
            Some(path) => dns::read(path)?,
            None => Dns::default(),
        };
        let store = DiskStore::new(&conf.data_dir, &req.conf.name);
        store.create()?;
        let allocations = {
            let mut locked = store.lock()?;
            allocator::allocate(&mut locked, &conf, &attachment(req), &requested)?
        };
        Ok(CniResult {
            interfaces: Vec::new(),
            ips: allocations
                .into_iter()
                .map(|a| IpConfig {
                    address: a.address,
                    gateway: Some(a.gateway),
                    interface: None,
                })
                .collect(),
            routes: conf.routes,
            dns,
        })
    }

    fn del(&self, req: &Request) -> Result<(), CniError> {
        let conf = config(req)?;
        let store = DiskStore::new(&conf.data_dir, &req.conf.name);
        if !store.exists() {
            log::debug!(
                "{} does not exist: nothing to release",
                store.dir().display()
            );
            return Ok(());
        }
        let hints = prev_addresses(req).unwrap_or_default();
        let released = {
            let mut locked = store.lock()?;
            allocator::release(&mut locked, &conf, &attachment(req), &hints)?
        };
        log::debug!("released {released:?}");
        Ok(())
    }

    fn check(&self, req: &Request) -> Result<(), CniError> {
        let conf = config(req)?;
        let store = DiskStore::new(&conf.data_dir, &req.conf.name);
        let expected = prev_addresses(req);
        Ok(allocator::check(
            &store,
            &conf,
            &attachment(req),
            expected.as_deref(),
        )?)
    }

    fn gc(&self, req: &Request) -> Result<(), CniError> {
        let conf = config(req)?;
        let valid = match &req.conf.valid_attachments {
            Some(v) => v.clone(),
            None => {
                log::warn!(
                    "GC without cni.dev/valid-attachments: treating it as an empty list, \
                     every lease of network {} is released",
                    req.conf.name
                );
                Vec::new()
            }
        };
        let store = DiskStore::new(&conf.data_dir, &req.conf.name);
        if !store.exists() {
            return Ok(());
        }
        let report = {
            let mut locked = store.lock()?;
            allocator::gc(&mut locked, &valid)?
        };
        if !report.released.is_empty() || report.swept > 0 {
            log::info!(
                "GC released {:?}, removed {} index entries and {} stale temporary files",
                report.released,
                report.forgotten.len(),
                report.swept
            );
        }
        Ok(())
    }

    fn status(&self, req: &Request) -> Result<(), CniError> {
        let conf = config(req)?;
        let store = DiskStore::new(&conf.data_dir, &req.conf.name);
        Ok(allocator::status(&store, &conf)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferro_spec::{dispatch, Env};
    use serde_json::{json, Value};

    fn call(cmd: &str, id: &str, conf: &Value) -> (u8, Value) {
        let env = Env::from_pairs([
            ("CNI_COMMAND", cmd),
            ("CNI_CONTAINERID", id),
            ("CNI_NETNS", "/run/netns/x"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", "/opt/cni/bin"),
        ]);
        let mut out = Vec::new();
        let mut err = Vec::new();
        let code = dispatch(
            &HostLocal,
            env,
            &mut conf.to_string().as_bytes(),
            &mut out,
            &mut err,
        );
        let v = if out.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&out).unwrap()
        };
        (code, v)
    }

    #[test]
    fn verbs_in_process() {
        let dir = tempfile::tempdir().unwrap();
        let conf = json!({"cniVersion": "1.1.0", "name": "n", "type": "host-local",
            "ipam": {"type": "host-local", "dataDir": dir.path(), "ranges": [[{"subnet": "10.3.0.0/30"}]]}});
        let (code, v) = call("ADD", "a", &conf);
        assert_eq!(code, 0, "{v}");
        assert_eq!(v["ips"][0]["address"], "10.3.0.2/30");
        assert_eq!(call("STATUS", "", &conf).1["code"], 50);
        assert_eq!(call("CHECK", "a", &conf), (0, Value::Null));
        assert_eq!(call("ADD", "b", &conf).1["code"], 101);
        assert_eq!(call("DEL", "a", &conf), (0, Value::Null));
        assert_eq!(call("STATUS", "", &conf), (0, Value::Null));
        assert_eq!(call("CHECK", "a", &conf).1["code"], 103);
        assert_eq!(call("GC", "", &conf), (0, Value::Null));
    }
}
