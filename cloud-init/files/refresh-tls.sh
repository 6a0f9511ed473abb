#!/bin/bash
# Picks up a re-issued certificate (any `pulumi up` in a leaf's last 30 days renews it in SSM):
# fetches this node's certificate and key again, first where nothing reads them, and only if they
# differ from the installed copies and are a pair (the certificate parses, has not expired and is
# the key's), installs them and has Nginx and the database load them without a restart. Run daily
# by a timer, with no capability but CAP_CHOWN (the database's copies are mysql's): its checks are
# openssl's, not `nginx -t` (which opens Nginx's logs and binds its ports).
set -euo pipefail
# shellcheck source=/dev/null
. /etc/webstack/node.env
manifest=/etc/webstack/tls-manifest.json
web_cert=/etc/webstack/tls/node.crt
web_key=/etc/webstack/tls/node.key
scratch=$(mktemp -d) # in the unit's own /tmp (PrivateTmp)
temporary=""
trap 'rm -rf "$scratch"; if [ -n "$temporary" ]; then rm -f "$temporary"; fi' EXIT

refuse() {
  echo "webstack-refresh-tls: SSM's copy refused: $1; nothing installed, nothing reloaded" >&2
  exit 1
}

# The manifest's entries, one a line: parameter, path, mode, owner (none holds a tab or a newline);
# and the same entries into the scratch directory, one file each, root's alone.
mapfile -t entries < <(/usr/bin/python3 -c 'import json, sys
for e in json.load(open(sys.argv[1])):
    print("\t".join([e["parameter"], e["path"], e["mode"], e["owner"]]))' "$manifest")
/usr/bin/python3 -c 'import json, sys
entries = json.load(open(sys.argv[1]))
print(json.dumps([{**e, "path": f"{sys.argv[2]}/{i}", "mode": "0600", "owner": "root:root"}
                  for i, e in enumerate(entries)]))' "$manifest" "$scratch" >"$scratch/manifest.json"
/usr/local/sbin/webstack-aws fetch "$scratch/manifest.json"

changed=false
for i in "${!entries[@]}"; do
  IFS=$'\t' read -r _ path _ _ <<<"${entries[i]}"
  if [ "$path" = "$web_cert" ]; then cert=$scratch/$i; fi
  if [ "$path" = "$web_key" ]; then key=$scratch/$i; fi
  # cmp: 1 when they differ, 2 when the installed copy is missing or unreadable. The database's key
  # is mysql's 0600, which root without CAP_DAC_OVERRIDE cannot read: its certificate, renewed with
  # it, tells.
  status=0
  cmp -s "$scratch/$i" "$path" || status=$?
  if [ "$status" -eq 1 ] || [ ! -e "$path" ]; then changed=true; fi
done
if [ "$changed" = false ]; then exit 0; fi

openssl x509 -in "$cert" -noout 2>/dev/null || refuse "the certificate does not parse"
openssl x509 -in "$cert" -noout -checkend 0 >/dev/null || refuse "the certificate has expired"
key_public=$(openssl pkey -in "$key" -pubout 2>/dev/null) || refuse "the key does not parse"
[ "$(openssl x509 -in "$cert" -noout -pubkey)" = "$key_public" ] || refuse "the certificate is not its key's"

echo "webstack-refresh-tls: new certificate; reloading nginx and the database's TLS" >&2
# Each copy as the manifest says, replaced atomically: a file beside it, its mode, its owner, renamed.
for i in "${!entries[@]}"; do
  IFS=$'\t' read -r _ path mode owner <<<"${entries[i]}"
  temporary=$(mktemp "${path%/*}/.refresh-tls-XXXXXX")
  cat "$scratch/$i" >"$temporary"
  chmod "$mode" "$temporary"
  chown "$owner" "$temporary"
  mv -f "$temporary" "$path"
  temporary=""
done
systemctl reload nginx{{AFTER_NGINX}}
case "$DB_ENGINE" in
  mariadb) "$DB_CLIENT" --protocol=socket --user=root --execute='FLUSH SSL' ;;
  mysql) "$DB_CLIENT" --protocol=socket --user=root --execute='ALTER INSTANCE RELOAD TLS' ;;
  *)
    echo "webstack-refresh-tls: unknown DB_ENGINE $DB_ENGINE" >&2
    exit 1
    ;;
esac
