//! The `dns` key of the agent's configuration: the cluster DNS server (off without it).
//!
//! ```json
//! "dns": {"addresses": ["169.254.20.10"], "domain": "cluster.local", "upstreams": ["10.0.0.2"]}
//! ```

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The default node-local address pods use as their nameserver (the one the node-local DNS
/// cache of Kubernetes uses).
pub const DEFAULT_ADDRESS: &str = "169.254.20.10";
/// The default resolver configuration the upstreams are read from.
pub const DEFAULT_RESOLV_CONF: &str = "/etc/resolv.conf";
/// The default number of upstream answers kept.
pub const DEFAULT_CACHE_SIZE: usize = 10_000;

/// The `dns` object as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DnsFile {
    addresses: Option<Vec<String>>,
    port: Option<u16>,
    domain: Option<String>,
    upstreams: Option<Vec<String>>,
    resolv_conf: Option<PathBuf>,
    ttl: Option<u32>,
    cache_size: Option<usize>,
}

/// The checked settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsConfig {
    /// The addresses the server listens on (added to the node's `lo` when the node lacks them).
    pub addresses: Vec<IpAddr>,
    /// Its port (UDP and TCP).
    pub port: u16,
    /// The cluster domain, when the configuration sets it (else the ClusterNetwork's
    /// `dnsDomain`, `cluster.local` by default).
    pub domain: Option<String>,
    /// Upstream resolvers given in the configuration (empty: read `resolv_conf`).
    pub upstreams: Vec<SocketAddr>,
    /// Where the node's resolvers are read when `upstreams` is empty.
    pub resolv_conf: PathBuf,
    /// The TTL of the cluster zone's answers.
    pub ttl: u32,
    /// How many upstream answers the cache keeps.
    pub cache_size: usize,
}

fn upstream(s: &str) -> Option<SocketAddr> {
    s.parse::<SocketAddr>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 53)))
}

impl DnsFile {
    /// Checks the values; errors name the key.
    pub fn check(&self) -> Result<DnsConfig, String> {
        let mut addresses = Vec::new();
        for (i, a) in self
            .addresses
            .clone()
            .unwrap_or_else(|| vec![DEFAULT_ADDRESS.to_string()])
            .iter()
            .enumerate()
        {
            let ip: IpAddr = a
                .parse()
                .map_err(|_| format!("dns.addresses[{i}]: {a:?} is not an IP address"))?;
            if ip.is_unspecified() || ip.is_multicast() {
                return Err(format!(
                    "dns.addresses[{i}]: {ip} cannot be a listening address"
                ));
            }
            addresses.push(ip);
        }
        if addresses.is_empty() {
            return Err("dns.addresses: empty (leave the key out for the default)".into());
        }
        let port = self.port.unwrap_or(53);
        if port == 0 {
            return Err("dns.port: 0 is not a port".into());
        }
        let domain = self.domain.as_deref().map(ferro_dns::zone::normalize);
        if let Some(d) = &domain {
            if ferro_cluster::egress::NamePattern::parse(d).is_err() {
                return Err(format!("dns.domain: {d:?} is not a DNS name"));
            }
        }
        let mut upstreams = Vec::new();
        for (i, u) in self.upstreams.iter().flatten().enumerate() {
            upstreams.push(upstream(u).ok_or_else(|| {
                format!("dns.upstreams[{i}]: {u:?} is not ADDRESS or ADDRESS:PORT")
            })?);
        }
        let resolv_conf = self
            .resolv_conf
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_RESOLV_CONF));
        if !resolv_conf.is_absolute() {
            return Err(format!(
                "dns.resolvConf: {} is not an absolute path",
                resolv_conf.display()
            ));
        }
        let ttl = self.ttl.unwrap_or(ferro_dns::zone::DEFAULT_TTL);
        if !(1..=3600).contains(&ttl) {
            return Err(format!("dns.ttl: {ttl} is not between 1 and 3600 seconds"));
        }
        let cache_size = self.cache_size.unwrap_or(DEFAULT_CACHE_SIZE);
        Ok(DnsConfig {
            addresses,
            port,
            domain,
            upstreams,
            resolv_conf,
            ttl,
            cache_size,
        })
    }
}

/// The nameservers of a resolv.conf text (port 53), without `exclude` (the server's own
/// addresses: it must not forward to itself).
pub fn nameservers(text: &str, exclude: &[IpAddr]) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some("nameserver")).then(|| w.next()).flatten()
        })
        // a scoped IPv6 address (fe80::1%eth0) is not one this server can use
        .filter_map(|a| a.parse::<IpAddr>().ok())
        .filter(|ip| !exclude.contains(ip) && !ip.is_unspecified())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

impl DnsConfig {
    /// The upstreams: the configured ones, or the nameservers of `resolv_conf`.
    pub fn upstreams(&self) -> Result<Vec<SocketAddr>, String> {
        if !self.upstreams.is_empty() {
            return Ok(self.upstreams.clone());
        }
        let p: &Path = &self.resolv_conf;
        let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
        Ok(nameservers(&text, &self.addresses))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(v: serde_json::Value) -> Result<DnsConfig, String> {
        serde_json::from_value::<DnsFile>(v).unwrap().check()
    }

    #[test]
    fn defaults() {
        let c = check(serde_json::json!({})).unwrap();
        assert_eq!(
            c.addresses,
            vec![DEFAULT_ADDRESS.parse::<IpAddr>().unwrap()]
        );
        assert_eq!((c.port, c.domain.as_deref(), c.ttl), (53, None, 5));
        assert!(c.upstreams.is_empty());
    }

    #[test]
    fn mistakes_name_the_key() {
        for (v, want) in [
            (serde_json::json!({"addresses": ["x"]}), "dns.addresses[0]"),
            (serde_json::json!({"addresses": []}), "dns.addresses"),
            (serde_json::json!({"port": 0}), "dns.port"),
            (serde_json::json!({"domain": "a b"}), "dns.domain"),
            (
                serde_json::json!({"upstreams": ["1.2.3.4", "nope"]}),
                "dns.upstreams[1]",
            ),
            (
                serde_json::json!({"resolvConf": "r.conf"}),
                "dns.resolvConf",
            ),
            (serde_json::json!({"ttl": 0}), "dns.ttl"),
        ] {
            let e = check(v.clone()).unwrap_err();
            assert!(e.starts_with(want), "{v}: {e}");
        }
        let c = check(serde_json::json!({"upstreams": ["10.0.0.2", "[fd00::2]:5353"]})).unwrap();
        assert_eq!(
            c.upstreams,
            vec![
                "10.0.0.2:53".parse::<SocketAddr>().unwrap(),
                "[fd00::2]:5353".parse().unwrap()
            ]
        );
    }

    #[test]
    fn resolv_conf_nameservers() {
        let text = "# generated\nsearch example.com\nnameserver 10.0.0.2\nnameserver 169.254.20.10\nnameserver fe80::1%eth0\nnameserver fd00::53\noptions ndots:5\n";
        let own: Vec<IpAddr> = vec!["169.254.20.10".parse().unwrap()];
        assert_eq!(
            nameservers(text, &own),
            vec![
                "10.0.0.2:53".parse::<SocketAddr>().unwrap(),
                "[fd00::53]:53".parse().unwrap()
            ]
        );
    }
}
