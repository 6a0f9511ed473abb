#!/bin/bash
# Installs AWS's SSM agent (Session Manager's end on the node: Debian's AMI ships none) from the
# region's download location, its signature checked against AWS's key pinned by fingerprint, then
# starts it. A unit re-runs this until it works: a vendor outage delays shell access, never the boot.
set -euo pipefail
# shellcheck source=/dev/null
. /etc/webstack/ssm-agent.env
/usr/local/sbin/webstack-install-signed-deb amazon-ssm-agent "$SSM_AGENT_URL" \
  "$SSM_AGENT_KEY_FILE" "$SSM_AGENT_KEY_FINGERPRINT"
# Enabled and started here, whatever the package's own scripts did (its unit file may be new to
# systemd, or known to it as missing since an earlier look); started only if it is not running: a
# bundle change re-runs this, and a restart would end the sessions open on the node.
systemctl daemon-reload
systemctl enable --now amazon-ssm-agent.service
