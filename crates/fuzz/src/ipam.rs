//! host-local's store (`ferro_ipam::DiskStore`): lease files, the round-robin cursor and the
//! per-attachment index as found on disk, possibly written by another plugin version, by
//! hand, or half-written by a crashed process.
//!
//! Input: six parts separated by [`crate::SEP`]: a lease file name and its content, the
//! cursor `last_reserved_ip.0`, the index entry of the attachment `c1`/`eth0`, another lease
//! file name and its content. They are written into a fresh network directory (under the
//! process's temporary directory), then ADD, CHECK, DEL, GC and STATUS run against it as
//! host-local runs them. Invariants: no panic; failures are CNI errors with the store's
//! codes; an address ADD returns lies in its range set and its lease names the attachment;
//! CHECK then passes; after DEL none of those addresses is leased; after GC with no valid
//! attachment no lease is left.

use std::fs;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::OnceLock;

use ferro_ipam::config::requested_ips;
use ferro_ipam::disk::{index_name, INDEX_DIR, LAST_RESERVED_PREFIX};
use ferro_ipam::{allocator, DiskStore, IpamConfig, IpamError, Store};
use ferro_spec::{Attachment, CniError, Version};
use serde_json::json;

use crate::{check_error, parts};

fn conf(data_dir: &std::path::Path) -> IpamConfig {
    let v = json!({
        "type": "host-local",
        "dataDir": data_dir,
        "ranges": [
            [{"subnet": "10.1.0.0/29"}],
            [{"subnet": "fd00:1::/125", "rangeStart": "fd00:1::2"}],
        ],
    });
    IpamConfig::parse(&v, None, Version::V1_1_0).expect("a valid configuration")
}

fn base() -> &'static PathBuf {
    static BASE: OnceLock<PathBuf> = OnceLock::new();
    BASE.get_or_init(|| {
        std::env::temp_dir().join(format!("ferro-fuzz-ipam-{}", std::process::id()))
    })
}

/// A name usable as one file in the network directory.
fn file_name(b: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(b).ok()?;
    let ok = !s.is_empty()
        && s.len() < 200
        && s != "."
        && s != ".."
        && s != "lock"
        && s != INDEX_DIR
        && !s.contains(['/', '\0']);
    ok.then(|| s.to_string())
}

fn ok<T>(r: Result<T, IpamError>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) => {
            check_error(&CniError::from(e));
            None
        }
    }
}

/// The target (see the module documentation).
pub fn store(data: &[u8]) {
    let p = parts(data, 6);
    let base = base();
    let _ = fs::remove_dir_all(base);
    let conf = conf(base);
    let store = DiskStore::new(base, "net");
    store.create().expect("creates the network directory");
    let dir = store.dir().to_path_buf();
    for (name, content) in [(p[0], p[1]), (p[4], p[5])] {
        if let Some(n) = file_name(name) {
            let _ = fs::write(dir.join(n), content);
        }
    }
    if !p[2].is_empty() {
        fs::write(dir.join(format!("{LAST_RESERVED_PREFIX}0")), p[2]).expect("writes");
    }
    let att = Attachment {
        container_id: "c1".into(),
        ifname: "eth0".into(),
    };
    if !p[3].is_empty() {
        fs::create_dir_all(dir.join(INDEX_DIR)).expect("creates the index");
        fs::write(dir.join(INDEX_DIR).join(index_name(&att)), p[3]).expect("writes");
    }

    // ADD, with the address a CNI_ARGS `IP=` in the cursor part would ask for.
    let requested = requested_ips(None, std::str::from_utf8(p[2]).ok(), &[]).unwrap_or_default();
    let allocated = {
        let mut locked = store.lock().expect("locks");
        ok(allocator::allocate(&mut locked, &conf, &att, &requested))
    };
    let mut ips: Vec<IpAddr> = Vec::new();
    if let Some(allocs) = allocated {
        assert_eq!(allocs.len(), conf.range_sets.len(), "one address per set");
        for a in &allocs {
            let ip = a.address.addr();
            let set = &conf.range_sets[a.set];
            assert!(set.contains(ip), "{ip} outside {set}");
            let owner = store.owner(ip).expect("reads").expect("leased");
            assert!(owner.is(&att), "{ip} leased to {owner}");
            ips.push(ip);
        }
        if let Err(e) = allocator::check(&store, &conf, &att, Some(&ips)) {
            panic!("CHECK after ADD: {e}");
        }
    }
    let _ = ok(allocator::check(&store, &conf, &att, None));
    let _ = ok(allocator::status(&store, &conf));

    // DEL.
    let released = {
        let mut locked = store.lock().expect("locks");
        ok(allocator::release(&mut locked, &conf, &att, &ips))
    };
    if released.is_some() {
        for ip in &ips {
            let owner = store.owner(*ip).expect("reads");
            assert!(
                !matches!(&owner, Some(o) if o.is(&att)),
                "{ip} still leased after DEL"
            );
        }
    }

    // GC with nothing valid.
    let collected = {
        let mut locked = store.lock().expect("locks");
        ok(allocator::gc(&mut locked, &[]))
    };
    if collected.is_some() {
        let left = store.scan().expect("scans");
        assert!(left.is_empty(), "leases left after GC: {left:?}");
    }
    let _ = fs::remove_dir_all(base);
}
