//! [`PodError`]: what can go wrong around one pod attachment, and the one place where each
//! case gets its CNI code.

use ferro_net::firewall::FirewallError;
use ferro_net::NetError;
use ferro_spec::CniError;

use crate::check::Differences;

/// A failure of the shared pod-attachment steps or of a plugin's plan.
#[derive(Debug, thiserror::Error)]
pub enum PodError {
    /// CHECK was called without `prevResult` (code 7).
    #[error("CHECK needs prevResult (the result of ADD)")]
    NoPrevResult,
    /// The configuration has no `ipam` section and the model needs one (code 7); `example`
    /// says what to point it at.
    #[error("ipam: required (e.g. {example})")]
    IpamRequired {
        /// What a working `ipam` section allocates from.
        example: &'static str,
    },
    /// IPAM returned no address (code 7).
    #[error("ipam returned no address")]
    NoAddress,
    /// The host end of this attachment's veth pair already exists (code 7).
    #[error(
        "host interface {0} already exists: a previous ADD of this attachment was not deleted"
    )]
    HostVethExists(String),
    /// A plan refused the configuration or the IPAM result (code 7); the message names the
    /// key or the value.
    #[error("{0}")]
    Invalid(String),
    /// CHECK found the attachment different from what ADD made (code 103).
    #[error("{0}")]
    Differs(Differences),
    /// CHECK could not read the state it compares (code 103: a difference it cannot rule out).
    #[error("{0}")]
    CheckRead(#[source] NetError),
    /// A kernel operation failed (the kernel layer's codes: 3, 11 or 100).
    #[error(transparent)]
    Net(#[from] NetError),
    /// A firewall operation failed (the firewall's codes: 103, 7 or 100).
    #[error(transparent)]
    Firewall(#[from] FirewallError),
}

impl From<Differences> for PodError {
    fn from(d: Differences) -> Self {
        PodError::Differs(d)
    }
}

impl From<PodError> for CniError {
    fn from(e: PodError) -> Self {
        match e {
            PodError::NoPrevResult
            | PodError::IpamRequired { .. }
            | PodError::NoAddress
            | PodError::HostVethExists(_)
            | PodError::Invalid(_) => CniError::invalid_config(e.to_string()),
            PodError::Differs(_) | PodError::CheckRead(_) => CniError::check_failed(e.to_string()),
            PodError::Net(n) => n.into(),
            PodError::Firewall(f) => f.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Difference;

    fn code(e: PodError) -> (u32, String) {
        let c = CniError::from(e);
        (c.code.number(), c.msg)
    }

    #[test]
    fn codes_are_assigned_here() {
        assert_eq!(
            code(PodError::NoPrevResult),
            (7, "CHECK needs prevResult (the result of ADD)".into())
        );
        assert_eq!(
            code(PodError::IpamRequired {
                example: "host-local over this node's slice"
            }),
            (
                7,
                "ipam: required (e.g. host-local over this node's slice)".into()
            )
        );
        assert_eq!(code(PodError::NoAddress).0, 7);
        let (c, m) = code(PodError::HostVethExists("veth0123".into()));
        assert_eq!(c, 7);
        assert!(
            m.starts_with("host interface veth0123 already exists"),
            "{m}"
        );
        assert_eq!(code(PodError::Invalid("mtu: 20 is too small".into())).0, 7);
        let (c, m) = code(PodError::Differs(Differences(vec![Difference::Down {
            name: "eth0".into(),
        }])));
        assert_eq!((c, m.as_str()), (103, "eth0 is down"));
        let read = NetError::Other("dump addresses: interrupted".into());
        assert_eq!(code(PodError::CheckRead(read)).0, 103);
        assert_eq!(
            code(PodError::Net(NetError::NetnsMissing("/x".into()))).0,
            3
        );
        assert_eq!(
            code(PodError::Firewall(FirewallError::Invalid("bad".into()))).0,
            7
        );
    }
}
