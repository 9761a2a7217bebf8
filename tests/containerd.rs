//! containerd 1.6 and `ctr run --cni`: under each example model, unchanged, a
//! container on node A gets its address, reaches its gateway and a pod on node B (which sees
//! the container's own address), a VM on the VNet (which sees the model's source: node A's
//! address under kubenet and overlay, the container's under flat) and the internet (node A's
//! address); the VM reaches the pod on node B where the model lets it (kubenet through the
//! route table, flat); and after `ctr run --rm` exits nothing of it is left on the
//! node: no veth, no element in our nftables sets, no lease. ctr runs the plugins itself, with
//! the conflist it reads from `/etc/cni/net.d` (only the lexically first file), and sends DEL
//! with an empty `CNI_NETNS` once the task is gone.
//!
//! Isolation: containerd and ctr run in node A's network namespace and a private mount
//! namespace (scripts/runtimes.sh `containerd_start`) where a private conf dir is
//! `/etc/cni/net.d`, the recording plugin dir is `/opt/cni/bin`, private directories are
//! `/var/lib/cni`, `/run/containerd` and `/etc/ferro-cni`; containerd's root, state, socket and
//! config are in a temporary directory; it is stopped by its pid when the test ends.
#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use ferro_e2e::{example, leases, our_table, pod_veths, Cluster, Containerd, Model, Plugins};
use ferro_testutil::probe::{tcp_source, ProbeServer};
use ferro_testutil::topology::{INTERNET, PEER};

fn run_one_container(model: Model) {
    let t0 = Instant::now();
    let c = Cluster::new(model);
    let (b, b_ip) = c.pod_b("ctr-b");
    let _srv = ProbeServer::start(&b.path(), SocketAddr::new(b_ip.parse().unwrap(), 7000));
    let _on_vm = ProbeServer::start(
        &c.world.peer.path(),
        SocketAddr::new(PEER.parse().unwrap(), 7000),
    );
    let _on_inet = ProbeServer::start(
        &c.world.internet.path(),
        SocketAddr::new(INTERNET.parse().unwrap(), 7000),
    );
    // the VM reaches the pod on node B (kubenet: through the route table), and keeps its
    // address; overlay pods are private to the cluster
    let vm_to_b = tcp_source(
        &c.world.peer.path(),
        SocketAddr::new(b_ip.parse().unwrap(), 7000),
    );
    let want: Option<IpAddr> = model.vm_reaches_pods().then(|| PEER.parse().unwrap());
    assert_eq!(vm_to_b, want, "{model:?}: the VM to pod {b_ip}");

    let plugins = Plugins::new(model.plugins());
    let conf = tempfile::tempdir().unwrap();
    // the example file as it is; ctr reads only the lexically first file of the directory
    std::fs::write(
        conf.path().join(format!("10-{}", model.file())),
        example(model.file()),
    )
    .unwrap();
    let ctrd = Containerd::start(
        c.node_a(),
        conf.path(),
        plugins.path(),
        &[(c.etc_ferro.path(), "/etc/ferro-cni")],
    );
    ctrd.import_busybox();
    let id = format!("e2e-{}", model.network());
    let script = format!(
        "ip -4 -o addr show dev eth0\n\
         ping -c1 -W2 {gw} >/dev/null && echo GATEWAY-OK\n\
         echo SEEN-BY-B $(nc -w 3 {b_ip} 7000 </dev/null)\n\
         echo SEEN-BY-VM $(nc -w 3 {PEER} 7000 </dev/null)\n\
         echo SEEN-BY-INTERNET $(nc -w 3 {INTERNET} 7000 </dev/null)\n",
        gw = model.gateway_target()
    );
    let ran = ctrd.run_cni(&id, &script);
    let out = ran.ok("ctr run --rm --cni").to_string();
    eprintln!("{out}");
    let addr = out
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|a| a.split('/').next())
        .unwrap_or_else(|| panic!("no address in:\n{out}"))
        .to_string();
    assert!(
        model.is_node_a_address(&addr),
        "{model:?}: {addr} is not an address of node A's range:\n{out}"
    );
    assert!(out.contains("GATEWAY-OK"), "gateway not reached:\n{out}");
    assert!(
        out.contains(&format!("SEEN-BY-B {addr} 0")),
        "the pod on node B must see the container's own address {addr}:\n{out}"
    );
    let vm_sees = model.vm_sees(&addr);
    assert!(
        out.contains(&format!("SEEN-BY-VM {vm_sees} 0")),
        "{model:?}: the VM on the VNet must see {vm_sees}:\n{out}"
    );
    assert!(
        out.contains("SEEN-BY-INTERNET 10.240.0.4 0"),
        "the internet must see node A's address:\n{out}"
    );

    // nothing left once `ctr run --rm` returned
    let node = c.node_a();
    assert_eq!(pod_veths(node), Vec::<String>::new(), "veth left");
    let table = our_table(node);
    assert!(!table.contains(&addr), "{addr} left in our table:\n{table}");
    assert_eq!(
        leases(&ctrd.var_lib_cni().join("networks"), model.network()),
        Vec::<String>::new(),
        "lease left"
    );
    assert!(
        std::fs::read_dir(ctrd.var_lib_cni().join("results"))
            .map(|mut d| d.next().is_none())
            .unwrap_or(true),
        "libcni cache entry left"
    );

    // what ctr sent
    plugins.print_calls("ctr");
    let adds = plugins.calls_of("ADD");
    let dels = plugins.calls_of("DEL");
    assert!(
        !adds.is_empty() && !dels.is_empty(),
        "{:?}",
        plugins.calls()
    );
    for add in &adds {
        assert_eq!(add.var("CNI_CONTAINERID"), format!("ferro-{id}"));
        assert!(add.var("CNI_NETNS").starts_with("/proc/"), "{add:?}");
        assert_eq!(add.conf()["cniVersion"], "1.0.0");
    }
    for del in &dels {
        assert_eq!(del.var("CNI_NETNS"), "", "ctr sends DEL without a netns");
        assert!(del.conf().get("prevResult").is_some(), "{del:?}");
    }
    drop(ctrd);
    c.del_b(&b);
    assert!(c.leases_b().is_empty());
    eprintln!("{model:?} under containerd: {:.1?}", t0.elapsed());
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn ctr_run_cni_under_kubenet() {
    run_one_container(Model::Kubenet);
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn ctr_run_cni_under_flat() {
    run_one_container(Model::Flat);
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn ctr_run_cni_under_overlay() {
    run_one_container(Model::Overlay);
}
