#!/usr/bin/env bash
# Builds cnitool 1.1.2, the CNI project's reference client, from Debian 12's source package
# golang-github-appc-cni with Debian's Go, in GOPATH mode: only apt is used, nothing else is
# downloaded. /etc/apt is not modified (a private deb-src list is derived from the machine's).
#
#   scripts/build-cnitool.sh [OUT_DIR]     (default /var/tmp/cnitool) -> OUT_DIR/bin/cnitool
set -euo pipefail
OUT=${1:-/var/tmp/cnitool}
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
ensure_packages golang-go

SRC=$OUT/gopath/src/github.com/containernetworking/cni
if [[ ! -f $SRC/cnitool/cnitool.go ]]; then
  debian_source golang-github-appc-cni 1.1.2-1 "$OUT/apt" "$SRC"
fi
mkdir -p "$OUT/bin"
GO111MODULE=off GOPROXY=off GOFLAGS='' GOPATH="$OUT/gopath:/usr/share/gocode" \
  go build -o "$OUT/bin/cnitool" github.com/containernetworking/cni/cnitool
echo "$OUT/bin/cnitool"
