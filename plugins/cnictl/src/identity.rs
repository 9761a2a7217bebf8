//! The attachment identity cnitool derives: the absolute network-namespace path and a
//! container id hashed from it, so `cnitool add` and `cnictl del` (or the reverse) name the
//! same attachment, and so the same result-cache file.

use std::path::Path;

use ferro_spec::conf::is_valid_identifier;
use ferro_spec::env::validate_ifname;
use ferro_spec::CniError;
use sha2::{Digest, Sha512};

/// Go's `filepath.Clean` on a Unix path: one `/` between elements, no `.` elements, `..`
/// resolved lexically (never above the root), no trailing `/`; `""` becomes `"."`.
pub fn go_clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for elem in path.split('/') {
        match elem {
            "" | "." => {}
            ".." => match parts.last() {
                Some(&last) if last != ".." => {
                    parts.pop();
                }
                _ if rooted => {}
                _ => parts.push(".."),
            },
            e => parts.push(e),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// Go's `filepath.Abs`: a relative path is joined to `cwd`; the result is cleaned.
pub fn go_abs(path: &str, cwd: &Path) -> String {
    if path.starts_with('/') {
        go_clean(path)
    } else {
        go_clean(&format!("{}/{path}", cwd.to_string_lossy()))
    }
}

/// cnitool's container id for a netns path (already absolute):
/// `"cnitool-" + hex(sha512(path))[..20]`.
pub fn cnitool_container_id(abs_netns: &str) -> String {
    let digest = Sha512::digest(abs_netns.as_bytes());
    let hex: String = digest[..10].iter().map(|b| format!("{b:02x}")).collect();
    format!("cnitool-{hex}")
}

/// libcni's checks before running an attachment verb: network name (code 7), container id
/// (empty: code 3; bad characters: code 4), interface name (code 4).
pub fn validate_attachment(
    network: &str,
    container_id: &str,
    ifname: &str,
) -> Result<(), CniError> {
    if network.is_empty() {
        return Err(CniError::invalid_config("missing network name"));
    }
    if !is_valid_identifier(network) {
        return Err(
            CniError::invalid_config("invalid characters found in network name")
                .with_details(network),
        );
    }
    if container_id.is_empty() {
        return Err(CniError::unknown_container("missing containerID"));
    }
    if !is_valid_identifier(container_id) {
        return Err(
            CniError::invalid_env("invalid characters in containerID").with_details(container_id)
        );
    }
    validate_ifname(ifname).map_err(CniError::invalid_env)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_id_equals_cnitool() {
        // Ids cnitool 1.1.2 computed (they name the cache files in testdata/).
        assert_eq!(
            cnitool_container_id("/tmp/cnictl-exp/ns"),
            "cnitool-09f179ca01cd6d66d4b0"
        );
        // cnitool was given `/run/netns/../netns/ctr1`; Abs cleans it first.
        let p = go_abs("/run/netns/../netns/ctr1", Path::new("/"));
        assert_eq!(p, "/run/netns/ctr1");
        assert_eq!(cnitool_container_id(&p), "cnitool-96279096f34b33f944ce");
    }

    #[test]
    fn clean_and_abs_follow_go() {
        for (input, want) in [
            ("", "."),
            ("/", "/"),
            ("//a//b/", "/a/b"),
            ("/a/./b/../c", "/a/c"),
            ("/../a", "/a"),
            ("a/../..", ".."),
            ("../../x", "../../x"),
            ("./", "."),
        ] {
            assert_eq!(go_clean(input), want, "{input:?}");
        }
        assert_eq!(go_abs("ns/x", Path::new("/run/netns")), "/run/netns/ns/x");
        assert_eq!(go_abs("../x", Path::new("/run/netns")), "/run/x");
        assert_eq!(
            go_abs("/proc/1/ns/net", Path::new("/tmp")),
            "/proc/1/ns/net"
        );
    }

    #[test]
    fn attachment_validation_codes() {
        let code =
            |n: &str, c: &str, i: &str| validate_attachment(n, c, i).map_err(|e| e.code.number());
        assert_eq!(code("net", "c1", "eth0"), Ok(()));
        assert_eq!(code("net", "", "eth0"), Err(3));
        assert_eq!(code("net", "bad/id", "eth0"), Err(4));
        assert_eq!(code("net", "c1", ""), Err(4));
        assert_eq!(code("net", "c1", "a/b"), Err(4));
        assert_eq!(code("net", "c1", "averyveryverylongname"), Err(4));
        assert_eq!(code("bad name", "c1", "eth0"), Err(7));
        assert_eq!(code("", "c1", "eth0"), Err(7));
    }
}
