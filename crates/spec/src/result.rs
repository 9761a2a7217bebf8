//! Results, in one canonical form and in the wire layout of every version.
//!
//! [`CniResult`] holds the union of all versions' fields (1.1.0 is a superset). It is parsed
//! leniently from any version's layout (`ips[].version` present or not, `"dns": {}`, the
//! 0.1.0/0.2.0 `ip4`/`ip6` form) and written in exactly the layout of the requested version:
//! `ips[].version` only for 0.3.x/0.4.0, the 1.1 interface and route fields only for 1.1.0.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::CniError;
use crate::version::Version;

/// An interface created or used by a plugin.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Interface {
    /// Interface name (`eth0`, `cni0`, `veth1234`).
    pub name: String,
    /// Hardware address, `aa:bb:cc:dd:ee:ff`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// MTU (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// Netns path for container interfaces; absent for host interfaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
    /// Socket path tied to the interface (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket_path: Option<String>,
    /// PCI id (1.1.0).
    #[serde(default, rename = "pciID", skip_serializing_if = "Option::is_none")]
    pub pci_id: Option<String>,
}

/// One address given to the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpConfig {
    /// Address with the prefix length of its subnet (host bits set).
    pub address: IpNet,
    /// Gateway of the subnet, if any.
    pub gateway: Option<IpAddr>,
    /// Index into `interfaces`; absent in IPAM results.
    pub interface: Option<usize>,
}

/// A route for the container interface.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Route {
    /// Destination network.
    pub dst: IpNetSer,
    /// Next hop; absent means "the default gateway of the family".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
    /// Route MTU (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// Advertised MSS (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advmss: Option<u32>,
    /// Metric, lower wins (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    /// Routing table (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<u32>,
    /// Scope: 0 global, 253 link, 254 host (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<u8>,
}

/// An [`IpNet`] that (de)serializes as CIDR text and defaults to `0.0.0.0/0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct IpNetSer(pub IpNet);

impl Default for IpNetSer {
    fn default() -> Self {
        IpNetSer(IpNet::V4(ipnet::Ipv4Net::default()))
    }
}

impl Route {
    /// A route to `dst` with an optional gateway and no 1.1 attributes.
    pub fn new(dst: IpNet, gw: Option<IpAddr>) -> Self {
        Route {
            dst: IpNetSer(dst),
            gw,
            ..Route::default()
        }
    }

    /// The destination network.
    pub fn dst(&self) -> IpNet {
        self.dst.0
    }
}

/// DNS settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    /// Name servers, in priority order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    /// Local domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Search domains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    /// Resolver options.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Dns {
    /// True when no field is set (`"dns": {}`).
    pub fn is_empty(&self) -> bool {
        self.nameservers.is_empty()
            && self.domain.is_none()
            && self.search.is_empty()
            && self.options.is_empty()
    }
}

/// The canonical result: every field of every version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniResult {
    /// Interfaces, host side and container side (empty in IPAM results).
    pub interfaces: Vec<Interface>,
    /// Addresses.
    pub ips: Vec<IpConfig>,
    /// Routes.
    pub routes: Vec<Route>,
    /// DNS settings.
    pub dns: Dns,
}

#[derive(Serialize, Deserialize)]
struct WireIp {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    address: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gateway: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    interface: Option<usize>,
}

#[derive(Serialize, Deserialize, Default)]
struct WireLegacyIp {
    ip: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gateway: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    routes: Vec<Route>,
}

#[derive(Deserialize)]
struct WireAny {
    #[serde(default)]
    interfaces: Vec<Interface>,
    #[serde(default)]
    ips: Vec<WireIp>,
    #[serde(default)]
    routes: Vec<Route>,
    #[serde(default)]
    dns: Option<Dns>,
    #[serde(default)]
    ip4: Option<WireLegacyIp>,
    #[serde(default)]
    ip6: Option<WireLegacyIp>,
}

impl CniResult {
    /// Parses a result written in any supported version's layout.
    pub fn from_value(v: &Value) -> Result<Self, CniError> {
        let wire: WireAny = serde_path_to_error::deserialize(v).map_err(|e| {
            CniError::decode(format!("invalid result: {}: {}", e.path(), e.inner()))
        })?;
        let mut r = CniResult {
            interfaces: wire.interfaces,
            ips: wire
                .ips
                .into_iter()
                .map(|ip| IpConfig {
                    address: ip.address,
                    gateway: ip.gateway,
                    interface: ip.interface,
                })
                .collect(),
            routes: wire.routes,
            dns: wire.dns.unwrap_or_default(),
        };
        for legacy in [wire.ip4, wire.ip6].into_iter().flatten() {
            r.ips.push(IpConfig {
                address: legacy.ip,
                gateway: legacy.gateway,
                interface: None,
            });
            r.routes.extend(legacy.routes);
        }
        if let Some(bad) = r
            .ips
            .iter()
            .filter_map(|ip| ip.interface)
            .find(|&i| i >= r.interfaces.len() && !r.interfaces.is_empty())
        {
            return Err(CniError::decode(format!(
                "invalid result: ips[].interface {bad} is out of range ({} interfaces)",
                r.interfaces.len()
            )));
        }
        Ok(r)
    }

    /// Parses result JSON text (a delegate's stdout).
    pub fn from_slice(bytes: &[u8]) -> Result<Self, CniError> {
        let v: Value = serde_json::from_slice(bytes)
            .map_err(|e| CniError::decode(format!("invalid result JSON: {e}")))?;
        Self::from_value(&v)
    }

    /// Writes the result in the layout of `version`.
    pub fn to_value(&self, version: Version) -> Result<Value, CniError> {
        let mut obj = serde_json::Map::new();
        obj.insert("cniVersion".into(), Value::from(version.as_str()));
        if version.is_legacy_result() {
            self.write_legacy(version, &mut obj)?;
        } else {
            let full = version >= Version::V1_1_0;
            if !self.interfaces.is_empty() {
                let ifs: Vec<Interface> = self
                    .interfaces
                    .iter()
                    .map(|i| {
                        let mut i = i.clone();
                        if !full {
                            i.mtu = None;
                            i.socket_path = None;
                            i.pci_id = None;
                        }
                        i
                    })
                    .collect();
                obj.insert("interfaces".into(), to_json(&ifs)?);
            }
            if !self.ips.is_empty() {
                let ips: Vec<WireIp> = self
                    .ips
                    .iter()
                    .map(|ip| WireIp {
                        version: version.has_ip_version_field().then(|| {
                            if ip.address.addr().is_ipv4() {
                                "4"
                            } else {
                                "6"
                            }
                            .to_string()
                        }),
                        address: ip.address,
                        gateway: ip.gateway,
                        interface: ip.interface,
                    })
                    .collect();
                obj.insert("ips".into(), to_json(&ips)?);
            }
            if !self.routes.is_empty() {
                let routes: Vec<Route> = self
                    .routes
                    .iter()
                    .map(|r| {
                        if full {
                            r.clone()
                        } else {
                            Route::new(r.dst(), r.gw)
                        }
                    })
                    .collect();
                obj.insert("routes".into(), to_json(&routes)?);
            }
            if !self.dns.is_empty() {
                obj.insert("dns".into(), to_json(&self.dns)?);
            }
        }
        Ok(Value::Object(obj))
    }

    fn write_legacy(
        &self,
        version: Version,
        obj: &mut serde_json::Map<String, Value>,
    ) -> Result<(), CniError> {
        for (key, v4) in [("ip4", true), ("ip6", false)] {
            let Some(ip) = self.ips.iter().find(|ip| ip.address.addr().is_ipv4() == v4) else {
                continue;
            };
            let legacy = WireLegacyIp {
                ip: ip.address,
                gateway: ip.gateway,
                routes: self
                    .routes
                    .iter()
                    .filter(|r| r.dst().addr().is_ipv4() == v4)
                    .map(|r| Route::new(r.dst(), r.gw))
                    .collect(),
            };
            obj.insert(key.into(), to_json(&legacy)?);
        }
        if !obj.contains_key("ip4") && !obj.contains_key("ip6") {
            return Err(CniError::no_address_for_legacy_result(version));
        }
        if !self.dns.is_empty() {
            obj.insert("dns".into(), to_json(&self.dns)?);
        }
        Ok(())
    }

    /// Index of the interface named `name` whose sandbox is set (a container interface).
    pub fn container_interface(&self, name: &str) -> Option<usize> {
        self.interfaces
            .iter()
            .position(|i| i.name == name && i.sandbox.as_deref().is_some_and(|s| !s.is_empty()))
    }

    /// Addresses that belong to the container interface `ifname`: those whose `interface`
    /// points at it, and those without an `interface` index (IPAM results, 0.2.0 results).
    pub fn addresses_of(&self, ifname: &str) -> Vec<IpConfig> {
        let idx = self.container_interface(ifname);
        self.ips
            .iter()
            .filter(|ip| match ip.interface {
                None => true,
                Some(i) => Some(i) == idx,
            })
            .cloned()
            .collect()
    }
}

fn to_json<T: Serialize>(t: &T) -> Result<Value, CniError> {
    serde_json::to_value(t).map_err(|e| CniError::internal(format!("cannot encode result: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> CniResult {
        CniResult::from_value(&json!({
            "cniVersion": "1.1.0",
            "interfaces": [
                {"name": "cni0", "mac": "fe:2f:06:2c:d4:88"},
                {"name": "veth1", "mac": "46:73:a4:7f:bd:8c", "mtu": 1500},
                {"name": "eth0", "mac": "da:f4:b9:0e:19:5e", "sandbox": "/run/netns/a", "mtu": 1500}
            ],
            "ips": [
                {"address": "10.99.0.2/24", "gateway": "10.99.0.1", "interface": 2},
                {"address": "fd00:99::2/64", "gateway": "fd00:99::1", "interface": 2}
            ],
            "routes": [
                {"dst": "0.0.0.0/0", "gw": "10.99.0.1", "mtu": 1400, "priority": 10, "table": 0, "scope": 0},
                {"dst": "::/0"}
            ],
            "dns": {"nameservers": ["10.0.0.10"], "search": ["svc.cluster.local"]}
        }))
        .unwrap()
    }

    #[test]
    fn v0_4_0_layout_has_ip_version_and_no_1_1_fields() {
        let v = sample().to_value(Version::V0_4_0).unwrap();
        assert_eq!(v["cniVersion"], "0.4.0");
        assert_eq!(v["ips"][0]["version"], "4");
        assert_eq!(v["ips"][1]["version"], "6");
        assert!(v["interfaces"][1].get("mtu").is_none());
        assert!(v["routes"][0].get("mtu").is_none());
        assert!(v["routes"][0].get("table").is_none());
        assert_eq!(v["routes"][0]["gw"], "10.99.0.1");
    }

    #[test]
    fn v1_0_0_layout_drops_ip_version() {
        let v = sample().to_value(Version::V1_0_0).unwrap();
        assert!(v["ips"][0].get("version").is_none());
        assert!(v["interfaces"][2].get("mtu").is_none());
        assert_eq!(v["ips"][0]["interface"], 2);
    }

    #[test]
    fn v1_1_0_layout_keeps_route_and_interface_extras() {
        let v = sample().to_value(Version::V1_1_0).unwrap();
        assert_eq!(v["routes"][0]["mtu"], 1400);
        assert_eq!(v["routes"][0]["priority"], 10);
        assert_eq!(
            v["routes"][0]["table"], 0,
            "table 0 is meaningful and must be kept"
        );
        assert_eq!(v["routes"][0]["scope"], 0);
        assert_eq!(v["interfaces"][1]["mtu"], 1500);
        assert_eq!(v["dns"]["nameservers"][0], "10.0.0.10");
    }

    #[test]
    fn every_version_round_trips_through_the_canonical_form() {
        let base = sample();
        for ver in [
            Version::V0_3_0,
            Version::V0_3_1,
            Version::V0_4_0,
            Version::V1_0_0,
        ] {
            let back = CniResult::from_value(&base.to_value(ver).unwrap()).unwrap();
            assert_eq!(back.ips, base.ips, "{ver}");
            assert_eq!(back.interfaces.len(), 3);
            assert_eq!(back.routes.len(), 2);
            assert_eq!(back.dns, base.dns);
        }
        let back = CniResult::from_value(&base.to_value(Version::V1_1_0).unwrap()).unwrap();
        assert_eq!(back, base);
    }

    #[test]
    fn legacy_layout_takes_first_ip_per_family_and_splits_routes() {
        let v = sample().to_value(Version::V0_2_0).unwrap();
        assert_eq!(v["ip4"]["ip"], "10.99.0.2/24");
        assert_eq!(v["ip4"]["gateway"], "10.99.0.1");
        assert_eq!(v["ip4"]["routes"][0]["dst"], "0.0.0.0/0");
        assert_eq!(v["ip6"]["routes"][0]["dst"], "::/0");
        assert!(v.get("ips").is_none() && v.get("interfaces").is_none());
        let back = CniResult::from_value(&v).unwrap();
        assert_eq!(back.ips.len(), 2);
        assert_eq!(back.routes.len(), 2);
    }

    #[test]
    fn legacy_layout_needs_an_address() {
        let e = CniResult::default().to_value(Version::V0_1_0).unwrap_err();
        assert_eq!(e.code.number(), 1);
    }

    #[test]
    fn parses_go_reference_outputs_with_empty_dns() {
        let r = CniResult::from_value(&json!({"cniVersion":"0.3.1","ips":[{"version":"4","address":"10.22.0.2/24","gateway":"10.22.0.1"},{"version":"6","address":"fd00:22::2/64","gateway":"fd00:22::1"}],"routes":[{"dst":"0.0.0.0/0"}],"dns":{}})).unwrap();
        assert_eq!(r.ips.len(), 2);
        assert!(r.dns.is_empty());
        let v = r.to_value(Version::V1_0_0).unwrap();
        assert!(v.get("dns").is_none(), "empty dns is omitted");
    }

    #[test]
    fn rejects_bad_addresses_naming_the_path() {
        let e = CniResult::from_value(&json!({"ips":[{"address":"10.0.0.300/24"}]})).unwrap_err();
        assert_eq!(e.code.number(), 6);
        assert!(e.msg.contains("ips[0].address"), "{}", e.msg);
        let e = CniResult::from_value(&json!({"interfaces":[{"name":"eth0"}],"ips":[{"address":"10.0.0.3/24","interface":4}]})).unwrap_err();
        assert!(e.msg.contains("out of range"), "{}", e.msg);
    }

    #[test]
    fn addresses_of_follows_interface_indexes() {
        let r = sample();
        assert_eq!(r.addresses_of("eth0").len(), 2);
        assert_eq!(r.addresses_of("eth1").len(), 0);
        let ipam = CniResult::from_value(&json!({"ips":[{"address":"10.1.0.2/24"}]})).unwrap();
        assert_eq!(ipam.addresses_of("eth0").len(), 1);
    }
}
