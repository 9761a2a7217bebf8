//! The messages.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ipam::{
    IpamAllocate, IpamAudit, IpamAuditReply, IpamCheck, IpamGc, IpamIp, IpamReclaim, IpamRelease,
    IpamShow, IpamShowReply, IpamStatus,
};

/// A request to the agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum Request {
    /// The agent's node, store and version.
    Status,
    /// Creates or updates every document, all or nothing (one store transaction).
    Apply {
        /// The documents, as parsed by the client (the agent decodes and checks them again).
        documents: Vec<ApplyDocument>,
    },
    /// One object.
    Get {
        /// Kind, as on the command line (`pods`, `po`, `Pod`...).
        kind: String,
        /// Namespace (namespaced kinds; default `default`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        namespace: Option<String>,
        /// Name.
        name: String,
    },
    /// Every object of a kind.
    List {
        /// Kind.
        kind: String,
        /// Only this namespace (`None`: every namespace).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        namespace: Option<String>,
    },
    /// Deletes objects, all in one transaction. Missing objects are reported, not an error
    /// of the others.
    Delete {
        /// What to delete.
        targets: Vec<Target>,
    },
    /// One object and what the agent knows about it (selected pods, lease...).
    Describe {
        /// Kind.
        kind: String,
        /// Namespace.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        namespace: Option<String>,
        /// Name.
        name: String,
    },
    /// Whether a connection would be allowed by the network policies, and why.
    PolicyExplain {
        /// The source: `namespace/pod`, a pod of `default`, or an address.
        from: String,
        /// The destination, likewise.
        to: String,
        /// The destination port (0 for protocols without ports).
        port: u16,
        /// `TCP`, `UDP`, `SCTP`, `ICMP` or a protocol number.
        protocol: String,
        /// `4` or `6`: the address family to use for pods with both (default 4).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        family: Option<u8>,
    },
    /// What this node's policy tables dropped, per pod and per policy.
    PolicyStats {
        /// Only this namespace (`None`: all).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        namespace: Option<String>,
    },
    /// Cluster IPAM, ADD: one address per family for an attachment.
    IpamAllocate(IpamAllocate),
    /// Cluster IPAM, DEL: the attachment's addresses go back (succeeds when it holds none).
    IpamRelease(IpamRelease),
    /// Cluster IPAM, CHECK: the attachment still holds its addresses.
    IpamCheck(IpamCheck),
    /// Cluster IPAM, GC: the network's live attachments.
    #[serde(rename = "ipamGC")]
    IpamGc(IpamGc),
    /// Cluster IPAM, STATUS: whether an ADD can be served.
    IpamStatus(IpamStatus),
    /// `cnictl ipam show`.
    IpamShow(IpamShow),
    /// `cnictl ipam check`.
    IpamAudit(IpamAudit),
    /// `cnictl ipam release`.
    IpamReclaim(IpamReclaim),
    /// A plugin reports one attachment it made (ADD) or removed (DEL); the agent records it
    /// as an `Attachment` of its node.
    Report {
        /// The attachment and what happened to it.
        report: AttachmentReport,
    },
    /// The node firewall's rules on this node and why each exists.
    NodeFirewall,
}

/// A rule of the node firewall and why it exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FirewallRule {
    /// The rule, in nft syntax.
    pub rule: String,
    /// Why it is there.
    pub why: String,
}

/// What happened to an attachment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AttachmentEvent {
    /// ADD succeeded: the attachment exists.
    Add,
    /// DEL ran: the attachment is gone.
    Del,
}

/// One attachment as a plugin reports it: one interface of one pod on this node. The agent
/// adds the node. On DEL only `network`, `containerId` and `ifname` are needed (a runtime may
/// send DEL without the pod's name or addresses).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttachmentReport {
    /// ADD or DEL.
    pub event: AttachmentEvent,
    /// The plugin (`bridge`, `flat`, `overlay`).
    pub plugin: String,
    /// The CNI network name.
    pub network: String,
    /// `CNI_CONTAINERID`.
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// `CNI_IFNAME`.
    pub ifname: String,
    /// `K8S_POD_NAMESPACE`, when the runtime sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_namespace: Option<String>,
    /// `K8S_POD_NAME`, when the runtime sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_name: Option<String>,
    /// The host end of the pod's veth pair.
    #[serde(default)]
    pub host_interface: String,
    /// The pod's addresses on `ifname`, as CIDRs (ADD).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    /// DEL: the attachment's firewall state for the agent to remove now, on its own
    /// netfilter socket, before it answers (see [`FirewallRemoval`]). Never spooled: a
    /// plugin whose report is not answered removes it itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firewall: Option<FirewallRemoval>,
}

/// The firewall state a DEL leaves to the agent: exactly what the plugin would remove itself
/// (`ferro_net::firewall::pod_del_on`): with `masquerade`, the attachment's masquerade
/// elements in the network's sets of the plugins' table (by address when `addresses` is
/// given, by the attachment's tag otherwise), and the reference plugins' masquerade chain
/// of the attachment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FirewallRemoval {
    /// The network masquerades its pods' traffic (`ipMasq`, `snat`).
    pub masquerade: bool,
    /// The attachment's addresses, when the runtime sent them (`prevResult`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addresses: Option<Vec<std::net::IpAddr>>,
}

/// The agent's confirmation that it removed a DEL's [`FirewallRemoval`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FirewallRemoved {
    /// The addresses whose masquerade elements were removed.
    #[serde(default)]
    pub unmasked: Vec<std::net::IpAddr>,
}

impl Request {
    /// The request as it may wait in the spool: without the work that only makes sense
    /// while the plugin waits for the answer (a DEL report's firewall removal).
    pub fn spoolable(&self) -> Request {
        let mut r = self.clone();
        if let Request::Report { report } = &mut r {
            report.firewall = None;
        }
        r
    }
}

/// One document of an apply, with where it came from (for messages).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyDocument {
    /// The file (`-`: standard input).
    pub source: String,
    /// Its position in the file, from 1.
    pub document: usize,
    /// Its position in a `List` document, from 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<usize>,
    /// The document.
    pub object: Value,
}

/// An object named by kind, namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    /// Kind.
    pub kind: String,
    /// Namespace (namespaced kinds; default `default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
}

/// The agent's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "camelCase")]
pub enum Response {
    /// Answer to [`Request::Status`].
    Status {
        /// The node's name.
        node: String,
        /// The store (`embedded <path>` or `etcd <endpoints>`).
        store: String,
        /// The agent's version.
        version: String,
        /// The store's revision.
        revision: i64,
    },
    /// Answer to [`Request::Apply`].
    Applied {
        /// One per document, in order.
        results: Vec<Outcome>,
        /// The store's revision after the apply.
        revision: i64,
    },
    /// Answer to [`Request::Get`].
    Object {
        /// The object (`metadata.resourceVersion`: its store revision).
        object: Value,
    },
    /// Answer to [`Request::List`].
    List {
        /// The objects, sorted by namespace and name.
        items: Vec<Value>,
        /// The revision of the read.
        revision: i64,
    },
    /// Answer to [`Request::Delete`].
    Deleted {
        /// One per target, in order.
        results: Vec<Outcome>,
        /// The store's revision after the deletion.
        revision: i64,
    },
    /// Answer to [`Request::Describe`].
    Description {
        /// The object.
        object: Value,
        /// What the agent adds, as `(label, value)` lines.
        facts: Vec<(String, String)>,
    },
    /// Answer to [`Request::PolicyExplain`].
    Explanation {
        /// The decision and why.
        explanation: crate::policy::Explanation,
    },
    /// Answer to [`Request::PolicyStats`].
    PolicyStats {
        /// The counters.
        stats: crate::policy::PolicyStats,
    },
    /// Answer to [`Request::IpamAllocate`] (and to a repeated ADD of the same attachment:
    /// the same addresses).
    IpamAllocated {
        /// One per family.
        ips: Vec<IpamIp>,
        /// The attachment the request's `report` asked to record, as recorded (`None`:
        /// nothing asked, or not recorded: the plugin reports it itself).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        attachment: Option<Outcome>,
        /// The request's `masquerade` is in place (`false`: nothing asked, or not done:
        /// the plugin adds it itself).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        masqueraded: bool,
    },
    /// Answer to [`Request::IpamRelease`] and [`Request::IpamReclaim`].
    IpamReleased {
        /// What went back to the pool (empty: nothing was held).
        addresses: Vec<std::net::IpAddr>,
        /// Blocks that went back to the pool (`ipam release --node`).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        blocks: Vec<ipnet::IpNet>,
    },
    /// Answer to [`Request::IpamCheck`], [`Request::IpamGc`] and [`Request::IpamStatus`]:
    /// all is well.
    IpamOk {
        /// A remark (GC: how many allocations are now leak candidates).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
    },
    /// Answer to [`Request::IpamShow`].
    IpamShow(IpamShowReply),
    /// Answer to [`Request::IpamAudit`].
    IpamAudit(IpamAuditReply),
    /// Answer to [`Request::Report`]: what was done to the node's `Attachment`.
    Reported {
        /// The attachment (`created`, `configured`, `unchanged`, `deleted`, `notFound`).
        outcome: Outcome,
        /// The report's firewall removal, done (absent when none was asked, or when it
        /// failed: the plugin then removes it itself).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        firewall: Option<FirewallRemoved>,
    },
    /// Answer to [`Request::NodeFirewall`].
    NodeFirewall {
        /// The node.
        node: String,
        /// The rules, in order.
        rules: Vec<FirewallRule>,
    },
    /// The request failed.
    Error {
        /// What went wrong.
        error: ApiError,
    },
}

/// What happened to one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    /// Kind (`Pod`).
    pub kind: String,
    /// Namespace, for namespaced kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
    /// What was done.
    pub action: Action,
    /// Values the cluster allocated to it in this apply (a service's `clusterIP 10.96.0.10`,
    /// `nodePort 30080/TCP`, `loadBalancerIP 10.240.1.1`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allocated: Vec<String>,
}

impl fmt::Display for Outcome {
    /// kubectl's line: `pod/web-1 created`, then what was allocated.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{} {}",
            self.kind.to_ascii_lowercase(),
            self.name,
            self.action
        )?;
        if let Some(ns) = &self.namespace {
            write!(f, " (namespace {ns})")?;
        }
        if !self.allocated.is_empty() {
            write!(f, ": {}", self.allocated.join(", "))?;
        }
        Ok(())
    }
}

/// What was done to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Action {
    /// It did not exist and was created.
    Created,
    /// It existed and was changed.
    Configured,
    /// It existed exactly so.
    Unchanged,
    /// It was deleted.
    Deleted,
    /// It did not exist (delete).
    NotFound,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Created => "created",
            Action::Configured => "configured",
            Action::Unchanged => "unchanged",
            Action::Deleted => "deleted",
            Action::NotFound => "not found",
        })
    }
}

/// A failure the agent reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// Its class.
    pub code: ErrorCode,
    /// What failed, for people (names file, document and field for invalid manifests).
    pub message: String,
}

impl ApiError {
    /// An error of class `code`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
        }
    }
}

/// Classes of failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ErrorCode {
    /// The request is malformed (not JSON, unknown op).
    BadRequest,
    /// A manifest is invalid (nothing was written).
    Invalid,
    /// The object does not exist.
    NotFound,
    /// The object changed since the revision the request named, or a concurrent writer won
    /// every retry.
    Conflict,
    /// Not allowed (system-written kinds, the default namespace).
    Forbidden,
    /// The store cannot be reached: try again later (CNI code 11).
    Unavailable,
    /// The address pool has nothing left for the request (the message names the pool and
    /// its use; CNI code 101).
    Exhausted,
    /// Anything else.
    Internal,
}

impl ErrorCode {
    /// Its name on the wire (`badRequest`, `unavailable`...).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "badRequest",
            ErrorCode::Invalid => "invalid",
            ErrorCode::NotFound => "notFound",
            ErrorCode::Conflict => "conflict",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Exhausted => "exhausted",
            ErrorCode::Internal => "internal",
        }
    }
}

impl Response {
    /// An error response.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        Response::Error {
            error: ApiError::new(code, message),
        }
    }
}
