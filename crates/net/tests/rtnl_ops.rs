//! The rtnetlink operations against real namespaces: each test builds a "node" namespace and
//! a "pod" namespace and checks the result with `ip -j`.

use ferro_net::rtnl::{BridgeSpec, FdbEntry, NeighSpec, RouteSpec, VethSpec, VxlanSpec};
use ferro_net::{Kernel, Netns as NetNs};
use ferro_testutil::netns::Netns;
use ferro_testutil::require_root;

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn veth_with_peer_created_inside_the_pod_and_enslaved_to_a_bridge() {
    require_root();
    let node = Netns::new("rt-node");
    let pod = Netns::new("rt-pod");
    node.run(|| {
        let pod_ns = NetNs::open(&pod.path()).unwrap();
        let k = Kernel::new().unwrap();
        let host = k.connect(None).unwrap();
        let br = host
            .bridge_ensure(&BridgeSpec {
                name: "br-t".into(),
                mtu: Some(1400),
                mac: Some([2, 0, 0, 0, 0, 1]),
                vlan_filtering: false,
            })
            .unwrap();
        assert!(br.up);
        assert_eq!(br.kind.as_deref(), Some("bridge"));
        // ensure again: same bridge, no error
        assert_eq!(
            host.bridge_ensure(&BridgeSpec {
                name: "br-t".into(),
                ..Default::default()
            })
            .unwrap()
            .index,
            br.index
        );
        host.veth_add(&VethSpec {
            name: "vh-test".into(),
            mac: Some([2, 0, 0, 0, 0, 2]),
            mtu: Some(1400),
            master: Some(br.index),
            peer_name: "eth0".into(),
            peer_mac: Some([2, 0, 0, 0, 0, 3]),
            peer_ns: Some(&pod_ns),
        })
        .unwrap();
        // the same names again collide
        let again = host.veth_add(&VethSpec {
            name: "vh-test".into(),
            peer_name: "eth0".into(),
            peer_ns: Some(&pod_ns),
            ..Default::default()
        });
        assert!(again.unwrap_err().is_exists());
        let hv = host.link("vh-test").unwrap().unwrap();
        assert_eq!(hv.master, Some(br.index));
        assert!(hv.up);
        // one queue each way, allocated so at creation (no cut of a registered device)
        assert_eq!((hv.tx_queues, hv.rx_queues), (1, 1));
        host.bridge_port_set_hairpin(hv.index, true).unwrap();
        assert_eq!(host.link("vh-test").unwrap().unwrap().hairpin, Some(true));
        let p = k.connect(Some(&pod_ns)).unwrap();
        let eth0 = p.link_required("eth0").unwrap();
        assert_eq!((eth0.tx_queues, eth0.rx_queues), (1, 1));
        assert_eq!(eth0.mac_string().as_deref(), Some("02:00:00:00:00:03"));
        assert_eq!(eth0.mtu, 1400);
        assert!(!eth0.up);
        p.link_set_up(eth0.index, true).unwrap();
        p.addr_add(
            eth0.index,
            "10.9.0.2/24".parse().unwrap(),
            ferro_net::rtnl::AddrOpts {
                nodad: true,
                noprefixroute: false,
            },
        )
        .unwrap();
        p.addr_add(
            eth0.index,
            "10.9.0.2/24".parse().unwrap(),
            ferro_net::rtnl::AddrOpts {
                nodad: true,
                noprefixroute: false,
            },
        )
        .unwrap(); // idempotent
        p.addr_add(
            eth0.index,
            "fd00:9::2/64".parse().unwrap(),
            ferro_net::rtnl::AddrOpts {
                nodad: true,
                noprefixroute: false,
            },
        )
        .unwrap();
        let addrs = p.addrs(Some(eth0.index)).unwrap();
        assert!(addrs.iter().any(|a| a.addr.to_string() == "10.9.0.2/24"));
        p.route_add(
            &RouteSpec::new(
                "0.0.0.0/0".parse().unwrap(),
                Some("10.9.0.1".parse().unwrap()),
                Some(eth0.index),
            ),
            false,
        )
        .unwrap();
        p.route_add(
            &RouteSpec::new(
                "0.0.0.0/0".parse().unwrap(),
                Some("10.9.0.1".parse().unwrap()),
                Some(eth0.index),
            ),
            false,
        )
        .unwrap();
        let routes = p.routes(false, None).unwrap();
        assert!(
            routes
                .iter()
                .any(|r| r.dst.prefix_len() == 0 && r.gw == Some("10.9.0.1".parse().unwrap())),
            "{routes:?}"
        );
        p.route_del(&RouteSpec::new(
            "0.0.0.0/0".parse().unwrap(),
            Some("10.9.0.1".parse().unwrap()),
            Some(eth0.index),
        ))
        .unwrap();
        p.route_del(&RouteSpec::new(
            "0.0.0.0/0".parse().unwrap(),
            Some("10.9.0.1".parse().unwrap()),
            Some(eth0.index),
        ))
        .unwrap();
        assert!(!p
            .routes(false, None)
            .unwrap()
            .iter()
            .any(|r| r.dst.prefix_len() == 0));
        p.addr_del(eth0.index, "10.9.0.2/24".parse().unwrap())
            .unwrap();
        p.addr_del(eth0.index, "10.9.0.2/24".parse().unwrap())
            .unwrap();
        // deleting the host end removes the pair
        assert!(host.link_del_name("vh-test").unwrap());
        assert!(!host.link_del_name("vh-test").unwrap());
        assert!(p.link("eth0").unwrap().is_none());
    });
    let links = node.ip_json(&["link"]);
    assert!(links
        .as_array()
        .unwrap()
        .iter()
        .all(|l| l["ifname"] != "vh-test"));
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn bridge_ensure_refuses_a_non_bridge() {
    require_root();
    let node = Netns::new("rt-nb");
    node.ip(&[
        "link", "add", "notbr", "type", "veth", "peer", "name", "notbr2",
    ]);
    node.run(|| {
        let k = Kernel::new().unwrap();
        let e = k
            .connect(None)
            .unwrap()
            .bridge_ensure(&BridgeSpec {
                name: "notbr".into(),
                ..Default::default()
            })
            .unwrap_err();
        assert!(e.to_string().contains("not a bridge"), "{e}");
    });
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn parallel_bridge_ensure_is_race_free() {
    require_root();
    let node = Netns::new("rt-race");
    let path = node.path();
    std::thread::scope(|s| {
        for _ in 0..8 {
            let path = path.clone();
            s.spawn(move || {
                let ns = NetNs::open(&path).unwrap();
                ns.run(|| {
                    let k = Kernel::new().unwrap();
                    k.connect(None)
                        .unwrap()
                        .bridge_ensure(&BridgeSpec {
                            name: "br-race".into(),
                            ..Default::default()
                        })
                        .unwrap();
                })
                .unwrap();
            });
        }
    });
    assert_eq!(
        node.ip_json(&["link", "show", "type", "bridge"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn vxlan_neighbours_fdb_and_onlink_routes() {
    require_root();
    let node = Netns::new("rt-vx");
    node.ip(&[
        "link", "add", "under0", "type", "veth", "peer", "name", "under1",
    ]);
    node.ip(&["addr", "add", "192.168.77.1/24", "dev", "under0"]);
    node.ip(&["link", "set", "under0", "up"]);
    node.run(|| {
        let k = Kernel::new().unwrap();
        let h = k.connect(None).unwrap();
        let under = h.link_required("under0").unwrap();
        let spec = VxlanSpec {
            name: "vx-t".into(),
            vni: 7,
            port: 8472,
            local: Some("192.168.77.1".parse().unwrap()),
            dev: Some(under.index),
            mtu: Some(1450),
            mac: Some([2, 0, 0, 0, 7, 1]),
        };
        let vx = h.vxlan_ensure(&spec).unwrap();
        let info = vx.vxlan.clone().unwrap();
        assert_eq!((info.vni, info.port, info.learning), (7, 8472, false));
        assert_eq!(h.vxlan_ensure(&spec).unwrap().index, vx.index);
        let wrong = VxlanSpec {
            vni: 8,
            ..spec.clone()
        };
        assert!(h
            .vxlan_ensure(&wrong)
            .unwrap_err()
            .to_string()
            .contains("vni 7 (want 8)"));

        let mac = [2, 0, 0, 0, 7, 2];
        let n = NeighSpec {
            ifindex: vx.index,
            ip: "10.244.5.0".parse().unwrap(),
            mac: Some(mac),
            proxy: false,
        };
        h.neigh_replace(&n).unwrap();
        h.neigh_replace(&n).unwrap();
        assert_eq!(h.neighs(vx.index, false).unwrap(), vec![n.clone()]);
        let f = FdbEntry {
            ifindex: vx.index,
            mac,
            dst: "192.168.77.2".parse().unwrap(),
        };
        h.fdb_replace(&f).unwrap();
        h.fdb_replace(&f).unwrap();
        assert_eq!(h.fdbs(vx.index).unwrap(), vec![f.clone()]);
        let mut r = RouteSpec::new(
            "10.244.5.0/24".parse().unwrap(),
            Some("10.244.5.0".parse().unwrap()),
            Some(vx.index),
        );
        r.onlink = true;
        h.route_add(&r, true).unwrap();
        let got = h.routes(false, None).unwrap();
        assert!(
            got.iter()
                .any(|x| x.dst == r.dst && x.gw == r.gw && x.onlink),
            "{got:?}"
        );
        h.route_del(&r).unwrap();
        h.fdb_del(&f).unwrap();
        h.fdb_del(&f).unwrap();
        h.neigh_del(&n).unwrap();
        h.neigh_del(&n).unwrap();
        assert!(h.fdbs(vx.index).unwrap().is_empty());
        assert!(h.neighs(vx.index, false).unwrap().is_empty());

        // proxy neighbour entries
        let p = NeighSpec {
            ifindex: under.index,
            ip: "192.168.77.50".parse().unwrap(),
            mac: None,
            proxy: true,
        };
        h.neigh_replace(&p).unwrap();
        assert_eq!(h.neighs(under.index, true).unwrap(), vec![p.clone()]);
        h.neigh_del(&p).unwrap();
        h.neigh_del(&p).unwrap();
        assert!(h.neighs(under.index, true).unwrap().is_empty());
    });
    let proxies = node.ip(&["neigh", "show", "proxy"]);
    assert!(!proxies.contains("192.168.77.50"));
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn sysctl_ensure_reads_before_writing_in_the_right_namespace() {
    require_root();
    let node = Netns::new("rt-sys");
    let before_root = ferro_net::sysctl::get("net/ipv4/conf/lo/forwarding").unwrap();
    node.run(|| {
        assert!(ferro_net::sysctl::ensure("net/ipv4/conf/lo/forwarding", "1").unwrap());
        assert!(!ferro_net::sysctl::ensure("net/ipv4/conf/lo/forwarding", "1").unwrap());
        assert!(
            !ferro_net::sysctl::ensure_if_present("net/ipv6/conf/nope0/accept_ra", "0").unwrap()
        );
    });
    assert_eq!(
        node.exec(&["cat", "/proc/sys/net/ipv4/conf/lo/forwarding"])
            .trim(),
        "1"
    );
    assert_eq!(
        ferro_net::sysctl::get("net/ipv4/conf/lo/forwarding").unwrap(),
        before_root,
        "root namespace untouched"
    );
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn forwarding_is_read_over_netlink_in_the_callers_namespace() {
    require_root();
    let node = Netns::new("rt-fwd");
    node.run(|| {
        // a fresh namespace forwards nothing; a connection reads it on its own socket
        let k = ferro_net::Kernel::new().unwrap();
        let h = k.connect(None).unwrap();
        assert_eq!(ferro_net::sysctl::forwarding(), (Some(false), Some(false)));
        assert_eq!(h.forwarding(), (Some(false), Some(false)));
        ferro_net::attach::ensure_forwarding_on(&h, true, false).unwrap();
        assert_eq!(ferro_net::sysctl::forwarding(), (Some(true), Some(false)));
        assert_eq!(h.forwarding(), (Some(true), Some(false)));
        ferro_net::attach::ensure_forwarding(true, true).unwrap();
        assert_eq!(ferro_net::sysctl::forwarding(), (Some(true), Some(true)));
        assert_eq!(h.forwarding(), (Some(true), Some(true)));
    });
    assert_eq!(
        node.exec(&["sysctl", "-n", "net.ipv4.ip_forward"]).trim(),
        "1"
    );
    assert_eq!(
        node.exec(&["sysctl", "-n", "net.ipv6.conf.all.forwarding"])
            .trim(),
        "1"
    );
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn link_up_notify_sets_arp_notify_in_the_same_request() {
    require_root();
    let pod = Netns::new("rt-arpn");
    pod.ip(&[
        "link", "add", "vp-a", "type", "veth", "peer", "name", "vp-b",
    ]);
    pod.run(|| {
        let k = Kernel::new().unwrap();
        let p = k.connect(None).unwrap();
        let a = p.link_required("vp-a").unwrap();
        let b = p.link_required("vp-b").unwrap();
        p.link_up_notify(a.index, true).unwrap();
        p.link_up_notify(a.index, true).unwrap(); // idempotent
        p.link_up_notify(b.index, false).unwrap();
        assert!(p.link_required("vp-a").unwrap().up);
        assert!(p.link_required("vp-b").unwrap().up);
    });
    let get = |key: &str| pod.exec(&["sysctl", "-n", key]).trim().to_string();
    assert_eq!(get("net.ipv4.conf.vp-a.arp_notify"), "1");
    assert_eq!(get("net.ipv4.conf.vp-b.arp_notify"), "0");
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn a_route_carries_the_protocol_that_made_it() {
    require_root();
    let node = Netns::new("rt-proto");
    node.ip(&["link", "add", "up0", "type", "veth", "peer", "name", "up1"]);
    node.ip(&["link", "set", "up0", "up"]);
    node.ip(&["link", "set", "up1", "up"]);
    node.ip(&["addr", "add", "10.9.0.1/24", "dev", "up0"]);
    node.run(|| {
        let k = Kernel::new().unwrap();
        let host = k.connect(None).unwrap();
        let mut r = RouteSpec::new(
            "10.244.2.0/24".parse().unwrap(),
            Some("10.9.0.5".parse().unwrap()),
            None,
        );
        r.protocol = Some(77);
        host.route_add(&r, true).unwrap();
        let plain = RouteSpec::new(
            "10.244.3.0/24".parse().unwrap(),
            Some("10.9.0.6".parse().unwrap()),
            None,
        );
        host.route_add(&plain, true).unwrap();
        let routes = host.routes(false, None).unwrap();
        let proto = |dst: &str| {
            routes
                .iter()
                .find(|x| x.dst.to_string() == dst)
                .and_then(|x| x.protocol)
        };
        assert_eq!(proto("10.244.2.0/24"), Some(77));
        assert_eq!(proto("10.244.3.0/24"), Some(3), "boot by default");
        assert_eq!(proto("10.9.0.0/24"), Some(2), "the kernel's own");
    });
    let shown = node.ip(&["route", "show", "proto", "77"]);
    assert_eq!(shown.trim(), "10.244.2.0/24 via 10.9.0.5 dev up0");
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn a_batch_applies_its_requests_in_order_and_names_the_first_that_failed() {
    require_root();
    let node = Netns::new("rt-batch");
    node.ip(&["link", "add", "bt0", "type", "veth", "peer", "name", "bt1"]);
    node.ip(&["addr", "add", "10.9.1.1/24", "dev", "bt0"]);
    node.run(|| {
        let k = Kernel::new().unwrap();
        let h = k.connect(None).unwrap();
        let idx = h.link_required("bt0").unwrap().index;
        let opts = ferro_net::rtnl::AddrOpts::default();
        let via = |dst: &str, gw: &str| {
            RouteSpec::new(dst.parse().unwrap(), Some(gw.parse().unwrap()), Some(idx))
        };
        // In order: the address already there is tolerated, a second one is added, the link
        // comes up (which the route through the new subnet needs), the route twice (the
        // second time it exists), a neighbour entry that is not there deleted.
        let mut b = h.batch();
        b.addr_add(idx, "10.9.1.1/24".parse().unwrap(), opts)
            .addr_add(idx, "10.9.2.1/24".parse().unwrap(), opts)
            .link_up_notify(idx, true)
            .route_add(&via("10.244.7.0/24", "10.9.2.5"), false)
            .route_add(&via("10.244.7.0/24", "10.9.2.5"), false)
            .neigh_del(&NeighSpec {
                ifindex: idx,
                ip: "10.9.2.77".parse().unwrap(),
                mac: None,
                proxy: false,
            });
        assert_eq!(b.len(), 7, "link_up_notify with arp_notify is two requests");
        b.run().unwrap();
        assert!(h.batch().is_empty());
        h.batch().run().unwrap();
        // A failed request neither stops those after it nor hides which one failed.
        let mut b = h.batch();
        b.route_add(&via("10.244.8.0/24", "10.77.0.1"), false)
            .route_add(&via("10.244.9.0/24", "10.9.2.6"), false);
        let err = b.run().unwrap_err().to_string();
        assert!(err.contains("10.244.8.0/24"), "{err}");
    });
    let routes = node.ip(&["route", "show"]);
    assert!(
        routes.contains("10.244.7.0/24 via 10.9.2.5 dev bt0"),
        "{routes}"
    );
    assert!(
        routes.contains("10.244.9.0/24 via 10.9.2.6 dev bt0"),
        "{routes}"
    );
    assert!(!routes.contains("10.244.8.0/24"), "{routes}");
    let addrs = node.ip(&["-4", "addr", "show", "dev", "bt0"]);
    assert!(addrs.contains("10.9.1.1/24") && addrs.contains("10.9.2.1/24"));
    assert_eq!(
        node.exec(&["sysctl", "-n", "net.ipv4.conf.bt0.arp_notify"])
            .trim(),
        "1"
    );
}
