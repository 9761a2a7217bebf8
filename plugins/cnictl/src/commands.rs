//! The subcommand table and the handlers.
//!
//! Each entry of [`SUBCOMMANDS`] declares a command's name, arguments, flags and handler; the
//! parser ([`crate::cli`]) and the help text are driven by it. A later command (`plan`,
//! `overlay sync`) is one more entry here and one more handler (a command with its own
//! sub-verbs, such as `overlay`, takes the sub-verb as its first positional argument).
//!
//! Handlers read the environment from [`Ctx`], write results to `ctx.out` and notes to
//! `ctx.err`, and return an [`Error`]; [`crate::run`] turns that into stderr lines and an exit
//! status.

use std::io::Write;
use std::path::{Path, PathBuf};

use ferro_spec::args::CniArgs;
use ferro_spec::conf::is_valid_identifier;
use ferro_spec::env::validate_ifname;
use ferro_spec::{Attachment, CniError, Env};
use serde_json::{Map, Value};

use crate::cli::{self, FlagSpec, GlobalOpts, Invocation};
use crate::cluster;
use crate::conflist::{self, NetworkList};
use crate::error::{io_error, Error};
use crate::exec::ProcessExec;
use crate::firewall;
use crate::gojson;
use crate::identity::{cnitool_container_id, go_abs};
use crate::runtime::{Runtime, RuntimeConf, Validity};
use crate::validate;

/// Default `NETCONFPATH`.
pub const DEFAULT_NETCONFPATH: &str = "/etc/cni/net.d";
/// Default result cache directory (libcni `CacheDir`).
pub const DEFAULT_CACHE_DIR: &str = "/var/lib/cni";

/// Everything a handler may use.
pub struct Ctx<'a> {
    /// cnictl's environment (plugins inherit it).
    pub env: &'a Env,
    /// The working directory, to make relative netns paths absolute.
    pub cwd: Option<PathBuf>,
    /// Global flags.
    pub global: GlobalOpts,
    /// Where results go (stdout).
    pub out: &'a mut dyn Write,
    /// Where notes and plugin stderr go (stderr).
    pub err: &'a mut dyn Write,
}

impl std::fmt::Debug for Ctx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("cwd", &self.cwd)
            .field("global", &self.global)
            .finish_non_exhaustive()
    }
}

/// A handler.
pub type Handler = fn(&mut Ctx<'_>, &Invocation) -> Result<(), Error>;

/// One entry of the command table.
#[derive(Debug, Clone, Copy)]
pub struct Subcommand {
    /// The word on the command line.
    pub name: &'static str,
    /// Its arguments, for help and errors.
    pub args: &'static str,
    /// One line of help.
    pub summary: &'static str,
    /// More help (may be empty).
    pub details: &'static str,
    /// Fewest positional arguments.
    pub min_args: usize,
    /// Most positional arguments.
    pub max_args: usize,
    /// The command's own flags.
    pub flags: &'static [FlagSpec],
    /// The handler.
    pub run: Handler,
}

const FILENAME_FLAG: FlagSpec = FlagSpec {
    long: "filename",
    short: Some('f'),
    metavar: Some("FILE|DIR|-"),
    help: "a manifest, a directory of them (.yaml, .yml, .json) or - for stdin (repeatable)",
};

const NAMESPACE_FLAG: FlagSpec = FlagSpec {
    long: "namespace",
    short: Some('n'),
    metavar: Some("NS"),
    help: "the namespace (default: default)",
};

/// Every command.
pub const SUBCOMMANDS: &[Subcommand] = &[
    Subcommand {
        name: "add",
        args: "<network> <netns>",
        summary: "ADD every plugin in order, cache the result, print it",
        details: "When a plugin fails, DEL runs over the whole list in reverse order before the \
ADD error is reported (libcni leaves that to the caller); --no-cleanup keeps what was done.",
        min_args: 2,
        max_args: 2,
        flags: &[FlagSpec {
            long: "no-cleanup",
            short: None,
            metavar: None,
            help: "do not DEL the list after a failed ADD",
        }],
        run: cmd_add,
    },
    Subcommand {
        name: "check",
        args: "<network> <netns>",
        summary: "CHECK every plugin in order against the cached result (cniVersion >= 0.4.0)",
        details: "",
        min_args: 2,
        max_args: 2,
        flags: &[],
        run: cmd_check,
    },
    Subcommand {
        name: "del",
        args: "<network> <netns>",
        summary: "DEL every plugin in reverse order, then drop the cached result",
        details: "",
        min_args: 2,
        max_args: 2,
        flags: &[],
        run: cmd_del,
    },
    Subcommand {
        name: "gc",
        args: "<network> [netns, ignored]",
        summary: "DEL stale cached attachments, then GC every plugin (cniVersion >= 1.1.0)",
        details: "Valid attachments are those given with --valid; without --valid, a cached \
attachment is valid while the netns recorded in its cache file exists (entries without a \
recorded netns, written by libcni 1.1 and older, are kept). Every other cached attachment of \
the network gets a DEL; then GC goes to every plugin with the valid set in both \
cni.dev/valid-attachments and cni.dev/attachments.",
        min_args: 1,
        max_args: 2,
        flags: &[FlagSpec {
            long: "valid",
            short: None,
            metavar: Some("ID[/IFNAME]"),
            help: "a valid attachment (repeatable; IFNAME defaults to --ifname)",
        }],
        run: cmd_gc,
    },
    Subcommand {
        name: "plan",
        args: "--nodes N --max-pods P --vnet CIDR[,CIDR] [--pod-cidr CIDR[,CIDR]]",
        summary: "how many VNet addresses and pod slices flat, kubenet and overlay consume; what runs out first",
        details: "flat reserves maxPods + 1 VNet addresses per node; flat-pool (flat with \
cluster-ipam) spends each node's address and the blocks its pods fill (--pods, --block-prefix); \
kubenet and overlay spend one VNet address and one pod-CIDR slice per node and pod family (kubenet \
also one route per node and pod family in the Azure route table, at most 400). Azure reserves 5 \
addresses of every subnet; --surge nodes (upgrades) must fit too. Dual stack: give --vnet and \
--pod-cidr one CIDR per family (repeated, or comma-separated); the cluster fits when every family \
does.",
        min_args: 0,
        max_args: 0,
        flags: &[
            FlagSpec { long: "nodes", short: None, metavar: Some("N"), help: "nodes in steady state" },
            FlagSpec { long: "max-pods", short: None, metavar: Some("P"), help: "pods per node (AKS default: 30 flat, 110 kubenet, 250 overlay)" },
            FlagSpec { long: "vnet", short: None, metavar: Some("CIDR"), help: "the VNet subnet the nodes live in (one per family)" },
            FlagSpec { long: "pod-cidr", short: None, metavar: Some("CIDR"), help: "the pod CIDR (kubenet, overlay; one per family)" },
            FlagSpec { long: "slice-prefix", short: None, metavar: Some("LEN"), help: "prefix length of each node's IPv4 pod slice (default 24)" },
            FlagSpec { long: "slice-prefix-v6", short: None, metavar: Some("LEN"), help: "prefix length of each node's IPv6 pod slice (default 64)" },
            FlagSpec { long: "surge", short: None, metavar: Some("N"), help: "extra nodes during upgrades (default 1)" },
            FlagSpec { long: "model", short: None, metavar: Some("MODEL"), help: "flat, flat-pool (flat with cluster-ipam), kubenet or overlay (default: all)" },
            FlagSpec { long: "pods", short: None, metavar: Some("N"), help: "pods the cluster runs (flat-pool; default: every node at maxPods)" },
            FlagSpec { long: "block-prefix", short: None, metavar: Some("LEN"), help: "prefix length of the shared pool's blocks (flat-pool; default 28)" },
            FlagSpec { long: "json", short: None, metavar: None, help: "JSON for scripts" },
        ],
        run: cmd_plan,
    },
    Subcommand {
        name: "overlay",
        args: "sync <network>",
        summary: "reconcile the VXLAN peers of the overlay plugins of <network> with their node list",
        details: "Diffs the node's VXLAN neighbour, FDB and route entries against the node list and \
changes only what differs (nodes that joined, left, or changed address or MAC). Run it inside \
the node's network namespace; --dry-run reports without changing anything.",
        min_args: 2,
        max_args: 2,
        flags: &[FlagSpec { long: "dry-run", short: None, metavar: None, help: "report, change nothing" }],
        run: cmd_overlay,
    },
    Subcommand {
        name: "firewall",
        args: "show|remove",
        summary: "what the node's firewall holds of ferro-cni and of the reference plugins; remove ferro-cni's",
        details: "show: the pod addresses and host ports in ferro-cni's table (inet ferro_cni), and \
the reference plugins' per-pod iptables-nft state (ip nat, ip6 nat: network, container id, \
address, host ports, chains) that ferro-cni's DEL and GC remove on a node taken over from them, \
plus their shared chains; --json for scripts. remove: deletes inet ferro_cni, every chain, rule, \
set and map of ferro-cni (going back to the reference plugins); refused while pods still have \
state in it, unless --force. Run it on the node (inside the node's network namespace).",
        min_args: 1,
        max_args: 1,
        flags: &[
            FlagSpec { long: "json", short: None, metavar: None, help: "show: JSON for scripts" },
            FlagSpec { long: "force", short: None, metavar: None, help: "remove: even while pods still have state (they lose masquerade and host ports)" },
        ],
        run: cmd_firewall,
    },
    Subcommand {
        name: "status",
        args: "<network> [netns, ignored]",
        summary: "STATUS every plugin in order, stop at the first error (cniVersion >= 1.1.0)",
        details: "",
        min_args: 1,
        max_args: 2,
        flags: &[],
        run: cmd_status,
    },
    Subcommand {
        name: "validate",
        args: "<network|file>",
        summary: "find every plugin and IPAM plugin and check it supports the list's version",
        details: "Each plugin is asked VERSION as libcni asks; one line per plugin, then a \
verdict. Exit status 1 when anything is missing or unsupported.",
        min_args: 1,
        max_args: 1,
        flags: &[],
        run: cmd_validate,
    },
    Subcommand {
        name: "apply",
        args: "-f FILE|DIR|-",
        summary: "create or update the cluster resources of manifests (YAML or JSON) through ferro-agent",
        details: "Every document of every file is checked first (kind, fields, names, ports, \
selectors): one bad document refuses the whole apply, naming file, document and field. The \
agent writes everything in one store transaction: all or nothing. Kinds: Namespace, Pod, \
Service (v1), NetworkPolicy (networking.k8s.io/v1), ClusterNetwork (ferro-cni.io/v1).",
        min_args: 0,
        max_args: 0,
        flags: &[FILENAME_FLAG],
        run: cluster::cmd_apply,
    },
    Subcommand {
        name: "get",
        args: "KIND [NAME]",
        summary: "list or show cluster resources (pods, svc, netpol, ns, nodes, clusternetworks, ipamblocks, attachments, policystats)",
        details: "KIND is a kind's name, plural or short name, as kubectl's (pods, po, services, \
svc, networkpolicies, netpol, namespaces, ns, nodes, clusternetworks, ipamblocks, attachments). \
Namespaced kinds are read from the default namespace unless -n or -A is given. policystats: \
what this node's NetworkPolicy tables dropped, per pod and direction and per policy (the \
counters of the node whose agent answers).",
        min_args: 1,
        max_args: 2,
        flags: &[
            NAMESPACE_FLAG,
            FlagSpec { long: "all-namespaces", short: Some('A'), metavar: None, help: "every namespace" },
            FlagSpec { long: "output", short: Some('o'), metavar: Some("FORMAT"), help: "yaml, json or wide (default: a table)" },
        ],
        run: cluster::cmd_get,
    },
    Subcommand {
        name: "delete",
        args: "-f FILE|DIR|- | KIND NAME",
        summary: "delete the cluster resources of manifests, or one by kind and name",
        details: "Everything named is deleted in one store transaction. Deleting a namespace \
deletes its pods, services and network policies. Objects that do not exist are reported \
(exit status 1) without stopping the others.",
        min_args: 0,
        max_args: 2,
        flags: &[FILENAME_FLAG, NAMESPACE_FLAG],
        run: cluster::cmd_delete,
    },
    Subcommand {
        name: "describe",
        args: "KIND NAME",
        summary: "show one cluster resource and what relates to it (selected pods, lease...)",
        details: "",
        min_args: 2,
        max_args: 2,
        flags: &[NAMESPACE_FLAG],
        run: cluster::cmd_describe,
    },
    Subcommand {
        name: "policy",
        args: "explain FROM TO PORT/PROTO | stats",
        summary: "why a connection is allowed or denied by NetworkPolicy; what this node dropped",
        details: "explain: FROM and TO are pods (namespace/name, or a name in default) or \
addresses; PORT/PROTO is 80/TCP, 53/UDP, 8080 (TCP), ICMP... The agent answers from the same \
model it programs: allowed or denied, and for each side (the source's egress, the \
destination's ingress) the policy, rule, peer and port that decided, or the policies \
isolating it. --family 6 uses the pods' IPv6 addresses. stats: the drop counters of the \
node's pods and policies (as cnictl get policystats -A).",
        min_args: 1,
        max_args: 4,
        flags: &[
            NAMESPACE_FLAG,
            FlagSpec { long: "family", short: None, metavar: Some("4|6"), help: "address family for pods with both (default 4)" },
            FlagSpec { long: "output", short: Some('o'), metavar: Some("FORMAT"), help: "json (default: text)" },
        ],
        run: crate::policy::cmd_policy,
    },
    Subcommand {
        name: "ipam",
        args: "show|check|release [ADDRESS...]",
        summary: "the cluster's address pool through ferro-agent: use per pool, node and block; leaks; releases",
        details: "show: each pool's claimed and used addresses, each node's blocks (-o wide: every \
block). check: what the answering node finds wrong (leaked addresses, attachments missing their \
address, conflicts, blocks of nodes whose lease is gone); exit status 1 when something is leaked, \
missing or in conflict. A leak is released by the agent after its grace period, never while the \
pod's network namespace exists. release ADDRESS... or --attachment ID[/IFNAME]: give addresses \
back now (refused for a live pod unless --force); release --node NODE: every block of a node \
whose lease is gone back to the pool now.",
        min_args: 1,
        max_args: 64,
        flags: &[
            FlagSpec { long: "node", short: None, metavar: Some("NODE"), help: "show: only this node's blocks; release: every block of this gone node" },
            FlagSpec { long: "attachment", short: None, metavar: Some("ID[/IFNAME]"), help: "release: an attachment's addresses (repeatable; IFNAME defaults to --ifname)" },
            FlagSpec { long: "force", short: None, metavar: None, help: "release: even when the pod looks alive" },
            FlagSpec { long: "output", short: Some('o'), metavar: Some("FORMAT"), help: "show: wide or json; check: json" },
        ],
        run: crate::ipam::cmd_ipam,
    },
    Subcommand {
        name: "help",
        args: "[command]",
        summary: "show help",
        details: "",
        min_args: 0,
        max_args: 1,
        flags: &[],
        run: cmd_help,
    },
];

impl Ctx<'_> {
    /// `NETCONFPATH`, or its default.
    pub fn netconfpath(&self) -> PathBuf {
        PathBuf::from(
            self.env
                .get_nonempty("NETCONFPATH")
                .unwrap_or(DEFAULT_NETCONFPATH),
        )
    }

    /// The cache directory: `--cache-dir`, `CNI_CACHE_DIR`, `/var/lib/cni`.
    pub fn cache_dir(&self) -> PathBuf {
        self.global.cache_dir.clone().unwrap_or_else(|| {
            PathBuf::from(
                self.env
                    .get_nonempty("CNI_CACHE_DIR")
                    .unwrap_or(DEFAULT_CACHE_DIR),
            )
        })
    }

    /// `CNI_PATH`, required to run plugins (code 4 when unset).
    pub fn cni_path(&self) -> Result<String, Error> {
        self.env
            .get_nonempty("CNI_PATH")
            .map(str::to_string)
            .ok_or_else(|| {
                Error::cni(CniError::invalid_env(
                    "CNI_PATH is not set: it must list the directories holding the plugins",
                ))
            })
    }

    /// The interface name: `--ifname`, `CNI_IFNAME` (when set, even empty, as cnitool), `eth0`.
    pub fn ifname(&self) -> String {
        self.global
            .ifname
            .clone()
            .or_else(|| self.env.get("CNI_IFNAME").map(str::to_string))
            .unwrap_or_else(|| "eth0".to_string())
    }

    /// The list called `network`: from `--conf-file` (whose name must match), or searched in
    /// `NETCONFPATH` as libcni does.
    pub fn load_list(&self, network: &str) -> Result<NetworkList, Error> {
        match &self.global.conf_file {
            Some(file) => {
                let list = conflist::load_any_file(file)?;
                if list.name != network {
                    return Err(Error::cni(CniError::invalid_config(format!(
                        "{} defines network {:?}, not {network:?}",
                        file.display(),
                        list.name
                    ))));
                }
                Ok(list)
            }
            None => Ok(conflist::load_network(&self.netconfpath(), network)?),
        }
    }

    /// The runtime side of an attachment to `netns` (cnitool's derivation).
    pub fn runtime_conf(&self, netns: &str) -> Result<RuntimeConf, Error> {
        let cap_args = match self.env.get_nonempty("CAP_ARGS") {
            None => Map::new(),
            Some(s) => match serde_json::from_str::<Value>(s) {
                Ok(Value::Object(m)) => m,
                Ok(_) => {
                    return Err(Error::cni(CniError::decode(
                        "CAP_ARGS must be a JSON object",
                    )))
                }
                Err(e) => {
                    return Err(Error::cni(CniError::decode(format!(
                        "CAP_ARGS is not valid JSON: {e}"
                    ))))
                }
            },
        };
        let args = match self.env.get_nonempty("CNI_ARGS") {
            None => Vec::new(),
            Some(s) => CniArgs::parse(s)?.pairs().to_vec(),
        };
        let netns = if netns.starts_with('/') {
            go_abs(netns, Path::new("/"))
        } else {
            let cwd = self.cwd.as_deref().ok_or_else(|| {
                Error::cni(CniError::invalid_env(format!(
                    "cannot make netns path {netns:?} absolute: no working directory"
                )))
            })?;
            go_abs(netns, cwd)
        };
        let container_id = self
            .global
            .container_id
            .clone()
            .unwrap_or_else(|| cnitool_container_id(&netns));
        Ok(RuntimeConf {
            container_id,
            netns,
            ifname: self.ifname(),
            args,
            cap_args,
        })
    }
}

fn write_out(out: &mut dyn Write, text: &str) -> Result<(), Error> {
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| Error::cni(io_error("writing stdout", &e)))
}

fn cmd_add(ctx: &mut Ctx<'_>, inv: &Invocation) -> Result<(), Error> {
    let list = ctx.load_list(&inv.positionals[0])?;
    let rt = ctx.runtime_conf(&inv.positionals[1])?;
    let cni_path = ctx.cni_path()?;
    let exec = ProcessExec::new(ctx.env.clone(), &cni_path);
    let cache_dir = ctx.cache_dir();
    let result = Runtime::new(&exec, &cache_dir, &cni_path, &mut *ctx.err).add(
        &list,
        &rt,
        !inv.has("no-cleanup"),
    )?;
    write_out(
        ctx.out,
        &format!("{}\n", gojson::to_string_indent(&result, "    ")),
    )
}

fn cmd_check(ctx: &mut Ctx<'_>, inv: &Invocation) -> Result<(), Error> {
    let list = ctx.load_list(&inv.positionals[0])?;
    let rt = ctx.runtime_conf(&inv.positionals[1])?;
    let cni_path = ctx.cni_path()?;
    let exec = ProcessExec::new(ctx.env.clone(), &cni_path);
    let cache_dir = ctx.cache_dir();
    Runtime::new(&exec, &cache_dir, &cni_path, &mut *ctx.err).check(&list, &rt)
}

fn cmd_del(ctx: &mut Ctx<'_>, inv: &Invocation) -> Result<(), Error> {
    let list = ctx.load_list(&inv.positionals[0])?;
    let rt = ctx.runtime_conf(&inv.positionals[1])?;
    let cni_path = ctx.cni_path()?;
    let exec = ProcessExec::new(ctx.env.clone(), &cni_path);
    let cache_dir = ctx.cache_dir();
    Runtime::new(&exec, &cache_dir, &cni_path, &mut *ctx.err).del(&list, &rt)
}

/// `--valid ID[/IFNAME]` values as attachments (`default_ifname` when IFNAME is omitted).
pub fn parse_valid(values: &[&str], default_ifname: &str) -> Result<Vec<Attachment>, Error> {
    values
        .iter()
        .map(|v| {
            let (id, ifname) = v.split_once('/').unwrap_or((v, default_ifname));
            if !is_valid_identifier(id) {
                return Err(Error::usage(format!(
                    "--valid {v}: invalid container id {id:?}"
                )));
            }
            validate_ifname(ifname).map_err(|e| Error::usage(format!("--valid {v}: {e}")))?;
            Ok(Attachment {
                container_id: id.to_string(),
                ifname: ifname.to_string(),
            })
        })
        .collect()
}

fn cmd_gc(ctx: &mut Ctx<'_>, inv: &Invocation) -> Result<(), Error> {
    let list = ctx.load_list(&inv.positionals[0])?;
    let validity = if inv.has("valid") {
        Validity::Explicit(parse_valid(&inv.values("valid"), &ctx.ifname())?)
    } else {
        Validity::NetnsAlive
    };
    let cni_path = ctx.cni_path()?;
    let exec = ProcessExec::new(ctx.env.clone(), &cni_path);
    let cache_dir = ctx.cache_dir();
    let report = Runtime::new(&exec, &cache_dir, &cni_path, &mut *ctx.err).gc(&list, &validity)?;
    if !list.disable_gc {
        let _ = writeln!(
            ctx.err,
            "cnictl: gc: network {:?}: {} stale attachment(s) deleted, {} valid{}",
            list.name,
            report.deleted.len(),
            report.valid.len(),
            if report.gc_sent {
                format!(", GC sent to {} plugin(s)", list.plugins.len())
            } else {
                String::new()
            }
        );
    }
    Ok(())
}

fn cmd_status(ctx: &mut Ctx<'_>, inv: &Invocation) -> Result<(), Error> {
    let list = ctx.load_list(&inv.positionals[0])?;
    let cni_path = ctx.cni_path()?;
    let exec = ProcessExec::new(ctx.env.clone(), &cni_path);
    let cache_dir = ctx.cache_dir();
    Runtime::new(&exec, &cache_dir, &cni_path, &mut *ctx.err).status(&list)?;
    Ok(())
}

fn cmd_validate(ctx: &mut Ctx<'_>, inv: &Invocation) -> Result<(), Error> {
    let target = &inv.positionals[0];
    let list = if Path::new(target).is_file() {
        conflist::load_any_file(Path::new(target))?
    } else {
        ctx.load_list(target)?
    };
    let cni_path = ctx.cni_path()?;
    let exec = ProcessExec::new(ctx.env.clone(), &cni_path);
    let report = validate::validate(&list, &exec);
    write_out(ctx.out, &report.render())?;
    let problems = report.problems();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::cni(CniError::invalid_config(format!(
            "network {:?} is not valid: {}",
            list.name,
            problems.join("; ")
        ))))
    }
}

fn cmd_help(ctx: &mut Ctx<'_>, inv: &Invocation) -> Result<(), Error> {
    let text = match inv.positionals.first() {
        None => cli::usage(SUBCOMMANDS),
        Some(name) => match SUBCOMMANDS.iter().find(|c| c.name == name) {
            Some(c) => cli::command_usage(c),
            None => return Err(Error::usage(format!("unknown command {name:?}"))),
        },
    };
    write_out(ctx.out, &text)
}

fn one_value<T: std::str::FromStr>(
    inv: &Invocation,
    flag: &str,
    default: Option<T>,
) -> Result<T, Error> {
    match inv.values(flag).last() {
        Some(v) => v
            .parse()
            .map_err(|_| Error::usage(format!("--{flag}: invalid value {v:?}"))),
        None => default.ok_or_else(|| Error::usage(format!("--{flag} is required"))),
    }
}

/// The networks given to `--flag` (repeatable, each value a comma-separated list), host bits
/// dropped, at most one per family.
fn family_nets(inv: &Invocation, flag: &str) -> Result<ferro_net::overlay::FamilyNets, Error> {
    let mut nets = Vec::new();
    for v in inv.values(flag).iter().flat_map(|v| v.split(',')) {
        let n: ipnet::IpNet = v
            .trim()
            .parse()
            .map_err(|_| Error::usage(format!("--{flag}: invalid value {v:?}")))?;
        nets.push(n.trunc());
    }
    ferro_net::overlay::FamilyNets::new(&nets).map_err(|e| Error::usage(format!("--{flag}: {e}")))
}

fn cmd_plan(ctx: &mut Ctx<'_>, inv: &Invocation) -> Result<(), Error> {
    use crate::plan;
    let input = plan::Input {
        nodes: one_value(inv, "nodes", None)?,
        max_pods: one_value(inv, "max-pods", None)?,
        vnet: family_nets(inv, "vnet")?,
        pod_cidrs: family_nets(inv, "pod-cidr")?,
        slice_prefix: one_value(inv, "slice-prefix", Some(24))?,
        slice_prefix_v6: one_value(inv, "slice-prefix-v6", Some(plan::SLICE_PREFIX_V6))?,
        surge: one_value(inv, "surge", Some(1))?,
        pods: match inv.values("pods").last() {
            None => None,
            Some(v) => Some(
                v.parse()
                    .map_err(|_| Error::usage(format!("--pods: invalid value {v:?}")))?,
            ),
        },
        block_prefix: one_value(inv, "block-prefix", Some(28))?,
    };
    plan::validate(&input).map_err(Error::usage)?;
    let model: String = one_value(inv, "model", Some("all".to_string()))?;
    let plans: Vec<plan::ModelPlan> = match model.as_str() {
        "all" if !input.pod_cidrs.is_empty() => vec![
            plan::flat(&input),
            plan::flat_pool(&input),
            plan::kubenet(&input),
            plan::overlay(&input),
        ],
        "all" => vec![plan::flat(&input), plan::flat_pool(&input)],
        "flat" => vec![plan::flat(&input)],
        "flat-pool" => vec![plan::flat_pool(&input)],
        "kubenet" => vec![plan::kubenet(&input)],
        "overlay" => vec![plan::overlay(&input)],
        other => {
            return Err(Error::usage(format!(
                "--model: unknown model {other:?} (flat, flat-pool, kubenet, overlay)"
            )))
        }
    };
    let text = if inv.has("json") {
        let mut t = serde_json::to_string_pretty(&plans)
            .map_err(|e| Error::cni(CniError::internal(e.to_string())))?;
        t.push('\n');
        t
    } else {
        plan::render(&input, &plans)
    };
    write_out(ctx.out, &text)?;
    if plans.iter().all(|p| p.fits) {
        Ok(())
    } else {
        Err(Error::cni(CniError::invalid_config(format!(
            "the cluster does not fit under: {}",
            plans
                .iter()
                .filter(|p| !p.fits)
                .map(|p| p.model)
                .collect::<Vec<_>>()
                .join(", ")
        ))))
    }
}

fn cmd_firewall(ctx: &mut Ctx<'_>, inv: &Invocation) -> Result<(), Error> {
    match inv.positionals[0].as_str() {
        "show" => {
            let f = firewall::read()?;
            let text = if inv.has("json") {
                format!("{}\n", firewall::render_json(&f))
            } else {
                firewall::render_text(&f)
            };
            write_out(ctx.out, &text)
        }
        "remove" => {
            let text = firewall::remove(inv.has("force"))?;
            write_out(ctx.out, &text)
        }
        other => Err(Error::usage(format!(
            "firewall: unknown verb {other:?} (show, remove)"
        ))),
    }
}

fn cmd_overlay(ctx: &mut Ctx<'_>, inv: &Invocation) -> Result<(), Error> {
    use ferro_net::overlay::{self, FileSource, NodeConfig};
    if inv.positionals[0] != "sync" {
        return Err(Error::usage(format!(
            "overlay: unknown verb {:?} (sync)",
            inv.positionals[0]
        )));
    }
    let list = ctx.load_list(&inv.positionals[1])?;
    let objects: Vec<&Map<String, Value>> = list
        .plugins
        .iter()
        .filter(|p| p.plugin_type == "overlay")
        .map(|p| &p.conf)
        .collect();
    if objects.is_empty() {
        return Err(Error::cni(CniError::invalid_config(format!(
            "network {:?} has no overlay plugin",
            list.name
        ))));
    }
    let dry = inv.has("dry-run");
    let kernel = ferro_net::Kernel::new().map_err(|e| Error::cni(e.into()))?;
    let host = kernel
        .connect(None)
        .map_err(|e| Error::plugin("overlay", e.into()))?;
    for obj in objects {
        // a list whose peers are the agent's may have no slice (a shared pool)
        let agent =
            obj.get("nodeList").and_then(Value::as_str) == Some(ferro_agent_api::AGENT_NODE_LIST);
        let cfg = NodeConfig::parse(&Value::Object(obj.clone()), agent)
            .map_err(|e| Error::plugin("overlay", e))?;
        if cfg.node_list.as_os_str() == ferro_agent_api::AGENT_NODE_LIST {
            write_out(
                ctx.out,
                &format!(
                    "{}: peers kept by ferro-agent (nodeList \"agent\"): nothing to sync (cnictl get nodes lists them)\n",
                    overlay::device_name(cfg.vni)
                ),
            )?;
            continue;
        }
        let view = overlay::view(&cfg, &host, &FileSource::new(&cfg.node_list))
            .map_err(|e| Error::plugin("overlay", e))?;
        let dev = if dry {
            host.link(&view.device.name)
                .map_err(|e| Error::plugin("overlay", e.into()))?
        } else {
            Some(
                overlay::ensure_device(&host, &view.device)
                    .map_err(|e| Error::plugin("overlay", e.into()))?,
            )
        };
        let Some(dev) = dev else {
            write_out(
                ctx.out,
                &format!(
                    "{}: missing (would be created with {} peers)\n",
                    view.device.name,
                    view.peers.len()
                ),
            )?;
            continue;
        };
        let r = overlay::reconcile(&host, &dev, &view.peers, true, dry)
            .map_err(|e| Error::plugin("overlay", e.into()))?;
        let list_of = |v: &[ipnet::IpNet]| {
            if v.is_empty() {
                String::new()
            } else {
                format!(
                    " ({})",
                    v.iter()
                        .map(|n| n.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        };
        write_out(
            ctx.out,
            &format!(
                "{}{}: {} added{}, {} updated{}, {} removed{}, {} unchanged\n",
                view.device.name,
                if dry { " (dry run)" } else { "" },
                r.added.len(),
                list_of(&r.added),
                r.updated.len(),
                list_of(&r.updated),
                r.removed.len(),
                list_of(&r.removed),
                r.unchanged
            ),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx<'a>(env: &'a Env, out: &'a mut Vec<u8>, err: &'a mut Vec<u8>) -> Ctx<'a> {
        Ctx {
            env,
            cwd: Some(PathBuf::from("/run/netns")),
            global: GlobalOpts::default(),
            out,
            err,
        }
    }

    #[test]
    fn firewall_knows_two_verbs() {
        let env = Env::from_pairs(Vec::<(&str, &str)>::new());
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let inv = Invocation {
            positionals: vec!["frobnicate".into()],
            flags: Vec::new(),
        };
        let e = cmd_firewall(&mut ctx(&env, &mut out, &mut err), &inv).unwrap_err();
        assert_eq!(e.exit_status(), 2);
        assert!(e.to_string().contains("show, remove"), "{e}");
    }

    #[test]
    fn runtime_conf_follows_cnitool() {
        let env = Env::from_pairs([
            ("CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAME=web"),
            ("CAP_ARGS", r#"{"portMappings":[{"hostPort":8080}]}"#),
        ]);
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let c = ctx(&env, &mut out, &mut err);
        let rt = c.runtime_conf("ctr1/../ctr2").unwrap();
        assert_eq!(rt.netns, "/run/netns/ctr2");
        assert_eq!(rt.container_id, cnitool_container_id("/run/netns/ctr2"));
        assert_eq!(rt.ifname, "eth0");
        assert_eq!(rt.args[1], ("K8S_POD_NAME".to_string(), "web".to_string()));
        assert!(rt.cap_args.contains_key("portMappings"));
        assert!(matches!(c.cni_path(), Err(e) if e.code() == Some(4)));
        assert_eq!(c.cache_dir(), PathBuf::from("/var/lib/cni"));
        assert_eq!(c.netconfpath(), PathBuf::from("/etc/cni/net.d"));
    }

    #[test]
    fn flags_override_environment() {
        let env = Env::from_pairs([
            ("CNI_IFNAME", "net9"),
            ("CNI_CACHE_DIR", "/env/cache"),
            ("CAP_ARGS", "[1]"),
        ]);
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut c = ctx(&env, &mut out, &mut err);
        assert_eq!(c.ifname(), "net9");
        assert_eq!(c.cache_dir(), PathBuf::from("/env/cache"));
        assert_eq!(c.runtime_conf("/x").unwrap_err().code(), Some(6));
        c.global.ifname = Some("net1".into());
        c.global.cache_dir = Some("/flag".into());
        c.global.container_id = Some("mine".into());
        assert_eq!(c.ifname(), "net1");
        assert_eq!(c.cache_dir(), PathBuf::from("/flag"));
    }

    #[test]
    fn valid_flags_parse_ids_and_ifnames() {
        let v = parse_valid(&["c1/net1", "c2"], "eth0").unwrap();
        assert_eq!(
            v,
            [
                Attachment {
                    container_id: "c1".into(),
                    ifname: "net1".into()
                },
                Attachment {
                    container_id: "c2".into(),
                    ifname: "eth0".into()
                },
            ]
        );
        assert!(parse_valid(&["bad id"], "eth0").is_err());
        assert!(parse_valid(&["c1/"], "eth0").is_err());
    }
}
