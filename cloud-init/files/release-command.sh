#!/bin/bash
# A release's command (the stack's releaseCommand, e.g. its migrations), run by the primary's
# `webstack-aws apply` once per release, before any node switches to the release (issue 18).
# Usage: webstack-release-command RELEASE_DIR COMMAND
#   RELEASE_DIR  /srv/webstack/releases/<id>, prepared (unpacked, its venv made)
#   COMMAND      run with /bin/sh -c, in RELEASE_DIR, as the app's user ({{APP_USER}}), in the app's
#                sandbox (a transient unit with the app unit's own properties: no instance metadata,
#                no new privileges, nothing writable but the app's logs)
# As root it first makes sure the database user `migrate` exists with its password and may change
# the schema {{MIGRATE_WHERE}}, and unlocks it: `migrate` is locked
# but while a command runs, since the command's environment (its password in it) is readable by the
# app's user while it runs. However this script ends, it locks `migrate` again and kills the sessions
# it still has {{KILL_WHY}}. Root runs nothing of the release and nothing by a name the release could ship
# (absolute paths, root's own PATH). The command then
# runs with only this environment: PATH (the release's venv first), the app's (app.env, then its
# settings and the secrets its manifest names, the database password among them, read as Gunicorn's
# config reads them: {{APP_ENVIRONMENT_PATH}}), DB_MIGRATE_USER, DB_MIGRATE_PASSWORD
# and WEBSTACK_RELEASE. No value is ever put in a process's arguments: the migrate password reaches
# the sandbox on its standard input, with app.env (root's: 0600 on a node from before). Its output goes to the app's log (written by the app's user,
# inside the sandbox), each line prefixed `release <id12>: `, and to stdout (apply's journal and, on
# failure, its refusal); its exit status is this script's.
set -euo pipefail
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
app_log=/var/log/webstack/app.log

# Inside the sandbox, as the app's user: the command's environment, built in a subshell that starts
# from nothing; the venv's PATH only there, for the command alone.
run_command() {
  local release_dir=$1 command=$2 release=$3 migrate_password=$4 name line flags pairs i
  shift 4 # the rest: app.env's lines
  while IFS= read -r name; do
    # Bash's own read-only variables (SHELLOPTS, BASHOPTS, …) cannot go; they hold nothing of ours.
    flags=$(declare -p "$name")
    flags=${flags#declare -}
    if [[ ${flags%% *} != *r* ]]; then unset "$name"; fi
  done < <(compgen -e)
  for line in "$@"; do
    if [[ $line == *=* ]]; then export "${line%%=*}=${line#*=}"; fi
  done
  # The app's settings and the secrets its manifest names, by the rule Gunicorn's config follows
  # (the same file; -I: nothing of the release's directory, the working one, is imported).
  mapfile -d '' -t pairs < <(/usr/bin/python3 -I {{APP_ENVIRONMENT_PATH}})
  if ! wait "$!"; then
    echo "the app's environment could not be read ({{APP_ENVIRONMENT_PATH}} failed)"
    return 1
  fi
  for ((i = 0; i + 1 < ${#pairs[@]}; i += 2)); do
    export "${pairs[i]}=${pairs[i + 1]}"
  done
  export DB_MIGRATE_USER=migrate DB_MIGRATE_PASSWORD="$migrate_password" WEBSTACK_RELEASE="$release"
  export PATH="$release_dir/venv/bin:/usr/bin:/bin"
  cd "$release_dir"
  exec /bin/sh -c "$command"
}

if [ "${1:-}" = --inside ]; then
  release_dir=$2 command=$3
  release=${release_dir##*/}
  IFS= read -r migrate_password
  mapfile -t app_env # app.env, after it (a password it still holds is the app's copy's, set after)
  umask 0022
  set +e
  (run_command "$release_dir" "$command" "$release" "$migrate_password" "${app_env[@]}") </dev/null 2>&1 |
    /usr/bin/sed -u "s/^/release ${release:0:12}: /" | /usr/bin/tee -a "$app_log"
  status=${PIPESTATUS[0]}
  set -e
  echo "release ${release:0:12}: the release command exited $status" | /usr/bin/tee -a "$app_log"
  exit "$status"
fi

if [ "$#" -ne 2 ] || [ ! -d "$1" ]; then
  echo "usage: webstack-release-command RELEASE_DIR COMMAND" >&2
  exit 2
fi
release_dir=$1
command=$2
migrate_password=$(</etc/webstack/secrets/db-migrate-password)

# The local server as root, over its socket (root authenticates by unix socket); SQL on stdin only.
as_root() {
  {{DB_ADMIN}} "$@"
}

# The EXIT trap: `migrate` locked (a lock that fails fails the script, whatever the command did),
# then its sessions killed (one that ends before its KILL is an unknown id: --force goes on).
lock_migrate() {
  local status=$? sessions id
  trap - EXIT
  if sessions=$(
    as_root --batch --skip-column-names <<'SQL'
ALTER USER {{MIGRATE_ACCOUNT}} ACCOUNT LOCK;
SELECT id FROM information_schema.processlist WHERE user = 'migrate';
SQL
  ); then
    if [ -n "$sessions" ]; then
      while IFS= read -r id; do
        if [[ $id =~ ^[0-9]+$ ]]; then echo "{{KILL_SESSION}}"; fi
      done <<<"$sessions" | as_root --force ||
        echo "webstack-release-command: killing migrate's sessions failed" >&2
    fi
  else
    echo "webstack-release-command: could not lock the database user migrate" >&2
    if [ "$status" -eq 0 ]; then status=1; fi
  fi
  exit "$status"
}
trap lock_migrate EXIT
# A signal ends the script through the EXIT trap, with the signal's status.
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

# The password is put in by bash and sent on stdin. ALTER USER: a new password takes effect too.
# Created locked; unlocked last, just before the command.
as_root <<SQL
CREATE USER IF NOT EXISTS {{MIGRATE_ACCOUNT}} IDENTIFIED BY '${migrate_password}' ACCOUNT LOCK;
ALTER USER {{MIGRATE_ACCOUNT}} IDENTIFIED BY '${migrate_password}';
GRANT ALL ON webstack.* TO {{MIGRATE_ACCOUNT}};
ALTER USER {{MIGRATE_ACCOUNT}} ACCOUNT UNLOCK;
SQL

# This script's other half, in the app's sandbox (LogsDirectory: its log, writable there alone).
{
  printf '%s\n' "$migrate_password"
  /usr/bin/cat /etc/webstack/app.env
} |
  /usr/bin/systemd-run --quiet --wait --pipe --collect --service-type=exec \
    --uid={{APP_USER}} --gid={{APP_USER}} --working-directory="$release_dir" \
    {{SANDBOX_PROPERTIES}} --property=LogsDirectory=webstack \
    -- /bin/bash {{RELEASE_COMMAND_PATH}} --inside "$release_dir" "$command"
