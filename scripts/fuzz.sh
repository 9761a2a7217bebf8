#!/usr/bin/env bash
# Coverage-guided fuzzing of everything that parses untrusted input: each plugin's
# configuration, results and prevResult in every CNI version, CNI_ARGS, host-local's lease,
# cursor and index files, the overlay node list, resolvConf, the nf_tables and route-netlink
# reply decoders, and cnictl's cache files and configuration lists.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]   fuzz each target SECONDS (default 60) in turn
#   scripts/fuzz.sh --list                  the targets
#
#   FERRO_FUZZ_JOBS=2        targets fuzzed at the same time (default 1)
#   FERRO_FUZZ_SANITIZER=... none (default) or address: the project forbids unsafe code, so
#                            AddressSanitizer mostly slows the search; use it for dependencies
#
# The target bodies live in crates/fuzz (the ferro-fuzz library, a workspace member: its seeds
# and every kept crash input are replayed as ordinary tests by scripts/test.sh). The libFuzzer
# binaries are built by cargo-fuzz from crates/fuzz/libfuzzer, a package outside the
# workspace with its own Cargo.lock (derived from the workspace's at each run), so libfuzzer-sys
# never enters a normal build. cargo-fuzz needs nightly flags: the installed stable
# toolchain gets them through RUSTC_BOOTSTRAP=1. Installs cargo-fuzz when missing.
#
# Everything goes under target/fuzz/: seeds (regenerated from conf-examples/ and the
# fixtures each run), corpus/<target> (kept between runs), artifacts/<target> (crash
# inputs), logs/<target>.log, and report.md (per target: seconds, executions, corpus, crashes).
# A crash input to keep as a regression test goes into crates/fuzz/regressions/<target>/ once
# fixed. Exit status 1 when any target crashed.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

FUZZ_DIR=crates/fuzz/libfuzzer
OUT=$ROOT/target/fuzz
CARGO_FUZZ_VERSION=0.13.2

ensure_rust

targets() {
  sed -n 's/^name = "\([a-z0-9_]*\)"$/\1/p' "$FUZZ_DIR/Cargo.toml" | grep -v '^ferro-fuzz'
}

case ${1:-} in
  --list)
    targets
    exit 0
    ;;
  -h | --help)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 0
    ;;
esac

seconds=60
if [[ ${1:-} =~ ^[0-9]+$ ]]; then
  seconds=$1
  shift
fi
if (($# > 0)); then
  wanted=("$@")
  for t in "${wanted[@]}"; do
    targets | grep -qx "$t" || die "no fuzz target $t (scripts/fuzz.sh --list)"
  done
else
  mapfile -t wanted < <(targets)
fi
jobs=${FERRO_FUZZ_JOBS:-1}
sanitizer=${FERRO_FUZZ_SANITIZER:-none}

if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
  say "installing cargo-fuzz $CARGO_FUZZ_VERSION"
  cargo install --locked --quiet cargo-fuzz --version "$CARGO_FUZZ_VERSION"
fi

# The cargo-fuzz package's lock is derived from the workspace's at every run (shared packages
# keep the workspace's versions; only libfuzzer-sys and its build dependencies are resolved):
# nothing to keep in step by hand when a workspace dependency changes.
cp Cargo.lock "$FUZZ_DIR/Cargo.lock"
cargo metadata --format-version 1 --manifest-path "$FUZZ_DIR/Cargo.toml" >/dev/null

say "writing the seed corpora"
rm -rf "$OUT/seeds"
mkdir -p "$OUT/seeds" "$OUT/corpus" "$OUT/artifacts" "$OUT/logs"
cargo run --locked --quiet -p ferro-fuzz --bin ferro-fuzz-seeds -- "$OUT/seeds"

say "building the fuzz targets (sanitizer: $sanitizer)"
RUSTC_BOOTSTRAP=1 cargo fuzz build --fuzz-dir "$FUZZ_DIR" --target-dir "$OUT" -s "$sanitizer"
bin=$OUT/$(rustc -vV | sed -n 's/^host: //p')/release
# ipam_store writes a store directory per input under the temporary directory: in memory
# when the machine has /dev/shm (about twenty times the executions of a disk), else in target/.
if [[ -d /dev/shm && -w /dev/shm ]]; then
  TMPDIR=$(mktemp -d /dev/shm/ferro-fuzz.XXXXXX)
  trap 'rm -rf "$TMPDIR"' EXIT
else
  TMPDIR=$OUT/tmp
  mkdir -p "$TMPDIR"
fi
export TMPDIR

# Runs one target for $seconds; its summary line goes to $OUT/logs/<target>.summary.
fuzz_one() {
  local t=$1 corpus=$OUT/corpus/$1 art=$OUT/artifacts/$1 log=$OUT/logs/$1.log
  local dirs=("$corpus" "$OUT/seeds/$t") status=0
  mkdir -p "$corpus" "$art"
  [[ -d crates/fuzz/regressions/$t ]] && dirs+=("crates/fuzz/regressions/$t")
  local start=$SECONDS
  nice -n 10 "$bin/$t" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$art/" "${dirs[@]}" >"$log" 2>&1 || status=$?
  local runs crashes
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  crashes=$(find "$art" -type f | wc -l)
  printf '| %s | %s | %s | %s | %s |\n' "$t" "$((SECONDS - start))" "${runs:-?}" \
    "$(find "$corpus" -type f | wc -l)" \
    "$( ((status == 0 && crashes == 0)) && echo none || echo "exit $status, $crashes input(s) in target/fuzz/artifacts/$t")" \
    >"$OUT/logs/$t.summary"
}

say "fuzzing ${#wanted[@]} target(s), ${seconds}s each, $jobs at a time"
running=0
for t in "${wanted[@]}"; do
  rm -f "$OUT/logs/$t.summary"
  fuzz_one "$t" &
  running=$((running + 1))
  if ((running >= jobs)); then
    wait -n || true
    running=$((running - 1))
  fi
done
wait

{
  echo "| target | seconds run | executions | corpus | crashes |"
  echo "|---|---|---|---|---|"
  for t in "${wanted[@]}"; do cat "$OUT/logs/$t.summary"; done
} | tee "$OUT/report.md"
! grep -q 'input(s) in' "$OUT/report.md"
