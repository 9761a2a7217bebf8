//! `resolvConf`: a resolv.conf file turned into the result's `dns`, as the reference reads it.
//!
//! Lines starting with `#` or `;` and lines with fewer than two fields are skipped;
//! `nameserver` adds a server, `domain` sets the domain (the last one wins), `search` and
//! `options` add their fields.

use std::path::Path;

use ferro_ipam::IpamError;
use ferro_spec::Dns;

/// Parses resolv.conf text.
pub fn parse(text: &str) -> Dns {
    let mut dns = Dns::default();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [keyword, first, ..] = fields.as_slice() else {
            continue;
        };
        let rest = fields[1..].iter().map(|s| s.to_string());
        match *keyword {
            "nameserver" => dns.nameservers.push(first.to_string()),
            "domain" => dns.domain = Some(first.to_string()),
            "search" => dns.search.extend(rest),
            "options" => dns.options.extend(rest),
            _ => {}
        }
    }
    dns
}

/// Reads and parses the file named by `ipam.resolvConf`; an unreadable file is a
/// configuration error naming the key.
pub fn read(path: &Path) -> Result<Dns, IpamError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        IpamError::config(
            "ipam.resolvConf",
            format!("cannot read {}: {e}", path.display()),
        )
    })?;
    Ok(parse(&text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_the_reference() {
        let d = parse(
            "# generated\n; also a comment\nnameserver 10.0.0.10\nnameserver fd00::10\n\
             domain a.example\ndomain cluster.local\nsearch svc.cluster.local cluster.local\n\
             search extra\noptions ndots:5 timeout:1\nnameserver\n  options   rotate  \nsortlist 1.2.3.4\n",
        );
        assert_eq!(d.nameservers, ["10.0.0.10", "fd00::10"]);
        assert_eq!(d.domain.as_deref(), Some("cluster.local"));
        assert_eq!(d.search, ["svc.cluster.local", "cluster.local", "extra"]);
        assert_eq!(d.options, ["ndots:5", "timeout:1", "rotate"]);
        assert!(parse("").is_empty());
    }

    #[test]
    fn an_unreadable_file_names_the_key() {
        let e = read(Path::new("/nonexistent/resolv.conf")).unwrap_err();
        assert_eq!(e.code().number(), 7);
        assert!(
            e.to_string()
                .starts_with("ipam.resolvConf: cannot read /nonexistent/resolv.conf"),
            "{e}"
        );
    }
}
