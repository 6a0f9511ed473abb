#!/bin/bash
# Datadog on (datadog.env): installs Agent 7 from Datadog's APT repository, trusting only Datadog's
# signing keys pinned by fingerprint, then configures it with the API key read from SSM (never from
# a bundle). A unit re-runs this until it works: a vendor outage never fails the boot.
# Datadog off: an agent a former bundle installed is stopped and disabled.
set -euo pipefail
# shellcheck source=/dev/null
. /etc/webstack/datadog.env
keyring=/usr/share/keyrings/datadog-archive-keyring.gpg
installed() { dpkg-query -W -f='${Status}' datadog-agent 2>/dev/null | grep -q "install ok installed"; }
if [ "$DATADOG_ENABLED" != true ]; then
  if installed; then systemctl disable --now datadog-agent; fi
  exit 0
fi
if ! installed; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  export GNUPGHOME="$work/gnupg"
  install -d -m 0700 "$GNUPGHOME"
  fingerprints=${DATADOG_KEY_FINGERPRINTS//,/ }
  for fingerprint in $fingerprints; do
    curl -fsSL --retry 3 -o "$work/key.public" "https://keys.datadoghq.com/DATADOG_APT_KEY_${fingerprint: -8}.public"
    gpg --batch --quiet --import "$work/key.public"
  done
  # Exported by full fingerprint: a key that is not pinned never reaches APT's keyring.
  # shellcheck disable=SC2086 # one argument per fingerprint
  gpg --batch --export $fingerprints >"$work/keyring.gpg"
  install -m 0644 "$work/keyring.gpg" "$keyring"
  echo "deb [signed-by=$keyring] $DATADOG_REPO_URL stable 7" >/etc/apt/sources.list.d/datadog.list
  apt-get update -o Dir::Etc::sourcelist=sources.list.d/datadog.list -o Dir::Etc::sourceparts=- -o APT::Get::List-Cleanup=0
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends datadog-agent
fi

/usr/local/sbin/webstack-aws fetch /etc/webstack/datadog/secrets.json
umask 027
{
  cat /etc/webstack/datadog/datadog.yaml
  printf 'api_key: %s\n' "$(</etc/webstack/secrets/datadog-api-key)"
} >/etc/datadog-agent/datadog.yaml
for conf in /etc/webstack/datadog/conf.d/*.yaml; do
  check=$(basename "$conf" .yaml)
  install -d -o dd-agent -g dd-agent -m 0750 "/etc/datadog-agent/conf.d/$check.d"
  text=$(<"$conf")
  if [ -e /etc/webstack/secrets/db-monitor-password ]; then
    text=${text//@MONITOR_PASSWORD@/$(</etc/webstack/secrets/db-monitor-password)}
  fi
  printf '%s\n' "$text" >"/etc/datadog-agent/conf.d/$check.d/conf.yaml"
done
chown -R dd-agent:dd-agent /etc/datadog-agent/datadog.yaml /etc/datadog-agent/conf.d
# Reads the nodes' logs, which belong to group adm on Debian.
usermod -a -G adm dd-agent
systemctl enable datadog-agent
systemctl restart datadog-agent
