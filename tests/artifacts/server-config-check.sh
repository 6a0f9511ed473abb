#!/bin/bash
# Runs `nginx -t` on a rendered site as it will stand on the node, without touching this machine:
# a private mount and network namespace, /etc overlaid by a scratch layer, throwaway TLS files.
# Usage: nginx-check.sh SITE_FILE   (run as root)
set -euo pipefail
site=$(realpath "$1")
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/upper" "$scratch/work" "$scratch/log"
cat >"$scratch/nginx.conf" <<CONF
pid $scratch/nginx.pid;
error_log stderr;
events {}
http {
    include /etc/nginx/mime.types;
    include $site;
}
CONF
unshare --mount --net --fork bash -euo pipefail -c '
  scratch=$1
  mount --make-rprivate /
  mount -t overlay overlay -o "lowerdir=/etc,upperdir=$scratch/upper,workdir=$scratch/work" /etc
  mount --bind "$scratch/log" /var/log/nginx
  ip link set lo up
  mkdir -p /etc/webstack/tls
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=check \
    -keyout /etc/webstack/tls/node.key -out /etc/webstack/tls/node.crt 2>/dev/null
  nginx -t -c "$scratch/nginx.conf"
' nginx-check "$scratch"
