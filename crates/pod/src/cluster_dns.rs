//! The `clusterDNS` key: pods get the cluster's DNS server and search domains in the
//! result's `dns`, the way a kubelet would write their resolv.conf:
//!
//! ```json
//! "clusterDNS": {"nameservers": ["169.254.20.10"], "domain": "cluster.local"}
//! ```
//!
//! gives `nameservers` as written, `search` `<namespace>.svc.<domain> svc.<domain> <domain>`
//! (the pod's namespace from `K8S_POD_NAMESPACE`; without it the last two) and `options`
//! (default `ndots:5`). It replaces the `dns` the configuration or IPAM would give.

use std::net::IpAddr;

use serde::Deserialize;

use ferro_spec::{CniError, Dns, Request};

#[derive(Deserialize)]
struct Raw {
    #[serde(default, rename = "clusterDNS")]
    cluster_dns: Option<RawDns>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDns {
    nameservers: Vec<String>,
    #[serde(default)]
    domain: Option<String>,
    #[serde(default)]
    options: Option<Vec<String>>,
}

/// The default cluster domain.
pub const DEFAULT_DOMAIN: &str = "cluster.local";

/// The result's `dns` for `req`, when the configuration has a `clusterDNS` key. A key of
/// the wrong type is code 6, a bad value code 7, naming it.
pub fn from_request(req: &Request) -> Result<Option<Dns>, CniError> {
    let raw: Raw = req.section()?;
    let Some(d) = raw.cluster_dns else {
        return Ok(None);
    };
    if d.nameservers.is_empty() {
        return Err(CniError::invalid_config(
            "clusterDNS.nameservers: empty (give the node's DNS address, e.g. 169.254.20.10)",
        ));
    }
    for (i, n) in d.nameservers.iter().enumerate() {
        if n.parse::<IpAddr>().is_err() {
            return Err(CniError::invalid_config(format!(
                "clusterDNS.nameservers[{i}]: {n:?} is not an IP address"
            )));
        }
    }
    let domain = d
        .domain
        .as_deref()
        .unwrap_or(DEFAULT_DOMAIN)
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let label_ok = |l: &str| {
        !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if !domain.split('.').all(label_ok) {
        return Err(CniError::invalid_config(format!(
            "clusterDNS.domain: {domain:?} is not a DNS name"
        )));
    }
    let mut search = Vec::new();
    if let Some(ns) = req
        .cmd
        .args
        .get("K8S_POD_NAMESPACE")
        .filter(|n| !n.is_empty())
    {
        search.push(format!("{ns}.svc.{domain}"));
    }
    search.push(format!("svc.{domain}"));
    search.push(domain);
    Ok(Some(Dns {
        nameservers: d.nameservers,
        domain: None,
        search,
        options: d.options.unwrap_or_else(|| vec!["ndots:5".to_string()]),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferro_testutil::{add_request, with_keys};
    use serde_json::{json, Value};

    fn dns(extra: Value, args: &str) -> Result<Option<Dns>, CniError> {
        let base = json!({"cniVersion": "1.1.0", "name": "kubenet", "type": "bridge"});
        let mut req = add_request(with_keys(base, extra));
        req.cmd.args = ferro_spec::args::CniArgs::parse(args).unwrap();
        from_request(&req)
    }

    #[test]
    fn absent_means_nothing() {
        assert_eq!(dns(json!({}), "").unwrap(), None);
    }

    #[test]
    fn search_domains_of_the_pods_namespace() {
        let d = dns(
            json!({"clusterDNS": {"nameservers": ["169.254.20.10"]}}),
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-1",
        )
        .unwrap()
        .unwrap();
        assert_eq!(d.nameservers, ["169.254.20.10"]);
        assert_eq!(
            d.search,
            [
                "shop.svc.cluster.local",
                "svc.cluster.local",
                "cluster.local"
            ]
        );
        assert_eq!(d.options, ["ndots:5"]);
        let d = dns(
            json!({"clusterDNS": {"nameservers": ["10.0.0.10"], "domain": "Corp.Example.", "options": []}}),
            "",
        )
        .unwrap()
        .unwrap();
        assert_eq!(d.search, ["svc.corp.example", "corp.example"]);
        assert!(d.options.is_empty());
    }

    #[test]
    fn mistakes_name_the_key() {
        for (extra, code, want) in [
            (json!({"clusterDNS": true}), 6, "clusterDNS: invalid type"),
            (
                json!({"clusterDNS": {"nameservers": []}}),
                7,
                "clusterDNS.nameservers: empty",
            ),
            (
                json!({"clusterDNS": {"nameservers": ["x"]}}),
                7,
                "clusterDNS.nameservers[0]",
            ),
            (
                json!({"clusterDNS": {"nameservers": ["10.0.0.10"], "domain": "a b"}}),
                7,
                "clusterDNS.domain",
            ),
            (
                json!({"clusterDNS": {"nameservers": ["10.0.0.10"], "search": []}}),
                7,
                "clusterDNS.search: unknown field",
            ),
        ] {
            let e = dns(extra.clone(), "").unwrap_err();
            assert_eq!(e.code.number(), code, "{extra}: {}", e.msg);
            assert!(e.msg.starts_with(want), "{extra}: {}", e.msg);
        }
    }
}
