#!/bin/bash
# Checks a rendered Nginx site as it will stand on the node, without touching
# this machine: a private mount and network namespace, /etc overlaid by a scratch layer holding
# the file at its node path and throwaway TLS files where the config expects its certificates.
# (HAProxy's config is written for the nodes' HAProxy 3.0: rootfs-check.sh checks it with that.)
# Usage: server-config-check.sh nginx FILE   (run as root)
set -euo pipefail
kind=$1
file=$(realpath "$2")
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/upper" "$scratch/work" "$scratch/log"
case "$kind" in
  nginx)
    cat >"$scratch/nginx.conf" <<CONF
pid $scratch/nginx.pid;
error_log stderr;
events {}
http {
    include /etc/nginx/mime.types;
    include $file;
}
CONF
    ;;
  *)
    echo "usage: server-config-check.sh nginx FILE" >&2
    exit 2
    ;;
esac
# shellcheck disable=SC2016 # the inner script expands its own arguments
unshare --mount --net --fork bash -euo pipefail -c '
  kind=$1 file=$2 scratch=$3
  mount --make-rprivate /
  mount -t overlay overlay -o "lowerdir=/etc,upperdir=$scratch/upper,workdir=$scratch/work" /etc
  ip link set lo up
  mkdir -p /etc/webstack/tls
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=check \
    -keyout /etc/webstack/tls/node.key -out /etc/webstack/tls/node.crt 2>/dev/null
  cp /etc/webstack/tls/node.crt /etc/webstack/tls/ca.crt
  mount --bind "$scratch/log" /var/log/nginx
  nginx -t -c "$scratch/nginx.conf"
' server-config-check "$kind" "$file" "$scratch"
