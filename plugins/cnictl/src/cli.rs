//! The command line: `cnictl [global flags] <command> [args and flags]`.
//!
//! Global flags may come before the command or anywhere after it; a command's own flags come
//! after it. `--flag value` and `--flag=value` are both accepted; `--` ends flag parsing.
//! Commands, their arguments and their flags are declared in [`crate::commands::SUBCOMMANDS`],
//! so the parser and the help text follow the table.

use std::fmt::Write as _;
use std::path::PathBuf;

use crate::commands::Subcommand;
use crate::error::Error;

/// A flag a command (or every command) accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlagSpec {
    /// Long name, without `--`.
    pub long: &'static str,
    /// Short letter, without `-`.
    pub short: Option<char>,
    /// Name of the value, for flags that take one.
    pub metavar: Option<&'static str>,
    /// One line of help.
    pub help: &'static str,
}

/// Flags every command accepts.
pub const GLOBAL_FLAGS: &[FlagSpec] = &[
    FlagSpec {
        long: "cache-dir",
        short: None,
        metavar: Some("DIR"),
        help: "result cache directory (env CNI_CACHE_DIR; default /var/lib/cni)",
    },
    FlagSpec {
        long: "ifname",
        short: None,
        metavar: Some("NAME"),
        help: "interface name in the container (env CNI_IFNAME; default eth0)",
    },
    FlagSpec {
        long: "container-id",
        short: None,
        metavar: Some("ID"),
        help: "container id (default: cnitool's, cnitool-<sha512 of the netns path>)",
    },
    FlagSpec {
        long: "conf-file",
        short: None,
        metavar: Some("FILE"),
        help: "use this network configuration file instead of searching NETCONFPATH",
    },
    FlagSpec {
        long: "socket",
        short: None,
        metavar: Some("PATH"),
        help: "ferro-agent's socket (env FERRO_AGENT_SOCKET; default /run/ferro-cni/agent.sock)",
    },
    FlagSpec {
        long: "help",
        short: Some('h'),
        metavar: None,
        help: "show help (for a command: cnictl <command> --help)",
    },
];

/// Values of the global flags.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GlobalOpts {
    /// `--cache-dir`.
    pub cache_dir: Option<PathBuf>,
    /// `--ifname`.
    pub ifname: Option<String>,
    /// `--container-id`.
    pub container_id: Option<String>,
    /// `--conf-file`.
    pub conf_file: Option<PathBuf>,
    /// `--socket`.
    pub socket: Option<PathBuf>,
    /// `-h`/`--help`.
    pub help: bool,
}

/// A command's positional arguments and own flags.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Invocation {
    /// Positional arguments after the command name.
    pub positionals: Vec<String>,
    /// The command's own flags, in order, with their values.
    pub flags: Vec<(&'static str, Option<String>)>,
}

impl Invocation {
    /// Whether `--long` was given.
    pub fn has(&self, long: &str) -> bool {
        self.flags.iter().any(|(f, _)| *f == long)
    }

    /// Every value given to `--long`, in order.
    pub fn values(&self, long: &str) -> Vec<&str> {
        self.flags
            .iter()
            .filter(|(f, _)| *f == long)
            .filter_map(|(_, v)| v.as_deref())
            .collect()
    }
}

/// A parsed command line.
#[derive(Debug, Clone)]
pub struct Parsed<'t> {
    /// Global flags.
    pub global: GlobalOpts,
    /// The command, when one was named.
    pub command: Option<&'t Subcommand>,
    /// Its arguments.
    pub invocation: Invocation,
}

fn set_global(g: &mut GlobalOpts, long: &str, value: Option<String>) {
    match long {
        "cache-dir" => g.cache_dir = value.map(PathBuf::from),
        "ifname" => g.ifname = value,
        "container-id" => g.container_id = value,
        "conf-file" => g.conf_file = value.map(PathBuf::from),
        "socket" => g.socket = value.map(PathBuf::from),
        "help" => g.help = true,
        _ => {}
    }
}

/// Parses `argv` (without the program name) against `table`.
pub fn parse<'t>(argv: &[String], table: &'t [Subcommand]) -> Result<Parsed<'t>, Error> {
    let mut global = GlobalOpts::default();
    let mut command: Option<&'t Subcommand> = None;
    let mut inv = Invocation::default();
    let mut flags_done = false;
    let mut it = argv.iter();
    while let Some(arg) = it.next() {
        let is_flag = !flags_done && arg.len() > 1 && arg.starts_with('-');
        if !is_flag {
            match command {
                None => {
                    command = Some(
                        table
                            .iter()
                            .find(|c| c.name == arg)
                            .ok_or_else(|| Error::usage(format!("unknown command {arg:?}")))?,
                    );
                }
                Some(_) => inv.positionals.push(arg.clone()),
            }
            continue;
        }
        if arg == "--" {
            flags_done = true;
            continue;
        }
        let (spec, inline, shown) = {
            let own: &[FlagSpec] = command.map_or(&[], |c| c.flags);
            let (found, inline) = if let Some(long) = arg.strip_prefix("--") {
                let (name, inline) = match long.split_once('=') {
                    Some((n, v)) => (n, Some(v.to_string())),
                    None => (long, None),
                };
                let f = GLOBAL_FLAGS.iter().chain(own).find(|f| f.long == name);
                (f, inline)
            } else {
                let mut chars = arg[1..].chars();
                let f = match (chars.next(), chars.next()) {
                    (Some(c), None) => GLOBAL_FLAGS.iter().chain(own).find(|f| f.short == Some(c)),
                    _ => None,
                };
                (f, None)
            };
            let spec = found.ok_or_else(|| match command {
                Some(c) => Error::usage(format!("{}: unknown flag {arg}", c.name)),
                None => Error::usage(format!("unknown flag {arg}")),
            })?;
            (
                spec,
                inline,
                arg.split('=').next().unwrap_or(arg).to_string(),
            )
        };
        let value = match (spec.metavar, inline) {
            (Some(_), Some(v)) => Some(v),
            (Some(m), None) => Some(
                it.next()
                    .cloned()
                    .ok_or_else(|| Error::usage(format!("flag {shown} needs a value ({m})")))?,
            ),
            (None, Some(_)) => return Err(Error::usage(format!("flag {shown} takes no value"))),
            (None, None) => None,
        };
        if GLOBAL_FLAGS.iter().any(|g| g.long == spec.long) {
            set_global(&mut global, spec.long, value);
        } else {
            inv.flags.push((spec.long, value));
        }
    }
    if let (Some(c), false) = (command, global.help) {
        let n = inv.positionals.len();
        if n < c.min_args || n > c.max_args {
            return Err(Error::usage(format!(
                "{}: expected {}, got {n} argument{}",
                c.name,
                if c.args.is_empty() {
                    "no arguments"
                } else {
                    c.args
                },
                if n == 1 { "" } else { "s" }
            )));
        }
    }
    Ok(Parsed {
        global,
        command,
        invocation: inv,
    })
}

fn flag_lines(out: &mut String, flags: &[FlagSpec]) {
    for f in flags {
        let mut name = String::new();
        if let Some(s) = f.short {
            let _ = write!(name, "-{s}, ");
        }
        let _ = write!(name, "--{}", f.long);
        if let Some(m) = f.metavar {
            let _ = write!(name, " {m}");
        }
        let _ = writeln!(out, "  {name:<22} {}", f.help);
    }
}

const ENVIRONMENT: &str = "\
Environment:
  NETCONFPATH            directory searched for network configurations (default /etc/cni/net.d)
  CNI_PATH               plugin directories, ':'-separated (required to run plugins)
  CNI_ARGS               K=V;K2=V2 passed to plugins as CNI_ARGS
  CAP_ARGS               JSON object of capability arguments, e.g. {\"portMappings\":[...]}
  CNI_IFNAME             interface name (default eth0)
  CNI_CACHE_DIR          result cache directory (default /var/lib/cni)
  FERRO_AGENT_SOCKET     ferro-agent's socket for apply/get/delete/describe (default /run/ferro-cni/agent.sock)
";

/// The general help text.
pub fn usage(table: &[Subcommand]) -> String {
    let mut s = String::from(
        "cnictl: run CNI network configurations against a network namespace (libcni-compatible),\n\
         and manage the cluster's resources through ferro-agent (kubectl-like)\n\n\
         Usage: cnictl [global flags] <command> [arguments]\n\nCommands:\n",
    );
    for c in table {
        let head = format!("{} {}", c.name, c.args);
        let _ = writeln!(s, "  {head:<38} {}", c.summary);
    }
    s.push_str("\nGlobal flags:\n");
    flag_lines(&mut s, GLOBAL_FLAGS);
    s.push('\n');
    s.push_str(ENVIRONMENT);
    s.push_str("\nExit status: 0 success, 1 failure (details on stderr), 2 bad command line.\n");
    s
}

/// The help text of one command.
pub fn command_usage(c: &Subcommand) -> String {
    let mut s = format!(
        "Usage: cnictl [global flags] {} {}\n\n{}\n",
        c.name, c.args, c.summary
    );
    if !c.details.is_empty() {
        s.push('\n');
        s.push_str(c.details);
        s.push('\n');
    }
    if !c.flags.is_empty() {
        s.push_str("\nFlags:\n");
        flag_lines(&mut s, c.flags);
    }
    s.push_str("\nGlobal flags:\n");
    flag_lines(&mut s, GLOBAL_FLAGS);
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::SUBCOMMANDS;

    fn p(args: &[&str]) -> Result<Parsed<'static>, Error> {
        let v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        parse(&v, SUBCOMMANDS)
    }

    #[test]
    fn global_flags_anywhere_command_flags_after_the_command() {
        let x = p(&[
            "--cache-dir",
            "/c",
            "add",
            "net",
            "--ifname=net1",
            "/run/netns/a",
            "--no-cleanup",
        ])
        .unwrap();
        assert_eq!(x.command.map(|c| c.name), Some("add"));
        assert_eq!(x.global.cache_dir, Some(PathBuf::from("/c")));
        assert_eq!(x.global.ifname.as_deref(), Some("net1"));
        assert_eq!(x.invocation.positionals, ["net", "/run/netns/a"]);
        assert!(x.invocation.has("no-cleanup"));

        let x = p(&["gc", "net", "--valid", "c1/eth0", "--valid=c2"]).unwrap();
        assert_eq!(x.invocation.values("valid"), ["c1/eth0", "c2"]);
        let x = p(&["add", "--", "net", "-weird-netns"]).unwrap();
        assert_eq!(x.invocation.positionals, ["net", "-weird-netns"]);
    }

    #[test]
    fn mistakes_are_usage_errors() {
        for bad in [
            &["frobnicate"][..],
            &["--no-cleanup", "add", "n", "ns"],
            &["add", "n"],
            &["add", "n", "ns", "extra"],
            &["add", "n", "ns", "--cache-dir"],
            &["add", "n", "ns", "--no-cleanup=yes"],
            &["del", "n", "ns", "--valid", "x"],
            &["status"],
            &["-x"],
        ] {
            let e = p(bad).unwrap_err();
            assert_eq!(e.exit_status(), 2, "{bad:?}");
        }
    }

    #[test]
    fn cluster_verbs_take_kubectl_flags() {
        let x = p(&[
            "apply",
            "-f",
            "a.yaml",
            "--filename=dir",
            "-f",
            "-",
            "--socket",
            "/s",
        ])
        .unwrap();
        assert_eq!(x.invocation.values("filename"), ["a.yaml", "dir", "-"]);
        assert_eq!(x.global.socket, Some(PathBuf::from("/s")));
        let x = p(&["get", "po", "web", "-n", "shop", "-o", "yaml"]).unwrap();
        assert_eq!(x.invocation.positionals, ["po", "web"]);
        assert_eq!(x.invocation.values("namespace"), ["shop"]);
        assert_eq!(x.invocation.values("output"), ["yaml"]);
        let x = p(&["get", "svc", "-A", "-o", "wide"]).unwrap();
        assert!(x.invocation.has("all-namespaces"));
        let x = p(&["delete", "svc", "web", "-n", "shop"]).unwrap();
        assert_eq!(x.invocation.positionals, ["svc", "web"]);
        for bad in [
            &["get"][..],
            &["get", "a", "b", "c"],
            &["describe", "po"],
            &["get", "po", "-o"],
            &["apply", "-x"],
        ] {
            assert_eq!(p(bad).unwrap_err().exit_status(), 2, "{bad:?}");
        }
    }

    #[test]
    fn help_skips_argument_checks() {
        let x = p(&["add", "-h"]).unwrap();
        assert!(x.global.help);
        let x = p(&["--help"]).unwrap();
        assert!(x.global.help && x.command.is_none());
        let text = usage(SUBCOMMANDS);
        for c in SUBCOMMANDS {
            assert!(text.contains(c.name), "{}", c.name);
        }
    }
}
