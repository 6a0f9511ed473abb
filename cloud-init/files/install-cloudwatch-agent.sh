#!/bin/bash
# Installs the CloudWatch agent from AWS's download location, its signature checked against AWS's
# key pinned by fingerprint, then starts it with webstack's config. A unit re-runs this until it
# works: a vendor outage delays the metrics (the missing-data alarm says so), never the boot.
set -euo pipefail
# shellcheck source=/dev/null
. /etc/webstack/monitoring.env
if ! dpkg-query -W -f='${Status}' amazon-cloudwatch-agent 2>/dev/null | grep -q "install ok installed"; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  curl -fsSL --retry 3 -o "$work/agent.deb" "$CLOUDWATCH_AGENT_URL"
  curl -fsSL --retry 3 -o "$work/agent.deb.sig" "$CLOUDWATCH_AGENT_URL.sig"
  curl -fsSL --retry 3 -o "$work/key.gpg" "$CLOUDWATCH_AGENT_KEY_URL"
  export GNUPGHOME="$work/gnupg"
  install -d -m 0700 "$GNUPGHOME"
  gpg --batch --quiet --import "$work/key.gpg"
  # VALIDSIG's last field is the primary key's fingerprint: the one AWS publishes.
  signer=$(gpg --batch --status-fd 1 --verify "$work/agent.deb.sig" "$work/agent.deb" 2>/dev/null |
    awk '$2 == "VALIDSIG" { print $NF }')
  if [ "$signer" != "$CLOUDWATCH_AGENT_KEY_FINGERPRINT" ]; then
    echo "webstack: the agent package is not signed by $CLOUDWATCH_AGENT_KEY_FINGERPRINT (got: ${signer:-none})" >&2
    exit 1
  fi
  dpkg -i -E "$work/agent.deb"
fi
# Reads the nodes' logs, which belong to group adm on Debian.
usermod -a -G adm cwagent
/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl -a fetch-config -m ec2 -s \
  -c file:/etc/webstack/cloudwatch-agent.json
