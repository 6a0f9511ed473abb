"""webstack's app: says which node served, writes to the primary, reads from the replica (a Galera
member reads and writes its own server).

Each Gunicorn worker (sync: one request at a time) keeps one connection per database, opened on
first use and dropped after any error: a read through the load balancer costs a query, not a TLS
handshake with the peer's database. A read that finds its kept connection closed by the server (a
restart since) is sent again once on a new one. Reads fall back to the primary when the replica
fails (a failed replica is skipped for a few seconds); writes wait out a primary restart. /healthz asks
this node's own database first, then the other: one database down never takes both backends out
of the load balancer, and a dead peer never slows a health check.
Every answer is JSON: HEAD answers as GET without the body, a known path with another method
405 with Allow, an unknown path 404, a body larger than a note 413, a note too long 422. A failure's detail (a database's address, a traceback) goes to
the app's log, never to the client.
A POST may carry an Idempotency-Key: the key is stored with the row, unique, so the same POST sent
again (by a client that never saw the answer, or by this app after a lost connection) answers with
the first one's row instead of writing a second.
Configuration comes from the environment (systemd EnvironmentFile, written at boot; Gunicorn's
config adds the release, the app's settings and secrets). Every answer names the node, its role
and the release that gave it.
"""
import json
import logging
import os
import re
import time

import pymysql

NODE = os.environ["WEBSTACK_NODE"]
ROLE = os.environ["WEBSTACK_ROLE"]
# A Galera member (database: galera) writes to its own server, and so do the other members: a write
# its server cannot take now is answered at once (503), for the client to send again elsewhere.
MEMBER = ROLE == "member"
# The release this worker runs (Gunicorn's config names it): every answer says which.
RELEASE = os.environ.get("WEBSTACK_RELEASE", "")
PASSWORD = os.environ["DB_APP_PASSWORD"]
CA_FILE = os.environ["DB_CA_FILE"]
SOCKET = os.environ.get("DB_SOCKET", "/run/mysqld/mysqld.sock")
# "local" means this node's own server, over its unix socket; anything else is a peer's address.
TARGETS = {"primary": os.environ["DB_PRIMARY"], "replica": os.environ["DB_REPLICA"]}
ITEM_PATH = re.compile(r"^/items/(\d+)$")
MAX_NOTE = 200
# Idempotency-Key: 1 to 64 visible ASCII characters, bare or as a quoted string (the IETF draft's
# sf-string), without quotes, backslashes or commas inside (a header sent twice reaches the app as
# "a,b": refused, as the draft's one-item grammar does).
IDEMPOTENCY_KEY = re.compile(r'"?([!#-+\--\[\]-~]{1,64})"?')
IDEMPOTENCY_KEY_FORM = "1 to 64 visible ASCII characters other than \", \\ and ',', optionally in double quotes"
# A write that went out and whose answer was lost (CR_SERVER_LOST): it may have been applied. Only
# a write with an idempotency key is sent again after it: the key finds it if it was.
OUTCOME_UNKNOWN = {2013}
# ER_DUP_ENTRY: the key is taken (by this write's first attempt, or an earlier request).
DUPLICATE = 1062
# ER_BAD_FIELD_ERROR: the primary's schema is from before the keys (a rollout in progress).
UNKNOWN_COLUMN = 1054
# Errors after which an INSERT cannot have been applied: CR_CONN_HOST_ERROR (no connection),
# CR_SERVER_GONE_ERROR (pymysql: the statement could not be sent), ER_SERVER_SHUTDOWN,
# ER_LOCK_DEADLOCK (the statement rolled back; also a Galera certification conflict) and
# ER_UNKNOWN_COM_ERROR (a Galera member outside the primary component refuses every statement).
DEADLOCK = 1213
NOT_APPLIED = {2003, 2006, 1053, DEADLOCK, 1047}
# CR_SERVER_GONE_ERROR and CR_SERVER_LOST: the connection is gone (see closed_by_server).
CLOSED_BY_SERVER = {2006, 2013}
REPLICA_BACKOFF_S = 5
replica_down_until = 0.0

# The longest this app waits for its primary: a little less than Nginx and HAProxy wait for the
# app (model/limits.ts), so a slow database gets the app's own 503 rather than a proxy's 504.
DB_WAIT_S = float(os.environ["WEBSTACK_DB_WAIT_S"])
# A write waits out a primary restart (a few seconds) for this long.
WRITE_PATIENCE_S = min(5.0, DB_WAIT_S)
# A peer that does not accept within this is gone (its instance, its link): sub-ms in a VPC.
CONNECT_TIMEOUT_S = 0.5
# A failed read that took longer than this waited for an answer (not a refusal): 504, not 503.
SLOW_FAILURE_S = 2.0
# How long a statement's answer may take. The replica answers primary-key lookups: one that is
# silent for 0.5 s is gone (a cut link), and the read goes to the primary at once. The primary
# may take as long as the request may (a lock, a long write): past that nobody waits for it.
READ_TIMEOUT_S = {"replica": 0.5, "primary": DB_WAIT_S}
# Nginx accepts bodies up to its configured size (maxBodyMiB); a note, MAX_NOTE characters of UTF-8,
# is this many bytes at most: a larger body is refused (413) once read.
MAX_NOTE_BYTES = MAX_NOTE * 4

# This worker's connections, by role.
connections = {}

# Gunicorn's error log (/var/log/webstack/app.log): its handler, its timestamps.
log = logging.getLogger("gunicorn.error")


def connect(role):
    target = TARGETS[role]
    common = dict(user="app", password=PASSWORD, database="webstack", autocommit=True,
                  connect_timeout=CONNECT_TIMEOUT_S, read_timeout=READ_TIMEOUT_S[role], write_timeout=5,
                  charset="utf8mb4")
    if target == "local":
        return pymysql.connect(unix_socket=SOCKET, **common)
    # A peer is reached over TLS only, its certificate checked against the private CA and its IP.
    return pymysql.connect(host=target, port=3306, ssl={"ca": CA_FILE, "check_hostname": True}, **common)


def drop(role):
    connection = connections.pop(role, None)
    if connection is not None:
        try:
            connection.close()
        except Exception:  # already broken: nothing to say goodbye to
            pass


def closed_by_server(error, seconds):
    """Whether a statement failed because its server had closed the connection (a restart since the
    connection's last use: gone away, or lost without a timeout, at once), not because the server is
    silent (lost after the read timeout, which pymysql raises while handling the socket's
    TimeoutError) or went away after a long wait (sent again, the read would wait as long again)."""
    return (isinstance(error, pymysql.err.OperationalError) and error.args[0] in CLOSED_BY_SERVER
            and not isinstance(error.__context__, TimeoutError) and seconds < CONNECT_TIMEOUT_S)


def run(role, statement, args=(), ping=False, resend=False):
    """Runs one statement on this worker's connection to the role's database: (lastrowid, rows).

    The connection is opened on first use and dropped after any error, so the next statement
    starts afresh. With ping, a kept connection is checked first and replaced if it went stale (a
    server restart): the statement is sent only on a connection that just answered. With resend (a
    read: sending it twice is harmless), a kept connection its server had closed is replaced and the
    statement sent once more, without ping's round trip on every read: after a database restart every
    worker's kept connection is stale, and a health check failing on each in turn took both backends
    out of the load balancer for seconds while both databases were up.
    """
    if ping and role in connections:
        try:
            connections[role].ping(reconnect=False)
        except pymysql.err.Error:
            drop(role)
    kept = role in connections
    if not kept:
        connections[role] = connect(role)
    sent = time.monotonic()
    try:
        with connections[role].cursor() as cursor:
            cursor.execute(statement, args)
            return cursor.lastrowid, cursor.fetchall()
    except Exception as error:
        drop(role)
        if resend and kept and closed_by_server(error, time.monotonic() - sent):
            return run(role, statement, args)
        raise


class KeyReused(Exception):
    """The idempotency key names a row with another note: not a retry of that write (the IETF
    draft's 422)."""


def write_item(note, key=None):
    """Inserts on the primary, waiting out a restart for WRITE_PATIENCE_S at most: (id, whether this
    request wrote it).

    Retried when the statement cannot have been applied: the connection failed, the statement never
    reached the server, or the server refused it while shutting down. With an idempotency key also
    when its answer was lost: the key's row, if the first attempt made it, is the answer.
    """
    deadline = time.monotonic() + WRITE_PATIENCE_S
    # A member retries only a write its server rolled back (a certification conflict): waiting out
    # its own server's restart would keep the write from the members that can take it.
    if MEMBER:
        retried = {DEADLOCK}
    else:
        retried = NOT_APPLIED | (OUTCOME_UNKNOWN if key is not None else set())
    lost = False  # an attempt of this request's may have written the key's row
    while True:
        try:
            if key is None:
                item, _ = run("primary", "INSERT INTO items (note, written_by) VALUES (%s, %s)", (note, NODE),
                              ping=True)
            else:
                item, _ = run("primary", "INSERT INTO items (note, written_by, idempotency_key) VALUES (%s, %s, %s)",
                              (note, NODE, key), ping=True)
            return item, True
        except pymysql.err.IntegrityError as error:
            if key is None or error.args[0] != DUPLICATE:
                raise
            _, rows = run("primary", "SELECT id, note FROM items WHERE idempotency_key = %s", (key,))
            if not rows:  # the duplicate was of another key
                raise
            if rows[0][1] != note:
                raise KeyReused(rows[0][0]) from error
            return rows[0][0], lost
        except pymysql.err.OperationalError as error:
            # Another attempt must fit in the patience left, a connect timeout included.
            if error.args[0] not in retried or time.monotonic() + CONNECT_TIMEOUT_S > deadline:
                raise
            lost = lost or error.args[0] in OUTCOME_UNKNOWN
            time.sleep(0.05)


def read(query, args=(), local_first=False):
    """Runs a read on the replica, or on the primary when the replica cannot be reached.

    A replica that failed is skipped for REPLICA_BACKOFF_S: a dead peer costs one timeout per
    worker, not one per request. With local_first, this node's own database is asked first (the
    health check: the node's own path, never a slow peer).
    """
    global replica_down_until
    roles = ["replica", "primary"]
    if local_first:
        roles.sort(key=lambda role: TARGETS[role] != "local")
    errors = []
    for role in roles:
        if role == "replica" and time.monotonic() < replica_down_until:
            errors.append("replica: failed less than %d s ago" % REPLICA_BACKOFF_S)
            continue
        try:
            _, rows = run(role, query, args, resend=True)
            return role, rows
        except pymysql.err.OperationalError as error:
            errors.append(f"{role}: {error.args[0]}")
            if role == "replica":
                replica_down_until = time.monotonic() + REPLICA_BACKOFF_S
    raise ConnectionError("; ".join(errors))


def respond(start_response, status, body, head=False, headers=()):
    """Answers with a JSON body; for HEAD the same status and headers, without the body."""
    payload = json.dumps(body, default=str).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(payload))),
                            ("Cache-Control", "no-store"), *headers])
    return [b""] if head else [payload]


def allowed_methods(path):
    """The methods a path answers (HEAD wherever GET is), or None for a path that is no route."""
    if path in ("/", "/healthz") or ITEM_PATH.match(path):
        return ("GET", "HEAD")
    if path == "/items":
        return ("POST",)
    return None


def read_body(environ):
    """The body's first MAX_NOTE_BYTES + 1 bytes; the rest is read and dropped, so the proxy in front
    always gets to send the whole body and then reads the answer."""
    left = int(environ.get("CONTENT_LENGTH") or 0)
    kept = b""
    while left > 0:
        chunk = environ["wsgi.input"].read(min(left, 65536))
        if not chunk:
            break
        left -= len(chunk)
        if len(kept) <= MAX_NOTE_BYTES:
            kept += chunk[:MAX_NOTE_BYTES + 1 - len(kept)]
    return kept


def post_item(environ, served):
    """The (status, body, headers) of a POST /items: a note written once, whatever its retries."""
    body = read_body(environ)
    if len(body) > MAX_NOTE_BYTES:
        return "413 Content Too Large", {**served, "error": f"a note is at most {MAX_NOTE_BYTES} bytes"}, ()
    note = body.decode("utf-8", "replace")
    if len(note) > MAX_NOTE:
        return "422 Unprocessable Content", {**served, "error": f"a note is at most {MAX_NOTE} characters"}, ()
    header = environ.get("HTTP_IDEMPOTENCY_KEY")
    key = IDEMPOTENCY_KEY.fullmatch(header) if header is not None else None
    if header is not None and (key is None or header.startswith('"') != header.endswith('"')):
        return "400 Bad Request", {**served, "error": f"Idempotency-Key: {IDEMPOTENCY_KEY_FORM}"}, ()
    try:
        item, wrote = write_item(note, key and key.group(1))
    except KeyReused as error:
        return "422 Unprocessable Content", {**served, "error": f"this Idempotency-Key wrote item {error.args[0]}, "
                                                                "with another note"}, ()
    except pymysql.err.Error as error:
        if error.args[0] == UNKNOWN_COLUMN:
            log.error("POST /items: the primary has no idempotency keys yet: %s", error)
            return "503 Service Unavailable", {**served, "error": "idempotency keys are not available until the "
                                                                  "schema upgrade reaches the primary"}, ()
        if not isinstance(error, pymysql.err.OperationalError):
            raise
        # The error names the primary's address: the client learns that writes failed, the log why.
        log.error("POST /items: the primary failed: %s", error)
        return "503 Service Unavailable", {**served, "error": "the primary database is unavailable"}, ()
    # A retry's answer is the first write's, marked as such (as Stripe's API does).
    replayed = () if wrote else (("Idempotent-Replayed", "true"),)
    return "201 Created", {**served, "id": item, "written_to": "primary"}, replayed


def answer(method, path, environ, served):
    """The (status, body, headers) of a request to a route that allows its method (HEAD comes as GET)."""
    if path == "/":
        return "200 OK", served, ()
    if path == "/healthz":
        if MEMBER:
            # A member outside the primary component (or still joining) answers a table-less
            # SELECT, but refuses the app's reads and writes: it must fail its check.
            source, rows = read("SHOW GLOBAL STATUS LIKE 'wsrep_ready'", local_first=True)
            if not rows or rows[0][1] != "ON":
                raise ConnectionError("member: not ready (outside the cluster's primary component)")
        else:
            source, _ = read("SELECT 1", local_first=True)
        return "200 OK", {**served, "status": "ok", "read_from": source}, ()
    if path == "/items":
        return post_item(environ, served)
    source, rows = read("SELECT id, note, written_by, created_at FROM items WHERE id = %s",
                        (int(ITEM_PATH.match(path).group(1)),))
    if not rows:
        return "404 Not Found", {**served, "read_from": source}, ()
    item_id, note, written_by, created = rows[0]
    return "200 OK", {**served, "read_from": source, "id": item_id, "note": note, "written_by": written_by,
                      "created_at": created}, ()


def application(environ, start_response):
    method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "/")
    served = {"node": NODE, "role": ROLE, "release": RELEASE}
    head = method == "HEAD"
    allowed = allowed_methods(path)
    if allowed is None:
        return respond(start_response, "404 Not Found", {**served, "error": "no such route"}, head)
    if method not in allowed:
        return respond(start_response, "405 Method Not Allowed", {**served, "error": "method not allowed"}, head,
                       [("Allow", ", ".join(allowed))])
    headers = ()
    started = time.monotonic()
    try:
        status, body, headers = answer("GET" if head else method, path, environ, served)
    except ConnectionError as error:
        # Roles and error codes only ("replica: 2003; primary: 2003"): no address reaches the client.
        log.error("%s %s: no database answered: %s", method, path, error)
        # 503 (the load balancer sends a GET again to the other node) only when the failure was
        # quick; one that took its wait (a statement blocked on a lock) is a 504, not resent: it
        # would take that long again.
        slow = time.monotonic() - started > SLOW_FAILURE_S
        status = "504 Gateway Timeout" if slow else "503 Service Unavailable"
        body = {**served, "error": str(error)}
    except Exception:
        log.exception("%s %s failed", method, path)
        status, body = "500 Internal Server Error", {**served, "error": "internal error"}
    return respond(start_response, status, body, head, headers)
