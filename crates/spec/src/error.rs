//! The one error type that faces the runtime.
//!
//! Every failure that reaches stdout is a [`CniError`]: a spec code, a short lower-case message
//! that names the offending key, variable or value, and optional details. Crates below this
//! one keep their own `thiserror` enums and convert into `CniError` at the plugin boundary, so
//! codes are assigned in exactly one place per crate.

use std::fmt;

use serde::Serialize;

use crate::env::Command;
use crate::version::{self, Version};

/// Error codes of the CNI specification (its "Error" result), plus this suite's plugin codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    /// 1: the requested `cniVersion` (or the verb at that version) is not supported.
    IncompatibleVersion,
    /// 2: a configuration key is known but not supported; the message names key and value.
    UnsupportedField,
    /// 3: the container is unknown or does not exist.
    UnknownContainer,
    /// 4: a necessary `CNI_*` environment variable is missing or invalid.
    InvalidEnv,
    /// 5: an I/O failure, such as reading stdin.
    Io,
    /// 6: the configuration or a result could not be decoded.
    Decode,
    /// 7: the configuration is well-formed but invalid.
    InvalidConfig,
    /// 11: a transient condition; the runtime should retry.
    TryAgain,
    /// 50: STATUS: the plugin cannot service ADD now (e.g. its address pool is exhausted).
    NotAvailable,
    /// 51: STATUS: not available, and existing containers may have limited connectivity.
    LimitedConnectivity,
    /// 100: a kernel or file-system operation failed (netlink, nftables, sysctl, store).
    Internal,
    /// 101: no address can be allocated (range exhausted, requested address taken).
    AddressUnavailable,
    /// 102: a delegated plugin (IPAM) could not be run or returned something unusable.
    Delegate,
    /// 103: CHECK found state that differs from what ADD created.
    CheckFailed,
    /// Any other code, as received from a delegated plugin.
    Other(u32),
}

impl Code {
    /// The numeric code written in the error JSON.
    pub fn number(self) -> u32 {
        match self {
            Code::IncompatibleVersion => 1,
            Code::UnsupportedField => 2,
            Code::UnknownContainer => 3,
            Code::InvalidEnv => 4,
            Code::Io => 5,
            Code::Decode => 6,
            Code::InvalidConfig => 7,
            Code::TryAgain => 11,
            Code::NotAvailable => 50,
            Code::LimitedConnectivity => 51,
            Code::Internal => 100,
            Code::AddressUnavailable => 101,
            Code::Delegate => 102,
            Code::CheckFailed => 103,
            Code::Other(n) => n,
        }
    }

    /// The code for a number received from another plugin.
    pub fn from_number(n: u32) -> Code {
        match n {
            1 => Code::IncompatibleVersion,
            2 => Code::UnsupportedField,
            3 => Code::UnknownContainer,
            4 => Code::InvalidEnv,
            5 => Code::Io,
            6 => Code::Decode,
            7 => Code::InvalidConfig,
            11 => Code::TryAgain,
            50 => Code::NotAvailable,
            51 => Code::LimitedConnectivity,
            100 => Code::Internal,
            101 => Code::AddressUnavailable,
            102 => Code::Delegate,
            103 => Code::CheckFailed,
            n => Code::Other(n),
        }
    }
}

/// A CNI error object: what the runtime receives on stdout when a verb fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniError {
    /// The spec (or plugin) code.
    pub code: Code,
    /// Short message; names the bad key, variable or value.
    pub msg: String,
    /// Optional longer explanation.
    pub details: Option<String>,
    /// An explanation for the plugin's log only (stderr and `FERRO_LOG_FILE`), never written
    /// to stdout: for the errors whose `msg` and `details` are the reference plugins' word
    /// for word (see [`CniError::verb_not_in_version`]).
    pub note: Option<String>,
}

impl CniError {
    /// An error with a code and message.
    pub fn new(code: Code, msg: impl Into<String>) -> Self {
        CniError {
            code,
            msg: msg.into(),
            details: None,
            note: None,
        }
    }

    /// Adds details (a cause, the list of supported values...).
    pub fn with_details(mut self, details: impl Into<String>) -> Self {
        self.details = Some(details.into());
        self
    }

    /// Adds a note for the log (see [`CniError::note`]).
    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }

    /// Code 1.
    pub fn incompatible_version(msg: impl Into<String>) -> Self {
        Self::new(Code::IncompatibleVersion, msg)
    }

    // The next three answer situations the reference plugins (libcni's skel and result
    // types) also report, in their exact words and with no `details`: Go clients render an
    // error as `msg` or `msg; details`, and tools and the reference test suites compare that
    // whole text. What we would add goes to the log as the note.

    /// Code 1: `command` does not exist in the config's `version` (CHECK before 0.4.0, GC and
    /// STATUS before 1.1.0): `config version does not allow CHECK`.
    pub fn verb_not_in_version(command: Command, version: Version) -> Self {
        Self::incompatible_version(format!("config version does not allow {command}")).with_note(
            format!(
                "config version is {version}; {command} needs {} or later",
                version::first_version_of(command)
            ),
        )
    }

    /// Code 7: a 0.1.0 or 0.2.0 request asks for more than one address of a family, which
    /// those results cannot hold: `CNI version 0.2.0 does not support more than 1 address
    /// per family`. `note` says which key holds what.
    pub fn several_addresses_per_family(version: Version, note: impl Into<String>) -> Self {
        Self::invalid_config(format!(
            "CNI version {version} does not support more than 1 address per family"
        ))
        .with_note(note)
    }

    /// Code 1: a result without any address cannot be written in the 0.1.0/0.2.0 layout:
    /// `cannot convert: no valid IP addresses`.
    pub fn no_address_for_legacy_result(version: Version) -> Self {
        Self::incompatible_version("cannot convert: no valid IP addresses").with_note(format!(
            "a cniVersion {version} result needs an IPv4 or IPv6 address (ip4/ip6), and there is none"
        ))
    }

    /// Code 2: `key` is a known key this plugin does not implement.
    pub fn unsupported_field(key: &str, value: &serde_json::Value) -> Self {
        Self::new(
            Code::UnsupportedField,
            format!("unsupported field {key:?} = {value} in network configuration"),
        )
    }

    /// Code 3.
    pub fn unknown_container(msg: impl Into<String>) -> Self {
        Self::new(Code::UnknownContainer, msg)
    }

    /// Code 4: the message must name the variable.
    pub fn invalid_env(msg: impl Into<String>) -> Self {
        Self::new(Code::InvalidEnv, msg)
    }

    /// Code 5.
    pub fn io(msg: impl Into<String>) -> Self {
        Self::new(Code::Io, msg)
    }

    /// Code 6.
    pub fn decode(msg: impl Into<String>) -> Self {
        Self::new(Code::Decode, msg)
    }

    /// Code 7: the message must name the key.
    pub fn invalid_config(msg: impl Into<String>) -> Self {
        Self::new(Code::InvalidConfig, msg)
    }

    /// Code 11.
    pub fn try_again(msg: impl Into<String>) -> Self {
        Self::new(Code::TryAgain, msg)
    }

    /// Code 50.
    pub fn not_available(msg: impl Into<String>) -> Self {
        Self::new(Code::NotAvailable, msg)
    }

    /// Code 100.
    pub fn internal(msg: impl Into<String>) -> Self {
        Self::new(Code::Internal, msg)
    }

    /// Code 103.
    pub fn check_failed(msg: impl Into<String>) -> Self {
        Self::new(Code::CheckFailed, msg)
    }

    /// Prefixes the message with context ("ipam: ..."), keeping code and details.
    pub fn context(mut self, ctx: impl fmt::Display) -> Self {
        self.msg = format!("{ctx}: {}", self.msg);
        self
    }

    /// The JSON object written to stdout.
    pub fn to_json(&self, cni_version: &str) -> serde_json::Value {
        #[derive(Serialize)]
        struct Wire<'a> {
            #[serde(rename = "cniVersion")]
            cni_version: &'a str,
            code: u32,
            msg: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            details: Option<&'a str>,
        }
        serde_json::to_value(Wire {
            cni_version,
            code: self.code.number(),
            msg: &self.msg,
            details: self.details.as_deref(),
        })
        .unwrap_or(serde_json::Value::Null)
    }

    /// Parses an error object printed by another plugin (a delegate). `None` if `v` is not
    /// an error object.
    pub fn from_json(v: &serde_json::Value) -> Option<Self> {
        let code = v.get("code")?.as_u64()?;
        let msg = v.get("msg").and_then(|m| m.as_str()).unwrap_or_default();
        let details = v
            .get("details")
            .and_then(|d| d.as_str())
            .filter(|d| !d.is_empty());
        Some(CniError {
            code: Code::from_number(u32::try_from(code).unwrap_or(u32::MAX)),
            msg: msg.to_string(),
            details: details.map(str::to_string),
            note: None,
        })
    }
}

impl fmt::Display for CniError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.msg)?;
        for extra in [&self.details, &self.note].into_iter().flatten() {
            write!(f, " ({extra})")?;
        }
        Ok(())
    }
}

impl std::error::Error for CniError {}

/// Collects failures of independent best-effort steps (DEL, GC): every step runs, the first
/// failure is reported at the end, the others are logged.
#[derive(Debug, Default)]
pub struct FirstError(Option<CniError>);

impl FirstError {
    /// Records the outcome of one step; returns its value when it succeeded.
    pub fn note<T, E: Into<CniError>>(&mut self, r: Result<T, E>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                let e = e.into();
                match &self.0 {
                    None => self.0 = Some(e),
                    Some(_) => log::warn!("{e}"),
                }
                None
            }
        }
    }

    /// `Ok` when every step succeeded, else the first failure.
    pub fn finish(self) -> Result<(), CniError> {
        self.0.map_or(Ok(()), Err)
    }
}

/// The result type of every verb.
pub type CniResultOf<T> = Result<T, CniError>;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_has_version_code_msg_and_optional_details() {
        let e = CniError::invalid_config("ipam.ranges[0][0].subnet: invalid CIDR \"x\"");
        let j = e.to_json("1.0.0");
        assert_eq!(j["cniVersion"], "1.0.0");
        assert_eq!(j["code"], 7);
        assert!(j["msg"].as_str().unwrap().contains("subnet"));
        assert!(j.get("details").is_none());

        let j = e.with_details("more").to_json("0.4.0");
        assert_eq!(j["details"], "more");
    }

    #[test]
    fn reference_worded_errors_keep_our_explanation_out_of_the_json() {
        let e = CniError::verb_not_in_version(Command::Check, Version::V0_3_1);
        let j = e.to_json("0.3.1");
        assert_eq!(
            (&j["code"], &j["msg"]),
            (&json!(1), &json!("config version does not allow CHECK"))
        );
        assert!(j.get("details").is_none() && j.get("note").is_none(), "{j}");
        assert_eq!(
            e.note.as_deref(),
            Some("config version is 0.3.1; CHECK needs 0.4.0 or later")
        );
        assert!(e.to_string().contains("needs 0.4.0"), "{e}");
        let e = CniError::verb_not_in_version(Command::Status, Version::V1_0_0);
        assert_eq!(e.msg, "config version does not allow STATUS");
        assert!(e.note.unwrap().contains("1.1.0"));
        let e = CniError::several_addresses_per_family(Version::V0_1_0, "ipam.ranges: 2 IPv6");
        assert_eq!(
            (e.code, e.msg.as_str(), e.details),
            (
                Code::InvalidConfig,
                "CNI version 0.1.0 does not support more than 1 address per family",
                None
            )
        );
        let e = CniError::no_address_for_legacy_result(Version::V0_2_0);
        assert_eq!(e.msg, "cannot convert: no valid IP addresses");
    }

    #[test]
    fn codes_round_trip() {
        for n in [1, 2, 3, 4, 5, 6, 7, 11, 50, 51, 100, 101, 102, 103, 999] {
            assert_eq!(Code::from_number(n).number(), n);
        }
    }

    #[test]
    fn parses_delegate_errors_and_rejects_results() {
        let v = serde_json::json!({"code": 999, "msg": "boom", "details": ""});
        let e = CniError::from_json(&v).unwrap();
        assert_eq!(e.code, Code::Other(999));
        assert_eq!(e.details, None);
        assert!(
            CniError::from_json(&serde_json::json!({"cniVersion": "1.0.0", "ips": []})).is_none()
        );
    }

    #[test]
    fn first_error_keeps_going_and_reports_the_first() {
        let mut f = FirstError::default();
        assert_eq!(f.note::<_, CniError>(Ok(1)), Some(1));
        assert_eq!(f.note::<u8, _>(Err(CniError::internal("a"))), None);
        assert_eq!(f.note::<u8, _>(Err(CniError::io("b"))), None);
        assert_eq!(f.finish().unwrap_err().msg, "a");
        assert!(FirstError::default().finish().is_ok());
    }

    #[test]
    fn unsupported_field_names_key_and_value() {
        let e = CniError::unsupported_field("vlanTrunk", &serde_json::json!([{"id": 5}]));
        assert_eq!(e.code.number(), 2);
        assert!(
            e.msg.contains("vlanTrunk") && e.msg.contains("\"id\":5"),
            "{}",
            e.msg
        );
    }
}
