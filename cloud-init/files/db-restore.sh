#!/bin/sh
# Restores this node's database to a point in time from the stack's bucket (issue 20); see the
# README's runbook. Usage: webstack-db-restore --to 'YYYY-MM-DD HH:MM:SS' [--yes] | --resume
exec /usr/local/sbin/webstack-aws db-restore "$@"
