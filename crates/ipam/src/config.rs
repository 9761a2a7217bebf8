//! The `ipam` section of a host-local configuration, parsed and canonicalized.
//!
//! [`IpamConfig::parse`] turns the raw JSON (keys matched case-insensitively, as Go's
//! `encoding/json` does) into range sets whose invariants hold: every subnet is a network
//! address with room for hosts, every range lies inside its subnet with `start <= end`, the
//! gateway is known, ranges of a set do not overlap, sets do not overlap each other. Range sets
//! come from, in this order: `runtimeConfig.ipRanges` (capability `ipRanges`), the legacy
//! single range at the top of `ipam` (`subnet`, `rangeStart`, `rangeEnd`, `gateway`), then
//! `ipam.ranges`. A set's position in that list is its index in `last_reserved_ip.<index>`.
//!
//! Every error names the key path as the administrator wrote it, e.g.
//! `ipam.ranges[1][0].rangeStart: 10.1.0.5 is outside subnet 10.2.0.0/24`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use ferro_spec::conf::lowercase_keys;
use ferro_spec::{NetConf, Route, Version};
use ipnet::IpNet;
use serde_json::{Map, Value};

use crate::error::IpamError;

/// Where host-local keeps its leases unless `dataDir` says otherwise.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/cni/networks";

/// One range: a subnet and the inclusive slice of it that is handed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    /// The subnet (a network address; its prefix is the prefix of every address handed out).
    pub subnet: IpNet,
    /// First address handed out (inclusive).
    pub start: IpAddr,
    /// Last address handed out (inclusive).
    pub end: IpAddr,
    /// The gateway returned with every address; never handed out.
    pub gateway: IpAddr,
}

impl Range {
    /// True when `ip` lies in `start..=end` (same family).
    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.start.is_ipv4()
            && ip_key(self.start) <= ip_key(ip)
            && ip_key(ip) <= ip_key(self.end)
    }

    /// Number of addresses in `start..=end` (saturating at `u128::MAX`).
    pub fn size(&self) -> u128 {
        (ip_key(self.end) - ip_key(self.start)).saturating_add(1)
    }

    /// Number of addresses that can be handed out: the size minus the gateway if it is inside.
    pub fn capacity(&self) -> u128 {
        self.size() - u128::from(self.contains(self.gateway))
    }

    /// `ip` with the prefix length of this range's subnet.
    pub fn address(&self, ip: IpAddr) -> IpNet {
        IpNet::new(ip, self.subnet.prefix_len()).unwrap_or_else(|_| IpNet::from(ip))
    }

    fn overlaps(&self, other: &Range) -> bool {
        self.start.is_ipv4() == other.start.is_ipv4()
            && ip_key(self.start) <= ip_key(other.end)
            && ip_key(other.start) <= ip_key(self.end)
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

/// A range set: the pool one address of the result comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeSet {
    /// Key path of the set (`ipam.ranges[1]`, `runtimeConfig.ipRanges[0]`, or `ipam` for the
    /// legacy top-level range), used in messages.
    pub origin: String,
    /// The ranges, all of one family, disjoint.
    pub ranges: Vec<Range>,
}

impl RangeSet {
    /// The range whose `start..=end` holds `ip`.
    pub fn range_for(&self, ip: IpAddr) -> Option<&Range> {
        self.ranges.iter().find(|r| r.contains(ip))
    }

    /// True when some range of the set holds `ip`.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.range_for(ip).is_some()
    }

    /// True for an IPv4 set.
    pub fn is_ipv4(&self) -> bool {
        self.ranges.first().is_some_and(|r| r.start.is_ipv4())
    }

    /// Addresses that can be handed out, over all ranges (saturating).
    pub fn capacity(&self) -> u128 {
        self.ranges
            .iter()
            .fold(0u128, |acc, r| acc.saturating_add(r.capacity()))
    }

    fn overlaps<'a>(&'a self, other: &'a RangeSet) -> Option<(&'a Range, &'a Range)> {
        self.ranges
            .iter()
            .flat_map(|a| other.ranges.iter().map(move |b| (a, b)))
            .find(|(a, b)| a.overlaps(b))
    }
}

impl fmt::Display for RangeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "range set {} (", self.origin)?;
        for (i, r) in self.ranges.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{r}")?;
        }
        f.write_str(")")
    }
}

/// The canonical `ipam` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpamConfig {
    /// Range sets, in allocation order; one address is allocated from each.
    pub range_sets: Vec<RangeSet>,
    /// `routes`, copied verbatim into the result.
    pub routes: Vec<Route>,
    /// `dataDir` (default [`DEFAULT_DATA_DIR`]); leases live in `<dataDir>/<network name>/`.
    pub data_dir: PathBuf,
    /// `resolvConf`: a resolv.conf whose settings become the result's `dns`.
    pub resolv_conf: Option<PathBuf>,
}

impl IpamConfig {
    /// Reads the `ipam` section and `runtimeConfig.ipRanges` of a request.
    pub fn from_netconf(conf: &NetConf, version: Version) -> Result<Self, IpamError> {
        let ipam = conf.ipam.as_ref().ok_or_else(|| {
            IpamError::config("ipam", "missing: host-local needs an ipam section")
        })?;
        let ip_ranges = conf.runtime_config.ip_ranges();
        Self::parse(
            &Value::Object(ipam.raw.clone()),
            ip_ranges.as_ref(),
            version,
        )
    }

    /// Parses and canonicalizes an `ipam` object plus the optional `ipRanges` capability
    /// argument, for a request of `version` (before 0.3.0 at most one IPv4 and one IPv6 set).
    pub fn parse(
        ipam: &Value,
        ip_ranges: Option<&Value>,
        version: Version,
    ) -> Result<Self, IpamError> {
        let ipam = lowercase_keys(ipam);
        let obj = ipam
            .as_object()
            .ok_or_else(|| IpamError::decode("ipam", "expected an object"))?;

        let mut sets = Vec::new();
        if let Some(v) = ip_ranges.filter(|v| !v.is_null()) {
            sets.extend(parse_sets(&lowercase_keys(v), "runtimeConfig.ipRanges")?);
        }
        if let Some(legacy) = parse_legacy(obj)? {
            sets.push(legacy);
        }
        match obj.get("ranges") {
            None | Some(Value::Null) => {}
            Some(v) => sets.extend(parse_sets(v, "ipam.ranges")?),
        }
        if sets.is_empty() {
            return Err(IpamError::config(
                "ipam.ranges",
                "no IP ranges specified (set ipam.ranges or ipam.subnet)",
            ));
        }
        if version < Version::V0_3_0 {
            let v4 = sets.iter().filter(|s| s.is_ipv4()).count();
            let v6 = sets.len() - v4;
            if v4 > 1 || v6 > 1 {
                return Err(IpamError::SeveralPerFamily { version, v4, v6 });
            }
        }
        for (j, later) in sets.iter().enumerate() {
            for earlier in &sets[..j] {
                if let Some((a, b)) = later.overlaps(earlier) {
                    return Err(IpamError::config(
                        later.origin.clone(),
                        format!(
                            "range set overlaps range set {}: {a} overlaps {b}",
                            earlier.origin
                        ),
                    ));
                }
            }
        }

        let routes = match obj.get("routes") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    serde_json::from_value::<Route>(r.clone())
                        .map_err(|e| IpamError::decode(format!("ipam.routes[{i}]"), e.to_string()))
                })
                .collect::<Result<_, _>>()?,
            Some(other) => {
                return Err(IpamError::decode(
                    "ipam.routes",
                    format!("expected a list of routes, got {other}"),
                ))
            }
        };
        let data_dir = opt_str(obj, "datadir", "ipam.dataDir")?
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let resolv_conf = opt_str(obj, "resolvconf", "ipam.resolvConf")?.map(PathBuf::from);
        Ok(IpamConfig {
            range_sets: sets,
            routes,
            data_dir,
            resolv_conf,
        })
    }

    /// Index of the range set holding `ip`.
    pub fn set_for(&self, ip: IpAddr) -> Option<usize> {
        self.range_sets.iter().position(|s| s.contains(ip))
    }
}

/// A string value (`""` and `null` count as absent), or a code-6 error naming `path`.
fn opt_str(obj: &Map<String, Value>, key: &str, path: &str) -> Result<Option<String>, IpamError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
        Some(other) => Err(IpamError::decode(
            path,
            format!("expected a string, got {other}"),
        )),
    }
}

fn parse_sets(v: &Value, origin: &str) -> Result<Vec<RangeSet>, IpamError> {
    let Value::Array(sets) = v else {
        return Err(IpamError::decode(
            origin,
            format!("expected a list of range sets (a list of lists of ranges), got {v}"),
        ));
    };
    sets.iter()
        .enumerate()
        .map(|(i, set)| {
            let set_path = format!("{origin}[{i}]");
            let Value::Array(ranges) = set else {
                return Err(IpamError::decode(
                    set_path,
                    format!("expected a list of ranges, got {set}"),
                ));
            };
            let ranges = ranges
                .iter()
                .enumerate()
                .map(|(j, r)| {
                    let path = format!("{set_path}[{j}]");
                    let obj = r.as_object().ok_or_else(|| {
                        IpamError::decode(path.clone(), format!("expected a range object, got {r}"))
                    })?;
                    parse_range(obj, &format!("{path}."))
                })
                .collect::<Result<Vec<_>, _>>()?;
            check_set(RangeSet {
                origin: set_path,
                ranges,
            })
        })
        .collect()
}

fn parse_legacy(obj: &Map<String, Value>) -> Result<Option<RangeSet>, IpamError> {
    let has_subnet = !matches!(obj.get("subnet"), None | Some(Value::Null));
    if !has_subnet {
        for (key, name) in [
            ("rangestart", "rangeStart"),
            ("rangeend", "rangeEnd"),
            ("gateway", "gateway"),
        ] {
            if opt_str(obj, key, &format!("ipam.{name}"))?.is_some() {
                return Err(IpamError::config(
                    format!("ipam.{name}"),
                    "set without ipam.subnet (the legacy single range needs a subnet)",
                ));
            }
        }
        return Ok(None);
    }
    let range = parse_range(obj, "ipam.")?;
    check_set(RangeSet {
        origin: "ipam".into(),
        ranges: vec![range],
    })
    .map(Some)
}

fn check_set(set: RangeSet) -> Result<RangeSet, IpamError> {
    let Some(first) = set.ranges.first() else {
        return Err(IpamError::config(set.origin, "empty range set"));
    };
    let v4 = first.start.is_ipv4();
    for (j, r) in set.ranges.iter().enumerate() {
        if r.start.is_ipv4() != v4 {
            return Err(IpamError::config(
                format!("{}[{j}].subnet", set.origin),
                format!(
                    "{} mixes address families: the set's first range is {}",
                    r.subnet,
                    family(v4)
                ),
            ));
        }
        for (i, earlier) in set.ranges[..j].iter().enumerate() {
            if r.overlaps(earlier) {
                return Err(IpamError::config(
                    format!("{}[{j}]", set.origin),
                    format!("range {r} overlaps range {earlier} ({}[{i}])", set.origin),
                ));
            }
        }
    }
    Ok(set)
}

fn family(v4: bool) -> &'static str {
    if v4 {
        "IPv4"
    } else {
        "IPv6"
    }
}

/// Parses one range object; `prefix` is the key path of the object plus a dot.
fn parse_range(obj: &Map<String, Value>, prefix: &str) -> Result<Range, IpamError> {
    let subnet_path = format!("{prefix}subnet");
    let subnet_str = opt_str(obj, "subnet", &subnet_path)?
        .ok_or_else(|| IpamError::config(subnet_path.clone(), "missing"))?;
    let subnet: IpNet = subnet_str.parse().map_err(|_| {
        IpamError::config(
            subnet_path.clone(),
            format!("invalid CIDR {subnet_str:?} (want e.g. 10.22.0.0/24)"),
        )
    })?;
    if subnet.addr() != subnet.network() {
        return Err(IpamError::config(
            subnet_path,
            format!(
                "{subnet} has host bits set: the network address is {}",
                subnet.trunc()
            ),
        ));
    }
    if subnet.prefix_len() + 2 > subnet.max_prefix_len() {
        return Err(IpamError::config(
            subnet_path,
            format!("network {subnet} too small to allocate from"),
        ));
    }
    if let IpNet::V6(n) = subnet {
        if n.prefix_len() >= 96 && n.network().to_ipv4_mapped().is_some() {
            return Err(IpamError::config(
                subnet_path,
                format!(
                    "{subnet}: IPv4-mapped IPv6 subnets are not supported; use the IPv4 subnet"
                ),
            ));
        }
    }
    let v4 = subnet.addr().is_ipv4();
    let network = ip_key(subnet.network());
    let last = ip_key(subnet.broadcast());

    let addr = |key: &str, name: &str| -> Result<Option<IpAddr>, IpamError> {
        let path = format!("{prefix}{name}");
        let Some(s) = opt_str(obj, key, &path)? else {
            return Ok(None);
        };
        let ip = s
            .parse::<IpAddr>()
            .map_err(|_| IpamError::config(path.clone(), format!("invalid IP address {s:?}")))?
            .to_canonical();
        if ip.is_ipv4() != v4 {
            return Err(IpamError::config(
                path,
                format!("{ip} is not an {} address like subnet {subnet}", family(v4)),
            ));
        }
        if !subnet.contains(&ip) {
            return Err(IpamError::config(
                path,
                format!("{ip} is outside subnet {subnet}"),
            ));
        }
        Ok(Some(ip))
    };
    let in_range = |ip: IpAddr, name: &str| -> Result<IpAddr, IpamError> {
        let path = format!("{prefix}{name}");
        if ip_key(ip) == network {
            return Err(IpamError::config(
                path,
                format!("{ip} is the network address of subnet {subnet}"),
            ));
        }
        if v4 && ip_key(ip) == last {
            return Err(IpamError::config(
                path,
                format!("{ip} is the broadcast address of subnet {subnet}"),
            ));
        }
        Ok(ip)
    };

    let start = match addr("rangestart", "rangeStart")? {
        Some(ip) => in_range(ip, "rangeStart")?,
        None => ip_from_key(network + 1, v4),
    };
    let end = match addr("rangeend", "rangeEnd")? {
        Some(ip) => in_range(ip, "rangeEnd")?,
        None if v4 => ip_from_key(last - 1, v4),
        None => ip_from_key(last, v4),
    };
    if ip_key(start) > ip_key(end) {
        return Err(IpamError::config(
            format!("{prefix}rangeEnd"),
            format!("{end} is before rangeStart {start}"),
        ));
    }
    let gateway = addr("gateway", "gateway")?.unwrap_or_else(|| ip_from_key(network + 1, v4));
    Ok(Range {
        subnet,
        start,
        end,
        gateway,
    })
}

/// A requested address and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requested {
    /// The address (prefix, if any was given, dropped).
    pub ip: IpAddr,
    /// `CNI_ARGS IP`, `args.cni.ips[i]` or `runtimeConfig.ips[i]`.
    pub source_key: String,
}

/// Collects requested addresses from `args.cni.ips`, `CNI_ARGS` `IP=` (a comma-separated
/// list) and `runtimeConfig.ips`, merged in that order as the reference does. Each entry is
/// `<ip>` or `<ip>/<prefix>`; repeats are dropped.
pub fn requested_ips(
    args_cni_ips: Option<&Value>,
    cni_args_ip: Option<&str>,
    runtime_ips: &[String],
) -> Result<Vec<Requested>, IpamError> {
    let mut out: Vec<Requested> = Vec::new();
    let mut push = |ip: IpAddr, source_key: String| {
        if !out.iter().any(|r| r.ip == ip) {
            out.push(Requested { ip, source_key });
        }
    };
    match args_cni_ips {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let key = format!("args.cni.ips[{i}]");
                let s = item.as_str().ok_or_else(|| {
                    IpamError::decode(key.clone(), format!("expected a string, got {item}"))
                })?;
                let ip = parse_ip_or_cidr(s)
                    .ok_or_else(|| IpamError::config(key.clone(), format!("invalid IP {s:?}")))?;
                push(ip, key);
            }
        }
        Some(other) => {
            return Err(IpamError::decode(
                "args.cni.ips",
                format!("expected a list of strings, got {other}"),
            ))
        }
    }
    for item in cni_args_ip.unwrap_or_default().split(',') {
        let s = item.trim();
        if s.is_empty() {
            continue;
        }
        let ip = parse_ip_or_cidr(s).ok_or_else(|| IpamError::InvalidArgs {
            key: "CNI_ARGS IP".into(),
            msg: format!("invalid IP {s:?}"),
        })?;
        push(ip, "CNI_ARGS IP".into());
    }
    for (i, s) in runtime_ips.iter().enumerate() {
        let key = format!("runtimeConfig.ips[{i}]");
        let ip = parse_ip_or_cidr(s)
            .ok_or_else(|| IpamError::config(key.clone(), format!("invalid IP {s:?}")))?;
        push(ip, key);
    }
    Ok(out)
}

fn parse_ip_or_cidr(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    let ip = if s.contains('/') {
        s.parse::<IpNet>().ok()?.addr()
    } else {
        s.parse::<IpAddr>().ok()?
    };
    Some(ip.to_canonical())
}

/// An address as a number (IPv4 in the low 32 bits), for ordering and stepping.
pub(crate) fn ip_key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// The inverse of [`ip_key`] for the given family.
pub(crate) fn ip_from_key(k: u128, v4: bool) -> IpAddr {
    if v4 {
        IpAddr::V4(Ipv4Addr::from(k as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<IpamConfig, IpamError> {
        IpamConfig::parse(&v, None, Version::V1_0_0)
    }

    fn err(v: Value) -> (u32, String) {
        let e = parse(v).unwrap_err();
        (e.code().number(), e.to_string())
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn defaults_v4() {
        let c =
            parse(json!({"type": "host-local", "ranges": [[{"subnet": "10.22.0.0/24"}]]})).unwrap();
        let r = &c.range_sets[0].ranges[0];
        assert_eq!(
            r.start,
            ip("10.22.0.1"),
            "start = network+1 (the gateway is skipped later)"
        );
        assert_eq!(r.end, ip("10.22.0.254"), "end = broadcast-1");
        assert_eq!(r.gateway, ip("10.22.0.1"));
        assert_eq!(r.capacity(), 253);
        assert_eq!(c.data_dir, PathBuf::from("/var/lib/cni/networks"));
        assert_eq!(c.resolv_conf, None);
        assert!(c.routes.is_empty());
        assert_eq!(c.range_sets[0].origin, "ipam.ranges[0]");
    }

    #[test]
    fn defaults_v6_end_is_the_last_address() {
        let c = parse(json!({"ranges": [[{"subnet": "fd00:22::/120"}]]})).unwrap();
        let r = &c.range_sets[0].ranges[0];
        assert_eq!(r.start, ip("fd00:22::1"));
        assert_eq!(r.end, ip("fd00:22::ff"));
        assert_eq!(r.gateway, ip("fd00:22::1"));
    }

    #[test]
    fn explicit_values_and_case_insensitive_keys() {
        let c = parse(json!({
            "Ranges": [[{"SUBNET": "10.1.0.0/16", "RangeStart": "10.1.2.10", "rangeend": "10.1.2.20", "Gateway": "10.1.0.254"}]],
            "DataDir": "/tmp/x", "RESOLVCONF": "/etc/r.conf",
            "Routes": [{"Dst": "0.0.0.0/0", "GW": "10.1.0.254"}, {"dst": "192.168.0.0/16"}]
        }))
        .unwrap();
        let r = &c.range_sets[0].ranges[0];
        assert_eq!(
            (r.start, r.end, r.gateway),
            (ip("10.1.2.10"), ip("10.1.2.20"), ip("10.1.0.254"))
        );
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(c.resolv_conf, Some(PathBuf::from("/etc/r.conf")));
        assert_eq!(c.routes.len(), 2);
        assert_eq!(c.routes[0].gw, Some(ip("10.1.0.254")));
        assert_eq!(c.routes[1].gw, None);
    }

    #[test]
    fn empty_strings_mean_absent() {
        let c = parse(json!({"ranges": [[{"subnet": "10.1.0.0/24", "rangeStart": "", "gateway": ""}]], "dataDir": ""})).unwrap();
        assert_eq!(c.range_sets[0].ranges[0].start, ip("10.1.0.1"));
        assert_eq!(c.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
    }

    #[test]
    fn legacy_range_is_prepended_and_ip_ranges_before_it() {
        let ipam = json!({"subnet": "10.9.0.0/24", "rangeStart": "10.9.0.5",
            "ranges": [[{"subnet": "10.10.0.0/24"}], [{"subnet": "fd00::/64"}]]});
        let c = IpamConfig::parse(&ipam, None, Version::V1_0_0).unwrap();
        let origins: Vec<_> = c.range_sets.iter().map(|s| s.origin.as_str()).collect();
        assert_eq!(origins, ["ipam", "ipam.ranges[0]", "ipam.ranges[1]"]);
        assert_eq!(c.range_sets[0].ranges[0].start, ip("10.9.0.5"));

        let ip_ranges = json!([[{"Subnet": "10.50.0.0/24"}]]);
        let c = IpamConfig::parse(&ipam, Some(&ip_ranges), Version::V1_0_0).unwrap();
        let origins: Vec<_> = c.range_sets.iter().map(|s| s.origin.as_str()).collect();
        assert_eq!(
            origins,
            [
                "runtimeConfig.ipRanges[0]",
                "ipam",
                "ipam.ranges[0]",
                "ipam.ranges[1]"
            ],
            "H6: ipRanges are prepended"
        );
        assert_eq!(c.set_for(ip("10.50.0.7")), Some(0));
        assert_eq!(c.set_for(ip("fd00::7")), Some(3));
        assert_eq!(c.set_for(ip("10.99.0.7")), None);
    }

    #[test]
    fn too_small_subnets_are_rejected() {
        for s in ["10.0.0.0/31", "10.0.0.1/32", "fd00::/127", "fd00::1/128"] {
            let (code, msg) = err(json!({"ranges": [[{"subnet": s}]]}));
            assert_eq!(code, 7);
            assert!(msg.starts_with("ipam.ranges[0][0].subnet: "), "{msg}");
            assert!(
                msg.contains("too small") || msg.contains("host bits"),
                "{msg}"
            );
        }
        let (_, msg) = err(json!({"ranges": [[{"subnet": "10.0.0.0/31"}]]}));
        assert!(msg.contains("too small"), "{msg}");
        assert!(parse(json!({"ranges": [[{"subnet": "10.0.0.0/30"}]]})).is_ok());
        assert!(parse(json!({"ranges": [[{"subnet": "fd00::/126"}]]})).is_ok());
    }

    #[test]
    fn subnet_errors_name_the_key() {
        let cases = [
            (json!({"ranges": [[{"subnet": "10.0.0.5/24"}]]}), "ipam.ranges[0][0].subnet: 10.0.0.5/24 has host bits set: the network address is 10.0.0.0/24"),
            (json!({"ranges": [[{"subnet": "nope"}]]}), "ipam.ranges[0][0].subnet: invalid CIDR \"nope\""),
            (json!({"ranges": [[{"subnet": "10.0.0.0"}]]}), "ipam.ranges[0][0].subnet: invalid CIDR"),
            (json!({"ranges": [[{"rangeStart": "10.0.0.5"}]]}), "ipam.ranges[0][0].subnet: missing"),
            (json!({"ranges": [[{"subnet": ""}]]}), "ipam.ranges[0][0].subnet: missing"),
            (json!({"ranges": [[{"subnet": "::ffff:10.0.0.0/120"}]]}), "IPv4-mapped"),
            (json!({"subnet": "10.0.0.0/33"}), "ipam.subnet: invalid CIDR"),
        ];
        for (conf, want) in cases {
            let (code, msg) = err(conf);
            assert_eq!(code, 7, "{msg}");
            assert!(
                msg.starts_with(want) || msg.contains(want),
                "{msg:?} does not contain {want:?}"
            );
        }
    }

    #[test]
    fn range_bound_errors_name_the_key() {
        let cases = [
            (
                json!({"ranges": [[{"subnet": "10.1.0.0/24"}], [{"subnet": "10.2.0.0/24", "rangeStart": "10.1.0.5"}]]}),
                "ipam.ranges[1][0].rangeStart: 10.1.0.5 is outside subnet 10.2.0.0/24",
            ),
            (
                json!({"ranges": [[{"subnet": "10.2.0.0/24", "rangeEnd": "10.3.0.5"}]]}),
                "ipam.ranges[0][0].rangeEnd: 10.3.0.5 is outside subnet 10.2.0.0/24",
            ),
            (
                json!({"ranges": [[{"subnet": "10.2.0.0/24", "rangeStart": "10.2.0.50", "rangeEnd": "10.2.0.40"}]]}),
                "ipam.ranges[0][0].rangeEnd: 10.2.0.40 is before rangeStart 10.2.0.50",
            ),
            (
                json!({"ranges": [[{"subnet": "10.2.0.0/24", "rangeStart": "10.2.0.0"}]]}),
                "ipam.ranges[0][0].rangeStart: 10.2.0.0 is the network address of subnet 10.2.0.0/24",
            ),
            (
                json!({"ranges": [[{"subnet": "10.2.0.0/24", "rangeEnd": "10.2.0.255"}]]}),
                "ipam.ranges[0][0].rangeEnd: 10.2.0.255 is the broadcast address of subnet 10.2.0.0/24",
            ),
            (
                json!({"ranges": [[{"subnet": "10.2.0.0/24", "rangeStart": "fd00::5"}]]}),
                "ipam.ranges[0][0].rangeStart: fd00::5 is not an IPv4 address like subnet 10.2.0.0/24",
            ),
            (
                json!({"ranges": [[{"subnet": "10.2.0.0/24", "rangeStart": "10.2.0.x"}]]}),
                "ipam.ranges[0][0].rangeStart: invalid IP address \"10.2.0.x\"",
            ),
            (
                json!({"ranges": [[{"subnet": "10.2.0.0/24", "gateway": "10.3.0.1"}]]}),
                "ipam.ranges[0][0].gateway: 10.3.0.1 is outside subnet 10.2.0.0/24",
            ),
            (
                json!({"subnet": "10.2.0.0/24", "rangeStart": "10.9.0.1"}),
                "ipam.rangeStart: 10.9.0.1 is outside subnet 10.2.0.0/24",
            ),
            (
                json!({"rangeStart": "10.9.0.1", "ranges": [[{"subnet": "10.2.0.0/24"}]]}),
                "ipam.rangeStart: set without ipam.subnet",
            ),
        ];
        for (conf, want) in cases {
            let (code, msg) = err(conf);
            assert_eq!(code, 7, "{msg}");
            assert!(
                msg.starts_with(want),
                "{msg:?} does not start with {want:?}"
            );
        }
    }

    #[test]
    fn set_errors_name_the_set() {
        let cases = [
            (json!({}), "ipam.ranges: no IP ranges specified"),
            (json!({"ranges": []}), "ipam.ranges: no IP ranges specified"),
            (json!({"ranges": [[]]}), "ipam.ranges[0]: empty range set"),
            (
                json!({"ranges": [[{"subnet": "10.0.0.0/24"}, {"subnet": "fd00::/64"}]]}),
                "ipam.ranges[0][1].subnet: fd00::/64 mixes address families",
            ),
            (
                json!({"ranges": [[{"subnet": "10.0.0.0/24", "rangeEnd": "10.0.0.100"}, {"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.100"}]]}),
                "ipam.ranges[0][1]: range 10.0.0.100-10.0.0.254 overlaps range 10.0.0.1-10.0.0.100 (ipam.ranges[0][0])",
            ),
            (
                json!({"ranges": [[{"subnet": "10.0.0.0/24"}], [{"subnet": "10.0.0.0/16"}]]}),
                "ipam.ranges[1]: range set overlaps range set ipam.ranges[0]",
            ),
            (
                json!({"subnet": "10.0.0.0/24", "ranges": [[{"subnet": "10.0.0.0/25"}]]}),
                "ipam.ranges[0]: range set overlaps range set ipam",
            ),
        ];
        for (conf, want) in cases {
            let (code, msg) = err(conf);
            assert_eq!(code, 7, "{msg}");
            assert!(
                msg.starts_with(want),
                "{msg:?} does not start with {want:?}"
            );
        }
        // Disjoint slices of one subnet are fine, in one set and across sets.
        parse(json!({"ranges": [
            [{"subnet": "10.0.0.0/24", "rangeEnd": "10.0.0.99"}, {"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.100"}]
        ]}))
        .unwrap();
        parse(json!({"ranges": [
            [{"subnet": "10.0.0.0/24", "rangeEnd": "10.0.0.99"}], [{"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.100"}]
        ]}))
        .unwrap();
    }

    #[test]
    fn ip_ranges_errors_name_runtime_config() {
        let ipr = json!([[{"subnet": "10.0.0.0/24", "rangeStart": "10.1.0.1"}]]);
        let e = IpamConfig::parse(&json!({}), Some(&ipr), Version::V1_0_0).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("runtimeConfig.ipRanges[0][0].rangeStart: 10.1.0.1 is outside"),
            "{e}"
        );
        let ipr = json!([[{"subnet": "10.0.0.0/24"}]]);
        let e = IpamConfig::parse(
            &json!({"ranges": [[{"subnet": "10.0.0.128/25"}]]}),
            Some(&ipr),
            Version::V1_0_0,
        )
        .unwrap_err();
        assert!(
            e.to_string().starts_with(
                "ipam.ranges[0]: range set overlaps range set runtimeConfig.ipRanges[0]"
            ),
            "{e}"
        );
    }

    #[test]
    fn wrong_types_are_code_6_naming_the_key() {
        let cases = [
            (json!({"ranges": "10.0.0.0/24"}), "ipam.ranges"),
            (
                json!({"ranges": [{"subnet": "10.0.0.0/24"}]}),
                "ipam.ranges[0]",
            ),
            (json!({"ranges": [["10.0.0.0/24"]]}), "ipam.ranges[0][0]"),
            (
                json!({"ranges": [[{"subnet": 5}]]}),
                "ipam.ranges[0][0].subnet",
            ),
            (
                json!({"subnet": "10.0.0.0/24", "dataDir": 5}),
                "ipam.dataDir",
            ),
            (
                json!({"subnet": "10.0.0.0/24", "routes": {"dst": "0.0.0.0/0"}}),
                "ipam.routes",
            ),
            (
                json!({"subnet": "10.0.0.0/24", "routes": [{"dst": "bogus"}]}),
                "ipam.routes[0]",
            ),
        ];
        for (conf, want) in cases {
            let (code, msg) = err(conf);
            assert_eq!(code, 6, "{msg}");
            assert!(
                msg.starts_with(&format!("{want}: ")),
                "{msg:?} does not name {want}"
            );
        }
    }

    #[test]
    fn old_versions_allow_one_set_per_family() {
        let two_v4 = json!({"ranges": [[{"subnet": "10.0.0.0/24"}], [{"subnet": "10.1.0.0/24"}]]});
        let e = IpamConfig::parse(&two_v4, None, Version::V0_2_0).unwrap_err();
        assert_eq!(e.code().number(), 7);
        assert!(
            e.to_string()
                .contains("cniVersion 0.2.0 allows at most one IPv4"),
            "{e}"
        );
        // reported in the reference's words, our explanation kept for the log
        let e = ferro_spec::CniError::from(e);
        assert_eq!(
            (e.msg.as_str(), e.details.as_deref()),
            (
                "CNI version 0.2.0 does not support more than 1 address per family",
                None
            )
        );
        assert!(e.note.unwrap().contains("(2 IPv4, 0 IPv6 given)"));
        IpamConfig::parse(&two_v4, None, Version::V0_3_0).unwrap();
        let dual = json!({"ranges": [[{"subnet": "10.0.0.0/24"}], [{"subnet": "fd00::/64"}]]});
        IpamConfig::parse(&dual, None, Version::V0_1_0).unwrap();
    }

    #[test]
    fn from_netconf_needs_ipam_and_reads_ip_ranges() {
        let conf = NetConf::from_value(&json!({"name": "n", "cniVersion": "1.0.0"})).unwrap();
        let e = IpamConfig::from_netconf(&conf, Version::V1_0_0).unwrap_err();
        assert!(e.to_string().starts_with("ipam: missing"), "{e}");
        let conf = NetConf::from_value(&json!({"name": "n", "cniVersion": "1.0.0",
            "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.0.0.0/24"}]]},
            "runtimeConfig": {"IPRanges": [[{"Subnet": "10.7.0.0/24"}]]}}))
        .unwrap();
        let c = IpamConfig::from_netconf(&conf, Version::V1_0_0).unwrap();
        assert_eq!(c.range_sets.len(), 2);
        assert_eq!(
            c.range_sets[0].ranges[0].subnet,
            "10.7.0.0/24".parse::<IpNet>().unwrap()
        );
    }

    #[test]
    fn requested_ips_merge_all_sources() {
        let args = json!(["10.0.0.5/24", "fd00::5"]);
        let rt = vec!["10.1.0.7".to_string(), "10.0.0.5".to_string()];
        let r = requested_ips(Some(&args), Some("10.2.0.9, 10.3.0.1"), &rt).unwrap();
        let got: Vec<_> = r
            .iter()
            .map(|r| (r.ip.to_string(), r.source_key.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("10.0.0.5".to_string(), "args.cni.ips[0]"),
                ("fd00::5".to_string(), "args.cni.ips[1]"),
                ("10.2.0.9".to_string(), "CNI_ARGS IP"),
                ("10.3.0.1".to_string(), "CNI_ARGS IP"),
                ("10.1.0.7".to_string(), "runtimeConfig.ips[0]"),
            ]
        );
        assert!(requested_ips(None, None, &[]).unwrap().is_empty());
        assert_eq!(
            requested_ips(None, Some("::ffff:10.0.0.9"), &[]).unwrap()[0].ip,
            ip("10.0.0.9")
        );
    }

    #[test]
    fn requested_ip_errors_name_the_source() {
        let e = requested_ips(None, Some("10.0.0.300"), &[]).unwrap_err();
        assert_eq!(e.code().number(), 4);
        assert!(
            e.to_string()
                .starts_with("CNI_ARGS IP: invalid IP \"10.0.0.300\""),
            "{e}"
        );
        let e = requested_ips(Some(&json!(["x"])), None, &[]).unwrap_err();
        assert_eq!(
            (
                e.code().number(),
                e.to_string().starts_with("args.cni.ips[0]:")
            ),
            (7, true),
            "{e}"
        );
        let e = requested_ips(Some(&json!("10.0.0.1")), None, &[]).unwrap_err();
        assert_eq!(e.code().number(), 6);
        let e = requested_ips(Some(&json!([5])), None, &[]).unwrap_err();
        assert!(e.to_string().starts_with("args.cni.ips[0]:"), "{e}");
        let e = requested_ips(None, None, &["1.2.3".into()]).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("runtimeConfig.ips[0]: invalid IP"),
            "{e}"
        );
    }

    #[test]
    fn range_arithmetic() {
        let c =
            parse(json!({"ranges": [[{"subnet": "10.0.0.0/29", "gateway": "10.0.0.6"}]]})).unwrap();
        let r = &c.range_sets[0].ranges[0];
        assert_eq!(r.size(), 6);
        assert_eq!(r.capacity(), 5);
        assert_eq!(r.address(ip("10.0.0.3")).to_string(), "10.0.0.3/29");
        assert_eq!(
            c.range_sets[0].to_string(),
            "range set ipam.ranges[0] (10.0.0.1-10.0.0.6)"
        );
        let big = parse(json!({"ranges": [[{"subnet": "::/0"}]]})).unwrap();
        assert_eq!(big.range_sets[0].capacity(), u128::MAX - 1);
    }
}
