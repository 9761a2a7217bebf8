//! The agent's one error type: what stops it (from starting, or running).

use ferro_store::StoreError;

/// Why the agent stopped or could not start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The configuration is wrong (names the file and the key).
    #[error("configuration: {0}")]
    Config(String),
    /// The store cannot be opened or reached.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The node's name is held by another live agent.
    #[error("node {node}: its lease is held by another live agent (lease {lease}); two agents cannot share a node name")]
    NodeTaken {
        /// The node.
        node: String,
        /// The other agent's lease.
        lease: String,
    },
    /// A local file or directory (state dir, socket, metrics port).
    #[error("{what}: {source}")]
    Io {
        /// What was being done, naming the path.
        what: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
}

impl AgentError {
    /// An I/O error while doing `what`.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        AgentError::Io {
            what: what.into(),
            source,
        }
    }
}
