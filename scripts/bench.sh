#!/usr/bin/env bash
# Benchmarks our plugins against the reference Go plugins (Debian's containernetworking-plugins
# in /usr/lib/cni), side by side in one run, and writes docs/benchmarks.md.
#
# It installs what the run needs, builds our plugins and the driver (crates/bench) in release
# mode, then runs the driver inside a private mount namespace with fresh tmpfs over its scratch
# directory ($CARGO_TARGET_DIR/bench/scratch), /run/netns, /var/lib/cni, /etc/cni/net.d,
# /run/cni and /opt/cni/bin: the namespaces and files the run creates are invisible to the rest
# of the machine and disappear with it, even if it is killed. The machine's own links, routes,
# sysctls and firewall are never touched. The host-local lease directories go to
# $CARGO_TARGET_DIR/bench (a disk, like /var/lib/cni/networks on a node) and are removed.
#
#   scripts/bench.sh            full run (about 10 minutes), writes docs/benchmarks.md
#   scripts/bench.sh --quick    few cycles (CI: proves the bench runs); the report goes to
#                               $CARGO_TARGET_DIR/bench/benchmarks-quick.md, never docs/
#   scripts/bench.sh [--quick] --only LIST   only these parts (the driver's --only: e.g.
#                               bridge-masq,scale, services or policy)
#   scripts/bench.sh [--quick] -- [driver options]   e.g. -- --cycles 50
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

if [[ ${1:-} == --inner ]]; then
  shift
  scratch=$1 driver=$2
  shift 2
  # The run's scratch space (copies of the binaries, node lists, the floor probes, overlay
  # scratch for the mount points) in memory, the CNI directories fresh.
  private_mounts "$scratch"
  exec "$driver" --workdir "$scratch/run" "$@"
fi

usage() {
  awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"
}

quick=0
extra=()
only=()
while (($#)); do
  case $1 in
    --quick) quick=1 ;;
    --only)
      (($# > 1)) || die "--only needs a list (see the driver's --help)"
      only=(--only "$2")
      shift
      ;;
    --only=*) only=(--only "${1#--only=}") ;;
    -h | --help) usage; exit 0 ;;
    --) shift; extra=("$@"); break ;;
    *) usage >&2; die "unknown argument $1" ;;
  esac
  shift
done

need_root "scripts/bench.sh"
ensure_packages containernetworking-plugins iptables time nftables iproute2 util-linux iperf3 etcd-server "${BUILD_PACKAGES[@]}"
ensure_rust

target=${CARGO_TARGET_DIR:-$ROOT/target}
[[ $target == /* ]] || target=$ROOT/$target
export CARGO_TARGET_DIR=$target

say "building the driver and our plugins (release, as scripts/install.sh builds them)"
cargo build --release --locked --quiet -p ferro-bench
# (and for the cluster IPAM scenario: cluster-ipam and the agent it talks to; for the
# NetworkPolicy scenario: the agent and cnictl, which applies the policies; the agent-at-scale
# scenario also runs etcd)
ours=$(build_plugins ferro-host-local ferro-bridge ferro-flat ferro-overlay ferro-cluster-ipam ferro-agent ferro-cnictl)
not_built=()
if [[ -f plugins/portmap/Cargo.toml ]] && pm=$(build_plugins ferro-portmap) && [[ $pm == "$ours" ]]; then
  :
else
  echo "warning: our portmap did not build; it is reported as not built" >&2
  not_built=(--not-built portmap)
fi

# The host-local dataDirs go to a disk file system, as /var/lib/cni/networks does on a node;
# the driver creates ferro-bench-ipam.<its pid> in there and removes it.
ipam_parent=$target/bench
if ((quick)); then
  out=$target/bench/benchmarks-quick.md
  mode=(--quick)
else
  out=$ROOT/docs/benchmarks.md
  mode=()
fi
scratch=$target/bench/scratch
mkdir -p "$(dirname "$out")" "$ipam_parent" "$scratch"

# The driver runs in its own mount namespace; on any exit of this script (failure, Ctrl-C)
# stop it by its process id, drop a half-written report and its lease directory. Its
# namespaces and tmpfs files vanish with its mount namespace.
driver_pid=
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
  local status=$?
  if [[ -n $driver_pid ]]; then
    if kill -0 "$driver_pid" 2>/dev/null; then
      kill "$driver_pid" 2>/dev/null || true
      wait "$driver_pid" 2>/dev/null || true
    fi
    rm -rf "$ipam_parent/ferro-bench-ipam.$driver_pid"
    rm -f "$(dirname "$out")/.$(basename "$out").partial-$driver_pid"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "running the benchmark (private mount namespace)"
in_private_mounts "$0" --inner "$scratch" "$target/release/ferro-bench" \
  --ours "$ours" --ref /usr/lib/cni --out "$out" --ipam-dir "$ipam_parent" \
  ${mode[@]+"${mode[@]}"} ${not_built[@]+"${not_built[@]}"} ${only[@]+"${only[@]}"} \
  ${extra[@]+"${extra[@]}"} &
driver_pid=$!
status=0
wait "$driver_pid" || status=$?
if [[ -f $out ]]; then
  say "report: $out"
fi
exit "$status"
