#!/usr/bin/env bash
# Installs ferro-cni on a node: builds the release binaries (statically linked where the
# toolchain allows it), copies them into the CNI plugin directory and, when asked, one example
# configuration into the CNI configuration directory. Everything it writes is listed in
# <plugin dir>/ferro-cni.manifest, so --uninstall removes exactly that and nothing else.
#
#   scripts/install.sh [--prefix DIR] [--conf-dir DIR] [--conf kubenet|flat|overlay] [--agent]
#   scripts/install.sh [--prefix DIR] --uninstall
#
#   --prefix DIR     the CNI plugin directory (default /opt/cni/bin)
#   --conf-dir DIR   the CNI configuration directory (default /etc/cni/net.d)
#   --conf MODEL     also install conf-examples/MODEL.conflist as DIR/10-MODEL.conflist
#   --force          replace files that are not ours; the originals are kept as
#                    <file>.ferro-cni-orig and put back by --uninstall
#   --from DIR       install the binaries already built in DIR instead of building
#   --agent          also install ferro-agent (the cluster agent) into --sbin-dir, its systemd
#                    unit ferro-agent.service into --unit-dir and, when there is none yet, the
#                    single-node configuration conf-examples/agent-embedded.json as
#                    <--etc-dir>/agent.json (the unit is not enabled: systemctl enable --now)
#   --sbin-dir DIR   where ferro-agent goes (default /usr/local/sbin)
#   --unit-dir DIR   where its unit goes (default /etc/systemd/system)
#   --etc-dir DIR    its configuration directory (default /etc/ferro-cni)
#   --uninstall      remove what the manifest lists, put back what it replaced (a running
#                    ferro-agent service is stopped and disabled first)
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

BINARIES=(bridge flat overlay host-local loopback portmap cluster-ipam cnictl)
MODELS=(kubenet flat overlay)
MANIFEST_NAME=ferro-cni.manifest

prefix=/opt/cni/bin conf_dir=/etc/cni/net.d conf='' force=0 from='' uninstall=0
agent=0 sbin_dir=/usr/local/sbin unit_dir=/etc/systemd/system etc_dir=/etc/ferro-cni
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
while (($#)); do
  case $1 in
    --prefix) prefix=${2:?--prefix needs a directory}; shift ;;
    --conf-dir) conf_dir=${2:?--conf-dir needs a directory}; shift ;;
    --conf) conf=${2:?--conf needs a model}; shift ;;
    --force) force=1 ;;
    --from) from=${2:?--from needs a directory}; shift ;;
    --uninstall) uninstall=1 ;;
    --agent) agent=1 ;;
    --sbin-dir) sbin_dir=${2:?--sbin-dir needs a directory}; shift ;;
    --unit-dir) unit_dir=${2:?--unit-dir needs a directory}; shift ;;
    --etc-dir) etc_dir=${2:?--etc-dir needs a directory}; shift ;;
    -h | --help) usage ;;
    *) echo "unknown option $1" >&2; usage ;;
  esac
  shift
done
abs() { [[ $1 == /* ]] && echo "$1" || echo "$PWD/$1"; }
prefix=$(abs "$prefix")
conf_dir=$(abs "$conf_dir")
sbin_dir=$(abs "$sbin_dir")
unit_dir=$(abs "$unit_dir")
etc_dir=$(abs "$etc_dir")
manifest=$prefix/$MANIFEST_NAME

# ---- the manifest: "dir <path>", "file <sha256> <path>", "orig <path> <saved copy>" ----
dirs=() files=() origs=()
declare -A sums=()
if [[ -f $manifest ]]; then
  while read -r kind a b; do
    case $kind in
      dir) dirs+=("$a") ;;
      file) files+=("$b"); sums[$b]=$a ;;
      orig) origs+=("$a $b") ;;
    esac
  done < <(grep -v '^#' "$manifest")
fi
ours() { [[ -n ${sums[$1]:-} ]]; }
write_manifest() {
  local d f o
  {
    echo "# ferro-cni install manifest: scripts/install.sh --uninstall removes what it lists"
    for d in "${dirs[@]}"; do echo "dir $d"; done
    for f in "${files[@]}"; do echo "file ${sums[$f]} $f"; done
    for o in "${origs[@]}"; do echo "orig $o"; done
  } >"$manifest.tmp"
  mv -f "$manifest.tmp" "$manifest"
}

# ---- uninstall --------------------------------------------------------------------------
if ((uninstall)); then
  if [[ ! -f $manifest ]]; then
    echo "nothing to remove: no $manifest"
    exit 0
  fi
  systemd_running() { [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; }
  for f in "${files[@]}"; do
    if [[ $f == */ferro-agent.service ]] && systemd_running; then
      systemctl disable --now ferro-agent.service >/dev/null 2>&1 || true
    fi
  done
  for f in "${files[@]}"; do
    [[ -e $f ]] || continue
    if [[ $(sha256sum "$f" | cut -d' ' -f1) == "${sums[$f]}" ]]; then
      rm -f "$f"
      echo "removed $f"
    else
      echo "warning: $f changed since it was installed: left in place" >&2
    fi
  done
  for o in "${origs[@]}"; do
    read -r target saved <<<"$o"
    if [[ -e $saved && ! -e $target ]]; then
      mv "$saved" "$target"
      echo "restored $target"
    fi
  done
  rm -f "$manifest"
  for ((i = ${#dirs[@]} - 1; i >= 0; i--)); do
    if rmdir "${dirs[i]}" 2>/dev/null; then echo "removed ${dirs[i]}/"; fi
  done
  if systemd_running; then systemctl daemon-reload >/dev/null 2>&1 || true; fi
  exit 0
fi

# ---- build ------------------------------------------------------------------------------
if [[ -n $conf ]]; then
  [[ " ${MODELS[*]} " == *" $conf "* ]] || die "--conf: unknown model $conf (${MODELS[*]})"
fi
if ((agent)); then BINARIES+=(ferro-agent); fi
if [[ -z $from ]]; then
  ensure_rust
  # etcd-client's gRPC code is generated by protoc when the agent is built
  if ((agent)); then ensure_packages "${BUILD_PACKAGES[@]}"; fi
  pkgs=()
  for b in "${BINARIES[@]}"; do pkgs+=("ferro-${b#ferro-}"); done
  say "building release binaries"
  from=$(build_plugins "${pkgs[@]}")
fi
for b in "${BINARIES[@]}"; do
  [[ -x $from/$b ]] || die "$from/$b is missing: build it first (or drop --from)"
done

# ---- install ----------------------------------------------------------------------------
# make_dir DIR: creates DIR and its missing parents, recording each.
make_dir() {
  local d=$1 missing=()
  while [[ ! -d $d ]]; do
    missing=("$d" "${missing[@]}")
    d=$(dirname "$d")
  done
  for d in "${missing[@]}"; do
    mkdir -m 0755 "$d"
    dirs+=("$d")
  done
}
# put SRC DST MODE: copies SRC to DST atomically (a running binary may be replaced).
put() {
  local src=$1 dst=$2 mode=$3
  if [[ -e $dst ]] && ! ours "$dst"; then
    ((force)) || die "$dst exists and was not installed by ferro-cni (--force replaces it, keeping the original)"
    [[ ! -e $dst.ferro-cni-orig ]] || die "$dst.ferro-cni-orig is in the way"
    mv "$dst" "$dst.ferro-cni-orig"
    origs+=("$dst $dst.ferro-cni-orig")
  fi
  install -m "$mode" "$src" "$dst.ferro-cni-new"
  mv -f "$dst.ferro-cni-new" "$dst"
  ours "$dst" || files+=("$dst")
  sums[$dst]=$(sha256sum "$dst" | cut -d' ' -f1)
  echo "installed $dst"
}

make_dir "$prefix"
for b in "${BINARIES[@]}"; do
  [[ $b == ferro-agent ]] && continue
  put "$from/$b" "$prefix/$b" 0755
  write_manifest
done
if ((agent)); then
  make_dir "$sbin_dir"
  put "$from/ferro-agent" "$sbin_dir/ferro-agent" 0755
  write_manifest
  unit=$(mktemp)
  cat >"$unit" <<UNIT
[Unit]
Description=ferro-cni node agent: node lease in the cluster store, the node's API socket
After=network-online.target
Wants=network-online.target

[Service]
ExecStart=$sbin_dir/ferro-agent --config $etc_dir/agent.json
# SIGTERM: the agent revokes its node lease and removes its socket before it exits
KillSignal=SIGTERM
TimeoutStopSec=30
Restart=on-failure
RestartSec=2
RuntimeDirectory=ferro-cni
RuntimeDirectoryMode=0700
StateDirectory=ferro-cni
StateDirectoryMode=0700

[Install]
WantedBy=multi-user.target
UNIT
  make_dir "$unit_dir"
  put "$unit" "$unit_dir/ferro-agent.service" 0644
  rm -f "$unit"
  write_manifest
  if [[ -e $etc_dir/agent.json ]]; then
    echo "kept $etc_dir/agent.json (an existing configuration is never replaced)"
  else
    make_dir "$etc_dir"
    put "$ROOT/conf-examples/agent-embedded.json" "$etc_dir/agent.json" 0644
    write_manifest
    echo "edit $etc_dir/agent.json: this node's name and address, its store (conf-examples/agent-etcd.json for etcd)"
  fi
  if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; then
    systemctl daemon-reload || true
  fi
  echo "start the agent: systemctl enable --now ferro-agent"
fi
if [[ -n $conf ]]; then
  make_dir "$conf_dir"
  dst=$conf_dir/10-$conf.conflist
  put "$ROOT/conf-examples/$conf.conflist" "$dst" 0644
  write_manifest
  first=$(find "$conf_dir" -maxdepth 1 -type f \( -name '*.conf' -o -name '*.conflist' -o -name '*.json' \) |
    LC_ALL=C sort | sed -n 1p)
  if [[ $first != "$dst" ]]; then
    echo "note: containerd and kubelet use only the lexically first file of $conf_dir: that is $first" >&2
  fi
  case $conf in
    kubenet) echo "edit $dst: this node's pod CIDR slice (ipam.ranges)" ;;
    flat) echo "edit $dst: this node's reserved range of the VNet subnet (rangeStart, rangeEnd)" ;;
    overlay) echo "edit $dst: this node's slice (nodeSubnet, ipam.ranges); write the node list" \
      "/etc/ferro-cni/nodes.json (example: conf-examples/nodes.json)" ;;
  esac
fi
write_manifest
echo "manifest: $manifest (scripts/install.sh --prefix $prefix --uninstall removes what it lists)"
