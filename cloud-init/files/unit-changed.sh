#!/bin/bash
# A bundle changed a systemd unit file: systemd reads the units again, then the unit is taken into
# use as the bundle says, e.g. `restart --no-block X` or `try-restart X` (nothing more when no
# arguments are given: the next start reads it).
# Usage: webstack-unit-changed [SYSTEMCTL-ARGUMENTS...]
set -euo pipefail
systemctl daemon-reload
if [ "$#" -gt 0 ]; then systemctl "$@"; fi
