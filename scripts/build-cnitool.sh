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
ensure_packages golang-go dpkg-dev xz-utils

SRC=$OUT/gopath/src/github.com/containernetworking/cni
if [[ ! -f $SRC/cnitool/cnitool.go ]]; then
  mkdir -p "$OUT/apt/etc" "$OUT/apt/lists/partial"
  {
    for f in /etc/apt/sources.list.d/*.sources; do
      [[ -f $f ]] && sed -n '/^Types: deb$/,/^$/p' "$f" | sed 's/^Types: deb$/Types: deb-src/'
    done
  } >"$OUT/apt/etc/src.sources"
  if [[ ! -s $OUT/apt/etc/src.sources && -f /etc/apt/sources.list ]]; then
    grep -E '^deb ' /etc/apt/sources.list | sed 's/^deb /deb-src /' >"$OUT/apt/etc/src.list"
  fi
  apto=(-o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts="$OUT/apt/etc"
    -o Dir::State::Lists="$OUT/apt/lists")
  apt-get "${apto[@]}" update -qq >/dev/null
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && apt-get "${apto[@]}" source --download-only golang-github-appc-cni=1.1.2-1 >/dev/null 2>&1)
  rm -rf "$SRC" && mkdir -p "$SRC"
  tar xJf "$tmp"/golang-github-appc-cni_1.1.2.orig.tar.xz -C "$SRC" --strip-components=1
fi
mkdir -p "$OUT/bin"
GO111MODULE=off GOPROXY=off GOFLAGS= GOPATH="$OUT/gopath:/usr/share/gocode" \
  go build -o "$OUT/bin/cnitool" github.com/containernetworking/cni/cnitool
echo "$OUT/bin/cnitool"
