//! cnictl's one error type.
//!
//! Every failure carries a [`CniError`] (a spec code, a message, optional details) and, when
//! it came from a plugin or concerns one, that plugin's `type`. Errors printed by plugins keep
//! their own code; failures of cnictl itself use the spec code that fits (4 for bad
//! variables, 5 for cache I/O, 6 for undecodable JSON, 7 for an invalid configuration, 1 for a
//! version problem, 3 for a missing container id, 102 for a plugin that cannot be found or
//! run). Command-line mistakes are [`Error::Usage`] and exit with status 2.

use std::fmt;

use ferro_spec::{CniError, Code};

/// A failure of one cnictl command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The command line is wrong (unknown flag, missing argument): exit status 2.
    Usage(String),
    /// A CNI-coded failure, naming the plugin type it concerns when there is one.
    Cni {
        /// The plugin `type`, when the failure came from (or concerns) one plugin.
        plugin: Option<String>,
        /// Code, message and details.
        error: CniError,
    },
    /// Several independent failures (GC keeps going and reports them all).
    Many(Vec<Error>),
    /// A failure of a cluster command (apply, get, delete, describe): an invalid manifest,
    /// the agent's answer, an unreachable agent. One line per problem, no CNI code.
    Cluster(String),
}

impl Error {
    /// A failure not tied to a plugin.
    pub fn cni(error: CniError) -> Self {
        Error::Cni {
            plugin: None,
            error,
        }
    }

    /// A failure of (or about) the plugin of type `plugin_type`.
    pub fn plugin(plugin_type: &str, error: CniError) -> Self {
        Error::Cni {
            plugin: Some(plugin_type.to_string()),
            error,
        }
    }

    /// A usage error.
    pub fn usage(msg: impl Into<String>) -> Self {
        Error::Usage(msg.into())
    }

    /// Prefixes every message with `ctx` (codes and plugin names are kept).
    pub fn context(self, ctx: impl fmt::Display) -> Self {
        self.context_str(&ctx.to_string())
    }

    fn context_str(self, ctx: &str) -> Self {
        match self {
            Error::Usage(m) => Error::Usage(format!("{ctx}: {m}")),
            Error::Cni { plugin, error } => Error::Cni {
                plugin,
                error: error.context(ctx),
            },
            Error::Many(v) => Error::Many(v.into_iter().map(|e| e.context_str(ctx)).collect()),
            Error::Cluster(m) => Error::Cluster(format!("{ctx}: {m}")),
        }
    }

    /// The code of the (first) failure; `None` for usage errors.
    pub fn code(&self) -> Option<u32> {
        match self {
            Error::Usage(_) | Error::Cluster(_) => None,
            Error::Cni { error, .. } => Some(error.code.number()),
            Error::Many(v) => v.iter().find_map(Error::code),
        }
    }

    /// The process exit status: 2 for usage errors, 1 for everything else.
    pub fn exit_status(&self) -> u8 {
        match self {
            Error::Usage(_) => 2,
            _ => 1,
        }
    }

    /// The stderr lines for this failure of `verb`:
    /// `cnictl: <verb> <plugin type>: <msg>[: <details>] (code N)`.
    pub fn lines(&self, verb: &str) -> Vec<String> {
        match self {
            Error::Usage(m) => vec![
                format!("cnictl: {verb}: {m}"),
                "run 'cnictl --help' for usage".to_string(),
            ],
            Error::Cni { plugin, error } => {
                let who = match plugin {
                    Some(p) => format!("{verb} {p}"),
                    None => verb.to_string(),
                };
                let mut msg = error.msg.clone();
                if let Some(d) = error.details.as_deref().filter(|d| !d.is_empty()) {
                    msg.push_str(": ");
                    msg.push_str(d);
                }
                vec![format!(
                    "cnictl: {who}: {msg} (code {})",
                    error.code.number()
                )]
            }
            Error::Many(v) => v.iter().flat_map(|e| e.lines(verb)).collect(),
            Error::Cluster(m) => m.lines().map(|l| format!("cnictl: {verb}: {l}")).collect(),
        }
    }
}

impl From<CniError> for Error {
    fn from(e: CniError) -> Self {
        Error::cni(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(m) => f.write_str(m),
            Error::Cni { plugin, error } => {
                if let Some(p) = plugin {
                    write!(f, "{p}: ")?;
                }
                write!(f, "{error} (code {})", error.code.number())
            }
            Error::Many(v) => {
                let parts: Vec<String> = v.iter().map(ToString::to_string).collect();
                f.write_str(&parts.join("; "))
            }
            Error::Cluster(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {}

/// Code 5 for a file-system failure on `what`.
pub fn io_error(what: impl fmt::Display, e: &std::io::Error) -> CniError {
    CniError::io(format!("{what}: {e}"))
}

/// Code 102: a plugin could not be found or run.
pub fn exec_error(msg: impl Into<String>) -> CniError {
    CniError::new(Code::Delegate, msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_name_verb_plugin_code_and_details() {
        let e = Error::plugin(
            "bridge",
            CniError::invalid_config("bad").with_details("more"),
        );
        assert_eq!(
            e.lines("add"),
            vec!["cnictl: add bridge: bad: more (code 7)"]
        );
        let e = Error::cni(CniError::unknown_container("missing containerID"));
        assert_eq!(
            e.lines("del"),
            vec!["cnictl: del: missing containerID (code 3)"]
        );
        assert_eq!(e.exit_status(), 1);
        assert_eq!(Error::usage("x").exit_status(), 2);
    }

    #[test]
    fn many_reports_every_failure_and_context_keeps_codes() {
        let e = Error::Many(vec![
            Error::plugin("a", CniError::new(Code::Other(999), "one")),
            Error::cni(CniError::io("two")),
        ])
        .context("gc");
        assert_eq!(
            e.lines("gc"),
            vec![
                "cnictl: gc a: gc: one (code 999)",
                "cnictl: gc: gc: two (code 5)"
            ]
        );
        assert_eq!(e.code(), Some(999));
    }
}
