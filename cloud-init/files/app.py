"""webstack's app: says which node served, writes to the primary, reads from the replica.

Reads fall back to the primary when the replica is down; /healthz checks only this node's own
app and read path, so one database down never takes both backends out of the load balancer.
Configuration comes from the environment (systemd EnvironmentFile, written at boot).
"""
import json
import os
import re

import pymysql

NODE = os.environ["WEBSTACK_NODE"]
ROLE = os.environ["WEBSTACK_ROLE"]
PASSWORD = os.environ["DB_APP_PASSWORD"]
CA_FILE = os.environ["DB_CA_FILE"]
SOCKET = os.environ.get("DB_SOCKET", "/run/mysqld/mysqld.sock")
# "local" means this node's own server, over its unix socket; anything else is a peer's address.
PRIMARY = os.environ["DB_PRIMARY"]
REPLICA = os.environ["DB_REPLICA"]
ITEM_PATH = re.compile(r"^/items/(\d+)$")
MAX_NOTE = 200


def connect(target):
    common = dict(user="app", password=PASSWORD, database="webstack", autocommit=True,
                  connect_timeout=2, read_timeout=5, write_timeout=5, charset="utf8mb4")
    if target == "local":
        return pymysql.connect(unix_socket=SOCKET, **common)
    # A peer is reached over TLS only, its certificate checked against the private CA and its IP.
    return pymysql.connect(host=target, port=3306, ssl={"ca": CA_FILE, "check_hostname": True}, **common)


def read(query, args=()):
    """Runs a read on the replica, or on the primary when the replica cannot be reached."""
    errors = []
    for name, target in (("replica", REPLICA), ("primary", PRIMARY)):
        try:
            with connect(target) as connection, connection.cursor() as cursor:
                cursor.execute(query, args)
                return name, cursor.fetchall()
        except pymysql.err.OperationalError as error:
            errors.append(f"{name}: {error.args[0]}")
    raise ConnectionError("; ".join(errors))


def respond(start_response, status, body):
    payload = json.dumps(body, default=str).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(payload))),
                            ("Cache-Control", "no-store")])
    return [payload]


def application(environ, start_response):
    method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "/")
    served = {"node": NODE, "role": ROLE}
    try:
        if path == "/" and method == "GET":
            return respond(start_response, "200 OK", served)
        if path == "/healthz" and method == "GET":
            source, _ = read("SELECT 1")
            return respond(start_response, "200 OK", {**served, "status": "ok", "read_from": source})
        if path == "/items" and method == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            note = environ["wsgi.input"].read(min(length, MAX_NOTE * 4)).decode("utf-8", "replace")[:MAX_NOTE]
            with connect(PRIMARY) as connection, connection.cursor() as cursor:
                cursor.execute("INSERT INTO items (note, written_by) VALUES (%s, %s)", (note, NODE))
                item = cursor.lastrowid
            return respond(start_response, "201 Created", {**served, "id": item, "written_to": "primary"})
        match = ITEM_PATH.match(path)
        if match and method == "GET":
            source, rows = read("SELECT id, note, written_by, created_at FROM items WHERE id = %s",
                                (int(match.group(1)),))
            if not rows:
                return respond(start_response, "404 Not Found", {**served, "read_from": source})
            item_id, note, written_by, created = rows[0]
            return respond(start_response, "200 OK", {**served, "read_from": source, "id": item_id,
                                                      "note": note, "written_by": written_by,
                                                      "created_at": created})
        return respond(start_response, "404 Not Found", {**served, "error": "no such route"})
    except (ConnectionError, pymysql.err.OperationalError) as error:
        return respond(start_response, "503 Service Unavailable", {**served, "error": str(error)})
