//! Seed corpora, built at run time from the project's own inputs: the configurations of
//! `conf-examples/`, the nf_tables byte captures of `crates/nftables/tests/fixtures/`, and
//! results, cache files, route-netlink messages and store files written by the project's
//! own encoders. A fuzzer starts from them; the replay test runs every one.

use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ferro_cnictl::cache::CacheEntry;
use ferro_ipam::disk::index_content;
use ferro_net::rtnl::{encode, Decoded, FdbEntry, Link, NeighSpec, RouteSpec, VxlanInfo};
use ferro_spec::{Attachment, CniResult, Dns, Interface, IpConfig, Route};
use serde_json::{json, Map, Value};

use crate::join;

/// The repository root (seeds read its files).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(rel: &str) -> Vec<u8> {
    fs::read(root().join(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"))
}

/// The seeds of target `name` (empty for an unknown name).
pub fn seeds(name: &str) -> Vec<Vec<u8>> {
    match name {
        "spec_request" => request(),
        "spec_result" => results(),
        "spec_cni_args" => cni_args(),
        "config_bridge" => plugin_confs(&["bridge"]),
        "config_flat" => plugin_confs(&["flat"]),
        "config_overlay" => plugin_confs(&["overlay"]),
        "config_portmap" => plugin_confs(&["portmap"]),
        "config_host_local" => host_local_confs(),
        "overlay_node_list" => node_lists(),
        "resolv_conf" => vec![
            b"# generated\nnameserver 10.0.0.10\nnameserver fd00::10\nsearch default.svc.cluster.local svc.cluster.local\ndomain cluster.local\noptions ndots:5 edns0\n".to_vec(),
            b"; comment\nnameserver\n  nameserver 1.1.1.1  \n".to_vec(),
        ],
        "ipam_store" => store_files(),
        "nft_decode" => nft_datagrams(),
        "rtnl_decode" => rtnl_datagrams(),
        "cnictl_cache" => cache_files(),
        "cnictl_conflist" => conflists(),
        _ => Vec::new(),
    }
}

/// Every network configuration of `conf-examples/`: the list files as they are.
fn example_files() -> Vec<(String, Vec<u8>)> {
    let dir = root().join("conf-examples");
    let mut files: Vec<_> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("conf" | "conflist")
            )
        })
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| (p.display().to_string(), fs::read(&p).expect("reads")))
        .collect()
}

/// Every plugin object of `conf-examples/`, with the list's `name` and `cniVersion` set, as
/// a runtime hands it to the plugin.
pub fn example_plugins() -> Vec<Value> {
    let mut out = Vec::new();
    for (path, bytes) in example_files() {
        let v: Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{path}: {e}"));
        match v.get("plugins").and_then(Value::as_array) {
            Some(plugins) => {
                for p in plugins {
                    let mut p = p.clone();
                    p["name"] = v["name"].clone();
                    p["cniVersion"] = v["cniVersion"].clone();
                    out.push(p);
                }
            }
            None => out.push(v),
        }
    }
    out
}

fn bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec_pretty(v).expect("serializes")
}

/// A result with every field of every version.
pub fn sample_result() -> CniResult {
    CniResult {
        interfaces: vec![
            Interface {
                name: "cni0".into(),
                mac: Some("0a:58:0a:f4:01:01".into()),
                ..Interface::default()
            },
            Interface {
                name: "eth0".into(),
                mac: Some("0a:58:0a:f4:01:05".into()),
                mtu: Some(1450),
                sandbox: Some("/run/netns/pod".into()),
                socket_path: Some("/run/sock".into()),
                pci_id: Some("0000:00:1f.6".into()),
            },
        ],
        ips: vec![
            IpConfig {
                address: "10.244.1.5/24".parse().expect("valid"),
                gateway: Some("10.244.1.1".parse().expect("valid")),
                interface: Some(1),
            },
            IpConfig {
                address: "fd00:244:1::5/64".parse().expect("valid"),
                gateway: None,
                interface: Some(1),
            },
        ],
        routes: vec![
            Route::new("0.0.0.0/0".parse().expect("valid"), None),
            Route {
                mtu: Some(1400),
                advmss: Some(1360),
                priority: Some(10),
                table: Some(100),
                scope: Some(253),
                ..Route::new(
                    "::/0".parse().expect("valid"),
                    Some("fd00:244:1::1".parse().expect("valid")),
                )
            },
        ],
        dns: Dns {
            nameservers: vec!["10.0.0.10".into()],
            domain: Some("cluster.local".into()),
            search: vec!["svc.cluster.local".into()],
            options: vec!["ndots:5".into()],
        },
    }
}

fn results() -> Vec<Vec<u8>> {
    let r = sample_result();
    let mut out: Vec<Vec<u8>> = ferro_spec::version::ALL
        .iter()
        .filter_map(|v| r.to_value(*v).ok())
        .map(|v| bytes(&v))
        .collect();
    out.push(br#"{"cniVersion":"0.4.0","ips":[{"version":"4","address":"10.1.2.3/24","interface":0}],"dns":{}}"#.to_vec());
    out
}

fn request() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let prev = sample_result();
    for (i, p) in example_plugins().into_iter().enumerate() {
        for verb in 0..6u8 {
            let mut s = vec![verb];
            s.extend(bytes(&p));
            out.push(s);
        }
        // Chained: with a prevResult in each version's layout.
        for (k, v) in crate::spec::versions().iter().enumerate() {
            if (i + k) % 3 != 0 {
                continue;
            }
            let mut p = p.clone();
            p["cniVersion"] = Value::from(v.as_str());
            if let Ok(r) = prev.to_value(*v) {
                p["prevResult"] = r;
            }
            let mut s = vec![0u8];
            s.extend(bytes(&p));
            out.push(s);
        }
    }
    out
}

fn cni_args() -> Vec<Vec<u8>> {
    vec![
        join(&[
            b"IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=u-1",
            b"c1",
            b"eth0",
            b"/run/netns/pod",
            b"/opt/cni/bin:/usr/lib/cni",
        ]),
        join(&[b"IP=10.22.0.5,fd00::5;", b"a.b-c_d", b"net1", b"", b""]),
        join(&[b"x=1;;y=", b"-bad", b"a/b", b"", b""]),
    ]
}

fn plugin_confs(types: &[&str]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = example_plugins()
        .iter()
        .filter(|p| types.iter().any(|t| p["type"] == *t))
        .map(bytes)
        .collect();
    let base = |ty: &str, extra: Value| {
        let mut v = json!({"cniVersion": "1.1.0", "name": "fuzz", "type": ty});
        for (k, x) in extra.as_object().expect("an object") {
            v[k] = x.clone();
        }
        bytes(&v)
    };
    for t in types {
        let extra = match *t {
            "bridge" => json!({"bridge": "cbr0", "isDefaultGateway": true, "ipMasq": true,
                "ipMasqBackend": "nftables", "nonMasqueradeCIDRs": ["10.0.0.0/8", "fd00::/8"],
                "mtu": 1460, "hairpinMode": true, "vlan": 0, "vlanTrunk": [], "enabledad": true,
                "portIsolation": true, "ipam": {"type": "host-local", "subnet": "10.244.1.0/24"},
                "dns": {"nameservers": ["10.0.0.10"]}}),
            "flat" => json!({"uplink": "eth0", "vnetCIDRs": ["10.240.0.0/16"], "snat": true,
                "antiSpoofing": true, "publishPodAddresses": false, "mtu": 1500,
                "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.240.0.0/16",
                "rangeStart": "10.240.0.10", "rangeEnd": "10.240.0.40"}]]}}),
            "overlay" => json!({"podCIDR": "10.244.0.0/16", "nodeName": "node-a", "vni": 7,
                "port": 4789, "underlay": "eth0", "mtu": 1450, "nodeList": "/etc/ferro-cni/nodes.json",
                "ipam": {"type": "host-local", "subnet": "10.244.1.0/24"}}),
            "portmap" => json!({"snat": true, "markMasqBit": 13, "backend": "nftables",
                "capabilities": {"portMappings": true},
                "runtimeConfig": {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": "127.0.0.1"},
                    {"HostPort": 53, "ContainerPort": 53, "Protocol": "udp"}]}}),
            _ => continue,
        };
        out.push(base(t, extra));
    }
    out
}

fn host_local_confs() -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = example_plugins()
        .iter()
        .filter(|p| p["ipam"]["type"] == "host-local")
        .map(bytes)
        .collect();
    for v in ["0.2.0", "0.4.0", "1.1.0"] {
        out.push(bytes(&json!({"cniVersion": v, "name": "fuzz", "type": "bridge",
            "args": {"cni": {"ips": ["10.1.0.5"]}},
            "runtimeConfig": {"ips": ["fd00::5/64"], "ipRanges": [[{"subnet": "10.9.0.0/24"}]]},
            "ipam": {"type": "host-local", "dataDir": "/tmp/x", "resolvConf": "/etc/resolv.conf",
                "subnet": "10.1.0.0/24", "rangeStart": "10.1.0.2", "rangeEnd": "10.1.0.200",
                "gateway": "10.1.0.1", "routes": [{"dst": "0.0.0.0/0"}],
                "ranges": [[{"subnet": "fd00::/64"}, {"subnet": "fd01::/120", "gateway": "fd01::ff"}]]}})));
    }
    out
}

fn node_lists() -> Vec<Vec<u8>> {
    vec![
        read("conf-examples/nodes.json"),
        br#"{"nodes":[{"name":"a","address":"fd00::4","podSubnet":"fd10:0:0:1::/64","vtepMAC":"0a:00:00:00:00:01"},{"name":"b","address":"10.0.0.5","podSubnet":"10.10.2.0/24"}]}"#.to_vec(),
    ]
}

fn store_files() -> Vec<Vec<u8>> {
    let att = Attachment {
        container_id: "c1".into(),
        ifname: "eth0".into(),
    };
    let ip = |s: &str| s.parse::<IpAddr>().expect("valid");
    vec![
        join(&[
            b"10.1.0.2",
            b"c9\r\neth0",
            b"10.1.0.2",
            index_content(&att, &[ip("10.1.0.3"), ip("fd00:1::3")]).as_bytes(),
            b"fd00:1::2",
            b"c1",
        ]),
        join(&[
            b"10.1.0.3",
            b"",
            b"10.1.0.6",
            b"",
            b"10.1.0.4",
            b"c1\r\neth0",
        ]),
        join(&[
            b"10.1.0.5",
            b"  c1  ",
            b"garbage",
            index_content(&att, &[ip("10.9.9.9")]).as_bytes(),
            b".ferro-tmp-1",
            b"c2\r\neth1",
        ]),
        join(&[
            b"fd00:1:0:0:0:0:0:4",
            b"c1\r\neth0",
            b"fd00:1::7",
            b"",
            b"10.1.0.6",
            b"c1\r\neth0",
        ]),
    ]
}

/// The captures as datagrams: one message each, and each capture file as one datagram.
fn nft_datagrams() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for f in ["model", "more", "del"] {
        let text = String::from_utf8(read(&format!("crates/nftables/tests/fixtures/{f}.txt")))
            .expect("text");
        let mut all = Vec::new();
        let mut msgs: Vec<(u16, u16, Vec<u8>)> = Vec::new();
        for line in text.lines() {
            let (key, rest) = line.split_once(' ').unwrap_or((line, ""));
            match key {
                "type" => {
                    let f: Vec<&str> = rest.split(' ').collect();
                    let ty = u16::from_str_radix(f[0], 16).expect("hex");
                    let flags = u16::from_str_radix(f[2], 16).expect("hex");
                    msgs.push((ty, flags, Vec::new()));
                }
                "payload" => {
                    let hex: String = rest.split_whitespace().collect();
                    let m = msgs.last_mut().expect("a type line first");
                    for i in (0..hex.len()).step_by(2) {
                        m.2.push(u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"));
                    }
                }
                _ => {}
            }
        }
        for (seq, (ty, flags, payload)) in msgs.iter().enumerate() {
            let mut m = Vec::new();
            let len = u32::try_from(16 + payload.len()).expect("small");
            m.extend_from_slice(&len.to_ne_bytes());
            m.extend_from_slice(&ty.to_ne_bytes());
            m.extend_from_slice(&flags.to_ne_bytes());
            m.extend_from_slice(&u32::try_from(seq).expect("small").to_ne_bytes());
            m.extend_from_slice(&0u32.to_ne_bytes());
            m.extend_from_slice(payload);
            while m.len() % 4 != 0 {
                m.push(0);
            }
            all.extend_from_slice(&m);
            out.push(m);
        }
        out.push(all);
    }
    // An error with an extended ack, and the end of a dump.
    let mut err = Vec::new();
    err.extend_from_slice(&44u32.to_ne_bytes());
    err.extend_from_slice(&2u16.to_ne_bytes()); // NLMSG_ERROR
    err.extend_from_slice(&0x300u16.to_ne_bytes()); // CAPPED | ACK_TLVS
    err.extend_from_slice(&0u32.to_ne_bytes());
    err.extend_from_slice(&0u32.to_ne_bytes());
    err.extend_from_slice(&(-2i32).to_ne_bytes());
    err.extend_from_slice(&[0u8; 16]);
    err.extend_from_slice(&[8, 0, 1, 0, b'b', b'a', b'd', 0]);
    let mut done = Vec::new();
    done.extend_from_slice(&20u32.to_ne_bytes());
    done.extend_from_slice(&3u16.to_ne_bytes()); // NLMSG_DONE
    done.extend_from_slice(&2u16.to_ne_bytes());
    done.extend_from_slice(&1u32.to_ne_bytes());
    done.extend_from_slice(&0u32.to_ne_bytes());
    done.extend_from_slice(&0i32.to_ne_bytes());
    out.push([err.clone(), done.clone()].concat());
    out
}

fn rtnl_datagrams() -> Vec<Vec<u8>> {
    let ip = |s: &str| s.parse::<IpAddr>().expect("valid");
    let mut route = RouteSpec::new(
        "10.244.2.0/24".parse().expect("valid"),
        Some(ip("10.240.0.5")),
        Some(3),
    );
    route.onlink = true;
    route.src = Some(ip("10.244.1.1"));
    route.mtu = Some(1450);
    route.table = Some(300);
    let decoded = [
        Decoded::Link(Link {
            index: 7,
            name: "ferro.7".into(),
            mac: Some(vec![0x0a, 0, 0, 0, 0, 1]),
            mtu: 1450,
            up: true,
            kind: Some("vxlan".into()),
            vxlan: Some(VxlanInfo {
                vni: 7,
                port: 8472,
                local: Some(ip("10.240.0.4")),
                dev: Some(2),
                learning: false,
            }),
            ..Link::default()
        }),
        Decoded::Link(Link {
            index: 9,
            name: "veth1234".into(),
            mtu: 1500,
            master: Some(4),
            hairpin: Some(true),
            kind: Some("veth".into()),
            ..Link::default()
        }),
        Decoded::Addr(ferro_net::rtnl::AddrInfo {
            index: 4,
            addr: "10.244.1.1/24".parse().expect("valid"),
        }),
        Decoded::Route(route),
        Decoded::Route(RouteSpec::new(
            "::/0".parse().expect("valid"),
            Some(ip("fe80::1")),
            Some(2),
        )),
        Decoded::Neigh(NeighSpec {
            ifindex: 2,
            ip: ip("10.240.0.9"),
            mac: None,
            proxy: true,
        }),
        Decoded::Neigh(NeighSpec {
            ifindex: 3,
            ip: ip("fd00::9"),
            mac: Some([2, 0, 0, 0, 0, 9]),
            proxy: false,
        }),
        Decoded::Fdb(FdbEntry {
            ifindex: 7,
            mac: [0x0a, 0, 0, 0, 0, 2],
            dst: ip("10.240.0.5"),
        }),
    ];
    let mut out: Vec<Vec<u8>> = decoded.iter().filter_map(encode).collect();
    out.push(out.concat());
    // A NACK (ENODEV), as the kernel answers a lookup of a missing link.
    let mut nack = Vec::new();
    nack.extend_from_slice(&36u32.to_ne_bytes());
    nack.extend_from_slice(&2u16.to_ne_bytes());
    nack.extend_from_slice(&0x100u16.to_ne_bytes());
    nack.extend_from_slice(&1u32.to_ne_bytes());
    nack.extend_from_slice(&0u32.to_ne_bytes());
    nack.extend_from_slice(&(-19i32).to_ne_bytes());
    nack.extend_from_slice(&[0u8; 16]);
    out.push(nack);
    out
}

fn cache_files() -> Vec<Vec<u8>> {
    let result = sample_result()
        .to_value(ferro_spec::Version::V1_0_0)
        .expect("writes");
    let mut caps = Map::new();
    caps.insert(
        "portMappings".into(),
        json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]),
    );
    let entry = CacheEntry {
        container_id: "c1".into(),
        config: read("conf-examples/kubenet.conflist"),
        if_name: "eth0".into(),
        network_name: "kubenet".into(),
        netns: "/run/netns/pod".into(),
        cni_args: vec![
            ("IgnoreUnknown".into(), "1".into()),
            ("K8S_POD_NAME".into(), "web-0".into()),
        ],
        capability_args: caps,
        result: result.as_object().cloned(),
    };
    vec![entry.to_bytes(), bytes(&result)]
}

fn conflists() -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = example_files().into_iter().map(|(_, b)| b).collect();
    out.push(br#"{"cniVersion":"1.0.0","cniVersions":["0.4.0","1.1.0","9.9.9"],"name":"n","disableCheck":"TRUE","disableGC":false,"loadOnlyInlinedPlugins":true,"plugins":[{"type":"bridge","capabilities":{"portMappings":true,"ips":false},"ipam":{"type":"host-local"}}]}"#.to_vec());
    out
}

/// Writes every target's seeds into `dir/<target>/seed-<n>`; returns how many.
pub fn write_all(dir: &Path) -> std::io::Result<usize> {
    let mut n = 0;
    for (name, _) in crate::TARGETS {
        let d = dir.join(name);
        fs::create_dir_all(&d)?;
        for (i, s) in seeds(name).iter().enumerate() {
            fs::write(d.join(format!("seed-{i:03}")), s)?;
            n += 1;
        }
    }
    Ok(n)
}
