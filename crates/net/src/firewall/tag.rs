//! Attachment tags: who owns a set element or a per-attachment chain.
//!
//! A [`Tag`] is stored as a comment: `<containerID>/<ifname>` on elements of per-network
//! sets, `<network>/<containerID>/<ifname>` on per-attachment chains (and the host-port map
//! elements pointing at them). When a comment would not fit the kernel's userdata (253
//! bytes of comment), or a part contains `/` or starts with `#`, a stable hash form is
//! stored instead (`#<32 hex>`; chains: `<network>/#<32 hex>`, and `#<16 hex>` for an
//! overlong network name) and matched as such. CNI restricts container ids and network
//! names to `[a-zA-Z0-9_.-]`, so the plain form is the normal case.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::nft::MAX_COMMENT_LEN;

/// Longest network name kept in plain form inside a hashed chain comment.
const MAX_PLAIN_NETWORK: usize = 64;

/// One attachment: network name, container id, interface name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tag {
    /// The network (`name` of the network configuration).
    pub network: String,
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_IFNAME`.
    pub ifname: String,
}

fn sha256_hex(s: &str) -> String {
    crate::names::hex(&Sha256::digest(s.as_bytes()))
}

fn plain_ok(s: &str) -> bool {
    !s.is_empty() && !s.contains('/') && !s.starts_with('#') && !s.contains('\0')
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

impl Tag {
    /// A tag.
    pub fn new(
        network: impl Into<String>,
        container_id: impl Into<String>,
        ifname: impl Into<String>,
    ) -> Tag {
        Tag {
            network: network.into(),
            container_id: container_id.into(),
            ifname: ifname.into(),
        }
    }

    /// The attachment of a request (network name, `CNI_CONTAINERID`, `CNI_IFNAME`).
    pub fn of(req: &ferro_spec::Request) -> Tag {
        Tag::new(&req.conf.name, &req.cmd.container_id, &req.cmd.ifname)
    }

    /// `<network>/<containerID>/<ifname>`.
    fn full(&self) -> String {
        format!("{}/{}/{}", self.network, self.container_id, self.ifname)
    }

    fn digest(&self) -> String {
        sha256_hex(&self.full())[..32].to_string()
    }

    /// The comment on elements of per-network sets: `<containerID>/<ifname>`.
    pub fn element_comment(&self) -> String {
        let plain = format!("{}/{}", self.container_id, self.ifname);
        if plain_ok(&self.container_id) && plain_ok(&self.ifname) && plain.len() <= MAX_COMMENT_LEN
        {
            plain
        } else {
            format!("#{}", self.digest())
        }
    }

    /// The comment on per-attachment chains and map elements:
    /// `<network>/<containerID>/<ifname>`.
    pub fn chain_comment(&self) -> String {
        let plain = self.full();
        if plain_ok(&self.network)
            && plain_ok(&self.container_id)
            && plain_ok(&self.ifname)
            && plain.len() <= MAX_COMMENT_LEN
        {
            plain
        } else {
            format!("{}/#{}", network_part(&self.network), self.digest())
        }
    }

    /// `hp-<first 16 hex of sha256("<network>/<containerID>/<ifname>")>`.
    pub fn hostports_chain(&self) -> String {
        format!("hp-{}", &sha256_hex(&self.full())[..16])
    }

    /// Whether a stored comment names this attachment.
    pub fn matches(&self, stored: &StoredTag) -> bool {
        if let Some(n) = &stored.network {
            if !n.is(&self.network) {
                return false;
            }
        }
        match &stored.attachment {
            Attachment::Plain {
                container_id,
                ifname,
            } => *container_id == self.container_id && *ifname == self.ifname,
            Attachment::Hashed(d) => *d == self.digest(),
        }
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full())
    }
}

fn network_part(network: &str) -> String {
    if plain_ok(network) && network.len() <= MAX_PLAIN_NETWORK {
        network.to_string()
    } else {
        format!("#{}", &sha256_hex(network)[..16])
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum NetworkPart {
    Name(String),
    Hash(String),
}

impl NetworkPart {
    fn is(&self, network: &str) -> bool {
        match self {
            NetworkPart::Name(n) => n == network,
            NetworkPart::Hash(h) => *h == sha256_hex(network)[..16],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Attachment {
    Plain {
        container_id: String,
        ifname: String,
    },
    Hashed(String),
}

/// A tag read back from a comment, for GC predicates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTag {
    comment: String,
    network: Option<NetworkPart>,
    attachment: Attachment,
}

impl StoredTag {
    fn parse_attachment(s: &str) -> Option<Attachment> {
        if let Some(d) = s.strip_prefix('#') {
            return is_hex(d, 32).then(|| Attachment::Hashed(d.to_string()));
        }
        let (cid, ifname) = s.split_once('/')?;
        (plain_ok(cid) && plain_ok(ifname)).then(|| Attachment::Plain {
            container_id: cid.to_string(),
            ifname: ifname.to_string(),
        })
    }

    /// Parses an element comment (`<containerID>/<ifname>` or `#<hash>`).
    pub fn parse_element(comment: &str) -> Option<StoredTag> {
        Some(StoredTag {
            comment: comment.to_string(),
            network: None,
            attachment: Self::parse_attachment(comment)?,
        })
    }

    /// Parses a chain comment (`<network>/<containerID>/<ifname>` or a hashed form).
    pub fn parse_chain(comment: &str) -> Option<StoredTag> {
        let (net, rest) = comment.split_once('/')?;
        let network = match net.strip_prefix('#') {
            Some(h) if is_hex(h, 16) => NetworkPart::Hash(h.to_string()),
            Some(_) => return None,
            None if plain_ok(net) => NetworkPart::Name(net.to_string()),
            None => return None,
        };
        Some(StoredTag {
            comment: comment.to_string(),
            network: Some(network),
            attachment: Self::parse_attachment(rest)?,
        })
    }

    /// The comment as stored.
    pub fn comment(&self) -> &str {
        &self.comment
    }

    /// The container id (plain form only).
    pub fn container_id(&self) -> Option<&str> {
        match &self.attachment {
            Attachment::Plain { container_id, .. } => Some(container_id),
            Attachment::Hashed(_) => None,
        }
    }

    /// The interface name (plain form only).
    pub fn ifname(&self) -> Option<&str> {
        match &self.attachment {
            Attachment::Plain { ifname, .. } => Some(ifname),
            Attachment::Hashed(_) => None,
        }
    }

    /// The network name (chain comments with a plain network part).
    pub fn network(&self) -> Option<&str> {
        match &self.network {
            Some(NetworkPart::Name(n)) => Some(n),
            _ => None,
        }
    }

    /// Whether a chain comment belongs to `network` (element comments carry no network:
    /// their set already is per network, and this returns false).
    pub fn is_network(&self, network: &str) -> bool {
        self.network.as_ref().is_some_and(|n| n.is(network))
    }
}

/// A GC predicate from the valid attachments (`cni.dev/valid-attachments`): a stored tag is
/// valid when one of `valid` matches it.
pub fn valid_in(valid: &[Tag]) -> impl Fn(&StoredTag) -> bool + '_ {
    move |s| valid.iter().any(|t| t.matches(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_comments_and_chain_name() {
        let t = Tag::new("kbr", "ctr1", "eth0");
        assert_eq!(t.element_comment(), "ctr1/eth0");
        assert_eq!(t.chain_comment(), "kbr/ctr1/eth0");
        // sha256("kbr/ctr1/eth0"), first 16 hex digits
        assert_eq!(
            t.hostports_chain(),
            format!("hp-{}", &sha256_hex("kbr/ctr1/eth0")[..16])
        );
        assert_eq!(t.hostports_chain().len(), 19);
        let e = StoredTag::parse_element("ctr1/eth0").unwrap();
        assert!(t.matches(&e));
        assert_eq!((e.container_id(), e.ifname()), (Some("ctr1"), Some("eth0")));
        let c = StoredTag::parse_chain("kbr/ctr1/eth0").unwrap();
        assert!(t.matches(&c) && c.is_network("kbr") && !c.is_network("other"));
        assert!(!Tag::new("other", "ctr1", "eth0").matches(&c));
        assert!(!Tag::new("kbr", "ctr1", "eth1").matches(&e));
        assert!(!Tag::new("kbr", "ctr2", "eth0").matches(&c));
    }

    #[test]
    fn overlong_tags_are_stored_hashed_and_still_match() {
        let long = "c".repeat(300);
        let t = Tag::new("kbr", &long, "eth0");
        let e = t.element_comment();
        assert!(e.starts_with('#') && e.len() == 33, "{e}");
        let c = t.chain_comment();
        assert!(c.starts_with("kbr/#") && c.len() <= MAX_COMMENT_LEN, "{c}");
        let (es, cs) = (
            StoredTag::parse_element(&e).unwrap(),
            StoredTag::parse_chain(&c).unwrap(),
        );
        assert!(t.matches(&es) && t.matches(&cs) && cs.is_network("kbr"));
        assert!(!Tag::new("kbr", "c", "eth0").matches(&es));
        assert!(!Tag::new("other", &long, "eth0").matches(&cs));
        assert_eq!(es.container_id(), None);

        // An overlong network name: hashed network part, still attributable.
        let net = "n".repeat(250);
        let t = Tag::new(&net, "ctr", "eth0");
        let c = t.chain_comment();
        assert!(c.starts_with('#') && c.len() < 60, "{c}");
        let cs = StoredTag::parse_chain(&c).unwrap();
        assert!(cs.is_network(&net) && !cs.is_network("n") && t.matches(&cs));
        // Stable: the same tag always gives the same comment.
        assert_eq!(t.chain_comment(), c);
    }

    #[test]
    fn parts_that_would_be_ambiguous_are_hashed() {
        let t = Tag::new("kbr", "a/b", "eth0");
        assert!(t.element_comment().starts_with('#'));
        let t = Tag::new("kbr", "#x", "eth0");
        assert!(t.chain_comment().starts_with("kbr/#"));
    }

    #[test]
    fn foreign_comments_do_not_parse() {
        for c in ["", "x", "/", "a/", "#zz", "#0123"] {
            assert!(StoredTag::parse_element(c).is_none(), "{c}");
        }
        for c in ["kbr", "kbr/x", "#nothex/#0123", "/a/b"] {
            assert!(StoredTag::parse_chain(c).is_none(), "{c}");
        }
    }

    #[test]
    fn valid_in_matches_any_listed_attachment() {
        let valid = [Tag::new("kbr", "a", "eth0"), Tag::new("kbr", "b", "eth0")];
        let p = valid_in(&valid);
        assert!(p(&StoredTag::parse_element("a/eth0").unwrap()));
        assert!(!p(&StoredTag::parse_element("c/eth0").unwrap()));
        assert!(!p(&StoredTag::parse_chain("other/a/eth0").unwrap()));
    }
}
