//! The fuzz targets as ordinary tests, one per target: every seed, every input kept under
//! `crates/fuzz/regressions/<target>/` (each a crash the fuzzer found, fixed since), and a
//! short deterministic mutation smoke (bit flips, byte edits, cut and spliced seeds, parts
//! separators) so that each target also runs on inputs near its seeds. The coverage-guided
//! search itself is `scripts/fuzz.sh`.

use std::path::Path;

use ferro_fuzz::{seeds, target, SEP, TARGETS};

/// Mutants per target: enough to pass through every branch near the seeds, small enough to
/// keep the suite fast in a debug build.
const MUTANTS: usize = 400;

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

/// xorshift64*: a fixed sequence, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n.max(1) as u64).expect("fits")
    }
}

fn mutate(rng: &mut Rng, seed: &[u8], other: &[u8]) -> Vec<u8> {
    let mut d = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(d.len() + 1);
        match rng.below(8) {
            0 if !d.is_empty() => {
                let i = at.min(d.len() - 1);
                d[i] ^= 1 << rng.below(8);
            }
            1 if !d.is_empty() => {
                let i = at.min(d.len() - 1);
                d[i] = [0, 0xff, 0x7f, 0x80, b'"', b'{', b'[', b'0', b'-', b'\\'][rng.below(10)];
            }
            2 => d.insert(at, u8::try_from(rng.below(256)).expect("a byte")),
            3 => d.truncate(at),
            4 => {
                let end = (at + rng.below(16)).min(d.len());
                d.drain(at..end);
            }
            5 => {
                let end = (at + rng.below(32)).min(d.len());
                let chunk = d[at..end].to_vec();
                d.splice(at..at, chunk);
            }
            6 => {
                let from = rng.below(other.len() + 1);
                d.truncate(at);
                d.extend_from_slice(&other[from..]);
            }
            _ => d.insert(at, SEP),
        }
    }
    d
}

fn run(name: &str) {
    let f = target(name).expect("a target");
    let seeds = seeds::seeds(name);
    assert!(!seeds.is_empty(), "{name} has no seeds");
    for s in &seeds {
        f(s);
    }
    let kept = regressions(name);
    for (file, data) in &kept {
        eprintln!("{name}: regressions/{name}/{file}");
        f(data);
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ name.len() as u64);
    for i in 0..MUTANTS {
        let seed = &seeds[i % seeds.len()];
        let other = &seeds[rng.below(seeds.len())];
        f(&mutate(&mut rng, seed, other));
    }
    eprintln!(
        "{name}: {} seeds, {} kept inputs, {MUTANTS} mutants",
        seeds.len(),
        kept.len()
    );
}

macro_rules! targets {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                run(stringify!($name));
            }
        )*

        #[test]
        fn every_target_is_replayed() {
            let listed = [$(stringify!($name)),*];
            for (name, _) in TARGETS {
                assert!(listed.contains(name), "{name} is not replayed here");
            }
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions");
            for entry in std::fs::read_dir(&dir).into_iter().flatten() {
                let name = entry.expect("reads").file_name().to_string_lossy().into_owned();
                assert!(target(&name).is_some(), "regressions/{name}: no such target");
            }
        }
    };
}

targets!(
    spec_request,
    spec_result,
    spec_cni_args,
    config_bridge,
    config_flat,
    config_overlay,
    config_portmap,
    config_host_local,
    overlay_node_list,
    resolv_conf,
    ipam_store,
    nft_decode,
    rtnl_decode,
    cnictl_cache,
    cnictl_conflist,
);
