//! Measuring the binaries: the size of each after `strip -s`.

use super::SizeRow;
use crate::harness::{Bench, PAIRS};
use crate::outcome::Outcome;
use crate::workloads::Suite;

/// Stripped sizes of both suites' binaries.
pub fn sizes(b: &Bench) -> Vec<SizeRow> {
    let strip_dir = b.workdir().join("stripped");
    let _ = std::fs::create_dir_all(&strip_dir);
    let size = |s: Suite, name: &str| -> Outcome<u64> {
        let bin = b.cni_path(s).join(name);
        if !bin.exists() {
            return match s {
                Suite::Ours => Outcome::NotBuilt(format!("{name} not built")),
                Suite::Ref => Outcome::Failed(format!("{} missing", bin.display())),
            };
        }
        let out = strip_dir.join(format!("{}-{name}", s.tag()));
        let stripped = std::process::Command::new("strip")
            .arg("-s")
            .arg("-o")
            .arg(&out)
            .arg(&bin)
            .output()
            .is_ok_and(|o| o.status.success());
        let measured = if stripped { out } else { bin };
        match std::fs::metadata(&measured) {
            Ok(m) => Outcome::Done(m.len()),
            Err(e) => Outcome::Failed(e.to_string()),
        }
    };
    PAIRS
        .iter()
        .map(|(o, r)| SizeRow {
            ours_plugin: o.to_string(),
            ref_plugin: r.unwrap_or("–").to_string(),
            ours: size(Suite::Ours, o),
            reference: r.map_or(Outcome::NoEquivalent, |r| size(Suite::Ref, r)),
        })
        .collect()
}
