# Gunicorn for webstack's app: workers sized to the instance, a unix socket only Nginx uses.
import multiprocessing

bind = "unix:/run/webstack/app.sock"
workers = multiprocessing.cpu_count() * 2 + 1
# A sync worker silent this long (its request included) is killed: as long as HAProxy waits.
timeout = {{WORKER_TIMEOUT}}
# On a reload (HUP: a bundle changed this file or the app) the old workers finish what they serve.
graceful_timeout = {{WORKER_TIMEOUT}}
keepalive = 5
accesslog = "/var/log/webstack/app-access.log"
errorlog = "/var/log/webstack/app.log"
loglevel = "info"
# The longest the app waits for its primary database. Set here, not in the unit's environment, so
# that a reload's new workers see a new value.
raw_env = ["WEBSTACK_DB_WAIT_S={{DB_WAIT_SECONDS}}"]
