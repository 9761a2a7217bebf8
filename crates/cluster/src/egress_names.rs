//! Names an egress policy allows: an exact name (`api.example.com`) or a wildcard
//! (`*.blob.example.net`: any name with at least one more label under the suffix, not the
//! suffix itself). Case is ignored, a trailing dot too.

use std::fmt;

/// One allowed name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NamePattern {
    /// Exactly this name.
    Exact(String),
    /// Any name under this suffix (stored without the `*.`).
    Under(String),
}

/// Why a pattern is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError(pub String);

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn valid_label(l: &str) -> bool {
    !l.is_empty()
        && l.len() <= 63
        && l.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl NamePattern {
    /// Parses `name` or `*.suffix`.
    pub fn parse(s: &str) -> Result<NamePattern, PatternError> {
        let t = s.trim_end_matches('.').to_ascii_lowercase();
        let (wild, rest) = match t.strip_prefix("*.") {
            Some(r) => (true, r.to_string()),
            None => (false, t.clone()),
        };
        if rest.is_empty() || rest.len() > 253 || !rest.split('.').all(valid_label) {
            return Err(PatternError(format!(
                "{s:?} is not a DNS name or a *. wildcard of one (labels of letters, digits, '-', '_')"
            )));
        }
        Ok(if wild {
            NamePattern::Under(rest)
        } else {
            NamePattern::Exact(rest)
        })
    }

    /// Whether `name` (any case, trailing dot or not) is allowed.
    pub fn matches(&self, name: &str) -> bool {
        let n = name.trim_end_matches('.').to_ascii_lowercase();
        match self {
            NamePattern::Exact(e) => n == *e,
            NamePattern::Under(suffix) => n
                .strip_suffix(suffix.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
        }
    }
}

impl fmt::Display for NamePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NamePattern::Exact(e) => f.write_str(e),
            NamePattern::Under(s) => write!(f, "*.{s}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_and_wildcards() {
        let e = NamePattern::parse("API.example.com.").unwrap();
        assert!(e.matches("api.example.com"));
        assert!(e.matches("Api.Example.COM."));
        assert!(!e.matches("x.api.example.com"));
        assert!(!e.matches("example.com"));
        let w = NamePattern::parse("*.blob.example.net").unwrap();
        assert!(w.matches("a.blob.example.net."));
        assert!(w.matches("a.b.blob.example.net"));
        assert!(!w.matches("blob.example.net"));
        assert!(!w.matches("xblob.example.net"));
        assert_eq!(w.to_string(), "*.blob.example.net");
    }

    #[test]
    fn refused() {
        for s in ["", "*.", "a..b", "*.*.x", "a b.com", "ex*.com"] {
            assert!(NamePattern::parse(s).is_err(), "{s}");
        }
    }
}
