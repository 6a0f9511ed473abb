# Gunicorn for webstack's app: workers sized to the instance, a unix socket only Nginx uses.
import multiprocessing

bind = "unix:/run/webstack/app.sock"
workers = multiprocessing.cpu_count() * 2 + 1
timeout = 30
graceful_timeout = 10
keepalive = 5
accesslog = "/var/log/webstack/app-access.log"
errorlog = "/var/log/webstack/app.log"
loglevel = "info"
