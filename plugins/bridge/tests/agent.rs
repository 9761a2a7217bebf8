//! bridge with a node agent: `cluster-ipam` answered in-process (the same addresses, results
//! and errors as the `cluster-ipam` binary), and DEL leaving the veth pair's deletion to the
//! agent, which deletes detached pairs in batches (also after a crash: at its next start, or
//! at the next GC). Real namespaces, a real agent, real packets.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::time::{Duration, Instant};

use ferro_testutil::agent::Agent;
use ferro_testutil::netns::Netns;
use ferro_testutil::probe::{tcp_source, ProbeServer};
use ferro_testutil::topology::{ping, World, INTERNET};
use ferro_testutil::{require_root, run_plugin_in, workspace_bin, PluginDir, PluginRun};
use serde_json::{json, Value};

const CN: &str = "apiVersion: ferro-cni.io/v1
kind: ClusterNetwork
metadata: {name: default}
spec:
  podCIDRs: [10.244.0.0/16]
";

/// One node with its agent (embedded store) and a plugin directory.
struct Node {
    world: World,
    agent: Agent,
    plugins: PluginDir,
}

impl Node {
    fn new() -> Node {
        let world = World::new(1);
        let agent = Agent::start(
            &workspace_bin("ferro-agent"),
            Some(&world.nodes[0].ns),
            json!({"nodeName": "node-a", "logLevel": "debug"}),
        );
        let out = agent.cnictl(&["apply", "-f", "-"], Some(CN));
        assert_eq!(out.code, 0, "{}", out.stderr);
        Node {
            world,
            agent,
            plugins: PluginDir::new(&["bridge", "cluster-ipam", "host-local"]),
        }
    }

    fn ns(&self) -> &Netns {
        &self.world.nodes[0].ns
    }

    /// The network: bridge with masquerade, cluster-ipam and reports to the agent.
    fn conf(&self, socket: &str) -> Value {
        json!({"cniVersion": "1.1.0", "name": "kubenet", "type": "bridge", "bridge": "cbr7",
               "isGateway": true, "ipMasq": true, "agent": {"socket": self.agent.socket()},
               "ipam": {"type": "cluster-ipam", "socket": socket, "routes": [{"dst": "0.0.0.0/0"}],
                        "timeoutSeconds": 5}})
    }

    fn run(&self, bin: &str, cmd: &str, id: &str, pod: &Netns, conf: &Value) -> PluginRun {
        let netns = pod.path().display().to_string();
        let path = self.plugins.path_str();
        run_plugin_in(
            workspace_bin(bin),
            &[
                ("CNI_COMMAND", cmd),
                ("CNI_CONTAINERID", id),
                ("CNI_NETNS", netns.as_str()),
                ("CNI_IFNAME", "eth0"),
                ("CNI_PATH", path.as_str()),
                (
                    "CNI_ARGS",
                    "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=p",
                ),
            ],
            &conf.to_string(),
            Some(&self.ns().path()),
        )
    }

    fn bridge(&self, cmd: &str, id: &str, pod: &Netns) -> PluginRun {
        let conf = self.conf(&self.agent.socket().display().to_string());
        self.run("bridge", cmd, id, pod, &conf)
    }

    /// DEL with `prevResult`, as a runtime sends it.
    fn del(&self, id: &str, pod: &Netns, prev: &Value) -> PluginRun {
        let mut conf = self.conf(&self.agent.socket().display().to_string());
        conf["prevResult"] = prev.clone();
        self.run("bridge", "DEL", id, pod, &conf)
    }

    /// The node's detached links.
    fn detached(&self) -> Vec<String> {
        self.ns()
            .link_names()
            .into_iter()
            .filter(|n| n.starts_with("fdetach"))
            .collect()
    }

    /// Waits (generously) until the node has no detached link; the time since `t0`.
    fn wait_reaped(&self, what: &str, t0: Instant) -> Duration {
        while !self.detached().is_empty() {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "{what}: detached links left: {:?}\n{}",
                self.detached(),
                self.agent.log()
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        let took = t0.elapsed();
        println!("{what}: detached links gone {took:.1?} after it");
        took
    }

    /// The addresses of the network's IPv4 masquerade set, each with its tag comment.
    fn masq_elements(&self) -> Vec<(String, String)> {
        if !self
            .ns()
            .try_exec(&["nft", "list", "set", "inet", "ferro_cni", "pods4-kubenet"])
        {
            return Vec::new();
        }
        let out = self.ns().exec(&[
            "nft",
            "-j",
            "list",
            "set",
            "inet",
            "ferro_cni",
            "pods4-kubenet",
        ]);
        let v: Value = serde_json::from_str(&out).unwrap();
        let mut found = Vec::new();
        for item in v["nftables"].as_array().unwrap() {
            for e in item["set"]["elem"].as_array().into_iter().flatten() {
                let addr = e["elem"]["val"].as_str().or(e.as_str()).unwrap();
                let comment = e["elem"]["comment"].as_str().unwrap_or_default();
                found.push((addr.to_string(), comment.to_string()));
            }
        }
        found
    }

    /// Addresses the agent holds for attachments.
    fn allocations(&self) -> u64 {
        let out = self.agent.cnictl(&["ipam", "check", "-o", "json"], None);
        let v: Value = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}{}", out.stdout, out.stderr));
        v["allocations"].as_u64().unwrap()
    }
}

/// How many requests of `op` the agent's (debug) log shows.
fn requests(n: &Node, op: &str) -> usize {
    n.agent.log().matches(&format!("socket: {op}\n")).count()
}

/// `(containerID, hostInterface, addresses)` of every attachment the agent records.
fn attachments(n: &Node) -> Vec<(String, String, Value)> {
    let out = n
        .agent
        .cnictl(&["get", "attachments", "-A", "-o", "json"], None);
    let v: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", out.stdout, out.stderr));
    let items = v["items"].as_array().cloned().unwrap_or_default();
    items
        .iter()
        .map(|a| {
            let s = &a["spec"];
            (
                s["containerID"].as_str().unwrap().to_string(),
                s["hostInterface"].as_str().unwrap_or_default().to_string(),
                s["addresses"].clone(),
            )
        })
        .collect()
}

fn ip_of(r: &Value) -> String {
    let a = r["ips"][0]["address"].as_str().unwrap();
    a.split('/').next().unwrap().to_string()
}

/// One ping, one second: for "must not answer" (`ping` retries thrice).
fn answers(from: &Netns, dst: &str) -> bool {
    from.try_exec(&["ping", "-c1", "-W1", "-q", dst])
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn in_process_cluster_ipam_answers_as_the_binary_does() {
    require_root();
    let n = Node::new();
    let (p1, p2) = (Netns::new("ipp1"), Netns::new("ipp2"));
    let conf = n.conf(&n.agent.socket().display().to_string());
    let bridge = n.run("bridge", "ADD", "inproc", &p1, &conf).ok();
    let binary = n.run("cluster-ipam", "ADD", "exec", &p2, &conf).ok();
    let (a, b) = (&bridge["ips"][0], &binary["ips"][0]);
    let prefix = |v: &Value| {
        v["address"]
            .as_str()
            .unwrap()
            .split('/')
            .nth(1)
            .unwrap()
            .to_string()
    };
    assert_eq!(prefix(a), prefix(b), "{bridge}\n{binary}");
    assert_eq!(a["gateway"], b["gateway"], "{bridge}\n{binary}");
    assert_eq!(bridge["routes"], binary["routes"]);
    assert_ne!(a["address"], b["address"]);
    assert_eq!(n.allocations(), 2);
    // CHECK (in-process IPAM CHECK), then DEL through each path gives both back
    let mut check = conf.clone();
    check["prevResult"] = bridge.clone();
    assert_eq!(n.run("bridge", "CHECK", "inproc", &p1, &check).code, 0);
    n.del("inproc", &p1, &bridge).ok();
    n.run("cluster-ipam", "DEL", "exec", &p2, &conf).ok();
    assert_eq!(n.allocations(), 0);
    // the same error, code and message, with the agent's socket missing
    let gone = n.conf("/nonexistent/agent.sock");
    let e1 = n.run("bridge", "ADD", "inproc", &p1, &gone).err(11);
    let e2 = n.run("cluster-ipam", "ADD", "exec", &p2, &gone).err(11);
    assert_eq!(
        e1["msg"].as_str().unwrap(),
        format!("cluster-ipam: {}", e2["msg"].as_str().unwrap())
    );
    // a DEL without the agent is spooled on both paths: success
    assert_eq!(n.run("bridge", "DEL", "inproc", &p1, &gone).code, 0);
    assert_eq!(n.run("cluster-ipam", "DEL", "exec", &p2, &gone).code, 0);
    assert!(
        !p1.link_names().contains(&"eth0".to_string()),
        "a failed ADD leaves nothing"
    );
    let host = ferro_net::names::host_ifname("veth", "inproc", "eth0");
    assert!(
        !n.ns().link_names().contains(&host),
        "nor a veth on the node"
    );
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn an_address_request_left_unanswered_takes_back_the_pair_made_meanwhile() {
    require_root();
    let n = Node::new();
    let (p1, p2) = (Netns::new("nap1"), Netns::new("nap2"));
    // a first ADD makes the bridge: the next one creates its pair while the request is out
    let conf = n.conf(&n.agent.socket().display().to_string());
    let r1 = n.run("bridge", "ADD", "first", &p1, &conf).ok();
    // an "agent" that reads the request and hangs up without an answer
    let dir = tempfile::Builder::new()
        .prefix("fna")
        .tempdir_in("/tmp")
        .unwrap();
    let path = dir.path().join("mute.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let mute = std::thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(&s), &mut line).unwrap();
        line
    });
    let mute_conf = n.conf(&path.display().to_string());
    let e = n.run("bridge", "ADD", "mute", &p2, &mute_conf).err(11);
    assert!(
        e["msg"].as_str().unwrap().contains("closed the connection"),
        "{e}"
    );
    assert!(mute.join().unwrap().contains("ipamAllocate"));
    let host = ferro_net::names::host_ifname("veth", "mute", "eth0");
    assert!(
        !n.ns().link_names().contains(&host),
        "the pair made meanwhile is gone"
    );
    assert!(!p2.link_names().contains(&"eth0".to_string()));
    // the node works on
    n.del("first", &p1, &r1).ok();
    let r2 = n.run("bridge", "ADD", "mute", &p2, &conf).ok();
    n.del("mute", &p2, &r2).ok();
    assert_eq!(n.allocations(), 0);
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn del_detaches_at_once_and_the_agent_deletes_the_pairs_soon_after() {
    require_root();
    let mut n = Node::new();
    let (p1, p2) = (Netns::new("dp1"), Netns::new("dp2"));
    let r1 = n.bridge("ADD", "c1", &p1).ok();
    let r2 = n.bridge("ADD", "c2", &p2).ok();
    let ip1 = ip_of(&r1);
    assert!(ping(&p2, &ip1), "pod to pod before DEL");
    let host_end = r1["interfaces"][1]["name"].as_str().unwrap().to_string();

    let t0 = Instant::now();
    n.del("c1", &p1, &r1).ok();
    let returned = Instant::now();
    println!("DEL returned in {:.1?}", returned - t0);
    // at once: names free on both sides, no connectivity, the address released
    assert!(!n.ns().link_names().contains(&host_end));
    assert!(!p1.link_names().contains(&"eth0".to_string()));
    let left = n.detached();
    assert!(
        left.len() <= 1,
        "at most the pair's host end is left: {left:?}"
    );
    let down = n
        .ns()
        .ip_json(&["link", "show", "master", "cbr7"])
        .as_array()
        .unwrap()
        .len();
    assert_eq!(down, 1, "only the other pod's port is on the bridge");
    assert!(!answers(&p2, &ip1), "the deleted pod still answers");
    assert!(
        n.ns()
            .ip(&["-4", "neigh", "show", "to", &ip1])
            .trim()
            .is_empty(),
        "neighbour entry of the deleted pod left"
    );
    assert_eq!(n.allocations(), 1, "the address is released at DEL");
    // the same attachment again, at once
    let again = n.bridge("ADD", "c1", &p1).ok();
    assert!(ping(&p2, &ip_of(&again)), "the new attachment answers");
    n.wait_reaped("DEL's return (the checks above included)", returned);

    // the agent dies with a pair detached: its next start deletes it
    n.agent.kill9();
    n.del("c1", &p1, &again).ok();
    assert_eq!(
        n.detached().len(),
        1,
        "the pair waits for an agent: {:?}",
        n.detached()
    );
    let restarted = Instant::now();
    n.agent.restart();
    n.agent.wait_ready();
    n.wait_reaped("the agent's restart", restarted);

    // or the next GC deletes it
    n.agent.kill9();
    n.del("c2", &p2, &r2).ok();
    assert_eq!(n.detached().len(), 1);
    let mut gc = n.conf(&n.agent.socket().display().to_string());
    gc["cni.dev/valid-attachments"] = json!([]);
    let out = n.run("bridge", "GC", "", &p2, &gc);
    assert!(
        n.detached().is_empty(),
        "GC left {:?}: {}",
        n.detached(),
        out.stdout
    );
    n.agent.restart();
    n.agent.wait_ready();
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn the_agent_removes_the_masquerade_state_of_a_del_or_the_plugin_does_without_it() {
    require_root();
    let mut n = Node::new();
    let node_ip = n.world.nodes[0].ip;
    let inet = ProbeServer::start(
        &n.world.internet.path(),
        format!("{INTERNET}:7000").parse().unwrap(),
    );
    let p1 = Netns::new("mq1");
    let r1 = n.bridge("ADD", "m1", &p1).ok();
    let ip1 = ip_of(&r1);
    let elems = n.masq_elements();
    assert_eq!(elems.len(), 1, "{elems:?}");
    assert_eq!(elems[0].0, ip1);
    let tag1 = elems[0].1.clone();
    // added by the agent, with the addresses it handed out
    let added = |id: &str| format!("ipamAllocate of {id}/eth0: masquerade added");
    assert!(n.agent.log().contains(&added("m1")), "{}", n.agent.log());
    assert_eq!(
        tcp_source(&p1.path(), inet.addr),
        Some(node_ip),
        "masqueraded"
    );

    // with the agent: its socket removes the element, inside the DEL report's round trip
    n.del("m1", &p1, &r1).ok();
    assert!(n.masq_elements().is_empty(), "{:?}", n.masq_elements());
    let log = n.agent.log();
    let said = format!("kubenet/m1/eth0: removed the masquerade elements of [{ip1}]");
    assert!(log.contains(&said), "the agent did not remove it:\n{log}");
    assert!(!answers(&n.world.internet, &ip1), "the deleted pod answers");
    assert_eq!(n.allocations(), 0, "the address is released at DEL");

    // a new pod with the same address (host-local, that address only), on the same
    // network's sets: its own element, its traffic masqueraded, and removed on its DEL
    let subnet = r1["ips"][0]["address"]
        .as_str()
        .unwrap()
        .parse::<ipnet::IpNet>()
        .unwrap()
        .trunc()
        .to_string();
    let mut same = n.conf(&n.agent.socket().display().to_string());
    same["ipam"] = json!({"type": "host-local", "dataDir": n.plugins.path().join("leases"),
        "ranges": [[{"subnet": subnet, "rangeStart": ip1, "rangeEnd": ip1}]],
        "routes": [{"dst": "0.0.0.0/0"}]});
    let p2 = Netns::new("mq2");
    let r2 = n.run("bridge", "ADD", "m2", &p2, &same).ok();
    assert_eq!(ip_of(&r2), ip1);
    let elems = n.masq_elements();
    assert_eq!(elems.len(), 1, "{elems:?}");
    assert_eq!(elems[0].0, ip1);
    assert_ne!(elems[0].1, tag1, "the new element is the new attachment's");
    assert!(
        !n.agent.log().contains(&added("m2")),
        "host-local: the plugin adds it"
    );
    assert_eq!(
        tcp_source(&p2.path(), inet.addr),
        Some(node_ip),
        "masqueraded"
    );
    let mut del = same.clone();
    del["prevResult"] = r2.clone();
    n.run("bridge", "DEL", "m2", &p2, &del).ok();
    assert!(n.masq_elements().is_empty(), "{:?}", n.masq_elements());

    // the agent unreachable: the plugin removes the element itself, the report is spooled
    // without the removal
    let p3 = Netns::new("mq3");
    let r3 = n.bridge("ADD", "m3", &p3).ok();
    let ip3 = ip_of(&r3);
    assert_eq!(n.masq_elements().len(), 1);
    n.agent.kill9();
    n.del("m3", &p3, &r3).ok();
    assert!(n.masq_elements().is_empty(), "{:?}", n.masq_elements());
    n.agent.restart();
    n.agent.wait_ready();
    let log = n.agent.log();
    assert!(
        !log.contains(&format!("removed the masquerade elements of [{ip3}]")),
        "a replayed report removed firewall state:\n{log}"
    );
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn the_agent_rebuilds_a_masquerade_removed_behind_its_back_at_the_next_add() {
    require_root();
    let n = Node::new();
    let node_ip = n.world.nodes[0].ip;
    let inet = ProbeServer::start(
        &n.world.internet.path(),
        format!("{INTERNET}:7001").parse().unwrap(),
    );
    let p1 = Netns::new("mv1");
    let r1 = n.bridge("ADD", "v1", &p1).ok();
    let verified = Instant::now();
    // the network's chains and sets removed behind the agent's back
    n.ns()
        .exec(&["nft", "delete", "table", "inet", "ferro_cni"]);
    let p2 = Netns::new("mv2");
    let r2 = n.bridge("ADD", "v2", &p2).ok();
    let gap = verified.elapsed();
    let ip2 = ip_of(&r2);
    let elems = n.masq_elements();
    assert_eq!(elems.len(), 1, "only v2's element is back: {elems:?}");
    assert_eq!(elems[0].0, ip2);
    assert_eq!(
        tcp_source(&p2.path(), inet.addr),
        Some(node_ip),
        "masqueraded again"
    );
    let log = n.agent.log();
    assert!(
        log.contains("ipamAllocate of v2/eth0: masquerade added"),
        "{log}"
    );
    // within the second after its verification, the agent first tried the elements alone
    if gap < Duration::from_millis(900) {
        assert!(log.contains("reading the chains again"), "{gap:?}\n{log}");
    }
    n.del("v2", &p2, &r2).ok();
    n.del("v1", &p1, &r1).ok();
    assert!(n.masq_elements().is_empty(), "{:?}", n.masq_elements());
}

#[test]
#[ignore = "needs root: run scripts/test.sh"]
fn the_add_report_rides_on_the_address_request_and_a_failed_add_takes_it_back() {
    require_root();
    let n = Node::new();
    let (p1, p2) = (Netns::new("rr1"), Netns::new("rr2"));
    let r1 = n.bridge("ADD", "r1", &p1).ok();
    let host1 = r1["interfaces"][1]["name"].as_str().unwrap().to_string();
    // one request for the address and the record, no report after the ADD
    assert_eq!(requests(&n, "ipamAllocate"), 1, "{}", n.agent.log());
    assert_eq!(requests(&n, "report"), 0, "{}", n.agent.log());
    assert_eq!(
        attachments(&n),
        [(
            "r1".to_string(),
            host1.clone(),
            json!([r1["ips"][0]["address"]])
        )]
    );
    let markers = |n: &Node| -> Vec<String> {
        std::fs::read_dir(n.agent.state_dir().join("attachments"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|f| f.ends_with(".pending"))
            .collect()
    };
    assert_eq!(markers(&n).len(), 1, "recorded before its veth existed");

    // an ADD that fails after its address request (its host veth's name is taken): the
    // address goes back and the record with it (one DEL report)
    let host2 = ferro_net::names::host_ifname("veth", "r2", "eth0");
    n.ns().ip(&["link", "add", &host2, "type", "bridge"]);
    let e = n.bridge("ADD", "r2", &p2).err(7);
    assert!(e["msg"].as_str().unwrap().contains(&host2), "{e}");
    assert_eq!(requests(&n, "report"), 1, "{}", n.agent.log());
    assert_eq!(n.allocations(), 1);
    assert_eq!(attachments(&n).len(), 1, "{:?}", attachments(&n));
    assert_eq!(markers(&n).len(), 1);
    assert!(!p2.link_names().contains(&"eth0".to_string()));
    // the masquerade the agent added for it is gone again
    let ip1 = ip_of(&r1);
    assert!(n
        .agent
        .log()
        .contains("ipamAllocate of r2/eth0: masquerade added"));
    let elems = n.masq_elements();
    assert_eq!(elems.len(), 1, "{elems:?}");
    assert_eq!(elems[0].0, ip1);
    n.ns().ip(&["link", "del", &host2]);

    // DEL: the record and its marker go
    n.del("r1", &p1, &r1).ok();
    assert!(attachments(&n).is_empty(), "{:?}", attachments(&n));
    assert!(markers(&n).is_empty());
    assert_eq!(n.allocations(), 0);
}
