//! An in-memory store for the allocator's unit tests, with failure injection and a scan
//! counter (to prove the normal paths do not scan).

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::IpAddr;

use ferro_spec::Attachment;

use crate::error::IpamError;
use crate::store::{lease_name, Lease, Owner, Store, StoreMut};

#[derive(Debug, Default)]
pub(crate) struct FakeStore {
    /// Lease file name -> content.
    pub leases: BTreeMap<String, Vec<u8>>,
    pub last: HashMap<usize, IpAddr>,
    pub index: HashMap<Attachment, Vec<IpAddr>>,
    /// Stale temporary files present.
    pub temps: usize,
    pub sweeps: usize,
    pub scans: Cell<usize>,
    pub fail_reserve_at: Option<IpAddr>,
    pub fail_record: bool,
    /// Simulated crash (a panic: no rollback runs) right after reserving this address.
    pub crash_after_reserve: Option<IpAddr>,
    /// Simulated crash before the index entry is written.
    pub crash_in_record: bool,
}

impl FakeStore {
    pub fn put(&mut self, name: &str, content: &[u8]) {
        self.leases.insert(name.to_string(), content.to_vec());
    }

    pub fn owner_of(&self, name: &str) -> Option<Owner> {
        self.leases.get(name).map(|c| Owner::parse(c))
    }
}

fn enospc(what: &str) -> IpamError {
    IpamError::io("writing", what.to_string())(io::Error::from_raw_os_error(28))
}

impl Store for FakeStore {
    fn owner(&self, ip: IpAddr) -> Result<Option<Owner>, IpamError> {
        Ok(self.owner_of(&lease_name(ip)))
    }

    fn last_reserved(&self, set: usize) -> Result<Option<IpAddr>, IpamError> {
        Ok(self.last.get(&set).copied())
    }

    fn index(&self, att: &Attachment) -> Result<Option<Vec<IpAddr>>, IpamError> {
        Ok(self.index.get(att).cloned())
    }

    fn indexed(&self) -> Result<Vec<Attachment>, IpamError> {
        Ok(self.index.keys().cloned().collect())
    }

    fn scan(&self) -> Result<Vec<Lease>, IpamError> {
        self.scans.set(self.scans.get() + 1);
        Ok(self
            .leases
            .iter()
            .filter_map(|(name, content)| {
                Some(Lease {
                    ip: name.parse().ok()?,
                    name: name.clone(),
                    owner: Owner::parse(content),
                })
            })
            .collect())
    }
}

impl StoreMut for FakeStore {
    fn reserve(&mut self, ip: IpAddr, att: &Attachment, set: usize) -> Result<bool, IpamError> {
        if self.fail_reserve_at == Some(ip) {
            return Err(enospc(&lease_name(ip)));
        }
        let name = lease_name(ip);
        if matches!(self.owner_of(&name), Some(o) if o != Owner::Empty) {
            return Ok(false);
        }
        self.leases
            .insert(name, crate::store::lease_content(att).into_bytes());
        self.last.insert(set, ip);
        if self.crash_after_reserve == Some(ip) {
            panic!("simulated crash after reserving {ip}");
        }
        Ok(true)
    }

    fn release(&mut self, name: &str) -> Result<(), IpamError> {
        self.leases.remove(name);
        Ok(())
    }

    fn record(&mut self, att: &Attachment, ips: &[IpAddr]) -> Result<(), IpamError> {
        if self.fail_record {
            return Err(enospc("index"));
        }
        if self.crash_in_record {
            panic!("simulated crash before writing the index");
        }
        self.index.insert(att.clone(), ips.to_vec());
        Ok(())
    }

    fn forget(&mut self, att: &Attachment) -> Result<(), IpamError> {
        self.index.remove(att);
        Ok(())
    }

    fn sweep(&mut self) -> Result<usize, IpamError> {
        self.sweeps += 1;
        Ok(std::mem::take(&mut self.temps))
    }
}
