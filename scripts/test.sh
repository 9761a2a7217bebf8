#!/usr/bin/env bash
# Runs the whole test suite as CI does: installs what the tests need (Debian packages,
# cnitool), checks formatting, lints and the API docs, builds the workspace, then runs every
# test, the root-only ones included.
#
# The tests run inside a private mount namespace with fresh tmpfs over /run/netns,
# /var/lib/cni, /etc/cni/net.d, /run/cni, /opt/cni/bin, /var/lib/ferro-cni and /run/ferro-cni
# (ferro-agent's defaults), and a private TMPDIR: the
# namespaces they create are invisible to the rest of the machine and disappear with the run even if a test is killed,
# and the machine's real CNI directories are never read or written (not even created).
#
#   scripts/test.sh [extra args for cargo nextest / cargo test, e.g. a test name filter]
#
# Without arguments it also runs `scripts/bench.sh --quick` at the end, so CI proves the
# benchmark still runs (FERRO_SKIP_BENCH=1 skips that).
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
# shellcheck source=runtimes.sh
source "$(dirname "$0")/runtimes.sh"
cd "$ROOT"

if [[ ${1:-} == --inner ]]; then
  shift
  # test temp files and the overlays' scratch space in memory, the CNI directories fresh
  private_mounts "$ROOT/target/test-tmp"
  # Deliberately long (over 100 bytes whatever the checkout's path): anything that names a
  # socket or a run root after a temporary directory breaks here, not only on a machine whose
  # checkout happens to live deep (a unix socket path has at most 107 bytes).
  TMPDIR=$TMPDIR/as-deep-as-a-ci-checkout-may-be-$(printf 'd%.0s' {1..64})
  mkdir -p "$TMPDIR"
  # every tier: the pure tests and the ones marked #[ignore = "needs root: ..."]
  if command -v cargo-nextest >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast --failure-output final --run-ignored all "$@"
  else
    cargo test --workspace --no-fail-fast "$@" -- --include-ignored
  fi
  exit
fi

# The pure tier, as a plain `cargo test` by a user without root runs it: every test binary
# as user nobody (with only the capability to read the checkout, wherever it lives), root
# tests skipped. A test that needs root but is not marked #[ignore = "needs root: run
# scripts/test.sh"] fails here, so the tiers cannot drift.
pure_tier_unprivileged() {
  local bins tmp b out failed=0
  bins=$(cargo test --workspace --no-run --locked --message-format=json 2>/dev/null |
    jq -r 'select(.reason == "compiler-artifact" and .executable != null and .profile.test) | .executable' |
    sort -u)
  tmp=$(mktemp -d)
  chmod 1777 "$tmp"
  for b in $bins; do
    if ! out=$(cd "$(dirname "$b")" && TMPDIR=$tmp setpriv --reuid=nobody --regid=nogroup --clear-groups \
      --inh-caps=+dac_read_search --ambient-caps=+dac_read_search -- "$b" --test-threads=2 2>&1); then
      printf '%s\n' "$out" | grep -E '^test .* FAILED$|panicked' >&2 || printf '%s\n' "$out" | tail -20 >&2
      echo "error: $(basename "$b"): a pure test failed as an unprivileged user (a root test without #[ignore = \"needs root: run scripts/test.sh\"]?)" >&2
      failed=1
    fi
  done
  rm -rf "$tmp"
  return $failed
}

need_root "scripts/test.sh"
# the clients of the end-to-end suites (tests/) too; they install them themselves when missing
ensure_packages "${BASE_PACKAGES[@]}" "${BUILD_PACKAGES[@]}" "${CONTAINERD_PACKAGES[@]}" "${PODMAN_PACKAGES[@]}"
ensure_cluster_packages
ensure_rust
ensure_cnitool
# the reference plugins' suites that tests/reference_suites.rs runs: packages, source, build
"$ROOT/scripts/reference-suites.sh" --prepare

say "checking formatting, lints and the API docs"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# the API docs build without a warning (broken or ambiguous intra-doc links): about 30 s of
# CPU when every crate changed, nothing when none did
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked

say "building"
cargo build --workspace --all-targets --locked


if [[ $# -eq 0 ]]; then
  say "the pure tests as an unprivileged user (what a plain cargo test runs)"
  pure_tier_unprivileged
fi

say "running the tests (private mount namespace)"
# What the tests may never touch: the root namespace's firewall tables, links and routes.
root_state() {
  {
    nft list tables 2>/dev/null
    ip -br link | awk '{print "link " $1}'
    ip route show table all
    ip -6 route show table all
  } | sed -E 's/ expires [0-9]+sec//' | sort
}
before=$(root_state)

status=0
# (a PID namespace too: whatever a crashed test left running dies with the run)
in_private_processes "$0" --inner "$@" || status=$?

if ! changed=$(diff <(printf '%s\n' "$before") <(root_state)); then
  echo "error: the tests changed the root network namespace (tables, links or routes):" >&2
  printf '%s\n' "$changed" >&2
  status=1
fi

# Belt and braces: nothing of ours may remain in the root namespace.
left=$(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^ft[0-9]+-' || true)
if [[ -n $left ]]; then
  echo "warning: removing leftover test namespaces: $left" >&2
  for n in $left; do ip netns del "$n" 2>/dev/null || true; done
fi
((status == 0)) || exit $status

# Fuzzing, coverage-guided, when asked: FERRO_FUZZ_SECONDS=N runs every target N seconds.
if [[ -n ${FERRO_FUZZ_SECONDS:-} ]]; then
  "$ROOT/scripts/fuzz.sh" "$FERRO_FUZZ_SECONDS"
fi

# The benchmark's quick mode: proves scripts/bench.sh still runs end to end (its report goes
# under target/, never to docs/). Skip with FERRO_SKIP_BENCH=1 when iterating locally.
if [[ -z ${FERRO_SKIP_BENCH:-} && $# -eq 0 ]]; then
  say "benchmark, quick mode"
  "$ROOT/scripts/bench.sh" --quick >/dev/null
fi
