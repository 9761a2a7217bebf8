//! The pod's network namespace and the netlink runtime of one ADD or CHECK.

use ferro_net::{attach, Kernel, Netns, Rtnl};
use ferro_spec::{CniError, Request};

/// `CNI_NETNS`, opened, and the runtime its connections run on.
#[derive(Debug)]
pub struct Session {
    /// The pod's namespace.
    pub ns: Netns,
    kernel: Kernel,
}

impl Session {
    /// Opens `CNI_NETNS` (code 4 when unset or the plugin's own namespace, 3 when it does
    /// not exist) and starts the netlink runtime.
    pub fn open(req: &Request) -> Result<Session, CniError> {
        let ns = Netns::open_pod(req.netns()?)?;
        let kernel = Kernel::new()?;
        Ok(Session { ns, kernel })
    }

    /// Connections on the node and inside the pod.
    pub fn connect(&self) -> Result<(Rtnl<'_>, Rtnl<'_>), CniError> {
        let host = self.kernel.connect(None)?;
        let pod = self.kernel.connect(Some(&self.ns))?;
        Ok((host, pod))
    }

    /// ADD's connections, once `ifname` is known to be free in the pod (code 7 otherwise;
    /// checked before IPAM, so a refused ADD allocates nothing).
    pub fn connect_for_add(&self, ifname: &str) -> Result<(Rtnl<'_>, Rtnl<'_>), CniError> {
        let (host, pod) = self.connect()?;
        attach::ensure_ifname_free(&pod, &self.ns, ifname)?;
        Ok((host, pod))
    }

    /// The namespace as results name it (`interfaces[].sandbox`).
    pub fn sandbox(&self) -> String {
        self.ns.path().display().to_string()
    }
}
