#!/bin/bash
# A release's command (the stack's releaseCommand, e.g. its migrations), run by the primary's
# `webstack-aws apply` once per release, before any node switches to the release (issue 18).
# Usage: webstack-release-command RELEASE_DIR COMMAND
#   RELEASE_DIR  /srv/webstack/releases/<id>, prepared (unpacked, its venv made)
#   COMMAND      run with /bin/sh -c, in RELEASE_DIR, as the app's user (webstack-app), with no new
#                privileges
# As root it first makes sure the database user `migrate` exists with its password and may change
# the schema (over the local socket; the statements replicate). The command then runs with only
# this environment: PATH (the release's venv first), the app's (app.env, its settings, its
# secrets, the database password among them), DB_MIGRATE_USER, DB_MIGRATE_PASSWORD and WEBSTACK_RELEASE. No value is ever put in a
# process's arguments. Its output goes to the app's log, each line prefixed `release <id12>: `,
# and to stdout (apply's journal and, on failure, its refusal); its exit status is this script's.
set -euo pipefail

if [ "$#" -ne 2 ] || [ ! -d "$1" ]; then
  echo "usage: webstack-release-command RELEASE_DIR COMMAND" >&2
  exit 2
fi
release_dir=$1
command=$2
release=$(basename "$release_dir")
app_log=/var/log/webstack/app.log
migrate_password=$(</etc/webstack/secrets/db-migrate-password)

# The password is put in by bash and sent on stdin. ALTER USER: a new password takes effect too.
{{DB_CLIENT}} --protocol=socket --user=root <<SQL
CREATE USER IF NOT EXISTS 'migrate'@'localhost' IDENTIFIED BY '${migrate_password}';
ALTER USER 'migrate'@'localhost' IDENTIFIED BY '${migrate_password}';
GRANT ALL ON webstack.* TO 'migrate'@'localhost';
SQL

# The command's environment, built in a subshell that starts from nothing.
run_command() {
  local name value line flags
  while IFS= read -r name; do
    # Bash's own read-only variables (SHELLOPTS, BASHOPTS, …) cannot go; they hold nothing of ours.
    flags=$(declare -p "$name")
    flags=${flags#declare -}
    if [[ ${flags%% *} != *r* ]]; then unset "$name"; fi
  done < <(compgen -e)
  export PATH="$release_dir/venv/bin:/usr/bin:/bin"
  while IFS= read -r line; do
    if [[ $line == *=* ]]; then export "${line%%=*}=${line#*=}"; fi
  done </etc/webstack/app.env
  if [ -f /etc/webstack/app-settings.json ]; then
    while IFS= read -r -d '' name && IFS= read -r -d '' value; do
      export "$name=$value"
    done < <(/usr/bin/python3 -c 'import json, sys
for name, value in json.load(open(sys.argv[1])).get("env", {}).items():
    sys.stdout.write(f"{name}\0{value}\0")' /etc/webstack/app-settings.json)
  fi
  for secret in /etc/webstack/app-secrets/*; do
    if [ -f "$secret" ]; then
      value=$(cat "$secret"; printf x) # keeps trailing newlines, as Gunicorn's config reads it
      export "$(basename "$secret")=${value%x}"
    fi
  done
  export DB_MIGRATE_USER=migrate DB_MIGRATE_PASSWORD="$migrate_password" WEBSTACK_RELEASE="$release"
  cd "$release_dir"
  exec setpriv --reuid=webstack-app --regid=webstack-app --init-groups --no-new-privs -- /bin/sh -c "$command"
}

# Gunicorn's log file: if it is not there yet, it is made as Gunicorn would (the app's user's).
if [ ! -e "$app_log" ]; then install -m 0644 -o webstack-app -g webstack-app /dev/null "$app_log"; fi
set +e
(run_command) </dev/null 2>&1 | sed -u "s/^/release ${release:0:12}: /" | tee -a "$app_log"
status=${PIPESTATUS[0]}
set -e
echo "release ${release:0:12}: the release command exited $status" | tee -a "$app_log"
exit "$status"
