//! Detached veth pairs: an attachment's pair taken out of service at once and deleted later,
//! many at a time.
//!
//! Deleting a veth pair makes the kernel wait for RCU grace periods (`unregister_netdevice`),
//! 15–25 ms per request on a small VM, while deleting a whole link group in one request
//! (`ip link del group N`) waits about as long for any number of links. So a DEL with a
//! node agent only detaches the pair ([`Rtnl::link_detach`]): the end is set down (which
//! drops its routes and neighbours), leaves its bridge, and is renamed to
//! [`detached_name`] and marked (group [`DETACHED_GROUP`], alias [`DETACHED_ALIAS`]), which
//! frees its name for the next attachment at once. The agent then deletes every detached
//! link of the node in one request ([`Rtnl::reap_detached`]); it deletes nothing that does
//! not carry all three marks ([`is_detached`]).

use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::RouteNetlinkMessage;

use super::{Link, Rtnl};
use crate::error::NetError;

/// Name prefix of a detached link (followed by its ifindex in hex: at most 15 characters,
/// unique in its namespace while the link exists).
pub const DETACHED_PREFIX: &str = "fdetach";
/// Link group of detached links (`ip link show group 4268559841`).
pub const DETACHED_GROUP: u32 = 0xfe6d_0de1;
/// Alias of a detached link.
pub const DETACHED_ALIAS: &str = "ferro-cni detached, deleted by ferro-agent";

/// The name a detached link with ifindex `index` takes.
pub fn detached_name(index: u32) -> String {
    format!("{DETACHED_PREFIX}{index:x}")
}

/// Whether `l` is a link ferro-cni detached: the name prefix, the group and the alias.
pub fn is_detached(l: &Link) -> bool {
    l.name.starts_with(DETACHED_PREFIX)
        && l.group == DETACHED_GROUP
        && l.alias.as_deref() == Some(DETACHED_ALIAS)
}

/// What [`Rtnl::reap_detached`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reaped {
    /// Detached links deleted.
    pub deleted: Vec<String>,
    /// Links of the detached group that lack the other marks: left alone.
    pub foreign: Vec<String>,
}

impl Rtnl<'_> {
    /// Detaches the link at `index` (see the module): down, out of its master, renamed
    /// [`detached_name`], marked. Addresses are not touched: set them aside first where
    /// they would outlive the link's use ([`Rtnl::addrs`], [`Rtnl::addr_del`]). Two requests:
    /// a link must be down before it is renamed (kernels before 6.2). `Ok(false)` when the
    /// link is gone.
    pub fn link_detach(&self, index: u32) -> Result<bool, NetError> {
        let gone = |r: Result<(), NetError>| match r {
            Ok(()) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        };
        if !gone(self.link_set_flag(
            index,
            LinkFlags::Up,
            false,
            vec![LinkAttribute::Controller(0)],
            format!("set link #{index} down nomaster"),
        ))? {
            return Ok(false);
        }
        let name = detached_name(index);
        let mut m = LinkMessage::default();
        m.header.index = index;
        m.attributes = vec![
            LinkAttribute::IfName(name.clone()),
            LinkAttribute::Group(DETACHED_GROUP),
            LinkAttribute::IfAlias(DETACHED_ALIAS.to_string()),
        ];
        gone(self.ack(
            format!(
                "set link #{index} name {name} group {DETACHED_GROUP} alias ... ({})",
                self.place
            ),
            RouteNetlinkMessage::SetLink(m),
            0,
        ))
    }

    /// The detached links of this namespace.
    pub fn detached_links(&self) -> Result<Vec<Link>, NetError> {
        Ok(self.links()?.into_iter().filter(is_detached).collect())
    }

    /// Deletes every detached link of this namespace (a veth takes its peer along, in
    /// whatever namespace). When every link of [`DETACHED_GROUP`] carries all the marks, in
    /// one request (`ip link del group N`: the kernel unregisters them together and waits
    /// for the grace periods once); otherwise the marked ones one by one, and the others
    /// are left alone and named in the answer.
    pub fn reap_detached(&self) -> Result<Reaped, NetError> {
        let group: Vec<Link> = self
            .links()?
            .into_iter()
            .filter(|l| l.group == DETACHED_GROUP)
            .collect();
        let (ours, foreign): (Vec<Link>, Vec<Link>) = group.into_iter().partition(is_detached);
        let mut r = Reaped {
            deleted: ours.iter().map(|l| l.name.clone()).collect(),
            foreign: foreign.into_iter().map(|l| l.name).collect(),
        };
        if ours.is_empty() {
            return Ok(r);
        }
        if r.foreign.is_empty() {
            let mut m = LinkMessage::default();
            m.attributes.push(LinkAttribute::Group(DETACHED_GROUP));
            match self.ack(
                format!("delete link group {DETACHED_GROUP} ({})", self.place),
                RouteNetlinkMessage::DelLink(m),
                0,
            ) {
                Ok(()) => return Ok(r),
                // raced with another reaper: nothing of the group is left
                Err(e) if e.is_not_found() => return Ok(r),
                Err(e) => return Err(e),
            }
        }
        r.deleted.clear();
        for l in ours {
            if self.link_del(l.index)? {
                r.deleted.push(l.name);
            }
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_and_marks_are_all_required() {
        assert_eq!(detached_name(0x1a2), "fdetach1a2");
        assert!(detached_name(u32::MAX).len() <= 15);
        let l = Link {
            name: detached_name(7),
            group: DETACHED_GROUP,
            alias: Some(DETACHED_ALIAS.to_string()),
            ..Link::default()
        };
        assert!(is_detached(&l));
        for other in [
            Link {
                name: "eth0".into(),
                ..l.clone()
            },
            Link {
                group: 0,
                ..l.clone()
            },
            Link {
                alias: None,
                ..l.clone()
            },
            Link {
                alias: Some("mine".into()),
                ..l.clone()
            },
        ] {
            assert!(!is_detached(&other), "{other:?}");
        }
    }
}
