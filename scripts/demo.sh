#!/usr/bin/env bash
# The ferro-cni demo: builds the plugins, simulates two nodes on a VNet with network
# namespaces (plus a VM on the VNet and a host on the internet behind a router), attaches
# pods under each model (kubenet, flat, overlay) through cnictl, prints each pod's address and
# a connectivity matrix with the source address the far end saw, runs one container per model
# under containerd (`ctr run --rm --cni`) on node A, and tears everything down.
#
#   scripts/demo.sh            everything (as root)
#   scripts/demo.sh kubenet    one model (kubenet, flat or overlay)
#
# It runs inside a private mount namespace and touches nothing of the machine: its namespaces
# and files disappear when it exits, even if it is interrupted.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
# shellcheck source=runtimes.sh
source "$(dirname "$0")/runtimes.sh"
cd "$ROOT"

MODELS=("${@:-kubenet flat overlay}")
read -r -a MODELS <<<"${MODELS[*]}"

if [[ ${FERRO_DEMO_INNER:-} != 1 ]]; then
  need_root "scripts/demo.sh"
  ensure_packages "${BASE_PACKAGES[@]}" "${CONTAINERD_PACKAGES[@]}"
  ensure_rust
  say "building (release)"
  cargo build --release --locked --quiet -p ferro-bridge -p ferro-flat -p ferro-overlay \
    -p ferro-host-local -p ferro-loopback -p ferro-portmap -p ferro-cnictl
  export FERRO_DEMO_INNER=1
  exec unshare --mount --propagation private -- "$0" "$@"
fi

# ---- inside a private mount namespace from here on -------------------------------------
WORK=$ROOT/target/demo
mkdir -p "$WORK"
mount -t tmpfs -o mode=0755 ferro-demo "$WORK"
export TMPDIR=$WORK
for d in /run/netns /var/lib/cni; do
  private_dir "$d"
done
mount --make-shared /run/netns 2>/dev/null || true
BIN=$WORK/bin
mkdir -p "$BIN"
for b in bridge flat overlay host-local loopback portmap cnictl; do
  cp "${CARGO_TARGET_DIR:-$ROOT/target}/release/$b" "$BIN/"
done
export CNI_PATH=$BIN

P=fdemo
NS=()
cleanup() {
  containerd_stop "$WORK/containerd" 2>/dev/null || true
  for n in "${NS[@]}"; do ip netns pids "$n" 2>/dev/null | xargs -r kill 2>/dev/null || true; done
  for n in "${NS[@]}"; do ip netns del "$n" 2>/dev/null || true; done
}
trap cleanup EXIT

ns() { ip netns add "$P-$1"; ip -n "$P-$1" link set lo up; NS+=("$P-$1"); }
inns() { local n=$1; shift; ip netns exec "$P-$n" "$@"; }
wire() { # wire <ns> <vnet-side-name>: veth from the VNet switch to eth0 of <ns>
  ip -n "$P-vnet" link add "$2" type veth peer name eth0 netns "$P-$1"
  ip -n "$P-vnet" link set "$2" master vnet0 up
  ip -n "$P-$1" link set eth0 up
}

say "simulating the network: VNet 10.240.0.0/16 with node A (.4), node B (.5), a VM (.100); a router to the internet (203.0.113.10)"
ns vnet; ip -n "$P-vnet" link add vnet0 type bridge; ip -n "$P-vnet" link set vnet0 up
ns router; wire router v-router
ip -n "$P-router" addr add 10.240.0.1/16 dev eth0
ns inet
ip -n "$P-router" link add eth1 type veth peer name eth0 netns "$P-inet"
ip -n "$P-router" addr add 203.0.113.1/24 dev eth1; ip -n "$P-router" link set eth1 up
inns router sysctl -qw net.ipv4.ip_forward=1
ip -n "$P-inet" addr add 203.0.113.10/24 dev eth0; ip -n "$P-inet" link set eth0 up
ip -n "$P-inet" route add default via 203.0.113.1
ns peer; wire peer v-peer
ip -n "$P-peer" addr add 10.240.0.100/16 dev eth0; ip -n "$P-peer" route add default via 10.240.0.1
declare -A NODE_IP=([a]=10.240.0.4 [b]=10.240.0.5)
for n in a b; do
  ns "node$n"; wire "node$n" "v-node$n"
  ip -n "$P-node$n" addr add "${NODE_IP[$n]}/16" dev eth0
  ip -n "$P-node$n" route add default via 10.240.0.1
done

# Servers that answer every TCP connection with the source address they see.
serve() { # serve <ns> <addr>
  inns "$1" socat "TCP-LISTEN:7000,bind=$2,fork,reuseaddr" SYSTEM:'echo $SOCAT_PEERADDR' >/dev/null 2>&1 &
}
seen() { # seen <from-ns> <addr>: the source address the server at <addr> saw, or "-"
  inns "$1" timeout 3 socat -T2 - "TCP:$2:7000,connect-timeout=2" </dev/null 2>/dev/null | head -1 || true
}
serve peer 10.240.0.100
serve inet 203.0.113.10

say "starting containerd on node A (its own root, state and socket; a busybox image built offline)"
mkdir -p "$WORK/conf-a" "$WORK/conf-b"
containerd_start "$WORK/containerd" "/run/netns/$P-nodea" "$WORK/conf-a" "$BIN"
ctr_import_busybox "$WORK/containerd"

# cnictl as the runtime; one conf dir per node.
cni() { # cni <node> <verb> <network> <pod>
  NETCONFPATH=$WORK/conf-$1 inns "node$1" "$BIN/cnictl" --cache-dir "$WORK/cache" "$2" "$3" "/run/netns/$P-$4"
}

conf_kubenet() { # <node letter> <slice index>
  cat <<JSON
{"cniVersion":"1.0.0","cniVersions":["0.4.0","1.0.0","1.1.0"],"name":"kubenet","plugins":[
 {"type":"bridge","bridge":"cbr0","isGateway":true,"hairpinMode":true,"ipMasq":true,
  "nonMasqueradeCIDRs":["10.244.0.0/16"],
  "ipam":{"type":"host-local","dataDir":"$WORK/ipam-$1","ranges":[[{"subnet":"10.244.$2.0/24"}]],"routes":[{"dst":"0.0.0.0/0"}]}},
 {"type":"portmap","capabilities":{"portMappings":true}}]}
JSON
}
conf_flat() { # <node letter> <first address of the node's reserved range>
  cat <<JSON
{"cniVersion":"1.0.0","cniVersions":["0.4.0","1.0.0","1.1.0"],"name":"azure","plugins":[
 {"type":"flat","vnetCIDRs":["10.240.0.0/16"],
  "ipam":{"type":"host-local","dataDir":"$WORK/ipam-$1","ranges":[[{"subnet":"10.240.0.0/16","rangeStart":"10.240.0.$2","rangeEnd":"10.240.0.$(($2 + 9))","gateway":"10.240.0.1"}]]}},
 {"type":"portmap","capabilities":{"portMappings":true}}]}
JSON
}
conf_overlay() { # <node letter> <slice index>
  cat <<JSON
{"cniVersion":"1.0.0","cniVersions":["0.4.0","1.0.0","1.1.0"],"name":"overlay","plugins":[
 {"type":"overlay","podCIDR":"10.245.0.0/16","nodeName":"node-$1","nodeList":"$WORK/nodes.json",
  "ipam":{"type":"host-local","dataDir":"$WORK/ipam-$1","ranges":[[{"subnet":"10.245.$2.0/24"}]]}},
 {"type":"portmap","capabilities":{"portMappings":true}}]}
JSON
}
cat >"$WORK/nodes.json" <<JSON
{"nodes":[{"name":"node-a","address":"10.240.0.4","podSubnet":"10.245.1.0/24"},
          {"name":"node-b","address":"10.240.0.5","podSubnet":"10.245.2.0/24"}]}
JSON

addr_of() { ip -n "$P-$1" -4 -o addr show dev eth0 | awk '{print $4}' | cut -d/ -f1; }
who() { # name the address the far end saw
  case "$1" in
    "") echo "(nothing came back)";;
    10.240.0.4) echo "$1 (node A: NAT)";;
    10.240.0.5) echo "$1 (node B: NAT)";;
    "$2") echo "$1 (the pod itself: no NAT)";;
    *) echo "$1";;
  esac
}
# What the model promises and did not happen; the demo exits 1 when there is any.
FAILED=()
# verdict <what> <expected> <got>: MARK is empty when they agree, else a marker, and FAILED
# grows (not to be called in a subshell).
verdict() {
  MARK=''
  if [[ $2 != "$3" ]]; then
    FAILED+=("$1: expected ${2:-nothing}, got ${3:-nothing}")
    MARK="   <-- expected ${2:-nothing}"
  fi
}
row() { # row <model> <from-pod> <target addr> <label> <pod addr> <source the far end must see>
  local s; s=$(seen "$1-$2" "$3")
  verdict "$1: $2 to $4" "$6" "$s"
  printf '  %-28s %-15s %s%s\n' "$4" "$3" "$(who "$s" "$5")" "$MARK"
}

run_model() {
  local m=$1 net
  # (emptied, not recreated: containerd sees conf-a through a bind mount)
  mkdir -p "$WORK/conf-a" "$WORK/conf-b"; rm -f "$WORK/conf-a"/* "$WORK/conf-b"/*
  case $m in
    kubenet)
      net=kubenet; conf_kubenet a 1 >"$WORK/conf-a/10-kubenet.conflist"; conf_kubenet b 2 >"$WORK/conf-b/10-kubenet.conflist"
      # what AKS's route table does for kubenet: each node's pod CIDR via that node, for
      # every host of the VNet
      for h in nodea nodeb peer; do
        [[ $h == nodea ]] || ip -n "$P-$h" route replace 10.244.1.0/24 via 10.240.0.4
        [[ $h == nodeb ]] || ip -n "$P-$h" route replace 10.244.2.0/24 via 10.240.0.5
      done ;;
    flat)
      net=azure; conf_flat a 20 >"$WORK/conf-a/10-flat.conflist"; conf_flat b 30 >"$WORK/conf-b/10-flat.conflist" ;;
    overlay)
      net=overlay; conf_overlay a 1 >"$WORK/conf-a/10-overlay.conflist"; conf_overlay b 2 >"$WORK/conf-b/10-overlay.conflist" ;;
  esac
  say "$m: attaching pods a1, a2 on node A and b1 on node B (cnictl add)"
  for p in a1 a2 b1; do
    ns "$m-$p"
    cni "${p:0:1}" add "$net" "$m-$p" >/dev/null
  done
  local a1 a2 b1 nat_vm back_ok
  a1=$(addr_of "$m-a1"); a2=$(addr_of "$m-a2"); b1=$(addr_of "$m-b1")
  printf '  pods: a1 %s, a2 %s (node A), b1 %s (node B)\n' "$a1" "$a2" "$b1"
  serve "$m-a1" "$a1"; serve "$m-a2" "$a2"; serve "$m-b1" "$b1"
  sleep 0.3
  # What a VM on the VNet sees from a pod, and whether it reaches the pod (then the pod sees
  # the VM's address). kubenet: NAT to the node's address for everything outside the pod
  # CIDR; the VM reaches pods through the route table. flat: pods are VNet addresses, no NAT
  # inside the VNet. overlay: NAT to the node; pod addresses are private to the cluster.
  case $m in
    kubenet) nat_vm=10.240.0.4 back_ok=10.240.0.100 ;;
    flat) nat_vm=$a1 back_ok=10.240.0.100 ;;
    overlay) nat_vm=10.240.0.4 back_ok='' ;;
  esac
  printf '  %-28s %-15s %s\n' "from pod a1 to" "address" "the far end saw"
  row "$m" a1 "$a2" "pod a2 (same node)" "$a1" "$a1"
  row "$m" a1 "$b1" "pod b1 (node B)" "$a1" "$a1"
  row "$m" a1 10.240.0.100 "VM on the VNet" "$a1" "$nat_vm"
  row "$m" a1 203.0.113.10 "host on the internet" "$a1" 10.240.0.4
  local back
  back=$(seen peer "$a1")
  verdict "$m: VM to pod a1" "$back_ok" "$back"
  printf '  %-28s %-15s %s%s\n' "VM on the VNet to pod a1" "$a1" \
    "$(if [[ -z $back ]]; then echo "(not reachable: pod addresses are private to the cluster)"; else echo "reached, pod saw $back"; fi)" \
    "$MARK"
  say "$m: one container on node A under containerd (ctr run --rm --cni, conf dir of node A)"
  local out c_ip saw left
  out=$(ctr_run_cni "$WORK/containerd" "demo-$m" sh -c \
    "ip -4 -o addr show dev eth0 | awk '{print \$4}'; nc -w 2 $b1 7000 </dev/null" 2>&1) ||
    out="failed: $(tail -1 <<<"$out")"
  c_ip=$(sed -n 1p <<<"$out" | cut -d/ -f1)
  saw=$(sed -n 2p <<<"$out")
  if [[ $c_ip == failed:* ]]; then
    echo "  $out"
    FAILED+=("$m: the container did not run ($out)")
  else
    verdict "$m: container to pod b1" "$c_ip" "$saw"
    printf '  container %s reached pod b1 (%s), which saw %s%s\n' "$c_ip" "$b1" \
      "$(case $saw in "") echo "nothing (no answer)" ;; "$c_ip") echo "$saw (the container itself: no NAT)" ;; *) echo "$saw" ;; esac)" \
      "$MARK"
    if [[ -e $WORK/ipam-a/$net/$c_ip ]] || inns nodea nft list table inet ferro_cni 2>/dev/null | grep -qw "$c_ip"; then
      left="its lease or NAT entry is still there"
      FAILED+=("$m: the container's lease or NAT entry outlived it")
    else
      left="nothing of it is left on node A (ctr's DEL has no netns)"
    fi
    echo "  after it exited: $left"
  fi
  say "$m: detaching (cnictl del)"
  for p in a1 a2 b1; do
    inns "$m-$p" true 2>/dev/null && ip netns pids "$P-$m-$p" | xargs -r kill 2>/dev/null || true
    cni "${p:0:1}" del "$net" "$m-$p"
    ip netns del "$P-$m-$p"
  done
}

for m in "${MODELS[@]}"; do
  case $m in kubenet | flat | overlay) run_model "$m" ;; *) die "unknown model $m (kubenet, flat, overlay)" ;; esac
done
if ((${#FAILED[@]})); then
  say "FAILED: ${#FAILED[@]} thing(s) did not behave as the model says"
  printf '  %s\n' "${FAILED[@]}"
  exit 1
fi
say "done: every path behaved as its model says; tearing the simulated network down"
