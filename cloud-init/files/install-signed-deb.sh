#!/bin/bash
# Installs a vendor's .deb unless the package is installed: downloaded with its detached signature
# (the package's URL plus .sig), installed only when that signature is good and made by the key
# pinned by its full fingerprint. The key itself (a URL, or a file the bundle ships) is not trusted:
# only the fingerprint is. The agents' installer units run it; they retry until it works.
# Usage: webstack-install-signed-deb PACKAGE URL KEY FINGERPRINT
set -euo pipefail
package=$1 url=$2 key=$3 fingerprint=$4
if dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
curl -fsSL --retry 3 -o "$work/package.deb" "$url"
curl -fsSL --retry 3 -o "$work/package.deb.sig" "$url.sig"
case $key in
  https://*) curl -fsSL --retry 3 -o "$work/key" "$key" ;;
  *) cp "$key" "$work/key" ;;
esac
export GNUPGHOME="$work/gnupg"
install -d -m 0700 "$GNUPGHOME"
gpg --batch --quiet --import "$work/key"
# VALIDSIG's last field is the primary key's fingerprint: the one the vendor publishes. gpg gives it
# for a good signature even when this copy of the key has expired (a vendor extends a key's life by
# publishing it again): the pin decides, not the copy's date. A bad signature fails gpg, which says
# why on stderr (the unit's journal). A key its owner revoked is never taken, pinned or not.
status=$(gpg --batch --status-fd 1 --verify "$work/package.deb.sig" "$work/package.deb")
if grep -q '^\[GNUPG:\] REVKEYSIG ' <<<"$status"; then
  echo "webstack: $package's package is signed by a revoked key" >&2
  exit 1
fi
signer=$(awk '$2 == "VALIDSIG" { print $NF }' <<<"$status")
if [ "$signer" != "$fingerprint" ]; then
  echo "webstack: $package's package is not signed by $fingerprint (got: ${signer:-none})" >&2
  exit 1
fi
dpkg -i -E "$work/package.deb"
