//! # ferro-fuzz: fuzz targets for everything that parses untrusted input
//!
//! One function per input kind ([`TARGETS`]): it takes arbitrary bytes, runs them through
//! the project's own parser exactly as the binaries do, and asserts the invariants that
//! hold for every input: no panic, errors that name what is wrong with the right CNI code,
//! and round trips where the codec has both directions (decode → encode → decode, print →
//! parse). A broken invariant panics, which is what the fuzzer reports as a crash.
//!
//! The functions are plain Rust, so they run three ways:
//! - coverage-guided under libFuzzer: `scripts/fuzz.sh` builds the cargo-fuzz package in
//!   `crates/fuzz/libfuzzer/` (outside the workspace, with its own `Cargo.lock`), whose
//!   targets are one line each, calling these functions;
//! - as ordinary tests (`tests/replay.rs`): every seed of [`seeds`] and every input kept
//!   under `crates/fuzz/regressions/<target>/` (crashes found and fixed) is replayed;
//! - `ferro-fuzz-seeds DIR` writes the seed corpora, built from the project's fixtures
//!   and `conf-examples/`, for the fuzzer to start from.
//!
//! Layout: [`spec`] (stdin, results, `CNI_ARGS`), [`plugins`] (each plugin's configuration,
//! the overlay node list, `resolvConf`), [`ipam`] (host-local's lease, cursor and index
//! files), [`nft`] (nf_tables replies), [`rtnl`] (route-netlink replies), [`cnictl`] (the
//! result cache and configuration lists), [`seeds`].
#![forbid(unsafe_code)]

pub mod cnictl;
pub mod ipam;
pub mod nft;
pub mod plugins;
pub mod rtnl;
pub mod seeds;
pub mod spec;

/// A fuzz target: its name (the libFuzzer binary's name) and body.
pub type Target = (&'static str, fn(&[u8]));

/// Every target, in the order `scripts/fuzz.sh` runs them.
pub const TARGETS: &[Target] = &[
    ("spec_request", spec::request),
    ("spec_result", spec::result),
    ("spec_cni_args", spec::cni_args),
    ("config_bridge", plugins::bridge),
    ("config_flat", plugins::flat),
    ("config_overlay", plugins::overlay),
    ("config_portmap", plugins::portmap),
    ("config_host_local", plugins::host_local),
    ("overlay_node_list", plugins::node_list),
    ("resolv_conf", plugins::resolv_conf),
    ("ipam_store", ipam::store),
    ("nft_decode", nft::decode),
    ("rtnl_decode", rtnl::decode),
    ("cnictl_cache", cnictl::cache),
    ("cnictl_conflist", cnictl::conflist),
];

/// The target called `name`.
pub fn target(name: &str) -> Option<fn(&[u8])> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

/// Separates the parts of a multi-part input (a byte that never occurs in UTF-8 text, so
/// text seeds never contain it by accident).
pub const SEP: u8 = 0xff;

/// The first `n` parts of `data` split at [`SEP`]; missing parts are empty, and the last
/// part keeps any further separators.
pub fn parts(data: &[u8], n: usize) -> Vec<&[u8]> {
    let mut out: Vec<&[u8]> = data.splitn(n, |b| *b == SEP).collect();
    out.resize(n, &[]);
    out
}

/// Joins parts with [`SEP`] (for seeds).
pub fn join(parts: &[&[u8]]) -> Vec<u8> {
    parts.join(&SEP)
}

/// A CNI error must carry a code of the specification or of the suite, and name something.
pub(crate) fn check_error(e: &ferro_spec::CniError) {
    let n = e.code.number();
    assert!(
        matches!(n, 1..=7 | 11 | 50 | 51 | 100..=103),
        "unexpected error code {n}: {e}"
    );
    assert!(!e.msg.is_empty(), "error without a message (code {n})");
    // The error object is what the runtime reads: it must serialize.
    let v = e.to_json("1.1.0");
    assert_eq!(v["code"], n, "{v}");
}
