# Container runtimes on a simulated node, isolated from the machine: a busybox image built
# offline, containerd 1.6 with `ctr run --cni`, podman 4.3 with its CNI backend, cnitool.
# Sourced (after lib.sh) by demo.sh and by the end-to-end tests (tests/*.rs).
#
# Every client runs through node_run: in a node's network namespace, which is then the host
# side of its containers, and in a private mount namespace (propagation slave: nothing mounted
# there reaches the machine) where each directory it would write on the machine is a private
# directory of ours: the conf dir over /etc/cni/net.d, the plugin dir over /opt/cni/bin, a state
# directory over /var/lib/cni, and so on. Its own config, state and sockets live under a work
# directory. Long-running ones are stopped by their pid.
# shellcheck shell=bash

# The Debian packages the helpers below run (for ensure_packages of lib.sh).
# shellcheck disable=SC2034
CONTAINERD_PACKAGES=(containerd runc busybox-static)
# shellcheck disable=SC2034
PODMAN_PACKAGES=(podman runc conmon busybox-static containernetworking-plugins)

# The containerd namespace (ctr -n) of everything started here.
CTR_NAMESPACE=ferro
# The image busybox_image tags.
BUSYBOX_REF=ferro.test/busybox:1

# node_run NETNS SCRATCH [SRC=DST ...] -- CMD...: runs CMD in the network namespace NETNS and
# a new private mount namespace where directory SRC is shown at DST (an empty SRC: a fresh
# tmpfs). A DST missing on the machine is created in a throw-away overlay whose scratch space
# is under SCRATCH (see mount_point in lib.sh). The helper processes exec one another and CMD,
# so a pid CMD records itself ($$ of a `bash -c` that then execs) is the final program's.
node_run() {
  local netns=$1 scratch=$2
  shift 2
  mkdir -p "$scratch"
  unshare --mount --propagation slave -- nsenter --net="$netns" -- bash -c '
    set -euo pipefail
    source "$1/scripts/lib.sh"
    export FERRO_SCRATCH=$2
    shift 2
    specs=()
    while [[ $1 != -- ]]; do specs+=("$1"); shift; done
    shift
    # mount points first: an overlay made for a missing one would hide mounts made before it
    for s in "${specs[@]}"; do mount_point "${s#*=}"; done
    for s in "${specs[@]}"; do
      if [[ -z ${s%%=*} ]]; then private_dir "${s#*=}"; else private_bind "${s%%=*}" "${s#*=}"; fi
    done
    exec "$@"' _ "$ROOT" "$scratch" "$@"
}

# _pids_in_mount_ns PID: the pids of every process sharing PID's mount namespace.
_pids_in_mount_ns() {
  local mnt p
  mnt=$(readlink "/proc/$1/ns/mnt" 2>/dev/null) || return 0
  for p in /proc/[0-9]*; do
    if [[ $(readlink "$p/ns/mnt" 2>/dev/null) == "$mnt" ]]; then echo "${p#/proc/}"; fi
  done
}

# _wait_gone PID: waits up to 5 s for PID to exit.
_wait_gone() {
  local i
  for ((i = 0; i < 50; i++)); do
    [[ -d /proc/$1 ]] || return 0
    sleep 0.1
  done
}

# ---- the image ------------------------------------------------------------------------

# busybox_rootfs DIR: a minimal root file system, busybox-static and one link per applet.
busybox_rootfs() {
  local d=$1 a
  mkdir -p "$d/bin" "$d/etc" "$d/proc" "$d/sys" "$d/dev" "$d/tmp" "$d/run"
  cp /bin/busybox "$d/bin/busybox"
  for a in $("$d/bin/busybox" --list); do
    [[ $a == busybox ]] || ln -sf busybox "$d/bin/$a"
  done
  echo 'root:x:0:0:root:/:/bin/sh' >"$d/etc/passwd"
  echo 'root:x:0:' >"$d/etc/group"
}

# _oci_blob LAYOUT FILE: moves FILE into LAYOUT's blob store; prints "<digest> <size>".
_oci_blob() {
  local sum size
  sum=$(sha256sum "$2" | cut -d' ' -f1)
  size=$(stat -c %s "$2")
  mv "$2" "$1/blobs/sha256/$sum"
  echo "sha256:$sum $size"
}

# busybox_image OUT.tar: an OCI image archive of busybox_rootfs tagged $BUSYBOX_REF, one
# uncompressed layer, written by hand: no registry, no build tool, the same bytes every time.
busybox_image() {
  local out=$1 t layer config manifest
  t=$(mktemp -d "${FERRO_SCRATCH:-${TMPDIR:-/tmp}}/ferro-image.XXXXXX")
  busybox_rootfs "$t/rootfs"
  mkdir -p "$t/oci/blobs/sha256"
  local tarflags=(--sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner)
  tar -C "$t/rootfs" "${tarflags[@]}" -cf "$t/layer" .
  read -r -a layer <<<"$(_oci_blob "$t/oci" "$t/layer")"
  printf '{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin"],"Cmd":["/bin/sh"]},"rootfs":{"type":"layers","diff_ids":["%s"]}}' \
    "${layer[0]}" >"$t/config"
  read -r -a config <<<"$(_oci_blob "$t/oci" "$t/config")"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":%s}]}' \
    "${config[@]}" "${layer[@]}" >"$t/manifest"
  read -r -a manifest <<<"$(_oci_blob "$t/oci" "$t/manifest")"
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"%s"}}]}' \
    "${manifest[@]}" "$BUSYBOX_REF" >"$t/oci/index.json"
  echo '{"imageLayoutVersion":"1.0.0"}' >"$t/oci/oci-layout"
  tar -C "$t/oci" "${tarflags[@]}" -cf "$out" oci-layout index.json blobs
  rm -rf "$t"
}

# ---- containerd 1.6 -------------------------------------------------------------------

# containerd_start WORK NETNS CONF_DIR PLUGIN_DIR [SRC=DST ...]: starts containerd on the node
# NETNS with its root and config under WORK. Its mount namespace shows CONF_DIR at
# /etc/cni/net.d, PLUGIN_DIR at /opt/cni/bin, WORK/var-lib-cni at /var/lib/cni (libcni's
# result cache, host-local's default dataDir), WORK/run-containerd at /run/containerd (its
# state and sockets, the shims' sockets and runc's state), plus the extra SRC=DST binds. The
# sockets are named by that short path, never by WORK's: a unix socket's path has at most 107
# bytes and WORK lies under the checkout, wherever that is. Its pid goes to
# WORK/containerd.pid.
containerd_start() {
  local w=$1 netns=$2 conf=$3 plugins=$4 i
  shift 4
  mkdir -p "$w/root" "$w/var-lib-cni" "$w/run-containerd"
  cat >"$w/config.toml" <<TOML
version = 2
root = "$w/root"
state = "/run/containerd/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.internal.v1.opt",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "/run/containerd/containerd.sock"
[ttrpc]
  address = "/run/containerd/containerd.ttrpc.sock"
TOML
  rm -f "$w/containerd.pid"
  # The pid file is written by the process that then becomes containerd (exec).
  node_run "$netns" "$w/scratch" "$conf=/etc/cni/net.d" "$plugins=/opt/cni/bin" \
    "$w/var-lib-cni=/var/lib/cni" "$w/run-containerd=/run/containerd" "$@" -- \
    bash -c 'echo $$ >"$1.tmp" && mv "$1.tmp" "$1" && exec containerd --config "$2"' _ \
    "$w/containerd.pid" "$w/config.toml" >"$w/containerd.log" 2>&1 </dev/null &
  for ((i = 0; i < 100; i++)); do
    if [[ -S $w/run-containerd/containerd.sock && -f $w/containerd.pid ]]; then return 0; fi
    kill -0 "$!" 2>/dev/null || break
    sleep 0.1
  done
  tail -20 "$w/containerd.log" >&2
  die "containerd did not start (log: $w/containerd.log)"
}

# ctr_node WORK ARGS...: ctr against the containerd of WORK, in its mount and network
# namespaces: ctr itself runs the CNI plugins for `run --cni`, so it must see the same
# directories and the node's network.
ctr_node() {
  local w=$1 pid
  shift
  pid=$(<"$w/containerd.pid")
  nsenter --mount="/proc/$pid/ns/mnt" --net="/proc/$pid/ns/net" -- \
    ctr --address /run/containerd/containerd.sock --namespace "$CTR_NAMESPACE" "$@"
}

# ctr_import_busybox WORK: builds the busybox image and imports it.
ctr_import_busybox() {
  FERRO_SCRATCH=$1 busybox_image "$1/busybox.tar"
  ctr_node "$1" images import "$1/busybox.tar" >/dev/null
}

# ctr_run_cni WORK ID ARGS...: `ctr run --rm --cni` of the busybox image running ARGS. No
# cgroup path is given (runc then uses a cgroup named after ID, removed with the container).
ctr_run_cni() {
  local w=$1 id=$2
  shift 2
  ctr_node "$w" run --rm --cni --cgroup "" --runc-root /run/containerd/runc \
    --fifo-dir /run/containerd/fifo "$BUSYBOX_REF" "$id" "$@"
}

# containerd_stop WORK: kills the tasks a failed run left, stops containerd by its pid, then
# every process still in its mount namespace (shims), by pid.
containerd_stop() {
  local w=$1 pid t p
  [[ -f $w/containerd.pid ]] || return 0
  pid=$(<"$w/containerd.pid")
  if [[ -d /proc/$pid ]]; then
    for t in $(ctr_node "$w" tasks ls -q 2>/dev/null); do
      ctr_node "$w" tasks kill -s SIGKILL "$t" >/dev/null 2>&1 || true
    done
    local rest
    rest=$(_pids_in_mount_ns "$pid")
    kill -TERM "$pid" 2>/dev/null || true
    _wait_gone "$pid"
    for p in $rest; do kill -KILL "$p" 2>/dev/null || true; done
  fi
  rm -f "$w/containerd.pid"
}

# ---- podman 4.3 (CNI backend) ---------------------------------------------------------

# _hard_limit FLAG MAX: the machine's hard limit `ulimit -H<FLAG>`, at most MAX.
_hard_limit() {
  local v
  v=$(ulimit -H"$1")
  if [[ $v == unlimited ]] || ((v > $2)); then v=$2; fi
  echo "$v"
}

# podman_start WORK NETNS PLUGIN_DIR NET_CONF_DIR: prepares podman on the node NETNS:
# containers.conf (network_backend cni, PLUGIN_DIR its only plugin dir, NET_CONF_DIR its
# network config dir, cgroupfs, ulimits within the machine's) and storage.conf (vfs, its
# graph root under WORK) under WORK, and a holder process whose mount namespace shows
# WORK/var-lib-cni at /var/lib/cni and fresh directories at /run/netns, /dev/shm (podman's
# lock memory), /run/containers, /run/libpod, /run/runc, /var/lib/containers. podman_node runs
# podman there. Its run root and temporary directory are the fresh /run/containers/storage
# and /run/libpod, never under WORK: podman refuses a run root longer than 50 bytes and puts
# sockets in both, and WORK lies under the checkout, wherever that is. The holder's pid goes
# to WORK/podman.pid.
podman_start() {
  local w=$1 netns=$2 plugins=$3 netconf=$4 nofile nproc i
  mkdir -p "$w/storage" "$w/var-lib-cni"
  # Within the machine's hard limits, or runc cannot set them (root may lack
  # CAP_SYS_RESOURCE); nproc also within pid_max, to which podman lowers its own limit.
  nofile=$(_hard_limit n 1048576)
  nproc=$(_hard_limit u "$(cat /proc/sys/kernel/pid_max)")
  cat >"$w/containers.conf" <<TOML
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
default_sysctls = ["net.ipv4.ping_group_range=0 2147483647"]
[network]
network_backend = "cni"
cni_plugin_dirs = ["$plugins"]
network_config_dir = "$netconf"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$w/events.log"
tmp_dir = "/run/libpod"
static_dir = "$w/storage/libpod"
volume_path = "$w/storage/volumes"
runtime = "runc"
TOML
  cat >"$w/storage.conf" <<TOML
[storage]
driver = "vfs"
graphroot = "$w/storage"
runroot = "/run/containers/storage"
TOML
  # podman --cgroup-parent: one cgroup directory of ours, removed by podman_stop
  echo "ferro-podman-$$-$RANDOM" >"$w/cgroup-parent"
  rm -f "$w/podman.pid"
  node_run "$netns" "$w/scratch" "$w/var-lib-cni=/var/lib/cni" "=/run/netns" "=/dev/shm" \
    "=/run/containers" "=/run/libpod" "=/run/runc" "=/var/lib/containers" -- \
    bash -c 'echo $$ >"$1.tmp" && mv "$1.tmp" "$1" && exec sleep infinity' _ "$w/podman.pid" \
    >"$w/holder.log" 2>&1 </dev/null &
  for ((i = 0; i < 100; i++)); do
    [[ -f $w/podman.pid ]] && return 0
    kill -0 "$!" 2>/dev/null || break
    sleep 0.05
  done
  cat "$w/holder.log" >&2
  die "podman's mount namespace could not be prepared"
}

# podman_node WORK ARGS...: podman in the holder's namespaces with the private configuration.
podman_node() {
  local w=$1 pid
  shift
  pid=$(<"$w/podman.pid")
  nsenter --mount="/proc/$pid/ns/mnt" --net="/proc/$pid/ns/net" -- \
    env CONTAINERS_CONF="$w/containers.conf" CONTAINERS_STORAGE_CONF="$w/storage.conf" \
    CONTAINERS_REGISTRIES_CONF=/dev/null \
    podman --root "$w/storage" --runroot /run/containers/storage --storage-driver vfs "$@"
}

# podman_run WORK ARGS...: `podman run` with the cgroup parent of WORK.
podman_run() {
  local w=$1
  shift
  podman_node "$w" run --cgroup-parent "/$(<"$w/cgroup-parent")" "$@"
}

# podman_stop WORK: removes every container (a failed run's), kills what is left in the
# holder's mount namespace (conmon), the holder last, all by pid; removes the cgroup parent.
podman_stop() {
  local w=$1 pid p d
  [[ -f $w/podman.pid ]] || return 0
  pid=$(<"$w/podman.pid")
  if [[ -d /proc/$pid ]]; then
    podman_node "$w" rm --all --force --time 0 >/dev/null 2>&1 || true
    for p in $(_pids_in_mount_ns "$pid"); do
      [[ $p == "$pid" ]] || kill -KILL "$p" 2>/dev/null || true
    done
    kill -KILL "$pid" 2>/dev/null || true
    _wait_gone "$pid"
  fi
  if [[ -s $w/cgroup-parent ]]; then
    for d in /sys/fs/cgroup/"$(<"$w/cgroup-parent")" /sys/fs/cgroup/*/"$(<"$w/cgroup-parent")"; do
      [[ -d $d ]] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
    done
  fi
  rm -f "$w/podman.pid"
  return 0
}
