//! Kubernetes' rules for names, label keys and values, and port names. Each check returns
//! `None` when the value is fine, or what is wrong with it.

/// A DNS-1123 label: at most 63 of `[a-z0-9-]`, starting and ending alphanumeric
/// (namespace names, container names).
pub fn dns1123_label(s: &str) -> Option<String> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    (!ok).then(|| {
        format!(
            "{s:?} is not a DNS-1123 label (at most 63 lower-case letters, digits and '-', \
             starting and ending with a letter or digit)"
        )
    })
}

/// A DNS-1035 label: a DNS-1123 label starting with a letter (service names).
pub fn dns1035_label(s: &str) -> Option<String> {
    if let Some(e) = dns1123_label(s) {
        return Some(e);
    }
    (!s.starts_with(|c: char| c.is_ascii_lowercase()))
        .then(|| format!("{s:?} must start with a lower-case letter (DNS-1035 label)"))
}

/// A DNS-1123 subdomain: at most 253 characters, dot-separated DNS-1123 labels (pod,
/// policy and node names).
pub fn dns1123_subdomain(s: &str) -> Option<String> {
    let ok = !s.is_empty() && s.len() <= 253 && s.split('.').all(|l| dns1123_label(l).is_none());
    (!ok).then(|| {
        format!(
            "{s:?} is not a DNS-1123 subdomain (lower-case letters, digits, '-' and '.', at \
             most 253, each part starting and ending with a letter or digit)"
        )
    })
}

fn qualified_name_part(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// A label (or annotation) key: `[prefix/]name`, the prefix a DNS subdomain, the name at
/// most 63 of `[A-Za-z0-9-_.]` starting and ending alphanumeric.
pub fn label_key(s: &str) -> Option<String> {
    let (prefix, name) = match s.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    if let Some(p) = prefix {
        if dns1123_subdomain(p).is_some() {
            return Some(format!(
                "label key {s:?}: the prefix {p:?} is not a DNS subdomain"
            ));
        }
    }
    (!qualified_name_part(name)).then(|| {
        format!(
            "label key {s:?}: the name must be at most 63 letters, digits, '-', '_' or '.', \
             starting and ending with a letter or digit"
        )
    })
}

/// A label value: empty, or at most 63 of `[A-Za-z0-9-_.]` starting and ending alphanumeric.
pub fn label_value(s: &str) -> Option<String> {
    (!s.is_empty() && !qualified_name_part(s)).then(|| {
        format!(
            "label value {s:?} must be empty or at most 63 letters, digits, '-', '_' or '.', \
             starting and ending with a letter or digit"
        )
    })
}

/// An IANA service name (named ports): at most 15 of `[a-z0-9-]`, at least one letter, no
/// leading, trailing or double '-'.
pub fn iana_svc_name(s: &str) -> Option<String> {
    let ok = !s.is_empty()
        && s.len() <= 15
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && s.bytes().any(|b| b.is_ascii_lowercase())
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--");
    (!ok).then(|| {
        format!(
            "{s:?} is not a port name (at most 15 lower-case letters, digits and single '-', \
             with at least one letter)"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_kubernetes() {
        for ok in ["a", "web-1", "0abc"] {
            assert_eq!(dns1123_label(ok), None, "{ok}");
        }
        for bad in ["", "-a", "a-", "A", "a_b", &"a".repeat(64)] {
            assert!(dns1123_label(bad).is_some(), "{bad}");
        }
        assert!(dns1035_label("1web").is_some());
        assert_eq!(dns1035_label("web"), None);
        assert_eq!(dns1123_subdomain("web.default.svc"), None);
        assert!(dns1123_subdomain("web..x").is_some());
    }

    #[test]
    fn labels_and_port_names() {
        for ok in [
            "app",
            "app.kubernetes.io/name",
            "kubernetes.io/metadata.name",
            "A_b.c",
        ] {
            assert_eq!(label_key(ok), None, "{ok}");
        }
        for bad in ["", "/x", "x/", "-a", "Bad_/x", "a/b/c"] {
            assert!(label_key(bad).is_some(), "{bad}");
        }
        assert_eq!(label_value(""), None);
        assert_eq!(label_value("v1.2_x"), None);
        assert!(label_value("-v").is_some());
        assert!(label_value(&"v".repeat(64)).is_some());
        for ok in ["http", "serve-80-tcp", "h2c"] {
            assert_eq!(iana_svc_name(ok), None, "{ok}");
        }
        for bad in ["80", "a--b", "-http", "http-", "toolongportname1", "HTTP"] {
            assert!(iana_svc_name(bad).is_some(), "{bad}");
        }
    }
}
