#!/usr/bin/env bash
# Takes ferro-cni off a node, so that it can go back to the reference plugins cleanly: removes
# every chain, rule, set and map of ferro-cni from the node's firewall (its one table, inet
# ferro_cni), then the files scripts/install.sh wrote (binaries, example configuration),
# putting back the files it replaced (say the reference plugins, installed with --force).
#
#   scripts/uninstall.sh [--prefix DIR] [--force] [--keep-files]
#
#   --prefix DIR    the CNI plugin directory ferro-cni was installed into (default /opt/cni/bin)
#   --force         remove the firewall state even while pods attached by ferro-cni still
#                   have some: those pods lose their masquerade and host ports (delete them
#                   first to avoid that; scripts/uninstall.sh refuses otherwise, naming them)
#   --keep-files    leave the installed files alone (firewall state only)
#
# Runs as root, in the network namespace of the node it cleans (on a real node: the machine's
# own). Firewall state goes first, through the installed cnictl (`cnictl firewall remove`; with
# no cnictl, through nft when installed), so a failure leaves the binaries in place to retry.
# Without --keep-files, ferro-agent's NetworkPolicy table (inet ferro_policy) goes as well,
# once the agent is stopped.
# What it does not touch: the reference plugins' own state, host-local leases under
# /var/lib/cni (shared with the reference host-local), bridges and sysctls (the reference
# plugins use the same).
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

prefix=/opt/cni/bin force=0 keep_files=0
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
while (($#)); do
  case $1 in
    --prefix) prefix=${2:?--prefix needs a directory}; shift ;;
    --force) force=1 ;;
    --keep-files) keep_files=1 ;;
    -h | --help) usage ;;
    *) echo "unknown option $1" >&2; usage ;;
  esac
  shift
done
need_root "scripts/uninstall.sh"

# ---- the firewall -----------------------------------------------------------------------
if [[ -x $prefix/cnictl ]]; then
  args=(firewall remove)
  ((force)) && args+=(--force)
  "$prefix/cnictl" "${args[@]}" || die "the firewall state of ferro-cni was not removed (see above); nothing else was changed"
elif command -v nft >/dev/null 2>&1; then
  if nft list table inet ferro_cni >/dev/null 2>&1; then
    if ((!force)) && nft list table inet ferro_cni | grep -q -e 'elements = ' -e 'chain hp-'; then
      die "pods attached by ferro-cni still have state in table inet ferro_cni: delete them first, or use --force"
    fi
    nft delete table inet ferro_cni
    echo "removed table inet ferro_cni"
  else
    echo "nothing to remove: no table inet ferro_cni"
  fi
else
  die "neither $prefix/cnictl nor nft is available to remove table inet ferro_cni"
fi

# ---- the files --------------------------------------------------------------------------
if ((!keep_files)); then
  "$ROOT/scripts/install.sh" --prefix "$prefix" --uninstall
  # ferro-agent (stopped by the uninstall) leaves its NetworkPolicy table in place, so that
  # policy holds across restarts: without the agent it goes too.
  if command -v nft >/dev/null 2>&1 && nft list table inet ferro_policy >/dev/null 2>&1; then
    nft delete table inet ferro_policy
    echo "removed table inet ferro_policy (ferro-agent's NetworkPolicy)"
  fi
fi
