//! The node's services table, `inet ferro_services`, as data: what the kernel must hold
//! for a set of [`ServicePort`]s, in the spirit of kube-proxy's nftables mode.
//!
//! ```text
//! chain nat-prerouting  { type nat hook prerouting priority dstnat; jump services }
//! chain nat-output      { type nat hook output priority dstnat; jump services }
//! chain nat-postrouting { type nat hook postrouting priority srcnat; jump masquerading }
//! chain services {
//!     ip daddr . meta l4proto . th dport vmap @service-ips          (ClusterIP, external, LB)
//!     ip6 daddr . meta l4proto . th dport vmap @service-ips6
//!     fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports
//!     fib daddr type local ip6 daddr != ::1 meta l4proto . th dport vmap @service-nodeports6
//! }
//! chain svc-<hash>-<ns>/<name>/<proto>/<port>       balances over every endpoint:
//!     ip daddr <clusterIP> ip saddr != <pod CIDR> jump mark-for-masquerade
//!     ip saddr @affinity-<endpoint> goto ep-...      (sessionAffinity: ClientIP)
//!     numgen random mod N vmap @svc-<hash>-...       (a map 0..N-1 : goto ep-...)
//! chain local-<hash>-...    the same over this node's endpoints (traffic policies Local);
//!                           with none: drop
//! chain ext-<hash>-...      NodePort, external and load-balancer addresses:
//!     Cluster: jump mark-for-masquerade; goto svc-...
//!     Local:   fib saddr type local jump mark-for-masquerade; fib saddr type local goto svc-...;
//!              ip saddr <pod CIDR> goto svc-...; goto local-...
//! chain ep-<hash>-...__<ip>/<port>
//!     ip saddr <ip> jump mark-for-masquerade         (hairpin: a pod reaching itself)
//!     update @affinity-... { ip saddr }             (affinity)
//!     meta l4proto tcp dnat ip to <ip>:<port>
//! chain masquerading { meta mark & 0x4000 == 0x4000 meta mark set meta mark & ~0x4000
//!                      masquerade fully-random }
//! filter chains at priority dstnat - 10 (prerouting, input, forward, output), new
//! connections only: load-balancer source ranges (@firewall-ips: goto fw-...: the ranges
//! return, the rest is dropped), services without endpoints (@no-endpoint-services and
//! @no-endpoint-nodeports: goto reject-chain, or drop when only a Local policy leaves none),
//! ClusterIPs on a port they do not serve (goto reject-chain) and unallocated addresses of
//! the service CIDRs (drop). The reject chain answers TCP with a reset, the rest with an
//! ICMP port-unreachable: a TCP client is refused at once in either family (an ICMP error
//! may reach it only with its next SYN, a second later, and ICMP errors are rate-limited).
//! ```
//!
//! A packet costs one map lookup whatever the number of services; a change of endpoints
//! rewrites that service's chains and map only ([`mod@crate::diff`]). Each rule keeps the nft
//! text it was built from ([`PlannedRule::text`]): the golden tests read it, and a kernel
//! test checks that `nft list` shows the same.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::IpAddr;

use ferro_nftables::{
    priority, BaseChain, ChainType, DataType, Dir, Elem, Expr, Hook, KeyField, KeyPart, Policy,
    RuleBuilder, SetDef, Verdict, CT_STATE_NEW, RTN_LOCAL,
};
use ipnet::IpNet;
use sha2::{Digest, Sha256};

use crate::model::{Endpoint, ServicePort};

/// The table's name (family `inet`).
pub const TABLE: &str = "ferro_services";
/// The packet mark bit asking for masquerade at postrouting.
pub const MASQUERADE_MARK: u32 = 0x4000;
/// Priority of the filter chains: before DNAT.
const FILTER_PRIORITY: i32 = priority::DSTNAT - 10;
/// Priority of the check after DNAT in the output path.
const POST_DNAT_PRIORITY: i32 = priority::DSTNAT + 10;
/// Longest chain or set name we make (the kernel allows 255 bytes).
const MAX_NAME: usize = 240;

/// One rule: its expressions and the nft statement text they were built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedRule {
    /// As `nft list` shows it.
    pub text: String,
    /// What is sent.
    pub exprs: Vec<Expr>,
}

/// A chain and its rules.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChainDef {
    /// The hook of a base chain.
    pub base: Option<BaseChain>,
    /// Its rules, in order.
    pub rules: Vec<PlannedRule>,
}

/// The whole desired table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ruleset {
    /// Chains by name.
    pub chains: BTreeMap<String, ChainDef>,
    /// Sets and maps by name.
    pub sets: BTreeMap<String, SetDef>,
    /// Elements of each set by key.
    pub elems: BTreeMap<String, BTreeMap<Vec<u8>, Elem>>,
    /// Named counter objects (their values survive rewrites of the rules counting in them).
    pub counters: BTreeSet<String>,
}

/// What the plan needs to know about the cluster and the node.
#[derive(Debug, Clone, Default)]
pub struct NodeFacts<'a> {
    /// This node's name (for Local traffic policies).
    pub node: &'a str,
    /// The cluster's pod CIDRs (traffic from elsewhere to a ClusterIP is masqueraded).
    pub pod_cidrs: &'a [IpNet],
    /// The cluster's service CIDRs (unallocated addresses are dropped).
    pub service_cidrs: &'a [IpNet],
}

fn hash(s: &str) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let d = Sha256::digest(s.as_bytes());
    let mut bits: u64 = 0;
    for b in &d[..5] {
        bits = (bits << 8) | u64::from(*b);
    }
    (0..8)
        .map(|i| char::from(ALPHABET[((bits >> (35 - 5 * i)) & 31) as usize]))
        .collect()
}

/// `<prefix>-<hash of what>-<what>`, cut to the kernel's limits (the hash keeps cut names
/// apart).
pub fn object_name(prefix: &str, what: &str) -> String {
    let mut n = format!("{prefix}-{}-{what}", hash(&format!("{prefix}\0{what}")));
    if n.len() > MAX_NAME {
        let mut cut = MAX_NAME;
        while !n.is_char_boundary(cut) {
            cut -= 1;
        }
        n.truncate(cut);
    }
    n
}

struct Fam {
    v6: bool,
}

impl Fam {
    fn ip(&self) -> &'static str {
        if self.v6 {
            "ip6"
        } else {
            "ip"
        }
    }
    fn key(&self, dir: Dir) -> KeyField {
        if self.v6 {
            KeyField::Ip6(dir)
        } else {
            KeyField::Ip4(dir)
        }
    }
    fn addr_type(&self) -> DataType {
        if self.v6 {
            DataType::Ipv6Addr
        } else {
            DataType::Ipv4Addr
        }
    }
    fn suffix(&self) -> &'static str {
        if self.v6 {
            "6"
        } else {
            ""
        }
    }
    fn loopback(&self) -> IpNet {
        if self.v6 {
            "::1/128".parse().expect("loopback")
        } else {
            "127.0.0.0/8".parse().expect("loopback")
        }
    }
}

fn cidr_text(n: &IpNet) -> String {
    if n.prefix_len() == n.max_prefix_len() {
        n.addr().to_string()
    } else {
        n.to_string()
    }
}

/// A rule and the nft text it was built from.
pub fn rule(text: impl Into<String>, b: RuleBuilder) -> PlannedRule {
    PlannedRule {
        text: text.into(),
        exprs: b.exprs().to_vec(),
    }
}

fn goto(c: &str) -> Verdict {
    Verdict::Goto(c.to_string())
}

fn jump(c: &str) -> Verdict {
    Verdict::Jump(c.to_string())
}

const MARK_CHAIN: &str = "mark-for-masquerade";
const REJECT_CHAIN: &str = "reject-chain";

impl Ruleset {
    /// Adds everything of `other` (a [`fragment`]) to this table.
    pub fn merge(&mut self, other: &Ruleset) {
        for (n, c) in &other.chains {
            self.chains.insert(n.clone(), c.clone());
        }
        for (n, d) in &other.sets {
            self.sets.insert(n.clone(), d.clone());
        }
        for (set, elems) in &other.elems {
            let mine = self.elems.entry(set.clone()).or_default();
            for (k, e) in elems {
                mine.insert(k.clone(), e.clone());
            }
        }
        self.counters.extend(other.counters.iter().cloned());
    }

    /// Adds a named counter object.
    pub fn counter(&mut self, name: &str) {
        self.counters.insert(name.to_string());
    }

    /// Adds (or replaces) chain `name`.
    pub fn chain(&mut self, name: &str, base: Option<BaseChain>, rules: Vec<PlannedRule>) {
        self.chains
            .insert(name.to_string(), ChainDef { base, rules });
    }

    /// Adds (or replaces) a set, with no elements yet.
    pub fn set(&mut self, def: SetDef) {
        self.elems.entry(def.name.clone()).or_default();
        self.sets.insert(def.name.clone(), def);
    }

    /// Adds an element to `set`.
    pub fn elem(&mut self, set: &str, e: Elem) {
        self.elems
            .entry(set.to_string())
            .or_default()
            .insert(e.key.clone(), e);
    }

    /// The table in nft syntax (sets and maps, then chains, each in name order): what the
    /// golden tests compare.
    pub fn render(&self) -> String {
        self.render_as(TABLE)
    }

    /// [`Ruleset::render`] of the same rules in table `inet <table>` (another feature's
    /// table built with these types).
    pub fn render_as(&self, table: &str) -> String {
        let mut s = format!("table inet {table} {{\n");
        for name in &self.counters {
            let _ = writeln!(s, "\tcounter {name} {{ }}");
        }
        for (name, def) in &self.sets {
            let kind = if def.data.is_some() { "map" } else { "set" };
            let key: Vec<&str> = def.key.iter().map(|t| t.name()).collect();
            let _ = write!(s, "\t{kind} {name} {{ type {}", key.join(" . "));
            if def.data.is_some() {
                s.push_str(" : verdict");
            }
            if let Some(t) = def.timeout_ms {
                let _ = write!(s, "; flags dynamic,timeout; timeout {}s", t / 1000);
            }
            s.push_str(" }");
            let elems = self.elems.get(name).map(|m| m.values().collect::<Vec<_>>());
            let elems = elems.unwrap_or_default();
            if !elems.is_empty() {
                s.push_str(" = {");
                for e in elems {
                    let _ = write!(s, "\n\t\t{}", e.label);
                    if let Some(ferro_nftables::Data::Verdict(v)) = &e.data {
                        let _ = write!(s, " : {}", verdict_text(v));
                    }
                }
                s.push_str("\n\t}");
            }
            s.push('\n');
        }
        for (name, def) in &self.chains {
            let _ = write!(s, "\tchain {name} {{");
            if let Some(b) = &def.base {
                let hook = match b.hook {
                    Hook::Prerouting => "prerouting",
                    Hook::Input => "input",
                    Hook::Forward => "forward",
                    Hook::Output => "output",
                    Hook::Postrouting => "postrouting",
                };
                let _ = write!(
                    s,
                    " type {} hook {hook} priority {};",
                    b.kind.name(),
                    b.priority
                );
            }
            for r in &def.rules {
                let _ = write!(s, "\n\t\t{}", r.text);
            }
            s.push_str("\n\t}\n");
        }
        s.push_str("}\n");
        s
    }
}

fn verdict_text(v: &Verdict) -> String {
    match v {
        Verdict::Accept => "accept".into(),
        Verdict::Drop => "drop".into(),
        Verdict::Continue => "continue".into(),
        Verdict::Return => "return".into(),
        Verdict::Jump(c) => format!("jump {c}"),
        Verdict::Goto(c) => format!("goto {c}"),
    }
}

fn base(kind: ChainType, hook: Hook, priority: i32) -> Option<BaseChain> {
    Some(BaseChain {
        kind,
        hook,
        priority,
        policy: Policy::Accept,
    })
}

fn ct_new_jump(chain: &str) -> PlannedRule {
    rule(
        format!("ct state new jump {chain}"),
        RuleBuilder::new()
            .ct_state_any(CT_STATE_NEW)
            .verdict(jump(chain)),
    )
}

fn vip_map(v6: bool) -> String {
    format!("service-ips{}", Fam { v6 }.suffix())
}

/// The chains, sets and maps every node has, whatever its services.
fn skeleton(r: &mut Ruleset, facts: &NodeFacts<'_>) {
    use ChainType::{Filter, Nat};
    r.chain(
        "filter-prerouting",
        base(Filter, Hook::Prerouting, FILTER_PRIORITY),
        vec![ct_new_jump("firewall-check")],
    );
    r.chain(
        "filter-input",
        base(Filter, Hook::Input, FILTER_PRIORITY),
        vec![
            ct_new_jump("nodeport-endpoints-check"),
            ct_new_jump("service-endpoints-check"),
        ],
    );
    r.chain(
        "filter-forward",
        base(Filter, Hook::Forward, FILTER_PRIORITY),
        vec![
            ct_new_jump("service-endpoints-check"),
            ct_new_jump("cluster-ips-check"),
        ],
    );
    r.chain(
        "filter-output",
        base(Filter, Hook::Output, FILTER_PRIORITY),
        vec![
            ct_new_jump("service-endpoints-check"),
            ct_new_jump("firewall-check"),
        ],
    );
    r.chain(
        "filter-output-post-dnat",
        base(Filter, Hook::Output, POST_DNAT_PRIORITY),
        vec![ct_new_jump("cluster-ips-check")],
    );
    r.chain(
        "nat-prerouting",
        base(Nat, Hook::Prerouting, priority::DSTNAT),
        vec![rule(
            "jump services",
            RuleBuilder::new().verdict(jump("services")),
        )],
    );
    r.chain(
        "nat-output",
        base(Nat, Hook::Output, priority::DSTNAT),
        vec![rule(
            "jump services",
            RuleBuilder::new().verdict(jump("services")),
        )],
    );
    r.chain(
        "nat-postrouting",
        base(Nat, Hook::Postrouting, priority::SRCNAT),
        vec![rule(
            "jump masquerading",
            RuleBuilder::new().verdict(jump("masquerading")),
        )],
    );
    r.chain(
        "masquerading",
        None,
        vec![rule(
            format!(
                "meta mark & 0x{MASQUERADE_MARK:08x} == 0x{MASQUERADE_MARK:08x} meta mark set meta mark & 0x{:08x} masquerade fully-random",
                !MASQUERADE_MARK
            ),
            RuleBuilder::new()
                .mark_masked_eq(MASQUERADE_MARK, MASQUERADE_MARK)
                .clear_mark(MASQUERADE_MARK)
                .masquerade_fully_random(),
        )],
    );
    r.chain(
        MARK_CHAIN,
        None,
        vec![rule(
            format!("meta mark set meta mark | 0x{MASQUERADE_MARK:08x}"),
            RuleBuilder::new().set_mark_or(MASQUERADE_MARK),
        )],
    );
    // TCP gets a reset (refused at once, in both families), the rest an ICMP error.
    r.chain(
        REJECT_CHAIN,
        None,
        vec![
            rule(
                "meta l4proto tcp reject with tcp reset",
                RuleBuilder::new().l4proto(6).reject_tcp_reset(),
            ),
            rule("reject", RuleBuilder::new().reject()),
        ],
    );
    let l4 = [KeyField::L4Proto, KeyField::ThDport];
    let mut services = Vec::new();
    let mut firewall = Vec::new();
    let mut no_eps = Vec::new();
    let mut no_np = Vec::new();
    let mut cluster_check = Vec::new();
    for v6 in [false, true] {
        let f = Fam { v6 };
        let (ip, sfx) = (f.ip(), f.suffix());
        let addr_key = vec![f.addr_type(), DataType::InetProto, DataType::InetService];
        let port_key = vec![DataType::InetProto, DataType::InetService];
        for m in ["service-ips", "no-endpoint-services", "firewall-ips"] {
            r.set(SetDef::vmap(format!("{m}{sfx}"), addr_key.clone()));
        }
        for m in ["service-nodeports", "no-endpoint-nodeports"] {
            r.set(SetDef::vmap(format!("{m}{sfx}"), port_key.clone()));
        }
        r.set(SetDef::set(
            format!("cluster-ips{sfx}"),
            vec![f.addr_type()],
        ));
        let concat = |map: &str| {
            RuleBuilder::new().concat_vmap(
                &[f.key(Dir::Dst), KeyField::L4Proto, KeyField::ThDport],
                map,
            )
        };
        services.push(rule(
            format!("{ip} daddr . meta l4proto . th dport vmap @service-ips{sfx}"),
            concat(&format!("service-ips{sfx}")),
        ));
        firewall.push(rule(
            format!("{ip} daddr . meta l4proto . th dport vmap @firewall-ips{sfx}"),
            concat(&format!("firewall-ips{sfx}")),
        ));
        no_eps.push(rule(
            format!("{ip} daddr . meta l4proto . th dport vmap @no-endpoint-services{sfx}"),
            concat(&format!("no-endpoint-services{sfx}")),
        ));
        let lo = f.loopback();
        let node_port = |map: &str| PlannedRule {
            text: format!(
                "fib daddr type local {ip} daddr != {} meta l4proto . th dport vmap @{map}",
                cidr_text(&lo)
            ),
            exprs: RuleBuilder::new()
                .fib_daddr_type(RTN_LOCAL)
                .not_addr_cidr(Dir::Dst, lo)
                .concat_vmap(&l4, map)
                .exprs()
                .to_vec(),
        };
        services.push(node_port(&format!("service-nodeports{sfx}")));
        no_np.push(node_port(&format!("no-endpoint-nodeports{sfx}")));
        cluster_check.push(rule(
            format!("{ip} daddr @cluster-ips{sfx} goto {REJECT_CHAIN}"),
            RuleBuilder::new()
                .addr_in_set(v6, Dir::Dst, &format!("cluster-ips{sfx}"), false)
                .verdict(goto(REJECT_CHAIN)),
        ));
        for c in facts
            .service_cidrs
            .iter()
            .filter(|c| matches!(c, IpNet::V6(_)) == v6)
        {
            cluster_check.push(rule(
                format!("{ip} daddr {} drop", cidr_text(c)),
                RuleBuilder::new()
                    .addr_cidr(Dir::Dst, *c)
                    .verdict(Verdict::Drop),
            ));
        }
    }
    r.chain("services", None, services);
    r.chain("firewall-check", None, firewall);
    r.chain("service-endpoints-check", None, no_eps);
    r.chain("nodeport-endpoints-check", None, no_np);
    r.chain("cluster-ips-check", None, cluster_check);
}

fn proto_part(sp: &ServicePort) -> KeyPart {
    KeyPart::Proto(sp.proto.number())
}

fn ep_chain(sp: &ServicePort, e: &Endpoint) -> String {
    let ip = if e.ip.is_ipv6() {
        format!("[{}]", e.ip)
    } else {
        e.ip.to_string()
    };
    object_name("ep", &format!("{}__{ip}/{}", sp.id(), e.port))
}

fn affinity_set(sp: &ServicePort, e: &Endpoint) -> String {
    object_name(
        "affinity",
        &format!(
            "{}__{}/{}/{}s",
            sp.id(),
            e.ip,
            e.port,
            sp.affinity_seconds.unwrap_or(0)
        ),
    )
}

fn chain_of(prefix: &str, sp: &ServicePort) -> String {
    let what = if sp.v6 {
        format!("{}/v6", sp.id())
    } else {
        sp.id()
    };
    object_name(prefix, &what)
}

/// A chain (and its map) balancing over `eps`: affinity checks first, then a random choice.
fn balance(
    r: &mut Ruleset,
    name: &str,
    sp: &ServicePort,
    eps: &[&Endpoint],
    lead: Vec<PlannedRule>,
) {
    let f = Fam { v6: sp.v6 };
    let mut rules = lead;
    if eps.is_empty() {
        rules.push(rule("drop", RuleBuilder::new().verdict(Verdict::Drop)));
        r.chain(name, None, rules);
        return;
    }
    if sp.affinity_seconds.is_some() {
        for e in eps {
            let set = affinity_set(sp, e);
            let ep = ep_chain(sp, e);
            rules.push(rule(
                format!("{} saddr @{set} goto {ep}", f.ip()),
                RuleBuilder::new()
                    .addr_in_set(sp.v6, Dir::Src, &set, false)
                    .verdict(goto(&ep)),
            ));
        }
    }
    let n = u32::try_from(eps.len()).unwrap_or(u32::MAX);
    rules.push(rule(
        format!("numgen random mod {n} vmap @{name}"),
        RuleBuilder::new().numgen_vmap(n, name),
    ));
    r.set(SetDef::vmap(name, vec![DataType::Integer]));
    for (i, e) in eps.iter().enumerate() {
        let i = u32::try_from(i).unwrap_or(u32::MAX);
        r.elem(name, Elem::int(i).with_verdict(goto(&ep_chain(sp, e))));
    }
    r.chain(name, None, rules);
}

fn endpoint(r: &mut Ruleset, sp: &ServicePort, e: &Endpoint) {
    let f = Fam { v6: sp.v6 };
    let name = ep_chain(sp, e);
    let mut rules = vec![rule(
        format!("{} saddr {} jump {MARK_CHAIN}", f.ip(), e.ip),
        RuleBuilder::new()
            .addr(Dir::Src, e.ip)
            .verdict(jump(MARK_CHAIN)),
    )];
    if let Some(secs) = sp.affinity_seconds {
        let set = affinity_set(sp, e);
        r.set(SetDef::dynamic_timeout(
            &set,
            vec![f.addr_type()],
            u64::from(secs) * 1000,
        ));
        rules.push(rule(
            format!("update @{set} {{ {} saddr }}", f.ip()),
            RuleBuilder::new().update_saddr(sp.v6, &set),
        ));
    }
    let to = if sp.v6 {
        format!("[{}]:{}", e.ip, e.port)
    } else {
        format!("{}:{}", e.ip, e.port)
    };
    rules.push(rule(
        format!("meta l4proto {} dnat {} to {to}", sp.proto.name(), f.ip()),
        RuleBuilder::new()
            .l4proto(sp.proto.number())
            .dnat(e.ip, Some(e.port)),
    ));
    r.chain(&name, None, rules);
}

fn addr_elem(ip: IpAddr, sp: &ServicePort, port: u16, v: Verdict) -> Elem {
    Elem::concat(&[KeyPart::Addr(ip), proto_part(sp), KeyPart::Port(port)]).with_verdict(v)
}

fn port_elem(sp: &ServicePort, port: u16, v: Verdict) -> Elem {
    Elem::concat(&[proto_part(sp), KeyPart::Port(port)]).with_verdict(v)
}

/// The desired table for `ports` on the node `facts` describes.
pub fn plan(ports: &[ServicePort], facts: &NodeFacts<'_>) -> Ruleset {
    let mut r = Ruleset::default();
    skeleton(&mut r, facts);
    plan_ports(&mut r, ports, facts);
    r
}

/// The table's chains, sets and maps every node has, whatever its services.
pub fn common(facts: &NodeFacts<'_>) -> Ruleset {
    let mut r = Ruleset::default();
    skeleton(&mut r, facts);
    r
}

/// What `ports` add to the table: their chains and sets, and their elements of the shared
/// maps (which [`common`] declares).
pub fn fragment(ports: &[ServicePort], facts: &NodeFacts<'_>) -> Ruleset {
    let mut r = Ruleset::default();
    plan_ports(&mut r, ports, facts);
    r
}

fn plan_ports(out: &mut Ruleset, ports: &[ServicePort], facts: &NodeFacts<'_>) {
    let mut r = std::mem::take(out);
    for sp in ports {
        let f = Fam { v6: sp.v6 };
        let sfx = f.suffix();
        let all: Vec<&Endpoint> = sp.endpoints.iter().collect();
        let local: Vec<&Endpoint> = sp.local_endpoints(facts.node).collect();
        let pod_cidr = facts
            .pod_cidrs
            .iter()
            .find(|c| matches!(c, IpNet::V6(_)) == sp.v6)
            .copied();
        let svc = chain_of("svc", sp);
        let loc = chain_of("local", sp);
        let ext = chain_of("ext", sp);
        let reject = goto(REJECT_CHAIN);
        for e in &all {
            endpoint(&mut r, sp, e);
        }
        let mut lead = Vec::new();
        if !all.is_empty() {
            if let (Some(cip), Some(pc)) = (sp.cluster_ip, pod_cidr) {
                lead.push(rule(
                    format!(
                        "{} daddr {cip} {} saddr != {} jump {MARK_CHAIN}",
                        f.ip(),
                        f.ip(),
                        cidr_text(&pc)
                    ),
                    RuleBuilder::new()
                        .addr(Dir::Dst, cip)
                        .not_addr_cidr(Dir::Src, pc)
                        .verdict(jump(MARK_CHAIN)),
                ));
            }
            balance(&mut r, &svc, sp, &all, lead.clone());
        }
        let needs_local = !all.is_empty() && (sp.internal_local || sp.external_local);
        if needs_local {
            // ClusterIP traffic reaches it too when the internal policy is Local: the same
            // masquerade of non-pod sources applies.
            let lead = if sp.internal_local { lead } else { Vec::new() };
            balance(&mut r, &loc, sp, &local, lead);
        }
        // ClusterIP.
        if let Some(cip) = sp.cluster_ip {
            r.elem(&format!("cluster-ips{sfx}"), Elem::addr(cip));
            if all.is_empty() {
                r.elem(
                    &format!("no-endpoint-services{sfx}"),
                    addr_elem(cip, sp, sp.port, reject.clone()),
                );
            } else if sp.internal_local && local.is_empty() {
                r.elem(
                    &format!("no-endpoint-services{sfx}"),
                    addr_elem(cip, sp, sp.port, Verdict::Drop),
                );
            } else {
                let target = if sp.internal_local { &loc } else { &svc };
                r.elem(&vip_map(sp.v6), addr_elem(cip, sp, sp.port, goto(target)));
            }
        }
        // NodePort, external and load-balancer addresses.
        if sp.has_external() {
            let vips: Vec<IpAddr> = sp
                .external_ips
                .iter()
                .chain(sp.lb_ips.iter())
                .copied()
                .collect();
            if all.is_empty() {
                for ip in &vips {
                    r.elem(
                        &format!("no-endpoint-services{sfx}"),
                        addr_elem(*ip, sp, sp.port, reject.clone()),
                    );
                }
                if let Some(np) = sp.node_port {
                    r.elem(
                        &format!("no-endpoint-nodeports{sfx}"),
                        port_elem(sp, np, reject.clone()),
                    );
                }
            } else {
                let mut rules = Vec::new();
                if sp.external_local {
                    rules.push(rule(
                        format!("fib saddr type local jump {MARK_CHAIN}"),
                        RuleBuilder::new()
                            .expr(fib_saddr_local())
                            .expr(fib_local_cmp())
                            .verdict(jump(MARK_CHAIN)),
                    ));
                    rules.push(rule(
                        format!("fib saddr type local goto {svc}"),
                        RuleBuilder::new()
                            .expr(fib_saddr_local())
                            .expr(fib_local_cmp())
                            .verdict(goto(&svc)),
                    ));
                    if let Some(pc) = pod_cidr {
                        rules.push(rule(
                            format!("{} saddr {} goto {svc}", f.ip(), cidr_text(&pc)),
                            RuleBuilder::new()
                                .addr_cidr(Dir::Src, pc)
                                .verdict(goto(&svc)),
                        ));
                    }
                    rules.push(rule(
                        format!("goto {loc}"),
                        RuleBuilder::new().verdict(goto(&loc)),
                    ));
                } else {
                    rules.push(rule(
                        format!("jump {MARK_CHAIN}"),
                        RuleBuilder::new().verdict(jump(MARK_CHAIN)),
                    ));
                    rules.push(rule(
                        format!("goto {svc}"),
                        RuleBuilder::new().verdict(goto(&svc)),
                    ));
                }
                r.chain(&ext, None, rules);
                for ip in &vips {
                    r.elem(&vip_map(sp.v6), addr_elem(*ip, sp, sp.port, goto(&ext)));
                }
                if let Some(np) = sp.node_port {
                    r.elem(
                        &format!("service-nodeports{sfx}"),
                        port_elem(sp, np, goto(&ext)),
                    );
                }
            }
            // loadBalancerSourceRanges.
            if !sp.source_ranges.is_empty() && !sp.lb_ips.is_empty() {
                let fw = chain_of("fw", sp);
                let mut rules: Vec<PlannedRule> = sp
                    .source_ranges
                    .iter()
                    .map(|c| {
                        rule(
                            format!("{} saddr {} return", f.ip(), cidr_text(c)),
                            RuleBuilder::new()
                                .addr_cidr(Dir::Src, *c)
                                .verdict(Verdict::Return),
                        )
                    })
                    .collect();
                rules.push(rule("drop", RuleBuilder::new().verdict(Verdict::Drop)));
                r.chain(&fw, None, rules);
                for ip in &sp.lb_ips {
                    r.elem(
                        &format!("firewall-ips{sfx}"),
                        addr_elem(*ip, sp, sp.port, goto(&fw)),
                    );
                }
            }
        }
    }
    *out = r;
}

/// `fib saddr type ...` loads the source address's route type.
fn fib_saddr_local() -> Expr {
    Expr::Fib {
        flags: ferro_nftables::FIB_F_SADDR,
        result: ferro_nftables::FibResult::AddrType,
        dreg: ferro_nftables::Reg::R1,
    }
}

fn fib_local_cmp() -> Expr {
    Expr::cmp(
        ferro_nftables::CmpOp::Eq,
        ferro_nftables::Reg::R1,
        RTN_LOCAL.to_ne_bytes().to_vec(),
    )
}

#[cfg(test)]
mod tests;
