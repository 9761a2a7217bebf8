//! cnitool 1.1.2 (real libcni) runs every file of `conf-examples/`, unchanged, through ADD, CHECK
//! and DEL on node A of the simulated network ([docs/testing.md](../docs/testing.md)), with
//! `CAP_ARGS` port mappings where the list has portmap, and the mapped port answers the VM on the
//! VNet at node A's address. `nodes.json` is the overlay examples' node list (its addresses are the
//! world's nodes); the dual-stack example's pod gets one address per family, and keeps a lease of
//! each. A new file in `conf-examples/` fails this test until the test knows how to run it.
//!
//! Isolation: every cnitool call runs in node A's network namespace and a fresh private mount
//! namespace (scripts/runtimes.sh `node_run`) where a private directory, kept between the calls
//! of one test, is `/var/lib/cni` (cnitool's result cache and host-local's default dataDir)
//! and another holds `nodes.json` at `/etc/ferro-cni`; `NETCONFPATH` is a private directory
//! holding only the example under test.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::Instant;

use ferro_e2e::{cnitool, leases, our_table, pod_veths, repo, shell, Cluster, Model, Plugins, Ran};
use ferro_testutil::netns::Netns;
use ferro_testutil::probe::{tcp_source, ProbeServer};
use ferro_testutil::runtime::pod_ip;

struct Tool<'a> {
    node: &'a Netns,
    state: tempfile::TempDir,
    conf: tempfile::TempDir,
    plugins: &'a Path,
    etc_ferro: &'a Path,
}

impl Tool<'_> {
    fn run(&self, verb: &str, net: &str, pod: &Netns, cap_args: &str) -> Ran {
        let args = [
            self.node.path().display().to_string(),
            self.state.path().join("scratch").display().to_string(),
            format!("{}=/var/lib/cni", self.state.path().join("cni").display()),
            format!("{}=/etc/ferro-cni", self.etc_ferro.display()),
            self.conf.path().display().to_string(),
            self.plugins.display().to_string(),
            cap_args.to_string(),
            cnitool().display().to_string(),
            verb.to_string(),
            net.to_string(),
            pod.path().display().to_string(),
        ];
        shell(
            120,
            r#"netns=$1 scratch=$2 state=$3 etc=$4 conf=$5 plugins=$6 caps=$7
               shift 7
               mkdir -p "${state%%=*}"
               node_run "$netns" "$scratch" "$state" "$etc" -- \
                 env NETCONFPATH="$conf" CNI_PATH="$plugins" CAP_ARGS="$caps" "$@""#,
            &args,
        )
    }

    fn leases(&self, net: &str) -> Vec<String> {
        leases(&self.state.path().join("cni/networks"), net)
    }
}

fn run_example(file: &str, hostport: u16) {
    let t0 = Instant::now();
    let text = ferro_e2e::example(file);
    let conf: serde_json::Value = serde_json::from_str(&text).unwrap();
    let net = conf["name"].as_str().unwrap();
    let model = match net {
        "kubenet" => Model::Kubenet,
        "azure" => Model::Flat,
        _ => Model::Overlay,
    };
    let c = Cluster::new(model);
    let types: Vec<String> = match conf["plugins"].as_array() {
        Some(list) => list
            .iter()
            .map(|p| p["type"].as_str().unwrap().to_string())
            .collect(),
        None => vec![conf["type"].as_str().unwrap().to_string()],
    };
    let mut names: Vec<&str> = types.iter().map(String::as_str).collect();
    names.push("host-local");
    let plugins = Plugins::new(&names);
    let tool = Tool {
        node: c.node_a(),
        state: tempfile::tempdir().unwrap(),
        conf: tempfile::tempdir().unwrap(),
        plugins: plugins.path(),
        etc_ferro: c.etc_ferro.path(),
    };
    std::fs::write(tool.conf.path().join(file), &text).unwrap();
    let with_portmap = types.iter().any(|t| t == "portmap");
    let caps = if with_portmap {
        format!(
            r#"{{"portMappings":[{{"hostPort":{hostport},"containerPort":80,"protocol":"tcp"}}]}}"#
        )
    } else {
        String::new()
    };
    let pod = Netns::new("tool");

    let added = tool.run("add", net, &pod, &caps);
    let result: serde_json::Value =
        serde_json::from_str(added.ok(&format!("cnitool add ({file})"))).unwrap();
    if types.iter().any(|t| t == "loopback") {
        let lo = pod.ip(&["link", "show", "lo"]);
        assert!(lo.contains("UP"), "{lo}");
    } else {
        let ip = pod_ip(&result);
        assert!(model.is_node_a_address(&ip), "{file}: {ip}");
        if with_portmap {
            let _srv = ProbeServer::start(&pod.path(), SocketAddr::new(ip.parse().unwrap(), 80));
            let seen = tcp_source(
                &c.world.peer.path(),
                SocketAddr::new("10.240.0.4".parse().unwrap(), hostport),
            );
            assert!(
                seen.is_some(),
                "{file}: node A's port {hostport} does not reach the pod"
            );
        }
        let mut ips: Vec<String> = result["ips"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                i["address"]
                    .as_str()
                    .unwrap()
                    .split('/')
                    .next()
                    .unwrap()
                    .to_string()
            })
            .collect();
        ips.sort();
        if conf["plugins"][0]["podCIDRs"]
            .as_array()
            .is_some_and(|c| c.len() == 2)
        {
            assert!(
                ips.iter().any(|a| a.starts_with("fd00:10:244:1:")),
                "{file}: {ips:?}"
            );
        }
        assert_eq!(tool.leases(net), ips);
    }
    tool.run("check", net, &pod, &caps)
        .ok(&format!("cnitool check ({file})"));
    tool.run("del", net, &pod, &caps)
        .ok(&format!("cnitool del ({file})"));
    assert_eq!(tool.leases(net), Vec::<String>::new(), "{file}: lease left");
    assert_eq!(
        pod_veths(c.node_a()),
        Vec::<String>::new(),
        "{file}: veth left"
    );
    let table = our_table(c.node_a());
    assert!(
        !table.contains(&hostport.to_string()),
        "{file}: host port left:\n{table}"
    );
    let verbs: Vec<String> = plugins
        .calls()
        .iter()
        .filter(|c| c.plugin == types[0])
        .map(|c| c.command().to_string())
        .collect();
    assert_eq!(verbs, ["ADD", "CHECK", "DEL"], "{file}");
    eprintln!("{file} under cnitool: {:.1?}", t0.elapsed());
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn cnitool_runs_every_example_through_add_check_and_del() {
    ferro_testutil::require_root();
    let mut files: Vec<String> = std::fs::read_dir(repo().join("conf-examples"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut ran = 0;
    for (i, file) in files.iter().enumerate() {
        match file.as_str() {
            "README.md" => {}
            // the overlay list's node list: Cluster shows it at /etc/ferro-cni
            "nodes.json" => assert!(files.iter().any(|f| f == "overlay.conflist")),
            // (overlay-dual.conflist runs as an overlay example, with the same node list)
            // ferro-agent's configurations and cluster manifests: crates/agent/tests/examples.rs
            // (the *-cluster lists run here without their agent: their reports wait in the
            // spool; with agents: crates/agent/tests/attachments.rs and members.rs)
            f if f.starts_with("agent-") || f.ends_with(".yaml") => {}
            // cluster-mode lists (cluster-ipam needs a running agent):
            // plugins/cluster-ipam/tests/cluster.rs runs them
            "cluster" => {}
            f if f.ends_with(".conflist") || f.ends_with(".conf") => {
                run_example(f, 8090 + i as u16);
                ran += 1;
            }
            f => panic!("conf-examples/{f}: this test does not know how to run it"),
        }
    }
    assert_eq!(ran, 8, "{files:?}");
}
