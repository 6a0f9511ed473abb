#!/bin/bash
# Installs the CloudWatch agent from AWS's download location, its signature checked against AWS's
# key pinned by fingerprint, then starts it with webstack's config. A unit re-runs this until it
# works: a vendor outage delays the metrics (the missing-data alarm says so), never the boot.
set -euo pipefail
# shellcheck source=/dev/null
. /etc/webstack/monitoring.env
/usr/local/sbin/webstack-install-signed-deb amazon-cloudwatch-agent "$CLOUDWATCH_AGENT_URL" \
  "$CLOUDWATCH_AGENT_KEY_URL" "$CLOUDWATCH_AGENT_KEY_FINGERPRINT"
# Reads the nodes' logs, which belong to group adm on Debian.
usermod -a -G adm cwagent
/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl -a fetch-config -m ec2 -s \
  -c file:/etc/webstack/cloudwatch-agent.json
