#!/bin/bash
# Applies one node's generated ruleset in a scratch namespace and probes it from a peer namespace
# holding other nodes' addresses. Prints "SOURCE PORT open|filtered" per probe. Bounded: one-second
# connects, listeners that stop with the namespaces. Leaves nothing behind (trap).
# Usage: firewall-probe.sh RULESET NODE_IP VPC_CIDR PORTS SOURCE_IP...   (run as root)
set -euo pipefail
ruleset=$1 node_ip=$2 vpc=$3 ports=$4
shift 4
id=$$
a=wsfw-$id-node b=wsfw-$id-peer
cleanup() {
  ip netns pids "$a" 2>/dev/null | xargs -r kill 2>/dev/null || true
  ip netns del "$a" 2>/dev/null || true
  ip netns del "$b" 2>/dev/null || true
  ip route del blackhole "$vpc" 2>/dev/null || true
}
trap cleanup EXIT
# A stray packet from this machine toward the lab range dies here instead of leaving it.
ip route add blackhole "$vpc"
ip netns add "$a"
ip netns add "$b"
ip link add "n$id" type veth peer name "p$id"
ip link set "n$id" netns "$a"
ip link set "p$id" netns "$b"
ip -n "$a" addr add "$node_ip/16" dev "n$id"
for source in "$@"; do ip -n "$b" addr add "$source/16" dev "p$id"; done
for ns in "$a" "$b"; do ip -n "$ns" link set lo up; done
ip -n "$a" link set "n$id" up
ip -n "$b" link set "p$id" up
ip netns exec "$a" nft -f "$ruleset"
for port in ${ports//,/ }; do
  ip netns exec "$a" timeout 30 python3 -c "
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('0.0.0.0', int(sys.argv[1]))); s.listen(16)
while True: s.accept()[0].close()" "$port" &
done
sleep 0.5
for source in "$@"; do
  for port in ${ports//,/ }; do
    if ip netns exec "$b" python3 -c "
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1, source_address=(sys.argv[3], 0))" \
      "$node_ip" "$port" "$source" 2>/dev/null; then
      echo "$source $port open"
    else
      echo "$source $port filtered"
    fi
  done
done
