#!/usr/bin/env bash
# The ferro-cni demo: builds the plugins, simulates two nodes on a VNet with network
# namespaces (plus a VM on the VNet and a host on the internet behind a router), attaches
# dual-stack pods under each model (kubenet, flat, overlay) through cnictl, prints each pod's
# addresses and a connectivity matrix per address family with the source address the far end
# saw, runs one container per model under containerd (`ctr run --rm --cni`) on node A, and
# tears everything down.
#
#   scripts/demo.sh            everything (as root)
#   scripts/demo.sh kubenet    one model (kubenet, flat or overlay)
#
# The simulated network is the tests' own (crates/testutil/src/topology.rs), built and removed
# by `ferro-world`. The demo runs inside a private mount namespace and touches nothing of the
# machine: its namespaces and files disappear when it exits, even if it is interrupted.
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
    -p ferro-host-local -p ferro-loopback -p ferro-portmap -p ferro-cnictl -p ferro-testutil
  export FERRO_DEMO_INNER=1
  in_private_mounts "$0" "$@" # (set -e: its exit status is the demo's)
  exit 0
fi

# ---- inside a private mount namespace from here on -------------------------------------
WORK=$ROOT/target/demo
private_mounts "$WORK" /run/netns /var/lib/cni
BIN=$WORK/bin
mkdir -p "$BIN"
for b in bridge flat overlay host-local loopback portmap cnictl ferro-world; do
  cp "${CARGO_TARGET_DIR:-$ROOT/target}/release/$b" "$BIN/"
done
export CNI_PATH=$BIN

P=fdemo
NS=()
cleanup() {
  containerd_stop "$WORK/containerd" 2>/dev/null || true
  for n in "${NS[@]}"; do ip netns pids "$n" 2>/dev/null | xargs -r kill 2>/dev/null || true; done
  for n in "${NS[@]}"; do ip netns del "$n" 2>/dev/null || true; done
  "$BIN/ferro-world" down "$P" 2 || true
}
trap cleanup EXIT

ns() { ip netns add "$P-$1"; ip -n "$P-$1" link set lo up; NS+=("$P-$1"); }
inns() { local n=$1; shift; ip netns exec "$P-$n" "$@"; }

# The tests' world: the VNet switch, a router to the internet host, a VM on the VNet, nodes
# A and B; namespaces $P-vnet, $P-router, $P-inet, $P-peer, $P-nodea, $P-nodeb.
eval "$("$BIN/ferro-world" up "$P" 2)"
read -r -a NS <<<"$WORLD_NAMESPACES"
read -r -a node_ips <<<"$WORLD_NODE_IPS"
read -r -a node_ips6 <<<"$WORLD_NODE_IPS6"
declare -A NODE_IP=([a]=${node_ips[0]} [b]=${node_ips[1]})
declare -A NODE_IP6=([a]=${node_ips6[0]} [b]=${node_ips6[1]})
VM=$WORLD_PEER
VM6=$WORLD_PEER6
VNET_BASE=${WORLD_VNET%.*}    # 10.240.0
VNET6_BASE=${WORLD_VNET6%/*}  # fd00:240::
say "simulated the network: VNet $WORLD_VNET and $WORLD_VNET6 with node A (${NODE_IP[a]}, ${NODE_IP6[a]}), node B (${NODE_IP[b]}, ${NODE_IP6[b]}), a VM ($VM, $VM6); a router ($WORLD_ROUTER) to the internet ($WORLD_INTERNET, $WORLD_INTERNET6)"

# Servers that answer every TCP connection with the source address they see.
serve() { # serve <ns> <addr>
  local listen="TCP-LISTEN:7000,bind=$2"
  [[ $2 == *:* ]] && listen="TCP6-LISTEN:7000,bind=[$2]"
  inns "$1" socat "$listen,fork,reuseaddr" SYSTEM:'echo $SOCAT_PEERADDR' >/dev/null 2>&1 &
}
# canon <addr>: the address as ip(8) writes it (socat writes IPv6 addresses expanded and in
# brackets: [fd00:0000:...:0002])
canon() {
  local a=${1#[}
  a=${a%]}
  if [[ $a != *:* ]]; then
    echo "$a"
    return
  fi
  local g groups=() s run
  IFS=: read -r -a groups <<<"$a"
  s=:
  for g in "${groups[@]}"; do s+=$(printf '%x' "0x$g"):; done
  # the longest run of two or more zero groups (the first of equal ones) becomes ::
  for run in :0:0:0:0:0:0:0:0: :0:0:0:0:0:0:0: :0:0:0:0:0:0: :0:0:0:0:0: :0:0:0:0: :0:0:0: :0:0:; do
    if [[ $s == *"$run"* ]]; then
      s=${s/"$run"/::}
      break
    fi
  done
  [[ $s == ::* ]] || s=${s#:}
  [[ $s == *:: ]] || s=${s%:}
  echo "$s"
}
seen() { # seen <from-ns> <addr>: the source address the server at <addr> saw, or ""
  local to="TCP:$2:7000"
  [[ $2 == *:* ]] && to="TCP6:[$2]:7000"
  local got
  got=$(inns "$1" timeout 3 socat -T2 - "$to,connect-timeout=2" </dev/null 2>/dev/null | head -1) || true
  [[ -z $got ]] || canon "$got"
}
for a in "$VM" "$VM6"; do serve peer "$a"; done
for a in "$WORLD_INTERNET" "$WORLD_INTERNET6"; do serve inet "$a"; done

say "starting containerd on node A (its own root, state and socket; a busybox image built offline)"
mkdir -p "$WORK/conf-a" "$WORK/conf-b"
containerd_start "$WORK/containerd" "/run/netns/$P-nodea" "$WORK/conf-a" "$BIN"
ctr_import_busybox "$WORK/containerd"

# cnictl as the runtime; one conf dir per node.
cni() { # cni <node> <verb> <network> <pod>
  NETCONFPATH=$WORK/conf-$1 inns "node$1" "$BIN/cnictl" --cache-dir "$WORK/cache" "$2" "$3" "/run/netns/$P-$4"
}

# Every model runs dual stack: each pod gets an IPv4 and an IPv6 address.
conf_kubenet() { # <node letter> <slice index>
  cat <<JSON
{"cniVersion":"1.0.0","cniVersions":["0.4.0","1.0.0","1.1.0"],"name":"kubenet","plugins":[
 {"type":"bridge","bridge":"cbr0","isGateway":true,"hairpinMode":true,"ipMasq":true,
  "nonMasqueradeCIDRs":["10.244.0.0/16","fd00:10:244::/56"],
  "ipam":{"type":"host-local","dataDir":"$WORK/ipam-$1",
   "ranges":[[{"subnet":"10.244.$2.0/24"}],[{"subnet":"fd00:10:244:$2::/64"}]],"routes":[{"dst":"0.0.0.0/0"},{"dst":"::/0"}]}},
 {"type":"portmap","capabilities":{"portMappings":true}}]}
JSON
}
conf_flat() { # <node letter> <first address of the node's reserved range>
  cat <<JSON
{"cniVersion":"1.0.0","cniVersions":["0.4.0","1.0.0","1.1.0"],"name":"azure","plugins":[
 {"type":"flat","vnetCIDRs":["$WORLD_VNET","$WORLD_VNET6"],
  "ipam":{"type":"host-local","dataDir":"$WORK/ipam-$1","ranges":[
   [{"subnet":"$WORLD_VNET","rangeStart":"$VNET_BASE.$2","rangeEnd":"$VNET_BASE.$(($2 + 9))","gateway":"$WORLD_ROUTER"}],
   [{"subnet":"$WORLD_VNET6","rangeStart":"$VNET6_BASE$2","rangeEnd":"$VNET6_BASE$(($2 + 9))"}]]}},
 {"type":"portmap","capabilities":{"portMappings":true}}]}
JSON
}
conf_overlay() { # <node letter> <slice index>
  cat <<JSON
{"cniVersion":"1.0.0","cniVersions":["0.4.0","1.0.0","1.1.0"],"name":"overlay","plugins":[
 {"type":"overlay","podCIDRs":["10.245.0.0/16","fd00:10:245::/56"],"nodeName":"node-$1","nodeList":"$WORK/nodes.json",
  "ipam":{"type":"host-local","dataDir":"$WORK/ipam-$1","ranges":[[{"subnet":"10.245.$2.0/24"}],[{"subnet":"fd00:10:245:$2::/64"}]]}},
 {"type":"portmap","capabilities":{"portMappings":true}}]}
JSON
}
# VXLAN between the nodes' IPv4 addresses, carrying both families
cat >"$WORK/nodes.json" <<JSON
{"nodes":[{"name":"node-a","address":"${NODE_IP[a]}","podSubnets":["10.245.1.0/24","fd00:10:245:1::/64"]},
          {"name":"node-b","address":"${NODE_IP[b]}","podSubnets":["10.245.2.0/24","fd00:10:245:2::/64"]}]}
JSON

addr_of() { # addr_of <ns> 4|6: the pod's address of that family
  ip -n "$P-$1" "-$2" -o addr show dev eth0 scope global | awk '{print $4}' | cut -d/ -f1 | head -1
}
who() { # name the address the far end saw
  case "$1" in
    "") echo "(nothing came back)";;
    "${NODE_IP[a]}" | "${NODE_IP6[a]}") echo "$1 (node A: NAT)";;
    "${NODE_IP[b]}" | "${NODE_IP6[b]}") echo "$1 (node B: NAT)";;
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
  verdict "$1: $2 to $4${fam:+ (IPv$fam)}" "$6" "$s"
  printf '  %-28s %-17s %s%s\n' "$4" "$3" "$(who "$s" "$5")" "$MARK"
}

run_model() {
  local m=$1 net
  # (emptied, not recreated: containerd sees conf-a through a bind mount)
  mkdir -p "$WORK/conf-a" "$WORK/conf-b"; rm -f "$WORK/conf-a"/* "$WORK/conf-b"/*
  case $m in
    kubenet)
      net=kubenet; conf_kubenet a 1 >"$WORK/conf-a/10-kubenet.conflist"; conf_kubenet b 2 >"$WORK/conf-b/10-kubenet.conflist"
      # what AKS's route table does for kubenet: each node's pod CIDRs via that node, for
      # every host of the VNet
      for h in nodea nodeb peer; do
        if [[ $h != nodea ]]; then
          ip -n "$P-$h" route replace 10.244.1.0/24 via "${NODE_IP[a]}"
          ip -n "$P-$h" -6 route replace fd00:10:244:1::/64 via "${NODE_IP6[a]}"
        fi
        if [[ $h != nodeb ]]; then
          ip -n "$P-$h" route replace 10.244.2.0/24 via "${NODE_IP[b]}"
          ip -n "$P-$h" -6 route replace fd00:10:244:2::/64 via "${NODE_IP6[b]}"
        fi
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
  local fam a1 a2 b1 vm inet node nat_vm back_ok back
  printf '  pods: a1 %s %s, a2 %s %s (node A), b1 %s %s (node B)\n' \
    "$(addr_of "$m-a1" 4)" "$(addr_of "$m-a1" 6)" "$(addr_of "$m-a2" 4)" "$(addr_of "$m-a2" 6)" \
    "$(addr_of "$m-b1" 4)" "$(addr_of "$m-b1" 6)"
  for fam in 4 6; do
    for p in a1 a2 b1; do serve "$m-$p" "$(addr_of "$m-$p" $fam)"; done
  done
  sleep 0.3
  for fam in 4 6; do
    a1=$(addr_of "$m-a1" $fam); a2=$(addr_of "$m-a2" $fam); b1=$(addr_of "$m-b1" $fam)
    if [[ $fam == 4 ]]; then
      vm=$VM inet=$WORLD_INTERNET node=${NODE_IP[a]}
    else
      vm=$VM6 inet=$WORLD_INTERNET6 node=${NODE_IP6[a]}
    fi
    # What a VM on the VNet sees from a pod, and whether it reaches the pod (then the pod
    # sees the VM's address). kubenet: NAT to the node's address for everything outside the
    # pod CIDRs; the VM reaches pods through the route table. flat: pods are VNet addresses,
    # no NAT inside the VNet. overlay: NAT to the node; pod addresses are private to the
    # cluster. The same in both families.
    case $m in
      kubenet) nat_vm=$node back_ok=$vm ;;
      flat) nat_vm=$a1 back_ok=$vm ;;
      overlay) nat_vm=$node back_ok='' ;;
    esac
    printf '  IPv%s: %-22s %-17s %s\n' "$fam" "from pod a1 to" "address" "the far end saw"
    row "$m" a1 "$a2" "pod a2 (same node)" "$a1" "$a1"
    row "$m" a1 "$b1" "pod b1 (node B)" "$a1" "$a1"
    row "$m" a1 "$vm" "VM on the VNet" "$a1" "$nat_vm"
    row "$m" a1 "$inet" "host on the internet" "$a1" "$node"
    back=$(seen peer "$a1")
    verdict "$m: VM to pod a1 (IPv$fam)" "$back_ok" "$back"
    printf '  %-28s %-17s %s%s\n' "VM on the VNet to pod a1" "$a1" \
      "$(if [[ -z $back ]]; then echo "(not reachable: pod addresses are private to the cluster)"; else echo "reached, pod saw $back"; fi)" \
      "$MARK"
  done
  b1=$(addr_of "$m-b1" 4)
  say "$m: one container on node A under containerd (ctr run --rm --cni, conf dir of node A)"
  local out a c_ip c_ip6 saw left
  out=$(ctr_run_cni "$WORK/containerd" "demo-$m" sh -c \
    "ip -4 -o addr show dev eth0 | awk '{print \$4}'; ip -6 -o addr show dev eth0 | awk '\$4 !~ /^fe80/ {print \$4}'; nc -w 2 $b1 7000 </dev/null" 2>&1) ||
    out="failed: $(tail -1 <<<"$out")"
  c_ip=$(sed -n 1p <<<"$out" | cut -d/ -f1)
  c_ip6=$(sed -n 2p <<<"$out" | cut -d/ -f1)
  saw=$(sed -n 3p <<<"$out")
  if [[ $c_ip == failed:* ]]; then
    echo "  $out"
    FAILED+=("$m: the container did not run ($out)")
  else
    verdict "$m: container to pod b1" "$c_ip" "$saw"
    printf '  container %s %s reached pod b1 (%s), which saw %s%s\n' "$c_ip" "$c_ip6" "$b1" \
      "$(case $saw in "") echo "nothing (no answer)" ;; "$c_ip") echo "$saw (the container itself: no NAT)" ;; *) echo "$saw" ;; esac)" \
      "$MARK"
    left="nothing of it is left on node A (ctr's DEL has no netns)"
    for a in "$c_ip" "$c_ip6"; do
      if [[ -e $WORK/ipam-a/$net/$a ]] || inns nodea nft list table inet ferro_cni 2>/dev/null | grep -qw "$a"; then
        left="the lease or NAT entry of $a is still there"
        FAILED+=("$m: the container's lease or NAT entry of $a outlived it")
      fi
    done
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
