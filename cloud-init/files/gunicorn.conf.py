# Gunicorn for webstack's app: workers sized to the instance, a unix socket only Nginx uses.
import multiprocessing

bind = "unix:/run/webstack/app.sock"
workers = multiprocessing.cpu_count() * 2 + 1
# A sync worker silent this long (its request included) is killed: as long as HAProxy waits.
timeout = {{WORKER_TIMEOUT}}
graceful_timeout = 10
keepalive = 5
accesslog = "/var/log/webstack/app-access.log"
errorlog = "/var/log/webstack/app.log"
loglevel = "info"
