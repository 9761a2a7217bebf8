#!/usr/bin/env bash
# Installs ferro-cni on a node: builds the release binaries (statically linked where the
# toolchain allows it), copies them into the CNI plugin directory and, when asked, one example
# configuration into the CNI configuration directory. Everything it writes is listed in
# <plugin dir>/ferro-cni.manifest, so --uninstall removes exactly that and nothing else.
#
#   scripts/install.sh [--prefix DIR] [--conf-dir DIR] [--conf kubenet|flat|overlay]
#   scripts/install.sh [--prefix DIR] --uninstall
#
#   --prefix DIR     the CNI plugin directory (default /opt/cni/bin)
#   --conf-dir DIR   the CNI configuration directory (default /etc/cni/net.d)
#   --conf MODEL     also install conf-examples/MODEL.conflist as DIR/10-MODEL.conflist
#   --force          replace files that are not ours; the originals are kept as
#                    <file>.ferro-cni-orig and put back by --uninstall
#   --from DIR       install the binaries already built in DIR instead of building
#   --uninstall      remove what the manifest lists, put back what it replaced
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

BINARIES=(bridge flat overlay host-local loopback portmap cnictl)
MODELS=(kubenet flat overlay)
MANIFEST_NAME=ferro-cni.manifest

prefix=/opt/cni/bin conf_dir=/etc/cni/net.d conf='' force=0 from='' uninstall=0
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
while (($#)); do
  case $1 in
    --prefix) prefix=${2:?--prefix needs a directory}; shift ;;
    --conf-dir) conf_dir=${2:?--conf-dir needs a directory}; shift ;;
    --conf) conf=${2:?--conf needs a model}; shift ;;
    --force) force=1 ;;
    --from) from=${2:?--from needs a directory}; shift ;;
    --uninstall) uninstall=1 ;;
    -h | --help) usage ;;
    *) echo "unknown option $1" >&2; usage ;;
  esac
  shift
done
abs() { [[ $1 == /* ]] && echo "$1" || echo "$PWD/$1"; }
prefix=$(abs "$prefix")
conf_dir=$(abs "$conf_dir")
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
  exit 0
fi

# ---- build ------------------------------------------------------------------------------
if [[ -n $conf ]]; then
  [[ " ${MODELS[*]} " == *" $conf "* ]] || die "--conf: unknown model $conf (${MODELS[*]})"
fi
if [[ -z $from ]]; then
  ensure_rust
  pkgs=()
  for b in "${BINARIES[@]}"; do pkgs+=("ferro-$b"); done
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
  put "$from/$b" "$prefix/$b" 0755
  write_manifest
done
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
