//! The on-disk store, file-compatible with the reference host-local plugin: one lease file
//! per address, round-robin cursors and `lock` as the reference writes them, plus a verified
//! per-attachment index; crash-safe without `fsync`. The layout, the crash-safety argument and
//! why the reference never mistakes the index for a lease: [the plugin's README][layout].
//!
//! [layout]: ../../../plugins/host-local/README.md#on-disk-layout-and-compatibility-with-the-reference-plugin

use std::cell::Cell;
use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind, Write};
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use ferro_spec::Attachment;

use crate::error::IpamError;
use crate::store::{lease_content, lease_name, Lease, Owner, Store, StoreMut};

/// Name of the lock file (shared with the reference plugin).
pub const LOCK_FILE: &str = "lock";
/// Prefix of the round-robin cursor files (shared with the reference plugin).
pub const LAST_RESERVED_PREFIX: &str = "last_reserved_ip.";
/// Name of the index directory.
pub const INDEX_DIR: &str = ".ferro-index";
/// Prefix of temporary files in the network directory.
pub const TMP_PREFIX: &str = ".ferro-tmp-";
const INDEX_TMP_PREFIX: &str = ".tmp-";
const INDEX_HEADER: &str = "ferro-ipam attachment index v1";
const LEASE_MODE: u32 = 0o644;
/// Longest index file name used as is; longer keys are hashed.
const MAX_PLAIN_INDEX_NAME: usize = 200;

/// The leases of one network: `<dataDir>/<network>/`.
#[derive(Debug)]
pub struct DiskStore {
    dir: PathBuf,
    scans: Cell<usize>,
}

impl DiskStore {
    /// The store of `network` under `data_dir`. Nothing is created or opened yet.
    pub fn new(data_dir: &Path, network: &str) -> Self {
        DiskStore {
            dir: data_dir.join(network),
            scans: Cell::new(0),
        }
    }

    /// The network directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// True when the network directory exists (a missing one holds no lease).
    pub fn exists(&self) -> bool {
        self.dir.is_dir()
    }

    /// Creates the network directory (mode 0755) and its parents if needed.
    pub fn create(&self) -> Result<(), IpamError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&self.dir)
            .map_err(IpamError::io("creating data directory", &self.dir))
    }

    /// Takes the network's lock (`flock` on `lock`, the reference's lock), waiting for any
    /// other allocation or release to finish. The lock is released when the guard drops.
    pub fn lock(&self) -> Result<Locked<'_>, IpamError> {
        let path = self.dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(&path)
            .map_err(IpamError::io("opening lock", &path))?;
        file.lock().map_err(IpamError::io("locking", &path))?;
        Ok(Locked {
            store: self,
            _lock: file,
        })
    }

    /// How many full directory scans this handle has made (for logs and tests).
    pub fn scan_count(&self) -> usize {
        self.scans.get()
    }

    fn lease_path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn index_dir(&self) -> PathBuf {
        self.dir.join(INDEX_DIR)
    }

    fn index_path(&self, att: &Attachment) -> PathBuf {
        self.index_dir().join(index_name(att))
    }
}

/// The index file name of `att`: `<containerID>:<ifname>`, or a hash of it when that is too
/// long or not a plain file name.
pub fn index_name(att: &Attachment) -> String {
    let plain = format!("{}:{}", att.container_id, att.ifname);
    if plain.len() <= MAX_PLAIN_INDEX_NAME
        && !plain.starts_with('.')
        && !plain.contains(['/', '\0'])
    {
        plain
    } else {
        format!(
            "#{:016x}{:016x}",
            fnv1a(plain.as_bytes(), 0xcbf2_9ce4_8422_2325),
            fnv1a(plain.as_bytes(), 0x8422_2325_cbf2_9ce4)
        )
    }
}

fn fnv1a(bytes: &[u8], seed: u64) -> u64 {
    bytes.iter().fold(seed, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The index file content for `att` and `ips`.
pub fn index_content(att: &Attachment, ips: &[IpAddr]) -> String {
    let mut s = format!(
        "{INDEX_HEADER}\ncontainer {}\nifname {}\n",
        att.container_id, att.ifname
    );
    for ip in ips {
        s.push_str(&ip.to_string());
        s.push('\n');
    }
    s
}

/// Parses index content: the attachment and its addresses; `None` when malformed.
fn parse_index(content: &str) -> Option<(Attachment, Vec<IpAddr>)> {
    let mut lines = content.lines();
    if lines.next()? != INDEX_HEADER {
        return None;
    }
    let container_id = lines.next()?.strip_prefix("container ")?.to_string();
    let ifname = lines.next()?.strip_prefix("ifname ")?.to_string();
    let ips = lines
        .filter(|l| !l.is_empty())
        .map(|l| l.parse::<IpAddr>().ok())
        .collect::<Option<Vec<_>>>()?;
    Some((
        Attachment {
            container_id,
            ifname,
        },
        ips,
    ))
}

fn not_found(e: &io::Error) -> bool {
    e.kind() == ErrorKind::NotFound
}

/// Removes `path`; a missing file is success.
fn remove_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if !not_found(&e) => Err(e),
        _ => Ok(()),
    }
}

/// Writes `bytes` to a fresh file at `path`. A file already there is unlinked first, never
/// truncated: a stale temporary file may be a second name of a live lease.
fn write_fresh(path: &Path, bytes: &[u8]) -> io::Result<()> {
    remove_if_exists(path)?;
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(LEASE_MODE)
            .open(path)?;
        f.write_all(bytes)?;
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(path);
    }
    result
}

impl Store for DiskStore {
    fn owner(&self, ip: IpAddr) -> Result<Option<Owner>, IpamError> {
        let path = self.lease_path(&lease_name(ip));
        match fs::read(&path) {
            Ok(content) => Ok(Some(Owner::parse(&content))),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(IpamError::io("reading lease", path)(e)),
        }
    }

    fn last_reserved(&self, set: usize) -> Result<Option<IpAddr>, IpamError> {
        let path = self.dir.join(format!("{LAST_RESERVED_PREFIX}{set}"));
        match fs::read_to_string(&path) {
            Ok(s) => match s.trim().parse::<IpAddr>() {
                Ok(ip) => Ok(Some(ip.to_canonical())),
                Err(_) => {
                    log::warn!("ignoring {}: not an address: {s:?}", path.display());
                    Ok(None)
                }
            },
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => {
                log::warn!("ignoring {}: {e}", path.display());
                Ok(None)
            }
        }
    }

    fn index(&self, att: &Attachment) -> Result<Option<Vec<IpAddr>>, IpamError> {
        let path = self.index_path(att);
        let content = match fs::read_to_string(&path) {
            Ok(c) => c,
            Err(e) if not_found(&e) => return Ok(None),
            Err(e) if e.kind() == ErrorKind::InvalidData => return Ok(Some(Vec::new())),
            Err(e) => return Err(IpamError::io("reading index", path)(e)),
        };
        match parse_index(&content) {
            Some((owner, ips)) if owner == *att => Ok(Some(ips)),
            // Another attachment's entry under a colliding hashed name.
            Some(_) => Ok(None),
            // Malformed: present but useless, so callers scan (and ADD replaces it).
            None => Ok(Some(Vec::new())),
        }
    }

    fn indexed(&self) -> Result<Vec<Attachment>, IpamError> {
        let dir = self.index_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if not_found(&e) => return Ok(Vec::new()),
            Err(e) => return Err(IpamError::io("reading index directory", dir)(e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(IpamError::io("reading index directory", &dir))?;
            let name = entry.file_name();
            if name.to_string_lossy().starts_with(INDEX_TMP_PREFIX) {
                continue;
            }
            if let Ok(content) = fs::read_to_string(entry.path()) {
                if let Some((att, _)) = parse_index(&content) {
                    out.push(att);
                }
            }
        }
        Ok(out)
    }

    fn scan(&self) -> Result<Vec<Lease>, IpamError> {
        self.scans.set(self.scans.get() + 1);
        log::debug!("scanning {}", self.dir.display());
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if not_found(&e) => return Ok(Vec::new()),
            Err(e) => return Err(IpamError::io("reading data directory", &self.dir)(e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(IpamError::io("reading data directory", &self.dir))?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            let Ok(ip) = name.parse::<IpAddr>() else {
                continue;
            };
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            match fs::read(entry.path()) {
                Ok(content) => out.push(Lease {
                    ip: ip.to_canonical(),
                    name,
                    owner: Owner::parse(&content),
                }),
                Err(e) if not_found(&e) => {}
                Err(e) => return Err(IpamError::io("reading lease", entry.path())(e)),
            }
        }
        Ok(out)
    }
}

/// The store with its lock held: the only way to change leases.
#[derive(Debug)]
pub struct Locked<'a> {
    store: &'a DiskStore,
    _lock: File,
}

impl Locked<'_> {
    fn tmp_path(&self) -> PathBuf {
        self.store
            .dir
            .join(format!("{TMP_PREFIX}{}", std::process::id()))
    }

    fn write_cursor(&self, set: usize, ip: IpAddr) -> Result<(), IpamError> {
        let path = self.store.dir.join(format!("{LAST_RESERVED_PREFIX}{set}"));
        let tmp = self.tmp_path();
        let result =
            write_fresh(&tmp, ip.to_string().as_bytes()).and_then(|()| fs::rename(&tmp, &path));
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.map_err(IpamError::io("writing round-robin cursor", path))
    }
}

impl Store for Locked<'_> {
    fn owner(&self, ip: IpAddr) -> Result<Option<Owner>, IpamError> {
        self.store.owner(ip)
    }

    fn last_reserved(&self, set: usize) -> Result<Option<IpAddr>, IpamError> {
        self.store.last_reserved(set)
    }

    fn index(&self, att: &Attachment) -> Result<Option<Vec<IpAddr>>, IpamError> {
        self.store.index(att)
    }

    fn indexed(&self) -> Result<Vec<Attachment>, IpamError> {
        self.store.indexed()
    }

    fn scan(&self) -> Result<Vec<Lease>, IpamError> {
        self.store.scan()
    }
}

impl StoreMut for Locked<'_> {
    fn reserve(&mut self, ip: IpAddr, att: &Attachment, set: usize) -> Result<bool, IpamError> {
        let path = self.store.lease_path(&lease_name(ip));
        match fs::read(&path) {
            Ok(content) if Owner::parse(&content) == Owner::Empty => {
                log::warn!(
                    "reclaiming {}: an empty lease file left by a crashed writer",
                    path.display()
                );
                remove_if_exists(&path).map_err(IpamError::io("removing empty lease", &path))?;
            }
            Ok(_) => return Ok(false),
            Err(e) if not_found(&e) => {}
            Err(e) => return Err(IpamError::io("reading lease", path)(e)),
        }
        let tmp = self.tmp_path();
        write_fresh(&tmp, lease_content(att).as_bytes())
            .map_err(IpamError::io("writing lease", &path))?;
        let linked = fs::hard_link(&tmp, &path);
        if let Err(e) = fs::remove_file(&tmp) {
            log::warn!("removing {}: {e}", tmp.display());
        }
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(false),
            Err(e) => return Err(IpamError::io("linking lease", path)(e)),
        }
        if let Err(e) = self.write_cursor(set, ip) {
            let _ = fs::remove_file(&path);
            return Err(e);
        }
        Ok(true)
    }

    fn release(&mut self, name: &str) -> Result<(), IpamError> {
        if name.parse::<IpAddr>().is_err() {
            return Err(
                IpamError::io("removing lease", self.store.lease_path(name))(io::Error::new(
                    ErrorKind::InvalidInput,
                    "not a lease file name",
                )),
            );
        }
        let path = self.store.lease_path(name);
        remove_if_exists(&path).map_err(IpamError::io("removing lease", path))
    }

    fn record(&mut self, att: &Attachment, ips: &[IpAddr]) -> Result<(), IpamError> {
        let dir = self.store.index_dir();
        match fs::DirBuilder::new().mode(0o755).create(&dir) {
            Err(e) if e.kind() != ErrorKind::AlreadyExists => {
                return Err(IpamError::io("creating index directory", dir)(e))
            }
            _ => {}
        }
        let path = self.store.index_path(att);
        let tmp = dir.join(format!("{INDEX_TMP_PREFIX}{}", std::process::id()));
        // Not synced: after a power loss the entry may be missing or empty, which a reader
        // treats as "no entry" or "corrupt entry" and answers with a scan.
        let result = write_fresh(&tmp, index_content(att, ips).as_bytes())
            .and_then(|()| fs::rename(&tmp, &path));
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.map_err(IpamError::io("writing index", path))
    }

    fn forget(&mut self, att: &Attachment) -> Result<(), IpamError> {
        let path = self.store.index_path(att);
        remove_if_exists(&path).map_err(IpamError::io("removing index", path))?;
        // Leave a fully released network as the reference would (fails while not empty).
        let _ = fs::remove_dir(self.store.index_dir());
        Ok(())
    }

    fn sweep(&mut self) -> Result<usize, IpamError> {
        let mut removed = 0;
        for (dir, prefix) in [
            (self.store.dir.clone(), TMP_PREFIX),
            (self.store.index_dir(), INDEX_TMP_PREFIX),
        ] {
            let entries = match fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if not_found(&e) => continue,
                Err(e) => return Err(IpamError::io("reading directory", dir)(e)),
            };
            for entry in entries {
                let entry = entry.map_err(IpamError::io("reading directory", &dir))?;
                let name = entry.file_name();
                let name = name.to_string_lossy();
                let stale = name.starts_with(prefix)
                    || (prefix == INDEX_TMP_PREFIX
                        && fs::read_to_string(entry.path())
                            .ok()
                            .and_then(|c| parse_index(&c))
                            .is_none());
                if stale {
                    log::info!("removing stale {}", entry.path().display());
                    remove_if_exists(&entry.path())
                        .map_err(IpamError::io("removing stale file", entry.path()))?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::allocator::{allocate, find_leases, gc, release};
    use crate::config::IpamConfig;
    use ferro_spec::Version;
    use serde_json::json;
    use std::os::unix::fs::MetadataExt;
    use std::sync::{Arc, Barrier};
    use std::time::{Duration, Instant};

    fn att(id: &str) -> Attachment {
        Attachment {
            container_id: id.into(),
            ifname: "eth0".into(),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn conf(ranges: serde_json::Value) -> IpamConfig {
        IpamConfig::parse(&json!({ "ranges": ranges }), None, Version::V1_0_0).unwrap()
    }

    fn store() -> (tempfile::TempDir, DiskStore) {
        let tmp = tempfile::tempdir().unwrap();
        let s = DiskStore::new(tmp.path(), "net1");
        s.create().unwrap();
        (tmp, s)
    }

    fn names(s: &DiskStore) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(s.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn files_are_byte_for_byte_the_reference_ones() {
        let (_t, s) = store();
        let c = conf(json!([[{"subnet": "10.22.0.0/24"}], [{"subnet": "fd00:0:0:1::/64"}]]));
        allocate(&mut s.lock().unwrap(), &c, &att("ctr1"), &[]).unwrap();
        assert_eq!(
            fs::read(s.dir().join("10.22.0.2")).unwrap(),
            b"ctr1\r\neth0"
        );
        assert_eq!(
            fs::read(s.dir().join("fd00:0:0:1::2")).unwrap(),
            b"ctr1\r\neth0"
        );
        assert_eq!(
            fs::read(s.dir().join("last_reserved_ip.0")).unwrap(),
            b"10.22.0.2"
        );
        assert_eq!(
            fs::read(s.dir().join("last_reserved_ip.1")).unwrap(),
            b"fd00:0:0:1::2"
        );
        assert_eq!(fs::metadata(s.dir().join("lock")).unwrap().len(), 0);
        assert_eq!(
            fs::metadata(s.dir().join("10.22.0.2")).unwrap().mode() & 0o777,
            0o644
        );
        assert_eq!(
            names(&s),
            [
                ".ferro-index",
                "10.22.0.2",
                "fd00:0:0:1::2",
                "last_reserved_ip.0",
                "last_reserved_ip.1",
                "lock"
            ],
            "no temporary file is left behind"
        );
    }

    #[test]
    fn the_index_never_looks_like_a_lease() {
        let (_t, s) = store();
        let c = conf(json!([[{"subnet": "10.22.0.0/24"}]]));
        allocate(&mut s.lock().unwrap(), &c, &att("ctr1"), &[]).unwrap();
        let path = s.dir().join(INDEX_DIR).join("ctr1:eth0");
        let content = fs::read_to_string(&path).unwrap();
        assert_eq!(
            content,
            "ferro-ipam attachment index v1\ncontainer ctr1\nifname eth0\n10.22.0.2\n"
        );
        // The reference compares TrimSpace(content) with "<id>\r\n<ifname>" and "<id>".
        assert_ne!(content.trim(), "ctr1\r\neth0");
        assert_ne!(content.trim(), "ctr1");
        assert!("ctr1:eth0".parse::<IpAddr>().is_err());
        assert_eq!(s.index(&att("ctr1")).unwrap(), Some(vec![ip("10.22.0.2")]));
        assert_eq!(s.indexed().unwrap(), [att("ctr1")]);
    }

    #[test]
    fn long_attachment_keys_are_hashed_and_verified() {
        let long = Attachment {
            container_id: "a".repeat(300),
            ifname: "eth0".into(),
        };
        let name = index_name(&long);
        assert!(name.starts_with('#') && name.len() == 33, "{name}");
        assert_ne!(name, index_name(&att("a")));
        let (_t, s) = store();
        let c = conf(json!([[{"subnet": "10.22.0.0/24"}]]));
        allocate(&mut s.lock().unwrap(), &c, &long, &[]).unwrap();
        assert_eq!(s.index(&long).unwrap(), Some(vec![ip("10.22.0.2")]));
        // A colliding name holding another attachment's entry reads as "no entry".
        fs::write(
            s.dir().join(INDEX_DIR).join(&name),
            index_content(&att("other"), &[ip("10.22.0.9")]),
        )
        .unwrap();
        assert_eq!(s.index(&long).unwrap(), None);
    }

    #[test]
    fn reserve_refuses_a_taken_address_and_leaves_no_temp() {
        let (_t, s) = store();
        let mut l = s.lock().unwrap();
        assert!(l.reserve(ip("10.0.0.5"), &att("a"), 0).unwrap());
        assert!(!l.reserve(ip("10.0.0.5"), &att("b"), 0).unwrap());
        assert_eq!(fs::read(s.dir().join("10.0.0.5")).unwrap(), b"a\r\neth0");
        assert!(!names(&s).iter().any(|n| n.starts_with(TMP_PREFIX)));
    }

    #[test]
    fn crash_leftovers_never_block_an_address() {
        let (_t, s) = store();
        let c = conf(json!([[{"subnet": "10.0.0.0/29"}]]));
        // The reference crashed between O_EXCL create and write (empty), or left blanks.
        fs::write(s.dir().join("10.0.0.2"), b"").unwrap();
        fs::write(s.dir().join("10.0.0.3"), b" \r\n").unwrap();
        // Our own writer died after writing its temporary file, before linking it.
        fs::write(s.dir().join(format!("{TMP_PREFIX}999999")), b"dead\r\neth0").unwrap();
        let mut l = s.lock().unwrap();
        let a = allocate(&mut l, &c, &att("a"), &[]).unwrap();
        assert_eq!(
            a[0].address.addr(),
            ip("10.0.0.2"),
            "the empty lease is reclaimed"
        );
        let b = allocate(&mut l, &c, &att("b"), &[]).unwrap();
        assert_eq!(b[0].address.addr(), ip("10.0.0.3"));
        assert_eq!(fs::read(s.dir().join("10.0.0.3")).unwrap(), b"b\r\neth0");
        // A scan under the lock (a DEL without an index entry) sweeps the dead temp file.
        release(&mut l, &c, &att("nobody"), &[]).unwrap();
        assert!(
            !names(&s).iter().any(|n| n.starts_with(TMP_PREFIX)),
            "{:?}",
            names(&s)
        );
    }

    #[test]
    fn a_stale_temp_that_is_a_second_name_of_a_lease_is_never_truncated() {
        let (_t, s) = store();
        let mut l = s.lock().unwrap();
        assert!(l.reserve(ip("10.0.0.5"), &att("a"), 0).unwrap());
        // A writer with our pid died between link() and unlink(): the temp is the lease.
        let tmp = l.tmp_path();
        fs::hard_link(s.dir().join("10.0.0.5"), &tmp).unwrap();
        assert!(l.reserve(ip("10.0.0.6"), &att("b"), 0).unwrap());
        assert_eq!(fs::read(s.dir().join("10.0.0.5")).unwrap(), b"a\r\neth0");
        assert_eq!(fs::read(s.dir().join("10.0.0.6")).unwrap(), b"b\r\neth0");
        assert!(!tmp.exists());
    }

    #[test]
    fn legacy_id_only_leases_are_read_released_and_kept_by_gc() {
        let (_t, s) = store();
        let c = conf(json!([[{"subnet": "10.0.0.0/24"}]]));
        fs::write(s.dir().join("10.0.0.7"), b"old1").unwrap();
        fs::write(s.dir().join("10.0.0.8"), b"old2").unwrap();
        assert_eq!(
            s.owner(ip("10.0.0.7")).unwrap(),
            Some(Owner::Legacy("old1".into()))
        );
        let mut l = s.lock().unwrap();
        assert_eq!(
            release(&mut l, &c, &att("old1"), &[]).unwrap(),
            [ip("10.0.0.7")]
        );
        let valid = [Attachment {
            container_id: "old2".into(),
            ifname: "net1".into(),
        }];
        assert!(gc(&mut l, &valid).unwrap().released.is_empty());
        assert!(s.dir().join("10.0.0.8").exists());
        assert_eq!(gc(&mut l, &[]).unwrap().released, ["10.0.0.8"]);
    }

    #[test]
    fn scans_see_only_leases() {
        let (_t, s) = store();
        let mut l = s.lock().unwrap();
        l.reserve(ip("10.0.0.5"), &att("a"), 0).unwrap();
        l.record(&att("a"), &[ip("10.0.0.5")]).unwrap();
        fs::create_dir(s.dir().join("10.0.0.9")).unwrap();
        fs::write(s.dir().join("notes.txt"), b"a\r\neth0").unwrap();
        let leases = l.scan().unwrap();
        assert_eq!(leases.len(), 1);
        assert_eq!(
            (leases[0].name.as_str(), &leases[0].owner),
            ("10.0.0.5", &Owner::Attachment(att("a")))
        );
        // GC keeps lock, cursor and foreign files.
        gc(&mut l, &[]).unwrap();
        assert_eq!(
            names(&s),
            ["10.0.0.9", "last_reserved_ip.0", "lock", "notes.txt"]
        );
        assert!(s.indexed().unwrap().is_empty());
    }

    #[test]
    fn non_canonical_lease_names_are_released_under_their_own_name() {
        let (_t, s) = store();
        fs::write(s.dir().join("fd00:0::5"), b"a\r\neth0").unwrap();
        let c = conf(json!([[{"subnet": "fd00::/64"}]]));
        let mut l = s.lock().unwrap();
        assert_eq!(
            release(&mut l, &c, &att("a"), &[]).unwrap(),
            [ip("fd00::5")]
        );
        assert!(!s.dir().join("fd00:0::5").exists());
        assert!(
            l.release("lock").is_err(),
            "only lease names can be released"
        );
    }

    #[test]
    fn del_uses_the_index_and_a_missing_or_stale_one_costs_a_scan() {
        let (_t, s) = store();
        let c = conf(json!([[{"subnet": "10.0.0.0/16"}]]));
        let mut l = s.lock().unwrap();
        for i in 0..50 {
            allocate(&mut l, &c, &att(&format!("c{i}")), &[]).unwrap();
        }
        assert_eq!(s.scan_count(), 0, "ADD does not scan");
        assert_eq!(
            release(&mut l, &c, &att("c7"), &[]).unwrap(),
            [ip("10.0.0.9")]
        );
        assert_eq!(s.scan_count(), 0, "DEL with an index entry does not scan");
        // Missing entry (leases from the reference plugin): prevResult hints, else a scan.
        fs::remove_file(s.dir().join(INDEX_DIR).join("c8:eth0")).unwrap();
        assert_eq!(
            release(&mut l, &c, &att("c8"), &[ip("10.0.0.10")])
                .unwrap()
                .len(),
            1
        );
        assert_eq!(s.scan_count(), 0);
        fs::remove_file(s.dir().join(INDEX_DIR).join("c9:eth0")).unwrap();
        assert_eq!(
            release(&mut l, &c, &att("c9"), &[]).unwrap(),
            [ip("10.0.0.11")]
        );
        assert_eq!(s.scan_count(), 1);
        // Stale entry: the lease was released by someone else and re-leased.
        fs::write(s.dir().join("10.0.0.12"), b"intruder\r\neth0").unwrap();
        assert!(release(&mut l, &c, &att("c10"), &[]).unwrap().is_empty());
        assert_eq!(
            fs::read(s.dir().join("10.0.0.12")).unwrap(),
            b"intruder\r\neth0"
        );
        // Corrupt entry: treated as present but useless.
        fs::write(s.dir().join(INDEX_DIR).join("c11:eth0"), b"garbage").unwrap();
        let f = find_leases(&l, &c, &att("c11"), &[]).unwrap();
        assert_eq!((f.leases.len(), f.scanned), (1, true));
        // ADD replaces a corrupt entry instead of trusting it.
        fs::write(s.dir().join(INDEX_DIR).join("c99:eth0"), b"garbage").unwrap();
        allocate(&mut l, &c, &att("c99"), &[]).unwrap();
        assert_eq!(s.index(&att("c99")).unwrap().map(|v| v.len()), Some(1));
    }

    #[test]
    fn sweep_removes_temps_and_corrupt_index_files_only() {
        let (_t, s) = store();
        let mut l = s.lock().unwrap();
        l.record(&att("a"), &[ip("10.0.0.5")]).unwrap();
        fs::write(s.dir().join(format!("{TMP_PREFIX}1")), b"x").unwrap();
        fs::write(s.dir().join(INDEX_DIR).join(".tmp-1"), b"x").unwrap();
        fs::write(s.dir().join(INDEX_DIR).join("b:eth0"), b"x").unwrap();
        assert_eq!(l.sweep().unwrap(), 3);
        assert_eq!(s.indexed().unwrap(), [att("a")]);
        assert_eq!(names(&s), [".ferro-index", "lock"]);
    }

    #[test]
    fn a_cursor_that_is_garbage_is_ignored() {
        let (_t, s) = store();
        fs::write(s.dir().join("last_reserved_ip.0"), b"not an ip").unwrap();
        assert_eq!(s.last_reserved(0).unwrap(), None);
        fs::write(s.dir().join("last_reserved_ip.0"), b"10.0.0.9\n").unwrap();
        assert_eq!(s.last_reserved(0).unwrap(), Some(ip("10.0.0.9")));
        assert_eq!(s.last_reserved(1).unwrap(), None);
    }

    #[test]
    fn the_lock_excludes_other_handles() {
        let (_t, s) = store();
        let dir = s.dir().parent().unwrap().to_path_buf();
        let barrier = Arc::new(Barrier::new(2));
        let b2 = barrier.clone();
        let holder = std::thread::spawn(move || {
            let s = DiskStore::new(&dir, "net1");
            let _l = s.lock().unwrap();
            b2.wait();
            std::thread::sleep(Duration::from_millis(300));
        });
        barrier.wait();
        let t0 = Instant::now();
        let _l = s.lock().unwrap();
        assert!(
            t0.elapsed() >= Duration::from_millis(200),
            "lock was not exclusive"
        );
        holder.join().unwrap();
    }

    #[test]
    fn a_missing_directory_reads_as_empty() {
        let tmp = tempfile::tempdir().unwrap();
        let s = DiskStore::new(tmp.path(), "nope");
        assert!(!s.exists());
        assert_eq!(s.owner(ip("10.0.0.1")).unwrap(), None);
        assert!(s.scan().unwrap().is_empty());
        assert!(s.indexed().unwrap().is_empty());
        assert_eq!(s.index(&att("a")).unwrap(), None);
        let e = s.lock().unwrap_err();
        assert_eq!(e.code().number(), 100);
        assert!(e.to_string().contains("nope/lock"), "{e}");
    }
}
