#!/usr/bin/env bash
# The ferro-cni demo: builds the plugins, simulates two nodes on a VNet with network
# namespaces (plus a VM on the VNet and a host on the internet behind a router), attaches
# dual-stack pods under each model (kubenet, flat, overlay) through cnictl, prints each pod's
# addresses and a connectivity matrix per address family with the source address the far end
# saw, runs one container per model under containerd (`ctr run --rm --cni`) on node A, and
# tears everything down. Then a cluster: three nodes of another simulated VNet, an etcd member
# and a ferro-agent per node, overlay, flat and kubenet pods taking addresses of the cluster's
# shared pool (cluster-ipam: no per-node slice or range) and reported to the agents, a node
# joining and leaving with nothing edited but its agent started and stopped, Services (a
# ClusterIP, a NodePort and a LoadBalancer) answered by the kubenet pods, the three-tier
# example under NetworkPolicy: allowed and denied paths tried with real packets, and the
# cluster's edge: a pod resolving a Service by name through the node's cluster DNS, an
# EgressPolicy at work, DNS answers per second from one pod.
#
#   scripts/demo.sh            everything (as root)
#   scripts/demo.sh kubenet    one part (kubenet, flat, overlay or cluster)
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

MODELS=("${@:-kubenet flat overlay cluster}")
read -r -a MODELS <<<"${MODELS[*]}"

if [[ ${FERRO_DEMO_INNER:-} != 1 ]]; then
  need_root "scripts/demo.sh"
  ensure_packages "${BASE_PACKAGES[@]}" "${CONTAINERD_PACKAGES[@]}" "${BUILD_PACKAGES[@]}"
  ensure_cluster_packages
  ensure_rust
  say "building (release)"
  cargo build --release --locked --quiet -p ferro-bridge -p ferro-flat -p ferro-overlay \
    -p ferro-host-local -p ferro-loopback -p ferro-portmap -p ferro-cnictl -p ferro-testutil \
    -p ferro-agent -p ferro-cluster-ipam
  export FERRO_DEMO_INNER=1
  in_private_mounts "$0" "$@" # (set -e: its exit status is the demo's)
  exit 0
fi

# ---- inside a private mount namespace from here on -------------------------------------
WORK=$ROOT/target/demo
private_mounts "$WORK" /run/netns /var/lib/cni
BIN=$WORK/bin
mkdir -p "$BIN"
for b in bridge flat overlay host-local loopback portmap cnictl ferro-world ferro-agent cluster-ipam; do
  cp "${CARGO_TARGET_DIR:-$ROOT/target}/release/$b" "$BIN/"
done
export CNI_PATH=$BIN

P=fdemo
C=fclus # the cluster part's world
NS=()
PIDS=() # the servers, and the cluster part's etcd and agents
cleanup() {
  containerd_stop "$WORK/containerd" 2>/dev/null || true
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  for n in "${NS[@]}"; do ip netns pids "$n" 2>/dev/null | xargs -r kill 2>/dev/null || true; done
  for n in "${NS[@]}"; do ip netns del "$n" 2>/dev/null || true; done
  "$BIN/ferro-world" down "$P" 2 || true
  "$BIN/ferro-world" down "$C" 3 || true
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
  # `ip netns exec` execs socat: $! is the server itself, stopped by its pid at the end
  ip netns exec "$P-$1" socat "$listen,fork,reuseaddr" SYSTEM:'echo $SOCAT_PEERADDR' >/dev/null 2>&1 &
  PIDS+=("$!")
  disown
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

# ---- the cluster part ----------------------------------------------------------------------
# Three nodes of their own VNet (namespaces $C-...), one etcd member on node A, a ferro-agent
# per node (lease TTL 2 s); each model a cluster of its own (a fresh store). A ClusterNetwork
# is the pool: every node's list is the same, with cluster-ipam, whose agent claims blocks of
# the pool as pods come. The plugins report every pod to their node's agent; the agents keep
# the overlay's VXLAN peers (one per block of the other nodes), then kubenet's routes (to the
# other nodes' node blocks), from the store. Node C joins by starting its agent and leaves
# when its agent dies: nothing else is edited anywhere.
cin() { local n=$1; shift; ip netns exec "$C-node$n" "$@"; } # cin <node letter> CMD...
ctl() { local n=$1; shift; cin "$n" "$BIN/cnictl" --socket "$WORK/run-$n/agent.sock" "$@"; }
ccni() { # ccni <node> <verb> <network> <pod> [CNI_ARGS]
  CNI_ARGS=${5:-} NETCONFPATH=$WORK/cconf-$1 cin "$1" "$BIN/cnictl" --cache-dir "$WORK/ccache" "$2" "$3" "/run/netns/$P-$4"
}
k8s() { echo "IgnoreUnknown=1;K8S_POD_NAMESPACE=$1;K8S_POD_NAME=$2"; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
declare -A AGENT_PID=()
agent_start() { # agent_start <node letter> <extra JSON keys>
  local n=$1
  cat >"$WORK/agent-$n.json" <<JSON
{"nodeName":"node-$n","nodeAddresses":["${CNODE_IP[$n]}","${CNODE_IP6[$n]}"],
 "store":{"etcd":{"endpoints":["http://${CNODE_IP[a]}:2379"]}},
 "socket":"$WORK/run-$n/agent.sock","stateDir":"$WORK/state-$n","leaseTTL":2${2:+,$2}}
JSON
  # (not through cin: a function in the background is a subshell, and $! would be its pid)
  ip netns exec "$C-node$n" "$BIN/ferro-agent" --config "$WORK/agent-$n.json" 2>>"$WORK/agent-$n.log" &
  AGENT_PID[$n]=$!
  PIDS+=("$!")
  local t0; t0=$(now_ms)
  until [[ -S $WORK/run-$n/agent.sock ]] && ctl "$n" get nodes >/dev/null 2>&1; do
    if (($(now_ms) - t0 > 20000)) || ! kill -0 "${AGENT_PID[$n]}" 2>/dev/null; then
      tail -5 "$WORK/agent-$n.log"
      die "the agent of node $n did not start"
    fi
    sleep 0.05
  done
}
agent_stop() { # agent_stop <node letter> TERM|KILL
  kill "-$2" "${AGENT_PID[$1]}" 2>/dev/null || true
  wait "${AGENT_PID[$1]}" 2>/dev/null || true
}
# reach <from pod> <addr> <ms>: pings until answered (at most ms); prints the ms it took, or ""
reach() {
  local t0; t0=$(now_ms)
  while (($(now_ms) - t0 < $3)); do
    if ip netns exec "$P-$1" ping -c1 -W 0.1 -q "$2" >/dev/null 2>&1; then
      echo $(($(now_ms) - t0))
      return
    fi
  done
}
# until_gone <node letter> <ms> CMD...: polls until CMD prints nothing; the ms it took, or ""
until_gone() {
  local n=$1 limit=$2 t0; shift 2
  t0=$(now_ms)
  while (($(now_ms) - t0 < limit)); do
    if [[ -z $(cin "$n" "$@" 2>/dev/null) ]]; then
      echo $(($(now_ms) - t0))
      return
    fi
    sleep 0.01
  done
}
check() { # check <what> <condition result: ok or why not>
  if [[ $2 == ok ]]; then echo "  ok: $1"; else FAILED+=("cluster: $1: $2"); echo "  FAILED: $1: $2"; fi
}
conf_cluster() { # conf_cluster <model> <node letter>: the model's list, the same on every node but for the agent's socket
  local sock=$WORK/run-$2/agent.sock
  case $1 in
    overlay) cat <<JSON
{"cniVersion":"1.0.0","name":"overlay","plugins":[
 {"type":"overlay","podCIDRs":["10.244.0.0/16","fd00:244::/56"],"nodeList":"agent","agent":{"socket":"$sock"},
  "ipam":{"type":"cluster-ipam","socket":"$sock"}}]}
JSON
    ;;
    flat) cat <<JSON
{"cniVersion":"1.0.0","name":"azure","plugins":[
 {"type":"flat","vnetCIDRs":["$WORLD_VNET"],"agent":{"socket":"$sock"},
  "ipam":{"type":"cluster-ipam","socket":"$sock"}}]}
JSON
    ;;
    kubenet) cat <<JSON
{"cniVersion":"1.0.0","name":"kubenet","plugins":[
 {"type":"bridge","bridge":"cbr0","isGateway":true,"ipMasq":true,"nonMasqueradeCIDRs":["10.244.0.0/16","fd00:244::/56"],
  "agent":{"socket":"$sock"},
  "ipam":{"type":"cluster-ipam","socket":"$sock","routes":[{"dst":"0.0.0.0/0"},{"dst":"::/0"}]}}]}
JSON
    ;;
  esac
}
# etcd_fresh: (re)starts the etcd member on node A on an empty data directory, and forgets the
# agents' state: each model of the cluster part is a cluster of its own
ETCD_PID=
etcd_fresh() {
  local a=${CNODE_IP[a]}
  if [[ -n $ETCD_PID ]]; then
    kill "$ETCD_PID" 2>/dev/null || true
    while kill -0 "$ETCD_PID" 2>/dev/null; do sleep 0.05; done
  fi
  rm -rf "$WORK/etcd" "$WORK"/state-? "$WORK"/run-?
  ip netns exec "$C-nodea" etcd --name m0 --data-dir "$WORK/etcd" --listen-client-urls "http://$a:2379" \
    --advertise-client-urls "http://$a:2379" --listen-peer-urls "http://$a:2380" \
    --initial-advertise-peer-urls "http://$a:2380" --initial-cluster "m0=http://$a:2380" \
    --unsafe-no-fsync >"$WORK/etcd.log" 2>&1 &
  ETCD_PID=$!
  PIDS+=("$!")
  disown # (killed by the next model or the cleanup, without the shell's job report)
  local t0; t0=$(now_ms)
  until cin a bash -c "exec 3<>/dev/tcp/$a/2379 && printf 'GET /health HTTP/1.0\r\n\r\n' >&3 && grep -q '\"health\":\"true\"' <&3" 2>/dev/null; do
    (($(now_ms) - t0 < 30000)) || die "etcd did not start: $(tail -3 "$WORK/etcd.log")"
    sleep 0.1
  done
}

# cluster_model <overlay|flat|kubenet> <agent JSON keys> <ClusterNetwork file>: one model of the
# cluster, its pods from the shared pool: pods on A and B, node C joining and leaving
cluster_model() {
  local m=$1 keys=$2 pool=$3 net=$1 n ms
  [[ $m == flat ]] && net=azure
  etcd_fresh
  say "cluster, $m: agents on nodes A and B; the pool: $pool"
  for n in a b c; do
    mkdir -p "$WORK/cconf-$n"; rm -f "$WORK/cconf-$n"/*
    conf_cluster "$m" "$n" >"$WORK/cconf-$n/10-$m.conflist"
  done
  for n in a b; do agent_start "$n" "$keys"; done
  ctl a apply -f "$ROOT/$pool" | sed 's/^/  /'
  # the pods' Pod resources: their labels (an attachment's labels are its Pod's)
  ctl a apply -f - >/dev/null <<'YAML'
apiVersion: v1
kind: Namespace
metadata: {name: demo}
---
apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: Pod, metadata: {name: web-a, namespace: demo, labels: {app: web}}, spec: {containers: [{name: web, image: nginx}]}}
- {apiVersion: v1, kind: Pod, metadata: {name: web-b, namespace: demo, labels: {app: web}}, spec: {containers: [{name: web, image: nginx}]}}
- {apiVersion: v1, kind: Pod, metadata: {name: web-c, namespace: demo, labels: {app: web}}, spec: {containers: [{name: web, image: nginx}]}}
YAML
  ns "c$m-a"; ns "c$m-b"
  ccni a add "$net" "c$m-a" "$(k8s demo web-a)" >/dev/null
  ccni b add "$net" "c$m-b" "$(k8s demo web-b)" >/dev/null
  local pa pb pc pa6
  pa=$(addr_of "c$m-a" 4); pb=$(addr_of "c$m-b" 4); pa6=$(addr_of "c$m-a" 6)
  serve "c$m-b" "$pb"
  ms=$(reach "c$m-a" "$pb" 10000)
  local s; s=$(seen "c$m-a" "$pb")
  check "$m: pod web-a ($pa, node A) reaches pod web-b ($pb, node B) with its own address" \
    "$([[ $s == "$pa" ]] && echo ok || echo "web-b saw ${s:-nothing}")"
  if [[ $m == flat ]]; then
    check "$m: the VM of the VNet reaches pod web-a ($pa) directly" \
      "$(ip netns exec "$C-peer" ping -c1 -W1 -q "$pa" >/dev/null 2>&1 && echo ok || echo "no answer")"
  fi
  say "cluster, $m: node C joins (its agent starts, then a pod: the agent claims a block for it)"
  agent_start c "$keys"
  ns "c$m-c"
  ccni c add "$net" "c$m-c" "$(k8s demo web-c)" >/dev/null
  pc=$(addr_of "c$m-c" 4)
  ms=$(reach "c$m-a" "$pc" 10000)
  check "$m: pod web-a reaches pod web-c ($pc, node C) (${ms:-no answer} ms after its ADD returned)" \
    "$([[ -n $ms ]] && echo ok || echo "not within 10 s")"
  if [[ -n $pa6 ]]; then
    ms=$(reach "c$m-c" "$pa6" 10000)
    check "$m: pod web-c reaches pod web-a ($pa6) over IPv6 too (${ms:-no answer} ms)" "$([[ -n $ms ]] && echo ok || echo "not within 10 s")"
  fi
  echo "  cnictl get nodes -o wide (node A):"
  ctl a get nodes -o wide | sed 's/^/    /'
  echo "  cnictl ipam show (node A): the blocks each node claimed of the pool"
  ctl a ipam show | sed 's/^/    /'
  echo "  cnictl get attachments -A -o wide (node B):"
  local att t0; t0=$(now_ms)
  until att=$(ctl b get attachments -A -o wide 2>/dev/null) && grep -q "web-c" <<<"$att" || (($(now_ms) - t0 > 10000)); do sleep 0.1; done
  printf '    %s\n' "${att//$'\n'/$'\n'    }"
  check "$m: every pod has its attachment, labels from its Pod" \
    "$(grep -q "web-c-eth0.*node-c.*$pc/.*app=web" <<<"$att" && grep -q "web-a-eth0.*node-a.*$pa/" <<<"$att" && echo ok || echo "missing")"
  local shown; shown=$(ctl a ipam show -o json)
  check "$m: node C claimed a block of the pool for its pod" \
    "$(jq -e '[.blocks[] | select(.node == "node-c")] | length > 0' <<<"$shown" >/dev/null && echo ok || echo "no block of node-c")"
  echo "  cnictl get pods -n demo -o wide:"
  ctl a get pods -n demo -o wide | sed 's/^/    /'
  local probe=()
  case $m in
    kubenet)
      echo "  node A's routes to the other nodes' pod CIDRs, their node blocks (ip route show proto 77; no router involved):"
      { cin a ip route show proto 77; cin a ip -6 route show proto 77; } | sed 's/^/    /'
      probe=(ip route show proto 77 match "$pc")
      ;;
    overlay)
      echo "  node A's VXLAN routes, one per block of the other nodes (ip route show dev ferro.1):"
      { cin a ip route show dev ferro.1; cin a ip -6 route show dev ferro.1; } | sed 's/^/    /'
      probe=(ip route show dev ferro.1 match "$pc")
      ;;
  esac
  if ((${#probe[@]})); then
    check "$m: node A routes node C's block of $pc" "$([[ -n $(cin a "${probe[@]}") ]] && echo ok || echo "no route")"
  fi
  say "cluster, $m: node C's agent dies (kill -9); its lease expires after 2 s"
  agent_stop c KILL
  if ((${#probe[@]})); then
    local gone; gone=$(until_gone a 15000 "${probe[@]}")
    check "$m: node A dropped node C's block (${gone:-never} ms after the kill: the 2 s TTL, then the store's expiry)" \
      "$([[ -n $gone ]] && echo ok || echo "still there after 15 s")"
  else
    echo "  (flat needs no membership: the VNet carries every pod address natively)"
  fi
  ms=$(reach "c$m-a" "$pb" 3000)
  check "$m: pods of A and B still talk" "$([[ -n $ms ]] && echo ok || echo "no answer")"
  [[ $m != kubenet ]] || cluster_services
  # tidy: DELs (node C's release and report wait in its spool: its agent is gone), agents stopped
  ccni a del "$net" "c$m-a" "$(k8s demo web-a)"
  ccni b del "$net" "c$m-b" "$(k8s demo web-b)"
  ccni c del "$net" "c$m-c" "$(k8s demo web-c)"
  for n in a b c; do
    ip netns pids "$P-c$m-$n" 2>/dev/null | xargs -r kill 2>/dev/null || true # the pods' servers
    ip netns del "$P-c$m-$n"
  done
  local chk; chk=$(ctl a ipam check 2>&1) || true
  check "$m: cnictl ipam check clean after the DELs" "$(grep -q "0 attachments hold addresses" <<<"$chk" && echo ok || echo "$chk")"
  for n in a b; do agent_stop "$n" TERM; done
  for n in a b c; do cin "$n" ip link del ferro.1 2>/dev/null || true; done
}

# The cluster's edge on nodes A and B (kubenet): cluster DNS in each agent (dnsmasq on the
# internet host as the upstream), a pod resolving a Service by its short name and reaching it,
# an EgressPolicy letting that pod reach one internet name and nothing else, and DNS answers
# per second from one pod (dnsperf).
cluster_edge() {
  local inet=$WORLD_INTERNET n a dns=169.254.20.10
  say "cluster edge: cluster DNS on $dns in every agent; dnsmasq on the internet host ($inet) as upstream"
  for a in 203.0.113.20 203.0.113.21; do ip netns exec "$C-inet" ip addr add "$a/24" dev eth0; done
  printf '203.0.113.20 api.example.com\n203.0.113.21 other.example.com\n' >"$WORK/inet-hosts"
  ip netns exec "$C-inet" dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts \
    --addn-hosts="$WORK/inet-hosts" --listen-address="$inet" --bind-interfaces --local-ttl=30 \
    --local=/#/ --user=root --pid-file="$WORK/dnsmasq.pid" >/dev/null 2>&1 &
  PIDS+=("$!")
  disown
  ip netns exec "$C-inet" socat TCP-LISTEN:7000,fork,reuseaddr SYSTEM:'echo $SOCAT_PEERADDR' >/dev/null 2>&1 &
  PIDS+=("$!")
  disown
  etcd_fresh
  for n in a b; do
    mkdir -p "$WORK/cconf-$n"; rm -f "$WORK/cconf-$n"/*
    conf_cluster kubenet "$n" |
      sed "s|\"agent\":{|\"clusterDNS\":{\"nameservers\":[\"$dns\"]},\"agent\":{|" >"$WORK/cconf-$n/10-kubenet.conflist"
    agent_start "$n" "\"kubenetRoutes\":true,\"dns\":{\"upstreams\":[\"$inet\"]}"
  done
  ctl a apply -f "$ROOT/conf-examples/clusternetwork.yaml" >/dev/null
  ctl a apply -f - >/dev/null <<'YAML'
apiVersion: v1
kind: Namespace
metadata: {name: demo}
---
apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: Pod, metadata: {name: web-a, namespace: demo, labels: {app: web}}, spec: {containers: [{name: web, image: nginx, ports: [{name: http, containerPort: 7000}]}]}}
- {apiVersion: v1, kind: Pod, metadata: {name: client-b, namespace: demo, labels: {app: client}}, spec: {containers: [{name: c, image: busybox}]}}
- {apiVersion: v1, kind: Service, metadata: {name: web, namespace: demo}, spec: {selector: {app: web}, ports: [{name: http, port: 80, targetPort: http}]}}
YAML
  ns edge-a; ns edge-b
  ccni a add kubenet edge-a "$(k8s demo web-a)" >/dev/null
  local result pa pb
  result=$(ccni b add kubenet edge-b "$(k8s demo client-b)")
  pa=$(addr_of edge-a 4); pb=$(addr_of edge-b 4)
  serve edge-a "$pa"
  # the resolv.conf a runtime writes from the result's dns
  jq -r '.dns | (.nameservers[] | "nameserver \(.)"), "search \(.search | join(" "))", "options \(.options | join(" "))"' \
    <<<"$result" >"$WORK/resolv-b.conf"
  echo "  client-b's resolv.conf, from its CNI result:"
  sed 's/^/    /' "$WORK/resolv-b.conf"
  inpod() { ip netns exec "$P-edge-b" sh -c 'mount --bind "$1" /etc/resolv.conf && shift && exec "$@"' sh "$WORK/resolv-b.conf" "$@"; }
  local vip t0 got
  vip=$(ctl a get svc web -n demo -o json | jq -r '.spec.clusterIP')
  t0=$(now_ms)
  until got=$(inpod getent ahostsv4 web | awk 'NR==1{print $1}') && [[ $got == "$vip" ]] || (($(now_ms) - t0 > 5000)); do sleep 0.05; done
  check "edge: pod client-b resolves the Service by its short name: web -> ${got:-nothing} (ClusterIP $vip)" \
    "$([[ $got == "$vip" ]] && echo ok || echo "expected $vip")"
  got=$(inpod socat -T2 - TCP:web:80,connect-timeout=2 </dev/null 2>/dev/null || true)
  check "edge: client-b reaches web:80 by name; web-a ($pa) saw ${got:-nothing}" \
    "$([[ $(canon "$got") == "$pb" ]] && echo ok || echo "expected $pb")"
  got=$(inpod getent ahostsv4 api.example.com | awk 'NR==1{print $1}')
  check "edge: an internet name through the node's DNS: api.example.com -> ${got:-nothing}" \
    "$([[ $got == 203.0.113.20 ]] && echo ok || echo "expected 203.0.113.20")"

  say "cluster edge: an EgressPolicy: client pods of demo may reach api.example.com, nothing else outside"
  ctl a apply -f - <<'YAML' | sed 's/^/  /'
apiVersion: ferro-cni.io/v1
kind: EgressPolicy
metadata: {name: demo-client-out}
spec:
  namespaces: [demo]
  podSelector: {matchLabels: {app: client}}
  defaultAction: Deny
  allow:
  - toNames: [api.example.com]
    ports: [{port: 7000}]
YAML
  ctl a get egresspolicies | sed 's/^/    /'
  sleep 0.3
  got=$(inpod socat -T2 - TCP:api.example.com:7000,connect-timeout=1 </dev/null 2>/dev/null || true)
  check "edge: client-b reaches api.example.com:7000 at the first try (the internet host saw ${got:-nothing})" \
    "$([[ -n $got ]] && echo ok || echo "no answer")"
  got=$(inpod socat -T2 - TCP:other.example.com:7000,connect-timeout=1 </dev/null 2>/dev/null || true)
  check "edge: other.example.com resolves but its address is dropped" "$([[ -z $got ]] && echo ok || echo "reached")"
  got=$(inpod socat -T2 - TCP:web:80,connect-timeout=1 </dev/null 2>/dev/null || true)
  check "edge: the Service inside the cluster still answers" "$([[ -n $got ]] && echo ok || echo "no answer")"
  echo "  node B's egress table (the address answered for api.example.com is in the rule's set):"
  cin b nft list table inet ferro_egress | grep -A5 'set dns4' | grep -E 'set dns4|elements' | sed 's/^\s*/    /'
  cin b nft list table inet ferro_egress | grep -E 'dns4-.* accept|saddr @src4|counter' | sed 's/^\s*/    /'
  local why
  echo "  cnictl policy explain demo/client-b 203.0.113.21 7000/TCP (other.example.com's address):"
  why=$(ctl b policy explain demo/client-b 203.0.113.21 7000/TCP)
  sed 's/^/    /' <<<"$why"
  check "edge: explain says denied by the EgressPolicy" \
    "$([[ $why == denied* && $why == *"denied by EgressPolicy demo-client-out"* ]] && echo ok || echo "got: ${why%%$'\n'*}")"
  echo "  cnictl get policystats -n demo (node B; the dropped attempt to other.example.com is counted):"
  why=$(ctl b get policystats -n demo)
  sed 's/^/    /' <<<"$why"
  check "edge: the client's dropped egress is counted" \
    "$(grep -Eq '^demo +client-b +demo-client-out +[1-9]' <<<"$why" && echo ok || echo "no count")"

  say "cluster edge: figures"
  for _ in $(seq 1 20); do echo "web.demo.svc.cluster.local A"; echo "api.example.com A"; done >"$WORK/queries"
  local qps
  qps=$(ip netns exec "$P-edge-b" dnsperf -s "$dns" -d "$WORK/queries" -l 5 -c 1 -q 20 2>/dev/null | awk '/Queries per second/{print $4}')
  echo "  DNS answers per second from one pod (dnsperf, 5 s, 20 queries outstanding, service and cached internet names): ${qps:-not measured}"
  echo "  the added latency of an allowed name's first answer is measured by crates/agent/tests/egress.rs"
  ccni a del kubenet edge-a "$(k8s demo web-a)"
  ccni b del kubenet edge-b "$(k8s demo client-b)"
  for n in edge-a edge-b; do
    ip netns pids "$P-$n" 2>/dev/null | xargs -r kill 2>/dev/null || true # the pod's server
    ip netns del "$P-$n"
  done
  for n in a b; do agent_stop "$n" TERM; done
}

# ---- services (in the kubenet cluster) ------------------------------------------------------
# ask <netns> <addr> <port>: the answer of the service behind addr:port: "<pod> <source it saw>"
ask() {
  local to="TCP:$2:$3" got
  [[ $2 == *:* ]] && to="TCP6:[$2]:$3"
  got=$(ip netns exec "$1" timeout 3 socat -T2 - "$to,connect-timeout=2" </dev/null 2>/dev/null | head -1) || true
  [[ -z $got ]] || echo "${got%% *} $(canon "${got#* }")"
}
# serve_as <pod> <name> <addr>: a server on port 8080 of addr answering with its pod's name and
# the source address it saw
serve_as() {
  local listen="TCP-LISTEN:8080,bind=$3"
  [[ $3 == *:* ]] && listen="TCP6-LISTEN:8080,bind=[$3]"
  inns "$1" socat "$listen,fork,reuseaddr" SYSTEM:"echo $2 \$SOCAT_PEERADDR" >/dev/null 2>&1 &
}
svc_field() { # svc_field <service> <jq filter>
  ctl a get svc "$1" -n demo -o json | jq -r "$2"
}
# cluster_services: a ClusterIP, a NodePort and a LoadBalancer service in front of web-a (node
# A) and web-b (node B), asked from a pod, from the VNet's VM; then deleted
cluster_services() {
  local m=kubenet n
  say "cluster, services: a ClusterIP, a NodePort and a LoadBalancer in front of web-a (node A) and web-b (node B)"
  for n in a b; do
    serve_as "c$m-$n" "web-$n" "$(addr_of "c$m-$n" 4)"
    serve_as "c$m-$n" "web-$n" "$(addr_of "c$m-$n" 6)"
  done
  ns "c$m-client"
  ccni a add "$m" "c$m-client" "$(k8s demo client)" >/dev/null
  local me me6
  me=$(addr_of "c$m-client" 4); me6=$(addr_of "c$m-client" 6)
  cat >"$WORK/services.yaml" <<YAML
apiVersion: v1
kind: Service
metadata: {name: web, namespace: demo}
spec: {selector: {app: web}, ipFamilyPolicy: PreferDualStack, ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: web-np, namespace: demo}
spec: {type: NodePort, selector: {app: web}, ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: web-lb, namespace: demo}
spec: {type: LoadBalancer, selector: {app: web}, ports: [{port: 80, targetPort: 8080}]}
YAML
  echo "  cnictl apply -f services.yaml (the ClusterNetwork gives the service CIDRs, the NodePort range and a load-balancer pool on the VNet):"
  ctl a apply -f "$WORK/services.yaml" | sed 's/^/    /'
  echo "  cnictl get svc -n demo -o wide:"
  ctl a get svc -n demo -o wide | sed 's/^/    /'
  local cip cip6 np lb
  cip=$(svc_field web '.spec.clusterIPs[0]'); cip6=$(svc_field web '.spec.clusterIPs[1]')
  np=$(svc_field web-np '.spec.ports[0].nodePort'); lb=$(svc_field web-lb '.status.loadBalancer.ingress[0].ip')
  # the agents program their tables within milliseconds; wait for the first answer
  local t0 got; t0=$(now_ms)
  until got=$(ask "$P-c$m-client" "$cip" 80) && [[ -n $got ]] || (($(now_ms) - t0 > 10000)); do sleep 0.05; done

  echo "  ClusterIP $cip:80 from pod client ($me, node A), 12 connections (web-c's node C is dead: not an endpoint):"
  local seen_pods="" bad_src=""
  for _ in $(seq 12); do
    got=$(ask "$P-c$m-client" "$cip" 80)
    echo "    answered by ${got%% *}, which saw ${got#* }"
    seen_pods+=" ${got%% *}"
    [[ ${got#* } == "$me" ]] || bad_src+=" ${got#* }"
  done
  check "ClusterIP: both endpoints answered" \
    "$([[ $seen_pods == *web-a* && $seen_pods == *web-b* && $seen_pods != *web-c* ]] && echo ok || echo "answers:${seen_pods:- none}")"
  check "ClusterIP: the pods saw the client's own address" "$([[ -z $bad_src ]] && echo ok || echo "saw$bad_src")"
  got=$(ask "$P-c$m-client" "$cip6" 80)
  echo "  ClusterIP [$cip6]:80 from the same pod: answered by ${got%% *}, which saw ${got#* }"
  check "ClusterIP over IPv6: answered, the client's address kept" \
    "$([[ ${got%% *} == web-? && ${got#* } == "$me6" ]] && echo ok || echo "got ${got:-nothing}")"

  echo "  NodePort $np from the VNet's VM ($WORLD_PEER), on the live nodes' addresses:"
  local answered=0
  for n in a b; do
    for _ in 1 2 3; do
      got=$(ask "$C-peer" "${CNODE_IP[$n]}" "$np")
      echo "    ${CNODE_IP[$n]}:$np (node ${n^^}): answered by ${got%% *}, which saw ${got#* }"
      [[ $got == web-[ab]" "* && ${got#* } != "$WORLD_PEER" ]] && answered=$((answered + 1))
    done
  done
  check "NodePort: answered on nodes A and B, the VM's address masqueraded (Cluster policy)" \
    "$( ((answered == 6)) && echo ok || echo "$answered of 6 answered as expected")"
  got=$(ip netns exec "$C-nodea" timeout 3 socat -T1 - "TCP:127.0.0.1:$np,connect-timeout=1" </dev/null 2>&1 | head -1) || true
  check "NodePort: not served on 127.0.0.1 (${got##*: })" "$([[ $got == *refused* ]] && echo ok || echo "${got:-no answer}")"

  local holder=""
  t0=$(now_ms)
  while [[ -z $holder ]] && (($(now_ms) - t0 < 10000)); do
    for n in a b; do cin "$n" ip -o addr show | grep -q " $lb/" && holder=$n; done
    sleep 0.05
  done
  echo "  LoadBalancer $lb:80 (from the ClusterNetwork's vnet pool, announced by node ${holder^^}) from the VM:"
  answered=0
  for _ in $(seq 6); do
    got=$(ask "$C-peer" "$lb" 80)
    echo "    answered by ${got%% *}, which saw ${got#* }"
    [[ $got == web-[ab]" "* ]] && answered=$((answered + 1))
  done
  check "LoadBalancer: $lb announced by one live node, answered" \
    "$([[ -n $holder ]] && ((answered == 6)) && echo ok || echo "holder ${holder:-none}, $answered of 6 answered")"

  say "cluster, services: deleted"
  ctl a delete -f "$WORK/services.yaml" | sed 's/^/    /'
  local left=""
  t0=$(now_ms)
  until left=$(cin a nft list table inet ferro_services | grep -c 'demo/' || true) && ((left == 0)) || (($(now_ms) - t0 > 10000)); do sleep 0.05; done
  check "node A's services table holds nothing of them" "$( ((left == 0)) && echo ok || echo "$left lines left")"
  check "the load-balancer address is gone from node ${holder^^}" \
    "$(cin "${holder:-a}" ip -o addr show | grep -q " $lb/" && echo "still there" || echo ok)"
  for n in a b client; do ip netns pids "$P-c$m-$n" | xargs -r kill 2>/dev/null || true; done
  ccni a del "$m" "c$m-client" "$(k8s demo client)"
  ip netns del "$P-c$m-client"
}

# tcp_seen <from pod> <addr> <port>: the source address a server at addr:port saw, or ""
tcp_seen() {
  local to="TCP:$2:$3"
  [[ $2 == *:* ]] && to="TCP6:[$2]:$3"
  local got
  got=$(ip netns exec "$P-$1" timeout 3 socat -T2 - "$to,connect-timeout=1" </dev/null 2>/dev/null | head -1) || true
  [[ -z $got ]] || canon "$got"
}
# serve_port <pod> <addr> <port>: a server answering with the address it sees
serve_port() {
  ip netns exec "$P-$1" socat "TCP-LISTEN:$3,bind=$2,fork,reuseaddr" SYSTEM:'echo $SOCAT_PEERADDR' >/dev/null 2>&1 &
}

# The three-tier example (conf-examples/three-tier.yaml) under NetworkPolicy on the kubenet
# cluster of nodes A and B: applied with cnictl before the pods start; then each path tried
# with real packets, allowed or denied as the policies say.
cluster_policy() {
  local n
  say "cluster, NetworkPolicy: the three-tier example on kubenet (nodes A and B)"
  for n in a b; do agent_start "$n" '"kubenetRoutes":true'; done
  # (the kubenet part's pool and namespace demo are still in the store)
  ctl a apply -f "$ROOT/conf-examples/clusternetwork.yaml" >/dev/null
  ctl a apply -f "$ROOT/conf-examples/three-tier.yaml" | sed 's/^/  /'
  ctl a apply -f - >/dev/null <<'YAML'
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: demo, labels: {app: client}}
spec: {containers: [{name: curl, image: curlimages/curl}]}
YAML
  # frontend and database on node A, backend and a client of another namespace on node B
  declare -A node=([frontend]=a [database]=a [backend]=b [client]=b)
  declare -A nsof=([frontend]=tiers [database]=tiers [backend]=tiers [client]=demo)
  declare -A port=([frontend]=80 [backend]=8080 [database]=5432)
  declare -A ip=()
  for p in frontend backend database client; do
    ns "pol-$p"
    ccni "${node[$p]}" add kubenet "pol-$p" "$(k8s "${nsof[$p]}" "$p")" >/dev/null
    ip[$p]=$(addr_of "pol-$p" 4)
    echo "  ${nsof[$p]}/$p on node ${node[$p]^^}: ${ip[$p]}"
  done
  for p in frontend backend database; do serve_port "pol-$p" "${ip[$p]}" "${port[$p]}"; done
  sleep 0.3
  local from to want got
  for path in client:frontend:yes client:backend:no client:database:no frontend:backend:yes \
    frontend:database:no backend:database:yes backend:frontend:no database:backend:no; do
    IFS=: read -r from to want <<<"$path"
    got=$(tcp_seen "pol-$from" "${ip[$to]}" "${port[$to]}")
    if [[ $want == yes ]]; then
      check "policy: $from -> $to:${port[$to]} allowed (the server saw ${got:-nothing})" \
        "$([[ $got == "${ip[$from]}" ]] && echo ok || echo "not reached from ${ip[$from]}")"
    else
      check "policy: $from -> $to:${port[$to]} denied" "$([[ -z $got ]] && echo ok || echo "reached")"
    fi
  done
  echo "  cnictl policy explain tiers/frontend tiers/database 5432/TCP:"
  ctl a policy explain tiers/frontend tiers/database 5432/TCP | sed 's/^/    /' || true
  echo "  cnictl get policystats -n tiers (node A: drops at its pods):"
  ctl a get policystats -n tiers | sed 's/^/    /'
  for p in frontend backend database client; do
    ccni "${node[$p]}" del kubenet "pol-$p" "$(k8s "${nsof[$p]}" "$p")"
    ip netns pids "$P-pol-$p" | xargs -r kill 2>/dev/null || true
    ip netns del "$P-pol-$p"
  done
  for n in a b; do agent_stop "$n" TERM; done
}

run_cluster() {
  say "cluster: three nodes on a VNet of their own, one etcd member on node A"
  local out; out=$("$BIN/ferro-world" up "$C" 3)
  eval "$out"
  local ips ips6
  read -r -a ips <<<"$WORLD_NODE_IPS"
  read -r -a ips6 <<<"$WORLD_NODE_IPS6"
  declare -g -A CNODE_IP=([a]=${ips[0]} [b]=${ips[1]} [c]=${ips[2]})
  declare -g -A CNODE_IP6=([a]=${ips6[0]} [b]=${ips6[1]} [c]=${ips6[2]})
  # pods of every model from the cluster's shared pool (cluster-ipam): no per-node slice or range
  cluster_model overlay '"overlay":{}' conf-examples/clusternetwork.yaml
  cluster_model flat '' conf-examples/cluster/clusternetwork-flat.yaml
  cluster_model kubenet '"kubenetRoutes":true' conf-examples/clusternetwork.yaml
  cluster_policy
  cluster_edge
}

for m in "${MODELS[@]}"; do
  case $m in
    kubenet | flat | overlay) run_model "$m" ;;
    cluster) run_cluster ;;
    *) die "unknown part $m (kubenet, flat, overlay, cluster)" ;;
  esac
done
if ((${#FAILED[@]})); then
  say "FAILED: ${#FAILED[@]} thing(s) did not behave as the model says"
  printf '  %s\n' "${FAILED[@]}"
  exit 1
fi
say "done: every path behaved as its model says; tearing the simulated network down"
