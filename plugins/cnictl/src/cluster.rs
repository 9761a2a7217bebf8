//! The cluster commands, kubectl-like, through ferro-agent's socket: `apply`, `get`,
//! `delete`, `describe`.
//!
//! Manifests are checked here in full before anything is sent (a file with one bad
//! document is refused whole, naming file, document and field), and again by the agent.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ferro_agent_api::{
    Action, ApplyDocument, Client, ClientError, Request, Response, Target, DEFAULT_SOCKET,
    SOCKET_ENV,
};
use ferro_cluster::manifest::{self, Applicable};
use ferro_cluster::table::{self, TableOptions};
use ferro_cluster::{Kind, Object};
use serde_json::Value;

use crate::cli::Invocation;
use crate::commands::Ctx;
use crate::error::Error;

/// How long an answer from the agent may take.
const TIMEOUT: Duration = Duration::from_secs(60);

impl Ctx<'_> {
    /// The agent's socket: `--socket`, `FERRO_AGENT_SOCKET`, the default.
    pub fn socket(&self) -> PathBuf {
        self.global.socket.clone().unwrap_or_else(|| {
            PathBuf::from(self.env.get_nonempty(SOCKET_ENV).unwrap_or(DEFAULT_SOCKET))
        })
    }

    /// One request to the agent; its error answers become [`Error::Cluster`].
    pub(crate) fn call(&self, req: &Request) -> Result<Response, Error> {
        let path = self.socket();
        Client::connect(&path, TIMEOUT)
            .and_then(|mut c| c.call(req))
            .map_err(|e| Error::Cluster(client_error(&e)))
    }
}

impl Ctx<'_> {
    /// Writes `text` to stdout.
    pub(crate) fn write_out(&mut self, text: &str) -> Result<(), Error> {
        write(self.out, text)
    }
}

fn client_error(e: &ClientError) -> String {
    match e {
        ClientError::Api(a) => a.message.clone(),
        e => e.to_string(),
    }
}

fn write(out: &mut dyn std::io::Write, text: &str) -> Result<(), Error> {
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| Error::Cluster(format!("writing stdout: {e}")))
}

/// The manifest files `-f` names: a file, every `.yaml`/`.yml`/`.json` of a directory (sorted),
/// or `-` (standard input). Returns (name, text) pairs.
fn read_manifests(ctx: &Ctx<'_>, inv: &Invocation) -> Result<Vec<(String, String)>, Error> {
    let names = inv.values("filename");
    if names.is_empty() {
        return Err(Error::usage("-f FILE|DIR|- is required"));
    }
    let mut out = Vec::new();
    for name in names {
        if name == "-" {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(|e| Error::Cluster(format!("reading standard input: {e}")))?;
            out.push(("-".to_string(), s));
            continue;
        }
        let p = match &ctx.cwd {
            Some(cwd) if Path::new(name).is_relative() => cwd.join(name),
            _ => PathBuf::from(name),
        };
        let read = |p: &Path, shown: String| {
            std::fs::read_to_string(p)
                .map(|t| (shown, t))
                .map_err(|e| Error::Cluster(format!("{}: {e}", p.display())))
        };
        if p.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(&p)
                .map_err(|e| Error::Cluster(format!("{}: {e}", p.display())))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| {
                    f.is_file()
                        && matches!(
                            f.extension().and_then(|x| x.to_str()),
                            Some("yaml" | "yml" | "json")
                        )
                })
                .collect();
            files.sort();
            if files.is_empty() {
                return Err(Error::Cluster(format!(
                    "{name}: no .yaml, .yml or .json file in this directory"
                )));
            }
            for f in files {
                let shown = Path::new(name)
                    .join(f.file_name().unwrap_or_default())
                    .display()
                    .to_string();
                out.push(read(&f, shown)?);
            }
        } else {
            out.push(read(&p, name.to_string())?);
        }
    }
    Ok(out)
}

/// Reads and checks every manifest of `-f`: all documents, or every problem of every file.
fn admitted(ctx: &Ctx<'_>, inv: &Invocation) -> Result<Vec<(Applicable, Value)>, Error> {
    let mut ok = Vec::new();
    let mut problems = Vec::new();
    for (name, text) in read_manifests(ctx, inv)? {
        let docs = match manifest::parse_documents(&name, &text) {
            Ok(d) => d,
            Err(e) => {
                problems.push(e.to_string());
                continue;
            }
        };
        for d in docs {
            match manifest::admit(&d) {
                Ok(a) => ok.push((a, d.value)),
                Err(e) => problems.push(e.to_string()),
            }
        }
    }
    if !problems.is_empty() {
        problems.push("nothing was applied".to_string());
        return Err(Error::Cluster(problems.join("\n")));
    }
    if ok.is_empty() {
        return Err(Error::Cluster("no documents to apply".into()));
    }
    Ok(ok)
}

/// `cnictl apply -f FILE|DIR|-`.
pub fn cmd_apply(ctx: &mut Ctx<'_>, inv: &Invocation) -> Result<(), Error> {
    let docs = admitted(ctx, inv)?;
    let documents = docs
        .into_iter()
        .map(|(a, value)| ApplyDocument {
            source: a.origin.source,
            document: a.origin.document,
            item: a.origin.item,
            object: value,
        })
        .collect();
    match ctx.call(&Request::Apply { documents })? {
        Response::Applied { results, .. } => {
            let text: String = results.iter().map(|o| format!("{o}\n")).collect();
            write(ctx.out, &text)
        }
        other => Err(unexpected(&other)),
    }
}

/// An answer the command did not expect.
pub fn unexpected(r: &Response) -> Error {
    Error::Cluster(format!("unexpected answer from the agent: {r:?}"))
}

fn kind_arg(word: &str) -> Result<Kind, Error> {
    Kind::from_cli(word).map_err(Error::usage)
}

fn namespace(inv: &Invocation) -> Option<String> {
    inv.values("namespace").last().map(|s| s.to_string())
}

fn decode(kind: Kind, v: Value) -> Result<Object, Error> {
    Object::from_value(kind, v).map_err(|e| {
        Error::Cluster(format!(
            "the agent sent a {kind} this cnictl cannot read: {e}"
        ))
    })
}

/// `cnictl get nodefirewall [-o json]`: the node firewall's rules on the agent's node, and
/// why each exists.
fn get_node_firewall(ctx: &mut Ctx<'_>, inv: &Invocation) -> Result<(), Error> {
    let (node, rules) = match ctx.call(&Request::NodeFirewall)? {
        Response::NodeFirewall { node, rules } => (node, rules),
        other => return Err(unexpected(&other)),
    };
    if inv.values("output").last().is_some_and(|o| *o == "json") {
        let v = serde_json::json!({"node": node, "rules": rules});
        return write(
            ctx.out,
            &format!("{}\n", serde_json::to_string_pretty(&v).unwrap_or_default()),
        );
    }
    let width = rules.iter().map(|r| r.rule.len()).max().unwrap_or(4).max(4);
    let mut text = format!("NODE {node}\n{:<width$}  WHY\n", "RULE");
    for r in &rules {
        text.push_str(&format!("{:<width$}  {}\n", r.rule, r.why));
    }
    write(ctx.out, &text)
}

/// `cnictl get KIND [NAME] [-n NS | -A] [-o yaml|json|wide]`.
pub fn cmd_get(ctx: &mut Ctx<'_>, inv: &Invocation) -> Result<(), Error> {
    if ["nodefirewall", "nodefw"].contains(&inv.positionals[0].to_ascii_lowercase().as_str()) {
        return get_node_firewall(ctx, inv);
    }
    if crate::policy::STATS_KINDS.contains(&inv.positionals[0].to_ascii_lowercase().as_str()) {
        return crate::policy::cmd_get_stats(ctx, inv);
    }
    let kind = kind_arg(&inv.positionals[0])?;
    let output = inv.values("output").last().map(|s| s.to_string());
    if let Some(o) = &output {
        if !["yaml", "json", "wide"].contains(&o.as_str()) {
            return Err(Error::usage(format!(
                "-o {o}: unknown output format (yaml, json, wide)"
            )));
        }
    }
    let all = inv.has("all-namespaces");
    let ns = namespace(inv);
    if all && ns.is_some() {
        return Err(Error::usage("-n and -A exclude each other"));
    }
    let name = inv.positionals.get(1).cloned();
    if all && name.is_some() {
        return Err(Error::usage("-A lists every namespace: give no NAME"));
    }
    let (values, single) = match &name {
        Some(n) => match ctx.call(&Request::Get {
            kind: kind.plural().into(),
            namespace: ns.clone(),
            name: n.clone(),
        })? {
            Response::Object { object } => (vec![object], true),
            other => return Err(unexpected(&other)),
        },
        None => {
            let namespace = if all || !kind.namespaced() {
                None
            } else {
                Some(ns.clone().unwrap_or_else(|| "default".into()))
            };
            match ctx.call(&Request::List {
                kind: kind.plural().into(),
                namespace,
            })? {
                Response::List { items, .. } => (items, false),
                other => return Err(unexpected(&other)),
            }
        }
    };
    match output.as_deref() {
        Some(fmt @ ("json" | "yaml")) => {
            let v = if single {
                values.into_iter().next().unwrap_or(Value::Null)
            } else {
                serde_json::json!({"apiVersion": "v1", "kind": "List", "items": values})
            };
            let text = if fmt == "json" {
                format!("{}\n", serde_json::to_string_pretty(&v).unwrap_or_default())
            } else {
                manifest::to_yaml(&v)
            };
            write(ctx.out, &text)
        }
        _ => {
            if values.is_empty() {
                let _ = match (kind.namespaced(), all) {
                    (true, false) => writeln!(
                        ctx.err,
                        "No resources found in {} namespace.",
                        ns.as_deref().unwrap_or("default")
                    ),
                    _ => writeln!(ctx.err, "No resources found."),
                };
                return Ok(());
            }
            let objects = values
                .into_iter()
                .map(|v| decode(kind, v))
                .collect::<Result<Vec<_>, _>>()?;
            let text = table::render(
                kind,
                &objects,
                TableOptions {
                    wide: output.as_deref() == Some("wide"),
                    all_namespaces: all,
                    now: ferro_cluster::now(),
                },
            );
            write(ctx.out, &text)
        }
    }
}

/// `cnictl describe KIND NAME [-n NS]`.
pub fn cmd_describe(ctx: &mut Ctx<'_>, inv: &Invocation) -> Result<(), Error> {
    let kind = kind_arg(&inv.positionals[0])?;
    match ctx.call(&Request::Describe {
        kind: kind.plural().into(),
        namespace: namespace(inv),
        name: inv.positionals[1].clone(),
    })? {
        Response::Description { object, facts } => {
            let o = decode(kind, object)?;
            write(ctx.out, &table::describe(&o, &facts))
        }
        other => Err(unexpected(&other)),
    }
}

/// `cnictl delete -f FILE|DIR|-` or `cnictl delete KIND NAME [-n NS]`.
pub fn cmd_delete(ctx: &mut Ctx<'_>, inv: &Invocation) -> Result<(), Error> {
    let targets: Vec<Target> = match (inv.has("filename"), inv.positionals.len()) {
        (true, 0) => admitted(ctx, inv)?
            .into_iter()
            .map(|(a, _)| Target {
                kind: a.object.kind().plural().into(),
                namespace: a.object.namespace().map(str::to_string),
                name: a.object.name().to_string(),
            })
            .collect(),
        (false, 2) => {
            let kind = kind_arg(&inv.positionals[0])?;
            vec![Target {
                kind: kind.plural().into(),
                namespace: namespace(inv),
                name: inv.positionals[1].clone(),
            }]
        }
        _ => return Err(Error::usage("give either -f FILE|DIR|- or KIND NAME")),
    };
    match ctx.call(&Request::Delete { targets })? {
        Response::Deleted { results, .. } => {
            let text: String = results
                .iter()
                .filter(|o| o.action != Action::NotFound)
                .map(|o| format!("{o}\n"))
                .collect();
            write(ctx.out, &text)?;
            let missing: Vec<String> = results
                .iter()
                .filter(|o| o.action == Action::NotFound)
                .map(|o| match &o.namespace {
                    Some(ns) => format!(
                        "{} {:?} not found in namespace {ns:?}",
                        o.kind.to_ascii_lowercase(),
                        o.name
                    ),
                    None => format!("{} {:?} not found", o.kind.to_ascii_lowercase(), o.name),
                })
                .collect();
            if missing.is_empty() {
                Ok(())
            } else {
                Err(Error::Cluster(missing.join("\n")))
            }
        }
        other => Err(unexpected(&other)),
    }
}
