# Gunicorn for webstack's app: workers sized to the instance type, a unix socket only Nginx uses.
# Gunicorn runs this file when it starts and again on every reload (HUP): everything here is worked
# out at each load, so a reload takes the release `current` points to, the app's settings and its
# secrets as they are now. New workers start with it; the old ones finish what they serve.
import os
import runpy
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


# The app's settings and secrets, read from their files at each load by the rule the release command
# follows too. Set here, they reach the workers' os.environ, not Gunicorn's own environment block
# (/proc/PID/environ): systemd started it with the unit's variables alone.
app_environment = runpy.run_path("{{APP_ENVIRONMENT_PATH}}")["app_environment"]

bind = "unix:/run/webstack/app.sock"
# 2 x the instance type's vCPUs + 1, as EC2 reports them (gunicornWorkers): the LB sends this node
# at most twice as many requests at once (lbServerMaxconn), so the two numbers come from one place.
workers = {{WORKERS}}
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
        **app_environment(),
        "WEBSTACK_RELEASE": release,
        "WEBSTACK_DB_WAIT_S": "{{DB_WAIT_SECONDS}}",
    }.items()
]
