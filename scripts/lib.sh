# Shared helpers for the scripts in this directory. Source it; do not run it.
# shellcheck shell=bash

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export ROOT

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

need_root() {
  [[ $(id -u) -eq 0 ]] || die "$1 needs root (it creates network namespaces); run it as root"
}

# Debian packages the demo, the tests and the benchmark use at run time.
BASE_PACKAGES=(iproute2 nftables jq iputils-ping conntrack socat procps util-linux
  containernetworking-plugins iptables time ca-certificates)

# Debian packages needed to build the workspace: protoc generates etcd-client's gRPC code,
# and its protocol files import protobuf's well-known types (google/protobuf/*.proto), which
# are in libprotobuf-dev (only recommended by protobuf-compiler, so not installed with it here).
BUILD_PACKAGES=(protobuf-compiler libprotobuf-dev)
# Debian packages the cluster tests run: etcd 3.4 (the tests start their own members, never
# the packaged service), openssl (the tests' certificate authority), dnsmasq-base (the
# simulated internet's DNS server; the binary without the packaged service) and dnsperf (the
# cluster DNS figures of the demo).
CLUSTER_PACKAGES=(etcd-server openssl dnsmasq-base dnsperf)

# Installs CLUSTER_PACKAGES when missing. Installing etcd-server may enable and start the
# packaged etcd service on a systemd machine: nothing of ours uses it (tests start members in
# their own namespaces, ports and data dirs), so a service this call brought up is stopped and
# disabled again.
ensure_cluster_packages() {
  local fresh=0
  dpkg-query -W -f='${Status}' etcd-server 2>/dev/null | grep -q "ok installed" || fresh=1
  ensure_packages "${CLUSTER_PACKAGES[@]}"
  if ((fresh)) && [[ -d /run/systemd/system ]]; then
    systemctl disable --now etcd.service >/dev/null 2>&1 || true
  fi
}

# Installs the given Debian packages when any is missing (apt-get update once per run).
ensure_packages() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && return 0
  say "installing ${missing[*]}"
  if [[ -z ${FERRO_APT_UPDATED:-} ]]; then
    apt-get update -qq >/dev/null
    export FERRO_APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The oldest Rust the workspace builds with: `rust-version` of Cargo.toml, stated only there.
msrv() {
  sed -n 's/^rust-version *= *"\([0-9.]*\)".*/\1/p' "$ROOT/Cargo.toml" | head -1
}

# Puts cargo on PATH (rustup installs it under ~/.cargo/bin) or explains what is missing.
ensure_rust() {
  local need v
  need=$(msrv)
  [[ -n $need ]] || die "no rust-version in $ROOT/Cargo.toml"
  if ! command -v cargo >/dev/null 2>&1 && [[ -x ${CARGO_HOME:-$HOME/.cargo}/bin/cargo ]]; then
    export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
  fi
  command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust $need or newer (https://rustup.rs)"
  v=$(rustc --version | awk '{print $2}')
  [[ $(printf '%s\n%s\n' "$v" "$need" | sort -V | head -1) == "$need" ]] ||
    die "rustc $v is too old: $need or newer is needed (rust-version in Cargo.toml)"
}

# Builds release binaries of the given packages the way they are installed, and prints the
# directory holding them. On glibc targets the C runtime is linked statically, so a node needs
# nothing of Rust and no particular glibc, and a process starts without the dynamic loader:
#
# - the plugins, which the container runtime starts for every pod, as static executables at
#   a fixed address (not position-independent): a static-pie binary relocates itself at every
#   start, writing (and so copying) every page of its relocated data, and on a virtual machine
#   every page fault is dear (an ADD of bridge: 86 page faults instead of 122, 0.5 ms less);
#   and optimised for size (`opt-level = "s"`): a plugin runs once per pod, so the pages of
#   code it maps in cost more than the instructions it saves (about 0.1 ms of an ADD here);
# - the long-running agent and cnictl as static-pie, so their code keeps address
#   randomisation.
#
# The two sets are two cargo invocations in one target directory (cargo keeps the artifacts
# of each set of flags apart). Elsewhere, or when static linking fails: a normal build.
build_plugins() {
  local host target_dir p flags
  local plugins=() daemons=()
  host=$(rustc -vV | sed -n 's/^host: //p')
  target_dir=${CARGO_TARGET_DIR:-$ROOT/target}
  for p in "$@"; do
    case $p in
      ferro-agent | ferro-cnictl) daemons+=(-p "$p") ;;
      *) plugins+=(-p "$p") ;;
    esac
  done
  flags="${RUSTFLAGS:+$RUSTFLAGS }-C target-feature=+crt-static"
  if [[ $host == *-linux-gnu ]] &&
    { ((${#plugins[@]} == 0)) || (cd "$ROOT" && RUSTFLAGS="$flags -C relocation-model=static" \
      CARGO_PROFILE_RELEASE_OPT_LEVEL=s \
      cargo build --release --locked --quiet --target "$host" "${plugins[@]}") >&2; } &&
    { ((${#daemons[@]} == 0)) || (cd "$ROOT" && RUSTFLAGS="$flags" \
      cargo build --release --locked --quiet --target "$host" "${daemons[@]}") >&2; }; then
    echo "$target_dir/$host/release"
  else
    say "static linking failed: building dynamically linked binaries (a node then needs glibc and libgcc_s)"
    (cd "$ROOT" && cargo build --release --locked --quiet "${plugins[@]}" "${daemons[@]}") >&2
    echo "$target_dir/release"
  fi
}

# debian_source PACKAGE VERSION STATE DEST: unpacks the upstream tarball of Debian source
# package PACKAGE=VERSION into DEST (replacing it). apt-get fetches it through a private
# deb-src list derived from the machine's deb lines, with its lists under STATE: /etc/apt is
# not modified and nothing but apt is used.
debian_source() {
  local pkg=$1 version=$2 state=$3 dest=$4 f tmp
  ensure_packages dpkg-dev xz-utils
  mkdir -p "$state/etc" "$state/lists/partial"
  {
    for f in /etc/apt/sources.list.d/*.sources; do
      [[ -f $f ]] && sed -n '/^Types: deb$/,/^$/p' "$f" | sed 's/^Types: deb$/Types: deb-src/'
    done
  } >"$state/etc/src.sources"
  if [[ ! -s $state/etc/src.sources && -f /etc/apt/sources.list ]]; then
    grep -E '^deb ' /etc/apt/sources.list | sed 's/^deb /deb-src /' >"$state/etc/src.list"
  fi
  local apto=(-o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts="$state/etc"
    -o Dir::State::Lists="$state/lists" -o APT::Sandbox::User=root)
  apt-get "${apto[@]}" update -qq >/dev/null
  tmp=$(mktemp -d "$state/download.XXXXXX")
  if ! (cd "$tmp" && apt-get "${apto[@]}" source --download-only "$pkg=$version" >/dev/null 2>&1); then
    rm -rf "$tmp"
    die "apt-get source $pkg=$version failed"
  fi
  rm -rf "$dest" && mkdir -p "$dest"
  tar xf "$tmp/${pkg}_${version%-*}".orig.tar.* -C "$dest" --strip-components=1
  rm -rf "$tmp"
}

# Builds cnitool 1.1.2 (the CNI project's own client) into $CNITOOL_DIR unless present.
ensure_cnitool() {
  export CNITOOL_DIR=${CNITOOL_DIR:-/var/tmp/cnitool}
  export CNITOOL=$CNITOOL_DIR/bin/cnitool
  [[ -x $CNITOOL ]] && return 0
  say "building cnitool 1.1.2 from Debian's source package"
  "$ROOT/scripts/build-cnitool.sh" "$CNITOOL_DIR" >/dev/null
}

# Inside a private mount namespace (unshare --mount): makes sure directory $1 exists without
# writing to the machine's file system. When it is missing, its nearest existing parent gets a
# throw-away overlay first (scratch space under $FERRO_SCRATCH, else $TMPDIR, else /tmp) and
# $1 is created in that overlay. A parent overlaid once in this shell is reused: overlays
# stack at most two deep, and an overlay would hide the mounts made below it before.
FERRO_OVERLAID=()
mount_point() {
  local d=$1 p o scratch
  [[ -d $d ]] && return 0
  p=$(dirname "$d")
  while [[ ! -d $p ]]; do p=$(dirname "$p"); done
  for o in "${FERRO_OVERLAID[@]}"; do
    if [[ $p == "$o" || $p == "$o"/* ]]; then
      mkdir -p "$d"
      return 0
    fi
  done
  [[ $p != / ]] || die "refusing to put an overlay over / (for $d)"
  scratch=$(mktemp -d "${FERRO_SCRATCH:-${TMPDIR:-/tmp}}/ferro-overlay.XXXXXX")
  mkdir -p "$scratch/upper" "$scratch/work"
  mount -t overlay ferro-overlay -o "lowerdir=$p,upperdir=$scratch/upper,workdir=$scratch/work" "$p"
  FERRO_OVERLAID+=("$p")
  mkdir -p "$d"
}

# The directories every root run of ours (tests, benchmark, demo) shadows with a fresh tmpfs:
# where namespaces are pinned and the CNI directories of the machine.
PRIVATE_DIRS=(/run/netns /var/lib/cni /etc/cni/net.d /run/cni /opt/cni/bin /var/lib/ferro-cni /run/ferro-cni)

# in_private_mounts CMD...: runs CMD in a new mount namespace whose mounts never reach the
# machine (propagation private); the script re-executes itself there with --inner, which
# calls private_mounts first.
in_private_mounts() {
  unshare --mount --propagation private -- "$@"
}

# in_private_processes CMD...: in_private_mounts, in a PID namespace of its own (with /proc
# to match): when CMD ends, the kernel kills every process still in it, so a test process
# that crashed cannot leave an agent, an etcd member or a probe server running.
in_private_processes() {
  FERRO_OUTER_MNT=$(readlink /proc/self/ns/mnt) \
    unshare --mount --propagation private --pid --fork --mount-proc -- "$@"
}

# private_mounts SCRATCH [DIR...]: the setup of a run inside in_private_mounts (refused
# anywhere else: the mounts would shadow the machine's directories). SCRATCH gets a fresh
# tmpfs (in memory: the run's temporary files and the overlays' scratch space; never a tmpfs
# over /tmp, which could hide the checkout) and becomes TMPDIR; each DIR (default
# PRIVATE_DIRS) a fresh tmpfs; /run/netns, when among them, is made shared so that `ip
# netns add` pins namespaces there.
private_mounts() {
  local scratch=$1 d self parent
  shift
  self=$(readlink /proc/self/ns/mnt)
  parent=$(readlink "/proc/$PPID/ns/mnt" 2>/dev/null || true)
  # (the first process of a PID namespace has no parent to look at: the namespace it was
  # started from is in FERRO_OUTER_MNT)
  [[ -n $parent ]] || parent=${FERRO_OUTER_MNT:-}
  [[ -n $parent && $self != "$parent" ]] || die "private_mounts outside a private mount namespace"
  (($#)) || set -- "${PRIVATE_DIRS[@]}"
  mkdir -p "$scratch"
  mount -t tmpfs -o mode=1777 ferro-tmp "$scratch"
  export TMPDIR=$scratch FERRO_SCRATCH=$scratch
  for d in "$@"; do
    private_dir "$d"
  done
  if [[ " $* " == *" /run/netns "* ]]; then
    mount --make-shared /run/netns 2>/dev/null || true
  fi
}

# Inside a private mount namespace: gives $1 a fresh tmpfs (see mount_point).
private_dir() {
  mount_point "$1"
  mount -t tmpfs -o mode=0755 ferro-test "$1"
}

# Inside a private mount namespace: shows directory $1 at $2 (see mount_point).
private_bind() {
  mount_point "$2"
  mount --bind "$1" "$2"
}
