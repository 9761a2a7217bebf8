//! The local journal: an append-only file of JSON records in the state directory, for
//! decisions the node must not forget across a crash before the store has them (the IPAM
//! part records address allocations here before answering a plugin). Each record is one line,
//! written and synced before `append` returns; a line torn by a crash is skipped on replay.
//!
//! Nothing writes to it yet: the agent opens it at start so that the seam exists.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The journal file.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
}

impl Journal {
    /// Opens (creating, mode 0600) `<dir>/journal`.
    pub fn open(dir: &Path) -> std::io::Result<Journal> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = dir.join("journal");
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path)?;
        Ok(Journal { path, file })
    }

    /// Appends `record` as one line and syncs it to disk.
    pub fn append<T: Serialize>(&mut self, record: &T) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(record).map_err(std::io::Error::other)?;
        line.push(b'\n');
        self.file.write_all(&line)?;
        self.file.sync_data()
    }

    /// Every complete record, in order (a torn or unreadable line is skipped).
    pub fn replay<T: DeserializeOwned>(&self) -> std::io::Result<Vec<T>> {
        let r = BufReader::new(File::open(&self.path)?);
        let mut out = Vec::new();
        for line in r.lines() {
            if let Ok(t) = serde_json::from_str(&line?) {
                out.push(t);
            }
        }
        Ok(out)
    }

    /// Empties the journal (once the store holds everything it recorded).
    pub fn clear(&mut self) -> std::io::Result<()> {
        self.file.set_len(0)?;
        self.file.sync_data()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_and_torn_lines_are_skipped() {
        let t = tempfile::tempdir().unwrap();
        let mut j = Journal::open(t.path()).unwrap();
        j.append(&serde_json::json!({"n": 1})).unwrap();
        j.append(&serde_json::json!({"n": 2})).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(t.path().join("journal"))
            .unwrap()
            .write_all(b"{\"n\": 3")
            .unwrap();
        let j2 = Journal::open(t.path()).unwrap();
        let got: Vec<serde_json::Value> = j2.replay().unwrap();
        assert_eq!(
            got,
            [serde_json::json!({"n": 1}), serde_json::json!({"n": 2})]
        );
        j.clear().unwrap();
        assert!(j2.replay::<serde_json::Value>().unwrap().is_empty());
    }
}
