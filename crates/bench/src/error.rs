//! The driver's error type.

use std::path::PathBuf;

/// Why a measurement or the setup failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or process operation of the driver failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// The operation.
        what: &'static str,
        /// What it was applied to.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A namespace operation failed.
    #[error("{what} {path}: {source}")]
    Ns {
        /// The operation.
        what: &'static str,
        /// The namespace file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: nix::Error,
    },
    /// A plugin exited non-zero or printed something that is not a result.
    #[error("{plugin} {verb} failed (exit {status}): {stdout}{stderr}")]
    Plugin {
        /// The plugin's type.
        plugin: String,
        /// The verb.
        verb: &'static str,
        /// Exit status (-1 when killed).
        status: i32,
        /// Its stdout (the CNI error object).
        stdout: String,
        /// Its stderr, prefixed with a separator when non-empty.
        stderr: String,
    },
    /// A template of the report does not fit the figures given to it.
    #[error("rendering the report: {0:#}")]
    Template(#[source] minijinja::Error),
    /// The command line is wrong.
    #[error("{0}")]
    Usage(String),
    /// Anything else, described.
    #[error("{0}")]
    Other(String),
}

impl Error {
    /// An [`Error::Io`].
    pub fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            what,
            path: path.into(),
            source,
        }
    }

    /// An [`Error::Ns`].
    pub fn ns(what: &'static str, path: impl Into<PathBuf>, source: nix::Error) -> Error {
        Error::Ns {
            what,
            path: path.into(),
            source,
        }
    }
}
