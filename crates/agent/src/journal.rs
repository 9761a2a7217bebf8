//! The local journal: an append-only file of JSON records in the state directory, for
//! decisions the node must not forget across a crash before the store has them. The cluster
//! IPAM records every address it hands out or takes back here before it answers the plugin
//! (see `crate::ipam`).
//!
//! - Each record is one line, written with one `write(2)` on a file opened `O_APPEND`, and
//!   **not** synced: a crash or `kill -9` of the agent keeps everything written (the kernel's
//!   page cache belongs to the machine, not the process), and a power loss that could lose
//!   the last records also ends every pod they describe: the same trade host-local makes
//!   for its lease files. [`Journal::sync`] forces it to disk (at a clean stop).
//! - A line torn by a crash in the middle of a write is the last one; [`Journal::open`]
//!   cuts it off, so it is never read and the next record starts on a fresh line.
//! - [`Journal::rewrite`] compacts: the new content (a snapshot) goes to a temporary file
//!   that is synced and renamed over the journal, so a crash leaves either the old journal or
//!   the new one, whole.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The journal file.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
    len: u64,
}

/// What [`Journal::replay`] read.
#[derive(Debug)]
pub struct Replay<T> {
    /// Every complete, readable record, in order.
    pub records: Vec<T>,
    /// Lines that could not be read as a record (skipped).
    pub skipped: usize,
}

fn open_append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

impl Journal {
    /// Opens (creating, mode 0600) `<dir>/journal`, cutting off a torn last line.
    pub fn open(dir: &Path) -> std::io::Result<Journal> {
        let path = dir.join("journal");
        let file = open_append(&path)?;
        let mut content = Vec::new();
        File::open(&path)?.read_to_end(&mut content)?;
        let mut len = content.len() as u64;
        if content.last().is_some_and(|b| *b != b'\n') {
            let keep = content
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(0, |i| i + 1);
            file.set_len(keep as u64)?;
            len = keep as u64;
        }
        Ok(Journal { path, file, len })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its size in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends `record` as one line (one `write(2)`, not synced: see the module doc).
    pub fn append<T: Serialize>(&mut self, record: &T) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(record).map_err(std::io::Error::other)?;
        line.push(b'\n');
        self.file.write_all(&line)?;
        self.len += line.len() as u64;
        Ok(())
    }

    /// Forces what was appended to disk.
    pub fn sync(&self) -> std::io::Result<()> {
        self.file.sync_data()
    }

    /// Every complete record, in order (unreadable lines are counted and skipped).
    pub fn replay<T: DeserializeOwned>(&self) -> std::io::Result<Replay<T>> {
        let r = BufReader::new(File::open(&self.path)?);
        let mut out = Replay {
            records: Vec::new(),
            skipped: 0,
        };
        for line in r.split(b'\n') {
            let line = line?;
            if line.is_empty() {
                continue;
            }
            match serde_json::from_slice(&line) {
                Ok(t) => out.records.push(t),
                Err(_) => out.skipped += 1,
            }
        }
        Ok(out)
    }

    /// Replaces the whole journal with `records` (compaction), atomically and durably.
    pub fn rewrite<T: Serialize>(&mut self, records: &[T]) -> std::io::Result<()> {
        let tmp = self.path.with_file_name("journal.new");
        let mut body = Vec::new();
        for r in records {
            serde_json::to_writer(&mut body, r).map_err(std::io::Error::other)?;
            body.push(b'\n');
        }
        {
            let mut f = OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&body)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            File::open(dir)?.sync_all()?;
        }
        self.file = open_append(&self.path)?;
        self.len = body.len() as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn records_survive_and_a_torn_line_is_cut_off() {
        let t = tempfile::tempdir().unwrap();
        let mut j = Journal::open(t.path()).unwrap();
        assert!(j.is_empty());
        j.append(&json!({"n": 1})).unwrap();
        j.append(&json!({"n": 2})).unwrap();
        drop(j);
        // a crash in the middle of the third write
        OpenOptions::new()
            .append(true)
            .open(t.path().join("journal"))
            .unwrap()
            .write_all(b"{\"n\": 3")
            .unwrap();
        let mut j = Journal::open(t.path()).unwrap();
        let got: Replay<Value> = j.replay().unwrap();
        assert_eq!(got.records, [json!({"n": 1}), json!({"n": 2})]);
        assert_eq!(got.skipped, 0, "the torn line is gone, not skipped");
        // the next record is whole
        j.append(&json!({"n": 4})).unwrap();
        let got: Replay<Value> = j.replay().unwrap();
        assert_eq!(got.records.last(), Some(&json!({"n": 4})));
        // a garbled line in the middle is skipped
        OpenOptions::new()
            .append(true)
            .open(t.path().join("journal"))
            .unwrap()
            .write_all(b"garbage\n")
            .unwrap();
        assert_eq!(j.replay::<Value>().unwrap().skipped, 1);
    }

    #[test]
    fn rewrite_compacts_atomically() {
        let t = tempfile::tempdir().unwrap();
        let mut j = Journal::open(t.path()).unwrap();
        for n in 0..100 {
            j.append(&json!({ "n": n })).unwrap();
        }
        let before = j.len();
        j.rewrite(&[json!({"snapshot": 99})]).unwrap();
        assert!(j.len() < before);
        j.append(&json!({"n": 100})).unwrap();
        j.sync().unwrap();
        let again = Journal::open(t.path()).unwrap();
        let got: Replay<Value> = again.replay().unwrap();
        assert_eq!(got.records, [json!({"snapshot": 99}), json!({"n": 100})]);
        assert!(!t.path().join("journal.new").exists());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(again.path())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }
}
