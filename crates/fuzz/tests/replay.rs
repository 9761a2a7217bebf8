//! Replays, as ordinary tests, every seed of every fuzz target and every input kept under
//! `crates/fuzz/regressions/<target>/` (each one a crash the fuzzer found, fixed since).

use std::path::Path;

use ferro_fuzz::{seeds, target, TARGETS};

fn regressions(name: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("regressions")
        .join(name);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| {
            let data = std::fs::read(e.path()).expect("reads");
            (e.file_name().to_string_lossy().into_owned(), data)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn every_target_has_seeds_and_accepts_them() {
    for (name, f) in TARGETS {
        let seeds = seeds::seeds(name);
        assert!(!seeds.is_empty(), "{name} has no seeds");
        for s in &seeds {
            f(s);
        }
        println!("{name}: {} seeds", seeds.len());
    }
}

#[test]
fn every_kept_crash_input_passes() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions");
    for entry in std::fs::read_dir(&dir).expect("regressions/ exists") {
        let name = entry
            .expect("reads")
            .file_name()
            .to_string_lossy()
            .into_owned();
        if name.starts_with('.') {
            continue;
        }
        assert!(
            target(&name).is_some(),
            "regressions/{name}: no such target"
        );
    }
    let mut n = 0;
    for (name, f) in TARGETS {
        for (file, data) in regressions(name) {
            println!("{name}/{file}");
            f(&data);
            n += 1;
        }
    }
    println!("{n} kept inputs replayed");
}
