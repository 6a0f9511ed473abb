#!/bin/sh
# webstack: how needrestart takes replaced libraries into HAProxy (README, "Patching"): a reload,
# never a restart, which would drop every connection of the only LB. In master-worker mode the
# master re-executes itself (the binary and libraries on disk now) and starts new workers; the old
# ones finish their connections. Debian's package reloads it the same way after its own upgrade.
exec systemctl reload haproxy.service
