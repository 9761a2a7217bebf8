#!/usr/bin/env bash
# Benchmarks our plugins against the reference Go plugins (Debian's containernetworking-plugins
# in /usr/lib/cni), side by side in one run, and writes docs/benchmarks.md (issue 7).
#
# It installs what the run needs, builds our plugins and the driver (crates/bench) in release
# mode, then runs the driver inside a private mount namespace with fresh tmpfs over /tmp,
# /run/netns, /var/lib/cni, /etc/cni/net.d, /run/cni and /opt/cni/bin: the namespaces and files
# the run creates are invisible to the rest of the machine and disappear with it, even if it
# is killed. The machine's own links, routes, sysctls and firewall are never touched.
#
#   scripts/bench.sh            full run (about 15 minutes), writes docs/benchmarks.md
#   scripts/bench.sh --quick    few cycles (CI: proves the bench runs); the report goes to
#                               $CARGO_TARGET_DIR/bench/benchmarks-quick.md, never docs/
#   scripts/bench.sh [--quick] -- [driver options]   e.g. -- --only bridge-masq,scale
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

# Inside the private mount namespace: give $1 a fresh tmpfs. When it does not exist on the
# machine, its nearest existing parent gets a throw-away overlay first, so creating the mount
# point writes nothing to the machine's file system either (the technique of test.sh).
private_dir() {
  local d=$1 p
  if [[ ! -d $d ]]; then
    p=$(dirname "$d")
    while [[ ! -d $p ]]; do p=$(dirname "$p"); done
    local scratch
    scratch=$(mktemp -d /tmp/ferro-overlay.XXXXXX)
    mkdir -p "$scratch/upper" "$scratch/work"
    mount -t overlay ferro-overlay -o "lowerdir=$p,upperdir=$scratch/upper,workdir=$scratch/work" "$p"
    mkdir -p "$d"
  fi
  mount -t tmpfs -o mode=0755 ferro-bench "$d"
}

if [[ ${1:-} == --inner ]]; then
  shift
  driver=$1
  shift
  mount -t tmpfs -o mode=1777 ferro-tmp /tmp
  for d in /run/netns /var/lib/cni /etc/cni/net.d /run/cni /opt/cni/bin; do
    private_dir "$d"
  done
  mount --make-shared /run/netns 2>/dev/null || true
  exec "$driver" "$@"
fi

usage() {
  sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
}

quick=0
extra=()
while (($#)); do
  case $1 in
    --quick) quick=1 ;;
    -h | --help) usage; exit 0 ;;
    --) shift; extra=("$@"); break ;;
    *) usage >&2; die "unknown argument $1" ;;
  esac
  shift
done

need_root "scripts/bench.sh"
ensure_packages containernetworking-plugins iptables time nftables iproute2 util-linux
ensure_rust

target=${CARGO_TARGET_DIR:-$ROOT/target}
[[ $target == /* ]] || target=$ROOT/$target
case $target/ in
  /tmp/*) die "CARGO_TARGET_DIR ($target) is under /tmp, which the run hides behind a private tmpfs; use another directory" ;;
esac
export CARGO_TARGET_DIR=$target

say "building our plugins and the driver (release)"
cargo build --release --locked -p ferro-bench -p ferro-host-local -p ferro-bridge -p ferro-flat -p ferro-overlay
not_built=()
if [[ -f plugins/portmap/Cargo.toml ]]; then
  pkg=$(sed -n 's/^name *= *"\(.*\)"/\1/p' plugins/portmap/Cargo.toml | head -1)
  if ! cargo build --release --locked -p "$pkg"; then
    echo "warning: our portmap did not build; it is reported as not built" >&2
    not_built=(--not-built portmap)
  fi
else
  not_built=(--not-built portmap)
fi

if ((quick)); then
  out=$target/bench/benchmarks-quick.md
  mode=(--quick)
else
  out=$ROOT/docs/benchmarks.md
  mode=()
fi
mkdir -p "$(dirname "$out")"

# The driver runs in its own mount namespace; on any exit of this script (failure, Ctrl-C)
# stop it by its process id and drop a half-written report. Its namespaces vanish with it.
driver_pid=
cleanup() {
  local status=$?
  if [[ -n $driver_pid ]] && kill -0 "$driver_pid" 2>/dev/null; then
    kill "$driver_pid" 2>/dev/null || true
    wait "$driver_pid" 2>/dev/null || true
  fi
  rm -f "$(dirname "$out")"/."$(basename "$out")".partial-*
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "running the benchmark (private mount namespace)"
unshare --mount --propagation private -- "$0" --inner "$target/release/ferro-bench" \
  --ours "$target/release" --ref /usr/lib/cni --out "$out" \
  ${mode[@]+"${mode[@]}"} ${not_built[@]+"${not_built[@]}"} ${extra[@]+"${extra[@]}"} &
driver_pid=$!
status=0
wait "$driver_pid" || status=$?
driver_pid=
if [[ -f $out ]]; then
  say "report: $out"
fi
exit "$status"
