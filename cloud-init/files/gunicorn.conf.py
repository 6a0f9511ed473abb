# Gunicorn for webstack's app: workers sized to the instance, a unix socket only Nginx uses.
# Gunicorn runs this file when it starts and again on every reload (HUP): everything here is worked
# out at each load, so a reload takes the release `current` points to, the app's settings and its
# secrets as they are now. New workers start with it; the old ones finish what they serve.
import json
import multiprocessing
import os
import site
import sys

RELEASES = "/srv/webstack/releases/"
# The release: current's (issue 18), or the one a preflight names before current points to it.
release_dir = os.path.realpath(os.environ.get("WEBSTACK_RELEASE_DIR") or "/srv/webstack/current")
release = os.path.basename(release_dir)
if not os.path.isdir(release_dir):
    # A node from before releases, until its first one: the app it had, in /srv/webstack itself
    # (the tool that writes this file may be the older one, which knows no release).
    release_dir, release = "/srv/webstack", ""
chdir = release_dir
# Its code and its venv's packages first; the release before's leave the path (the venv shares
# Debian's packages, --system-site-packages, which stay on the path as they were).
site_packages = os.path.join(
    release_dir, "venv", "lib", f"python{sys.version_info.major}.{sys.version_info.minor}", "site-packages"
)
sys.path[:] = [release_dir, site_packages] + [p for p in sys.path if not p.startswith(RELEASES)]
if os.path.isdir(site_packages):
    site.addsitedir(site_packages)  # its .pth files


def settings_env():
    """The app's settings (appEnv), /etc/webstack/app-settings.json: {"env": {NAME: value}}."""
    try:
        with open("/etc/webstack/app-settings.json") as handle:
            return json.load(handle)["env"]
    except FileNotFoundError:
        return {}


# The database password: a file of the app's secrets, never a variable of the unit's (issue 19).
DB_PASSWORD_FILE = "{{APP_DB_PASSWORD_PATH}}"


def secrets_env(manifest="/etc/webstack/app-secrets.json"):
    """The app's secrets: the database password and the variables its manifest names (appSecrets;
    a secret taken out of appSecrets leaves the app's environment at the next reload, even if its
    file stays), each read from its own file, the app's user's alone (0400). Set here, they reach
    the workers' os.environ, not any process's environment block (/proc/PID/environ)."""
    try:
        with open(manifest) as handle:
            paths = [entry["path"] for entry in json.load(handle)]
    except FileNotFoundError:
        paths = []
    values = {}
    for path in [DB_PASSWORD_FILE, *paths]:
        try:
            with open(path) as handle:
                values[os.path.basename(path)] = handle.read()
        except FileNotFoundError:
            # Not fetched yet on a node booted before the app had its own user: its preflight
            # still passes the password on from app.env, once.
            if path != DB_PASSWORD_FILE:
                raise
    return values


bind = "unix:/run/webstack/app.sock"
workers = multiprocessing.cpu_count() * 2 + 1
# A sync worker silent this long (its request included) is killed: as long as HAProxy waits.
timeout = {{WORKER_TIMEOUT}}
# On a reload (HUP: a new release, or a bundle changed this file or the app's settings) the old
# workers finish what they serve.
graceful_timeout = {{WORKER_TIMEOUT}}
keepalive = 5
accesslog = "/var/log/webstack/app-access.log"
errorlog = "/var/log/webstack/app.log"
loglevel = "info"
# The app's environment, set here rather than in the unit's so that a reload's new workers see new
# values: its settings, its secrets, which release it is, and the longest it waits for its primary
# database.
raw_env = [
    f"{name}={value}"
    for name, value in {
        **settings_env(),
        **secrets_env(),
        "WEBSTACK_RELEASE": release,
        "WEBSTACK_DB_WAIT_S": "{{DB_WAIT_SECONDS}}",
    }.items()
]
