#!/usr/bin/env bash
# Runs the reference plugins' own test suites (the ginkgo suites of `bridge` and `ptp` of
# containernetworking-plugins 1.1.1, from Debian 12's source package) with OUR host-local as
# their IPAM. The suites run the reference bridge and ptp code in-process and exec `host-local`
# from $PATH (their CNI_PATH is $PATH), so they check that our host-local answers every
# version, verb and error exactly as those plugins expect, error texts included.
#
#   scripts/reference-suites.sh --prepare           install, fetch and build only
#   scripts/reference-suites.sh [--suite bridge|ptp]... [--host-local BIN]
#
# Without --suite both run; without --host-local it builds ours (target/debug/host-local).
# Preparing installs Debian's Go, ginkgo, gomega and the suites' libraries, fetches the source
# package through a private deb-src list (/etc/apt untouched) and builds the suites' test
# binaries in GOPATH mode (GO111MODULE=off, GOPROXY=off: nothing but apt is downloaded) into
# $FERRO_REF_SUITES_DIR (default /var/tmp/ferro-reference-suites), kept for the next run.
#
# Each suite runs as root in a new network namespace and a private mount namespace (fresh
# tmpfs over /run/netns, where the suites put their own namespaces, and over the temporary
# directory): whatever a suite does or leaves vanishes with them. The script still compares
# the links, namespaces, nftables ruleset and iptables rules of the namespace it was started
# in before and after, and fails if anything changed. Proof that our host-local was the one
# the suites ran: it is the only `host-local` on their PATH, and it logs every call
# (FERRO_LOG=debug into a file): a suite that passed without calling it fails the run.
#
# Kernels without bridge VLAN filtering (CONFIG_BRIDGE_VLAN_FILTERING) cannot run the
# bridge suite's 30 VLAN specs, whatever the IPAM: they are skipped there, and said so.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

WORK=${FERRO_REF_SUITES_DIR:-/var/tmp/ferro-reference-suites}
PLUGINS_SRC_PKG=golang-github-containernetworking-plugins
PLUGINS_SRC_VERSION=1.1.1+ds1-3
GOPATH_DIR=$WORK/gopath
SRC=$GOPATH_DIR/src/github.com/containernetworking/plugins
# What the suites build against, all Debian packages (the source package's Build-Depends
# that bridge and ptp use).
GO_PACKAGES=(golang-go golang-ginkgo-dev golang-gomega-dev golang-github-appc-cni-dev
  golang-github-containernetworking-plugins-dev golang-github-networkplumbing-go-nft-dev
  golang-github-coreos-go-iptables-dev golang-github-vishvananda-netlink-dev
  golang-github-safchain-ethtool-dev golang-github-alexflint-go-filemutex-dev
  golang-golang-x-sys-dev)
# The specs that need bridge VLAN filtering from the kernel.
VLAN_SPECS='vlan id 100 using|vlanID 100'

# ---- inside the private mount and network namespaces: run one suite ---------------------
if [[ ${1:-} == --inner ]]; then
  suite=$2 bin=$3 out=$4
  private_mounts "$out/scratch" /run/netns
  ip link set lo up
  skip=()
  if [[ $suite != bridge ]]; then
    :
  elif ip link add ferro-vlanprobe type bridge vlan_filtering 1 2>/dev/null; then
    ip link del ferro-vlanprobe
  else
    skip=(-ginkgo.skip="$VLAN_SPECS")
    echo "note: this kernel has no bridge VLAN filtering: the VLAN specs are skipped" >>"$out/summary"
  fi
  export PATH=$bin:/usr/sbin:/usr/bin:/sbin:/bin
  found=$(type -ap host-local)
  [[ $found == "$bin/host-local" ]] || die "host-local on the suites' PATH is not only ours: $found"
  export FERRO_LOG=debug FERRO_LOG_FILE=$out/host-local.log
  : >"$FERRO_LOG_FILE"
  status=0
  (cd "$SRC/plugins/main/$suite" && "$WORK/bin/$suite.test" -ginkgo.noColor "${skip[@]}") \
    >"$out/$suite.log" 2>&1 || status=$?
  # what the suites left in their own namespaces (discarded with them): for the record
  echo "left in the suite's own namespaces: $(find /run/netns -mindepth 1 | wc -l) netns," \
    "$(ip -o link | grep -vc ': lo:') links besides lo" >>"$out/summary"
  exit "$status"
fi

# ---- preparation: packages, source, test binaries ------------------------------------------
prepare() {
  local s lock
  ensure_packages util-linux
  # one preparation at a time (the two suites' tests may start together)
  mkdir -p "$WORK/bin"
  exec {lock}>"$WORK/prepare.lock"
  flock "$lock"
  ensure_packages "${GO_PACKAGES[@]}" iproute2 iptables nftables
  if [[ ! -f $SRC/plugins/main/bridge/bridge_test.go ]]; then
    say "fetching Debian's source of containernetworking-plugins $PLUGINS_SRC_VERSION"
    debian_source "$PLUGINS_SRC_PKG" "$PLUGINS_SRC_VERSION" "$WORK/apt" "$SRC"
  fi
  for s in bridge ptp; do
    [[ -x $WORK/bin/$s.test ]] && continue
    say "building the $s suite (go test -c, GOPATH mode)"
    (cd "$SRC" && GO111MODULE=off GOPROXY=off GOFLAGS='' GOPATH="$GOPATH_DIR:/usr/share/gocode" \
      go test -c -o "$WORK/bin/$s.test.$$" "./plugins/main/$s") >&2
    mv "$WORK/bin/$s.test.$$" "$WORK/bin/$s.test"
  done
  exec {lock}>&-
}

# The state of the namespace the script runs in that a suite could change: links, namespaces
# (those of a concurrent test run, ft<pid>-..., left out), nftables, iptables.
root_state() {
  ip -o link | sed 's/^[0-9]*: //' | awk '{print $1, $2, $3}'
  ip netns list 2>/dev/null | awk '{print "netns", $1}' | grep -Ev '^netns ft[0-9]+-' || true
  nft list ruleset 2>/dev/null || true
  iptables-save 2>/dev/null | grep -Ev '^#|^:' || true
  ip6tables-save 2>/dev/null | grep -Ev '^#|^:' || true
}

usage() {
  awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"
}

suites=()
host_local=
prepare_only=0
while (($#)); do
  case $1 in
    --prepare) prepare_only=1 ;;
    --suite)
      [[ ${2:-} == bridge || ${2:-} == ptp ]] || die "--suite takes bridge or ptp"
      suites+=("$2")
      shift
      ;;
    --host-local)
      [[ -x ${2:-} ]] || die "--host-local needs an executable (got ${2:-nothing})"
      host_local=$(realpath "$2")
      shift
      ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument $1" ;;
  esac
  shift
done
((${#suites[@]})) || suites=(bridge ptp)

need_root "scripts/reference-suites.sh"
prepare
((prepare_only)) && exit 0

if [[ -z $host_local ]]; then
  ensure_rust
  say "building our host-local"
  (cd "$ROOT" && cargo build --locked --quiet -p ferro-host-local)
  host_local=${CARGO_TARGET_DIR:-$ROOT/target}/debug/host-local
  [[ $host_local == /* ]] || host_local=$ROOT/$host_local
fi

status=0
for suite in "${suites[@]}"; do
  # the run's files: our host-local alone in a directory, the logs (kept when it fails)
  out=$WORK/runs/$suite.$$
  rm -rf "$out" && mkdir -p "$out/bin"
  cp "$host_local" "$out/bin/host-local"
  : >"$out/summary"
  before=$(root_state)
  t0=$(date +%s%N)
  suite_status=0
  in_private_mounts unshare --net -- "$0" --inner "$suite" "$out/bin" "$out" ||
    suite_status=$?
  secs=$((($(date +%s%N) - t0) / 1000000000))
  after=$(root_state)
  # ginkgo's closing lines: "Ran 149 of 179 Specs in 8.7 seconds",
  # "SUCCESS! -- 149 Passed | 0 Failed | 0 Pending | 30 Skipped"
  ran=$(grep -Eo '^Ran [0-9]+ of [0-9]+ Specs' "$out/$suite.log" | tail -1 || true)
  counts=$(grep -Eo '[0-9]+ Passed \| [0-9]+ Failed \| [0-9]+ Pending \| [0-9]+ Skipped' \
    "$out/$suite.log" | tail -1 || true)
  read -r passed failed pending skipped <<<"$(tr -cs '0-9' ' ' <<<"${counts:-0 0 0 0}")"
  calls=$(grep -c 'host-local\[[0-9]*\] DEBUG \(ADD\|DEL\|CHECK\) container=' "$out/host-local.log" || true)
  printf '%s suite: %s; %s specs passed, %s failed, %s pending, %s skipped in %d s; our host-local answered %s calls\n' \
    "$suite" "${ran:-did not run}" "$passed" "$failed" "$pending" "$skipped" "$secs" "$calls"
  sed 's/^/  /' "$out/summary"
  bad=0
  if ((suite_status != 0)) || [[ -z $counts ]]; then
    grep -E '^\[Fail\]' "$out/$suite.log" | sed 's/^/  /' || true
    echo "  the $suite suite failed (exit $suite_status); its output: $out/$suite.log" >&2
    bad=1
  fi
  if ((calls == 0)); then
    echo "  our host-local was never called by the $suite suite: the run proves nothing" >&2
    bad=1
  fi
  if [[ $before != "$after" ]]; then
    echo "  the $suite suite changed the namespace it was started in:" >&2
    diff <(echo "$before") <(echo "$after") >&2 || true
    bad=1
  else
    echo "  the namespace it was started in is unchanged (links, netns, nft ruleset, iptables)"
  fi
  if ((bad)); then
    echo "  kept: $out" >&2
    status=1
  else
    rm -rf "$out"
  fi
done
exit "$status"
