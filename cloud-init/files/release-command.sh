#!/bin/bash
# A release's command (issue 18), run once per release on the primary by the applier: makes sure
# the migrate database user exists (a stack older than releases has none), then runs the command as
# the app's user in the release, with only the app's environment and the migrate user's
# credentials. Its output goes to the app's log; on failure its last line is the reason.
# Usage: webstack-release-command RELEASE_DIR COMMAND
set -euo pipefail
if [ "$#" -ne 2 ]; then
  echo "usage: webstack-release-command RELEASE_DIR COMMAND" >&2
  exit 2
fi
release=$(realpath -e "$1")
id=$(basename "$release")

# Through stdin: the password never appears in a process's arguments.
{{DB_CLIENT}} --protocol=socket --user=root <<SQL
CREATE USER IF NOT EXISTS 'migrate'@'localhost' IDENTIFIED BY '$(</etc/webstack/secrets/db-migrate-password)';
GRANT ALL ON webstack.* TO 'migrate'@'localhost';
SQL

output=$(mktemp)
trap 'rm -f "$output"' EXIT
status=0
# The environment is built from nothing (env -i): the node's app.env, the app's variables and
# secrets, then what the command needs; secrets never pass through arguments.
python3 - "$release" "$2" >"$output" 2>&1 <<'PY' || status=$?
import json, os, sys

release, command = sys.argv[1], sys.argv[2]
env = {}
with open("/etc/webstack/app.env") as f:
    for line in f.read().splitlines():
        name, sep, value = line.partition("=")
        if sep:
            env[name] = value
with open("/etc/webstack/app-settings.json") as f:
    env.update(json.load(f)["env"])
secrets = "/etc/webstack/app-secrets"
for name in sorted(os.listdir(secrets)) if os.path.isdir(secrets) else []:
    with open(os.path.join(secrets, name)) as f:
        env[name] = f.read()
with open("/etc/webstack/secrets/db-migrate-password") as f:
    password = f.read().strip()
env.update({
    "PATH": f"{release}/venv/bin:/usr/bin:/bin",
    "DB_MIGRATE_USER": "migrate",
    "DB_MIGRATE_PASSWORD": password,
    "WEBSTACK_RELEASE": os.path.basename(release),
})
os.chdir(release)
setpriv = ["setpriv", "--reuid=www-data", "--regid=www-data", "--init-groups"]
os.execve("/usr/bin/setpriv", [*setpriv, "/bin/sh", "-c", command], env)
PY

sed "s/^/release ${id:0:12}: /" "$output" >>/var/log/webstack/app.log
if [ "$status" -ne 0 ]; then
  echo "release command failed (exit $status): $(tail -n 1 "$output")" >&2
fi
exit "$status"
