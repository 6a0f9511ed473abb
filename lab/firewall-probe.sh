#!/bin/bash
# Applies one node's generated ruleset in a scratch namespace and probes it from a peer namespace
# holding other nodes' addresses. Prints "SOURCE PORT open|closed|filtered" per probe. Bounded: one-second
# connects, listeners that stop with the namespaces. Leaves nothing behind (trap).
# Usage: firewall-probe.sh RULESET NODE_IP VPC_CIDR PORTS SOURCE_IP...   (run as root)
set -euo pipefail
ruleset=$1 node_ip=$2 vpc=$3 ports=$4
shift 4
id=$$ added_route=
a=wsfw-$id-node b=wsfw-$id-peer
cleanup() {
  ip netns pids "$a" 2>/dev/null | xargs -r kill 2>/dev/null || true
  ip netns del "$a" 2>/dev/null || true
  ip netns del "$b" 2>/dev/null || true
  if [ -n "$added_route" ]; then ip route del blackhole "$vpc" 2>/dev/null || true; fi
}
trap cleanup EXIT
# A stray packet from this machine toward the lab range dies here instead of leaving it.
# (A running lab already holds it: then it stays the lab's.)
if [ -z "$(ip route show "$vpc")" ]; then
  ip route add blackhole "$vpc"
  added_route=1
fi
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
# Every listener is up before the first probe: one still starting would answer "closed" (a busy
# machine's Python took over the half second once waited here, and the first source's probes failed).
for port in ${ports//,/ }; do
  for _ in $(seq 100); do
    if [ -n "$(ip netns exec "$a" ss -Hltn "sport = :$port")" ]; then continue 2; fi
    sleep 0.1
  done
  echo "firewall-probe: nothing listens on port $port after 10 s" >&2
  exit 1
done
targets=()
for port in ${ports//,/ }; do targets+=("$node_ip:$port"); done
for source in "$@"; do
  ip netns exec "$b" /usr/bin/python3 "$(dirname "$0")/connect-probe.py" --timeout 1 \
    --source "$source" "${targets[@]}" | sed "s/^$node_ip:\([0-9]*\) /$source \1 /"
done
