//! A simulated cluster for the tests of the node's edge (cluster DNS, egress): agents on
//! simulated nodes sharing an etcd store on the VNet's VM, each serving cluster DNS on
//! 169.254.20.10 with the internet host's dnsmasq as its upstream; pods attached by the
//! model's plugin, which reports them to the agent and hands them the cluster DNS
//! (`clusterDNS`) in its result.
#![allow(dead_code)] // each test file uses its part

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use ferro_testutil::agent::Agent;
use ferro_testutil::dns::{resolv_conf, Dnsmasq};
use ferro_testutil::etcd::EtcdCluster;
use ferro_testutil::kubenet::{self, Kubenet};
use ferro_testutil::netns::Netns;
use ferro_testutil::probe::ProbeServer;
use ferro_testutil::runtime::{pod_addr, Runtime};
use ferro_testutil::topology::{World, INTERNET};
use serde_json::{json, Value};

pub const DNS: &str = "169.254.20.10";
pub const NAMES: [&str; 3] = ["node-a", "node-b", "node-c"];

pub fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ferro-agent"))
}

pub fn dns_server() -> SocketAddr {
    SocketAddr::new(DNS.parse().unwrap(), 53)
}

/// The network model the pods are attached with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    /// kubenet: bridge + host-local, a pod subnet per node routed by the VNet (dual stack).
    Kubenet,
    /// Azure CNI: pods hold VNet addresses.
    Flat,
    /// VXLAN overlay between the nodes.
    Overlay,
}

pub struct Pod {
    pub ns: Netns,
    pub node: usize,
    pub v4: IpAddr,
    pub v6: Option<IpAddr>,
    pub resolv: String,
    _servers: Vec<ProbeServer>,
}

pub struct Cluster {
    pub world: World,
    pub rt: Vec<Runtime>,
    pub net: &'static str,
    _data: Vec<tempfile::TempDir>,
    _list: tempfile::NamedTempFile,
    pub etcd: EtcdCluster,
    pub agents: Vec<Agent>,
    pub pods: BTreeMap<String, Pod>,
    pub internet_dns: Dnsmasq,
}

fn network(model: Model) -> &'static str {
    match model {
        Model::Kubenet => {
            "apiVersion: ferro-cni.io/v1
kind: ClusterNetwork
metadata: {name: default}
spec:
  podCIDRs: [10.244.0.0/16, fd00:10:244::/56]
  serviceCIDRs: [10.96.0.0/16, fd00:96::/112]
"
        }
        Model::Flat => {
            "apiVersion: ferro-cni.io/v1
kind: ClusterNetwork
metadata: {name: default}
spec:
  podCIDRs: [10.240.0.0/16]
  serviceCIDRs: [10.96.0.0/16]
"
        }
        Model::Overlay => {
            "apiVersion: ferro-cni.io/v1
kind: ClusterNetwork
metadata: {name: default}
spec:
  podCIDRs: [10.244.0.0/16]
  serviceCIDRs: [10.96.0.0/16]
"
        }
    }
}

fn conflist(model: Model, i: usize, data: &Path, list: &Path, socket: &Path) -> Value {
    let extra = json!({"agent": {"socket": socket}, "clusterDNS": {"nameservers": [DNS]}});
    match model {
        Model::Kubenet => kubenet::conflist_dual_stack(i, data, extra),
        Model::Flat => {
            let start = 20 + 10 * i;
            json!({"cniVersion":"1.1.0","name":"azure","plugins":[
                {"type":"flat","vnetCIDRs":["10.240.0.0/16"],"agent":extra["agent"],"clusterDNS":extra["clusterDNS"],
                 "ipam":{"type":"host-local","dataDir":data,"ranges":[
                    [{"subnet":"10.240.0.0/16","rangeStart":format!("10.240.0.{start}"),"rangeEnd":format!("10.240.0.{}", start + 9),"gateway":"10.240.0.1"}]]}},
                {"type":"portmap","capabilities":{"portMappings":true}}]})
        }
        Model::Overlay => json!({"cniVersion":"1.1.0","name":"ovl","plugins":[
            {"type":"overlay","podCIDR":"10.244.0.0/16","nodeName":format!("node{i}"),"nodeList":list,
             "agent":extra["agent"],"clusterDNS":extra["clusterDNS"],
             "ipam":{"type":"host-local","dataDir":data,"ranges":[[{"subnet":format!("10.244.{}.0/24", i + 1)}]]}},
            {"type":"portmap","capabilities":{"portMappings":true}}]}),
    }
}

fn world_for(model: Model, nodes: usize) -> (World, Vec<Runtime>) {
    match model {
        Model::Kubenet => {
            let k = Kubenet::dual_stack(nodes);
            (k.world, k.rt)
        }
        Model::Flat | Model::Overlay => {
            let world = World::new(nodes);
            let plugin = if model == Model::Flat {
                "flat"
            } else {
                "overlay"
            };
            let rt = (world.nodes.iter())
                .map(|n| Runtime::new(&n.ns, &[plugin, "host-local", "portmap"]))
                .collect();
            (world, rt)
        }
    }
}

fn network_name(model: Model) -> (&'static str, &'static str) {
    match model {
        Model::Kubenet => ("10-kube", kubenet::NET),
        Model::Flat => ("10-azure", "azure"),
        Model::Overlay => ("10-ovl", "ovl"),
    }
}

fn node_list(world: &World) -> tempfile::NamedTempFile {
    let list = tempfile::NamedTempFile::new().unwrap();
    let nodes: Vec<Value> = (world.nodes.iter().enumerate())
        .map(|(i, n)| json!({"name": format!("node{i}"), "address": n.ip.to_string(), "podSubnet": format!("10.244.{}.0/24", i + 1)}))
        .collect();
    std::fs::write(list.path(), json!({ "nodes": nodes }).to_string()).unwrap();
    list
}

/// `CNI_ARGS` naming pod `shop/<name>`.
pub fn k8s(name: &str) -> String {
    format!("IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME={name}")
}

/// Waits (up to `limit`) until `f` holds; how long it took.
pub fn until(limit: Duration, what: &str, mut f: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    t0.elapsed()
}

impl Cluster {
    /// A cluster of `nodes` nodes under `model`; the internet's resolver serves `records`
    /// with TTL `ttl`; `agent_extra` keys are merged into every agent's configuration.
    pub fn new(
        model: Model,
        nodes: usize,
        records: &[(&str, &str)],
        ttl: u32,
        agent_extra: Value,
    ) -> Cluster {
        ferro_testutil::require_root();
        let (world, rt) = world_for(model, nodes);
        let internet_dns = Dnsmasq::start(&world.internet, INTERNET, ttl, records);
        let vm: IpAddr = ferro_testutil::topology::PEER.parse().unwrap();
        let etcd = EtcdCluster::start(&[(&world.peer, vm)], None);
        let agents = world
            .nodes
            .iter()
            .zip(NAMES)
            .map(|(n, name)| {
                let mut cfg = json!({"nodeName": name, "nodeAddresses": [n.ip.to_string(), n.ip6.to_string()],
                    "store": {"etcd": {"endpoints": etcd.endpoints(), "dialTimeoutSeconds": 10}},
                    "leaseTTL": 10, "logLevel": "info",
                    "dns": {"upstreams": [INTERNET]}});
                for (k, v) in agent_extra.as_object().unwrap() {
                    cfg[k] = v.clone();
                }
                Agent::start(bin(), Some(&n.ns), cfg)
            })
            .collect::<Vec<Agent>>();
        let list = node_list(&world);
        let (file, net) = network_name(model);
        let mut data = Vec::new();
        for (i, a) in agents.iter().enumerate() {
            let d = tempfile::tempdir().unwrap();
            rt[i].write_conflist(
                file,
                &conflist(model, i, d.path(), list.path(), &a.socket()),
            );
            data.push(d);
        }
        let c = Cluster {
            world,
            rt,
            net,
            _data: data,
            _list: list,
            etcd,
            agents,
            pods: BTreeMap::new(),
            internet_dns,
        };
        c.apply(network(model));
        c.apply("apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n");
        c
    }

    pub fn node(&self, i: usize) -> &Netns {
        &self.world.nodes[i].ns
    }

    pub fn apply(&self, text: &str) -> String {
        let out = self.agents[0].cnictl(&["apply", "-f", "-"], Some(text));
        assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
        out.stdout
    }

    pub fn cnictl(&self, args: &[&str]) -> String {
        let out = self.agents[0].cnictl(args, None);
        assert_eq!(out.code, 0, "{args:?}: {}{}", out.stdout, out.stderr);
        out.stdout
    }

    /// A pod `name` (label `app`) on node `i`, serving TCP and UDP on `port` (0: no server);
    /// returns once the store has its address.
    pub fn pod(&mut self, i: usize, name: &str, app: &str, port: u16) -> &Pod {
        self.pod_with(i, name, app, port, None)
    }

    /// [`Cluster::pod`] with a hostPort mapped to `port` (portmap, and the Pod's spec).
    pub fn pod_with(
        &mut self,
        i: usize,
        name: &str,
        app: &str,
        port: u16,
        host_port: Option<u16>,
    ) -> &Pod {
        let ns = Netns::new(name);
        let args = k8s(name);
        let caps = host_port.map(|h| {
            json!({"portMappings": [{"hostPort": h, "containerPort": port, "protocol": "tcp"}]})
                .to_string()
        });
        let mut env = vec![("CNI_ARGS", args.as_str())];
        if let Some(c) = &caps {
            env.push(("CAP_ARGS", c));
        }
        let result = self.rt[i].add_with(self.net, &ns, &env);
        let v4 = pod_addr(&result, false).unwrap();
        let v6 = pod_addr(&result, true);
        let mut servers = Vec::new();
        if port != 0 {
            for ip in [Some(v4), v6].into_iter().flatten() {
                servers.push(ProbeServer::start_labelled(
                    &ns.path(),
                    SocketAddr::new(ip, port),
                    name,
                ));
            }
        }
        self.apply(&format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: shop, labels: {{app: {app}}}}}\nspec: {{containers: [{{name: c, image: x, ports: [{{name: http, containerPort: {}{}}}]}}]}}\n",
            port.max(1),
            host_port.map(|h| format!(", hostPort: {h}")).unwrap_or_default()
        ));
        until(Duration::from_secs(10), "the pod's attachment", || {
            let out =
                self.agents[0].cnictl(&["get", "pod", name, "-n", "shop", "-o", "json"], None);
            serde_json::from_str::<Value>(&out.stdout)
                .is_ok_and(|p| p["status"]["podIP"] == json!(v4.to_string()))
        });
        self.pods.insert(
            name.to_string(),
            Pod {
                ns,
                node: i,
                v4,
                v6,
                resolv: resolv_conf(&result),
                _servers: servers,
            },
        );
        &self.pods[name]
    }

    pub fn delete_pod(&mut self, name: &str) {
        let p = self.pods.remove(name).unwrap();
        self.rt[p.node].del_with(self.net, &p.ns, &[("CNI_ARGS", &k8s(name))]);
    }

    pub fn svc(&self, name: &str) -> Value {
        serde_json::from_str(&self.cnictl(&["get", "svc", name, "-n", "shop", "-o", "json"]))
            .unwrap()
    }

    pub fn cluster_ips(&self, name: &str) -> Vec<IpAddr> {
        let mut v: Vec<IpAddr> = self.svc(name)["spec"]["clusterIPs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().parse().unwrap())
            .collect();
        v.sort();
        v
    }
}
